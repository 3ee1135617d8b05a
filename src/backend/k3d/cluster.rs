//! One k3d cluster's lifecycle, the guard that deletes it, and the registry of live clusters.
//!
//! **After a failed create.** k3d rolls back a create that fails on its own (`Cluster creation
//! FAILED, all changes have been rolled back!`, `cmd/cluster/clusterCreate.go`), but not one it
//! was killed in the middle of: then `k3d cluster delete` removes the node containers, and the
//! network `k3d-<name>` and the image volume `k3d-<name>-images` are removed by name through the
//! Docker daemon, because when no node container exists yet `cluster delete` finds nothing to
//! delete (`cmd/cluster/clusterDelete.go`) and `relapse gc` cannot see the cluster either (k3d
//! lists clusters from their node containers). A create that k3d refused because a cluster of
//! that name already exists is left alone: that cluster is not this process's.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::cli::{self, K3d};
use super::error::K3dError;
use super::kubeconfig::ClusterKubeconfig;
use super::ready::wait_until_ready;
use super::spec::{ClusterName, CreateSpec, NodeLabel};

/// A cluster this process created (or is creating) and has not deleted yet.
#[derive(Debug, Clone)]
struct LiveCluster {
    /// The k3d that made it.
    k3d: K3d,
    /// `k3d cluster create` has not returned yet: an interrupt may leave a network and a
    /// volume without any container.
    creating: bool,
}

/// Clusters this process created and has not deleted yet.
static LIVE: Mutex<BTreeMap<String, LiveCluster>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<String, LiveCluster>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `k3d cluster create` prints (with `Fatalf`, so exit code 1) when the name is taken
/// (`cmd/cluster/clusterCreate.go` in k3d v5.8.3: "Failed to create cluster '%s' because a
/// cluster with that name already exists").
const ALREADY_EXISTS: &str = "because a cluster with that name already exists";

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
    nodes: Vec<String>,
    api_labels: Vec<NodeLabel>,
    deleted: bool,
}

