//! What a run leaves for the checkers: the interval log, the fault log, cron claims,
//! promotions, convergence snapshots, what was left behind, and the trace.
use crate::options::SimOptions;

/// Which contest a client is in (defined with the options that make the contests).
pub use crate::options::Group;

/// One child's life: the shared checkers' record. The simulator logs a child when it
/// ends, so `end` is always set; `tick` is `job@tick` for a cron run, `fence` for a
/// fence hook's hold; `pid` is 0 (none: no two records of one child) and `signalled`
/// false (no sim checker reads it). Its contest is [`SimOptions::group`] of its client.
pub use conch_checkers::Interval;

/// One hook process's life, and for a fence what its run did next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRecord {
    /// The client.
    pub client: usize,
    /// Its contest.
    pub group: Group,
    /// `on-acquire`, `on-lose` or `fence`.
    pub kind: &'static str,
    /// The fencing token of the hold it served.
    pub rev: i64,
    /// Start (ns).
    pub start: u64,
    /// End (ns).
    pub end: u64,
    /// How it ended: `exit N`, `signal N`, or `crashed` (its wrapper was SIGKILLed).
    pub status: String,
    /// Whether it succeeded (exited 0 by itself).
    pub ok: bool,
    /// When its session lease expired by its TTL, if it had by the hook's end (ns).
    pub lease_expired: Option<u64>,
    /// The code its run ended with (the wrapper's exit, or the code a restart logged).
    pub run_exit: Option<i32>,
    /// Deletes and revokes its run sent after it ended.
    pub writes_after: Vec<String>,
}

impl Promotion {
    /// The shared checkers' record of it.
    pub fn start(&self) -> conch_checkers::Start {
        conch_checkers::Start {
            client: self.client,
            rev: self.rev,
            lower: self.lower,
            key_rev: self.key_rev,
            at: self.at,
        }
    }
}

/// A fault, a fault-site firing or a restart, as it happened: the shared checkers'
/// record, with a typed kind ([`conch_checkers::Kind`]).
pub use conch_checkers::Fault as FaultRecord;

/// A holder's wrapper gave up its hold because its session or key was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossRecord {
    /// The client.
    pub client: usize,
    /// When (ns).
    pub at: u64,
    /// The core's loss reason (`deadline-passed`, `lease-gone`, `key-deleted`, ...), or
    /// `etcd-failed` (the hold gave up on etcd: a stop, not a `lost` log).
    pub reason: String,
    /// What the world knew at that instant, for the `loss-cause` checker.
    pub truth: LossTruth,
}

/// The truth about a lost hold at the instant of its loss, from the store and the answers
/// its wrapper had handled (see [`crate::check_loss`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossTruth {
    /// The session lease the wrapper named.
    pub lease: Option<i64>,
    /// That lease still lives in etcd, short of its TTL.
    pub lease_alive: bool,
    /// The hold's key (by its create revision) is still in the store.
    pub key_present: bool,
    /// The hold had acquired (logged `acquired` under this lease): its session was no
    /// longer only waiting.
    pub acquired: bool,
    /// The key ranks below the capacity in the store now (a waiter about to acquire checks
    /// `term_at` itself).
    pub ranked_in: bool,
    /// The latest deadline the renewals the wrapper had handled promise: the largest
    /// send instant + granted TTL over the grant and keepalive answers fed to it (ns).
    pub renewed_until: Option<u64>,
}

/// A wrapper's exit, with what explains its code (see [`crate::check_exit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitRecord {
    /// The client.
    pub client: usize,
    /// When (ns).
    pub at: u64,
    /// The code.
    pub code: i32,
    /// When this incarnation started (ns).
    pub started: u64,
    /// It ran without `--restart`.
    pub one_shot: bool,
    /// Its `--wait` (ns), if any.
    pub wait: Option<u64>,
    /// The shutdown's SIGTERM reached it.
    pub signalled: bool,
    /// It lost a hold it had acquired while its child ran.
    pub lost_holding: bool,
    /// A fault SIGKILLed its child.
    pub child_killed: bool,
    /// Why it began each further cycle (the service's `backoff` reasons).
    pub cycles_again: Vec<String>,
}

