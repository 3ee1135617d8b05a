//! The parts of the control loop behind one interface, and the order a round runs them in.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::apply::{Refusals, Target};
use super::nodes::Nodes;
use super::queue::{Retries, WorkQueue};
use super::view::StoreView;
use crate::scenario::ImageBehaviour;
use crate::sim::behaviour::{StatusReport, Work};
use crate::sim::clock::format_time;
use crate::sim::controllers::attachdetach::AttachDetachController;
use crate::sim::controllers::endpoints::LoadBalancerMode;
use crate::sim::controllers::volume::VolumeController;
use crate::sim::controllers::{
    NameGen, Reconciled, cronjob, daemonset, deployment, endpoints, job, nodelifecycle, replicaset,
    statefulset,
};
use crate::sim::events::{Event, EventRecorder, Involved, Reporter};
use crate::sim::gitops::argocd::ArgoCd;
use crate::sim::store::{ApiError, Part, Store, WriteOptions};

/// The name of the node agents' part, which also runs on its own between rounds.
pub(crate) const KUBELET: &str = "kubelet";

/// The name of the operators' part, which runs with the node agents between rounds.
pub(crate) const OPERATORS: &str = "operators";

/// What a part of the control loop works with in one round.
pub(crate) struct Context<'a> {
    /// The object store, for the parts that write to it themselves (the scheduler, the node
    /// agents, the operators); the controllers only read.
    pub store: &'a Store,
    /// The cluster as the informers show it.
    pub view: &'a StoreView<'a>,
    /// The simulated instant.
    pub now: Timestamp,
    /// The generator of pod and object names.
    pub names: &'a mut NameGen,
    /// What each image's containers do.
    pub images: &'a BTreeMap<String, ImageBehaviour>,
    /// The event recorder of the parts that record their own events.
    pub recorder: &'a mut EventRecorder,
    /// The scheduler's and the node agents' memory.
    pub nodes: &'a mut Nodes,
    /// Where a part that writes itself notes the writes the store refused.
    pub refusals: &'a mut Refusals,
    /// Who assigns LoadBalancer addresses now (a step can switch it).
    pub load_balancer: LoadBalancerMode,
    /// Its failed syncs due again and those still waiting, for its work queue.
    pub retries: &'a Retries,
}

/// The work queue's back-off after a failed sync: `base * 2^(failures - 1)`, at most `max`
/// (`ItemExponentialFailureRateLimiter`, client-go util/workqueue/default_rate_limiters.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryBackoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryBackoff {
    /// `workqueue.DefaultTypedControllerRateLimiter`: 5 ms doubling up to 1000 s (its overall
    /// 10 qps bucket never binds here).
    pub const CONTROLLER: Self = Self {
        base: Duration::from_millis(5),
        max: Duration::from_secs(1000),
    };

    /// The Job controller's own queue: `DefaultJobApiBackOff` (1 s) up to `MaxJobApiBackOff`
    /// (1 min), pkg/controller/job/job_controller.go.
    pub const JOB: Self = Self {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    /// The delay after the `failures`-th failure in a row.
    #[must_use]
    pub fn delay(self, failures: u32) -> Duration {
        let factor = 1_u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// One part of the control loop: a controller, the scheduler, the node agents, the operators.
pub(crate) trait Controller: std::fmt::Debug + Send {
    /// Its name, as its events' `source.component` says (`replicaset-controller`).
    fn name(&self) -> &'static str;

    /// Brings everything it is responsible for a step closer to what is wanted. The writes
    /// and events it returns are applied in order after it returns; the scheduler and the node
    /// agents write themselves and return nothing to apply.
    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled;

    /// How long an object whose sync failed waits before it is synced again.
    fn retry(&self) -> RetryBackoff {
        RetryBackoff::CONTROLLER
    }

    /// The kinds (`apiVersion`, `kind`) of the objects it makes for an owner: a change to one
    /// of an owner's syncs the owner again at once, back-off or not, as the controller's
    /// informer handlers enqueue it.
    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Its work queue, for a controller that reconciles only what changed (the workload,
    /// endpoint and volume controllers; the scheduler and the node agents keep their own
    /// account of what changed; the node lifecycle controller and the operators run every
    /// round, see theirs).
    fn queue(&self) -> Option<&WorkQueue> {
        None
    }

    /// See [`Controller::queue`].
    fn queue_mut(&mut self) -> Option<&mut WorkQueue> {
        None
    }

    /// The Argo CD stand-in, for the part that runs it (its repositories take commits).
    fn argocd(&mut self) -> Option<&mut ArgoCd> {
        None
    }
}

/// The [`Controller::queue`] methods of a controller with a `queue` field.
macro_rules! with_queue {
    () => {
        fn queue(&self) -> Option<&WorkQueue> {
            Some(&self.queue)
        }

        fn queue_mut(&mut self) -> Option<&mut WorkQueue> {
            Some(&mut self.queue)
        }
    };
}

const PODS: &[(&str, &str)] = &[("v1", "Pod")];

/// The node lifecycle controller, with the taint eviction controller.
///
/// It runs every round rather than from a work queue: what it acts on is a node's kubelet
/// going silent, a fault that is no object in the store and so never reaches a queue's change
/// journal. A round with no node down only looks at the nodes. Its wake-ups (the end of the
/// grace period, a toleration running out) are kept by the engine.
#[derive(Debug)]
struct NodeLifecycle;

impl Controller for NodeLifecycle {
    fn name(&self) -> &'static str {
        nodelifecycle::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        use crate::sim::behaviour::ClusterViewExt;
        nodelifecycle::reconcile_all(cx.view, cx.view.faults(), cx.now)
    }
}

/// The Deployment controller.
#[derive(Debug)]
struct Deployments {
    queue: WorkQueue,
}

impl Controller for Deployments {
    fn name(&self) -> &'static str {
        deployment::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let now = cx.now;
        self.queue.run(cx.view, now, cx.retries, |v, (ns, name)| {
            deployment::reconcile(v, ns, name, now)
        })
    }

    with_queue!();

    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        &[("apps/v1", "ReplicaSet")]
    }
}

