//! The failure cases of the functional tester, named as etcd's tester names them, plus
//! conch's own. Each has `inject` (the cluster is healthy when it is called), `recover`
//! (undo it; the round loop then waits for health) and a one-line `desc`. Its `Class`
//! says what the checkers may expect while it lasts.
use std::time::Duration;

use conch_core::backoff::SplitMix64;
use nix::sys::signal::Signal;

use super::stressers::{JOBS, OFFICE};
use super::World;
use crate::invariant::parse;

/// A failure case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum CaseKind {
    /// SIGTERM one follower, restart it on the same data.
    SIGTERM_ONE_FOLLOWER,
    /// SIGTERM the leader, restart it on the same data.
    SIGTERM_LEADER,
    /// SIGTERM two of three members (quorum lost), restart them.
    SIGTERM_QUORUM,
    /// SIGTERM every member, restart them all.
    SIGTERM_ALL,
    /// SIGKILL one follower, restart it.
    SIGKILL_ONE_FOLLOWER,
    /// SIGKILL the leader, restart it.
    SIGKILL_LEADER,
    /// SIGQUIT a follower, wipe its data, member remove; then member add and join anew.
    SIGQUIT_AND_REMOVE_ONE_FOLLOWER,
    /// SIGQUIT the leader, wipe its data, member remove; then member add and join anew.
    SIGQUIT_AND_REMOVE_LEADER,
    /// Black-hole every peer byte a follower sends or receives.
    BLACKHOLE_PEER_PORT_TX_RX_ONE_FOLLOWER,
    /// Black-hole every peer byte the leader sends or receives.
    BLACKHOLE_PEER_PORT_TX_RX_LEADER,
    /// Black-hole the peer traffic of two members (no quorum anywhere).
    BLACKHOLE_PEER_PORT_TX_RX_QUORUM,
    /// Delay the leader's peer traffic 100-250 ms each way.
    DELAY_PEER_PORT_TX_RX_LEADER,
    /// Delay every member's peer traffic 50-150 ms each way.
    DELAY_PEER_PORT_TX_RX_ALL,
    /// SIGSTOP the leader for 2.5-3.5 s (over the election timeout), then SIGCONT.
    SIGSTOP_LEADER,
    /// Etcdctl move-leader to a follower.
    MOVE_LEADER,
    /// SIGKILL the conch elect wrapper whose child holds the office.
    SIGKILL_LEADER_WRAPPER,
    /// SIGKILL the conchd running the current tick (of ft-slow, else ft-fast).
    SIGKILL_CONCHD_RUNNING_TICK,
    /// SIGKILL one follower and keep it down for the whole round (failover).
    MEMBER_DOWN_WHOLE_ROUND,
}

use CaseKind::*;

/// Every case, in a fixed order.
pub const ALL: [CaseKind; 18] = [
    SIGTERM_ONE_FOLLOWER,
    SIGTERM_LEADER,
    SIGTERM_QUORUM,
    SIGTERM_ALL,
    SIGKILL_ONE_FOLLOWER,
    SIGKILL_LEADER,
    SIGQUIT_AND_REMOVE_ONE_FOLLOWER,
    SIGQUIT_AND_REMOVE_LEADER,
    BLACKHOLE_PEER_PORT_TX_RX_ONE_FOLLOWER,
    BLACKHOLE_PEER_PORT_TX_RX_LEADER,
    BLACKHOLE_PEER_PORT_TX_RX_QUORUM,
    DELAY_PEER_PORT_TX_RX_LEADER,
    DELAY_PEER_PORT_TX_RX_ALL,
    SIGSTOP_LEADER,
    MOVE_LEADER,
    SIGKILL_LEADER_WRAPPER,
    SIGKILL_CONCHD_RUNNING_TICK,
    MEMBER_DOWN_WHOLE_ROUND,
];

/// The fixed subset CI runs.
pub const CI: [CaseKind; 6] = [
    SIGKILL_LEADER,
    BLACKHOLE_PEER_PORT_TX_RX_LEADER,
    SIGTERM_QUORUM,
    MOVE_LEADER,
    MEMBER_DOWN_WHOLE_ROUND,
    SIGKILL_CONCHD_RUNNING_TICK,
];

