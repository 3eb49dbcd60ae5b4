//! `--watch` clients: the core's [`WhoWatch`] machine (the one `conch elect --watch` runs)
//! reading and watching the office's prefix in [`SimEtcd`](crate::etcd::SimEtcd) under the
//! run's faults — etcd down (every stream breaks, reads are refused), stalled (reads and
//! events held), compaction (the watch ends), and a link cut of its own drawn from its own
//! stream (reads time out, the stream breaks).
//!
//! A watcher only reads, and draws from its own generator, so the other clients' runs are
//! the same with or without it. Its driver performs the outputs as `query.rs` does: one
//! read at a time (a `List` asked for while one is out is made after its answer), a watch
//! replaced on every `Watch`, dropped on every `ListAfter`. Each printed line is recorded
//! with the holder the store had at the read it came from, computed here from the keys
//! (the lowest create revision), not by `who.rs`; at the second convergence look each
//! watcher's last line is recorded with the store's holder then (see
//! [`crate::check_watch`]).
use conch_core::backoff::SplitMix64;
use conch_core::who::{WhoWatch, WhoWatchInput, WhoWatchOutput};
use conch_core::{HoldSpec, Kv, Revision};

use super::{ns, Ev, World, CALL_TIMEOUT_NS};
use crate::record::{WatchLook, WatchPrint};

/// Watchers of an office: one printing `--who` lines, one `--value-only` lines.
pub(super) const WATCHERS: usize = 2;
/// A watcher whose first read failed (it exits, as `conch elect --watch` does) is started
/// again this long after, as an operator's loop would.
const RESTART_NS: u64 = 1_000_000_000;

/// What happens to a watcher.
#[derive(Debug)]
pub(super) enum WatcherEv {
    /// Its machine starts (again).
    Start,
    /// A `ListAfter`'s delay passed: read now.
    List,
    /// Its read reaches etcd.
    Read,
    /// A read's answer (with the store's holder then) reaches it.
    Answer(WhoWatchInput, Option<i64>),
    /// An event of the watch of this generation reaches it.
    Event(u64, WhoWatchInput),
    /// Its link is cut until this instant.
    Cut(u64),
}

/// One watcher client.
#[derive(Debug)]
pub(super) struct Watcher {
    spec: HoldSpec,
    /// The office's prefix (`spec.prefix()`, made once: every write looks at it).
    prefix: String,
    value_only: bool,
    machine: Option<WhoWatch>,
    incarnation: u64,
    /// Bumped whenever its watch is replaced or dropped: events of an older one are dropped.
    gen: u64,
    /// The open watch's next revision.
    sub: Option<i64>,
    reading: bool,
    read_again: bool,
    /// The store's holder at the read being handed to the machine.
    truth: Option<i64>,
    cut_until: u64,
    latency: u64,
    rng: SplitMix64,
}

impl Watcher {
    /// The watchers of `office` for the seed (none for a run without an office).
    pub(super) fn for_office(seed: u64, office: &HoldSpec, latency_us: (u64, u64), on: bool) -> Vec<Watcher> {
        let n = if on { WATCHERS } else { 0 };
        (0..n)
            .map(|w| {
                let mut rng = SplitMix64::new(seed ^ 0x3A7C_4E55 ^ (w as u64) << 32);
                let latency = 1000 * (latency_us.0 + rng.next_u64() % (latency_us.1 - latency_us.0 + 1));
                Watcher {
                    spec: office.clone(),
                    prefix: office.prefix(),
                    value_only: w % 2 == 1,
                    machine: None,
                    incarnation: 0,
                    gen: 0,
                    sub: None,
                    reading: false,
                    read_again: false,
                    truth: None,
                    cut_until: 0,
                    latency,
                    rng,
                }
            })
            .collect()
    }
}

/// The office's holder in `kvs`: the lowest create revision.
fn holder_of(kvs: &[Kv]) -> Option<i64> {
    kvs.iter().map(|kv| kv.create_rev.0).min()
}

