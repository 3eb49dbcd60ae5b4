//! etcd being briefly unavailable must not kill a healthy holder's child: the deadline
//! rule plus quick keepalive retries ride out an etcd stall of 3 s at the defaults.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;

/// Runs for about `secs` seconds, then exits 0.
fn worker(dir: &std::path::Path, secs: u32) -> String {
    format!("echo $$ > {}/pid; for i in $(seq {}); do sleep 0.1; done", dir.display(), secs * 10)
}

#[test]
fn an_etcd_stall_of_three_seconds_does_not_kill_the_child() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("stall");
    // The defaults: TTL 10 s, kill-after 5 s.
    let mut wrapper = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &worker(dir.path(), 7)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !pids_in(&dir.path().join("pid")).is_empty()));
    std::thread::sleep(Duration::from_millis(1500));
    etcd.freeze();
    std::thread::sleep(Duration::from_secs(3));
    etcd.thaw();
    assert_eq!(
        wait_child(&mut wrapper, Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0),
        "the child was killed"
    );
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn an_etcd_restart_does_not_kill_the_child() {
    let mut etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("restart");
    let mut wrapper = conch(&etcd)
        .args(["elect", &office, "--kill-after", "2s", "--", "sh", "-c", &worker(dir.path(), 8)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !pids_in(&dir.path().join("pid")).is_empty()));
    std::thread::sleep(Duration::from_millis(1000));
    etcd.restart();
    assert_eq!(
        wait_child(&mut wrapper, Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0),
        "the child was killed"
    );
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}
