//! conchd with its optional status API (filled in by the status-API work: for now the
//! daemon alone; an address is refused until then).
use std::net::SocketAddr;

use conch_core::conchd::ConchdConfig;
use conch_core::ExitCode;
use conch_driver_etcd::{run, EtcdConfig};

/// Runs conchd; with `status_addr`, serves the status API next to it.
pub fn serve_conchd(etcd: EtcdConfig, cfg: ConchdConfig, status_addr: Option<SocketAddr>) -> ExitCode {
    if let Some(addr) = status_addr {
        eprintln!("conch: --status-addr {addr}: the status API is not built yet");
        return ExitCode::USAGE;
    }
    run::run_conchd(etcd, cfg, |_| {})
}
