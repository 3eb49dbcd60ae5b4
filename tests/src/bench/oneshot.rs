//! B1: a one-shot `conch sema x --max 1 -- child true` against `etcdctl lock x child true`,
//! wall time per invocation (spawn to reaping), trials interleaved; `conch elect x -- child
//! true` beside them (`etcdctl elect` runs no command: `lock` is its only peer); and the
//! floors under it: start-up alone (`conch --version` / `etcdctl version`) and one read
//! (`conch sema x --max 1 --who` / `etcdctl get x`).
use std::time::Duration;

use super::stats::p50;
use super::{Ctx, Row, Target};

const LIMIT: Duration = Duration::from_secs(10);

/// The B1 rows.
pub fn b1(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let n = ctx.opts.trials(10, 40);
    let (c_name, e_name) = (ctx.name("b1-conch"), ctx.name("b1-etcdctl"));
    let child = ctx.child_arg();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (mut conch, mut etcdctl, mut elect) = (Vec::new(), Vec::new(), Vec::new());
    let (mut c_start, mut e_start, mut c_read, mut e_read) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // A first call of each warms the page cache and etcd; it is not counted.
    ctx.time_run(ctx.conch().args(["sema", &c_name, "--max", "1", "--", &child, "true"]), LIMIT, &[0])?;
    ctx.time_run(ctx.etcdctl().args(["lock", &e_name, &child, "true"]), LIMIT, &[0])?;
    for _ in 0..n {
        conch.push(ms(ctx.time_run(
            ctx.conch().args(["sema", &c_name, "--max", "1", "--", &child, "true"]),
            LIMIT,
            &[0],
        )?));
        etcdctl.push(ms(ctx.time_run(ctx.etcdctl().args(["lock", &e_name, &child, "true"]), LIMIT, &[0])?));
        elect.push(ms(ctx.time_run(ctx.conch().args(["elect", &c_name, "--", &child, "true"]), LIMIT, &[0])?));
        c_start.push(ms(ctx.time_run(ctx.conch().arg("--version"), LIMIT, &[0])?));
        e_start.push(ms(ctx.time_run(ctx.etcdctl().arg("version"), LIMIT, &[0])?));
        // A vacant semaphore's --who exits 1.
        c_read.push(ms(ctx.time_run(ctx.conch().args(["sema", &c_name, "--max", "1", "--who"]), LIMIT, &[0, 1])?));
        e_read.push(ms(ctx.time_run(ctx.etcdctl().args(["get", &e_name]), LIMIT, &[0])?));
    }
    Ok(vec![
        Row::new("B1", "one-shot `sema x --max 1 -- child` / `lock x child`, p50", "ms", Target::RatioAtMost(0.25))
            .figures(p50(&conch), p50(&etcdctl), n),
        Row::new("B1", "one-shot `elect x -- child` / `lock x child`, p50", "ms", Target::RatioAtMost(0.25)).figures(
            p50(&elect),
            p50(&etcdctl),
            n,
        ),
        Row::new("B1", "floor: start-up `--version` / `etcdctl version`, p50", "ms", Target::None).figures(
            p50(&c_start),
            p50(&e_start),
            n,
        ),
        Row::new("B1", "floor: one read `sema x --who` / `etcdctl get x`, p50", "ms", Target::None).figures(
            p50(&c_read),
            p50(&e_read),
            n,
        ),
    ])
}
