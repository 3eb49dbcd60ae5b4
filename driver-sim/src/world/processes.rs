//! The processes on a SimHost: a child starts under its shim's rules, the rules' signals
//! end it (a stubborn child ignores SIGTERM), and every end is logged as an interval. A
//! shim whose wrapper died, or whose session's `term_at` passed, revokes the session lease
//! once its child is gone (the rules say when; the call goes over the host's link like any other, its answer unheard).
use conch_core::shim_rules::{ShimInput, ShimRules, ShimSignal};
use conch_core::{ChildId, ChildStatus, EtcdRequest, HoldSpec, Input, Instant, LeaseId, ReqId, SpawnSpec};

use super::{Ev, Role, World};
use crate::host::SimChild;
use crate::record::{Group, Interval, Promotion, ShimEnd};

impl World {
    pub(super) fn spawn(&mut self, i: usize, spec: SpawnSpec) {
        let env = |name: &str| spec.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let rev: i64 = env("CONCH_REV").and_then(|v| v.parse().ok()).unwrap_or(0);
        let label = match (env("CONCH_NAME"), env("CONCH_TICK")) {
            (Some(name), Some(tick)) => format!("{name}@{tick}"),
            _ => String::new(),
        };
        let stubborn = self.rng.next_u64() % 1000 < self.opts.stubborn_permille;
        let forever = self.phase_liveness && matches!(self.clients[i].role, Role::Holder { .. });
        let mut rules = ShimRules::new(spec.term_at, spec.kill_at, spec.kill_after).with_sabotage(self.opts.sabotage);
        if let Some(lease) = spec.lease {
            rules.handle_input(self.clients[i].host.mono(self.now), ShimInput::Lease(lease));
        }
        self.seq += 1;
        let gen = self.seq;
        let child = spec.child;
        let group = self.group_of(i);
        // A holder with a fence hands its shim no lease: the fence runs on the hold after
        // the child (01-cli `--fence`), so only the wrapper may end it.
        let session_lease = self.session_lease_of(i).filter(|_| self.opts.hooks.is_none());
        if let Role::Holder { spec: hold, .. } = &self.clients[i].role {
            let keys = self.etcd.range(&hold.prefix());
            let lower = keys.iter().filter(|kv| kv.create_rev.0 < rev).count();
            let lease = env("CONCH_LEASE").and_then(|v| i64::from_str_radix(&v, 16).ok());
            let key_rev = keys.iter().find(|kv| Some(kv.lease.0) == lease).map(|kv| kv.create_rev.0);
            let queued = keys.len();
            let priority = hold.priority;
            // Other candidates' priorities come from their holder records (as `--who`'s).
            let higher = keys
                .iter()
                .filter(|kv| kv.create_rev.0 != rev)
                .filter_map(|kv| {
                    let p = conch_core::values::Holder::decode(&kv.value)?.priority.unwrap_or(0);
                    let owner = *self.lease_owner.get(&kv.lease.0)?;
                    let born = self.key_born.get(&kv.create_rev.0).copied().unwrap_or(0);
                    (p > priority).then_some((owner, p, born))
                })
                .collect();
            self.out.promotions.push(Promotion {
                client: i,
                group,
                rev,
                lower,
                queued,
                key_rev,
                at: self.now,
                priority,
                higher,
            });
        }
        self.clients[i].host.children.insert(
            child,
            SimChild {
                rules,
                shim_gen: 0,
                rev,
                label: label.clone(),
                start: self.now,
                stubborn,
                stopped_until: 0,
                forever,
                gen,
                told_kill_at: spec.kill_at.as_nanos(),
                told_term_at: spec.term_at.as_nanos(),
                lease: session_lease,
                wrapper_gone: None,
                stop: None,
            },
        );
        self.cycle_child_started(i, gen, spec.term_at.as_nanos());
        *self.changes.entry(group).or_insert(0) += 1;
        self.trace("child-start", format_args!("\"client\":{i},\"rev\":{rev},\"label\":\"{label}\""));
        if !forever {
            let hold = match &self.clients[i].role {
                Role::Daemon => self.run_ms(&label),
                Role::Holder { .. } => self.draw_between(self.opts.hold_ms),
            };
            self.at(self.now + hold * 1_000_000, Ev::ChildEnd(i, child, gen));
        }
        if self.opts.fenced_writes && matches!(self.clients[i].role, Role::Holder { .. }) {
            self.start_writes(i, child, gen, &spec.env);
        }
        self.queue_input(i, Input::ChildStarted(child, 100_000 + gen as u32));
        self.schedule_shim(i, child);
    }

    pub(super) fn run_ms(&mut self, label: &str) -> u64 {
        let name = label.split('@').next().unwrap_or("");
        let range = self.opts.jobs.iter().find(|j| j.name == name).map_or((100, 200), |j| j.run_ms);
        self.draw_between(range)
    }

