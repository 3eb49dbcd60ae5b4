//! The functional tester, shaped like etcd's: a 3-member cluster on loopback
//! ([`crate::cluster`]), stressers running the real `conch` ([`stressers`]), failure
//! cases with Inject / Recover / Desc ([`cases`]), checkers after every round
//! ([`checkers`]), and the round loop with its report ([`rounds`], [`report`]).
//!
//! One seed picks the case order, every timing and every target: `--seed N` replays a
//! run (the faults; what conch does under them is the real system's).
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::{Cluster, Timings};

pub mod cases;
pub mod checkers;
pub mod report;
pub mod rounds;
pub mod stressers;

/// Session TTL of every conch the stressers run.
pub const TTL: Duration = Duration::from_secs(5);
/// Their `--kill-after`.
pub const KILL_AFTER: Duration = Duration::from_secs(1);

/// One run of the tester.
#[derive(Clone, Debug)]
pub struct Config {
    /// Picks the case order, the timings and the targets.
    pub seed: u64,
    /// The cases, each run `rounds` times.
    pub cases: Vec<cases::CaseKind>,
    /// How many times each case runs.
    pub rounds: usize,
    /// The `conch` binary under test.
    pub conch: PathBuf,
    /// The `holdlog` child.
    pub holdlog: PathBuf,
    /// etcd's raft timings.
    pub timings: Timings,
    /// Keep the logs (interval logs, each conch's stderr) and print where they are.
    pub keep: bool,
}

/// What a round loop works on: the cluster, the stressers, where their logs are.
pub struct World {
    /// The etcd cluster.
    pub cluster: Cluster,
    /// The conch processes.
    pub stressers: stressers::Stressers,
    /// Their files.
    pub paths: stressers::Paths,
}
