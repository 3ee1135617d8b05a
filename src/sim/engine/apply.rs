//! Applying what a controller asked for, as its client and work queue would: writes in order,
//! refused writes reported as the real controller reports them, failed syncs retried after
//! the work queue's back-off.
//!
//! A write the store refuses is never dropped. It is kept as a [`RefusedWrite`] (the engine's
//! diagnostic, for failure reports), and a reported write ([`Reported`]) becomes the events the
//! real controller records, its message followed by the API server's error as client-go prints
//! it (`Error creating: pods "web-x" is forbidden: ...`). The refusal ends the owner's sync:
//! nothing more of it is done in that reconcile, and until its retry the owner is not synced
//! at all, unless the owner or one of the objects it made changes, which syncs it again at once
//! (the controller's informer handlers enqueue it without waiting).
//!
//! Not imitated: the real sync's writes after a failure (the ReplicaSet's `ReplicaFailure` and
//! the Deployment's `ReplicaSetCreateError` conditions), the slow-start batches that let a
//! burst of creates go on past a refusal, and the work queue's overall rate limit.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use jiff::Timestamp;
use serde_json::Value;

use super::control::Controller;
use super::queue::Retries;
use super::view::StoreView;
use crate::sim::controllers::meta;
use crate::sim::controllers::{ClusterView as _, Effect, Reconciled, Reported};
use crate::sim::events::{EventRecorder, Involved};
use crate::sim::store::{ApiError, DeleteOptions, Part, Reason, Store, WriteOptions};

/// The object of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `create`, `update`, `update status`, `delete` or `create or update`.
    pub verb: &'static str,
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl Target {
    /// The write `verb` of `obj`.
    #[must_use]
    pub fn of(verb: &'static str, obj: &Value) -> Self {
        Self {
            verb,
            api_version: meta::str_at(obj, &["apiVersion"]).to_owned(),
            kind: meta::str_at(obj, &["kind"]).to_owned(),
            namespace: meta::namespace(obj).map(str::to_owned),
            name: meta::name(obj).to_owned(),
        }
    }

    /// The object of a write effect; `None` for an event.
    fn of_effect(effect: &Effect) -> Option<Self> {
        match effect {
            Effect::Create(obj) => Some(Self::of("create", obj)),
            Effect::Update(obj) => Some(Self::of("update", obj)),
            Effect::UpdateStatus(obj) => Some(Self::of("update status", obj)),
            Effect::Delete {
                api_version,
                kind,
                namespace,
                name,
            } => Some(Self {
                verb: "delete",
                api_version: api_version.clone(),
                kind: kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            }),
            Effect::Event(_) => None,
            Effect::Reported(r) => Self::of_effect(&r.write),
        }
    }
}

/// A write the store refused, as the engine keeps it for whoever reports a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedWrite {
    /// The component that asked (`replicaset-controller`, `operators`).
    pub controller: &'static str,
    /// What it asked for.
    pub target: Target,
    /// The API server's answer.
    pub error: ApiError,
    /// The first simulated instant it was refused at.
    pub first: Timestamp,
    /// The last one.
    pub last: Timestamp,
    /// How many times the same write was refused the same way.
    pub count: u32,
}

impl std::fmt::Display for RefusedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.target;
        let object = match &t.namespace {
            Some(ns) => format!("{} {ns}/{}", t.kind, t.name),
            None => format!("{} {}", t.kind, t.name),
        };
        write!(
            f,
            "{}: {} {object} refused: {}",
            self.controller, t.verb, self.error
        )?;
        if self.count > 1 {
            write!(f, " ({} times)", self.count)?;
        }
        Ok(())
    }
}

/// Every refused write, in the order first refused; a repeat of the same write refused the same
/// way counts in the first one.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    list: Vec<RefusedWrite>,
}

impl Refusals {
    /// Keeps a refusal.
    pub fn record(
        &mut self,
        at: Timestamp,
        controller: &'static str,
        target: Target,
        error: ApiError,
    ) {
        if let Some(same) = self
            .list
            .iter_mut()
            .find(|r| r.controller == controller && r.target == target && r.error == error)
        {
            same.last = at;
            same.count += 1;
            return;
        }
        self.list.push(RefusedWrite {
            controller,
            target,
            error,
            first: at,
            last: at,
            count: 1,
        });
    }

    /// All of them.
    pub fn all(&self) -> &[RefusedWrite] {
        &self.list
    }
}

