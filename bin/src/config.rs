//! `validate`: parsed flags → a checked [`Config`]. Every usage error is found here,
//! before any etcd call, and reported in one line (exit 64).
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use conch_core::endpoints::ENDPOINTS_MAX;
use conch_core::keys::{Name, PRIORITY_MAX};
use conch_core::values::{cmd_field, Holder};
use conch_core::{duration, Failure, HoldSpec, HookConfig, RunConfig, ServiceConfig, Timings};
use conch_driver_etcd::connect::{EtcdConfig, TlsFiles};
use conch_driver_sim::options::{FaultKind, Scenario, SimArgs};

use crate::cli::{Cli, GlobalArgs, RunArgs, Tool};

/// `--kill-after` when not given (and the TTL leaves room for it).
pub const KILL_AFTER_DEFAULT: Duration = Duration::from_secs(5);

/// Largest `--max` accepted: the first waiter watches every holder's key.
pub const MAX_SLOTS: u32 = 1000;

/// What to do, fully checked.
#[derive(Debug)]
pub enum Action {
    /// Hold and run (once, or as a service).
    Run(ServiceConfig),
    /// Print who holds.
    Who {
        /// The office or semaphore.
        spec: HoldSpec,
        /// One JSON document instead of text lines.
        json: bool,
    },
    /// Stream leadership changes.
    Watch {
        /// The office.
        spec: HoldSpec,
        /// One JSON object per line.
        json: bool,
    },
    /// Does this host lead?
    Assert {
        /// The office.
        spec: HoldSpec,
        /// This host's name.
        host: String,
        /// Smallest acceptable revision.
        min_rev: Option<i64>,
        /// JSON output.
        json: bool,
    },
    /// A `cron` subcommand.
    Cron(crate::cron::CronAction),
    /// The cron daemon.
    Conchd {
        /// Who this daemon is, its timings.
        cfg: conch_core::conchd::ConchdConfig,
        /// Status API address.
        status_addr: Option<std::net::SocketAddr>,
    },
    /// Run the simulator.
    Sim(crate::sim::SimRun),
    /// Print completions.
    Completions(clap_complete::Shell),
    /// Print a man page, or write them all.
    Man {
        /// The page (`None`: conch(1)).
        page: Option<String>,
        /// Write every page here.
        dir: Option<String>,
    },
}

/// The checked command line.
#[derive(Debug)]
pub struct Config {
    /// How to reach etcd.
    pub etcd: EtcdConfig,
    /// What to do.
    pub action: Action,
}

/// Checks everything: first every usage error (exit 64), then what the run needs of this
/// host — the command to run (exit 127 or 126), the files to write (exit 73). The error is
/// the one line to print and its exit code; nothing has been sent to etcd.
pub fn validate(cli: Cli) -> Result<Config, Failure> {
    let config = check_usage(cli)?;
    match &config.action {
        Action::Run(service) => {
            if let Some(program) = service.run.argv.first() {
                crate::command::resolve(program)?;
            }
        }
        Action::Sim(run) => {
            for (flag, path) in [("--trace", &run.trace), ("--timeline", &run.timeline)] {
                if let Some(path) = path {
                    crate::sim::check_writable(flag, path)?;
                }
            }
        }
        _ => {}
    }
    Ok(config)
}

