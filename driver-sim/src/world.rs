//! The simulated world: K clients, each a real [`Service`] machine (the same code the real
//! driver runs) on a simulated host (shim rules from the core, a child that holds for a
//! while), talking to one [`SimEtcd`] over a simulated network with per-client latency,
//! under a seeded plan of faults (wrapper SIGKILL, partition, lease revoke). One thread,
//! one event queue ordered by (time, sequence): the same seed gives the same trace.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use conch_core::backoff::SplitMix64;
use conch_core::keys::Name;
use conch_core::shim_rules::{ShimRules, ShimSignal};
use conch_core::values::Holder;
use conch_core::{
    ChildId, ChildStatus, Driven, EtcdError, EtcdRequest, EtcdResponse, HoldSpec, HookConfig, Instant, Now, Output,
    ReqId, Revision, RunConfig, Service, ServiceConfig, WatchEvent, WatchId,
};

use crate::etcd::SimEtcd;

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed of every random draw.
    pub seed: u64,
    /// Competing clients.
    pub clients: usize,
    /// Capacity: 1 = elect, more = sema.
    pub max: u32,
    /// Simulated time.
    pub duration: Duration,
    /// Inject faults.
    pub faults: bool,
}

/// One holding interval of a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The client.
    pub client: usize,
    /// Its fencing token.
    pub rev: i64,
    /// Start (ns of simulated time).
    pub start: u64,
    /// End.
    pub end: u64,
}

/// An injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// What.
    pub kind: &'static str,
    /// Whom.
    pub client: usize,
    /// When it began and ended (ns).
    pub from: u64,
    /// ...
    pub to: u64,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Every holding interval.
    pub intervals: Vec<Interval>,
    /// Every fault.
    pub faults: Vec<FaultRecord>,
    /// One line per event, for determinism checks and `--trace`.
    pub trace: Vec<String>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(3);
const KILL_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Ev {
    Apply(usize, u64, ReqId, EtcdRequest),
    Response(usize, u64, ReqId, EtcdResponse),
    Watch(usize, u64, WatchId, WatchEvent),
    Timer(usize, u64),
    Shim(usize, u64),
    ChildEnd(usize, u64),
    Expire,
    Fault,
    Heal(usize),
    Restart(usize),
}

struct Child {
    rev: i64,
    start: u64,
    gen: u64,
}

struct Client {
    service: Option<Service>,
    incarnation: u64,
    latency: Duration,
    timer_gen: u64,
    shim: Option<ShimRules>,
    shim_gen: u64,
    child: Option<Child>,
    watches: BTreeMap<WatchId, (String, bool, i64)>,
    partitioned: bool,
}

