//! conchd: the identical cron daemon on every node. The race is the scheduler.
//!
//! Inputs: etcd answers and events, child reports, signals, timers, each with [`Now`] (the
//! monotonic clock for deadlines, the wall clock for ticks). Outputs: etcd calls, watches,
//! children through the shim, log events.
//!
//! * Job table: list, then watch `/conch/v1/cron/job/`; re-list after compaction or a
//!   broken watch.
//! * For each job the next tick `T` from its schedule (tick identity is the scheduled
//!   instant). Never a tick before this daemon started.
//! * At `T` + jitter (0–500 ms, drawn from a seeded generator): a tick reached more than
//!   `min(60 s, period / 2)` late is skipped and logged; otherwise race the claim
//!   transaction. Win ⇒ run the job under the standard supervision with the session's
//!   deadlines and the job's `run_ttl`; on exit release the running key and write the
//!   result, each retried until it lands (`conchd/writes.rs`): a running key outlives its
//!   run by at most [`running_key_bound`]`(ttl) = RELEASE_RETRY_FOR + ttl`.
//! * Claims go on a claim lease rotated hourly, results on a result lease rotated daily:
//!   live leases per node stay bounded, never O(ticks).
//! * SIGTERM: stop claiming, stop running jobs (kill-after escalation), write their
//!   results, revoke the session, exit 0.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::backoff::SplitMix64;
use crate::cron::{
    fire_key, job_prefix, result_key, rfc3339, rfc3339_ms, running_key, short_duration, Claim, Job, Overlap, RunResult,
    CLAIM_LEASE_ROTATE, CLAIM_LEASE_TTL, RESULT_LEASE_ROTATE, RESULT_LEASE_TTL,
};
use crate::drive::{Input, Machine, Now};
use crate::etcd::{EtcdError, EtcdRequest, EtcdResponse, WatchEvent};
use crate::ids::{ChildId, LeaseId, ReqId, Revision, WatchId};
use crate::output::{Event, ExitCode, Outbox, Output, SpawnSpec};
use crate::sabotage::Sabotage;
use crate::session::{Session, SessionEvent};
use crate::supervision::{ChildStatus, Supervisor, WrapperSignal};
use crate::time::Instant;
use crate::values::cmd_field;

/// Largest politeness delay after a tick.
pub const JITTER_MAX_MS: u64 = 500;
/// A tick reached later than this (or half the period, if less) is skipped.
pub const LATE_MAX: Duration = Duration::from_secs(60);
/// Pause before re-listing the job table after its watch broke.
pub const RELIST_DELAY: Duration = Duration::from_millis(500);
/// Pause before asking for a new session after the last one was lost or refused.
pub const REGRANT_DELAY: Duration = Duration::from_secs(1);
/// A wall clock going back by more than this replans the next ticks.
pub const STEP_BACK_MIN: Duration = Duration::from_secs(1);
/// Longest the shutdown waits for result writes.
pub const SHUTDOWN_WRITES_MAX: Duration = Duration::from_secs(2);

/// Who this daemon is and how it runs jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConchdConfig {
    /// This node's name (hostname).
    pub node: String,
    /// This daemon's pid.
    pub pid: u32,
    /// When it started, RFC 3339.
    pub started: String,
    /// Session TTL.
    pub ttl: Duration,
    /// Grace between SIGTERM and SIGKILL for job runs.
    pub kill_after: Duration,
    /// Seed of the jitter draws.
    pub seed: u64,
}

/// One job in the table.
#[derive(Clone, Debug)]
pub struct JobState {
    /// The checked job.
    pub job: Job,
    /// The next tick to race for (Unix seconds).
    pub next_tick: Option<i64>,
    jitter_ms: u64,
}

#[derive(Debug)]
struct Run {
    name: String,
    tick: i64,
    rev: Revision,
    supervisor: Supervisor,
    started_wall_ms: i64,
    started: Instant,
    ttl_deadline: Instant,
    outcome: Option<&'static str>,
    running_key: Option<String>,
    /// The session lease the claim (and the running key) went on.
    lease: LeaseId,
}

