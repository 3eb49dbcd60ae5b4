//! The cron rules the other checkers cannot see (issue 14: a mutant of each passed 1 000
//! seeds):
//!
//! * `cron-skip-overlap`: runs of different ticks of an `--overlap skip` job never
//!   overlap, outside the fault windows of `bounded-holders` (a freeze, a revoke).
//! * `cron-late-tick`: a tick is never claimed when the daemon reached it later than
//!   `max(min(60 s, period/2), the jitter)` on its own clock
//!   ([`conch_core::conchd::LATE_MAX`]). The record carries the daemon's wall clock when
//!   etcd applied the claim; between reaching the tick and that instant lie two round trips
//!   (a claim-lease grant, the claim) unless a fault delayed the calls (etcd stalled or
//!   down, a member fault, a cut) or stepped the clock — then the claim is not judged.
use std::time::Duration;

use conch_core::conchd::{JITTER_MAX_MS, LATE_MAX};
use conch_core::cron::{rfc3339, tick_of, RunResult};

use crate::record::{Group, Interval, Outcome};
use crate::verdict::{excuses, secs, violation, Violation};

/// Runs of different ticks of one skip job never overlap.
pub fn skip_overlap(outcome: &Outcome, v: &mut Vec<Violation>) {
    let spans = excuses(&outcome.opts, &outcome.faults);
    for job in outcome.opts.jobs.iter().filter(|j| j.skip_overlap) {
        let prefix = format!("{}@", job.name);
        let end = |iv: &Interval| iv.end_or(outcome.end_at);
        let label = |iv: &Interval| iv.tick.clone().unwrap_or_default();
        let mut runs: Vec<&Interval> =
            outcome.of(Group::Cron).filter(|iv| label(iv).starts_with(&prefix) && end(iv) > iv.start).collect();
        runs.sort_by_key(|iv| (iv.start, end(iv)));
        for (k, a) in runs.iter().enumerate() {
            for b in runs[k + 1..].iter().take_while(|b| b.start < end(a)) {
                let (from, to) = (b.start, end(a).min(end(b)));
                let covered = |c: usize| spans.iter().any(|(sc, f, u)| *sc == c && *f <= from && to <= *u);
                // No clock-step excuse: conchd never re-claims a tick it runs (claims.rs).
                if a.tick != b.tick && !covered(a.client) && !covered(b.client) {
                    v.push(
                        violation(
                            "cron-skip-overlap",
                            format!(
                                "{} (client {}, rev {}) started at {} while {} (client {}, rev {}) ran until {}",
                                label(b),
                                b.client,
                                b.rev,
                                secs(b.start),
                                label(a),
                                a.client,
                                a.rev,
                                secs(end(a))
                            ),
                        )
                        .at(b.start),
                    );
                }
            }
        }
    }
}

/// What is wrong with the result `value` of `key`, as `conch cron history` reads it: its
/// tick is the key's, its outcome one of four, `started` RFC 3339 with milliseconds, and
/// `duration` in the form of its size (`350ms` below 1 s, `4.2s` below a minute, `12m3s`).
pub fn bad_result(key: &str, value: &[u8]) -> Option<String> {
    let r: RunResult = match serde_json::from_slice(value) {
        Ok(r) => r,
        Err(e) => return Some(format!("not a result: {e}")),
    };
    let tick = tick_of(key).map(rfc3339);
    let started = chrono::DateTime::parse_from_rfc3339(&r.started).ok();
    let millis = r.started.rsplit_once('.').is_some_and(|(_, f)| f.len() == 4 && f.ends_with('Z'));
    let size = conch_core::duration::parse(&r.duration).ok();
    let form = size.is_some_and(|d| {
        let ms = r.duration.strip_suffix("ms").is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        let tenths = r.duration.strip_suffix('s').and_then(|n| n.split_once('.')).is_some_and(|(_, f)| f.len() == 1);
        // 59.96 s prints as `60.0s`.
        match (ms, tenths) {
            (true, _) => d < Duration::from_secs(1),
            (_, true) => d >= Duration::from_secs(1) && d <= Duration::from_secs(60),
            _ => d >= Duration::from_secs(60) && !r.duration.contains('.'),
        }
    });
    if tick.as_deref() != Some(r.tick.as_str()) {
        Some(format!("tick {} in a result of {tick:?}", r.tick))
    } else if !["exited", "signaled", "lost", "timeout"].contains(&r.outcome.as_str()) {
        Some(format!("outcome {:?}", r.outcome))
    } else if started.is_none() || !millis {
        Some(format!("started {:?} is not RFC 3339 with milliseconds", r.started))
    } else if !form {
        Some(format!("duration {:?} is not in the form of its size", r.duration))
    } else {
        None
    }
}

/// The late-tick limit of a job of period `every_s`, as conchd computes it.
pub fn late_limit_ms(every_s: u32) -> i64 {
    let period = Duration::from_secs(every_s.into());
    (LATE_MAX.min(period / 2).as_millis() as i64).max(JITTER_MAX_MS as i64)
}

/// No tick claimed later than its limit on the claimer's clock.
pub fn late_ticks(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    // Two round trips at the slowest latency, and slack for the event order.
    let slack_ms = (4 * opts.latency_us.1 / 1000) as i64 + 300;
    let look_back = 5_000_000_000u64;
    // Calls delayed, or the claimer's clock stepped between the tick and the claim.
    let delaying = |kind: conch_checkers::Kind| kind.is_clock() || kind.delays_calls();
    for c in outcome.claims.iter().filter(|c| c.won) {
        let Some(job) = opts.jobs.iter().find(|j| j.name == c.job) else { continue };
        let limit = late_limit_ms(job.every_s);
        let late = c.wall_ms - c.tick * 1000;
        if late <= limit + slack_ms {
            continue;
        }
        let since = c.at.saturating_sub(look_back + limit.max(0) as u64 * 1_000_000);
        let excused = outcome
            .faults
            .iter()
            .any(|f| f.client.is_none_or(|x| x == c.client) && delaying(f.kind) && f.from <= c.at && f.to >= since);
        if !excused {
            v.push(
                violation(
                    "cron-late-tick",
                    format!(
                        "client {} claimed {}@{} {late} ms late on its clock (limit {limit} ms for @every {}s) at {}",
                        c.client,
                        c.job,
                        c.tick,
                        job.every_s,
                        secs(c.at)
                    ),
                )
                .at(c.at),
            );
        }
    }
}
