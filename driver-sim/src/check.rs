//! The checkers: the guarantees of `00-overview.md` over a run's records.
//!
//! * `bounded-holders`: never more than N children of a contest at once, except inside
//!   the exception windows computed from the fault log (an administrative revoke or key
//!   delete, a whole-host freeze) — and those windows close.
//! * `fencing`: an office's tokens strictly increase across successive holders; a
//!   semaphore never hands out one token twice; every token is the create revision of the
//!   holder's own key when its child starts.
//! * `cron-skip-overlap`, `cron-late-tick`: see [`crate::check_cron`].
//! * `fifo`: a child starts only when fewer than N keys of its contest are older.
//! * `convergence`: after the last fault, within the bound, the N oldest contenders hold,
//!   stay holding, and every other client waits with a key.
//! * `cron-at-most-once`, `cron-liveness` (the ticks of each job from
//!   [`crate::check_cron::job_ticks`], an oracle apart from the core's matcher),
//!   `cron-no-past-tick`, `cron-ticks` (see [`crate::check_cron`]).
//! * `failover`: with a TTL of at least twice a call's budget, a minority of etcd members
//!   down, isolated or cut off never costs a holder its hold: a loss with only member faults around it (no other fault of that
//!   client or of etcd as a whole, no fault site, within two TTLs and the kill grace
//!   before it) means a client did not move to a live member in time.
//! * `loss-cause`: no lost hold without a cause: see [`crate::check_loss`].
//! * `exit-codes`: every wrapper's exit code is 01-cli's for its ending (one-shot
//!   wrappers and `--wait` are drawn in a third of the seeds): see [`crate::check_exit`].
//! * `retry-pacing`: a wrapper under a refusing or silent etcd keeps the pace the core's
//!   backoff rules document (hold retries, the service's etcd pause, keepalive retries and
//!   cadence): see [`crate::check_pace`].
//! * `kill-grace`: a stopped child gets `kill_after` between its SIGTERM and its SIGKILL,
//!   or until the session's `kill_at` when that comes first: see [`crate::check_grace`].
//! * `hand-off`: a crashed wrapper's child is gone within `kill_after`, and once a child's
//!   group is gone with its wrapper dead or its `term_at` passed, the shim's revoke frees
//!   the lease within a trip: see [`crate::check_handoff`].
//! * `restart-pacing`: a service waits between cycles as documented: after its child's own
//!   end the crash backoff (1 s, growing up to three times the last delay, 30 s cap; back
//!   to 1 s..3 s once a child stayed up 60 s), after etcd ended a cycle the session's pace
//!   (100 ms..1 s): see [`crate::check_restart`].
//! * `cron-running-key`: a tick skipped for overlap at `t` saw a running key; that key is
//!   the latest won claim's, and its run must still be on, or have ended (or, never
//!   started, been claimed) no longer than conchd's bound
//!   ([`conch_core::conchd::running_key_bound`]) before `t` — unless `t` is within the
//!   settle time of a fault, as for liveness. A ghost's run (a claim etcd applied after
//!   its daemon gave up on the attempt, the late-apply site) ends at that daemon's next
//!   skip of the job.
//! * `progress`: the event loop never spins at one simulated instant (a machine asking
//!   to be woken at an instant already past) nor passes the per-seed event limit.
//! * `fenced-writes` (with `--fenced-writes`): a guarded write from a holder's child lands
//!   exactly when, at that revision, the key of its token still held — read from the store,
//!   not from the guard: a deposed holder's write never lands, a holder's always does.
//! * `step-down` (with `--step-downs`): a leader asked to step down stops its child within
//!   the kill grace (plus a second for the request to reach it), unless a fault of that
//!   client or of etcd lies around the request.
//! * `priority` (with `--priorities`): an office child whose predecessor's child ended
//!   while a candidate of a higher priority already waited with a key (and still had it
//!   at the start) is a violation — unless a fault of etcd, of either of them, of the
//!   predecessor, or a revoke or key-delete of anyone (a stale marker), was on within a
//!   TTL before that waiter's key and the start, or a settle time (TTL + kill grace + 1 s)
//!   after.
//! * `watch`: the office's `--watch` clients print only real holders, in order, and catch
//!   up after the faults heal: see [`crate::check_watch`].
//! * `no-leaks`: after SIGTERM to every client: no keys, no session leases, no children,
//!   every wrapper and daemon exited.
//! * `on-acquire`: no child of a hold starts after that hold's `--on-acquire` hook failed
//!   (the hold is released instead, spec 01-cli).
//! * `cron-history`: after SIGTERM to every daemon, the cron history is all still there:
//!   the fire key of every tick won (a day on its claim lease: a tick stays claimed) and
//!   every result put (two weeks). No fault deletes them or revokes their leases. Every
//!   result reads as `conch cron history` shows it (`check_cron::bad_result`).
use std::collections::{BTreeMap, BTreeSet};

