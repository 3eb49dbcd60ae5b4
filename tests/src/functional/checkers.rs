//! The functional tester's checkers: pure functions over a round's record, the interval
//! logs of the children and the stressers' exits, so each one is shown to fail on a
//! synthetic log (tests below). The interval and fencing sweeps are the invariant
//! suite's (`invariant::over_capacity`, `invariant::fencing`), and the cron ones
//! (`conch_checkers::cron`) the simulator's: one implementation over one record.
//!
//! The windows, in `mono_ns` (a tick `T` is exempt when its instant falls inside one):
//! * `Kept`:       [inject − 1 s, in place + 2 s] and [recover − 1 s, healthy + 2 s];
//! * `LeaderLost`: [inject − 1 s, in place + 3 × election timeout + TTL + election
//!   timeout + 2 s] and [recover − 1 s, healthy + 2 s]: a session lost while there is no
//!   leader keeps its keys (a running key among them) until its lease runs out, and the
//!   new leader renews every lease to a full TTL plus an election timeout;
//! * `QuorumLost`: [inject − 1 s, healthy + TTL + kill-after + 2 s];
//! * `ConchKill`:  [inject − 1 s, in place + TTL + 2 s] (the killed daemon's session,
//!   and the running key on it, live until its TTL).
//!
//! * an `--overlap skip` job under a peer delay: the whole delay too (each release commits
//!   late, so the next tick is skipped for overlap, as the policy says).
//!
//! Ticks expected in a round: every whole second from the first one at least 1 s after
//! its start to its end − 2 s.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::cases::{CaseKind, Class};
use super::stressers::Exit;
use crate::invariant::{fencing, over_capacity, Interval};
use conch_checkers::cron;

/// How long things may take, derived from the tester's timings.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Session TTL of every conch.
    pub ttl: Duration,
    /// Their `--kill-after`.
    pub kill_after: Duration,
    /// etcd's election timeout.
    pub election: Duration,
}

impl Bounds {
    /// After quorum is lost for longer than a TTL, every child is dead within this of
    /// the loss: TTL + kill-after + two
    /// election timeouts (an isolated leader renews leases until CheckQuorum steps it
    /// down) + 500 ms for the child to log.
    pub fn loss(&self) -> Duration {
        self.ttl + self.kill_after + self.election * 2 + Duration::from_millis(500)
    }

    /// After quorum returns (or any fault heals), the office has a holder and the
    /// semaphore a new child within this: TTL (the old sessions' leases, renewed by the
    /// new leader, run out) + 3 s (the first `--restart` backoff is at most 3 × 1 s) +
    /// 2 s.
    pub fn back(&self) -> Duration {
        self.ttl + Duration::from_secs(5)
    }
}

/// The interval logs: the office, the semaphore, each cron job.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    /// The elect children (capacity 1).
    pub elect: Vec<Interval>,
    /// The sema children (capacity `SEMA.1`).
    pub sema: Vec<Interval>,
    /// Each cron job's runs, with the job's capacity (`Some(1)` for overlap skip).
    pub cron: Vec<(String, Option<usize>, Vec<Interval>)>,
    /// The daemons' `skipped-overlap` lines: job, tick (CONCH_TICK form), when (wall ns).
    pub skips: Vec<(String, String, i128)>,
}

/// The `skipped-overlap` lines of a daemon's text log: job, tick, when (wall ns).
pub fn skipped_overlap(log: &str) -> Vec<(String, String, i128)> {
    log.lines()
        .filter(|l| l.contains(" skipped-overlap "))
        .filter_map(|l| {
            let at = chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok()?;
            let field = |k: &str| l.split_whitespace().find_map(|w| w.strip_prefix(k)).map(str::to_string);
            Some((field("job=")?, field("tick=")?, at.timestamp_nanos_opt()? as i128))
        })
        .collect()
}

/// When things happened in one round (`mono_ns`).
#[derive(Clone, Debug)]
pub struct RoundRecord {
    /// The case.
    pub case: CaseKind,
    /// Round start.
    pub start: u64,
    /// Inject called.
    pub inject_at: u64,
    /// Fault fully in place.
    pub in_place: u64,
    /// Recover called.
    pub recover_at: u64,
    /// Every member took a write again.
    pub healthy_at: u64,
    /// Round end.
    pub end: u64,
    /// The killed cron run (job, CONCH_TICK), for SIGKILL_CONCHD_RUNNING_TICK.
    pub killed_tick: Option<(String, String)>,
}

