//! B3 and B4: how fast a lost hold is acted on.
//!
//! * B3: the holder's lease is revoked (through etcd's gateway, as an administrator would);
//!   the latency is from just before the revoke request is sent to the SIGTERM's arrival
//!   in the child (its handler stamps `CLOCK_BOOTTIME`). Again with a CPU load: one
//!   bounded busy loop per core, started and killed by pid. `etcdctl lock` never signals
//!   its child: it is given a while and counted.
//! * B4: the holder's wrapper is SIGKILLed with a waiter queued behind it, TTL 5 s; the
//!   latency is from the kill to the successor's child start, and whether the old child
//!   was dead by then. conch's shim revokes the lease once the old group is dead (issue
//!   16.1); etcdctl's successor waits for the TTL. Then the same with the wrapper frozen
//!   (SIGSTOP): conch's shim stops the child from `term_at` and, once the group is dead,
//!   revokes the lease (past `term_at` the hold is over by the wrapper's own rule), before
//!   it would expire. The two tools' trials run at the same time (on different locks).
use std::time::Duration;

use nix::sys::signal::Signal;

use super::handoff::{wait_keys, Tool};
use super::stats::{max, ms, p50, p99};
use super::{http, wait_lines, Ctx, Row, Target};
use crate::mono_ns;

/// How long etcdctl's child is given to see a signal after the revoke.
const ETCDCTL_GRACE: Duration = Duration::from_millis(500);

fn first_field<T: std::str::FromStr>(lines: &[Vec<String>], i: usize) -> Option<T> {
    lines.first().and_then(|l| l.get(i)).and_then(|v| v.parse().ok())
}

/// One revoke: the latency in ms, or `None` when the child was not signalled in time.
fn revoke_trial(ctx: &Ctx, tool: Tool) -> Result<Option<f64>, String> {
    let name = ctx.name("b3");
    let file = ctx.file("b3");
    let f = file.display().to_string();
    let pid = ctx.procs.spawn(&mut tool.lock(ctx, &name, &[], &["hold", &f, "20000"]))?;
    let ready = wait_lines(&file, "ready", 1, Duration::from_secs(10));
    let child: i32 = first_field(&ready, 2).ok_or("the holder's child never started")?;
    ctx.procs.adopt(child);
    let lease = match tool {
        Tool::Conch => ready.first().and_then(|l| l.get(3)).and_then(|h| u64::from_str_radix(h, 16).ok()),
        Tool::Etcdctl => http::keys(&ctx.etcd.endpoint(), &tool.prefix(&name))?.first().map(|(_, l)| *l as u64),
    }
    .ok_or("no lease")? as i64;
    // Let the wrapper settle into its hold (keepalive stream, watch) before the revoke.
    std::thread::sleep(Duration::from_millis(50));
    let sent = mono_ns() as i128;
    http::revoke(&ctx.etcd.endpoint(), lease)?;
    let limit = if tool == Tool::Conch { Duration::from_secs(5) } else { ETCDCTL_GRACE };
    let sig = wait_lines(&file, "sig", 1, limit);
    let at: Option<i128> = first_field(&sig, 1);
    ctx.procs.signal(child, Signal::SIGKILL);
    ctx.procs.signal(pid, Signal::SIGKILL);
    ctx.procs.wait(pid, Duration::from_secs(5));
    Ok(at.map(|t| ms(t - sent)))
}

fn revoke_rows(ctx: &Ctx, loaded: bool) -> Result<Vec<Row>, String> {
    let n = ctx.opts.trials(10, 30);
    let n_etcdctl = ctx.opts.trials(2, 5);
    let mut spinners = Vec::new();
    if loaded {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..cores {
            let mut spin = std::process::Command::new(&ctx.child);
            spin.args(["spin", "60000"]);
            spinners.push(ctx.procs.spawn(&mut spin)?);
        }
    }
    let (mut conch, mut missed, mut etcdctl_signalled) = (Vec::new(), 0, 0);
    for i in 0..n {
        match revoke_trial(ctx, Tool::Conch)? {
            Some(latency) => conch.push(latency),
            None => missed += 1,
        }
        if i < n_etcdctl && revoke_trial(ctx, Tool::Etcdctl)?.is_some() {
            etcdctl_signalled += 1;
        }
    }
    for pid in spinners {
        ctx.procs.signal(pid, Signal::SIGKILL);
        ctx.procs.wait(pid, Duration::from_secs(2));
    }
    let load = if loaded { ", under CPU load" } else { "" };
    let never = format!("never ({etcdctl_signalled}/{n_etcdctl} signalled in {} ms)", ETCDCTL_GRACE.as_millis());
    let missed = if missed > 0 { format!("{missed} not signalled") } else { String::new() };
    Ok(vec![
        Row::new("B3", format!("lease revoke → SIGTERM at the child{load}, p50"), "ms", Target::None)
            .figures(p50(&conch), None, n)
            .notes(missed.clone(), never.clone()),
        Row::new("B3", format!("lease revoke → SIGTERM at the child{load}, p99"), "ms", Target::AtMost(5.0))
            .figures(p99(&conch), None, n)
            .notes(missed, never),
    ])
}

