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
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

use conch_core::backoff::SplitMix64;
use conch_core::conchd::{Conchd, ConchdConfig};
use conch_core::cron::{job_key, Job, JobSpec, Overlap};
use conch_core::keys::Name;
use conch_core::shim_rules::ShimInput;
use conch_core::values::Holder;
use conch_core::{
    Attempt, ChildId, ChildStatus, Endpoints, EtcdRequest, EtcdResponse, HoldSpec, HookConfig, HookId, Input, Instant,
    Machine, Now, Outcome as EndpointOutcome, ReqId, RunConfig, Service, ServiceConfig, WatchEvent, WatchId,
};

use crate::buggify::Buggify;
use crate::etcd::SimEtcd;
use crate::host::SimHost;
use crate::net::SimNet;
use crate::options::{convergence_bound, SimOptions};
use crate::plan::PlannedFault;
use crate::record::{FaultRecord, Group, Outcome};
use conch_checkers::Kind;

mod calls;
mod cron;
mod drain;
mod exits;
mod faults;
mod fenced;
mod hooks;
mod losses;
mod members;
mod phases;
mod processes;
mod restarts;
mod step_down;
mod stuck;
mod traffic;
mod watchers;

/// A call without an answer fails after this (the real driver's call timeout).
pub const CALL_TIMEOUT_NS: u64 = 2_000_000_000;
/// The lessor looks for expired leases at the next deadline, and at least this often
/// (etcd's own lessor checks every 500 ms).
const EXPIRE_EVERY_NS: u64 = 500_000_000;
/// ... and at most this often (a lease due, or just about, is looked at again this soon).
const EXPIRE_STEP_NS: u64 = 1_000_000;
/// Longest the shutdown may take before what is left counts as left behind.
const SHUTDOWN_NS: u64 = 15_000_000_000;
/// Second look at convergence, this long after the first.
const SETTLED_NS: u64 = 3_000_000_000;

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

#[derive(Debug)]
enum Ev {
    Start(usize),
    Deliver(usize, u64, Input),
    Apply(usize, u64, ReqId, EtcdRequest, u64),
    /// An attempt etcd applies after its client gave up on it (the late-apply site).
    LateApply(usize, u64, Box<EtcdRequest>),
    AttemptFailed(usize, u64, ReqId, Box<EtcdRequest>, Attempt, EndpointOutcome),
    Attempt(usize, u64, ReqId, Box<EtcdRequest>, Attempt),
    MemberBack(usize),
    Timer(usize, u64),
    Shim(usize, ChildId, u64),
    ChildEnd(usize, ChildId, u64),
    HookEnd(usize, HookId, u64),
    Expire,
    Fault(usize),
    /// An administrative delete of a client's key (a site's pairing).
    AdminDelete(usize),
    ChildWrite(usize, ChildId, u64),
    StepDown(u64),
    StepDownClean(String),
    ApplyWrite(Box<fenced::Write>),
    Thaw(usize),
    Cut(usize, u64),
    HealLink(usize),
    EtcdBack,
    Heal,
    Converge(bool),
    Shutdown,
    /// A `--watch` client's event (watcher, incarnation, what).
    Watcher(usize, u64, watchers::WatcherEv),
}

/// An event in the queue, ordered by (time, sequence) only. The event itself waits in
/// the world's slab at `slot`: the heap moves entries as it sifts, and requests and
/// answers are large (a slot is reused once its event ran, so no allocation per event).
#[derive(Debug)]
struct Queued {
    when: u64,
    seq: u64,
    slot: u32,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.when, self.seq).cmp(&(other.when, other.seq))
    }
}

#[derive(Debug)]
enum Role {
    Holder { group: Group, spec: HoldSpec },
    Daemon,
}

/// What a client runs: the core's wrapper service or its cron daemon.
#[derive(Debug)]
enum Program {
    Service(Box<Service>),
    Conchd(Box<Conchd>),
}

