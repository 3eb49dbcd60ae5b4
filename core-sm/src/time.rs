//! Our own monotonic instant: nanoseconds on the driver's clock, with no `now()`.
//!
//! The real driver feeds `CLOCK_BOOTTIME` readings, the simulator its virtual clock. All
//! arithmetic saturates, so no input can make the core panic on overflow.
use std::time::Duration;

/// A point on the driver's monotonic clock, in nanoseconds from an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `nanos` nanoseconds after the clock's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time.
    pub fn plus(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at the origin.
    pub fn minus(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(5);
        assert_eq!(t.minus(Duration::from_secs(1)), Instant::from_nanos(0));
        assert_eq!(Instant::from_nanos(u64::MAX).plus(Duration::from_secs(1)).as_nanos(), u64::MAX);
        assert_eq!(t.since(Instant::from_nanos(10)), Duration::ZERO);
        assert_eq!(Instant::from_nanos(10).since(t), Duration::from_nanos(5));
    }
}
