//! Endpoint failover against real etcd: one endpoint of two refuses or never answers, and
//! a member that goes silent under a holder. Every command must succeed, a holder must
//! keep its hold (its keepalives and watches move to the live endpoint), and its own-key
//! watch must still see a deletion after the move.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use conch_tests::proxy::Proxy;
use conch_tests::*;

/// A local port nobody listens on: connections are refused at once.
fn closed_port() -> u16 {
    free_port()
}

fn with_endpoints(etcd: &Etcd, endpoints: &str) -> std::process::Command {
    let mut cmd = conch(etcd);
    cmd.env("CONCH_ENDPOINTS", endpoints);
    cmd
}

#[test]
fn a_refusing_first_endpoint_fails_no_command() {
    let etcd = Etcd::start();
    let live = etcd.endpoint().trim_start_matches("http://").to_string();
    // Written without a scheme, as etcdctl takes them.
    let endpoints = format!("127.0.0.1:{},{live}", closed_port());
    let office = unique("refused");
    for round in 0..10 {
        let out = with_endpoints(&etcd, &endpoints).args(["--quiet", "elect", &office, "--", "true"]).output().unwrap();
        assert!(out.status.success(), "elect round {round}: {}", String::from_utf8_lossy(&out.stderr));
        let out = with_endpoints(&etcd, &endpoints).args(["cron", "ls"]).output().unwrap();
        assert!(out.status.success(), "cron ls round {round}: {}", String::from_utf8_lossy(&out.stderr));
        let out = with_endpoints(&etcd, &endpoints)
            .args(["sema", &office, "--max", "2", "--", "true"])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "sema round {round}");
    }
    let out = with_endpoints(&etcd, &endpoints).args(["elect", &office, "--who"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a vacant office after every run");
    assert!(etcd.keys("/conch/").is_empty());
}

#[test]
fn a_silent_first_endpoint_is_left_within_the_dial_timeout() {
    let etcd = Etcd::start();
    // A listener that never accepts: the TCP handshake completes, nothing ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoints = format!("http://127.0.0.1:{},{}", silent.local_addr().unwrap().port(), etcd.endpoint());
    let office = unique("silent");
    let began = Instant::now();
    let out = with_endpoints(&etcd, &endpoints)
        .env("CONCH_DIAL_TIMEOUT", "2s")
        .args(["elect", &office, "--", "sh", "-c", "echo $CONCH_REV"])
        .output()
        .unwrap();
    let took = began.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("endpoint-switched"));
    // One attempt on the silent member (half the dial timeout with two endpoints), then the
    // live one; the slack is for a loaded machine.
    assert!(took < Duration::from_secs(2) + Duration::from_secs(3), "took {took:?}");
    drop(silent);
}

#[test]
fn a_holder_whose_member_goes_silent_keeps_its_hold_and_its_watch() {
    let etcd = Etcd::start();
    let port = etcd.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(port);
    let endpoints = format!("http://127.0.0.1:{},{}", proxy.port(), etcd.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("move");
    let script = format!(
        "trap 'echo term > {d}/term; exit 0' TERM; echo $$ > {d}/pid; for i in $(seq 6000); do sleep 0.01; done"
    );
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut holder = with_endpoints(&etcd, &endpoints)
        .args(["elect", &office, "--ttl", "4s", "--kill-after", "1s", "--", "sh", "-c", &script])
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !pids_in(&dir.path().join("pid")).is_empty()));
    let child = pids_in(&dir.path().join("pid"))[0];
    let key = etcd.keys(&format!("/conch/v1/elect/{office}/"))[0].clone();
    let rev = etcd.create_revision(&key);

    // The member the holder talks to goes silent for three TTLs.
    proxy.cut();
    std::thread::sleep(Duration::from_secs(12));
    assert!(alive(child), "the holder was killed although another member served:\n{}", read(&dir.path().join("log")));
    assert!(read(&dir.path().join("term")).is_empty(), "a spurious SIGTERM");
    assert_eq!(etcd.create_revision(&key), rev, "the hold changed hands");
    assert!(read(&dir.path().join("log")).contains("endpoint-switched"));

    // Its own-key watch moved too: deleting the key ends the hold well within a TTL.
    let deleted = Instant::now();
    etcd.etcdctl(&["del", &key]);
    assert!(
        wait_until(Duration::from_secs(3), || !read(&dir.path().join("term")).is_empty()),
        "no SIGTERM after the key was deleted:\n{}",
        read(&dir.path().join("log"))
    );
    assert!(deleted.elapsed() < Duration::from_secs(3));
    let status = wait_child(&mut holder, Duration::from_secs(10)).expect("the holder did not exit");
    assert_eq!(status.code(), Some(70), "a deleted key is a lost hold");
    proxy.heal();
    assert!(wait_until(Duration::from_secs(6), || etcd.leases().is_empty()), "a lease left behind");
    assert!(etcd.keys("/conch/").is_empty());
}
