//! Which etcd member a client talks to: one pinned endpoint at a time, as etcd's Go client
//! does, and when a call is tried again on another.
//!
//! etcd-client's balancer spreads calls over every endpoint and fails a call when the
//! endpoint it picked refuses (etcd-client issues 12 and 39): with one member of three
//! down, a third of conch's calls failed. This machine replaces it. Both drivers run it:
//! the real one per process, the simulator per client over its simulated members.
//!
//! * **Inputs**: the outcome of every attempt on an endpoint ([`Endpoints::attempt_done`],
//!   for unary calls) and of every stream there ([`Endpoints::handle_outcome`]: a keepalive
//!   stream that errs or stays silent, a watch that breaks).
//! * **Outputs**: the endpoint to use ([`Endpoints::pinned`]), the next attempt of a call
//!   or the answer to hand to the core ([`Next`]), and [`Switch`]es: the driver re-opens
//!   its keepalive stream and watches on the new endpoint (watches from the last revision
//!   they delivered, so nothing is missed or seen twice) and drops its connection to the
//!   old one (a channel in reconnect backoff answered "connection refused" for 20–40 s
//!   after its member was back).
//!
//! # Rules
//!
//! * A failure — `Unavailable` (refused, a connect error, a reset), no answer within the
//!   attempt timeout, or an answer saying the member has no leader — on the pinned
//!   endpoint moves the pin to the next endpoint in round-robin order that has not failed
//!   within [`RECENT_FAILURE`]; if all have, to the one whose last failure is oldest. A
//!   failure reported for an endpoint that is no longer pinned (an answer that was already
//!   under way) only marks it failed. Any answer from an endpoint clears its mark.
//! * A call gets one budget (the driver's call timeout; the dial timeout for a grant).
//!   Each attempt is bounded by `budget / endpoints` (at least [`ATTEMPT_MIN`]), so trying
//!   every endpoint once fits in the budget: a live member is found within the budget when
//!   one exists. A failed attempt is tried again at once on the newly pinned endpoint; once
//!   every endpoint has failed in this call (a round), the next round starts after
//!   [`ROUND_PAUSE`] — members that refuse or have no leader answer fast, and an election
//!   or a restarting member is over in about a second. Rounds go on while at least
//!   [`ROUND_PAUSE`] + [`ATTEMPT_MIN`] of the budget is left, at most [`ROUNDS_MAX`];
//!   then the failure goes to the core, which retries at its own pace. With one endpoint a
//!   call is one attempt with the whole budget, as before failover existed.
//!
//! # Why a retried attempt is safe
//!
//! An attempt that timed out may have been applied. Every request conch sends is a read,
//! idempotent (revoke, delete, a plain put of the same value), or a transaction with a
//! compare: a repeated put-if-absent finds the key with our own lease and the hold takes
//! it as ours; a repeated claim finds our own claim and, if this daemon never claimed that
//! tick before, runs it (nobody else can: at most once holds, and the tick is not missed). A repeated grant leaves one lease with no key that expires
//! after its TTL. The deadline rule stays the only safety argument: however long failover
//! takes, a session that is not renewed stops its child before its lease can expire.
use std::time::Duration;

use crate::output::Event;
use crate::sabotage::Sabotage;
use crate::time::Instant;

/// An endpoint that failed this recently is tried only when every other one has too.
pub const RECENT_FAILURE: Duration = Duration::from_secs(5);

/// No attempt gets less time than this (a loaded etcd answers in tens of milliseconds).
pub const ATTEMPT_MIN: Duration = Duration::from_millis(300);

/// The pause between two rounds of a call over every endpoint.
pub const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// Rounds of one call at most (with the pause, a refusing cluster is asked for about 2 s
/// at the most; the budget usually ends it first).
pub const ROUNDS_MAX: usize = 10;

/// Bounds the endpoint list (the same bound the CLI enforces).
pub const ENDPOINTS_MAX: usize = 64;

