//! One k3d cluster's lifecycle, the guard that deletes it, and the registry of live clusters.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};

use super::cli::{self, K3d};
use super::error::K3dError;
use super::kubeconfig::ClusterKubeconfig;
use super::spec::{ClusterName, CreateSpec, NodeLabel};

/// Clusters this process created and has not deleted yet, with the k3d that made them.
static LIVE: Mutex<BTreeMap<String, K3d>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<String, K3d>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running k3d cluster, deleted when this value is dropped (also while a panic unwinds).
///
/// Prefer [`K3dCluster::delete`], which reports failure; a failed delete on drop is only
/// logged, and the cluster stays in the registry for [`delete_live_clusters`] and later for
/// [`super::gc`].
#[derive(Debug)]
pub struct K3dCluster {
    k3d: K3d,
    name: ClusterName,
    kubeconfig: ClusterKubeconfig,
    api_labels: Vec<NodeLabel>,
    deleted: bool,
}

impl K3dCluster {
    /// Creates the cluster and reads its kubeconfig.
    ///
    /// The cluster is registered before k3d starts, so a Ctrl-C during creation deletes it too.
    /// On any failure whatever was created is deleted before the error is returned.
    ///
    /// # Errors
    /// [`K3dError::CommandFailed`] or [`K3dError::Timeout`] from `k3d cluster create` or
    /// `k3d kubeconfig get` (with the command line, exit code and end of stderr), and
    /// [`K3dError::Unparsable`] when the kubeconfig cannot be read.
    pub fn create(k3d: &K3d, spec: &CreateSpec) -> Result<Self, K3dError> {
        let name = spec.name().clone();
        live().insert(name.to_string(), k3d.clone());
        let timeouts = k3d.timeouts();
        let created = k3d
            .run(
                &spec.create_args(timeouts.create),
                timeouts.create + timeouts.create_grace,
            )
            .and_then(|_| kubeconfig(k3d, &name));
        match created {
            Ok(kubeconfig) => Ok(Self {
                k3d: k3d.clone(),
                name,
                kubeconfig,
                api_labels: spec.api_labels().to_vec(),
                deleted: false,
            }),
            Err(err) => {
                // k3d rolls back a failed create itself, but not one it was killed in the middle
                // of, nor one whose kubeconfig could not be read. Deleting a missing cluster is
                // harmless ("No clusters found").
                match delete_cluster(k3d, name.as_str()) {
                    Ok(()) => {
                        live().remove(name.as_str());
                    }
                    Err(cleanup) => tracing::warn!(
                        cluster = %name,
                        error = %cleanup,
                        "failed to delete the k3d cluster after a failed create"
                    ),
                }
                Err(err)
            }
        }
    }

    /// The cluster's name.
    #[must_use]
    pub fn name(&self) -> &ClusterName {
        &self.name
    }

    /// Its admin kubeconfig.
    #[must_use]
    pub fn kubeconfig(&self) -> &ClusterKubeconfig {
        &self.kubeconfig
    }

    /// Copies images from the local Docker daemon into every node (`k3d image import`).
    ///
    /// # Errors
    /// [`K3dError::CommandFailed`] or [`K3dError::Timeout`].
    pub fn import_images(&self, images: &[String]) -> Result<(), K3dError> {
        if images.is_empty() {
            return Ok(());
        }
        let mut args = vec!["image".to_owned(), "import".to_owned()];
        args.extend(images.iter().cloned());
        args.push(format!("--cluster={}", self.name));
        self.k3d.run(&args, self.k3d.timeouts().import).map(|_| ())
    }

    /// A client for the cluster once it is usable: the API answers, the `default`
    /// ServiceAccount exists, and node labels the kubelet could not set are applied.
    ///
    /// # Errors
    /// [`K3dError::Kubeconfig`] or [`K3dError::Client`] when no client can be built,
    /// [`K3dError::ApiNotReady`] after `timeout`, [`K3dError::Api`] when labelling fails.
    pub async fn ready_client(&self, timeout: Duration) -> Result<kube::Client, K3dError> {
        let client = self.kubeconfig.client().await?;
        wait_until_ready(&client, timeout).await?;
        label_nodes(&client, &self.api_labels).await?;
        Ok(client)
    }

