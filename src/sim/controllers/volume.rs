//! PersistentVolume provisioning and binding: the PV controller
//! (`kubernetes/pkg/controller/volume/persistentvolume/pv_controller.go`) together with the
//! external provisioners it waits for (`sigs.k8s.io/sig-storage-lib-external-provisioner`).
//!
//! Two kinds of provisioner are simulated: a node-local one (like k3s' `rancher.io/local-path`:
//! the volume lives on the first consumer's node, so the PV gets node affinity to it) and an
//! attachable one (like `ebs.csi.aws.com`: the volume lives in a zone and must be attached to
//! one node at a time, see [`super::attachdetach`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::{ClusterView, Effect, NameGen, Reconciled};
use crate::sim::events::EventType;

/// `source.component` of the PV controller's events.
pub const COMPONENT: &str = "persistentvolume-controller";

/// The annotation that marks the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// The PVC annotation the scheduler sets for `WaitForFirstConsumer` claims.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
/// The PVC annotation naming the provisioner asked to provision it.
pub const STORAGE_PROVISIONER_ANNOTATION: &str = "volume.kubernetes.io/storage-provisioner";
/// The deprecated twin of [`STORAGE_PROVISIONER_ANNOTATION`], still set by the PV controller.
pub const BETA_STORAGE_PROVISIONER_ANNOTATION: &str =
    "volume.beta.kubernetes.io/storage-provisioner";
/// The PV annotation naming the provisioner that made it.
pub const PROVISIONED_BY_ANNOTATION: &str = "pv.kubernetes.io/provisioned-by";

/// `waiting for first consumer to be created before binding`
/// (`emitEventForUnboundDelayBindingClaim`, `pv_controller.go`).
pub const WAIT_FOR_FIRST_CONSUMER_MESSAGE: &str =
    "waiting for first consumer to be created before binding";

/// How often the PV controller syncs every claim again: `--pvclaimbinder-sync-period`,
/// default 15 s (`PVClaimBinderSyncPeriod`, pkg/controller/volume/persistentvolume/config/
/// v1alpha1/defaults.go; `resync` in pv_controller_base.go queues every claim). Each sync of
/// a claim still unbound repeats its `WaitForFirstConsumer`/`WaitForPodScheduled` or
/// `ExternalProvisioning` event (pv_controller.go `syncUnboundClaim`), so real clusters show
/// them `(xN over …)`.
pub const CLAIM_RESYNC_SECS: i64 = 15;

/// The event the PV controller records on each sync of an unbound `WaitForFirstConsumer`
/// claim no node was selected for (`emitEventForUnboundDelayBindingClaim`, pv_controller.go):
/// `WaitForFirstConsumer` while no pod uses it, else `WaitForPodScheduled` naming the
/// unscheduled, non-terminated pods that use it (`findNonScheduledPodsByPVC`).
fn delay_binding_event(view: &dyn ClusterView, pvc: &Value) -> (&'static str, String) {
    let ns = meta::namespace(pvc).unwrap_or("default");
    let name = meta::name(pvc);
    let mut pods: Vec<String> = view
        .list("v1", "Pod", Some(ns))
        .iter()
        .filter(|p| {
            str_at(p, &["spec", "nodeName"]).is_empty()
                && !matches!(meta::pod_phase(p), "Succeeded" | "Failed")
                && meta::at(p, &["spec", "volumes"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|v| str_at(v, &["persistentVolumeClaim", "claimName"]) == name)
        })
        .map(|p| meta::name(p).to_owned())
        .collect();
    pods.sort();
    match pods.as_slice() {
        [] => (
            "WaitForFirstConsumer",
            WAIT_FOR_FIRST_CONSUMER_MESSAGE.to_owned(),
        ),
        [one] => (
            "WaitForPodScheduled",
            format!("waiting for pod {one} to be scheduled"),
        ),
        many => (
            "WaitForPodScheduled",
            format!("waiting for pods {} to be scheduled", many.join(",")),
        ),
    }
}

/// `ExternalProvisioning` message (`provisionClaimOperationExternal`, `pv_controller.go`).
#[must_use]
pub fn external_provisioning_message(provisioner: &str) -> String {
    format!(
        "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
    )
}

/// `Provisioning` message (`provisionClaimOperation`, sig-storage-lib-external-provisioner
/// `controller/controller.go`).
#[must_use]
pub fn provisioning_message(namespace: &str, claim: &str) -> String {
    format!("External provisioner is provisioning volume for claim \"{namespace}/{claim}\"")
}

/// `ProvisioningSucceeded` message (`provisionClaimOperation`, sig-storage-lib-external-provisioner
/// `controller/controller.go`).
#[must_use]
pub fn provisioning_succeeded_message(pv: &str) -> String {
    format!("Successfully provisioned volume {pv}")
}

/// How a simulated provisioner places its volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionerKind {
    /// A directory on one node: the PV is pinned to the first consumer's node
    /// (`kubernetes.io/hostname` node affinity), like `rancher.io/local-path`.
    NodeLocal,
    /// A zonal block device attached to one node at a time, like `ebs.csi.aws.com`: the PV has
    /// zone affinity only and a CSI source that the attach/detach controller attaches.
    Attachable {
        /// The node label holding the zone (`topology.kubernetes.io/zone`).
        zone_label: String,
    },
}

