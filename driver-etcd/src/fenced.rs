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
use crate::pool::Pool;

/// Makes one fenced write through the pool; the answer, or the failure to print (69 etcd
/// unreachable, 77 refused who we are, 64 etcd refused the request as bad).
pub fn write(config: &EtcdConfig, request: EtcdRequest) -> Result<TxnAnswer, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::UNAVAILABLE, e.to_string()))?;
    rt.block_on(async {
        match Pool::new(config.clone()).call(request, config.call_timeout()).await {
            EtcdResponse::Fenced(answer) => Ok(answer),
            EtcdResponse::Error(EtcdError::Fatal(why)) => {
                Err(Failure::new(ExitCode::USAGE, format!("etcd refused the transaction: {why}")))
            }
            EtcdResponse::Error(e) => Err(crate::query::failure(config, e)),
            other => Err(Failure::new(ExitCode::LOST, format!("unexpected answer {other:?}"))),
        }
    })
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
