//! Fenced writes (`conch put`/`del`/`txn`) against etcd: the core's
//! [`EtcdRequest::FencedTxn`] as one etcd transaction, and the one call the child makes.
//!
//! The transaction nests the user's inside the guard:
//! `if create_revision(CONCH_KEY) == CONCH_REV then txn(if compares then success else
//! failure) else (nothing)` — etcd runs both levels in one revision, so nothing lands
//! unless the hold was the child's at that revision. The rules (the guard, the exit code)
//! are in `conch_core::fenced`.
use conch_core::fenced::TxnSpec;
use conch_core::fenced::{CmpOp, CmpTarget, CmpValue, Compare as UserCompare, Guard, OpResult, TxnAnswer, TxnOp};
use conch_core::{EtcdError, EtcdRequest, EtcdResponse, ExitCode, Failure, Revision};
use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp as Op, TxnOpResponse};

use crate::connect::EtcdConfig;
use crate::pool::{outcome_of, Pool};

/// Makes one fenced write; the answer, or the failure to print (69 etcd unreachable or
/// silent, 77 refused who we are, 64 etcd refused the request as bad).
pub fn write(config: &EtcdConfig, request: EtcdRequest) -> Result<TxnAnswer, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::UNAVAILABLE, e.to_string()))?;
    rt.block_on(async {
        let (response, sent) = send_once(&Pool::new(config.clone()), request).await;
        match response {
            EtcdResponse::Fenced(answer) => Ok(answer),
            EtcdResponse::Error(EtcdError::Fatal(why)) => {
                Err(Failure::new(ExitCode::USAGE, format!("etcd refused the transaction: {why}")))
            }
            EtcdResponse::Error(EtcdError::Unavailable(why)) if sent => Err(Failure::new(
                ExitCode::UNAVAILABLE,
                format!(
                    "etcd did not answer at {}: {why}; the write may or may not have landed",
                    config.endpoints.join(",")
                ),
            )),
            EtcdResponse::Error(e) => Err(crate::query::failure(config, e)),
            other => Err(Failure::new(ExitCode::LOST, format!("unexpected answer {other:?}"))),
        }
    })
}

/// Sends the write to one member at a time, and never twice once it may have reached
/// etcd: the pool's retry is safe for conch's own requests (see `conch_core::endpoints`),
/// but a repeated user transaction could run its other branch, and a repeated put could
/// report 70 for a write that landed while the hold was still ours. Only an attempt that
/// certainly carried nothing — the connection refused, or "no leader" (the member refuses
/// before applying) — moves on to the next member. Returns the answer and whether the
/// write may have been applied.
async fn send_once(pool: &Pool, request: EtcdRequest) -> (EtcdResponse, bool) {
    let config = pool.config();
    let members = config.endpoints.len().max(1);
    let attempt = (config.call_timeout() / members as u32).max(conch_core::endpoints::ATTEMPT_MIN);
    let mut last = EtcdResponse::Error(EtcdError::Unavailable("no endpoint".into()));
    for _ in 0..members {
        let endpoint = pool.pinned();
        let response = match pool.client(endpoint, attempt).await {
            Ok(client) => crate::calls::call(client, request.clone(), attempt).await,
            Err(failure) => failure,
        };
        pool.report(endpoint, outcome_of(&response));
        if !carried_nothing(&response) {
            let sent = matches!(response, EtcdResponse::Error(EtcdError::Unavailable(_)));
            return (response, sent);
        }
        last = response;
    }
    (last, false)
}

