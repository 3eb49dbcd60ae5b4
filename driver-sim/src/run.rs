//! One seed end to end: draw the options and the plan, run the world, check it.
use crate::check::{check, Violation};
use crate::options::{SimArgs, SimOptions};
use crate::plan::{draw_plan, PlannedFault};
use crate::record::Outcome;
use crate::world::World;

/// A checked run.
#[derive(Debug)]
pub struct Report {
    /// What happened.
    pub outcome: Outcome,
    /// What broke (empty when every guarantee held).
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether every guarantee held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether `checker` reported something.
    pub fn caught_by(&self, checker: &str) -> bool {
        self.violations.iter().any(|v| v.checker == checker)
    }
}

/// Runs `seed` with everything the user did not fix drawn from it.
pub fn run_seed(seed: u64, args: &SimArgs) -> Report {
    let opts = SimOptions::draw(seed, args);
    let plan = draw_plan(&opts);
    run_plan(opts, plan)
}

/// Runs `opts` under a given fault plan (property tests shrink plans through this).
pub fn run_plan(opts: SimOptions, plan: Vec<PlannedFault>) -> Report {
    let outcome = World::new(opts, plan).run();
    let violations = check(&outcome);
    Report { outcome, violations }
}
