//! Pre-emption (`conch elect OFFICE --priority P --preempt`): a waiting candidate asks a
//! lower-priority holder for the graceful hand-over of `--step-down`.
//!
//! # Rules
//!
//! * Only a waiter asks, never a holder, and only from a rank read's view: the office's
//!   first key (its holder, read with its value, the fifth range of a pre-empting
//!   candidate's rank read) and the top priority marker (the fourth).
//! * It asks when the holder's priority is **strictly** lower than its own (equal never
//!   pre-empts) and it would lead next among the waiters: no marker above its own, and
//!   among markers of its own priority it is either the first waiter in line or the
//!   marker that sorts first (the view has no other way to see its place among equals;
//!   a candidate behind an equal one of a lower-sorting lease does not ask).
//! * The holder's priority is what its holder record says — the same `P` as its marker,
//!   written in the same txn; a record without one, or a foreign key (`etcdctl elect`),
//!   has no marker and counts as the default, 0.
//! * The request is the one `--step-down` writes ([`crate::step_down`]): under
//!   `/conch/v1/stepdown/<office>/<our lease>`, naming the holder's token, on our own
//!   lease (it goes with us). It is sent once per holder token; re-sent only when the
//!   same holder still holds at a fresh read [`RESEND_FIRST`] later, the wait doubling
//!   up to [`RESEND_MAX`]. A new holder token starts over.
//! * The holder handles it exactly as a `--step-down` (stop the child, resign, with
//!   `--restart` campaign again at the back); the yield rule of [`crate::hold`] then puts
//!   the highest waiter first, and tokens still grow: the holder's key is gone before the
//!   next key acquires.
//! * Once we hold, our request (naming the old token, so harmless) is deleted.
use std::time::Duration;

use crate::ids::{LeaseId, Revision};
use crate::time::Instant;

/// A holder still there this long after our request is asked again.
pub const RESEND_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two requests to the same holder.
pub const RESEND_MAX: Duration = Duration::from_secs(60);

/// What a waiting candidate sees at one rank read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Our `--priority`.
    pub own: u32,
    /// Our lease (our marker's last segment).
    pub own_lease: LeaseId,
    /// The holder's priority (0 without a marker: the default).
    pub holder: u32,
    /// The top marker's priority and lease (`None`: no marker read).
    pub top: Option<(u32, LeaseId)>,
    /// Whether we are the first waiter (directly behind the holder).
    pub first_in_line: bool,
}

/// Whether the candidate seeing `view` pre-empts the holder.
pub fn preempts(view: &View) -> bool {
    if view.holder >= view.own {
        return false; // equal or higher: never pre-empted
    }
    match view.top {
        Some((p, _)) if p > view.own => false, // a higher waiter leads next
        Some((p, lease)) if p == view.own => view.first_in_line || lease == view.own_lease,
        // Our own marker is there while we wait: a top below ours (or none) is a read
        // that raced a marker's deletion; nobody above us waits.
        _ => true,
    }
}

/// The requests one candidate sent, for the bound: once per holder token, then backing
/// off while the same holder stays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asker {
    asked: Option<Asked>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Asked {
    token: Revision,
    next_at: Instant,
    wait: Duration,
    /// Whether a re-read is due at `next_at` (off while the rule does not hold, so a
    /// waiter that no longer wants the hand-over reads nothing more for it).
    armed: bool,
}

impl Asker {
    /// Whether to send a request for the holder of `token` now, given that `view`
    /// pre-empts it (`wanted`); records the send.
    pub fn consider(&mut self, now: Instant, token: Revision, wanted: bool) -> bool {
        if !wanted {
            self.disarm();
            return false;
        }
        match &mut self.asked {
            Some(a) if a.token == token && now < a.next_at => {
                a.armed = true;
                false
            }
            Some(a) if a.token == token => {
                a.wait = (a.wait * 2).min(RESEND_MAX);
                a.next_at = now.plus(a.wait);
                a.armed = true;
                true
            }
            _ => {
                let next_at = now.plus(RESEND_FIRST);
                self.asked = Some(Asked { token, next_at, wait: RESEND_FIRST, armed: true });
                true
            }
        }
    }

