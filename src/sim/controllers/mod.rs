//! The simulated workload controllers: pure reconcile logic over Kubernetes objects.
//!
//! Every controller reads the cluster through [`ClusterView`], takes the current (virtual) time
//! as a parameter and returns what it wants done as data ([`Reconciled`]: a list of [`Effect`]s
//! plus the time it wants to be woken up again). Nothing here talks to a store, a clock or a
//! network; the simulator applies the effects on its virtual clock.
//!
//! One file per controller, named after the real one in `kubernetes/pkg/controller`:
//!
//! - [`deployment`]: ReplicaSets per pod-template-hash, RollingUpdate/Recreate, progress deadline.
//! - [`replicaset`]: pods to match `replicas`, deletion ranking, status.
//! - [`statefulset`]: ordinal pods, claims from `volumeClaimTemplates`, reverse-ordinal updates.
//! - [`daemonset`]: one pod per eligible node.
//! - [`job`] and [`cronjob`] (with [`cron`], the schedule parser).
//! - [`endpoints`]: Service → Endpoints and EndpointSlices, LoadBalancer status.
//! - [`volume`]: PersistentVolume provisioning and binding.
//! - [`attachdetach`]: the attach/detach controller for attachable volumes (Multi-Attach).
//! - [`nodelifecycle`]: nodes whose kubelet stopped posting status, and the taint eviction.
//!
//! Texts that imitate Kubernetes (condition reasons and messages, event reasons and messages)
//! are the real ones, Kubernetes 1.32, with the source file cited beside each.
//!
//! Determinism: outputs never depend on hash-map iteration order or the wall clock; generated
//! names come from a caller-supplied random generator ([`NameGen`]).

pub mod attachdetach;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod job;
pub mod meta;
pub mod nodelifecycle;
pub mod replicaset;
pub mod statefulset;
pub mod volume;

mod names;

#[cfg(test)]
mod rwo_deadlock_tests;
#[cfg(test)]
mod testing;

pub use names::{NameGen, pod_template_hash, safe_encode};

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use crate::sim::events::{Event, EventType, Involved, Reporter};

/// Read-only access to the cluster's objects, as the controllers' informers would give it.
///
/// Implementations return objects in a deterministic order (by namespace, then name); the
/// controllers sort again where the order matters, so any stable order is fine. Lists share
/// the objects ([`Arc`]) rather than copying them: a controller that wants to change one clones
/// it first.
pub trait ClusterView {
    /// One object by API version (`apps/v1`), kind (`Deployment`), namespace and name.
    /// Cluster-scoped kinds are asked for with `namespace == None`.
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value>;

    /// [`ClusterView::get`], sharing the object rather than copying it.
    ///
    /// The default copies what [`ClusterView::get`] returns; the simulator shares its cache's.
    fn get_shared(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Value>> {
        self.get(api_version, kind, namespace, name).map(Arc::new)
    }

    /// All objects of a kind, in one namespace or (with `None`) in all namespaces.
    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>>;

    /// The objects of a kind in `namespace` whose controller reference names `owner_uid`, in
    /// the order of [`ClusterView::list`]. With `orphans`, also those without any controller:
    /// everything a controller may keep or adopt (`ClaimPods`, `ClaimReplicaSets`).
    ///
    /// The default filters [`ClusterView::list`]; the simulator answers from an index.
    fn list_controlled(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        owner_uid: &str,
        orphans: bool,
    ) -> Vec<Arc<Value>> {
        self.list(api_version, kind, namespace)
            .into_iter()
            .filter(|o| match meta::controller_of(o) {
                Some(r) => meta::str_at(r, &["uid"]) == owner_uid,
                None => orphans,
            })
            .collect()
    }
}

/// One change a controller asks for.
///
/// Objects are complete; the applier must not use their `resourceVersion` as a precondition
/// (several effects of one reconcile may touch the same object) and should apply effects in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Create this object (its name is already chosen; `generateName` is informational).
    Create(Value),
    /// Replace the object's metadata (labels, annotations, ownerReferences) and spec; its status
    /// is not to be touched.
    Update(Value),
    /// Replace the object's status (the `status` subresource) with this object's status.
    UpdateStatus(Value),
    /// Delete an object (gracefully, as a controller's DELETE does).
    Delete {
        /// `apiVersion` of the object.
        api_version: String,
        /// `kind` of the object.
        kind: String,
        /// Namespace; `None` for cluster-scoped objects.
        namespace: Option<String>,
        /// Name.
        name: String,
    },
    /// Record an event.
    Event(Event),
    /// A write whose outcome the controller reports in events ([`Reported`]).
    Reported(Box<Reported>),
}

