//! conchd's status API: `GET /cron`, `/elect`, `/sema` (JSON), `/healthz`, `/metrics`
//! (Prometheus text). Read-only, served by `tiny_http` on its own thread; the daemon's
//! loop publishes a snapshot after every input, etcd is read per request for the rest.
//!
//! The snapshot and the metrics live under one lock and are published together, so every
//! reader sees them at one moment and reads never go backwards: a `/healthz` saying "no
//! session" is never followed by a `/metrics` with `session_up 1` from before (two locks
//! allowed that; the `loom_` model below checks it).
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::sync::{Arc, Mutex};

use conch_core::conchd::Conchd;
use conch_core::cron::{fire_prefix, result_prefix, rfc3339, runs};
use conch_core::keys::{parse_key, Name, ParsedKey, ROOT};
use conch_core::who::report;
use conch_core::{HoldSpec, Kv};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

use crate::connect::EtcdConfig;
use crate::query::list;

/// What the daemon's loop publishes.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    healthy: bool,
    jobs: Vec<(String, String, String, Option<i64>, std::time::Duration)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    job: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
}

/// The counters of [`conch_core::conchd::Stats`] as of the last look.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    claimed: u64,
    lost: u64,
    skipped_late: u64,
    skipped_overlap: u64,
    skipped_no_session: u64,
    runs_finished: u64,
}

struct Metrics {
    registry: Registry,
    ticks: Family<ResultLabel, Counter>,
    runs: Family<OutcomeLabel, Counter>,
    last_success: Family<JobLabel, Gauge>,
    run_seconds: Histogram,
    keepalive_rtt_seconds: Histogram,
    session_up: Gauge,
    seen: Seen,
    seen_acks: u64,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("conch");
        let ticks = Family::<ResultLabel, Counter>::default();
        let runs = Family::<OutcomeLabel, Counter>::default();
        let run_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        let keepalive_rtt_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let session_up = Gauge::default();
        registry.register(
            "cron_ticks",
            "Cron ticks by result: claimed, lost, skipped_late, skipped_overlap, skipped_no_session",
            ticks.clone(),
        );
        registry.register("cron_runs", "Finished cron runs by job and outcome", runs.clone());
        let last_success = Family::<JobLabel, Gauge>::default();
        registry.register(
            "cron_last_success_timestamp_seconds",
            "When each job last exited 0 on this node (Unix seconds)",
            last_success.clone(),
        );
        let build_info = Family::<BuildLabel, Gauge>::default();
        build_info.get_or_create(&BuildLabel { version: env!("CARGO_PKG_VERSION").to_string() }).set(1);
        registry.register("build_info", "The conch build answering (always 1)", build_info);
        registry.register("cron_run_duration_seconds", "Durations of finished cron runs", run_seconds.clone());
        registry.register(
            "keepalive_rtt_seconds",
            "Round trip of acknowledged session keepalives",
            keepalive_rtt_seconds.clone(),
        );
        registry.register("session_up", "1 while conchd's session lease is alive", session_up.clone());
        Metrics {
            registry,
            ticks,
            runs,
            last_success,
            run_seconds,
            keepalive_rtt_seconds,
            session_up,
            seen: Seen::default(),
            seen_acks: 0,
        }
    }

    /// Moves the counters forward by what happened since the last look.
    fn update(&mut self, conchd: &Conchd) {
        let s = &conchd.stats;
        let pairs = [
            ("claimed", s.claimed, self.seen.claimed),
            ("lost", s.lost, self.seen.lost),
            ("skipped_late", s.skipped_late, self.seen.skipped_late),
            ("skipped_overlap", s.skipped_overlap, self.seen.skipped_overlap),
            ("skipped_no_session", s.skipped_no_session, self.seen.skipped_no_session),
        ];
        for (result, now, before) in pairs {
            if now > before {
                self.ticks.get_or_create(&ResultLabel { result: result.to_string() }).inc_by(now - before);
            }
        }
        // Only the runs finished since the last look (this is called after every input:
        // a walk of every job here made the daemon's CPU O(jobs) per input).
        let new_runs = (s.runs_finished - self.seen.runs_finished).min(s.recent.len() as u64) as usize;
        for run in s.recent.iter().skip(s.recent.len() - new_runs) {
            let label = OutcomeLabel { job: run.job.clone(), outcome: run.outcome.to_string() };
            self.runs.get_or_create(&label).inc();
            if let Some(at) = run.ok_at_s {
                self.last_success.get_or_create(&JobLabel { job: run.job.clone() }).set(at);
            }
            self.run_seconds.observe(run.ms as f64 / 1000.0);
        }
        let (acks, rtt) = conchd.round_trips();
        if acks > self.seen_acks {
            self.keepalive_rtt_seconds.observe(rtt.as_secs_f64());
            self.seen_acks = acks;
        }
        self.session_up.set(i64::from(conchd.healthy()));
        self.seen = Seen {
            claimed: s.claimed,
            lost: s.lost,
            skipped_late: s.skipped_late,
            skipped_overlap: s.skipped_overlap,
            skipped_no_session: s.skipped_no_session,
            runs_finished: s.runs_finished,
        };
    }
}

