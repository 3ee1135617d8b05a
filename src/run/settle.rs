//! Convergence and the settle window: every converge expectation holds before its deadline,
//! then the cluster stays stable (no new restarts, no condition that was True turning
//! otherwise) for the settle window.

use std::collections::BTreeMap;

use kube::api::ListParams;

use super::context::failure;
use super::observe::describe;
use super::outcome::{Context, Failure, Phase, Settle};
use super::session::Session;
use super::trace::MarkKind;
use crate::error_chain::error_chain;
use crate::scenario::Converge;

/// What the settle window compares: per object and aspect (`pod ns/x restarts`,
/// `deployment ns/d Available`), its value (a count, a condition status).
pub(super) type Stability = BTreeMap<String, String>;

/// The regressions between two stability readings, one line each (`key: old → new`).
///
/// Instability is a regression: a restart, or a condition that was True and is not.
/// Something still coming up (False → True), a new object, an object that is gone (deleted by
/// its owner) or a pod that ran to completion (not part of a reading) is not.
pub(super) fn regressions(baseline: &Stability, now: &Stability) -> Vec<String> {
    let mut changes = Vec::new();
    for (k, v) in now {
        let Some(old) = baseline.get(k) else { continue };
        let regressed = if k.ends_with(" restarts") {
            v.parse::<i64>().unwrap_or(0) > old.parse::<i64>().unwrap_or(0)
        } else {
            old == "True" && v != "True"
        };
        if regressed {
            changes.push(format!("{k}: {old} → {v}"));
        }
    }
    changes
}

/// The failure when the cluster can no longer be reached.
fn lost(phase: Phase, e: &crate::backend::BackendError) -> Failure {
    failure(
        phase,
        "lost the cluster",
        String::new(),
        vec![error_chain(e)],
        Context::default(),
    )
}

