//! Table-driven transitions of the runner: each scenario feeds answers by hand and checks
//! the actions that come out, in order.
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::etcd::{answer_ranges, Kv, RangeResult, RangeSpec};
use crate::ids::{ChildId, LeaseId, Revision};
use crate::keys::Name;

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn config(office: bool, wait: Option<Duration>) -> RunConfig {
    let name = Name::new("x").unwrap();
    let spec = if office { HoldSpec::office(name) } else { HoldSpec::semaphore(name, 1) };
    RunConfig {
        spec,
        holder: Holder {
            host: "h".into(),
            pid: 1,
            started: "t".into(),
            cmd: Some("c".into()),
            held_since: None,
            value: None,
            priority: None,
        },
        argv: vec!["c".into()],
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(5),
        wait,
        hooks: HookConfig::default(),
    }
}

/// Drains and returns every non-log output.
fn actions(r: &mut Runner) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).filter(|o| !matches!(o, Output::Log(_))).collect()
}

fn request_id(outputs: &[Output], pick: impl Fn(&EtcdRequest) -> bool) -> ReqId {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Etcd { id, request } if pick(request) => Some(*id),
            _ => None,
        })
        .expect("request not found")
}

/// The rank read among `outputs`: its id and ranges.
fn ranges_of(outputs: &[Output]) -> (ReqId, Vec<RangeSpec>) {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Etcd { id, request: EtcdRequest::Ranges { ranges } } => Some((*id, ranges.clone())),
            _ => None,
        })
        .expect("no rank read")
}

fn own_kv(rev: i64) -> Kv {
    Kv {
        key: "/conch/v1/elect/x/10".into(),
        create_rev: Revision(rev),
        mod_rev: Revision(rev),
        lease: LeaseId(0x10),
        value: vec![],
    }
}

/// Grant, put and range: the runner holds `/conch/v1/elect/x/10` at revision 5.
fn holding(wait: Option<Duration>) -> (Runner, Vec<Output>) {
    holding_with(config(true, wait))
}

/// [`holding`] with this configuration (an office).
fn holding_with(cfg: RunConfig) -> (Runner, Vec<Output>) {
    let mut r = Runner::new(cfg);
    r.start(at(0));
    let grant = request_id(&actions(&mut r), |q| matches!(q, EtcdRequest::Grant { ttl_s: 10 }));
    r.handle_response(at(1), grant, EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: 10 });
    let out = actions(&mut r);
    let put = request_id(&out, |q| matches!(q, EtcdRequest::PutIfAbsent { key, .. } if key == "/conch/v1/elect/x/10"));
    r.handle_response(at(2), put, EtcdResponse::Put { created: true, create_rev: Revision(5), lease: LeaseId(0x10) });
    let out = actions(&mut r);
    assert!(
        out.contains(&Output::Watch {
            id: WatchId(1),
            key: "/conch/v1/elect/x/10".into(),
            start_rev: Revision(6),
            prefix: false
        }),
        "{out:?}"
    );
    let (range, ranges) = ranges_of(&out);
    assert!(ranges.iter().any(|q| q.prefix && q.key == "/conch/v1/elect/x/"), "{ranges:?}");
    r.handle_response(at(3), range, answer_ranges(&ranges, &[own_kv(5)], Revision(5)));
    let out = actions(&mut r);
    (r, out)
}

fn release_and_exit(r: &mut Runner, now: Instant, out: &[Output]) -> Vec<Output> {
    let delete = request_id(out, |q| {
        *q == EtcdRequest::DeleteIfCreateRev { key: "/conch/v1/elect/x/10".into(), create_rev: Revision(5) }
    });
    let revoke = request_id(out, |q| *q == EtcdRequest::Revoke { lease: LeaseId(0x10) });
    r.handle_response(now, delete, EtcdResponse::Deleted { deleted: true });
    assert!(actions(r).is_empty(), "exit must wait for the revoke too");
    r.handle_response(now, revoke, EtcdResponse::Revoked);
    actions(r)
}

