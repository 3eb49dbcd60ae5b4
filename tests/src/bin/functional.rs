//! Runs the functional tester: `functional [--seed N] [--cases all|A,B,...] [--rounds R]
//! [--ci] [--conch PATH] [--keep]`. `--ci` is the fixed-seed subset CI runs. Prints a line per
//! round and a summary table; exit 0 when every checker held, 1 otherwise (with the seed
//! and the command that replays the run), 2 when the cluster could not be set up, 64 on
//! a usage error.
use conch_tests::cluster::Timings;
use conch_tests::functional::{cases, report, rounds, Config};

/// The seed of the CI subset.
const CI_SEED: u64 = 1;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let usage = |why: &str| -> ! {
        eprintln!(
            "functional: {why}\nusage: functional [--seed N] [--cases all|A,B,...] [--rounds R] [--ci] [--conch PATH] [--keep]"
        );
        std::process::exit(64);
    };
    let ci = args.iter().any(|a| a == "--ci");
    let seed = match value("--seed") {
        Some(s) => s.parse().unwrap_or_else(|_| usage("--seed wants a number")),
        None if ci => CI_SEED,
        None => conch_tests::now_ns() as u64 % 1_000_000,
    };
    let cases = match value("--cases") {
        None if ci => cases::CI.to_vec(),
        None => cases::ALL.to_vec(),
        Some(list) if list.eq_ignore_ascii_case("all") => cases::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|n| cases::CaseKind::parse(n).unwrap_or_else(|| usage(&format!("no case {n}"))))
            .collect(),
    };
    let rounds = value("--rounds").map_or(1, |r| r.parse().unwrap_or_else(|_| usage("--rounds wants a number")));
    let exe = std::env::current_exe().unwrap_or_else(|_| usage("no current exe"));
    let dir = exe.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let conch = value("--conch").map_or_else(|| dir.join("conch"), Into::into);
    let cfg = Config {
        seed,
        cases,
        rounds,
        conch,
        holdlog: dir.join("holdlog"),
        timings: Timings::default(),
        keep: args.iter().any(|a| a == "--keep"),
    };
    println!(
        "functional: seed {seed}, {} cases × {rounds} round(s), conch {}, etcd {}",
        cfg.cases.len(),
        cfg.conch.display(),
        conch_tests::etcd_bin().display()
    );
    for case in rounds::order(&cfg) {
        println!("  {:<40} {}", case.name(), case.desc());
    }
    match rounds::run(&cfg) {
        Ok(summary) => {
            print!("\n{}", report::table(&summary));
            if !summary.passed() {
                println!("seed {seed}; replay: {}", report::replay(&cfg));
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("functional: setup failed: {e}");
            std::process::exit(2);
        }
    }
}
