//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so the corpus replay test
//! (`driver-sim/tests/fuzz_corpus.rs`) runs exactly what the fuzzer runs, on stable Rust.
//! Each takes any bytes; a panic is a finding.
use std::time::Duration;

use conch_core::cron::Job;
use conch_core::keys::{member_key, parse_key, Member, Name, ParsedKey};
use conch_core::schedule::Schedule;
use conch_core::values::Holder;
use conch_core::{
    ChildStatus, EtcdError, EtcdResponse, Input, Instant, Kv, LeaseId, Machine, Now, Output, Revision, Service,
    WatchEvent, WrapperSignal,
};

use crate::options::{FaultKind, Scenario, SimArgs, SimOptions};
use crate::plan::PlannedFault;
use crate::run::run_plan;

pub mod cron_oracle;

/// Schedule parsing and next-tick math: the next tick is strictly later, stepping from it
/// goes forward too, and each step agrees with a brute-force minute scan of the same
/// expression over a bounded window ([`cron_oracle`]); `@every` with its formula.
pub fn schedule(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (expr, tz) = match text.split_once('\n') {
        Some((e, z)) => (e.to_string(), Some(z.trim().to_string())),
        None => (text.to_string(), None),
    };
    let Ok(schedule) = Schedule::parse(&expr, tz.as_deref()) else { return };
    let naive = cron_oracle::Naive::parse(&expr);
    let every = every_period(&expr);
    let mut after = 1_700_000_000 + (data.len() as i64 * 7919) % 400_000_000;
    for _ in 0..4 {
        let next = schedule.next_after(after);
        if let Some(period) = every {
            assert_eq!(next, Some((after.div_euclid(period) + 1) * period), "{expr:?}: @every after {after}");
        }
        if let Some(expect) = naive.as_ref().and_then(|n| n.expect(schedule.tz(), after)) {
            match expect {
                cron_oracle::Expect::At(t) => {
                    assert_eq!(next, Some(t), "{expr:?} {tz:?}: after {after} the scan finds {t}")
                }
                cron_oracle::Expect::NoneUpTo(last) => assert!(
                    next.is_none_or(|n| n > last),
                    "{expr:?} {tz:?}: after {after} next {next:?}, the scan finds none up to {last}"
                ),
            }
        }
        match next {
            Some(next) => {
                assert!(next > after, "{expr:?} {tz:?}: next {next} not after {after}");
                after = next;
            }
            None => break,
        }
    }
}

/// The period of an `@every` expression, read the naive way.
fn every_period(expr: &str) -> Option<i64> {
    let lower = expr.trim().to_ascii_lowercase();
    let lower = match lower.strip_prefix("cron_tz=") {
        Some(rest) => rest.split_once(char::is_whitespace)?.1.trim().to_string(),
        None => lower,
    };
    let d = conch_core::duration::parse(lower.strip_prefix("@every")?.trim()).ok()?;
    i64::try_from(d.as_secs()).ok().filter(|p| *p >= 1)
}

/// Key, name, duration and JSON decoding: no panic, and whatever decodes re-encodes to
/// itself (encode(decode(x)) decodes to decode(x); for the canonical forms — lease hex,
/// holder keys — the text itself comes back).
pub fn decode(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = Name::new(&text) {
        assert_eq!(name.as_str(), text, "a name is its text");
        let key = member_key(&conch_core::keys::elect_prefix(&name), LeaseId(0x1234));
        assert_eq!(
            parse_key(&key),
            Ok(ParsedKey::Elect { office: name.clone(), member: Member::Lease(LeaseId(0x1234)) }),
            "{key}"
        );
    }
    if let Ok(parsed) = parse_key(&text) {
        assert_eq!(key_of(&parsed), text, "a parsed key re-encodes to itself");
    }
    if let Some(lease) = conch_core::keys::parse_lease_hex(&text) {
        assert_eq!(lease.to_string(), text, "lease hex is canonical");
    }
    if let Ok(d) = conch_core::duration::parse(&text) {
        assert_eq!(conch_core::duration::parse(&conch_core::duration::format(d)), Ok(d), "{text:?}");
    }
    if let Some(holder) = Holder::decode(data) {
        assert_eq!(Holder::decode(&holder.encode()), Some(holder));
    }
    if let Ok(job) = Job::decode(data) {
        let again = serde_json::to_vec(&job.spec).expect("a job spec serializes");
        assert_eq!(Job::decode(&again).as_ref(), Ok(&job), "a job spec re-encodes to itself");
    }
    round_trip::<conch_core::cron::Claim>(data);
    round_trip::<conch_core::cron::RunResult>(data);
}

