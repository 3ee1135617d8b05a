use serde_json::json;

use super::*;
use crate::sim::patch::{PatchKind, apply_patch};

const NOW: &str = "2025-01-02T03:04:05Z";
const LATER: &str = "2025-01-02T03:05:00Z";

fn ssa(
    current: Option<&Value>,
    body: &str,
    manager: &str,
    force: bool,
) -> Result<Value, PatchError> {
    let config: Value = crate::yaml::value(body).unwrap();
    let api_version = config["apiVersion"]
        .as_str()
        .unwrap_or("apps/v1")
        .to_owned();
    let kind = config["kind"].as_str().unwrap_or("Deployment").to_owned();
    apply_patch(&PatchRequest {
        kind: PatchKind::Apply,
        api_version: &api_version,
        object_kind: &kind,
        current,
        body: body.as_bytes(),
        field_manager: Some(manager),
        force,
        now: NOW,
    })
}

const DEPLOYMENT: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.0
        ports:
        - containerPort: 80
";

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
}

#[test]
fn apply_creates_with_the_structured_merge_diff_field_set() {
    let obj = ssa(None, DEPLOYMENT, "kubectl", false).unwrap();
    assert_eq!(obj["spec"]["replicas"], 2);
    let e = entry(&obj, "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], NOW);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                    }}}
                }
            }
        })
    );
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let obj = ssa(None, DEPLOYMENT, "kubectl", false).unwrap();
    let again = ssa(Some(&obj), DEPLOYMENT, "kubectl", false).unwrap();
    assert_eq!(again, obj);
}

#[test]
fn fields_the_applier_drops_are_removed_unless_someone_else_owns_them() {
    let with_tier = DEPLOYMENT.replace(
        "labels: {app: web}\nspec",
        "labels: {app: web, tier: a, team: x}\nspec",
    );
    let obj = ssa(None, &with_tier, "kubectl", false).unwrap();
    // Another manager changes `team` with a plain update and so owns it.
    let mut updated = obj.clone();
    updated["metadata"]["labels"]["team"] = json!("y");
    record_update("kubectl-edit", "apps/v1", Some(&obj), &mut updated, LATER);
    let out = ssa(Some(&updated), DEPLOYMENT, "kubectl", false).unwrap();
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "team": "y"})
    );
    let fields = &entry(&out, "kubectl-edit")["fieldsV1"];
    assert_eq!(fields, &json!({"f:metadata": {"f:labels": {"f:team": {}}}}));
}

