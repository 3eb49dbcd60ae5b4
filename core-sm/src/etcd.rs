//! The subset of etcd conch speaks, as plain data: requests out, responses and watch events in.
//!
//! Each request names exactly one etcd call (or transaction) so a driver only translates.
use crate::ids::{LeaseId, Revision};

/// One etcd call the machine wants made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdRequest {
    /// `LeaseGrant(ttl)`.
    Grant {
        /// Requested TTL in whole seconds.
        ttl_s: i64,
    },
    /// One message on the lease's keepalive stream. Responses come back in request order.
    KeepAlive {
        /// The session lease.
        lease: LeaseId,
        /// Open a new stream (and drop the old one) before sending: the previous
        /// request went unanswered, so the stream may be stuck.
        fresh_stream: bool,
    },
    /// `Txn(if create_revision(key) == 0 then put(key, value, lease) else get(key))`.
    PutIfAbsent {
        /// The key.
        key: String,
        /// Its value.
        value: Vec<u8>,
        /// The lease to attach.
        lease: LeaseId,
    },
    /// `Txn(if create_revision(key) == create_rev then put(key, value, lease))`: touch our own
    /// key so the watcher behind us sees a change, never recreating a key that is gone.
    TouchIfCreateRev {
        /// The key.
        key: String,
        /// Its value.
        value: Vec<u8>,
        /// The lease to keep.
        lease: LeaseId,
        /// The create-revision it must still have.
        create_rev: Revision,
    },
    /// `Range(prefix)` sorted by create revision, ascending.
    RangePrefix {
        /// The prefix (ends with `/`).
        prefix: String,
    },
    /// `Txn(then range, range, ...)`: several ranges with options, all read at one
    /// revision in one call (a hold's rank without reading the whole queue).
    Ranges {
        /// The ranges, answered in this order.
        ranges: Vec<RangeSpec>,
    },
    /// `Txn(if create_revision(key) == 0 then put(key, value, lease), put(marker, "", lease)
    /// else get(key))`: an office's campaign with a priority marker (see `crate::hold`);
    /// answered as [`EtcdRequest::PutIfAbsent`].
    PutIfAbsentMarked {
        /// The key.
        key: String,
        /// Its value.
        value: Vec<u8>,
        /// The lease to attach to both.
        lease: LeaseId,
        /// The priority marker, outside the office's queue prefix.
        marker: String,
    },
    /// `Txn(if create_revision(key) == create_rev and version(rival) > 0 then delete(key)
    /// else get(key, keys_only))`: a first-in-line waiter steps to the back for a
    /// higher-priority waiter whose key still exists (it then puts its key again).
    Yield {
        /// Our key.
        key: String,
        /// The create-revision it must still have.
        create_rev: Revision,
        /// The higher-priority waiter's queue key.
        rival: String,
    },
    /// `Txn(if create_revision(key) == create_rev then delete(key), delete(marker) else
    /// delete(marker))`: a release that takes its priority marker with it whatever became
    /// of its key (the marker is on our lease: ours alone); otherwise as `DeleteIfCreateRev`.
    DeleteIfCreateRevMarked {
        /// The key.
        key: String,
        /// The create-revision it must still have.
        create_rev: Revision,
        /// The priority marker.
        marker: String,
    },
    /// `Txn(if create_revision(key) == create_rev then delete(key))`: a retried release can
    /// never delete a newer key of the same name (etcd issue 22082).
    DeleteIfCreateRev {
        /// The key.
        key: String,
        /// The create-revision it must still have.
        create_rev: Revision,
    },
    /// `LeaseRevoke(lease)`.
    Revoke {
        /// The lease.
        lease: LeaseId,
    },
    /// `Put(key, value[, lease])`, unconditional (results, job specs).
    Put {
        /// The key.
        key: String,
        /// Its value.
        value: Vec<u8>,
        /// The lease to attach, if any.
        lease: Option<LeaseId>,
    },
    /// The cron race: `Txn(if create_revision(fire) == 0 [and create_revision(running) == 0]
    /// then put(fire, claim, claim_lease) [, put(running, claim, session)] else get(fire))`.
    Claim {
        /// The tick's fire key.
        fire_key: String,
        /// Claim JSON.
        claim: Vec<u8>,
        /// The claim lease (~25 h, never kept alive).
        claim_lease: LeaseId,
        /// With `--overlap skip`: the running key and the session lease it goes on.
        running: Option<(String, LeaseId)>,
    },
    /// `Delete(key)`, unconditional (`cron rm`).
    Delete {
        /// The key.
        key: String,
    },
    /// A fenced write (`conch put`/`del`/`txn`, [`crate::fenced`]): `Txn(if
    /// create_revision(guard.key) == guard.rev then Txn(if compares then success else
    /// failure))`, one transaction, so nothing lands unless the hold is still the child's.
    FencedTxn {
        /// The hold's guard (`None` only under `Sabotage::UnguardedWrite`).
        guard: Option<crate::fenced::Guard>,
        /// The user's transaction.
        txn: crate::fenced::TxnSpec,
    },
}

