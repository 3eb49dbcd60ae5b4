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
        Ok(Timings {
            ttl,
            kill_after,
            margin,
            keepalive_interval: budget / 3,
            retry_after: (budget / 8).clamp(RETRY_MIN, RETRY_MAX),
        })
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
}

impl LossReason {
    /// Short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            LossReason::LeaseGone => "lease-gone",
            LossReason::DeadlinePassed => "deadline-passed",
            LossReason::KeyDeleted => "key-deleted",
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
    /// No child to protect yet: lost at `kill_at`, not `term_at`.
    waiting: bool,
}

impl Session {
    /// A session that will ask for `ttl` and protect a child with `kill_after` of grace.
    pub fn new(ttl: Duration, kill_after: Duration) -> Session {
        Session {
            requested_ttl: ttl,
            kill_after,
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
        }
    }

    /// Whether the session only keeps a waiter in the queue (no child yet; see the
    /// module doc). Off by default: a child's deadlines.
    pub fn set_waiting(&mut self, waiting: bool) {
        self.waiting = waiting;
    }

    /// When the session counts as lost: `term_at`, or `kill_at` while only waiting.
    fn lost_at(&self) -> Option<Instant> {
        if self.waiting {
            self.kill_at()
        } else {
            self.term_at()
        }
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
        // Answers come in request order: anything sent before this one went unanswered.
        self.inflight.drain(..position);
        if self.stopped {
            return None;
        }
        match response {
            EtcdResponse::KeepAlive { ttl_s } if ttl_s > 0 => {
                if std::mem::take(&mut self.failing) {
                    out.log(Event::info("keepalive-recovered"));
                }
                self.acks += 1;
                self.last_rtt = now.since(sent_at);
                let candidate = sent_at.plus(Duration::from_secs(ttl_s.unsigned_abs()));
                self.next_send_at = Some(sent_at.plus(self.timings?.keepalive_interval).max(now));
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
                let timings = match Timings::derive(ttl, self.kill_after) {
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
                self.next_send_at = Some(sent_at.plus(timings.keepalive_interval));
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
mod tests {
    use super::*;
    use crate::output::Output;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    fn at(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    #[test]
    fn timings_at_the_defaults() {
        let t = Timings::derive(Duration::from_secs(10), Duration::from_secs(5)).unwrap();
        assert_eq!(t.margin, ms(250));
        assert_eq!(t.keepalive_interval, ms(1583) + Duration::from_nanos(333_333));
        assert_eq!(t.retry_after, ms(593) + Duration::from_nanos(750_000));
        let d = at(10_000);
        assert_eq!(t.term_at(d), at(4_750));
        assert_eq!(t.kill_at(d), at(9_750));
    }

    #[test]
    fn infeasible_timings_name_the_numbers() {
        let table: &[(u64, u64, bool)] = &[
            (10_000, 5_000, true),
            (10_000, 10_000, false),
            (10_000, 8_750, true),
            (10_000, 8_751, false),
            (2_000, 0, true),
            (1_000, 0, false),
        ];
        for (ttl, kill_after, ok) in table {
            assert_eq!(Timings::derive(ms(*ttl), ms(*kill_after)).is_ok(), *ok, "ttl {ttl} kill-after {kill_after}");
        }
        let msg = Timings::derive(ms(10_000), ms(10_000)).unwrap_err().to_string();
        assert!(
            msg.contains("--kill-after 10s")
                && msg.contains("--ttl 10s")
                && msg.contains("250ms")
                && msg.contains("use --ttl 12s with --kill-after 10s")
                && msg.contains("or --kill-after 8s750ms with --ttl 10s"),
            "{msg}"
        );
        // A TTL too short for any kill-after suggests only a longer TTL.
        let msg = Timings::derive(ms(1_000), ms(0)).unwrap_err().to_string();
        assert!(msg.contains("use --ttl 2s with --kill-after 0s") && !msg.contains(", or"), "{msg}");
    }

    #[test]
    fn the_suggested_pairs_work_and_are_tight() {
        for kill_after in [0u64, 1, 790, 5_000, 8_750, 10_000, 59_999, 600_000] {
            let ttl = Timings::ttl_min(ms(kill_after));
            assert!(Timings::derive(ttl, ms(kill_after)).is_ok(), "kill-after {kill_after}: ttl {ttl:?}");
            assert!(
                Timings::derive(ttl - ms(1_000), ms(kill_after)).is_err(),
                "kill-after {kill_after}: {ttl:?} not tight"
            );
        }
        assert_eq!(Timings::kill_after_max(ms(5_000)), Some(ms(3_775)));
        assert_eq!(Timings::kill_after_max(ms(2_000)), Some(ms(790)));
        assert_eq!(Timings::kill_after_max(ms(1_000)), None);
        for ttl in [2_000u64, 5_000, 10_000, 3_600_000] {
            let max = Timings::kill_after_max(ms(ttl)).unwrap();
            assert!(Timings::derive(ms(ttl), max).is_ok() && Timings::derive(ms(ttl), max + ms(1)).is_err());
        }
    }

    fn drain_requests(out: &mut Outbox) -> Vec<(ReqId, EtcdRequest)> {
        let mut reqs = Vec::new();
        while let Some(o) = out.pop() {
            if let Output::Etcd { id, request } = o {
                reqs.push((id, request));
            }
        }
        reqs
    }

    fn granted_session(out: &mut Outbox) -> Session {
        let mut s = Session::new(Duration::from_secs(10), Duration::from_secs(5));
        s.start(at(0), out);
        let (id, _) = drain_requests(out)[0].clone();
        let ev = s.handle_response(at(3), id, EtcdResponse::Granted { lease: LeaseId(7), ttl_s: 10 }, out);
        assert_eq!(ev, Some(SessionEvent::Granted));
        s
    }

    #[test]
    fn deadline_counts_from_the_send_time() {
        let mut out = Outbox::default();
        let mut s = granted_session(&mut out);
        // D counts from when the grant was sent (0), not answered (3).
        assert_eq!(s.deadline(), Some(at(10_000)));
        assert_eq!(s.term_at(), Some(at(4_750)));
        // The first keepalive goes out at the cadence.
        assert_eq!(s.poll_timeout(), Some(Instant::from_nanos(1_583_333_333)));
        assert_eq!(s.handle_timeout(at(1_600), &mut out), None);
        let reqs = drain_requests(&mut out);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].1, EtcdRequest::KeepAlive { lease: LeaseId(7), fresh_stream: false });
        // Acknowledged late: D still counts from the send instant.
        let ev = s.handle_response(at(2_500), reqs[0].0, EtcdResponse::KeepAlive { ttl_s: 10 }, &mut out);
        assert_eq!(ev, Some(SessionEvent::Extended));
        assert_eq!(s.deadline(), Some(at(11_600)));
    }

    #[test]
    fn deadline_never_moves_back() {
        let mut out = Outbox::default();
        let mut s = granted_session(&mut out);
        s.handle_timeout(at(1_600), &mut out);
        let first = drain_requests(&mut out)[0].0;
        s.handle_timeout(at(2_200), &mut out); // unanswered: retry on a fresh stream
        let second = drain_requests(&mut out);
        assert_eq!(second[0].1, EtcdRequest::KeepAlive { lease: LeaseId(7), fresh_stream: true });
        // A smaller TTL in a later answer does not pull D back.
        assert_eq!(
            s.handle_response(at(2_300), second[0].0, EtcdResponse::KeepAlive { ttl_s: 10 }, &mut out),
            Some(SessionEvent::Extended)
        );
        assert_eq!(s.handle_response(at(2_400), first, EtcdResponse::KeepAlive { ttl_s: 1 }, &mut out), None);
        assert_eq!(s.deadline(), Some(at(12_200)));
    }

    #[test]
    fn explicit_losses_act_at_once() {
        let table = [EtcdResponse::KeepAlive { ttl_s: 0 }, EtcdResponse::Error(EtcdError::LeaseNotFound)];
        for response in table {
            let mut out = Outbox::default();
            let mut s = granted_session(&mut out);
            s.handle_timeout(at(1_600), &mut out);
            let id = drain_requests(&mut out)[0].0;
            assert_eq!(
                s.handle_response(at(1_601), id, response, &mut out),
                Some(SessionEvent::Lost(LossReason::LeaseGone))
            );
            assert_eq!(s.poll_timeout(), None);
        }
    }

    #[test]
    fn a_waiters_silence_ends_the_session_at_kill_at_not_term_at() {
        let mut out = Outbox::default();
        let mut s = granted_session(&mut out);
        s.set_waiting(true);
        let (term_at, kill_at) = (s.term_at().unwrap(), s.kill_at().unwrap());
        assert!(term_at < kill_at);
        assert_eq!(s.handle_timeout(term_at, &mut out), None, "a waiter outlives term_at");
        assert!(s.poll_timeout().unwrap() <= kill_at);
        assert_eq!(s.handle_timeout(kill_at, &mut out), Some(SessionEvent::Lost(LossReason::DeadlinePassed)));
        // Holding again: term_at counts.
        let mut out = Outbox::default();
        let mut h = granted_session(&mut out);
        h.set_waiting(true);
        h.set_waiting(false);
        let term_at = h.term_at().unwrap();
        assert_eq!(h.handle_timeout(term_at, &mut out), Some(SessionEvent::Lost(LossReason::DeadlinePassed)));
    }

    #[test]
    fn silence_ends_the_session_at_term_at() {
        let mut out = Outbox::default();
        let mut s = granted_session(&mut out);
        let mut sent = 0;
        let mut now = at(0);
        let mut lost_at = None;
        for _ in 0..100 {
            let Some(next) = s.poll_timeout() else { break };
            now = next.max(now);
            if let Some(SessionEvent::Lost(reason)) = s.handle_timeout(now, &mut out) {
                assert_eq!(reason, LossReason::DeadlinePassed);
                lost_at = Some(now);
                break;
            }
            sent += drain_requests(&mut out).len();
        }
        assert_eq!(lost_at, Some(at(4_750)));
        assert!(sent >= 5, "retries while silent: {sent}");
    }

    #[test]
    fn a_three_second_outage_does_not_end_the_session() {
        // etcd answers nothing from 1.7 s to 4.7 s, then answers every keepalive at once.
        let mut out = Outbox::default();
        let mut s = granted_session(&mut out);
        let mut now = at(0);
        let outage = (at(1_700), at(4_700));
        let mut pending: Vec<ReqId> = Vec::new();
        for _ in 0..1000 {
            let next = s.poll_timeout().unwrap();
            now = next.max(now.plus(ms(1)));
            if now > at(8_000) {
                break;
            }
            assert_eq!(s.handle_timeout(now, &mut out), None, "lost at {now:?}");
            pending.extend(drain_requests(&mut out).into_iter().map(|(id, _)| id));
            if now < outage.0 || now >= outage.1 {
                for id in pending.drain(..) {
                    s.handle_response(now, id, EtcdResponse::KeepAlive { ttl_s: 10 }, &mut out);
                }
            }
        }
        assert!(s.term_at().unwrap() > at(8_000));
    }
}
