//! The scheduler and the node agents, driven against the store.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::view::StoreView;
use crate::scenario::{ImageBehaviour, Versions};
use crate::sim::behaviour::{ClusterViewExt, Listener, PostgresOutcome, PostgresRequest, Served};
use crate::sim::clock::format_time;
use crate::sim::controllers::ClusterView;
use crate::sim::controllers::meta::{owned, pointer};
use crate::sim::controllers::volume::SELECTED_NODE_ANNOTATION;
use crate::sim::events::{Event, EventRecorder};
use crate::sim::kubelet::{Kubelet, PodSync};
use crate::sim::scheduler::{self, NodeUsage, Placement, Snapshot, kubelet_config, node_object};
use crate::sim::store::{ApiError, ContainerKey, DeleteOptions, Part, Store, WriteOptions};

/// How long an unschedulable pod waits before it is tried again although nothing changed
/// (`podMaxInUnschedulablePodsDuration`, pkg/scheduler/scheduler.go: 5 minutes).
const UNSCHEDULABLE_RETRY_SECS: i64 = 300;

/// What a Postgres check gets when the scenario declares no server. It is the harness's own
/// diagnostic, marked as such, not a server's text: there is no server whose wording to use.
pub const NO_POSTGRES: &str =
    "relapse: no PostgreSQL server to connect to: the scenario declares no `postgres:` section";

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    pointer(v, ptr).and_then(Value::as_str).unwrap_or_default()
}

/// A Postgres check a container's program waits on, for whoever holds the real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresCall {
    /// The pod's uid.
    pub pod_uid: String,
    /// The container whose program asked.
    pub container: String,
    /// What to do on the server.
    pub request: PostgresRequest,
    node: usize,
}

/// A pod as the node agent last synced it.
#[derive(Debug, Clone)]
struct Tracked {
    node: usize,
    namespace: String,
    name: String,
    fingerprint: u64,
    wake_at: Option<Timestamp>,
    /// The run of each container whose log is being written (its restart count).
    attempts: BTreeMap<String, u32>,
}

/// An unschedulable pod and the cluster it was last tried against.
#[derive(Debug, Clone, Copy)]
struct Unschedulable {
    cluster: u64,
    pod: u64,
    at: Timestamp,
}

/// The scheduler's and the kubelets' memory between rounds.
#[derive(Debug)]
pub struct Nodes {
    names: Vec<String>,
    kubelets: Vec<Kubelet>,
    /// The versions every node reports and runs.
    versions: Versions,
    tracked: BTreeMap<String, Tracked>,
    /// Pods assumed on a node while their WaitForFirstConsumer claims are provisioned
    /// (the volume binding plugin's PreBind), by uid.
    binding: BTreeMap<String, (String, Event)>,
    unschedulable: BTreeMap<String, Unschedulable>,
    /// Agents whose Node object is gone (by index): they run nothing any more.
    left: BTreeSet<usize>,
    /// Whether Postgres checks are handed out ([`Nodes::pending_postgres`]) instead of being
    /// answered with [`NO_POSTGRES`].
    defer_postgres: bool,
    /// Checks handed out and not answered yet.
    postgres: Vec<PostgresCall>,
    /// The fingerprint of each bound pod at the resourceVersion it was computed for, by uid:
    /// most rounds see most pods unchanged.
    fingerprints: BTreeMap<String, (String, u64)>,
}

fn hash_of(parts: &[&Value]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        hash_value(p, &mut h);
    }
    h.finish()
}

/// Feeds a JSON value to a hasher, walking it rather than printing it.
fn hash_value(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.hash(h),
                (None, Some(u)) => u.hash(h),
                (None, None) => n.as_f64().map(f64::to_bits).hash(h),
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for item in items {
                hash_value(item, h);
            }
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            for (k, item) in m {
                k.hash(h);
                hash_value(item, h);
            }
        }
    }
}

/// What makes the node agent look at a pod again: anything but its status and bookkeeping.
fn pod_fingerprint(pod: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    for (k, v) in pod
        .get("metadata")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "resourceVersion" | "managedFields"))
    {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    hash_value(pod.get("spec").unwrap_or(&Value::Null), &mut h);
    h.finish()
}

