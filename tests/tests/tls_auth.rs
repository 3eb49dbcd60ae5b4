//! TLS (with client certificates) and etcd authentication.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use conch_tests::*;

#[test]
fn a_run_and_who_over_tls_with_client_certificates() {
    let etcd = Etcd::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let tls = |cmd: &mut std::process::Command| {
        cmd.args([
            "--cacert",
            &etcd.tls_file("ca.crt"),
            "--cert",
            &etcd.tls_file("client.crt"),
            "--key",
            &etcd.tls_file("client.key"),
        ]);
    };
    let mut run = conch(&etcd);
    tls(&mut run);
    let out = run
        .args(["elect", "tls-office", "--", "sh", "-c"])
        .arg(format!("echo $CONCH_REV > {}", marker.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!read(&marker).trim().is_empty());
    let mut who = conch(&etcd);
    tls(&mut who);
    assert_eq!(who.args(["elect", "tls-office", "--who"]).output().unwrap().status.code(), Some(1));
    // Without the client certificate etcd refuses the handshake: unreachable, 69, nothing run.
    let out = conch(&etcd)
        .args(["--cacert", &etcd.tls_file("ca.crt"), "elect", "tls-office", "--", "touch"])
        .arg(dir.path().join("no"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("no").exists());
    // https without --cacert is a usage error.
    assert_eq!(conch(&etcd).args(["elect", "x", "--who"]).output().unwrap().status.code(), Some(64));
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn a_run_with_etcd_authentication() {
    let mut etcd = Etcd::start();
    etcd.enable_auth("s3cret");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = conch(&etcd)
        .args(["--user", "root:s3cret", "sema", "auth", "--max", "1", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(marker.exists());
    let denied = dir.path().join("denied");
    let t0 = std::time::Instant::now();
    let out = conch(&etcd)
        .args(["--user", "root:wrong", "sema", "auth", "--max", "1", "--", "touch"])
        .arg(&denied)
        .output()
        .unwrap();
    // A refusal of the credentials is exit 77 (EX_NOPERM), not "unreachable" (see cli_exit_codes.rs).
    assert_eq!(out.status.code(), Some(77), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(!denied.exists());
    let out = conch(&etcd).args(["sema", "auth", "--max", "1", "--", "touch"]).arg(&denied).output().unwrap();
    assert_eq!(out.status.code(), Some(77), "no credentials: {}", String::from_utf8_lossy(&out.stderr));
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

/// A SIGKILLed wrapper's shim revokes its lease over TLS with client certificates and
/// with etcd's authentication alike (issue 16.1): the lease is gone long before its TTL.
#[test]
fn the_shim_of_a_sigkilled_wrapper_revokes_over_tls_and_with_auth() {
    let tls_etcd = Etcd::start_tls();
    let mut auth_etcd = Etcd::start();
    auth_etcd.enable_auth("s3cret");
    let certs: Vec<String> = ["--cacert", "ca.crt", "--cert", "client.crt", "--key", "client.key"]
        .chunks(2)
        .flat_map(|pair| [pair[0].to_string(), tls_etcd.tls_file(pair[1])])
        .collect();
    let user = vec!["--user".to_string(), "root:s3cret".to_string()];
    for (etcd, flags) in [(&tls_etcd, certs), (&auth_etcd, user)] {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let mut wrapper = conch(etcd)
            .args(&flags)
            .args(["--ttl", "30s", "elect", "revoked", "--", "sh", "-c"])
            .arg(format!("echo $$ >> {}; exec sleep 1000", pids.display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_until(Duration::from_secs(10), || pids_in(&pids).len() == 1), "{flags:?}: no child");
        assert_eq!(etcd.leases().len(), 1);
        kill_child(&mut wrapper);
        let freed = wait_until(Duration::from_secs(5), || etcd.leases().is_empty() && etcd.keys("/conch/").is_empty());
        let child_alive = alive(pids_in(&pids)[0]);
        kill_pids_in(&pids);
        assert!(freed, "{flags:?}: the 30 s lease outlived its SIGKILLed wrapper by 5 s");
        assert!(!child_alive, "{flags:?}: the child outlived its wrapper");
    }
}
