//! Restart backoff: decorrelated jitter, `next = min(cap, random_between(base, prev × 3))`,
//! base 1 s, cap 30 s, reset once a child has stayed up 60 s.
//!
//! The random draw is an argument (a `u64` from a seeded generator the caller owns), so a
//! sequence is reproducible from its seed.
use std::time::Duration;

/// First delay and floor.
pub const BASE: Duration = Duration::from_secs(1);
/// Largest delay.
pub const CAP: Duration = Duration::from_secs(30);
/// A child up this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The backoff state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    prev: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BASE, CAP)
    }
}

impl Backoff {
    /// A backoff between `base` and `cap` (`cap` is raised to `base` if lower).
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap: cap.max(base), prev: base }
    }

    /// The next delay, from one uniform random draw.
    pub fn next_delay(&mut self, draw: u64) -> Duration {
        let low = self.base.as_millis() as u64;
        let high = (self.prev.as_millis() as u64).saturating_mul(3).max(low);
        let span = high - low + 1;
        let delay = Duration::from_millis(low + draw % span).min(self.cap);
        self.prev = delay;
        delay
    }

    /// Back to the base (a child stayed up long enough).
    pub fn reset(&mut self) {
        self.prev = self.base;
    }
}

/// SplitMix64: a tiny seeded generator for the draws (deterministic per seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next draw.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_base_and_three_times_the_previous_up_to_the_cap() {
        let mut b = Backoff::default();
        let mut rng = SplitMix64::new(7);
        let mut prev = BASE;
        for _ in 0..1000 {
            let d = b.next_delay(rng.next_u64());
            assert!(d >= BASE && d <= CAP && d <= prev * 3, "{d:?} after {prev:?}");
            prev = d;
        }
    }

    #[test]
    fn golden_sequence_and_reset() {
        // draws chosen to hit the top of each range: 1 s → 3 s → 9 s → 27 s → capped 30 s.
        let mut b = Backoff::default();
        let table: &[(u64, u64)] = &[(2_000, 3_000), (8_000, 9_000), (26_000, 27_000), (80_000, 30_000), (0, 1_000)];
        for (draw, want_ms) in table {
            assert_eq!(b.next_delay(*draw), Duration::from_millis(*want_ms), "draw {draw}");
        }
        b.next_delay(2_000);
        b.reset();
        assert_eq!(b.next_delay(u64::MAX), Duration::from_millis(1_000 + u64::MAX % 2_001));
    }

    #[test]
    fn the_generator_is_deterministic() {
        let a: Vec<u64> = std::iter::repeat_with({
            let mut r = SplitMix64::new(42);
            move || r.next_u64()
        })
        .take(5)
        .collect();
        let b: Vec<u64> = std::iter::repeat_with({
            let mut r = SplitMix64::new(42);
            move || r.next_u64()
        })
        .take(5)
        .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
