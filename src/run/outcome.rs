//! What running one scenario on one backend produced: the phases it went through and its verdict.

use std::fmt;
use std::time::Duration;

use crate::backend::BackendKind;

/// A phase of the scenario lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Provision and apply the healthy starting point.
    Setup,
    /// Reproduce the failure and observe its symptoms.
    Break,
    /// Apply the documented fix.
    Fix,
    /// Wait for health, then hold it for the settle window.
    Converge,
    /// Compare the converged state with the committed snapshot.
    Snapshot,
    /// Setup and break again without the fix; convergence must not happen.
    Counterfactual,
    /// Setup and break again with a plausible wrong fix; convergence must not happen.
    Mutant,
    /// Each fix step left out in turn: without any of them the cluster must not converge
    /// (`fixMinimal: true`).
    Ablation,
}

impl Phase {
    /// Lowercase name used in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Break => "break",
            Self::Fix => "fix",
            Self::Converge => "converge",
            Self::Snapshot => "snapshot",
            Self::Counterfactual => "counterfactual",
            Self::Mutant => "mutant",
            Self::Ablation => "ablation",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a phase took, in cluster time and in wall time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseRecord {
    /// The phase.
    pub phase: Phase,
    /// Time as the cluster saw it (simulated on the sim, equal to wall time elsewhere).
    pub cluster_time: Duration,
    /// Real time spent.
    pub wall_time: Duration,
    /// Whether the phase did what it had to.
    pub passed: bool,
}

/// Why a scenario failed, with what a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where it failed.
    pub phase: Phase,
    /// The short verdict, e.g. `could not reproduce` or `did not converge within 10m`.
    pub summary: String,
    /// The expectation that failed, e.g. `symptom 2: event FailedAttachVolume in monitoring`.
    pub expectation: String,
    /// Expected versus observed, one line per mismatch.
    pub mismatches: Vec<String>,
    /// Recent events, pod statuses and log tails of the namespaces involved.
    pub context: Context,
}

/// Cluster state dumped beside a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Recent events, one line each (`Warning FailedMount pod/x: message`).
    pub events: Vec<String>,
    /// Pod statuses as `kubectl get pods` shows them.
    pub pods: Vec<String>,
    /// Log tails per container (`namespace/pod/container`, lines).
    pub logs: Vec<(String, Vec<String>)>,
    /// What the cluster itself noticed (on the simulator: writes its API server refused).
    pub diagnostics: Vec<String>,
}

/// The verdict of one scenario on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every phase passed.
    Passed,
    /// A phase failed.
    Failed(Box<Failure>),
    /// Not run, for this reason.
    Ignored(String),
}

/// One scenario on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioOutcome {
    /// `area/name`, or `area/name::mutant::<mutant>` for a mutant trial.
    pub id: String,
    /// Where it ran.
    pub backend: BackendKind,
    /// The phases, in order.
    pub phases: Vec<PhaseRecord>,
    /// The verdict.
    pub verdict: Verdict,
    /// How fast the symptoms appeared and the fix healed the cluster.
    pub recovery: Recovery,
    /// What happened when, for the timeline report (recorded only when a report is asked for).
    pub timeline: Option<Box<Timeline>>,
    /// The timeline report written for this trial.
    pub report: Option<std::path::PathBuf>,
}

/// How fast a run went from break to symptom and from fix to health, in cluster time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// From the break's first step until every symptom had been observed.
    pub time_to_symptom: Option<Duration>,
    /// From the fix's first step until every converge expectation held at once.
    pub time_to_converge: Option<Duration>,
    /// How the settle window ended, when it was reached.
    pub settle: Option<Settle>,
}

/// How the settle window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The cluster stayed converged for the whole window (its length).
    Held(Duration),
    /// It stopped being stable this long into the window.
    Broke(Duration),
}

impl fmt::Display for Settle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Held(d) => write!(f, "held {}", crate::report::human_duration(*d)),
            Self::Broke(d) => write!(f, "broke after {}", crate::report::human_duration(*d)),
        }
    }
}

pub use super::trace::{
    Band, EventMark, GONE, Lane, LaneKind, Mark, MarkKind, RunTimeline, StateChange, TimeBase,
    Timeline,
};

impl ScenarioOutcome {
    /// The trial name, `backend::area/name`.
    #[must_use]
    pub fn trial_name(&self) -> String {
        format!("{}::{}", self.backend, self.id)
    }

    /// Total cluster time over all phases.
    #[must_use]
    pub fn cluster_time(&self) -> Duration {
        self.phases.iter().map(|p| p.cluster_time).sum()
    }

    /// Total wall time over all phases.
    #[must_use]
    pub fn wall_time(&self) -> Duration {
        self.phases.iter().map(|p| p.wall_time).sum()
    }
}
