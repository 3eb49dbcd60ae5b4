//! The timeline: one SVG a person can read at a glance. On top the seed's options (wrapped
//! to the picture's width), the verdict and every violation, numbered. Then a lane for the
//! etcd-wide faults (those with no client: etcd-down, stall, compact, member-*), one row
//! per kind, and a lane per client: its children as bars (holders of the office, the
//! semaphore and cron runs in their own colours) with its own faults in a strip under
//! them, so no fault hides a bar. The phases are shaded, every instant with more holders
//! than capacity is red across that contest's lanes, and each violation with a known time
//! is a numbered red line where it happened. Every bar and fault has a hover `<title>`.
use std::fmt::Write;

use crate::record::{Group, Outcome};
use crate::run::Report;

const LEFT: f64 = 140.0;
const WIDTH: f64 = 1400.0;
const RIGHT: f64 = 20.0;
/// A client's lane: the bar on top, its faults in a strip below.
const ROW: f64 = 26.0;
const BAR_H: f64 = 13.0;
const STRIP_Y: f64 = 17.0;
const STRIP_H: f64 = 6.0;
/// One kind's row in the etcd lane.
const ETCD_ROW: f64 = 12.0;
/// Monospace advance at 11 px and at 12 px (0.6 em), for wrapping text to the width.
const CHAR_W: f64 = 6.6;
const CHAR_W_12: f64 = 7.2;
const CHAR_W_10: f64 = 6.0;
const LINE: f64 = 15.0;
const RED: &str = "#d00000";

fn colour(group: Group) -> &'static str {
    match group {
        Group::Office => "#3b7dd8",
        Group::Sema => "#2a9d5b",
        Group::Cron => "#b07cc6",
    }
}

