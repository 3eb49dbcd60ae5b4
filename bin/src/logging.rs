//! The one logger: tracing-subscriber's text or JSON format on stderr, through a writer
//! that never panics (a closed stderr drops the line) and that begins each line with its
//! syslog priority when stderr is a journal stream (see `conch_driver_etcd::out`).
//!
//! The shim is a separate process: it is started with `CONCH_QUIET` and
//! `CONCH_LOG_FORMAT` set from the wrapper's flags, so its lines obey `--quiet` and
//! `--log-format json` too.
use std::io::Write;

use conch_driver_etcd::job_output;
use conch_driver_etcd::out::{self, Severity};
use tracing::{Level, Metadata};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    // `--quiet` hides conch's own info lines, never a job's output (job_output::TARGET).
    let filter = Targets::new().with_default(level).with_target(job_output::TARGET, Level::INFO);
    let builder = tracing_subscriber::fmt()
        .with_writer(StderrLines)
        .with_max_level(Level::INFO)
        .with_target(false)
        .log_internal_errors(false);
    conch_driver_etcd::run::use_json_logs(format == LogFormat::Json);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).finish().with(filter).try_init(),
        // Flat objects: `{"timestamp":…,"level":"INFO","event":"acquired","rev":12,…}` for a
        // core event, `"message"` in place of `"event"` for a driver's note or a job's line.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(filter)
            .try_init(),
    };
}
