//! A command under conch reads the terminal as it would under `flock(1)`: while it runs,
//! its group is the terminal's foreground group, and afterwards the terminal is given back
//! (the shell that called conch reads it again). Driven through `script(1)`, which gives
//! conch a real pseudo-terminal.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conch_tests::*;

#[test]
fn the_child_reads_the_terminal_and_the_shell_gets_it_back() {
    let etcd = Etcd::start();
    let office = unique("tty");
    let conch = conch_bin().display().to_string();
    let inner = format!("{conch} --quiet elect {office} -- sh -c 'read a; echo got \\$a'; read b; echo after \\$b");
    // Typed slowly: the first line is for the command, the second for the shell after it.
    let feed = "sleep 1.5; echo one; sleep 1.5; echo two; sleep 1";
    let began = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &format!("({feed}) | timeout 30 script -qec \"{inner}\" /dev/null")])
        .env("CONCH_ENDPOINTS", etcd.endpoint())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("got one"), "the command could not read the terminal: {text:?}");
    assert!(text.contains("after two"), "the shell did not get the terminal back: {text:?}");
    assert!(out.status.success(), "{:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(began.elapsed() < Duration::from_secs(25));
    assert!(etcd.keys("/conch/").is_empty());
}
