//! The `sim` backend: a fresh in-process simulated cluster per scenario run, on simulated time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{BackendError, BackendKind, Cluster};
use crate::backend::Provisioner;
use crate::error_chain::error_chain;
use crate::postgres::{Secret, Server, SqlError};
use crate::scenario::Scenario;
use crate::sim::behaviour::time::after;
use crate::sim::behaviour::{PostgresOutcome, PostgresRequest};
use crate::sim::engine::{EngineConfig, EngineError, SimEngine};

/// How many rounds of Postgres answers one [`Cluster::advance`] may take at one instant
/// before the programs count as asking for ever.
const MAX_POSTGRES_ROUNDS: usize = 1_000;

/// Programs kept waiting on Postgres checks at one simulated instant.
#[derive(Debug, thiserror::Error)]
#[error(
    "programs were still waiting on postgres checks at one instant after {0} rounds of answers"
)]
pub struct PostgresLoop(pub usize);

/// Provisions simulated clusters shaped like each scenario's `cluster:` section, with its
/// `images:` behaviours.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimBackend {
    seed: u64,
}

impl SimBackend {
    /// A backend whose clusters use `seed` for every generated name and uid (default 0).
    #[must_use]
    pub const fn with_seed(seed: u64) -> Self {
        Self { seed }
    }

    /// Builds a cluster for `scenario` now (the synchronous core of [`Provisioner::provision`]).
    ///
    /// # Errors
    /// When the scenario's nodes or storage classes cannot be created.
    pub fn cluster(&self, scenario: &Scenario) -> Result<SimClusterHandle, EngineError> {
        let mut config = EngineConfig::new(scenario.cluster.clone(), scenario.images.clone())?;
        config.seed = self.seed;
        let engine = SimEngine::new(config)?;
        Ok(SimClusterHandle {
            client: engine.client(),
            engine: Arc::new(Mutex::new(engine)),
            postgres: Arc::new(Mutex::new(None)),
        })
    }
}

fn lifecycle(action: &'static str, e: EngineError) -> BackendError {
    BackendError::Lifecycle {
        action,
        backend: BackendKind::Sim,
        source: Box::new(e),
    }
}

impl Provisioner for SimBackend {
    fn provision<'a>(
        &'a self,
        scenario: &'a Scenario,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, BackendError>> {
        Box::pin(async move {
            self.cluster(scenario)
                .map(|c| Box::new(c) as Box<dyn Cluster>)
                .map_err(|e| lifecycle("create", e))
        })
    }
}

/// One simulated cluster as the runner sees it. Dropping it drops the cluster.
#[derive(Clone)]
pub struct SimClusterHandle {
    engine: Arc<Mutex<SimEngine>>,
    client: kube::Client,
    /// The server stand-in programs connect to, once attached.
    postgres: Arc<Mutex<Option<Arc<Server>>>>,
}

impl std::fmt::Debug for SimClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClusterHandle")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl SimClusterHandle {
    /// The engine, for tests and tools that look below the API (the store, the clock).
    #[must_use]
    pub fn engine(&self) -> &Arc<Mutex<SimEngine>> {
        &self.engine
    }
}

impl Cluster for SimClusterHandle {
    fn backend(&self) -> BackendKind {
        BackendKind::Sim
    }

    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn now(&self) -> Duration {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    fn diagnostics(&self) -> Vec<String> {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refused_writes()
            .iter()
            .map(|w| format!("refused write: {w}"))
            .collect()
    }

    fn serve_for_inspection(&self) -> BoxFuture<'_, Result<super::Inspection, BackendError>> {
        Box::pin(async move {
            let api = self
                .engine
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .cluster()
                .api()
                .clone();
            let endpoint =
                crate::sim::serve::serve_tls(api)
                    .await
                    .map_err(|e| BackendError::Lifecycle {
                        action: "serve",
                        backend: BackendKind::Sim,
                        source: Box::new(e),
                    })?;
            let kubeconfig_yaml =
                endpoint
                    .kubeconfig_yaml()
                    .map_err(|e| BackendError::Lifecycle {
                        action: "serve",
                        backend: BackendKind::Sim,
                        source: Box::new(e),
                    })?;
            Ok(super::Inspection {
                access: super::Access::Kubeconfig(kubeconfig_yaml),
                namespaces: Vec::new(),
                guard: Box::new(endpoint),
            })
        })
    }