/// An owner whose last sync failed.
#[derive(Debug, Clone)]
struct Failed {
    owner: Involved,
    /// Failed syncs in a row.
    failures: u32,
    /// When it is synced again.
    retry_at: Timestamp,
    /// The owner and what it made, as they were after the failure.
    fingerprint: u64,
}

/// The work queues' memory of failed syncs: by controller, then by owner.
#[derive(Debug, Default)]
pub(crate) struct FailedSyncs {
    failed: BTreeMap<&'static str, BTreeMap<String, Failed>>,
}

impl FailedSyncs {
    /// The failed syncs of `controller` (which makes objects of the `owns` kinds) due again at
    /// `now`, and those still waiting: what its work queue queues and passes over.
    pub fn retries_of(
        &self,
        controller: &str,
        view: &StoreView<'_>,
        now: Timestamp,
        owns: &[(&str, &str)],
    ) -> Retries {
        let mut retries = Retries::default();
        for f in self
            .failed
            .get(controller)
            .into_iter()
            .flat_map(BTreeMap::values)
        {
            let key = (
                f.owner.namespace.clone().unwrap_or_default(),
                f.owner.name.clone(),
            );
            if waits(f, view, now, owns) {
                retries.waiting.insert(key);
            } else {
                retries.due.push(key);
            }
        }
        retries
    }

    /// The earliest retry after `now`.
    pub fn next_retry(&self, now: Timestamp) -> Option<Timestamp> {
        self.retries().filter(|t| *t > now).min()
    }

    /// Whether a retry is due at `now`.
    pub fn retry_due(&self, now: Timestamp) -> bool {
        self.retries().any(|t| t <= now)
    }

    fn retries(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.failed
            .values()
            .flat_map(BTreeMap::values)
            .map(|f| f.retry_at)
    }
}

/// Whether a failed sync still waits for its retry: its back-off is not over and neither the
/// owner nor what it made changed.
fn waits(f: &Failed, view: &StoreView<'_>, now: Timestamp, owns: &[(&str, &str)]) -> bool {
    f.retry_at > now && fingerprint(view, &f.owner, owns) == f.fingerprint
}

/// The owner and the objects of the `owns` kinds it controls, by resourceVersion: what the
/// controller's informers would enqueue the owner for.
fn fingerprint(view: &StoreView<'_>, owner: &Involved, owns: &[(&str, &str)]) -> u64 {
    let mut h = DefaultHasher::new();
    let ns = owner.namespace.as_deref();
    let rv = |o: &Value| meta::str_at(o, &["metadata", "resourceVersion"]).to_owned();
    view.get(&owner.api_version, &owner.kind, ns, &owner.name)
        .map(|o| (meta::uid(&o).map(str::to_owned), rv(&o)))
        .hash(&mut h);
    if let Some(uid) = &owner.uid {
        for (api_version, kind) in owns {
            for o in view.list_controlled(api_version, kind, ns, uid, false) {
                (meta::name(&o), rv(&o)).hash(&mut h);
            }
        }
    }
    h.finish()
}

/// Whether an effect belongs to the sync of `owner`: a write reported for it, an event about
/// it, a write of the owner itself or of an object it controls.
fn concerns(effect: &Effect, owner: &Involved) -> bool {
    let is_owner = |obj: &Value| match (meta::uid(obj), owner.uid.as_deref()) {
        (Some(uid), Some(owner_uid)) => uid == owner_uid,
        _ => Involved::of(obj) == *owner,
    };
    let controlled = |obj: &Value| {
        meta::controller_of(obj)
            .is_some_and(|r| owner.uid.as_deref() == Some(meta::str_at(r, &["uid"])))
    };
    match effect {
        Effect::Reported(r) => r.owner == *owner,
        Effect::Event(ev) => ev.involved == *owner,
        Effect::Create(obj) | Effect::Update(obj) | Effect::UpdateStatus(obj) => {
            is_owner(obj) || controlled(obj)
        }
        Effect::Delete {
            api_version,
            kind,
            namespace,
            name,
        } => {
            *api_version == owner.api_version
                && *kind == owner.kind
                && *namespace == owner.namespace
                && *name == owner.name
        }
    }
}

/// Refusals every controller passes over without an event: a create of an object that already
/// exists or into a namespace being deleted (`apierrors.IsAlreadyExists`,
/// `HasStatusCause(err, v1.NamespaceTerminatingCause)`), a delete of an object already gone
/// (`apierrors.IsNotFound`), all in pkg/controller/controller_utils.go and the controllers.
fn passed_over(write: &Effect, err: &ApiError) -> bool {
    match write {
        Effect::Create(_) => err.reason == Reason::AlreadyExists || err.is_namespace_terminating(),
        Effect::Delete { .. } => err.reason == Reason::NotFound,
        _ => false,
    }
}

