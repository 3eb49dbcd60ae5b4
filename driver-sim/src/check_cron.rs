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
//!   down, a member fault, a cut, an attempt of the late-apply site) or stepped the clock — then the claim is not judged.
//!   Nor is a tick skipped as late when its daemon reached it within that limit (the
//!   wall clock its machine read, exact).
//! * `cron-ticks`: every tick a daemon claimed, skipped or reached late is a tick of its
//!   job's schedule.
//!
//! Expected ticks and periods come from an oracle of their own ([`job_ticks`]): the
//! multiples of the period for `@every`, a minute-by-minute scan of a naive reading of the
//! expression (`fuzzing::cron_oracle`) for the others — never the core's matcher, so a
//! matcher that is wrong shows as ticks claimed that are none, or ticks never claimed
//! (`cron-liveness`).
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono_tz::Tz;
use conch_core::conchd::{JITTER_MAX_MS, LATE_MAX};
use conch_core::cron::{rfc3339, tick_of, RunResult};

use crate::fuzzing::cron_oracle::Naive;
use crate::host::EPOCH_MS;
use crate::options::SimJob;
use crate::record::{Group, Interval, Outcome};
use crate::verdict::{excuses, secs, violation, Violation};

/// The ticks of `job` in `(after, to]` (Unix s), by brute force (see the module doc);
/// `None`: no opinion (an expression the naive reading refuses, a zone's offset moving).
pub fn job_ticks(job: &SimJob, after: i64, to: i64) -> Option<Vec<i64>> {
    match job.cron {
        None => {
            let period = i64::from(job.every_s.max(1));
            let first = (after.div_euclid(period) + 1) * period;
            Some((0..).map(|k| first + k * period).take_while(|t| *t <= to).collect())
        }
        Some(expr) => Naive::parse(expr)?.ticks(job.zone().parse::<Tz>().ok()?, after, to),
    }
}

/// How far from the run a tick may lie and still be scanned (a clock stepped a few
/// minutes either way stays inside).
const SCAN_MARGIN_S: i64 = 86_400;
/// The days scanned for a cron expression's shortest gap between ticks.
const GAP_SCAN_DAYS: i64 = 8;

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

/// The late-tick limit of `job`: `max(min(60 s, period / 2), the jitter)`, the period
/// being the shortest gap between two of its ticks, scanned a day at a time from time
/// zero for a cron expression (every gap of one is a whole number of minutes, and only a
/// one-minute gap brings the limit under 60 s).
pub fn late_limit_ms(job: &SimJob) -> i64 {
    let period_s = match job.cron {
        None => u64::from(job.every_s),
        Some(_) => {
            let start = EPOCH_MS / 1000;
            let gap = (0..GAP_SCAN_DAYS).find_map(|d| {
                let ticks = job_ticks(job, start + d * 86_400 - 60, start + (d + 1) * 86_400)?;
                ticks.windows(2).any(|w| w[1] - w[0] == 60).then_some(60)
            });
            gap.unwrap_or(120)
        }
    };
    (LATE_MAX.min(Duration::from_secs(period_s) / 2).as_millis() as i64).max(JITTER_MAX_MS as i64)
}

/// Every tick decided (claimed, lost, skipped for overlap) or skipped as late is a tick
/// of its job's schedule.
pub fn schedule_ticks(outcome: &Outcome, v: &mut Vec<Violation>) {
    let run_from = EPOCH_MS / 1000 - SCAN_MARGIN_S;
    let run_to = (EPOCH_MS + (outcome.end_at / 1_000_000) as i64) / 1000 + SCAN_MARGIN_S;
    for job in &outcome.opts.jobs {
        let claims = outcome.claims.iter().filter(|c| c.job == job.name).map(|c| (c.client, c.tick, c.at, "claimed"));
        let skips =
            outcome.late_skips.iter().filter(|s| s.job == job.name).map(|s| (s.client, s.tick, s.at, "skipped"));
        let seen: Vec<(usize, i64, u64, &str)> = claims.chain(skips).collect();
        let Some((lo, hi)) = seen
            .iter()
            .map(|s| s.1)
            .fold(None, |m: Option<(i64, i64)>, t| Some(m.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t)))))
        else {
            continue;
        };
        let (lo, hi) = (lo.max(run_from), hi.min(run_to));
        let Some(ticks) = job_ticks(job, lo - 1, hi) else { continue };
        let ticks: BTreeSet<i64> = ticks.into_iter().collect();
        for (client, tick, at, what) in seen.into_iter().filter(|s| !ticks.contains(&s.1)) {
            v.push(
                violation(
                    "cron-ticks",
                    format!(
                        "client {client} {what} {}@{tick} ({}), no tick of {:?} in {}",
                        job.name,
                        rfc3339(tick),
                        job.schedule(),
                        job.zone()
                    ),
                )
                .at(at),
            );
        }
    }
}

/// No tick claimed later than its limit on the claimer's clock.
pub fn late_ticks(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    // Two round trips at the slowest latency, and slack for the event order.
    let slack_ms = (4 * opts.latency_us.1 / 1000) as i64 + 300;
    let look_back = 5_000_000_000u64;
    // Calls delayed, or the claimer's clock stepped between the tick and the claim.
    // The late-apply site's attempt timed out before its retry: a delayed call too.
    let late_apply = conch_checkers::Kind::Site(crate::buggify::Site::LateApply.as_str());
    let delaying = |kind: conch_checkers::Kind| kind.is_clock() || kind.delays_calls() || kind == late_apply;
    let mut limits: BTreeMap<String, i64> = BTreeMap::new();
    let mut limit_of = |job: &SimJob| *limits.entry(job.name.clone()).or_insert_with(|| late_limit_ms(job));
    for s in &outcome.late_skips {
        let Some(job) = opts.jobs.iter().find(|j| j.name == s.job) else { continue };
        let (late, limit) = (s.wall_ms - s.tick * 1000, limit_of(job));
        if late <= limit {
            v.push(
                violation(
                    "cron-late-tick",
                    format!(
                        "client {} skipped {}@{} as late though it reached it {late} ms late on its clock (limit {limit} ms for {:?}) at {}",
                        s.client,
                        s.job,
                        s.tick,
                        job.schedule(),
                        secs(s.at)
                    ),
                )
                .at(s.at),
            );
        }
    }
    for c in outcome.claims.iter().filter(|c| c.won && !c.ghost) {
        let Some(job) = opts.jobs.iter().find(|j| j.name == c.job) else { continue };
        let late = c.wall_ms - c.tick * 1000;
        // No limit is below the jitter: a claim within it needs no scan for its limit.
        if late <= JITTER_MAX_MS as i64 + slack_ms {
            continue;
        }
        let limit = limit_of(job);
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
                        "client {} claimed {}@{} {late} ms late on its clock (limit {limit} ms for {:?}) at {}",
                        c.client,
                        c.job,
                        c.tick,
                        job.schedule(),
                        secs(c.at)
                    ),
                )
                .at(c.at),
            );
        }
    }
}
