//! SimHost: one client's machine. The wrapper (or conchd), the shim and the child are
//! separate simulated processes, so a fault can SIGKILL or SIGSTOP the wrapper alone or
//! freeze the whole host. The host has its own clocks: a monotonic clock whose rate is
//! off by `drift_ppm`, and a wall clock that can also be stepped.
use std::collections::BTreeMap;

use conch_core::shim_rules::ShimRules;
use conch_core::{ChildId, ChildStatus, HookId, HookKind, Instant};

/// Unix time (ms) at simulated time zero.
pub const EPOCH_MS: i64 = 1_800_000_000_000;

/// The simulated instant at which a host without drift or offset reads `unix_s`.
pub fn sim_time_of_unix(unix_s: i64) -> u64 {
    ((unix_s * 1000 - EPOCH_MS).max(0) as u64) * 1_000_000
}

/// A child process and its shim.
#[derive(Debug)]
pub struct SimChild {
    /// The shim's rules (the same machine the real shim runs).
    pub rules: ShimRules,
    /// Bumped on every shim reschedule; stale shim events are dropped.
    pub shim_gen: u64,
    /// The fencing token it was given.
    pub rev: i64,
    /// `job@tick` for cron runs, empty for holders.
    pub label: String,
    /// Simulated start (ns).
    pub start: u64,
    /// Ignores SIGTERM (SIGKILL ends it).
    pub stubborn: bool,
    /// SIGSTOPped until then (ns): a pending SIGTERM waits, SIGKILL still works.
    pub stopped_until: u64,
    /// Holds until told to stop (liveness phase).
    pub forever: bool,
    /// Identifies its self-exit event.
    pub gen: u64,
    /// The session's `kill_at` (the child's share) the wrapper last told the shim (ns).
    pub told_kill_at: u64,
    /// The session's `term_at` the wrapper last told the shim (host clock, ns).
    pub told_term_at: u64,
    /// The client's session lease at the start (the world's book of grants).
    pub lease: Option<i64>,
    /// When its wrapper was SIGKILLed (ns), if that happened while it lived.
    pub wrapper_gone: Option<u64>,
    /// Its stop's index in the outcome's `stops`, once its shim signalled it.
    pub stop: Option<usize>,
}

/// A hook process (`--on-acquire`, `--on-lose`, `--fence`) in its own process group.
#[derive(Debug)]
pub struct SimHook {
    /// Which hook.
    pub kind: HookKind,
    /// The wrapper incarnation that started it.
    pub incarnation: u64,
    /// The fencing token of the hold it serves (`CONCH_REV`).
    pub rev: i64,
    /// Simulated start (ns).
    pub start: u64,
    /// How it ends by itself.
    pub status: ChildStatus,
    /// Identifies its self-exit event.
    pub gen: u64,
    /// The session lease of its run, if one was granted.
    pub lease: Option<i64>,
}

/// One host.
#[derive(Debug, Default)]
pub struct SimHost {
    /// Clock-rate error (ppm, either sign).
    pub drift_ppm: i64,
    /// Wall clock step (ms).
    pub wall_offset_ms: i64,
    /// The wrapper is SIGSTOPped until then (ns).
    pub wrapper_stopped_until: u64,
    /// The whole host is frozen until then (ns).
    pub frozen_until: u64,
    /// Live children by id.
    pub children: BTreeMap<ChildId, SimChild>,
    /// Live hook processes by id.
    pub hooks: BTreeMap<HookId, SimHook>,
}

impl SimHost {
    /// The host's monotonic clock at simulated time `t`.
    pub fn mono(&self, t: u64) -> Instant {
        if self.drift_ppm == 0 {
            return Instant::from_nanos(t);
        }
        // In 64 bits while the product fits (every run: hours of nanoseconds), which
        // rounds exactly as the 128-bit form; 128 bits past that.
        let skew = match i64::try_from(t).ok().and_then(|t| t.checked_mul(self.drift_ppm)) {
            Some(product) => (product / 1_000_000) as i128,
            None => (t as i128 * self.drift_ppm as i128) / 1_000_000,
        };
        Instant::from_nanos((t as i128 + skew).max(0) as u64)
    }

    /// The first simulated instant at which the host's clock reads `at` or later.
    pub fn sim_time_of(&self, at: Instant) -> u64 {
        if self.drift_ppm == 0 {
            return at.as_nanos();
        }
        let scale = 1_000_000 + self.drift_ppm;
        // 64 bits while they suffice (the same quotient as 128 bits), else 128.
        let closed = i64::try_from(at.as_nanos())
            .ok()
            .and_then(|h| h.checked_mul(1_000_000))
            .and_then(|h| h.checked_add(scale - 1))
            .map(|n| (n / scale) as i128);
        let closed = closed.unwrap_or_else(|| {
            let h = at.as_nanos() as i128;
            (h * 1_000_000 + scale as i128 - 1) / scale as i128
        });
        let mut t = closed.clamp(0, u64::MAX as i128) as u64;
        // The closed form can be off by one either way after rounding.
        for _ in 0..4 {
            if t > 0 && self.mono(t - 1) >= at {
                t -= 1;
            } else if self.mono(t) < at {
                t += 1;
            } else {
                break;
            }
        }
        t
    }

    /// Unix ms on the host's wall clock at `t`.
    pub fn wall_ms(&self, t: u64) -> i64 {
        EPOCH_MS + (self.mono(t).as_nanos() / 1_000_000) as i64 + self.wall_offset_ms
    }

    /// Whether the wrapper cannot run at `t` (stopped, or its host frozen).
    pub fn wrapper_blocked(&self, t: u64) -> bool {
        t < self.wrapper_stopped_until || t < self.frozen_until
    }

    /// When the wrapper can run again.
    pub fn wrapper_resumes(&self) -> u64 {
        self.wrapper_stopped_until.max(self.frozen_until)
    }

    /// Whether the shim and the children cannot run at `t`.
    pub fn frozen(&self, t: u64) -> bool {
        t < self.frozen_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drifted_clock_maps_back_to_simulated_time() {
        for drift_ppm in [-2000, -1, 0, 1, 500, 2000] {
            let host = SimHost { drift_ppm, ..SimHost::default() };
            for t in [0u64, 1, 999, 1_000_000_007, 123_456_789_012] {
                let back = host.sim_time_of(host.mono(t));
                assert!(back <= t && host.mono(back) >= host.mono(t), "drift {drift_ppm} t {t} back {back}");
                assert!(back == 0 || host.mono(back - 1) < host.mono(t), "drift {drift_ppm} t {t}: not the first");
                let later = host.sim_time_of(Instant::from_nanos(host.mono(t).as_nanos() + 1));
                assert!(host.mono(later).as_nanos() > host.mono(t).as_nanos());
            }
        }
    }

    #[test]
    fn sixty_four_bit_clock_math_rounds_as_the_wide_form() {
        for drift_ppm in [-2000i64, -7, 1, 333, 2000] {
            let host = SimHost { drift_ppm, ..SimHost::default() };
            for t in [0u64, 1, 999_999, 1_000_000_007, 123_456_789_012, 9_000_000_000_000_000_000] {
                let wide = (t as i128 + (t as i128 * drift_ppm as i128) / 1_000_000).max(0) as u64;
                assert_eq!(host.mono(t).as_nanos(), wide, "drift {drift_ppm} t {t}");
                let back = host.sim_time_of(Instant::from_nanos(wide));
                assert!(host.mono(back).as_nanos() >= wide && (back == 0 || host.mono(back - 1).as_nanos() < wide));
            }
        }
    }
}
