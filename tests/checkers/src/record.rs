//! The records every harness produces: child intervals, faults with a typed kind, child
//! starts, and the exception windows the bounded-holders sweep honours. Times are ns on
//! one monotonic clock of the harness.
use std::fmt;

/// What was done to the system (a fault, a fault-site firing, a restart), typed so no
/// checker matches a string: renaming a kind cannot silently drop its exception window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// SIGKILL of a wrapper or daemon.
    Crash,
    /// SIGSTOP of a wrapper alone.
    Pause,
    /// The whole host (wrapper, shim, child) frozen.
    Freeze,
    /// Both directions between one client and etcd cut.
    Partition,
    /// Client → etcd cut.
    CutUp,
    /// etcd → client cut.
    CutDown,
    /// One client cut as part of a swizzle.
    Swizzle,
    /// Administrative revoke of a client's lease.
    Revoke,
    /// Administrative delete of a client's key.
    KeyDelete,
    /// etcd unavailable (down, or restarted).
    EtcdDown,
    /// etcd holding every call (a leader change).
    Stall,
    /// A compaction.
    Compact,
    /// A host's wall clock stepped.
    ClockJump,
    /// A host's wall clock stepped back to the truth (NTP at the heal).
    ClockReset,
    /// SIGKILL of the child alone.
    ChildKill,
    /// SIGSTOP of the child alone.
    ChildStop,
    /// One etcd member down.
    MemberDown,
    /// One member cut off from its peers.
    MemberIsolated,
    /// One member unreachable from the clients.
    MemberCut,
    /// One client's unary calls refused while its keepalives pass.
    ReadsRefused,
    /// One client's traffic delayed.
    Delay,
    /// A fault site fired (its name).
    Site(&'static str),
}

impl Kind {
    /// Whether this is a fault of one etcd member.
    pub fn is_member(self) -> bool {
        matches!(self, Kind::MemberDown | Kind::MemberIsolated | Kind::MemberCut)
    }

    /// Whether a host's clock was stepped.
    pub fn is_clock(self) -> bool {
        matches!(self, Kind::ClockJump | Kind::ClockReset)
    }

    /// Whether it can delay a client's calls (rather than lose or refuse them).
    pub fn delays_calls(self) -> bool {
        self.is_member()
            || matches!(self, Kind::Stall | Kind::EtcdDown | Kind::Partition | Kind::CutUp | Kind::CutDown)
            || matches!(self, Kind::Swizzle | Kind::Delay)
    }

    /// Whether this is a fault-site firing.
    pub fn is_site(self) -> bool {
        matches!(self, Kind::Site(_))
    }

    /// The name in traces and verdicts.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Crash => "crash",
            Kind::Pause => "pause",
            Kind::Freeze => "freeze",
            Kind::Partition => "partition",
            Kind::CutUp => "cut-up",
            Kind::CutDown => "cut-down",
            Kind::Swizzle => "swizzle",
            Kind::Revoke => "revoke",
            Kind::KeyDelete => "key-delete",
            Kind::EtcdDown => "etcd-down",
            Kind::Stall => "stall",
            Kind::Compact => "compact",
            Kind::ClockJump => "clock-jump",
            Kind::ClockReset => "clock-reset",
            Kind::ChildKill => "child-kill",
            Kind::ChildStop => "child-stop",
            Kind::MemberDown => "member-down",
            Kind::MemberIsolated => "member-isolated",
            Kind::MemberCut => "member-cut",
            Kind::ReadsRefused => "reads-refused",
            Kind::Delay => "delay",
            Kind::Site(name) => name,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Site(name) => write!(f, "site:{name}"),
            other => f.write_str(other.name()),
        }
    }
}

/// A fault as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What.
    pub kind: Kind,
    /// Whom, when it targets one client.
    pub client: Option<usize>,
    /// Began.
    pub from: u64,
    /// Ended (healed).
    pub to: u64,
}

/// One child's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The client (wrapper or daemon) whose child it was.
    pub client: usize,
    /// Its fencing token (`CONCH_REV`).
    pub rev: i64,
    /// The child's pid (0 where a harness has none).
    pub pid: i32,
    /// Start.
    pub start: u64,
    /// End; `None`: still running when the log was read.
    pub end: Option<u64>,
    /// For a cron run, its tick: `CONCH_TICK` (one log per job), or `job@tick` where one
    /// record holds every job's runs.
    pub tick: Option<String>,
    /// Whether a signal ended it (rather than its own hold running out).
    pub signalled: bool,
}

impl Interval {
    /// The end, or `until` for an interval still running.
    pub fn end_or(&self, until: u64) -> u64 {
        self.end.unwrap_or(until)
    }
}

/// What a holder's contest looked like when its child started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The client.
    pub client: usize,
    /// The token the child got.
    pub rev: i64,
    /// Keys of the contest with a lower create revision at that instant.
    pub lower: usize,
    /// The create revision of the holder's own key then (`None`: it was gone).
    pub key_rev: Option<i64>,
    /// When.
    pub at: u64,
}

/// An exception window of the bounded-holders guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The client whose child may overlap (`None`: every client's).
    pub client: Option<usize>,
    /// Opens.
    pub from: u64,
    /// Closes.
    pub to: u64,
    /// What opened it (for reports).
    pub label: String,
}
