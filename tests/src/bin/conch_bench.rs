//! `conch-bench`: the benchmark program of 07-performance (B1–B8), conch side by side with
//! `etcdctl lock` against one throwaway etcd on tmpfs. Prints a Markdown table on stdout
//! (progress on stderr) and, with `--json FILE`, the run as JSON; `--compare FILE` adds a
//! table against an earlier run's JSON. `scripts/bench.sh` builds and runs it.
//!
//! Usage: conch-bench [--quick] [--json FILE] [--compare FILE] [--conch PATH] [--only B1,B3]
use std::path::PathBuf;
use std::process::Command;

use conch_tests::bench::{report, run_all, Ctx, Options};

const USAGE: &str = "usage: conch-bench [--quick] [--json FILE] [--compare FILE] [--conch PATH] [--only B1,B3,...]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut quick, mut json, mut compare, mut conch, mut only) = (false, None, None, None, Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next().cloned().unwrap_or_else(|| {
                eprintln!("{USAGE}");
                std::process::exit(64)
            })
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--json" => json = Some(PathBuf::from(value())),
            "--compare" => compare = Some(PathBuf::from(value())),
            "--conch" => conch = Some(PathBuf::from(value())),
            "--only" => only = value().split(',').map(str::to_string).collect(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(64);
            }
        }
    }
    let conch = conch.unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        exe.parent().map(|d| d.join("conch")).unwrap_or_default()
    });
    if !conch.exists() {
        eprintln!("conch-bench: {} missing: cargo build --release -p conch", conch.display());
        std::process::exit(66);
    }
    let earlier = compare.map(|p| {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| {
            eprintln!("conch-bench: {}: {e}", p.display());
            std::process::exit(66)
        })
    });
    conch_tests::bench::procs::on_stop_signal();
    let load_before = shell("cut -d' ' -f1-3 /proc/loadavg");
    let started = std::time::Instant::now();
    let ctx = match Ctx::new(Options { quick, conch: conch.clone(), only }) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("conch-bench: {e}");
            std::process::exit(69);
        }
    };
    let rows = run_all(&ctx);
    let about = serde_json::json!({
        "date": shell("date -u +%Y-%m-%dT%H:%M:%SZ"),
        "mode": if quick { "quick" } else { "full" },
        "wall_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "nproc": shell("nproc"),
        "cpu": shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"),
        "load_before": load_before,
        "load_after": shell("cut -d' ' -f1-3 /proc/loadavg"),
        "conch": conch.display().to_string(),
        "conch_version": run(Command::new(&conch).arg("--version")),
        "etcdctl_version": run(Command::new(conch_tests::etcdctl_bin()).arg("version")).lines().next().unwrap_or("").to_string(),
        "child": if ctx.child_static { "static C child (gcc -O2 -static)" } else { "dynamic C child (gcc -O2)" },
    });
    drop(ctx);
    if conch_tests::bench::procs::stopping() {
        eprintln!("conch-bench: stopped by a signal; nothing left behind");
        std::process::exit(130);
    }
    println!(
        "conch-bench {} mode, {} · nproc {} · {} · load {} → {} · {} s\n",
        about["mode"].as_str().unwrap_or(""),
        about["date"].as_str().unwrap_or(""),
        about["nproc"].as_str().unwrap_or(""),
        about["cpu"].as_str().unwrap_or(""),
        about["load_before"].as_str().unwrap_or(""),
        about["load_after"].as_str().unwrap_or(""),
        about["wall_s"]
    );
    print!("{}", report::table(&rows));
    if let Some(earlier) = &earlier {
        println!("\nAgainst {}:\n", earlier["about"]["date"].as_str().unwrap_or("the earlier run"));
        print!("{}", report::compare(&rows, earlier));
    }
    if let Some(path) = json {
        let doc = report::document(&rows, about);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("conch-bench: {}: {e}", path.display());
            std::process::exit(73);
        }
    }
}

fn run(cmd: &mut Command) -> String {
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn shell(script: &str) -> String {
    run(Command::new("sh").args(["-c", script]))
}
