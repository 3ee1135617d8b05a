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

/// Whether an event is informational or a warning (`Event.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The value of `Event.type`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// The object an event is about (`Event.involvedObject`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID, when the object has one yet.
    pub uid: Option<String>,
}

impl ObjectRef {
    /// The reference to an object as stored.
    #[must_use]
    pub fn of(obj: &Value) -> Self {
        Self {
            api_version: meta::str_at(obj, &["apiVersion"]).to_owned(),
            kind: meta::str_at(obj, &["kind"]).to_owned(),
            namespace: meta::namespace(obj).map(str::to_owned),
            name: meta::name(obj).to_owned(),
            uid: meta::uid(obj).map(str::to_owned),
        }
    }
}

/// An event a controller records (the simulator turns it into a core/v1 Event and counts repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What the event is about.
    pub involved: ObjectRef,
    /// `Normal` or `Warning`.
    pub event_type: EventType,
    /// Machine-readable reason (`ScalingReplicaSet`).
    pub reason: String,
    /// Human-readable message, exactly as the real controller words it.
    pub message: String,
    /// `source.component` (`deployment-controller`).
    pub component: String,
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
        self.effects.push(Effect::Event(Event {
            involved: ObjectRef::of(obj),
            event_type,
            reason: reason.to_owned(),
            message,
            component: component.into(),
        }));
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

    /// The events among the effects (handy for callers and tests).
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.effects.iter().filter_map(|e| match e {
            Effect::Event(ev) => Some(ev),
            _ => None,
        })
    }
}
