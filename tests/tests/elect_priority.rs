//! `conch elect --priority`: a higher-priority waiter leads before a lower one that came
//! first, a holder is never pre-empted, fencing tokens increase, markers leave with their
//! holders, `--who` shows priorities, bad values are usage errors.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Child, Stdio};
use std::time::Duration;

use conch_tests::*;

/// A child that records its token and priority and holds until `<dir>/<id>.release` appears.
fn holder(dir: &std::path::Path, id: &str) -> String {
    let d = dir.display();
    format!(
        "echo \"$CONCH_REV $CONCH_PRIORITY\" > {d}/{id}.env; date +%s%N > {d}/{id}.start; \
         for i in $(seq 3000); do [ -e {d}/{id}.release ] && break; sleep 0.01; done"
    )
}

fn elect(etcd: &Etcd, office: &str, dir: &std::path::Path, id: &str, priority: Option<&str>) -> Child {
    let mut cmd = conch(etcd);
    cmd.args(["elect", office]);
    if let Some(p) = priority {
        cmd.args(["--priority", p]);
    }
    cmd.args(["--", "sh", "-c", &holder(dir, id)]).stderr(Stdio::null()).spawn().unwrap()
}

fn started(dir: &std::path::Path, id: &str) -> bool {
    !read(&dir.join(format!("{id}.start"))).is_empty()
}

fn env(dir: &std::path::Path, id: &str) -> (i64, u32) {
    let text = read(&dir.join(format!("{id}.env")));
    let mut fields = text.split_whitespace();
    (fields.next().unwrap().parse().unwrap(), fields.next().unwrap().parse().unwrap())
}

#[test]
fn the_higher_priority_waiter_leads_next_and_tokens_increase() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let office = unique("prio");
    let prefix = format!("/conch/v1/elect/{office}/");
    let mut a = elect(&etcd, &office, d, "a", None);
    assert!(wait_until(Duration::from_secs(10), || started(d, "a")));
    // Low first, then high: both wait, the holder keeps running (no pre-emption).
    let mut low = elect(&etcd, &office, d, "low", Some("1"));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    let mut high = elect(&etcd, &office, d, "high", Some("10"));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 3));
    let markers = etcd.keys(&format!("/conch/v1/prio/elect/{office}/"));
    assert_eq!(markers.len(), 2, "{markers:?}");
    // 1000 - priority: the highest priority first in etcd's key order.
    assert!(markers[0].contains("/0990/") && markers[1].contains("/0999/"), "{markers:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!started(d, "low") && !started(d, "high"), "a waiter ran while the holder held");
    let who = conch(&etcd).args(["elect", &office, "--who"]).output().unwrap();
    let who = String::from_utf8_lossy(&who.stdout).to_string();
    let lines: Vec<&str> = who.lines().collect();
    assert_eq!(lines.len(), 3, "{who}");
    assert!(lines[1].contains("WAIT") && lines[1].ends_with("priority=1"), "{who}");
    assert!(lines[2].contains("WAIT") && lines[2].ends_with("priority=10"), "{who}");

    // The holder exits: the high-priority waiter's child starts first.
    std::fs::write(d.join("a.release"), "").unwrap();
    assert_eq!(wait_child(&mut a, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(wait_until(Duration::from_secs(10), || started(d, "high")), "the high-priority waiter never led");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!started(d, "low"), "the low-priority waiter ran beside the high one");
    std::fs::write(d.join("high.release"), "").unwrap();
    assert_eq!(wait_child(&mut high, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(wait_until(Duration::from_secs(10), || started(d, "low")), "the low-priority waiter never led");
    std::fs::write(d.join("low.release"), "").unwrap();
    assert_eq!(wait_child(&mut low, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));

    let (a_rev, a_prio) = env(d, "a");
    let (high_rev, high_prio) = env(d, "high");
    let (low_rev, low_prio) = env(d, "low");
    assert_eq!((a_prio, high_prio, low_prio), (0, 10, 1));
    assert!(a_rev < high_rev && high_rev < low_rev, "tokens {a_rev} {high_rev} {low_rev} must increase");
    assert!(etcd.keys("/conch/").is_empty(), "left behind: {:?}", etcd.keys("/conch/"));
    assert!(etcd.leases().is_empty(), "lease left behind: {:?}", etcd.leases());
}

#[test]
fn fifo_within_a_priority_and_the_low_waiter_last() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let office = unique("prio-fifo");
    let prefix = format!("/conch/v1/elect/{office}/");
    let mut a = elect(&etcd, &office, d, "a", None);
    assert!(wait_until(Duration::from_secs(10), || started(d, "a")));
    // Arrival order: low, h1, h2 (h1 and h2 of one priority).
    let mut waiters = Vec::new();
    for (n, (id, p)) in [("low", "0"), ("h1", "5"), ("h2", "5")].into_iter().enumerate() {
        waiters.push((id, elect(&etcd, &office, d, id, Some(p))));
        assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == n + 2));
    }
    std::fs::write(d.join("a.release"), "").unwrap();
    assert_eq!(wait_child(&mut a, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    // Each leads in turn: h1, h2, then low; one at a time.
    let mut order = Vec::new();
    for _ in 0..3 {
        assert!(wait_until(Duration::from_secs(10), || waiters
            .iter()
            .any(|(id, _)| started(d, id) && !order.contains(id))));
        std::thread::sleep(Duration::from_millis(200));
        let running: Vec<&str> =
            waiters.iter().map(|(id, _)| *id).filter(|id| started(d, id) && !order.contains(id)).collect();
        assert_eq!(running.len(), 1, "{running:?} run at once after {order:?}");
        order.push(running[0]);
        std::fs::write(d.join(format!("{}.release", running[0])), "").unwrap();
    }
    assert_eq!(order, vec!["h1", "h2", "low"]);
    for (_, child) in &mut waiters {
        assert_eq!(wait_child(child, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    }
    let revs: Vec<i64> = ["a", "h1", "h2", "low"].iter().map(|id| env(d, id).0).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "tokens {revs:?} must increase");
    assert!(etcd.keys("/conch/").is_empty(), "left behind: {:?}", etcd.keys("/conch/"));
    assert!(etcd.leases().is_empty(), "lease left behind: {:?}", etcd.leases());
}

#[test]
fn bad_priorities_are_usage_errors_and_write_nothing() {
    let etcd = Etcd::start();
    for (value, says) in
        [("1001", "out of range"), ("-1", "out of range"), ("high", "not a number"), ("", "not a number")]
    {
        let out = conch(&etcd).args(["elect", "x", "--priority", value, "--", "true"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(64), "{value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{value}: {err}");
        assert!(err.contains("--priority") && err.contains(says) && err.contains("0 to 1000"), "{value}: {err}");
    }
    let out = conch(&etcd).args(["elect", "x", "--who", "--priority", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = conch(&etcd).args(["sema", "x", "--max", "2", "--priority", "3", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "--priority is elect's only");
    assert!(etcd.keys("/").is_empty());
    assert!(etcd.leases().is_empty());
}