fn fault_colour(kind: &str) -> &'static str {
    match kind {
        "crash" => "#000000",
        "pause" | "freeze" => "#e08a00",
        "partition" | "one-way" | "cut-up" | "cut-down" | "swizzle" => "#888888",
        "revoke" | "key-delete" => "#d62728",
        "etcd-down" => "#8c564b",
        "stall" => "#bcbd22",
        "compact" => "#7f7f7f",
        "member-down" => "#9467bd",
        "member-isolated" => "#e377c2",
        "member-cut" => "#5b3a8a",
        _ if kind.starts_with("site:") => "#17becf",
        _ if kind.starts_with("clock-") => "#1f9e89",
        _ => "#6b4f3f",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

/// Splits `text` at spaces into lines of at most `width` characters (a longer word gets
/// a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// Draws a seed's run as SVG.
pub fn svg(report: &Report) -> String {
    let outcome = &report.outcome;
    let opts = &outcome.opts;
    let clients = opts.clients();
    let end = outcome.end_at.max(1) as f64;
    let x = |t: u64| LEFT + (t as f64 / end) * WIDTH;
    let full = LEFT + WIDTH + RIGHT;
    let mut s = String::new();

    // Header: options, verdict, violations.
    let mut y = 18.0;
    for line in wrap(&format!("conch sim {opts}"), ((full - 16.0) / CHAR_W_12) as usize) {
        let _ = writeln!(s, r#"<text x="8" y="{y}" font-size="12">{}</text>"#, escape(&line));
        y += LINE;
    }
    y += 4.0;
    let verdict = if report.passed() {
        ("#1b7a1b", "verdict: ok, every guarantee held".to_string())
    } else {
        (RED, format!("verdict: FAIL, {} violation(s)", report.violations.len()))
    };
    let _ = writeln!(
        s,
        r#"<text x="8" y="{y}" font-size="13" font-weight="bold" fill="{}">{}</text>"#,
        verdict.0,
        escape(&verdict.1)
    );
    y += LINE + 2.0;
    for (k, v) in report.violations.iter().enumerate() {
        let when = v.at.map(|t| format!(" (at {}, marked)", secs(t))).unwrap_or_default();
        for (n, line) in
            wrap(&format!("[{}] {}: {}{when}", k + 1, v.checker, v.detail), ((full - 24.0) / CHAR_W) as usize)
                .iter()
                .enumerate()
        {
            let indent = if n == 0 { 8.0 } else { 24.0 };
            let _ = writeln!(s, r#"<text x="{indent}" y="{y}" fill="{RED}">{}</text>"#, escape(line));
            y += LINE - 1.0;
        }
    }

    // The etcd lane: one row per kind of client-less fault.
    let lanes_top = y + 22.0;
    let mut kinds: Vec<String> =
        outcome.faults.iter().filter(|f| f.client.is_none()).map(|f| f.kind.to_string()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let etcd_top = lanes_top + 4.0;
    let etcd_rows = kinds.len().max(1);
    let clients_top = etcd_top + etcd_rows as f64 * ETCD_ROW + 10.0;
    let row_y = |row: usize| clients_top + row as f64 * ROW;
    let lanes_bottom = row_y(clients);
    let phase = |s: &mut String, from: u64, to: u64, fill: &str, name: &str| {
        // A label that would run past the right edge ends at the phase's end instead.
        let (lx, anchor) = if x(from) + 4.0 + name.len() as f64 * CHAR_W > full - 4.0 {
            (x(to), "end")
        } else {
            (x(from) + 4.0, "start")
        };
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{lanes_top}" width="{:.1}" height="{:.1}" fill="{fill}"/><text x="{lx:.1}" y="{}" fill="#555555" text-anchor="{anchor}">{name}</text>"##,
            x(from),
            (x(to) - x(from)).max(0.0),
            lanes_bottom - lanes_top,
            lanes_top - 4.0
        );
    };
    phase(&mut s, 0, outcome.heal_at, "#fff8f0", "safety (faults)");
    phase(&mut s, outcome.heal_at, outcome.stop_at, "#eef7ee", "liveness");
    phase(&mut s, outcome.stop_at, outcome.end_at, "#f3f3f3", "shutdown");
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{etcd_top}" width="{WIDTH}" height="{:.1}" fill="none" stroke="#cccccc"/>"##,
        etcd_rows as f64 * ETCD_ROW
    );
    if kinds.is_empty() {
        let _ = writeln!(s, r#"<text x="8" y="{:.1}">etcd: no faults</text>"#, etcd_top + ETCD_ROW - 2.0);
    }
    for (k, kind) in kinds.iter().enumerate() {
        let ry = etcd_top + k as f64 * ETCD_ROW;
        let label: String = format!("etcd {kind}").chars().take(((LEFT - 12.0) / CHAR_W_10) as usize).collect();
        let _ = writeln!(s, r#"<text x="8" y="{:.1}" font-size="10">{}</text>"#, ry + ETCD_ROW - 2.0, escape(&label));
        for f in outcome.faults.iter().filter(|f| f.client.is_none() && f.kind.to_string() == *kind) {
            let (x0, x1) = (x(f.from), x(f.to).max(x(f.from) + 1.5));
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{}" fill="{}"><title>{} (etcd-wide) {} to {}</title></rect>"#,
                ry + 2.0,
                x1 - x0,
                ETCD_ROW - 4.0,
                fault_colour(kind),
                escape(kind),
                secs(f.from),
                secs(f.to)
            );
        }
    }

    // Client lanes.
    for row in 0..clients {
        let ry = row_y(row);
        let _ = writeln!(s, r#"<text x="8" y="{:.1}">{} {row}</text>"#, ry + BAR_H, outcome.opts.group(row).as_str());
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#dddddd"/>"##,
            LEFT + WIDTH,
            ry + ROW - 1.0,
            ry + ROW - 1.0
        );
    }
    for iv in &outcome.intervals {
        let (group, end) = (outcome.opts.group(iv.client), iv.end_or(outcome.end_at));
        let (x0, x1) = (x(iv.start), x(end).max(x(iv.start) + 0.8));
        let what = match group {
            Group::Cron => format!("cron run {}", iv.tick.as_deref().unwrap_or_default()),
            g => format!("{} holder", g.as_str()),
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{BAR_H}" fill="{}"><title>{} client {}, rev {}, {} to {}</title></rect>"#,
            row_y(iv.client) + 2.0,
            x1 - x0,
            colour(group),
            escape(&what),
            iv.client,
            iv.rev,
            secs(iv.start),
            secs(end)
        );
    }
    for f in &outcome.faults {
        let Some(client) = f.client else { continue };
        let (x0, x1) = (x(f.from), x(f.to).max(x(f.from) + 1.5));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{STRIP_H}" fill="{}"><title>{} on client {client}, {} to {}</title></rect>"#,
            row_y(client) + STRIP_Y,
            x1 - x0,
            fault_colour(&f.kind.to_string()),
            escape(&f.kind.to_string()),
            secs(f.from),
            secs(f.to)
        );
    }
    over_capacity(&mut s, outcome, &x, &row_y);
    for (k, v) in report.violations.iter().enumerate() {
        let Some(t) = v.at else { continue };
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="{lanes_top}" y2="{lanes_bottom:.1}" stroke="{RED}" stroke-width="1.5" stroke-dasharray="4 2"><title>[{1}] {2}</title></line><text x="{3:.1}" y="{4:.1}" fill="{RED}" font-weight="bold">[{1}]</text>"#,
            x(t),
            k + 1,
            escape(&format!("{}: {}", v.checker, v.detail)),
            x(t) + 2.0,
            lanes_top + 10.0
        );
    }

    // Axis and legend.
    let seconds = outcome.end_at / 1_000_000_000;
    let step = (seconds / 12).max(1);
    for t in (0..=seconds).step_by(step as usize) {
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{t}s</text>"#, x(t * 1_000_000_000), lanes_bottom + 14.0);
    }
    let height = legend(&mut s, lanes_bottom + 34.0) + 12.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{full}\" height=\"{height:.0}\" font-family=\"monospace\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{s}</svg>\n"
    )
}