/// A claim in flight.
#[derive(Debug)]
struct InFlight {
    name: String,
    tick: i64,
    /// The session lease of the running key, if the job is `--overlap skip`.
    running: Option<LeaseId>,
    claim_lease: LeaseId,
    /// No claim of this tick was sent before this one: a claim of ours found in etcd can
    /// only be this request's own earlier attempt (the driver tried another endpoint).
    first: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Empty,
    Granting(ReqId),
    Ready(LeaseId, i64),
}

/// The daemon machine.
#[derive(Debug)]
pub struct Conchd {
    /// A deliberate bug, set only by [`Conchd::with_sabotage`].
    sabotage: Sabotage,
    cfg: ConchdConfig,
    session: Session,
    session_up: bool,
    out: Outbox,
    rng: SplitMix64,
    clock: Now,
    last_wall_ms: i64,
    start_wall_s: i64,
    start_mono: Instant,
    jobs: BTreeMap<String, JobState>,
    /// Bumped on every change of the job table (not of its next ticks).
    jobs_version: u64,
    /// The ticks ahead by due time (wall ms, job): the timer reads its first entry and a
    /// timeout takes the due ones, instead of two scans of every job per input. An entry
    /// whose job has moved on (replaced, removed, replanned) is stale: it wakes the loop
    /// once and is dropped then, so a change never has to find its old entry.
    due: BTreeSet<(i64, String)>,
    jobs_list: Option<ReqId>,
    jobs_watch: Option<WatchId>,
    relist_at: Option<Instant>,
    regrant_at: Option<Instant>,
    claim_lease: Slot,
    result_lease: Slot,
    waiting_claims: Vec<(String, i64)>,
    /// Claims in flight.
    claims: BTreeMap<ReqId, InFlight>,
    /// Per job, the latest tick this daemon ever sent a claim for: a claim of a tick at or
    /// before it is a second claim of that tick (a clock stepped back).
    claimed_up_to: BTreeMap<String, i64>,
    /// Claim and result leases that may hold a key (a claim not cleanly lost, a result
    /// sent): the shutdown revokes the others, so a daemon that lost every race leaves no
    /// empty 25-hour lease behind.
    keyed_leases: BTreeSet<LeaseId>,
    /// Claims whose answer was an error (they may have been applied), by claim lease: the
    /// shutdown reads their fire keys to settle whether the lease got a key
    /// (`conchd/shutdown.rs`), rather than keep an empty 25-hour lease on a guess.
    unsettled: BTreeMap<LeaseId, BTreeSet<(String, i64)>>,
    runs: BTreeMap<ChildId, Run>,
    next_child: u64,
    /// Results waiting for the result lease.
    waiting_results: Vec<Write>,
    writes: Writes,
    stopping: bool,
    stop_deadline: Option<Instant>,
    /// Revokes of the shutdown still unanswered (the session's, and empty leases').
    revokes: BTreeSet<ReqId>,
    done: bool,
    /// Counters.
    pub stats: Stats,
}

impl Conchd {
    /// The same daemon with a deliberate bug (the simulator's checker tests only).
    pub fn with_sabotage(self, sabotage: Sabotage) -> Conchd {
        Conchd { sabotage, ..self }
    }

