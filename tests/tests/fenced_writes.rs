//! `conch put`, `conch del`, `conch txn` against real etcd: a holder's child writes, a
//! deposed holder's write gets 70 and lands nowhere, txn's branches exit 0 and 1, and bad
//! input or a missing environment exits 64 with nothing written.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;

fn value(etcd: &Etcd, key: &str) -> Option<String> {
    let out = etcd.etcdctl(&["get", key, "--print-value-only"]);
    let text = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    (!text.is_empty()).then_some(text)
}

/// `conch <args>` with the given environment and stdin; (code, stdout, stderr).
fn run(etcd: &Etcd, env: &[(&str, &str)], args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut cmd = conch(etcd);
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_deposed_holders_put_exits_70_and_writes_nothing() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("fenced");
    let key = format!("app/{office}");
    let bin = conch_bin();
    let bin = bin.display();
    // a writes, then waits; deposed, its SIGTERM trap tries one more (late) write.
    let a_script = format!(
        "trap '{bin} put {key} a-late; echo $? > {d}/a.late; exit 0' TERM; \
         {bin} put {key} a; echo $? > {d}/a.put; echo \"$CONCH_KEY $CONCH_REV\" > {d}/a.env; \
         for i in $(seq 3000); do sleep 0.01; done"
    );
    let b_script = format!("{bin} put {key} b; echo $? > {d}/b.put");
    let mut a = Reaped(
        conch(&etcd)
            .args(["elect", &office, "--kill-after", "4s", "--", "sh", "-c", &a_script])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("a.env")).is_empty()));
    assert_eq!(read(&dir.path().join("a.put")).trim(), "0");
    assert_eq!(value(&etcd, &key).as_deref(), Some("a"));
    let env = read(&dir.path().join("a.env"));
    let (a_key, a_rev) = env.trim().split_once(' ').unwrap();
    assert_eq!(etcd.create_revision(a_key), Some(a_rev.parse().unwrap()), "CONCH_KEY/CONCH_REV name the hold");
    let mut b = Reaped(
        conch(&etcd).args(["elect", &office, "--", "sh", "-c", &b_script]).stderr(Stdio::null()).spawn().unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || etcd.keys(&format!("/conch/v1/elect/{office}/")).len() == 2));
    // An administrator deposes a: its key goes, b leads and writes, a's late write is fenced off.
    assert!(etcd.etcdctl(&["del", a_key]).status.success());
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("a.late")).is_empty()));
    assert_eq!(read(&dir.path().join("a.late")).trim(), "70", "a deposed holder's put must exit 70");
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("b.put")).is_empty()));
    assert_eq!(read(&dir.path().join("b.put")).trim(), "0");
    assert_eq!(value(&etcd, &key).as_deref(), Some("b"), "the deposed holder's write landed");
    assert_eq!(wait_child(&mut a.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(70));
    assert_eq!(wait_child(&mut b.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    // The same token from outside, once the key is gone: 70, one line, nothing written.
    let (code, _, err) = run(&etcd, &[("CONCH_KEY", a_key), ("CONCH_REV", a_rev)], &["put", &key, "x"], "");
    assert_eq!(code, 70, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the hold is gone") && err.contains("nothing written"), "{err}");
    assert_eq!(value(&etcd, &key).as_deref(), Some("b"));
    assert!(etcd.keys("/conch/").is_empty());
}

#[test]
fn txn_runs_a_branch_under_the_guard_and_sema_children_get_the_key_too() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let name = unique("fenced-sema");
    let mode = format!("app/{name}/mode");
    let bin = conch_bin();
    let bin = bin.display();
    // The child hands its guard to the test and holds until released.
    let script = format!(
        "echo \"$CONCH_KEY $CONCH_REV\" > {d}/env; for i in $(seq 3000); do [ -e {d}/release ] && break; sleep 0.01; done; \
         {bin} del --prefix app/{name}/; echo $? > {d}/del"
    );
    let mut holder = Reaped(
        conch(&etcd)
            .args(["sema", &name, "--max", "2", "--", "sh", "-c", &script])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || !read(&dir.path().join("env")).is_empty()));
    let env = read(&dir.path().join("env"));
    let (key, rev) = env.trim().split_once(' ').unwrap();
    assert!(key.starts_with(&format!("/conch/v1/sema/{name}/2/")), "{key}");
    let guard = [("CONCH_KEY", key), ("CONCH_REV", rev)];
    assert!(etcd.etcdctl(&["put", &mode, "blue"]).status.success());
    let flip = format!("value(\"{mode}\") = \"blue\"\n\nput {mode} green\nget {mode}\n\nget {mode}\n\n");
    let (code, out, err) = run(&etcd, &guard, &["txn"], &flip);
    assert_eq!((code, out.as_str()), (0, format!("SUCCESS\n\nOK\n\n{mode}\ngreen\n").as_str()), "{err}");
    // The compare no longer holds: the failure branch runs, exit 1.
    let (code, out, err) = run(&etcd, &guard, &["txn"], &flip);
    assert_eq!((code, out.as_str()), (1, format!("FAILURE\n\n{mode}\ngreen\n").as_str()), "{err}");
    // A stale token: nothing runs, exit 70.
    let stale = (rev.parse::<i64>().unwrap() - 1).to_string();
    let reset = format!("\nput {mode} red\n\nput {mode} red\n\n");
    let (code, out, err) = run(&etcd, &[("CONCH_KEY", key), ("CONCH_REV", &stale)], &["txn"], &reset);
    assert_eq!((code, out.as_str()), (70, ""), "{err}");
    assert_eq!(value(&etcd, &mode).as_deref(), Some("green"));
    // The child's own fenced delete, and a clean exit.
    std::fs::write(dir.path().join("release"), "").unwrap();
    assert_eq!(wait_child(&mut holder.0, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert_eq!(read(&dir.path().join("del")).trim(), "0");
    assert_eq!(value(&etcd, &mode), None);
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn outside_a_child_or_with_bad_input_exits_64_with_one_line_and_writes_nothing() {
    let etcd = Etcd::start();
    let guard = [("CONCH_KEY", "/conch/v1/elect/x/1"), ("CONCH_REV", "5")];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let table: &[(Env, &[&str], &str, &str)] = &[
        (&[], &["put", "app/k", "v"], "", "CONCH_KEY is not set"),
        (&[("CONCH_KEY", "/conch/v1/elect/x/1")], &["del", "app/k"], "", "CONCH_REV is not set"),
        (&[("CONCH_KEY", "/conch/v1/elect/x/1"), ("CONCH_REV", "x")], &["txn"], "", "CONCH_REV \"x\""),
        (&guard, &["put", "/conch/v1/elect/x/2", "v"], "", "conch's own keys"),
        (&guard, &["txn"], "bogus\n\n\n", "txn: line 1 (\"bogus\")"),
        (&guard, &["txn"], "\nput app/k\n\n", "txn: line 2"),
        (&guard, &["txn"], "\n\n\nput app/k v\n", "comes after the failure block"),
    ];
    for (env, args, stdin, want) in table {
        let (code, out, err) = run(&etcd, env, args, stdin);
        assert_eq!(code, 64, "{args:?} {stdin:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("conch: ") && err.contains(want), "{args:?}: {err}");
    }
    // etcd unreachable: 69.
    let closed = format!("127.0.0.1:{}", free_port());
    let mut cmd = conch(&etcd);
    let out =
        cmd.args(["--endpoints", &closed, "--dial-timeout", "1s", "put", "app/k", "v"]).envs(guard).output().unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(etcd.keys("").is_empty(), "something was written: {:?}", etcd.keys(""));
}
