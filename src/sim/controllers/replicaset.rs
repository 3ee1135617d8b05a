//! The ReplicaSet controller: pods to match `spec.replicas`, which pods go first, and status
//! (`kubernetes/pkg/controller/replicaset/replica_set.go`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::{ClusterView, Effect, NameGen, Reconciled, Reported};

/// `source.component` of the events this controller records.
pub const COMPONENT: &str = "replicaset-controller";

/// At most this many pods are created or deleted in one sync (`BurstReplicas` in
/// `replica_set.go`).
pub const BURST_REPLICAS: usize = 500;

/// Event reason for a created pod (`SuccessfulCreatePodReason`, `pkg/controller/controller_utils.go`).
pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
/// Event reason for a deleted pod (`SuccessfulDeletePodReason`, `pkg/controller/controller_utils.go`).
pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
/// Event reason for a pod create the API server refused (`FailedCreatePodReason`,
/// `pkg/controller/controller_utils.go`).
pub const FAILED_CREATE: &str = "FailedCreate";
/// Event reason for a pod delete the API server refused (`FailedDeletePodReason`,
/// `pkg/controller/controller_utils.go`).
pub const FAILED_DELETE: &str = "FailedDelete";
/// What the `FailedCreate` message puts before the API server's error
/// (`RealPodControl.createPods`: `r.Recorder.Eventf(object, v1.EventTypeWarning,
/// FailedCreatePodReason, "Error creating: %v", err)`).
pub const ERROR_CREATING: &str = "Error creating: ";
/// What the `FailedDelete` message puts before the API server's error
/// (`RealPodControl.DeletePod`: `r.Recorder.Eventf(object, v1.EventTypeWarning,
/// FailedDeletePodReason, "Error deleting: %v", err)`).
pub const ERROR_DELETING: &str = "Error deleting: ";
/// The pod annotation that ranks pods for deletion (`core.PodDeletionCost`).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `Created pod: <name>` (`RealPodControl.CreatePods`, `pkg/controller/controller_utils.go`).
#[must_use]
pub fn created_pod_message(pod: &str) -> String {
    format!("Created pod: {pod}")
}

/// `Deleted pod: <name>` (`RealPodControl.DeletePod`, `pkg/controller/controller_utils.go`).
#[must_use]
pub fn deleted_pod_message(pod: &str) -> String {
    format!("Deleted pod: {pod}")
}

/// A pod create through `owner`'s pod control (`RealPodControl.CreatePods`): `SuccessfulCreate`
/// once made, `FailedCreate` when refused. The ReplicaSet, DaemonSet and Job controllers share it.
#[must_use]
pub fn reported_pod_create(owner: &Value, pod: Value, component: &str) -> Reported {
    let message = created_pod_message(meta::name(&pod));
    Reported::new(owner, Effect::Create(pod))
        .done(SUCCESSFUL_CREATE, message, component)
        .refused(FAILED_CREATE, ERROR_CREATING.to_owned(), component)
}

/// A pod delete through `owner`'s pod control (`RealPodControl.DeletePod`): `SuccessfulDelete`
/// once made, `FailedDelete` when refused.
#[must_use]
pub fn reported_pod_delete(owner: &Value, pod: &Value, component: &str) -> Reported {
    Reported::new(owner, Effect::delete_of(pod))
        .done(
            SUCCESSFUL_DELETE,
            deleted_pod_message(meta::name(pod)),
            component,
        )
        .refused(FAILED_DELETE, ERROR_DELETING.to_owned(), component)
}

/// A pod built from a template for `owner` (`controller.GetPodFromTemplate`): the template's
/// labels, annotations and spec, a controller reference, `generateName` of `<prefix>` and a
/// name from `names`.
#[must_use]
pub fn pod_from_template(
    template: &Value,
    owner: &Value,
    prefix: &str,
    names: &mut NameGen,
) -> Value {
    let mut metadata = json!({
        "name": names.generate_name(prefix),
        "generateName": prefix,
        "namespace": meta::namespace(owner).unwrap_or("default"),
        "ownerReferences": [meta::controller_ref(owner)],
    });
    for key in ["labels", "annotations", "finalizers"] {
        if let Some(v) = meta::at(template, &["metadata", key]) {
            metadata[key] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": meta::at(template, &["spec"]).cloned().unwrap_or_else(|| json!({})),
    })
}

