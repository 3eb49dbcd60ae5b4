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

/// `--preempt`, through the hold: a waiter behind a holder of the priority given asks it
/// (the step-down request, on our lease, naming its token) exactly when the holder is
/// strictly lower, re-asks only after the backoff, and withdraws the request once it holds.
#[test]
fn a_preempting_waiter_asks_a_strictly_lower_holder_once_then_backs_off() {
    let office = Name::new("o").unwrap();
    let (queue, prio) = (elect_prefix(&office), prio_prefix(&office));
    let request_key = crate::step_down::key(&office, LEASE);
    let holder_record = |p: Option<u32>| {
        let priority = p.map_or_else(String::new, |p| format!(r#","priority":{p}"#));
        format!(r#"{{"host":"h","pid":1,"started":"s"{priority}}}"#).into_bytes()
    };
    // holder's record priority (None: a holder without a marker), preempt flag => asks
    let table: &[(Option<u32>, bool, bool)] = &[
        (None, true, true),
        (Some(4), true, true),
        (Some(5), true, false),
        (Some(9), true, false),
        (None, false, false),
    ];
    for (i, &(holder_p, preempt, want)) in table.iter().enumerate() {
        let mut kvs = vec![Kv {
            key: member_key(&queue, LeaseId(0x20)),
            create_rev: Revision(3),
            mod_rev: Revision(3),
            lease: LeaseId(0x20),
            value: holder_record(holder_p),
        }];
        if let Some(p) = holder_p {
            kvs.push(Kv { key: prio_marker(&prio, p, LeaseId(0x20)), value: Vec::new(), ..kvs[0].clone() });
        }
        let spec = HoldSpec::office(office.clone()).with_priority(5).with_preempt(preempt);
        let me = crate::values::Holder::decode(&holder_record(Some(5))).unwrap();
        let mut hold = Hold::new(spec, holder_record(Some(5))).with_holder(me);
        let mut out = Outbox::default();
        let mut sent: Vec<EtcdRequest> = Vec::new();
        hold.campaign(at(0), LEASE, &mut out);
        let (event, rest) = preempt_step(&mut hold, &mut kvs, &mut sent, &mut out, at(0));
        assert_eq!(event, Some(HoldEvent::Queued { rank: 1 }), "case {i}");
        // Woken by anything before the backoff: not asked again.
        let watch = rest.iter().find_map(|o| match o {
            Output::Watch { id, key, .. } if *key == member_key(&queue, LeaseId(0x20)) => Some(*id),
            _ => None,
        });
        let watch = watch.expect("the first waiter watches the holder");
        hold.handle_watch(at(1000), watch, WatchEvent::Put(kvs[0].clone()), &mut out);
        let (_, mut live) = preempt_step(&mut hold, &mut kvs, &mut sent, &mut out, at(1000));
        // The backoff passed and the holder stayed: asked again after a fresh read.
        assert_eq!(hold.poll_timeout().is_some(), want, "case {i}");
        hold.handle_timeout(at(5000), &mut out);
        let (_, rest) = preempt_step(&mut hold, &mut kvs, &mut sent, &mut out, at(5000));
        if rest.iter().any(|o| matches!(o, Output::Watch { .. })) {
            live = rest;
        }
        let asks: Vec<&EtcdRequest> =
            sent.iter().filter(|r| matches!(r, EtcdRequest::Put { key, .. } if *key == request_key)).collect();
        let expected = crate::step_down::Request { rev: 3, host: "h".into(), pid: 1 }.encode();
        assert_eq!(asks.len(), if want { 2 } else { 0 }, "case {i}: {sent:?}");
        for ask in &asks {
            assert_eq!(
                **ask,
                EtcdRequest::Put { key: request_key.clone(), value: expected.clone(), lease: Some(LEASE) },
                "case {i}"
            );
        }
        if preempt {
            assert!(sent.iter().all(|r| !matches!(r, EtcdRequest::Ranges { ranges } if ranges.len() != 5)));
        }
        if want {
            // A higher waiter comes: the view no longer pre-empts. The re-read due asks
            // nothing, and no further re-read is due (no read loop for a dead request).
            let higher = Kv { key: prio_marker(&prio, 9, LeaseId(0x30)), lease: LeaseId(0x30), ..kvs[0].clone() };
            kvs.push(Kv { value: Vec::new(), ..higher });
            let due = hold.poll_timeout().expect("a re-read is due");
            hold.handle_timeout(due, &mut out);
            let (_, rest) = preempt_step(&mut hold, &mut kvs, &mut sent, &mut out, due);
            live = rest;
            assert_eq!(hold.poll_timeout(), None, "case {i}");
            let asked = sent.iter().filter(|r| matches!(r, EtcdRequest::Put { key, .. } if *key == request_key));
            assert_eq!(asked.count(), 2, "case {i}");
            kvs.retain(|kv| kv.lease != LeaseId(0x30));
        }
        // The holder resigns: we hold, and withdraw our request.
        kvs.retain(|kv| kv.lease != LeaseId(0x20));
        let watches: Vec<WatchId> = live
            .iter()
            .filter_map(|o| match o {
                Output::Watch { id, key, .. } if *key == member_key(&queue, LeaseId(0x20)) => Some(*id),
                _ => None,
            })
            .collect();
        let gone = WatchEvent::Delete { key: member_key(&queue, LeaseId(0x20)), mod_rev: Revision(60) };
        for w in watches {
            hold.handle_watch(at(6000), w, gone.clone(), &mut out);
        }
        let (event, _) = preempt_step(&mut hold, &mut kvs, &mut sent, &mut out, at(6000));
        assert_eq!(event, Some(HoldEvent::Acquired { rev: Revision(6) }), "case {i}");
        let withdrawn = sent.iter().any(|r| *r == EtcdRequest::Delete { key: request_key.clone() });
        assert_eq!(withdrawn, want, "case {i}");
        assert_eq!(hold.poll_timeout(), None, "case {i}: nothing left to re-ask");
    }
}

/// Answers every request in the outbox at `now` (a store of `kvs`, the campaign put at
/// revision 6); returns the last hold event and the outputs that were not requests.
fn preempt_step(
    hold: &mut Hold,
    kvs: &mut Vec<Kv>,
    sent: &mut Vec<EtcdRequest>,
    out: &mut Outbox,
    now: Instant,
) -> (Option<HoldEvent>, Vec<Output>) {
    let (mut last, mut rest) = (None, Vec::new());
    for _ in 0..20 {
        let Some(output) = out.pop() else { break };
        let Output::Etcd { id, request } = output else {
            rest.push(output);
            continue;
        };
        sent.push(request.clone());
        let response = match &request {
            EtcdRequest::PutIfAbsentMarked { key, value, marker, .. } => {
                let own = Kv {
                    key: key.clone(),
                    create_rev: Revision(6),
                    mod_rev: Revision(6),
                    lease: LEASE,
                    value: value.clone(),
                };
                kvs.push(Kv { key: marker.clone(), value: Vec::new(), ..own.clone() });
                kvs.push(own);
                EtcdResponse::Put { created: true, create_rev: Revision(6), lease: LEASE }
            }
            EtcdRequest::Ranges { ranges } => answer_ranges(ranges, kvs, Revision(50)),
            EtcdRequest::Put { .. } | EtcdRequest::Delete { .. } => EtcdResponse::Written { rev: Revision(51) },
            EtcdRequest::TouchIfCreateRev { .. } => EtcdResponse::Touched { touched: true },
            other => panic!("unexpected {other:?}"),
        };
        last = hold.handle_response(now, id, response, out).or(last);
    }
    (last, rest)
}
