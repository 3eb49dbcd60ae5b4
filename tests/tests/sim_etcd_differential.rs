//! SimEtcd against a real etcd: the same random operation sequences (put-if-absent, touch,
//! put, range, ranges with etcd's options — revision bounds, sort, limit, keys or count
//! only — delete, compare-delete, the
//! priority transactions (campaign with a marker, yield, release with the marker), claim, lease grant/keepalive/revoke, watch from a
//! revision, compaction), results compared field by field. Lease ids differ between the
//! two and are mapped; revisions must agree exactly. Fenced transactions (`conch put`,
//! `del`, `txn`: the guard around compares and branches) have a run of their own.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use conch_core::backoff::SplitMix64;
use conch_core::{
    EtcdRequest, EtcdResponse, Instant, Kv, LeaseId, RangeResult, RangeSort, RangeSpec, Revision, WatchEvent,
};
use conch_driver_etcd::calls::{call, to_kv};
use conch_driver_sim::etcd::SimEtcd;
use conch_tests::Etcd;
use etcd_client::{Client, EventType, WatchOptions};

/// Operations per CI run (the issue asks for at least 100 000).
/// Operations per run; `CONCH_DIFF_OPS` changes it (CI runs fewer against the second etcd line).
fn ops() -> usize {
    std::env::var("CONCH_DIFF_OPS").ok().and_then(|v| v.parse().ok()).filter(|n| *n >= 1000).unwrap_or(100_000)
}
const KEYS: [&str; 8] = ["/d/k0", "/d/k1", "/d/k2", "/d/k3", "/d/k10", "/d/k11", "/d/x/k0", "/d/x/k1"];
const PREFIXES: [&str; 4] = ["/d/", "/d/k1", "/d/x/", "/e/"];

struct Leases {
    sim_to_real: BTreeMap<i64, i64>,
    real_to_sim: BTreeMap<i64, i64>,
}

impl Leases {
    fn real(&self, sim: LeaseId) -> LeaseId {
        LeaseId(self.sim_to_real.get(&sim.0).copied().unwrap_or(if sim.0 == 0 { 0 } else { 0x7777_0000 + sim.0 }))
    }

    fn sim(&self, real: LeaseId) -> LeaseId {
        LeaseId(self.real_to_sim.get(&real.0).copied().unwrap_or(real.0))
    }
}

fn to_real(req: &EtcdRequest, l: &Leases) -> EtcdRequest {
    match req.clone() {
        EtcdRequest::PutIfAbsent { key, value, lease } => EtcdRequest::PutIfAbsent { key, value, lease: l.real(lease) },
        EtcdRequest::PutIfAbsentMarked { key, value, lease, marker } => {
            EtcdRequest::PutIfAbsentMarked { key, value, lease: l.real(lease), marker }
        }
        EtcdRequest::TouchIfCreateRev { key, value, lease, create_rev } => {
            EtcdRequest::TouchIfCreateRev { key, value, lease: l.real(lease), create_rev }
        }
        EtcdRequest::Put { key, value, lease } => EtcdRequest::Put { key, value, lease: lease.map(|x| l.real(x)) },
        EtcdRequest::Revoke { lease } => EtcdRequest::Revoke { lease: l.real(lease) },
        EtcdRequest::KeepAlive { lease, fresh_stream } => EtcdRequest::KeepAlive { lease: l.real(lease), fresh_stream },
        EtcdRequest::Claim { fire_key, claim, claim_lease, running } => EtcdRequest::Claim {
            fire_key,
            claim,
            claim_lease: l.real(claim_lease),
            running: running.map(|(k, x)| (k, l.real(x))),
        },
        other => other,
    }
}

fn to_sim(resp: EtcdResponse, l: &Leases) -> EtcdResponse {
    let kv = |kv: Kv| Kv { lease: l.sim(kv.lease), ..kv };
    match resp {
        EtcdResponse::Put { created, create_rev, lease } => {
            EtcdResponse::Put { created, create_rev, lease: l.sim(lease) }
        }
        EtcdResponse::Granted { lease, ttl_s } => EtcdResponse::Granted { lease: l.sim(lease), ttl_s },
        EtcdResponse::Range { header_rev, kvs } => {
            EtcdResponse::Range { header_rev, kvs: kvs.into_iter().map(kv).collect() }
        }
        EtcdResponse::Ranges { header_rev, results } => EtcdResponse::Ranges {
            header_rev,
            results: results
                .into_iter()
                .map(|r| RangeResult { kvs: r.kvs.into_iter().map(kv).collect(), ..r })
                .collect(),
        },
        other => other,
    }
}