/// Instants with more holders than capacity, in red across that contest's lanes.
fn over_capacity(s: &mut String, outcome: &Outcome, x: &dyn Fn(u64) -> f64, row_y: &dyn Fn(usize) -> f64) {
    for group in [Group::Office, Group::Sema] {
        let rows: Vec<usize> = (0..outcome.opts.clients()).filter(|r| outcome.opts.group(*r) == group).collect();
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else { continue };
        let max = outcome.opts.capacity(group);
        let mut edges: Vec<(u64, i32)> =
            outcome.of(group).flat_map(|iv| [(iv.start, 1), (iv.end_or(outcome.end_at), -1)]).collect();
        edges.sort_unstable();
        let mut count = 0i32;
        for w in 0..edges.len() {
            count += edges[w].1;
            let next = edges.get(w + 1).map_or(edges[w].0, |e| e.0);
            if count as usize > max && next > edges[w].0 {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#ff0000" opacity="0.35"><title>{} holders of the {} above capacity {max}, {} to {}</title></rect>"##,
                    x(edges[w].0),
                    row_y(*first),
                    (x(next) - x(edges[w].0)).max(1.5),
                    row_y(*last) + ROW - row_y(*first),
                    count,
                    group.as_str(),
                    secs(edges[w].0),
                    secs(next)
                );
            }
        }
    }
}

/// The legend, wrapped to the width; returns the y below it.
fn legend(s: &mut String, top: f64) -> f64 {
    let entries = [
        ("office holder", colour(Group::Office)),
        ("sema holder", colour(Group::Sema)),
        ("cron run", colour(Group::Cron)),
        ("crash", fault_colour("crash")),
        ("pause/freeze", fault_colour("pause")),
        ("cut", fault_colour("partition")),
        ("revoke/delete", fault_colour("revoke")),
        ("clock", fault_colour("clock-jump")),
        ("fault site", fault_colour("site:x")),
        ("etcd-down", fault_colour("etcd-down")),
        ("stall", fault_colour("stall")),
        ("compact", fault_colour("compact")),
        ("member-down", fault_colour("member-down")),
        ("member-isolated", fault_colour("member-isolated")),
        ("member-cut", fault_colour("member-cut")),
        ("over capacity", "#ff0000"),
        ("violation", RED),
    ];
    let (mut lx, mut ly) = (LEFT, top);
    for (name, fill) in entries {
        let w = 24.0 + name.len() as f64 * CHAR_W;
        if lx + w > LEFT + WIDTH {
            (lx, ly) = (LEFT, ly + LINE);
        }
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{fill}"/><text x="{:.1}" y="{ly:.1}">{name}</text>"#,
            ly - 9.0,
            lx + 14.0
        );
        lx += w;
    }
    ly
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("averyveryverylongword x", 5), vec!["averyveryverylongword", "x"]);
        assert_eq!(wrap("", 5), vec![""]);
    }
}
