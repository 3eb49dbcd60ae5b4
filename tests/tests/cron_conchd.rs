//! `conch conchd` and `conch cron`: at most one run per tick across three daemons, zombies,
//! `rm` during a run, overlap skip, no past ticks after a restart.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use conch_tests::*;
use nix::sys::signal::Signal;

fn conchd(etcd: &Etcd, log: &Path, host: &str) -> Child {
    conch(etcd)
        .env("CONCH_HOSTNAME", host)
        .args(["--ttl", "5s", "conchd", "--kill-after", "1s"])
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn add(etcd: &Etcd, name: &str, schedule: &str, extra: &[&str], script: &str) {
    let out = conch(etcd)
        .args(["cron", "add", name, "--schedule", schedule])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

fn stop(children: &mut [Child]) {
    for c in children.iter() {
        signal(c, Signal::SIGTERM);
    }
    for c in children.iter_mut() {
        assert_eq!(
            wait_child(c, Duration::from_secs(15)).and_then(|s| s.code()),
            Some(0),
            "conchd did not stop cleanly"
        );
    }
}

fn ticks_in(etcd: &Etcd, prefix: &str) -> Vec<i64> {
    etcd.keys(prefix).iter().filter_map(|k| k.rsplit('/').next()?.parse().ok()).collect()
}

#[test]
fn three_daemons_run_each_tick_exactly_once() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    add(
        &etcd,
        "every-second",
        "@every 1s",
        &[],
        &format!("echo \"$CONCH_TICK $CONCH_REV $CONCH_NAME\" >> {}", log.display()),
    );
    let mut daemons: Vec<Child> =
        (0..3).map(|i| conchd(&etcd, &dir.path().join(format!("d{i}")), &format!("node{i}"))).collect();
    assert!(wait_until(Duration::from_secs(20), || read(&log).lines().count() >= 5), "no ticks ran");
    std::thread::sleep(Duration::from_millis(1500));
    stop(&mut daemons);
    let lines: Vec<String> = read(&log).lines().map(str::to_string).collect();
    let mut ticks: Vec<&str> = lines.iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    let n = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), n, "a tick ran twice: {lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(" every-second")));
    // Every claimed tick has exactly one result, and every run's tick was claimed.
    let fires = ticks_in(&etcd, "/conch/v1/cron/fire/every-second/");
    let results = ticks_in(&etcd, "/conch/v1/cron/result/every-second/");
    assert_eq!(fires, results, "claims and results differ");
    assert_eq!(fires.len(), n);
    // Consecutive seconds: no tick was missed while three healthy daemons ran.
    assert!(fires.windows(2).all(|w| w[1] == w[0] + 1), "missed ticks: {fires:?}");
    assert!(etcd.keys("/conch/v1/cron/running/").is_empty());
}

#[test]
fn a_killed_winner_leaves_a_claimed_tick_without_result_that_is_never_rerun() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Every 2 s; each run records its tick and pid, then sleeps.
    add(
        &etcd,
        "slow",
        "@every 2s",
        &["--run-ttl", "1s", "--overlap", "allow"],
        &format!("echo \"$CONCH_TICK $$\" >> {d}/runs; sleep 30"),
    );
    let mut daemon = conchd(&etcd, &dir.path().join("d0"), "node0");
    assert!(wait_until(Duration::from_secs(10), || read(&dir.path().join("runs")).lines().count() == 1));
    kill_child(&mut daemon);
    let first = read(&dir.path().join("runs"));
    let (tick, pid) = first.trim().split_once(' ').unwrap();
    let pid: i32 = pid.parse().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)), "the run survived its daemon");
    // Another daemon comes up: it never re-runs the claimed tick.
    let mut other = conchd(&etcd, &dir.path().join("d1"), "node1");
    std::thread::sleep(Duration::from_secs(3));
    let tick_s = chrono_free_parse(tick);
    assert!(read(&dir.path().join("runs")).lines().filter(|l| l.starts_with(tick)).count() == 1, "tick re-run");
    assert!(ticks_in(&etcd, "/conch/v1/cron/fire/slow/").contains(&tick_s));
    assert!(!ticks_in(&etcd, "/conch/v1/cron/result/slow/").contains(&tick_s), "a result for a killed run");
    let ls = conch(&etcd).args(["cron", "ls"]).output().unwrap();
    let results = conch(&etcd).args(["cron", "results", "slow", "--json"]).output().unwrap();
    stop(std::slice::from_mut(&mut other));
    let history: Vec<serde_json::Value> = serde_json::from_slice(&results.stdout).unwrap();
    let row = history.iter().find(|r| r["tick"] == tick_s).unwrap();
    assert_eq!(row["outcome"], "zombie", "{history:?}");
    assert!(String::from_utf8_lossy(&ls.stdout).contains("slow"));
    kill_pids_in_lines(&dir.path().join("runs"));
}

