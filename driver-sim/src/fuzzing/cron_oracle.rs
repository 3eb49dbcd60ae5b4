//! A brute-force oracle for the `schedule` fuzz target: a second, deliberately naive
//! reading of a 5-field cron expression (written from the `schedule` module's doc, not
//! from its code) and a minute-by-minute scan of a bounded window. It answers only where
//! the naive reading is exact: the zone's offset is the same from a day before the
//! window to its end (so Debian's DST fix-ups cannot apply), and the expression is one
//! this parser reads. Everything else is `None` (no opinion). The simulator's cron
//! checkers read their expected ticks from it too (`check_cron::job_ticks`).
use chrono::{Datelike, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

/// Minutes scanned after `after`.
pub const WINDOW_MINUTES: i64 = 3 * 24 * 60;
/// The offset must be stable this long before `after` (a repeated hour behind us changes
/// what a fixed-time job does next).
const STABLE_BEFORE_S: i64 = 24 * 3600;

/// What the scan says about the first tick strictly after `after`.
#[derive(Debug, PartialEq, Eq)]
pub enum Expect {
    /// This tick.
    At(i64),
    /// None up to and including this instant.
    NoneUpTo(i64),
}

/// The naive fields: value sets and Vixie's day rule.
pub struct Naive {
    sets: [Vec<bool>; 5],
    day_and: bool,
}

const BOUNDS: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Naive {
    /// Reads `expr` (a `CRON_TZ=` prefix and the descriptors with fixed fields included);
    /// `None` for anything else, `@every` among them.
    pub fn parse(expr: &str) -> Option<Naive> {
        let mut text = expr.trim().to_ascii_uppercase();
        if let Some(rest) = text.strip_prefix("CRON_TZ=") {
            text = rest.split_once(char::is_whitespace).map_or("", |(_, t)| t).trim().to_string();
        }
        let text = match text.as_str() {
            "@YEARLY" | "@ANNUALLY" => "0 0 1 1 *".to_string(),
            "@MONTHLY" => "0 0 1 * *".to_string(),
            "@WEEKLY" => "0 0 * * 0".to_string(),
            "@DAILY" | "@MIDNIGHT" => "0 0 * * *".to_string(),
            "@HOURLY" => "0 * * * *".to_string(),
            t if t.starts_with('@') => return None,
            t => t.to_string(),
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return None;
        }
        let mut sets: [Vec<bool>; 5] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            let (lo, hi) = BOUNDS[i];
            let mut set = vec![false; hi as usize + 1];
            for term in part.split(',') {
                for v in term_values(i, term, lo, hi)? {
                    set[v as usize] = true;
                }
            }
            sets[i] = set;
        }
        // Sunday is 0 or 7.
        if sets[4][7] {
            sets[4][0] = true;
        }
        let day_and = parts[2].starts_with('*') || parts[4].starts_with('*');
        Some(Naive { sets, day_and })
    }

    /// Whether the wall-clock minute matches.
    fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let dom = self.sets[2][day as usize];
        let dow = self.sets[4][weekday as usize];
        let day_ok = if self.day_and { dom && dow } else { dom || dow };
        self.sets[0][minute as usize] && self.sets[1][hour as usize] && self.sets[3][month as usize] && day_ok
    }

    /// Every tick in `(after, to]` in `tz`, minute by minute (the simulator's cron
    /// checkers); `None` when the offset moves within a day before `after` or up to `to`.
    pub fn ticks(&self, tz: Tz, after: i64, to: i64) -> Option<Vec<i64>> {
        let first = stable_from(tz, after, to)?;
        self.matching(tz, first, to).collect()
    }

    /// Scans the minutes after `after` in `tz`; `None` when the offset moves.
    pub fn expect(&self, tz: Tz, after: i64) -> Option<Expect> {
        let last = (after.div_euclid(60) + WINDOW_MINUTES) * 60;
        let first = stable_from(tz, after, last)?;
        match self.matching(tz, first, last).next() {
            Some(tick) => Some(Expect::At(tick?)),
            None => Some(Expect::NoneUpTo(last)),
        }
    }

    /// The matching minutes of `[first, last]` in `tz`, in order (`None` for a local time
    /// that does not exist once).
    fn matching(&self, tz: Tz, first: i64, last: i64) -> impl Iterator<Item = Option<i64>> + '_ {
        (0..=(last - first).div_euclid(60)).map(move |i| first + i * 60).filter_map(move |t| {
            let Some(local) = tz.timestamp_opt(t, 0).single() else { return Some(None) };
            let weekday = local.weekday().num_days_from_sunday();
            self.matches(local.minute(), local.hour(), local.day(), local.month(), weekday).then_some(Some(t))
        })
    }
}