    /// Deletes the cluster.
    ///
    /// # Errors
    /// [`K3dError::CommandFailed`] or [`K3dError::Timeout`] from `k3d cluster delete`.
    pub fn delete(mut self) -> Result<(), K3dError> {
        self.deleted = true;
        delete_registered(&self.k3d, self.name.as_str())
    }
}

impl Drop for K3dCluster {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        if let Err(err) = delete_registered(&self.k3d, self.name.as_str()) {
            tracing::warn!(cluster = %self.name, error = %err, "failed to delete k3d cluster");
        }
    }
}

fn kubeconfig(k3d: &K3d, name: &ClusterName) -> Result<ClusterKubeconfig, K3dError> {
    let args = vec!["kubeconfig".to_owned(), "get".to_owned(), name.to_string()];
    let out = k3d.run(&args, k3d.timeouts().query)?;
    ClusterKubeconfig::parse(&out.stdout, name.as_str(), &out.command)
}

/// `k3d cluster delete <name>`.
pub(crate) fn delete_cluster(k3d: &K3d, name: &str) -> Result<(), K3dError> {
    let args = vec!["cluster".to_owned(), "delete".to_owned(), name.to_owned()];
    k3d.run(&args, k3d.timeouts().delete).map(|_| ())
}

/// Deletes and, when that worked, forgets a registered cluster.
fn delete_registered(k3d: &K3d, name: &str) -> Result<(), K3dError> {
    delete_cluster(k3d, name)?;
    live().remove(name);
    Ok(())
}

/// Names of the clusters this process created and has not deleted.
#[must_use]
pub fn live_clusters() -> Vec<String> {
    live().keys().cloned().collect()
}

/// Stops every running k3d command, then deletes every live cluster of this process.
///
/// For a Ctrl-C handler (see [`install_ctrl_c_cleanup`]); returns each cluster's outcome.
pub fn delete_live_clusters() -> Vec<(String, Result<(), K3dError>)> {
    cli::kill_running();
    let clusters: Vec<(String, K3d)> = live().iter().map(|(n, k)| (n.clone(), k.clone())).collect();
    clusters
        .into_iter()
        .map(|(name, k3d)| {
            let result = delete_registered(&k3d, &name);
            (name, result)
        })
        .collect()
}

/// Exit status after an interrupt: 128 + SIGINT, as shells report it.
const INTERRUPTED: i32 = 130;

/// Spawns a task that, on Ctrl-C, deletes every live cluster of this process and exits with
/// status 130.
///
/// # Errors
/// [`K3dError::NoRuntime`] when called outside a Tokio runtime.
pub fn install_ctrl_c_cleanup() -> Result<(), K3dError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| K3dError::NoRuntime)?;
    handle.spawn(async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C; k3d clusters are not cleaned up on interrupt");
            return;
        }
        eprintln!("interrupted: deleting k3d clusters {:?}", live_clusters());
        let outcomes = tokio::task::spawn_blocking(delete_live_clusters)
            .await
            .unwrap_or_default();
        for (name, outcome) in outcomes {
            if let Err(err) = outcome {
                eprintln!("failed to delete k3d cluster {name}: {err}; `relapse gc` will retry");
            }
        }
        std::process::exit(INTERRUPTED);
    });
    Ok(())
}

/// Pause between readiness probes.
const POLL: Duration = Duration::from_millis(500);

/// Waits until the API server serves the `default` ServiceAccount in namespace `default`,
/// which the ServiceAccount controller creates once the control plane works: before that,
/// pods cannot be created in `default`.
///
/// # Errors
/// [`K3dError::ApiNotReady`] with the last request error when `timeout` passes first.
pub async fn wait_until_ready(client: &kube::Client, timeout: Duration) -> Result<(), K3dError> {
    poll_until_ready(client, timeout, POLL).await
}

