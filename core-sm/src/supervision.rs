//! Supervision of the child (through the shim): start, deadlines, terminate, exit.
//!
//! The shim enforces `term_at`/`kill_at` on its own clock and cleans up the whole group
//! (and escapees, via the subreaper) before it reports the child's exit. This machine
//! keeps the wrapper's side: it sends the shim every deadline update, orders a
//! termination on loss or signal, and — should the shim not report by `kill_at` plus
//! [`BACKUP_GRACE`] — kills the group itself.
use std::time::Duration;

use crate::ids::ChildId;
use crate::output::{Event, Outbox, Output, SpawnSpec};
pub use crate::process::{ChildStatus, WrapperSignal, PASSED_SIGNALS};
use crate::time::Instant;

/// How long past `kill_at` the wrapper waits for the shim before killing the group itself.
pub const BACKUP_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Running { term_at: Instant, kill_at: Instant },
    Stopping { backup_at: Instant, backup_sent: bool },
    Exited(ChildStatus),
}

/// The wrapper's side of child supervision.
#[derive(Debug)]
pub struct Supervisor {
    child: ChildId,
    phase: Phase,
    pid: Option<u32>,
    started_at: Option<Instant>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor { child: ChildId::default(), phase: Phase::Idle, pid: None, started_at: None }
    }
}

impl Supervisor {
    /// A supervisor for the child named `child`.
    pub fn new(child: ChildId) -> Supervisor {
        Supervisor { child, ..Supervisor::default() }
    }

    /// Whether a child was started and has not been reported gone.
    pub fn is_alive(&self) -> bool {
        matches!(self.phase, Phase::Running { .. } | Phase::Stopping { .. })
    }

    /// How the child ended, once it has.
    pub fn status(&self) -> Option<ChildStatus> {
        match self.phase {
            Phase::Exited(status) => Some(status),
            _ => None,
        }
    }

    /// The shim reports the child's pid.
    pub fn handle_started(&mut self, _now: Instant, pid: u32, out: &mut Outbox) {
        if self.is_alive() && self.pid.is_none() {
            self.pid = Some(pid);
            out.log(Event::info("child-start").with("pid", pid));
        }
    }

    /// The shim reports the child gone (its group cleaned up), or the shim itself vanished.
    pub fn handle_exit(&mut self, now: Instant, status: ChildStatus, out: &mut Outbox) {
        if !self.is_alive() {
            return;
        }
        self.phase = Phase::Exited(status);
        let ran = now.since(self.started_at.unwrap_or(now));
        let event = match status {
            // A non-zero exit or a death by signal is a warning: journald and --quiet show it.
            ChildStatus::Exited(0) => Event::info("child-exit").with("code", 0),
            ChildStatus::Exited(code) => Event::warn("child-exit").with("code", code),
            ChildStatus::Signaled(sig) => Event::warn("child-exit").with("signal", sig),
            ChildStatus::Vanished => Event::error("child-exit").with("status", "unknown: the shim vanished"),
        };
        out.log(event.with("ran", crate::duration::format(ran)));
    }

