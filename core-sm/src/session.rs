//! The session lease: grant, keepalive cadence, and the deadline rule of `03-core.md`.
//!
//! Let `g` be the instant the grant request was sent and `t` the granted TTL: etcd cannot
//! expire the lease before `g + t`, because its clock starts when it *receives* the
//! request. Each keepalive sent at `s` and answered with `t' > 0` moves the known-safe
//! deadline to `D = max(D, s + t')`. From `D`:
//!
//! * `term_at = D − kill_after − margin` — SIGTERM the child's group by then;
//! * `kill_at = D − margin` — SIGKILL it by then.
//!
//! # The margin
//!
//! `margin = 200 ms + TTL / 200`. The fixed part covers what happens between our clock
//! saying "now" and the child being dead: the shim waking from `poll` on a loaded host
//! (tens of ms), SIGKILL delivery and the kernel tearing down the group (a few ms), with
//! room to spare. The proportional part (5000 ppm, ten times the 500 ppm that NTP may slew
//! a clock) covers our clock and etcd's running at different rates across one TTL. At the
//! default TTL of 10 s the margin is 250 ms.
//!
//! # Cadence
//!
//! `budget = TTL − kill_after − margin` is how long after sending a keepalive we may still
//! rely on it alone. We send every `budget / 3`; an unanswered keepalive is retried after
//! `retry_after = clamp(budget / 8, 100 ms, 1 s)` on a fresh stream. At the defaults
//! (TTL 10 s, kill-after 5 s: budget 4.75 s, cadence 1.58 s, retry 594 ms) a 3 s etcd
//! outage ends with at least one retry acknowledged before `term_at`, so a healthy
//! holder is not killed by an etcd leader election. A budget under [`BUDGET_MIN`] leaves
//! no cadence that can meet `term_at`: such timings are refused as usage errors.
//!
//! # A waiter
//!
//! `term_at` protects a child; a waiter has none. So while the runner says the session
//! only waits, it is lost at `kill_at` (the lease may be gone soon after), not at
//! `term_at`: a keepalive answered late on an overloaded etcd (07-performance B5, a
//! thousand waiters) no longer sends the waiter to the back of the queue. The runner
//! checks `term_at` itself when the waiter acquires, before any child starts.
//!
//! A waiter also renews less often: every `waiting_interval = min(TTL / 3, budget −
//! 2 · retry_after)` (never below the holder's cadence; 3.33 s at the defaults, against
//! the holder's 1.58 s). The waits of a long queue grow with its length, so keepalives at
//! the holder's cadence made a waiter's traffic per acquisition grow with it too
//! (07-performance B5). The upper bound keeps `term_at` at least `2 · retry_after` ahead
//! of the last renewal sent and answered, so a waiter whose keepalives are answered
//! acquires with `term_at` still ahead (the runner's check passes). The moment the
//! session stops only waiting, the holder's cadence counts from that last renewal: a
//! keepalive overdue at that cadence goes out at the next [`Session::handle_timeout`],
//! before the child's first full cadence. The deadline rule is the same for both: only
//! how soon `D` is renewed differs, never how `term_at`/`kill_at` follow from it.
use std::collections::VecDeque;
use std::time::Duration;

use crate::duration::format;
use crate::etcd::{EtcdError, EtcdRequest, EtcdResponse};
use crate::ids::{LeaseId, ReqId};
use crate::output::{Event, Outbox};
use crate::time::Instant;

/// Fixed part of the margin.
pub const MARGIN_BASE: Duration = Duration::from_millis(200);
/// The margin's share of the TTL: 1/200 (5000 ppm of clock-rate difference).
pub const MARGIN_TTL_DIVISOR: u32 = 200;
/// Smallest renewal budget that leaves room for a keepalive, two retries and their answers.
pub const BUDGET_MIN: Duration = Duration::from_secs(1);
/// Unanswered keepalives remembered for pairing; older ones are forgotten (safe: a
/// forgotten answer can only leave the deadline earlier than it could be).
pub const INFLIGHT_MAX: usize = 16;

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
const _: () = assert!(BUDGET_MIN.as_millis() >= 3 * RETRY_MIN.as_millis());