/// How an attempt on an endpoint ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The member answered (an etcd error that is about the request counts: it answered).
    Answered,
    /// Refused, reset, or any other `Unavailable`: nothing reached a working member.
    Unavailable,
    /// No answer within the attempt's timeout (a member cut off or frozen).
    TimedOut,
    /// The member answered that it has no leader (cut off from its peers).
    NoLeader,
}

impl Outcome {
    /// Whether this outcome says the member cannot serve us now.
    pub fn failed(self) -> bool {
        self != Outcome::Answered
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Unavailable => "unavailable",
            Outcome::TimedOut => "timed-out",
            Outcome::NoLeader => "no-leader",
        }
    }
}

/// The pin moved: re-open streams on `to`, drop the connection to `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The endpoint given up.
    pub from: usize,
    /// The endpoint to use from now on.
    pub to: usize,
}

/// One attempt of a call: where to send it and how long to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint to send it to.
    pub endpoint: usize,
    /// Give up on this attempt after this long.
    pub timeout: Duration,
    /// Attempts made before this one.
    pub tried: usize,
    /// When the call began (its budget counts from here).
    pub began: Instant,
    /// Wait this long before sending (the pause between rounds).
    pub delay: Duration,
    /// The whole call's budget.
    pub budget: Duration,
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Hand the answer (or the failure) to the core.
    Deliver,
    /// Send the call again.
    Retry(Attempt),
}

/// The endpoint machine of one client.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pinned: usize,
    /// When each endpoint last failed, cleared by an answer.
    failed_at: Vec<Option<Instant>>,
    switches: u64,
    events: std::collections::VecDeque<Event>,
    sabotage: Sabotage,
}

impl Endpoints {
    /// A machine over `count` endpoints (at least one; more than [`ENDPOINTS_MAX`] are cut).
    pub fn new(count: usize) -> Endpoints {
        let count = count.clamp(1, ENDPOINTS_MAX);
        Endpoints {
            pinned: 0,
            failed_at: vec![None; count],
            switches: 0,
            events: Default::default(),
            sabotage: Sabotage::None,
        }
    }

    /// The same machine with a deliberate bug (the simulator's checker tests only).
    pub fn with_sabotage(mut self, sabotage: Sabotage) -> Endpoints {
        self.sabotage = sabotage;
        self
    }

    /// How many endpoints there are.
    pub fn count(&self) -> usize {
        self.failed_at.len()
    }

    /// The endpoint every call and stream uses now.
    pub fn pinned(&self) -> usize {
        self.pinned
    }

    /// How many times the pin moved.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// The outcome of anything done on `endpoint` (a stream's error or silence, an
    /// answer). Returns the switch to carry out, if the pin moved.
    pub fn handle_outcome(&mut self, now: Instant, endpoint: usize, outcome: Outcome) -> Option<Switch> {
        let slot = self.failed_at.get_mut(endpoint)?;
        if !outcome.failed() {
            *slot = None;
            return None;
        }
        *slot = Some(now);
        if endpoint != self.pinned || self.count() == 1 || self.sabotage == Sabotage::StayOnFailedEndpoint {
            return None;
        }
        let to = self.choose_next(now);
        // choose_next never returns the pinned endpoint when there are others.
        assert_ne!(to, self.pinned, "a failed pinned endpoint is left for another");
        let switch = Switch { from: self.pinned, to };
        self.pinned = to;
        self.switches += 1;
        self.events.push_back(
            Event::warn("endpoint-switched")
                .with("from", switch.from)
                .with("to", switch.to)
                .with("why", outcome.as_str()),
        );
        Some(switch)
    }

    /// The first attempt of a call with `budget`.
    pub fn begin(&self, now: Instant, budget: Duration) -> Attempt {
        Attempt {
            endpoint: self.pinned,
            timeout: self.attempt_timeout(budget, budget),
            tried: 0,
            began: now,
            delay: Duration::ZERO,
            budget,
        }
    }

