//! The event loop for one machine ([`Service`] or [`Conchd`]): a current-thread tokio
//! runtime, one channel of [`DriverEvent`]s, and the drain contract from
//! `conch_core::drive`: one input, then its whole drain performed in poll order; an input
//! the loop makes itself while performing (a shim or hook that could not start) waits in
//! a queue for the next turn, so the machine is never re-entered mid-drain.
use conch_core::conchd::{Conchd, ConchdConfig};
use conch_core::{
    drain, ChildId, ChildStatus, EtcdRequest, ExitCode, Input, Machine, Now, Output, Service, ServiceConfig,
    WrapperSignal,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use std::collections::{BTreeMap, VecDeque};

use crate::clock::{now, to_tokio};
use crate::connect::EtcdConfig;
use crate::events::DriverEvent;
use crate::hooks::Hooks;
use crate::keepalive::KeepAlives;
pub use crate::log::{log_event, use_json_logs};
use crate::notify::Notifier;
use crate::pool::Pool;
use crate::shim_link::{ShimLink, Spare};
use crate::watches::Watches;

struct Io {
    config: EtcdConfig,
    pool: Pool,
    events: UnboundedSender<DriverEvent>,
    /// Keepalive news come on a channel of their own, read before any other input: a
    /// session's answers never wait behind a thousand claim answers (conchd lost its
    /// session that way under load, B7).
    keepalive_events: UnboundedSender<DriverEvent>,
    keepalives: KeepAlives,
    watches: Watches,
    shims: BTreeMap<ChildId, ShimLink>,
    /// A shim started ahead on the machine's [`Output::Prepare`]; dropped unused, it exits.
    spare: Option<Spare>,
    hooks: Hooks,
    notify: Notifier,
    exit: Option<ExitCode>,
    /// Inputs the loop made while performing outputs, fed after the drain.
    own: VecDeque<Input>,
}

/// Runs one wrapper (`elect`, `sema`) to its end and returns its exit code.
pub fn run(config: EtcdConfig, service: ServiceConfig) -> ExitCode {
    block_on(async move {
        let mut machine = Service::new(service);
        drive(config, move |now| {
            machine.start(now.mono);
            machine
        })
        .await
    })
}

/// Runs conchd until it is signalled; `on_tick` sees the machine after every input
/// (the status API reads it there).
pub fn run_conchd(config: EtcdConfig, conchd: ConchdConfig, mut observe: impl FnMut(&Conchd) + 'static) -> ExitCode {
    block_on(async move {
        let mut machine = Conchd::new(conchd);
        drive_observed(
            config,
            move |now| {
                machine.start(now);
                machine
            },
            &mut observe,
        )
        .await
    })
}

fn block_on(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(future),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            ExitCode::LOST
        }
    }
}

/// Both clocks, read together.
pub fn now_both() -> Now {
    let wall_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Now { mono: now(), wall_ms }
}

async fn drive<M: Machine>(config: EtcdConfig, start: impl FnOnce(Now) -> M) -> ExitCode {
    drive_observed(config, start, &mut |_: &M| {}).await
}

