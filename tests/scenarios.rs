//! One trial per scenario and backend, named `<backend>::<area>/<name>`, plus `validate::` trials.
//!
//! Backends that cannot run on this machine are reported as ignored with the reason. Sim trials
//! run the whole lifecycle on the in-process simulated cluster. Kubeconfig trials run it through
//! the kubeconfig backend (TCP+TLS, namespaces of their own, cleanup) against the cluster
//! `RELAPSE_KUBECONFIG` names, or, when it names none, against a simulated cluster served over
//! HTTPS for the trial, shaped like the scenario and running at fast pace (cluster-scoped writes
//! allowed: it is thrown away). K3d trials run where `k3d` and a Docker daemon are present (k3s
//! from `RELAPSE_K3S_VERSION`): scenarios of the default shape share one cluster per test process
//! (each in namespaces of its own), the others get a cluster each; every cluster is deleted when
//! the trials are over. Elsewhere they are ignored with the reason (or fail, with
//! `RELAPSE_REQUIRE_K3D=1` as in the nightly jobs): no trial reports a run that did not happen.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use relapse::backend::k3d::K3dBackend;
use relapse::backend::kubeconfig::{KubeconfigBackend, NamespaceMap};
use relapse::backend::served::{Pace, ServedSim};
use relapse::backend::sim::SimBackend;
use relapse::backend::{self, Availability, BackendKind, KUBECONFIG_ENV};
use relapse::run::outcome::Verdict;
use relapse::run::phases::{SnapshotSettings, run_scenario};
use relapse::run::snapshot_file::UpdateMode;
use relapse::scenario::{self, LoadedScenario};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let trials = match trials(&root) {
        Ok(t) => t,
        Err(message) => vec![Trial::test("validate::suite", move || {
            Err(Failed::from(message))
        })],
    };
    let conclusion = libtest_mimic::run(&args, trials);
    delete_k3d_clusters();
    stop_postgres();
    conclusion.exit_code()
}

/// Stops the process's Postgres server now rather than leaving it to its watchdog after exit,
/// so that nothing of the run outlives the test process.
fn stop_postgres() {
    let Ok(provider) = relapse::postgres::shared() else {
        return;
    };
    let stopped = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(provider.shutdown())
                .map_err(|e| error_chain(&e))
        });
    if let Err(e) = stopped {
        eprintln!("failed to stop the Postgres server: {e}");
    }
}

/// Set to `1` where k3d trials must run: an unavailable k3d backend then fails them.
const REQUIRE_K3D_ENV: &str = "RELAPSE_REQUIRE_K3D";

/// The k3d provisioner all k3d trials of this process share, made on first use.
static K3D: OnceLock<Result<K3dBackend, String>> = OnceLock::new();

/// Deletes the shared k3d cluster and any cluster a trial left behind.
fn delete_k3d_clusters() {
    if let Some(Ok(backend)) = K3D.get()
        && let Err(e) = backend.delete_shared()
    {
        eprintln!(
            "failed to delete the shared k3d cluster: {}",
            error_chain(&e)
        );
    }
    for (name, result) in relapse::backend::k3d::delete_live_clusters() {
        if let Err(e) = result {
            eprintln!(
                "failed to delete k3d cluster {name}: {}; `relapse gc` will retry",
                error_chain(&e)
            );
        }
    }
}

fn trials(root: &Path) -> Result<Vec<Trial>, String> {
    let files = scenario::discover(&[root.to_path_buf()]).map_err(|e| scenario::render(&e))?;
    let mut trials = Vec::new();
    let suite_root = root.to_path_buf();
    trials.push(Trial::test("validate::suite", move || {
        let (_, errors) = scenario::load_suite(&[suite_root]).map_err(|e| scenario::render(&e))?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors
                .iter()
                .map(scenario::render)
                .collect::<Vec<_>>()
                .join("\n")
                .into())
        }
    }));
    for (file, root) in files {
        let id = path_id(&file, &root);
        {
            let (file, root) = (file.clone(), root.clone());
            trials.push(Trial::test(format!("validate::{id}"), move || {
                load(&file, &root).map(|_| ())
            }));
        }
        for kind in BackendKind::ALL {
            let (file, root) = (file.clone(), root.clone());
            trials.push(Trial::ignorable_test(format!("{kind}::{id}"), move || {
                backend_trial(kind, &file, &root)
            }));
        }
    }
    Ok(trials)
}

/// The trial id from the path alone (the loader requires the name to match the file name).
fn path_id(file: &Path, root: &Path) -> String {
    let rel: PathBuf = file.strip_prefix(root).unwrap_or(file).with_extension("");
    rel.to_string_lossy().replace('\\', "/")
}

fn load(file: &Path, root: &Path) -> Result<LoadedScenario, Failed> {
    scenario::load(file, root).map_err(|e| Failed::from(scenario::render(&e)))
}

