//! Cron schedules and next-tick math, as Debian's cron reads them.
//!
//! 5-field expressions (`minute hour day-of-month month day-of-week`) with `*`, lists,
//! ranges, steps, month and weekday names (case-insensitive), Sunday as 0 or 7, and
//! Vixie's rule: when neither day field starts with `*`, a day matches if **either**
//! matches. Descriptors `@yearly @annually @monthly @weekly @daily @midnight @hourly`;
//! `@every <duration>` (≥ 1 s) ticks at whole multiples of the duration since the Unix
//! epoch, the same on every node; `@reboot` is refused. Zone: `--tz` or a `CRON_TZ=Zone `
//! prefix, default UTC.
//!
//! # Daylight saving, as Debian's cron does it
//!
//! A job at a fixed time or less often than hourly (neither the minute nor the hour field
//! starts with `*`) is matched on the wall clock: a time that falls into a skipped
//! interval runs once, right at the transition; a time in a repeated interval runs once
//! (its first occurrence). Other jobs follow the real clock. The algorithm is a port of
//! the `cronsim` package, which aims to match Debian's cron and is our test oracle
//! (`tests/vectors/cron.json`, checked by a unit test).
//!
//! Ticks are Unix seconds; the tick after `t` is strictly after `t`.
use std::time::Duration;

use chrono::{Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// Give up looking for a match this many years ahead (like `cronsim`).
const YEARS_AHEAD_MAX: i32 = 50;
/// Bounds the matching loop (each round moves the clock forward by at least a second).
const ROUNDS_MAX: u32 = 2_000_000;

/// Why a schedule was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// `@reboot` has no meaning for a cluster.
    #[error("@reboot is not supported: conchd runs a schedule across a cluster, which never reboots as a whole")]
    Reboot,
    /// Not five fields.
    #[error("schedule {0:?} needs 5 fields (minute hour day-of-month month day-of-week) or a descriptor like @daily, @every 5m")]
    FieldCount(String),
    /// A field that does not parse.
    #[error("bad {field} field {text:?}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its text.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An unknown descriptor.
    #[error("unknown descriptor {0:?}: use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>")]
    Descriptor(String),
    /// `@every` with a bad duration.
    #[error("@every needs a duration of at least 1s, like @every 30s or @every 1h: {0}")]
    Every(String),
    /// An unknown zone.
    #[error("unknown time zone {0:?}: use an IANA name like Europe/Berlin or America/New_York")]
    Zone(String),
    /// A day that no allowed month has.
    #[error("day-of-month {0} never occurs in the allowed months")]
    NeverMatches(u32),
}

/// A parsed schedule with its zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    tz: Tz,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Every(u64),
    Cron(Fields),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Fields {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    day_and: bool,
    /// Wall-clock matching with Debian's DST fix-up (see the module doc).
    fixup: bool,
}

impl Schedule {
    /// Parses an expression; `tz` (from `--tz`) wins over none, a `CRON_TZ=` prefix over UTC.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, ScheduleError> {
        let mut expr = expr.trim();
        let mut zone_name = tz.map(str::to_string);
        if let Some(rest) = expr.strip_prefix("CRON_TZ=") {
            let (zone, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if zone_name.is_none() {
                zone_name = Some(zone.to_string());
            }
            expr = tail.trim();
        }
        let tz = match zone_name {
            Some(name) => name.parse::<Tz>().map_err(|_| ScheduleError::Zone(name))?,
            None => Tz::UTC,
        };
        let kind = if let Some(descriptor) = expr.strip_prefix('@') {
            descriptor_kind(descriptor, tz)?
        } else {
            Kind::Cron(parse_fields(expr, tz)?)
        };
        Ok(Schedule { kind, tz })
    }