use crate::host::{sim_time_of_unix, EPOCH_MS};
use crate::options::SimOptions;
use conch_checkers::{Kind, Start, Window};

use crate::record::{FaultRecord, Group, Interval, Outcome};

pub use crate::verdict::Violation;
use crate::verdict::{excuses, secs, violation};

/// Every checker name, in report order.
pub const CHECKERS: [&str; 31] = [
    "progress",
    "bounded-holders",
    "fencing",
    "fifo",
    "convergence",
    "cron-at-most-once",
    "cron-skip-overlap",
    "cron-late-tick",
    "cron-liveness",
    "cron-no-past-tick",
    "cron-ticks",
    "failover",
    crate::check_loss::CHECKER,
    crate::check_exit::CHECKER,
    crate::check_pace::CHECKER,
    crate::check_grace::CHECKER,
    crate::check_handoff::CHECKER,
    crate::check_restart::CHECKER,
    "cron-running-key",
    "fenced-writes",
    "step-down",
    "priority",
    "preempt",
    "no-leaks",
    "watch",
    "cron-history",
    "on-acquire",
    crate::check_fence::CHECKERS[0],
    crate::check_fence::CHECKERS[1],
    crate::check_fence::CHECKERS[2],
    crate::check_fence::CHECKERS[3],
];

/// Reports kept per checker (the count of the rest is reported too).
pub const REPORTS_MAX: usize = 5;

/// Runs every checker.
pub fn check(outcome: &Outcome) -> Vec<Violation> {
    let all = raw_check(outcome);
    let mut kept: Vec<Violation> = Vec::new();
    for name in CHECKERS {
        let mine: Vec<Violation> = all.iter().filter(|v| v.checker == name).cloned().collect();
        let n = mine.len();
        kept.extend(mine.into_iter().take(REPORTS_MAX));
        if n > REPORTS_MAX {
            kept.push(violation(name, format!("... and {} more", n - REPORTS_MAX)));
        }
    }
    kept
}

