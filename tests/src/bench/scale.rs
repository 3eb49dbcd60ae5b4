//! B5: what etcd sends per acquisition as the queue grows. One holder and K waiters on one
//! lock; once all are queued the holder lets go and the queue drains. etcd's own counters
//! (`/metrics` on `--listen-metrics-urls`, loopback) before and after, divided by K + 1:
//! unary RPCs handled (`grpc_server_handled_total`, unary), stream messages sent
//! (`grpc_server_msg_sent_total`, streams: watch events, keepalive answers), bytes sent to
//! clients (`etcd_network_client_grpc_sent_bytes_total`). The bench's own "are they all
//! queued?" polls (count-only ranges through the gateway) are measured once and taken off.
//!
//! Every queued contender keeps its lease alive while it waits (conch every 1.6 s at TTL
//! 10 s and kill-after 5 s, etcdctl every 20 s), and waits grow with K (starting and
//! queueing K processes, then K handoffs): that part grows with K whatever the ranking
//! does. So the rows are shown again without the keepalive answers
//! (`grpc_server_msg_sent_total{grpc_method="LeaseKeepAlive"}`, and their bytes at the
//! size one idle holder's answers have in this run).
use std::time::Duration;

use nix::sys::signal::Signal;

use super::handoff::{wait_keys_counted, Tool};
use super::{http, lines, wait_lines, Ctx, Row, Target};

/// etcd's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    unary: f64,
    stream_msgs: f64,
    bytes: f64,
    grants: f64,
    /// Keepalive answers (stream messages).
    keepalives: f64,
}

impl Counters {
    fn read(ctx: &Ctx) -> Result<Counters, String> {
        let m = http::metrics(&ctx.etcd.metrics_url())?;
        Ok(Counters {
            unary: http::sum(&m, "grpc_server_handled_total", &["grpc_type=\"unary\""]),
            stream_msgs: http::sum(&m, "grpc_server_msg_sent_total", &["_stream\""]),
            bytes: http::sum(&m, "etcd_network_client_grpc_sent_bytes_total", &[]),
            grants: http::sum(&m, "grpc_server_handled_total", &["grpc_method=\"LeaseGrant\""]),
            keepalives: http::sum(&m, "grpc_server_msg_sent_total", &["grpc_method=\"LeaseKeepAlive\""]),
        })
    }

    fn minus(self, o: Counters) -> Counters {
        Counters {
            unary: self.unary - o.unary,
            stream_msgs: self.stream_msgs - o.stream_msgs,
            bytes: self.bytes - o.bytes,
            grants: self.grants - o.grants,
            keepalives: self.keepalives - o.keepalives,
        }
    }

    fn scaled(self, by: f64) -> Counters {
        Counters {
            unary: self.unary * by,
            stream_msgs: self.stream_msgs * by,
            bytes: self.bytes * by,
            grants: self.grants * by,
            keepalives: self.keepalives * by,
        }
    }
}

/// One queue of K: per-acquisition counters, failed contenders, FIFO breaks.
struct Drain {
    per: Counters,
    failed: usize,
    /// The failed contenders' exit codes, and whether all were queued.
    why: String,
    fifo_breaks: usize,
    /// Leases granted beyond one per contender: sessions lost and granted again.
    reentered: usize,
    /// etcd's "took too long" warnings meanwhile.
    slow: usize,
}

