//! Help and man pages: one man page per tool and subcommand, each with EXIT STATUS,
//! ENVIRONMENT (every `CONCH_*` variable of its flags) and EXAMPLES, and no reference to a
//! page that does not exist; `--help` lists a tool's own flags apart from the global ones
//! and ends with the exit-status table.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Command;

use conch_tests::conch_bin;

fn conch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(conch_bin()).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

const TOOLS: [&[&str]; 15] = [
    &[],
    &["elect"],
    &["sema"],
    &["put"],
    &["del"],
    &["txn"],
    &["cron"],
    &["cron", "add"],
    &["cron", "rm"],
    &["cron", "ls"],
    &["cron", "results"],
    &["cron", "next"],
    &["conchd"],
    &["sim"],
    &["man"],
];

/// The `CONCH_*` variables a `--help` names.
fn env_vars(help: &str) -> Vec<String> {
    help.split("[env: ").skip(1).filter_map(|rest| rest.split('=').next()).map(str::to_string).collect()
}

#[test]
fn man_dir_writes_one_page_per_tool_with_the_sections_and_only_real_references() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("share/man/man1");
    let (code, _, err) = conch(&["man", "--dir", man1.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".1").to_string())
        .collect();
    pages.sort();
    for tool in TOOLS {
        let page = std::iter::once("conch").chain(tool.iter().copied()).collect::<Vec<_>>().join("-");
        assert!(pages.contains(&page), "no page {page} in {pages:?}");
        let roff = std::fs::read_to_string(man1.join(format!("{page}.1"))).unwrap();
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES"] {
            assert!(roff.contains(section), "{page}: no {section}");
        }
        let examples = roff.split(".SH EXAMPLES").nth(1).unwrap().split(".SH").next().unwrap();
        assert!(examples.contains("conch"), "{page}: no example");
        // Every variable its --help names is in ENVIRONMENT.
        let (_, help, _) = conch(&[tool, &["--help"]].concat());
        let environment = roff.split(".SH ENVIRONMENT").nth(1).unwrap().split(".SH").next().unwrap();
        let vars = env_vars(&help);
        assert!(vars.contains(&"CONCH_ENDPOINTS".to_string()), "{page}: {vars:?}");
        for var in vars {
            assert!(environment.contains(&var), "{page}: ENVIRONMENT lacks {var}");
        }
        // Every page it refers to exists.
        for reference in roff.split("(1)").map(|before| {
            before
                .rsplit(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap()
                .replace("\\fI", "")
                .replace("\\fR", "")
        }) {
            let name = reference.replace("\\-", "-");
            if name.starts_with("conch") {
                assert!(pages.contains(&name), "{page} refers to {name}(1), which does not exist");
            }
        }
    }
    let (code, stdout, _) = conch(&["man", "elect"]);
    assert_eq!(code, 0);
    let title = format!(".TH conch-elect 1 v{} conch \"conch manual\"", env!("CARGO_PKG_VERSION"));
    assert!(stdout.contains(&title), "{}", &stdout[..200.min(stdout.len())]);
    assert_eq!(conch(&["man", "nope"]).0, 64);
    assert_eq!(conch(&["man", "--dir", "/proc/version/x"]).0, 73);
}

#[test]
fn help_lists_own_flags_apart_from_global_ones_and_ends_with_the_exit_codes() {
    for tool in TOOLS {
        let (code, help, _) = conch(&[tool, &["--help"]].concat());
        assert_eq!(code, 0, "{tool:?}");
        let (own, global) = help.split_once("\nGlobal options:\n").unwrap_or_else(|| panic!("{tool:?}: {help}"));
        assert!(global.contains("--endpoints") && global.contains("--ttl") && global.contains("--user"), "{tool:?}");
        assert!(!own.contains("--endpoints") && !own.contains("--dial-timeout"), "{tool:?}: globals among its own");
        let tail = help.trim_end().rsplit_once("Exit status:").unwrap_or_else(|| panic!("{tool:?}: {help}")).1;
        assert!(tail.contains("\n  0 ") && tail.contains("\n  64 "), "{tool:?}: {tail}");
        assert!(!tail.contains("[env:"), "{tool:?}: the exit codes are not last");
    }
    let (_, elect, _) = conch(&["elect", "--help"]);
    let own = elect.split("\nGlobal options:\n").next().unwrap();
    assert!(own.contains("--wait") && own.contains("--restart"));
    for code in ["69", "75", "77", "126", "127"] {
        assert!(elect.contains(&format!("\n  {code} ")), "elect --help lacks exit {code}");
    }
    let (_, sim, _) = conch(&["sim", "--help"]);
    assert!(sim.contains("\n  73 ") && !sim.contains("\n  75 "), "{sim}");
}