/// What one controller's effects are applied with.
pub(crate) struct Apply<'a> {
    /// Where the writes go.
    pub store: &'a Store,
    /// The informers' view, for the retry bookkeeping.
    pub view: &'a StoreView<'a>,
    /// The simulated instant.
    pub now: Timestamp,
    /// The controllers' event recorder.
    pub recorder: &'a mut EventRecorder,
    /// Failed syncs.
    pub failed: &'a mut FailedSyncs,
    /// Refused writes.
    pub refusals: &'a mut Refusals,
}

impl Apply<'_> {
    /// Applies a controller's effects in order; returns the positions of the writes the store
    /// refused (not those a controller passes over) for its work queue.
    pub fn run(self, controller: &dyn Controller, out: Reconciled) -> BTreeSet<usize> {
        let name = controller.name();
        let Self {
            store,
            view,
            now,
            recorder,
            failed,
            refusals,
        } = self;
        let owns = controller.owns();
        let failed = failed.failed.entry(name).or_default();
        // Owners waiting for their retry are not synced; those whose sync fails now stop there.
        let waiting: BTreeSet<String> = failed
            .iter()
            .filter(|(_, f)| waits(f, view, now, owns))
            .map(|(key, _)| key.clone())
            .collect();
        let mut stopped: Vec<Involved> = waiting.iter().map(|k| failed[k].owner.clone()).collect();
        let mut failing: Vec<Involved> = Vec::new();
        let mut refused_at = BTreeSet::new();
        for (at, effect) in out.effects.into_iter().enumerate() {
            if stopped.iter().any(|owner| concerns(&effect, owner)) {
                continue;
            }
            match effect {
                Effect::Event(ev) => {
                    recorder.record(store, now, &ev);
                }
                Effect::Reported(r) => {
                    let Reported {
                        owner,
                        write,
                        done,
                        refused,
                    } = *r;
                    debug_assert!(
                        Target::of_effect(&write).is_some()
                            && !matches!(write, Effect::Reported(_)),
                        "a reported effect must be a write: {write:?}"
                    );
                    match perform(store, &write) {
                        Ok(()) => {
                            if let Some(ev) = done {
                                recorder.record(store, now, &ev);
                            }
                        }
                        Err(err) => {
                            let passed_over = passed_over(&write, &err);
                            if let Some(target) = Target::of_effect(&write) {
                                refusals.record(now, name, target, err.clone());
                            }
                            if passed_over {
                                continue;
                            }
                            refused_at.insert(at);
                            for mut ev in refused {
                                ev.message.push_str(&err.message);
                                recorder.record(store, now, &ev);
                            }
                            stopped.push(owner.clone());
                            failing.push(owner);
                        }
                    }
                }
                write => {
                    if let Err(err) = perform(store, &write) {
                        if !passed_over(&write, &err) {
                            refused_at.insert(at);
                        }
                        if let Some(target) = Target::of_effect(&write) {
                            refusals.record(now, name, target, err);
                        }
                    }
                }
            }
        }
        // A sync that went through is forgotten (`queue.Forget`); a failed one waits longer
        // each time (`queue.AddRateLimited`).
        let before: BTreeMap<String, u32> = failed
            .iter()
            .map(|(key, f)| (key.clone(), f.failures))
            .collect();
        failed.retain(|key, _| waiting.contains(key));
        for owner in failing {
            let key = owner.key();
            let failures = before.get(&key).copied().unwrap_or(0) + 1;
            let delay = controller.retry().delay(failures);
            let retry_at = now.checked_add(delay).unwrap_or(Timestamp::MAX);
            failed.insert(
                key,
                Failed {
                    fingerprint: fingerprint(view, &owner, owns),
                    owner,
                    failures,
                    retry_at,
                },
            );
        }
        refused_at
    }
}

/// Makes one write as a controller's client would; events and nested reports are no writes.
fn perform(store: &Store, write: &Effect) -> Result<(), ApiError> {
    match write {
        Effect::Create(obj) => put(store, obj, None),
        Effect::Update(obj) => put(store, obj, Some(Part::Main)),
        Effect::UpdateStatus(obj) => put(store, obj, Some(Part::Status)),
        Effect::Delete {
            api_version,
            kind,
            namespace,
            name,
        } => {
            let res = store
                .resource_for_kind(api_version, kind)
                .ok_or_else(no_resource)?;
            store
                .delete(&res, namespace.as_deref(), name, &DeleteOptions::default())
                .map(|_| ())
        }
        Effect::Event(_) | Effect::Reported(_) => Ok(()),
    }
}

