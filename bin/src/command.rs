//! The command to run, resolved before any etcd call: found on `PATH` (or at the path
//! given) and executable, or the shell's 127 (not found) / 126 (cannot execute) with one
//! line and nothing written to etcd. The shim's exec looks it up the same way, so what is
//! found here is what runs (unless the file changes in between, which the shim still
//! reports with the same codes).
use std::path::{Path, PathBuf};

use conch_core::{ExitCode, Failure};
use nix::unistd::{access, AccessFlags};

/// `PATH` when the variable is unset, as execvp(3) uses.
const PATH_DEFAULT: &str = "/usr/local/bin:/usr/bin:/bin";

/// Where `program` would be executed from, or why it cannot be.
pub fn resolve(program: &str) -> Result<PathBuf, Failure> {
    if program.is_empty() {
        return Err(Failure::new(ExitCode::NOT_FOUND, "command \"\" not found: the part after -- is empty"));
    }
    if program.contains('/') {
        return check(Path::new(program)).map(|()| PathBuf::from(program)).map_err(|why| refused(program, why));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| PATH_DEFAULT.to_string());
    let mut refusal = None;
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(program);
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Why::Missing) => {}
            // As execvp(3): a later directory may still hold an executable one.
            Err(why) => {
                refusal.get_or_insert((candidate, why));
            }
        }
    }
    match refusal {
        Some((candidate, why)) => Err(refused(&candidate.display().to_string(), why)),
        None => Err(Failure::new(ExitCode::NOT_FOUND, format!("command {program} not found in PATH"))),
    }
}

#[derive(Debug)]
enum Why {
    Missing,
    Directory,
    NotExecutable(String),
}

fn check(path: &Path) -> Result<(), Why> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Why::Missing,
        _ => Why::NotExecutable(e.to_string()),
    })?;
    if meta.is_dir() {
        return Err(Why::Directory);
    }
    access(path, AccessFlags::X_OK).map_err(|e| Why::NotExecutable(e.desc().to_string()))
}

fn refused(shown: &str, why: Why) -> Failure {
    match why {
        Why::Missing => Failure::new(ExitCode::NOT_FOUND, format!("command {shown} not found: no such file")),
        Why::Directory => Failure::new(ExitCode::NOT_EXECUTABLE, format!("command {shown} is a directory")),
        Why::NotExecutable(e) => {
            Failure::new(ExitCode::NOT_EXECUTABLE, format!("command {shown} cannot be executed: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn found_missing_and_not_executable() {
        assert!(resolve("sh").is_ok_and(|p| p.is_absolute() && p.ends_with("sh")));
        assert!(resolve("/bin/sh").is_ok());
        let code = |program: &str| resolve(program).map(|_| ()).unwrap_err().code;
        assert_eq!(code("/nonexistent"), ExitCode::NOT_FOUND);
        assert_eq!(code("conch-no-such-command-anywhere"), ExitCode::NOT_FOUND);
        assert_eq!(code(""), ExitCode::NOT_FOUND);
        assert_eq!(code("/"), ExitCode::NOT_EXECUTABLE);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let failure = resolve(file.to_str().unwrap()).unwrap_err();
        assert_eq!(failure.code, ExitCode::NOT_EXECUTABLE);
        assert!(failure.message.contains("cannot be executed"), "{}", failure.message);
    }
}
