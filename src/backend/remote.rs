//! A cluster reached over the network through its API server: an existing cluster from a
//! kubeconfig, a k3d cluster, or a served simulated cluster. The runner sees it through the same
//! [`Cluster`] trait as the in-process simulator.
//!
//! Time is the cluster's own ([`TimeSource`]): wall time on real clusters, where
//! [`Cluster::advance`] waits for a watch event on pods or events (or a short poll interval),
//! never past the deadline it was given.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Access, BackendError, BackendKind, Cluster, Inspection};

/// Where a cluster's time comes from.
pub trait TimeSource: Send + Sync + fmt::Debug {
    /// Time elapsed on the cluster since this source was created.
    fn elapsed(&self) -> Duration;

    /// The cluster's current date and time.
    fn timestamp(&self) -> jiff::Timestamp;

    /// How long [`Cluster::advance`] waits for a change before the runner looks again (wall time).
    fn poll_interval(&self) -> Duration;

    /// Whether cluster time is wall time, so a cluster-time deadline also bounds a wall wait.
    fn is_wall(&self) -> bool;
}

/// Wall time: real clusters run on it.
#[derive(Debug, Clone, Copy)]
pub struct WallTime {
    started: Instant,
    poll: Duration,
}

impl WallTime {
    /// How long a real cluster is left alone between two looks when no watch event arrives.
    pub const POLL: Duration = Duration::from_secs(2);

    /// Wall time from now, polling every [`Self::POLL`].
    #[must_use]
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            poll: Self::POLL,
        }
    }
}

impl TimeSource for WallTime {
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }

    fn is_wall(&self) -> bool {
        true
    }
}

/// Which objects a cluster's watches cover.
#[derive(Debug, Clone)]
pub enum WatchScope {
    /// Every namespace (a cluster the run owns whole).
    AllNamespaces,
    /// These namespaces only, as they come into existence (a shared cluster).
    Namespaces(Arc<Mutex<BTreeSet<String>>>),
}

/// Something that must be done when the runner is finished with a cluster (delete namespaces,
/// delete a k3d cluster, stop a served simulator).
pub trait Release: Send + Sync {
    /// Releases what the run created. Must be idempotent.
    ///
    /// # Errors
    /// When something could not be removed; the message names it.
    fn release(&self) -> BoxFuture<'_, Result<(), BackendError>>;
}

/// A cluster behind an API server, for the runner.
pub struct RemoteCluster {
    backend: BackendKind,
    client: kube::Client,
    watch_client: kube::Client,
    time: Arc<dyn TimeSource>,
    offset: Duration,
    scope: WatchScope,
    changes: watch::Sender<u64>,
    seen: Mutex<u64>,
    watchers: Mutex<Vec<(String, JoinHandle<()>)>>,
    release: Option<Box<dyn Release>>,
    /// Keeps whatever serves the cluster alive (a served simulator, a k3d cluster guard).
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// How a person reaches the cluster with kubectl, and the run's renamed namespaces.
    inspection: Option<InspectionSource>,
}

/// What [`RemoteCluster::with_inspection`] reports when the cluster is inspected: how kubectl
/// reaches it, and the namespaces renamed so far.
pub type InspectionSource = Arc<dyn Fn() -> (Access, Vec<(String, String)>) + Send + Sync>;

impl fmt::Debug for RemoteCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteCluster")
            .field("backend", &self.backend)
            .field("time", &self.time)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl RemoteCluster {
    /// A cluster reached with `client` (what the runner uses) whose changes are watched with
    /// `watch_client` (which sees the real namespace names) within `scope`.
    #[must_use]
    pub fn new(
        backend: BackendKind,
        client: kube::Client,
        watch_client: kube::Client,
        time: Arc<dyn TimeSource>,
        scope: WatchScope,
    ) -> Self {
        let offset = time.elapsed();
        Self {
            backend,
            client,
            watch_client,
            time,
            offset,
            scope,
            changes: watch::channel(0).0,
            seen: Mutex::new(0),
            watchers: Mutex::new(Vec::new()),
            release: None,
            _guard: None,
            inspection: None,
        }
    }

    /// Lets the cluster be inspected (`relapse run --keep`, `--pause-after`) the way `source`
    /// says; without it, inspecting the cluster is refused.
    #[must_use]
    pub fn with_inspection(mut self, source: InspectionSource) -> Self {
        self.inspection = Some(source);
        self
    }

    /// Runs `release` when the runner is done with the cluster (see [`Cluster::release`]).
    #[must_use]
    pub fn with_release(mut self, release: Box<dyn Release>) -> Self {
        self.release = Some(release);
        self
    }

    /// Keeps `guard` alive as long as the cluster.
    #[must_use]
    pub fn with_guard(mut self, guard: Box<dyn std::any::Any + Send + Sync>) -> Self {
        self._guard = Some(guard);
        self
    }

    /// Starts watches on pods and events for namespaces (or the whole cluster) not watched yet.
    fn sync_watchers(&self) {
        let wanted: Vec<Option<String>> = match &self.scope {
            WatchScope::AllNamespaces => vec![None],
            WatchScope::Namespaces(set) => set
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned()
                .map(Some)
                .collect(),
        };
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        for ns in wanted {
            let key = ns.clone().unwrap_or_default();
            if watchers.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let client = self.watch_client.clone();
            let changes = self.changes.clone();
            let task = handle.spawn(async move {
                let (pods, events): (kube::Api<Pod>, kube::Api<Event>) = match &ns {
                    Some(ns) => (
                        kube::Api::namespaced(client.clone(), ns),
                        kube::Api::namespaced(client, ns),
                    ),
                    None => (kube::Api::all(client.clone()), kube::Api::all(client)),
                };
                let pods = watcher(pods, watcher::Config::default())
                    .default_backoff()
                    .map(|_| ());
                let events = watcher(events, watcher::Config::default())
                    .default_backoff()
                    .map(|_| ());
                let mut both = std::pin::pin!(futures::stream::select(pods, events));
                while both.next().await.is_some() {
                    changes.send_modify(|n| *n += 1);
                }
            });
            watchers.push((key, task));
        }
    }
}

