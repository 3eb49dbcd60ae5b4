//! The shim: `conch __shim <fd> <term_at_ns> <kill_at_ns> <kill_after_ms> <tty_pgrp> -- cmd...`,
//! or prepared ahead: `conch __shim <fd> ready`.
//!
//! A prepared shim is started by the wrapper when a run that may wait begins (the core's
//! `Output::Prepare`): it sets itself up (group, subreaper, handlers) and waits on the
//! socket for one `C` line with what the command line would have said, plus the variables
//! the command gets ([`encode_start`]). Exec'ing this binary, loading it and setting up
//! then no longer lie between "acquired" and the command's start (07-performance B2). A
//! prepared shim whose socket closes before any `C` line (the wrapper exited without
//! holding, or died) exits 0 with nothing to stop.
//!
//! A small synchronous process (no async runtime) between the wrapper and the child. It
//! leads a new process group, is a child subreaper, starts the command inside its group,
//! and enforces the deadlines on its own clock (`CLOCK_BOOTTIME`, as the wrapper's):
//!
//! * at `term_at` SIGTERM every descendant, at `kill_at` SIGKILL them — even when the
//!   wrapper is frozen (SIGSTOP) and sends nothing;
//! * when the pipe closes without an order (wrapper SIGKILLed or crashed): SIGTERM at
//!   once, SIGKILL after kill-after or at `kill_at`, whichever is first;
//! * when the command exits: whatever of it is left is stopped the same way, then the
//!   status is reported and the shim exits.
//!
//! A terminal: when the wrapper runs in the foreground of the terminal on its stdin, it
//! passes its process group as `tty_pgrp`; the shim's group then takes the terminal for
//! the command's life (so the command can read it, and ^C reaches the command as under
//! `flock`) and gives it back to `tty_pgrp` before reporting. 0 means no terminal.
//!
//! "Every descendant" is found by walking `/proc`, so processes that left the group with
//! `setsid` die too; being subreaper, the shim inherits and reaps them once their parent
//! is gone. Two shortcuts keep the walk off the paths users feel (07-performance B2, B3):
//!
//! * a signal the shim itself catches (SIGTERM, SIGINT, SIGHUP, SIGQUIT) goes to the whole
//!   group first with one `kill(-pgid)` — the shim, in the group too, only notes it — and
//!   the walk that follows signals only the processes outside the group;
//! * when the command has exited and `waitpid` says the shim has no child left at all,
//!   nothing of the command is left (a subreaper inherits every orphan below it, so a
//!   descendant always has a live chain of parents up to the shim): the exit is reported
//!   without a walk. With any child left, it is stopped as before.
//!
//! The pipe's messages and their codec are the core's (`conch_core::shim_pipe`), shared
//! with the wrapper's end; when the group is empty is the rules' call (`ShimRules`). One
//! more line, `R <lease> …`, carries the session lease and how to reach etcd
//! (`shim_revoke`'s codec: etcd's configuration is the driver's, not the core's).
//!
//! When the pipe closed without an order (the wrapper died) and the command's processes
//! are all gone, the shim revokes the lease it was given before it exits, so the
//! successor need not wait out the TTL; a frozen wrapper's pipe stays open, so its lease
//! expires on its own.
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use conch_core::shim_pipe::{FromShim, ToShim};
use conch_core::shim_rules::{ShimInput, ShimRules, ShimSignal};
use conch_core::Instant;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, setpgid, Pid};

use crate::clock::now;
use crate::connect::EtcdConfig;
use crate::shim_revoke::{self, hex, unhex};

/// The shim's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimArgs {
    /// The wrapper's end of the socket pair, inherited.
    pub fd: RawFd,
    /// First `term_at`.
    pub term_at: Instant,
    /// First `kill_at`.
    pub kill_at: Instant,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// The wrapper's process group, which had the terminal on stdin (0: no terminal).
    pub tty_pgrp: i32,
    /// Inherited pipes to give the command as its stdout and stderr (a cron job's output,
    /// logged by the wrapper); `None`: the command inherits the shim's own, and the shim's
    /// log lines never mix into the job's output either way.
    pub child_out: Option<(RawFd, RawFd)>,
    /// The command.
    pub argv: Vec<String>,
}

