//! `meta.k8s.io/v1` Table output for `kubectl get`, with the columns and cells of the real
//! server-side printers (k8s.io/kubernetes/pkg/printers/internalversion/printers.go) and of the
//! custom resource table convertor (apiextensions-apiserver/pkg/registry/customresource/tableconvertor).

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::sim::clock::{human_duration, parse_time};
use crate::sim::resources::ResourceDef;
use crate::sim::store::LabelSelector;

// metav1.ObjectMeta swagger docs for the two columns every table has.
const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// What a row's `object` holds (`includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter; Metadata when absent or unknown.
    #[must_use]
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: i64,
    desc: &'static str,
}

const fn c(name: &'static str, ty: &'static str, priority: i64, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        priority,
        desc,
    }
}

fn columns(res: &ResourceDef) -> Option<Vec<Col>> {
    // Descriptions taken from swagger docs of other types are left empty; kubectl does not show them.
    let name = c("Name", "string", 0, NAME_DOC);
    let age = c("Age", "string", 0, CREATED_DOC);
    let cols = match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => vec![
            name,
            c(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            c(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            c(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            c("IP", "string", 1, ""),
            c("Node", "string", 1, ""),
            c("Nominated Node", "string", 1, ""),
            c("Readiness Gates", "string", 1, ""),
        ],
        ("apps", "Deployment") => vec![
            name,
            c("Ready", "string", 0, "Number of the pod with ready state"),
            c("Up-to-date", "string", 0, ""),
            c("Available", "string", 0, ""),
            age,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            c("Selector", "string", 1, ""),
        ],
        ("apps", "ReplicaSet") => vec![
            name,
            c("Desired", "integer", 0, ""),
            c("Current", "integer", 0, ""),
            c("Ready", "integer", 0, ""),
            age,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            c("Selector", "string", 1, ""),
        ],
        ("apps", "StatefulSet") => vec![
            name,
            c("Ready", "string", 0, "Number of the pod with ready state"),
            age,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
        ],
        ("apps", "DaemonSet") => vec![
            name,
            c("Desired", "integer", 0, ""),
            c("Current", "integer", 0, ""),
            c("Ready", "integer", 0, ""),
            c("Up-to-date", "integer", 0, ""),
            c("Available", "integer", 0, ""),
            c("Node Selector", "string", 0, ""),
            age,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            c("Selector", "string", 1, ""),
        ],
        ("batch", "Job") => vec![
            name,
            c("Status", "string", 0, "Status of the job."),
            c("Completions", "string", 0, ""),
            c(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            age,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            c("Selector", "string", 1, ""),
        ],
        ("batch", "CronJob") => vec![
            name,
            c("Schedule", "string", 0, ""),
            c("Timezone", "string", 0, ""),
            c("Suspend", "boolean", 0, ""),
            c("Active", "integer", 0, ""),
            c("Last Schedule", "string", 0, ""),
            age,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            c("Selector", "string", 1, ""),
        ],
        ("", "Node") => vec![
            name,
            c("Status", "string", 0, "The status of the node"),
            c("Roles", "string", 0, "The roles of the node"),
            age,
            c("Version", "string", 0, ""),
            c("Internal-IP", "string", 1, ""),
            c("External-IP", "string", 1, ""),
            c("OS-Image", "string", 1, ""),
            c("Kernel-Version", "string", 1, ""),
            c("Container-Runtime", "string", 1, ""),
        ],
        ("", "PersistentVolumeClaim") => vec![
            name,
            c("Status", "string", 0, ""),
            c("Volume", "string", 0, ""),
            c("Capacity", "string", 0, ""),
            c("Access Modes", "string", 0, ""),
            c("StorageClass", "string", 0, "StorageClass of the pvc"),
            c(
                "VolumeAttributesClass",
                "string",
                0,
                "VolumeAttributesClass of the pvc",
            ),
            age,
            c("VolumeMode", "string", 1, ""),
        ],
        ("", "PersistentVolume") => vec![
            name,
            c("Capacity", "string", 0, ""),
            c("Access Modes", "string", 0, ""),
            c("Reclaim Policy", "string", 0, ""),
            c("Status", "string", 0, ""),
            c("Claim", "string", 0, ""),
            c("StorageClass", "string", 0, "StorageClass of the pv"),
            c(
                "VolumeAttributesClass",
                "string",
                0,
                "VolumeAttributesClass of the pv",
            ),
            c("Reason", "string", 0, ""),
            age,
            c("VolumeMode", "string", 1, ""),
        ],
        ("", "Service") => vec![
            name,
            c("Type", "string", 0, ""),
            c("Cluster-IP", "string", 0, ""),
            c("External-IP", "string", 0, ""),
            c("Port(s)", "string", 0, ""),
            age,
            c("Selector", "string", 1, ""),
        ],
        ("", "Event") => vec![
            c("Last Seen", "string", 0, ""),
            c("Type", "string", 0, ""),
            c("Reason", "string", 0, ""),
            c("Object", "string", 0, ""),
            c("Subobject", "string", 1, ""),
            c("Source", "string", 1, ""),
            c("Message", "string", 0, ""),
            c("First Seen", "string", 1, ""),
            c("Count", "string", 1, ""),
            Col {
                priority: 1,
                ..name
            },
        ],
        ("", "Namespace") => vec![
            name,
            c("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        ("", "ConfigMap") => vec![name, c("Data", "string", 0, ""), age],
        ("", "Secret") => vec![
            name,
            c("Type", "string", 0, ""),
            c("Data", "string", 0, ""),
            age,
        ],
        ("", "ServiceAccount") => vec![name, c("Secrets", "string", 0, ""), age],
        ("", "Endpoints") => vec![name, c("Endpoints", "string", 0, ""), age],
        ("storage.k8s.io", "StorageClass") => vec![
            name,
            c("Provisioner", "string", 0, ""),
            c("ReclaimPolicy", "string", 0, ""),
            c("VolumeBindingMode", "string", 0, ""),
            c("AllowVolumeExpansion", "string", 0, ""),
            age,
        ],
        ("coordination.k8s.io", "Lease") => vec![name, c("Holder", "string", 0, ""), age],
        ("policy", "PodDisruptionBudget") => vec![
            name,
            c(
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available.",
            ),
            c(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable.",
            ),
            c(
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            age,
        ],
        ("networking.k8s.io", "Ingress") => vec![
            name,
            c(
                "Class",
                "string",
                0,
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            c(
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            c(
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            c(
                "Ports",
                "string",
                0,
                "Ports of TLS configurations that open",
            ),
            age,
        ],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => vec![
            name,
            c("Role", "string", 0, ""),
            age,
            c("Users", "string", 1, ""),
            c("Groups", "string", 1, ""),
            c("ServiceAccounts", "string", 1, ""),
        ],
        _ => return None,
    };
    Some(cols)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn age(obj: &Value, now: Timestamp) -> String {
    since(&obj["metadata"]["creationTimestamp"], now)
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
fn since(ts: &Value, now: Timestamp) -> String {
    match ts.as_str().and_then(parse_time) {
        Some(t) => human_duration(now.duration_since(t).as_secs()),
        None => "<unknown>".to_string(),
    }
}

fn selector_string(sel: &Value) -> String {
    if sel.is_null() {
        return "<none>".to_string();
    }
    match LabelSelector::from_object(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s.to_query(),
        Err(_) => "<error>".to_string(),
    }
}

fn labels_string(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

fn containers_and_images(pod_spec: &Value) -> (String, String) {
    let list = pod_spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

/// The pod STATUS column, READY and RESTARTS, computed as `printPod` does.
#[must_use]
pub fn pod_status(pod: &Value, now: Timestamp) -> (String, String, String) {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let init_specs = spec["initContainers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut total = containers.len();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_restart: Option<Timestamp> = None;
    let phase = s(&status["phase"]);
    let mut reason = if s(&status["reason"]).is_empty() {
        phase.to_string()
    } else {
        s(&status["reason"]).to_string()
    };
    for cond in status["conditions"].as_array().into_iter().flatten() {
        if cond["type"] == "PodScheduled" && cond["reason"] == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }
    let is_restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(&c["name"]) == name && c["restartPolicy"] == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .count();
    let later = |a: Option<Timestamp>, v: &Value| -> Option<Timestamp> {
        match (a, v.as_str().and_then(parse_time)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    };
    let init_statuses = status["initContainerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += int(&cs["restartCount"]);
        let finished = &cs["lastState"]["terminated"]["finishedAt"];
        last_restart = later(last_restart, finished);
        let name = s(&cs["name"]);
        if is_restartable(name) {
            restartable_restarts += int(&cs["restartCount"]);
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let term = &cs["state"]["terminated"];
        let waiting = &cs["state"]["waiting"];
        if term.is_object() && int(&term["exitCode"]) == 0 {
            continue;
        }
        if is_restartable(name) && cs["started"] == Value::Bool(true) {
            if cs["ready"] == Value::Bool(true) {
                ready += 1;
            }
            continue;
        }
        if term.is_object() {
            reason = if s(&term["reason"]).is_empty() {
                if int(&term["signal"]) != 0 {
                    format!("Init:Signal:{}", int(&term["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(&term["exitCode"]))
                }
            } else {
                format!("Init:{}", s(&term["reason"]))
            };
        } else if waiting.is_object()
            && !s(&waiting["reason"]).is_empty()
            && s(&waiting["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", s(&waiting["reason"]));
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    if !initializing || initialized {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        let statuses = status["containerStatuses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for cs in statuses.iter().rev() {
            restarts += int(&cs["restartCount"]);
            last_restart = later(last_restart, &cs["lastState"]["terminated"]["finishedAt"]);
            let waiting = &cs["state"]["waiting"];
            let term = &cs["state"]["terminated"];
            if waiting.is_object() && !s(&waiting["reason"]).is_empty() {
                reason = s(&waiting["reason"]).to_string();
            } else if term.is_object() && !s(&term["reason"]).is_empty() {
                reason = s(&term["reason"]).to_string();
            } else if term.is_object() {
                reason = if int(&term["signal"]) != 0 {
                    format!("Signal:{}", int(&term["signal"]))
                } else {
                    format!("ExitCode:{}", int(&term["exitCode"]))
                };
            } else if cs["ready"] == Value::Bool(true) && cs["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if pod_ready {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }
    let deleting = pod["metadata"]["deletionTimestamp"].is_string();
    if deleting && s(&status["reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.duration_since(t).as_secs())
        ),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_str)
}

fn access_modes(modes: &Value) -> String {
    // pkg/apis/core/helper: GetAccessModesAsString
    let list: Vec<&str> = modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if list.contains(&mode) {
            out.push(short);
        }
    }
    out.join(",")
}

fn service_external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match s(&spec["type"]) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i["ip"]
                        .as_str()
                        .or_else(|| i["hostname"].as_str())
                        .filter(|x| !x.is_empty())
                })
                .map(ToString::to_string)
                .collect();
            lb.sort();
            lb.dedup();
            let mut lbs = lb.join(",");
            if lbs.len() > 16 {
                lbs = format!("{}...", &lbs[..13]);
            }
            if !external.is_empty() {
                let mut all: Vec<String> = if lbs.is_empty() {
                    Vec::new()
                } else {
                    lbs.split(',').map(ToString::to_string).collect()
                };
                all.extend(external.iter().map(ToString::to_string));
                return all.join(",");
            }
            if lbs.is_empty() {
                "<pending>".to_string()
            } else {
                lbs
            }
        }
        "ExternalName" => s(&spec["externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn cells(res: &ResourceDef, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(s(&obj["metadata"]["name"]));
    let spec = &obj["spec"];
    let status = &obj["status"];
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => {
            let (ready, reason, restarts) = pod_status(obj, now);
            let ip = status["podIPs"][0]["ip"]
                .as_str()
                .filter(|x| !x.is_empty())
                .unwrap_or("<none>");
            let node = spec["nodeName"]
                .as_str()
                .filter(|x| !x.is_empty())
                .unwrap_or("<none>");
            let nominated = status["nominatedNodeName"]
                .as_str()
                .filter(|x| !x.is_empty())
                .unwrap_or("<none>");
            let gates = spec["readinessGates"]
                .as_array()
                .filter(|g| !g.is_empty())
                .map_or_else(
                    || "<none>".to_string(),
                    |gates| {
                        let ok = gates
                            .iter()
                            .filter(|g| {
                                status["conditions"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .any(|c| {
                                        c["type"] == g["conditionType"] && c["status"] == "True"
                                    })
                            })
                            .count();
                        format!("{ok}/{}", gates.len())
                    },
                );
            vec![
                name,
                json!(ready),
                json!(reason),
                json!(restarts),
                json!(age(obj, now)),
                json!(ip),
                json!(node),
                json!(nominated),
                json!(gates),
            ]
        }
        ("apps", "Deployment") => {
            let (cn, im) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                json!(int(&status["updatedReplicas"])),
                json!(int(&status["availableReplicas"])),
                json!(age(obj, now)),
                json!(cn),
                json!(im),
                json!(selector_string(&spec["selector"])),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (cn, im) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(int(&spec["replicas"])),
                json!(int(&status["replicas"])),
                json!(int(&status["readyReplicas"])),
                json!(age(obj, now)),
                json!(cn),
                json!(im),
                json!(selector_string(&spec["selector"])),
            ]
        }
        ("apps", "StatefulSet") => {
            let (cn, im) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                json!(age(obj, now)),
                json!(cn),
                json!(im),
            ]
        }
        ("apps", "DaemonSet") => {
            let (cn, im) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(int(&status["desiredNumberScheduled"])),
                json!(int(&status["currentNumberScheduled"])),
                json!(int(&status["numberReady"])),
                json!(int(&status["updatedNumberScheduled"])),
                json!(int(&status["numberAvailable"])),
                json!(labels_string(&spec["template"]["spec"]["nodeSelector"])),
                json!(age(obj, now)),
                json!(cn),
                json!(im),
                json!(selector_string(&spec["selector"])),
            ]
        }
        ("batch", "Job") => {
            let succeeded = int(&status["succeeded"]);
            let completions = match spec["completions"].as_i64() {
                Some(n) => format!("{succeeded}/{n}"),
                None => {
                    let p = int(&spec["parallelism"]);
                    if p > 1 {
                        format!("{succeeded}/1 of {p}")
                    } else {
                        format!("{succeeded}/1")
                    }
                }
            };
            let start = status["startTime"].as_str().and_then(parse_time);
            let end = status["completionTime"].as_str().and_then(parse_time);
            let duration = match (start, end) {
                (None, _) => String::new(),
                (Some(st), None) => human_duration(now.duration_since(st).as_secs()),
                (Some(st), Some(en)) => human_duration(en.duration_since(st).as_secs()),
            };
            let has = |t: &str| {
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == t)
                    .is_some_and(|c| c["status"] == "True")
            };
            let state = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if obj["metadata"]["deletionTimestamp"].is_string() {
                "Terminating"
            } else if has("Suspended") {
                "Suspended"
            } else if has("FailureTarget") {
                "FailureTarget"
            } else {
                "Running"
            };
            let (cn, im) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(state),
                json!(completions),
                json!(duration),
                json!(age(obj, now)),
                json!(cn),
                json!(im),
                json!(selector_string(&spec["selector"])),
            ]
        }
        ("batch", "CronJob") => {
            let last = if status["lastScheduleTime"].is_string() {
                since(&status["lastScheduleTime"], now)
            } else {
                "<none>".to_string()
            };
            let tz = spec["timeZone"].as_str().unwrap_or("<none>");
            let suspend = match spec["suspend"].as_bool() {
                Some(b) => json!(b.to_string()),
                None => json!("<unset>"),
            };
            let job_spec = &spec["jobTemplate"]["spec"];
            let (cn, im) = containers_and_images(&job_spec["template"]["spec"]);
            vec![
                name,
                json!(s(&spec["schedule"])),
                json!(tz),
                suspend,
                json!(status["active"].as_array().map_or(0, Vec::len)),
                json!(last),
                json!(age(obj, now)),
                json!(cn),
                json!(im),
                json!(selector_string(&job_spec["selector"])),
            ]
        }
        ("", "Node") => {
            let mut states = Vec::new();
            if let Some(ready) = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
            {
                states.push(if ready["status"] == "True" {
                    "Ready".to_string()
                } else {
                    "NotReady".to_string()
                });
            }
            if states.is_empty() {
                states.push("Unknown".to_string());
            }
            if spec["unschedulable"] == Value::Bool(true) {
                states.push("SchedulingDisabled".to_string());
            }
            let mut roles: Vec<String> = obj["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!role.is_empty()).then(|| role.to_string())
                    } else if k == "kubernetes.io/role" && !s(v).is_empty() {
                        Some(s(v).to_string())
                    } else {
                        None
                    }
                })
                .collect();
            roles.sort();
            roles.dedup();
            let roles = if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            };
            let addr = |t: &str| {
                status["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map_or("<none>", |a| s(&a["address"]))
                    .to_string()
            };
            let info = &status["nodeInfo"];
            let or_unknown = |v: &Value| {
                if s(v).is_empty() {
                    "<unknown>".to_string()
                } else {
                    s(v).to_string()
                }
            };
            vec![
                name,
                json!(states.join(",")),
                json!(roles),
                json!(age(obj, now)),
                json!(s(&info["kubeletVersion"])),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(or_unknown(&info["osImage"])),
                json!(or_unknown(&info["kernelVersion"])),
                json!(or_unknown(&info["containerRuntimeVersion"])),
            ]
        }
        ("", "PersistentVolumeClaim") => {
            let phase = if obj["metadata"]["deletionTimestamp"].is_string() {
                "Terminating"
            } else {
                s(&status["phase"])
            };
            let bound = !s(&spec["volumeName"]).is_empty();
            let (capacity, modes) = if bound {
                (
                    quantity(&status["capacity"]["storage"]),
                    access_modes(&status["accessModes"]),
                )
            } else {
                (String::new(), String::new())
            };
            vec![
                name,
                json!(phase),
                json!(s(&spec["volumeName"])),
                json!(capacity),
                json!(modes),
                json!(s(&spec["storageClassName"])),
                json!(
                    spec["volumeAttributesClassName"]
                        .as_str()
                        .unwrap_or("<unset>")
                ),
                json!(age(obj, now)),
                json!(spec["volumeMode"].as_str().unwrap_or("<unset>")),
            ]
        }
        ("", "PersistentVolume") => {
            let phase = if obj["metadata"]["deletionTimestamp"].is_string() {
                "Terminating"
            } else {
                s(&status["phase"])
            };
            let claim = if spec["claimRef"].is_object() {
                format!(
                    "{}/{}",
                    s(&spec["claimRef"]["namespace"]),
                    s(&spec["claimRef"]["name"])
                )
            } else {
                String::new()
            };
            vec![
                name,
                json!(quantity(&spec["capacity"]["storage"])),
                json!(access_modes(&spec["accessModes"])),
                json!(s(&spec["persistentVolumeReclaimPolicy"])),
                json!(phase),
                json!(claim),
                json!(s(&spec["storageClassName"])),
                json!(
                    spec["volumeAttributesClassName"]
                        .as_str()
                        .unwrap_or("<unset>")
                ),
                json!(s(&status["reason"])),
                json!(age(obj, now)),
                json!(spec["volumeMode"].as_str().unwrap_or("<unset>")),
            ]
        }
        ("", "Service") => {
            let ip = spec["clusterIPs"][0].as_str().unwrap_or("<none>");
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    if int(&p["nodePort"]) > 0 {
                        format!(
                            "{}:{}/{}",
                            int(&p["port"]),
                            int(&p["nodePort"]),
                            s(&p["protocol"])
                        )
                    } else {
                        format!("{}/{}", int(&p["port"]), s(&p["protocol"]))
                    }
                })
                .collect();
            let ports = if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            };
            vec![
                name,
                json!(s(&spec["type"])),
                json!(ip),
                json!(service_external_ip(obj)),
                json!(ports),
                json!(age(obj, now)),
                json!(labels_string(&spec["selector"])),
            ]
        }
        ("", "Event") => {
            let first = if obj["firstTimestamp"].is_string() {
                since(&obj["firstTimestamp"], now)
            } else {
                since(&obj["eventTime"], now)
            };
            let mut last = if obj["lastTimestamp"].is_string() {
                since(&obj["lastTimestamp"], now)
            } else {
                first.clone()
            };
            let mut count = int(&obj["count"]);
            if obj["series"].is_object() {
                last = since(&obj["series"]["lastObservedTime"], now);
                count = int(&obj["series"]["count"]);
            } else if count == 0 {
                count = 1;
            }
            let io = &obj["involvedObject"];
            let target = if s(&io["name"]).is_empty() {
                s(&io["kind"]).to_ascii_lowercase()
            } else {
                format!("{}/{}", s(&io["kind"]).to_ascii_lowercase(), s(&io["name"]))
            };
            let component = [
                s(&obj["source"]["component"]),
                s(&obj["reportingComponent"]),
            ]
            .into_iter()
            .find(|x| !x.is_empty())
            .unwrap_or_default();
            let host = [s(&obj["source"]["host"]), s(&obj["reportingInstance"])]
                .into_iter()
                .find(|x| !x.is_empty())
                .unwrap_or_default();
            let source = if host.is_empty() {
                component.to_string()
            } else {
                format!("{component}, {host}")
            };
            vec![
                json!(last),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(target),
                json!(s(&io["fieldPath"])),
                json!(source),
                json!(s(&obj["message"]).trim()),
                json!(first),
                json!(count),
                name,
            ]
        }
        ("", "Namespace") => vec![name, json!(s(&status["phase"])), json!(age(obj, now))],
        ("", "ConfigMap") => {
            let n = obj["data"].as_object().map_or(0, serde_json::Map::len)
                + obj["binaryData"]
                    .as_object()
                    .map_or(0, serde_json::Map::len);
            vec![name, json!(n), json!(age(obj, now))]
        }
        ("", "Secret") => vec![
            name,
            json!(s(&obj["type"])),
            json!(obj["data"].as_object().map_or(0, serde_json::Map::len)),
            json!(age(obj, now)),
        ],
        ("", "ServiceAccount") => vec![
            name,
            json!(obj["secrets"].as_array().map_or(0, Vec::len)),
            json!(age(obj, now)),
        ],
        ("", "Endpoints") => {
            let mut list = Vec::new();
            let mut count = 0usize;
            for subset in obj["subsets"].as_array().into_iter().flatten() {
                for addr in subset["addresses"].as_array().into_iter().flatten() {
                    let ports: Vec<i64> = subset["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| int(&p["port"]))
                        .collect();
                    if ports.is_empty() {
                        count += 1;
                        if list.len() < 3 {
                            list.push(s(&addr["ip"]).to_string());
                        }
                    }
                    for p in ports {
                        count += 1;
                        if list.len() < 3 {
                            list.push(format!("{}:{p}", s(&addr["ip"])));
                        }
                    }
                }
            }
            let mut text = list.join(",");
            if count > 3 {
                text = format!("{text} + {} more...", count - 3);
            }
            if text.is_empty() {
                text = "<none>".to_string();
            }
            vec![name, json!(text), json!(age(obj, now))]
        }
        ("storage.k8s.io", "StorageClass") => {
            let mut n = s(&obj["metadata"]["name"]).to_string();
            let ann = &obj["metadata"]["annotations"];
            if ann["storageclass.kubernetes.io/is-default-class"] == "true"
                || ann["storageclass.beta.kubernetes.io/is-default-class"] == "true"
            {
                n.push_str(" (default)");
            }
            vec![
                json!(n),
                json!(s(&obj["provisioner"])),
                json!(obj["reclaimPolicy"].as_str().unwrap_or("Delete")),
                json!(obj["volumeBindingMode"].as_str().unwrap_or("Immediate")),
                json!(
                    obj["allowVolumeExpansion"]
                        .as_bool()
                        .unwrap_or(false)
                        .to_string()
                ),
                json!(age(obj, now)),
            ]
        }
        ("coordination.k8s.io", "Lease") => vec![
            name,
            json!(s(&spec["holderIdentity"])),
            json!(age(obj, now)),
        ],
        ("policy", "PodDisruptionBudget") => {
            let intstr = |v: &Value| {
                if v.is_null() {
                    "N/A".to_string()
                } else {
                    quantity(v)
                }
            };
            vec![
                name,
                json!(intstr(&spec["minAvailable"])),
                json!(intstr(&spec["maxUnavailable"])),
                json!(int(&status["disruptionsAllowed"])),
                json!(age(obj, now)),
            ]
        }
        ("networking.k8s.io", "Ingress") => {
            let rules = spec["rules"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let hosts: Vec<&str> = rules
                .iter()
                .map(|r| s(&r["host"]))
                .filter(|h| !h.is_empty())
                .take(3)
                .collect();
            let mut hosts_text = if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            };
            if rules.len() > 3 && !hosts.is_empty() {
                hosts_text = format!("{hosts_text} + {} more...", rules.len() - 3);
            }
            let mut addrs: Vec<String> = status["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i["ip"]
                        .as_str()
                        .or_else(|| i["hostname"].as_str())
                        .map(ToString::to_string)
                })
                .collect();
            addrs.sort();
            let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                name,
                json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
                json!(hosts_text),
                json!(addrs.join(",")),
                json!(ports),
                json!(age(obj, now)),
            ]
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let subjects = obj["subjects"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let pick = |k: &str| -> String {
                subjects
                    .iter()
                    .filter(|x| x["kind"] == k)
                    .map(|x| {
                        if k == "ServiceAccount" {
                            format!("{}/{}", s(&x["namespace"]), s(&x["name"]))
                        } else {
                            s(&x["name"]).to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(&obj["roleRef"]["kind"]),
                    s(&obj["roleRef"]["name"])
                )),
                json!(age(obj, now)),
                json!(pick("User")),
                json!(pick("Group")),
                json!(pick("ServiceAccount")),
            ]
        }
        _ => Vec::new(),
    }
}

fn column_defs(cols: &[Col]) -> Vec<Value> {
    cols.iter()
        .map(|c| {
            let mut d = json!({"name": c.name, "type": c.ty, "format": "", "description": c.desc, "priority": c.priority});
            if c.name == "Name" {
                d["format"] = json!("name");
            }
            d
        })
        .collect()
}

/// Evaluates the simple JSONPath subset printer columns use: `.a.b`, `.a[0].b`,
/// `.a[?(@.type=="Ready")].status`.
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            let sel = &inner[..end];
            rest = inner[end + 1..].trim_start_matches('.');
            if let Ok(i) = sel.parse::<usize>() {
                cur = cur.get(i)?;
            } else if let Some(filter) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (key, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches('"').trim_matches('\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|e| e[key.trim()].as_str() == Some(want))?;
            } else {
                return None;
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        cur = cur.get(&rest[..end])?;
        rest = rest[end..].trim_start_matches('.');
    }
    Some(cur)
}

fn custom_cells(res: &ResourceDef, obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut out = vec![json!(s(&obj["metadata"]["name"]))];
    for col in custom_columns(res) {
        let v = json_path(obj, &col.json_path);
        out.push(match (col.type_.as_str(), v) {
            (_, None | Some(Value::Null)) => Value::Null,
            ("date", Some(v)) => json!(since(v, now)),
            ("integer", Some(v)) => json!(v.as_i64()),
            ("number", Some(v)) => json!(v.as_f64()),
            ("boolean", Some(v)) => json!(v.as_bool()),
            (_, Some(Value::String(x))) => json!(x),
            (_, Some(other)) => json!(other.to_string()),
        });
    }
    out
}

fn custom_columns(res: &ResourceDef) -> Vec<crate::sim::resources::PrinterColumn> {
    if res.printer_columns.is_empty() {
        // apiextensions-apiserver serves an Age column when none is declared.
        return vec![crate::sim::resources::PrinterColumn {
            name: "Age".to_string(),
            type_: "date".to_string(),
            format: String::new(),
            description: CREATED_DOC.to_string(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".to_string(),
        }];
    }
    res.printer_columns.clone()
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }),
    }
}

/// Computes the cells of one row.
type RowFn<'a> = Box<dyn Fn(&Value) -> Vec<Value> + 'a>;

/// Builds a Table of `items` of resource `res`.
#[must_use]
pub fn table(
    res: &ResourceDef,
    items: &[Value],
    include: IncludeObject,
    now: Timestamp,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let (defs, row_cells): (Vec<Value>, RowFn<'_>) = if res.custom {
        let mut defs = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0}),
        ];
        for col in custom_columns(res) {
            defs.push(json!({"name": col.name, "type": col.type_, "format": col.format, "description": col.description, "priority": col.priority}));
        }
        (defs, Box::new(move |o: &Value| custom_cells(res, o, now)))
    } else if let Some(cols) = columns(res) {
        (
            column_defs(&cols),
            Box::new(move |o: &Value| cells(res, o, now)),
        )
    } else {
        // k8s.io/apiserver/pkg/registry/rest/table.go: the default table convertor.
        let defs = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0}),
            json!({"name": "Created At", "type": "date", "format": "", "description": CREATED_DOC, "priority": 0}),
        ];
        (
            defs,
            Box::new(|o: &Value| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    o["metadata"]["creationTimestamp"].clone(),
                ]
            }),
        )
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": row_cells(o)});
            let object = row_object(o, include);
            if !object.is_null() {
                row["object"] = object;
            }
            if res.group.is_empty() && res.kind == "Pod" {
                match s(&o["status"]["phase"]) {
                    "Succeeded" => row["conditions"] = json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
                    "Failed" => row["conditions"] = json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
                    _ => {}
                }
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests;
