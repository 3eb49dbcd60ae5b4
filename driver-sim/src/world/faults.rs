//! Carrying out the fault plan — crash, pause, freeze, cuts, swizzle, administrative
//! revoke and delete, etcd down or stalled, compaction, clock jumps, one client's calls
//! refused — and healing.
use std::collections::BTreeSet;

use conch_checkers::Kind;
use conch_core::backoff::SplitMix64;
use conch_core::{ChildId, EtcdRequest, Instant, WatchEvent, WatchId};

use super::{Ev, Input, Role, World};
use crate::net::Stream;
use crate::options::FaultKind;
use crate::plan::PlannedFault;

impl World {
    pub(super) fn fault(&mut self, f: PlannedFault) {
        let n = self.clients.len();
        if n == 0 {
            return;
        }
        let i = f.target % n;
        let hold = f.hold_ms * 1_000_000;
        let until = (self.now + hold).min(self.out.heal_at);
        self.trace("fault", format_args!("\"kind\":\"{}\",\"client\":{i},\"hold_ms\":{}", f.kind.as_str(), f.hold_ms));
        match f.kind {
            FaultKind::MemberDown | FaultKind::MemberIsolated | FaultKind::MemberCut => {
                self.member_fault(f.kind, f.target, until)
            }
            FaultKind::Crash => {
                if self.clients[i].machine.is_none() {
                    return;
                }
                self.crash(i);
                let back = self.now + 300_000_000 + f.param % 2_700_000_000;
                self.at(back, Ev::Start(i));
                self.fault_record(Kind::Crash, Some(i), back);
            }
            FaultKind::Pause | FaultKind::Freeze => {
                let host = &mut self.clients[i].host;
                if f.kind == FaultKind::Pause {
                    host.wrapper_stopped_until = host.wrapper_stopped_until.max(until);
                } else {
                    host.frozen_until = host.frozen_until.max(until);
                }
                self.at(until, Ev::Thaw(i));
                self.fault_record(f.kind.record_kind(), Some(i), until);
            }
            FaultKind::Partition | FaultKind::OneWay => {
                let (up, down) = match (f.kind, f.param % 2) {
                    (FaultKind::Partition, _) => (true, true),
                    (_, 0) => (true, false),
                    _ => (false, true),
                };
                self.net.cut(i, self.now, until, up, down);
                self.at(until, Ev::HealLink(i));
                let kind = if f.kind == FaultKind::Partition {
                    Kind::Partition
                } else if up {
                    Kind::CutUp
                } else {
                    Kind::CutDown
                };
                self.fault_record(kind, Some(i), until);
            }
            FaultKind::Swizzle => {
                // A random subset, cut one at a time, healed in random order.
                let mut draw = SplitMix64::new(f.param);
                let members: Vec<usize> = (0..n).filter(|_| draw.next_u64().is_multiple_of(2)).collect();
                let step = hold / (members.len() as u64 + 1);
                let mut heal_order = members.clone();
                for k in (1..heal_order.len()).rev() {
                    heal_order.swap(k, (draw.next_u64() % (k as u64 + 1)) as usize);
                }
                for (k, m) in members.iter().enumerate() {
                    let from = self.now + step * k as u64;
                    let rank = heal_order.iter().position(|h| h == m).unwrap_or(0) as u64;
                    let to = (self.now + hold + step * rank).min(self.out.heal_at);
                    if from < to {
                        self.at(from, Ev::Cut(*m, to));
                    }
                }
            }
            FaultKind::Revoke => {
                let Some(lease) = self.session_lease_of(i) else { return };
                self.admin(i, EtcdRequest::Revoke { lease: conch_core::LeaseId(lease) }, Kind::Revoke);
            }
            FaultKind::KeyDelete => {
                let Some(key) = self.key_of(i) else { return };
                self.admin(i, EtcdRequest::Delete { key }, Kind::KeyDelete);
            }
            FaultKind::EtcdDown => {
                if self.net.etcd_down(self.now) {
                    return;
                }
                self.net.etcd_down_until = until;
                // Every watch stream breaks.
                for c in 0..n {
                    self.break_watches(c, "etcd down");
                }
                for w in 0..self.watchers.len() {
                    self.watcher_stream_broken(w);
                }
                self.at(until, Ev::EtcdBack);
                self.fault_record(Kind::EtcdDown, None, until);
            }
            FaultKind::Stall => {
                if self.net.stalled(self.now) || self.net.etcd_down(self.now) {
                    return;
                }
                self.net.stalled_until = until;
                self.at(until, Ev::EtcdBack);
                self.fault_record(Kind::Stall, None, until);
            }
            FaultKind::Compact => {
                let rev = self.etcd.revision();
                self.etcd.compact(rev);
                self.fault_record(Kind::Compact, None, self.now);
            }
            FaultKind::ClockJump => {
                let size = 1_000 + (f.param >> 1) % 120_000;
                let step = if f.param.is_multiple_of(2) { size as i64 } else { -(size as i64) };
                self.clients[i].host.wall_offset_ms += step;
                // The clock stays wrong until NTP steps it back at the heal.
                self.fault_record(Kind::ClockJump, Some(i), self.out.heal_at);
            }
            FaultKind::ChildKill => {
                let Some(child) = self.clients[i].host.children.keys().next().copied() else { return };
                if self.clients[i].host.frozen(self.now) {
                    return;
                }
                self.fault_record(Kind::ChildKill, Some(i), self.now);
                self.run_child_killed(i);
                self.child_gone(i, child, conch_core::ChildStatus::Signaled(9));
                self.pump(i);
            }
            FaultKind::ReadsRefused => {
                self.net.refuse_unary(i, until);
                self.break_watches(i, "watch cancelled by the server");
                self.fault_record(Kind::ReadsRefused, Some(i), until);
            }
            FaultKind::ChildStop => {
                let Some(c) = self.clients[i].host.children.values_mut().next() else { return };
                c.stopped_until = c.stopped_until.max(until);
                self.fault_record(Kind::ChildStop, Some(i), until);
            }
        }
    }

