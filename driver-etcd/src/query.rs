//! Read-only queries: `--who`, `--assert`, `--watch`. No lease, nothing written.

use conch_core::keys::sema_name_prefix;
use conch_core::who::{assert_leader, other_capacities, report, WhoReport, WhoWatch, WhoWatchInput, WhoWatchOutput};
use conch_core::{EtcdError, EtcdRequest, EtcdResponse, ExitCode, Failure, HoldSpec, Kv, Revision};
use etcd_client::WatchOptions;
use tokio::signal::unix::{signal, SignalKind};

use crate::connect::EtcdConfig;
use crate::pool::{stream_outcome, Pool};

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::LOST, e.to_string()))
}

/// A failed call as the line to print and its exit code: 69 only when etcd is
/// unreachable, 77 when it refused who we are, 70 for anything else.
pub fn failure(config: &EtcdConfig, error: EtcdError) -> Failure {
    match error {
        EtcdError::Unavailable(why) => {
            Failure::new(ExitCode::UNAVAILABLE, format!("etcd unreachable at {}: {why}", config.endpoints.join(",")))
        }
        EtcdError::Denied(why) => Failure::new(ExitCode::NO_PERMISSION, why),
        other => Failure::new(ExitCode::LOST, format!("etcd refused the request: {other}")),
    }
}

fn unexpected(answer: &EtcdResponse) -> Failure {
    Failure::new(ExitCode::LOST, format!("unexpected answer {answer:?}"))
}

async fn range(pool: &Pool, prefix: String) -> Result<(Revision, Vec<Kv>), Failure> {
    let config = pool.config();
    match pool.call(EtcdRequest::RangePrefix { prefix }, config.dial_timeout).await {
        EtcdResponse::Range { header_rev, kvs } => Ok((header_rev, kvs)),
        EtcdResponse::Error(e) => Err(failure(config, e)),
        other => Err(unexpected(&other)),
    }
}

/// `--who`: the holders (and waiters); for a semaphore also the other capacities in use
/// under its name, which the caller warns about.
pub fn who(config: &EtcdConfig, spec: &HoldSpec) -> Result<(WhoReport, Vec<(u32, usize)>), Failure> {
    runtime()?.block_on(async {
        let pool = Pool::new(config.clone());
        if spec.is_office {
            let (_, kvs) = range(&pool, spec.prefix()).await?;
            return Ok((report(spec, &kvs), Vec::new()));
        }
        // One read of the whole name: our capacity's keys, and any others.
        let (_, family) = range(&pool, sema_name_prefix(&spec.name)).await?;
        let prefix = spec.prefix();
        let ours: Vec<Kv> = family.iter().filter(|kv| kv.key.starts_with(&prefix)).cloned().collect();
        Ok((report(spec, &ours), other_capacities(spec, &family)))
    })
}

/// `--assert`: 0 if `host` leads (with a revision ≥ `min_rev`), 1 if not; the JSON answer.
pub fn assert(
    config: &EtcdConfig,
    spec: &HoldSpec,
    host: &str,
    min_rev: Option<i64>,
) -> Result<(ExitCode, String), Failure> {
    runtime()?.block_on(async {
        let (_, kvs) = range(&Pool::new(config.clone()), spec.prefix()).await?;
        let (held, json) = assert_leader(spec, &kvs, host, min_rev);
        Ok((if held { ExitCode::OK } else { ExitCode::VACANT }, json.to_string()))
    })
}

/// `--watch`: prints the current leader line, then one line per change, until SIGINT or
/// SIGTERM (exit 0). Survives etcd restarts and compaction by re-listing. With
/// `value_only` the lines are `office value rev`.
pub fn watch(config: &EtcdConfig, spec: &HoldSpec, as_json: bool, value_only: bool) -> ExitCode {
    let Ok(rt) = runtime() else { return ExitCode::LOST };
    rt.block_on(async {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return ExitCode::LOST;
        };
        tokio::select! {
            code = watch_loop(config, spec, as_json, value_only) => code,
            _ = int.recv() => ExitCode::OK,
            _ = term.recv() => ExitCode::OK,
        }
    })
}

