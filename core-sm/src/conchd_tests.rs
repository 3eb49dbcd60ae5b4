//! conchd's claim decisions over simulated hours: lease rotation, no gaps or repeats,
//! late ticks skipped, shutdown.
use super::*;
use crate::etcd::Kv;

/// The inputs by name, as the tests feed them.
impl Conchd {
    pub(super) fn handle_response(&mut self, now: Now, id: ReqId, response: EtcdResponse) {
        self.handle_input(now, Input::Response(id, response));
    }
    pub(super) fn handle_child_started(&mut self, now: Now, child: ChildId, pid: u32) {
        self.handle_input(now, Input::ChildStarted(child, pid));
    }
    pub(super) fn handle_child_exit(&mut self, now: Now, child: ChildId, status: ChildStatus) {
        self.handle_input(now, Input::ChildExit(child, status));
    }
    pub(super) fn handle_signal(&mut self, now: Now, signal: WrapperSignal) {
        self.handle_input(now, Input::Signal(signal));
    }
    pub(super) fn handle_timeout(&mut self, now: Now) {
        self.handle_input(now, Input::Timeout);
    }
}

fn cfg() -> ConchdConfig {
    ConchdConfig {
        node: "n1".into(),
        pid: 7,
        started: "s".into(),
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(1),
        seed: 3,
    }
}

struct Harness {
    d: Conchd,
    now: Now,
    grants: Vec<i64>,
    claims: Vec<i64>,
    rev: i64,
    /// Answer claims as a retry that found the first attempt's claim (ours) would.
    found_ours: bool,
    /// CONCH_TICK of every run started.
    spawns: Vec<String>,
}

impl Harness {
    fn new(start_wall_ms: i64, schedule: &str) -> Harness {
        let now = Now { mono: Instant::from_nanos(1_000_000_000), wall_ms: start_wall_ms };
        let mut h = Harness {
            d: Conchd::new(cfg()),
            now,
            grants: Vec::new(),
            claims: Vec::new(),
            rev: 10,
            found_ours: false,
            spawns: Vec::new(),
        };
        h.d.start(now);
        h.pump(Some(schedule));
        h
    }