#[test]
fn acquire_run_release_exit_with_the_childs_code() {
    let (mut r, out) = holding(None);
    let Some(Output::Spawn(spec)) = out.iter().find(|o| matches!(o, Output::Spawn(_))) else {
        panic!("no spawn: {out:?}")
    };
    assert_eq!(
        spec.env,
        vec![
            ("CONCH_NAME".into(), "x".into()),
            ("CONCH_REV".into(), "5".into()),
            ("CONCH_LEASE".into(), "10".into()),
            ("CONCH_KEY".into(), "/conch/v1/elect/x/10".into()),
            ("CONCH_LEADER".into(), "1".into()),
            ("CONCH_PRIORITY".into(), "0".into())
        ]
    );
    // D counts from the grant's send time (0): term_at = 10 s - 5 s - 250 ms.
    assert_eq!((spec.term_at, spec.kill_at), (at(4_750), at(9_750)));
    r.handle_child_started(at(4), 99);
    r.handle_child_exit(at(50), ChildStatus::Exited(3));
    let out = actions(&mut r);
    assert_eq!(release_and_exit(&mut r, at(51), &out), vec![Output::Exit(ExitCode(3))]);
    assert!(r.is_done());
    assert_eq!(r.poll_timeout(), None);
}

/// Found by the simulator: a "you hold" handled long after it was asked for (the host was
/// frozen in between) is read again before a child starts with its token.
#[test]
fn a_stale_you_hold_answer_is_read_again_before_the_child_starts() {
    let mut r = Runner::new(config(true, None));
    r.start(at(0));
    let grant = request_id(&actions(&mut r), |q| matches!(q, EtcdRequest::Grant { ttl_s: 10 }));
    r.handle_response(at(1), grant, EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: 10 });
    let put = request_id(&actions(&mut r), |q| matches!(q, EtcdRequest::PutIfAbsent { .. }));
    r.handle_response(at(2), put, EtcdResponse::Put { created: true, create_rev: Revision(5), lease: LeaseId(0x10) });
    let (range, ranges) = ranges_of(&actions(&mut r));
    // Handled 2.5 s after it was sent: not proof of anything now.
    r.handle_response(at(2_502), range, answer_ranges(&ranges, &[own_kv(5)], Revision(5)));
    let out = actions(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::Spawn(_))), "spawned on a stale answer: {out:?}");
    let (again, ranges) = ranges_of(&out);
    // The fresh read shows the key gone (deleted while the host was frozen): lost, no child.
    r.handle_response(at(2_505), again, answer_ranges(&ranges, &[], Revision(9)));
    let out = actions(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::Spawn(_))), "{out:?}");
}

#[test]
fn nonblock_with_the_office_taken_withdraws_and_exits_75() {
    let mut r = Runner::new(config(true, Some(Duration::ZERO)));
    r.start(at(0));
    let grant = request_id(&actions(&mut r), |_| true);
    r.handle_response(at(1), grant, EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: 10 });
    let put = request_id(&actions(&mut r), |q| matches!(q, EtcdRequest::PutIfAbsent { .. }));
    r.handle_response(at(2), put, EtcdResponse::Put { created: true, create_rev: Revision(5), lease: LeaseId(0x10) });
    let (range, ranges) = ranges_of(&actions(&mut r));
    let other = Kv { key: "/conch/v1/elect/x/ff".into(), create_rev: Revision(3), ..own_kv(3) };
    r.handle_response(at(3), range, answer_ranges(&ranges, &[other, own_kv(5)], Revision(5)));
    let out = actions(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::Spawn(_))), "{out:?}");
    assert_eq!(release_and_exit(&mut r, at(4), &out), vec![Output::Exit(ExitCode::NOT_ACQUIRED)]);
}

#[test]
fn key_deleted_while_running_terminates_then_exits_70() {
    let (mut r, _) = holding(None);
    r.handle_watch(
        at(100),
        WatchId(1),
        WatchEvent::Delete { key: "/conch/v1/elect/x/10".into(), mod_rev: Revision(9) },
    );
    let out = actions(&mut r);
    // kill by min(now + kill_after, kill_at) = min(5.1 s, 9.75 s)
    assert!(out.contains(&Output::Terminate { child: ChildId(0), kill_at: at(5_100) }), "{out:?}");
    r.handle_child_exit(at(200), ChildStatus::Signaled(15));
    let out = actions(&mut r);
    assert_eq!(release_and_exit(&mut r, at(201), &out), vec![Output::Exit(ExitCode::LOST)]);
}

