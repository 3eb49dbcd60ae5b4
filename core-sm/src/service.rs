//! The process-level loop around one [`Runner`] per cycle.
//!
//! * `elect --restart` (service mode): when a run ends — the child exited (cleanly too),
//!   the hold was lost, or the on-acquire hook failed — resign (the runner does), back off
//!   ([`crate::backoff`], reset after a child stayed up 60 s), and campaign again.
//! * A waiter that lost its session re-enters at the back of the queue (new lease, new
//!   key) while `--wait` allows, else the run's exit (75) stands.
//!
//! A signal ends the service: it is forwarded to the running cycle, whose exit code is
//! the process's; during a backoff the service exits at once with 128 + n.
use std::collections::VecDeque;
use std::time::Duration;

use crate::backoff::{Backoff, SplitMix64, STABLE_AFTER};
use crate::drive::{Driven, Machine, Now};
use crate::duration::format;
use crate::etcd::{EtcdResponse, WatchEvent};
use crate::ids::{ChildId, HookId, ReqId, WatchId};
use crate::output::{Event, ExitCode, Output};
use crate::runner::{RunConfig, Runner};
use crate::supervision::{ChildStatus, WrapperSignal};
use crate::time::Instant;

/// Ids of successive cycles never collide: each cycle's ids start this far apart.
pub const ID_STRIDE: u64 = 1 << 40;

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
    rng: SplitMix64,
    out: VecDeque<Output>,
    restart_at: Option<Instant>,
    wait_until: Option<Instant>,
    signaled: bool,
    child_started_at: Option<Instant>,
    child_uptime: Option<Duration>,
    done: bool,
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
            rng,
            out: VecDeque::new(),
            restart_at: None,
            wait_until: None,
            signaled: false,
            child_started_at: None,
            child_uptime: None,
            done: false,
        }
    }

    /// How many cycles have started.
    pub fn cycles(&self) -> u64 {
        self.cycle
    }

    /// Whether the service has emitted its exit.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds an etcd answer.
    pub fn handle_response(&mut self, now: Instant, id: ReqId, response: EtcdResponse) {
        self.with_runner(now, |r| r.handle_response(now, id, response));
    }

    /// Feeds a watch event.
    pub fn handle_watch(&mut self, now: Instant, id: WatchId, event: WatchEvent) {
        self.with_runner(now, |r| r.handle_watch(now, id, event));
    }

    /// The shim started the child.
    pub fn handle_child_started(&mut self, now: Instant, pid: u32) {
        self.child_started_at = Some(now);
        self.with_runner(now, |r| r.handle_child_started(now, pid));
    }

    /// The child is gone.
    pub fn handle_child_exit(&mut self, now: Instant, status: ChildStatus) {
        if let Some(started) = self.child_started_at.take() {
            self.child_uptime = Some(now.since(started));
        }
        self.with_runner(now, |r| r.handle_child_exit(now, status));
    }

    /// A hook exited.
    pub fn handle_hook_exit(&mut self, now: Instant, id: HookId, status: ChildStatus) {
        self.with_runner(now, |r| r.handle_hook_exit(now, id, status));
    }

    /// A signal reached the wrapper: the service ends after the running cycle does.
    pub fn handle_signal(&mut self, now: Instant, signal: WrapperSignal) {
        if !signal.stops() {
            // Passed on to a running child; between cycles there is nobody to tell.
            self.with_runner(now, |r| r.handle_signal(now, signal));
            return;
        }
        self.signaled = true;
        if self.runner.is_some() {
            self.with_runner(now, |r| r.handle_signal(now, signal));
        } else if !self.done {
            self.out.push_back(Output::Log(Event::info("signal").with("signal", signal.number())));
            // In service mode a stop between cycles holds nothing: a clean stop.
            let code = if self.cfg.restart { ExitCode::OK } else { ExitCode(128 + signal.number()) };
            self.finish(code);
        }
    }

    /// Timers of the running cycle, or the end of a backoff.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.restart_at.is_some_and(|at| now >= at) {
            self.restart_at = None;
            self.begin_cycle(now);
            return;
        }
        self.with_runner(now, |r| r.handle_timeout(now));
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
        let mut runner = Runner::with_id_base(run, self.cycle * ID_STRIDE);
        self.cycle += 1;
        runner.start(now);
        self.runner = Some(runner);
        self.pump(now);
    }

    fn with_runner(&mut self, now: Instant, input: impl FnOnce(&mut Runner)) {
        if let Some(runner) = self.runner.as_mut() {
            input(runner);
            self.pump(now);
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
        let lost_waiting = self.runner.as_ref().is_some_and(Runner::lost_while_waiting);
        self.runner = None;
        let wait_left = self.wait_until.is_none_or(|until| now < until);
        let again = !self.signaled && (self.cfg.restart || (lost_waiting && wait_left));
        if !again {
            self.finish(self.stop_code(code));
            return;
        }
        if self.child_uptime.take().is_some_and(|up| up >= STABLE_AFTER) {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay(self.rng.next_u64());
        let why = if lost_waiting { "session lost while waiting" } else { "restart" };
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
        let clean = code != ExitCode::LOST && code != ExitCode::UNAVAILABLE;
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

impl Driven for Service {
    fn handle_response(&mut self, now: Now, id: ReqId, response: EtcdResponse) {
        Service::handle_response(self, now.mono, id, response);
    }

    fn handle_watch(&mut self, now: Now, id: WatchId, event: WatchEvent) {
        Service::handle_watch(self, now.mono, id, event);
    }

    fn handle_child_started(&mut self, now: Now, _child: ChildId, pid: u32) {
        Service::handle_child_started(self, now.mono, pid);
    }

    fn handle_child_exit(&mut self, now: Now, _child: ChildId, status: ChildStatus) {
        Service::handle_child_exit(self, now.mono, status);
    }

    fn handle_hook_exit(&mut self, now: Now, id: HookId, status: ChildStatus) {
        Service::handle_hook_exit(self, now.mono, id, status);
    }

    fn handle_signal(&mut self, now: Now, signal: WrapperSignal) {
        Service::handle_signal(self, now.mono, signal);
    }

    fn handle_timeout(&mut self, now: Now) {
        Service::handle_timeout(self, now.mono);
    }
}

impl Machine for Service {
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
mod tests {
    use super::*;
    use crate::etcd::{EtcdRequest, Kv};
    use crate::hold::HoldSpec;
    use crate::hooks::HookConfig;
    use crate::ids::{LeaseId, Revision};
    use crate::keys::Name;
    use crate::values::Holder;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn service(restart: bool, wait: Option<Duration>) -> Service {
        let run = RunConfig {
            spec: HoldSpec::office(Name::new("svc").unwrap()),
            holder: Holder { host: "h".into(), pid: 1, started: "t".into(), cmd: None },
            argv: vec!["c".into()],
            ttl: Duration::from_secs(10),
            kill_after: Duration::from_secs(5),
            wait,
            hooks: HookConfig::default(),
            sabotage: Default::default(),
        };
        Service::new(ServiceConfig { run, restart, seed: 1 })
    }

    /// Answers every request as a healthy etcd where we are alone (or, with `rival`,
    /// behind another key); returns the non-etcd outputs.
    fn answer(s: &mut Service, now: Instant, rival: bool) -> Vec<Output> {
        let mut rest = Vec::new();
        for _ in 0..100 {
            let outputs: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
            if outputs.is_empty() {
                break;
            }
            for o in outputs {
                match o {
                    Output::Etcd { id, request } => {
                        let response = match request {
                            EtcdRequest::Grant { .. } => EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: 10 },
                            EtcdRequest::PutIfAbsent { lease, .. } => {
                                EtcdResponse::Put { created: true, create_rev: Revision(5), lease }
                            }
                            EtcdRequest::RangePrefix { .. } => {
                                let own = Kv {
                                    key: "/conch/v1/elect/svc/10".into(),
                                    create_rev: Revision(5),
                                    mod_rev: Revision(5),
                                    lease: LeaseId(0x10),
                                    value: vec![],
                                };
                                let other =
                                    Kv { key: "/conch/v1/elect/svc/1".into(), create_rev: Revision(1), ..own.clone() };
                                EtcdResponse::Range {
                                    header_rev: Revision(5),
                                    kvs: if rival { vec![other, own] } else { vec![own] },
                                }
                            }
                            EtcdRequest::DeleteIfCreateRev { .. } => EtcdResponse::Deleted { deleted: true },
                            EtcdRequest::Revoke { .. } => EtcdResponse::Revoked,
                            _ => continue,
                        };
                        s.handle_response(now, id, response);
                    }
                    Output::Log(_) | Output::Watch { .. } | Output::CancelWatch(_) => {}
                    other => rest.push(other),
                }
            }
        }
        rest
    }

    #[test]
    fn restart_reruns_after_clean_exits_with_backoff_until_a_signal() {
        let mut s = service(true, None);
        s.start(at(0));
        let mut now = at(0);
        for cycle in 1..=3u64 {
            let out = answer(&mut s, now, false);
            assert!(out.iter().any(|o| matches!(o, Output::Spawn(_))), "cycle {cycle}: {out:?}");
            s.handle_child_started(now, 9);
            now = now.plus(Duration::from_millis(10));
            s.handle_child_exit(now, ChildStatus::Exited(0));
            assert!(answer(&mut s, now, false).is_empty(), "no exit in service mode");
            let restart = s.poll_timeout().unwrap();
            let delay = restart.since(now);
            assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(30), "{delay:?}");
            assert_eq!(s.cycles(), cycle);
            if cycle == 3 {
                s.handle_signal(now, WrapperSignal::Interrupt);
                // A stop between cycles holds nothing: a clean stop (issue 12, systemd).
                assert_eq!(answer(&mut s, now, false), vec![Output::Exit(ExitCode::OK)]);
                return;
            }
            now = restart;
            s.handle_timeout(now);
        }
    }

    /// Delays grow while children die young, and fall back to 1-3 s after a child
    /// stayed up 60 s (seed 1 is known to have grown past 3 s by the fifth quick cycle).
    #[test]
    fn backoff_resets_after_a_stable_child() {
        let mut s = service(true, None);
        s.start(at(0));
        let mut now = at(0);
        let mut delays = Vec::new();
        for uptime in [10u64, 10, 10, 10, 10, 61_000] {
            answer(&mut s, now, false);
            s.handle_child_started(now, 9);
            now = now.plus(Duration::from_millis(uptime));
            s.handle_child_exit(now, ChildStatus::Exited(0));
            answer(&mut s, now, false);
            let restart = s.poll_timeout().unwrap();
            delays.push(restart.since(now));
            now = restart;
            s.handle_timeout(now);
        }
        let (before, after) = delays.split_at(5);
        assert!(before.iter().any(|d| *d > Duration::from_secs(3)), "{delays:?}");
        assert!(after[0] <= Duration::from_secs(3), "no reset after a stable child: {delays:?}");
    }

    #[test]
    fn a_signal_while_running_in_service_mode_ends_with_the_childs_code() {
        let mut s = service(true, None);
        s.start(at(0));
        answer(&mut s, at(0), false);
        s.handle_child_started(at(1), 9);
        s.handle_signal(at(2), WrapperSignal::Terminate);
        assert!(answer(&mut s, at(2), false).iter().any(|o| matches!(o, Output::Terminate { .. })));
        s.handle_child_exit(at(3), ChildStatus::Exited(0));
        assert_eq!(answer(&mut s, at(3), false), vec![Output::Exit(ExitCode(0))]);
        assert!(s.is_done());
    }

    /// systemd's `systemctl stop` sends SIGTERM: a service that released cleanly exits 0
    /// even though its child died of the forwarded SIGTERM; a one-shot passes 143 on.
    #[test]
    fn a_stop_signal_ends_a_service_with_0_and_a_one_shot_with_the_childs_status() {
        for (restart, want) in [(true, ExitCode::OK), (false, ExitCode(143))] {
            let mut s = service(restart, None);
            s.start(at(0));
            answer(&mut s, at(0), false);
            s.handle_child_started(at(1), 9);
            s.handle_signal(at(2), WrapperSignal::Terminate);
            answer(&mut s, at(2), false);
            s.handle_child_exit(at(3), ChildStatus::Signaled(15));
            let outs = answer(&mut s, at(3), false);
            assert_eq!(outs.last(), Some(&Output::Exit(want)), "restart={restart}: {outs:?}");
        }
        // Between cycles (backing off) a service holds nothing: a stop is clean too.
        let mut s = service(true, None);
        s.start(at(0));
        answer(&mut s, at(0), false);
        s.handle_child_started(at(1), 9);
        s.handle_child_exit(at(2), ChildStatus::Exited(1));
        answer(&mut s, at(2), false);
        s.handle_signal(at(3), WrapperSignal::Interrupt);
        assert_eq!(answer(&mut s, at(3), false).last(), Some(&Output::Exit(ExitCode::OK)));
    }

    /// SIGHUP and friends reach the child's group as themselves and stop nothing.
    #[test]
    fn passed_signals_go_to_the_child_and_stop_nothing() {
        let mut s = service(true, None);
        s.start(at(0));
        answer(&mut s, at(0), false);
        s.handle_child_started(at(1), 9);
        for n in crate::supervision::PASSED_SIGNALS {
            s.handle_signal(at(2), WrapperSignal::Pass(n));
            let outs = answer(&mut s, at(2), false);
            assert!(outs.iter().any(|o| matches!(o, Output::SignalGroup { signal, .. } if *signal == n)), "{outs:?}");
            assert!(!outs.iter().any(|o| matches!(o, Output::Terminate { .. } | Output::Exit(_))), "{outs:?}");
        }
        assert!(!s.is_done());
    }

    #[test]
    fn a_waiter_that_lost_its_session_reenters_while_wait_allows() {
        let mut s = service(false, Some(Duration::from_secs(60)));
        s.start(at(0));
        answer(&mut s, at(0), true);
        // Our own key is deleted while we wait: the session is gone.
        s.handle_watch(
            at(100),
            WatchId(1),
            WatchEvent::Delete { key: "/conch/v1/elect/svc/10".into(), mod_rev: Revision(9) },
        );
        assert!(answer(&mut s, at(100), true).is_empty(), "must re-enter, not exit");
        let restart = s.poll_timeout().unwrap();
        s.handle_timeout(restart);
        assert_eq!(s.cycles(), 2);
        // Without --wait the loss ends the run with 75.
        let mut s = service(false, None);
        s.start(at(0));
        answer(&mut s, at(0), true);
        s.handle_watch(
            at(100),
            WatchId(1),
            WatchEvent::Delete { key: "/conch/v1/elect/svc/10".into(), mod_rev: Revision(9) },
        );
        assert!(answer(&mut s, at(100), true).is_empty(), "no wait limit: re-enter too");
        let mut s = service(false, Some(Duration::ZERO));
        s.start(at(0));
        assert_eq!(answer(&mut s, at(0), true), vec![Output::Exit(ExitCode::NOT_ACQUIRED)]);
    }
}
