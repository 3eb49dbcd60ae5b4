//! The hold machine, shared by elect and sema: campaign, wait, acquire, release.
//!
//! Inputs: the session lease, etcd answers, watch events. Outputs: a put-if-absent of our
//! key, rank reads (a few keys and counts in one read-only transaction, never the whole
//! queue), watches on single keys (see [`crate::ranking`]), and [`HoldEvent`]s for the
//! [`crate::runner::Runner`].
//!
//! The holes of etcd's own recipe are closed here:
//! * our own key is watched for the whole life of the hold, so a waiter notices its key
//!   expired (etcd issue 19597) and a holder notices a revoke at once;
//! * acquisition is decided from a rank read that still finds our key, a linearizable
//!   proof the lease was alive after the wait (etcd issue 11456); the runner also checks
//!   its own deadline before starting the child;
//! * the release deletes only if the key's create-revision is still ours (etcd issue 22082);
//! * a holder that lost its own watch and cannot read its key gives up the hold once the
//!   view has been unconfirmed for [`Hold::with_confirm_within`]'s bound, the way the
//!   deadline rule bounds a silent lease: keepalives that still succeed prove the lease,
//!   not the key (found by mutation testing: a deleted key's holder ran 7.6 s on).
//!
//! # Priority (`elect --priority P`)
//!
//! Safety is not touched: the leader is still the key with the lowest create revision
//! under the office's prefix, and a key acquires only from a rank read that finds it
//! there. So there is still at most one leader, and the fencing token (that create
//! revision) still only grows across holders: priority never promotes a key out of
//! revision order, it only makes lower-priority keys step back behind higher ones, and
//! a key that steps back is created anew, at a fresh and higher revision.
//!
//! The liveness policy, all in this machine:
//! * a candidate with `P > 0` writes a marker `/conch/v1/prio/elect/<office>/<1000-P:04>/<lease>`
//!   on its lease, in the same txn as its queue key (`PutIfAbsentMarked`); the marker is
//!   outside the queue prefix, so no rank read counts it. The release deletes it in the
//!   same txn as the key (and even if the key is already gone); a revoked or expired lease
//!   takes both;
//! * every rank read of an office carries a fourth range: the marker prefix, limit 1, keys
//!   only, no sort — the highest priority waiting (markers sort highest first), in the
//!   same read-only txn (no extra round trip; etcd reads that one key, and sends nothing
//!   when no marker exists);
//! * a key that finds itself first in line and not yet holding, with a top priority above
//!   its own, yields: `Yield` deletes its key only if its own create revision is unchanged
//!   and the higher waiter's queue key (named by the marker's lease) still exists; then
//!   the campaign's put-if-absent puts it again, at the back. Two txns, because etcd
//!   refuses a txn that deletes and puts one key ("duplicate key given in txn request").
//!   Our own watch is cancelled first, so the deletion is not a loss; its successor in the
//!   chain is woken by it, as on any release. A holder never yields (no pre-emption);
//! * if the compare fails, the marker was stale (its waiter is between a yield and its
//!   put again, or its key was deleted): the answer carries our key's create revision,
//!   and our key still there with no key before it (none can be created before it) is as
//!   good a proof as the rank read, so we acquire. An ambiguous yield (no answer) is
//!   resolved by the put-if-absent, which finds our key either way.
//!
//! Liveness: when the office falls vacant, the first key in line either holds the highest
//! priority waiting (it acquires; ties are FIFO since equal priorities never yield) or
//! yields once; the next key, woken by that deletion, does the same, so after at most one
//! yield per lower-priority key ahead of it the highest waiter is first and acquires. A
//! yielding key lands behind the higher waiter and keeps its own marker, so keys that
//! yielded keep their order among themselves (FIFO among those yielding). A marker's
//! waiter that dies mid-queue leaves with its lease; a stale marker costs one failed
//! compare, never a wait. `conch sim --priorities` checks it (the `priority` checker,
//! deliberate bug `ignore-priority`).
//!
//! Cost per acquisition: the rank read gains one keys-only, limit-1 range (flat in the
//! queue's length, B5); a campaign and a release write one more key in their own txn;
//! without priorities (no markers) nothing else changes. Only a key that yields pays more:
//! two txns and a second rank read, once per higher waiter it lets by.
//!
//! `--preempt` plugs in where a waiter's standing is known: its rank reads carry a fifth
//! range, the office's first key with its value (the holder and its priority), and a
//! waiter that [`crate::preempt::preempts`] asks that holder for the graceful hand-over
//! of `--step-down` (stop the child, resign, re-campaign at the back), bounded by
//! [`crate::preempt::Asker`]; the yield rule then puts the higher candidate first, and
//! the token still grows because the holder's key is deleted before the next one
//! acquires.
use std::time::Duration;