#[test]
fn conflicting_with_an_update_manager_is_a_409_naming_it() {
    let obj = ssa(None, DEPLOYMENT, "kubectl", false).unwrap();
    let mut scaled = obj.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(
        "kubectl-client-side-apply",
        "apps/v1",
        Some(&obj),
        &mut scaled,
        LATER,
    );
    let e = entry(&scaled, "kubectl-client-side-apply");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    // The applier lost the field it no longer agrees on.
    assert!(
        entry(&scaled, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );

    let body = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let err = ssa(Some(&scaled), &body, "helm", false).unwrap_err();
    assert_eq!(err.status(), (409, "Conflict"));
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let PatchError::Conflict { causes, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(
        causes[0].message,
        "conflict with \"kubectl-client-side-apply\" using apps/v1"
    );

    let forced = ssa(Some(&scaled), &body, "helm", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(
        forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["manager"] != "kubectl-client-side-apply"),
        "the forced-over manager owned nothing else and is gone: {forced}"
    );
}

#[test]
fn applying_an_equal_value_shares_ownership_without_conflict() {
    let obj = ssa(None, DEPLOYMENT, "kubectl", false).unwrap();
    let out = ssa(Some(&obj), DEPLOYMENT, "argocd", false).unwrap();
    assert_eq!(
        entry(&out, "kubectl")["fieldsV1"],
        entry(&out, "argocd")["fieldsV1"]
    );
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let obj = ssa(None, DEPLOYMENT, "a", false).unwrap();
    let body = DEPLOYMENT
        .replace("replicas: 2", "replicas: 3")
        .replace("nginx:1.0", "nginx:2.0");
    let err = ssa(Some(&obj), &body, "b", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
    );
}

#[test]
fn kubectl_server_side_after_client_side_takes_over_fields_with_equal_values() {
    // Created by client-side apply: the annotation and an Update entry own everything.
    let mut obj: Value = crate::yaml::value(DEPLOYMENT).unwrap();
    let mut last = obj.clone();
    last["metadata"]["annotations"] = json!({});
    obj["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
    record_update("kubectl-client-side-apply", "apps/v1", None, &mut obj, NOW);
    // Same values: no conflict for the "kubectl" manager; the annotation follows the apply.
    let out = ssa(Some(&obj), DEPLOYMENT, "kubectl", false).unwrap();
    let ann = out["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    assert!(ann.ends_with('\n') && ann.contains("nginx:1.0"), "{ann}");
    // A different value conflicts for other managers.
    let body = DEPLOYMENT.replace("replicas: 2", "replicas: 9");
    assert_eq!(
        ssa(Some(&obj), &body, "other", false)
            .unwrap_err()
            .status()
            .0,
        409
    );
}

#[test]
fn bad_requests_carry_the_api_server_wording() {
    let req = |body: &'static str, manager: Option<&'static str>| {
        apply_patch(&PatchRequest {
            kind: PatchKind::Apply,
            api_version: "apps/v1",
            object_kind: "Deployment",
            current: None,
            body: body.as_bytes(),
            field_manager: manager,
            force: false,
            now: NOW,
        })
    };
    let err = req(DEPLOYMENT, None).unwrap_err();
    assert_eq!(err.status(), (422, "Invalid"));
    assert_eq!(
        err.to_string(),
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let err = req("- a\n- b\n", Some("m")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "error decoding patch: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    let err = req("apiVersion: apps/v2\nkind: Deployment\n", Some("m")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Incorrect version specified in apply patch. Specified patch version: apps/v2, expected: apps/v1"
    );
    let err = req(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {managedFields: []}\n",
        Some("m"),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
    assert_eq!(
        req("a: [\n", Some("m")).unwrap_err().status(),
        (400, "BadRequest")
    );
    let err = req("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: ns}\nspec: {foo: 1}\n", Some("m"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.foo: field not declared in schema"
    );
    let err = req(
        "apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: [{name: a}, {name: a}]}}}\n",
        Some("m"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (/; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
    );
}

#[test]
fn custom_resources_use_the_deduced_schema() {
    let body = "apiVersion: temporal.io/v1beta1\nkind: TemporalNamespace\nmetadata: {name: ns}\nspec: {retention: 24h, clusters: [a, b]}\n";
    let obj = ssa(None, body, "kubectl", false).unwrap();
    assert_eq!(
        entry(&obj, "kubectl")["fieldsV1"],
        json!({"f:spec": {"f:retention": {}, "f:clusters": {}}})
    );
    let body2 = "apiVersion: temporal.io/v1beta1\nkind: TemporalNamespace\nmetadata: {name: ns}\nspec: {clusters: [c]}\n";
    let out = ssa(Some(&obj), body2, "kubectl", false).unwrap();
    assert_eq!(out["spec"], json!({"clusters": ["c"]}));
}

#[test]
fn associative_lists_merge_by_key_and_keep_foreign_items() {
    let obj = ssa(None, DEPLOYMENT, "kubectl", false).unwrap();
    // A controller adds a sidecar with a plain update.
    let mut injected = obj.clone();
    injected["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "proxy", "image": "envoy"}));
    record_update("injector", "apps/v1", Some(&obj), &mut injected, LATER);
    let body = DEPLOYMENT.replace("nginx:1.0", "nginx:1.1");
    let out = ssa(Some(&injected), &body, "kubectl", false).unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "proxy"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.1"
    );
}

#[test]
fn record_update_tracks_added_and_changed_fields() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d", "labels": {"app": "x"}}, "data": {"a": "1"}});
    record_update("kubectl-create", "v1", None, &mut obj, NOW);
    let e = entry(&obj, "kubectl-create");
    assert_eq!(e["operation"], "Update");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    let before = obj.clone();
    obj["data"]["b"] = json!("2");
    obj["data"].as_object_mut().unwrap().remove("a");
    record_update("editor", "v1", Some(&before), &mut obj, LATER);
    assert_eq!(
        entry(&obj, "editor")["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
    assert_eq!(
        entry(&obj, "kubectl-create")["fieldsV1"],
        json!({"f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    // Entries are sorted by operation, then time.
    let order: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["kubectl-create", "editor"]);
}

#[test]
fn status_writes_are_owned_through_the_status_subresource_only() {
    let obj = ssa(None, DEPLOYMENT, "kubectl", false).unwrap();
    let mut with_status = obj.clone();
    with_status["status"] = json!({"replicas": 2});
    record_update_subresource(
        "kube-controller-manager",
        "apps/v1",
        Some(&obj),
        &mut with_status,
        LATER,
        Some("status"),
    );
    let e = entry(&with_status, "kube-controller-manager");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {".": {}, "f:replicas": {}}})
    );
    // A main-resource write that carries status does not own it.
    let mut again = with_status.clone();
    again["status"]["replicas"] = json!(3);
    record_update("someone", "apps/v1", Some(&with_status), &mut again, LATER);
    assert!(
        again["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["manager"] != "someone")
    );
}
