//! The service loop over many cycles: restarts and their pauses (the crash backoff for
//! the child's exits, the session's pace for etcd's failures), waiters re-entering.
use super::*;
use crate::etcd::{answer_ranges, EtcdError, EtcdRequest, Kv};
use crate::etcd::{EtcdResponse, WatchEvent};
use crate::hold::HoldSpec;
use crate::hooks::HookConfig;
use crate::ids::{ChildId, LeaseId, ReqId, Revision, WatchId};
use crate::keys::Name;
use crate::supervision::ChildStatus;
use crate::values::Holder;

/// The inputs by name, as the tests feed them (the wall clock stays where it was).
impl Service {
    fn feed(&mut self, now: Instant, input: Input) {
        self.handle_input(Now { mono: now, wall_ms: self.wall_ms }, input);
    }
    fn handle_response(&mut self, now: Instant, id: ReqId, response: EtcdResponse) {
        self.feed(now, Input::Response(id, response));
    }
    fn handle_watch(&mut self, now: Instant, id: WatchId, event: WatchEvent) {
        self.feed(now, Input::Watch(id, event));
    }
    fn handle_child_started(&mut self, now: Instant, pid: u32) {
        self.feed(now, Input::ChildStarted(ChildId(0), pid));
    }
    fn handle_child_exit(&mut self, now: Instant, status: ChildStatus) {
        self.feed(now, Input::ChildExit(ChildId(0), status));
    }
    fn handle_signal(&mut self, now: Instant, signal: WrapperSignal) {
        self.feed(now, Input::Signal(signal));
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.feed(now, Input::Timeout);
    }
}

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn service(restart: bool, wait: Option<Duration>) -> Service {
    let run = RunConfig {
        spec: HoldSpec::office(Name::new("svc").unwrap()),
        holder: Holder {
            host: "h".into(),
            pid: 1,
            started: "t".into(),
            cmd: None,
            held_since: None,
            value: None,
            priority: None,
        },
        argv: vec!["c".into()],
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(5),
        wait,
        hooks: HookConfig::default(),
    };
    Service::new(ServiceConfig { run, restart, seed: 1 })
}

/// Answers every request as a healthy etcd where we are alone (or, with `rival`,
/// behind another key); returns the non-etcd outputs.
fn answer(s: &mut Service, now: Instant, rival: bool) -> Vec<Output> {
    let mut rest = Vec::new();
    for _ in 0..100 {
        let outputs: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
        if outputs.is_empty() {
            break;
        }
        for o in outputs {
            match o {
                Output::Etcd { id, request } => {
                    let response = match request {
                        EtcdRequest::Grant { .. } => EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: 10 },
                        EtcdRequest::PutIfAbsent { lease, .. } => {
                            EtcdResponse::Put { created: true, create_rev: Revision(5), lease }
                        }
                        EtcdRequest::Ranges { ranges } => {
                            let own = Kv {
                                key: "/conch/v1/elect/svc/10".into(),
                                create_rev: Revision(5),
                                mod_rev: Revision(5),
                                lease: LeaseId(0x10),
                                value: vec![],
                            };
                            let other =
                                Kv { key: "/conch/v1/elect/svc/1".into(), create_rev: Revision(1), ..own.clone() };
                            let kvs = if rival { vec![other, own] } else { vec![own] };
                            answer_ranges(&ranges, &kvs, Revision(5))
                        }
                        EtcdRequest::DeleteIfCreateRev { .. } => EtcdResponse::Deleted { deleted: true },
                        EtcdRequest::Revoke { .. } => EtcdResponse::Revoked,
                        _ => continue,
                    };
                    s.handle_response(now, id, response);
                }
                Output::Log(_) | Output::Watch { .. } | Output::CancelWatch(_) => {}
                other => rest.push(other),
            }
        }
    }
    rest
}

#[test]
fn restart_reruns_after_clean_exits_with_backoff_until_a_signal() {
    let mut s = service(true, None);
    s.start(at(0));
    let mut now = at(0);
    for cycle in 1..=3u64 {
        let out = answer(&mut s, now, false);
        assert!(out.iter().any(|o| matches!(o, Output::Spawn(_))), "cycle {cycle}: {out:?}");
        s.handle_child_started(now, 9);
        now = now.plus(Duration::from_millis(10));
        s.handle_child_exit(now, ChildStatus::Exited(0));
        assert!(answer(&mut s, now, false).is_empty(), "no exit in service mode");
        let restart = s.poll_timeout().unwrap();
        let delay = restart.since(now);
        assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(30), "{delay:?}");
        assert_eq!(s.cycles(), cycle);
        if cycle == 3 {
            s.handle_signal(now, WrapperSignal::Interrupt);
            // A stop between cycles holds nothing: a clean stop (issue 12, systemd).
            assert_eq!(answer(&mut s, now, false), vec![Output::Exit(ExitCode::OK)]);
            return;
        }
        now = restart;
        s.handle_timeout(now);
    }
}

