use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::sim::clock::ManualClock;
use crate::sim::gitops::argocd::client::{ApplyOptions, Client};
use crate::sim::store::StoreConfig;

fn client() -> Client {
    let store = Store::new(
        Arc::new(ManualClock::new(
            "2024-05-01T10:00:00Z".parse().expect("timestamp"),
        )),
        StoreConfig::default(),
    );
    Client::new(Arc::new(store))
}

const TRACKING: &str = "guestbook:apps/Deployment:default/web";

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {TRACKING_ID: TRACKING},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    })
}

/// Applies `obj` as Argo CD's client-side apply does and returns the live object.
fn applied(c: &Client, obj: &Value, server_side: bool) -> Value {
    c.apply(
        obj,
        ApplyOptions {
            server_side,
            dry_run: false,
        },
    )
    .expect("applies")
    .object
}

fn status(c: &Client, target: &Value, live: &Value, opts: &DiffOptions<'_>) -> SyncStatus {
    compare(c.store(), target, Some(live), opts).expect("compares")
}

#[test]
fn a_missing_live_object_is_out_of_sync() {
    let c = client();
    assert_eq!(
        compare(c.store(), &deployment(), None, &DiffOptions::default()),
        Ok(SyncStatus::OutOfSync)
    );
}

#[test]
fn fields_the_server_defaults_are_not_drift() {
    let c = client();
    let live = applied(&c, &deployment(), false);
    // The server filled in strategy, revisionHistoryLimit, the containers' pull policy and
    // termination message path, uid, resourceVersion, managedFields...
    assert!(live["spec"]["strategy"].is_object());
    assert!(live["metadata"]["uid"].is_string());
    let opts = DiffOptions::default();
    assert_eq!(status(&c, &deployment(), &live, &opts), SyncStatus::Synced);
    // The same without the last applied configuration (two-way diff).
    let mut bare = live.clone();
    bare["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations")
        .remove(LAST_APPLIED);
    assert_eq!(status(&c, &deployment(), &bare, &opts), SyncStatus::Synced);
    // And under the structured merge diff.
    let opts = DiffOptions {
        structured: true,
        ..DiffOptions::default()
    };
    assert_eq!(status(&c, &deployment(), &live, &opts), SyncStatus::Synced);
}

#[test]
fn a_changed_field_is_drift() {
    let c = client();
    let live = applied(&c, &deployment(), false);
    let mut target = deployment();
    target["spec"]["replicas"] = json!(3);
    assert_eq!(
        status(&c, &target, &live, &DiffOptions::default()),
        SyncStatus::OutOfSync
    );
    let mut target = deployment();
    target["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert_eq!(
        status(&c, &target, &live, &DiffOptions::default()),
        SyncStatus::OutOfSync
    );
    let opts = DiffOptions {
        structured: true,
        ..DiffOptions::default()
    };
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::OutOfSync);
}

#[test]
fn a_removed_field_is_drift_in_the_three_way_diff_only() {
    let c = client();
    let live = applied(&c, &deployment(), false);
    let mut target = deployment();
    target["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("tier");
    let opts = DiffOptions::default();
    // The last applied configuration names the label: the apply would remove it.
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::OutOfSync);
    // Without it the configuration alone is compared: an extra live label is not drift.
    let mut bare = live.clone();
    bare["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations")
        .remove(LAST_APPLIED);
    assert_eq!(status(&c, &target, &bare, &opts), SyncStatus::Synced);
    // A container dropped from the configuration goes too (merge by name).
    let mut two = deployment();
    two["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "app", "image": "nginx:1.27"},
        {"name": "sidecar", "image": "busybox"},
    ]);
    let live = applied(&c, &two, false);
    assert_eq!(status(&c, &two, &live, &opts), SyncStatus::Synced);
    assert_eq!(
        status(&c, &deployment(), &live, &opts),
        SyncStatus::OutOfSync
    );
}

#[test]
fn a_named_empty_value_the_server_does_not_keep_is_drift() {
    let c = client();
    let mut live = applied(&c, &deployment(), false);
    live["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = json!({"grpc": {"port": 9090}, "periodSeconds": 10, "timeoutSeconds": 1,
               "successThreshold": 1, "failureThreshold": 3});
    let mut target = deployment();
    target["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"grpc": {"port": 9090}});
    let opts = DiffOptions::default();
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::Synced);
    target["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["service"] =
        json!("");
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::OutOfSync);
    // The usual remedy: ignore it.
    let ignore = [
        json!({"group": "apps", "kind": "StatefulSet"}),
        json!({
            "group": "apps", "kind": "Deployment",
            "jqPathExpressions": [".spec.template.spec.containers[].readinessProbe.grpc.service"],
        }),
    ];
    let opts = DiffOptions {
        ignore_differences: &ignore,
        ..DiffOptions::default()
    };
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::Synced);
}

