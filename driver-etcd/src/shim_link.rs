//! The wrapper's end of the shim: start it, send deadlines and orders, read its reports.
//! The shim's pid is signalled only through a [`PidGate`], so a kill racing the reap
//! never reaches a reused pid. A [`Spare`] is a shim started ahead, on the machine's
//! `Output::Prepare` (a run that may wait has begun): the command then starts through it
//! with one line on its socket instead of an exec of this binary (07-performance B2). A
//! command with an output label (a cron job) writes into pipes whose lines
//! [`crate::job_output`] logs with the job's name; it never goes through a spare.
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

use conch_core::shim_pipe::{FromShim, ToShim};
use conch_core::{ChildStatus, Input, Instant, SpawnSpec};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc::UnboundedSender;

use crate::connect::EtcdConfig;
use crate::events::DriverEvent;
use crate::reap::{wait_exited, PidGate};
use crate::shim::{encode_args, encode_start, ShimArgs, READY_ARG, SHIM_ARG};

/// A shim started ahead (`conch __shim <fd> ready`), waiting for its command. Dropped
/// unused, it closes the socket, so the shim exits at once, and reaps it (bounded).
pub struct Spare {
    started: Option<(std::process::Child, StdUnixStream)>,
}

/// How long an unused spare may take to exit once its socket is closed (it is only
/// reading the socket, or still starting) before it is SIGKILLed.
const SPARE_EXIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Spare {
    /// Starts a prepared shim.
    pub fn start() -> std::io::Result<Spare> {
        let (ours, theirs) = shim_socket()?;
        let fd = theirs.as_raw_fd().to_string();
        let spawned = Command::new(SELF_EXE).arg0("conch").args([SHIM_ARG, &fd, READY_ARG]).spawn();
        drop(theirs);
        Ok(Spare { started: Some((spawned?, ours)) })
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        let Some((mut child, ours)) = self.started.take() else { return };
        drop(ours);
        let end = std::time::Instant::now() + SPARE_EXIT;
        while std::time::Instant::now() < end {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Our process group when it is the foreground group of the terminal on stdin (the
/// command then gets the terminal for its life), else 0.
fn tty_pgrp() -> i32 {
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
        return 0;
    }
    let ours = nix::unistd::getpgrp();
    match nix::unistd::tcgetpgrp(stdin) {
        Ok(foreground) if foreground == ours => ours.as_raw(),
        _ => 0,
    }
}

/// The running executable, whatever became of its path.
const SELF_EXE: &str = "/proc/self/exe";

/// A pipe for a command's output: the read end (ours, close-on-exec) and the write end
/// (inherited by the shim, which gives it to the command).
fn output_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    inheritable(&write)?;
    Ok((read, write))
}

/// Clears close-on-exec on `fd`, so the shim inherits it.
fn inheritable(fd: &impl AsRawFd) -> std::io::Result<()> {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).map(drop).map_err(std::io::Error::from)
}

/// The wrapper's end and the shim's end of a shim socket: the shim's survives exec, ours
/// does not.
fn shim_socket() -> std::io::Result<(StdUnixStream, StdUnixStream)> {
    let (ours, theirs) = StdUnixStream::pair()?;
    inheritable(&theirs)?;
    Ok((ours, theirs))
}

/// A running shim.
pub struct ShimLink {
    pid: PidGate,
    writer: OwnedWriteHalf,
}

impl ShimLink {
    /// Starts `spec`'s command through `spare` (a command without an output label), or
    /// through a new `conch __shim`; its reports arrive as [`DriverEvent`]s. With a lease
    /// in `spec`, the shim is told it and how to reach etcd (`etcd`), to revoke it should
    /// this wrapper die (issue 16.1).
    pub fn spawn(
        spec: &SpawnSpec,
        etcd: &EtcdConfig,
        events: &UnboundedSender<DriverEvent>,
        spare: Option<Spare>,
    ) -> std::io::Result<ShimLink> {
        // A labelled command's spare (none is asked for) is dropped: it exits, reaped.
        let spare = spare.filter(|_| spec.output_label.is_none());
        match spare.and_then(|mut s| s.started.take()) {
            Some((mut child, ours)) => {
                let args = ShimArgs {
                    fd: -1,
                    term_at: spec.term_at,
                    kill_at: spec.kill_at,
                    kill_after: spec.kill_after,
                    tty_pgrp: tty_pgrp(),
                    child_out: None,
                    argv: spec.argv.clone(),
                };
                let mut line = encode_start(&args, &spec.env);
                line.push('\n');
                match (&ours).write_all(line.as_bytes()) {
                    Ok(()) => Self::attach(spec, etcd, events, child, ours),
                    // The spare is gone (killed while it waited): a new shim, as without one.
                    Err(e) => {
                        tracing::debug!(error = %e, "the prepared shim is gone");
                        let _ = child.kill();
                        let _ = child.wait();
                        Self::spawn_new(spec, etcd, events)
                    }
                }
            }
            None => Self::spawn_new(spec, etcd, events),
        }
    }

    fn spawn_new(
        spec: &SpawnSpec,
        etcd: &EtcdConfig,
        events: &UnboundedSender<DriverEvent>,
    ) -> std::io::Result<ShimLink> {
        let (ours, theirs) = shim_socket()?;
        // This very binary, even once its file is replaced or deleted (a package upgrade
        // under a running conchd): the kernel resolves /proc/self/exe to the running image,
        // so the shim always speaks the wrapper's protocol version.
        let exe = SELF_EXE;
        // A labelled command's stdout and stderr are pipes the shim hands to it alone: the
        // shim's own log lines go to our stderr, never into the job's output.
        let pipes = match spec.output_label {
            Some(_) => Some((output_pipe()?, output_pipe()?)),
            None => None,
        };
        let child_out = pipes.as_ref().map(|((_, out), (_, err))| (out.as_raw_fd(), err.as_raw_fd()));
        let args = encode_args(
            theirs.as_raw_fd(),
            spec.term_at,
            spec.kill_at,
            spec.kill_after,
            tty_pgrp(),
            child_out,
            &spec.argv,
        );
        let mut command = Command::new(exe);
        command.arg0("conch").args(args).envs(spec.env.iter().cloned());
        let spawned = command.spawn();
        drop(theirs);
        // Our copies of the write ends close here: each pipe ends when the command (and
        // whatever inherited its output) is gone.
        let readers = pipes.map(|((out, _), (err, _))| (out, err));
        let child = spawned?;
        if let (Some(job), Some((out, err))) = (&spec.output_label, readers) {
            crate::job_output::forward(job, std::fs::File::from(out), std::fs::File::from(err))?;
        }
        Self::attach(spec, etcd, events, child, ours)
    }

    /// Tells a started shim the lease, and reads its reports.
    fn attach(
        spec: &SpawnSpec,
        etcd: &EtcdConfig,
        events: &UnboundedSender<DriverEvent>,
        mut child: std::process::Child,
        ours: StdUnixStream,
    ) -> std::io::Result<ShimLink> {
        if let Some(lease) = spec.lease {
            // Into the socket's buffer before the shim reads anything (a few KiB at most).
            let mut line = crate::shim_revoke::encode(lease, etcd);
            line.push('\n');
            if let Err(e) = (&ours).write_all(line.as_bytes()) {
                tracing::warn!(error = %e, "cannot tell the shim the lease: the TTL frees it if we die");
            }
        }
        let pid = Pid::from_raw(child.id() as i32);
        let gate = PidGate::new(pid);
        ours.set_nonblocking(true)?;
        let (reader, writer) = tokio::net::UnixStream::from_std(ours)?.into_split();
        let events = events.clone();
        let (child_id, reaper) = (spec.child, gate.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let mut reported = false;
            while let Ok(Some(line)) = lines.next_line().await {
                let status = match FromShim::decode(&line) {
                    Some(FromShim::Started(pid)) => {
                        let _ = events.send(DriverEvent::Input(Input::ChildStarted(child_id, pid)));
                        continue;
                    }
                    Some(report) => report.status().unwrap_or(ChildStatus::Vanished),
                    None => {
                        tracing::warn!(line, "unknown message from the shim");
                        continue;
                    }
                };
                // The shim says so only once the command and every process of it are gone:
                // the release need not wait for the shim's own exit (07-performance B2).
                if !reported {
                    reported = true;
                    let _ = events.send(DriverEvent::Input(Input::ChildExit(child_id, status)));
                }
            }
            // The shim exits right after its report; reap it so no zombie is left, closing
            // the gate first so no kill_group can reach the freed pid.
            let _ = tokio::task::spawn_blocking(move || {
                wait_exited(pid);
                reaper.reap(|_| child.wait())
            })
            .await;
            if !reported {
                let _ = events.send(DriverEvent::Input(Input::ChildExit(child_id, ChildStatus::Vanished)));
            }
        });
        Ok(ShimLink { pid: gate, writer })
    }

    /// Sends new deadlines.
    pub async fn deadlines(&mut self, term_at: Instant, kill_at: Instant) {
        self.send(ToShim::Deadlines { term_at, kill_at }).await;
    }

    /// Orders a termination.
    pub async fn terminate(&mut self, kill_at: Instant) {
        self.send(ToShim::Terminate { kill_at }).await;
    }

    /// Passes a signal on to the command's group, as itself.
    pub async fn pass_signal(&mut self, signal: i32) {
        self.send(ToShim::Signal(signal)).await;
    }

    /// SIGKILLs the shim's whole process group (the shim did not act in time); nothing
    /// once the shim is reaped.
    pub fn kill_group(&self) {
        self.pid.signal(|pid| {
            let _ = killpg(pid, Signal::SIGKILL);
        });
    }

    async fn send(&mut self, message: ToShim) {
        if let Err(e) = self.writer.write_all(message.encode().as_bytes()).await {
            tracing::warn!(error = %e, "cannot reach the shim");
        }
    }
}
