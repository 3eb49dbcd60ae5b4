//! `--who`: who holds an office or a semaphore, from one sorted range read; and
//! [`WhoWatch`], the `--watch` machine (when to list, watch, re-list, retry or give up).
//!
//! Every key counts, ours or not: a key written by `etcdctl lock/elect`, or with a value
//! we cannot parse, is shown with `?` for the fields we cannot know — never skipped.
//! An office lists its holder, then its waiters in queue order (`WAIT`), each with the
//! `--priority` its holder record carries (0 when none: the default).
use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};

use crate::etcd::Kv;
use crate::hold::HoldSpec;
use crate::ids::Revision;
use crate::keys::{parse_key, parse_lease_hex, ParsedKey};
use crate::output::ExitCode;
use crate::values::Holder;

/// The answer to a `--who` query.
#[derive(Clone, Debug, PartialEq)]
pub struct WhoReport {
    /// Text lines for stdout.
    pub lines: Vec<String>,
    /// The JSON document for `--json`.
    pub json: Value,
    /// 0 when someone holds, 1 when vacant.
    pub code: ExitCode,
}

struct Entry<'a> {
    kv: &'a Kv,
    holder: Option<Holder>,
}

impl Entry<'_> {
    fn text(&self) -> String {
        // A holder shows when it began holding; a waiter (or an older conch) when it began
        // campaigning.
        let (host, pid, started) = match &self.holder {
            Some(h) => (h.host.clone(), h.pid.to_string(), h.held_since.clone().unwrap_or_else(|| h.started.clone())),
            None => ("?".to_string(), "?".to_string(), "?".to_string()),
        };
        format!("{host} pid={pid} since={started} rev={}", self.kv.create_rev)
    }

    /// An office's line: with the candidate's priority when above 0 (the default shows
    /// none, so lines of offices without priorities stay as they were), and for the
    /// leader the value it publishes (`elect --value`; a waiter's is not published yet).
    fn office_text(&self, leader: bool) -> String {
        let mut line = self.text();
        if let Some(p) = self.holder.as_ref().and_then(|h| h.priority).filter(|p| *p > 0) {
            line += &format!(" priority={p}");
        }
        if let Some(v) = self.holder.as_ref().and_then(|h| h.value.as_deref()).filter(|_| leader) {
            line += &format!(" value={v}");
        }
        line
    }

    fn json(&self) -> Value {
        let lease = self.kv.key.rsplit('/').next().and_then(parse_lease_hex).map(|l| l.to_string());
        match &self.holder {
            Some(h) => {
                json!({"host": h.host, "pid": h.pid, "started": h.started, "held_since": h.held_since, "cmd": h.cmd, "value": h.value, "rev": self.kv.create_rev.0, "lease": lease, "key": self.kv.key, "priority": h.priority.unwrap_or(0)})
            }
            None => {
                json!({"host": null, "pid": null, "started": null, "cmd": null, "value": null, "rev": self.kv.create_rev.0, "lease": lease, "key": self.kv.key, "foreign": true})
            }
        }
    }
}

/// Builds the report for `spec` from the keys under its prefix.
pub fn report(spec: &HoldSpec, kvs: &[Kv]) -> WhoReport {
    let mut sorted: Vec<&Kv> = kvs.iter().collect();
    sorted.sort_by(|a, b| (a.create_rev, &a.key).cmp(&(b.create_rev, &b.key)));
    let entries: Vec<Entry> = sorted.into_iter().map(|kv| Entry { kv, holder: Holder::decode(&kv.value) }).collect();
    let slots = (spec.slots as usize).max(1);
    let (held, waiting) = entries.split_at(entries.len().min(slots));
    let code = if held.is_empty() { ExitCode::VACANT } else { ExitCode::OK };
    let name = spec.name.as_str();
    if spec.is_office {
        let lines = held
            .iter()
            .map(|e| format!("{name} {}", e.office_text(true)))
            .chain(waiting.iter().map(|e| format!("{name} WAIT {}", e.office_text(false))))
            .collect();
        let json = match held.first() {
            Some(e) => {
                let mut v = e.json();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("office".to_string(), json!(name));
                    obj.insert("waiters".to_string(), waiting.iter().map(Entry::json).collect::<Vec<_>>().into());
                }
                v
            }
            None => json!({"office": name, "vacant": true}),
        };
        return WhoReport { lines, json, code };
    }
    let head = format!("{name}[{}/{}]", held.len(), spec.slots);
    let lines = held
        .iter()
        .map(|e| format!("{head} HELD {}", e.text()))
        .chain(waiting.iter().map(|e| format!("{head} WAIT {}", e.text())))
        .collect();
    let json = json!({
        "name": name,
        "max": spec.slots,
        "holders": held.iter().map(Entry::json).collect::<Vec<_>>(),
        "waiters": waiting.iter().map(Entry::json).collect::<Vec<_>>(),
    });
    WhoReport { lines, json, code }
}