/// What the checkers found in one round.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// (checker, what) for every violation.
    pub violations: Vec<(&'static str, String)>,
    /// Longest stretch over capacity (ms), any contest.
    pub overlap_max_ms: u64,
    /// Children ended by a signal during the round.
    pub kills: usize,
    /// Expected ticks (all jobs) that ran / did not.
    pub ticks_run: usize,
    /// See `ticks_run`.
    pub ticks_missed: usize,
    /// The missed ticks: job, tick (CONCH_TICK form), so the report can show what the
    /// daemons said of each.
    pub missed: Vec<(String, String)>,
}

/// Wall time of a `mono_ns` instant: `offset` = wall ns − mono ns, read once.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Realtime minus boottime, ns.
    pub offset: i128,
}

impl Clock {
    /// Reads the offset now.
    pub fn now() -> Clock {
        Clock { offset: crate::now_ns() as i128 - crate::mono_ns() as i128 }
    }

    fn wall_ns(&self, mono: u64) -> i128 {
        mono as i128 + self.offset
    }
}

const S: u64 = 1_000_000_000;

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// The windows in which cron ticks may be missed (see the module doc).
pub fn tick_windows(r: &RoundRecord, b: &Bounds) -> Vec<(u64, u64)> {
    let before = |t: u64| t.saturating_sub(S);
    let recovery = (before(r.recover_at), r.healthy_at + 2 * S);
    match r.case.class() {
        Class::Kept => vec![(before(r.inject_at), r.in_place + 2 * S), recovery],
        Class::LeaderLost => {
            let elected = r.in_place + ns(b.election) * 3;
            vec![(before(r.inject_at), elected + ns(b.ttl + b.election) + 2 * S), recovery]
        }
        Class::QuorumLost => vec![(before(r.inject_at), r.healthy_at + ns(b.ttl + b.kill_after) + 2 * S)],
        Class::ConchKill => vec![(before(r.inject_at), r.in_place + ns(b.ttl) + 2 * S)],
    }
}

fn in_round(iv: &Interval, r: &RoundRecord) -> bool {
    iv.start <= r.end && iv.end.is_none_or(|e| e >= r.start)
}