impl World {
    /// Starts every watcher, and draws its link cuts over the safety phase (only when the
    /// seed has faults: a fault-free run stays fault-free).
    pub(super) fn start_watchers(&mut self) {
        let faults = !self.opts.faults.is_empty();
        for w in 0..self.watchers.len() {
            let jitter = self.watchers[w].rng.next_u64() % 50_000_000;
            self.at(jitter, Ev::Watcher(w, 0, WatcherEv::Start));
            let gap = ns(self.opts.fault_gap).max(1_000_000_000) * 4;
            let mut at = 1_500_000_000 + self.watchers[w].rng.next_u64() % gap;
            while faults && at < self.out.heal_at {
                let hold = 100_000_000 + self.watchers[w].rng.next_u64() % (2 * ns(self.opts.ttl));
                let until = (at + hold).min(self.out.heal_at);
                self.at(at, Ev::Watcher(w, 0, WatcherEv::Cut(until)));
                at += gap / 2 + self.watchers[w].rng.next_u64() % (gap + 1);
            }
        }
    }

    pub(super) fn watcher_step(&mut self, w: usize, inc: u64, ev: WatcherEv) {
        let current = self.watchers[w].incarnation;
        match ev {
            WatcherEv::Start => {
                let x = &mut self.watchers[w];
                x.incarnation += 1;
                x.machine = Some(WhoWatch::new(x.spec.clone(), false).with_value_only(x.value_only));
                (x.gen, x.sub, x.reading, x.read_again) = (x.gen + 1, None, false, false);
                self.watcher_pump(w);
            }
            WatcherEv::Cut(until) => {
                let x = &mut self.watchers[w];
                x.cut_until = x.cut_until.max(until);
                self.watcher_stream_broken(w);
            }
            _ if inc != current => {}
            WatcherEv::List => self.watcher_list(w),
            WatcherEv::Read => self.watcher_read(w, inc),
            WatcherEv::Answer(input, truth) => {
                let x = &mut self.watchers[w];
                x.reading = false;
                x.truth = truth;
                self.watcher_feed(w, input);
                if std::mem::take(&mut self.watchers[w].read_again) {
                    self.watcher_list(w);
                }
            }
            WatcherEv::Event(gen, input) if gen == self.watchers[w].gen => self.watcher_feed(w, input),
            WatcherEv::Event(..) => {}
        }
    }

    fn watcher_feed(&mut self, w: usize, input: WhoWatchInput) {
        if let Some(m) = self.watchers[w].machine.as_mut() {
            m.handle_input(input);
        }
        self.watcher_pump(w);
    }

    /// Performs the machine's outputs in poll order.
    fn watcher_pump(&mut self, w: usize) {
        let inc = self.watchers[w].incarnation;
        for _ in 0..conch_core::drive::DRAIN_OUTPUTS_MAX {
            let Some(output) = self.watchers[w].machine.as_mut().and_then(WhoWatch::poll_output) else { return };
            match output {
                WhoWatchOutput::Print(line) => {
                    self.trace("watch-print", format_args!("\"watcher\":{w},\"line\":{:?}", line));
                    let x = &self.watchers[w];
                    let print = WatchPrint { watcher: w, incarnation: inc, at: self.now, line, truth: x.truth };
                    self.out.watch_prints.push(print);
                }
                WhoWatchOutput::List => self.watcher_list(w),
                WhoWatchOutput::ListAfter { delay, .. } => {
                    let x = &mut self.watchers[w];
                    (x.gen, x.sub) = (x.gen + 1, None);
                    self.at(self.now + ns(delay), Ev::Watcher(w, inc, WatcherEv::List));
                }
                WhoWatchOutput::Watch { start_rev } => {
                    let x = &mut self.watchers[w];
                    x.gen += 1;
                    if self.net.etcd_down(self.now) || x.cut_until > self.now {
                        let (at, gen) = (self.now + x.latency, x.gen);
                        self.at(at, Ev::Watcher(w, inc, WatcherEv::Event(gen, WhoWatchInput::WatchFailed)));
                    } else {
                        x.sub = Some(start_rev.0);
                        self.notify_watcher(w);
                    }
                }
                WhoWatchOutput::Fail => {
                    self.trace("watch-exit", format_args!("\"watcher\":{w}"));
                    self.watchers[w].machine = None;
                    self.at(self.now + RESTART_NS, Ev::Watcher(w, inc, WatcherEv::Start));
                    return;
                }
            }
        }
        // A machine that never stops asking is a bug of the machine, not of the world.
        debug_assert!(
            false,
            "a WhoWatch drain never ends: {DRAIN_MAX} outputs",
            DRAIN_MAX = conch_core::drive::DRAIN_OUTPUTS_MAX
        );
    }

