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

fn load_shipped(rel: &str) -> LoadedScenario {
    scenario::load(&root().join(rel), &root())
        .unwrap_or_else(|e| panic!("{}", scenario::render(&e)))
}

/// The scenario without its fix: the first run fails converge at once and keeps its cluster
/// as the break left it (none where the scenario is ignored here).
async fn broken(mut loaded: LoadedScenario, scratch: &Path) -> Option<Box<dyn Cluster>> {
    let id = loaded.id.clone();
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
            eprintln!("{id}: ignored here ({why})");
            return None;
        }
        Verdict::Passed => panic!("{id} converged without its fix"),
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
        let cluster = broken(load_shipped(rel), dir.path()).await?;
        let served = cluster.serve_for_inspection().await.expect("serve");
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&served, &kubeconfig);
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

/// What `kubectl get -o yaml` and `kubectl logs -p` would have written of a namespace: one
/// `List` per kind, the cluster's nodes and storage classes, and `<pod>_<container>.log`
/// (the previous container's lines where it restarted).
async fn dump(client: &kube::Client, namespace: &str, dir: &Path) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DynamicObject, ListParams, LogParams};
    std::fs::create_dir_all(dir).expect("dump dir");
    let kinds = [
        ("apps/v1", "Deployment", true),
        ("apps/v1", "ReplicaSet", true),
        ("v1", "Pod", true),
        ("v1", "Service", true),
        ("v1", "ConfigMap", true),
        ("v1", "Secret", true),
        ("v1", "PersistentVolumeClaim", true),
        ("v1", "ServiceAccount", true),
        ("v1", "Event", true),
        ("v1", "Node", false),
        ("storage.k8s.io/v1", "StorageClass", false),
    ];
    let mut pods = Vec::new();
    for (api_version, kind, namespaced) in kinds {
        let (ar, _) = relapse::run::steps::resolve(client, api_version, kind)
            .await
            .expect("served");
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let list = api.list(&ListParams::default()).await.expect("list");
        let items: Vec<serde_json::Value> = list
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).expect("json");
                v["apiVersion"] = api_version.into();
                v["kind"] = kind.into();
                v
            })
            .collect();
        if kind == "Pod" {
            pods.clone_from(&items);
        }
        let doc = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}});
        let text = relapse::yaml::to_string(&doc).expect("yaml");
        std::fs::write(dir.join(format!("{}.yaml", kind.to_lowercase())), text)
            .expect("write dump");
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().expect("pod name");
        for c in pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let container = c["name"].as_str().expect("container name");
            let params = LogParams {
                container: Some(container.to_owned()),
                previous: !c["lastState"]["terminated"].is_null(),
                ..LogParams::default()
            };
            if let Ok(text) = api.logs(name, &params).await {
                std::fs::write(dir.join(format!("{name}_{container}.log")), text)
                    .expect("write log");
            }
        }
    }
}

/// The same incident from files: the broken cluster dumped as kubectl would have, captured
/// with `--from DIR`, replays with its symptoms.
#[test]
fn a_capture_from_kubectl_dumps_replays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dumps = dir.path().join("dumps");
    let rt = runtime();
    rt.block_on(async {
        let cluster = broken(
            load_shipped("workloads/arm64-image-on-amd64.yaml"),
            dir.path(),
        )
        .await
        .expect("sim");
        dump(&cluster.client(), "keycloak", &dumps).await;
    });
    drop(rt);
    assert!(
        std::fs::read_dir(&dumps)
            .expect("dumps")
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with("_keycloak.log")),
        "the dump has the crashed container's log"
    );
    let captured = capture::from_dir(&dumps, &options("arm64-from-files", "workloads", &[]))
        .unwrap_or_else(|e| panic!("{}", relapse::error_chain::error_chain(&e)));
    let out = dir.path().join("scenarios");
    capture::write_files(&captured, &out).expect("write");
    let loaded = load_captured(&out, "workloads", "arm64-from-files");
    let s = &loaded.scenario.break_.symptoms;
    assert!(
        logged(s, "exec /opt/keycloak/bin/kc.sh: exec format error"),
        "{s:#?}"
    );
    assert!(
        event(
            s,
            "BackOff",
            "Back-off restarting failed container keycloak in pod keycloak-"
        ),
        "{s:#?}"
    );
    let image =
        &loaded.scenario.images["123456789012.dkr.ecr.eu-west-2.amazonaws.com/keycloak:26.1.1"];
    assert_eq!(image.platforms, ["linux/arm64"]);
    assert_eq!(image.entrypoint.as_deref(), Some("/opt/keycloak/bin/kc.sh"));
    replay(&loaded, dir.path());
}

