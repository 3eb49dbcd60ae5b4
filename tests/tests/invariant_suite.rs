//! The invariant suite on fixed seeds (a soak runs more: `scripts/invariant.sh --soak`),
//! and proof that its checkers can fail: a conch built with the shim's deadline
//! enforcement switched off is caught.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::Duration;

use conch_tests::conch_bin;
use conch_tests::invariant::{run, FaultKind, Scenario};

fn holdlog() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_holdlog"))
}

fn assert_held(s: &Scenario) {
    let report = run(s);
    println!(
        "seed {}: intervals={} faults={:?} largest-overlap-ms={:?}",
        s.seed, report.intervals, report.faults, report.overlap_ms
    );
    assert!(
        report.violations.is_empty(),
        "seed {} (replay: scripts/invariant.sh --seed {} --clients {} --max {}): {:#?}",
        s.seed,
        s.seed,
        s.clients,
        s.max,
        report.violations
    );
    assert!(report.intervals >= 5, "too few holds to mean anything: {}", report.intervals);
}

#[test]
fn elect_under_every_fault_seed_11() {
    assert_held(&Scenario::new(11, 3, 1, Duration::from_secs(20), conch_bin(), holdlog()));
}

#[test]
fn sema_of_two_under_every_fault_seed_12() {
    assert_held(&Scenario::new(12, 4, 2, Duration::from_secs(20), conch_bin(), holdlog()));
}

#[test]
fn elect_under_every_fault_seed_13() {
    assert_held(&Scenario::new(13, 3, 1, Duration::from_secs(20), conch_bin(), holdlog()));
}

/// The same scenario passes with the real build and fails with the broken one (built by
/// `scripts/test.sh` as `target/broken-conch` with `--features break-shim-deadline`).
#[test]
fn a_build_without_shim_deadlines_is_caught() {
    let broken = conch_bin().parent().and_then(|d| d.parent()).unwrap().join("broken-conch");
    assert!(
        broken.exists(),
        "{} missing: scripts/test.sh builds it (cargo build -p conch --features break-shim-deadline)",
        broken.display()
    );
    let scenario = |conch: PathBuf| Scenario {
        faults: vec![FaultKind::WrapperStop],
        hold_ms: (6000, 7000),
        fault_ms: (4500, 5000),
        target_holder: true,
        ..Scenario::new(21, 2, 1, Duration::from_secs(14), conch, holdlog())
    };
    let good = run(&scenario(conch_bin()));
    assert!(good.violations.is_empty(), "the real build failed: {:#?}", good.violations);
    let bad = run(&scenario(broken));
    assert!(!bad.violations.is_empty(), "the checkers missed the broken shim (faults {:?})", bad.faults);
    assert!(bad.violations.iter().any(|v| v.contains("outside every exception window")), "{:#?}", bad.violations);
}