/// Every checker over one round. `seen` holds the cumulative checkers' earlier reports
/// (fencing, cron at-most-once run over every interval so far), so each is told once.
pub fn check_round(
    r: &RoundRecord,
    logs: &Logs,
    exits: &[Exit],
    b: &Bounds,
    clock: Clock,
    seen: &mut BTreeSet<String>,
) -> Findings {
    let mut f = Findings::default();
    let push = |f: &mut Findings, name: &'static str, what: String| f.violations.push((name, what));
    // At most N holders, no exception window: none of the cases is an admin revoke or a
    // host freeze.
    let mut contests: Vec<(&str, usize, &[Interval])> =
        vec![("elect", 1, &logs.elect), ("sema", super::stressers::SEMA.1, &logs.sema)];
    contests.extend(logs.cron.iter().filter_map(|(job, cap, ivs)| cap.map(|c| (job.as_str(), c, ivs.as_slice()))));
    for (name, cap, ivs) in &contests {
        let here: Vec<Interval> = ivs.iter().filter(|iv| in_round(iv, r)).cloned().collect();
        let over = over_capacity(&here, *cap, r.end, &[]);
        f.overlap_max_ms = f.overlap_max_ms.max(over.max_ms);
        for v in over.violations {
            push(&mut f, "overlap", format!("{name}: {v}"));
        }
    }
    // Fencing and at-most-once, cumulative.
    let mut cumulative = Vec::new();
    cumulative.extend(fencing(&logs.elect, 1).into_iter().map(|v| ("fencing", format!("elect: {v}"))));
    cumulative
        .extend(fencing(&logs.sema, super::stressers::SEMA.1).into_iter().map(|v| ("fencing", format!("sema: {v}"))));
    for (job, _, ivs) in &logs.cron {
        for (tick, other, rev) in cron::tokens_shared(ivs) {
            cumulative.push(("fencing", format!("{job}: ticks {tick} and {other} share the token {rev}")));
        }
        for (a, b) in cron::successions(ivs) {
            let (at, bt) = (a.tick.as_deref().unwrap_or("?"), b.tick.as_deref().unwrap_or("?"));
            let what = format!("{job}: tick {bt} (rev {}) started after tick {at} (rev {}) had ended", b.rev, a.rev);
            cumulative.push(("fencing", what));
        }
        for (tick, n) in cron::runs_twice(ivs) {
            cumulative.push(("cron-once", format!("{job}: tick {tick} ran {n} times")));
        }
    }
    for (name, v) in cumulative {
        if seen.insert(v.clone()) {
            push(&mut f, name, v);
        }
    }
    // Every tick outside the windows ran.
    let windows = tick_windows(r, b);
    for (job, cap, ivs) in &logs.cron {
        // Under a peer delay every commit takes several delayed round trips, so an
        // `--overlap skip` run's release lands after the next tick: that tick is skipped for
        // overlap, as the policy says, for as long as the delay lasts.
        let delayed = matches!(r.case, CaseKind::DELAY_PEER_PORT_TX_RX_LEADER | CaseKind::DELAY_PEER_PORT_TX_RX_ALL);
        let mut windows = windows.clone();
        if delayed && cap.is_some() {
            windows.push((r.inject_at.saturating_sub(S), r.healthy_at + 2 * S));
        }
        // A skip job's ticks a daemon logged as skipped for overlap, with when.
        let skipped: BTreeMap<&str, i128> = match cap {
            Some(_) => logs.skips.iter().filter(|(j, ..)| j == job).map(|(_, t, at)| (t.as_str(), *at)).collect(),
            None => BTreeMap::new(),
        };
        let (run, missed) = ticks(r, &windows, clock, ivs, &skipped);
        f.ticks_run += run;
        f.ticks_missed += missed.len();
        f.missed.extend(missed.iter().map(|t| (job.clone(), t.clone())));
        if !missed.is_empty() {
            let shown: Vec<String> = missed.iter().take(5).cloned().collect();
            push(
                &mut f,
                "cron-ticks",
                format!("{job}: {} ticks outside the fault windows did not run: {shown:?}", missed.len()),
            );
        }
    }
    let all: Vec<(&str, &Interval)> = [("elect", &logs.elect), ("sema", &logs.sema)]
        .into_iter()
        .chain(logs.cron.iter().map(|(job, _, ivs)| (job.as_str(), ivs)))
        .flat_map(|(name, ivs)| ivs.iter().map(move |iv| (name, iv)))
        .collect();
    let ended_in_round = |iv: &Interval| iv.end.is_some_and(|e| e >= r.start && e <= r.end);
    f.kills = all.iter().filter(|(_, iv)| iv.signalled && ended_in_round(iv)).count();
    let at = |t: u64| format!("+{:.1}s", t.saturating_sub(r.start) as f64 / 1e9);
    let class = r.case.class();
    if class == Class::Kept {
        for (name, iv) in all.iter().filter(|(_, iv)| iv.signalled && ended_in_round(iv)) {
            let end = iv.end.unwrap_or(r.end);
            let what = format!(
                "{name} child of client {} (rev {}) killed at {} though quorum never broke",
                iv.client,
                iv.rev,
                at(end)
            );
            push(&mut f, "spurious-kill", what);
        }
        for e in exits.iter().filter(|e| e.at >= r.start && e.at <= r.end && [69, 70].contains(&e.code)) {
            push(
                &mut f,
                "unavailable-exit",
                format!("{} exited {} at {} though quorum never broke", e.role, e.code, at(e.at)),
            );
        }
    }
    // Only a loss that lasted a whole TTL must end every session (a shorter one may be
    // bridged by a keepalive once quorum is back).
    if class == Class::QuorumLost && r.recover_at >= r.in_place + ns(b.ttl) {
        let deadline = r.in_place + ns(b.loss());
        for (name, iv) in all.iter().filter(|(_, iv)| iv.start < r.in_place && iv.end.is_none_or(|e| e > r.in_place)) {
            if iv.end.is_none_or(|e| e > deadline) {
                let end = iv.end.map_or("not yet".to_string(), at);
                let what = format!(
                    "{name} child of client {} (rev {}) ended {end}, after the loss bound {:?}",
                    iv.client,
                    iv.rev,
                    b.loss()
                );
                push(&mut f, "loss-deadline", what);
            }
        }
    }
    // Services back after every case.
    let back = (r.healthy_at + ns(b.back())).min(r.end);
    if !logs.elect.iter().any(|iv| iv.start <= back && iv.end.is_none_or(|e| e > back)) {
        push(&mut f, "service-back", format!("nobody held the office {:?} after health returned", b.back()));
    }
    if !logs.sema.iter().any(|iv| iv.start > r.healthy_at && iv.start <= back) {
        push(&mut f, "service-back", format!("no sema child started within {:?} after health returned", b.back()));
    }
    f
}

