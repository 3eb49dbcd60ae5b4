//! The tiny child both tools run (`child.c`, beside this file): compiled with `gcc` into
//! the run's temp dir, statically when the C library allows (fewer pages to map, so its
//! own start-up does not hide the tools' differences), else dynamically.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C source, embedded so the bench binary runs from anywhere.
pub const SOURCE: &str = include_str!("child.c");

/// Compiles the child into `dir`; returns its path and whether it is static.
pub fn compile(dir: &Path) -> Result<(PathBuf, bool), String> {
    let src = dir.join("child.c");
    let bin = dir.join("child");
    std::fs::write(&src, SOURCE).map_err(|e| format!("write child.c: {e}"))?;
    for (flags, is_static) in [(&["-O2", "-static"][..], true), (&["-O2"][..], false)] {
        let out = Command::new("gcc").args(flags).arg("-o").arg(&bin).arg(&src).output();
        match out {
            Ok(out) if out.status.success() => return Ok((bin, is_static)),
            Ok(_) => continue,
            Err(e) => return Err(format!("gcc: {e} (apt-get install gcc)")),
        }
    }
    Err("gcc could not compile the bench child".to_string())
}
