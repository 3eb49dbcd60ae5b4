//! SimEtcd: one etcd member as a pure data structure — a global revision, keys with
//! create/mod revisions and versions, leases with server-side expiry, the transactions
//! conch sends, sorted range reads and ranges with etcd's options, watch history from a revision (with compaction), and
//! revoke. It answers the same [`EtcdRequest`]s the drivers send, so a differential test
//! can hold it against a real etcd field by field.
//!
//! Deterministic: `BTreeMap`s only, time comes in as an argument, lease ids from a counter.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conch_core::fenced::{CmpTarget, CmpValue, Compare, Guard, OpResult, TxnAnswer, TxnOp, TxnSpec};
use conch_core::{EtcdError, EtcdRequest, EtcdResponse, Instant, Kv, LeaseId, RangeSpec, Revision, WatchEvent};

/// A key's state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    create_rev: i64,
    mod_rev: i64,
    version: i64,
    lease: i64,
    value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    ttl_s: i64,
    expires_at: Instant,
    keys: BTreeSet<String>,
}

/// One change in the history, as a watch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The revision of the change.
    pub rev: i64,
    /// The event.
    pub event: WatchEvent,
}

/// Bounds the kept history (older revisions are compacted away automatically).
pub const HISTORY_MAX: usize = 100_000;

/// The simulated etcd member.
#[derive(Clone, Debug)]
pub struct SimEtcd {
    rev: i64,
    kvs: BTreeMap<String, Entry>,
    leases: BTreeMap<i64, Lease>,
    next_lease: i64,
    history: Vec<Change>,
    compacted: i64,
    /// Leases the lessor expired, with their deadline.
    expired: BTreeMap<i64, Instant>,
    /// Every lease gone from the store (revoked or expired), with the instant its keys went.
    ended: BTreeMap<i64, Instant>,
    /// Every live lease by (deadline, id): the lessor's next look and what it revokes
    /// without a scan of every lease per request.
    deadlines: BTreeSet<(Instant, i64)>,
}

impl Default for SimEtcd {
    fn default() -> Self {
        SimEtcd::new(0x694d_0000_0000)
    }
}

