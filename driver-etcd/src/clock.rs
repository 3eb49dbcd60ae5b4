//! The one clock of the real driver: `CLOCK_BOOTTIME`, shared by the wrapper and the shim.
//!
//! Boot time keeps counting through a system suspend, like etcd's lease clock, so a
//! deadline sent across the shim pipe means the same instant in both processes and a
//! resumed machine kills at once instead of trusting a deadline that has passed.
use conch_core::Instant;
use nix::time::{clock_gettime, ClockId};

/// Now, on `CLOCK_BOOTTIME`.
pub fn now() -> Instant {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => {
            let nanos = (ts.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec() as u64);
            Instant::from_nanos(nanos)
        }
        // CLOCK_BOOTTIME exists on every Linux since 2.6.39; never reached in practice.
        Err(_) => Instant::from_nanos(0),
    }
}

/// The tokio instant for a core instant (for sleeping until it).
pub fn to_tokio(at: Instant) -> tokio::time::Instant {
    let now_core = now();
    let now_tokio = tokio::time::Instant::now();
    if at >= now_core {
        now_tokio + at.since(now_core)
    } else {
        now_tokio
    }
}
