//! Logs: one line per state transition on stderr, `--log-format json`, `--quiet`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use conch_tests::*;

#[test]
fn json_logs_are_one_object_per_transition_and_quiet_is_silent_on_the_happy_path() {
    let etcd = Etcd::start();
    let office = unique("logs");
    let out = conch(&etcd).args(["--log-format", "json", "elect", &office, "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "logs go to stderr only");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["campaign", "acquired", "child-start", "child-exit", "resigned"]);
    assert!(
        events[1]["rev"].as_i64().is_some()
            && events[1]["lease"].as_str().is_some()
            && events[1]["name"] == office.as_str()
    );
    let quiet = conch(&etcd).args(["--quiet", "elect", &office, "--", "true"]).output().unwrap();
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
    let text = conch(&etcd).env("CONCH_QUIET", "0").args(["elect", &office, "--", "true"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.lines().any(|l| l.contains(" acquired ") && l.contains(&format!("name={office}"))), "{stderr}");
}

#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    let etcd = Etcd::start();
    let bash = conch(&etcd).args(["completions", "bash"]).output().unwrap();
    assert_eq!(bash.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&bash.stdout).contains("--kill-after"));
    let man = conch(&etcd).arg("man").output().unwrap();
    assert_eq!(man.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH conch 1"));
}

/// A failing child is a warning (so `--quiet` and `journalctl -p warning` show it), and the
/// shim's lines obey `--quiet` and `--log-format json` like the wrapper's own.
#[test]
fn failures_are_warnings_and_the_shims_lines_follow_the_wrappers_flags() {
    let etcd = Etcd::start();
    let office = unique("warn");
    let quiet = conch(&etcd).args(["--quiet", "elect", &office, "--", "sh", "-c", "exit 3"]).output().unwrap();
    assert_eq!(quiet.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(stderr.lines().any(|l| l.contains("WARN") && l.contains("child-exit") && l.contains("code=3")), "{stderr}");
    // SIGTERM to the wrapper: the shim signals the child and logs term-sent, in JSON too.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let d = dir.path().display();
    let mut wrapper = conch(&etcd)
        .args([
            "--log-format",
            "json",
            "elect",
            &office,
            "--",
            "sh",
            "-c",
            &format!("echo $$ > {d}/pid; exec sleep 30"),
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(10), || !pids_in(&dir.path().join("pid")).is_empty()));
    signal(&wrapper, nix::sys::signal::Signal::SIGTERM);
    assert!(wait_child(&mut wrapper, std::time::Duration::from_secs(10)).is_some());
    let text = read(&log);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    let shim_line = events.iter().any(|e| e.to_string().contains("term_at") || e.to_string().contains("processes"));
    assert!(shim_line, "no line of the shim's: {text}");
}

/// conchd under `--quiet --log-format json`: every stderr line is one JSON object (the
/// job's own output included), a job's output lines carry the job and stream and are not
/// hidden by `--quiet`, and core fields have one type (`rev` a number, durations text).
#[test]
fn a_jobs_output_lines_carry_the_job_and_stay_json() {
    let etcd = Etcd::start();
    let job = unique("joblog");
    let add = conch(&etcd)
        .args(["cron", "add", &job, "--schedule", "@every 1s", "--", "sh", "-c"])
        .arg("echo to-out; echo to-err >&2; printf no-newline; exit 3")
        .output()
        .unwrap();
    assert_eq!(add.status.code(), Some(0), "{}", String::from_utf8_lossy(&add.stderr));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut daemon = Reaped(
        conch(&etcd)
            .args(["--quiet", "--log-format", "json", "--ttl", "5s", "conchd", "--kill-after", "1s"])
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let seen = |text: &str| text.contains("no-newline") && text.contains("to-err") && text.contains("child-exit");
    assert!(wait_until(std::time::Duration::from_secs(15), || seen(&read(&log))), "{}", read(&log));
    signal(&daemon.0, nix::sys::signal::Signal::SIGTERM);
    assert!(wait_child(&mut daemon.0, std::time::Duration::from_secs(15)).is_some());
    let text = read(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    for (stream, line) in [("stdout", "to-out"), ("stderr", "to-err"), ("stdout", "no-newline")] {
        assert!(
            lines.iter().any(|l| l["message"] == line && l["job"] == job.as_str() && l["stream"] == stream),
            "no {stream} line {line:?} of job {job}: {text}"
        );
    }
    // The exit 3 is a warning, so --quiet shows it, with its code as a number.
    let exit = lines.iter().find(|l| l["event"] == "child-exit").unwrap();
    assert_eq!((exit["level"].as_str(), exit["code"].as_i64()), (Some("WARN"), Some(3)), "{exit}");
    assert!(exit["ran"].is_string(), "{exit}");
    let _ = conch(&etcd).args(["cron", "rm", &job]).output();
}

/// The shim's own log lines go to conchd's stderr as conchd's lines, never through the
/// job's output pipes (where they would come out wrapped as `stream=stderr` job output).
#[test]
fn the_shims_own_lines_are_not_job_output() {
    let etcd = Etcd::start();
    let job = unique("shimlog");
    let add =
        conch(&etcd).args(["cron", "add", &job, "--schedule", "@every 1s", "--", "sleep", "30"]).output().unwrap();
    assert_eq!(add.status.code(), Some(0), "{}", String::from_utf8_lossy(&add.stderr));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut daemon = Reaped(
        conch(&etcd)
            .args(["--log-format", "json", "--ttl", "5s", "conchd", "--kill-after", "1s"])
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(std::time::Duration::from_secs(15), || read(&log).contains("child-start")), "{}", read(&log));
    // A stop: the shim terminates the job and logs it.
    signal(&daemon.0, nix::sys::signal::Signal::SIGTERM);
    assert!(wait_child(&mut daemon.0, std::time::Duration::from_secs(15)).is_some());
    let _ = conch(&etcd).args(["cron", "rm", &job]).output();
    let text = read(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    let term = lines.iter().find(|l| l["event"] == "term-sent").unwrap_or_else(|| panic!("no term-sent: {text}"));
    assert!(term.get("stream").is_none() && term.get("job").is_none(), "the shim's line came as job output: {term}");
    assert!(
        !lines
            .iter()
            .any(|l| l.get("stream").is_some() && l["message"].as_str().is_some_and(|m| m.contains("term-sent"))),
        "a shim line wrapped as job output: {text}"
    );
}
