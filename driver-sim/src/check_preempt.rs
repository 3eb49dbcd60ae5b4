//! The `preempt` checker (`--priorities`, with `--preempt` drawn on some candidates):
//!
//! * a pre-emption asks only a holder of a **strictly lower** priority (equal never
//!   pre-empts), whatever the faults: the candidate's view is a linearizable read, and a
//!   priority never changes for a client, so a request naming a holder not lower is the
//!   rule's bug, not a fault's;
//! * the office's next child to start after a request that found its holder's key still
//!   there is the asking candidate's, or one of a priority at least its own (a higher one
//!   that came, or an equal one ahead of it in the queue), within the hand-over bound
//!   (the kill grace, the on-lose hook's timeout, a few round trips per yield) — unless a
//!   fault of etcd, of the asker, of the holder or of another office candidate (a frozen
//!   waiter ahead holds up the yields) lies within a TTL of it, as `step-down` and
//!   `priority` excuse theirs. Requests whose bound reaches the shutdown are not judged.
use crate::record::{Group, Outcome, PreemptRecord};
use crate::verdict::{secs, violation, Violation};

/// Slack for the resign, the wake-ups and one yield per lower key ahead (ns).
const HANDOVER_SLACK_NS: u64 = 3_000_000_000;

/// The hand-over bound after a request (ns).
fn bound(outcome: &Outcome) -> u64 {
    let opts = &outcome.opts;
    let hook = opts.hooks.filter(|h| h.on_lose).map_or(0, |_| crate::options::SimHooks::TIMEOUT.as_nanos() as u64);
    opts.kill_after.as_nanos() as u64 + hook + HANDOVER_SLACK_NS
}

/// Whether `p`'s hand-over is judged: its holder's key was there, its bound ends before
/// the shutdown, and no fault explains a delay.
pub(crate) fn judged(outcome: &Outcome, p: &PreemptRecord) -> bool {
    let opts = &outcome.opts;
    let (ttl, bound) = (opts.ttl.as_nanos() as u64, bound(outcome));
    let office_client = |c: usize| c < opts.office_clients;
    p.live
        && p.at + bound < outcome.stop_at
        && !outcome
            .faults
            .iter()
            .any(|f| f.client.is_none_or(office_client) && f.from <= p.at + bound + ttl && f.to + ttl >= p.at)
}

/// Runs the checker.
pub fn preempts(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    let bound = bound(outcome);
    for p in &outcome.preempts {
        if let Some(target) = p.target.filter(|_| p.target_priority >= p.priority) {
            let detail = format!(
                "office client {} (priority {}) asked client {target} (token {}, priority {}) to step down at {}: not a lower priority",
                p.client,
                p.priority,
                p.token,
                p.target_priority,
                secs(p.at)
            );
            v.push(violation("preempt", detail).at(p.at));
        }
        if !judged(outcome, p) {
            continue;
        }
        let next = outcome.of(Group::Office).filter(|iv| iv.start > p.at).min_by_key(|iv| iv.start);
        let fine = next.is_some_and(|n| {
            n.start <= p.at + bound && (n.client == p.client || opts.priority(n.client) >= p.priority)
        });
        if !fine {
            let got = next.map_or_else(
                || "no office child started".to_string(),
                |n| format!("client {} (priority {}) started at {}", n.client, opts.priority(n.client), secs(n.start)),
            );
            let detail = format!(
                "office client {} (priority {}) asked the holder of token {} to step down at {}; within {}: {got}",
                p.client,
                p.priority,
                p.token,
                secs(p.at),
                secs(bound)
            );
            v.push(violation("preempt", detail).at(p.at + bound));
        }
    }
}
