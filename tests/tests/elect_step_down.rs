//! `elect --step-down`: the leader stops its child, resigns and (with --restart) campaigns
//! again at the back of the queue; the next waiter takes over at once; a vacant office
//! exits 1, a leader that does not listen exits 75; no request or lease is left behind.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

fn step_down(etcd: &Etcd, office: &str, extra: &[&str]) -> (i32, String, String) {
    let out = conch(etcd).args(["elect", office, "--step-down"]).args(extra).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn ns(path: &std::path::Path) -> u128 {
    read(path).trim().parse().unwrap()
}

#[test]
fn the_leader_hands_over_at_once_and_campaigns_again_at_the_back() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let office = unique("step-down");
    let prefix = format!("/conch/v1/elect/{office}/");
    let mut a = Reaped(
        conch(&etcd)
            .env("CONCH_HOSTNAME", "host-a")
            .args(["elect", &office, "--restart", "--", "sh", "-c", &term_child(d, "a")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || !read(&d.join("a.start")).is_empty()));
    let mut b = Reaped(
        conch(&etcd)
            .args(["elect", &office, "--", "sh", "-c", &term_child(d, "b")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    let a_rev: i64 = read(&d.join("a.revs")).trim().parse().unwrap();
    let (code, out, err) = step_down(&etcd, &office, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{office} host-a rev={a_rev} stepped down\n"));
    // a's child got SIGTERM; b's started within the clean-handoff time.
    assert!(wait_until(Duration::from_secs(10), || !read(&d.join("b.start")).is_empty()));
    let handoff = ns(&d.join("b.start")).saturating_sub(ns(&d.join("a.end")));
    assert!(handoff < 1_000_000_000, "handoff took {handoff} ns");
    // a campaigns again with a new key, behind b.
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    let revs: Vec<i64> = etcd.keys(&prefix).iter().map(|k| etcd.create_revision(k).unwrap()).collect();
    assert!(revs.iter().all(|r| *r > a_rev), "a's old key is gone and its new one is newer: {revs:?}");
    assert!(etcd.keys("/conch/v1/stepdown/").is_empty(), "the request was withdrawn");
    // b finishes; a leads again, with a higher token.
    std::fs::write(d.join("b.release"), "").unwrap();
    assert_eq!(wait_child(&mut b.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(wait_until(Duration::from_secs(10), || read(&d.join("a.revs")).lines().count() == 2));
    let second: i64 = read(&d.join("a.revs")).lines().nth(1).unwrap().parse().unwrap();
    assert!(second > a_rev);
    signal(&a.0, Signal::SIGTERM);
    assert_eq!(wait_child(&mut a.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(etcd.keys("/conch/").is_empty(), "{:?}", etcd.keys("/conch/"));
    assert!(etcd.leases().is_empty(), "{:?}", etcd.leases());
}

#[test]
fn without_restart_the_stepped_down_wrapper_exits_0_and_a_vacant_office_exits_1() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let office = unique("step-down-once");
    let (code, out, err) = step_down(&etcd, &office, &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("is vacant"), "{err}");
    assert!(etcd.keys("").is_empty() && etcd.leases().is_empty(), "a vacant office gets nothing written");
    let mut a = Reaped(
        conch(&etcd)
            .args(["elect", &office, "--kill-after", "2s", "--", "sh", "-c", &term_child(d, "a")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || !read(&d.join("a.start")).is_empty()));
    let (code, _, err) = step_down(&etcd, &office, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(wait_child(&mut a.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(!read(&d.join("a.end")).is_empty(), "the child got SIGTERM");
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn a_leader_that_does_not_listen_is_not_deposed_and_usage_errors_write_nothing() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("step-down-rival");
    // etcdctl elect leads the office: it knows nothing of step-down requests.
    let mut rival =
        Reaped(etcd.etcdctl_spawn(&["elect", &format!("/conch/v1/elect/{office}"), "rival"], &dir.path().join("out")));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&format!("/conch/v1/elect/{office}/")).len() == 1));
    let leases = etcd.leases();
    let (code, _, err) = step_down(&etcd, &office, &["--wait", "1s"]);
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("did not resign within 1s") && err.lines().count() == 1, "{err}");
    assert_eq!(etcd.keys(&format!("/conch/v1/elect/{office}/")).len(), 1, "the rival still leads");
    assert!(etcd.keys("/conch/v1/stepdown/").is_empty(), "the request was withdrawn");
    assert_eq!(etcd.leases(), leases, "the request's lease was revoked");
    for (args, want) in [
        (&["--step-down", "--", "true"][..], "--step-down takes no command"),
        (&["--step-down", "--nonblock"][..], "--step-down takes only --wait"),
        (&["--step-down", "--who"][..], "different modes"),
        (&["--step-down", "--wait", "0"][..], "--wait must be more than 0s"),
    ] {
        let out = conch(&etcd).args(["elect", &office]).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
    assert!(etcd.keys("/conch/v1/stepdown/").is_empty());
    kill_child(&mut rival.0);
}