/// The key a parsed key came from.
fn key_of(parsed: &ParsedKey) -> String {
    let member = |m: &Member| match m {
        Member::Lease(lease) => lease.to_string(),
        Member::Other(s) => s.clone(),
    };
    match parsed {
        ParsedKey::Elect { office, member: m } => format!("{}{}", conch_core::keys::elect_prefix(office), member(m)),
        ParsedKey::Sema { name, max, member: m } => {
            format!("{}{}", conch_core::keys::sema_prefix(name, *max), member(m))
        }
        other => panic!("a parsed key of an unknown kind: {other:?}"),
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let again = serde_json::to_vec(&value).expect("a decoded value serializes");
        assert_eq!(serde_json::from_slice::<T>(&again).ok(), Some(value), "{}", String::from_utf8_lossy(data));
    }
}

/// Any sequence of inputs to a wrapper's machine: answers of any kind to its requests,
/// watch events, child reports, signals, timers. The core's own `assert!`s hold (and,
/// under `cargo fuzz -a`, its debug assertions and overflow checks), every drain ends,
/// no request or watch id is used twice, and no child is spawned while an earlier one
/// has not been reported gone (a wrapper runs one command at a time).
pub fn machine_inputs(data: &[u8]) {
    let name = Name::new("fz").expect("a valid name literal");
    let spec = if data.first().is_some_and(|b| b.is_multiple_of(2)) {
        conch_core::HoldSpec::office(name)
    } else {
        conch_core::HoldSpec::semaphore(name, 2)
    };
    let run = conch_core::RunConfig {
        spec,
        holder: Holder {
            host: "h".into(),
            pid: 1,
            started: "s".into(),
            cmd: None,
            held_since: None,
            value: None,
            priority: None,
        },
        argv: vec!["c".into()],
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(2),
        wait: data.get(1).map(|b| Duration::from_millis(*b as u64 * 100)),
        hooks: Default::default(),
    };
    let mut m =
        Service::new(conch_core::ServiceConfig { run, restart: data.get(2).is_some_and(|b| b % 2 == 1), seed: 1 });
    let mut t = 1_000_000_000u64;
    m.start(Instant::from_nanos(t));
    let mut requests = Vec::new();
    let mut watches = Vec::new();
    let mut children = Vec::new();
    let mut seen = Ids::default();
    for chunk in data.chunks(3).take(2000) {
        for o in drain_all(&mut m) {
            match o {
                Output::Etcd { id, .. } => {
                    assert!(seen.requests.insert(id), "request id {id:?} used twice");
                    requests.push(id)
                }
                Output::Watch { id, .. } => {
                    assert!(seen.watches.insert(id), "watch id {id:?} used twice");
                    watches.push(id)
                }
                Output::Spawn(s) => {
                    assert!(children.is_empty(), "spawned {:?} while {children:?} still runs", s.child);
                    children.push(s.child)
                }
                // Nothing of these comes back as an input the fuzzer can aim.
                Output::CancelWatch(_)
                | Output::Deadlines { .. }
                | Output::Terminate { .. }
                | Output::KillGroup(_)
                | Output::SignalGroup { .. }
                | Output::RunHook(_)
                | Output::KillHook(_)
                | Output::Print(_)
                | Output::Prepare
                | Output::Exit(_)
                | Output::Log(_) => {}
            }
        }
        let (op, a, b) = (chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0));
        t += (a as u64) * 10_000_000;
        let now = Now { mono: Instant::from_nanos(t), wall_ms: (t / 1_000_000) as i64 };
        let rev = Revision(b as i64);
        match op % 8 {
            0 | 1 if !requests.is_empty() => {
                let id = requests.remove(a as usize % requests.len());
                m.handle_input(now, Input::Response(id, response(op, a, b)));
            }
            2 if !watches.is_empty() => {
                let id = watches[a as usize % watches.len()];
                let event = match b % 4 {
                    0 => WatchEvent::Delete { key: "/conch/v1/elect/fz/1".into(), mod_rev: rev },
                    1 => WatchEvent::Compacted,
                    2 => WatchEvent::Broken("x".into()),
                    _ => WatchEvent::Put(kv(b)),
                };
                m.handle_input(now, Input::Watch(id, event));
            }
            3 if !children.is_empty() => m.handle_input(now, Input::ChildStarted(children[0], 7)),
            4 if !children.is_empty() => {
                let child = children.remove(0);
                m.handle_input(now, Input::ChildExit(child, ChildStatus::Exited(b as i32)));
            }
            5 => {
                m.handle_input(now, Input::Signal([WrapperSignal::Terminate, WrapperSignal::Interrupt][b as usize % 2]))
            }
            _ => m.handle_input(now, Input::Timeout),
        }
    }
    drain_all(&mut m);
}

