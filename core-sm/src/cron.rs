//! Cron keys and values (a public API): job specs, claims, results.
//!
//! ```text
//! /conch/v1/cron/job/<name>                        job spec JSON, no lease
//! /conch/v1/cron/fire/<name>/<tick-unix-seconds>   claim JSON, on a ~25 h claim lease
//! /conch/v1/cron/result/<name>/<tick-unix-seconds> result JSON, on a ~14 day result lease
//! /conch/v1/cron/running/<name>                    claim JSON, on the runner's session lease
//! ```
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::cron_view::{fire_prefix, open_claim_sessions, result_prefix, runs, runs_knowing, RunRow};
use crate::keys::{Name, ROOT};
use crate::schedule::{Schedule, ScheduleError};

/// TTL of a claim lease: claims outlive their winner by a day (at most once).
pub const CLAIM_LEASE_TTL: Duration = Duration::from_secs(25 * 3600);
/// A node starts a fresh claim lease this often (live leases per node stay bounded).
pub const CLAIM_LEASE_ROTATE: Duration = Duration::from_secs(3600);
/// TTL of a result lease: run history is kept two weeks.
pub const RESULT_LEASE_TTL: Duration = Duration::from_secs(14 * 86_400);
/// A node starts a fresh result lease this often.
pub const RESULT_LEASE_ROTATE: Duration = Duration::from_secs(86_400);
/// Default cap on one run.
pub const RUN_TTL_DEFAULT: Duration = Duration::from_secs(600);

/// Prefix of every job spec.
pub fn job_prefix() -> String {
    format!("{ROOT}cron/job/")
}

/// A job's spec key.
pub fn job_key(name: &Name) -> String {
    format!("{ROOT}cron/job/{}", name.as_str())
}

/// The claim key of one tick.
pub fn fire_key(name: &str, tick: i64) -> String {
    format!("{ROOT}cron/fire/{name}/{tick}")
}

/// The job and tick of a fire key: the inverse of [`fire_key`].
pub fn fire_key_parts(key: &str) -> Option<(&str, i64)> {
    let (name, tick) = key.strip_prefix(ROOT)?.strip_prefix("cron/fire/")?.split_once('/')?;
    Some((name, tick.parse().ok()?))
}

/// The result key of one tick.
pub fn result_key(name: &str, tick: i64) -> String {
    format!("{ROOT}cron/result/{name}/{tick}")
}

/// The key held while a run of the job lasts (`--overlap skip`).
pub fn running_key(name: &str) -> String {
    format!("{ROOT}cron/running/{name}")
}

/// The tick of a fire or result key.
pub fn tick_of(key: &str) -> Option<i64> {
    key.rsplit('/').next()?.parse().ok()
}

/// What to do when a tick comes while an earlier run still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Do not claim the tick (logged and counted).
    Skip,
    /// Claim every tick.
    Allow,
}

/// The job spec JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Cron expression or descriptor.
    pub schedule: String,
    /// IANA zone.
    #[serde(default = "utc")]
    pub tz: String,
    /// The command.
    pub cmd: Vec<String>,
    /// Cap on one run, human duration.
    #[serde(default = "run_ttl_default")]
    pub run_ttl: String,
    /// Overlap policy.
    #[serde(default = "overlap_default")]
    pub overlap: Overlap,
    /// `user@host` that added it.
    #[serde(default)]
    pub added_by: String,
    /// When, RFC 3339.
    #[serde(default)]
    pub added_at: String,
}

fn utc() -> String {
    "UTC".to_string()
}
fn run_ttl_default() -> String {
    crate::duration::format(RUN_TTL_DEFAULT)
}
fn overlap_default() -> Overlap {
    Overlap::Skip
}

/// A job spec that parsed and whose schedule is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The spec as stored.
    pub spec: JobSpec,
    /// Its schedule.
    pub schedule: Schedule,
    /// Its run cap.
    pub run_ttl: Duration,
}

/// Why a job spec is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The schedule or zone.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The run TTL.
    #[error("--run-ttl: {0}")]
    RunTtl(String),
    /// No command.
    #[error("missing command: put it after --")]
    NoCommand,
    /// Not JSON of a job spec.
    #[error("not a job spec: {0}")]
    Json(String),
}

