//! The process exit codes and [`Failure`], the one line reported instead of work. A leaf
//! of the protocol layer.
/// The process exit codes of `01-cli.md`, in one table ([`ExitCode::TABLE`] says each
/// one's meaning for help and man pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitCode(pub i32);

/// A failure to report before or instead of any work: its exit code and the one line
/// that says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// How the process exits.
    pub code: ExitCode,
    /// The line to print.
    pub message: String,
}

impl Failure {
    /// A failure with this code.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

/// A bare message is a usage error (exit 64).
impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(ExitCode::USAGE, message)
    }
}

/// A bare message is a usage error (exit 64).
impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::new(ExitCode::USAGE, message)
    }
}

impl ExitCode {
    /// Success.
    pub const OK: ExitCode = ExitCode(0);
    /// `--who` / `--assert`: vacant or not ours.
    pub const VACANT: ExitCode = ExitCode(1);
    /// Usage error.
    pub const USAGE: ExitCode = ExitCode(64);
    /// etcd unreachable, or no session could be established.
    pub const UNAVAILABLE: ExitCode = ExitCode(69);
    /// Hold lost while the child ran (child killed), or an internal error.
    pub const LOST: ExitCode = ExitCode(70);
    /// The hold was lost and the `--fence` command failed or overran its budget: the keys
    /// were left to expire with the lease (EX_OSERR).
    pub const FENCE_FAILED: ExitCode = ExitCode(71);
    /// A file that was asked for cannot be written (`conch sim --trace`, `--timeline`).
    pub const CANT_CREATE: ExitCode = ExitCode(73);
    /// Could not acquire (`--nonblock`, `--wait` ran out).
    pub const NOT_ACQUIRED: ExitCode = ExitCode(75);
    /// etcd refused the credentials (wrong or missing `--user`, or `--user` while etcd has
    /// no authentication) or the permission.
    pub const NO_PERMISSION: ExitCode = ExitCode(77);
    /// The command was found but cannot be executed (as the shell's 126).
    pub const NOT_EXECUTABLE: ExitCode = ExitCode(126);
    /// The command was not found (as the shell's 127).
    pub const NOT_FOUND: ExitCode = ExitCode(127);

    /// Every code conch itself chooses and what it means, in order; besides these a run
    /// passes on its child's status (128 + N for a child killed by signal N).
    pub const TABLE: [(ExitCode, &'static str); 12] = [
        (ExitCode::OK, "success: the command ran and exited 0, or the query's answer is yes"),
        (ExitCode::VACANT, "no: vacant or not ours (--who, --assert), no such job, a seed failed (sim), or txn's compares failed (its failure branch ran)"),
        (ExitCode::USAGE, "usage error: a bad flag, name or duration; nothing was written to etcd"),
        (ExitCode::UNAVAILABLE, "etcd unreachable (no endpoint answered within --dial-timeout), or no session"),
        (ExitCode::LOST, "the hold was lost while the command ran (it was killed), put/del/txn found the hold gone (nothing written), or an internal error"),
        (ExitCode::FENCE_FAILED, "the hold was lost and --fence failed or overran: the keys expire with the lease"),
        (ExitCode::CANT_CREATE, "a file asked for (sim --trace, --timeline) cannot be written"),
        (ExitCode::NOT_ACQUIRED, "not acquired: --nonblock found it taken, or --wait ran out"),
        (ExitCode::NO_PERMISSION, "etcd refused the credentials or the permission (--user)"),
        (ExitCode::NOT_EXECUTABLE, "the command was found but cannot be executed; nothing was written to etcd"),
        (ExitCode::NOT_FOUND, "the command was not found; nothing was written to etcd"),
        (ExitCode(128), "the command was killed by signal N (128+N); otherwise its own exit status is passed on"),
    ];
}