/// One simulated provisioner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeProvisioner {
    /// The name StorageClasses use in `provisioner`.
    pub name: String,
    /// How it places volumes.
    pub kind: ProvisionerKind,
    /// `source.component` of its events: `<provisioner>_<pod>_<uuid>`, the identity
    /// sig-storage-lib-external-provisioner's `NewProvisionController` gives its recorder
    /// (`provisionerName + "_" + hostname + "_" + uuid`; the hostname is the provisioner's pod,
    /// the UUID new at every start). The sim's pods and UUIDs are fixed, so replays read alike.
    pub component: String,
}

/// The provisioners that run in the simulated cluster and how long provisioning takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Provisioners that answer; a StorageClass naming another one waits for ever, as on a
    /// cluster where its driver is not installed.
    pub provisioners: Vec<VolumeProvisioner>,
    /// Seconds from the provisioner starting to the PV existing.
    pub provision_delay_secs: i64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            provisioners: vec![
                VolumeProvisioner {
                    name: "rancher.io/local-path".to_owned(),
                    kind: ProvisionerKind::NodeLocal,
                    // k3s' kube-system/local-path-provisioner Deployment.
                    component: "rancher.io/local-path_local-path-provisioner-5cf85fd84d-4mz7b_3f0f8a8e-6d2b-4a4e-9c61-2b7a3c1d9e05".to_owned(),
                },
                VolumeProvisioner {
                    name: "ebs.csi.aws.com".to_owned(),
                    kind: ProvisionerKind::Attachable {
                        zone_label: "topology.kubernetes.io/zone".to_owned(),
                    },
                    // The EBS CSI driver's kube-system/ebs-csi-controller Deployment (its csi-provisioner
                    // sidecar records the events).
                    component: "ebs.csi.aws.com_ebs-csi-controller-6d7b9c8f5d-x2k4p_9b1e4c7a-0f3d-4e2b-8a56-7c9d1e2f3a4b".to_owned(),
                },
            ],
            provision_delay_secs: 2,
        }
    }
}

/// The PV controller plus the simulated provisioners. It remembers which claims it already
/// reported as waiting and when provisioning started.
#[derive(Debug, Clone, Default)]
pub struct VolumeController {
    /// The provisioners and timings.
    pub config: StorageConfig,
    /// When each waiting claim last recorded its event.
    waiting_reported: BTreeMap<String, Timestamp>,
    provisioning_since: BTreeMap<String, Timestamp>,
    external_reported: BTreeMap<String, Timestamp>,
}