/// The signals the shim catches (and only notes): these may be sent to its whole group.
const CAUGHT: [Signal; 4] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT];

/// The hidden subcommand name.
pub const SHIM_ARG: &str = "__shim";

/// The argument after the descriptor that makes a prepared shim.
pub const READY_ARG: &str = "ready";

/// How the shim was started.
#[derive(Debug, PartialEq, Eq)]
pub enum Launch {
    /// With its command on the command line: start it now.
    Now(ShimArgs),
    /// Prepared ahead, on this socket: the command comes as a `C` line.
    Prepared(RawFd),
}

/// The `C` line (without its newline) that starts a prepared shim's command: the
/// arguments [`encode_args`] would have put on the command line after the descriptor,
/// then the variables the command gets, each field hex-encoded (argv and values may hold
/// spaces and newlines).
pub fn encode_start(args: &ShimArgs, env: &[(String, String)]) -> String {
    let mut fields =
        encode_args(args.fd, args.term_at, args.kill_at, args.kill_after, args.tty_pgrp, args.child_out, &args.argv);
    fields.drain(..2);
    let mut line = format!("C {}", env.len());
    for (key, value) in env {
        line.push_str(&format!(" {} {}", hex(key.as_bytes()), hex(value.as_bytes())));
    }
    for field in fields {
        line.push(' ');
        line.push_str(&hex(field.as_bytes()));
    }
    line
}

/// Parses [`encode_start`]'s line for the shim on `fd`: its arguments and the command's
/// variables; `None` when it is not one.
pub fn decode_start(fd: RawFd, line: &str) -> Option<(ShimArgs, Vec<(String, String)>)> {
    let mut fields = line.strip_prefix("C ")?.split(' ');
    let count: usize = fields.next()?.parse().ok()?;
    let mut text = || fields.next().and_then(unhex).and_then(|b| String::from_utf8(b).ok());
    let mut env = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        env.push((text()?, text()?));
    }
    let mut args = vec![fd.to_string()];
    while let Some(field) = text() {
        args.push(field);
    }
    Some((parse_args(&args).ok()?, env))
}

/// Parses the shim's arguments (after the executable and [`SHIM_ARG`]): a command to
/// start now, or a prepared shim's socket.
pub fn parse_launch(args: &[String]) -> Result<Launch, String> {
    match args {
        [fd, ready] if ready == READY_ARG => {
            fd.parse().map(Launch::Prepared).map_err(|_| format!("usage: conch __shim <fd> {READY_ARG}"))
        }
        _ => parse_args(args).map(Launch::Now),
    }
}

/// Builds the shim's arguments (after the executable).
pub fn encode_args(
    fd: RawFd,
    term_at: Instant,
    kill_at: Instant,
    kill_after: Duration,
    tty_pgrp: i32,
    child_out: Option<(RawFd, RawFd)>,
    argv: &[String],
) -> Vec<String> {
    let mut args = vec![
        SHIM_ARG.to_string(),
        fd.to_string(),
        term_at.as_nanos().to_string(),
        kill_at.as_nanos().to_string(),
        kill_after.as_millis().to_string(),
        tty_pgrp.to_string(),
        child_out.map_or("-".to_string(), |(o, e)| format!("{o}:{e}")),
        "--".to_string(),
    ];
    args.extend(argv.iter().cloned());
    args
}

