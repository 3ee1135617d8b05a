//! The simulated cluster as a whole: the object store and API server, and the control loop
//! that runs every controller, the scheduler and each node's kubelet on simulated time.
//!
//! [`SimEngine::advance`] is the only way time passes. It runs everything at the current
//! instant until nothing changes any more (a round that writes nothing), then jumps the clock
//! to the earliest instant something asked to be woken at (a controller's requeue, a kubelet
//! timer, a retry of an unschedulable pod), and stops as soon as something changes there, so
//! that whoever drives the cluster can look at it. Wall time never enters: the same
//! configuration and seed give the same objects, names, events and logs every run.
//!
//! Writes made through the API between two calls are picked up by the next call: each
//! controller reconciles the objects whose inputs changed since it last looked, that wait on
//! time, or whose writes failed (its work queue, [`queue`]), and the node agents look again at
//! every pod whose metadata or spec changed. Everything reads through [`Informers`],
//! per-resource caches that follow the store's watch history, so a reconcile sees the writes
//! of the ones before it without copying the store.

mod nodes;
mod queue;
mod recorder;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

pub use nodes::{NO_POSTGRES, PostgresCall};
pub use queue::{Queues, WorkQueue};
pub use recorder::{EventRecorder, Incoming, Involved};
pub use view::{Informers, StoreView};

use crate::scenario::{
    Cluster, ImageBehaviour, LoadBalancerProvider, Node, NodeRole, StorageClass, VolumeBindingMode,
    VolumeKind,
};
use crate::sim::clock::{Clock, ManualClock, format_time};
use crate::sim::controllers::volume::{DEFAULT_CLASS_ANNOTATION, StorageConfig, VolumeController};
use crate::sim::controllers::{
    self, Effect, NameGen, Reconciled, attachdetach::AttachDetachController, cronjob, daemonset,
    deployment, endpoints, job, replicaset, statefulset,
};
use crate::sim::kubelet::Kubelet;
use crate::sim::scheduler::{kubelet_config, node_object};
use crate::sim::store::{ApiError, DeleteOptions, Part, Reason, Store, StoreConfig, WriteOptions};
use crate::sim::{SimCluster, SimClusterBuilder};

/// The instant every simulated cluster starts at, so that timestamps are the same every run.
pub const EPOCH: &str = "2025-01-01T00:00:00Z";

/// How many rounds at one instant may still change something before the engine gives up.
pub const DEFAULT_MAX_ROUNDS: usize = 500;

/// The provisioner of node-local storage classes (k3s' local-path provisioner).
pub const NODE_LOCAL_PROVISIONER: &str = "rancher.io/local-path";
/// The provisioner of attachable storage classes (the EBS CSI driver).
pub const ATTACHABLE_PROVISIONER: &str = "ebs.csi.aws.com";

/// Errors of the simulated cluster's control loop.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An object the cluster starts with could not be created.
    #[error("failed to create {what} in the simulated cluster")]
    Setup {
        /// `Node node-1`, `StorageClass gp2`, ...
        what: String,
        /// The store's refusal.
        #[source]
        source: ApiError,
    },
    /// The epoch or a configured start time is not a valid instant.
    #[error("invalid start time `{0}`")]
    Start(String),
    /// Something kept changing at one instant: a controller fighting another or itself.
    #[error(
        "the simulated cluster did not settle at {at} after {rounds} rounds; still changing: {changing}"
    )]
    NoQuiescence {
        /// The simulated instant.
        at: String,
        /// Rounds run.
        rounds: usize,
        /// The parts that changed something in the last round.
        changing: String,
    },
}

/// How to build a [`SimEngine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Nodes, storage classes and the LoadBalancer provider. No nodes means one amd64 node
    /// `node-1` with both roles; no storage classes means a default node-local `local-path`.
    pub cluster: Cluster,
    /// What each image's containers do (stand-in programs), by image reference.
    pub images: BTreeMap<String, ImageBehaviour>,
    /// Seed of every generated name and uid.
    pub seed: u64,
    /// Where the simulated clock starts.
    pub start: Timestamp,
    /// See [`DEFAULT_MAX_ROUNDS`].
    pub max_rounds: usize,
}

