//! Running a scenario's phases: setup, break, fix, converge, snapshot and the counterfactual.
//!
//! [`phases`] runs the lifecycle on any [`crate::backend::Cluster`]; [`steps`] and [`observe`]
//! talk to the cluster through the kube client; [`matcher`] compares partial trees;
//! [`snapshot`] and [`snapshot_file`] project and store the converged state; [`outcome`] is what a
//! run produced.

/// What the CLI and the test harness say for backends whose runner is not built yet.
pub const NOT_BUILT: &str = "running scenarios on this backend is not built yet (only the sim backend runs them); the scenario was loaded and validated, not run";

pub mod matcher;
pub mod observe;
pub mod outcome;
pub mod phases;
pub mod snapshot;
pub mod snapshot_file;
pub mod steps;
