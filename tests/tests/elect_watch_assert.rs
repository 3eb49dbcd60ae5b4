//! `elect --watch` (every change, across an etcd restart) and `elect --assert` (0/1/69).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

#[test]
fn watch_shows_the_state_then_every_change_and_survives_an_etcd_restart() {
    let mut etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("watch");
    let office = unique("watch");
    let mut watcher = conch(&etcd)
        .args(["elect", &office, "--watch"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count = |n: usize| wait_until(Duration::from_secs(10), || read(&out).lines().count() >= n);
    assert!(count(1));
    assert_eq!(read(&out).lines().next(), Some(format!("{office} -").as_str()), "vacancy first");
    let run = |etcd: &Etcd, host: &str| {
        let status = conch(etcd)
            .env("CONCH_HOSTNAME", host)
            .args(["elect", &office, "--", "sleep", "0.4"])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0));
    };
    run(&etcd, "first-host");
    assert!(count(3), "{}", read(&out));
    etcd.restart();
    run(&etcd, "second-host");
    assert!(count(5), "{}", read(&out));
    signal(&watcher, Signal::SIGTERM);
    assert_eq!(wait_child(&mut watcher, Duration::from_secs(5)).and_then(|s| s.code()), Some(0));
    let text = read(&out);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 5, "{text}");
    assert!(got[1].starts_with(&format!("{office} first-host pid=")), "{text}");
    assert_eq!(got[2], format!("{office} -"));
    assert!(got[3].starts_with(&format!("{office} second-host pid=")), "{text}");
    assert_eq!(got[4], format!("{office} -"));
}

#[test]
fn watch_json_prints_one_object_per_change() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("watch");
    let office = unique("watch-json");
    let mut watcher = conch(&etcd)
        .args(["elect", &office, "--watch", "--json"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || read(&out).lines().count() >= 1));
    conch(&etcd).args(["elect", &office, "--", "true"]).stderr(Stdio::null()).status().unwrap();
    assert!(wait_until(Duration::from_secs(10), || read(&out).lines().count() >= 3));
    signal(&watcher, Signal::SIGINT);
    let _ = wait_child(&mut watcher, Duration::from_secs(5));
    let objects: Vec<serde_json::Value> = read(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects[0], serde_json::json!({"office": office, "vacant": true}));
    assert_eq!(objects[1]["office"], office.as_str());
    assert!(objects[1]["rev"].as_i64().is_some());
    assert_eq!(objects[2]["vacant"], true);
}

#[test]
fn assert_answers_0_1_and_69() {
    let mut etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("assert");
    let assert = |host: &str, extra: &[&str]| {
        let out =
            conch(&etcd).env("CONCH_HOSTNAME", host).args(["elect", &office, "--assert"]).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    assert_eq!(assert("node1", &[]).0, Some(1), "vacant");
    let mut holder = conch(&etcd)
        .env("CONCH_HOSTNAME", "node1")
        .args(["elect", &office, "--", "sh", "-c"])
        .arg(format!("echo $CONCH_REV > {}/rev; sleep 30", dir.path().display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("rev")).trim().is_empty()));
    let rev: i64 = read(&dir.path().join("rev")).trim().parse().unwrap();
    assert_eq!(assert("node1", &[]).0, Some(0));
    assert_eq!(assert("node2", &[]).0, Some(1));
    assert_eq!(assert("node1", &["--min-rev", &rev.to_string()]).0, Some(0));
    assert_eq!(assert("node1", &["--min-rev", &(rev + 1).to_string()]).0, Some(1));
    let (code, json) = assert("node1", &["--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!({"held": true, "rev": rev, "host": "node1"})
    );
    signal(&holder, Signal::SIGTERM);
    let _ = wait_child(&mut holder, Duration::from_secs(10));
    etcd.stop();
    let out = conch(&etcd)
        .env("CONCH_DIAL_TIMEOUT", "1s")
        .env("CONCH_HOSTNAME", "node1")
        .args(["elect", &office, "--assert"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
}

/// `--who` shows when the holder began holding, not when it began waiting; the fencing
/// token (the key's create revision) is the one it had while it waited.
#[test]
fn who_shows_since_when_the_holder_holds() {
    let etcd = Etcd::start();
    let office = unique("since");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut first = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &format!("echo x > {d}/first; sleep 2.5")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("first")).is_empty()));
    let mut second = conch(&etcd)
        .args(["elect", &office, "--", "sh", "-c", &format!("echo $CONCH_REV > {d}/second; sleep 5")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || etcd.keys(&format!("/conch/v1/elect/{office}/")).len() == 2));
    let waiting_rev = etcd.create_revision(&etcd.keys(&format!("/conch/v1/elect/{office}/"))[1]);
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("second")).is_empty()));
    let out = conch(&etcd).args(["elect", &office, "--who", "--json"]).output().unwrap();
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let holder = &who;
    let (started, since) = (holder["started"].as_str().unwrap(), holder["held_since"].as_str().unwrap());
    assert!(since > started, "held since {since}, waiting since {started}: {who}");
    assert_eq!(holder["rev"].as_i64(), waiting_rev, "the token changed on acquiring");
    assert_eq!(read(&dir.path().join("second")).trim().parse::<i64>().ok(), waiting_rev);
    let text = conch(&etcd).args(["elect", &office, "--who"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("since={since}")));
    for child in [&mut first, &mut second] {
        kill_child(child);
    }
}
