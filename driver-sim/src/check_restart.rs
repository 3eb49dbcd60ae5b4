//! `restart-pacing`: a service (`elect --restart`, and a one-shot waiter re-entering the
//! queue) waits between cycles as documented, on the wrapper host's monotonic clock, from
//! the cycle's end (its `backoff` log) to the next cycle's grant, with a few milliseconds of
//! slack for timer rounding:
//!
//! * a cycle whose child ended by itself (its work done, or killed by a fault; not stopped
//!   by its shim, no loss logged, its exit heard before the session's `term_at`) is
//!   followed by the crash backoff of 01-cli and 03-core: decorrelated jitter,
//!   `next = min(cap, random_between(base, prev × 3))`, base 1 s, cap 30 s, so at least
//!   [`CRASH_BASE`] and at most `min(CRASH_CAP, 3 · prev)`, `prev` the last crash delay of
//!   the wrapper — back to the base once a child has stayed up [`STABLE_AFTER`] (a child
//!   of any cycle: the reset is the child's, whatever ended its cycle);
//! * a cycle that etcd ended (no child: a grant, campaign or session that failed; or a
//!   child the wrapper stopped, for a lost hold or a step-down, or its shim at the
//!   session's deadline) is followed by the session's pace,
//!   [`ETCD_BASE`]..[`ETCD_MAX`] (00-overview's convergence: a failure to reach etcd is
//!   not a crash of the child and does not grow the crash backoff; `service.rs`);
//! * a cycle neither rule can name for sure (an on-acquire hook ran and no child
//!   followed; a child that ended by itself around a loss or its deadline; a child that
//!   ended, or that its shim stopped on its own, while its wrapper was stopped — the
//!   wrapper may have renewed meanwhile, and count the child's end as its own) is not judged, and leaves `prev` unknown when its pause could
//!   have been a crash delay.
//!
//! An upper bound is excused when the wrapper was stopped or frozen during the pause
//! (a pause, a freeze, the freeze-on-answer site); its delay then leaves `prev` unknown.
//! The bounds are the documented rule's, derived here, not the core's `Backoff`.
use std::collections::BTreeMap;
use std::time::Duration;

use crate::record::{ChildLife, Outcome, RestartRecord};
use crate::verdict::{secs, violation, wrapper_stopped, Violation};

/// The checker's name.
pub const CHECKER: &str = "restart-pacing";

/// The crash backoff's base, its shortest delay (01-cli: "from 1 s").
pub const CRASH_BASE: Duration = Duration::from_secs(1);
/// The crash backoff's cap (01-cli: "up to a 30 s cap").
pub const CRASH_CAP: Duration = Duration::from_secs(30);
/// A child up this long resets the crash backoff (01-cli: "reset once a child has stayed
/// up 60 s").
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The session's pace after a cycle etcd ended: shortest pause (`service.rs`).
pub const ETCD_BASE: Duration = Duration::from_millis(100);
/// ... and longest.
pub const ETCD_MAX: Duration = Duration::from_secs(1);

/// Slack for timer rounding between the host's clock and simulated time (ns).
const SLACK_NS: u64 = 5_000_000;

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// What ended a cycle, as far as the records tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The child's own end: the crash backoff.
    Child,
    /// etcd's (or a step-down's): the session's pace.
    Etcd,
    /// Either.
    Unknown,
}

/// Whether the cycle's child reset the crash backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    Yes,
    No,
    Maybe,
}

/// What ended the cycle of `r`.
pub fn cause(r: &RestartRecord) -> Cause {
    match r.child {
        None if r.acquire_hook => Cause::Unknown,
        None => Cause::Etcd,
        // The runner stops a child for a lost hold or a step-down (or a signal, which
        // ends the service); its shim alone at the session's deadline, which the wrapper
        // shares unless it was stopped and heard of a renewal first.
        Some(c) if c.stop_ordered || (c.signalled && !c.blocked) => Cause::Etcd,
        Some(c) if c.signalled || c.blocked || r.lost || c.ended + SLACK_NS >= c.term_at => Cause::Unknown,
        Some(_) => Cause::Child,
    }
}

/// Whether the child of a cycle reset the crash backoff (its uptime as the wrapper saw it
/// is at least the host's: a wrapper stopped at its end heard of it later).
fn reset(child: Option<ChildLife>) -> Reset {
    let Some(c) = child else { return Reset::No };
    let up = c.ended - c.started;
    let stable = ns(STABLE_AFTER);
    if up >= stable + SLACK_NS {
        Reset::Yes
    } else if up + SLACK_NS >= stable || c.blocked {
        Reset::Maybe
    } else {
        Reset::No
    }
}