/// `cron rm` takes the job's history with it: `cron results` says there is no such job,
/// and no result key of it is left in etcd.
#[test]
fn rm_takes_the_history_with_the_job() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    add(&etcd, "gone", "@every 1s", &[], "true");
    let mut daemon = conchd(&etcd, &dir.path().join("d0"), "node0");
    assert!(wait_until(Duration::from_secs(10), || ticks_in(&etcd, "/conch/v1/cron/result/gone/").len() >= 2));
    stop(std::slice::from_mut(&mut daemon));
    assert_eq!(conch(&etcd).args(["cron", "rm", "gone"]).output().unwrap().status.code(), Some(0));
    assert!(etcd.keys("/conch/v1/cron/result/gone/").is_empty(), "results left behind");
    let results = conch(&etcd).args(["cron", "results", "gone"]).output().unwrap();
    assert_eq!(results.status.code(), Some(1), "{}", String::from_utf8_lossy(&results.stderr));
}

/// A claim whose daemon's session is gone is a zombie at once, long before `--run-ttl`.
#[test]
fn a_claim_whose_daemons_session_is_gone_is_a_zombie_at_once() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    add(&etcd, "lone", "@every 2s", &["--run-ttl", "1h"], &format!("echo \"$CONCH_TICK $$\" >> {d}/runs; sleep 30"));
    let mut daemon = conchd(&etcd, &dir.path().join("d0"), "node0");
    assert!(wait_until(Duration::from_secs(10), || read(&dir.path().join("runs")).lines().count() == 1));
    let outcome = || {
        let out = conch(&etcd).args(["cron", "results", "lone", "--json"]).output().unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        rows.last().and_then(|r| r["outcome"].as_str().map(str::to_string)).unwrap_or_default()
    };
    assert_eq!(outcome(), "running", "a live daemon's run");
    kill_child(&mut daemon);
    // Its session (TTL 5 s) runs out; the run is a zombie then, not in an hour.
    assert!(wait_until(Duration::from_secs(12), || outcome() == "zombie"), "still {:?}", outcome());
    kill_pids_in_lines(&dir.path().join("runs"));
}

