//! Running scenarios: what runs where ([`plan`]), running it ([`runner`]), and the phases of one
//! scenario on one cluster.
//!
//! [`plan`] decides per scenario and backend whether a trial runs or is ignored, and why;
//! [`runner`] runs planned trials on their backends, the one path `relapse run` and
//! `cargo test` share. Below it, `lifecycle` holds the phase order (setup, break, fix,
//! converge, snapshot, then the counterfactual); `session` executes steps and symptoms on one
//! cluster; `settle` is the convergence and settle-window model; `context` gathers what a
//! failure report shows; `snapshot_phase` reads and compares the converged state. [`steps`]
//! and [`observe`] talk to the cluster through the kube client; [`matcher`] compares partial
//! trees; [`snapshot`] and [`snapshot_file`] project and store the converged state;
//! [`outcome`] is what a run produced; `trace` records what happened when, for the recovery
//! figures and the timeline report.

mod context;
mod lifecycle;
pub mod matcher;
pub mod observe;
pub mod outcome;
pub mod pause;
pub mod plan;
pub mod redact;
pub mod runner;
mod session;
mod settle;
pub mod snapshot;
pub mod snapshot_file;
mod snapshot_phase;
pub mod steps;
mod trace;

pub use lifecycle::{
    StepNecessity, ablate, mutant_id, run_mutant, run_mutant_recording, run_scenario,
    run_scenario_keeping, run_scenario_recording, run_scenario_with,
};
pub use pause::{Keep, Pause, PauseAt, PauseHook, Paused, Resume};
pub use plan::{Decision, Plan, PlannedTrial};
pub use runner::{KeptCluster, KubeconfigTarget, RunOptions, Runner, TrialResult};
pub use snapshot_phase::SnapshotSettings;
