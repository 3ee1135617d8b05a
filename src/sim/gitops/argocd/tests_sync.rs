//! The application controller and sync operation driven through a simulated cluster.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::client::Client;
use super::repo::{Repos, Tree};
use crate::scenario::{ClusterShape, ImageBehaviour};
use crate::sim::engine::{EngineConfig, SimEngine};

const REPO: &str = "https://git.example/gitops.git";

fn engine(files: &[(&str, &str)]) -> SimEngine {
    let failing: ImageBehaviour = crate::yaml::from_str(
        "requires:\n  - needs:\n      postgres:\n        user: {value: app}\n        password: {value: pw}\n        database: {value: app}\n    otherwise:\n      log: [\"fatal: {error}\"]\n      exitCode: 1\n",
    )
    .expect("behaviour");
    let images = BTreeMap::from([("migrate:1".to_owned(), failing)]);
    let mut e = SimEngine::new(EngineConfig::new(ClusterShape::default(), images).expect("config"))
        .expect("engine");
    let mut repos = Repos::new();
    repos.commit(REPO, tree(files), "initial");
    e.install_argocd(repos).expect("installs");
    e
}

fn tree(files: &[(&str, &str)]) -> Tree {
    files
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect()
}

fn application(e: &SimEngine, sync_policy: Value) {
    let client = Client::new(e.store().clone());
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "targetRevision": "HEAD", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"},
            "syncPolicy": sync_policy,
        },
    });
    client
        .apply(&app, super::client::ApplyOptions::default())
        .expect("application applies");
}

fn app(e: &SimEngine) -> Value {
    Client::new(e.store().clone())
        .get("argoproj.io/v1alpha1", "Application", Some("argocd"), "web")
        .expect("get")
        .expect("exists")
}

fn after(e: &SimEngine, secs: i64) -> Timestamp {
    e.store().clock().now() + SignedDuration::from_secs(secs)
}