impl Nodes {
    /// Node agents for the named nodes.
    #[must_use]
    pub fn new(agents: Vec<(String, Kubelet)>, versions: Versions) -> Self {
        let (names, kubelets) = agents.into_iter().unzip();
        Self {
            names,
            kubelets,
            versions,
            tracked: BTreeMap::new(),
            binding: BTreeMap::new(),
            unschedulable: BTreeMap::new(),
            left: BTreeSet::new(),
            defer_postgres: false,
            postgres: Vec::new(),
            fingerprints: BTreeMap::new(),
        }
    }

    /// From now on, Postgres checks wait for [`Nodes::postgres_result`] instead of failing
    /// with [`NO_POSTGRES`].
    pub fn defer_postgres(&mut self) {
        self.defer_postgres = true;
    }

    /// Makes every pod due for a sync at once (the faults changed what the node agents and
    /// the programs see).
    pub fn resync_all(&mut self) {
        for t in self.tracked.values_mut() {
            t.wake_at = Some(Timestamp::MIN);
        }
    }

    /// Whether checks are waiting for an answer (time must not pass until they have one).
    #[must_use]
    pub fn postgres_pending(&self) -> bool {
        !self.postgres.is_empty()
    }

    /// The checks waiting for an answer; each stays pending until answered.
    #[must_use]
    pub fn pending_postgres(&self) -> Vec<PostgresCall> {
        self.postgres.clone()
    }

    /// Answers a check; its pod is synced again at the same instant.
    pub fn postgres_result(&mut self, call: &PostgresCall, outcome: &PostgresOutcome) {
        let before = self.postgres.len();
        self.postgres
            .retain(|c| !(c.pod_uid == call.pod_uid && c.container == call.container));
        if self.postgres.len() == before {
            return;
        }
        if let Some(kubelet) = self.kubelets.get_mut(call.node) {
            kubelet.postgres_result(&call.pod_uid, &call.container, outcome);
        }
    }

    /// The earliest instant after `now` at which a node agent or a waiting pod needs a look.
    #[must_use]
    pub fn next_wake(&self, now: Timestamp) -> Option<Timestamp> {
        let kubelets = self.tracked.values().filter_map(|t| t.wake_at);
        let retries = self
            .unschedulable
            .values()
            .map(|u| crate::sim::controllers::meta::add_secs(u.at, UNSCHEDULABLE_RETRY_SECS));
        kubelets.chain(retries).filter(|t| *t > now).min()
    }

    /// Whether a retry of an unschedulable pod is due at `now`.
    #[must_use]
    pub fn retry_due(&self, now: Timestamp) -> bool {
        self.unschedulable
            .values()
            .any(|u| crate::sim::controllers::meta::add_secs(u.at, UNSCHEDULABLE_RETRY_SECS) <= now)
    }

