//! Hooks as processes: `sh -c cmd` in a process group of its own, killed whole on order.
//! The group is signalled only through a [`PidGate`]: the blocking thread waits without
//! reaping, kills what the hook left in its group and reaps under the gate's lock, so a
//! `kill` racing the reap never reaches a reused pid.
use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use conch_core::{ChildStatus, HookId, HookSpec, Input};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedSender;

use crate::events::DriverEvent;
use crate::reap::{wait_exited, PidGate};

/// The running hooks (at most one at a time in practice).
#[derive(Default)]
pub struct Hooks {
    groups: BTreeMap<HookId, PidGate>,
}

impl Hooks {
    /// Starts a hook; its exit arrives as [`conch_core::Input::HookExit`].
    pub fn spawn(&mut self, spec: &HookSpec, events: &UnboundedSender<DriverEvent>) -> std::io::Result<()> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&spec.cmd)
            .envs(spec.env.iter().cloned())
            .env("CONCH_HOOK", spec.kind.as_str())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let gate = PidGate::new(pid);
        self.groups.insert(spec.id, gate.clone());
        let (id, events) = (spec.id, events.clone());
        tokio::task::spawn_blocking(move || {
            wait_exited(pid);
            let waited = gate.reap(|pid| {
                // Whatever the hook left in its group goes with it (the zombie still
                // holds the group's id).
                if let Some(pid) = pid {
                    let _ = killpg(pid, Signal::SIGKILL);
                }
                child.wait()
            });
            let status = match waited {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => ChildStatus::Exited(code),
                    (None, Some(sig)) => ChildStatus::Signaled(sig),
                    _ => ChildStatus::Vanished,
                },
                Err(_) => ChildStatus::Vanished,
            };
            let _ = events.send(DriverEvent::Input(Input::HookExit(id, status)));
        });
        Ok(())
    }

    /// Kills a hook's whole process group (nothing once the hook is reaped).
    pub fn kill(&mut self, id: HookId) {
        if let Some(gate) = self.groups.get(&id) {
            gate.signal(|pid| {
                let _ = killpg(pid, Signal::SIGKILL);
            });
        }
    }

    /// The hook is gone.
    pub fn forget(&mut self, id: HookId) {
        self.groups.remove(&id);
    }
}
