//! The process vocabulary of the protocol layer: how to start the child ([`SpawnSpec`])
//! and a hook ([`HookSpec`]), how they ended ([`ChildStatus`]), and the signals that reach
//! the wrapper ([`WrapperSignal`]). Plain data a driver carries out and reports; it
//! imports only `exit`, `ids` and `time`.
use std::time::Duration;

use crate::exit::ExitCode;
use crate::ids::{ChildId, HookId};
use crate::time::Instant;

/// How to start the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnSpec {
    /// Which child (reported back with its start and exit).
    pub child: ChildId,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// SIGTERM no later than this.
    pub term_at: Instant,
    /// SIGKILL no later than this.
    pub kill_at: Instant,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// `Some(job)`: the command's stdout and stderr lines become log lines carrying the
    /// job (conchd, where many jobs share one journal); `None`: the command inherits the
    /// wrapper's stdio (elect and sema, whose command may own a terminal).
    pub output_label: Option<String>,
}

/// How the child ended, as the shim reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// The shim went away without a report (it was killed): the status is unknown.
    Vanished,
}

impl ChildStatus {
    /// The exit code a wrapper passes on: the child's own, 128+n for signal n.
    pub fn exit_code(self) -> ExitCode {
        match self {
            ChildStatus::Exited(code) => ExitCode(code),
            ChildStatus::Signaled(sig) => ExitCode(128 + sig),
            ChildStatus::Vanished => ExitCode::LOST,
        }
    }
}

/// A signal delivered to the wrapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrapperSignal {
    /// SIGINT: stop (forward SIGTERM, release).
    Interrupt,
    /// SIGTERM: stop.
    Terminate,
    /// A signal passed on to the child's group as itself and otherwise ignored: SIGHUP
    /// (`ExecReload=kill -HUP $MAINPID`), SIGUSR1, SIGUSR2, SIGWINCH, SIGQUIT.
    Pass(i32),
}

/// The signals a wrapper passes on to its child's group ([`WrapperSignal::Pass`]).
pub const PASSED_SIGNALS: [i32; 5] = [1, 3, 10, 12, 28];

impl WrapperSignal {
    /// The signal's number on Linux.
    pub fn number(self) -> i32 {
        match self {
            WrapperSignal::Interrupt => 2,
            WrapperSignal::Terminate => 15,
            WrapperSignal::Pass(n) => n,
        }
    }

    /// Whether this signal asks the wrapper to stop.
    pub fn stops(self) -> bool {
        !matches!(self, WrapperSignal::Pass(_))
    }
}

/// Which hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// After winning, before the child.
    OnAcquire,
    /// After the child is gone, before resigning.
    OnLose,
    /// After a lost hold's child (or on-acquire hook) is dead, before anything else.
    Fence,
}

impl HookKind {
    /// The flag's name without dashes.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::OnAcquire => "on-acquire",
            HookKind::OnLose => "on-lose",
            HookKind::Fence => "fence",
        }
    }
}

/// How to run one hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSpec {
    /// Correlation id for its exit.
    pub id: HookId,
    /// Which hook.
    pub kind: HookKind,
    /// The shell command (`sh -c`).
    pub cmd: String,
    /// Variables added to the inherited environment (the child's).
    pub env: Vec<(String, String)>,
}
