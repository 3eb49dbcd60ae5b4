//! Human durations: `500ms`, `10s`, `1m30s`, `2h`, `1.5s`, and a bare `10` (seconds) —
//! parsed and printed back.
//!
//! As `timeout(1)`, `flock -w`, systemd and `etcdctl --ttl` take them: a bare number is
//! seconds (`10`, `0.5`), and any number may have a decimal part (`1.5s`, `1.5m` is 90 s,
//! `0.25h` is 15 min). Units go from larger to smaller, each once (`1m30s`); a bare number
//! only stands alone (`1m30` is refused: 30 what?). The resolution is a millisecond: a
//! value finer than that (`1.0005s`) is refused rather than rounded. There is no sign, so
//! `-1s` is refused too.
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("invalid duration {input:?}: {reason} (use forms like 10, 1.5s, 500ms, 1m30s, 2h; a bare number is seconds)")]
pub struct DurationError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
/// Longest duration accepted: 100 days, far beyond any TTL or wait anyone means.
const MILLIS_MAX: u64 = 100 * 24 * 3_600_000;
/// Most digits after the decimal point: more can only be finer than a millisecond or zeros.
const FRACTION_DIGITS_MAX: usize = 9;

/// Parses a human duration.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    if input.is_empty() {
        return Err(err("empty"));
    }
    if input.starts_with('-') {
        return Err(err("negative durations are not allowed"));
    }
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit_rank: Option<usize> = None;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(err("expected a number"));
        }
        let (whole, fraction) = match input[start..i].split_once('.') {
            Some((w, f)) => (w, f),
            None => (&input[start..i], ""),
        };
        if whole.is_empty() || fraction.contains('.') || (input[start..i].contains('.') && fraction.is_empty()) {
            return Err(err("expected a number like 10 or 1.5"));
        }
        if fraction.len() > FRACTION_DIGITS_MAX {
            return Err(err("finer than a millisecond"));
        }
        let whole: u64 = whole.parse().map_err(|_| err("number too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &input[unit_start..i];
        let rank = if unit.is_empty() {
            // A bare number is seconds, and only on its own.
            if start != 0 || i != bytes.len() {
                return Err(err("missing unit"));
            }
            2
        } else {
            UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(|| err("unknown unit (allowed: h, m, s, ms)"))?
        };
        if last_unit_rank.is_some_and(|last| rank <= last) {
            return Err(err("units must go from larger to smaller, each once"));
        }
        last_unit_rank = Some(rank);
        let size = UNITS[rank].1;
        // fraction × size, in units of 10^-digits ms; it must come out whole.
        let scale = 10u64.pow(fraction.len() as u32);
        let fraction_value: u64 =
            if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| err("bad fraction"))? };
        let scaled = fraction_value.checked_mul(size).ok_or_else(|| err("too large"))?;
        if scaled % scale != 0 {
            return Err(err("finer than a millisecond"));
        }
        let millis =
            whole.checked_mul(size).and_then(|m| m.checked_add(scaled / scale)).ok_or_else(|| err("too large"))?;
        total = total.checked_add(millis).ok_or_else(|| err("too large"))?;
    }
    if total > MILLIS_MAX {
        return Err(err("too large (at most 100 days)"));
    }
    Ok(Duration::from_millis(total))
}

/// Prints a duration in the form [`parse`] reads (sub-millisecond parts are dropped).
pub fn format(d: Duration) -> String {
    let mut millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        let n = millis / size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            millis -= n * size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_human_forms() {
        let table: &[(&str, u64)] = &[
            ("500ms", 500),
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("0s", 0),
            ("1h1m1s1ms", 3_661_001),
            // A bare number is seconds, as timeout(1), flock -w, systemd and etcdctl.
            ("10", 10_000),
            ("0", 0),
            ("0.5", 500),
            ("2.250", 2_250),
            ("1.5s", 1_500),
            ("1.5m", 90_000),
            ("0.25h", 900_000),
            ("1m0.5s", 60_500),
            ("0.001s", 1),
        ];
        for (input, millis) in table {
            assert_eq!(parse(input), Ok(Duration::from_millis(*millis)), "{input}");
        }
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        let table = [
            "",
            "-1s",
            "1x",
            "s",
            "1s1m",
            "1s1s",
            " 1s",
            "99999999999999999999h",
            "2401h",
            "1m30",
            "10 s",
            ".5s",
            "1.s",
            "1.2.3s",
            "1.5ms",
            "0.0001s",
            "1.0000000001s",
            "1.",
        ];
        for input in table {
            assert!(parse(input).is_err(), "{input} should be refused");
        }
        let msg = parse("1m30").map(|_| ()).unwrap_err().to_string();
        assert!(msg.contains("missing unit") && msg.contains("bare number is seconds"), "{msg}");
    }

    #[test]
    fn format_round_trips() {
        for millis in [0u64, 1, 999, 1000, 90_000, 3_661_001, 7_200_000] {
            let d = Duration::from_millis(millis);
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_millis(90_000)), "1m30s");
    }
}
