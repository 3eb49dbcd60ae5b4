//! A child's pid, good for signals only until the child is reaped.
//!
//! A process waited for on a blocking thread (the shim in `shim_link`, a hook in `hooks`)
//! is signalled by pid from the runtime thread. Once `wait()` has reaped it, its pid is
//! free and the kernel may hand it to an unrelated process, which a late `killpg` would
//! hit. So the waiting thread first waits *without* reaping (`waitid(WNOWAIT)`: the zombie
//! keeps the pid), then reaps under the [`PidGate`]'s lock and closes it; a signal is sent
//! only under the same lock while the gate is open. A signal therefore always reaches the
//! child or its zombie, never a reused pid (the `loom_` models check the protocol).
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use crate::sync::{Arc, Mutex};

/// The shared pid: `Some` until reaped.
#[derive(Clone)]
pub(crate) struct PidGate {
    pid: Arc<Mutex<Option<Pid>>>,
}

impl PidGate {
    /// A gate open on `pid`.
    pub(crate) fn new(pid: Pid) -> PidGate {
        PidGate { pid: Arc::new(Mutex::new(Some(pid))) }
    }

    /// Runs `signal` with the pid if the child is not reaped yet; false if it is.
    pub(crate) fn signal(&self, signal: impl FnOnce(Pid)) -> bool {
        let Ok(guard) = self.pid.lock() else { return false };
        match *guard {
            Some(pid) => {
                signal(pid);
                true
            }
            None => false,
        }
    }

    /// Reaps under the lock and closes the gate: `reap` gets the pid while it is still
    /// the zombie's (for a last group-wide kill, then the `wait()` that frees it).
    pub(crate) fn reap<T>(&self, reap: impl FnOnce(Option<Pid>) -> T) -> T {
        match self.pid.lock() {
            Ok(mut guard) => reap(guard.take()),
            Err(poisoned) => reap(poisoned.into_inner().take()),
        }
    }
}

/// Blocks until `pid` has exited, leaving it a zombie (not reaped). Gives up after a
/// bounded number of interruptions or on an error (the caller's `wait()` then decides).
pub(crate) fn wait_exited(pid: Pid) {
    for _ in 0..1_000 {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The gate against a model kernel: `freed` is set when the pid is reaped; a signal
    //! sent after that would hit whatever process got the pid next.
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use loom::sync::Arc;
    use nix::unistd::Pid;

    use super::PidGate;

    struct Kernel {
        freed: AtomicBool,
        signals: AtomicUsize,
    }

    impl Kernel {
        fn new() -> Arc<Kernel> {
            Arc::new(Kernel { freed: AtomicBool::new(false), signals: AtomicUsize::new(0) })
        }
        fn killpg(&self, _pid: Pid) {
            assert!(!self.freed.load(SeqCst), "a signal hit a reaped (reusable) pid");
            self.signals.fetch_add(1, SeqCst);
        }
        fn wait(&self) {
            self.freed.store(true, SeqCst);
        }
    }

    /// `shim_link`: the runtime thread's `kill_group` against the reader task's
    /// blocking `wait()` on the shim.
    #[test]
    fn loom_shim_kill_never_hits_a_reaped_pid() {
        loom::model(|| {
            let kernel = Kernel::new();
            let gate = PidGate::new(Pid::from_raw(42));
            let (k, g) = (kernel.clone(), gate.clone());
            let waiter = loom::thread::spawn(move || {
                // wait_exited: the shim is a zombie now, its pid still taken.
                g.reap(|_| k.wait());
            });
            let sent = gate.signal(|pid| kernel.killpg(pid));
            waiter.join().expect("the waiter");
            assert!(kernel.freed.load(SeqCst));
            assert_eq!(kernel.signals.load(SeqCst), usize::from(sent));
            // After the reap, a kill is refused, never sent.
            assert!(!gate.signal(|pid| kernel.killpg(pid)));
        });
    }

    /// `hooks`: the runtime thread's `kill` (twice: an order and a retry) against the
    /// blocking thread's last group-wide kill and reap, then its exit event.
    #[test]
    fn loom_hook_kill_never_hits_a_reaped_pid() {
        loom::model(|| {
            let kernel = Kernel::new();
            let exits = Arc::new(AtomicUsize::new(0));
            let gate = PidGate::new(Pid::from_raw(43));
            let (k, g, e) = (kernel.clone(), gate.clone(), exits.clone());
            let waiter = loom::thread::spawn(move || {
                g.reap(|pid| {
                    if let Some(pid) = pid {
                        k.killpg(pid);
                    }
                    k.wait();
                });
                e.fetch_add(1, SeqCst);
            });
            gate.signal(|pid| kernel.killpg(pid));
            gate.signal(|pid| kernel.killpg(pid));
            waiter.join().expect("the waiter");
            assert_eq!(exits.load(SeqCst), 1, "one exit event");
        });
    }

    /// The protocol before the gate (reap, then kill by a pid kept aside): loom finds the
    /// kill that lands after the reap. Kept so the model shows it can fail.
    #[test]
    #[should_panic(expected = "reaped")]
    fn loom_ungated_kill_is_caught() {
        loom::model(|| {
            let kernel = Kernel::new();
            let k = kernel.clone();
            let waiter = loom::thread::spawn(move || k.wait());
            kernel.killpg(Pid::from_raw(44));
            waiter.join().expect("the waiter");
        });
    }
}
