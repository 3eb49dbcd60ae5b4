//! `--on-acquire` / `--on-lose` hooks, each bounded by `--hook-timeout`, and the `--fence`
//! command, bounded by `--fence-budget`; one at a time.
//!
//! The driver runs a hook via `sh -c` in its own process group with the child's
//! environment and kills the whole group on [`Output::KillHook`]. A failing on-acquire
//! is a failed campaign; an on-lose failure is only logged; a failing or overrunning
//! fence keeps the hold's keys (the runner decides all that).
use std::time::Duration;

use crate::ids::HookId;
use crate::output::{Event, Outbox, Output};
use crate::process::ChildStatus;
pub use crate::process::{HookKind, HookSpec};
use crate::time::Instant;

/// The hooks configured for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookConfig {
    /// Shell command run after winning.
    pub on_acquire: Option<String>,
    /// Shell command run after losing or finishing.
    pub on_lose: Option<String>,
    /// Longest a hook may run.
    pub timeout: Duration,
    /// Shell command run when the hold is lost, once the child's group is dead: undoes
    /// work outside the group (a VIP, a remote lock).
    pub fence: Option<String>,
    /// Longest the fence may run. The session stops the child this much earlier, so the
    /// fence ends before the lease could expire (`detect + budget + margin < ttl`).
    pub fence_budget: Duration,
}

impl HookConfig {
    /// How much of the TTL the fence needs: its budget when one is configured.
    pub fn fence_window(&self) -> Duration {
        if self.fence.is_some() {
            self.fence_budget
        } else {
            Duration::ZERO
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Active {
    id: HookId,
    kind: HookKind,
    deadline: Instant,
    killed: bool,
}

/// The hook runner.
#[derive(Debug, Default)]
pub struct Hooks {
    cfg: HookConfig,
    active: Option<Active>,
    next_id: u64,
}

impl Hooks {
    /// Hooks per `cfg`; ids start after `id_base`.
    pub fn new(cfg: HookConfig, id_base: u64) -> Hooks {
        Hooks { cfg, active: None, next_id: id_base }
    }

    /// Whether a hook is running.
    pub fn is_running(&self) -> bool {
        self.active.is_some()
    }

    /// Whether a hook of `kind` is configured.
    pub fn has(&self, kind: HookKind) -> bool {
        self.command(kind).is_some()
    }

    /// A hook exited; returns its kind and whether it succeeded in time.
    pub fn handle_exit(
        &mut self,
        _now: Instant,
        id: HookId,
        status: ChildStatus,
        out: &mut Outbox,
    ) -> Option<(HookKind, bool)> {
        let active = self.active.filter(|a| a.id == id)?;
        self.active = None;
        let ok = !active.killed && status == ChildStatus::Exited(0);
        let event = if ok { Event::info("hook-exit") } else { Event::warn("hook-exit") };
        let event = match status {
            ChildStatus::Exited(code) => event.with("code", code),
            ChildStatus::Signaled(sig) => event.with("signal", sig),
            ChildStatus::Vanished => event.with("status", "unknown"),
        };
        out.log(event.with("hook", active.kind.as_str()).with("timed_out", active.killed));
        Some((active.kind, ok))
    }

    /// Kills a hook that ran past its deadline.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) {
        if let Some(active) = self.active.as_mut() {
            if !active.killed && now >= active.deadline {
                out.log(Event::warn("hook-timeout").with("hook", active.kind.as_str()));
                self.kill(out);
            }
        }
    }

    /// Starts the hook of `kind` if one is configured; it must end by `deadline`.
    pub fn start(
        &mut self,
        now: Instant,
        kind: HookKind,
        env: Vec<(String, String)>,
        deadline: Option<Instant>,
        out: &mut Outbox,
    ) -> bool {
        let Some(cmd) = self.command(kind).map(str::to_string) else { return false };
        if self.active.is_some() {
            return false;
        }
        self.next_id += 1;
        let id = HookId(self.next_id);
        let own = now.plus(if kind == HookKind::Fence { self.cfg.fence_budget } else { self.cfg.timeout });
        let deadline = deadline.map_or(own, |d| d.min(own));
        self.active = Some(Active { id, kind, deadline, killed: false });
        out.log(Event::info("hook-start").with("hook", kind.as_str()));
        out.push(Output::RunHook(HookSpec { id, kind, cmd, env }));
        true
    }

    /// Kills the running hook's process group (its exit still arrives).
    pub fn kill(&mut self, out: &mut Outbox) {
        if let Some(active) = self.active.as_mut() {
            if !active.killed {
                active.killed = true;
                out.push(Output::KillHook(active.id));
            }
        }
    }

    /// When [`Hooks::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.filter(|a| !a.killed).map(|a| a.deadline)
    }

    fn command(&self, kind: HookKind) -> Option<&str> {
        match kind {
            HookKind::OnAcquire => self.cfg.on_acquire.as_deref(),
            HookKind::OnLose => self.cfg.on_lose.as_deref(),
            HookKind::Fence => self.cfg.fence.as_deref(),
        }
    }
}
