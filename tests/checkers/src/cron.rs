//! Cron at most once: no (job, tick) runs twice, and no tick is won twice.
use std::collections::BTreeMap;

use crate::record::Interval;

/// Labels (`job@tick`) of runs that ran more than once, with the count.
pub fn runs_twice(runs: &[Interval]) -> Vec<(&str, usize)> {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for iv in runs.iter().filter(|iv| !iv.label.is_empty()) {
        *n.entry(iv.label.as_str()).or_insert(0) += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_run_or_won_twice_is_caught() {
        let iv = |label: &str| Interval { client: 0, rev: 1, pid: 0, label: label.into(), start: 0, end: Some(1) };
        assert_eq!(runs_twice(&[iv("a@1"), iv("a@2"), iv("a@1")]), vec![("a@1", 2)]);
        assert_eq!(won_twice([("a", 1), ("a", 2), ("a", 2)]), vec![(("a", 2), 2)]);
    }
}
