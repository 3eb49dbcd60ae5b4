//! The stressers of the functional tester: real `conch` processes against every member
//! of the cluster (`CONCH_ENDPOINTS` = all three client URLs), each supervised by a
//! thread that starts it again when it exits — 3 × `conch elect --restart` on one
//! office, 4 × `conch sema --max 2` racers, 3 × `conch conchd`. Their children are
//! `holdlog`s writing one interval log per contest. `Stress` / `Pause` / `Close` as in
//! etcd's tester; one role can be held (not restarted) while a case has killed it.
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use conch_core::backoff::SplitMix64;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{KILL_AFTER, TTL};

/// The office the elect stressers contend for.
pub const OFFICE: &str = "ft-office";
/// The semaphore of the sema racers, and its capacity.
pub const SEMA: (&str, usize) = ("ft-sema", 2);
/// The cron jobs: name, how long a run holds (ms), overlap mode. Both `@every 1s`.
pub const JOBS: [(&str, u64, &str); 2] = [("ft-slow", 600, "skip"), ("ft-fast", 300, "allow")];
/// How many `conch conchd` stressers run (`conchd-0` …).
pub const CONCHDS: usize = 3;
/// `--run-ttl` of the jobs: a claim without a result is a zombie this long after its tick.
pub const RUN_TTL: &str = "2s";
/// How long an elect child holds if nothing stops it (it is a service).
const SERVICE_HOLD_MS: u64 = 3_600_000;
/// A sema child holds this long, drawn per run (ms).
const SEMA_HOLD_MS: (u64, u64) = (300, 1500);
/// Pause before a stresser that exited is started again.
const RESTART_PAUSE: Duration = Duration::from_millis(300);
/// Bound of every supervision loop (each turn sleeps or runs a process).
const TURNS_MAX: u32 = 200_000;

/// What a stresser runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `conch elect <OFFICE> --restart`.
    Elect,
    /// `conch sema <SEMA> --max 2`.
    Sema,
    /// `conch conchd`.
    Conchd,
}

/// One exit of a stresser's process.
#[derive(Clone, Debug)]
pub struct Exit {
    /// `elect-0`, `sema-3`, `conchd-1`.
    pub role: String,
    /// Its code (128 + n when killed by signal n).
    pub code: i32,
    /// When (`mono_ns`).
    pub at: u64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    paused: AtomicBool,
    held: Mutex<BTreeSet<String>>,
    pids: Mutex<BTreeMap<String, i32>>,
    exits: Mutex<Vec<Exit>>,
}

/// Where the stressers write.
#[derive(Clone, Debug)]
pub struct Paths {
    /// `conch`.
    pub conch: PathBuf,
    /// `holdlog`.
    pub holdlog: PathBuf,
    /// Interval logs and the conch processes' stderr go here.
    pub dir: PathBuf,
}

impl Paths {
    /// The interval log of the elect office.
    pub fn elect_log(&self) -> PathBuf {
        self.dir.join("elect.intervals")
    }

    /// The interval log of the semaphore.
    pub fn sema_log(&self) -> PathBuf {
        self.dir.join("sema.intervals")
    }

    /// The interval log of a cron job.
    pub fn cron_log(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.intervals"))
    }

    /// The stderr of a role's conch processes.
    pub fn role_log(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.stderr"))
    }
}

/// Every stresser.
pub struct Stressers {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    paths: Paths,
    endpoints: String,
    seed: u64,
}

impl Stressers {
    /// The stressers, not started yet.
    pub fn new(paths: Paths, endpoints: String, seed: u64) -> Stressers {
        Stressers { shared: Arc::default(), threads: Vec::new(), paths, endpoints, seed }
    }

    /// Every role, with its kind and index.
    pub fn roles() -> Vec<(String, Kind, usize)> {
        let mut out = Vec::new();
        for (kind, n, name) in [(Kind::Elect, 3, "elect"), (Kind::Sema, 4, "sema"), (Kind::Conchd, CONCHDS, "conchd")] {
            out.extend((0..n).map(|i| (format!("{name}-{i}"), kind, i)));
        }
        out
    }

