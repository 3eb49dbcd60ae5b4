//! conchd's writes after a claim or a run, retried until they land: the release of the
//! running key, the tick's result, and the sweep of a running key an ambiguous claim may
//! have left.
//!
//! # The rules
//!
//! * A failed write is retried after a decorrelated-jitter delay between
//!   [`WRITE_RETRY_BASE`] and [`WRITE_RETRY_MAX`] ([`crate::backoff::Backoff`]), until it
//!   lands; a release or sweep only while the session its key is on lives (the key goes
//!   with that lease otherwise).
//! * A release is `DeleteIfCreateRev` with the claim's revision (the running key and the
//!   fire key are created in one transaction): a retry can never delete a later run's key.
//! * A result is put only if its key is absent (`PutIfAbsent`): the key names the job and
//!   the tick, so a retry after an ambiguous failure can neither write a second result nor
//!   touch another tick's.
//! * A claim that failed ambiguously (a timeout: it may have been applied) is followed by a
//!   sweep: read the running key and, if it is on our session and carries our claim of that
//!   tick, release it as above. The tick itself stays claimed and unrun (a zombie).
//! * At shutdown, a claim lease with no key we know of but claims answered with an error
//!   is settled by reading those claims' fire keys: revoked if none is on it, kept if one
//!   is (or if the read never lands before the shutdown's deadline).
//! * A tick skipped for overlap while this daemon runs nothing of the job and claims
//!   nothing else of it is followed by a ghost sweep: a running key of ours on our session
//!   from another tick (an earlier one, or a later one before the wall clock stepped
//!   back) has no run (a claim attempt that timed out, was answered on a
//!   retry, and was applied by etcd later) and is released as above, or every node would
//!   skip the job for as long as our session lives.
//! * A release not landed [`RELEASE_RETRY_FOR`] after the run ended while the session
//!   still lives gives the session up: keepalives stop (a revoke is tried), runs on it stop,
//!   a new session is asked for.
//!
//! # The bound: [`running_key_bound`]`(ttl) = RELEASE_RETRY_FOR + ttl`
//!
//! A run ends at `e` and its release is sent at once. Either the release lands before
//! `e + RELEASE_RETRY_FOR`, or by then the session has been lost (its deadline passed, so
//! keepalives stopped) or is given up by the rule above. Once keepalives stop, etcd expires
//! the lease — and the running key on it — at most one TTL after it last renewed it, and
//! it cannot have renewed it after the keepalives stopped. So a running key outlives its run
//! by at most `RELEASE_RETRY_FOR + ttl` (20 s at the default TTL of 10 s), plus etcd's own
//! slack: a leader change restarts every lease's TTL once, and the lessor checks expiry
//! every 500 ms. While etcd answers, it is one round trip; after an outage that the session
//! survived, at most a call timeout (2 s) + [`WRITE_RETRY_MAX`] + a round trip after etcd
//! answers again. A sweep's key is bounded the same way from the claim's failure.
use crate::backoff::Backoff;
use crate::cron::running_key;
use crate::etcd::RangeSpec;

use super::*;

/// First delay before retrying a failed write.
pub const WRITE_RETRY_BASE: Duration = Duration::from_millis(200);
/// Longest delay between two attempts of a write.
pub const WRITE_RETRY_MAX: Duration = Duration::from_secs(1);
/// Longest a release of the running key is retried while its session lives; then the
/// session is given up (see the module doc).
pub const RELEASE_RETRY_FOR: Duration = Duration::from_secs(10);
/// Results kept for retry at most (the oldest is dropped, and logged, beyond).
pub const RESULTS_PENDING_MAX: usize = 1024;

/// How long a running key may outlive its run at a session TTL of `ttl` (module doc).
pub fn running_key_bound(ttl: Duration) -> Duration {
    RELEASE_RETRY_FOR + ttl
}

