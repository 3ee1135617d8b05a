//! `cluster:` from the nodes (architecture, roles, labels, taints, allocatable resources) and
//! the storage classes the cluster showed.

use serde_json::Value;

use crate::scenario::{
    Arch, Capacity, ClusterShape, Node, NodeRole, StorageClass, Taint, TaintEffect,
    VolumeBindingMode, VolumeKind,
};

const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";

/// Labels every kubelet (and k3s) sets itself, so a scenario never writes them.
fn kubelet_label(key: &str) -> bool {
    key.starts_with("beta.kubernetes.io/")
        || key.starts_with("node-role.kubernetes.io/")
        || [
            "kubernetes.io/arch",
            "kubernetes.io/os",
            "kubernetes.io/hostname",
            "node.kubernetes.io/instance-type",
        ]
        .contains(&key)
}

/// Provisioners whose volumes are network block devices attached to one node at a time.
const ATTACHABLE: [&str; 8] = [
    "ebs.csi.aws.com",
    "kubernetes.io/aws-ebs",
    "pd.csi.storage.gke.io",
    "kubernetes.io/gce-pd",
    "disk.csi.azure.com",
    "kubernetes.io/azure-disk",
    "cinder.csi.openstack.org",
    "csi.vsphere.vmware.com",
];

/// The smallest attachable-volume limit among the CSI drivers of node `name`'s CSINode (the
/// scheduler's NodeVolumeLimits filter counts per driver; a scenario declares one limit).
fn attachable_volumes(objects: &[Value], name: &str) -> Option<u32> {
    objects
        .iter()
        .filter(|o| o["kind"] == "CSINode" && o["metadata"]["name"] == name)
        .flat_map(|o| o["spec"]["drivers"].as_array().into_iter().flatten())
        .filter_map(|d| d["allocatable"]["count"].as_u64())
        .filter_map(|c| u32::try_from(c).ok())
        .min()
}

/// The cluster's shape as a scenario declares it, and notes on what it cannot say.
#[must_use]
pub fn shape(objects: &[Value]) -> (ClusterShape, Vec<String>) {
    let mut notes = Vec::new();
    let mut nodes = Vec::new();
    for n in objects.iter().filter(|o| o["kind"] == "Node") {
        let labels = &n["metadata"]["labels"];
        let name = n["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let arch = match labels["kubernetes.io/arch"].as_str() {
            Some("arm64") => Arch::Arm64,
            Some("amd64") | None => Arch::Amd64,
            Some(other) => {
                notes.push(format!(
                    "node {name} is {other}, which relapse does not model; declared amd64"
                ));
                Arch::Amd64
            }
        };
        let taints: Vec<&Value> = n["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let control_plane = labels[CONTROL_PLANE].is_string()
            || labels["node-role.kubernetes.io/master"].is_string();
        let tainted_cp = taints
            .iter()
            .any(|t| t["key"] == CONTROL_PLANE && t["effect"] == "NoSchedule");
        let roles = match (control_plane, tainted_cp) {
            (true, true) => vec![NodeRole::ControlPlane],
            (true, false) => vec![NodeRole::ControlPlane, NodeRole::Worker],
            (false, _) => vec![NodeRole::Worker],
        };
        let taints = taints
            .into_iter()
            .filter(|t| {
                let key = t["key"].as_str().unwrap_or_default();
                // The control-plane taint comes with the role; node.kubernetes.io/* taints are
                // set by controllers from the node's conditions.
                !(key.starts_with("node.kubernetes.io/") || key == CONTROL_PLANE && control_plane)
            })
            .filter_map(|t| {
                let effect = match t["effect"].as_str()? {
                    "NoSchedule" => TaintEffect::NoSchedule,
                    "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
                    "NoExecute" => TaintEffect::NoExecute,
                    _ => return None,
                };
                Some(Taint {
                    key: t["key"].as_str()?.to_owned(),
                    value: t["value"]
                        .as_str()
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned),
                    effect,
                })
            })
            .collect();
        let allocatable = &n["status"]["allocatable"];
        let defaults = Capacity::default();
        let capacity = Capacity {
            cpu: allocatable["cpu"]
                .as_str()
                .map_or(defaults.cpu, str::to_owned),
            memory: allocatable["memory"]
                .as_str()
                .map_or(defaults.memory, str::to_owned),
            pods: allocatable["pods"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .unwrap_or(defaults.pods),
            attachable_volumes: attachable_volumes(objects, &name),
        };
        nodes.push(Node {
            name,
            arch,
            roles,
            labels: labels
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !kubelet_label(k))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
            taints,
            capacity,
        });
    }
    let storage_classes = objects
        .iter()
        .filter(|o| o["kind"] == "StorageClass")
        .map(|sc| {
            let annotations = &sc["metadata"]["annotations"];
            StorageClass {
                name: sc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                default: [
                    "storageclass.kubernetes.io/is-default-class",
                    "storageclass.beta.kubernetes.io/is-default-class",
                ]
                .iter()
                .any(|a| annotations[*a] == "true"),
                kind: if ATTACHABLE.iter().any(|p| sc["provisioner"] == *p) {
                    VolumeKind::Attachable
                } else {
                    VolumeKind::NodeLocal
                },
                binding_mode: if sc["volumeBindingMode"] == "Immediate" {
                    VolumeBindingMode::Immediate
                } else {
                    VolumeBindingMode::WaitForFirstConsumer
                },
            }
        })
        .collect();
    if nodes.is_empty() {
        notes
            .push("no nodes were captured: the scenario runs on relapse's default node".to_owned());
    }
    (
        ClusterShape {
            nodes,
            storage_classes,
            ..ClusterShape::default()
        },
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_keep_what_the_kubelet_does_not_set() {
        let objects = vec![
            json!({"kind": "Node", "metadata": {"name": "cp", "labels": {
                "kubernetes.io/arch": "arm64", CONTROL_PLANE: "true", "topology.kubernetes.io/zone": "a"}},
                "spec": {"taints": [{"key": CONTROL_PLANE, "effect": "NoSchedule"}, {"key": "dedicated", "value": "db", "effect": "NoExecute"}]},
                "status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "58"}}}),
            json!({"kind": "StorageClass", "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "ebs.csi.aws.com", "volumeBindingMode": "WaitForFirstConsumer"}),
            json!({"kind": "CSINode", "metadata": {"name": "cp"}, "spec": {"drivers": [
                {"name": "ebs.csi.aws.com", "allocatable": {"count": 25}},
                {"name": "disk.csi.azure.com", "allocatable": {"count": 8}},
                {"name": "no-limit.example.com"}]}}),
        ];
        let (shape, notes) = shape(&objects);
        assert!(notes.is_empty());
        let n = &shape.nodes[0];
        assert_eq!(
            (n.arch, n.roles.as_slice()),
            (Arch::Arm64, &[NodeRole::ControlPlane][..])
        );
        assert_eq!(n.labels.len(), 1);
        assert_eq!(n.taints.len(), 1);
        assert_eq!(n.capacity.pods, 58);
        assert_eq!(n.capacity.attachable_volumes, Some(8));
        assert_eq!(shape.storage_classes[0].kind, VolumeKind::Attachable);
        assert!(shape.storage_classes[0].default);
    }
}