/// A cron tick decided in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The daemon.
    pub client: usize,
    /// The job.
    pub job: String,
    /// The tick (Unix s).
    pub tick: i64,
    /// When (ns).
    pub at: u64,
    /// Won (or wrote the fire key) vs skipped because a run still ran.
    pub won: bool,
    /// The daemon incarnation's start on its own wall clock (Unix s).
    pub daemon_start_s: i64,
    /// The daemon's wall clock when etcd applied the decision (Unix ms).
    pub wall_ms: i64,
    /// ... and in simulated time (ns).
    pub daemon_started_at: u64,
    /// A won claim etcd applied after its daemon had given up on the attempt (the
    /// late-apply site): the daemon does not know it won, so no run starts.
    pub ghost: bool,
}

/// A tick a daemon skipped as reached too late (its `skipped-late` log event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateSkip {
    /// The daemon.
    pub client: usize,
    /// The job.
    pub job: String,
    /// The tick (Unix s).
    pub tick: i64,
    /// When (ns).
    pub at: u64,
    /// The daemon's wall clock then, as its machine read it (Unix ms).
    pub wall_ms: i64,
}

/// A child started by an office or semaphore holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The client.
    pub client: usize,
    /// Its contest.
    pub group: Group,
    /// Its token.
    pub rev: i64,
    /// Keys of the contest with a lower create-revision at that instant.
    pub lower: usize,
    /// Keys of the contest at that instant (more than the capacity: some wait).
    pub queued: usize,
    /// The create revision of the holder's own key (the one on its `CONCH_LEASE`) at that
    /// instant, if the key is there: the token must be this number.
    pub key_rev: Option<i64>,
    /// When (ns).
    pub at: u64,
    /// Its `--priority` (an office's; 0 otherwise).
    pub priority: u32,
    /// Office waiters of a higher priority at that instant: (client, priority, when its
    /// key was created, ns).
    pub higher: Vec<(usize, u32, u64)>,
}

/// A guarded write (`conch put`) by a holder's child, as etcd saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencedWrite {
    /// The client whose child wrote.
    pub client: usize,
    /// Its contest.
    pub group: Group,
    /// The token it wrote with (`CONCH_REV`).
    pub token: i64,
    /// Sent (ns).
    pub sent: u64,
    /// Applied by etcd (ns).
    pub at: u64,
    /// It landed (the guard held, or there was none).
    pub landed: bool,
    /// At that revision the key of that token existed and held (ranked below capacity) —
    /// read from the store, independently of the guard.
    pub held: bool,
}

/// A step-down request for the office's leader (`--step-downs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepDownRecord {
    /// When it was written (ns).
    pub at: u64,
    /// The leader's token it names.
    pub token: i64,
    /// The client whose child ran with that token then, if one did.
    pub client: Option<usize>,
}

/// A step-down request a `--preempt` candidate wrote (`--priorities`), as etcd applied it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreemptRecord {
    /// When etcd applied it (ns).
    pub at: u64,
    /// The candidate that asked.
    pub client: usize,
    /// Its `--priority`.
    pub priority: u32,
    /// The holder's token it names.
    pub token: i64,
    /// The client whose key has that token, if one of ours.
    pub target: Option<usize>,
    /// That client's `--priority`.
    pub target_priority: u32,
    /// Whether that key still existed when the request was applied.
    pub live: bool,
}

/// The state of one contest after the convergence bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Convergence {
    /// The contest.
    pub group: Group,
    /// Its clients.
    pub clients: Vec<usize>,
    /// Clients whose child runs at the first look.
    pub holders_first: Vec<usize>,
    /// ... and at the second look, a few seconds later.
    pub holders: Vec<usize>,
    /// Owners of the lowest create-revisions, by rank.
    pub ranked: Vec<usize>,
    /// Clients with no key and no child.
    pub idle: Vec<usize>,
    /// Children started or ended between the two looks.
    pub changes: u64,
}

