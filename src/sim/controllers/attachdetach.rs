//! The attach/detach controller for attachable (EBS-like) volumes
//! (`kubernetes/pkg/controller/volume/attachdetach`), together with the CSI external-attacher
//! that completes attachments.
//!
//! Attachments are `storage.k8s.io/v1` VolumeAttachment objects, as on a CSI cluster, so
//! `kubectl get volumeattachments` shows them. A volume that is not multi-attachable
//! (no `ReadWriteMany`/`ReadOnlyMany` access mode) is attached to one node at a time: a pod on
//! another node gets one `FailedAttachVolume` `Multi-Attach error` event and waits until the
//! volume is detached from the old node, which happens a configurable delay after no
//! running pod there uses it any more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::names::fnv32a;
use super::{ClusterView, Effect, Reconciled};
use crate::sim::events::EventType;

/// `source.component` of this controller's events.
pub const COMPONENT: &str = "attachdetach-controller";

/// Event reason of a refused attachment (`kevents.FailedAttachVolume`, `pkg/kubelet/events/event.go`).
pub const FAILED_ATTACH_VOLUME: &str = "FailedAttachVolume";
/// Event reason of a completed attachment (`kevents.SuccessfulAttachVolume`).
pub const SUCCESSFUL_ATTACH_VOLUME: &str = "SuccessfulAttachVolume";

/// `Multi-Attach error for volume "<pv>" Volume is already used by pod(s) <pods>`:
/// `reportMultiAttachError` (`attachdetach/reconciler/reconciler.go`) formats the suffix and
/// `VolumeToAttach.GenerateMsg` (`pkg/volume/util/operationexecutor/operation_executor.go`,
/// `"%v for volume %q %v"`) the whole. Kubernetes ≤ 1.34 wording; `other_namespaces` counts
/// pods in other namespaces, which are not named.
#[must_use]
pub fn multi_attach_message(pv: &str, local_pods: &[String], other_namespaces: usize) -> String {
    let suffix = if local_pods.is_empty() && other_namespaces == 0 {
        "Volume is already exclusively attached to one node and can't be attached to another"
            .to_owned()
    } else if local_pods.is_empty() {
        format!("Volume is already used by {other_namespaces} pod(s) in different namespaces")
    } else if other_namespaces > 0 {
        format!(
            "Volume is already used by pod(s) {} and {other_namespaces} pod(s) in different namespaces",
            local_pods.join(", ")
        )
    } else {
        format!("Volume is already used by pod(s) {}", local_pods.join(", "))
    };
    format!("Multi-Attach error for volume \"{pv}\" {suffix}")
}

/// `AttachVolume.Attach succeeded for volume "<pv>" ` — with the trailing space the real
/// `GenerateMsg` leaves for an empty suffix (`operation_generator.go`).
#[must_use]
pub fn attach_succeeded_message(pv: &str) -> String {
    format!("AttachVolume.Attach succeeded for volume \"{pv}\" ")
}

/// The kubelet's error text when a pod's volumes are not attached and mounted in time
/// (`WaitForAttachAndMount`, `pkg/kubelet/volumemanager/volume_manager.go`, 1.29+ format:
/// `unmounted volumes=%v, unattached volumes=%v, failed to process volumes=%v: %w`, the error
/// being `context deadline exceeded` from `wait.PollUntilContextTimeout`). The kubelet's
/// `FailedMount` event prefixes it with `Unable to attach or mount volumes: ` (`kubelet.go`) —
/// but only when the error is not a timeout (`!wait.Interrupted(err)`), so on current
/// kubelets the plain attach timeout emits no event.
#[must_use]
pub fn unattached_volumes_error(unmounted: &[String], unattached: &[String]) -> String {
    format!(
        "unmounted volumes=[{}], unattached volumes=[{}], failed to process volumes=[]: context deadline exceeded",
        unmounted.join(" "),
        unattached.join(" ")
    )
}

