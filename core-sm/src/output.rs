//! What machines ask their driver to do ([`Output`]), log events, and the [`Outbox`]
//! machines queue them in. Part of the protocol layer: it imports only `etcd`, `ids`,
//! `time`, `exit` and `process`, never a machine.
use std::collections::VecDeque;

use crate::etcd::EtcdRequest;
pub use crate::exit::{ExitCode, Failure};
use crate::ids::{ChildId, ReqId, WatchId};
pub use crate::process::SpawnSpec;
use crate::time::Instant;

/// One thing for the driver to do, carried out in poll order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Make an etcd call; feed the answer back with the same id.
    Etcd {
        /// Correlation id.
        id: ReqId,
        /// The call.
        request: EtcdRequest,
    },
    /// Watch one key (or, for conchd's job table, a prefix) from a revision; feed events
    /// back with the same id. Holds only ever watch exact keys: no thundering herd.
    Watch {
        /// Correlation id.
        id: WatchId,
        /// The key, or the prefix when `prefix` is set.
        key: String,
        /// First revision to report.
        start_rev: crate::ids::Revision,
        /// Watch every key under `key`.
        prefix: bool,
    },
    /// Stop a watch; events still in flight for it are ignored.
    CancelWatch(WatchId),
    /// A child may start later (a runner that may wait has begun): a driver may get a
    /// shim ready, so the start after the acquisition costs no exec (07-performance B2).
    /// Only a hint: nothing depends on it, and a `Spawn` may come without it.
    Prepare,
    /// Start the child under the shim.
    Spawn(SpawnSpec),
    /// Tell the shim the current deadlines (it enforces them on its own).
    Deadlines {
        /// Which child.
        child: ChildId,
        /// SIGTERM the group no later than this.
        term_at: Instant,
        /// SIGKILL the group no later than this.
        kill_at: Instant,
    },
    /// Order the shim to stop the child now: SIGTERM, SIGKILL at `kill_at`.
    Terminate {
        /// Which child.
        child: ChildId,
        /// SIGKILL no later than this.
        kill_at: Instant,
    },
    /// SIGKILL the child's process group directly (the shim did not act in time).
    KillGroup(ChildId),
    /// Pass a signal the wrapper received on to the child's group, as itself.
    SignalGroup {
        /// Which child.
        child: ChildId,
        /// The signal's number.
        signal: i32,
    },
    /// Run a hook: `sh -c cmd` in its own process group; report its exit with the same id.
    RunHook(crate::process::HookSpec),
    /// SIGKILL a hook's whole process group.
    KillHook(crate::ids::HookId),
    /// Print a line on stdout (query results).
    Print(String),
    /// Exit the process with this code; the machine is done.
    Exit(ExitCode),
    /// One log line.
    Log(Event),
}

/// Severity of a log event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A state transition on the happy path.
    Info,
    /// Something went wrong but was handled.
    Warn,
    /// The run fails.
    Error,
}

/// One state transition, for one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Severity.
    pub level: Level,
    /// The transition: `campaign`, `acquired`, `child-start`, `lost`, ...
    pub kind: &'static str,
    /// `key=value` details, in a stable order.
    pub fields: Vec<(&'static str, String)>,
}

impl Event {
    /// An info event.
    pub fn info(kind: &'static str) -> Event {
        Event { level: Level::Info, kind, fields: Vec::new() }
    }

    /// A warning.
    pub fn warn(kind: &'static str) -> Event {
        Event { level: Level::Warn, kind, fields: Vec::new() }
    }

    /// An error.
    pub fn error(kind: &'static str) -> Event {
        Event { level: Level::Error, kind, fields: Vec::new() }
    }

    /// Adds a field. `key` is one of [`EVENT_FIELDS`] (so a structured logger knows every
    /// key ahead); a key of [`NUMBER_FIELDS`] holds an integer.
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Event {
        let value = value.to_string();
        // Both lists are the log format's contract with drivers: a new key goes in them first.
        debug_assert!(EVENT_FIELDS.contains(&key), "event field {key:?} is not in EVENT_FIELDS");
        debug_assert!(!NUMBER_FIELDS.contains(&key) || value.parse::<i64>().is_ok(), "{key}={value} is not a number");
        self.fields.push((key, value));
        self
    }

    /// The value of field `key`, if the event carries it.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }
}

/// Every key an [`Event`] may carry. One format per kind of field: durations are text
/// such as `4s900ms`, instants RFC 3339, counts and ids integers ([`NUMBER_FIELDS`]); a
/// waiter's `rank` is text, `1` or `2+` (the rank reads know the first waiter, not how far
/// behind it the others are).
pub const EVENT_FIELDS: &[&str] = &[
    "after",
    "age",
    "answer",
    "asked",
    "attempt",
    "before_term",
    "by",
    "child",
    "code",
    "delay",
    "error",
    "exit",
    "from",
    "from_url",
    "granted",
    "hook",
    "job",
    "kill_in",
    "late",
    "lease",
    "name",
    "node",
    "note",
    "outcome",
    "outputs",
    "pid",
    "prefix",
    "priority",
    "ran",
    "rank",
    "reason",
    "rev",
    "runs",
    "signal",
    "status",
    "tick",
    "timed_out",
    "to",
    "to_priority",
    "to_url",
    "unconfirmed",
    "waited",
    "why",
];

/// The keys of [`EVENT_FIELDS`] whose values are integers.
pub const NUMBER_FIELDS: &[&str] =
    &["attempt", "code", "outputs", "pid", "priority", "rev", "runs", "signal", "to_priority"];

/// Bounds the outputs a machine may queue before the driver drains them.
pub const OUTBOX_LEN_MAX: usize = 4096;

/// The queue of outputs plus the id counters, shared by the parts of one machine.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Output>,
    next_req: u64,
    next_watch: u64,
}

impl Outbox {
    /// An outbox whose request and watch ids start after `base` (ids stay unique across
    /// the successive runs of one process).
    pub fn with_id_base(base: u64) -> Outbox {
        Outbox { queue: VecDeque::new(), next_req: base, next_watch: base }
    }

    /// Queues an etcd request and returns its id.
    pub fn request(&mut self, request: EtcdRequest) -> ReqId {
        self.next_req += 1;
        let id = ReqId(self.next_req);
        self.push(Output::Etcd { id, request });
        id
    }

    /// Queues a watch and returns its id.
    pub fn watch(&mut self, key: String, start_rev: crate::ids::Revision) -> WatchId {
        self.next_watch += 1;
        let id = WatchId(self.next_watch);
        self.push(Output::Watch { id, key, start_rev, prefix: false });
        id
    }

    /// Queues a watch of every key under `prefix` and returns its id.
    pub fn watch_prefix(&mut self, prefix: String, start_rev: crate::ids::Revision) -> WatchId {
        self.next_watch += 1;
        let id = WatchId(self.next_watch);
        self.push(Output::Watch { id, key: prefix, start_rev, prefix: true });
        id
    }

    /// Queues any output. Past [`OUTBOX_LEN_MAX`] only log events are dropped, never actions.
    pub fn push(&mut self, output: Output) {
        if self.queue.len() >= OUTBOX_LEN_MAX && matches!(output, Output::Log(_)) {
            return;
        }
        self.queue.push_back(output);
    }

    /// Queues a log event.
    pub fn log(&mut self, event: Event) {
        self.push(Output::Log(event));
    }

    /// Takes the next output.
    pub fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }
}
