//! The machine-readable summary of a run (`relapse run --format json`): one object per trial
//! with its verdict, phases and recovery figures. Durations are seconds.

use serde::{Deserialize, Serialize};

use crate::run::outcome::{ScenarioOutcome, Settle, Verdict};

/// Every trial of a run and the totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// One entry per trial, in run order.
    pub trials: Vec<TrialSummary>,
    /// Trials that passed.
    pub passed: usize,
    /// Trials that failed.
    pub failed: usize,
    /// Trials that were ignored.
    pub ignored: usize,
}

/// One trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialSummary {
    /// `backend::area/name`.
    pub trial: String,
    /// `area/name` (with `::mutant::<name>` for a mutant trial).
    pub scenario: String,
    /// `sim`, `k3d` or `kubeconfig`.
    pub backend: String,
    /// `passed`, `failed` or `ignored`.
    pub result: String,
    /// The phase that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<String>,
    /// Why it failed, or why it was ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each phase, in order.
    pub phases: Vec<PhaseSummary>,
    /// Cluster time over all phases.
    pub cluster_seconds: f64,
    /// Wall time over all phases.
    pub wall_seconds: f64,
    /// From the break's first step until every symptom had been observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_symptom_seconds: Option<f64>,
    /// From the fix's first step until every converge expectation held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_converge_seconds: Option<f64>,
    /// How the settle window ended, when it was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<SettleSummary>,
    /// The trial's timeline report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// One phase of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSummary {
    /// `setup`, `break`, ...
    pub phase: String,
    /// Cluster time.
    pub cluster_seconds: f64,
    /// Wall time.
    pub wall_seconds: f64,
    /// Whether it passed.
    pub passed: bool,
}

/// How the settle window ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleSummary {
    /// Whether the cluster stayed stable for the whole window.
    pub held: bool,
    /// The window's length when it held; how far into it stability broke otherwise.
    pub seconds: f64,
}

impl TrialSummary {
    /// The summary of one outcome.
    #[must_use]
    pub fn of(o: &ScenarioOutcome) -> Self {
        let (result, failed_phase, reason) = match &o.verdict {
            Verdict::Passed => ("passed", None, None),
            Verdict::Failed(f) => (
                "failed",
                Some(f.phase.as_str().to_owned()),
                Some(f.summary.clone()),
            ),
            Verdict::Ignored(why) => ("ignored", None, Some(why.clone())),
        };
        let r = &o.recovery;
        Self {
            trial: o.trial_name(),
            scenario: o.id.clone(),
            backend: o.backend.as_str().to_owned(),
            result: result.to_owned(),
            failed_phase,
            reason,
            phases: o
                .phases
                .iter()
                .map(|p| PhaseSummary {
                    phase: p.phase.as_str().to_owned(),
                    cluster_seconds: p.cluster_time.as_secs_f64(),
                    wall_seconds: p.wall_time.as_secs_f64(),
                    passed: p.passed,
                })
                .collect(),
            cluster_seconds: o.cluster_time().as_secs_f64(),
            wall_seconds: o.wall_time().as_secs_f64(),
            time_to_symptom_seconds: r.time_to_symptom.map(|d| d.as_secs_f64()),
            time_to_converge_seconds: r.time_to_converge.map(|d| d.as_secs_f64()),
            settle: r.settle.map(|s| match s {
                Settle::Held(d) => SettleSummary {
                    held: true,
                    seconds: d.as_secs_f64(),
                },
                Settle::Broke(d) => SettleSummary {
                    held: false,
                    seconds: d.as_secs_f64(),
                },
            }),
            report: o.report.as_ref().map(|p| p.display().to_string()),
        }
    }
}

impl RunSummary {
    /// The summary of a run's outcomes.
    #[must_use]
    pub fn of(outcomes: &[ScenarioOutcome]) -> Self {
        let trials: Vec<TrialSummary> = outcomes.iter().map(TrialSummary::of).collect();
        let count = |r: &str| trials.iter().filter(|t| t.result == r).count();
        Self {
            passed: count("passed"),
            failed: count("failed"),
            ignored: count("ignored"),
            trials,
        }
    }
}

/// The JSON summary of a run's outcomes, pretty-printed.
#[must_use]
pub fn json_summary(outcomes: &[ScenarioOutcome]) -> String {
    // Plain data with string keys: serializing cannot fail.
    serde_json::to_string_pretty(&RunSummary::of(outcomes)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::tests::outcomes;

    #[test]
    fn json_carries_verdicts_and_recovery_figures() {
        let text = json_summary(&outcomes());
        let back: RunSummary = serde_json::from_str(&text).unwrap();
        assert_eq!((back.passed, back.failed, back.ignored), (1, 1, 1));
        let first = &back.trials[0];
        assert_eq!(first.trial, "sim::workloads/arm64-image-on-amd64");
        assert_eq!(first.time_to_symptom_seconds, Some(300.0));
        assert_eq!(first.time_to_converge_seconds, Some(95.0));
        assert_eq!(
            first.settle,
            Some(SettleSummary {
                held: true,
                seconds: 120.0
            })
        );
        let failed = &back.trials[1];
        assert_eq!(failed.failed_phase.as_deref(), Some("converge"));
        assert_eq!(failed.time_to_converge_seconds, None);
        assert!(
            failed
                .report
                .as_deref()
                .is_some_and(|r| r.ends_with(".html"))
        );
        assert_eq!(back.trials[2].result, "ignored");
    }
}