const CANARY_DATA: &str = "canary-data-7d41c9e2b8";
const CANARY_STRING: &str = "canary-string-5f0a3b6d11";

/// A program that logs the credentials it read from its Secret, and crashes.
fn leaky_scenario(scenarios: &Path) -> LoadedScenario {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY_DATA);
    let text = format!(
        r#"name: leaky-credentials
description: A program logs the credentials it read and exits.
source: tests/capture.rs
images:
  registry.example.com/leaky:1.0:
    logs: ["connecting with password {CANARY_DATA} and token {CANARY_STRING}"]
    exitAfter: {{duration: 1s, code: 1}}
setup:
  - apply:
      inline: {{apiVersion: v1, kind: Namespace, metadata: {{name: canary}}}}
break:
  steps:
    - apply:
        inline:
          - apiVersion: v1
            kind: Secret
            metadata: {{name: leaky-credentials, namespace: canary}}
            data: {{password: {encoded}}}
            stringData: {{token: {CANARY_STRING}}}
          - apiVersion: apps/v1
            kind: Deployment
            metadata: {{name: leaky, namespace: canary, labels: {{app: leaky}}}}
            spec:
              replicas: 1
              selector: {{matchLabels: {{app: leaky}}}}
              template:
                metadata: {{labels: {{app: leaky}}}}
                spec:
                  containers:
                    - name: leaky
                      image: registry.example.com/leaky:1.0
                      envFrom: [{{secretRef: {{name: leaky-credentials}}}}]
  symptoms:
    - object:
        kind: Pod
        namespace: canary
        labels: {{app: leaky}}
        matches: {{status: {{containerStatuses: [{{state: {{waiting: {{reason: CrashLoopBackOff}}}}}}]}}}}
        within: 5m
fix:
  - sleep: 1s
converge:
  within: 1m
  expect:
    - object: {{kind: Deployment, name: leaky, namespace: canary, matches: {{status: {{readyReplicas: 1}}}}}}
"#
    );
    let file = scenarios.join("canary").join("leaky-credentials.yaml");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
    std::fs::write(&file, text).expect("scenario");
    scenario::load(&file, scenarios).unwrap_or_else(|e| panic!("{}", scenario::render(&e)))
}

/// Every form a canary could take in an output.
fn forbidden() -> Vec<String> {
    use base64::Engine as _;
    [CANARY_DATA, CANARY_STRING]
        .iter()
        .flat_map(|c| {
            [
                (*c).to_owned(),
                base64::engine::general_purpose::STANDARD.encode(c),
            ]
        })
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    for f in forbidden() {
        assert!(!text.contains(&f), "{what} contains a secret value: {text}");
    }
}

/// Runs `relapse capture` with debug logging and checks its stdout, stderr and every file it
/// wrote for the canaries.
fn capture_cli_is_clean(args: &[&str], out: &Path) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relapse"))
        .arg("capture")
        .args(args)
        .args(["--name", "leaky", "--area", "canary", "--out"])
        .arg(out)
        .env("RUST_LOG", "debug")
        .output()
        .expect("relapse capture");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("wrote "), "{stdout}");
    assert_clean("stdout", &stdout);
    assert_clean("stderr", &stderr);
    let mut files = 0;
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("out dir")
            .filter_map(Result::ok)
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("output");
                assert_clean(&path.display().to_string(), &text);
            }
        }
    }
    assert!(files >= 3, "a scenario and its manifests were written");
    let manifests =
        std::fs::read_to_string(out.join("canary/manifests/leaky/objects.yaml")).expect("objects");
    assert!(
        manifests.contains("password: TODO-password") && manifests.contains("token: TODO-token"),
        "{manifests}"
    );
}

/// Secret values reach no output of `relapse capture`, live or from files, although the
/// cluster (and the dump) holds them in the Secret and in the program's log.
#[test]
fn secret_values_reach_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let loaded = leaky_scenario(&dir.path().join("scenarios"));
    let dumps = dir.path().join("dumps");
    let rt = runtime();
    let cluster = rt.block_on(broken(loaded, dir.path())).expect("sim");
    let served = rt.block_on(cluster.serve_for_inspection()).expect("serve");
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&served, &kubeconfig);
    rt.block_on(dump(&cluster.client(), "canary", &dumps));
    // The inputs do hold the canaries: in the Secret and in the program's log.
    let dumped: String = std::fs::read_dir(&dumps)
        .expect("dumps")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).expect("dump"))
        .collect();
    for f in forbidden() {
        if f == CANARY_DATA || f == CANARY_STRING {
            assert!(dumped.contains(&f), "the dump holds {f}");
        }
    }
    // The served cluster answers while the binary runs on this runtime's worker threads.
    capture_cli_is_clean(
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "--namespace",
            "canary",
        ],
        &dir.path().join("live"),
    );
    capture_cli_is_clean(
        &["--from", dumps.to_str().expect("utf-8")],
        &dir.path().join("files"),
    );
    drop(served);
}

