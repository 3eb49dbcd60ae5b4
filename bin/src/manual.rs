//! Man pages, from the clap definitions and the exit table ([`crate::exits`]): one page
//! per (sub)command — conch(1), conch-elect(1),
//! conch-cron-add(1), ... — each with EXIT STATUS, ENVIRONMENT (the `CONCH_*` variables of
//! its flags) and EXAMPLES. `conch man [PAGE]` prints one; `conch man --dir DIR` writes all.
use std::io::Write;
use std::path::Path;

use clap::{Command, CommandFactory};
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;
use conch_core::{ExitCode, Failure};

use crate::cli::Cli;
use crate::exits::{table, CONCHD_EXITS, CRON_EXITS, FENCED_EXITS, OTHER_EXITS, RUN_EXITS, SIM_EXITS};

/// Each page's examples: (what it does, the command).
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "conch" => &[
            ("One leader runs the backup; the others wait and take over when it exits.", "conch elect db-backup -- /usr/local/bin/backup --full"),
            ("At most two reindexes at once, across every host.", "conch sema reindex --max 2 --wait 10m -- ./reindex.sh"),
            ("A job that runs on one node at each tick.", "conch cron add backup --schedule '*/15 * * * *' -- restic backup /data"),
            ("Check conch's guarantees under faults.", "conch sim --scenario mixed --seeds 1..200"),
        ],
        "conch-elect" => &[
            ("One leader runs the backup; the others wait and take over when it exits.", "conch elect db-backup -- /usr/local/bin/backup --full"),
            ("Give up after 10 minutes (exit 75); a bare number is seconds.", "conch elect db-backup --wait 600 -- /usr/local/bin/backup --full"),
            ("Service mode, as in a systemd unit's ExecStart.", "conch elect report-builder --restart --kill-after 10s -- /usr/local/bin/report-builder"),
            ("Hooks around the child.", "conch elect vip --on-acquire 'ip addr add 10.0.0.5/24 dev eth0' --on-lose 'ip addr del 10.0.0.5/24 dev eth0' -- my-daemon"),
            ("A bounded undo when the hold is lost (exit 71 if it fails: the keys expire with the lease).", "conch elect vip --on-acquire 'ip addr add 10.0.0.5/24 dev eth0' --fence 'ip addr del 10.0.0.5/24 dev eth0' --fence-budget 2s -- my-daemon"),
            ("Who leads (exit 1 when vacant)?", "conch elect db-backup --who --json"),
            ("In a health check: does this host lead, with a fencing token of at least 1234?", "conch elect db-backup --assert --min-rev 1234 && echo leader"),
            ("Stream leadership changes.", "conch elect db-backup --watch"),
            ("Rolling deploy: move the leader off its node now (exit 0 once it resigned, 1 when vacant).", "conch elect report-builder --step-down --wait 30s"),
            ("Prefer the big node: it leads next, and takes over from a lower-priority leader by a graceful hand-over.", "conch elect report-builder --priority 10 --preempt --restart -- /usr/local/bin/report-builder"),
            ("Publish the leader's address; clients follow it with one line per change (office value rev).", "conch elect pg-primary --value 10.0.0.5:5432 -- ./run-primary.sh"),
            ("The leader's address alone, for a script (exit 1 when vacant).", "conch elect pg-primary --who --value-only"),
        ],
        "conch-sema" => &[
            ("At most two at once; wait up to 10 minutes for a slot.", "conch sema reindex --max 2 --wait 10m -- ./reindex.sh"),
            ("At most three at once, one per host.", "conch sema heavy-io --max 3 --spread -- ./compact.sh"),
            ("Who holds the slots?", "conch sema reindex --max 2 --who"),
        ],
        "conch-cron" | "conch-cron-add" => &[
            ("Every 15 minutes, Berlin time, killed after 10 minutes.", "conch cron add backup --schedule '*/15 * * * *' --tz Europe/Berlin --run-ttl 10m -- restic backup /data"),
            ("Every 30 seconds, runs may overlap.", "conch cron add heartbeat --schedule '@every 30s' --overlap allow -- /usr/local/bin/ping-home"),
            ("The jobs, their next and last ticks.", "conch cron ls --last"),
        ],
        "conch-put" => &[
            ("In the leader's child: record who applied the migration, only while still leader.", "conch elect migrate -- sh -c 'run-migration && conch put app/migrated-by \"$(hostname)\"'"),
        ],
        "conch-del" => &[("In a holder's child: clear the work queue, only while still holding.", "conch del --prefix app/queue/")],
        "conch-txn" => &[(
            "In the leader's child: switch blue to green, only while still leader and only if it is blue (exit 1 otherwise).",
            "printf 'value(\"app/mode\") = \"blue\"\\n\\nput app/mode green\\n\\nget app/mode\\n' | conch txn",
        )],
        "conch-cron-rm" => &[("No more ticks; a run in flight finishes.", "conch cron rm backup")],
        "conch-cron-ls" => &[("Jobs with the last run's outcome and revision.", "conch cron ls --last"), ("As JSON.", "conch cron ls --json")],
        "conch-cron-results" => &[("The last five runs of a job.", "conch cron results backup --count 5")],
        "conch-cron-next" => &[
            ("The next three ticks of an expression in a zone.", "conch cron next '30 2 * * *' --tz Europe/Berlin --count 3"),
            ("The next ticks of a stored job.", "conch cron next backup"),
        ],
        "conch-conchd" => &[
            ("The daemon, the same on every node, with its status API on loopback.", "conch conchd --status-addr 127.0.0.1:9191"),
            ("Its status.", "curl -s 127.0.0.1:9191/cron"),
        ],
        "conch-sim" => &[
            ("One verdict line per seed, then a summary.", "conch sim --scenario mixed --seeds 1..1000"),
            ("Replay one seed with its trace and timeline.", "conch sim --scenario sema --max 3 --clients 6 --seed 9 --trace trace.jsonl --timeline timeline.svg"),
            ("Machine-readable, and the same bytes on every run.", "conch sim --scenario elect --faults pause,crash,partition --seeds 1..200 --json"),
            ("With wall-clock figures in the summary.", "conch sim --seeds 1..500 --json --timing | tail -1"),
        ],
        "conch-completions" => &[("Bash completions.", "conch completions bash > /etc/bash_completion.d/conch")],
        "conch-man" => &[
            ("Every page, where man(1) finds them.", "conch man --dir /usr/local/share/man/man1"),
            ("One page.", "conch man elect | man -l -"),
        ],
        _ => &[],
    }
}

