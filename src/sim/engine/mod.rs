//! The simulated cluster as a whole: the object store and API server, and the control loop
//! that runs every controller, the scheduler and each node's kubelet on simulated time.
//!
//! [`SimEngine::advance`] is the only way time passes. It runs everything at the current
//! instant until nothing changes any more (a round that writes nothing), then jumps the clock
//! to the earliest instant something asked to be woken at (a controller's requeue or retry, a
//! kubelet timer, a retry of an unschedulable pod), and stops as soon as something changes
//! there, so that whoever drives the cluster can look at it. Wall time never enters: the same
//! configuration and seed give the same objects, names, events and logs every run.
//!
//! Writes made through the API between two calls are picked up by the next call: each
//! controller reconciles the objects whose inputs changed since it last looked, that wait on
//! time, or whose sync is due again (its work queue, [`queue`]), and the node agents look again
//! at every pod whose metadata or spec changed. Everything reads through [`Informers`],
//! per-resource caches that follow the store as it changes, so a reconcile sees the writes of
//! the ones before it without copying the store.
//!
//! A round runs the parts of the control loop (the workload, endpoint and volume controllers,
//! the scheduler, the node agents, the operators) through one interface, in an order kept as
//! data. What a controller asks for is applied as its client would make it: a write the store
//! refuses becomes the event the real controller records and a [`RefusedWrite`] kept for
//! failure reports ([`SimEngine::refused_writes`]), and the failed sync is retried after the
//! work queue's back-off.

mod apply;
mod control;
mod nodes;
mod queue;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

pub use apply::{RefusedWrite, Target};
pub use nodes::{NO_POSTGRES, PostgresCall};
pub use view::{Informers, StoreView};

