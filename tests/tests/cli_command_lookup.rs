//! The command is resolved before campaigning: a command that is not found exits 127, one
//! that cannot be executed 126, each with one line, and etcd's revision does not move (no
//! lease, no key, nothing written).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;

use conch_tests::*;

fn revision(etcd: &Etcd) -> i64 {
    let out = etcd.etcdctl(&["endpoint", "status", "-w", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status[0]["Status"]["header"]["revision"].as_i64().unwrap()
}

#[test]
fn a_missing_or_unexecutable_command_never_campaigns() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plain = plain.to_str().unwrap();
    let dir_path = dir.path().to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["elect", "x", "--", "/nonexistent"], 127, "/nonexistent not found"),
        (&["elect", "x", "--restart", "--", "conch-no-such-command", "arg"], 127, "not found in PATH"),
        (&["sema", "s", "--max", "2", "--", "/nonexistent/dir/cmd"], 127, "not found"),
        (&["elect", "x", "--", plain], 126, "cannot be executed"),
        (&["sema", "s", "--max", "1", "--", dir_path], 126, "is a directory"),
    ];
    let before = revision(&etcd);
    for (args, code, needle) in cases {
        let out = conch(&etcd).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: not one line: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr:?} should say {needle:?}");
    }
    // PATH lookup as the shell does it: a directory on PATH holding it makes it found.
    let out = conch(&etcd)
        .env("PATH", format!("{dir_path}:/usr/bin:/bin"))
        .args(["elect", "x", "--", "plain.sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(revision(&etcd), before, "something was written to etcd");
    assert!(etcd.leases().is_empty());
    // A usage error still comes first (64), and a good command still runs.
    let out = conch(&etcd).args(["elect", "bad/name", "--", "/nonexistent"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = conch(&etcd).args(["elect", "x", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
