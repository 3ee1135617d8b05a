//! Scenarios on k3d clusters: which cluster a scenario gets, and the run on it.
//!
//! **Reuse rule.** A scenario whose `cluster:` section makes the same `k3d cluster create`
//! command line as the default shape (one amd64 node, control plane and worker, no extra
//! labels or taints, no storage classes but k3s's own, no ServiceLB) runs on the *shared*
//! cluster: one per [`K3dBackend`], created on first use and deleted when the backend is
//! dropped or [`K3dBackend::delete_shared`] is called. Every other scenario declares nodes,
//! labels, taints, pod limits or a load balancer the shared cluster does not have, so it gets a
//! *fresh* cluster of its own, deleted when the run is released or dropped. Scenarios k3d cannot
//! reproduce at all ([`super::Unsupported`]) and scenarios with a `postgres:` section are refused
//! with [`BackendError::Unsuitable`] before anything is created.
//!
//! On either cluster the run goes through the kubeconfig backend's machinery: the scenario's
//! namespaces are renamed, created on first write and deleted on release, so scenarios sharing
//! a cluster do not see each other. Cluster-scoped writes (CRDs) are allowed, because the
//! cluster is this process's own; those a run creates are deleted when it is released.
//!
//! Every cluster is registered with the process-wide registry before k3d starts, so a Ctrl-C
//! handler ([`super::install_ctrl_c_cleanup`]) or [`super::delete_live_clusters`] deletes it too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::cli::K3d;
use super::cluster::K3dCluster;
use super::error::K3dError;
use super::owner::Owner;
use super::spec::{ClusterName, CreateOptions, CreateSpec};
use super::version::K3dVersion;
use crate::backend::kubeconfig::{KubeconfigBackend, refuse_postgres};
use crate::backend::remote::TimeSource;
use crate::backend::{BackendError, BackendKind, Cluster, Inspection, Provisioner};
use crate::scenario::{self, Scenario};

/// Environment variable choosing the k3s version of the clusters, e.g. `v1.32.5-k3s1`: the
/// nodes run the image `rancher/k3s:<version>`.
pub const K3S_VERSION_ENV: &str = "RELAPSE_K3S_VERSION";
/// The k3s version used when [`K3S_VERSION_ENV`] is unset.
pub const DEFAULT_K3S_VERSION: &str = "v1.32.5-k3s1";
/// How long a new cluster may take, once k3d has created it, to be ready for a scenario: API
/// serving, nodes registered, labelled and Ready, CoreDNS available, default StorageClass present
/// (one deadline for all of them: see [`super::wait_until_ready`]).
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The shared cluster's state.
enum Shared {
    /// Not asked for yet.
    Absent,
    /// Created and ready.
    Ready(Arc<K3dCluster>),
    /// Creating it failed; later scenarios report the same failure instead of trying again.
    Failed(String),
}

/// Provisions k3d clusters for scenarios (see the module documentation for which cluster a
/// scenario gets).
pub struct K3dBackend {
    k3d: K3d,
    options: CreateOptions,
    /// What the shared cluster is made from.
    shared_spec: CreateSpec,
    shared: tokio::sync::Mutex<Shared>,
    run_token: Option<String>,
    time: Option<Arc<dyn TimeSource>>,
    ready_timeout: Duration,
    /// What `k3d version` said, once it said a supported version.
    version: std::sync::OnceLock<K3dVersion>,
}

