//! conchd's writes under failed calls, against a tiny in-memory etcd (keys with create
//! revisions and leases that expire): a running key never outlives its run by more than
//! [`running_key_bound`], a release never deletes another run's key, a result is written
//! once and never clobbered.
use std::collections::BTreeMap;

use super::super::*;
use super::*;
use crate::etcd::Kv;

const TTL: Duration = Duration::from_secs(10);
const JOB: &str = "job";
const START_WALL_MS: i64 = 1_800_000_000_400;

/// A call that fails with a timeout: `applied` says whether etcd applied it anyway.
struct Fault {
    what: fn(&EtcdRequest) -> bool,
    applied: bool,
    times: u32,
    /// Run on the store right after the fault fires (another node's write).
    then: Option<fn(&mut Store)>,
}

#[derive(Default)]
struct Store {
    rev: i64,
    kvs: BTreeMap<String, Kv>,
    /// Lease id → expiry (ns on the daemon's clock).
    leases: BTreeMap<i64, u64>,
}

impl Store {
    fn put(&mut self, key: &str, value: Vec<u8>, lease: LeaseId) -> Revision {
        self.rev += 1;
        let create_rev = self.kvs.get(key).map_or(Revision(self.rev), |kv| kv.create_rev);
        let kv = Kv { key: key.to_string(), create_rev, mod_rev: Revision(self.rev), lease, value };
        self.kvs.insert(key.to_string(), kv);
        Revision(self.rev)
    }

    fn drop_lease(&mut self, lease: i64) {
        self.leases.remove(&lease);
        self.kvs.retain(|_, kv| kv.lease.0 != lease);
    }

    fn expire(&mut self, now: Instant) {
        let gone: Vec<i64> = self.leases.iter().filter(|(_, at)| **at <= now.as_nanos()).map(|(l, _)| *l).collect();
        for lease in gone {
            self.drop_lease(lease);
        }
    }

    fn apply(&mut self, now: Instant, request: &EtcdRequest) -> EtcdResponse {
        let alive = |s: &Store, l: &LeaseId| l.0 == 0 || s.leases.contains_key(&l.0);
        match request {
            EtcdRequest::Grant { ttl_s } => {
                self.rev += 1;
                let at = now.plus(Duration::from_secs(*ttl_s as u64)).as_nanos();
                self.leases.insert(self.rev, at);
                EtcdResponse::Granted { lease: LeaseId(self.rev), ttl_s: *ttl_s }
            }
            EtcdRequest::KeepAlive { lease, .. } => match self.leases.get_mut(&lease.0) {
                Some(at) => {
                    *at = now.plus(TTL).as_nanos();
                    EtcdResponse::KeepAlive { ttl_s: TTL.as_secs() as i64 }
                }
                None => EtcdResponse::KeepAlive { ttl_s: 0 },
            },
            EtcdRequest::Revoke { lease } => {
                self.drop_lease(lease.0);
                EtcdResponse::Revoked
            }
            EtcdRequest::RangePrefix { prefix } => {
                let mut kvs: Vec<Kv> = self.kvs.values().filter(|kv| kv.key.starts_with(prefix)).cloned().collect();
                kvs.sort_by_key(|kv| kv.create_rev);
                EtcdResponse::Range { header_rev: Revision(self.rev), kvs }
            }
            EtcdRequest::Claim { fire_key, claim, claim_lease, running } => {
                if let Some(kv) = self.kvs.get(fire_key) {
                    return EtcdResponse::Claimed { won: false, rev: kv.create_rev, existing: Some(kv.value.clone()) };
                }
                if running.as_ref().is_some_and(|(key, _)| self.kvs.contains_key(key)) {
                    return EtcdResponse::Claimed { won: false, rev: Revision(self.rev), existing: None };
                }
                let rev = self.put(fire_key, claim.clone(), *claim_lease);
                if let Some((key, session)) = running {
                    // One transaction: both keys get the same create revision.
                    let kv =
                        Kv { key: key.clone(), create_rev: rev, mod_rev: rev, lease: *session, value: claim.clone() };
                    self.kvs.insert(key.clone(), kv);
                }
                EtcdResponse::Claimed { won: true, rev, existing: None }
            }
            EtcdRequest::DeleteIfCreateRev { key, create_rev } => {
                let deleted = self.kvs.get(key).is_some_and(|kv| kv.create_rev == *create_rev);
                if deleted {
                    self.rev += 1;
                    self.kvs.remove(key);
                }
                EtcdResponse::Deleted { deleted }
            }
            EtcdRequest::PutIfAbsent { key, value, lease } => {
                if !alive(self, lease) {
                    return EtcdResponse::Error(EtcdError::LeaseNotFound);
                }
                if let Some(kv) = self.kvs.get(key) {
                    return EtcdResponse::Put { created: false, create_rev: kv.create_rev, lease: kv.lease };
                }
                let rev = self.put(key, value.clone(), *lease);
                EtcdResponse::Put { created: true, create_rev: rev, lease: *lease }
            }
            EtcdRequest::Put { key, value, lease } => {
                let rev = self.put(key, value.clone(), lease.unwrap_or(LeaseId(0)));
                EtcdResponse::Written { rev }
            }
            other => EtcdResponse::Error(EtcdError::Fatal(format!("not in this store: {other:?}"))),
        }
    }
}

