//! `validate`: parsed flags and a [`Host`] → a checked [`Config`]. Every usage error is
//! found here, before any etcd call, and reported in one line (exit 64). A pure function:
//! all it knows of the machine comes through the [`Host`] (the real one is
//! [`crate::host::ThisHost`]), so the tests below run it over tables.
use std::time::Duration;

use conch_core::endpoints::ENDPOINTS_MAX;
use conch_core::keys::{Name, PRIORITY_MAX};
use conch_core::values::{cmd_field, Holder};
use conch_core::{duration, Failure, HoldSpec, HookConfig, RunConfig, ServiceConfig, Timings};
use conch_driver_etcd::connect::{EtcdConfig, TlsFiles};
use conch_driver_sim::options::{FaultKind, Scenario, SimArgs};

use crate::cli::{Cli, GlobalArgs, RunArgs, Tool};
use crate::host::Host;

/// `--kill-after` when not given (and the TTL leaves room for it).
pub const KILL_AFTER_DEFAULT: Duration = Duration::from_secs(5);

/// `--fence-budget` when not given.
pub const FENCE_BUDGET_DEFAULT: Duration = Duration::from_secs(2);

/// Largest `--max` accepted: the first waiter watches every holder's key.
pub const MAX_SLOTS: u32 = 1000;