/// The safety margin at a TTL (see the module doc).
fn margin(ttl: Duration) -> Duration {
    MARGIN_BASE + ttl / MARGIN_TTL_DIVISOR
}

/// Timings derived from a TTL and a kill-after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Lease TTL.
    pub ttl: Duration,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// Safety margin before the lease can expire (see the module doc).
    pub margin: Duration,
    /// Keepalive cadence.
    pub keepalive_interval: Duration,
    /// Keepalive cadence while only waiting (no child; see the module doc).
    pub waiting_interval: Duration,
    /// Retry delay after an unanswered keepalive.
    pub retry_after: Duration,
}

/// Timings where no keepalive cadence can meet `term_at`. The message names both numbers
/// and pairs that work: the same kill-after with a longer TTL, or, when one fits, the same
/// TTL with a shorter kill-after.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct TimingError {
    /// The TTL.
    pub ttl: Duration,
    /// The kill-after asked for.
    pub kill_after: Duration,
    /// The margin at that TTL.
    pub margin: Duration,
    /// Largest kill-after that would work at that TTL (zero if none).
    pub kill_after_max: Duration,
    /// Smallest whole-second TTL that works with that kill-after.
    pub ttl_min: Duration,
}

impl std::fmt::Display for TimingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ka, ttl) = (format(self.kill_after), format(self.ttl));
        write!(
            f,
            "--kill-after {ka} does not fit in --ttl {ttl}: kill-after + the {} safety margin + {} for keepalives must not exceed the TTL; use --ttl {} with --kill-after {ka}",
            format(self.margin),
            format(BUDGET_MIN),
            format(self.ttl_min)
        )?;
        if Timings::kill_after_max(self.ttl).is_some() {
            write!(f, ", or --kill-after {} with --ttl {ttl}", format(self.kill_after_max))?;
        }
        Ok(())
    }
}

impl Timings {
    /// Derives the cadence, or refuses timings no cadence can meet.
    pub fn derive(ttl: Duration, kill_after: Duration) -> Result<Timings, TimingError> {
        let margin = margin(ttl);
        let reserved = kill_after + margin + BUDGET_MIN;
        if reserved > ttl {
            let kill_after_max = ttl.saturating_sub(margin + BUDGET_MIN);
            return Err(TimingError { ttl, kill_after, margin, kill_after_max, ttl_min: Timings::ttl_min(kill_after) });
        }
        let budget = ttl - kill_after - margin;
        let keepalive_interval = budget / 3;
        let retry_after = (budget / 8).clamp(RETRY_MIN, RETRY_MAX);
        let waiting_interval = (ttl / 3).min(budget.saturating_sub(2 * retry_after)).max(keepalive_interval);
        Ok(Timings { ttl, kill_after, margin, keepalive_interval, waiting_interval, retry_after })
    }

    /// The largest kill-after that works with `ttl`; `None` when the TTL is too short for
    /// any (it cannot hold the margin and [`BUDGET_MIN`]).
    pub fn kill_after_max(ttl: Duration) -> Option<Duration> {
        ttl.checked_sub(margin(ttl) + BUDGET_MIN)
    }

    /// The smallest whole-second TTL (etcd's unit) that works with `kill_after`.
    pub fn ttl_min(kill_after: Duration) -> Duration {
        // ttl ≥ kill_after + MARGIN_BASE + ttl/200 + BUDGET_MIN, so ttl ≥ (kill_after +
        // MARGIN_BASE + BUDGET_MIN) · 200/199: start at the fixed part and step up; the
        // proportional part adds at most one second per 199.
        let fixed = kill_after + MARGIN_BASE + BUDGET_MIN;
        let mut secs = fixed.as_secs() + u64::from(fixed.subsec_nanos() > 0);
        for _ in 0..=(secs / 199 + 2) {
            let ttl = Duration::from_secs(secs);
            if kill_after + margin(ttl) + BUDGET_MIN <= ttl {
                break;
            }
            secs += 1;
        }
        Duration::from_secs(secs)
    }

