//! Processes the bench starts: each in a process group of its own, registered by pid, waited
//! for exactly (a blocking `waitpid` on a helper thread, so a wall time is not rounded to a
//! polling step) and bounded; [`Procs::kill_all`] SIGKILLs every registered group, every
//! descendant found in `/proc` and every adopted pid (an orphan `etcdctl` left behind), and
//! reaps them. [`on_stop_signal`] does the same from a thread of its own when the bench
//! gets SIGINT or SIGTERM (the tools run in groups of their own: a ^C reaches only the
//! bench) and makes [`stopping`] true, so the measures end at their next wait. Also the
//! `/proc` figures B6 and B7 read: peak RSS, PSS, CPU time.
use std::cell::RefCell;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Every pid the bench is responsible for.
#[derive(Default)]
pub struct Procs {
    roots: RefCell<Vec<i32>>,
    adopted: RefCell<Vec<i32>>,
}

/// How a waited process ended: its code, or 128 + the signal.
pub type Code = i32;

impl Procs {
    /// Starts `cmd` in a new process group; returns its pid.
    pub fn spawn(&self, cmd: &mut Command) -> Result<i32, String> {
        if stopping() {
            return Err("stopping".to_string());
        }
        let child = cmd.process_group(0).spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
        let pid = child.id() as i32;
        self.roots.borrow_mut().push(pid);
        register(pid);
        Ok(pid)
    }

    /// A process started by one of ours that may outlive it (it is killed at the end too).
    pub fn adopt(&self, pid: i32) {
        self.adopted.borrow_mut().push(pid);
        register(pid);
    }

    /// Waits for `pid` (one of ours) at most `limit`; SIGKILLs it past that. Returns the
    /// code and when it was reaped, or `None` on timeout.
    pub fn wait(&self, pid: i32, limit: Duration) -> Option<(Code, Instant)> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let status = waitpid(Pid::from_raw(pid), None);
            let _ = tx.send((status, Instant::now()));
        });
        match rx.recv_timeout(limit) {
            Ok((Ok(WaitStatus::Exited(_, code)), at)) => Some((code, at)),
            Ok((Ok(WaitStatus::Signaled(_, sig, _)), at)) => Some((128 + sig as i32, at)),
            Ok(_) => None,
            Err(_) => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = rx.recv_timeout(Duration::from_secs(2));
                None
            }
        }
    }

    /// Sends `signal` to one of ours.
    pub fn signal(&self, pid: i32, signal: Signal) {
        let _ = kill(Pid::from_raw(pid), signal);
    }

    /// SIGKILLs everything started or adopted so far and reaps it.
    pub fn kill_all(&self) {
        let roots: Vec<i32> = self.roots.borrow_mut().drain(..).collect();
        let adopted: Vec<i32> = self.adopted.borrow_mut().drain(..).collect();
        let table = conch_proctable::table();
        for root in &roots {
            let mut doomed: Vec<i32> = conch_proctable::descendants(&table, *root).iter().map(|s| s.pid).collect();
            doomed.push(*root);
            let _ = kill(Pid::from_raw(-root), Signal::SIGKILL);
            for pid in doomed {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for pid in &adopted {
            if crate::alive(*pid) {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
        }
        for root in roots {
            // Reaped already by a waiter thread, or now (it was SIGKILLed: no hang).
            let _ = waitpid(Pid::from_raw(root), Some(WaitPidFlag::WNOHANG));
            let end = Instant::now() + Duration::from_secs(2);
            while crate::alive(root) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
                let _ = waitpid(Pid::from_raw(root), Some(WaitPidFlag::WNOHANG));
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Every pid started or adopted in this run, for the stop-signal thread.
static STARTED: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static STOPPING: AtomicBool = AtomicBool::new(false);

fn register(pid: i32) {
    if let Ok(mut started) = STARTED.lock() {
        started.push(pid);
    }
}

/// Whether a SIGINT or SIGTERM asked the bench to stop.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// Sleeps `d`, or less when the bench is stopping.
pub fn nap(d: Duration) {
    let end = Instant::now() + d;
    while !stopping() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
    }
}

/// On SIGINT or SIGTERM: SIGKILL every group and process started so far (the main thread
/// then stops etcd and removes the scratch files on its way out).
pub fn on_stop_signal() {
    let Ok(mut signals) =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
    else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            STOPPING.store(true, Ordering::Relaxed);
            eprintln!("conch-bench: stopping: killing what it started");
            let pids: Vec<i32> = STARTED.lock().map(|p| p.clone()).unwrap_or_default();
            for pid in pids {
                if crate::alive(pid) {
                    let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    });
}

/// The live children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    conch_proctable::table().into_iter().filter(|s| s.ppid == pid).map(|s| s.pid).collect()
}

/// CPU time of `pid` so far: its live threads' run time in ns (`/proc/<pid>/task/*/schedstat`,
/// finer than the 10 ms ticks of `stat`; a thread that exited is no longer counted), and
/// user + system of `stat` with its reaped children.
pub fn cpu(pid: i32) -> Option<(Duration, Duration)> {
    let f = conch_proctable::stat(pid)?;
    let tick = |i: usize| f.number(i);
    // Fields 14..17 of stat(5), counted here from the state (field 3) as 0.
    let hz = clock_ticks();
    let own_ticks = tick(11) + tick(12);
    let with_children = own_ticks + tick(13) + tick(14);
    let mut run_ns = 0u64;
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()) {
            run_ns += ns;
            threads += 1;
        }
    }
    let own = if threads > 0 { Duration::from_nanos(run_ns) } else { Duration::from_secs_f64(own_ticks as f64 / hz) };
    Some((own, Duration::from_secs_f64(with_children as f64 / hz)))
}

/// `/proc` counts CPU time in USER_HZ, which the kernel fixes at 100 on every Linux
/// architecture (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    100.0
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`) in bytes.
pub fn status_kb(pid: i32, field: &str) -> Option<u64> {
    kb_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, field)
}

/// `Pss` of `/proc/<pid>/smaps_rollup` in bytes.
pub fn pss(pid: i32) -> Option<u64> {
    kb_field(&std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?, "Pss")
}

fn kb_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Threads of `pid`.
pub fn threads(pid: i32) -> Option<u64> {
    status_kb_raw(pid, "Threads")
}

fn status_kb_raw(pid: i32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_fields() {
        assert_eq!(kb_field("VmHWM:\t  1000 kB\nVmRSS:\t 900 kB\n", "VmRSS"), Some(900 * 1024));
        assert_eq!(kb_field("Pss_Anon: 3 kB\nPss: 7 kB\n", "Pss"), Some(7 * 1024));
    }
}