#[test]
fn ignore_differences_by_json_pointer_jq_path_and_manager() {
    let c = client();
    let live = applied(&c, &deployment(), false);
    let mut target = deployment();
    target["spec"]["replicas"] = json!(5);
    target["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let none = DiffOptions::default();
    assert_eq!(status(&c, &target, &live, &none), SyncStatus::OutOfSync);

    let ignore = [json!({
        "group": "apps", "kind": "Deployment",
        "jsonPointers": ["/spec/replicas"],
        "jqPathExpressions": [
            ".spec.template.spec.containers[] | select(.name == \"app\") | .image"
        ],
    })];
    let opts = DiffOptions {
        ignore_differences: &ignore,
        ..DiffOptions::default()
    };
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::Synced);

    // Matched by group/kind (globs), name and namespace.
    for (rule, synced) in [
        (
            json!({"group": "*", "kind": "Deploy*", "name": "web"}),
            true,
        ),
        (
            json!({"group": "apps", "kind": "Deployment", "name": "api"}),
            false,
        ),
        (
            json!({"group": "apps", "kind": "Deployment", "namespace": "prod"}),
            false,
        ),
        (json!({"group": "", "kind": "Deployment"}), false),
    ] {
        let mut rule = rule;
        rule["jsonPointers"] = json!(["/spec/replicas", "/spec/template/spec/containers/0/image"]);
        let ignore = [rule.clone()];
        let opts = DiffOptions {
            ignore_differences: &ignore,
            ..DiffOptions::default()
        };
        let want = if synced {
            SyncStatus::Synced
        } else {
            SyncStatus::OutOfSync
        };
        assert_eq!(status(&c, &target, &live, &opts), want, "{rule}");
    }

    // An autoscaler owns the replicas.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(7);
    scaled["metadata"]["managedFields"]
        .as_array_mut()
        .expect("managedFields")
        .push(
            json!({"manager": "kube-controller-manager", "operation": "Update",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}),
        );
    assert_eq!(
        status(&c, &deployment(), &scaled, &none),
        SyncStatus::OutOfSync
    );
    let ignore = [json!({"group": "apps", "kind": "Deployment",
                         "managedFieldsManagers": ["kube-controller-manager"]})];
    let opts = DiffOptions {
        ignore_differences: &ignore,
        ..DiffOptions::default()
    };
    assert_eq!(
        status(&c, &deployment(), &scaled, &opts),
        SyncStatus::Synced
    );
}

#[test]
fn status_and_server_metadata_are_not_drift() {
    let c = client();
    let mut live = applied(&c, &deployment(), false);
    live["status"] = json!({"replicas": 2, "readyReplicas": 1});
    live["metadata"]["generation"] = json!(9);
    let mut target = deployment();
    target["metadata"]["creationTimestamp"] = Value::Null;
    assert_eq!(
        status(&c, &target, &live, &DiffOptions::default()),
        SyncStatus::Synced
    );
}

#[test]
fn the_tracking_annotation_and_last_applied_are_not_drift() {
    let c = client();
    let live = applied(&c, &deployment(), false);
    let opts = DiffOptions::default();
    // A configuration without the annotation does not name it.
    let mut untracked = deployment();
    untracked["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("annotations");
    let mut bare = live.clone();
    bare["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations")
        .remove(LAST_APPLIED);
    assert_eq!(status(&c, &untracked, &bare, &opts), SyncStatus::Synced);
    // Another Application's value is a real difference.
    let mut other = live.clone();
    other["metadata"]["annotations"][TRACKING_ID] = json!("other:apps/Deployment:default/web");
    assert_eq!(
        status(&c, &deployment(), &other, &opts),
        SyncStatus::OutOfSync
    );
    // A resource synced under label tracking gets the annotation it lacks backfilled.
    let mut labelled = bare.clone();
    labelled["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations")
        .remove(TRACKING_ID);
    assert_eq!(
        status(&c, &deployment(), &labelled, &opts),
        SyncStatus::OutOfSync
    );
    labelled["metadata"]["labels"][INSTANCE_LABEL] = json!("guestbook");
    let mut target = deployment();
    target["metadata"]["labels"][INSTANCE_LABEL] = json!("guestbook");
    assert_eq!(status(&c, &target, &labelled, &opts), SyncStatus::Synced);
}

#[test]
fn secret_string_data_compares_with_data() {
    let c = client();
    let secret = |body: Value| {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": "creds", "namespace": "default"}});
        for (k, v) in body.as_object().expect("object") {
            s[k] = v.clone();
        }
        s
    };
    let target = secret(json!({"stringData": {"password": "hunter2"}}));
    let live = applied(&c, &target, false);
    assert_eq!(live["data"]["password"], json!("aHVudGVyMg=="));
    let opts = DiffOptions::default();
    assert_eq!(status(&c, &target, &live, &opts), SyncStatus::Synced);
    let same = secret(json!({"data": {"password": "aHVudGVyMg=="}}));
    assert_eq!(status(&c, &same, &live, &opts), SyncStatus::Synced);
    let changed = secret(json!({"stringData": {"password": "hunter3"}}));
    assert_eq!(status(&c, &changed, &live, &opts), SyncStatus::OutOfSync);
    // A null value is the empty string.
    let mut empty_live = live.clone();
    empty_live["data"]["token"] = json!("");
    let null = secret(json!({"data": {"password": "aHVudGVyMg==", "token": null}}));
    assert_eq!(status(&c, &null, &empty_live, &opts), SyncStatus::Synced);
}

fn policy_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "envoypatchpolicies.gateway.envoyproxy.io"},
        "spec": {
            "group": "gateway.envoyproxy.io",
            "scope": "Namespaced",
            "names": {"kind": "EnvoyPatchPolicy", "plural": "envoypatchpolicies",
                      "singular": "envoypatchpolicy", "listKind": "EnvoyPatchPolicyList"},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "priority": {"type": "integer"},
                            "targetRef": {"type": "object", "properties": {
                                "group": {"type": "string"},
                                "kind": {"type": "string"},
                                "name": {"type": "string"},
                            }},
                            "jsonPatches": {"type": "array", "items": {
                                "type": "object", "properties": {
                                    "name": {"type": "string"},
                                    "type": {"type": "string", "default": "type.googleapis.com/envoy.config.listener.v3.Listener"},
                                    "op": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                }}},
                        }},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

