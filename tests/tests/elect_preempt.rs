//! `conch elect --priority P --preempt`: a higher candidate asks a running lower holder for
//! the graceful hand-over of `--step-down` (its child gets SIGTERM, it resigns, with
//! `--restart` it campaigns again at the back), then leads; an equal `--preempt` candidate
//! never pre-empts (a holder without `--priority` counts as 0); `--preempt` without
//! `--priority` is a usage error; nothing is left behind.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Child, Stdio};
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

fn elect(etcd: &Etcd, office: &str, dir: &std::path::Path, id: &str, flags: &[&str]) -> Reaped {
    let mut cmd = conch(etcd);
    cmd.env("CONCH_HOSTNAME", format!("host-{id}")).args(["elect", office]).args(flags);
    Reaped(cmd.args(["--", "sh", "-c", &term_child(dir, id)]).stderr(Stdio::null()).spawn().unwrap())
}

fn has(dir: &std::path::Path, file: &str) -> bool {
    !read(&dir.join(file)).is_empty()
}

fn revs(dir: &std::path::Path, id: &str) -> Vec<i64> {
    read(&dir.join(format!("{id}.revs"))).lines().map(|l| l.trim().parse().unwrap()).collect()
}

fn stop(child: &mut Child) {
    signal(child, Signal::SIGTERM);
    assert!(wait_child(child, Duration::from_secs(15)).is_some(), "a wrapper did not stop on SIGTERM");
}

#[test]
fn a_higher_preempting_candidate_takes_over_gracefully_and_an_equal_one_does_not() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let office = unique("preempt");
    let prefix = format!("/conch/v1/elect/{office}/");
    // The holder: no --priority (the default, 0; no marker), a service.
    let mut low = elect(&etcd, &office, d, "low", &["--restart", "--kill-after", "2s"]);
    assert!(wait_until(Duration::from_secs(10), || has(d, "low.start")));
    let low_rev = revs(d, "low")[0];
    // An equal candidate with --preempt (priority 0, as the holder's): it only waits.
    let mut equal = elect(&etcd, &office, d, "equal", &["--priority", "0", "--preempt"]);
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    let who = |etcd: &Etcd| {
        let out = conch(etcd).args(["elect", &office, "--who"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(wait_until(Duration::from_secs(10), || who(&etcd).contains(&format!("{office} WAIT host-equal"))));
    // Its rank reads have answered (it is listed as waiting); a request would be in etcd
    // within a round trip. Give it far more than that, then look.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(etcd.keys("/conch/v1/stepdown/").is_empty(), "an equal priority asked for a hand-over");
    assert!(!has(d, "low.end") && !has(d, "equal.start"), "an equal priority pre-empted the holder");

    // A higher candidate with --preempt: the holder hands over to it.
    let mut high = elect(&etcd, &office, d, "high", &["--priority", "5", "--preempt"]);
    assert!(wait_until(Duration::from_secs(20), || has(d, "high.start")), "the higher candidate never led");
    assert!(has(d, "low.end"), "the holder's child did not get SIGTERM before the hand-over");
    assert!(!has(d, "equal.start"), "the equal waiter led before the higher one");
    let high_rev = revs(d, "high")[0];
    assert!(high_rev > low_rev, "tokens must increase: {low_rev} then {high_rev}");
    let lines = who(&etcd);
    assert!(lines.lines().next().unwrap_or("").starts_with(&format!("{office} host-high ")), "{lines}");
    assert!(lines.lines().next().unwrap_or("").ends_with("priority=5"), "{lines}");
    // The stepped-down holder campaigns again, at the back: a new key, newer than high's;
    // the higher candidate withdrew its request once it held.
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 3), "{:?}", etcd.keys(&prefix));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/v1/stepdown/").is_empty()));
    let keys = etcd.keys(&prefix);
    let key_revs: Vec<i64> = keys.iter().map(|k| etcd.create_revision(k).unwrap()).collect();
    assert!(key_revs.iter().filter(|r| **r != high_rev).all(|r| *r > high_rev), "{keys:?} {key_revs:?}");
    assert_eq!(revs(d, "low"), vec![low_rev], "the stepped-down holder does not lead again yet");
    let lines = who(&etcd);
    assert!(lines.contains("WAIT host-low") && lines.contains("WAIT host-equal"), "{lines}");

    // The higher holder finishes: one of the others (equal priorities, FIFO) leads next,
    // with a higher token.
    std::fs::write(d.join("high.release"), "").unwrap();
    assert_eq!(wait_child(&mut high.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(wait_until(Duration::from_secs(10), || has(d, "equal.start") || revs(d, "low").len() == 2));
    let next = revs(d, "equal").into_iter().chain(revs(d, "low").into_iter().skip(1)).max().unwrap();
    assert!(next > high_rev, "tokens must increase: {high_rev} then {next}");
    stop(&mut equal.0);
    stop(&mut low.0);
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/").is_empty()), "{:?}", etcd.keys("/conch/"));
    assert!(wait_until(Duration::from_secs(10), || etcd.leases().is_empty()), "{:?}", etcd.leases());
}

#[test]
fn preempt_needs_a_priority_and_an_office_run_and_writes_nothing() {
    let etcd = Etcd::start();
    for (args, want) in [
        (&["elect", "x", "--preempt", "--", "true"][..], "--preempt needs --priority"),
        (&["elect", "x", "--step-down", "--priority", "3", "--preempt"][..], "--step-down takes only --wait"),
        (&["elect", "x", "--who", "--priority", "3", "--preempt"][..], "--priority belongs to a run"),
        (&["sema", "x", "--max", "2", "--preempt", "--", "true"][..], "--preempt"),
    ] {
        let out = conch(&etcd).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        if args[0] == "elect" {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
    assert!(etcd.keys("").is_empty(), "{:?}", etcd.keys(""));
    assert!(etcd.leases().is_empty());
}
