//! The shim's rules as a machine: when to SIGTERM and when to SIGKILL the child's
//! processes, whatever the wrapper does. The real shim (`driver-etcd/src/shim.rs`) and the
//! simulator's host both run this; they only carry out its signals and report what happens.
//!
//! * At `term_at` SIGTERM everything, at `kill_at` SIGKILL it — even when the wrapper is
//!   frozen and sends nothing.
//! * An order from the wrapper (`terminate`), the wrapper going away (pipe closed) or the
//!   command exiting starts a stop: SIGTERM now, SIGKILL by `min(now + kill_after, kill_at)`.
//! * Once stopping, SIGKILL is repeated at every wake after the kill deadline, so processes
//!   forked late die too; deadline updates no longer move anything.
//! * Once the command has exited and the shim has no child left at all, nothing of the
//!   command is left (a subreaper inherits every orphan below it, so a descendant always
//!   has a live chain of parents up to the shim): nothing more to signal, the exit is
//!   reported ([`ShimRules::exit_due`]).
//! * The wrapper gone (pipe closed) **and** every process of the child gone: revoke the
//!   session lease, once (issue 16.1), so a successor starts in milliseconds instead of a
//!   TTL later. Never before the group is empty — until then the lease is what keeps a
//!   successor out. A failed revoke changes nothing: the TTL still frees the lease.
//! * The session's `term_at` passed **and** every process of the child gone: revoke too.
//!   A frozen wrapper keeps its pipe open, but past `term_at` the hold is over by the
//!   wrapper's own rule (it counts the hold lost there) and the shim has stopped the
//!   child: nothing relies on the lease any more, and the successor starts before the
//!   lease would expire instead of etcd's expiry lag after it (07-performance B4,
//!   SIGSTOP). A wrapper that did renew but whose new deadlines the shim had not read yet
//!   loses a hold whose child is dead already: one lease has one child (a service's next
//!   run campaigns with a new session), and a holder with a fence hands no lease over.
use std::collections::VecDeque;
use std::time::Duration;

use crate::ids::LeaseId;
use crate::sabotage::Sabotage;

// The feature builds a conch whose shim ignores its deadlines, for the invariant suite to
// catch (scripts/test.sh builds it as target/broken-conch): never a release build.
#[cfg(all(feature = "break-shim-deadline", not(debug_assertions)))]
compile_error!("the break-shim-deadline feature makes the shim ignore its deadlines: debug (test) builds only");
use crate::time::Instant;

/// How often a stopping shim wakes to look for late processes.
pub const REWALK_INTERVAL: Duration = Duration::from_millis(50);

/// A signal to every process of the child's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShimSignal {
    /// SIGTERM, with why.
    Term(&'static str),
    /// SIGKILL.
    Kill,
}

/// Everything the shim (or the simulator's host) feeds its rules: the wrapper's messages,
/// the pipe's end, what a reap found, and the timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShimInput {
    /// New deadlines from the wrapper (ignored once stopping).
    Deadlines {
        /// SIGTERM no later than this.
        term_at: Instant,
        /// SIGKILL no later than this.
        kill_at: Instant,
    },
    /// The wrapper orders a stop: SIGKILL by `kill_at` at the latest.
    Terminate {
        /// SIGKILL no later than this.
        kill_at: Instant,
    },
    /// The pipe to the wrapper closed: it crashed, was SIGKILLed or panicked.
    LinkClosed,
    /// The wrapper told the session lease: revoke it once the wrapper and every process
    /// of the child are gone.
    Lease(LeaseId),
    /// A reap: whether the command has exited, and whether the shim has any child left.
    Reaped {
        /// The command has exited (this reap or an earlier one).
        main_exited: bool,
        /// Some child of the shim's is still alive.
        children_left: bool,
    },
    /// The instant of `poll_timeout` came (early or repeated timeouts are harmless).
    Timeout,
}