/// Runs the checker.
pub fn check_restarts(outcome: &Outcome, v: &mut Vec<Violation>) {
    let mut wrappers: BTreeMap<(usize, u64), Vec<&RestartRecord>> = BTreeMap::new();
    for r in &outcome.restarts {
        wrappers.entry((r.client, r.incarnation)).or_default().push(r);
    }
    for cycles in wrappers.values() {
        // The last crash delay (ns); `None`: unknown.
        let mut prev = Some(ns(CRASH_BASE));
        for r in cycles {
            match reset(r.child) {
                Reset::Yes => prev = Some(ns(CRASH_BASE)),
                Reset::No | Reset::Maybe => {}
            }
            let Some(began) = r.began else { continue };
            let pause = began.0.saturating_sub(r.ended.0);
            let excused = wrapper_stopped(&outcome.faults, r.client, r.ended.1, began.1);
            let cause = cause(r);
            let (low, high) = match cause {
                Cause::Child => (ns(CRASH_BASE), prev.map(|p| (3 * p).min(ns(CRASH_CAP)))),
                Cause::Etcd => (ns(ETCD_BASE), Some(ns(ETCD_MAX))),
                Cause::Unknown => (0, None),
            };
            let high = high.filter(|_| !excused);
            let rule = match cause {
                Cause::Child => "the child's own end: the crash backoff waits",
                _ => "etcd ended it: the session's pace waits",
            };
            if pause + SLACK_NS < low {
                v.push(report(r, pause, format!("{rule} {} at least", secs(low))));
            } else if let Some(high) = high.filter(|h| pause > h + SLACK_NS) {
                let since = match reset(r.child) {
                    Reset::Yes => format!(" (its child stayed up {})", secs(ns(STABLE_AFTER))),
                    Reset::No | Reset::Maybe => String::new(),
                };
                v.push(report(r, pause, format!("{rule} {} at most{since}", secs(high))));
            }
            prev = match cause {
                Cause::Child if !excused => Some(pause),
                Cause::Etcd => prev,
                // Under the crash base, only the session's pace could have been it.
                Cause::Unknown if pause + SLACK_NS < ns(CRASH_BASE) => prev,
                Cause::Child | Cause::Unknown => None,
            };
        }
    }
}

