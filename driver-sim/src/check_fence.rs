//! The fence checkers (`--fence`): a fence is part of its holder's use of the hold.
//!
//! * [`fence_holds`]: fences counted as holds, so `bounded-holders` sees no other holder's
//!   child start while a deposed holder's fence still runs (the same exception windows).
//! * `fence-after-child`: a fence runs only once its client's child is gone.
//! * `fence-in-lease`: a fence never runs past its session lease's expiry in etcd (one
//!   started after it, its host frozen till then, is killed at once).
//! * `fence-budget`: a fence is killed no sooner than its budget after it started.
//! * `fence-exit`: a successful fence's run ends 70; a failed or overrun one's ends 71
//!   and sends no delete or revoke (its keys expire with the lease).
//!
//! A fence whose wrapper was stopped or frozen while it ran is exempt: nothing can kill a
//! hook while its wrapper cannot run (the child has its shim; a hook has only its wrapper).
use crate::record::{FaultRecord, Group, HookRecord, Interval, Outcome};
use crate::verdict::Violation;
use conch_checkers::Kind;

/// The checker names, in report order.
pub const CHECKERS: [&str; 4] = ["fence-after-child", "fence-in-lease", "fence-budget", "fence-exit"];

/// The freeze-on-answer site freezes the whole host (and deletes its key): a freeze too.
const FREEZE_SITE: Kind = Kind::Site(crate::buggify::Site::FreezeOnAnswer.as_str());

/// Slack for a host's clock drift against simulated time.
const DRIFT_SLACK_NS: u64 = 1_000_000;

/// Whether `f`'s wrapper could not run at some point while it ran (or just before it
/// started, so it could not start it on time).
fn blocked(faults: &[FaultRecord], f: &HookRecord, before: u64) -> bool {
    faults.iter().any(|g| {
        g.client == Some(f.client)
            && (matches!(g.kind, Kind::Pause | Kind::Freeze) || g.kind == FREEZE_SITE)
            && g.from <= f.end
            && g.to + before > f.start
    })
}

fn fences(outcome: &Outcome) -> impl Iterator<Item = &HookRecord> {
    outcome.hooks.iter().filter(|h| h.kind == "fence" && h.status != "crashed")
}

/// Whether an operator took `f`'s hold away (a revoke or key delete) or froze its host
/// shortly before: others may acquire at once, so the fence, which must wait for the
/// child, may overlap them (the exception windows of `bounded-holders`, a budget longer).
fn taken_away(outcome: &Outcome, f: &HookRecord) -> bool {
    let o = &outcome.opts;
    let budget = o.hooks.map_or(0, |h| h.fence_budget.as_nanos() as u64);
    let hears = 2 * 2 * o.latency_us.1 * 1000 + 300_000_000;
    let reach = hears + 2 * (o.ttl + 2 * o.kill_after).as_nanos() as u64 + budget;
    outcome.faults.iter().any(|g| {
        g.client == Some(f.client)
            && (matches!(g.kind, Kind::Revoke | Kind::KeyDelete | Kind::Freeze) || g.kind == FREEZE_SITE)
            && g.from <= f.end
            && g.to + reach >= f.start
    })
}

/// The fences of `group` as holds, for `bounded-holders` (aside those whose wrapper could
/// not run while they did, or whose hold an operator took away).
pub fn fence_holds(outcome: &Outcome, group: Group) -> Vec<Interval> {
    fences(outcome)
        .filter(|f| f.group == group && !blocked(&outcome.faults, f, 0) && !taken_away(outcome, f))
        .map(|f| Interval {
            client: f.client,
            rev: f.rev,
            pid: 0,
            start: f.start,
            end: Some(f.end),
            tick: Some("fence".into()),
            signalled: false,
        })
        .collect()
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

/// Runs the fence checkers (nothing to check without hooks).
pub fn check_fences(outcome: &Outcome, v: &mut Vec<Violation>) {
    let Some(hooks) = outcome.opts.hooks else { return };
    let budget = hooks.fence_budget.as_nanos() as u64;
    let reach = 2 * outcome.opts.ttl.as_nanos() as u64 + outcome.opts.kill_after.as_nanos() as u64 + 1_000_000_000;
    let mut say = |checker: &'static str, detail: String, at: u64| {
        v.push(Violation { checker, detail, at: Some(at) });
    };
    for f in fences(outcome) {
        let who = format!("client {} rev {} fence {}..{}", f.client, f.rev, secs(f.start), secs(f.end));
        let end = |iv: &Interval| iv.end_or(outcome.end_at);
        let child = outcome.intervals.iter().find(|iv| {
            // One client is in one contest: its intervals are its fence's group's.
            iv.client == f.client && iv.start < f.end && end(iv) > f.start && end(iv) > iv.start
        });
        if let Some(iv) = child {
            let child = format!("rev {} {}..{}", iv.rev, secs(iv.start), secs(end(iv)));
            say("fence-after-child", format!("{who} ran beside its own child {child}"), f.start.max(iv.start));
        }
        // A fence that starts after its lease expired (its host was frozen) must be killed
        // at once; one that starts before must end by the expiry.
        let past = f.lease_expired.filter(|at| f.end > (*at).max(f.start) + DRIFT_SLACK_NS);
        if let Some(at) = past.filter(|_| !blocked(&outcome.faults, f, 0)) {
            say("fence-in-lease", format!("{who} ran past its session lease's expiry at {}", secs(at)), f.end);
        }
        let killed = f.status == "signal 9";
        let slack = budget / 50 + DRIFT_SLACK_NS;
        if killed && f.end - f.start + slack < budget && !blocked(&outcome.faults, f, budget + reach) {
            say(
                "fence-budget",
                format!("{who} killed after {} of its {} budget", secs(f.end - f.start), secs(budget)),
                f.end,
            );
        }
        // One that ended by itself in time is a success, unless its wrapper, stopped, saw
        // its deadline pass before its exit (then either code is right).
        let in_time = f.end - f.start <= budget && !blocked(&outcome.faults, f, 0);
        let want = match (f.ok, in_time) {
            (false, _) => Some(71),
            (true, true) => Some(70),
            (true, false) => None,
        };
        if let Some(code) = f.run_exit.filter(|c| want.is_some_and(|w| w != *c)) {
            say("fence-exit", format!("{who} ({}): its run ended {code}, not {want:?}", f.status), f.end);
        }
        if !f.ok && !f.writes_after.is_empty() {
            say(
                "fence-exit",
                format!("{who} failed ({}) yet its run sent {}", f.status, f.writes_after.join(", ")),
                f.end,
            );
        }
    }
}
