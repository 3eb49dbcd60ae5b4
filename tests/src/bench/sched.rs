//! B7 and B8: scale of the cron daemon, speed of the simulator.
//!
//! * B7: N jobs `@every 1s` (1000; 50 quick) whose command is the child's `tick` mode
//!   (it stamps `CLOCK_REALTIME` and `CONCH_TICK`), three `conchd` on this machine. Over a
//!   window after a warm-up: how late each run started past its tick, past the 500 ms
//!   jitter window (conchd's per-tick jitter is drawn inside it and not published, so
//!   "past jitter" is measured against the window's end — a run started 80 ms after a
//!   20 ms jitter counts 0), CPU per instance as % of a core, ticks run twice, ticks missed.
//! * B8: `conch sim --scenario mixed --clients 10 --timing` pinned to one core.
use std::time::Duration;

use super::stats::{ms, p50, p99};
use super::{http, lines, Ctx, Row, Target};

const JITTER_WINDOW_NS: i128 = 500_000_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SSZ`.
fn unix_of(tick: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| tick.get(r).and_then(|s| s.parse::<i64>().ok());
    if tick.len() != 20 || !tick.ends_with('Z') {
        return None;
    }
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    Some(days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?)
}

/// The B7 rows.
pub fn b7(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let n = if ctx.opts.quick { 50 } else { 1000 };
    let window = Duration::from_secs(if ctx.opts.quick { 6 } else { 20 });
    let file = ctx.file("b7");
    let f = file.display().to_string();
    let endpoint = ctx.etcd.endpoint();
    // One job through the CLI, the others as copies of its spec (the spec holds no name).
    let add = ctx
        .conch()
        .args(["cron", "add", "bench-0", "--schedule", "@every 1s", "--"])
        .arg(&ctx.child)
        .args(["tick", &f])
        .status();
    if !add.is_ok_and(|s| s.success()) {
        return Err("conch cron add failed".into());
    }
    let spec = http::get(&endpoint, "/conch/v1/cron/job/bench-0")?.ok_or("job spec not found")?;
    for i in 1..n {
        http::put(&endpoint, &format!("/conch/v1/cron/job/bench-{i}"), &spec)?;
    }
    let mut daemons = Vec::new();
    let mut status = Vec::new();
    let mut logs = Vec::new();
    for host in ["bench-a", "bench-b", "bench-c"] {
        let addr = format!("127.0.0.1:{}", crate::free_port());
        let path = ctx.file("conchd-log");
        let log = std::fs::File::create(&path).map_err(|e| format!("log file: {e}"))?;
        logs.push(path);
        let mut cmd = ctx.conch();
        cmd.env("CONCH_HOSTNAME", host)
            .args(["--log-format", "json", "--ttl", "5s", "conchd", "--kill-after", "1s", "--status-addr", &addr])
            .stderr(log);
        daemons.push(ctx.procs.spawn(&mut cmd)?);
        status.push(format!("http://{addr}"));
    }
    // Tick results summed over the daemons (conchd's own counters, its status API).
    let ticks = || -> Vec<(String, f64)> {
        let all: Vec<_> = status.iter().filter_map(|url| http::metrics(url).ok()).flatten().collect();
        ["claimed", "lost", "skipped_late", "skipped_overlap", "skipped_no_session"]
            .iter()
            .map(|r| (r.to_string(), http::sum(&all, "conch_cron_ticks_total", &[&format!("result=\"{r}\"")])))
            .collect()
    };
    super::procs::nap(Duration::from_secs(3));
    let from = crate::now_ns() as i128;
    let cpu0: Vec<_> = daemons.iter().map(|p| super::procs::cpu(*p).unwrap_or_default()).collect();
    let ticks0 = ticks();
    super::procs::nap(window);
    let cpu1: Vec<_> = daemons.iter().map(|p| super::procs::cpu(*p).unwrap_or_default()).collect();
    let ticks1 = ticks();
    let results: Vec<String> = ticks1
        .iter()
        .zip(&ticks0)
        .filter(|((_, after), (_, before))| after > before)
        .map(|((r, after), (_, before))| format!("{} {r}", after - before))
        .collect();
    let to = crate::now_ns() as i128;
    for pid in &daemons {
        ctx.procs.signal(*pid, nix::sys::signal::Signal::SIGTERM);
    }
    for pid in &daemons {
        ctx.procs.wait(*pid, Duration::from_secs(10));
    }
    // Warnings and errors the daemons logged, by event, most frequent first.
    let mut events = std::collections::BTreeMap::<String, usize>::new();
    for log in &logs {
        for line in crate::read(log).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            // tracing's JSON writes levels upper-case ("WARN"): a lower-case match counted nothing.
            if v["level"].as_str().is_some_and(|l| l.eq_ignore_ascii_case("warn") || l.eq_ignore_ascii_case("error")) {
                *events.entry(v["event"].as_str().unwrap_or("?").to_string()).or_default() += 1;
            }
        }
    }
    let mut events: Vec<(String, usize)> = events.into_iter().collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.1));
    let logged: Vec<String> = events.iter().take(6).map(|(e, n)| format!("{n} {e}")).collect();
    let mut late = Vec::new();
    let mut runs = std::collections::BTreeMap::<(String, i64), usize>::new();
    for l in lines(&file) {
        let (Some(at), Some(tick)) = (l.get(1).and_then(|v| v.parse::<i128>().ok()), l.get(2).and_then(|t| unix_of(t)))
        else {
            continue;
        };
        let tick_ns = tick as i128 * 1_000_000_000;
        if tick_ns < from || tick_ns + 1_000_000_000 > to {
            continue;
        }
        late.push(at - tick_ns);
        *runs.entry((l.get(4).cloned().unwrap_or_default(), tick)).or_default() += 1;
    }
    // Every whole tick in the window is expected once per job; a (job, tick) seen twice ran twice.
    let ticks_in_window = ((to - from) / 1_000_000_000 - 1).max(0) as usize;
    let expected = n * ticks_in_window;
    let ran = late.len();
    let twice = runs.values().filter(|c| **c > 1).count();
    let cores = |i: usize| (cpu1[i].0.saturating_sub(cpu0[i].0)).as_secs_f64() / window.as_secs_f64() * 100.0;
    let with_children = |i: usize| (cpu1[i].1.saturating_sub(cpu0[i].1)).as_secs_f64() / window.as_secs_f64() * 100.0;
    let cpu_max = (0..3).map(cores).fold(0.0, f64::max);
    let cpu_all = (0..3).map(with_children).fold(0.0, f64::max);
    let lat_ms: Vec<f64> = late.iter().map(|x| ms(*x)).collect();
    let past: Vec<f64> = late.iter().map(|x| ms((*x - JITTER_WINDOW_NS).max(0))).collect();
    let per = format!("{n} jobs @every 1s, 3 conchd");
    Ok(vec![
        Row::new("B7", format!("{per}: tick → run start, p50"), "ms", Target::None).figures(p50(&lat_ms), None, ran),
        Row::new("B7", format!("{per}: tick → run start, p99"), "ms", Target::None).figures(p99(&lat_ms), None, ran),
        Row::new("B7", format!("{per}: run start past the 500 ms jitter window, p99"), "ms", Target::AtMost(50.0))
            .figures(p99(&past), None, ran),
        Row::new("B7", format!("{per}: CPU per instance (max of 3)"), "%", Target::AtMost(5.0))
            .figures(Some(cpu_max), None, 3)
            .notes(format!("{cpu_all:.0} % with its shims and jobs"), ""),
        Row::new("B7", format!("{per}: ticks run / expected in {ticks_in_window} s"), "", Target::None)
            .figures(Some(ran as f64), None, 1)
            .notes(format!("of {expected}; ticks in the window: {}", results.join(", ")), ""),
        Row::new("B7", format!("{per}: ticks run twice"), "", Target::AtMost(0.0))
            .figures(Some(twice as f64), None, 1)
            .notes(if logged.is_empty() { String::new() } else { format!("logged: {}", logged.join(", ")) }, ""),
    ])
}

/// The B8 row.
pub fn b8(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let seeds = if ctx.opts.quick { "1..200" } else { "1..2000" };
    let mut cmd = if std::path::Path::new("/usr/bin/taskset").exists() {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", "0"]).arg(&ctx.opts.conch);
        c
    } else {
        std::process::Command::new(&ctx.opts.conch)
    };
    cmd.args(["sim", "--scenario", "mixed", "--clients", "10", "--seeds", seeds, "--json", "--timing"]);
    let out = cmd.output().map_err(|e| format!("conch sim: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        text.lines().last().and_then(|l| serde_json::from_str(l).ok()).ok_or("conch sim printed no summary")?;
    let speed = summary["speed"].as_f64();
    let note = format!(
        "{} seeds, {} failed, {:.0} seeds/s",
        summary["seeds"],
        summary["failed"],
        summary["seeds_per_s"].as_f64().unwrap_or(0.0)
    );
    Ok(vec![Row::new(
        "B8",
        "simulator: mixed, 10 clients, one core, simulated ÷ wall",
        "x",
        Target::AtLeast(100_000.0),
    )
    .figures(speed, None, 1)
    .notes(note, "")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_parse() {
        assert_eq!(unix_of("1970-01-01T00:00:01Z"), Some(1));
        assert_eq!(unix_of("2025-01-01T00:00:00Z"), Some(1_735_689_600));
        assert_eq!(unix_of("garbage"), None);
    }
}
