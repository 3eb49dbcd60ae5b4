//! B6: what a holder costs while it holds. conch (wrapper + shim) and `etcdctl lock` each
//! hold a lock around the same idle child, at the same time (both are idle: running them
//! together halves the run, and neither steals from the other). Peak RSS is `VmHWM` of
//! `/proc/<pid>/status` (summed over wrapper and shim), PSS is `/proc/<pid>/smaps_rollup`
//! at the end of the hold, CPU is user + system time over the hold (20 s; 5 s quick).
use std::time::Duration;

use nix::sys::signal::Signal;

use super::handoff::Tool;
use super::procs::{children, cpu, pss, status_kb, threads};
use super::{wait_lines, Ctx, Row, Target};

const MIB: f64 = 1024.0 * 1024.0;

/// One holder's processes (the wrapper, and conch's shim).
struct Holder {
    pids: Vec<i32>,
    child: i32,
    wrapper: i32,
}

fn start(ctx: &Ctx, tool: Tool) -> Result<Holder, String> {
    let name = ctx.name("b6");
    let file = ctx.file("b6");
    let f = file.display().to_string();
    let wrapper = ctx.procs.spawn(&mut tool.lock(ctx, &name, &[], &["hold", &f, "120000"]))?;
    let ready = wait_lines(&file, "ready", 1, Duration::from_secs(10));
    let child: i32 = ready.first().and_then(|l| l.get(2)).and_then(|p| p.parse().ok()).ok_or("holder never started")?;
    let mut pids = vec![wrapper];
    if tool == Tool::Conch {
        // The shim is the wrapper's child and the child's parent.
        pids.extend(children(wrapper).into_iter().filter(|p| children(*p).contains(&child)));
        if pids.len() != 2 {
            return Err("conch's shim not found".into());
        }
    }
    Ok(Holder { pids, child, wrapper })
}

fn cpu_of(h: &Holder) -> Duration {
    h.pids.iter().filter_map(|p| cpu(*p)).map(|(own, _)| own).sum()
}

/// The B6 rows.
pub fn b6(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let hold = Duration::from_secs(if ctx.opts.quick { 5 } else { 20 });
    let holders = [start(ctx, Tool::Conch)?, start(ctx, Tool::Etcdctl)?];
    super::procs::nap(Duration::from_millis(200));
    let before: Vec<Duration> = holders.iter().map(cpu_of).collect();
    super::procs::nap(hold);
    let used: Vec<f64> =
        holders.iter().zip(before).map(|(h, b)| cpu_of(h).saturating_sub(b).as_secs_f64() * 1e3).collect();
    let rss: Vec<Vec<f64>> = holders
        .iter()
        .map(|h| h.pids.iter().map(|p| status_kb(*p, "VmHWM").unwrap_or(0) as f64 / MIB).collect())
        .collect();
    let pss_of: Vec<f64> =
        holders.iter().map(|h| h.pids.iter().filter_map(|p| pss(*p)).sum::<u64>() as f64 / MIB).collect();
    let threads: Vec<u64> = holders.iter().map(|h| h.pids.iter().filter_map(|p| threads(*p)).sum()).collect();
    for h in &holders {
        ctx.procs.signal(h.child, Signal::SIGUSR1);
        ctx.procs.wait(h.wrapper, Duration::from_secs(10));
    }
    let parts = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" + ");
    let secs = hold.as_secs();
    Ok(vec![
        Row::new("B6", "peak RSS (VmHWM) wrapper + shim during a hold", "MiB", Target::AtMost(8.0))
            .figures(Some(rss[0].iter().sum()), Some(rss[1].iter().sum()), 1)
            .notes(format!("{} MiB, {} threads", parts(&rss[0]), threads[0]), format!("{} threads", threads[1])),
        Row::new("B6", "PSS wrapper + shim at the end of the hold", "MiB", Target::None).figures(
            Some(pss_of[0]),
            Some(pss_of[1]),
            1,
        ),
        Row::new("B6", format!("CPU (user + system) during a {secs} s hold"), "ms", Target::NotAboveEtcdctl).figures(
            Some(used[0]),
            Some(used[1]),
            1,
        ),
    ])
}
