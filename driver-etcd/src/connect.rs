//! Connecting to etcd: endpoints, dial timeout, auth, TLS, per-call timeouts.
use std::time::Duration;

use conch_core::EtcdError;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::calls::{map_error, NO_ANSWER};

/// PEM material for TLS to etcd.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// CA certificate(s) that sign etcd's server certificate.
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, for etcd's `--client-cert-auth`.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// Reads the files with `read`; the error names the file and what is wrong.
    pub fn load(
        ca: &str,
        client: Option<(&str, &str)>,
        read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<TlsFiles, String> {
        let read = |flag: &str, path: &str| {
            let pem = read(path).map_err(|e| format!("{flag} {path}: {e}"))?;
            if !pem.windows(10).any(|w| w == b"-----BEGIN") {
                return Err(format!("{flag} {path}: not a PEM file"));
            }
            Ok(pem)
        };
        let ca_pem = read("--cacert", ca)?;
        let client_pem = match client {
            Some((cert, key)) => Some((read("--cert", cert)?, read("--key", key)?)),
            None => None,
        };
        Ok(TlsFiles { ca_pem, client_pem })
    }
}

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Endpoint URLs (`http://host:port` or `https://host:port`).
    pub endpoints: Vec<String>,
    /// No endpoint answering within this ⇒ etcd is unreachable (exit 69).
    pub dial_timeout: Duration,
    /// `--user name:password`.
    pub user: Option<(String, String)>,
    /// TLS material for `https://` endpoints.
    pub tls: Option<TlsFiles>,
}

/// Longest a single unary call may take before it counts as failed (then retried by the
/// core with a compare, so an ambiguous outcome is safe).
pub const CALL_TIMEOUT_MAX: Duration = Duration::from_secs(2);

impl EtcdConfig {
    /// A plain `http://` configuration.
    pub fn plain(endpoints: Vec<String>, dial_timeout: Duration) -> EtcdConfig {
        EtcdConfig { endpoints, dial_timeout, user: None, tls: None }
    }

    /// Timeout for one unary call.
    pub fn call_timeout(&self) -> Duration {
        self.dial_timeout.min(CALL_TIMEOUT_MAX)
    }
}

/// Builds the client of one member. Without auth the channel is lazy: reachability shows
/// in the first call. With auth, connecting authenticates, bounded here by `timeout`.
/// Every request carries etcd's "require leader" mark, so a member cut off from its peers
/// answers "no leader" instead of serving a stale watch or keepalive stream.
pub async fn connect_one(config: &EtcdConfig, url: &str, timeout: Duration) -> Result<Client, EtcdError> {
    let mut options = ConnectOptions::new().with_connect_timeout(timeout).with_require_leader(true);
    if let Some(tls) = &config.tls {
        let mut tls_options = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some((cert, key)) = &tls.client_pem {
            tls_options = tls_options.identity(Identity::from_pem(cert, key));
        }
        options = options.with_tls(tls_options);
    }
    if let Some((name, password)) = &config.user {
        options = options.with_user(name, password);
    }
    match tokio::time::timeout(timeout, Client::connect([url], Some(options))).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(match map_error(&e) {
            EtcdError::Unavailable(why) => EtcdError::Unavailable(format!("cannot connect to {url}: {why}")),
            other => other,
        }),
        Err(_) => Err(EtcdError::Unavailable(format!("{NO_ANSWER} {}ms from {url}", timeout.as_millis()))),
    }
}