    /// The zone ticks are computed in.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `after` (Unix seconds), if any within 50 years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        match &self.kind {
            Kind::Every(period) => {
                let period = i64::try_from(*period).ok()?;
                Some((after.div_euclid(period) + 1).checked_mul(period)?)
            }
            Kind::Cron(fields) => Matcher::new(fields, self.tz, after)?.next(),
        }
    }

    /// The period of the schedule if it is `@every`, else the shortest gap between two
    /// ticks it can have (used for the "reached too late" rule): at most one day.
    pub fn period_hint(&self) -> Duration {
        match &self.kind {
            Kind::Every(p) => Duration::from_secs(*p),
            Kind::Cron(f) => {
                let gap = |mask: u64, span: u64| {
                    let set: Vec<u64> = (0..64).filter(|b| mask & (1 << b) != 0).collect();
                    let mut min = span;
                    for w in set.windows(2) {
                        min = min.min(w[1] - w[0]);
                    }
                    if let (Some(first), Some(last)) = (set.first(), set.last()) {
                        min = min.min(span - last + first);
                    }
                    min
                };
                if f.minutes.count_ones() > 1 {
                    Duration::from_secs(60 * gap(f.minutes, 60))
                } else if f.hours.count_ones() > 1 {
                    Duration::from_secs(3600 * gap(f.hours, 24))
                } else if f.hours.count_ones() == 1 && f.minutes.count_ones() == 1 {
                    Duration::from_secs(86_400)
                } else {
                    Duration::from_secs(3600)
                }
            }
        }
    }
}

fn descriptor_kind(descriptor: &str, tz: Tz) -> Result<Kind, ScheduleError> {
    let lower = descriptor.to_ascii_lowercase();
    let fields = match lower.as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        "reboot" => return Err(ScheduleError::Reboot),
        _ => {
            let Some(duration) = lower.strip_prefix("every") else {
                return Err(ScheduleError::Descriptor(format!("@{descriptor}")));
            };
            let d = crate::duration::parse(duration.trim()).map_err(|e| ScheduleError::Every(e.to_string()))?;
            if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
                return Err(ScheduleError::Every(format!(
                    "{} is not a whole number of seconds >= 1s",
                    duration.trim()
                )));
            }
            return Ok(Kind::Every(d.as_secs()));
        }
    };
    Ok(Kind::Cron(parse_fields(fields, tz)?))
}

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const DAYS_IN_MONTH: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn parse_fields(expr: &str, tz: Tz) -> Result<Fields, ScheduleError> {
    let upper = expr.to_ascii_uppercase();
    let parts: Vec<&str> = upper.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(ScheduleError::FieldCount(expr.to_string()));
    }
    let mut masks = [0u64; 5];
    for (i, part) in parts.iter().enumerate() {
        masks[i] = parse_field(i, part)?;
    }
    let day_and = parts[2].starts_with('*') || parts[4].starts_with('*');
    let min_day = masks[2].trailing_zeros();
    if min_day > 29 && day_and {
        let longest = (1..=12).filter(|m| masks[3] & (1 << m) != 0).map(|m| DAYS_IN_MONTH[m]).max().unwrap_or(0);
        if min_day > longest {
            return Err(ScheduleError::NeverMatches(min_day));
        }
    }
    let fixup = tz != Tz::UTC && !parts[0].starts_with('*') && !parts[1].starts_with('*');
    Ok(Fields {
        minutes: masks[0],
        hours: masks[1],
        days: masks[2],
        months: masks[3],
        weekdays: masks[4],
        day_and,
        fixup,
    })
}

