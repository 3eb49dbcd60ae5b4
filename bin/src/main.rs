//! `conch`: parse, validate, pick a driver, map the outcome to an exit code.
mod cli;
mod command;
mod config;
mod cron;
mod exits;
mod fenced;
mod host;
mod logging;
mod manual;
mod sim;
mod status;

use std::process::ExitCode as ProcessExit;

use clap::{CommandFactory, Parser};
use conch_core::ExitCode;
use conch_driver_etcd::out::listing_line;
use conch_driver_etcd::{query, run, shim};

use crate::cli::{Cli, LogFormat};
use crate::config::{validate, Action};

fn main() -> ProcessExit {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(shim::SHIM_ARG) {
        logging::init(quiet_from_env(), format_from_env());
        return match shim::parse_launch(&args[2..]) {
            Ok(launch) => exit(ExitCode(shim::main(launch))),
            Err(e) => fail(ExitCode::USAGE, &e),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ProcessExit::SUCCESS;
        }
        Err(e) => {
            // clap's message folded into one line; the usage block after it is dropped.
            let text = e.render().to_string();
            let message: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            return fail(ExitCode::USAGE, message.join(" ").trim_start_matches("error: "));
        }
    };
    logging::init(cli.global.quiet, cli.global.log_format);
    if matches!(cli.command, cli::Tool::Elect(_) | cli::Tool::Sema(_)) {
        fenced::export_for_child(&cli.global);
    }
    let config = match validate(cli, &host::ThisHost) {
        Ok(config) => config,
        Err(e) => return fail(e.code, &e.message),
    };
    match config.action {
        Action::Run(service) => exit(run::run(config.etcd, *service)),
        Action::Who { spec, json, value_only } => match query::who(&config.etcd, &spec) {
            Ok((report, others)) => {
                let report = if value_only { conch_core::who::value_only(report) } else { report };
                for (max, keys) in others {
                    conch_driver_etcd::out::say_err(&format!("conch: warning: {} is also used with --max {max} ({keys} keys): contenders that disagree on --max do not exclude each other", spec.name.as_str()));
                }
                if json {
                    listing_line(&report.json.to_string());
                } else {
                    for line in &report.lines {
                        listing_line(line);
                    }
                }
                exit(report.code)
            }
            Err(e) => fail(e.code, &e.message),
        },
        Action::Assert { spec, host, min_rev, json } => match query::assert(&config.etcd, &spec, &host, min_rev) {
            Ok((code, answer)) => {
                if json {
                    listing_line(&answer);
                }
                exit(code)
            }
            Err(e) => fail(e.code, &e.message),
        },
        Action::Watch { spec, json, value_only } => exit(query::watch(&config.etcd, &spec, json, value_only)),
        Action::Cron(action) => match cron::run(&config.etcd, action) {
            Ok(code) => exit(code),
            Err(e) => fail(e.code, &e.message),
        },
        Action::Conchd { cfg, status_addr } => exit(status::serve_conchd(config.etcd, cfg, status_addr)),
        Action::StepDown { office, ttl, wait, asker } => {
            use conch_core::step_down::StepDown;
            match conch_driver_etcd::step_down::step_down(&config.etcd, &office, ttl, wait, asker) {
                Ok(outcome) => {
                    let name = office.as_str();
                    match &outcome {
                        StepDown::Resigned { host, rev } => listing_line(&format!("{name} {host} rev={rev} stepped down")),
                        StepDown::Vacant => conch_driver_etcd::out::say_err(&format!("conch: {name} is vacant: nobody to step down")),
                        StepDown::TimedOut { host, rev } => conch_driver_etcd::out::say_err(&format!(
                            "conch: the leader of {name} ({host}, rev={rev}) did not resign within {}: it may not listen for step-down requests (an older conch, etcdctl elect)",
                            conch_core::duration::format(wait)
                        )),
                        StepDown::Interrupted(_) => {}
                    }
                    exit(outcome.exit_code())
                }
                Err(e) => fail(e.code, &e.message),
            }
        }
        Action::Fenced(run) => match conch_driver_etcd::fenced::write(&config.etcd, run.request) {
            Ok(answer) => {
                let code = answer.exit_code();
                if code == ExitCode::LOST {
                    return fail(
                        code,
                        &format!(
                            "the hold is gone ({} no longer has the revision in CONCH_REV): nothing written",
                            run.key
                        ),
                    );
                }
                if run.print {
                    for line in answer.lines() {
                        listing_line(&line);
                    }
                }
                exit(code)
            }
            Err(e) => fail(e.code, &e.message),
        },
        Action::Sim(sim) => exit(sim::simulate(sim)),
        Action::Completions(shell) => {
            clap_complete::generate(shell, &mut Cli::command(), "conch", &mut std::io::stdout());
            exit(ExitCode::OK)
        }
        Action::Man { page, dir } => match manual::man(page.as_deref(), dir.as_deref()) {
            Ok(()) => exit(ExitCode::OK),
            Err(e) => fail(e.code, &e.message),
        },
    }
}

/// `conch sim`: one verdict line per seed, a summary, exit 0 when every invariant held.
fn fail(code: ExitCode, message: &str) -> ProcessExit {
    conch_driver_etcd::out::say_err(&format!("conch: {message}"));
    exit(code)
}

fn exit(code: ExitCode) -> ProcessExit {
    ProcessExit::from(u8::try_from(code.0).unwrap_or(70))
}

fn quiet_from_env() -> bool {
    std::env::var("CONCH_QUIET").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
}

fn format_from_env() -> LogFormat {
    if std::env::var("CONCH_LOG_FORMAT").is_ok_and(|v| v == "json") {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}
