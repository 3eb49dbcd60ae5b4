//! Wrapper faults: SIGKILL and SIGSTOP of the wrapper alone. The shim must have the
//! child's group dead before etcd can expire the lease — zero overlap. A SIGKILLed
//! wrapper's shim then revokes the lease (issue 16.1); so does a frozen one's, once the
//! session's `term_at` passed and the group is dead (07-performance B4).
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
fn wrapper_sigkilled_leaves_no_child_then_the_shim_revokes_the_lease() {
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
    let killed = std::time::Instant::now();
    let pids = pids_in(&dir.path().join("pids"));
    let all_dead = wait_until(Duration::from_secs(3), || pids.iter().all(|p| !alive(*p)));
    // Its group dead, the shim revokes: the key and the lease go long before the TTL.
    let freed = wait_until(Duration::from_secs(3), || etcd.keys("/conch/").is_empty() && !etcd.lease_exists(&lease));
    let took = killed.elapsed();
    kill_pids_in(&dir.path().join("pids"));
    assert!(all_dead, "the child group survived its wrapper");
    assert!(freed, "the lease was not revoked {took:?} after the wrapper's SIGKILL");
    assert!(etcd.leases().is_empty());
}

/// Issue 16.1: a holder's wrapper SIGKILLed; its child dies slowly (0.3 s in a SIGTERM
/// trap) and leaves an escapee (`setsid`); the waiter's child starts well before the
/// TTL, and only once every process of the old child is gone.
#[test]
fn wrapper_sigkilled_successor_starts_well_under_the_ttl_after_the_old_group_is_dead() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("wfail");
    let old = format!(
        "trap 'sleep 0.3; exit 0' TERM; echo $$ >> {d}/pids; setsid sh -c 'trap \"sleep 0.2; exit 0\" TERM; \
         echo $$ >> {d}/pids; while :; do sleep 0.05; done' & while :; do sleep 0.05; done"
    );
    // The successor writes which of the old processes it still sees, then "started".
    let new = format!(
        "for p in $(cat {d}/pids); do kill -0 $p 2>/dev/null && echo alive $p; done > {d}/seen; \
         echo started >> {d}/seen; echo $$ >> {d}/pids2; sleep 30"
    );
    let ttl = ["--ttl", "10s"];
    let mut holder = conch(&etcd)
        .args(ttl)
        .args(["elect", &office, "--kill-after", "2s", "--", "sh", "-c", &old])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || pids_in(&dir.path().join("pids")).len() == 2));
    let mut waiter =
        conch(&etcd).args(ttl).args(["elect", &office, "--", "sh", "-c", &new]).stderr(Stdio::null()).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&format!("/conch/v1/elect/{office}/")).len() == 2));
    kill_child(&mut holder);
    let killed = std::time::Instant::now();
    let started = wait_until(Duration::from_secs(15), || read(&dir.path().join("seen")).contains("started"));
    let took = killed.elapsed();
    let seen = read(&dir.path().join("seen"));
    kill_pids_in(&dir.path().join("pids"));
    signal(&waiter, Signal::SIGTERM);
    let waiter_exit = wait_child(&mut waiter, Duration::from_secs(10));
    kill_pids_in(&dir.path().join("pids2"));
    if waiter_exit.is_none() {
        kill_child(&mut waiter);
    }
    assert!(started, "no successor {took:?} after the SIGKILL");
    assert!(!seen.contains("alive"), "the successor started beside the old group: {seen}");
    // Well under the 10 s TTL even on a loaded machine; the slow SIGTERM trap is 0.3 s.
    assert!(took < Duration::from_secs(3), "the successor waited {took:?}: the lease was not revoked");
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/").is_empty() && etcd.leases().is_empty()));
}

#[test]
fn wrapper_sigstopped_child_dies_by_the_deadline_then_the_shim_revokes_the_lease() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("wstop");
    // Ignores SIGTERM: only the SIGKILL at kill_at ends it.
    let script = format!("trap '' TERM; echo $$ >> {d}/pids; for i in $(seq 6000); do sleep 0.01; done");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut wrapper = conch(&etcd)
        .args([
            "--ttl",
            "5s",
            "--log-format",
            "json",
            "elect",
            &office,
            "--kill-after",
            "1s",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || pids_in(&dir.path().join("pids")).len() == 1));
    let child = pids_in(&dir.path().join("pids"))[0];
    let lease = lease_of(&etcd, &office);
    signal(&wrapper, Signal::SIGSTOP);
    let stopped_at = std::time::Instant::now();
    let died = wait_until(Duration::from_secs(8), || !alive(child));
    let took = stopped_at.elapsed();
    // Past term_at with the group dead, the frozen wrapper's shim revokes. `lease-revoked`
    // is logged only for a lease that still existed (one that expired is logged as
    // `lease-gone-already`), and the shim revokes only once the group is dead: so the
    // child died before the lease was gone.
    let revoked = wait_until(Duration::from_secs(3), || !etcd.lease_exists(&lease));
    let log_text = || std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    let logged = wait_until(Duration::from_secs(3), || log_text().contains("lease-revoked"));
    signal(&wrapper, Signal::SIGCONT);
    kill_pids_in(&dir.path().join("pids"));
    assert!(died, "child still running {took:?} after its wrapper froze");
    assert!(revoked && logged, "the frozen wrapper's shim did not revoke a live lease: {}", log_text());
    assert_eq!(wait_child(&mut wrapper, Duration::from_secs(10)).and_then(|s| s.code()), Some(70));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/").is_empty() && etcd.leases().is_empty()));
}

/// The shims of wrappers that never held: `--wait` ran out (exit 75) or SIGKILL. A waiting
/// wrapper starts its shim ahead (`conch __shim <fd> ready`); neither end leaves it behind.
#[test]
fn a_waiters_prepared_shim_goes_with_it() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("wspare");
    let mut holder = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &term_child(dir.path(), "h")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("h.start").exists()));
    let waiter = |wait: &[&str]| {
        conch(&etcd).args(["elect", &office]).args(wait).args(["--", "true"]).stderr(Stdio::null()).spawn().unwrap()
    };
    let (mut timed, mut killed) = (waiter(&["--wait", "2s"]), waiter(&[]));
    let spares = |w: &std::process::Child| -> Vec<i32> {
        let children = read(std::path::Path::new(&format!("/proc/{0}/task/{0}/children", w.id())));
        children.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    };
    let ready = |pid: &i32| read(std::path::Path::new(&format!("/proc/{pid}/cmdline"))).contains("ready");
    let mut pids = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        pids = [spares(&timed), spares(&killed)].concat();
        pids.len() == 2 && pids.iter().all(ready)
    }));
    kill_child(&mut killed);
    let code = wait_child(&mut timed, Duration::from_secs(10)).and_then(|s| s.code());
    let gone = wait_until(Duration::from_secs(3), || pids.iter().all(|p| !alive(*p)));
    std::fs::write(dir.path().join("h.release"), "").unwrap();
    let held = wait_child(&mut holder, Duration::from_secs(10)).and_then(|s| s.code());
    kill_child(&mut holder);
    assert_eq!(code, Some(75), "the --wait 2s waiter");
    assert!(gone, "a waiter's prepared shim outlived it: {pids:?}");
    assert_eq!(held, Some(0));
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/").is_empty()));
}