fn backend_trial(kind: BackendKind, file: &Path, root: &Path) -> Result<Completion, Failed> {
    let loaded = load(file, root)?;
    let skip = match kind {
        BackendKind::Sim => &loaded.scenario.backends.sim,
        BackendKind::K3d => &loaded.scenario.backends.k3d,
        BackendKind::Kubeconfig => &loaded.scenario.backends.kubeconfig,
    };
    if let Some(o) = skip {
        return Ok(Completion::ignored_with(format!(
            "the scenario skips {kind}: {}",
            o.skip.trim()
        )));
    }
    if kind == BackendKind::Kubeconfig {
        return run_on_kubeconfig(&loaded);
    }
    if let Availability::Unavailable(reason) = backend::availability(kind) {
        if kind == BackendKind::K3d && std::env::var_os(REQUIRE_K3D_ENV).is_some_and(|v| v == "1") {
            // The nightly k3d jobs: a trial that cannot run there is a broken job, not a skip.
            return Err(Failed::from(format!("{REQUIRE_K3D_ENV}=1, but {reason}")));
        }
        return Ok(Completion::ignored_with(reason));
    }
    match kind {
        BackendKind::Sim => run_on_sim(&loaded),
        BackendKind::K3d => run_on_k3d(&loaded),
        BackendKind::Kubeconfig => run_on_kubeconfig(&loaded),
    }
}

/// The k3d backend: clusters made with the `k3d` on PATH.
fn run_on_k3d(loaded: &LoadedScenario) -> Result<Completion, Failed> {
    let backend = K3D
        .get_or_init(|| K3dBackend::from_env().map_err(|e| error_chain(&e)))
        .as_ref()
        .map_err(|e| Failed::from(format!("failed to set up the k3d backend: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("failed to start a runtime: {e}")))?;
    let outcome = runtime.block_on(run_scenario(backend, loaded, &settings()));
    verdict(&outcome)
}

fn settings() -> SnapshotSettings {
    SnapshotSettings {
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"),
        mode: UpdateMode::from_env(),
    }
}

fn verdict(outcome: &relapse::run::outcome::ScenarioOutcome) -> Result<Completion, Failed> {
    match &outcome.verdict {
        Verdict::Passed => Ok(Completion::Completed),
        Verdict::Ignored(reason) => Ok(Completion::ignored_with(reason)),
        Verdict::Failed(f) => Err(Failed::from(relapse::report::failure_details(outcome, f))),
    }
}

/// The kubeconfig backend against `RELAPSE_KUBECONFIG`'s cluster, or a served simulated one.
fn run_on_kubeconfig(loaded: &LoadedScenario) -> Result<Completion, Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("failed to start a runtime: {e}")))?;
    let outcome = runtime.block_on(async {
        if let Some(path) = std::env::var_os(KUBECONFIG_ENV) {
            let allow = std::env::var("RELAPSE_ALLOW_CLUSTER_SCOPED").is_ok_and(|v| v == "1");
            let backend = KubeconfigBackend::from_file(Path::new(&path), None)
                .await
                .map_err(|e| Failed::from(error_chain(&e)))?
                .allow_cluster_scoped(allow);
            return Ok(run_scenario(&backend, loaded, &settings()).await);
        }
        // The served cluster's image behaviours name the namespaces the run will use.
        let token = "served";
        let map = NamespaceMap::new(token, &loaded.scenario.name);
        let sim = ServedSim::for_scenario(&loaded.scenario, Pace::Fast, |images| {
            map.map_images(images)
        })
        .await
        .map_err(|e| Failed::from(error_chain(&e)))?;
        let kubeconfig = sim
            .kubeconfig_yaml()
            .map_err(|e| Failed::from(error_chain(&e)))?;
        let kubeconfig = relapse::yaml::value(&kubeconfig)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| Failed::from("the served cluster's kubeconfig does not parse"))?;
        let backend = KubeconfigBackend::from_kubeconfig(kubeconfig, None)
            .await
            .map_err(|e| Failed::from(error_chain(&e)))?
            .with_run_token(token)
            .with_time(Arc::new(sim.clock()))
            .allow_cluster_scoped(true);
        let outcome = run_scenario(&backend, loaded, &settings()).await;
        if let Some(failure) = sim.failure() {
            return Err(Failed::from(format!(
                "the served cluster's control loop failed: {failure}"
            )));
        }
        Ok(outcome)
    })?;
    verdict(&outcome)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

fn run_on_sim(loaded: &LoadedScenario) -> Result<Completion, Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("failed to start a runtime: {e}")))?;
    let settings = SnapshotSettings {
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"),
        mode: UpdateMode::from_env(),
    };
    let outcome = runtime.block_on(run_scenario(&SimBackend::default(), loaded, &settings));
    match &outcome.verdict {
        Verdict::Passed => Ok(Completion::Completed),
        Verdict::Ignored(reason) => Ok(Completion::ignored_with(reason)),
        Verdict::Failed(f) => Err(Failed::from(relapse::report::failure_details(&outcome, f))),
    }
}
