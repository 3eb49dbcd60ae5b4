//! Ranking, shared by elect and sema: who holds, and which keys a waiter watches.
//!
//! Contenders are ordered by create-revision, lowest first (ties, impossible in etcd, by
//! key). Every key under the prefix counts, whatever its value: a key written by another
//! tool still occupies its place. A contender at rank `r` holds iff `r < N`.
//!
//! # Which keys a waiter watches
//!
//! The spec's first idea — watch only the key at rank `r − N` — loses wake-ups for
//! `N > 1`: with holders A, B and waiters C, D (C watches A, D watches B), B's release
//! promotes C, but only D is told. So a waiter watches:
//!
//! * at rank `r == N` (the first waiter): every holder (ranks `0..N`), since any holder
//!   leaving promotes it;
//! * at rank `r > N`: only its immediate predecessor (rank `r − 1`), the mutex chain of
//!   etcd's own recipe.
//!
//! A key that acquires while `N > 1` and has later keys behind it touches itself (a put
//! that keeps its create revision), so the waiter behind it — watching it — re-ranks and
//! becomes the first waiter. This holds even for a key that never saw itself wait: its
//! first range may answer after a departure already promoted it, while a later key had
//! ranked it as a waiter (found by `conch sim`). For `N = 1` both rules are the same "watch your predecessor" chain and no touch
//! is needed. Either way a release wakes exactly the one waiter it promotes, and etcd
//! requests per handoff do not grow with the number of waiters.
//!
//! # Reading the rank without reading the queue
//!
//! A hold never reads the whole queue (07-performance B5: bytes per acquisition would grow
//! with the number of waiters, and etcd's load with its square). [`rank_reads`] asks, in
//! one read-only transaction at one revision, with keys only:
//!
//! 0. our own key (a count: 0 or 1);
//! 1. the keys created before ours, the latest first, at most `N + 1` of them: fewer than
//!    `N` and we hold; exactly `N` and we are the first waiter and they are the holders;
//!    `N + 1` and we wait behind the first of them, our predecessor;
//! 2. how many keys the prefix has (a count, from etcd's index only), so a holder knows
//!    whether any key came after it (for the touch).
//!
//! Only the second read makes etcd look at every key (it filters, then sorts): one scan
//! per rank read, as etcd's own mutex recipe costs, and nothing of the queue on the wire.
//! [`standing_from_reads`] turns the answers into the same [`Standing`] as [`standing`]
//! over the whole queue (a model test holds them equal), except that a rank past the
//! first waiter reads as `N + 1` — the reads know "behind the first waiter", not how far.
//! etcd's `count` counts the range before its revision bounds, so it is only ever read
//! from an unbounded range.
//!
//! An office adds a fourth read, [`marker_read`]: its highest priority marker (keys only,
//! limit 1), which [`top_priority`] reads; `crate::hold` decides what to do with it.
use crate::etcd::{Kv, RangeResult, RangeSort, RangeSpec};
use crate::ids::{LeaseId, Revision};
use crate::keys::parse_prio_marker;

/// Where one contender stands in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It holds a slot.
    Holds {
        /// Its rank (0-based).
        rank: usize,
    },
    /// It waits; a change to any of `watch` may promote it.
    Waits {
        /// Its rank (0-based); from [`standing_from_reads`], `N + 1` for any rank past
        /// the first waiter.
        rank: usize,
        /// The keys to watch, with their create revisions.
        watch: Vec<(String, Revision)>,
    },
    /// Its key is not under the prefix: the hold is gone.
    Missing,
}

/// Ranks `own_key` among `kvs` for a capacity of `slots` (at least 1).
pub fn standing(kvs: &[Kv], own_key: &str, slots: usize) -> Standing {
    // Paired with the hold's own check: it ranks only the key it put, never "".
    debug_assert!(!own_key.is_empty(), "ranking an empty key");
    let slots = slots.max(1);
    let mut order: Vec<(Revision, &str)> = kvs.iter().map(|kv| (kv.create_rev, kv.key.as_str())).collect();
    order.sort_unstable();
    let Some(rank) = order.iter().position(|(_, key)| *key == own_key) else {
        return Standing::Missing;
    };
    if rank < slots {
        return Standing::Holds { rank };
    }
    let watched = if rank == slots { &order[..slots] } else { &order[rank - 1..rank] };
    Standing::Waits { rank, watch: watched.iter().map(|(rev, key)| (key.to_string(), *rev)).collect() }
}