/// The first whole minute after `after` when `tz`'s offset is the same from a day before
/// `after` to `last`; `None` when it moves (or a time is ambiguous). chrono-tz's
/// transitions fall on whole hours or half hours: checking every 30 minutes finds any.
fn stable_from(tz: Tz, after: i64, last: i64) -> Option<i64> {
    let offset = |t: i64| tz.timestamp_opt(t, 0).single().map(|d| d.offset().fix().local_minus_utc());
    let base = offset(after)?;
    let mut probe = after - STABLE_BEFORE_S;
    while probe < last {
        if offset(probe)? != base {
            return None;
        }
        probe += 1800;
    }
    (offset(last)? == base).then_some((after.div_euclid(60) + 1) * 60)
}

/// The values one comma-separated term stands for: `*`, `v`, `a-b`, each with `/step`.
/// A term that stands for one value runs to the field's end under a step (`5/15`, and
/// also `5-5/2`: cronsim's reading, which the schedule module ports; Debian's cron reads
/// `5-5/2` as 5 alone).
fn term_values(i: usize, term: &str, lo: u32, hi: u32) -> Option<Vec<u32>> {
    let (base, step) = match term.split_once('/') {
        Some((b, s)) => {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || s.len() > 9 {
                return None;
            }
            let step: u32 = s.parse().ok()?;
            if step == 0 {
                return None;
            }
            (b, Some(step))
        }
        None => (term, None),
    };
    let (start, end) = if base == "*" {
        (lo, hi)
    } else if let Some((a, b)) = base.split_once('-') {
        (value(i, a, lo, hi)?, value(i, b, lo, hi)?)
    } else {
        let v = value(i, base, lo, hi)?;
        (v, v)
    };
    if end < start {
        return None;
    }
    let end = if start == end && step.is_some() { hi } else { end };
    Some((start..=end).step_by(step.unwrap_or(1) as usize).collect())
}

fn value(i: usize, s: &str, lo: u32, hi: u32) -> Option<u32> {
    if i == 3 {
        if let Some(p) = MONTHS.iter().position(|m| *m == s) {
            return Some(p as u32 + 1);
        }
    }
    if i == 4 {
        if let Some(p) = DAYS.iter().position(|d| *d == s) {
            return Some(p as u32);
        }
    }
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: u32 = s.parse().ok()?;
    (lo..=hi).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_reads_the_common_forms() {
        let at = |expr: &str, after: i64| Naive::parse(expr).and_then(|n| n.expect(Tz::UTC, after));
        // 2023-11-14T22:13:20Z.
        let t = 1_700_000_000;
        assert_eq!(at("* * * * *", t), Some(Expect::At(1_700_000_040)));
        assert_eq!(at("0 * * * *", t), Some(Expect::At(1_700_002_800)));
        assert_eq!(at("5-5/2 * * * *", t), at("5/2 * * * *", t));
        assert_eq!(at("0 0 29 2 *", t), Some(Expect::NoneUpTo(t - 20 + 60 * WINDOW_MINUTES)));
        assert!(at("@every 5m", t).is_none());
    }
}
