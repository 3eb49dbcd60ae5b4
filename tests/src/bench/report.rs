//! The table (`measure | conch | etcdctl | ratio | target | met`, Markdown so it pastes
//! into the README), its JSON, and the comparison with an earlier run's JSON.
use serde_json::{json, Value};

/// What a row must meet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Nothing: a floor or a context figure.
    None,
    /// conch ÷ etcdctl at most this.
    RatioAtMost(f64),
    /// conch's figure at most this (the row's unit).
    AtMost(f64),
    /// conch's figure at least this.
    AtLeast(f64),
    /// conch's figure at most etcdctl's.
    NotAboveEtcdctl,
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// B1..B8.
    pub id: &'static str,
    /// What is measured.
    pub measure: String,
    /// conch's figure.
    pub conch: Option<f64>,
    /// etcdctl's figure.
    pub etcdctl: Option<f64>,
    /// `ms`, `MiB`, `x`, `%`, `` (a count).
    pub unit: &'static str,
    /// What conch must meet.
    pub target: Target,
    /// Shown instead of a missing figure (`never`, `n/a`), or after it.
    pub conch_note: String,
    /// The same for etcdctl.
    pub etcdctl_note: String,
    /// Samples per tool.
    pub samples: usize,
}

impl Row {
    /// A row with both figures.
    pub fn new(id: &'static str, measure: impl Into<String>, unit: &'static str, target: Target) -> Row {
        Row {
            id,
            measure: measure.into(),
            conch: None,
            etcdctl: None,
            unit,
            target,
            conch_note: String::new(),
            etcdctl_note: String::new(),
            samples: 0,
        }
    }

    /// Sets the figures.
    pub fn figures(mut self, conch: Option<f64>, etcdctl: Option<f64>, samples: usize) -> Row {
        (self.conch, self.etcdctl, self.samples) = (conch, etcdctl, samples);
        self
    }

    /// Sets the notes.
    pub fn notes(mut self, conch: impl Into<String>, etcdctl: impl Into<String>) -> Row {
        (self.conch_note, self.etcdctl_note) = (conch.into(), etcdctl.into());
        self
    }

    /// A measure that could not run.
    pub fn failed(id: &'static str, why: &str) -> Row {
        Row::new(id, "failed", "", Target::None).notes(format!("error: {why}"), "")
    }

    /// conch ÷ etcdctl.
    pub fn ratio(&self) -> Option<f64> {
        match (self.conch, self.etcdctl) {
            (Some(c), Some(e)) if e > 0.0 => Some(c / e),
            _ => None,
        }
    }

    /// Whether the target is met (`None`: no target, or no figure to judge).
    pub fn met(&self) -> Option<bool> {
        let c = self.conch?;
        match self.target {
            Target::None => None,
            Target::RatioAtMost(r) => self.ratio().map(|x| x <= r),
            Target::AtMost(v) => Some(c <= v),
            Target::AtLeast(v) => Some(c >= v),
            Target::NotAboveEtcdctl => self.etcdctl.map(|e| c <= e),
        }
    }

    fn value(&self, v: Option<f64>, note: &str) -> String {
        let figure = v.map(|v| format_value(v, self.unit));
        match (figure, note.is_empty()) {
            (Some(f), true) => f,
            (Some(f), false) => format!("{f} ({note})"),
            (None, false) => note.to_string(),
            (None, true) => "—".to_string(),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::None => "—".to_string(),
            Target::RatioAtMost(r) => format!("≤ {r}×"),
            Target::AtMost(v) => format!("≤ {}", format_value(v, self.unit)),
            Target::AtLeast(v) => format!("≥ {}", format_value(v, self.unit)),
            Target::NotAboveEtcdctl => "≤ etcdctl".to_string(),
        }
    }

    /// The row as JSON.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "measure": self.measure, "unit": self.unit,
            "conch": self.conch, "etcdctl": self.etcdctl, "ratio": self.ratio(),
            "target": self.target_text(), "met": self.met(),
            "conch_note": self.conch_note, "etcdctl_note": self.etcdctl_note, "samples": self.samples,
        })
    }
}

fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "ms" if v >= 1000.0 => format!("{v:.0} ms"),
        "ms" => format!("{v:.1} ms"),
        "MiB" => format!("{v:.1} MiB"),
        "x" if v >= 1000.0 => format!("{}×", thousands(v)),
        "x" => format!("{v:.2}×"),
        "%" => format!("{v:.1} %"),
        _ => thousands(v),
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| measure | conch | etcdctl | ratio | target | met |\n| --- | --- | --- | --- | --- | --- |\n");
    for r in rows {
        let ratio = r.ratio().map_or("—".to_string(), |x| format!("{x:.2}×"));
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let n = if r.samples > 0 { format!(" (n={})", r.samples) } else { String::new() };
        out.push_str(&format!(
            "| {} {}{n} | {} | {} | {ratio} | {} | {met} |\n",
            r.id,
            r.measure,
            r.value(r.conch, &r.conch_note),
            r.value(r.etcdctl, &r.etcdctl_note),
            r.target_text()
        ));
    }
    out
}

/// The run as JSON: when, where, with what, and the rows.
pub fn document(rows: &[Row], about: Value) -> Value {
    json!({"about": about, "rows": rows.iter().map(Row::json).collect::<Vec<_>>()})
}

/// Lines comparing this run with an earlier one, row by row (same id and measure).
pub fn compare(rows: &[Row], earlier: &Value) -> String {
    let mut out = String::from("| measure | conch before | conch now | change |\n| --- | --- | --- | --- |\n");
    let old_rows = earlier["rows"].as_array().cloned().unwrap_or_default();
    for r in rows {
        let old = old_rows.iter().find(|o| o["id"] == r.id && o["measure"] == r.measure.as_str());
        let before = old.and_then(|o| o["conch"].as_f64());
        let change = match (before, r.conch) {
            (Some(b), Some(n)) if b != 0.0 => format!("{:+.0} %", (n - b) / b * 100.0),
            _ => "—".to_string(),
        };
        out.push_str(&format!(
            "| {} {} | {} | {} | {change} |\n",
            r.id,
            r.measure,
            before.map_or("—".to_string(), |b| format_value(b, r.unit)),
            r.conch.map_or("—".to_string(), |n| format_value(n, r.unit)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets() {
        let r = Row::new("B1", "x", "ms", Target::RatioAtMost(0.25)).figures(Some(8.0), Some(32.0), 3);
        assert_eq!(r.met(), Some(true));
        let r = Row::new("B3", "x", "ms", Target::AtMost(5.0)).figures(Some(6.0), None, 3).notes("", "never");
        assert_eq!(r.met(), Some(false));
        assert!(table(&[r]).contains("| never |"));
        assert_eq!(thousands(123456.0), "123 456");
    }
}
