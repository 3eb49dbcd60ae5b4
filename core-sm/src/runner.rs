//! The runner: one wrapper process as a machine — session + hold + supervision.
//!
//! Steps (`03-core.md`): grant a session lease; campaign for the hold; start the child
//! under the shim when the hold is ours; keep the shim's deadlines current; on the child's
//! exit, a loss or a signal, stop the child first, then release (delete our key if it is
//! still ours, revoke the lease), then exit with the code of `01-cli.md`.
//!
//! Inputs: [`Input`] through [`Machine::handle_input`]. Outputs: [`Output`]s by polling.
use std::time::Duration;

use crate::drive::{Input, Machine, Now};
use crate::duration::format;
use crate::etcd::{EtcdError, EtcdRequest, EtcdResponse, WatchEvent};
use crate::hold::{Hold, HoldEvent, HoldSpec, RETRY_DELAY};
use crate::hooks::{HookConfig, HookKind, Hooks};
use crate::ids::{ChildId, HookId, ReqId, WatchId};
use crate::output::{Event, ExitCode, Outbox, Output, SpawnSpec};
use crate::sabotage::Sabotage;
use crate::session::{LossReason, Session, SessionEvent};
use crate::step_down::Listener;
use crate::supervision::{ChildStatus, Supervisor, WrapperSignal};
use crate::time::Instant;
use crate::values::Holder;

/// Longest a release may take before the wrapper exits anyway (the lease then expires
/// on its own within one TTL; no child is running by then).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything one run needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// The office or semaphore.
    pub spec: HoldSpec,
    /// The value our key carries.
    pub holder: Holder,
    /// The command.
    pub argv: Vec<String>,
    /// Requested session TTL.
    pub ttl: Duration,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// How long to wait for the hold: `None` forever, zero for `--nonblock`.
    pub wait: Option<Duration>,
    /// `--on-acquire`, `--on-lose`, `--hook-timeout`.
    pub hooks: HookConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    Granting,
    Campaigning,
    /// The on-acquire hook runs; the child starts when it succeeds.
    AcquireHook,
    Running,
    /// The child is gone; the on-lose hook runs before the release.
    LoseHook,
    /// The hold was lost and its child (or on-acquire hook) is dead: the fence runs; the
    /// release follows only if it succeeds in its budget.
    Fence,
    Releasing,
    Done,
}

/// The wrapper machine.
#[derive(Debug)]
pub struct Runner {
    /// A deliberate bug, set only by [`Runner::with_sabotage`].
    sabotage: Sabotage,
    cfg: RunConfig,
    session: Session,
    hold: Hold,
    child: Supervisor,
    out: Outbox,
    stage: Stage,
    campaign_at: Option<Instant>,
    wait_until: Option<Instant>,
    queued_logged: bool,
    loss: Option<LossReason>,
    exit: Option<ExitCode>,
    release_pending: Vec<ReqId>,
    release_delete: Option<(ReqId, EtcdRequest)>,
    release_retry_at: Option<Instant>,
    release_until: Option<Instant>,
    aborted: Option<ExitCode>,
    hooks: Hooks,
    child_env: Vec<(String, String)>,
    /// The exit code to release with once the running hook is gone.
    after_hook: Option<ExitCode>,
    lost_while_waiting: bool,
    /// The code to exit with once the child is gone, when it is not the child's own
    /// (the hold was lost, or etcd failed under a running child).
    exit_after_child: Option<ExitCode>,
    /// The run ends because of etcd, not the child: no session, a failed campaign, or a
    /// lost session or hold.
    etcd_failed: bool,
    /// The leader's ear for `--step-down` requests, while it holds.
    listener: Option<Listener>,
    /// A step-down request ends this run.
    stepped_down: bool,
}

impl Runner {
    /// A runner for `cfg`; call [`Runner::start`] to begin.
    pub fn new(cfg: RunConfig) -> Runner {
        Runner::with_id_base(cfg, 0)
    }

    /// The same runner with a deliberate bug (the simulator's checker tests only).
    pub fn with_sabotage(self, sabotage: Sabotage) -> Runner {
        Runner { hold: self.hold.with_sabotage(sabotage), sabotage, ..self }
    }