/// What a case does to the cluster, for the checkers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Quorum and the leader stay (a follower goes, peers are slowed, leadership is
    /// handed over cleanly, a member is down all round): no holder may be killed, no
    /// conch command may fail for want of etcd, every tick runs but those within
    /// 2 s of the fault's start and of its recovery.
    Kept,
    /// The leader goes; the other two elect a new one. Ticks may be missed until a
    /// session lost meanwhile has run out (see `checkers`); kills are counted, not failed.
    LeaderLost,
    /// Quorum is lost: every child must die within the loss bound, services come back
    /// within the back bound of quorum's return.
    QuorumLost,
    /// conch's own: a wrapper or a daemon is SIGKILLed; etcd is fine.
    ConchKill,
}

/// What `inject` did, for `recover` and the checkers.
#[derive(Clone, Debug, Default)]
pub struct Injection {
    /// Members (or, for conch's own cases, the stresser's index) hit.
    pub targets: Vec<usize>,
    /// How long the fault stays before `recover`.
    pub hold: Duration,
    /// When the fault was fully in place (`mono_ns`), before any verification.
    pub in_place: u64,
    /// A stresser role held down until `recover`.
    pub role: Option<String>,
    /// The cron run that was killed: (job, CONCH_TICK).
    pub killed_tick: Option<(String, String)>,
    /// Members removed from the cluster (re-added by `recover`).
    pub removed: Vec<usize>,
}

/// Draws a duration in `[lo, hi]` ms.
fn between(rng: &mut SplitMix64, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below(hi - lo + 1))
}

impl CaseKind {
    /// Its name, as etcd's tester spells it.
    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// Looks a case up by name (any case).
    pub fn parse(name: &str) -> Option<CaseKind> {
        ALL.iter().copied().find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// One line on what it does.
    pub fn desc(self) -> &'static str {
        match self {
            SIGTERM_ONE_FOLLOWER => "SIGTERM one follower, restart it on the same data",
            SIGTERM_LEADER => "SIGTERM the leader, restart it on the same data",
            SIGTERM_QUORUM => "SIGTERM two of three members (quorum lost), restart them",
            SIGTERM_ALL => "SIGTERM every member, restart them all",
            SIGKILL_ONE_FOLLOWER => "SIGKILL one follower, restart it",
            SIGKILL_LEADER => "SIGKILL the leader, restart it",
            SIGQUIT_AND_REMOVE_ONE_FOLLOWER => {
                "SIGQUIT a follower, wipe its data, member remove; then member add and join anew"
            }
            SIGQUIT_AND_REMOVE_LEADER => {
                "SIGQUIT the leader, wipe its data, member remove; then member add and join anew"
            }
            BLACKHOLE_PEER_PORT_TX_RX_ONE_FOLLOWER => "black-hole every peer byte a follower sends or receives",
            BLACKHOLE_PEER_PORT_TX_RX_LEADER => "black-hole every peer byte the leader sends or receives",
            BLACKHOLE_PEER_PORT_TX_RX_QUORUM => "black-hole the peer traffic of two members (no quorum anywhere)",
            DELAY_PEER_PORT_TX_RX_LEADER => "delay the leader's peer traffic 100-250 ms each way",
            DELAY_PEER_PORT_TX_RX_ALL => "delay every member's peer traffic 50-150 ms each way",
            SIGSTOP_LEADER => "SIGSTOP the leader for 2.5-3.5 s (over the election timeout), then SIGCONT",
            MOVE_LEADER => "etcdctl move-leader to a follower",
            SIGKILL_LEADER_WRAPPER => "SIGKILL the conch elect wrapper whose child holds the office",
            SIGKILL_CONCHD_RUNNING_TICK => "SIGKILL the conchd running the current tick (of ft-slow, else ft-fast)",
            MEMBER_DOWN_WHOLE_ROUND => "SIGKILL one follower and keep it down for the whole round (failover)",
        }
    }

