//! The benchmark program's parts (07-performance B1–B8): one throwaway etcd on tmpfs, the
//! same tiny C child for conch and `etcdctl`, trials interleaved (conch, etcdctl, conch,
//! ...), a table `measure | conch | etcdctl | ratio | target | met` and its JSON.
//!
//! Every loop is bounded in count and time; every process started is registered in
//! [`procs::Procs`] and killed by pid when the run ends, whatever happened.
pub mod child;
pub mod footprint;
pub mod handoff;
pub mod http;
pub mod loss;
pub mod oneshot;
pub mod procs;
pub mod report;
pub mod scale;
pub mod sched;
pub mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Etcd;

pub use report::{Row, Target};

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// ≤ 1 minute on a 2-core machine: fewer trials, smaller K and N.
    pub quick: bool,
    /// The conch binary to measure.
    pub conch: PathBuf,
    /// Only these measures (B1..B8), or all.
    pub only: Vec<String>,
}

impl Options {
    /// Trials per tool: `quick` in quick mode, else `full`.
    pub fn trials(&self, quick: usize, full: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// Whether measure `id` runs.
    pub fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o.eq_ignore_ascii_case(id))
    }
}

/// Everything a measure needs: the etcd, the child, the tools, a scratch dir.
pub struct Ctx {
    /// The run's options.
    pub opts: Options,
    /// The one etcd (tmpfs, metrics on loopback).
    pub etcd: Etcd,
    /// The compiled child.
    pub child: PathBuf,
    /// Whether the child is static (`gcc -static`) or dynamic.
    pub child_static: bool,
    /// Scratch files, removed at the end.
    pub dir: tempfile::TempDir,
    /// Every process started, killed by pid at the end.
    pub procs: procs::Procs,
    next: std::cell::Cell<u32>,
}

impl Ctx {
    /// Starts etcd, compiles the child.
    pub fn new(opts: Options) -> Result<Ctx, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let (child, child_static) = child::compile(dir.path())?;
        let etcd = Etcd::start_in_memory_with_metrics();
        Ok(Ctx { opts, etcd, child, child_static, dir, procs: procs::Procs::default(), next: 0.into() })
    }

    /// A fresh file name in the scratch dir.
    pub fn file(&self, what: &str) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        self.dir.path().join(format!("{what}-{n}"))
    }

    /// A fresh lock / semaphore name.
    pub fn name(&self, what: &str) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("bench-{what}-{n}")
    }

    /// `conch` with this etcd and its default timings (as an operator runs it), stdin
    /// closed, output discarded.
    pub fn conch(&self) -> Command {
        let mut cmd = Command::new(&self.opts.conch);
        cmd.env("CONCH_ENDPOINTS", self.etcd.endpoint())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// `etcdctl` with this etcd, stdin closed, output discarded.
    pub fn etcdctl(&self) -> Command {
        let mut cmd = Command::new(crate::etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.etcd.endpoint()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// The child's path as an argument.
    pub fn child_arg(&self) -> String {
        self.child.display().to_string()
    }

    /// Runs `cmd` to its end (at most `limit`); returns the wall time from just before the
    /// spawn to the reaping, if it ended with one of the `ok` codes.
    pub fn time_run(&self, cmd: &mut Command, limit: Duration, ok: &[i32]) -> Result<Duration, String> {
        let start = Instant::now();
        let pid = self.procs.spawn(cmd)?;
        let (code, at) =
            self.procs.wait(pid, limit).ok_or_else(|| format!("{cmd:?}: still running after {limit:?}"))?;
        if !ok.contains(&code) {
            return Err(format!("{cmd:?}: exit {code}"));
        }
        Ok(at.duration_since(start))
    }
}

/// Reads a file of child lines, or empty.
pub fn lines(path: &Path) -> Vec<Vec<String>> {
    crate::read(path).lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// Waits (bounded) until `path` holds at least `n` lines whose first word is `tag`.
pub fn wait_lines(path: &Path, tag: &str, n: usize, limit: Duration) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    crate::wait_until(limit, || {
        found = lines(path).into_iter().filter(|l| l.first().is_some_and(|t| t == tag)).collect();
        found.len() >= n || procs::stopping()
    });
    found
}

/// Runs every measure the options ask for; a measure that fails gives a row saying so.
pub fn run_all(ctx: &Ctx) -> Vec<Row> {
    type Measure = fn(&Ctx) -> Result<Vec<Row>, String>;
    let measures: [(&str, Measure); 8] = [
        ("B1", oneshot::b1),
        ("B2", handoff::b2),
        ("B3", loss::b3),
        ("B4", loss::b4),
        ("B5", scale::b5),
        ("B6", footprint::b6),
        ("B7", sched::b7),
        ("B8", sched::b8),
    ];
    let mut rows = Vec::new();
    for (id, measure) in measures {
        if !ctx.opts.wants(id) || procs::stopping() {
            continue;
        }
        let start = Instant::now();
        match measure(ctx) {
            Ok(mut got) => rows.append(&mut got),
            Err(e) => rows.push(Row::failed(id, &e)),
        }
        ctx.procs.kill_all();
        eprintln!("conch-bench: {id} done in {:.1} s", start.elapsed().as_secs_f64());
    }
    rows
}