    /// A runner whose ids start after `id_base`, for the successive runs of one process.
    pub fn with_id_base(cfg: RunConfig, id_base: u64) -> Runner {
        let hooks = Hooks::new(cfg.hooks.clone(), id_base);
        // The fence's budget comes out of the kill window: the child is stopped that much
        // earlier, so the fence too ends by the session's kill_at (before the lease could
        // expire).
        let fence = cfg.hooks.fence_window();
        let session = Session::new(cfg.ttl, cfg.kill_after).with_fence(fence);
        let mut hold = Hold::new(cfg.spec.clone(), cfg.holder.encode()).with_holder(cfg.holder.clone());
        // A holder unsure of its key stops its child as a silent session would: within the
        // same term_at span (the fence's window included).
        if let Ok(timings) = crate::session::Timings::derive(cfg.ttl, cfg.kill_after + fence) {
            hold = hold.with_confirm_within(timings.term_within());
        }
        Runner {
            sabotage: Sabotage::None,
            cfg,
            session,
            hold,
            child: Supervisor::default(),
            out: Outbox::with_id_base(id_base),
            stage: Stage::Idle,
            campaign_at: None,
            wait_until: None,
            queued_logged: false,
            loss: None,
            exit: None,
            release_pending: Vec::new(),
            release_delete: None,
            release_retry_at: None,
            release_until: None,
            aborted: None,
            hooks,
            child_env: Vec::new(),
            after_hook: None,
            lost_while_waiting: false,
            exit_after_child: None,
            etcd_failed: false,
            listener: None,
            stepped_down: false,
        }
    }

    /// The hold in hand: our key's create revision (the fencing token).
    pub fn revision(&self) -> Option<crate::ids::Revision> {
        self.hold.create_rev()
    }

    /// Whether the session was lost while waiting for the hold (never held).
    pub fn lost_while_waiting(&self) -> bool {
        self.lost_while_waiting
    }

    /// Whether the run ended because of etcd rather than the child: the grant failed, the
    /// campaign failed, or the session or hold was lost (a child it stopped for that
    /// included). [`crate::service`] retries those at the session's pace, not the child's
    /// crash backoff.
    pub fn ended_by_etcd(&self) -> bool {
        self.etcd_failed
    }

    /// Whether a `--step-down` request ended this run (the leader resigned on request).
    pub fn stepped_down(&self) -> bool {
        self.stepped_down
    }

    /// Whether a session lease was granted in this run.
    pub fn had_session(&self) -> bool {
        self.session.lease().is_some()
    }

    /// Whether the machine has emitted its exit.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Feeds an etcd answer.
    fn handle_response(&mut self, now: Instant, id: ReqId, response: EtcdResponse) {
        if self.stage == Stage::Done {
            return;
        }
        if self.session.owns(id) {
            if let Some(event) = self.session.handle_response(now, id, response, &mut self.out) {
                self.on_session(now, event);
            }
        } else if self.hold.owns(id) {
            if let Some(event) = self.hold.handle_response(now, id, response, &mut self.out) {
                self.on_hold(now, event);
            }
        } else if self.release_pending.contains(&id) {
            self.on_release_response(now, id, response);
        } else if let Some(listener) = self.listener.as_mut().filter(|l| l.owns(id)) {
            if listener.handle_response(id, response, &mut self.out) {
                self.on_step_down(now);
            }
        }
    }

    /// Feeds a watch event.
    fn handle_watch(&mut self, now: Instant, id: WatchId, event: WatchEvent) {
        if self.stage == Stage::Done {
            return;
        }
        if let Some(listener) = self.listener.as_mut().filter(|l| l.owns_watch(id)) {
            if listener.handle_watch(id, event, &mut self.out) {
                self.on_step_down(now);
            }
            return;
        }
        if let Some(event) = self.hold.handle_watch(now, id, event, &mut self.out) {
            self.on_hold(now, event);
        }
    }

    /// The shim started the child.
    fn handle_child_started(&mut self, now: Instant, pid: u32) {
        self.child.handle_started(now, pid, &mut self.out);
    }