fn report(r: &RestartRecord, pause: u64, why: String) -> Violation {
    let what = format!("client {}'s service cycle ended at {}", r.client, secs(r.ended.1));
    violation(CHECKER, format!("{what}, the next began {} later: {why}", secs(pause))).at(r.ended.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Scenario, SimArgs, SimOptions};
    use crate::record::FaultRecord;
    use conch_checkers::Kind;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    /// A cycle ending at `end` (host clock = simulated time) whose child ran
    /// `started..ended` by itself, the next cycle's grant `pause` later.
    fn own(started: u64, ended: u64, pause: u64) -> RestartRecord {
        let child = ChildLife {
            started,
            ended,
            stop_ordered: false,
            signalled: false,
            term_at: ended + 10 * S,
            blocked: false,
        };
        let end = ended + 50 * MS;
        RestartRecord {
            client: 0,
            incarnation: 1,
            ended: (end, end),
            began: Some((end + pause, end + pause)),
            child: Some(child),
            acquire_hook: false,
            lost: false,
        }
    }

    /// The same, its child stopped by the wrapper's order (a lost hold).
    fn stopped(started: u64, ended: u64, pause: u64) -> RestartRecord {
        let mut r = own(started, ended, pause);
        if let Some(c) = r.child.as_mut() {
            (c.stop_ordered, c.signalled) = (true, true);
        }
        r
    }

    /// A cycle without a child (a failed grant) ending at `end`.
    fn childless(end: u64, pause: u64) -> RestartRecord {
        RestartRecord { child: None, ..own(end, end, pause) }
    }

    fn caught(restarts: Vec<RestartRecord>, faults: Vec<FaultRecord>) -> usize {
        let opts = SimOptions::draw(1, &SimArgs::new(Scenario::Elect));
        let mut outcome = Outcome::new(opts, 100 * S, 200 * S);
        outcome.restarts = restarts;
        outcome.faults = faults;
        let mut v = Vec::new();
        check_restarts(&outcome, &mut v);
        v.len()
    }

    #[test]
    fn the_documented_rule_is_the_cores() {
        assert_eq!(CRASH_BASE, conch_core::backoff::BASE);
        assert_eq!(CRASH_CAP, conch_core::backoff::CAP);
        assert_eq!(STABLE_AFTER, conch_core::backoff::STABLE_AFTER);
        assert_eq!(ETCD_BASE, conch_core::service::ETCD_RETRY_BASE);
        assert_eq!(ETCD_MAX, conch_core::service::ETCD_RETRY_MAX);
    }

    #[test]
    fn a_childs_own_end_waits_the_crash_backoff() {
        assert_eq!(caught(vec![own(0, 5 * S, 1500 * MS)], vec![]), 0, "within 1 s..3 s");
        assert_eq!(caught(vec![own(0, 5 * S, 400 * MS)], vec![]), 1, "the session's pace instead");
        assert_eq!(caught(vec![own(0, 5 * S, 3500 * MS)], vec![]), 1, "over three times the base");
        // Growing: 2.5 s, then up to 7.5 s, then up to the cap.
        let grow = vec![own(0, 5 * S, 2500 * MS), own(10 * S, 15 * S, 7 * S), own(30 * S, 35 * S, 20 * S)];
        assert_eq!(caught(grow, vec![]), 0, "growing up to three times the last");
        let past = vec![own(0, 5 * S, 2500 * MS), own(10 * S, 15 * S, 8 * S)];
        assert_eq!(caught(past, vec![]), 1, "past three times the last");
        let capped = vec![own(0, 5 * S, 3 * S), own(10 * S, 15 * S, 9 * S), own(30 * S, 35 * S, 27 * S)];
        let mut over = capped.clone();
        over.push(own(70 * S, 75 * S, 31 * S));
        assert_eq!(caught(capped, vec![]), 0, "up to 27 s");
        assert_eq!(caught(over, vec![]), 1, "past the cap");
    }

    #[test]
    fn a_stable_child_resets_the_crash_backoff() {
        let grown = |last: RestartRecord| vec![own(0, 5 * S, 3 * S), own(10 * S, 15 * S, 9 * S), last];
        assert_eq!(caught(grown(own(30 * S, 50 * S, 20 * S)), vec![]), 0, "not stable: up to 27 s");
        assert_eq!(caught(grown(own(30 * S, 91 * S, 20 * S)), vec![]), 1, "stable 61 s: 3 s at most");
        assert_eq!(caught(grown(own(30 * S, 91 * S, 2 * S)), vec![]), 0, "stable, back to the base");
        assert_eq!(caught(grown(own(30 * S, 90 * S, 20 * S)), vec![]), 0, "60 s to the slack: either");
        // A stable child resets the backoff whatever ended its cycle.
        let lost = vec![own(0, 5 * S, 3 * S), stopped(10 * S, 80 * S, 500 * MS), own(90 * S, 95 * S, 5 * S)];
        assert_eq!(caught(lost, vec![]), 1, "reset by a stable child whose hold was lost");
    }

    #[test]
    fn etcds_end_waits_the_sessions_pace() {
        assert_eq!(caught(vec![childless(5 * S, 300 * MS)], vec![]), 0, "within 100 ms..1 s");
        assert_eq!(caught(vec![childless(5 * S, 50 * MS)], vec![]), 1, "under 100 ms");
        assert_eq!(caught(vec![childless(5 * S, 2 * S)], vec![]), 1, "over 1 s");
        assert_eq!(caught(vec![stopped(0, 5 * S, 1500 * MS)], vec![]), 1, "a lost hold's child: the crash backoff");
        // etcd's pauses leave the crash backoff where it was.
        let between = vec![own(0, 5 * S, 2500 * MS), childless(10 * S, 900 * MS), own(12 * S, 15 * S, 7 * S)];
        assert_eq!(caught(between, vec![]), 0, "the crash backoff grows past etcd's cycles");
    }

    #[test]
    fn a_stopped_wrapper_and_an_unclear_end_are_excused() {
        let freeze = FaultRecord { kind: Kind::Freeze, client: Some(0), from: 6 * S, to: 9 * S };
        assert_eq!(caught(vec![own(0, 5 * S, 4 * S)], vec![freeze]), 0, "frozen in the pause");
        let other = FaultRecord { kind: Kind::Freeze, client: Some(1), from: 6 * S, to: 9 * S };
        assert_eq!(caught(vec![own(0, 5 * S, 4 * S)], vec![other]), 1, "another client frozen");
        let mut lost = own(0, 5 * S, 400 * MS);
        lost.lost = true;
        assert_eq!(caught(vec![lost], vec![]), 0, "a loss logged around the child's end");
        let mut late = own(0, 5 * S, 400 * MS);
        if let Some(c) = late.child.as_mut() {
            c.term_at = 5 * S;
        }
        assert_eq!(caught(vec![late], vec![]), 0, "the child's end heard at its deadline");
        // Its shim stopped it at the deadline: etcd's end, unless the wrapper was stopped.
        let mut deadline = own(0, 5 * S, 1500 * MS);
        if let Some(c) = deadline.child.as_mut() {
            c.signalled = true;
        }
        assert_eq!(caught(vec![deadline.clone()], vec![]), 1, "its shim stopped it at the deadline");
        if let Some(c) = deadline.child.as_mut() {
            c.blocked = true;
        }
        assert_eq!(caught(vec![deadline], vec![]), 0, "... while the wrapper was stopped");
        let hook = RestartRecord { acquire_hook: true, ..childless(5 * S, 1500 * MS) };
        assert_eq!(caught(vec![hook], vec![]), 0, "an on-acquire hook that may have failed");
        // After an unclear pause of a crash delay's length, the crash bound is unknown.
        let unclear = RestartRecord { acquire_hook: true, ..childless(5 * S, 2 * S) };
        assert_eq!(caught(vec![unclear, own(10 * S, 15 * S, 5 * S)], vec![]), 0, "prev unknown");
        let early = RestartRecord { acquire_hook: true, ..childless(5 * S, 500 * MS) };
        assert_eq!(caught(vec![early, own(10 * S, 15 * S, 5 * S)], vec![]), 1, "an etcd pause keeps prev");
        let mut unfinished = own(0, 5 * S, 0);
        unfinished.began = None;
        assert_eq!(caught(vec![unfinished], vec![]), 0, "no next cycle");
    }
}
