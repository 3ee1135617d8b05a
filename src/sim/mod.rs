//! The simulated cluster: a Kubernetes API server, its object store and (later) controllers.
//!
//! The simulator is a cluster and knows nothing of scenarios being run.
//!
//! - [`store`]: objects, resourceVersions, garbage collection, namespaces, CRDs, watch history.
//! - [`api`]: the HTTP API (discovery, CRUD, patch, watch, tables, logs, OpenAPI).
//! - [`serve`]: transports (in-process tower service, HTTPS with a token) and kubeconfigs.
//! - [`resources`]: the table of served resources.
//! - [`clock`]: the time source of every timestamp.
//! - [`patch`]: the four PATCH flavours.
//! - [`rbac`]: who may do what: the RBAC authorizer, impersonation and access reviews.
//! - [`events`]: the one event model of every component, and the recorder that writes events.
//! - [`scheduler`]: where pods go, and the real `FailedScheduling` texts.
//! - [`kubelet`]: the node agent: image pulls, container states, crash back-off, probes.
//! - [`behaviour`]: stand-in programs that images run, and declarative operators.
//! - [`controllers`]: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, endpoints, volumes.
//! - [`faults`]: infrastructure faults (API server latency and errors, node, kill, registry, DNS).
//! - [`gitops`]: GitOps controllers a scenario can enable (Argo CD).
//! - [`engine`]: the control loop that runs all of the above on simulated time.

pub mod api;
pub mod behaviour;
pub mod clock;
mod cluster;
pub mod controllers;
pub mod engine;
pub mod events;
pub mod faults;
pub mod gitops;
pub mod kubelet;
pub mod patch;
pub mod rbac;
pub mod resources;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod versions;

use std::path::Path;

pub use cluster::{SimCluster, SimClusterBuilder};
pub use serve::{ServeError, SimService, TlsEndpoint};

/// Errors of the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A transport could not be started or its kubeconfig written.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Waiting for Ctrl-C failed.
    #[error("failed to wait for Ctrl-C")]
    Signal(#[source] std::io::Error),
}

/// Starts a simulated cluster, writes a kubeconfig for it to `kubeconfig` and serves until Ctrl-C.
///
/// The kubeconfig is left in place afterwards (the user asked for it); nothing else is written.
///
/// # Errors
/// Fails when the server cannot start or the kubeconfig cannot be written.
pub async fn up(kubeconfig: &Path) -> Result<(), SimError> {
    let cluster = SimCluster::start();
    let endpoint = cluster.serve_tls().await?;
    endpoint.write_kubeconfig(kubeconfig)?;
    println!("simulated cluster serving at {}", endpoint.url);
    println!("export KUBECONFIG={}", kubeconfig.display());
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    endpoint.shutdown().await;
    Ok(())
}