    /// The child is gone and its group cleaned up (or the shim vanished).
    fn handle_child_exit(&mut self, now: Instant, status: ChildStatus) {
        if !self.child.is_alive() {
            return;
        }
        // The deadline may have passed before this exit reached us (the shim's SIGKILL at
        // kill_at reported before our own timer input, or a stalled wrapper): the hold is
        // lost all the same, and the child's end is a loss's end (its fence runs; exit 70).
        // Found by the simulator's fence checkers.
        if self.stage == Stage::Running && self.loss.is_none() && self.session.term_at().is_some_and(|t| now >= t) {
            self.note_loss(LossReason::DeadlinePassed);
            self.etcd_failed = true;
            self.exit_after_child.get_or_insert(ExitCode::LOST);
        }
        self.child.handle_exit(now, status, &mut self.out);
        let code = self.exit_after_child.unwrap_or_else(|| status.exit_code());
        if self.start_fence(now, code) {
            return;
        }
        self.after_child(now, code);
    }

    /// The child (or a lost hold's fence) is done: the on-lose hook, then the release.
    fn after_child(&mut self, now: Instant, code: ExitCode) {
        if self.hooks.start(now, HookKind::OnLose, self.child_env.clone(), None, &mut self.out) {
            self.stage = Stage::LoseHook;
            self.after_hook = Some(code);
        } else {
            self.begin_release(now, code);
        }
    }

    /// A hook exited (or was killed).
    fn handle_hook_exit(&mut self, now: Instant, id: HookId, status: ChildStatus) {
        let Some((kind, ok)) = self.hooks.handle_exit(now, id, status, &mut self.out) else { return };
        match (kind, self.stage) {
            (HookKind::OnAcquire, Stage::AcquireHook) => match self.after_hook.take() {
                Some(code) if self.start_fence(now, code) => {}
                Some(code) => self.begin_release(now, code),
                None if ok => self.spawn_child(now),
                None => {
                    self.out.log(self.event(Event::error("campaign-failed")).with("why", "on-acquire hook failed"));
                    self.begin_release(now, ExitCode::LOST);
                }
            },
            (HookKind::OnLose, Stage::LoseHook) => {
                let code = self.after_hook.take().unwrap_or(ExitCode::LOST);
                self.begin_release(now, code);
            }
            (HookKind::Fence, Stage::Fence) if ok => self.after_child(now, ExitCode::LOST),
            (HookKind::Fence, Stage::Fence) => {
                // What the fence should have undone may still stand: keep our keys, so no
                // one acquires before the lease expires on its own.
                let note = "keys left to expire with the lease";
                self.out.log(self.event(Event::error("fence-failed")).with("note", note));
                self.finish(ExitCode::FENCE_FAILED);
            }
            _ => {}
        }
    }

    /// The wall clock of the input about to be handled (Unix ms): the hold writes it as
    /// `held_since` when it acquires.
    pub fn set_wall_ms(&mut self, wall_ms: i64) {
        self.hold.set_wall_ms(wall_ms);
    }

    /// A signal reached the wrapper.
    fn handle_signal(&mut self, now: Instant, signal: WrapperSignal) {
        if let WrapperSignal::Pass(n) = signal {
            self.child.pass_signal(n, &mut self.out);
            return;
        }
        let code = ExitCode(128 + signal.number());
        self.out.log(self.event(Event::info("signal")).with("signal", signal.number()));
        match self.stage {
            Stage::Idle => self.finish(code),
            // The grant may still be answered: revoke it then, or exit if it fails.
            Stage::Granting => self.aborted = Some(code),
            Stage::Campaigning => self.begin_release(now, code),
            Stage::Running => {
                let kill_at = self.kill_at_from(now);
                self.child.terminate(now, kill_at, "signal", &mut self.out);
            }
            Stage::AcquireHook => {
                self.after_hook.get_or_insert(code);
                self.hooks.kill(&mut self.out);
            }
            // The on-lose hook and the fence are bounded; the release follows them.
            Stage::LoseHook | Stage::Fence => {}
            // A second signal: stop waiting for etcd.
            Stage::Releasing => self.finish(self.exit.unwrap_or(code)),
            Stage::Done => {}
        }
    }

