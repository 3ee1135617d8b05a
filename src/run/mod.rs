//! Running a scenario's phases: setup, break, fix, converge, snapshot and the counterfactual.
//!
//! Execution needs the simulated cluster's controllers and the runner, which are not part of this
//! build yet. Until they are, callers say so plainly instead of reporting runs that did not happen.

/// What the CLI and the test harness say about execution in this build.
pub const NOT_BUILT: &str = "scenario execution is not built yet (the runner and the simulated cluster's controllers are still to come); the scenario was loaded and validated, not run";

pub mod matcher;
pub mod observe;
pub mod outcome;
pub mod phases;
pub mod snapshot;
pub mod snapshot_file;
pub mod steps;
