//! The converged-state projection that scenarios snapshot.
//!
//! It keeps what says whether a cluster healed and drops what changes from run to run:
//! kind, namespace, name (generated suffixes replaced by stable tokens), images, replicas, phase,
//! ready counts, condition types/statuses/reasons (custom resources' too), the owner chain, a
//! Service's type, ports and selector, a claim's class, access modes and phase, and the node a pod
//! runs on as a token (`node-<1> (amd64)`: nodes numbered in name order among the nodes pods use,
//! with their architecture), which says "same node or not" and "which architecture" without the
//! names a provider generates. No uids, resourceVersions, timestamps, IPs, node names, cluster IPs,
//! node ports or managedFields. Secret values never appear: only their keys, each with a fixed marker.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// What replaces every Secret value.
pub const REDACTED: &str = "<redacted>";

/// One object in the projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Projected {
    /// `kind`.
    pub kind: String,
    /// Namespace, for namespaced objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name with generated parts replaced by tokens (`grafana-<rev2>-<1>`).
    pub name: String,
    /// Owner chain, nearest first (`ReplicaSet/grafana-<rev2>`, `Deployment/grafana`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Container images (init containers first), from the pod or the pod template.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Deployment strategy or StatefulSet/DaemonSet update strategy type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// `spec.replicas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Ready count as kubectl shows it (`1/1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// `status.phase`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions as `Type=Status (Reason)`, sorted by type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// The node a pod is bound to, as a token with the node's architecture (`node-<1> (amd64)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A Service's `spec.type` (`ClusterIP` when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// A Service's ports as `name port/protocol -> targetPort`, in spec order (node ports left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// A Service's `spec.selector`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// A claim's `spec.storageClassName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// A claim's `spec.accessModes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// Keys of `data` (ConfigMaps: keys only; Secrets: keys with [`REDACTED`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// An Argo CD Application's state as `sync/health/operation` (`Synced/Healthy/Succeeded`;
    /// `-` where there is none yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// Projects `objects` (any kinds, any order) into a stable, sorted list.
///
/// `node_arch` maps node names to their `kubernetes.io/arch` label, for the pod node tokens; a
/// node missing from it is shown without an architecture.
#[must_use]
pub fn project(objects: &[Value], node_arch: &BTreeMap<String, String>) -> Vec<Projected> {
    let names = stable_names(objects);
    let nodes = node_tokens(objects, node_arch);
    let by_uid: HashMap<&str, &Value> = objects
        .iter()
        .filter_map(|o| Some((str_at(o, &["metadata", "uid"])?, o)))
        .collect();
    let mut out: Vec<Projected> = objects
        .iter()
        .map(|o| project_one(o, &names, &by_uid, &nodes))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    out
}