/// `--assert`: whether `host` leads the office (with a revision of at least `min_rev`),
/// and the JSON answer `{"held":…,"rev":…,"host":…}`.
pub fn assert_leader(spec: &HoldSpec, kvs: &[Kv], host: &str, min_rev: Option<i64>) -> (bool, Value) {
    let report = report(spec, kvs);
    let leader_host = report.json["host"].as_str().map(str::to_string);
    let rev = report.json["rev"].as_i64();
    let held = leader_host.as_deref() == Some(host) && rev.is_some_and(|r| min_rev.is_none_or(|m| r >= m));
    (held, json!({"held": held, "rev": rev, "host": leader_host}))
}

/// The leader line `--watch` prints for one state: the `--who` line, or `<office> -`.
pub fn watch_line(spec: &HoldSpec, kvs: &[Kv], as_json: bool) -> String {
    let report = report(spec, kvs);
    match (as_json, report.lines.first()) {
        (true, _) => report.json.to_string(),
        (false, Some(line)) => line.clone(),
        (false, None) => format!("{} -", spec.name.as_str()),
    }
}

/// `--who --value-only`: the leader's published value alone, for scripts; exit 1 when the
/// office is vacant or its leader publishes no value.
pub fn value_only(report: WhoReport) -> WhoReport {
    let value = report.json.get("value").and_then(Value::as_str).map(str::to_string);
    let code = if value.is_some() { ExitCode::OK } else { ExitCode::VACANT };
    WhoReport { lines: value.into_iter().collect(), code, ..report }
}

/// `--watch --value-only`: `<office> <value> <rev>` (`-` for a leader that publishes no
/// value), or `<office> -` when vacant.
pub fn value_line(spec: &HoldSpec, kvs: &[Kv]) -> String {
    let report = report(spec, kvs);
    let name = spec.name.as_str();
    match report.json.get("rev").and_then(Value::as_i64) {
        Some(rev) => format!("{name} {} {rev}", report.json.get("value").and_then(Value::as_str).unwrap_or("-")),
        None => format!("{name} -"),
    }
}

/// What `--watch` reports a change of: the holders, by their keys' create revisions (a
/// holder rewriting its own value, as it does with `held_since` on acquiring, is no change).
pub fn watch_identity(spec: &HoldSpec, kvs: &[Kv]) -> Vec<Revision> {
    let mut revs: Vec<Revision> = kvs.iter().map(|kv| kv.create_rev).collect();
    revs.sort();
    revs.truncate((spec.slots as usize).max(1));
    revs
}

/// Pause before `--watch` lists again after a failure or the end of its watch.
pub const RELIST_DELAY: Duration = Duration::from_millis(500);

/// What the `--watch` driver tells [`WhoWatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhoWatchInput {
    /// The range read of the prefix answered, at this header revision.
    Listed {
        /// The answer's header revision.
        rev: Revision,
        /// Every key under the prefix.
        kvs: Vec<Kv>,
    },
    /// The range read failed.
    ListFailed,
    /// The watch delivered a batch of events (an empty batch is no news).
    Changed,
    /// The watch could not be opened.
    WatchFailed,
    /// The watch ended: an error, compaction, cancellation, or the stream's end.
    WatchEnded,
}

/// What [`WhoWatch`] asks of its driver, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhoWatchOutput {
    /// Print this line (a change of holders).
    Print(String),
    /// Read the prefix now (the watch, if open, stays open).
    List,
    /// Drop any watch, wait this long, then read the prefix; log `warn` if given.
    ListAfter {
        /// How long to wait.
        delay: Duration,
        /// A warning to log first.
        warn: Option<&'static str>,
    },
    /// Watch the prefix from this revision.
    Watch {
        /// The first revision to report.
        start_rev: Revision,
    },
    /// The very first read failed: exit with that failure.
    Fail,
}