/// The ReplicaSet controller.
#[derive(Debug)]
struct ReplicaSets {
    queue: WorkQueue,
}

impl Controller for ReplicaSets {
    fn name(&self) -> &'static str {
        replicaset::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let (now, names) = (cx.now, &mut *cx.names);
        self.queue.run(cx.view, now, cx.retries, |v, (ns, name)| {
            replicaset::reconcile(v, ns, name, now, names)
        })
    }

    with_queue!();

    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        PODS
    }
}

/// The StatefulSet controller.
#[derive(Debug)]
struct StatefulSets {
    queue: WorkQueue,
}

impl Controller for StatefulSets {
    fn name(&self) -> &'static str {
        statefulset::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let now = cx.now;
        self.queue.run(cx.view, now, cx.retries, |v, (ns, name)| {
            statefulset::reconcile(v, ns, name, now)
        })
    }

    with_queue!();

    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        PODS
    }
}

/// The DaemonSet controller.
#[derive(Debug)]
struct DaemonSets {
    queue: WorkQueue,
}

impl Controller for DaemonSets {
    fn name(&self) -> &'static str {
        daemonset::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let (now, names) = (cx.now, &mut *cx.names);
        self.queue.run(cx.view, now, cx.retries, |v, (ns, name)| {
            daemonset::reconcile(v, ns, name, now, names)
        })
    }

    with_queue!();

    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        PODS
    }
}

/// The Job controller.
#[derive(Debug)]
struct Jobs {
    queue: WorkQueue,
}

impl Controller for Jobs {
    fn name(&self) -> &'static str {
        job::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let (now, names) = (cx.now, &mut *cx.names);
        self.queue.run(cx.view, now, cx.retries, |v, (ns, name)| {
            job::reconcile(v, ns, name, now, names)
        })
    }

    with_queue!();

    fn retry(&self) -> RetryBackoff {
        RetryBackoff::JOB
    }

    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        PODS
    }
}

/// The CronJob controller.
#[derive(Debug)]
struct CronJobs {
    queue: WorkQueue,
}

impl Controller for CronJobs {
    fn name(&self) -> &'static str {
        cronjob::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let now = cx.now;
        self.queue.run(cx.view, now, cx.retries, |v, (ns, name)| {
            cronjob::reconcile(v, ns, name, now)
        })
    }

    with_queue!();

    fn owns(&self) -> &'static [(&'static str, &'static str)] {
        &[("batch/v1", "Job")]
    }
}