    /// `D − kill_after − margin`.
    pub fn term_at(&self, deadline: Instant) -> Instant {
        deadline.minus(self.kill_after + self.margin)
    }

    /// `term_at` counted from the instant a view was last confirmed: `ttl − kill_after −
    /// margin` (a holder unsure of its key stops its child as a silent session would).
    pub fn term_within(&self) -> Duration {
        self.ttl.saturating_sub(self.kill_after + self.margin)
    }

    /// `D − margin`.
    pub fn kill_at(&self, deadline: Instant) -> Instant {
        deadline.minus(self.margin)
    }
}

/// Why a session ended without us closing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// A keepalive came back with TTL 0, or etcd says the lease does not exist.
    LeaseGone,
    /// No keepalive was acknowledged in time: `now` passed `term_at`.
    DeadlinePassed,
    /// Our key was deleted (revoke, `etcdctl del`).
    KeyDeleted,
    /// A holder went too long without a live watch on its key or a read that answered.
    KeyUnconfirmed,
}

impl LossReason {
    /// Short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            LossReason::LeaseGone => "lease-gone",
            LossReason::DeadlinePassed => "deadline-passed",
            LossReason::KeyDeleted => "key-deleted",
            LossReason::KeyUnconfirmed => "key-unconfirmed",
        }
    }
}

/// What a session input meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The lease was granted; the deadline is set.
    Granted,
    /// The deadline moved later.
    Extended,
    /// The grant failed: no session.
    GrantFailed(EtcdError),
    /// The granted TTL leaves no workable cadence.
    Infeasible(TimingError),
    /// The lease is gone, or its deadline passed.
    Lost(LossReason),
}

/// The session lease machine.
#[derive(Debug)]
pub struct Session {
    requested_ttl: Duration,
    kill_after: Duration,
    /// The `--fence` budget: the end of the kill window belongs to the fence, so the
    /// child's group must be dead this much before `kill_at`.
    fence: Duration,
    timings: Option<Timings>,
    lease: Option<LeaseId>,
    deadline: Option<Instant>,
    grant: Option<(ReqId, Instant)>,
    inflight: VecDeque<(ReqId, Instant)>,
    next_send_at: Option<Instant>,
    stopped: bool,
    failing: bool,
    acks: u64,
    last_rtt: Duration,
    /// No child to protect yet: lost at `kill_at`, not `term_at`, and renewed at
    /// `waiting_interval`.
    waiting: bool,
    /// When the latest renewal that etcd answered (or the grant) was sent: the cadence
    /// counts from it.
    renewed_from: Option<Instant>,
}

impl Session {
    /// A session that will ask for `ttl` and protect a child with `kill_after` of grace.
    pub fn new(ttl: Duration, kill_after: Duration) -> Session {
        Session {
            requested_ttl: ttl,
            kill_after,
            fence: Duration::ZERO,
            timings: None,
            lease: None,
            deadline: None,
            grant: None,
            inflight: VecDeque::new(),
            next_send_at: None,
            stopped: false,
            failing: false,
            acks: 0,
            last_rtt: Duration::ZERO,
            waiting: false,
            renewed_from: None,
        }
    }

    /// Whether the session only keeps a waiter in the queue (no child yet; see the
    /// module doc). Off by default: a child's deadlines.
    pub fn set_waiting(&mut self, waiting: bool) {
        self.waiting = waiting;
        // The next renewal is due at the new cadence from the last one; a retry already
        // due sooner (a keepalive unanswered) stays.
        let Some(cadence) = self.renewed_from.and_then(|from| self.renewal_after(from)) else { return };
        self.next_send_at = match self.next_send_at {
            Some(next) if !(waiting && self.inflight.is_empty()) => Some(next.min(cadence)),
            _ => Some(cadence),
        };
    }