/// The rules.
#[derive(Debug)]
pub struct ShimRules {
    term_at: Instant,
    kill_at: Instant,
    kill_after: Duration,
    kill_by: Option<Instant>,
    main_exited: bool,
    exit_due: bool,
    actions: VecDeque<ShimSignal>,
    ignore_deadlines: bool,
    /// The lease to revoke once orphaned and empty (`None`: never revoke).
    lease: Option<LeaseId>,
    wrapper_gone: bool,
    /// The session's own `term_at` passed (not an ordered stop's).
    past_term_at: bool,
    group_empty: bool,
    revoke: Option<LeaseId>,
    /// Deliberately broken: revoke as soon as the wrapper is gone.
    revoke_early: bool,
}

impl ShimRules {
    /// Rules with the first deadlines.
    pub fn new(term_at: Instant, kill_at: Instant, kill_after: Duration) -> ShimRules {
        ShimRules {
            term_at,
            kill_at,
            kill_after,
            kill_by: None,
            main_exited: false,
            exit_due: false,
            actions: VecDeque::new(),
            ignore_deadlines: cfg!(feature = "break-shim-deadline"),
            lease: None,
            wrapper_gone: false,
            past_term_at: false,
            group_empty: false,
            revoke: None,
            revoke_early: false,
        }
    }

    /// The same rules with a deliberate bug (checker tests only).
    pub fn with_sabotage(self, sabotage: Sabotage) -> ShimRules {
        ShimRules {
            ignore_deadlines: self.ignore_deadlines || sabotage == Sabotage::IgnoreDeadlines,
            revoke_early: sabotage == Sabotage::RevokeBeforeGroupDead,
            ..self
        }
    }

    /// Feeds one input; then poll the actions and the timeout.
    pub fn handle_input(&mut self, now: Instant, input: ShimInput) {
        match input {
            ShimInput::Deadlines { term_at, kill_at } => self.handle_deadlines(term_at, kill_at),
            ShimInput::Terminate { kill_at } => self.handle_terminate(now, kill_at),
            ShimInput::LinkClosed => self.handle_link_closed(now),
            ShimInput::Lease(lease) => self.handle_lease(lease),
            ShimInput::Reaped { main_exited, children_left } => self.handle_reaped(now, main_exited, children_left),
            ShimInput::Timeout => self.handle_timeout(now),
        }
    }

    /// New deadlines from the wrapper (ignored once stopping).
    fn handle_deadlines(&mut self, term_at: Instant, kill_at: Instant) {
        if self.kill_by.is_none() {
            self.term_at = term_at;
            self.kill_at = kill_at;
        }
    }

    /// The wrapper orders a stop: SIGKILL by `kill_at` at the latest.
    fn handle_terminate(&mut self, now: Instant, kill_at: Instant) {
        self.begin_stop(now, kill_at.min(now.plus(self.kill_after)), "ordered");
    }

    /// The pipe to the wrapper closed: it crashed, was SIGKILLed or panicked.
    fn handle_link_closed(&mut self, now: Instant) {
        self.wrapper_gone = true;
        self.begin_stop(now, now.plus(self.kill_after), "wrapper gone");
        self.maybe_revoke();
    }

    fn handle_lease(&mut self, lease: LeaseId) {
        self.lease = Some(lease);
        self.maybe_revoke();
    }

    fn maybe_revoke(&mut self) {
        // The lease keeps a successor out while any process of the child lives.
        if (self.wrapper_gone || self.past_term_at) && (self.group_empty || self.revoke_early) {
            self.revoke = self.revoke.or(self.lease.take());
        }
    }

    /// The lease to revoke now, once: one bounded call; on failure the TTL frees it.
    pub fn poll_revoke(&mut self) -> Option<LeaseId> {
        self.revoke.take()
    }

    /// The command exited: stop whatever it left behind.
    fn handle_main_exit(&mut self, now: Instant) {
        self.main_exited = true;
        if self.kill_by.is_none() {
            self.begin_stop(now, now.plus(self.kill_after), "command exited");
        }
    }

    /// What a reap found: whether the command has exited, and whether the shim has any
    /// child left. With the command gone and no child left, the group is empty: the
    /// signals still queued have nobody to reach, and the exit is due.
    fn handle_reaped(&mut self, now: Instant, main_exited: bool, children_left: bool) {
        debug_assert!(main_exited || !self.main_exited, "the command exits once: a later reap still knows it");
        if main_exited {
            self.handle_main_exit(now);
        }
        if main_exited && !children_left {
            self.actions.clear();
            self.exit_due = true;
            self.group_empty = true;
        }
        self.maybe_revoke();
    }

