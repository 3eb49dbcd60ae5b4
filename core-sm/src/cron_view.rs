//! Views of the cron history for `conch cron ls|results|status` (`bin/src/cron.rs`) and
//! the status API (`driver-etcd/src/status.rs`): a job's claims and results joined into
//! runs. No rule of conchd reads them, so they live apart from the safety rules:
//! `scripts/mutants.sh` does not mutate this file (the simulator runs neither the CLI nor
//! the status API; bin's cron tests and `tests/tests/cron_conchd.rs` read it).
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::cron::{tick_of, Claim, RunResult};
use crate::keys::ROOT;

/// Prefix of a job's claims.
pub fn fire_prefix(name: &str) -> String {
    format!("{ROOT}cron/fire/{name}/")
}

/// Prefix of a job's results.
pub fn result_prefix(name: &str) -> String {
    format!("{ROOT}cron/result/{name}/")
}

/// One row of `cron ls` / one entry of `cron results`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunRow {
    /// The tick (Unix seconds).
    pub tick: i64,
    /// The node that claimed it.
    pub node: String,
    /// `exited`, `signaled`, `lost`, `timeout`, `running` (claimed, within run_ttl) or
    /// `zombie` (claimed, no result after run_ttl: the node died mid-run).
    pub outcome: String,
    /// Exit code, if known.
    pub exit: Option<i32>,
    /// Duration, if known.
    pub duration: Option<String>,
    /// The claim's revision.
    pub rev: i64,
}

/// Joins a job's claims (fire keys) and results into runs, newest first. `now_s` and
/// `run_ttl` decide between `running` and `zombie` for a claim without a result.
pub fn runs(fires: &[crate::etcd::Kv], results: &[crate::etcd::Kv], run_ttl: Duration, now_s: i64) -> Vec<RunRow> {
    runs_knowing(fires, results, run_ttl, now_s, &|_| false)
}

/// The sessions (lease hex) of claims that have no result yet: the caller asks etcd which
/// are gone, for [`runs_knowing`].
pub fn open_claim_sessions(fires: &[crate::etcd::Kv], results: &[crate::etcd::Kv]) -> Vec<String> {
    let done: std::collections::BTreeSet<i64> = results.iter().filter_map(|kv| tick_of(&kv.key)).collect();
    let mut sessions: Vec<String> = fires
        .iter()
        .filter(|kv| tick_of(&kv.key).is_some_and(|t| !done.contains(&t)))
        .filter_map(|kv| serde_json::from_slice::<Claim>(&kv.value).ok()?.session)
        .collect();
    sessions.sort();
    sessions.dedup();
    sessions
}

/// [`runs`], where a claim without a result whose claimer's session `gone` says is gone is
/// a zombie at once.
pub fn runs_knowing(
    fires: &[crate::etcd::Kv],
    results: &[crate::etcd::Kv],
    run_ttl: Duration,
    now_s: i64,
    gone: &dyn Fn(&str) -> bool,
) -> Vec<RunRow> {
    let mut by_tick: BTreeMap<i64, RunRow> = BTreeMap::new();
    for kv in fires {
        let Some(tick) = tick_of(&kv.key) else { continue };
        let claim = serde_json::from_slice::<Claim>(&kv.value).ok();
        let node = claim.as_ref().map_or_else(|| "?".to_string(), |c| c.host.clone());
        let dead = claim.and_then(|c| c.session).is_some_and(|s| gone(&s));
        let outcome = if dead || now_s > tick + run_ttl.as_secs() as i64 { "zombie" } else { "running" };
        by_tick.insert(
            tick,
            RunRow { tick, node, outcome: outcome.to_string(), exit: None, duration: None, rev: kv.create_rev.0 },
        );
    }
    for kv in results {
        let (Some(tick), Ok(r)) = (tick_of(&kv.key), serde_json::from_slice::<RunResult>(&kv.value)) else { continue };
        by_tick.insert(
            tick,
            RunRow {
                tick,
                node: r.node,
                outcome: r.outcome,
                exit: Some(r.exit),
                duration: Some(r.duration),
                rev: r.rev,
            },
        );
    }
    by_tick.into_values().rev().collect()
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::cron::{fire_key, result_key, rfc3339};
    use crate::etcd::Kv;
    use crate::ids::{LeaseId, Revision};

    fn kv(key: String, value: String, rev: i64) -> Kv {
        Kv { key, create_rev: Revision(rev), mod_rev: Revision(rev), lease: LeaseId(1), value: value.into_bytes() }
    }

    #[test]
    fn claims_without_results_are_running_then_zombies() {
        let claim = |t| {
            serde_json::to_string(&Claim {
                host: "n1".into(),
                pid: 1,
                started: "s".into(),
                cmd: None,
                session: None,
                tick: rfc3339(t),
            })
            .unwrap()
        };
        let result = serde_json::to_string(&RunResult {
            node: "n2".into(),
            exit: 0,
            outcome: "exited".into(),
            started: "s".into(),
            duration: "1.0s".into(),
            tick: rfc3339(100),
            rev: 7,
        })
        .unwrap();
        let fires = vec![
            kv(fire_key("j", 100), claim(100), 7),
            kv(fire_key("j", 200), claim(200), 9),
            kv(fire_key("j", 300), claim(300), 11),
        ];
        let results = vec![kv(result_key("j", 100), result, 8)];
        let rows = runs(&fires, &results, Duration::from_secs(60), 320);
        let outcomes: Vec<(i64, &str)> = rows.iter().map(|r| (r.tick, r.outcome.as_str())).collect();
        assert_eq!(outcomes, vec![(300, "running"), (200, "zombie"), (100, "exited")]);
        assert_eq!(rows[2].node, "n2");
        assert_eq!(rows[1].exit, None);
    }
}