/// A write and the events its controller records about how it went, as the real controller's
/// pod control does (`RealPodControl.CreatePods` and `DeletePod`,
/// `pkg/controller/controller_utils.go`; `recordPodEvent`, `stateful_pod_control.go`).
///
/// When the API server refuses the write, the controller's sync of `owner` fails there: the
/// `refused` events are recorded instead of `done`, nothing else of the owner's sync is done,
/// and the owner's writes wait for the work queue's back-off. Refusals the controllers pass over
/// without an event (a create of an object that already exists or in a terminating namespace,
/// a delete of an object already gone) only leave `done` out.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The object whose sync makes the write (a ReplicaSet for its pods): what the events are
    /// about, and what waits after a refusal.
    pub owner: Involved,
    /// `Create`, `Update`, `UpdateStatus` or `Delete`.
    pub write: Effect,
    /// Recorded once the write is made (`SuccessfulCreate`).
    pub done: Option<Event>,
    /// Recorded when the API server refuses the write, each message followed by the API
    /// server's error as client-go prints it (`FailedCreate`, `Error creating: `).
    pub refused: Vec<Event>,
}

impl Reported {
    /// A write for `owner`, with neither event until [`Reported::done`] and
    /// [`Reported::refused`] add them.
    #[must_use]
    pub fn new(owner: &Value, write: Effect) -> Self {
        Self {
            owner: Involved::of(owner),
            write,
            done: None,
            refused: Vec::new(),
        }
    }

    /// Adds the `Normal` event recorded once the write is made.
    #[must_use]
    pub fn done(mut self, reason: &str, message: String, component: &str) -> Self {
        self.done = Some(Event::new(
            EventType::Normal,
            reason,
            message,
            self.owner.clone(),
            Reporter::new(component),
        ));
        self
    }

    /// Adds a `Warning` event recorded when the write is refused: `prefix` followed by the
    /// API server's error.
    #[must_use]
    pub fn refused(mut self, reason: &str, prefix: String, component: &str) -> Self {
        self.refused.push(Event::new(
            EventType::Warning,
            reason,
            prefix,
            self.owner.clone(),
            Reporter::new(component),
        ));
        self
    }
}

impl Effect {
    /// A deletion of the given object.
    #[must_use]
    pub fn delete_of(obj: &Value) -> Self {
        Self::Delete {
            api_version: meta::str_at(obj, &["apiVersion"]).to_owned(),
            kind: meta::str_at(obj, &["kind"]).to_owned(),
            namespace: meta::namespace(obj).map(str::to_owned),
            name: meta::name(obj).to_owned(),
        }
    }
}

/// What one reconcile wants: the effects, in order, and when to be woken up again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciled {
    /// Changes to apply, in order.
    pub effects: Vec<Effect>,
    /// The earliest time the controller must run again even if nothing changes
    /// (a progress deadline, `minReadySeconds`, a back-off, a cron schedule).
    pub requeue_at: Option<Timestamp>,
}

impl Reconciled {
    /// Adds an effect.
    pub fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Records an event about `obj`.
    pub fn event(
        &mut self,
        obj: &Value,
        event_type: EventType,
        reason: &str,
        message: String,
        component: impl Into<String>,
    ) {
        self.effects.push(Effect::Event(Event::new(
            event_type,
            reason,
            message,
            Involved::of(obj),
            Reporter::new(component),
        )));
    }

    /// Adds a write reported in events.
    pub fn reported(&mut self, reported: Reported) {
        self.effects.push(Effect::Reported(Box::new(reported)));
    }

    /// Asks to be woken up at `at` (keeps the earliest of all requests).
    pub fn wake_at(&mut self, at: Timestamp) {
        self.requeue_at = Some(match self.requeue_at {
            Some(current) if current <= at => current,
            _ => at,
        });
    }

    /// Appends another reconcile's effects and keeps the earliest wake-up.
    pub fn merge(&mut self, other: Reconciled) {
        self.effects.extend(other.effects);
        if let Some(at) = other.requeue_at {
            self.wake_at(at);
        }
    }

    /// The events among the effects, with those recorded once a reported write is made
    /// (handy for callers and tests).
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.effects.iter().filter_map(|e| match e {
            Effect::Event(ev) => Some(ev),
            Effect::Reported(r) => r.done.as_ref(),
            _ => None,
        })
    }

    /// The writes among the effects, reported ones included, in order.
    pub fn writes(&self) -> impl Iterator<Item = &Effect> {
        self.effects.iter().filter_map(|e| match e {
            Effect::Event(_) => None,
            Effect::Reported(r) => Some(&r.write),
            write => Some(write),
        })
    }
}
