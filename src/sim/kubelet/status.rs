//! The pod `status` the kubelet reports: container statuses, phase and conditions
//! (pkg/kubelet/kubelet_pods.go `generateAPIPodStatus`, `convertToAPIContainerStatuses`,
//! `getPhase`; pkg/kubelet/status/generate.go).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::pod::{Ctr, PodRuntime};
use super::state::{ContainerState, Exited, Termination};
use crate::sim::behaviour::time::rfc3339;

fn terminated(t: &Termination) -> Value {
    json!({"terminated": {
        "containerID": t.id,
        "exitCode": t.exit_code,
        "finishedAt": rfc3339(t.finished_at),
        "reason": t.reason.as_str(),
        "startedAt": rfc3339(t.started_at),
    }})
}

fn any_regular_started(rt: &PodRuntime) -> bool {
    rt.containers.iter().filter(|c| !c.init).any(|c| {
        matches!(
            c.lifecycle.state(),
            ContainerState::Running { .. } | ContainerState::Terminated { .. }
        )
    })
}

/// `getPhase`, over the node's own view of the containers. `api_terminal` is the phase the
/// API already shows when it is terminal: pods never leave a terminal phase.
pub(super) fn phase(
    rt: &PodRuntime,
    policy: &str,
    pod_is_terminal: bool,
    api_terminal: Option<&str>,
) -> &'static str {
    use ContainerState::{Running, Terminated, Waiting};
    match api_terminal {
        Some("Succeeded") => return "Succeeded",
        Some("Failed") => return "Failed",
        _ => {}
    }
    let (mut pending_init, mut failed_init) = (0, 0);
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &rt.containers {
        match (c.init, c.sidecar) {
            (true, false) => match c.lifecycle.state() {
                Running { .. } | Waiting { last: None, .. } => pending_init += 1,
                Terminated { exited, .. }
                | Waiting {
                    last: Some(exited), ..
                } => {
                    if exited.term.exit_code != 0 {
                        failed_init += 1;
                    }
                }
            },
            (true, true) => match c.lifecycle.state() {
                Running { run, .. } => {
                    if !run.started {
                        pending_init += 1;
                    }
                    running += 1;
                }
                Terminated { .. } | Waiting { last: Some(_), .. } => {}
                Waiting { last: None, .. } => {
                    pending_init += 1;
                    waiting += 1;
                }
            },
            (false, _) => match c.lifecycle.state() {
                Running { .. } => running += 1,
                Terminated { exited, .. } => {
                    stopped += 1;
                    if exited.term.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                Waiting { last: Some(_), .. } => stopped += 1,
                Waiting { last: None, .. } => waiting += 1,
            },
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if (pending_init > 0 && !any_regular_started(rt)) || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// One entry of `containerStatuses`/`initContainerStatuses`, rendered from the container's
/// state alone.
fn container_status(c: &Ctr) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name));
    let (state, last, instance_image) = match c.lifecycle.state() {
        ContainerState::Waiting {
            reason,
            message,
            last,
            ..
        } => {
            let mut w = Map::new();
            if !message.is_empty() {
                w.insert("message".into(), json!(message));
            }
            w.insert("reason".into(), json!(reason.as_str()));
            let last = last.as_ref().map(|e| &e.term);
            (json!({"waiting": w}), last, last.map(|t| (&t.image, &t.id)))
        }
        ContainerState::Running { run, last } => (
            json!({"running": {"startedAt": rfc3339(run.started_at)}}),
            last.as_ref(),
            Some((&run.image, &run.id)),
        ),
        ContainerState::Terminated {
            exited: Exited { term, before },
            ..
        } => (
            terminated(term),
            before.as_ref(),
            Some((&term.image, &term.id)),
        ),
    };
    match instance_image {
        Some((image, id)) => {
            m.insert("image".into(), json!(image.normalized()));
            m.insert("imageID".into(), json!(image.image_id()));
            m.insert("containerID".into(), json!(id));
        }
        None => {
            m.insert("image".into(), json!(c.image()));
            m.insert("imageID".into(), json!(""));
        }
    }
    m.insert(
        "lastState".into(),
        last.map_or_else(|| json!({}), terminated),
    );
    m.insert("ready".into(), json!(c.ready()));
    m.insert("restartCount".into(), json!(c.lifecycle.restart_count()));
    m.insert(
        "started".into(),
        json!(c.running().is_some_and(|r| r.started)),
    );
    m.insert("state".into(), state);
    let mounts: Vec<Value> = c
        .spec
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|vm| {
            let read_only = vm.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
            let mut s = json!({"name": vm.get("name"), "mountPath": vm.get("mountPath")});
            if read_only {
                s["readOnly"] = json!(true);
                s["recursiveReadOnly"] = json!("Disabled");
            }
            s
        })
        .collect();
    if !mounts.is_empty() {
        m.insert("volumeMounts".into(), Value::Array(mounts));
    }
    Value::Object(m)
}

