//! The simulated world: clients (real [`Service`] and [`Conchd`] machines from the core,
//! the same code the real driver runs) on [`SimHost`]s, talking to one [`SimEtcd`] over
//! [`SimNet`], under a seeded [`PlannedFault`] plan and the seed's fault sites.
//!
//! One thread, one event queue ordered by (time, sequence), every draw from seeded
//! generators, `BTreeMap`s only: the same seed gives the same trace, byte for byte.
//!
//! A run has three phases: safety (faults), liveness (every fault healed; children started
//! now hold until the end, so the expected holders must settle within the convergence
//! bound) and shutdown (every client gets SIGTERM; nothing may be left behind).
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use conch_core::backoff::SplitMix64;
use conch_core::conchd::{Conchd, ConchdConfig};
use conch_core::cron::{job_key, tick_of, Job, JobSpec, Overlap};
use conch_core::keys::{elect_prefix, sema_prefix, Name};
use conch_core::shim_rules::{ShimRules, ShimSignal};
use conch_core::values::Holder;
use conch_core::{
    ChildId, ChildStatus, Driven, EtcdError, EtcdRequest, EtcdResponse, HoldSpec, HookConfig, Instant, Now, Output,
    ReqId, Revision, RunConfig, Service, ServiceConfig, SpawnSpec, WatchEvent, WatchId, WrapperSignal,
};

use crate::buggify::{Buggify, Site};
use crate::etcd::SimEtcd;
use crate::host::{SimChild, SimHost, EPOCH_MS};
use crate::net::SimNet;
use crate::options::{convergence_bound, FaultKind, SimOptions};
use crate::plan::PlannedFault;
use crate::record::{ClaimRecord, Convergence, FaultRecord, Group, Interval, Leftovers, Outcome, Promotion};

/// A call without an answer fails after this (the real driver's call timeout).
pub const CALL_TIMEOUT_NS: u64 = 2_000_000_000;
/// How often the lessor looks for expired leases.
const EXPIRE_EVERY_NS: u64 = 100_000_000;
/// Longest the shutdown may take before what is left counts as left behind.
const SHUTDOWN_NS: u64 = 15_000_000_000;
/// Second look at convergence, this long after the first.
const SETTLED_NS: u64 = 3_000_000_000;

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// An input on its way to a client's machine.
#[derive(Debug)]
enum Input {
    Response(ReqId, EtcdResponse),
    Watch(WatchId, WatchEvent),
}

#[derive(Debug)]
enum Ev {
    Start(usize),
    Deliver(usize, u64, Input),
    Apply(usize, u64, ReqId, EtcdRequest, u64),
    Timer(usize, u64),
    Shim(usize, ChildId, u64),
    ChildEnd(usize, ChildId, u64),
    Expire,
    Fault(usize),
    Thaw(usize),
    Cut(usize, u64),
    HealLink(usize),
    EtcdBack,
    Heal,
    Converge(bool),
    Shutdown,
}

#[derive(Debug)]
enum Role {
    Holder { group: Group, spec: HoldSpec },
    Daemon,
}

#[derive(Debug)]
enum Machine {
    Service(Box<Service>),
    Conchd(Box<Conchd>),
}

impl Machine {
    fn driven(&mut self) -> &mut dyn Driven {
        match self {
            Machine::Service(s) => s.as_mut(),
            Machine::Conchd(c) => c.as_mut(),
        }
    }
}

#[derive(Debug)]
struct Sub {
    key: String,
    prefix: bool,
    next_rev: i64,
}

#[derive(Debug)]
struct Client {
    role: Role,
    machine: Option<Machine>,
    incarnation: u64,
    timer_gen: u64,
    host: SimHost,
    watches: BTreeMap<WatchId, Sub>,
    daemon_start_s: BTreeMap<u64, (i64, u64)>,
    exited: bool,
}

/// The world.
pub struct World {
    opts: SimOptions,
    plan: Vec<PlannedFault>,
    etcd: SimEtcd,
    net: SimNet,
    clients: Vec<Client>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    seq: u64,
    now: u64,
    rng: SplitMix64,
    buggify: Buggify,
    lease_owner: BTreeMap<i64, usize>,
    session_leases: BTreeSet<i64>,
    phase_liveness: bool,
    stopping: bool,
    changes: BTreeMap<Group, u64>,
    out: Outcome,
}

