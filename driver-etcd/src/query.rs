//! Read-only queries: one sorted range read, no lease, nothing written.
use conch_core::who::{report, WhoReport};
use conch_core::{EtcdRequest, EtcdResponse, HoldSpec};

use crate::calls::call;
use crate::connect::{connect, EtcdConfig};

/// `--who`: the holders (and waiters) of an office or semaphore.
pub fn who(config: &EtcdConfig, spec: &HoldSpec) -> Result<WhoReport, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = connect(config).await?;
        match call(client, EtcdRequest::RangePrefix { prefix: spec.prefix() }, config.dial_timeout).await {
            EtcdResponse::Range { kvs, .. } => Ok(report(spec, &kvs)),
            EtcdResponse::Error(e) => Err(format!("etcd unreachable at {}: {e:?}", config.endpoints.join(","))),
            other => Err(format!("unexpected answer {other:?}")),
        }
    })
}
