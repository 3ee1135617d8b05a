//! What runs where: one trial per scenario and backend, each decided *before* anything runs.
//!
//! A trial is ignored, with its reason, when the scenario skips that backend
//! (`backends: <kind>: skip:`), when the backend refuses the scenario from its text alone (a
//! `postgres:` section on a real cluster, a shape k3d cannot make), when the backend or the
//! scenario's Postgres provider cannot run on this machine. Deciding at list time matters: a
//! test runner counts a trial that reports "ignored" while running as passed.
//! `RELAPSE_REQUIRE_K3D=1` turns an unavailable k3d backend into a failure instead (the
//! nightly jobs, where a k3d trial that cannot run is a broken job).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::runner::{KubeconfigTarget, RunOptions};
use crate::backend::{self, Availability, BackendKind, KUBECONFIG_ENV};
use crate::scenario::LoadedScenario;

/// Set to `1` where k3d trials must run: an unavailable k3d backend then fails them.
pub const REQUIRE_K3D_ENV: &str = "RELAPSE_REQUIRE_K3D";

/// Whether a planned trial runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It runs.
    Run,
    /// It does not run here, for this reason (reported as ignored, never as passed).
    Ignore(String),
    /// It cannot run, and must: it fails with this reason without running.
    Fail(String),
}

/// One scenario on one backend, and whether it runs.
#[derive(Debug, Clone)]
pub struct PlannedTrial {
    /// The scenario.
    pub scenario: Arc<LoadedScenario>,
    /// Where.
    pub backend: BackendKind,
    /// The mutant (a plausible wrong fix of the scenario's `mutants:`) this trial replays
    /// instead of the scenario's own fix; `None` for the scenario itself.
    pub mutant: Option<String>,
    /// Whether it runs, and why not.
    pub decision: Decision,
}

impl PlannedTrial {
    /// The trial name, `backend::area/name`, or `backend::area/name::mutant::<mutant>`.
    #[must_use]
    pub fn name(&self) -> String {
        match &self.mutant {
            None => format!("{}::{}", self.backend, self.scenario.id),
            Some(m) => format!(
                "{}::{}",
                self.backend,
                super::lifecycle::mutant_id(&self.scenario.id, m)
            ),
        }
    }
}

/// The trials of a run, in order: scenarios in the order given, backends in the order given,
/// each scenario's own trial followed by one per mutant (each decided on its own steps: a
/// mutant the backend cannot perform is ignored without taking the scenario with it).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Every trial, decided.
    pub trials: Vec<PlannedTrial>,
}

impl Plan {
    /// Plans `scenarios` on `backends` with `options` (which decide where the kubeconfig
    /// backend points and whether k3d is required).
    #[must_use]
    pub fn new(
        scenarios: &[Arc<LoadedScenario>],
        backends: &[BackendKind],
        options: &RunOptions,
    ) -> Self {
        // Each machine check once per plan, not once per scenario.
        let availability: BTreeMap<BackendKind, Availability> = backends
            .iter()
            .map(|&kind| (kind, backend_availability(kind, options)))
            .collect();
        let postgres = postgres_availability(scenarios);
        let mut trials = Vec::new();
        for s in scenarios {
            for &kind in backends {
                let mutants = s.scenario.mutants.iter().map(|m| Some(m.name.clone()));
                for mutant in std::iter::once(None).chain(mutants) {
                    let decision = decide(
                        s,
                        mutant.as_deref(),
                        kind,
                        &availability[&kind],
                        postgres.as_ref(),
                        options,
                    );
                    trials.push(PlannedTrial {
                        scenario: Arc::clone(s),
                        backend: kind,
                        mutant,
                        decision,
                    });
                }
            }
        }
        Self { trials }
    }
}

/// Whether `kind` can run here with these options.
fn backend_availability(kind: BackendKind, options: &RunOptions) -> Availability {
    match (kind, &options.target) {
        (BackendKind::Kubeconfig, KubeconfigTarget::ServedSim) => Availability::Available,
        (BackendKind::Kubeconfig, KubeconfigTarget::Kubeconfig { path, .. }) => {
            if path.is_file() {
                Availability::Available
            } else {
                Availability::Unavailable(format!(
                    "the kubeconfig {} is not a file",
                    path.display()
                ))
            }
        }
        (BackendKind::Kubeconfig, KubeconfigTarget::None) => Availability::Unavailable(format!(
            "the kubeconfig backend runs against an existing cluster: pass --kubeconfig PATH or set {KUBECONFIG_ENV} to its kubeconfig file"
        )),
        (kind, _) => backend::availability(kind),
    }
}

/// Whether the Postgres provider can serve the scenarios that need one: `Err(reason)` when not,
/// `Ok(())` when it can or nothing needs it.
fn postgres_availability(scenarios: &[Arc<LoadedScenario>]) -> Option<String> {
    if !scenarios.iter().any(|s| s.scenario.postgres.is_some()) {
        return None;
    }
    match crate::postgres::shared() {
        Err(e) => Some(crate::error_chain::error_chain(&e)),
        Ok(provider) => provider.check_available().err().map(|e| e.to_string()),
    }
}