/// Parses the shim's arguments (after the executable and [`SHIM_ARG`]).
pub fn parse_args(args: &[String]) -> Result<ShimArgs, String> {
    let bad = || {
        "usage: conch __shim <fd> <term_at_ns> <kill_at_ns> <kill_after_ms> <tty_pgrp> <-|out_fd:err_fd> -- cmd..."
            .to_string()
    };
    let [fd, term_at, kill_at, kill_after, tty_pgrp, child_out, dashes, argv @ ..] = args else {
        return Err(bad());
    };
    if dashes != "--" || argv.is_empty() {
        return Err(bad());
    }
    let child_out = match child_out.as_str() {
        "-" => None,
        pair => {
            let (o, e) = pair.split_once(':').ok_or_else(bad)?;
            Some((o.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?))
        }
    };
    Ok(ShimArgs {
        fd: fd.parse().map_err(|_| bad())?,
        term_at: Instant::from_nanos(term_at.parse().map_err(|_| bad())?),
        kill_at: Instant::from_nanos(kill_at.parse().map_err(|_| bad())?),
        kill_after: Duration::from_millis(kill_after.parse().map_err(|_| bad())?),
        tty_pgrp: tty_pgrp.parse().map_err(|_| bad())?,
        child_out,
        argv: argv.to_vec(),
    })
}

struct Shim {
    link: Option<UnixStream>,
    inbox: Vec<u8>,
    /// When to signal: the rules live in the core, shared with the simulator.
    rules: ShimRules,
    main: Pid,
    main_status: Option<FromShim>,
    me: Pid,
    tty_pgrp: i32,
    /// Whether the shim catches every signal of [`CAUGHT`], so it may send them to its group.
    group_signals: bool,
    /// How to reach etcd for the revoke (the `R` line).
    etcd: Option<EtcdConfig>,
}

/// Runs the shim; returns the process exit code.
pub fn main(launch: Launch) -> i32 {
    let fd = match &launch {
        Launch::Now(args) => args.fd,
        Launch::Prepared(fd) => *fd,
    };
    // SAFETY: the wrapper passed this descriptor, the socket it created for us, open and
    // not close-on-exec; nothing else in this process owns it.
    #[allow(unsafe_code)]
    let link = unsafe { UnixStream::from_raw_fd(fd) };
    // Keep it from the command we are about to start.
    let _ = nix::fcntl::fcntl(link.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let me = getpid();
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "shim: cannot become child subreaper");
    }
    // Signals reach the shim through handlers, never its signal mask: a blocked or
    // ignored signal would be inherited by the command, a handler is reset by exec.
    // SIGCHLD wakes the poll through a pipe; SIGTERM & co. (a group-wide kill, a
    // terminal's ^C) are only noted: the shim stops on the wrapper's order or deadline.
    let Ok((sigpipe, sigpipe_writer)) = UnixStream::pair() else {
        return 70;
    };
    let _ = sigpipe.set_nonblocking(true);
    if signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, sigpipe_writer).is_err() {
        return 70;
    }
    let noted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Without a handler a group-wide signal would stop the shim itself: then walk only.
    let group_signals = CAUGHT.iter().all(|sig| signal_hook::flag::register(*sig as i32, noted.clone()).is_ok());
    let mut inbox = Vec::new();
    let (args, env) = match launch {
        Launch::Now(args) => (args, Vec::new()),
        Launch::Prepared(fd) => match wait_for_start(&link, fd, &mut inbox) {
            Some(start) => start,
            // The wrapper went away (or spoke nonsense) before it held: nothing to stop.
            None => return 0,
        },
    };
    let _ = link.set_nonblocking(true);
    if args.tty_pgrp > 0 {
        hand_terminal(me);
    }
    let mut shim = Shim {
        link: Some(link),
        inbox,
        rules: ShimRules::new(args.term_at, args.kill_at, args.kill_after),
        main: Pid::from_raw(0),
        main_status: None,
        me,
        tty_pgrp: args.tty_pgrp,
        group_signals,
        etcd: None,
    };
    let mut command = Command::new(&args.argv[0]);
    command.args(&args.argv[1..]).envs(env);
    if let Some((out, err)) = args.child_out {
        // SAFETY: the wrapper passed these descriptors, pipes it created for the command's
        // output, open and not close-on-exec; nothing else in this process owns them. The
        // command gets them as its stdout and stderr; ours close when `command` is dropped.
        #[allow(unsafe_code)]
        let (out, err) = unsafe { (OwnedFd::from_raw_fd(out), OwnedFd::from_raw_fd(err)) };
        command.stdout(out).stderr(err);
    }
    let spawned = command.spawn();
    drop(command);
    match spawned {
        Ok(child) => {
            shim.main = Pid::from_raw(child.id() as i32);
            shim.send(FromShim::Started(child.id()));
            // A prepared shim may have read more than its `C` line (the `R` line).
            shim.handle_lines(now());
        }
        Err(e) => {
            tracing::error!(error = %e, cmd = %args.argv[0], "shim: cannot start the command");
            let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
            shim.send(FromShim::Exited(code));
            return 0;
        }
    }
    shim.run(&sigpipe);
    0
}