use crate::etcd::{EtcdError, EtcdRequest, EtcdResponse, RangeSpec, WatchEvent};
use crate::ids::{LeaseId, ReqId, Revision, WatchId};
use crate::keys::{elect_prefix, member_key, prio_marker, prio_prefix, sema_prefix, Name};
use crate::output::{Event, Outbox, Output};
use crate::preempt::{preempts, Asker, View};
use crate::ranking::{marker_read, rank_reads, standing_from_reads, top_priority, Standing};
use crate::sabotage::Sabotage;
use crate::session::LossReason;
use crate::time::Instant;

/// Delay before re-sending a request that failed with a transient error; doubled per
/// attempt up to [`RETRY_DELAY_MAX`].
pub const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Longest delay between two attempts.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(1);
/// A range answer handled this long after its request proves nothing about now: the
/// wrapper (or its host) may have been stopped while the answer waited, and the key it
/// shows may be gone. Such an answer is read again instead of acquiring on it.
pub const STALE_ANSWER: Duration = Duration::from_secs(1);
/// Fresh reads tried after stale answers before one is taken anyway (a network that slow
/// must not keep a waiter from ever holding; the deadline rule still bounds it).
pub const STALE_RETRIES_MAX: u32 = 3;
/// Attempts per request before the hold gives up. Long before this the session's deadline
/// decides: a session whose keepalives fail too ends the run at `term_at`.
pub const ATTEMPTS_MAX: u32 = 600;

/// What is being held: an office or a semaphore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldSpec {
    /// The office or semaphore name.
    pub name: Name,
    /// Capacity: 1 for an office.
    pub slots: u32,
    /// Whether this is an office (`elect`).
    pub is_office: bool,
    /// `--spread`: the key's last segment is this hostname instead of the lease id, so a
    /// host holds or waits for at most one slot.
    pub host_key: Option<String>,
    /// An office's leader listens for `--step-down` requests ([`crate::step_down`]).
    pub step_down: bool,
    /// `--priority` (offices only, `0..=PRIORITY_MAX`; 0 writes no marker).
    pub priority: u32,
    /// `--preempt`: a waiter asks a lower-priority holder to step down ([`crate::preempt`]).
    pub preempt: bool,
}

impl HoldSpec {
    /// An office: one holder.
    pub fn office(name: Name) -> HoldSpec {
        HoldSpec { name, slots: 1, is_office: true, host_key: None, step_down: true, priority: 0, preempt: false }
    }

    /// A semaphore of capacity `max`.
    pub fn semaphore(name: Name, max: u32) -> HoldSpec {
        HoldSpec {
            name,
            slots: max.max(1),
            is_office: false,
            host_key: None,
            step_down: false,
            priority: 0,
            preempt: false,
        }
    }

    /// The same semaphore with one slot per host (`--spread`).
    pub fn spread(self, host: String) -> HoldSpec {
        HoldSpec { host_key: Some(host), ..self }
    }

    /// The same office whose leader does not listen for step-down requests (the
    /// simulator's seeds without `--step-downs`, which run as they always did).
    pub fn without_step_down(self) -> HoldSpec {
        HoldSpec { step_down: false, ..self }
    }

