//! `exit-codes`: every simulated wrapper's exit code is the one 01-cli's table gives for
//! how its run ended.
//!
//! * With `--restart`, only a failed fence ends a service by itself (71); the shutdown's
//!   SIGTERM ends it with 0 after a clean release, or keeps a lost hold's 70, an
//!   unreachable etcd's 69 or a failed fence's 71.
//! * One-shot (no `--restart`): 75 only once its `--wait` ran out; a hold it acquired and
//!   lost ends it with 70 (71 if its fence then failed); a 69 after it re-entered the
//!   queue only once the wait ran out (a re-entered waiter keeps waiting while etcd
//!   fails); it begins another cycle only after its session was lost while it waited
//!   (or, re-entered, a grant failed), never after a run of its child; SIGTERM ends it
//!   with 128 + 15 (a child SIGKILLed after the grace: 137), or the code the run already
//!   had (0, 69, 70, 71, 75). Otherwise its code is its child's (0: the simulated child
//!   exits 0; 137 when a fault SIGKILLed it), 69, 70 (a failed on-acquire hook), 71 or 75.
use crate::record::{ExitRecord, Outcome};
use crate::verdict::{secs, violation, Violation};

/// The checker's name.
pub const CHECKER: &str = "exit-codes";

/// Slack for a host's clock drift over a `--wait` and timer rounding (ns).
const SLACK_NS: u64 = 50_000_000;

/// Runs the checker.
pub fn check_exits(outcome: &Outcome, v: &mut Vec<Violation>) {
    for e in &outcome.exits {
        if let Some(why) = wrong(e) {
            let mode = if e.one_shot { "one-shot" } else { "--restart" };
            let detail = format!("{mode} client {} exited {} at {}: {why}", e.client, e.code, secs(e.at));
            v.push(violation(CHECKER, detail).at(e.at));
        }
    }
}

/// Why `e`'s code is not the one its ending gives, if it is not.
fn wrong(e: &ExitRecord) -> Option<String> {
    if !e.one_shot {
        let allowed: &[i32] = if e.signalled { &[0, 69, 70, 71] } else { &[71] };
        return (!allowed.contains(&e.code)).then(|| {
            let how = if e.signalled { "stopped by SIGTERM" } else { "not signalled" };
            format!("{how}, a service exits with one of {allowed:?}")
        });
    }
    let waited_out = e.wait.is_some_and(|w| e.at + SLACK_NS >= e.started + w);
    if let Some(why) = e.cycles_again.iter().find(|w| !matches!(w.as_str(), "session lost while waiting" | "etcd")) {
        return Some(format!("a one-shot began another cycle ({why})"));
    }
    if e.code == 75 && !waited_out {
        let wait = e.wait.map_or_else(|| "no --wait".to_string(), |w| format!("--wait {}", secs(w)));
        return Some(format!("not acquired, with {wait} from {}", secs(e.started)));
    }
    if e.lost_holding && ![70, 71].contains(&e.code) {
        return Some("it lost a hold it had acquired: 70".into());
    }
    if e.code == 69 && !e.cycles_again.is_empty() && !waited_out {
        return Some("a re-entered waiter keeps waiting while etcd fails and its --wait allows".into());
    }
    let mut allowed = vec![0, 69, 70, 71, 75];
    if e.signalled {
        allowed.extend([128 + 15, 128 + 9]);
    } else if e.child_killed {
        allowed.push(128 + 9);
    }
    (!allowed.contains(&e.code)).then(|| format!("its ending allows one of {allowed:?}"))
}
