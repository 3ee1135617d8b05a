//! The named failures' symptoms as a person sees them with a real `kubectl` against the
//! simulated cluster: STATUS columns, events and logs read exactly as on a real cluster.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::path::Path;
use std::time::Duration;

use relapse::backend::sim::SimBackend;
use relapse::run::steps;
use relapse::scenario::{self, LoadedScenario, Step};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";

fn load(rel: &str) -> LoadedScenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    scenario::load(&root.join(rel), &root).unwrap_or_else(|e| panic!("{}", scenario::render(&e)))
}

/// Runs setup and break steps, lets `minutes` of simulated time pass, then hands the cluster to kubectl.
async fn broken(
    rel: &str,
    minutes: i64,
) -> Option<(
    relapse::backend::sim::SimClusterHandle,
    relapse::sim::TlsEndpoint,
    tempfile::TempDir,
)> {
    if !Path::new(KUBECTL).exists() {
        // .ci/run installs kubectl; a machine without it cannot run this check.
        eprintln!("ignored: {KUBECTL} is not installed");
        return None;
    }
    let loaded = load(rel);
    let handle = SimBackend::default()
        .cluster(&loaded.scenario)
        .expect("sim cluster");
    let client = handle.engine().lock().expect("engine").client();
    for step in loaded
        .scenario
        .setup
        .iter()
        .chain(&loaded.scenario.break_.steps)
    {
        match step {
            Step::Apply(a) => {
                let objects = steps::apply_objects(a, &loaded.manifests).expect("objects");
                // An apply expected to fail (a missing CRD) fails here too; that is the symptom.
                let _ = steps::apply(&client, a, &objects).await;
            }
            Step::Patch(p) => steps::patch(&client, p).await.expect("patch"),
            Step::Expect(_) => {
                let mut engine = handle.engine().lock().expect("engine");
                let until = engine.now() + jiff::SignedDuration::from_mins(5);
                engine.run_until(until).expect("engine runs");
            }
            other => panic!("step {} not used by the named scenarios", other.keyword()),
        }
    }
    {
        let mut engine = handle.engine().lock().expect("engine");
        let until = engine.now() + jiff::SignedDuration::from_mins(minutes);
        engine.run_until(until).expect("engine runs");
    }
    let api = handle
        .engine()
        .lock()
        .expect("engine")
        .cluster()
        .api()
        .clone();
    let endpoint = relapse::sim::serve::serve_tls(api).await.expect("tls");
    let dir = tempfile::tempdir().expect("temp dir");
    endpoint
        .write_kubeconfig(&dir.path().join("kubeconfig"))
        .expect("kubeconfig");
    Some((handle, endpoint, dir))
}

async fn kubectl(dir: &tempfile::TempDir, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(KUBECTL)
            .args(args)
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .env("HOME", dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl finishes within 60s")
    .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm64_image_crash_loops_as_kubectl_shows_it() {
    let Some((_handle, _endpoint, dir)) = broken("workloads/arm64-image-on-amd64.yaml", 5).await
    else {
        return;
    };
    let pods = kubectl(&dir, &["get", "pods", "-n", "keycloak"]).await;
    assert!(
        pods.lines().next().is_some_and(|h| h
            .split_whitespace()
            .eq(["NAME", "READY", "STATUS", "RESTARTS", "AGE"])),
        "{pods}"
    );
    let crashing = pods
        .lines()
        .find(|l| l.contains("CrashLoopBackOff"))
        .unwrap_or_else(|| panic!("no CrashLoopBackOff row:\n{pods}"));
    assert!(crashing.contains("0/1"), "{crashing}");
    let name = crashing.split_whitespace().next().expect("pod name");
    let logs = kubectl(&dir, &["logs", "-n", "keycloak", name, "--previous"]).await;
    assert_eq!(
        logs.trim_end(),
        "exec /opt/keycloak/bin/kc.sh: exec format error"
    );
    let events = kubectl(&dir, &["get", "events", "-n", "keycloak"]).await;
    assert!(
        events.contains("Back-off restarting failed container keycloak in pod keycloak-"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rwo_deadlock_shows_multi_attach_and_init() {
    let Some((_handle, _endpoint, dir)) = broken("storage/rwo-rollout-deadlock.yaml", 11).await
    else {
        return;
    };
    let pods = kubectl(&dir, &["get", "pods", "-n", "monitoring"]).await;
    assert!(pods.lines().any(|l| l.contains("Init:0/1")), "{pods}");
    assert!(
        pods.lines().any(|l| l.contains("Running")),
        "the old pod keeps running:\n{pods}"
    );
    let events = kubectl(&dir, &["get", "events", "-n", "monitoring"]).await;
    assert!(
        events.contains("Multi-Attach error for volume \"pvc-"),
        "{events}"
    );
    assert!(
        events.contains("Volume is already used by pod(s) grafana-"),
        "{events}"
    );
    let rollout = kubectl(
        &dir,
        &[
            "get",
            "deployment",
            "grafana",
            "-n",
            "monitoring",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
        ],
    )
    .await;
    assert_eq!(rollout, "ProgressDeadlineExceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_prometheus_crd_shows_in_operator_logs() {
    let Some((_handle, _endpoint, dir)) = broken("monitoring/prometheus-crd-missing.yaml", 2).await
    else {
        return;
    };
    let pods = kubectl(&dir, &["get", "pods", "-n", "monitoring"]).await;
    assert!(
        pods.lines()
            .any(|l| l.starts_with("kube-prometheus-stack-operator-")
                && l.contains("1/1")
                && l.contains("Running")),
        "{pods}"
    );
    let logs = kubectl(
        &dir,
        &[
            "logs",
            "-n",
            "monitoring",
            "deploy/kube-prometheus-stack-operator",
        ],
    )
    .await;
    assert!(logs.contains("failed to list *v1.Prometheus: the server could not find the requested resource (get prometheuses.monitoring.coreos.com)"), "{logs}");
    let sts = kubectl(
        &dir,
        &["get", "statefulsets", "-n", "monitoring", "-o", "name"],
    )
    .await;
    assert!(
        !sts.contains("prometheus-kube-prometheus-stack-prometheus"),
        "{sts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_temporal_namespace_crash_loops() {
    let Some((_handle, _endpoint, dir)) =
        broken("temporal/temporal-namespace-missing.yaml", 5).await
    else {
        return;
    };
    let pods = kubectl(
        &dir,
        &[
            "get",
            "pods",
            "-n",
            "ameide-local",
            "-l",
            "app.kubernetes.io/name=workflows-runtime",
        ],
    )
    .await;
    assert!(
        pods.lines()
            .any(|l| l.contains("CrashLoopBackOff") || l.contains("Error")),
        "{pods}"
    );
    let logs = kubectl(
        &dir,
        &["logs", "-n", "ameide-local", "deploy/workflows-runtime"],
    )
    .await;
    assert!(
        logs.contains("Temporal namespace is missing; create it or update configuration"),
        "{logs}"
    );
}
