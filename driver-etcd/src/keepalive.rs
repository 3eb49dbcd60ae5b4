//! The lease keepalive stream: answers come back in request order and are paired with
//! the core's request ids here, so the core can apply the deadline rule to send times.
//!
//! etcd-client opens a stream by sending the first keepalive and awaiting its answer;
//! that first request is the one that asked for a fresh stream, and its answer is
//! reported as the raw fact etcd-client leaves us (`KeepAliveOpened`, an error as it came):
//! what either means for the deadline is the session's rule, not this file's. A stream
//! that errors or ends fails every request still waiting on it.
use std::collections::VecDeque;

use conch_core::Outcome;
use conch_core::{EtcdError, EtcdResponse, LeaseId, ReqId};
use etcd_client::LeaseKeeper;
use tokio::sync::mpsc::UnboundedSender;

use crate::calls::map_error;
use crate::events::{DriverEvent, StreamNews};
use crate::pool::{stream_outcome, Pool};

/// The wrapper's keepalive state.
pub struct KeepAlives {
    pool: Pool,
    generation: u64,
    keeper: Option<LeaseKeeper>,
    /// Requests sent on the current stream, oldest first, awaiting answers.
    pending: VecDeque<ReqId>,
    /// Requests made before the current stream finished opening.
    unsent: usize,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The lease the current stream keeps alive (a new session needs a new stream).
    stream_lease: Option<LeaseId>,
    /// The member the current stream is open on.
    stream_endpoint: usize,
}

impl KeepAlives {
    /// Keepalives through `client`.
    pub fn new(pool: Pool) -> KeepAlives {
        KeepAlives {
            pool,
            generation: 0,
            keeper: None,
            pending: VecDeque::new(),
            unsent: 0,
            task: None,
            stream_lease: None,
            stream_endpoint: 0,
        }
    }

    /// Sends one keepalive for request `id`.
    pub async fn send(&mut self, id: ReqId, lease: LeaseId, fresh_stream: bool, events: &UnboundedSender<DriverEvent>) {
        if fresh_stream && self.task.is_some() {
            // An earlier keepalive went unanswered for the core's retry interval.
            self.pool.report(self.stream_endpoint, Outcome::TimedOut);
        }
        let moved = self.stream_endpoint != self.pool.pinned();
        if fresh_stream || moved || self.task.is_none() || self.stream_lease != Some(lease) {
            self.open(id, lease, events);
            return;
        }
        self.pending.push_back(id);
        match self.keeper.as_mut() {
            Some(keeper) => {
                if let Err(e) = keeper.keep_alive().await {
                    let _ = events.send(DriverEvent::KeepAlive(self.generation, StreamNews::Closed(e.to_string())));
                }
            }
            None => self.unsent += 1,
        }
    }

    /// Handles news from a stream task; returns the answers to feed the core.
    pub async fn handle(&mut self, generation: u64, news: StreamNews) -> Vec<(ReqId, EtcdResponse)> {
        if generation != self.generation {
            return Vec::new();
        }
        match news {
            StreamNews::Opened(mut keeper) => {
                for _ in 0..std::mem::take(&mut self.unsent) {
                    if keeper.keep_alive().await.is_err() {
                        break;
                    }
                }
                self.keeper = Some(keeper);
                Vec::new()
            }
            StreamNews::Answer(response) => self.pending.pop_front().map(|id| (id, response)).into_iter().collect(),
            StreamNews::Closed(why) => {
                self.keeper = None;
                self.task = None;
                self.unsent = 0;
                self.pending
                    .drain(..)
                    .map(|id| (id, EtcdResponse::Error(EtcdError::Unavailable(why.clone()))))
                    .collect()
            }
        }
    }

    fn open(&mut self, id: ReqId, lease: LeaseId, events: &UnboundedSender<DriverEvent>) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.generation += 1;
        self.stream_lease = Some(lease);
        self.keeper = None;
        self.unsent = 0;
        // Answers of the old stream will never come; the core already counts them missed.
        self.pending.clear();
        self.pending.push_back(id);
        let generation = self.generation;
        let (pool, endpoint) = (self.pool.clone(), self.pool.pinned());
        self.stream_endpoint = endpoint;
        let events = events.clone();
        self.task = Some(tokio::spawn(async move {
            let send = |news| events.send(DriverEvent::KeepAlive(generation, news)).is_ok();
            let mut client = match pool.client(endpoint, pool.config().call_timeout()).await {
                Ok(client) => client,
                Err(failure) => {
                    pool.report(endpoint, crate::pool::outcome_of(&failure));
                    send(StreamNews::Answer(failure));
                    send(StreamNews::Closed("cannot connect".into()));
                    return;
                }
            };
            let timeout = pool.config().call_timeout();
            let opened = match tokio::time::timeout(timeout, client.lease_keep_alive(lease.0)).await {
                Ok(opened) => opened,
                Err(_) => {
                    // A silent member: the stream never opened.
                    pool.report(endpoint, Outcome::TimedOut);
                    let why = format!("{} {}ms (keepalive stream)", crate::calls::NO_ANSWER, timeout.as_millis());
                    send(StreamNews::Answer(EtcdResponse::Error(EtcdError::Unavailable(why.clone()))));
                    send(StreamNews::Closed(why));
                    return;
                }
            };
            let (keeper, mut stream) = match opened {
                Ok(pair) => pair,
                Err(e) => {
                    pool.report(endpoint, stream_outcome(&e));
                    send(StreamNews::Answer(EtcdResponse::Error(map_error(&e))));
                    send(StreamNews::Closed(e.to_string()));
                    return;
                }
            };
            // etcd-client consumed the first answer while opening and checked it was
            // positive: that is all we know, and all we report (the session knows its TTL).
            if !send(StreamNews::Answer(EtcdResponse::KeepAliveOpened)) || !send(StreamNews::Opened(keeper)) {
                return;
            }
            loop {
                match stream.message().await {
                    Ok(Some(r)) => {
                        if !send(StreamNews::Answer(EtcdResponse::KeepAlive { ttl_s: r.ttl() })) {
                            return;
                        }
                    }
                    Ok(None) => {
                        pool.report(endpoint, Outcome::Unavailable);
                        send(StreamNews::Closed("keepalive stream ended".into()));
                        return;
                    }
                    Err(e) => {
                        pool.report(endpoint, stream_outcome(&e));
                        send(StreamNews::Closed(e.to_string()));
                        return;
                    }
                }
            }
        }));
    }
}
