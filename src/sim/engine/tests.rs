//! The engine driven directly through its store, on simulated time.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::sim::controllers;
use crate::sim::store::{ListOptions, Part};

fn engine() -> SimEngine {
    SimEngine::new(EngineConfig::new(ClusterShape::default(), BTreeMap::new()).unwrap()).unwrap()
}

fn list(e: &SimEngine, api_version: &str, kind: &str) -> Vec<Value> {
    let store = e.store();
    let res = store.resource_for_kind(api_version, kind).unwrap();
    store
        .list(&res, None, &ListOptions::default())
        .unwrap()
        .items
}

fn create(e: &SimEngine, obj: Value) {
    let store = e.store();
    let res = store
        .resource_for_kind(
            obj["apiVersion"].as_str().unwrap(),
            obj["kind"].as_str().unwrap(),
        )
        .unwrap();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
    store
        .create(&res, ns.as_deref(), obj, &WriteOptions::default())
        .unwrap();
}

fn at(e: &SimEngine, secs: i64) -> Timestamp {
    controllers::meta::add_secs(e.start(), secs)
}

fn deployment(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

#[test]
fn default_cluster_has_one_node_and_a_default_local_class() {
    let e = engine();
    let nodes = list(&e, "v1", "Node");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["metadata"]["name"], "node-1");
    assert_eq!(
        nodes[0]["metadata"]["labels"]["kubernetes.io/arch"],
        "amd64"
    );
    let classes = list(&e, "storage.k8s.io/v1", "StorageClass");
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0]["metadata"]["name"], "local-path");
    assert_eq!(classes[0]["provisioner"], NODE_LOCAL_PROVISIONER);
    assert_eq!(classes[0]["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(
        classes[0]["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION],
        "true"
    );
    assert_eq!(e.now().to_string(), EPOCH);
}

#[test]
fn a_rollout_replaces_pods_and_old_ones_go_away() {
    let mut e = engine();
    create(&e, deployment("nginx:1.27"));
    e.run_until(at(&e, 60)).unwrap();
    let pods = list(&e, "v1", "Pod");
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| p["status"]["phase"] == "Running" && p["spec"]["nodeName"] == "node-1")
    );

    // A new template: new pods come up, the old ones are deleted gracefully and removed once
    // their containers stopped.
    let store = e.store().clone();
    let res = store.resource_for_kind("apps/v1", "Deployment").unwrap();
    store
        .modify(
            &res,
            Some("default"),
            "web",
            Part::Main,
            &WriteOptions::default(),
            |cur| {
                let mut d = cur.unwrap().clone();
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
                Ok(d)
            },
        )
        .unwrap();
    e.run_until(at(&e, 180)).unwrap();
    let pods = list(&e, "v1", "Pod");
    assert_eq!(pods.len(), 2, "{pods:#?}");
    assert!(pods.iter().all(|p| {
        p["spec"]["containers"][0]["image"] == "nginx:1.28" && p["status"]["phase"] == "Running"
    }));
    let killing: Vec<Value> = list(&e, "v1", "Event")
        .into_iter()
        .filter(|ev| ev["reason"] == "Killing")
        .collect();
    assert_eq!(killing.len(), 2);
    assert_eq!(killing[0]["message"], "Stopping container web");
    let d = &list(&e, "apps/v1", "Deployment")[0];
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["availableReplicas"], 2);
}

#[test]
fn advance_stops_where_something_changes_and_never_passes_until() {
    let mut e = engine();
    create(&e, deployment("nginx:1.27"));
    // The writes made before the call are reconciled at the current instant first.
    e.advance(at(&e, 600)).unwrap();
    assert_eq!(e.now(), e.start());
    assert_eq!(list(&e, "v1", "Pod").len(), 2);
    // Then time moves from wake-up to wake-up (image pulls take simulated seconds) ...
    e.advance(at(&e, 600)).unwrap();
    assert!(e.now() > e.start() && e.now() < at(&e, 600));
    // ... and stops at `until` once nothing is left to happen.
    e.run_until(at(&e, 600)).unwrap();
    e.advance(at(&e, 900)).unwrap();
    assert_eq!(e.now(), at(&e, 900));
}