/// What was left after every client was told to stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Keys of offices and semaphores.
    pub keys: Vec<String>,
    /// Session leases still alive.
    pub leases: Vec<i64>,
    /// Clients with a child still running.
    pub children: Vec<usize>,
    /// Clients whose wrapper or daemon did not exit.
    pub running: Vec<usize>,
    /// Cron history written (fire keys of won claims, results put) and gone by the end.
    pub history_lost: Vec<String>,
    /// The results in etcd at the end: key and value.
    pub results: Vec<(String, Vec<u8>)>,
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The options it ran with.
    pub opts: SimOptions,
    /// Every child interval.
    pub intervals: Vec<Interval>,
    /// Every fault, firing and restart.
    pub faults: Vec<FaultRecord>,
    /// Every cron tick decided.
    pub claims: Vec<ClaimRecord>,
    /// Every cron tick skipped as reached too late.
    pub late_skips: Vec<LateSkip>,
    /// Every holder child start.
    pub promotions: Vec<Promotion>,
    /// Every hold given up as lost.
    pub losses: Vec<LossRecord>,
    /// Every wrapper's exit.
    pub exits: Vec<ExitRecord>,
    /// Every hook process (only when the seed configures hooks).
    pub hooks: Vec<HookRecord>,
    /// Every guarded write that reached etcd (`--fenced-writes`).
    pub fenced: Vec<FencedWrite>,
    /// Every step-down request (`--step-downs`).
    pub step_downs: Vec<StepDownRecord>,
    /// Every pre-emption request (`--priorities` with `--preempt` drawn).
    pub preempts: Vec<PreemptRecord>,
    /// Per contest, after the convergence bound.
    pub convergence: Vec<Convergence>,
    /// After the shutdown.
    pub leftovers: Leftovers,
    /// When the faults healed (ns).
    pub heal_at: u64,
    /// When the shutdown began (ns).
    pub stop_at: u64,
    /// When the run ended (ns).
    pub end_at: u64,
    /// Events processed.
    pub events: u64,
    /// How often a client's pinned member changed (failover).
    pub failovers: u64,
    /// Why the run was stopped before its end: the event loop spun at one instant or
    /// passed the per-seed event limit (the `progress` checker fails it).
    pub stuck: Option<String>,
    /// One JSON object per event, when tracing.
    pub trace: Vec<String>,
    /// Every line the office's `--watch` clients printed.
    pub watch_prints: Vec<WatchPrint>,
    /// Each watcher at the second convergence look.
    pub watch_looks: Vec<WatchLook>,
    /// Every etcd call of a holder's wrapper (`retry-pacing`).
    pub calls: Vec<CallRecord>,
    /// Every holder child's stop: its SIGTERM, and its SIGKILL if one came (`kill-grace`).
    pub stops: Vec<StopRecord>,
    /// Every holder child's end, with what its shim knew (`hand-off`).
    pub shim_ends: Vec<ShimEnd>,
    /// Every service cycle of a holder's wrapper that ended with another to come
    /// (`restart-pacing`).
    pub restarts: Vec<RestartRecord>,
}

impl Outcome {
    /// The child intervals of `group`'s contest, in log order.
    pub fn of(&self, group: Group) -> impl Iterator<Item = &Interval> {
        self.intervals.iter().filter(move |iv| self.opts.group(iv.client) == group)
    }

    /// The outcome of a run of `opts` before anything happened: no records, faults
    /// healing at `heal_at` and the shutdown at `stop_at` (ns).
    pub fn new(opts: SimOptions, heal_at: u64, stop_at: u64) -> Outcome {
        Outcome {
            opts,
            intervals: Vec::new(),
            faults: Vec::new(),
            claims: Vec::new(),
            late_skips: Vec::new(),
            promotions: Vec::new(),
            losses: Vec::new(),
            exits: Vec::new(),
            hooks: Vec::new(),
            fenced: Vec::new(),
            step_downs: Vec::new(),
            preempts: Vec::new(),
            convergence: Vec::new(),
            leftovers: Leftovers::default(),
            heal_at,
            stop_at,
            end_at: 0,
            events: 0,
            failovers: 0,
            stuck: None,
            trace: Vec::new(),
            watch_prints: Vec::new(),
            watch_looks: Vec::new(),
            calls: Vec::new(),
            stops: Vec::new(),
            shim_ends: Vec::new(),
            restarts: Vec::new(),
        }
    }
}

/// How a wrapper's etcd call was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Success (a keepalive: one that renewed).
    Ok,
    /// `Unavailable`: refused, no leader, or no answer within the call's budget.
    Unavailable,
    /// Any other answer (another error, a keepalive that found no lease).
    Other,
}

