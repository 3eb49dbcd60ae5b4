//! `--fence CMD --fence-budget D`: when the hold is lost, the fence runs once the child's
//! group is dead; a fence that succeeds lets the release follow (exit 70), one that fails
//! or overruns exits 71 and leaves the lease to expire on its own (no resign).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use conch_tests::*;

/// Holds `office` with a fence, deletes the holder key once the child runs, and returns
/// the wrapper's exit code and the lease it held.
fn lose_with_fence(etcd: &Etcd, office: &str, dir: &Path, fence: &str, budget: &str) -> (Option<i32>, String) {
    let d = dir.display();
    let mut wrapper = Reaped(
        conch(etcd)
            .args(["--ttl", "10", "elect", office, "--fence", fence, "--fence-budget", budget, "--"])
            .args(["sh", "-c", &format!("echo $$ > {d}/pid; echo $CONCH_LEASE > {d}/lease; exec sleep 30")])
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.join("lease")).trim().is_empty()));
    let lease = read(&dir.join("lease")).trim().to_string();
    let prefix = format!("/conch/v1/elect/{office}/");
    let out = etcd.etcdctl(&["del", "--prefix", &prefix]);
    assert!(out.status.success(), "{out:?}");
    let status = wait_child(&mut wrapper.0, Duration::from_secs(20));
    (status.and_then(|s| s.code()), lease)
}

#[test]
fn a_lost_holds_fence_runs_after_the_child_is_dead_then_the_lease_is_revoked() {
    let etcd = Etcd::start();
    let office = unique("fence-ok");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // The fence records whether the child was still alive when it ran, and its env.
    let fence = format!(
        "if kill -0 $(cat {d}/pid) 2>/dev/null; then echo alive; else echo dead; fi > {d}/fenced; echo $CONCH_HOOK $CONCH_NAME >> {d}/fenced"
    );
    let (code, lease) = lose_with_fence(&etcd, &office, dir.path(), &fence, "3s");
    assert_eq!(code, Some(70), "a lost hold exits 70 once the fence succeeded");
    assert_eq!(read(&dir.path().join("fenced")), format!("dead\nfence {office}\n"));
    assert!(!etcd.lease_exists(&lease), "the release follows a fence that succeeded");
}

#[test]
fn a_failed_or_overrun_fence_exits_71_and_leaves_the_lease_to_expire() {
    let etcd = Etcd::start();
    for (fence, budget) in [("exit 1", "2s"), ("sleep 30", "500ms")] {
        let office = unique("fence-bad");
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let (code, lease) = lose_with_fence(&etcd, &office, dir.path(), fence, budget);
        assert_eq!(code, Some(71), "{fence}");
        assert!(started.elapsed() < Duration::from_secs(15), "{fence}: an overrun fence is killed at its budget");
        assert!(etcd.lease_exists(&lease), "{fence}: a failed fence must not revoke the lease");
        etcd.revoke(&lease);
    }
}

#[test]
fn a_clean_exit_runs_no_fence_and_a_fence_that_cannot_fit_is_refused() {
    let etcd = Etcd::start();
    let office = unique("fence-clean");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("fenced");
    let out = conch(&etcd)
        .args(["elect", &office, "--fence", &format!("touch {}", marker.display()), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!marker.exists(), "a clean exit is not a loss");
    let revision = etcd.etcdctl(&["get", "x", "-w", "json"]);
    let refused = conch(&etcd)
        .args(["--ttl", "5", "elect", &office, "--kill-after", "2", "--fence", "true", "--fence-budget", "3s", "--"])
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(64));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--fence-budget 1s775ms or less") && message.contains("--ttl 7s or more"), "{message}");
    assert_eq!(etcd.etcdctl(&["get", "x", "-w", "json"]).stdout, revision.stdout, "nothing written");
}