/// The world.
pub struct World {
    cfg: SimConfig,
    etcd: SimEtcd,
    clients: Vec<Client>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: BTreeMap<usize, Ev>,
    seq: u64,
    slot: usize,
    now: u64,
    rng: SplitMix64,
    out: Outcome,
    spec: HoldSpec,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl World {
    /// A world for `cfg`.
    pub fn new(cfg: SimConfig) -> World {
        let mut rng = SplitMix64::new(cfg.seed);
        let clients = (0..cfg.clients)
            .map(|_| Client {
                service: None,
                incarnation: 0,
                latency: Duration::from_micros(200 + rng.next_u64() % 3000),
                timer_gen: 0,
                shim: None,
                shim_gen: 0,
                child: None,
                watches: BTreeMap::new(),
                partitioned: false,
            })
            .collect();
        let name = Name::new("sim").expect("a valid name literal");
        let spec = if cfg.max == 1 { HoldSpec::office(name) } else { HoldSpec::semaphore(name, cfg.max) };
        World {
            spec,
            cfg,
            etcd: SimEtcd::default(),
            clients,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            slot: 0,
            now: 0,
            rng,
            out: Outcome::default(),
        }
    }

    fn at(&mut self, when: u64, ev: Ev) {
        self.seq += 1;
        self.slot += 1;
        self.events.insert(self.slot, ev);
        self.queue.push(Reverse((when, self.seq, self.slot)));
    }

    fn clock(&self) -> Now {
        Now { mono: Instant::from_nanos(self.now), wall_ms: 1_800_000_000_000 + (self.now / 1_000_000) as i64 }
    }

    fn trace(&mut self, line: String) {
        self.out.trace.push(format!("{:>12} {line}", self.now));
    }

    /// Runs to the end and returns what happened.
    pub fn run(mut self) -> Outcome {
        for i in 0..self.clients.len() {
            let jitter = self.rng.next_u64() % 50_000_000;
            self.at(jitter, Ev::Restart(i));
        }
        self.at(100_000_000, Ev::Expire);
        if self.cfg.faults {
            self.at(2_000_000_000, Ev::Fault);
        }
        let end = ns(self.cfg.duration);
        for _ in 0..50_000_000u64 {
            let Some(Reverse((when, _, slot))) = self.queue.pop() else { break };
            if when > end {
                break;
            }
            self.now = when;
            let Some(ev) = self.events.remove(&slot) else { continue };
            self.step(ev);
        }
        // Children still holding end with the run.
        for (i, c) in self.clients.iter_mut().enumerate() {
            if let Some(child) = c.child.take() {
                self.out.intervals.push(Interval { client: i, rev: child.rev, start: child.start, end });
            }
        }
        self.out
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Restart(i) => self.start_wrapper(i),
            Ev::Apply(i, inc, id, request) => self.apply(i, inc, id, request),
            Ev::Response(i, inc, id, response) => {
                if self.live(i, inc) && !self.clients[i].partitioned {
                    let now = self.clock();
                    if let Some(s) = self.clients[i].service.as_mut() {
                        Driven::handle_response(s, now, id, response);
                    }
                    self.pump(i);
                }
            }
            Ev::Watch(i, inc, id, event) => {
                if self.live(i, inc) && self.clients[i].watches.contains_key(&id) {
                    let now = self.clock();
                    if let Some(s) = self.clients[i].service.as_mut() {
                        Driven::handle_watch(s, now, id, event);
                    }
                    self.pump(i);
                }
            }
            Ev::Timer(i, gen) => {
                if self.clients[i].timer_gen == gen {
                    let now = self.clock();
                    if let Some(s) = self.clients[i].service.as_mut() {
                        Driven::handle_timeout(s, now);
                    }
                    self.pump(i);
                }
            }
            Ev::Shim(i, gen) => {
                if self.clients[i].shim_gen == gen {
                    let now = Instant::from_nanos(self.now);
                    if let Some(rules) = self.clients[i].shim.as_mut() {
                        rules.handle_timeout(now);
                    }
                    self.shim_perform(i);
                }
            }
            Ev::ChildEnd(i, gen) => {
                if self.clients[i].child.as_ref().is_some_and(|c| c.gen == gen) {
                    self.child_gone(i, ChildStatus::Exited(0));
                }
            }
            Ev::Expire => {
                self.etcd.expire(Instant::from_nanos(self.now));
                self.notify_watches();
                self.at(self.now + 100_000_000, Ev::Expire);
            }
            Ev::Fault => self.fault(),
            Ev::Heal(i) => {
                self.clients[i].partitioned = false;
                self.trace(format!("heal client={i}"));
            }
        }
    }

    fn live(&self, i: usize, inc: u64) -> bool {
        self.clients[i].incarnation == inc && self.clients[i].service.is_some()
    }

    fn start_wrapper(&mut self, i: usize) {
        let spec = self.spec.clone();
        let holder =
            Holder { host: format!("host{i}"), pid: 1000 + i as u32, started: "sim".into(), cmd: Some("child".into()) };
        let run = RunConfig {
            spec,
            holder,
            argv: vec!["child".into()],
            ttl: TTL,
            kill_after: KILL_AFTER,
            wait: None,
            hooks: HookConfig::default(),
        };
        let mut service = Service::new(ServiceConfig { run, restart: true, seed: self.rng.next_u64() });
        service.start(Instant::from_nanos(self.now));
        let c = &mut self.clients[i];
        c.incarnation += 1;
        c.watches.clear();
        c.service = Some(service);
        self.trace(format!("wrapper-start client={i}"));
        self.pump(i);
    }

