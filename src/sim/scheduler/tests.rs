use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::scenario::{Arch, Capacity, Node, NodeRole};

fn now() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn node(name: &str, roles: Vec<NodeRole>, labels: &[(&str, &str)], cpu: &str) -> Value {
    let n = Node {
        name: name.into(),
        arch: Arch::Amd64,
        roles,
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        taints: vec![],
        capacity: Capacity {
            cpu: cpu.into(),
            ..Capacity::default()
        },
    };
    node_object(&n, 0, now(), crate::scenario::Versions::default())
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}")},
        "spec": spec})
}

fn snapshot<'a>(
    nodes: &'a [Value],
    pods: &'a [Value],
    pvcs: &'a [Value],
    pvs: &'a [Value],
    scs: &'a [Value],
) -> Snapshot<'a> {
    Snapshot {
        nodes,
        pods,
        pvcs,
        pvs,
        storage_classes: scs,
        csi_nodes: &[],
    }
}

fn message(d: &Placement) -> &str {
    match d {
        Placement::Unschedulable { message, .. } => message,
        Placement::Bind { node, .. } => panic!("bound to {node}"),
    }
}

fn bound(d: &Placement) -> &str {
    match d {
        Placement::Bind { node, .. } => node,
        Placement::Unschedulable { message, .. } => panic!("unschedulable: {message}"),
    }
}

#[test]
fn selector_and_control_plane_taint() {
    let nodes = vec![
        node("cp", vec![NodeRole::ControlPlane], &[("disk", "ssd")], "4"),
        node("worker", vec![NodeRole::Worker], &[], "4"),
    ];
    let p = pod(
        "web",
        json!({"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "nginx"}]}),
    );
    let d = schedule(&p, &snapshot(&nodes, &[], &[], &[], &[]), now());
    assert_eq!(
        message(&d),
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let Placement::Unschedulable {
        condition, event, ..
    } = &d
    else {
        unreachable!()
    };
    assert_eq!(condition["type"], "PodScheduled");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Unschedulable");
    assert_eq!(condition["message"], message(&d));
    assert_eq!(condition["lastTransitionTime"], "2025-01-01T00:00:00Z");
    assert_eq!(
        (
            event.reason.as_str(),
            event.type_,
            event.reporter.component.as_str()
        ),
        ("FailedScheduling", EventType::Warning, "default-scheduler")
    );

    // Tolerating the taint makes the control-plane node fit.
    let p = pod(
        "web",
        json!({"nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "c", "image": "nginx"}]}),
    );
    let d = schedule(&p, &snapshot(&nodes, &[], &[], &[], &[]), now());
    assert_eq!(bound(&d), "cp");
    let Placement::Bind { event, .. } = d else {
        unreachable!()
    };
    assert_eq!(event.message, "Successfully assigned apps/web to cp");
    assert_eq!(event.reason, "Scheduled");
}

#[test]
fn insufficient_cpu_and_taints_with_values() {
    let mut tainted = node("a", vec![NodeRole::Worker], &[], "8");
    tainted["spec"]["taints"] =
        json!([{"key": "machine-check-exception", "value": "memory", "effect": "NoExecute"}]);
    let nodes = vec![
        tainted,
        node("b", vec![NodeRole::Worker], &[], "2"),
        node("c", vec![NodeRole::Worker], &[], "2"),
    ];
    let running = vec![
        pod(
            "x",
            json!({"nodeName": "b", "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1500m"}}}]}),
        ),
        pod(
            "y",
            json!({"nodeName": "c", "containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1500m"}}}]}),
        ),
    ];
    let p = pod(
        "big",
        json!({"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}),
    );
    let d = schedule(&p, &snapshot(&nodes, &running, &[], &[], &[]), now());
    // The same text a real v1.32 cluster printed for this situation.
    assert_eq!(
        message(&d),
        "0/3 nodes are available: 1 node(s) had untolerated taint {machine-check-exception: memory}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    // Finished pods free their requests.
    let mut done = running.clone();
    done[1]["status"] = json!({"phase": "Succeeded"});
    assert_eq!(
        bound(&schedule(
            &p,
            &snapshot(&nodes, &done, &[], &[], &[]),
            now()
        )),
        "c"
    );
}

#[test]
fn several_shortfalls_and_pod_count() {
    let mut small = node("n", vec![NodeRole::Worker], &[], "1");
    small["status"]["allocatable"]["pods"] = json!("1");
    small["status"]["allocatable"]["memory"] = json!("1Gi");
    let others = vec![pod(
        "o",
        json!({"nodeName": "n", "containers": [{"name": "c", "image": "i"}]}),
    )];
    let p = pod(
        "p",
        json!({"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}}]}),
    );
    let nodes = vec![small];
    assert_eq!(
        message(&schedule(
            &p,
            &snapshot(&nodes, &others, &[], &[], &[]),
            now()
        )),
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
}

#[test]
fn required_node_affinity_expressions() {
    let nodes = vec![
        node(
            "a",
            vec![NodeRole::Worker],
            &[("topology.kubernetes.io/zone", "eu-west-2a"), ("gen", "3")],
            "4",
        ),
        node(
            "b",
            vec![NodeRole::Worker],
            &[("topology.kubernetes.io/zone", "eu-west-2b"), ("gen", "5")],
            "4",
        ),
    ];
    let with = |terms: Value| {
        pod(
            "p",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}},
            "containers": [{"name": "c", "image": "i"}]}),
        )
    };
    let snap = snapshot(&nodes, &[], &[], &[], &[]);
    let p = with(
        json!([{"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-2b"]}]}]),
    );
    assert_eq!(bound(&schedule(&p, &snap, now())), "b");
    let p =
        with(json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}]));
    assert_eq!(bound(&schedule(&p, &snap, now())), "b");
    let p = with(
        json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]),
    );
    assert_eq!(bound(&schedule(&p, &snap, now())), "a");
    let p = with(json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]));
    assert!(message(&schedule(&p, &snap, now())).starts_with(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    ));
    let p = with(json!([{}]));
    assert!(matches!(
        schedule(&p, &snap, now()),
        Placement::Unschedulable { .. }
    ));
}