/// Carries out [`EtcdRequest::FencedTxn`].
pub async fn call(client: &mut Client, guard: Option<Guard>, txn: TxnSpec) -> Result<EtcdResponse, etcd_client::Error> {
    let inner = Txn::new()
        .when(txn.compares.iter().map(compare).collect::<Vec<_>>())
        .and_then(txn.success.iter().map(op).collect::<Vec<_>>())
        .or_else(txn.failure.iter().map(op).collect::<Vec<_>>());
    let Some(guard) = guard else {
        // Sabotage only: the user's transaction alone.
        let r = client.txn(inner).await?;
        let rev = Revision(r.header().map_or(0, |h| h.revision()));
        let results = r.op_responses().iter().map(result).collect();
        return Ok(EtcdResponse::Fenced(TxnAnswer { held: true, succeeded: r.succeeded(), rev, results }));
    };
    let outer = Txn::new()
        .when([Compare::create_revision(guard.key, CompareOp::Equal, guard.rev.0)])
        .and_then([Op::txn(inner)]);
    let r = client.txn(outer).await?;
    let rev = Revision(r.header().map_or(0, |h| h.revision()));
    let nested = r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Txn(t) => Some(t),
        _ => None,
    });
    Ok(EtcdResponse::Fenced(match (r.succeeded(), nested) {
        (true, Some(t)) => TxnAnswer {
            held: true,
            succeeded: t.succeeded(),
            rev,
            results: t.op_responses().iter().map(result).collect(),
        },
        _ => TxnAnswer { held: false, succeeded: false, rev, results: Vec::new() },
    }))
}

/// Whether a failed attempt certainly never reached a member that could apply it.
fn carried_nothing(response: &EtcdResponse) -> bool {
    matches!(response, EtcdResponse::Error(EtcdError::Unavailable(why))
        if why.contains("no leader") || why.contains("Connection refused") || why.starts_with("cannot connect"))
}

fn compare(c: &UserCompare) -> Compare {
    let op = match c.op {
        CmpOp::Equal => CompareOp::Equal,
        CmpOp::NotEqual => CompareOp::NotEqual,
        CmpOp::Less => CompareOp::Less,
        CmpOp::Greater => CompareOp::Greater,
    };
    let key = c.key.clone();
    match (&c.value, c.target) {
        (CmpValue::Bytes(b), _) => Compare::value(key, op, b.clone()),
        (CmpValue::Number(n), CmpTarget::Create) => Compare::create_revision(key, op, *n),
        (CmpValue::Number(n), CmpTarget::Mod) => Compare::mod_revision(key, op, *n),
        (CmpValue::Number(n), CmpTarget::Version) => Compare::version(key, op, *n),
        (CmpValue::Number(n), CmpTarget::Lease) => Compare::lease(key, op, *n),
        // The parser gives a value compare bytes; a number here compares its digits.
        (CmpValue::Number(n), CmpTarget::Value) => Compare::value(key, op, n.to_string()),
    }
}

fn op(o: &TxnOp) -> Op {
    match o {
        TxnOp::Put { key, value } => Op::put(key.clone(), value.clone(), None),
        TxnOp::Delete { key, prefix } => Op::delete(key.clone(), prefix.then(|| DeleteOptions::new().with_prefix())),
        TxnOp::Get { key, prefix } => Op::get(key.clone(), prefix.then(|| GetOptions::new().with_prefix())),
    }
}

fn result(r: &TxnOpResponse) -> OpResult {
    match r {
        TxnOpResponse::Put(_) => OpResult::Put,
        TxnOpResponse::Delete(d) => OpResult::Deleted(d.deleted()),
        TxnOpResponse::Get(g) => OpResult::Got(
            g.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec())).collect(),
        ),
        // Only the guard nests a transaction, and it is unpacked above.
        TxnOpResponse::Txn(_) => OpResult::Put,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_attempt_that_carried_nothing_moves_to_the_next_member() {
        let unavailable = |why: &str| EtcdResponse::Error(EtcdError::Unavailable(why.into()));
        let table: &[(EtcdResponse, bool)] = &[
            (
                unavailable("status: Unavailable, message: \"tcp connect error: Connection refused (os error 111)\""),
                true,
            ),
            (unavailable("cannot connect to http://127.0.0.1:1: timed out"), true),
            (unavailable("etcdserver: no leader"), true),
            (unavailable("no answer within 1666ms"), false),
            (unavailable("connection reset by peer"), false),
            (EtcdResponse::Error(EtcdError::Fatal("etcdserver: request is too large".into())), false),
            (EtcdResponse::Revoked, false),
        ];
        for (response, want) in table {
            assert_eq!(carried_nothing(response), *want, "{response:?}");
        }
    }
}