fn policy(extra_namespace: bool) -> Value {
    let mut p = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyPatchPolicy",
        "metadata": {"name": "ameide", "namespace": "default"},
        "spec": {
            "priority": 0,
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ameide"},
            "jsonPatches": [{"name": "listener", "op": {"op": "add", "path": "/x"}}],
        },
    });
    if extra_namespace {
        p["spec"]["targetRef"]["namespace"] = json!("default");
    }
    p
}

#[test]
fn an_undeclared_field_fails_the_structured_merge_diff() {
    let c = client();
    applied(&c, &policy_crd(), true);
    let live = applied(&c, &policy(false), true);
    let opts = DiffOptions {
        structured: true,
        ..DiffOptions::default()
    };
    assert_eq!(status(&c, &policy(false), &live, &opts), SyncStatus::Synced);
    assert_eq!(
        compare(c.store(), &policy(true), Some(&live), &opts),
        Err(
            "Failed to compare desired state to live state: failed to calculate diff: \
             error calculating structured merge diff: error building typed value from \
             config resource: .spec.targetRef.namespace: field not declared in schema"
                .to_owned()
        )
    );
    let cached = DiffOptions {
        from_cache: true,
        ..opts
    };
    let err = compare(c.store(), &policy(true), Some(&live), &cached).expect_err("fails");
    assert!(err.starts_with(
        "Failed to compare desired state to live state: failed to calculate diff from cache: "
    ));
    // The resource's own sync option selects the structured merge diff too.
    let mut annotated = policy(true);
    annotated["metadata"]["annotations"] =
        json!({SYNC_OPTIONS: "Prune=false,ServerSideApply=true"});
    assert!(compare(c.store(), &annotated, Some(&live), &DiffOptions::default()).is_err());
    // The legacy diff never types the configuration: the field is merely drift.
    assert_eq!(
        status(&c, &policy(true), &live, &DiffOptions::default()),
        SyncStatus::OutOfSync
    );

    // Built-in kinds are typed by their published schema; several errors are listed.
    let mut deploy = deployment();
    deploy["spec"]["foo"] = json!(1);
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullSecret"] = json!("x");
    let live = applied(&c, &deployment(), false);
    assert_eq!(
        compare(c.store(), &deploy, Some(&live), &opts),
        Err(
            "Failed to compare desired state to live state: failed to calculate diff: \
             error calculating structured merge diff: error building typed value from \
             config resource: errors:\n  .spec.foo: field not declared in schema\n  \
             .spec.template.spec.containers[0].imagePullSecret: field not declared in schema"
                .to_owned()
        )
    );
}

#[test]
fn custom_resources_diff_over_the_fields_last_applied() {
    let c = client();
    applied(&c, &policy_crd(), true);
    let mut live = applied(&c, &policy(false), false);
    // The CRD's default inside a list item, as structural defaulting fills it in: the
    // configuration does not name it.
    live["spec"]["jsonPatches"][0]["type"] =
        json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    let opts = DiffOptions::default();
    assert_eq!(status(&c, &policy(false), &live, &opts), SyncStatus::Synced);
    let mut changed = policy(false);
    changed["spec"]["jsonPatches"][0]["name"] = json!("route");
    assert_eq!(status(&c, &changed, &live, &opts), SyncStatus::OutOfSync);
    let mut dropped = policy(false);
    dropped["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("priority");
    assert_eq!(status(&c, &dropped, &live, &opts), SyncStatus::OutOfSync);
}

#[test]
fn jq_paths_parse_in_their_simple_forms() {
    assert_eq!(
        parse_jq_path(".a.b[0][\"c.d\"][]"),
        Some(vec![
            Step::Key("a".into()),
            Step::Key("b".into()),
            Step::Index(0),
            Step::Key("c.d".into()),
            Step::Each,
        ])
    );
    assert_eq!(parse_jq_path(".a | map(.b)"), None);
    let mut v = json!({"a": [{"n": "x", "v": 1}, {"n": "y", "v": 2}]});
    remove_jq(
        &mut v,
        &parse_jq_path(".a[] | select(.n == \"y\")").expect("parses"),
    );
    assert_eq!(v, json!({"a": [{"n": "x", "v": 1}]}));
}
