//! Writing to stdout and stderr without ever panicking, and in journald's form.
//!
//! `println!` panics when stdout is closed (`conch cron ls | head -0`) and `eprintln!` when
//! stderr is (a log reader that went away); a panic in a wrapper would leave its hold in
//! etcd for a whole TTL. Here a line to a closed stderr is dropped, a line to a closed
//! stdout reports the failure so a listing can end quietly, and a hold is always released.
//!
//! Under systemd, stderr is often a journal stream (`JOURNAL_STREAM` names its device and
//! inode); each line then begins with its syslog priority (`<3>` error, `<4>` warning,
//! `<6>` info) so `journalctl -p err` finds `lost`.
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

static JOURNAL: AtomicBool = AtomicBool::new(false);

/// How severe a line is (the journal's priorities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `<3>`.
    Error,
    /// `<4>`.
    Warn,
    /// `<6>`.
    Info,
    /// `<7>`.
    Debug,
}

impl Severity {
    fn prefix(self) -> &'static [u8] {
        match self {
            Severity::Error => b"<3>",
            Severity::Warn => b"<4>",
            Severity::Info => b"<6>",
            Severity::Debug => b"<7>",
        }
    }
}

/// Whether `JOURNAL_STREAM` (`<device>:<inode>`) names the file stderr is, as systemd
/// documents it: only then is stderr read by journald.
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// Looks at the environment once: are our lines read by journald?
pub fn detect_journal() {
    let stream = std::env::var("JOURNAL_STREAM").ok();
    JOURNAL.store(stderr_is_journal(stream.as_deref()), Ordering::Relaxed);
}

/// Writes one log line (already ending in a newline or not) to stderr; a closed or full
/// stderr drops it.
pub fn log_bytes(severity: Severity, bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    if JOURNAL.load(Ordering::Relaxed) {
        let _ = err.write_all(severity.prefix());
    }
    let _ = err.write_all(bytes);
    if !bytes.ends_with(b"\n") {
        let _ = err.write_all(b"\n");
    }
    let _ = err.flush();
}

/// A message for the person at the terminal (`conch: ...`), dropped if stderr is closed.
pub fn say_err(line: &str) {
    log_bytes(Severity::Error, line.as_bytes());
}

/// One line on stdout; `Err` when stdout is closed (the reader went away).
pub fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// One line of a listing: a closed stdout ends the process quietly, as for any filter
/// whose reader went away (exit 141, what a shell reports for SIGPIPE). Only for commands
/// that hold nothing.
pub fn listing_line(line: &str) {
    if print_line(line).is_err() {
        std::process::exit(141);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:2")));
        let st = nix::sys::stat::fstat(std::io::stderr().as_raw_fd()).unwrap();
        assert!(stderr_is_journal(Some(&format!("{}:{}", st.st_dev, st.st_ino))));
    }
}
