//! Runs conch's core machines against real etcd, real processes and real signals.
//!
//! * [`connect`] — etcd endpoints, dial timeout, the client.
//! * [`calls`] — one [`conch_core::EtcdRequest`] becomes one etcd call.
//! * [`pool`] — one connection per member and failover between them (the core's
//!   [`conch_core::Endpoints`] decides).
//! * [`events`] — what the driver's tasks send its loop (an input, or keepalive news).
//! * [`log`] — one log line per core event, text or JSON.
//! * [`keepalive`] — the lease keepalive stream, answers paired with requests in order.
//! * [`watches`] — one task per single-key watch.
//! * [`shim`] — the hidden `conch __shim` mode that owns the child's process group.
//! * [`shim_link`] — the wrapper's end of the shim pipe.
//! * [`shim_revoke`] — the shim's one etcd call: revoke the lease of a dead wrapper.
//! * [`notify`] — systemd `Type=notify`: READY, STATUS, STOPPING, WATCHDOG.
//! * [`out`] — stdout and stderr that never panic (closed pipes), journald priorities.
//! * [`run`] — the event loop for one machine ([`conch_core::Service`] or conchd).
//! * [`query`] — read-only queries (`--who`).
//! * [`fenced`] — fenced writes from a holder's child (`conch put`/`del`/`txn`).
//! * [`step_down`] — `elect --step-down`: ask the leader to resign, wait for it.
//! * [`clock`] — `CLOCK_BOOTTIME` as the core's [`conch_core::Instant`].
//! * `reap`, `sync` — a pid signalled only until reaped; std's or loom's sync types
//!   (under `--cfg loom` the `loom_*` models run the real cross-thread code).
//!
//! A driver only translates; every rule lives in `conch-core`.

pub mod calls;
pub mod clock;
pub mod connect;
pub mod events;
pub mod fenced;
pub mod hooks;
pub mod job_output;
pub mod keepalive;
pub mod log;
#[cfg(all(test, loom))]
mod loom_shim;
pub mod notify;
pub mod out;
pub mod pool;
pub mod query;
mod reap;
pub mod run;
pub mod shim;
pub mod shim_link;
pub mod shim_revoke;
pub mod status;
pub mod step_down;
mod sync;
pub mod watches;

pub use connect::EtcdConfig;
