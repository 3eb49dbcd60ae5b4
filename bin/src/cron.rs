//! `conch cron ...`: validate, make the one or two etcd calls, print.
use conch_core::cron::{
    fire_prefix, job_key, job_prefix, open_claim_sessions, result_prefix, rfc3339, runs_knowing, Job, JobSpec, Overlap,
    RunRow,
};
use conch_core::keys::Name;
use conch_core::schedule::Schedule;
use conch_core::{EtcdRequest, ExitCode, Failure};
use conch_driver_etcd::out::listing_line;
use conch_driver_etcd::query::{call_once, forget_history, read_prefix as list, sessions_gone};
use conch_driver_etcd::EtcdConfig;

use crate::cli::{CronCmd, OverlapArg};

/// A checked `cron` subcommand.
#[derive(Debug)]
pub enum CronAction {
    /// Write a job spec.
    Add(Name, Box<Job>),
    /// Delete a job spec.
    Rm(Name),
    /// List jobs.
    Ls {
        /// Extra columns.
        last: bool,
        /// JSON.
        json: bool,
    },
    /// A job's run history.
    Results {
        /// The job.
        name: Name,
        /// How many.
        count: usize,
        /// JSON.
        json: bool,
    },
    /// Next ticks of an expression (parsed) or of a stored job (looked up).
    Next {
        /// The expression's schedule, or `None` for a job name.
        schedule: Option<Schedule>,
        /// The job name when not an expression.
        job: Option<Name>,
        /// Start (Unix seconds).
        from: Option<i64>,
        /// How many.
        count: usize,
        /// JSON.
        json: bool,
    },
}

