//! The drain contract in one place, so the drivers cannot drift apart.
use crate::etcd::{EtcdResponse, WatchEvent};
use crate::ids::{ChildId, HookId, ReqId, WatchId};
use crate::output::Output;
use crate::supervision::{ChildStatus, WrapperSignal};
use crate::time::Instant;

/// The two clocks a machine may need: monotonic for deadlines, wall for cron ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock.
    pub mono: Instant,
    /// Unix time in milliseconds.
    pub wall_ms: i64,
}

/// The inputs every top-level machine takes, so one driver loop serves them all.
pub trait Driven: Machine {
    /// An etcd answer.
    fn handle_response(&mut self, now: Now, id: ReqId, response: EtcdResponse);
    /// A watch event.
    fn handle_watch(&mut self, now: Now, id: WatchId, event: WatchEvent);
    /// The shim started a child.
    fn handle_child_started(&mut self, now: Now, child: ChildId, pid: u32);
    /// A child and its group are gone.
    fn handle_child_exit(&mut self, now: Now, child: ChildId, status: ChildStatus);
    /// A hook exited.
    fn handle_hook_exit(&mut self, now: Now, id: HookId, status: ChildStatus);
    /// A signal reached the process.
    fn handle_signal(&mut self, now: Now, signal: WrapperSignal);
    /// A timer fired (early or repeated calls are harmless).
    fn handle_timeout(&mut self, now: Now);
}

/// A machine that produces outputs by polling.
pub trait Machine {
    /// Next output, or `None` when drained.
    fn poll_output(&mut self) -> Option<Output>;
    /// When the driver must call `handle_timeout` next (read after draining).
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Bounds one drain, so a machine that kept producing would be caught, not spin forever.
pub const DRAIN_OUTPUTS_MAX: usize = 100_000;

/// Drains every output into `perform`, then returns the next timeout.
pub fn drain<M: Machine + ?Sized>(machine: &mut M, mut perform: impl FnMut(Output)) -> Option<Instant> {
    for _ in 0..DRAIN_OUTPUTS_MAX {
        match machine.poll_output() {
            Some(output) => perform(output),
            None => break,
        }
    }
    machine.poll_timeout()
}