/// Delays grow while children die young, and fall back to 1-3 s after a child
/// stayed up 60 s (seed 1 is known to have grown past 3 s by the fifth quick cycle).
#[test]
fn backoff_resets_after_a_stable_child() {
    let mut s = service(true, None);
    s.start(at(0));
    let mut now = at(0);
    let mut delays = Vec::new();
    for uptime in [10u64, 10, 10, 10, 10, 61_000] {
        answer(&mut s, now, false);
        s.handle_child_started(now, 9);
        now = now.plus(Duration::from_millis(uptime));
        s.handle_child_exit(now, ChildStatus::Exited(0));
        answer(&mut s, now, false);
        let restart = s.poll_timeout().unwrap();
        delays.push(restart.since(now));
        now = restart;
        s.handle_timeout(now);
    }
    let (before, after) = delays.split_at(5);
    assert!(before.iter().any(|d| *d > Duration::from_secs(3)), "{delays:?}");
    assert!(after[0] <= Duration::from_secs(3), "no reset after a stable child: {delays:?}");
}

#[test]
fn a_signal_while_running_in_service_mode_ends_with_the_childs_code() {
    let mut s = service(true, None);
    s.start(at(0));
    answer(&mut s, at(0), false);
    s.handle_child_started(at(1), 9);
    s.handle_signal(at(2), WrapperSignal::Terminate);
    assert!(answer(&mut s, at(2), false).iter().any(|o| matches!(o, Output::Terminate { .. })));
    s.handle_child_exit(at(3), ChildStatus::Exited(0));
    assert_eq!(answer(&mut s, at(3), false), vec![Output::Exit(ExitCode(0))]);
    assert!(s.is_done());
}

#[test]
fn a_waiter_that_lost_its_session_reenters_while_wait_allows() {
    let mut s = service(false, Some(Duration::from_secs(60)));
    s.start(at(0));
    answer(&mut s, at(0), true);
    // Our own key is deleted while we wait: the session is gone.
    s.handle_watch(
        at(100),
        WatchId(1),
        WatchEvent::Delete { key: "/conch/v1/elect/svc/10".into(), mod_rev: Revision(9) },
    );
    assert!(answer(&mut s, at(100), true).is_empty(), "must re-enter, not exit");
    let restart = s.poll_timeout().unwrap();
    s.handle_timeout(restart);
    assert_eq!(s.cycles(), 2);
    // Without --wait the loss ends the run with 75.
    let mut s = service(false, None);
    s.start(at(0));
    answer(&mut s, at(0), true);
    s.handle_watch(
        at(100),
        WatchId(1),
        WatchEvent::Delete { key: "/conch/v1/elect/svc/10".into(), mod_rev: Revision(9) },
    );
    assert!(answer(&mut s, at(100), true).is_empty(), "no wait limit: re-enter too");
    let mut s = service(false, Some(Duration::ZERO));
    s.start(at(0));
    assert_eq!(answer(&mut s, at(0), true), vec![Output::Exit(ExitCode::NOT_ACQUIRED)]);
}

/// What a driven service did.
#[derive(Default)]
struct Trace {
    /// Pauses before each new cycle, with whether it is the crash backoff's.
    delays: Vec<(Duration, bool)>,
    /// When each child started (ms).
    spawns: Vec<u64>,
    exit: Option<ExitCode>,
}

