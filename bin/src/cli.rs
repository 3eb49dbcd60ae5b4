//! The clap definitions: every flag, its `CONCH_*` environment fallback, its help.
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exits::{exits, CONCHD_EXITS, CRON_EXITS, FENCED_EXITS, OTHER_EXITS, RUN_EXITS, SIM_EXITS};

/// Run a command while holding something in etcd; kill it when the hold is gone.
#[derive(Debug, Parser)]
#[command(name = "conch", version, about, propagate_version = true, after_help = exits(None))]
#[command(
    long_about = "Run a command while holding something in etcd; kill it when the hold is gone.\n\nconch elect runs a command on one leader, conch sema on at most N holders, conch cron with conch conchd runs each tick of a job on at most one node. A command never outlives its hold: when the session lease cannot be renewed, the command's process group is stopped before the lease can expire. conch sim checks these guarantees in a deterministic simulator."
)]
pub struct Cli {
    /// Flags every tool shares.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The tool.
    #[command(subcommand)]
    pub command: Tool,
}

/// Flags every tool shares (listed apart from a tool's own in its `--help`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Comma-separated etcd endpoints (http://host:port, https://host:port, or host:port); one is used at a time, the next on failure.
    #[arg(long, global = true, env = "CONCH_ENDPOINTS", default_value = "http://127.0.0.1:2379")]
    pub endpoints: String,
    /// No endpoint reachable within this ⇒ exit 69, nothing written.
    #[arg(long, global = true, env = "CONCH_DIAL_TIMEOUT", default_value = "5s", allow_hyphen_values = true)]
    pub dial_timeout: String,
    /// Session lease TTL in whole seconds: 10 or 10s (etcd may grant another; that one is used).
    #[arg(long, global = true, env = "CONCH_TTL", default_value = "10s", allow_hyphen_values = true)]
    pub ttl: String,
    /// etcd user as name:password.
    #[arg(long, global = true, env = "CONCH_USER")]
    pub user: Option<String>,
    /// CA certificate (PEM) to verify etcd's TLS certificate.
    #[arg(long, global = true, env = "CONCH_CACERT")]
    pub cacert: Option<String>,
    /// Client certificate (PEM) for TLS client authentication.
    #[arg(long, global = true, env = "CONCH_CERT", requires = "key")]
    pub cert: Option<String>,
    /// Client key (PEM) for TLS client authentication.
    /// (Its variable is CONCH_KEY_FILE: CONCH_KEY is the hold's key in a child's environment.)
    #[arg(long, global = true, env = "CONCH_KEY_FILE", requires = "cert")]
    pub key: Option<String>,
    /// Log only warnings and errors.
    #[arg(long, global = true, env = "CONCH_QUIET", value_parser = BoolishValueParser::new())]
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
    /// Run a command only while leader of an office (or: who leads, watch, assert).
    ///
    /// Campaigns for the office with a session lease; the one leader runs the command, the
    /// others wait in line (first come, first served) and take over when it exits. If the
    /// lease is lost (etcd unreachable past the TTL, the key deleted), the command's process
    /// group gets SIGTERM, then SIGKILL after --kill-after, before the lease can expire, and
    /// conch exits 70. CONCH_REV, the key's create revision, is a fencing token that grows
    /// with every new leader. With --restart it campaigns again after every exit.
    #[command(after_help = exits(Some(RUN_EXITS)))]
    Elect(ElectArgs),
    /// Run a command while holding one of N slots of a semaphore (or: who holds).
    ///
    /// At most --max holders run at once across every host; the rest wait in line, first
    /// come, first served. --max is part of the semaphore's identity: contenders must agree
    /// on it. The same guarantees as conch-elect(1) when the hold is lost.
    #[command(after_help = exits(Some(RUN_EXITS)))]
    Sema(SemaArgs),
    /// Distributed cron: add, remove and inspect jobs that `conch conchd` runs.
    ///
    /// Jobs live in etcd; every node runs the same conch-conchd(1), and each tick of a job
    /// runs on at most one node. These subcommands only read and write the job table and
    /// read the run history; they need no daemon on this host.
    #[command(after_help = exits(Some(CRON_EXITS)))]
    Cron {
        /// What to do.
        #[command(subcommand)]
        cmd: CronCmd,
    },
    /// The cron daemon: the same on every node; each tick runs on at most one node.
    ///
    /// At each tick of each job every daemon races to claim it in one etcd transaction; the
    /// winner runs the command under its session, killed if the session is lost or the run
    /// outlives --run-ttl, and records the outcome. SIGTERM stops it after the runs in
    /// flight are stopped and recorded.
    #[command(after_help = exits(Some(CONCHD_EXITS)))]
    Conchd {
        /// Serve JSON status and Prometheus metrics at this address, like 127.0.0.1:9191 (read-only; off unless given).
        #[arg(long, env = "CONCH_STATUS_ADDR")]
        status_addr: Option<String>,
        /// Grace between SIGTERM and SIGKILL when a run must stop [default: 5s, less if --ttl is short].
        #[arg(long, env = "CONCH_KILL_AFTER", allow_hyphen_values = true)]
        kill_after: Option<String>,
    },
    /// Run conch's own state machines in a deterministic simulator under faults and check
    /// every guarantee; a failing seed replays bit for bit with --seed.
    ///
    /// Each seed draws its options (clients, TTL, members, faults), runs a safety phase under
    /// faults and a liveness phase after healing, and checks every guarantee: bounded
    /// holders, fencing, FIFO, convergence, cron at most once, failover, no leaks. The same
    /// command prints the same bytes on stdout; exit 1 if any seed failed.
    #[command(after_help = exits(Some(SIM_EXITS)))]
    Sim {
        /// What to simulate.
        #[arg(long, env = "CONCH_SCENARIO", value_enum, default_value = "mixed")]
        scenario: ScenarioArg,
        /// One seed.
        #[arg(long, env = "CONCH_SEED", conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A range of seeds, like 1..100 (both ends included).
        #[arg(long, env = "CONCH_SEEDS")]
        seeds: Option<String>,
        /// Clients (all of them, for mixed); drawn per seed when not given.
        #[arg(long, env = "CONCH_CLIENTS")]
        clients: Option<usize>,
        /// Capacity of the semaphore; drawn per seed when not given.
        #[arg(long, env = "CONCH_MAX")]
        max: Option<u32>,
        /// etcd members the clients fail over between (1 to 7); drawn per seed (1, 3 or 5) when not given.
        #[arg(long, env = "CONCH_MEMBERS", value_parser = clap::value_parser!(u8).range(1..=7))]
        members: Option<u8>,
        /// Simulated time per seed (faults, then liveness; at least a minute).
        #[arg(long, env = "CONCH_DURATION", default_value = "2m", allow_hyphen_values = true)]
        duration: String,
        /// Fault kinds to draw from: all, none, or a list of crash,pause,freeze,partition,one-way,swizzle,revoke,key-delete,etcd-down,stall,compact,clock-jump,child-kill,child-stop,member-down,member-isolated,member-cut.
        #[arg(long, env = "CONCH_FAULTS", default_value = "all")]
        faults: String,
        /// Use every allowed fault kind in every seed (no swarm switch-off).
        #[arg(long)]
        all_faults: bool,
        /// Every office and semaphore holder runs a --fence of this budget (0: no hooks; a seed whose TTL leaves no room for it runs none); drawn for elect and sema seeds when not given.
        #[arg(long, env = "CONCH_SIM_FENCE_BUDGET")]
        fence_budget: Option<String>,
        /// Holders' children make guarded writes (conch put) all along; the fenced-writes checker asks that none lands from a deposed holder.
        #[arg(long)]
        fenced_writes: bool,
        /// The office's leader is asked to step down (elect --step-down) every few seconds; the step-down checker asks it to stop its child within the kill grace.
        #[arg(long)]
        step_downs: bool,
        /// Give office candidates --priority values drawn per seed (the priority checker runs).
        #[arg(long)]
        priorities: bool,
        /// How long each holder child runs, drawn per child in A..B (durations, like 20s..90s); drawn per seed when not given. With --faults none and holds past a minute, services restart often with children that outlive the crash backoff's reset.
        #[arg(long, env = "CONCH_SIM_HOLD")]
        hold: Option<String>,
        /// Write the JSON-lines event trace of the first failing seed (else the last) here.
        #[arg(long, env = "CONCH_TRACE")]
        trace: Option<String>,
        /// Draw the timeline of the first failing seed (else the last) as SVG here.
        #[arg(long, env = "CONCH_TIMELINE")]
        timeline: Option<String>,
        /// One JSON object per seed and one for the summary.
        #[arg(long)]
        json: bool,
        /// Wall-clock figures (wall seconds, speed, seeds/s) in the summary on stdout; without it they go to stderr (text) or nowhere (JSON), so stdout is the same for the same command.
        #[arg(long)]
        timing: bool,
        /// Break a machine on purpose, to see a checker fail (tests of the checkers).
        #[arg(long, hide = true, default_value = "none")]
        sabotage: String,
    },
    /// Inside a command run by conch elect or conch sema: put KEY VALUE only while its hold lasts.
    ///
    /// One etcd transaction that writes only if the key of the hold that started this command
    /// (CONCH_KEY) still has the create revision it had then (CONCH_REV, the fencing token):
    /// a deposed holder's write never lands, however late it reaches etcd. Exit 0 written,
    /// 70 the hold is gone (nothing written). Keys under /conch/ are refused.
    #[command(after_help = exits(Some(FENCED_EXITS)))]
    Put {
        /// The key to write (not under /conch/).
        key: String,
        /// Its value (may begin with a -).
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Inside a command run by conch elect or conch sema: delete KEY only while its hold lasts.
    ///
    /// The same guard as conch-put(1): exit 0 deleted (or nothing to delete), 70 the hold is
    /// gone (nothing deleted).
    #[command(after_help = exits(Some(FENCED_EXITS)))]
    Del {
        /// The key (not under /conch/).
        key: String,
        /// Every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
    },
    /// Inside a command run by conch elect or conch sema: an etcdctl-format transaction from stdin, only while its hold lasts.
    ///
    /// Reads etcdctl txn's format from stdin: compares (like value("k") = "v", mod("k") > "0"),
    /// a blank line, success ops (put KEY VALUE, del KEY [--prefix], get KEY [--prefix]), a
    /// blank line, failure ops. conch adds the hold's guard to the compares: exit 0 the
    /// compares held and the success branch ran, 1 they did not and the failure branch ran,
    /// 70 the hold is gone (nothing ran). Prints what etcdctl txn prints (SUCCESS or FAILURE,
    /// then each op's result).
    #[command(after_help = exits(Some(FENCED_EXITS)))]
    Txn,
    /// Print shell completions for conch.
    #[command(after_help = exits(Some(OTHER_EXITS)))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff): conch(1), or one tool's, like `conch man elect`; or write them all with --dir.
    #[command(after_help = exits(Some(OTHER_EXITS)))]
    Man {
        /// The page: elect, sema, put, del, txn, cron, cron-add, cron-rm, cron-ls, cron-results, cron-next, conchd, sim, completions, man (default: conch(1)).
        page: Option<String>,
        /// Write every page into this directory as conch.1, conch-elect.1, ... (install: /usr/local/share/man/man1).
        #[arg(long, conflicts_with = "page")]
        dir: Option<String>,
    },
}