impl SimEtcd {
    /// A fresh store at revision 1 (as a new etcd) whose lease ids count up from `lease_base`.
    pub fn new(lease_base: i64) -> SimEtcd {
        SimEtcd {
            rev: 1,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
            next_lease: lease_base,
            history: Vec::new(),
            compacted: 0,
            expired: BTreeMap::new(),
            ended: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        Revision(self.rev)
    }

    /// Keys attached to a live lease (0 for a lease that is gone).
    pub fn lease_keys(&self, lease: LeaseId) -> usize {
        self.leases.get(&lease.0).map_or(0, |l| l.keys.len())
    }

    /// Live lease ids.
    pub fn leases(&self) -> Vec<LeaseId> {
        self.leases.keys().map(|l| LeaseId(*l)).collect()
    }

    /// Answers one request at `now` (leases past their expiry are revoked first).
    pub fn apply(&mut self, now: Instant, request: &EtcdRequest) -> EtcdResponse {
        self.expire(now);
        match request {
            EtcdRequest::Grant { ttl_s } => {
                self.next_lease += 1;
                let id = self.next_lease;
                let ttl_s = (*ttl_s).max(1);
                let expires_at = now.plus(secs(ttl_s));
                self.leases.insert(id, Lease { ttl_s, expires_at, keys: BTreeSet::new() });
                self.deadlines.insert((expires_at, id));
                EtcdResponse::Granted { lease: LeaseId(id), ttl_s }
            }
            EtcdRequest::KeepAlive { lease, .. } => match self.leases.get_mut(&lease.0) {
                Some(l) => {
                    let at = now.plus(secs(l.ttl_s));
                    let old = std::mem::replace(&mut l.expires_at, at);
                    let ttl_s = l.ttl_s;
                    self.deadlines.remove(&(old, lease.0));
                    self.deadlines.insert((at, lease.0));
                    EtcdResponse::KeepAlive { ttl_s }
                }
                None => EtcdResponse::KeepAlive { ttl_s: 0 },
            },
            // conch's vocabulary: a lease already gone is revoked (the driver maps etcd's
            // "lease not found" on revoke to this too).
            EtcdRequest::Revoke { lease } => {
                self.revoke(lease.0, now);
                EtcdResponse::Revoked
            }
            EtcdRequest::PutIfAbsent { key, value, lease } => self.put_if_absent(key, value, *lease, None),
            EtcdRequest::PutIfAbsentMarked { key, value, lease, marker } => {
                self.put_if_absent(key, value, *lease, Some(marker))
            }
            EtcdRequest::Yield { key, create_rev, rival } => {
                let own = self.create_rev_of(key);
                if own != create_rev.0 || !self.kvs.contains_key(rival) {
                    return EtcdResponse::Yielded { yielded: false, own_rev: Revision(own) };
                }
                self.rev += 1;
                self.delete(key);
                EtcdResponse::Yielded { yielded: true, own_rev: Revision(0) }
            }
            EtcdRequest::DeleteIfCreateRevMarked { key, create_rev, marker } => {
                let deleted = self.create_rev_of(key) == create_rev.0;
                // One transaction: its deletions share its revision (none when nothing goes).
                if (deleted && self.kvs.contains_key(key)) || self.kvs.contains_key(marker) {
                    self.rev += 1;
                    if deleted {
                        self.delete(key);
                    }
                    self.delete(marker);
                }
                EtcdResponse::Deleted { deleted }
            }
            EtcdRequest::TouchIfCreateRev { key, value, lease, create_rev } => {
                if self.create_rev_of(key) != create_rev.0 {
                    return EtcdResponse::Touched { touched: false };
                }
                if !self.lease_ok(lease.0) {
                    return EtcdResponse::Error(EtcdError::LeaseNotFound);
                }
                self.rev += 1;
                self.put(key, value, lease.0);
                EtcdResponse::Touched { touched: true }
            }
            EtcdRequest::Put { key, value, lease } => {
                let lease = lease.map_or(0, |l| l.0);
                if !self.lease_ok(lease) {
                    return EtcdResponse::Error(EtcdError::LeaseNotFound);
                }
                self.rev += 1;
                self.put(key, value, lease);
                EtcdResponse::Written { rev: Revision(self.rev) }
            }
            EtcdRequest::RangePrefix { prefix } => {
                EtcdResponse::Range { header_rev: Revision(self.rev), kvs: self.range(prefix) }
            }
            // etcd's range options (bounds, sort, limit, keys/count only) are one function
            // of the core's, held against a real etcd by the differential test.
            EtcdRequest::Ranges { ranges } => {
                let results = ranges.iter().map(|spec| spec.answer(self.covered(spec))).collect();
                EtcdResponse::Ranges { header_rev: Revision(self.rev), results }
            }
            EtcdRequest::DeleteIfCreateRev { key, create_rev } => {
                if self.create_rev_of(key) != create_rev.0 {
                    return EtcdResponse::Deleted { deleted: false };
                }
                // The compare held; deleting nothing (create revision 0) writes nothing.
                if self.kvs.contains_key(key) {
                    self.rev += 1;
                    self.delete(key);
                }
                EtcdResponse::Deleted { deleted: true }
            }
            EtcdRequest::Delete { key } => {
                if self.kvs.contains_key(key) {
                    self.rev += 1;
                    self.delete(key);
                }
                EtcdResponse::Written { rev: Revision(self.rev) }
            }
            EtcdRequest::Claim { fire_key, claim, claim_lease, running } => {
                let free =
                    !self.kvs.contains_key(fire_key) && running.as_ref().is_none_or(|(k, _)| !self.kvs.contains_key(k));
                if !free {
                    let found = self.kvs.get(fire_key);
                    let rev = Revision(found.map_or(self.rev, |e| e.create_rev));
                    return EtcdResponse::Claimed { won: false, rev, existing: found.map(|e| e.value.clone()) };
                }
                let leases_ok =
                    self.lease_ok(claim_lease.0) && running.as_ref().is_none_or(|(_, l)| self.lease_ok(l.0));
                if !leases_ok {
                    return EtcdResponse::Error(EtcdError::LeaseNotFound);
                }
                // One transaction: both puts share its revision.
                self.rev += 1;
                self.put(fire_key, claim, claim_lease.0);
                if let Some((key, lease)) = running {
                    self.put(key, claim, lease.0);
                }
                EtcdResponse::Claimed { won: true, rev: Revision(self.rev), existing: None }
            }
            EtcdRequest::FencedTxn { guard, txn } => self.fenced(guard.as_ref(), txn),
        }
    }

    /// A fenced write: the guard, then the user's compares and the branch they pick, all at
    /// one revision (bumped only when something is written, as etcd does).
    fn fenced(&mut self, guard: Option<&Guard>, txn: &TxnSpec) -> EtcdResponse {
        if guard.is_some_and(|g| self.create_rev_of(&g.key) != g.rev.0) {
            return EtcdResponse::Fenced(TxnAnswer {
                held: false,
                succeeded: false,
                rev: Revision(self.rev),
                results: vec![],
            });
        }
        let succeeded = txn.compares.iter().all(|c| self.compare(c));
        let ops = if succeeded { &txn.success } else { &txn.failure };
        let writes = ops.iter().any(|op| match op {
            TxnOp::Put { .. } => true,
            TxnOp::Delete { key, prefix } => !self.matching(key, *prefix).is_empty(),
            TxnOp::Get { .. } => false,
        });
        if writes {
            self.rev += 1;
        }
        let mut results = Vec::new();
        for op in ops {
            results.push(match op {
                TxnOp::Put { key, value } => {
                    self.put(key, value, 0);
                    OpResult::Put
                }
                TxnOp::Delete { key, prefix } => {
                    let keys = self.matching(key, *prefix);
                    for k in &keys {
                        self.delete(k);
                    }
                    OpResult::Deleted(keys.len() as i64)
                }
                TxnOp::Get { key, prefix } => OpResult::Got(
                    self.matching(key, *prefix)
                        .into_iter()
                        .filter_map(|k| self.kvs.get(&k).map(|e| (k, e.value.clone())))
                        .collect(),
                ),
            });
        }
        EtcdResponse::Fenced(TxnAnswer { held: true, succeeded, rev: Revision(self.rev), results })
    }

    /// etcd's compare: a missing key has create, mod, version and lease 0, and fails
    /// every value compare.
    fn compare(&self, c: &Compare) -> bool {
        let entry = self.kvs.get(&c.key);
        match (&c.value, c.target) {
            (CmpValue::Bytes(want), _) => entry.is_some_and(|e| c.op.holds(e.value.as_slice(), want.as_slice())),
            (CmpValue::Number(want), target) => {
                let have = entry.map_or(0, |e| match target {
                    CmpTarget::Create => e.create_rev,
                    CmpTarget::Mod => e.mod_rev,
                    CmpTarget::Version => e.version,
                    CmpTarget::Lease => e.lease,
                    CmpTarget::Value => 0,
                });
                c.op.holds(&have, want)
            }
        }
    }

    /// The keys an op names, in key order.
    fn matching(&self, key: &str, prefix: bool) -> Vec<String> {
        if !prefix {
            return if self.kvs.contains_key(key) { vec![key.to_string()] } else { Vec::new() };
        }
        self.kvs.range(key.to_string()..).take_while(|(k, _)| k.starts_with(key)).map(|(k, _)| k.clone()).collect()
    }

    /// Events for `key` (every key under it with `prefix`) from `start_rev` on, or
    /// [`WatchEvent::Compacted`] when that history is gone.
    pub fn watch(&self, key: &str, prefix: bool, start_rev: Revision) -> Result<Vec<Change>, WatchEvent> {
        let matches = |k: &str| if prefix { k.starts_with(key) } else { k == key };
        Ok(self.history_from(start_rev)?.iter().filter(|c| changed_key(c).is_some_and(matches)).cloned().collect())
    }

    /// Whether any key under `prefix` changed from `start_rev` on ([`SimEtcd::watch`]
    /// without collecting the changes), or [`WatchEvent::Compacted`].
    pub fn changed_since(&self, prefix: &str, start_rev: Revision) -> Result<bool, WatchEvent> {
        Ok(self.history_from(start_rev)?.iter().any(|c| changed_key(c).is_some_and(|k| k.starts_with(prefix))))
    }

    /// The history from `start_rev` on, or [`WatchEvent::Compacted`] when it is gone.
    fn history_from(&self, start_rev: Revision) -> Result<&[Change], WatchEvent> {
        // As etcd: watching from the compaction revision itself still works.
        if start_rev.0 < self.compacted {
            return Err(WatchEvent::Compacted);
        }
        Ok(&self.history[self.history.partition_point(|c| c.rev < start_rev.0)..])
    }

    /// The lowest create revision of the keys under `prefix` (the first of
    /// [`SimEtcd::range`], without copying the keys).
    pub fn lowest_create_rev(&self, prefix: &str) -> Option<i64> {
        self.kvs
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.create_rev)
            .min()
    }

