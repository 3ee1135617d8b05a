//! The simulated cluster: a Kubernetes API server, its object store and (later) controllers.
//!
//! The simulator is a cluster and knows nothing of scenarios being run.

pub mod clock;
pub mod patch;
pub mod resources;
pub mod store;

use std::path::Path;

/// Errors of the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The API server is not part of this build yet.
    #[error("the simulated cluster's API server is not built yet")]
    NotBuilt,
}

/// Starts a simulated cluster, writes a kubeconfig for it to `kubeconfig` and serves until Ctrl-C.
///
/// # Errors
/// Fails when the server cannot start or the kubeconfig cannot be written.
#[allow(clippy::unused_async)]
pub async fn up(kubeconfig: &Path) -> Result<(), SimError> {
    let _ = kubeconfig;
    Err(SimError::NotBuilt)
}