impl K3dCluster {
    /// Creates the cluster and reads its kubeconfig.
    ///
    /// The cluster is registered before k3d starts, so a Ctrl-C during creation deletes it too.
    /// On any failure whatever was created is deleted before the error is returned (see the
    /// module documentation), except when the name belongs to an existing cluster.
    ///
    /// # Errors
    /// [`K3dError::AlreadyExists`] when a cluster of that name exists (it is not touched);
    /// [`K3dError::CommandFailed`] or [`K3dError::Timeout`] from `k3d cluster create` or
    /// `k3d kubeconfig get` (with the command line, exit code and end of stderr), and
    /// [`K3dError::Unparsable`] when the kubeconfig cannot be read.
    pub fn create(k3d: &K3d, spec: &CreateSpec) -> Result<Self, K3dError> {
        let name = spec.name().clone();
        live().insert(
            name.to_string(),
            LiveCluster {
                k3d: k3d.clone(),
                creating: true,
            },
        );
        let timeouts = k3d.timeouts();
        let created = k3d.run(
            &spec.create_args(timeouts.create),
            timeouts.create_kill_after(),
        );
        if let Err(err) = created {
            if is_already_exists(&err) {
                // k3d refused before creating anything; the existing cluster is someone else's.
                live().remove(name.as_str());
                return Err(K3dError::AlreadyExists {
                    name: name.to_string(),
                    source: Box::new(err),
                });
            }
            let killed = matches!(
                err,
                K3dError::Timeout { .. } | K3dError::CommandFailed { code: None, .. }
            );
            clean_up_failed_create(k3d, name.as_str(), killed);
            return Err(err);
        }
        if let Some(entry) = live().get_mut(name.as_str()) {
            entry.creating = false;
        }
        match kubeconfig(k3d, &name) {
            Ok(kubeconfig) => Ok(Self {
                k3d: k3d.clone(),
                name,
                kubeconfig,
                nodes: spec.node_names(),
                api_labels: spec.api_labels().to_vec(),
                deleted: false,
            }),
            Err(err) => {
                clean_up_failed_create(k3d, name.as_str(), false);
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

    /// The Kubernetes names of its nodes.
    #[must_use]
    pub fn nodes(&self) -> &[String] {
        &self.nodes
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

    /// A client for the cluster once it is usable (see [`wait_until_ready`]): its nodes have
    /// registered, carry the labels the kubelet could not set and are Ready, CoreDNS is
    /// available and a default StorageClass exists, all within `timeout`.
    ///
    /// # Errors
    /// [`K3dError::Kubeconfig`] or [`K3dError::Client`] when no client can be built,
    /// [`K3dError::NotReady`] naming what was still missing after `timeout`.
    pub async fn ready_client(&self, timeout: Duration) -> Result<kube::Client, K3dError> {
        let client = self.kubeconfig.client().await?;
        wait_until_ready(&client, &self.nodes, &self.api_labels, timeout).await?;
        Ok(client)
    }

    /// Deletes the cluster.
    ///
    /// # Errors
    /// [`K3dError::CommandFailed`] or [`K3dError::Timeout`] from `k3d cluster delete`.
    pub fn delete(mut self) -> Result<(), K3dError> {
        self.deleted = true;
        delete_registered(&self.k3d, self.name.as_str(), false)
    }
}

impl Drop for K3dCluster {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        if let Err(err) = delete_registered(&self.k3d, self.name.as_str(), false) {
            tracing::warn!(cluster = %self.name, error = %err, "failed to delete k3d cluster");
        }
    }
}

fn is_already_exists(err: &K3dError) -> bool {
    matches!(err, K3dError::CommandFailed { code: Some(1), stderr_tail, .. } if stderr_tail.contains(ALREADY_EXISTS))
}

/// Deletes what a failed create left; forgets the cluster only when that worked.
fn clean_up_failed_create(k3d: &K3d, name: &str, killed: bool) {
    match delete_registered(k3d, name, killed) {
        Ok(()) => {}
        Err(cleanup) => tracing::warn!(
            cluster = %name,
            error = %crate::backend::error_chain(&cleanup),
            "failed to delete the k3d cluster after a failed create"
        ),
    }
}

fn kubeconfig(k3d: &K3d, name: &ClusterName) -> Result<ClusterKubeconfig, K3dError> {
    let args = vec!["kubeconfig".to_owned(), "get".to_owned(), name.to_string()];
    let out = k3d.run(&args, k3d.timeouts().query)?;
    ClusterKubeconfig::parse(&out.stdout, name.as_str(), &out.command)
}

/// `k3d cluster delete <name>`. Deleting a missing cluster succeeds ("No nodes found for given
/// cluster", exit 0: `cmd/cluster/clusterDelete.go`).
pub(crate) fn delete_cluster(k3d: &K3d, name: &str) -> Result<(), K3dError> {
    let args = vec!["cluster".to_owned(), "delete".to_owned(), name.to_owned()];
    k3d.run(&args, k3d.timeouts().delete).map(|_| ())
}

/// Removes the network and image volume k3d makes for cluster `name` (`k3d-<name>` and
/// `k3d-<name>-images`: `ClusterPrepNetwork` and `ClusterPrepImageVolume` in
/// `pkg/client/cluster.go`), whichever exist.
fn remove_leftovers(k3d: &K3d, name: &str) -> Result<(), K3dError> {
    let network = format!("k3d-{name}");
    let volume = format!("k3d-{name}-images");
    let leftover = |what: &'static str, object: &str, e| K3dError::Leftover {
        what,
        name: object.to_owned(),
        source: e,
    };
    let host = k3d
        .docker_host()
        .map_err(|e| leftover("network", &network, e))?;
    crate::docker::remove_network(&host.url, &network)
        .map_err(|e| leftover("network", &network, e))?;
    crate::docker::remove_volume(&host.url, &volume).map_err(|e| leftover("volume", &volume, e))?;
    Ok(())
}

/// Deletes a registered cluster (with its leftovers after a killed create) and, when that
/// worked, forgets it.
fn delete_registered(k3d: &K3d, name: &str, leftovers: bool) -> Result<(), K3dError> {
    delete_cluster(k3d, name)?;
    if leftovers {
        remove_leftovers(k3d, name)?;
    }
    live().remove(name);
    Ok(())
}

/// Names of the clusters this process created and has not deleted.
#[must_use]
pub fn live_clusters() -> Vec<String> {
    live().keys().cloned().collect()
}

/// Stops every running k3d command, then deletes every live cluster of this process (and the
/// network and volume of those whose create was interrupted).
///
/// For a Ctrl-C handler (see [`install_ctrl_c_cleanup`]); returns each cluster's outcome.
pub fn delete_live_clusters() -> Vec<(String, Result<(), K3dError>)> {
    cli::kill_running();
    let clusters: Vec<(String, LiveCluster)> =
        live().iter().map(|(n, c)| (n.clone(), c.clone())).collect();
    clusters
        .into_iter()
        .map(|(name, cluster)| {
            let result = delete_registered(&cluster.k3d, &name, cluster.creating);
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn the_ctrl_c_cleanup_needs_a_runtime() {
        assert!(matches!(install_ctrl_c_cleanup(), Err(K3dError::NoRuntime)));
    }

    /// A Docker daemon on a Unix socket that answers every request `404 Not Found` (nothing
    /// left to remove) and records the request lines.
    fn empty_docker(dir: &std::path::Path) -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
        let path = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 512];
                let n = stream.read(&mut request).unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                log.lock().unwrap().push(line);
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"not found\"}\n",
                );
            }
        });
        (format!("unix://{}", path.display()), seen)
    }

    /// A fake `k3d` whose `cluster create` hangs and whose other commands succeed; it logs
    /// its argv and the pid of the hanging `sleep`.
    fn hanging_fake(dir: &std::path::Path, docker: &str) -> K3d {
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
        K3d::at(program)
            .with_timeouts(super::super::Timeouts {
                create: Duration::from_secs(20),
                create_grace: Duration::ZERO,
                ..super::super::Timeouts::default()
            })
            .with_docker_host(docker)
    }

    #[test]
    fn interrupt_cleanup_stops_a_running_create_and_deletes_the_cluster() {
        use super::super::owner::Owner;
        use super::super::spec::CreateOptions;
        use crate::scenario::ClusterShape;

        let dir = tempfile::tempdir().unwrap();
        let (docker, requests) = empty_docker(dir.path());
        let k3d = hanging_fake(dir.path(), &docker);
        let name = ClusterName::new("relapse-interrupted-q1w2e3r4").unwrap();
        let options = CreateOptions {
            k3s_version: "v1.31.5-k3s1".to_owned(),
            host_arch: Some(crate::scenario::Arch::Amd64),
        };
        let spec = CreateSpec::new(
            &ClusterShape::default(),
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
        // Each also removed the network and image volume the create may have made.
        let removals = requests.lock().unwrap().clone();
        let network = format!("DELETE /networks/k3d-{name} HTTP/1.0");
        let volume = format!("DELETE /volumes/k3d-{name}-images HTTP/1.0");
        assert_eq!(
            removals.iter().filter(|r| **r == network).count(),
            2,
            "{removals:?}"
        );
        assert_eq!(
            removals.iter().filter(|r| **r == volume).count(),
            2,
            "{removals:?}"
        );
    }
}