    /// Every key a range covers, in key order.
    fn covered(&self, spec: &RangeSpec) -> Vec<Kv> {
        if !spec.prefix {
            return self.kvs.get(&spec.key).map(|e| kv(&spec.key, e)).into_iter().collect();
        }
        self.kvs
            .range(spec.key.clone()..)
            .take_while(|(k, _)| k.starts_with(&spec.key))
            .map(|(k, e)| kv(k, e))
            .collect()
    }

    /// Every key under `prefix`, sorted by create revision (a read without side effects).
    pub fn range(&self, prefix: &str) -> Vec<Kv> {
        let mut kvs: Vec<Kv> = self
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| kv(k, e))
            .collect();
        kvs.sort_by_key(|kv| kv.create_rev);
        kvs
    }

    /// Every lease's deadline moves to `now` + its TTL, as a new leader's lessor does when it
    /// takes over (etcd's `Promote`): time without a leader never expires a lease.
    pub fn renew_all(&mut self, now: Instant) {
        for lease in self.leases.values_mut() {
            lease.expires_at = now.plus(secs(lease.ttl_s));
        }
        self.deadlines = self.leases.iter().map(|(id, l)| (l.expires_at, *id)).collect();
    }

    /// When `lease` expired by its TTL, if it did by `now` (a revoked lease never expired).
    pub fn lease_expired_at(&self, lease: i64, now: Instant) -> Option<Instant> {
        match self.leases.get(&lease) {
            Some(l) => (now >= l.expires_at).then_some(l.expires_at),
            None => self.expired.get(&lease).copied(),
        }
    }

    /// When `lease` left the store (revoked, or expired by the lessor), if it has.
    pub fn lease_ended_at(&self, lease: i64) -> Option<Instant> {
        self.ended.get(&lease).copied()
    }

    /// The earliest lease deadline, if any lease lives.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Compacts the history before `rev` (events at `rev` and later stay watchable).
    pub fn compact(&mut self, rev: Revision) {
        let rev = rev.0.min(self.rev);
        self.compacted = self.compacted.max(rev);
        let keep = self.compacted;
        self.history.retain(|c| c.rev >= keep);
    }

    /// Revokes every lease whose deadline has passed (etcd's lessor).
    pub fn expire(&mut self, now: Instant) {
        // Revoked in id order, as a scan of every lease would.
        let mut expired: Vec<i64> = self.deadlines.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| *id).collect();
        expired.sort_unstable();
        for id in expired {
            if let Some(l) = self.leases.get(&id) {
                self.expired.insert(id, l.expires_at);
            }
            self.revoke(id, now);
        }
    }

    /// A key's create revision as etcd compares it: 0 when the key does not exist.
    fn create_rev_of(&self, key: &str) -> i64 {
        self.kvs.get(key).map_or(0, |e| e.create_rev)
    }

    /// A campaign's put-if-absent; with a marker, both puts in one transaction (one revision).
    fn put_if_absent(&mut self, key: &str, value: &[u8], lease: LeaseId, marker: Option<&str>) -> EtcdResponse {
        if let Some(e) = self.kvs.get(key) {
            return EtcdResponse::Put { created: false, create_rev: Revision(e.create_rev), lease: LeaseId(e.lease) };
        }
        if !self.lease_ok(lease.0) {
            return EtcdResponse::Error(EtcdError::LeaseNotFound);
        }
        self.rev += 1;
        self.put(key, value, lease.0);
        if let Some(marker) = marker {
            self.put(marker, &[], lease.0);
        }
        EtcdResponse::Put { created: true, create_rev: Revision(self.rev), lease }
    }

    fn lease_ok(&self, lease: i64) -> bool {
        lease == 0 || self.leases.contains_key(&lease)
    }

    /// Writes at the current revision (the caller bumped it).
    fn put(&mut self, key: &str, value: &[u8], lease: i64) {
        let rev = self.rev;
        let entry = match self.kvs.get(key) {
            Some(e) => {
                Entry { create_rev: e.create_rev, mod_rev: rev, version: e.version + 1, lease, value: value.to_vec() }
            }
            None => Entry { create_rev: rev, mod_rev: rev, version: 1, lease, value: value.to_vec() },
        };
        if let Some(old) = self.kvs.get(key) {
            if old.lease != lease {
                if let Some(l) = self.leases.get_mut(&old.lease) {
                    l.keys.remove(key);
                }
            }
        }
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.to_string());
        }
        self.record(WatchEvent::Put(kv(key, &entry)));
        self.kvs.insert(key.to_string(), entry);
    }

    fn delete(&mut self, key: &str) {
        if let Some(e) = self.kvs.remove(key) {
            if let Some(l) = self.leases.get_mut(&e.lease) {
                l.keys.remove(key);
            }
            self.record(WatchEvent::Delete { key: key.to_string(), mod_rev: Revision(self.rev) });
        }
    }

    /// Revokes a lease: its keys go in one revision, as in etcd.
    fn revoke(&mut self, id: i64, now: Instant) -> bool {
        let Some(lease) = self.leases.remove(&id) else { return false };
        self.ended.insert(id, now);
        self.deadlines.remove(&(lease.expires_at, id));
        if !lease.keys.is_empty() {
            self.rev += 1;
            for key in lease.keys {
                self.delete(&key);
            }
        }
        true
    }

    fn record(&mut self, event: WatchEvent) {
        if self.history.len() >= HISTORY_MAX {
            let cut = self.history[HISTORY_MAX / 2].rev - 1;
            self.compact(Revision(cut));
        }
        self.history.push(Change { rev: self.rev, event });
    }
}

