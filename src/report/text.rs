//! Plain-text reports for terminals and test output.

use std::fmt::Write as _;
use std::time::Duration;

use crate::run::outcome::{Failure, ScenarioOutcome, Verdict};

/// A duration as people read it: `850ms`, `12.4s`, `10m2s`, `1h3m`.
#[must_use]
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        let s = d.as_secs();
        if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{}m{}s", s / 60, s % 60)
        }
    } else {
        let m = d.as_secs() / 60;
        if m.is_multiple_of(60) {
            format!("{}h", m / 60)
        } else {
            format!("{}h{}m", m / 60, m % 60)
        }
    }
}

/// One line: each phase with its cluster time and wall time, e.g.
/// `setup 35s/4ms · break 10m5s/41ms ✗`.
#[must_use]
pub fn timeline(outcome: &ScenarioOutcome) -> String {
    outcome
        .phases
        .iter()
        .map(|p| {
            let mark = if p.passed { "" } else { " ✗" };
            format!(
                "{} {}/{}{mark}",
                p.phase,
                human_duration(p.cluster_time),
                human_duration(p.wall_time)
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A recovery figure, or `-` when the run did not get there.
fn figure(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), human_duration)
}

/// The end-of-run table: scenario, phases reached, result, cluster time, wall time, and the
/// recovery figures (time to symptom, time to converge, how the settle window ended).
#[must_use]
pub fn summary_table(outcomes: &[ScenarioOutcome]) -> String {
    let rows: Vec<[String; 8]> = outcomes
        .iter()
        .map(|o| {
            let result = match &o.verdict {
                Verdict::Passed => "passed".to_owned(),
                Verdict::Failed(f) => format!("FAILED in {}", f.phase),
                Verdict::Ignored(_) => "ignored".to_owned(),
            };
            let phases = o
                .phases
                .iter()
                .map(|p| p.phase.as_str())
                .collect::<Vec<_>>()
                .join(",");
            [
                o.trial_name(),
                if phases.is_empty() {
                    "-".to_owned()
                } else {
                    phases
                },
                result,
                human_duration(o.cluster_time()),
                human_duration(o.wall_time()),
                figure(o.recovery.time_to_symptom),
                figure(o.recovery.time_to_converge),
                o.recovery
                    .settle
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            ]
        })
        .collect();
    let header = [
        "SCENARIO",
        "PHASES",
        "RESULT",
        "CLUSTER TIME",
        "WALL TIME",
        "TO SYMPTOM",
        "TO CONVERGE",
        "SETTLE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &header);
    for row in &rows {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    let passed = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Passed)
        .count();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
        .count();
    let ignored = outcomes.len() - passed - failed;
    let _ = writeln!(out, "{passed} passed, {failed} failed, {ignored} ignored");
    for o in outcomes {
        if let (Verdict::Failed(_), Some(report)) = (&o.verdict, &o.report) {
            let _ = writeln!(out, "report of {}: {}", o.trial_name(), report.display());
        }
    }
    out
}

/// Everything about one failure: phase, expectation, every mismatch, events, pods and log tails.
#[must_use]
pub fn failure_details(outcome: &ScenarioOutcome, failure: &Failure) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "FAILED {} in {}: {}",
        outcome.trial_name(),
        failure.phase,
        failure.summary
    );
    if let Some(report) = &outcome.report {
        let _ = writeln!(out, "  report: {}", report.display());
    }
    let _ = writeln!(out, "  timeline: {}", timeline(outcome));
    let _ = writeln!(out, "  expectation: {}", failure.expectation);
    for m in &failure.mismatches {
        let _ = writeln!(out, "    {m}");
    }
    let ctx = &failure.context;
    if !ctx.events.is_empty() {
        let _ = writeln!(out, "  events:");
        for e in &ctx.events {
            let _ = writeln!(out, "    {e}");
        }
    }
    if !ctx.pods.is_empty() {
        let _ = writeln!(out, "  pods:");
        for p in &ctx.pods {
            let _ = writeln!(out, "    {p}");
        }
    }
    if !ctx.diagnostics.is_empty() {
        let _ = writeln!(out, "  cluster diagnostics:");
        for d in &ctx.diagnostics {
            let _ = writeln!(out, "    {d}");
        }
    }
    for (container, lines) in &ctx.logs {
        let _ = writeln!(out, "  logs of {container} (last {}):", lines.len());
        for l in lines {
            let _ = writeln!(out, "    | {l}");
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::BackendKind;
    use crate::run::outcome::{Context, Phase, PhaseRecord, Recovery, Settle};

    pub(crate) fn outcomes() -> Vec<ScenarioOutcome> {
        let rec = |phase, cluster: u64, wall: u64, passed| PhaseRecord {
            phase,
            cluster_time: Duration::from_secs(cluster),
            wall_time: Duration::from_millis(wall),
            passed,
        };
        vec![
            ScenarioOutcome {
                id: "workloads/arm64-image-on-amd64".into(),
                backend: BackendKind::Sim,
                phases: vec![rec(Phase::Setup, 25, 4, true), rec(Phase::Break, 310, 21, true), rec(Phase::Fix, 0, 1, true), rec(Phase::Converge, 330, 12, true), rec(Phase::Snapshot, 0, 1, true), rec(Phase::Counterfactual, 935, 30, true)],
                verdict: Verdict::Passed,
                recovery: Recovery {
                    time_to_symptom: Some(Duration::from_secs(300)),
                    time_to_converge: Some(Duration::from_secs(95)),
                    settle: Some(Settle::Held(Duration::from_secs(120))),
                },
                timeline: None,
                report: None,
            },
            ScenarioOutcome {
                id: "storage/rwo-rollout-deadlock".into(),
                backend: BackendKind::Sim,
                phases: vec![rec(Phase::Setup, 30, 5, true), rec(Phase::Break, 605, 40, true), rec(Phase::Fix, 0, 1, true), rec(Phase::Converge, 600, 35, false)],
                verdict: Verdict::Failed(Box::new(Failure {
                    phase: Phase::Converge,
                    summary: "did not converge within 10m".into(),
                    expectation: "expect[0]: object Deployment monitoring/grafana".into(),
                    mismatches: vec![".status.conditions[type=Progressing].reason: expected \"NewReplicaSetAvailable\", observed \"ProgressDeadlineExceeded\"".into()],
                    context: Context {
                        events: vec!["Warning FailedAttachVolume pod/grafana-6d7d8fc764-659zz: Multi-Attach error for volume \"pvc-3fd5\" Volume is already used by pod(s) grafana-f67c5df7f-7w7xt".into()],
                        pods: vec!["monitoring/grafana-6d7d8fc764-659zz  0/2  Init:0/1  0".into()],
                        logs: vec![("monitoring/grafana-f67c5df7f-7w7xt/grafana".into(), vec!["logger=server msg=\"HTTP Server Listen\"".into()])],
                        diagnostics: vec![],
                    },
                })),
                recovery: Recovery {
                    time_to_symptom: Some(Duration::from_secs(605)),
                    time_to_converge: None,
                    settle: None,
                },
                timeline: None,
                report: Some("target/relapse-report/sim__storage__rwo-rollout-deadlock.html".into()),
            },
            ScenarioOutcome { id: "storage/rwo-rollout-deadlock".into(), backend: BackendKind::K3d, phases: vec![], verdict: Verdict::Ignored("the scenario skips k3d: no attachable storage".into()), recovery: Recovery::default(), timeline: None, report: None },
        ]
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(12_400)), "12.4s");
        assert_eq!(human_duration(Duration::from_secs(602)), "10m2s");
        assert_eq!(human_duration(Duration::from_secs(600)), "10m");
        assert_eq!(human_duration(Duration::from_secs(3780)), "1h3m");
    }

    #[test]
    fn summary_and_failure_golden() {
        let o = outcomes();
        insta::assert_snapshot!("summary", summary_table(&o));
        let Verdict::Failed(f) = &o[1].verdict else {
            unreachable!()
        };
        insta::assert_snapshot!("failure", failure_details(&o[1], f));
    }

    #[test]
    fn cluster_diagnostics_are_listed_after_the_pods() {
        let mut o = outcomes();
        let Verdict::Failed(f) = &mut o[1].verdict else {
            panic!("the second outcome fails")
        };
        f.context.diagnostics =
            vec!["refused write: replicaset-controller create Pod monitoring/x: quota".into()];
        let f = f.clone();
        let text = failure_details(&o[1], &f);
        assert!(
            text.contains("  cluster diagnostics:\n    refused write: replicaset-controller create Pod monitoring/x: quota\n"),
            "{text}"
        );
    }
}