fn fenced() -> RunConfig {
    let hooks =
        HookConfig { fence: Some("undo".into()), fence_budget: Duration::from_secs(2), ..HookConfig::default() };
    RunConfig { hooks, ..config(true, None) }
}

/// The hold is lost: the child is stopped, then the fence runs; `fence_exit` is how it
/// ends. Returns the outputs after the fence's exit.
fn lose_and_fence(fence_exit: Option<ChildStatus>) -> (Runner, Vec<Output>) {
    let (mut r, out) = holding_with(fenced());
    let Some(Output::Spawn(spec)) = out.iter().find(|o| matches!(o, Output::Spawn(_))) else { panic!("{out:?}") };
    // The budget comes out of the kill window: term_at = 10 s − (5 s + 2 s) − 250 ms, and
    // the child's group is dead 2 s before the session's kill_at (9.75 s).
    assert_eq!((spec.term_at, spec.kill_at), (at(2_750), at(7_750)));
    r.handle_child_started(at(4), 99);
    let deleted = WatchEvent::Delete { key: "/conch/v1/elect/x/10".into(), mod_rev: Revision(9) };
    r.handle_watch(at(100), WatchId(1), deleted);
    assert!(actions(&mut r).contains(&Output::Terminate { child: ChildId(0), kill_at: at(5_100) }));
    r.handle_child_exit(at(200), ChildStatus::Signaled(15));
    let out = actions(&mut r);
    let Some(Output::RunHook(hook)) = out.iter().find(|o| matches!(o, Output::RunHook(_))) else { panic!("{out:?}") };
    assert_eq!((hook.kind, hook.cmd.as_str()), (HookKind::Fence, "undo"));
    assert!(!out.iter().any(|o| matches!(o, Output::Etcd { .. })), "released before the fence: {out:?}");
    // The fence must end in its budget, and never after the session's kill_at.
    assert_eq!(r.poll_timeout(), Some(at(2_200)));
    let id = hook.id;
    match fence_exit {
        Some(status) => r.handle_hook_exit(at(300), id, status),
        None => {
            r.handle_timeout(at(2_200));
            assert_eq!(actions(&mut r), vec![Output::KillHook(id)]);
            r.handle_hook_exit(at(2_210), id, ChildStatus::Signaled(9));
        }
    }
    let out = actions(&mut r);
    (r, out)
}

#[test]
fn a_lost_holds_fence_runs_once_the_child_is_dead_and_then_it_releases() {
    let (mut r, out) = lose_and_fence(Some(ChildStatus::Exited(0)));
    assert_eq!(release_and_exit(&mut r, at(301), &out), vec![Output::Exit(ExitCode::LOST)]);
}

#[test]
fn a_failed_or_overrun_fence_keeps_the_keys_and_exits_71() {
    for fence_exit in [Some(ChildStatus::Exited(1)), None] {
        let (r, out) = lose_and_fence(fence_exit);
        assert_eq!(out, vec![Output::Exit(ExitCode::FENCE_FAILED)], "{fence_exit:?}");
        assert!(r.is_done());
    }
}

/// Found by the simulator's fence checkers: the shim's SIGKILL at kill_at reported before
/// the runner's own timer input saw the deadline pass. The hold is lost all the same: the
/// fence runs, and nothing is released before it.
#[test]
fn a_childs_exit_after_the_deadline_is_a_loss_and_runs_the_fence() {
    let (mut r, _) = holding_with(fenced());
    r.handle_child_started(at(4), 99);
    r.handle_child_exit(at(9_000), ChildStatus::Signaled(9));
    let out = actions(&mut r);
    assert!(out.iter().any(|o| matches!(o, Output::RunHook(h) if h.kind == HookKind::Fence)), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::Etcd { .. })), "released before the fence: {out:?}");
}

#[test]
fn a_clean_exit_runs_no_fence() {
    let (mut r, _) = holding_with(fenced());
    r.handle_child_started(at(4), 99);
    r.handle_child_exit(at(50), ChildStatus::Exited(0));
    let out = actions(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::RunHook(_))), "{out:?}");
    assert_eq!(release_and_exit(&mut r, at(51), &out), vec![Output::Exit(ExitCode::OK)]);
}

