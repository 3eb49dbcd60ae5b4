//! The fault plan: a seeded list of faults over the safety phase. It is plain data, so a
//! property test can generate plans directly and shrink a failing one to a few faults.
use conch_core::backoff::SplitMix64;

use crate::options::{FaultKind, Scenario, SimOptions};

/// No fault before this (ms): let the clients start.
pub const FIRST_FAULT_MS: u64 = 1500;

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFault {
    /// When (ms of simulated time).
    pub at_ms: u64,
    /// What.
    pub kind: FaultKind,
    /// Whom: a client index (taken modulo the number of clients).
    pub target: usize,
    /// How long it lasts, for faults that last (ms).
    pub hold_ms: u64,
    /// A kind-specific draw: the direction of a one-way cut, the size and sign of a clock
    /// jump, the subset and heal order of a swizzle.
    pub param: u64,
}

/// Draws the plan of `opts` (empty when no fault kind is on).
pub fn draw_plan(opts: &SimOptions) -> Vec<PlannedFault> {
    let mut plan = Vec::new();
    draw_member_plan(opts, &mut plan);
    draw_paired_plan(opts, &mut plan);
    if opts.faults.is_empty() {
        return plan;
    }
    let mut rng = SplitMix64::new(opts.seed ^ 0xFA01_7A11);
    let safety_ms = opts.safety.as_millis() as u64;
    let gap = opts.fault_gap.as_millis() as u64;
    let ttl_ms = opts.ttl.as_millis() as u64;
    let mut at = FIRST_FAULT_MS + rng.next_u64() % gap.max(1);
    for _ in 0..100_000 {
        if at >= safety_ms {
            break;
        }
        let kind = opts.faults[(rng.next_u64() % opts.faults.len() as u64) as usize];
        // Short cuts (inside the margin) and long ones (past the TTL) both matter.
        let hold_ms = match rng.next_u64() % 3 {
            0 => 50 + rng.next_u64() % 500,
            1 => 200 + rng.next_u64() % ttl_ms,
            _ => ttl_ms + rng.next_u64() % (2 * ttl_ms),
        };
        let target = (rng.next_u64() % opts.clients().max(1) as u64) as usize;
        plan.push(PlannedFault { at_ms: at, kind, target, hold_ms, param: rng.next_u64() });
        at += gap / 2 + rng.next_u64() % (gap * 3 / 2 + 1);
    }
    // Member faults were drawn first, from their own stream; merge them in by time
    // (stable: at one instant, member faults come first).
    plan.sort_by_key(|f| f.at_ms);
    plan
}

/// Pairings, from their own stream: a paired fault on one client, then a key delete of the
/// same client while it lasts — the case of a holder that lost its own watch and cannot
/// re-read its key while its keepalives succeed (issue 14: it must not run on unbounded).
/// In `cron` every client is a target: a daemon whose calls are refused while its
/// keepalives succeed must still leave nothing behind (the key delete finds no key of a
/// hold; the refusal is the fault). `mixed` keeps its holders-only targets: a fault more
/// changes every later draw, and its seeds in scripts/sim-regressions.txt were found on
/// these plans.
fn draw_paired_plan(opts: &SimOptions, plan: &mut Vec<PlannedFault>) {
    // Clients 0.. are the office's, then the semaphore's, then the daemons.
    let targets = match opts.scenario {
        Scenario::Cron => opts.clients(),
        _ => opts.office_clients + opts.sema_clients,
    } as u64;
    if opts.paired.is_empty() || targets == 0 {
        return;
    }
    let mut rng = SplitMix64::new(opts.seed ^ 0x9A12_ED0F_91A7);
    let safety_ms = opts.safety.as_millis() as u64;
    let ttl_ms = opts.ttl.as_millis() as u64;
    let gap = (opts.fault_gap.as_millis() as u64).max(1000) * 4;
    let mut at = FIRST_FAULT_MS + rng.next_u64() % gap;
    for _ in 0..100_000 {
        if at >= safety_ms {
            break;
        }
        let kind = opts.paired[(rng.next_u64() % opts.paired.len() as u64) as usize];
        let target = (rng.next_u64() % targets) as usize;
        let hold_ms = ttl_ms + rng.next_u64() % (2 * ttl_ms);
        plan.push(PlannedFault { at_ms: at, kind, target, hold_ms, param: rng.next_u64() });
        let delete_at = at + 100 + rng.next_u64() % hold_ms.min(2000);
        plan.push(PlannedFault { at_ms: delete_at, kind: FaultKind::KeyDelete, target, hold_ms: 0, param: 0 });
        at += gap / 2 + rng.next_u64() % (gap + 1);
    }
}

/// The faults of single members, from their own stream (`target` is a member index). A
/// member fault is held for up to two TTLs, so failover under it is seen in both kinds of
/// session: a short blip inside the margin, and one the deadline rule would end.
fn draw_member_plan(opts: &SimOptions, plan: &mut Vec<PlannedFault>) {
    if opts.members < 2 || opts.member_faults.is_empty() {
        return;
    }
    let mut rng = SplitMix64::new(opts.seed ^ 0x3E3B_E125_F1A7);
    let safety_ms = opts.safety.as_millis() as u64;
    let gap = (opts.fault_gap.as_millis() as u64).max(1000) * 2;
    let ttl_ms = opts.ttl.as_millis() as u64;
    let mut at = FIRST_FAULT_MS + rng.next_u64() % gap;
    for _ in 0..100_000 {
        if at >= safety_ms {
            break;
        }
        let kinds = &opts.member_faults;
        let kind = kinds[(rng.next_u64() % kinds.len() as u64) as usize];
        let hold_ms = 100 + rng.next_u64() % (2 * ttl_ms);
        let target = (rng.next_u64() % opts.members as u64) as usize;
        plan.push(PlannedFault { at_ms: at, kind, target, hold_ms, param: rng.next_u64() });
        at += gap / 2 + rng.next_u64() % (gap + 1);
    }
}
