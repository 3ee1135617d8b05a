//! The simulated cluster end to end: the shipped scenarios through the runner on the `sim`
//! backend, the determinism of a run, and the crash-loop back-off seen through the API.

#![expect(
    clippy::unwrap_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams, PostParams};
use relapse::backend::Provisioner;
use relapse::backend::sim::{SimBackend, SimClusterHandle};
use relapse::backend::{BackendError, Cluster};
use relapse::run::outcome::{Phase, ScenarioOutcome, Verdict};
use relapse::run::snapshot_file::UpdateMode;
use relapse::run::{SnapshotSettings, run_scenario};
use relapse::scenario::{self, ImageBehaviour, LoadedScenario, ManifestKind, Scenario};
use serde_json::json;

fn scenarios_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn load(rel: &str) -> LoadedScenario {
    let root = scenarios_root();
    let mut loaded = scenario::load(&root.join(rel), &root)
        .unwrap_or_else(|e| panic!("{}", scenario::render(&e)));
    // No snapshots are committed yet; the phases before the snapshot are what is under test.
    loaded.scenario.snapshot.enabled = false;
    loaded
}

/// Provisions sim clusters and keeps a handle on each, so a test can look at them afterwards.
#[derive(Default)]
struct Keeping {
    backend: SimBackend,
    provisioned: Mutex<Vec<SimClusterHandle>>,
}

impl Provisioner for Keeping {
    fn provision<'a>(
        &'a self,
        scenario: &'a Scenario,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, BackendError>> {
        Box::pin(async move {
            let handle = self
                .backend
                .cluster(scenario)
                .map_err(|e| BackendError::Lifecycle {
                    action: "create",
                    backend: relapse::backend::BackendKind::Sim,
                    source: Box::new(e),
                })?;
            self.provisioned.lock().unwrap().push(handle.clone());
            Ok(Box::new(handle) as Box<dyn Cluster>)
        })
    }
}

async fn run(loaded: &LoadedScenario, provisioner: &dyn Provisioner) -> ScenarioOutcome {
    let dir = tempfile::tempdir().unwrap();
    let settings = SnapshotSettings {
        dir: dir.path().to_path_buf(),
        mode: UpdateMode::No,
    };
    let started = std::time::Instant::now();
    let outcome = run_scenario(provisioner, loaded, &settings).await;
    eprintln!(
        "{}: {} of cluster time in {:?} of wall time; phases: {}",
        loaded.id,
        relapse::report::human_duration(outcome.cluster_time()),
        started.elapsed(),
        relapse::report::timeline(&outcome)
    );
    outcome
}

/// Runs a shipped scenario and requires every phase to pass, printing the failure otherwise.
async fn passes(rel: &str) {
    let loaded = load(rel);
    let outcome = run(&loaded, &SimBackend::default()).await;
    if let Verdict::Failed(f) = &outcome.verdict {
        panic!("{}", relapse::report::failure_details(&outcome, f));
    }
    assert_eq!(outcome.verdict, Verdict::Passed);
    let phases: Vec<Phase> = outcome.phases.iter().map(|p| p.phase).collect();
    let mut expected = vec![Phase::Setup, Phase::Break, Phase::Fix, Phase::Converge];
    if loaded.scenario.counterfactual.enabled {
        expected.push(Phase::Counterfactual);
    }
    assert_eq!(phases, expected);
    assert!(outcome.phases.iter().all(|p| p.passed));
}

#[tokio::test]
async fn arm64_image_on_amd64() {
    passes("workloads/arm64-image-on-amd64.yaml").await;
}

#[tokio::test]
async fn prometheus_crd_missing() {
    passes("monitoring/prometheus-crd-missing.yaml").await;
}

#[tokio::test]
async fn rwo_rollout_deadlock() {
    passes("storage/rwo-rollout-deadlock.yaml").await;
}

#[tokio::test]
async fn temporal_namespace_missing() {
    passes("temporal/temporal-namespace-missing.yaml").await;
}