impl World {
    /// A world for `opts` under `plan`.
    pub fn new(opts: SimOptions, plan: Vec<PlannedFault>) -> World {
        let mut rng = SplitMix64::new(opts.seed);
        let mut clients = Vec::new();
        let office = HoldSpec::office(Name::new("sim-office").expect("a valid name literal"));
        let sema = HoldSpec::semaphore(Name::new("sim-sema").expect("a valid name literal"), opts.sema_max);
        let roles = (0..opts.office_clients)
            .map(|_| Role::Holder { group: Group::Office, spec: office.clone() })
            .chain((0..opts.sema_clients).map(|_| Role::Holder { group: Group::Sema, spec: sema.clone() }))
            .chain((0..opts.daemons).map(|_| Role::Daemon));
        for role in roles {
            let drift = if opts.drift_ppm == 0 { 0 } else { (rng.next_u64() % (2 * opts.drift_ppm as u64 + 1)) as i64 };
            clients.push(Client {
                role,
                machine: None,
                incarnation: 0,
                timer_gen: 0,
                host: SimHost { drift_ppm: drift - opts.drift_ppm, ..SimHost::default() },
                watches: BTreeMap::new(),
                daemon_start_s: BTreeMap::new(),
                exited: false,
            });
        }
        let net = SimNet::new(opts.seed, clients.len(), opts.latency_us);
        let buggify = Buggify::new(opts.seed, &opts.sites);
        let out = Outcome {
            opts: opts.clone(),
            intervals: Vec::new(),
            faults: Vec::new(),
            claims: Vec::new(),
            promotions: Vec::new(),
            convergence: Vec::new(),
            leftovers: Leftovers::default(),
            heal_at: ns(opts.safety),
            stop_at: ns(opts.duration()),
            end_at: 0,
            events: 0,
            trace: Vec::new(),
        };
        World {
            opts,
            plan,
            etcd: SimEtcd::default(),
            net,
            clients,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            now: 0,
            rng,
            buggify,
            lease_owner: BTreeMap::new(),
            session_leases: BTreeSet::new(),
            phase_liveness: false,
            stopping: false,
            changes: BTreeMap::new(),
            out,
        }
    }

    fn at(&mut self, when: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert(self.seq, ev);
        self.queue.push(Reverse((when.max(self.now), self.seq)));
    }

    fn trace(&mut self, ev: &str, fields: std::fmt::Arguments) {
        if self.opts.trace {
            self.out.trace.push(format!("{{\"t\":{},\"ev\":\"{ev}\",{fields}}}", self.now));
        }
    }

    fn fault_record(&mut self, kind: &str, client: Option<usize>, to: u64) {
        self.out.faults.push(FaultRecord { kind: kind.to_string(), client, from: self.now, to });
    }

    /// Runs every phase and returns what happened.
    pub fn run(mut self) -> Outcome {
        self.put_jobs();
        for i in 0..self.clients.len() {
            let jitter = self.rng.next_u64() % 50_000_000;
            self.at(jitter, Ev::Start(i));
        }
        self.at(EXPIRE_EVERY_NS, Ev::Expire);
        for k in 0..self.plan.len() {
            let at = self.plan[k].at_ms * 1_000_000;
            if at < self.out.heal_at {
                self.at(at, Ev::Fault(k));
            }
        }
        let heal_at = self.out.heal_at;
        let bound = ns(convergence_bound(self.opts.ttl, self.opts.kill_after));
        self.at(heal_at, Ev::Heal);
        self.at(heal_at + bound, Ev::Converge(false));
        self.at(heal_at + bound + SETTLED_NS, Ev::Converge(true));
        let stop_at = self.out.stop_at.max(heal_at + bound + SETTLED_NS + 1);
        self.out.stop_at = stop_at;
        self.at(stop_at, Ev::Shutdown);
        let end = stop_at + SHUTDOWN_NS;
        for _ in 0..200_000_000u64 {
            let Some(Reverse((when, seq))) = self.queue.pop() else { break };
            if when > end || (self.stopping && self.clients.iter().all(|c| c.exited && c.host.children.is_empty())) {
                break;
            }
            self.now = when;
            let Some(ev) = self.events.remove(&seq) else { continue };
            self.out.events += 1;
            self.step(ev);
        }
        self.finish()
    }

    fn put_jobs(&mut self) {
        for job in self.opts.jobs.clone() {
            let spec = JobSpec {
                schedule: format!("@every {}s", job.every_s),
                tz: "UTC".into(),
                cmd: vec![job.name.clone()],
                run_ttl: "1h".into(),
                overlap: if job.skip_overlap { Overlap::Skip } else { Overlap::Allow },
                added_by: "sim".into(),
                added_at: "sim".into(),
            };
            if Job::new(spec.clone()).is_err() {
                continue;
            }
            let Ok(name) = Name::new(&job.name) else { continue };
            let value = serde_json::to_vec(&spec).unwrap_or_default();
            self.etcd.apply(Instant::from_nanos(0), &EtcdRequest::Put { key: job_key(&name), value, lease: None });
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Start(i) => self.start_machine(i),
            Ev::Deliver(i, inc, input) => self.deliver(i, inc, input),
            Ev::Apply(i, inc, id, request, sent) => self.apply(i, inc, id, request, sent),
            Ev::Timer(i, gen) => {
                if self.clients[i].timer_gen == gen {
                    if self.clients[i].host.wrapper_blocked(self.now) {
                        let resume = self.clients[i].host.wrapper_resumes();
                        self.at(resume, Ev::Timer(i, gen));
                        return;
                    }
                    let now = self.clock(i);
                    if let Some(m) = self.clients[i].machine.as_mut() {
                        m.driven().handle_timeout(now);
                    }
                    self.pump(i);
                }
            }
            Ev::Shim(i, child, gen) => {
                if self.clients[i].host.frozen(self.now) {
                    let resume = self.clients[i].host.frozen_until;
                    self.at(resume, Ev::Shim(i, child, gen));
                    return;
                }
                let now = self.clients[i].host.mono(self.now);
                let Some(c) = self.clients[i].host.children.get_mut(&child) else { return };
                if c.shim_gen == gen {
                    c.rules.handle_timeout(now);
                    self.shim_perform(i, child);
                }
            }
            Ev::ChildEnd(i, child, gen) => {
                if self.clients[i].host.frozen(self.now) {
                    let resume = self.clients[i].host.frozen_until;
                    self.at(resume, Ev::ChildEnd(i, child, gen));
                    return;
                }
                if self.clients[i].host.children.get(&child).is_some_and(|c| c.gen == gen) {
                    self.child_gone(i, child, ChildStatus::Exited(0));
                }
            }
            Ev::Expire => {
                if !self.net.etcd_down(self.now) && !self.net.stalled(self.now) {
                    self.etcd.expire(Instant::from_nanos(self.now));
                    self.notify_watches();
                }
                self.at(self.now + EXPIRE_EVERY_NS, Ev::Expire);
            }
            Ev::Fault(k) => {
                if let Some(fault) = self.plan.get(k).cloned() {
                    self.fault(fault);
                }
            }
            Ev::Thaw(i) => {
                if !self.clients[i].host.wrapper_blocked(self.now) {
                    self.trace("thaw", format_args!("\"client\":{i}"));
                }
            }
            Ev::Cut(i, until) => {
                self.net.cut(i, self.now, until, true, true);
                self.fault_record("swizzle", Some(i), until);
                self.at(until, Ev::HealLink(i));
            }
            Ev::HealLink(i) => {
                if self.net.healed(i, self.now) {
                    self.heal_link(i);
                }
            }
            Ev::EtcdBack => self.etcd_back(),
            Ev::Heal => self.heal_all(),
            Ev::Converge(second) => self.converge(second),
            Ev::Shutdown => self.shutdown(),
        }
    }

