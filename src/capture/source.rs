//! Where a capture reads the cluster from: a live API server (through the same kube client the
//! kubeconfig backend uses) or the files `kubectl get -o yaml` and `kubectl logs` wrote.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, LogParams};
use serde_json::Value;

use super::CaptureError;

/// The namespaced kinds a capture lists in each namespace, as `(apiVersion, kind)`.
const NAMESPACED: [(&str, &str); 15] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Event"),
];

/// The cluster-scoped kinds a capture lists.
const CLUSTER: [(&str, &str); 6] = [
    ("v1", "Node"),
    // Each node's attachable-volume limit (`drivers[].allocatable.count`).
    ("storage.k8s.io/v1", "CSINode"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
];

/// The last lines of one container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    /// The pod's namespace; unknown for log files, which name only the pod.
    pub namespace: Option<String>,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// Whether these are the previous (crashed) container's lines (`kubectl logs -p`).
    pub previous: bool,
    /// The lines, oldest first.
    pub lines: Vec<String>,
}

/// Everything a capture read, before anything is decided about it. Secret values are still in
/// it: nothing of it may be printed or written as it is.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Objects of every listed kind (events included), each with `apiVersion` and `kind`.
    pub objects: Vec<Value>,
    /// Container logs.
    pub logs: Vec<LogTail>,
    /// Where it came from, for the scenario's `source:` (a context or a directory).
    pub origin: String,
}

impl Recorded {
    /// Keeps only namespaced objects (and logs) of `namespaces`; cluster-scoped objects stay.
    /// An empty list keeps everything.
    pub fn restrict(&mut self, namespaces: &[String]) {
        if namespaces.is_empty() {
            return;
        }
        let keep = |ns: Option<&str>| ns.is_none_or(|ns| namespaces.iter().any(|n| n == ns));
        self.objects
            .retain(|o| keep(o["metadata"]["namespace"].as_str()));
        self.logs.retain(|l| keep(l.namespace.as_deref()));
    }
}

fn with_type(value: Value, api_version: &str, kind: &str) -> Value {
    let mut value = value;
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(api_version.to_owned()));
        map.insert("kind".into(), Value::String(kind.to_owned()));
    }
    value
}

async fn list(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Vec<Value>, CaptureError> {
    // A kind the server does not serve (no CronJobs on an old cluster) has nothing to capture.
    let Ok((ar, _)) = crate::run::steps::resolve(client, api_version, kind).await else {
        return Ok(Vec::new());
    };
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|source| CaptureError::List {
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            source: Box::new(source),
        })?;
    items
        .items
        .into_iter()
        .map(|o| {
            serde_json::to_value(o)
                .map(|v| with_type(v, api_version, kind))
                .map_err(CaptureError::Decode)
        })
        .collect()
}

