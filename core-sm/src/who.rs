//! `--who`: who holds an office or a semaphore, from one sorted range read.
//!
//! Every key counts, ours or not: a key written by `etcdctl lock/elect`, or with a value
//! we cannot parse, is shown with `?` for the fields we cannot know — never skipped.
//! An office lists its holder, then its waiters in queue order (`WAIT`), each with the
//! `--priority` its holder record carries (0 when none: the default).
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
    /// none, so lines of offices without priorities stay as they were).
    fn office_text(&self) -> String {
        match self.holder.as_ref().and_then(|h| h.priority) {
            Some(p) if p > 0 => format!("{} priority={p}", self.text()),
            _ => self.text(),
        }
    }

    fn json(&self) -> Value {
        let lease = self.kv.key.rsplit('/').next().and_then(parse_lease_hex).map(|l| l.to_string());
        match &self.holder {
            Some(h) => {
                json!({"host": h.host, "pid": h.pid, "started": h.started, "held_since": h.held_since, "cmd": h.cmd, "rev": self.kv.create_rev.0, "lease": lease, "key": self.kv.key, "priority": h.priority.unwrap_or(0)})
            }
            None => {
                json!({"host": null, "pid": null, "started": null, "cmd": null, "rev": self.kv.create_rev.0, "lease": lease, "key": self.kv.key, "foreign": true})
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
            .map(|e| format!("{name} {}", e.office_text()))
            .chain(waiting.iter().map(|e| format!("{name} WAIT {}", e.office_text())))
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

/// What `--watch` reports a change of: the holders, by their keys' create revisions (a
/// holder rewriting its own value, as it does with `held_since` on acquiring, is no change).
pub fn watch_identity(spec: &HoldSpec, kvs: &[Kv]) -> Vec<Revision> {
    let mut revs: Vec<Revision> = kvs.iter().map(|kv| kv.create_rev).collect();
    revs.sort();
    revs.truncate((spec.slots as usize).max(1));
    revs
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
}
