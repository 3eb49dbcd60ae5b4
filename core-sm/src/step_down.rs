//! Graceful hand-over (`conch elect OFFICE --step-down`): the request through etcd and
//! the holder's side of it, the [`Listener`].
//!
//! ```text
//! /conch/v1/stepdown/<office>/<requester-lease-hex>   {"rev":812,"host":"ops1","pid":77}
//! ```
//!
//! The request lives on the requester's own lease (it goes with the requester) and
//! outside the office's prefix, so it never takes a place in the queue.
//!
//! # Rules
//!
//! * The leader of an office watches the request prefix from its own key's create
//!   revision: a request written between its acquisition and the watch's start is still
//!   seen, and none meant for it can be older than its key.
//! * A request asks the leader whose token (create revision) it names, and no other: a
//!   request for an earlier leader, read late, never deposes its successor.
//! * A watch that is compacted or broken may have missed a request: the prefix is read
//!   again, then watched again from after that read.
//! * Asked, the leader stops its child (SIGTERM, SIGKILL after `--kill-after`), runs
//!   `--on-lose`, resigns and exits 0; with `--restart` it campaigns again with a new key,
//!   so at the back of the queue, after the short etcd pause, not the crash backoff
//!   ([`crate::service`]).
//! * The requester reads the office: vacant ⇒ exit 1, nothing written. Otherwise it
//!   writes the request for the leader's token and waits for that key's deletion (exit 0),
//!   at most `--wait` (default [`WAIT_DEFAULT`]; then exit 75: a leader that does not
//!   listen, an older conch or `etcdctl elect`, is not deposed); either way it deletes
//!   its request and revokes its lease.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::etcd::{EtcdRequest, EtcdResponse, Kv, WatchEvent};
use crate::ids::{LeaseId, ReqId, Revision, WatchId};
use crate::keys::{Name, ROOT};
use crate::output::{Event, Outbox, Output};

/// How long `--step-down` waits for the leader to resign when no `--wait` is given.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(60);

/// The request's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The token (create revision) of the leader asked to step down.
    pub rev: i64,
    /// Who asks (hostname).
    pub host: String,
    /// The asking process.
    pub pid: u32,
}

impl Request {
    /// One line of JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a request; `None` for anything else.
    pub fn decode(value: &[u8]) -> Option<Request> {
        serde_json::from_slice(value).ok()
    }
}

/// How a `--step-down` ended (the requester's side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDown {
    /// Nobody leads: nothing was written.
    Vacant,
    /// The leader (this host, this token) resigned.
    Resigned {
        /// Its host, as its holder record says (`?` for a foreign key).
        host: String,
        /// Its token.
        rev: Revision,
    },
    /// The leader did not resign within the wait.
    TimedOut {
        /// Its host.
        host: String,
        /// Its token.
        rev: Revision,
    },
    /// Interrupted by a signal (the request was withdrawn).
    Interrupted(i32),
}

impl StepDown {
    /// 0 resigned, 1 vacant, 75 not within the wait, 128 + n interrupted.
    pub fn exit_code(&self) -> crate::output::ExitCode {
        use crate::output::ExitCode;
        match self {
            StepDown::Resigned { .. } => ExitCode::OK,
            StepDown::Vacant => ExitCode::VACANT,
            StepDown::TimedOut { .. } => ExitCode::NOT_ACQUIRED,
            StepDown::Interrupted(n) => ExitCode(128 + n),
        }
    }
}

/// Where the requests for `office` live (with the trailing `/`).
pub fn prefix(office: &Name) -> String {
    format!("{ROOT}stepdown/{}/", office.as_str())
}

/// A requester's key.
pub fn key(office: &Name, lease: LeaseId) -> String {
    format!("{}{lease}", prefix(office))
}

/// Whether a value under the prefix asks the leader of token `rev` to step down.
pub fn asks(value: &[u8], rev: Revision) -> bool {
    Request::decode(value).is_some_and(|r| r.rev == rev.0)
}

/// The leader's listener: watches the request prefix, says when it is asked.
#[derive(Debug)]
pub struct Listener {
    prefix: String,
    token: Revision,
    watch: Option<WatchId>,
    read: Option<ReqId>,
}

impl Listener {
    /// Starts listening for requests naming `token`: a watch from that revision on.
    pub fn start(prefix: String, token: Revision, out: &mut Outbox) -> Listener {
        let watch = Some(out.watch_prefix(prefix.clone(), token));
        Listener { prefix, token, watch, read: None }
    }

    /// Whether `id` is this listener's read.
    pub fn owns(&self, id: ReqId) -> bool {
        self.read == Some(id)
    }

    /// Whether `id` is this listener's watch.
    pub fn owns_watch(&self, id: WatchId) -> bool {
        self.watch == Some(id)
    }

    /// A watch event; `true` when it asks us to step down.
    pub fn handle_watch(&mut self, id: WatchId, event: WatchEvent, out: &mut Outbox) -> bool {
        if self.watch != Some(id) {
            return false;
        }
        match event {
            WatchEvent::Put(kv) => asks(&kv.value, self.token),
            WatchEvent::Delete { .. } => false,
            WatchEvent::Compacted | WatchEvent::Broken(_) => {
                // A request may have gone by unseen: read them all, then watch again.
                out.push(Output::CancelWatch(id));
                self.watch = None;
                self.read = Some(out.request(EtcdRequest::RangePrefix { prefix: self.prefix.clone() }));
                false
            }
        }
    }