/// A prepared shim waits (blocking: it has nothing else to do) for its `C` line; what
/// came after it stays in `inbox`. `None`: the socket closed first, or the line was not one.
fn wait_for_start(mut link: &UnixStream, fd: RawFd, inbox: &mut Vec<u8>) -> Option<(ShimArgs, Vec<(String, String)>)> {
    let _ = link.set_nonblocking(false);
    let mut buf = [0u8; 4096];
    // Bounded by the wrapper: it sends one line or closes the socket (its exit does).
    let end = loop {
        if let Some(end) = inbox.iter().position(|b| *b == b'\n') {
            break end;
        }
        match link.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => inbox.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    };
    let line: Vec<u8> = inbox.drain(..=end).collect();
    let start = decode_start(fd, String::from_utf8_lossy(&line).trim());
    if start.is_none() {
        tracing::warn!("shim: unreadable start line");
    }
    start
}

/// Makes `pgrp` the foreground group of the terminal on stdin. A process outside the
/// foreground group may do so only with SIGTTOU blocked; the mask is restored at once (a
/// blocked signal would be inherited by the command).
fn hand_terminal(pgrp: Pid) {
    let mut ttou = nix::sys::signal::SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let _ = ttou.thread_block();
    if let Err(e) = nix::unistd::tcsetpgrp(std::io::stdin(), pgrp) {
        tracing::warn!(error = %e, "shim: cannot hand the terminal over");
    }
    let _ = ttou.thread_unblock();
}

impl Shim {
    fn run(&mut self, sigpipe: &UnixStream) {
        loop {
            let now = now();
            // Deadlines first: they hold whatever the wrapper does.
            self.rules.handle_input(now, ShimInput::Timeout);
            self.perform(now);
            let no_children_left = self.reap();
            let reaped =
                ShimInput::Reaped { main_exited: self.main_status.is_some(), children_left: !no_children_left };
            self.rules.handle_input(now, reaped);
            self.perform(now);
            if self.rules.exit_due() {
                if self.tty_pgrp > 0 {
                    hand_terminal(Pid::from_raw(self.tty_pgrp));
                }
                if let Some(status) = self.main_status {
                    if !self.send(status) {
                        // The wrapper died unheard (or just now): nobody releases but us.
                        self.link = None;
                        self.rules.handle_input(now, ShimInput::LinkClosed);
                    }
                }
                self.revoke();
                return;
            }
            self.wait(now, sigpipe);
        }
    }

    /// Revokes the lease if the rules say so: one bounded call, the TTL frees it otherwise.
    fn revoke(&mut self) {
        let (Some(lease), Some(config)) = (self.rules.poll_revoke(), self.etcd.as_ref()) else { return };
        match shim_revoke::revoke(lease, config) {
            Ok((endpoint, true)) => tracing::info!(lease = %lease, endpoint, "lease-revoked"),
            Ok((endpoint, false)) => tracing::info!(lease = %lease, endpoint, "lease-gone-already"),
            Err(error) => tracing::warn!(lease = %lease, error, "revoke-failed: the lease expires with its TTL"),
        }
    }