/// The reads that rank `own_key`, created at `own_rev` under `prefix`, for `slots`
/// (see the module doc). `by_mod` is the deliberate bug that bounds by mod revision.
pub fn rank_reads(prefix: &str, own_key: &str, own_rev: Revision, slots: usize, by_mod: bool) -> Vec<RangeSpec> {
    let slots = slots.max(1);
    // etcd never creates a key at revision 1 (the empty store's), so a bound of 1 keeps
    // nothing where 0 would mean "no bound".
    let before = Revision((own_rev.0 - 1).max(1));
    let queue = RangeSpec { key: prefix.to_string(), prefix: true, ..RangeSpec::default() };
    let ahead = RangeSpec { sort: RangeSort::CreateDescend, limit: slots + 1, keys_only: true, ..queue.clone() };
    let ahead =
        if by_mod { RangeSpec { max_mod_rev: before, ..ahead } } else { RangeSpec { max_create_rev: before, ..ahead } };
    vec![
        RangeSpec { key: own_key.to_string(), count_only: true, ..RangeSpec::default() },
        ahead,
        RangeSpec { count_only: true, ..queue },
    ]
}

/// The office's highest priority marker under `prio_prefix`: the first key in etcd's own
/// order (markers sort highest priority first, see `crate::keys`), no value, no sort —
/// so etcd stops at that one key however many markers there are.
pub fn marker_read(prio_prefix: &str) -> RangeSpec {
    RangeSpec { key: prio_prefix.to_string(), prefix: true, limit: 1, keys_only: true, ..RangeSpec::default() }
}

/// A pre-empting candidate's fifth read: the office's first key (its holder), with its
/// value (the holder record names the holder's priority).
pub fn holder_read(prefix: &str) -> RangeSpec {
    RangeSpec { key: prefix.to_string(), prefix: true, sort: RangeSort::CreateAscend, limit: 1, ..RangeSpec::default() }
}

/// The highest priority waiting (and its lease) from the answer to [`marker_read`], the
/// fourth of an office's rank reads; `None` when no marker exists or the read is absent.
/// A key of another shape under the prefix is ignored (it names no waiter).
pub fn top_priority(results: &[RangeResult], prio_prefix: &str) -> Option<(u32, LeaseId)> {
    results.get(3)?.kvs.first().and_then(|kv| parse_prio_marker(prio_prefix, &kv.key))
}

