//! The StatefulSet controller (`kubernetes/pkg/controller/statefulset`): pods `<set>-<ordinal>`
//! created in order (or in parallel), claims from `volumeClaimTemplates`, rolling updates in
//! reverse ordinal order, revisions as ControllerRevisions, and status.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::replicaset::set_count;
use super::{ClusterView, Effect, Reconciled, Reported, pod_template_hash};

/// `source.component` of this controller's events.
pub const COMPONENT: &str = "statefulset-controller";
/// The pod label naming the revision a pod was made from (`apps.ControllerRevisionHashLabelKey`).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The pod label holding the pod's own name (`apps.StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label holding the ordinal (`apps.PodIndexLabel`, on by default since 1.28).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// `<verb> Pod <pod> in StatefulSet <set> successful` (`recordPodEvent`,
/// `pkg/controller/statefulset/stateful_pod_control.go`); the reason is `Successful<Verb>`.
#[must_use]
pub fn pod_event_message(verb: &str, pod: &str, set: &str) -> String {
    format!("{verb} Pod {pod} in StatefulSet {set} successful")
}

/// `<verb> Claim <claim> Pod <pod> in StatefulSet <set> success` (`recordClaimEvent`,
/// `stateful_pod_control.go`).
#[must_use]
pub fn claim_event_message(verb: &str, claim: &str, pod: &str, set: &str) -> String {
    format!("{verb} Claim {claim} Pod {pod} in StatefulSet {set} success")
}

/// What `<verb> Pod <pod> in StatefulSet <set> failed error: <err>` puts before the error
/// (`recordPodEvent`, `stateful_pod_control.go`); the reason is `Failed<Verb>`.
#[must_use]
pub fn pod_failed_prefix(verb: &str, pod: &str, set: &str) -> String {
    format!("{verb} Pod {pod} in StatefulSet {set} failed error: ")
}

/// What `<verb> Claim <claim> for Pod <pod> in StatefulSet <set> failed error: <err>` puts
/// before the error (`recordClaimEvent`, `stateful_pod_control.go`).
#[must_use]
pub fn claim_failed_prefix(verb: &str, claim: &str, pod: &str, set: &str) -> String {
    format!("{verb} Claim {claim} for Pod {pod} in StatefulSet {set} failed error: ")
}

/// Reconciles every StatefulSet (in namespace/name order).
pub fn reconcile_all(view: &dyn ClusterView, now: Timestamp) -> Reconciled {
    let mut out = Reconciled::default();
    let mut sets = view.list("apps/v1", "StatefulSet", None);
    sets.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    for set in sets {
        out.merge(reconcile_one(view, &set, now));
    }
    out
}

/// Reconciles one StatefulSet by namespace and name, the unit of the controller's work queue.
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Reconciled {
    match view.get_shared("apps/v1", "StatefulSet", Some(namespace), name) {
        Some(set) => reconcile_one(view, &set, now),
        None => Reconciled::default(),
    }
}

fn ordinal_of(set: &str, pod: &str) -> Option<usize> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

fn running_and_ready(pod: &Value) -> bool {
    meta::pod_phase(pod) == "Running" && meta::is_pod_ready(pod) && !meta::is_deleting(pod)
}

