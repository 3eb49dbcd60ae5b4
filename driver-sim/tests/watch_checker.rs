//! The `watch` checker on hand-made records: a line naming a holder the store did not
//! have, a holder not newer than the last, a repeated line, a watcher that no longer runs
//! or still shows an old holder past the bound are caught; a clean run, and a watcher
//! trailing a change younger than the bound, are not.
use conch_driver_sim::check::check;
use conch_driver_sim::check_watch::lag_bound;
use conch_driver_sim::options::{Scenario, SimArgs, SimOptions};
use conch_driver_sim::record::{Outcome, WatchLook, WatchPrint};

const S: u64 = 1_000_000_000;

fn line(rev: Option<i64>) -> String {
    rev.map_or_else(|| "sim-office -".to_string(), |r| format!("sim-office host1 pid=1001 since=inc1 rev={r}"))
}

fn print(at_s: u64, printed: Option<i64>, truth: Option<i64>) -> WatchPrint {
    WatchPrint { watcher: 0, incarnation: 1, at: at_s * S, line: line(printed), truth }
}

fn look(last: Option<i64>, truth: Option<i64>, since: u64, alive: bool) -> WatchLook {
    WatchLook { watcher: 0, at: 100 * S, truth, truth_since: since, last: Some(line(last)), alive }
}

fn caught(prints: Vec<WatchPrint>, looks: Vec<WatchLook>) -> bool {
    let opts = SimOptions::draw(1, &SimArgs::new(Scenario::Elect));
    let outcome = Outcome { watch_prints: prints, watch_looks: looks, ..Outcome::new(opts, 0, 0) };
    check(&outcome).iter().any(|v| v.checker == "watch")
}

#[test]
fn the_watch_checker_catches_each_lie_and_lag() {
    let clean =
        || vec![print(1, None, None), print(2, Some(5), Some(5)), print(3, None, None), print(4, Some(9), Some(9))];
    let settled = || vec![look(Some(9), Some(9), 4 * S, true)];
    assert!(!caught(clean(), settled()), "a clean watcher is caught");
    // A waiter (or any key but the lowest) printed as the holder.
    let mut wrong = clean();
    wrong[1].truth = Some(4);
    assert!(caught(wrong, settled()));
    // A holder not newer than the last one (a stale read printed after a newer one).
    let back = vec![print(1, Some(9), Some(9)), print(2, Some(5), Some(5))];
    assert!(caught(back, vec![look(Some(5), Some(5), 2 * S, true)]));
    // The same holder twice: no change was printed as one.
    let twice = vec![print(1, Some(5), Some(5)), print(2, Some(5), Some(5))];
    assert!(caught(twice, vec![look(Some(5), Some(5), S, true)]));
    // A restarted watcher may print its first line again.
    let mut again = vec![print(1, Some(5), Some(5)), print(2, Some(5), Some(5))];
    again[1].incarnation = 2;
    assert!(!caught(again, vec![look(Some(5), Some(5), S, true)]));
    // Still showing rev 9 long after rev 12 took over, or no longer running.
    assert!(caught(clean(), vec![look(Some(9), Some(12), 50 * S, true)]));
    assert!(caught(clean(), vec![look(Some(9), Some(9), 4 * S, false)]));
    // A change younger than the bound may not be shown yet.
    let opts = SimOptions::draw(1, &SimArgs::new(Scenario::Elect));
    let recent = 100 * S - lag_bound(opts.latency_us.1) + S / 10;
    assert!(!caught(clean(), vec![look(Some(9), Some(12), recent, true)]));
}
