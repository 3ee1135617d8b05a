//! Whether an existing cluster can stand in for a scenario's `cluster:` section.
//!
//! An existing cluster cannot be reshaped, so the scenario's declared shape is checked against
//! it: every declared worker needs a schedulable node of its architecture (a scenario that
//! declares two amd64 workers needs two, e.g. to put a surge pod on another node), and every
//! declared storage class must exist, the declared default being the cluster's default.
//! Node names, labels, taints and capacity are not compared: scenarios select nodes by label
//! rarely, and a real cluster's names are its own. A scenario without nodes fits any cluster.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;

use crate::scenario::{ClusterShape, NodeRole};

/// The annotation marking the default StorageClass (`storageclass.kubernetes.io/is-default-class`).
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

fn schedulable_arch(node: &Node) -> Option<&str> {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable) == Some(true) {
        return None;
    }
    let repels = spec.and_then(|s| s.taints.as_ref()).is_some_and(|ts| {
        ts.iter()
            .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    });
    if repels {
        return None;
    }
    node.metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/arch")
        .map(String::as_str)
}

/// Every way `nodes` and `classes` fail the scenario's shape; empty when it fits.
#[must_use]
pub fn misfits(shape: &ClusterShape, nodes: &[Node], classes: &[StorageClass]) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut wanted: std::collections::BTreeMap<&str, usize> = Default::default();
    for n in &shape.nodes {
        if n.roles.contains(&NodeRole::Worker) {
            *wanted.entry(n.arch.as_str()).or_default() += 1;
        }
    }
    for (arch, count) in wanted {
        let have = nodes
            .iter()
            .filter(|n| schedulable_arch(n) == Some(arch))
            .count();
        if have < count {
            reasons.push(format!(
                "the scenario needs {count} schedulable {arch} node{}, the cluster has {have}",
                if count == 1 { "" } else { "s" }
            ));
        }
    }
    let default_class = classes.iter().find(|c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS))
            .is_some_and(|v| v == "true")
    });
    for sc in &shape.storage_classes {
        if !classes
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(sc.name.as_str()))
        {
            reasons.push(format!(
                "the scenario's storage class {} does not exist on the cluster",
                sc.name
            ));
        } else if sc.default
            && default_class.and_then(|c| c.metadata.name.as_deref()) != Some(sc.name.as_str())
        {
            reasons.push(format!(
                "the scenario's default storage class is {}, the cluster's is {}",
                sc.name,
                default_class
                    .and_then(|c| c.metadata.name.as_deref())
                    .unwrap_or("none")
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(arch: &str, taint: Option<&str>) -> Node {
        let taints = taint.map(|e| json!([{"key": "k", "effect": e}]));
        serde_json::from_value(json!({
            "metadata": {"name": "n", "labels": {"kubernetes.io/arch": arch}},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    fn class(name: &str, default: bool) -> StorageClass {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {DEFAULT_CLASS: default.to_string()}},
            "provisioner": "p"
        }))
        .unwrap()
    }

    const EKS: &str = "nodes:\n  - {name: a, arch: amd64, roles: [worker]}\n  - {name: b, arch: amd64, roles: [worker]}\nstorageClasses:\n  - {name: gp2, default: true, kind: attachable}\n";

    #[test]
    fn a_cluster_with_enough_nodes_and_the_classes_fits() {
        let shape: ClusterShape = crate::yaml::from_str(EKS).unwrap();
        let nodes = [
            node("amd64", None),
            node("amd64", None),
            node("arm64", None),
        ];
        assert_eq!(
            misfits(&shape, &nodes, &[class("gp2", true)]),
            Vec::<String>::new()
        );
        assert!(misfits(&ClusterShape::default(), &[], &[]).is_empty());
    }

    #[test]
    fn every_misfit_is_named() {
        let shape: ClusterShape = crate::yaml::from_str(EKS).unwrap();
        // One amd64 worker; the other amd64 node is a tainted control plane.
        let nodes = [
            node("amd64", None),
            node("amd64", Some("NoSchedule")),
            node("arm64", None),
        ];
        assert_eq!(
            misfits(&shape, &nodes, &[class("standard", true)]),
            [
                "the scenario needs 2 schedulable amd64 nodes, the cluster has 1",
                "the scenario's storage class gp2 does not exist on the cluster",
            ]
        );
        assert_eq!(
            misfits(
                &shape,
                &[node("amd64", None), node("amd64", None)],
                &[class("gp2", false), class("standard", true)]
            ),
            ["the scenario's default storage class is gp2, the cluster's is standard"]
        );
    }
}