async fn drive_observed<M: Machine>(
    config: EtcdConfig,
    start: impl FnOnce(Now) -> M,
    observe: &mut dyn FnMut(&M),
) -> ExitCode {
    let pool = Pool::new(config.clone());
    let (events, mut inbox) = unbounded_channel();
    let (keepalive_events, mut keepalive_inbox) = unbounded_channel();
    let mut io = Io {
        config,
        keepalives: KeepAlives::new(pool.clone()),
        pool,
        events,
        keepalive_events,
        watches: Watches::default(),
        shims: BTreeMap::new(),
        spare: None,
        hooks: Hooks::default(),
        notify: Notifier::from_env(),
        exit: None,
        own: VecDeque::new(),
    };
    let mut watchdog = io.notify.watchdog_every().map(tokio::time::interval);
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::LOST;
        }
    };
    let mut machine = start(now_both());
    loop {
        let mut outputs = Vec::new();
        let timeout = drain(&mut machine, |o| outputs.push(o));
        for output in outputs {
            io.perform(output).await;
        }
        observe(&machine);
        if let Some(code) = io.exit {
            return code;
        }
        // One input per turn, each followed by its drain: our own first (they answer what
        // was just performed), then keepalive news, then whichever source is ready (select picks fairly among
        // ready ones, so a flood of etcd news never starves the timer or a signal).
        if let Some(input) = io.own.pop_front() {
            machine.handle_input(now_both(), input);
            continue;
        }
        if let Ok(event) = keepalive_inbox.try_recv() {
            io.feed(&mut machine, event).await;
            continue;
        }
        let sleep_until = timeout.map(to_tokio);
        tokio::select! {
            Some(event) = keepalive_inbox.recv() => io.feed(&mut machine, event).await,
            event = inbox.recv() => match event {
                Some(event) => io.feed(&mut machine, event).await,
                None => return ExitCode::LOST,
            },
            signal = signals.next() => machine.handle_input(now_both(), Input::Signal(signal)),
            _ = sleep(sleep_until) => machine.handle_input(now_both(), Input::Timeout),
            _ = tick(&mut watchdog) => io.notify.pet(),
        }
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep(until: Option<tokio::time::Instant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Io {
    async fn feed<M: Machine>(&mut self, machine: &mut M, event: DriverEvent) {
        match event {
            DriverEvent::Input(input) => {
                match &input {
                    // Events of a cancelled watch may still be in flight.
                    Input::Watch(id, _) if !self.watches.is_live(*id) => return,
                    Input::ChildExit(child, _) => {
                        self.shims.remove(child);
                    }
                    Input::HookExit(id, _) => self.hooks.forget(*id),
                    Input::Response(..)
                    | Input::Watch(..)
                    | Input::ChildStarted(..)
                    | Input::Signal(_)
                    | Input::Timeout => {}
                }
                machine.handle_input(now_both(), input);
            }
            DriverEvent::KeepAlive(generation, news) => {
                // One stream's news may answer several requests; each is one input.
                self.own.extend(
                    self.keepalives.handle(generation, news).await.into_iter().map(|(id, r)| Input::Response(id, r)),
                );
            }
        }
    }

    async fn perform(&mut self, output: Output) {
        match output {
            Output::Etcd { id, request: EtcdRequest::KeepAlive { lease, fresh_stream } } => {
                self.keepalives.send(id, lease, fresh_stream, &self.keepalive_events).await;
            }
            Output::Etcd { id, request } => {
                let timeout = if matches!(request, EtcdRequest::Grant { .. }) {
                    self.config.dial_timeout
                } else {
                    self.config.call_timeout()
                };
                let (pool, events) = (self.pool.clone(), self.events.clone());
                tokio::spawn(async move {
                    let response = pool.call(request, timeout).await;
                    let _ = events.send(DriverEvent::Input(Input::Response(id, response)));
                });
            }
            Output::Watch { id, key, start_rev, prefix } => {
                self.watches.start(&self.pool, id, key, start_rev, prefix, &self.events)
            }
            Output::CancelWatch(id) => self.watches.cancel(id),
            Output::Prepare => {
                if self.spare.is_none() {
                    self.spare = Spare::start().map_err(|e| tracing::debug!(error = %e, "no prepared shim")).ok();
                }
            }
            Output::Spawn(spec) => match ShimLink::spawn(&spec, &self.config, &self.events, self.spare.take()) {
                Ok(link) => {
                    self.shims.insert(spec.child, link);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the shim");
                    self.own.push_back(Input::ChildExit(spec.child, ChildStatus::Vanished));
                }
            },
            Output::Deadlines { child, term_at, kill_at } => {
                if let Some(shim) = self.shims.get_mut(&child) {
                    shim.deadlines(term_at, kill_at).await;
                }
            }
            Output::Terminate { child, kill_at } => {
                if let Some(shim) = self.shims.get_mut(&child) {
                    shim.terminate(kill_at).await;
                }
            }
            Output::SignalGroup { child, signal } => {
                if let Some(shim) = self.shims.get_mut(&child) {
                    shim.pass_signal(signal).await;
                }
            }
            Output::KillGroup(child) => {
                if let Some(shim) = self.shims.get(&child) {
                    shim.kill_group();
                }
            }
            Output::RunHook(spec) => {
                if let Err(e) = self.hooks.spawn(&spec, &self.events) {
                    tracing::error!(error = %e, hook = spec.kind.as_str(), "cannot start the hook");
                    self.own.push_back(Input::HookExit(spec.id, ChildStatus::Exited(127)));
                }
            }
            Output::KillHook(id) => self.hooks.kill(id),
            // A closed stdout drops the line: the hold is released as always.
            Output::Print(line) => {
                let _ = crate::out::print_line(&line);
            }
            Output::Exit(code) => self.exit = Some(code),
            Output::Log(event) => {
                self.notify.see(&event);
                log_event(&event);
            }
        }
    }
}

/// SIGINT and SIGTERM stop; SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH
/// ([`conch_core::supervision::PASSED_SIGNALS`]) are passed on to the child's group.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
    winch: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            winch: signal(SignalKind::window_change())?,
        })
    }

    async fn next(&mut self) -> WrapperSignal {
        tokio::select! {
            _ = self.int.recv() => WrapperSignal::Interrupt,
            _ = self.term.recv() => WrapperSignal::Terminate,
            _ = self.hup.recv() => WrapperSignal::Pass(libc_signal::SIGHUP),
            _ = self.quit.recv() => WrapperSignal::Pass(libc_signal::SIGQUIT),
            _ = self.usr1.recv() => WrapperSignal::Pass(libc_signal::SIGUSR1),
            _ = self.usr2.recv() => WrapperSignal::Pass(libc_signal::SIGUSR2),
            _ = self.winch.recv() => WrapperSignal::Pass(libc_signal::SIGWINCH),
        }
    }
}

/// Signal numbers as the core names them (Linux).
mod libc_signal {
    use nix::sys::signal::Signal;
    pub const SIGHUP: i32 = Signal::SIGHUP as i32;
    pub const SIGQUIT: i32 = Signal::SIGQUIT as i32;
    pub const SIGUSR1: i32 = Signal::SIGUSR1 as i32;
    pub const SIGUSR2: i32 = Signal::SIGUSR2 as i32;
    pub const SIGWINCH: i32 = Signal::SIGWINCH as i32;
}
