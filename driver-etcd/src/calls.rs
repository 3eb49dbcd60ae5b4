//! One [`EtcdRequest`] becomes one etcd call; its result becomes one [`EtcdResponse`].
use std::time::Duration;

use conch_core::{EtcdError, EtcdRequest, EtcdResponse, Kv, LeaseId, RangeResult, RangeSort, RangeSpec, Revision};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use tonic::Code;

/// How every "no answer in time" failure begins (the pool reads it as a timeout).
pub const NO_ANSWER: &str = "no answer within";

/// Makes the call, bounded by `timeout` (a timeout is [`EtcdError::Unavailable`]).
pub async fn call(mut client: Client, request: EtcdRequest, timeout: Duration) -> EtcdResponse {
    match tokio::time::timeout(timeout, dispatch(&mut client, request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => EtcdResponse::Error(map_error(&e)),
        Err(_) => EtcdResponse::Error(EtcdError::Unavailable(format!("{NO_ANSWER} {}ms", timeout.as_millis()))),
    }
}

async fn dispatch(client: &mut Client, request: EtcdRequest) -> Result<EtcdResponse, etcd_client::Error> {
    Ok(match request {
        EtcdRequest::Grant { ttl_s } => {
            let r = client.lease_grant(ttl_s, None).await?;
            EtcdResponse::Granted { lease: LeaseId(r.id()), ttl_s: r.ttl() }
        }
        EtcdRequest::PutIfAbsent { key, value, lease } => {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), value, Some(PutOptions::new().with_lease(lease.0)))])
                .or_else([TxnOp::get(key, None)]);
            put_answer(client.txn(txn).await?, lease)
        }
        EtcdRequest::TouchIfCreateRev { key, value, lease, create_rev } => {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, create_rev.0)])
                .and_then([TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease.0)))]);
            EtcdResponse::Touched { touched: client.txn(txn).await?.succeeded() }
        }
        EtcdRequest::RangePrefix { prefix } => {
            let options = GetOptions::new().with_prefix().with_sort(SortTarget::Create, SortOrder::Ascend);
            let r = client.get(prefix, Some(options)).await?;
            let kvs = r.kvs().iter().map(to_kv).collect();
            EtcdResponse::Range { header_rev: Revision(r.header().map_or(0, |h| h.revision())), kvs }
        }
        EtcdRequest::Ranges { ranges } => {
            let ops: Vec<TxnOp> =
                ranges.into_iter().map(|spec| TxnOp::get(spec.key.clone(), Some(options(&spec)))).collect();
            let r = client.txn(Txn::new().and_then(ops)).await?;
            let header_rev = Revision(r.header().map_or(0, |h| h.revision()));
            let results = r
                .op_responses()
                .into_iter()
                .filter_map(|op| match op {
                    TxnOpResponse::Get(g) => {
                        Some(RangeResult { kvs: g.kvs().iter().map(to_kv).collect(), count: g.count(), more: g.more() })
                    }
                    _ => None,
                })
                .collect();
            EtcdResponse::Ranges { header_rev, results }
        }
        EtcdRequest::PutIfAbsentMarked { key, value, lease, marker } => {
            let on = || Some(PutOptions::new().with_lease(lease.0));
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), value, on()), TxnOp::put(marker, Vec::new(), on())])
                .or_else([TxnOp::get(key, None)]);
            put_answer(client.txn(txn).await?, lease)
        }
        EtcdRequest::Yield { key, create_rev, rival } => {
            let txn = Txn::new()
                .when([
                    Compare::create_revision(key.clone(), CompareOp::Equal, create_rev.0),
                    Compare::version(rival, CompareOp::Greater, 0),
                ])
                .and_then([TxnOp::delete(key.clone(), None)])
                .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
            let r = client.txn(txn).await?;
            let own_rev = r
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.create_revision()),
                    _ => None,
                })
                .unwrap_or(0);
            EtcdResponse::Yielded { yielded: r.succeeded(), own_rev: Revision(own_rev) }
        }
        EtcdRequest::DeleteIfCreateRevMarked { key, create_rev, marker } => {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, create_rev.0)])
                .and_then([TxnOp::delete(key, None), TxnOp::delete(marker.clone(), None)])
                .or_else([TxnOp::delete(marker, None)]);
            EtcdResponse::Deleted { deleted: client.txn(txn).await?.succeeded() }
        }
        EtcdRequest::DeleteIfCreateRev { key, create_rev } => {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, create_rev.0)])
                .and_then([TxnOp::delete(key, None)]);
            EtcdResponse::Deleted { deleted: client.txn(txn).await?.succeeded() }
        }
        EtcdRequest::Revoke { lease } => match client.lease_revoke(lease.0).await {
            Ok(_) => EtcdResponse::Revoked,
            Err(e) if map_error(&e) == EtcdError::LeaseNotFound => EtcdResponse::Revoked,
            Err(e) => return Err(e),
        },
        EtcdRequest::Put { key, value, lease } => {
            let options = lease.map(|l| PutOptions::new().with_lease(l.0));
            let r = client.put(key, value, options).await?;
            EtcdResponse::Written { rev: Revision(r.header().map_or(0, |h| h.revision())) }
        }
        EtcdRequest::Delete { key } => {
            let r = client.delete(key, None).await?;
            EtcdResponse::Written { rev: Revision(r.header().map_or(0, |h| h.revision())) }
        }
        EtcdRequest::Claim { fire_key, claim, claim_lease, running } => {
            let mut when = vec![Compare::create_revision(fire_key.clone(), CompareOp::Equal, 0)];
            let mut then =
                vec![TxnOp::put(fire_key.clone(), claim.clone(), Some(PutOptions::new().with_lease(claim_lease.0)))];
            if let Some((key, session)) = running {
                when.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                then.push(TxnOp::put(key, claim, Some(PutOptions::new().with_lease(session.0))));
            }
            let txn = Txn::new().when(when).and_then(then).or_else([TxnOp::get(fire_key, None)]);
            let r = client.txn(txn).await?;
            let mut rev = Revision(r.header().map_or(0, |h| h.revision()));
            let found = if r.succeeded() {
                None
            } else {
                r.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| (kv.value().to_vec(), kv.create_revision())),
                    _ => None,
                })
            };
            if let Some((_, create_rev)) = &found {
                rev = Revision(*create_rev);
            }
            EtcdResponse::Claimed { won: r.succeeded(), rev, existing: found.map(|(value, _)| value) }
        }
        EtcdRequest::FencedTxn { guard, txn } => crate::fenced::call(client, guard, txn).await?,
        // Keepalives go over the stream (see keepalive.rs), never through here.
        EtcdRequest::KeepAlive { .. } => EtcdResponse::Error(EtcdError::Fatal("keepalive is a stream".into())),
    })
}