#[test]
fn silent_etcd_terminates_the_child_at_term_at() {
    let (mut r, _) = holding(None);
    let mut now = at(3);
    let mut terminated = None;
    for _ in 0..1000 {
        let Some(next) = r.poll_timeout() else { break };
        now = next.max(now);
        r.handle_timeout(now);
        if let Some(Output::Terminate { kill_at, .. }) =
            actions(&mut r).into_iter().find(|o| matches!(o, Output::Terminate { .. }))
        {
            terminated = Some((now, kill_at));
            break;
        }
    }
    assert_eq!(terminated, Some((at(4_750), at(9_750))));
}

/// Runs timers to `until`, answering every keepalive at once and every read as etcd
/// would over a store of `store` (`None`: an error); returns the first termination with
/// its instant.
fn run_confirming(
    r: &mut Runner,
    mut now: Instant,
    until: Instant,
    store: Option<Vec<Kv>>,
) -> Option<(Instant, Output)> {
    let mut pending = actions(r);
    for _ in 0..10_000 {
        for o in std::mem::take(&mut pending) {
            match o {
                Output::Etcd { id, request: EtcdRequest::KeepAlive { .. } } => {
                    r.handle_response(now, id, EtcdResponse::KeepAlive { ttl_s: 10 })
                }
                Output::Etcd { id, request: EtcdRequest::Ranges { ranges } } => {
                    let answer = match &store {
                        Some(kvs) => answer_ranges(&ranges, kvs, Revision(7)),
                        None => EtcdResponse::Error(EtcdError::Unavailable("cut".into())),
                    };
                    r.handle_response(now, id, answer)
                }
                o @ Output::Terminate { .. } => return Some((now, o)),
                _ => {}
            }
            pending.extend(actions(r));
        }
        if !pending.is_empty() {
            continue;
        }
        let next = r.poll_timeout()?;
        if next > until {
            return None;
        }
        now = next.max(now);
        r.handle_timeout(now);
        pending = actions(r);
    }
    None
}

/// Found by mutation testing (issue 14): a holder whose own watch broke and whose re-reads
/// all fail, while its keepalives succeed, stops its child one `term_at` span (TTL − kill
/// grace − margin = 4.75 s) after the watch broke, as a silent session would.
#[test]
fn a_holder_that_cannot_confirm_its_key_stops_its_child() {
    let (mut r, _) = holding(None);
    r.handle_child_started(at(4), 99);
    r.handle_watch(at(1_000), WatchId(1), WatchEvent::Broken("cancelled".into()));
    let stopped = run_confirming(&mut r, at(1_000), at(30_000), None);
    let Some((when, Output::Terminate { kill_at, .. })) = stopped else { panic!("never stopped: {stopped:?}") };
    assert_eq!(when, at(5_750));
    assert!(kill_at <= at(10_750), "{kill_at:?}");
}

#[test]
fn a_confirming_read_that_answers_keeps_the_hold() {
    let (mut r, _) = holding(None);
    r.handle_child_started(at(4), 99);
    r.handle_watch(at(1_000), WatchId(1), WatchEvent::Broken("cancelled".into()));
    assert_eq!(run_confirming(&mut r, at(1_000), at(30_000), Some(vec![own_kv(5)])), None);
}

#[test]
fn a_signal_while_running_forwards_and_returns_the_childs_code() {
    let (mut r, _) = holding(None);
    r.handle_signal(at(10), WrapperSignal::Terminate);
    assert!(actions(&mut r).contains(&Output::Terminate { child: ChildId(0), kill_at: at(5_010) }));
    r.handle_child_exit(at(20), ChildStatus::Exited(7));
    let out = actions(&mut r);
    assert_eq!(release_and_exit(&mut r, at(21), &out), vec![Output::Exit(ExitCode(7))]);
}