    /// One read at a time, as the real driver awaits each.
    fn watcher_list(&mut self, w: usize) {
        let x = &mut self.watchers[w];
        if x.reading {
            x.read_again = true;
            return;
        }
        x.reading = true;
        let (inc, at) = (x.incarnation, self.now + x.latency);
        self.at(at, Ev::Watcher(w, inc, WatcherEv::Read));
    }

    fn watcher_read(&mut self, w: usize, inc: u64) {
        if self.net.stalled(self.now) {
            let until = self.net.stalled_until;
            return self.at(until, Ev::Watcher(w, inc, WatcherEv::Read));
        }
        let x = &self.watchers[w];
        let answer = if x.cut_until > self.now {
            // Lost into the cut: the call's timeout answers.
            (self.now + CALL_TIMEOUT_NS, WhoWatchInput::ListFailed, None)
        } else if self.net.etcd_down(self.now) {
            (self.now + x.latency, WhoWatchInput::ListFailed, None)
        } else {
            let kvs = self.etcd.range(&x.spec.prefix());
            let truth = holder_of(&kvs);
            (self.now + x.latency, WhoWatchInput::Listed { rev: self.etcd.revision(), kvs }, truth)
        };
        self.at(answer.0, Ev::Watcher(w, inc, WatcherEv::Answer(answer.1, answer.2)));
    }

    /// Sends watcher `w` what its open watch has not seen (called on every new revision).
    fn notify_watcher(&mut self, w: usize) {
        let x = &self.watchers[w];
        let Some(next) = x.sub else { return };
        if self.net.stalled(self.now) || self.net.etcd_down(self.now) || next > self.etcd.revision().0 {
            return;
        }
        let (inc, gen, at) = (x.incarnation, x.gen, self.now + x.latency);
        let input = match self.etcd.changed_since(&x.prefix, Revision(next)) {
            Ok(false) => None,
            Ok(true) => Some(WhoWatchInput::Changed),
            Err(_) => Some(WhoWatchInput::WatchEnded),
        };
        let ended = input == Some(WhoWatchInput::WatchEnded);
        self.watchers[w].sub = if ended { None } else { Some(self.etcd.revision().0 + 1) };
        if let Some(input) = input {
            self.at(at, Ev::Watcher(w, inc, WatcherEv::Event(gen, input)));
        }
    }

    /// Sends every watcher what its watch has not seen.
    pub(super) fn notify_watchers(&mut self) {
        for w in 0..self.watchers.len() {
            self.notify_watcher(w);
        }
    }

    /// Watcher `w`'s stream breaks (etcd went down, its link was cut).
    pub(super) fn watcher_stream_broken(&mut self, w: usize) {
        let x = &mut self.watchers[w];
        if x.sub.take().is_some() {
            let (inc, gen, at) = (x.incarnation, x.gen, self.now + x.latency);
            self.at(at, Ev::Watcher(w, inc, WatcherEv::Event(gen, WhoWatchInput::WatchEnded)));
        }
    }

    /// The second convergence look: each watcher's last line against the store's holder.
    pub(super) fn watchers_look(&mut self) {
        let truth = self.watchers.first().map(|x| holder_of(&self.etcd.range(&x.spec.prefix()))).unwrap_or(None);
        for w in 0..self.watchers.len() {
            let last = self.out.watch_prints.iter().rev().find(|p| p.watcher == w).map(|p| p.line.clone());
            let alive = self.watchers[w].machine.is_some();
            let look = WatchLook { watcher: w, at: self.now, truth, truth_since: self.office_truth.1, last, alive };
            self.out.watch_looks.push(look);
        }
    }

    /// Notes when the office's holder in the store last changed (for the look's bound).
    pub(super) fn track_office_truth(&mut self) {
        let Some(x) = self.watchers.first() else { return };
        let truth = self.etcd.lowest_create_rev(&x.prefix);
        if truth != self.office_truth.0 {
            self.office_truth = (truth, self.now);
        }
    }
}
