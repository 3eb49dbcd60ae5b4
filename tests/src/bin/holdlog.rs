//! The child the invariant suite and the functional tester run under conch: appends
//! `S <client> <rev> <pid> <ns>` when it starts (with ` tick=<CONCH_TICK>` under conchd)
//! and `E <client> <rev> <pid> <ns>` when it ends (after `hold_ms`, or at once on
//! SIGTERM/SIGINT/SIGHUP, then with ` by=signal`), to one shared `O_APPEND` file, on
//! `CLOCK_BOOTTIME` — the clock the harness and conch's shim use.
//!
//! Usage: holdlog <file> <client> <hold_ms>   (CONCH_REV from the environment)
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, client, hold_ms] = args.as_slice() else {
        eprintln!("usage: holdlog <file> <client> <hold_ms>");
        std::process::exit(64);
    };
    let hold = Duration::from_millis(hold_ms.parse().unwrap_or(500));
    let rev = std::env::var("CONCH_REV").unwrap_or_else(|_| "0".into());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let pid = std::process::id();
    let append = |kind: &str, extra: &str| {
        let line = format!("{kind} {client} {rev} {pid} {}{extra}\n", conch_tests::mono_ns());
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(file) {
            let _ = f.write_all(line.as_bytes());
        }
    };
    let tick = std::env::var("CONCH_TICK").map(|t| format!(" tick={t}")).unwrap_or_default();
    append("S", &tick);
    let started = Instant::now();
    // Bounded by hold_ms; a signal ends it early.
    while started.elapsed() < hold && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(2));
    }
    append("E", if stop.load(Ordering::Relaxed) { " by=signal" } else { "" });
}
