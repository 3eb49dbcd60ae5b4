//! A cron job's output as log lines: each line the command writes to stdout or stderr
//! becomes one log line carrying `job` and `stream`, so many jobs can share conchd's
//! journal (`journalctl -u conchd | grep job=backup`) and `--log-format json` stays JSON.
//!
//! Lines are logged under the target [`TARGET`], which the logger passes through
//! `--quiet`: the job's output is the job's, not conch's chatter. A line longer than
//! [`LINE_MAX`] is logged in pieces of that size, so a job cannot grow conchd's memory.
use std::io::Read;

/// The `tracing` target of job output lines.
pub const TARGET: &str = "conch::job";

/// The longest piece of one line logged at once.
pub const LINE_MAX: usize = 16 * 1024;

/// Starts one thread per pipe that logs its lines until the pipe closes (the command and
/// everything that inherited the pipe are gone). Threads, not tasks: a blocking read of
/// a pipe needs no runtime feature, and a job has two pipes.
pub fn forward(job: &str, stdout: std::fs::File, stderr: std::fs::File) -> std::io::Result<()> {
    pipe_thread(job, "stdout", stdout)?;
    pipe_thread(job, "stderr", stderr)
}

fn pipe_thread(job: &str, stream: &'static str, pipe: impl Read + Send + 'static) -> std::io::Result<()> {
    let job = job.to_string();
    std::thread::Builder::new().name(format!("{job}-{stream}")).spawn(move || log_lines(&job, stream, pipe))?;
    Ok(())
}

fn log_lines(job: &str, stream: &'static str, mut pipe: impl Read) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_line(job, stream, &line[..end]);
        }
        while pending.len() >= LINE_MAX {
            let piece: Vec<u8> = pending.drain(..LINE_MAX).collect();
            log_line(job, stream, &piece);
        }
    }
    if !pending.is_empty() {
        log_line(job, stream, &pending);
    }
}

fn log_line(job: &str, stream: &'static str, bytes: &[u8]) {
    let line = String::from_utf8_lossy(bytes);
    let line = line.strip_suffix('\r').unwrap_or(&line);
    tracing::info!(target: TARGET, job = %job, stream, "{line}");
}
