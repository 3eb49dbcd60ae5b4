//! `retry-pacing`: a wrapper facing a refusing or silent etcd keeps to the pace the core's
//! backoff rules promise, neither hammering etcd nor giving up on it for longer. Every
//! bound is the documented rule's, on the wrapper host's monotonic clock (the clock the
//! core's delays count on), with a few milliseconds of slack for timer rounding:
//!
//! * the hold: a campaign request (put, rank read, yield) refused at `t` for the n-th time
//!   running is tried again no sooner than `t + min(RETRY_DELAY · 2^(n−1), RETRY_DELAY_MAX)`
//!   (`hold.rs`, 200 ms doubling to 1 s);
//! * the service: a grant refused at `t` is followed by the next cycle's grant within
//!   `ETCD_RETRY_BASE ..= ETCD_RETRY_MAX` of `t` (100 ms to 1 s, `service.rs`), unless the
//!   wrapper was stopped or frozen meanwhile; and the pause grows — decorrelated jitter,
//!   reset only once a session is granted — so [`CHAIN_MIN`] refused grants in a row never
//!   all wait under three times the base (a chance under 10⁻⁷ per chain for the real
//!   jitter, certain when it resets every cycle);
//! * the session: a keepalive that no renewal answers within
//!   `retry_after = clamp(budget / 8, 100 ms, 1 s)` (`budget = TTL − kill_after − fence −
//!   margin`, `session.rs`) is followed by the next one exactly `retry_after` after it, and
//!   one never comes sooner unless an answer came between (a renewal, or the rank read
//!   that acquired: the holder's cadence counts from the last renewal); a renewed one is
//!   followed within the waiter's cadence `min(TTL / 3, budget − 2 · retry_after)` (never
//!   under the holder's `budget / 3`), the longest a session renews at.
use std::collections::BTreeMap;
use std::time::Duration;

use conch_core::hold::{RETRY_DELAY, RETRY_DELAY_MAX};
use conch_core::service::{ETCD_RETRY_BASE, ETCD_RETRY_MAX};
use conch_core::session::{MARGIN_BASE, MARGIN_TTL_DIVISOR};

use crate::record::{Answer, CallRecord, Outcome};
use crate::verdict::{secs, violation, wrapper_stopped, Violation};

/// The checker's name.
pub const CHECKER: &str = "retry-pacing";

/// Refused grants in a row after which the service's pause must have grown.
pub const CHAIN_MIN: usize = 22;

/// Slack for timer rounding between the host's clock and simulated time (ns).
const SLACK_NS: u64 = 5_000_000;

/// The session's shortest and longest keepalive retry (its module doc).
const KEEPALIVE_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// The hold's campaign requests: the ones its retry rule paces.
const HOLD_KINDS: [&str; 4] = ["put-if-absent", "put-if-absent-marked", "ranges", "yield"];

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Runs the checker.
pub fn check_pacing(outcome: &Outcome, v: &mut Vec<Violation>) {
    let mut runs: BTreeMap<(usize, u64), Vec<&CallRecord>> = BTreeMap::new();
    for c in &outcome.calls {
        runs.entry((c.client, c.run.0)).or_default().push(c);
    }
    let blocked = |client: usize, from: u64, to: u64| wrapper_stopped(&outcome.faults, client, from, to);
    let fence = outcome.opts.hooks.map_or(Duration::ZERO, |h| h.fence_budget);
    let pace = keepalive_pace(outcome.opts.ttl, outcome.opts.kill_after + fence);
    for calls in runs.values() {
        holds(calls, v);
        grants(calls, &blocked, v);
        keepalives(calls, pace, &blocked, v);
    }
}

fn report(c: &CallRecord, why: String) -> Violation {
    violation(CHECKER, format!("client {} {} sent at {}: {why}", c.client, c.kind, secs(c.sent_at))).at(c.sent_at)
}

/// The hold's rule, per cycle: after the n-th refusal running, the same request waits.
fn holds(calls: &[&CallRecord], v: &mut Vec<Violation>) {
    let mut cycles: BTreeMap<u64, Vec<&CallRecord>> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.kind != "keepalive") {
        cycles.entry(c.run.1).or_default().push(c);
    }
    for cycle in cycles.values() {
        // Answers in the order the wrapper handled them: a success resets the count.
        let mut answered: Vec<(u64, Answer, usize)> =
            cycle.iter().enumerate().filter_map(|(k, c)| c.answer.map(|(at, a)| (at, a, k))).collect();
        answered.sort_unstable_by_key(|(at, _, k)| (*at, *k));
        let mut refused = 0u32;
        for (at, answer, k) in answered {
            if answer != Answer::Unavailable {
                refused = 0;
                continue;
            }
            if !HOLD_KINDS.contains(&cycle[k].kind) {
                continue;
            }
            refused += 1;
            let wait = hold_wait(refused);
            let next = cycle.iter().find(|c| c.kind == cycle[k].kind && c.sent > at);
            if let Some(next) = next.filter(|n| n.sent + SLACK_NS < at + wait) {
                let why = format!(
                    "{} after refusal {refused} running (handled at {}): the hold waits {}",
                    secs(next.sent - at),
                    secs(at),
                    secs(wait)
                );
                v.push(report(next, why));
            }
        }
    }
}

/// The hold's documented wait after its `refused`-th refusal running (ns).
fn hold_wait(refused: u32) -> u64 {
    ns(RETRY_DELAY.saturating_mul(1 << refused.saturating_sub(1).min(8)).min(RETRY_DELAY_MAX))
}

