//! Running planned trials: the one path both `relapse run` and `cargo test` take, from a
//! [`PlannedTrial`] to a [`ScenarioOutcome`] (passed, failed, or ignored with the reason).
//!
//! The runner builds each backend's provisioner on first use and keeps it for the process
//! (the k3d backend's shared cluster, the kubeconfig backend's connection), runs simulated
//! trials on a runtime of their own (simulated time, nothing shared) and the others on one
//! shared runtime, and cleans up what the run created in [`Runner::finish`].

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::lifecycle::{run_mutant_recording, run_scenario_with};
use super::outcome::{Context, Failure, Phase, ScenarioOutcome, Verdict};
use super::pause::{Keep, Pause};
use super::plan::{Decision, PlannedTrial, REQUIRE_K3D_ENV};
use super::snapshot_file::UpdateMode;
use super::snapshot_phase::SnapshotSettings;
use crate::backend::k3d::K3dBackend;
use crate::backend::kubeconfig::{KubeconfigBackend, NamespaceMap};
use crate::backend::served::{Pace, ServedSim};
use crate::backend::sim::SimBackend;
use crate::backend::{BackendError, BackendKind, Cluster, Inspection, KUBECONFIG_ENV};
use crate::error_chain::error_chain;
use crate::scenario::LoadedScenario;

/// The exit status after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: i32 = 130;

/// Environment variable naming the directory the test harness writes timeline reports to.
pub const REPORT_DIR_ENV: &str = "RELAPSE_REPORT_DIR";

/// Environment variable letting kubeconfig trials of the test harness write cluster-scoped
/// objects on `RELAPSE_KUBECONFIG`'s cluster (`1`).
pub const ALLOW_CLUSTER_SCOPED_ENV: &str = "RELAPSE_ALLOW_CLUSTER_SCOPED";

/// Where the kubeconfig backend runs scenarios.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigTarget {
    /// Nowhere: its trials are ignored, saying how to name a cluster.
    None,
    /// The cluster of this kubeconfig file (and context, default its current one).
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The context; `None` for the file's current context.
        context: Option<String>,
    },
    /// A simulated cluster served over HTTPS for each trial, reached like any real cluster
    /// (the test harness's default, so the kubeconfig path is exercised everywhere).
    ServedSim,
}

/// How trials are run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where snapshots live and what a mismatch writes.
    pub snapshots: SnapshotSettings,
    /// Where the kubeconfig backend points.
    pub target: KubeconfigTarget,
    /// Whether scenarios may write cluster-scoped objects on an existing cluster.
    pub allow_cluster_scoped: bool,
    /// Whether an unavailable k3d backend fails its trials instead of ignoring them.
    pub require_k3d: bool,
    /// Where to write a timeline report per trial (and their `index.html`); `None` records
    /// nothing beyond the recovery figures.
    pub report_dir: Option<PathBuf>,
}