impl std::fmt::Debug for K3dBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3dBackend")
            .field("k3d", &self.k3d)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl K3dBackend {
    /// Clusters made with `k3d` from `options`.
    ///
    /// # Errors
    /// [`K3dError::InvalidVersion`] when the k3s version is not an image tag.
    pub fn new(k3d: K3d, options: CreateOptions) -> Result<Self, K3dError> {
        let shared_spec = match CreateSpec::new(
            &scenario::ClusterShape::default(),
            &options,
            ClusterName::generate(Some("shared")),
            Owner::current(),
        ) {
            Ok(spec) => spec,
            // A host k3d cannot run the default amd64 node on still runs scenarios that
            // declare nodes of its own architecture on fresh clusters.
            Err(K3dError::CannotReproduce(_)) => CreateSpec::new(
                &scenario::ClusterShape::default(),
                &CreateOptions {
                    host_arch: Some(scenario::Arch::Amd64),
                    ..options.clone()
                },
                ClusterName::generate(Some("shared")),
                Owner::current(),
            )?,
            Err(e) => return Err(e),
        };
        Ok(Self {
            k3d,
            options,
            shared_spec,
            shared: tokio::sync::Mutex::new(Shared::Absent),
            run_token: None,
            time: None,
            ready_timeout: READY_TIMEOUT,
            version: std::sync::OnceLock::new(),
        })
    }

    /// The k3s version of this process's clusters: [`K3S_VERSION_ENV`], else
    /// [`DEFAULT_K3S_VERSION`].
    #[must_use]
    pub fn k3s_version() -> String {
        std::env::var(K3S_VERSION_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_K3S_VERSION.to_owned())
    }

    /// The `k3d` on `PATH`, k3s from [`K3S_VERSION_ENV`] (default [`DEFAULT_K3S_VERSION`]), on
    /// this machine's architecture.
    ///
    /// # Errors
    /// [`K3dError::NotInstalled`] without `k3d`, [`K3dError::InvalidVersion`] for a bad version.
    pub fn from_env() -> Result<Self, K3dError> {
        Self::new(K3d::from_path()?, CreateOptions::new(Self::k3s_version()))
    }

    /// Names runs with `token` instead of a random one per run (their namespaces derive from it).
    #[must_use]
    pub fn with_run_token(mut self, token: impl Into<String>) -> Self {
        self.run_token = Some(token.into());
        self
    }

    /// Reads cluster time from `time` instead of the wall clock. For tests whose "k3d" cluster
    /// is a served simulated cluster running ahead of wall time.
    #[must_use]
    pub fn with_time(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.time = Some(time);
        self
    }

    /// How long a new cluster may take to become ready for a scenario (default
    /// [`READY_TIMEOUT`]).
    #[must_use]
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Whether `cluster` runs on the shared cluster rather than a fresh one.
    ///
    /// # Errors
    /// [`K3dError::CannotReproduce`] when k3d cannot make the shape at all.
    pub fn shares(&self, cluster: &scenario::ClusterShape) -> Result<bool, K3dError> {
        Ok(self.plan(cluster, "check")?.same_shape(&self.shared_spec))
    }

    /// Deletes the shared cluster, if it was created. Idempotent; dropping the backend does it
    /// too (logging a failure instead of returning it). Blocks while k3d runs: call it from
    /// synchronous code (the end of a test process), not from async tasks.
    ///
    /// # Errors
    /// When `k3d cluster delete` fails; the cluster stays registered for
    /// [`super::delete_live_clusters`] and later `relapse gc`.
    pub fn delete_shared(&self) -> Result<(), K3dError> {
        let taken = match self.shared.try_lock() {
            Ok(mut shared) => std::mem::replace(&mut *shared, Shared::Absent),
            // Being created right now: it is registered, so delete_live_clusters gets it.
            Err(_) => return Ok(()),
        };
        match taken {
            Shared::Ready(cluster) => match Arc::try_unwrap(cluster) {
                Ok(cluster) => cluster.delete(),
                // A run still holds it: the last one to let go deletes it.
                Err(_) => Ok(()),
            },
            Shared::Absent | Shared::Failed(_) => Ok(()),
        }
    }

    fn plan(&self, cluster: &scenario::ClusterShape, hint: &str) -> Result<CreateSpec, K3dError> {
        CreateSpec::new(
            cluster,
            &self.options,
            ClusterName::generate(Some(hint)),
            Owner::current(),
        )
    }

    fn lifecycle(
        action: &'static str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> BackendError {
        BackendError::Lifecycle {
            action,
            backend: BackendKind::K3d,
            source: e.into(),
        }
    }

    /// The installed k3d's version, checked once per backend before its first cluster: an old
    /// k3d is refused with the version it reported instead of failing on an unknown flag.
    ///
    /// # Errors
    /// [`K3dError::UnsupportedVersion`], or why `k3d version` could not be read.
    pub async fn k3d_version(&self) -> Result<K3dVersion, K3dError> {
        if let Some(version) = self.version.get() {
            return Ok(version.clone());
        }
        let k3d = self.k3d.clone();
        let version = tokio::task::spawn_blocking(move || k3d.check_version())
            .await
            .map_err(|_| K3dError::CommandFailed {
                command: "k3d version".to_owned(),
                code: None,
                stderr_tail: "the thread running it panicked".to_owned(),
            })??;
        tracing::info!(program = %self.k3d.program().display(), "using {version}");
        Ok(self.version.get_or_init(|| version).clone())
    }

    /// Creates a cluster from `spec` and waits until it is ready for a scenario; on failure the
    /// cluster is deleted (the guard is dropped).
    async fn create(&self, spec: CreateSpec) -> Result<K3dCluster, K3dError> {
        self.k3d_version().await?;
        let k3d = self.k3d.clone();
        let cluster = tokio::task::spawn_blocking(move || K3dCluster::create(&k3d, &spec))
            .await
            .map_err(|_| K3dError::CommandFailed {
                command: "k3d cluster create".to_owned(),
                code: None,
                stderr_tail: "the thread running it panicked".to_owned(),
            })??;
        cluster.ready_client(self.ready_timeout).await?;
        Ok(cluster)
    }

    async fn shared_cluster(&self) -> Result<Arc<K3dCluster>, BackendError> {
        let mut shared = self.shared.lock().await;
        match &*shared {
            Shared::Ready(cluster) => return Ok(cluster.clone()),
            Shared::Failed(why) => {
                return Err(Self::lifecycle(
                    "create",
                    format!("the shared cluster: {why}"),
                ));
            }
            Shared::Absent => {}
        }
        match self.create(self.shared_spec.clone()).await {
            Ok(cluster) => {
                let cluster = Arc::new(cluster);
                *shared = Shared::Ready(cluster.clone());
                Ok(cluster)
            }
            Err(e) => {
                *shared = Shared::Failed(crate::backend::error_chain(&e));
                Err(Self::lifecycle("create", e))
            }
        }
    }

    async fn provision_run(&self, scenario: &Scenario) -> Result<K3dRun, BackendError> {
        refuse_postgres(scenario, BackendKind::K3d)?;
        let spec = self
            .plan(&scenario.cluster, &scenario.name)
            .map_err(|e| match e {
                K3dError::CannotReproduce(reasons) => BackendError::Unsuitable {
                    backend: BackendKind::K3d,
                    reasons: reasons.iter().map(ToString::to_string).collect(),
                },
                other => Self::lifecycle("create", other),
            })?;
        // A scenario that adds or removes nodes gets a cluster of its own to change.
        let reshapes = scenario_steps(scenario).any(|s| s.shape_change().is_some());
        let (cluster, own) = if spec.same_shape(&self.shared_spec) && !reshapes {
            (self.shared_cluster().await?, false)
        } else {
            let cluster = self
                .create(spec.clone())
                .await
                .map_err(|e| Self::lifecycle("create", e))?;
            (Arc::new(cluster), true)
        };
        import_images(&cluster, scenario).await;

        let kubeconfig = cluster.kubeconfig();
        let mut backend = KubeconfigBackend::from_kubeconfig(
            kubeconfig.kubeconfig().clone(),
            Some(kubeconfig.context()),
        )
        .await
        .map_err(|e| Self::lifecycle("connect to", e))?
        .reporting_as(BackendKind::K3d)
        .allow_cluster_scoped(true);
        if let Some(token) = &self.run_token {
            backend = backend.with_run_token(token.clone());
        }
        if let Some(time) = &self.time {
            backend = backend.with_time(time.clone());
        }
        let inner = backend.provision(scenario).await?;
        Ok(K3dRun {
            inner,
            own: tokio::sync::Mutex::new(own.then_some(cluster)),
            k3d: self.k3d.clone(),
            spec,
            host_arch: self.options.host_arch,
            ready_timeout: self.ready_timeout,
            added: std::sync::Mutex::new(BTreeMap::new()),
        })
    }
}