fn raw_check(outcome: &Outcome) -> Vec<Violation> {
    let mut v = Vec::new();
    if let Some(why) = &outcome.stuck {
        // Nothing after the stop is meaningful: the other checkers would report noise.
        v.push(violation("progress", format!("the run stopped: {why}")));
        return v;
    }
    let opts = &outcome.opts;
    for group in [Group::Office, Group::Sema] {
        let max = opts.capacity(group);
        let intervals: Vec<Interval> = outcome.of(group).cloned().collect();
        if intervals.is_empty() {
            continue;
        }
        // A fence is part of its holder's use of the hold.
        let fences = crate::check_fence::fence_holds(outcome, group);
        let holds: Vec<Interval> = intervals.iter().chain(&fences).cloned().collect();
        bounded_holders(opts, ("bounded-holders", group.as_str()), max, &holds, &outcome.faults, &mut v);
        fencing(group, &intervals, &mut v);
    }
    // A key gone when its holder's child starts was deleted after the read that acquired
    // (no longer than the stale-answer bound and two round trips before) by an admin.
    let fresh = (conch_core::hold::STALE_ANSWER.as_nanos() as u64) + 4 * opts.latency_us.1 * 1000 + 200_000_000;
    for group in [Group::Office, Group::Sema] {
        let starts: Vec<Start> = outcome.promotions.iter().filter(|p| p.group == group).map(|p| p.start()).collect();
        let admin = |s: &Start| {
            outcome.faults.iter().any(|f| {
                f.client == Some(s.client)
                    && matches!(f.kind, Kind::Revoke | Kind::KeyDelete)
                    && f.from <= s.at
                    && f.from + fresh >= s.at
            })
        };
        for s in conch_checkers::fencing::keys_gone(&starts, admin) {
            let what = format!(
                "{} client {} started with token {} at {} but its key was gone",
                group.as_str(),
                s.client,
                s.rev,
                secs(s.at)
            );
            v.push(violation("fencing", what).at(s.at));
        }
        for (s, key_rev) in conch_checkers::fencing::tokens_not_key_revs(&starts) {
            let what = format!(
                "{} client {} started with token {} but its key's create revision is {key_rev}",
                group.as_str(),
                s.client,
                s.rev
            );
            v.push(violation("fencing", what).at(s.at));
        }
        let max = opts.capacity(group);
        for s in conch_checkers::fifo::queue_jumps(&starts, max) {
            let what = format!(
                "{} client {} started rev {} at {} while {} older keys existed (capacity {max})",
                group.as_str(),
                s.client,
                s.rev,
                secs(s.at),
                s.lower
            );
            v.push(violation("fifo", what).at(s.at));
        }
    }
    convergence(outcome, &mut v);
    cron(outcome, &mut v);
    crate::check_cron::skip_overlap(outcome, &mut v);
    crate::check_cron::late_ticks(outcome, &mut v);
    crate::check_cron::schedule_ticks(outcome, &mut v);
    failover(outcome, &mut v);
    crate::check_loss::check_losses(outcome, &mut v);
    crate::check_exit::check_exits(outcome, &mut v);
    crate::check_pace::check_pacing(outcome, &mut v);
    crate::check_grace::check_grace(outcome, &mut v);
    crate::check_handoff::check_handoff(outcome, &mut v);
    crate::check_restart::check_restarts(outcome, &mut v);
    running_keys(outcome, &mut v);
    fenced_writes(outcome, &mut v);
    step_downs(outcome, &mut v);
    priority(outcome, &mut v);
    crate::check_preempt::preempts(outcome, &mut v);
    leaks(outcome, &mut v);
    on_acquire(outcome, &mut v);
    crate::check_fence::check_fences(outcome, &mut v);
    crate::check_watch::check_watch(outcome, &mut v);
    v
}

/// The next office holder after a vacancy is of the highest priority then waiting.
fn priority(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    let (ttl, kill_after) = (opts.ttl.as_nanos() as u64, opts.kill_after.as_nanos() as u64);
    let settle = ttl + kill_after + 1_000_000_000;
    let office: Vec<&Interval> = outcome.of(Group::Office).collect();
    for p in outcome.promotions.iter().filter(|p| p.group == Group::Office && !p.higher.is_empty()) {
        // The predecessor: the office child that started last before this one.
        let Some(prev) = office
            .iter()
            .filter(|iv| iv.start < p.at || (iv.start == p.at && iv.client != p.client))
            .max_by_key(|iv| iv.start)
        else {
            continue;
        };
        let vacant = prev.end_or(outcome.end_at);
        if vacant > p.at {
            continue; // an overlap: bounded-holders' business
        }
        for &(waiter, q, born) in &p.higher {
            if born >= vacant {
                continue; // it came after the office fell vacant
            }
            let excused = outcome.faults.iter().any(|f| {
                let whom = f.client.is_none_or(|c| c == p.client || c == waiter || c == prev.client)
                    || matches!(f.kind, Kind::Revoke | Kind::KeyDelete);
                whom && f.from <= p.at && f.to + settle >= born.saturating_sub(ttl)
            });
            if !excused {
                v.push(
                    violation(
                        "priority",
                        format!(
                            "office client {} (priority {}) started rev {} at {} while client {waiter} of priority {q} waited since {} (vacant at {})",
                            p.client,
                            p.priority,
                            p.rev,
                            secs(p.at),
                            secs(born),
                            secs(vacant)
                        ),
                    )
                    .at(p.at),
                );
            }
        }
    }
}