/// What to do, fully checked.
#[derive(Debug)]
pub enum Action {
    /// Hold and run (once, or as a service).
    Run(Box<ServiceConfig>),
    /// Print who holds.
    Who {
        /// The office or semaphore.
        spec: HoldSpec,
        /// One JSON document instead of text lines.
        json: bool,
        /// The leader's published value alone.
        value_only: bool,
    },
    /// Stream leadership changes.
    Watch {
        /// The office.
        spec: HoldSpec,
        /// One JSON object per line.
        json: bool,
        /// `office value rev` lines.
        value_only: bool,
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
    /// Ask an office's leader to step down.
    StepDown {
        /// The office.
        office: Name,
        /// The request's lease TTL.
        ttl: Duration,
        /// How long to wait for the resignation.
        wait: Duration,
        /// Who asks (hostname, pid), written into the request.
        asker: (String, u32),
    },
    /// A fenced write from a holder's child (`put`, `del`, `txn`).
    Fenced(crate::fenced::FencedRun),
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
pub fn validate(cli: Cli, host: &dyn Host) -> Result<Config, Failure> {
    let config = check_usage(cli, host)?;
    match &config.action {
        Action::Run(service) => {
            if let Some(program) = service.run.argv.first() {
                host.resolve_command(program)?;
            }
        }
        Action::Sim(run) => {
            for (flag, path) in [("--trace", &run.trace), ("--timeline", &run.timeline)] {
                if let Some(path) = path {
                    host.check_writable(flag, path)?;
                }
            }
        }
        _ => {}
    }
    Ok(config)
}

fn check_usage(cli: Cli, host: &dyn Host) -> Result<Config, String> {
    let etcd = etcd_config(&cli.global, host)?;
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
            fence_budget,
            fenced_writes,
            step_downs,
            priorities,
            hold,
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
            let fence_budget = match fence_budget {
                Some(text) => Some(parse_duration("--fence-budget", &text)?),
                None => None,
            };
            let hold = match hold {
                Some(text) => {
                    let (a, b) =
                        text.split_once("..").ok_or_else(|| format!("--hold {text:?}: use A..B, like 20s..90s"))?;
                    let (a, b) = (parse_duration("--hold", a)?, parse_duration("--hold", b)?);
                    if b < a {
                        return Err(format!("--hold {text:?}: B is below A"));
                    }
                    Some((a, b))
                }
                None => None,
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
                fence_budget,
                fenced_writes,
                step_downs,
                priorities,
                hold,
            };
            Action::Sim(crate::sim::SimRun { args, seeds, trace, timeline, json, timing })
        }
        Tool::Cron { cmd } => Action::Cron(crate::cron::validate(cmd, host)?),
        Tool::Conchd { status_addr, kill_after } => {
            let kill_after = kill_after_for(ttl, kill_after.as_deref(), Duration::ZERO)?;
            let status_addr = match status_addr {
                Some(a) => {
                    Some(a.parse().map_err(|_| format!("--status-addr {a:?} is not an address like 127.0.0.1:9191"))?)
                }
                None => None,
            };
            let cfg = conch_core::conchd::ConchdConfig {
                node: host.hostname(),
                pid: host.pid(),
                started: host.now_rfc3339(),
                ttl,
                kill_after,
                seed: host.seed(),
            };
            Action::Conchd { cfg, status_addr }
        }
        Tool::Man { page, dir } => Action::Man { page, dir },
        Tool::Put { key, value } => {
            Action::Fenced(crate::fenced::validate(crate::fenced::What::Put(key, value), host)?)
        }
        Tool::Del { key, prefix } => {
            Action::Fenced(crate::fenced::validate(crate::fenced::What::Del(key, prefix), host)?)
        }
        Tool::Txn => Action::Fenced(crate::fenced::validate(crate::fenced::What::Txn, host)?),
        Tool::Elect(a) => {
            let priority = a.priority.as_deref().map(parse_priority).transpose()?;
            if a.preempt && priority.is_none() {
                return Err(
                    "--preempt needs --priority P: it pre-empts holders whose priority is lower than P".to_string()
                );
            }
            let spec = HoldSpec::office(name(&a.office)?).with_priority(priority.unwrap_or(0)).with_preempt(a.preempt);
            let modes = [a.run.who, a.watch, a.assert, a.step_down].iter().filter(|m| **m).count();
            if modes > 1 {
                return Err("--who, --watch, --assert and --step-down are different modes: use one".to_string());
            }
            if a.value_only && !(a.run.who || a.watch) {
                return Err("--value-only goes with --who or --watch".to_string());
            }
            if a.value_only && a.run.json {
                return Err("--value-only prints plain text: drop --json (the JSON has a \"value\" field)".to_string());
            }
            if a.value.is_some() && modes > 0 {
                return Err("--value is published by a run: --who, --watch and --assert only read it".to_string());
            }
            if let Some(value) = &a.value {
                conch_core::values::check_value(value)?;
            }
            if a.step_down {
                if !a.run.cmd.is_empty() {
                    return Err("--step-down takes no command: drop the part after --".to_string());
                }
                if a.run.nonblock
                    || a.run.json
                    || a.restart
                    || a.on_acquire.is_some()
                    || a.on_lose.is_some()
                    || priority.is_some()
                {
                    return Err("--step-down takes only --wait (how long to wait for the resignation)".to_string());
                }
                let wait = match &a.run.wait {
                    Some(w) => positive("--wait", w)?,
                    None => conch_core::step_down::WAIT_DEFAULT,
                };
                Action::StepDown { office: spec.name, ttl, wait, asker: (host.hostname(), host.pid()) }
            } else if a.watch || a.assert {
                query_only(&a.run, if a.watch { "--watch" } else { "--assert" })?;
                if a.restart || a.on_acquire.is_some() || a.on_lose.is_some() || priority.is_some() {
                    return Err("--restart, --priority and hooks belong to a run, not to a query".to_string());
                }
                if a.watch {
                    Action::Watch { spec, json: a.run.json, value_only: a.value_only }
                } else {
                    Action::Assert { spec, host: host.hostname(), min_rev: a.min_rev, json: a.run.json }
                }
            } else if a.run.who {
                query_only(&a.run, "--who")?;
                if priority.is_some() {
                    return Err("--priority belongs to a run, not to --who".to_string());
                }
                Action::Who { spec, json: a.run.json, value_only: a.value_only }
            } else {
                let hooks = HookConfig {
                    on_acquire: a.on_acquire.filter(|c| !c.is_empty()),
                    on_lose: a.on_lose.filter(|c| !c.is_empty()),
                    timeout: positive("--hook-timeout", &a.hook_timeout)?,
                    ..HookConfig::default()
                };
                run_action(spec, a.run, ttl, hooks, a.restart, a.value, host)?
            }
        }
        Tool::Sema(a) => {
            if a.max == 0 || a.max > MAX_SLOTS {
                return Err(format!("--max {} is out of range: use 1 to {MAX_SLOTS}", a.max));
            }
            let mut spec = HoldSpec::semaphore(name(&a.name)?, a.max);
            if a.spread {
                let name = host.hostname();
                Name::new(&name).map_err(|e| format!("--spread uses the hostname as a key, but {e}"))?;
                spec = spec.spread(name);
            }
            if a.run.who {
                query_only(&a.run, "--who")?;
                Action::Who { spec, json: a.run.json, value_only: false }
            } else {
                run_action(spec, a.run, ttl, HookConfig::default(), false, None, host)?
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

fn run_action(
    spec: HoldSpec,
    run: RunArgs,
    ttl: Duration,
    hooks: HookConfig,
    restart: bool,
    value: Option<String>,
    host: &dyn Host,
) -> Result<Action, String> {
    if run.json {
        return Err("--json goes with --who, --watch or --assert".to_string());
    }
    if run.cmd.is_empty() {
        return Err("missing command: put it after --, as in: conch elect office -- my-daemon --flag".to_string());
    }
    let hooks = fence(hooks, &run)?;
    let kill_after = kill_after_for(ttl, run.kill_after.as_deref(), hooks.fence_window())?;
    let wait = match (run.nonblock, run.wait) {
        (true, _) => Some(Duration::ZERO),
        (false, Some(w)) => Some(parse_duration("--wait", &w)?),
        (false, None) => None,
    };
    let holder = Holder {
        host: host.hostname(),
        pid: host.pid(),
        started: host.now_rfc3339(),
        cmd: Some(cmd_field(&run.cmd)),
        held_since: None,
        value,
        priority: (spec.priority > 0).then_some(spec.priority),
    };
    let run = RunConfig { spec, holder, argv: run.cmd, ttl, kill_after, wait, hooks };
    Ok(Action::Run(Box::new(ServiceConfig { run, restart, seed: host.seed() })))
}

/// `--fence` and `--fence-budget` added to `hooks`.
fn fence(hooks: HookConfig, run: &RunArgs) -> Result<HookConfig, String> {
    let fence = run.fence.clone().filter(|c| !c.is_empty());
    let budget = match (&fence, &run.fence_budget) {
        (None, Some(_)) => return Err("--fence-budget needs --fence (the command it bounds)".to_string()),
        (_, Some(text)) => positive("--fence-budget", text)?,
        (_, None) => FENCE_BUDGET_DEFAULT,
    };
    Ok(HookConfig { fence_budget: if fence.is_some() { budget } else { Duration::ZERO }, fence, ..hooks })
}

fn etcd_config(g: &GlobalArgs, host: &dyn Host) -> Result<EtcdConfig, String> {
    let endpoints = parse_endpoints(&g.endpoints, g.cacert.is_some())?;
    let https = endpoints.iter().any(|e| e.starts_with("https://"));
    if https && endpoints.iter().any(|e| e.starts_with("http://")) {
        return Err("--endpoints: mix of http:// and https:// endpoints; use one scheme".to_string());
    }
    let tls = if https {
        let ca = g.cacert.clone().ok_or("--endpoints uses https://: give the CA certificate with --cacert")?;
        let client = g.cert.clone().zip(g.key.clone());
        Some(TlsFiles::load(&ca, client.as_ref().map(|(c, k)| (c.as_str(), k.as_str())), |p| host.read_file(p))?)
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

/// `--kill-after` as given (it must fit in the TTL with the fence's budget), or the
/// default: [`KILL_AFTER_DEFAULT`], shrunk to what the TTL leaves when the TTL is short.
/// The child's stop and the fence share the kill window, so the session is derived for
/// `kill_after + fence`; a fence that cannot fit names the numbers and what would.
fn kill_after_for(ttl: Duration, given: Option<&str>, fence: Duration) -> Result<Duration, String> {
    let fmt = duration::format;
    let kill_after = match given {
        Some(text) => parse_duration("--kill-after", text)?,
        None => match Timings::kill_after_max(ttl).and_then(|max| max.checked_sub(fence)) {
            Some(max) => max.min(KILL_AFTER_DEFAULT),
            None if !fence.is_zero() => {
                return Err(format!(
                    "--fence-budget {} does not fit under --ttl {}: the fence, a child's stop, {} to notice a silent lease and the margin must all end before the lease could expire; use --ttl {} or more",
                    fmt(fence),
                    fmt(ttl),
                    fmt(conch_core::session::BUDGET_MIN),
                    fmt(Timings::ttl_min(fence + Duration::from_secs(1)))
                ))
            }
            None => {
                return Err(format!(
                    "--ttl {} is too short: a lease needs a safety margin and {} for keepalives; use --ttl {} or more",
                    fmt(ttl),
                    fmt(conch_core::session::BUDGET_MIN),
                    fmt(Timings::ttl_min(Duration::ZERO))
                ))
            }
        },
    };
    if fence.is_zero() {
        Timings::derive(ttl, kill_after).map_err(|e| e.to_string())?;
        return Ok(kill_after);
    }
    if let Err(e) = Timings::derive(ttl, kill_after + fence) {
        let room = e.kill_after_max.saturating_sub(kill_after);
        let instead = if room.is_zero() { String::new() } else { format!("--fence-budget {} or less, or ", fmt(room)) };
        return Err(format!(
            "--kill-after {} + --fence-budget {} + {} to notice a silent lease + margin {} do not fit under --ttl {}: use {}--ttl {} or more",
            fmt(kill_after),
            fmt(fence),
            fmt(conch_core::session::BUDGET_MIN),
            fmt(e.margin),
            fmt(ttl),
            instead,
            fmt(e.ttl_min)
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use conch_core::ExitCode;

    /// A host made of a table row: what it is called, which files and commands it has,
    /// where it may write.
    #[derive(Default)]
    struct TableHost {
        hostname: &'static str,
        files: &'static [(&'static str, &'static str)],
        commands: &'static [&'static str],
        writable: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
        stdin: &'static str,
    }

    impl Host for TableHost {
        fn hostname(&self) -> String {
            self.hostname.to_string()
        }
        fn user(&self) -> String {
            "alice".to_string()
        }
        fn pid(&self) -> u32 {
            42
        }
        fn now_rfc3339(&self) -> String {
            "2026-12-02T01:00:00Z".to_string()
        }
        fn seed(&self) -> u64 {
            7
        }
        fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
            let found = self.files.iter().find(|(p, _)| *p == path);
            found.map(|(_, text)| text.as_bytes().to_vec()).ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
        fn resolve_command(&self, program: &str) -> Result<(), Failure> {
            match self.commands.contains(&program) {
                true => Ok(()),
                false => Err(Failure::new(ExitCode::NOT_FOUND, format!("command {program} not found in PATH"))),
            }
        }
        fn check_writable(&self, flag: &str, path: &str) -> Result<(), Failure> {
            match self.writable.contains(&path) {
                true => Ok(()),
                false => Err(Failure::new(ExitCode::CANT_CREATE, format!("{flag} {path}: cannot create"))),
            }
        }
        fn var(&self, name: &str) -> Option<String> {
            self.env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        }
        fn read_stdin(&self, _max: usize) -> Result<String, String> {
            Ok(self.stdin.to_string())
        }
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn host() -> TableHost {
        TableHost {
            hostname: "h1",
            files: &[("/ca.pem", PEM), ("/junk", "not pem")],
            commands: &["true", "sh"],
            writable: &["/tmp/x.svg"],
            ..TableHost::default()
        }
    }

    fn check(args: &str, host: &TableHost) -> Result<Config, Failure> {
        let argv = std::iter::once("conch").chain(args.split(' '));
        let cli = Cli::try_parse_from(argv).map_err(|e| Failure::new(ExitCode::USAGE, e.to_string()))?;
        validate(cli, host)
    }

    #[test]
    fn refusals_name_what_is_wrong_with_the_right_code() {
        let cases: &[(&str, ExitCode, &str)] = &[
            ("elect x -- nosuch", ExitCode::NOT_FOUND, "nosuch not found"),
            ("--ttl 1500ms elect x -- true", ExitCode::USAGE, "whole number of seconds"),
            ("--ttl 1 elect x -- true", ExitCode::USAGE, "--ttl 1s is too short"),
            ("elect x", ExitCode::USAGE, "missing command"),
            ("elect x --who -- true", ExitCode::USAGE, "--who takes no command"),
            ("sema x --max 0 -- true", ExitCode::USAGE, "--max 0 is out of range"),
            ("--endpoints https://127.0.0.1:2379 elect x -- true", ExitCode::USAGE, "--cacert"),
            ("--endpoints https://127.0.0.1:2379 --cacert /nope elect x -- true", ExitCode::USAGE, "--cacert /nope"),
            ("--endpoints https://127.0.0.1:2379 --cacert /junk elect x -- true", ExitCode::USAGE, "not a PEM file"),
            ("--endpoints 127.0.0.1:2379,https://h:1 elect x -- true", ExitCode::USAGE, "mix of http"),
            ("--user nopassword elect x -- true", ExitCode::USAGE, "--user must be name:password"),
            ("sim --seed 1 --timeline /nope/x.svg", ExitCode::CANT_CREATE, "--timeline /nope/x.svg"),
            ("conchd --status-addr nowhere", ExitCode::USAGE, "--status-addr"),
            ("elect x --fence-budget 1s -- true", ExitCode::USAGE, "--fence-budget needs --fence"),
            ("--ttl 3 elect x --fence undo --fence-budget 3s -- true", ExitCode::USAGE, "use --ttl 6s or more"),
            (
                "--ttl 5 elect x --kill-after 2 --fence undo --fence-budget 3s -- true",
                ExitCode::USAGE,
                "--kill-after 2s + --fence-budget 3s + 1s to notice a silent lease + margin 225ms do not fit under --ttl 5s: use --fence-budget 1s775ms or less, or --ttl 7s or more",
            ),
        ];
        for (args, code, says) in cases {
            let failure = check(args, &host()).map(|_| ()).unwrap_err();
            assert_eq!(failure.code, *code, "{args}: {failure}");
            assert!(failure.message.contains(says), "{args}: {failure} lacks {says:?}");
        }
        let odd = TableHost { hostname: "bad host", ..host() };
        let failure = check("sema x --max 2 --spread -- true", &odd).map(|_| ()).unwrap_err();
        assert!(failure.message.contains("--spread uses the hostname"), "{failure}");
    }

    #[test]
    fn what_a_run_knows_of_its_host_comes_from_the_host() {
        let Action::Run(service) = check("elect x -- true", &host()).unwrap().action else { panic!("not a run") };
        let holder = &service.run.holder;
        assert_eq!((holder.host.as_str(), holder.pid, holder.started.as_str()), ("h1", 42, "2026-12-02T01:00:00Z"));
        assert_eq!(service.seed, 7);
        let Action::Conchd { cfg, .. } = check("conchd", &host()).unwrap().action else { panic!("not conchd") };
        assert_eq!((cfg.node.as_str(), cfg.pid, cfg.seed), ("h1", 42, 7));
        let config = check("--endpoints https://127.0.0.1:2379 --cacert /ca.pem elect x -- true", &host()).unwrap();
        assert_eq!(config.etcd.tls.map(|t| t.ca_pem), Some(PEM.as_bytes().to_vec()));
        let Action::Cron(crate::cron::CronAction::Add(_, job)) =
            check("cron add j --schedule @daily -- true", &host()).unwrap().action
        else {
            panic!("not cron add")
        };
        assert_eq!(job.spec.added_by, "alice@h1");
        let Action::Assert { host: name, .. } = check("elect x --assert", &host()).unwrap().action else {
            panic!("not assert")
        };
        assert_eq!(name, "h1");
        assert!(check("sim --seed 1 --timeline /tmp/x.svg", &host()).is_ok());
        // A fence takes its budget out of the default kill-after: 3.775 s at --ttl 5.
        let Action::Run(service) = check("--ttl 5 sema x --max 2 --fence undo -- true", &host()).unwrap().action else {
            panic!("not a run")
        };
        let run = &service.run;
        assert_eq!((run.hooks.fence.as_deref(), run.hooks.fence_budget), (Some("undo"), Duration::from_secs(2)));
        assert_eq!(run.kill_after, Duration::from_millis(1_775));
    }

    #[test]
    fn fenced_writes_value_and_step_down_are_checked_against_the_host() {
        let child = TableHost {
            env: &[("CONCH_KEY", "/conch/v1/elect/x/1a"), ("CONCH_REV", "12")],
            stdin: "value(\"k\") = \"v\"\n\nput k w\n\n",
            ..host()
        };
        let Action::Fenced(run) = check("put app/k v", &child).unwrap().action else { panic!("not a put") };
        assert!(!run.print && run.key == "/conch/v1/elect/x/1a");
        let Action::Fenced(run) = check("txn", &child).unwrap().action else { panic!("not a txn") };
        assert!(run.print);
        let cases: &[(&str, &TableHost, &str)] = &[
            ("put app/k v", &host(), "CONCH_KEY is not set"),
            (
                "del app/k",
                &TableHost { env: &[("CONCH_KEY", "/conch/v1/elect/x/1a")], ..host() },
                "CONCH_REV is not set",
            ),
            ("txn", &TableHost { stdin: "bogus\n", ..child }, "txn: line 1"),
            ("put /conch/v1/x v", &child, "conch's own keys"),
            ("elect x --value a\tb -- true", &host(), "--value contains"),
            ("elect x --who --value-only --json", &host(), "--value-only prints plain text"),
            ("elect x --step-down -- true", &host(), "--step-down takes no command"),
            ("elect x --step-down --assert", &host(), "different modes"),
            ("elect x --preempt -- true", &host(), "--preempt needs --priority P"),
            ("elect x --step-down --priority 5 --preempt", &host(), "--step-down takes only --wait"),
            ("elect x --who --priority 5 --preempt", &host(), "--priority belongs to a run"),
        ];
        for (args, host, says) in cases {
            let failure = check(args, host).map(|_| ()).unwrap_err();
            assert_eq!(failure.code, ExitCode::USAGE, "{args}: {failure}");
            assert!(failure.message.contains(says), "{args}: {failure} lacks {says:?}");
        }
        let Action::Run(service) = check("elect x --value 10.0.0.5:5432 -- true", &host()).unwrap().action else {
            panic!("not a run")
        };
        assert_eq!(service.run.holder.value.as_deref(), Some("10.0.0.5:5432"));
        let Action::Run(service) = check("elect x --priority 5 --preempt -- true", &host()).unwrap().action else {
            panic!("not a run")
        };
        assert!(service.run.spec.preempt && service.run.spec.priority == 5);
        let Action::StepDown { wait, asker, .. } = check("elect x --step-down --wait 5s", &host()).unwrap().action
        else {
            panic!("not a step-down")
        };
        assert_eq!((wait, asker), (Duration::from_secs(5), ("h1".to_string(), 42)));
    }

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
        assert_eq!(kill_after_for(s(10), None, Duration::ZERO), Ok(s(5)));
        assert_eq!(kill_after_for(s(5), None, Duration::ZERO), Ok(Duration::from_millis(3_775)));
        assert_eq!(kill_after_for(s(2), None, Duration::ZERO), Ok(Duration::from_millis(790)));
        assert_eq!(kill_after_for(s(5), Some("2"), Duration::ZERO), Ok(s(2)));
        let msg = kill_after_for(s(1), None, Duration::ZERO).unwrap_err();
        assert!(msg.contains("--ttl 1s is too short") && msg.contains("--ttl 2s or more"), "{msg}");
        let msg = kill_after_for(s(5), Some("5s"), Duration::ZERO).unwrap_err();
        assert!(
            msg.contains("--kill-after 5s")
                && msg.contains("--ttl 5s")
                && msg.contains("--ttl 7s with --kill-after 5s"),
            "{msg}"
        );
    }
}