/// Every event of a cluster, one line each, in the order they were first recorded.
async fn timeline(handle: &SimClusterHandle) -> String {
    let events: kube::Api<Event> = kube::Api::all(handle.client());
    let mut list = events.list(&ListParams::default()).await.unwrap().items;
    let when = |e: &Event| {
        e.first_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default()
    };
    list.sort_by_key(|e| (when(e), e.metadata.name.clone()));
    list.iter()
        .map(|e| {
            format!(
                "{} {} x{} {} {} {}/{}/{} {} [{}] {}",
                when(e),
                e.metadata.name.as_deref().unwrap_or_default(),
                e.count.unwrap_or(0),
                e.type_.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.involved_object.kind.as_deref().unwrap_or_default(),
                e.involved_object.name.as_deref().unwrap_or_default(),
                e.involved_object.uid.as_deref().unwrap_or_default(),
                e.involved_object.field_path.as_deref().unwrap_or_default(),
                e.reporting_component.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn same_scenario_same_event_timeline() {
    let loaded = load("storage/rwo-rollout-deadlock.yaml");
    let mut timelines = Vec::new();
    for _ in 0..2 {
        let keeping = Keeping::default();
        let outcome = run(&loaded, &keeping).await;
        assert_eq!(outcome.verdict, Verdict::Passed, "{outcome:?}");
        let first = keeping.provisioned.lock().unwrap()[0].clone();
        timelines.push(timeline(&first).await);
    }
    assert!(
        timelines[0].contains("Multi-Attach error for volume \"pvc-"),
        "{}",
        timelines[0]
    );
    assert!(timelines[0].lines().count() > 20, "{}", timelines[0]);
    assert_eq!(timelines[0], timelines[1]);
}

#[tokio::test]
async fn crash_loop_back_off_through_the_api() {
    let image = "registry.example/keycloak:26.1.1";
    let mut scenario_images = std::collections::BTreeMap::new();
    scenario_images.insert(
        image.to_owned(),
        ImageBehaviour {
            manifest: ManifestKind::Single,
            platforms: vec!["linux/arm64".into()],
            entrypoint: Some("/opt/keycloak/bin/kc.sh".into()),
            ..ImageBehaviour::default()
        },
    );
    let mut s = load("workloads/arm64-image-on-amd64.yaml").scenario;
    s.cluster = scenario::ClusterShape::default();
    s.images = scenario_images;
    let handle = SimBackend::default().cluster(&s).unwrap();
    let client = handle.client();
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), "default");
    let d = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "keycloak"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "keycloak"}},
                 "template": {"metadata": {"labels": {"app": "keycloak"}},
                              "spec": {"containers": [{"name": "keycloak", "image": image}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();

    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
    let mut messages: Vec<String> = Vec::new();
    let deadline = Duration::from_secs(30 * 60);
    while messages.len() < 5 && handle.now() < deadline {
        handle.advance(deadline).await.unwrap();
        for p in pods.list(&ListParams::default()).await.unwrap().items {
            let statuses = p
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default();
            for cs in statuses {
                let waiting = cs.state.and_then(|s| s.waiting);
                if let Some(w) = waiting
                    && w.reason.as_deref() == Some("CrashLoopBackOff")
                    && let Some(m) = w.message
                    && messages.last() != Some(&m)
                {
                    // While backing off, the last run shows as terminated with runc's exit code.
                    let last = cs.last_state.and_then(|s| s.terminated).unwrap();
                    assert_eq!(
                        (last.reason.as_deref(), last.exit_code),
                        (Some("Error"), 255)
                    );
                    messages.push(m);
                }
            }
        }
    }
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let name = pod.metadata.name.clone().unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let expected: Vec<String> = ["10s", "20s", "40s", "1m20s", "2m40s"]
        .iter()
        .map(|d| {
            format!("back-off {d} restarting failed container=keycloak pod={name}_default({uid})")
        })
        .collect();
    assert_eq!(messages, expected);

    // The BackOff event is one object whose count grows, as the kubelet's recorder does it.
    let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let backoff: Vec<Event> = events
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("BackOff"))
        .collect();
    assert_eq!(backoff.len(), 1, "{backoff:?}");
    let e = &backoff[0];
    assert_eq!(
        e.message.as_deref(),
        Some(
            format!("Back-off restarting failed container keycloak in pod {name}_default({uid})")
                .as_str()
        )
    );
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert!(e.count.unwrap_or(0) >= 5, "{e:?}");
    assert_eq!(
        e.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
    assert_eq!(
        e.source.as_ref().and_then(|s| s.host.as_deref()),
        Some("node-1")
    );
    assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
    assert_eq!(
        e.involved_object.field_path.as_deref(),
        Some("spec.containers{keycloak}")
    );
    assert!(e.last_timestamp.as_ref().unwrap().0 > e.first_timestamp.as_ref().unwrap().0);

    // The runtime's error is the container's log, and the previous run's too.
    for previous in [false, true] {
        let lp = LogParams {
            previous,
            ..LogParams::default()
        };
        let text = pods.logs(&name, &lp).await.unwrap();
        assert_eq!(text, "exec /opt/keycloak/bin/kc.sh: exec format error\n");
    }
    // The back-off took minutes of cluster time: runs at 0s, 1s, 11s, 31s, 71s and 151s.
    assert!(
        handle.now() > Duration::from_secs(150),
        "{:?}",
        handle.now()
    );
    let _ = Arc::clone(handle.engine());
}