/// Reconciles every ReplicaSet (in namespace/name order).
pub fn reconcile_all(view: &dyn ClusterView, now: Timestamp, names: &mut NameGen) -> Reconciled {
    let mut out = Reconciled::default();
    for rs in sorted(view.list("apps/v1", "ReplicaSet", None)) {
        out.merge(reconcile_one(view, &rs, now, names));
    }
    out
}

/// Reconciles one ReplicaSet by namespace and name (`syncReplicaSet`).
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    now: Timestamp,
    names: &mut NameGen,
) -> Reconciled {
    match view.get_shared("apps/v1", "ReplicaSet", Some(namespace), name) {
        Some(rs) => reconcile_one(view, &rs, now, names),
        None => Reconciled::default(),
    }
}

fn sorted(mut objs: Vec<Arc<Value>>) -> Vec<Arc<Value>> {
    objs.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    objs
}

fn reconcile_one(
    view: &dyn ClusterView,
    rs: &Value,
    now: Timestamp,
    names: &mut NameGen,
) -> Reconciled {
    let mut out = Reconciled::default();
    let ns = meta::namespace(rs).unwrap_or("default");
    let selector = meta::at(rs, &["spec", "selector"]);
    // Only pods it controls or that have no controller can be kept or adopted.
    let owner = meta::uid(rs).unwrap_or_default();
    let pods = sorted(view.list_controlled("v1", "Pod", Some(ns), owner, true));

    // Claim pods: keep owned ones that still match, adopt matching orphans, release the rest
    // (`ClaimPods` in `pkg/controller/controller_ref_manager.go`).
    let mut claimed = Vec::new();
    for pod in pods {
        let matches = meta::selector_matches(selector, &meta::labels(&pod));
        if meta::is_controlled_by(&pod, rs) {
            if matches {
                claimed.push(pod);
            } else if !meta::is_deleting(rs) {
                let mut released = Value::clone(&pod);
                release(&mut released, rs);
                out.push(Effect::Update(released));
            }
        } else if meta::controller_of(&pod).is_none()
            && matches
            && !meta::is_deleting(&pod)
            && !meta::is_deleting(rs)
        {
            let mut adopted = Arc::unwrap_or_clone(pod);
            adopt(&mut adopted, rs);
            out.push(Effect::Update(adopted.clone()));
            claimed.push(Arc::new(adopted));
        }
    }
    let filtered: Vec<Arc<Value>> = claimed
        .into_iter()
        .filter(|p| meta::is_pod_active(p))
        .collect();

    if !meta::is_deleting(rs) {
        manage_replicas(view, rs, &filtered, now, names, &mut out);
    }

    let min_ready = meta::i64_at(rs, &["spec", "minReadySeconds"]).unwrap_or(0);
    let status = calculate_status(rs, &filtered, now);
    if status_differs(rs, &status) {
        let mut updated = rs.clone();
        updated["status"] = status;
        out.push(Effect::UpdateStatus(updated));
    }
    for pod in &filtered {
        if let Some(at) = meta::pod_available_at(pod, min_ready, now) {
            out.wake_at(at);
        }
    }
    out
}

fn adopt(pod: &mut Value, owner: &Value) {
    let mut refs = meta::array_at(pod, &["metadata", "ownerReferences"]).to_vec();
    refs.push(meta::controller_ref(owner));
    meta::set_at(pod, &["metadata", "ownerReferences"], Value::Array(refs));
}

fn release(pod: &mut Value, owner: &Value) {
    let owner_uid = meta::uid(owner).unwrap_or("");
    let refs: Vec<Value> = meta::array_at(pod, &["metadata", "ownerReferences"])
        .iter()
        .filter(|r| str_at(r, &["uid"]) != owner_uid)
        .cloned()
        .collect();
    meta::set_at(pod, &["metadata", "ownerReferences"], Value::Array(refs));
}