fn relapse(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(args)
        .output()
        .expect("the relapse binary runs")
}

#[test]
fn capture_help_and_refused_arguments() {
    let help = relapse(&["capture", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    insta::assert_snapshot!("capture_help", String::from_utf8_lossy(&help.stdout));
    // Without --from, a namespace is needed; a set-based selector is not understood.
    let out = relapse(&["capture", "--name", "x", "--area", "y"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--namespace"));
    let dir = tempfile::tempdir().expect("temp dir");
    let from = dir.path().to_str().expect("utf-8");
    let out = relapse(&[
        "capture",
        "--from",
        from,
        "--name",
        "x",
        "--area",
        "y",
        "-l",
        "app in (a,b)",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid selector `app in (a,b)`"));
    let out = relapse(&[
        "capture", "--from", from, "--name", "Bad_Name", "--area", "y",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --name `Bad_Name`"));
    let out = relapse(&["capture", "--from", from, "--name", "x", "--area", "y"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workload found to capture"));
}

/// A capture never replaces a scenario that exists.
#[test]
fn an_existing_scenario_is_not_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).expect("dumps");
    std::fs::write(
        dumps.join("pods.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: web, namespace: shop, labels: {app: web}}\n  spec: {containers: [{name: web, image: nginx:1.27}]}\n  status: {phase: Running}\n",
    )
    .expect("dump");
    let out = dir.path().join("scenarios");
    let captured = capture::from_dir(&dumps, &options("web", "shop", &[])).expect("capture");
    capture::write_files(&captured, &out).expect("first write");
    let existing = out.join("shop/web.yaml");
    std::fs::write(&existing, "mine").expect("edit");
    let err = capture::write_files(&captured, &out).expect_err("refused");
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&existing).expect("kept"), "mine");
}

/// Kubectl dumps of three broken Deployments (a missing tag, a private registry, a pod no node
/// fits) and an OOM-killed one: the symptoms and image behaviours a real cluster's texts give.
#[test]
fn pull_errors_scheduling_and_oom_kills_from_kubectl_dumps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).expect("dumps");
    let deployment = |name: &str, image: &str, extra: &str| {
        format!(
            "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {{name: {name}, namespace: shop, uid: d-{name}, labels: {{app: {name}}}, creationTimestamp: '2025-03-01T10:00:00Z'}}\n  spec:\n    replicas: 1\n    selector: {{matchLabels: {{app: {name}}}}}\n    template:\n      metadata: {{labels: {{app: {name}}}}}\n      spec: {{containers: [{{name: {name}, image: '{image}'{extra}}}]}}\n"
        )
    };
    let pod = |name: &str, image: &str, status: &str| {
        format!(
            "- apiVersion: v1\n  kind: Pod\n  metadata: {{name: {name}-7c9f6d8b4-qwxzt, generateName: {name}-7c9f6d8b4-, namespace: shop, labels: {{app: {name}, pod-template-hash: 7c9f6d8b4}}, ownerReferences: [{{kind: ReplicaSet, name: {name}-7c9f6d8b4, uid: r-{name}, controller: true}}]}}\n  spec: {{containers: [{{name: {name}, image: '{image}', resources: {{limits: {{memory: 256Mi}}}}}}]}}\n  status: {status}\n"
        )
    };
    let rs = |name: &str| {
        format!(
            "- apiVersion: apps/v1\n  kind: ReplicaSet\n  metadata: {{name: {name}-7c9f6d8b4, namespace: shop, uid: r-{name}, labels: {{pod-template-hash: 7c9f6d8b4}}, annotations: {{deployment.kubernetes.io/revision: '1'}}, ownerReferences: [{{kind: Deployment, name: {name}, uid: d-{name}, controller: true}}]}}\n"
        )
    };
    let missing = "docker.io/library/nginx:1.99";
    let private = "ghcr.io/acme/api:1.0";
    let waiting = |reason: &str, message: &str| {
        format!(
            "{{phase: Pending, containerStatuses: [{{name: NAME, ready: false, restartCount: 0, image: x, state: {{waiting: {{reason: {reason}, message: '{message}'}}}}}}]}}"
        )
    };
    let not_found = format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{missing}\": failed to resolve reference \"{missing}\": {missing}: not found"
    );
    let unauthorized = format!(
        "rpc error: code = Unknown desc = failed to pull and unpack image \"{private}\": failed to resolve reference \"{private}\": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Aacme%2Fapi%3Apull&service=ghcr.io: 401 Unauthorized"
    );
    let unschedulable = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    let mut items = String::new();
    items.push_str(&deployment("web", missing, ""));
    items.push_str(&rs("web"));
    items.push_str(&pod(
        "web",
        missing,
        &waiting("ErrImagePull", &not_found).replace("NAME", "web"),
    ));
    items.push_str(&deployment("api", private, ""));
    items.push_str(&rs("api"));
    items.push_str(&pod(
        "api",
        private,
        &waiting(
            "ImagePullBackOff",
            &format!("Back-off pulling image \"{private}\""),
        )
        .replace("NAME", "api"),
    ));
    items.push_str(&deployment(
        "batch",
        "busybox:1.36",
        ", nodeSelector: {disk: ssd}",
    ));
    items.push_str(&rs("batch"));
    items.push_str(&pod("batch", "busybox:1.36", &format!("{{phase: Pending, conditions: [{{type: PodScheduled, status: 'False', reason: Unschedulable, message: \"{unschedulable}\", lastTransitionTime: '2025-03-01T10:00:01Z'}}]}}")));
    items.push_str(&deployment(
        "cache",
        "redis:7.2",
        ", resources: {limits: {memory: 256Mi}}",
    ));
    items.push_str(&rs("cache"));
    items.push_str(&pod("cache", "redis:7.2", "{phase: Running, containerStatuses: [{name: cache, ready: false, restartCount: 3, image: 'redis:7.2', state: {waiting: {reason: CrashLoopBackOff, message: 'back-off 40s restarting failed container=cache'}}, lastState: {terminated: {reason: OOMKilled, exitCode: 137, startedAt: '2025-03-01T10:01:00Z', finishedAt: '2025-03-01T10:01:09Z'}}}]}"));
    std::fs::write(
        dumps.join("all.yaml"),
        format!("apiVersion: v1\nkind: List\nitems:\n{items}"),
    )
    .expect("dump");
    let warning = |reason: &str, pod: &str, message: &str, last: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod}.1"), "namespace": "shop"},
            "type": "Warning", "reason": reason, "message": message,
            "involvedObject": {"kind": "Pod", "name": format!("{pod}-7c9f6d8b4-qwxzt"), "namespace": "shop"},
            "firstTimestamp": "2025-03-01T10:00:02Z", "lastTimestamp": last,
        })
    };
    let events = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        warning("Failed", "api", &format!("Failed to pull image \"{private}\": {unauthorized}"), "2025-03-01T10:05:00Z"),
        warning("FailedScheduling", "batch", unschedulable, "2025-03-01T10:05:00Z"),
        // Older than --since: left out.
        warning("Failed", "web", "Error: ErrImagePull", "2025-03-01T08:00:00Z"),
    ]});
    std::fs::write(dumps.join("events.json"), events.to_string()).expect("events");
    let captured = capture::from_dir(&dumps, &options("shop-outage", "workloads", &["shop"]))
        .unwrap_or_else(|e| panic!("{}", relapse::error_chain::error_chain(&e)));
    let out = dir.path().join("scenarios");
    capture::write_files(&captured, &out).expect("write");
    let loaded = load_captured(&out, "workloads", "shop-outage");
    let s = &loaded.scenario;
    assert!(s.images[missing].missing, "{:#?}", s.images);
    assert!(s.images[private].private, "{:#?}", s.images);
    assert_eq!(s.images["redis:7.2"].memory.as_deref(), Some("512Mi"));
    let symptoms = &s.break_.symptoms;
    assert!(
        event(symptoms, "FailedScheduling", unschedulable),
        "{symptoms:#?}"
    );
    assert!(
        object(symptoms, "Pod", "didn't match Pod's node affinity/selector"),
        "{symptoms:#?}"
    );
    assert!(object(symptoms, "Pod", "OOMKilled"), "{symptoms:#?}");
    assert!(
        !event(symptoms, "Failed", "Error: ErrImagePull"),
        "{symptoms:#?}"
    );
    // `--selector` keeps one workload and what it needs.
    let mut only = options("cache-only", "workloads", &["shop"]);
    only.selector = Some(capture::Selector::parse("app=cache").expect("selector"));
    let captured = capture::from_dir(&dumps, &only).expect("capture");
    assert_eq!(
        captured
            .summary
            .iter()
            .filter(|l| l.starts_with("captured "))
            .count(),
        1
    );
}

/// Writes the kubeconfig that reaches a served simulated cluster to `path`.
fn write_kubeconfig(served: &relapse::backend::Inspection, path: &Path) {
    let relapse::backend::Access::Kubeconfig(text) = &served.access else {
        panic!("a served simulated cluster is reached through a kubeconfig of its own");
    };
    relapse::sim::serve::write_kubeconfig_file(path, text).expect("kubeconfig");
}
