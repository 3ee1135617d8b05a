//! The DaemonSet controller (`kubernetes/pkg/controller/daemon`): one pod per eligible node.
//!
//! Eligibility is a simple check of our own: the pod template's `nodeSelector` matches the
//! node's labels and every `NoSchedule`/`NoExecute` taint of the node is tolerated (by the
//! template's tolerations or the ones the controller adds to every daemon pod). Pods are pinned
//! to their node with the node affinity the real controller uses (`matchFields`
//! `metadata.name`), so the scheduler places them. Template changes replace pods one node at a
//! time (RollingUpdate with `maxUnavailable: 1`).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::replicaset::{pod_from_template, reported_pod_create, reported_pod_delete, set_count};
use super::{ClusterView, Effect, NameGen, Reconciled, pod_template_hash};
use crate::sim::events::EventType;

/// `source.component` of this controller's events.
pub const COMPONENT: &str = "daemonset-controller";

/// Tolerations added to every daemon pod (`AddOrUpdateDaemonPodTolerations`, `pkg/controller/daemon/util`).
fn default_tolerations() -> Vec<Value> {
    vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ]
}

fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|t| {
        let key_ok =
            str_at(t, &["key"]).is_empty() || str_at(t, &["key"]) == str_at(taint, &["key"]);
        let effect_ok = str_at(t, &["effect"]).is_empty()
            || str_at(t, &["effect"]) == str_at(taint, &["effect"]);
        let value_ok = str_at(t, &["operator"]) == "Exists"
            || str_at(t, &["value"]) == str_at(taint, &["value"]);
        key_ok && effect_ok && value_ok
    })
}

/// Whether a daemon pod of `ds` should run on `node`.
#[must_use]
pub fn node_eligible(ds: &Value, node: &Value) -> bool {
    let selector = meta::string_map(ds, &["spec", "template", "spec", "nodeSelector"]);
    if !meta::map_selector_matches(&selector, &meta::labels(node)) {
        return false;
    }
    let mut tolerations = meta::array_at(ds, &["spec", "template", "spec", "tolerations"]).to_vec();
    tolerations.extend(default_tolerations());
    meta::array_at(node, &["spec", "taints"])
        .iter()
        .filter(|t| matches!(str_at(t, &["effect"]), "NoSchedule" | "NoExecute"))
        .all(|t| tolerates(&tolerations, t))
}

/// The node a daemon pod is for: its `nodeName`, else its `matchFields` affinity.
fn pod_node(pod: &Value) -> String {
    let name = str_at(pod, &["spec", "nodeName"]);
    if !name.is_empty() {
        return name.to_owned();
    }
    meta::array_at(
        pod,
        &[
            "spec",
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        ],
    )
    .iter()
    .flat_map(|t| meta::array_at(t, &["matchFields"]))
    .find(|f| str_at(f, &["key"]) == "metadata.name")
    .and_then(|f| meta::array_at(f, &["values"]).first())
    .and_then(Value::as_str)
    .unwrap_or("")
    .to_owned()
}

/// Reconciles every DaemonSet (in namespace/name order).
pub fn reconcile_all(view: &dyn ClusterView, now: Timestamp, names: &mut NameGen) -> Reconciled {
    let mut out = Reconciled::default();
    let mut sets = view.list("apps/v1", "DaemonSet", None);
    sets.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    let mut nodes: Vec<Value> = meta::owned(view.list("v1", "Node", None));
    nodes.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    for ds in sets {
        out.merge(reconcile_one(view, &ds, &nodes, now, names));
    }
    out
}

/// Reconciles one DaemonSet by namespace and name, the unit of the controller's work queue.
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    now: Timestamp,
    names: &mut NameGen,
) -> Reconciled {
    let Some(ds) = view.get_shared("apps/v1", "DaemonSet", Some(namespace), name) else {
        return Reconciled::default();
    };
    let mut nodes: Vec<Value> = meta::owned(view.list("v1", "Node", None));
    nodes.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    reconcile_one(view, &ds, &nodes, now, names)
}