fn events(e: &SimEngine) -> Vec<String> {
    Client::new(e.store().clone())
        .list("v1", "Event", Some("argocd"))
        .expect("events")
        .iter()
        .filter(|ev| ev["source"]["component"] == super::COMPONENT)
        .map(|ev| {
            format!(
                "{} {}",
                ev["reason"].as_str().unwrap_or_default(),
                ev["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx:1.27}]\n";

#[test]
fn an_automated_app_syncs_a_deployment_and_reports_synced_and_healthy() {
    let mut e = engine(&[("app/web.yaml", DEPLOYMENT)]);
    application(&e, json!({"automated": {"prune": true}}));
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["sync"]["status"], "Synced", "{a:#}");
    assert_eq!(a["status"]["operationState"]["phase"], "Succeeded");
    assert_eq!(
        a["status"]["operationState"]["message"],
        "successfully synced (all tasks run)"
    );
    let res = &a["status"]["operationState"]["syncResult"]["resources"][0];
    assert_eq!(res["message"], "deployment.apps/web created");
    assert_eq!(res["status"], "Synced");
    assert!(a["operation"].is_null());
    let live = Client::new(e.store().clone())
        .get("apps/v1", "Deployment", Some("default"), "web")
        .expect("get")
        .expect("created");
    assert_eq!(
        live["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "web:apps/Deployment:default/web"
    );
    let sha = a["status"]["sync"]["revision"]
        .as_str()
        .expect("revision")
        .to_owned();
    let evs = events(&e);
    assert!(
        evs.contains(&format!(
            "OperationStarted Initiated automated sync to '{sha}'"
        )),
        "{evs:?}"
    );
    assert!(
        evs.contains(&format!(
            "OperationCompleted Sync operation to {sha} succeeded"
        )),
        "{evs:?}"
    );
    assert!(
        evs.contains(&"ResourceUpdated Updated sync status:  -> OutOfSync".to_owned()),
        "{evs:?}"
    );
}

const PRESYNC: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {argocd.argoproj.io/hook: PreSync}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: migrate, image: migrate:1}]\n";

#[test]
fn a_failing_presync_hook_fails_the_sync_before_the_main_resources_exist() {
    let mut e = engine(&[("app/web.yaml", DEPLOYMENT), ("app/migrate.yaml", PRESYNC)]);
    application(&e, json!({"automated": {}, "retry": {"limit": 0}}));
    let until = after(&e, 170);
    e.run_until(until).expect("runs");
    let a = app(&e);
    let op = &a["status"]["operationState"];
    assert_eq!(op["phase"], "Failed", "{a:#}");
    assert_eq!(
        op["message"],
        "one or more synchronization tasks completed unsuccessfully"
    );
    let hook = &op["syncResult"]["resources"][0];
    assert_eq!(hook["hookType"], "PreSync");
    assert_eq!(hook["hookPhase"], "Failed");
    assert_eq!(
        hook["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(a["status"]["sync"]["status"], "OutOfSync");
    let client = Client::new(e.store().clone());
    assert!(
        client
            .get("apps/v1", "Deployment", Some("default"), "web")
            .expect("get")
            .is_none()
    );
    let job = client
        .get("batch/v1", "Job", Some("default"), "migrate")
        .expect("get")
        .expect("hook");
    assert!(
        job["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| !f.iter().any(|x| x == super::sync::HOOK_FINALIZER))
    );
    // Not retried automatically for the same revision.
    let conds = a["status"]["conditions"].to_string();
    assert!(conds.contains("Failed last sync attempt to ["), "{conds}");
}

#[test]
fn emptying_the_repository_with_prune_and_without_allow_empty_is_refused() {
    let mut e = engine(&[("app/web.yaml", DEPLOYMENT)]);
    application(&e, json!({"automated": {"prune": true}}));
    let until = after(&e, 60);
    e.run_until(until).expect("runs");
    assert_eq!(app(&e)["status"]["sync"]["status"], "Synced");
    let sha = e
        .commit(REPO, tree(&[("app/README.md", "empty")]), "empty")
        .expect("commits");
    // Noticed only at the next refresh (180s and the app's jitter).
    let soon = after(&e, 30);
    e.run_until(soon).expect("runs");
    assert_ne!(app(&e)["status"]["sync"]["revision"], sha.as_str());
    let later = after(&e, 300);
    e.run_until(later).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["sync"]["revision"], sha.as_str());
    let conds = a["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conds.iter().any(|c| c["type"] == "SyncError"
            && c["message"]
                == format!(
                    "Skipping sync attempt to [{sha}]: auto-sync will wipe out all resources"
                )),
        "{conds:?}"
    );
}

#[test]
fn a_failed_sync_is_retried_with_backoff() {
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
    let mut e = engine(&[("app/cm.yaml", bad)]);
    application(
        &e,
        json!({"automated": {}, "retry": {"limit": 2, "backoff": {"duration": "10s"}}}),
    );
    let until = after(&e, 5);
    e.run_until(until).expect("runs");
    let a = app(&e);
    let msg = a["status"]["operationState"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.starts_with("one or more objects failed to apply (dry run)")
            || msg.contains("Retrying attempt #1 at "),
        "{a:#}"
    );
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["operationState"]["phase"], "Failed", "{a:#}");
    assert_eq!(a["status"]["operationState"]["retryCount"], 2);
    assert!(
        a["status"]["operationState"]["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("(retried 2 times).")
    );
}

const POSTSYNC: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: smoke\n  annotations: {argocd.argoproj.io/hook: PostSync}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: smoke, image: migrate:1}]\n";

#[test]
fn a_new_revision_re_creates_a_failed_hook_whose_pod_template_changed() {
    let cm = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: values}}\ndata: {{v: \"{v}\"}}\n"
        )
    };
    let mut e = engine(&[("app/values.yaml", &cm("1")), ("app/smoke.yaml", POSTSYNC)]);
    application(
        &e,
        json!({"automated": {"prune": true}, "retry": {"limit": 0}}),
    );
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["operationState"]["phase"], "Failed", "{a:#}");
    assert_eq!(a["status"]["sync"]["status"], "Synced");
    // A Job's pod template is immutable: only a client-side dry run (as Argo CD's) lets the
    // new revision reach BeforeHookCreation, which deletes the old Job and creates the new.
    let changed = POSTSYNC.replace(
        "image: migrate:1}",
        "image: migrate:1, env: [{name: X, value: \"2\"}]}",
    );
    let sha = e
        .commit(
            REPO,
            tree(&[("app/values.yaml", &cm("2")), ("app/smoke.yaml", &changed)]),
            "values 2",
        )
        .expect("commits");
    let later = after(&e, 400);
    e.run_until(later).expect("runs");
    let a = app(&e);
    let op = &a["status"]["operationState"];
    assert_eq!(op["syncResult"]["revision"], sha.as_str(), "{a:#}");
    assert_eq!(
        op["message"], "one or more synchronization tasks completed unsuccessfully",
        "{a:#}"
    );
    let job = Client::new(e.store().clone())
        .get("batch/v1", "Job", Some("default"), "smoke")
        .expect("get")
        .expect("hook");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "2"
    );
}

