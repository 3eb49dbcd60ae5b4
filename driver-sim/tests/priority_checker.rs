//! The `priority` checker on hand-made records: a lower-priority start after a vacancy
//! that a higher waiter already waited for is caught, and each of its exceptions (came
//! after the vacancy, a fault of a party, a revoke or key delete of anyone, no predecessor,
//! an overlap) is not. The `preempt` checker likewise: a request naming a holder not lower
//! is caught whatever the faults; a hand-over that does not reach the asker (or one at
//! least as high) within the bound is caught unless a fault explains it.
use conch_checkers::Kind;
use conch_driver_sim::check::check;
use conch_driver_sim::options::{Scenario, SimArgs, SimOptions};
use conch_driver_sim::record::{FaultRecord, Group, Interval, Outcome, PreemptRecord, Promotion};

const S: u64 = 1_000_000_000;

fn interval(client: usize, rev: i64, start: u64, end: u64) -> Interval {
    Interval { client, rev, pid: 0, start, end: Some(end), tick: None, signalled: false }
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

#[test]
fn the_preempt_checker_catches_a_not_lower_target_and_a_hand_over_that_never_comes() {
    // Client 1 (priority 5) asks client 0 (token 3) at 10 s; client 0's child ends at
    // 10.5 s; the next child starts at `next_at` by `next`.
    // (target's priority, key still there, next start (client, at), faults) => caught
    type Case = (u32, bool, Option<(usize, u64)>, Vec<FaultRecord>, bool);
    let table: Vec<Case> = vec![
        (0, true, Some((1, 11 * S)), vec![], false),
        // Equal or higher: caught, whatever the faults.
        (5, true, Some((1, 11 * S)), vec![], true),
        (9, true, Some((1, 11 * S)), vec![fault(Kind::EtcdDown, None, 9 * S, 12 * S)], true),
        // A higher candidate (client 2, priority 10) may take it instead; a lower may not.
        (0, true, Some((2, 11 * S)), vec![], false),
        (0, true, Some((3, 11 * S)), vec![], true),
        // Nothing within the bound: caught; unless a fault of an office client or etcd
        // lies within a TTL of it.
        (0, true, None, vec![], true),
        (0, true, Some((1, 40 * S)), vec![], true),
        (0, true, None, vec![fault(Kind::Freeze, Some(3), 12 * S, 13 * S)], false),
        (0, true, None, vec![fault(Kind::EtcdDown, None, 2 * S, 8 * S)], false),
        // A fault long before does not excuse it.
        (0, true, None, vec![fault(Kind::Freeze, Some(3), S, 2 * S)], true),
        // The holder had already gone when the request landed: the hand-over is not judged.
        (0, false, None, vec![], false),
    ];
    for (i, (target_priority, live, next, faults, caught)) in table.into_iter().enumerate() {
        let mut o = outcome(5 * S, 10 * S, faults, false);
        o.opts.priorities = vec![0, 5, 10, 1];
        o.opts.preempts = vec![false, true, false, false];
        o.opts.office_clients = 4;
        o.opts.priorities[0] = target_priority;
        o.promotions.clear();
        o.intervals = vec![interval(0, 3, S, 10 * S + S / 2)];
        o.intervals.extend(next.map(|(client, at)| interval(client, 9, at, at + 5 * S)));
        o.stop_at = 100 * S;
        let target = Some(0);
        o.preempts =
            vec![PreemptRecord { at: 10 * S, client: 1, priority: 5, token: 3, target, target_priority, live }];
        let got = check(&o).iter().any(|v| v.checker == "preempt");
        assert_eq!(got, caught, "case {i}: {:?}", check(&o));
    }
}
