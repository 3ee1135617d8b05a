//! `relapse capture` closes the loop: a shipped scenario is set up and broken on a simulated
//! cluster, the cluster is served over HTTPS and captured through its kubeconfig (the kube
//! client the kubeconfig backend uses), and the captured scenario, once given a fix, replays
//! on a fresh simulated cluster with every captured symptom appearing. The same from files
//! (`--from DIR`), and no Secret value reaches any output.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test aborts it with its message"
)]

use std::path::{Path, PathBuf};

use relapse::backend::Cluster;
use relapse::backend::sim::SimBackend;
use relapse::capture::{self, CaptureOptions};
use relapse::report::failure_details;
use relapse::run::outcome::{Phase, Verdict};
use relapse::run::snapshot_file::UpdateMode;
use relapse::run::{SnapshotSettings, run_scenario, run_scenario_keeping};
use relapse::scenario::{self, Duration, Expectation, LoadError, LoadedScenario};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn settings(dir: &Path) -> SnapshotSettings {
    SnapshotSettings {
        dir: dir.to_path_buf(),
        mode: UpdateMode::No,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The shipped scenario without its fix: the first run fails converge at once and keeps its
/// cluster as the break left it.
async fn broken(rel: &str, scratch: &Path) -> Option<Box<dyn Cluster>> {
    let mut loaded = scenario::load(&root().join(rel), &root())
        .unwrap_or_else(|e| panic!("{}", scenario::render(&e)));
    loaded.scenario.fix = vec![];
    loaded.scenario.mutants.clear();
    loaded.scenario.converge.within = Duration::from_secs(1);
    loaded.scenario.counterfactual.enabled = false;
    let (outcome, kept) =
        run_scenario_keeping(&SimBackend::default(), &loaded, &settings(scratch)).await;
    match &outcome.verdict {
        Verdict::Failed(f) => {
            assert_eq!(f.phase, Phase::Converge, "{}", failure_details(&outcome, f))
        }
        Verdict::Ignored(why) => {
            eprintln!("{rel}: ignored here ({why})");
            return None;
        }
        Verdict::Passed => panic!("{rel} converged without its fix"),
    }
    kept
}

fn options(name: &str, area: &str, namespaces: &[&str]) -> CaptureOptions {
    CaptureOptions {
        name: name.to_owned(),
        area: area.to_owned(),
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        selector: None,
        since: Some(Duration::from_secs(3600)),
        log_lines: 20,
    }
}

/// Loads the captured scenario: it fails only for its missing fix; with one that changes
/// nothing it loads.
fn load_captured(out: &Path, area: &str, name: &str) -> LoadedScenario {
    let file = out.join(area).join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&file).expect("captured scenario");
    match scenario::load(&file, out) {
        Ok(_) => panic!("a capture without a fix loaded"),
        Err(LoadError::Invalid { problems, .. }) => {
            let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
            assert_eq!(
                messages,
                ["no fix steps: a scenario replays a documented fix"]
            );
        }
        Err(e) => panic!("{}", scenario::render(&e)),
    }
    std::fs::write(&file, text.replace("fix: []\n", "fix:\n  - sleep: 1s\n")).expect("write");
    scenario::load(&file, out).unwrap_or_else(|e| panic!("{}\n{text}", scenario::render(&e)))
}

/// Replays the capture on a fresh cluster: setup and break pass, so every symptom appeared
/// (and none before the break). Without a real fix the run fails later, in converge, or in
/// the snapshot when the workloads themselves run (what was missing was never captured).
fn replay(loaded: &LoadedScenario, scratch: &Path) {
    let outcome = runtime().block_on(run_scenario(
        &SimBackend::default(),
        loaded,
        &settings(scratch),
    ));
    let text = std::fs::read_to_string(&loaded.path).unwrap_or_default();
    let passed = |phase| outcome.phases.iter().any(|p| p.phase == phase && p.passed);
    let details = match &outcome.verdict {
        Verdict::Failed(f) => failure_details(&outcome, f),
        other => format!("{other:?}"),
    };
    assert!(
        passed(Phase::Setup) && passed(Phase::Break),
        "{details}\n--- captured scenario:\n{text}"
    );
}

/// Breaks the shipped scenario, captures it live through a kubeconfig, replays the capture.
/// Returns the captured scenario's symptoms.
fn round_trip(rel: &str, namespaces: &[&str]) -> Option<Vec<Expectation>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (area, name) = rel
        .trim_end_matches(".yaml")
        .split_once('/')
        .expect("area/name");
    let name = format!("{name}-captured");
    let out = dir.path().join("scenarios");
    let rt = runtime();
    let captured = rt.block_on(async {
        let cluster = broken(rel, dir.path()).await?;
        let served = cluster.serve_for_inspection().await.expect("serve");
        let kubeconfig = dir.path().join("kubeconfig");
        served.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let captured =
            capture::from_kubeconfig(Some(&kubeconfig), None, &options(&name, area, namespaces))
                .await
                .unwrap_or_else(|e| panic!("{}", relapse::error_chain::error_chain(&e)));
        drop(served);
        Some(captured)
    })?;
    drop(rt);
    capture::write_files(&captured, &out).expect("write");
    // Shown with --nocapture, for review.
    for (path, text) in &captured.files {
        println!("--- {}\n{text}", path.display());
    }
    let loaded = load_captured(&out, area, &name);
    replay(&loaded, dir.path());
    Some(loaded.scenario.break_.symptoms)
}

