//! Bad input exits 64 with one line naming the problem; etcd down exits 69. Neither
//! writes anything to etcd.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use conch_tests::*;

#[test]
fn bad_names_flags_and_timings_exit_64_before_any_etcd_call() {
    let etcd = Etcd::start();
    let cases: &[(&[&str], &str)] = &[
        (&["elect", "a/b", "--", "true"], "[A-Za-z0-9._:@-]"),
        (&["elect", "", "--", "true"], "empty"),
        (&["elect", &"x".repeat(129), "--", "true"], "129 bytes"),
        (&["sema", "s", "--max", "0", "--", "true"], "--max 0"),
        (&["sema", "s", "--", "true"], "--max"),
        (&["elect", "x", "--kill-after", "10s", "--", "true"], "--kill-after 10s"),
        (&["elect", "x", "--wait", "1m30", "--", "true"], "missing unit"),
        (&["elect", "x", "--wait", "-1s", "--", "true"], "-1s"),
        (&["elect", "x", "--nonblock", "--wait", "1s", "--", "true"], "--nonblock"),
        (&["elect", "x", "--who", "--", "true"], "--who takes no command"),
        (&["elect", "x"], "missing command"),
        (&["--ttl", "1500ms", "elect", "x", "--", "true"], "whole number of seconds"),
        (&["--endpoints", "not-a-url", "elect", "x", "--", "true"], "--endpoints"),
        (&["elect", "x", "--bogus", "--", "true"], "--bogus"),
        (&["elect", "x", "--watch", "--", "true"], "--watch takes no command"),
        (&["elect", "x", "--who", "--watch"], "different modes"),
        (&["elect", "x", "--json", "--", "true"], "--json goes with"),
        (&["elect", "x", "--min-rev", "3"], "--assert"),
        (&["elect", "x", "--assert", "--restart"], "--restart"),
        (&["elect", "x", "--hook-timeout", "0s", "--", "true"], "--hook-timeout"),
        (&["--endpoints", "https://127.0.0.1:2379", "elect", "x", "--who"], "--cacert"),
        (&["--cacert", "/nonexistent", "elect", "x", "--who"], "https://"),
        (&["--endpoints", "https://127.0.0.1:2379", "--cacert", "/nonexistent", "elect", "x", "--who"], "/nonexistent"),
        (&["--user", "nopassword", "elect", "x", "--who"], "name:password"),
        (&["sema", "s", "--max", "1001", "--", "true"], "--max 1001"),
    ];
    for (args, needle) in cases {
        let out = conch(&etcd).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: not one line: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr:?} should mention {needle:?}");
    }
    assert!(etcd.keys("/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn etcd_down_at_start_exits_69_and_writes_nothing() {
    let mut etcd = Etcd::start();
    etcd.stop();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let t0 = std::time::Instant::now();
    let out = conch(&etcd)
        .env("CONCH_DIAL_TIMEOUT", "1s")
        .args(["elect", "down", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert!(!marker.exists(), "the child ran without etcd");
    let who = conch(&etcd).env("CONCH_DIAL_TIMEOUT", "1s").args(["elect", "down", "--who"]).output().unwrap();
    assert_eq!(who.status.code(), Some(69));
    etcd.restart();
    assert!(etcd.keys("/").is_empty());
    assert!(etcd.leases().is_empty());
}
