//! Schedule parsing and next-tick math: golden cases, refusals, and every vector the
//! `cronsim` oracle generated (`scripts/gen-cron-vectors.py`).
use super::*;

const VECTORS: &str = include_str!("../vectors/cron.jsonl");

fn ticks(expr: &str, tz: &str, from: i64, n: usize) -> Vec<i64> {
    let s = Schedule::parse(expr, Some(tz)).unwrap_or_else(|e| panic!("{expr} {tz}: {e}"));
    let mut out = Vec::new();
    let mut t = from;
    for _ in 0..n {
        match s.next_after(t) {
            Some(next) => {
                out.push(next);
                t = next;
            }
            None => break,
        }
    }
    out
}

fn unix(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
}

#[test]
fn every_oracle_vector_matches() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in VECTORS.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (expr, tz, from) = (v["expr"].as_str().unwrap(), v["tz"].as_str().unwrap(), v["from"].as_i64().unwrap());
        let want: Vec<i64> = v["next"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let got = ticks(expr, tz, from, want.len());
        if got != want {
            failures.push(format!("{expr:?} {tz} from {from}: got {got:?} want {want:?}"));
        }
        checked += 1;
    }
    assert!(checked > 4000, "only {checked} vectors");
    assert!(
        failures.is_empty(),
        "{} of {checked} vectors differ, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

#[test]
fn golden_dst_cases() {
    // (expr, zone, from, expected ticks as RFC 3339)
    let table: &[(&str, &str, &str, &[&str])] = &[
        // Berlin spring forward 2025-03-30 02:00 → 03:00: 02:30 runs once at the transition.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2025-03-29T12:00:00Z",
            &["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"],
        ),
        // Berlin fall back 2025-10-26 03:00 → 02:00: 02:30 runs once (first occurrence).
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2025-10-25T12:00:00Z",
            &["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"],
        ),
        // Hourly-or-more-often jobs follow the real clock: the repeated hour runs twice.
        (
            "30 * * * *",
            "Europe/Berlin",
            "2025-10-26T00:00:00Z",
            &["2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00"],
        ),
        // Lord Howe: a 30-minute shift (2025-10-05 02:00 → 02:30).
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2025-10-04T00:00:00Z",
            &["2025-10-05T02:30:00+11:00", "2025-10-06T02:15:00+11:00"],
        ),
        // @every ticks at multiples since the epoch, whatever the zone.
        ("@every 90s", "Asia/Kolkata", "1970-01-01T00:00:00Z", &["1970-01-01T00:01:30Z", "1970-01-01T00:03:00Z"]),
        // Vixie's OR rule when both day fields are restricted: the 1st, and every Friday.
        (
            "0 0 1 * 5",
            "UTC",
            "2025-08-27T00:00:00Z",
            &["2025-08-29T00:00:00Z", "2025-09-01T00:00:00Z", "2025-09-05T00:00:00Z"],
        ),
    ];
    for (expr, tz, from, want) in table {
        let got = ticks(expr, tz, unix(from), want.len());
        let want: Vec<i64> = want.iter().map(|w| unix(w)).collect();
        assert_eq!(got, want, "{expr} {tz}");
    }
}

#[test]
fn refusals_say_what_is_wrong() {
    let table: &[(&str, Option<&str>, &str)] = &[
        ("@reboot", None, "@reboot is not supported"),
        ("* * * *", None, "needs 5 fields"),
        ("60 * * * *", None, "bad minute field"),
        ("* 24 * * *", None, "bad hour field"),
        ("* * 0 * *", None, "bad day-of-month field"),
        ("* * * 13 *", None, "bad month field"),
        ("* * * * 8", None, "bad day-of-week field"),
        ("*/0 * * * *", None, "step must be at least 1"),
        ("5-1 * * * *", None, "range ends before it starts"),
        ("0 0 31 2 *", None, "never occurs"),
        ("@fortnightly", None, "unknown descriptor"),
        ("@every 500ms", None, "@every needs"),
        ("@every 1.5", None, "@every needs"),
        ("0 0 * * *", Some("Mars/Olympus"), "unknown time zone"),
        ("CRON_TZ=Nowhere/Land 0 0 * * *", None, "unknown time zone"),
    ];
    for (expr, tz, needle) in table {
        let err = Schedule::parse(expr, *tz).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(needle), "{expr}: {err}");
    }
}

#[test]
fn names_are_case_insensitive_and_sunday_is_0_or_7() {
    let from = unix("2025-01-01T00:00:00Z");
    assert_eq!(ticks("0 0 * JAN sun", "UTC", from, 3), ticks("0 0 * 1 7", "UTC", from, 3));
    assert_eq!(ticks("0 0 * * Mon-Fri", "UTC", from, 5), ticks("0 0 * * 1-5", "UTC", from, 5));
    assert_eq!(ticks("CRON_TZ=Europe/Berlin 0 3 * * *", "UTC", from, 1), ticks("0 3 * * *", "UTC", from, 1));
    // --tz wins over the prefix.
    let s = Schedule::parse("CRON_TZ=Europe/Berlin 0 3 * * *", Some("Asia/Kolkata")).unwrap();
    assert_eq!(s.tz(), chrono_tz::Tz::Asia__Kolkata);
}