fn has(symptoms: &[Expectation], what: impl Fn(&Expectation) -> bool) -> bool {
    symptoms.iter().any(what)
}

fn logged(symptoms: &[Expectation], text: &str) -> bool {
    has(
        symptoms,
        |s| matches!(s, Expectation::Log(l) if l.contains.contains(text)),
    )
}

fn event(symptoms: &[Expectation], reason: &str, message: &str) -> bool {
    has(
        symptoms,
        |s| matches!(s, Expectation::Event(e) if e.reason == reason && e.message.as_deref().is_some_and(|m| m.starts_with(message))),
    )
}

fn object(symptoms: &[Expectation], kind: &str, text: &str) -> bool {
    has(
        symptoms,
        |s| matches!(s, Expectation::Object(o) if o.kind == kind && o.matches.to_string().contains(text)),
    )
}

#[test]
fn arm64_image_on_amd64_round_trips() {
    let s = round_trip("workloads/arm64-image-on-amd64.yaml", &["keycloak"]).expect("sim");
    assert!(
        logged(&s, "exec /opt/keycloak/bin/kc.sh: exec format error"),
        "{s:#?}"
    );
    assert!(object(&s, "Pod", "CrashLoopBackOff"), "{s:#?}");
    assert!(
        event(
            &s,
            "BackOff",
            "Back-off restarting failed container keycloak in pod keycloak-"
        ),
        "{s:#?}"
    );
}

#[test]
fn prometheus_crd_missing_round_trips() {
    let s = round_trip("monitoring/prometheus-crd-missing.yaml", &["monitoring"]).expect("sim");
    assert!(
        logged(
            &s,
            "failed to list *v1.Prometheus: the server could not find the requested resource (get prometheuses.monitoring.coreos.com)"
        ),
        "{s:#?}"
    );
}

#[test]
fn rwo_rollout_deadlock_round_trips() {
    let s = round_trip("storage/rwo-rollout-deadlock.yaml", &["monitoring"]).expect("sim");
    assert!(
        event(
            &s,
            "FailedAttachVolume",
            "Multi-Attach error for volume \"pvc-"
        ),
        "{s:#?}"
    );
    assert!(
        object(&s, "Deployment", "ProgressDeadlineExceeded"),
        "{s:#?}"
    );
    assert!(object(&s, "Pod", "PodInitializing"), "{s:#?}");
}

#[test]
fn missing_secret_round_trips() {
    let s = round_trip(
        "secrets/missing-secret-createcontainerconfigerror.yaml",
        &["ameide-dev"],
    )
    .expect("sim");
    assert!(
        object(
            &s,
            "Pod",
            "secret \\\"grafana-admin-credentials\\\" not found"
        ),
        "{s:#?}"
    );
    assert!(
        event(
            &s,
            "Failed",
            "Error: secret \"grafana-admin-credentials\" not found"
        ),
        "{s:#?}"
    );
    assert!(
        object(&s, "Deployment", "MinimumReplicasUnavailable"),
        "{s:#?}"
    );
}

/// The database is out of the capture's sight: the failed logins reach it only as the
/// program's log lines and crash loop, which the capture replays with a stand-in program
/// (`logs` and `exitAfter`); the `sqlError` symptom has no capture.
#[test]
fn postgres_role_never_created_round_trips_through_its_logs() {
    let Some(s) = round_trip("postgres/role-never-created.yaml", &["backstage"]) else {
        return;
    };
    assert!(
        logged(
            &s,
            "password authentication failed for user \"backstage_app\""
        ),
        "{s:#?}"
    );
    assert!(object(&s, "Pod", "CrashLoopBackOff"), "{s:#?}");
}
