//! The shim's one call to etcd: revoke the session lease once the wrapper is gone and
//! every process of the child with it (issue 16.1; *when* is `ShimRules`' rule, this is
//! only the call).
//!
//! The shim stays a small synchronous process while it supervises (07-performance B6):
//! the wrapper hands it how to reach etcd as one line on the shim socket, and only at
//! the revoke does the shim build a current-thread runtime and a client. The line never
//! goes on the command line or into the environment the command inherits, since it may
//! carry a password:
//!
//! ```text
//! wrapper → shim   R <lease> <dial_timeout_ms> <endpoint,...> <user> <password> <ca> <cert> <key>
//! ```
//!
//! each of the last five hex-encoded bytes, or `-` when absent. TLS and auth work as in
//! the wrapper (the same `connect_one`). Every endpoint is tried in turn within one
//! budget ([`REVOKE_BUDGET`]); on any failure the lease's TTL frees it, as before.
use std::time::Duration;

use conch_core::{EtcdError, LeaseId};

use crate::calls::map_error;
use crate::connect::{connect_one, EtcdConfig, TlsFiles};

/// The most the whole revoke may take, every endpoint included. The child's group is
/// already dead: a slow revoke only delays the successor, the TTL bounds it anyway.
pub const REVOKE_BUDGET: Duration = Duration::from_secs(2);

/// The `R` line (without its newline) that tells the shim the lease and how to revoke it.
pub fn encode(lease: LeaseId, config: &EtcdConfig) -> String {
    let field = |bytes: Option<&[u8]>| bytes.map_or_else(|| "-".to_string(), hex);
    let user = config.user.as_ref();
    let tls = config.tls.as_ref();
    let client = tls.and_then(|t| t.client_pem.as_ref());
    format!(
        "R {} {} {} {} {} {} {} {}",
        lease.0,
        config.dial_timeout.as_millis(),
        config.endpoints.join(","),
        field(user.map(|(name, _)| name.as_bytes())),
        field(user.map(|(_, password)| password.as_bytes())),
        field(tls.map(|t| t.ca_pem.as_slice())),
        field(client.map(|(cert, _)| cert.as_slice())),
        field(client.map(|(_, key)| key.as_slice())),
    )
}

/// Parses [`encode`]'s line; `None` when it is not one.
pub fn decode(line: &str) -> Option<(LeaseId, EtcdConfig)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let ["R", lease, dial_ms, endpoints, user, password, ca, cert, key] = fields.as_slice() else {
        return None;
    };
    let field = |f: &str| if f == "-" { Some(None) } else { unhex(f).map(Some) };
    let text = |f: &str| field(f).map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()));
    let user = match (text(user)?, text(password)?) {
        (Some(name), Some(password)) => Some((name, password)),
        _ => None,
    };
    let tls = match (field(ca)?, field(cert)?, field(key)?) {
        (Some(ca_pem), cert, key) => Some(TlsFiles { ca_pem, client_pem: cert.zip(key) }),
        _ => None,
    };
    let endpoints: Vec<String> = endpoints.split(',').filter(|e| !e.is_empty()).map(String::from).collect();
    let dial_timeout = Duration::from_millis(dial_ms.parse().ok()?);
    Some((LeaseId(lease.parse().ok()?), EtcdConfig { endpoints, dial_timeout, user, tls }))
}

/// Revokes `lease` through the first endpoint that answers, within [`REVOKE_BUDGET`]:
/// that endpoint, and whether the lease still existed (etcd answers "lease not found" to
/// one that expired or was revoked already: nothing left to free, not a failure).
/// Blocks; builds its own current-thread runtime (the shim has none).
pub fn revoke(lease: LeaseId, config: &EtcdConfig) -> Result<(String, bool), String> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("no runtime: {e}"))?;
    runtime.block_on(async {
        let started = tokio::time::Instant::now();
        let mut last = "no endpoint".to_string();
        for url in &config.endpoints {
            let left = REVOKE_BUDGET.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let timeout = config.call_timeout().min(left);
            match revoke_at(config, url, lease, timeout).await {
                Ok(found) => return Ok((url.clone(), found)),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(last)
    })
}

async fn revoke_at(config: &EtcdConfig, url: &str, lease: LeaseId, timeout: Duration) -> Result<bool, String> {
    let mut client = connect_one(config, url, timeout).await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, client.lease_revoke(lease.0)).await {
        Ok(Ok(_)) => Ok(true),
        // Already gone (expired, or revoked by someone else): nothing left to free.
        Ok(Err(e)) if map_error(&e) == EtcdError::LeaseNotFound => Ok(false),
        Ok(Err(e)) => Err(map_error(&e).to_string()),
        Err(_) => Err(format!("no answer in {}ms", timeout.as_millis())),
    }
}

/// Lowercase hex of `bytes` (the shim socket's lines carry arbitrary bytes this way).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`hex`] undone; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_round_trips_with_and_without_tls_and_auth() {
        let plain =
            EtcdConfig::plain(vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()], Duration::from_secs(3));
        let tls =
            TlsFiles { ca_pem: b"-----BEGIN CA".to_vec(), client_pem: Some((b"c e r t".to_vec(), b"k\ney".to_vec())) };
        let full = EtcdConfig { user: Some(("root".into(), "pa ss:w0rd".into())), tls: Some(tls), ..plain.clone() };
        for config in [plain, full] {
            let line = encode(LeaseId(0x7fff_0000_1234), &config);
            assert!(!line.contains('\n'));
            let (lease, back) = decode(&line).expect("decodes");
            assert_eq!(lease, LeaseId(0x7fff_0000_1234));
            assert_eq!(format!("{back:?}"), format!("{config:?}"));
        }
        assert!(decode("R 1 2").is_none());
        assert!(decode("R 1 2 http://x - - zz - -").is_none());
    }

    #[test]
    fn a_closed_port_fails_within_the_budget() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let config = EtcdConfig::plain(vec![format!("http://127.0.0.1:{}", port.unwrap_or(1))], Duration::from_secs(5));
        let started = std::time::Instant::now();
        assert!(revoke(LeaseId(1), &config).is_err());
        assert!(started.elapsed() < REVOKE_BUDGET + Duration::from_secs(1));
    }
}
