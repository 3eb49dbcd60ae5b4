//! Swarm honesty: what one seed exercised (fault kinds and sites that fired, losses,
//! handoffs, queue depth, ticks, skips for overlap) and, over a sweep, how many seeds
//! exercised each guarantee — so a sweep that never exercised a rule shows it.
use std::collections::BTreeMap;

use crate::record::{Group, Outcome};

/// What one seed exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Fault kinds that fired (record kind → count); sites under `site:<name>`.
    pub fired: BTreeMap<String, u64>,
    /// Holds given up as lost, by reason.
    pub losses: BTreeMap<String, u64>,
    /// Holder child starts after the first of their contest.
    pub handoffs: u64,
    /// Most keys in a holder's contest when a child started, less its capacity (waiters).
    pub deepest_queue: u64,
    /// Cron ticks won.
    pub ticks: u64,
    /// Cron ticks refused for overlap (a running key was there).
    pub overlaps_refused: u64,
    /// Client endpoint switches.
    pub failovers: u64,
}

impl Coverage {
    /// The coverage of `outcome`.
    pub fn of(outcome: &Outcome) -> Coverage {
        let mut c = Coverage { failovers: outcome.failovers, ..Coverage::default() };
        for f in &outcome.faults {
            *c.fired.entry(f.kind.to_string()).or_insert(0) += 1;
        }
        for l in &outcome.losses {
            *c.losses.entry(l.reason.clone()).or_insert(0) += 1;
        }
        for group in [Group::Office, Group::Sema] {
            let starts = outcome.promotions.iter().filter(|p| p.group == group).count() as u64;
            c.handoffs += starts.saturating_sub(1);
        }
        c.deepest_queue = outcome
            .promotions
            .iter()
            .map(|p| (p.queued as u64).saturating_sub(outcome.opts.capacity(p.group) as u64))
            .max()
            .unwrap_or(0);
        c.ticks = outcome.claims.iter().filter(|x| x.won).count() as u64;
        c.overlaps_refused = outcome.claims.iter().filter(|x| !x.won).count() as u64;
        c
    }

    /// The guarantees this seed exercised, by checker name.
    pub fn exercised(&self, outcome: &Outcome) -> Vec<&'static str> {
        let faults = self.fired.keys().any(|k| !k.starts_with("site:"));
        let daemons = outcome.opts.daemons;
        let lone_late = daemons == 1 && ["pause", "freeze"].iter().any(|k| self.fired.contains_key(*k));
        let skip_jobs = outcome.opts.jobs.iter().any(|j| j.skip_overlap);
        [
            ("bounded-holders", self.handoffs > 0 && faults),
            ("fencing", self.handoffs > 0),
            ("fifo", self.deepest_queue > 0),
            ("fifo-deep-queue", self.deepest_queue > 1),
            ("convergence", outcome.opts.office_clients + outcome.opts.sema_clients > 0),
            ("cron-at-most-once", self.ticks > 0 && daemons > 1),
            ("cron-skip-overlap", skip_jobs && self.overlaps_refused > 0),
            ("cron-late-tick", self.ticks > 0 && lone_late),
            ("failover", self.failovers > 0),
            ("key-unconfirmed", self.losses.contains_key("key-unconfirmed")),
            ("preempt", !outcome.preempts.is_empty()),
            ("preempt-handover", outcome.preempts.iter().any(|p| crate::check_preempt::judged(outcome, p))),
            ("no-leaks", true),
            // A watcher printed a change of holders (more than its first line).
            ("watch", outcome.watch_prints.iter().filter(|p| p.watcher == 0).nth(1).is_some()),
            ("cron-history", self.ticks > 0),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name)
        .collect()
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let map = |m: &BTreeMap<String, u64>| {
            let parts: Vec<String> = m.iter().map(|(k, n)| format!("{}:{n}", json_string(k))).collect();
            format!("{{{}}}", parts.join(","))
        };
        format!(
            "{{\"fired\":{},\"losses\":{},\"handoffs\":{},\"deepest_queue\":{},\"ticks\":{},\"overlaps_refused\":{},\"failovers\":{}}}",
            map(&self.fired),
            map(&self.losses),
            self.handoffs,
            self.deepest_queue,
            self.ticks,
            self.overlaps_refused,
            self.failovers
        )
    }
}

/// How many seeds of a sweep exercised each guarantee.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    /// Seeds counted.
    pub seeds: u64,
    /// Checker name → seeds that exercised it.
    pub exercised: BTreeMap<&'static str, u64>,
}

impl Sweep {
    /// Counts one seed.
    pub fn add(&mut self, outcome: &Outcome) {
        self.seeds += 1;
        for name in Coverage::of(outcome).exercised(outcome) {
            *self.exercised.entry(name).or_insert(0) += 1;
        }
    }

    /// `name seeds/total` for every guarantee, the never-exercised ones too.
    pub fn line(&self) -> String {
        let names = [
            "bounded-holders",
            "fencing",
            "fifo",
            "fifo-deep-queue",
            "convergence",
            "cron-at-most-once",
            "cron-skip-overlap",
            "cron-late-tick",
            "failover",
            "key-unconfirmed",
            "preempt",
            "preempt-handover",
            "no-leaks",
            "watch",
            "cron-history",
        ];
        let parts: Vec<String> = names
            .iter()
            .map(|n| format!("{n} {}/{}", self.exercised.get(n).copied().unwrap_or(0), self.seeds))
            .collect();
        parts.join(", ")
    }

    /// One JSON object (checker → seeds).
    pub fn json(&self) -> String {
        let parts: Vec<String> = self.exercised.iter().map(|(k, n)| format!("{}:{n}", json_string(k))).collect();
        format!("{{{}}}", parts.join(","))
    }
}

fn json_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
