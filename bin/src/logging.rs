//! The one logger: tracing-subscriber's text or JSON format on stderr, through a writer
//! that never panics (a closed stderr drops the line) and that begins each line with its
//! syslog priority when stderr is a journal stream (see `conch_driver_etcd::out`).
//!
//! The shim is a separate process: it is started with `CONCH_QUIET` and
//! `CONCH_LOG_FORMAT` set from the wrapper's flags, so its lines obey `--quiet` and
//! `--log-format json` too.
use std::io::Write;

use conch_driver_etcd::out::{self, Severity};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogFormat;

/// Makes one [`LineWriter`] per event, knowing the event's level.
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrLines;

/// Collects one formatted event and writes it out whole when dropped.
pub struct LineWriter {
    severity: Severity,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            out::log_bytes(self.severity, &self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for StderrLines {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { severity: Severity::Info, buf: Vec::new() }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        let severity = match *meta.level() {
            Level::ERROR => Severity::Error,
            Level::WARN => Severity::Warn,
            Level::INFO => Severity::Info,
            _ => Severity::Debug,
        };
        LineWriter { severity, buf: Vec::new() }
    }
}

/// Logs on stderr only: one line per state transition.
pub fn init(quiet: bool, format: LogFormat) {
    out::detect_journal();
    // The shim (a child process) logs the same way.
    std::env::set_var("CONCH_QUIET", if quiet { "1" } else { "0" });
    std::env::set_var("CONCH_LOG_FORMAT", if format == LogFormat::Json { "json" } else { "text" });
    let level = if quiet { Level::WARN } else { Level::INFO };
    let builder = tracing_subscriber::fmt()
        .with_writer(StderrLines)
        .with_max_level(level)
        .with_target(false)
        .log_internal_errors(false);
    conch_driver_etcd::run::use_json_logs(format == LogFormat::Json);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
