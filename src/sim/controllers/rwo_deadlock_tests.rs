//! The RWO volume + RollingUpdate deadlock (Grafana on EBS) at the controller level: a
//! one-replica Deployment with an attachable ReadWriteOnce volume, the template changed while
//! the surge pod lands on another node, the Multi-Attach error, the progress deadline, and the
//! fix (switching to Recreate) converging.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::deployment::{self, reason};
use super::meta::{self, str_at};
use super::testing::FakeCluster;

const NS: &str = "monitoring";

fn setup(seed: u64) -> FakeCluster {
    let mut c = FakeCluster::new(seed);
    for node in ["node-a", "node-b"] {
        c.world.add(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": {
            "kubernetes.io/hostname": node, "topology.kubernetes.io/zone": "eu-west-1a"}}}),
        );
    }
    c.world.add(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}));
    c.world.add(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "grafana", "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}));
    c.world.add(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "grafana", "namespace": NS, "generation": 1},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "grafana"}},
            "template": {
                "metadata": {"labels": {"app": "grafana"}},
                "spec": {
                    "containers": [{"name": "grafana", "image": "grafana/grafana:11.1.0",
                        "volumeMounts": [{"name": "storage", "mountPath": "/var/lib/grafana"}]}],
                    "volumes": [{"name": "storage", "persistentVolumeClaim": {"claimName": "grafana"}}]
                }
            }
        }}));
    c
}

fn deployment(c: &FakeCluster) -> Value {
    c.world
        .obj("apps/v1", "Deployment", NS, "grafana")
        .unwrap()
        .clone()
}

fn progressing(c: &FakeCluster) -> (String, String, String) {
    let d = deployment(c);
    let cond = meta::condition(&d, "Progressing").unwrap();
    (
        str_at(cond, &["status"]).to_owned(),
        str_at(cond, &["reason"]).to_owned(),
        str_at(cond, &["message"]).to_owned(),
    )
}

fn pods(c: &FakeCluster) -> Vec<Value> {
    c.world.list_pods(NS)
}

fn rs_names(c: &FakeCluster) -> Vec<String> {
    let mut rs: Vec<Value> = super::meta::owned(super::ClusterView::list(
        &c.world,
        "apps/v1",
        "ReplicaSet",
        Some(NS),
    ));
    rs.sort_by_key(meta::creation_time);
    rs.iter().map(|r| meta::name(r).to_owned()).collect()
}

/// Runs the scenario up to the deadline; returns the cluster, the old and new ReplicaSet
/// names and the time of the template change.
fn break_it(seed: u64) -> (FakeCluster, String, String, Timestamp) {
    let mut c = setup(seed);
    c.run_until(meta::add_secs(c.now, 120));
    assert_eq!(
        progressing(&c).1,
        reason::NEW_REPLICA_SET_AVAILABLE,
        "initial rollout converges"
    );
    let old_rs = rs_names(&c)[0].clone();

    // `kubectl rollout restart`: only the template annotation changes. The scheduler puts the
    // surge pod on the other node.
    c.now = meta::add_secs(c.now, 60);
    let changed_at = c.now;
    c.world
        .edit_spec("apps/v1", "Deployment", NS, "grafana", |d| {
            meta::set_at(
                d,
                &[
                    "spec",
                    "template",
                    "metadata",
                    "annotations",
                    deployment::RESTARTED_AT_ANNOTATION,
                ],
                json!(meta::fmt_time(changed_at)),
            );
        });
    c.place = Box::new(|_| "node-b".to_owned());
    c.settle();
    let names = rs_names(&c);
    assert_eq!(names.len(), 2);
    let new_rs = names[1].clone();
    (c, old_rs, new_rs, changed_at)
}

