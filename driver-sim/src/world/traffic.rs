//! Traffic between the clients and SimEtcd: calls over SimNet (lost into a cut, refused
//! while etcd is down, held while it stalls), answers (or their loss), watch streams, and
//! the fault sites on that path.
use std::time::Duration;

use conch_core::{
    EtcdError, EtcdRequest, EtcdResponse, Instant, Outcome as EndpointOutcome, ReqId, Revision, WatchEvent, WatchId,
};

use super::members::Door;
use super::{ns, Ev, Input, Sub, World, CALL_TIMEOUT_NS};
use crate::buggify::Site;
use crate::etcd::write_lease;
use crate::net::Stream;
use crate::record::ClaimRecord;
use conch_core::cron::fire_key_parts;
use conch_core::keys::ROOT;

impl World {
    pub(super) fn send(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest) {
        self.note_send((i, inc, id), &request);
        self.note_call((i, inc, id), &request);
        if self.members.len() > 1 {
            let EtcdRequest::KeepAlive { fresh_stream, .. } = request else {
                let now = self.clients[i].host.mono(self.now);
                let attempt = self.clients[i].endpoints.begin(now, Duration::from_nanos(CALL_TIMEOUT_NS));
                return self.send_attempt(i, inc, id, request, attempt);
            };
            // As the real driver: a keepalive sent while an earlier one is unanswered
            // means the stream's member went silent; the stream opens where the pin is.
            if fresh_stream {
                let stream_member = self.clients[i].stream_member;
                self.endpoint_outcome(i, stream_member, EndpointOutcome::TimedOut);
            }
            let pinned_now = self.clients[i].endpoints.pinned();
            self.clients[i].stream_member = pinned_now;
            match self.door(i) {
                Door::Open => {}
                Door::Silent => return,
                Door::Refused => return self.endpoint_outcome(i, pinned_now, EndpointOutcome::Unavailable),
                Door::NoLeader => return self.endpoint_outcome(i, pinned_now, EndpointOutcome::NoLeader),
            }
        }
        self.send_to_etcd(i, inc, id, request)
    }

    pub(super) fn send_to_etcd(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest) {
        let keepalive = matches!(request, EtcdRequest::KeepAlive { .. });
        if !keepalive && self.buggify.fires(Site::RequestLost) {
            self.site_fired(Site::RequestLost, i);
            // The client hears a failure it cannot tell from a lost answer.
            self.ambiguous_leases.extend(write_lease(&request));
            return self.fail_call(i, inc, id, self.now, "no answer (request lost)");
        }
        match self.net.up(i, self.now) {
            Some(arrival) => self.at(arrival, Ev::Apply(i, inc, id, request, self.now)),
            // Lost on the way: the call's timeout answers (a keepalive stream just stays silent).
            None if !keepalive => {
                self.ambiguous_leases.extend(write_lease(&request));
                self.fail_call(i, inc, id, self.now, "no answer (partition)")
            }
            None => {}
        }
    }

    pub(super) fn fail_call(&mut self, i: usize, inc: u64, id: ReqId, sent: u64, why: &str) {
        let err = EtcdResponse::Error(EtcdError::Unavailable(why.to_string()));
        self.at(sent + CALL_TIMEOUT_NS, Ev::Deliver(i, inc, Input::Response(id, err)));
    }

