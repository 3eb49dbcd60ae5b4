//! `conch sema`: capacity, FIFO promotion with strictly increasing fencing tokens,
//! `--nonblock`, and `etcdctl lock` as a rival contender both ways.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

/// Records a start marker with the fencing token, then holds until `<id>.release` appears.
fn holder(dir: &Path, id: &str) -> String {
    let d = dir.display();
    format!("echo $CONCH_REV > {d}/{id}.start; echo $$ >> {d}/running; for i in $(seq 3000); do [ -e {d}/{id}.release ] && exit 0; sleep 0.01; done; exit 9")
}

fn contender(etcd: &Etcd, name: &str, max: &str, dir: &Path, id: &str, extra: &[&str]) -> Child {
    conch(etcd)
        .args(["sema", name, "--max", max])
        .args(extra)
        .args(["--", "sh", "-c", &holder(dir, id)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn started(dir: &Path, id: &str) -> bool {
    !read(&dir.join(format!("{id}.start"))).is_empty()
}

fn release(dir: &Path, id: &str) {
    std::fs::write(dir.join(format!("{id}.release")), "").unwrap();
}

#[test]
fn n_plus_one_contenders_run_exactly_n_children() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cap");
    let ids = ["a", "b", "c", "d"];
    let mut wrappers: Vec<Child> = ids.iter().map(|id| contender(&etcd, &name, "3", dir.path(), id, &[])).collect();
    assert!(wait_until(Duration::from_secs(10), || pids_in(&dir.path().join("running")).len() == 3));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pids_in(&dir.path().join("running")).len(), 3, "more than N children ran");
    let who = conch(&etcd).args(["sema", &name, "--max", "3", "--who"]).output().unwrap();
    let text = String::from_utf8_lossy(&who.stdout);
    assert_eq!(who.status.code(), Some(0));
    assert_eq!(text.matches(" HELD ").count(), 3, "{text}");
    assert_eq!(text.matches(" WAIT ").count(), 1, "{text}");
    assert!(text.starts_with(&format!("{name}[3/3] HELD ")), "{text}");
    for id in ids {
        release(dir.path(), id);
    }
    for w in &mut wrappers {
        assert_eq!(wait_child(w, Duration::from_secs(15)).and_then(|s| s.code()), Some(0));
    }
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn a_release_promotes_exactly_the_next_waiter_by_revision() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("fifo");
    let prefix = format!("/conch/v1/sema/{name}/2/");
    let ids = ["a", "b", "c", "d", "e"];
    let mut wrappers = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        wrappers.push(contender(&etcd, &name, "2", dir.path(), id, &[]));
        // Queue strictly in this order.
        assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == n + 1));
    }
    assert!(wait_until(Duration::from_secs(5), || started(dir.path(), "a") && started(dir.path(), "b")));
    // Release the *second* holder first: the first waiter (c) must be promoted, only it.
    for (gone, next, not_yet) in [("b", "c", &["d", "e"][..]), ("a", "d", &["e"][..]), ("d", "e", &[][..])] {
        release(dir.path(), gone);
        assert!(
            wait_until(Duration::from_secs(5), || started(dir.path(), next)),
            "{next} not promoted after {gone} left"
        );
        std::thread::sleep(Duration::from_millis(300));
        for id in not_yet {
            assert!(!started(dir.path(), id), "{id} started out of order");
        }
    }
    for id in ids {
        release(dir.path(), id);
    }
    for w in &mut wrappers {
        assert_eq!(wait_child(w, Duration::from_secs(15)).and_then(|s| s.code()), Some(0));
    }
    let revs: Vec<i64> =
        ids.iter().map(|id| read(&dir.path().join(format!("{id}.start"))).trim().parse().unwrap()).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "fencing tokens not increasing: {revs:?}");
    assert!(etcd.leases().is_empty());
}

#[test]
fn nonblock_exits_75_fast_and_leaves_no_key() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("nb");
    let mut holder = contender(&etcd, &name, "1", dir.path(), "a", &[]);
    assert!(wait_until(Duration::from_secs(10), || started(dir.path(), "a")));
    let t0 = std::time::Instant::now();
    let out = conch(&etcd)
        .args(["sema", &name, "--max", "1", "--nonblock", "--", "touch"])
        .arg(dir.path().join("ran"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(t0.elapsed() < Duration::from_secs(2), "nonblock took {:?}", t0.elapsed());
    assert!(!dir.path().join("ran").exists());
    assert_eq!(etcd.keys("/conch/").len(), 1);
    assert_eq!(etcd.leases().len(), 1, "the failed contender's lease must be revoked");
    // --wait expiry: same outcome after the wait.
    let t0 = std::time::Instant::now();
    let out = conch(&etcd).args(["sema", &name, "--max", "1", "--wait", "700ms", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(t0.elapsed() >= Duration::from_millis(700));
    assert_eq!(etcd.keys("/conch/").len(), 1);
    release(dir.path(), "a");
    assert_eq!(wait_child(&mut holder, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(etcd.leases().is_empty());
}

#[test]
fn etcdctl_lock_is_a_rival_contender_both_ways() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let name = unique("lock");
    let lock = format!("/conch/v1/sema/{name}/1");
    // etcdctl holds: conch waits.
    let script = format!(
        "touch {d}/etcdctl.start; for i in $(seq 3000); do [ -e {d}/etcdctl.release ] && exit 0; sleep 0.01; done"
    );
    let mut rival = etcd.etcdctl_spawn(&["lock", &lock, "--", "sh", "-c", &script], &dir.path().join("rival.out"));
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("etcdctl.start").exists()));
    let mut ours = contender(&etcd, &name, "1", dir.path(), "a", &[]);
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&lock).len() == 2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!started(dir.path(), "a"), "conch ran while etcdctl lock held");
    std::fs::write(dir.path().join("etcdctl.release"), "").unwrap();
    assert!(wait_child(&mut rival, Duration::from_secs(10)).is_some());
    assert!(wait_until(Duration::from_secs(5), || started(dir.path(), "a")), "conch did not take the lock");
    // conch holds: etcdctl waits.
    let script2 = format!("touch {d}/etcdctl2.start");
    let mut rival2 = etcd.etcdctl_spawn(&["lock", &lock, "--", "sh", "-c", &script2], &dir.path().join("rival2.out"));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&lock).len() == 2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!dir.path().join("etcdctl2.start").exists(), "etcdctl lock ran while conch held");
    release(dir.path(), "a");
    assert_eq!(wait_child(&mut ours, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(
        wait_until(Duration::from_secs(5), || dir.path().join("etcdctl2.start").exists()),
        "etcdctl did not take the lock"
    );
    if wait_child(&mut rival2, Duration::from_secs(10)).is_none() {
        signal(&rival2, Signal::SIGKILL);
        kill_child(&mut rival2);
    }
}
