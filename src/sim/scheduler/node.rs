//! Node objects for the nodes a scenario declares, as a kubeadm-built v1.32 cluster shows them.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::scenario::{Node, NodeRole, TaintEffect, Versions};
use crate::sim::behaviour::time::rfc3339;
use crate::sim::kubelet::KubeletConfig;

/// The control-plane role label and taint key (kubeadm, `node-role.kubernetes.io/control-plane`).
pub const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";

/// The node's InternalIP: nodes get `172.18.0.2`, `172.18.0.3`, … in declaration order, as
/// on a kind or k3d network.
#[must_use]
pub fn host_ip(index: usize) -> String {
    format!("172.18.0.{}", index + 2)
}

/// The node's pod CIDR: `10.42.<index>.0/24`, a /24 of k3s' default `--cluster-cidr`
/// 10.42.0.0/16.
#[must_use]
pub fn pod_cidr(index: usize) -> String {
    format!("10.42.{index}.0/24")
}

/// The node agent settings that go with [`node_object`] for the same node.
#[must_use]
pub fn kubelet_config(node: &Node, index: usize, versions: Versions) -> KubeletConfig {
    KubeletConfig {
        versions,
        node_name: node.name.clone(),
        arch: node.arch,
        host_ip: host_ip(index),
        pod_ip_prefix: format!("10.42.{index}."),
    }
}

const fn effect(e: TaintEffect) -> &'static str {
    match e {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    }
}