fn drain(ctx: &Ctx, tool: Tool, k: usize, poll: Counters) -> Result<Drain, String> {
    let name = ctx.name("b5");
    let file = ctx.file("b5");
    let f = file.display().to_string();
    let slow_before = ctx.etcd.log().matches("took too long").count();
    let before = Counters::read(ctx)?;
    let holder = ctx.procs.spawn(&mut tool.lock(ctx, &name, &[], &["hold", &f, "600000"]))?;
    let ready = wait_lines(&file, "ready", 1, Duration::from_secs(10));
    let child: i32 = ready.first().and_then(|l| l.get(2)).and_then(|p| p.parse().ok()).ok_or("holder never started")?;
    let mut waiters = Vec::new();
    for _ in 0..k {
        waiters.push(ctx.procs.spawn(&mut tool.lock(ctx, &name, &[], &["run", &f, "0"]))?);
    }
    // Bounded so that a full run stays near 10 minutes even when etcd is overloaded.
    let limit = Duration::from_secs(20) + Duration::from_millis(60) * k as u32;
    // Not all queued in time (contenders that gave up, an overloaded etcd): the queue
    // drains anyway and the row says so.
    let (polls, queued) = wait_keys_counted(ctx, &tool.prefix(&name), k as u64 + 1, limit);
    let short = queued.err();
    ctx.procs.signal(child, Signal::SIGUSR1);
    wait_lines(&file, "run", k, limit);
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    // One bound for all the waits together: stuck contenders must not add up.
    let end = std::time::Instant::now() + Duration::from_secs(20);
    for pid in std::iter::once(holder).chain(waiters) {
        let left = end.saturating_duration_since(std::time::Instant::now()).max(Duration::from_millis(10));
        match ctx.procs.wait(pid, left) {
            Some((0, _)) => {}
            Some((code, _)) => *codes.entry(format!("exit {code}")).or_default() += 1,
            None => *codes.entry("still running".to_string()).or_default() += 1,
        }
    }
    let failed = codes.values().sum();
    let why = codes.iter().map(|(c, n)| format!("{n}× {c}")).chain(short).collect::<Vec<_>>().join(", ");
    let after = Counters::read(ctx)?;
    let used = after.minus(before).minus(poll.scaled(polls as f64));
    // conch's children see CONCH_REV: served in start order, the revisions must rise.
    let mut runs: Vec<(i128, i64)> = lines(&file)
        .iter()
        .filter(|l| l.first().is_some_and(|t| t == "run"))
        .filter_map(|l| Some((l.get(1)?.parse().ok()?, l.get(4)?.parse().ok()?)))
        .collect();
    runs.sort();
    let fifo_breaks = runs.windows(2).filter(|w| w[1].1 < w[0].1).count();
    let n = (k + 1) as f64;
    let reentered = (used.grants - n).round().max(0.0) as usize;
    let slow = ctx.etcd.log().matches("took too long").count() - slow_before;
    Ok(Drain { per: used.scaled(1.0 / n), failed, why, fifo_breaks, reentered, slow })
}

/// Bytes etcd sends per keepalive answer: one idle holder of `tool` for a few answers
/// (conch's cadence is 1.6 s at the defaults; etcdctl's TTL is cut to 6 s here, so every 2 s).
fn keepalive_bytes(ctx: &Ctx, tool: Tool) -> Result<f64, String> {
    let name = ctx.name("b5ka");
    let file = ctx.file("b5ka");
    let f = file.display().to_string();
    let ttl: &[&str] = if tool == Tool::Etcdctl { &["--ttl", "6"] } else { &[] };
    let holder = ctx.procs.spawn(&mut tool.lock(ctx, &name, ttl, &["hold", &f, "600000"]))?;
    let ready = wait_lines(&file, "ready", 1, Duration::from_secs(10));
    let child: i32 = ready.first().and_then(|l| l.get(2)).and_then(|p| p.parse().ok()).ok_or("holder never started")?;
    super::procs::nap(Duration::from_millis(300));
    let before = Counters::read(ctx)?;
    super::procs::nap(Duration::from_millis(if ctx.opts.quick { 2500 } else { 5000 }));
    let used = Counters::read(ctx)?.minus(before);
    ctx.procs.signal(child, Signal::SIGUSR1);
    ctx.procs.wait(holder, Duration::from_secs(10));
    if used.keepalives < 1.0 {
        return Err(format!("{tool:?}: no keepalive answer while holding idle"));
    }
    Ok(used.bytes / used.keepalives)
}

/// What one count-only poll costs (so the waits' polls can be taken off).
fn poll_cost(ctx: &Ctx) -> Result<Counters, String> {
    let before = Counters::read(ctx)?;
    for _ in 0..20 {
        http::count(&ctx.etcd.endpoint(), "/bench-nothing/")?;
    }
    Ok(Counters::read(ctx)?.minus(before).scaled(1.0 / 20.0))
}