fn reconcile_one(
    view: &dyn ClusterView,
    ds: &Value,
    nodes: &[Value],
    now: Timestamp,
    names: &mut NameGen,
) -> Reconciled {
    let mut out = Reconciled::default();
    let ns = meta::namespace(ds).unwrap_or("default");
    let template = meta::at(ds, &["spec", "template"])
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = pod_template_hash(
        &template,
        Some(meta::i64_at(ds, &["status", "collisionCount"]).unwrap_or(0)),
    );
    let min_ready = meta::i64_at(ds, &["spec", "minReadySeconds"]).unwrap_or(0);
    let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let owner = meta::uid(ds).unwrap_or_default();
    for pod in view.list_controlled("v1", "Pod", Some(ns), owner, false) {
        if meta::is_controlled_by(&pod, ds) && !meta::is_deleting(&pod) {
            by_node
                .entry(pod_node(&pod))
                .or_default()
                .push(Arc::unwrap_or_clone(pod));
        }
    }
    let delete = |pod: &Value, out: &mut Reconciled| {
        out.reported(reported_pod_delete(ds, pod, COMPONENT));
    };
    let revision = |p: &Value| {
        meta::labels(p)
            .get("controller-revision-hash")
            .cloned()
            .unwrap_or_default()
    };

    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
        (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    let mut replacing = false;
    for node in nodes {
        let node_name = meta::name(node).to_owned();
        let eligible = node_eligible(ds, node);
        let mut pods = by_node.remove(&node_name).unwrap_or_default();
        pods.sort_by(|a, b| {
            (meta::creation_time(a), meta::name(a)).cmp(&(meta::creation_time(b), meta::name(b)))
        });
        if !eligible {
            if !pods.is_empty() {
                misscheduled += 1;
            }
            for pod in &pods {
                delete(pod, &mut out);
            }
            continue;
        }
        desired += 1;
        if pods.is_empty() {
            if !meta::is_deleting(ds) {
                create_pod(ds, &template, &node_name, &hash, names, &mut out);
            }
            continue;
        }
        current += 1;
        // Failed pods are killed and replaced; extra pods beyond the oldest go.
        let first = &pods[0];
        if meta::pod_phase(first) == "Failed" {
            // pkg/controller/daemon/daemon_controller.go podsShouldBeOnNode (FailedDaemonPod).
            out.event(
                ds,
                EventType::Warning,
                "FailedDaemonPod",
                format!(
                    "Found failed daemon pod {ns}/{} on node {node_name}, will try to kill it",
                    meta::name(first)
                ),
                COMPONENT,
            );
            delete(first, &mut out);
        }
        for extra in pods.iter().skip(1) {
            delete(extra, &mut out);
        }
        if meta::is_pod_ready(first) {
            ready += 1;
        }
        if meta::is_pod_available(first, min_ready, now) {
            available += 1;
        }
        if let Some(at) = meta::pod_available_at(first, min_ready, now) {
            out.wake_at(at);
        }
        if revision(first) == hash {
            updated += 1;
        } else if !replacing && str_at(ds, &["spec", "updateStrategy", "type"]) != "OnDelete" {
            replacing = true;
        }
    }
    // Pods whose node is gone.
    for pods in by_node.values() {
        for pod in pods {
            delete(pod, &mut out);
        }
    }
    // Rolling update: replace one outdated pod when all the others are available.
    if replacing && available >= desired.min(current) {
        let mut outdated: Vec<Value> = view
            .list_controlled("v1", "Pod", Some(ns), owner, false)
            .into_iter()
            .filter(|p| {
                meta::is_controlled_by(p, ds) && !meta::is_deleting(p) && revision(p) != hash
            })
            .map(Arc::unwrap_or_clone)
            .collect();
        outdated.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        if let Some(pod) = outdated.first() {
            delete(pod, &mut out);
        }
    }

    let mut status = json!({
        "currentNumberScheduled": current,
        "desiredNumberScheduled": desired,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
    });
    set_count(&mut status, "observedGeneration", meta::generation(ds));
    set_count(&mut status, "updatedNumberScheduled", updated);
    set_count(&mut status, "numberAvailable", available);
    set_count(&mut status, "numberUnavailable", desired - available);
    if ds.get("status") != Some(&status) {
        let mut next = ds.clone();
        next["status"] = status;
        out.push(Effect::UpdateStatus(next));
    }
    out
}

fn create_pod(
    ds: &Value,
    template: &Value,
    node: &str,
    hash: &str,
    names: &mut NameGen,
    out: &mut Reconciled,
) {
    let mut template = template.clone();
    meta::set_at(
        &mut template,
        &["metadata", "labels", "controller-revision-hash"],
        json!(hash),
    );
    meta::set_at(
        &mut template,
        &["metadata", "labels", "pod-template-generation"],
        json!(meta::generation(ds).to_string()),
    );
    // `ReplaceDaemonSetPodNodeNameNodeAffinity`: pin the pod to its node.
    meta::set_at(
        &mut template,
        &[
            "spec",
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
        ],
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}),
    );
    let mut tolerations = meta::array_at(&template, &["spec", "tolerations"]).to_vec();
    for t in default_tolerations() {
        if !tolerations
            .iter()
            .any(|have| have.get("key") == t.get("key") && have.get("effect") == t.get("effect"))
        {
            tolerations.push(t);
        }
    }
    meta::set_at(
        &mut template,
        &["spec", "tolerations"],
        Value::Array(tolerations),
    );
    let pod = pod_from_template(&template, ds, &format!("{}-", meta::name(ds)), names);
    out.reported(reported_pod_create(ds, pod, COMPONENT));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::testing::{World, t0};

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let mut world = World::new();
        world.add(node("a", json!({"kubernetes.io/os": "linux"}), json!([])));
        world.add(node(
            "b",
            json!({"kubernetes.io/os": "linux"}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        ));
        world.add(node("c", json!({"kubernetes.io/os": "windows"}), json!([])));
        world.add(node(
            "d",
            json!({"kubernetes.io/os": "linux"}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        ));
        world.add(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "a", "image": "agent:1"}]}}}}));
        let mut names = NameGen::new(2);
        world.run_controller(|w, now, n| reconcile_all(w, now, n), t0(), &mut names);
        let pods = world.list_pods("kube-system");
        let mut nodes: Vec<String> = pods.iter().map(pod_node).collect();
        nodes.sort();
        assert_eq!(nodes, ["a", "d"]);
        assert!(
            world.events_with_reason("SuccessfulCreate")[0]
                .0
                .starts_with("Created pod: agent-")
        );
        let ds = world
            .obj("apps/v1", "DaemonSet", "kube-system", "agent")
            .unwrap();
        assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
        assert_eq!(ds["status"]["currentNumberScheduled"], 2);
        assert_eq!(ds["status"]["numberReady"], 0);
        assert_eq!(ds["status"]["numberUnavailable"], 2);
    }
}