struct Harness {
    d: Conchd,
    now: Now,
    store: Store,
    faults: Vec<Fault>,
    /// The first value the daemon sent for each result key.
    results: BTreeMap<String, Vec<u8>>,
    run_ended: Option<Instant>,
    /// The longest a running key was seen with no run of ours on.
    longest_linger: Duration,
    revokes: u32,
}

impl Harness {
    fn new(sabotage: Sabotage, faults: Vec<Fault>) -> Harness {
        let cfg = ConchdConfig {
            node: "n1".into(),
            pid: 7,
            started: "s".into(),
            ttl: TTL,
            kill_after: Duration::from_secs(1),
            seed: 3,
        };
        let now = Now { mono: Instant::from_nanos(1_000_000_000), wall_ms: START_WALL_MS };
        let mut store = Store::default();
        let spec = br#"{"schedule":"@every 5s","cmd":["true"]}"#.to_vec();
        store.put(&format!("{}{JOB}", job_prefix()), spec, LeaseId(0));
        let mut h = Harness {
            d: Conchd::new(cfg).with_sabotage(sabotage),
            now,
            store,
            faults,
            results: BTreeMap::new(),
            run_ended: None,
            longest_linger: Duration::ZERO,
            revokes: 0,
        };
        h.d.start(now);
        h.pump();
        h
    }

    fn answer(&mut self, request: &EtcdRequest) -> EtcdResponse {
        let now = self.now.mono;
        if let Some(f) = self.faults.iter_mut().find(|f| f.times > 0 && (f.what)(request)) {
            f.times -= 1;
            let (applied, then) = (f.applied, f.then);
            if applied {
                self.store.apply(now, request);
            }
            if let Some(then) = then {
                then(&mut self.store);
            }
            return EtcdResponse::Error(EtcdError::Unavailable("no answer within 2000ms".into()));
        }
        self.store.apply(now, request)
    }

    fn pump(&mut self) {
        for _ in 0..10_000 {
            let Some(o) = self.d.poll_output() else { break };
            match o {
                Output::Etcd { id, request } => {
                    if let EtcdRequest::Revoke { .. } = request {
                        self.revokes += 1;
                    }
                    if let EtcdRequest::PutIfAbsent { key, value, .. } = &request {
                        self.results.entry(key.clone()).or_insert(value.clone());
                    }
                    let answer = self.answer(&request);
                    self.d.handle_response(self.now, id, answer);
                }
                Output::Spawn(spec) => {
                    self.d.handle_child_started(self.now, spec.child, 99);
                    self.d.handle_child_exit(self.now, spec.child, ChildStatus::Exited(0));
                    self.run_ended = Some(self.now.mono);
                }
                _ => {}
            }
        }
        self.store.expire(self.now.mono);
        if let Some(ended) = self.run_ended.filter(|_| self.store.kvs.contains_key(&running_key(JOB))) {
            self.longest_linger = self.longest_linger.max(self.now.mono.since(ended));
        }
    }

    /// Runs the daemon for `secs` of both clocks.
    fn run_for(&mut self, secs: u64) {
        let end = self.now.mono.plus(Duration::from_secs(secs));
        for _ in 0..100_000 {
            // At least every 100 ms, so a key's linger and lease expiry are seen on time.
            let next = self.d.poll_timeout().unwrap_or(end).min(self.now.mono.plus(Duration::from_millis(100)));
            if next > end {
                break;
            }
            let ahead = next.since(self.now.mono).max(Duration::from_millis(1));
            self.now = Now { mono: self.now.mono.plus(ahead), wall_ms: self.now.wall_ms + ahead.as_millis() as i64 };
            self.store.expire(self.now.mono);
            self.d.handle_timeout(self.now);
            self.pump();
        }
    }
}