/// One etcd call a holder's wrapper made, as the core asked for it. Times are the
/// wrapper host's monotonic clock (ns), the clock the core's delays count on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The client.
    pub client: usize,
    /// Its incarnation (a wrapper process) and the service cycle within it (the request
    /// id's stride, `conch_core::service::ID_STRIDE`).
    pub run: (u64, u64),
    /// The request's kind (`EtcdRequest`'s variant).
    pub kind: &'static str,
    /// The lease a keepalive renews.
    pub lease: Option<i64>,
    /// Sent, on the host's clock (ns).
    pub sent: u64,
    /// Sent, in simulated time (ns): for the fault log's spans.
    pub sent_at: u64,
    /// When the wrapper handled its answer (host clock) and what it was.
    pub answer: Option<(u64, Answer)>,
}

/// A holder child's stop as its shim carried it out, on the host's monotonic clock (ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopRecord {
    /// The client.
    pub client: usize,
    /// The child's fencing token.
    pub rev: i64,
    /// The SIGTERM (or `None`: a SIGKILL came with none before it).
    pub term: Option<u64>,
    /// The session's `kill_at` the wrapper had told the shim by then (the child's share).
    pub kill_at: u64,
    /// The SIGKILL, if the child needed one.
    pub kill: Option<u64>,
    /// The SIGTERM and SIGKILL in simulated time (ns), for the fault log's spans.
    pub span: (u64, u64),
}

/// A holder child's end and what its shim knew then, in simulated time (ns): for the
/// `hand-off` checker (see [`crate::check_handoff`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimEnd {
    /// The client.
    pub client: usize,
    /// The child's fencing token.
    pub rev: i64,
    /// The client's session lease when the child started (the world's own book of
    /// grants, not the core's spawn order).
    pub lease: Option<i64>,
    /// The child's start.
    pub start: u64,
    /// The child's end (a simulated child takes its whole group with it).
    pub end: u64,
    /// The wrapper's death (SIGKILL) while the child lived.
    pub wrapper_gone: Option<u64>,
    /// The session's `term_at` the wrapper had last told the shim.
    pub term_at: u64,
    /// When the lease left etcd (revoked or expired), if it did by the run's end.
    pub lease_gone: Option<u64>,
}

/// One service cycle of a holder's wrapper that ended, the service waiting before the
/// next (its `backoff` log): what the cycle's child did and when the next cycle began.
/// Times are the wrapper host's monotonic clock (ns), each with its simulated time (ns)
/// for the fault log's spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartRecord {
    /// The client.
    pub client: usize,
    /// Its incarnation (a wrapper process).
    pub incarnation: u64,
    /// The cycle ended: the service began its wait (host clock, simulated time).
    pub ended: (u64, u64),
    /// The next cycle's grant was sent (host clock, simulated time); `None`: no next
    /// cycle of this incarnation (a shutdown or a crash came first).
    pub began: Option<(u64, u64)>,
    /// The cycle's child, if one started.
    pub child: Option<ChildLife>,
    /// An `--on-acquire` hook ran in the cycle.
    pub acquire_hook: bool,
    /// The runner logged a lost hold or a failed etcd call in the cycle.
    pub lost: bool,
}

/// A holder child's life as its host saw it (host clock, ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildLife {
    /// It started.
    pub started: u64,
    /// It was gone (its exit reported to the wrapper).
    pub ended: u64,
    /// Its wrapper had ordered its stop (a lost hold, a step-down, a signal).
    pub stop_ordered: bool,
    /// Its shim had signalled it before it ended (on an order, or at its deadline).
    pub signalled: bool,
    /// The session's `term_at` the wrapper had last told its shim.
    pub term_at: u64,
    /// Its wrapper was stopped or frozen when it ended (the wrapper heard of it late).
    pub blocked: bool,
}

/// A line a `--watch` client printed (a change of holders, as the core's `WhoWatch` saw it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchPrint {
    /// The watcher.
    pub watcher: usize,
    /// Its incarnation (it starts again when its first read fails).
    pub incarnation: u64,
    /// When (ns).
    pub at: u64,
    /// The line.
    pub line: String,
    /// The office's holder (its key's create revision) in the store at the read the line
    /// came from, computed by the world from the keys.
    pub truth: Option<i64>,
}

/// A `--watch` client at the second convergence look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchLook {
    /// The watcher.
    pub watcher: usize,
    /// When (ns).
    pub at: u64,
    /// The office's holder in the store then.
    pub truth: Option<i64>,
    /// Since when the store's holder has been that one (ns).
    pub truth_since: u64,
    /// The watcher's last printed line.
    pub last: Option<String>,
    /// Its machine still runs.
    pub alive: bool,
}
