//! relapse: a declarative failure-replay test harness for Kubernetes platforms.
//!
//! Every incident a platform team has fixed becomes a YAML scenario that is replayed for ever
//! after: build the cluster, break it the way production broke (and prove the symptom appears),
//! apply the documented fix, wait for convergence and snapshot the converged state.
//!
//! The module tree is the architecture:
//!
//! - [`scenario`]: the scenario format (pure data), its loader, diagnostics and JSON Schema.
//! - [`yaml`]: the one place YAML is parsed.
//! - [`run`]: which trials run where ([`run::Plan`]), the one run path the CLI and the test
//!   harness share ([`run::Runner`]), and the phases of a scenario run (setup, break, fix,
//!   converge, snapshot, counterfactual).
//! - [`backend`]: the clusters scenarios run on (sim, k3d, kubeconfig) and whether they can run here.
//! - [`sim`]: the simulated cluster: API server, object store, controllers.
//! - [`matcher`]: partial-tree matching with operators (`$not`, `$regex`, ...), shared by
//!   expectations and stand-in programs reading their configuration.
//! - [`error_chain`]: the one renderer of error chains (`a: b: c`).
//! - [`docker`]: whether a Docker daemon answers (k3d and container Postgres need one).
//! - [`postgres`]: PostgreSQL servers for scenarios (local, container, url).
//! - [`report`]: the human summary, failure details and JUnit XML.
//! - [`capture`]: a live incident (or kubectl's dumps of it) turned into a scenario.

pub mod backend;
pub mod capture;
pub mod docker;
pub mod error_chain;
pub mod matcher;
pub mod postgres;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod yaml;