    /// The same office with a priority (a semaphore ignores it).
    pub fn with_priority(self, priority: u32) -> HoldSpec {
        HoldSpec { priority, ..self }
    }

    /// The same office whose waiters pre-empt lower holders (a semaphore ignores it).
    pub fn with_preempt(self, preempt: bool) -> HoldSpec {
        HoldSpec { preempt: preempt && self.is_office, ..self }
    }

    /// Where an office's priority markers live; `None` for a semaphore.
    pub fn prio_prefix(&self) -> Option<String> {
        self.is_office.then(|| prio_prefix(&self.name))
    }

    /// The prefix the contenders live under.
    pub fn prefix(&self) -> String {
        if self.is_office {
            elect_prefix(&self.name)
        } else {
            sema_prefix(&self.name, self.slots)
        }
    }
}

/// What a hold input meant, for the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldEvent {
    /// Our key is in the queue, not holding yet.
    Queued {
        /// Our rank: `N` for the first waiter, `N + 1` for any place behind it (the rank
        /// reads never count the whole queue).
        rank: usize,
    },
    /// We hold; `rev` is the fencing token.
    Acquired {
        /// Create revision of our key.
        rev: Revision,
    },
    /// `--spread`: another contender of this host holds or waits; we wait for its key to go.
    HostTaken,
    /// Our key is gone.
    Lost(LossReason),
    /// etcd kept refusing or failing; the hold cannot go on.
    Failed(EtcdError),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Putting(ReqId),
    Ranging(ReqId),
    Waiting(Vec<WatchId>),
    /// `--spread`: our host's key belongs to another contender; waiting for it to go.
    HostTaken(WatchId),
    Held,
    /// First in line, stepping to the back for a higher priority (the `Yield` txn).
    Yielding(ReqId),
    /// Held, re-reading the prefix to confirm our key after our own watch broke.
    Confirming(ReqId),
    Done,
}

/// The hold machine.
#[derive(Debug)]
pub struct Hold {
    spec: HoldSpec,
    prefix: String,
    /// An office's marker prefix (the fourth rank read); `None` for a semaphore.
    prio_prefix: Option<String>,
    /// Our priority marker, when our priority is above 0.
    marker: Option<String>,
    value: Vec<u8>,
    /// Who we are, to write `held_since` into our key on acquiring (none: keep the value).
    holder: Option<crate::values::Holder>,
    /// The wall clock of the last input (Unix ms), for `held_since`.
    wall_ms: i64,
    lease: Option<LeaseId>,
    key: Option<String>,
    create_rev: Option<Revision>,
    own_watch: Option<WatchId>,
    phase: Phase,
    touch: Option<ReqId>,
    retry_at: Option<Instant>,
    attempts: u32,
    range_sent: Instant,
    stale_retries: u32,
    /// Longest a holder may go without a confirmed view of its key (`None`: unbounded).
    confirm_within: Option<Duration>,
    /// When the holder's view of its key stopped being confirmed (its own watch broke).
    unconfirmed_since: Option<Instant>,
    sabotage: Sabotage,
    /// `--preempt`: the step-down requests sent, and the writes that send or withdraw them
    /// (their answers change nothing: a lost one is sent again, a stale one is harmless).
    asker: Asker,
    asides: Vec<ReqId>,
}

impl Hold {
    /// The same hold, which writes `held_since` into its key's holder JSON on acquiring.
    pub fn with_holder(mut self, holder: crate::values::Holder) -> Hold {
        self.holder = Some(holder);
        self
    }

    /// The wall clock of the input about to be handled (Unix ms).
    pub fn set_wall_ms(&mut self, wall_ms: i64) {
        self.wall_ms = wall_ms;
    }

    /// A hold on `spec` whose key will carry `value`.
    pub fn new(spec: HoldSpec, value: Vec<u8>) -> Hold {
        let prefix = spec.prefix();
        Hold {
            prio_prefix: spec.prio_prefix(),
            marker: None,
            spec,
            prefix,
            value,
            holder: None,
            wall_ms: 0,
            lease: None,
            key: None,
            create_rev: None,
            own_watch: None,
            phase: Phase::Idle,
            touch: None,
            retry_at: None,
            attempts: 0,
            range_sent: Instant::default(),
            stale_retries: 0,
            confirm_within: None,
            unconfirmed_since: None,
            sabotage: Sabotage::None,
            asker: Asker::default(),
            asides: Vec::new(),
        }
    }

