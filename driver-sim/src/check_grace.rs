//! `kill-grace`: a holder child that its shim stops gets its grace, and no more. The
//! SIGTERM comes first, and the SIGKILL (a stubborn or stopped child needs one) comes
//! `kill_after` after it — or at the session's `kill_at` the wrapper had told the shim,
//! when that comes first (`Session::kill_by`, `ShimRules`' stop; a later stop order only
//! brings it forward, never past that) — on the host's monotonic clock, within timer
//! rounding; a host frozen meanwhile (its shim too) may kill later.
use conch_checkers::Kind;

use crate::record::Outcome;
use crate::verdict::{secs, violation, Violation};

/// The checker's name.
pub const CHECKER: &str = "kill-grace";

/// Slack for timer rounding between the host's clock and simulated time (ns).
const SLACK_NS: u64 = 5_000_000;

/// Runs the checker.
pub fn check_grace(outcome: &Outcome, v: &mut Vec<Violation>) {
    let kill_after = outcome.opts.kill_after.as_nanos() as u64;
    for s in &outcome.stops {
        let Some(kill) = s.kill else { continue };
        let at = s.span.1;
        let what = format!("client {}'s child (token {}) SIGKILLed at {}", s.client, s.rev, secs(at));
        let Some(term) = s.term else {
            v.push(violation(CHECKER, format!("{what} with no SIGTERM before")).at(at));
            continue;
        };
        let grace_end = (term + kill_after).min(s.kill_at).max(term);
        let frozen = outcome.faults.iter().any(|f| {
            f.client == Some(s.client)
                && matches!(f.kind, Kind::Freeze | Kind::Site(_))
                && f.from <= at
                && f.to >= s.span.0
        });
        let how = if kill > grace_end + SLACK_NS && !frozen {
            "past its grace of"
        } else if kill + SLACK_NS < grace_end {
            "its grace ran"
        } else {
            continue;
        };
        let why = format!(
            "{what}, {} after its SIGTERM: {how} {} (kill_after {}, or the session's kill_at)",
            secs(kill - term),
            secs(grace_end - term),
            secs(kill_after)
        );
        v.push(violation(CHECKER, why).at(at));
    }
}
