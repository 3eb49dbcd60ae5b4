//! What `retry-pacing` and `kill-grace` read: every etcd call of a holder's wrapper with
//! when its answer was handled, and every holder child's SIGTERM and SIGKILL with the
//! session's `kill_at` its shim had been told — all on the host's monotonic clock, the
//! clock the core's delays count on.
use conch_core::{ChildId, EtcdError, EtcdRequest, EtcdResponse, ReqId};

use super::{Role, World};
use crate::record::{Answer, CallRecord, StopRecord};

/// The name of a request's kind (its variant).
fn kind(request: &EtcdRequest) -> &'static str {
    match request {
        EtcdRequest::Grant { .. } => "grant",
        EtcdRequest::KeepAlive { .. } => "keepalive",
        EtcdRequest::PutIfAbsent { .. } => "put-if-absent",
        EtcdRequest::TouchIfCreateRev { .. } => "touch",
        EtcdRequest::RangePrefix { .. } => "range-prefix",
        EtcdRequest::Ranges { .. } => "ranges",
        EtcdRequest::PutIfAbsentMarked { .. } => "put-if-absent-marked",
        EtcdRequest::Yield { .. } => "yield",
        EtcdRequest::DeleteIfCreateRevMarked { .. } => "delete-marked",
        EtcdRequest::DeleteIfCreateRev { .. } => "delete-if-create-rev",
        EtcdRequest::Revoke { .. } => "revoke",
        EtcdRequest::Put { .. } => "put",
        EtcdRequest::Claim { .. } => "claim",
        EtcdRequest::Delete { .. } => "delete",
        EtcdRequest::FencedTxn { .. } => "fenced-txn",
    }
}

impl World {
    /// A holder's wrapper sends `request` now.
    pub(super) fn note_call(&mut self, (i, inc, id): (usize, u64, ReqId), request: &EtcdRequest) {
        if !matches!(self.clients[i].role, Role::Holder { .. }) {
            return;
        }
        let lease = match request {
            EtcdRequest::KeepAlive { lease, .. } => Some(lease.0),
            _ => None,
        };
        if matches!(request, EtcdRequest::Grant { .. }) {
            self.cycle_grant_sent(i);
        }
        let cycle = id.0 / conch_core::service::ID_STRIDE;
        self.call_index.insert((i, inc, id.0), self.out.calls.len());
        let sent = self.clients[i].host.mono(self.now).as_nanos();
        self.out.calls.push(CallRecord {
            client: i,
            run: (inc, cycle),
            kind: kind(request),
            lease,
            sent,
            sent_at: self.now,
            answer: None,
        });
    }

    /// The wrapper handles the answer to its call `id` now (the first answer counts).
    pub(super) fn note_answer(&mut self, (i, inc, id): (usize, u64, ReqId), response: &EtcdResponse) {
        let Some(&at) = self.call_index.get(&(i, inc, id.0)) else { return };
        let answer = match response {
            EtcdResponse::KeepAlive { ttl_s } if *ttl_s <= 0 => Answer::Other,
            EtcdResponse::Error(EtcdError::Unavailable(_)) => Answer::Unavailable,
            EtcdResponse::Error(_) => Answer::Other,
            _ => Answer::Ok,
        };
        let now = self.clients[i].host.mono(self.now).as_nanos();
        self.out.calls[at].answer.get_or_insert((now, answer));
    }

    /// The shim of holder `i`'s `child` sends SIGTERM (`kill`: SIGKILL) now.
    pub(super) fn note_signal(&mut self, i: usize, child: ChildId, kill: bool) {
        if !matches!(self.clients[i].role, Role::Holder { .. }) {
            return;
        }
        let now = self.clients[i].host.mono(self.now).as_nanos();
        let Some(c) = self.clients[i].host.children.get_mut(&child) else { return };
        match (c.stop, kill) {
            (None, _) => {
                c.stop = Some(self.out.stops.len());
                self.out.stops.push(StopRecord {
                    client: i,
                    rev: c.rev,
                    term: (!kill).then_some(now),
                    kill_at: c.told_kill_at,
                    kill: kill.then_some(now),
                    span: (self.now, self.now),
                });
            }
            (Some(at), true) => {
                let stop = &mut self.out.stops[at];
                if stop.kill.is_none() {
                    stop.kill = Some(now);
                    stop.span.1 = self.now;
                }
            }
            (Some(_), false) => {}
        }
    }
}