    /// Breaks every watch of client `c` (no event reaches it after the break).
    fn break_watches(&mut self, c: usize, why: &str) {
        let inc = self.clients[c].incarnation;
        let ids: Vec<WatchId> = self.clients[c].watches.keys().copied().collect();
        for id in ids {
            if let Some(sub) = self.clients[c].watches.get_mut(&id) {
                sub.next_rev = i64::MAX;
            }
            self.send_event(c, inc, id, WatchEvent::Broken(why.into()));
        }
    }

    /// An administrative write (`etcdctl lease revoke`, `etcdctl del`) against client `i`.
    pub(super) fn admin(&mut self, i: usize, request: EtcdRequest, kind: Kind) {
        if self.net.etcd_down(self.now) || self.net.stalled(self.now) {
            return;
        }
        self.etcd.apply(Instant::from_nanos(self.now), &request);
        self.notify_watches();
        self.fault_record(kind, Some(i), self.now);
    }

    pub(super) fn session_lease_of(&self, i: usize) -> Option<i64> {
        let live: BTreeSet<i64> = self.etcd.leases().into_iter().map(|l| l.0).collect();
        self.lease_owner
            .iter()
            .rev()
            .find(|(l, o)| **o == i && self.session_leases.contains(l) && live.contains(l))
            .map(|(l, _)| *l)
    }

    pub(super) fn key_of(&self, i: usize) -> Option<String> {
        let Role::Holder { spec, .. } = &self.clients[i].role else { return None };
        self.etcd
            .range(&spec.prefix())
            .into_iter()
            .find(|kv| self.lease_owner.get(&kv.lease.0) == Some(&i))
            .map(|kv| kv.key)
    }

    /// SIGKILL of the wrapper: its shim sees the pipe close.
    pub(super) fn crash(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.machine = None;
        c.incarnation += 1;
        c.watches.clear();
        c.host.wrapper_stopped_until = 0;
        self.hooks_die(i);
        let c = &mut self.clients[i];
        let now = c.host.mono(self.now);
        let children: Vec<ChildId> = c.host.children.keys().copied().collect();
        for child in children {
            if let Some(ch) = self.clients[i].host.children.get_mut(&child) {
                ch.wrapper_gone = Some(self.now);
                ch.rules.handle_input(now, conch_core::shim_rules::ShimInput::LinkClosed);
            }
            self.shim_perform(i, child);
        }
    }

    pub(super) fn heal_link(&mut self, i: usize) {
        let (held, broke) = self.net.heal(i, self.now);
        let inc = self.clients[i].incarnation;
        self.trace("heal", format_args!("\"client\":{i},\"broke\":{broke}"));
        if broke {
            let ids: BTreeSet<WatchId> = held.iter().map(|(id, _)| *id).collect();
            for id in ids {
                if let Some(at) = self.net.down(i, self.now, Stream::Watch) {
                    let event = WatchEvent::Broken("stream reset".into());
                    self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
                }
            }
            return;
        }
        for (id, event) in held {
            if let Some(at) = self.net.down(i, self.now, Stream::Watch) {
                self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
            }
        }
    }

    pub(super) fn etcd_back(&mut self) {
        if self.net.etcd_down(self.now) || self.net.stalled(self.now) {
            return;
        }
        self.etcd.renew_all(Instant::from_nanos(self.now));
        self.trace("etcd-back", format_args!("\"rev\":{}", self.etcd.revision().0));
        self.notify_watches();
    }

    /// The liveness phase begins: every fault heals, clocks are stepped back by NTP.
    pub(super) fn heal_all(&mut self) {
        self.phase_liveness = true;
        self.buggify.switch_off();
        self.trace("phase", format_args!("\"phase\":\"liveness\""));
        let stalled = self.net.stalled(self.now) || self.net.etcd_down(self.now);
        self.net.stalled_until = self.net.stalled_until.min(self.now);
        self.net.etcd_down_until = self.net.etcd_down_until.min(self.now);
        if stalled {
            self.etcd_back();
        }
        self.heal_members();
        for i in 0..self.clients.len() {
            let host = &mut self.clients[i].host;
            host.wrapper_stopped_until = host.wrapper_stopped_until.min(self.now);
            host.frozen_until = host.frozen_until.min(self.now);
            if host.wall_offset_ms != 0 {
                host.wall_offset_ms = 0;
                self.fault_record(Kind::ClockReset, Some(i), self.now);
            }
            self.heal_link(i);
            // The workload settles too: children of the safety phase finish within 2 s, so
            // the convergence bound does not depend on how long they meant to hold.
            let ending: Vec<(ChildId, u64)> =
                self.clients[i].host.children.iter().filter(|(_, c)| !c.forever).map(|(id, c)| (*id, c.gen)).collect();
            for (child, gen) in ending {
                let delay = self.rng.next_u64() % 2_000_000_000;
                self.at(self.now + delay, Ev::ChildEnd(i, child, gen));
            }
        }
    }
}
