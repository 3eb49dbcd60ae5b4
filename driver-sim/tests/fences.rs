//! The simulator's `--fence`: hooks really run (ok, failed and overrun fences), a clean
//! core passes the fence checkers, and each fence checker fires on a run whose records
//! were broken the way its bug would break them (the core mutants are in README).
use std::time::Duration;

use conch_driver_sim::check::check;
use conch_driver_sim::options::{Scenario, SimArgs};
use conch_driver_sim::record::{HookRecord, Interval, Outcome};
use conch_driver_sim::run::run_seed;

fn fenced(scenario: Scenario) -> SimArgs {
    SimArgs { fence_budget: Some(Duration::from_millis(300)), ..SimArgs::new(scenario) }
}

fn fences(o: &Outcome) -> Vec<&HookRecord> {
    o.hooks.iter().filter(|h| h.kind == "fence").collect()
}

/// The first seed (of a few) with a fence of `status` whose run's code is known, after a
/// clean run, with that fence's index.
fn clean_run_with(status: &str) -> (Outcome, usize) {
    for seed in 1..=40 {
        let report = run_seed(seed, &fenced(Scenario::Elect));
        assert!(report.passed(), "elect seed {seed} with fences: {:?}", report.violations);
        let k =
            report.outcome.hooks.iter().position(|h| h.kind == "fence" && h.status == status && h.run_exit.is_some());
        if let Some(k) = k {
            return (report.outcome, k);
        }
    }
    panic!("no fence ended with {status} in elect seeds 1..=40");
}

fn fires(o: &Outcome, checker: &str) -> bool {
    check(o).iter().any(|v| v.checker == checker)
}

/// A child of `client` that ran from `start` to `end` (ns).
fn child(client: usize, rev: i64, start: u64, end: u64) -> Interval {
    Interval { client, rev, pid: 0, start, end: Some(end), tick: None, signalled: false }
}

#[test]
fn hooks_run_and_a_clean_core_passes() {
    let mut statuses = std::collections::BTreeSet::new();
    for scenario in [Scenario::Elect, Scenario::Sema] {
        for seed in 1..=15 {
            let report = run_seed(seed, &fenced(scenario));
            assert!(report.passed(), "{} seed {seed}: {:?}", scenario.as_str(), report.violations);
            statuses.extend(fences(&report.outcome).iter().map(|f| f.status.clone()));
        }
    }
    for want in ["exit 0", "exit 1", "signal 9"] {
        assert!(statuses.contains(want), "no fence ended with {want}: {statuses:?}");
    }
}

#[test]
fn seeds_without_hooks_record_none() {
    let report = run_seed(3, &SimArgs { fence_budget: Some(Duration::ZERO), ..SimArgs::new(Scenario::Elect) });
    assert!(report.outcome.opts.hooks.is_none() && report.outcome.hooks.is_empty());
    let mixed = run_seed(3, &SimArgs::new(Scenario::Mixed));
    assert!(mixed.outcome.opts.hooks.is_none(), "mixed draws no hooks unless asked");
}

#[test]
fn a_fence_beside_its_own_child_is_caught() {
    let (mut o, k) = clean_run_with("exit 0");
    o.faults.clear();
    let f = o.hooks[k].clone();
    o.intervals.push(child(f.client, f.rev, f.start - 1, f.start + 1));
    assert!(fires(&o, "fence-after-child"));
}

#[test]
fn a_successor_during_a_fence_is_caught() {
    let (mut o, k) = clean_run_with("exit 0");
    o.faults.clear();
    let f = o.hooks[k].clone();
    let other = (f.client + 1) % o.opts.office_clients;
    // Only the fence's own holder and the successor, so no other overlap fills the
    // checker's report.
    o.intervals.retain(|iv| iv.client == f.client && iv.end.is_some_and(|e| e <= f.start));
    o.hooks.retain(|h| h.start == f.start && h.client == f.client);
    let k = 0;
    // `other` is an office client, as the fence's holder is.
    o.intervals.push(child(other, f.rev + 1_000_000, f.start + 1, f.end + 1));
    assert!(f.end > f.start + 2, "the fence ran for no time");
    let overlaps = |o: &Outcome| check(o).iter().filter(|v| v.checker == "bounded-holders").count();
    let with_fence = overlaps(&o);
    // ... because the fence counts as a hold.
    o.hooks.remove(k);
    let without = overlaps(&o);
    assert!(with_fence > without, "the overlap with the fence went unseen: {with_fence} vs {without}");
}

#[test]
fn a_fence_past_its_lease_is_caught() {
    let (mut o, k) = clean_run_with("exit 0");
    o.faults.clear();
    let f = &mut o.hooks[k];
    f.end = f.start + 10_000_000;
    f.lease_expired = Some(f.start + 1_000_000);
    assert!(fires(&o, "fence-in-lease"));
    // Started after the expiry and killed at once is right.
    let f = &mut o.hooks[k];
    f.end = f.start;
    f.lease_expired = Some(f.start - 1_000_000);
    assert!(!fires(&o, "fence-in-lease"));
}

#[test]
fn a_fence_cut_short_is_caught() {
    let (mut o, k) = clean_run_with("signal 9");
    o.faults.clear();
    let f = &mut o.hooks[k];
    (f.end, f.ok, f.run_exit) = (f.start + 1_000_000, false, Some(71));
    assert!(fires(&o, "fence-budget"));
}

#[test]
fn wrong_exit_codes_and_a_resign_after_a_failed_fence_are_caught() {
    let (mut o, k) = clean_run_with("exit 0");
    o.faults.clear();
    o.hooks[k].run_exit = Some(71);
    assert!(fires(&o, "fence-exit"));
    let (mut o, k) = clean_run_with("exit 1");
    o.faults.clear();
    assert_eq!(o.hooks[k].run_exit, Some(71), "a failed fence's run ends 71");
    o.hooks[k].writes_after.push("delete /x".into());
    assert!(fires(&o, "fence-exit"));
}

#[test]
fn the_seeds_that_caught_the_fence_mutants_pass() {
    // README, "Hooks and --fence in the simulator": each seed made a core mutant fail.
    for (scenario, seed) in
        [(Scenario::Elect, 6), (Scenario::Elect, 2), (Scenario::Elect, 5), (Scenario::Sema, 16), (Scenario::Sema, 6)]
    {
        let report = run_seed(seed, &SimArgs::new(scenario));
        assert!(report.outcome.opts.hooks.is_some(), "{} seed {seed} draws no fence now", scenario.as_str());
        assert!(report.passed(), "{} seed {seed}: {:?}", scenario.as_str(), report.violations);
    }
}