    /// Timers: keepalives, deadlines, retries, `--wait`, escalation, release timeout.
    fn handle_timeout(&mut self, now: Instant) {
        if self.stage == Stage::Done {
            return;
        }
        if let Some(event) = self.session.handle_timeout(now, &mut self.out) {
            self.on_session(now, event);
        }
        if let Some(event) = self.hold.handle_timeout(now, &mut self.out) {
            self.on_hold(now, event);
        }
        self.child.handle_timeout(now, &mut self.out);
        self.hooks.handle_timeout(now, &mut self.out);
        if self.stage == Stage::Campaigning && self.wait_until.is_some_and(|at| now >= at) {
            self.out.log(self.event(Event::info("not-acquired")).with("waited", format(self.waited(now))));
            self.begin_release(now, ExitCode::NOT_ACQUIRED);
        }
        if self.stage == Stage::Releasing {
            if self.release_until.is_some_and(|at| now >= at) {
                self.out.log(self.event(Event::warn("release-timeout")).with("note", "the lease expires on its own"));
                self.finish(self.exit.unwrap_or(ExitCode::LOST));
            } else if self.release_retry_at.is_some_and(|at| now >= at) {
                self.release_retry_at = None;
                if let Some((old, request)) = self.release_delete.take() {
                    self.release_pending.retain(|id| *id != old);
                    let id = self.out.request(request.clone());
                    self.release_pending.push(id);
                    self.release_delete = Some((id, request));
                }
            }
        }
    }

    /// Begins: asks etcd for the session lease.
    pub fn start(&mut self, now: Instant) {
        if self.stage == Stage::Idle {
            self.stage = Stage::Granting;
            self.session.start(now, &mut self.out);
            // A shim made ready now starts the child without an exec once we hold: the
            // rank reads cannot tell a waiter when it becomes first in line (they say
            // "behind" for any place past the first), so every run that may wait asks,
            // at the cost of one idle process per waiter. Not a nonblocking run: it
            // mostly exits 75 at once.
            if self.cfg.wait != Some(Duration::ZERO) {
                self.out.push(Output::Prepare);
            }
        }
    }

    fn on_session(&mut self, now: Instant, event: SessionEvent) {
        match event {
            SessionEvent::Granted => {
                let Some(lease) = self.session.lease() else {
                    debug_assert!(false, "the session says Granted only once it holds its lease");
                    return self.begin_release(now, ExitCode::LOST);
                };
                // A stop signal came while the grant was on its way: revoke it, campaign not.
                if let Some(code) = self.aborted {
                    self.begin_release(now, code);
                    return;
                }
                self.stage = Stage::Campaigning;
                self.campaign_at = Some(now);
                // --nonblock (a zero wait) is decided by the first ranking, not by a timer.
                self.wait_until = self.cfg.wait.filter(|w| !w.is_zero()).map(|w| now.plus(w));
                self.out.log(self.event(Event::info("campaign")).with("prefix", self.cfg.spec.prefix()));
                // No child until acquired: a late keepalive answer costs a waiter nothing
                // before `kill_at` (the session's module doc).
                self.session.set_waiting(true);
                self.hold.campaign(now, lease, &mut self.out);
            }
            SessionEvent::Extended => {
                if let (Some(term_at), Some(kill_at)) = (self.session.term_at(), self.session.child_kill_at()) {
                    self.child.set_deadlines(term_at, kill_at, &mut self.out);
                }
            }
            SessionEvent::GrantFailed(error) => {
                let code = match error {
                    EtcdError::Denied(_) => ExitCode::NO_PERMISSION,
                    _ => ExitCode::UNAVAILABLE,
                };
                self.etcd_failed = code == ExitCode::UNAVAILABLE;
                self.out.log(Event::error("no-session").with("error", error));
                self.finish(self.aborted.unwrap_or(code));
            }
            SessionEvent::Infeasible(error) => {
                self.out.log(Event::error("no-session").with("error", error.to_string()));
                self.begin_release(now, ExitCode::UNAVAILABLE);
            }
            SessionEvent::Lost(reason) => self.on_loss(now, reason),
        }
    }

