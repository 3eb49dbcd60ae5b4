//! conchd's SIGTERM: stop claiming, stop the runs, write their results, revoke, exit 0.
use super::*;

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
        let empty = [self.claim_lease, self.result_lease].into_iter().filter_map(|slot| match slot {
            Slot::Ready(lease, _) if !self.keyed_leases.contains(&lease) => Some(lease),
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

    pub(super) fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.out.log(Event::info("conchd-exit"));
            self.out.push(Output::Exit(ExitCode::OK));
        }
    }
}
