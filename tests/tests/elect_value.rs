//! `elect --value`: the leader publishes a value in its holder record; `--who` prints it,
//! `--who --value-only` prints it alone, `--watch --value-only` streams `office value rev`,
//! the child gets `CONCH_VALUE`; bad values are refused before anything is written.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

fn who(etcd: &Etcd, args: &[&str]) -> (i32, String) {
    let out = conch(etcd).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A leader child that records `CONCH_VALUE` and what `--who --value-only` says from
/// inside (its environment must not turn the query into a run), then holds until
/// `<dir>/<id>.release` exists.
fn holder(dir: &std::path::Path, id: &str, office: &str) -> String {
    let d = dir.display();
    let conch = conch_bin();
    let conch = conch.display();
    format!(
        "{conch} elect {office} --who --value-only > {d}/{id}.who 2>&1; echo \"$CONCH_VALUE\" > {d}/{id}.value; \
         for i in $(seq 3000); do [ -e {d}/{id}.release ] && break; sleep 0.01; done"
    )
}

#[test]
fn the_leader_publishes_its_value_and_the_watch_follows_it() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let office = unique("value");
    let out = dir.path().join("watch");
    let mut watcher = Reaped(
        conch(&etcd)
            .args(["elect", &office, "--watch", "--value-only"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = |n: usize| wait_until(Duration::from_secs(10), || read(&out).lines().count() >= n);
    assert!(lines(1));
    let spawn = |id: &str, value: &str| {
        Reaped(
            conch(&etcd)
                .args(["elect", &office, "--value", value, "--", "sh", "-c", &holder(dir.path(), id, &office)])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut a = spawn("a", "127.0.0.5:5432");
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("a.value")).is_empty()));
    assert_eq!(read(&dir.path().join("a.value")).trim(), "127.0.0.5:5432", "CONCH_VALUE");
    assert_eq!(read(&dir.path().join("a.who")), "127.0.0.5:5432\n", "a query from inside the child");
    let mut b = spawn("b", "127.0.0.6:5432");
    let prefix = format!("/conch/v1/elect/{office}/");
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&prefix).len() == 2));
    // --who: the value at the end of the line, in the JSON, and alone.
    let (code, text) = who(&etcd, &["elect", &office, "--who"]);
    assert_eq!(code, 0);
    // The leader's line ends with its value; the waiter's WAIT line publishes none yet.
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].ends_with(" value=127.0.0.5:5432"), "{text}");
    assert!(rows.iter().skip(1).all(|l| l.contains(" WAIT ") && !l.contains("value=")), "{text}");
    let (_, json) = who(&etcd, &["elect", &office, "--who", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["value"], "127.0.0.5:5432");
    assert_eq!(who(&etcd, &["elect", &office, "--who", "--value-only"]), (0, "127.0.0.5:5432\n".to_string()));
    let a_rev = json["rev"].as_i64().unwrap();
    // The hand-over: the watch follows the leader's value.
    std::fs::write(dir.path().join("a.release"), "").unwrap();
    assert_eq!(wait_child(&mut a.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("b.value")).is_empty()));
    std::fs::write(dir.path().join("b.release"), "").unwrap();
    assert_eq!(wait_child(&mut b.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(lines(4), "{}", read(&out));
    signal(&watcher.0, Signal::SIGTERM);
    assert_eq!(wait_child(&mut watcher.0, Duration::from_secs(5)).and_then(|s| s.code()), Some(0));
    let text = read(&out);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 4, "{text}");
    assert_eq!(got[0], format!("{office} -"));
    assert_eq!(got[1], format!("{office} 127.0.0.5:5432 {a_rev}"));
    let b_rev: i64 = got[2].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(b_rev > a_rev, "{text}");
    assert_eq!(got[2], format!("{office} 127.0.0.6:5432 {b_rev}"));
    assert_eq!(got[3], format!("{office} -"));
    assert_eq!(who(&etcd, &["elect", &office, "--who", "--value-only"]), (1, String::new()));
    assert!(etcd.keys("/conch/").is_empty());
}

#[test]
fn an_old_record_without_a_value_still_reads_and_bad_values_are_refused() {
    let etcd = Etcd::start();
    let office = unique("value-old");
    // A record as conch wrote it before --value existed.
    let old = r#"{"host":"old-host","pid":7,"started":"2026-01-01T00:00:00Z","cmd":"sleep 1"}"#;
    let key = format!("/conch/v1/elect/{office}/1a");
    assert!(etcd.etcdctl(&["put", &key, old]).status.success());
    let (code, text) = who(&etcd, &["elect", &office, "--who"]);
    assert_eq!(code, 0);
    assert!(text.starts_with(&format!("{office} old-host pid=7 since=2026-01-01T00:00:00Z rev=")), "{text}");
    assert!(!text.contains("value="), "{text}");
    assert_eq!(who(&etcd, &["elect", &office, "--who", "--value-only"]), (1, String::new()));
    assert!(etcd.etcdctl(&["del", &key]).status.success());
    let long = "v".repeat(1025);
    let table: &[(&[&str], &str)] = &[
        (&["--value", &long, "--", "true"], "--value is 1025 bytes long"),
        (&["--value", "a b", "--", "true"], "--value contains ' '"),
        (&["--value", "", "--", "true"], "--value is empty"),
        (&["--value-only", "--", "true"], "--value-only goes with --who or --watch"),
        (&["--who", "--value", "x"], "--value is published by a run"),
        (&["--who", "--value-only", "--json"], "--value-only prints plain text"),
    ];
    for (args, want) in table {
        let out = conch(&etcd).args(["elect", &office]).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}