/// Every id a machine has handed out.
#[derive(Default)]
struct Ids {
    requests: std::collections::BTreeSet<conch_core::ReqId>,
    watches: std::collections::BTreeSet<conch_core::WatchId>,
}

/// Drains one input's outputs; a drain that does not end within a bound is a finding.
fn drain_all(m: &mut Service) -> Vec<Output> {
    let mut outputs = Vec::new();
    conch_core::drain(m, |o| outputs.push(o));
    assert!(conch_core::Machine::poll_output(m).is_none(), "a drain did not end after {} outputs", outputs.len());
    outputs
}

fn kv(b: u8) -> Kv {
    Kv {
        key: format!("/conch/v1/elect/fz/{b:x}"),
        create_rev: Revision(b as i64),
        mod_rev: Revision(b as i64 + 1),
        lease: LeaseId(b as i64),
        value: Vec::new(),
    }
}

fn response(op: u8, a: u8, b: u8) -> EtcdResponse {
    match (op / 8) % 9 {
        0 => EtcdResponse::Granted { lease: LeaseId(a as i64 + 1), ttl_s: b as i64 % 20 },
        1 => EtcdResponse::KeepAlive { ttl_s: b as i64 % 12 },
        2 => EtcdResponse::Put {
            created: b.is_multiple_of(2),
            create_rev: Revision(a as i64),
            lease: LeaseId(a as i64 + 1),
        },
        3 => EtcdResponse::Range { header_rev: Revision(300), kvs: (0..b % 5).map(kv).collect() },
        4 => EtcdResponse::Deleted { deleted: b.is_multiple_of(2) },
        5 => EtcdResponse::Revoked,
        6 => EtcdResponse::Touched { touched: b.is_multiple_of(2) },
        7 => EtcdResponse::Error(EtcdError::Unavailable("x".into())),
        _ => EtcdResponse::Error(EtcdError::LeaseNotFound),
    }
}

/// A simulated run under a fault plan read from the bytes: every guarantee must hold.
pub fn fault_plan(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else { return };
    let scenario = [Scenario::Elect, Scenario::Sema, Scenario::Cron, Scenario::Mixed][head as usize % 4];
    let args = SimArgs { duration: Duration::from_secs(60), ..SimArgs::new(scenario) };
    let mut opts = SimOptions::draw(head as u64, &args);
    opts.faults = FaultKind::ALL.to_vec();
    let safety_ms = opts.safety.as_millis() as u64;
    let plan: Vec<PlannedFault> = rest
        .chunks(6)
        .take(64)
        .map(|c| {
            let at = u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
            PlannedFault {
                at_ms: 1500 + at * safety_ms / 65_536,
                kind: FaultKind::ALL[*c.get(2).unwrap_or(&0) as usize % FaultKind::ALL.len()],
                target: *c.get(3).unwrap_or(&0) as usize,
                hold_ms: 50 + *c.get(4).unwrap_or(&0) as u64 * 60,
                param: (*c.get(5).unwrap_or(&0) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            }
        })
        .collect();
    let report = run_plan(opts, plan);
    assert!(report.passed(), "{:?}", report.violations);
}

/// `conch txn`'s stdin parser and `conch put`'s guard: no panic on any bytes, every error
/// is one line, and whatever parses renders back to text that parses to the same
/// transaction.
pub fn txn(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match conch_core::fenced::parse_txn(&text) {
        Ok(txn) => {
            let again = conch_core::fenced::render(&txn);
            assert_eq!(conch_core::fenced::parse_txn(&again), Ok(txn), "{again:?}");
        }
        Err(e) => assert!(!e.contains('\n'), "a two-line error: {e:?}"),
    }
    let (key, rev) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(guard) = conch_core::fenced::guard_from_env(Some(key), Some(rev)) {
        assert!(guard.rev.0 > 0 && guard.key == key);
    }
}
