//! The process-level loop around one [`Runner`] per cycle.
//!
//! * `elect --restart` (service mode): when a run ends — the child exited (cleanly too),
//!   the hold was lost, or the on-acquire hook failed — resign (the runner does), wait, and
//!   campaign again.
//! * The wait depends on why the run ended. The child's own exit (a crash or a clean exit)
//!   or a failed on-acquire hook grows the crash backoff ([`crate::backoff`]: 1 s to 30 s,
//!   reset after a child stayed up 60 s). A failure to reach etcd is not a failed run of
//!   the child ([`Runner::ended_by_etcd`]: no session, a failed campaign, a lost session or
//!   hold, the child stopped for it): it never grows the crash backoff; the campaign is
//!   retried at the session's pace, after a jittered [`ETCD_RETRY_BASE`]..[`ETCD_RETRY_MAX`]
//!   (decorrelated, reset once a session is granted). So a service is back within
//!   `ETCD_RETRY_MAX` + a grant of etcd answering again, plus at most one TTL for the
//!   previous holder's lease to expire: TTL + 2 s at the drivers' call timeouts.
//! * A waiter that lost its session re-enters at the back of the queue (new lease, new
//!   key) while `--wait` allows, else the run's exit (75) stands; a re-entered waiter whose
//!   grant fails keeps re-entering at the session's pace while `--wait` allows.
//! * A one-shot (no `--restart`) whose first grant fails exits 69 at once: the bound is
//!   the driver's, which gives a grant `--dial-timeout` (default 5 s, failing over between
//!   endpoints) before it answers that etcd is unavailable.
//!
//! A signal ends the service: it is forwarded to the running cycle, whose exit code is
//! the process's; during a backoff the service exits at once with 128 + n.
use std::collections::VecDeque;
use std::time::Duration;

use crate::backoff::{Backoff, SplitMix64, STABLE_AFTER};
use crate::drive::{Input, Machine, Now};
use crate::duration::format;
use crate::output::{Event, ExitCode, Output};
use crate::runner::{RunConfig, Runner};
use crate::sabotage::Sabotage;
use crate::supervision::WrapperSignal;
use crate::time::Instant;

/// Ids of successive cycles never collide: each cycle's ids start this far apart.
pub const ID_STRIDE: u64 = 1 << 40;
/// Shortest pause before campaigning again after etcd failed a cycle.
pub const ETCD_RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest pause before campaigning again after etcd failed a cycle.
pub const ETCD_RETRY_MAX: Duration = Duration::from_secs(1);

/// What the service runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// One cycle's configuration (`wait` counts from the service's start).
    pub run: RunConfig,
    /// `--restart`: campaign again after every run, forever.
    pub restart: bool,
    /// Seed of the backoff's random draws.
    pub seed: u64,
}

/// The service machine.
#[derive(Debug)]
pub struct Service {
    cfg: ServiceConfig,
    runner: Option<Runner>,
    cycle: u64,
    backoff: Backoff,
    etcd_retry: Backoff,
    /// A one-shot waiter has re-entered the queue at least once.
    reentered: bool,
    rng: SplitMix64,
    out: VecDeque<Output>,
    restart_at: Option<Instant>,
    wait_until: Option<Instant>,
    signaled: bool,
    /// The wall clock of the last input (Unix ms).
    wall_ms: i64,
    child_started_at: Option<Instant>,
    child_uptime: Option<Duration>,
    done: bool,
    /// A deliberate bug for every cycle, set only by [`Service::with_sabotage`].
    sabotage: Sabotage,
}

impl Service {
    /// A service for `cfg`; call [`Service::start`] to begin.
    pub fn new(cfg: ServiceConfig) -> Service {
        let rng = SplitMix64::new(cfg.seed);
        Service {
            cfg,
            runner: None,
            cycle: 0,
            backoff: Backoff::default(),
            etcd_retry: Backoff::new(ETCD_RETRY_BASE, ETCD_RETRY_MAX),
            reentered: false,
            rng,
            out: VecDeque::new(),
            restart_at: None,
            wait_until: None,
            signaled: false,
            wall_ms: 0,
            child_started_at: None,
            child_uptime: None,
            done: false,
            sabotage: Sabotage::None,
        }
    }

    /// The same service with a deliberate bug in every cycle (the simulator's checker
    /// tests only).
    pub fn with_sabotage(self, sabotage: Sabotage) -> Service {
        Service { sabotage, ..self }
    }

    /// How many cycles have started.
    pub fn cycles(&self) -> u64 {
        self.cycle
    }

    /// Whether the service has emitted its exit.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A signal reached the wrapper: the service ends after the running cycle does.
    fn on_signal(&mut self, now: Now, signal: WrapperSignal) {
        if !signal.stops() {
            // Passed on to a running child; between cycles there is nobody to tell.
            self.with_runner(now, Input::Signal(signal));
            return;
        }
        self.signaled = true;
        if self.runner.is_some() {
            self.with_runner(now, Input::Signal(signal));
        } else if !self.done {
            self.out.push_back(Output::Log(Event::info("signal").with("signal", signal.number())));
            // In service mode a stop between cycles holds nothing: a clean stop.
            let code = if self.cfg.restart { ExitCode::OK } else { ExitCode(128 + signal.number()) };
            self.finish(code);
        }
    }