fn manage_replicas(
    view: &dyn ClusterView,
    rs: &Value,
    filtered: &[Arc<Value>],
    now: Timestamp,
    names: &mut NameGen,
    out: &mut Reconciled,
) {
    let want =
        usize::try_from(meta::i64_at(rs, &["spec", "replicas"]).unwrap_or(1).max(0)).unwrap_or(0);
    let have = filtered.len();
    if have < want {
        let template = meta::at(rs, &["spec", "template"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        let prefix = format!("{}-", meta::name(rs));
        for _ in 0..(want - have).min(BURST_REPLICAS) {
            let pod = pod_from_template(&template, rs, &prefix, names);
            out.reported(reported_pod_create(rs, pod, COMPONENT));
        }
    } else if have > want {
        let diff = (have - want).min(BURST_REPLICAS);
        let related = related_pods(view, rs);
        let filtered: Vec<Value> = filtered.iter().map(|p| Value::clone(p)).collect();
        for pod in pods_to_delete(&filtered, &related, diff, now) {
            out.reported(reported_pod_delete(rs, &pod, COMPONENT));
        }
    }
}

/// Pods of every ReplicaSet that shares this one's controller (`getIndirectlyRelatedPods`).
fn related_pods(view: &dyn ClusterView, rs: &Value) -> Vec<Value> {
    let ns = meta::namespace(rs);
    let owner_uid = meta::controller_of(rs).map(|r| str_at(r, &["uid"]).to_owned());
    let siblings: Vec<String> = match owner_uid {
        Some(owner) => view
            .list("apps/v1", "ReplicaSet", ns)
            .iter()
            .filter(|other| {
                meta::controller_of(other).is_some_and(|r| str_at(r, &["uid"]) == owner)
            })
            .filter_map(|other| meta::uid(other).map(str::to_owned))
            .collect(),
        None => meta::uid(rs).map(str::to_owned).into_iter().collect(),
    };
    view.list("v1", "Pod", ns)
        .into_iter()
        .filter(|p| {
            meta::controller_of(p)
                .is_some_and(|r| siblings.iter().any(|s| s == str_at(r, &["uid"])))
        })
        .map(Arc::unwrap_or_clone)
        .collect()
}

/// The `diff` pods to delete first (`getPodsToDelete` with `ActivePodsWithRanks`).
#[must_use]
pub fn pods_to_delete(
    filtered: &[Value],
    related: &[Value],
    diff: usize,
    now: Timestamp,
) -> Vec<Value> {
    if diff >= filtered.len() {
        return filtered.to_vec();
    }
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in related.iter().filter(|p| meta::is_pod_active(p)) {
        *on_node
            .entry(str_at(pod, &["spec", "nodeName"]))
            .or_default() += 1;
    }
    let mut ranked: Vec<(usize, &Value)> = filtered
        .iter()
        .map(|p| {
            (
                on_node
                    .get(str_at(p, &["spec", "nodeName"]))
                    .copied()
                    .unwrap_or(0),
                p,
            )
        })
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| {
        if delete_first(a, *ra, b, *rb, now) {
            Ordering::Less
        } else if delete_first(b, *rb, a, *ra, now) {
            Ordering::Greater
        } else {
            // Deterministic tie-break; the real sort leaves ties in any order.
            meta::name(a).cmp(meta::name(b))
        }
    });
    ranked
        .into_iter()
        .take(diff)
        .map(|(_, p)| p.clone())
        .collect()
}

fn phase_ordinal(pod: &Value) -> u8 {
    match meta::pod_phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    meta::annotation(pod, POD_DELETION_COST)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `afterOrZero`: a missing time sorts first, otherwise the later time does.
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) => true,
        (_, None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// `logarithmicRankDiff`: compares how long ago two times were on a log2 scale of nanoseconds.
fn log_rank_diff(a: Timestamp, b: Timestamp, now: Timestamp) -> i64 {
    let rank = |t: Timestamp| -> i64 {
        let d = now.duration_since(t).as_nanos();
        if d > 0 {
            // floor(log2(d)) for a positive integer is its bit length minus one.
            i64::from(127 - d.leading_zeros())
        } else {
            -1
        }
    };
    rank(a) - rank(b)
}

/// Compares two times as `ActivePodsWithRanks.Less` does with `LogarithmicScaleDown` on
/// (the default since 1.22): `Some(true)` if `a` goes first, `None` on a tie.
fn log_scale_first(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    now: Timestamp,
    pa: &Value,
    pb: &Value,
) -> Option<bool> {
    if a == b {
        return None;
    }
    match (a, b) {
        (Some(ta), Some(tb)) => {
            let diff = log_rank_diff(ta, tb, now);
            if diff == 0 {
                Some(meta::uid(pa).unwrap_or("") < meta::uid(pb).unwrap_or(""))
            } else {
                Some(diff < 0)
            }
        }
        _ => Some(after_or_zero(a, b)),
    }
}

/// `ActivePodsWithRanks.Less` (`pkg/controller/controller_utils.go`): whether pod `a` should
/// be deleted before pod `b`.
fn delete_first(a: &Value, rank_a: usize, b: &Value, rank_b: usize, now: Timestamp) -> bool {
    let node_a = str_at(a, &["spec", "nodeName"]);
    let node_b = str_at(b, &["spec", "nodeName"]);
    // 1. Unassigned < assigned.
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_a.is_empty();
    }
    // 2. Pending < Unknown < Running.
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a) < phase_ordinal(b);
    }
    // 3. Not ready < ready.
    let (ready_a, ready_b) = (meta::is_pod_ready(a), meta::is_pod_ready(b));
    if ready_a != ready_b {
        return !ready_a;
    }
    // 4. Lower pod-deletion-cost < higher.
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a) < deletion_cost(b);
    }
    // 5. Doubled up on a node < not doubled up.
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    // 6. Ready for a shorter time < longer (log scale).
    if ready_a
        && ready_b
        && let Some(first) =
            log_scale_first(meta::pod_ready_time(a), meta::pod_ready_time(b), now, a, b)
    {
        return first;
    }
    // 7. More container restarts < fewer.
    if meta::max_container_restarts(a) != meta::max_container_restarts(b) {
        return meta::max_container_restarts(a) > meta::max_container_restarts(b);
    }
    // 8. Newer < older (log scale).
    if let Some(first) = log_scale_first(meta::creation_time(a), meta::creation_time(b), now, a, b)
    {
        return first;
    }
    false
}

