//! One log line per core event, the loop's and the pool's (so neither imports the other
//! for it): core events become `tracing` events, which the one logger (bin's
//! tracing-subscriber text or JSON layer) formats like every other line.
//!
//! A `tracing` event's field names are fixed where it is written, so one call site lists
//! every key of [`conch_core::output::EVENT_FIELDS`] (one list, `with_keys!`), each as an `Option` that records
//! nothing when the event does not carry it. Keys of `NUMBER_FIELDS` are recorded as
//! integers, so JSON readers get `"rev":12`, not `"rev":"12"`. In text format the line
//! stays `kind key=value …` in the event's own order, as before.
use conch_core::output::NUMBER_FIELDS;
use conch_core::{Event, Level};

/// The one list of keys a call site records: `text` keys as strings, `number` keys as
/// integers. `$m` is handed the list after its own arguments.
macro_rules! with_keys {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*;
            text: [after, age, answer, asked, before_term, by, child, delay, error, exit, from, from_url, granted,
                hook, job, kill_in, late, lease, name, node, note, outcome, prefix, ran, rank, reason, status,
                tick, timed_out, to, to_url, unconfirmed, waited, why];
            number: [attempt, code, outputs, pid, priority, rev, runs, signal, to_priority])
    };
}

/// One event recording every listed key; `$t` reads a text key, `$n` a number key.
macro_rules! emit {
    ($level:expr, $kind:expr, $t:ident, $n:ident, $extra:expr;
        text: [$($tk:ident),*]; number: [$($nk:ident),*]) => {
        tracing::event!($level, event = $kind, $($tk = $t(stringify!($tk)),)* $($nk = $n(stringify!($nk)),)* extra = $extra)
    };
}

/// The listed keys as strings (for the test that holds them to the core's lists).
#[cfg(test)]
macro_rules! key_list {
    (; text: [$($tk:ident),*]; number: [$($nk:ident),*]) => {
        (vec![$(stringify!($tk)),*], vec![$(stringify!($nk)),*])
    };
}

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches core events to structured fields (`--log-format json`).
pub fn use_json_logs(on: bool) {
    JSON_LOGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Logs one core event: structured fields for `--log-format json`, `kind key=value …` text
/// otherwise.
pub fn log_event(event: &Event) {
    if !JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let line = std::iter::once(event.kind.to_string())
            .chain(event.fields.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
        match event.level {
            Level::Info => tracing::info!("{line}"),
            Level::Warn => tracing::warn!("{line}"),
            Level::Error => tracing::error!("{line}"),
        }
        return;
    }
    let text = |key: &str| event.field(key);
    let number = |key: &str| text(key).and_then(|v| v.parse::<i64>().ok());
    // A key outside the list (a release build where the core's debug assertion is off) is
    // kept as text rather than lost.
    let extra: Vec<String> = event
        .fields
        .iter()
        .filter(|(k, v)| {
            !conch_core::output::EVENT_FIELDS.contains(k) || (NUMBER_FIELDS.contains(k) && v.parse::<i64>().is_err())
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let extra = (!extra.is_empty()).then(|| extra.join(" "));
    let extra = extra.as_deref();
    match event.level {
        Level::Info => with_keys!(emit!(tracing::Level::INFO, event.kind, text, number, extra)),
        Level::Warn => with_keys!(emit!(tracing::Level::WARN, event.kind, text, number, extra)),
        Level::Error => with_keys!(emit!(tracing::Level::ERROR, event.kind, text, number, extra)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_site_records_every_key_of_the_core_with_its_type() {
        let (text, number) = with_keys!(key_list!());
        let mut all: Vec<&str> = text.iter().chain(&number).copied().collect();
        all.sort_unstable();
        assert_eq!(all, conch_core::output::EVENT_FIELDS);
        assert_eq!(number, NUMBER_FIELDS);
    }

    /// Every key any crate gives an event (`Event::with`) is listed, so no debug
    /// build trips the core's assertion at run time (a key in a driver's rarely taken
    /// path, like an endpoint switch, would otherwise be found by a hung test).
    #[test]
    fn every_key_written_anywhere_is_listed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stack: Vec<std::path::PathBuf> =
            ["core-sm/src", "driver-etcd/src", "driver-sim/src", "bin/src"].iter().map(|d| root.join(d)).collect();
        let mut missing = Vec::new();
        for _ in 0..10_000 {
            let Some(path) = stack.pop() else { break };
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(".with(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or("");
                if !conch_core::output::EVENT_FIELDS.contains(&key) {
                    missing.push(format!("{}: {key}", path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "event keys not in EVENT_FIELDS: {missing:?}");
    }
}
