//! B2: clean handoff along a queue. One holder and K = 10 waiters on one lock; once all
//! K + 1 keys are in etcd the holder's child is told to exit (SIGUSR1); each waiter's
//! child runs 5 ms. A handoff is the next child's start minus the previous child's exit,
//! both stamped by the children on `CLOCK_BOOTTIME`. Trials interleave the tools.
use std::time::Duration;

use nix::sys::signal::Signal;

use super::stats::{ms, p50, p99};
use super::{http, wait_lines, Ctx, Row, Target};

const K: usize = 10;

/// Which tool a trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `conch sema NAME --max 1 -- child ...`
    Conch,
    /// `etcdctl lock NAME child ...`
    Etcdctl,
}

impl Tool {
    /// Both, in the order trials interleave them.
    pub const BOTH: [Tool; 2] = [Tool::Conch, Tool::Etcdctl];

    /// The command running `child_args` while holding `name` (a mutex).
    pub fn lock(self, ctx: &Ctx, name: &str, extra: &[&str], child_args: &[&str]) -> std::process::Command {
        match self {
            Tool::Conch => {
                let mut cmd = ctx.conch();
                cmd.args(extra).args(["sema", name, "--max", "1", "--"]).arg(&ctx.child).args(child_args);
                cmd
            }
            Tool::Etcdctl => {
                let mut cmd = ctx.etcdctl();
                cmd.args(extra).args(["lock", name]).arg(&ctx.child).args(child_args);
                cmd
            }
        }
    }

    /// The etcd prefix of `name`'s keys.
    pub fn prefix(self, name: &str) -> String {
        match self {
            Tool::Conch => format!("/conch/v1/sema/{name}/1/"),
            Tool::Etcdctl => format!("{name}/"),
        }
    }
}

/// Waits (bounded) until `n` keys are under `prefix`; returns how many polls it took.
pub fn wait_keys(ctx: &Ctx, prefix: &str, n: u64, limit: Duration) -> Result<u64, String> {
    let (polls, done) = wait_keys_counted(ctx, prefix, n, limit);
    done.map(|()| polls)
}

/// [`wait_keys`] that counts its polls whether or not the keys came.
pub fn wait_keys_counted(ctx: &Ctx, prefix: &str, n: u64, limit: Duration) -> (u64, Result<(), String>) {
    let mut polls = 0;
    let mut seen = 0;
    let ok = crate::wait_until(limit, || {
        polls += 1;
        // An answer that did not come (an overloaded etcd) keeps the last count.
        seen = http::count(&ctx.etcd.endpoint(), prefix).unwrap_or(seen);
        seen >= n || super::procs::stopping()
    });
    (polls, if ok { Ok(()) } else { Err(format!("{seen} of {n} queued after {limit:?}")) })
}

/// One chain: the handoff gaps in ms.
fn chain(ctx: &Ctx, tool: Tool) -> Result<Vec<f64>, String> {
    let name = ctx.name("b2");
    let file = ctx.file("b2");
    let f = file.display().to_string();
    let holder = ctx.procs.spawn(&mut tool.lock(ctx, &name, &[], &["hold", &f, "30000"]))?;
    let ready = wait_lines(&file, "ready", 1, Duration::from_secs(10));
    let child_pid: i32 =
        ready.first().and_then(|l| l.get(2)).and_then(|p| p.parse().ok()).ok_or("holder never started")?;
    let mut waiters = Vec::new();
    for _ in 0..K {
        waiters.push(ctx.procs.spawn(&mut tool.lock(ctx, &name, &[], &["run", &f, "5"]))?);
    }
    wait_keys(ctx, &tool.prefix(&name), K as u64 + 1, Duration::from_secs(20))?;
    ctx.procs.signal(child_pid, Signal::SIGUSR1);
    let runs = wait_lines(&file, "run", K, Duration::from_secs(30));
    for pid in std::iter::once(holder).chain(waiters) {
        ctx.procs.wait(pid, Duration::from_secs(10));
    }
    let ends = wait_lines(&file, "sig", 1, Duration::from_secs(1));
    let holder_end: i128 =
        ends.first().and_then(|l| l.get(1)).and_then(|t| t.parse().ok()).ok_or("holder never ended")?;
    let mut spans: Vec<(i128, i128)> =
        runs.iter().filter_map(|l| Some((l.get(1)?.parse().ok()?, l.get(2)?.parse().ok()?))).collect();
    if spans.len() < K {
        return Err(format!("{tool:?}: {} of {K} waiters ran", spans.len()));
    }
    spans.sort();
    let mut gaps = Vec::new();
    let mut prev_end = holder_end;
    for (start, end) in spans {
        gaps.push(ms(start - prev_end));
        prev_end = end;
    }
    Ok(gaps)
}

/// The B2 rows.
pub fn b2(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let trials = ctx.opts.trials(2, 8);
    let (mut conch, mut etcdctl) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        for tool in Tool::BOTH {
            let gaps = chain(ctx, tool)?;
            match tool {
                Tool::Conch => conch.extend(gaps),
                Tool::Etcdctl => etcdctl.extend(gaps),
            }
        }
    }
    let overlaps = |g: &[f64]| g.iter().filter(|x| **x < 0.0).count();
    let note = |g: &[f64]| if overlaps(g) > 0 { format!("{} overlaps", overlaps(g)) } else { String::new() };
    Ok(vec![
        Row::new("B2", "handoff child exit → next child start, K=10, p50", "ms", Target::None)
            .figures(p50(&conch), p50(&etcdctl), conch.len())
            .notes(note(&conch), note(&etcdctl)),
        Row::new("B2", "handoff child exit → next child start, K=10, p99", "ms", Target::RatioAtMost(0.5)).figures(
            p99(&conch),
            p99(&etcdctl),
            conch.len(),
        ),
    ])
}