    /// When the renewal after one sent at `sent_at` is due, at the current cadence.
    fn renewal_after(&self, sent_at: Instant) -> Option<Instant> {
        let t = self.timings?;
        Some(sent_at.plus(if self.waiting { t.waiting_interval } else { t.keepalive_interval }))
    }

    /// When the session counts as lost: `term_at`, or `kill_at` while only waiting.
    fn lost_at(&self) -> Option<Instant> {
        if self.waiting {
            self.kill_at()
        } else {
            self.term_at()
        }
    }

    /// A session whose kill window also holds a `--fence` of `budget`: the child is told
    /// to stop `budget` earlier (`term_at`) and must be dead `budget` before `kill_at`,
    /// which the fence then has.
    pub fn with_fence(mut self, budget: Duration) -> Session {
        self.fence = budget;
        self
    }

    /// The lease, once granted.
    pub fn lease(&self) -> Option<LeaseId> {
        self.lease
    }

    /// The known-safe deadline `D`.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// `term_at` for the current deadline.
    pub fn term_at(&self) -> Option<Instant> {
        Some(self.timings?.term_at(self.deadline?))
    }

    /// `kill_at` for the current deadline.
    pub fn kill_at(&self) -> Option<Instant> {
        Some(self.timings?.kill_at(self.deadline?))
    }

    /// The TTL etcd granted, in whole seconds (what every renewal restores).
    fn granted_ttl_s(&self) -> Option<i64> {
        let ttl = self.timings?.ttl;
        debug_assert!(self.lease.is_some(), "timings are derived only from a grant");
        i64::try_from(ttl.as_secs()).ok()
    }

    /// When a stop ordered `now` must have SIGKILLed the child: after its `kill_after` of
    /// grace, and never later than the session's own `kill_at` (the one rule every stop
    /// of the runner's and conchd's uses).
    pub fn kill_by(&self, now: Instant) -> Instant {
        let grace = now.plus(self.kill_after);
        self.child_kill_at().map_or(grace, |k| k.min(grace))
    }

    /// The child's SIGKILL deadline: `kill_at`, less the fence's budget when there is one.
    pub fn child_kill_at(&self) -> Option<Instant> {
        Some(self.kill_at()?.minus(self.fence))
    }

    /// Acknowledged keepalives so far, and the round trip of the latest.
    pub fn round_trips(&self) -> (u64, Duration) {
        (self.acks, self.last_rtt)
    }

    /// Whether `id` is one of this session's requests.
    pub fn owns(&self, id: ReqId) -> bool {
        self.grant.is_some_and(|(g, _)| g == id) || self.inflight.iter().any(|(k, _)| *k == id)
    }

