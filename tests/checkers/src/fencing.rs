//! Fencing: across successive holders of an office the token strictly increases; in a
//! semaphore no token is used twice; every token is its holder key's create revision, and
//! that key exists when the child starts (unless the caller excuses the start: an
//! administrative delete just before it).
use crate::record::{Interval, Start};

/// Two intervals that break fencing: `(earlier, later)`.
pub fn successions(intervals: &[Interval], office: bool) -> Vec<(&Interval, &Interval)> {
    let mut sorted: Vec<&Interval> = intervals.iter().collect();
    sorted.sort_by_key(|iv| (iv.start, iv.end));
    let mut out = Vec::new();
    for (k, a) in sorted.iter().enumerate() {
        for b in &sorted[k + 1..] {
            let broken = if office {
                a.end.is_some_and(|end| b.start >= end) && b.rev <= a.rev
            } else {
                // One child logged by two harness records shares its pid; pid 0 is none.
                a.rev == b.rev && (a.pid != b.pid || a.pid == 0)
            };
            if broken {
                out.push((*a, *b));
            }
        }
    }
    out
}

/// Starts whose token is not their key's create revision.
pub fn tokens_not_key_revs(starts: &[Start]) -> impl Iterator<Item = (&Start, i64)> {
    starts.iter().filter_map(|s| s.key_rev.filter(|k| *k != s.rev).map(|k| (s, k)))
}

/// Starts whose key was gone, that `excused` does not excuse.
pub fn keys_gone<'a>(starts: &'a [Start], excused: impl Fn(&Start) -> bool + 'a) -> impl Iterator<Item = &'a Start> {
    starts.iter().filter(move |s| s.key_rev.is_none() && !excused(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(client: usize, rev: i64, start: u64, end: u64) -> Interval {
        Interval { client, rev, pid: 0, start, end: Some(end), tick: None, signalled: false }
    }

    #[test]
    fn an_office_token_going_back_is_caught() {
        let ivs = [iv(0, 5, 0, 10), iv(1, 4, 10, 20), iv(2, 9, 20, 30)];
        let broken = successions(&ivs, true);
        assert_eq!(broken.len(), 1);
        assert_eq!((broken[0].0.rev, broken[0].1.rev), (5, 4));
    }

    #[test]
    fn a_semaphore_token_used_twice_is_caught() {
        let ivs = [iv(0, 5, 0, 10), iv(1, 5, 2, 20), iv(2, 4, 3, 30)];
        assert_eq!(successions(&ivs, false).len(), 1);
    }

    #[test]
    fn a_token_that_is_not_the_keys_revision_is_caught() {
        let s = |rev, key_rev| Start { client: 0, rev, lower: 0, key_rev, at: 0 };
        let starts = [s(5, Some(5)), s(6, Some(7)), s(8, None)];
        assert_eq!(tokens_not_key_revs(&starts).map(|(s, k)| (s.rev, k)).collect::<Vec<_>>(), vec![(6, 7)]);
        assert_eq!(keys_gone(&starts, |_| false).count(), 1);
        assert_eq!(keys_gone(&starts, |_| true).count(), 0);
    }
}