    pub(super) fn apply(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest, sent: u64) {
        let keepalive = matches!(request, EtcdRequest::KeepAlive { .. });
        if self.net.stalled(self.now) {
            let until = self.net.stalled_until;
            self.at(until, Ev::Apply(i, inc, id, request, sent));
            return;
        }
        if self.net.etcd_down(self.now) {
            self.ambiguous_leases.extend(write_lease(&request));
            if !keepalive {
                let err = EtcdResponse::Error(EtcdError::Unavailable("connection refused".into()));
                let _ = self.respond(i, inc, id, err, sent, false);
            }
            return;
        }
        if !keepalive && self.net.unary_refused(i, self.now) {
            let err = EtcdResponse::Error(EtcdError::Unavailable("etcdserver: too many requests".into()));
            let _ = self.respond(i, inc, id, err, sent, false);
            return;
        }
        let mut response = self.etcd.apply(Instant::from_nanos(self.now), &request);
        self.observe(i, inc, &request, &response);
        if let (EtcdRequest::KeepAlive { fresh_stream: true, .. }, EtcdResponse::KeepAlive { ttl_s }) =
            (&request, &response)
        {
            // As etcd-client: the answer that opened a stream says only that it renewed.
            if *ttl_s > 0 {
                response = EtcdResponse::KeepAliveOpened;
            }
        }
        self.note_renewal((i, inc, id), &request, &response, sent);
        self.notify_watches();
        // A write applied whose answer was lost: the client cannot know its lease got a key.
        let used = write_lease(&request);
        if !self.respond(i, inc, id, response, sent, keepalive) {
            self.ambiguous_leases.extend(used);
        }
    }

    /// Records what the checkers need from an applied request, by its answer: every answer
    /// is named, so a new one does not compile until this says whether the checkers need it.
    pub(super) fn observe(&mut self, i: usize, inc: u64, request: &EtcdRequest, response: &EtcdResponse) {
        match response {
            EtcdResponse::Put { created: true, create_rev, .. } => {
                let campaign =
                    matches!(request, EtcdRequest::PutIfAbsent { .. } | EtcdRequest::PutIfAbsentMarked { .. });
                if campaign {
                    self.key_born.insert(create_rev.0, self.now);
                    self.key_owner.insert(create_rev.0, i);
                }
                if let EtcdRequest::PutIfAbsent { key, .. } = request {
                    if key.starts_with(&format!("{ROOT}cron/result/")) {
                        self.history.insert(key.clone());
                    }
                }
            }
            EtcdResponse::Granted { lease, ttl_s } => {
                self.lease_owner.insert(lease.0, i);
                self.lease_incarnation.insert(lease.0, (i, inc));
                if *ttl_s == self.opts.ttl.as_secs() as i64 {
                    self.session_leases.insert(lease.0);
                }
            }
            // A lost race is no decision of this daemon's; a skip for overlap is.
            EtcdResponse::Claimed { won, existing, .. } => {
                if let (EtcdRequest::Claim { fire_key, .. }, true) = (request, *won || existing.is_none()) {
                    if *won {
                        self.history.insert(fire_key.clone());
                    }
                    self.claim_record(i, inc, fire_key, *won);
                }
            }
            EtcdResponse::Written { .. } => match request {
                EtcdRequest::Put { key, value, lease: Some(_) } if key.starts_with(super::step_down::REQUEST_ROOT) => {
                    self.preempt_record(i, value);
                }
                EtcdRequest::Put { key, .. } if fire_key_parts(key).is_some() => {
                    self.history.insert(key.clone());
                    self.claim_record(i, inc, key, true);
                }
                _ => {}
            },
            // A key that was there already, renewals, reads, deletes, revokes, fenced writes
            // and failures: the checkers read these from the store, the fault log and
            // `world/fenced.rs`.
            EtcdResponse::Put { created: false, .. }
            | EtcdResponse::KeepAlive { .. }
            | EtcdResponse::KeepAliveOpened
            | EtcdResponse::Touched { .. }
            | EtcdResponse::Range { .. }
            | EtcdResponse::Ranges { .. }
            | EtcdResponse::Yielded { .. }
            | EtcdResponse::Deleted { .. }
            | EtcdResponse::Revoked
            | EtcdResponse::Fenced(_)
            | EtcdResponse::Error(_) => {}
        }
    }