    /// The answer to the re-read; `true` when a request there asks us.
    pub fn handle_response(&mut self, id: ReqId, response: EtcdResponse, out: &mut Outbox) -> bool {
        if self.read != Some(id) {
            return false;
        }
        self.read = None;
        match response {
            EtcdResponse::Range { header_rev, kvs } => {
                self.watch = Some(out.watch_prefix(self.prefix.clone(), Revision(header_rev.0 + 1)));
                kvs.iter().any(|kv: &Kv| asks(&kv.value, self.token))
            }
            other => {
                // Not heard: the hold's own machinery decides about etcd; watch again from
                // our token so nothing is missed once etcd answers.
                out.log(Event::warn("step-down-listen-retry").with("answer", format!("{other:?}")));
                self.watch = Some(out.watch_prefix(self.prefix.clone(), self.token));
                false
            }
        }
    }

    /// Stops listening.
    pub fn stop(&mut self, out: &mut Outbox) {
        if let Some(id) = self.watch.take() {
            out.push(Output::CancelWatch(id));
        }
        self.read = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LeaseId;

    fn kv(value: &[u8]) -> Kv {
        Kv {
            key: "/conch/v1/stepdown/db/1".into(),
            create_rev: Revision(20),
            mod_rev: Revision(20),
            lease: LeaseId(1),
            value: value.to_vec(),
        }
    }

    #[test]
    fn keys_and_values() {
        let office = Name::new("db").unwrap();
        assert_eq!(prefix(&office), "/conch/v1/stepdown/db/");
        assert_eq!(key(&office, LeaseId(0x1a)), "/conch/v1/stepdown/db/1a");
        let r = Request { rev: 812, host: "ops1".into(), pid: 77 };
        assert_eq!(String::from_utf8(r.encode()).unwrap(), r#"{"rev":812,"host":"ops1","pid":77}"#);
        let table: &[(&[u8], i64, bool)] = &[
            (br#"{"rev":812,"host":"ops1","pid":77}"#, 812, true),
            (br#"{"rev":812,"host":"ops1","pid":77}"#, 813, false),
            (br#"{"rev":812,"host":"ops1","pid":77,"extra":1}"#, 812, true),
            (b"812", 812, false),
            (b"", 812, false),
        ];
        for (value, rev, want) in table {
            assert_eq!(asks(value, Revision(*rev)), *want, "{:?} {rev}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn listens_from_its_token_and_answers_only_its_own_requests() {
        let mut out = Outbox::default();
        let mut l = Listener::start("/conch/v1/stepdown/db/".into(), Revision(12), &mut out);
        let Some(Output::Watch { id, key, start_rev, prefix }) = out.pop() else { panic!("no watch") };
        assert_eq!((key.as_str(), start_rev, prefix), ("/conch/v1/stepdown/db/", Revision(12), true));
        let other = br#"{"rev":11,"host":"h","pid":1}"#;
        let mine = br#"{"rev":12,"host":"h","pid":1}"#;
        assert!(!l.handle_watch(id, WatchEvent::Put(kv(other)), &mut out));
        assert!(!l.handle_watch(WatchId(999), WatchEvent::Put(kv(mine)), &mut out));
        assert!(!l.handle_watch(id, WatchEvent::Delete { key: "k".into(), mod_rev: Revision(30) }, &mut out));
        assert!(l.handle_watch(id, WatchEvent::Put(kv(mine)), &mut out));
        // Compacted: read again, find the request there, watch from after the read.
        assert!(!l.handle_watch(id, WatchEvent::Compacted, &mut out));
        assert_eq!(out.pop(), Some(Output::CancelWatch(id)));
        let Some(Output::Etcd { id: read, request }) = out.pop() else { panic!("no read") };
        assert_eq!(request, EtcdRequest::RangePrefix { prefix: "/conch/v1/stepdown/db/".into() });
        assert!(l.owns(read));
        assert!(l.handle_response(
            read,
            EtcdResponse::Range { header_rev: Revision(40), kvs: vec![kv(mine)] },
            &mut out
        ));
        let Some(Output::Watch { id: again, start_rev, .. }) = out.pop() else { panic!("no new watch") };
        assert_eq!(start_rev, Revision(41));
        assert!(l.owns_watch(again) && !l.owns_watch(id));
        // A failed read watches again from the token.
        assert!(!l.handle_watch(again, WatchEvent::Broken("x".into()), &mut out));
        let _ = out.pop();
        let Some(Output::Etcd { id: read, .. }) = out.pop() else { panic!("no read") };
        let failed = EtcdResponse::Error(crate::etcd::EtcdError::Unavailable("down".into()));
        assert!(!l.handle_response(read, failed, &mut out));
        let watch = std::iter::from_fn(|| out.pop()).find_map(|o| match o {
            Output::Watch { start_rev, .. } => Some(start_rev),
            _ => None,
        });
        assert_eq!(watch, Some(Revision(12)));
        l.stop(&mut out);
        assert!(matches!(out.pop(), Some(Output::CancelWatch(_))));
    }
}
