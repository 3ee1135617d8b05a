//! The node lifecycle controller and the taint eviction controller
//! (pkg/controller/nodelifecycle/node_lifecycle_controller.go,
//! pkg/controller/tainteviction/taint_eviction.go), for nodes whose kubelet stopped posting
//! status.
//!
//! Once a node has not been heard from for the node monitor grace period, its four conditions
//! become `Unknown`, it is tainted `node.kubernetes.io/unreachable` (`NoSchedule` and
//! `NoExecute`) and its pods are marked not ready. Pods are deleted once their toleration of
//! the `NoExecute` taint runs out. When the kubelet posts again, its conditions are back and the
//! taints are removed.
//!
//! Simplifications: the node is seen as silent from the instant the fault starts (the kubelet's
//! last Lease renewal may be up to 10 s earlier), and the 5 s monitor period is not modelled.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, array_at, fmt_time, parse_time, str_at};
use super::{ClusterView, Effect, Reconciled};
use crate::sim::behaviour::time::after;
use crate::sim::events::EventType;
use crate::sim::faults::Faults;

/// The component the node lifecycle controller's events name.
pub const COMPONENT: &str = "node-controller";
/// The component the taint eviction controller's events name.
pub const EVICTION_COMPONENT: &str = "taint-eviction-controller";

/// `--node-monitor-grace-period`, 40 s in 1.32 (pkg/controller/nodelifecycle/config).
pub const GRACE_PERIOD: Duration = Duration::from_secs(40);

/// The taint of a node whose kubelet is not heard from (k8s.io/api/core/v1 well_known_taints.go
/// `TaintNodeUnreachable`).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

const CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The conditions the kubelet posts for a healthy node (pkg/kubelet/nodestatus/setters.go),
/// as the node carries them when it is created.
fn kubelet_condition(t: &str) -> (&'static str, &'static str, &'static str) {
    match t {
        "MemoryPressure" => (
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        "DiskPressure" => (
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        "PIDPressure" => (
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        _ => ("True", "KubeletReady", "kubelet is posting ready status"),
    }
}

/// One pass over every node and the pods bound to it.
#[must_use]
pub fn reconcile_all(view: &dyn ClusterView, faults: &Faults, now: Timestamp) -> Reconciled {
    let mut out = Reconciled::default();
    // Listed only once a node is down: most passes find every node healthy.
    let mut pods = None;
    for node in view.list("v1", "Node", None) {
        let name = meta::name(&node);
        match faults.node_down_since(name, now) {
            Some(since) => {
                let unknown_at = after(since, GRACE_PERIOD);
                if now < unknown_at {
                    wake(&mut out, unknown_at);
                    continue;
                }
                let on_node: Vec<&Value> = pods
                    .get_or_insert_with(|| view.list("v1", "Pod", None))
                    .iter()
                    .map(AsRef::as_ref)
                    .filter(|p| str_at(p, &["spec", "nodeName"]) == name)
                    .collect();
                if !is_unknown(&node) {
                    mark_unknown(&mut out, &node, &on_node, now);
                }
                evict(&mut out, &node, &on_node, now);
            }
            None if is_unknown(&node) => recover(&mut out, &node, now),
            None => {}
        }
    }
    out
}

fn wake(out: &mut Reconciled, at: Timestamp) {
    out.requeue_at = Some(out.requeue_at.map_or(at, |w| w.min(at)));
}

fn is_unknown(node: &Value) -> bool {
    meta::condition(node, "Ready").is_some_and(|c| str_at(c, &["status"]) == "Unknown")
}

/// tryUpdateNodeHealth: every condition the kubelet set becomes `Unknown`, its heartbeat left
/// as last posted; then the `unreachable` taints and the pods marked not ready.
fn mark_unknown(out: &mut Reconciled, node: &Value, pods: &[&Value], now: Timestamp) {
    let name = meta::name(node);
    let mut status = node.clone();
    let time = fmt_time(now);
    if let Some(conds) = status
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds
            .iter_mut()
            .filter(|c| CONDITIONS.contains(&str_at(c, &["type"])))
        {
            c["status"] = json!("Unknown");
            // pkg/controller/nodelifecycle/node_lifecycle_controller.go tryUpdateNodeHealth.
            c["reason"] = json!("NodeStatusUnknown");
            c["message"] = json!("Kubelet stopped posting node status.");
            c["lastTransitionTime"] = json!(time);
        }
    }
    out.push(Effect::UpdateStatus(status));

    // doNoScheduleTaintingPass (taintNodeByCondition: `Ready=Unknown` → unreachable:NoSchedule)
    // and doNoExecuteTaintingPass (unreachable:NoExecute, with the time it was added).
    let mut tainted = node.clone();
    let mut taints: Vec<Value> = array_at(node, &["spec", "taints"]).to_vec();
    taints.push(json!({"key": UNREACHABLE, "effect": "NoSchedule"}));
    taints.push(json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": time}));
    tainted["spec"]["taints"] = Value::Array(taints);
    out.push(Effect::Update(tainted));

    // pkg/controller/util/node/controller_utils.go RecordNodeStatusChange:
    // `Node %s status is now: %s`.
    out.event(
        node,
        EventType::Normal,
        "NodeNotReady",
        format!("Node {name} status is now: NodeNotReady"),
        COMPONENT,
    );
    // MarkPodsNotReady (same file): the Ready condition turns False, then the event.
    for pod in pods.iter().filter(|p| !meta::is_deleting(p)) {
        let mut p = (*pod).clone();
        let Some(conds) = p
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let Some(ready) = conds.iter_mut().find(|c| c["type"] == "Ready") else {
            continue;
        };
        if ready["status"] == "False" {
            continue;
        }
        ready["status"] = json!("False");
        ready["lastTransitionTime"] = json!(time);
        out.push(Effect::UpdateStatus(p));
        out.event(
            pod,
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready".to_owned(),
            COMPONENT,
        );
    }
}

/// How long `pod` tolerates the `unreachable:NoExecute` taint: `None` for ever, `Some(0)` not
/// at all (v1helper `GetMatchingTolerations`, taint_eviction.go `getMinTolerationTime`).
fn toleration(pod: &Value) -> Option<i64> {
    let matching: Vec<&Value> = array_at(pod, &["spec", "tolerations"])
        .iter()
        .filter(|t| {
            let key = str_at(t, &["key"]);
            let effect = str_at(t, &["effect"]);
            let op = str_at(t, &["operator"]);
            let key_matches = if op == "Exists" {
                key.is_empty() || key == UNREACHABLE
            } else {
                // `Equal` (the default): the taint has no value.
                key == UNREACHABLE && str_at(t, &["value"]).is_empty()
            };
            (effect.is_empty() || effect == "NoExecute") && key_matches
        })
        .collect();
    if matching.is_empty() {
        return Some(0);
    }
    matching
        .iter()
        .filter_map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
        .min()
        .map(|s| s.max(0))
}

/// The taint eviction controller: pods are deleted once their toleration of the `NoExecute`
/// taint has run out, counted from when the taint was added.
fn evict(out: &mut Reconciled, node: &Value, pods: &[&Value], now: Timestamp) {
    let added = array_at(node, &["spec", "taints"])
        .iter()
        .find(|t| str_at(t, &["key"]) == UNREACHABLE && str_at(t, &["effect"]) == "NoExecute")
        .and_then(|t| parse_time(str_at(t, &["timeAdded"])))
        .unwrap_or(now);
    for pod in pods.iter().filter(|p| !meta::is_deleting(p)) {
        let Some(secs) = toleration(pod) else {
            continue;
        };
        let due = meta::add_secs(added, secs);
        if due > now {
            wake(out, due);
            continue;
        }
        let ns = meta::namespace(pod).unwrap_or_default();
        // taint_eviction.go emitPodDeletionEvent.
        out.event(
            pod,
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{}", meta::name(pod)),
            EVICTION_COMPONENT,
        );
        // addConditionAndDeletePod: the DisruptionTarget condition, then the delete.
        let mut p = (*pod).clone();
        let conds = p["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c["type"] != "DisruptionTarget")
            .collect();
        conds.push(json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": fmt_time(now),
        }));
        p["status"]["conditions"] = Value::Array(conds);
        out.push(Effect::UpdateStatus(p));
        out.push(Effect::delete_of(pod));
    }
}

/// The kubelet posts again: its conditions are back, and the controller removes the taints.
fn recover(out: &mut Reconciled, node: &Value, now: Timestamp) {
    let mut status = node.clone();
    let time = fmt_time(now);
    if let Some(conds) = status
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds
            .iter_mut()
            .filter(|c| CONDITIONS.contains(&str_at(c, &["type"])))
        {
            let (s, reason, message) = kubelet_condition(str_at(c, &["type"]));
            c["status"] = json!(s);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["lastHeartbeatTime"] = json!(time);
            c["lastTransitionTime"] = json!(time);
        }
    }
    out.push(Effect::UpdateStatus(status));
    let mut untainted = node.clone();
    let taints: Vec<Value> = array_at(node, &["spec", "taints"])
        .iter()
        .filter(|t| str_at(t, &["key"]) != UNREACHABLE)
        .cloned()
        .collect();
    if taints.is_empty() {
        if let Some(spec) = untainted["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        untainted["spec"]["taints"] = Value::Array(taints);
    }
    out.push(Effect::Update(untainted));
}

#[cfg(test)]
mod tests;