#[test]
fn a_cluster_that_keeps_changing_is_an_error() {
    let mut config = EngineConfig::new(ClusterShape::default(), BTreeMap::new()).unwrap();
    config.max_rounds = 1;
    let mut e = SimEngine::new(config).unwrap();
    create(&e, deployment("nginx:1.27"));
    let err = e.settle().unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "the simulated cluster did not settle at 2025-01-01T00:00:00Z after 1 rounds"
        ),
        "{text}"
    );
    assert!(text.contains("deployment-controller"), "{text}");
}

#[test]
fn duplicate_nodes_are_a_setup_error() {
    let node = Node {
        name: "a".into(),
        ..default_node()
    };
    let cluster = ClusterShape {
        nodes: vec![node.clone(), node],
        ..ClusterShape::default()
    };
    let err = SimEngine::new(EngineConfig::new(cluster, BTreeMap::new()).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create Node a in the simulated cluster"
    );
}

#[test]
fn deferred_postgres_checks_hold_the_clock_until_answered() {
    let behaviour: ImageBehaviour = crate::yaml::from_str(
        r#"
requires:
  - needs:
      postgres:
        user: {value: app}
        password: {value: s3cret}
        database: {value: appdb}
        sslmode: disable
    otherwise:
      log: ["fatal: {error}"]
      exitCode: 3
"#,
    )
    .unwrap();
    let images = BTreeMap::from([("app:1".to_owned(), behaviour)]);
    let mut e =
        SimEngine::new(EngineConfig::new(ClusterShape::default(), images).unwrap()).unwrap();
    e.defer_postgres();
    create(
        &e,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "app", "namespace": "default"},
               "spec": {"containers": [{"name": "app", "image": "app:1"}]}}),
    );
    let deadline = at(&e, 600);
    for _ in 0..100 {
        if !e.pending_postgres().is_empty() {
            break;
        }
        e.advance(deadline).unwrap();
    }
    let calls = e.pending_postgres();
    assert_eq!(calls.len(), 1, "the program asks once");
    assert_eq!(calls[0].container, "app");
    assert_eq!(calls[0].request.user, "app");
    assert_eq!(calls[0].request.password, "s3cret");
    assert_eq!(calls[0].request.database, "appdb");

    // Unanswered, the check holds simulated time where it is.
    let asked_at = e.now();
    e.advance(deadline).unwrap();
    e.advance(deadline).unwrap();
    assert_eq!(e.now(), asked_at);
    assert_eq!(e.pending_postgres(), calls);

    e.postgres_result(
        &calls[0],
        &crate::sim::behaviour::PostgresOutcome::Failed {
            sqlstate: Some("28P01".to_owned()),
            message: "password authentication failed for user \"app\"".to_owned(),
        },
    );
    assert!(e.pending_postgres().is_empty());
    let exit_code = |e: &SimEngine| {
        list(e, "v1", "Pod")[0]
            .pointer("/status/containerStatuses/0")
            .and_then(|s| {
                s.pointer("/state/terminated/exitCode")
                    .or_else(|| s.pointer("/lastState/terminated/exitCode"))
            })
            .and_then(Value::as_i64)
    };
    for _ in 0..100 {
        if exit_code(&e).is_some() || !e.pending_postgres().is_empty() {
            break;
        }
        e.advance(deadline).unwrap();
    }
    assert_eq!(exit_code(&e), Some(3), "the refused login ends the program");
    let key = crate::sim::store::ContainerKey::new("default", "app", "app");
    let (lines, _) = e
        .store()
        .logs()
        .read(&key, false)
        .or_else(|| e.store().logs().read(&key, true))
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.text == "fatal: password authentication failed for user \"app\""),
        "{lines:?}"
    );
}

/// A ResourceQuota refusal's detail, as `plugin/pkg/admission/resourcequota` words it.
const QUOTA: &str = "exceeded quota: pods, requested: pods=1, used: pods=0, limited: pods=0";

