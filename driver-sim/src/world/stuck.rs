//! What the watchdog's verdict names: the client an event is for, and its machine.
use super::{Ev, Role, World};

impl Ev {
    /// The client an event is for, if one.
    pub(super) fn client(&self) -> Option<usize> {
        match self {
            Ev::Start(i)
            | Ev::Deliver(i, ..)
            | Ev::Apply(i, ..)
            | Ev::LateApply(i, ..)
            | Ev::AttemptFailed(i, ..)
            | Ev::Attempt(i, ..)
            | Ev::Timer(i, _)
            | Ev::Shim(i, ..)
            | Ev::ChildEnd(i, ..)
            | Ev::HookEnd(i, ..)
            | Ev::ChildWrite(i, ..)
            | Ev::Thaw(i)
            | Ev::AdminDelete(i)
            | Ev::Cut(i, _)
            | Ev::HealLink(i) => Some(*i),
            Ev::ApplyWrite(write) => Some(write.client),
            Ev::MemberBack(_)
            | Ev::StepDown(_)
            | Ev::StepDownClean(_)
            | Ev::Expire
            | Ev::Fault(_)
            | Ev::EtcdBack
            | Ev::Heal
            | Ev::Converge(_)
            | Ev::Shutdown
            | Ev::Watcher(..) => None,
        }
    }
}

impl World {
    /// The watchdog's verdict with the machine it names.
    pub(super) fn name_stuck(&self, stuck: crate::watchdog::Stuck) -> String {
        let who = stuck.busiest;
        let machine = match self.clients.get(who).map(|c| (&c.role, &c.machine)) {
            None => "the world itself (faults, expiry)".to_string(),
            Some((_, None)) => format!("client {who} (no machine running)"),
            Some((Role::Daemon, _)) => format!("client {who}'s conchd"),
            Some((Role::Holder { group, .. }, _)) => format!("client {who}'s {} runner", group.as_str()),
        };
        format!("{}; the busiest is {machine}, {} of them", stuck.what, stuck.events)
    }
}