/// How long after a run of an `--overlap skip` job ends its running key may still be read
/// by the next tick's claim, counted to the daemon's `skipped-overlap` line: the release
/// (one transaction) and the claim's answer, on a loaded machine.
pub const RELEASE_SLACK: Duration = Duration::from_millis(500);

/// The expected ticks of a round (whole seconds from start + 1 s to end − 2 s, outside
/// the windows): how many ran, and the ones that did not (CONCH_TICK form). A tick in
/// `skipped` (a skip job's tick a daemon logged as skipped for overlap, with when) is not
/// expected when a run of an earlier tick lasted until then (or ended less than
/// [`RELEASE_SLACK`] before): `--overlap skip` skipped it, as the policy says. A skip with
/// no run to explain it (a running key left behind) is still a miss.
pub fn ticks(
    r: &RoundRecord,
    windows: &[(u64, u64)],
    clock: Clock,
    ivs: &[Interval],
    skipped: &BTreeMap<&str, i128>,
) -> (usize, Vec<String>) {
    let ran: BTreeSet<&str> = ivs.iter().filter_map(|iv| iv.tick.as_deref()).collect();
    let first = (clock.wall_ns(r.start) / S as i128) as i64 + 2;
    let last = (clock.wall_ns(r.end) / S as i128) as i64 - 2;
    let slack = ns(RELEASE_SLACK) as i128;
    let overlapped = |at: i128| {
        ivs.iter().any(|iv| clock.wall_ns(iv.start) < at && iv.end.is_none_or(|e| clock.wall_ns(e) + slack >= at))
    };
    let exempt = |t: i64| {
        let wall = t as i128 * S as i128;
        windows.iter().any(|(a, b)| clock.wall_ns(*a) <= wall && wall <= clock.wall_ns(*b))
            || skipped.get(conch_core::cron::rfc3339(t).as_str()).is_some_and(|at| overlapped(*at))
    };
    let mut run = 0;
    let mut missed = Vec::new();
    for t in (first..=last).filter(|t| !exempt(*t)) {
        let name = conch_core::cron::rfc3339(t);
        if ran.contains(name.as_str()) {
            run += 1;
        } else {
            missed.push(name);
        }
    }
    (run, missed)
}

/// What must not be left once every stresser stopped and the jobs were removed: any key
/// under `/conch/v1/` but cron history (`cron/fire/`, `cron/result/`), and any lease
/// granted for an hour or less (sessions; claim and result leases last 25 h and 14 d).
pub fn leftovers(keys: &[String], leases: &[(String, i64)]) -> Vec<String> {
    let history = |k: &str| ["/conch/v1/cron/fire/", "/conch/v1/cron/result/"].iter().any(|p| k.starts_with(p));
    let mut out: Vec<String> =
        keys.iter().filter(|k| k.starts_with("/conch/v1/") && !history(k)).map(|k| format!("key left: {k}")).collect();
    out.extend(
        leases
            .iter()
            .filter(|(_, ttl)| *ttl <= 3600)
            .map(|(id, ttl)| format!("session lease left: {id} (granted {ttl} s)")),
    );
    out
}

#[cfg(test)]
mod tests {
    //! Each checker fails on a synthetic log that breaks its rule and passes on one
    //! that keeps it.
    use super::*;

    const T0: u64 = 1_000 * S;

    fn iv(client: usize, rev: i64, start_s: f64, end_s: Option<f64>) -> Interval {
        let at = |s: f64| T0 + (s * 1e9) as u64;
        Interval {
            client,
            rev,
            pid: 1000 + rev as i32,
            start: at(start_s),
            end: end_s.map(at),
            tick: None,
            signalled: false,
        }
    }

    fn killed(mut i: Interval) -> Interval {
        i.signalled = true;
        i
    }

