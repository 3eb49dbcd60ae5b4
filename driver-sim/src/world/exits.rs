//! What a wrapper's exit code must be explained by, for the `exit-codes` checker
//! ([`crate::check_exit`]): per incarnation, when it started, whether it was one-shot
//! and with which `--wait`, whether the shutdown's SIGTERM reached it, whether it lost a
//! hold it had acquired, whether a fault SIGKILLed its child, and why it began each
//! further cycle (the service's `backoff` log).
use std::collections::{BTreeMap, BTreeSet};

use super::World;
use crate::record::ExitRecord;

/// Per incarnation `(client, incarnation)`.
#[derive(Debug, Default)]
pub(super) struct Runs {
    /// Started at (ns), one-shot, `--wait` (ns).
    started: BTreeMap<(usize, u64), (u64, bool, Option<u64>)>,
    signalled: BTreeSet<(usize, u64)>,
    lost_holding: BTreeSet<(usize, u64)>,
    child_killed: BTreeSet<(usize, u64)>,
    cycles: BTreeMap<(usize, u64), Vec<String>>,
}

impl World {
    /// Client `i`'s wrapper starts now (`one_shot`: without `--restart`).
    pub(super) fn run_started(&mut self, i: usize, one_shot: bool, wait_ns: Option<u64>) {
        let inc = self.clients[i].incarnation;
        self.runs.started.insert((i, inc), (self.now, one_shot, wait_ns));
    }

    /// The shutdown's SIGTERM reaches client `i`'s running wrapper.
    pub(super) fn run_signalled(&mut self, i: usize) {
        if self.clients[i].machine.is_some() {
            self.runs.signalled.insert((i, self.clients[i].incarnation));
        }
    }

    /// Client `i` lost a hold it had acquired.
    pub(super) fn run_lost_holding(&mut self, i: usize) {
        self.runs.lost_holding.insert((i, self.clients[i].incarnation));
    }

    /// A fault SIGKILLed client `i`'s child.
    pub(super) fn run_child_killed(&mut self, i: usize) {
        self.runs.child_killed.insert((i, self.clients[i].incarnation));
    }

    /// Client `i`'s service logged a `backoff` before another cycle, for `why`.
    pub(super) fn run_cycle_again(&mut self, i: usize, event: &conch_core::Event) {
        let why = event.field("why").unwrap_or_default().to_string();
        self.runs.cycles.entry((i, self.clients[i].incarnation)).or_default().push(why);
    }

    /// Client `i`'s wrapper exits with `code` now.
    pub(super) fn run_exited(&mut self, i: usize, code: i32) {
        let key = (i, self.clients[i].incarnation);
        let Some(&(started, one_shot, wait)) = self.runs.started.get(&key) else { return };
        self.out.exits.push(ExitRecord {
            client: i,
            at: self.now,
            code,
            started,
            one_shot,
            wait,
            signalled: self.runs.signalled.contains(&key),
            lost_holding: self.runs.lost_holding.contains(&key),
            child_killed: self.runs.child_killed.contains(&key),
            cycles_again: self.runs.cycles.remove(&key).unwrap_or_default(),
        });
    }
}