/// The endpoint and EndpointSlice controllers, and the LoadBalancer implementation.
#[derive(Debug)]
struct Endpoints {
    /// The LoadBalancer implementation of its last pass: when a step switches it, every
    /// Service is queued again, as its status depends on it.
    load_balancer: Option<LoadBalancerMode>,
    queue: WorkQueue,
}

impl Controller for Endpoints {
    fn name(&self) -> &'static str {
        "endpoint-controller"
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let lb = cx.load_balancer;
        if self.load_balancer.replace(lb) != Some(lb) {
            self.queue.requeue_all();
        }
        let names = &mut *cx.names;
        self.queue
            .run(cx.view, cx.now, cx.retries, |v, (ns, name)| {
                endpoints::reconcile(v, ns, name, names, lb)
            })
    }

    with_queue!();
}

/// The PersistentVolume controller, which looks at every claim at once (a single key).
#[derive(Debug)]
struct Volumes {
    controller: VolumeController,
    queue: WorkQueue,
}

impl Controller for Volumes {
    fn name(&self) -> &'static str {
        crate::sim::controllers::volume::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let (now, names, controller) = (cx.now, &mut *cx.names, &mut self.controller);
        self.queue.run(cx.view, now, cx.retries, |v, _| {
            controller.reconcile_all(v, now, names)
        })
    }

    with_queue!();
}

/// The attach/detach controller, which looks at every attachment at once (a single key).
#[derive(Debug)]
struct Attachments {
    controller: AttachDetachController,
    queue: WorkQueue,
}

impl Controller for Attachments {
    fn name(&self) -> &'static str {
        crate::sim::controllers::attachdetach::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let (now, controller) = (cx.now, &mut self.controller);
        self.queue.run(cx.view, now, cx.retries, |v, _| {
            controller.reconcile(v, now)
        })
    }

    with_queue!();
}

/// kube-scheduler.
#[derive(Debug)]
struct Scheduler;

impl Controller for Scheduler {
    fn name(&self) -> &'static str {
        crate::sim::scheduler::SCHEDULER_NAME
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        cx.nodes.schedule(cx.store, cx.view, cx.recorder, cx.now);
        Reconciled::default()
    }
}

/// Every node's kubelet.
#[derive(Debug)]
struct Kubelets;

impl Controller for Kubelets {
    fn name(&self) -> &'static str {
        KUBELET
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        cx.nodes.sync_membership(cx.store, cx.view, cx.now);
        cx.nodes
            .sync(cx.store, cx.view, cx.images, cx.recorder, cx.now);
        Reconciled::default()
    }
}

/// The declarative operators the containers' programs run.
///
/// They run every round rather than from a work queue: their work follows the programs'
/// state in the node agents (a program that started, a requirement that now holds), not the
/// objects alone, and the writes they make are compared with what is stored first.
#[derive(Debug)]
struct Operators;

impl Controller for Operators {
    fn name(&self) -> &'static str {
        OPERATORS
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        for work in cx.nodes.operator_work(cx.view) {
            let (result, target) = match &work {
                Work::Own(obj) => (
                    ensure_owned(cx.store, obj),
                    Target::of("create or update", obj),
                ),
                Work::Report(r) => (
                    write_report(cx.store, cx.recorder, cx.now, r),
                    Target::of("update status of", &r.object),
                ),
            };
            if let Err(err) = result {
                cx.refusals.record(cx.now, self.name(), target, err);
            }
        }
        Reconciled::default()
    }
}

/// Argo CD's application controller, when the scenario enables it.
///
/// It runs every round, after the node agents and operators, rather than from a work queue:
/// like the real one, it compares each Application with whatever changed in the cluster, and
/// it writes an Application's status only when the status changes.
#[derive(Debug)]
pub(crate) struct GitOps {
    argocd: ArgoCd,
}

impl GitOps {
    /// The part running `argocd`.
    pub(crate) fn new(argocd: ArgoCd) -> Self {
        Self { argocd }
    }
}

impl Controller for GitOps {
    fn name(&self) -> &'static str {
        crate::sim::gitops::argocd::COMPONENT
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        Reconciled {
            effects: Vec::new(),
            requeue_at: self.argocd.reconcile(cx.recorder, cx.now),
        }
    }

    fn argocd(&mut self) -> Option<&mut ArgoCd> {
        Some(&mut self.argocd)
    }
}