impl Drop for K3dBackend {
    fn drop(&mut self) {
        let taken = std::mem::replace(self.shared.get_mut(), Shared::Absent);
        // Dropping the last reference deletes the cluster (see K3dCluster's Drop).
        drop(taken);
    }
}

/// Copies the images the scenario lists from the local Docker daemon into the cluster. Images
/// the daemon does not have are pulled by the nodes from their registries as usual, so a
/// failed import is logged, not fatal (k3d fails when none of the images is local).
async fn import_images(cluster: &Arc<K3dCluster>, scenario: &Scenario) {
    let images: Vec<String> = scenario.images.keys().cloned().collect();
    if images.is_empty() {
        return;
    }
    let cluster = cluster.clone();
    let imported = tokio::task::spawn_blocking(move || cluster.import_images(&images)).await;
    match imported {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            error = %crate::backend::error_chain(&e),
            "failed to import the scenario's images; the nodes pull them from their registries"
        ),
        Err(_) => tracing::warn!("the thread importing images panicked"),
    }
}

/// One run on a k3d cluster: the kubeconfig backend's isolated run, and the cluster itself when
/// the run has one of its own.
struct K3dRun {
    /// Dropped first: its namespaces are deleted before the cluster goes.
    inner: Box<dyn Cluster>,
    own: tokio::sync::Mutex<Option<Arc<K3dCluster>>>,
    k3d: K3d,
    /// What the cluster was created from.
    spec: CreateSpec,
    host_arch: Option<scenario::Arch>,
    ready_timeout: Duration,
    /// Nodes the run added (`addNode`): Kubernetes name → container.
    added: std::sync::Mutex<BTreeMap<String, String>>,
}

