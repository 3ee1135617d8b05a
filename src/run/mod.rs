//! Running a scenario's phases: setup, break, fix, converge, snapshot and the counterfactual.
//!
//! [`phases`] runs the lifecycle on any [`crate::backend::Cluster`]; [`steps`] and [`observe`]
//! talk to the cluster through the kube client; [`matcher`] compares partial trees;
//! [`snapshot`] and [`snapshot_file`] project and store the converged state; [`outcome`] is what a
//! run produced.

pub mod matcher;
pub mod observe;
pub mod outcome;
pub mod phases;
pub mod snapshot;
pub mod snapshot_file;
pub mod steps;
