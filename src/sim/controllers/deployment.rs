//! The Deployment controller (`kubernetes/pkg/controller/deployment`): ReplicaSets per
//! pod-template-hash, revisions, RollingUpdate and Recreate, proportional scaling, history
//! cleanup, and the Progressing/Available conditions with the progress deadline.
//!
//! The structure follows the real controller function by function (`syncDeployment`,
//! `rolloutRolling`, `rolloutRecreate`, `sync`, `syncRolloutStatus`); the working copies of
//! the Deployment and its ReplicaSets are updated in place as the real controller's API calls
//! would update them, so later steps of one sync see earlier steps' writes.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::replicaset::set_count;
use super::{ClusterView, Effect, Reconciled, Reported, pod_template_hash};
use crate::sim::events::EventType;

/// `source.component` of the events this controller records.
pub const COMPONENT: &str = "deployment-controller";

/// The label that ties a ReplicaSet and its pods to one template (`DefaultDeploymentUniqueLabelKey`).
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The rollout sequence number of a Deployment and its ReplicaSets (`deployment_util.go`).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet served (`deployment_util.go`).
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled (`deployment_util.go`).
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled (`deployment_util.go`).
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// Condition reasons, `pkg/controller/deployment/util/deployment_util.go`.
pub mod reason {
    /// Progressing: one of the ReplicaSets was updated as part of the rollout.
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing: a new ReplicaSet was created.
    pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
    /// Progressing: an existing ReplicaSet matches the template.
    pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
    /// Progressing: the new ReplicaSet is available.
    pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing=False: no progress within `progressDeadlineSeconds`.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Progressing=Unknown: the Deployment is paused.
    pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
    /// Progressing=Unknown: the Deployment was resumed.
    pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";
    /// Available=True.
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available=False.
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// The event (and Progressing=False) when the new ReplicaSet cannot be created
    /// (`FailedRSCreateReason`).
    pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
}

/// Event reason of every scaling step (`sync.go`).
pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";

/// `Scaled up replica set <rs> from <old> to <new>` (`scaleReplicaSet` and `getNewReplicaSet`,
/// `pkg/controller/deployment/sync.go`, Kubernetes ≥ 1.31 wording from PR #125118; 1.22–1.30
/// said `Scaled up replica set <rs> to <new> from <old>`).
#[must_use]
pub fn scaled_message(up: bool, rs: &str, from: i64, to: i64) -> String {
    let op = if up { "up" } else { "down" };
    format!("Scaled {op} replica set {rs} from {from} to {to}")
}

/// What `Failed to create new replica set "<rs>": <err>` puts before the API server's error
/// (`getNewReplicaSet`, `sync.go`: `fmt.Sprintf("Failed to create new replica set %q: %v",
/// newRS.Name, err)`; `%q` of a DNS name is the name in double quotes).
#[must_use]
pub fn failed_rs_create_prefix(rs: &str) -> String {
    format!("Failed to create new replica set \"{rs}\": ")
}

/// Progressing=True NewReplicaSetCreated message (`getNewReplicaSet`, `sync.go`).
#[must_use]
pub fn created_new_rs_message(rs: &str) -> String {
    format!("Created new replica set \"{rs}\"")
}

/// Progressing=True FoundNewReplicaSet message (`getNewReplicaSet`, `sync.go`).
#[must_use]
pub fn found_new_rs_message(rs: &str) -> String {
    format!("Found new replica set \"{rs}\"")
}

/// Progressing=True ReplicaSetUpdated message (`syncRolloutStatus`, `progress.go`).
#[must_use]
pub fn progressing_message(rs: &str) -> String {
    format!("ReplicaSet \"{rs}\" is progressing.")
}

/// Progressing=True NewReplicaSetAvailable message (`syncRolloutStatus`, `progress.go`).
#[must_use]
pub fn progressed_message(rs: &str) -> String {
    format!("ReplicaSet \"{rs}\" has successfully progressed.")
}

/// Progressing=False ProgressDeadlineExceeded message (`syncRolloutStatus`, `progress.go`).
#[must_use]
pub fn timed_out_message(rs: &str) -> String {
    format!("ReplicaSet \"{rs}\" has timed out progressing.")
}

/// Available=True message (`calculateStatus`, `sync.go`).
pub const MIN_AVAILABLE_MESSAGE: &str = "Deployment has minimum availability.";
/// Available=False message (`calculateStatus`, `sync.go`).
pub const MIN_UNAVAILABLE_MESSAGE: &str = "Deployment does not have minimum availability.";

/// The longest `revision-history` annotation kept (`--deployment-controller` default
/// `maxRevHistoryLengthInChars`, `sync.go`).
const MAX_REV_HISTORY_LENGTH: usize = 2000;

/// Reconciles every Deployment (in namespace/name order).
pub fn reconcile_all(view: &dyn ClusterView, now: Timestamp) -> Reconciled {
    let mut out = Reconciled::default();
    let mut ds = view.list("apps/v1", "Deployment", None);
    ds.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    for d in ds {
        out.merge(reconcile_one(view, &d, now));
    }
    out
}

/// Reconciles one Deployment by namespace and name (`syncDeployment`).
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Reconciled {
    match view.get_shared("apps/v1", "Deployment", Some(namespace), name) {
        Some(d) => reconcile_one(view, &d, now),
        None => Reconciled::default(),
    }
}

fn reconcile_one(view: &dyn ClusterView, d: &Arc<Value>, now: Timestamp) -> Reconciled {
    let mut s = Sync::new(view, d, now);
    s.run();
    s.finish()
}

// ---------------------------------------------------------------------------------------------
// Reading the spec (with the API server's defaults, in case the store does not default).

