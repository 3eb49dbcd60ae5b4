//! The process table, read from `/proc`: one walk of `/proc/<pid>/stat` for every process
//! ([`table`]), a process's descendants in it ([`descendants`]), and one process's
//! [`Stat`] ([`stat`], [`alive`]). The shim signals a command's descendants with it; the
//! test harnesses find what a run left behind and measure footprints with the same walk.
//!
//! A `stat` line is `pid (comm) state ppid pgrp ...`; the command name may hold `)` and
//! spaces, so the fields are read after the last `)`.
use std::collections::BTreeMap;

/// One process's `/proc/<pid>/stat`, from its state on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The process.
    pub pid: i32,
    /// Its parent.
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
    /// The fields after the command name: 0 is the state, 1 the ppid, 2 the pgrp, 11 and
    /// 12 utime and stime, ... (stat(5)'s numbering less 3).
    pub fields: Vec<String>,
}

impl Stat {
    /// Parses the `stat` line of `pid`.
    pub fn parse(pid: i32, line: &str) -> Option<Stat> {
        let after = &line[line.rfind(')')? + 1..];
        let fields: Vec<String> = after.split_whitespace().map(str::to_string).collect();
        let ppid = fields.get(1)?.parse().ok()?;
        let pgrp = fields.get(2)?.parse().ok()?;
        Some(Stat { pid, ppid, pgrp, fields })
    }

    /// Its state letter (`R`, `S`, `Z`, ...).
    pub fn state(&self) -> &str {
        self.fields.first().map_or("", String::as_str)
    }

    /// Field `i` as a number (0 when absent or not one).
    pub fn number(&self, i: usize) -> u64 {
        self.fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// `pid`'s stat, if it exists.
pub fn stat(pid: i32) -> Option<Stat> {
    Stat::parse(pid, &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state() != "Z")
}

/// Every process on the machine (empty when `/proc` cannot be read).
pub fn table() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter_map(stat).collect()
}

/// The descendants of `root` in `table`, parents before children. Bounded by the table's
/// size: a pid reused while the table was read cannot make it loop.
pub fn descendants(table: &[Stat], root: i32) -> Vec<&Stat> {
    let mut children: BTreeMap<i32, Vec<&Stat>> = BTreeMap::new();
    for s in table {
        children.entry(s.ppid).or_default().push(s);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if out.len() >= table.len() {
                return out;
            }
            out.push(*child);
            stack.push(child.pid);
        }
    }
    out
}

/// The live descendants of `root`, read now.
pub fn descendants_of(root: i32) -> Vec<i32> {
    descendants(&table(), root).into_iter().map(|s| s.pid).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pid: i32, ppid: i32) -> Stat {
        Stat { pid, ppid, pgrp: pid, fields: vec!["S".into(), ppid.to_string(), pid.to_string()] }
    }

    #[test]
    fn a_stat_line_with_parentheses_in_the_name() {
        let st = Stat::parse(123, "123 (a) b) c) S 77 120 123 0").expect("a stat line");
        assert_eq!((st.ppid, st.pgrp, st.state(), st.number(3), st.number(9)), (77, 120, "S", 123, 0));
        assert_eq!(Stat::parse(1, "garbage"), None);
    }

    #[test]
    fn descendants_parents_first_and_bounded() {
        let t = [s(2, 1), s(3, 2), s(4, 3), s(5, 2), s(9, 8)];
        let got: Vec<i32> = descendants(&t, 1).into_iter().map(|s| s.pid).collect();
        assert_eq!(got.len(), 4);
        assert!(got.iter().position(|p| *p == 2) < got.iter().position(|p| *p == 3));
        assert!(got.iter().position(|p| *p == 3) < got.iter().position(|p| *p == 4));
        // A cycle (a pid reused mid-read) ends at the table's size.
        let cycle = [s(1, 2), s(2, 1)];
        assert_eq!(descendants(&cycle, 1).len(), 2);
        let me = std::process::id() as i32;
        assert!(alive(me) && stat(me).is_some_and(|st| st.ppid > 0));
    }
}