    /// Whether the command and its whole group are gone: report the exit, stop.
    pub fn exit_due(&self) -> bool {
        self.exit_due
    }

    /// Deadlines: SIGTERM at `term_at`, SIGKILL at the kill deadline (repeated).
    fn handle_timeout(&mut self, now: Instant) {
        // Deliberately broken (a build for the invariant suite, or the simulator's checker
        // tests): the session's deadlines are ignored; only ordered stops still escalate.
        let kill_at = if self.ignore_deadlines { Instant::from_nanos(u64::MAX) } else { self.kill_at };
        if !self.ignore_deadlines && now >= self.term_at {
            if self.kill_by.is_none() {
                self.begin_stop(now, self.kill_at, "term_at reached");
            }
            self.past_term_at = true;
            self.maybe_revoke();
        }
        let kill_by = self.kill_by.map_or(kill_at, |k| k.min(kill_at));
        if now >= kill_by {
            self.actions.push_back(ShimSignal::Kill);
        }
    }

    fn begin_stop(&mut self, now: Instant, kill_by: Instant, why: &'static str) {
        let kill_by = kill_by.min(self.kill_at).max(now);
        if self.kill_by.is_some_and(|k| k <= kill_by) {
            return;
        }
        let first = self.kill_by.is_none();
        self.kill_by = Some(kill_by);
        if first {
            self.actions.push_back(ShimSignal::Term(why));
        }
    }

