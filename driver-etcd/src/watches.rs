//! Single-key watches, one task each, reporting into the event loop.
use std::collections::BTreeMap;

use conch_core::{Revision, WatchEvent, WatchId};
use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc::UnboundedSender;

use crate::calls::to_kv;
use crate::run::DriverEvent;

/// The live watches of one wrapper.
#[derive(Default)]
pub struct Watches {
    tasks: BTreeMap<WatchId, tokio::task::JoinHandle<()>>,
}

impl Watches {
    /// Starts watching `key` (every key under it with `prefix`) from `start_rev`.
    pub fn start(
        &mut self,
        client: &Client,
        id: WatchId,
        key: String,
        start_rev: Revision,
        prefix: bool,
        events: &UnboundedSender<DriverEvent>,
    ) {
        let mut client = client.clone();
        let events = events.clone();
        let task = tokio::spawn(async move {
            let send = |event| events.send(DriverEvent::Watch(id, event)).is_ok();
            let mut options = WatchOptions::new().with_start_revision(start_rev.0);
            if prefix {
                options = options.with_prefix();
            }
            let mut stream = match client.watch(key.clone(), Some(options)).await {
                Ok(stream) => stream,
                Err(e) => {
                    send(WatchEvent::Broken(e.to_string()));
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(response)) => {
                        if response.compact_revision() > 0 {
                            send(WatchEvent::Compacted);
                            return;
                        }
                        for event in response.events() {
                            let Some(kv) = event.kv() else { continue };
                            let event = match event.event_type() {
                                EventType::Put => WatchEvent::Put(to_kv(kv)),
                                EventType::Delete => WatchEvent::Delete {
                                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                                    mod_rev: Revision(kv.mod_revision()),
                                },
                            };
                            if !send(event) {
                                return;
                            }
                        }
                        if response.canceled() {
                            send(WatchEvent::Broken(format!("watch cancelled: {}", response.cancel_reason())));
                            return;
                        }
                    }
                    Ok(None) => {
                        send(WatchEvent::Broken("watch stream ended".into()));
                        return;
                    }
                    Err(e) => {
                        send(WatchEvent::Broken(e.to_string()));
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

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}