    /// Drains a client's outputs and schedules its timer.
    fn pump(&mut self, i: usize) {
        let mut outputs = Vec::new();
        let timeout = match self.clients[i].service.as_mut() {
            Some(s) => conch_core::drain(s, |o| outputs.push(o)),
            None => return,
        };
        let inc = self.clients[i].incarnation;
        let lat = ns(self.clients[i].latency);
        for o in outputs {
            match o {
                Output::Etcd { id, request } => {
                    if self.clients[i].partitioned {
                        // Lost on the way; the driver's call timeout answers for it.
                        if !matches!(request, EtcdRequest::KeepAlive { .. }) {
                            let err = EtcdResponse::Error(EtcdError::Unavailable("partitioned".into()));
                            self.at(self.now + ns(CALL_TIMEOUT), Ev::Response(i, inc, id, err));
                        }
                    } else {
                        self.at(self.now + lat, Ev::Apply(i, inc, id, request));
                    }
                }
                Output::Watch { id, key, start_rev, prefix } => {
                    self.clients[i].watches.insert(id, (key, prefix, start_rev.0));
                    self.notify_watches();
                }
                Output::CancelWatch(id) => {
                    self.clients[i].watches.remove(&id);
                }
                Output::Spawn(spec) => {
                    let rev =
                        spec.env.iter().find(|(k, _)| k == "CONCH_REV").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                    self.clients[i].shim = Some(ShimRules::new(spec.term_at, spec.kill_at, spec.kill_after));
                    let gen = self.seq;
                    self.clients[i].child = Some(Child { rev, start: self.now, gen });
                    let hold = 200_000_000 + self.rng.next_u64() % 1_500_000_000;
                    self.at(self.now + hold, Ev::ChildEnd(i, gen));
                    self.trace(format!("child-start client={i} rev={rev}"));
                    let now = self.clock();
                    if let Some(s) = self.clients[i].service.as_mut() {
                        Driven::handle_child_started(s, now, spec.child, 1);
                    }
                    self.schedule_shim(i);
                }
                Output::Deadlines { term_at, kill_at, .. } => {
                    if let Some(r) = self.clients[i].shim.as_mut() {
                        r.handle_deadlines(term_at, kill_at);
                    }
                    self.schedule_shim(i);
                }
                Output::Terminate { kill_at, .. } => {
                    let now = Instant::from_nanos(self.now);
                    if let Some(r) = self.clients[i].shim.as_mut() {
                        r.handle_terminate(now, kill_at);
                    }
                    self.shim_perform(i);
                }
                Output::KillGroup(_) => self.child_gone(i, ChildStatus::Signaled(9)),
                Output::Exit(code) => {
                    self.trace(format!("wrapper-exit client={i} code={}", code.0));
                    self.clients[i].service = None;
                    let delay = 500_000_000 + self.rng.next_u64() % 500_000_000;
                    self.at(self.now + delay, Ev::Restart(i));
                }
                _ => {}
            }
        }
        let c = &mut self.clients[i];
        c.timer_gen += 1;
        let gen = c.timer_gen;
        if let Some(t) = timeout {
            self.at(t.as_nanos().max(self.now), Ev::Timer(i, gen));
        }
    }

    fn apply(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest) {
        let response = self.etcd.apply(Instant::from_nanos(self.now), &request);
        self.notify_watches();
        let lat = ns(self.clients[i].latency);
        self.at(self.now + lat, Ev::Response(i, inc, id, response));
    }

    /// Delivers every new event to every live watch.
    fn notify_watches(&mut self) {
        for i in 0..self.clients.len() {
            let inc = self.clients[i].incarnation;
            let lat = ns(self.clients[i].latency);
            let subs: Vec<(WatchId, (String, bool, i64))> =
                self.clients[i].watches.iter().map(|(k, v)| (*k, v.clone())).collect();
            for (id, (key, prefix, next)) in subs {
                match self.etcd.watch(&key, prefix, Revision(next)) {
                    Ok(changes) => {
                        let Some(last) = changes.last().map(|c| c.rev) else { continue };
                        for c in changes {
                            self.at(self.now + lat, Ev::Watch(i, inc, id, c.event));
                        }
                        self.clients[i].watches.insert(id, (key, prefix, last + 1));
                    }
                    Err(event) => {
                        self.at(self.now + lat, Ev::Watch(i, inc, id, event));
                        self.clients[i].watches.remove(&id);
                    }
                }
            }
        }
    }

    fn schedule_shim(&mut self, i: usize) {
        let now = Instant::from_nanos(self.now);
        let Some(next) = self.clients[i].shim.as_ref().map(|r| r.poll_timeout(now)) else { return };
        self.clients[i].shim_gen += 1;
        let gen = self.clients[i].shim_gen;
        self.at(next.as_nanos().max(self.now + 1), Ev::Shim(i, gen));
    }

    fn shim_perform(&mut self, i: usize) {
        let mut signals = Vec::new();
        if let Some(r) = self.clients[i].shim.as_mut() {
            while let Some(a) = r.poll_action() {
                signals.push(a);
            }
        }
        for s in signals {
            if self.clients[i].child.is_none() {
                break;
            }
            match s {
                // The child (like holdlog) exits at once on SIGTERM.
                ShimSignal::Term(_) => self.child_gone(i, ChildStatus::Signaled(15)),
                ShimSignal::Kill => self.child_gone(i, ChildStatus::Signaled(9)),
            }
        }
        self.schedule_shim(i);
    }

    fn child_gone(&mut self, i: usize, status: ChildStatus) {
        let Some(child) = self.clients[i].child.take() else { return };
        self.out.intervals.push(Interval { client: i, rev: child.rev, start: child.start, end: self.now });
        self.trace(format!("child-end client={i} rev={} status={status:?}", child.rev));
        self.clients[i].shim = None;
        let now = self.clock();
        if let Some(s) = self.clients[i].service.as_mut() {
            Driven::handle_child_exit(s, now, ChildId::default(), status);
        }
        self.pump(i);
    }

