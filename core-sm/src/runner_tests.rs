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
            priority: None,
        },
        argv: vec!["c".into()],
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(5),
        wait,
        hooks: HookConfig::default(),
        sabotage: Default::default(),
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
    let mut r = Runner::new(config(true, wait));
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