/// The key a change of the history is about.
fn changed_key(change: &Change) -> Option<&str> {
    match &change.event {
        WatchEvent::Put(kv) => Some(&kv.key),
        WatchEvent::Delete { key, .. } => Some(key),
        _ => None,
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

fn kv(key: &str, e: &Entry) -> Kv {
    Kv {
        key: key.to_string(),
        create_rev: Revision(e.create_rev),
        mod_rev: Revision(e.mod_rev),
        lease: LeaseId(e.lease),
        value: e.value.clone(),
    }
}

/// The lease a write puts a key on, if any.
pub fn write_lease(request: &EtcdRequest) -> Option<i64> {
    match request {
        EtcdRequest::Claim { claim_lease, .. } => Some(claim_lease.0),
        EtcdRequest::PutIfAbsent { lease, .. }
        | EtcdRequest::PutIfAbsentMarked { lease, .. }
        | EtcdRequest::TouchIfCreateRev { lease, .. } => Some(lease.0),
        EtcdRequest::Put { lease: Some(lease), .. } => Some(lease.0),
        EtcdRequest::Put { lease: None, .. }
        | EtcdRequest::Grant { .. }
        | EtcdRequest::KeepAlive { .. }
        | EtcdRequest::RangePrefix { .. }
        | EtcdRequest::Ranges { .. }
        | EtcdRequest::DeleteIfCreateRev { .. }
        | EtcdRequest::DeleteIfCreateRevMarked { .. }
        | EtcdRequest::Yield { .. }
        | EtcdRequest::Revoke { .. }
        | EtcdRequest::Delete { .. } => None,
        // A fenced write's puts carry no lease.
        EtcdRequest::FencedTxn { .. } => None,
    }
}
