//! The wrapper's end of the shim: start it, send deadlines and orders, read its reports.
//! The shim's pid is signalled only through a [`PidGate`], so a kill racing the reap
//! never reaches a reused pid. A command with an output label (a cron job) writes into
//! pipes whose lines [`crate::job_output`] logs with the job's name.
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::{Command, Stdio};

use conch_core::shim_pipe::{FromShim, ToShim};
use conch_core::{ChildStatus, Input, Instant, SpawnSpec};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc::UnboundedSender;

use crate::events::DriverEvent;
use crate::reap::{wait_exited, PidGate};
use crate::shim::encode_args;

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

/// A running shim.
pub struct ShimLink {
    pid: PidGate,
    writer: OwnedWriteHalf,
}

impl ShimLink {
    /// Starts `conch __shim` for `spec`; its reports arrive as [`DriverEvent`]s.
    pub fn spawn(spec: &SpawnSpec, events: &UnboundedSender<DriverEvent>) -> std::io::Result<ShimLink> {
        let (ours, theirs) = StdUnixStream::pair()?;
        // The shim's end must survive exec; ours must not.
        fcntl(theirs.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).map_err(std::io::Error::from)?;
        let exe = std::env::current_exe()?;
        let args = encode_args(theirs.as_raw_fd(), spec.term_at, spec.kill_at, spec.kill_after, tty_pgrp(), &spec.argv);
        let mut command = Command::new(exe);
        command.args(args).envs(spec.env.iter().cloned());
        if spec.output_label.is_some() {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let spawned = command.spawn();
        drop(theirs);
        let mut child = spawned?;
        if let Some(job) = &spec.output_label {
            crate::job_output::forward(job, child.stdout.take(), child.stderr.take())?;
        }
        let pid = Pid::from_raw(child.id() as i32);
        let gate = PidGate::new(pid);
        ours.set_nonblocking(true)?;
        let (reader, writer) = tokio::net::UnixStream::from_std(ours)?.into_split();
        let events = events.clone();
        let (child_id, reaper) = (spec.child, gate.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let mut status = ChildStatus::Vanished;
            while let Ok(Some(line)) = lines.next_line().await {
                match FromShim::decode(&line) {
                    Some(FromShim::Started(pid)) => {
                        let _ = events.send(DriverEvent::Input(Input::ChildStarted(child_id, pid)));
                    }
                    Some(report) => status = report.status().unwrap_or(ChildStatus::Vanished),
                    None => tracing::warn!(line, "unknown message from the shim"),
                }
            }
            // The shim exits right after its report; reap it so no zombie is left, closing
            // the gate first so no kill_group can reach the freed pid.
            let _ = tokio::task::spawn_blocking(move || {
                wait_exited(pid);
                reaper.reap(|_| child.wait())
            })
            .await;
            let _ = events.send(DriverEvent::Input(Input::ChildExit(child_id, status)));
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