    pub(super) fn claim_record(&mut self, i: usize, inc: u64, fire_key: &str, won: bool) {
        let Some((job, tick)) = fire_key_parts(fire_key) else { return };
        let job = job.to_string();
        let (daemon_start_s, daemon_started_at) =
            self.clients[i].daemon_start_s.get(&inc).copied().unwrap_or((i64::MIN, 0));
        self.trace("claim", format_args!("\"client\":{i},\"job\":\"{job}\",\"tick\":{tick},\"won\":{won}"));
        let wall_ms = self.clock(i).wall_ms;
        self.out.claims.push(ClaimRecord {
            client: i,
            job,
            tick,
            at: self.now,
            won,
            daemon_start_s,
            wall_ms,
            daemon_started_at,
            ghost: false,
        });
    }

    pub(super) fn respond(
        &mut self,
        i: usize,
        inc: u64,
        id: ReqId,
        response: EtcdResponse,
        sent: u64,
        keepalive: bool,
    ) -> bool {
        if !keepalive && self.buggify.fires(Site::ResponseLost) {
            self.site_fired(Site::ResponseLost, i);
            self.fail_call(i, inc, id, sent, "no answer (response lost)");
            return false;
        }
        if keepalive && self.buggify.fires(Site::KeepaliveLateThenCut) {
            // Late, but before the deadline the earlier answers set (a keepalive interval
            // is under a third of the TTL), and every later request of the client lost:
            // only the late answer renews the deadline, and it must count from the
            // request's send, not the answer's arrival.
            let ttl = ns(self.opts.ttl);
            let late = sent + ttl / 8 + self.buggify.draw(ttl / 4);
            let until = (late + 2 * ttl).min(self.out.heal_at);
            if until > self.now && !self.net.down_cut(i, late) {
                self.site_fired(Site::KeepaliveLateThenCut, i);
                self.net.cut(i, self.now, until, true, false);
                self.at(until, Ev::HealLink(i));
                self.fault_record(conch_checkers::Kind::CutUp, Some(i), until);
                self.at(late, Ev::Deliver(i, inc, Input::Response(id, response)));
                return true;
            }
        }
        if keepalive && self.buggify.fires(Site::KeepaliveLate) {
            // Just before the holder's deadline: most of the TTL after it was sent.
            let ttl = ns(self.opts.ttl);
            let late = sent + ttl / 2 + self.buggify.draw(ttl / 2);
            self.site_fired(Site::KeepaliveLate, i);
            if !self.net.down_cut(i, late) {
                self.at(late, Ev::Deliver(i, inc, Input::Response(id, response)));
            }
            return true;
        }
        if matches!(response, EtcdResponse::Range { .. } | EtcdResponse::Ranges { .. }) {
            // A rank read's answer (or a range read's) still travels; a frozen host
            // handles it on thawing.
            self.freeze_on_answer(i);
        }
        let stream = if keepalive { Stream::KeepAlive } else { Stream::Unary };
        match self.net.down(i, self.now, stream) {
            Some(arrival) => {
                self.at(arrival, Ev::Deliver(i, inc, Input::Response(id, response)));
                true
            }
            None if !keepalive => {
                self.fail_call(i, inc, id, sent, "no answer (partition)");
                false
            }
            None => false,
        }
    }

    /// The freeze-on-answer site: freezes holder `i`'s host past the stale-answer bound
    /// (and short of its deadline) and deletes its key while it is frozen.
    fn freeze_on_answer(&mut self, i: usize) {
        let holder = matches!(self.clients[i].role, super::Role::Holder { .. });
        if !holder || self.clients[i].host.frozen(self.now) || !self.buggify.fires(Site::FreezeOnAnswer) {
            return;
        }
        let stale = ns(conch_core::hold::STALE_ANSWER);
        let until = self.now + stale + 300_000_000 + self.buggify.draw(ns(self.opts.ttl) / 4);
        // Cut short by the heal, the freeze would end inside the bound, where an answer is
        // trusted by design (a whole-host freeze is an exception of 00-overview).
        if until >= self.out.heal_at {
            return;
        }
        let host = &mut self.clients[i].host;
        host.frozen_until = host.frozen_until.max(until);
        self.at(until, Ev::Thaw(i));
        self.trace("site", format_args!("\"site\":\"{}\",\"client\":{i}", Site::FreezeOnAnswer.as_str()));
        self.fault_record(conch_checkers::Kind::Site(Site::FreezeOnAnswer.as_str()), Some(i), until);
        self.at(self.now + 50_000_000, Ev::AdminDelete(i));
    }