/// Drives `s` from `from` to `until` ms: etcd answers with `etcd(t, request)` when it
/// says so, else like a healthy etcd where we are alone; a child exits on its own after
/// `child_ms`, and at once when told to stop.
fn drive(
    s: &mut Service,
    from: u64,
    until: u64,
    etcd: &dyn Fn(u64, &EtcdRequest) -> Option<EtcdResponse>,
    child_ms: u64,
) -> Trace {
    let mut trace = Trace::default();
    let (mut t, mut child_exit, mut own_key, mut crash) = (from, None::<u64>, String::new(), false);
    for _ in 0..200_000 {
        for _ in 0..1000 {
            let Some(o) = s.poll_output() else { break };
            match o {
                Output::Etcd { id, request } => {
                    let healthy = match &request {
                        EtcdRequest::Grant { .. } => EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: 10 },
                        EtcdRequest::KeepAlive { .. } => EtcdResponse::KeepAlive { ttl_s: 10 },
                        EtcdRequest::PutIfAbsent { key, lease, .. } => {
                            own_key = key.clone();
                            EtcdResponse::Put { created: true, create_rev: Revision(5), lease: *lease }
                        }
                        EtcdRequest::Ranges { ranges } => {
                            let own = Kv {
                                key: own_key.clone(),
                                create_rev: Revision(5),
                                mod_rev: Revision(5),
                                lease: LeaseId(0x10),
                                value: vec![],
                            };
                            answer_ranges(ranges, &[own], Revision(5))
                        }
                        EtcdRequest::DeleteIfCreateRev { .. } => EtcdResponse::Deleted { deleted: true },
                        _ => EtcdResponse::Revoked,
                    };
                    let response = etcd(t, &request).unwrap_or(healthy);
                    s.handle_response(at(t), id, response);
                }
                Output::Spawn(_) => {
                    trace.spawns.push(t);
                    s.handle_child_started(at(t), 9);
                    child_exit = Some(t + child_ms);
                }
                Output::Terminate { .. } => child_exit = Some(t),
                Output::Exit(code) => trace.exit = Some(code),
                Output::Log(e) if e.kind == "backoff" => {
                    crash = e.fields.iter().any(|(k, v)| *k == "why" && v == "restart");
                }
                _ => {}
            }
        }
        if trace.exit.is_some() {
            break;
        }
        if let (None, Some(restart)) = (&s.runner, s.restart_at) {
            if trace.delays.len() < s.cycles() as usize {
                trace.delays.push((restart.since(at(t)), crash));
            }
        }
        let next = [s.poll_timeout().map(|i| i.as_nanos() / 1_000_000), child_exit].into_iter().flatten().min();
        t = next.unwrap_or(until).max(t + 1);
        if t > until {
            break;
        }
        if child_exit.is_some_and(|e| e <= t) {
            child_exit = None;
            s.handle_child_exit(at(t), ChildStatus::Exited(1));
        } else {
            s.handle_timeout(at(t));
        }
    }
    trace
}

fn unavailable() -> Option<EtcdResponse> {
    Some(EtcdResponse::Error(EtcdError::Unavailable("connection refused".into())))
}

/// Each row: how etcd fails until `back` ms, how long the child lives, and the first
/// child start after etcd is back at most this late. Etcd failures must never grow the
/// crash backoff: every pause they cause is at most `ETCD_RETRY_MAX`, and a child that
/// crashes right after etcd returns waits 1-3 s, not up to 30 s.
#[test]
fn etcd_failures_retry_at_the_sessions_pace_and_leave_the_crash_backoff_alone() {
    type Etcd = fn(u64, &EtcdRequest) -> Option<EtcdResponse>;
    let table: [(&str, Etcd, u64, u64, u64); 4] = [
        (
            "every call fails 40 s under a holder",
            |t, _| (5_000..45_000).contains(&t).then(unavailable).flatten(),
            45_000,
            600_000,
            1_100,
        ),
        (
            "every grant refused for 30 s",
            |t, r| (t < 30_000 && matches!(r, EtcdRequest::Grant { .. })).then(unavailable).flatten(),
            30_000,
            600_000,
            1_100,
        ),
        (
            "the lease is gone at every keepalive for 30 s",
            |t, r| {
                (t < 30_000 && matches!(r, EtcdRequest::KeepAlive { .. }))
                    .then_some(EtcdResponse::KeepAlive { ttl_s: 0 })
            },
            30_000,
            600_000,
            // The loss is seen at the first keepalive (cadence 1.58 s at TTL 10 s).
            1_700 + 1_100,
        ),
        (
            "quorum lost 20 s, children crash fast",
            |t, _| (2_000..22_000).contains(&t).then(unavailable).flatten(),
            22_000,
            50,
            1_100,
        ),
    ];
    for (name, etcd, back, child_ms, back_within) in table {
        let mut s = service(true, None);
        s.start(at(0));
        let trace = drive(&mut s, 0, back + 30_000, &etcd, child_ms);
        let first = trace.spawns.iter().find(|t| **t >= back).copied();
        assert!(first.is_some_and(|f| f <= back + back_within), "{name}: back at {first:?}, etcd at {back}");
        let failed: Vec<Duration> = trace.delays.iter().filter(|(_, crashed)| !crashed).map(|(d, _)| *d).collect();
        assert!(failed.len() >= 5, "{name}: only {} etcd-failed cycles", failed.len());
        assert!(failed.iter().all(|d| *d <= ETCD_RETRY_MAX), "{name}: {failed:?}");
        if child_ms < 1_000 {
            let crash = trace.delays.iter().find(|(_, crashed)| *crashed).map(|(d, _)| *d);
            assert!(crash.is_some_and(|d| d <= Duration::from_secs(3)), "{name}: first crash pause {crash:?}");
        }
    }
}