/// Whether the claim `key` is due for the sync that repeats its event (its first sync, then
/// every [`CLAIM_RESYNC_SECS`]); asks to be woken for the next one.
fn resync_due(
    last: &mut BTreeMap<String, Timestamp>,
    key: &str,
    now: Timestamp,
    out: &mut Reconciled,
) -> bool {
    let due = last
        .get(key)
        .is_none_or(|t| meta::add_secs(*t, CLAIM_RESYNC_SECS) <= now);
    if due {
        last.insert(key.to_owned(), now);
    }
    let next = last.get(key).map_or(now, |t| *t);
    out.wake_at(meta::add_secs(next, CLAIM_RESYNC_SECS));
    due
}

impl VolumeController {
    /// A controller with the given provisioners.
    #[must_use]
    pub fn new(config: StorageConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Reconciles every PersistentVolumeClaim (in namespace/name order).
    pub fn reconcile_all(
        &mut self,
        view: &dyn ClusterView,
        now: Timestamp,
        names: &mut NameGen,
    ) -> Reconciled {
        let mut out = Reconciled::default();
        let mut claims = view.list("v1", "PersistentVolumeClaim", None);
        claims.sort_by(|a, b| {
            (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
        });
        let classes = meta::owned(view.list("storage.k8s.io/v1", "StorageClass", None));
        for pvc in claims {
            self.sync_claim(view, &pvc, &classes, now, names, &mut out);
        }
        out
    }

    fn sync_claim(
        &mut self,
        view: &dyn ClusterView,
        pvc: &Value,
        classes: &[Value],
        now: Timestamp,
        names: &mut NameGen,
        out: &mut Reconciled,
    ) {
        let key = meta::uid(pvc).unwrap_or(meta::name(pvc)).to_owned();
        if meta::is_deleting(pvc) || str_at(pvc, &["status", "phase"]) == "Bound" {
            return;
        }
        let volume_name = str_at(pvc, &["spec", "volumeName"]);
        if !volume_name.is_empty() {
            if let Some(pv) = view.get("v1", "PersistentVolume", None, volume_name) {
                bind(pvc, &pv, out);
            }
            return;
        }
        // A claim without a class gets the default one (retroactive default StorageClass
        // assignment, GA in 1.28); an empty class means static binding only.
        let Some(class_name) = meta::at(pvc, &["spec", "storageClassName"]).and_then(Value::as_str)
        else {
            if let Some(default) = default_class(classes) {
                let mut updated = pvc.clone();
                meta::set_at(
                    &mut updated,
                    &["spec", "storageClassName"],
                    json!(meta::name(default)),
                );
                out.push(Effect::Update(updated));
            }
            return;
        };
        if let Some(pv) = find_static_match(view, pvc, class_name) {
            let mut pv_bound = pv.clone();
            pv_bound["spec"]["claimRef"] = claim_ref(pvc);
            out.push(Effect::Update(pv_bound.clone()));
            bind(pvc, &pv_bound, out);
            return;
        }
        let Some(class) = classes
            .iter()
            .find(|c| meta::name(c) == class_name && !class_name.is_empty())
        else {
            return;
        };
        let provisioner_name = str_at(class, &["provisioner"]).to_owned();
        let wait_for_consumer = str_at(class, &["volumeBindingMode"]) == "WaitForFirstConsumer";
        let selected_node = meta::annotation(pvc, SELECTED_NODE_ANNOTATION).map(str::to_owned);
        if wait_for_consumer && selected_node.is_none() {
            // Recorded on every sync; the recorder counts the repeats of one text.
            if resync_due(&mut self.waiting_reported, &key, now, out) {
                let (reason, message) = delay_binding_event(view, pvc);
                out.event(pvc, EventType::Normal, reason, message, COMPONENT);
            }
            return;
        }
        self.waiting_reported.remove(&key);

        let ns = meta::namespace(pvc).unwrap_or("default").to_owned();
        let Some(started) = self.provisioning_since.get(&key).copied() else {
            // First sight: hand the claim to the external provisioner.
            let mut updated = pvc.clone();
            meta::set_annotation(
                &mut updated,
                BETA_STORAGE_PROVISIONER_ANNOTATION,
                &provisioner_name,
            );
            meta::set_annotation(
                &mut updated,
                STORAGE_PROVISIONER_ANNOTATION,
                &provisioner_name,
            );
            out.push(Effect::Update(updated));
            resync_due(&mut self.external_reported, &key, now, out);
            out.event(
                pvc,
                EventType::Normal,
                "ExternalProvisioning",
                external_provisioning_message(&provisioner_name),
                COMPONENT,
            );
            if let Some(p) = self.provisioner(&provisioner_name) {
                out.event(
                    pvc,
                    EventType::Normal,
                    "Provisioning",
                    provisioning_message(&ns, meta::name(pvc)),
                    p.component.clone(),
                );
            }
            self.provisioning_since.insert(key, now);
            out.wake_at(meta::add_secs(now, self.config.provision_delay_secs));
            return;
        };
        // provisionClaimOperationExternal runs again at every sync until the claim is bound.
        if resync_due(&mut self.external_reported, &key, now, out) {
            out.event(
                pvc,
                EventType::Normal,
                "ExternalProvisioning",
                external_provisioning_message(&provisioner_name),
                COMPONENT,
            );
        }
        let Some(provisioner) = self.provisioner(&provisioner_name).cloned() else {
            return;
        };
        let ready_at = meta::add_secs(started, self.config.provision_delay_secs);
        if now < ready_at {
            out.wake_at(ready_at);
            return;
        }
        let node = selected_node
            .and_then(|n| view.get("v1", "Node", None, &n))
            .or_else(|| {
                let mut nodes = view.list("v1", "Node", None);
                nodes.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
                nodes.into_iter().next().map(Arc::unwrap_or_clone)
            });
        let pv = provisioned_volume(pvc, class, &provisioner, node.as_ref(), names);
        let pv_name = meta::name(&pv).to_owned();
        out.push(Effect::Create(pv.clone()));
        out.event(
            pvc,
            EventType::Normal,
            "ProvisioningSucceeded",
            provisioning_succeeded_message(&pv_name),
            provisioner.component.clone(),
        );
        bind(pvc, &pv, out);
        self.provisioning_since.remove(&key);
        self.external_reported.remove(&key);
        self.waiting_reported.remove(&key);
    }

    fn provisioner(&self, name: &str) -> Option<&VolumeProvisioner> {
        self.config.provisioners.iter().find(|p| p.name == name)
    }
}

/// The default StorageClass: the newest one marked default (`GetDefaultClass`).
fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| meta::annotation(c, DEFAULT_CLASS_ANNOTATION) == Some("true"))
        .max_by(|a, b| {
            (meta::creation_time(a), meta::name(a)).cmp(&(meta::creation_time(b), meta::name(b)))
        })
}