#[test]
fn a_comparison_error_keeps_the_health_of_the_live_resources() {
    let mut e = engine(&[("app/web.yaml", DEPLOYMENT)]);
    application(
        &e,
        json!({"automated": {"prune": true}, "syncOptions": ["ServerSideApply=true"]}),
    );
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["sync"]["status"], "Synced", "{a:#}");
    assert_eq!(a["status"]["health"]["status"], "Healthy", "{a:#}");
    // A field the Deployment schema does not declare: the structured merge diff fails.
    let undeclared = DEPLOYMENT.replace("replicas: 1", "replicas: 1\n  bogus: true");
    e.commit(REPO, tree(&[("app/web.yaml", &undeclared)]), "bogus")
        .expect("commits");
    let later = after(&e, 300);
    e.run_until(later).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["sync"]["status"], "Unknown", "{a:#}");
    let conds = a["status"]["conditions"].to_string();
    assert!(
        conds.contains(
            "Failed to compare desired state to live state: failed to calculate diff: error calculating structured merge diff: error building typed value from config resource: .spec.bogus: field not declared in schema"
        ),
        "{conds}"
    );
    // controller/state.go: setApplicationHealth runs on the live resources all the same.
    assert_eq!(a["status"]["health"]["status"], "Healthy", "{a:#}");
}

#[test]
fn a_sync_asks_for_strict_field_validation_unless_validate_is_false() {
    let undeclared = DEPLOYMENT.replace("replicas: 1", "replicas: 1\n  bogus: true");
    let mut e = engine(&[("app/web.yaml", &undeclared)]);
    application(&e, json!({"automated": {}, "retry": {"limit": 0}}));
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    let op = &a["status"]["operationState"];
    assert_eq!(op["phase"], "Failed", "{a:#}");
    let res = op["syncResult"]["resources"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        res.contains(r#"strict decoding error: unknown field "spec.bogus""#),
        "{a:#}"
    );

    let mut e = engine(&[("app/web.yaml", &undeclared)]);
    application(
        &e,
        json!({"automated": {}, "retry": {"limit": 0}, "syncOptions": ["Validate=false"]}),
    );
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    assert_eq!(a["status"]["operationState"]["phase"], "Succeeded", "{a:#}");
}

#[test]
fn a_custom_resource_hook_without_a_health_check_succeeds_once_created() {
    // gitops-engine sync_context.go, getOperationPhase: a hook whose kind has no health check
    // (KeycloakRealmImport in v3.5.1: resource_customizations/k8s.keycloak.org/ has only
    // Keycloak) succeeds with `<name> created`, whatever its operator reports later.
    let import = "apiVersion: k8s.keycloak.org/v2alpha1\nkind: KeycloakRealmImport\nmetadata:\n  name: realm\n  annotations: {argocd.argoproj.io/hook: PreSync}\nspec: {keycloakCRName: keycloak}\n";
    let mut e = engine(&[("app/web.yaml", DEPLOYMENT), ("app/realm.yaml", import)]);
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "keycloakrealmimports.k8s.keycloak.org"},
        "spec": {
            "group": "k8s.keycloak.org", "scope": "Namespaced",
            "names": {"kind": "KeycloakRealmImport", "plural": "keycloakrealmimports",
                      "singular": "keycloakrealmimport", "listKind": "KeycloakRealmImportList"},
            "versions": [{"name": "v2alpha1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    });
    Client::new(e.store().clone())
        .apply(&crd, super::client::ApplyOptions::default())
        .expect("crd applies");
    let until = after(&e, 5);
    e.run_until(until).expect("runs");
    application(&e, json!({"automated": {}}));
    let until = after(&e, 120);
    e.run_until(until).expect("runs");
    let a = app(&e);
    let op = &a["status"]["operationState"];
    assert_eq!(op["phase"], "Succeeded", "{a:#}");
    let hook = op["syncResult"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "KeycloakRealmImport")
        .expect("the hook's result");
    assert_eq!(hook["hookPhase"], "Succeeded");
    assert_eq!(hook["message"], "realm created");
}
