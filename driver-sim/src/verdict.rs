//! A checker's verdict ([`Violation`]) and what several checkers share to make one: the
//! time format of the reports and the per-client fault spans in which a child may overlap
//! a successor ([`excuses`]), or in which a wrapper may have been stopped
//! ([`wrapper_stopped`]). A leaf: the checkers import it, it imports no checker.
use conch_checkers::Kind;

use crate::options::SimOptions;
use crate::record::FaultRecord;

/// One broken guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which checker.
    pub checker: &'static str,
    /// What it saw.
    pub detail: String,
    /// When it happened (ns of simulated time), where one instant says it; the timeline
    /// marks it there.
    pub at: Option<u64>,
}

impl Violation {
    pub(crate) fn at(mut self, t: u64) -> Violation {
        self.at = Some(t);
        self
    }
}

pub(crate) fn violation(checker: &'static str, detail: String) -> Violation {
    Violation { checker, detail, at: None }
}

pub(crate) fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

/// Whether client `client`'s wrapper may have been stopped or frozen at some time in
/// `from..=to` (ns): a pause, a freeze, or a fault site of that client (the
/// freeze-on-answer site freezes its host), so its timers may have fired late.
pub(crate) fn wrapper_stopped(faults: &[FaultRecord], client: usize, from: u64, to: u64) -> bool {
    faults.iter().any(|f| {
        f.client == Some(client)
            && matches!(f.kind, Kind::Pause | Kind::Freeze | Kind::Site(_))
            && f.from <= to
            && f.to >= from
    })
}

/// Whether the whole host of `client` (its shim and child too, not the wrapper alone) was
/// frozen at some time in `[from, to]`: a freeze, or a fault site of that client.
pub(crate) fn host_frozen(faults: &[FaultRecord], client: usize, from: u64, to: u64) -> bool {
    faults.iter().any(|f| {
        f.client == Some(client) && matches!(f.kind, Kind::Freeze | Kind::Site(_)) && f.from <= to && f.to >= from
    })
}

/// Per client, the spans in which its child may overlap a successor.
pub(crate) fn excuses(opts: &SimOptions, faults: &[FaultRecord]) -> Vec<(usize, u64, u64)> {
    let ttl = opts.ttl.as_nanos() as u64;
    let kill_after = opts.kill_after.as_nanos() as u64;
    let hears = 2 * 2 * opts.latency_us.1 * 1000 + 300_000_000;
    let mut spans = Vec::new();
    for f in faults {
        let Some(client) = f.client else { continue };
        match f.kind {
            Kind::Freeze => spans.push((client, f.from, f.to + kill_after + 300_000_000)),
            Kind::Revoke | Kind::KeyDelete => {
                // The wrapper hears of it within a round trip and its child is dead a
                // kill-after later; if it cannot hear (cut, stopped, etcd away, a fault site),
                // the deadline rule bounds it instead, a TTL later.
                let horizon = f.from + ttl + hears;
                let deaf = faults.iter().any(|g| {
                    !std::ptr::eq(g, f)
                        && g.client.is_none_or(|c| c == client)
                        && g.kind != Kind::Compact
                        && g.from <= horizon
                        && g.to >= f.from
                });
                let until = f.from + hears + kill_after + if deaf { ttl + kill_after } else { 0 };
                spans.push((client, f.from, until));
            }
            _ => {}
        }
    }
    spans
}