/// One write conchd owes etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Write {
    /// Delete the running key if its create revision is still the claim's.
    Release {
        /// The running key.
        key: String,
        /// The claim's revision.
        create_rev: Revision,
        /// The session lease the key is on.
        lease: LeaseId,
        /// When the run ended (or the sweep found the key).
        since: Instant,
    },
    /// The tick's result, put if absent on the result lease.
    Result {
        /// The job.
        name: String,
        /// The tick (Unix s).
        tick: i64,
        /// Result JSON.
        value: Vec<u8>,
    },
    /// At shutdown, read the fire keys of the claims on `lease` whose answers were errors:
    /// the lease is keyed if one of them is on it, else empty (and revoked).
    Settle {
        /// The claim lease.
        lease: LeaseId,
        /// The fire keys of its unsettled claims.
        keys: Vec<String>,
    },
    /// Read the running key after an ambiguous claim of `tick`.
    Sweep {
        /// The job.
        name: String,
        /// The tick the claim was for.
        tick: i64,
        /// The session lease the claim would have put the key on.
        lease: LeaseId,
        /// When the claim failed.
        since: Instant,
        /// A sweep after a tick skipped for overlap while this daemon runs nothing of the
        /// job: any running key of ours on `lease` is a ghost (a claim
        /// attempt that timed out, answered on a retry, and was applied later by etcd).
        stale: bool,
    },
}

impl Write {
    /// The session lease a release or sweep depends on.
    fn lease(&self) -> Option<LeaseId> {
        match self {
            Write::Release { lease, .. } | Write::Sweep { lease, .. } => Some(*lease),
            Write::Result { .. } | Write::Settle { .. } => None,
        }
    }

    /// Since when a release or sweep has been owed.
    fn since(&self) -> Option<Instant> {
        match self {
            Write::Release { since, .. } | Write::Sweep { since, .. } => Some(*since),
            Write::Result { .. } | Write::Settle { .. } => None,
        }
    }
}

/// Writes in flight and writes waiting for their retry.
#[derive(Debug)]
pub(super) struct Writes {
    inflight: BTreeMap<ReqId, Write>,
    failed: Vec<Write>,
    retry_at: Option<Instant>,
    backoff: Backoff,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            inflight: BTreeMap::new(),
            failed: Vec::new(),
            retry_at: None,
            backoff: Backoff::new(WRITE_RETRY_BASE, WRITE_RETRY_MAX),
        }
    }
}

impl Writes {
    /// Nothing owed.
    pub(super) fn is_empty(&self) -> bool {
        self.inflight.is_empty() && self.failed.is_empty()
    }

    /// Forgets every write (the shutdown ran out of time).
    pub(super) fn clear(&mut self) {
        self.inflight.clear();
        self.failed.clear();
        self.retry_at = None;
    }

    /// The next retry, or the instant a release outstays [`RELEASE_RETRY_FOR`].
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let give_up = self.owed().filter_map(Write::since).min().map(|s| s.plus(RELEASE_RETRY_FOR));
        [self.retry_at, give_up].into_iter().flatten().min()
    }

    fn owed(&self) -> impl Iterator<Item = &Write> {
        self.inflight.values().chain(self.failed.iter())
    }

    /// Drops the releases and sweeps of a session that is gone: its keys go with it.
    pub(super) fn forget_lease(&mut self, lease: LeaseId) {
        self.failed.retain(|w| w.lease() != Some(lease));
        self.inflight.retain(|_, w| w.lease() != Some(lease));
    }
}

impl Conchd {
    /// Sends `write` now (a result may first wait for the result lease).
    pub(super) fn send_write(&mut self, now: Now, write: Write) {
        let request = match &write {
            Write::Release { key, create_rev, .. } => {
                EtcdRequest::DeleteIfCreateRev { key: key.clone(), create_rev: *create_rev }
            }
            Write::Result { name, tick, value } => match self.fresh_lease(now, false) {
                Some(lease) => {
                    self.keyed_leases.insert(lease);
                    EtcdRequest::PutIfAbsent { key: result_key(name, *tick), value: value.clone(), lease }
                }
                None => {
                    self.waiting_results.push(write);
                    return;
                }
            },
            Write::Sweep { name, .. } => EtcdRequest::RangePrefix { prefix: running_key(name) },
            Write::Settle { keys, .. } => EtcdRequest::Ranges {
                ranges: keys
                    .iter()
                    .map(|key| RangeSpec { key: key.clone(), keys_only: true, ..RangeSpec::default() })
                    .collect(),
            },
        };
        let id = self.out.request(request);
        self.writes.inflight.insert(id, write);
    }