fn parse_field(i: usize, text: &str) -> Result<u64, ScheduleError> {
    let err = |why| ScheduleError::Field { field: FIELD_NAMES[i], text: text.to_string(), why };
    let (lo, hi) = RANGES[i];
    let full = |lo: u32, hi: u32| (lo..=hi).fold(0u64, |m, v| m | (1 << v));
    if text == "*" {
        return Ok(full(lo, hi));
    }
    if text.contains(',') {
        let mut mask = 0;
        for term in text.split(',') {
            mask |= parse_field(i, term)?;
        }
        return Ok(mask);
    }
    let value = |s: &str| -> Result<u32, ScheduleError> {
        if i == 3 {
            if let Some(p) = MONTHS.iter().position(|m| *m == s) {
                return Ok(p as u32 + 1);
            }
        }
        if i == 4 {
            if let Some(p) = DAYS.iter().position(|d| *d == s) {
                return Ok(p as u32);
            }
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("expected a number or a name"));
        }
        let v: u32 = s.parse().map_err(|_| err("number too large"))?;
        if v < lo || v > hi {
            return Err(err("value out of range"));
        }
        Ok(v)
    };
    if let Some((term, step)) = text.split_once('/') {
        if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("bad step"));
        }
        let step: u32 = step.parse().map_err(|_| err("bad step"))?;
        if step == 0 {
            return Err(err("step must be at least 1"));
        }
        let items = parse_field(i, term)?;
        let sorted: Vec<u32> = (0..64).filter(|b| items & (1 << b) != 0).collect();
        let picked: Vec<u32> = if sorted.len() == 1 {
            (sorted[0]..=hi).step_by(step as usize).collect()
        } else {
            sorted.into_iter().step_by(step as usize).collect()
        };
        return Ok(picked.into_iter().fold(0, |m, v| m | (1 << v)));
    }
    if let Some((start, end)) = text.split_once('-') {
        let (start, end) = (value(start)?, value(end)?);
        if end < start {
            return Err(err("range ends before it starts"));
        }
        return Ok(full(start, end));
    }
    Ok(1 << value(text)?)
}

/// A wall-clock time with Python's `fold` (which of two repeated times it is).
#[derive(Clone, Copy, Debug)]
struct Wall {
    dt: NaiveDateTime,
    fold: bool,
}

struct Matcher<'a> {
    f: &'a Fields,
    tz: Tz,
    /// The zone's arithmetic: naive for UTC and for the DST fix-up mode.
    naive: bool,
    now: Wall,
}

impl<'a> Matcher<'a> {
    /// A matcher positioned at `start` (the first instant that may match).
    /// A matcher positioned one second after `after`, stepping in the schedule's mode
    /// (in the fix-up mode that second is a wall-clock second, as in `cronsim`).
    fn new(f: &'a Fields, tz: Tz, after: i64) -> Option<Matcher<'a>> {
        let utc = chrono::DateTime::from_timestamp(after, 0)?.naive_utc();
        let naive = f.fixup || tz == Tz::UTC;
        let now = from_utc(tz, utc);
        let mut m = Matcher { f, tz, naive, now: Wall { dt: now.dt, fold: if naive { false } else { now.fold } } };
        m.tick(1);
        Some(m)
    }

    fn tick(&mut self, secs: i64) {
        if self.naive {
            self.now.dt += chrono::Duration::seconds(secs);
        } else {
            let utc = to_utc(self.tz, self.now) + chrono::Duration::seconds(secs);
            self.now = from_utc(self.tz, utc);
        }
    }

    fn set(&mut self, dt: NaiveDateTime) {
        self.now.dt = dt;
    }

    fn next(mut self) -> Option<i64> {
        let start_year = self.now.dt.year();
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > ROUNDS_MAX {
                return None;
            }
            self.advance_month();
            if self.now.dt.year() > start_year + YEARS_AHEAD_MAX {
                return None;
            }
            if self.advance_day() || self.advance_hour() || self.advance_minute() || self.advance_second() {
                continue;
            }
            break;
        }
        if self.f.fixup {
            // Debian: a wall time in a skipped interval runs at the first real minute after.
            let mut wall = Wall { dt: self.now.dt, fold: false };
            for _ in 0..24 * 60 {
                if !matches!(self.tz.from_local_datetime(&wall.dt), LocalResult::None) {
                    break;
                }
                wall.dt += chrono::Duration::minutes(1);
            }
            return Some(to_utc(self.tz, wall).and_utc().timestamp());
        }
        Some(to_utc(self.tz, self.now).and_utc().timestamp())
    }

    fn advance_second(&mut self) -> bool {
        let second = self.now.dt.second();
        if second == 0 {
            return false;
        }
        self.tick(i64::from(60 - second));
        true
    }