/// The status the controller computes from its active pods (`calculateStatus`).
fn calculate_status(rs: &Value, filtered: &[Arc<Value>], now: Timestamp) -> Value {
    let template_labels = meta::string_map(rs, &["spec", "template", "metadata", "labels"]);
    let min_ready = meta::i64_at(rs, &["spec", "minReadySeconds"]).unwrap_or(0);
    let mut fully_labeled: i64 = 0;
    let mut ready: i64 = 0;
    let mut available: i64 = 0;
    for pod in filtered {
        if meta::map_selector_matches(&template_labels, &meta::labels(pod)) {
            fully_labeled += 1;
        }
        if meta::is_pod_ready(pod) {
            ready += 1;
            if meta::is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut status = meta::at(rs, &["status"])
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    // `replicas` is always serialized; the other counts are `omitempty` in `apps/v1`.
    status["replicas"] = json!(filtered.len());
    set_count(&mut status, "fullyLabeledReplicas", fully_labeled);
    set_count(&mut status, "readyReplicas", ready);
    set_count(&mut status, "availableReplicas", available);
    set_count(&mut status, "observedGeneration", meta::generation(rs));
    status
}

/// Sets an `omitempty` integer status field: zero is left out, as the real API serializes it.
pub(crate) fn set_count(status: &mut Value, key: &str, n: i64) {
    if let Value::Object(map) = status {
        if n == 0 {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), json!(n));
        }
    }
}