fn is_release(r: &EtcdRequest) -> bool {
    matches!(r, EtcdRequest::DeleteIfCreateRev { .. })
}
fn is_result(r: &EtcdRequest) -> bool {
    matches!(r, EtcdRequest::PutIfAbsent { .. })
}
fn is_claim(r: &EtcdRequest) -> bool {
    matches!(r, EtcdRequest::Claim { .. })
}
fn is_revoke(r: &EtcdRequest) -> bool {
    matches!(r, EtcdRequest::Revoke { .. })
}
fn fault(what: fn(&EtcdRequest) -> bool, applied: bool, times: u32) -> Fault {
    Fault { what, applied, times, then: None }
}

/// Another node's run takes the running key (a new create revision) right after our
/// release was applied and its answer lost.
fn another_run_takes_the_key(store: &mut Store) {
    store.put(&running_key(JOB), b"{}".to_vec(), LeaseId(0));
}

/// Another writer puts the result of the tick first (it must survive our retry).
fn another_result_first(store: &mut Store) {
    let key = store.kvs.keys().find(|k| k.contains("/cron/fire/")).cloned();
    if let Some(tick) = key.and_then(|k| crate::cron::tick_of(&k)) {
        store.put(&result_key(JOB, tick), b"theirs".to_vec(), LeaseId(0));
    }
}

/// Each row: failed calls, and whether after 60 s a running key outlived its run by more
/// than the bound. Every row also checks: no tick skipped for overlap while no run was on
/// (except where another node's run holds the key), results written once, never clobbered.
#[test]
fn failed_writes_are_retried_and_a_running_key_never_outlives_its_run() {
    let bound = running_key_bound(TTL);
    // (row, failed calls, whether the writes land in the end)
    let table: Vec<(&str, Vec<Fault>, bool)> = vec![
        ("release lost on its way, 3 times", vec![fault(is_release, false, 3)], true),
        ("release applied, answer lost twice", vec![fault(is_release, true, 2)], true),
        ("result lost on its way, 5 times", vec![fault(is_result, false, 5)], true),
        ("result applied, answer lost", vec![fault(is_result, true, 1)], true),
        ("claim applied, answer lost: the running key is swept", vec![fault(is_claim, true, 1)], true),
        ("claim lost on its way: nothing to sweep", vec![fault(is_claim, false, 1)], true),
        (
            "release never lands, keepalives do: the session is given up",
            vec![fault(is_release, false, u32::MAX)],
            false,
        ),
        (
            "release and revoke never land: the key expires with the session",
            vec![fault(is_release, false, u32::MAX), fault(is_revoke, false, u32::MAX)],
            false,
        ),
    ];
    for (name, faults, lands) in table {
        let mut h = Harness::new(Sabotage::None, faults);
        h.run_for(60);
        assert!(h.longest_linger <= bound, "{name}: a running key outlived its run by {:?}", h.longest_linger);
        if lands {
            assert_eq!(h.d.stats.skipped_overlap, 0, "{name}: ticks skipped for a run that was over");
            assert!(h.d.stats.claimed >= 10, "{name}: only {} ticks claimed", h.d.stats.claimed);
        } else {
            assert!(h.d.stats.claimed >= 2, "{name}: only {} ticks claimed", h.d.stats.claimed);
        }
        // Every run's result landed, once, with the value first sent for it (a swept
        // claim has no run and no result).
        let stored: Vec<&Kv> = h.store.kvs.values().filter(|kv| kv.key.contains("/cron/result/")).collect();
        let runs = h.d.stats.runs_finished as usize;
        assert_eq!(stored.len(), runs, "{name}: {} results for {runs} runs", stored.len());
        for kv in stored {
            assert_eq!(Some(&kv.value), h.results.get(&kv.key), "{name}: {} is not the value first sent", kv.key);
        }
    }
}

/// The same rows on the old behaviour (no retries) leave the key for good.
#[test]
fn without_retries_the_running_key_stays_and_every_tick_is_skipped() {
    let mut h = Harness::new(Sabotage::NoWriteRetry, vec![fault(is_release, false, 1)]);
    h.run_for(60);
    assert!(h.longest_linger > running_key_bound(TTL));
    assert!(h.d.stats.skipped_overlap >= 8, "{}", h.d.stats.skipped_overlap);
}