impl Job {
    /// Checks a spec.
    pub fn new(spec: JobSpec) -> Result<Job, JobError> {
        if spec.cmd.is_empty() {
            return Err(JobError::NoCommand);
        }
        let schedule = Schedule::parse(&spec.schedule, Some(&spec.tz))?;
        let run_ttl = crate::duration::parse(&spec.run_ttl).map_err(|e| JobError::RunTtl(e.to_string()))?;
        if run_ttl.is_zero() {
            return Err(JobError::RunTtl("must be more than 0s".to_string()));
        }
        Ok(Job { spec, schedule, run_ttl })
    }

    /// Reads a stored spec.
    pub fn decode(value: &[u8]) -> Result<Job, JobError> {
        let spec: JobSpec = serde_json::from_slice(value).map_err(|e| JobError::Json(e.to_string()))?;
        Job::new(spec)
    }
}

/// A claim: the winner's holder JSON plus the tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The node that won.
    pub host: String,
    /// Its conchd's pid.
    pub pid: u32,
    /// When that conchd started.
    pub started: String,
    /// The command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// The tick, RFC 3339.
    pub tick: String,
    /// The claimer's session lease (hex): once it is gone, a claim without a result is a
    /// zombie at once (the node died mid-run), not only after `run_ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// A run's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// The node that ran it.
    pub node: String,
    /// Exit code (128+n for signal n).
    pub exit: i32,
    /// `exited`, `signaled`, `lost` or `timeout`.
    pub outcome: String,
    /// When the run started, RFC 3339 with milliseconds.
    pub started: String,
    /// How long it ran, like `4.2s`.
    pub duration: String,
    /// The tick, RFC 3339.
    pub tick: String,
    /// The claim's revision (the run's fencing token).
    pub rev: i64,
}

/// RFC 3339 (UTC, seconds) of a Unix time.
pub fn rfc3339(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map_or_else(|| unix_s.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// RFC 3339 (UTC, milliseconds) of a Unix time in ms.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map_or_else(|| unix_ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A duration as results print it: `4.2s`, `350ms`, `12m3s`.
pub fn short_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        crate::duration::format(Duration::from_secs(d.as_secs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ticks() {
        assert_eq!(fire_key("backup", 1_700_000_000), "/conch/v1/cron/fire/backup/1700000000");
        assert_eq!(tick_of("/conch/v1/cron/result/backup/1700000000"), Some(1_700_000_000));
        assert_eq!(fire_key_parts(&fire_key("backup", 1_700_000_000)), Some(("backup", 1_700_000_000)));
        assert_eq!(fire_key_parts("/conch/v1/cron/result/backup/1700000000"), None);
        assert_eq!(fire_key_parts("/conch/v1/cron/fire/backup/x"), None);
        assert_eq!(running_key("backup"), "/conch/v1/cron/running/backup");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(short_duration(Duration::from_millis(4200)), "4.2s");
    }

    #[test]
    fn job_specs_round_trip_and_refuse_bad_ones() {
        let spec = JobSpec {
            schedule: "*/15 * * * *".into(),
            tz: "Europe/Berlin".into(),
            cmd: vec!["restic".into(), "backup".into()],
            run_ttl: "10m".into(),
            overlap: Overlap::Skip,
            added_by: "root@host1".into(),
            added_at: "2026-06-12T10:15:00Z".into(),
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"schedule":"*/15 * * * *","tz":"Europe/Berlin","cmd":["restic","backup"],"run_ttl":"10m","overlap":"skip","added_by":"root@host1","added_at":"2026-06-12T10:15:00Z"}"#
        );
        assert_eq!(Job::decode(json.as_bytes()).unwrap().spec, spec);
        assert!(Job::decode(br#"{"schedule":"@reboot","cmd":["x"]}"#).is_err());
        assert!(Job::decode(br#"{"schedule":"* * * * *","cmd":[]}"#).is_err());
        assert!(Job::decode(b"junk").is_err());
        let minimal = Job::decode(br#"{"schedule":"@every 1s","cmd":["true"]}"#).unwrap();
        assert_eq!((minimal.spec.overlap, minimal.run_ttl), (Overlap::Skip, RUN_TTL_DEFAULT));
    }
}