/// Flags of a run (shared by elect and sema).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Give up after waiting this long for the hold (exit 75).
    #[arg(long, env = "CONCH_WAIT", conflicts_with = "nonblock", allow_hyphen_values = true)]
    pub wait: Option<String>,
    /// Do not wait: exit 75 at once if the hold is taken.
    #[arg(long, env = "CONCH_NONBLOCK", value_parser = BoolishValueParser::new())]
    pub nonblock: bool,
    /// Grace between SIGTERM and SIGKILL when the child must stop [default: 5s, less if --ttl is short].
    #[arg(long, env = "CONCH_KILL_AFTER", allow_hyphen_values = true)]
    pub kill_after: Option<String>,
    /// Print who holds instead of running a command (exit 1 when vacant).
    #[arg(long, env = "CONCH_WHO", value_parser = BoolishValueParser::new())]
    pub who: bool,
    /// With --who, --watch, --assert: JSON output.
    #[arg(long, env = "CONCH_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
    /// Shell command run when the hold is lost (not on a clean exit), right after the child's group is dead: undo work outside the group (a VIP, a remote lock). It must succeed within --fence-budget, or conch exits 71 and leaves its keys to expire with the lease.
    #[arg(long, env = "CONCH_FENCE")]
    pub fence: Option<String>,
    /// Longest the fence may run (its group is killed after that); the child is stopped this much earlier so the fence ends before the lease could expire [default: 2s].
    #[arg(long, env = "CONCH_FENCE_BUDGET", allow_hyphen_values = true)]
    pub fence_budget: Option<String>,
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
    /// Service mode: campaign and run again after every exit, until signalled.
    #[arg(long, env = "CONCH_RESTART", value_parser = BoolishValueParser::new())]
    pub restart: bool,
    /// Shell command run after winning, before the child; failing it fails the campaign.
    #[arg(long, env = "CONCH_ON_ACQUIRE")]
    pub on_acquire: Option<String>,
    /// Shell command run after the child is gone, before resigning (best effort).
    #[arg(long, env = "CONCH_ON_LOSE")]
    pub on_lose: Option<String>,
    /// Longest a hook may run; it is killed whole after that.
    #[arg(long, env = "CONCH_HOOK_TIMEOUT", default_value = "30s", allow_hyphen_values = true)]
    pub hook_timeout: String,
    /// Stream leadership changes: the current state first, then one line per change.
    #[arg(long, env = "CONCH_WATCH", value_parser = BoolishValueParser::new())]
    pub watch: bool,
    /// Exit 0 if this host leads the office (exit 1 otherwise, 69 if etcd is unreachable).
    #[arg(long, env = "CONCH_ASSERT", value_parser = BoolishValueParser::new())]
    pub assert: bool,
    /// With --assert: also require the leader's revision to be at least this.
    #[arg(long, env = "CONCH_MIN_REV", requires = "assert")]
    pub min_rev: Option<i64>,
    /// Publish this value while leading, like 10.0.0.5:5432 (--who and --watch show it; the child gets CONCH_VALUE); 1-1024 bytes, no spaces.
    #[arg(long, env = "CONCH_ELECT_VALUE")]
    pub value: Option<String>,
    /// Ask the leader to hand over (from any host): it stops its child, resigns, and with --restart campaigns again at the back of the queue; exit 0 once it resigned, 1 when vacant, 75 if not within --wait [default: 60s].
    #[arg(long, env = "CONCH_STEP_DOWN", value_parser = BoolishValueParser::new())]
    pub step_down: bool,
    /// With --who: print the leader's value alone (exit 1 when vacant or it publishes none); with --watch: one "office value rev" line per change.
    #[arg(long, env = "CONCH_VALUE_ONLY", value_parser = BoolishValueParser::new())]
    pub value_only: bool,
    /// Waiters of a higher priority (0 to 1000) lead before lower ones; a holder is not pre-empted unless a higher waiter has --preempt (the child gets CONCH_PRIORITY).
    // No env fallback: CONCH_PRIORITY is what the child is given, and a `conch` run by the
    // child (or its hooks) must not inherit its parent's priority as a flag.
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<String>,
    /// With --priority: a waiter that would lead next asks a holder of a strictly lower priority to hand over, as --step-down does (equal priorities never pre-empt).
    #[arg(long)]
    pub preempt: bool,
}