#[test]
fn rolling_update_with_an_rwo_volume_deadlocks_until_the_progress_deadline() {
    let (mut c, old_rs, new_rs, changed_at) = break_it(42);

    // maxSurge 25% of 1 rounds up to 1, maxUnavailable rounds down to 0: surge first.
    let rs_new = c.world.obj("apps/v1", "ReplicaSet", NS, &new_rs).unwrap();
    assert_eq!(rs_new["spec"]["replicas"], 1);
    assert_eq!(
        meta::annotation(rs_new, deployment::REVISION_ANNOTATION),
        Some("2")
    );
    let rs_old = c.world.obj("apps/v1", "ReplicaSet", NS, &old_rs).unwrap();
    assert_eq!(rs_old["spec"]["replicas"], 1);
    assert!(c.world.events_with_reason("ScalingReplicaSet").contains(&(
        format!("Scaled up replica set {new_rs} from 0 to 1"),
        changed_at
    )));

    let all = pods(&c);
    let old_pod = all
        .iter()
        .find(|p| meta::name(p).starts_with(&old_rs))
        .unwrap();
    let new_pod = all
        .iter()
        .find(|p| meta::name(p).starts_with(&new_rs))
        .unwrap();
    assert_eq!(str_at(old_pod, &["spec", "nodeName"]), "node-a");
    assert_eq!(str_at(new_pod, &["spec", "nodeName"]), "node-b");
    let pv = str_at(
        c.world
            .obj("v1", "PersistentVolumeClaim", NS, "grafana")
            .unwrap(),
        &["spec", "volumeName"],
    )
    .to_owned();
    assert!(pv.starts_with("pvc-"));

    // Just before the deadline: still progressing, the new pod still waiting for the volume.
    c.run_until(meta::add_secs(changed_at, 590));
    assert_eq!(progressing(&c).0, "True");
    assert!(!meta::is_pod_ready(
        &c.world
            .list_pods(NS)
            .into_iter()
            .find(|p| meta::name(p) == meta::name(new_pod))
            .unwrap()
    ));

    // After 600 s without progress: ProgressDeadlineExceeded.
    c.run_until(meta::add_secs(changed_at, 700));
    assert_eq!(
        progressing(&c),
        (
            "False".to_owned(),
            "ProgressDeadlineExceeded".to_owned(),
            format!("ReplicaSet \"{new_rs}\" has timed out progressing.")
        )
    );
    let d = deployment(&c);
    let cond = meta::condition(&d, "Progressing").unwrap();
    let timed_out_at = meta::parse_time(str_at(cond, &["lastTransitionTime"])).unwrap();
    assert!(timed_out_at > meta::add_secs(changed_at, 600));
    assert_eq!(d["status"]["updatedReplicas"], 1);
    assert_eq!(d["status"]["replicas"], 2);
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    let available = meta::condition(&d, "Available").unwrap();
    assert_eq!(str_at(available, &["reason"]), "MinimumReplicasAvailable");

    // Exactly one Multi-Attach warning, on the new pod, naming the old pod.
    let warnings: Vec<_> = c
        .world
        .events
        .iter()
        .filter(|(_, e)| e.reason == "FailedAttachVolume")
        .collect();
    assert_eq!(warnings.len(), 1);
    let (_, ev) = warnings[0];
    assert_eq!(ev.involved.name, meta::name(new_pod));
    assert_eq!(ev.type_.as_str(), "Warning");
    assert_eq!(ev.reporter.component, "attachdetach-controller");
    assert_eq!(
        ev.message,
        format!(
            "Multi-Attach error for volume \"{pv}\" Volume is already used by pod(s) {}",
            meta::name(old_pod)
        )
    );

    // Without a fix nothing changes, however long we wait.
    c.run_until(meta::add_secs(changed_at, 7200));
    assert_eq!(progressing(&c).1, "ProgressDeadlineExceeded");
    assert_eq!(c.world.events_with_reason("FailedAttachVolume").len(), 1);
}

#[test]
fn switching_to_recreate_resolves_the_deadlock() {
    let (mut c, old_rs, new_rs, changed_at) = break_it(42);
    c.run_until(meta::add_secs(changed_at, 700));
    assert_eq!(progressing(&c).1, "ProgressDeadlineExceeded");
    let old_pod = pods(&c)
        .into_iter()
        .find(|p| meta::name(p).starts_with(&old_rs))
        .map(|p| meta::name(&p).to_owned())
        .unwrap();

    // The fix: strategy Recreate (rollingUpdate dropped).
    let fixed_at = c.now;
    c.world
        .edit_spec("apps/v1", "Deployment", NS, "grafana", |d| {
            d["spec"]["strategy"] = json!({"type": "Recreate"});
        });
    c.run_until(meta::add_secs(fixed_at, 300));

    assert!(c.world.events_with_reason("ScalingReplicaSet").contains(&(
        format!("Scaled down replica set {old_rs} from 1 to 0"),
        fixed_at
    )));
    assert_eq!(
        c.world.obj("apps/v1", "ReplicaSet", NS, &old_rs).unwrap()["spec"]["replicas"],
        0
    );
    let remaining = pods(&c);
    assert_eq!(remaining.len(), 1);
    assert!(remaining.iter().all(|p| meta::name(p) != old_pod));
    assert!(meta::is_pod_ready(&remaining[0]));
    assert_eq!(str_at(&remaining[0], &["spec", "nodeName"]), "node-b");
    let pv = str_at(
        c.world
            .obj("v1", "PersistentVolumeClaim", NS, "grafana")
            .unwrap(),
        &["spec", "volumeName"],
    )
    .to_owned();
    assert!(super::attachdetach::is_attached(&c.world, &pv, "node-b"));
    assert!(!super::attachdetach::is_attached(&c.world, &pv, "node-a"));

    assert_eq!(
        progressing(&c),
        (
            "True".to_owned(),
            "NewReplicaSetAvailable".to_owned(),
            format!("ReplicaSet \"{new_rs}\" has successfully progressed.")
        )
    );
    let d = deployment(&c);
    assert_eq!(d["status"]["replicas"], 1);
    assert_eq!(d["status"]["updatedReplicas"], 1);
    assert_eq!(d["status"]["availableReplicas"], 1);
    assert_eq!(d["status"]["observedGeneration"], meta::generation(&d));
    assert!(d["status"].get("unavailableReplicas").is_none());
    let available = meta::condition(&d, "Available").unwrap();
    assert_eq!(
        str_at(available, &["message"]),
        "Deployment has minimum availability."
    );
    assert!(
        c.world
            .events_with_reason("SuccessfulAttachVolume")
            .iter()
            .any(|(m, _)| *m == format!("AttachVolume.Attach succeeded for volume \"{pv}\" "))
    );
}

#[test]
fn the_event_timeline_is_reproducible() {
    let timeline = |seed| {
        let (mut c, ..) = break_it(seed);
        c.run_until(meta::add_secs(c.now, 700));
        c.world
            .events
            .iter()
            .map(|(t, e)| {
                format!(
                    "{} {} {} {}",
                    meta::fmt_time(*t),
                    e.reason,
                    e.involved.name,
                    e.message
                )
            })
            .collect::<Vec<_>>()
    };
    let first = timeline(7);
    assert!(first.len() > 5);
    assert_eq!(first, timeline(7));
}
