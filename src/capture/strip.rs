//! Manifests ready to `kubectl apply`: what the API server set on an object is removed, and so is
//! what it would default again on apply; Secret values become placeholders.

use serde_json::{Map, Value, json};

/// Metadata the API server writes.
const SERVER_METADATA: [&str; 10] = [
    "uid",
    "resourceVersion",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
];

/// Annotations controllers and kubectl write; a fresh apply writes them again.
const SERVER_ANNOTATIONS: [&str; 10] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
    "kubernetes.io/service-account.uid",
];

/// Labels the API server or controllers add.
const SERVER_LABELS: [&str; 5] = [
    "kubernetes.io/metadata.name",
    "pod-template-hash",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
];

/// The placeholder written instead of a Secret's value.
#[must_use]
pub fn placeholder(key: &str) -> String {
    format!("TODO-{key}")
}

/// `object` as a manifest: no status, no server-written metadata, no fields the API server
/// defaults, Secret values replaced by [`placeholder`]s.
#[must_use]
pub fn manifest(object: &Value) -> Value {
    let mut o = object.clone();
    let kind = o["kind"].as_str().unwrap_or_default().to_owned();
    let Some(map) = o.as_object_mut() else {
        return o;
    };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata") {
        metadata(meta);
    }
    match kind.as_str() {
        "Secret" => secret(map),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            if let Some(spec) = map.get_mut("spec") {
                workload_spec(&kind, spec);
            }
        }
        "CronJob" => {
            if let Some(spec) = map.get_mut("spec") {
                drop_equal(
                    spec,
                    &[
                        ("concurrencyPolicy", json!("Allow")),
                        ("failedJobsHistoryLimit", json!(1)),
                        ("successfulJobsHistoryLimit", json!(3)),
                        ("suspend", json!(false)),
                    ],
                );
                if let Some(job) = spec.pointer_mut("/jobTemplate/spec") {
                    workload_spec("Job", job);
                }
                if let Some(meta) = spec.pointer_mut("/jobTemplate/metadata") {
                    metadata(meta);
                }
            }
        }
        "Pod" => {
            if let Some(spec) = map.get_mut("spec") {
                pod_spec(spec);
                if let Some(s) = spec.as_object_mut() {
                    // Where the scheduler put it, and the token volume admission added.
                    s.remove("nodeName");
                }
            }
        }
        "Service" => {
            if let Some(spec) = map.get_mut("spec") {
                service_spec(spec);
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = map.get_mut("spec") {
                // The volume it was bound to belongs to the old cluster.
                remove(spec, &["volumeName"]);
                drop_equal(spec, &[("volumeMode", json!("Filesystem"))]);
            }
        }
        "ServiceAccount" => {
            map.remove("secrets");
        }
        "Namespace" => {
            map.remove("spec");
        }
        "CustomResourceDefinition" => {
            if let Some(spec) = map.get_mut("spec") {
                drop_equal(spec, &[("conversion", json!({"strategy": "None"}))]);
            }
        }
        _ => {}
    }
    if let Some(meta) = map.get_mut("metadata")
        && meta
            .as_object()
            .is_some_and(|m| m.get("finalizers") == Some(&json!(["kubernetes.io/pvc-protection"])))
    {
        remove(meta, &["finalizers"]);
    }
    o
}

fn metadata(meta: &mut Value) {
    remove(meta, &SERVER_METADATA);
    for (field, server) in [
        ("annotations", &SERVER_ANNOTATIONS[..]),
        ("labels", &SERVER_LABELS[..]),
    ] {
        if let Some(m) = meta.get_mut(field) {
            remove(m, server);
        }
        if meta[field].as_object().is_some_and(Map::is_empty) || meta[field].is_null() {
            remove(meta, &[field]);
        }
    }
}