    /// One scheduling pass over the pending pods.
    pub fn schedule(
        &mut self,
        store: &Store,
        view: &StoreView<'_>,
        recorder: &mut EventRecorder,
        now: Timestamp,
    ) {
        let shared = view.list("v1", "Pod", None);
        let pending: Vec<Value> = shared
            .iter()
            .filter(|p| {
                str_at(p, "/spec/nodeName").is_empty()
                    && pointer(p, "/metadata/deletionTimestamp").is_none()
                    && matches!(str_at(p, "/spec/schedulerName"), "" | "default-scheduler")
                    && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
            })
            .map(|p| Value::clone(p))
            .collect();
        if !self.binding.is_empty() || !self.unschedulable.is_empty() {
            let live: BTreeSet<&str> = shared.iter().map(|p| str_at(p, "/metadata/uid")).collect();
            self.binding.retain(|uid, _| live.contains(uid.as_str()));
            self.unschedulable
                .retain(|uid, _| live.contains(uid.as_str()));
        }
        if pending.is_empty() {
            return;
        }
        // The scheduler works on copies it updates as it binds.
        let mut pods = owned(shared);
        let nodes = owned(view.list("v1", "Node", None));
        let mut pvcs = owned(view.list("v1", "PersistentVolumeClaim", None));
        let pvs = owned(view.list("v1", "PersistentVolume", None));
        let classes = owned(view.list("storage.k8s.io/v1", "StorageClass", None));
        let csi_nodes = owned(view.list("storage.k8s.io/v1", "CSINode", None));
        // Kept up to date as pods are bound, rather than counted again for every pod.
        let mut usage = NodeUsage::of(&pods);
        let at: BTreeMap<String, usize> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| (str_at(p, "/metadata/uid").to_owned(), i))
            .collect();
        // A pod assumed on a node while its claims are provisioned counts against that node,
        // as the scheduler cache's AssumePod makes it (pkg/scheduler/schedule_one.go assume).
        for (uid, (node, _)) in &self.binding {
            assume(uid, node, (&mut pods, &at, &mut usage));
        }
        for pod in pending {
            let uid = str_at(&pod, "/metadata/uid").to_owned();
            if let Some((node, event)) = self.binding.get(&uid).cloned() {
                if unbound_delayed_claims(&pod, &pvcs, &classes).is_empty() {
                    self.binding.remove(&uid);
                    bind(
                        store,
                        &pod,
                        &node,
                        &event,
                        recorder,
                        (now, true),
                        (&mut pods, &at, &mut usage),
                    );
                }
                continue;
            }
            // Only needed for pods that were unschedulable: computed when asked for.
            let cluster = |pods: &[Value]| {
                hash_of(&[
                    &Value::Array(nodes.clone()),
                    &Value::Array(pvcs.clone()),
                    &Value::Array(pvs.clone()),
                    &Value::Array(
                        pods.iter()
                            .map(|p| {
                                json!([
                                    str_at(p, "/metadata/uid"),
                                    str_at(p, "/spec/nodeName"),
                                    str_at(p, "/status/phase")
                                ])
                            })
                            .collect(),
                    ),
                ])
            };
            if let Some(u) = self.unschedulable.get(&uid)
                && now < crate::sim::controllers::meta::add_secs(u.at, UNSCHEDULABLE_RETRY_SECS)
                && u.pod == pod_fingerprint(&pod)
                && u.cluster == cluster(&pods)
            {
                continue;
            }
            let snapshot = Snapshot {
                nodes: &nodes,
                pods: &pods,
                pvcs: &pvcs,
                pvs: &pvs,
                storage_classes: &classes,
                csi_nodes: &csi_nodes,
            };
            match scheduler::schedule_with(&pod, &snapshot, &usage, now) {
                Placement::Bind { node, event } => {
                    self.unschedulable.remove(&uid);
                    let delayed = unbound_delayed_claims(&pod, &pvcs, &classes);
                    if delayed.is_empty() {
                        bind(
                            store,
                            &pod,
                            &node,
                            &event,
                            recorder,
                            (now, false),
                            (&mut pods, &at, &mut usage),
                        );
                        continue;
                    }
                    // The volume binding plugin asks for the claims to be provisioned on the
                    // chosen node, then waits for them to be bound before binding the pod.
                    for claim in delayed {
                        select_node(store, &pod, &claim, &node, &mut pvcs);
                    }
                    assume(&uid, &node, (&mut pods, &at, &mut usage));
                    self.binding.insert(uid, (node, event));
                }
                Placement::Unschedulable {
                    condition, event, ..
                } => {
                    set_condition(store, &pod, &condition);
                    recorder.record(store, now, &event);
                    self.unschedulable.insert(
                        uid,
                        Unschedulable {
                            cluster: cluster(&pods),
                            pod: pod_fingerprint(&pod),
                            at: now,
                        },
                    );
                }
            }
        }
    }

    /// The index of the running agent of `node`.
    fn agent(&self, node: &str) -> Option<usize> {
        self.names
            .iter()
            .enumerate()
            .position(|(i, n)| n == node && !self.left.contains(&i))
    }

    /// The versions every node reports and runs.
    #[must_use]
    pub const fn versions(&self) -> Versions {
        self.versions
    }

    /// How many agents ever joined (the next one's index, which picks its addresses).
    #[must_use]
    pub fn joined(&self) -> usize {
        self.names.len()
    }

    /// Brings the agents in line with the Node objects: a Node nobody runs joins (a kubelet
    /// starts for it, and registers its status when the object has none, as a kubelet that
    /// finds its Node already created does), and an agent whose Node is gone stops. Pods bound
    /// to a node that left are deleted, as the pod garbage collector deletes orphaned pods
    /// (`gcOrphaned`, pkg/controller/podgc/gc_controller.go; its 40 s quarantine is not kept).
    pub fn sync_membership(&mut self, store: &Store, view: &StoreView<'_>, now: Timestamp) {
        let nodes = view.list("v1", "Node", None);
        let live: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| n.pointer("/metadata/deletionTimestamp").is_none())
            .map(|n| str_at(n, "/metadata/name"))
            .collect();
        for (i, name) in self.names.iter().enumerate() {
            if !live.contains(name.as_str()) {
                self.left.insert(i);
            }
        }
        for node in &nodes {
            let name = str_at(node, "/metadata/name");
            if !live.contains(name) || self.agent(name).is_some() {
                continue;
            }
            let index = self.names.len();
            let declared = declared_node(node);
            let registered = node_object(&declared, index, now, self.versions);
            let mut config = kubelet_config(&declared, index, self.versions);
            if let Some(ip) = internal_ip(node) {
                config.host_ip = ip;
            }
            if node.pointer("/status/conditions").is_none() {
                register_status(store, name, &registered);
            }
            self.names.push(name.to_owned());
            self.kubelets.push(Kubelet::new(config));
        }
        if self.left.is_empty() {
            return;
        }
        let Some(res) = store.resource("", "v1", "pods") else {
            return;
        };
        for pod in view.list("v1", "Pod", None) {
            let bound = str_at(&pod, "/spec/nodeName");
            if bound.is_empty() || live.contains(bound) || !self.names.iter().any(|n| n == bound) {
                continue;
            }
            let _ = store.delete(
                &res,
                Some(str_at(&pod, "/metadata/namespace")),
                str_at(&pod, "/metadata/name"),
                &DeleteOptions {
                    grace_period: Some(0),
                    uid: Some(str_at(&pod, "/metadata/uid").to_owned()),
                    ..DeleteOptions::default()
                },
            );
        }
    }

    /// One pass of every node agent over its pods.
    pub fn sync(
        &mut self,
        store: &Store,
        view: &StoreView<'_>,
        images: &BTreeMap<String, ImageBehaviour>,
        recorder: &mut EventRecorder,
        now: Timestamp,
    ) {
        let pods = view.list("v1", "Pod", None);
        // What every running program serves, as of the start of this pass: a client's
        // connection reaches the program behind a ready endpoint.
        let listeners: Vec<Listener> = self.kubelets.iter().flat_map(Kubelet::listeners).collect();
        let agent_view = ServingView {
            view,
            listeners: &listeners,
        };
        let mut seen = BTreeSet::new();
        for pod in &pods {
            let node_name = str_at(pod, "/spec/nodeName");
            let Some(node) = self.agent(node_name) else {
                continue;
            };
            let uid = str_at(pod, "/metadata/uid").to_owned();
            seen.insert(uid.clone());
            // A kubelet that stopped posting status writes nothing: its pods keep the status
            // last posted (or the node lifecycle controller's) and a deleted one stays
            // Terminating until it posts again.
            if view.faults().node_down_since(node_name, now).is_some() {
                continue;
            }
            let rv = str_at(pod, "/metadata/resourceVersion");
            let fingerprint = match self.fingerprints.get(&uid) {
                Some((at, f)) if at == rv => *f,
                _ => {
                    let f = pod_fingerprint(pod);
                    self.fingerprints.insert(uid.clone(), (rv.to_owned(), f));
                    f
                }
            };
            let due = self.tracked.get(&uid).is_none_or(|t| {
                t.fingerprint != fingerprint || t.wake_at.is_some_and(|w| w <= now)
            });
            if !due {
                continue;
            }
            let kubelet = &mut self.kubelets[node];
            let mut syncs = vec![kubelet.sync_pod(pod, images, &agent_view, now)];
            let mut waiting = false;
            if self.defer_postgres {
                // Handed out; the pod is looked at again at this instant once answered.
                for p in syncs.iter().flat_map(|s| &s.postgres) {
                    waiting = true;
                    let known = self
                        .postgres
                        .iter()
                        .any(|c| c.pod_uid == uid && c.container == p.container);
                    if !known {
                        self.postgres.push(PostgresCall {
                            pod_uid: uid.clone(),
                            container: p.container.clone(),
                            request: p.request.clone(),
                            node,
                        });
                    }
                }
            }
            // Without a server, Postgres checks are answered at once, then the pod is synced
            // again at the same instant; a bounded number of rounds guards against a program
            // that keeps asking.
            for _ in 0..if self.defer_postgres { 0 } else { 8 } {
                let Some(last) = syncs.last() else { break };
                if last.postgres.is_empty() {
                    break;
                }
                let outcome = PostgresOutcome::Failed {
                    sqlstate: None,
                    message: NO_POSTGRES.to_owned(),
                };
                for p in last.postgres.clone() {
                    kubelet.postgres_result(&uid, &p.container, &outcome);
                }
                syncs.push(kubelet.sync_pod(pod, images, &agent_view, now));
            }
            let tracked = self.tracked.entry(uid.clone()).or_insert_with(|| Tracked {
                node,
                namespace: str_at(pod, "/metadata/namespace").to_owned(),
                name: str_at(pod, "/metadata/name").to_owned(),
                fingerprint,
                wake_at: None,
                attempts: BTreeMap::new(),
            });
            tracked.fingerprint = fingerprint;
            let mut finished = false;
            let mut current = pod.get("status").cloned();
            for s in syncs {
                write_logs(store, tracked, &s);
                for ev in &s.events {
                    recorder.record(store, now, ev);
                }
                // Unchanged statuses are not written: most syncs only check timers.
                if current.as_ref() != Some(&s.status) {
                    write_status(store, pod, &s.status);
                    current = Some(s.status.clone());
                }
                tracked.wake_at = s.wake_at;
                finished = s.finished;
            }
            if waiting {
                tracked.wake_at = Some(now);
            }
            if finished {
                // The kubelet's final delete once every container has stopped
                // (pkg/kubelet/status/status_manager.go, `canBeDeleted` then a zero grace period).
                if let Some(res) = store.resource_shared("", "v1", "pods") {
                    let _ = store.delete(
                        &res,
                        Some(&tracked.namespace),
                        &tracked.name,
                        &DeleteOptions {
                            grace_period: Some(0),
                            uid: Some(uid.clone()),
                            ..DeleteOptions::default()
                        },
                    );
                }
            }
        }
        let gone: Vec<String> = self
            .tracked
            .keys()
            .filter(|uid| !seen.contains(*uid))
            .cloned()
            .collect();
        self.postgres.retain(|c| seen.contains(&c.pod_uid));
        for uid in gone {
            if let Some(t) = self.tracked.remove(&uid) {
                self.kubelets[t.node].forget(&uid);
            }
        }
        self.fingerprints.retain(|uid, _| seen.contains(uid));
    }

    /// What the operators running on every node want done now.
    #[must_use]
    pub fn operator_work(&self, view: &StoreView<'_>) -> Vec<crate::sim::behaviour::Work> {
        self.kubelets
            .iter()
            .flat_map(|k| k.operator_work(view))
            .collect()
    }
}

