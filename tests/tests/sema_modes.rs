//! `sema` modes: `--nonblock` on a free slot, `--spread`, disagreeing `--max`, a waiter
//! re-entering after losing its key, foreign keys in `--who`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;

#[test]
fn nonblock_runs_at_once_when_a_slot_is_free() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let out = conch(&etcd)
        .args(["sema", &unique("free"), "--max", "2", "--nonblock", "--", "touch"])
        .arg(dir.path().join("ran"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("ran").exists());
}

#[test]
fn spread_gives_each_host_at_most_one_slot() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let name = unique("spread");
    let holder = |host: &str| {
        conch(&etcd)
            .env("CONCH_HOSTNAME", host)
            .args(["sema", &name, "--max", "3", "--spread", "--", "sh", "-c"])
            .arg(format!("echo {host} >> {d}/running; for i in $(seq 3000); do [ -e {d}/stop-{host} ] && exit 0; sleep 0.01; done"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut a = holder("host-a");
    assert!(wait_until(Duration::from_secs(10), || read(&dir.path().join("running")).contains("host-a")));
    assert_eq!(etcd.keys(&format!("/conch/v1/sema/{name}/3/")), vec![format!("/conch/v1/sema/{name}/3/host-a")]);
    // A second contender on host-a acts as if no slot were free.
    let nb = conch(&etcd)
        .env("CONCH_HOSTNAME", "host-a")
        .args(["sema", &name, "--max", "3", "--spread", "--nonblock", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(nb.status.code(), Some(75));
    // Another host gets a slot at once.
    let other = conch(&etcd)
        .env("CONCH_HOSTNAME", "host-b")
        .args(["sema", &name, "--max", "3", "--spread", "--nonblock", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(0));
    // A waiting second contender on host-a runs once the first one's key is gone.
    let mut second = conch(&etcd)
        .env("CONCH_HOSTNAME", "host-a")
        .args(["sema", &name, "--max", "3", "--spread", "--", "sh", "-c"])
        .arg(format!("echo second >> {d}/running"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!read(&dir.path().join("running")).contains("second"), "two slots for one host");
    std::fs::write(dir.path().join("stop-host-a"), "").unwrap();
    assert_eq!(wait_child(&mut a, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert_eq!(wait_child(&mut second, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(read(&dir.path().join("running")).contains("second"));
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn a_different_max_is_a_separate_semaphore_and_who_warns() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let name = unique("cap");
    let spawn = |max: &str, id: &str| {
        conch(&etcd)
            .args(["sema", &name, "--max", max, "--", "sh", "-c"])
            .arg(format!("touch {d}/{id}; for i in $(seq 3000); do [ -e {d}/stop ] && exit 0; sleep 0.01; done"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut one = spawn("1", "one");
    let mut two = spawn("2", "two");
    // Both run: they disagree on --max, so they are different semaphores (loudly).
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("one").exists() && dir.path().join("two").exists()));
    assert_eq!(etcd.keys(&format!("/conch/v1/sema/{name}/1/")).len(), 1);
    assert_eq!(etcd.keys(&format!("/conch/v1/sema/{name}/2/")).len(), 1);
    let who = conch(&etcd).args(["sema", &name, "--max", "1", "--who"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&who.stderr);
    assert!(stderr.contains("warning") && stderr.contains("--max 2"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&who.stdout).lines().count(), 1);
    std::fs::write(dir.path().join("stop"), "").unwrap();
    for c in [&mut one, &mut two] {
        assert_eq!(wait_child(c, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    }
}

#[test]
fn a_waiter_that_loses_its_key_reenters_at_the_back_while_wait_allows() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let name = unique("reenter");
    let prefix = format!("/conch/v1/sema/{name}/1/");
    let mut holder = conch(&etcd)
        .args(["sema", &name, "--max", "1", "--", "sh", "-c"])
        .arg(format!("touch {d}/holding; for i in $(seq 3000); do [ -e {d}/stop ] && exit 0; sleep 0.01; done"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("holding").exists()));
    let mut waiter = conch(&etcd)
        .args(["sema", &name, "--max", "1", "--wait", "60s", "--", "touch"])
        .arg(dir.path().join("waiter-ran"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    let first_key = etcd.keys(&prefix)[1].clone();
    etcd.etcdctl(&["del", &first_key]);
    // It comes back with a new lease and key (after a 1-3 s backoff).
    assert!(
        wait_until(Duration::from_secs(10), || {
            let keys = etcd.keys(&prefix);
            keys.len() == 2 && !keys.contains(&first_key)
        }),
        "the waiter did not re-enter"
    );
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert_eq!(wait_child(&mut holder, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert_eq!(wait_child(&mut waiter, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(dir.path().join("waiter-ran").exists());
    assert!(wait_until(Duration::from_secs(5), || etcd.leases().is_empty()), "leases left: {:?}", etcd.leases());
}

#[test]
fn who_shows_a_foreign_etcdctl_lock_holder() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("foreign");
    let d = dir.path().display();
    let script = format!("echo $$ > {d}/pid; touch {d}/locked; exec sleep 30");
    let mut rival = etcd.etcdctl_spawn(
        &["lock", &format!("/conch/v1/sema/{name}/1"), "--", "sh", "-c", &script],
        &dir.path().join("out"),
    );
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("locked").exists()));
    let who = conch(&etcd).args(["sema", &name, "--max", "1", "--who"]).output().unwrap();
    assert_eq!(who.status.code(), Some(0));
    let text = String::from_utf8_lossy(&who.stdout);
    assert!(text.starts_with(&format!("{name}[1/1] HELD ? pid=? since=? rev=")), "{text}");
    let json = conch(&etcd).args(["sema", &name, "--max", "1", "--who", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["holders"][0]["foreign"], true);
    kill_pids_in(&dir.path().join("pid"));
    let _ = wait_child(&mut rival, Duration::from_secs(10));
    kill_child(&mut rival);
}