    fn fault(&mut self) {
        let i = (self.rng.next_u64() % self.clients.len() as u64) as usize;
        let hold = 300_000_000 + self.rng.next_u64() % 3_000_000_000;
        let kind = match self.rng.next_u64() % 3 {
            0 => {
                // Wrapper SIGKILL: the shim sees its pipe close.
                if self.clients[i].service.take().is_some() {
                    let now = Instant::from_nanos(self.now);
                    if let Some(r) = self.clients[i].shim.as_mut() {
                        r.handle_link_closed(now);
                    }
                    self.shim_perform(i);
                    self.at(self.now + 1_000_000_000, Ev::Restart(i));
                }
                "wrapper-kill"
            }
            1 => {
                self.clients[i].partitioned = true;
                self.at(self.now + hold, Ev::Heal(i));
                "partition"
            }
            _ => {
                let leases = self.etcd.leases();
                if let Some(l) = leases.get((self.rng.next_u64() % leases.len().max(1) as u64) as usize) {
                    self.etcd.apply(Instant::from_nanos(self.now), &EtcdRequest::Revoke { lease: *l });
                    self.notify_watches();
                }
                "revoke"
            }
        };
        let to = if kind == "partition" { self.now + hold } else { self.now };
        self.out.faults.push(FaultRecord { kind, client: i, from: self.now, to });
        self.trace(format!("fault {kind} client={i}"));
        let next = self.now + 1_000_000_000 + self.rng.next_u64() % 4_000_000_000;
        if next + ns(TTL) * 3 < ns(self.cfg.duration) {
            self.at(next, Ev::Fault);
        }
    }
}

/// Checks a run: at most `max` holders outside revoke windows; fencing tokens increase.
pub fn check(max: u32, outcome: &Outcome) -> Vec<String> {
    let mut violations = Vec::new();
    let window = ns(KILL_AFTER) + 200_000_000;
    let mut edges: Vec<(u64, i32)> = outcome.intervals.iter().flat_map(|iv| [(iv.start, 1), (iv.end, -1)]).collect();
    edges.sort_by_key(|(t, d)| (*t, *d));
    let (mut count, mut since) = (0, None);
    for (t, d) in edges {
        count += d;
        if count > max as i32 && since.is_none() {
            since = Some(t);
        } else if count <= max as i32 {
            if let Some(from) = since.take() {
                let covered =
                    outcome.faults.iter().any(|f| f.kind == "revoke" && f.from <= from && t <= f.from + window);
                if !covered {
                    violations.push(format!("more than {max} holders from t={from} to t={t}"));
                }
            }
        }
    }
    let mut ivs = outcome.intervals.clone();
    ivs.sort_by_key(|iv| iv.start);
    // For an office the order is total; a semaphore's concurrent holders may start their
    // children in either order, so there only a reused token is a violation.
    for (k, a) in ivs.iter().enumerate() {
        for b in &ivs[k + 1..] {
            if (max == 1 && b.start >= a.end && b.rev <= a.rev) || (max > 1 && a.rev == b.rev) {
                violations.push(format!("fencing: rev {} started after rev {} ended", b.rev, a.rev));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64, max: u32) -> SimConfig {
        SimConfig { seed, clients: 4, max, duration: Duration::from_secs(120), faults: true }
    }

    #[test]
    fn seeds_hold_the_guarantees() {
        for seed in 1..=10 {
            for max in [1, 2] {
                let outcome = World::new(cfg(seed, max)).run();
                let violations = check(max, &outcome);
                assert!(violations.is_empty(), "seed {seed} max {max}: {violations:?}");
                assert!(outcome.intervals.len() > 20, "seed {seed} max {max}: only {} holds", outcome.intervals.len());
                assert!(!outcome.faults.is_empty());
            }
        }
    }

    /// The checker is not blind: a run with capacity 2 checked against capacity 1 must
    /// show overlaps.
    #[test]
    fn the_checker_catches_too_many_holders() {
        let outcome = World::new(SimConfig { faults: false, ..cfg(3, 2) }).run();
        assert!(!check(1, &outcome).is_empty());
        assert!(check(2, &outcome).is_empty());
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let a = World::new(cfg(7, 2)).run();
        let b = World::new(cfg(7, 2)).run();
        assert_eq!(a.trace, b.trace);
        assert!(a.trace.len() > 100);
        let c = World::new(cfg(8, 2)).run();
        assert_ne!(a.trace, c.trace);
    }
}
