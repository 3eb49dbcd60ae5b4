//! `validate`: parsed flags → a checked [`Config`]. Every usage error is found here,
//! before any etcd call, and reported in one line (exit 64).
use std::time::Duration;

use conch_core::keys::Name;
use conch_core::values::{cmd_field, Holder};
use conch_core::{duration, HoldSpec, RunConfig, Timings};
use conch_driver_etcd::EtcdConfig;

use crate::cli::{Cli, RunArgs, Tool};

/// Largest `--max` accepted: the first waiter watches every holder's key.
pub const MAX_SLOTS: u32 = 1000;

/// What to do, fully checked.
#[derive(Debug)]
pub enum Action {
    /// Hold and run.
    Run(RunConfig),
    /// Print who holds.
    Who {
        /// The office or semaphore.
        spec: HoldSpec,
        /// One JSON document instead of text lines.
        json: bool,
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

/// Checks everything; the error is the one line to print.
pub fn validate(cli: Cli) -> Result<Config, String> {
    let g = &cli.global;
    let etcd = EtcdConfig {
        endpoints: parse_endpoints(&g.endpoints)?,
        dial_timeout: positive("--dial-timeout", &g.dial_timeout)?,
    };
    let ttl = parse_ttl(&g.ttl)?;
    let (spec, run) = match cli.command {
        Tool::Elect(a) => (HoldSpec::office(name(&a.office)?), a.run),
        Tool::Sema(a) => {
            if a.max == 0 || a.max > MAX_SLOTS {
                return Err(format!("--max {} is out of range: use 1 to {MAX_SLOTS}", a.max));
            }
            (HoldSpec::semaphore(name(&a.name)?, a.max), a.run)
        }
    };
    let action = if run.who { who(spec, run)? } else { run_action(spec, run, ttl)? };
    Ok(Config { etcd, action })
}

fn who(spec: HoldSpec, run: RunArgs) -> Result<Action, String> {
    if !run.cmd.is_empty() {
        return Err("--who takes no command: drop the part after --".to_string());
    }
    if run.nonblock || run.wait.is_some() {
        return Err("--who does not wait: drop --nonblock/--wait".to_string());
    }
    Ok(Action::Who { spec, json: run.json })
}

fn run_action(spec: HoldSpec, run: RunArgs, ttl: Duration) -> Result<Action, String> {
    if run.cmd.is_empty() {
        return Err("missing command: put it after --, as in: conch elect office -- my-daemon --flag".to_string());
    }
    let kill_after = parse_duration("--kill-after", &run.kill_after)?;
    Timings::derive(ttl, kill_after).map_err(|e| e.to_string())?;
    let wait = match (run.nonblock, run.wait) {
        (true, _) => Some(Duration::ZERO),
        (false, Some(w)) => Some(parse_duration("--wait", &w)?),
        (false, None) => None,
    };
    let holder =
        Holder { host: hostname(), pid: std::process::id(), started: now_rfc3339(), cmd: Some(cmd_field(&run.cmd)) };
    Ok(Action::Run(RunConfig { spec, holder, argv: run.cmd, ttl, kill_after, wait }))
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

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = positive("--ttl", text)?;
    if ttl.subsec_nanos() != 0 {
        return Err(format!("--ttl {text} is not a whole number of seconds (etcd's unit): use e.g. 10s"));
    }
    Ok(ttl)
}

/// Endpoints: `http://host:port`, comma-separated.
fn parse_endpoints(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for endpoint in text.split(',').map(str::trim) {
        let bad = |why: &str| format!("--endpoints: {endpoint:?} {why} (expected like http://127.0.0.1:2379)");
        let rest = if let Some(rest) = endpoint.strip_prefix("http://") {
            rest
        } else if endpoint.starts_with("https://") {
            return Err(bad("uses https, and TLS to etcd is not supported yet"));
        } else {
            return Err(bad("is not an http:// URL"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            return Err(bad("has no valid host"));
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("has no valid port"));
        }
        out.push(endpoint.to_string());
    }
    Ok(out)
}

fn hostname() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoints("http://127.0.0.1:2379,http://localhost:2380/"),
            Ok(vec!["http://127.0.0.1:2379".into(), "http://localhost:2380/".into()])
        );
        for bad in [
            "127.0.0.1:2379",
            "http://127.0.0.1",
            "http://:2379",
            "http://h:0",
            "http://h:99999",
            "ftp://h:1",
            "https://h:2379",
            "",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_is_whole_seconds() {
        assert_eq!(parse_ttl("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_ttl("1500ms").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("10").is_err());
    }
}