    pub(super) fn draw_between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.rng.next_u64() % (hi.saturating_sub(lo) + 1)
    }

    /// The office and semaphore of this world (those with clients), once each.
    pub(super) fn contests(&self) -> Vec<(Group, HoldSpec)> {
        let mut contests: Vec<(Group, HoldSpec)> = Vec::new();
        for c in &self.clients {
            if let Role::Holder { group, spec } = &c.role {
                if !contests.iter().any(|(g, _)| g == group) {
                    contests.push((*group, spec.clone()));
                }
            }
        }
        contests
    }

    pub(super) fn group_of(&self, i: usize) -> Group {
        self.opts.group(i)
    }

    pub(super) fn schedule_shim(&mut self, i: usize, child: ChildId) {
        let now = self.clients[i].host.mono(self.now);
        let Some(c) = self.clients[i].host.children.get_mut(&child) else { return };
        c.shim_gen += 1;
        let (gen, next) = (c.shim_gen, c.rules.poll_timeout(now));
        let when = self.clients[i].host.sim_time_of(next).max(self.now + 1);
        self.at(when, Ev::Shim(i, child, gen));
    }

    pub(super) fn shim_perform(&mut self, i: usize, child: ChildId) {
        let mut signals = Vec::new();
        let mut revoke = None;
        if let Some(c) = self.clients[i].host.children.get_mut(&child) {
            while let Some(a) = c.rules.poll_action() {
                signals.push(a);
            }
            revoke = c.rules.poll_revoke();
        }
        if let Some(lease) = revoke {
            self.shim_revoke(i, lease);
        }
        for signal in signals {
            self.note_signal(i, child, matches!(signal, ShimSignal::Kill));
            let Some(c) = self.clients[i].host.children.get(&child) else { return };
            match signal {
                ShimSignal::Term(_) if c.stubborn || self.now < c.stopped_until => {}
                ShimSignal::Term(_) => return self.child_gone(i, child, ChildStatus::Signaled(15)),
                ShimSignal::Kill => return self.child_gone(i, child, ChildStatus::Signaled(9)),
            }
        }
        self.schedule_shim(i, child);
    }

    /// The child is gone: its interval is logged and its exit queued for the machine (the
    /// caller pumps once it is done, so a kill performed mid-drain never re-enters it).
    pub(super) fn child_gone(&mut self, i: usize, child: ChildId, status: ChildStatus) {
        let Some(mut c) = self.clients[i].host.children.remove(&child) else { return };
        // A simulated child takes its whole group with it: the shim's rule then reports.
        let now = self.clients[i].host.mono(self.now);
        c.rules.handle_input(now, ShimInput::Reaped { main_exited: true, children_left: false });
        debug_assert!(c.rules.exit_due(), "an empty group is the shim's report, by its rules");
        if let Some(lease) = c.rules.poll_revoke() {
            self.shim_revoke(i, lease);
        }
        self.cycle_child_gone(i, c.gen, c.stop.is_some());
        let (group, rev) = (self.group_of(i), c.rev);
        if matches!(self.clients[i].role, Role::Holder { .. }) {
            let host = &self.clients[i].host;
            self.out.shim_ends.push(ShimEnd {
                client: i,
                rev,
                lease: c.lease,
                start: c.start,
                end: self.now,
                wrapper_gone: c.wrapper_gone,
                term_at: host.sim_time_of(Instant::from_nanos(c.told_term_at)),
                lease_gone: None,
            });
        }
        self.log_interval(i, c);
        *self.changes.entry(group).or_insert(0) += 1;
        self.trace("child-end", format_args!("\"client\":{i},\"rev\":{rev},\"status\":\"{status:?}\""));
        if self.opts.hooks.is_some() && self.clients[i].host.wrapper_blocked(self.now) {
            // A stopped wrapper reads the shim's report once it runs again (in seeds with
            // hooks, whose fence then starts late and must still end by kill_at; seeds
            // without keep the older model, so they replay as before).
            let inc = self.clients[i].incarnation;
            self.at(self.now, Ev::Deliver(i, inc, Input::ChildExit(child, status)));
            return;
        }
        self.queue_input(i, Input::ChildExit(child, status));
    }

    /// The shim's one revoke: over the host's link to etcd (lost in a cut, refused while
    /// etcd is down, never retried); nobody hears the answer (an incarnation no wrapper has).
    pub(super) fn shim_revoke(&mut self, i: usize, lease: LeaseId) {
        self.trace("shim-revoke", format_args!("\"client\":{i},\"lease\":{}", lease.0));
        self.send_to_etcd(i, u64::MAX, ReqId(u64::MAX), EtcdRequest::Revoke { lease });
    }

    /// Logs the life of a child that ended now.
    pub(super) fn log_interval(&mut self, i: usize, c: SimChild) {
        self.out.intervals.push(Interval {
            client: i,
            rev: c.rev,
            pid: 0,
            start: c.start,
            end: Some(self.now),
            tick: (!c.label.is_empty()).then_some(c.label),
            signalled: false,
        });
    }
}