fn replica_set(replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": "web-1", "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

/// The events about one object, oldest first.
fn events_about(e: &SimEngine, kind: &str, name: &str) -> Vec<Value> {
    let mut events: Vec<Value> = list(e, "v1", "Event")
        .into_iter()
        .filter(|ev| ev["involvedObject"]["kind"] == kind && ev["involvedObject"]["name"] == name)
        .collect();
    events.sort_by_key(|ev| ev["metadata"]["name"].as_str().map(str::to_owned));
    events
}

fn millis(e: &SimEngine, t: Timestamp) -> i128 {
    t.duration_since(e.start()).as_millis()
}

#[test]
fn a_refused_pod_create_is_the_replicasets_failed_create_event() {
    let mut e = engine();
    e.store().refuse_creates("pods", Some(QUOTA));
    create(&e, replica_set(2));
    e.settle().unwrap();

    // The first create is refused and ends the sync: one event, no pod, no success reported.
    assert!(list(&e, "v1", "Pod").is_empty());
    let events = events_about(&e, "ReplicaSet", "web-1");
    assert_eq!(events.len(), 1, "{events:#?}");
    let ev = &events[0];
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "FailedCreate");
    assert_eq!(ev["source"]["component"], "replicaset-controller");
    let message = ev["message"].as_str().unwrap();
    let pod = message
        .strip_prefix("Error creating: pods \"")
        .and_then(|m| m.split_once('"'))
        .map(|(pod, _)| pod)
        .unwrap();
    assert!(pod.starts_with("web-1-"), "{message}");
    assert_eq!(
        message,
        format!("Error creating: pods \"{pod}\" is forbidden: {QUOTA}")
    );

    // The refusal is also the engine's diagnostic.
    let refused = e.refused_writes();
    assert_eq!(refused.len(), 1);
    let r = &refused[0];
    assert_eq!(r.controller, "replicaset-controller");
    assert_eq!(
        (
            r.target.verb,
            r.target.kind.as_str(),
            r.target.name.as_str()
        ),
        ("create", "Pod", pod)
    );
    assert_eq!(r.target.namespace.as_deref(), Some("default"));
    assert_eq!(r.error.reason, Reason::Forbidden);
    assert_eq!(
        r.to_string(),
        format!(
            "replicaset-controller: create Pod default/{pod} refused: pods \"{pod}\" is forbidden: {QUOTA}"
        )
    );

    // Retries follow the work queue's back-off: 5 ms, then twice as long each time.
    e.run_until(e.start() + std::time::Duration::from_secs(1))
        .unwrap();
    let tried: Vec<i128> = e
        .refused_writes()
        .iter()
        .map(|r| millis(&e, r.first))
        .collect();
    assert_eq!(tried, [0, 5, 15, 35, 75, 155, 315, 635]);
    assert_eq!(events_about(&e, "ReplicaSet", "web-1").len(), 8);
    assert!(list(&e, "v1", "Pod").is_empty());

    // Once creates are let through, the next retry makes the pods.
    e.store().refuse_creates("pods", None);
    e.run_until(at(&e, 5)).unwrap();
    let pods = list(&e, "v1", "Pod");
    assert_eq!(pods.len(), 2);
    let created: Vec<Value> = events_about(&e, "ReplicaSet", "web-1")
        .into_iter()
        .filter(|ev| ev["reason"] == "SuccessfulCreate")
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(e.refused_writes().len(), 8);
}

#[test]
fn a_change_to_the_owner_syncs_it_again_before_its_retry() {
    let mut e = engine();
    e.store().refuse_creates("pods", Some(QUOTA));
    create(&e, replica_set(2));
    e.settle().unwrap();
    assert_eq!(e.refused_writes().len(), 1);
    e.store().refuse_creates("pods", None);
    // Scaled while it waits: the update syncs it at once, without the clock moving.
    let store = e.store().clone();
    let res = store.resource_for_kind("apps/v1", "ReplicaSet").unwrap();
    store
        .modify(
            &res,
            Some("default"),
            "web-1",
            Part::Main,
            &WriteOptions::default(),
            |cur| {
                let mut rs = cur.unwrap().clone();
                rs["spec"]["replicas"] = json!(1);
                Ok(rs)
            },
        )
        .unwrap();
    e.settle().unwrap();
    assert_eq!(e.now(), e.start());
    assert_eq!(list(&e, "v1", "Pod").len(), 1);
}