    /// The next signal to send.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<ShimSignal> {
        self.actions.pop_front()
    }

    /// When to wake next (given the current time, for the re-walk while stopping).
    #[must_use]
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let mut next = match self.kill_by {
            None if self.ignore_deadlines => now.plus(REWALK_INTERVAL),
            None => self.term_at.min(self.kill_at),
            Some(kill_by) => kill_by.min(self.kill_at).min(now.plus(REWALK_INTERVAL)),
        };
        if self.main_exited {
            next = next.min(now.plus(REWALK_INTERVAL));
        }
        next
    }

    /// The kill deadline once stopping (for logs).
    pub fn kill_by(&self) -> Option<Instant> {
        self.kill_by
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn actions(r: &mut ShimRules) -> Vec<ShimSignal> {
        std::iter::from_fn(|| r.poll_action()).collect()
    }

    #[test]
    fn deadlines_hold_without_the_wrapper() {
        let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
        r.handle_timeout(at(3_999));
        assert_eq!(actions(&mut r), vec![]);
        r.handle_timeout(at(4_000));
        assert_eq!(actions(&mut r), vec![ShimSignal::Term("term_at reached")]);
        // Updates no longer count once stopping.
        r.handle_deadlines(at(20_000), at(25_000));
        r.handle_timeout(at(8_999));
        assert_eq!(actions(&mut r), vec![]);
        r.handle_timeout(at(9_000));
        r.handle_timeout(at(9_050));
        assert_eq!(actions(&mut r), vec![ShimSignal::Kill, ShimSignal::Kill]);
    }

    #[test]
    fn a_closed_pipe_stops_at_once_and_kills_by_the_earlier_deadline() {
        // (event at, kill_after, kill_at) => SIGKILL due at
        let table: &[(u64, u64, u64, u64)] =
            &[(1_000, 5_000, 9_000, 6_000), (6_000, 5_000, 9_000, 9_000), (1_000, 100, 9_000, 1_100)];
        for (when, kill_after, kill_at, due) in table {
            let mut r = ShimRules::new(at(4_000), at(*kill_at), Duration::from_millis(*kill_after));
            r.handle_link_closed(at(*when));
            assert_eq!(actions(&mut r), vec![ShimSignal::Term("wrapper gone")]);
            assert_eq!(r.kill_by(), Some(at(*due)));
            r.handle_timeout(at(due - 1));
            assert!(!actions(&mut r).contains(&ShimSignal::Kill));
            r.handle_timeout(at(*due));
            assert_eq!(actions(&mut r), vec![ShimSignal::Kill]);
        }
    }

    #[test]
    fn deadline_updates_move_term_at_later() {
        let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
        r.handle_deadlines(at(6_000), at(11_000));
        r.handle_timeout(at(5_000));
        assert_eq!(actions(&mut r), vec![]);
        assert_eq!(r.poll_timeout(at(5_000)), at(6_000));
        r.handle_terminate(at(5_500), at(11_000));
        assert_eq!(actions(&mut r), vec![ShimSignal::Term("ordered")]);
        assert_eq!(r.kill_by(), Some(at(10_500)));
        r.handle_main_exit(at(5_600));
        assert_eq!(actions(&mut r), vec![], "one SIGTERM per stop");
        assert_eq!(r.poll_timeout(at(5_600)), at(5_650));
    }

    #[test]
    fn the_lease_is_revoked_once_only_when_the_wrapper_and_the_group_are_gone() {
        let lease = Some(LeaseId(7));
        // (wrapper gone, group empty, lease given) in either order => revoked
        for (link_first, wrapper_gone, group_empty, given, revoked) in [
            (true, true, true, true, true),
            (false, true, true, true, true),
            (true, true, false, true, false),
            (true, false, true, true, false),
            (true, true, true, false, false),
        ] {
            let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
            if given {
                r.handle_lease(LeaseId(7));
            }
            let steps: [bool; 2] = if link_first { [true, false] } else { [false, true] };
            for link in steps {
                match (link, wrapper_gone, group_empty) {
                    (true, true, _) => r.handle_link_closed(at(1_000)),
                    (false, _, true) => r.handle_reaped(at(1_500), true, false),
                    _ => {}
                }
            }
            let want = if revoked { lease } else { None };
            assert_eq!(r.poll_revoke(), want, "{link_first} {wrapper_gone} {group_empty} {given}");
            assert_eq!(r.poll_revoke(), None, "once");
            if revoked {
                r.handle_link_closed(at(2_000));
                r.handle_reaped(at(1_500), true, false);
                assert_eq!(r.poll_revoke(), None, "once");
            }
        }
    }

    #[test]
    fn a_frozen_wrapper_is_revoked_once_term_at_passed_and_the_group_is_dead() {
        let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
        r.handle_lease(LeaseId(7));
        // Dead before term_at (the command's own exit): the lease still counts.
        r.handle_reaped(at(3_000), true, false);
        r.handle_timeout(at(3_999));
        assert_eq!(r.poll_revoke(), None);
        let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
        r.handle_lease(LeaseId(7));
        r.handle_timeout(at(4_000));
        assert_eq!(actions(&mut r), vec![ShimSignal::Term("term_at reached")]);
        assert_eq!(r.poll_revoke(), None, "the group still runs");
        r.handle_reaped(at(4_100), true, false);
        assert_eq!(r.poll_revoke(), Some(LeaseId(7)));
        assert_eq!(r.poll_revoke(), None, "once");
        r.handle_timeout(at(9_000));
        assert_eq!(r.poll_revoke(), None, "once");
        // Past kill_at with a process still alive: no revoke until it is gone.
        let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
        r.handle_lease(LeaseId(7));
        r.handle_timeout(at(9_000));
        assert_eq!(actions(&mut r), vec![ShimSignal::Term("term_at reached"), ShimSignal::Kill]);
        r.handle_reaped(at(9_001), true, true);
        assert_eq!(r.poll_revoke(), None);
        r.handle_reaped(at(9_010), true, false);
        assert_eq!(r.poll_revoke(), Some(LeaseId(7)));
    }

    #[test]
    fn an_ordered_stop_before_term_at_is_no_reason_to_revoke() {
        let mut r = ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5));
        r.handle_lease(LeaseId(7));
        r.handle_terminate(at(1_000), at(9_000));
        r.handle_timeout(at(3_000));
        assert_eq!(actions(&mut r), vec![ShimSignal::Term("ordered")]);
        r.handle_reaped(at(3_001), true, false);
        assert_eq!(r.poll_revoke(), None);
    }

    #[test]
    fn the_sabotaged_rules_revoke_before_the_group_is_dead() {
        let mut r =
            ShimRules::new(at(4_000), at(9_000), Duration::from_secs(5)).with_sabotage(Sabotage::RevokeBeforeGroupDead);
        r.handle_lease(LeaseId(7));
        r.handle_link_closed(at(1_000));
        assert_eq!(r.poll_revoke(), Some(LeaseId(7)));
    }
}
