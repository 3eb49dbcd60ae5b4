//! The boundary every top-level machine shows its driver: one [`Input`] enum in, one
//! `handle_input(now, input)`, [`Output`]s and a timeout out by polling, and the drain
//! contract in one place, so the drivers cannot drift apart.
use crate::etcd::{EtcdResponse, WatchEvent};
use crate::ids::{ChildId, HookId, ReqId, WatchId};
use crate::output::Output;
use crate::process::{ChildStatus, WrapperSignal};
use crate::time::Instant;

/// The two clocks a machine may need: monotonic for deadlines, wall for cron ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock.
    pub mono: Instant,
    /// Unix time in milliseconds.
    pub wall_ms: i64,
}

/// Everything a driver feeds the wrapper's machines ([`crate::Service`],
/// [`crate::Runner`], [`crate::conchd::Conchd`]): the answers to their outputs and the
/// world's news. A new variant fails to compile until every driver makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The answer to `Output::Etcd` with this id.
    Response(ReqId, EtcdResponse),
    /// An event of the watch `Output::Watch` opened with this id.
    Watch(WatchId, WatchEvent),
    /// The shim started the child of `Output::Spawn`, as this pid.
    ChildStarted(ChildId, u32),
    /// A child and its group are gone (or its shim never started: `Vanished`).
    ChildExit(ChildId, ChildStatus),
    /// A hook of `Output::RunHook` exited (or never started: exit 127).
    HookExit(HookId, ChildStatus),
    /// A signal reached the process.
    Signal(WrapperSignal),
    /// The instant of `poll_timeout` came (early or repeated timeouts are harmless).
    Timeout,
}

/// A machine one driver loop serves: inputs in, outputs and a timeout out by polling.
pub trait Machine {
    /// Feeds one input; then the driver drains (see [`drain`]).
    fn handle_input(&mut self, now: Now, input: Input);
    /// Next output, or `None` when drained.
    #[must_use]
    fn poll_output(&mut self) -> Option<Output>;
    /// When the driver must feed [`Input::Timeout`] next (read after draining).
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Bounds one drain. No machine queues anywhere near this many outputs for one input
/// (the largest is conchd's job table: a few per job), so reaching it means a machine
/// that keeps producing: a bug, asserted in debug builds (the simulator, the tests and
/// the fuzz targets). A release build logs it and stops draining, so a live wrapper
/// keeps enforcing its deadlines (the shim's do not depend on the drain) instead of
/// spinning.
pub const DRAIN_OUTPUTS_MAX: usize = 100_000;

/// Drains every output into `perform`, in poll order, then returns the next timeout.
pub fn drain<M: Machine + ?Sized>(machine: &mut M, mut perform: impl FnMut(Output)) -> Option<Instant> {
    let mut drained = false;
    for _ in 0..DRAIN_OUTPUTS_MAX {
        match machine.poll_output() {
            Some(output) => perform(output),
            None => {
                drained = true;
                break;
            }
        }
    }
    if !drained {
        debug_assert!(drained, "a machine produced {DRAIN_OUTPUTS_MAX} outputs for one input: a loop in the machine");
        perform(Output::Log(crate::output::Event::error("drain-overflow").with("outputs", DRAIN_OUTPUTS_MAX)));
    }
    machine.poll_timeout()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine with a bug: every poll has one more output.
    struct Endless;

    impl Machine for Endless {
        fn handle_input(&mut self, _now: Now, _input: Input) {}
        fn poll_output(&mut self) -> Option<Output> {
            Some(Output::Print(String::new()))
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "a loop in the machine"))]
    fn a_drain_that_never_ends_is_a_bug() {
        let mut outputs = 0usize;
        let mut overflow = false;
        let _ = drain(&mut Endless, |o| match o {
            Output::Log(e) => overflow = e.kind == "drain-overflow",
            _ => outputs += 1,
        });
        // Release builds stop at the bound and say so.
        assert_eq!((outputs, overflow), (DRAIN_OUTPUTS_MAX, true));
    }
}