    /// What it does, for the checkers.
    pub fn class(self) -> Class {
        match self {
            SIGTERM_ONE_FOLLOWER
            | SIGKILL_ONE_FOLLOWER
            | SIGQUIT_AND_REMOVE_ONE_FOLLOWER
            | BLACKHOLE_PEER_PORT_TX_RX_ONE_FOLLOWER
            | DELAY_PEER_PORT_TX_RX_LEADER
            | DELAY_PEER_PORT_TX_RX_ALL
            | MOVE_LEADER
            | MEMBER_DOWN_WHOLE_ROUND => Class::Kept,
            SIGTERM_LEADER
            | SIGKILL_LEADER
            | SIGQUIT_AND_REMOVE_LEADER
            | BLACKHOLE_PEER_PORT_TX_RX_LEADER
            | SIGSTOP_LEADER => Class::LeaderLost,
            SIGTERM_QUORUM | SIGTERM_ALL | BLACKHOLE_PEER_PORT_TX_RX_QUORUM => Class::QuorumLost,
            SIGKILL_LEADER_WRAPPER | SIGKILL_CONCHD_RUNNING_TICK => Class::ConchKill,
        }
    }

    /// Injects the failure. `Err` says why it could not be (the round then fails).
    pub fn inject(self, w: &mut World, rng: &mut SplitMix64) -> Result<Injection, String> {
        let n = w.cluster.members.len();
        let leader = || w.cluster.wait_leader(Duration::from_secs(10)).ok_or("no leader before inject");
        let mut inj = Injection { hold: between(rng, 3000, 5000), ..Injection::default() };
        let pick_follower = |rng: &mut SplitMix64, leader: usize| {
            let others: Vec<usize> = (0..n).filter(|i| *i != leader).collect();
            others[rng.below(others.len() as u64) as usize]
        };
        inj.targets = match self {
            SIGTERM_ONE_FOLLOWER
            | SIGKILL_ONE_FOLLOWER
            | SIGQUIT_AND_REMOVE_ONE_FOLLOWER
            | BLACKHOLE_PEER_PORT_TX_RX_ONE_FOLLOWER
            | MOVE_LEADER
            | MEMBER_DOWN_WHOLE_ROUND => {
                vec![pick_follower(rng, leader()?)]
            }
            SIGTERM_LEADER
            | SIGKILL_LEADER
            | SIGQUIT_AND_REMOVE_LEADER
            | BLACKHOLE_PEER_PORT_TX_RX_LEADER
            | DELAY_PEER_PORT_TX_RX_LEADER
            | SIGSTOP_LEADER => vec![leader()?],
            SIGTERM_QUORUM | BLACKHOLE_PEER_PORT_TX_RX_QUORUM => {
                let spared = rng.below(n as u64) as usize;
                (0..n).filter(|i| *i != spared).collect()
            }
            SIGTERM_ALL | DELAY_PEER_PORT_TX_RX_ALL => (0..n).collect(),
            SIGKILL_LEADER_WRAPPER | SIGKILL_CONCHD_RUNNING_TICK => Vec::new(),
        };
        let targets = inj.targets.clone();
        match self {
            SIGTERM_ONE_FOLLOWER | SIGTERM_LEADER | SIGTERM_QUORUM | SIGTERM_ALL => {
                targets.iter().for_each(|t| w.cluster.stop(*t, Signal::SIGTERM));
            }
            SIGKILL_ONE_FOLLOWER | SIGKILL_LEADER => targets.iter().for_each(|t| w.cluster.stop(*t, Signal::SIGKILL)),
            MEMBER_DOWN_WHOLE_ROUND => {
                w.cluster.stop(targets[0], Signal::SIGKILL);
                inj.hold = between(rng, 18_000, 22_000);
            }
            SIGQUIT_AND_REMOVE_ONE_FOLLOWER | SIGQUIT_AND_REMOVE_LEADER => {
                w.cluster.stop(targets[0], Signal::SIGQUIT);
                inj.in_place = crate::mono_ns();
                w.cluster.remove(targets[0])?;
                inj.removed = targets.clone();
            }
            BLACKHOLE_PEER_PORT_TX_RX_ONE_FOLLOWER
            | BLACKHOLE_PEER_PORT_TX_RX_LEADER
            | BLACKHOLE_PEER_PORT_TX_RX_QUORUM => {
                targets.iter().for_each(|t| w.cluster.net.isolate(*t));
                inj.in_place = crate::mono_ns();
                verify_isolation(w, &targets)?;
            }
            DELAY_PEER_PORT_TX_RX_LEADER => w.cluster.net.delay(targets[0], between(rng, 100, 250)),
            DELAY_PEER_PORT_TX_RX_ALL => {
                let d = between(rng, 50, 150);
                targets.iter().for_each(|t| w.cluster.net.delay(*t, d));
            }
            SIGSTOP_LEADER => {
                w.cluster.freeze(targets[0]);
                inj.hold = between(rng, 2500, 3500);
            }
            MOVE_LEADER => {
                w.cluster.move_leader(targets[0])?;
                inj.in_place = crate::mono_ns();
                let moved = w.cluster.wait_leader(Duration::from_secs(5)) == Some(targets[0]);
                if !moved {
                    return Err(format!("move-leader to m{}: the leader is {:?}", targets[0], w.cluster.leader()));
                }
                inj.hold = between(rng, 1000, 2000);
            }
            SIGKILL_LEADER_WRAPPER => {
                let holder = parse(&w.paths.elect_log()).into_iter().rev().find(|iv| iv.end.is_none());
                let client = holder.ok_or(format!("nobody holds {OFFICE}"))?.client;
                let role = format!("elect-{client}");
                w.stressers.hold(&role);
                if !w.stressers.signal(&role, Signal::SIGKILL) {
                    return Err(format!("{role} does not run"));
                }
                inj.targets = vec![client];
                inj.role = Some(role);
            }
            SIGKILL_CONCHD_RUNNING_TICK => {
                // A run that started at least 30 ms ago and has not ended, of ft-slow if
                // one comes, else of ft-fast (bounded wait).
                let mut running = None;
                crate::wait_until(Duration::from_secs(6), || {
                    let now = crate::mono_ns();
                    running = JOBS.iter().find_map(|(job, _, _)| {
                        let open = parse(&w.paths.cron_log(job))
                            .into_iter()
                            .find(|iv| iv.end.is_none() && iv.tick.is_some() && now > iv.start + 30_000_000);
                        open.map(|iv| (*job, iv))
                    });
                    running.is_some()
                });
                let (job, run) = running.ok_or("no cron run seen within 6 s")?;
                let role = format!("conchd-{}", run.client);
                w.stressers.hold(&role);
                if !w.stressers.signal(&role, Signal::SIGKILL) {
                    return Err(format!("{role} does not run"));
                }
                inj.targets = vec![run.client];
                inj.role = Some(role);
                inj.killed_tick = run.tick.map(|t| (job.to_string(), t));
            }
        }
        if inj.in_place == 0 {
            inj.in_place = crate::mono_ns();
        }
        if self.class() == Class::QuorumLost {
            // Longer than a TTL, so every session must run out before quorum returns.
            let ttl = super::TTL.as_millis() as u64;
            inj.hold = between(rng, ttl + 1000, ttl + 2500);
        }
        Ok(inj)
    }

