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
    assert_eq!(t.waiting_interval, ms(3333) + Duration::from_nanos(333_333));
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
fn a_waiters_silence_ends_the_session_at_kill_at_not_term_at() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    s.set_waiting(true);
    let (term_at, kill_at) = (s.term_at().unwrap(), s.kill_at().unwrap());
    assert!(term_at < kill_at);
    assert_eq!(s.handle_timeout(term_at, &mut out), None, "a waiter outlives term_at");
    assert!(s.poll_timeout().unwrap() <= kill_at);
    assert_eq!(s.handle_timeout(kill_at, &mut out), Some(SessionEvent::Lost(LossReason::DeadlinePassed)));
    // Holding again: term_at counts.
    let mut out = Outbox::default();
    let mut h = granted_session(&mut out);
    h.set_waiting(true);
    h.set_waiting(false);
    let term_at = h.term_at().unwrap();
    assert_eq!(h.handle_timeout(term_at, &mut out), Some(SessionEvent::Lost(LossReason::DeadlinePassed)));
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

#[test]
fn a_waiters_cadence_leaves_term_at_ahead() {
    // keepalive_interval ≤ waiting_interval, and a renewal sent at s leaves term_at at
    // least 2 · retry_after past s + waiting_interval, for every feasible pair.
    for ttl in [2_000u64, 3_000, 5_000, 10_000, 30_000, 60_000, 3_600_000] {
        for kill_after in [0u64, 100, 790, 1_000, 5_000, 8_750, 30_000, 600_000] {
            let Ok(t) = Timings::derive(ms(ttl), ms(kill_after)) else { continue };
            let budget = t.term_within();
            assert!(t.keepalive_interval <= t.waiting_interval, "ttl {ttl} kill-after {kill_after}: {t:?}");
            assert!(t.waiting_interval + 2 * t.retry_after <= budget, "ttl {ttl} kill-after {kill_after}: {t:?}");
            assert!(t.waiting_interval <= ms(ttl) / 3, "ttl {ttl} kill-after {kill_after}: {t:?}");
        }
    }
}

/// Runs `s` from `from` to `to` with every keepalive answered 1 ms after it is sent;
/// returns how many were sent and when.
fn renew_promptly(s: &mut Session, out: &mut Outbox, from: Instant, to: Instant) -> Vec<Instant> {
    let mut sent = Vec::new();
    let mut now = from;
    for _ in 0..10_000 {
        let next = s.poll_timeout().expect("a live session has a timeout");
        if next > to {
            break;
        }
        now = next.max(now);
        assert_eq!(s.handle_timeout(now, out), None, "lost at {now:?}");
        for (id, _) in drain_requests(out) {
            sent.push(now);
            now = now.plus(ms(1));
            s.handle_response(now, id, EtcdResponse::KeepAlive { ttl_s: 10 }, out);
        }
    }
    sent
}

#[test]
fn a_waiter_renews_at_its_own_cadence_and_a_holder_at_once() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    s.set_waiting(true);
    // Grant sent at 0: the first renewal is due at 3.33 s, not 1.58 s.
    assert_eq!(s.poll_timeout(), Some(Instant::from_nanos(3_333_333_333)));
    let sent = renew_promptly(&mut s, &mut out, at(0), at(60_000));
    assert!((17..=18).contains(&sent.len()), "a waiter sent {} keepalives in 60 s", sent.len());
    // Acquired 3 s after the last renewal (sent at `last`): the holder's cadence is
    // overdue, so a keepalive goes out at the first timeout, and term_at is still ahead.
    let last = *sent.last().unwrap();
    let acquired = last.plus(ms(3_000));
    assert!(s.term_at().unwrap() > acquired, "term_at {:?} acquired {acquired:?}", s.term_at());
    s.set_waiting(false);
    assert_eq!(s.poll_timeout(), Some(last.plus(s.timings.unwrap().keepalive_interval)));
    assert_eq!(s.handle_timeout(acquired, &mut out), None);
    assert_eq!(drain_requests(&mut out).len(), 1, "the holder renews at once");
    // From there on, the holder's cadence.
    let mut out = Outbox::default();
    let mut h = granted_session(&mut out);
    let sent = renew_promptly(&mut h, &mut out, at(0), at(60_000));
    assert!((37..=38).contains(&sent.len()), "a holder sent {} keepalives in 60 s", sent.len());
}

#[test]
fn a_waiter_keeps_a_retry_due_sooner() {
    let mut out = Outbox::default();
    let mut s = granted_session(&mut out);
    s.set_waiting(true);
    assert_eq!(s.handle_timeout(at(3_400), &mut out), None);
    assert_eq!(drain_requests(&mut out).len(), 1);
    // Unanswered: the retry is due at 3.4 s + retry_after, whatever the cadence.
    let retry = at(3_400).plus(s.timings.unwrap().retry_after);
    assert_eq!(s.poll_timeout(), Some(retry));
    s.set_waiting(false);
    assert_eq!(s.poll_timeout(), Some(Instant::from_nanos(1_583_333_333)), "overdue at the holder's cadence");
    s.set_waiting(true);
    assert_eq!(s.poll_timeout(), Some(Instant::from_nanos(1_583_333_333)), "a retry is not put off");
}
