//! Connecting to etcd: endpoints, dial timeout, per-call timeouts.
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Endpoint URLs (`http://host:port`).
    pub endpoints: Vec<String>,
    /// No endpoint answering within this ⇒ etcd is unreachable (exit 69).
    pub dial_timeout: Duration,
}

/// Longest a single unary call may take before it counts as failed (then retried by the
/// core with a compare, so an ambiguous outcome is safe).
pub const CALL_TIMEOUT_MAX: Duration = Duration::from_secs(2);

impl EtcdConfig {
    /// Timeout for one unary call.
    pub fn call_timeout(&self) -> Duration {
        self.dial_timeout.min(CALL_TIMEOUT_MAX)
    }
}

/// Builds the client. The channel is lazy: reachability shows in the first call, which
/// the caller bounds by the dial timeout.
pub async fn connect(config: &EtcdConfig) -> Result<Client, String> {
    let options = ConnectOptions::new().with_connect_timeout(config.dial_timeout);
    Client::connect(&config.endpoints, Some(options))
        .await
        .map_err(|e| format!("cannot connect to etcd at {}: {e}", config.endpoints.join(",")))
}