#[test]
fn a_retried_release_never_deletes_another_runs_key() {
    let mut lost = fault(is_release, true, 1);
    lost.then = Some(another_run_takes_the_key);
    let mut h = Harness::new(Sabotage::None, vec![lost]);
    h.run_for(8);
    let kv = h.store.kvs.get(&running_key(JOB)).expect("the other run's key survives our retry");
    assert_eq!(kv.value, b"{}".to_vec());
    assert!(h.d.writes.is_empty(), "the retry is over (the compare failed)");
}

#[test]
fn a_retried_result_never_clobbers_one_already_there() {
    let mut lost = fault(is_result, false, 1);
    lost.then = Some(another_result_first);
    let mut h = Harness::new(Sabotage::None, vec![lost]);
    h.run_for(8);
    let theirs: Vec<&Kv> = h.store.kvs.values().filter(|kv| kv.value == b"theirs".to_vec()).collect();
    assert_eq!(theirs.len(), 1, "the result already there was overwritten");
    let ours = h.store.kvs.values().filter(|kv| kv.key.contains("/cron/result/")).count();
    assert_eq!(ours, h.d.stats.runs_finished as usize, "one result per run, no more");
}

#[test]
fn a_release_that_never_lands_gives_the_session_up_after_the_retry_window() {
    let mut h = Harness::new(Sabotage::None, vec![fault(is_release, false, u32::MAX)]);
    h.run_for(6);
    assert_eq!(h.revokes, 0, "given up too early");
    h.run_for(RELEASE_RETRY_FOR.as_secs());
    assert!(h.revokes >= 1, "the session was not given up");
}

/// Found by the functional tester: a claim attempt that timed out, answered on a retry, was
/// applied by etcd later, leaving a running key of ours (on our live session) with no run.
/// Every node then skipped the job's ticks for overlap for as long as our session lived. The
/// next skipped tick sweeps it: the daemon runs nothing of the job, the key is ours, of an
/// earlier tick.
/// Puts a running key of ours for `tick` on our session, with no run behind it (a claim
/// attempt etcd applied after we had our answer).
fn put_ghost(h: &mut Harness, tick: i64) {
    let session = h.d.session.lease().expect("a session");
    let ghost = Claim {
        host: "n1".into(),
        pid: 7,
        started: "s".into(),
        cmd: None,
        tick: rfc3339(tick),
        session: Some(session.to_string()),
    };
    h.store.put(&running_key(JOB), serde_json::to_vec(&ghost).unwrap(), session);
}

#[test]
fn a_ghost_running_key_of_ours_is_swept_at_the_next_skipped_tick() {
    let mut h = Harness::new(Sabotage::None, Vec::new());
    h.run_for(12);
    let claimed = h.d.stats.claimed;
    assert!(claimed >= 2, "{claimed}");
    put_ghost(&mut h, START_WALL_MS / 1000);
    h.run_for(30);
    assert_eq!(h.d.stats.skipped_overlap, 1, "the ghost key kept ticks from running");
    assert!(h.d.stats.claimed >= claimed + 4, "{} then {}", claimed, h.d.stats.claimed);
    // Another node's key (not on our lease) is never touched.
    h.store.put(&running_key(JOB), b"{}".to_vec(), LeaseId(0));
    let skipped = h.d.stats.skipped_overlap;
    h.run_for(20);
    assert!(h.d.stats.skipped_overlap >= skipped + 3);
    assert!(h.store.kvs.contains_key(&running_key(JOB)));
}

#[test]
fn a_ghost_of_a_later_tick_is_swept_too() {
    // Claimed before the wall clock stepped back: its tick is ahead of the ticks skipped
    // now (the simulator's late-apply site with a clock jump; the sweep once took only
    // ghosts of earlier ticks, and every node skipped the job while our session lived).
    let mut h = Harness::new(Sabotage::None, Vec::new());
    h.run_for(12);
    put_ghost(&mut h, START_WALL_MS / 1000 + 3600);
    let claimed = h.d.stats.claimed;
    h.run_for(30);
    assert_eq!(h.d.stats.skipped_overlap, 1, "the ghost key kept ticks from running");
    assert!(h.d.stats.claimed >= claimed + 4, "{} then {}", claimed, h.d.stats.claimed);
}