/// The claim name for a template and ordinal (`getPersistentVolumeClaimName`).
#[must_use]
pub fn claim_name(template: &str, set: &str, ordinal: usize) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn reconcile_one(view: &dyn ClusterView, set: &Value, now: Timestamp) -> Reconciled {
    let mut out = Reconciled::default();
    let name = meta::name(set).to_owned();
    let ns = meta::namespace(set).unwrap_or("default").to_owned();
    let replicas =
        usize::try_from(meta::i64_at(set, &["spec", "replicas"]).unwrap_or(1).max(0)).unwrap_or(0);
    let parallel = str_at(set, &["spec", "podManagementPolicy"]) == "Parallel";
    let on_delete = str_at(set, &["spec", "updateStrategy", "type"]) == "OnDelete";
    let partition = usize::try_from(
        meta::i64_at(
            set,
            &["spec", "updateStrategy", "rollingUpdate", "partition"],
        )
        .unwrap_or(0)
        .max(0),
    )
    .unwrap_or(0);
    let min_ready = meta::i64_at(set, &["spec", "minReadySeconds"]).unwrap_or(0);

    // Revisions: the template's hash names the update revision.
    let template = meta::at(set, &["spec", "template"])
        .cloned()
        .unwrap_or_else(|| json!({}));
    // The real controller always hashes with a collision count, 0 when unset.
    let collisions = meta::i64_at(set, &["status", "collisionCount"]).unwrap_or(0);
    let hash = pod_template_hash(&template, Some(collisions));
    let update_revision = format!("{name}-{hash}");
    let revisions = view.list("apps/v1", "ControllerRevision", Some(&ns));
    let owned: Vec<&Value> = revisions
        .iter()
        .map(|r| &**r)
        .filter(|r| meta::is_controlled_by(r, set))
        .collect();
    if !owned.iter().any(|r| meta::name(r) == update_revision) {
        let next = owned
            .iter()
            .filter_map(|r| meta::i64_at(r, &["revision"]))
            .max()
            .unwrap_or(0)
            + 1;
        let mut labels = meta::string_map(set, &["spec", "template", "metadata", "labels"]);
        labels.insert("controller.kubernetes.io/hash".to_owned(), hash.clone());
        // A refused revision ends the sync without an event (`stateful_set_control.go` returns
        // the error of `ssc.controllerHistory.CreateControllerRevision`).
        out.reported(Reported::new(
            set,
            Effect::Create(json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {"name": update_revision, "namespace": ns, "labels": labels,
                    "ownerReferences": [meta::controller_ref(set)]},
                "data": {"spec": {"template": template.clone()}},
                "revision": next,
            })),
        ));
    }
    let current_revision = Some(str_at(set, &["status", "currentRevision"]))
        .filter(|s| !s.is_empty())
        .unwrap_or(&update_revision)
        .to_owned();

    let mut pods: BTreeMap<usize, Value> = BTreeMap::new();
    let owner = meta::uid(set).unwrap_or_default();
    for pod in view.list_controlled("v1", "Pod", Some(&ns), owner, false) {
        if meta::is_controlled_by(&pod, set)
            && let Some(i) = ordinal_of(&name, meta::name(&pod))
        {
            pods.insert(i, Arc::unwrap_or_clone(pod));
        }
    }
    let revision_of = |p: &Value| {
        meta::labels(p)
            .get(REVISION_LABEL)
            .cloned()
            .unwrap_or_default()
    };

    if !meta::is_deleting(set) {
        // Failed pods are deleted and come back next sync.
        let mut blocked = false;
        for (i, pod) in &pods {
            if *i < replicas
                && matches!(meta::pod_phase(pod), "Failed" | "Succeeded")
                && !meta::is_deleting(pod)
            {
                delete_pod(set, pod, &mut out);
                blocked = !parallel;
            }
        }
        // Create missing pods, in order unless Parallel.
        for i in 0..replicas {
            if blocked {
                break;
            }
            match pods.get(&i) {
                None => {
                    create_pod(view, set, i, &template, &update_revision, &mut out);
                    if !parallel {
                        blocked = true;
                    }
                }
                Some(pod) if !parallel && !running_and_ready(pod) => blocked = true,
                Some(_) => {}
            }
        }
        // Scale down from the highest ordinal; one at a time unless Parallel.
        if !blocked {
            let all_lower_ready =
                (0..replicas).all(|i| pods.get(&i).is_some_and(running_and_ready));
            for (i, pod) in pods.iter().rev() {
                if *i < replicas || meta::is_deleting(pod) {
                    continue;
                }
                if !parallel && !all_lower_ready {
                    break;
                }
                delete_pod(set, pod, &mut out);
                blocked = true;
                if !parallel {
                    break;
                }
            }
        }
        // Rolling update (`updateStatefulSet`, stateful_set_control.go): from the highest
        // ordinal down to the partition, delete the first pod not at the update revision, but
        // stop at one that is at it and not yet healthy ("wait for unhealthy Pods on update").
        // An OrderedReady set never gets here while any pod is not running and ready
        // (`blocked`); a Parallel one does, so an outdated pod that never became ready (one
        // that could not be scheduled) is replaced too.
        if !blocked && !on_delete {
            for i in (partition..replicas).rev() {
                let Some(pod) = pods.get(&i) else { break };
                if revision_of(pod) != update_revision && !meta::is_deleting(pod) {
                    delete_pod(set, pod, &mut out);
                    break;
                }
                if !running_and_ready(pod) {
                    break;
                }
            }
        }
    }

    // Status.
    let counted: Vec<&Value> = pods
        .values()
        .filter(|p| !matches!(meta::pod_phase(p), "Failed" | "Succeeded"))
        .collect();
    let ready = counted.iter().filter(|p| meta::is_pod_ready(p)).count();
    let available = counted
        .iter()
        .filter(|p| meta::is_pod_available(p, min_ready, now))
        .count();
    let updated = counted
        .iter()
        .filter(|p| revision_of(p) == update_revision)
        .count();
    let mut current_rev = current_revision;
    let mut current = counted
        .iter()
        .filter(|p| revision_of(p) == current_rev)
        .count();
    // The update is complete once every replica runs the update revision (`completeRollingUpdate`
    // in stateful_set_utils.go). Only a RollingUpdate set completes: under OnDelete
    // `currentRevision` keeps naming the revision the set started from.
    if !on_delete && updated == replicas && ready == replicas && counted.len() == replicas {
        current_rev.clone_from(&update_revision);
        current = updated;
    }
    let mut status = json!({
        "replicas": counted.len(),
        "availableReplicas": available,
        "collisionCount": meta::i64_at(set, &["status", "collisionCount"]).unwrap_or(0),
        "currentRevision": current_rev,
        "updateRevision": update_revision,
    });
    set_count(&mut status, "observedGeneration", meta::generation(set));
    set_count(
        &mut status,
        "readyReplicas",
        i64::try_from(ready).unwrap_or(0),
    );
    set_count(
        &mut status,
        "currentReplicas",
        i64::try_from(current).unwrap_or(0),
    );
    set_count(
        &mut status,
        "updatedReplicas",
        i64::try_from(updated).unwrap_or(0),
    );
    if set.get("status") != Some(&status) {
        let mut next = set.clone();
        next["status"] = status;
        out.push(Effect::UpdateStatus(next));
    }
    for pod in counted {
        if let Some(at) = meta::pod_available_at(pod, min_ready, now) {
            out.wake_at(at);
        }
    }
    out
}