    /// The same hold, which gives up holding once it has gone `within` without a live own
    /// watch or a read that answered (the runner passes the session's TTL less the kill
    /// grace and the margin, so the child is dead within one TTL of the last view).
    pub fn with_confirm_within(self, within: Duration) -> Hold {
        Hold { confirm_within: Some(within), ..self }
    }

    /// The same hold with a deliberate bug (checker tests only).
    pub fn with_sabotage(self, sabotage: Sabotage) -> Hold {
        Hold { sabotage, ..self }
    }

    /// Our key, once chosen.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The fencing token, once our key exists.
    pub fn create_rev(&self) -> Option<Revision> {
        self.create_rev
    }

    /// Whether we hold.
    pub fn is_held(&self) -> bool {
        matches!(self.phase, Phase::Held | Phase::Confirming(_))
    }

    /// Whether `id` is one of this machine's requests.
    pub fn owns(&self, id: ReqId) -> bool {
        self.touch == Some(id)
            || self.asides.contains(&id)
            || matches!(self.phase, Phase::Putting(r) | Phase::Ranging(r) | Phase::Yielding(r) | Phase::Confirming(r) if r == id)
    }

    /// Feeds the answer to one of this machine's requests.
    pub fn handle_response(
        &mut self,
        now: Instant,
        id: ReqId,
        response: EtcdResponse,
        out: &mut Outbox,
    ) -> Option<HoldEvent> {
        if self.touch == Some(id) {
            self.touch = None;
            if let EtcdResponse::Touched { touched: false } = response {
                return self.lose(out, LossReason::KeyDeleted);
            }
            return None;
        }
        if let Some(at) = self.asides.iter().position(|r| *r == id) {
            self.asides.swap_remove(at);
            if let EtcdResponse::Error(error) = response {
                out.log(Event::warn("preempt-write-failed").with("error", error.to_string()));
            }
            return None;
        }
        if let EtcdResponse::Error(error) = &response {
            return self.handle_error(now, error.clone(), out);
        }
        self.attempts = 0;
        match (&self.phase, response) {
            (Phase::Putting(r), EtcdResponse::Put { create_rev, lease, .. }) if *r == id => {
                if Some(lease) != self.lease {
                    let Some(key) = self.key.clone().filter(|_| self.spec.host_key.is_some()) else {
                        let msg = format!("key {} belongs to another lease", self.key.as_deref().unwrap_or(""));
                        return self.fail(out, EtcdError::Fatal(msg));
                    };
                    self.phase = Phase::HostTaken(out.watch(key, Revision(create_rev.0 + 1)));
                    return Some(HoldEvent::HostTaken);
                }
                self.create_rev = Some(create_rev);
                self.watch_own_key(create_rev, out);
                self.range(now, out);
                None
            }
            (Phase::Ranging(r), EtcdResponse::Ranges { header_rev, results }) if *r == id => {
                // Our key exists (its put answered) but its watch broke: re-watch from here.
                if self.create_rev.is_some() && self.own_watch.is_none() {
                    self.watch_own_key(header_rev, out);
                }
                // A rank read is sent only after the put of our key answered (campaign set
                // the key, the put's answer the create revision and the lease came before).
                if self.key.is_none() || self.create_rev.is_none() || self.lease.is_none() {
                    debug_assert!(false, "ranked before our key was put: phase {:?}", self.phase);
                    return self.fail(out, EtcdError::Fatal("ranked before our key was put".into()));
                }
                let (standing, behind) = standing_from_reads(&results, self.spec.slots as usize);
                match standing {
                    Standing::Missing => self.lose(out, LossReason::KeyDeleted),
                    Standing::Holds { .. }
                        if now.since(self.range_sent) > STALE_ANSWER && self.stale_retries < STALE_RETRIES_MAX =>
                    {
                        // Found by the simulator: a waiter whose host was frozen handled a
                        // pre-freeze "you hold" after its key was deleted and a newer key had
                        // held — a fencing token going backwards.
                        self.stale_retries += 1;
                        out.log(
                            Event::warn("stale-answer")
                                .with("age", crate::duration::format(now.since(self.range_sent))),
                        );
                        self.range(now, out);
                        None
                    }
                    Standing::Holds { .. } => {
                        let higher = self.prio_prefix.as_deref().and_then(|p| top_priority(&results, p));
                        match higher {
                            Some((priority, lease)) if self.yields_to(priority) => {
                                self.step_back(now, priority, lease, out);
                                None
                            }
                            _ => self.acquire(behind, out),
                        }
                    }
                    Standing::Waits { rank, watch } => {
                        self.consider_preempt(now, rank, &results, out);
                        let watches =
                            watch.into_iter().map(|(key, _)| out.watch(key, Revision(header_rev.0 + 1))).collect();
                        self.phase = Phase::Waiting(watches);
                        Some(HoldEvent::Queued { rank })
                    }
                }
            }
            (Phase::Yielding(r), EtcdResponse::Yielded { yielded, own_rev }) if *r == id => {
                if yielded {
                    // Our key is gone and its marker stays: put it again, at the back.
                    self.create_rev = None;
                    self.put(out);
                    return None;
                }
                if Some(own_rev) != self.create_rev {
                    return self.lose(out, LossReason::KeyDeleted);
                }
                // The marker was stale (its waiter's key is gone). Our key is still there,
                // with no key before it (none can be created before it): we are first.
                if now.since(self.range_sent) > STALE_ANSWER && self.stale_retries < STALE_RETRIES_MAX {
                    self.stale_retries += 1;
                    self.watch_own_key(Revision(own_rev.0), out);
                    self.range(now, out);
                    return None;
                }
                self.watch_own_key(Revision(own_rev.0), out);
                self.acquire(false, out)
            }
            (Phase::Confirming(r), EtcdResponse::Ranges { header_rev, results }) if *r == id => {
                // Confirming follows a hold, which follows the put of our key.
                debug_assert!(self.key.is_some(), "confirming a hold without a key");
                if results.first().is_none_or(|own| own.count == 0) {
                    return self.lose(out, LossReason::KeyDeleted);
                }
                self.unconfirmed_since = None;
                self.watch_own_key(header_rev, out);
                self.phase = Phase::Held;
                None
            }
            _ => None,
        }
    }