/// What the command and its child see besides its flags' variables.
fn more_environment(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "conch" | "conch-elect" | "conch-sema" | "conch-conchd" => &[
            ("CONCH_HOSTNAME", "This host's name in holder values, --assert and --spread (default: the hostname)."),
            ("CONCH_NAME", "Given to the child: the office, semaphore or job name."),
            ("CONCH_REV", "Given to the child: its key's create revision, the fencing token."),
            ("CONCH_LEASE", "Given to the child: the session lease, in hex."),
            ("CONCH_KEY", "Given to the child: the full key of its hold (conch put, del and txn guard their writes with it and CONCH_REV)."),
            ("CONCH_VALUE", "Given to the child of elect --value: the value it publishes."),
            ("CONCH_LEADER", "Given to the child of elect: 1."),
            ("CONCH_PRIORITY", "Given to the child of elect: its --priority (0 by default); not read as a flag."),
        ],
        "conch-put" | "conch-del" | "conch-txn" => &[
            ("CONCH_KEY", "Set by conch elect or conch sema in its child: the key of the hold that guards the write."),
            ("CONCH_REV", "Set by conch elect or conch sema in its child: that key's create revision (the fencing token)."),
        ],
        _ => &[],
    }
}

fn codes_of(page: &str) -> Option<&'static [i32]> {
    match page {
        "conch" => None,
        "conch-elect" | "conch-sema" => Some(RUN_EXITS),
        "conch-conchd" => Some(CONCHD_EXITS),
        "conch-sim" => Some(SIM_EXITS),
        "conch-put" | "conch-del" | "conch-txn" => Some(FENCED_EXITS),
        p if p.starts_with("conch-cron") => Some(CRON_EXITS),
        _ => Some(OTHER_EXITS),
    }
}