    fn clock(&self, i: usize) -> Now {
        let host = &self.clients[i].host;
        Now { mono: host.mono(self.now), wall_ms: host.wall_ms(self.now) }
    }

    fn start_machine(&mut self, i: usize) {
        if self.stopping || self.clients[i].machine.is_some() {
            return;
        }
        let seed = self.rng.next_u64();
        let now = self.clock(i);
        let c = &mut self.clients[i];
        c.incarnation += 1;
        c.watches.clear();
        c.exited = false;
        let machine = match &c.role {
            Role::Holder { spec, .. } => {
                let holder = Holder {
                    host: format!("host{i}"),
                    pid: 1000 + c.incarnation as u32,
                    started: format!("inc{}", c.incarnation),
                    cmd: Some("child".into()),
                };
                let run = RunConfig {
                    spec: spec.clone(),
                    holder,
                    argv: vec!["child".into()],
                    ttl: self.opts.ttl,
                    kill_after: self.opts.kill_after,
                    wait: None,
                    hooks: HookConfig::default(),
                    sabotage: self.opts.sabotage,
                };
                let mut service = Service::new(ServiceConfig { run, restart: true, seed });
                service.start(now.mono);
                Machine::Service(Box::new(service))
            }
            Role::Daemon => {
                c.daemon_start_s.insert(c.incarnation, (now.wall_ms.div_euclid(1000), self.now));
                let cfg = ConchdConfig {
                    node: format!("host{i}"),
                    pid: 1000 + c.incarnation as u32,
                    started: format!("inc{}", c.incarnation),
                    ttl: self.opts.ttl,
                    kill_after: self.opts.kill_after,
                    seed,
                    sabotage: self.opts.sabotage,
                };
                let mut conchd = Conchd::new(cfg);
                conchd.start(now);
                Machine::Conchd(Box::new(conchd))
            }
        };
        c.machine = Some(machine);
        let inc = c.incarnation;
        self.trace("start", format_args!("\"client\":{i},\"incarnation\":{inc}"));
        self.pump(i);
    }

    fn deliver(&mut self, i: usize, inc: u64, input: Input) {
        let c = &self.clients[i];
        if c.incarnation != inc || c.machine.is_none() {
            return;
        }
        if c.host.wrapper_blocked(self.now) {
            let resume = c.host.wrapper_resumes();
            self.at(resume, Ev::Deliver(i, inc, input));
            return;
        }
        let now = self.clock(i);
        match input {
            Input::Response(id, response) => {
                if let Some(m) = self.clients[i].machine.as_mut() {
                    m.driven().handle_response(now, id, response);
                }
            }
            Input::Watch(id, event) => {
                if !self.clients[i].watches.contains_key(&id) {
                    return;
                }
                if matches!(event, WatchEvent::Compacted | WatchEvent::Broken(_)) {
                    self.clients[i].watches.remove(&id);
                }
                if let Some(m) = self.clients[i].machine.as_mut() {
                    m.driven().handle_watch(now, id, event);
                }
            }
        }
        self.pump(i);
    }

    /// Drains a client's outputs, performs them, and schedules its timer.
    fn pump(&mut self, i: usize) {
        let mut outputs = Vec::new();
        let timeout = match self.clients[i].machine.as_mut() {
            Some(m) => conch_core::drain(m.driven(), |o| outputs.push(o)),
            None => return,
        };
        for o in outputs {
            self.perform(i, o);
            if self.clients[i].machine.is_none() {
                return;
            }
        }
        let c = &mut self.clients[i];
        c.timer_gen += 1;
        let gen = c.timer_gen;
        if let Some(t) = timeout {
            let when = c.host.sim_time_of(t);
            self.at(when, Ev::Timer(i, gen));
        }
    }

