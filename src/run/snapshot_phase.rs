//! The snapshot phase: read the scenario's objects from the cluster, project them
//! ([`super::snapshot`]) and compare the projection with the committed file
//! ([`super::snapshot_file`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::api::ListParams;
use serde_json::Value;

use super::context::failure;
use super::outcome::{Context, Failure, Phase};
use super::session::Session;
use super::snapshot::{project, render};
use super::snapshot_file::{Comparison, UpdateMode, compare, snapshot_name};
use super::steps;
use crate::error_chain::error_chain;

/// Where snapshots live and how mismatches are handled.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// The `snapshots/` directory.
    pub dir: PathBuf,
    /// What to write on a mismatch.
    pub mode: UpdateMode,
}

impl Session<'_> {
    pub(super) async fn snapshot(&mut self, settings: &SnapshotSettings) -> Result<(), Failure> {
        let client = self.cluster.client();
        let s = &self.loaded.scenario;
        let mut kinds: Vec<(String, String)> = if s.snapshot.kinds.is_empty() {
            [
                "Deployment",
                "ReplicaSet",
                "StatefulSet",
                "DaemonSet",
                "Job",
                "CronJob",
                "Pod",
                "Service",
                "PersistentVolumeClaim",
                "ConfigMap",
                "Secret",
            ]
            .iter()
            .filter_map(|k| Some((steps::builtin_api_version(k)?.to_owned(), (*k).to_owned())))
            .collect()
        } else {
            s.snapshot
                .kinds
                .iter()
                .map(|k| {
                    // A custom kind is read at the apiVersion the scenario applies it with.
                    let api_version =
                        steps::builtin_api_version(k)
                            .map(str::to_owned)
                            .or_else(|| {
                                self.loaded.manifests.values().flatten().find_map(|o| {
                                    (o.get("kind").and_then(Value::as_str) == Some(k.as_str()))
                                        .then(|| o.get("apiVersion").and_then(Value::as_str))
                                        .flatten()
                                        .map(str::to_owned)
                                })
                            });
                    (api_version.unwrap_or_default(), k.clone())
                })
                .collect()
        };
        // Custom resources the scenario applied are part of its state too, and so are its
        // Argo CD Applications and what they deploy from its repositories.
        let mut gitops_objects = Vec::new();
        if s.gitops.is_some() {
            gitops_objects.push(serde_json::json!({
                "apiVersion": crate::scenario::ARGOCD_API_VERSION,
                "kind": "Application",
            }));
            for tree in self.loaded.repo_dirs.values() {
                for text in tree.values() {
                    gitops_objects.extend(crate::yaml::documents(text).unwrap_or_default());
                }
            }
        }
        let scenario_objects = self
            .loaded
            .manifests
            .values()
            .chain(std::iter::once(&gitops_objects));
        for objects in scenario_objects {
            for o in objects {
                let (Some(v), Some(k)) = (
                    o.get("apiVersion").and_then(Value::as_str),
                    o.get("kind").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if steps::builtin_api_version(k).is_none()
                    && k != "CustomResourceDefinition"
                    && !kinds.iter().any(|(_, x)| x == k)
                {
                    kinds.push((v.to_owned(), k.to_owned()));
                }
            }
        }
        let namespaces: Vec<String> = if s.snapshot.namespaces.is_empty() {
            self.namespaces.iter().cloned().collect()
        } else {
            s.snapshot.namespaces.clone()
        };
        let mut objects = Vec::new();
        for (api_version, kind) in &kinds {
            // A kind the cluster does not serve would make the snapshot silently smaller.
            let (ar, caps) = steps::resolve(&client, api_version, kind)
                .await
                .map_err(|e| snapshot_failure("a snapshot kind is not served", &e))?;
            if caps.scope != kube::discovery::Scope::Namespaced {
                continue;
            }
            for ns in &namespaces {
                let api: kube::Api<kube::api::DynamicObject> =
                    kube::Api::namespaced_with(client.clone(), ns, &ar);
                let list = api.list(&ListParams::default()).await.map_err(|e| {
                    snapshot_failure(&format!("could not list {kind} in namespace {ns}"), &e)
                })?;
                for mut o in list.items {
                    // Every object must carry its kind for the projection.
                    o.types = Some(kube::core::TypeMeta {
                        api_version: api_version.clone(),
                        kind: kind.clone(),
                    });
                    let name = o.metadata.name.clone().unwrap_or_default();
                    let excluded = s.snapshot.exclude.iter().any(|e| {
                        e.kind == *kind
                            && e.name == name
                            && e.namespace.as_deref().is_none_or(|n| n == ns)
                    });
                    // Created by every cluster in every namespace, not by the scenario.
                    if excluded || (kind == "ConfigMap" && name == "kube-root-ca.crt") {
                        continue;
                    }
                    if let Ok(v) = serde_json::to_value(o) {
                        objects.push(v);
                    }
                }
            }
        }
        let node_arch = node_architectures(&client)
            .await
            .map_err(|e| snapshot_failure("could not list the cluster's nodes", &e))?;
        let text = render(&project(&objects, &node_arch)).map_err(|e| {
            failure(
                Phase::Snapshot,
                "could not render the snapshot",
                String::new(),
                vec![e.to_string()],
                Context::default(),
            )
        })?;
        let name = snapshot_name(&self.loaded.id);
        let committed = settings.dir.join(format!("{name}.snap"));
        let committed = committed.display();
        // Relative to the working directory, so a recorded file reads the same on every machine.
        let path = &self.loaded.path;
        let source = std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok())
            .unwrap_or(path)
            .display()
            .to_string();
        match compare(&settings.dir, &name, &source, &text, settings.mode) {
            Ok(Comparison::Matches) => Ok(()),
            Ok(Comparison::Missing { written }) => Err(failure(
                Phase::Snapshot,
                &format!("no snapshot {committed} yet"),
                "snapshot".to_owned(),
                vec![written.map_or_else(|| "run locally (outside CI) to record it, then review with `cargo insta review`".to_owned(), |p| format!("wrote {} for review: `cargo insta review`", p.display()))],
                Context::default(),
            )),
            Ok(Comparison::Changed { diff, written }) => {
                let mut lines: Vec<String> = diff.lines().map(str::to_owned).collect();
                if let Some(p) = written {
                    lines.push(format!("wrote {} for review: `cargo insta review`", p.display()));
                }
                Err(failure(Phase::Snapshot, &format!("the converged state differs from {committed}"), "snapshot".to_owned(), lines, Context::default()))
            }
            Err(e) => Err(failure(Phase::Snapshot, "could not compare the snapshot", String::new(), vec![error_chain(&e)], Context::default())),
        }
    }
}

fn snapshot_failure(summary: &str, err: &dyn std::error::Error) -> Failure {
    failure(
        Phase::Snapshot,
        summary,
        "snapshot".to_owned(),
        vec![error_chain(err)],
        Context::default(),
    )
}

/// Each node's `kubernetes.io/arch` label, for the pod node tokens of the projection.
async fn node_architectures(
    client: &kube::Client,
) -> Result<BTreeMap<String, String>, kube::Error> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    Ok(nodes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| {
            let arch = n.metadata.labels?.remove("kubernetes.io/arch")?;
            Some((n.metadata.name?, arch))
        })
        .collect())
}