    fn advance_minute(&mut self) -> bool {
        let has = |m: u32| self.f.minutes & (1 << m) != 0;
        if has(self.now.dt.minute()) {
            return false;
        }
        self.set(self.now.dt.with_second(0).unwrap_or(self.now.dt));
        if self.f.minutes.count_ones() == 1 {
            let target = self.f.minutes.trailing_zeros() as i64;
            let delta = (target - i64::from(self.now.dt.minute())).rem_euclid(60);
            self.tick(delta * 60);
        }
        for _ in 0..60 {
            if has(self.now.dt.minute()) {
                break;
            }
            self.tick(60);
            if self.now.dt.minute() == 0 {
                break;
            }
        }
        true
    }

    fn advance_hour(&mut self) -> bool {
        let has = |h: u32| self.f.hours & (1 << h) != 0;
        if has(self.now.dt.hour()) {
            return false;
        }
        let dt = self.now.dt;
        self.set(dt.with_minute(0).and_then(|d| d.with_second(0)).unwrap_or(dt));
        for _ in 0..48 {
            if has(self.now.dt.hour()) {
                break;
            }
            self.tick(3600);
            if self.now.dt.hour() == 0 {
                break;
            }
        }
        true
    }

    fn match_day(&self, d: NaiveDate) -> bool {
        let dom = self.f.days & (1 << d.day()) != 0;
        let dow_num = d.weekday().number_from_monday(); // Mon=1 .. Sun=7
        let dow = self.f.weekdays & (1 << dow_num) != 0 || self.f.weekdays & (1 << (dow_num % 7)) != 0;
        if self.f.day_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn advance_day(&mut self) -> bool {
        let mut needle = self.now.dt.date();
        if self.match_day(needle) {
            return false;
        }
        for _ in 0..32 {
            if self.match_day(needle) {
                break;
            }
            needle = needle.succ_opt().unwrap_or(needle);
            if needle.day() == 1 {
                break;
            }
        }
        self.now = Wall { dt: needle.and_time(NaiveTime::MIN), fold: false };
        true
    }

    fn advance_month(&mut self) {
        let has = |m: u32| self.f.months & (1 << m) != 0;
        if has(self.now.dt.month()) {
            return;
        }
        let mut needle = self.now.dt.date();
        for _ in 0..13 {
            if has(needle.month()) {
                break;
            }
            let (y, m) =
                if needle.month() == 12 { (needle.year() + 1, 1) } else { (needle.year(), needle.month() + 1) };
            needle = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(needle);
        }
        self.now = Wall { dt: needle.and_time(NaiveTime::MIN), fold: false };
    }
}

/// Wall time (and fold) of a UTC instant in `tz`.
fn from_utc(tz: Tz, utc: NaiveDateTime) -> Wall {
    let local = tz.from_utc_datetime(&utc).naive_local();
    let fold = match tz.from_local_datetime(&local) {
        LocalResult::Ambiguous(_, later) => later.naive_utc() == utc,
        _ => false,
    };
    Wall { dt: local, fold }
}

/// The UTC instant of a wall time, as Python's zoneinfo reads it: in a repeated
/// interval `fold` picks the occurrence; in a skipped one, fold 0 uses the offset in
/// effect before the transition.
fn to_utc(tz: Tz, wall: Wall) -> NaiveDateTime {
    match tz.from_local_datetime(&wall.dt) {
        LocalResult::Single(dt) => dt.naive_utc(),
        LocalResult::Ambiguous(early, late) => if wall.fold { late } else { early }.naive_utc(),
        LocalResult::None => {
            let probe =
                if wall.fold { wall.dt + chrono::Duration::hours(12) } else { wall.dt - chrono::Duration::hours(12) };
            let offset = match tz.from_local_datetime(&probe) {
                LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => dt.naive_local() - dt.naive_utc(),
                LocalResult::None => chrono::Duration::zero(),
            };
            wall.dt - offset
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