    /// Wrapper-side escalation: kill the group if the shim has not reported in time.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) {
        if let Phase::Stopping { backup_at, backup_sent: false } = self.phase {
            if now >= backup_at {
                self.phase = Phase::Stopping { backup_at, backup_sent: true };
                out.log(Event::warn("kill-sent").with("by", "wrapper").with("why", "shim did not report by kill_at"));
                out.push(Output::KillGroup(self.child));
            }
        }
    }

    /// Starts the child under the shim with its first deadlines.
    pub fn spawn(&mut self, now: Instant, spec: SpawnSpec, out: &mut Outbox) {
        if self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Running { term_at: spec.term_at, kill_at: spec.kill_at };
        self.started_at = Some(now);
        out.push(Output::Spawn(SpawnSpec { child: self.child, ..spec }));
    }

    /// Passes moved deadlines on to the shim.
    pub fn set_deadlines(&mut self, term_at: Instant, kill_at: Instant, out: &mut Outbox) {
        if let Phase::Running { term_at: t, kill_at: k } = self.phase {
            // The session's timings: term_at = kill_at − kill_after, never after it.
            debug_assert!(term_at <= kill_at, "term_at {term_at:?} after kill_at {kill_at:?}");
            // Paired with the session's `D = max(D, send + ttl')`: a deadline only moves later.
            debug_assert!(
                term_at >= t && kill_at >= k,
                "deadlines moved earlier: {t:?}/{k:?} → {term_at:?}/{kill_at:?}"
            );
            if (t, k) != (term_at, kill_at) {
                self.phase = Phase::Running { term_at, kill_at };
                out.push(Output::Deadlines { child: self.child, term_at, kill_at });
            }
        }
    }

    /// Orders the shim to stop the child: SIGTERM now, SIGKILL by `kill_at`.
    pub fn terminate(&mut self, now: Instant, kill_at: Instant, why: &str, out: &mut Outbox) {
        if let Phase::Running { .. } = self.phase {
            let kill_at = kill_at.max(now);
            self.phase = Phase::Stopping { backup_at: kill_at.plus(BACKUP_GRACE), backup_sent: false };
            out.log(
                Event::info("term-sent").with("why", why).with("kill_in", crate::duration::format(kill_at.since(now))),
            );
            out.push(Output::Terminate { child: self.child, kill_at });
        }
    }

    /// Passes a signal on to the child's group, if a child runs.
    pub fn pass_signal(&mut self, signal: i32, out: &mut Outbox) {
        if let Phase::Running { .. } | Phase::Stopping { .. } = self.phase {
            out.log(Event::info("signal-passed").with("signal", signal));
            out.push(Output::SignalGroup { child: self.child, signal });
        }
    }

    /// When [`Supervisor::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Stopping { backup_at, backup_sent: false } => Some(backup_at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn spec() -> SpawnSpec {
        SpawnSpec {
            child: ChildId(0),
            argv: vec!["true".into()],
            env: vec![],
            term_at: at(4_750),
            kill_at: at(9_750),
            kill_after: Duration::from_secs(5),
            output_label: None,
        }
    }

    fn actions(out: &mut Outbox) -> Vec<Output> {
        std::iter::from_fn(|| out.pop()).filter(|o| !matches!(o, Output::Log(_))).collect()
    }

    #[test]
    fn transitions() {
        // Each case: steps applied in order, then the actions expected from the last step.
        type Step = fn(&mut Supervisor, &mut Outbox);
        let spawn: Step = |s, o| s.spawn(at(0), spec(), o);
        let started: Step = |s, o| s.handle_started(at(1), 42, o);
        let extend: Step = |s, o| s.set_deadlines(at(6_000), at(11_000), o);
        let same: Step = |s, o| s.set_deadlines(at(4_750), at(9_750), o);
        let term: Step = |s, o| s.terminate(at(100), at(5_100), "lost", o);
        let exit0: Step = |s, o| s.handle_exit(at(200), ChildStatus::Exited(0), o);
        let late: Step = |s, o| s.handle_timeout(at(6_100), o);
        let early: Step = |s, o| s.handle_timeout(at(6_099), o);
        let table: Vec<(Vec<Step>, Vec<Output>)> = vec![
            (vec![spawn], vec![Output::Spawn(spec())]),
            (vec![spawn, spawn], vec![]),
            (
                vec![spawn, started, extend],
                vec![Output::Deadlines { child: ChildId(0), term_at: at(6_000), kill_at: at(11_000) }],
            ),
            (vec![spawn, same], vec![]),
            (vec![spawn, term], vec![Output::Terminate { child: ChildId(0), kill_at: at(5_100) }]),
            (vec![spawn, term, term], vec![]),
            (vec![spawn, term, extend], vec![]),
            (vec![spawn, term, early], vec![]),
            (vec![spawn, term, late], vec![Output::KillGroup(ChildId(0))]),
            (vec![spawn, term, late, late], vec![]),
            (vec![spawn, term, exit0, late], vec![]),
            (vec![spawn, exit0, term], vec![]),
            (vec![term], vec![]),
            (vec![exit0], vec![]),
        ];
        for (i, (steps, want)) in table.into_iter().enumerate() {
            let mut s = Supervisor::default();
            let mut out = Outbox::default();
            let (last, first) = steps.split_last().unwrap();
            for step in first {
                step(&mut s, &mut out);
            }
            actions(&mut out);
            last(&mut s, &mut out);
            assert_eq!(actions(&mut out), want, "case {i}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ChildStatus::Exited(3).exit_code(), ExitCode(3));
        assert_eq!(ChildStatus::Signaled(9).exit_code(), ExitCode(137));
        assert_eq!(ChildStatus::Vanished.exit_code(), ExitCode::LOST);
    }
}