    /// No re-read is due (the view no longer pre-empts); what was asked is remembered.
    pub fn disarm(&mut self) {
        if let Some(a) = &mut self.asked {
            a.armed = false;
        }
    }

    /// When a waiter that asked reads again, to re-send if its holder stayed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.asked.as_ref().filter(|a| a.armed).map(|a| a.next_at)
    }

    /// Whether a request was ever sent (ours to delete once we hold).
    pub fn asked(&self) -> bool {
        self.asked.is_some()
    }

    /// Forgets the requests (we hold, or the hold is over).
    pub fn clear(&mut self) {
        self.asked = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: LeaseId = LeaseId(0x10);
    const OTHER: LeaseId = LeaseId(0x20);

    #[test]
    fn only_a_strictly_higher_candidate_that_leads_next_preempts() {
        // (own, holder, top, first in line) => pre-empts
        type Case = (u32, u32, Option<(u32, LeaseId)>, bool, bool);
        let table: &[Case] = &[
            (5, 0, Some((5, US)), false, true),
            (5, 1, Some((5, US)), true, true),
            (5, 4, Some((5, OTHER)), true, true),
            // Equal never pre-empts; nor does a lower candidate.
            (5, 5, Some((5, US)), true, false),
            (5, 9, Some((9, OTHER)), true, false),
            (0, 0, None, true, false),
            // A higher waiter leads next.
            (5, 0, Some((9, OTHER)), true, false),
            // Behind an equal one whose marker sorts first: not ours to ask.
            (5, 0, Some((5, OTHER)), false, false),
            // No marker read (or a stale, lower one): nobody above us.
            (5, 0, None, false, true),
            (5, 0, Some((3, OTHER)), false, true),
            (1000, 999, Some((1000, US)), false, true),
        ];
        for (i, &(own, holder, top, first_in_line, want)) in table.iter().enumerate() {
            let view = View { own, own_lease: US, holder, top, first_in_line };
            assert_eq!(preempts(&view), want, "case {i}: {view:?}");
        }
    }

    #[test]
    fn asks_once_per_holder_then_backs_off_while_it_stays() {
        let at = |s: u64| Instant::from_nanos(s * 1_000_000_000);
        let mut a = Asker::default();
        assert!(!a.consider(at(0), Revision(7), false), "not wanted: nothing sent");
        assert_eq!(a.poll_timeout(), None);
        assert!(a.consider(at(0), Revision(7), true));
        assert!(a.asked());
        // Woken again by anything: the same holder is not asked again before the wait.
        assert!(!a.consider(at(1), Revision(7), true));
        assert!(!a.consider(at(4), Revision(7), true));
        assert_eq!(a.poll_timeout(), Some(at(5)));
        // Still there: asked again, the wait doubling up to the cap.
        let mut sends = vec![];
        let mut now = 5;
        for _ in 0..8 {
            assert!(a.consider(at(now), Revision(7), true));
            let next = a.poll_timeout().unwrap();
            sends.push(next.since(at(now)).as_secs());
            now = next.since(at(0)).as_secs();
        }
        assert_eq!(sends, [10, 20, 40, 60, 60, 60, 60, 60]);
        // A new holder is asked at once.
        assert!(a.consider(at(now), Revision(9), true));
        assert_eq!(a.poll_timeout(), Some(at(now + 5)));
        // The view stops pre-empting (a higher waiter came): no re-read is due, and the
        // same holder is not asked again before its wait is over.
        assert!(!a.consider(at(now + 6), Revision(9), false));
        assert_eq!(a.poll_timeout(), None);
        assert!(!a.consider(at(now + 1), Revision(9), true));
        assert_eq!(a.poll_timeout(), Some(at(now + 5)));
        assert!(a.consider(at(now + 5), Revision(9), true));
        a.clear();
        assert!(!a.asked() && a.poll_timeout().is_none());
    }
}
