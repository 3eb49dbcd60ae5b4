//! Fault sites inside the simulated driver (FoundationDB calls them buggify points): named
//! places where, per seed, the simulator pushes a legal but rare behaviour. Each seed
//! enables some sites with a chance per passage; every firing lands in the trace and in
//! the outcome, so the checkers can see it.
use conch_core::backoff::SplitMix64;

/// A fault site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Site {
    /// A keepalive answer delayed to just before the holder's deadline.
    KeepaliveLate,
    /// A request committed but its answer lost: the caller sees a timeout.
    ResponseLost,
    /// The server cancels a watch (the client sees it broken).
    WatchCancelled,
    /// A compaction at the current revision just before a watch starts.
    CompactBeforeWatch,
    /// A call lost on its way to etcd (never applied): the caller sees a timeout.
    RequestLost,
    /// A holder's host freezes just as a range answer reaches it, longer than the
    /// stale-answer bound, and its key is deleted meanwhile: the "you hold" it handles on
    /// thawing is stale (the pairing that found the stale-answer bug; drawn from its own
    /// stream, see [`crate::options`]).
    FreezeOnAnswer,
    /// A keepalive answer delayed to just before the deadline, and the client's requests
    /// cut from then on: the pairing that exposes a deadline counted from the answer's
    /// arrival instead of the request's send time (own stream, as FreezeOnAnswer).
    KeepaliveLateThenCut,
    /// A daemon's write attempt times out for the client while etcd applies it later,
    /// unanswered (before or after the retry on another member): see `world/cron.rs`
    /// (own stream, several members only).
    LateApply,
}

impl Site {
    /// Every site.
    pub const ALL: [Site; 4] =
        [Site::KeepaliveLate, Site::ResponseLost, Site::WatchCancelled, Site::CompactBeforeWatch];

    /// The name in options and traces.
    pub const fn as_str(self) -> &'static str {
        match self {
            Site::KeepaliveLate => "keepalive-late",
            Site::ResponseLost => "response-lost",
            Site::WatchCancelled => "watch-cancelled",
            Site::CompactBeforeWatch => "compact-before-watch",
            Site::RequestLost => "request-lost",
            Site::FreezeOnAnswer => "freeze-on-answer",
            Site::KeepaliveLateThenCut => "keepalive-late-then-cut",
            Site::LateApply => "late-apply",
        }
    }
}

/// The sites of one seed, with their own random stream (so enabling a site does not
/// shift the draws of the fault plan or the workload).
#[derive(Debug)]
pub struct Buggify {
    chances: [u64; 8],
    rng: SplitMix64,
    on: bool,
}

impl Buggify {
    /// Sites from `(site, per mille)` pairs.
    pub fn new(seed: u64, sites: &[(Site, u64)]) -> Buggify {
        let mut chances = [0; 8];
        for (site, permille) in sites {
            chances[*site as usize] = *permille;
        }
        Buggify { chances, rng: SplitMix64::new(seed ^ 0xB066_1F1E), on: true }
    }

    /// Switches every site off (the liveness phase is clean).
    pub fn switch_off(&mut self) {
        self.on = false;
    }

    /// Whether `site` fires at this passage.
    pub fn fires(&mut self, site: Site) -> bool {
        let chance = self.chances[site as usize];
        self.on && chance > 0 && self.rng.next_u64() % 1000 < chance
    }

    /// A draw in `0..n` for the firing's details.
    pub fn draw(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }
}
