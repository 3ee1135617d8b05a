use serde_json::json;

use super::*;

/// Cases whose expected result was produced by kubectl 1.32's `kubectl patch --local
/// --type strategic`, which runs the same k8s.io/apimachinery strategicpatch code as the API
/// server. The first case's patch was captured from `kubectl apply` (client-side) of a changed
/// manifest against a live Deployment carrying the last-applied annotation.
const FIXTURES: &str = include_str!("../testdata/strategic.json");

fn run(
    api_version: &str,
    kind: &str,
    live: &Value,
    patch: &Value,
) -> std::result::Result<Value, PatchError> {
    apply(api_version, kind, live, patch.to_string().as_bytes())
}

#[test]
fn matches_the_apimachinery_implementation_on_recorded_cases() {
    let fixtures: Map<String, Value> = serde_json::from_str(FIXTURES).unwrap();
    assert!(fixtures.len() >= 19);
    for (name, case) in &fixtures {
        let api_version = case["apiVersion"].as_str().unwrap();
        let kind = case["kind"].as_str().unwrap();
        let got = run(api_version, kind, &case["live"], &case["patch"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut expected = case["expected"].clone();
        clean(&mut expected);
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn kubectl_apply_round_trip_keeps_foreign_changes_and_orders_lists() {
    let fixtures: Map<String, Value> = serde_json::from_str(FIXTURES).unwrap();
    let case = &fixtures["kubectl_apply_deployment"];
    let out = run("apps/v1", "Deployment", &case["live"], &case["patch"]).unwrap();
    let spec = &out["spec"]["template"]["spec"];
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "injected-proxy"]);
    let env: Vec<&str> = spec["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["INJECTED", "C", "B"]);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        spec["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/srv"}}])
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["example.com/b", "example.com/c", "example.com/foreign"])
    );
    assert_eq!(out["status"], case["live"]["status"]);
    assert!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("nginx:1.1")
    );
}

fn cm() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}]}}}})
}

#[test]
fn bodies_that_are_not_objects_are_bad_requests() {
    let err = apply("v1", "ConfigMap", &cm(), b"[1]").unwrap_err();
    assert_eq!(err.status(), (400, "BadRequest"));
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    let err = apply("v1", "ConfigMap", &cm(), b"\"x\"").unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal string into Go value of type map[string]interface {}"
    );
}

#[test]
fn custom_resources_are_unsupported_media_type() {
    let err = apply("monitoring.coreos.com/v1", "Prometheus", &cm(), b"{}").unwrap_err();
    assert_eq!(err.status(), (415, "UnsupportedMediaType"));
    assert!(
        err.to_string()
            .starts_with("the body of the request was in an unknown format")
    );
}

#[test]
fn malformed_directives_are_bad_requests() {
    for (patch, msg) in [
        (
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
            ERR_BAD_PRIMITIVE_LIST,
        ),
        (
            json!({"metadata": {"$setElementOrder": ["x"]}}),
            ERR_BAD_SET_ELEMENT_ORDER,
        ),
        (
            json!({"metadata": {"$retainKeys": "name"}}),
            ERR_BAD_RETAIN_KEYS,
        ),
        (
            json!({"metadata": {"$retainKeys": ["name"], "labels": {"a": "b"}}}),
            ERR_BAD_RETAIN_KEYS,
        ),
    ] {
        let err = run("v1", "ConfigMap", &cm(), &patch).unwrap_err();
        assert_eq!(err, PatchError::BadRequest(msg.to_owned()), "{patch}");
    }
}

#[test]
fn merge_errors_carry_the_apimachinery_wording() {
    let cases = [
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "y"}]}}}}),
            "map: map[image:y] does not contain declared merge key: name",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}}}),
            "unknown patch type: bogus in map: map[$patch:bogus name:a]",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}),
            "merging lists cannot yet be specified in the patch",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": ["a"]}}}}),
            "list element types are not identical: [[map[args:[1] image:x name:a]] [a]]",
        ),
        (
            json!({"spec": {"$patch": "merge"}}),
            "unknown patch type: merge in map: map[$patch:merge]",
        ),
        (
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": "x"}}}}),
            "expected a []interface {}, but received a string",
        ),
    ];
    for (patch, msg) in cases {
        let err = run("apps/v1", "Deployment", &deployment(), &patch).unwrap_err();
        assert_eq!(err, PatchError::Internal(msg.to_owned()), "{patch}");
        assert_eq!(err.status(), (500, ""));
    }
}

#[test]
fn lists_of_lists_are_unprocessable() {
    let err = run(
        "apps/v1",
        "Deployment",
        &deployment(),
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": [["x"]]}]}}}}),
    );
    // args has no merge strategy: replaced, no error.
    assert!(err.is_ok());
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": []}});
    let err = run(
        "v1",
        "ConfigMap",
        &live,
        &json!({"metadata": {"finalizers": [["x"]]}}),
    )
    .unwrap_err();
    assert_eq!(err.status(), (422, "Invalid"));
    // With a string first, the mismatch is reported instead.
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}});
    let err = run(
        "v1",
        "ConfigMap",
        &live,
        &json!({"metadata": {"finalizers": [["x"]]}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list element types are not identical: [[a] [[x]]]"
    );
}

#[test]
fn unknown_fields_merge_only_while_no_lookup_is_needed() {
    // A new unknown field is taken as is (the typed decode would drop it; the sim keeps it).
    let out = run("v1", "ConfigMap", &cm(), &json!({"extra": {"a": 1}})).unwrap();
    assert_eq!(out["extra"], json!({"a": 1}));
    // Merging into an existing unknown map needs the Go type, which does not exist.
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "extra": {"a": 1}});
    let err = run("v1", "ConfigMap", &live, &json!({"extra": {"b": 2}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find api field in struct ConfigMap for the json field \"extra\""
    );
}

#[test]
fn set_element_order_without_any_list_items_is_an_error() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": []}});
    let err = run(
        "v1",
        "ConfigMap",
        &live,
        &json!({"metadata": {"$setElementOrder/finalizers": []}}),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "no elements in any of the given slices");
}