/// What the daemon loop and the HTTP thread share: one moment of the daemon.
struct Shared {
    snapshot: Snapshot,
    metrics: Metrics,
    /// The job table version the snapshot copied, and when.
    jobs_seen: Option<(u64, std::time::Instant)>,
}

/// How stale the next ticks in `/cron` may be.
const NEXT_TICKS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The shared state between the daemon loop and the HTTP thread.
#[derive(Clone)]
pub struct Status {
    shared: Arc<Mutex<Shared>>,
}

impl Status {
    /// Binds `addr` and serves on a thread of its own; the error names the address.
    pub fn serve(addr: SocketAddr, etcd: EtcdConfig) -> Result<Status, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| format!("--status-addr {addr}: {e}"))?;
        let status = Status::new();
        let shared = status.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let (code, body, kind) = shared.answer(request.url(), &etcd);
                let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes());
                let mut response = tiny_http::Response::from_string(body).with_status_code(code);
                if let Ok(h) = header {
                    response = response.with_header(h);
                }
                let _ = request.respond(response);
            }
        });
        Ok(status)
    }

    fn new() -> Status {
        Status {
            shared: Arc::new(Mutex::new(Shared {
                snapshot: Snapshot::default(),
                metrics: Metrics::new(),
                jobs_seen: None,
            })),
        }
    }

    /// Publishes the daemon's state (called after every input).
    /// The copy of the job table is rebuilt when the table changed, and for its next ticks
    /// at most every [`NEXT_TICKS_EVERY`]: a copy of 1 000 jobs after each of the
    /// daemon's thousands of inputs a second was most of its CPU.
    pub fn observe(&self, conchd: &Conchd) {
        self.publish(|shared| {
            let stale = shared
                .jobs_seen
                .is_none_or(|(version, at)| version != conchd.jobs_version() || at.elapsed() >= NEXT_TICKS_EVERY);
            if stale {
                shared.snapshot.jobs = conchd
                    .jobs()
                    .iter()
                    .map(|(name, s)| {
                        (name.clone(), s.job.spec.schedule.clone(), s.job.spec.tz.clone(), s.next_tick, s.job.run_ttl)
                    })
                    .collect();
                shared.jobs_seen = Some((conchd.jobs_version(), std::time::Instant::now()));
            }
            shared.snapshot.healthy = conchd.healthy();
            shared.metrics.update(conchd);
        });
    }

    /// Moves the snapshot and the metrics, both under the one lock.
    fn publish(&self, update: impl FnOnce(&mut Shared)) {
        if let Ok(mut shared) = self.shared.lock() {
            update(&mut shared);
        }
    }

    fn answer(&self, url: &str, etcd: &EtcdConfig) -> (u16, String, &'static str) {
        let path = url.split('?').next().unwrap_or("");
        if path == "/metrics" {
            let mut text = String::new();
            if let Ok(shared) = self.shared.lock() {
                let _ = prometheus_client::encoding::text::encode(&mut text, &shared.metrics.registry);
            }
            return (200, text, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        }
        let snap = self.shared.lock().map(|s| s.snapshot.clone()).unwrap_or_default();
        let json_type = "application/json";
        let result = match path {
            "/healthz" => {
                return if snap.healthy {
                    (200, "ok\n".into(), "text/plain")
                } else {
                    (503, "no session\n".into(), "text/plain")
                }
            }
            "/cron" => cron_status(&snap, etcd),
            "/elect" => list(etcd, &format!("{ROOT}elect/")).map(|kvs| elect_status(&kvs)),
            "/sema" => list(etcd, &format!("{ROOT}sema/")).map(|kvs| sema_status(&kvs)),
            _ => return (404, "not found: try /cron /elect /sema /healthz /metrics\n".into(), "text/plain"),
        };
        match result {
            Ok(v) => (200, format!("{v}\n"), json_type),
            Err(e) => (503, format!("{}\n", json!({"error": e})), json_type),
        }
    }
}

