//! A stand-in for Argo CD (pinned: v3.5.1, gitops-engine as vendored in that release) in the
//! simulated cluster.
//!
//! What a scenario gets with `gitops: {engine: argocd, repos: [...]}`:
//!
//! - the `argocd` namespace, the real `argoproj.io/v1alpha1` `Application` and `AppProject`
//!   CRDs ([`crds`], vendored from `manifests/crds/` of the release) and the `default`
//!   AppProject Argo CD creates on start;
//! - Git repositories served from directories of the scenario ([`repo`]): each revision is a
//!   tree of files; a `commit` step makes a new one;
//! - the application controller ([`app`]): for each Application it renders the desired state
//!   from its source at the target revision, compares it with the live objects ([`diff`]),
//!   assesses their health ([`health`]), writes `status.sync`, `status.health`,
//!   `status.resources` and `status.conditions`, starts automated syncs, and runs sync
//!   operations ([`sync`]: phases, waves, hooks, `operationState`, retries).
//!
//! The controller talks to the API server as any client does ([`client`]): its writes are
//! validated, defaulted, admitted and watched like kubectl's.
//!
//! Every text it writes (condition messages, operation messages, events) is Argo CD's, with
//! the source file of the release cited beside it.

pub mod app;
pub mod client;
pub mod crds;
pub mod diff;
pub mod health;
pub mod repo;
pub mod sync;
#[cfg(test)]
mod tests_sync;

use serde_json::Value;

/// The Argo CD release the stand-in imitates.
pub const VERSION: &str = "v3.5.1";

/// The namespace Argo CD runs in, and where Applications live unless told otherwise.
pub const NAMESPACE: &str = crate::scenario::ARGOCD_NAMESPACE;

/// `apiVersion` of Applications and AppProjects.
pub const API_VERSION: &str = crate::scenario::ARGOCD_API_VERSION;

/// The `source.component` of the application controller's events
/// (controller/appcontroller.go: the event recorder of `argocd-application-controller`).
pub const COMPONENT: &str = "argocd-application-controller";

/// A resource's or an application's health (gitops-engine `pkg/health/health.go`,
/// `HealthStatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// `Healthy`.
    Healthy,
    /// `Suspended`.
    Suspended,
    /// `Progressing`.
    Progressing,
    /// `Missing`.
    Missing,
    /// `Degraded`.
    Degraded,
    /// `Unknown`.
    Unknown,
}

impl HealthStatus {
    /// The status as Argo CD writes it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Suspended => "Suspended",
            Self::Progressing => "Progressing",
            Self::Missing => "Missing",
            Self::Degraded => "Degraded",
            Self::Unknown => "Unknown",
        }
    }
}

/// A health assessment: the status and the check's message (empty when it gives none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// The message (`Waiting for rollout to finish: 0 of 1 updated replicas are available...`).
    pub message: String,
}

impl Health {
    /// A health with a message.
    #[must_use]
    pub fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// Whether the live state matches Git (`SyncStatusCode`, pkg/apis/application/v1alpha1/types.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    /// `Synced`.
    Synced,
    /// `OutOfSync`.
    OutOfSync,
    /// `Unknown`: the comparison failed.
    Unknown,
}

impl SyncStatus {
    /// The status as Argo CD writes it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "Synced",
            Self::OutOfSync => "OutOfSync",
            Self::Unknown => "Unknown",
        }
    }
}

/// One resource an Application manages: desired in Git, live in the cluster, or both (the
/// `ResourceStatus` entries of `status.resources`, and what the comparison works on).
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedResource {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object as rendered from Git (with the destination namespace filled in).
    pub target: Option<Value>,
    /// The object in the cluster, when it exists.
    pub live: Option<Value>,
    /// Whether it is a hook (`argocd.argoproj.io/hook` or `helm.sh/hook`).
    pub hook: bool,
    /// Tracked as the Application's but no longer in Git: a prune removes it.
    pub requires_pruning: bool,
}

/// The stand-in as the engine runs it: the repositories its repo server reads, its client of
/// the API server, and its application controller's memory between rounds.
#[derive(Debug)]
pub struct ArgoCd {
    repos: repo::Repos,
    client: client::Client,
    controller: app::AppController,
}

impl ArgoCd {
    /// Installs Argo CD in the cluster behind `store` ([`crds::install`]) with these
    /// repositories.
    ///
    /// # Errors
    /// When the API server refuses part of the installation.
    pub fn install(
        store: std::sync::Arc<crate::sim::store::Store>,
        repos: repo::Repos,
    ) -> Result<Self, client::ClientError> {
        let client = client::Client::new(store);
        crds::install(&client)?;
        Ok(Self {
            repos,
            client,
            controller: app::AppController::default(),
        })
    }

    /// The repositories.
    #[must_use]
    pub fn repos(&self) -> &repo::Repos {
        &self.repos
    }

    /// Commits `files` as the new tree of the repository at `url`; returns the new SHA. The
    /// controller sees it when it next refreshes the repository, as Argo CD polls Git.
    pub fn commit(&mut self, url: &str, files: repo::Tree, message: &str) -> String {
        self.repos.commit(url, files, message)
    }

    /// One pass of the application controller over every Application; returns when it wants
    /// to run again even if nothing changes (a refresh, a retry).
    pub fn reconcile(
        &mut self,
        recorder: &mut crate::sim::events::EventRecorder,
        now: jiff::Timestamp,
    ) -> Option<jiff::Timestamp> {
        self.controller
            .reconcile(&self.client, &self.repos, recorder, now)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::repo::{Repos, Tree};
    use crate::scenario::ClusterShape;
    use crate::sim::engine::{EngineConfig, EngineError, SimEngine};

    #[test]
    fn installing_serves_applications_and_the_default_project() {
        let mut engine = SimEngine::new(
            EngineConfig::new(ClusterShape::default(), BTreeMap::new()).expect("config"),
        )
        .expect("engine");
        let mut repos = Repos::new();
        repos.commit("https://git.example/gitops.git", Tree::new(), "initial");
        engine.install_argocd(repos).expect("installs");
        let store = engine.store().clone();
        let apps = store
            .resource_for_kind(super::API_VERSION, "Application")
            .expect("Application is served");
        assert!(apps.namespaced);
        let projects = store
            .resource_for_kind(super::API_VERSION, "AppProject")
            .expect("AppProject is served");
        let default = store
            .get(&projects, Some(super::NAMESPACE), "default")
            .expect("the default project exists");
        assert_eq!(default["spec"]["sourceRepos"], serde_json::json!(["*"]));
        assert!(matches!(
            engine.install_argocd(Repos::new()),
            Err(EngineError::Gitops(_))
        ));
        let sha = engine
            .commit("https://git.example/gitops", Tree::new(), "second")
            .expect("commits");
        assert_eq!(sha.len(), 40);
        assert!(
            engine
                .commit("https://elsewhere", Tree::new(), "x")
                .is_err()
        );
    }
}