fn claim_ref(pvc: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": meta::namespace(pvc).unwrap_or("default"),
        "name": meta::name(pvc),
        "uid": meta::uid(pvc).unwrap_or(""),
    })
}

fn requested_storage(pvc: &Value) -> Value {
    meta::at(pvc, &["spec", "resources", "requests", "storage"])
        .cloned()
        .unwrap_or_else(|| json!("1Gi"))
}

/// An Available PV of the claim's class, unclaimed or pre-bound to it, with every access mode
/// the claim asks for (a simplified `findBestMatchForClaim`: no size ordering).
fn find_static_match(view: &dyn ClusterView, pvc: &Value, class: &str) -> Option<Value> {
    let want: Vec<&str> = meta::array_at(pvc, &["spec", "accessModes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut pvs = view.list("v1", "PersistentVolume", None);
    pvs.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    pvs.into_iter()
        .find(|pv| {
            let claim = meta::at(pv, &["spec", "claimRef"]);
            let free = claim.is_none_or(|c| {
                str_at(c, &["name"]) == meta::name(pvc)
                    && str_at(c, &["namespace"]) == meta::namespace(pvc).unwrap_or("default")
            });
            let modes: Vec<&str> = meta::array_at(pv, &["spec", "accessModes"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            free && !meta::is_deleting(pv)
                && str_at(pv, &["spec", "storageClassName"]) == class
                && want.iter().all(|m| modes.contains(m))
                && matches!(
                    str_at(pv, &["status", "phase"]),
                    "" | "Available" | "Pending"
                )
        })
        .map(Arc::unwrap_or_clone)
}

/// Binds claim and volume: the claim's `volumeName` and bind annotations, both phases `Bound`.
fn bind(pvc: &Value, pv: &Value, out: &mut Reconciled) {
    let mut claim = pvc.clone();
    meta::set_at(&mut claim, &["spec", "volumeName"], json!(meta::name(pv)));
    meta::set_annotation(&mut claim, "pv.kubernetes.io/bind-completed", "yes");
    meta::set_annotation(&mut claim, "pv.kubernetes.io/bound-by-controller", "yes");
    out.push(Effect::Update(claim.clone()));
    claim["status"] = json!({
        "phase": "Bound",
        "accessModes": meta::at(pv, &["spec", "accessModes"]).cloned().unwrap_or_else(|| json!([])),
        "capacity": meta::at(pv, &["spec", "capacity"]).cloned().unwrap_or_else(|| json!({})),
    });
    out.push(Effect::UpdateStatus(claim));
    let mut volume = pv.clone();
    volume["status"] = json!({"phase": "Bound"});
    out.push(Effect::UpdateStatus(volume));
}

fn node_selector(key: &str, value: &str) -> Value {
    json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": key, "operator": "In", "values": [value]}
    ]}]}})
}