    /// A `conch` command with the cluster's endpoints and the tester's timings.
    pub fn conch(&self) -> Command {
        conch_command(&self.paths.conch, &self.endpoints)
    }

    /// Starts every stresser (or resumes them after `pause`).
    pub fn stress(&mut self) {
        self.shared.paused.store(false, Ordering::Relaxed);
        if !self.threads.is_empty() {
            return;
        }
        for (role, kind, i) in Stressers::roles() {
            let (shared, paths, endpoints) = (self.shared.clone(), self.paths.clone(), self.endpoints.clone());
            let seed = self.seed.wrapping_add(7919 * (1 + i as u64)).wrapping_add(kind as u64);
            self.threads.push(std::thread::spawn(move || supervise(&role, kind, i, seed, &paths, &endpoints, &shared)));
        }
    }

    /// Stops every process (SIGTERM, waited for at most 20 s) and starts none until
    /// `stress`. Returns the exit codes seen so far, counted.
    pub fn pause(&self) -> BTreeMap<i32, usize> {
        self.shared.paused.store(true, Ordering::Relaxed);
        self.signal_all(Signal::SIGTERM);
        crate::wait_until(Duration::from_secs(20), || self.shared.pids.lock().map(|p| p.is_empty()).unwrap_or(true));
        self.exit_counts()
    }

