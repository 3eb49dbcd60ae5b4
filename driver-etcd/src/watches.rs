//! Single-key watches, one task each, reporting into the event loop.
//!
//! A watch lives on the pinned member. When that member fails (the stream errs, or is
//! cancelled for "no leader") or the pin moves for any other reason, the task re-opens the
//! watch on the newly pinned member from the revision after the last event it delivered:
//! nothing is missed and nothing is seen twice (etcd never splits one revision's events
//! over two responses). Only when the member failed and the pin did not move (one
//! endpoint), or the watch could not be resumed [`RESUMES_MAX`] times in a row, does the
//! core hear `Broken` and re-read, as it does after a compaction.
use std::collections::BTreeMap;

use conch_core::{Input, Outcome, Revision, WatchEvent, WatchId};
use etcd_client::{EventType, WatchOptions, WatchStream};
use tokio::sync::mpsc::UnboundedSender;

use crate::calls::to_kv;
use crate::events::DriverEvent;
use crate::pool::{stream_outcome, Pool};

/// Resumes on other members without an event in between before the core is told.
pub const RESUMES_MAX: u32 = 4;

/// The live watches of one wrapper.
#[derive(Default)]
pub struct Watches {
    tasks: BTreeMap<WatchId, tokio::task::JoinHandle<()>>,
}

/// How one opened stream ended.
enum Ended {
    /// The core was told (a compaction, or its channel is gone): the task is done.
    Told,
    /// The member failed with this outcome and this text.
    Failed(Outcome, String),
    /// The pin moved away from this member.
    Moved,
}

impl Watches {
    /// Starts watching `key` (every key under it with `prefix`) from `start_rev`.
    pub fn start(
        &mut self,
        pool: &Pool,
        id: WatchId,
        key: String,
        start_rev: Revision,
        prefix: bool,
        events: &UnboundedSender<DriverEvent>,
    ) {
        let (pool, events) = (pool.clone(), events.clone());
        let task = tokio::spawn(async move {
            let mut next_rev = start_rev.0;
            let mut resumes = 0;
            loop {
                let endpoint = pool.pinned();
                let mut switched = pool.switched();
                let ended = match open(&pool, endpoint, &key, next_rev, prefix).await {
                    Ok(stream) => follow(stream, id, &events, &mut next_rev, &mut resumes, &mut switched).await,
                    Err((outcome, why)) => Ended::Failed(outcome, why),
                };
                match ended {
                    Ended::Told => return,
                    Ended::Moved if resumes < RESUMES_MAX => resumes += 1,
                    Ended::Failed(outcome, why) => {
                        pool.report(endpoint, outcome);
                        if pool.pinned() == endpoint || resumes >= RESUMES_MAX {
                            let _ = events.send(DriverEvent::Input(Input::Watch(id, WatchEvent::Broken(why))));
                            return;
                        }
                        resumes += 1;
                    }
                    Ended::Moved => {
                        let broken = WatchEvent::Broken("watch moved too often".into());
                        let _ = events.send(DriverEvent::Input(Input::Watch(id, broken)));
                        return;
                    }
                }
            }
        });
        self.tasks.insert(id, task);
    }

    /// Stops a watch.
    pub fn cancel(&mut self, id: WatchId) {
        if let Some(task) = self.tasks.remove(&id) {
            task.abort();
        }
    }

    /// Whether events for `id` are still wanted.
    pub fn is_live(&self, id: WatchId) -> bool {
        self.tasks.contains_key(&id)
    }
}

async fn open(
    pool: &Pool,
    endpoint: usize,
    key: &str,
    start_rev: i64,
    prefix: bool,
) -> Result<WatchStream, (Outcome, String)> {
    let timeout = pool.config().dial_timeout;
    let mut client =
        pool.client(endpoint, timeout).await.map_err(|e| (crate::pool::outcome_of(&e), format!("{e:?}")))?;
    let mut options = WatchOptions::new().with_start_revision(start_rev);
    if prefix {
        options = options.with_prefix();
    }
    match tokio::time::timeout(timeout, client.watch(key, Some(options))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err((stream_outcome(&e), e.to_string())),
        Err(_) => Err((Outcome::TimedOut, format!("watch not opened within {}ms", timeout.as_millis()))),
    }
}

/// Hands the stream's events to the loop until it ends or the pin moves.
async fn follow(
    mut stream: WatchStream,
    id: WatchId,
    events: &UnboundedSender<DriverEvent>,
    next_rev: &mut i64,
    resumes: &mut u32,
    switched: &mut tokio::sync::watch::Receiver<u64>,
) -> Ended {
    let send = |event| events.send(DriverEvent::Input(Input::Watch(id, event))).is_ok();
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = switched.changed() => return Ended::Moved,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return Ended::Failed(Outcome::Unavailable, "watch stream ended".into()),
            Err(e) => return Ended::Failed(stream_outcome(&e), e.to_string()),
        };
        if response.compact_revision() > 0 {
            send(WatchEvent::Compacted);
            return Ended::Told;
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            *next_rev = (*next_rev).max(kv.mod_revision() + 1);
            *resumes = 0;
            let event = match event.event_type() {
                EventType::Put => WatchEvent::Put(to_kv(kv)),
                EventType::Delete => WatchEvent::Delete {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    mod_rev: Revision(kv.mod_revision()),
                },
            };
            if !send(event) {
                return Ended::Told;
            }
        }
        if response.canceled() {
            let why = format!("watch cancelled: {}", response.cancel_reason());
            // A cancel for any reason but compaction means this member cannot serve us.
            let outcome = match crate::pool::error_outcome(&conch_core::EtcdError::Unavailable(why.clone())) {
                Outcome::Answered => Outcome::Unavailable,
                other => other,
            };
            return Ended::Failed(outcome, why);
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}