/// How a [`RangeSpec`] orders its keys (etcd's sort target and order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RangeSort {
    /// By key, ascending (etcd's own order without a sort).
    #[default]
    Key,
    /// By create revision, lowest first.
    CreateAscend,
    /// By create revision, highest first.
    CreateDescend,
}

/// One etcd range with the options conch uses, with etcd's semantics (checked against a
/// real etcd by `tests/tests/sim_etcd_differential.rs`): the revision bounds filter the
/// keys first (a bound of 0 is none; `min` and `max` are inclusive), then `sort`, then
/// `limit` (0: no limit); `more` says the limit cut something off. `count` is the number
/// of keys in the range **before** the bounds: etcd counts the range, not what its
/// filters kept, so a filtered count is never read from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSpec {
    /// The key, or the prefix when `prefix` is set.
    pub key: String,
    /// Every key under `key`.
    pub prefix: bool,
    /// Only keys created at or after this revision.
    pub min_create_rev: Revision,
    /// Only keys created at or before this revision.
    pub max_create_rev: Revision,
    /// Only keys last changed at or before this revision.
    pub max_mod_rev: Revision,
    /// The order.
    pub sort: RangeSort,
    /// At most this many keys (0: all).
    pub limit: usize,
    /// Leave the values out.
    pub keys_only: bool,
    /// Only the count: no keys.
    pub count_only: bool,
}

impl RangeSpec {
    /// Whether `key` is in this range (before any bound).
    pub fn covers(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key
        }
    }

    /// What etcd answers for this range, given every key it covers in key order (a store
    /// such as the simulator's calls this; the rules are the type's doc).
    pub fn answer(&self, covered: Vec<Kv>) -> RangeResult {
        let count = covered.len() as i64;
        if self.count_only {
            return RangeResult { kvs: Vec::new(), count, more: false };
        }
        let bound = |rev: Revision, ok: bool| rev.0 == 0 || ok;
        let mut kvs: Vec<Kv> = covered
            .into_iter()
            .filter(|kv| {
                bound(self.min_create_rev, kv.create_rev >= self.min_create_rev)
                    && bound(self.max_create_rev, kv.create_rev <= self.max_create_rev)
                    && bound(self.max_mod_rev, kv.mod_rev <= self.max_mod_rev)
            })
            .collect();
        match self.sort {
            RangeSort::Key => {}
            RangeSort::CreateAscend => kvs.sort_by_key(|kv| kv.create_rev),
            RangeSort::CreateDescend => kvs.sort_by_key(|kv| std::cmp::Reverse(kv.create_rev)),
        }
        let more = self.limit > 0 && kvs.len() > self.limit;
        if more {
            kvs.truncate(self.limit);
        }
        if self.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        RangeResult { kvs, count, more }
    }
}

/// What etcd answers to [`EtcdRequest::Ranges`] over a store of `kvs` (in any order)
/// at `header_rev`.
pub fn answer_ranges(ranges: &[RangeSpec], kvs: &[Kv], header_rev: Revision) -> EtcdResponse {
    let mut store = kvs.to_vec();
    store.sort_by(|a, b| a.key.cmp(&b.key));
    let results = ranges
        .iter()
        .map(|spec| spec.answer(store.iter().filter(|kv| spec.covers(&kv.key)).cloned().collect()))
        .collect();
    EtcdResponse::Ranges { header_rev, results }
}

/// One range's answer in [`EtcdResponse::Ranges`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The keys (values empty with `keys_only`; none with `count_only`).
    pub kvs: Vec<Kv>,
    /// Keys in the range before the revision bounds (see [`RangeSpec`]).
    pub count: i64,
    /// The limit left keys out.
    pub more: bool,
}

