//! Deterministic simulation of etcd, the network and the hosts, running conch's own
//! machines (`conch-core`) under seeded faults, with checkers for every guarantee.
pub mod buggify;
pub mod check;
pub mod check_cron;
pub mod check_exit;
pub mod check_fence;
pub mod check_grace;
pub mod check_handoff;
pub mod check_loss;
pub mod check_pace;
pub mod check_preempt;
pub mod check_restart;
pub mod check_watch;
pub mod coverage;
pub mod etcd;
pub mod fuzzing;
pub mod host;
pub mod net;
pub mod options;
pub mod plan;
pub mod record;
pub mod run;
pub mod timeline;
pub mod verdict;
pub mod watchdog;
pub mod world;
