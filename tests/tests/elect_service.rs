//! `elect --restart` (service mode) and the hooks: order, environment, failure, timeout.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

fn lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_string).collect()
}

#[test]
fn hooks_run_in_order_with_the_childs_environment() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = log.display();
    let office = unique("hooks");
    let conch_bin = conch_bin();
    let acquire = format!("echo \"acquire $CONCH_REV $CONCH_LEADER $CONCH_HOOK\" >> {l}");
    // on-lose runs before the resignation: the office is still ours then.
    let lose = format!(
        "echo \"lose $CONCH_REV $CONCH_HOOK\" >> {l}; {} elect {office} --who >/dev/null && echo still-held >> {l}",
        conch_bin.display()
    );
    let out = conch(&etcd)
        .args(["elect", &office, "--on-acquire", &acquire, "--on-lose", &lose, "--", "sh", "-c"])
        .arg(format!("echo \"child $CONCH_REV\" >> {l}; exit 4"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let got = lines(&log);
    assert_eq!(got.len(), 4, "{got:?}");
    let rev = got[1].split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        got,
        vec![
            format!("acquire {rev} 1 on-acquire"),
            format!("child {rev}"),
            format!("lose {rev} on-lose"),
            "still-held".to_string()
        ]
    );
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn a_failing_on_acquire_fails_the_campaign_with_70() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let office = unique("acq-fail");
    let out =
        conch(&etcd).args(["elect", &office, "--on-acquire", "exit 3", "--", "touch"]).arg(&marker).output().unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert!(!marker.exists(), "the child ran after a failed on-acquire");
    assert!(etcd.keys("/conch/").is_empty());
    assert!(etcd.leases().is_empty());
}

#[test]
fn a_hook_past_its_timeout_is_killed_whole() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let office = unique("hook-timeout");
    let hook = format!("sleep 1000 & echo $! >> {}; wait", pids.display());
    let t0 = std::time::Instant::now();
    let out = conch(&etcd)
        .args(["elect", &office, "--hook-timeout", "500ms", "--on-acquire", &hook, "--", "touch"])
        .arg(dir.path().join("ran"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert!(!dir.path().join("ran").exists());
    let survivors: Vec<i32> = pids_in(&pids).into_iter().filter(|p| alive(*p)).collect();
    kill_pids_in(&pids);
    assert!(survivors.is_empty(), "the hook's group survived: {survivors:?}");
    assert!(etcd.leases().is_empty());
}

#[test]
fn restart_reruns_after_clean_exits_and_after_a_loss_until_signalled() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let log = dir.path().join("log");
    let office = unique("restart");
    // Each run holds until the test writes stop-<its fencing token>.
    let script = format!("echo \"$CONCH_REV $$\" >> {d}/log; for i in $(seq 3000); do [ -e {d}/stop-$CONCH_REV ] && exit 0; sleep 0.01; done");
    let mut wrapper = conch(&etcd)
        .args(["elect", &office, "--restart", "--kill-after", "1s", "--", "sh", "-c", &script])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rev = |n: usize| lines(&log)[n].split_whitespace().next().unwrap().to_string();
    // A clean exit: it runs again after the backoff (1-3 s).
    assert!(wait_until(Duration::from_secs(10), || lines(&log).len() == 1));
    std::fs::write(dir.path().join(format!("stop-{}", rev(0))), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || lines(&log).len() == 2), "not re-run after a clean exit");
    // A loss: the second run's lease is revoked; it is killed, backs off, and runs again.
    let keys = etcd.keys(&format!("/conch/v1/elect/{office}/"));
    assert_eq!(keys.len(), 1, "the second run holds");
    etcd.revoke(keys[0].rsplit('/').next().unwrap());
    assert!(wait_until(Duration::from_secs(15), || lines(&log).len() == 3), "not re-run after a loss");
    let revs: Vec<i64> = (0..3).map(|n| rev(n).parse().unwrap()).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "fencing tokens must increase across runs: {revs:?}");
    signal(&wrapper, Signal::SIGTERM);
    let status = wait_child(&mut wrapper, Duration::from_secs(10)).expect("service did not stop on SIGTERM");
    assert!(status.code().is_some());
    let children: Vec<i32> =
        lines(&log).iter().map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap()).collect();
    assert!(children.iter().all(|p| !alive(*p)), "a child outlived the service");
    assert!(wait_until(Duration::from_secs(5), || etcd.keys("/conch/").is_empty() && etcd.leases().is_empty()));
}
