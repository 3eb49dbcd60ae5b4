//! The timeline: one SVG a person can read at a glance — a row per client, a bar per
//! child (holders of the office, the semaphore and cron runs in their own colours), the
//! faults marked on their client's row (global ones across the top), the phases shaded,
//! and every instant with more holders than capacity in red.
use std::fmt::Write;

use crate::record::Group;
use crate::run::Report;

const LEFT: f64 = 110.0;
const WIDTH: f64 = 1400.0;
const ROW: f64 = 22.0;
const TOP: f64 = 46.0;

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
        "partition" | "cut-up" | "cut-down" | "swizzle" => "#888888",
        "revoke" | "key-delete" => "#d62728",
        _ if kind.starts_with("site:") => "#17becf",
        _ => "#8c564b",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Draws a seed's run as SVG.
pub fn svg(report: &Report) -> String {
    let outcome = &report.outcome;
    let opts = &outcome.opts;
    let clients = opts.clients();
    let end = outcome.end_at.max(1) as f64;
    let x = |t: u64| LEFT + (t as f64 / end) * WIDTH;
    let y = |row: usize| TOP + 20.0 + row as f64 * ROW;
    let height = y(clients) + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="11">"#,
        LEFT + WIDTH + 20.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="8" y="16" font-size="13">conch sim {}</text>"#, escape(&opts.to_string()));
    // Phases.
    let (heal, stop) = (x(outcome.heal_at), x(outcome.stop_at));
    let _ = writeln!(
        s,
        r##"<rect x="{heal}" y="{TOP}" width="{}" height="{}" fill="#eef7ee"/><text x="{}" y="{}">liveness</text>"##,
        stop - heal,
        y(clients) - TOP,
        heal + 4.0,
        TOP + 12.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{stop}" y="{TOP}" width="{}" height="{}" fill="#f3f3f3"/><text x="{}" y="{}">shutdown</text>"##,
        x(outcome.end_at) - stop,
        y(clients) - TOP,
        stop + 4.0,
        TOP + 12.0
    );
    let _ = writeln!(s, r#"<text x="{}" y="{}">safety (faults)</text>"#, LEFT + 4.0, TOP + 12.0);
    // Rows.
    for row in 0..clients {
        let group = if row < opts.office_clients {
            Group::Office
        } else if row < opts.office_clients + opts.sema_clients {
            Group::Sema
        } else {
            Group::Cron
        };
        let _ = writeln!(s, r#"<text x="8" y="{}">{} {row}</text>"#, y(row) + 14.0, group.as_str());
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#dddddd"/>"##,
            LEFT + WIDTH,
            y(row) + ROW,
            y(row) + ROW
        );
    }
    for iv in &outcome.intervals {
        let (x0, x1) = (x(iv.start), x(iv.end).max(x(iv.start) + 0.8));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{}" fill="{}"><title>client {} rev {} {} {}..{}</title></rect>"#,
            y(iv.client) + 4.0,
            x1 - x0,
            ROW - 8.0,
            colour(iv.group),
            iv.client,
            iv.rev,
            escape(&iv.label),
            iv.start,
            iv.end
        );
    }
    for f in &outcome.faults {
        let (x0, x1) = (x(f.from), x(f.to).max(x(f.from) + 1.5));
        let (y0, h) = match f.client {
            Some(c) => (y(c) + 1.0, 3.0),
            None => (TOP + 16.0, y(clients) - TOP - 16.0),
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{h}" fill="{}" opacity="0.6"><title>{} {}..{}</title></rect>"#,
            x1 - x0,
            fault_colour(&f.kind),
            escape(&f.kind),
            f.from,
            f.to
        );
    }
    // Overlaps above capacity, per contest, in red across the bottom.
    for group in [Group::Office, Group::Sema] {
        let max = opts.capacity(group);
        let mut edges: Vec<(u64, i32)> = outcome
            .intervals
            .iter()
            .filter(|iv| iv.group == group)
            .flat_map(|iv| [(iv.start, 1), (iv.end, -1)])
            .collect();
        edges.sort_unstable();
        let mut count = 0i32;
        for w in 0..edges.len() {
            count += edges[w].1;
            let next = edges.get(w + 1).map_or(edges[w].0, |e| e.0);
            if count as usize > max && next > edges[w].0 {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{}" width="{:.1}" height="{}" fill="#ff0000" opacity="0.35"><title>{} holders of the {} above capacity {max}</title></rect>"##,
                    x(edges[w].0),
                    TOP,
                    (x(next) - x(edges[w].0)).max(1.5),
                    y(clients) - TOP,
                    count,
                    group.as_str()
                );
            }
        }
    }
    // Axis and legend.
    let seconds = outcome.end_at / 1_000_000_000;
    let step = (seconds / 12).max(1);
    for t in (0..=seconds).step_by(step as usize) {
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}">{t}s</text>"#, x(t * 1_000_000_000), y(clients) + 14.0);
    }
    let legend = [
        ("office holder", colour(Group::Office)),
        ("sema holder", colour(Group::Sema)),
        ("cron run", colour(Group::Cron)),
        ("crash", fault_colour("crash")),
        ("pause/freeze", fault_colour("pause")),
        ("cut", fault_colour("partition")),
        ("revoke/delete", fault_colour("revoke")),
        ("fault site", fault_colour("site:x")),
        ("etcd/clock", fault_colour("stall")),
        ("over capacity", "#ff0000"),
    ];
    for (k, (name, fill)) in legend.iter().enumerate() {
        let lx = LEFT + k as f64 * 130.0;
        let ly = y(clients) + 34.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{fill}"/><text x="{}" y="{ly}">{name}</text>"#,
            ly - 9.0,
            lx + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}