    /// A daemon; call [`Conchd::start`].
    pub fn new(cfg: ConchdConfig) -> Conchd {
        let session = Session::new(cfg.ttl, cfg.kill_after);
        let rng = SplitMix64::new(cfg.seed);
        Conchd {
            sabotage: Sabotage::None,
            cfg,
            session,
            session_up: false,
            out: Outbox::default(),
            rng,
            clock: Now { mono: Instant::default(), wall_ms: 0 },
            last_wall_ms: 0,
            start_wall_s: 0,
            start_mono: Instant::default(),
            jobs: BTreeMap::new(),
            jobs_version: 0,
            due: BTreeSet::new(),
            jobs_list: None,
            jobs_watch: None,
            relist_at: None,
            regrant_at: None,
            claim_lease: Slot::Empty,
            result_lease: Slot::Empty,
            waiting_claims: Vec::new(),
            claims: BTreeMap::new(),
            claimed_up_to: BTreeMap::new(),
            keyed_leases: BTreeSet::new(),
            unsettled: BTreeMap::new(),
            runs: BTreeMap::new(),
            next_child: 0,
            waiting_results: Vec::new(),
            writes: Writes::default(),
            stopping: false,
            stop_deadline: None,
            revokes: BTreeSet::new(),
            done: false,
            stats: Stats::default(),
        }
    }

    /// The job table.
    pub fn jobs(&self) -> &BTreeMap<String, JobState> {
        &self.jobs
    }

    /// Changes whenever a job is added, replaced or removed (an observer rebuilds its copy
    /// of the table then, not after every input).
    pub fn jobs_version(&self) -> u64 {
        self.jobs_version
    }

    /// Begins: session grant and the job list.
    pub fn start(&mut self, now: Now) {
        self.clock = now;
        self.last_wall_ms = now.wall_ms;
        self.start_mono = now.mono;
        self.start_wall_s = now.wall_ms.div_euclid(1000);
        self.session.start(now.mono, &mut self.out);
        self.list_jobs();
        self.out.log(Event::info("conchd-start").with("node", &self.cfg.node));
    }

    fn list_jobs(&mut self) {
        if let Some(w) = self.jobs_watch.take() {
            self.out.push(Output::CancelWatch(w));
        }
        self.jobs_list = Some(self.out.request(EtcdRequest::RangePrefix { prefix: job_prefix() }));
    }

    fn on_response(&mut self, now: Now, id: ReqId, response: EtcdResponse) {
        if self.session.owns(id) {
            if let Some(event) = self.session.handle_response(now.mono, id, response, &mut self.out) {
                self.on_session(now, event);
            }
            return;
        }
        if self.jobs_list == Some(id) {
            self.jobs_list = None;
            match response {
                EtcdResponse::Range { header_rev, kvs } => {
                    let names: BTreeSet<String> = kvs.iter().filter_map(|kv| job_name(&kv.key)).collect();
                    self.jobs.retain(|name, _| names.contains(name));
                    self.jobs_version += 1;
                    for kv in kvs {
                        self.upsert_job(now, &kv.key, &kv.value);
                    }
                    self.jobs_watch = Some(self.out.watch_prefix(job_prefix(), Revision(header_rev.0 + 1)));
                }
                _ => self.relist_at = Some(now.mono.plus(RELIST_DELAY)),
            }
            return;
        }
        if let Some(is_claim) = self.lease_slot(id) {
            self.on_lease_granted(now, is_claim, response);
            return;
        }
        if let Some(claim) = self.claims.remove(&id) {
            // A claim whose compare failed wrote nothing on our lease, unless the key it
            // found is our own earlier attempt's; an error may have been applied.
            match &response {
                EtcdResponse::Claimed { won: false, existing, .. } => {
                    let ours = existing
                        .as_deref()
                        .and_then(|v| serde_json::from_slice::<Claim>(v).ok())
                        .is_some_and(|c| self.made(&c));
                    if ours {
                        self.keyed_leases.insert(claim.claim_lease);
                    }
                }
                EtcdResponse::Claimed { .. } | EtcdResponse::Written { .. } => {
                    self.keyed_leases.insert(claim.claim_lease);
                }
                // Refused ("too many requests") or timed out: maybe applied, maybe not.
                _ => {
                    self.unsettled.entry(claim.claim_lease).or_default().insert((claim.name.clone(), claim.tick));
                }
            }
            self.on_claimed(now, claim, response);
            return;
        }
        if self.on_write_answer(now, id, response.clone()) {
            self.maybe_finish(now);
            return;
        }
        if self.revokes.remove(&id) && self.revokes.is_empty() {
            self.finish();
        }
    }