    fn perform(&mut self, i: usize, output: Output) {
        let inc = self.clients[i].incarnation;
        match output {
            Output::Etcd { id, request } => self.send(i, inc, id, request),
            Output::Watch { id, key, start_rev, prefix } => self.open_watch(i, inc, id, key, start_rev, prefix),
            Output::CancelWatch(id) => {
                self.clients[i].watches.remove(&id);
            }
            Output::Spawn(spec) => self.spawn(i, spec),
            Output::Deadlines { child, term_at, kill_at } => {
                if let Some(c) = self.clients[i].host.children.get_mut(&child) {
                    c.rules.handle_deadlines(term_at, kill_at);
                    self.schedule_shim(i, child);
                }
            }
            Output::Terminate { child, kill_at } => {
                let now = self.clients[i].host.mono(self.now);
                if let Some(c) = self.clients[i].host.children.get_mut(&child) {
                    c.rules.handle_terminate(now, kill_at);
                    self.shim_perform(i, child);
                }
            }
            Output::KillGroup(child) => self.child_gone(i, child, ChildStatus::Signaled(9)),
            Output::Exit(code) => {
                self.trace("exit", format_args!("\"client\":{i},\"code\":{}", code.0));
                let c = &mut self.clients[i];
                c.machine = None;
                c.exited = true;
                c.watches.clear();
                if !self.stopping {
                    let delay = 500_000_000 + self.rng.next_u64() % 1_000_000_000;
                    self.at(self.now + delay, Ev::Start(i));
                }
            }
            Output::Log(event) if self.opts.trace => {
                let fields: Vec<String> = event
                    .fields
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{}", serde_json::Value::String(v.clone())))
                    .collect();
                let sep = if fields.is_empty() { "" } else { "," };
                self.trace("log", format_args!("\"client\":{i},\"kind\":\"{}\"{sep}{}", event.kind, fields.join(",")));
            }
            _ => {}
        }
    }

    fn send(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest) {
        let keepalive = matches!(request, EtcdRequest::KeepAlive { .. });
        match self.net.up(i, self.now) {
            Some(arrival) => self.at(arrival, Ev::Apply(i, inc, id, request, self.now)),
            // Lost on the way: the call's timeout answers (a keepalive stream just stays silent).
            None if !keepalive => self.fail_call(i, inc, id, self.now, "no answer (partition)"),
            None => {}
        }
    }

    fn fail_call(&mut self, i: usize, inc: u64, id: ReqId, sent: u64, why: &str) {
        let err = EtcdResponse::Error(EtcdError::Unavailable(why.to_string()));
        self.at(sent + CALL_TIMEOUT_NS, Ev::Deliver(i, inc, Input::Response(id, err)));
    }

    fn apply(&mut self, i: usize, inc: u64, id: ReqId, request: EtcdRequest, sent: u64) {
        let keepalive = matches!(request, EtcdRequest::KeepAlive { .. });
        if self.net.stalled(self.now) {
            let until = self.net.stalled_until;
            self.at(until, Ev::Apply(i, inc, id, request, sent));
            return;
        }
        if self.net.etcd_down(self.now) {
            if !keepalive {
                let err = EtcdResponse::Error(EtcdError::Unavailable("connection refused".into()));
                self.respond(i, inc, id, err, sent, false);
            }
            return;
        }
        let response = self.etcd.apply(Instant::from_nanos(self.now), &request);
        self.observe(i, inc, &request, &response);
        self.notify_watches();
        self.respond(i, inc, id, response, sent, keepalive);
    }

    /// Records what the checkers need from an applied request.
    fn observe(&mut self, i: usize, inc: u64, request: &EtcdRequest, response: &EtcdResponse) {
        match (request, response) {
            (EtcdRequest::Grant { .. }, EtcdResponse::Granted { lease, ttl_s }) => {
                self.lease_owner.insert(lease.0, i);
                if *ttl_s == self.opts.ttl.as_secs() as i64 {
                    self.session_leases.insert(lease.0);
                }
            }
            // A lost race is no decision of this daemon's; a skip for overlap is.
            (EtcdRequest::Claim { fire_key, .. }, EtcdResponse::Claimed { won, existing, .. })
                if *won || existing.is_none() =>
            {
                self.claim_record(i, inc, fire_key, *won);
            }
            (EtcdRequest::Put { key, .. }, EtcdResponse::Written { .. }) if key.starts_with("/conch/v1/cron/fire/") => {
                self.claim_record(i, inc, key, true);
            }
            _ => {}
        }
    }

    fn claim_record(&mut self, i: usize, inc: u64, fire_key: &str, won: bool) {
        let Some(tick) = tick_of(fire_key) else { return };
        let job = fire_key.trim_start_matches("/conch/v1/cron/fire/").split('/').next().unwrap_or("").to_string();
        let (daemon_start_s, daemon_started_at) =
            self.clients[i].daemon_start_s.get(&inc).copied().unwrap_or((i64::MIN, 0));
        self.trace("claim", format_args!("\"client\":{i},\"job\":\"{job}\",\"tick\":{tick},\"won\":{won}"));
        self.out.claims.push(ClaimRecord {
            client: i,
            job,
            tick,
            at: self.now,
            won,
            daemon_start_s,
            daemon_started_at,
        });
    }