    /// Stops everything for good and joins the supervisors. Returns the exit codes seen.
    pub fn close(&mut self) -> BTreeMap<i32, usize> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.signal_all(Signal::SIGTERM);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.exit_counts()
    }

    fn signal_all(&self, sig: Signal) {
        let pids: Vec<i32> = self.shared.pids.lock().map(|p| p.values().copied().collect()).unwrap_or_default();
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    fn exit_counts(&self) -> BTreeMap<i32, usize> {
        let mut out = BTreeMap::new();
        for e in self.exits() {
            *out.entry(e.code).or_insert(0) += 1;
        }
        out
    }

    /// Every exit so far.
    pub fn exits(&self) -> Vec<Exit> {
        self.shared.exits.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The pid of a role's conch process, while it runs.
    pub fn pid(&self, role: &str) -> Option<i32> {
        self.shared.pids.lock().ok()?.get(role).copied()
    }

    /// Every running conch process (wrappers and daemons) and their descendants.
    pub fn processes(&self) -> Vec<i32> {
        let pids: Vec<i32> = self.shared.pids.lock().map(|p| p.values().copied().collect()).unwrap_or_default();
        pids.iter().flat_map(|p| std::iter::once(*p).chain(crate::invariant::descendants(*p))).collect()
    }

    /// Keeps a role from being started again until `release`.
    pub fn hold(&self, role: &str) {
        if let Ok(mut h) = self.shared.held.lock() {
            h.insert(role.to_string());
        }
    }

    /// Lets a held role start again.
    pub fn release(&self, role: &str) {
        if let Ok(mut h) = self.shared.held.lock() {
            h.remove(role);
        }
    }

    /// Sends a signal to a role's conch process; `false` when it does not run.
    pub fn signal(&self, role: &str, sig: Signal) -> bool {
        self.pid(role).is_some_and(|pid| kill(Pid::from_raw(pid), sig).is_ok())
    }

    /// Adds the cron jobs (`@every 1s`), retried for at most 20 s.
    pub fn add_jobs(&self) -> Result<(), String> {
        for (job, hold_ms, overlap) in JOBS {
            let script = format!(
                "exec {} {} \"$FT_NODE\" {hold_ms}",
                self.paths.holdlog.display(),
                self.paths.cron_log(job).display()
            );
            let args = ["cron", "add", job, "--schedule", "@every 1s", "--run-ttl", RUN_TTL, "--overlap", overlap];
            self.conch_ok(&args, &["--", "sh", "-c", &script])?;
        }
        Ok(())
    }

    /// Removes the cron jobs, retried for at most 20 s each.
    pub fn remove_jobs(&self) -> Result<(), String> {
        for (job, _, _) in JOBS {
            self.conch_ok(&["cron", "rm", job], &[])?;
        }
        Ok(())
    }

    /// Runs `conch args tail` until it exits 0 (at most 20 s); its stdout.
    pub fn conch_ok(&self, args: &[&str], tail: &[&str]) -> Result<String, String> {
        let mut last = String::new();
        let end = Instant::now() + Duration::from_secs(20);
        for _ in 0..100 {
            match self.conch().args(args).args(tail).stdout(Stdio::piped()).stderr(Stdio::piped()).output() {
                Ok(out) if out.status.success() => return Ok(String::from_utf8_lossy(&out.stdout).to_string()),
                Ok(out) => {
                    last = format!("exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr).trim())
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(format!("conch {}: {last}", args.join(" ")))
    }
}

impl Drop for Stressers {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.close();
        }
    }
}

/// A `conch` command against `endpoints`, with a 2 s dial timeout and no stdin.
pub fn conch_command(conch: &Path, endpoints: &str) -> Command {
    let mut cmd = Command::new(conch);
    cmd.env("CONCH_ENDPOINTS", endpoints).env("CONCH_DIAL_TIMEOUT", "2s").stdin(Stdio::null());
    cmd
}

fn command(kind: Kind, i: usize, hold_ms: u64, paths: &Paths, endpoints: &str) -> Command {
    let mut cmd = conch_command(&paths.conch, endpoints);
    let ttl = format!("{}s", TTL.as_secs());
    let kill_after = format!("{}ms", KILL_AFTER.as_millis());
    let holdlog = |log: PathBuf, hold: u64| {
        vec![paths.holdlog.display().to_string(), log.display().to_string(), i.to_string(), hold.to_string()]
    };
    match kind {
        Kind::Elect => {
            cmd.args(["--ttl", &ttl, "elect", OFFICE, "--restart", "--kill-after", &kill_after, "--"]);
            cmd.args(holdlog(paths.elect_log(), SERVICE_HOLD_MS));
        }
        Kind::Sema => {
            cmd.args(["--ttl", &ttl, "sema", SEMA.0, "--max", &SEMA.1.to_string(), "--kill-after", &kill_after, "--"]);
            cmd.args(holdlog(paths.sema_log(), hold_ms));
        }
        Kind::Conchd => {
            cmd.args(["--ttl", &ttl, "conchd", "--kill-after", &kill_after]);
            cmd.env("CONCH_HOSTNAME", format!("ft-node-{i}")).env("FT_NODE", i.to_string());
        }
    }
    cmd
}

/// One role's loop: start, wait, record the exit, pause, start again — until closed.
fn supervise(role: &str, kind: Kind, i: usize, seed: u64, paths: &Paths, endpoints: &str, shared: &Shared) {
    let mut rng = SplitMix64::new(seed);
    for _ in 0..TURNS_MAX {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let held = shared.held.lock().map(|h| h.contains(role)).unwrap_or(false);
        if held || shared.paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let hold_ms = SEMA_HOLD_MS.0 + rng.below(SEMA_HOLD_MS.1 - SEMA_HOLD_MS.0 + 1);
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(paths.role_log(role));
        let mut cmd = command(kind, i, hold_ms, paths, endpoints);
        cmd.stdout(Stdio::null()).process_group(0);
        if let Ok(f) = stderr {
            cmd.stderr(f);
        }
        let Ok(mut child) = cmd.spawn() else { return };
        if let Ok(mut p) = shared.pids.lock() {
            p.insert(role.to_string(), child.id() as i32);
        }
        let code = crate::invariant::wait_bounded(&mut child, || {
            shared.stop.load(Ordering::Relaxed) || shared.paused.load(Ordering::Relaxed)
        });
        if let Ok(mut p) = shared.pids.lock() {
            p.remove(role);
        }
        if let Ok(mut e) = shared.exits.lock() {
            e.push(Exit { role: role.to_string(), code, at: crate::mono_ns() });
        }
        std::thread::sleep(RESTART_PAUSE);
    }
}