    /// Whether this very daemon (node, pid, start) wrote `claim`.
    pub(super) fn made(&self, claim: &Claim) -> bool {
        claim.host == self.cfg.node && claim.pid == self.cfg.pid && claim.started == self.cfg.started
    }

    fn on_session(&mut self, now: Now, event: SessionEvent) {
        match event {
            SessionEvent::Granted => {
                self.session_up = true;
                self.out.log(
                    Event::info("session")
                        .with("lease", self.session.lease().map(|l| l.to_string()).unwrap_or_default()),
                );
            }
            SessionEvent::Extended => {
                if let (Some(term_at), Some(kill_at)) = (self.session.term_at(), self.session.kill_at()) {
                    for run in self.runs.values_mut() {
                        run.supervisor.set_deadlines(term_at, kill_at, &mut self.out);
                    }
                }
            }
            SessionEvent::GrantFailed(_) | SessionEvent::Infeasible(_) | SessionEvent::Lost(_) => {
                self.drop_session(now);
            }
        }
    }

    /// The session is gone (or given up): its runs stop, what was owed on its lease goes
    /// with the lease, and a new session is asked for after a pause.
    fn drop_session(&mut self, now: Now) {
        self.session_up = false;
        self.out.log(Event::error("session-lost").with("note", "runs stop; a new session is requested"));
        let kill_at = now.mono.plus(self.cfg.kill_after);
        for run in self.runs.values_mut() {
            run.outcome.get_or_insert("lost");
            run.supervisor.terminate(now.mono, kill_at, "session lost", &mut self.out);
        }
        if let Some(lease) = self.session.lease() {
            self.writes.forget_lease(lease);
        }
        if !self.stopping {
            // A new session after a pause: etcd may be down, and a grant that fails
            // at once must not turn into a busy loop.
            self.session = Session::new(self.cfg.ttl, self.cfg.kill_after);
            self.regrant_at = Some(now.mono.plus(REGRANT_DELAY));
        } else {
            self.session.stop();
        }
    }

    fn upsert_job(&mut self, now: Now, key: &str, value: &[u8]) {
        let Some(name) = job_name(key) else { return };
        self.jobs_version += 1;
        match Job::decode(value) {
            Ok(job) => {
                // Ticks strictly after this second: never one before the daemon started.
                let from = match self.sabotage {
                    Sabotage::ClaimPastTicks => self.start_wall_s - 3600,
                    _ => now.wall_ms.div_euclid(1000).max(self.start_wall_s),
                };
                let next_tick = job.schedule.next_after(from);
                let jitter_ms = self.rng.next_u64() % (JITTER_MAX_MS + 1);
                self.jobs.insert(name.clone(), JobState { job, next_tick, jitter_ms });
                self.plan(&name);
            }
            Err(e) => {
                self.out.log(Event::warn("job-invalid").with("job", &name).with("error", e.to_string()));
                self.jobs.remove(&name);
            }
        }
    }

    fn on_watch(&mut self, now: Now, id: WatchId, event: WatchEvent) {
        if self.jobs_watch != Some(id) {
            return;
        }
        match event {
            WatchEvent::Put(kv) => self.upsert_job(now, &kv.key, &kv.value),
            WatchEvent::Delete { key, .. } => {
                if let Some(name) = job_name(&key) {
                    self.jobs.remove(&name);
                    self.jobs_version += 1;
                    self.out.log(Event::info("job-removed").with("job", name));
                }
            }
            WatchEvent::Compacted | WatchEvent::Broken(_) => {
                self.jobs_watch = None;
                self.relist_at = Some(now.mono.plus(RELIST_DELAY));
            }
        }
    }