    /// An attempt ended with `outcome`: feeds it to the pin, then says whether the call is
    /// sent again (and where) or its answer goes to the core. The switch, if any, is
    /// returned beside it.
    pub fn attempt_done(&mut self, now: Instant, attempt: Attempt, outcome: Outcome) -> (Next, Option<Switch>) {
        let switch = self.handle_outcome(now, attempt.endpoint, outcome);
        if !outcome.failed() {
            return (Next::Deliver, switch);
        }
        let tried = attempt.tried + 1;
        let left = attempt.budget.saturating_sub(now.since(attempt.began));
        // One endpoint: one attempt (nowhere else to go; the core retries).
        if self.count() == 1 || tried >= self.count() * ROUNDS_MAX {
            return (Next::Deliver, switch);
        }
        let delay = if tried.is_multiple_of(self.count()) { ROUND_PAUSE } else { Duration::ZERO };
        if left < delay + ATTEMPT_MIN {
            return (Next::Deliver, switch);
        }
        let next = Attempt {
            endpoint: self.pinned,
            timeout: self.attempt_timeout(attempt.budget, left - delay),
            tried,
            began: attempt.began,
            delay,
            budget: attempt.budget,
        };
        (Next::Retry(next), switch)
    }

    /// Next log event (drain after every input).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// An equal share of the budget per endpoint, at least [`ATTEMPT_MIN`], never more
    /// than what is left.
    fn attempt_timeout(&self, budget: Duration, left: Duration) -> Duration {
        let share = budget / self.count() as u32;
        share.max(ATTEMPT_MIN).min(left)
    }

