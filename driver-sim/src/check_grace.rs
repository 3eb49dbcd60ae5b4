//! `kill-grace`: a holder child that its shim stops gets its grace, and no more. The
//! SIGTERM comes first, and the SIGKILL (a stubborn or stopped child needs one) comes
//! `kill_after` after it — or at the session's `kill_at` the wrapper had told the shim,
//! when that comes first (`Session::kill_by`, `ShimRules`' stop; a later stop order only
//! brings it forward, never past that) — on the host's monotonic clock, within timer
//! rounding; a host frozen meanwhile (its shim too) may kill later.

use crate::record::Outcome;
use crate::verdict::{host_frozen, secs, violation, Violation};

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
        let frozen = host_frozen(&outcome.faults, s.client, s.span.0, at);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Scenario, SimArgs, SimOptions};
    use crate::record::{FaultRecord, StopRecord};
    use conch_checkers::Kind;

    const S: u64 = 1_000_000_000;

    /// Violations of one stubborn child's stop: SIGTERM at 10 s, told `kill_at`, SIGKILL.
    fn caught(term: Option<u64>, kill_at: u64, kill: u64, faults: Vec<FaultRecord>) -> usize {
        let opts = SimOptions::draw(1, &SimArgs::new(Scenario::Elect));
        let mut outcome = Outcome::new(opts, 60 * S, 100 * S);
        outcome.faults = faults;
        let span = (term.unwrap_or(kill), kill);
        outcome.stops.push(StopRecord { client: 0, rev: 7, term, kill_at, kill: Some(kill), span });
        let mut v = Vec::new();
        check_grace(&outcome, &mut v);
        v.len()
    }

    #[test]
    fn the_sigkill_comes_at_the_end_of_the_grace_or_at_kill_at() {
        let grace = SimOptions::draw(1, &SimArgs::new(Scenario::Elect)).kill_after.as_nanos() as u64;
        let (term, far) = (10 * S, 50 * S);
        assert_eq!(caught(Some(term), far, term + grace, vec![]), 0, "after its grace");
        assert_eq!(caught(Some(term), term + grace / 2, term + grace / 2, vec![]), 0, "at an earlier kill_at");
        assert_eq!(caught(Some(term), far, term, vec![]), 1, "at once");
        assert_eq!(caught(Some(term), term + grace / 2, term + grace / 4, vec![]), 1, "before kill_at");
        assert_eq!(caught(None, far, term, vec![]), 1, "no SIGTERM first");
        assert_eq!(caught(Some(term), far, term + 2 * grace, vec![]), 1, "past its grace");
        let freeze = FaultRecord { kind: Kind::Freeze, client: Some(0), from: term, to: term + 2 * grace };
        assert_eq!(caught(Some(term), far, term + 2 * grace, vec![freeze]), 0, "a frozen host's shim kills late");
    }
}
