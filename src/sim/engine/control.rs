//! The parts of the control loop behind one interface, and the order a round runs them in.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::apply::{Refusals, Target};
use super::nodes::Nodes;
use super::queue::{Retries, WorkQueue};
use super::view::StoreView;
use crate::scenario::ImageBehaviour;
use crate::sim::controllers::attachdetach::AttachDetachController;
use crate::sim::controllers::endpoints::LoadBalancerMode;
use crate::sim::controllers::volume::VolumeController;
use crate::sim::controllers::{
    NameGen, Reconciled, cronjob, daemonset, deployment, endpoints, job, replicaset, statefulset,
};
use crate::sim::events::EventRecorder;
use crate::sim::store::{ApiError, Part, Store, WriteOptions};

/// The name of the node agents' part, which also runs on its own between rounds.
pub(crate) const KUBELET: &str = "kubelet";

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

    /// Its work queue, for a controller that reconciles only what changed (all of them; the
    /// scheduler and the node agents keep their own account of what changed).
    fn queue(&self) -> Option<&WorkQueue> {
        None
    }

    /// See [`Controller::queue`].
    fn queue_mut(&mut self) -> Option<&mut WorkQueue> {
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
    load_balancer: LoadBalancerMode,
    queue: WorkQueue,
}

impl Controller for Endpoints {
    fn name(&self) -> &'static str {
        "endpoint-controller"
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        let (lb, names) = (self.load_balancer, &mut *cx.names);
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
        cx.nodes
            .sync(cx.store, cx.view, cx.images, cx.recorder, cx.now);
        Reconciled::default()
    }
}

/// The declarative operators the containers' programs run.
#[derive(Debug)]
struct Operators;

impl Controller for Operators {
    fn name(&self) -> &'static str {
        "operators"
    }

    fn reconcile(&mut self, cx: &mut Context<'_>) -> Reconciled {
        for obj in cx.nodes.desired_objects(cx.view) {
            if let Err(err) = ensure_owned(cx.store, &obj) {
                let target = Target::of("create or update", &obj);
                cx.refusals.record(cx.now, self.name(), target, err);
            }
        }
        Reconciled::default()
    }
}

/// Every part of the control loop, in the order one round runs them: the workload controllers
/// (owners before what they own, so a Deployment's ReplicaSet gets its pods in the same round),
/// the endpoint and volume controllers, then the scheduler, the node agents and the operators
/// on the nodes.
pub(crate) fn control_loop(
    load_balancer: LoadBalancerMode,
    volumes: VolumeController,
    attach: AttachDetachController,
) -> Vec<Box<dyn Controller>> {
    vec![
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
            load_balancer,
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
                        next[k] = v.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

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
            LoadBalancerMode::None,
            VolumeController::default(),
            AttachDetachController::default(),
        )
        .iter()
        .map(|c| c.name())
        .collect();
        assert_eq!(
            names,
            [
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
