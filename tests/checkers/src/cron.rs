//! Cron at most once: no tick runs twice, no tick is won twice, no two ticks share a
//! fencing token, and a run that starts after another ended has the higher token.
use std::collections::BTreeMap;

use crate::record::Interval;

/// Ticks of runs that ran more than once, with the count.
pub fn runs_twice(runs: &[Interval]) -> Vec<(&str, usize)> {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for tick in runs.iter().filter_map(|iv| iv.tick.as_deref()) {
        *n.entry(tick).or_insert(0) += 1;
    }
    n.into_iter().filter(|(_, k)| *k > 1).collect()
}

/// `(job, tick)`s won more than once, with the count.
pub fn won_twice<'a>(wins: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<((&'a str, i64), usize)> {
    let mut n: BTreeMap<(&str, i64), usize> = BTreeMap::new();
    for w in wins {
        *n.entry(w).or_insert(0) += 1;
    }
    n.into_iter().filter(|(_, k)| *k > 1).collect()
}

/// Two ticks with one token (every tick has a claim of its own): `(tick, other tick, rev)`.
pub fn tokens_shared(runs: &[Interval]) -> Vec<(&str, &str, i64)> {
    let mut by_rev: BTreeMap<i64, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for iv in runs {
        let Some(tick) = iv.tick.as_deref() else { continue };
        match by_rev.insert(iv.rev, tick) {
            Some(other) if other != tick => out.push((other, tick, iv.rev)),
            _ => {}
        }
    }
    out
}

/// Runs that break succession: `(earlier, later)`, the later one started after the
/// earlier one ended with a token not above it (as for an office). Claims of neighbouring
/// ticks may land out of order while both runs overlap (a claim retried on another member
/// lands late): runs of different ticks may overlap under `--overlap allow`.
pub fn successions(runs: &[Interval]) -> Vec<(&Interval, &Interval)> {
    let ticked: Vec<&Interval> = runs.iter().filter(|iv| iv.tick.is_some()).collect();
    let mut out = Vec::new();
    for a in &ticked {
        for b in &ticked {
            if a.end.is_some_and(|e| b.start > e) && b.rev <= a.rev {
                out.push((*a, *b));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tick: &str, rev: i64, start: u64, end: u64) -> Interval {
        Interval { client: 0, rev, pid: 0, start, end: Some(end), tick: Some(tick.into()), signalled: false }
    }

    #[test]
    fn a_tick_run_or_won_twice_is_caught() {
        assert_eq!(runs_twice(&[run("a@1", 1, 0, 1), run("a@2", 2, 0, 1), run("a@1", 1, 0, 1)]), vec![("a@1", 2)]);
        assert_eq!(won_twice([("a", 1), ("a", 2), ("a", 2)]), vec![(("a", 2), 2)]);
    }

    #[test]
    fn a_shared_token_or_a_token_going_back_is_caught() {
        let runs = [run("t1", 5, 0, 10), run("t2", 5, 2, 12), run("t3", 4, 20, 30), run("t4", 9, 5, 8)];
        assert_eq!(tokens_shared(&runs), vec![("t1", "t2", 5)]);
        let back: Vec<(i64, i64)> = successions(&runs).iter().map(|(a, b)| (a.rev, b.rev)).collect();
        assert_eq!(back, vec![(5, 4), (5, 4), (9, 4)]);
        // Overlapping runs out of order are allowed; a run without a tick is not a cron run.
        let mut untagged = run("t5", 1, 40, 50);
        untagged.tick = None;
        assert!(successions(&[run("t1", 5, 0, 10), run("t2", 4, 5, 12), untagged]).is_empty());
    }
}