/// `conch sema <name> --max N ...`
#[derive(Debug, Args)]
pub struct SemaArgs {
    /// The semaphore: 1-128 bytes of [A-Za-z0-9._:@-].
    pub name: String,
    /// Capacity: at most this many holders at once (part of the semaphore's identity).
    #[arg(long, env = "CONCH_MAX")]
    pub max: u32,
    /// At most one slot per host (the key is the hostname).
    #[arg(long, env = "CONCH_SPREAD", value_parser = BoolishValueParser::new())]
    pub spread: bool,
    /// Run flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `conch cron ...`
#[derive(Debug, Subcommand)]
pub enum CronCmd {
    /// Add a job, or replace the job of that name (that is how you edit).
    #[command(after_help = exits(Some(CRON_EXITS)))]
    Add {
        /// The job: 1-128 bytes of [A-Za-z0-9._:@-].
        name: String,
        /// Cron expression (5 fields), @daily & co, or @every <duration>.
        #[arg(long, env = "CONCH_SCHEDULE")]
        schedule: String,
        /// IANA time zone of the schedule (default UTC, or a CRON_TZ= prefix).
        #[arg(long, env = "CONCH_TZ")]
        tz: Option<String>,
        /// Longest a run may last; past it the run is killed (outcome timeout).
        #[arg(long, env = "CONCH_RUN_TTL", default_value = "10m", allow_hyphen_values = true)]
        run_ttl: String,
        /// A tick that comes while an earlier run still runs: skip it, or allow it.
        #[arg(long, env = "CONCH_OVERLAP", value_enum, default_value = "skip")]
        overlap: OverlapArg,
        /// The command, after `--`.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Remove a job (a run in flight finishes).
    #[command(after_help = exits(Some(CRON_EXITS)))]
    Rm {
        /// The job.
        name: String,
    },
    /// List the jobs with their next and last ticks; zombies (claimed, no result) marked.
    #[command(after_help = exits(Some(CRON_EXITS)))]
    Ls {
        /// Also show the last run's outcome and revision.
        #[arg(long, env = "CONCH_LAST", value_parser = BoolishValueParser::new())]
        last: bool,
        /// JSON output.
        #[arg(long, env = "CONCH_JSON", value_parser = BoolishValueParser::new())]
        json: bool,
    },
    /// The kept run history of a job, newest first (zombies included).
    #[command(after_help = exits(Some(CRON_EXITS)))]
    Results {
        /// The job.
        name: String,
        /// How many runs.
        #[arg(long, env = "CONCH_COUNT", default_value_t = 20)]
        count: usize,
        /// JSON output.
        #[arg(long, env = "CONCH_JSON", value_parser = BoolishValueParser::new())]
        json: bool,
    },
    /// The next tick instants of an expression or a stored job (a dry run).
    #[command(after_help = exits(Some(CRON_EXITS)))]
    Next {
        /// A cron expression, or a job name.
        what: String,
        /// IANA time zone (for an expression).
        #[arg(long, env = "CONCH_TZ")]
        tz: Option<String>,
        /// Start from this instant (RFC 3339) instead of now.
        #[arg(long, env = "CONCH_FROM")]
        from: Option<String>,
        /// How many ticks.
        #[arg(long, env = "CONCH_COUNT", default_value_t = 5)]
        count: usize,
        /// JSON output.
        #[arg(long, env = "CONCH_JSON", value_parser = BoolishValueParser::new())]
        json: bool,
    },
}

/// `--overlap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OverlapArg {
    /// Do not claim a tick while an earlier run still runs.
    Skip,
    /// Claim every tick.
    Allow,
}

/// `conch sim --scenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// One office, K candidates with `--restart`.
    Elect,
    /// One semaphore of capacity `--max`, K contenders with `--restart`.
    Sema,
    /// K conchd daemons racing for the ticks of a few jobs.
    Cron,
    /// An office, a semaphore and conchd daemons at once.
    Mixed,
}