impl Drop for RemoteCluster {
    fn drop(&mut self) {
        for (_, task) in self
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Cluster for RemoteCluster {
    fn backend(&self) -> BackendKind {
        self.backend
    }

    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn now(&self) -> Duration {
        self.time.elapsed().saturating_sub(self.offset)
    }

    fn timestamp(&self) -> jiff::Timestamp {
        self.time.timestamp()
    }

    fn serve_for_inspection(&self) -> BoxFuture<'_, Result<Inspection, BackendError>> {
        Box::pin(async move {
            let Some(source) = &self.inspection else {
                return Err(BackendError::Unavailable {
                    backend: self.backend,
                    reason: format!(
                        "the {} backend cannot serve its clusters for kubectl",
                        self.backend
                    ),
                });
            };
            // The cluster is already served: there is nothing to keep alive.
            let (access, namespaces) = source();
            Ok(Inspection {
                access,
                namespaces,
                guard: Box::new(()),
            })
        })
    }

    fn release(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            match &self.release {
                Some(r) => r.release().await,
                None => Ok(()),
            }
        })
    }

    fn advance(&self, until: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let now = self.now();
            if now >= until {
                return Ok(());
            }
            self.sync_watchers();
            let mut wait = self.time.poll_interval();
            if self.time.is_wall() {
                wait = wait.min(until - now);
            }
            let mut rx = self.changes.subscribe();
            let last = *self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *rx.borrow_and_update() == last {
                let _ = tokio::time::timeout(wait, rx.changed()).await;
            }
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = *rx.borrow();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Duration);
    impl TimeSource for Fixed {
        fn elapsed(&self) -> Duration {
            self.0
        }
        fn timestamp(&self) -> jiff::Timestamp {
            jiff::Timestamp::UNIX_EPOCH
        }
        fn poll_interval(&self) -> Duration {
            Duration::from_millis(1)
        }
        fn is_wall(&self) -> bool {
            false
        }
    }

    fn client() -> kube::Client {
        crate::sim::SimCluster::start().client()
    }

    #[tokio::test]
    async fn now_counts_from_provisioning_and_advance_returns_at_the_deadline() {
        let time = Arc::new(Fixed(Duration::from_secs(90)));
        let c = RemoteCluster::new(
            BackendKind::Kubeconfig,
            client(),
            client(),
            time,
            WatchScope::Namespaces(Arc::default()),
        );
        assert_eq!(c.now(), Duration::ZERO);
        assert_eq!(c.timestamp(), jiff::Timestamp::UNIX_EPOCH);
        // Already past the deadline: returns at once, without waiting.
        c.advance(Duration::ZERO).await.unwrap();
        // Not yet: returns after the poll interval.
        c.advance(Duration::from_secs(1)).await.unwrap();
        c.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_watch_event_wakes_advance() {
        let sim = crate::sim::SimCluster::start();
        let namespaces: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        namespaces.lock().unwrap().insert("default".to_owned());
        let mut time = WallTime::start();
        time.poll = Duration::from_secs(600);
        let c = RemoteCluster::new(
            BackendKind::Kubeconfig,
            sim.client(),
            sim.client(),
            Arc::new(time),
            WatchScope::Namespaces(namespaces),
        );
        // The first look starts the watches; their initial listing counts as a change.
        c.advance(Duration::from_secs(600)).await.unwrap();
        let before = *c.seen.lock().unwrap();
        let pods: kube::Api<Pod> = kube::Api::namespaced(sim.client(), "default");
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "i"}]}
            }))
            .unwrap();
            pods.create(&kube::api::PostParams::default(), &pod)
                .await
                .unwrap();
        });
        // Polling every ten minutes: only the pod's creation can end this wait in time.
        tokio::time::timeout(
            Duration::from_secs(120),
            c.advance(Duration::from_secs(600)),
        )
        .await
        .expect("a watch event wakes advance")
        .unwrap();
        writer.await.unwrap();
        assert!(*c.seen.lock().unwrap() > before);
    }
}