/// Found by tests/tests/operator_systemd.rs: a SIGTERM that arrived while the grant was
/// on its way was noted, then the grant's answer started a campaign, and the child ran.
#[test]
fn a_stop_signal_during_the_grant_revokes_it_and_never_campaigns() {
    let mut r = Runner::new(config(false, None));
    r.start(at(0));
    let grant = request_id(&actions(&mut r), |_| true);
    r.handle_signal(at(1), WrapperSignal::Terminate);
    assert!(actions(&mut r).iter().all(|o| matches!(o, Output::Log(_))));
    r.handle_response(at(2), grant, EtcdResponse::Granted { lease: LeaseId(7), ttl_s: 10 });
    let out = actions(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::Etcd { request: EtcdRequest::PutIfAbsent { .. }, .. })), "{out:?}");
    let revoke = request_id(&out, |q| matches!(q, EtcdRequest::Revoke { lease: LeaseId(7) }));
    r.handle_response(at(3), revoke, EtcdResponse::Revoked);
    assert_eq!(actions(&mut r).last(), Some(&Output::Exit(ExitCode(143))));
}

#[test]
fn grant_failure_exits_69_without_writing() {
    let mut r = Runner::new(config(false, None));
    r.start(at(0));
    let grant = request_id(&actions(&mut r), |_| true);
    r.handle_response(at(1), grant, EtcdResponse::Error(EtcdError::Unavailable("down".into())));
    assert_eq!(actions(&mut r), vec![Output::Exit(ExitCode::UNAVAILABLE)]);
}

#[test]
fn a_release_answer_lost_is_retried_with_the_same_compare() {
    let (mut r, _) = holding(None);
    r.handle_child_exit(at(10), ChildStatus::Exited(0));
    let out = actions(&mut r);
    let delete = request_id(&out, |q| matches!(q, EtcdRequest::DeleteIfCreateRev { .. }));
    r.handle_response(at(11), delete, EtcdResponse::Error(EtcdError::Unavailable("timeout".into())));
    r.handle_timeout(at(11 + 200));
    let retry = actions(&mut r);
    assert_eq!(retry.len(), 1);
    assert!(matches!(
        &retry[0],
        Output::Etcd { request: EtcdRequest::DeleteIfCreateRev { create_rev: Revision(5), .. }, .. }
    ));
}

#[derive(Clone, Debug)]
enum Input {
    Response(u64, u8, i64),
    Watch(u64, u8),
    Timeout(u64),
    Signal,
    ChildStarted,
    ChildExit(i32),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (1u64..12, 0u8..10, -1i64..12).prop_map(|(id, kind, n)| Input::Response(id, kind, n)),
        (1u64..6, 0u8..4).prop_map(|(id, kind)| Input::Watch(id, kind)),
        (0u64..20_000).prop_map(Input::Timeout),
        Just(Input::Signal),
        Just(Input::ChildStarted),
        (-1i32..300).prop_map(Input::ChildExit),
    ]
}

fn response(kind: u8, n: i64) -> EtcdResponse {
    let kv = Kv {
        key: if n % 2 == 0 { "/conch/v1/sema/x/1/10".into() } else { "k".into() },
        create_rev: Revision(n),
        mod_rev: Revision(n),
        lease: LeaseId(n),
        value: vec![],
    };
    match kind {
        0 => EtcdResponse::Granted { lease: LeaseId(0x10), ttl_s: n },
        1 => EtcdResponse::KeepAlive { ttl_s: n },
        2 => {
            EtcdResponse::Put { created: n > 0, create_rev: Revision(n), lease: LeaseId(if n > 5 { 0x10 } else { n }) }
        }
        3 => EtcdResponse::Range {
            header_rev: Revision(n),
            kvs: vec![kv.clone(), Kv { create_rev: Revision(n / 2), ..kv.clone() }],
        },
        9 => EtcdResponse::Ranges {
            header_rev: Revision(n),
            results: vec![
                RangeResult { kvs: vec![kv.clone()], count: n % 3, more: n % 2 == 0 };
                n.rem_euclid(6) as usize
            ],
        },
        4 => EtcdResponse::Deleted { deleted: n > 0 },
        5 => EtcdResponse::Revoked,
        6 => EtcdResponse::Touched { touched: n > 0 },
        7 => EtcdResponse::Error(EtcdError::LeaseNotFound),
        _ => EtcdResponse::Error(EtcdError::Unavailable("x".into())),
    }
}

