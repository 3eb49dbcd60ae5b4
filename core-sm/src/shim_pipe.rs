//! The shim's pipe as typed messages, one codec for both ends: the wrapper's
//! (`driver-etcd/src/shim_link.rs`) and the shim's (`driver-etcd/src/shim.rs`). One line
//! per message, numbers in decimal, instants in nanoseconds of the shared clock:
//!
//! ```text
//! wrapper → shim   D <term_at_ns> <kill_at_ns>   new deadlines
//!                  T <kill_at_ns>                terminate now, SIGKILL by kill_at
//!                  S <signal>                    pass this signal on to every descendant
//! shim → wrapper   P <pid>                       the command started
//!                  X exit <code> | X signal <n>  the command and its group are gone
//! ```
//!
//! A line either end cannot read is input, not a broken invariant: `decode` says `None`
//! and the reader logs it.
use crate::process::ChildStatus;
use crate::time::Instant;

/// What the wrapper tells its shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToShim {
    /// The current deadlines (`Output::Deadlines`).
    Deadlines {
        /// SIGTERM the group no later than this.
        term_at: Instant,
        /// SIGKILL the group no later than this.
        kill_at: Instant,
    },
    /// Stop the child now (`Output::Terminate`).
    Terminate {
        /// SIGKILL no later than this.
        kill_at: Instant,
    },
    /// Pass this signal on to every descendant (`Output::SignalGroup`).
    Signal(i32),
}

/// What the shim reports to the wrapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromShim {
    /// The command started with this pid.
    Started(u32),
    /// The command exited with this code, and nothing of it is left.
    Exited(i32),
    /// The command was killed by this signal, and nothing of it is left.
    Signaled(i32),
}

impl ToShim {
    /// The message as one line, newline included.
    pub fn encode(&self) -> String {
        match self {
            ToShim::Deadlines { term_at, kill_at } => format!("D {} {}\n", term_at.as_nanos(), kill_at.as_nanos()),
            ToShim::Terminate { kill_at } => format!("T {}\n", kill_at.as_nanos()),
            ToShim::Signal(signal) => format!("S {signal}\n"),
        }
    }

    /// Reads one line (without or with its newline).
    pub fn decode(line: &str) -> Option<ToShim> {
        let fields: Vec<&str> = line.trim().split(' ').collect();
        let at = |s: &str| s.parse().ok().map(Instant::from_nanos);
        match fields.as_slice() {
            ["D", term_at, kill_at] => Some(ToShim::Deadlines { term_at: at(term_at)?, kill_at: at(kill_at)? }),
            ["T", kill_at] => Some(ToShim::Terminate { kill_at: at(kill_at)? }),
            ["S", signal] => Some(ToShim::Signal(signal.parse().ok()?)),
            _ => None,
        }
    }
}

impl FromShim {
    /// The message as one line, newline included.
    pub fn encode(&self) -> String {
        match self {
            FromShim::Started(pid) => format!("P {pid}\n"),
            FromShim::Exited(code) => format!("X exit {code}\n"),
            FromShim::Signaled(signal) => format!("X signal {signal}\n"),
        }
    }

    /// Reads one line (without or with its newline).
    pub fn decode(line: &str) -> Option<FromShim> {
        let fields: Vec<&str> = line.trim().split(' ').collect();
        match fields.as_slice() {
            ["P", pid] => Some(FromShim::Started(pid.parse().ok()?)),
            ["X", "exit", code] => Some(FromShim::Exited(code.parse().ok()?)),
            ["X", "signal", signal] => Some(FromShim::Signaled(signal.parse().ok()?)),
            _ => None,
        }
    }

    /// The child's status, for an exit report.
    pub fn status(&self) -> Option<ChildStatus> {
        match self {
            FromShim::Started(_) => None,
            FromShim::Exited(code) => Some(ChildStatus::Exited(*code)),
            FromShim::Signaled(signal) => Some(ChildStatus::Signaled(*signal)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let to = [
            ToShim::Deadlines { term_at: Instant::from_nanos(10), kill_at: Instant::from_nanos(u64::MAX) },
            ToShim::Terminate { kill_at: Instant::from_nanos(0) },
            ToShim::Signal(10),
        ];
        for m in to {
            assert_eq!(ToShim::decode(&m.encode()), Some(m));
        }
        for m in [FromShim::Started(4_194_304), FromShim::Exited(-1), FromShim::Exited(3), FromShim::Signaled(9)] {
            assert_eq!(FromShim::decode(&m.encode()), Some(m));
        }
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        assert_eq!(
            ToShim::Deadlines { term_at: Instant::from_nanos(1), kill_at: Instant::from_nanos(2) }.encode(),
            "D 1 2\n"
        );
        assert_eq!(FromShim::Signaled(15).encode(), "X signal 15\n");
    }

    #[test]
    fn unreadable_lines_are_none() {
        for line in ["", "D 1", "D x 2", "T -1", "S", "Q 1", "X exit", "X died 3", "P -4", "D 1 2 3"] {
            assert_eq!(ToShim::decode(line), None, "{line:?}");
            assert_eq!(FromShim::decode(line), None, "{line:?}");
        }
    }
}
