//! Exit 69 means etcd unreachable, nothing else: no such job is exit 1 everywhere (as
//! `cron rm` says it), and a refusal of the credentials is exit 77 (EX_NOPERM) with one
//! line that says what to do.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use conch_tests::*;

fn run(etcd: &Etcd, args: &[&str]) -> (Option<i32>, String) {
    let out = conch(etcd).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn no_such_job_is_exit_1_for_every_cron_subcommand() {
    let etcd = Etcd::start();
    for args in [&["cron", "results", "nosuch"][..], &["cron", "next", "nosuchjob"], &["cron", "rm", "nosuch"]] {
        let (code, stderr) = run(&etcd, args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim(), format!("conch: no job named {}", args[2]), "{args:?}");
    }
    // With etcd gone the same commands are "unreachable", 69.
    let mut etcd = etcd;
    etcd.stop();
    let (code, stderr) = run(&etcd, &["cron", "results", "nosuch"]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("etcd unreachable"), "{stderr}");
}

#[test]
fn refused_credentials_exit_77_with_one_line_and_nothing_written() {
    let mut etcd = Etcd::start();
    etcd.enable_auth("s3cret");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let marker = marker.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--user", "root:wrong", "elect", "a", "--", "touch", marker], "wrong name or password"),
        (&["--user", "nobody:x", "sema", "s", "--max", "2", "--", "touch", marker], "wrong name or password"),
        (&["--user", "root:wrong", "elect", "a", "--who"], "wrong name or password"),
        (&["--user", "root:wrong", "elect", "a", "--assert"], "wrong name or password"),
        (&["--user", "root:wrong", "cron", "ls"], "wrong name or password"),
        (&["elect", "a", "--who"], "give --user"),
        (&["cron", "results", "job"], "give --user"),
        (&["elect", "a", "--", "touch", marker], "give --user"),
    ];
    for (args, needle) in cases {
        let (code, stderr) = run(&etcd, args);
        assert_eq!(code, Some(77), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one line saying {needle:?}: {stderr}");
        assert!(!stderr.contains("unreachable"), "{args:?}: {stderr}");
    }
    assert!(!std::path::Path::new(marker).exists());
    let keys = etcd.etcdctl(&["get", "--prefix", "/conch/", "--keys-only"]);
    assert!(String::from_utf8_lossy(&keys.stdout).trim().is_empty());
    assert!(wait_until(std::time::Duration::from_secs(5), || etcd.leases().is_empty()), "{:?}", etcd.leases());
}

#[test]
fn user_given_while_etcd_has_no_authentication_exits_77() {
    let etcd = Etcd::start();
    for args in [&["--user", "root:x", "elect", "a", "--who"][..], &["--user", "root:x", "elect", "a", "--", "true"]] {
        let (code, stderr) = run(&etcd, args);
        assert_eq!(code, Some(77), "{args:?}: {stderr}");
        assert!(stderr.contains("no authentication enabled") && stderr.contains("drop --user"), "{args:?}: {stderr}");
    }
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}