/// Reads the namespaces' objects and events, the cluster's nodes, storage classes, CRDs and
/// cluster RBAC, the custom resources of every CRD in the namespaces, and the last
/// `log_lines` lines of every container (and of its previous instance, when it restarted).
///
/// # Errors
/// When a list the server serves fails (no permission, unreachable).
pub async fn live(
    client: &kube::Client,
    namespaces: &[String],
    log_lines: usize,
    origin: String,
) -> Result<Recorded, CaptureError> {
    let mut objects = Vec::new();
    for (api_version, kind) in CLUSTER {
        objects.extend(list(client, api_version, kind, None).await?);
    }
    let namespace_api: Api<DynamicObject> = {
        let (ar, _) = crate::run::steps::resolve(client, "v1", "Namespace")
            .await
            .map_err(|e| CaptureError::List {
                kind: "Namespace".to_owned(),
                namespace: None,
                source: Box::new(e),
            })?;
        Api::all_with(client.clone(), &ar)
    };
    let crds: Vec<Value> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .cloned()
        .collect();
    for ns in namespaces {
        match namespace_api.get_opt(ns).await {
            Ok(Some(o)) => objects.push(with_type(
                serde_json::to_value(o).map_err(CaptureError::Decode)?,
                "v1",
                "Namespace",
            )),
            Ok(None) => return Err(CaptureError::NoNamespace(ns.clone())),
            Err(e) => {
                return Err(CaptureError::List {
                    kind: "Namespace".to_owned(),
                    namespace: None,
                    source: Box::new(e),
                });
            }
        }
        for (api_version, kind) in NAMESPACED {
            objects.extend(list(client, api_version, kind, Some(ns)).await?);
        }
        for crd in &crds {
            if crd["spec"]["scope"] != "Namespaced" {
                continue;
            }
            let (Some(group), Some(kind)) = (
                crd["spec"]["group"].as_str(),
                crd["spec"]["names"]["kind"].as_str(),
            ) else {
                continue;
            };
            let versions = crd["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let Some(version) = versions
                .iter()
                .find(|v| v["storage"] == true)
                .or_else(|| versions.first())
                .and_then(|v| v["name"].as_str())
            else {
                continue;
            };
            objects.extend(list(client, &format!("{group}/{version}"), kind, Some(ns)).await?);
        }
    }
    let logs = pod_logs(client, &objects, log_lines).await;
    Ok(Recorded {
        objects,
        logs,
        origin,
    })
}

/// The log tails of every container of the listed pods; a container without a log (never
/// started, no previous instance) has none.
async fn pod_logs(client: &kube::Client, objects: &[Value], log_lines: usize) -> Vec<LogTail> {
    let mut logs = Vec::new();
    let tail = i64::try_from(log_lines).unwrap_or(i64::MAX);
    for pod in objects.iter().filter(|o| o["kind"] == "Pod") {
        let (Some(ns), Some(name)) = (
            pod["metadata"]["namespace"].as_str(),
            pod["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        for status in container_statuses(pod) {
            let Some(container) = status["name"].as_str() else {
                continue;
            };
            let restarted = !status["lastState"]["terminated"].is_null();
            for previous in [false, true] {
                if previous && !restarted {
                    continue;
                }
                let params = LogParams {
                    container: Some(container.to_owned()),
                    previous,
                    tail_lines: Some(tail),
                    ..LogParams::default()
                };
                if let Ok(text) = api.logs(name, &params).await {
                    logs.push(LogTail {
                        namespace: Some(ns.to_owned()),
                        pod: name.to_owned(),
                        container: container.to_owned(),
                        previous,
                        lines: text.lines().map(str::to_owned).collect(),
                    });
                }
            }
        }
    }
    logs
}

/// A pod's init and app container statuses.
pub fn container_statuses(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
}

/// Reads a directory of `kubectl get -o yaml` dumps (single objects or `List` documents, events
/// included) and `<pod>_<container>.log` files (`<pod>_<container>.previous.log` for
/// `kubectl logs -p`), keeping the last `log_lines` lines of each.
///
/// # Errors
/// When the directory or a file in it cannot be read or parsed.
pub fn files(dir: &Path, log_lines: usize) -> Result<Recorded, CaptureError> {
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    let mut objects = Vec::new();
    let mut logs = Vec::new();
    for path in paths {
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CaptureError::Read {
                path: path.to_owned(),
                source,
            })
        };
        if let Some(stem) = file.strip_suffix(".log") {
            let (stem, previous) = match stem.strip_suffix(".previous") {
                Some(s) => (s, true),
                None => (stem, false),
            };
            // Pod and container names are DNS names: neither holds `_`.
            let Some((pod, container)) = stem.split_once('_') else {
                continue;
            };
            let text = read(&path)?;
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let skip = lines.len().saturating_sub(log_lines);
            logs.push(LogTail {
                namespace: None,
                pod: pod.to_owned(),
                container: container.to_owned(),
                previous,
                lines: lines[skip..].to_vec(),
            });
        } else if [".yaml", ".yml", ".json"].iter().any(|e| file.ends_with(e)) {
            let text = read(&path)?;
            let docs = crate::yaml::documents(&text).map_err(|source| CaptureError::Parse {
                path: path.clone(),
                source,
            })?;
            for doc in docs {
                flatten(doc, &mut objects);
            }
        }
    }
    Ok(Recorded {
        objects,
        logs,
        origin: dir.display().to_string(),
    })
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), CaptureError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CaptureError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| CaptureError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| CaptureError::Read {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// A `List` document's items (each with `apiVersion` and `kind`, as kubectl writes them), or
/// the document itself.
fn flatten(doc: Value, out: &mut Vec<Value>) {
    let is_list = doc["kind"].as_str().is_some_and(|k| k.ends_with("List"));
    match doc {
        Value::Object(mut map) if is_list => {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    flatten(item, out);
                }
            }
        }
        doc @ Value::Object(_) if doc["kind"].is_string() => out.push(doc),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_flattened_and_logs_named_by_pod_and_container() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("all.yaml"),
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a, namespace: x}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b, namespace: y}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("web-1_app.previous.log"), "1\n2\n3\n4\n").unwrap();
        let mut seen = files(dir.path(), 2).unwrap();
        assert_eq!(seen.objects.len(), 2);
        assert_eq!(
            seen.logs,
            vec![LogTail {
                namespace: None,
                pod: "web-1".into(),
                container: "app".into(),
                previous: true,
                lines: vec!["3".into(), "4".into()],
            }]
        );
        seen.restrict(&["x".to_owned()]);
        assert_eq!(
            seen.objects,
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}})
            ]
        );
    }
}
