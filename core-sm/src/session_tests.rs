//! The session's tests: timings, the deadline rule, keepalive answers.
use super::*;
use crate::output::Output;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn at(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

#[test]
fn timings_at_the_defaults() {
    let t = Timings::derive(Duration::from_secs(10), Duration::from_secs(5)).unwrap();
    assert_eq!(t.margin, ms(250));
    assert_eq!(t.keepalive_interval, ms(1583) + Duration::from_nanos(333_333));
    assert_eq!(t.retry_after, ms(593) + Duration::from_nanos(750_000));
    let d = at(10_000);
    assert_eq!(t.term_at(d), at(4_750));
    assert_eq!(t.kill_at(d), at(9_750));
}

#[test]
fn infeasible_timings_name_the_numbers() {
    let table: &[(u64, u64, bool)] = &[
        (10_000, 5_000, true),
        (10_000, 10_000, false),
        (10_000, 8_750, true),
        (10_000, 8_751, false),
        (2_000, 0, true),
        (1_000, 0, false),
    ];
    for (ttl, kill_after, ok) in table {
        assert_eq!(Timings::derive(ms(*ttl), ms(*kill_after)).is_ok(), *ok, "ttl {ttl} kill-after {kill_after}");
    }
    let msg = Timings::derive(ms(10_000), ms(10_000)).unwrap_err().to_string();
    assert!(
        msg.contains("--kill-after 10s")
            && msg.contains("--ttl 10s")
            && msg.contains("250ms")
            && msg.contains("use --ttl 12s with --kill-after 10s")
            && msg.contains("or --kill-after 8s750ms with --ttl 10s"),
        "{msg}"
    );
    // A TTL too short for any kill-after suggests only a longer TTL.
    let msg = Timings::derive(ms(1_000), ms(0)).unwrap_err().to_string();
    assert!(msg.contains("use --ttl 2s with --kill-after 0s") && !msg.contains(", or"), "{msg}");
}

#[test]
fn the_suggested_pairs_work_and_are_tight() {
    for kill_after in [0u64, 1, 790, 5_000, 8_750, 10_000, 59_999, 600_000] {
        let ttl = Timings::ttl_min(ms(kill_after));
        assert!(Timings::derive(ttl, ms(kill_after)).is_ok(), "kill-after {kill_after}: ttl {ttl:?}");
        assert!(
            Timings::derive(ttl - ms(1_000), ms(kill_after)).is_err(),
            "kill-after {kill_after}: {ttl:?} not tight"
        );
    }
    assert_eq!(Timings::kill_after_max(ms(5_000)), Some(ms(3_775)));
    assert_eq!(Timings::kill_after_max(ms(2_000)), Some(ms(790)));
    assert_eq!(Timings::kill_after_max(ms(1_000)), None);
    for ttl in [2_000u64, 5_000, 10_000, 3_600_000] {
        let max = Timings::kill_after_max(ms(ttl)).unwrap();
        assert!(Timings::derive(ms(ttl), max).is_ok() && Timings::derive(ms(ttl), max + ms(1)).is_err());
    }
}

fn drain_requests(out: &mut Outbox) -> Vec<(ReqId, EtcdRequest)> {
    let mut reqs = Vec::new();
    while let Some(o) = out.pop() {
        if let Output::Etcd { id, request } = o {
            reqs.push((id, request));
        }
    }
    reqs
}

fn granted_session(out: &mut Outbox) -> Session {
    let mut s = Session::new(Duration::from_secs(10), Duration::from_secs(5));
    s.start(at(0), out);
    let (id, _) = drain_requests(out)[0].clone();
    let ev = s.handle_response(at(3), id, EtcdResponse::Granted { lease: LeaseId(7), ttl_s: 10 }, out);
    assert_eq!(ev, Some(SessionEvent::Granted));
    s
}

#[test]
fn deadline_counts_from_the_send_time() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    // D counts from when the grant was sent (0), not answered (3).
    assert_eq!(s.deadline(), Some(at(10_000)));
    assert_eq!(s.term_at(), Some(at(4_750)));
    // The first keepalive goes out at the cadence.
    assert_eq!(s.poll_timeout(), Some(Instant::from_nanos(1_583_333_333)));
    assert_eq!(s.handle_timeout(at(1_600), &mut out), None);
    let reqs = drain_requests(&mut out);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].1, EtcdRequest::KeepAlive { lease: LeaseId(7), fresh_stream: false });
    // Acknowledged late: D still counts from the send instant.
    let ev = s.handle_response(at(2_500), reqs[0].0, EtcdResponse::KeepAlive { ttl_s: 10 }, &mut out);
    assert_eq!(ev, Some(SessionEvent::Extended));
    assert_eq!(s.deadline(), Some(at(11_600)));
}

