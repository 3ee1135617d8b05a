//! Pausing a run for a person: after a chosen phase of the first run has passed, the runner
//! hands the live cluster to a [`PauseHook`] and continues once the hook returns.
//!
//! The hook decides how the person reaches the cluster (the command line serves it and prints
//! a kubeconfig, then waits for Enter) and whether the run goes on ([`Resume::Continue`]) or
//! stops ([`Resume::Stop`], after an interrupt: the run then ends as failed and its cluster is
//! released as after any failure). While the hook runs nothing advances the cluster: on the
//! simulator its clock stands still.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use super::outcome::Phase;
use crate::backend::Cluster;

/// The phase after which a run pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseAt {
    /// Once the break phase's symptoms were seen.
    Break,
    /// Once the fix was applied (before convergence is awaited).
    Fix,
    /// Once the cluster converged and held through the settle window.
    Converge,
}

impl PauseAt {
    /// The phase it names.
    #[must_use]
    pub const fn phase(self) -> Phase {
        match self {
            Self::Break => Phase::Break,
            Self::Fix => Phase::Fix,
            Self::Converge => Phase::Converge,
        }
    }
}

/// What the run does once the hook returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Carry on with the next phase.
    Continue,
    /// End the run here as failed (an interrupt while paused); the cluster is released.
    Stop,
}

/// The paused run, as the hook sees it.
pub struct Paused<'a> {
    /// The scenario's id (`area/name`).
    pub scenario: &'a str,
    /// The phase that just passed.
    pub phase: Phase,
    /// The live cluster; [`Cluster::serve_for_inspection`] makes it reachable with kubectl.
    pub cluster: &'a dyn Cluster,
}

/// What a pause does: given the paused run, returns when (and whether) it goes on.
pub trait PauseHook: Send + Sync {
    /// Called once the paused phase has passed; the run waits for the returned future.
    fn paused<'a>(&'a self, paused: Paused<'a>) -> BoxFuture<'a, Resume>;
}

/// A pause point and its hook, shared by every trial of a runner.
#[derive(Clone)]
pub struct Pause {
    at: PauseAt,
    hook: Arc<dyn PauseHook>,
    active: Arc<AtomicBool>,
}

impl std::fmt::Debug for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pause")
            .field("at", &self.at)
            .field("active", &self.is_active())
            .finish_non_exhaustive()
    }
}

impl Pause {
    /// Pauses after `at`, handing the cluster to `hook`.
    #[must_use]
    pub fn new(at: PauseAt, hook: Arc<dyn PauseHook>) -> Self {
        Self {
            at,
            hook,
            active: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Where it pauses.
    #[must_use]
    pub const fn at(&self) -> PauseAt {
        self.at
    }

    /// Whether a run is paused right now (an interrupt is then the hook's to handle).
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// A flag that is set while a run is paused.
    #[must_use]
    pub(crate) fn active_flag(&self) -> Arc<AtomicBool> {
        self.active.clone()
    }

    /// Runs the hook if `phase` is the pause point; [`Resume::Continue`] otherwise.
    pub(crate) async fn after(
        &self,
        phase: Phase,
        scenario: &str,
        cluster: &dyn Cluster,
    ) -> Resume {
        if phase != self.at.phase() {
            return Resume::Continue;
        }
        self.active.store(true, Ordering::SeqCst);
        let resume = self
            .hook
            .paused(Paused {
                scenario,
                phase,
                cluster,
            })
            .await;
        self.active.store(false, Ordering::SeqCst);
        resume
    }
}

/// When a run keeps its first cluster for inspection once it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Never.
    #[default]
    Never,
    /// When a phase of the first run failed, as it was at the failure.
    OnFailure,
    /// Always: also after a passing run, as it was at the end of its first run (where the
    /// counterfactual does not need that cluster's names again: see [`super::Runner`]).
    Always,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;
    use crate::backend::{Access, BackendKind};
    use crate::run::outcome::Verdict;
    use crate::run::snapshot_file::UpdateMode;
    use crate::run::{KubeconfigTarget, Plan, RunOptions, Runner, SnapshotSettings};
    use crate::scenario::LoadedScenario;

    /// Breaks by creating ConfigMap `bad`, fixes by deleting it.
    const SCENARIO: &str = "\
name: demo
description: a demo
source: test
setup: []
break:
  steps:
    - apply:
        inline: {apiVersion: v1, kind: ConfigMap, metadata: {name: bad, namespace: default}}
  symptoms:
    - object: {kind: ConfigMap, namespace: default, name: bad, matches: {metadata: {name: bad}}, within: 1m}
fix:
  - delete:
      object: {apiVersion: v1, kind: ConfigMap, name: bad, namespace: default}
converge:
  within: 1m
  expect:
    - absent: {object: {kind: ConfigMap, namespace: default, name: bad}, within: 1m}
snapshot:
  enabled: false
";

    fn loaded() -> Arc<LoadedScenario> {
        let dir = tempfile::tempdir().expect("temp dir");
        let area = dir.path().join("scenarios/apps");
        std::fs::create_dir_all(&area).expect("area dir");
        let file = area.join("demo.yaml");
        std::fs::write(&file, SCENARIO).expect("scenario written");
        Arc::new(crate::scenario::load(&file, &dir.path().join("scenarios")).expect("loads"))
    }

    fn runner() -> Runner {
        Runner::new(RunOptions {
            snapshots: SnapshotSettings {
                dir: PathBuf::from("snapshots"),
                mode: UpdateMode::No,
            },
            target: KubeconfigTarget::None,
            allow_cluster_scoped: false,
            require_k3d: false,
            report_dir: None,
        })
    }

    /// What one pause saw.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        phase: Phase,
        /// ConfigMaps in `default`, read over HTTPS through the printed kubeconfig.
        config_maps: Vec<String>,
        /// Cluster time when the pause began and when it ended.
        clock: (Duration, Duration),
    }