/// The API server's answer for a resource it does not serve (a 404 without a Status body,
/// as client-go's `NewGenericServerResponse` words it, k8s.io/apimachinery/pkg/api/errors).
fn no_resource() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

/// Creates (`part == None`) or updates an object as a controller's client would. Updates are
/// unconditional: the stored resourceVersion is used, as several effects of one reconcile may
/// touch the same object.
fn put(store: &Store, obj: &Value, part: Option<Part>) -> Result<(), ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let ns = obj["metadata"]["namespace"].as_str();
    let res = store
        .resource_for_kind(api_version, kind)
        .ok_or_else(no_resource)?;
    match part {
        None => store
            .create(&res, ns, obj.clone(), &WriteOptions::default())
            .map(|_| ()),
        Some(part) => store
            .modify(
                &res,
                ns,
                name,
                part,
                &WriteOptions::default(),
                |current| match current {
                    Some(cur) => {
                        let mut next = obj.clone();
                        next["metadata"]["resourceVersion"] =
                            cur["metadata"]["resourceVersion"].clone();
                        Ok(next)
                    }
                    None => Err(ApiError::not_found(&res, name)),
                },
            )
            .map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::events::{Event, EventType, Reporter};

    fn owner() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "web-1", "namespace": "default", "uid": "u-rs"}})
    }

    #[test]
    fn an_owners_sync_is_its_reports_events_writes_and_what_it_controls() {
        let rs = owner();
        let of = Involved::of(&rs);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1-x", "namespace": "default",
                         "ownerReferences": [{"uid": "u-rs", "controller": true}]}});
        let other = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "other", "namespace": "default"}});
        let event = |obj: &Value| {
            Effect::Event(Event::new(
                EventType::Normal,
                "X",
                "x",
                Involved::of(obj),
                Reporter::new("c"),
            ))
        };
        assert!(concerns(&Effect::Create(pod.clone()), &of));
        assert!(concerns(&Effect::UpdateStatus(rs.clone()), &of));
        assert!(concerns(&Effect::delete_of(&rs), &of));
        assert!(concerns(&event(&rs), &of));
        assert!(concerns(
            &Effect::Reported(Box::new(Reported::new(&rs, Effect::delete_of(&other)))),
            &of
        ));
        assert!(!concerns(&Effect::Create(other.clone()), &of));
        assert!(!concerns(&Effect::delete_of(&pod), &of));
        assert!(!concerns(&event(&other), &of));
    }

    #[test]
    fn what_controllers_pass_over() {
        let pods = crate::sim::resources::builtins()
            .into_iter()
            .find(|r| r.group.is_empty() && r.plural == "pods")
            .unwrap();
        let create = Effect::Create(json!({}));
        let delete = Effect::delete_of(&json!({}));
        let terminating = ApiError::namespace_terminating(&pods, "p", "team");
        assert!(passed_over(&create, &terminating));
        assert!(passed_over(&create, &ApiError::already_exists(&pods, "p")));
        assert!(!passed_over(
            &create,
            &ApiError::forbidden(&pods, "p", "no")
        ));
        assert!(!passed_over(&create, &ApiError::not_found(&pods, "p")));
        assert!(passed_over(&delete, &ApiError::not_found(&pods, "p")));
        assert!(!passed_over(&delete, &terminating));
    }

    #[test]
    fn a_repeated_refusal_counts_in_the_first() {
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2025-01-01T00:00:10Z".parse().unwrap();
        let err = ApiError::new(Reason::Invalid, "bad");
        let mut r = Refusals::default();
        r.record(t0, "c", Target::of("update", &owner()), err.clone());
        r.record(t1, "c", Target::of("update", &owner()), err.clone());
        r.record(t1, "c", Target::of("update status", &owner()), err);
        assert_eq!(r.all().len(), 2);
        assert_eq!(
            (r.all()[0].first, r.all()[0].last, r.all()[0].count),
            (t0, t1, 2)
        );
        assert_eq!(
            r.all()[0].to_string(),
            "c: update ReplicaSet default/web-1 refused: bad (2 times)"
        );
    }
}