/// A random range with etcd's options, bounds around the store's revisions.
fn random_range(rng: &mut SplitMix64, rev: i64) -> RangeSpec {
    let mut draw = |n: u64| rng.next_u64() % n;
    let prefix = draw(3) != 0;
    let key = if prefix { PREFIXES[draw(4) as usize] } else { KEYS[draw(8) as usize] }.to_string();
    let mut bound =
        |p: u64| if draw(p) == 0 { Revision(1 + (draw(rev.max(1) as u64 + 2)) as i64) } else { Revision(0) };
    let (min_create_rev, max_create_rev, max_mod_rev) = (bound(3), bound(2), bound(6));
    let sort = [RangeSort::Key, RangeSort::CreateAscend, RangeSort::CreateDescend][(rng.next_u64() % 3) as usize];
    let limit = (rng.next_u64() % 4) as usize;
    let keys_only = rng.next_u64().is_multiple_of(2);
    let count_only = rng.next_u64().is_multiple_of(6);
    RangeSpec { key, prefix, min_create_rev, max_create_rev, max_mod_rev, sort, limit, keys_only, count_only }
}

/// A key of [`KEYS`] other than `key`.
fn other_key(rng: &mut SplitMix64, key: &str) -> String {
    let others: Vec<&str> = KEYS.iter().copied().filter(|k| *k != key).collect();
    others[(rng.next_u64() % others.len() as u64) as usize].to_string()
}

/// Keys that share a create revision (one claim's two keys) come in any order from
/// etcd's create-revision sort, and a limit may cut between them: order such ties by
/// key, and where the cut falls inside one, compare only the create revisions kept.
fn ranges_comparable(resp: EtcdResponse, ranges: &[RangeSpec], sim: &mut SimEtcd, now: Instant) -> EtcdResponse {
    let EtcdResponse::Ranges { header_rev, results } = resp else { return resp };
    let results = results
        .into_iter()
        .zip(ranges)
        .map(|(mut r, spec)| {
            let rev_of = |kv: &Kv| match spec.sort {
                RangeSort::CreateDescend => -kv.create_rev.0,
                _ => kv.create_rev.0,
            };
            let by_create = matches!(spec.sort, RangeSort::CreateAscend | RangeSort::CreateDescend);
            if by_create {
                r.kvs.sort_by(|a, b| (rev_of(a), &a.key).cmp(&(rev_of(b), &b.key)));
            }
            let uncut = RangeSpec { limit: 0, ..spec.clone() };
            let full = match sim.apply(now, &EtcdRequest::Ranges { ranges: vec![uncut] }) {
                EtcdResponse::Ranges { mut results, .. } => results.pop().unwrap_or_default(),
                _ => RangeResult::default(),
            };
            let cut_in_tie = by_create
                && spec.limit > 0
                && full.kvs.len() > spec.limit
                && full.kvs[spec.limit - 1].create_rev == full.kvs[spec.limit].create_rev;
            if cut_in_tie {
                for kv in &mut r.kvs {
                    let create_rev = kv.create_rev;
                    *kv = Kv {
                        key: String::new(),
                        create_rev,
                        mod_rev: create_rev,
                        lease: LeaseId(0),
                        value: Vec::new(),
                    };
                }
            }
            r
        })
        .collect();
    EtcdResponse::Ranges { header_rev, results }
}

/// Keys written in one transaction share a create revision, and etcd leaves their order in
/// a range sorted by create revision open (3.4 happens to answer by key, 3.5.1 not): such
/// ties are compared by key. conch never writes two keys of one prefix in one transaction.
fn ties_by_key(resp: EtcdResponse) -> EtcdResponse {
    match resp {
        EtcdResponse::Range { header_rev, mut kvs } => {
            kvs.sort_by(|a, b| (a.create_rev, &a.key).cmp(&(b.create_rev, &b.key)));
            EtcdResponse::Range { header_rev, kvs }
        }
        other => other,
    }
}

/// Keepalive as the driver does it: open the stream, read the first answer.
async fn keepalive(client: &mut Client, lease: LeaseId) -> EtcdResponse {
    match client.lease_keep_alive(lease.0).await {
        Ok((_keeper, _stream)) => EtcdResponse::KeepAlive { ttl_s: -1 },
        Err(_) => EtcdResponse::KeepAlive { ttl_s: 0 },
    }
}