/// The B5 rows.
pub fn b5(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let poll = poll_cost(ctx)?;
    let conch_ks: &[usize] = if ctx.opts.quick { &[10, 100] } else { &[10, 100, 1000] };
    let etcdctl_ks: &[usize] = &[10, 100];
    let mut rows = Vec::new();
    let mut c = Vec::new();
    let mut e = Vec::new();
    for &k in conch_ks {
        c.push((k, drain(ctx, Tool::Conch, k, poll)?));
        if etcdctl_ks.contains(&k) {
            e.push((k, drain(ctx, Tool::Etcdctl, k, poll)?));
        }
    }
    let at = |v: &[(usize, Drain)], k: usize, f: fn(&Counters) -> f64| {
        v.iter().find(|(x, _)| *x == k).map(|(_, d)| f(&d.per))
    };
    let msgs = |c: &Counters| c.unary + c.stream_msgs;
    for &k in conch_ks {
        rows.push(
            Row::new("B5", format!("unary RPCs + stream msgs per acquisition, K={k}"), "", Target::None).figures(
                at(&c, k, msgs),
                at(&e, k, msgs),
                1,
            ),
        );
        rows.push(Row::new("B5", format!("bytes sent by etcd per acquisition, K={k}"), "", Target::None).figures(
            at(&c, k, |c| c.bytes),
            at(&e, k, |c| c.bytes),
            1,
        ));
    }
    let (ck, ek) = (conch_ks[conch_ks.len() - 1], etcdctl_ks[etcdctl_ks.len() - 1]);
    let growth = |v: &[(usize, Drain)], k: usize, f: fn(&Counters) -> f64| Some(at(v, k, f)? / at(v, 10, f)?);
    let label = |what: &str| format!("{what} per acquisition, K={ck} ÷ K=10 (etcdctl K={ek} ÷ K=10)");
    rows.push(Row::new("B5", label("msgs"), "x", Target::AtMost(1.1)).figures(
        growth(&c, ck, msgs),
        growth(&e, ek, msgs),
        1,
    ));
    rows.push(Row::new("B5", label("bytes"), "x", Target::AtMost(1.1)).figures(
        growth(&c, ck, |c| c.bytes),
        growth(&e, ek, |c| c.bytes),
        1,
    ));
    let label =
        |what: &str| format!("{what} per acquisition without keepalive answers, K={ck} ÷ K=10 (etcdctl K={ek})");
    let bare_msgs = |c: &Counters| c.unary + c.stream_msgs - c.keepalives;
    rows.push(Row::new("B5", label("msgs"), "x", Target::None).figures(
        growth(&c, ck, bare_msgs),
        growth(&e, ek, bare_msgs),
        1,
    ));
    let (cb, eb) = (keepalive_bytes(ctx, Tool::Conch)?, keepalive_bytes(ctx, Tool::Etcdctl)?);
    let bare = |v: &[(usize, Drain)], k: usize, per: f64| {
        let of = |k: usize| v.iter().find(|(x, _)| *x == k).map(|(_, d)| d.per.bytes - d.per.keepalives * per);
        Some(of(k)? / of(10)?)
    };
    rows.push(
        Row::new("B5", label("bytes"), "x", Target::None)
            .figures(bare(&c, ck, cb), bare(&e, ek, eb), 1)
            .notes(format!("{cb:.0} bytes per answer"), format!("{eb:.0} bytes per answer")),
    );
    let health = |v: &[(usize, Drain)], k: usize| {
        v.iter().find(|(x, _)| *x == k).map_or(String::new(), |(_, d)| {
            format!(
                "{} failed{}, {} re-entered, {} FIFO breaks, etcd warned {} times 'took too long'",
                d.failed,
                if d.why.is_empty() { String::new() } else { format!(" ({})", d.why) },
                d.reentered,
                d.fifo_breaks,
                d.slow
            )
        })
    };
    let failed = c.iter().find(|(x, _)| *x == ck).map(|(_, d)| (d.failed + d.fifo_breaks + d.reentered) as f64);
    rows.push(
        Row::new(
            "B5",
            format!("contenders failed, re-entered (session lost) or out of FIFO order, K={ck}"),
            "",
            Target::AtMost(0.0),
        )
        .figures(failed, None, 1)
        .notes(health(&c, ck), health(&e, ek)),
    );
    Ok(rows)
}