/// The decision for one trial, in order of precedence: the scenario's own skip, the backend's
/// refusal of the scenario, the backend's availability, the Postgres provider's.
fn decide(
    s: &LoadedScenario,
    mutant: Option<&str>,
    kind: BackendKind,
    availability: &Availability,
    postgres: Option<&String>,
    options: &RunOptions,
) -> Decision {
    let skip = match kind {
        BackendKind::Sim => &s.scenario.backends.sim,
        BackendKind::K3d => &s.scenario.backends.k3d,
        BackendKind::Kubeconfig => &s.scenario.backends.kubeconfig,
    };
    if let Some(o) = skip {
        return Decision::Ignore(format!("the scenario skips {kind}: {}", o.skip.trim()));
    }
    let refused = backend::trial_refusal(kind, &s.scenario, mutant);
    if !refused.is_empty() {
        return Decision::Ignore(format!(
            "the {kind} cluster cannot reproduce this scenario: {}",
            refused.join("; ")
        ));
    }
    if let Availability::Unavailable(reason) = availability {
        if kind == BackendKind::K3d && options.require_k3d {
            return Decision::Fail(format!("{REQUIRE_K3D_ENV}=1, but {reason}"));
        }
        return Decision::Ignore(reason.clone());
    }
    if let (Some(reason), Some(_)) = (postgres, &s.scenario.postgres) {
        return Decision::Ignore(format!("postgres unavailable: {reason}"));
    }
    Decision::Run
}

/// The kubeconfig a user named, with the context: `--kubeconfig`, else [`KUBECONFIG_ENV`].
#[must_use]
pub fn kubeconfig_from(explicit: Option<PathBuf>, context: Option<String>) -> KubeconfigTarget {
    match explicit.or_else(|| std::env::var_os(KUBECONFIG_ENV).map(PathBuf::from)) {
        Some(path) => KubeconfigTarget::Kubeconfig { path, context },
        None => KubeconfigTarget::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::SnapshotSettings;
    use crate::run::snapshot_file::UpdateMode;

    fn loaded(yaml: &str) -> Arc<LoadedScenario> {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("scenarios");
        let area = root.join("apps");
        std::fs::create_dir_all(&area).expect("area dir");
        let file = area.join("demo.yaml");
        std::fs::write(&file, yaml).expect("scenario written");
        let s = crate::scenario::load(&file, &root).expect("scenario loads");
        Arc::new(s)
    }

    const SCENARIO: &str = "\
name: demo
description: a demo
source: test
setup: []
break:
  steps: []
  symptoms:
    - absent: {object: {kind: ConfigMap, namespace: default, name: x}, within: 1m}
fix:
  - apply:
      inline: {apiVersion: v1, kind: ConfigMap, metadata: {name: y, namespace: default}}
converge:
  within: 1m
  expect:
    - absent: {object: {kind: ConfigMap, namespace: default, name: x}, within: 1m}
";

    fn options(target: KubeconfigTarget, require_k3d: bool) -> RunOptions {
        RunOptions {
            snapshots: SnapshotSettings {
                dir: PathBuf::from("snapshots"),
                mode: UpdateMode::No,
            },
            target,
            allow_cluster_scoped: false,
            require_k3d,
            report_dir: None,
        }
    }

    #[test]
    fn a_skip_is_ignored_with_its_reason_on_that_backend_only() {
        let s = loaded(&format!(
            "{SCENARIO}backends:\n  kubeconfig:\n    skip: needs a real CNI\n"
        ));
        let plan = Plan::new(
            &[s],
            &[BackendKind::Sim, BackendKind::Kubeconfig],
            &options(KubeconfigTarget::ServedSim, false),
        );
        assert_eq!(plan.trials[0].decision, Decision::Run);
        assert_eq!(
            plan.trials[1].decision,
            Decision::Ignore("the scenario skips kubeconfig: needs a real CNI".to_owned())
        );
        assert_eq!(plan.trials[1].name(), "kubeconfig::apps/demo");
    }

    #[test]
    fn an_unavailable_backend_is_ignored_unless_required() {
        let s = loaded(SCENARIO);
        let plan = Plan::new(
            std::slice::from_ref(&s),
            &[BackendKind::Kubeconfig],
            &options(KubeconfigTarget::None, false),
        );
        assert!(
            matches!(&plan.trials[0].decision, Decision::Ignore(r) if r.contains(KUBECONFIG_ENV)),
            "{:?}",
            plan.trials[0].decision
        );
        let missing = KubeconfigTarget::Kubeconfig {
            path: PathBuf::from("/nonexistent/kubeconfig"),
            context: None,
        };
        let plan = Plan::new(
            std::slice::from_ref(&s),
            &[BackendKind::Kubeconfig],
            &options(missing, true),
        );
        // Requiring k3d says nothing about other backends.
        assert!(
            matches!(&plan.trials[0].decision, Decision::Ignore(r) if r.contains("/nonexistent/kubeconfig")),
            "{:?}",
            plan.trials[0].decision
        );
    }

    #[test]
    fn postgres_scenarios_are_refused_by_real_clusters_at_plan_time() {
        let s = loaded(&format!("{SCENARIO}postgres:\n  roles:\n    - name: app\n"));
        let plan = Plan::new(
            &[s],
            &[BackendKind::Kubeconfig],
            &options(KubeconfigTarget::ServedSim, false),
        );
        assert!(
            matches!(&plan.trials[0].decision, Decision::Ignore(r) if r.contains("Postgres server")),
            "{:?}",
            plan.trials[0].decision
        );
    }
}