proptest! {
    /// No input sequence panics; spawn and exit happen at most once; nothing but logs
    /// follows the exit.
    #[test]
    fn any_input_sequence_is_safe(inputs in proptest::collection::vec(input(), 0..60), wait in proptest::option::of(0u64..3000)) {
        let mut r = Runner::new(config(false, wait.map(Duration::from_millis)));
        let mut now = 0u64;
        r.start(at(now));
        let (mut spawns, mut exits) = (0, 0);
        let mut check = |r: &mut Runner| {
            while let Some(o) = r.poll_output() {
                match o {
                    Output::Spawn(_) => spawns += 1,
                    Output::Exit(_) => exits += 1,
                    Output::Log(_) => {}
                    other => assert_eq!(exits, 0, "{other:?} after exit"),
                }
            }
        };
        for i in inputs {
            match i {
                Input::Response(id, kind, n) => r.handle_response(at(now), ReqId(id), response(kind, n)),
                Input::Watch(id, kind) => {
                    let event = match kind {
                        0 => WatchEvent::Delete { key: "k".into(), mod_rev: Revision(1) },
                        1 => WatchEvent::Put(own_kv(1)),
                        2 => WatchEvent::Compacted,
                        _ => WatchEvent::Broken("x".into()),
                    };
                    r.handle_watch(at(now), WatchId(id), event)
                }
                Input::Timeout(d) => {
                    now += d;
                    r.handle_timeout(at(now))
                }
                Input::Signal => r.handle_signal(at(now), WrapperSignal::Interrupt),
                Input::ChildStarted => r.handle_child_started(at(now), 5),
                Input::ChildExit(c) => r.handle_child_exit(at(now), if c < 0 { ChildStatus::Vanished } else { ChildStatus::Exited(c) }),
            }
            check(&mut r);
        }
        prop_assert!(spawns <= 1);
        prop_assert!(exits <= 1);
    }
}

/// `--step-down`: the leader listens from its token on; a request naming another token is
/// ignored, one naming its own stops the child, and the run resigns and exits 0.
#[test]
fn a_step_down_request_for_our_token_stops_the_child_and_exits_0() {
    let (mut r, out) = holding(None);
    let listen = out.iter().find_map(|o| match o {
        Output::Watch { id, key, start_rev, prefix: true } if key == "/conch/v1/stepdown/x/" => Some((*id, *start_rev)),
        _ => None,
    });
    let Some((watch, start_rev)) = listen else { panic!("no step-down watch: {out:?}") };
    assert_eq!(start_rev, Revision(5), "listens from its own key's revision");
    r.handle_child_started(at(4), 99);
    let request = |rev: i64| {
        WatchEvent::Put(Kv {
            key: "/conch/v1/stepdown/x/2a".into(),
            create_rev: Revision(9),
            mod_rev: Revision(9),
            lease: LeaseId(0x2a),
            value: crate::step_down::Request { rev, host: "ops".into(), pid: 7 }.encode(),
        })
    };
    r.handle_watch(at(10), watch, request(4));
    assert!(actions(&mut r).is_empty(), "a request for another leader is ignored");
    r.handle_watch(at(11), watch, request(5));
    let out = actions(&mut r);
    assert!(matches!(out.as_slice(), [Output::Terminate { kill_at, .. }] if *kill_at == at(5_011)), "{out:?}");
    assert!(r.stepped_down());
    r.handle_watch(at(12), watch, request(5));
    assert!(actions(&mut r).is_empty(), "asked twice, stopped once");
    r.handle_child_exit(at(60), ChildStatus::Signaled(15));
    let out = actions(&mut r);
    assert!(out.contains(&Output::CancelWatch(watch)), "{out:?}");
    assert_eq!(release_and_exit(&mut r, at(61), &out), vec![Output::Exit(ExitCode::OK)]);
    assert!(!r.ended_by_etcd());
}

/// A run that may wait asks once, at its start, for a shim to be got ready; a nonblocking
/// one does not.
#[test]
fn a_run_that_may_wait_asks_for_a_prepared_shim_once() {
    for (wait, prepared) in [(None, 1), (Some(Duration::from_secs(3)), 1), (Some(Duration::ZERO), 0)] {
        let mut r = Runner::new(config(true, wait));
        r.start(at(0));
        let out = actions(&mut r);
        assert_eq!(out.iter().filter(|o| **o == Output::Prepare).count(), prepared, "{wait:?}: {out:?}");
        r.start(at(1));
        assert!(!actions(&mut r).contains(&Output::Prepare), "once");
    }
}
