//! The functional tester's output: one line per round, a summary table (Markdown, to
//! paste in the README), and the command that replays a run.
use std::collections::BTreeSet;

use super::rounds::{RoundReport, Summary};
use super::Config;

fn verdict(r: &RoundReport) -> String {
    if r.findings.violations.is_empty() {
        return "ok".into();
    }
    let failed: BTreeSet<&str> = r.findings.violations.iter().map(|(n, _)| *n).collect();
    format!("FAIL({})", failed.into_iter().collect::<Vec<_>>().join(","))
}

/// A round's figures: case, duration (s), overlap max (ms), kills, restarts, ticks run,
/// ticks missed, verdict.
fn figures(r: &RoundReport) -> [String; 8] {
    let f = &r.findings;
    [
        r.case.name(),
        format!("{:.1}", r.duration.as_secs_f64()),
        f.overlap_max_ms.to_string(),
        f.kills.to_string(),
        r.restarts.to_string(),
        f.ticks_run.to_string(),
        f.ticks_missed.to_string(),
        verdict(r),
    ]
}

/// One round: case, duration, overlap max, kills, restarts, ticks run / missed, verdict.
pub fn line(r: &RoundReport) -> String {
    let [case, secs, overlap, kills, restarts, run, missed, verdict] = figures(r);
    format!(
        "round {:>2} {case:<40} {secs:>5}s overlap-max={overlap}ms kills={kills} restarts={restarts} ticks={run}/{missed} missed  {verdict}",
        r.n
    )
}

/// The summary: a Markdown table of every round, then the run's totals and verdict.
pub fn table(s: &Summary) -> String {
    let mut out = String::from(
        "| case | duration | overlap max | kills | restarts | ticks run / missed | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in &s.rounds {
        let [case, secs, overlap, kills, restarts, run, missed, verdict] = figures(r);
        out.push_str(&format!(
            "| {case} | {secs} s | {overlap} ms | {kills} | {restarts} | {run} / {missed} | {verdict} |\n"
        ));
    }
    for (name, v) in &s.final_violations {
        out.push_str(&format!("\nat the end: {name}: {v}"));
    }
    let failed = s.rounds.iter().filter(|r| !r.findings.violations.is_empty()).count();
    out.push_str(&format!(
        "\n{} rounds, {} failed, in {:.0} s; stresser exit codes {:?}; {}\n",
        s.rounds.len(),
        failed,
        s.duration.as_secs_f64(),
        s.exits,
        if s.passed() { "PASS" } else { "FAIL" }
    ));
    out
}

/// The command that replays this run's faults.
pub fn replay(cfg: &Config) -> String {
    let cases: Vec<String> = cfg.cases.iter().map(|c| c.name()).collect();
    format!("scripts/functional.sh --seed {} --cases {} --rounds {}", cfg.seed, cases.join(","), cfg.rounds)
}
