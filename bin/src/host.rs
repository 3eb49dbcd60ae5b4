//! What `validate` needs to know of this host, behind one trait: the hostname, the user,
//! our pid, the wall clock, a random seed, the files it reads (TLS material), the command
//! to run and the files it will write. [`ThisHost`] reads the real machine — the only
//! place `bin` looks at the environment while checking flags — so `validate` itself is a
//! pure function of the parsed flags and a [`Host`], tested with tables of hosts.
use std::hash::{BuildHasher, Hasher};

use conch_core::Failure;

/// The facts of one host.
pub trait Host {
    /// This host's name as holders and daemons show it.
    fn hostname(&self) -> String;
    /// Who runs us (for a job's `added_by`).
    fn user(&self) -> String;
    /// Our process id.
    fn pid(&self) -> u32;
    /// Now, RFC 3339 to the second.
    fn now_rfc3339(&self) -> String;
    /// A seed for the backoff's draws.
    fn seed(&self) -> u64;
    /// A file's bytes.
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>>;
    /// The command can be executed (127 not found, 126 not executable).
    fn resolve_command(&self, program: &str) -> Result<(), Failure>;
    /// `path` can be created or overwritten (73 otherwise); `flag` names it in the message.
    fn check_writable(&self, flag: &str, path: &str) -> Result<(), Failure>;
    /// A variable of our environment (`conch put`'s guard: `CONCH_KEY`, `CONCH_REV`).
    fn var(&self, name: &str) -> Option<String>;
    /// Our stdin as text, at most `max` bytes and one more read (`conch txn`).
    fn read_stdin(&self, max: usize) -> Result<String, String>;
}

/// The machine we run on.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThisHost;

impl Host for ThisHost {
    /// `CONCH_HOSTNAME` overrides the kernel's name (tests, containers).
    fn hostname(&self) -> String {
        match std::env::var("CONCH_HOSTNAME") {
            Ok(h) if !h.is_empty() => h,
            _ => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".to_string()),
        }
    }

    fn user(&self) -> String {
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn now_rfc3339(&self) -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// From the OS's per-process random hash keys.
    fn seed(&self) -> u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    }

    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn resolve_command(&self, program: &str) -> Result<(), Failure> {
        crate::command::resolve(program).map(|_| ())
    }

    fn check_writable(&self, flag: &str, path: &str) -> Result<(), Failure> {
        crate::sim::check_writable(flag, path)
    }

    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_stdin(&self, max: usize) -> Result<String, String> {
        use std::io::Read;
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .take(max as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read stdin as UTF-8 text: {e}"))?;
        Ok(text)
    }
}
