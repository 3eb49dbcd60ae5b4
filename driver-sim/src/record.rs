//! What a run leaves for the checkers: the interval log, the fault log, cron claims,
//! promotions, convergence snapshots, what was left behind, and the trace.
use crate::options::SimOptions;

/// Which contest a client is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// An office candidate.
    Office,
    /// A semaphore contender.
    Sema,
    /// A conchd daemon.
    Cron,
}

impl Group {
    /// The name in verdicts and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Office => "office",
            Group::Sema => "sema",
            Group::Cron => "cron",
        }
    }
}

/// One child's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The client.
    pub client: usize,
    /// Its contest.
    pub group: Group,
    /// Its fencing token (`CONCH_REV`).
    pub rev: i64,
    /// `job@tick` for a cron run.
    pub label: String,
    /// Start (ns of simulated time).
    pub start: u64,
    /// End (ns).
    pub end: u64,
}

/// A fault, a fault-site firing or a restart, as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// What (a fault kind, `site:<name>` or `restart`).
    pub kind: String,
    /// Whom, when it targets one client.
    pub client: Option<usize>,
    /// Began (ns).
    pub from: u64,
    /// Ended (ns).
    pub to: u64,
}

/// A holder's wrapper gave up its hold because its session or key was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossRecord {
    /// The client.
    pub client: usize,
    /// When (ns).
    pub at: u64,
    /// The core's loss reason (`deadline-passed`, `lease-gone`, `key-deleted`, ...).
    pub reason: String,
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
    /// ... and in simulated time (ns).
    pub daemon_started_at: u64,
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
    /// When (ns).
    pub at: u64,
    /// Its `--priority` (an office's; 0 otherwise).
    pub priority: u32,
    /// Office waiters of a higher priority at that instant: (client, priority, when its
    /// key was created, ns).
    pub higher: Vec<(usize, u32, u64)>,
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
    /// Every holder child start.
    pub promotions: Vec<Promotion>,
    /// Every hold given up as lost.
    pub losses: Vec<LossRecord>,
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
    /// One JSON object per event, when tracing.
    pub trace: Vec<String>,
}