#[test]
fn a_one_shot_whose_first_grant_fails_exits_69_at_once() {
    let mut s = service(false, Some(Duration::from_secs(60)));
    s.start(at(0));
    let trace = drive(&mut s, 0, 10_000, &|_, r| matches!(r, EtcdRequest::Grant { .. }).then(unavailable).flatten(), 1);
    assert_eq!(trace.exit, Some(ExitCode::UNAVAILABLE));
    assert_eq!(s.cycles(), 1);
}

/// A waiter that lost its session re-enters; etcd refusing its new grant keeps it
/// waiting (while --wait allows) instead of ending in 69.
#[test]
fn a_reentered_waiter_keeps_waiting_through_refused_grants() {
    let mut s = service(false, Some(Duration::from_secs(60)));
    s.start(at(0));
    answer(&mut s, at(0), true);
    s.handle_watch(
        at(100),
        WatchId(1),
        WatchEvent::Delete { key: "/conch/v1/elect/svc/10".into(), mod_rev: Revision(9) },
    );
    let grants =
        |t: u64, r: &EtcdRequest| (t < 10_000 && matches!(r, EtcdRequest::Grant { .. })).then(unavailable).flatten();
    let trace = drive(&mut s, 100, 12_000, &grants, 600_000);
    assert_eq!(trace.exit, None, "gave up while --wait allowed");
    assert!(s.cycles() >= 10, "{} cycles", s.cycles());
    assert!(trace.delays.iter().all(|(d, _)| *d <= ETCD_RETRY_MAX), "{:?}", trace.delays);
    assert!(trace.spawns.first().is_some_and(|t| (10_000..=11_100).contains(t)), "{:?}", trace.spawns);
}

/// systemd's `systemctl stop` sends SIGTERM: a service that released cleanly exits 0
/// even though its child died of the forwarded SIGTERM; a one-shot passes 143 on.
#[test]
fn a_stop_signal_ends_a_service_with_0_and_a_one_shot_with_the_childs_status() {
    for (restart, want) in [(true, ExitCode::OK), (false, ExitCode(143))] {
        let mut s = service(restart, None);
        s.start(at(0));
        answer(&mut s, at(0), false);
        s.handle_child_started(at(1), 9);
        s.handle_signal(at(2), WrapperSignal::Terminate);
        answer(&mut s, at(2), false);
        s.handle_child_exit(at(3), ChildStatus::Signaled(15));
        let outs = answer(&mut s, at(3), false);
        assert_eq!(outs.last(), Some(&Output::Exit(want)), "restart={restart}: {outs:?}");
    }
    // Between cycles (backing off) a service holds nothing: a stop is clean too.
    let mut s = service(true, None);
    s.start(at(0));
    answer(&mut s, at(0), false);
    s.handle_child_started(at(1), 9);
    s.handle_child_exit(at(2), ChildStatus::Exited(1));
    answer(&mut s, at(2), false);
    s.handle_signal(at(3), WrapperSignal::Interrupt);
    assert_eq!(answer(&mut s, at(3), false).last(), Some(&Output::Exit(ExitCode::OK)));
}

/// SIGHUP and friends reach the child's group as themselves and stop nothing.
#[test]
fn passed_signals_go_to_the_child_and_stop_nothing() {
    let mut s = service(true, None);
    s.start(at(0));
    answer(&mut s, at(0), false);
    s.handle_child_started(at(1), 9);
    for n in crate::supervision::PASSED_SIGNALS {
        s.handle_signal(at(2), WrapperSignal::Pass(n));
        let outs = answer(&mut s, at(2), false);
        assert!(outs.iter().any(|o| matches!(o, Output::SignalGroup { signal, .. } if *signal == n)), "{outs:?}");
        assert!(!outs.iter().any(|o| matches!(o, Output::Terminate { .. } | Output::Exit(_))), "{outs:?}");
    }
    assert!(!s.is_done());
}
