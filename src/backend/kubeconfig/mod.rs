//! The `kubeconfig` backend: scenarios on an existing cluster (kind, minikube, a dev EKS, a
//! served simulated cluster), each in namespaces of its own.
//!
//! Provisioning a "cluster" here means: check that the cluster fits the scenario's shape
//! ([`shape`]), then hand the runner a client behind the [`isolation`] layer, which renames the
//! scenario's namespaces, creates them on first use, refuses cluster-scoped writes unless
//! allowed, and deletes everything the run created when it is released. A scenario and its
//! counterfactual run one after the other under the same namespace names.

pub mod gc;
pub mod isolation;
pub mod shape;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use gc::{NamespaceGcReport, gc_namespaces};
pub use isolation::{Isolation, IsolationError, IsolationGuard, NamespaceMap, release_live_runs};

use super::remote::{Release, RemoteCluster, TimeSource, WallTime, WatchScope};
use super::{Access, BackendError, BackendKind, Cluster};
use crate::backend::Provisioner;
use crate::scenario::Scenario;

/// Errors of reading a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The file could not be read or parsed.
    #[error("failed to read the kubeconfig {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// kube-rs rejected it (unknown context, bad certificates...).
    #[error("failed to use the kubeconfig {}{}", .path.display(), .context.as_ref().map(|c| format!(" with context {c}")).unwrap_or_default())]
    Config {
        /// The file.
        path: PathBuf,
        /// The context asked for.
        context: Option<String>,
        /// What went wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
}

/// Provisions isolated runs on one existing cluster.
#[derive(Clone)]
pub struct KubeconfigBackend {
    config: kube::Config,
    allow_cluster_scoped: bool,
    run_token: String,
    time: Arc<dyn TimeSource>,
    backend: BackendKind,
    /// How a person reaches the cluster with kubectl, when known.
    access: Option<Access>,
}

impl std::fmt::Debug for KubeconfigBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeconfigBackend")
            .field("cluster_url", &self.config.cluster_url)
            .field("allow_cluster_scoped", &self.allow_cluster_scoped)
            .field("run_token", &self.run_token)
            .finish_non_exhaustive()
    }
}

/// A random token naming this process's runs (`[a-z0-9]{8}`).
fn random_token() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
        })
        .collect()
}

impl KubeconfigBackend {
    /// A backend for the cluster `config` reaches, on wall time, refusing cluster-scoped writes.
    #[must_use]
    pub fn new(config: kube::Config) -> Self {
        Self {
            config,
            allow_cluster_scoped: false,
            run_token: random_token(),
            time: Arc::new(WallTime::start()),
            backend: BackendKind::Kubeconfig,
            access: None,
        }
    }

    /// Reads `path` and uses `context` (default: its current context).
    ///
    /// # Errors
    /// When the file cannot be read or kube-rs rejects it.
    pub async fn from_file(path: &Path, context: Option<&str>) -> Result<Self, KubeconfigError> {
        let config = Self::client_config(path, context).await?;
        // The person's own file, not a copy: its relative certificate paths keep working.
        Ok(Self {
            access: Some(Access::File {
                path: path.to_path_buf(),
                context: context.map(str::to_owned),
            }),
            ..Self::new(config)
        })
    }

