//! The event loop's watchdog: a seed that spins at one simulated instant (a machine that
//! keeps asking to be woken at an instant already past) or passes the per-seed event
//! limit ends with a verdict naming the busiest client, instead of hanging `conch sim`.

/// Events one seed may take (a busy seed takes a few hundred thousand; a 120 s mixed
/// seed of ten clients about one million): past this the run stops as stuck.
pub const EVENTS_MAX: u64 = 20_000_000;
/// Events at one simulated instant before the run is called stuck (a handoff storm at one
/// instant takes a few hundred).
pub const SAME_INSTANT_MAX: u64 = 100_000;

/// Counts events per instant and per client.
#[derive(Debug)]
pub struct Watchdog {
    instant: u64,
    same: u64,
    total: u64,
    /// Events at the current instant, per client; the last slot is the world's own.
    busy: Vec<u64>,
}

/// Why a run was stopped: what was seen, and the busiest slot (a client index, or the
/// number of clients for the world's own events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// What was seen.
    pub what: String,
    /// The busiest slot at that instant.
    pub busiest: usize,
    /// Its events at that instant.
    pub events: u64,
}

impl Watchdog {
    /// A watchdog over `clients` clients.
    pub fn new(clients: usize) -> Watchdog {
        Watchdog { instant: u64::MAX, same: 0, total: 0, busy: vec![0; clients + 1] }
    }

    /// Counts one event at `when` for `client` (`None`: the world's own); `Some` once the
    /// run must stop.
    pub fn event(&mut self, when: u64, client: Option<usize>) -> Option<Stuck> {
        if when != self.instant {
            (self.instant, self.same) = (when, 0);
            self.busy.iter_mut().for_each(|n| *n = 0);
        }
        self.same += 1;
        self.total += 1;
        let slot = client.unwrap_or(self.busy.len() - 1).min(self.busy.len() - 1);
        self.busy[slot] += 1;
        if self.same > SAME_INSTANT_MAX {
            return Some(self.stuck(format!("{} events at {when} ns without time moving", self.same)));
        }
        if self.total > EVENTS_MAX {
            return Some(self.stuck(format!("more than {EVENTS_MAX} events (the per-seed limit)")));
        }
        None
    }

    fn stuck(&self, what: String) -> Stuck {
        let (busiest, events) = self.busy.iter().copied().enumerate().max_by_key(|(_, n)| *n).unwrap_or((0, 0));
        Stuck { what, busiest, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spin_at_one_instant_stops_and_names_the_client() {
        let mut dog = Watchdog::new(3);
        for t in 0..1000 {
            assert_eq!(dog.event(t, Some((t % 3) as usize)), None);
        }
        let mut stuck = None;
        for k in 0..=SAME_INSTANT_MAX {
            let client = if k % 10 == 0 { None } else { Some(2) };
            stuck = stuck.or(dog.event(5_000, client));
        }
        let stuck = stuck.expect("a spin must stop the run");
        assert_eq!(stuck.busiest, 2);
        assert!(stuck.what.contains("without time moving"), "{}", stuck.what);
    }

    #[test]
    fn time_moving_resets_the_count() {
        let mut dog = Watchdog::new(1);
        for t in 0..10u64 {
            for _ in 0..SAME_INSTANT_MAX {
                assert_eq!(dog.event(t, Some(0)), None);
            }
        }
    }
}