/// The attach/detach controller and the simulated external attacher.
#[derive(Debug, Clone)]
pub struct AttachDetachController {
    /// CSI drivers whose volumes must be attached (`CSIDriver.spec.attachRequired`).
    pub attachable_drivers: Vec<String>,
    /// Seconds the attacher takes to attach a volume.
    pub attach_delay_secs: i64,
    /// Seconds from the last user on a node being gone to the volume being detached there
    /// (unmount, then the cloud's detach).
    pub detach_delay_secs: i64,
    /// (PV, node) pairs whose Multi-Attach error was reported (`MultiAttachErrorReported`).
    reported: BTreeSet<(String, String)>,
    /// When each attachment stopped being wanted.
    unused_since: BTreeMap<String, Timestamp>,
}

impl Default for AttachDetachController {
    fn default() -> Self {
        Self {
            attachable_drivers: vec!["ebs.csi.aws.com".to_owned()],
            attach_delay_secs: 5,
            detach_delay_secs: 10,
            reported: BTreeSet::new(),
            unused_since: BTreeMap::new(),
        }
    }
}

/// A volume a pod uses that must be attached to its node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodVolume {
    /// The name of the volume in the pod spec (`spec.volumes[].name`).
    pub volume: String,
    /// The PersistentVolume behind the claim.
    pub pv: String,
}

/// The attachable volumes of a pod: its claims whose bound PVs have a CSI source of one of
/// `drivers`.
#[must_use]
pub fn attachable_volumes(
    view: &dyn ClusterView,
    pod: &Value,
    drivers: &[String],
) -> Vec<PodVolume> {
    let ns = meta::namespace(pod);
    let mut out = Vec::new();
    for vol in meta::array_at(pod, &["spec", "volumes"]) {
        let claim = str_at(vol, &["persistentVolumeClaim", "claimName"]);
        if claim.is_empty() {
            continue;
        }
        let Some(pvc) = view.get("v1", "PersistentVolumeClaim", ns, claim) else {
            continue;
        };
        let pv_name = str_at(&pvc, &["spec", "volumeName"]);
        let Some(pv) = view.get("v1", "PersistentVolume", None, pv_name) else {
            continue;
        };
        if drivers
            .iter()
            .any(|d| d == str_at(&pv, &["spec", "csi", "driver"]))
        {
            out.push(PodVolume {
                volume: str_at(vol, &["name"]).to_owned(),
                pv: pv_name.to_owned(),
            });
        }
    }
    out
}

/// Whether the PersistentVolume `pv` is attached to `node` (a VolumeAttachment reports
/// `status.attached: true`). This is what the kubelet waits for before mounting.
#[must_use]
pub fn is_attached(view: &dyn ClusterView, pv: &str, node: &str) -> bool {
    view.list("storage.k8s.io/v1", "VolumeAttachment", None)
        .iter()
        .any(|va| {
            str_at(va, &["spec", "source", "persistentVolumeName"]) == pv
                && str_at(va, &["spec", "nodeName"]) == node
                && meta::bool_at(va, &["status", "attached"])
        })
}

/// The pod's attachable volumes (by pod volume name) not yet attached to its node, sorted —
/// the `unattached volumes=[...]` list of the kubelet.
#[must_use]
pub fn unattached_volumes(view: &dyn ClusterView, pod: &Value, drivers: &[String]) -> Vec<String> {
    let node = str_at(pod, &["spec", "nodeName"]);
    let mut out: Vec<String> = attachable_volumes(view, pod, drivers)
        .into_iter()
        .filter(|v| node.is_empty() || !is_attached(view, &v.pv, node))
        .map(|v| v.volume)
        .collect();
    out.sort();
    out
}

/// `IsPodTerminated` as the controller uses it: terminal phase, or being deleted with no
/// container running.
fn pod_terminated(pod: &Value) -> bool {
    if matches!(meta::pod_phase(pod), "Succeeded" | "Failed") {
        return true;
    }
    meta::is_deleting(pod)
        && !meta::array_at(pod, &["status", "containerStatuses"])
            .iter()
            .any(|c| meta::at(c, &["state", "running"]).is_some())
}