/// Losses that only member faults can explain.
fn failover(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    // Finding a live member costs up to a call's budget (silent members each take their
    // share of it): only a TTL of at least twice that budget promises no loss to it.
    if opts.ttl < 2 * std::time::Duration::from_nanos(crate::world::CALL_TIMEOUT_NS) {
        return;
    }
    let reach = 2 * opts.ttl.as_nanos() as u64 + opts.kill_after.as_nanos() as u64 + 2_000_000_000;
    for loss in &outcome.losses {
        let near = |f: &&FaultRecord| f.from <= loss.at && f.to + reach >= loss.at;
        let mine = |f: &&FaultRecord| f.client.is_none_or(|c| c == loss.client);
        let around: Vec<&FaultRecord> = outcome.faults.iter().filter(near).filter(mine).collect();
        if !around.is_empty() && around.iter().all(|f| f.kind.is_member()) {
            let kinds: Vec<String> = around.iter().map(|f| f.kind.to_string()).collect();
            v.push(
                violation(
                    "failover",
                    format!(
                        "client {} lost its hold ({}) at {} with only member faults around it ({})",
                        loss.client,
                        loss.reason,
                        secs(loss.at),
                        kinds.join(",")
                    ),
                )
                .at(loss.at),
            );
        }
    }
}

/// Guarded writes land exactly while their writer's key holds.
fn fenced_writes(outcome: &Outcome, v: &mut Vec<Violation>) {
    for w in outcome.fenced.iter().filter(|w| w.landed != w.held) {
        let what = if w.landed { "landed from a deposed holder" } else { "was refused while its key held" };
        let detail = format!(
            "{} client {}'s write with token {} (sent {}) {what} at {}",
            w.group.as_str(),
            w.client,
            w.token,
            secs(w.sent),
            secs(w.at)
        );
        v.push(violation("fenced-writes", detail).at(w.at));
    }
}

/// A leader asked to step down stops its child within the kill grace.
fn step_downs(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    let (ttl, grace) = (opts.ttl.as_nanos() as u64, opts.kill_after.as_nanos() as u64);
    let bound = grace + 1_000_000_000;
    for s in &outcome.step_downs {
        let Some(client) = s.client else { continue };
        let excused = outcome
            .faults
            .iter()
            .any(|f| f.client.is_none_or(|c| c == client) && f.from <= s.at + bound + ttl && f.to + ttl >= s.at);
        let child = outcome.of(Group::Office).find(|iv| iv.client == client && iv.rev == s.token && iv.start <= s.at);
        let Some(child) = child.filter(|_| !excused) else { continue };
        let end = child.end_or(outcome.end_at);
        if end > s.at + bound {
            let detail = format!(
                "office client {client} (token {}) asked to step down at {} still ran its child until {}",
                s.token,
                secs(s.at),
                secs(end)
            );
            v.push(violation("step-down", detail).at(s.at + bound));
        }
    }
}