#[test]
fn a_refused_claim_fails_the_statefulset_pod_too() {
    let mut e = engine();
    let detail = "exceeded quota: storage, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=0, limited: persistentvolumeclaims=0";
    e.store()
        .refuse_creates("persistentvolumeclaims", Some(detail));
    create(
        &e,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": "default"},
               "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                            "spec": {"accessModes": ["ReadWriteOnce"],
                                     "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    );
    e.settle().unwrap();
    assert!(list(&e, "v1", "Pod").is_empty());
    let error = format!("persistentvolumeclaims \"data-db-0\" is forbidden: {detail}");
    let messages: Vec<(String, String)> = events_about(&e, "StatefulSet", "db")
        .iter()
        .map(|ev| {
            (
                ev["reason"].as_str().unwrap().to_owned(),
                ev["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            (
                "FailedCreate".to_owned(),
                format!(
                    "create Claim data-db-0 for Pod db-0 in StatefulSet db failed error: {error}"
                )
            ),
            (
                "FailedCreate".to_owned(),
                format!(
                    "create Pod db-0 in StatefulSet db failed error: failed to create PVC data-db-0: {error}"
                )
            ),
        ]
    );
    let refused = e.refused_writes();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].controller, "statefulset-controller");
    assert_eq!(refused[0].target.kind, "PersistentVolumeClaim");
}

fn tainted_control_plane() -> SimEngine {
    let cluster: ClusterShape =
        crate::yaml::from_str("nodes: [{name: server-0, roles: [control-plane]}]").unwrap();
    SimEngine::new(EngineConfig::new(cluster, BTreeMap::new()).unwrap()).unwrap()
}

fn nodes_of_pods(e: &SimEngine) -> Vec<String> {
    list(e, "v1", "Pod")
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn pending_pods_schedule_once_a_worker_joins_and_go_when_it_leaves() {
    let mut e = tainted_control_plane();
    create(&e, deployment("nginx:1.27"));
    e.run_until(at(&e, 60)).unwrap();
    assert_eq!(nodes_of_pods(&e), ["", ""]);

    let worker: Node = crate::yaml::from_str("{name: worker-0, roles: [worker]}").unwrap();
    e.add_node(&worker).unwrap();
    e.run_until(at(&e, 120)).unwrap();
    assert_eq!(nodes_of_pods(&e), ["worker-0", "worker-0"]);
    let pods = list(&e, "v1", "Pod");
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
    assert_eq!(pods[0]["status"]["hostIP"], "172.18.0.3");

    e.remove_node("worker-0").unwrap();
    e.run_until(at(&e, 180)).unwrap();
    // The pods went with their node; their replacements wait for a node again.
    let pods = list(&e, "v1", "Pod");
    assert_eq!(pods.len(), 2);
    assert_eq!(nodes_of_pods(&e), ["", ""]);
    assert!(pods.iter().all(|p| p["metadata"]["uid"] != json!(null)));
}

#[test]
fn a_node_created_through_the_api_joins_and_registers_its_status() {
    let mut e = tainted_control_plane();
    create(&e, deployment("nginx:1.27"));
    create(
        &e,
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "agent-1", "labels": {"kubernetes.io/arch": "arm64"}}}),
    );
    e.run_until(at(&e, 60)).unwrap();
    let node = list(&e, "v1", "Node")
        .into_iter()
        .find(|n| n["metadata"]["name"] == "agent-1")
        .unwrap();
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "agent-1"
    );
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "arm64");
    assert_eq!(node["status"]["conditions"][3]["reason"], "KubeletReady");
    assert_eq!(node["status"]["nodeInfo"]["architecture"], "arm64");
    assert_eq!(nodes_of_pods(&e), ["agent-1", "agent-1"]);
    assert!(
        list(&e, "v1", "Pod")
            .iter()
            .all(|p| p["status"]["phase"] == "Running")
    );
}

