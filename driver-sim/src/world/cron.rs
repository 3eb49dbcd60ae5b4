//! The cron daemons' side of the world that the other clients do not have: the
//! `skipped-late` records the late-tick checker reads, and the `late-apply` fault site.
//!
//! `late-apply` (drawn only with several members and daemons, see [`crate::options`]):
//! a daemon's write attempt (a claim, a release, a result) reaches a member that takes
//! it, but its answer does not come back: the client's attempt times out and the core's
//! endpoint machine retries on another member, while etcd applies the first attempt
//! later — before the retry (the retry finds it: conchd's "retry found our claim"), or
//! after the retry was answered (a claim the daemon heard as failed or skipped lands
//! anyway: its running key is a ghost on the daemon's live session, which conchd sweeps
//! at its next skipped tick of the job). Real etcd did this in the functional tester
//! (BLACKHOLE_PEER_PORT_TX_RX_LEADER, MOVE_LEADER); one member's door cannot.
use conch_core::{Attempt, EtcdRequest, Event, Instant, Outcome as EndpointOutcome, ReqId};

use super::{Ev, Role, World};
use crate::buggify::Site;
use crate::etcd::write_lease;
use crate::record::LateSkip;

/// Longest a late-applied attempt lands after its attempt timed out.
const LATE_APPLY_AFTER_MAX_NS: u64 = 3_000_000_000;

impl World {
    /// Records a daemon's `skipped-late` event with the wall clock its machine read.
    pub(super) fn late_skip_record(&mut self, i: usize, event: &Event) {
        let tick =
            event.field("tick").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.timestamp());
        let (Some(job), Some(tick)) = (event.field("job"), tick) else { return };
        let wall_ms = self.clock(i).wall_ms;
        self.trace("skipped-late", format_args!("\"client\":{i},\"job\":\"{job}\",\"tick\":{tick}"));
        self.out.late_skips.push(LateSkip { client: i, job: job.to_string(), tick, at: self.now, wall_ms });
    }

    /// The `late-apply` site at an attempt of daemon `i` to an open member: if it fires,
    /// the attempt times out for the client and etcd applies `request` later, unanswered.
    pub(super) fn late_apply(
        &mut self,
        i: usize,
        inc: u64,
        id: ReqId,
        request: &EtcdRequest,
        attempt: Attempt,
    ) -> bool {
        let write = matches!(
            request,
            EtcdRequest::Claim { .. } | EtcdRequest::PutIfAbsent { .. } | EtcdRequest::DeleteIfCreateRev { .. }
        );
        if !write || !matches!(self.clients[i].role, Role::Daemon) || !self.buggify.fires(Site::LateApply) {
            return false;
        }
        let timeout = attempt.timeout.as_nanos() as u64;
        let arrival = self.now + self.opts.latency_us.0 * 1000;
        let apply_at = arrival + self.buggify.draw(timeout + LATE_APPLY_AFTER_MAX_NS);
        self.trace("site", format_args!("\"site\":\"{}\",\"client\":{i}", Site::LateApply.as_str()));
        self.fault_record(conch_checkers::Kind::Site(Site::LateApply.as_str()), Some(i), apply_at);
        self.ambiguous_leases.extend(write_lease(request));
        let failed = Ev::AttemptFailed(i, inc, id, Box::new(request.clone()), attempt, EndpointOutcome::TimedOut);
        self.at(self.now + timeout, failed);
        self.at(apply_at, Ev::LateApply(i, inc, Box::new(request.clone())));
        true
    }

    /// etcd applies a late attempt (held while it stalls, never while it is down); nobody
    /// hears the answer. A claim it lands is marked a ghost for the running-key checker.
    pub(super) fn late_applied(&mut self, i: usize, inc: u64, request: EtcdRequest) {
        if self.net.stalled(self.now) {
            let until = self.net.stalled_until;
            self.at(until, Ev::LateApply(i, inc, Box::new(request)));
            return;
        }
        if self.net.etcd_down(self.now) {
            return;
        }
        let recorded = self.out.claims.len();
        let response = self.etcd.apply(Instant::from_nanos(self.now), &request);
        self.observe(i, inc, &request, &response);
        for claim in &mut self.out.claims[recorded..] {
            claim.ghost = claim.won;
        }
        self.trace("late-applied", format_args!("\"client\":{i}"));
        self.notify_watches();
    }
}
