//! loom model of the shim's signal handling (`driver-etcd/src/shim.rs`, which this model
//! mirrors step for step; the shim itself is single-threaded, its signal handlers are the
//! other "thread"). SIGCHLD's handler writes a byte to a non-blocking self-pipe (a full
//! pipe drops the byte but stays readable); SIGTERM, SIGINT, SIGHUP and SIGQUIT only set
//! the `noted` flag. The loop: deadlines, reap (`WNOHANG`), return once the command is
//! gone, else poll the pipe and the link, drain the pipe, read the link, loop.
//! Checked: no lost wake-up (the loop never sleeps on an empty pipe while an exit waits
//! to be reaped), and a noted signal neither ends the loop nor is needed to end it.
#![cfg(all(test, loom))]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;

/// The pipe's capacity in the model (one byte: the smallest that can be full).
const PIPE_CAPACITY: usize = 1;
/// Loop rounds the model allows (the real loop is bounded by its deadlines).
const ROUNDS_MAX: usize = 4;

struct Shim {
    /// The kernel's view: the command has exited and awaits a reap.
    exited: AtomicBool,
    /// Bytes in the self-pipe.
    pipe: AtomicUsize,
    /// The handler has run (its byte written or dropped on a full pipe).
    handled: AtomicBool,
    /// `signal_hook::flag`: a stop signal was noted.
    noted: AtomicBool,
}

impl Shim {
    fn sigchld(&self) {
        self.exited.store(true, SeqCst);
        let _ = self.pipe.fetch_update(SeqCst, SeqCst, |n| (n < PIPE_CAPACITY).then_some(n + 1));
        self.handled.store(true, SeqCst);
    }

    /// `poll` without a timeout that the model could reach: it returns once the pipe is
    /// readable; sleeping on an empty pipe after the handler ran is a lost wake-up.
    fn poll(&self) {
        loop {
            // `handled` first: if it is set, the handler's byte went in before this load.
            let handled = self.handled.load(SeqCst);
            if self.pipe.load(SeqCst) > 0 {
                return;
            }
            assert!(!handled, "lost wake-up: asleep on an empty pipe with the command exited");
            loom::thread::yield_now();
        }
    }

    fn drain(&self) {
        self.pipe.store(0, SeqCst);
    }

    /// `Shim::run` in the order it has: reap, poll, drain, loop (so every drain is
    /// followed by a reap). `reap_after_drain: false` is the broken order (reap, drain,
    /// poll), kept to show the model catches it.
    fn run(&self, reap_after_drain: bool) -> usize {
        for round in 1..=ROUNDS_MAX {
            if self.exited.load(SeqCst) {
                return round;
            }
            if reap_after_drain {
                self.poll();
                self.drain();
            } else {
                self.drain();
                self.poll();
            }
        }
        panic!("the loop did not see the exit in {ROUNDS_MAX} rounds");
    }
}

fn model(reap_after_drain: bool) {
    loom::model(move || {
        let shim = Arc::new(Shim {
            exited: AtomicBool::new(false),
            pipe: AtomicUsize::new(0),
            handled: AtomicBool::new(false),
            noted: AtomicBool::new(false),
        });
        let (a, b) = (shim.clone(), shim.clone());
        let child = loom::thread::spawn(move || a.sigchld());
        let terminal = loom::thread::spawn(move || b.noted.store(true, SeqCst));
        shim.run(reap_after_drain);
        child.join().expect("the SIGCHLD handler");
        terminal.join().expect("the SIGTERM handler");
        assert!(shim.exited.load(SeqCst), "the loop ended only on the command's exit");
    });
}

#[test]
fn loom_shim_signals_never_lose_a_wakeup() {
    model(true);
}

#[test]
#[should_panic(expected = "lost wake-up")]
fn loom_shim_drain_before_poll_is_caught() {
    model(false);
}
