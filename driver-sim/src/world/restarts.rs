//! What `restart-pacing` reads ([`crate::check_restart`]): per service cycle of a holder's
//! wrapper that ended with another to come (the service's `backoff` log), how its child
//! lived and ended as the host saw it — started, gone, its stop ordered by the wrapper,
//! signalled by its shim or ended by itself,
//! the `term_at` its shim was told, its wrapper stopped or frozen meanwhile — whether an
//! on-acquire hook ran or the runner logged a loss, and when the next cycle's grant went
//! out; all on the wrapper host's monotonic clock, the clock the core's delays count on.
use std::collections::BTreeMap;

use super::{Role, World};
use crate::record::{ChildLife, RestartRecord};

/// Per incarnation `(client, incarnation)`.
#[derive(Debug, Default)]
pub(super) struct Cycles {
    /// The running cycle's facts.
    open: BTreeMap<(usize, u64), Facts>,
    /// The record whose next cycle has not yet sent its grant (its index in `restarts`).
    waiting: BTreeMap<(usize, u64), usize>,
}

/// What one cycle did so far.
#[derive(Debug, Default)]
struct Facts {
    /// The cycle's child (its world generation) and its life so far.
    child: Option<(u64, ChildLife)>,
    acquire_hook: bool,
    lost: bool,
}

impl World {
    fn cycle_key(&self, i: usize) -> (usize, u64) {
        (i, self.clients[i].incarnation)
    }

    /// The facts of the cycle whose child is `gen` (a crashed incarnation's child may
    /// outlive it).
    fn cycle_of_child(&mut self, i: usize, gen: u64) -> Option<&mut ChildLife> {
        let open = self.cycles.open.range_mut((i, 0)..=(i, u64::MAX));
        open.filter_map(|(_, f)| f.child.as_mut()).find(|(g, _)| *g == gen).map(|(_, life)| life)
    }

    /// Holder `i`'s wrapper started child `gen` now, its shim told `term_at`.
    pub(super) fn cycle_child_started(&mut self, i: usize, gen: u64, term_at: u64) {
        if !matches!(self.clients[i].role, Role::Holder { .. }) {
            return;
        }
        let started = self.clients[i].host.mono(self.now).as_nanos();
        let life =
            ChildLife { started, ended: started, stop_ordered: false, signalled: false, term_at, blocked: false };
        let key = self.cycle_key(i);
        self.cycles.open.entry(key).or_default().child = Some((gen, life));
    }

    /// The wrapper told child `gen`'s shim a later `term_at`.
    pub(super) fn cycle_deadlines(&mut self, i: usize, gen: u64, term_at: u64) {
        if let Some(life) = self.cycle_of_child(i, gen) {
            life.term_at = term_at;
        }
    }

    /// The wrapper ordered child `gen`'s stop.
    pub(super) fn cycle_stop_ordered(&mut self, i: usize, gen: u64) {
        if let Some(life) = self.cycle_of_child(i, gen) {
            life.stop_ordered = true;
        }
    }

    /// Child `gen` is gone now (`signalled`: its shim had signalled it).
    pub(super) fn cycle_child_gone(&mut self, i: usize, gen: u64, signalled: bool) {
        let now = self.clients[i].host.mono(self.now).as_nanos();
        let blocked = self.clients[i].host.wrapper_blocked(self.now);
        if let Some(life) = self.cycle_of_child(i, gen) {
            life.ended = now;
            life.signalled = signalled;
            life.blocked = blocked;
        }
    }

    /// Holder `i`'s wrapper runs its on-acquire hook now.
    pub(super) fn cycle_acquire_hook(&mut self, i: usize) {
        let key = self.cycle_key(i);
        self.cycles.open.entry(key).or_default().acquire_hook = true;
    }

    /// Holder `i`'s runner logged a lost hold or a failed etcd call.
    pub(super) fn cycle_lost(&mut self, i: usize) {
        let key = self.cycle_key(i);
        self.cycles.open.entry(key).or_default().lost = true;
    }

    /// Holder `i`'s service logged its `backoff`: the cycle ended, another comes.
    pub(super) fn cycle_ended(&mut self, i: usize) {
        if !matches!(self.clients[i].role, Role::Holder { .. }) {
            return;
        }
        let key = self.cycle_key(i);
        let facts = self.cycles.open.remove(&key).unwrap_or_default();
        self.cycles.waiting.insert(key, self.out.restarts.len());
        self.out.restarts.push(RestartRecord {
            client: i,
            incarnation: key.1,
            ended: (self.clients[i].host.mono(self.now).as_nanos(), self.now),
            began: None,
            child: facts.child.map(|(_, life)| life),
            acquire_hook: facts.acquire_hook,
            lost: facts.lost,
        });
    }

    /// Holder `i`'s wrapper sends a grant now: a cycle begins.
    pub(super) fn cycle_grant_sent(&mut self, i: usize) {
        let key = self.cycle_key(i);
        if let Some(at) = self.cycles.waiting.remove(&key) {
            self.out.restarts[at].began = Some((self.clients[i].host.mono(self.now).as_nanos(), self.now));
        }
    }
}
