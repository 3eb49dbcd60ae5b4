//! The round loop: start the cluster and the stressers, then for each case (in the seed's
//! order) wait for health, inject, hold, recover, wait for health, let things settle,
//! compare HashKV and run the checkers; at the end stop every stresser and check that
//! nothing is left (keys, leases, processes).
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use conch_core::backoff::SplitMix64;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cases::CaseKind;
use super::checkers::{check_round, leftovers, skipped_overlap, Bounds, Clock, Findings, Logs, RoundRecord};
use super::report;
use super::stressers::{Paths, Stressers, JOBS};
use super::{Config, World, KILL_AFTER, TTL};
use crate::cluster::{retry, Cluster};
use crate::invariant::parse;
use crate::mono_ns;

/// One round's outcome.
#[derive(Clone, Debug)]
pub struct RoundReport {
    /// 1-based.
    pub n: usize,
    /// The case.
    pub case: CaseKind,
    /// Wall time of the round.
    pub duration: Duration,
    /// The checkers' findings.
    pub findings: Findings,
    /// Stresser processes that exited (and were started again) during the round.
    pub restarts: usize,
}

/// A whole run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Every round.
    pub rounds: Vec<RoundReport>,
    /// Violations of the run as a whole (warm-up, leftovers, processes).
    pub final_violations: Vec<(&'static str, String)>,
    /// Exit codes of the stressers' processes, counted.
    pub exits: BTreeMap<i32, usize>,
    /// Wall time of the run.
    pub duration: Duration,
}

impl Summary {
    /// Whether every checker held.
    pub fn passed(&self) -> bool {
        self.final_violations.is_empty() && self.rounds.iter().all(|r| r.findings.violations.is_empty())
    }
}

/// How long a round waits for health after recovering.
const HEALTH_WAIT: Duration = Duration::from_secs(60);

/// Reads every interval log.
pub fn read_logs(paths: &Paths) -> Logs {
    Logs {
        elect: parse(&paths.elect_log()),
        sema: parse(&paths.sema_log()),
        cron: JOBS
            .iter()
            .map(|(job, _, overlap)| (job.to_string(), (*overlap == "skip").then_some(1), parse(&paths.cron_log(job))))
            .collect(),
        skips: (0..super::stressers::CONCHDS)
            .flat_map(|n| {
                skipped_overlap(&std::fs::read_to_string(paths.role_log(&format!("conchd-{n}"))).unwrap_or_default())
            })
            .collect(),
    }
}

