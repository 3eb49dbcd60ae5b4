//! The runner: one wrapper process as a machine — session + hold + supervision.
//!
//! Steps (`03-core.md`): grant a session lease; campaign for the hold; start the child
//! under the shim when the hold is ours; keep the shim's deadlines current; on the child's
//! exit, a loss or a signal, stop the child first, then release (delete our key if it is
//! still ours, revoke the lease), then exit with the code of `01-cli.md`.
//!
//! Inputs: `handle_response`, `handle_watch`, `handle_child_started`, `handle_child_exit`,
//! `handle_signal`, `handle_timeout`. Outputs: [`Output`]s by polling.
use std::time::Duration;

use crate::drive::Machine;
use crate::duration::format;
use crate::etcd::{EtcdError, EtcdRequest, EtcdResponse, WatchEvent};
use crate::hold::{Hold, HoldEvent, HoldSpec, RETRY_DELAY};
use crate::hooks::{HookConfig, HookKind, Hooks};
use crate::ids::{ChildId, HookId, ReqId, WatchId};
use crate::output::{Event, ExitCode, Outbox, Output, SpawnSpec};
use crate::sabotage::Sabotage;
use crate::session::{LossReason, Session, SessionEvent};
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
    /// A deliberate bug for checker tests ([`Sabotage::None`] outside them).
    pub sabotage: Sabotage,
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
    Releasing,
    Done,
}

/// The wrapper machine.
#[derive(Debug)]
pub struct Runner {
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
}

impl Runner {
    /// A runner for `cfg`; call [`Runner::start`] to begin.
    pub fn new(cfg: RunConfig) -> Runner {
        Runner::with_id_base(cfg, 0)
    }