#[test]
fn the_load_balancer_provider_can_be_switched_on() {
    let mut e = engine();
    create(
        &e,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "lb", "namespace": "default"},
               "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                        "ports": [{"port": 80}]}}),
    );
    e.run_until(at(&e, 10)).unwrap();
    let ingress = |e: &SimEngine| {
        list(e, "v1", "Service")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "lb")
            .unwrap()["status"]["loadBalancer"]
            .clone()
    };
    assert_eq!(ingress(&e), json!({}));
    e.set_load_balancer(LoadBalancerProvider::ServiceLb);
    e.run_until(at(&e, 20)).unwrap();
    assert_eq!(
        ingress(&e),
        json!({"ingress": [{"ip": "172.18.0.2", "ipMode": "VIP"}]})
    );
}

#[test]
fn operator_reports_keep_the_transition_time_and_record_events_on_change() {
    let behaviour: ImageBehaviour = crate::yaml::from_str(
        r#"
operator:
  - forEach: {group: "", version: v1, resource: services, kind: Service}
    eventSource: svc-operator
    owns: []
    reports:
      - when: [matches: {metadata: {labels: {ok: "yes"}}}]
        conditions: [{type: Ready, status: "True", reason: Fine, message: "{{name}} is fine"}]
      - conditions: [{type: Ready, status: "False", reason: NotFine, message: "{{name}} is not"}]
        event: {type: Warning, reason: NotFine, message: "{{name}} lacks the label"}
"#,
    )
    .unwrap();
    let images = BTreeMap::from([("op:1".to_owned(), behaviour)]);
    let mut e =
        SimEngine::new(EngineConfig::new(ClusterShape::default(), images).unwrap()).unwrap();
    create(&e, deployment("op:1"));
    create(
        &e,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "s", "namespace": "default"},
               "spec": {"ports": [{"port": 80}]}}),
    );
    let ready = |e: &SimEngine| {
        list(e, "v1", "Service")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "s")
            .unwrap()["status"]["conditions"][0]
            .clone()
    };
    e.run_until(at(&e, 60)).unwrap();
    let first = ready(&e);
    assert_eq!(first["status"], "False");
    assert_eq!(first["message"], "s is not");
    let events = events_about(&e, "Service", "s");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "NotFine");
    assert_eq!(events[0]["message"], "s lacks the label");
    assert_eq!(events[0]["source"]["component"], "svc-operator");

    // Nothing changes: neither the transition time nor the event count moves.
    e.run_until(at(&e, 600)).unwrap();
    assert_eq!(ready(&e), first);
    assert_eq!(events_about(&e, "Service", "s")[0]["count"], 1);

    let store = e.store().clone();
    let res = store.resource_for_kind("v1", "Service").unwrap();
    store
        .modify(
            &res,
            Some("default"),
            "s",
            Part::Main,
            &WriteOptions::default(),
            |cur| {
                let mut s = cur.unwrap().clone();
                s["metadata"]["labels"] = json!({"ok": "yes"});
                Ok(s)
            },
        )
        .unwrap();
    e.run_until(at(&e, 660)).unwrap();
    let now_ready = ready(&e);
    assert_eq!(now_ready["reason"], "Fine");
    assert_ne!(now_ready["lastTransitionTime"], first["lastTransitionTime"]);
}
#[test]
fn pods_of_a_silent_node_are_evicted_and_replaced_on_another() {
    let node = |name: &str| Node {
        name: name.into(),
        roles: vec![NodeRole::Worker],
        ..default_node()
    };
    let cluster = ClusterShape {
        nodes: vec![node("node-1"), node("node-2")],
        ..ClusterShape::default()
    };
    let mut e = SimEngine::new(EngineConfig::new(cluster, BTreeMap::new()).unwrap()).unwrap();
    create(&e, deployment("nginx:1.27"));
    e.run_until(at(&e, 60)).unwrap();
    let on = |e: &SimEngine, n: &str| -> Vec<Value> {
        list(e, "v1", "Pod")
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == n)
            .collect()
    };
    // One pod per node (the scheduler spreads them).
    let victim = on(&e, "node-2")[0]["metadata"]["name"].clone();
    e.start_fault(&crate::scenario::FaultStep {
        node_not_ready: Some(crate::scenario::NodeFault {
            node: "node-2".into(),
        }),
        ..crate::scenario::FaultStep::default()
    });
    e.run_until(at(&e, 60 + 39)).unwrap();
    let node2 = |e: &SimEngine| {
        list(e, "v1", "Node")
            .into_iter()
            .find(|n| n["metadata"]["name"] == "node-2")
            .unwrap()
    };
    assert_eq!(
        controllers::meta::condition(&node2(&e), "Ready").unwrap()["status"],
        "True"
    );
    e.run_until(at(&e, 60 + 40)).unwrap();
    let ready = controllers::meta::condition(&node2(&e), "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready["status"].clone(), ready["reason"].clone()),
        (json!("Unknown"), json!("NodeStatusUnknown"))
    );
    assert_eq!(node2(&e)["spec"]["taints"].as_array().unwrap().len(), 2);
    let victim_pod = on(&e, "node-2");
    assert_eq!(
        controllers::meta::condition(&victim_pod[0], "Ready").unwrap()["status"],
        "False"
    );
    // Evicted 300s after the taint; the kubelet being silent, it stays Terminating, and the
    // ReplicaSet's replacement runs on node-1.
    e.run_until(at(&e, 60 + 40 + 300 + 60)).unwrap();
    let left = on(&e, "node-2");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["metadata"]["name"], victim);
    assert!(left[0]["metadata"]["deletionTimestamp"].is_string());
    let running: Vec<Value> = on(&e, "node-1")
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .collect();
    assert_eq!(running.len(), 2, "{running:?}");
    let reasons: Vec<Value> = events_about(&e, "Pod", victim.as_str().unwrap())
        .iter()
        .map(|ev| ev["reason"].clone())
        .collect();
    assert!(reasons.contains(&json!("NodeNotReady")), "{reasons:?}");
    assert!(
        reasons.contains(&json!("TaintManagerEviction")),
        "{reasons:?}"
    );
}

