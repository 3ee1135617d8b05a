use std::sync::Arc;

use super::*;
use crate::scenario::{FaultStep, NodeFault};
use crate::sim::controllers::Effect;

fn t(s: u64) -> Timestamp {
    after(
        "2025-01-01T00:00:00Z".parse().unwrap(),
        Duration::from_secs(s),
    )
}

struct View(Vec<Value>);

impl ClusterView for View {
    fn get(&self, a: &str, k: &str, ns: Option<&str>, n: &str) -> Option<Value> {
        self.list(a, k, ns)
            .into_iter()
            .find(|o| meta::name(o) == n)
            .map(|o| (*o).clone())
    }
    fn list(&self, a: &str, k: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.0
            .iter()
            .filter(|o| o["apiVersion"] == a && o["kind"] == k)
            .filter(|o| ns.is_none_or(|n| meta::namespace(o) == Some(n)))
            .map(|o| Arc::new(o.clone()))
            .collect()
    }
}

fn node() -> Value {
    let c = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "x", "message": "y",
        "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"})
    };
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"}, "spec": {},
        "status": {"conditions": [c("MemoryPressure", "False"), c("DiskPressure", "False"),
            c("PIDPressure", "False"), c("Ready", "True")]}})
}

fn pod(name: &str, tolerations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "uid": name},
        "spec": {"nodeName": "node-2", "tolerations": tolerations},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn down_from(s: u64) -> Faults {
    let mut f = Faults::default();
    f.start(
        &FaultStep {
            node_not_ready: Some(NodeFault {
                node: "node-2".into(),
            }),
            ..FaultStep::default()
        },
        t(s),
    );
    f
}

fn apply(objects: &mut [Value], effects: &[Effect]) {
    // As the applier does: an update replaces the spec, a status update the status.
    for e in effects {
        let (o, part) = match e {
            Effect::Update(o) => (o, "spec"),
            Effect::UpdateStatus(o) => (o, "status"),
            _ => continue,
        };
        if let Some(cur) = objects
            .iter_mut()
            .find(|c| c["kind"] == o["kind"] && meta::name(c) == meta::name(o))
        {
            cur[part] = o.get(part).cloned().unwrap_or_else(|| json!({}));
        }
    }
}

fn events(r: &Reconciled) -> Vec<(String, String, String)> {
    r.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some((
                ev.involved.name.clone(),
                ev.reason.clone(),
                ev.message.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn deleted(r: &Reconciled) -> Vec<String> {
    r.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Delete { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_silent_node_goes_unknown_after_the_grace_period_and_its_pods_are_evicted() {
    let default_tolerations = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    let mut objects = vec![
        node(),
        pod("web", default_tolerations),
        pod(
            "quick",
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]),
        ),
        pod("stays", json!([{"operator": "Exists"}])),
    ];
    let faults = down_from(100);

    // Within the grace period nothing happens; the controller asks to look again at its end.
    let r = reconcile_all(&View(objects.clone()), &faults, t(120));
    assert!(r.effects.is_empty());
    assert_eq!(r.requeue_at, Some(t(140)));

    let r = reconcile_all(&View(objects.clone()), &faults, t(140));
    let status = r
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::UpdateStatus(o) if o["kind"] == "Node" => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    for c in status["status"]["conditions"].as_array().unwrap() {
        assert_eq!(c["status"], "Unknown");
        assert_eq!(c["reason"], "NodeStatusUnknown");
        assert_eq!(c["message"], "Kubelet stopped posting node status.");
        assert_eq!(c["lastHeartbeatTime"], "2025-01-01T00:00:00Z");
        assert_eq!(c["lastTransitionTime"], "2025-01-01T00:02:20Z");
    }
    let ev = events(&r);
    assert_eq!(
        ev[0],
        (
            "node-2".to_owned(),
            "NodeNotReady".to_owned(),
            "Node node-2 status is now: NodeNotReady".to_owned()
        )
    );
    assert!(ev.contains(&(
        "web".to_owned(),
        "NodeNotReady".to_owned(),
        "Node is not ready".to_owned()
    )));
    assert!(deleted(&r).is_empty());
    apply(&mut objects, &r.effects);
    let taints = &objects[0]["spec"]["taints"];
    assert_eq!(
        taints,
        &json!([{"key": UNREACHABLE, "effect": "NoSchedule"},
                {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:02:20Z"}])
    );
    assert_eq!(objects[1]["status"]["conditions"][0]["status"], "False");
    assert_eq!(r.requeue_at, Some(t(150)));

    // Marked once; the pod tolerating 10s goes at 150s, the default 300s at 440s, the one
    // tolerating everything for ever stays.
    let r = reconcile_all(&View(objects.clone()), &faults, t(150));
    assert_eq!(deleted(&r), ["quick"]);
    assert!(events(&r).contains(&(
        "quick".to_owned(),
        "TaintManagerEviction".to_owned(),
        "Marking for deletion Pod apps/quick".to_owned()
    )));
    assert_eq!(r.requeue_at, Some(t(440)));
    let r = reconcile_all(&View(objects.clone()), &faults, t(440));
    assert_eq!(deleted(&r), ["web", "quick"]);
}

#[test]
fn a_node_that_posts_again_is_ready_and_untainted() {
    let mut objects = vec![node()];
    let mut faults = down_from(0);
    let r = reconcile_all(&View(objects.clone()), &faults, t(40));
    apply(&mut objects, &r.effects);
    assert!(is_unknown(&objects[0]));
    faults.end("nodeNotReady", t(60));
    let r = reconcile_all(&View(objects.clone()), &faults, t(60));
    apply(&mut objects, &r.effects);
    assert!(!is_unknown(&objects[0]));
    assert_eq!(
        meta::condition(&objects[0], "Ready").unwrap()["reason"],
        "KubeletReady"
    );
    assert!(objects[0]["spec"].get("taints").is_none());
    let r = reconcile_all(&View(objects.clone()), &faults, t(61));
    assert!(r.effects.is_empty());
}

#[test]
fn tolerations_are_matched_as_the_taint_manager_does() {
    assert_eq!(toleration(&pod("p", json!([]))), Some(0));
    assert_eq!(
        toleration(&pod(
            "p",
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}])
        )),
        None
    );
    assert_eq!(
        toleration(&pod(
            "p",
            json!([{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 30},
                   {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20}])
        )),
        Some(20)
    );
    assert_eq!(
        toleration(&pod("p", json!([{"key": "other", "operator": "Exists"}]))),
        Some(0)
    );
}