#[test]
fn deadline_never_moves_back() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    s.handle_timeout(at(1_600), &mut out);
    let first = drain_requests(&mut out)[0].0;
    s.handle_timeout(at(2_200), &mut out); // unanswered: retry on a fresh stream
    let second = drain_requests(&mut out);
    assert_eq!(second[0].1, EtcdRequest::KeepAlive { lease: LeaseId(7), fresh_stream: true });
    // A smaller TTL in a later answer does not pull D back.
    assert_eq!(
        s.handle_response(at(2_300), second[0].0, EtcdResponse::KeepAlive { ttl_s: 10 }, &mut out),
        Some(SessionEvent::Extended)
    );
    assert_eq!(s.handle_response(at(2_400), first, EtcdResponse::KeepAlive { ttl_s: 1 }, &mut out), None);
    assert_eq!(s.deadline(), Some(at(12_200)));
}

#[test]
fn an_opened_stream_renews_to_the_granted_ttl() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    s.handle_timeout(at(1_600), &mut out);
    let id = drain_requests(&mut out)[0].0;
    assert_eq!(s.handle_response(at(1_700), id, EtcdResponse::KeepAliveOpened, &mut out), Some(SessionEvent::Extended));
    // Sent at 1.6 s, granted 10 s: the deadline is 11.6 s.
    assert_eq!(s.deadline(), Some(at(11_600)));
}

#[test]
fn explicit_losses_act_at_once() {
    let table = [EtcdResponse::KeepAlive { ttl_s: 0 }, EtcdResponse::Error(EtcdError::LeaseNotFound)];
    for response in table {
        let mut out = Outbox::default();
        let mut s = granted_session(&mut out);
        s.handle_timeout(at(1_600), &mut out);
        let id = drain_requests(&mut out)[0].0;
        assert_eq!(
            s.handle_response(at(1_601), id, response, &mut out),
            Some(SessionEvent::Lost(LossReason::LeaseGone))
        );
        assert_eq!(s.poll_timeout(), None);
    }
}

#[test]
fn silence_ends_the_session_at_term_at() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    let mut sent = 0;
    let mut now = at(0);
    let mut lost_at = None;
    for _ in 0..100 {
        let Some(next) = s.poll_timeout() else { break };
        now = next.max(now);
        if let Some(SessionEvent::Lost(reason)) = s.handle_timeout(now, &mut out) {
            assert_eq!(reason, LossReason::DeadlinePassed);
            lost_at = Some(now);
            break;
        }
        sent += drain_requests(&mut out).len();
    }
    assert_eq!(lost_at, Some(at(4_750)));
    assert!(sent >= 5, "retries while silent: {sent}");
}

#[test]
fn a_three_second_outage_does_not_end_the_session() {
    // etcd answers nothing from 1.7 s to 4.7 s, then answers every keepalive at once.
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    let mut now = at(0);
    let outage = (at(1_700), at(4_700));
    let mut pending: Vec<ReqId> = Vec::new();
    for _ in 0..1000 {
        let next = s.poll_timeout().unwrap();
        now = next.max(now.plus(ms(1)));
        if now > at(8_000) {
            break;
        }
        assert_eq!(s.handle_timeout(now, &mut out), None, "lost at {now:?}");
        pending.extend(drain_requests(&mut out).into_iter().map(|(id, _)| id));
        if now < outage.0 || now >= outage.1 {
            for id in pending.drain(..) {
                s.handle_response(now, id, EtcdResponse::KeepAlive { ttl_s: 10 }, &mut out);
            }
        }
    }
    assert!(s.term_at().unwrap() > at(8_000));
}
