//! Priority in the hold machine, table-driven: a first-in-line office waiter yields to a
//! higher-priority waiter whose key exists (and re-queues at the back), acquires on equal
//! or lower priorities, stale markers and its own marker, and carries its marker in its
//! campaign and its release.
use std::collections::BTreeMap;

use super::*;
use crate::etcd::{answer_ranges, Kv};
use crate::keys::{prio_marker, prio_prefix};

const LEASE: LeaseId = LeaseId(0x10);

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

/// A store answering the hold's requests with etcd's semantics for the few it sends.
struct Store {
    kvs: BTreeMap<String, (i64, LeaseId)>,
    /// Create revisions our puts get, in order (rivals were seeded between them).
    our_revs: Vec<i64>,
    requests: Vec<EtcdRequest>,
}

impl Store {
    fn answer(&mut self, request: &EtcdRequest) -> EtcdResponse {
        self.requests.push(request.clone());
        let mut put = |kvs: &mut BTreeMap<String, (i64, LeaseId)>, key: &str, marker: Option<&String>| {
            if let Some((rev, lease)) = kvs.get(key) {
                return EtcdResponse::Put { created: false, create_rev: Revision(*rev), lease: *lease };
            }
            let rev = self.our_revs.remove(0);
            kvs.insert(key.to_string(), (rev, LEASE));
            if let Some(marker) = marker {
                kvs.insert(marker.clone(), (rev, LEASE));
            }
            EtcdResponse::Put { created: true, create_rev: Revision(rev), lease: LEASE }
        };
        match request {
            EtcdRequest::PutIfAbsent { key, .. } => put(&mut self.kvs, key, None),
            EtcdRequest::PutIfAbsentMarked { key, marker, .. } => put(&mut self.kvs, key, Some(marker)),
            EtcdRequest::Ranges { ranges } => {
                let kvs: Vec<Kv> = self
                    .kvs
                    .iter()
                    .map(|(key, (rev, lease))| Kv {
                        key: key.clone(),
                        create_rev: Revision(*rev),
                        mod_rev: Revision(*rev),
                        lease: *lease,
                        value: Vec::new(),
                    })
                    .collect();
                answer_ranges(ranges, &kvs, Revision(1000))
            }
            EtcdRequest::Yield { key, create_rev, rival } => {
                let own = self.kvs.get(key).map_or(0, |(rev, _)| *rev);
                if own != create_rev.0 || !self.kvs.contains_key(rival) {
                    return EtcdResponse::Yielded { yielded: false, own_rev: Revision(own) };
                }
                self.kvs.remove(key);
                EtcdResponse::Yielded { yielded: true, own_rev: Revision(0) }
            }
            EtcdRequest::TouchIfCreateRev { .. } => EtcdResponse::Touched { touched: true },
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Runs `hold` against `store` until it acquires, queues, or has nothing in flight.
fn run(hold: &mut Hold, store: &mut Store, out: &mut Outbox) -> Option<HoldEvent> {
    for _ in 0..50 {
        let output = out.pop()?;
        if let Output::Etcd { id, request } = output {
            let response = store.answer(&request);
            if let Some(event) = hold.handle_response(at(0), id, response, out) {
                return Some(event);
            }
        }
    }
    panic!("no end")
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Acquired with this token, after this many yield transactions.
    Acquired(i64, usize),
    /// Queued at this rank after this many yield transactions.
    Queued(usize, usize),
}

#[test]
fn first_in_line_yields_only_to_a_live_higher_priority() {
    let office = Name::new("o").unwrap();
    let (queue, prio) = (elect_prefix(&office), prio_prefix(&office));
    // Rivals: (lease, create revision of its queue key or none (a stale marker), priority).
    type Rival = (i64, Option<i64>, u32);
    // own priority, rivals, sabotage => outcome
    let table: Vec<(u32, Vec<Rival>, Sabotage, Outcome)> = vec![
        (0, vec![], Sabotage::None, Outcome::Acquired(6, 0)),
        // A default waiter behind us writes no marker: FIFO.
        (0, vec![(0x20, Some(20), 0)], Sabotage::None, Outcome::Acquired(6, 0)),
        // A higher waiter behind us: step to the back, wait behind it.
        (0, vec![(0x20, Some(20), 5)], Sabotage::None, Outcome::Queued(1, 1)),
        (3, vec![(0x20, Some(20), 5), (0x21, Some(21), 1)], Sabotage::None, Outcome::Queued(2, 1)),
        // Equal priority: FIFO within a priority.
        (5, vec![(0x20, Some(20), 5)], Sabotage::None, Outcome::Acquired(6, 0)),
        (5, vec![(0x20, Some(20), 3)], Sabotage::None, Outcome::Acquired(6, 0)),
        // A stale marker (its key is gone): the yield's compare fails and we acquire.
        (0, vec![(0x20, None, 9)], Sabotage::None, Outcome::Acquired(6, 1)),
        // The highest marker is what counts, stale or not.
        (0, vec![(0x20, Some(20), 2), (0x21, None, 9)], Sabotage::None, Outcome::Acquired(6, 1)),
        (0, vec![(0x20, Some(20), 1000)], Sabotage::None, Outcome::Queued(1, 1)),
        // The deliberate bug never yields.
        (0, vec![(0x20, Some(20), 5)], Sabotage::IgnorePriority, Outcome::Acquired(6, 0)),
    ];
    for (i, (own, rivals, sabotage, want)) in table.into_iter().enumerate() {
        let mut kvs = BTreeMap::new();
        for (lease, rev, p) in &rivals {
            if let Some(rev) = rev {
                kvs.insert(member_key(&queue, LeaseId(*lease)), (*rev, LeaseId(*lease)));
            }
            if *p > 0 {
                kvs.insert(prio_marker(&prio, *p, LeaseId(*lease)), (rev.unwrap_or(3), LeaseId(*lease)));
            }
        }
        let mut store = Store { kvs, our_revs: vec![6, 100], requests: Vec::new() };
        let spec = HoldSpec::office(office.clone()).with_priority(own);
        let mut hold = Hold::new(spec, b"v".to_vec()).with_sabotage(sabotage);
        let mut out = Outbox::default();
        hold.campaign(at(0), LEASE, &mut out);
        let event = run(&mut hold, &mut store, &mut out);
        let yields = store.requests.iter().filter(|r| matches!(r, EtcdRequest::Yield { .. })).count();
        let got = match event {
            Some(HoldEvent::Acquired { rev }) => Outcome::Acquired(rev.0, yields),
            Some(HoldEvent::Queued { rank }) => Outcome::Queued(rank, yields),
            other => panic!("case {i}: {other:?}"),
        };
        assert_eq!(got, want, "case {i}");
        // Every campaign put carries our marker exactly when our priority is above 0.
        let marker = prio_marker(&prio, own, LEASE);
        for request in &store.requests {
            match request {
                EtcdRequest::PutIfAbsentMarked { marker: m, .. } => assert!(own > 0 && *m == marker, "case {i}"),
                EtcdRequest::PutIfAbsent { .. } => assert_eq!(own, 0, "case {i}"),
                // Every rank read of an office also reads the top marker.
                EtcdRequest::Ranges { ranges } => assert_eq!(ranges.len(), 4, "case {i}"),
                _ => {}
            }
        }
        // A waiter that stepped back holds a fresh, later revision (a re-created key).
        if matches!(got, Outcome::Queued(..)) {
            assert_eq!(hold.create_rev(), Some(Revision(100)), "case {i}");
        }
        // The release takes the marker in the same transaction.
        let release = hold.release(&mut out);
        let rev = hold.create_rev().unwrap_or_default();
        let key = member_key(&queue, LEASE);
        let want_release = if own > 0 {
            EtcdRequest::DeleteIfCreateRevMarked { key, create_rev: rev, marker }
        } else {
            EtcdRequest::DeleteIfCreateRev { key, create_rev: rev }
        };
        assert_eq!(release, Some(want_release), "case {i}");
    }
}

#[test]
fn a_semaphore_reads_no_markers_and_a_yield_answer_without_our_key_is_a_loss() {
    let mut store = Store { kvs: BTreeMap::new(), our_revs: vec![6], requests: Vec::new() };
    let mut sema = Hold::new(HoldSpec::semaphore(Name::new("s").unwrap(), 2).with_priority(9), Vec::new());
    let mut out = Outbox::default();
    sema.campaign(at(0), LEASE, &mut out);
    assert!(matches!(run(&mut sema, &mut store, &mut out), Some(HoldEvent::Acquired { .. })));
    assert!(store.requests.iter().all(|r| match r {
        EtcdRequest::Ranges { ranges } => ranges.len() == 3,
        r => matches!(r, EtcdRequest::PutIfAbsent { .. } | EtcdRequest::TouchIfCreateRev { .. }),
    }));

    // An office waiter whose key was deleted while its yield was in flight loses it.
    let office = Name::new("o").unwrap();
    let mut hold = Hold::new(HoldSpec::office(office.clone()), Vec::new());
    let mut out = Outbox::default();
    hold.campaign(at(0), LEASE, &mut out);
    let mut kvs = BTreeMap::new();
    kvs.insert(member_key(&elect_prefix(&office), LeaseId(0x20)), (20, LeaseId(0x20)));
    kvs.insert(prio_marker(&prio_prefix(&office), 4, LeaseId(0x20)), (20, LeaseId(0x20)));
    let mut store = Store { kvs, our_revs: vec![6], requests: Vec::new() };
    let mut yield_id = None;
    for _ in 0..10 {
        let Some(Output::Etcd { id, request }) = out.pop() else { continue };
        if matches!(request, EtcdRequest::Yield { .. }) {
            yield_id = Some(id);
            break;
        }
        let response = store.answer(&request);
        hold.handle_response(at(0), id, response, &mut out);
    }
    let id = yield_id.expect("a yield");
    let lost =
        hold.handle_response(at(0), id, EtcdResponse::Yielded { yielded: false, own_rev: Revision(0) }, &mut out);
    assert_eq!(lost, Some(HoldEvent::Lost(LossReason::KeyDeleted)));
}
