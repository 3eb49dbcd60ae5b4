//! `watch`: what the office's `--watch` clients (the core's `WhoWatch`, run by
//! [`crate::world`]) print is true and catches up.
//!
//! * Every line names the holder the store had at the read it came from (the lowest
//!   create revision under the prefix, or `-` when vacant) — never a waiter, never a
//!   holder the store did not have.
//! * A watcher's successive holders strictly increase in revision (a later holder's key
//!   was created later; a revision seen again is a repeat or a step back), and every line
//!   is a change (no line repeats the one before).
//! * At the second convergence look, after every fault healed, a watcher still runs, and
//!   its last line names the store's holder — unless that holder is younger than
//!   [`lag_bound`] (a re-list delay and a call's timeout, plus round trips).
use conch_core::who::RELIST_DELAY;

use crate::record::Outcome;
use crate::verdict::{secs, violation, Violation};
use crate::world::CALL_TIMEOUT_NS;

/// Longest a watcher may trail a change of holders once nothing is faulty: the re-list
/// delay after a watch that ended, a read that timed out, and four one-way trips.
pub fn lag_bound(latency_max_us: u64) -> u64 {
    RELIST_DELAY.as_nanos() as u64 + CALL_TIMEOUT_NS + 4 * latency_max_us * 1000 + 500_000_000
}

/// The holder a line names: `Some(None)` for vacant (`<office> -`), `Some(Some(rev))` for
/// a `--who` line (`rev=N`) or a `--value-only` line (`<office> <value> <rev>`), `None`
/// when it is neither.
pub fn holder_in(line: &str) -> Option<Option<i64>> {
    let words: Vec<&str> = line.split(' ').collect();
    if words.len() == 2 && words[1] == "-" {
        return Some(None);
    }
    if let Some(rev) = words.iter().find_map(|w| w.strip_prefix("rev=")) {
        return rev.parse().ok().map(Some);
    }
    match words.as_slice() {
        [_, _, rev] => rev.parse().ok().map(Some),
        _ => None,
    }
}

fn name(rev: Option<i64>) -> String {
    rev.map_or_else(|| "vacant".to_string(), |r| format!("rev {r}"))
}

/// Runs the checker.
pub fn check_watch(outcome: &Outcome, v: &mut Vec<Violation>) {
    let mut last: std::collections::BTreeMap<(usize, u64), (Option<i64>, Option<i64>)> = Default::default();
    for p in &outcome.watch_prints {
        let Some(printed) = holder_in(&p.line) else {
            v.push(violation("watch", format!("watcher {} printed {:?}: no holder in it", p.watcher, p.line)).at(p.at));
            continue;
        };
        if printed != p.truth {
            let detail = format!(
                "watcher {} printed {} ({:?}) at {}, but the store's holder at that read was {}",
                p.watcher,
                name(printed),
                p.line,
                secs(p.at),
                name(p.truth)
            );
            v.push(violation("watch", detail).at(p.at));
        }
        let (prev_line, prev_holder) = last.get(&(p.watcher, p.incarnation)).copied().unwrap_or((None, None));
        let back = matches!((prev_holder, printed), (Some(a), Some(b)) if b <= a);
        let repeat = last.contains_key(&(p.watcher, p.incarnation)) && prev_line == printed;
        if back || repeat {
            let what = if repeat { "the same holder again" } else { "a holder not newer than the last" };
            let detail = format!(
                "watcher {} printed {} ({}) after {} at {}",
                p.watcher,
                name(printed),
                what,
                name(prev_holder),
                secs(p.at)
            );
            v.push(violation("watch", detail).at(p.at));
        }
        let holder = printed.or(prev_holder);
        last.insert((p.watcher, p.incarnation), (printed, holder));
    }
    let bound = lag_bound(outcome.opts.latency_us.1);
    for look in &outcome.watch_looks {
        let shown = look.last.as_deref().and_then(holder_in);
        if !look.alive {
            v.push(
                violation("watch", format!("watcher {} no longer runs at {}", look.watcher, secs(look.at))).at(look.at),
            );
        } else if shown != Some(look.truth) && look.at.saturating_sub(look.truth_since) > bound {
            let detail = format!(
                "watcher {} still showed {:?} at {}; the store's holder was {} since {} (bound {})",
                look.watcher,
                look.last,
                secs(look.at),
                name(look.truth),
                secs(look.truth_since),
                secs(bound)
            );
            v.push(violation("watch", detail).at(look.at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::holder_in;

    #[test]
    fn the_holder_in_each_line_shape() {
        assert_eq!(holder_in("sim-office -"), Some(None));
        assert_eq!(holder_in("sim-office host1 pid=1001 since=inc1 rev=12"), Some(Some(12)));
        assert_eq!(holder_in("sim-office host1 pid=1 since=s rev=7 priority=5"), Some(Some(7)));
        assert_eq!(holder_in("sim-office - 14"), Some(Some(14)));
        assert_eq!(holder_in("sim-office 127.0.0.5:1 9"), Some(Some(9)));
        assert_eq!(holder_in("garbage"), None);
    }
}