/// The standing [`rank_reads`]' answers give, and whether a holder has any key created
/// after its own (always false for one slot, which needs no touch). Answers of another
/// shape: missing.
pub fn standing_from_reads(results: &[RangeResult], slots: usize) -> (Standing, bool) {
    let slots = slots.max(1);
    let [own, ahead, all, ..] = results else {
        return (Standing::Missing, false);
    };
    if own.count == 0 {
        return (Standing::Missing, false);
    }
    // Oldest first, as `standing` reports them.
    let keys = |kvs: &[Kv]| kvs.iter().rev().map(|kv| (kv.key.clone(), kv.create_rev)).collect();
    match ahead.kvs.len() {
        n if n < slots => (Standing::Holds { rank: n }, slots > 1 && all.count > n as i64 + 1),
        n if n == slots => (Standing::Waits { rank: slots, watch: keys(&ahead.kvs) }, false),
        _ => (Standing::Waits { rank: slots + 1, watch: keys(&ahead.kvs[..1]) }, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LeaseId;

    fn kvs(spec: &[(&str, i64)]) -> Vec<Kv> {
        spec.iter()
            .map(|(key, rev)| Kv {
                key: key.to_string(),
                create_rev: Revision(*rev),
                mod_rev: Revision(*rev),
                lease: LeaseId(0),
                value: Vec::new(),
            })
            .collect()
    }

    fn w(keys: &[(&str, i64)]) -> Vec<(String, Revision)> {
        keys.iter().map(|(k, r)| (k.to_string(), Revision(*r))).collect()
    }

    #[test]
    fn golden_rankings() {
        // (keys with create revisions, in any order), own key, slots => standing
        let table: Vec<(Vec<Kv>, &str, usize, Standing)> = vec![
            (kvs(&[("a", 5)]), "a", 1, Standing::Holds { rank: 0 }),
            (kvs(&[("b", 9), ("a", 5)]), "b", 1, Standing::Waits { rank: 1, watch: w(&[("a", 5)]) }),
            (kvs(&[("a", 5), ("b", 9), ("c", 12)]), "c", 1, Standing::Waits { rank: 2, watch: w(&[("b", 9)]) }),
            (kvs(&[("a", 5), ("b", 9), ("c", 12)]), "b", 2, Standing::Holds { rank: 1 }),
            (
                kvs(&[("a", 5), ("b", 9), ("c", 12)]),
                "c",
                2,
                Standing::Waits { rank: 2, watch: w(&[("a", 5), ("b", 9)]) },
            ),
            (
                kvs(&[("a", 5), ("b", 9), ("c", 12), ("d", 13)]),
                "d",
                2,
                Standing::Waits { rank: 3, watch: w(&[("c", 12)]) },
            ),
            // A foreign key (any value) still counts.
            (
                kvs(&[("etcdctl-key", 3), ("ours", 4)]),
                "ours",
                1,
                Standing::Waits { rank: 1, watch: w(&[("etcdctl-key", 3)]) },
            ),
            (kvs(&[("a", 5)]), "gone", 1, Standing::Missing),
            (kvs(&[]), "gone", 3, Standing::Missing),
            // slots 0 is treated as 1, never a panic.
            (kvs(&[("a", 5)]), "a", 0, Standing::Holds { rank: 0 }),
        ];
        for (i, (kvs, own, slots, want)) in table.into_iter().enumerate() {
            assert_eq!(standing(&kvs, own, slots), want, "case {i}");
        }
    }

    /// The reads' view is the whole queue's: for random queues (mod revisions moved by
    /// touches, ours anywhere) `standing_from_reads` over etcd's answers to `rank_reads`
    /// equals `standing`, ranks past the first waiter reading as `N + 1` (and a holder
    /// knows whether keys follow it); the bug that bounds by mod revision does not.
    #[test]
    fn the_reads_rank_as_the_whole_queue_does() {
        let mut x = 0x5eed_u64;
        let mut draw = |n: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let mut sabotage_differs = 0;
        for case in 0..3000 {
            let n = 1 + draw(12) as usize;
            let slots = 1 + draw(4) as usize;
            let mut kvs: Vec<Kv> = Vec::new();
            let mut rev = 1;
            for k in 0..n {
                rev += 1 + draw(3) as i64;
                let touched = if draw(3) == 0 { rev + 1 + draw(40) as i64 } else { rev };
                kvs.push(Kv {
                    key: format!("/p/{:03}", draw(1000) * 100 + k as u64),
                    create_rev: Revision(rev),
                    mod_rev: Revision(touched),
                    lease: LeaseId(1),
                    value: b"v".to_vec(),
                });
            }
            let own = kvs[draw(n as u64) as usize].clone();
            let mut store = kvs.clone();
            store.sort_by(|a, b| a.key.cmp(&b.key));
            let answer = |by_mod: bool| -> Vec<RangeResult> {
                rank_reads("/p/", &own.key, own.create_rev, slots, by_mod)
                    .iter()
                    .map(|spec| spec.answer(store.iter().filter(|kv| spec.covers(&kv.key)).cloned().collect()))
                    .collect()
            };
            let want = match standing(&kvs, &own.key, slots) {
                Standing::Waits { rank, watch } => Standing::Waits { rank: rank.min(slots + 1), watch },
                other => other,
            };
            let holds = matches!(want, Standing::Holds { .. });
            let behind = holds && slots > 1 && kvs.iter().any(|kv| kv.create_rev > own.create_rev);
            assert_eq!(standing_from_reads(&answer(false), slots), (want.clone(), behind), "case {case}");
            sabotage_differs += usize::from(standing_from_reads(&answer(true), slots).0 != want);
            // Our key gone: missing.
            let gone: Vec<RangeResult> = answer(false)
                .into_iter()
                .enumerate()
                .map(|(i, r)| if i == 0 { RangeResult { count: 0, ..r } } else { r })
                .collect();
            assert_eq!(standing_from_reads(&gone, slots).0, Standing::Missing);
        }
        assert!(sabotage_differs > 100, "the mod-revision bug ranks differently in only {sabotage_differs} cases");
        assert_eq!(standing_from_reads(&[], 1).0, Standing::Missing);
    }

    #[test]
    fn the_marker_read_finds_the_highest_priority() {
        let prefix = "/conch/v1/prio/elect/o/";
        let marker = |p: u32, l: i64| crate::keys::prio_marker(prefix, p, LeaseId(l));
        // (markers in the store, foreign keys beside them) => the top priority
        type Top = Option<(u32, LeaseId)>;
        let table: Vec<(Vec<String>, Top)> = vec![
            (vec![], None),
            (vec![marker(5, 0xa)], Some((5, LeaseId(0xa)))),
            (vec![marker(5, 0xa), marker(40, 0xb), marker(9, 0xc)], Some((40, LeaseId(0xb)))),
            (vec![marker(1000, 1), marker(999, 2)], Some((1000, LeaseId(1)))),
            // Zero padding: 10 sorts before 9 (0990 < 0991), 100 before 99.
            (vec![marker(9, 0xfff), marker(10, 1)], Some((10, LeaseId(1)))),
            (vec![marker(99, 1), marker(100, 0xfff)], Some((100, LeaseId(0xfff)))),
            // A foreign key first in order names no waiter.
            (vec![marker(3, 1), format!("{prefix}00")], None),
        ];
        for (i, (keys, want)) in table.into_iter().enumerate() {
            let kvs = kvs(&keys.iter().map(|k| (k.as_str(), 3)).collect::<Vec<_>>());
            let spec = marker_read(prefix);
            let mut store: Vec<Kv> = kvs.into_iter().filter(|kv| spec.covers(&kv.key)).collect();
            store.sort_by(|a, b| a.key.cmp(&b.key));
            let answer = spec.answer(store);
            assert!(answer.kvs.len() <= 1 && answer.kvs.iter().all(|kv| kv.value.is_empty()), "case {i}");
            let results = vec![RangeResult::default(), RangeResult::default(), RangeResult::default(), answer];
            assert_eq!(top_priority(&results, prefix), want, "case {i}");
        }
        assert_eq!(top_priority(&[], prefix), None);
    }

    /// Every waiter set up by these rules is woken by the departure that promotes it:
    /// simulate many orders of arrivals and departures and check no waiter stays asleep
    /// while its rank is below the capacity.
    #[test]
    fn no_lost_wakeups_in_any_order_of_arrivals_and_departures() {
        // Found by the simulator: a key that ranked as a waiter behind a key which was then
        // promoted without ever ranking as a waiter itself (it arrived late) slept forever.
        // So arrivals interleave with departures here, and a key's first range may answer
        // after other keys moved.
        for slots in 1..=3usize {
            for seed in 0..400u64 {
                let mut live: Vec<(String, i64)> = Vec::new();
                let mut watching = std::collections::BTreeMap::<String, Vec<String>>::new();
                let mut holders = std::collections::BTreeSet::new();
                let mut pending: Vec<String> = Vec::new();
                let mut next_rev = 1;
                let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let rerank = |live: &Vec<(String, i64)>, key: &str| {
                    let refs: Vec<(&str, i64)> = live.iter().map(|(k, r)| (k.as_str(), *r)).collect();
                    standing(&kvs(&refs), key, slots)
                };
                for _ in 0..40 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let mut changed = Vec::new();
                    let mut to_rank: Vec<String> = Vec::new();
                    match x >> 61 {
                        // A key is put; its first range answers later.
                        0..=2 => {
                            let key = format!("k{next_rev}");
                            live.push((key.clone(), next_rev));
                            pending.push(key);
                            next_rev += 1;
                        }
                        // Some unanswered first range answers (answers may come in any order).
                        3..=4 if !pending.is_empty() => {
                            to_rank.push(pending.remove((x >> 20) as usize % pending.len()))
                        }
                        _ if !live.is_empty() => {
                            let gone = live.remove((x >> 33) as usize % live.len()).0;
                            holders.remove(&gone);
                            watching.remove(&gone);
                            pending.retain(|p| *p != gone);
                            changed.push(gone);
                        }
                        _ => {}
                    }
                    // Wake whoever watched a changed key, and cascade the touches of promoted keys.
                    loop {
                        if let Some(c) = changed.pop() {
                            to_rank.extend(watching.iter().filter(|(_, ws)| ws.contains(&c)).map(|(k, _)| k.clone()));
                        }
                        let Some(k) = to_rank.pop() else {
                            if changed.is_empty() {
                                break;
                            }
                            continue;
                        };
                        match rerank(&live, &k) {
                            Standing::Holds { .. } => {
                                watching.remove(&k);
                                let rev = live.iter().find(|(n, _)| *n == k).map_or(0, |(_, r)| *r);
                                if holders.insert(k.clone()) && slots > 1 && live.iter().any(|(_, r)| *r > rev) {
                                    changed.push(k); // the touch
                                }
                            }
                            Standing::Waits { watch, .. } => {
                                watching.insert(k, watch.into_iter().map(|(k, _)| k).collect());
                            }
                            Standing::Missing => unreachable!(),
                        }
                    }
                    if pending.is_empty() {
                        let expected = live.len().min(slots);
                        assert_eq!(
                            holders.len(),
                            expected,
                            "slots {slots} seed {seed}: holders {holders:?} live {live:?}"
                        );
                    }
                }
            }
        }
    }
}
