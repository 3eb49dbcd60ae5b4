//! The invariant suite: K real `conch` processes compete for an office or a semaphore
//! against a real etcd, each through its own fault proxy, under a seeded storm of faults
//! (each with Inject and Recover). Every child logs its interval; the checkers then assert
//! over the interval log and the fault log:
//!
//! 1. never more than N overlapping intervals, except inside the exception windows of the
//!    guarantees (administrative revoke or key delete: notice + kill-after; whole-group
//!    freeze: the freeze + kill-after) — and those windows close; partitions, delays,
//!    etcd restarts, wrapper SIGKILL and wrapper SIGSTOP allow zero overlap;
//! 2. convergence: after the last fault heals, a holder runs again within TTL + backoff;
//! 3. fencing: for an office, a holder that starts after another ended has a larger
//!    `CONCH_REV`; for a semaphore (holders overlap by design), no token is used twice;
//! 4. nothing left: no keys, no leases, no child process once everything stopped.
//!
//! `CONCH_SEED=N` (or `Scenario::seed`) reproduces a fault schedule.
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conch_core::backoff::SplitMix64;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::proxy::Proxy;
use crate::{alive, mono_ns, read, Etcd};

/// Session TTL of the clients (short, so a run sees many successions).
pub const TTL_S: u64 = 3;
/// Their `--kill-after`.
pub const KILL_AFTER: Duration = Duration::from_secs(1);
/// How long a wrapper may take to notice an explicit loss under load (target 100 ms).
pub const NOTICE_MAX: Duration = Duration::from_secs(1);

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL one wrapper (the client restarts it).
    WrapperKill,
    /// SIGSTOP one wrapper alone, then SIGCONT.
    WrapperStop,
    /// SIGSTOP a wrapper, its shim and its child (a frozen host), then SIGCONT.
    GroupStop,
    /// `etcdctl lease revoke` of a holder's lease.
    Revoke,
    /// `etcdctl del` of a holder's key.
    KeyDelete,
    /// Black-hole one client's traffic both ways.
    Partition,
    /// Delay one client's traffic.
    Delay,
    /// Restart etcd (same data dir).
    EtcdRestart,
}

/// Every kind, in a fixed order.
pub const ALL_FAULTS: [FaultKind; 8] = [
    FaultKind::WrapperKill,
    FaultKind::WrapperStop,
    FaultKind::GroupStop,
    FaultKind::Revoke,
    FaultKind::KeyDelete,
    FaultKind::Partition,
    FaultKind::Delay,
    FaultKind::EtcdRestart,
];

/// One run of the suite.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Reproduces the schedule.
    pub seed: u64,
    /// Competing clients.
    pub clients: usize,
    /// Capacity: 1 = `conch elect`, more = `conch sema --max N`.
    pub max: usize,
    /// How long faults are injected.
    pub duration: Duration,
    /// Which faults may be drawn.
    pub faults: Vec<FaultKind>,
    /// The `conch` binary to test.
    pub conch: PathBuf,
    /// The `holdlog` child.
    pub holdlog: PathBuf,
    /// How long a child holds, drawn in this range (ms).
    pub hold_ms: (u64, u64),
    /// How long a fault lasts before it is healed, drawn in this range (ms).
    pub fault_ms: (u64, u64),
    /// Aim client faults at a client that holds right now (else any client).
    pub target_holder: bool,
}

impl Scenario {
    /// A scenario with every fault kind and the default timings.
    pub fn new(
        seed: u64,
        clients: usize,
        max: usize,
        duration: Duration,
        conch: PathBuf,
        holdlog: PathBuf,
    ) -> Scenario {
        Scenario {
            seed,
            clients,
            max,
            duration,
            faults: ALL_FAULTS.to_vec(),
            conch,
            holdlog,
            hold_ms: (200, 1100),
            fault_ms: (300, 2000),
            target_holder: false,
        }
    }
}

/// One injected fault.
#[derive(Clone, Debug)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Which client (if any).
    pub client: Option<usize>,
    /// Inject time (`mono_ns`).
    pub at: u64,
    /// Recover time.
    pub healed: u64,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Intervals logged.
    pub intervals: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Largest overlap above capacity, per fault kind whose window covered it (ms).
    pub overlap_ms: BTreeMap<String, u64>,
    /// Violations; empty when every checker held.
    pub violations: Vec<String>,
}

/// One child's holding interval, from the log `holdlog` writes: the shared checkers' record.
pub use conch_checkers::Interval;