/// Every event of a real watch from `start`, until `count` arrived (or a compaction).
async fn real_watch(
    client: &mut Client,
    key: &str,
    prefix: bool,
    start: Revision,
    count: usize,
) -> Result<Vec<(i64, WatchEvent)>, WatchEvent> {
    let mut options = WatchOptions::new().with_start_revision(start.0);
    if prefix {
        options = options.with_prefix();
    }
    let mut stream = client.watch(key, Some(options)).await.unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::from_secs(3), stream.message()).await else { break };
        if r.compact_revision() > 0 {
            return Err(WatchEvent::Compacted);
        }
        for e in r.events() {
            let kv = e.kv().unwrap();
            let event = match e.event_type() {
                EventType::Put => WatchEvent::Put(to_kv(kv)),
                EventType::Delete => WatchEvent::Delete {
                    key: String::from_utf8_lossy(kv.key()).into(),
                    mod_rev: Revision(kv.mod_revision()),
                },
            };
            out.push((kv.mod_revision(), event));
        }
    }
    Ok(out)
}

#[test]
fn sim_etcd_answers_like_real_etcd() {
    let etcd = Etcd::start_in_memory();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
        let mut sim = SimEtcd::default();
        let mut leases = Leases { sim_to_real: BTreeMap::new(), real_to_sim: BTreeMap::new() };
        let mut rng = SplitMix64::new(0xC0_4C4);
        let now = Instant::from_nanos(1);
        let mut compared = 0usize;
        let mut watches = 0usize;
        let mut ranged = 0usize;
        let pick = |rng: &mut SplitMix64, n: usize| (rng.next_u64() % n as u64) as usize;
        let ops = ops();
        for op in 0..ops {
            let live = sim.leases();
            let any_lease = |rng: &mut SplitMix64| -> LeaseId {
                // Mostly a live lease, sometimes none or one that is gone.
                match rng.next_u64() % 10 {
                    0 => LeaseId(0),
                    1 => LeaseId(0x694d_0000_0000 + 1 + (rng.next_u64() % (op as u64 + 1)) as i64),
                    _ if !live.is_empty() => live[(rng.next_u64() % live.len() as u64) as usize],
                    _ => LeaseId(0),
                }
            };
            let key = KEYS[pick(&mut rng, KEYS.len())].to_string();
            let value = format!("v{}", rng.next_u64() % 1000).into_bytes();
            let create_rev = Revision(match &sim.apply(now, &EtcdRequest::RangePrefix { prefix: key.clone() }) {
                EtcdResponse::Range { kvs, .. } if !rng.next_u64().is_multiple_of(4) => {
                    kvs.iter().find(|kv| kv.key == key).map_or(1, |kv| kv.create_rev.0)
                }
                _ => (rng.next_u64() % (sim.revision().0 as u64 + 1)) as i64,
            });
            // Watches (etcd syncs old-revision watchers every 100 ms) and compactions are
            // rarer than plain requests: 0.3 % and 0.05 % of the operations.
            let roll = rng.next_u64() % 10_000;
            let class = if roll < 30 {
                95
            } else if roll < 35 {
                99
            } else {
                rng.next_u64() % 95
            };
            let request = match class {
                0..=13 => EtcdRequest::PutIfAbsent { key, value, lease: any_lease(&mut rng) },
                // etcd refuses a txn that writes one key twice: the marker is another key.
                14..=17 => {
                    let marker = other_key(&mut rng, &key);
                    EtcdRequest::PutIfAbsentMarked { key, value, lease: any_lease(&mut rng), marker }
                }
                18..=25 => EtcdRequest::TouchIfCreateRev { key, value, lease: any_lease(&mut rng), create_rev },
                26..=33 => EtcdRequest::Put { key, value, lease: Some(any_lease(&mut rng)).filter(|l| l.0 != 0) },
                34..=40 => EtcdRequest::RangePrefix { prefix: PREFIXES[pick(&mut rng, PREFIXES.len())].to_string() },
                41..=48 => {
                    let n = 1 + rng.next_u64() % 4;
                    EtcdRequest::Ranges { ranges: (0..n).map(|_| random_range(&mut rng, sim.revision().0)).collect() }
                }
                49..=53 => EtcdRequest::DeleteIfCreateRev { key, create_rev },
                54..=56 => EtcdRequest::DeleteIfCreateRevMarked { marker: other_key(&mut rng, &key), key, create_rev },
                57..=58 => EtcdRequest::Yield { rival: KEYS[pick(&mut rng, KEYS.len())].to_string(), key, create_rev },
                59..=62 => EtcdRequest::Delete { key },
                63..=69 => EtcdRequest::Grant { ttl_s: 600 },
                70..=75 => EtcdRequest::Revoke { lease: any_lease(&mut rng) },
                76..=78 => EtcdRequest::KeepAlive { lease: any_lease(&mut rng), fresh_stream: true },
                79..=94 => {
                    // conch's fire and running keys never coincide (etcd refuses duplicate keys in a txn).
                    let running = rng
                        .next_u64()
                        .is_multiple_of(2)
                        .then(|| (format!("/d/x/k{}", rng.next_u64() % 2), any_lease(&mut rng)))
                        .filter(|(k, _)| *k != key);
                    EtcdRequest::Claim { fire_key: key, claim: value, claim_lease: any_lease(&mut rng), running }
                }
                95..=98 => {
                    // Watch from a revision: the history must match, or both be compacted.
                    let prefix = rng.next_u64().is_multiple_of(2);
                    let target = if prefix { PREFIXES[pick(&mut rng, PREFIXES.len())].to_string() } else { key };
                    let start = Revision(1 + (rng.next_u64() % sim.revision().0 as u64) as i64);
                    let expected = sim
                        .watch(&target, prefix, start)
                        .map(|cs| cs.into_iter().map(|c| (c.rev, c.event)).collect::<Vec<_>>());
                    let want = expected.as_ref().map_or(1, Vec::len);
                    let got = real_watch(&mut client, &target, prefix, start, want).await;
                    let got = got.map(|evs| {
                        evs.into_iter()
                            .map(|(rev, e)| {
                                (
                                    rev,
                                    match e {
                                        WatchEvent::Put(kv) => {
                                            WatchEvent::Put(Kv { lease: leases.sim(kv.lease), ..kv })
                                        }
                                        other => other,
                                    },
                                )
                            })
                            .collect::<Vec<_>>()
                    });
                    assert_eq!(got, expected, "op {op}: watch {target} prefix={prefix} from {start}");
                    watches += 1;
                    continue;
                }
                _ => {
                    let rev = Revision(1 + (rng.next_u64() % sim.revision().0 as u64) as i64);
                    client.compact(rev.0, None).await.ok();
                    sim.compact(rev);
                    continue;
                }
            };
            let real = match to_real(&request, &leases) {
                EtcdRequest::KeepAlive { lease, .. } => keepalive(&mut client, lease).await,
                other => call(client.clone(), other, Duration::from_secs(5)).await,
            };
            let mut expected = sim.apply(now, &request);
            if let (EtcdResponse::Granted { lease: s, .. }, EtcdResponse::Granted { lease: r, .. }) = (&expected, &real)
            {
                leases.sim_to_real.insert(s.0, r.0);
                leases.real_to_sim.insert(r.0, s.0);
            }
            // A keepalive's TTL is read from the stream by the driver; here only alive or not.
            if let (EtcdResponse::KeepAlive { ttl_s }, EtcdResponse::KeepAlive { ttl_s: -1 }) = (&expected, &real) {
                assert!(*ttl_s > 0, "op {op}: real etcd kept alive a lease the sim lost");
                expected = real.clone();
            }
            let (real, expected) = match &request {
                EtcdRequest::Ranges { ranges } => {
                    ranged += 1;
                    (
                        ranges_comparable(to_sim(real, &leases), ranges, &mut sim, now),
                        ranges_comparable(expected, ranges, &mut sim, now),
                    )
                }
                _ => (ties_by_key(to_sim(real, &leases)), ties_by_key(expected)),
            };
            assert_eq!(real, expected, "op {op}: {request:?}");
            compared += 1;
        }
        assert!(compared + watches > ops * 9 / 10);
        assert!(watches > ops / 500, "only {watches} watch checks");
        assert!(ranged > ops / 20, "only {ranged} ranges with options");
        println!("{compared} results ({ranged} ranges with options) and {watches} watch histories matched");
    });
}