    fn on_hold(&mut self, now: Instant, event: HoldEvent) {
        match event {
            HoldEvent::Queued { rank } => {
                // The rank reads know "first waiter" (rank N) or "behind it", not how far.
                let rank = if rank > self.cfg.spec.slots as usize { format!("{rank}+") } else { rank.to_string() };
                if self.cfg.wait == Some(Duration::ZERO) {
                    self.out.log(self.event(Event::info("not-acquired")).with("rank", rank).with("why", "nonblock"));
                    self.begin_release(now, ExitCode::NOT_ACQUIRED);
                } else if !self.queued_logged {
                    self.queued_logged = true;
                    self.out.log(self.event(Event::info("waiting")).with("rank", rank));
                }
            }
            HoldEvent::HostTaken => {
                if self.cfg.wait == Some(Duration::ZERO) {
                    let why = "nonblock, this host already holds or waits";
                    self.out.log(self.event(Event::info("not-acquired")).with("why", why));
                    self.begin_release(now, ExitCode::NOT_ACQUIRED);
                } else if !self.queued_logged {
                    self.queued_logged = true;
                    self.out.log(self.event(Event::info("waiting")).with("why", "this host already holds or waits"));
                }
            }
            HoldEvent::Acquired { rev } => self.on_acquired(now, rev),
            HoldEvent::Lost(reason) => self.on_loss(now, reason),
            HoldEvent::Failed(error) => {
                self.etcd_failed = self.stage != Stage::LoseHook && !matches!(error, EtcdError::Denied(_));
                let code = match error {
                    _ if self.stage == Stage::Running => ExitCode::LOST,
                    EtcdError::Denied(_) => ExitCode::NO_PERMISSION,
                    _ => ExitCode::UNAVAILABLE,
                };
                self.out.log(self.event(Event::error("etcd-failed")).with("error", error));
                self.stop_child_then_release(now, code, "etcd-failed");
            }
        }
    }

    fn on_acquired(&mut self, now: Instant, rev: crate::ids::Revision) {
        if self.stage != Stage::Campaigning {
            return;
        }
        // From here on a child may run: the session is lost at `term_at` again.
        self.session.set_waiting(false);
        let (Some(term_at), Some(lease)) = (self.session.term_at(), self.session.lease()) else { return };
        // Re-check our own deadline after the wait (etcd issue 11456).
        if now >= term_at {
            self.on_loss(now, LossReason::DeadlinePassed);
            return;
        }
        self.out.log(
            self.event(Event::info("acquired"))
                .with("waited", format(self.waited(now)))
                .with("before_term", format(term_at.since(now))),
        );
        let mut env = vec![
            ("CONCH_NAME".to_string(), self.cfg.spec.name.as_str().to_string()),
            ("CONCH_REV".to_string(), fencing_token(rev, self.sabotage)),
            ("CONCH_LEASE".to_string(), lease.to_string()),
        ];
        // The hold's own key: `conch put`/`del`/`txn` guard their writes with it.
        env.extend(self.hold.key().map(|key| ("CONCH_KEY".to_string(), key.to_string())));
        // The value it publishes (`elect --value`), as `--who` shows it.
        env.extend(self.cfg.holder.value.clone().map(|value| ("CONCH_VALUE".to_string(), value)));
        if self.cfg.spec.is_office {
            env.push(("CONCH_LEADER".to_string(), "1".to_string()));
            env.push(("CONCH_PRIORITY".to_string(), self.cfg.spec.priority.to_string()));
        }
        self.child_env = env.clone();
        if self.cfg.spec.is_office && self.cfg.spec.step_down {
            let prefix = crate::step_down::prefix(&self.cfg.spec.name);
            self.listener = Some(Listener::start(prefix, rev, &mut self.out));
        }
        if self.hooks.start(now, HookKind::OnAcquire, env, Some(term_at), &mut self.out) {
            self.stage = Stage::AcquireHook;
        } else {
            self.spawn_child(now);
        }
    }

