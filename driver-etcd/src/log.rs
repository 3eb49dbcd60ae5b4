//! One log line per core event (`tracing` text, or JSON with `--log-format json`): the
//! loop's and the pool's, so neither imports the other for it.
use conch_core::Level;

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches core events to one JSON object per line on stderr (`--log-format json`).
pub fn use_json_logs(on: bool) {
    JSON_LOGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// One log line for one core event: `tracing` text, or a JSON object with the event's
/// fields as keys (`{"ts":…,"level":"info","event":"acquired","name":…,"rev":…}`).
pub fn log_event(event: &conch_core::Event) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let level = match event.level {
            Level::Info if !tracing::enabled!(tracing::Level::INFO) => return,
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let mut line = serde_json::Map::new();
        line.insert("ts".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        line.insert("level".into(), level.into());
        line.insert("event".into(), event.kind.into());
        for (key, value) in &event.fields {
            // Counts and ids are numbers; everything else (lease hex, durations) stays text.
            let numeric = matches!(*key, "rev" | "pid" | "code" | "signal" | "rank" | "attempt" | "processes");
            let value = match value.parse::<i64>() {
                Ok(n) if numeric => serde_json::Value::from(n),
                _ => value.clone().into(),
            };
            line.insert((*key).into(), value);
        }
        let severity = match event.level {
            Level::Info => crate::out::Severity::Info,
            Level::Warn => crate::out::Severity::Warn,
            Level::Error => crate::out::Severity::Error,
        };
        crate::out::log_bytes(severity, serde_json::Value::Object(line).to_string().as_bytes());
        return;
    }
    let line = std::iter::once(event.kind.to_string())
        .chain(event.fields.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ");
    match event.level {
        Level::Info => tracing::info!("{line}"),
        Level::Warn => tracing::warn!("{line}"),
        Level::Error => tracing::error!("{line}"),
    }
}