impl EngineConfig {
    /// A configuration for this cluster shape and these images, seed 0, starting at [`EPOCH`].
    ///
    /// # Errors
    /// Never in practice: [`EPOCH`] is a valid instant.
    pub fn new(
        cluster: Cluster,
        images: BTreeMap<String, ImageBehaviour>,
    ) -> Result<Self, EngineError> {
        Ok(Self {
            cluster,
            images,
            seed: 0,
            start: EPOCH
                .parse()
                .map_err(|_| EngineError::Start(EPOCH.to_owned()))?,
            max_rounds: DEFAULT_MAX_ROUNDS,
        })
    }
}

/// A simulated cluster with its controllers, scheduler and node agents on a virtual clock.
#[derive(Debug)]
pub struct SimEngine {
    cluster: SimCluster,
    clock: Arc<ManualClock>,
    start: Timestamp,
    now: Timestamp,
    max_rounds: usize,
    images: BTreeMap<String, ImageBehaviour>,
    names: NameGen,
    volumes: VolumeController,
    attach: AttachDetachController,
    load_balancer: endpoints::LoadBalancerProvider,
    nodes: nodes::Nodes,
    recorder: EventRecorder,
    /// The read caches every reconcile reads through.
    informers: Arc<Informers>,
    /// What each controller has left to reconcile.
    queues: Queues,
}

/// The one node of a cluster that declares none.
fn default_node() -> Node {
    Node {
        name: "node-1".to_owned(),
        arch: crate::scenario::Arch::Amd64,
        roles: vec![NodeRole::ControlPlane, NodeRole::Worker],
        labels: BTreeMap::new(),
        taints: Vec::new(),
        capacity: crate::scenario::Capacity::default(),
    }
}

/// The storage class of a cluster that declares none.
fn default_storage_class() -> StorageClass {
    StorageClass {
        name: "local-path".to_owned(),
        default: true,
        kind: VolumeKind::NodeLocal,
        binding_mode: VolumeBindingMode::WaitForFirstConsumer,
    }
}

/// The StorageClass object of a declared class.
fn storage_class_object(sc: &StorageClass) -> Value {
    let provisioner = match sc.kind {
        VolumeKind::NodeLocal => NODE_LOCAL_PROVISIONER,
        VolumeKind::Attachable => ATTACHABLE_PROVISIONER,
    };
    let mode = match sc.binding_mode {
        VolumeBindingMode::WaitForFirstConsumer => "WaitForFirstConsumer",
        VolumeBindingMode::Immediate => "Immediate",
    };
    let mut obj = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": sc.name},
        "provisioner": provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": mode,
    });
    if sc.default {
        obj["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    }
    obj
}

fn create(store: &Store, obj: Value, what: String) -> Result<(), EngineError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
    let res = store
        .resource_for_kind(&api_version, &kind)
        .ok_or_else(|| EngineError::Setup {
            what: what.clone(),
            source: ApiError::new(Reason::NotFound, format!("no resource serves {kind}")),
        })?;
    store
        .create(&res, None, obj, &WriteOptions::default())
        .map(|_| ())
        .map_err(|source| EngineError::Setup { what, source })
}