impl Program {
    fn machine(&mut self) -> &mut dyn Machine {
        match self {
            Program::Service(s) => s.as_mut(),
            Program::Conchd(c) => c.as_mut(),
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
    machine: Option<Program>,
    incarnation: u64,
    timer_gen: u64,
    timer_at: Option<u64>,
    host: SimHost,
    watches: BTreeMap<WatchId, Sub>,
    daemon_start_s: BTreeMap<u64, (i64, u64)>,
    /// The core's endpoint machine of the running process (a new one per incarnation).
    endpoints: Endpoints,
    /// The member its keepalive stream was last opened on.
    stream_member: usize,
    /// Inputs the world made while performing the machine's outputs (a child started or
    /// killed), fed after the drain, in order: never into the machine mid-drain.
    inbox: VecDeque<Input>,
    /// The hook record of a fence that ended, until its run's exit code is known.
    awaiting_exit: Option<usize>,
}

/// The world.
pub struct World {
    opts: SimOptions,
    plan: Vec<PlannedFault>,
    etcd: SimEtcd,
    net: SimNet,
    members: Vec<members::Member>,
    clients: Vec<Client>,
    queue: BinaryHeap<Reverse<Queued>>,
    /// The queued events by slot (`None`: free, listed in `free_slots`).
    slab: Vec<Option<Ev>>,
    free_slots: Vec<u32>,
    notified_rev: i64,
    seq: u64,
    now: u64,
    rng: SplitMix64,
    buggify: Buggify,
    lease_owner: BTreeMap<i64, usize>,
    /// When each campaign key was created (by create revision): the priority checker's
    /// "was it waiting when the office fell vacant".
    key_born: BTreeMap<i64, u64>,
    /// Which client created each campaign key (by create revision): whom a pre-emption asks.
    key_owner: BTreeMap<i64, usize>,
    /// The incarnation that was granted each lease.
    lease_incarnation: BTreeMap<i64, (usize, u64)>,
    /// Incarnations that exited by themselves (not killed): they had every chance to clean up.
    clean_exits: BTreeSet<(usize, u64)>,
    /// Leases whose grant answer reached the client (a grant whose answer was lost leaves a
    /// lease nobody knows of, until its TTL: etcd's own ambiguity, not a leak).
    grants_heard: BTreeSet<i64>,
    /// Leases a write applied with an answer that was lost: they may hold a key the client
    /// never heard of, so keeping them is no leak.
    ambiguous_leases: BTreeSet<i64>,
    session_leases: BTreeSet<i64>,
    /// The cron history written: fire keys of won claims and results put (they live on
    /// day-long leases, so every one must still be there at the end).
    history: BTreeSet<String>,
    phase_liveness: bool,
    stopping: bool,
    changes: BTreeMap<Group, u64>,
    /// Guarded writes by holders' children (`--fenced-writes`).
    writes: fenced::Writes,
    /// The office's `--watch` clients.
    watchers: Vec<watchers::Watcher>,
    /// The office's holder in the store (lowest create revision) and since when.
    office_truth: (Option<i64>, u64),
    /// Renewals handled and holds acquired, for the truth behind a loss.
    renewals: losses::Renewals,
    /// What explains each wrapper's exit code.
    runs: exits::Runs,
    /// Each holder service's cycles, for `restart-pacing`.
    cycles: restarts::Cycles,
    /// Each holder call's index in the outcome's `calls`, by (client, incarnation, id).
    call_index: BTreeMap<(usize, u64, u64), usize>,
    out: Outcome,
}

/// A job's spec as stored: without `tz` and `run_ttl` when the job draws serde's defaults.
fn spec_value(spec: &JobSpec, job: &crate::options::SimJob) -> Vec<u8> {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        if job.tz.is_none() {
            fields.remove("tz");
        }
        if job.default_run_ttl {
            fields.remove("run_ttl");
        }
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

impl World {
    /// A world for `opts` under `plan`.
    pub fn new(opts: SimOptions, plan: Vec<PlannedFault>) -> World {
        let mut rng = SplitMix64::new(opts.seed);
        let mut clients = Vec::new();
        let office = HoldSpec::office(Name::new("sim-office").expect("a valid name literal"));
        // Without --step-downs the leader does not listen: every other seed runs as it did.
        // With --priorities it listens: candidates drawn --preempt ask it to step down.
        let listens = opts.step_downs || !opts.priorities.is_empty();
        let office = if listens { office } else { office.without_step_down() };
        let sema = HoldSpec::semaphore(Name::new("sim-sema").expect("a valid name literal"), opts.sema_max);
        let roles = (0..opts.office_clients)
            .map(|k| {
                let spec = office.clone().with_priority(opts.priority(k)).with_preempt(opts.preempt(k));
                Role::Holder { group: Group::Office, spec }
            })
            .chain((0..opts.sema_clients).map(|_| Role::Holder { group: Group::Sema, spec: sema.clone() }))
            .chain((0..opts.daemons).map(|_| Role::Daemon));
        for role in roles {
            let drift = if opts.drift_ppm == 0 { 0 } else { (rng.next_u64() % (2 * opts.drift_ppm as u64 + 1)) as i64 };
            clients.push(Client {
                role,
                machine: None,
                incarnation: 0,
                timer_gen: 0,
                timer_at: None,
                host: SimHost { drift_ppm: drift - opts.drift_ppm, ..SimHost::default() },
                watches: BTreeMap::new(),
                daemon_start_s: BTreeMap::new(),
                endpoints: Endpoints::new(opts.members),
                stream_member: 0,
                inbox: VecDeque::new(),
                awaiting_exit: None,
            });
        }
        let watchers = watchers::Watcher::for_office(opts.seed, &office, opts.latency_us, opts.office_clients > 0);
        let net = SimNet::new(opts.seed, clients.len(), opts.latency_us);
        let buggify = Buggify::new(opts.seed, &opts.sites);
        let writes = fenced::Writes::new(opts.seed);
        let out = Outcome::new(opts.clone(), ns(opts.safety), ns(opts.duration()));
        let members = opts.members.max(1);
        World {
            opts,
            plan,
            etcd: SimEtcd::default(),
            net,
            members: vec![members::Member::default(); members],
            clients,
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free_slots: Vec::new(),
            notified_rev: -1,
            seq: 0,
            now: 0,
            rng,
            buggify,
            lease_owner: BTreeMap::new(),
            key_born: BTreeMap::new(),
            key_owner: BTreeMap::new(),
            lease_incarnation: BTreeMap::new(),
            clean_exits: BTreeSet::new(),
            grants_heard: BTreeSet::new(),
            ambiguous_leases: BTreeSet::new(),
            session_leases: BTreeSet::new(),
            history: BTreeSet::new(),
            phase_liveness: false,
            stopping: false,
            changes: BTreeMap::new(),
            writes,
            watchers,
            office_truth: (None, 0),
            renewals: losses::Renewals::default(),
            runs: exits::Runs::default(),
            cycles: restarts::Cycles::default(),
            call_index: BTreeMap::new(),
            out,
        }
    }

    fn at(&mut self, when: u64, ev: Ev) {
        self.seq += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(ev);
                slot
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.queue.push(Reverse(Queued { when: when.max(self.now), seq: self.seq, slot }));
    }

    fn trace(&mut self, ev: &str, fields: std::fmt::Arguments) {
        if self.opts.trace {
            self.out.trace.push(format!("{{\"t\":{},\"ev\":\"{ev}\",{fields}}}", self.now));
        }
    }

    fn fault_record(&mut self, kind: Kind, client: Option<usize>, to: u64) {
        self.out.faults.push(FaultRecord { kind, client, from: self.now, to });
    }

    /// Runs every phase and returns what happened.
    pub fn run(mut self) -> Outcome {
        self.put_jobs();
        for i in 0..self.clients.len() {
            let jitter = self.rng.next_u64() % 50_000_000;
            self.at(jitter, Ev::Start(i));
        }
        self.at(EXPIRE_EVERY_NS, Ev::Expire);
        self.start_watchers();
        for k in 0..self.plan.len() {
            let at = self.plan[k].at_ms * 1_000_000;
            if at < self.out.heal_at {
                self.at(at, Ev::Fault(k));
            }
        }
        let heal_at = self.out.heal_at;
        let bound = ns(convergence_bound(self.opts.ttl, self.opts.kill_after));
        self.at(heal_at, Ev::Heal);
        if self.opts.step_downs {
            self.schedule_step_down(1);
        }
        self.at(heal_at + bound, Ev::Converge(false));
        self.at(heal_at + bound + SETTLED_NS, Ev::Converge(true));
        let stop_at = self.out.stop_at.max(heal_at + bound + SETTLED_NS + 1);
        self.out.stop_at = stop_at;
        self.at(stop_at, Ev::Shutdown);
        let end = stop_at + SHUTDOWN_NS;
        let mut dog = crate::watchdog::Watchdog::new(self.clients.len());
        for _ in 0..=crate::watchdog::EVENTS_MAX {
            let Some(Reverse(Queued { when, slot, .. })) = self.queue.pop() else { break };
            let Some(ev) = self.slab[slot as usize].take() else { break };
            self.free_slots.push(slot);
            if when > end
                || (self.stopping
                    && self
                        .clients
                        .iter()
                        .all(|c| c.machine.is_none() && c.host.children.is_empty() && c.host.hooks.is_empty()))
            {
                break;
            }
            if let Some(stuck) = dog.event(when, ev.client()) {
                self.out.stuck = Some(self.name_stuck(stuck));
                break;
            }
            self.now = when;
            self.out.events += 1;
            self.step(ev);
        }
        self.finish()
    }

    fn put_jobs(&mut self) {
        for job in self.opts.jobs.clone() {
            let spec = JobSpec {
                schedule: job.schedule(),
                tz: job.zone().into(),
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
            let value = spec_value(&spec, &job);
            self.etcd.apply(Instant::from_nanos(0), &EtcdRequest::Put { key: job_key(&name), value, lease: None });
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Start(i) => self.start_machine(i),
            Ev::Deliver(i, inc, input) => self.deliver(i, inc, input),
            Ev::Apply(i, inc, id, request, sent) => self.apply(i, inc, id, request, sent),
            Ev::LateApply(i, inc, request) => self.late_applied(i, inc, *request),
            Ev::AttemptFailed(i, inc, id, request, attempt, outcome) => {
                self.attempt_failed(i, inc, id, *request, attempt, outcome)
            }
            Ev::Attempt(i, inc, id, request, attempt) => {
                if self.clients[i].incarnation == inc && self.clients[i].machine.is_some() {
                    self.send_attempt(i, inc, id, *request, attempt);
                }
            }
            Ev::MemberBack(m) => self.member_back(m),
            Ev::Timer(i, gen) => {
                if self.clients[i].timer_gen == gen {
                    if self.clients[i].host.wrapper_blocked(self.now) {
                        let resume = self.clients[i].host.wrapper_resumes();
                        self.at(resume, Ev::Timer(i, gen));
                        return;
                    }
                    self.clients[i].timer_at = None;
                    self.feed(i, Input::Timeout);
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
                    c.rules.handle_input(now, ShimInput::Timeout);
                    self.shim_perform(i, child);
                    self.pump(i);
                }
            }
            Ev::ChildEnd(i, child, gen) => {
                if self.clients[i].host.frozen(self.now) {
                    let resume = self.clients[i].host.frozen_until;
                    self.at(resume, Ev::ChildEnd(i, child, gen));
                    return;
                }
                match self.clients[i].host.children.get(&child) {
                    // A stopped child finishes its work once continued.
                    Some(c) if c.gen == gen && self.now < c.stopped_until => {
                        let resume = c.stopped_until;
                        self.at(resume, Ev::ChildEnd(i, child, gen));
                    }
                    Some(c) if c.gen == gen => {
                        self.child_gone(i, child, ChildStatus::Exited(0));
                        self.pump(i);
                    }
                    _ => {}
                }
            }
            Ev::HookEnd(i, id, gen) => self.hook_end(i, id, gen),
            Ev::Expire => {
                let off = self.net.etcd_down(self.now) || self.net.stalled(self.now);
                if !off {
                    self.etcd.expire(Instant::from_nanos(self.now));
                    self.notify_watches();
                }
                let next = self.etcd.next_expiry().map_or(u64::MAX, |at| at.as_nanos());
                let mut at = next.clamp(self.now + EXPIRE_STEP_NS, self.now + EXPIRE_EVERY_NS);
                if off && at == self.now + EXPIRE_STEP_NS {
                    // A lease is due but the lessor is off until etcd is back: every step
                    // until then would find it so. Wake at the first step on that lattice
                    // at or past the instant etcd answers again (the heal cuts it short).
                    let mut back = self.net.etcd_down_until.max(self.net.stalled_until);
                    if self.now < self.out.heal_at {
                        back = back.min(self.out.heal_at);
                    }
                    at = self.now + back.saturating_sub(self.now).div_ceil(EXPIRE_STEP_NS).max(1) * EXPIRE_STEP_NS;
                }
                self.at(at, Ev::Expire);
            }
            Ev::Fault(k) => {
                if let Some(fault) = self.plan.get(k).cloned() {
                    self.fault(fault);
                }
            }
            Ev::AdminDelete(i) => {
                if let Some(key) = self.key_of(i) {
                    self.admin(i, EtcdRequest::Delete { key }, Kind::KeyDelete);
                }
            }
            Ev::ChildWrite(i, child, gen) => self.child_write(i, child, gen),
            Ev::ApplyWrite(write) => self.apply_write(*write),
            Ev::StepDown(n) => self.step_down(n),
            Ev::StepDownClean(key) => self.step_down_clean(key),
            Ev::Thaw(i) => {
                if !self.clients[i].host.wrapper_blocked(self.now) {
                    self.trace("thaw", format_args!("\"client\":{i}"));
                }
            }
            Ev::Cut(i, until) => {
                self.net.cut(i, self.now, until, true, true);
                self.fault_record(Kind::Swizzle, Some(i), until);
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
            Ev::Watcher(w, inc, ev) => self.watcher_step(w, inc, ev),
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
        // One-shot wrappers run with their --wait only while faults may keep them waiting:
        // a command run again in the liveness phase waits as long as it takes.
        let one_shot = self.opts.one_shot(i);
        let wait = one_shot.flatten().filter(|_| !self.phase_liveness);
        let c = &mut self.clients[i];
        c.incarnation += 1;
        c.watches.clear();
        c.inbox.clear();
        c.endpoints = Endpoints::new(self.opts.members).with_sabotage(self.opts.sabotage);
        c.stream_member = 0;
        let machine = match &c.role {
            Role::Holder { spec, .. } => {
                let holder = Holder {
                    host: format!("host{i}"),
                    pid: 1000 + c.incarnation as u32,
                    started: format!("inc{}", c.incarnation),
                    cmd: Some("child".into()),
                    held_since: None,
                    value: None,
                    priority: (spec.priority > 0).then_some(spec.priority),
                };
                let run = RunConfig {
                    spec: spec.clone(),
                    holder,
                    argv: vec!["child".into()],
                    ttl: self.opts.ttl,
                    kill_after: self.opts.kill_after,
                    wait,
                    hooks: self.opts.hooks.map_or_else(HookConfig::default, |h| HookConfig {
                        on_acquire: h.on_acquire.then(|| "on-acquire".to_string()),
                        on_lose: h.on_lose.then(|| "on-lose".to_string()),
                        timeout: crate::options::SimHooks::TIMEOUT,
                        fence: Some("fence".to_string()),
                        fence_budget: h.fence_budget,
                    }),
                };
                let mut service = Service::new(ServiceConfig { run, restart: one_shot.is_none(), seed })
                    .with_sabotage(self.opts.sabotage);
                service.start(now.mono);
                Program::Service(Box::new(service))
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
                };
                let mut conchd = Conchd::new(cfg).with_sabotage(self.opts.sabotage);
                conchd.start(now);
                Program::Conchd(Box::new(conchd))
            }
        };
        let holder = matches!(c.role, Role::Holder { .. });
        c.machine = Some(machine);
        let inc = c.incarnation;
        if holder {
            self.run_started(i, one_shot.is_some(), wait.map(ns));
        }
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
        if let Input::Response(id, response) = &input {
            self.renewal_heard(i, inc, *id);
            self.note_answer((i, inc, *id), response);
        }
        match &input {
            Input::Response(_, EtcdResponse::Granted { lease, .. }) => {
                self.grants_heard.insert(lease.0);
            }
            Input::Watch(id, event) => {
                if !self.clients[i].watches.contains_key(id) {
                    return;
                }
                if matches!(event, WatchEvent::Compacted | WatchEvent::Broken(_)) {
                    self.clients[i].watches.remove(id);
                }
            }
            Input::Response(..)
            | Input::ChildStarted(..)
            | Input::ChildExit(..)
            | Input::HookExit(..)
            | Input::Signal(_)
            | Input::Timeout => {}
        }
        self.feed(i, input);
    }
}
