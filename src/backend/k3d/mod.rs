//! The k3d backend: real k3s clusters created, inspected and deleted through the `k3d` CLI.
//!
//! k3d is driven as a program (`std::process`), never linked: what runs here is exactly what a
//! person would type. The pieces:
//!
//! - `spec`: from a scenario's cluster shape to a `k3d cluster create` command line, and the
//!   scenario features k3d cannot express ([`Unsupported`]), which are refused rather than dropped.
//! - `cli`: running the executable with a deadline; a command that hangs is killed with its
//!   whole process group.
//! - `version`: `k3d version`, and refusing a k3d that is not v5.
//! - `cluster`: one cluster's lifecycle (create, kubeconfig, image import, delete, and removing
//!   what a killed create left), the [`K3dCluster`] guard that deletes it when dropped (also
//!   while a test panics) and the process-wide registry a Ctrl-C handler empties.
//! - `ready`: when a new cluster is ready for a scenario (nodes registered, labelled and Ready,
//!   CoreDNS, the default StorageClass).
//! - `owner`: which process owns a cluster and whether it is still alive.
//! - `provision`: the [`K3dBackend`] provisioner: which cluster a scenario gets (a shared one
//!   for the default shape, a fresh one for declared nodes), the run on it through the
//!   kubeconfig backend's namespace isolation, and deleting it afterwards.
//! - `list` and `gc`: `k3d cluster list -o json`, and deleting clusters whose owner is gone.
//!
//! Every operation has a deadline ([`Timeouts`]).

mod cli;
mod cluster;
mod error;
mod gc;
mod kubeconfig;
mod list;
mod owner;
mod provision;
mod ready;
mod spec;
mod version;

pub use cli::{CREATE_STAGES, K3d, Timeouts};
pub use cluster::{K3dCluster, delete_live_clusters, install_ctrl_c_cleanup, live_clusters};
pub use error::K3dError;
pub use gc::{GcReport, KeepReason, gc};
pub use kubeconfig::ClusterKubeconfig;
pub use list::{ListedCluster, parse_cluster_list};
pub use owner::{Liveness, Owner};
pub use provision::{DEFAULT_K3S_VERSION, K3S_VERSION_ENV, K3dBackend, READY_TIMEOUT, refusal};
pub use ready::{label_nodes, wait_until_ready};
pub use spec::{
    ClusterName, CreateOptions, CreateSpec, NAME_PREFIX, NodeLabel, OWNER_ENV, OWNER_LABEL,
    Unsupported, host_arch,
};
pub use version::{K3dVersion, SUPPORTED_MAJOR, TESTED_VERSION};
