//! Which exit codes each tool can return, and the `--help` epilogue that lists them, from
//! the core's one table (`ExitCode::TABLE`). A leaf: the clap definitions (`cli`) and the
//! man pages (`manual`) both read it, so neither imports the other.
use conch_core::ExitCode;

/// The codes of `elect` and `sema` runs (and their queries).
pub const RUN_EXITS: &[i32] = &[0, 1, 64, 69, 70, 71, 75, 77, 126, 127, 128];
/// The codes of `put`, `del` and `txn` (fenced writes from a child).
pub const FENCED_EXITS: &[i32] = &[0, 1, 64, 69, 70, 77];
/// The codes of the `cron` subcommands.
pub const CRON_EXITS: &[i32] = &[0, 1, 64, 69, 70, 77];
/// The codes of `conchd`.
pub const CONCHD_EXITS: &[i32] = &[0, 64, 70, 77];
/// The codes of `sim`.
pub const SIM_EXITS: &[i32] = &[0, 1, 64, 73];
/// The codes of `completions` and `man`.
pub const OTHER_EXITS: &[i32] = &[0, 64, 73];

pub fn table(codes: Option<&[i32]>) -> impl Iterator<Item = (i32, &'static str)> + use<'_> {
    ExitCode::TABLE.into_iter().map(|(c, m)| (c.0, m)).filter(move |(c, _)| codes.is_none_or(|l| l.contains(c)))
}

/// The `--help` epilogue: these codes and what each means (`None`: every code).
pub fn exits(codes: Option<&[i32]>) -> String {
    let mut text = String::from("Exit status:\n");
    for (code, meaning) in table(codes) {
        let code = if code == 128 { "128+N".to_string() } else { code.to_string() };
        text += &format!("  {code:<6} {meaning}\n");
    }
    text.trim_end().to_string()
}
