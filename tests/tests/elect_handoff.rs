//! `conch elect`: the winner's environment, a clean handoff, `--who`, and `etcdctl elect`
//! as a rival candidate.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

/// A child that records its environment and then holds until `<dir>/<id>.release` appears.
fn holder(dir: &std::path::Path, id: &str) -> String {
    let d = dir.display();
    format!(
        "echo \"$CONCH_NAME $CONCH_REV $CONCH_LEASE $CONCH_LEADER\" > {d}/{id}.env; date +%s%N > {d}/{id}.start; \
         for i in $(seq 3000); do [ -e {d}/{id}.release ] && break; sleep 0.01; done; date +%s%N > {d}/{id}.end"
    )
}

#[test]
fn winner_child_sees_its_fencing_token_and_lease() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("rev");
    let mut wrapper = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &holder(dir.path(), "a")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("a.env").exists()
        && !read(&dir.path().join("a.env")).is_empty()));
    let env = read(&dir.path().join("a.env"));
    let fields: Vec<&str> = env.split_whitespace().collect();
    let keys = etcd.keys(&format!("/conch/v1/elect/{office}/"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    let lease = keys[0].rsplit('/').next().unwrap();
    let rev = etcd.create_revision(&keys[0]).unwrap();
    assert_eq!(fields, vec![office.as_str(), &rev.to_string(), lease, "1"]);
    std::fs::write(dir.path().join("a.release"), "").unwrap();
    assert_eq!(wait_child(&mut wrapper, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty(), "lease left behind: {:?}", etcd.leases());
}

#[test]
fn clean_exit_hands_over_in_well_under_a_ttl() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("handoff");
    let prefix = format!("/conch/v1/elect/{office}/");
    let mut a = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &holder(dir.path(), "a")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("a.start").exists()));
    let mut b = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &holder(dir.path(), "b")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!dir.path().join("b.start").exists(), "b ran while a held");
    std::fs::write(dir.path().join("a.release"), "").unwrap();
    assert!(wait_until(Duration::from_secs(5), || !read(&dir.path().join("b.start")).is_empty()));
    let a_end: u128 = read(&dir.path().join("a.end")).trim().parse().unwrap();
    let b_start: u128 = read(&dir.path().join("b.start")).trim().parse().unwrap();
    let handoff = Duration::from_nanos((b_start - a_end) as u64);
    assert!(handoff < Duration::from_secs(1), "handoff took {handoff:?}");
    std::fs::write(dir.path().join("b.release"), "").unwrap();
    assert_eq!(wait_child(&mut a, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert_eq!(wait_child(&mut b, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    let rev = |id: &str| {
        read(&dir.path().join(format!("{id}.env"))).split_whitespace().nth(1).unwrap().parse::<i64>().unwrap()
    };
    assert!(rev("b") > rev("a"), "fencing tokens must increase");
}

#[test]
fn who_on_a_vacant_office_exits_1_and_writes_nothing() {
    let etcd = Etcd::start();
    let office = unique("vacant");
    let out = conch(&etcd).args(["elect", &office, "--who"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let json = conch(&etcd).args(["elect", &office, "--who", "--json"]).output().unwrap();
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["vacant"], true);
    assert!(etcd.leases().is_empty());
    assert!(etcd.keys("/").is_empty());
}

#[test]
fn etcdctl_elect_is_a_rival_candidate_both_ways() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("rival");
    let prefix = format!("/conch/v1/elect/{office}");
    // etcdctl leads first: conch must wait.
    let mut rival = etcd.etcdctl_spawn(&["elect", &prefix, "etcdctl-value"], &dir.path().join("rival.out"));
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("rival.out")).is_empty()));
    let mut ours = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &holder(dir.path(), "a")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!dir.path().join("a.start").exists(), "conch ran while etcdctl elect led");
    // --who shows the foreign leader rather than skipping it.
    let who = conch(&etcd).args(["elect", &office, "--who"]).output().unwrap();
    assert_eq!(who.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&who.stdout).contains("pid=?"), "{}", String::from_utf8_lossy(&who.stdout));
    signal(&rival, Signal::SIGINT);
    let _ = wait_child(&mut rival, Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("a.start").exists()), "conch did not take over");
    // conch leads: a new etcdctl candidate must not be elected until conch resigns.
    let mut rival2 = etcd.etcdctl_spawn(&["elect", &prefix, "etcdctl-value"], &dir.path().join("rival2.out"));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(read(&dir.path().join("rival2.out")).is_empty(), "etcdctl elect won while conch led");
    std::fs::write(dir.path().join("a.release"), "").unwrap();
    assert_eq!(wait_child(&mut ours, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(
        wait_until(Duration::from_secs(5), || !read(&dir.path().join("rival2.out")).is_empty()),
        "etcdctl elect did not take over"
    );
    signal(&rival2, Signal::SIGINT);
    let _ = wait_child(&mut rival2, Duration::from_secs(10));
    kill_child(&mut rival2);
}