fn secret(map: &mut Map<String, Value>) {
    let mut keys: Vec<String> = ["data", "stringData"]
        .iter()
        .filter_map(|f| map.get(*f).and_then(Value::as_object))
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    map.remove("data");
    map.remove("stringData");
    if !keys.is_empty() {
        let values = keys
            .into_iter()
            .map(|k| {
                let p = placeholder(&k);
                (k, Value::String(p))
            })
            .collect();
        map.insert("stringData".into(), Value::Object(values));
    }
    if map.get("type") == Some(&json!("Opaque")) {
        map.remove("type");
    }
}

fn remove(v: &mut Value, keys: &[&str]) {
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
}

/// Removes each field whose value is the API server's default.
fn drop_equal(v: &mut Value, defaults: &[(&str, Value)]) {
    if let Some(m) = v.as_object_mut() {
        for (k, d) in defaults {
            if m.get(*k) == Some(d) {
                m.remove(*k);
            }
        }
    }
}

fn workload_spec(kind: &str, spec: &mut Value) {
    match kind {
        "Deployment" => {
            drop_equal(
                spec,
                &[
                    ("progressDeadlineSeconds", json!(600)),
                    ("revisionHistoryLimit", json!(10)),
                    (
                        "strategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                    ),
                ],
            );
        }
        "StatefulSet" => {
            drop_equal(
                spec,
                &[
                    ("podManagementPolicy", json!("OrderedReady")),
                    ("revisionHistoryLimit", json!(10)),
                    (
                        "updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                    ),
                    (
                        "persistentVolumeClaimRetentionPolicy",
                        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                    ),
                ],
            );
            if let Some(templates) = spec
                .get_mut("volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for t in templates {
                    remove(t, &["status", "apiVersion", "kind"]);
                    if let Some(meta) = t.get_mut("metadata") {
                        metadata(meta);
                    }
                    if let Some(s) = t.get_mut("spec") {
                        drop_equal(s, &[("volumeMode", json!("Filesystem"))]);
                    }
                }
            }
        }
        "DaemonSet" => {
            drop_equal(
                spec,
                &[
                    ("revisionHistoryLimit", json!(10)),
                    (
                        "updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
                    ),
                ],
            );
        }
        "Job" => {
            // The Job controller generates the selector and its labels; apply makes them again.
            if spec["manualSelector"] != true {
                remove(spec, &["selector"]);
            }
            drop_equal(
                spec,
                &[
                    ("backoffLimit", json!(6)),
                    ("completionMode", json!("NonIndexed")),
                    ("completions", json!(1)),
                    ("parallelism", json!(1)),
                    ("suspend", json!(false)),
                    ("podReplacementPolicy", json!("TerminatingOrFailed")),
                    ("manualSelector", json!(false)),
                ],
            );
        }
        _ => {}
    }
    if let Some(template) = spec.get_mut("template") {
        if let Some(meta) = template.get_mut("metadata") {
            metadata(meta);
            if meta.as_object().is_some_and(Map::is_empty) {
                remove(template, &["metadata"]);
            }
        }
        if let Some(pod) = template.get_mut("spec") {
            pod_spec(pod);
        }
    }
}

fn pod_spec(spec: &mut Value) {
    drop_equal(
        spec,
        &[
            ("dnsPolicy", json!("ClusterFirst")),
            ("restartPolicy", json!("Always")),
            ("schedulerName", json!("default-scheduler")),
            ("securityContext", json!({})),
            ("terminationGracePeriodSeconds", json!(30)),
            ("enableServiceLinks", json!(true)),
            ("preemptionPolicy", json!("PreemptLowerPriority")),
            ("priority", json!(0)),
            ("serviceAccount", spec["serviceAccountName"].clone()),
        ],
    );
    drop_equal(spec, &[("serviceAccountName", json!("default"))]);
    // The defaulted NoExecute tolerations admission adds to every pod.
    if let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) {
        tolerations.retain(|t| {
            !(t["tolerationSeconds"] == 300
                && t["operator"] == "Exists"
                && t["effect"] == "NoExecute"
                && [
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                ]
                .iter()
                .any(|k| t["key"] == *k))
        });
        if tolerations.is_empty() {
            remove(spec, &["tolerations"]);
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        // The projected service-account token volume (`kube-api-access-*`) admission adds.
        volumes.retain(|v| {
            !v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("kube-api-access-"))
        });
        for v in volumes.iter_mut() {
            for source in ["secret", "configMap"] {
                if let Some(s) = v.get_mut(source) {
                    drop_equal(s, &[("defaultMode", json!(420))]);
                }
            }
        }
        if volumes.is_empty() {
            remove(spec, &["volumes"]);
        }
    }
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                container(c);
            }
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default();
    let latest = image.ends_with(":latest")
        || !image
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .contains([':', '@']);
    let pull = if latest { "Always" } else { "IfNotPresent" };
    drop_equal(
        c,
        &[
            ("terminationMessagePath", json!("/dev/termination-log")),
            ("terminationMessagePolicy", json!("File")),
            ("imagePullPolicy", json!(pull)),
            ("resources", json!({})),
        ],
    );
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            drop_equal(p, &[("protocol", json!("TCP"))]);
        }
    }
    if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
        mounts.retain(|m| {
            !m["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("kube-api-access-"))
        });
        if mounts.is_empty() {
            remove(c, &["volumeMounts"]);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            drop_equal(
                p,
                &[
                    ("timeoutSeconds", json!(1)),
                    ("periodSeconds", json!(10)),
                    ("successThreshold", json!(1)),
                    ("failureThreshold", json!(3)),
                ],
            );
            if let Some(h) = p.get_mut("httpGet") {
                drop_equal(h, &[("scheme", json!("HTTP"))]);
            }
        }
    }
}