async fn poll_until_ready(
    client: &kube::Client,
    timeout: Duration,
    poll: Duration,
) -> Result<(), K3dError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut last_error = None;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(K3dError::ApiNotReady {
                after: timeout,
                last_error,
            });
        }
        match tokio::time::timeout(remaining, api.get_opt("default")).await {
            Ok(Ok(Some(_))) => return Ok(()),
            Ok(Ok(None)) | Err(_) => {}
            Ok(Err(err)) => last_error = Some(err),
        }
        tokio::time::sleep(poll.min(remaining)).await;
    }
}

/// Sets node labels through the API (one merge patch per node).
///
/// # Errors
/// [`K3dError::Api`] naming the node when a patch fails.
pub async fn label_nodes(client: &kube::Client, labels: &[NodeLabel]) -> Result<(), K3dError> {
    let mut by_node: BTreeMap<&str, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for l in labels {
        by_node
            .entry(l.node.as_str())
            .or_default()
            .insert(l.key.clone(), serde_json::Value::String(l.value.clone()));
    }
    let api: Api<Node> = Api::all(client.clone());
    for (node, labels) in by_node {
        let patch = serde_json::json!({"metadata": {"labels": labels}});
        api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| K3dError::Api {
                action: format!("label node {node}"),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};

    use super::*;

    // Kubernetes' NotFound Status: message format from k8s.io/apimachinery
    // pkg/api/errors/errors.go, NewNotFound: `%s %q not found`.
    const SA_NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"serviceaccounts \"default\" not found","reason":"NotFound","details":{"name":"default","kind":"serviceaccounts"},"code":404}"#;
    /// Probe interval in tests, so that they take milliseconds.
    const FAST: Duration = Duration::from_millis(10);
    const SA: &str = r#"{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"default","namespace":"default"}}"#;

    fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    /// A client whose server says NotFound `misses` times, then serves the ServiceAccount.
    fn client_found_after(misses: usize) -> (kube::Client, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(
                    req.uri().path(),
                    "/api/v1/namespaces/default/serviceaccounts/default"
                );
                Ok::<_, Infallible>(if n < misses {
                    json(StatusCode::NOT_FOUND, SA_NOT_FOUND)
                } else {
                    json(StatusCode::OK, SA)
                })
            }
        });
        (kube::Client::new(service, "default"), calls)
    }

    #[tokio::test]
    async fn waits_for_the_default_service_account() {
        let (client, calls) = client_found_after(3);
        poll_until_ready(&client, Duration::from_secs(60), FAST)
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        let (client, calls) = client_found_after(usize::MAX);
        let err = poll_until_ready(&client, Duration::from_millis(300), FAST)
            .await
            .unwrap_err();
        assert!(matches!(err, K3dError::ApiNotReady { .. }), "{err:?}");
        assert!(calls.load(Ordering::SeqCst) >= 2);
        assert_eq!(
            err.to_string(),
            "the API server did not serve ServiceAccount default/default within 0.3s"
        );
    }

    #[tokio::test]
    async fn reports_the_last_request_error() {
        let service = tower::service_fn(|_req: Request<kube::client::Body>| async {
            Ok::<_, Infallible>(json(
                StatusCode::FORBIDDEN,
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden","reason":"Forbidden","code":403}"#,
            ))
        });
        let client = kube::Client::new(service, "default");
        let err = poll_until_ready(&client, Duration::from_millis(300), FAST)
            .await
            .unwrap_err();
        let K3dError::ApiNotReady {
            last_error: Some(last),
            ..
        } = err
        else {
            panic!("{err:?}");
        };
        assert!(last.to_string().contains("forbidden"), "{last}");
    }

    #[tokio::test]
    async fn labels_are_merged_per_node() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let ct = parts.headers["content-type"].to_str().unwrap().to_owned();
                log.lock().unwrap().push((
                    parts.method.to_string(),
                    parts.uri.path().to_owned(),
                    ct,
                    String::from_utf8(body.to_vec()).unwrap(),
                ));
                Ok::<_, Infallible>(json(
                    StatusCode::OK,
                    r#"{"kind":"Node","apiVersion":"v1","metadata":{"name":"n"}}"#,
                ))
            }
        });
        let client = kube::Client::new(service, "default");
        let label = |node: &str, key: &str, value: &str| NodeLabel {
            node: node.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        };
        label_nodes(
            &client,
            &[
                label("w1", "node-role.kubernetes.io/worker", ""),
                label("w2", "node-role.kubernetes.io/worker", ""),
                label("w1", "app.kubernetes.io/pool", "a"),
            ],
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "PATCH");
        assert_eq!(seen[0].1, "/api/v1/nodes/w1");
        assert_eq!(seen[0].2, "application/merge-patch+json");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&seen[0].3).unwrap(),
            serde_json::json!({"metadata": {"labels": {
                "app.kubernetes.io/pool": "a",
                "node-role.kubernetes.io/worker": ""
            }}})
        );
        assert_eq!(seen[1].1, "/api/v1/nodes/w2");
    }

    #[test]
    fn the_ctrl_c_cleanup_needs_a_runtime() {
        assert!(matches!(install_ctrl_c_cleanup(), Err(K3dError::NoRuntime)));
    }

    /// A fake `k3d` whose `cluster create` hangs and whose other commands succeed; it logs
    /// its argv and the pid of the hanging `sleep`.
    fn hanging_fake(dir: &std::path::Path) -> K3d {
        use std::os::unix::fs::PermissionsExt;
        let program = dir.join("k3d");
        std::fs::write(
            &program,
            "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$*\" >> \"$d/argv.log\"\nif [ \"$1 $2\" = \"cluster create\" ]; then sleep 600 & echo $! > \"$d/sleep.pid\"; wait $!; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Until a concurrently forked child execs, it holds our write descriptor and exec
        // fails with ETXTBSY: retry, bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Err(e) = std::process::Command::new(&program).arg("warm-up").output() {
            assert!(
                e.raw_os_error() == Some(libc::ETXTBSY) && std::time::Instant::now() < deadline,
                "{e}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Short enough that a broken kill cannot stall the suite for long.
        K3d::at(program).with_timeouts(super::super::Timeouts {
            create: Duration::from_secs(60),
            create_grace: Duration::ZERO,
            ..super::super::Timeouts::default()
        })
    }

    #[test]
    fn interrupt_cleanup_stops_a_running_create_and_deletes_the_cluster() {
        use super::super::owner::Owner;
        use super::super::spec::CreateOptions;
        use crate::scenario::Cluster;

        let dir = tempfile::tempdir().unwrap();
        let k3d = hanging_fake(dir.path());
        let name = ClusterName::new("relapse-interrupted-q1w2e3r4").unwrap();
        let options = CreateOptions {
            k3s_version: "v1.31.5-k3s1".to_owned(),
            host_arch: Some(crate::scenario::Arch::Amd64),
        };
        let spec = CreateSpec::new(
            &Cluster::default(),
            &options,
            name.clone(),
            Owner::current(),
        )
        .unwrap();
        let creating = std::thread::spawn(move || K3dCluster::create(&k3d, &spec));

        // Bounded wait until the create is under way.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !dir.path().join("sleep.pid").exists() || cli::running_commands() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the fake create never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(live_clusters().contains(&name.to_string()));

        let outcomes = delete_live_clusters();
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].0, name.as_str());
        assert!(outcomes[0].1.is_ok(), "{:?}", outcomes[0].1);
        assert!(live_clusters().is_empty());

        let err = creating.join().unwrap().unwrap_err();
        assert!(
            matches!(err, K3dError::CommandFailed { code: None, .. }),
            "{err:?}"
        );
        let log = std::fs::read_to_string(dir.path().join("argv.log")).unwrap();
        let deletes = log
            .lines()
            .filter(|l| *l == format!("cluster delete {name}"))
            .count();
        // One from the interrupt cleanup, one from the failed create's own cleanup.
        assert_eq!(deletes, 2, "{log}");
    }
}