struct Clients {
    wrappers: Mutex<Vec<Option<i32>>>,
    exits: Mutex<Vec<i32>>,
    stop: AtomicBool,
}

fn prefix(max: usize) -> String {
    if max == 1 {
        "/conch/v1/elect/inv/".to_string()
    } else {
        format!("/conch/v1/sema/inv/{max}/")
    }
}

/// Runs one scenario end to end and checks it.
pub fn run(s: &Scenario) -> Report {
    let mut etcd = Etcd::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("intervals");
    let etcd_port: u16 = etcd.endpoint().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let proxies: Vec<Proxy> = (0..s.clients).map(|_| Proxy::start(etcd_port)).collect();
    let shared = Arc::new(Clients {
        wrappers: Mutex::new(vec![None; s.clients]),
        exits: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let mut rng = SplitMix64::new(s.seed);
    let threads: Vec<_> = (0..s.clients)
        .map(|i| {
            let (shared, conch, holdlog, log) = (shared.clone(), s.conch.clone(), s.holdlog.clone(), log.clone());
            let (port, max, seed, hold) = (proxies[i].port(), s.max, s.seed.wrapping_add(i as u64 * 7919), s.hold_ms);
            std::thread::spawn(move || client_loop(i, port, max, seed, hold, &conch, &holdlog, &log, &shared))
        })
        .collect();
    let mut faults = Vec::new();
    let begin = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    // The storm: one fault at a time, bounded by the duration.
    while begin.elapsed() < s.duration && !s.faults.is_empty() {
        let kind = s.faults[rng.below(s.faults.len() as u64) as usize];
        let mut client = rng.below(s.clients as u64) as usize;
        if s.target_holder {
            if let Some(holder) = parse(&log).iter().rev().find(|iv| iv.end.is_none()) {
                client = holder.client;
            }
        }
        let hold = Duration::from_millis(s.fault_ms.0 + rng.below(s.fault_ms.1 - s.fault_ms.0 + 1));
        if let Some(f) = inject(kind, client, hold, &mut etcd, &proxies, &shared, s.max) {
            faults.push(f);
        }
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
    }
    // Convergence: after the last fault, a holder must run again within TTL + backoff.
    let healed_at = mono_ns();
    let converge = Duration::from_secs(TTL_S + 6);
    let converged = crate::wait_until(converge, || parse(&log).iter().any(|iv| iv.start > healed_at));
    shared.stop.store(true, Ordering::Relaxed);
    stop_all(&shared);
    for t in threads {
        let _ = t.join();
    }
    let end = mono_ns();
    let intervals = parse(&log);
    let mut report = check(s, &intervals, &faults, end);
    if !converged {
        report.violations.push(format!("no holder ran within {converge:?} after the last fault"));
    }
    // Nothing left behind: keys and leases go with the revoked or expired sessions.
    let clean = crate::wait_until(Duration::from_secs(TTL_S + 3), || {
        etcd.keys("/conch/").is_empty() && etcd.leases().is_empty()
    });
    if !clean {
        report.violations.push(format!("left behind: keys {:?}, leases {:?}", etcd.keys("/conch/"), etcd.leases()));
    }
    let survivors: Vec<i32> = intervals.iter().map(|iv| iv.pid).filter(|p| alive(*p)).collect();
    if !survivors.is_empty() {
        report.violations.push(format!("child processes left: {survivors:?}"));
        for p in survivors {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
    let exits = shared.exits.lock().map(|e| e.clone()).unwrap_or_default();
    let odd: Vec<i32> = exits.iter().copied().filter(|c| ![0, 69, 70, 75, 137, 143].contains(c)).collect();
    if !odd.is_empty() {
        report.violations.push(format!("unexpected wrapper exit codes: {odd:?}"));
    }
    for f in &faults {
        *report.faults.entry(format!("{:?}", f.kind)).or_insert(0) += 1;
    }
    report
}

#[allow(clippy::too_many_arguments)]
fn client_loop(
    i: usize,
    port: u16,
    max: usize,
    seed: u64,
    hold: (u64, u64),
    conch: &Path,
    holdlog: &Path,
    log: &Path,
    shared: &Clients,
) {
    let mut rng = SplitMix64::new(seed);
    let (tool, extra): (&str, Vec<String>) =
        if max == 1 { ("elect", vec![]) } else { ("sema", vec!["--max".into(), max.to_string()]) };
    for _ in 0..100_000 {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let hold_ms = hold.0 + rng.below(hold.1 - hold.0 + 1);
        let child = Command::new(conch)
            .env("CONCH_ENDPOINTS", format!("http://127.0.0.1:{port}"))
            .env("CONCH_DIAL_TIMEOUT", "2s")
            .env("CONCH_QUIET", "1")
            .args(["--ttl", &format!("{TTL_S}s"), tool, "inv"])
            .args(&extra)
            .args(["--kill-after", &format!("{}ms", KILL_AFTER.as_millis()), "--"])
            .arg(holdlog)
            .args([log.display().to_string(), i.to_string(), hold_ms.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let Ok(mut child) = child else { return };
        if let Ok(mut w) = shared.wrappers.lock() {
            w[i] = Some(child.id() as i32);
        }
        let code = wait_bounded(&mut child, || shared.stop.load(Ordering::Relaxed));
        if let Ok(mut w) = shared.wrappers.lock() {
            w[i] = None;
        }
        if let Ok(mut e) = shared.exits.lock() {
            e.push(code);
        }
    }
}

/// Waits for a wrapper (at most 2 h) and returns its exit code (128 + n for signal n);
/// once `stop()` says so, SIGCONTs and SIGTERMs it, and SIGKILLs it 15 s later.
pub fn wait_bounded(child: &mut Child, stop: impl Fn() -> bool) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let mut termed = None;
    for _ in 0..1_440_000 {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        }
        if stop() && termed.is_none() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGCONT);
            let _ = kill(pid, Signal::SIGTERM);
            termed = Some(Instant::now());
        }
        if termed.is_some_and(|t| t.elapsed() > Duration::from_secs(15)) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    137
}

fn stop_all(shared: &Clients) {
    let pids: Vec<i32> = shared.wrappers.lock().map(|w| w.iter().flatten().copied().collect()).unwrap_or_default();
    for pid in pids {
        for p in std::iter::once(pid).chain(descendants(pid)) {
            let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
        }
    }
}

/// Live descendants of `pid` (from `/proc`).
pub fn descendants(pid: i32) -> Vec<i32> {
    conch_proctable::descendants_of(pid)
}

fn holder_key(etcd: &Etcd, max: usize) -> Option<String> {
    etcd.keys(&prefix(max)).into_iter().next()
}

fn inject(
    kind: FaultKind,
    client: usize,
    hold: Duration,
    etcd: &mut Etcd,
    proxies: &[Proxy],
    shared: &Clients,
    max: usize,
) -> Option<Fault> {
    let wrapper = || shared.wrappers.lock().ok().and_then(|w| w[client]);
    let at = mono_ns();
    let signal_all = |pids: &[i32], sig: Signal| {
        for p in pids {
            let _ = kill(Pid::from_raw(*p), sig);
        }
    };
    match kind {
        FaultKind::WrapperKill => signal_all(&[wrapper()?], Signal::SIGKILL),
        FaultKind::WrapperStop => {
            let pid = wrapper()?;
            signal_all(&[pid], Signal::SIGSTOP);
            std::thread::sleep(hold);
            signal_all(&[pid], Signal::SIGCONT);
        }
        FaultKind::GroupStop => {
            let pid = wrapper()?;
            let mut all = vec![pid];
            all.extend(descendants(pid));
            signal_all(&all, Signal::SIGSTOP);
            std::thread::sleep(hold);
            signal_all(&all, Signal::SIGCONT);
        }
        FaultKind::Revoke => {
            let key = holder_key(etcd, max)?;
            let lease = key.rsplit('/').next()?.to_string();
            etcd.etcdctl(&["lease", "revoke", &lease]);
        }
        FaultKind::KeyDelete => {
            let key = holder_key(etcd, max)?;
            etcd.etcdctl(&["del", &key]);
        }
        FaultKind::Partition => {
            proxies[client].cut();
            std::thread::sleep(hold);
            proxies[client].heal();
        }
        FaultKind::Delay => {
            proxies[client].delay(Duration::from_millis(100 + hold.as_millis() as u64 / 4));
            std::thread::sleep(hold);
            proxies[client].heal();
        }
        FaultKind::EtcdRestart => etcd.restart(),
    }
    Some(Fault { kind, client: Some(client), at, healed: mono_ns() })
}

/// Reads an interval log: `S|E <client> <rev> <pid> <ns>` lines, then optional
/// `key=value` fields (`tick=` on a start, `by=signal` on an end). Unended intervals last.
pub fn parse(log: &Path) -> Vec<Interval> {
    let mut open: BTreeMap<(usize, i64, i32), (u64, Option<String>)> = BTreeMap::new();
    let mut out = Vec::new();
    for line in read(log).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [kind, client, rev, pid, t, extra @ ..] = f.as_slice() else { continue };
        let (Ok(client), Ok(rev), Ok(pid), Ok(t)) = (client.parse(), rev.parse(), pid.parse(), t.parse()) else {
            continue;
        };
        let field = |name: &str| extra.iter().find_map(|x| x.strip_prefix(name)?.strip_prefix('=')).map(str::to_string);
        match *kind {
            "S" => {
                open.insert((client, rev, pid), (t, field("tick")));
            }
            "E" => {
                if let Some((start, tick)) = open.remove(&(client, rev, pid)) {
                    let signalled = field("by").as_deref() == Some("signal");
                    out.push(Interval { client, rev, pid, start, end: Some(t), tick, signalled });
                }
            }
            _ => {}
        }
    }
    out.extend(open.into_iter().map(|((client, rev, pid), (start, tick))| Interval {
        client,
        rev,
        pid,
        start,
        end: None,
        tick,
        signalled: false,
    }));
    out.sort_by_key(|iv| iv.start);
    out
}

/// The exception window a fault opens, if any: [start, end] in `mono_ns`.
fn window(f: &Fault) -> Option<(u64, u64)> {
    let grace = (NOTICE_MAX + KILL_AFTER).as_nanos() as u64;
    match f.kind {
        FaultKind::Revoke | FaultKind::KeyDelete => Some((f.at, f.healed + grace)),
        FaultKind::GroupStop => Some((f.at, f.healed + grace)),
        _ => None,
    }
}

fn check(s: &Scenario, intervals: &[Interval], faults: &[Fault], end: u64) -> Report {
    let mut report = Report { intervals: intervals.len(), ..Report::default() };
    for iv in intervals.iter().filter(|iv| iv.end.is_none()) {
        report
            .violations
            .push(format!("client {} rev {} never logged its end (killed without SIGTERM?)", iv.client, iv.rev));
    }
    // 1. Bounded holders, with the exception windows of the faults.
    let windows: Vec<(u64, u64, String)> =
        faults.iter().filter_map(|f| window(f).map(|(a, b)| (a, b, format!("{:?}", f.kind)))).collect();
    let over = over_capacity(intervals, s.max, end, &windows);
    report.overlap_ms = over.covered_ms;
    report.violations.extend(over.violations);
    // 3. Fencing.
    report.violations.extend(fencing(intervals, s.max));
    report
}

/// What [`over_capacity`] found.
#[derive(Debug, Default)]
pub struct Overlap {
    /// Longest stretch above capacity inside each labelled exception window (ms).
    pub covered_ms: BTreeMap<String, u64>,
    /// Longest stretch above capacity anywhere (ms), covered or not.
    pub max_ms: u64,
    /// Stretches above capacity outside every window.
    pub violations: Vec<String>,
}

/// The shared sweep ([`conch_checkers::holders`]): every stretch with more than `max`
/// holders must lie inside one of `windows` (`[start, end]` in `mono_ns`, with a label;
/// each covers every client). Unended intervals last until `end`.
pub fn over_capacity(intervals: &[Interval], max: usize, end: u64, windows: &[(u64, u64, String)]) -> Overlap {
    let windows: Vec<conch_checkers::Window> = windows
        .iter()
        .map(|(from, to, label)| conch_checkers::Window { client: None, from: *from, to: *to, label: label.clone() })
        .collect();
    let over = conch_checkers::holders::over_capacity(intervals, max, end, &windows);
    let violations = over
        .violations
        .iter()
        .map(|e| {
            format!(
                "{} holders (max {max}) for {} ms from t={} outside every exception window",
                e.holders.len(),
                (e.to - e.from) / 1_000_000,
                e.from
            )
        })
        .collect();
    Overlap { covered_ms: over.covered_ms, max_ms: over.max_ms, violations }
}

/// Fencing ([`conch_checkers::fencing`]). For an office (`max` 1) the order is total: a
/// holder that started after another ended has a larger token. For a semaphore two
/// holders may hold at once and start their children in either order, so only "a token
/// is never used twice" holds.
pub fn fencing(intervals: &[Interval], max: usize) -> Vec<String> {
    conch_checkers::fencing::successions(intervals, max == 1)
        .into_iter()
        .map(|(a, b)| format!("fencing: rev {} started after rev {} ended", b.rev, a.rev))
        .collect()
}
