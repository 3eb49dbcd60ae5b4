//! The checkers of `00-overview.md`'s guarantees, as pure functions over one record
//! shape: [`Interval`]s (a child's life), [`Fault`]s (what was done to the system, with a
//! typed [`Kind`]) and [`Start`]s (what a holder saw when its child started). The
//! simulator (`driver-sim`) logs these records as its run goes; the invariant suite and
//! the functional tester (`tests/`) parse their logs into them; all call the same
//! checkers; each harness
//! keeps only the exception windows its timing model derives ([`Window`]).
//!
//! * [`holders`]: never more than N at once outside the windows;
//! * [`fencing`]: an office's tokens strictly increase across successive holders, a
//!   semaphore never hands out one token twice, every token is its key's create revision;
//! * [`fifo`]: a child starts only when fewer than N keys of its contest are older;
//! * [`cron`]: at most one run per tick, at most one won claim per tick, a token per tick
//!   and increasing across successive runs.
pub mod cron;
pub mod fencing;
pub mod fifo;
pub mod holders;
pub mod record;

pub use record::{Fault, Interval, Kind, Start, Window};
