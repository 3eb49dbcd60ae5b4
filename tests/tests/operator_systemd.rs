//! conch under systemd's `Type=notify`, through a `NOTIFY_SOCKET` datagram socket made
//! here: READY once campaigning, STATUS lines a person reads, WATCHDOG only while the
//! session is healthy, STOPPING on a stop; and journald priorities on stderr.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use conch_tests::proxy::Proxy;
use conch_tests::*;
use nix::sys::signal::Signal;

/// Every datagram that arrives within `within`, as text.
fn collect(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
        }
    }
    got
}

#[test]
fn notify_ready_status_watchdog_while_healthy_and_stopping() {
    let etcd = Etcd::start();
    let port = etcd.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(port);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let office = unique("notify");
    // systemd sets WATCHDOG_PID to the service's main pid: exec keeps the shell's pid.
    let conch_path = conch_bin().display().to_string();
    let mut wrapper = std::process::Command::new("sh")
        .args(["-c", &format!("WATCHDOG_PID=$$ exec {conch_path} \"$@\""), "sh"])
        .args(["elect", &office, "--restart", "--ttl", "3s", "--kill-after", "500ms", "--", "sleep", "60"])
        .env("CONCH_ENDPOINTS", format!("http://127.0.0.1:{}", proxy.port()))
        .env("CONCH_DIAL_TIMEOUT", "2s")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let healthy = collect(&socket, Duration::from_secs(3));
    assert!(healthy.iter().any(|m| m == "READY=1"), "{healthy:?}");
    assert!(healthy.iter().any(|m| m.starts_with("STATUS=campaigning for ")), "{healthy:?}");
    let holding = healthy.iter().find(|m| m.starts_with("STATUS=holding ")).expect("a holding status");
    assert!(holding.contains(" since ") && holding.contains(" with rev "), "{holding}");
    let pets = healthy.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pets >= 3, "only {pets} watchdog pets in 3 s at a 400 ms watchdog: {healthy:?}");

    // etcd goes silent: the session cannot be renewed, so the petting stops within a TTL.
    proxy.cut();
    let _ = collect(&socket, Duration::from_secs(4));
    let unhealthy = collect(&socket, Duration::from_secs(2));
    assert!(!unhealthy.iter().any(|m| m == "WATCHDOG=1"), "petting while the session is lost: {unhealthy:?}");
    proxy.heal();

    signal(&wrapper, Signal::SIGTERM);
    let stopping = collect(&socket, Duration::from_secs(2));
    assert!(stopping.iter().any(|m| m == "STOPPING=1"), "{stopping:?}");
    let status = wait_child(&mut wrapper, Duration::from_secs(15));
    if status.is_none() {
        kill_child(&mut wrapper);
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", read(&dir.path().join("log")));
    assert!(wait_until(Duration::from_secs(5), || etcd.keys("/conch/").is_empty()));
}

#[test]
fn journal_streams_get_syslog_priorities() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let file = std::fs::File::create(&log).unwrap();
    let meta = std::os::unix::fs::MetadataExt::dev(&file.metadata().unwrap());
    let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap());
    let office = unique("journal");
    let out = conch(&etcd)
        .env("JOURNAL_STREAM", format!("{meta}:{ino}"))
        .args(["elect", &office, "--", "sh", "-c", "exit 3"])
        .stderr(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = read(&log);
    assert!(text.lines().all(|l| l.starts_with("<3>") || l.starts_with("<4>") || l.starts_with("<6>")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("<6>") && l.contains("acquired")), "{text}");
    // The same lines without a journal carry no prefix.
    let plain = conch(&etcd).args(["elect", &office, "--", "true"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("<6>"));
}
