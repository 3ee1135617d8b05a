//! Deleting namespaces left behind by runs whose process is gone (`relapse gc --namespaces`).
//!
//! A run deletes its namespaces when it is released, dropped or interrupted; a run that was
//! killed (SIGKILL, a lost CI runner) cannot. Every namespace the isolation layer creates
//! carries the label [`MANAGED_BY`] and the annotation [`OWNER_ANNOTATION`] naming the process
//! ([`Owner`]); this looks only at namespaces with that label.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams};

use super::isolation::{MANAGED_BY, OWNER_ANNOTATION};
use crate::backend::k3d::{KeepReason, Liveness, Owner};

/// What [`gc_namespaces`] did. Namespaces without the [`MANAGED_BY`] label are never touched
/// nor listed.
#[derive(Debug, Default)]
pub struct NamespaceGcReport {
    /// Deleted namespaces, each with why its owner counts as gone.
    pub deleted: Vec<(String, String)>,
    /// Namespaces already being deleted (by their run, or an earlier gc).
    pub terminating: Vec<String>,
    /// Namespaces left alone, and why.
    pub kept: Vec<(String, KeepReason)>,
    /// Leftover namespaces whose deletion failed.
    pub failed: Vec<(String, kube::Error)>,
}

/// Lists relapse's namespaces and deletes those whose owning process is gone.
///
/// Deletion is requested, not awaited: the namespace controller removes their content.
///
/// # Errors
/// Only when the namespaces cannot be listed; a failed delete is reported in
/// [`NamespaceGcReport::failed`] and the others still proceed.
pub async fn gc_namespaces(client: &kube::Client) -> Result<NamespaceGcReport, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let namespaces = api.list(&ListParams::default().labels(&selector)).await?;
    let mut report = NamespaceGcReport::default();
    for ns in namespaces.items {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        if ns.metadata.deletion_timestamp.is_some() {
            report.terminating.push(name);
            continue;
        }
        let token = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION))
            .cloned();
        let Some(token) = token else {
            report.kept.push((name, KeepReason::NoOwner));
            continue;
        };
        let Some(owner) = Owner::parse(&token) else {
            report.kept.push((name, KeepReason::UnreadableOwner(token)));
            continue;
        };
        match owner.liveness() {
            Liveness::Alive => report.kept.push((name, KeepReason::InUse(owner))),
            Liveness::OtherHost(why) => report.kept.push((name, KeepReason::OtherHost(why))),
            Liveness::Dead(why) => match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => report.deleted.push((name, why)),
                // Gone in the meantime: nothing left to do.
                Err(kube::Error::Api(s)) if s.code == 404 => report.deleted.push((name, why)),
                Err(e) => report.failed.push((name, e)),
            },
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kube::api::PostParams;
    use serde_json::json;

    use super::*;
    use crate::backend::served::{Pace, ServedSim};
    use crate::sim::engine::EngineConfig;

    /// The owner token of a process that has exited.
    fn dead_owner() -> String {
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let owner = Owner::of_pid(child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        owner.token()
    }

    async fn create(api: &Api<Namespace>, name: &str, managed: bool, owner: Option<&str>) {
        let mut meta = json!({"name": name});
        if managed {
            meta["labels"] = json!({MANAGED_BY.0: MANAGED_BY.1});
        }
        if let Some(owner) = owner {
            meta["annotations"] = json!({OWNER_ANNOTATION: owner});
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": meta})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deletes_namespaces_of_dead_runs_only() {
        let config = EngineConfig::new(Default::default(), Default::default()).unwrap();
        let sim = ServedSim::start(config, Pace::Fast).await.unwrap();
        let kubeconfig: kube::config::Kubeconfig =
            serde_json::from_value(crate::yaml::value(&sim.kubeconfig_yaml().unwrap()).unwrap())
                .unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Namespace> = Api::all(client.clone());

        let dead = dead_owner();
        let other_host = Owner {
            host: "another-runner".to_owned(),
            ..Owner::current()
        }
        .token();
        create(&api, "relapse-dead01-app", true, Some(&dead)).await;
        create(
            &api,
            "relapse-live01-app",
            true,
            Some(&Owner::current().token()),
        )
        .await;
        create(&api, "relapse-else01-app", true, Some(&other_host)).await;
        create(&api, "relapse-none01-app", true, None).await;
        create(&api, "relapse-junk01-app", true, Some("not a token")).await;
        // Not relapse's, whatever its annotation says.
        create(&api, "team-a", false, Some(&dead)).await;

        let report = gc_namespaces(&client).await.unwrap();
        let dead_pid = Owner::parse(&dead).unwrap().pid;
        assert_eq!(
            report.deleted,
            [(
                "relapse-dead01-app".to_owned(),
                format!("process {dead_pid} has exited")
            )]
        );
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let kept: Vec<(&str, &KeepReason)> =
            report.kept.iter().map(|(n, r)| (n.as_str(), r)).collect();
        assert_eq!(kept.len(), 4, "{kept:?}");
        assert!(kept.contains(&("relapse-live01-app", &KeepReason::InUse(Owner::current()))));
        assert!(kept.contains(&("relapse-none01-app", &KeepReason::NoOwner)));
        assert!(kept.contains(&(
            "relapse-junk01-app",
            &KeepReason::UnreadableOwner("not a token".to_owned())
        )));
        assert!(
            kept.iter()
                .any(|(n, r)| *n == "relapse-else01-app" && matches!(r, KeepReason::OtherHost(_)))
        );

        // The deleted one is gone (or going); every other one is still there.
        let left: BTreeSet<String> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(!left.contains("relapse-dead01-app"), "{left:?}");
        for name in [
            "relapse-live01-app",
            "relapse-else01-app",
            "relapse-none01-app",
            "relapse-junk01-app",
            "team-a",
        ] {
            assert!(left.contains(name), "{name} was deleted: {left:?}");
        }

        // A second pass finds nothing more to delete.
        let again = gc_namespaces(&client).await.unwrap();
        assert!(again.deleted.is_empty(), "{:?}", again.deleted);
        assert_eq!(again.kept.len(), 4);
    }
}