/// Every part of the control loop, in the order one round runs them: the node lifecycle
/// controller (so pods evicted from a silent node are replaced in the same round), the workload controllers
/// (owners before what they own, so a Deployment's ReplicaSet gets its pods in the same round),
/// the endpoint and volume controllers, then the scheduler, the node agents and the operators
/// on the nodes.
pub(crate) fn control_loop(
    volumes: VolumeController,
    attach: AttachDetachController,
) -> Vec<Box<dyn Controller>> {
    vec![
        Box::new(NodeLifecycle),
        Box::new(Deployments {
            queue: WorkQueue::of("apps/v1", "Deployment"),
        }),
        Box::new(ReplicaSets {
            queue: WorkQueue::of("apps/v1", "ReplicaSet"),
        }),
        Box::new(StatefulSets {
            queue: WorkQueue::of("apps/v1", "StatefulSet"),
        }),
        Box::new(DaemonSets {
            queue: WorkQueue::of("apps/v1", "DaemonSet"),
        }),
        Box::new(Jobs {
            queue: WorkQueue::of("batch/v1", "Job"),
        }),
        Box::new(CronJobs {
            queue: WorkQueue::of("batch/v1", "CronJob"),
        }),
        Box::new(Endpoints {
            load_balancer: None,
            queue: WorkQueue::of("v1", "Service"),
        }),
        Box::new(Volumes {
            controller: volumes,
            queue: WorkQueue::single(),
        }),
        Box::new(Attachments {
            controller: attach,
            queue: WorkQueue::single(),
        }),
        Box::new(Scheduler),
        Box::new(Kubelets),
        Box::new(Operators),
    ]
}

/// Writes what an operator reports into the watched object's status: each condition replaces
/// the one of its type, keeping `lastTransitionTime` unless the status changed (as
/// `meta.SetStatusCondition` does, apimachinery pkg/api/meta/conditions.go), and the other
/// fields are merged in (a `null` field is removed). When a reported condition is new or
/// differs from the one in place (or, for a report without conditions, when its fields change
/// the status), the report's event is recorded on the object. A report that changes nothing writes nothing.
fn write_report(
    store: &Store,
    recorder: &mut EventRecorder,
    now: Timestamp,
    report: &StatusReport,
) -> Result<(), ApiError> {
    let obj = &report.object;
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let ns = obj["metadata"]["namespace"].as_str();
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let Some(res) = store.resource_for_kind(api_version, kind) else {
        return Ok(());
    };
    let mut changed = false;
    let written = store.modify(
        &res,
        ns,
        name,
        Part::Status,
        &WriteOptions::default(),
        |current| {
            let Some(cur) = current.filter(|c| c["metadata"]["uid"].as_str() == Some(uid)) else {
                return Err(ApiError::not_found(&res, name));
            };
            let mut next = cur.clone();
            if !next["status"].is_object() {
                next["status"] = json!({});
            }
            if let Some(Value::Object(fields)) = &report.status {
                for (k, v) in fields {
                    // `null` removes a field, as an omitted `omitempty` field disappears.
                    match (v, next["status"].as_object_mut()) {
                        (Value::Null, Some(status)) => {
                            status.remove(k);
                        }
                        _ => next["status"][k] = v.clone(),
                    }
                }
            }
            let mut conditions: Vec<Value> = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for want in &report.conditions {
                let mut cond = want.clone();
                match conditions.iter_mut().find(|c| c["type"] == want["type"]) {
                    Some(have) => {
                        let same = |k: &str| have[k] == want[k];
                        if !(same("status") && same("reason") && same("message")) {
                            changed = true;
                        }
                        cond["lastTransitionTime"] = if same("status") {
                            have["lastTransitionTime"].clone()
                        } else {
                            json!(format_time(now))
                        };
                        *have = cond;
                    }
                    None => {
                        changed = true;
                        cond["lastTransitionTime"] = json!(format_time(now));
                        conditions.push(cond);
                    }
                }
            }
            if report.conditions.is_empty() {
                // Without conditions to compare, a change of the reported fields is the change.
                changed = next["status"] != cur["status"];
            } else {
                next["status"]["conditions"] = Value::Array(conditions);
            }
            Ok(next)
        },
    );
    written?;
    if changed && let Some((type_, reason, message)) = &report.event {
        let event = Event::new(
            *type_,
            reason.clone(),
            message.clone(),
            Involved::of(obj),
            Reporter::new(report.source.clone()),
        );
        recorder.record(store, now, &event);
    }
    Ok(())
}

