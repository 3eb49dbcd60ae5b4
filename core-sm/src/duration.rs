//! Human durations: `500ms`, `10s`, `1m30s`, `2h` — parsed and printed back.
//!
//! A number always carries a unit (`10` alone is refused: seconds or milliseconds?), units
//! go from larger to smaller, and there is no sign, so `-1s` is refused too.
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("invalid duration {input:?}: {reason} (use forms like 500ms, 10s, 1m30s, 2h)")]
pub struct DurationError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
/// Longest duration accepted: 100 days, far beyond any TTL or wait anyone means.
const MILLIS_MAX: u64 = 100 * 24 * 3_600_000;

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
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err("expected a number"));
        }
        let number: u64 = input[start..i].parse().map_err(|_| err("number too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &input[unit_start..i];
        if unit.is_empty() {
            return Err(err("missing unit"));
        }
        let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(err("unknown unit (allowed: h, m, s, ms)"));
        };
        if last_unit_rank.is_some_and(|last| rank <= last) {
            return Err(err("units must go from larger to smaller, each once"));
        }
        last_unit_rank = Some(rank);
        let millis = number.checked_mul(UNITS[rank].1).ok_or_else(|| err("too large"))?;
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
        ];
        for (input, millis) in table {
            assert_eq!(parse(input), Ok(Duration::from_millis(*millis)), "{input}");
        }
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        for input in ["", "10", "-1s", "1x", "s", "1s1m", "1s1s", "1.5s", " 1s", "99999999999999999999h", "2401h"] {
            assert!(parse(input).is_err(), "{input} should be refused");
        }
        let msg = parse("10").map(|_| ()).unwrap_err().to_string();
        assert!(msg.contains("missing unit") && msg.contains("10s"), "{msg}");
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