/// `--watch` as a machine: print the holders, then a line per change of holders, until
/// stopped. The first read failing is final (the operator learns at once that etcd is
/// unreachable); after that, every failure (a read, a watch that cannot open, a watch that
/// ends after compaction or an etcd restart) re-lists after [`RELIST_DELAY`], so the
/// watch survives outages and never misses a change (the re-list shows it).
#[derive(Debug)]
pub struct WhoWatch {
    spec: HoldSpec,
    as_json: bool,
    /// `--value-only`: `office value rev` lines.
    value_only: bool,
    last: Option<Vec<Revision>>,
    listed_once: bool,
    watching: bool,
    out: VecDeque<WhoWatchOutput>,
}

impl WhoWatch {
    /// The machine for `spec`; its first output is [`WhoWatchOutput::List`].
    pub fn new(spec: HoldSpec, as_json: bool) -> WhoWatch {
        let out = VecDeque::from([WhoWatchOutput::List]);
        WhoWatch { spec, as_json, value_only: false, last: None, listed_once: false, watching: false, out }
    }

    /// The same machine printing `office value rev` lines ([`value_line`]).
    pub fn with_value_only(self, value_only: bool) -> WhoWatch {
        WhoWatch { value_only, ..self }
    }

    /// Feeds what the driver saw.
    pub fn handle_input(&mut self, input: WhoWatchInput) {
        match input {
            WhoWatchInput::Listed { rev, kvs } => {
                self.listed_once = true;
                let identity = watch_identity(&self.spec, &kvs);
                if self.last.as_ref() != Some(&identity) {
                    let line = if self.value_only {
                        value_line(&self.spec, &kvs)
                    } else {
                        watch_line(&self.spec, &kvs, self.as_json)
                    };
                    self.out.push_back(WhoWatchOutput::Print(line));
                    self.last = Some(identity);
                }
                // A read after an event keeps the open watch; a first read opens one.
                if !self.watching {
                    self.watching = true;
                    self.out.push_back(WhoWatchOutput::Watch { start_rev: Revision(rev.0 + 1) });
                }
            }
            WhoWatchInput::ListFailed if !self.listed_once => self.out.push_back(WhoWatchOutput::Fail),
            WhoWatchInput::ListFailed => {
                let warn = (!self.watching).then_some("re-list failed; retrying");
                self.relist(warn);
            }
            WhoWatchInput::Changed => {
                debug_assert!(self.watching, "events come only from the watch this machine opened");
                self.out.push_back(WhoWatchOutput::List);
            }
            WhoWatchInput::WatchFailed => self.relist(Some("watch failed; re-listing")),
            WhoWatchInput::WatchEnded => self.relist(None),
        }
    }

    fn relist(&mut self, warn: Option<&'static str>) {
        self.watching = false;
        self.out.push_back(WhoWatchOutput::ListAfter { delay: RELIST_DELAY, warn });
    }

    /// The next thing to do; `None` means: wait for the watch.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<WhoWatchOutput> {
        self.out.pop_front()
    }
}