/// At most `max` of `intervals` at once outside the fault windows (the shared sweep,
/// [`conch_checkers::holders`]); `(checker, contest)` name the verdict.
pub(crate) fn bounded_holders(
    opts: &SimOptions,
    (checker, contest): (&'static str, &str),
    max: usize,
    intervals: &[Interval],
    faults: &[FaultRecord],
    v: &mut Vec<Violation>,
) {
    let windows: Vec<Window> = excuses(opts, faults)
        .into_iter()
        .map(|(client, from, to)| Window { client: Some(client), from, to, label: String::new() })
        .collect();
    for e in conch_checkers::holders::over_capacity(intervals, max, u64::MAX, &windows).violations {
        let who: Vec<String> = e.holders.iter().map(|(c, rev)| format!("client {c} rev {rev}")).collect();
        v.push(
            violation(
                checker,
                format!(
                    "{} holders of the {contest} (capacity {max}) from {} to {}: {}",
                    e.holders.len(),
                    secs(e.from),
                    secs(e.to),
                    who.join(", ")
                ),
            )
            .at(e.from),
        );
    }
}

fn fencing(group: Group, intervals: &[Interval], v: &mut Vec<Violation>) {
    for (a, b) in conch_checkers::fencing::successions(intervals, group == Group::Office) {
        v.push(
            violation(
                "fencing",
                format!(
                    "{}: rev {} (client {}, from {}) after rev {} (client {}, until {})",
                    group.as_str(),
                    b.rev,
                    b.client,
                    secs(b.start),
                    a.rev,
                    a.client,
                    secs(a.end.unwrap_or(a.start))
                ),
            )
            .at(b.start),
        );
    }
}

fn convergence(outcome: &Outcome, v: &mut Vec<Violation>) {
    for c in &outcome.convergence {
        let name = c.group.as_str();
        let expected = outcome.opts.capacity(c.group).min(c.clients.len());
        let mut problems = Vec::new();
        if c.holders.len() != expected {
            problems.push(format!("{} holders instead of {expected}", c.holders.len()));
        }
        if c.holders != c.holders_first || c.changes > 0 {
            problems.push(format!("holders still changing ({} child starts/ends in the last look)", c.changes));
        }
        let (mut h, mut r) = (c.holders.clone(), c.ranked.clone());
        h.sort_unstable();
        r.sort_unstable();
        if h != r {
            problems.push(format!("holders {h:?} are not the owners of the oldest keys {r:?}"));
        }
        if !c.idle.is_empty() {
            problems.push(format!("clients {:?} neither hold nor wait with a key", c.idle));
        }
        if !problems.is_empty() {
            v.push(violation("convergence", format!("{name}: {}", problems.join("; "))));
        }
    }
}

fn cron(outcome: &Outcome, v: &mut Vec<Violation>) {
    let opts = &outcome.opts;
    let runs: Vec<Interval> = outcome.of(Group::Cron).cloned().collect();
    let mut decided: BTreeSet<(&str, i64)> = BTreeSet::new();
    for c in &outcome.claims {
        decided.insert((c.job.as_str(), c.tick));
        if c.won {
            // Never a tick at or before the daemon's start — on its own clock, or in real
            // time — unless its clock was stepped since (then it cannot know).
            let real_start_s = (EPOCH_MS + (c.daemon_started_at / 1_000_000) as i64) / 1000;
            let stepped = outcome.faults.iter().any(|f| {
                f.client == Some(c.client) && f.kind.is_clock() && f.from >= c.daemon_started_at && f.from <= c.at
            });
            if c.tick <= c.daemon_start_s.min(real_start_s) && !stepped {
                v.push(
                    violation(
                        "cron-no-past-tick",
                        format!(
                            "client {} claimed {}@{} though it started at {}",
                            c.client, c.job, c.tick, c.daemon_start_s
                        ),
                    )
                    .at(c.at),
                );
            }
        }
    }
    for (label, n) in conch_checkers::cron::runs_twice(&runs) {
        v.push(violation("cron-at-most-once", format!("{label} ran {n} times")));
    }
    for (tick, other, rev) in conch_checkers::cron::tokens_shared(&runs) {
        v.push(violation("fencing", format!("cron: {tick} and {other} share the token {rev}")));
    }
    // Not `cron::successions`: a daemon frozen or stopped between its claim and the
    // run's start starts that run after later ticks' runs ended (the functional tester,
    // whose faults never stop a daemon, checks it).
    let wins = outcome.claims.iter().filter(|c| c.won).map(|c| (c.job.as_str(), c.tick));
    for ((job, tick), n) in conch_checkers::cron::won_twice(wins) {
        v.push(violation("cron-at-most-once", format!("{job}@{tick} claimed {n} times")));
    }
    if opts.daemons == 0 {
        return;
    }
    // Liveness: every tick far enough from any fault (and from the start and the end).
    let settle = cron_settle(opts);
    let first = EPOCH_MS / 1000 + (settle / 1_000_000_000) as i64 + 2;
    let last = (EPOCH_MS + (outcome.stop_at / 1_000_000) as i64) / 1000 - (settle / 1_000_000_000) as i64;
    let mut missed = Vec::new();
    for job in &opts.jobs {
        // The ticks from the oracle, not the core's schedule (see check_cron).
        for tick in crate::check_cron::job_ticks(job, first - 1, last).unwrap_or_default() {
            let t = sim_time_of_unix(tick);
            let excused =
                outcome.faults.iter().any(|f| f.from <= t + settle && f.to + settle >= t && f.kind != Kind::Compact);
            if !excused && !decided.contains(&(job.name.as_str(), tick)) {
                missed.push(format!("{}@{tick} (at {})", job.name, secs(t)));
            }
        }
    }
    if !missed.is_empty() {
        let n = missed.len();
        missed.truncate(5);
        v.push(violation("cron-liveness", format!("{n} ticks never claimed: {}", missed.join(", "))));
    }
}

/// Time around a fault in which cron may be late or skip (a TTL, the kill grace, slack).
fn cron_settle(opts: &SimOptions) -> u64 {
    (opts.ttl + opts.kill_after).as_nanos() as u64 + 3_000_000_000
}

fn running_keys(outcome: &Outcome, v: &mut Vec<Violation>) {
    let settle = cron_settle(&outcome.opts);
    let bound = conch_core::conchd::running_key_bound(outcome.opts.ttl).as_nanos() as u64;
    let ends: BTreeMap<&str, u64> =
        outcome.of(Group::Cron).filter_map(|iv| Some((iv.tick.as_deref()?, iv.end_or(outcome.end_at)))).collect();
    for skip in outcome.claims.iter().filter(|c| !c.won && c.at < outcome.stop_at) {
        let t = skip.at;
        let near_fault =
            outcome.faults.iter().any(|f| f.from <= t + settle && f.to + settle >= t && f.kind != Kind::Compact);
        // The running key is the one the latest won claim of the job put.
        let owner = outcome.claims.iter().filter(|c| c.won && c.job == skip.job && c.at <= t).max_by_key(|c| c.at);
        let Some(owner) = owner.filter(|_| !near_fault) else { continue };
        let label = format!("{}@{}", owner.job, conch_core::cron::rfc3339(owner.tick));
        // A ghost (a claim applied after its daemon gave up on it: no run) lives until
        // that daemon's next skip of the job, which sweeps it (conchd/writes.rs).
        let swept = || {
            let skips = outcome.claims.iter().filter(|c| !c.won && c.job == owner.job && c.client == owner.client);
            skips.map(|c| c.at).find(|at| *at > owner.at)
        };
        let ghost = || owner.ghost.then(swept).flatten();
        let ended = ends.get(label.as_str()).copied().or_else(ghost).unwrap_or(owner.at);
        if t > ended + bound {
            v.push(violation(
                "cron-running-key",
                format!(
                    "{}@{} skipped at {}: the running key of {label} (client {}) outlived its run, over at {}",
                    skip.job,
                    skip.tick,
                    secs(t),
                    owner.client,
                    secs(ended)
                ),
            ));
        }
    }
}

/// No child of a hold (same client, same fencing token) starts after its on-acquire hook
/// failed by itself.
fn on_acquire(outcome: &Outcome, v: &mut Vec<Violation>) {
    for h in outcome.hooks.iter().filter(|h| h.kind == "on-acquire" && !h.ok && h.status.starts_with("exit")) {
        let started = outcome.intervals.iter().find(|iv| iv.client == h.client && iv.rev == h.rev && iv.start >= h.end);
        if let Some(iv) = started {
            let what = format!(
                "client {} (rev {}) started its child at {} after its on-acquire hook failed ({}) at {}",
                h.client,
                h.rev,
                secs(iv.start),
                h.status,
                secs(h.end)
            );
            v.push(violation("on-acquire", what).at(iv.start));
        }
    }
}

fn leaks(outcome: &Outcome, v: &mut Vec<Violation>) {
    let l = &outcome.leftovers;
    if !l.keys.is_empty() {
        v.push(violation("no-leaks", format!("keys left: {}", l.keys.join(", "))));
    }
    if !l.leases.is_empty() {
        let leases: Vec<String> = l.leases.iter().map(|x| format!("{x:x}")).collect();
        v.push(violation("no-leaks", format!("session or empty leases left: {}", leases.join(", "))));
    }
    if !l.children.is_empty() {
        v.push(violation("no-leaks", format!("children still running on clients {:?}", l.children)));
    }
    if !l.running.is_empty() {
        v.push(violation("no-leaks", format!("clients {:?} did not exit on SIGTERM", l.running)));
    }
    if let Some(first) = l.history_lost.first() {
        let what = format!("{} cron history keys gone after shutdown, first {first}", l.history_lost.len());
        v.push(violation("cron-history", what));
    }
    for (key, value) in &l.results {
        if let Some(what) = crate::check_cron::bad_result(key, value) {
            v.push(violation("cron-history", format!("{key}: {what}")));
        }
    }
}
