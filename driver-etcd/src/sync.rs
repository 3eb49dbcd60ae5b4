//! The synchronisation types the drivers' cross-thread code uses: std's, or loom's under
//! `--cfg loom` so the models (`scripts/loom.sh`, tests named `loom_*`) explore every
//! interleaving of the real code.
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex};