/// The cases of a run in the seed's order: every case `rounds` times, shuffled.
pub fn order(cfg: &Config) -> Vec<CaseKind> {
    let mut rng = SplitMix64::new(cfg.seed);
    let mut out: Vec<CaseKind> = (0..cfg.rounds).flat_map(|_| cfg.cases.iter().copied()).collect();
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

/// Runs the tester; `Err` when the cluster or the stressers could not be set up.
pub fn run(cfg: &Config) -> Result<Summary, String> {
    let begin = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let paths = Paths { conch: cfg.conch.clone(), holdlog: cfg.holdlog.clone(), dir: dir.path().to_path_buf() };
    let cluster = Cluster::start(3, cfg.timings)?;
    println!("cluster up: {} (etcd {})", cluster.endpoints(), crate::etcd_bin().display());
    let stressers = Stressers::new(paths.clone(), cluster.endpoints(), cfg.seed);
    stressers.add_jobs()?;
    let mut w = World { cluster, stressers, paths };
    w.stressers.stress();
    let mut summary = Summary::default();
    let warm = crate::wait_until(Duration::from_secs(30), || {
        let l = read_logs(&w.paths);
        l.elect.iter().any(|i| i.end.is_none()) && l.sema.len() >= 2 && l.cron.iter().all(|(_, _, ivs)| ivs.len() >= 2)
    });
    if !warm {
        summary
            .final_violations
            .push(("warm-up", "30 s after start: no office holder, sema children or cron runs".into()));
    }
    let bounds = Bounds { ttl: TTL, kill_after: KILL_AFTER, election: cfg.timings.election };
    let clock = Clock::now();
    let mut seen = BTreeSet::new();
    let cases = order(cfg);
    for (k, case) in cases.iter().enumerate() {
        let mut rng = SplitMix64::new(cfg.seed ^ ((k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let report = round(&mut w, k + 1, *case, &mut rng, &bounds, clock, &mut seen);
        println!("{}", report::line(&report));
        for (name, v) in &report.findings.violations {
            println!("    {name}: {v}");
        }
        summary.rounds.push(report);
    }
    finish(&mut w, &mut summary);
    if !summary.passed() {
        print_tails(&w);
    }
    summary.duration = begin.elapsed();
    if cfg.keep {
        println!("logs kept in {}", dir.keep().display());
    }
    Ok(summary)
}

fn round(
    w: &mut World,
    n: usize,
    case: CaseKind,
    rng: &mut SplitMix64,
    b: &Bounds,
    clock: Clock,
    seen: &mut BTreeSet<String>,
) -> RoundReport {
    let begin = Instant::now();
    let mut extra: Vec<(&'static str, String)> = Vec::new();
    if let Err(e) = w.cluster.wait_health(HEALTH_WAIT) {
        extra.push(("health", format!("before the round: {e}")));
    }
    let start = mono_ns();
    std::thread::sleep(Duration::from_millis(1500 + rng.below(1000)));
    let inject_at = mono_ns();
    let injection = case.inject(w, rng);
    let (inj, in_place) = match injection {
        Ok(inj) => {
            let at = inj.in_place;
            (inj, at)
        }
        Err(e) => {
            extra.push(("inject", e));
            (Default::default(), mono_ns())
        }
    };
    std::thread::sleep(inj.hold.saturating_sub(Duration::from_nanos(mono_ns().saturating_sub(in_place))));
    let recover_at = mono_ns();
    if let Err(e) = case.recover(w, &inj) {
        extra.push(("recover", e));
    }
    if let Err(e) = w.cluster.wait_health(HEALTH_WAIT) {
        extra.push(("health", format!("after recover: {e}")));
    }
    let healthy_at = mono_ns();
    std::thread::sleep(b.back() + Duration::from_secs(1));
    if let Some((job, tick)) = &inj.killed_tick {
        if let Err(e) = zombie_shown(w, job, tick, clock, inject_at) {
            extra.push(("zombie", e));
        }
    }
    if let Err(e) = w.cluster.hashkv_equal(Duration::from_secs(10)) {
        extra.push(("hashkv", e));
    }
    let end = mono_ns();
    let record = RoundRecord {
        case,
        start,
        inject_at,
        in_place,
        recover_at,
        healthy_at,
        end,
        killed_tick: inj.killed_tick.clone(),
    };
    let exits = w.stressers.exits();
    let mut findings = check_round(&record, &read_logs(&w.paths), &exits, b, clock, seen);
    for (job, tick) in findings.missed.iter().take(MISSED_SHOWN) {
        extra.push(("cron-ticks", format!("{job} {tick}: {}", daemons_said(&w.paths, job, tick))));
    }
    findings.violations.extend(extra);
    let restarts = exits.iter().filter(|e| e.at >= start && e.at <= end).count();
    RoundReport { n, case, duration: begin.elapsed(), findings, restarts }
}

/// Missed ticks whose daemon lines a failing round shows.
const MISSED_SHOWN: usize = 3;

/// What the daemons logged about one tick of a job (claims, skips, zombies), for the
/// report of a missed tick; "nothing" when no daemon mentions it.
fn daemons_said(paths: &Paths, job: &str, tick: &str) -> String {
    let (job_field, tick_field) = (format!("job={job}"), format!("tick={tick}"));
    let lines: Vec<String> = (0..super::stressers::CONCHDS)
        .flat_map(|n| {
            let role = format!("conchd-{n}");
            let log = std::fs::read_to_string(paths.role_log(&role)).unwrap_or_default();
            log.lines()
                .filter(|l| l.contains(&tick_field) && l.contains(&job_field) && !l.contains("stream="))
                .map(|l| format!("{role}: {}", l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")))
                .take(4)
                .collect::<Vec<_>>()
        })
        .collect();
    if lines.is_empty() {
        "no daemon logged it".to_string()
    } else {
        lines.join(" | ")
    }
}

/// The killed run's tick shows as a zombie in `conch cron results <job> --json`.
fn zombie_shown(w: &World, job: &str, tick: &str, clock: Clock, near: u64) -> Result<(), String> {
    let wall_s = ((near as i128 + clock.offset) / 1_000_000_000) as i64;
    let unix =
        (wall_s - 60..wall_s + 5).find(|t| conch_core::cron::rfc3339(*t) == tick).ok_or(format!("tick {tick}?"))?;
    let out = w.stressers.conch_ok(&["cron", "results", job, "--json"], &[])?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).map_err(|e| format!("cron results: {e}"))?;
    let row = rows.iter().find(|r| r["tick"].as_i64() == Some(unix));
    match row.map(|r| r["outcome"].as_str().unwrap_or("?").to_string()) {
        Some(o) if o == "zombie" => Ok(()),
        other => Err(format!("{job} tick {tick}: outcome {other:?} in cron results, want zombie")),
    }
}

/// Stops every stresser, removes the jobs, then checks nothing is left.
fn finish(w: &mut World, summary: &mut Summary) {
    let mut processes = w.stressers.processes();
    summary.exits = w.stressers.close();
    if let Err(e) = w.stressers.remove_jobs() {
        summary.final_violations.push(("leftovers", e));
    }
    let mut left = Vec::new();
    // Sessions of SIGKILLed wrappers run out within their TTL.
    let clean = retry(TTL + Duration::from_secs(5), || {
        left = leftovers(&keys(w), &leases(w));
        if left.is_empty() {
            Ok(())
        } else {
            Err(())
        }
    });
    if clean.is_err() {
        summary.final_violations.extend(left.into_iter().map(|v| ("leftovers", v)));
    }
    let logs = read_logs(&w.paths);
    processes
        .extend(logs.elect.iter().chain(&logs.sema).chain(logs.cron.iter().flat_map(|(_, _, i)| i)).map(|i| i.pid));
    processes.sort_unstable();
    processes.dedup();
    // A pid from the logs may have been reused by now (pid_max is often 32768): only a
    // live process still running one of our binaries counts, and only it may be killed.
    let alive: Vec<i32> = processes.into_iter().filter(|p| crate::alive(*p) && runs_ours(*p)).collect();
    if !alive.is_empty() {
        summary.final_violations.push(("processes", format!("still running after every stresser stopped: {alive:?}")));
        for p in alive {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// Whether `pid` runs conch or the test child (`holdlog`), by its command line.
fn runs_ours(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let name = String::from_utf8_lossy(argv0);
    let base = name.rsplit('/').next().unwrap_or_default();
    base == "conch" || base == "holdlog" || base.starts_with("conch-")
}

fn keys(w: &World) -> Vec<String> {
    let out = w.cluster.etcdctl_any(&["get", "--prefix", "/conch/", "--keys-only"]);
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Every lease with its granted TTL.
fn leases(w: &World) -> Vec<(String, i64)> {
    let out = w.cluster.etcdctl_any(&["lease", "list"]);
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("found "))
        .map(str::to_string)
        .collect();
    ids.into_iter()
        .filter_map(|id| {
            let out = w.cluster.etcdctl_any(&["lease", "timetolive", &id, "-w", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            // A lease that expired between list and timetolive answers ttl -1.
            (v["ttl"].as_i64()? >= 0).then(|| (id, v["granted-ttl"].as_i64().unwrap_or(0)))
        })
        .collect()
}

/// On failure: the end of each stresser's stderr and of each member's log.
fn print_tails(w: &World) {
    for (role, _, _) in Stressers::roles() {
        let text = crate::read(&w.paths.role_log(&role));
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        if !tail.is_empty() {
            println!("--- {role} (last lines)");
            tail.iter().rev().for_each(|l| println!("  {l}"));
        }
    }
    for i in 0..w.cluster.members.len() {
        println!("--- etcd {} (last lines)\n{}", w.cluster.members[i].name, w.cluster.log_tail(i, 3));
    }
}
