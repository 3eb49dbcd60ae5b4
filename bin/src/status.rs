//! conchd with its optional status API.
use std::net::SocketAddr;

use conch_core::conchd::ConchdConfig;
use conch_core::ExitCode;
use conch_driver_etcd::status::Status;
use conch_driver_etcd::{run, EtcdConfig};

/// Runs conchd; with `status_addr`, serves the status API next to it.
pub fn serve_conchd(etcd: EtcdConfig, cfg: ConchdConfig, status_addr: Option<SocketAddr>) -> ExitCode {
    let status = match status_addr {
        Some(addr) => match Status::serve(addr, etcd.clone()) {
            Ok(status) => Some(status),
            Err(e) => {
                conch_driver_etcd::out::say_err(&format!("conch: {e}"));
                return ExitCode::UNAVAILABLE;
            }
        },
        None => None,
    };
    run::run_conchd(etcd, cfg, move |conchd| {
        if let Some(status) = &status {
            status.observe(conchd);
        }
    })
}