#[test]
fn pods_assumed_while_their_claims_are_provisioned_count_against_their_node() {
    let cluster: ClusterShape = crate::yaml::from_str(
        "nodes: [{name: a, roles: [worker]}, {name: b, roles: [worker]}]\n\
         storageClasses: [{name: disk, default: true, kind: attachable}]",
    )
    .unwrap();
    let mut e = SimEngine::new(EngineConfig::new(cluster, BTreeMap::new()).unwrap()).unwrap();
    // Two pods, each with a WaitForFirstConsumer claim, created in the same instant: the
    // second is scheduled while the first waits for its volume on the node chosen for it.
    for name in ["one", "two"] {
        create(
            &e,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        create(
            &e,
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                            "resources": {"requests": {"cpu": "1"}}}],
                         "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": name}}]}}),
        );
    }
    e.run_until(at(&e, 60)).unwrap();
    let mut nodes = nodes_of_pods(&e);
    nodes.sort();
    assert_eq!(nodes, ["a", "b"]);
}

#[test]
fn a_crash_looping_pods_back_off_event_counts_every_sync() {
    let images = BTreeMap::from([(
        "crash:1".to_owned(),
        crate::scenario::ImageBehaviour {
            exit_after: Some(crate::scenario::ExitAfter {
                duration: crate::scenario::Duration::from_secs(0),
                code: 1,
            }),
            ..crate::scenario::ImageBehaviour::default()
        },
    )]);
    let mut e =
        SimEngine::new(EngineConfig::new(ClusterShape::default(), images).unwrap()).unwrap();
    create(
        &e,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "crash", "namespace": "default"},
               "spec": {"containers": [{"name": "app", "image": "crash:1"}]}}),
    );
    e.run_until(at(&e, 600)).unwrap();
    let events = events_about(&e, "Pod", "crash");
    let backoff: Vec<&Value> = events
        .iter()
        .filter(|ev| ev["reason"] == "BackOff")
        .collect();
    // One Event object whose count grows at every pod sync (every 10–15 s while backing off),
    // not once per back-off period, as long as client-go's spam filter lets the kubelet write.
    assert_eq!(backoff.len(), 1, "{backoff:?}");
    let count = backoff[0]["count"].as_u64().unwrap();
    let pod = &list(&e, "v1", "Pod")[0];
    let restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap();
    // Back-offs of 10, 20, 40, 80 and 160 s ended (1, 2, 3–4, 6–8 and 11–16 syncs), and
    // the 300 s one that followed is 210–290 s old (15–30 syncs): 38–61 syncs in all.
    assert_eq!(restarts, 6, "{pod}");
    // The spam filter (events_cache.go) lets the kubelet's first 25 Warnings about the pod
    // through, spread over 250–375 s of syncs, then one more once a token has come back 300 s
    // after the first; the next token is due after the run ends, so the stored count stops
    // there although the kubelet kept recording.
    assert_eq!(count, 26, "{backoff:?}");
    let first: Timestamp = backoff[0]["firstTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last: Timestamp = backoff[0]["lastTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last.duration_since(first) >= jiff::SignedDuration::from_secs(300),
        "{backoff:?}"
    );
    assert!(last < at(&e, 600), "{backoff:?}");
}

