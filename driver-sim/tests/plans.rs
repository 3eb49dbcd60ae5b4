//! Property tests over fault plans: any plan keeps every guarantee, and a failure shrinks
//! to a small plan (shown with a deliberately broken shim).
use conch_core::Sabotage;
use conch_driver_sim::options::{FaultKind, Scenario, SimArgs, SimOptions};
use conch_driver_sim::plan::PlannedFault;
use conch_driver_sim::run::run_plan;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

fn fault() -> impl Strategy<Value = PlannedFault> {
    (1_500u64..60_000, 0..FaultKind::ALL.len(), 0usize..8, 50u64..12_000, any::<u64>()).prop_map(
        |(at_ms, kind, target, hold_ms, param)| PlannedFault {
            at_ms,
            kind: FaultKind::ALL[kind],
            target,
            hold_ms,
            param,
        },
    )
}

fn plan() -> impl Strategy<Value = Vec<PlannedFault>> {
    prop::collection::vec(fault(), 0..40).prop_map(|mut p| {
        p.sort_by_key(|f| f.at_ms);
        p
    })
}

fn opts(scenario: Scenario, seed: u64, sabotage: Sabotage) -> SimOptions {
    let mut o = SimOptions::draw(seed, &SimArgs { sabotage, ..SimArgs::new(scenario) });
    o.faults = FaultKind::ALL.to_vec();
    o
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_fault_plan_keeps_every_guarantee(seed in 1u64..1_000_000, plan in plan(), mixed in any::<bool>()) {
        let scenario = if mixed { Scenario::Mixed } else { Scenario::Sema };
        let report = run_plan(opts(scenario, seed, Sabotage::None), plan);
        prop_assert!(report.passed(), "{:?}", report.violations);
    }
}

/// With a shim that ignores its deadlines, proptest finds a failing plan and shrinks it to
/// a handful of faults: what a person needs to see the bug.
#[test]
fn a_failure_shrinks_to_a_small_plan() {
    let config = Config { cases: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let broken = opts(Scenario::Elect, 3, Sabotage::IgnoreDeadlines);
    let pauses = prop::collection::vec(fault(), 1..40).prop_map(|mut p| {
        for f in p.iter_mut() {
            f.kind = FaultKind::Pause;
        }
        p.sort_by_key(|f| f.at_ms);
        p
    });
    let result = runner.run(&pauses, |plan| {
        let report = run_plan(broken.clone(), plan);
        if report.caught_by("bounded-holders") {
            Err(TestCaseError::fail("overlap"))
        } else {
            Ok(())
        }
    });
    match result {
        Err(proptest::test_runner::TestError::Fail(_, minimal)) => {
            eprintln!("minimal plan: {minimal:?}");
            assert!(minimal.len() <= 5, "shrunk only to {} faults: {minimal:?}", minimal.len());
        }
        other => panic!("no failing plan found: {other:?}"),
    }
}