/// The `Node` object for the `index`-th declared node, created at `now`.
///
/// Labels are the kubelet's well-known ones (`kubernetes.io/arch`, `kubernetes.io/os`,
/// `kubernetes.io/hostname`, and their `beta.` forms) plus k3s' (the instance type `k3s`, and
/// `node-role.kubernetes.io/control-plane` and `.../master` set to `true` on servers), as on
/// the k3s clusters the k3d backend runs.
/// A control-plane node that is not also a worker carries kubeadm's
/// `node-role.kubernetes.io/control-plane:NoSchedule` taint. Conditions carry the kubelet's
/// reasons and messages (pkg/kubelet/nodestatus/setters.go).
#[must_use]
pub fn node_object(node: &Node, index: usize, now: Timestamp, versions: Versions) -> Value {
    let arch = node.arch.as_str();
    let mut labels = Map::new();
    labels.insert("beta.kubernetes.io/arch".into(), json!(arch));
    labels.insert("beta.kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!(arch));
    labels.insert("kubernetes.io/hostname".into(), json!(node.name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    // k3s' own labels: its cloud provider's instance type, and on servers both role labels
    // with the value "true" (pkg/agent/run.go and pkg/cloudprovider in k3s).
    labels.insert("beta.kubernetes.io/instance-type".into(), json!("k3s"));
    labels.insert("node.kubernetes.io/instance-type".into(), json!("k3s"));
    let control_plane = node.roles.contains(&NodeRole::ControlPlane);
    if control_plane {
        labels.insert(CONTROL_PLANE.into(), json!("true"));
        labels.insert("node-role.kubernetes.io/master".into(), json!("true"));
    }
    for (k, v) in &node.labels {
        labels.insert(k.clone(), json!(v));
    }
    let mut taints = Vec::new();
    if control_plane && !node.roles.contains(&NodeRole::Worker) {
        taints.push(json!({"key": CONTROL_PLANE, "effect": "NoSchedule"}));
    }
    for t in &node.taints {
        let mut taint = json!({"key": t.key, "effect": effect(t.effect)});
        if let Some(v) = t.value.as_ref().filter(|v| !v.is_empty()) {
            taint["value"] = json!(v);
        }
        taints.push(taint);
    }
    let time = rfc3339(now);
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": time, "lastTransitionTime": time})
    };
    let resources = json!({
        "cpu": node.capacity.cpu,
        "memory": node.capacity.memory,
        "pods": node.capacity.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    let mut spec = json!({"podCIDR": pod_cidr(index), "podCIDRs": [pod_cidr(index)]});
    if !taints.is_empty() {
        spec["taints"] = Value::Array(taints);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": host_ip(index)},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.8.0-generic",
                "containerRuntimeVersion": crate::sim::versions::container_runtime_version(versions.containerd),
                "kubeletVersion": crate::sim::versions::kubelet_version(versions.kubernetes),
                "kubeProxyVersion": crate::sim::versions::kubelet_version(versions.kubernetes),
                "machineID": crate::sim::kubelet::hex_digest(&node.name)[..32],
                "systemUUID": crate::sim::kubelet::hex_digest(&format!("uuid/{}", node.name))[..32],
                "bootID": crate::sim::kubelet::hex_digest(&format!("boot/{}", node.name))[..32],
            },
        },
    })
}

/// The CSINode the kubelet's CSI node-info manager publishes for a node whose attachable
/// volumes are limited (`capacity.attachableVolumes`): one entry for `driver` with the
/// driver's `allocatable.count` (pkg/volume/csi/nodeinfomanager, `installDriverToCSINode`).
/// `None` for a node without a declared limit: the simulated kubelet then publishes none,
/// and the scheduler applies no limit, as for a node whose driver reports no count.
#[must_use]
pub fn csi_node_object(node: &Node, driver: &str) -> Option<Value> {
    let count = node.capacity.attachable_volumes?;
    Some(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": {"name": node.name},
        "spec": {"drivers": [{
            "name": driver,
            "nodeID": node.name,
            "topologyKeys": ["topology.kubernetes.io/zone"],
            "allocatable": {"count": count},
        }]},
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scenario::{Arch, Capacity, Taint};

    fn node(roles: Vec<NodeRole>) -> Node {
        Node {
            name: "cp-1".into(),
            arch: Arch::Arm64,
            roles,
            labels: BTreeMap::from([("topology.kubernetes.io/zone".into(), "eu-west-2a".into())]),
            taints: vec![Taint {
                key: "dedicated".into(),
                value: Some("db".into()),
                effect: TaintEffect::NoExecute,
            }],
            capacity: Capacity::default(),
        }
    }

    #[test]
    fn control_plane_only_nodes_are_tainted() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let n = node_object(
            &node(vec![NodeRole::ControlPlane]),
            1,
            now,
            Versions::default(),
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/arch"], "arm64");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "cp-1");
        assert_eq!(n["metadata"]["labels"][CONTROL_PLANE], "true");
        assert_eq!(
            n["metadata"]["labels"]["node-role.kubernetes.io/master"],
            "true"
        );
        assert_eq!(
            n["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "k3s"
        );
        assert_eq!(
            n["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "eu-west-2a"
        );
        assert_eq!(
            n["spec"]["taints"],
            json!([{"key": CONTROL_PLANE, "effect": "NoSchedule"},
                   {"key": "dedicated", "value": "db", "effect": "NoExecute"}])
        );
        assert_eq!(
            n["status"]["allocatable"],
            json!({"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"})
        );
        assert_eq!(
            n["status"]["conditions"][3],
            json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                   "message": "kubelet is posting ready status",
                   "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"})
        );
        assert_eq!(n["status"]["addresses"][0]["address"], "172.18.0.3");
        assert_eq!(n["spec"]["podCIDR"], "10.42.1.0/24");

        let both = node_object(
            &node(vec![NodeRole::ControlPlane, NodeRole::Worker]),
            0,
            now,
            Versions::default(),
        );
        assert_eq!(both["spec"]["taints"].as_array().unwrap().len(), 1);
        let worker = node_object(&node(vec![NodeRole::Worker]), 0, now, Versions::default());
        assert!(worker["metadata"]["labels"].get(CONTROL_PLANE).is_none());

        let cfg = kubelet_config(&node(vec![NodeRole::Worker]), 2, Versions::default());
        assert_eq!(
            (cfg.host_ip.as_str(), cfg.pod_ip_prefix.as_str()),
            ("172.18.0.4", "10.42.2.")
        );
    }
}