fn cron_status(snap: &Snapshot, etcd: &EtcdConfig) -> Result<Value, String> {
    let now_s = chrono::Utc::now().timestamp();
    let mut jobs = Vec::new();
    for (name, schedule, tz, next, run_ttl) in &snap.jobs {
        let rows = runs(&list(etcd, &fire_prefix(name))?, &list(etcd, &result_prefix(name))?, *run_ttl, now_s);
        let last = rows.first();
        jobs.push(json!({
            "name": name, "schedule": schedule, "tz": tz, "next": next.map(rfc3339),
            "last_tick": last.map(|r| rfc3339(r.tick)), "node": last.map(|r| r.node.clone()),
            "exit": last.and_then(|r| r.exit), "outcome": last.map(|r| r.outcome.clone()),
            "duration": last.and_then(|r| r.duration.clone()),
        }));
    }
    Ok(json!({"jobs": jobs, "healthy": snap.healthy}))
}

fn elect_status(kvs: &[Kv]) -> Value {
    let mut offices: BTreeMap<Name, Vec<Kv>> = BTreeMap::new();
    for kv in kvs {
        if let Ok(ParsedKey::Elect { office, .. }) = parse_key(&kv.key) {
            offices.entry(office).or_default().push(kv.clone());
        }
    }
    let list: Vec<Value> =
        offices.into_iter().map(|(office, kvs)| report(&HoldSpec::office(office), &kvs).json).collect();
    json!({"offices": list})
}

fn sema_status(kvs: &[Kv]) -> Value {
    let mut semaphores: BTreeMap<(Name, u32), Vec<Kv>> = BTreeMap::new();
    for kv in kvs {
        if let Ok(ParsedKey::Sema { name, max, .. }) = parse_key(&kv.key) {
            semaphores.entry((name, max)).or_default().push(kv.clone());
        }
    }
    let list: Vec<Value> =
        semaphores.into_iter().map(|((name, max), kvs)| report(&HoldSpec::semaphore(name, max), &kvs).json).collect();
    json!({"semaphores": list})
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The daemon loop publishing against the HTTP thread reading.
    use std::time::Duration;

    use super::Status;
    use crate::connect::EtcdConfig;

    fn etcd() -> EtcdConfig {
        EtcdConfig { endpoints: Vec::new(), dial_timeout: Duration::from_secs(1), user: None, tls: None }
    }

    fn session_up(metrics: &str) -> Option<i64> {
        metrics.lines().find_map(|l| l.strip_prefix("conch_session_up ")).and_then(|v| v.trim().parse().ok())
    }

    /// The loop reports the session up, then lost; a reader asking `/healthz` then
    /// `/metrics` never sees the loss in the first and the session up in the second.
    #[test]
    fn loom_status_reads_never_go_backwards() {
        loom::model(|| {
            let status = Status::new();
            status.publish(|s| {
                s.snapshot.healthy = true;
                s.metrics.session_up.set(1);
            });
            let writer = status.clone();
            let loop_thread = loom::thread::spawn(move || {
                writer.publish(|s| {
                    s.snapshot.healthy = false;
                    s.metrics.session_up.set(0);
                });
            });
            let (healthz, _, _) = status.answer("/healthz", &etcd());
            let (_, metrics, _) = status.answer("/metrics", &etcd());
            loop_thread.join().expect("the loop thread");
            let up = session_up(&metrics).expect("session_up in /metrics");
            if healthz == 503 {
                assert_eq!(up, 0, "/healthz saw the loss, then /metrics showed the session up");
            }
            let (after, _, _) = status.answer("/healthz", &etcd());
            assert_eq!(after, 503);
        });
    }

    /// The protocol before the one lock (snapshot and metrics under locks of their own,
    /// published one after the other): loom finds the read that goes backwards.
    #[test]
    #[should_panic(expected = "backwards")]
    fn loom_two_locks_are_caught() {
        use loom::sync::{Arc, Mutex};
        loom::model(|| {
            let healthy = Arc::new(Mutex::new(true));
            let up = Arc::new(Mutex::new(1));
            let (h, u) = (healthy.clone(), up.clone());
            let loop_thread = loom::thread::spawn(move || {
                *h.lock().expect("lock") = false;
                *u.lock().expect("lock") = 0;
            });
            let saw_loss = !*healthy.lock().expect("lock");
            let saw_up = *up.lock().expect("lock");
            loop_thread.join().expect("the loop thread");
            assert!(!(saw_loss && saw_up == 1), "reads went backwards");
        });
    }
}
