//! Runs the invariant suite: `invariant [--seed N] [--duration 20s] [--clients K] [--max N]
//! [--soak] [--faults kind,kind] [--conch PATH]`. With `--soak`, runs fresh random seeds
//! until the duration is spent (each seed printed, so any can be replayed with --seed).
//! Exit 0 when every checker held for every seed.
use std::time::{Duration, Instant};

use conch_tests::invariant::{run, FaultKind, Scenario, ALL_FAULTS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let exe = std::env::current_exe().expect("exe");
    let dir = exe.parent().expect("dir").to_path_buf();
    let seed: u64 =
        value("--seed").or_else(|| std::env::var("CONCH_SEED").ok()).and_then(|s| s.parse().ok()).unwrap_or(1);
    let duration = value("--duration").map_or(Duration::from_secs(20), |d| parse_secs(&d));
    let clients = value("--clients").and_then(|c| c.parse().ok()).unwrap_or(3);
    let max = value("--max").and_then(|c| c.parse().ok()).unwrap_or(1);
    let soak = args.iter().any(|a| a == "--soak");
    let faults: Vec<FaultKind> = match value("--faults") {
        Some(list) => ALL_FAULTS
            .iter()
            .copied()
            .filter(|k| list.split(',').any(|n| n.eq_ignore_ascii_case(&format!("{k:?}"))))
            .collect(),
        None => ALL_FAULTS.to_vec(),
    };
    let conch = value("--conch").map_or_else(|| dir.join("conch"), Into::into);
    let holdlog = dir.join("holdlog");
    let scenario = |seed: u64, duration: Duration| Scenario {
        faults: faults.clone(),
        ..Scenario::new(seed, clients, max, duration, conch.clone(), holdlog.clone())
    };
    let mut failed = 0;
    let mut runs = 0;
    let mut seeds: Vec<u64> = Vec::new();
    let started = Instant::now();
    // A soak draws its seeds from the clock; a single run uses --seed.
    let mut next_seed = if soak { conch_tests::mono_ns() } else { seed };
    loop {
        let this = next_seed;
        let per_run = if soak { Duration::from_secs(30) } else { duration };
        println!("seed {this}: clients={clients} max={max} duration={per_run:?} faults={faults:?}");
        let report = run(&scenario(this, per_run));
        runs += 1;
        seeds.push(this);
        let verdict = if report.violations.is_empty() { "ok" } else { "FAIL" };
        println!(
            "seed {this}: {verdict} intervals={} faults={:?} largest-overlap-ms={:?}",
            report.intervals, report.faults, report.overlap_ms
        );
        for v in &report.violations {
            println!("  violation: {v}");
        }
        if !report.violations.is_empty() {
            failed += 1;
            println!("  replay: scripts/invariant.sh --seed {this} --clients {clients} --max {max}");
        }
        if !soak || started.elapsed() >= duration {
            break;
        }
        next_seed = conch_tests::mono_ns() ^ this.rotate_left(17);
    }
    println!("{} passed, {} failed", runs - failed, failed);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

fn parse_secs(text: &str) -> Duration {
    let t = text.trim();
    if let Some(m) = t.strip_suffix('m') {
        return Duration::from_secs(m.parse::<u64>().unwrap_or(1) * 60);
    }
    Duration::from_secs(t.trim_end_matches('s').parse().unwrap_or(20))
}
