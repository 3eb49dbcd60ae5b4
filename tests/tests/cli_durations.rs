//! Durations as operators type them: a bare number is seconds everywhere (`--ttl 5`,
//! `--wait 10`, `--kill-after 2`), decimals work (`--wait 0.5`, `1.5s`), `--ttl 5s` alone
//! works (the default kill-after shrinks to fit), and an impossible pair is refused with
//! both numbers and pairs that work.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::{Duration, Instant};

use conch_tests::*;

#[test]
fn bare_numbers_are_seconds_and_a_short_ttl_alone_works() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // A bare number for --ttl, --wait and --kill-after, as timeout(1), flock -w, etcdctl.
    let out = conch(&etcd)
        .args(["--ttl", "5", "elect", "dur", "--wait", "10", "--kill-after", "2", "--", "sh", "-c"])
        .arg(format!("echo $CONCH_LEASE > {}", marker.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!read(&marker).trim().is_empty());
    // --ttl 5s alone: the default kill-after (5s) shrinks to what a 5s lease leaves.
    let out = conch(&etcd).args(["--ttl", "5s", "sema", "dur", "--max", "1", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(etcd.keys("/conch/").is_empty());
}

#[test]
fn decimal_waits_wait_that_long() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = conch(&etcd)
        .args(["elect", "busy", "--", "sh", "-c"])
        .arg(format!("touch {}/up; sleep 30", dir.path().display()))
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("up").exists()));
    for (wait, least) in [("0.5", 500u64), ("1.5s", 1_500)] {
        let t0 = Instant::now();
        let out = conch(&etcd).args(["elect", "busy", "--wait", wait, "--", "true"]).output().unwrap();
        let took = t0.elapsed();
        assert_eq!(out.status.code(), Some(75), "--wait {wait}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(took >= Duration::from_millis(least), "--wait {wait} gave up after {took:?}");
        assert!(took < Duration::from_millis(least + 3_000), "--wait {wait} took {took:?}");
    }
    kill_child(&mut holder);
}

#[test]
fn an_impossible_pair_names_both_numbers_and_pairs_that_work() {
    let etcd = Etcd::start();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--ttl", "5", "elect", "x", "--kill-after", "5", "--", "true"],
            &[
                "--kill-after 5s",
                "--ttl 5s",
                "use --ttl 7s with --kill-after 5s",
                "or --kill-after 3s775ms with --ttl 5s",
            ],
        ),
        (&["--ttl", "1", "elect", "x", "--", "true"], &["--ttl 1s is too short", "--ttl 2s or more"]),
        (&["elect", "x", "--wait", "1m30", "--", "true"], &["missing unit", "bare number is seconds"]),
        (&["elect", "x", "--wait", "0.0001s", "--", "true"], &["finer than a millisecond"]),
    ];
    for (args, needles) in cases {
        let out = conch(&etcd).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        for needle in *needles {
            assert!(stderr.contains(needle), "{args:?}: {stderr:?} should say {needle:?}");
        }
    }
    assert!(etcd.keys("/").is_empty());
    assert!(etcd.leases().is_empty());
}