fn check_usage(cli: Cli) -> Result<Config, String> {
    let etcd = etcd_config(&cli.global)?;
    let ttl = parse_ttl(&cli.global.ttl)?;
    let action = match cli.command {
        Tool::Completions { shell } => Action::Completions(shell),
        Tool::Sim {
            scenario,
            seed,
            seeds,
            members,
            clients,
            max,
            duration,
            faults,
            all_faults,
            priorities,
            trace,
            timeline,
            json,
            timing,
            sabotage,
        } => {
            let seeds = match (seed, seeds) {
                (Some(s), _) => s..=s,
                (None, Some(range)) => {
                    let (a, b) =
                        range.split_once("..").ok_or_else(|| format!("--seeds {range:?}: use A..B, like 1..100"))?;
                    let (a, b): (u64, u64) = (
                        a.parse().map_err(|_| format!("--seeds {range:?}: A is not a number"))?,
                        b.parse().map_err(|_| format!("--seeds {range:?}: B is not a number"))?,
                    );
                    if b < a {
                        return Err(format!("--seeds {range:?}: B is below A"));
                    }
                    a..=b
                }
                (None, None) => 1..=1,
            };
            if let Some(k) = clients.filter(|k| *k == 0 || *k > 100) {
                return Err(format!("--clients {k} is out of range: use 1 to 100"));
            }
            if let Some(n) = max.filter(|n| *n == 0 || *n > 100) {
                return Err(format!("--max {n} is out of range: use 1 to 100"));
            }
            let duration = positive("--duration", &duration)?;
            if duration < std::time::Duration::from_secs(60) || duration > std::time::Duration::from_secs(86_400) {
                return Err(format!(
                    "--duration {}: use 1m to 24h (the liveness phase alone needs most of a minute)",
                    conch_core::duration::format(duration)
                ));
            }
            let scenario = match scenario {
                crate::cli::ScenarioArg::Elect => Scenario::Elect,
                crate::cli::ScenarioArg::Sema => Scenario::Sema,
                crate::cli::ScenarioArg::Cron => Scenario::Cron,
                crate::cli::ScenarioArg::Mixed => Scenario::Mixed,
            };
            let sabotage = conch_core::Sabotage::parse(&sabotage)
                .ok_or_else(|| format!("--sabotage {sabotage:?} is not a known sabotage"))?;
            let args = SimArgs {
                scenario,
                clients,
                max,
                duration,
                faults: Some(FaultKind::parse_list(&faults)?),
                all_faults,
                sabotage,
                trace: false,
                members: members.map(usize::from),
                priorities,
            };
            Action::Sim(crate::sim::SimRun { args, seeds, trace, timeline, json, timing })
        }
        Tool::Cron { cmd } => Action::Cron(crate::cron::validate(cmd)?),
        Tool::Conchd { status_addr, kill_after } => {
            let kill_after = kill_after_for(ttl, kill_after.as_deref())?;
            let status_addr = match status_addr {
                Some(a) => {
                    Some(a.parse().map_err(|_| format!("--status-addr {a:?} is not an address like 127.0.0.1:9191"))?)
                }
                None => None,
            };
            let cfg = conch_core::conchd::ConchdConfig {
                node: hostname(),
                pid: std::process::id(),
                started: now_rfc3339(),
                ttl,
                kill_after,
                seed: random_seed(),
                sabotage: Default::default(),
            };
            Action::Conchd { cfg, status_addr }
        }
        Tool::Man { page, dir } => Action::Man { page, dir },
        Tool::Elect(a) => {
            let priority = a.priority.as_deref().map(parse_priority).transpose()?;
            let spec = HoldSpec::office(name(&a.office)?).with_priority(priority.unwrap_or(0));
            let modes = [a.run.who, a.watch, a.assert].iter().filter(|m| **m).count();
            if modes > 1 {
                return Err("--who, --watch and --assert are different modes: use one".to_string());
            }
            if a.watch || a.assert {
                query_only(&a.run, if a.watch { "--watch" } else { "--assert" })?;
                if a.restart || a.on_acquire.is_some() || a.on_lose.is_some() || priority.is_some() {
                    return Err("--restart, --priority and hooks belong to a run, not to a query".to_string());
                }
                if a.watch {
                    Action::Watch { spec, json: a.run.json }
                } else {
                    Action::Assert { spec, host: hostname(), min_rev: a.min_rev, json: a.run.json }
                }
            } else if a.run.who {
                query_only(&a.run, "--who")?;
                if priority.is_some() {
                    return Err("--priority belongs to a run, not to --who".to_string());
                }
                Action::Who { spec, json: a.run.json }
            } else {
                let hooks = HookConfig {
                    on_acquire: a.on_acquire.filter(|c| !c.is_empty()),
                    on_lose: a.on_lose.filter(|c| !c.is_empty()),
                    timeout: positive("--hook-timeout", &a.hook_timeout)?,
                };
                run_action(spec, a.run, ttl, hooks, a.restart)?
            }
        }
        Tool::Sema(a) => {
            if a.max == 0 || a.max > MAX_SLOTS {
                return Err(format!("--max {} is out of range: use 1 to {MAX_SLOTS}", a.max));
            }
            let mut spec = HoldSpec::semaphore(name(&a.name)?, a.max);
            if a.spread {
                let host = hostname();
                Name::new(&host).map_err(|e| format!("--spread uses the hostname as a key, but {e}"))?;
                spec = spec.spread(host);
            }
            if a.run.who {
                query_only(&a.run, "--who")?;
                Action::Who { spec, json: a.run.json }
            } else {
                run_action(spec, a.run, ttl, HookConfig::default(), false)?
            }
        }
    };
    Ok(Config { etcd, action })
}