impl Session<'_> {
    /// Waits until every expectation of `spec` holds at once, then holds the settle window.
    /// `phase` is [`Phase::Converge`] on the first run, where `spec.budget` applies too; the
    /// replays (counterfactual, mutants) pass theirs.
    pub(super) async fn converge(&mut self, spec: &Converge, phase: Phase) -> Result<(), Failure> {
        let start = self.cluster.now();
        let deadline = start + spec.within.as_std();
        let client = self.cluster.client();
        let every = self.trace.samples_lanes();
        let mut first_held: Vec<bool> = vec![false; spec.expect.len()];
        // Hold all at once.
        loop {
            let mut failing = None;
            for (i, e) in spec.expect.iter().enumerate() {
                let obs = self.observe(&client, e).await;
                if obs.holds {
                    if !first_held[i] {
                        first_held[i] = true;
                        self.trace.mark(
                            self.cluster.now(),
                            MarkKind::Expectation,
                            format!("converge.expect[{i}]: {}", describe(e)),
                        );
                    }
                } else if failing.is_none() {
                    failing = Some((i, obs));
                    // The timeline shows when each one first held; otherwise the first that
                    // does not hold is enough.
                    if !every {
                        break;
                    }
                }
            }
            let Some((i, obs)) = failing else { break };
            if self.cluster.now() >= deadline {
                // Replays must not converge: there, this is what they had to do.
                self.trace.band(
                    "converge",
                    start,
                    self.cluster.now(),
                    phase != Phase::Converge,
                );
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!("did not converge within {}", spec.within),
                    format!("converge.expect[{i}]: {}", describe(&spec.expect[i])),
                    obs.mismatches,
                    ctx,
                ));
            }
            self.advance(deadline).await.map_err(|e| lost(phase, &e))?;
        }
        let converged = self.cluster.now();
        self.trace
            .band("converge", start, converged, phase == Phase::Converge);
        // Converged only once the settle window held too: a run whose expectations held for a
        // moment and then broke (a crash-looping pod's Ready blip) did not converge, and its
        // timeline must not say so.
        let mark_converged = |this: &Self| {
            this.trace
                .mark(converged, MarkKind::Converged, "converged".to_owned());
            this.trace.converged(converged);
        };
        if phase == Phase::Converge
            && let Some(budget) = spec.budget
            && let Some(fix_start) = self.trace.fix_start()
            && converged.saturating_sub(fix_start) > budget.as_std()
        {
            mark_converged(self);
            let ctx = self.context().await;
            return Err(failure(
                phase,
                &format!(
                    "converged {} after the fix's first step, over the budget of {budget}",
                    crate::report::human_duration(converged.saturating_sub(fix_start))
                ),
                "converge.budget".to_owned(),
                vec![format!(
                    "expected convergence within {budget} of the fix, observed {}",
                    crate::report::human_duration(converged.saturating_sub(fix_start))
                )],
                ctx,
            ));
        }
        // Then stay converged for the settle window: no new restarts, no condition flips.
        let baseline = self.stability().await;
        let settle_end = converged + spec.settle.as_std();
        let broke = |this: &Self| {
            let now = this.cluster.now();
            this.trace.mark(
                converged,
                MarkKind::Expectation,
                "every converge expectation held; then the settle window broke".to_owned(),
            );
            this.trace.band("settle", converged, now, false);
            this.trace
                .settled(Settle::Broke(now.saturating_sub(converged)));
        };
        while self.cluster.now() < settle_end {
            if let Err(e) = self.advance(settle_end).await {
                broke(self);
                return Err(lost(phase, &e));
            }
            let now = self.stability().await;
            let at = crate::report::human_duration(self.cluster.now());
            let mut changes: Vec<String> = regressions(&baseline, &now)
                .into_iter()
                .map(|r| format!("{r} at {at} (cluster time)"))
                .collect();
            for (i, e) in spec.expect.iter().enumerate() {
                let obs = self.observe(&client, e).await;
                if !obs.holds {
                    changes.push(format!(
                        "converge.expect[{i}] ({}) stopped holding: {}",
                        describe(e),
                        obs.mismatches.join("; ")
                    ));
                }
            }
            if !changes.is_empty() {
                broke(self);
                self.trace.mark(
                    self.cluster.now(),
                    MarkKind::Failure,
                    format!("settle window broke: {}", changes.join("; ")),
                );
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!("converged but did not stay stable for {}", spec.settle),
                    "settle window".to_owned(),
                    changes,
                    ctx,
                ));
            }
        }
        self.trace
            .band("settle", converged, self.cluster.now(), true);
        self.trace.settled(Settle::Held(spec.settle.as_std()));
        mark_converged(self);
        Ok(())
    }

    /// Restart counts and condition statuses in the scenario's namespaces.
    async fn stability(&self) -> Stability {
        let client = self.cluster.client();
        let mut out = BTreeMap::new();
        for ns in &self.namespaces {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let restarts: i32 = p
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
                    out.insert(format!("pod {ns}/{name} restarts"), restarts.to_string());
                    let status = p.status.unwrap_or_default();
                    // A pod that ran to completion (a Job's) turns not-Ready by design.
                    if status.phase.as_deref() == Some("Succeeded") {
                        continue;
                    }
                    for c in status.conditions.unwrap_or_default() {
                        out.insert(format!("pod {ns}/{name} condition {}", c.type_), c.status);
                    }
                }
            }
            let deps: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = deps.list(&ListParams::default()).await {
                for d in list.items {
                    let name = d.metadata.name.clone().unwrap_or_default();
                    for c in d.status.and_then(|s| s.conditions).unwrap_or_default() {
                        out.insert(
                            format!("deployment {ns}/{name} condition {}", c.type_),
                            c.status,
                        );
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(pairs: &[(&str, &str)]) -> Stability {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn restarts_and_lost_conditions_are_regressions() {
        let before = reading(&[
            ("pod a/x restarts", "1"),
            ("pod a/x condition Ready", "True"),
            ("pod a/gone condition Ready", "True"),
            ("deployment a/d condition Available", "False"),
        ]);
        let after = reading(&[
            ("pod a/x restarts", "2"),
            ("pod a/x condition Ready", "False"),
            ("deployment a/d condition Available", "True"),
            ("pod a/new restarts", "5"),
        ]);
        assert_eq!(
            regressions(&before, &after),
            vec![
                "pod a/x condition Ready: True → False",
                "pod a/x restarts: 1 → 2"
            ]
        );
    }

    #[test]
    fn coming_up_is_not_a_regression() {
        let before = reading(&[
            ("pod a/x condition Ready", "False"),
            ("pod a/x restarts", "3"),
        ]);
        let after = reading(&[
            ("pod a/x condition Ready", "True"),
            ("pod a/x restarts", "3"),
        ]);
        assert!(regressions(&before, &after).is_empty());
    }
}