impl K3dRun {
    fn unsuitable(reasons: Vec<String>) -> BackendError {
        BackendError::Unsuitable {
            backend: BackendKind::K3d,
            reasons,
        }
    }

    /// An admin client for the run's own cluster (nodes are outside any run's namespaces).
    async fn admin_client(&self) -> Result<kube::Client, BackendError> {
        let own = self.own.lock().await.clone();
        let Some(cluster) = own else {
            return Err(Self::unsuitable(vec![
                "the shared k3d cluster cannot change its shape during a run".to_owned(),
            ]));
        };
        cluster
            .kubeconfig()
            .client()
            .await
            .map_err(|e| K3dBackend::lifecycle("connect to", e))
    }

    /// Runs `k3d` with `args` off the async threads.
    async fn k3d(&self, args: Vec<String>, timeout: Duration) -> Result<(), BackendError> {
        let k3d = self.k3d.clone();
        tokio::task::spawn_blocking(move || k3d.run(&args, timeout).map(|_| ()))
            .await
            .map_err(|_| K3dBackend::lifecycle("reshape", "the thread running k3d panicked"))?
            .map_err(|e| K3dBackend::lifecycle("reshape", e))
    }

    /// `addNode`: `k3d node create`, then the node is Ready (with the labels the kubelet could
    /// not set, and without those k3d copied from another node) before the step ends.
    ///
    /// The node goes with the cluster: k3d copies the `k3d.cluster` Docker label of the node it
    /// clones onto it (`NodeAddToCluster`, `pkg/client/node.go`), and `k3d cluster delete`
    /// deletes every container carrying it (`ClusterGet`, `pkg/client/cluster.go`); the copied
    /// [`super::OWNER_ENV`] lets `relapse gc` see whose it is.
    async fn add_node(&self, node: &scenario::Node) -> Result<(), BackendError> {
        let plan = self
            .spec
            .add_node(node, self.host_arch)
            .map_err(|e| match e {
                K3dError::CannotReproduce(reasons) => {
                    Self::unsuitable(reasons.iter().map(ToString::to_string).collect())
                }
                other => K3dBackend::lifecycle("reshape", other),
            })?;
        let client = self.admin_client().await?;
        let timeouts = self.k3d.timeouts();
        // Recorded first: a node whose create was cut short still goes with the cluster.
        self.added
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(plan.node_name().to_owned(), plan.container());
        self.k3d(
            plan.create_args(timeouts.create),
            timeouts.create + timeouts.create_grace,
        )
        .await?;
        let name = plan.node_name().to_owned();
        super::wait_until_ready(
            &client,
            std::slice::from_ref(&name),
            plan.api_labels(),
            self.ready_timeout,
        )
        .await
        .map_err(|e| K3dBackend::lifecycle("reshape", e))?;
        if !plan.foreign_labels().is_empty() {
            let labels: serde_json::Map<String, serde_json::Value> = plan
                .foreign_labels()
                .iter()
                .map(|k| (k.clone(), serde_json::Value::Null))
                .collect();
            let patch = serde_json::json!({"metadata": {"labels": labels}});
            kube::Api::<k8s_openapi::api::core::v1::Node>::all(client)
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .map_err(|e| K3dBackend::lifecycle("reshape", e))?;
        }
        Ok(())
    }

    /// `removeNode`: `k3d node delete` for its container, then its Node object is deleted (k3d
    /// removes only the container).
    async fn remove_node(&self, name: &str) -> Result<(), BackendError> {
        if let Some(why) = self.spec.remove_refusal(name) {
            return Err(Self::unsuitable(vec![why.to_string()]));
        }
        let added = self
            .added
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned();
        let Some(container) = added.or_else(|| self.spec.agent_container(name)) else {
            return Err(Self::unsuitable(vec![format!(
                "node {name} is not a node of the k3d cluster"
            )]));
        };
        let client = self.admin_client().await?;
        self.k3d(
            super::spec::node_delete_args(&container),
            self.k3d.timeouts().delete,
        )
        .await?;
        self.added
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
        let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(client);
        match nodes
            .delete(name, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            // Gone already: what the step asked for.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(K3dBackend::lifecycle("reshape", e)),
        }
    }
}