    /// Feeds the answer to one of this session's requests.
    pub fn handle_response(
        &mut self,
        now: Instant,
        id: ReqId,
        response: EtcdResponse,
        out: &mut Outbox,
    ) -> Option<SessionEvent> {
        if let Some((grant_id, sent_at)) = self.grant {
            if grant_id == id {
                self.grant = None;
                return Some(self.handle_grant(sent_at, response, out));
            }
        }
        let position = self.inflight.iter().position(|(k, _)| *k == id)?;
        let (_, sent_at) = self.inflight.remove(position)?;
        // Paired with handle_timeout: a keepalive is sent only once the grant set the timings.
        debug_assert!(self.timings.is_some(), "a keepalive in flight before the grant");
        // Answers come in request order: anything sent before this one went unanswered.
        self.inflight.drain(..position);
        if self.stopped {
            return None;
        }
        let response = match response {
            // A renewal restores the TTL etcd granted, so an answer that only says "renewed"
            // is worth exactly that: the session's own record, never a driver's guess.
            EtcdResponse::KeepAliveOpened => EtcdResponse::KeepAlive { ttl_s: self.granted_ttl_s()? },
            other => other,
        };
        match response {
            EtcdResponse::KeepAlive { ttl_s } if ttl_s > 0 => {
                if std::mem::take(&mut self.failing) {
                    out.log(Event::info("keepalive-recovered"));
                }
                self.acks += 1;
                self.last_rtt = now.since(sent_at);
                let candidate = sent_at.plus(Duration::from_secs(ttl_s.unsigned_abs()));
                if self.renewed_from.is_none_or(|r| sent_at > r) {
                    self.renewed_from = Some(sent_at);
                }
                self.next_send_at = Some(self.renewal_after(self.renewed_from?)?.max(now));
                if self.deadline.is_none_or(|d| candidate > d) {
                    self.deadline = Some(candidate);
                    return Some(SessionEvent::Extended);
                }
                None
            }
            EtcdResponse::KeepAlive { .. } | EtcdResponse::Error(EtcdError::LeaseNotFound) => {
                self.stopped = true;
                Some(SessionEvent::Lost(LossReason::LeaseGone))
            }
            EtcdResponse::Error(e) => {
                // The retry is already due at send + retry_after, on a fresh stream; an
                // instant error must not turn that into a busy loop. Log once per outage.
                if !self.failing {
                    self.failing = true;
                    out.log(Event::warn("keepalive-failed").with("error", format!("{e:?}")));
                }
                None
            }
            _ => None,
        }
    }

    fn handle_grant(&mut self, sent_at: Instant, response: EtcdResponse, out: &mut Outbox) -> SessionEvent {
        match response {
            EtcdResponse::Granted { lease, ttl_s } if ttl_s > 0 => {
                self.lease = Some(lease);
                let ttl = Duration::from_secs(ttl_s.unsigned_abs());
                let timings = match Timings::derive(ttl, self.kill_after + self.fence) {
                    Ok(t) => t,
                    Err(e) => {
                        self.stopped = true;
                        return SessionEvent::Infeasible(e);
                    }
                };
                if ttl != self.requested_ttl {
                    out.log(
                        Event::warn("ttl-adjusted")
                            .with("asked", format(self.requested_ttl))
                            .with("granted", format(ttl)),
                    );
                }
                self.timings = Some(timings);
                self.deadline = Some(sent_at.plus(ttl));
                self.renewed_from = Some(sent_at);
                self.next_send_at = self.renewal_after(sent_at);
                SessionEvent::Granted
            }
            EtcdResponse::Error(e) => SessionEvent::GrantFailed(e),
            other => SessionEvent::GrantFailed(EtcdError::Fatal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Sends keepalives when due and notices a passed deadline.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) -> Option<SessionEvent> {
        if self.stopped {
            return None;
        }
        let (lease, timings, lost_at) = (self.lease?, self.timings?, self.lost_at()?);
        if now >= lost_at {
            self.stopped = true;
            return Some(SessionEvent::Lost(LossReason::DeadlinePassed));
        }
        if self.next_send_at.is_some_and(|at| now >= at) {
            let fresh_stream = !self.inflight.is_empty();
            let id = out.request(EtcdRequest::KeepAlive { lease, fresh_stream });
            if self.inflight.len() >= INFLIGHT_MAX {
                self.inflight.pop_front();
            }
            self.inflight.push_back((id, now));
            self.next_send_at = Some(now.plus(timings.retry_after));
        }
        None
    }

    /// Asks etcd for the lease.
    pub fn start(&mut self, now: Instant, out: &mut Outbox) {
        let ttl_s = i64::try_from(self.requested_ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let id = out.request(EtcdRequest::Grant { ttl_s });
        self.grant = Some((id, now));
    }

    /// Stops keepalives (on release, or once the session is known lost).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// When [`Session::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let lost_at = self.lost_at()?;
        Some(self.next_send_at.map_or(lost_at, |at| at.min(lost_at)))
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