/// The node a Node object describes, as a scenario would declare it: its architecture
/// label, its labels and taints, its allocatable resources.
fn declared_node(node: &Value) -> crate::scenario::Node {
    let labels: BTreeMap<String, String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    let arch = match labels.get("kubernetes.io/arch").map(String::as_str) {
        Some("arm64") => crate::scenario::Arch::Arm64,
        _ => crate::scenario::Arch::Amd64,
    };
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(crate::scenario::Taint {
                key: t["key"].as_str()?.to_owned(),
                value: t["value"].as_str().map(str::to_owned),
                effect: serde_json::from_value(t["effect"].clone()).ok()?,
            })
        })
        .collect();
    let mut capacity = crate::scenario::Capacity::default();
    let allocatable = |k: &str| {
        node.pointer(&format!("/status/allocatable/{k}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let Some(cpu) = allocatable("cpu") {
        capacity.cpu = cpu;
    }
    if let Some(memory) = allocatable("memory") {
        capacity.memory = memory;
    }
    if let Some(pods) = allocatable("pods").and_then(|p| p.parse().ok()) {
        capacity.pods = pods;
    }
    crate::scenario::Node {
        name: str_at(node, "/metadata/name").to_owned(),
        arch,
        // The object's own labels and taints already say everything the roles would add.
        roles: vec![crate::scenario::NodeRole::Worker],
        labels,
        taints,
        capacity,
    }
}

fn internal_ip(node: &Value) -> Option<String> {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(str::to_owned)
}

/// What a kubelet writes when it registers a Node that exists already: its status, and the
/// well-known labels the object lacks (`kubernetes.io/arch`, `kubernetes.io/hostname`, ...).
fn register_status(store: &Store, name: &str, registered: &Value) {
    let Some(res) = store.resource("", "v1", "nodes") else {
        return;
    };
    let _ = store.modify(
        &res,
        None,
        name,
        Part::Main,
        &WriteOptions::default(),
        |current| {
            let Some(cur) = current else {
                return Err(ApiError::not_found(&res, name));
            };
            let mut next = cur.clone();
            for (k, v) in registered["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
            {
                if next["metadata"]["labels"].get(k).is_none() {
                    next["metadata"]["labels"][k] = v.clone();
                }
            }
            for key in ["podCIDR", "podCIDRs"] {
                if next["spec"].get(key).is_none() {
                    next["spec"][key] = registered["spec"][key].clone();
                }
            }
            Ok(next)
        },
    );
    let _ = store.modify(
        &res,
        None,
        name,
        Part::Status,
        &WriteOptions::default(),
        |current| {
            let Some(cur) = current else {
                return Err(ApiError::not_found(&res, name));
            };
            let mut next = cur.clone();
            next["status"] = registered["status"].clone();
            Ok(next)
        },
    );
}

/// Claims of the pod that are not bound yet and whose class waits for the first consumer.
fn unbound_delayed_claims(pod: &Value, pvcs: &[Value], classes: &[Value]) -> Vec<String> {
    let ns = str_at(pod, "/metadata/namespace");
    pointer(pod, "/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| pointer(v, "/persistentVolumeClaim/claimName").and_then(Value::as_str))
        .filter(|claim| {
            pvcs.iter()
                .find(|c| {
                    str_at(c, "/metadata/namespace") == ns && str_at(c, "/metadata/name") == *claim
                })
                .is_some_and(|pvc| {
                    let class = str_at(pvc, "/spec/storageClassName");
                    str_at(pvc, "/spec/volumeName").is_empty()
                        && classes.iter().any(|sc| {
                            str_at(sc, "/metadata/name") == class
                                && str_at(sc, "/volumeBindingMode") == "WaitForFirstConsumer"
                        })
                })
        })
        .map(str::to_owned)
        .collect()
}

/// Sets `volume.kubernetes.io/selected-node` on a claim (volumebinding `AssumePodVolumes`
/// and `BindPodVolumes`, pkg/scheduler/framework/plugins/volumebinding/binder.go).
fn select_node(store: &Store, pod: &Value, claim: &str, node: &str, pvcs: &mut [Value]) {
    let Some(res) = store.resource("", "v1", "persistentvolumeclaims") else {
        return;
    };
    let ns = str_at(pod, "/metadata/namespace").to_owned();
    let written = store.modify(
        &res,
        Some(&ns),
        claim,
        Part::Main,
        &WriteOptions::default(),
        |current| {
            let Some(c) = current else {
                return Err(ApiError::not_found(&res, claim));
            };
            let mut c = c.clone();
            c["metadata"]["annotations"][SELECTED_NODE_ANNOTATION] = json!(node);
            Ok(c)
        },
    );
    if let Ok((stored, _)) = written
        && let Some(slot) = pvcs.iter_mut().find(|c| {
            str_at(c, "/metadata/namespace") == ns && str_at(c, "/metadata/name") == claim
        })
    {
        *slot = stored;
    }
}

/// Binds a pod: `spec.nodeName` and `PodScheduled=True`, as the binding subresource does
/// (pkg/registry/core/pod/storage/storage.go `setPodNodeAndMetadata`), then the `Scheduled`
/// event. The pass's copy of the pods (found by uid) and the nodes' usage are updated with it.
/// Counts a pod against the node it is assumed on, in the scheduler's copy of the pods.
fn assume(
    uid: &str,
    node: &str,
    (pods, at, usage): (&mut [Value], &BTreeMap<String, usize>, &mut NodeUsage),
) {
    if let Some(slot) = at.get(uid).and_then(|i| pods.get_mut(*i)) {
        slot["spec"]["nodeName"] = json!(node);
        usage.add(slot);
    }
}

fn bind(
    store: &Store,
    pod: &Value,
    node: &str,
    event: &Event,
    recorder: &mut EventRecorder,
    (now, assumed): (Timestamp, bool),
    (pods, at, usage): (&mut [Value], &BTreeMap<String, usize>, &mut NodeUsage),
) {
    let Some(res) = store.resource_shared("", "v1", "pods") else {
        return;
    };
    let ns = str_at(pod, "/metadata/namespace").to_owned();
    let name = str_at(pod, "/metadata/name").to_owned();
    let uid = str_at(pod, "/metadata/uid").to_owned();
    let bound = store.modify(
        &res,
        Some(&ns),
        &name,
        Part::Main,
        &WriteOptions::default(),
        |current| match current {
            Some(p) if str_at(p, "/metadata/uid") == uid => {
                let mut p = p.clone();
                p["spec"]["nodeName"] = json!(node);
                Ok(p)
            }
            _ => Err(ApiError::not_found(&res, &name)),
        },
    );
    let Ok((stored, _)) = bound else { return };
    let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                           "lastTransitionTime": format_time(now)});
    set_condition(store, &stored, &condition);
    if !assumed {
        usage.add(&stored);
    }
    if let Some(slot) = at.get(&uid).and_then(|i| pods.get_mut(*i)) {
        *slot = stored;
    }
    recorder.record(store, now, event);
}

/// Puts a condition into a pod's status, keeping the transition time when the status is the same.
fn set_condition(store: &Store, pod: &Value, condition: &Value) {
    let Some(res) = store.resource_shared("", "v1", "pods") else {
        return;
    };
    let ns = str_at(pod, "/metadata/namespace");
    let name = str_at(pod, "/metadata/name");
    let _ = store.modify_shared(
        &res,
        Some(ns),
        name,
        Part::Status,
        &WriteOptions::default(),
        |current| {
            let Some(p) = current else {
                return Err(ApiError::not_found(&res, name));
            };
            // A status write takes only the status from the body.
            let mut status = p.get("status").cloned().unwrap_or_else(|| json!({}));
            let mut conditions: Vec<Value> = status
                .pointer("/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut next = condition.clone();
            match conditions
                .iter_mut()
                .find(|c| c["type"] == condition["type"])
            {
                Some(c) => {
                    if c["status"] == condition["status"] {
                        next["lastTransitionTime"] = c["lastTransitionTime"].clone();
                    }
                    *c = next;
                }
                None => conditions.push(next),
            }
            status["conditions"] = Value::Array(conditions);
            Ok(status_body(status))
        },
    );
}

/// The body of a status write: the status subresource takes nothing else from it.
fn status_body(status: Value) -> Value {
    Value::Object(serde_json::Map::from_iter([("status".to_owned(), status)]))
}

/// Writes the status the node agent computed.
fn write_status(store: &Store, pod: &Value, status: &Value) {
    if status.is_null() {
        return;
    }
    let Some(res) = store.resource_shared("", "v1", "pods") else {
        return;
    };
    let ns = str_at(pod, "/metadata/namespace");
    let name = str_at(pod, "/metadata/name");
    let uid = str_at(pod, "/metadata/uid");
    let _ = store.modify_shared(
        &res,
        Some(ns),
        name,
        Part::Status,
        &WriteOptions::default(),
        |current| match current {
            // A status write takes only the status from the body.
            Some(p) if str_at(p, "/metadata/uid") == uid => Ok(status_body(status.clone())),
            _ => Err(ApiError::not_found(&res, name)),
        },
    );
}

/// Appends what the containers wrote; a line from a newer run of a container first moves the
/// current log to `previous`.
fn write_logs(store: &Store, tracked: &mut Tracked, sync: &PodSync) {
    for line in &sync.logs {
        let key = ContainerKey::new(&tracked.namespace, &tracked.name, &line.container);
        let attempt = tracked.attempts.entry(line.container.clone()).or_insert(0);
        while *attempt < line.attempt {
            store.logs().restart(&key);
            *attempt += 1;
        }
        store
            .logs()
            .append(&key, rfc3339_nano(line.at), line.text.clone());
    }
    // A run that has not written yet still starts a new log.
    for status in sync
        .status
        .pointer("/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            sync.status
                .pointer("/initContainerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
    {
        let name = str_at(status, "/name");
        let restarts = status
            .get("restartCount")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        let running = status.pointer("/state/running").is_some();
        let attempt = tracked.attempts.entry(name.to_owned()).or_insert(0);
        if running && *attempt < restarts {
            let key = ContainerKey::new(&tracked.namespace, &tracked.name, name);
            while *attempt < restarts {
                store.logs().restart(&key);
                *attempt += 1;
            }
        }
    }
}

/// A log line's time as the kubelet returns it with `timestamps=true`: Go's `RFC3339Nano`
/// (trailing zeros of the fraction dropped, and the dot with them).
fn rfc3339_nano(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// The store's view plus what the running programs serve, for the node agents.
struct ServingView<'a> {
    view: &'a StoreView<'a>,
    listeners: &'a [Listener],
}

impl ClusterView for ServingView<'_> {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.view.get(api_version, kind, namespace, name)
    }

    fn get_shared(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Value>> {
        self.view.get_shared(api_version, kind, namespace, name)
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.view.list(api_version, kind, namespace)
    }

    fn list_controlled(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        owner_uid: &str,
        orphans: bool,
    ) -> Vec<Arc<Value>> {
        self.view
            .list_controlled(api_version, kind, namespace, owner_uid, orphans)
    }
}

impl ClusterViewExt for ServingView<'_> {
    fn resource_served(&self, group: &str, version: &str, resource: &str) -> bool {
        self.view.resource_served(group, version, resource)
    }

    fn resource_name(&self, api_version: &str, kind: &str) -> Option<String> {
        self.view.resource_name(api_version, kind)
    }

    fn volume_attached(&self, pv: &str, node: &str) -> bool {
        self.view.volume_attached(pv, node)
    }

    fn faults(&self) -> &crate::sim::faults::Faults {
        self.view.faults()
    }

    fn served_on(&self, namespace: &str, pod: &str, port: u16) -> Option<Served> {
        self.listeners
            .iter()
            .find(|l| l.namespace == namespace && l.pod == pod && l.port == port)
            .map(|l| l.served.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_rfc3339_nano() {
        let t: Timestamp = "2025-01-01T00:00:01.500Z".parse().unwrap();
        assert_eq!(rfc3339_nano(t), "2025-01-01T00:00:01.5Z");
        let t: Timestamp = "2025-01-01T00:00:01Z".parse().unwrap();
        assert_eq!(rfc3339_nano(t), "2025-01-01T00:00:01Z");
    }
}