/// `--priority`: a whole number from 0 to [`PRIORITY_MAX`].
fn parse_priority(text: &str) -> Result<u32, String> {
    let range = format!("use a whole number from 0 to {PRIORITY_MAX}");
    match text.trim().parse::<i64>() {
        Ok(p) if (0..=i64::from(PRIORITY_MAX)).contains(&p) => Ok(p as u32),
        Ok(p) => Err(format!("--priority {p} is out of range: {range}")),
        Err(_) => Err(format!("--priority '{text}' is not a number: {range}")),
    }
}

fn query_only(run: &RunArgs, mode: &str) -> Result<(), String> {
    if !run.cmd.is_empty() {
        return Err(format!("{mode} takes no command: drop the part after --"));
    }
    if run.nonblock || run.wait.is_some() {
        return Err(format!("{mode} does not wait: drop --nonblock/--wait"));
    }
    Ok(())
}

fn run_action(spec: HoldSpec, run: RunArgs, ttl: Duration, hooks: HookConfig, restart: bool) -> Result<Action, String> {
    if run.json {
        return Err("--json goes with --who, --watch or --assert".to_string());
    }
    if run.cmd.is_empty() {
        return Err("missing command: put it after --, as in: conch elect office -- my-daemon --flag".to_string());
    }
    let kill_after = kill_after_for(ttl, run.kill_after.as_deref())?;
    let wait = match (run.nonblock, run.wait) {
        (true, _) => Some(Duration::ZERO),
        (false, Some(w)) => Some(parse_duration("--wait", &w)?),
        (false, None) => None,
    };
    let holder = Holder {
        host: hostname(),
        pid: std::process::id(),
        started: now_rfc3339(),
        cmd: Some(cmd_field(&run.cmd)),
        held_since: None,
        priority: (spec.priority > 0).then_some(spec.priority),
    };
    let run = RunConfig { spec, holder, argv: run.cmd, ttl, kill_after, wait, hooks, sabotage: Default::default() };
    Ok(Action::Run(ServiceConfig { run, restart, seed: random_seed() }))
}

fn etcd_config(g: &GlobalArgs) -> Result<EtcdConfig, String> {
    let endpoints = parse_endpoints(&g.endpoints, g.cacert.is_some())?;
    let https = endpoints.iter().any(|e| e.starts_with("https://"));
    if https && endpoints.iter().any(|e| e.starts_with("http://")) {
        return Err("--endpoints: mix of http:// and https:// endpoints; use one scheme".to_string());
    }
    let tls = if https {
        let ca = g.cacert.clone().ok_or("--endpoints uses https://: give the CA certificate with --cacert")?;
        let client = g.cert.clone().zip(g.key.clone());
        Some(TlsFiles::load(&ca, client.as_ref().map(|(c, k)| (c.as_str(), k.as_str())))?)
    } else {
        if g.cacert.is_some() || g.cert.is_some() {
            return Err("--cacert/--cert/--key need https:// endpoints".to_string());
        }
        None
    };
    let user = match &g.user {
        Some(u) => match u.split_once(':') {
            Some((name, password)) if !name.is_empty() => Some((name.to_string(), password.to_string())),
            _ => return Err("--user must be name:password".to_string()),
        },
        None => None,
    };
    Ok(EtcdConfig { endpoints, dial_timeout: positive("--dial-timeout", &g.dial_timeout)?, user, tls })
}

fn name(text: &str) -> Result<Name, String> {
    Name::new(text).map_err(|e| e.to_string())
}

fn parse_duration(flag: &str, text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|e| format!("{flag}: {e}"))
}

fn positive(flag: &str, text: &str) -> Result<Duration, String> {
    let d = parse_duration(flag, text)?;
    if d.is_zero() {
        return Err(format!("{flag} must be more than 0s"));
    }
    Ok(d)
}