#[test]
fn least_allocated_with_ties_by_name() {
    let nodes = vec![
        node("b", vec![NodeRole::Worker], &[], "4"),
        node("a", vec![NodeRole::Worker], &[], "4"),
    ];
    let p = pod("p", json!({"containers": [{"name": "c", "image": "i"}]}));
    assert_eq!(
        bound(&schedule(&p, &snapshot(&nodes, &[], &[], &[], &[]), now())),
        "a"
    );
    let busy = vec![pod(
        "x",
        json!({"nodeName": "a", "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "2"}}}]}),
    )];
    assert_eq!(
        bound(&schedule(
            &p,
            &snapshot(&nodes, &busy, &[], &[], &[]),
            now()
        )),
        "b"
    );
    // Pods without requests still weigh (100m, 200Mi) in the score.
    let light = vec![pod(
        "x",
        json!({"nodeName": "a", "containers": [{"name": "c", "image": "i"}]}),
    )];
    assert_eq!(
        bound(&schedule(
            &p,
            &snapshot(&nodes, &light, &[], &[], &[]),
            now()
        )),
        "b"
    );
}

#[test]
fn claims_missing_unbound_or_pinned() {
    let nodes = vec![
        node("n1", vec![NodeRole::Worker], &[], "4"),
        node("n2", vec![NodeRole::Worker], &[], "4"),
    ];
    let p = pod(
        "db",
        json!({"containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}),
    );
    assert_eq!(
        message(&schedule(&p, &snapshot(&nodes, &[], &[], &[], &[]), now())),
        "0/2 nodes are available: persistentvolumeclaim \"data\" not found. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let immediate = vec![
        json!({"metadata": {"name": "data", "namespace": "apps"}, "spec": {"storageClassName": "std"}}),
    ];
    let scs = vec![json!({"metadata": {"name": "std"}, "volumeBindingMode": "Immediate"})];
    assert_eq!(
        message(&schedule(
            &p,
            &snapshot(&nodes, &[], &immediate, &[], &scs),
            now()
        )),
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let wffc =
        vec![json!({"metadata": {"name": "std"}, "volumeBindingMode": "WaitForFirstConsumer"})];
    assert_eq!(
        bound(&schedule(
            &p,
            &snapshot(&nodes, &[], &immediate, &[], &wffc),
            now()
        )),
        "n1"
    );

    let bound_pvc = vec![
        json!({"metadata": {"name": "data", "namespace": "apps"}, "spec": {"volumeName": "pvc-1", "accessModes": ["ReadWriteOnce"]}}),
    ];
    let pv = vec![
        json!({"metadata": {"name": "pvc-1"}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}}),
    ];
    assert_eq!(
        bound(&schedule(
            &p,
            &snapshot(&nodes, &[], &bound_pvc, &pv, &[]),
            now()
        )),
        "n2"
    );
    let one = &nodes[..1];
    assert_eq!(
        message(&schedule(
            &p,
            &snapshot(one, &[], &bound_pvc, &pv, &[]),
            now()
        )),
        "0/1 nodes are available: 1 node(s) had volume node affinity conflict. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
}

#[test]
fn read_write_once_pod_claims_admit_one_pod() {
    let nodes = vec![
        node("n1", vec![NodeRole::Worker], &[], "4"),
        node("n2", vec![NodeRole::Worker], &[], "4"),
    ];
    let pvcs = vec![json!({"metadata": {"name": "data", "namespace": "apps"},
        "spec": {"volumeName": "pvc-1", "accessModes": ["ReadWriteOncePod"]}})];
    let spec = json!({"containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]});
    let mut first = pod("first", spec.clone());
    first["spec"]["nodeName"] = json!("n1");
    let second = pod("second", spec);
    assert_eq!(
        message(&schedule(
            &second,
            &snapshot(&nodes, std::slice::from_ref(&first), &pvcs, &[], &[]),
            now()
        )),
        "0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
    assert_eq!(
        bound(&schedule(
            &second,
            &snapshot(&nodes, &[], &pvcs, &[], &[]),
            now()
        )),
        "n1"
    );
}

#[test]
fn no_nodes_and_cordons() {
    let p = pod("p", json!({"containers": [{"name": "c", "image": "i"}]}));
    assert_eq!(
        message(&schedule(&p, &snapshot(&[], &[], &[], &[], &[]), now())),
        "no nodes available to schedule pods"
    );
    let mut cordoned = node("n", vec![NodeRole::Worker], &[], "4");
    cordoned["spec"]["unschedulable"] = json!(true);
    let nodes = vec![cordoned];
    assert_eq!(
        message(&schedule(&p, &snapshot(&nodes, &[], &[], &[], &[]), now())),
        "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
}

#[test]
fn toleration_matching() {
    let taint = json!({"key": "k", "value": "v", "effect": "NoSchedule"});
    let with = |t: Value| pod("p", json!({"tolerations": [t]}));
    assert!(tolerates(
        &with(json!({"key": "k", "operator": "Equal", "value": "v"})),
        &taint
    ));
    assert!(tolerates(
        &with(json!({"key": "k", "value": "v", "effect": "NoSchedule"})),
        &taint
    ));
    assert!(tolerates(&with(json!({"operator": "Exists"})), &taint));
    assert!(tolerates(
        &with(json!({"key": "k", "operator": "Exists"})),
        &taint
    ));
    assert!(!tolerates(&with(json!({"key": "k", "value": "w"})), &taint));
    assert!(!tolerates(
        &with(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
        &taint
    ));
}

#[test]
fn csi_volume_limits_count_attached_and_new_volumes() {
    let nodes = vec![node("n1", vec![NodeRole::Worker], &[], "4")];
    let csi_nodes = vec![json!({"metadata": {"name": "n1"}, "spec": {"drivers": [
        {"name": "disk.csi.example.com", "nodeID": "n1", "allocatable": {"count": 2}}]}})];
    let classes = vec![
        json!({"metadata": {"name": "disk"}, "provisioner": "disk.csi.example.com", "volumeBindingMode": "WaitForFirstConsumer"}),
    ];
    let claim = |name: &str, volume: Option<&str>| {
        let mut c = json!({"metadata": {"name": name, "namespace": "apps"},
            "spec": {"storageClassName": "disk", "accessModes": ["ReadWriteOnce"]}});
        if let Some(v) = volume {
            c["spec"]["volumeName"] = json!(v);
        }
        c
    };
    let pv = |name: &str| json!({"metadata": {"name": name}, "spec": {"csi": {"driver": "disk.csi.example.com", "volumeHandle": format!("handle-{name}")}}});
    let using = |name: &str, claims: &[&str], node: Option<&str>| {
        let volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        let mut p = pod(
            name,
            json!({"containers": [{"name": "c"}], "volumes": volumes}),
        );
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        p
    };
    let pvcs = vec![
        claim("a", Some("pv-a")),
        claim("b", Some("pv-b")),
        claim("c", None),
    ];
    let pvs = vec![pv("pv-a"), pv("pv-b")];
    let running = vec![using("old", &["a", "b"], Some("n1"))];
    let cluster = Snapshot {
        csi_nodes: &csi_nodes,
        ..snapshot(&nodes, &running, &pvcs, &pvs, &classes)
    };

    // Two attached, one more unbound claim of the same driver: over the limit of 2.
    assert_eq!(
        message(&schedule(&using("new", &["c"], None), &cluster, now())),
        "0/1 nodes are available: 1 node(s) exceed max volume count. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    // A volume already attached for another pod on the node is not counted again.
    assert_eq!(
        bound(&schedule(&using("shared", &["a"], None), &cluster, now())),
        "n1"
    );
    // Without a CSINode count the node has no limit.
    let unlimited = snapshot(&nodes, &running, &pvcs, &pvs, &classes);
    assert_eq!(
        bound(&schedule(&using("new", &["c"], None), &unlimited, now())),
        "n1"
    );
    // The limit can also come from the Node's attachable-volumes-csi-<driver> allocatable.
    let mut legacy = nodes.clone();
    legacy[0]["status"]["allocatable"]["attachable-volumes-csi-disk.csi.example.com"] = json!("2");
    assert_eq!(
        message(&schedule(
            &using("new", &["c"], None),
            &snapshot(&legacy, &running, &pvcs, &pvs, &classes),
            now()
        )),
        "0/1 nodes are available: 1 node(s) exceed max volume count. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
}