impl RunOptions {
    /// The test harness's options: snapshots in `snapshots_dir` (update mode from `INSTA_UPDATE`
    /// and `CI`), the kubeconfig backend on `RELAPSE_KUBECONFIG`'s cluster or else a served
    /// simulated cluster, [`ALLOW_CLUSTER_SCOPED_ENV`], [`REQUIRE_K3D_ENV`] and
    /// [`REPORT_DIR_ENV`] from the environment.
    #[must_use]
    pub fn from_env(snapshots_dir: PathBuf) -> Self {
        let target = std::env::var_os(KUBECONFIG_ENV).map_or(KubeconfigTarget::ServedSim, |path| {
            KubeconfigTarget::Kubeconfig {
                path: PathBuf::from(path),
                context: None,
            }
        });
        Self {
            snapshots: SnapshotSettings {
                dir: snapshots_dir,
                mode: UpdateMode::from_env(),
            },
            target,
            allow_cluster_scoped: env_is_one(ALLOW_CLUSTER_SCOPED_ENV),
            require_k3d: env_is_one(REQUIRE_K3D_ENV),
            report_dir: std::env::var_os(REPORT_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// Whether an environment variable is set to `1`.
#[must_use]
pub fn env_is_one(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// Errors of setting up a backend for a run.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The async runtime could not be started.
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The k3d backend could not be set up (no `k3d`, a bad k3s version).
    #[error("failed to set up the k3d backend")]
    K3d(#[source] crate::backend::k3d::K3dError),
    /// The kubeconfig could not be read or used.
    #[error("failed to use the kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::backend::kubeconfig::KubeconfigError,
    },
    /// The kubeconfig backend has no cluster to run on.
    #[error(
        "the kubeconfig backend has no cluster: pass --kubeconfig PATH or set {KUBECONFIG_ENV}"
    )]
    NoKubeconfig,
}

/// What running one trial produced.
pub struct TrialResult {
    /// The outcome (for a trial planned as ignored or failed: that, without phases).
    pub outcome: ScenarioOutcome,
    /// The first run's cluster as it was when a phase failed, on backends that can keep it.
    pub kept: Option<KeptCluster>,
}

/// A cluster kept for a person to inspect (failed, or passed with [`Keep::Always`]), with the
/// runtime it lives on.
pub struct KeptCluster {
    runtime: Arc<tokio::runtime::Runtime>,
    cluster: Box<dyn Cluster>,
}

impl KeptCluster {
    /// Serves the cluster for kubectl and returns its kubeconfig; the cluster stays served
    /// while the returned [`Inspection`] lives.
    ///
    /// # Errors
    /// Backends whose clusters cannot be kept say so.
    pub fn inspect(&self) -> Result<Inspection, BackendError> {
        self.runtime.block_on(self.cluster.serve_for_inspection())
    }

    /// Runs `future` on the cluster's runtime (to wait for a signal while it is served).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// Runs planned trials; one per process is enough (it keeps backends between trials).
pub struct Runner {
    options: RunOptions,
    shared: OnceLock<Result<Arc<tokio::runtime::Runtime>, String>>,
    k3d: OnceLock<Result<Arc<K3dBackend>, String>>,
    kubeconfig: tokio::sync::OnceCell<Arc<KubeconfigBackend>>,
    /// Whether any trial that ran needed Postgres (its server is stopped in `finish`).
    postgres_used: std::sync::atomic::AtomicBool,
    /// Where scenarios pause for a person, if anywhere.
    pause: Option<Pause>,
}

impl Runner {
    /// A runner with these options.
    #[must_use]
    pub fn new(options: RunOptions) -> Self {
        Self {
            options,
            shared: OnceLock::new(),
            k3d: OnceLock::new(),
            kubeconfig: tokio::sync::OnceCell::new(),
            postgres_used: std::sync::atomic::AtomicBool::new(false),
            pause: None,
        }
    }

    /// Pauses the first run of every scenario trial (not mutants, not the counterfactual) after
    /// `pause`'s phase, handing its live cluster to the pause's hook.
    #[must_use]
    pub fn with_pause(mut self, pause: Pause) -> Self {
        self.pause = Some(pause);
        self
    }

    /// The options.
    #[must_use]
    pub const fn options(&self) -> &RunOptions {
        &self.options
    }

    /// Sets up `backend` now rather than at its first trial, so that a setup error (an
    /// unreadable kubeconfig, a bad k3s version) is reported once, before anything runs.
    ///
    /// # Errors
    /// What failed, rendered with its causes.
    pub fn prepare(&self, backend: BackendKind) -> Result<(), String> {
        match (backend, &self.options.target) {
            (BackendKind::Sim, _) | (BackendKind::Kubeconfig, KubeconfigTarget::ServedSim) => {
                Ok(())
            }
            (BackendKind::K3d, _) => self.k3d_backend().map(|_| ()),
            (BackendKind::Kubeconfig, KubeconfigTarget::None) => {
                Err(error_chain(&RunnerError::NoKubeconfig))
            }
            (BackendKind::Kubeconfig, KubeconfigTarget::Kubeconfig { .. }) => {
                let rt = self.shared_runtime()?;
                rt.block_on(self.kubeconfig_backend())
                    .map(|_| ())
                    .map_err(|e| error_chain(&e))
            }
        }
    }

    /// Spawns the handler that, on Ctrl-C, deletes what runs of this process created on
    /// clusters (k3d clusters, the kubeconfig backend's namespaces) and exits with 130. For the
    /// command line; a test process leaves signals to its harness.
    ///
    /// # Errors
    /// When the runtime cannot be started, rendered with its causes.
    ///
    /// SIGTERM and SIGHUP are handled like Ctrl-C. While a run is paused (see
    /// [`Runner::with_pause`]) the signals are the pause hook's: it stops the run, which then
    /// releases its cluster as after any failure.
    pub fn install_interrupt_cleanup(&self) -> Result<(), String> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = self.shared_runtime()?;
        let paused = self.pause.as_ref().map(Pause::active_flag);
        rt.spawn(async move {
            let listen = |kind| signal(kind);
            let (mut int, mut term, mut hup) = match (
                listen(SignalKind::interrupt()),
                listen(SignalKind::terminate()),
                listen(SignalKind::hangup()),
            ) {
                (Ok(i), Ok(t), Ok(h)) => (i, t, h),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    tracing::warn!(
                        "cannot listen for Ctrl-C; clusters are not cleaned up on interrupt: {e}"
                    );
                    return;
                }
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                if !paused
                    .as_ref()
                    .is_some_and(|p| p.load(std::sync::atomic::Ordering::SeqCst))
                {
                    break;
                }
            }
            eprintln!("interrupted: deleting the run's namespaces and k3d clusters");
            let _ = tokio::task::spawn_blocking(|| {
                crate::backend::kubeconfig::release_live_runs();
                for (name, result) in crate::backend::k3d::delete_live_clusters() {
                    if let Err(e) = result {
                        eprintln!(
                            "failed to delete k3d cluster {name}: {}; `relapse gc` will retry",
                            error_chain(&e)
                        );
                    }
                }
            })
            .await;
            std::process::exit(INTERRUPTED);
        });
        Ok(())
    }

    /// Runs one planned trial to its verdict. Keeps the failed cluster when `keep` is set and
    /// the backend can.
    pub fn run(&self, trial: &PlannedTrial, keep: bool) -> TrialResult {
        self.run_keeping(trial, if keep { Keep::OnFailure } else { Keep::Never })
    }

    /// Runs one planned trial to its verdict, keeping its first cluster as `keep` says (see
    /// [`super::run_scenario_with`]; mutants keep nothing).
    pub fn run_keeping(&self, trial: &PlannedTrial, keep: Keep) -> TrialResult {
        let id = match &trial.mutant {
            None => trial.scenario.id.clone(),
            Some(m) => super::lifecycle::mutant_id(&trial.scenario.id, m),
        };
        let outcome = |verdict| ScenarioOutcome {
            id: id.clone(),
            backend: trial.backend,
            phases: Vec::new(),
            verdict,
            recovery: super::outcome::Recovery::default(),
            timeline: None,
            report: None,
        };
        let not_run = |verdict| TrialResult {
            outcome: outcome(verdict),
            kept: None,
        };
        match &trial.decision {
            Decision::Run => {}
            Decision::Ignore(reason) => return not_run(Verdict::Ignored(reason.clone())),
            Decision::Fail(reason) => {
                return not_run(Verdict::Failed(Box::new(setup_failure(reason.clone()))));
            }
        }
        if trial.scenario.scenario.postgres.is_some() {
            self.postgres_used
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let loaded: &LoadedScenario = &trial.scenario;
        let mutant = trial.mutant.as_deref();
        let snapshots = &self.options.snapshots;
        let record = self.options.report_dir.is_some();
        let result = match trial.backend {
            BackendKind::Sim => {
                // A runtime per trial: simulated trials share nothing, not even a scheduler.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => Arc::new(rt),
                    Err(e) => {
                        return not_run(failed_setup(&RunnerError::Runtime(e)));
                    }
                };
                let (outcome, cluster) = rt.block_on(run_one(
                    &SimBackend::default(),
                    loaded,
                    mutant,
                    snapshots,
                    record,
                    self.pause.as_ref(),
                    keep,
                ));
                (outcome, cluster.map(|c| (rt, c)))
            }
            BackendKind::K3d => {
                let backend = match self.k3d_backend() {
                    Ok(b) => b,
                    Err(e) => return not_run(Verdict::Failed(Box::new(setup_failure(e)))),
                };
                let rt = match self.shared_runtime() {
                    Ok(rt) => rt,
                    Err(e) => return not_run(Verdict::Failed(Box::new(setup_failure(e)))),
                };
                let (outcome, cluster) = rt.block_on(run_one(
                    backend.as_ref(),
                    loaded,
                    mutant,
                    snapshots,
                    record,
                    self.pause.as_ref(),
                    keep,
                ));
                (outcome, cluster.map(|c| (rt, c)))
            }
            BackendKind::Kubeconfig => {
                let rt = match self.shared_runtime() {
                    Ok(rt) => rt,
                    Err(e) => return not_run(Verdict::Failed(Box::new(setup_failure(e)))),
                };
                match rt.block_on(self.run_kubeconfig(loaded, mutant, keep)) {
                    Ok((outcome, cluster)) => (outcome, cluster.map(|c| (rt, c))),
                    Err(e) => return not_run(Verdict::Failed(Box::new(setup_failure(e)))),
                }
            }
        };
        let (mut outcome, cluster) = result;
        if let Some(dir) = &self.options.report_dir {
            Self::write_report(dir, &mut outcome);
        }
        // The lifecycle returned a cluster only where `keep` asked for it.
        let kept = cluster.map(|(runtime, cluster)| KeptCluster { runtime, cluster });
        TrialResult { outcome, kept }
    }

    /// Replays `trial`'s scenario once per fix step with that step left out, on the simulated
    /// cluster, and says which steps are necessary (see [`super::ablate`]).
    ///
    /// # Errors
    /// When the runtime cannot start.
    pub fn ablate(&self, trial: &PlannedTrial) -> Result<Vec<super::StepNecessity>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| error_chain(&RunnerError::Runtime(e)))?;
        let (_, found) = rt.block_on(super::ablate(
            &SimBackend::default(),
            &trial.scenario,
            &self.options.snapshots,
        ));
        Ok(found)
    }

    /// Writes `outcome`'s timeline report into `dir` and adds it to the directory's
    /// `index.html` (shared with other processes writing there); the outcome then names the file. A report that cannot be written is
    /// logged, the verdict stands.
    fn write_report(dir: &std::path::Path, outcome: &mut ScenarioOutcome) {
        match crate::report::write_trial_report(dir, outcome) {
            Ok(path) => outcome.report = Some(path),
            Err(e) => tracing::warn!("timeline report: {}", error_chain(&e)),
        }
    }

    /// Cleans up what the runs left for the end of the process: the shared k3d cluster (and
    /// any cluster a trial left), the Postgres server. Returns one line per problem.
    #[must_use]
    pub fn finish(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Ok(backend)) = self.k3d.get()
            && let Err(e) = backend.delete_shared()
        {
            problems.push(format!(
                "failed to delete the shared k3d cluster: {}",
                error_chain(&e)
            ));
        }
        for (name, result) in crate::backend::k3d::delete_live_clusters() {
            if let Err(e) = result {
                problems.push(format!(
                    "failed to delete k3d cluster {name}: {}; `relapse gc` will retry",
                    error_chain(&e)
                ));
            }
        }
        if self.postgres_used.load(std::sync::atomic::Ordering::SeqCst)
            && let Ok(provider) = crate::postgres::shared()
        {
            let stopped = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(provider.shutdown())
                        .map_err(|e| error_chain(&e))
                });
            if let Err(e) = stopped {
                // Its watchdog still removes it once this process exits.
                problems.push(format!("failed to stop the Postgres server: {e}"));
            }
        }
        problems
    }

    fn shared_runtime(&self) -> Result<Arc<tokio::runtime::Runtime>, String> {
        self.shared
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map(Arc::new)
                    .map_err(|e| error_chain(&RunnerError::Runtime(e)))
            })
            .clone()
    }

    fn k3d_backend(&self) -> Result<Arc<K3dBackend>, String> {
        self.k3d
            .get_or_init(|| {
                K3dBackend::from_env()
                    .map(Arc::new)
                    .map_err(|e| error_chain(&RunnerError::K3d(e)))
            })
            .clone()
    }

    /// The kubeconfig backend on the target's cluster, connected once per runner.
    async fn kubeconfig_backend(&self) -> Result<Arc<KubeconfigBackend>, RunnerError> {
        let KubeconfigTarget::Kubeconfig { path, context } = &self.options.target else {
            return Err(RunnerError::NoKubeconfig);
        };
        self.kubeconfig
            .get_or_try_init(|| async {
                KubeconfigBackend::from_file(path, context.as_deref())
                    .await
                    .map(|b| Arc::new(b.allow_cluster_scoped(self.options.allow_cluster_scoped)))
                    .map_err(|source| RunnerError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })
            })
            .await
            .cloned()
    }

    /// A trial on the kubeconfig backend: the target's cluster, or a simulated cluster served
    /// over HTTPS for this trial alone, shaped like the scenario and running at fast pace
    /// (cluster-scoped writes allowed: it is thrown away).
    async fn run_kubeconfig(
        &self,
        loaded: &LoadedScenario,
        mutant: Option<&str>,
        keep: Keep,
    ) -> Result<(ScenarioOutcome, Option<Box<dyn Cluster>>), String> {
        let snapshots = &self.options.snapshots;
        let record = self.options.report_dir.is_some();
        let pause = self.pause.as_ref();
        if !matches!(self.options.target, KubeconfigTarget::ServedSim) {
            let backend = self
                .kubeconfig_backend()
                .await
                .map_err(|e| error_chain(&e))?;
            return Ok(run_one(
                backend.as_ref(),
                loaded,
                mutant,
                snapshots,
                record,
                pause,
                keep,
            )
            .await);
        }
        // The served cluster's image behaviours name the namespaces the run will use.
        let token = "served";
        let map = NamespaceMap::new(token, &loaded.scenario.name);
        let sim = ServedSim::for_scenario(&loaded.scenario, Pace::Fast, |images| {
            map.map_images(images)
        })
        .await
        .map_err(|e| error_chain(&e))?;
        let kubeconfig = sim.kubeconfig_yaml().map_err(|e| error_chain(&e))?;
        let kubeconfig = crate::yaml::value(&kubeconfig)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| "the served cluster's kubeconfig does not parse".to_owned())?;
        let backend = KubeconfigBackend::from_kubeconfig(kubeconfig, None)
            .await
            .map_err(|e| error_chain(&e))?
            .with_run_token(token)
            .with_time(Arc::new(sim.clock()))
            .allow_cluster_scoped(true);
        // The served cluster ends with the trial: nothing to keep, and a pause there would not
        // stop its clock.
        let (mut outcome, _) = run_one(
            &backend,
            loaded,
            mutant,
            snapshots,
            record,
            None,
            Keep::Never,
        )
        .await;
        // Its clock is the served simulator's, not the wall's.
        if let Some(t) = &mut outcome.timeline {
            t.time_base = super::outcome::TimeBase::Simulated;
        }
        if let Some(failure) = sim.failure() {
            return Err(format!(
                "the served cluster's control loop failed: {failure}"
            ));
        }
        Ok((outcome, None))
    }
}

/// The scenario's lifecycle, or its mutant's replay (which keeps no cluster).
async fn run_one(
    provisioner: &dyn crate::backend::Provisioner,
    loaded: &LoadedScenario,
    mutant: Option<&str>,
    snapshots: &SnapshotSettings,
    record: bool,
    pause: Option<&Pause>,
    keep: Keep,
) -> (ScenarioOutcome, Option<Box<dyn Cluster>>) {
    match mutant {
        None => run_scenario_with(provisioner, loaded, snapshots, record, pause, keep).await,
        Some(name) => (
            run_mutant_recording(provisioner, loaded, name, snapshots, record).await,
            None,
        ),
    }
}

/// A failure before any phase ran.
fn setup_failure(reason: impl Into<String>) -> Failure {
    Failure {
        phase: Phase::Setup,
        summary: "could not run".to_owned(),
        expectation: String::new(),
        mismatches: vec![reason.into()],
        context: Context::default(),
    }
}

fn failed_setup(e: &RunnerError) -> Verdict {
    Verdict::Failed(Box::new(setup_failure(error_chain(e))))
}