    /// Carries out the signals the rules ask for.
    fn perform(&mut self, now: Instant) {
        while let Some(action) = self.rules.poll_action() {
            match action {
                ShimSignal::Term(why) => {
                    let targets = self.signal_all(Signal::SIGTERM);
                    if targets > 0 {
                        // The same field, in the same format, as the wrapper's term-sent.
                        let kill_in = self.rules.kill_by().map_or(Duration::ZERO, |k| k.since(now));
                        let kill_in = conch_core::duration::format(kill_in);
                        tracing::info!(why = %why, processes = targets, kill_in = %kill_in, "term-sent");
                    }
                }
                ShimSignal::Kill => {
                    self.signal_all(Signal::SIGKILL);
                }
            }
        }
    }

    /// Signals every descendant; returns how many there were. A signal the shim catches
    /// goes to the group at once, then the walk finds those outside it.
    fn signal_all(&self, signal: Signal) -> usize {
        let group_first = self.group_signals && CAUGHT.contains(&signal);
        if group_first {
            let _ = kill(Pid::from_raw(-self.me.as_raw()), signal);
        }
        let targets = descendants_in_groups(self.me);
        for (pid, pgrp) in &targets {
            if !(group_first && *pgrp == self.me.as_raw()) {
                let _ = kill(*pid, signal);
            }
        }
        if signal == Signal::SIGKILL && !targets.is_empty() {
            tracing::warn!(processes = targets.len(), "kill-sent");
        }
        targets.len()
    }

    /// Reaps every exited child; returns true when no child is left at all.
    fn reap(&mut self) -> bool {
        for _ in 0..10_000 {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.main => {
                    self.main_status = Some(FromShim::Exited(code))
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == self.main => {
                    self.main_status = Some(FromShim::Signaled(sig as i32))
                }
                Ok(WaitStatus::StillAlive) => return false,
                Ok(_) => {}
                Err(Errno::ECHILD) => return true,
                Err(_) => return false,
            }
        }
        false
    }

    fn wait(&mut self, now: Instant, sigpipe: &UnixStream) {
        let next = self.rules.poll_timeout(now);
        let millis = next.since(now).as_millis().min(60_000) as u16;
        let timeout = PollTimeout::from(millis.max(if next > now { 1 } else { 0 }));
        let link_ready = {
            let mut fds = vec![PollFd::new(sigpipe.as_fd(), PollFlags::POLLIN)];
            if let Some(link) = self.link.as_ref() {
                fds.push(PollFd::new(link.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, timeout);
            fds.get(1).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty())
        };
        let mut drain = [0u8; 256];
        while matches!((&*sigpipe).read(&mut drain), Ok(n) if n > 0) {}
        if link_ready {
            // The poll may have slept long: orders count from when they arrive.
            self.read_link(crate::clock::now());
        }
    }

    fn read_link(&mut self, now: Instant) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        let closed = match link.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                self.inbox.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                false
            }
            Err(_) => true,
        };
        self.handle_lines(now);
        if closed {
            self.link = None;
            self.rules.handle_input(now, ShimInput::LinkClosed);
        }
        self.perform(now);
    }

    /// Handles every whole line read so far.
    fn handle_lines(&mut self, now: Instant) {
        while let Some(end) = self.inbox.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.inbox.drain(..=end).collect();
            self.handle_line(now, String::from_utf8_lossy(&line).trim());
        }
    }

    fn handle_line(&mut self, now: Instant, line: &str) {
        if line.starts_with("R ") {
            match shim_revoke::decode(line) {
                Some((lease, config)) => {
                    self.rules.handle_input(now, ShimInput::Lease(lease));
                    self.etcd = Some(config);
                }
                None => tracing::warn!("shim: unreadable lease line"),
            }
            return;
        }
        match ToShim::decode(line) {
            Some(ToShim::Deadlines { term_at, kill_at }) => {
                self.rules.handle_input(now, ShimInput::Deadlines { term_at, kill_at })
            }
            Some(ToShim::Terminate { kill_at }) => self.rules.handle_input(now, ShimInput::Terminate { kill_at }),
            Some(ToShim::Signal(signal)) => match Signal::try_from(signal).ok() {
                // A passed-on signal goes to each descendant, never to the group (the shim
                // is in it, and SIGHUP to the group also reached the command's own
                // children in the middle of what the command's handler was doing).
                Some(signal) => {
                    for pid in descendants(self.me) {
                        let _ = kill(pid, signal);
                    }
                }
                None => tracing::warn!(line, "shim: unknown signal"),
            },
            None => tracing::warn!(line, "shim: unknown message"),
        }
    }

    /// Writes a message to the wrapper; false when the pipe is closed.
    fn send(&mut self, message: FromShim) -> bool {
        let Some(link) = self.link.as_mut() else { return false };
        let _ = link.set_nonblocking(false);
        let sent = link.write_all(message.encode().as_bytes()).is_ok();
        let _ = link.set_nonblocking(true);
        sent
    }
}