/// Carries out [`WhoWatch`]'s outputs: range reads, one prefix watch, the pauses.
async fn watch_loop(config: &EtcdConfig, spec: &HoldSpec, as_json: bool, value_only: bool) -> ExitCode {
    let pool = Pool::new(config.clone());
    let prefix = spec.prefix();
    let mut machine = WhoWatch::new(spec.clone(), as_json).with_value_only(value_only);
    let mut stream: Option<(usize, etcd_client::WatchStream)> = None;
    let mut last_error: Option<Failure> = None;
    loop {
        let Some(output) = machine.poll_output() else {
            // Nothing to do but wait for the watch.
            let Some((endpoint, watch)) = stream.as_mut() else {
                debug_assert!(false, "WhoWatch is never idle without a watch: it lists or waits first");
                return ExitCode::LOST;
            };
            let input = match watch.message().await {
                Ok(Some(r)) if r.compact_revision() == 0 && !r.canceled() => {
                    if r.events().is_empty() {
                        continue;
                    }
                    WhoWatchInput::Changed
                }
                Err(e) => {
                    pool.report(*endpoint, stream_outcome(&e));
                    WhoWatchInput::WatchEnded
                }
                // Compacted, cancelled (an etcd restart), or the stream's end.
                _ => WhoWatchInput::WatchEnded,
            };
            machine.handle_input(input);
            continue;
        };
        match output {
            WhoWatchOutput::Print(line) => crate::out::listing_line(&line),
            WhoWatchOutput::List => machine.handle_input(list_for_watch(&pool, &prefix, &mut last_error).await),
            WhoWatchOutput::ListAfter { delay, warn } => {
                stream = None;
                if let Some(warn) = warn {
                    let error = last_error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
                    tracing::warn!(error, "{warn}");
                }
                tokio::time::sleep(delay).await;
                machine.handle_input(list_for_watch(&pool, &prefix, &mut last_error).await);
            }
            WhoWatchOutput::Watch { start_rev } => {
                let options = WatchOptions::new().with_prefix().with_start_revision(start_rev.0);
                let endpoint = pool.pinned();
                let opened = match pool.client(endpoint, config.dial_timeout).await {
                    Ok(mut client) => client.watch(prefix.clone(), Some(options)).await.map_err(|e| {
                        pool.report(endpoint, stream_outcome(&e));
                        e.to_string()
                    }),
                    Err(e) => Err(format!("{e:?}")),
                };
                match opened {
                    Ok(watch) => stream = Some((endpoint, watch)),
                    Err(e) => {
                        last_error = Some(Failure::new(ExitCode::UNAVAILABLE, e));
                        machine.handle_input(WhoWatchInput::WatchFailed);
                    }
                }
            }
            WhoWatchOutput::Fail => {
                let failure = last_error.unwrap_or_else(|| Failure::new(ExitCode::LOST, "watch failed"));
                tracing::error!(error = %failure, "watch failed");
                return failure.code;
            }
        }
    }
}

/// One range read of `prefix` for [`WhoWatch`] (the failure kept for its log line).
async fn list_for_watch(pool: &Pool, prefix: &str, last_error: &mut Option<Failure>) -> WhoWatchInput {
    match range(pool, prefix.to_string()).await {
        Ok((rev, kvs)) => WhoWatchInput::Listed { rev, kvs },
        Err(e) => {
            *last_error = Some(e);
            WhoWatchInput::ListFailed
        }
    }
}

/// One etcd call, bounded by the dial timeout (the `cron` subcommands are made of these).
pub fn call_once(config: &EtcdConfig, request: EtcdRequest) -> Result<EtcdResponse, Failure> {
    runtime()?.block_on(async {
        match Pool::new(config.clone()).call(request, config.dial_timeout).await {
            EtcdResponse::Error(e) => Err(failure(config, e)),
            answer => Ok(answer),
        }
    })
}

/// Every key under `prefix`, sorted by create revision.
pub fn read_prefix(config: &EtcdConfig, prefix: &str) -> Result<Vec<Kv>, Failure> {
    match call_once(config, EtcdRequest::RangePrefix { prefix: prefix.to_string() })? {
        EtcdResponse::Range { kvs, .. } => Ok(kvs),
        other => Err(unexpected(&other)),
    }
}

/// Which of these session leases (hex) are gone (expired or revoked): a claim on one of
/// them without a result is a zombie. A lease whose state cannot be read counts as alive.
pub fn sessions_gone(config: &EtcdConfig, leases: &[String]) -> Result<std::collections::BTreeSet<String>, Failure> {
    let mut gone = std::collections::BTreeSet::new();
    if leases.is_empty() {
        return Ok(gone);
    }
    runtime()?.block_on(async {
        let pool = Pool::new(config.clone());
        let endpoint = pool.pinned();
        let Ok(mut client) = pool.client(endpoint, config.dial_timeout).await else { return };
        for hex in leases {
            let Some(lease) = conch_core::keys::parse_lease_hex(hex) else { continue };
            let asked = tokio::time::timeout(config.call_timeout(), client.lease_time_to_live(lease.0, None)).await;
            match asked {
                Ok(Ok(answer)) if answer.ttl() <= 0 => {
                    gone.insert(hex.clone());
                }
                Ok(Err(e)) if crate::calls::map_error(&e) == EtcdError::LeaseNotFound => {
                    gone.insert(hex.clone());
                }
                _ => {}
            }
        }
    });
    Ok(gone)
}

/// `cron rm`'s cleanup: every result of `job`, and its claims of ticks before `cutoff`
/// (Unix s; a later tick's claim stays, so a daemon that has not yet heard of the removal
/// cannot run that tick twice). Tick keys are ten-digit seconds, so a key range is a
/// tick range.
pub fn forget_history(config: &EtcdConfig, job: &str, cutoff: i64) -> Result<(), Failure> {
    use conch_core::cron::{fire_key, fire_prefix, result_prefix};
    runtime()?.block_on(async {
        let pool = Pool::new(config.clone());
        let mut client = pool.client(pool.pinned(), config.dial_timeout).await.map_err(|e| match e {
            EtcdResponse::Error(e) => failure(config, e),
            other => unexpected(&other),
        })?;
        let results = etcd_client::DeleteOptions::new().with_prefix();
        let fires = etcd_client::DeleteOptions::new().with_range(fire_key(job, cutoff));
        for (key, options) in [(result_prefix(job), results), (fire_prefix(job), fires)] {
            match tokio::time::timeout(config.call_timeout(), client.delete(key, Some(options))).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(failure(config, crate::calls::map_error(&e))),
                Err(_) => return Err(failure(config, EtcdError::Unavailable("no answer".into()))),
            }
        }
        Ok(())
    })
}

/// [`read_prefix`] with the failure as its line only (the status API answers 503 with it).
pub fn list(config: &EtcdConfig, prefix: &str) -> Result<Vec<Kv>, String> {
    read_prefix(config, prefix).map_err(|f| f.message)
}
