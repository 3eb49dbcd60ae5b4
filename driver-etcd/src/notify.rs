//! systemd's `Type=notify`, through the `sd-notify` crate: what the core logs becomes what
//! `systemctl status` shows.
//!
//! * `READY=1` once a wrapper campaigns (its session is granted and its key written) or
//!   conchd runs.
//! * `STATUS=` a line a person reads: `campaigning for db`, `waiting for db (rank 3 in
//!   the queue)`, `holding db since 12:00:01Z with rev 1234`, `lost db: deadline-passed`,
//!   `backing off 4s`.
//! * `STOPPING=1` on a stop signal.
//! * `WATCHDOG=1` every half `WATCHDOG_USEC`, and only while the session is healthy: a
//!   wrapper whose keepalives fail, or that has lost its session, stops petting, so
//!   systemd restarts it (`WatchdogSec=`).
//!
//! Without `NOTIFY_SOCKET` nothing is sent. A send that fails is ignored: systemd's
//! bookkeeping must never take a hold down.
use std::time::Duration;

use conch_core::Event;
use sd_notify::NotifyState;

/// The wrapper's side of systemd's notification protocol.
#[derive(Debug)]
pub struct Notifier {
    on: bool,
    ready: bool,
    healthy: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (for this pid) from the environment.
    pub fn from_env() -> Notifier {
        let on = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let mut usec = 0;
        let watchdog =
            (on && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec) / 2);
        Notifier { on, ready: false, healthy: true, watchdog }
    }

    /// How often to pet the watchdog (half its timeout), when systemd asked for it.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Pets the watchdog if the session is healthy.
    pub fn pet(&self) {
        if self.healthy {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// One core event: maybe a state and a status line for systemd.
    pub fn see(&mut self, event: &Event) {
        if !self.on {
            return;
        }
        let field = |key: &str| event.field(key).unwrap_or("");
        let name = field("name");
        let status = match event.kind {
            "campaign" => {
                self.healthy = true;
                self.ready();
                format!("campaigning for {name}")
            }
            "conchd-start" => {
                self.healthy = true;
                self.ready();
                format!("running cron jobs as node {}", field("node"))
            }
            "waiting" if !field("rank").is_empty() => {
                format!("waiting for {name} (rank {} in the queue)", field("rank"))
            }
            "waiting" => format!("waiting for {name} ({})", field("why")),
            "acquired" => {
                self.healthy = true;
                let since = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
                format!("holding {name} since {since} with rev {}", field("rev"))
            }
            "keepalive-failed" => {
                self.healthy = false;
                format!("cannot renew the session: {}", field("error"))
            }
            "keepalive-recovered" | "session" => {
                self.healthy = true;
                return;
            }
            "lost" => {
                self.healthy = false;
                format!("lost {name}: {}", field("reason"))
            }
            "no-session" | "session-lost" | "etcd-failed" => {
                self.healthy = false;
                format!("etcd unreachable: {}", field("error"))
            }
            "backoff" => format!("backing off {} ({})", field("delay"), field("why")),
            "signal" | "conchd-stop" => {
                self.send(&[NotifyState::Stopping]);
                format!("stopping (signal {})", field("signal"))
            }
            _ => return,
        };
        self.send(&[NotifyState::Status(&status)]);
    }

    fn ready(&mut self) {
        if !self.ready {
            self.ready = true;
            self.send(&[NotifyState::Ready]);
        }
    }

    fn send(&self, states: &[NotifyState]) {
        if self.on {
            let _ = sd_notify::notify(false, states);
        }
    }
}
