//! `loss-cause`: no lost hold without a cause. Every loss a wrapper logs (`lost`, or a
//! hold that gave up on etcd, `etcd-failed`) must be explained, by the truth at that
//! instant and by the fault log:
//!
//! * `key-deleted` while the hold's key (its create revision) is still in the store, or
//!   `lease-gone` while its lease still lives short of its TTL, is a loss of a key or a
//!   lease that was never lost;
//! * `deadline-passed` before the deadline the renewals its wrapper had handled promise
//!   (send instant + TTL of the latest answered grant or keepalive): before `D − kill_after
//!   − margin` for a holder, before `D − margin` for a session that only waits (the
//!   session's rule for waiters, 03-core), is a deadline counted wrong;
//! * `etcd-failed` (the hold's retries exhausted) needs [`ATTEMPTS_MAX`] failed calls at
//!   least [`RETRY_DELAY`] apart, all while a fault of that client or of etcd was on;
//! * and every loss needs a fault of its client or of etcd as a whole (the plan's
//!   faults and pairings, fault-site firings, member faults, revokes, key deletes,
//!   freezes; not a compaction or a wall-clock step, which cost no hold) within
//!   two TTLs, the kill grace and 2 s before it (the reach `failover` allows a member
//!   fault), else it came from nowhere.
//!
//! Step-downs and pre-emptions are not losses (the runner logs no `lost` for them).
use conch_checkers::Kind;
use conch_core::hold::{ATTEMPTS_MAX, RETRY_DELAY};

use crate::record::{FaultRecord, LossRecord, Outcome};
use crate::verdict::{secs, violation, Violation};

/// The checker's name.
pub const CHECKER: &str = "loss-cause";

/// Slack for clock drift between a host and etcd across one TTL and timer rounding (ns).
const SLACK_NS: u64 = 50_000_000;

/// Faults that can cost a client its hold: of that client, or of etcd as a whole.
fn can_cost(f: &FaultRecord, client: usize) -> bool {
    f.client.is_none_or(|c| c == client) && f.kind != Kind::Compact && !f.kind.is_clock()
}

/// Runs the checker.
pub fn check_losses(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    let ns = |d: std::time::Duration| d.as_nanos() as u64;
    let (ttl, kill_after) = (ns(opts.ttl), ns(opts.kill_after));
    let margin = ns(conch_core::session::MARGIN_BASE) + ttl / u64::from(conch_core::session::MARGIN_TTL_DIVISOR);
    let fence = opts.hooks.map_or(0, |h| ns(h.fence_budget));
    let reach = 2 * ttl + kill_after + 2_000_000_000;
    for loss in &outcome.losses {
        let what = |why: String| {
            let detail = format!("client {} lost its hold ({}) at {}: {why}", loss.client, loss.reason, secs(loss.at));
            violation(CHECKER, detail).at(loss.at)
        };
        let t = &loss.truth;
        match loss.reason.as_str() {
            "key-deleted" if t.key_present => v.push(what("its key is still in the store".into())),
            "lease-gone" if t.lease_alive => v.push(what("its lease still lives".into())),
            "deadline-passed" => {
                let Some(d) = t.renewed_until else { continue };
                // A waiter about to acquire checks term_at itself (the runner, before a child).
                let holding = t.acquired || t.ranked_in;
                let lost_at = if holding { d.saturating_sub(kill_after + margin + fence) } else { d - margin };
                if loss.at + SLACK_NS < lost_at {
                    let role = if holding { "holder" } else { "waiter" };
                    let why = format!(
                        "its renewals promised the lease until {}, so a {role} loses it at {} at the earliest",
                        secs(d),
                        secs(lost_at)
                    );
                    v.push(what(why));
                }
            }
            "etcd-failed" => {
                let need = ns(RETRY_DELAY) * u64::from(ATTEMPTS_MAX);
                let covered = covered_before(&outcome.faults, loss);
                if covered < need {
                    let why = format!(
                        "giving up takes {ATTEMPTS_MAX} failed calls over {} of faults, and faults of it or of etcd covered only {} before",
                        secs(need),
                        secs(covered)
                    );
                    v.push(what(why));
                }
            }
            _ => {}
        }
        let cause =
            outcome.faults.iter().any(|f| can_cost(f, loss.client) && f.from <= loss.at && f.to + reach >= loss.at);
        if !cause {
            v.push(what(format!("no fault of that client or of etcd in the {} before it", secs(reach))));
        }
    }
}

/// How long before `loss` the faults that can cost its client a hold were on without a
/// break (ns).
fn covered_before(faults: &[FaultRecord], loss: &LossRecord) -> u64 {
    let mut spans: Vec<(u64, u64)> = faults
        .iter()
        .filter(|f| can_cost(f, loss.client) && f.from <= loss.at)
        .map(|f| (f.from, f.to.min(loss.at)))
        .collect();
    spans.sort_unstable();
    let mut from = loss.at;
    // Walk back from the loss: each span that reaches the covered part extends it.
    for _ in 0..spans.len() {
        let Some(earliest) = spans.iter().filter(|(a, b)| *a < from && *b + SLACK_NS >= from).map(|(a, _)| *a).min()
        else {
            break;
        };
        from = earliest;
    }
    loss.at - from
}
