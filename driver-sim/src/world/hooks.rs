//! The hook processes on a SimHost (`--on-acquire`, `--on-lose`, `--fence`): a hook ends
//! by itself after a drawn time with a drawn status (a fence sometimes overruns its
//! budget), or at once, signalled 9, on the machine's `KillHook`. A frozen host freezes its
//! hooks; a crashed wrapper's hooks die with it (their process group goes with the wrapper,
//! as in the real driver). In the liveness phase every hook succeeds in time. Every draw
//! here happens only when a seed configures hooks.
use conch_core::{ChildStatus, EtcdRequest, HookId, HookKind, HookSpec, Input, Instant, Output};

use super::{Ev, World};
use crate::host::SimHook;
use crate::record::HookRecord;

impl World {
    /// `Output::RunHook`: starts the hook, ending by itself after a drawn time.
    pub(super) fn run_hook(&mut self, i: usize, spec: HookSpec) {
        let rev = spec.env.iter().find(|(k, _)| k == "CONCH_REV").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let budget_ms = self.opts.hooks.map_or(1000, |h| h.fence_budget.as_millis() as u64).max(2);
        let roll = self.rng.next_u64() % 100;
        let (ms, status) = match (spec.kind, roll) {
            (HookKind::Fence, 0..=79) => (1 + self.rng.next_u64() % (budget_ms / 2), ChildStatus::Exited(0)),
            (HookKind::Fence, 80..=87) => (1 + self.rng.next_u64() % (budget_ms / 2), ChildStatus::Exited(1)),
            // Overruns its budget: the wrapper must kill it.
            (HookKind::Fence, _) => (budget_ms + 1 + self.rng.next_u64() % budget_ms, ChildStatus::Exited(0)),
            (_, 0..=94) => (1 + self.rng.next_u64() % 300, ChildStatus::Exited(0)),
            (_, _) => (1 + self.rng.next_u64() % 300, ChildStatus::Exited(1)),
        };
        // After the heal nothing fails (as children then hold to the end): a hook that
        // failed or overran would be a fault the liveness phase does not allow for.
        let (ms, status) =
            if self.phase_liveness { (ms.min(budget_ms / 2), ChildStatus::Exited(0)) } else { (ms, status) };
        self.seq += 1;
        let gen = self.seq;
        let inc = self.clients[i].incarnation;
        let lease = self.lease_incarnation.iter().filter(|(_, o)| **o == (i, inc)).map(|(l, _)| *l).max();
        let hook = SimHook { kind: spec.kind, incarnation: inc, rev, start: self.now, status, gen, lease };
        self.clients[i].host.hooks.insert(spec.id, hook);
        if spec.kind == HookKind::OnAcquire {
            self.cycle_acquire_hook(i);
        }
        self.trace("hook-start", format_args!("\"client\":{i},\"hook\":\"{}\",\"rev\":{rev}", spec.kind.as_str()));
        self.at(self.now + ms * 1_000_000, Ev::HookEnd(i, spec.id, gen));
    }

    /// `Output::KillHook`: the hook's group is SIGKILLed; its exit is queued for the drain.
    pub(super) fn kill_hook(&mut self, i: usize, id: HookId) {
        if self.hook_gone(i, id, ChildStatus::Signaled(9)) {
            self.queue_input(i, Input::HookExit(id, ChildStatus::Signaled(9)));
        }
    }

    /// The hook's own end came due (later if its host is frozen).
    pub(super) fn hook_end(&mut self, i: usize, id: HookId, gen: u64) {
        if self.clients[i].host.frozen(self.now) {
            let resume = self.clients[i].host.frozen_until;
            self.at(resume, Ev::HookEnd(i, id, gen));
            return;
        }
        let Some(h) = self.clients[i].host.hooks.get(&id).filter(|h| h.gen == gen) else { return };
        let (status, inc) = (h.status, h.incarnation);
        if self.hook_gone(i, id, status) {
            // The wrapper reaps it when it runs (a stopped wrapper later).
            self.at(self.now, Ev::Deliver(i, inc, Input::HookExit(id, status)));
        }
    }

    /// A crashed wrapper's hooks die with it; their runs end with no exit code.
    pub(super) fn hooks_die(&mut self, i: usize) {
        let ids: Vec<HookId> = self.clients[i].host.hooks.keys().copied().collect();
        for id in ids {
            self.hook_gone(i, id, ChildStatus::Vanished);
        }
        self.clients[i].awaiting_exit = None;
    }

    /// Logs the end of hook `id`; false if it was not running.
    fn hook_gone(&mut self, i: usize, id: HookId, status: ChildStatus) -> bool {
        let Some(h) = self.clients[i].host.hooks.remove(&id) else { return false };
        let now = Instant::from_nanos(self.now);
        let lease_expired = h.lease.and_then(|l| self.etcd.lease_expired_at(l, now)).map(|at| at.as_nanos());
        let status_text = match status {
            ChildStatus::Exited(code) => format!("exit {code}"),
            ChildStatus::Signaled(sig) => format!("signal {sig}"),
            ChildStatus::Vanished => "crashed".to_string(),
        };
        self.trace(
            "hook-end",
            format_args!("\"client\":{i},\"hook\":\"{}\",\"status\":\"{status_text}\"", h.kind.as_str()),
        );
        self.out.hooks.push(HookRecord {
            client: i,
            group: self.group_of(i),
            kind: h.kind.as_str(),
            rev: h.rev,
            start: h.start,
            end: self.now,
            status: status_text,
            ok: status == ChildStatus::Exited(0),
            lease_expired,
            run_exit: None,
            writes_after: Vec::new(),
        });
        if h.kind == HookKind::Fence && status != ChildStatus::Vanished {
            self.clients[i].awaiting_exit = Some(self.out.hooks.len() - 1);
        }
        true
    }

    /// After a fence ended: the deletes and revokes its run sends and the code it ends with.
    pub(super) fn note_after_fence(&mut self, i: usize, output: &Output) {
        let Some(k) = self.clients[i].awaiting_exit else { return };
        let code = match output {
            Output::Etcd { request, .. } => {
                let what = match request {
                    EtcdRequest::Delete { key } | EtcdRequest::DeleteIfCreateRev { key, .. } => format!("delete {key}"),
                    EtcdRequest::Revoke { lease } => format!("revoke {:x}", lease.0),
                    _ => return,
                };
                self.out.hooks[k].writes_after.push(what);
                return;
            }
            Output::Exit(code) => code.0,
            Output::Log(event) if event.kind == "backoff" => match event.field("code").and_then(|v| v.parse().ok()) {
                Some(code) => code,
                None => return,
            },
            _ => return,
        };
        self.out.hooks[k].run_exit = Some(code);
        self.clients[i].awaiting_exit = None;
    }
}