    /// Undoes the failure: peers healed, members thawed, re-added or restarted, a held
    /// stresser let go. The round loop waits for health afterwards.
    pub fn recover(self, w: &mut World, inj: &Injection) -> Result<(), String> {
        w.cluster.net.heal_all();
        if let Some(role) = &inj.role {
            w.stressers.release(role);
        }
        let mut errors = Vec::new();
        for i in 0..w.cluster.members.len() {
            w.cluster.thaw(i);
            let back = if inj.removed.contains(&i) { w.cluster.add_back(i) } else { w.cluster.restart(i) };
            if let Err(e) = back {
                errors.push(format!("m{i}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Checks that the cut really cut (bounded: three election timeouts + 2 s): every
/// isolated member has lost its leader, and when one member is cut off the others agree
/// on a leader other than it.
fn verify_isolation(w: &World, targets: &[usize]) -> Result<(), String> {
    let c = &w.cluster;
    let n = c.members.len();
    let mut last = String::new();
    let ok = crate::wait_until(c.timings.election * 3 + Duration::from_secs(2), || {
        let statuses: Vec<_> = (0..n).map(|i| c.status(i)).collect();
        let lost = targets.iter().all(|t| statuses[*t].is_some_and(|s| s.leader == 0));
        let others_ok = targets.len() != 1
            || (0..n)
                .filter(|i| !targets.contains(i))
                .all(|i| statuses[i].is_some_and(|s| s.leader != 0 && s.leader != c.members[targets[0]].id));
        last = format!("{statuses:?}");
        lost && others_ok
    });
    if ok {
        Ok(())
    } else {
        Err(format!("isolation of {targets:?} did not happen: statuses {last}"))
    }
}