/// Checks a `cron` subcommand (every usage error here: exit 64, nothing written).
pub fn validate(cmd: CronCmd, host: &dyn crate::host::Host) -> Result<CronAction, String> {
    let name = |n: &str| Name::new(n).map_err(|e| e.to_string());
    Ok(match cmd {
        CronCmd::Add { name: n, schedule, tz, run_ttl, overlap, cmd } => {
            let spec = JobSpec {
                schedule: schedule.clone(),
                tz: tz.clone().unwrap_or_else(|| "UTC".to_string()),
                cmd,
                run_ttl,
                overlap: match overlap {
                    OverlapArg::Skip => Overlap::Skip,
                    OverlapArg::Allow => Overlap::Allow,
                },
                added_by: format!("{}@{}", host.user(), host.hostname()),
                added_at: host.now_rfc3339(),
            };
            // A CRON_TZ= prefix names the zone when --tz does not.
            let spec = match (tz, Schedule::parse(&schedule, None)) {
                (None, Ok(s)) => JobSpec { tz: s.tz().name().to_string(), ..spec },
                _ => spec,
            };
            let job = Job::new(spec).map_err(|e| e.to_string())?;
            CronAction::Add(name(&n)?, Box::new(job))
        }
        CronCmd::Rm { name: n } => CronAction::Rm(name(&n)?),
        CronCmd::Ls { last, json } => CronAction::Ls { last, json },
        CronCmd::Results { name: n, count, json } => CronAction::Results { name: name(&n)?, count, json },
        CronCmd::Next { what, tz, from, count, json } => {
            let from = match from {
                Some(f) => Some(
                    chrono::DateTime::parse_from_rfc3339(&f)
                        .map_err(|e| format!("--from {f:?}: {e} (use RFC 3339, like 2026-06-12T10:15:00Z)"))?
                        .timestamp(),
                ),
                None => None,
            };
            let looks_like_expr = what.contains(' ') || what.starts_with('@') || what.starts_with("CRON_TZ=");
            if looks_like_expr {
                let schedule = Schedule::parse(&what, tz.as_deref()).map_err(|e| e.to_string())?;
                CronAction::Next { schedule: Some(schedule), job: None, from, count, json }
            } else {
                CronAction::Next { schedule: None, job: Some(name(&what)?), from, count, json }
            }
        }
    })
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs a checked `cron` subcommand; the error is the line to print and its exit code.
pub fn run(etcd: &EtcdConfig, action: CronAction) -> Result<ExitCode, Failure> {
    match action {
        CronAction::Add(name, job) => {
            let value = serde_json::to_vec(&job.spec).map_err(|e| Failure::new(ExitCode::LOST, e.to_string()))?;
            call_once(etcd, EtcdRequest::Put { key: job_key(&name), value, lease: None })?;
            let next = job.schedule.next_after(now_s()).map_or("-".to_string(), |t| local(&job.schedule, t));
            conch_driver_etcd::out::say_err(&format!("conch: job {} saved; next tick {next}", name.as_str()));
            Ok(ExitCode::OK)
        }
        CronAction::Rm(name) => {
            let existed = !list(etcd, &job_key(&name))?.iter().all(|kv| kv.key != job_key(&name));
            call_once(etcd, EtcdRequest::Delete { key: job_key(&name) })?;
            // Its history goes too, but for claims of the last minute (the longest a tick
            // can be late and still be claimed): nothing of a removed job is left behind.
            forget_history(etcd, name.as_str(), now_s() - 60)?;
            if existed {
                Ok(ExitCode::OK)
            } else {
                conch_driver_etcd::out::say_err(&format!("conch: no job named {}", name.as_str()));
                Ok(ExitCode::VACANT)
            }
        }
        CronAction::Ls { last, json } => ls(etcd, last, json),
        CronAction::Results { name, count, json } => {
            let job = stored_job(etcd, &name)?;
            let rows = job_runs(etcd, name.as_str(), &job)?;
            print_rows(&rows[..rows.len().min(count)], json);
            Ok(if rows.is_empty() { ExitCode::VACANT } else { ExitCode::OK })
        }
        CronAction::Next { schedule, job, from, count, json } => {
            let schedule = match (schedule, job) {
                (Some(s), _) => s,
                (None, Some(name)) => stored_job(etcd, &name)?.schedule,
                (None, None) => return Err(Failure::new(ExitCode::LOST, "nothing to compute")),
            };
            let mut t = from.unwrap_or_else(now_s);
            let mut ticks = Vec::new();
            for _ in 0..count.min(10_000) {
                let Some(next) = schedule.next_after(t) else { break };
                ticks.push(local(&schedule, next));
                t = next;
            }
            if json {
                listing_line(&serde_json::json!(ticks).to_string());
            } else {
                for tick in ticks {
                    listing_line(&tick.to_string());
                }
            }
            Ok(ExitCode::OK)
        }
    }
}

fn local(schedule: &Schedule, unix_s: i64) -> String {
    use chrono::TimeZone;
    schedule.tz().timestamp_opt(unix_s, 0).single().map_or_else(|| rfc3339(unix_s), |t| t.to_rfc3339())
}

/// The stored job; no such job is the answer "no" (exit 1, as `cron rm` says it), not an
/// etcd failure.
fn stored_job(etcd: &EtcdConfig, name: &Name) -> Result<Job, Failure> {
    let kvs = list(etcd, &job_key(name))?;
    let kv = kvs
        .iter()
        .find(|kv| kv.key == job_key(name))
        .ok_or_else(|| Failure::new(ExitCode::VACANT, format!("no job named {}", name.as_str())))?;
    Job::decode(&kv.value).map_err(|e| Failure::new(ExitCode::LOST, format!("job {}: {e}", name.as_str())))
}

fn job_runs(etcd: &EtcdConfig, name: &str, job: &Job) -> Result<Vec<RunRow>, Failure> {
    let fires = list(etcd, &fire_prefix(name))?;
    let results = list(etcd, &result_prefix(name))?;
    // A claim without a result whose claimer's session is gone is a zombie at once.
    let gone = sessions_gone(etcd, &open_claim_sessions(&fires, &results))?;
    Ok(runs_knowing(&fires, &results, job.run_ttl, now_s(), &|s| gone.contains(s)))
}

fn print_rows(rows: &[RunRow], json: bool) {
    if json {
        listing_line(&serde_json::json!(rows).to_string());
        return;
    }
    listing_line(&format!("{:<25} {:<16} {:<9} {:>4} {:>9} REV", "TICK", "NODE", "OUTCOME", "EXIT", "DURATION"));
    for r in rows {
        let exit = r.exit.map_or("?".to_string(), |e| e.to_string());
        let duration = r.duration.clone().unwrap_or_else(|| "—".to_string());
        listing_line(&format!(
            "{:<25} {:<16} {:<9} {:>4} {:>9} {}",
            rfc3339(r.tick),
            r.node,
            r.outcome,
            exit,
            duration,
            r.rev
        ));
    }
}

fn ls(etcd: &EtcdConfig, last: bool, json: bool) -> Result<ExitCode, Failure> {
    let jobs = list(etcd, &job_prefix())?;
    let mut rows = Vec::new();
    for kv in &jobs {
        let name = kv.key.trim_start_matches(&job_prefix()).to_string();
        let Ok(job) = Job::decode(&kv.value) else {
            rows.push(serde_json::json!({"name": name, "invalid": true}));
            continue;
        };
        let runs = job_runs(etcd, &name, &job)?;
        let next = job.schedule.next_after(now_s()).map(|t| local(&job.schedule, t));
        let last_run = runs.first();
        rows.push(serde_json::json!({
            "name": name, "schedule": job.spec.schedule, "tz": job.spec.tz, "next": next,
            "last_tick": last_run.map(|r| rfc3339(r.tick)), "node": last_run.map(|r| r.node.clone()),
            "exit": last_run.and_then(|r| r.exit), "duration": last_run.and_then(|r| r.duration.clone()),
            "outcome": last_run.map(|r| r.outcome.clone()), "rev": last_run.map(|r| r.rev),
            "zombie": last_run.is_some_and(|r| r.outcome == "zombie"),
        }));
    }
    if json {
        listing_line(&serde_json::json!(rows).to_string());
        return Ok(ExitCode::OK);
    }
    let extra = if last { " OUTCOME REV" } else { "" };
    listing_line(&format!(
        "{:<20} {:<16} {:<16} {:<25} {:<20} {:<12} {:>4} {:>9}{extra}",
        "NAME", "SCHEDULE", "TZ", "NEXT", "LAST-TICK", "NODE", "EXIT", "DURATION"
    ));
    for r in rows {
        let s = |k: &str| r[k].as_str().map_or("-".to_string(), str::to_string);
        let exit = match (&r["exit"], r["zombie"].as_bool()) {
            (_, Some(true)) => "?".to_string(),
            (serde_json::Value::Number(n), _) => n.to_string(),
            _ => "-".to_string(),
        };
        let duration = if r["zombie"].as_bool() == Some(true) { "— zombie".to_string() } else { s("duration") };
        let tail = if last { format!(" {} {}", s("outcome"), r["rev"]) } else { String::new() };
        listing_line(&format!(
            "{:<20} {:<16} {:<16} {:<25} {:<20} {:<12} {:>4} {:>9}{tail}",
            s("name"),
            s("schedule"),
            s("tz"),
            s("next"),
            s("last_tick"),
            s("node"),
            exit,
            duration
        ));
    }
    Ok(ExitCode::OK)
}
