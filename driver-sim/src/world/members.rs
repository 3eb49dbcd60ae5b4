//! etcd members as the clients see them. SimEtcd is the cluster's one replicated store;
//! a member is a door into it that one fault at a time can close: down (refused at once),
//! isolated from its peers (answers "no leader", its streams break) or cut off from the
//! clients (no answer, streams silent). A member fault never takes more than a minority
//! of the members, so the store keeps its quorum; losing the quorum is `etcd-down` and
//! `stall`.
//!
//! Each client runs the core's [`conch_core::Endpoints`] machine, as the real driver
//! does: unary calls go to the pinned member and are tried again elsewhere as it says; a
//! stream failure (a member going down or isolated under it, a keepalive unanswered for
//! the core's retry interval) is reported to it, and when the pin moves the client's
//! watches resume on the new member from the revision after their last event.
use conch_core::{Attempt, EtcdError, EtcdRequest, EtcdResponse, Next, Outcome, ReqId, Switch};

use super::{Ev, Input, World};
use crate::options::FaultKind;

/// The state of one member.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Member {
    down_until: u64,
    isolated_until: u64,
    cut_until: u64,
}

/// What a member does with a client's traffic now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Door {
    Open,
    Refused,
    NoLeader,
    Silent,
}

impl Member {
    fn door(&self, now: u64) -> Door {
        if now < self.down_until {
            Door::Refused
        } else if now < self.isolated_until {
            Door::NoLeader
        } else if now < self.cut_until {
            Door::Silent
        } else {
            Door::Open
        }
    }

    fn faulted(&self, now: u64) -> bool {
        self.door(now) != Door::Open
    }
}

impl World {
    /// What client `i`'s pinned member does with traffic now (always open with one member).
    pub(super) fn door(&self, i: usize) -> Door {
        let pinned = self.clients[i].endpoints.pinned();
        self.members.get(pinned).map_or(Door::Open, |m| m.door(self.now))
    }

    /// Carries out a member fault of the plan; skipped if it would take the quorum.
    pub(super) fn member_fault(&mut self, kind: FaultKind, target: usize, until: u64) {
        let n = self.members.len();
        if n < 2 {
            return;
        }
        let m = target % n;
        let others_faulted = (0..n).filter(|&k| k != m && self.members[k].faulted(self.now)).count();
        if others_faulted + 1 > (n - 1) / 2 {
            return;
        }
        let member = &mut self.members[m];
        match kind {
            FaultKind::MemberDown => member.down_until = member.down_until.max(until),
            FaultKind::MemberIsolated => member.isolated_until = member.isolated_until.max(until),
            _ => member.cut_until = member.cut_until.max(until),
        }
        self.trace("member", format_args!("\"member\":{m},\"kind\":\"{}\",\"until\":{until}", kind.as_str()));
        self.fault_record(kind.record_kind(), None, until);
        self.at(until, Ev::MemberBack(m));
        // Streams on a member that went down or lost its leader break: every client
        // pinned there hears it now (a silent member is noticed by its silence).
        let outcome = match self.members[m].door(self.now) {
            Door::Refused => Outcome::Unavailable,
            Door::NoLeader => Outcome::NoLeader,
            _ => return,
        };
        for i in 0..self.clients.len() {
            if self.clients[i].machine.is_some() && self.clients[i].endpoints.pinned() == m {
                self.endpoint_outcome(i, m, outcome);
            }
        }
    }

    /// A member's fault ended: watches held behind its silence flow again.
    pub(super) fn member_back(&mut self, m: usize) {
        if self.members.get(m).is_some_and(|member| !member.faulted(self.now)) {
            self.trace("member-back", format_args!("\"member\":{m}"));
            self.notified_rev = -1;
            self.notify_watches();
        }
    }

    /// Every member fault ends (the liveness phase).
    pub(super) fn heal_members(&mut self) {
        for m in 0..self.members.len() {
            self.members[m] = Member::default();
        }
        self.notified_rev = -1;
    }

    /// Feeds an outcome on member `m` to client `i`'s endpoint machine.
    pub(super) fn endpoint_outcome(&mut self, i: usize, m: usize, outcome: Outcome) {
        let now = self.clients[i].host.mono(self.now);
        if let Some(switch) = self.clients[i].endpoints.handle_outcome(now, m, outcome) {
            self.switched(i, switch);
        }
    }

    /// The pin of client `i` moved: its watches resume on the new member (from their next
    /// revision, which only ever advances past delivered events).
    fn switched(&mut self, i: usize, switch: Switch) {
        self.out.failovers += 1;
        self.trace("failover", format_args!("\"client\":{i},\"from\":{},\"to\":{}", switch.from, switch.to));
        self.notified_rev = -1;
        self.notify_watches();
    }

    /// A unary call of client `i` as a sequence of attempts, one member at a time.
    pub(super) fn send_attempt(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest, attempt: Attempt) {
        let door = self.members.get(attempt.endpoint).map_or(Door::Open, |m| m.door(self.now));
        // A refusal or a "no leader" comes back after a round trip; silence after the
        // attempt's timeout.
        let round_trip = 2 * self.opts.latency_us.0 * 1000;
        let failed = match door {
            Door::Open if self.late_apply(i, inc, id, &request, attempt) => return,
            Door::Open => return self.send_to_etcd(i, inc, id, request),
            Door::Refused => (round_trip, Outcome::Unavailable),
            Door::NoLeader => (round_trip, Outcome::NoLeader),
            Door::Silent => (attempt.timeout.as_nanos() as u64, Outcome::TimedOut),
        };
        self.at(self.now + failed.0, Ev::AttemptFailed(i, inc, id, Box::new(request), attempt, failed.1));
    }

    /// An attempt failed: the machine says where to try next, or hands the failure on.
    pub(super) fn attempt_failed(
        &mut self,
        i: usize,
        inc: u64,
        id: ReqId,
        request: EtcdRequest,
        attempt: Attempt,
        outcome: Outcome,
    ) {
        if self.clients[i].incarnation != inc || self.clients[i].machine.is_none() {
            return;
        }
        let now = self.clients[i].host.mono(self.now);
        let (next, switch) = self.clients[i].endpoints.attempt_done(now, attempt, outcome);
        if let Some(switch) = switch {
            self.switched(i, switch);
        }
        match next {
            Next::Retry(again) if again.delay.is_zero() => self.send_attempt(i, inc, id, request, again),
            Next::Retry(again) => {
                let when = self.now + again.delay.as_nanos() as u64;
                self.at(when, Ev::Attempt(i, inc, id, Box::new(request), again));
            }
            Next::Deliver => {
                self.ambiguous_leases.extend(crate::etcd::write_lease(&request));
                let why = match outcome {
                    Outcome::NoLeader => "etcdserver: no leader".to_string(),
                    Outcome::TimedOut => format!("no answer within {}ms", attempt.timeout.as_millis()),
                    _ => "connection refused".to_string(),
                };
                let failure = EtcdResponse::Error(EtcdError::Unavailable(why));
                self.at(self.now, Ev::Deliver(i, inc, Input::Response(id, failure)));
            }
        }
    }
}