    /// The next endpoint after the pinned one, in round-robin order, that has not failed
    /// recently; if every other one has, the one whose failure is oldest.
    fn choose_next(&self, now: Instant) -> usize {
        let count = self.count();
        let others = (1..count).map(|k| (self.pinned + k) % count);
        let fresh = |i: &usize| self.failed_at[*i].is_none_or(|at| now.since(at) >= RECENT_FAILURE);
        if let Some(i) = others.clone().find(fresh) {
            return i;
        }
        // Every other endpoint failed recently: the oldest failure first (ties: ring order).
        others.min_by_key(|i| self.failed_at[*i].map_or(0, |at| at.as_nanos())).unwrap_or(self.pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn one_endpoint_never_switches_and_gets_the_whole_budget() {
        let mut e = Endpoints::new(1);
        let a = e.begin(at(0), Duration::from_secs(2));
        assert_eq!((a.endpoint, a.timeout), (0, Duration::from_secs(2)));
        assert_eq!(e.attempt_done(at(10), a, Outcome::Unavailable), (Next::Deliver, None));
        assert_eq!(e.pinned(), 0);
    }

    #[test]
    fn a_refused_endpoint_is_left_and_the_call_tried_on_the_next() {
        let mut e = Endpoints::new(3);
        let a = e.begin(at(0), Duration::from_secs(3));
        assert_eq!(a.timeout, Duration::from_secs(1));
        let (next, switch) = e.attempt_done(at(1), a, Outcome::Unavailable);
        assert_eq!(switch, Some(Switch { from: 0, to: 1 }));
        let Next::Retry(b) = next else { panic!("retried") };
        assert_eq!((b.endpoint, b.tried), (1, 1));
        assert_eq!(e.attempt_done(at(2), b, Outcome::Answered), (Next::Deliver, None));
        assert_eq!(e.pinned(), 1);
        assert_eq!(e.poll_event().map(|ev| ev.kind), Some("endpoint-switched"));
    }

    #[test]
    fn silent_endpoints_use_up_the_budget_once_each_then_the_failure_is_delivered() {
        let mut e = Endpoints::new(3);
        let mut a = e.begin(at(0), Duration::from_secs(3));
        let mut seen = vec![a.endpoint];
        for step in 1..=3 {
            match e.attempt_done(at(step * 1000), a, Outcome::TimedOut).0 {
                Next::Retry(b) => {
                    assert!(b.timeout <= Duration::from_secs(3) - Duration::from_millis(step * 1000));
                    seen.push(b.endpoint);
                    a = b;
                }
                Next::Deliver => break,
            }
        }
        assert_eq!(seen, vec![0, 1, 2]);
    }

    /// An election: every member answers "no leader" for a second. The call goes round
    /// the members, pausing between rounds, and lands once a leader is back.
    #[test]
    fn fast_failures_go_round_again_after_a_pause_until_the_budget_ends() {
        let mut e = Endpoints::new(3);
        let mut a = e.begin(at(0), Duration::from_secs(2));
        let mut now = 0;
        let mut rounds_paused = 0;
        let delivered = loop {
            now += a.delay.as_millis() as u64 + 5;
            let outcome = if now < 1_000 { Outcome::NoLeader } else { Outcome::Answered };
            match e.attempt_done(at(now), a, outcome).0 {
                Next::Retry(b) => {
                    rounds_paused += usize::from(b.delay == ROUND_PAUSE);
                    assert_eq!(b.delay.is_zero(), !b.tried.is_multiple_of(3), "{b:?}");
                    a = b;
                }
                Next::Deliver => break outcome,
            }
        };
        assert_eq!(delivered, Outcome::Answered);
        assert!((4..=5).contains(&rounds_paused), "{rounds_paused} pauses");
        // All down for good: the failure is delivered before the budget is over.
        let mut e = Endpoints::new(3);
        let mut a = e.begin(at(0), Duration::from_secs(2));
        let mut now = 0;
        loop {
            now += a.delay.as_millis() as u64 + 5;
            match e.attempt_done(at(now), a, Outcome::Unavailable).0 {
                Next::Retry(b) => a = b,
                Next::Deliver => break,
            }
        }
        assert!(now <= 2_000, "gave up at {now} ms");
        assert!(now >= 2_000 - (ROUND_PAUSE + ATTEMPT_MIN).as_millis() as u64, "gave up early at {now} ms");
    }

    #[test]
    fn a_late_failure_of_an_endpoint_no_longer_pinned_moves_nothing() {
        let mut e = Endpoints::new(3);
        assert!(e.handle_outcome(at(0), 0, Outcome::NoLeader).is_some());
        assert_eq!(e.handle_outcome(at(1), 0, Outcome::TimedOut), None);
        assert_eq!(e.pinned(), 1);
    }

    #[test]
    fn recently_failed_endpoints_are_skipped_then_the_oldest_failure_is_retried() {
        let mut e = Endpoints::new(3);
        // 2 failed a moment ago (a stale answer); 0 fails while pinned: skip 1? no, 1 is fresh.
        e.handle_outcome(at(0), 1, Outcome::Unavailable);
        assert_eq!(e.handle_outcome(at(10), 0, Outcome::Unavailable), Some(Switch { from: 0, to: 2 }));
        // 2 fails too: 1 failed first (oldest), so back to 1.
        assert_eq!(e.handle_outcome(at(20), 2, Outcome::Unavailable), Some(Switch { from: 2, to: 1 }));
        // Long after, a failure of 1 goes round-robin again: 2 is no longer recent.
        let later = at(20 + RECENT_FAILURE.as_millis() as u64);
        assert_eq!(e.handle_outcome(later, 1, Outcome::TimedOut), Some(Switch { from: 1, to: 2 }));
    }

    #[test]
    fn an_answer_clears_the_mark() {
        let mut e = Endpoints::new(2);
        e.handle_outcome(at(0), 1, Outcome::Unavailable);
        e.handle_outcome(at(1), 1, Outcome::Answered);
        assert_eq!(e.handle_outcome(at(2), 0, Outcome::Unavailable), Some(Switch { from: 0, to: 1 }));
    }

    #[test]
    fn no_retry_when_less_than_the_minimum_attempt_is_left() {
        let mut e = Endpoints::new(3);
        let a = e.begin(at(0), Duration::from_millis(1000));
        assert_eq!(a.timeout, Duration::from_millis(1000) / 3);
        let (next, _) = e.attempt_done(at(800), a, Outcome::TimedOut);
        assert_eq!(next, Next::Deliver);
    }

    #[test]
    fn unknown_endpoints_are_ignored() {
        let mut e = Endpoints::new(2);
        assert_eq!(e.handle_outcome(at(0), 7, Outcome::Unavailable), None);
        assert_eq!(Endpoints::new(0).count(), 1);
    }
}
