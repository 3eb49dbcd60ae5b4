//! Wrapper faults: SIGKILL and SIGSTOP of the wrapper alone. The shim must have the
//! child's group dead before etcd can expire the lease — zero overlap.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

fn lease_of(etcd: &Etcd, office: &str) -> String {
    let keys = etcd.keys(&format!("/conch/v1/elect/{office}/"));
    keys[0].rsplit('/').next().unwrap().to_string()
}

#[test]
fn wrapper_sigkilled_leaves_no_child_and_the_lease_outlives_the_group() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("wkill");
    let script =
        format!("echo $$ >> {d}/pids; sleep 1001 & echo $! >> {d}/pids; setsid sleep 1002 & echo $! >> {d}/pids; wait");
    let mut wrapper = conch(&etcd)
        .args(["--ttl", "5s", "elect", &office, "--kill-after", "1s", "--", "sh", "-c", &script])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || pids_in(&dir.path().join("pids")).len() == 3));
    let lease = lease_of(&etcd, &office);
    kill_child(&mut wrapper);
    let pids = pids_in(&dir.path().join("pids"));
    let all_dead = wait_until(Duration::from_secs(3), || pids.iter().all(|p| !alive(*p)));
    let lease_alive_then = etcd.lease_exists(&lease);
    kill_pids_in(&dir.path().join("pids"));
    assert!(all_dead, "the child group survived its wrapper");
    assert!(lease_alive_then, "the group died only after the lease expired");
    // Nothing left behind once the lease runs out.
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/").is_empty() && etcd.leases().is_empty()));
}

#[test]
fn wrapper_sigstopped_child_dies_by_the_deadline_before_the_lease_expires() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("wstop");
    // Ignores SIGTERM: only the SIGKILL at kill_at ends it.
    let script = format!("trap '' TERM; echo $$ >> {d}/pids; for i in $(seq 6000); do sleep 0.01; done");
    let mut wrapper = conch(&etcd)
        .args(["--ttl", "5s", "elect", &office, "--kill-after", "1s", "--", "sh", "-c", &script])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || pids_in(&dir.path().join("pids")).len() == 1));
    let child = pids_in(&dir.path().join("pids"))[0];
    let lease = lease_of(&etcd, &office);
    signal(&wrapper, Signal::SIGSTOP);
    let stopped_at = std::time::Instant::now();
    let died = wait_until(Duration::from_secs(8), || !alive(child));
    let lease_alive_then = etcd.lease_exists(&lease);
    let took = stopped_at.elapsed();
    signal(&wrapper, Signal::SIGCONT);
    kill_pids_in(&dir.path().join("pids"));
    assert!(died, "child still running {took:?} after its wrapper froze");
    assert!(lease_alive_then, "child died only after the lease expired ({took:?})");
    assert_eq!(wait_child(&mut wrapper, Duration::from_secs(10)).and_then(|s| s.code()), Some(70));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/").is_empty() && etcd.leases().is_empty()));
}