fn service_spec(spec: &mut Value) {
    remove(spec, &["clusterIP", "clusterIPs", "ipFamilies"]);
    drop_equal(
        spec,
        &[
            ("ipFamilyPolicy", json!("SingleStack")),
            ("internalTrafficPolicy", json!("Cluster")),
            ("sessionAffinity", json!("None")),
            ("type", json!("ClusterIP")),
        ],
    );
    let node_ports = spec["type"] == "NodePort" || spec["type"] == "LoadBalancer";
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            drop_equal(p, &[("protocol", json!("TCP"))]);
            let port = p["port"].clone();
            drop_equal(p, &[("targetPort", port)]);
            if !node_ports {
                remove(p, &["nodePort"]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_loses_what_the_server_wrote_and_defaulted() {
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "2025-01-01T00:00:00Z", "managedFields": [{}],
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "2", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
            },
            "spec": {
                "replicas": 1, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web", "pod-template-hash": "abc"}},
                    "spec": {
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                        "securityContext": {}, "terminationGracePeriodSeconds": 30,
                        "containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                            "resources": {}, "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                    },
                },
            },
            "status": {"replicas": 1},
        });
        assert_eq!(
            manifest(&live),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
                    },
                },
            })
        );
    }

    #[test]
    fn secret_values_become_placeholders() {
        let live = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "s", "namespace": "n"},
            "data": {"password": "c2VjcmV0"}, "stringData": {"user": "admin"},
        });
        let m = manifest(&live);
        assert_eq!(
            m["stringData"],
            json!({"password": "TODO-password", "user": "TODO-user"})
        );
        assert!(m.get("data").is_none());
        assert!(!m.to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn a_bound_claim_forgets_its_volume() {
        let live = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "n", "finalizers": ["kubernetes.io/pvc-protection"],
                "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"volumeName": "pvc-1", "volumeMode": "Filesystem", "accessModes": ["ReadWriteOnce"]},
        });
        assert_eq!(
            manifest(&live),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "n"},
                "spec": {"accessModes": ["ReadWriteOnce"]}})
        );
    }
}