    /// Feeds one event of one of this machine's watches.
    pub fn handle_watch(
        &mut self,
        now: Instant,
        id: WatchId,
        event: WatchEvent,
        out: &mut Outbox,
    ) -> Option<HoldEvent> {
        if self.own_watch == Some(id) {
            return match event {
                WatchEvent::Delete { .. }
                    if self.sabotage == Sabotage::IgnoreOwnKeyDelete && matches!(self.phase, Phase::Waiting(_)) =>
                {
                    None
                }
                WatchEvent::Delete { .. } => self.lose(out, LossReason::KeyDeleted),
                WatchEvent::Put(_) => None,
                WatchEvent::Compacted | WatchEvent::Broken(_) => {
                    // Events may be lost: confirm the key with a fresh read, re-watch from there.
                    out.push(Output::CancelWatch(id));
                    self.own_watch = None;
                    match std::mem::replace(&mut self.phase, Phase::Idle) {
                        Phase::Held => {
                            self.unconfirmed_since = Some(now);
                            self.phase = Phase::Confirming(self.confirm(out));
                        }
                        Phase::Waiting(watches) => {
                            cancel_all(watches, out);
                            self.range(now, out);
                        }
                        // A read is in flight or the hold is over: the read re-watches.
                        other => self.phase = other,
                    }
                    None
                }
            };
        }
        if self.phase == Phase::HostTaken(id) {
            // Only the deletion frees our host's key; anything uncertain re-checks with a put.
            if !matches!(event, WatchEvent::Put(_)) {
                out.push(Output::CancelWatch(id));
                self.put(out);
            }
            return None;
        }
        let Phase::Waiting(watches) = &self.phase else {
            return None;
        };
        if !watches.contains(&id) {
            return None;
        }
        match event {
            WatchEvent::Delete { .. } if self.sabotage == Sabotage::AcquireOnWake => {
                if let Phase::Waiting(watches) = std::mem::replace(&mut self.phase, Phase::Held) {
                    cancel_all(watches, out);
                }
                Some(HoldEvent::Acquired { rev: self.create_rev? })
            }
            WatchEvent::Put(_) | WatchEvent::Delete { .. } | WatchEvent::Compacted | WatchEvent::Broken(_) => {
                if let Phase::Waiting(watches) = std::mem::replace(&mut self.phase, Phase::Idle) {
                    cancel_all(watches, out);
                }
                self.range(now, out);
                None
            }
        }
    }