/// Other capacities in use under a semaphore's name, as (max, keys), from a range read of
/// [`crate::keys::sema_name_prefix`].
pub fn other_capacities(spec: &HoldSpec, kvs: &[Kv]) -> Vec<(u32, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for kv in kvs {
        if let Ok(ParsedKey::Sema { max, .. }) = parse_key(&kv.key) {
            if max != spec.slots {
                *counts.entry(max).or_insert(0) += 1;
            }
        }
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LeaseId, Revision};
    use crate::keys::Name;

    fn kv(key: &str, rev: i64, value: &str) -> Kv {
        Kv {
            key: key.into(),
            create_rev: Revision(rev),
            mod_rev: Revision(rev),
            lease: LeaseId(1),
            value: value.as_bytes().to_vec(),
        }
    }

    const H: &str = r#"{"host":"n1","pid":7,"started":"2026-01-01T00:00:00Z","cmd":"sleep 1"}"#;

    #[test]
    fn office_report() {
        let spec = HoldSpec::office(Name::new("db").unwrap());
        let r = report(&spec, &[kv("/conch/v1/elect/db/2b", 12, "x"), kv("/conch/v1/elect/db/1a", 10, H)]);
        assert_eq!(r.lines, vec!["db n1 pid=7 since=2026-01-01T00:00:00Z rev=10", "db WAIT ? pid=? since=? rev=12"]);
        assert_eq!(r.code, ExitCode::OK);
        assert_eq!(r.json["office"], "db");
        assert_eq!(r.json["lease"], "1a");
        assert_eq!(r.json["waiters"][0]["foreign"], true);
        // Each waiter with its priority, in queue order (create revision), not priority order.
        let p = |n: u32| format!(r#"{{"host":"n{n}","pid":{n},"started":"s","priority":{n}}}"#);
        let queue = [
            kv("/conch/v1/elect/db/c", 30, &p(9)),
            kv("/conch/v1/elect/db/a", 10, H),
            kv("/conch/v1/elect/db/b", 20, &p(3)),
        ];
        let r = report(&spec, &queue);
        assert_eq!(
            r.lines,
            vec![
                "db n1 pid=7 since=2026-01-01T00:00:00Z rev=10",
                "db WAIT n3 pid=3 since=s rev=20 priority=3",
                "db WAIT n9 pid=9 since=s rev=30 priority=9",
            ]
        );
        assert_eq!(r.json["priority"], 0);
        assert_eq!(r.json["waiters"][1]["priority"], 9);
        let vacant = report(&spec, &[]);
        assert!(vacant.lines.is_empty());
        assert_eq!(vacant.code, ExitCode::VACANT);
        assert_eq!(vacant.json, json!({"office": "db", "vacant": true}));
    }

    #[test]
    fn the_published_value_in_who_watch_and_value_only() {
        let spec = HoldSpec::office(Name::new("db").unwrap());
        let v = r#"{"host":"n1","pid":7,"started":"2026-01-01T00:00:00Z","value":"127.0.0.5:5432"}"#;
        let kvs = [kv("/conch/v1/elect/db/1a", 10, v), kv("/conch/v1/elect/db/2b", 12, H)];
        let r = report(&spec, &kvs);
        assert_eq!(r.lines[0], "db n1 pid=7 since=2026-01-01T00:00:00Z rev=10 value=127.0.0.5:5432");
        assert!(r.lines[1].starts_with("db WAIT n1 pid=7") && !r.lines[1].contains("value="), "{:?}", r.lines);
        assert_eq!(r.json["value"], "127.0.0.5:5432");
        let only = value_only(r);
        assert_eq!((only.lines, only.code), (vec!["127.0.0.5:5432".to_string()], ExitCode::OK));
        assert_eq!(value_line(&spec, &kvs), "db 127.0.0.5:5432 10");
        // A leader without a value (an older conch, etcdctl elect) and a vacant office.
        let old = [kv("/conch/v1/elect/db/2b", 12, H)];
        let only = value_only(report(&spec, &old));
        assert_eq!((only.lines.len(), only.code), (0, ExitCode::VACANT));
        assert_eq!(value_line(&spec, &old), "db - 12");
        assert_eq!(report(&spec, &old).json["value"], Value::Null);
        assert_eq!(value_line(&spec, &[kv("/conch/v1/elect/db/3c", 14, "etcdctl")]), "db - 14");
        assert_eq!(value_line(&spec, &[]), "db -");
        assert_eq!(value_only(report(&spec, &[])).code, ExitCode::VACANT);
    }

    #[test]
    fn the_watch_machine_prints_value_lines_with_value_only() {
        let spec = HoldSpec::office(Name::new("db").unwrap());
        let v = r#"{"host":"n1","pid":7,"started":"2026-01-01T00:00:00Z","value":"127.0.0.5:5432"}"#;
        let mut w = WhoWatch::new(spec, false).with_value_only(true);
        assert_eq!(w.poll_output(), Some(WhoWatchOutput::List));
        w.handle_input(WhoWatchInput::Listed { rev: Revision(4), kvs: vec![] });
        assert_eq!(w.poll_output(), Some(WhoWatchOutput::Print("db -".into())));
        let _ = w.poll_output();
        w.handle_input(WhoWatchInput::Listed { rev: Revision(9), kvs: vec![kv("/conch/v1/elect/db/1a", 8, v)] });
        assert_eq!(w.poll_output(), Some(WhoWatchOutput::Print("db 127.0.0.5:5432 8".into())));
    }

    #[test]
    fn semaphore_report_shows_foreign_keys() {
        let spec = HoldSpec::semaphore(Name::new("s").unwrap(), 2);
        let r = report(
            &spec,
            &[
                kv("/conch/v1/sema/s/2/c", 30, H),
                kv("/conch/v1/sema/s/2/a", 10, "etcdctl"),
                kv("/conch/v1/sema/s/2/b", 20, H),
            ],
        );
        assert_eq!(
            r.lines,
            vec![
                "s[2/2] HELD ? pid=? since=? rev=10",
                "s[2/2] HELD n1 pid=7 since=2026-01-01T00:00:00Z rev=20",
                "s[2/2] WAIT n1 pid=7 since=2026-01-01T00:00:00Z rev=30",
            ]
        );
        assert_eq!(r.json["holders"][0]["foreign"], true);
        assert_eq!(r.json["waiters"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn assert_watch_and_capacities() {
        let office = HoldSpec::office(Name::new("db").unwrap());
        let kvs = [kv("/conch/v1/elect/db/1a", 10, H)];
        let table: &[(&str, Option<i64>, bool)] =
            &[("n1", None, true), ("n1", Some(10), true), ("n1", Some(11), false), ("n2", None, false)];
        for (host, min_rev, held) in table {
            let (got, json) = assert_leader(&office, &kvs, host, *min_rev);
            assert_eq!(got, *held, "{host} {min_rev:?}");
            assert_eq!(json, json!({"held": held, "rev": 10, "host": "n1"}));
        }
        assert_eq!(assert_leader(&office, &[], "n1", None).1, json!({"held": false, "rev": null, "host": null}));
        assert_eq!(watch_line(&office, &[], false), "db -");
        assert_eq!(watch_line(&office, &kvs, false), "db n1 pid=7 since=2026-01-01T00:00:00Z rev=10");
        let sema = HoldSpec::semaphore(Name::new("s").unwrap(), 2);
        let family = [
            kv("/conch/v1/sema/s/2/a", 1, H),
            kv("/conch/v1/sema/s/3/b", 2, H),
            kv("/conch/v1/sema/s/3/c", 3, H),
            kv("/conch/v1/sema/s/1/d", 4, H),
        ];
        assert_eq!(other_capacities(&sema, &family), vec![(1, 1), (3, 2)]);
    }

    #[test]
    fn watch_machine_lists_watches_and_relists() {
        let office = HoldSpec::office(Name::new("db").unwrap());
        let mut w = WhoWatch::new(office, false);
        let drain = |w: &mut WhoWatch| std::iter::from_fn(|| w.poll_output()).collect::<Vec<_>>();
        assert_eq!(drain(&mut w), vec![WhoWatchOutput::List]);
        w.handle_input(WhoWatchInput::Listed { rev: Revision(4), kvs: vec![] });
        let opened = vec![WhoWatchOutput::Print("db -".into()), WhoWatchOutput::Watch { start_rev: Revision(5) }];
        assert_eq!(drain(&mut w), opened);
        w.handle_input(WhoWatchInput::Changed);
        assert_eq!(drain(&mut w), vec![WhoWatchOutput::List]);
        // A holder rewriting its value is no change; the watch stays open.
        w.handle_input(WhoWatchInput::Listed { rev: Revision(6), kvs: vec![] });
        assert_eq!(drain(&mut w), vec![]);
        w.handle_input(WhoWatchInput::ListFailed);
        assert_eq!(drain(&mut w), vec![WhoWatchOutput::ListAfter { delay: RELIST_DELAY, warn: None }]);
        w.handle_input(WhoWatchInput::ListFailed);
        let warn = Some("re-list failed; retrying");
        assert_eq!(drain(&mut w), vec![WhoWatchOutput::ListAfter { delay: RELIST_DELAY, warn }]);
        w.handle_input(WhoWatchInput::Listed { rev: Revision(9), kvs: vec![kv("/conch/v1/elect/db/1a", 8, H)] });
        let back = vec![
            WhoWatchOutput::Print("db n1 pid=7 since=2026-01-01T00:00:00Z rev=8".into()),
            WhoWatchOutput::Watch { start_rev: Revision(10) },
        ];
        assert_eq!(drain(&mut w), back);
        w.handle_input(WhoWatchInput::WatchEnded);
        assert_eq!(drain(&mut w), vec![WhoWatchOutput::ListAfter { delay: RELIST_DELAY, warn: None }]);
    }

    #[test]
    fn watch_machine_fails_only_on_the_first_read() {
        let mut w = WhoWatch::new(HoldSpec::office(Name::new("db").unwrap()), true);
        assert_eq!(w.poll_output(), Some(WhoWatchOutput::List));
        w.handle_input(WhoWatchInput::ListFailed);
        assert_eq!(w.poll_output(), Some(WhoWatchOutput::Fail));
        assert_eq!(w.poll_output(), None);
    }
}