/// Every page: the root command and each visible subcommand, depth first, with the names
/// clap gives them (`conch-cron-add`).
pub fn pages() -> Vec<Command> {
    fn walk(cmd: &Command, out: &mut Vec<Command>) {
        out.push(cmd.clone());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            walk(sub, out);
        }
    }
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

fn page_name(cmd: &Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_string()
}

/// One page as roff.
pub fn render(cmd: &Command) -> Result<Vec<u8>, std::io::Error> {
    let name = page_name(cmd);
    let version = cmd.get_version().unwrap_or_default();
    // The version stands in the date's place: an empty date shifts the .TH arguments, and
    // a build date would make the pages differ from build to build.
    let man = Man::new(cmd.clone()).date(format!("v{version}")).source("conch").manual("conch manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    if cmd.get_long_about().is_some() {
        man.render_description_section(&mut out)?;
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in table(codes_of(&name)) {
        let code = if code == 128 { "128+N".to_string() } else { code.to_string() };
        roff.control("TP", []).text([bold(code)]).text([roman(meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman("Every flag with a variable below takes its value from it when not given; a flag wins.")]);
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(var) = arg.get_env() else { continue };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let flag = arg.get_long().map(|l| format!(" (--{l})")).unwrap_or_default();
        roff.control("TP", []).text([bold(var.to_string_lossy().into_owned()), roman(flag)]).text([roman(help)]);
    }
    for (var, help) in more_environment(&name) {
        roff.control("TP", []).text([bold(*var)]).text([roman(*help)]);
    }
    roff.control("SH", ["EXAMPLES"]);
    for (what, command) in examples(&name) {
        roff.control("PP", []).text([roman(*what)]);
        roff.control("RS", []).control("nf", []).text([bold(*command)]).control("fi", []).control("RE", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = pages()
        .iter()
        .map(page_name)
        .filter(|p| {
            *p != name && (name == "conch" || p == "conch" || p.starts_with(&name) || name.starts_with(p.as_str()))
        })
        .collect();
    see.push("etcdctl".to_string());
    let refs: Vec<_> = see
        .iter()
        .enumerate()
        .flat_map(|(k, p)| [italic(p.clone()), roman(if k + 1 < see.len() { "(1), " } else { "(1)" })])
        .collect();
    roff.text(refs);
    roff.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// `conch man [PAGE] [--dir DIR]`.
pub fn man(page: Option<&str>, dir: Option<&str>) -> Result<(), Failure> {
    let pages = pages();
    if let Some(dir) = dir {
        let cannot = |e: std::io::Error| Failure::new(ExitCode::CANT_CREATE, format!("--dir {dir}: {e}"));
        std::fs::create_dir_all(dir).map_err(cannot)?;
        for cmd in &pages {
            let path = Path::new(dir).join(format!("{}.1", page_name(cmd)));
            std::fs::write(&path, render(cmd).map_err(cannot)?)
                .map_err(|e| Failure::new(ExitCode::CANT_CREATE, format!("{}: {e}", path.display())))?;
        }
        conch_driver_etcd::out::say_err(&format!("conch: wrote {} pages to {dir}", pages.len()));
        return Ok(());
    }
    let wanted = match page {
        None => "conch".to_string(),
        Some(p) if p.starts_with("conch") => p.replace(' ', "-"),
        Some(p) => format!("conch-{}", p.replace(' ', "-")),
    };
    let Some(cmd) = pages.iter().find(|c| page_name(c) == wanted) else {
        let names: Vec<String> = pages.iter().map(page_name).collect();
        return Err(Failure::from(format!("no man page {wanted}: there are {}", names.join(", "))));
    };
    let text = render(cmd).map_err(|e| Failure::new(ExitCode::LOST, e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) ends the page quietly, as for any filter.
    let _ = stdout.write_all(&text).and_then(|()| stdout.flush());
    Ok(())
}