    fn spawn_child(&mut self, now: Instant) {
        let (Some(term_at), Some(kill_at)) = (self.session.term_at(), self.session.child_kill_at()) else { return };
        self.stage = Stage::Running;
        if now >= term_at {
            self.on_loss(now, LossReason::DeadlinePassed);
            return;
        }
        let argv = self.cfg.argv.clone();
        let env = self.child_env.clone();
        // The shim may revoke the session lease once the wrapper is gone and the child's
        // processes with it (issue 16.1): the successor need not wait out the TTL. Not with
        // a fence: a dead wrapper runs no fence, so what it guards may still stand, and the
        // office stays blocked until the lease expires on its own.
        let lease = self.session.lease().filter(|_| !self.hooks.has(HookKind::Fence));
        let spec = SpawnSpec {
            child: ChildId::default(),
            argv,
            env,
            term_at,
            kill_at,
            kill_after: self.cfg.kill_after,
            lease,
            output_label: None,
        };
        self.child.spawn(now, spec, &mut self.out);
    }

    fn on_loss(&mut self, now: Instant, reason: LossReason) {
        if matches!(self.stage, Stage::Releasing | Stage::Done) || self.loss.is_some() {
            return;
        }
        self.note_loss(reason.clone());
        // A waiter that lost its session could not acquire (75); a holder lost its hold (70).
        self.lost_while_waiting = self.stage == Stage::Campaigning;
        let code = if self.stage == Stage::Campaigning { ExitCode::NOT_ACQUIRED } else { ExitCode::LOST };
        if self.stage == Stage::LoseHook {
            // The child is already gone; the on-lose hook and the release follow.
            return;
        }
        self.etcd_failed = true;
        self.stop_child_then_release(now, code, reason.as_str());
    }

    /// The hold is lost: say so, stop renewing (the lease is left to expire), remember why.
    fn note_loss(&mut self, reason: LossReason) {
        self.out.log(self.event(Event::error("lost")).with("reason", reason.as_str()));
        self.session.stop();
        self.loss = Some(reason);
    }

    /// A `--step-down` request named our token: stop the child (or the on-acquire hook),
    /// then the on-lose hook and the release follow as after a clean exit; exit 0.
    fn on_step_down(&mut self, now: Instant) {
        if self.stepped_down || self.sabotage == Sabotage::IgnoreStepDown {
            return;
        }
        match self.stage {
            Stage::Running if self.child.is_alive() => {
                self.stepped_down = true;
                self.out.log(self.event(Event::info("step-down")));
                self.exit_after_child.get_or_insert(ExitCode::OK);
                let kill_at = self.kill_at_from(now);
                self.child.terminate(now, kill_at, "step-down", &mut self.out);
            }
            Stage::AcquireHook => {
                self.stepped_down = true;
                self.out.log(self.event(Event::info("step-down")));
                self.after_hook.get_or_insert(ExitCode::OK);
                self.hooks.kill(&mut self.out);
            }
            // Already on the way out: the child is gone or being stopped.
            _ => {}
        }
    }

    /// The order on any error while a child runs: kill the child, then release, then exit.
    fn stop_child_then_release(&mut self, now: Instant, code: ExitCode, why: &str) {
        if self.child.is_alive() {
            let kill_at = self.kill_at_from(now);
            self.child.terminate(now, kill_at, why, &mut self.out);
            self.exit_after_child.get_or_insert(code);
            // handle_child_exit releases once the group is gone.
        } else if self.stage == Stage::AcquireHook {
            self.after_hook.get_or_insert(code);
            self.hooks.kill(&mut self.out);
        } else {
            self.begin_release(now, code);
        }
    }

    /// SIGKILL no later than `now + kill_after`, nor than the child's share of the
    /// session's `kill_at` ([`Session::kill_by`]).
    fn kill_at_from(&self, now: Instant) -> Instant {
        self.session.kill_by(now)
    }

    /// Starts the fence when the hold was lost (`code` is 70) after it was acquired and a
    /// fence is configured; it must end by the session's `kill_at`.
    fn start_fence(&mut self, now: Instant, code: ExitCode) -> bool {
        if code != ExitCode::LOST || !self.hooks.has(HookKind::Fence) || self.hold.create_rev().is_none() {
            return false;
        }
        let by = self.session.kill_at();
        if !self.hooks.start(now, HookKind::Fence, self.child_env.clone(), by, &mut self.out) {
            return false;
        }
        self.stage = Stage::Fence;
        true
    }