    pub(super) fn site_fired(&mut self, site: Site, i: usize) {
        self.trace("site", format_args!("\"site\":\"{}\",\"client\":{i}", site.as_str()));
        self.fault_record(conch_checkers::Kind::Site(site.as_str()), Some(i), self.now);
    }

    pub(super) fn open_watch(
        &mut self,
        i: usize,
        inc: u64,
        id: WatchId,
        key: String,
        start_rev: Revision,
        prefix: bool,
    ) {
        if self.net.etcd_down(self.now) {
            if let Some(at) = self.net.down(i, self.now, Stream::Watch) {
                let event = WatchEvent::Broken("connection refused".into());
                self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
            }
            self.clients[i].watches.insert(id, Sub { key, prefix, next_rev: i64::MAX });
            return;
        }
        if self.buggify.fires(Site::CompactBeforeWatch) {
            self.site_fired(Site::CompactBeforeWatch, i);
            let rev = self.etcd.revision();
            self.etcd.compact(rev);
        }
        self.clients[i].watches.insert(id, Sub { key, prefix, next_rev: start_rev.0 });
        self.notified_rev = -1;
        self.notify_watches();
    }

    /// Sends every new event to every subscribed watch (held while etcd stalls).
    pub(super) fn notify_watches(&mut self) {
        if self.net.stalled(self.now) || self.net.etcd_down(self.now) {
            return;
        }
        let current = self.etcd.revision().0;
        // Nothing written since the last pass, and every new watch forced one: nothing to send.
        if current == self.notified_rev {
            return;
        }
        self.notified_rev = current;
        self.track_office_truth();
        self.notify_watchers();
        for i in 0..self.clients.len() {
            // Behind a silent or failed member nothing flows; the watch resumes from its
            // next revision once the pin moves or the member is back.
            if self.door(i) != Door::Open {
                continue;
            }
            let inc = self.clients[i].incarnation;
            // Every due watch reads its changes, then their events go out in id order (a
            // send touches only its own watch and the link, never what another one reads).
            let mut found = Vec::new();
            for (id, sub) in self.clients[i].watches.iter_mut() {
                if sub.next_rev > current {
                    continue;
                }
                match self.etcd.watch(&sub.key, sub.prefix, Revision(sub.next_rev)) {
                    Ok(changes) => {
                        sub.next_rev = current + 1;
                        found.extend(changes.into_iter().map(|change| (*id, change.event)));
                    }
                    Err(event) => {
                        sub.next_rev = i64::MAX;
                        found.push((*id, event));
                    }
                }
            }
            for (id, event) in found {
                self.send_event(i, inc, id, event);
            }
        }
    }

    pub(super) fn send_event(&mut self, i: usize, inc: u64, id: WatchId, event: WatchEvent) {
        let event = if matches!(event, WatchEvent::Put(_) | WatchEvent::Delete { .. })
            && self.buggify.fires(Site::WatchCancelled)
        {
            self.site_fired(Site::WatchCancelled, i);
            if let Some(sub) = self.clients[i].watches.get_mut(&id) {
                sub.next_rev = i64::MAX;
            }
            WatchEvent::Broken("watch cancelled by the server".into())
        } else {
            event
        };
        if self.net.down_cut(i, self.now) {
            self.net.hold(i, id, event);
            return;
        }
        if let Some(at) = self.net.down(i, self.now, Stream::Watch) {
            self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
        }
    }
}
