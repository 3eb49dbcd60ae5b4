//! The test command of `scripts/mutants.sh`: the simulator alone, what `conch sim` runs
//! (`run_seed` with the scenario's defaults), over a fixed seed set of each scenario.
//! A mutant of `core-sm` is killed when any seed fails. No unit test takes part, so the
//! mutation score measures the simulator.
//!
//! Sema runs a second time as a restart soak (`--duration 5m --faults none --hold
//! 20s..90s`): services that restart many times with children that outlive the crash
//! backoff's reset, which faults seldom leave alone for a minute (`restart-pacing`).
//!
//! `CONCH_MUTANTS_SEEDS` (default 8): seeds 1..=N of each scenario;
//! `CONCH_MUTANTS_SCENARIOS` (default all): a comma-separated subset of
//! `elect,sema,cron,mixed`. Stops at the first failing seed and names it.
use std::time::Duration;

use conch_driver_sim::options::{Scenario, SimArgs};
use conch_driver_sim::run::run_seed;

const ALL: [Scenario; 4] = [Scenario::Elect, Scenario::Sema, Scenario::Cron, Scenario::Mixed];

fn scenarios() -> Vec<Scenario> {
    match std::env::var("CONCH_MUTANTS_SCENARIOS") {
        Ok(list) if !list.trim().is_empty() => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            ALL.into_iter().filter(|s| wanted.contains(&s.as_str())).collect()
        }
        _ => ALL.to_vec(),
    }
}

fn seeds() -> u64 {
    std::env::var("CONCH_MUTANTS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8)
}

#[test]
fn the_simulator_passes_the_fixed_seed_set() {
    let scenarios = scenarios();
    assert!(!scenarios.is_empty(), "CONCH_MUTANTS_SCENARIOS names no scenario");
    // Elect and mixed run a second time with priorities drawn, so the priority rule's
    // mutants meet the priority checker; sema a second time as the restart soak.
    let runs = scenarios.into_iter().flat_map(|scenario| {
        let prio = matches!(scenario, Scenario::Elect | Scenario::Mixed);
        let with = prio.then_some(SimArgs { priorities: true, ..SimArgs::new(scenario) });
        let soak = (scenario == Scenario::Sema).then_some(SimArgs {
            duration: Duration::from_secs(300),
            faults: Some(Vec::new()),
            hold: Some((Duration::from_secs(20), Duration::from_secs(90))),
            ..SimArgs::new(scenario)
        });
        std::iter::once(SimArgs::new(scenario)).chain(with).chain(soak)
    });
    for args in runs {
        let scenario = args.scenario;
        for seed in 1..=seeds() {
            // A mutant may panic inside the core; that kills it just as a violation does.
            let report = run_seed(seed, &args);
            assert!(
                report.passed(),
                "conch sim {} --seed {seed}{}{}: {:?}",
                scenario.as_str(),
                if args.priorities { " --priorities" } else { "" },
                if args.hold.is_some() { " --duration 5m --faults none --hold 20s..90s" } else { "" },
                report.violations.iter().map(|v| v.checker.to_string()).collect::<Vec<_>>()
            );
        }
    }
}