    /// The client configuration of `path`'s `context` (default: its current context), as
    /// this backend connects; `relapse capture` reads clusters with it too.
    ///
    /// # Errors
    /// When the file cannot be read or kube-rs rejects it.
    pub async fn client_config(
        path: &Path,
        context: Option<&str>,
    ) -> Result<kube::Config, KubeconfigError> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|source| KubeconfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| KubeconfigError::Config {
                path: path.to_path_buf(),
                context: context.map(str::to_owned),
                source,
            })
    }

    /// Uses a parsed kubeconfig with `context` (default: its current context).
    ///
    /// # Errors
    /// When kube-rs rejects it.
    pub async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        context: Option<&str>,
    ) -> Result<Self, kube::config::KubeconfigError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let mut copy = kubeconfig.clone();
        if let Some(context) = context {
            copy.current_context = Some(context.to_owned());
        }
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
        // JSON is YAML: kubectl reads it as it is.
        let access = serde_json::to_string_pretty(&copy)
            .ok()
            .map(Access::Kubeconfig);
        Ok(Self {
            access,
            ..Self::new(config)
        })
    }

    /// Whether scenarios may create, change and delete cluster-scoped objects (CRDs,
    /// ClusterRoles...). Objects they create are deleted when each run is released.
    #[must_use]
    pub fn allow_cluster_scoped(mut self, allow: bool) -> Self {
        self.allow_cluster_scoped = allow;
        self
    }

    /// Names runs with `token` instead of a random one (their namespaces derive from it).
    #[must_use]
    pub fn with_run_token(mut self, token: impl Into<String>) -> Self {
        self.run_token = token.into();
        self
    }

    /// Reads cluster time from `time` instead of the wall clock (a served simulated cluster
    /// whose clock runs ahead of wall time).
    #[must_use]
    pub fn with_time(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.time = time;
        self
    }

    /// Reports clusters as `backend` (the k3d backend reuses this one on its clusters).
    #[must_use]
    pub fn reporting_as(mut self, backend: BackendKind) -> Self {
        self.backend = backend;
        self
    }

    /// The namespace renaming runs of `scenario` use.
    #[must_use]
    pub fn namespace_map(&self, scenario: &Scenario) -> NamespaceMap {
        NamespaceMap::new(&self.run_token, &scenario.name)
    }

    fn lifecycle(
        &self,
        action: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::Lifecycle {
            action,
            backend: self.backend,
            source: Box::new(e),
        }
    }

    /// Checks the cluster against the scenario's shape, then prepares an isolated run.
    async fn provision_run(&self, scenario: &Scenario) -> Result<RemoteCluster, BackendError> {
        refuse_postgres(scenario, self.backend)?;
        let raw = kube::Client::try_from(self.config.clone())
            .map_err(|e| self.lifecycle("connect to", e))?;
        let nodes = Api::<Node>::all(raw.clone())
            .list(&ListParams::default())
            .await;
        let classes = Api::<StorageClass>::all(raw.clone())
            .list(&ListParams::default())
            .await;
        match (nodes, classes) {
            (Ok(nodes), Ok(classes)) => {
                let reasons = shape::misfits(&scenario.cluster, &nodes.items, &classes.items);
                if !reasons.is_empty() {
                    return Err(BackendError::Unsuitable {
                        backend: self.backend,
                        reasons,
                    });
                }
            }
            // A user who may not list nodes gets the run; its symptoms will tell.
            (Err(kube::Error::Api(s)), _) | (_, Err(kube::Error::Api(s))) if s.code == 403 => {
                tracing::warn!("cannot check the cluster's shape: {}", s.message);
            }
            (Err(e), _) | (_, Err(e)) => return Err(self.lifecycle("connect to", e)),
        }
        let iso = Isolation::new(
            self.namespace_map(scenario),
            raw.clone(),
            self.config.clone(),
            self.allow_cluster_scoped,
        );
        let client = iso.client();
        let scope = WatchScope::Namespaces(iso.owned());
        let mut cluster = RemoteCluster::new(self.backend, client, raw, self.time.clone(), scope)
            .with_release(Box::new(ReleaseIsolation(iso.clone(), self.backend)));
        if let Some(access) = self.access.clone() {
            let renamed = iso.clone();
            cluster = cluster
                .with_inspection(Arc::new(move || (access.clone(), renamed.map().renamed())));
        }
        Ok(cluster.with_guard(Box::new(IsolationGuard(iso))))
    }
}

