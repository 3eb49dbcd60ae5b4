//! Hooks as processes: `sh -c cmd` in a process group of its own, killed whole on order.
use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use conch_core::{ChildStatus, HookId, HookSpec};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedSender;

use crate::run::DriverEvent;

/// The running hooks (at most one at a time in practice).
#[derive(Default)]
pub struct Hooks {
    groups: BTreeMap<HookId, Pid>,
}

impl Hooks {
    /// Starts a hook; its exit arrives as [`DriverEvent::HookExit`].
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
        self.groups.insert(spec.id, pid);
        let (id, events) = (spec.id, events.clone());
        tokio::task::spawn_blocking(move || {
            let status = match child.wait() {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => ChildStatus::Exited(code),
                    (None, Some(sig)) => ChildStatus::Signaled(sig),
                    _ => ChildStatus::Vanished,
                },
                Err(_) => ChildStatus::Vanished,
            };
            // Whatever the hook left in its group goes with it.
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = events.send(DriverEvent::HookExit(id, status));
        });
        Ok(())
    }

    /// Kills a hook's whole process group.
    pub fn kill(&mut self, id: HookId) {
        if let Some(pid) = self.groups.get(&id) {
            let _ = killpg(*pid, Signal::SIGKILL);
        }
    }

    /// The hook is gone.
    pub fn forget(&mut self, id: HookId) {
        self.groups.remove(&id);
    }
}