    /// Takes the clocks of an input. A wall clock stepped back (NTP, an operator) would
    /// leave every next tick far ahead and the ticks in between unclaimed: plan them again
    /// from the new time (never before the start; a tick run already has its fire key).
    fn see_clock(&mut self, now: Now) {
        self.clock = now;
        if now.wall_ms < self.last_wall_ms - STEP_BACK_MIN.as_millis() as i64 {
            // Our start moves back with the clock: it is an instant, not a clock reading.
            let uptime_ms = now.mono.since(self.start_mono).as_millis() as i64;
            self.start_wall_s = self.start_wall_s.min((now.wall_ms - uptime_ms).div_euclid(1000));
            let from = now.wall_ms.div_euclid(1000).max(self.start_wall_s);
            for state in self.jobs.values_mut() {
                let replanned = state.job.schedule.next_after(from);
                if replanned < state.next_tick || state.next_tick.is_none() {
                    state.next_tick = replanned;
                }
            }
            let names: Vec<String> = self.jobs.keys().cloned().collect();
            for name in names {
                self.plan(&name);
            }
            self.out.log(Event::warn("clock-stepped-back").with(
                "by",
                crate::duration::format(Duration::from_millis(
                    u64::try_from(self.last_wall_ms - now.wall_ms).unwrap_or(0),
                )),
            ));
        }
        self.last_wall_ms = now.wall_ms;
    }

    fn due_ms(state: &JobState) -> Option<i64> {
        state.next_tick.map(|t| t * 1000 + state.jitter_ms as i64)
    }

    /// Indexes the next tick of `name` (after any change of its next tick or jitter).
    fn plan(&mut self, name: &str) {
        if let Some(due) = self.jobs.get(name).and_then(Conchd::due_ms) {
            self.due.insert((due, name.to_string()));
        }
    }

    /// The ticks due by `wall_ms`, in job-name order, taken off the index (stale entries
    /// are dropped on the way).
    fn take_due(&mut self, wall_ms: i64) -> Vec<(String, i64)> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.due.first() {
            if *at > wall_ms {
                break;
            }
            let Some((at, name)) = self.due.pop_first() else { break };
            if let Some(state) = self.jobs.get(&name).filter(|s| Conchd::due_ms(s) == Some(at)) {
                if let Some(tick) = state.next_tick {
                    due.push((name, tick));
                }
            }
        }
        due.sort();
        due.dedup();
        due
    }

    fn on_timeout(&mut self, now: Now) {
        if let Some(event) = self.session.handle_timeout(now.mono, &mut self.out) {
            self.on_session(now, event);
        }
        if self.regrant_at.is_some_and(|at| now.mono >= at) {
            self.regrant_at = None;
            if !self.stopping {
                self.session.start(now.mono, &mut self.out);
            }
        }
        if self.relist_at.is_some_and(|at| now.mono >= at) {
            self.relist_at = None;
            self.list_jobs();
        }
        self.on_writes_timeout(now);
        for (name, tick) in self.take_due(now.wall_ms) {
            self.on_tick(now, name, tick);
        }
        for (child, run) in self.runs.iter_mut() {
            run.supervisor.handle_timeout(now.mono, &mut self.out);
            if run.outcome.is_none() && now.mono >= run.ttl_deadline {
                run.outcome = Some("timeout");
                let kill_at = self.session.kill_by(now.mono);
                self.out.log(
                    Event::warn("run-timeout")
                        .with("job", &run.name)
                        .with("tick", rfc3339(run.tick))
                        .with("child", child.0),
                );
                run.supervisor.terminate(now.mono, kill_at, "run_ttl", &mut self.out);
            }
        }
        if self.stopping && self.stop_deadline.is_some_and(|at| now.mono >= at) {
            // Out of time: give up on writes, make sure every run is being killed, and
            // wait only for the children to be gone (no timer left to spin on).
            self.stop_deadline = None;
            self.writes.clear();
            self.waiting_results.clear();
            for run in self.runs.values_mut() {
                run.supervisor.terminate(now.mono, now.mono, "conchd stopping", &mut self.out);
            }
            self.maybe_finish(now);
        }
    }

    fn on_tick(&mut self, now: Now, name: String, tick: i64) {
        let Some(state) = self.jobs.get_mut(&name) else { return };
        let period = state.job.schedule.period_hint();
        let late_ms = now.wall_ms - tick * 1000;
        let limit_ms = LATE_MAX.min(period / 2).as_millis() as i64;
        let now_s = now.wall_ms.div_euclid(1000);
        state.jitter_ms = self.rng.next_u64() % (JITTER_MAX_MS + 1);
        let limit_ms = match self.sabotage {
            Sabotage::SkipEveryLateTick => 0,
            Sabotage::ClaimPastTicks => i64::MAX,
            _ => limit_ms.max(JITTER_MAX_MS as i64),
        };
        if late_ms > limit_ms {
            // Reached too late (a pause, a clock jump): skip to the ticks still ahead.
            state.next_tick = state.job.schedule.next_after(now_s);
            self.plan(&name);
            self.stats.note_skipped_late();
            self.out.log(
                Event::warn("skipped-late")
                    .with("job", &name)
                    .with("tick", rfc3339(tick))
                    .with("late", crate::duration::format(Duration::from_millis(u64::try_from(late_ms).unwrap_or(0)))),
            );
            return;
        }
        state.next_tick = state.job.schedule.next_after(tick);
        self.plan(&name);
        if self.stopping {
            return;
        }
        if !self.session_up {
            self.stats.note_skipped_no_session();
            self.out.log(Event::warn("skipped-no-session").with("job", &name).with("tick", rfc3339(tick)));
            return;
        }
        self.claim(now, name, tick);
    }
}

