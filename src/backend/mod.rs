//! The clusters scenarios run on: the embedded simulator, k3d clusters and existing clusters.
//!
//! Every backend is reached through the same kube client after provisioning; this module decides
//! which backends can run on this machine and says why not when one cannot.

pub mod faults;
pub mod k3d;
pub mod kubeconfig;
pub mod remote;
pub mod served;
pub mod sim;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which kind of cluster a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// The in-process simulated cluster (default).
    Sim,
    /// A real k3s cluster created with the `k3d` CLI (needs Docker).
    K3d,
    /// An existing cluster from a kubeconfig file.
    Kubeconfig,
}

impl BackendKind {
    /// Every backend, in the order trials are listed.
    pub const ALL: [Self; 3] = [Self::Sim, Self::K3d, Self::Kubeconfig];

    /// The backend's name as used in trial names and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::K3d => "k3d",
            Self::Kubeconfig => "kubeconfig",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown backend name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{0}`; expected one of: sim, k3d, kubeconfig")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sim" => Ok(Self::Sim),
            "k3d" => Ok(Self::K3d),
            "kubeconfig" => Ok(Self::Kubeconfig),
            other => Err(UnknownBackend(other.to_owned())),
        }
    }
}

/// Environment variable naming the kubeconfig of an existing cluster for the `kubeconfig` backend.
pub const KUBECONFIG_ENV: &str = "RELAPSE_KUBECONFIG";

/// Whether a backend can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// It can run.
    Available,
    /// It cannot, for this reason (which says how to make it available).
    Unavailable(String),
}

/// Checks whether `kind` can run on this machine, without side effects.
#[must_use]
pub fn availability(kind: BackendKind) -> Availability {
    match kind {
        BackendKind::Sim => Availability::Available,
        BackendKind::K3d => {
            if find_on_path("k3d").is_none() {
                return Availability::Unavailable("the k3d backend needs the `k3d` CLI on PATH (https://k3d.io) and a running Docker daemon".to_owned());
            }
            match crate::docker::daemon() {
                Ok(()) => Availability::Available,
                Err(why) => Availability::Unavailable(format!(
                    "the k3d backend needs a running Docker daemon: {}",
                    error_chain(&why)
                )),
            }
        }
        BackendKind::Kubeconfig => match std::env::var_os(KUBECONFIG_ENV) {
            None => Availability::Unavailable(format!(
                "the kubeconfig backend runs against an existing cluster: pass --kubeconfig PATH or set {KUBECONFIG_ENV} to its kubeconfig file"
            )),
            Some(p) if !Path::new(&p).is_file() => Availability::Unavailable(format!(
                "{KUBECONFIG_ENV} points at {}, which is not a file",
                Path::new(&p).display()
            )),
            Some(_) => Availability::Available,
        },
    }
}

/// Finds an executable on `PATH`.
#[must_use]
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub(crate) use crate::error_chain::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.as_str().parse::<BackendKind>(), Ok(kind));
        }
        assert!("kind".parse::<BackendKind>().is_err());
    }

    #[test]
    fn shape_steps_are_refused_where_the_cluster_cannot_change() {
        let scenario: crate::scenario::Scenario = crate::yaml::from_str(
            "name: demo\ndescription: d\nsource: s\nbreak:\n  steps: []\n  symptoms: []\n\
             fix:\n  - addNode: {name: worker-1, roles: [worker]}\n  - loadBalancer: service-lb\n\
             converge: {within: 1m, expect: []}\n",
        )
        .unwrap();
        assert!(refusal(BackendKind::Sim, &scenario).is_empty());
        let kind = BackendKind::Kubeconfig;
        assert_eq!(
            refusal(kind, &scenario),
            [
                format!(
                    "the scenario's steps change the cluster's shape (add node worker-1), which the {kind} backend cannot do during a run"
                ),
                format!(
                    "the scenario's steps change the cluster's shape (switch the LoadBalancer provider to service-lb), which the {kind} backend cannot do during a run"
                ),
            ]
        );
        // k3d adds nodes (`k3d node create`) but cannot switch k3s' ServiceLB on a running
        // cluster. Its nodes are of the host's architecture.
        if k3d::host_arch() == Some(crate::scenario::Arch::Amd64) {
            assert_eq!(
                refusal(BackendKind::K3d, &scenario),
                [
                    "the scenario's steps change the cluster's shape (switch the LoadBalancer provider to service-lb), which the k3d backend cannot do during a run"
                ]
            );
        }
    }

    #[test]
    fn gitops_scenarios_run_on_the_sim_only() {
        let scenario: crate::scenario::Scenario = crate::yaml::from_str(
            "name: demo\ndescription: d\nsource: s\n\
             gitops: {engine: argocd, repos: [{url: https://git.example/p.git, dir: repos/p}]}\n\
             break:\n  steps: []\n  symptoms: []\nfix: []\nconverge: {within: 1m, expect: []}\n",
        )
        .unwrap();
        assert!(refusal(BackendKind::Sim, &scenario).is_empty());
        for kind in [BackendKind::K3d, BackendKind::Kubeconfig] {
            let reasons = refusal(kind, &scenario);
            assert!(
                reasons
                    .iter()
                    .any(|r| r.contains("the scenario runs Argo CD (`gitops:`)")
                        && r.contains(&format!("on the {kind} backend"))),
                "{kind}: {reasons:?}"
            );
        }
    }

    #[test]
    fn a_mutant_the_backend_cannot_perform_is_refused_alone() {
        let scenario: crate::scenario::Scenario = crate::yaml::from_str(
            "name: demo\ndescription: d\nsource: s\nbreak:\n  steps: []\n  symptoms: []\n\
             fix: []\nconverge: {within: 1m, expect: []}\n\
             mutants:\n  - name: switch-lb\n    description: d\n    fix:\n      - loadBalancer: service-lb\n",
        )
        .unwrap();
        let kind = BackendKind::Kubeconfig;
        assert!(trial_refusal(kind, &scenario, None).is_empty());
        assert_eq!(
            trial_refusal(kind, &scenario, Some("switch-lb")),
            [format!(
                "the scenario's steps change the cluster's shape (switch the LoadBalancer provider to service-lb), which the {kind} backend cannot do during a run"
            )]
        );
        assert_eq!(
            trial_refusal(kind, &scenario, Some("nope")),
            ["the scenario has no mutant `nope`"]
        );
        // The scenario as a whole (what a backend provisions for) still names it.
        assert_eq!(refusal(kind, &scenario).len(), 1);

        // A scenario whose own fix is refused takes its mutants with it.
        let mut refused_fix = scenario.clone();
        refused_fix.fix.clone_from(&scenario.mutants[0].fix);
        refused_fix.mutants[0].fix.clear();
        assert_eq!(
            trial_refusal(kind, &refused_fix, Some("switch-lb")),
            trial_refusal(kind, &refused_fix, None)
        );
        assert_eq!(trial_refusal(kind, &refused_fix, None).len(), 1);
    }

    #[test]
    fn sim_is_always_available() {
        assert_eq!(availability(BackendKind::Sim), Availability::Available);
    }
}

/// Errors of a cluster backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot run on this machine.
    #[error("backend {backend} is unavailable: {reason}")]
    Unavailable {
        /// The backend.
        backend: BackendKind,
        /// Why, and how to make it available.
        reason: String,
    },
    /// The cluster cannot reproduce the scenario faithfully (its shape does not fit); the
    /// scenario is reported as ignored with these reasons, not as failed.
    #[error("the cluster cannot reproduce this scenario: {}", .reasons.join("; "))]
    Unsuitable {
        /// The backend.
        backend: BackendKind,
        /// Each way the cluster does not fit.
        reasons: Vec<String>,
    },
    /// Provisioning or tearing down a cluster failed.
    #[error("failed to {action} a {backend} cluster")]
    Lifecycle {
        /// What was being done (`create`, `delete`).
        action: &'static str,
        /// The backend.
        backend: BackendKind,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A cluster kept or paused for a person to inspect with kubectl (`relapse run --keep`,
/// `--pause-after`).
pub struct Inspection {
    /// How kubectl reaches it.
    pub access: Access,
    /// The scenario's namespaces that have other names on the cluster (the kubeconfig and k3d
    /// backends isolate runs in renamed namespaces): `(scenario's name, cluster's name)`.
    pub namespaces: Vec<(String, String)>,
    /// Keeps the cluster served while alive.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// How kubectl reaches an inspected cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Through this kubeconfig, to be written for the person (it carries credentials: mode
    /// 0600, see [`crate::sim::serve::write_kubeconfig_file`]).
    Kubeconfig(String),
    /// Through the person's own kubeconfig file, with this context (`None`: its current one).
    File {
        /// The file.
        path: PathBuf,
        /// The context.
        context: Option<String>,
    },
}

/// Creates a fresh cluster shaped like a scenario's `cluster:` section.
///
/// The runner (`crate::run`) reaches every backend through this trait and [`Cluster`] only.
pub trait Provisioner: Send + Sync {
    /// The backend its clusters belong to (named in reports even when provisioning fails).
    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }

    /// Provisions a cluster for `scenario`.
    ///
    /// # Errors
    /// When the backend cannot create the cluster; [`BackendError::Unsuitable`] when the
    /// cluster cannot reproduce the scenario (reported as ignored, not failed).
    fn provision<'a>(
        &'a self,
        scenario: &'a crate::scenario::Scenario,
    ) -> futures::future::BoxFuture<'a, Result<Box<dyn Cluster>, BackendError>>;
}

/// Why `kind` cannot replay one trial of `scenario`: its own run (`mutant` `None`: setup,
/// break, fix and counterfactual) or one mutant's. A mutant whose wrong fix the backend cannot
/// perform is refused on its own, so it does not take the scenario's other trials with it; a
/// mutant of a scenario the backend refuses is refused too (it only means something beside a
/// fix that converges there).
#[must_use]
pub fn trial_refusal(
    kind: BackendKind,
    scenario: &crate::scenario::Scenario,
    mutant: Option<&str>,
) -> Vec<String> {
    let mut trial = scenario.clone();
    trial.mutants.clear();
    let mut reasons = refusal(kind, &trial);
    if let Some(name) = mutant {
        match scenario.mutants.iter().find(|m| m.name == name) {
            Some(m) => trial.fix.clone_from(&m.fix),
            None => return vec![format!("the scenario has no mutant `{name}`")],
        }
        for reason in refusal(kind, &trial) {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
    }
    reasons
}

/// Why `kind` cannot reproduce `scenario`, decided from the scenario alone (no cluster is
/// contacted): a `postgres:` section on a real cluster, a shape k3d cannot make. Empty when
/// nothing is known against it; an existing cluster's shape is only checked when a run starts.
#[must_use]
pub fn refusal(kind: BackendKind, scenario: &crate::scenario::Scenario) -> Vec<String> {
    let mut reasons = match kind {
        BackendKind::Sim => return Vec::new(),
        BackendKind::K3d => k3d::refusal(scenario),
        BackendKind::Kubeconfig => {
            let mut reasons = kubeconfig::refuse_postgres(scenario, kind)
                .err()
                .map(|e| match e {
                    BackendError::Unsuitable { reasons, .. } => reasons,
                    other => vec![other.to_string()],
                })
                .unwrap_or_default();
            reasons.extend(refuse_shape_changes(scenario, kind));
            reasons
        }
    };
    reasons.extend(faults::refusals(scenario));
    if scenario.gitops.is_some() {
        reasons.push(format!(
            "the scenario runs Argo CD (`gitops:`), whose stand-in only the sim backend has; installing the real Argo CD {} on the {kind} backend and serving the scenario's repositories to it is not implemented",
            crate::sim::gitops::argocd::VERSION
        ));
    }
    reasons
}

/// Why a backend that cannot change a cluster's shape during a run cannot replay `scenario`:
/// one reason per shape step (`addNode`, `removeNode`, `loadBalancer`) anywhere in it.
#[must_use]
pub fn refuse_shape_changes(
    scenario: &crate::scenario::Scenario,
    kind: BackendKind,
) -> Vec<String> {
    let mutants = scenario.mutants.iter().flat_map(|m| &m.fix);
    scenario
        .setup
        .iter()
        .chain(&scenario.break_.steps)
        .chain(&scenario.fix)
        .chain(mutants)
        .filter_map(crate::scenario::Step::shape_change)
        .map(|c| {
            format!(
                "the scenario's steps change the cluster's shape ({}), which the {kind} backend cannot do during a run",
                c.describe()
            )
        })
        .collect()
}

/// A cluster a scenario runs on, whatever the backend.
///
/// After provisioning, everything goes through [`Cluster::client`]; the runner cannot tell
/// backends apart except through time: on the simulator, time is simulated and
/// [`Cluster::advance`] jumps to the next thing that happens.
pub trait Cluster: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> BackendKind;

    /// A client for the cluster's API.
    fn client(&self) -> kube::Client;

    /// Cluster time elapsed since the cluster was provisioned.
    fn now(&self) -> std::time::Duration;

    /// The cluster's current date and time (what its API server stamps on objects); the wall
    /// clock on real clusters, the simulated clock on the simulator.
    fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    /// What the cluster itself noticed that a failure report should show: on the simulator,
    /// every write a controller asked for and the API server refused (beside the event the real
    /// controller records for it). Real clusters have nothing of the kind: their controllers'
    /// events are all there is.
    fn diagnostics(&self) -> Vec<String> {
        Vec::new()
    }

    /// Serves the cluster for a person with kubectl and returns a kubeconfig for it.
    ///
    /// # Errors
    /// Backends whose clusters are already reachable with their own kubeconfig say so.
    fn serve_for_inspection(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<Inspection, BackendError>> {
        let backend = self.backend();
        Box::pin(async move {
            Err(BackendError::Unavailable {
                backend,
                reason: format!("the {backend} backend cannot serve its clusters for kubectl"),
            })
        })
    }

    /// Wires the cluster's programs to the scenario's Postgres server: on the simulator, a
    /// stand-in program's Postgres requirement then really connects there as the user, with the
    /// password, database and `sslmode` its container was configured with, while simulated time
    /// stands still. Real clusters' programs reach the server themselves: the default does
    /// nothing.
    fn attach_postgres(&self, server: std::sync::Arc<crate::postgres::Server>) {
        let _ = server;
    }

    /// Starts an infrastructure fault (a `fault` step). Only the simulator can make every
    /// fault happen on demand; other backends refuse scenarios with fault steps before they
    /// run ([`refusal`]), so the default only reports that.
    ///
    /// # Errors
    /// When the backend cannot make the fault happen.
    fn start_fault(&self, fault: &crate::scenario::FaultStep) -> Result<(), BackendError> {
        Err(BackendError::Unavailable {
            backend: self.backend(),
            reason: format!(
                "the {} fault can only be made to happen on the sim backend",
                fault.fault_name()
            ),
        })
    }

    /// Ends the active fault named `name` (an `endFault` step).
    ///
    /// # Errors
    /// When no fault of that name is active, or the backend has no faults.
    fn end_fault(&self, name: &str) -> Result<(), BackendError> {
        Err(BackendError::Unavailable {
            backend: self.backend(),
            reason: format!("no fault named {name} is active"),
        })
    }

    /// Changes the cluster's shape (a node joins or leaves, the LoadBalancer provider is
    /// switched), as a scenario step asks. The simulator does it at once; backends that cannot
    /// say so, and [`refusal`] keeps their scenarios from running there in the first place.
    ///
    /// # Errors
    /// [`BackendError::Unsuitable`] where the backend cannot make the change.
    fn reshape<'a>(
        &'a self,
        change: &'a crate::scenario::ShapeChange,
    ) -> futures::future::BoxFuture<'a, Result<(), BackendError>> {
        let backend = self.backend();
        Box::pin(async move {
            Err(BackendError::Unsuitable {
                backend,
                reasons: vec![format!(
                    "the {backend} backend cannot {} during a run",
                    change.describe()
                )],
            })
        })
    }

    /// Installs the scenario's GitOps controller (`gitops:`) with its repositories, each
    /// given by its URL and the files of its first commit. Only the simulator runs Argo CD's
    /// stand-in; [`refusal`] keeps `gitops:` scenarios from the other backends.
    ///
    /// # Errors
    /// When the backend has no GitOps controller or the installation fails.
    fn install_gitops(
        &self,
        gitops: &crate::scenario::Gitops,
        repos: Vec<(String, crate::scenario::RepoTree)>,
    ) -> Result<(), BackendError> {
        let _ = (gitops, repos);
        Err(BackendError::Unavailable {
            backend: self.backend(),
            reason: format!(
                "the {} backend has no GitOps controller: `gitops:` scenarios run on the sim backend",
                self.backend()
            ),
        })
    }

    /// Pushes a commit whose whole tree is `files` to the GitOps repository at `url` (a
    /// `commit` step); returns the new revision's SHA.
    ///
    /// # Errors
    /// When the backend has no GitOps controller or no such repository.
    fn commit(
        &self,
        url: &str,
        files: crate::scenario::RepoTree,
        message: &str,
    ) -> Result<String, BackendError> {
        let _ = (url, files, message);
        Err(BackendError::Unavailable {
            backend: self.backend(),
            reason: format!("the {} backend has no GitOps repositories", self.backend()),
        })
    }

    /// Removes what the run created on the cluster (its namespaces, the cluster itself) and
    /// waits until it is gone. Idempotent. The simulator has nothing to release.
    ///
    /// # Errors
    /// When something could not be removed before its deadline.
    fn release(&self) -> futures::future::BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }

    /// Lets time pass until something in the cluster changes or `until` (cluster time) is reached,
    /// whichever comes first. On the simulator this runs controllers to quiescence and jumps the
    /// clock to the next timer; on real clusters it waits for a watch event or the deadline.
    ///
    /// # Errors
    /// Fails when the cluster can no longer be reached.
    fn advance(
        &self,
        until: std::time::Duration,
    ) -> futures::future::BoxFuture<'_, Result<(), BackendError>>;
}
