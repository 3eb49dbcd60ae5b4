//! The drain contract in one place, so the drivers cannot drift apart.
use crate::output::Output;
use crate::time::Instant;

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
pub fn drain<M: Machine>(machine: &mut M, mut perform: impl FnMut(Output)) -> Option<Instant> {
    for _ in 0..DRAIN_OUTPUTS_MAX {
        match machine.poll_output() {
            Some(output) => perform(output),
            None => break,
        }
    }
    machine.poll_timeout()
}