/// `%s` of a Go `[]string`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .collect();
    let res = |c: &Value, kind: &str, r: &str| {
        c.pointer(&format!("/resources/{kind}/{r}"))
            .map(|v| v.to_string())
    };
    let any = containers.iter().any(|c| {
        ["requests", "limits"]
            .iter()
            .any(|k| ["cpu", "memory"].iter().any(|r| res(c, k, r).is_some()))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = res(c, "limits", r);
            limit.is_some() && res(c, "requests", r).is_none_or(|q| Some(q) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn condition(ctype: &str, ok: bool, reason: &str, message: &str) -> Value {
    let mut c =
        json!({"type": ctype, "status": if ok { "True" } else { "False" }, "lastProbeTime": null});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// The full `status` object.
pub(super) fn build(
    rt: &PodRuntime,
    pod: &Value,
    phase: &str,
    host_ip: &str,
    pod_ip: &str,
    now: Timestamp,
) -> Value {
    let has_init = rt.containers.iter().any(|c| c.init);
    let init_statuses: Vec<Value> = rt
        .containers
        .iter()
        .filter(|c| c.init)
        .map(container_status)
        .collect();
    let mut regular: Vec<&Ctr> = rt.containers.iter().filter(|c| !c.init).collect();
    regular.sort_by(|a, b| a.name.cmp(&b.name));
    let statuses: Vec<Value> = regular.iter().map(|c| container_status(c)).collect();

    // Conditions (generate.go).
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let incomplete: Vec<&str> = rt
        .containers
        .iter()
        .filter(|c| c.init)
        .filter(|c| {
            if c.sidecar {
                !c.running().is_some_and(|r| r.started)
            } else {
                !c.ready()
            }
        })
        .map(|c| c.name.as_str())
        .collect();
    let initialized = if phase == "Succeeded" {
        condition("Initialized", true, "PodCompleted", "")
    } else if any_regular_started(rt) || incomplete.is_empty() {
        condition("Initialized", true, "", "")
    } else {
        condition(
            "Initialized",
            false,
            "ContainersNotInitialized",
            &format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            ),
        )
    };
    let unready: Vec<&str> = rt
        .containers
        .iter()
        .filter(|c| !c.init || c.sidecar)
        .filter(|c| !c.ready())
        .map(|c| c.name.as_str())
        .collect();
    let containers_ready = match phase {
        "Succeeded" => condition("ContainersReady", false, "PodCompleted", ""),
        "Failed" => condition("ContainersReady", false, "PodFailed", ""),
        _ if !unready.is_empty() => condition(
            "ContainersReady",
            false,
            "ContainersNotReady",
            &format!("containers with unready status: {}", go_list(&unready)),
        ),
        _ => condition("ContainersReady", true, "", ""),
    };
    let previous: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = if containers_ready["status"] == "True" {
        readiness_gates(pod, &previous)
    } else {
        let mut r = containers_ready.clone();
        r["type"] = json!("Ready");
        r
    };
    let kubelet_owned = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    let mut conditions: Vec<Value> = previous
        .iter()
        .filter(|c| !kubelet_owned.contains(&c["type"].as_str().unwrap_or_default()))
        .cloned()
        .collect();
    let mut own = vec![
        condition("PodReadyToStartContainers", rt.sandbox && !terminal, "", ""),
        initialized,
        ready,
        containers_ready,
        condition("PodScheduled", true, "", ""),
    ];
    for c in &mut own {
        let same = previous
            .iter()
            .find(|p| p["type"] == c["type"] && p["status"] == c["status"]);
        c["lastTransitionTime"] = same
            .and_then(|p| p.get("lastTransitionTime").cloned())
            .filter(|t| !t.is_null())
            .unwrap_or_else(|| json!(rfc3339(now)));
    }
    conditions.extend(own);

    let mut s = Map::new();
    s.insert("phase".into(), json!(phase));
    s.insert("conditions".into(), Value::Array(conditions));
    s.insert("hostIP".into(), json!(host_ip));
    s.insert("hostIPs".into(), json!([{"ip": host_ip}]));
    if rt.had_sandbox {
        s.insert("podIP".into(), json!(pod_ip));
        s.insert("podIPs".into(), json!([{"ip": pod_ip}]));
    }
    s.insert("startTime".into(), json!(rfc3339(rt.start_time)));
    if has_init {
        s.insert("initContainerStatuses".into(), Value::Array(init_statuses));
    }
    s.insert("containerStatuses".into(), Value::Array(statuses));
    s.insert("qosClass".into(), json!(qos_class(pod)));
    Value::Object(s)
}

/// The Ready condition when all containers are ready: every readiness gate must be True
/// (generate.go `GeneratePodReadyCondition`).
fn readiness_gates(pod: &Value, conditions: &[Value]) -> Value {
    let mut messages = Vec::new();
    for gate in pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = gate["conditionType"].as_str().unwrap_or_default();
        match conditions.iter().find(|c| c["type"] == t) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate \"{t}\" does not exist."
            )),
            Some(c) if c["status"] != "True" => messages.push(format!(
                "the status of pod readiness gate \"{t}\" is not \"True\", but {}",
                c["status"].as_str().unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition("Ready", true, "", "")
    } else {
        condition(
            "Ready",
            false,
            "ReadinessGatesNotReady",
            &messages.join(", "),
        )
    }
}