fn status_differs(rs: &Value, status: &Value) -> bool {
    [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .any(|k| meta::i64_at(rs, &["status", k]).unwrap_or(0) != status[*k].as_i64().unwrap_or(0))
        || meta::at(rs, &["status"]).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::testing::{World, pod_ready, t0};

    fn rs(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
            }
        })
    }

    #[test]
    fn creates_missing_pods_with_real_event_text() {
        let mut world = World::new();
        world.add(rs(2));
        let mut names = NameGen::new(1);
        let out = reconcile_all(&world, t0(), &mut names);
        let created: Vec<&Value> = out
            .writes()
            .filter_map(|e| match e {
                Effect::Create(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 2);
        let first = meta::name(created[0]);
        assert!(first.starts_with("web-abc-") && first.len() == "web-abc-".len() + 5);
        assert_eq!(
            str_at(created[0], &["metadata", "generateName"]),
            "web-abc-"
        );
        assert_eq!(
            meta::controller_of(created[0]).map(|r| str_at(r, &["uid"])),
            Some("rs-uid")
        );
        let events: Vec<(&str, &str)> = out
            .events()
            .map(|e| (e.reason.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            events[0],
            ("SuccessfulCreate", format!("Created pod: {first}").as_str())
        );
        assert_eq!(
            out.events().next().map(|e| e.reporter.component.as_str()),
            Some("replicaset-controller")
        );
    }

    #[test]
    fn status_counts_ready_and_available_with_min_ready_seconds() {
        let mut world = World::new();
        let mut set = rs(2);
        set["spec"]["minReadySeconds"] = json!(30);
        world.add(set.clone());
        let mut names = NameGen::new(1);
        world.run_controller(|w, now, n| reconcile_all(w, now, n), t0(), &mut names);
        for pod in world.list("v1", "Pod", Some("default")) {
            world.add(pod_ready(Value::clone(&pod), t0(), "node-a"));
        }
        let out = reconcile_all(&world, t0(), &mut names);
        let status = out
            .writes()
            .find_map(|e| match e {
                Effect::UpdateStatus(o) => Some(o["status"].clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(status["replicas"], 2);
        assert_eq!(status["fullyLabeledReplicas"], 2);
        assert_eq!(status["readyReplicas"], 2);
        assert!(status.get("availableReplicas").is_none());
        assert_eq!(out.requeue_at, Some(meta::add_secs(t0(), 30)));
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_not_ready_then_newest() {
        let now = meta::add_secs(t0(), 3600);
        let base = |name: &str, created: Timestamp| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                "uid": format!("uid-{name}"), "creationTimestamp": meta::fmt_time(created)},
                "spec": {}, "status": {"phase": "Pending"}})
        };
        let unscheduled = base("unscheduled", t0());
        let not_ready = pod_ready(base("not-ready", t0()), t0(), "n1");
        let mut not_ready = not_ready;
        not_ready["status"]["conditions"][0]["status"] = json!("False");
        let old_ready = pod_ready(base("old-ready", t0()), t0(), "n2");
        let new_ready = pod_ready(
            base("new-ready", meta::add_secs(t0(), 3500)),
            meta::add_secs(t0(), 3500),
            "n3",
        );
        let pods = vec![old_ready, new_ready, not_ready, unscheduled];
        let order: Vec<String> = pods_to_delete(&pods, &pods, 3, now)
            .iter()
            .map(|p| meta::name(p).to_owned())
            .collect();
        assert_eq!(order, ["unscheduled", "not-ready", "new-ready"]);
    }

    #[test]
    fn scale_down_prefers_doubled_up_nodes_and_lower_deletion_cost() {
        let now = meta::add_secs(t0(), 60);
        let mk = |name: &str, node: &str| {
            pod_ready(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                    "creationTimestamp": meta::fmt_time(t0())}, "spec": {}}),
                t0(),
                node,
            )
        };
        let pods = vec![mk("alone", "n1"), mk("pair-1", "n2"), mk("pair-2", "n2")];
        let first = pods_to_delete(&pods, &pods, 1, now);
        assert!(meta::name(&first[0]).starts_with("pair-"));
        let mut cheap = mk("cheap", "n1");
        meta::set_annotation(&mut cheap, POD_DELETION_COST, "-5");
        let pods = vec![mk("pair-1", "n2"), mk("pair-2", "n2"), cheap];
        assert_eq!(
            meta::name(&pods_to_delete(&pods, &pods, 1, now)[0]),
            "cheap"
        );
    }
}
