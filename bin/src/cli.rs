//! The clap definitions: every flag, its `CONCH_*` environment fallback, its help.
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run a command while holding something in etcd; kill it when the hold is gone.
#[derive(Debug, Parser)]
#[command(name = "conch", version, about, propagate_version = true)]
pub struct Cli {
    /// Flags every tool shares.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The tool.
    #[command(subcommand)]
    pub command: Tool,
}

/// Flags every tool shares.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Comma-separated etcd endpoints.
    #[arg(long, global = true, env = "CONCH_ENDPOINTS", default_value = "http://127.0.0.1:2379")]
    pub endpoints: String,
    /// No endpoint reachable within this ⇒ exit 69, nothing written.
    #[arg(long, global = true, env = "CONCH_DIAL_TIMEOUT", default_value = "5s", allow_hyphen_values = true)]
    pub dial_timeout: String,
    /// Session lease TTL, whole seconds (the TTL etcd grants is the one used).
    #[arg(long, global = true, env = "CONCH_TTL", default_value = "10s", allow_hyphen_values = true)]
    pub ttl: String,
    /// Log only warnings and errors.
    #[arg(long, global = true, env = "CONCH_QUIET")]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, env = "CONCH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human text.
    Text,
    /// One JSON object per line.
    Json,
}

/// The tools.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Run a command only while leader of an office (or: who leads).
    Elect(ElectArgs),
    /// Run a command while holding one of N slots of a semaphore (or: who holds).
    Sema(SemaArgs),
}

/// Flags of a run (shared by elect and sema).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Give up after waiting this long for the hold (exit 75).
    #[arg(long, env = "CONCH_WAIT", conflicts_with = "nonblock", allow_hyphen_values = true)]
    pub wait: Option<String>,
    /// Do not wait: exit 75 at once if the hold is taken.
    #[arg(long, env = "CONCH_NONBLOCK")]
    pub nonblock: bool,
    /// Grace between SIGTERM and SIGKILL when the child must stop.
    #[arg(long, env = "CONCH_KILL_AFTER", default_value = "5s", allow_hyphen_values = true)]
    pub kill_after: String,
    /// Print who holds instead of running a command (exit 1 when vacant).
    #[arg(long, env = "CONCH_WHO")]
    pub who: bool,
    /// With --who: one JSON document.
    #[arg(long, env = "CONCH_JSON", requires = "who")]
    pub json: bool,
    /// The command to run, after `--`.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

/// `conch elect <office> ...`
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The office: 1-128 bytes of [A-Za-z0-9._:@-].
    pub office: String,
    /// Run flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `conch sema <name> --max N ...`
#[derive(Debug, Args)]
pub struct SemaArgs {
    /// The semaphore: 1-128 bytes of [A-Za-z0-9._:@-].
    pub name: String,
    /// Capacity: at most this many holders at once (part of the semaphore's identity).
    #[arg(long, env = "CONCH_MAX")]
    pub max: u32,
    /// Run flags.
    #[command(flatten)]
    pub run: RunArgs,
}