/// Unix seconds of an RFC 3339 UTC time like 2026-11-23T19:52:13Z.
fn chrono_free_parse(text: &str) -> i64 {
    let out = std::process::Command::new("date").args(["-u", "-d", text, "+%s"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn kill_pids_in_lines(path: &Path) {
    for line in read(path).lines() {
        if let Some(pid) = line.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[test]
fn rm_during_a_run_lets_it_finish_and_stops_future_ticks() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    add(&etcd, "finish-me", "@every 1s", &[], &format!("echo start >> {d}/log; sleep 1.5; echo end >> {d}/log"));
    let mut daemon = conchd(&etcd, &dir.path().join("d0"), "node0");
    assert!(wait_until(Duration::from_secs(10), || read(&dir.path().join("log")).contains("start")));
    let rm = conch(&etcd).args(["cron", "rm", "finish-me"]).output().unwrap();
    assert_eq!(rm.status.code(), Some(0));
    assert!(
        wait_until(Duration::from_secs(5), || read(&dir.path().join("log")).contains("end")),
        "the run in flight was stopped"
    );
    std::thread::sleep(Duration::from_secs(2));
    stop(std::slice::from_mut(&mut daemon));
    assert_eq!(read(&dir.path().join("log")).matches("start").count(), 1, "ticks after rm");
    assert_eq!(ticks_in(&etcd, "/conch/v1/cron/result/finish-me/").len(), 1);
}

#[test]
fn overlap_skip_never_runs_two_at_once_and_counts_skipped_ticks() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = format!(
        "mkdir {d}/lock 2>/dev/null || echo OVERLAP >> {d}/log; echo run >> {d}/log; sleep 2.5; rmdir {d}/lock"
    );
    add(&etcd, "long", "@every 1s", &[], &script);
    let mut daemons: Vec<Child> =
        (0..2).map(|i| conchd(&etcd, &dir.path().join(format!("d{i}")), &format!("node{i}"))).collect();
    std::thread::sleep(Duration::from_secs(7));
    stop(&mut daemons);
    let log = read(&dir.path().join("log"));
    assert!(!log.contains("OVERLAP"), "two runs at once: {log}");
    assert!(log.matches("run").count() >= 2, "{log}");
    let skipped: usize =
        (0..2).map(|i| read(&dir.path().join(format!("d{i}"))).matches("skipped-overlap").count()).sum();
    assert!(skipped >= 2, "skipped ticks not logged");
    assert!(etcd.keys("/conch/v1/cron/running/").is_empty());
}

#[test]
fn a_restarted_daemon_claims_no_past_tick() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    add(&etcd, "fresh", "@every 1s", &[], "true");
    let mut first = conchd(&etcd, &dir.path().join("d0"), "node0");
    assert!(wait_until(Duration::from_secs(10), || !ticks_in(&etcd, "/conch/v1/cron/fire/fresh/").is_empty()));
    stop(std::slice::from_mut(&mut first));
    std::thread::sleep(Duration::from_secs(3));
    let before = ticks_in(&etcd, "/conch/v1/cron/fire/fresh/");
    let restart_s = (now_ns() / 1_000_000_000) as i64;
    let mut second = conchd(&etcd, &dir.path().join("d1"), "node0");
    assert!(
        wait_until(Duration::from_secs(10), || ticks_in(&etcd, "/conch/v1/cron/fire/fresh/").len() > before.len() + 1)
    );
    stop(std::slice::from_mut(&mut second));
    let new: Vec<i64> =
        ticks_in(&etcd, "/conch/v1/cron/fire/fresh/").into_iter().filter(|t| !before.contains(t)).collect();
    assert!(new.iter().all(|t| *t >= restart_s), "past ticks claimed after restart at {restart_s}: {new:?}");
}

#[test]
fn next_prints_ticks_in_the_zone_and_bad_specs_write_nothing() {
    let etcd = Etcd::start();
    let out = conch(&etcd)
        .args(["cron", "next", "30 2 * * *", "--tz", "Europe/Berlin", "--from", "2025-03-29T12:00:00Z", "--count", "2"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2025-03-30T03:00:00+02:00\n2025-03-31T02:30:00+02:00\n");
    let json = conch(&etcd)
        .args(["cron", "next", "@every 1h", "--from", "2025-01-01T00:30:00Z", "--count", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&json.stdout).trim(), r#"["2025-01-01T01:00:00+00:00"]"#);
    let cases: &[&[&str]] = &[
        &["cron", "add", "bad", "--schedule", "61 * * * *", "--", "true"],
        &["cron", "add", "bad", "--schedule", "0 0 * * *", "--tz", "Mars/Base", "--", "true"],
        &["cron", "add", "bad", "--schedule", "@reboot", "--", "true"],
        &["cron", "add", "bad/name", "--schedule", "@daily", "--", "true"],
        &["cron", "add", "bad", "--schedule", "@daily"],
        &["cron", "add", "bad", "--schedule", "@daily", "--run-ttl", "1m30", "--", "true"],
    ];
    for args in cases {
        let out = conch(&etcd).args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "{args:?}");
    }
    assert!(etcd.keys("/").is_empty());
}

/// One HTTP/1.0 GET on loopback: (status code, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

#[test]
fn the_status_api_answers_with_the_right_data() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    add(&etcd, "status-job", "@every 1s", &[], "true");
    let port = free_port();
    let mut daemon = conch(&etcd)
        .args(["--ttl", "5s", "conchd", "--kill-after", "1s", "--status-addr", &format!("127.0.0.1:{port}")])
        .stderr(std::fs::File::create(dir.path().join("d")).unwrap())
        .spawn()
        .unwrap();
    let mut leader = conch(&etcd)
        .args(["elect", "status-office", "--", "sleep", "30"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/healthz").0 == 200), "not healthy");
    assert!(wait_until(Duration::from_secs(10), || ticks_in(&etcd, "/conch/v1/cron/result/status-job/").len() >= 2));
    let (code, body) = http_get(port, "/cron");
    assert_eq!(code, 200);
    let cron: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cron["jobs"][0]["name"], "status-job");
    assert_eq!(cron["jobs"][0]["outcome"], "exited");
    assert!(cron["jobs"][0]["next"].as_str().is_some());
    assert!(wait_until(Duration::from_secs(10), || etcd.keys("/conch/v1/elect/status-office/").len() == 1));
    let elect: serde_json::Value = serde_json::from_str(&http_get(port, "/elect").1).unwrap();
    assert_eq!(elect["offices"][0]["office"], "status-office");
    let sema: serde_json::Value = serde_json::from_str(&http_get(port, "/sema").1).unwrap();
    assert_eq!(sema["semaphores"], serde_json::json!([]));
    let (code, metrics) = http_get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("conch_cron_ticks_total{result=\"claimed\"}"), "{metrics}");
    assert!(metrics.contains("conch_cron_runs_total{job=\""), "runs carry their job: {metrics}");
    assert!(metrics.contains("outcome=\"exited\"}"), "{metrics}");
    assert!(metrics.contains("conch_cron_last_success_timestamp_seconds{job=\""), "{metrics}");
    assert!(metrics.contains("conch_build_info{version=\""), "{metrics}");
    assert!(metrics.contains("conch_session_up 1"), "{metrics}");
    assert!(
        metrics.contains("conch_keepalive_rtt_seconds_count")
            && metrics.contains("conch_cron_run_duration_seconds_count")
    );
    assert_eq!(http_get(port, "/nope").0, 404);
    signal(&leader, Signal::SIGTERM);
    let _ = wait_child(&mut leader, Duration::from_secs(10));
    stop(std::slice::from_mut(&mut daemon));
}

#[test]
fn a_daemon_whose_session_is_revoked_gets_a_new_one_and_keeps_running_ticks() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    add(&etcd, "survivor", "@every 1s", &[], "true");
    let mut daemon = Reaped(conchd(&etcd, &dir.path().join("d0"), "node0"));
    assert!(wait_until(Duration::from_secs(10), || ticks_in(&etcd, "/conch/v1/cron/result/survivor/").len() >= 2));
    // The session lease is the one granted with the 5 s TTL (claims and results use days).
    let session = etcd
        .leases()
        .into_iter()
        .find(|l| {
            let out = etcd.etcdctl(&["lease", "timetolive", l, "-w", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["granted-ttl"].as_i64() == Some(5)
        })
        .expect("session lease");
    etcd.revoke(&session);
    let after = (now_ns() / 1_000_000_000) as i64 + 1;
    assert!(
        wait_until(Duration::from_secs(10), || ticks_in(&etcd, "/conch/v1/cron/result/survivor/")
            .iter()
            .filter(|t| **t > after)
            .count()
            >= 2),
        "no ticks after the session was revoked: {}",
        read(&dir.path().join("d0"))
    );
    stop(std::slice::from_mut(&mut daemon.0));
    assert!(read(&dir.path().join("d0")).contains("session-lost"));
}

/// Kills the daemon if the test fails before stopping it.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        kill_child(&mut self.0);
    }
}

/// A package upgrade replaces (or deletes) the binary under a running conchd: its runs go
/// on, each shim started from the running image, not from the path.
#[test]
fn a_daemon_whose_binary_is_deleted_keeps_running_ticks() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("conch");
    std::fs::copy(conch_bin(), &copy).unwrap();
    let log = dir.path().join("runs");
    let name = "binary-gone";
    add(&etcd, name, "@every 1s", &[], &format!("echo \"$CONCH_TICK\" >> {}", log.display()));
    let stderr = dir.path().join("stderr");
    // Reaped: a failed assertion below still kills and reaps the daemon.
    let mut daemon = Reaped(
        std::process::Command::new(&copy)
            .env("CONCH_ENDPOINTS", etcd.endpoint())
            .env("CONCH_DIAL_TIMEOUT", "2s")
            .stdin(std::process::Stdio::null())
            .args(["--ttl", "5s", "conchd", "--kill-after", "1s"])
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let runs = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    assert!(wait_until(Duration::from_secs(15), || runs() >= 1), "{}", read(&stderr));
    std::fs::remove_file(&copy).unwrap();
    let before = runs();
    assert!(wait_until(Duration::from_secs(15), || runs() >= before + 2), "no run after the delete: {}", read(&stderr));
    assert!(!read(&stderr).contains("cannot start the shim"), "{}", read(&stderr));
    stop(std::slice::from_mut(&mut daemon.0));
    let _ = conch(&etcd).args(["cron", "rm", name]).output();
}
