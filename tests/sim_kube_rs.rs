//! kube-rs against the simulated API server, in-process and over TLS.

#![expect(
    clippy::unwrap_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::Discovery;
use kube::runtime::watcher;
use kube::{Client, Config};
use relapse::sim::{SimCluster, TlsEndpoint};
use serde_json::json;

/// Upper bound for anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(30);

/// The two transports: in-process, and TLS with the kubeconfig the server writes.
async fn clients(cluster: &SimCluster) -> (Vec<(&'static str, Client)>, TlsEndpoint) {
    let endpoint = cluster.serve_tls().await.unwrap();
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&endpoint.kubeconfig_yaml().unwrap()).unwrap();
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let tls = Client::try_from(config).unwrap();
    (
        vec![("in-process", cluster.client()), ("tls", tls)],
        endpoint,
    )
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "demo"}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn api_error(err: kube::Error) -> (String, u16, String) {
    match err {
        kube::Error::Api(status) => (status.reason.clone(), status.code, status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_over_both_transports() {
    let cluster = SimCluster::start();
    let (clients, _endpoint) = clients(&cluster).await;
    for (transport, client) in clients {
        let ns = format!("crud-{transport}");
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let created = api
            .create(&PostParams::default(), &cm("one"))
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some(), "{transport}");
        let (reason, code, message) = api_error(
            api.create(&PostParams::default(), &cm("one"))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (reason.as_str(), code),
            ("AlreadyExists", 409),
            "{transport}"
        );
        assert_eq!(message, r#"configmaps "one" already exists"#);
        let listed = api
            .list(&ListParams::default().labels("app=demo"))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "{transport}");
        assert!(listed.metadata.resource_version.is_some());
        let mut changed = api.get("one").await.unwrap();
        changed
            .data
            .get_or_insert_default()
            .insert("k".into(), "w".into());
        let replaced = api
            .replace("one", &PostParams::default(), &changed)
            .await
            .unwrap();
        assert_eq!(replaced.data.unwrap()["k"], "w");
        let (reason, code, _) = api_error(
            api.replace("one", &PostParams::default(), &changed)
                .await
                .unwrap_err(),
        );
        assert_eq!((reason.as_str(), code), ("Conflict", 409), "{transport}");
        api.delete("one", &DeleteParams::default()).await.unwrap();
        let (reason, code, message) = api_error(api.get("one").await.unwrap_err());
        assert_eq!(
            (reason.as_str(), code, message.as_str()),
            ("NotFound", 404, r#"configmaps "one" not found"#)
        );

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}))
        .unwrap();
        let d = deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        assert_eq!(d.metadata.generation, Some(1));
        let spec = d.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let mut status = d.clone();
        status.status =
            Some(serde_json::from_value(json!({"observedGeneration": 1, "replicas": 1})).unwrap());
        let with_status = deployments
            .replace_status("web", &PostParams::default(), &status)
            .await
            .unwrap();
        assert_eq!(with_status.status.unwrap().observed_generation, Some(1));
        let scale = deployments.get_scale("web").await.unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(1), "{transport}");
        assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    }
}

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_objects_through_discovery() {
    let cluster = SimCluster::start();
    let (clients, _endpoint) = clients(&cluster).await;
    for (i, (transport, client)) in clients.into_iter().enumerate() {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        if i == 0 {
            crds.create(&PostParams::default(), &serde_json::from_str(CRD).unwrap())
                .await
                .unwrap();
        }
        let crd = crds.get("widgets.example.com").await.unwrap();
        let conditions = crd.status.unwrap().conditions.unwrap();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        );
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        let (ar, caps) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == "Widget")
            .unwrap_or_else(|| panic!("{transport}: Widget not discovered"));
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let name = format!("gear-{transport}");
        let obj: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": 3}}))
            .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        let got = api.get(&name).await.unwrap();
        assert_eq!(got.data["spec"]["size"], 3);
        assert_eq!(got.metadata.generation, Some(1));
        assert_eq!(
            api.list(&ListParams::default()).await.unwrap().items.len(),
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_a_forced_410() {
    let cluster = SimCluster::start();
    let (clients, _endpoint) = clients(&cluster).await;
    for (transport, client) in clients {
        let ns = format!("watch-{transport}");
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        // Short watches, so that the watcher reconnects with its last resourceVersion soon.
        let config = watcher::Config::default().timeout(1).disable_bookmarks();
        let mut stream = Box::pin(watcher(api.clone(), config));
        let mut next = async || {
            tokio::time::timeout(DEADLINE, stream.next())
                .await
                .expect("watcher went quiet")
                .expect("watcher ended")
        };
        loop {
            if matches!(next().await, Ok(watcher::Event::InitDone)) {
                break;
            }
        }
        api.create(&PostParams::default(), &cm("a")).await.unwrap();
        loop {
            if let Ok(watcher::Event::Apply(o)) = next().await
                && o.metadata.name.as_deref() == Some("a")
            {
                break;
            }
        }
        // Move the global resourceVersion past the watcher's, then forget the history.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "bump"}})).unwrap(),
            )
            .await
            .unwrap();
        cluster.store().compact();
        loop {
            match next().await {
                Err(watcher::Error::WatchError(status)) if status.code == 410 => break,
                _ => {}
            }
        }
        api.create(&PostParams::default(), &cm("b")).await.unwrap();
        let mut relisted = false;
        loop {
            match next().await {
                Ok(watcher::Event::Init) => relisted = true,
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o))
                    if o.metadata.name.as_deref() == Some("b") =>
                {
                    break;
                }
                _ => {}
            }
        }
        assert!(
            relisted,
            "{transport}: the watcher did not re-list after 410"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_condition_sees_a_change() {
    let cluster = SimCluster::start();
    let (clients, _endpoint) = clients(&cluster).await;
    for (transport, client) in clients {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let name = format!("cond-{transport}");
        api.create(&PostParams::default(), &cm(&name))
            .await
            .unwrap();
        let waiter = tokio::spawn({
            let (api, name) = (api.clone(), name.clone());
            async move {
                kube::runtime::wait::await_condition(api, &name, |o: Option<&ConfigMap>| {
                    o.and_then(|c| c.data.as_ref())
                        .is_some_and(|d| d.get("ready").map(String::as_str) == Some("yes"))
                })
                .await
            }
        });
        let mut c = api.get(&name).await.unwrap();
        c.data
            .get_or_insert_default()
            .insert("ready".into(), "yes".into());
        api.replace(&name, &PostParams::default(), &c)
            .await
            .unwrap();
        let found = tokio::time::timeout(DEADLINE, waiter)
            .await
            .expect("condition never held")
            .unwrap()
            .unwrap();
        assert!(found.is_some(), "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rejects_a_wrong_token() {
    let cluster = SimCluster::start();
    let endpoint = cluster.serve_tls().await.unwrap();
    let yaml = endpoint
        .kubeconfig_yaml()
        .unwrap()
        .replace(&endpoint.token, "wrong");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(Client::try_from(config).unwrap(), "default");
    let (reason, code, message) = api_error(api.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (reason.as_str(), code, message.as_str()),
        ("Unauthorized", 401, "Unauthorized")
    );
}