/// Refuses scenarios with a `postgres:` section on a real cluster.
///
/// On the simulator the harness connects stand-in programs to the server it started; on a
/// real cluster the scenario's real images would have to reach that server themselves, which a
/// loopback server on this machine is not.
///
/// # Errors
/// [`BackendError::Unsuitable`] saying so, when the scenario has a `postgres:` section.
pub(crate) fn refuse_postgres(
    scenario: &Scenario,
    backend: BackendKind,
) -> Result<(), BackendError> {
    if scenario.postgres.is_none() {
        return Ok(());
    }
    Err(BackendError::Unsuitable {
        backend,
        reasons: vec![
            "the scenario's programs log in to the Postgres server the harness starts on this \
             machine, which pods of this cluster cannot reach; run it with `--backend sim`"
                .to_owned(),
        ],
    })
}

struct ReleaseIsolation(Arc<Isolation>, BackendKind);

impl Release for ReleaseIsolation {
    fn release(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.0.release().await.map_err(|e| BackendError::Lifecycle {
                action: "release",
                backend: self.1,
                source: Box::new(e),
            })
        })
    }
}

impl Provisioner for KubeconfigBackend {
    fn kind(&self) -> BackendKind {
        self.backend
    }

    fn provision<'a>(
        &'a self,
        scenario: &'a Scenario,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, BackendError>> {
        Box::pin(async move {
            self.provision_run(scenario)
                .await
                .map(|c| Box::new(c) as Box<dyn Cluster>)
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::PostParams;

    use super::*;
    use crate::backend::served::{Pace, ServedSim};
    use crate::sim::engine::EngineConfig;

    fn scenario() -> Scenario {
        crate::yaml::from_str(
            "name: demo\ndescription: d\nsource: s\nbreak:\n  steps: []\n  symptoms: []\n\
             fix: []\nconverge: {within: 1m, expect: []}\n",
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_inspected_run_names_its_kubeconfig_and_renamed_namespaces() {
        let config = EngineConfig::new(Default::default(), Default::default()).unwrap();
        let sim = ServedSim::start(config, Pace::Fast).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        crate::sim::serve::write_kubeconfig_file(&path, &sim.kubeconfig_yaml().unwrap()).unwrap();

        // The person's own file is named, not copied.
        let backend = KubeconfigBackend::from_file(&path, None)
            .await
            .unwrap()
            .allow_cluster_scoped(true);
        let cluster = backend.provision(&scenario()).await.unwrap();
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "demo"}})).unwrap();
        kube::Api::all(cluster.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "c", "namespace": "demo"}}),
        )
        .unwrap();
        kube::Api::<ConfigMap>::namespaced(cluster.client(), "demo")
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
        let inspection = cluster.serve_for_inspection().await.unwrap();
        assert_eq!(
            inspection.access,
            Access::File {
                path: path.clone(),
                context: None
            }
        );
        let mapped = backend.namespace_map(&scenario()).map("demo");
        assert_eq!(inspection.namespaces, [("demo".to_owned(), mapped.clone())]);
        // That namespace is where the object is on the cluster.
        let raw = kube::Client::try_from(backend.config.clone()).unwrap();
        kube::Api::<ConfigMap>::namespaced(raw, &mapped)
            .get("c")
            .await
            .unwrap();
        cluster.release().await.unwrap();

        // A parsed kubeconfig (a k3d cluster's) is handed over whole, on the chosen context.
        let kubeconfig = Kubeconfig::read_from(&path).unwrap();
        let context = kubeconfig.contexts[0].name.clone();
        let backend = KubeconfigBackend::from_kubeconfig(kubeconfig, Some(&context))
            .await
            .unwrap();
        let cluster = backend.provision(&scenario()).await.unwrap();
        let inspection = cluster.serve_for_inspection().await.unwrap();
        let Access::Kubeconfig(text) = &inspection.access else {
            panic!("{:?}", inspection.access);
        };
        let copy = Kubeconfig::from_yaml(text).unwrap();
        assert_eq!(copy.current_context.as_deref(), Some(context.as_str()));
        assert!(inspection.namespaces.is_empty());
        cluster.release().await.unwrap();
    }
}
