//! Bounded holders: never more than `max` children of a contest at once, except a child
//! whose client is inside an exception [`Window`] (a window without a client covers every
//! child). Window edges split the sweep, so windows of one client may chain.
use std::collections::{BTreeMap, BTreeSet};

use crate::record::{Interval, Window};

/// A stretch with more than `max` holders outside every window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excess {
    /// From.
    pub from: u64,
    /// To.
    pub to: u64,
    /// Every holder then, `(client, rev)`.
    pub holders: Vec<(usize, i64)>,
}

/// What the sweep found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlap {
    /// Longest stretch above capacity inside windows, per window label (ms).
    pub covered_ms: BTreeMap<String, u64>,
    /// Longest stretch above capacity anywhere (ms), covered or not.
    pub max_ms: u64,
    /// Stretches above capacity outside the windows.
    pub violations: Vec<Excess>,
}

/// Sweeps the intervals (an unended one lasts until `until`; one that ended at the
/// instant it started held nothing). Ends sort before starts at one instant: a handoff at
/// one instant is no overlap.
pub fn over_capacity(intervals: &[Interval], max: usize, until: u64, windows: &[Window]) -> Overlap {
    let mut out = Overlap::default();
    let mut edges: Vec<(u64, i32, usize)> = intervals
        .iter()
        .enumerate()
        .filter(|(_, iv)| iv.end_or(until) > iv.start)
        .flat_map(|(k, iv)| [(iv.start, 1, k), (iv.end_or(until), -1, k)])
        .collect();
    edges.extend(windows.iter().flat_map(|w| [(w.from, 0, 0), (w.to, 0, 0)]));
    edges.sort_by_key(|(t, d, k)| (*t, *d, *k));
    let mut active: BTreeSet<usize> = BTreeSet::new();
    let mut excess_since: Option<u64> = None;
    for w in 0..edges.len() {
        let (t, d, k) = edges[w];
        if d > 0 {
            active.insert(k);
        } else if d < 0 {
            active.remove(&k);
        }
        let next = edges.get(w + 1).map_or(t, |e| e.0);
        if next == t {
            continue;
        }
        if active.len() <= max {
            if let Some(from) = excess_since.take() {
                out.max_ms = out.max_ms.max((t - from) / 1_000_000);
            }
            continue;
        }
        excess_since.get_or_insert(t);
        let covering = |client: usize| {
            windows.iter().find(|w| w.client.is_none_or(|c| c == client) && w.from <= t && next <= w.to)
        };
        let unexcused = active.iter().filter(|k| covering(intervals[**k].client).is_none()).count();
        if unexcused > max {
            let holders = active.iter().map(|k| (intervals[*k].client, intervals[*k].rev)).collect();
            match out.violations.last_mut() {
                Some(last) if last.to == t && last.holders == holders => last.to = next,
                _ => out.violations.push(Excess { from: t, to: next, holders }),
            }
        } else if let Some(w) = active.iter().find_map(|k| covering(intervals[*k].client)) {
            let e = out.covered_ms.entry(w.label.clone()).or_insert(0);
            *e = (*e).max((next - t) / 1_000_000);
        }
    }
    if let Some(from) = excess_since {
        let end = edges.last().map_or(from, |e| e.0);
        out.max_ms = out.max_ms.max(end.saturating_sub(from) / 1_000_000);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(client: usize, rev: i64, start: u64, end: u64) -> Interval {
        Interval { client, rev, pid: 0, start, end: Some(end), tick: None, signalled: false }
    }

    #[test]
    fn an_overlap_is_caught_and_a_window_excuses_only_its_client() {
        let ivs = [iv(0, 1, 0, 100), iv(1, 2, 50, 200)];
        let over = over_capacity(&ivs, 1, 300, &[]);
        assert_eq!(over.violations, vec![Excess { from: 50, to: 100, holders: vec![(0, 1), (1, 2)] }]);
        let mine = Window { client: Some(1), from: 40, to: 120, label: "revoke".into() };
        assert!(over_capacity(&ivs, 1, 300, &[mine]).violations.is_empty());
        let other = Window { client: Some(7), from: 40, to: 120, label: "revoke".into() };
        assert_eq!(over_capacity(&ivs, 1, 300, &[other]).violations.len(), 1);
    }

    #[test]
    fn a_handoff_at_one_instant_is_no_overlap() {
        let ivs = [iv(0, 1, 0, 100), iv(1, 2, 100, 200), iv(2, 3, 150, 150)];
        assert!(over_capacity(&ivs, 1, 300, &[]).violations.is_empty());
    }

    #[test]
    fn an_unended_interval_lasts_until_the_end() {
        let ivs = [Interval { end: None, ..iv(0, 1, 0, 0) }, iv(1, 2, 250, 280)];
        assert_eq!(over_capacity(&ivs, 1, 300, &[]).violations.len(), 1);
    }
}
