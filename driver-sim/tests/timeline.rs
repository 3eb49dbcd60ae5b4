//! The SVG timeline as a person reads it: etcd-wide faults in a lane of their own and
//! client faults in their client's lane, never over a bar; the options wrapped inside the
//! picture; the verdict and each violation on it, marked where it happened; a hover title
//! on every bar. Rendered to PNG with `rsvg-convert` (scripts/setup.sh installs it), the
//! way a person looks at it; the PNG goes to a temp dir, never into the repository.
use conch_core::Sabotage;
use conch_driver_sim::options::{FaultKind, Scenario, SimArgs};
use conch_driver_sim::run::{run_seed, Report};
use conch_driver_sim::timeline;

/// One `<rect>` with a `<title>`: its vertical extent and the title.
struct Shape {
    y: f64,
    height: f64,
    width: f64,
    title: String,
}

fn attr(element: &str, name: &str) -> Option<f64> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    element[start..].split('"').next()?.parse().ok()
}

fn titled_rects(svg: &str) -> Vec<Shape> {
    svg.lines()
        .filter(|l| l.starts_with("<rect") && l.contains("<title>"))
        .map(|l| Shape {
            y: attr(l, "y").unwrap_or_else(|| panic!("no y: {l}")),
            height: attr(l, "height").unwrap_or_else(|| panic!("no height: {l}")),
            width: attr(l, "width").unwrap_or_else(|| panic!("no width: {l}")),
            title: l.split("<title>").nth(1).and_then(|t| t.split("</title>").next()).unwrap_or("").to_string(),
        })
        .collect()
}

fn size(svg: &str) -> (f64, f64) {
    let head = svg.lines().next().unwrap_or("");
    (attr(head, "width").unwrap_or(0.0), attr(head, "height").unwrap_or(0.0))
}

/// Renders to PNG with rsvg-convert and returns the PNG's width and height.
fn render_png(svg: &str, name: &str) -> (u32, u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (svg_path, png_path) = (dir.path().join(format!("{name}.svg")), dir.path().join(format!("{name}.png")));
    std::fs::write(&svg_path, svg).expect("write svg");
    let out = std::process::Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png_path)
        .arg(&svg_path)
        .output()
        .expect("rsvg-convert not found: run scripts/setup.sh (Debian package librsvg2-bin)");
    assert!(out.status.success(), "rsvg-convert: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&png_path).expect("png written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (be(16), be(20))
}

fn mixed_seed_7() -> Report {
    run_seed(7, &SimArgs::new(Scenario::Mixed))
}

#[test]
fn faults_have_lanes_of_their_own_and_never_cover_a_bar() {
    let report = mixed_seed_7();
    assert!(report.outcome.faults.iter().any(|f| f.client.is_none()), "seed 7 has no etcd-wide fault");
    let svg = timeline::svg(&report);
    let shapes = titled_rects(&svg);
    let bars: Vec<&Shape> =
        shapes.iter().filter(|s| s.title.contains(" holder client ") || s.title.starts_with("cron run ")).collect();
    let faults: Vec<&Shape> =
        shapes.iter().filter(|s| s.title.contains("(etcd-wide)") || s.title.contains(" on client ")).collect();
    assert_eq!(bars.len(), report.outcome.intervals.len(), "a bar without its title");
    assert_eq!(faults.len(), report.outcome.faults.len(), "a fault without its title");
    for f in &faults {
        assert!(f.height <= 12.0, "a fault drawn as a band across lanes: {}", f.title);
        for b in &bars {
            let apart = f.y + f.height <= b.y || b.y + b.height <= f.y;
            assert!(apart, "{} drawn over {}", f.title, b.title);
        }
    }
    // etcd-wide faults above every client lane.
    let top_bar = bars.iter().map(|b| b.y).fold(f64::MAX, f64::min);
    for f in faults.iter().filter(|f| f.title.contains("(etcd-wide)")) {
        assert!(f.y + f.height < top_bar, "{} is not in the etcd lane", f.title);
    }
    // The hover title says who, the fencing token, start and end.
    for b in &bars {
        assert!(b.title.contains("client ") && b.title.contains(", rev ") && b.title.contains("s to "), "{}", b.title);
        assert!(b.width > 0.0);
    }
}

#[test]
fn the_options_wrap_inside_the_picture_and_the_verdict_is_on_it() {
    let report = mixed_seed_7();
    assert!(report.passed());
    let svg = timeline::svg(&report);
    let (width, height) = size(&svg);
    let header: Vec<&str> = svg.lines().filter(|l| l.contains(r#"font-size="12""#)).collect();
    assert!(header.len() >= 2, "the options are not wrapped: {header:?}");
    for line in &header {
        let text = line.split('>').nth(1).and_then(|t| t.split('<').next()).unwrap_or("");
        assert!(8.0 + text.chars().count() as f64 * 7.2 <= width, "cut at the right edge: {text}");
    }
    assert!(svg.contains(">verdict: ok, every guarantee held</text>"));
    assert_eq!(render_png(&svg, "seed7"), (width as u32, height as u32));
}

#[test]
fn each_violation_is_listed_and_marked_where_it_happened() {
    let broken = SimArgs {
        faults: Some(vec![FaultKind::Pause]),
        all_faults: true,
        sabotage: Sabotage::IgnoreDeadlines,
        ..SimArgs::new(Scenario::Elect)
    };
    let report =
        (1..=10).map(|s| run_seed(s, &broken)).find(|r| r.caught_by("bounded-holders")).expect("a failing seed");
    let svg = timeline::svg(&report);
    assert!(svg.contains(&format!(">verdict: FAIL, {} violation(s)</text>", report.violations.len())), "no verdict");
    for (k, v) in report.violations.iter().enumerate() {
        assert!(svg.contains(&format!(">[{}] {}: ", k + 1, v.checker)), "violation {} not listed", k + 1);
    }
    let timed = report.violations.iter().filter(|v| v.at.is_some()).count();
    assert!(timed > 0, "bounded-holders knows when it happened");
    let markers = svg.lines().filter(|l| l.starts_with("<line") && l.contains("stroke-dasharray")).count();
    assert_eq!(markers, timed);
    let (width, height) = size(&svg);
    assert_eq!(render_png(&svg, "failing"), (width as u32, height as u32));
}
