//! `conch sim` as an operator uses it: verdict lines, exit codes, replay of a failing
//! seed, trace and timeline files (exit 73 when they cannot be written), JSON that is the
//! same byte for byte on every run, and usage errors.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Command;

use conch_tests::conch_bin;

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(conch_bin()).arg("sim").args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn passing_seeds_print_one_verdict_line_each_and_exit_0() {
    let (code, out, _) = sim(&["--scenario", "mixed", "--seeds", "1..3"]);
    assert_eq!(code, 0, "{out}");
    let verdicts: Vec<&str> = out.lines().filter(|l| l.starts_with("ok ")).collect();
    assert_eq!(verdicts.len(), 3, "{out}");
    assert!(verdicts[0].contains("seed=1 scenario=mixed") && verdicts[0].contains("ttl="), "{out}");
    assert!(out.lines().last().unwrap().starts_with("3 seeds: 3 passed, 0 failed"), "{out}");
}

#[test]
fn a_broken_machine_fails_with_a_replay_command_that_reproduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let svg = dir.path().join("t.svg");
    // With the flags that change the world (fenced writes, step-downs): the replay names them.
    let args = [
        "--scenario",
        "elect",
        "--seed",
        "3",
        "--faults",
        "pause",
        "--all-faults",
        "--sabotage",
        "ignore-deadlines",
        "--fenced-writes",
        "--step-downs",
    ];
    let mut with_files = args.to_vec();
    with_files.extend(["--trace", trace.to_str().unwrap(), "--timeline", svg.to_str().unwrap()]);
    let (code, out, _) = sim(&with_files);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL seed=3") && out.contains("bounded-holders:"), "{out}");
    let replay = out.lines().find_map(|l| l.trim().strip_prefix("replay: conch sim ")).unwrap();
    let replay_args: Vec<&str> = replay.split_whitespace().take_while(|a| *a != "--trace").collect();
    let (code2, out2, _) = sim(&replay_args);
    assert_eq!(code2, 1);
    let verdict = |o: &str| o.lines().find(|l| l.starts_with("FAIL")).unwrap().to_string();
    assert_eq!(verdict(&out), verdict(&out2), "the replay ran differently");
    let first = std::fs::read_to_string(&trace).unwrap();
    assert!(first.lines().count() > 100 && first.contains("\"ev\":\"fault\""));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("#ff0000"));
    // Byte-identical trace on a second run.
    sim(&with_files);
    assert_eq!(first, std::fs::read_to_string(&trace).unwrap());
}

#[test]
fn json_gives_one_object_per_seed_and_a_summary() {
    let (code, out, _) = sim(&["--scenario", "cron", "--seeds", "4..5", "--json"]);
    assert_eq!(code, 0, "{out}");
    let objects: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0]["seed"], 4);
    assert_eq!(objects[0]["verdict"], "ok");
    assert_eq!(objects[2]["summary"], true);
    assert_eq!(objects[2]["passed"], 2);
}

#[test]
fn bad_sim_arguments_exit_64_with_one_line() {
    for (args, needle) in [
        (&["--faults", "crash,bogus"][..], "unknown fault \"bogus\""),
        (&["--seeds", "9..2"][..], "B is below A"),
        (&["--seeds", "x..2"][..], "A is not a number"),
        (&["--duration", "10s"][..], "use 1m to 24h"),
        (&["--clients", "0"][..], "--clients 0"),
        (&["--scenario", "nope"][..], "nope"),
        (&["--fence-budget", "3x"][..], "--fence-budget"),
    ] {
        let (code, out, err) = sim(args);
        assert_eq!(code, 64, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_trace_or_timeline_that_cannot_be_written_exits_73_before_any_seed_runs() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().to_str().unwrap();
    for (flag, path, needle) in [
        ("--timeline", "/nonexistent/dir/x.svg", "No such file"),
        ("--trace", "/nonexistent/dir/t.jsonl", "No such file"),
        ("--timeline", here, "is a directory"),
        ("--trace", "/proc/version/t.jsonl", "not a directory"),
    ] {
        let t0 = std::time::Instant::now();
        let (code, out, err) = sim(&["--seeds", "1..50", flag, path]);
        assert_eq!(code, 73, "{flag} {path}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{flag} {path}: {err}");
        assert!(err.contains(flag) && err.contains(path) && err.contains(needle), "{flag} {path}: {err}");
        assert!(out.is_empty(), "seeds ran before the check: {out}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}

#[test]
fn the_same_command_prints_the_same_bytes() {
    let run = || sim(&["--seed", "7", "--json"]);
    let ((c1, out1, _), (c2, out2, _)) = (run(), run());
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(out1, out2, "two runs of --seed 7 --json differ");
    assert!(!out1.contains("wall_s") && !out1.contains("speed"), "{out1}");
    // The text form too; wall-clock figures are on stderr, or on stdout with --timing.
    let (_, text1, err) = sim(&["--seeds", "7..8"]);
    let (_, text2, _) = sim(&["--seeds", "7..8"]);
    assert_eq!(text1, text2);
    assert!(err.contains("x real time") && err.contains("seeds/s"), "{err}");
    let (_, timed, _) = sim(&["--seed", "7", "--json", "--timing"]);
    let summary: serde_json::Value = serde_json::from_str(timed.lines().last().unwrap()).unwrap();
    assert!(summary["wall_s"].is_number() && summary["speed"].is_number() && summary["seeds_per_s"].is_number());
}