impl Cluster for K3dRun {
    fn backend(&self) -> BackendKind {
        BackendKind::K3d
    }

    fn client(&self) -> kube::Client {
        self.inner.client()
    }

    fn now(&self) -> Duration {
        self.inner.now()
    }

    fn timestamp(&self) -> jiff::Timestamp {
        self.inner.timestamp()
    }

    fn serve_for_inspection(&self) -> BoxFuture<'_, Result<Inspection, BackendError>> {
        self.inner.serve_for_inspection()
    }

    fn attach_postgres(&self, server: Arc<crate::postgres::Server>) {
        self.inner.attach_postgres(server);
    }

    fn release(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let released = self.inner.release().await;
            let own = self.own.lock().await.take();
            if let Some(cluster) = own {
                let deleted = tokio::task::spawn_blocking(move || match Arc::try_unwrap(cluster) {
                    Ok(cluster) => cluster.delete(),
                    Err(_) => Ok(()),
                })
                .await
                .map_err(|_| K3dBackend::lifecycle("delete", "the thread deleting it panicked"))?;
                deleted.map_err(|e| K3dBackend::lifecycle("delete", e))?;
            }
            released
        })
    }

    fn reshape<'a>(
        &'a self,
        change: &'a scenario::ShapeChange,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            match change {
                scenario::ShapeChange::AddNode(node) => self.add_node(node).await,
                scenario::ShapeChange::RemoveNode(n) => self.remove_node(&n.name).await,
                scenario::ShapeChange::LoadBalancer(_) => {
                    Err(Self::unsuitable(vec![load_balancer_refusal(
                        &change.describe(),
                    )]))
                }
            }
        })
    }

    fn advance(&self, until: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        self.inner.advance(until)
    }
}

/// Every step of the scenario, its mutants' included.
fn scenario_steps(scenario: &Scenario) -> impl Iterator<Item = &scenario::Step> {
    scenario
        .setup
        .iter()
        .chain(&scenario.break_.steps)
        .chain(&scenario.fix)
        .chain(scenario.mutants.iter().flat_map(|m| &m.fix))
}

/// Why k3d cannot switch the LoadBalancer provider during a run.
fn load_balancer_refusal(change: &str) -> String {
    // k3s' ServiceLB is a server flag (`--disable=servicelb`), fixed when the server starts.
    format!(
        "the scenario's steps change the cluster's shape ({change}), which the k3d backend cannot do during a run"
    )
}

/// Why the shape steps of `scenario` cannot run on a k3d cluster made from `spec` on a host of
/// `host_arch`: a LoadBalancer switch, a node joining that k3d cannot make, a server leaving.
fn shape_step_refusals(
    scenario: &Scenario,
    spec: &CreateSpec,
    host_arch: Option<scenario::Arch>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for change in scenario_steps(scenario).filter_map(scenario::Step::shape_change) {
        match &change {
            scenario::ShapeChange::AddNode(node) => {
                if let Err(K3dError::CannotReproduce(r)) = spec.add_node(node, host_arch) {
                    reasons.extend(r.iter().map(ToString::to_string));
                }
            }
            scenario::ShapeChange::RemoveNode(n) => {
                reasons.extend(spec.remove_refusal(&n.name).map(|u| u.to_string()));
            }
            scenario::ShapeChange::LoadBalancer(_) => {
                reasons.push(load_balancer_refusal(&change.describe()));
            }
        }
    }
    reasons
}

/// Why a k3d cluster cannot reproduce `scenario`, from the scenario alone (nothing is created
/// and `k3d` is not called): a `postgres:` section, or a shape k3d cannot make on this host.
#[must_use]
pub fn refusal(scenario: &Scenario) -> Vec<String> {
    if let Err(BackendError::Unsuitable { reasons, .. }) =
        refuse_postgres(scenario, BackendKind::K3d)
    {
        return reasons;
    }
    refusal_on(scenario, &CreateOptions::new(K3dBackend::k3s_version()))
}