/// The B3 rows: unloaded, then loaded.
pub fn b3(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let mut rows = revoke_rows(ctx, false)?;
    rows.extend(revoke_rows(ctx, true)?);
    Ok(rows)
}

/// A crash trial under way: the holder, its child, the successor.
struct Crash {
    tool: Tool,
    file: std::path::PathBuf,
    holder: i32,
    old_child: i32,
    successor: i32,
}

fn crash_setup(ctx: &Ctx, tool: Tool) -> Result<Crash, String> {
    let name = ctx.name("b4");
    let file = ctx.file("b4");
    let f = file.display().to_string();
    let ttl: &[&str] = match tool {
        Tool::Conch => &["--ttl", "5s"],
        Tool::Etcdctl => &["--ttl", "5"],
    };
    let holder = ctx.procs.spawn(&mut tool.lock(ctx, &name, ttl, &["hold", &f, "30000"]))?;
    let ready = wait_lines(&file, "ready", 1, Duration::from_secs(10));
    let old_child: i32 = first_field(&ready, 2).ok_or("the holder's child never started")?;
    ctx.procs.adopt(old_child);
    let successor = ctx.procs.spawn(&mut tool.lock(ctx, &name, ttl, &["run", &f, "5"]))?;
    wait_keys(ctx, &tool.prefix(&name), 2, Duration::from_secs(10))?;
    Ok(Crash { tool, file, holder, old_child, successor })
}

/// The B4 rows: the holder's wrapper SIGKILLed (conch's shim revokes once the old group
/// is dead), then frozen by SIGSTOP (the shim revokes once `term_at` passed and the old
/// group is dead).
pub fn b4(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let mut rows = b4_trials(ctx, Signal::SIGKILL, "wrapper SIGKILL", Target::AtMost(250.0))?;
    rows.extend(b4_trials(ctx, Signal::SIGSTOP, "wrapper SIGSTOP", Target::AtMost(5250.0))?);
    Ok(rows)
}

fn b4_trials(ctx: &Ctx, signal: Signal, what: &str, target: Target) -> Result<Vec<Row>, String> {
    let trials = ctx.opts.trials(1, 4);
    let (mut conch, mut etcdctl) = (Vec::new(), Vec::new());
    let (mut conch_orphans, mut etcdctl_orphans) = (0, 0);
    for _ in 0..trials {
        let crashes = [crash_setup(ctx, Tool::Conch)?, crash_setup(ctx, Tool::Etcdctl)?];
        let killed = mono_ns() as i128;
        for c in &crashes {
            ctx.procs.signal(c.holder, signal);
        }
        for c in &crashes {
            let runs = wait_lines(&c.file, "run", 1, Duration::from_secs(12));
            let start: i128 = first_field(&runs, 1).ok_or(format!("{:?}: no successor after 12 s", c.tool))?;
            // Was the old child gone before the successor's started? It stamps its
            // SIGTERM (conch's shim sends one); one still alive now survived.
            let ended: Option<i128> = first_field(&wait_lines(&c.file, "sig", 1, Duration::ZERO), 1);
            let survived = crate::alive(c.old_child) || !matches!(ended, Some(t) if t <= start);
            let (samples, orphans) = match c.tool {
                Tool::Conch => (&mut conch, &mut conch_orphans),
                Tool::Etcdctl => (&mut etcdctl, &mut etcdctl_orphans),
            };
            samples.push(ms(start - killed));
            *orphans += usize::from(survived);
            ctx.procs.signal(c.old_child, Signal::SIGKILL);
            // A frozen holder is killed too (SIGKILL reaches a stopped process).
            ctx.procs.signal(c.holder, Signal::SIGKILL);
            ctx.procs.wait(c.holder, Duration::from_secs(2));
            ctx.procs.wait(c.successor, Duration::from_secs(10));
        }
    }
    let orphans =
        |n: usize| if n > 0 { format!("old child alive in {n}/{trials}") } else { "old child dead first".into() };
    Ok(vec![Row::new("B4", format!("{what} → successor's child start, TTL 5 s, max"), "ms", target)
        .figures(max(&conch), max(&etcdctl), trials)
        .notes(orphans(conch_orphans), orphans(etcdctl_orphans))])
}