    /// A runner whose ids start after `id_base`, for the successive runs of one process.
    pub fn with_id_base(cfg: RunConfig, id_base: u64) -> Runner {
        let hooks = Hooks::new(cfg.hooks.clone(), id_base);
        let session = Session::new(cfg.ttl, cfg.kill_after);
        let hold = Hold::new(cfg.spec.clone(), cfg.holder.encode())
            .with_holder(cfg.holder.clone())
            .with_sabotage(cfg.sabotage);
        Runner {
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

    /// Whether a session lease was granted in this run.
    pub fn had_session(&self) -> bool {
        self.session.lease().is_some()
    }

    /// Whether the machine has emitted its exit.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Feeds an etcd answer.
    pub fn handle_response(&mut self, now: Instant, id: ReqId, response: EtcdResponse) {
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
        }
    }

    /// Feeds a watch event.
    pub fn handle_watch(&mut self, now: Instant, id: WatchId, event: WatchEvent) {
        if self.stage == Stage::Done {
            return;
        }
        if let Some(event) = self.hold.handle_watch(now, id, event, &mut self.out) {
            self.on_hold(now, event);
        }
    }

    /// The shim started the child.
    pub fn handle_child_started(&mut self, now: Instant, pid: u32) {
        self.child.handle_started(now, pid, &mut self.out);
    }

    /// The child is gone and its group cleaned up (or the shim vanished).
    pub fn handle_child_exit(&mut self, now: Instant, status: ChildStatus) {
        if !self.child.is_alive() {
            return;
        }
        self.child.handle_exit(now, status, &mut self.out);
        let code = self.exit_after_child.unwrap_or_else(|| status.exit_code());
        if self.hooks.start(now, HookKind::OnLose, self.child_env.clone(), None, &mut self.out) {
            self.stage = Stage::LoseHook;
            self.after_hook = Some(code);
        } else {
            self.begin_release(now, code);
        }
    }

    /// A hook exited (or was killed).
    pub fn handle_hook_exit(&mut self, now: Instant, id: HookId, status: ChildStatus) {
        let Some((kind, ok)) = self.hooks.handle_exit(now, id, status, &mut self.out) else { return };
        match (kind, self.stage) {
            (HookKind::OnAcquire, Stage::AcquireHook) => match self.after_hook.take() {
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
            _ => {}
        }
    }

    /// The wall clock of the input about to be handled (Unix ms): the hold writes it as
    /// `held_since` when it acquires.
    pub fn set_wall_ms(&mut self, wall_ms: i64) {
        self.hold.set_wall_ms(wall_ms);
    }

    /// A signal reached the wrapper.
    pub fn handle_signal(&mut self, now: Instant, signal: WrapperSignal) {
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
            // The on-lose hook is bounded by its timeout; the release follows it.
            Stage::LoseHook => {}
            // A second signal: stop waiting for etcd.
            Stage::Releasing => self.finish(self.exit.unwrap_or(code)),
            Stage::Done => {}
        }
    }

    /// Timers: keepalives, deadlines, retries, `--wait`, escalation, release timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
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
        }
    }

    fn on_session(&mut self, now: Instant, event: SessionEvent) {
        match event {
            SessionEvent::Granted => {
                let Some(lease) = self.session.lease() else {
                    return;
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
                self.hold.campaign(now, lease, &mut self.out);
            }
            SessionEvent::Extended => {
                if let (Some(term_at), Some(kill_at)) = (self.session.term_at(), self.session.kill_at()) {
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
            ("CONCH_REV".to_string(), fencing_token(rev, self.cfg.sabotage)),
            ("CONCH_LEASE".to_string(), lease.to_string()),
        ];
        if self.cfg.spec.is_office {
            env.push(("CONCH_LEADER".to_string(), "1".to_string()));
            env.push(("CONCH_PRIORITY".to_string(), self.cfg.spec.priority.to_string()));
        }
        self.child_env = env.clone();
        if self.hooks.start(now, HookKind::OnAcquire, env, Some(term_at), &mut self.out) {
            self.stage = Stage::AcquireHook;
        } else {
            self.spawn_child(now);
        }
    }

    fn spawn_child(&mut self, now: Instant) {
        let (Some(term_at), Some(kill_at)) = (self.session.term_at(), self.session.kill_at()) else { return };
        self.stage = Stage::Running;
        if now >= term_at {
            self.on_loss(now, LossReason::DeadlinePassed);
            return;
        }
        let argv = self.cfg.argv.clone();
        let env = self.child_env.clone();
        // The shim may revoke the session lease once the wrapper is gone and the child's
        // processes with it (issue 16.1): the successor need not wait out the TTL.
        let lease = self.session.lease();
        let kill_after = self.cfg.kill_after;
        let spec = SpawnSpec { child: ChildId::default(), argv, env, term_at, kill_at, kill_after, lease };
        self.child.spawn(now, spec, &mut self.out);
    }

    fn on_loss(&mut self, now: Instant, reason: LossReason) {
        if matches!(self.stage, Stage::Releasing | Stage::Done) || self.loss.is_some() {
            return;
        }
        self.out.log(self.event(Event::error("lost")).with("reason", reason.as_str()));
        self.session.stop();
        self.loss = Some(reason.clone());
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

    /// SIGKILL no later than `now + kill_after`, nor than the session's `kill_at`.
    fn kill_at_from(&self, now: Instant) -> Instant {
        let grace = now.plus(self.cfg.kill_after);
        self.session.kill_at().map_or(grace, |k| k.min(grace))
    }

    fn begin_release(&mut self, now: Instant, code: ExitCode) {
        if matches!(self.stage, Stage::Releasing | Stage::Done) {
            return;
        }
        self.stage = Stage::Releasing;
        self.exit = Some(code);
        self.session.stop();
        if let Some(request) = self.hold.release(&mut self.out) {
            let id = self.out.request(request.clone());
            self.release_pending.push(id);
            self.release_delete = Some((id, request));
        }
        if let Some(lease) = self.session.lease().filter(|_| self.cfg.sabotage != Sabotage::KeepLeaseOnExit) {
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
