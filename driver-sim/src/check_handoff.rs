//! `hand-off`: what a holder's shim owes a successor when its wrapper cannot act, seen
//! from outside the shim's rules (the fault log, the child's life, the store's leases):
//!
//! * **The wrapper died:** its child is gone within `kill_after` of the wrapper's
//!   SIGKILL (the shim stops it at once, not at the session's `term_at`).
//! * **The lease:** once the child's group is gone, and its wrapper died or the session's
//!   `term_at` (the last the wrapper told the shim) passed while it lived, the session
//!   lease is gone from etcd within a trip of the shim's revoke — so a successor starts
//!   in milliseconds, not when the lease would expire (07-performance B4).
//!
//! Excused: a host frozen meanwhile (the shim cannot run), and for the lease any fault
//! that can lose or hold the revoke (the client's link, etcd as a whole or a member, a
//! fault site of that client) around it — the shim sends it once and the TTL frees the
//! lease instead.
use conch_checkers::Kind;

use crate::record::{FaultRecord, Outcome, ShimEnd};
use crate::verdict::{host_frozen, secs, violation, Violation};

/// The checker's name.
pub const CHECKER: &str = "hand-off";

/// Slack for timer rounding and the host clocks' drift (ns).
const SLACK_NS: u64 = 5_000_000;

/// Runs the checker.
pub fn check_handoff(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    // The host clock's kill_after in simulated time, with room for its drift.
    let grace = opts.kill_after.as_nanos() as u64 * 1001 / 1000 + SLACK_NS;
    let trip = 2 * opts.latency_us.1 * 1000 + 50_000_000;
    for e in &outcome.shim_ends {
        let what = format!("client {}'s child (token {})", e.client, e.rev);
        if let Some(gone) = e.wrapper_gone {
            if e.end > gone + grace && !host_frozen(&outcome.faults, e.client, gone, e.end) {
                let why = format!(
                    "{what} ran {} past its wrapper's SIGKILL at {} (kill_after {})",
                    secs(e.end - gone),
                    secs(gone),
                    secs(opts.kill_after.as_nanos() as u64)
                );
                v.push(violation(CHECKER, why).at(e.end));
            }
        }
        let Some(due) = revoke_due(e) else { continue };
        let Some(lease) = e.lease else { continue };
        let by = due + trip;
        if by > outcome.end_at || e.lease_gone.is_some_and(|g| g <= by) || lost(&outcome.faults, e, due, by) {
            continue;
        }
        let gone = e.lease_gone.map_or("still there at the end".to_string(), |g| format!("gone only at {}", secs(g)));
        let why = match e.wrapper_gone {
            Some(w) if w <= e.end => format!("its wrapper SIGKILLed at {}", secs(w)),
            _ => format!("its term_at {} passed", secs(e.term_at)),
        };
        let detail = format!(
            "{what} ended at {} with {why}, yet its lease {lease:x} was not revoked by {}: {gone}",
            secs(e.end),
            secs(by)
        );
        v.push(violation(CHECKER, detail).at(by));
    }
}

/// When the shim owes the revoke: at the group's end, if by then the wrapper had died or
/// the session's `term_at` had passed (by more than a timer's rounding) while it lived.
fn revoke_due(e: &ShimEnd) -> Option<u64> {
    let orphaned = e.wrapper_gone.is_some_and(|w| w <= e.end);
    let expired = e.term_at + SLACK_NS < e.end && e.term_at >= e.start;
    (orphaned || expired).then_some(e.end)
}

/// Whether a fault around `[due, by]` may have lost or held the shim's one revoke (or,
/// a host frozen, delayed the group's end and the shim's send).
fn lost(faults: &[FaultRecord], e: &ShimEnd, due: u64, by: u64) -> bool {
    faults.iter().any(|f| {
        let around = f.from <= by && f.to + SLACK_NS >= due.saturating_sub(SLACK_NS);
        let reaches = f.client.is_none_or(|c| c == e.client);
        let may = match f.kind {
            Kind::Freeze | Kind::Site(_) | Kind::ReadsRefused => true,
            k => k.delays_calls(),
        };
        around && reaches && may
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Scenario, SimArgs, SimOptions};

    const S: u64 = 1_000_000_000;

    fn end(wrapper_gone: Option<u64>, end: u64, term_at: u64, lease_gone: Option<u64>) -> ShimEnd {
        ShimEnd { client: 0, rev: 7, lease: Some(0x10), start: S, end, wrapper_gone, term_at, lease_gone }
    }

    fn caught(e: ShimEnd, faults: Vec<FaultRecord>) -> usize {
        let opts = SimOptions::draw(1, &SimArgs::new(Scenario::Elect));
        let mut outcome = Outcome::new(opts, 60 * S, 100 * S);
        outcome.end_at = 100 * S;
        outcome.faults = faults;
        outcome.shim_ends.push(e);
        let mut v = Vec::new();
        check_handoff(&outcome, &mut v);
        v.len()
    }

    #[test]
    fn an_orphans_lease_goes_at_its_childs_end() {
        let far = 50 * S;
        assert_eq!(caught(end(Some(10 * S), 10 * S, far, Some(10 * S + 5_000_000)), vec![]), 0);
        assert_eq!(caught(end(Some(10 * S), 10 * S, far, Some(14 * S)), vec![]), 1, "left to the TTL");
        assert_eq!(caught(end(Some(10 * S), 10 * S, far, None), vec![]), 1, "never revoked");
        let cut = FaultRecord { kind: Kind::Partition, client: Some(0), from: 9 * S, to: 11 * S };
        assert_eq!(caught(end(Some(10 * S), 10 * S, far, Some(14 * S)), vec![cut]), 0, "the revoke was lost");
        let other = FaultRecord { kind: Kind::Partition, client: Some(1), from: 9 * S, to: 11 * S };
        assert_eq!(caught(end(Some(10 * S), 10 * S, far, None), vec![other]), 1, "another client's cut");
    }

    #[test]
    fn a_child_past_its_wrappers_death_is_caught() {
        let far = 50 * S;
        let opts = SimOptions::draw(1, &SimArgs::new(Scenario::Elect));
        let grace = opts.kill_after.as_nanos() as u64;
        let gone = Some(10 * S + grace + 20_000_000);
        assert_eq!(caught(end(Some(10 * S), 10 * S + grace, far, gone.map(|g| g - 10_000_000)), vec![]), 0);
        assert_eq!(caught(end(Some(10 * S), 10 * S + grace + 20_000_000, far, gone), vec![]), 1);
        let freeze = FaultRecord { kind: Kind::Freeze, client: Some(0), from: 10 * S, to: 12 * S };
        assert_eq!(caught(end(Some(10 * S), 10 * S + grace + 20_000_000, far, gone), vec![freeze]), 0);
    }

    #[test]
    fn a_lease_past_term_at_goes_with_the_group() {
        // A live wrapper that could not renew (frozen, stopped): term_at passed, then the
        // child's group ended: the shim revokes.
        assert_eq!(caught(end(None, 10 * S, 9 * S, Some(10 * S + 1_000_000)), vec![]), 0);
        assert_eq!(caught(end(None, 10 * S, 9 * S, Some(13 * S)), vec![]), 1);
        // The child ended before its term_at: the wrapper's business, not the shim's.
        assert_eq!(caught(end(None, 10 * S, 11 * S, None), vec![]), 0);
        // Too close to the end of the run to tell.
        assert_eq!(caught(end(None, 100 * S - 1, 9 * S, None), vec![]), 0);
    }
}
