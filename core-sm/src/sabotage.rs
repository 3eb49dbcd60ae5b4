//! Deliberate bugs, for proving that the checkers can fail.
//!
//! A checker that never fires proves nothing. Each [`Sabotage`] breaks one rule of one
//! machine the way a plausible bug would; the simulator's tests switch one on and assert
//! that the matching checker reports a violation within a few seeds. A bug is switched on
//! only through the machines' `with_sabotage()` builders (`Service`, `Runner`, `Conchd`,
//! `ShimRules`, `Endpoints`), which only the simulator calls: no configuration the CLI
//! builds can carry one. The one other way in, the `break-shim-deadline` cargo feature
//! (a broken shim for the invariant suite), does not compile in a release build.
use std::fmt;

/// One deliberate bug (or none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sabotage {
    /// No bug: the real machines.
    #[default]
    None,
    /// The shim ignores `term_at`/`kill_at` (only orders and exits stop the child).
    /// Caught by: bounded holders.
    IgnoreDeadlines,
    /// The hold ranks contenders by mod-revision instead of create-revision.
    /// Caught by: bounded holders / FIFO convergence (semaphores touch keys).
    RankByModRevision,
    /// The child's fencing token is a constant (the wrong field passed on).
    /// Caught by: fencing.
    ConstantFencingToken,
    /// A waiter ignores the deletion of its own key (etcd issue 19597).
    /// Caught by: convergence.
    IgnoreOwnKeyDelete,
    /// The release never revokes the session lease.
    /// Caught by: no leaked keys or leases.
    KeepLeaseOnExit,
    /// conchd claims a tick with a plain put, without the compare.
    /// Caught by: cron at-most-once.
    ClaimWithoutCompare,
    /// conchd treats every tick reached after its scheduled second as late.
    /// Caught by: cron liveness.
    SkipEveryLateTick,
    /// A restarted conchd catches up on the ticks of the last hour.
    /// Caught by: no stale past-tick claim.
    ClaimPastTicks,
    /// A waiter takes the deletion of a key it watches as its acquisition, without the
    /// range read that proves its own key is still there and ranked (etcd issue 11456).
    /// Caught by: fifo / bounded holders.
    AcquireOnWake,
    /// The endpoint machine never moves the pin off a failed member (etcd-client's
    /// behaviour before conch had failover).
    /// Caught by: failover.
    StayOnFailedEndpoint,
    /// conchd writes a run's release and result once and never retries them, nor sweeps
    /// the running key of an ambiguous claim (the behaviour before issue 11's drill).
    /// Caught by: cron running key.
    NoWriteRetry,
    /// The shim revokes the session lease as soon as the wrapper's pipe closes, before
    /// the child's processes are gone (issue 16.1 done wrong).
    /// Caught by: bounded holders (a stubborn child outlives the revoke).
    RevokeBeforeGroupDead,
    /// A fenced write (`conch put`/`del`/`txn`) is sent without its guard compare.
    /// Caught by: fenced writes.
    UnguardedWrite,
    /// The leader ignores step-down requests.
    /// Caught by: step-down.
    IgnoreStepDown,
    /// A first-in-line office waiter ignores the priority marker read and never yields.
    /// Caught by: priority.
    IgnorePriority,
}

impl Sabotage {
    /// Every deliberate bug.
    pub const ALL: [Sabotage; 15] = [
        Sabotage::IgnoreDeadlines,
        Sabotage::RankByModRevision,
        Sabotage::ConstantFencingToken,
        Sabotage::IgnoreOwnKeyDelete,
        Sabotage::KeepLeaseOnExit,
        Sabotage::ClaimWithoutCompare,
        Sabotage::SkipEveryLateTick,
        Sabotage::ClaimPastTicks,
        Sabotage::AcquireOnWake,
        Sabotage::StayOnFailedEndpoint,
        Sabotage::NoWriteRetry,
        Sabotage::RevokeBeforeGroupDead,
        Sabotage::UnguardedWrite,
        Sabotage::IgnoreStepDown,
        Sabotage::IgnorePriority,
    ];

    /// The kebab-case name used on the command line and in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Sabotage::None => "none",
            Sabotage::IgnoreDeadlines => "ignore-deadlines",
            Sabotage::RankByModRevision => "rank-by-mod-revision",
            Sabotage::ConstantFencingToken => "constant-fencing-token",
            Sabotage::IgnoreOwnKeyDelete => "ignore-own-key-delete",
            Sabotage::KeepLeaseOnExit => "keep-lease-on-exit",
            Sabotage::ClaimWithoutCompare => "claim-without-compare",
            Sabotage::SkipEveryLateTick => "skip-every-late-tick",
            Sabotage::ClaimPastTicks => "claim-past-ticks",
            Sabotage::AcquireOnWake => "acquire-on-wake",
            Sabotage::StayOnFailedEndpoint => "stay-on-failed-endpoint",
            Sabotage::NoWriteRetry => "no-write-retry",
            Sabotage::RevokeBeforeGroupDead => "revoke-before-group-dead",
            Sabotage::UnguardedWrite => "unguarded-write",
            Sabotage::IgnoreStepDown => "ignore-step-down",
            Sabotage::IgnorePriority => "ignore-priority",
        }
    }

    /// Parses [`Sabotage::as_str`].
    pub fn parse(text: &str) -> Option<Sabotage> {
        std::iter::once(Sabotage::None).chain(Sabotage::ALL).find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Sabotage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in std::iter::once(Sabotage::None).chain(Sabotage::ALL) {
            assert_eq!(Sabotage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Sabotage::parse("nonsense"), None);
    }
}