    /// Begins the first cycle.
    pub fn start(&mut self, now: Instant) {
        if self.cycle == 0 && !self.done {
            self.wait_until = self.cfg.run.wait.map(|w| now.plus(w));
            self.begin_cycle(now);
        }
    }

    fn begin_cycle(&mut self, now: Instant) {
        let mut run = self.cfg.run.clone();
        if let Some(until) = self.wait_until {
            run.wait = Some(until.since(now));
        }
        let mut runner = Runner::with_id_base(run, self.cycle * ID_STRIDE).with_sabotage(self.sabotage);
        runner.set_wall_ms(self.wall_ms);
        self.cycle += 1;
        runner.start(now);
        self.runner = Some(runner);
        self.pump(now);
    }

    fn with_runner(&mut self, now: Now, input: Input) {
        if let Some(runner) = self.runner.as_mut() {
            runner.handle_input(now, input);
            self.pump(now.mono);
        }
    }

    /// Moves the runner's outputs out, intercepting its exit.
    fn pump(&mut self, now: Instant) {
        let Some(runner) = self.runner.as_mut() else { return };
        let mut exit = None;
        while let Some(output) = runner.poll_output() {
            match output {
                Output::Exit(code) => exit = Some(code),
                other => self.out.push_back(other),
            }
        }
        if let Some(code) = exit {
            self.on_cycle_end(now, code);
        }
    }

    fn on_cycle_end(&mut self, now: Instant, code: ExitCode) {
        let runner = self.runner.take();
        let lost_waiting = runner.as_ref().is_some_and(Runner::lost_while_waiting);
        let by_etcd = runner.as_ref().is_some_and(Runner::ended_by_etcd);
        // Stepped down on request: back in the queue (a new key) at etcd's short pace.
        let stepped_down = runner.as_ref().is_some_and(Runner::stepped_down);
        let had_session = runner.as_ref().is_some_and(Runner::had_session);
        let wait_left = self.wait_until.is_none_or(|until| now < until);
        // A one-shot waiter that re-entered and found etcd failing keeps waiting; its very
        // first grant failing is final (69).
        let held = self.child_started_at.is_some() || self.child_uptime.is_some();
        let waiter = lost_waiting || (self.reentered && by_etcd && !held);
        // A failed fence is final: what it should have undone may still stand.
        let fenced_out = code == ExitCode::FENCE_FAILED;
        let again = !self.signaled && !fenced_out && (self.cfg.restart || (waiter && wait_left));
        if !again {
            self.finish(self.stop_code(code));
            return;
        }
        self.reentered |= !self.cfg.restart;
        if self.child_uptime.take().is_some_and(|up| up >= STABLE_AFTER) {
            self.backoff.reset();
        }
        self.child_started_at = None;
        if had_session {
            self.etcd_retry.reset();
        }
        let draw = self.rng.next_u64();
        let delay =
            if by_etcd || stepped_down { self.etcd_retry.next_delay(draw) } else { self.backoff.next_delay(draw) };
        let why = match (lost_waiting, by_etcd, stepped_down) {
            (true, _, _) => "session lost while waiting",
            (false, true, _) => "etcd",
            (false, false, true) => "stepped down",
            (false, false, false) => "restart",
        };
        self.out.push_back(Output::Log(
            Event::info("backoff").with("delay", format(delay)).with("code", code.0).with("why", why),
        ));
        self.restart_at = Some(now.plus(delay));
    }

    /// A service (`--restart`) stopped by SIGTERM or SIGINT whose last cycle released
    /// cleanly exits 0, so `systemctl stop` does not mark the unit failed; a lost hold or
    /// an unreachable etcd keeps its code. Without `--restart` the child's status is
    /// passed on.
    fn stop_code(&self, code: ExitCode) -> ExitCode {
        let clean = ![ExitCode::LOST, ExitCode::UNAVAILABLE, ExitCode::FENCE_FAILED].contains(&code);
        if self.signaled && self.cfg.restart && clean {
            ExitCode::OK
        } else {
            code
        }
    }

    fn finish(&mut self, code: ExitCode) {
        self.done = true;
        self.restart_at = None;
        self.out.push_back(Output::Exit(code));
    }
}

impl Service {
    /// Passes the wall clock of an input on to the running cycle (for `held_since`).
    fn see_wall(&mut self, wall_ms: i64) {
        self.wall_ms = wall_ms;
        if let Some(runner) = self.runner.as_mut() {
            runner.set_wall_ms(wall_ms);
        }
    }
}

impl Machine for Service {
    fn handle_input(&mut self, now: Now, input: Input) {
        self.see_wall(now.wall_ms);
        match input {
            Input::ChildStarted(..) => self.child_started_at = Some(now.mono),
            Input::ChildExit(..) => {
                if let Some(started) = self.child_started_at.take() {
                    self.child_uptime = Some(now.mono.since(started));
                }
            }
            Input::Signal(signal) => return self.on_signal(now, signal),
            // The end of a backoff begins the next cycle; otherwise timers are the cycle's.
            Input::Timeout if self.restart_at.is_some_and(|at| now.mono >= at) => {
                self.restart_at = None;
                return self.begin_cycle(now.mono);
            }
            _ => {}
        }
        self.with_runner(now, input);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        match &self.runner {
            Some(runner) => runner.poll_timeout(),
            None => self.restart_at,
        }
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
