//! What an operator's shell and systemd do to conch: close its pipes, stop it with SIGTERM,
//! reload it with SIGHUP. conch never panics on output, always releases its hold, exits 0
//! on a clean stop of a service, and passes SIGHUP & co. to the child as themselves.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

#[test]
fn a_closed_stderr_neither_panics_nor_leaves_the_hold_behind() {
    let etcd = Etcd::start();
    let office = unique("pipe");
    let conch = conch_bin().display().to_string();
    // The log reader reads one line and goes away while the child still runs.
    let script = format!(
        "{conch} elect {office} -- sleep 0.5 2>&1 >/dev/null | (read l; exec 0<&-; sleep 1.5); echo ${{PIPESTATUS[0]}}"
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("CONCH_ENDPOINTS", etcd.endpoint())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(etcd.keys("/conch/").is_empty(), "the hold was left behind");
    assert!(wait_until(Duration::from_secs(5), || etcd.leases().is_empty()));
}

#[test]
fn a_closed_stdout_ends_a_listing_quietly() {
    let etcd = Etcd::start();
    let conch = conch_bin().display().to_string();
    // Either the reader left before conch wrote (141, quietly) or after (the command's own
    // code: 0 for a listing, 1 for a vacant office); never a panic (101).
    for (listing, own) in [("cron ls", "0"), ("elect nobody --who --json", "1")] {
        let script = format!("{conch} {listing} | head -c 0; echo ${{PIPESTATUS[0]}}");
        let out = Command::new("bash").args(["-c", &script]).env("CONCH_ENDPOINTS", etcd.endpoint()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{listing}: {stderr}");
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(code == "141" || code == own, "{listing} exited {code}");
    }
}

#[test]
fn sigterm_stops_a_service_with_0_and_a_one_shot_with_the_childs_status() {
    let etcd = Etcd::start();
    for (restart, want) in [(true, 0), (false, 143)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let office = unique("stop");
        let mut args = vec!["elect".to_string(), office.clone()];
        if restart {
            args.push("--restart".into());
        }
        args.extend(["--".into(), "sh".into(), "-c".into(), format!("echo $$ > {d}/pid; exec sleep 30")]);
        let mut wrapper = conch(&etcd).args(&args).stderr(Stdio::null()).spawn().unwrap();
        assert!(wait_until(Duration::from_secs(10), || !pids_in(&dir.path().join("pid")).is_empty()));
        signal(&wrapper, Signal::SIGTERM);
        let status = wait_child(&mut wrapper, Duration::from_secs(10)).expect("the wrapper did not stop");
        assert_eq!(status.code(), Some(want), "restart={restart}");
        assert!(etcd.keys("/conch/").is_empty());
    }
}

#[test]
fn sighup_and_friends_reach_the_child_as_themselves() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let office = unique("hup");
    let script = format!(
        "for s in HUP USR1 USR2 QUIT WINCH; do trap \"echo $s >> {d}/got\" $s; done; echo $$ > {d}/pid; \
         for i in $(seq 300); do sleep 0.05; done"
    );
    let wrapper = conch(&etcd)
        .args(["elect", &office, "--restart", "--", "bash", "-c", &script])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed on a failure half-way (its group then dies by the shim's rules).
    let mut wrapper = Reaped(wrapper);
    let wrapper = &mut wrapper.0;
    assert!(wait_until(Duration::from_secs(10), || !pids_in(&dir.path().join("pid")).is_empty()));
    let child = pids_in(&dir.path().join("pid"))[0];
    let sent = [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGQUIT, Signal::SIGWINCH];
    for (n, sig) in sent.iter().enumerate() {
        signal(wrapper, *sig);
        assert!(
            wait_until(Duration::from_secs(5), || read(&dir.path().join("got")).lines().count() == n + 1),
            "{sig:?} did not reach the child: {:?}",
            read(&dir.path().join("got"))
        );
    }
    assert_eq!(read(&dir.path().join("got")).lines().collect::<Vec<_>>(), ["HUP", "USR1", "USR2", "QUIT", "WINCH"]);
    assert!(alive(child), "a passed signal stopped the child");
    assert!(wrapper.try_wait().unwrap().is_none(), "a passed signal stopped the wrapper");
    signal(wrapper, Signal::SIGTERM);
    assert_eq!(wait_child(wrapper, Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    assert!(etcd.keys("/conch/").is_empty());
}
