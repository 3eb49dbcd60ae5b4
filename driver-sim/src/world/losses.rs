//! The truth behind a lost hold, for the `loss-cause` checker ([`crate::check_loss`]):
//! which renewals each wrapper had handled (the grant and keepalive answers fed to its
//! machine, with the instant their request was sent), which leases acquired, and at the
//! loss the store's view of the hold's key and lease.
use std::collections::{BTreeMap, BTreeSet};

use conch_core::{EtcdRequest, EtcdResponse, Instant, ReqId};

use super::{Role, World};
use crate::record::{LossRecord, LossTruth};

/// What the world tracks for [`LossTruth`].
#[derive(Debug, Default)]
pub(super) struct Renewals {
    /// When the client sent each grant and keepalive not yet applied (ns): a grant's
    /// attempts may reach etcd later, on another member, but the client counts from here.
    sent: BTreeMap<(usize, u64, ReqId), u64>,
    /// Answers on their way that renew a lease: (client, incarnation, request) → (lease,
    /// the deadline they promise: send instant + TTL, ns).
    pending: BTreeMap<(usize, u64, ReqId), (i64, u64)>,
    /// Per lease, the latest deadline promised by an answer its wrapper handled (ns).
    until: BTreeMap<i64, u64>,
    /// Leases whose wrapper logged `acquired`.
    acquired: BTreeSet<i64>,
}

/// A lease id as the core's log fields print it (lowercase hex).
fn lease_field(event: &conch_core::Event, key: &str) -> Option<i64> {
    i64::from_str_radix(event.field(key)?, 16).ok()
}

impl World {
    /// Client `i` sends `request` now.
    pub(super) fn note_send(&mut self, (i, inc, id): (usize, u64, ReqId), request: &EtcdRequest) {
        if matches!(request, EtcdRequest::Grant { .. } | EtcdRequest::KeepAlive { .. }) {
            self.renewals.sent.insert((i, inc, id), self.now);
        }
    }

    /// An answer etcd gives to a request applied: a grant, or a keepalive that renewed,
    /// promises the lease until the request's send + the TTL (etcd counts from receipt).
    pub(super) fn note_renewal(
        &mut self,
        (i, inc, id): (usize, u64, ReqId),
        request: &EtcdRequest,
        response: &EtcdResponse,
        sent: u64,
    ) {
        let sent = self.renewals.sent.remove(&(i, inc, id)).unwrap_or(sent).min(sent);
        let s = 1_000_000_000u64;
        let promise = match (request, response) {
            (_, EtcdResponse::Granted { lease, ttl_s }) => Some((lease.0, *ttl_s)),
            (EtcdRequest::KeepAlive { lease, .. }, EtcdResponse::KeepAlive { ttl_s }) if *ttl_s > 0 => {
                Some((lease.0, *ttl_s))
            }
            (EtcdRequest::KeepAlive { lease, .. }, EtcdResponse::KeepAliveOpened) => {
                Some((lease.0, self.opts.ttl.as_secs() as i64))
            }
            _ => None,
        };
        if let Some((lease, ttl_s)) = promise {
            self.renewals.pending.insert((i, inc, id), (lease, sent + ttl_s.max(0) as u64 * s));
        }
    }

    /// Client `i`'s machine is handed the answer to `id` now.
    pub(super) fn renewal_heard(&mut self, i: usize, inc: u64, id: ReqId) {
        if let Some((lease, until)) = self.renewals.pending.remove(&(i, inc, id)) {
            let at = self.renewals.until.entry(lease).or_insert(0);
            *at = (*at).max(until);
        }
    }

    /// Client `i` logged `acquired`.
    pub(super) fn note_acquired(&mut self, event: &conch_core::Event) {
        if let Some(lease) = lease_field(event, "lease") {
            self.renewals.acquired.insert(lease);
        }
    }

    /// The record of client `i`'s hold lost now, as its `lost` (or `etcd-failed`) log says.
    pub(super) fn loss_record(&self, i: usize, event: &conch_core::Event, reason: String) -> LossRecord {
        let lease = lease_field(event, "lease");
        let rev = event.field("rev").and_then(|v| v.parse::<i64>().ok());
        let now = Instant::from_nanos(self.now);
        let lease_alive = lease.is_some_and(|l| {
            self.etcd.leases().iter().any(|x| x.0 == l) && self.etcd.lease_expired_at(l, now).is_none()
        });
        let (mut key_present, mut ranked_in) = (false, false);
        if let (Role::Holder { spec, .. }, Some(rev)) = (&self.clients[i].role, rev) {
            let keys = self.etcd.range(&spec.prefix());
            if let Some(rank) = keys.iter().position(|kv| kv.create_rev.0 == rev) {
                key_present = true;
                ranked_in = rank < spec.slots as usize;
            }
        }
        let truth = LossTruth {
            lease,
            lease_alive,
            key_present,
            acquired: lease.is_some_and(|l| self.renewals.acquired.contains(&l)),
            ranked_in,
            renewed_until: lease.and_then(|l| self.renewals.until.get(&l).copied()),
        };
        LossRecord { client: i, at: self.now, reason, truth }
    }
}