    /// Reaches the paused cluster as kubectl would, then resumes as told.
    struct Probe {
        seen: Mutex<Vec<Seen>>,
        resume: Resume,
    }

    impl Probe {
        fn new(resume: Resume) -> Arc<Self> {
            Arc::new(Self {
                seen: Mutex::new(Vec::new()),
                resume,
            })
        }
    }

    impl PauseHook for Probe {
        fn paused<'a>(&'a self, paused: Paused<'a>) -> BoxFuture<'a, Resume> {
            Box::pin(async move {
                let start = paused.cluster.now();
                let inspection = paused.cluster.serve_for_inspection().await.unwrap();
                let Access::Kubeconfig(yaml) = &inspection.access else {
                    panic!("the sim writes a kubeconfig of its own");
                };
                let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .unwrap();
                let client = kube::Client::try_from(config).unwrap();
                let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
                let config_maps = api
                    .list(&Default::default())
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect();
                // Wall time passes while a person looks; simulated time must not.
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.seen.lock().unwrap().push(Seen {
                    phase: paused.phase,
                    config_maps,
                    clock: (start, paused.cluster.now()),
                });
                drop(inspection);
                self.resume
            })
        }
    }

    #[test]
    fn a_pause_after_each_phase_reaches_the_served_cluster_and_the_verdict_stands() {
        let scenario = loaded();
        let plan = Plan::new(
            std::slice::from_ref(&scenario),
            &[BackendKind::Sim],
            &runner().options().clone(),
        );
        let trial = &plan.trials[0];
        assert!(trial.mutant.is_none());
        let unpaused = runner().run_keeping(trial, Keep::Never).outcome;
        assert_eq!(unpaused.verdict, Verdict::Passed);
        for (at, config_maps) in [
            (PauseAt::Break, vec!["bad".to_owned()]),
            (PauseAt::Fix, vec![]),
            (PauseAt::Converge, vec![]),
        ] {
            let probe = Probe::new(Resume::Continue);
            let pause = Pause::new(at, probe.clone());
            let runner = runner().with_pause(pause.clone());
            let result = runner.run_keeping(trial, Keep::Never);
            assert_eq!(result.outcome.verdict, unpaused.verdict, "{at:?}");
            assert!(result.kept.is_none());
            let phases = |o: &crate::run::outcome::ScenarioOutcome| {
                o.phases.iter().map(|p| p.phase).collect::<Vec<_>>()
            };
            assert_eq!(phases(&result.outcome), phases(&unpaused));
            let seen = probe.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 1, "{at:?}: one pause, in the first run only");
            assert_eq!(seen[0].phase, at.phase());
            assert_eq!(seen[0].config_maps, config_maps, "{at:?}");
            assert_eq!(seen[0].clock.0, seen[0].clock.1, "{at:?}: the clock moved");
            assert!(!pause.is_active());
        }
    }

    #[test]
    fn a_stopped_pause_fails_the_run_there() {
        let scenario = loaded();
        let plan = Plan::new(
            std::slice::from_ref(&scenario),
            &[BackendKind::Sim],
            &runner().options().clone(),
        );
        let probe = Probe::new(Resume::Stop);
        let result = runner()
            .with_pause(Pause::new(PauseAt::Fix, probe.clone()))
            .run_keeping(&plan.trials[0], Keep::Never);
        let Verdict::Failed(f) = &result.outcome.verdict else {
            panic!("{:?}", result.outcome.verdict);
        };
        assert_eq!(f.phase, Phase::Fix);
        assert_eq!(f.summary, "stopped while paused after the fix phase");
        let last = result.outcome.phases.last().unwrap();
        assert_eq!((last.phase, last.passed), (Phase::Fix, true));
        assert!(result.kept.is_none());
    }

    #[test]
    fn keep_always_keeps_a_passing_run_and_on_failure_does_not() {
        let scenario = loaded();
        let plan = Plan::new(
            std::slice::from_ref(&scenario),
            &[BackendKind::Sim],
            &runner().options().clone(),
        );
        let trial = &plan.trials[0];
        let kept = runner().run_keeping(trial, Keep::Always);
        assert_eq!(kept.outcome.verdict, Verdict::Passed);
        let kept = kept.kept.expect("kept after a pass");
        let inspection = kept.inspect().unwrap();
        assert!(matches!(inspection.access, Access::Kubeconfig(_)));
        for keep in [Keep::OnFailure, Keep::Never] {
            let result = runner().run_keeping(trial, keep);
            assert_eq!(result.outcome.verdict, Verdict::Passed);
            assert!(result.kept.is_none(), "{keep:?}");
        }
    }
}
