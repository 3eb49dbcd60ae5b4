//! SimNet: the links between clients and etcd, and etcd's availability.
//!
//! Each client has one link with its own latency range. Messages of one gRPC stream keep
//! their order; different streams (unary answers, the keepalive stream, the watch stream)
//! may overtake each other, as they can over one HTTP/2 connection — so a put's answer and
//! the watch event of that put can arrive in either order. A direction can be cut until some instant: a request sent
//! into a cut is lost; an answer sent into a cut is lost too (the caller's timeout
//! answers for it); watch events are held and arrive when the cut heals, or the stream
//! breaks if the cut lasted long. etcd itself can be down (calls refused, watches
//! broken) or stalled like during a leader change (calls and events held).
use conch_core::backoff::SplitMix64;
use conch_core::{WatchEvent, WatchId};

/// A cut longer than this breaks watch streams instead of holding their events.
pub const WATCH_HOLD_MAX_NS: u64 = 5_000_000_000;

/// The gRPC streams from etcd to a client: order is kept within one, not across them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Answers to unary calls.
    Unary = 0,
    /// The lease keepalive stream.
    KeepAlive = 1,
    /// The watch stream (every watch of the client multiplexed on it).
    Watch = 2,
}

/// One client's link.
#[derive(Debug, Default)]
pub struct Link {
    /// One-way latency range (ns).
    latency: (u64, u64),
    /// Client → etcd cut until then (ns).
    up_cut_until: u64,
    /// etcd → client cut until then (ns).
    down_cut_until: u64,
    /// When the current down cut began (ns).
    down_cut_since: Option<u64>,
    /// Last arrival scheduled client → etcd.
    last_up: u64,
    /// Last arrival scheduled etcd → client, per stream.
    last_down: [u64; 3],
    /// Watch events held by a down cut.
    held: Vec<(WatchId, WatchEvent)>,
    /// etcd refuses this client's unary calls until then (ns); keepalives pass.
    unary_refused_until: u64,
}

/// The network and etcd's availability.
#[derive(Debug)]
pub struct SimNet {
    /// Per client.
    links: Vec<Link>,
    /// etcd refuses everything until then (ns).
    pub etcd_down_until: u64,
    /// etcd holds everything until then (ns).
    pub stalled_until: u64,
    rng: SplitMix64,
}

impl SimNet {
    /// Links with latencies drawn from `latency_us`.
    pub fn new(seed: u64, clients: usize, latency_us: (u64, u64)) -> SimNet {
        let mut rng = SplitMix64::new(seed ^ 0x0E7_11E7);
        let links = (0..clients)
            .map(|_| {
                let lo = latency_us.0 + rng.next_u64() % (latency_us.1 - latency_us.0 + 1);
                let hi = lo + (latency_us.1 - latency_us.0) / 2;
                Link { latency: (lo * 1000, hi * 1000), ..Link::default() }
            })
            .collect();
        SimNet { links, etcd_down_until: 0, stalled_until: 0, rng }
    }

    fn draw(&mut self, client: usize) -> u64 {
        let (lo, hi) = self.links[client].latency;
        lo + self.rng.next_u64() % (hi - lo + 1)
    }

    /// When a request sent now by `client` reaches etcd, or `None` when it is lost.
    pub fn up(&mut self, client: usize, now: u64) -> Option<u64> {
        if now < self.links[client].up_cut_until {
            return None;
        }
        let at = (now + self.draw(client)).max(self.links[client].last_up);
        self.links[client].last_up = at;
        Some(at)
    }

    /// When a message sent now by etcd on `stream` reaches `client`, or `None` when it is lost.
    pub fn down(&mut self, client: usize, now: u64, stream: Stream) -> Option<u64> {
        if self.down_cut(client, now) {
            return None;
        }
        let at = (now + self.draw(client)).max(self.links[client].last_down[stream as usize]);
        self.links[client].last_down[stream as usize] = at;
        Some(at)
    }

    /// Whether `client` → etcd is cut now.
    pub fn up_cut(&self, client: usize, now: u64) -> bool {
        now < self.links[client].up_cut_until
    }

    /// The one-way latency range of `client`'s link (ns).
    pub fn latency(&self, client: usize) -> (u64, u64) {
        self.links[client].latency
    }

    /// Whether etcd → `client` is cut now.
    pub fn down_cut(&self, client: usize, now: u64) -> bool {
        now < self.links[client].down_cut_until
    }

    /// Cuts `client` until `until` in the chosen directions.
    pub fn cut(&mut self, client: usize, now: u64, until: u64, up: bool, down: bool) {
        let link = &mut self.links[client];
        if up {
            link.up_cut_until = link.up_cut_until.max(until);
        }
        if down {
            if now >= link.down_cut_until || link.down_cut_since.is_none() {
                link.down_cut_since = Some(now);
            }
            link.down_cut_until = link.down_cut_until.max(until);
        }
    }

    /// Holds a watch event sent into a down cut, for the heal.
    pub fn hold(&mut self, client: usize, id: WatchId, event: WatchEvent) {
        self.links[client].held.push((id, event));
    }

    /// etcd refuses `client`'s unary calls until `until` (its keepalive stream carries on).
    pub fn refuse_unary(&mut self, client: usize, until: u64) {
        let link = &mut self.links[client];
        link.unary_refused_until = link.unary_refused_until.max(until);
    }

    /// Whether etcd refuses `client`'s unary calls at `now`.
    pub fn unary_refused(&self, client: usize, now: u64) -> bool {
        now < self.links[client].unary_refused_until
    }

    /// Whether every cut of `client` is over at `now`.
    pub fn healed(&self, client: usize, now: u64) -> bool {
        now >= self.links[client].up_cut_until && now >= self.links[client].down_cut_until
    }

    /// Ends every cut of `client` now; returns the held watch events and whether the down
    /// cut lasted so long that the streams broke instead.
    pub fn heal(&mut self, client: usize, now: u64) -> (Vec<(WatchId, WatchEvent)>, bool) {
        let link = &mut self.links[client];
        let broke = link.down_cut_since.take().is_some_and(|since| now.saturating_sub(since) > WATCH_HOLD_MAX_NS);
        link.up_cut_until = link.up_cut_until.min(now);
        link.down_cut_until = link.down_cut_until.min(now);
        (std::mem::take(&mut link.held), broke)
    }

    /// Whether etcd answers at all now.
    pub fn etcd_down(&self, now: u64) -> bool {
        now < self.etcd_down_until
    }

    /// Whether etcd holds calls now.
    pub fn stalled(&self, now: u64) -> bool {
        now < self.stalled_until
    }
}