    fn respond(&mut self, i: usize, inc: u64, id: ReqId, response: EtcdResponse, sent: u64, keepalive: bool) {
        if !keepalive && self.buggify.fires(Site::ResponseLost) {
            self.site_fired(Site::ResponseLost, i);
            self.fail_call(i, inc, id, sent, "no answer (response lost)");
            return;
        }
        if keepalive && self.buggify.fires(Site::KeepaliveLate) {
            // Just before the holder's deadline: most of the TTL after it was sent.
            let ttl = ns(self.opts.ttl);
            let late = sent + ttl / 2 + self.buggify.draw(ttl / 2);
            self.site_fired(Site::KeepaliveLate, i);
            if !self.net.down_cut(i, late) {
                self.at(late, Ev::Deliver(i, inc, Input::Response(id, response)));
            }
            return;
        }
        match self.net.down(i, self.now) {
            Some(arrival) => self.at(arrival, Ev::Deliver(i, inc, Input::Response(id, response))),
            None if !keepalive => self.fail_call(i, inc, id, sent, "no answer (partition)"),
            None => {}
        }
    }

    fn site_fired(&mut self, site: Site, i: usize) {
        self.trace("site", format_args!("\"site\":\"{}\",\"client\":{i}", site.as_str()));
        self.fault_record(&format!("site:{}", site.as_str()), Some(i), self.now);
    }

    fn open_watch(&mut self, i: usize, inc: u64, id: WatchId, key: String, start_rev: Revision, prefix: bool) {
        if self.net.etcd_down(self.now) {
            if let Some(at) = self.net.down(i, self.now) {
                let event = WatchEvent::Broken("connection refused".into());
                self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
            }
            self.clients[i].watches.insert(id, Sub { key, prefix, next_rev: i64::MAX });
            return;
        }
        if self.buggify.fires(Site::CompactBeforeWatch) {
            self.site_fired(Site::CompactBeforeWatch, i);
            let rev = self.etcd.revision();
            self.etcd.compact(rev);
        }
        self.clients[i].watches.insert(id, Sub { key, prefix, next_rev: start_rev.0 });
        self.notify_watches();
    }

    /// Sends every new event to every subscribed watch (held while etcd stalls).
    fn notify_watches(&mut self) {
        if self.net.stalled(self.now) || self.net.etcd_down(self.now) {
            return;
        }
        let current = self.etcd.revision().0;
        for i in 0..self.clients.len() {
            let inc = self.clients[i].incarnation;
            let ids: Vec<WatchId> = self.clients[i].watches.keys().copied().collect();
            for id in ids {
                let Some(sub) = self.clients[i].watches.get(&id) else { continue };
                if sub.next_rev > current {
                    continue;
                }
                let found = self.etcd.watch(&sub.key, sub.prefix, Revision(sub.next_rev));
                match found {
                    Ok(changes) => {
                        if let Some(sub) = self.clients[i].watches.get_mut(&id) {
                            sub.next_rev = current + 1;
                        }
                        for change in changes {
                            self.send_event(i, inc, id, change.event);
                        }
                    }
                    Err(event) => {
                        if let Some(sub) = self.clients[i].watches.get_mut(&id) {
                            sub.next_rev = i64::MAX;
                        }
                        self.send_event(i, inc, id, event);
                    }
                }
            }
        }
    }

    fn send_event(&mut self, i: usize, inc: u64, id: WatchId, event: WatchEvent) {
        let event = if matches!(event, WatchEvent::Put(_) | WatchEvent::Delete { .. })
            && self.buggify.fires(Site::WatchCancelled)
        {
            self.site_fired(Site::WatchCancelled, i);
            if let Some(sub) = self.clients[i].watches.get_mut(&id) {
                sub.next_rev = i64::MAX;
            }
            WatchEvent::Broken("watch cancelled by the server".into())
        } else {
            event
        };
        if self.net.down_cut(i, self.now) {
            self.net.links[i].held.push((id, event));
            return;
        }
        if let Some(at) = self.net.down(i, self.now) {
            self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
        }
    }

    fn spawn(&mut self, i: usize, spec: SpawnSpec) {
        let env = |name: &str| spec.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let rev: i64 = env("CONCH_REV").and_then(|v| v.parse().ok()).unwrap_or(0);
        let label = match (env("CONCH_NAME"), env("CONCH_TICK")) {
            (Some(name), Some(tick)) => format!("{name}@{tick}"),
            _ => String::new(),
        };
        let stubborn = self.rng.next_u64() % 1000 < self.opts.stubborn_permille;
        let forever = self.phase_liveness && matches!(self.clients[i].role, Role::Holder { .. });
        let rules = ShimRules::new(spec.term_at, spec.kill_at, spec.kill_after).with_sabotage(self.opts.sabotage);
        self.seq += 1;
        let gen = self.seq;
        let child = spec.child;
        let group = self.group_of(i);
        if let Role::Holder { spec: hold, .. } = &self.clients[i].role {
            let lower = self.etcd.range(&hold.prefix()).iter().filter(|kv| kv.create_rev.0 < rev).count();
            self.out.promotions.push(Promotion { client: i, group, rev, lower, at: self.now });
        }
        self.clients[i].host.children.insert(
            child,
            SimChild { rules, shim_gen: 0, rev, label: label.clone(), start: self.now, stubborn, forever, gen },
        );
        *self.changes.entry(group).or_insert(0) += 1;
        self.trace("child-start", format_args!("\"client\":{i},\"rev\":{rev},\"label\":\"{label}\""));
        if !forever {
            let hold = match &self.clients[i].role {
                Role::Daemon => self.run_ms(&label),
                Role::Holder { .. } => self.draw_between(self.opts.hold_ms),
            };
            self.at(self.now + hold * 1_000_000, Ev::ChildEnd(i, child, gen));
        }
        let now = self.clock(i);
        if let Some(m) = self.clients[i].machine.as_mut() {
            m.driven().handle_child_started(now, child, 100_000 + gen as u32);
        }
        self.schedule_shim(i, child);
    }