    fn timestamp(&self) -> jiff::Timestamp {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .now()
    }

    fn attach_postgres(&self, server: Arc<Server>) {
        *self.postgres.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .defer_postgres();
    }

    fn start_fault(&self, fault: &crate::scenario::FaultStep) -> Result<(), BackendError> {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .start_fault(fault);
        Ok(())
    }

    fn end_fault(&self, name: &str) -> Result<(), BackendError> {
        let ended = self
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .end_fault(name);
        if ended {
            Ok(())
        } else {
            Err(BackendError::Unavailable {
                backend: BackendKind::Sim,
                reason: format!("no fault named {name} is active"),
            })
        }
    }

    fn install_gitops(
        &self,
        gitops: &crate::scenario::Gitops,
        repos: Vec<(String, crate::scenario::RepoTree)>,
    ) -> Result<(), BackendError> {
        let crate::scenario::GitopsEngine::Argocd = gitops.engine;
        let mut all = crate::sim::gitops::argocd::repo::Repos::new();
        for (url, files) in repos {
            all.commit(&url, files, "initial commit");
        }
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .install_argocd(all)
            .map_err(|e| lifecycle("install argo cd", e))
    }

    fn commit(
        &self,
        url: &str,
        files: crate::scenario::RepoTree,
        message: &str,
    ) -> Result<String, BackendError> {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .commit(url, files, message)
            .map_err(|e| lifecycle("commit", e))
    }

    fn reshape<'a>(
        &'a self,
        change: &'a crate::scenario::ShapeChange,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        use crate::scenario::ShapeChange;
        Box::pin(async move {
            let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
            match change {
                ShapeChange::AddNode(node) => engine.add_node(node),
                ShapeChange::RemoveNode(n) => engine.remove_node(&n.name),
                ShapeChange::LoadBalancer(p) => {
                    engine.set_load_balancer(*p);
                    Ok(())
                }
            }
            .map_err(|e| lifecycle("reshape", e))
        })
    }

    fn advance(&self, until: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let server = self
                .postgres
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for round in 0..MAX_POSTGRES_ROUNDS {
                // The engine stops, clock unmoved, at every Postgres check; the lock is not
                // held while the real server answers. Once answers were given, the programs
                // continue at the same instant only: that is the change this call reports.
                let calls = {
                    let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
                    if round == 0 {
                        let target = after(engine.start(), until);
                        engine.advance(target)
                    } else {
                        engine.settle().map(|_| ())
                    }
                    .map_err(|e| lifecycle("advance", e))?;
                    engine.pending_postgres()
                };
                let Some(server) = server.as_deref().filter(|_| !calls.is_empty()) else {
                    return Ok(());
                };
                for call in calls {
                    let outcome = answer(server, &call.request).await;
                    self.engine
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .postgres_result(&call, &outcome);
                }
            }
            Err(BackendError::Lifecycle {
                action: "advance",
                backend: BackendKind::Sim,
                source: Box::new(PostgresLoop(MAX_POSTGRES_ROUNDS)),
            })
        })
    }
}

/// Carries out one program's Postgres check on the real server: logs in as the container's
/// configured user, password, database and `sslmode`, then runs its statements in order.
async fn answer(server: &Server, request: &PostgresRequest) -> PostgresOutcome {
    // An empty password is no password: the client then has none to offer when asked.
    let password = (!request.password.is_empty()).then(|| Secret::new(request.password.clone()));
    let outcome = async {
        let session = server
            .connect(
                &request.user,
                password.as_ref(),
                &request.database,
                request.sslmode,
            )
            .await?;
        for statement in &request.run {
            session.batch(statement).await?;
        }
        Ok::<_, SqlError>(())
    }
    .await;
    match outcome {
        Ok(()) => PostgresOutcome::Ok,
        Err(error) => match error.server_error() {
            // The server's own text: what the program's driver hands it.
            Some(server_error) => PostgresOutcome::Failed {
                sqlstate: Some(server_error.sqlstate.clone()),
                message: server_error.message.clone(),
            },
            None => PostgresOutcome::Failed {
                sqlstate: None,
                message: error_chain(&error),
            },
        },
    }
}