/// `--kill-after` as given (it must fit in the TTL), or the default: [`KILL_AFTER_DEFAULT`],
/// shrunk to what the TTL leaves when the TTL is short.
fn kill_after_for(ttl: Duration, given: Option<&str>) -> Result<Duration, String> {
    let kill_after = match given {
        Some(text) => parse_duration("--kill-after", text)?,
        None => match Timings::kill_after_max(ttl) {
            Some(max) => max.min(KILL_AFTER_DEFAULT),
            None => {
                return Err(format!(
                    "--ttl {} is too short: a lease needs a safety margin and {} for keepalives; use --ttl {} or more",
                    duration::format(ttl),
                    duration::format(conch_core::session::BUDGET_MIN),
                    duration::format(Timings::ttl_min(Duration::ZERO))
                ))
            }
        },
    };
    Timings::derive(ttl, kill_after).map_err(|e| e.to_string())?;
    Ok(kill_after)
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = positive("--ttl", text)?;
    if ttl.subsec_nanos() != 0 {
        return Err(format!("--ttl {text} is not a whole number of seconds (etcd's unit): use e.g. 10 or 10s"));
    }
    Ok(ttl)
}

/// Endpoints: `http(s)://host:port` or `host:port` (as etcdctl takes them: `http://`, or
/// `https://` when a CA is given), comma-separated, at most [`ENDPOINTS_MAX`].
fn parse_endpoints(text: &str, tls: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for endpoint in text.split(',').map(str::trim) {
        let bad = |why: &str| {
            format!("--endpoints: {endpoint:?} {why} (expected like http://127.0.0.1:2379 or 127.0.0.1:2379)")
        };
        let endpoint = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("{}://{endpoint}", if tls { "https" } else { "http" })
        };
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            return Err(bad("has no valid host"));
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("has no valid port"));
        }
        if !out.contains(&endpoint) {
            out.push(endpoint);
        }
    }
    if out.len() > ENDPOINTS_MAX {
        return Err(format!("--endpoints: {} endpoints; at most {ENDPOINTS_MAX} are allowed", out.len()));
    }
    Ok(out)
}

/// This host's name; `CONCH_HOSTNAME` overrides it (tests, containers).
pub fn hostname() -> String {
    if let Ok(h) = std::env::var("CONCH_HOSTNAME") {
        if !h.is_empty() {
            return h;
        }
    }
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".to_string())
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A seed for the backoff's draws, from the OS's per-process random hash keys.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoints("http://127.0.0.1:2379,https://localhost:2380/", false),
            Ok(vec!["http://127.0.0.1:2379".into(), "https://localhost:2380/".into()])
        );
        // Without a scheme, as etcdctl: http://, or https:// when a CA is given; repeats once.
        assert_eq!(
            parse_endpoints("127.0.0.1:2379, 127.0.0.1:22379,127.0.0.1:2379", false),
            Ok(vec!["http://127.0.0.1:2379".into(), "http://127.0.0.1:22379".into()])
        );
        assert_eq!(parse_endpoints("etcd1:2379", true), Ok(vec!["https://etcd1:2379".into()]));
        for bad in ["127.0.0.1", "http://127.0.0.1", "http://:2379", "http://h:0", "http://h:99999", "ftp://h:1", ""] {
            assert!(parse_endpoints(bad, false).is_err(), "{bad}");
        }
        let many: Vec<String> = (1..=ENDPOINTS_MAX as u16 + 1).map(|p| format!("127.0.0.1:{p}")).collect();
        assert!(parse_endpoints(&many.join(","), false).unwrap_err().contains("at most"));
    }

    #[test]
    fn ttl_is_whole_seconds() {
        assert_eq!(parse_ttl("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_ttl("1500ms").is_err());
        assert!(parse_ttl("0s").is_err());
        assert_eq!(parse_ttl("10"), Ok(Duration::from_secs(10)));
        assert!(parse_ttl("1.5").is_err());
    }

    #[test]
    fn the_default_kill_after_fits_a_short_ttl() {
        let s = Duration::from_secs;
        assert_eq!(kill_after_for(s(10), None), Ok(s(5)));
        assert_eq!(kill_after_for(s(5), None), Ok(Duration::from_millis(3_775)));
        assert_eq!(kill_after_for(s(2), None), Ok(Duration::from_millis(790)));
        assert_eq!(kill_after_for(s(5), Some("2")), Ok(s(2)));
        let msg = kill_after_for(s(1), None).unwrap_err();
        assert!(msg.contains("--ttl 1s is too short") && msg.contains("--ttl 2s or more"), "{msg}");
        let msg = kill_after_for(s(5), Some("5s")).unwrap_err();
        assert!(
            msg.contains("--kill-after 5s")
                && msg.contains("--ttl 5s")
                && msg.contains("--ttl 7s with --kill-after 5s"),
            "{msg}"
        );
    }
}