/// A key-value pair as etcd returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// Revision of the transaction that created it.
    pub create_rev: Revision,
    /// Revision of its last change.
    pub mod_rev: Revision,
    /// Its lease (0 when none).
    pub lease: LeaseId,
    /// The raw value.
    pub value: Vec<u8>,
}

/// The answer to one [`EtcdRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdResponse {
    /// A lease was granted.
    Granted {
        /// Its id.
        lease: LeaseId,
        /// The TTL etcd actually granted, in seconds.
        ttl_s: i64,
    },
    /// A keepalive answer; `ttl_s == 0` means the lease is gone.
    KeepAlive {
        /// Remaining TTL in seconds.
        ttl_s: i64,
    },
    /// Answer to the keepalive that opened a new stream, when the client library consumed
    /// etcd's answer while opening (etcd-client checks it renewed the lease and keeps its
    /// TTL to itself). The raw fact only: the session decides what it is worth.
    KeepAliveOpened,
    /// Answer to [`EtcdRequest::PutIfAbsent`]: the key's create revision either way.
    Put {
        /// Whether this call created it.
        created: bool,
        /// The key's create revision.
        create_rev: Revision,
        /// The lease the existing key is on (ours when `created`).
        lease: LeaseId,
    },
    /// Answer to [`EtcdRequest::TouchIfCreateRev`].
    Touched {
        /// Whether the compare held.
        touched: bool,
    },
    /// Answer to [`EtcdRequest::RangePrefix`].
    Range {
        /// The store revision the read saw.
        header_rev: Revision,
        /// The keys, sorted by create revision.
        kvs: Vec<Kv>,
    },
    /// Answer to [`EtcdRequest::Ranges`].
    Ranges {
        /// The store revision every range saw.
        header_rev: Revision,
        /// One result per range, in request order.
        results: Vec<RangeResult>,
    },
    /// Answer to [`EtcdRequest::Yield`].
    Yielded {
        /// Whether both compares held and our key was deleted.
        yielded: bool,
        /// When not: our key's create revision now (0 when it is gone).
        own_rev: Revision,
    },
    /// Answer to [`EtcdRequest::DeleteIfCreateRev`] and [`EtcdRequest::DeleteIfCreateRevMarked`].
    Deleted {
        /// Whether the compare held and the key was deleted.
        deleted: bool,
    },
    /// Answer to [`EtcdRequest::Revoke`] (also when the lease was already gone).
    Revoked,
    /// Answer to [`EtcdRequest::Put`] and [`EtcdRequest::Delete`].
    Written {
        /// The store revision after the write.
        rev: Revision,
    },
    /// Answer to [`EtcdRequest::Claim`].
    Claimed {
        /// Whether this call claimed the tick.
        won: bool,
        /// When won, the claim's revision; when lost and the fire key exists, the fire
        /// key's create revision (the claim's, should it be ours); else the store's.
        rev: Revision,
        /// When lost: the fire key's value, if it exists (an earlier attempt of ours may
        /// have won before its answer was lost).
        existing: Option<Vec<u8>>,
    },
    /// Answer to [`EtcdRequest::FencedTxn`].
    Fenced(crate::fenced::TxnAnswer),
    /// The call failed.
    Error(EtcdError),
}

/// How an etcd call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// Transport trouble or a timeout: the call may or may not have taken effect.
    #[error("{0}")]
    Unavailable(String),
    /// etcd says the lease does not exist (expired or revoked).
    #[error("lease not found")]
    LeaseNotFound,
    /// etcd refused who we are or what we may do: wrong or missing credentials, `--user`
    /// given while etcd has no authentication, or a role without the permission (exit 77).
    #[error("{0}")]
    Denied(String),
    /// Any other refusal (a bad request): retrying will not help.
    #[error("{0}")]
    Fatal(String),
}

/// What a watch on one key reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was written.
    Put(Kv),
    /// The key was deleted (or its lease expired or was revoked).
    Delete {
        /// The key.
        key: String,
        /// Revision of the deletion.
        mod_rev: Revision,
    },
    /// The start revision was compacted away: events may have been missed.
    Compacted,
    /// The watch stream failed or was cancelled by the server: events may have been missed.
    Broken(String),
}