/// A deterministic stand-in for the real `csi-<sha256(volumeHandle, attacher, node)>` name.
fn attachment_name(pv: &str, driver: &str, node: &str) -> String {
    let mut hex = String::with_capacity(64);
    for salt in 0u8..8 {
        let bytes: Vec<u8> = std::iter::once(salt)
            .chain(pv.bytes())
            .chain(std::iter::once(0))
            .chain(driver.bytes())
            .chain(std::iter::once(0))
            .chain(node.bytes())
            .collect();
        hex.push_str(&format!("{:08x}", fnv32a(&bytes)));
    }
    format!("csi-{hex}")
}

struct Wanted {
    driver: String,
    multi_attach: bool,
    /// Pods (namespace, name, object) wanting the volume on this node.
    pods: Vec<Arc<Value>>,
}

impl AttachDetachController {
    /// Reconciles all attachments: create the wanted ones (refusing a second node for a
    /// single-node volume), complete pending ones, detach unwanted ones after the delay.
    pub fn reconcile(&mut self, view: &dyn ClusterView, now: Timestamp) -> Reconciled {
        let mut out = Reconciled::default();

        // Desired state of world: (pv, node) -> pods.
        let mut wanted: BTreeMap<(String, String), Wanted> = BTreeMap::new();
        let mut pods = view.list("v1", "Pod", None);
        pods.sort_by(|a, b| {
            (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
        });
        for pod in pods {
            let node = str_at(&pod, &["spec", "nodeName"]).to_owned();
            if node.is_empty() || pod_terminated(&pod) {
                continue;
            }
            for v in attachable_volumes(view, &pod, &self.attachable_drivers) {
                let Some(pv) = view.get("v1", "PersistentVolume", None, &v.pv) else {
                    continue;
                };
                let modes: Vec<&str> = meta::array_at(&pv, &["spec", "accessModes"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let entry = wanted
                    .entry((v.pv.clone(), node.clone()))
                    .or_insert_with(|| Wanted {
                        driver: str_at(&pv, &["spec", "csi", "driver"]).to_owned(),
                        multi_attach: modes
                            .iter()
                            .any(|m| *m == "ReadWriteMany" || *m == "ReadOnlyMany"),
                        pods: Vec::new(),
                    });
                entry.pods.push(pod.clone());
            }
        }
        self.reported.retain(|k| wanted.contains_key(k));

        let mut attachments = view.list("storage.k8s.io/v1", "VolumeAttachment", None);
        attachments.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let key_of = |va: &Value| {
            (
                str_at(va, &["spec", "source", "persistentVolumeName"]).to_owned(),
                str_at(va, &["spec", "nodeName"]).to_owned(),
            )
        };

        // Detach what nobody wants any more, after the delay.
        let mut live: Vec<Arc<Value>> = Vec::new();
        for va in attachments {
            let name = meta::name(&va).to_owned();
            if wanted.contains_key(&key_of(&va)) || meta::is_deleting(&va) {
                self.unused_since.remove(&name);
                live.push(va);
                continue;
            }
            let since = *self.unused_since.entry(name.clone()).or_insert(now);
            let detach_at = meta::add_secs(since, self.detach_delay_secs);
            if now >= detach_at {
                out.push(Effect::delete_of(&va));
                self.unused_since.remove(&name);
            } else {
                out.wake_at(detach_at);
                live.push(va);
            }
        }

        // Attach what is wanted.
        for ((pv, node), want) in &wanted {
            if let Some(va) = live
                .iter()
                .find(|va| key_of(va) == (pv.clone(), node.clone()))
            {
                if !meta::bool_at(va, &["status", "attached"]) {
                    let ready = meta::creation_time(va)
                        .map_or(now, |t| meta::add_secs(t, self.attach_delay_secs));
                    if now >= ready {
                        let mut done = Value::clone(va);
                        done["status"] = json!({"attached": true, "attachmentMetadata": {"devicePath": "/dev/xvdaa"}});
                        out.push(Effect::UpdateStatus(done));
                        for pod in &want.pods {
                            out.event(
                                pod,
                                EventType::Normal,
                                SUCCESSFUL_ATTACH_VOLUME,
                                attach_succeeded_message(pv),
                                COMPONENT,
                            );
                        }
                    } else {
                        out.wake_at(ready);
                    }
                }
                continue;
            }
            let elsewhere: Vec<String> = live
                .iter()
                .map(|va| key_of(va))
                .filter(|(p, n)| p == pv && n != node)
                .map(|(_, n)| n)
                .collect();
            if !elsewhere.is_empty() && !want.multi_attach {
                if self.reported.insert((pv.clone(), node.clone())) {
                    // Pods that use the volume on the nodes it is attached to (`GetVolumePodsOnNodes`).
                    let users: Vec<&Value> = elsewhere
                        .iter()
                        .filter_map(|n| wanted.get(&(pv.clone(), n.clone())))
                        .flat_map(|w| w.pods.iter().map(|p| &**p))
                        .collect();
                    for pod in &want.pods {
                        let ns = meta::namespace(pod);
                        let local: Vec<String> = users
                            .iter()
                            .filter(|u| meta::namespace(u) == ns)
                            .map(|u| meta::name(u).to_owned())
                            .collect();
                        let others = users.len() - local.len();
                        out.event(
                            pod,
                            EventType::Warning,
                            FAILED_ATTACH_VOLUME,
                            multi_attach_message(pv, &local, others),
                            COMPONENT,
                        );
                    }
                }
                continue;
            }
            let va = json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "VolumeAttachment",
                "metadata": {"name": attachment_name(pv, &want.driver, node)},
                "spec": {
                    "attacher": want.driver,
                    "nodeName": node,
                    "source": {"persistentVolumeName": pv},
                },
                "status": {"attached": false},
            });
            out.push(Effect::Create(va));
            out.wake_at(meta::add_secs(now, self.attach_delay_secs));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_attach_text_matches_the_reconciler() {
        assert_eq!(
            multi_attach_message("pvc-1", &["grafana-abc-x".to_owned()], 0),
            "Multi-Attach error for volume \"pvc-1\" Volume is already used by pod(s) grafana-abc-x"
        );
        assert_eq!(
            multi_attach_message("pvc-1", &["a".to_owned(), "b".to_owned()], 2),
            "Multi-Attach error for volume \"pvc-1\" Volume is already used by pod(s) a, b and 2 pod(s) in different namespaces"
        );
        assert_eq!(
            multi_attach_message("pvc-1", &[], 1),
            "Multi-Attach error for volume \"pvc-1\" Volume is already used by 1 pod(s) in different namespaces"
        );
        assert_eq!(
            multi_attach_message("pvc-1", &[], 0),
            "Multi-Attach error for volume \"pvc-1\" Volume is already exclusively attached to one node and can't be attached to another"
        );
        assert_eq!(
            attach_succeeded_message("pvc-1"),
            "AttachVolume.Attach succeeded for volume \"pvc-1\" "
        );
    }

    #[test]
    fn kubelet_error_text_lists_volumes_like_go_slices() {
        assert_eq!(
            unattached_volumes_error(&["data".to_owned()], &["data".to_owned()]),
            "unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context deadline exceeded"
        );
    }

    #[test]
    fn attachment_names_are_stable_and_distinct() {
        let a = attachment_name("pvc-1", "ebs.csi.aws.com", "node-a");
        assert_eq!(a, attachment_name("pvc-1", "ebs.csi.aws.com", "node-a"));
        assert_ne!(a, attachment_name("pvc-1", "ebs.csi.aws.com", "node-b"));
        assert_eq!(a.len(), "csi-".len() + 64);
    }
}
