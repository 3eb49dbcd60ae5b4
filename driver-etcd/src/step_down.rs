//! `conch elect OFFICE --step-down`: asks the office's leader to resign, from any host.
//!
//! The rules are `conch_core::step_down`'s; this carries them out: read the office (vacant
//! ⇒ nothing written), write the request naming the leader's token on a lease of our own,
//! wait for the leader's key to go (its watch, or reads when the watch breaks) within the
//! wait, then delete the request and revoke the lease — also when interrupted.
use std::time::Duration;

use conch_core::keys::Name;
use conch_core::step_down::{key, Request, StepDown};
use conch_core::values::Holder;
use conch_core::{EtcdRequest, EtcdResponse, ExitCode, Failure, HoldSpec, Kv, LeaseId, Revision};
use etcd_client::WatchOptions;
use tokio::signal::unix::{signal, SignalKind};

use crate::connect::EtcdConfig;
use crate::pool::Pool;
use crate::query::failure;

/// How often the leader's key is read again while its watch is broken.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Asks the leader of `office` to step down and waits up to `wait` for it to resign.
pub fn step_down(
    config: &EtcdConfig,
    office: &Name,
    ttl: Duration,
    wait: Duration,
    asker: (String, u32),
) -> Result<StepDown, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::UNAVAILABLE, e.to_string()))?;
    rt.block_on(async {
        let pool = Pool::new(config.clone());
        let spec = HoldSpec::office(office.clone());
        let (header_rev, kvs) = range(&pool, spec.prefix()).await?;
        let Some(leader) = kvs.into_iter().next() else { return Ok(StepDown::Vacant) };
        let host = Holder::decode(&leader.value).map_or_else(|| "?".to_string(), |h| h.host);
        let lease =
            match pool.call(EtcdRequest::Grant { ttl_s: ttl.as_secs().max(1) as i64 }, config.dial_timeout).await {
                EtcdResponse::Granted { lease, .. } => lease,
                EtcdResponse::Error(e) => return Err(failure(config, e)),
                other => return Err(Failure::new(ExitCode::LOST, format!("unexpected answer {other:?}"))),
            };
        let request = key(office, lease);
        let value = Request { rev: leader.create_rev.0, host: asker.0, pid: asker.1 }.encode();
        let put = EtcdRequest::Put { key: request.clone(), value, lease: Some(lease) };
        let outcome = match pool.call(put, config.call_timeout()).await {
            EtcdResponse::Written { .. } => wait_gone(&pool, &leader, header_rev, wait).await.map(|gone| match gone {
                Gone::Yes => StepDown::Resigned { host, rev: leader.create_rev },
                Gone::No => StepDown::TimedOut { host, rev: leader.create_rev },
                Gone::Interrupted(n) => StepDown::Interrupted(n),
            }),
            EtcdResponse::Error(e) => Err(failure(config, e)),
            other => Err(Failure::new(ExitCode::LOST, format!("unexpected answer {other:?}"))),
        };
        withdraw(&pool, request, lease).await;
        outcome
    })
}

enum Gone {
    Yes,
    No,
    Interrupted(i32),
}

/// Waits for `leader`'s key to be deleted (or to hold another token), at most `wait`.
async fn wait_gone(pool: &Pool, leader: &Kv, header_rev: Revision, wait: Duration) -> Result<Gone, Failure> {
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return Err(Failure::new(ExitCode::LOST, "cannot install signal handlers"));
    };
    let watched = async {
        let endpoint = pool.pinned();
        if let Ok(mut client) = pool.client(endpoint, pool.config().dial_timeout).await {
            let options = WatchOptions::new().with_start_revision(header_rev.0 + 1);
            if let Ok(mut stream) = client.watch(leader.key.clone(), Some(options)).await {
                while let Ok(Some(r)) = stream.message().await {
                    let deleted = r.events().iter().any(|e| e.event_type() == etcd_client::EventType::Delete);
                    if deleted {
                        return Ok(Gone::Yes);
                    }
                    if r.canceled() || r.compact_revision() != 0 {
                        break;
                    }
                }
            }
        }
        // No watch (or it broke): read the key until it is gone.
        loop {
            let (_, kvs) = range(pool, leader.key.clone()).await?;
            if !kvs.iter().any(|kv| kv.key == leader.key && kv.create_rev == leader.create_rev) {
                return Ok(Gone::Yes);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    };
    tokio::select! {
        gone = tokio::time::timeout(wait, watched) => gone.unwrap_or(Ok(Gone::No)),
        _ = int.recv() => Ok(Gone::Interrupted(2)),
        _ = term.recv() => Ok(Gone::Interrupted(15)),
    }
}

/// Deletes the request and revokes its lease (best effort: the lease expires anyway).
async fn withdraw(pool: &Pool, request: String, lease: LeaseId) {
    let budget = pool.config().call_timeout();
    let _ = pool.call(EtcdRequest::Delete { key: request }, budget).await;
    let _ = pool.call(EtcdRequest::Revoke { lease }, budget).await;
}

async fn range(pool: &Pool, prefix: String) -> Result<(Revision, Vec<Kv>), Failure> {
    let config = pool.config();
    match pool.call(EtcdRequest::RangePrefix { prefix }, config.dial_timeout).await {
        EtcdResponse::Range { header_rev, kvs } => Ok((header_rev, kvs)),
        EtcdResponse::Error(e) => Err(failure(config, e)),
        other => Err(Failure::new(ExitCode::LOST, format!("unexpected answer {other:?}"))),
    }
}
