//! conchd's claim and result leases: one of each per node, granted on demand and rotated
//! (claims hourly, results daily), so live leases stay bounded whatever the tick rate.
use super::*;

impl Conchd {
    /// Whether `id` grants the claim lease (true) or the result lease (false).
    pub(super) fn lease_slot(&self, id: ReqId) -> Option<bool> {
        match (self.claim_lease, self.result_lease) {
            (Slot::Granting(r), _) if r == id => Some(true),
            (_, Slot::Granting(r)) if r == id => Some(false),
            _ => None,
        }
    }

    pub(super) fn on_lease_granted(&mut self, now: Now, is_claim: bool, response: EtcdResponse) {
        let slot = match response {
            EtcdResponse::Granted { lease, .. } => Slot::Ready(lease, now.wall_ms),
            other => {
                self.out.log(Event::warn("lease-grant-failed").with("error", format!("{other:?}")));
                Slot::Empty
            }
        };
        if is_claim {
            self.claim_lease = slot;
            for (name, tick) in std::mem::take(&mut self.waiting_claims) {
                if slot == Slot::Empty {
                    self.stats.note_skipped_no_session();
                } else {
                    self.claim(now, name, tick);
                }
            }
        } else {
            self.result_lease = slot;
            for write in std::mem::take(&mut self.waiting_results) {
                if slot == Slot::Empty {
                    // No lease now: the results wait for the write retry, not a new grant
                    // at once (etcd may be down; that must not become a busy loop).
                    self.retry_later(now, write);
                } else {
                    self.send_write(now, write);
                }
            }
            self.maybe_finish(now);
        }
    }

    /// The lease in `slot` if it is fresh; else asks for a new one (returns `None`).
    pub(super) fn fresh_lease(&mut self, now: Now, is_claim: bool) -> Option<LeaseId> {
        let (slot, ttl, rotate) = if is_claim {
            (self.claim_lease, CLAIM_LEASE_TTL, CLAIM_LEASE_ROTATE)
        } else {
            (self.result_lease, RESULT_LEASE_TTL, RESULT_LEASE_ROTATE)
        };
        match slot {
            Slot::Ready(lease, at) if now.wall_ms - at < rotate.as_millis() as i64 => Some(lease),
            Slot::Granting(_) => None,
            _ => {
                let id = self.out.request(EtcdRequest::Grant { ttl_s: ttl.as_secs() as i64 });
                if is_claim {
                    self.claim_lease = Slot::Granting(id);
                } else {
                    self.result_lease = Slot::Granting(id);
                }
                None
            }
        }
    }
}