/// [`refusal`] with these options (the host's architecture among them).
fn refusal_on(scenario: &Scenario, options: &CreateOptions) -> Vec<String> {
    match CreateSpec::new(
        &scenario.cluster,
        options,
        ClusterName::generate(Some("check")),
        Owner::current(),
    ) {
        Err(K3dError::CannotReproduce(reasons)) => {
            reasons.iter().map(ToString::to_string).collect()
        }
        Ok(spec) => shape_step_refusals(scenario, &spec, options.host_arch),
        // A bad version fails every k3d trial when its run starts, with the reason.
        Err(_) => Vec::new(),
    }
}

impl Provisioner for K3dBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::K3d
    }

    fn provision<'a>(
        &'a self,
        scenario: &'a Scenario,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, BackendError>> {
        Box::pin(async move {
            self.provision_run(scenario)
                .await
                .map(|run| Box::new(run) as Box<dyn Cluster>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Arch;

    fn backend() -> K3dBackend {
        K3dBackend::new(
            K3d::at("/nonexistent/k3d"),
            CreateOptions {
                k3s_version: "v1.32.5-k3s1".to_owned(),
                host_arch: Some(Arch::Amd64),
            },
        )
        .unwrap()
    }

    fn cluster(yaml: &str) -> scenario::ClusterShape {
        crate::yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_default_shape_shares_the_cluster() {
        let b = backend();
        assert!(b.shares(&scenario::ClusterShape::default()).unwrap());
        // Spelling the default node out changes nothing.
        assert!(
            b.shares(&cluster(
                "nodes: [{name: node-1, arch: amd64, roles: [control-plane, worker]}]"
            ))
            .unwrap()
        );
        assert!(
            b.shares(&cluster(
                "storageClasses: [{name: local-path, default: true, kind: node-local, bindingMode: WaitForFirstConsumer}]"
            ))
            .unwrap()
        );
    }

    #[test]
    fn declared_nodes_labels_taints_or_load_balancer_get_a_fresh_cluster() {
        let b = backend();
        for shape in [
            "nodes: [{name: worker-1, roles: [worker]}]",
            "nodes: [{name: node-1, roles: [control-plane, worker], labels: {disk: ssd}}]",
            "nodes: [{name: node-1, roles: [control-plane, worker], taints: [{key: a, effect: NoSchedule}]}]",
            "nodes: [{name: node-1, roles: [control-plane, worker], capacity: {pods: 20}}]",
            "loadBalancer: service-lb",
        ] {
            assert!(!b.shares(&cluster(shape)).unwrap(), "{shape}");
        }
    }

    #[test]
    fn shapes_k3d_cannot_make_are_refused() {
        let err = backend()
            .shares(&cluster("nodes: [{name: n, arch: arm64, roles: [worker]}]"))
            .unwrap_err();
        assert!(matches!(err, K3dError::CannotReproduce(_)), "{err:?}");
    }

    #[test]
    fn a_bad_k3s_version_is_refused_up_front() {
        let err = K3dBackend::new(K3d::at("k3d"), CreateOptions::new("v1.32 latest")).unwrap_err();
        assert!(matches!(err, K3dError::InvalidVersion(_)), "{err:?}");
    }

    fn scenario(steps: &str) -> Scenario {
        crate::yaml::from_str(&format!(
            "name: demo\ndescription: d\nsource: s\n\
             cluster: {{nodes: [{{name: cp, roles: [control-plane]}}, {{name: w1, roles: [worker]}}]}}\n\
             break:\n  steps: []\n  symptoms: []\nfix:\n{steps}\nconverge: {{within: 1m, expect: []}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn shape_steps_k3d_can_make_run_and_the_others_are_refused() {
        let options = CreateOptions {
            k3s_version: "v1.32.5-k3s1".to_owned(),
            host_arch: Some(Arch::Amd64),
        };
        let ok = scenario(
            "  - addNode: {name: w2, roles: [worker], taints: [{key: a, effect: NoSchedule}]}\n  - removeNode: {name: w2}\n  - removeNode: {name: w1}",
        );
        assert_eq!(refusal_on(&ok, &options), Vec::<String>::new());
        let bad = scenario(
            "  - addNode: {name: w3, arch: arm64, roles: [worker]}\n  - removeNode: {name: cp}\n  - loadBalancer: service-lb",
        );
        assert_eq!(
            refusal_on(&bad, &options),
            [
                "arm64 nodes, but this host is amd64: k3d runs node containers of the host's architecture only",
                "node cp leaves, but it is a k3s server of the k3d cluster: deleting its container takes the control plane (or an etcd member) down with it",
                "the scenario's steps change the cluster's shape (switch the LoadBalancer provider to service-lb), which the k3d backend cannot do during a run",
            ]
        );
    }
}