/// The job name of a key under [`job_prefix`].
fn job_name(key: &str) -> Option<String> {
    key.strip_prefix(&job_prefix()).filter(|n| !n.is_empty() && !n.contains('/')).map(str::to_string)
}

impl Machine for Conchd {
    fn handle_input(&mut self, now: Now, input: Input) {
        self.see_clock(now);
        match input {
            Input::Response(id, response) => self.on_response(now, id, response),
            Input::Watch(id, event) => self.on_watch(now, id, event),
            Input::ChildStarted(child, pid) => {
                if let Some(run) = self.runs.get_mut(&child) {
                    run.supervisor.handle_started(now.mono, pid, &mut self.out);
                }
            }
            Input::ChildExit(child, status) => self.on_child_exit(now, child, status),
            // conchd runs no hooks.
            Input::HookExit(..) => {}
            // SIGHUP & co. stop nothing: a daemon's jobs are not its children's business.
            Input::Signal(signal) if !signal.stops() => {
                self.out.log(Event::info("signal-ignored").with("signal", signal.number()));
            }
            Input::Signal(signal) => self.on_signal(now, signal),
            Input::Timeout => self.on_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let to_mono = |wall_ms: i64| {
            let ahead = (wall_ms - self.clock.wall_ms).max(0) as u64;
            self.clock.mono.plus(Duration::from_millis(ahead))
        };
        let ticks = self.due.first().map(|(at, _)| to_mono(*at));
        let runs = self
            .runs
            .values()
            .flat_map(|r| [r.supervisor.poll_timeout(), r.outcome.is_none().then_some(r.ttl_deadline)])
            .flatten()
            .min();
        let writes = self.writes.poll_timeout();
        [self.session.poll_timeout(), self.relist_at, self.regrant_at, ticks, runs, self.stop_deadline, writes]
            .into_iter()
            .flatten()
            .min()
    }
}

mod claims;
mod leases;
mod runs;
mod shutdown;
mod stats;
mod writes;

pub use stats::{FinishedRun, Stats, RECENT_RUNS_MAX};

pub use writes::{running_key_bound, RELEASE_RETRY_FOR, RESULTS_PENDING_MAX, WRITE_RETRY_BASE, WRITE_RETRY_MAX};
use writes::{Write, Writes};

#[cfg(test)]
#[path = "conchd_tests.rs"]
mod tests;