    /// Answers every output like a healthy etcd in which this node always wins.
    fn pump(&mut self, schedule: Option<&str>) {
        for _ in 0..10_000 {
            let Some(o) = self.d.poll_output() else { break };
            let now = self.now;
            match o {
                Output::Etcd { id, request } => {
                    self.rev += 1;
                    let rev = Revision(self.rev);
                    let answer = match request {
                        EtcdRequest::Grant { ttl_s } => {
                            self.grants.push(ttl_s);
                            EtcdResponse::Granted { lease: LeaseId(self.rev), ttl_s }
                        }
                        EtcdRequest::RangePrefix { .. } => {
                            let spec =
                                format!(r#"{{"schedule":"{}","cmd":["true"]}}"#, schedule.unwrap_or("@every 1s"));
                            let kv = Kv {
                                key: format!("{}job", job_prefix()),
                                create_rev: rev,
                                mod_rev: rev,
                                lease: LeaseId(0),
                                value: spec.into_bytes(),
                            };
                            EtcdResponse::Range { header_rev: rev, kvs: vec![kv] }
                        }
                        EtcdRequest::Claim { fire_key, claim, .. } => {
                            self.claims.push(crate::cron::tick_of(&fire_key).unwrap());
                            let found = self.found_ours.then_some(claim);
                            EtcdResponse::Claimed { won: found.is_none(), rev, existing: found }
                        }
                        EtcdRequest::KeepAlive { .. } => EtcdResponse::KeepAlive { ttl_s: 10 },
                        EtcdRequest::Revoke { .. } => EtcdResponse::Revoked,
                        EtcdRequest::DeleteIfCreateRev { .. } => EtcdResponse::Deleted { deleted: true },
                        EtcdRequest::PutIfAbsent { lease, .. } => {
                            EtcdResponse::Put { created: true, create_rev: rev, lease }
                        }
                        _ => EtcdResponse::Written { rev },
                    };
                    self.d.handle_response(now, id, answer);
                }
                Output::Spawn(spec) => {
                    let tick = spec.env.iter().find(|(k, _)| k == "CONCH_TICK").map(|(_, v)| v.clone());
                    self.spawns.push(tick.unwrap_or_default());
                    self.d.handle_child_started(now, spec.child, 99);
                    self.d.handle_child_exit(now, spec.child, ChildStatus::Exited(0));
                }
                _ => {}
            }
        }
    }

    /// Advances both clocks to the next timer (or by `step_ms`) and fires it.
    fn step(&mut self) {
        let next = self.d.poll_timeout().unwrap();
        let ahead = next.since(self.now.mono).max(Duration::from_millis(1));
        self.now = Now { mono: self.now.mono.plus(ahead), wall_ms: self.now.wall_ms + ahead.as_millis() as i64 };
        self.d.handle_timeout(self.now);
        self.pump(None);
    }
}

#[test]
fn three_hours_of_every_second_ticks_keep_leases_bounded() {
    let start = 1_800_000_000_400;
    let mut h = Harness::new(start, "@every 1s");
    for _ in 0..200_000 {
        if h.now.wall_ms > start + 3 * 3600 * 1000 {
            break;
        }
        h.step();
    }
    let claim_leases = h.grants.iter().filter(|t| **t == CLAIM_LEASE_TTL.as_secs() as i64).count();
    let result_leases = h.grants.iter().filter(|t| **t == RESULT_LEASE_TTL.as_secs() as i64).count();
    assert!((3..=4).contains(&claim_leases), "claim leases: {claim_leases}");
    assert_eq!(result_leases, 1);
    // Every second claimed once, none before the start.
    assert_eq!(h.claims.first(), Some(&(start / 1000 + 1)));
    assert!(h.claims.windows(2).all(|w| w[1] == w[0] + 1), "gaps or repeats");
    assert!(h.claims.len() >= 3 * 3600 - 1);
    assert_eq!(h.d.stats.claimed as usize, h.claims.len());
    assert_eq!(h.d.stats.runs.get("exited").copied().unwrap_or(0) as usize, h.claims.len());
}

#[test]
fn a_pause_skips_the_late_ticks_instead_of_replaying_them() {
    let start = 1_800_000_000_000;
    let mut h = Harness::new(start, "*/1 * * * *");
    for _ in 0..1000 {
        if !h.claims.is_empty() {
            break;
        }
        h.step();
    }
    let claimed = h.claims.len();
    assert_eq!(claimed, 1);
    // The host is paused 10 minutes: wall time jumps, the monotonic clock too.
    h.now = Now { mono: h.now.mono.plus(Duration::from_secs(600)), wall_ms: h.now.wall_ms + 600_000 };
    h.d.handle_timeout(h.now);
    h.pump(None);
    assert_eq!(h.claims.len(), claimed, "a late tick was claimed");
    assert_eq!(h.d.stats.skipped_late, 1);
    for _ in 0..1000 {
        if h.claims.len() > claimed {
            break;
        }
        h.step();
    }
    let last = *h.claims.last().unwrap();
    assert!(last * 1000 > h.now.wall_ms - 60_000, "the next claim is a current tick");
    assert!(last * 1000 > start + 600_000);
}

/// Found by the simulator: a wall clock stepped back left the next tick far ahead, and
/// every tick in between went unclaimed until the clock caught up.
#[test]
fn a_clock_stepped_back_replans_the_next_ticks() {
    let start = 1_800_000_000_300;
    let mut h = Harness::new(start, "@every 1s");
    for _ in 0..100 {
        if h.claims.len() >= 3 {
            break;
        }
        h.step();
    }
    // An operator's clock ran 100 s fast; NTP steps it back (the monotonic clock goes on).
    h.now = Now { mono: h.now.mono.plus(Duration::from_millis(10)), wall_ms: h.now.wall_ms + 100_000 };
    h.d.handle_timeout(h.now);
    h.pump(None);
    let before = h.claims.len();
    h.now = Now { mono: h.now.mono.plus(Duration::from_millis(10)), wall_ms: h.now.wall_ms - 100_000 };
    h.d.handle_timeout(h.now);
    h.pump(None);
    let stepped_back_s = h.now.wall_ms / 1000;
    for _ in 0..100 {
        if h.claims.len() >= before + 3 {
            break;
        }
        h.step();
    }
    let first = h.claims[before];
    assert!(first <= stepped_back_s + 2, "the first tick after the step back is {first}, not near {stepped_back_s}");
}

#[test]
fn a_signal_stops_claiming_and_exits_after_revoking() {
    let mut h = Harness::new(1_800_000_000_000, "@every 1s");
    h.step();
    h.step();
    let n = h.claims.len();
    h.d.handle_signal(h.now, WrapperSignal::Terminate);
    let mut exited = false;
    for _ in 0..10 {
        while let Some(o) = h.d.poll_output() {
            if let Output::Etcd { id, request: EtcdRequest::Revoke { .. } } = o {
                h.d.handle_response(h.now, id, EtcdResponse::Revoked);
            }
            exited |= o == Output::Exit(ExitCode::OK);
        }
    }
    assert!(exited);
    assert_eq!(h.claims.len(), n);
}

/// Found by the simulator: a claim answered after SIGTERM started a run that nothing
/// stopped, and the daemon never exited.
#[test]
fn a_claim_won_after_the_signal_starts_no_run() {
    let start = 1_800_000_000_300;
    let mut h = Harness::new(start, "@every 1s");
    // Run to the first claim request, but do not answer it yet.
    let mut claim = None;
    for _ in 0..100 {
        let next = h.d.poll_timeout().unwrap();
        let ahead = next.since(h.now.mono).max(Duration::from_millis(1));
        h.now = Now { mono: h.now.mono.plus(ahead), wall_ms: h.now.wall_ms + ahead.as_millis() as i64 };
        h.d.handle_timeout(h.now);
        while let Some(o) = h.d.poll_output() {
            match o {
                Output::Etcd { id, request: EtcdRequest::Claim { .. } } => claim = Some(id),
                Output::Etcd { id, request: EtcdRequest::Grant { ttl_s } } => {
                    h.d.handle_response(h.now, id, EtcdResponse::Granted { lease: LeaseId(77), ttl_s })
                }
                Output::Etcd { id, request: EtcdRequest::KeepAlive { .. } } => {
                    h.d.handle_response(h.now, id, EtcdResponse::KeepAlive { ttl_s: 10 })
                }
                _ => {}
            }
        }
        if claim.is_some() {
            break;
        }
    }
    let claim = claim.expect("a claim request");
    h.d.handle_signal(h.now, WrapperSignal::Terminate);
    h.d.handle_response(h.now, claim, EtcdResponse::Claimed { won: true, rev: Revision(99), existing: None });
    let mut spawned = false;
    let mut exited = false;
    for _ in 0..10 {
        while let Some(o) = h.d.poll_output() {
            spawned |= matches!(o, Output::Spawn(_));
            if let Output::Etcd { id, request: EtcdRequest::Revoke { .. } } = o {
                h.d.handle_response(h.now, id, EtcdResponse::Revoked);
            }
            exited |= o == Output::Exit(ExitCode::OK);
        }
    }
    assert!(!spawned, "a run started after the signal");
    assert!(exited, "the daemon did not exit");
}

/// A retry of a claim on another endpoint finds the first attempt's claim (ours): the tick
/// is won and runs. The same answer to a second claim of a tick (a clock stepped back to a
/// tick this daemon claimed before) is an orphan: nothing runs twice.
#[test]
fn a_retry_that_finds_our_first_claim_runs_the_tick_a_second_claim_does_not() {
    let start = 1_800_000_000_400;
    let mut h = Harness::new(start, "@every 1s");
    h.found_ours = true;
    for _ in 0..1000 {
        if h.claims.len() >= 3 {
            break;
        }
        h.step();
    }
    assert_eq!(h.claims.len(), 3);
    let claimed: Vec<String> = h.claims.iter().map(|t| crate::cron::rfc3339(*t)).collect();
    assert_eq!(h.spawns, claimed, "every first claim found ours ran");
    assert_eq!(h.d.stats.claimed, 3);
    // The wall clock steps back 2 s: the ticks reached again were claimed (and run) before.
    let runs = h.spawns.len();
    h.now.wall_ms -= 2_000;
    let again = h.claims.len();
    for _ in 0..1000 {
        if h.claims.len() >= again + 4 {
            break;
        }
        h.step();
    }
    let reclaimed: Vec<i64> = h.claims[again..].iter().copied().filter(|t| h.claims[..again].contains(t)).collect();
    assert!(!reclaimed.is_empty(), "the step back reached no tick again: {:?}", h.claims);
    for t in &reclaimed {
        let runs_of_t = h.spawns.iter().filter(|s| **s == crate::cron::rfc3339(*t)).count();
        assert_eq!(runs_of_t, 1, "tick {t} ran twice: {:?}", h.spawns);
    }
    assert!(h.spawns.len() > runs, "the ticks past the step ran: {:?}", h.spawns);
}

/// Found by the simulator (reads refused on a daemon): a claim answered with an error
/// marked its claim lease keyed on a guess, and the shutdown left that empty 25-hour lease.
/// The shutdown reads the fire keys of such claims: none on the lease, so it is revoked;
/// one on it, so it is kept.
#[test]
fn a_claim_lease_kept_only_by_refused_claims_is_settled_at_shutdown() {
    for landed in [false, true] {
        let mut h = Harness::new(1_800_000_000_300, "@every 1s");
        let mut grants = 100;
        let mut claim_lease = None;
        let mut revoked = Vec::new();
        let mut settled = false;
        let mut exited = false;
        for round in 0..40 {
            if round == 20 {
                h.d.handle_signal(h.now, WrapperSignal::Terminate);
            } else if round < 20 {
                let next = h.d.poll_timeout().unwrap();
                let ahead = next.since(h.now.mono).max(Duration::from_millis(1));
                h.now = Now { mono: h.now.mono.plus(ahead), wall_ms: h.now.wall_ms + ahead.as_millis() as i64 };
                h.d.handle_timeout(h.now);
            }
            while let Some(o) = h.d.poll_output() {
                let Output::Etcd { id, request } = o else {
                    exited |= o == Output::Exit(ExitCode::OK);
                    continue;
                };
                let answer = match request {
                    EtcdRequest::Grant { ttl_s } => {
                        grants += 1;
                        EtcdResponse::Granted { lease: LeaseId(grants), ttl_s }
                    }
                    EtcdRequest::KeepAlive { .. } => EtcdResponse::KeepAlive { ttl_s: 10 },
                    EtcdRequest::Claim { claim_lease: lease, .. } => {
                        claim_lease = Some(lease);
                        EtcdResponse::Error(EtcdError::Unavailable("etcdserver: too many requests".into()))
                    }
                    EtcdRequest::Ranges { ranges } => {
                        settled = true;
                        let kv = |key: &str| Kv {
                            key: key.to_string(),
                            create_rev: Revision(5),
                            mod_rev: Revision(5),
                            lease: claim_lease.unwrap(),
                            value: Vec::new(),
                        };
                        let results = ranges
                            .iter()
                            .map(|r| crate::etcd::RangeResult {
                                kvs: if landed { vec![kv(&r.key)] } else { Vec::new() },
                                count: i64::from(landed),
                                more: false,
                            })
                            .collect();
                        EtcdResponse::Ranges { header_rev: Revision(9), results }
                    }
                    // The sweeps of the refused claims' running keys: none there.
                    EtcdRequest::RangePrefix { .. } => EtcdResponse::Range { header_rev: Revision(9), kvs: Vec::new() },
                    EtcdRequest::Revoke { lease } => {
                        revoked.push(lease);
                        EtcdResponse::Revoked
                    }
                    _ => EtcdResponse::Written { rev: Revision(9) },
                };
                h.d.handle_response(h.now, id, answer);
            }
        }
        let claim_lease = claim_lease.expect("a claim was sent");
        assert!(settled, "the refused claims were not read back");
        assert!(exited, "the daemon did not exit");
        assert_eq!(revoked.contains(&claim_lease), !landed, "landed={landed}: revoked {revoked:?}");
    }
}