impl SimEngine {
    /// Builds the cluster: its nodes, storage classes and node agents, at `config.start`.
    ///
    /// # Errors
    /// When a node or storage class cannot be created (two with the same name, an invalid name).
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let clock = Arc::new(ManualClock::new(config.start));
        let cluster = SimClusterBuilder::default()
            .clock(clock.clone() as Arc<dyn Clock>)
            .store_config(StoreConfig {
                graceful_pod_deletion: true,
                seed: Some(config.seed),
                ..StoreConfig::default()
            })
            .start();
        let store = cluster.store().clone();
        let declared = if config.cluster.nodes.is_empty() {
            vec![default_node()]
        } else {
            config.cluster.nodes.clone()
        };
        let mut agents = Vec::new();
        for (i, node) in declared.iter().enumerate() {
            create(
                &store,
                node_object(node, i, config.start),
                format!("Node {}", node.name),
            )?;
            agents.push((node.name.clone(), Kubelet::new(kubelet_config(node, i))));
        }
        let classes = if config.cluster.storage_classes.is_empty() {
            vec![default_storage_class()]
        } else {
            config.cluster.storage_classes.clone()
        };
        for sc in &classes {
            create(
                &store,
                storage_class_object(sc),
                format!("StorageClass {}", sc.name),
            )?;
        }
        // The scheduler runs on the (first) control-plane node, its events name that host.
        let scheduler_host = declared
            .iter()
            .find(|n| n.roles.contains(&NodeRole::ControlPlane))
            .or_else(|| declared.first())
            .map_or("control-plane", |n| n.name.as_str());
        let load_balancer = match config.cluster.load_balancer {
            LoadBalancerProvider::None => endpoints::LoadBalancerProvider::None,
            LoadBalancerProvider::ServiceLb => endpoints::LoadBalancerProvider::NodeAddress,
        };
        Ok(Self {
            recorder: EventRecorder::new(scheduler_host),
            cluster,
            clock,
            start: config.start,
            now: config.start,
            max_rounds: config.max_rounds.max(1),
            images: config.images,
            // Distinct from the store's generator, which uses the seed itself.
            names: NameGen::new(config.seed.wrapping_add(0x5eed)),
            volumes: VolumeController::new(StorageConfig::default()),
            attach: AttachDetachController::default(),
            load_balancer,
            nodes: nodes::Nodes::new(agents),
            informers: Informers::follow(&store),
            queues: Queues::default(),
        })
    }

    /// The API server and store.
    #[must_use]
    pub const fn cluster(&self) -> &SimCluster {
        &self.cluster
    }

    /// The object store.
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        self.cluster.store()
    }

    /// A kube client talking to the cluster in-process. Must be called inside a tokio runtime.
    #[must_use]
    pub fn client(&self) -> kube::Client {
        self.cluster.client()
    }

    /// The simulated instant the cluster started at.
    #[must_use]
    pub const fn start(&self) -> Timestamp {
        self.start
    }

    /// The current simulated instant.
    #[must_use]
    pub const fn now(&self) -> Timestamp {
        self.now
    }

    /// Simulated time since the start.
    #[must_use]
    pub fn elapsed(&self) -> std::time::Duration {
        crate::sim::behaviour::time::since(self.now, self.start)
    }

    fn set_now(&mut self, at: Timestamp) {
        self.now = at;
        self.clock.set(at);
    }

    /// Runs everything at the current instant until a round changes nothing. Returns whether
    /// anything changed at all.
    ///
    /// # Errors
    /// [`EngineError::NoQuiescence`] when the cluster still changes after the round limit.
    pub fn settle(&mut self) -> Result<bool, EngineError> {
        let mut any = false;
        let mut changing = Vec::new();
        for _ in 0..self.max_rounds {
            changing = self.round();
            if changing.is_empty() {
                return Ok(any);
            }
            any = true;
        }
        Err(EngineError::NoQuiescence {
            at: format_time(self.now),
            rounds: self.max_rounds,
            changing: changing.join(", "),
        })
    }

    /// The earliest instant after now that something asked to be woken at.
    #[must_use]
    pub fn next_wake(&self) -> Option<Timestamp> {
        let now = self.now;
        self.nodes
            .next_wake(now)
            .into_iter()
            .chain(self.queues.next_wake(now))
            .min()
    }

    /// Lets simulated time pass up to `until`: settles now, and if nothing changed, jumps from
    /// wake-up to wake-up, returning at the first instant where something changed (or at
    /// `until`, settled). Never moves the clock backwards.
    ///
    /// # Errors
    /// [`EngineError::NoQuiescence`] when the cluster does not settle at some instant.
    ///
    /// With [`Self::defer_postgres`], it also returns as soon as a program waits on a Postgres
    /// check, without moving the clock: answer [`Self::pending_postgres`] before calling again.
    pub fn advance(&mut self, until: Timestamp) -> Result<(), EngineError> {
        if self.settle()? || self.nodes.postgres_pending() {
            return Ok(());
        }
        loop {
            match self.next_wake() {
                Some(t) if t <= until => {
                    self.set_now(t);
                    let mut changed = false;
                    if self.only_kubelets_due() {
                        if !self.kubelet_pass() && !self.nodes.postgres_pending() {
                            // Nothing else can have changed: the controllers' inputs are the
                            // same as when they last ran and none of them asked to run now.
                            continue;
                        }
                        changed = true;
                    }
                    if self.settle()? || changed || self.nodes.postgres_pending() {
                        return Ok(());
                    }
                }
                _ => {
                    if until > self.now {
                        self.set_now(until);
                        self.settle()?;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Hands Postgres checks to the caller ([`Self::pending_postgres`]) instead of failing
    /// them with [`NO_POSTGRES`]: for a cluster wired to a real server. [`Self::advance`] then
    /// stops at every check, so the clock never moves while a query runs.
    pub fn defer_postgres(&mut self) {
        self.nodes.defer_postgres();
    }

    /// The Postgres checks programs wait on, until each is answered.
    #[must_use]
    pub fn pending_postgres(&self) -> Vec<PostgresCall> {
        self.nodes.pending_postgres()
    }

    /// Answers a Postgres check; the program continues at the current instant on the next
    /// [`Self::advance`].
    pub fn postgres_result(
        &mut self,
        call: &PostgresCall,
        outcome: &crate::sim::behaviour::PostgresOutcome,
    ) {
        self.nodes.postgres_result(call, outcome);
    }

    /// Whether only node agent timers are due now (no controller requeue, no scheduling retry).
    fn only_kubelets_due(&self) -> bool {
        !self.queues.due(self.now) && !self.nodes.retry_due(self.now)
    }

    /// The node agents alone, at the current instant; returns whether anything changed.
    fn kubelet_pass(&mut self) -> bool {
        let store = self.cluster.store().clone();
        let drivers = self.attach.attachable_drivers.clone();
        let informers = self.informers.clone();
        let view = StoreView::new(&store, &informers, &drivers);
        let before = store.resource_version();
        let logged = self
            .nodes
            .sync(&store, &view, &self.images, &mut self.recorder, self.now);
        logged || store.resource_version() != before
    }

    /// Advances until the clock reaches `until` (for tests and tools that want a fixed span).
    ///
    /// # Caveats
    /// With [`Self::defer_postgres`], pending checks must be answered in between: the clock
    /// does not move while one waits.
    ///
    /// # Errors
    /// See [`Self::advance`].
    pub fn run_until(&mut self, until: Timestamp) -> Result<(), EngineError> {
        while self.now < until {
            self.advance(until)?;
        }
        self.settle().map(|_| ())
    }

    /// One round: every controller, the scheduler, the node agents and the operators, each
    /// seeing the writes of the ones before. Returns the names of those that changed something.
    fn round(&mut self) -> Vec<&'static str> {
        let store = self.cluster.store().clone();
        let drivers = self.attach.attachable_drivers.clone();
        let informers = self.informers.clone();
        let view = StoreView::new(&store, &informers, &drivers);
        let now = self.now;
        let mut changing = Vec::new();
        let mut step =
            |name: &'static str, engine: &mut Self, f: &mut dyn FnMut(&mut Self) -> bool| {
                let before = store.resource_version();
                let logged = f(engine);
                if logged || store.resource_version() != before {
                    changing.push(name);
                }
            };
        // Each controller reconciles what its work queue holds (see `queue`).
        step("deployment-controller", self, &mut |e| {
            e.queues.deployment.run(
                &view,
                now,
                |v, (ns, name)| deployment::reconcile(v, ns, name, now),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("replicaset-controller", self, &mut |e| {
            e.queues.replicaset.run(
                &view,
                now,
                |v, (ns, name)| replicaset::reconcile(v, ns, name, now, &mut e.names),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("statefulset-controller", self, &mut |e| {
            e.queues.statefulset.run(
                &view,
                now,
                |v, (ns, name)| statefulset::reconcile(v, ns, name, now),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("daemonset-controller", self, &mut |e| {
            e.queues.daemonset.run(
                &view,
                now,
                |v, (ns, name)| daemonset::reconcile(v, ns, name, now, &mut e.names),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("job-controller", self, &mut |e| {
            e.queues.job.run(
                &view,
                now,
                |v, (ns, name)| job::reconcile(v, ns, name, now, &mut e.names),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("cronjob-controller", self, &mut |e| {
            e.queues.cronjob.run(
                &view,
                now,
                |v, (ns, name)| cronjob::reconcile(v, ns, name, now),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("endpoint-controller", self, &mut |e| {
            let lb = e.load_balancer;
            e.queues.endpoints.run(
                &view,
                now,
                |v, (ns, name)| endpoints::reconcile(v, ns, name, &mut e.names, lb),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("persistentvolume-controller", self, &mut |e| {
            e.queues.volume.run(
                &view,
                now,
                |v, _| e.volumes.reconcile_all(v, now, &mut e.names),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("attachdetach-controller", self, &mut |e| {
            e.queues.attach.run(
                &view,
                now,
                |v, _| e.attach.reconcile(v, now),
                |out| apply(&store, &mut e.recorder, now, out),
            );
            false
        });
        step("default-scheduler", self, &mut |e| {
            e.nodes.schedule(&store, &view, &mut e.recorder, now);
            false
        });
        step("kubelet", self, &mut |e| {
            e.nodes.sync(&store, &view, &e.images, &mut e.recorder, now)
        });
        step("operators", self, &mut |e| {
            for obj in e.nodes.desired_objects(&view) {
                ensure_owned(&store, &obj);
            }
            false
        });
        changing
    }
}

/// Applies a controller's effects in order (its wake-up request is its queue's business).
/// Returns whether every write went through: a reconcile whose writes failed runs again.
fn apply(store: &Store, recorder: &mut EventRecorder, now: Timestamp, out: Reconciled) -> bool {
    let mut applied = true;
    for effect in out.effects {
        let written = match effect {
            Effect::Create(obj) => write(store, obj, None),
            Effect::Update(obj) => write(store, obj, Some(Part::Main)),
            Effect::UpdateStatus(obj) => write(store, obj, Some(Part::Status)),
            Effect::Delete {
                api_version,
                kind,
                namespace,
                name,
            } => match store.resource_for_kind_shared(&api_version, &kind) {
                Some(res) => store
                    .delete(&res, namespace.as_deref(), &name, &DeleteOptions::default())
                    .map(|_| ()),
                None => Ok(()),
            },
            Effect::Event(ev) => {
                recorder.record(store, &controller_event(&ev, now));
                Ok(())
            }
        };
        applied &= written.is_ok();
    }
    applied
}

/// The recorder's form of a controller event, recorded at `now`.
fn controller_event(ev: &controllers::Event, now: Timestamp) -> Incoming {
    let r = &ev.involved;
    Incoming {
        at: now,
        type_: ev.event_type.as_str().to_owned(),
        reason: ev.reason.clone(),
        message: ev.message.clone(),
        involved: Involved {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            field_path: None,
        },
        component: ev.component.clone(),
        host: None,
    }
}

/// Creates (`part == None`) or updates an object as a controller's client would. Updates are
/// unconditional: the stored resourceVersion is used, as several effects of one reconcile may
/// touch the same object.
fn write(store: &Store, obj: Value, part: Option<Part>) -> Result<(), ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
    let ns = ns.as_deref();
    let name = name.as_str();
    let Some(res) = store.resource_for_kind_shared(api_version, kind) else {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("no resource serves {api_version} {kind}"),
        ));
    };
    match part {
        None => store
            .create_shared(&res, ns, obj, &WriteOptions::default())
            .map(|_| ()),
        Some(part) => {
            store
                .modify_shared(&res, ns, name, part, &WriteOptions::default(), |current| {
                    match current {
                        Some(cur) => {
                            let mut next = obj;
                            next["metadata"]["resourceVersion"] =
                                cur["metadata"]["resourceVersion"].clone();
                            Ok(next)
                        }
                        None => Err(ApiError::not_found(&res, name)),
                    }
                })
                .map(|_| ())
        }
    }
}

/// Makes an operator's owned object exist as the operator wants it: created when missing,
/// otherwise its spec, labels, annotations and owner references brought in line (the store
/// ignores writes that change nothing).
fn ensure_owned(store: &Store, desired: &Value) {
    let api_version = desired["apiVersion"].as_str().unwrap_or_default();
    let kind = desired["kind"].as_str().unwrap_or_default();
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let ns = desired["metadata"]["namespace"].as_str();
    let Some(res) = store.resource_for_kind_shared(api_version, kind) else {
        return;
    };
    let _ = store.modify_shared(
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
            next["metadata"]["ownerReferences"] = desired["metadata"]["ownerReferences"].clone();
            Ok(next)
        },
    );
}

#[cfg(test)]
mod tests;
