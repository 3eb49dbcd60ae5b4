//! conchd's SIGTERM: stop claiming, stop the runs, write their results, revoke, exit 0.
use super::*;

/// Most fire keys the shutdown reads back in one transaction to settle the claim lease.
const SETTLE_KEYS_MAX: usize = 64;

impl Conchd {
    pub(super) fn on_signal(&mut self, now: Now, signal: WrapperSignal) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_deadline = Some(now.mono.plus(self.cfg.kill_after + SHUTDOWN_WRITES_MAX + Duration::from_secs(1)));
        self.out.log(Event::info("conchd-stop").with("signal", signal.number()).with("runs", self.runs.len()));
        let kill_at = self.session.kill_by(now.mono);
        for run in self.runs.values_mut() {
            run.supervisor.terminate(now.mono, kill_at, "conchd stopping", &mut self.out);
        }
        self.settle_claim_lease(now);
        self.maybe_finish(now);
    }

    pub(super) fn maybe_finish(&mut self, _now: Now) {
        if !self.stopping || self.done || !self.revokes.is_empty() {
            return;
        }
        if !self.runs.is_empty() || !self.writes.is_empty() || !self.waiting_results.is_empty() {
            return;
        }
        self.session.stop();
        // The session, and a claim or result lease that never got a key: nothing of this
        // daemon's is left behind but the cron history (fire keys and results keep their
        // leases, so a tick stays claimed for a day and a result for two weeks).
        // A lease with a claim still unsettled (its read failed until the deadline) may
        // hold a fire key: it is kept.
        let empty = [self.claim_lease, self.result_lease].into_iter().filter_map(|slot| match slot {
            Slot::Ready(lease, _) if !self.keyed_leases.contains(&lease) && !self.unsettled.contains_key(&lease) => {
                Some(lease)
            }
            _ => None,
        });
        let leases: Vec<LeaseId> = self.session.lease().into_iter().chain(empty).collect();
        for lease in leases {
            let id = self.out.request(EtcdRequest::Revoke { lease });
            self.revokes.insert(id);
        }
        if self.revokes.is_empty() {
            self.finish();
        }
    }

    /// The claim lease has no key we know of but claims whose answer was an error: read
    /// their fire keys (retried as a write, until the shutdown's deadline) so the lease is
    /// revoked if none of them landed. A lease only rotated away is not revoked anyway.
    fn settle_claim_lease(&mut self, now: Now) {
        let Slot::Ready(lease, _) = self.claim_lease else { return };
        if self.keyed_leases.contains(&lease) {
            return;
        }
        let Some(claims) = self.unsettled.get(&lease) else { return };
        if claims.len() > SETTLE_KEYS_MAX {
            // More than one read of etcd's transaction size (--max-txn-ops, 128 by
            // default): keep the lease, as a guess on the safe side (it expires in 25 h).
            self.keyed_leases.insert(lease);
            return;
        }
        let keys = claims.iter().map(|(name, tick)| fire_key(name, *tick)).collect();
        self.send_write(now, Write::Settle { lease, keys });
    }

    pub(super) fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.out.log(Event::info("conchd-exit"));
            self.out.push(Output::Exit(ExitCode::OK));
        }
    }
}