    /// The answer to a write; false if `id` is none of ours.
    pub(super) fn on_write_answer(&mut self, now: Now, id: ReqId, response: EtcdResponse) -> bool {
        let Some(write) = self.writes.inflight.remove(&id) else { return false };
        match (write, response) {
            (Write::Release { .. }, EtcdResponse::Deleted { .. })
            | (Write::Result { .. }, EtcdResponse::Put { .. }) => {
                self.writes.backoff.reset();
            }
            (Write::Sweep { name, tick, lease, since, stale }, EtcdResponse::Range { kvs, .. }) => {
                self.writes.backoff.reset();
                let key = running_key(&name);
                // A ghost sweep only while still nothing of the job runs or is being claimed.
                let idle = !stale || self.job_idle(&name);
                let ours = kvs.into_iter().find(|kv| kv.key == key && kv.lease == lease && idle).filter(|kv| {
                    serde_json::from_slice::<Claim>(&kv.value).is_ok_and(|c| {
                        // A ghost of any tick: one after this one too, claimed before the wall
                        // clock stepped back (found by the simulator's late-apply site).
                        self.made(&c) && (stale || c.tick == rfc3339(tick))
                    })
                });
                if let Some(kv) = ours {
                    self.out.log(Event::warn("running-key-orphaned").with("job", &name).with("tick", rfc3339(tick)));
                    self.send_write(now, Write::Release { key, create_rev: kv.create_rev, lease, since });
                }
            }
            (Write::Settle { lease, .. }, EtcdResponse::Ranges { results, .. }) => {
                self.writes.backoff.reset();
                if results.iter().flat_map(|r| &r.kvs).any(|kv| kv.lease == lease) {
                    self.keyed_leases.insert(lease);
                }
                self.unsettled.remove(&lease);
            }
            (write, response) => {
                if let (Write::Result { .. }, EtcdResponse::Error(EtcdError::LeaseNotFound)) = (&write, &response) {
                    // The result lease is gone: the retry asks for a fresh one.
                    self.result_lease = Slot::Empty;
                }
                self.out.log(Event::warn("write-failed").with("answer", format!("{response:?}")));
                if self.sabotage != Sabotage::NoWriteRetry {
                    self.retry_later(now, write);
                }
            }
        }
        true
    }

    pub(super) fn retry_later(&mut self, now: Now, write: Write) {
        if matches!(write, Write::Result { .. }) {
            let results = self.writes.failed.iter().filter(|w| matches!(w, Write::Result { .. })).count();
            if results >= RESULTS_PENDING_MAX {
                if let Some(k) = self.writes.failed.iter().position(|w| matches!(w, Write::Result { .. })) {
                    self.writes.failed.remove(k);
                    self.out.log(Event::warn("result-dropped").with("note", "too many results waiting for etcd"));
                }
            }
        }
        self.writes.failed.push(write);
        if self.writes.retry_at.is_none() {
            let delay = self.writes.backoff.next_delay(self.rng.next_u64());
            self.writes.retry_at = Some(now.mono.plus(delay));
        }
    }

    /// Timers: retries that are due, and a release that outstayed its session's welcome.
    pub(super) fn on_writes_timeout(&mut self, now: Now) {
        if self.writes.retry_at.is_some_and(|at| now.mono >= at) {
            self.writes.retry_at = None;
            let current = self.session.lease().filter(|_| self.session_up);
            for write in std::mem::take(&mut self.writes.failed) {
                // A release or sweep whose session is gone: its key went with the lease.
                if write.lease().is_none_or(|l| Some(l) == current) {
                    self.send_write(now, write);
                }
            }
        }
        let stuck = self.writes.owed().filter_map(Write::since).any(|s| now.mono >= s.plus(RELEASE_RETRY_FOR));
        if stuck {
            let lease = self.session.lease();
            self.out.log(
                Event::error("release-stuck")
                    .with("after", crate::duration::format(RELEASE_RETRY_FOR))
                    .with("note", "the session is given up so the running key expires with it"),
            );
            if let Some(lease) = lease {
                // Best effort: if it lands, the key is gone now rather than a TTL later.
                self.out.request(EtcdRequest::Revoke { lease });
            }
            self.drop_session(now);
            // Whatever is still owed on an older lease goes with it.
            let stale: Vec<LeaseId> = self.writes.owed().filter_map(Write::lease).collect();
            for lease in stale {
                self.writes.forget_lease(lease);
            }
        }
    }
}

#[cfg(test)]
#[path = "writes_tests.rs"]
mod tests;