    fn run_ms(&mut self, label: &str) -> u64 {
        let name = label.split('@').next().unwrap_or("");
        let range = self.opts.jobs.iter().find(|j| j.name == name).map_or((100, 200), |j| j.run_ms);
        self.draw_between(range)
    }

    fn draw_between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.rng.next_u64() % (hi.saturating_sub(lo) + 1)
    }

    fn group_of(&self, i: usize) -> Group {
        match &self.clients[i].role {
            Role::Holder { group, .. } => *group,
            Role::Daemon => Group::Cron,
        }
    }

    fn schedule_shim(&mut self, i: usize, child: ChildId) {
        let now = self.clients[i].host.mono(self.now);
        let Some(c) = self.clients[i].host.children.get_mut(&child) else { return };
        c.shim_gen += 1;
        let (gen, next) = (c.shim_gen, c.rules.poll_timeout(now));
        let when = self.clients[i].host.sim_time_of(next).max(self.now + 1);
        self.at(when, Ev::Shim(i, child, gen));
    }

    fn shim_perform(&mut self, i: usize, child: ChildId) {
        let mut signals = Vec::new();
        if let Some(c) = self.clients[i].host.children.get_mut(&child) {
            while let Some(a) = c.rules.poll_action() {
                signals.push(a);
            }
        }
        for signal in signals {
            let Some(c) = self.clients[i].host.children.get(&child) else { return };
            match signal {
                ShimSignal::Term(_) if c.stubborn => {}
                ShimSignal::Term(_) => return self.child_gone(i, child, ChildStatus::Signaled(15)),
                ShimSignal::Kill => return self.child_gone(i, child, ChildStatus::Signaled(9)),
            }
        }
        self.schedule_shim(i, child);
    }

    fn child_gone(&mut self, i: usize, child: ChildId, status: ChildStatus) {
        let Some(c) = self.clients[i].host.children.remove(&child) else { return };
        let group = self.group_of(i);
        self.out.intervals.push(Interval {
            client: i,
            group,
            rev: c.rev,
            label: c.label,
            start: c.start,
            end: self.now,
        });
        *self.changes.entry(group).or_insert(0) += 1;
        self.trace("child-end", format_args!("\"client\":{i},\"rev\":{},\"status\":\"{status:?}\"", c.rev));
        let now = self.clock(i);
        if let Some(m) = self.clients[i].machine.as_mut() {
            m.driven().handle_child_exit(now, child, status);
        }
        self.pump(i);
    }

    fn fault(&mut self, f: PlannedFault) {
        let n = self.clients.len();
        if n == 0 {
            return;
        }
        let i = f.target % n;
        let hold = f.hold_ms * 1_000_000;
        let until = (self.now + hold).min(self.out.heal_at);
        self.trace("fault", format_args!("\"kind\":\"{}\",\"client\":{i},\"hold_ms\":{}", f.kind.as_str(), f.hold_ms));
        match f.kind {
            FaultKind::Crash => {
                if self.clients[i].machine.is_none() {
                    return;
                }
                self.crash(i);
                let back = self.now + 300_000_000 + f.param % 2_700_000_000;
                self.at(back, Ev::Start(i));
                self.fault_record("crash", Some(i), back);
            }
            FaultKind::Pause | FaultKind::Freeze => {
                let host = &mut self.clients[i].host;
                if f.kind == FaultKind::Pause {
                    host.wrapper_stopped_until = host.wrapper_stopped_until.max(until);
                } else {
                    host.frozen_until = host.frozen_until.max(until);
                }
                self.at(until, Ev::Thaw(i));
                self.fault_record(f.kind.as_str(), Some(i), until);
            }
            FaultKind::Partition | FaultKind::OneWay => {
                let (up, down) = match (f.kind, f.param % 2) {
                    (FaultKind::Partition, _) => (true, true),
                    (_, 0) => (true, false),
                    _ => (false, true),
                };
                self.net.cut(i, self.now, until, up, down);
                self.at(until, Ev::HealLink(i));
                let kind = if f.kind == FaultKind::Partition {
                    "partition"
                } else if up {
                    "cut-up"
                } else {
                    "cut-down"
                };
                self.fault_record(kind, Some(i), until);
            }
            FaultKind::Swizzle => {
                // A random subset, cut one at a time, healed in random order.
                let mut draw = SplitMix64::new(f.param);
                let members: Vec<usize> = (0..n).filter(|_| draw.next_u64().is_multiple_of(2)).collect();
                let step = hold / (members.len() as u64 + 1);
                let mut heal_order = members.clone();
                for k in (1..heal_order.len()).rev() {
                    heal_order.swap(k, (draw.next_u64() % (k as u64 + 1)) as usize);
                }
                for (k, m) in members.iter().enumerate() {
                    let from = self.now + step * k as u64;
                    let rank = heal_order.iter().position(|h| h == m).unwrap_or(0) as u64;
                    let to = (self.now + hold + step * rank).min(self.out.heal_at);
                    if from < to {
                        self.at(from, Ev::Cut(*m, to));
                    }
                }
            }
            FaultKind::Revoke => {
                let Some(lease) = self.session_lease_of(i) else { return };
                self.admin(i, EtcdRequest::Revoke { lease: conch_core::LeaseId(lease) }, "revoke");
            }
            FaultKind::KeyDelete => {
                let Some(key) = self.key_of(i) else { return };
                self.admin(i, EtcdRequest::Delete { key }, "key-delete");
            }
            FaultKind::EtcdDown => {
                if self.net.etcd_down(self.now) {
                    return;
                }
                self.net.etcd_down_until = until;
                // Every watch stream breaks.
                for c in 0..n {
                    let inc = self.clients[c].incarnation;
                    let ids: Vec<WatchId> = self.clients[c].watches.keys().copied().collect();
                    for id in ids {
                        if let Some(sub) = self.clients[c].watches.get_mut(&id) {
                            sub.next_rev = i64::MAX;
                        }
                        self.send_event(c, inc, id, WatchEvent::Broken("etcd down".into()));
                    }
                }
                self.at(until, Ev::EtcdBack);
                self.fault_record("etcd-down", None, until);
            }
            FaultKind::Stall => {
                if self.net.stalled(self.now) || self.net.etcd_down(self.now) {
                    return;
                }
                self.net.stalled_until = until;
                self.at(until, Ev::EtcdBack);
                self.fault_record("stall", None, until);
            }
            FaultKind::Compact => {
                let rev = self.etcd.revision();
                self.etcd.compact(rev);
                self.fault_record("compact", None, self.now);
            }
            FaultKind::ClockJump => {
                let size = 1_000 + (f.param >> 1) % 120_000;
                let step = if f.param.is_multiple_of(2) { size as i64 } else { -(size as i64) };
                self.clients[i].host.wall_offset_ms += step;
                // The clock stays wrong until NTP steps it back at the heal.
                self.fault_record("clock-jump", Some(i), self.out.heal_at);
            }
        }
    }

    /// An administrative write (`etcdctl lease revoke`, `etcdctl del`) against client `i`.
    fn admin(&mut self, i: usize, request: EtcdRequest, kind: &str) {
        if self.net.etcd_down(self.now) || self.net.stalled(self.now) {
            return;
        }
        self.etcd.apply(Instant::from_nanos(self.now), &request);
        self.notify_watches();
        self.fault_record(kind, Some(i), self.now);
    }

    fn session_lease_of(&self, i: usize) -> Option<i64> {
        let live: BTreeSet<i64> = self.etcd.leases().into_iter().map(|l| l.0).collect();
        self.lease_owner
            .iter()
            .rev()
            .find(|(l, o)| **o == i && self.session_leases.contains(l) && live.contains(l))
            .map(|(l, _)| *l)
    }

    fn key_of(&self, i: usize) -> Option<String> {
        let Role::Holder { spec, .. } = &self.clients[i].role else { return None };
        self.etcd
            .range(&spec.prefix())
            .into_iter()
            .find(|kv| self.lease_owner.get(&kv.lease.0) == Some(&i))
            .map(|kv| kv.key)
    }

    /// SIGKILL of the wrapper: its shim sees the pipe close.
    fn crash(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.machine = None;
        c.incarnation += 1;
        c.watches.clear();
        c.host.wrapper_stopped_until = 0;
        let now = c.host.mono(self.now);
        let children: Vec<ChildId> = c.host.children.keys().copied().collect();
        for child in children {
            if let Some(ch) = self.clients[i].host.children.get_mut(&child) {
                ch.rules.handle_link_closed(now);
            }
            self.shim_perform(i, child);
        }
    }

    fn heal_link(&mut self, i: usize) {
        let (held, broke) = self.net.heal(i, self.now);
        let inc = self.clients[i].incarnation;
        self.trace("heal", format_args!("\"client\":{i},\"broke\":{broke}"));
        if broke {
            let ids: BTreeSet<WatchId> = held.iter().map(|(id, _)| *id).collect();
            for id in ids {
                if let Some(at) = self.net.down(i, self.now) {
                    let event = WatchEvent::Broken("stream reset".into());
                    self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
                }
            }
            return;
        }
        for (id, event) in held {
            if let Some(at) = self.net.down(i, self.now) {
                self.at(at, Ev::Deliver(i, inc, Input::Watch(id, event)));
            }
        }
    }

    fn etcd_back(&mut self) {
        if self.net.etcd_down(self.now) || self.net.stalled(self.now) {
            return;
        }
        self.etcd.renew_all(Instant::from_nanos(self.now));
        self.trace("etcd-back", format_args!("\"rev\":{}", self.etcd.revision().0));
        self.notify_watches();
    }

    /// The liveness phase begins: every fault heals, clocks are stepped back by NTP.
    fn heal_all(&mut self) {
        self.phase_liveness = true;
        self.buggify.switch_off();
        self.trace("phase", format_args!("\"phase\":\"liveness\""));
        let stalled = self.net.stalled(self.now) || self.net.etcd_down(self.now);
        self.net.stalled_until = self.net.stalled_until.min(self.now);
        self.net.etcd_down_until = self.net.etcd_down_until.min(self.now);
        if stalled {
            self.etcd_back();
        }
        for i in 0..self.clients.len() {
            let host = &mut self.clients[i].host;
            host.wrapper_stopped_until = host.wrapper_stopped_until.min(self.now);
            host.frozen_until = host.frozen_until.min(self.now);
            if host.wall_offset_ms != 0 {
                host.wall_offset_ms = 0;
                self.fault_record("clock-reset", Some(i), self.now);
            }
            self.net.links[i].up_cut_until = self.net.links[i].up_cut_until.min(self.now);
            self.net.links[i].down_cut_until = self.net.links[i].down_cut_until.min(self.now);
            self.heal_link(i);
            // The workload settles too: children of the safety phase finish within 2 s, so
            // the convergence bound does not depend on how long they meant to hold.
            let ending: Vec<(ChildId, u64)> =
                self.clients[i].host.children.iter().filter(|(_, c)| !c.forever).map(|(id, c)| (*id, c.gen)).collect();
            for (child, gen) in ending {
                let delay = self.rng.next_u64() % 2_000_000_000;
                self.at(self.now + delay, Ev::ChildEnd(i, child, gen));
            }
        }
    }

    fn converge(&mut self, second: bool) {
        let groups: Vec<(Group, String, u32)> = [
            (Group::Office, self.opts.office_clients, 1, elect_prefix(&Name::new("sim-office").expect("literal"))),
            (
                Group::Sema,
                self.opts.sema_clients,
                self.opts.sema_max,
                sema_prefix(&Name::new("sim-sema").expect("literal"), self.opts.sema_max),
            ),
        ]
        .into_iter()
        .filter(|(_, k, _, _)| *k > 0)
        .map(|(g, _, max, prefix)| (g, prefix, max))
        .collect();
        for (k, (group, prefix, max)) in groups.into_iter().enumerate() {
            let clients: Vec<usize> = (0..self.clients.len()).filter(|c| self.group_of(*c) == group).collect();
            let holders: Vec<usize> =
                clients.iter().copied().filter(|c| !self.clients[*c].host.children.is_empty()).collect();
            if !second {
                self.out.convergence.push(Convergence {
                    group,
                    max,
                    clients,
                    holders_first: holders,
                    holders: Vec::new(),
                    ranked: Vec::new(),
                    idle: Vec::new(),
                    changes: self.changes.get(&group).copied().unwrap_or(0),
                });
                continue;
            }
            let keys = self.etcd.range(&prefix);
            let owners: Vec<usize> = keys.iter().filter_map(|kv| self.lease_owner.get(&kv.lease.0).copied()).collect();
            let ranked: Vec<usize> = owners.iter().copied().take(max as usize).collect();
            let idle: Vec<usize> =
                clients.iter().copied().filter(|c| !holders.contains(c) && !owners.contains(c)).collect();
            if let Some(conv) = self.out.convergence.get_mut(k) {
                conv.changes = self.changes.get(&group).copied().unwrap_or(0) - conv.changes;
                conv.holders = holders;
                conv.ranked = ranked;
                conv.idle = idle;
            }
        }
    }

    fn shutdown(&mut self) {
        self.stopping = true;
        self.trace("phase", format_args!("\"phase\":\"shutdown\""));
        for i in 0..self.clients.len() {
            if self.clients[i].machine.is_none() {
                self.clients[i].exited = true;
                continue;
            }
            let now = self.clock(i);
            if let Some(m) = self.clients[i].machine.as_mut() {
                m.driven().handle_signal(now, WrapperSignal::Terminate);
            }
            self.pump(i);
        }
    }

    fn finish(mut self) -> Outcome {
        self.out.end_at = self.now;
        self.etcd.expire(Instant::from_nanos(self.now));
        let mut keys = Vec::new();
        for prefix in ["/conch/v1/elect/", "/conch/v1/sema/"] {
            keys.extend(self.etcd.range(prefix).into_iter().map(|kv| kv.key));
        }
        let live: BTreeSet<i64> = self.etcd.leases().into_iter().map(|l| l.0).collect();
        self.out.leftovers = Leftovers {
            keys,
            leases: self.session_leases.intersection(&live).copied().collect(),
            children: (0..self.clients.len()).filter(|i| !self.clients[*i].host.children.is_empty()).collect(),
            running: (0..self.clients.len()).filter(|i| self.clients[*i].machine.is_some()).collect(),
        };
        // Children still running are logged up to the end.
        for i in 0..self.clients.len() {
            let group = self.group_of(i);
            for c in std::mem::take(&mut self.clients[i].host.children).into_values() {
                self.out.intervals.push(Interval {
                    client: i,
                    group,
                    rev: c.rev,
                    label: c.label,
                    start: c.start,
                    end: self.now,
                });
            }
        }
        self.out.trace.push(format!(
            "{{\"t\":{},\"ev\":\"end\",\"events\":{},\"rev\":{}}}",
            self.now,
            self.out.events,
            self.etcd.revision().0
        ));
        if !self.opts.trace {
            self.out.trace.clear();
        }
        self.out
    }
}

/// The simulated instant at which a host without drift or offset reads `unix_s`.
pub fn sim_time_of_unix(unix_s: i64) -> u64 {
    ((unix_s * 1000 - EPOCH_MS).max(0) as u64) * 1_000_000
}