    /// Re-sends a request that failed transiently.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) -> Option<HoldEvent> {
        if let Some(at) = self.unconfirmed_until().filter(|at| now >= *at) {
            let since = self.unconfirmed_since.unwrap_or(at);
            out.log(Event::warn("key-unconfirmed").with("unconfirmed", crate::duration::format(now.since(since))));
            return self.lose(out, LossReason::KeyUnconfirmed);
        }
        if matches!(self.phase, Phase::Waiting(_)) && self.preempt_check_at().is_some_and(|at| now >= at) {
            // Asked a while ago and still waiting: a fresh read re-asks if the holder stayed.
            if let Phase::Waiting(watches) = std::mem::replace(&mut self.phase, Phase::Idle) {
                cancel_all(watches, out);
            }
            self.range(now, out);
            return None;
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            match self.phase {
                // An ambiguous yield: a put finds our key either way (kept, or put anew).
                Phase::Putting(_) | Phase::Yielding(_) => self.put(out),
                Phase::Ranging(_) => self.range(now, out),
                Phase::Confirming(_) => self.phase = Phase::Confirming(self.confirm(out)),
                _ => {}
            }
        }
        None
    }

    /// Starts campaigning with the session lease.
    pub fn campaign(&mut self, _now: Instant, lease: LeaseId, out: &mut Outbox) {
        self.lease = Some(lease);
        self.key = Some(match &self.spec.host_key {
            Some(host) => format!("{}{host}", self.prefix),
            None => member_key(&self.prefix, lease),
        });
        self.marker = match (&self.prio_prefix, self.spec.priority) {
            (Some(prefix), priority) if priority > 0 => Some(prio_marker(prefix, priority, lease)),
            _ => None,
        };
        self.put(out);
    }

    /// Stops everything and returns the request that deletes our key, if it may exist.
    /// A key whose put is still in flight is not deleted here: revoking the lease removes it.
    pub fn release(&mut self, out: &mut Outbox) -> Option<EtcdRequest> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Waiting(watches) => cancel_all(watches, out),
            // The host's key is someone else's: never delete it.
            Phase::HostTaken(watch) => {
                out.push(Output::CancelWatch(watch));
                self.create_rev = None;
            }
            _ => {}
        }
        if let Some(id) = self.own_watch.take() {
            out.push(Output::CancelWatch(id));
        }
        self.retry_at = None;
        let (key, create_rev) = (self.key.clone()?, self.create_rev?);
        Some(match self.marker.clone() {
            Some(marker) => EtcdRequest::DeleteIfCreateRevMarked { key, create_rev, marker },
            None => EtcdRequest::DeleteIfCreateRev { key, create_rev },
        })
    }

    /// When [`Hold::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retry_at, self.unconfirmed_until(), self.preempt_check_at()].into_iter().flatten().min()
    }

    /// When a waiter that asked a holder to step down reads again (see [`Asker`]).
    fn preempt_check_at(&self) -> Option<Instant> {
        matches!(self.phase, Phase::Waiting(_)).then(|| self.asker.poll_timeout()).flatten()
    }

    /// `--preempt`, at a rank read that found us waiting: ask the holder (the fifth
    /// range) to step down when [`preempts`] says so and [`Asker`] allows.
    fn consider_preempt(&mut self, now: Instant, rank: usize, results: &[crate::etcd::RangeResult], out: &mut Outbox) {
        if !self.spec.preempt {
            return;
        }
        let holder = results.get(4).and_then(|r| r.kvs.first()).filter(|kv| Some(kv.create_rev) != self.create_rev);
        let (Some(holder), Some(lease)) = (holder, self.lease) else {
            // No holder in view (or our own key first): nobody to ask, no re-read due.
            self.asker.disarm();
            return;
        };
        let view = View {
            own: self.spec.priority,
            own_lease: lease,
            holder: crate::values::Holder::decode(&holder.value).and_then(|h| h.priority).unwrap_or(0),
            top: self.prio_prefix.as_deref().and_then(|p| top_priority(results, p)),
            first_in_line: rank == self.spec.slots as usize,
        };
        if !self.asker.consider(now, holder.create_rev, preempts(&view)) {
            return;
        }
        let (host, pid) = self.holder.as_ref().map_or_else(|| ("?".to_string(), 0), |h| (h.host.clone(), h.pid));
        let request = crate::step_down::Request { rev: holder.create_rev.0, host, pid };
        out.log(
            Event::info("preempt")
                .with("rev", holder.create_rev.0)
                .with("priority", self.spec.priority)
                .with("to_priority", view.holder),
        );
        let key = crate::step_down::key(&self.spec.name, lease);
        self.asides.push(out.request(EtcdRequest::Put { key, value: request.encode(), lease: Some(lease) }));
    }

    /// When a holder re-reading its key gives up, if it is re-reading.
    fn unconfirmed_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Confirming(_) => Some(self.unconfirmed_since?.plus(self.confirm_within?)),
            _ => None,
        }
    }

    fn put(&mut self, out: &mut Outbox) {
        let (Some(key), Some(lease)) = (self.key.clone(), self.lease) else {
            return;
        };
        let value = self.value.clone();
        let request = match self.marker.clone() {
            Some(marker) => EtcdRequest::PutIfAbsentMarked { key, value, lease, marker },
            None => EtcdRequest::PutIfAbsent { key, value, lease },
        };
        self.phase = Phase::Putting(out.request(request));
    }

    /// Whether a first-in-line waiter steps back for a waiter of `priority`.
    fn yields_to(&self, priority: u32) -> bool {
        self.sabotage != Sabotage::IgnorePriority && priority > self.spec.priority
    }

    /// The yield: delete our key if the higher waiter's key (named by its marker's lease)
    /// still exists; our own watch goes first, so the deletion is not a loss.
    fn step_back(&mut self, now: Instant, priority: u32, lease: LeaseId, out: &mut Outbox) {
        let (Some(key), Some(create_rev)) = (self.key.clone(), self.create_rev) else { return };
        if let Some(id) = self.own_watch.take() {
            out.push(Output::CancelWatch(id));
        }
        out.log(Event::info("yield").with("to_priority", priority).with("priority", self.spec.priority));
        self.range_sent = now;
        let rival = member_key(&self.prefix, lease);
        self.phase = Phase::Yielding(out.request(EtcdRequest::Yield { key, create_rev, rival }));
    }

    /// We hold: from a rank read (or a failed yield) that found our key first in line.
    fn acquire(&mut self, behind: bool, out: &mut Outbox) -> Option<HoldEvent> {
        let (key, rev) = (self.key.clone()?, self.create_rev?);
        // A semaphore's later keys may watch ours as their predecessor (they ranked while
        // we still waited, even if we never saw ourselves wait): touch it so the next one
        // re-ranks and watches the holders instead. The touch also writes when we began
        // holding (`--who` shows it).
        let held = self.holder.clone().map(|holder| {
            let since = crate::cron::rfc3339(self.wall_ms.div_euclid(1000));
            crate::values::Holder { held_since: Some(since), ..holder }.encode()
        });
        if let Some(value) = held.or_else(|| behind.then(|| self.value.clone())) {
            self.touch =
                Some(out.request(EtcdRequest::TouchIfCreateRev { key, value, lease: self.lease?, create_rev: rev }));
        }
        if self.asker.asked() {
            // Our request named the holder before us: withdraw it (our lease would take it).
            self.asker.clear();
            let key = crate::step_down::key(&self.spec.name, self.lease?);
            self.asides.push(out.request(EtcdRequest::Delete { key }));
        }
        self.phase = Phase::Held;
        Some(HoldEvent::Acquired { rev })
    }

    /// The rank read: a few keys and counts, never the whole queue (see `ranking`).
    fn range(&mut self, now: Instant, out: &mut Outbox) {
        self.range_sent = now;
        let (key, rev) = (self.key.clone().unwrap_or_default(), self.create_rev.unwrap_or_default());
        let by_mod = self.sabotage == Sabotage::RankByModRevision;
        let mut ranges = rank_reads(&self.prefix, &key, rev, self.spec.slots as usize, by_mod);
        ranges.extend(self.prio_prefix.as_deref().map(marker_read));
        if self.spec.preempt {
            ranges.push(crate::ranking::holder_read(&self.prefix));
        }
        self.phase = Phase::Ranging(out.request(EtcdRequest::Ranges { ranges }));
    }

    /// Whether our key is still there: one count.
    fn confirm(&self, out: &mut Outbox) -> ReqId {
        let own = RangeSpec { key: self.key.clone().unwrap_or_default(), count_only: true, ..RangeSpec::default() };
        out.request(EtcdRequest::Ranges { ranges: vec![own] })
    }

    fn watch_own_key(&mut self, after: Revision, out: &mut Outbox) {
        if let Some(key) = self.key.clone() {
            self.own_watch = Some(out.watch(key, Revision(after.0 + 1)));
        }
    }

    fn handle_error(&mut self, now: Instant, error: EtcdError, out: &mut Outbox) -> Option<HoldEvent> {
        match error {
            EtcdError::LeaseNotFound => self.lose(out, LossReason::LeaseGone),
            EtcdError::Unavailable(msg) if self.attempts < ATTEMPTS_MAX => {
                self.attempts += 1;
                if self.attempts == 1 || self.attempts.is_multiple_of(10) {
                    out.log(Event::warn("etcd-retry").with("error", msg).with("attempt", self.attempts));
                }
                self.retry_at = Some(now.plus(retry_delay(self.attempts)));
                None
            }
            error => self.fail(out, error),
        }
    }

    fn lose(&mut self, out: &mut Outbox, reason: LossReason) -> Option<HoldEvent> {
        self.stop(out);
        Some(HoldEvent::Lost(reason))
    }

    fn fail(&mut self, out: &mut Outbox, error: EtcdError) -> Option<HoldEvent> {
        self.stop(out);
        Some(HoldEvent::Failed(error))
    }

    fn stop(&mut self, out: &mut Outbox) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Waiting(watches) => cancel_all(watches, out),
            Phase::HostTaken(watch) => out.push(Output::CancelWatch(watch)),
            _ => {}
        }
        if let Some(id) = self.own_watch.take() {
            out.push(Output::CancelWatch(id));
        }
        self.retry_at = None;
    }
}

/// Delay before attempt `attempts + 1`: doubling from [`RETRY_DELAY`], capped.
pub fn retry_delay(attempts: u32) -> Duration {
    RETRY_DELAY.saturating_mul(1 << attempts.saturating_sub(1).min(8)).min(RETRY_DELAY_MAX)
}

fn cancel_all(watches: Vec<WatchId>, out: &mut Outbox) {
    for id in watches {
        out.push(Output::CancelWatch(id));
    }
}

#[cfg(test)]
#[path = "hold_tests.rs"]
mod tests;