/// Every live descendant of `root`, found through `/proc` (parents before children).
pub fn descendants(root: Pid) -> Vec<Pid> {
    descendants_in_groups(root).into_iter().map(|(pid, _)| pid).collect()
}

/// Every live descendant of `root` with its process group (parents before children).
fn descendants_in_groups(root: Pid) -> Vec<(Pid, i32)> {
    let table = conch_proctable::table();
    conch_proctable::descendants(&table, root.as_raw()).into_iter().map(|s| (Pid::from_raw(s.pid), s.pgrp)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        for child_out in [None, Some((8, 9))] {
            let (term_at, kill_at) = (Instant::from_nanos(10), Instant::from_nanos(20));
            let encoded = encode_args(5, term_at, kill_at, Duration::from_millis(1500), 77, child_out, &argv);
            let parsed = parse_args(&encoded[1..]).unwrap();
            let kill_after = Duration::from_millis(1500);
            let want = ShimArgs { fd: 5, term_at, kill_at, kill_after, tty_pgrp: 77, child_out, argv: argv.clone() };
            assert_eq!(parsed, want);
        }
        assert!(parse_args(&["5".into()]).is_err());
    }

    #[test]
    fn the_start_line_round_trips_with_spaces_and_newlines() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "echo 'a b'\nexit 3".to_string()];
        let args = ShimArgs {
            fd: 9,
            term_at: Instant::from_nanos(10),
            kill_at: Instant::from_nanos(20),
            kill_after: Duration::from_millis(1500),
            tty_pgrp: 77,
            child_out: None,
            argv,
        };
        let env = vec![("CONCH_REV".to_string(), "42".to_string()), ("X".to_string(), "a b\nc=d".to_string())];
        let line = encode_start(&ShimArgs { fd: -1, ..args.clone() }, &env);
        assert!(!line.contains('\n'));
        assert_eq!(decode_start(9, &line), Some((args, env)));
        assert_eq!(decode_start(9, "C 1 zz"), None);
        assert_eq!(decode_start(9, "S 15"), None, "a signal line is no start line");
        assert_eq!(decode_start(9, "R 1"), None);
        assert_eq!(parse_launch(&["5".into(), READY_ARG.into()]), Ok(Launch::Prepared(5)));
    }

    #[test]
    fn the_passed_signals_are_linuxs_numbers() {
        let names = [Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGWINCH];
        assert_eq!(conch_core::supervision::PASSED_SIGNALS, names.map(|s| s as i32));
    }
}
