//! conch's sans-IO core: every rule of conch lives here as plain state machines.
//!
//! No clock reads, no async, no I/O, no global randomness. Time comes in as an argument
//! ([`Instant`]), random draws come in as arguments, and results come out by polling.
//!
//! # The drain contract
//!
//! After every `handle_input(now, input)` or command on a machine, the driver drains
//! `poll_output()` until it returns `None`, performs each [`Output`] in order, and then
//! reads `poll_timeout()`: the instant at which it must feed [`Input::Timeout`] if no
//! other input arrives first. Early or repeated timeouts are harmless. An input the
//! driver makes itself while performing (a shim or hook that could not start) is queued
//! and fed after the drain, never while the machine's outputs are still being carried
//! out. [`drive::drain`] is the one helper both drivers use for this.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod conchd;
pub mod cron;
pub mod cron_view;
pub mod drive;
pub mod duration;
pub mod endpoints;
pub mod etcd;
pub mod exit;
pub mod fenced;
pub mod hold;
pub mod hooks;
pub mod ids;
pub mod keys;
pub mod output;
pub mod preempt;
pub mod process;
pub mod ranking;
pub mod runner;
pub mod sabotage;
pub mod schedule;
pub mod service;
pub mod session;
pub mod shim_pipe;
pub mod shim_rules;
pub mod step_down;
pub mod supervision;
pub mod time;
pub mod values;
pub mod who;

pub use drive::{drain, Input, Machine, Now};
pub use endpoints::{Attempt, Endpoints, Next, Outcome, Switch};
pub use etcd::{EtcdError, EtcdRequest, EtcdResponse, Kv, RangeResult, RangeSort, RangeSpec, WatchEvent};
pub use hold::HoldSpec;
pub use hooks::{HookConfig, HookKind, HookSpec};
pub use ids::{ChildId, HookId, LeaseId, ReqId, Revision, WatchId};
pub use output::{Event, ExitCode, Failure, Level, Output, SpawnSpec};
pub use runner::{RunConfig, Runner};
pub use sabotage::Sabotage;
pub use service::{Service, ServiceConfig};
pub use session::LossReason;
pub use session::{TimingError, Timings};
pub use supervision::{ChildStatus, WrapperSignal};
pub use time::Instant;