    fn begin_release(&mut self, now: Instant, code: ExitCode) {
        if matches!(self.stage, Stage::Releasing | Stage::Done) {
            return;
        }
        self.stage = Stage::Releasing;
        self.exit = Some(code);
        self.session.stop();
        if let Some(mut listener) = self.listener.take() {
            listener.stop(&mut self.out);
        }
        if let Some(request) = self.hold.release(&mut self.out) {
            let id = self.out.request(request.clone());
            self.release_pending.push(id);
            self.release_delete = Some((id, request));
        }
        if let Some(lease) = self.session.lease().filter(|_| self.sabotage != Sabotage::KeepLeaseOnExit) {
            let id = self.out.request(EtcdRequest::Revoke { lease });
            self.release_pending.push(id);
        }
        self.release_until = Some(now.plus(RELEASE_TIMEOUT));
        if self.release_pending.is_empty() {
            self.finish(code);
        }
    }

    fn on_release_response(&mut self, now: Instant, id: ReqId, response: EtcdResponse) {
        let is_delete = self.release_delete.as_ref().is_some_and(|(d, _)| *d == id);
        match response {
            EtcdResponse::Error(EtcdError::Unavailable(why)) if is_delete => {
                // Ambiguous: it may have taken effect. The retry compares the create
                // revision, so it can never delete a newer key (etcd issue 22082).
                self.out.log(self.event(Event::warn("etcd-retry")).with("error", why));
                self.release_retry_at = Some(now.plus(RETRY_DELAY));
                return;
            }
            EtcdResponse::Error(EtcdError::Unavailable(why)) => {
                self.out.log(self.event(Event::warn("revoke-failed")).with("error", why));
            }
            _ => {}
        }
        self.release_pending.retain(|p| *p != id);
        if is_delete {
            self.release_delete = None;
        }
        if self.release_pending.is_empty() {
            let kind = if self.cfg.spec.is_office { "resigned" } else { "released" };
            self.out.log(self.event(Event::info(kind)));
            self.finish(self.exit.unwrap_or(ExitCode::LOST));
        }
    }

    fn finish(&mut self, code: ExitCode) {
        if self.stage == Stage::Done {
            return;
        }
        self.stage = Stage::Done;
        self.session.stop();
        self.out.push(Output::Exit(code));
    }

    fn waited(&self, now: Instant) -> Duration {
        now.since(self.campaign_at.unwrap_or(now))
    }

    fn event(&self, event: Event) -> Event {
        let mut event = event.with("name", self.cfg.spec.name.as_str());
        if let Some(rev) = self.hold.create_rev() {
            event = event.with("rev", rev);
        }
        if let Some(lease) = self.session.lease() {
            event = event.with("lease", lease);
        }
        event
    }
}

/// The child's `CONCH_REV`: our key's create revision.
fn fencing_token(rev: crate::ids::Revision, sabotage: Sabotage) -> String {
    if sabotage == Sabotage::ConstantFencingToken {
        return "1".to_string();
    }
    rev.to_string()
}

impl Machine for Runner {
    fn handle_input(&mut self, now: Now, input: Input) {
        self.set_wall_ms(now.wall_ms);
        let now = now.mono;
        match input {
            Input::Response(id, response) => self.handle_response(now, id, response),
            Input::Watch(id, event) => self.handle_watch(now, id, event),
            // A runner has one child at a time: the id is the supervisor's.
            Input::ChildStarted(_, pid) => self.handle_child_started(now, pid),
            Input::ChildExit(_, status) => self.handle_child_exit(now, status),
            Input::HookExit(id, status) => self.handle_hook_exit(now, id, status),
            Input::Signal(signal) => self.handle_signal(now, signal),
            Input::Timeout => self.handle_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.stage == Stage::Done {
            return None;
        }
        let wait = if self.stage == Stage::Campaigning { self.wait_until } else { None };
        let release = if self.stage == Stage::Releasing {
            [self.release_until, self.release_retry_at].into_iter().flatten().min()
        } else {
            None
        };
        [
            self.session.poll_timeout(),
            self.hold.poll_timeout(),
            self.child.poll_timeout(),
            self.hooks.poll_timeout(),
            wait,
            release,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