use crate::scenario::{
    ClusterShape, ImageBehaviour, LoadBalancerProvider, Node, NodeRole, StorageClass,
    VolumeBindingMode, VolumeKind,
};
use crate::sim::clock::{Clock, ManualClock, format_time};
use crate::sim::controllers::NameGen;
use crate::sim::controllers::attachdetach::AttachDetachController;
use crate::sim::controllers::endpoints::LoadBalancerMode;
use crate::sim::controllers::volume::{DEFAULT_CLASS_ANNOTATION, StorageConfig, VolumeController};
use crate::sim::events::EventRecorder;
use crate::sim::kubelet::Kubelet;
use crate::sim::scheduler::{csi_node_object, kubelet_config, node_object};
use crate::sim::store::{ApiError, Reason, Store, StoreConfig, WriteOptions};
use crate::sim::{SimCluster, SimClusterBuilder};
use apply::{Apply, FailedSyncs, Refusals};
use control::{Context, Controller, KUBELET, OPERATORS};

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
    /// A node could not be removed.
    #[error("failed to remove {what} from the simulated cluster")]
    Remove {
        /// `Node worker-1`.
        what: String,
        /// The store's refusal.
        #[source]
        source: ApiError,
    },
    /// Argo CD could not be installed, or a commit named a repository it does not have.
    #[error("argo cd in the simulated cluster: {0}")]
    Gitops(String),
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
    pub cluster: ClusterShape,
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
        cluster: ClusterShape,
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
    /// Every part of the control loop, in the order a round runs them.
    parts: Vec<Box<dyn Controller>>,
    /// CSI drivers whose volumes are usable on a node only once attached there.
    attachable_drivers: Vec<String>,
    nodes: nodes::Nodes,
    recorder: EventRecorder,
    /// The read caches every reconcile reads through.
    informers: Arc<Informers>,
    /// Wake-ups the parts without a work queue asked for in the last round.
    requeues: Vec<Timestamp>,
    /// Syncs that failed on a refused write, waiting for their retry.
    failed: FailedSyncs,
    /// Every write the store refused.
    refusals: Refusals,
    /// Infrastructure faults started by [`Self::start_fault`].
    faults: crate::sim::faults::Faults,
    /// Who assigns LoadBalancer addresses now.
    load_balancer: LoadBalancerMode,
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
            .versions(config.cluster.versions)
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
                node_object(node, i, config.start, config.cluster.versions),
                format!("Node {}", node.name),
            )?;
            if let Some(csi) = csi_node_object(node, ATTACHABLE_PROVISIONER) {
                create(&store, csi, format!("CSINode {}", node.name))?;
            }
            agents.push((
                node.name.clone(),
                Kubelet::new(kubelet_config(node, i, config.cluster.versions)),
            ));
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
            LoadBalancerProvider::None => LoadBalancerMode::None,
            LoadBalancerProvider::ServiceLb => LoadBalancerMode::NodeAddress,
        };
        let attach = AttachDetachController::default();
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
            attachable_drivers: attach.attachable_drivers.clone(),
            load_balancer,
            parts: control::control_loop(VolumeController::new(StorageConfig::default()), attach),
            nodes: nodes::Nodes::new(agents, config.cluster.versions),
            informers: Informers::follow(&store),
            requeues: Vec::new(),
            failed: FailedSyncs::default(),
            refusals: Refusals::default(),
            faults: crate::sim::faults::Faults::default(),
        })
    }

    /// Starts an infrastructure fault now; every pod is looked at again.
    pub fn start_fault(&mut self, fault: &crate::scenario::FaultStep) {
        self.faults.start(fault, self.now);
        self.nodes.resync_all();
    }

    /// Ends the faults named `name` now; returns whether one was active.
    pub fn end_fault(&mut self, name: &str) -> bool {
        let ended = self.faults.end(name, self.now);
        self.nodes.resync_all();
        ended
    }

    /// The infrastructure faults, past and present.
    #[must_use]
    pub const fn faults(&self) -> &crate::sim::faults::Faults {
        &self.faults
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

    /// A node joins: its Node object is created, as its kubelet registers it, and the kubelet
    /// starts on the next round. Its addresses follow the nodes that joined before it.
    ///
    /// # Errors
    /// When the Node cannot be created (one of that name exists, an invalid name).
    pub fn add_node(&mut self, node: &Node) -> Result<(), EngineError> {
        create(
            self.cluster.store(),
            node_object(node, self.nodes.joined(), self.now, self.nodes.versions()),
            format!("Node {}", node.name),
        )?;
        if let Some(csi) = csi_node_object(node, ATTACHABLE_PROVISIONER) {
            create(self.cluster.store(), csi, format!("CSINode {}", node.name))?;
        }
        Ok(())
    }

    /// A node leaves: its Node object is deleted; its kubelet stops and its pods are deleted
    /// on the next round.
    ///
    /// # Errors
    /// When no Node of that name exists.
    pub fn remove_node(&mut self, name: &str) -> Result<(), EngineError> {
        let store = self.cluster.store().clone();
        let what = format!("Node {name}");
        let res = store
            .resource("", "v1", "nodes")
            .ok_or_else(|| EngineError::Remove {
                what: what.clone(),
                source: ApiError::new(Reason::NotFound, "no resource serves Node".to_owned()),
            })?;
        store
            .delete(
                &res,
                None,
                name,
                &crate::sim::store::DeleteOptions {
                    grace_period: Some(0),
                    ..crate::sim::store::DeleteOptions::default()
                },
            )
            .map(|_| ())
            .map_err(|source| EngineError::Remove { what, source })
    }

    /// Installs the Argo CD stand-in ([`crate::sim::gitops::argocd`]) with these
    /// repositories; its application controller runs last in every round from now on.
    ///
    /// # Errors
    /// When it is installed already or the API server refuses part of the installation.
    pub fn install_argocd(
        &mut self,
        repos: crate::sim::gitops::argocd::repo::Repos,
    ) -> Result<(), EngineError> {
        if self.parts.iter_mut().any(|p| p.argocd().is_some()) {
            return Err(EngineError::Gitops(
                "argo cd is installed already".to_owned(),
            ));
        }
        let argocd =
            crate::sim::gitops::argocd::ArgoCd::install(self.cluster.store().clone(), repos)
                .map_err(|e| EngineError::Gitops(format!("installing argo cd failed: {e}")))?;
        self.parts.push(Box::new(control::GitOps::new(argocd)));
        Ok(())
    }

    /// Commits `files` as the new tree of the Argo CD repository at `url`; returns the new SHA.
    ///
    /// # Errors
    /// When Argo CD is not installed or has no repository at `url`.
    pub fn commit(
        &mut self,
        url: &str,
        files: crate::sim::gitops::argocd::repo::Tree,
        message: &str,
    ) -> Result<String, EngineError> {
        let argocd = self
            .parts
            .iter_mut()
            .find_map(|p| p.argocd())
            .ok_or_else(|| EngineError::Gitops("argo cd is not installed".to_owned()))?;
        if argocd.repos().repo(url).is_none() {
            return Err(EngineError::Gitops(format!("no repository {url}")));
        }
        Ok(argocd.commit(url, files, message))
    }

    /// Switches the LoadBalancer provider. Switching it off leaves the addresses already
    /// assigned in place; new LoadBalancer Services stay `<pending>`.
    pub fn set_load_balancer(&mut self, provider: LoadBalancerProvider) {
        self.load_balancer = match provider {
            LoadBalancerProvider::None => LoadBalancerMode::None,
            LoadBalancerProvider::ServiceLb => LoadBalancerMode::NodeAddress,
        };
    }

    /// The earliest instant after now that something asked to be woken at.
    #[must_use]
    pub fn next_wake(&self) -> Option<Timestamp> {
        let now = self.now;
        self.nodes
            .next_wake(now)
            .into_iter()
            .chain(self.parts.iter().filter_map(|p| p.queue()?.next_wake(now)))
            .chain(self.requeues.iter().copied().filter(|t| *t > now))
            .chain(self.failed.next_retry(now))
            .chain(self.faults.next_change(now))
            .min()
    }

    /// Every write the store refused so far, in the order first refused: the controllers'
    /// (each also recorded as the event the real controller records, where it records one)
    /// and the operators'.
    #[must_use]
    pub fn refused_writes(&self) -> &[RefusedWrite] {
        self.refusals.all()
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
                    if self.faults.changes_at(t) {
                        self.nodes.resync_all();
                    }
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

    /// Whether only node agent timers are due now (no controller requeue or retry, no
    /// scheduling retry).
    fn only_kubelets_due(&self) -> bool {
        !self
            .parts
            .iter()
            .any(|p| p.queue().is_some_and(|q| q.due(self.now)))
            && !self.requeues.iter().any(|r| *r <= self.now)
            && !self.failed.retry_due(self.now)
            && !self.nodes.retry_due(self.now)
    }

    /// The node agents, and the operators their programs run, at the current instant;
    /// returns whether anything changed. The operators go with the agents because a program's
    /// timer (a retried requirement that now holds) can start its operator without any object
    /// changing.
    fn kubelet_pass(&mut self) -> bool {
        !self
            .run(|part| matches!(part.name(), KUBELET | OPERATORS))
            .is_empty()
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
        self.requeues.clear();
        self.run(|_| true)
    }

    /// Runs the picked parts of the control loop in order, each applying its effects before
    /// the next one reads; returns the names of those that changed something (an object or a
    /// container log).
    fn run(&mut self, pick: impl Fn(&dyn Controller) -> bool) -> Vec<&'static str> {
        let store = self.cluster.store().clone();
        let informers = self.informers.clone();
        let drivers = self.attachable_drivers.clone();
        let faults = self.faults.clone();
        let view = StoreView::new(&store, &informers, &drivers).with_faults(&faults);
        let now = self.now;
        let changed = |store: &Store| (store.resource_version(), store.logs().lines_written());
        let mut parts = std::mem::take(&mut self.parts);
        let mut changing = Vec::new();
        for part in parts.iter_mut().filter(|p| pick(p.as_ref())) {
            let before = changed(&store);
            let retries = self.failed.retries_of(part.name(), &view, now, part.owns());
            let out = part.reconcile(&mut Context {
                store: &store,
                view: &view,
                now,
                names: &mut self.names,
                images: &self.images,
                recorder: &mut self.recorder,
                nodes: &mut self.nodes,
                refusals: &mut self.refusals,
                load_balancer: self.load_balancer,
                retries: &retries,
            });
            if part.queue().is_none()
                && let Some(at) = out.requeue_at
            {
                self.requeues.push(at);
            }
            let refused = Apply {
                store: &store,
                view: &view,
                now,
                recorder: &mut self.recorder,
                failed: &mut self.failed,
                refusals: &mut self.refusals,
            }
            .run(part.as_ref(), out);
            if let Some(queue) = part.queue_mut() {
                queue.refused(&refused);
            }
            if changed(&store) != before {
                changing.push(part.name());
            }
        }
        self.parts = parts;
        changing
    }
}

#[cfg(test)]
mod tests;