    /// Inject at 2 s, recover at 6 s (8 s after a quorum loss: longer than the TTL),
    /// healthy 1 s later, end at 24 s.
    fn round(case: CaseKind) -> RoundRecord {
        let at = |s: u64| T0 + s * S;
        let recover = if case.class() == Class::QuorumLost { 8 } else { 6 };
        RoundRecord {
            case,
            start: at(0),
            inject_at: at(2),
            in_place: at(2),
            recover_at: at(recover),
            healthy_at: at(recover + 1),
            end: at(24),
            killed_tick: None,
        }
    }

    fn bounds() -> Bounds {
        Bounds { ttl: Duration::from_secs(5), kill_after: Duration::from_secs(1), election: Duration::from_secs(1) }
    }

    /// A clock where mono T0 is wall second 1 000 000 exactly.
    fn clock() -> Clock {
        Clock { offset: 1_000_000 * S as i128 - T0 as i128 }
    }

    /// A healthy log: one office holder all along, sema children two at a time, every
    /// tick of a cron job run once with increasing revisions.
    fn healthy(r: &RoundRecord) -> Logs {
        let sema = (0..24).map(|k| iv(k % 4, 100 + k as i64, k as f64, Some(k as f64 + 1.5))).collect();
        let cron = (0..25)
            .map(|k| {
                let mut i = iv(k % 3, 200 + k as i64, k as f64, Some(k as f64 + 0.5));
                i.tick = Some(conch_core::cron::rfc3339(1_000_000 + k as i64));
                i
            })
            .collect();
        let _ = r;
        Logs { elect: vec![iv(0, 10, -5.0, None)], sema, cron: vec![("job".into(), Some(1), cron)], skips: Vec::new() }
    }

