//! conchd's view for the status API (`/metrics`, `/healthz`, `driver-etcd/src/status.rs`):
//! the counters and the session's health. No rule of the daemon reads them, so they live
//! apart from the safety rules: `scripts/mutants.sh` does not mutate this file (the
//! simulator does not run the status API; `tests/tests/cron_conchd.rs` reads it).
use std::collections::VecDeque;

use super::*;

/// Counters for `/metrics` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ticks this node claimed.
    pub claimed: u64,
    /// Ticks another node claimed first.
    pub lost: u64,
    /// Ticks skipped because they were reached too late.
    pub skipped_late: u64,
    /// Ticks skipped because an earlier run still ran (`--overlap skip`).
    pub skipped_overlap: u64,
    /// Ticks skipped because this node had no session.
    pub skipped_no_session: u64,
    /// Finished runs by outcome.
    pub runs: BTreeMap<&'static str, u64>,
    /// Finished runs by job and outcome (the status API's `job` label).
    pub runs_by_job: BTreeMap<(String, &'static str), u64>,
    /// When each job last exited 0 here (Unix s), for "has not succeeded in 25 h" alerts.
    pub last_success_s: BTreeMap<String, i64>,
    /// The newest finished runs (bounded: [`RECENT_RUNS_MAX`]), so an observer moves its
    /// metrics by what finished since its last look, not by a walk of every job.
    pub recent: VecDeque<FinishedRun>,
    /// Runs finished so far (the newest `recent` entries are the latest of these).
    pub runs_finished: u64,
}

/// How many finished runs [`Stats::recent`] keeps.
pub const RECENT_RUNS_MAX: usize = 1000;

/// One finished run, as the metrics see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedRun {
    /// The job.
    pub job: String,
    /// How it ended (`exited`, `signaled`, `lost`, `timeout`, …).
    pub outcome: &'static str,
    /// How long it ran, in ms.
    pub ms: u64,
    /// When it exited 0 (Unix s), if it did.
    pub ok_at_s: Option<i64>,
}

impl Stats {
    /// A tick this node claimed.
    pub(super) fn note_claimed(&mut self) {
        self.claimed += 1;
    }

    /// A tick another node claimed first.
    pub(super) fn note_lost(&mut self) {
        self.lost += 1;
    }

    /// A tick reached too late.
    pub(super) fn note_skipped_late(&mut self) {
        self.skipped_late += 1;
    }

    /// A tick skipped because an earlier run still ran.
    pub(super) fn note_skipped_overlap(&mut self) {
        self.skipped_overlap += 1;
    }

    /// A tick skipped for want of a session.
    pub(super) fn note_skipped_no_session(&mut self) {
        self.skipped_no_session += 1;
    }

    /// A run of `job` that ran for `ran` and ended as `outcome` with `exit`, at `wall_ms`.
    pub(super) fn note_run(&mut self, job: &str, outcome: &'static str, ran: Duration, exit: i32, wall_ms: i64) {
        *self.runs.entry(outcome).or_insert(0) += 1;
        *self.runs_by_job.entry((job.to_string(), outcome)).or_insert(0) += 1;
        let ok_at_s = (exit == 0).then(|| wall_ms.div_euclid(1000));
        if let Some(at) = ok_at_s {
            self.last_success_s.insert(job.to_string(), at);
        }
        if self.recent.len() >= RECENT_RUNS_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(FinishedRun { job: job.to_string(), outcome, ms: ran.as_millis() as u64, ok_at_s });
        self.runs_finished += 1;
    }
}

impl Conchd {
    /// Whether the session lease is alive.
    pub fn healthy(&self) -> bool {
        self.session_up
    }

    /// Keepalive round trips of the session: (acknowledged so far, latest).
    pub fn round_trips(&self) -> (u64, Duration) {
        self.session.round_trips()
    }
}
