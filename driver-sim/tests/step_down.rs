//! Step-down requests in the simulator (`--step-downs`): the office's leader is asked to
//! hand over every few seconds under faults; every guarantee holds, and an asked leader
//! stops its child within the kill grace.
use conch_driver_sim::options::{Scenario, SimArgs};
use conch_driver_sim::run::run_seed;

#[test]
fn asked_leaders_hand_over_and_every_guarantee_holds() {
    let mut asked = 0;
    for scenario in [Scenario::Elect, Scenario::Mixed] {
        for seed in 1..=10 {
            let args = SimArgs { step_downs: true, fenced_writes: seed % 2 == 0, ..SimArgs::new(scenario) };
            let report = run_seed(seed, &args);
            assert!(report.passed(), "{} seed {seed}: {:?}", scenario.as_str(), report.violations);
            let o = &report.outcome;
            asked += o.step_downs.iter().filter(|s| s.client.is_some()).count();
            // A leader asked with no fault around it ended its child well within the grace.
            for s in o.step_downs.iter().filter(|s| s.client.is_some()) {
                let ended = o.intervals.iter().any(|iv| Some(iv.client) == s.client && iv.rev == s.token);
                assert!(ended, "seed {seed}: the child of token {} never ended", s.token);
            }
        }
    }
    assert!(asked > 50, "only {asked} step-downs reached a running leader");
}
