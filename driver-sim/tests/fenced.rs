//! Guarded writes in the simulator (`--fenced-writes`): holders' children write under
//! every fault, deposed holders' writes are refused, and no write lands from a holder
//! that no longer holds.
use conch_driver_sim::options::{Scenario, SimArgs};
use conch_driver_sim::run::run_seed;

#[test]
fn deposed_holders_writes_never_land_and_holders_writes_always_do() {
    let (mut landed, mut refused) = (0, 0);
    for scenario in [Scenario::Elect, Scenario::Sema, Scenario::Mixed] {
        for seed in 1..=8 {
            let args = SimArgs { fenced_writes: true, ..SimArgs::new(scenario) };
            let report = run_seed(seed, &args);
            assert!(report.passed(), "{} seed {seed}: {:?}", scenario.as_str(), report.violations);
            landed += report.outcome.fenced.iter().filter(|w| w.landed).count();
            refused += report.outcome.fenced.iter().filter(|w| !w.landed).count();
        }
    }
    assert!(landed > 1000, "only {landed} writes landed");
    // Deposed holders (key deleted, lease revoked, a slow write arriving after a handover)
    // really wrote, and were refused.
    assert!(refused > 20, "only {refused} writes were refused: the scenario never deposed a writer");
}

#[test]
fn without_the_flag_a_seed_runs_exactly_as_before() {
    let plain = run_seed(3, &SimArgs { trace: true, ..SimArgs::new(Scenario::Mixed) });
    assert!(plain.outcome.fenced.is_empty());
    assert!(!plain.outcome.trace.iter().any(|l| l.contains("fenced-write")));
}