/// The service's rule: a refused grant's next cycle grants within the etcd pace, which grows.
fn grants(calls: &[&CallRecord], blocked: &dyn Fn(usize, u64, u64) -> bool, v: &mut Vec<Violation>) {
    let grants: Vec<&CallRecord> = calls.iter().copied().filter(|c| c.kind == "grant").collect();
    let mut chain: Vec<u64> = Vec::new();
    for pair in grants.windows(2) {
        let (failed, next) = (pair[0], pair[1]);
        let Some((at, Answer::Unavailable)) = failed.answer else {
            chain.clear();
            continue;
        };
        if next.sent < at {
            continue;
        }
        let gap = next.sent - at;
        let (low, high) = (ns(ETCD_RETRY_BASE), ns(ETCD_RETRY_MAX));
        if gap + SLACK_NS < low || (gap > high + SLACK_NS && !blocked(failed.client, failed.sent_at, next.sent_at)) {
            let why = format!(
                "{} after the refused grant (handled at {}): etcd's pace is {}..{}",
                secs(gap),
                secs(at),
                secs(low),
                secs(high)
            );
            v.push(report(next, why));
        }
        chain.push(gap);
        if chain.len() >= CHAIN_MIN && chain.iter().all(|g| *g <= 3 * low + SLACK_NS) {
            let why = format!(
                "{} refused grants running all waited under {}: the pause never grew",
                chain.len(),
                secs(3 * low)
            );
            v.push(report(next, why));
            chain.clear();
        }
    }
}

/// The session's keepalive retry and its longest renewal cadence (a waiter's), from the
/// documented rules (`None`: no such session).
fn keepalive_pace(ttl: Duration, kill_after: Duration) -> Option<(u64, u64)> {
    let margin = MARGIN_BASE + ttl / MARGIN_TTL_DIVISOR;
    let budget = ttl.checked_sub(kill_after + margin)?;
    let retry = (budget / 8).clamp(KEEPALIVE_RETRY.0, KEEPALIVE_RETRY.1);
    let waiting = (ttl / 3).min(budget.saturating_sub(2 * retry)).max(budget / 3);
    Some((ns(retry), ns(waiting)))
}

/// The session's rule: an unrenewed keepalive is retried `retry_after` later, never sooner.
fn keepalives(
    calls: &[&CallRecord],
    pace: Option<(u64, u64)>,
    blocked: &dyn Fn(usize, u64, u64) -> bool,
    v: &mut Vec<Violation>,
) {
    let Some((retry, cadence)) = pace else { return };
    let mut leases: BTreeMap<i64, Vec<&CallRecord>> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.kind == "keepalive") {
        leases.entry(c.lease.unwrap_or(0)).or_default().push(c);
    }
    for sends in leases.values() {
        for pair in sends.windows(2) {
            let (first, next) = (pair[0], pair[1]);
            let renewed = |to: u64| {
                sends.iter().any(|c| matches!(c.answer, Some((at, Answer::Ok)) if at >= first.sent && at <= to))
            };
            // A renewal, or an acquisition (on a rank read's answer: the holder's cadence
            // counts from the last renewal), may bring the next keepalive forward.
            let heard = calls.iter().any(|c| c.answer.is_some_and(|(at, _)| at >= first.sent && at <= next.sent));
            let gap = next.sent - first.sent;
            let early = gap + SLACK_NS < retry && !heard;
            let late = gap > retry + SLACK_NS
                && !renewed(first.sent + retry + SLACK_NS)
                && !blocked(first.client, first.sent_at, next.sent_at);
            // Renewed: the next one is due a cadence after it (or at once, on a late answer).
            let overdue = matches!(first.answer, Some((at, Answer::Ok)) if next.sent > (first.sent + cadence).max(at) + SLACK_NS)
                && !blocked(first.client, first.sent_at, next.sent_at);
            let rule = if early || late {
                format!("unrenewed: the session retries {} after", secs(retry))
            } else if overdue {
                format!("renewed: a session renews every {} at most", secs(cadence))
            } else {
                continue;
            };
            let why = format!("{} after the keepalive before it (sent at {}), {rule}", secs(gap), secs(first.sent_at));
            v.push(report(next, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_waits_are_the_holds() {
        let waits: Vec<u64> = (1..=5).map(hold_wait).collect();
        assert_eq!(waits, [200_000_000, 400_000_000, 800_000_000, 1_000_000_000, 1_000_000_000]);
        for n in 1..=ATTEMPTS {
            assert_eq!(hold_wait(n), ns(conch_core::hold::retry_delay(n)), "refusal {n}");
        }
    }

    const ATTEMPTS: u32 = 40;

    #[test]
    fn the_documented_pace_is_the_sessions() {
        // The session's module doc: at TTL 10 s, kill-after 5 s, a retry after 594 ms and
        // a waiter's renewal every 3.33 s.
        assert_eq!(keepalive_pace(Duration::from_secs(10), Duration::from_secs(5)), Some((593_750_000, 3_333_333_333)));
        for ttl_s in 2..=30 {
            for kill_ms in [0, 500, 1_000, 2_500, 5_000, 10_000] {
                let (ttl, kill_after) = (Duration::from_secs(ttl_s), Duration::from_millis(kill_ms));
                let Ok(t) = conch_core::Timings::derive(ttl, kill_after) else { continue };
                let want = (ns(t.retry_after), ns(t.waiting_interval));
                assert_eq!(keepalive_pace(ttl, kill_after), Some(want), "ttl {ttl_s} s, kill-after {kill_ms} ms");
            }
        }
    }
}
