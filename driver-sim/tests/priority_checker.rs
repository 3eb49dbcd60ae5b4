//! The `priority` checker on hand-made records: a lower-priority start after a vacancy
//! that a higher waiter already waited for is caught, and each of its exceptions (came
//! after the vacancy, a fault of a party, a revoke or key delete of anyone, no predecessor,
//! an overlap) is not.
use conch_checkers::Kind;
use conch_driver_sim::check::check;
use conch_driver_sim::options::{Scenario, SimArgs, SimOptions};
use conch_driver_sim::record::{FaultRecord, Group, Interval, Outcome, Promotion};

const S: u64 = 1_000_000_000;

fn interval(client: usize, rev: i64, start: u64, end: u64) -> Interval {
    Interval { client, group: Group::Office, rev, label: String::new(), start, end }
}

fn fault(kind: Kind, client: Option<usize>, from: u64, to: u64) -> FaultRecord {
    FaultRecord { kind, client, from, to }
}

/// Client 0 held 1 s..10 s; client 1 (priority 0) starts at 10.1 s while client 2
/// (priority 5) has waited with a key created at `born`.
fn outcome(born: u64, prev_end: u64, faults: Vec<FaultRecord>, with_prev: bool) -> Outcome {
    let args = SimArgs { priorities: true, ..SimArgs::new(Scenario::Elect) };
    let opts = SimOptions::draw(1, &args);
    let start = 10 * S + S / 10;
    let mut intervals = vec![interval(1, 9, start, 20 * S)];
    if with_prev {
        intervals.push(interval(0, 3, S, prev_end));
    }
    let promotion = Promotion {
        client: 1,
        group: Group::Office,
        rev: 9,
        lower: 0,
        queued: 3,
        key_rev: Some(9),
        at: start,
        priority: 0,
        higher: vec![(2, 5, born)],
    };
    Outcome { intervals, faults, promotions: vec![promotion], ..Outcome::new(opts, 0, 0) }
}

#[test]
fn the_priority_checker_fires_only_outside_its_exceptions() {
    // (higher waiter's key created at, predecessor's end, faults, a predecessor) => caught
    let table: Vec<(u64, u64, Vec<FaultRecord>, bool, bool)> = vec![
        (5 * S, 10 * S, vec![], true, true),
        // It came after the office fell vacant.
        (10 * S + S / 20, 10 * S, vec![], true, false),
        // No predecessor, or an overlap with it: not this checker's business.
        (5 * S, 10 * S, vec![], false, false),
        (5 * S, 11 * S, vec![], true, false),
        // A fault of the waiter, the new holder, the predecessor or etcd around it.
        (5 * S, 10 * S, vec![fault(Kind::Pause, Some(2), 9 * S, 9 * S + 1)], true, false),
        (5 * S, 10 * S, vec![fault(Kind::Freeze, Some(1), 6 * S, 7 * S)], true, false),
        (5 * S, 10 * S, vec![fault(Kind::Crash, Some(0), 8 * S, 8 * S)], true, false),
        (5 * S, 10 * S, vec![fault(Kind::EtcdDown, None, 4 * S, 5 * S)], true, false),
        // A revoke or key delete of anyone may leave a stale marker.
        (5 * S, 10 * S, vec![fault(Kind::KeyDelete, Some(3), 9 * S, 9 * S)], true, false),
        // A pause of a bystander excuses nothing; nor does a fault after the start.
        (5 * S, 10 * S, vec![fault(Kind::Pause, Some(3), 9 * S, 9 * S + 1)], true, true),
        (5 * S, 10 * S, vec![fault(Kind::Pause, Some(2), 11 * S, 12 * S)], true, true),
    ];
    for (i, (born, prev_end, faults, with_prev, caught)) in table.into_iter().enumerate() {
        let o = outcome(born, prev_end, faults, with_prev);
        let got = check(&o).iter().any(|v| v.checker == "priority");
        assert_eq!(got, caught, "case {i}: {:?}", check(&o));
    }
}
