//! Guarded writes by holders' children (`--fenced-writes`): each running child of an
//! office or semaphore makes a `conch put` every few hundred milliseconds — the request
//! `conch_core::fenced` builds from the child's `CONCH_KEY` and `CONCH_REV` — over its own
//! connection (its own latency draws; a cut of its host's link loses it; a fifth of them
//! are slow, held up to two TTLs on the way, as a paused child or a congested link would
//! hold them). SimEtcd applies the guard as etcd does; the world records, from the store
//! and independently of the guard, whether the writer's key still held at that revision.
//! The `fenced-writes` checker then asks that no write landed from a holder that was
//! deposed: the Jepsen scenario of a late write after a successor took over.
use std::collections::BTreeMap;

use conch_core::backoff::SplitMix64;
use conch_core::fenced::{self, Guard};
use conch_core::{ChildId, EtcdRequest, EtcdResponse, Instant};

use super::{Ev, Role, World};
use crate::record::{FencedWrite, Group};

/// The key the children write (outside `/conch/`, as `conch put` requires).
pub const WRITE_PREFIX: &str = "/sim/fenced/";
/// Pause between two writes of one child (ms).
const EVERY_MS: (u64, u64) = (200, 1500);
/// One write in this many is slow.
const SLOW_ONE_IN: u64 = 5;

/// The writers' own random stream and the guards of the children that write.
#[derive(Debug)]
pub(super) struct Writes {
    rng: SplitMix64,
    guards: BTreeMap<(usize, ChildId), Guard>,
}

impl Writes {
    /// A stream of its own, so the rest of a seed draws what it always drew.
    pub(super) fn new(seed: u64) -> Writes {
        Writes { rng: SplitMix64::new(seed ^ 0x00FE_4CED_0000_0001), guards: BTreeMap::new() }
    }

    fn between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.rng.next_u64() % (hi.saturating_sub(lo) + 1)
    }
}

/// One write on its way to etcd.
#[derive(Debug)]
pub(super) struct Write {
    pub(super) client: usize,
    token: i64,
    sent: u64,
    request: EtcdRequest,
}

impl World {
    /// A child started with a hold: it writes until it is gone.
    pub(super) fn start_writes(&mut self, i: usize, child: ChildId, gen: u64, env: &[(String, String)]) {
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        // The same check `conch put` makes; a child without a guard never writes.
        let Ok(guard) = fenced::guard_from_env(var("CONCH_KEY"), var("CONCH_REV")) else { return };
        self.writes.guards.insert((i, child), guard);
        let delay = self.writes.between(EVERY_MS) * 1_000_000;
        self.at(self.now + delay, Ev::ChildWrite(i, child, gen));
    }

    /// The child's next write, if it still runs (a stopped or frozen child writes later).
    pub(super) fn child_write(&mut self, i: usize, child: ChildId, gen: u64) {
        let Some(c) = self.clients[i].host.children.get(&child).filter(|c| c.gen == gen) else {
            self.writes.guards.remove(&(i, child));
            return;
        };
        let paused_until = c.stopped_until.max(self.clients[i].host.frozen_until);
        if self.now < paused_until {
            self.at(paused_until, Ev::ChildWrite(i, child, gen));
            return;
        }
        let Some(guard) = self.writes.guards.get(&(i, child)).cloned() else { return };
        let token = guard.rev.0;
        let value = format!("client={i} token={token}");
        let group = self.group_of(i).as_str();
        if let Ok(txn) = fenced::put(&format!("{WRITE_PREFIX}{group}"), value.as_bytes()) {
            let request = fenced::request(guard, txn, self.opts.sabotage);
            if !self.net.up_cut(i, self.now) {
                let (lo, hi) = self.net.latency(i);
                let mut delay = self.writes.between((lo, hi));
                if self.writes.rng.next_u64().is_multiple_of(SLOW_ONE_IN) {
                    delay += self.writes.between((0, 2 * self.opts.ttl.as_nanos() as u64));
                }
                let write = Write { client: i, token, sent: self.now, request };
                self.at(self.now + delay, Ev::ApplyWrite(Box::new(write)));
            }
        }
        let next = self.writes.between(EVERY_MS) * 1_000_000;
        self.at(self.now + next, Ev::ChildWrite(i, child, gen));
    }

    /// etcd applies a write (held while it stalls, refused while it is down).
    pub(super) fn apply_write(&mut self, write: Write) {
        if self.net.stalled(self.now) {
            let until = self.net.stalled_until;
            self.at(until, Ev::ApplyWrite(Box::new(write)));
            return;
        }
        if self.net.etcd_down(self.now) {
            return;
        }
        let Role::Holder { group, spec } = &self.clients[write.client].role else { return };
        let (group, capacity): (Group, usize) = (*group, self.opts.capacity(*group));
        let ranked = self.etcd.range(&spec.prefix());
        let held = ranked.iter().position(|kv| kv.create_rev.0 == write.token).is_some_and(|rank| rank < capacity);
        let response = self.etcd.apply(Instant::from_nanos(self.now), &write.request);
        let landed = matches!(response, EtcdResponse::Fenced(ref a) if a.held);
        self.trace(
            "fenced-write",
            format_args!("\"client\":{},\"token\":{},\"landed\":{landed},\"held\":{held}", write.client, write.token),
        );
        self.out.fenced.push(FencedWrite {
            client: write.client,
            group,
            token: write.token,
            sent: write.sent,
            at: self.now,
            landed,
            held,
        });
        self.notify_watches();
    }
}