/// Fenced transactions (`conch put`/`del`/`txn`): the guard, every compare target and
/// operator, the branch that runs and each op's result, against a real etcd. Each branch
/// writes at most one key (etcd refuses a txn that writes a key twice; conch passes that
/// refusal on as it comes).
#[test]
fn sim_etcd_answers_fenced_txns_like_real_etcd() {
    use conch_core::fenced::{CmpOp, CmpTarget, CmpValue, Compare, Guard, TxnOp, TxnSpec};
    let etcd = Etcd::start_in_memory();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = Client::connect([etcd.endpoint()], None).await.unwrap();
        let mut sim = SimEtcd::default();
        let mut rng = SplitMix64::new(0xFE_4CED);
        let now = Instant::from_nanos(1);
        let pick = |rng: &mut SplitMix64, n: usize| (rng.next_u64() % n as u64) as usize;
        let ops = ops() / 20;
        let (mut held, mut succeeded) = (0, 0);
        for op in 0..ops {
            let key = KEYS[pick(&mut rng, KEYS.len())].to_string();
            let value = format!("v{}", rng.next_u64() % 5).into_bytes();
            let create_rev_of = |sim: &mut SimEtcd, key: &str| match sim
                .apply(now, &EtcdRequest::RangePrefix { prefix: key.to_string() })
            {
                EtcdResponse::Range { kvs, .. } => kvs.iter().find(|kv| kv.key == key).map_or(0, |kv| kv.create_rev.0),
                _ => 0,
            };
            let request = if rng.next_u64().is_multiple_of(3) {
                // Plain writes keep the keys changing.
                if rng.next_u64().is_multiple_of(4) {
                    EtcdRequest::Delete { key }
                } else {
                    EtcdRequest::Put { key, value, lease: None }
                }
            } else {
                let guard_key = KEYS[pick(&mut rng, KEYS.len())].to_string();
                let real_rev = create_rev_of(&mut sim, &guard_key);
                let rev = if rng.next_u64().is_multiple_of(4) { real_rev + 1 } else { real_rev };
                let guard = (rev > 0 || rng.next_u64().is_multiple_of(8))
                    .then(|| Guard { key: guard_key, rev: Revision(rev.max(1)) });
                let compares = (0..pick(&mut rng, 3))
                    .map(|_| {
                        let target =
                            [CmpTarget::Create, CmpTarget::Mod, CmpTarget::Version, CmpTarget::Value, CmpTarget::Lease]
                                [pick(&mut rng, 5)];
                        let op = [CmpOp::Equal, CmpOp::NotEqual, CmpOp::Less, CmpOp::Greater][pick(&mut rng, 4)];
                        let value = match target {
                            CmpTarget::Value => CmpValue::Bytes(format!("v{}", rng.next_u64() % 5).into_bytes()),
                            _ => CmpValue::Number((rng.next_u64() % (sim.revision().0 as u64 + 2)) as i64),
                        };
                        Compare { key: KEYS[pick(&mut rng, KEYS.len())].to_string(), target, op, value }
                    })
                    .collect();
                let branch = |rng: &mut SplitMix64| {
                    let prefix = PREFIXES[pick(rng, PREFIXES.len())].to_string();
                    let write = match rng.next_u64() % 3 {
                        0 => TxnOp::Put { key: KEYS[pick(rng, KEYS.len())].to_string(), value: value.clone() },
                        1 => TxnOp::Delete { key: prefix.clone(), prefix: true },
                        _ => TxnOp::Delete { key: KEYS[pick(rng, KEYS.len())].to_string(), prefix: false },
                    };
                    vec![TxnOp::Get { key: prefix, prefix: true }, write]
                };
                let txn = TxnSpec { compares, success: branch(&mut rng), failure: branch(&mut rng) };
                EtcdRequest::FencedTxn { guard, txn }
            };
            let real = call(client.clone(), request.clone(), Duration::from_secs(5)).await;
            let expected = sim.apply(now, &request);
            if let EtcdResponse::Fenced(a) = &expected {
                held += usize::from(a.held);
                succeeded += usize::from(a.succeeded);
            }
            assert_eq!(real, expected, "op {op}: {request:?}");
        }
        assert!(held > ops / 6 && succeeded > ops / 20, "too few held ({held}) or succeeded ({succeeded}) of {ops}");
        println!("{ops} operations matched, {held} fenced txns held the guard, {succeeded} ran their success branch");
    });
}