/// `DeleteStatefulPod`: `SuccessfulDelete` once deleted, `FailedDelete` when refused.
fn delete_pod(set: &Value, pod: &Value, out: &mut Reconciled) {
    let (pod_name, set_name) = (meta::name(pod), meta::name(set));
    out.reported(
        Reported::new(set, Effect::delete_of(pod))
            .done(
                "SuccessfulDelete",
                pod_event_message("delete", pod_name, set_name),
                COMPONENT,
            )
            .refused(
                "FailedDelete",
                pod_failed_prefix("delete", pod_name, set_name),
                COMPONENT,
            ),
    );
}

/// Creates the pod of `ordinal` (`newVersionedStatefulSetPod`) after its missing claims
/// (`createPersistentVolumeClaims`).
fn create_pod(
    view: &dyn ClusterView,
    set: &Value,
    ordinal: usize,
    template: &Value,
    revision: &str,
    out: &mut Reconciled,
) {
    let set_name = meta::name(set);
    let ns = meta::namespace(set).unwrap_or("default");
    let pod_name = format!("{set_name}-{ordinal}");
    let mut labels = meta::string_map(template, &["metadata", "labels"]);
    labels.insert(REVISION_LABEL.to_owned(), revision.to_owned());
    labels.insert(POD_NAME_LABEL.to_owned(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.to_owned(), ordinal.to_string());
    let mut spec = meta::at(template, &["spec"])
        .cloned()
        .unwrap_or_else(|| json!({}));
    spec["hostname"] = json!(pod_name);
    let service = str_at(set, &["spec", "serviceName"]);
    if !service.is_empty() {
        spec["subdomain"] = json!(service);
    }
    let mut volumes: Vec<Value> = meta::array_at(&spec, &["volumes"]).to_vec();
    for tmpl in meta::array_at(set, &["spec", "volumeClaimTemplates"]) {
        let tmpl_name = meta::name(tmpl);
        let claim = claim_name(tmpl_name, set_name, ordinal);
        volumes.retain(|v| str_at(v, &["name"]) != tmpl_name);
        volumes.push(json!({"name": tmpl_name, "persistentVolumeClaim": {"claimName": claim}}));
        if view
            .get("v1", "PersistentVolumeClaim", Some(ns), &claim)
            .is_none()
        {
            let mut claim_labels = meta::string_map(tmpl, &["metadata", "labels"]);
            claim_labels.extend(meta::string_map(set, &["spec", "selector", "matchLabels"]));
            let mut pvc = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": ns, "labels": claim_labels},
                "spec": meta::at(tmpl, &["spec"]).cloned().unwrap_or_else(|| json!({})),
            });
            if let Some(a) = meta::at(tmpl, &["metadata", "annotations"]) {
                pvc["metadata"]["annotations"] = a.clone();
            }
            // A refused claim fails the pod's creation too (`CreateStatefulPod`:
            // `failed to create PVC %s: %s` from `createPersistentVolumeClaims`).
            out.reported(
                Reported::new(set, Effect::Create(pvc))
                    .done(
                        "SuccessfulCreate",
                        claim_event_message("create", &claim, &pod_name, set_name),
                        COMPONENT,
                    )
                    .refused(
                        "FailedCreate",
                        claim_failed_prefix("create", &claim, &pod_name, set_name),
                        COMPONENT,
                    )
                    .refused(
                        "FailedCreate",
                        format!(
                            "{}failed to create PVC {claim}: ",
                            pod_failed_prefix("create", &pod_name, set_name)
                        ),
                        COMPONENT,
                    ),
            );
        }
    }
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    let mut metadata = json!({
        "name": pod_name,
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [meta::controller_ref(set)],
    });
    if let Some(a) = meta::at(template, &["metadata", "annotations"]) {
        metadata["annotations"] = a.clone();
    }
    // `CreateStatefulPod`: `SuccessfulCreate` once created, `FailedCreate` when refused.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
    out.reported(
        Reported::new(set, Effect::Create(pod))
            .done(
                "SuccessfulCreate",
                pod_event_message("create", &pod_name, set_name),
                COMPONENT,
            )
            .refused(
                "FailedCreate",
                pod_failed_prefix("create", &pod_name, set_name),
                COMPONENT,
            ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::NameGen;
    use crate::sim::controllers::testing::{World, pod_ready, t0};

    fn sts(replicas: i64, policy: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "web", "podManagementPolicy": policy,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    }

    fn run(world: &mut World) {
        let mut names = NameGen::new(1);
        world.run_controller(|w, now, _| reconcile_all(w, now), t0(), &mut names);
    }

    fn make_ready(world: &mut World, pod: &str) {
        let p = world.obj("v1", "Pod", "default", pod).unwrap().clone();
        world.add(pod_ready(p, t0(), "node-a"));
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_with_its_claim() {
        let mut world = World::new();
        world.add(sts(3, "OrderedReady"));
        run(&mut world);
        assert!(world.obj("v1", "Pod", "default", "web-0").is_some());
        assert!(world.obj("v1", "Pod", "default", "web-1").is_none());
        let pod = world.obj("v1", "Pod", "default", "web-0").unwrap();
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "www-web-0"
        );
        assert_eq!(pod["spec"]["hostname"], "web-0");
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "0");
        assert!(
            world
                .obj("v1", "PersistentVolumeClaim", "default", "www-web-0")
                .is_some()
        );
        assert_eq!(
            world
                .events_with_reason("SuccessfulCreate")
                .iter()
                .map(|(m, _)| m.as_str())
                .collect::<Vec<_>>(),
            [
                "create Claim www-web-0 Pod web-0 in StatefulSet web success",
                "create Pod web-0 in StatefulSet web successful"
            ]
        );
        make_ready(&mut world, "web-0");
        run(&mut world);
        assert!(world.obj("v1", "Pod", "default", "web-1").is_some());
        assert!(world.obj("v1", "Pod", "default", "web-2").is_none());
        make_ready(&mut world, "web-1");
        run(&mut world);
        make_ready(&mut world, "web-2");
        run(&mut world);
        let set = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap();
        assert_eq!(set["status"]["replicas"], 3);
        assert_eq!(set["status"]["readyReplicas"], 3);
        assert_eq!(set["status"]["currentReplicas"], 3);
        assert_eq!(set["status"]["updatedReplicas"], 3);
        assert_eq!(
            set["status"]["currentRevision"],
            set["status"]["updateRevision"]
        );
    }

    #[test]
    fn parallel_creates_all_pods_at_once() {
        let mut world = World::new();
        world.add(sts(3, "Parallel"));
        run(&mut world);
        for i in 0..3 {
            assert!(
                world
                    .obj("v1", "Pod", "default", &format!("web-{i}"))
                    .is_some()
            );
        }
    }

    #[test]
    fn rolling_update_replaces_pods_from_the_highest_ordinal() {
        let mut world = World::new();
        world.add(sts(2, "OrderedReady"));
        for pod in ["web-0", "web-1"] {
            run(&mut world);
            make_ready(&mut world, pod);
        }
        run(&mut world);
        let old_rev = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap()["status"]["currentRevision"]
            .clone();
        world.edit_spec("apps/v1", "StatefulSet", "default", "web", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        });
        run(&mut world);
        let deleted: Vec<String> = world
            .events_with_reason("SuccessfulDelete")
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(deleted, ["delete Pod web-1 in StatefulSet web successful"]);
        assert!(world.obj("v1", "Pod", "default", "web-0").is_some());
        // web-1 comes back at the new revision, then web-0 goes.
        let set = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap()
            .clone();
        assert_eq!(set["status"]["currentRevision"], old_rev);
        assert_ne!(set["status"]["updateRevision"], old_rev);
        let new_rev = set["status"]["updateRevision"].clone();
        assert_eq!(
            world.obj("v1", "Pod", "default", "web-1").unwrap()["metadata"]["labels"]
                [REVISION_LABEL],
            new_rev
        );
        make_ready(&mut world, "web-1");
        run(&mut world);
        assert_eq!(world.events_with_reason("SuccessfulDelete").len(), 2);
        make_ready(&mut world, "web-0");
        run(&mut world);
        let set = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap();
        assert_eq!(set["status"]["currentRevision"], new_rev);
        assert_eq!(set["status"]["updatedReplicas"], 2);
    }

    #[test]
    fn parallel_rolling_update_replaces_an_outdated_pod_that_never_became_ready() {
        let mut world = World::new();
        world.add(sts(2, "Parallel"));
        run(&mut world);
        // web-1 is ready, web-0 never was (say it could not be scheduled).
        make_ready(&mut world, "web-1");
        world.edit_spec("apps/v1", "StatefulSet", "default", "web", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        });
        run(&mut world);
        let deleted: Vec<String> = world
            .events_with_reason("SuccessfulDelete")
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(deleted, ["delete Pod web-1 in StatefulSet web successful"]);
        // web-1 comes back at the update revision; once it is healthy web-0 goes, ready or not.
        make_ready(&mut world, "web-1");
        run(&mut world);
        assert_eq!(world.events_with_reason("SuccessfulDelete").len(), 2);

        // The same set with OrderedReady waits for web-0 for ever.
        let mut ordered = World::new();
        ordered.add(sts(2, "OrderedReady"));
        run(&mut ordered);
        ordered.edit_spec("apps/v1", "StatefulSet", "default", "web", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        });
        run(&mut ordered);
        assert!(ordered.events_with_reason("SuccessfulDelete").is_empty());
    }

    #[test]
    fn on_delete_keeps_old_pods_until_they_are_deleted() {
        let mut world = World::new();
        let mut set = sts(1, "OrderedReady");
        set["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        world.add(set);
        run(&mut world);
        make_ready(&mut world, "web-0");
        run(&mut world);
        let old_rev = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap()["status"]["currentRevision"]
            .clone();
        world.edit_spec("apps/v1", "StatefulSet", "default", "web", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        });
        run(&mut world);
        run(&mut world);
        assert!(world.events_with_reason("SuccessfulDelete").is_empty());
        let pod = world.obj("v1", "Pod", "default", "web-0").unwrap();
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], old_rev);
        let set = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap()
            .clone();
        assert_ne!(set["status"]["updateRevision"], old_rev);
        assert_eq!(set["status"]["currentReplicas"], 1);
        assert!(set["status"].get("updatedReplicas").is_none());

        // The user deletes the pod: it comes back at the update revision, and the status
        // counts it as updated while currentRevision stays where the set started.
        world.apply(
            &[Effect::Delete {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned(),
                namespace: Some("default".to_owned()),
                name: "web-0".to_owned(),
            }],
            t0(),
        );
        run(&mut world);
        make_ready(&mut world, "web-0");
        run(&mut world);
        let pod = world.obj("v1", "Pod", "default", "web-0").unwrap();
        assert_eq!(
            pod["metadata"]["labels"][REVISION_LABEL],
            set["status"]["updateRevision"]
        );
        let set = world
            .obj("apps/v1", "StatefulSet", "default", "web")
            .unwrap();
        assert_eq!(set["status"]["updatedReplicas"], 1);
        assert_eq!(set["status"]["readyReplicas"], 1);
        assert_eq!(set["status"]["currentRevision"], old_rev);
        assert!(set["status"].get("currentReplicas").is_none());
    }
}