fn replicas_of(obj: &Value) -> i64 {
    meta::i64_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn status_i64(obj: &Value, key: &str) -> i64 {
    meta::i64_at(obj, &["status", key]).unwrap_or(0)
}

fn is_rolling(d: &Value) -> bool {
    let t = str_at(d, &["spec", "strategy", "type"]);
    t.is_empty() || t == "RollingUpdate"
}

fn rolling_param(d: &Value, key: &str) -> Value {
    meta::at(d, &["spec", "strategy", "rollingUpdate", key])
        .cloned()
        .unwrap_or_else(|| json!("25%"))
}

/// `ResolveFenceposts`: maxSurge rounds up, maxUnavailable rounds down, and both zero means one
/// unavailable.
fn fenceposts(d: &Value) -> (i64, i64) {
    let desired = replicas_of(d);
    let surge =
        meta::scaled_int_or_percent(&rolling_param(d, "maxSurge"), desired, true).unwrap_or(0);
    let mut unavailable =
        meta::scaled_int_or_percent(&rolling_param(d, "maxUnavailable"), desired, false)
            .unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// `MaxSurge`.
fn max_surge(d: &Value) -> i64 {
    if is_rolling(d) { fenceposts(d).0 } else { 0 }
}

/// `MaxUnavailable`.
fn max_unavailable(d: &Value) -> i64 {
    let replicas = replicas_of(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// `progressDeadlineSeconds`, `None` when there is no deadline (unset after defaulting is
/// impossible; `MaxInt32` means none).
fn progress_deadline(d: &Value) -> Option<i64> {
    let v = meta::i64_at(d, &["spec", "progressDeadlineSeconds"]).unwrap_or(600);
    (v != i64::from(i32::MAX)).then_some(v)
}

fn revision_of(rs: &Value) -> i64 {
    meta::annotation(rs, REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `EqualIgnoreHash`: templates equal once the pod-template-hash label is removed (and labels
/// or metadata left empty by that with it). Compared in place; templates whose metadata or
/// labels are not objects are compared on stripped copies.
fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    type Map = serde_json::Map<String, Value>;
    /// Whether two maps are equal but for `skip`.
    fn eq_except(x: &Map, y: &Map, skip: &str) -> bool {
        let rest = |m: &Map| m.keys().filter(|k| *k != skip).count();
        rest(x) == rest(y) && x.iter().all(|(k, v)| k == skip || y.get(k) == Some(v))
    }
    /// The template, its metadata and its labels as maps (absent ones empty), if they are.
    fn parts(t: &Value) -> Option<(&Map, &Map, &Map)> {
        static EMPTY: std::sync::OnceLock<Map> = std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(Map::new);
        let top = t.as_object()?;
        let metadata = match top.get("metadata") {
            None => empty,
            Some(m) => m.as_object()?,
        };
        let labels = match metadata.get("labels") {
            None => empty,
            Some(l) => l.as_object()?,
        };
        Some((top, metadata, labels))
    }
    if let (Some((ta, ma, la)), Some((tb, mb, lb))) = (parts(a), parts(b)) {
        return eq_except(ta, tb, "metadata")
            && eq_except(ma, mb, "labels")
            && eq_except(la, lb, POD_TEMPLATE_HASH_LABEL);
    }
    equal_ignore_hash_copied(a, b)
}

/// [`equal_ignore_hash`] on stripped copies, as `EqualIgnoreHash` does it.
fn equal_ignore_hash_copied(a: &Value, b: &Value) -> bool {
    fn strip(t: &Value) -> Value {
        let mut t = t.clone();
        meta::remove_at(&mut t, &["metadata", "labels", POD_TEMPLATE_HASH_LABEL]);
        if meta::at(&t, &["metadata", "labels"])
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            meta::remove_at(&mut t, &["metadata", "labels"]);
        }
        if meta::at(&t, &["metadata"])
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            meta::remove_at(&mut t, &["metadata"]);
        }
        t
    }
    strip(a) == strip(b)
}

fn by_creation(a: &Value, b: &Value) -> Ordering {
    (meta::creation_time(a), meta::name(a)).cmp(&(meta::creation_time(b), meta::name(b)))
}

// ---------------------------------------------------------------------------------------------
// Conditions.

fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> Value {
    let t = meta::fmt_time(now);
    json!({
        "type": type_, "status": status,
        "lastUpdateTime": t, "lastTransitionTime": t,
        "reason": reason, "message": message,
    })
}

fn get_condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    meta::array_at(status, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
}

fn remove_condition(status: &mut Value, type_: &str) {
    let kept: Vec<Value> = meta::array_at(status, &["conditions"])
        .iter()
        .filter(|c| str_at(c, &["type"]) != type_)
        .cloned()
        .collect();
    if kept.is_empty() {
        if let Value::Object(m) = status {
            m.remove("conditions");
        }
    } else {
        status["conditions"] = Value::Array(kept);
    }
}

/// `SetDeploymentCondition`: no change for the same status and reason; the transition time is
/// kept when only the reason changes; the condition moves to the end of the list.
fn set_condition(status: &mut Value, mut cond: Value) {
    let type_ = str_at(&cond, &["type"]).to_owned();
    if let Some(cur) = get_condition(status, &type_) {
        if str_at(cur, &["status"]) == str_at(&cond, &["status"])
            && str_at(cur, &["reason"]) == str_at(&cond, &["reason"])
        {
            return;
        }
        if str_at(cur, &["status"]) == str_at(&cond, &["status"]) {
            cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    remove_condition(status, &type_);
    let mut conds = meta::array_at(status, &["conditions"]).to_vec();
    conds.push(cond);
    status["conditions"] = Value::Array(conds);
}

// ---------------------------------------------------------------------------------------------
// One sync of one Deployment.

struct Sync<'a> {
    view: &'a dyn ClusterView,
    now: Timestamp,
    original: Arc<Value>,
    d: Value,
    /// Working copies of the ReplicaSets the Deployment owns, oldest first.
    rs_list: Vec<Value>,
    /// Pods of those ReplicaSets, by ReplicaSet UID (`getPodMapForDeployment`).
    pod_map: BTreeMap<String, Vec<Arc<Value>>>,
    out: Reconciled,
    /// Set when creating the new ReplicaSet ran into a name collision.
    blocked: bool,
}

impl<'a> Sync<'a> {
    fn new(view: &'a dyn ClusterView, d: &Arc<Value>, now: Timestamp) -> Self {
        Self {
            view,
            now,
            original: d.clone(),
            d: Value::clone(d),
            rs_list: Vec::new(),
            pod_map: BTreeMap::new(),
            out: Reconciled::default(),
            blocked: false,
        }
    }

    fn event(&mut self, event_type: EventType, reason: &str, message: String) {
        let d = self.d.clone();
        self.out.event(&d, event_type, reason, message, COMPONENT);
    }

    fn run(&mut self) {
        let selector = meta::at(&self.d, &["spec", "selector"]);
        let everything = selector.is_none_or(|s| {
            meta::string_map(s, &["matchLabels"]).is_empty()
                && meta::array_at(s, &["matchExpressions"]).is_empty()
        });
        if everything {
            // `syncDeployment`, pkg/controller/deployment/deployment_controller.go.
            self.event(
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required."
                    .to_owned(),
            );
            if meta::i64_at(&self.d, &["status", "observedGeneration"]).unwrap_or(0)
                < meta::generation(&self.d)
            {
                let g = meta::generation(&self.d);
                set_count(ensure_status(&mut self.d), "observedGeneration", g);
            }
            return;
        }
        self.claim_replica_sets();
        self.build_pod_map();

        if meta::is_deleting(&self.d) {
            self.sync_status_only();
            return;
        }
        self.check_paused_conditions();
        if meta::bool_at(&self.d, &["spec", "paused"]) {
            self.sync();
            return;
        }
        if self.is_scaling_event() {
            self.sync();
            return;
        }
        if is_rolling(&self.d) {
            self.rollout_rolling();
        } else {
            self.rollout_recreate();
        }
    }

    fn finish(mut self) -> Reconciled {
        let annotations_changed = meta::at(&self.d, &["metadata", "annotations"])
            != meta::at(&self.original, &["metadata", "annotations"]);
        if annotations_changed {
            self.out.push(Effect::Update(self.d.clone()));
        }
        if self.d.get("status") != self.original.get("status") {
            self.out.push(Effect::UpdateStatus(self.d.clone()));
        }
        self.requeue_stuck();
        self.out
    }

    /// `ClaimReplicaSets`: keep owned ReplicaSets that match, adopt matching orphans, release
    /// owned ones that stopped matching.
    fn claim_replica_sets(&mut self) {
        let ns = meta::namespace(&self.d);
        let selector = meta::at(&self.d, &["spec", "selector"]).cloned();
        let owner = meta::uid(&self.d).unwrap_or_default().to_owned();
        // Only ReplicaSets it controls or that have no controller can be kept or adopted.
        let mut list = self
            .view
            .list_controlled("apps/v1", "ReplicaSet", ns, &owner, true);
        list.sort_by(|a, b| by_creation(a, b));
        for rs in list {
            let rs = Arc::unwrap_or_clone(rs);
            let matches = meta::selector_matches(selector.as_ref(), &meta::labels(&rs));
            if meta::is_controlled_by(&rs, &self.d) {
                if matches {
                    self.rs_list.push(rs);
                } else {
                    let owner = meta::uid(&self.d).unwrap_or("").to_owned();
                    let mut released = rs;
                    let refs: Vec<Value> =
                        meta::array_at(&released, &["metadata", "ownerReferences"])
                            .iter()
                            .filter(|r| str_at(r, &["uid"]) != owner)
                            .cloned()
                            .collect();
                    meta::set_at(
                        &mut released,
                        &["metadata", "ownerReferences"],
                        Value::Array(refs),
                    );
                    self.out.push(Effect::Update(released));
                }
            } else if meta::controller_of(&rs).is_none() && matches && !meta::is_deleting(&rs) {
                let mut adopted = rs;
                let mut refs = meta::array_at(&adopted, &["metadata", "ownerReferences"]).to_vec();
                refs.push(meta::controller_ref(&self.d));
                meta::set_at(
                    &mut adopted,
                    &["metadata", "ownerReferences"],
                    Value::Array(refs),
                );
                self.out.push(Effect::Update(adopted.clone()));
                self.rs_list.push(adopted);
            }
        }
    }

    fn build_pod_map(&mut self) {
        let selector = meta::at(&self.d, &["spec", "selector"]).cloned();
        let ns = meta::namespace(&self.d);
        for rs in &self.rs_list {
            let Some(uid) = meta::uid(rs) else { continue };
            if self.pod_map.contains_key(uid) {
                continue;
            }
            let pods = self
                .view
                .list_controlled("v1", "Pod", ns, uid, false)
                .into_iter()
                .filter(|pod| meta::selector_matches(selector.as_ref(), &meta::labels(pod)))
                .collect();
            self.pod_map.insert(uid.to_owned(), pods);
        }
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
    fn find_new(&self) -> Option<usize> {
        let template = meta::at(&self.d, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null);
        let mut idx: Vec<usize> = (0..self.rs_list.len()).collect();
        idx.sort_by(|a, b| by_creation(&self.rs_list[*a], &self.rs_list[*b]));
        idx.into_iter().find(|i| {
            meta::at(&self.rs_list[*i], &["spec", "template"])
                .is_some_and(|t| equal_ignore_hash(t, &template))
        })
    }

    /// `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created if asked) and the old ones.
    fn get_all(&mut self, create: bool) -> (Option<usize>, Vec<usize>) {
        let existing = self.find_new();
        let old: Vec<usize> = (0..self.rs_list.len())
            .filter(|i| Some(*i) != existing)
            .collect();
        let new = self.get_new_replica_set(existing, &old, create);
        let old = (0..self.rs_list.len())
            .filter(|i| Some(*i) != new)
            .collect();
        (new, old)
    }

    fn get_new_replica_set(
        &mut self,
        existing: Option<usize>,
        old: &[usize],
        create: bool,
    ) -> Option<usize> {
        let max_old = old
            .iter()
            .map(|i| revision_of(&self.rs_list[*i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(i) = existing {
            let mut rs = self.rs_list[i].clone();
            let annotations_updated = set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
            let d_min_ready = meta::i64_at(&self.d, &["spec", "minReadySeconds"]).unwrap_or(0);
            let min_ready_changed =
                meta::i64_at(&rs, &["spec", "minReadySeconds"]).unwrap_or(0) != d_min_ready;
            if annotations_updated || min_ready_changed {
                meta::set_at(&mut rs, &["spec", "minReadySeconds"], json!(d_min_ready));
                self.out.push(Effect::Update(rs.clone()));
                self.rs_list[i] = rs;
                return Some(i);
            }
            let revision = meta::annotation(&rs, REVISION_ANNOTATION)
                .unwrap_or("")
                .to_owned();
            meta::set_annotation(&mut self.d, REVISION_ANNOTATION, &revision);
            if progress_deadline(&self.d).is_some()
                && get_condition(status_of(&self.d), "Progressing").is_none()
            {
                let cond = new_condition(
                    "Progressing",
                    "True",
                    reason::FOUND_NEW_REPLICA_SET,
                    &found_new_rs_message(meta::name(&rs)),
                    self.now,
                );
                set_condition(ensure_status(&mut self.d), cond);
            }
            return Some(i);
        }
        if !create {
            return None;
        }

        let template = meta::at(&self.d, &["spec", "template"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        let collision = meta::i64_at(&self.d, &["status", "collisionCount"]);
        let hash = pod_template_hash(&template, collision);
        let mut rs_template = template;
        meta::set_at(
            &mut rs_template,
            &["metadata", "labels", POD_TEMPLATE_HASH_LABEL],
            json!(hash),
        );
        let mut selector = meta::at(&self.d, &["spec", "selector"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        meta::set_at(
            &mut selector,
            &["matchLabels", POD_TEMPLATE_HASH_LABEL],
            json!(hash),
        );
        let name = format!("{}-{}", meta::name(&self.d), hash);
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta::namespace(&self.d).unwrap_or("default"),
                "labels": rs_template["metadata"]["labels"].clone(),
                "ownerReferences": [meta::controller_ref(&self.d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": meta::i64_at(&self.d, &["spec", "minReadySeconds"]).unwrap_or(0),
                "selector": selector,
                "template": rs_template,
            },
        });
        let all: Vec<&Value> = old
            .iter()
            .map(|i| &self.rs_list[*i])
            .chain(std::iter::once(&rs))
            .collect();
        let count = new_rs_new_replicas(&self.d, &all, &rs);
        rs["spec"]["replicas"] = json!(count);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);

        // A ReplicaSet of that name that is not ours (or has another template) is a hash
        // collision: bump collisionCount and try again next sync (`getNewReplicaSet`).
        let ns = meta::namespace(&self.d).map(str::to_owned);
        if let Some(clash) = self.view.get("apps/v1", "ReplicaSet", ns.as_deref(), &name) {
            let ours = meta::is_controlled_by(&clash, &self.d)
                && meta::at(&clash, &["spec", "template"]).is_some_and(|t| {
                    equal_ignore_hash(
                        t,
                        meta::at(&self.d, &["spec", "template"]).unwrap_or(&Value::Null),
                    )
                });
            if !ours {
                let next = collision.unwrap_or(0) + 1;
                ensure_status(&mut self.d)["collisionCount"] = json!(next);
                self.blocked = true;
                return None;
            }
            // Already exists and is ours: use it as is (the informer had not seen it yet).
            self.rs_list.push(clash);
            return Some(self.rs_list.len() - 1);
        }

        // A refused create ends the sync with `ReplicaSetCreateError` (`getNewReplicaSet`).
        let mut create = Reported::new(&self.d, Effect::Create(rs.clone())).refused(
            reason::REPLICA_SET_CREATE_ERROR,
            failed_rs_create_prefix(&name),
            COMPONENT,
        );
        if count > 0 {
            create = create.done(
                SCALING_REPLICA_SET,
                scaled_message(true, &name, 0, count),
                COMPONENT,
            );
        }
        self.out.reported(create);
        meta::set_annotation(&mut self.d, REVISION_ANNOTATION, &new_revision.to_string());
        if progress_deadline(&self.d).is_some() {
            let cond = new_condition(
                "Progressing",
                "True",
                reason::NEW_REPLICA_SET_CREATED,
                &created_new_rs_message(&name),
                self.now,
            );
            set_condition(ensure_status(&mut self.d), cond);
        }
        // The working copy stands in for the created object until the informer sees it.
        meta::set_at(
            &mut rs,
            &["metadata", "creationTimestamp"],
            json!(meta::fmt_time(self.now)),
        );
        self.rs_list.push(rs);
        Some(self.rs_list.len() - 1)
    }

    /// `scaleReplicaSetAndRecordEvent`.
    fn scale_and_record(&mut self, i: usize, new_scale: i64) -> bool {
        if replicas_of(&self.rs_list[i]) == new_scale {
            return false;
        }
        self.scale(i, new_scale)
    }

    /// `scaleReplicaSet`: writes the size and the replica annotations; records an event when the
    /// size changed.
    fn scale(&mut self, i: usize, new_scale: i64) -> bool {
        let rs = &self.rs_list[i];
        let old_scale = replicas_of(rs);
        let desired = replicas_of(&self.d);
        let max = desired + max_surge(&self.d);
        let size_changed = old_scale != new_scale;
        let annotations_stale = meta::annotation(rs, DESIRED_REPLICAS_ANNOTATION)
            != Some(desired.to_string().as_str())
            || meta::annotation(rs, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str());
        if !size_changed && !annotations_stale {
            return false;
        }
        let mut rs = rs.clone();
        rs["spec"]["replicas"] = json!(new_scale);
        meta::set_annotation(&mut rs, DESIRED_REPLICAS_ANNOTATION, &desired.to_string());
        meta::set_annotation(&mut rs, MAX_REPLICAS_ANNOTATION, &max.to_string());
        let name = meta::name(&rs).to_owned();
        // The event only once the update went through; a refused one ends the sync silently.
        let mut update = Reported::new(&self.d, Effect::Update(rs.clone()));
        if size_changed {
            update = update.done(
                SCALING_REPLICA_SET,
                scaled_message(old_scale < new_scale, &name, old_scale, new_scale),
                COMPONENT,
            );
        }
        self.out.reported(update);
        self.rs_list[i] = rs;
        size_changed
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| replicas_of(&self.rs_list[*i]) > 0)
            .collect()
    }

    fn sorted_by_creation(&self, mut idx: Vec<usize>) -> Vec<usize> {
        idx.sort_by(|a, b| by_creation(&self.rs_list[*a], &self.rs_list[*b]));
        idx
    }

    fn sum(&self, idx: &[usize], f: impl Fn(&Value) -> i64) -> i64 {
        idx.iter().map(|i| f(&self.rs_list[*i])).sum()
    }

    fn all_of(new: Option<usize>, old: &[usize]) -> Vec<usize> {
        old.iter().copied().chain(new).collect()
    }

    // --- strategies ---------------------------------------------------------------------------

    /// `rolloutRolling`.
    fn rollout_rolling(&mut self) {
        let (new, old) = self.get_all(true);
        let Some(new) = new else {
            if !self.blocked {
                self.sync_rollout_status(None, &old);
            }
            return;
        };
        let all = Self::all_of(Some(new), &old);
        if self.reconcile_new_replica_set(&all, new) {
            self.sync_rollout_status(Some(new), &old);
            return;
        }
        let active_old = self.active(&old);
        if self.reconcile_old_replica_sets(&all, &active_old, new) {
            self.sync_rollout_status(Some(new), &old);
            return;
        }
        if self.deployment_complete(status_of(&self.d)) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(Some(new), &old);
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new_replica_set(&mut self, all: &[usize], new: usize) -> bool {
        let desired = replicas_of(&self.d);
        let current = replicas_of(&self.rs_list[new]);
        if current == desired {
            return false;
        }
        if current > desired {
            return self.scale_and_record(new, desired);
        }
        let all_values: Vec<&Value> = all.iter().map(|i| &self.rs_list[*i]).collect();
        let count = new_rs_new_replicas(&self.d, &all_values, &self.rs_list[new]);
        self.scale_and_record(new, count)
    }

    /// `reconcileOldReplicaSets`.
    fn reconcile_old_replica_sets(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        let old_pods = self.sum(old, replicas_of);
        if old_pods == 0 {
            return false;
        }
        let all_pods = self.sum(all, replicas_of);
        let min_available = replicas_of(&self.d) - max_unavailable(&self.d);
        let new_unavailable =
            replicas_of(&self.rs_list[new]) - status_i64(&self.rs_list[new], "availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy_replicas(old, max_scaled_down);
        let scaled = self.scale_down_old_for_rolling_update(all, old);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: scale down old ReplicaSets' unavailable pods first.
    fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max_cleanup: i64) -> i64 {
        let mut total = 0;
        for i in self.sorted_by_creation(old.to_vec()) {
            if total >= max_cleanup {
                break;
            }
            let rs = &self.rs_list[i];
            let replicas = replicas_of(rs);
            let available = status_i64(rs, "availableReplicas");
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            self.scale_and_record(i, replicas - down);
            total += down;
        }
        total
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`.
    fn scale_down_old_for_rolling_update(&mut self, all: &[usize], old: &[usize]) -> i64 {
        let min_available = replicas_of(&self.d) - max_unavailable(&self.d);
        let available = self.sum(all, |rs| status_i64(rs, "availableReplicas"));
        if available <= min_available {
            return 0;
        }
        let total_down = available - min_available;
        let mut done = 0;
        for i in self.sorted_by_creation(old.to_vec()) {
            if done >= total_down {
                break;
            }
            let replicas = replicas_of(&self.rs_list[i]);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(total_down - done);
            self.scale_and_record(i, replicas - down);
            done += down;
        }
        done
    }

    /// `rolloutRecreate`: old ReplicaSets to zero, wait for their pods to be gone, then the new one.
    fn rollout_recreate(&mut self) {
        let (mut new, mut old) = self.get_all(false);
        let mut scaled_down = false;
        for i in self.active(&old) {
            if replicas_of(&self.rs_list[i]) != 0 {
                scaled_down |= self.scale_and_record(i, 0);
            }
        }
        if scaled_down || self.old_pods_running(new, &old) {
            self.sync_rollout_status(new, &old);
            return;
        }
        if new.is_none() {
            (new, old) = self.get_all(true);
        }
        if let Some(n) = new {
            let desired = replicas_of(&self.d);
            self.scale_and_record(n, desired);
        }
        if self.deployment_complete(status_of(&self.d)) {
            self.cleanup(&old);
        }
        if !self.blocked {
            self.sync_rollout_status(new, &old);
        }
    }

    /// `oldPodsRunning`: old ReplicaSets still report pods, or pods of theirs are not terminal.
    fn old_pods_running(&self, new: Option<usize>, old: &[usize]) -> bool {
        if self.sum(old, |rs| status_i64(rs, "replicas")) > 0 {
            return true;
        }
        let new_uid = new.and_then(|n| meta::uid(&self.rs_list[n]));
        self.pod_map.iter().any(|(uid, pods)| {
            Some(uid.as_str()) != new_uid
                && pods
                    .iter()
                    .any(|p| !matches!(meta::pod_phase(p), "Failed" | "Succeeded"))
        })
    }

    /// `sync`: scaling and paused Deployments; no rollout.
    fn sync(&mut self) {
        let (new, old) = self.get_all(false);
        self.scale_deployment(new, &old);
        if meta::bool_at(&self.d, &["spec", "paused"]) {
            self.cleanup(&old);
        }
        let status = self.calculate_status(new, &old);
        self.d["status"] = status;
    }

    fn sync_status_only(&mut self) {
        let (new, old) = self.get_all(false);
        let status = self.calculate_status(new, &old);
        self.d["status"] = status;
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for a different `spec.replicas`.
    fn is_scaling_event(&mut self) -> bool {
        let (new, old) = self.get_all(false);
        let desired = replicas_of(&self.d);
        let all = Self::all_of(new, &old);
        self.active(&all).iter().any(|i| {
            meta::annotation(&self.rs_list[*i], DESIRED_REPLICAS_ANNOTATION)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|want| want != desired)
        })
    }

    /// `scale`: proportional scaling across active ReplicaSets.
    fn scale_deployment(&mut self, new: Option<usize>, old: &[usize]) {
        let desired = replicas_of(&self.d);
        if let Some(i) = self.find_active_or_latest(new, old) {
            if replicas_of(&self.rs_list[i]) != desired {
                self.scale_and_record(i, desired);
            }
            return;
        }
        if new.is_some_and(|n| self.is_saturated(n)) {
            for i in self.active(old) {
                self.scale_and_record(i, 0);
            }
            return;
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut all = self.active(&Self::all_of(new, old));
        let current = self.sum(&all, replicas_of);
        let allowed = if desired > 0 {
            desired + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - current;
        match to_add.cmp(&0) {
            Ordering::Greater => all.sort_by(|a, b| {
                let (ra, rb) = (&self.rs_list[*a], &self.rs_list[*b]);
                replicas_of(rb)
                    .cmp(&replicas_of(ra))
                    .then_with(|| by_creation(rb, ra))
            }),
            Ordering::Less => all.sort_by(|a, b| {
                let (ra, rb) = (&self.rs_list[*a], &self.rs_list[*b]);
                replicas_of(rb)
                    .cmp(&replicas_of(ra))
                    .then_with(|| by_creation(ra, rb))
            }),
            Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes = Vec::new();
        for i in &all {
            let rs = &self.rs_list[*i];
            if to_add == 0 {
                sizes.push(replicas_of(rs));
            } else {
                let p = self.proportion(rs, to_add, added);
                sizes.push(replicas_of(rs) + p);
                added += p;
            }
        }
        for (pos, i) in all.iter().enumerate() {
            let mut size = sizes[pos];
            if pos == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale(*i, size);
        }
    }

    /// `FindActiveOrLatest`.
    fn find_active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut old_sorted = old.to_vec();
        old_sorted.sort_by(|a, b| by_creation(&self.rs_list[*b], &self.rs_list[*a]));
        let active = self.active(&Self::all_of(new, &old_sorted));
        match active.len() {
            0 => new.or_else(|| old_sorted.first().copied()),
            1 => active.first().copied(),
            _ => None,
        }
    }

    /// `IsSaturated`.
    fn is_saturated(&self, i: usize) -> bool {
        let rs = &self.rs_list[i];
        let desired = replicas_of(&self.d);
        meta::annotation(rs, DESIRED_REPLICAS_ANNOTATION).and_then(|v| v.parse::<i64>().ok())
            == Some(desired)
            && status_i64(rs, "availableReplicas") == desired
            && replicas_of(rs) == desired
    }

    /// `GetProportion` with `getReplicaSetFraction`.
    fn proportion(&self, rs: &Value, to_add: i64, added: i64) -> i64 {
        if replicas_of(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = {
            let desired = replicas_of(&self.d);
            if desired == 0 {
                -replicas_of(rs)
            } else {
                let max = desired + max_surge(&self.d);
                let before = meta::annotation(rs, MAX_REPLICAS_ANNOTATION)
                    .and_then(|v| v.parse::<i64>().ok())
                    .filter(|v| *v != 0)
                    .unwrap_or_else(|| status_i64(&self.d, "replicas"));
                if before == 0 {
                    0
                } else {
                    // integer.RoundToInt32: round half away from zero.
                    let num = replicas_of(rs) * max;
                    let rounded = (2 * num + before).div_euclid(2 * before);
                    rounded - replicas_of(rs)
                }
            }
        };
        let allowed = to_add - added;
        if allowed > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `cleanupDeployment`: delete the oldest fully scaled-down ReplicaSets beyond
    /// `revisionHistoryLimit`.
    fn cleanup(&mut self, old: &[usize]) {
        let limit = meta::i64_at(&self.d, &["spec", "revisionHistoryLimit"]).unwrap_or(10);
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| !meta::is_deleting(&self.rs_list[*i]))
            .collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - limit;
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            let (ra, rb) = (&self.rs_list[*a], &self.rs_list[*b]);
            revision_of(ra)
                .cmp(&revision_of(rb))
                .then_with(|| by_creation(ra, rb))
        });
        for i in cleanable
            .into_iter()
            .take(usize::try_from(diff).unwrap_or(0))
        {
            let rs = &self.rs_list[i];
            if status_i64(rs, "replicas") != 0
                || replicas_of(rs) != 0
                || meta::generation(rs) > status_i64(rs, "observedGeneration")
            {
                continue;
            }
            // A refused delete ends the sync without an event (`cleanupDeployment`).
            self.out
                .reported(Reported::new(&self.d, Effect::delete_of(rs)));
        }
    }

    /// `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let cond = get_condition(status_of(&self.d), "Progressing");
        let cond_reason = cond.map(|c| str_at(c, &["reason"]).to_owned());
        if cond_reason.as_deref() == Some(reason::PROGRESS_DEADLINE_EXCEEDED) {
            return;
        }
        let paused_cond = cond_reason.as_deref() == Some(reason::DEPLOYMENT_PAUSED);
        let paused = meta::bool_at(&self.d, &["spec", "paused"]);
        // Messages from `checkPausedConditions`, `sync.go`.
        let cond = if paused && !paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                reason::DEPLOYMENT_PAUSED,
                "Deployment is paused",
                self.now,
            )
        } else if !paused && paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                reason::DEPLOYMENT_RESUMED,
                "Deployment is resumed",
                self.now,
            )
        } else {
            return;
        };
        set_condition(ensure_status(&mut self.d), cond);
    }

    /// `calculateStatus`.
    fn calculate_status(&self, new: Option<usize>, old: &[usize]) -> Value {
        let all = Self::all_of(new, old);
        let available = self.sum(&all, |rs| status_i64(rs, "availableReplicas"));
        let total = self.sum(&all, replicas_of);
        let unavailable = (total - available).max(0);
        let mut status = json!({});
        set_count(&mut status, "observedGeneration", meta::generation(&self.d));
        set_count(
            &mut status,
            "replicas",
            self.sum(&all, |rs| status_i64(rs, "replicas")),
        );
        set_count(
            &mut status,
            "updatedReplicas",
            new.map_or(0, |n| status_i64(&self.rs_list[n], "replicas")),
        );
        set_count(
            &mut status,
            "readyReplicas",
            self.sum(&all, |rs| status_i64(rs, "readyReplicas")),
        );
        set_count(&mut status, "availableReplicas", available);
        set_count(&mut status, "unavailableReplicas", unavailable);
        if let Some(c) = meta::at(&self.d, &["status", "collisionCount"]) {
            status["collisionCount"] = c.clone();
        }
        if let Some(conds) = meta::at(&self.d, &["status", "conditions"]) {
            status["conditions"] = conds.clone();
        }
        let cond = if available >= replicas_of(&self.d) - max_unavailable(&self.d) {
            new_condition(
                "Available",
                "True",
                reason::MINIMUM_REPLICAS_AVAILABLE,
                MIN_AVAILABLE_MESSAGE,
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                reason::MINIMUM_REPLICAS_UNAVAILABLE,
                MIN_UNAVAILABLE_MESSAGE,
                self.now,
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// `DeploymentComplete`.
    fn deployment_complete(&self, status: &Value) -> bool {
        let desired = replicas_of(&self.d);
        let get = |k: &str| meta::i64_at(status, &[k]).unwrap_or(0);
        get("updatedReplicas") == desired
            && get("replicas") == desired
            && get("availableReplicas") == desired
            && get("observedGeneration") >= meta::generation(&self.d)
    }

    /// `DeploymentProgressing`: more updated/ready/available pods or fewer old pods than before.
    fn deployment_progressing(&self, new_status: &Value) -> bool {
        let old = status_of(&self.d);
        let get = |s: &Value, k: &str| meta::i64_at(s, &[k]).unwrap_or(0);
        let old_old = get(old, "replicas") - get(old, "updatedReplicas");
        let new_old = get(new_status, "replicas") - get(new_status, "updatedReplicas");
        get(new_status, "updatedReplicas") > get(old, "updatedReplicas")
            || new_old < old_old
            || get(new_status, "readyReplicas") > get(old, "readyReplicas")
            || get(new_status, "availableReplicas") > get(old, "availableReplicas")
    }

    /// `DeploymentTimedOut`.
    fn deployment_timed_out(&self) -> bool {
        let Some(deadline) = progress_deadline(&self.d) else {
            return false;
        };
        let Some(cond) = get_condition(status_of(&self.d), "Progressing") else {
            return false;
        };
        match str_at(cond, &["reason"]) {
            reason::NEW_REPLICA_SET_AVAILABLE => false,
            reason::PROGRESS_DEADLINE_EXCEEDED => true,
            _ => meta::parse_time(str_at(cond, &["lastUpdateTime"]))
                .is_some_and(|from| meta::add_secs(from, deadline) < self.now),
        }
    }

    /// `syncRolloutStatus`.
    fn sync_rollout_status(&mut self, new: Option<usize>, old: &[usize]) {
        let mut status = self.calculate_status(new, old);
        let has_deadline = progress_deadline(&self.d).is_some();
        if !has_deadline {
            remove_condition(&mut status, "Progressing");
        }
        let current = get_condition(status_of(&self.d), "Progressing").cloned();
        let get = |k: &str| meta::i64_at(&status, &[k]).unwrap_or(0);
        let complete_rollout = get("replicas") == get("updatedReplicas")
            && current
                .as_ref()
                .is_some_and(|c| str_at(c, &["reason"]) == reason::NEW_REPLICA_SET_AVAILABLE);
        if has_deadline && !complete_rollout {
            let rs_name = new.map(|n| meta::name(&self.rs_list[n]).to_owned());
            let d_name = meta::name(&self.d).to_owned();
            if self.deployment_complete(&status) {
                let msg = rs_name.as_deref().map_or_else(
                    || format!("Deployment \"{d_name}\" has successfully progressed."),
                    progressed_message,
                );
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "True",
                        reason::NEW_REPLICA_SET_AVAILABLE,
                        &msg,
                        self.now,
                    ),
                );
            } else if self.deployment_progressing(&status) {
                let msg = rs_name.as_deref().map_or_else(
                    || format!("Deployment \"{d_name}\" is progressing."),
                    progressing_message,
                );
                let mut cond = new_condition(
                    "Progressing",
                    "True",
                    reason::REPLICA_SET_UPDATED,
                    &msg,
                    self.now,
                );
                if let Some(cur) = &current {
                    if str_at(cur, &["status"]) == "True" {
                        cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, cond);
            } else if self.deployment_timed_out() {
                let msg = rs_name.as_deref().map_or_else(
                    || format!("Deployment \"{d_name}\" has timed out progressing."),
                    timed_out_message,
                );
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "False",
                        reason::PROGRESS_DEADLINE_EXCEEDED,
                        &msg,
                        self.now,
                    ),
                );
            }
        }
        if status != *status_of(&self.d) {
            self.d["status"] = status;
        }
    }

    /// `requeueStuckDeployment`: wake up when the progress deadline would pass.
    fn requeue_stuck(&mut self) {
        let Some(deadline) = progress_deadline(&self.d) else {
            return;
        };
        let Some(cond) = get_condition(status_of(&self.d), "Progressing") else {
            return;
        };
        if self.deployment_complete(status_of(&self.d))
            || str_at(cond, &["reason"]) == reason::PROGRESS_DEADLINE_EXCEEDED
        {
            return;
        }
        if let Some(from) = meta::parse_time(str_at(cond, &["lastUpdateTime"])) {
            // One second more, as the real controller adds, so the check sees the deadline passed.
            let at = meta::add_secs(from, deadline + 1);
            self.out.wake_at(at.max(self.now));
        }
    }
}

fn status_of(d: &Value) -> &Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    d.get("status")
        .filter(|s| s.is_object())
        .unwrap_or_else(|| EMPTY.get_or_init(|| json!({})))
}

fn ensure_status(d: &mut Value) -> &mut Value {
    if !d.get("status").is_some_and(Value::is_object) {
        d["status"] = json!({});
    }
    &mut d["status"]
}

/// `NewRSNewReplicas`: how big the new ReplicaSet may be right now.
fn new_rs_new_replicas(d: &Value, all: &[&Value], new: &Value) -> i64 {
    let desired = replicas_of(d);
    if !is_rolling(d) {
        return desired;
    }
    let surge = max_surge(d);
    let current: i64 = all.iter().map(|rs| replicas_of(rs)).sum();
    let max_total = desired + surge;
    let new_replicas = replicas_of(new);
    if current >= max_total {
        return new_replicas;
    }
    let up = (max_total - current).min(desired - new_replicas);
    new_replicas + up
}

/// `SetNewReplicaSetAnnotations`: copy the Deployment's annotations, advance the revision
/// (keeping the revision history on a rollback) and, for a new ReplicaSet, the replica
/// annotations. Returns whether anything changed.
fn set_new_rs_annotations(d: &Value, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
    const SKIP: &[&str] = &[
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
    ];
    let mut changed = false;
    for (k, v) in meta::string_map(d, &["metadata", "annotations"]) {
        if SKIP.contains(&k.as_str()) || meta::annotation(rs, &k) == Some(v.as_str()) {
            continue;
        }
        meta::set_annotation(rs, &k, &v);
        changed = true;
    }
    let old = meta::annotation(rs, REVISION_ANNOTATION).map(str::to_owned);
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => v,
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        meta::set_annotation(rs, REVISION_ANNOTATION, &new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = meta::annotation(rs, REVISION_HISTORY_ANNOTATION)
                .unwrap_or("")
                .to_owned();
            if history.is_empty() {
                meta::set_annotation(rs, REVISION_HISTORY_ANNOTATION, &old);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_LENGTH && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_LENGTH {
                    revisions = revisions.split_off(start);
                    revisions.push(&old);
                    let joined = revisions.join(",");
                    meta::set_annotation(rs, REVISION_HISTORY_ANNOTATION, &joined);
                }
            }
        }
    }
    if !exists {
        let desired = replicas_of(d);
        meta::set_annotation(rs, DESIRED_REPLICAS_ANNOTATION, &desired.to_string());
        meta::set_annotation(
            rs,
            MAX_REPLICAS_ANNOTATION,
            &(desired + max_surge(d)).to_string(),
        );
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::NameGen;
    use crate::sim::controllers::testing::{World, t0};

    #[test]
    fn templates_compare_in_place_as_on_stripped_copies() {
        let spec = json!({"containers": [{"name": "c", "image": "i"}]});
        let templates = [
            json!({"spec": spec}),
            json!({"metadata": {}, "spec": spec}),
            json!({"metadata": {"labels": {}}, "spec": spec}),
            json!({"metadata": {"labels": {"pod-template-hash": "abc"}}, "spec": spec}),
            json!({"metadata": {"labels": {"pod-template-hash": "xyz"}}, "spec": spec}),
            json!({"metadata": {"labels": {"app": "a", "pod-template-hash": "abc"}}, "spec": spec}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": spec}),
            json!({"metadata": {"labels": {"app": "b"}}, "spec": spec}),
            json!({"metadata": {"labels": {"app": "a"}, "annotations": {"x": "1"}}, "spec": spec}),
            json!({"metadata": {"annotations": {"x": "1"}}, "spec": spec}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}),
            json!({"metadata": null, "spec": spec}),
            json!({"metadata": {"labels": null}, "spec": spec}),
            json!(null),
        ];
        let mut equal = 0;
        for a in &templates {
            for b in &templates {
                assert_eq!(
                    equal_ignore_hash(a, b),
                    equal_ignore_hash_copied(a, b),
                    "{a} vs {b}"
                );
                equal += usize::from(equal_ignore_hash(a, b));
            }
        }
        // Not everything is equal: the first five are one class, the two `app: a` ones another.
        assert!(equal > templates.len() && equal < templates.len() * templates.len());
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "revisionHistoryLimit": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    /// Pretends the ReplicaSet controller caught up: every ReplicaSet reports its pods ready
    /// and available.
    fn rs_caught_up(world: &mut World) {
        for mut rs in meta::owned(ClusterView::list(
            world,
            "apps/v1",
            "ReplicaSet",
            Some("default"),
        )) {
            let n = replicas_of(&rs);
            rs["status"] = json!({"replicas": n, "readyReplicas": n, "availableReplicas": n, "observedGeneration": meta::generation(&rs)});
            world.add(rs);
        }
    }

    fn run(world: &mut World, now: Timestamp) {
        let mut names = NameGen::new(1);
        world.run_controller(|w, t, _| reconcile_all(w, t), now, &mut names);
    }

    #[test]
    fn rolling_update_rounds_surge_up_and_unavailability_down() {
        let mut world = World::new();
        world.add(deployment(10, "web:1"));
        run(&mut world, t0());
        let first = ClusterView::list(&world, "apps/v1", "ReplicaSet", Some("default"));
        assert_eq!(first.len(), 1);
        let old = meta::name(&first[0]).to_owned();
        assert_eq!(meta::annotation(&first[0], REVISION_ANNOTATION), Some("1"));
        assert_eq!(
            meta::annotation(&first[0], MAX_REPLICAS_ANNOTATION),
            Some("13")
        );
        rs_caught_up(&mut world);
        run(&mut world, t0());

        let later = meta::add_secs(t0(), 10);
        world.edit_spec("apps/v1", "Deployment", "default", "web", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
        });
        run(&mut world, later);
        let msgs: Vec<String> = world
            .events_with_reason("ScalingReplicaSet")
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        let new = ClusterView::list(&world, "apps/v1", "ReplicaSet", Some("default"))
            .into_iter()
            .map(|r| meta::name(&r).to_owned())
            .find(|n| *n != old)
            .unwrap();
        // 25% of 10: surge ceil(2.5) = 3, unavailable floor(2.5) = 2.
        assert!(
            msgs.contains(&format!("Scaled up replica set {new} from 0 to 3")),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&format!("Scaled down replica set {old} from 10 to 8")),
            "{msgs:?}"
        );
        let d = world
            .obj("apps/v1", "Deployment", "default", "web")
            .unwrap();
        assert_eq!(meta::annotation(d, REVISION_ANNOTATION), Some("2"));
        let cond = meta::condition(d, "Progressing").unwrap();
        assert_eq!(str_at(cond, &["reason"]), reason::NEW_REPLICA_SET_CREATED);
        assert_eq!(
            str_at(cond, &["message"]),
            format!("Created new replica set \"{new}\"")
        );

        // Let the rollout finish; the old ReplicaSet is kept (limit 1), then a third revision
        // makes the first one go.
        for _ in 0..10 {
            rs_caught_up(&mut world);
            run(&mut world, later);
        }
        let d = world
            .obj("apps/v1", "Deployment", "default", "web")
            .unwrap();
        let cond = meta::condition(d, "Progressing").unwrap();
        assert_eq!(
            str_at(cond, &["message"]),
            format!("ReplicaSet \"{new}\" has successfully progressed.")
        );
        assert_eq!(
            world.obj("apps/v1", "ReplicaSet", "default", &old).unwrap()["spec"]["replicas"],
            0
        );
        world.edit_spec("apps/v1", "Deployment", "default", "web", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:3");
        });
        for _ in 0..10 {
            rs_caught_up(&mut world);
            run(&mut world, later);
        }
        assert!(
            world
                .obj("apps/v1", "ReplicaSet", "default", &old)
                .is_none()
        );
        assert!(
            world
                .obj("apps/v1", "ReplicaSet", "default", &new)
                .is_some()
        );
    }

    #[test]
    fn scaling_a_deployment_scales_its_replica_set() {
        let mut world = World::new();
        world.add(deployment(2, "web:1"));
        run(&mut world, t0());
        rs_caught_up(&mut world);
        run(&mut world, t0());
        world.edit_spec("apps/v1", "Deployment", "default", "web", |d| {
            d["spec"]["replicas"] = json!(5)
        });
        run(&mut world, t0());
        let rs = &ClusterView::list(&world, "apps/v1", "ReplicaSet", Some("default"))[0];
        assert_eq!(rs["spec"]["replicas"], 5);
        assert_eq!(meta::annotation(rs, DESIRED_REPLICAS_ANNOTATION), Some("5"));
        let msgs = world.events_with_reason("ScalingReplicaSet");
        assert_eq!(
            msgs.last().unwrap().0,
            format!("Scaled up replica set {} from 2 to 5", meta::name(rs))
        );
    }
}