fn project_one(
    o: &Value,
    names: &HashMap<String, String>,
    by_uid: &HashMap<&str, &Value>,
    nodes: &BTreeMap<&str, String>,
) -> Projected {
    let kind = str_at(o, &["kind"]).unwrap_or_default().to_owned();
    let stable = |obj: &Value| {
        names.get(&key(obj)).cloned().unwrap_or_else(|| {
            str_at(obj, &["metadata", "name"])
                .unwrap_or_default()
                .to_owned()
        })
    };
    let mut owners = Vec::new();
    let mut cursor = o;
    for _ in 0..8 {
        let Some(owner) = controller_uid(cursor).and_then(|uid| by_uid.get(uid)) else {
            break;
        };
        owners.push(format!(
            "{}/{}",
            str_at(owner, &["kind"]).unwrap_or_default(),
            stable(owner)
        ));
        cursor = owner;
    }
    if owners.is_empty() {
        // Owner not among the projected objects: name it from the reference itself.
        if let Some(r) = controller_ref(o) {
            owners.push(format!(
                "{}/{}",
                str_at(r, &["kind"]).unwrap_or_default(),
                str_at(r, &["name"]).unwrap_or_default()
            ));
        }
    }
    let pod_spec = if kind == "Pod" {
        o.get("spec")
    } else {
        o.pointer("/spec/template/spec")
            .or_else(|| o.pointer("/spec/jobTemplate/spec/template/spec"))
    };
    let images = pod_spec
        .map(|spec| {
            ["initContainers", "containers"]
                .iter()
                .filter_map(|k| spec.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let strategy = o
        .pointer("/spec/strategy/type")
        .or_else(|| o.pointer("/spec/updateStrategy/type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let replicas = if kind == "Pod" {
        None
    } else {
        o.pointer("/spec/replicas").and_then(Value::as_i64)
    };
    let ready = ready(&kind, o);
    let phase = o
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut conditions: Vec<String> = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let t = str_at(c, &["type"]).unwrap_or_default();
                    match (str_at(c, &["status"]), str_at(c, &["reason"])) {
                        // Argo CD's application conditions have a type and a message only.
                        (None, _) => t.to_owned(),
                        (Some(s), Some(r)) if !r.is_empty() => format!("{t}={s} ({r})"),
                        (Some(s), _) => format!("{t}={s}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    conditions.sort();
    let mut data = BTreeMap::new();
    for field in ["data", "stringData", "binaryData"] {
        if let Some(map) = o.get(field).and_then(Value::as_object) {
            for k in map.keys() {
                let shown = if kind == "Secret" {
                    REDACTED.to_owned()
                } else {
                    String::new()
                };
                data.insert(k.clone(), shown);
            }
        }
    }
    let node = (kind == "Pod")
        .then(|| str_at(o, &["spec", "nodeName"]))
        .flatten()
        .and_then(|n| nodes.get(n).cloned());
    let service = kind == "Service";
    let service_type = service.then(|| {
        str_at(o, &["spec", "type"])
            .unwrap_or("ClusterIP")
            .to_owned()
    });
    let ports = if service {
        o.pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().map(service_port).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let selector = if service {
        o.pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let claim = kind == "PersistentVolumeClaim";
    let storage_class = claim
        .then(|| str_at(o, &["spec", "storageClassName"]).map(str::to_owned))
        .flatten();
    let access_modes = if claim {
        o.pointer("/spec/accessModes")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let app = (kind == "Application"
        && str_at(o, &["apiVersion"]).is_some_and(|v| v.starts_with("argoproj.io/")))
    .then(|| {
        let at = |p: &[&str]| str_at(o, p).filter(|s| !s.is_empty()).unwrap_or("-");
        format!(
            "{}/{}/{}",
            at(&["status", "sync", "status"]),
            at(&["status", "health", "status"]),
            at(&["status", "operationState", "phase"])
        )
    });
    Projected {
        app,
        kind,
        namespace: str_at(o, &["metadata", "namespace"]).map(str::to_owned),
        name: stable(o),
        owners,
        images,
        strategy,
        replicas,
        ready,
        phase,
        conditions,
        node,
        service_type,
        ports,
        selector,
        storage_class,
        access_modes,
        data,
    }
}

/// `http 80/TCP -> 8080`: the parts of a Service port that a manifest sets; the node port, which
/// the cluster allocates at random, is left out.
fn service_port(p: &Value) -> String {
    let port = p.get("port").map_or_else(String::new, Value::to_string);
    let protocol = str_at(p, &["protocol"]).unwrap_or("TCP");
    let target = match p.get("targetPort") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        // The API server defaults targetPort to port.
        _ => port.clone(),
    };
    match str_at(p, &["name"]).filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} {port}/{protocol} -> {target}"),
        None => format!("{port}/{protocol} -> {target}"),
    }
}

/// Numbers the nodes that pods are bound to, in name order, so the token says whether two pods
/// share a node without naming it; declared names are the same on every backend, so the order is.
fn node_tokens<'a>(
    objects: &'a [Value],
    node_arch: &BTreeMap<String, String>,
) -> BTreeMap<&'a str, String> {
    let used: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter(|o| str_at(o, &["kind"]) == Some("Pod"))
        .filter_map(|o| str_at(o, &["spec", "nodeName"]))
        .filter(|n| !n.is_empty())
        .collect();
    used.into_iter()
        .enumerate()
        .map(|(i, n)| {
            let token = match node_arch.get(n) {
                Some(arch) => format!("node-<{}> ({arch})", i + 1),
                None => format!("node-<{}>", i + 1),
            };
            (n, token)
        })
        .collect()
}

fn ready(kind: &str, o: &Value) -> Option<String> {
    let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "Pod" => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.map_or(0, |s| {
                s.iter()
                    .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
                    .count()
            });
            Some(format!("{ready}/{total}"))
        }
        "Deployment" | "ReplicaSet" | "StatefulSet" => Some(format!(
            "{}/{}",
            n("/status/readyReplicas"),
            n("/spec/replicas")
        )),
        "DaemonSet" => Some(format!(
            "{}/{}",
            n("/status/numberReady"),
            n("/status/desiredNumberScheduled")
        )),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn key(o: &Value) -> String {
    format!(
        "{}/{}/{}",
        str_at(o, &["kind"]).unwrap_or_default(),
        str_at(o, &["metadata", "namespace"]).unwrap_or_default(),
        str_at(o, &["metadata", "name"]).unwrap_or_default()
    )
}

fn controller_ref(o: &Value) -> Option<&Value> {
    let refs = o.pointer("/metadata/ownerReferences")?.as_array()?;
    refs.iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)))
        .or_else(|| refs.first())
}

fn controller_uid(o: &Value) -> Option<&str> {
    controller_ref(o).and_then(|r| str_at(r, &["uid"]))
}

/// Replaces generated name suffixes by tokens that are the same on every run:
/// ReplicaSets of a Deployment by revision (`<rev2>`), other generated children by their order of
/// creation among siblings (`<1>`, `<2>`), dynamically provisioned volumes by their claim.
/// StatefulSet ordinals are already stable and kept.
fn stable_names(objects: &[Value]) -> HashMap<String, String> {
    let mut names: HashMap<String, String> = HashMap::new();
    let by_uid: HashMap<&str, &Value> = objects
        .iter()
        .filter_map(|o| Some((str_at(o, &["metadata", "uid"])?, o)))
        .collect();
    // Resolve parents before children: at most a few levels (CronJob > Job > Pod, Deployment > RS > Pod).
    let mut siblings: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for o in objects {
        let Some(uid) = controller_uid(o) else {
            continue;
        };
        siblings.entry(uid.to_owned()).or_default().push(o);
    }
    for _ in 0..4 {
        for (owner_uid, children) in &siblings {
            let Some(owner) = by_uid.get(owner_uid.as_str()) else {
                continue;
            };
            let owner_name = str_at(owner, &["metadata", "name"]).unwrap_or_default();
            let owner_stable = names
                .get(&key(owner))
                .cloned()
                .unwrap_or_else(|| owner_name.to_owned());
            let owner_kind = str_at(owner, &["kind"]).unwrap_or_default();
            let mut ordered: Vec<&&Value> = children.iter().collect();
            ordered.sort_by_key(|c| {
                (
                    str_at(c, &["metadata", "creationTimestamp"])
                        .unwrap_or_default()
                        .to_owned(),
                    str_at(c, &["metadata", "name"])
                        .unwrap_or_default()
                        .to_owned(),
                )
            });
            let mut ordinal = 0;
            for child in ordered {
                let name = str_at(child, &["metadata", "name"]).unwrap_or_default();
                let Some(suffix) = name
                    .strip_prefix(owner_name)
                    .and_then(|s| s.strip_prefix('-'))
                else {
                    continue;
                };
                if owner_kind == "StatefulSet" && suffix.bytes().all(|b| b.is_ascii_digit()) {
                    names.insert(key(child), format!("{owner_stable}-{suffix}"));
                    continue;
                }
                let token = if str_at(child, &["kind"]) == Some("ReplicaSet") {
                    child
                        .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                        .and_then(Value::as_str)
                        .map(|r| format!("<rev{r}>"))
                } else {
                    None
                };
                let token = token.unwrap_or_else(|| {
                    ordinal += 1;
                    format!("<{ordinal}>")
                });
                names.insert(key(child), format!("{owner_stable}-{token}"));
            }
        }
    }
    for o in objects {
        if str_at(o, &["kind"]) == Some("PersistentVolume")
            && let (Some(ns), Some(claim)) = (
                str_at(o, &["spec", "claimRef", "namespace"]),
                str_at(o, &["spec", "claimRef", "name"]),
            )
        {
            names.insert(key(o), format!("pvc-<{ns}/{claim}>"));
        }
    }
    names
}

/// Renders a projection as the YAML text that is snapshotted.
///
/// # Errors
/// Fails only if the projection cannot be represented as YAML, which does not happen for
/// [`Projected`] values.
pub fn render(projection: &[Projected]) -> Result<String, crate::yaml::YamlError> {
    crate::yaml::to_string(&projection)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn arches() -> BTreeMap<String, String> {
        BTreeMap::from([("ip-10-0-1-20".to_owned(), "amd64".to_owned())])
    }

    fn fixture() -> Vec<Value> {
        vec![
            json!({"kind": "Deployment", "metadata": {"name": "grafana", "namespace": "monitoring", "uid": "d1", "resourceVersion": "77"},
                   "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "template": {"spec": {"initContainers": [{"name": "init", "image": "busybox:1.31.1"}], "containers": [{"name": "grafana", "image": "grafana/grafana:10.2.2"}]}}},
                   "status": {"readyReplicas": 1, "conditions": [
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "lastUpdateTime": "2026-01-01T00:00:00Z"},
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}),
            json!({"kind": "ReplicaSet", "metadata": {"name": "grafana-6d7d8fc764", "namespace": "monitoring", "uid": "r2",
                   "annotations": {"deployment.kubernetes.io/revision": "2"},
                   "ownerReferences": [{"kind": "Deployment", "name": "grafana", "uid": "d1", "controller": true}]},
                   "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}),
            json!({"kind": "Pod", "metadata": {"name": "grafana-6d7d8fc764-659zz", "namespace": "monitoring", "uid": "p1", "creationTimestamp": "2026-01-01T00:00:05Z",
                   "ownerReferences": [{"kind": "ReplicaSet", "name": "grafana-6d7d8fc764", "uid": "r2", "controller": true}]},
                   "spec": {"nodeName": "ip-10-0-1-20", "containers": [{"name": "grafana", "image": "grafana/grafana:10.2.2"}]},
                   "status": {"phase": "Running", "podIP": "10.42.0.7", "containerStatuses": [{"name": "grafana", "ready": true, "restartCount": 0}]}}),
            json!({"kind": "Secret", "metadata": {"name": "creds", "namespace": "monitoring"}, "data": {"password": "Y2FuYXJ5LXNlY3JldC12YWx1ZQ=="}, "stringData": {"token": "canary-secret-value"}}),
            json!({"kind": "PersistentVolume", "metadata": {"name": "pvc-3fd53380-07c7-4506-933b-a011fcc10a82", "uid": "v1"},
                   "spec": {"claimRef": {"namespace": "monitoring", "name": "grafana"}}, "status": {"phase": "Bound"}}),
            json!({"kind": "Service", "metadata": {"name": "grafana", "namespace": "monitoring", "uid": "s1"},
                   "spec": {"type": "NodePort", "clusterIP": "10.43.12.7", "selector": {"app": "grafana"},
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": 31234},
                                      {"port": 9090, "targetPort": 9090}]}}),
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "grafana", "namespace": "monitoring", "uid": "c1"},
                   "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"], "volumeName": "pvc-3fd53380-07c7-4506-933b-a011fcc10a82"},
                   "status": {"phase": "Bound"}}),
            json!({"kind": "ExternalSecret", "metadata": {"name": "grafana-admin", "namespace": "monitoring", "uid": "e1"},
                   "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "SecretSyncedError", "message": "could not get secret data from provider"}]}}),
        ]
    }

    #[test]
    fn applications_show_sync_health_and_last_operation() {
        let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "local-data-temporal", "namespace": "argocd", "uid": "a1"},
            "status": {"sync": {"status": "OutOfSync", "revision": "0123456789abcdef0123456789abcdef01234567"},
                       "health": {"status": "Missing"},
                       "conditions": [{"type": "SyncError", "message": "Failed sync attempt", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                       "operationState": {"phase": "Failed", "startedAt": "2026-01-01T00:00:00Z"}}});
        let fresh = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "fresh", "namespace": "argocd", "uid": "a2"}});
        let projected = project(&[app, fresh], &arches());
        assert_eq!(projected[0].app.as_deref(), Some("-/-/-"));
        assert_eq!(
            projected[1].app.as_deref(),
            Some("OutOfSync/Missing/Failed")
        );
        assert_eq!(projected[1].conditions, ["SyncError"]);
        let text = render(&projected).unwrap();
        assert!(
            !text.contains("0123456789abcdef"),
            "revisions stay out: {text}"
        );
    }

    #[test]
    fn services_claims_and_custom_resources_show_what_decides_health() {
        let projected = project(&fixture(), &arches());
        let find = |kind: &str| projected.iter().find(|p| p.kind == kind).unwrap();
        let svc = find("Service");
        assert_eq!(svc.service_type.as_deref(), Some("NodePort"));
        assert_eq!(svc.ports, ["http 80/TCP -> http", "9090/TCP -> 9090"]);
        assert_eq!(svc.selector.get("app").map(String::as_str), Some("grafana"));
        let text = render(&projected).unwrap();
        assert!(
            !text.contains("31234") && !text.contains("10.43.12.7"),
            "{text}"
        );
        let pvc = find("PersistentVolumeClaim");
        assert_eq!(pvc.storage_class.as_deref(), Some("gp2"));
        assert_eq!(pvc.access_modes, ["ReadWriteOnce"]);
        assert_eq!(pvc.phase.as_deref(), Some("Bound"));
        assert_eq!(
            find("ExternalSecret").conditions,
            ["Ready=False (SecretSyncedError)"]
        );
        assert_eq!(find("Pod").node.as_deref(), Some("node-<1> (amd64)"));
    }

    #[test]
    fn pods_on_different_nodes_get_different_tokens_in_name_order() {
        let pod = |name: &str, node: &str| {
            json!({"kind": "Pod", "metadata": {"name": name, "namespace": "a", "uid": name},
                   "spec": {"nodeName": node, "containers": []}})
        };
        let objects = vec![pod("x", "zeta"), pod("y", "alpha"), pod("z", "zeta")];
        let arch = BTreeMap::from([("alpha".to_owned(), "arm64".to_owned())]);
        let nodes: Vec<Option<String>> = project(&objects, &arch)
            .into_iter()
            .map(|p| p.node)
            .collect();
        assert_eq!(
            nodes,
            [
                Some("node-<2>".to_owned()),
                Some("node-<1> (arm64)".to_owned()),
                Some("node-<2>".to_owned())
            ]
        );
    }

    #[test]
    fn projection_is_stable_and_drops_volatile_fields() {
        let text = render(&project(&fixture(), &arches())).unwrap();
        insta::assert_snapshot!("projection", text);
        for volatile in [
            "659zz",
            "6d7d8fc764",
            "10.42.0.7",
            "ip-10-0-1-20",
            "2026-01-01",
            "resourceVersion",
            "3fd53380",
        ] {
            assert!(!text.contains(volatile), "{volatile} leaked into:\n{text}");
        }
    }

    #[test]
    fn secret_values_never_appear() {
        let text = render(&project(&fixture(), &arches())).unwrap();
        assert!(!text.contains("canary-secret-value"));
        assert!(!text.contains("Y2FuYXJ5LXNlY3JldC12YWx1ZQ=="));
        assert!(text.contains("password: <redacted>"));
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let mut reversed = fixture();
        reversed.reverse();
        assert_eq!(
            project(&fixture(), &arches()),
            project(&reversed, &arches())
        );
    }

    #[test]
    fn sibling_pods_get_ordinals_by_creation() {
        let mut objects = fixture();
        objects.push(json!({"kind": "Pod", "metadata": {"name": "grafana-6d7d8fc764-aaaaa", "namespace": "monitoring", "uid": "p0", "creationTimestamp": "2026-01-01T00:00:01Z",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "grafana-6d7d8fc764", "uid": "r2", "controller": true}]}}));
        let names: Vec<String> = project(&objects, &arches())
            .into_iter()
            .filter(|p| p.kind == "Pod")
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["grafana-<rev2>-<1>", "grafana-<rev2>-<2>"]);
    }
}
