//! `conch sim`: runs seeds through the simulator and prints one verdict line per seed, a
//! summary, and for a failing seed the exact command that replays it.
//!
//! stdout depends only on the seeds and options (the same command prints the same bytes);
//! wall-clock figures (speed, seeds/s) go to stderr, or into the summary with `--timing`.
//! A `--trace` or `--timeline` file that cannot be written is exit 73, checked before the
//! first seed runs.
use std::io::{IsTerminal, Write};
use std::ops::RangeInclusive;
use std::time::Duration;

use conch_core::{ExitCode, Failure};
use conch_driver_sim::options::{SimArgs, SimOptions};
use conch_driver_sim::run::{run_seed, Report};
use conch_driver_sim::timeline;

/// A checked `conch sim` command line.
#[derive(Debug)]
pub struct SimRun {
    /// Fixed options.
    pub args: SimArgs,
    /// Seeds to run.
    pub seeds: RangeInclusive<u64>,
    /// `--trace`.
    pub trace: Option<String>,
    /// `--timeline`.
    pub timeline: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `--timing`: wall-clock figures in the summary on stdout.
    pub timing: bool,
}

/// A file conch sim was asked to write can be: its directory exists and takes files, and
/// it is not itself a directory or read-only. Checked before the seeds run; nothing is
/// created.
pub fn check_writable(flag: &str, path: &str) -> Result<(), Failure> {
    use nix::unistd::{access, AccessFlags};
    let cannot = |why: String| Failure::new(ExitCode::CANT_CREATE, format!("{flag} {path}: cannot create: {why}"));
    let file = std::path::Path::new(path);
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(cannot(format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(cannot(format!("{}: {e}", dir.display()))),
    }
    if file.is_dir() {
        return Err(cannot("it is a directory".to_string()));
    }
    let target = if file.exists() { file } else { dir };
    access(target, AccessFlags::W_OK).map_err(|e| cannot(format!("{}: {}", target.display(), e.desc())))
}

fn write_file(flag: &str, path: &str, contents: &str) -> Result<(), Failure> {
    std::fs::write(path, contents)
        .map_err(|e| Failure::new(ExitCode::CANT_CREATE, format!("{flag} {path}: cannot write: {e}")))
}

/// The command that replays `seed` with the same fixed options.
fn replay(run: &SimRun, seed: u64) -> String {
    let a = &run.args;
    let mut cmd = format!(
        "conch sim --scenario {} --seed {seed} --duration {}",
        a.scenario.as_str(),
        conch_core::duration::format(a.duration)
    );
    if let Some(k) = a.clients {
        cmd += &format!(" --clients {k}");
    }
    if let Some(n) = a.max {
        cmd += &format!(" --max {n}");
    }
    if let Some(n) = a.members {
        cmd += &format!(" --members {n}");
    }
    if let Some(faults) = a.faults.as_ref().filter(|f| {
        use conch_driver_sim::options::FaultKind;
        f.len() != FaultKind::ALL.len() + FaultKind::MEMBER.len() + FaultKind::PAIRED.len()
    }) {
        let names: Vec<&str> = faults.iter().map(|k| k.as_str()).collect();
        cmd += &format!(" --faults {}", if names.is_empty() { "none".to_string() } else { names.join(",") });
    }
    if a.all_faults {
        cmd += " --all-faults";
    }
    if let Some(d) = a.fence_budget {
        cmd += &format!(" --fence-budget {}", conch_core::duration::format(d));
    }
    if a.priorities {
        cmd += " --priorities";
    }
    // Flags that change what the world does: a replay without them is another run.
    if a.fenced_writes {
        cmd += " --fenced-writes";
    }
    if a.step_downs {
        cmd += " --step-downs";
    }
    if let Some((lo, hi)) = a.hold {
        cmd += &format!(" --hold {}..{}", conch_core::duration::format(lo), conch_core::duration::format(hi));
    }
    if a.sabotage != conch_core::Sabotage::None {
        cmd += &format!(" --sabotage {}", a.sabotage);
    }
    cmd + " --trace trace.jsonl --timeline timeline.svg"
}

/// Prints a line; a closed stdout (`| head`) ends the run quietly after the seed under
/// way, as for any filter (exit 141), with `--trace`/`--timeline` still written.
fn say(line: &str) {
    if STDOUT_GONE.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        STDOUT_GONE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Set once stdout's reader went away: no more seeds run, the files are still written.
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn verdict_line(run: &SimRun, opts: &SimOptions, report: &Report) -> String {
    let o = &report.outcome;
    let sites = o.faults.iter().filter(|f| f.kind.is_site()).count();
    let faults = o.faults.len() - sites;
    if run.json {
        let violations: Vec<String> = report
            .violations
            .iter()
            .map(|v| format!("{{\"checker\":{},\"detail\":{}}}", json_string(v.checker), json_string(&v.detail)))
            .collect();
        return format!(
            "{{\"seed\":{},\"verdict\":\"{}\",\"options\":{},\"children\":{},\"faults\":{faults},\"site_firings\":{sites},\"claims\":{},\"failovers\":{},\"events\":{},\"coverage\":{},\"violations\":[{}]}}",
            opts.seed,
            if report.passed() { "ok" } else { "fail" },
            json_string(&opts.to_string()),
            o.intervals.len(),
            o.claims.len(),
            o.failovers,
            o.events,
            conch_driver_sim::coverage::Coverage::of(o).json(),
            violations.join(",")
        );
    }
    let mut failovers = if opts.members > 1 { format!(", {} failovers", o.failovers) } else { String::new() };
    if opts.fenced_writes {
        let refused = o.fenced.iter().filter(|w| !w.landed).count();
        failovers += &format!(", {} fenced writes ({refused} refused)", o.fenced.len());
    }
    if opts.step_downs {
        failovers += &format!(", {} step-downs", o.step_downs.len());
    }
    if opts.preempts.iter().any(|p| *p) {
        failovers += &format!(", {} pre-emptions", o.preempts.len());
    }
    let head = format!(
        "{} {opts}: {} children, {faults} faults, {sites} site firings{failovers}, {} events",
        if report.passed() { "ok  " } else { "FAIL" },
        o.intervals.len(),
        o.events
    );
    let mut line = head;
    for v in &report.violations {
        line += &format!("\n  {}: {}", v.checker, v.detail);
    }
    line
}

fn progress(done: u64, total: u64, failed: u64) {
    let width = 30;
    let filled = (done * width / total.max(1)) as usize;
    stderr_text(&format!(
        "\r\x1b[K[{}{}] {done}/{total} seeds, {failed} failed",
        "#".repeat(filled),
        " ".repeat(width as usize - filled)
    ));
}

/// Text on stderr without a newline; a closed stderr drops it (never a panic).
fn stderr_text(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Runs every seed; 0 when every guarantee held, 1 otherwise.
pub fn simulate(run: SimRun) -> ExitCode {
    let total = run.seeds.end() - run.seeds.start() + 1;
    let bar = total > 1 && std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let (mut passed, mut failed, mut simulated) = (0u64, 0u64, Duration::ZERO);
    let mut failing = Vec::new();
    let mut kept: Option<Report> = None;
    let mut sweep = conch_driver_sim::coverage::Sweep::default();
    let want_trace = run.trace.is_some() || run.timeline.is_some();
    for seed in run.seeds.clone() {
        let args = SimArgs { trace: run.trace.is_some(), ..run.args.clone() };
        if total == 1 && !run.json {
            // A long single run shows what it is before it starts.
            say(&format!("run  {}", SimOptions::draw(seed, &args)));
        }
        let report = run_seed(seed, &args);
        let opts = report.outcome.opts.clone();
        sweep.add(&report.outcome);
        simulated += Duration::from_nanos(report.outcome.end_at);
        if bar {
            stderr_text("\r\x1b[K");
        }
        say(&verdict_line(&run, &opts, &report));
        if report.passed() {
            passed += 1;
        } else {
            failed += 1;
            failing.push(seed);
            if !run.json {
                say(&format!("  replay: {}", replay(&run, seed)));
            }
        }
        if want_trace && kept.as_ref().is_none_or(|k| k.passed()) {
            kept = Some(report);
        }
        if bar {
            progress(passed + failed, total, failed);
        }
        if STDOUT_GONE.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    if bar {
        stderr_text("\n");
    }
    let mut written = Ok(());
    if let Some(report) = &kept {
        if let Some(path) = &run.trace {
            written = written.and(write_file("--trace", path, &(report.outcome.trace.join("\n") + "\n")));
        }
        if let Some(path) = &run.timeline {
            written = written.and(write_file("--timeline", path, &timeline::svg(report)));
        }
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let speed = simulated.as_secs_f64() / wall;
    let seeds_per_s = (passed + failed) as f64 / wall;
    let simulated_s = simulated.as_secs_f64();
    if run.json {
        let timing = if run.timing {
            format!(",\"wall_s\":{wall:.3},\"speed\":{speed:.0},\"seeds_per_s\":{seeds_per_s:.2}")
        } else {
            String::new()
        };
        say(&format!(
            "{{\"summary\":true,\"seeds\":{total},\"passed\":{passed},\"failed\":{failed},\"failing\":{failing:?},\"simulated_s\":{simulated_s:.1},\"exercised\":{}{timing}}}",
            sweep.json()
        ));
    } else {
        let timing = format!(
            "{simulated_s:.0} simulated s in {wall:.2} s wall = {speed:.0}x real time, {seeds_per_s:.1} seeds/s"
        );
        if total > 1 {
            say(&format!("exercised (seeds): {}", sweep.line()));
        }
        if run.timing {
            say(&format!("{total} seeds: {passed} passed, {failed} failed; {timing}"));
        } else {
            say(&format!("{total} seeds: {passed} passed, {failed} failed; {simulated_s:.0} simulated s"));
            conch_driver_etcd::out::say_err(&format!("conch: {timing}"));
        }
        if !failing.is_empty() {
            say(&format!("failing seeds: {failing:?}"));
        }
    }
    match written {
        Err(e) => {
            conch_driver_etcd::out::say_err(&format!("conch: {e}"));
            e.code
        }
        Ok(()) if STDOUT_GONE.load(std::sync::atomic::Ordering::Relaxed) => ExitCode(141),
        Ok(()) if failed == 0 => ExitCode::OK,
        Ok(()) => ExitCode::VACANT,
    }
}
