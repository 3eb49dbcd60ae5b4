//! Step-down requests (`--step-downs`): every few seconds of the safety phase, the office's
//! leader is asked to step down as `conch elect OFFICE --step-down` asks it — a request
//! naming its token under `conch_core::step_down::prefix`, deleted again a while later as
//! the requester does. The world records which client's child ran with that token; the
//! `step-down` checker asks that child to end within the kill grace, unless a fault
//! around it explains a delay.
use conch_core::backoff::SplitMix64;
use conch_core::keys::Name;
use conch_core::step_down::{self, Request};
use conch_core::{EtcdRequest, Instant, LeaseId};

use super::{Ev, World};
use crate::record::{Group, PreemptRecord, StepDownRecord};

/// Pause between two requests (ms).
const EVERY_MS: (u64, u64) = (3_000, 10_000);
/// No request this close to the heal (ns): the hand-over settles before convergence looks.
const QUIET_BEFORE_HEAL_NS: u64 = 15_000_000_000;
/// Where every office's step-down requests live (a client's write there is a pre-emption).
pub(super) const REQUEST_ROOT: &str = "/conch/v1/stepdown/";
/// Lease ids the simulated requesters' keys are named after (never granted).
const REQUESTER_BASE: i64 = 0x5_7E9D_0000;

impl World {
    pub(super) fn schedule_step_down(&mut self, n: u64) {
        let mut rng = SplitMix64::new(self.opts.seed ^ 0x57E9_D0E5 ^ n);
        let (lo, hi) = EVERY_MS;
        let delay = (lo + rng.next_u64() % (hi - lo + 1)) * 1_000_000;
        let when = self.now + delay;
        if when + QUIET_BEFORE_HEAL_NS < self.out.heal_at {
            self.at(when, Ev::StepDown(n));
        }
    }

    /// Asks the office's current leader to step down.
    pub(super) fn step_down(&mut self, n: u64) {
        self.schedule_step_down(n + 1);
        if self.net.etcd_down(self.now) || self.net.stalled(self.now) {
            return;
        }
        let Some((_, spec)) = self.contests().into_iter().find(|(g, _)| *g == Group::Office) else { return };
        let Some(leader) = self.etcd.range(&spec.prefix()).into_iter().next() else { return };
        let token = leader.create_rev.0;
        let client = (0..self.clients.len()).find(|&i| {
            self.group_of(i) == Group::Office && self.clients[i].host.children.values().any(|c| c.rev == token)
        });
        let Ok(office) = Name::new(spec.name.as_str()) else { return };
        let key = step_down::key(&office, LeaseId(REQUESTER_BASE + n as i64));
        let value = Request { rev: token, host: "sim".into(), pid: 0 }.encode();
        self.etcd.apply(Instant::from_nanos(self.now), &EtcdRequest::Put { key: key.clone(), value, lease: None });
        self.notify_watches();
        self.trace("step-down", format_args!("\"token\":{token},\"client\":{}", client.map_or(-1, |c| c as i64)));
        self.out.step_downs.push(StepDownRecord { at: self.now, token, client });
        let clean = 2 * self.opts.ttl.as_nanos() as u64 + self.opts.kill_after.as_nanos() as u64;
        self.at(self.now + clean, Ev::StepDownClean(key));
    }

    /// A `--preempt` candidate's request reached etcd: whom it asks, of which priority.
    pub(super) fn preempt_record(&mut self, client: usize, value: &[u8]) {
        let Some(request) = Request::decode(value) else { return };
        let token = request.rev;
        let target = self.key_owner.get(&token).copied();
        let live = self
            .contests()
            .into_iter()
            .find(|(g, _)| *g == Group::Office)
            .is_some_and(|(_, spec)| self.etcd.range(&spec.prefix()).iter().any(|kv| kv.create_rev.0 == token));
        let (priority, target_priority) = (self.opts.priority(client), target.map_or(0, |t| self.opts.priority(t)));
        self.trace("preempt", format_args!("\"client\":{client},\"token\":{token},\"live\":{live}"));
        self.out.preempts.push(PreemptRecord { at: self.now, client, priority, token, target, target_priority, live });
    }

    /// The requester deletes its request.
    pub(super) fn step_down_clean(&mut self, key: String) {
        if self.net.etcd_down(self.now) || self.net.stalled(self.now) {
            self.at(self.now + 1_000_000_000, Ev::StepDownClean(key));
            return;
        }
        self.etcd.apply(Instant::from_nanos(self.now), &EtcdRequest::Delete { key });
        self.notify_watches();
    }
}