/// The PV a provisioner creates for `pvc`: named `pvc-<claim uid>` as the external provisioner
/// names it.
fn provisioned_volume(
    pvc: &Value,
    class: &Value,
    provisioner: &VolumeProvisioner,
    node: Option<&Value>,
    names: &mut NameGen,
) -> Value {
    let ns = meta::namespace(pvc).unwrap_or("default");
    let pv_name = format!("pvc-{}", meta::uid(pvc).unwrap_or(meta::name(pvc)));
    let mut pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": pv_name,
            "annotations": {PROVISIONED_BY_ANNOTATION: provisioner.name},
            "finalizers": ["kubernetes.io/pv-protection"],
        },
        "spec": {
            "accessModes": meta::at(pvc, &["spec", "accessModes"]).cloned().unwrap_or_else(|| json!(["ReadWriteOnce"])),
            "capacity": {"storage": requested_storage(pvc)},
            "claimRef": claim_ref(pvc),
            "persistentVolumeReclaimPolicy": Some(str_at(class, &["reclaimPolicy"])).filter(|s| !s.is_empty()).unwrap_or("Delete"),
            "storageClassName": meta::name(class),
            "volumeMode": Some(str_at(pvc, &["spec", "volumeMode"])).filter(|s| !s.is_empty()).unwrap_or("Filesystem"),
        },
    });
    match &provisioner.kind {
        ProvisionerKind::NodeLocal => {
            pv["spec"]["hostPath"] = json!({
                "path": format!("/var/lib/rancher/k3s/storage/{pv_name}_{ns}_{}", meta::name(pvc)),
                "type": "DirectoryOrCreate",
            });
            if let Some(node) = node {
                let hostname = meta::labels(node)
                    .get("kubernetes.io/hostname")
                    .cloned()
                    .unwrap_or_else(|| meta::name(node).to_owned());
                pv["spec"]["nodeAffinity"] = node_selector("kubernetes.io/hostname", &hostname);
            }
        }
        ProvisionerKind::Attachable { zone_label } => {
            pv["spec"]["csi"] = json!({
                "driver": provisioner.name,
                "fsType": "ext4",
                "volumeHandle": format!("vol-{}", names.hex(17)),
            });
            if let Some(zone) = node.and_then(|n| meta::labels(n).get(zone_label).cloned()) {
                pv["spec"]["nodeAffinity"] = node_selector(zone_label, &zone);
            }
        }
    }
    pv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::testing::{World, t0};

    fn class(name: &str, provisioner: &str, default: bool) -> Value {
        let mut c = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": provisioner, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"});
        if default {
            meta::set_annotation(&mut c, DEFAULT_CLASS_ANNOTATION, "true");
        }
        c
    }

    fn claim() -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default", "uid": "c1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}})
    }

    fn node(name: &str, zone: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}}})
    }

    #[test]
    fn default_class_waits_for_first_consumer_then_provisions_a_node_local_volume() {
        let mut world = World::new();
        world.add(class("local-path", "rancher.io/local-path", true));
        world.add(node("node-a", "z1"));
        world.add(claim());
        let mut ctl = VolumeController::default();
        let mut names = NameGen::new(3);
        world.run_controller(|w, now, n| ctl.reconcile_all(w, now, n), t0(), &mut names);
        assert_eq!(
            str_at(
                world
                    .obj("v1", "PersistentVolumeClaim", "default", "data")
                    .unwrap(),
                &["spec", "storageClassName"]
            ),
            "local-path"
        );
        assert_eq!(
            world.events_with_reason("WaitForFirstConsumer"),
            vec![(
                "waiting for first consumer to be created before binding".to_owned(),
                t0()
            )]
        );
        // The scheduler picks node-a for the first consumer.
        let pvc = world
            .obj_mut("v1", "PersistentVolumeClaim", "default", "data")
            .unwrap();
        meta::set_annotation(pvc, SELECTED_NODE_ANNOTATION, "node-a");
        let wake = world
            .run_controller(|w, now, n| ctl.reconcile_all(w, now, n), t0(), &mut names)
            .unwrap();
        assert_eq!(
            world.events_with_reason("ExternalProvisioning")[0].0,
            "Waiting for a volume to be created either by the external provisioner 'rancher.io/local-path' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
        );
        assert_eq!(
            world.events_with_reason("Provisioning")[0].0,
            "External provisioner is provisioning volume for claim \"default/data\""
        );
        world.run_controller(|w, now, n| ctl.reconcile_all(w, now, n), wake, &mut names);
        assert_eq!(
            world.events_with_reason("ProvisioningSucceeded")[0].0,
            "Successfully provisioned volume pvc-c1"
        );
        let pv = world.obj("v1", "PersistentVolume", "", "pvc-c1").unwrap();
        assert_eq!(
            pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                [0],
            "node-a"
        );
        assert_eq!(pv["status"]["phase"], "Bound");
        let pvc = world
            .obj("v1", "PersistentVolumeClaim", "default", "data")
            .unwrap();
        assert_eq!(pvc["spec"]["volumeName"], "pvc-c1");
        assert_eq!(pvc["status"]["phase"], "Bound");
        assert_eq!(pvc["status"]["capacity"]["storage"], "5Gi");
    }

    #[test]
    fn waiting_claims_name_their_unscheduled_pods_at_every_resync() {
        let mut world = World::new();
        world.add(class("local-path", "rancher.io/local-path", true));
        world.add(claim());
        let mut ctl = VolumeController::default();
        let mut names = NameGen::new(3);
        let wake = world
            .run_controller(|w, now, n| ctl.reconcile_all(w, now, n), t0(), &mut names)
            .unwrap();
        assert_eq!(wake, meta::add_secs(t0(), CLAIM_RESYNC_SECS));
        assert_eq!(world.events_with_reason("WaitForFirstConsumer").len(), 1);

        // A pod that uses the claim but is not scheduled (nor terminated) is named.
        for (name, phase) in [("web-0", "Pending"), ("done", "Succeeded")] {
            world.add(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
                "status": {"phase": phase}}));
        }
        // Nothing new before the next resync.
        world.run_controller(
            |w, now, n| ctl.reconcile_all(w, now, n),
            meta::add_secs(t0(), 10),
            &mut names,
        );
        assert!(world.events_with_reason("WaitForPodScheduled").is_empty());
        for i in 1..=3 {
            world.run_controller(
                |w, now, n| ctl.reconcile_all(w, now, n),
                meta::add_secs(t0(), CLAIM_RESYNC_SECS * i),
                &mut names,
            );
        }
        let scheduled = world.events_with_reason("WaitForPodScheduled");
        assert_eq!(scheduled.len(), 3);
        assert_eq!(scheduled[0].0, "waiting for pod web-0 to be scheduled");
        assert_eq!(scheduled[2].1, meta::add_secs(t0(), 45));

        world.add(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}));
        world.run_controller(
            |w, now, n| ctl.reconcile_all(w, now, n),
            meta::add_secs(t0(), 60),
            &mut names,
        );
        assert_eq!(
            world.events_with_reason("WaitForPodScheduled")[3].0,
            "waiting for pods web-0,web-1 to be scheduled"
        );
    }

    #[test]
    fn attachable_volumes_get_zone_affinity_and_a_csi_source() {
        let mut world = World::new();
        world.add(class("gp3", "ebs.csi.aws.com", true));
        world.add(node("node-a", "eu-west-1a"));
        let mut pvc = claim();
        meta::set_annotation(&mut pvc, SELECTED_NODE_ANNOTATION, "node-a");
        pvc["spec"]["storageClassName"] = json!("gp3");
        world.add(pvc);
        let mut ctl = VolumeController::default();
        let mut names = NameGen::new(3);
        let wake = world
            .run_controller(|w, now, n| ctl.reconcile_all(w, now, n), t0(), &mut names)
            .unwrap();
        world.run_controller(|w, now, n| ctl.reconcile_all(w, now, n), wake, &mut names);
        let pv = world.obj("v1", "PersistentVolume", "", "pvc-c1").unwrap();
        assert_eq!(pv["spec"]["csi"]["driver"], "ebs.csi.aws.com");
        let terms =
            &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(terms["key"], "topology.kubernetes.io/zone");
        assert_eq!(terms["values"][0], "eu-west-1a");
    }

    #[test]
    fn an_unknown_provisioner_leaves_the_claim_pending() {
        let mut world = World::new();
        world.add(class("nfs", "nfs.csi.k8s.io", false));
        let mut pvc = claim();
        pvc["spec"]["storageClassName"] = json!("nfs");
        meta::set_annotation(&mut pvc, SELECTED_NODE_ANNOTATION, "node-a");
        world.add(pvc);
        let mut ctl = VolumeController::default();
        let times = run_for(&mut world, &mut ctl, 5 * 60, "ExternalProvisioning");
        assert!(world.obj("v1", "PersistentVolume", "", "pvc-c1").is_none());
        // Repeated at every claim sync (15 s) for as long as the claim is unbound: a real
        // cluster shows `(x24 over 5m46s)`.
        assert_eq!(times.len(), 21);
        assert!(times.windows(2).all(|w| w[1] == meta::add_secs(w[0], 15)));
        assert!(world.events_with_reason("Provisioning").is_empty());
    }

    /// Runs the controller at each wake-up for `secs` and returns the times of the events
    /// with `reason`.
    fn run_for(
        world: &mut World,
        ctl: &mut VolumeController,
        secs: i64,
        reason: &str,
    ) -> Vec<Timestamp> {
        let mut names = NameGen::new(3);
        let end = meta::add_secs(t0(), secs);
        let mut now = t0();
        while let Some(wake) =
            world.run_controller(|w, now, n| ctl.reconcile_all(w, now, n), now, &mut names)
        {
            if wake > end {
                break;
            }
            assert!(wake > now, "wake-ups move forward");
            now = wake;
        }
        world
            .events_with_reason(reason)
            .into_iter()
            .map(|(_, at)| at)
            .collect()
    }

    #[test]
    fn a_claim_waiting_for_its_first_consumer_says_so_at_every_sync() {
        let mut world = World::new();
        world.add(class("local-path", "rancher.io/local-path", true));
        world.add(claim());
        let mut ctl = VolumeController::default();
        let times = run_for(&mut world, &mut ctl, 5 * 60, "WaitForFirstConsumer");
        assert_eq!(times.len(), 21);
        assert!(times.windows(2).all(|w| w[1] == meta::add_secs(w[0], 15)));
    }
}