/// A put-if-absent txn's answer: our create revision, or the existing key's and lease.
fn put_answer(r: etcd_client::TxnResponse, lease: LeaseId) -> EtcdResponse {
    let header_rev = r.header().map_or(0, |h| h.revision());
    if r.succeeded() {
        return EtcdResponse::Put { created: true, create_rev: Revision(header_rev), lease };
    }
    let existing = r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| (kv.create_revision(), kv.lease())),
        _ => None,
    });
    match existing {
        Some((create_rev, owner)) => {
            EtcdResponse::Put { created: false, create_rev: Revision(create_rev), lease: LeaseId(owner) }
        }
        // Deleted between compare and get cannot happen inside one txn.
        None => EtcdResponse::Error(EtcdError::Unavailable("put-if-absent: key vanished".into())),
    }
}

/// A [`RangeSpec`]'s options as etcd-client's (a bound or limit of 0 is none).
fn options(spec: &RangeSpec) -> GetOptions {
    let mut o = GetOptions::new();
    if spec.prefix {
        o = o.with_prefix();
    }
    if spec.min_create_rev.0 > 0 {
        o = o.with_min_create_revision(spec.min_create_rev.0);
    }
    if spec.max_create_rev.0 > 0 {
        o = o.with_max_create_revision(spec.max_create_rev.0);
    }
    if spec.max_mod_rev.0 > 0 {
        o = o.with_max_mod_revision(spec.max_mod_rev.0);
    }
    o = match spec.sort {
        RangeSort::Key => o,
        RangeSort::CreateAscend => o.with_sort(SortTarget::Create, SortOrder::Ascend),
        RangeSort::CreateDescend => o.with_sort(SortTarget::Create, SortOrder::Descend),
    };
    if spec.limit > 0 {
        o = o.with_limit(spec.limit as i64);
    }
    if spec.keys_only {
        o = o.with_keys_only();
    }
    if spec.count_only {
        o = o.with_count_only();
    }
    o
}

/// A key-value pair from etcd-client into the core's form.
pub fn to_kv(kv: &etcd_client::KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        create_rev: Revision(kv.create_revision()),
        mod_rev: Revision(kv.mod_revision()),
        lease: LeaseId(kv.lease()),
        value: kv.value().to_vec(),
    }
}

/// Sorts an etcd-client error into the core's kinds.
pub fn map_error(error: &etcd_client::Error) -> EtcdError {
    let text = describe(error);
    if text.contains("requested lease not found") || text.contains("lease not found") {
        return EtcdError::LeaseNotFound;
    }
    match error {
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            Code::PermissionDenied | Code::Unauthenticated => EtcdError::Denied(denied(status.message())),
            Code::InvalidArgument | Code::FailedPrecondition if is_auth(status.message()) => {
                EtcdError::Denied(denied(status.message()))
            }
            Code::InvalidArgument | Code::FailedPrecondition => EtcdError::Fatal(text),
            _ => EtcdError::Unavailable(text),
        },
        etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => EtcdError::Fatal(text),
        _ => EtcdError::Unavailable(text),
    }
}

/// etcd's refusals of who we are (its `rpctypes` messages), as opposed to a bad request.
/// "auth: revision in header is old" is not one: it is retried like any stale read.
const AUTH_REFUSALS: [&str; 5] = [
    "authentication failed",
    "authentication is not enabled",
    "user name is empty",
    "user name not found",
    "invalid auth token",
];

fn is_auth(message: &str) -> bool {
    AUTH_REFUSALS.iter().any(|m| message.contains(m))
}

/// The one line an operator reads for a refusal: what to do, then etcd's own words.
fn denied(message: &str) -> String {
    let advice = if message.contains("authentication is not enabled") {
        "etcd has no authentication enabled, but --user was given: drop --user"
    } else if message.contains("authentication failed") || message.contains("user name not found") {
        "etcd refused the --user credentials: wrong name or password"
    } else if message.contains("permission denied") {
        "etcd denied the permission: the --user's role must allow reading and writing under /conch/"
    } else {
        "etcd requires authentication: give --user name:password (or CONCH_USER)"
    };
    format!("{advice} (etcd: {})", message.trim_start_matches("etcdserver: "))
}

/// One short line for an error: gRPC's message and the root cause (say, "Connection
/// refused"), not the whole debug chain.
fn describe(error: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = error else { return error.to_string() };
    let mut root: &dyn std::error::Error = status;
    while let Some(next) = root.source() {
        root = next;
    }
    let head = status.message().to_string();
    let root = root.to_string();
    if root == head {
        head
    } else {
        format!("{head}: {root}")
    }
}