/// Makes an operator's owned object exist as the operator wants it: created when missing,
/// otherwise its spec, labels, annotations and owner references brought in line (the store
/// ignores writes that change nothing).
fn ensure_owned(store: &Store, desired: &Value) -> Result<(), ApiError> {
    let api_version = desired["apiVersion"].as_str().unwrap_or_default();
    let kind = desired["kind"].as_str().unwrap_or_default();
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let ns = desired["metadata"]["namespace"].as_str();
    // An operator whose kind is not served yet waits for it (its program logs that).
    let Some(res) = store.resource_for_kind(api_version, kind) else {
        return Ok(());
    };
    store
        .modify(
            &res,
            ns,
            name,
            Part::Main,
            &WriteOptions::default(),
            |current| {
                let Some(cur) = current else {
                    return Ok(desired.clone());
                };
                if cur["metadata"]["deletionTimestamp"].is_string() {
                    return Ok(cur.clone());
                }
                let mut next = cur.clone();
                for (k, v) in desired.as_object().into_iter().flatten() {
                    if !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind") {
                        merge_desired(&mut next[k], v);
                    }
                }
                for field in ["labels", "annotations"] {
                    if let Some(m) = desired["metadata"][field].as_object() {
                        for (k, v) in m {
                            next["metadata"][field][k] = v.clone();
                        }
                    }
                }
                next["metadata"]["ownerReferences"] =
                    desired["metadata"]["ownerReferences"].clone();
                Ok(next)
            },
        )
        .map(|_| ())
}

/// Brings `current` in line with `desired` the way an operator's mutate function does: every
/// field it sets is set, fields it does not mention (the API server's defaults: a Service's
/// `clusterIP`, its ports' `nodePort` and `protocol`) are kept. Lists of the same length are
/// brought in line element by element; other lists are replaced.
fn merge_desired(current: &mut Value, desired: &Value) {
    match (current, desired) {
        (Value::Object(cur), Value::Object(want)) => {
            for (k, v) in want {
                merge_desired(cur.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(cur), Value::Array(want)) if cur.len() == want.len() => {
            for (c, w) in cur.iter_mut().zip(want) {
                merge_desired(c, w);
            }
        }
        (cur, want) => *cur = want.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_objects_keep_the_servers_defaults() {
        let mut current = json!({"type": "NodePort", "clusterIP": "10.43.0.7",
            "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]});
        merge_desired(
            &mut current,
            &json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        );
        assert_eq!(
            current,
            json!({"type": "LoadBalancer", "clusterIP": "10.43.0.7",
                   "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]})
        );
        merge_desired(
            &mut current,
            &json!({"ports": [{"port": 80}, {"port": 443}]}),
        );
        assert_eq!(current["ports"], json!([{"port": 80}, {"port": 443}]));
    }

    #[test]
    fn retries_double_up_to_the_limit() {
        let b = RetryBackoff::CONTROLLER;
        assert_eq!(b.delay(1), Duration::from_millis(5));
        assert_eq!(b.delay(2), Duration::from_millis(10));
        assert_eq!(b.delay(18), Duration::from_millis(655_360));
        assert_eq!(b.delay(19), Duration::from_secs(1000));
        assert_eq!(b.delay(500), Duration::from_secs(1000));
        assert_eq!(RetryBackoff::JOB.delay(7), Duration::from_secs(60));
    }

    #[test]
    fn the_round_runs_owners_before_what_they_own() {
        let names: Vec<&str> = control_loop(
            VolumeController::default(),
            AttachDetachController::default(),
        )
        .iter()
        .map(|c| c.name())
        .collect();
        assert_eq!(
            names,
            [
                "node-controller",
                "deployment-controller",
                "replicaset-controller",
                "statefulset-controller",
                "daemonset-controller",
                "job-controller",
                "cronjob-controller",
                "endpoint-controller",
                "persistentvolume-controller",
                "attachdetach-controller",
                "default-scheduler",
                "kubelet",
                "operators",
            ]
        );
    }
}
