//! The `sim` backend: a fresh in-process simulated cluster per scenario run, on simulated time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{BackendError, BackendKind, Cluster};
use crate::run::phases::Provisioner;
use crate::scenario::Scenario;
use crate::sim::behaviour::time::after;
use crate::sim::engine::{EngineConfig, EngineError, SimEngine};

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
                kubeconfig_yaml,
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

    fn advance(&self, until: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
            let target = after(engine.start(), until);
            engine.advance(target).map_err(|e| lifecycle("advance", e))
        })
    }
}