#[test]
fn nodes_of_a_1_33_cluster_on_containerd_2_1_report_those_versions() {
    let pinned = ClusterShape {
        versions: crate::scenario::Versions {
            kubernetes: crate::scenario::KubernetesVersion::V1_33,
            containerd: crate::scenario::ContainerdVersion::V2_1,
        },
        ..ClusterShape::default()
    };
    let e = SimEngine::new(EngineConfig::new(pinned, BTreeMap::new()).unwrap()).unwrap();
    let info = &list(&e, "v1", "Node")[0]["status"]["nodeInfo"];
    assert_eq!(info["kubeletVersion"], "v1.33.0");
    assert_eq!(info["kubeProxyVersion"], "v1.33.0");
    assert_eq!(info["containerRuntimeVersion"], "containerd://2.1.4");
}

#[test]
fn nodes_report_the_cluster_versions() {
    let default = engine();
    let info = &list(&default, "v1", "Node")[0]["status"]["nodeInfo"];
    assert_eq!(info["kubeletVersion"], "v1.32.0");
    assert_eq!(info["kubeProxyVersion"], "v1.32.0");
    assert_eq!(info["containerRuntimeVersion"], "containerd://1.7.24");

    let pinned = ClusterShape {
        versions: crate::scenario::Versions {
            kubernetes: crate::scenario::KubernetesVersion::V1_31,
            containerd: crate::scenario::ContainerdVersion::V2_0,
        },
        ..ClusterShape::default()
    };
    let mut e = SimEngine::new(EngineConfig::new(pinned, BTreeMap::new()).unwrap()).unwrap();
    let info = &list(&e, "v1", "Node")[0]["status"]["nodeInfo"];
    assert_eq!(info["kubeletVersion"], "v1.31.0");
    assert_eq!(info["containerRuntimeVersion"], "containerd://2.0.11");
    // A node that joins later reports the same versions.
    create(
        &e,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "agent-1"}}),
    );
    e.run_until(at(&e, 60)).unwrap();
    let joined = list(&e, "v1", "Node")
        .into_iter()
        .find(|n| n["metadata"]["name"] == "agent-1")
        .unwrap();
    assert_eq!(joined["status"]["nodeInfo"]["kubeletVersion"], "v1.31.0");
    assert_eq!(
        joined["status"]["nodeInfo"]["containerRuntimeVersion"],
        "containerd://2.0.11"
    );
}
