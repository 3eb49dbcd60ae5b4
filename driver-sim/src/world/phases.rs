//! The end of a run: the convergence looks, the shutdown, and what was left behind.
use std::collections::BTreeSet;

use conch_core::{Input, Instant, WrapperSignal};

use super::World;
use crate::record::{Convergence, Leftovers, Outcome};

impl World {
    pub(super) fn converge(&mut self, second: bool) {
        if second {
            self.watchers_look();
        }
        for (k, (group, spec)) in self.contests().into_iter().enumerate() {
            let clients: Vec<usize> = (0..self.clients.len()).filter(|c| self.group_of(*c) == group).collect();
            let holders: Vec<usize> =
                clients.iter().copied().filter(|c| !self.clients[*c].host.children.is_empty()).collect();
            if !second {
                self.out.convergence.push(Convergence {
                    group,
                    clients,
                    holders_first: holders,
                    holders: Vec::new(),
                    ranked: Vec::new(),
                    idle: Vec::new(),
                    changes: self.changes.get(&group).copied().unwrap_or(0),
                });
                continue;
            }
            let keys = self.etcd.range(&spec.prefix());
            let owners: Vec<usize> = keys.iter().filter_map(|kv| self.lease_owner.get(&kv.lease.0).copied()).collect();
            let ranked: Vec<usize> = owners.iter().copied().take(spec.slots as usize).collect();
            let idle: Vec<usize> =
                clients.iter().copied().filter(|c| !holders.contains(c) && !owners.contains(c)).collect();
            if let Some(conv) = self.out.convergence.get_mut(k) {
                conv.changes = self.changes.get(&group).copied().unwrap_or(0) - conv.changes;
                conv.holders = holders;
                conv.ranked = ranked;
                conv.idle = idle;
            }
        }
    }

    pub(super) fn shutdown(&mut self) {
        self.stopping = true;
        self.trace("phase", format_args!("\"phase\":\"shutdown\""));
        for i in 0..self.clients.len() {
            self.run_signalled(i);
            self.feed(i, Input::Signal(WrapperSignal::Terminate));
        }
    }

    pub(super) fn finish(mut self) -> Outcome {
        self.out.end_at = self.now;
        self.etcd.expire(Instant::from_nanos(self.now));
        for end in &mut self.out.shim_ends {
            end.lease_gone = end.lease.and_then(|l| self.etcd.lease_ended_at(l)).map(|at| at.as_nanos());
        }
        let mut keys = Vec::new();
        for (_, spec) in self.contests() {
            keys.extend(self.etcd.range(&spec.prefix()).into_iter().map(|kv| kv.key));
        }
        let live: BTreeSet<i64> = self.etcd.leases().into_iter().map(|l| l.0).collect();
        // A session lease left behind, or any lease without a key (a daemon's claim or
        // result lease that never got one) granted to a process that exited by itself.
        let empty = live.iter().copied().filter(|l| {
            self.etcd.lease_keys(conch_core::LeaseId(*l)) == 0
                && self.grants_heard.contains(l)
                && !self.ambiguous_leases.contains(l)
                && self.lease_incarnation.get(l).is_some_and(|owner| self.clean_exits.contains(owner))
        });
        let leases: BTreeSet<i64> = self.session_leases.intersection(&live).copied().chain(empty).collect();
        self.out.leftovers = Leftovers {
            keys,
            leases: leases.into_iter().collect(),
            children: (0..self.clients.len())
                .filter(|i| !self.clients[*i].host.children.is_empty() || !self.clients[*i].host.hooks.is_empty())
                .collect(),
            running: (0..self.clients.len()).filter(|i| self.clients[*i].machine.is_some()).collect(),
            history_lost: self
                .history
                .iter()
                .filter(|key| !self.etcd.range(key).iter().any(|kv| &kv.key == *key))
                .cloned()
                .collect(),
            results: self
                .etcd
                .range(&format!("{}cron/result/", conch_core::keys::ROOT))
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
        };
        // Children still running are logged up to the end.
        for i in 0..self.clients.len() {
            for c in std::mem::take(&mut self.clients[i].host.children).into_values() {
                self.log_interval(i, c);
            }
        }
        self.out.trace.push(format!(
            "{{\"t\":{},\"ev\":\"end\",\"events\":{},\"rev\":{}}}",
            self.now,
            self.out.events,
            self.etcd.revision().0
        ));
        if !self.opts.trace {
            self.out.trace.clear();
        }
        self.out
    }
}