    fn names(f: &Findings) -> Vec<&'static str> {
        f.violations.iter().map(|(n, _)| *n).collect()
    }

    fn run(r: &RoundRecord, logs: &Logs, exits: &[Exit]) -> Findings {
        check_round(r, logs, exits, &bounds(), clock(), &mut BTreeSet::new())
    }

    #[test]
    fn a_healthy_round_passes_every_checker() {
        for case in [CaseKind::MOVE_LEADER, CaseKind::SIGKILL_LEADER, CaseKind::SIGTERM_QUORUM] {
            let r = round(case);
            let mut logs = healthy(&r);
            if case == CaseKind::SIGTERM_QUORUM {
                // The holder dies within the loss bound and a new one comes back.
                logs.elect = vec![killed(iv(0, 10, -5.0, Some(7.0))), iv(1, 50, 10.0, None)];
                logs.sema.retain(|i| i.start < T0 + 2 * S || i.start > T0 + 9 * S);
            }
            let f = run(&r, &logs, &[]);
            assert!(f.violations.is_empty(), "{case:?}: {:?}", f.violations);
            assert_eq!(f.ticks_missed, 0);
            assert!(f.ticks_run >= 3, "{case:?}: {} ticks", f.ticks_run);
        }
    }

    #[test]
    fn overlap_over_capacity_is_caught() {
        let r = round(CaseKind::MOVE_LEADER);
        let mut logs = healthy(&r);
        logs.elect.push(iv(1, 11, 3.0, Some(3.2)));
        let f = run(&r, &logs, &[]);
        assert!(names(&f).contains(&"overlap"), "{:?}", f.violations);
        assert!(f.overlap_max_ms >= 199);
        let mut logs = healthy(&r);
        logs.sema.push(iv(3, 999, 4.2, Some(4.4)));
        assert!(names(&run(&r, &logs, &[])).contains(&"overlap"));
    }

    #[test]
    fn fencing_going_back_is_caught() {
        let r = round(CaseKind::SIGKILL_LEADER);
        let mut logs = healthy(&r);
        logs.elect = vec![iv(0, 10, -5.0, Some(3.0)), iv(1, 9, 4.0, None)];
        assert!(names(&run(&r, &logs, &[])).contains(&"fencing"));
        let mut logs = healthy(&r);
        logs.cron[0].2[5].rev = 1;
        assert!(names(&run(&r, &logs, &[])).contains(&"fencing"));
        // Neighbouring ticks whose claims landed out of order while both runs overlapped.
        let mut logs = healthy(&r);
        let (a, b) = (logs.cron[0].2[5].rev, logs.cron[0].2[6].rev);
        logs.cron[0].2[5].rev = b;
        logs.cron[0].2[6].rev = a;
        logs.cron[0].2[5].end = Some(T0 + 6 * S + S / 4);
        assert!(!names(&run(&r, &logs, &[])).contains(&"fencing"), "overlapping runs may hold tokens in either order");
        let mut logs = healthy(&r);
        logs.cron[0].2[6].rev = logs.cron[0].2[5].rev;
        assert!(names(&run(&r, &logs, &[])).contains(&"fencing"), "a token shared by two ticks");
        // Told once across rounds.
        let mut seen = BTreeSet::new();
        let first = check_round(&r, &logs, &[], &bounds(), clock(), &mut seen);
        let second = check_round(&r, &logs, &[], &bounds(), clock(), &mut seen);
        assert!(names(&first).contains(&"fencing") && !names(&second).contains(&"fencing"));
    }

    #[test]
    fn a_tick_run_twice_is_caught() {
        let r = round(CaseKind::SIGKILL_CONCHD_RUNNING_TICK);
        let mut logs = healthy(&r);
        let mut again = logs.cron[0].2[3].clone();
        again.pid += 1;
        again.start += 10 * S;
        again.end = Some(again.start + 1000);
        logs.cron[0].2.push(again);
        assert!(names(&run(&r, &logs, &[])).contains(&"cron-once"));
    }

    #[test]
    fn a_missed_tick_outside_the_windows_is_caught_inside_it_is_not() {
        let r = round(CaseKind::MOVE_LEADER);
        // The inject window is [1 s, 4 s], the recovery one [5 s, 9 s]: second 15 is
        // after both, seconds 3 and 6 inside.
        for (k, caught) in [(15, true), (3, false), (6, false)] {
            let mut logs = healthy(&r);
            logs.cron[0].2.retain(|i| i.tick.as_deref() != Some(conch_core::cron::rfc3339(1_000_000 + k).as_str()));
            let f = run(&r, &logs, &[]);
            assert_eq!(names(&f).contains(&"cron-ticks"), caught, "second {k}: {:?}", f.violations);
            assert_eq!(f.ticks_missed, usize::from(caught));
        }
        // The same tick inside a quorum loss's window ([1 s, 17 s]) is exempt.
        let r = round(CaseKind::SIGTERM_QUORUM);
        let mut logs = healthy(&r);
        logs.cron[0].2.retain(|i| i.tick.as_deref() != Some(conch_core::cron::rfc3339(1_000_010).as_str()));
        assert!(!names(&run(&r, &logs, &[])).contains(&"cron-ticks"));
    }

    #[test]
    fn a_skip_jobs_tick_is_exempt_only_when_skipped_while_an_earlier_run_lasted() {
        let r = round(CaseKind::MOVE_LEADER);
        let tick = |k: i64| conch_core::cron::rfc3339(1_000_000 + k);
        let wall = |secs: f64| (1_000_000.0 * S as f64 + secs * S as f64) as i128;
        // Second 15 is missing, skipped for overlap at 15.3 s. The run of 14 lasted until
        // 15.2 s, or ended at 14.9 s (its release may still have been in flight): exempt.
        // It ended at 14.5 s (the running key long gone): caught. No skip logged: caught.
        for (end_of_14, skipped_at, caught) in
            [(15.2, Some(15.3), false), (14.9, Some(15.3), false), (14.5, Some(15.3), true), (15.2, None, true)]
        {
            let mut logs = healthy(&r);
            logs.cron[0].2.retain(|i| i.tick.as_deref() != Some(tick(15).as_str()));
            let at = logs.cron[0].2.iter().position(|i| i.tick.as_deref() == Some(tick(14).as_str())).unwrap();
            logs.cron[0].2[at].end = Some(T0 + (end_of_14 * S as f64) as u64);
            logs.skips = skipped_at.map(|s| ("job".to_string(), tick(15), wall(s))).into_iter().collect();
            let f = run(&r, &logs, &[]);
            assert_eq!(
                names(&f).contains(&"cron-ticks"),
                caught,
                "run of 14 ends at {end_of_14}, skip at {skipped_at:?}: {:?}",
                f.violations
            );
        }
        // The same on an `--overlap allow` job is no excuse.
        let mut logs = healthy(&r);
        logs.cron[0].1 = None;
        logs.cron[0].2.retain(|i| i.tick.as_deref() != Some(tick(15).as_str()));
        logs.skips = vec![("job".to_string(), tick(15), wall(15.1))];
        let at = logs.cron[0].2.iter().position(|i| i.tick.as_deref() == Some(tick(14).as_str())).unwrap();
        logs.cron[0].2[at].end = Some(T0 + 15 * S + S / 5);
        assert!(names(&run(&r, &logs, &[])).contains(&"cron-ticks"));
    }

    #[test]
    fn skipped_overlap_lines_are_read_from_a_daemons_log() {
        let log = "2026-12-02T04:19:35.336042Z  INFO skipped-overlap job=ft-slow tick=2026-12-02T04:19:35Z\n\
                   2026-12-02T04:19:35.904223Z  INFO run-end job=ft-slow tick=2026-12-02T04:19:34Z outcome=exited exit=0\n";
        let skips = skipped_overlap(log);
        assert_eq!(skips.len(), 1);
        assert_eq!((skips[0].0.as_str(), skips[0].1.as_str()), ("ft-slow", "2026-12-02T04:19:35Z"));
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T04:19:35.336042Z").unwrap();
        assert_eq!(skips[0].2, at.timestamp_nanos_opt().unwrap() as i128);
    }

    #[test]
    fn a_kill_while_quorum_held_is_caught_only_then() {
        let mut logs = healthy(&round(CaseKind::SIGTERM_ONE_FOLLOWER));
        logs.sema[5] = killed(logs.sema[5].clone());
        let f = run(&round(CaseKind::SIGTERM_ONE_FOLLOWER), &logs, &[]);
        assert!(names(&f).contains(&"spurious-kill"));
        assert_eq!(f.kills, 1);
        assert!(!names(&run(&round(CaseKind::SIGKILL_LEADER), &logs, &[])).contains(&"spurious-kill"));
        let exit = Exit { role: "sema-1".into(), code: 69, at: T0 + 3 * S };
        let logs = healthy(&round(CaseKind::MEMBER_DOWN_WHOLE_ROUND));
        assert!(names(&run(&round(CaseKind::MEMBER_DOWN_WHOLE_ROUND), &logs, &[exit])).contains(&"unavailable-exit"));
    }

    #[test]
    fn a_child_outliving_quorum_loss_is_caught() {
        let r = round(CaseKind::BLACKHOLE_PEER_PORT_TX_RX_QUORUM);
        let mut logs = healthy(&r);
        // Loss at 2 s, bound 8.5 s: ending at 11 s is too late.
        logs.elect = vec![killed(iv(0, 10, -5.0, Some(11.0))), iv(1, 50, 12.0, None)];
        let f = run(&r, &logs, &[]);
        assert!(names(&f).contains(&"loss-deadline"), "{:?}", f.violations);
        logs.elect = vec![killed(iv(0, 10, -5.0, Some(10.0))), iv(1, 50, 12.0, None)];
        logs.sema.retain(|i| i.start < T0 + 2 * S || i.start > T0 + 9 * S);
        assert!(!names(&run(&r, &logs, &[])).contains(&"loss-deadline"));
        // A loss shorter than the TTL may be bridged: not checked.
        let mut short = r.clone();
        (short.recover_at, short.healthy_at) = (T0 + 4 * S, T0 + 5 * S);
        logs.elect = vec![iv(0, 10, -5.0, None)];
        assert!(!names(&run(&short, &logs, &[])).contains(&"loss-deadline"));
    }

    #[test]
    fn a_service_that_does_not_come_back_is_caught() {
        let r = round(CaseKind::SIGTERM_ALL);
        let mut logs = healthy(&r);
        // Healthy at 9 s, bound 10 s: a holder only from 19.5 s on is too late.
        logs.elect = vec![killed(iv(0, 10, -5.0, Some(3.0))), iv(1, 50, 19.5, None)];
        assert!(names(&run(&r, &logs, &[])).contains(&"service-back"));
        let mut logs = healthy(&r);
        logs.sema.retain(|i| i.start < T0 + 9 * S);
        assert!(names(&run(&r, &logs, &[])).contains(&"service-back"));
    }

    #[test]
    fn leftovers_are_sessions_and_non_history_keys() {
        let keys = ["/conch/v1/cron/fire/a/1", "/conch/v1/cron/result/a/1", "/ft/health"].map(String::from);
        assert!(leftovers(&keys, &[("1".into(), 90_000)]).is_empty());
        let keys = ["/conch/v1/cron/running/a", "/conch/v1/elect/x/1", "/conch/v1/cron/job/a"].map(String::from);
        assert_eq!(leftovers(&keys, &[("2".into(), 5)]).len(), 4);
    }
}
