//! [`SimCluster`]: one simulated cluster, its store, its API server and its transports.

use std::sync::Arc;

use crate::sim::api::{ApiConfig, ApiServer};
use crate::sim::clock::{Clock, WallClock};
use crate::sim::serve::{ServeError, SimService, TlsEndpoint, serve_tls};
use crate::sim::store::{Store, StoreConfig};

/// How to build a [`SimCluster`].
#[derive(Debug, Clone)]
pub struct SimClusterBuilder {
    clock: Arc<dyn Clock>,
    store: StoreConfig,
    api: ApiConfig,
}

impl Default for SimClusterBuilder {
    fn default() -> Self {
        Self {
            clock: Arc::new(WallClock),
            store: StoreConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

impl SimClusterBuilder {
    /// Uses `clock` for every timestamp the cluster writes.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The `minor` version `/version` reports (default `32`).
    #[must_use]
    pub fn minor_version(mut self, minor: impl Into<String>) -> Self {
        self.api.minor = minor.into();
        self
    }

    /// The Kubernetes release `/version` reports (its minor and build details).
    #[must_use]
    pub fn versions(mut self, versions: crate::scenario::Versions) -> Self {
        let release = crate::sim::versions::server_version(versions.kubernetes);
        self.api.minor = release.minor.to_owned();
        self.api.kubernetes = versions.kubernetes;
        self
    }

    /// Store tunables (watch history size, graceful pod deletion).
    #[must_use]
    pub fn store_config(mut self, config: StoreConfig) -> Self {
        self.store = config;
        self
    }

    /// Starts the cluster (in-process only; see [`SimCluster::serve_tls`]).
    #[must_use]
    pub fn start(self) -> SimCluster {
        let store = Arc::new(Store::new(self.clock, self.store));
        SimCluster {
            api: ApiServer::new(store, self.api),
        }
    }
}

/// A simulated cluster. Dropping it drops its store; TLS endpoints stop when dropped.
#[derive(Debug, Clone)]
pub struct SimCluster {
    api: ApiServer,
}

impl SimCluster {
    /// Starts a cluster with the wall clock and default settings.
    #[must_use]
    pub fn start() -> Self {
        SimClusterBuilder::default().start()
    }

    /// A builder for non-default settings.
    #[must_use]
    pub fn builder() -> SimClusterBuilder {
        SimClusterBuilder::default()
    }

    /// The object store.
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        self.api.store()
    }

    /// The API server (a plain async request handler).
    #[must_use]
    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    /// A `tower::Service` speaking the Kubernetes API in-process.
    #[must_use]
    pub fn service(&self) -> SimService {
        SimService::new(self.api.clone())
    }

    /// A `kube::Client` talking to this cluster in-process (no socket), default namespace
    /// `default`. Must be called inside a tokio runtime.
    #[must_use]
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// Serves the cluster over HTTPS on 127.0.0.1 with a random port, CA and token.
    ///
    /// # Errors
    /// Fails when certificates cannot be generated or no port can be bound.
    pub async fn serve_tls(&self) -> Result<TlsEndpoint, ServeError> {
        serve_tls(self.api.clone()).await
    }
}
