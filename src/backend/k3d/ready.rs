//! When a new k3d cluster is ready for a scenario, and the node labels set through the API.
//!
//! `k3d cluster create --wait` returns once each node container logged a line (k3d v5.8.3
//! `pkg/types/k3slogs.go`): `k3s is up and running` for a server, `Successfully registered node`
//! for an agent. k3s logs the first as soon as its API server answers and starts its own kubelet
//! concurrently, so a **server's Node object may not exist yet** when k3d returns, and nothing
//! waits for nodes to be Ready, for CoreDNS or for k3s's `local-path` StorageClass. A scenario
//! that starts then sees Pending pods, failed DNS lookups or unbound claims that are not part of
//! its failure. So [`wait_until_ready`] waits, under one deadline, for:
//!
//! 1. the API server to serve ServiceAccount `default/default` (the ServiceAccount controller
//!    creates it once the control plane works; before that no pod can be created there);
//! 2. every node of the cluster to be registered, then labels the kubelet may not set on itself
//!    are applied to them ([`label_nodes`]; patching a node before it registers fails with
//!    `NotFound`);
//! 3. every node to be Ready;
//! 4. Deployment `kube-system/coredns` (k3s's `manifests/coredns.yaml`) to be Available;
//! 5. a default StorageClass (k3s's `local-path`, annotated
//!    `storageclass.kubernetes.io/is-default-class: "true"`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams};

use super::error::K3dError;
use super::spec::NodeLabel;

/// Pause between readiness checks.
const POLL: Duration = Duration::from_millis(500);
/// The annotation marking the default StorageClass, and its beta predecessor.
const DEFAULT_CLASS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// The first readiness condition a check found unmet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    ServiceAccount,
    Unregistered(Vec<String>),
    NotReady(Vec<String>),
    CoreDns,
    StorageClass,
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = |names: &[String]| {
            let s = if names.len() == 1 { "" } else { "s" };
            format!("node{s} {}", names.join(", "))
        };
        match self {
            Self::ServiceAccount => {
                f.write_str("the API server to serve ServiceAccount default/default")
            }
            Self::Unregistered(names) => write!(f, "{} to register", nodes(names)),
            Self::NotReady(names) => write!(f, "{} to be Ready", nodes(names)),
            Self::CoreDns => f.write_str("Deployment kube-system/coredns to be Available"),
            Self::StorageClass => f.write_str("a default StorageClass (k3s's local-path)"),
        }
    }
}

/// Waits until the cluster behind `client` is ready for a scenario (see the module
/// documentation): its `nodes` registered, labelled with `labels` and Ready, CoreDNS Available
/// and a default StorageClass present, all within `timeout`.
///
/// # Errors
/// [`K3dError::NotReady`] naming the first condition still unmet when `timeout` passes, with
/// the error of the last check if its requests failed.
pub async fn wait_until_ready(
    client: &kube::Client,
    nodes: &[String],
    labels: &[NodeLabel],
    timeout: Duration,
) -> Result<(), K3dError> {
    poll_until_ready(client, nodes, labels, timeout, POLL).await
}

async fn poll_until_ready(
    client: &kube::Client,
    nodes: &[String],
    labels: &[NodeLabel],
    timeout: Duration,
    poll: Duration,
) -> Result<(), K3dError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut labelled = labels.is_empty();
    let mut pending = Pending::ServiceAccount;
    let mut last_error = None;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(K3dError::NotReady {
                after: timeout,
                waiting_for: pending.to_string(),
                last_error,
            });
        }
        let checked =
            tokio::time::timeout(remaining, check(client, nodes, labels, &mut labelled)).await;
        match checked {
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(unmet))) => {
                pending = unmet;
                last_error = None;
            }
            Ok(Err(err)) => last_error = Some(err),
            // The deadline passed during the check: reported on the next turn.
            Err(_) => {}
        }
        tokio::time::sleep(poll.min(remaining)).await;
    }
}

/// One pass over the conditions, in order; the first unmet one is returned.
async fn check(
    client: &kube::Client,
    nodes: &[String],
    labels: &[NodeLabel],
    labelled: &mut bool,
) -> Result<Option<Pending>, kube::Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    if accounts.get_opt("default").await?.is_none() {
        return Ok(Some(Pending::ServiceAccount));
    }

    let listed = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let by_name: BTreeMap<&str, &Node> = listed
        .items
        .iter()
        .filter_map(|n| n.metadata.name.as_deref().map(|name| (name, n)))
        .collect();
    let missing: Vec<String> = nodes
        .iter()
        .filter(|n| !by_name.contains_key(n.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(Some(Pending::Unregistered(missing)));
    }

    if !*labelled {
        match patch_labels(client, labels).await {
            Ok(()) => *labelled = true,
            // Listed a moment ago, gone now (a node re-registering): wait for it again.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Ok(Some(Pending::Unregistered(nodes.to_vec())));
            }
            Err(err) => return Err(err),
        }
    }

    let not_ready: Vec<String> = nodes
        .iter()
        .filter(|n| !by_name.get(n.as_str()).is_some_and(|node| node_ready(node)))
        .cloned()
        .collect();
    if !not_ready.is_empty() {
        return Ok(Some(Pending::NotReady(not_ready)));
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let available = deployments.get_opt("coredns").await?.is_some_and(|d| {
        d.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True")
    });
    if !available {
        return Ok(Some(Pending::CoreDns));
    }

    let classes = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let has_default = classes.items.iter().any(|sc| {
        sc.metadata.annotations.as_ref().is_some_and(|a| {
            DEFAULT_CLASS
                .iter()
                .any(|key| a.get(*key).is_some_and(|v| v == "true"))
        })
    });
    if !has_default {
        return Ok(Some(Pending::StorageClass));
    }
    Ok(None)
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// One merge patch per node, setting `labels`.
async fn patch_labels(client: &kube::Client, labels: &[NodeLabel]) -> Result<(), kube::Error> {
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
            .await?;
    }
    Ok(())
}

/// Sets node labels through the API (one merge patch per node), on nodes that exist already
/// ([`wait_until_ready`] waits for them first).
///
/// # Errors
/// [`K3dError::Api`] when a patch fails.
pub async fn label_nodes(client: &kube::Client, labels: &[NodeLabel]) -> Result<(), K3dError> {
    patch_labels(client, labels).await.map_err(|source| {
        let nodes: std::collections::BTreeSet<&str> =
            labels.iter().map(|l| l.node.as_str()).collect();
        let plural = if nodes.len() == 1 { "" } else { "s" };
        K3dError::Api {
            action: format!(
                "label node{plural} {}",
                nodes.into_iter().collect::<Vec<_>>().join(", ")
            ),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http::{Method, Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use serde_json::{Value, json};

    use super::*;

    /// Probe interval in tests, so that they take milliseconds.
    const FAST: Duration = Duration::from_millis(10);

    /// Kubernetes' NotFound Status: message format from k8s.io/apimachinery
    /// pkg/api/errors/errors.go, NewNotFound: `%s %q not found`.
    fn not_found(resource: &str, name: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{resource} \"{name}\" not found"), "reason": "NotFound",
               "details": {"name": name, "kind": resource}, "code": 404})
    }

    /// A node of the fake cluster: listed from the `appears_at`-th node list on, Ready from the
    /// `ready_at`-th.
    struct FakeNode {
        name: &'static str,
        appears_at: usize,
        ready_at: usize,
    }

    /// A cluster API that comes up step by step, counted in requests, and logs every request.
    #[derive(Default)]
    struct FakeCluster {
        /// The ServiceAccount is served from this request for it on.
        sa_at: usize,
        nodes: Vec<FakeNode>,
        /// CoreDNS is Available from this request for it on; `None`: never created.
        coredns_at: Option<usize>,
        default_class: bool,
        // Counters and what happened.
        sa_requests: usize,
        node_lists: usize,
        coredns_requests: usize,
        labels: BTreeMap<String, Value>,
        log: Vec<String>,
        patch_types: Vec<String>,
    }

    impl FakeCluster {
        fn ready(nodes: &[&'static str]) -> Self {
            Self {
                nodes: nodes
                    .iter()
                    .map(|&name| FakeNode {
                        name,
                        appears_at: 0,
                        ready_at: 0,
                    })
                    .collect(),
                coredns_at: Some(0),
                default_class: true,
                ..Self::default()
            }
        }

        fn exists(&self, name: &str) -> bool {
            self.nodes
                .iter()
                .any(|n| n.name == name && self.node_lists > n.appears_at)
        }

        fn answer(&mut self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, Value) {
            match (method.as_str(), path) {
                ("GET", "/api/v1/namespaces/default/serviceaccounts/default") => {
                    self.sa_requests += 1;
                    if self.sa_requests > self.sa_at {
                        (
                            StatusCode::OK,
                            json!({"kind": "ServiceAccount", "apiVersion": "v1",
                                   "metadata": {"name": "default", "namespace": "default"}}),
                        )
                    } else {
                        (
                            StatusCode::NOT_FOUND,
                            not_found("serviceaccounts", "default"),
                        )
                    }
                }
                ("GET", "/api/v1/nodes") => {
                    let lists = self.node_lists;
                    self.node_lists += 1;
                    let items: Vec<Value> = self
                        .nodes
                        .iter()
                        .filter(|n| lists >= n.appears_at)
                        .map(|n| {
                            let ready = if lists >= n.ready_at { "True" } else { "False" };
                            json!({"metadata": {"name": n.name,
                                                "labels": self.labels.get(n.name).cloned().unwrap_or(json!({}))},
                                   "status": {"conditions": [{"type": "Ready", "status": ready}]}})
                        })
                        .collect();
                    (
                        StatusCode::OK,
                        json!({"kind": "NodeList", "apiVersion": "v1",
                               "metadata": {"resourceVersion": "1"}, "items": items}),
                    )
                }
                ("PATCH", p) if p.starts_with("/api/v1/nodes/") => {
                    let name = &p["/api/v1/nodes/".len()..];
                    if !self.exists(name) {
                        return (StatusCode::NOT_FOUND, not_found("nodes", name));
                    }
                    let patch: Value = serde_json::from_slice(body).unwrap();
                    self.labels
                        .insert(name.to_owned(), patch["metadata"]["labels"].clone());
                    (
                        StatusCode::OK,
                        json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": name}}),
                    )
                }
                ("GET", "/apis/apps/v1/namespaces/kube-system/deployments/coredns") => {
                    self.coredns_requests += 1;
                    match self.coredns_at {
                        None => (
                            StatusCode::NOT_FOUND,
                            not_found("deployments.apps", "coredns"),
                        ),
                        Some(at) => {
                            let available = if self.coredns_requests > at {
                                "True"
                            } else {
                                "False"
                            };
                            (
                                StatusCode::OK,
                                json!({"kind": "Deployment", "apiVersion": "apps/v1",
                                       "metadata": {"name": "coredns", "namespace": "kube-system"},
                                       "status": {"conditions": [{"type": "Available", "status": available}]}}),
                            )
                        }
                    }
                }
                ("GET", "/apis/storage.k8s.io/v1/storageclasses") => {
                    let items = if self.default_class {
                        json!([{"metadata": {"name": "local-path",
                                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                                "provisioner": "rancher.io/local-path"}])
                    } else {
                        json!([])
                    };
                    (
                        StatusCode::OK,
                        json!({"kind": "StorageClassList", "apiVersion": "storage.k8s.io/v1",
                               "metadata": {"resourceVersion": "1"}, "items": items}),
                    )
                }
                (m, p) => panic!("unexpected request {m} {p}"),
            }
        }
    }

    fn serve(cluster: FakeCluster) -> (kube::Client, Arc<Mutex<FakeCluster>>) {
        let state = Arc::new(Mutex::new(cluster));
        let shared = state.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let shared = shared.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let mut cluster = shared.lock().unwrap();
                cluster
                    .log
                    .push(format!("{} {}", parts.method, parts.uri.path()));
                if parts.method == Method::PATCH {
                    let content_type = parts.headers["content-type"].to_str().unwrap().to_owned();
                    cluster.patch_types.push(content_type);
                }
                let (status, json) = cluster.answer(&parts.method, parts.uri.path(), &body);
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(json.to_string())))
                        .unwrap(),
                )
            }
        });
        (kube::Client::new(service, "default"), state)
    }

    fn label(node: &str, key: &str, value: &str) -> NodeLabel {
        NodeLabel {
            node: node.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    fn names(nodes: &[&str]) -> Vec<String> {
        nodes.iter().map(|&n| n.to_owned()).collect()
    }

    #[tokio::test]
    async fn a_ready_cluster_passes_at_once() {
        let (client, state) = serve(FakeCluster::ready(&["node-1"]));
        poll_until_ready(
            &client,
            &names(&["node-1"]),
            &[],
            Duration::from_secs(60),
            FAST,
        )
        .await
        .unwrap();
        assert_eq!(
            state.lock().unwrap().log,
            [
                "GET /api/v1/namespaces/default/serviceaccounts/default",
                "GET /api/v1/nodes",
                "GET /apis/apps/v1/namespaces/kube-system/deployments/coredns",
                "GET /apis/storage.k8s.io/v1/storageclasses",
            ]
        );
    }

    #[tokio::test]
    async fn waits_for_the_default_service_account() {
        let (client, state) = serve(FakeCluster {
            sa_at: 3,
            ..FakeCluster::ready(&["node-1"])
        });
        poll_until_ready(
            &client,
            &names(&["node-1"]),
            &[],
            Duration::from_secs(60),
            FAST,
        )
        .await
        .unwrap();
        assert_eq!(state.lock().unwrap().sa_requests, 4);
    }

    #[tokio::test]
    async fn a_server_node_that_registers_late_is_labelled_once_it_exists() {
        // k3d returned once the server logged "k3s is up and running"; its kubelet registers
        // the Node a few checks later. Patching it earlier would get NotFound.
        let mut cluster = FakeCluster::ready(&[]);
        cluster.nodes = vec![
            FakeNode {
                name: "cp-1",
                appears_at: 3,
                ready_at: 5,
            },
            FakeNode {
                name: "worker-1",
                appears_at: 0,
                ready_at: 0,
            },
        ];
        let (client, state) = serve(cluster);
        poll_until_ready(
            &client,
            &names(&["cp-1", "worker-1"]),
            &[
                label("cp-1", "node-role.kubernetes.io/worker", ""),
                label("worker-1", "node-role.kubernetes.io/worker", ""),
            ],
            Duration::from_secs(60),
            FAST,
        )
        .await
        .unwrap();
        let state = state.lock().unwrap();
        assert_eq!(
            state.labels["cp-1"],
            json!({"node-role.kubernetes.io/worker": ""})
        );
        assert_eq!(
            state.labels["worker-1"],
            json!({"node-role.kubernetes.io/worker": ""})
        );
        // No patch before cp-1 was listed (4th list), each node patched once.
        let first_patch = state
            .log
            .iter()
            .position(|l| l.starts_with("PATCH"))
            .unwrap();
        let lists_before = state.log[..first_patch]
            .iter()
            .filter(|l| *l == "GET /api/v1/nodes")
            .count();
        assert_eq!(lists_before, 4, "{:?}", state.log);
        assert_eq!(
            state.log.iter().filter(|l| l.starts_with("PATCH")).count(),
            2
        );
        // It waited for cp-1 to be Ready too.
        assert!(state.node_lists >= 6, "{}", state.node_lists);
    }

    #[tokio::test]
    async fn a_node_that_never_registers_is_named_at_the_deadline() {
        let mut cluster = FakeCluster::ready(&["worker-1"]);
        cluster.nodes.push(FakeNode {
            name: "cp-1",
            appears_at: usize::MAX,
            ready_at: usize::MAX,
        });
        let (client, state) = serve(cluster);
        let err = poll_until_ready(
            &client,
            &names(&["cp-1", "worker-1"]),
            &[label("cp-1", "node-role.kubernetes.io/worker", "")],
            Duration::from_millis(300),
            FAST,
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster was not ready within 0.3s: still waiting for node cp-1 to register"
        );
        assert!(
            !state
                .lock()
                .unwrap()
                .log
                .iter()
                .any(|l| l.starts_with("PATCH"))
        );
    }

    #[tokio::test]
    async fn waits_for_nodes_ready_coredns_and_a_default_storage_class() {
        let mut cluster = FakeCluster::ready(&["node-1"]);
        cluster.nodes[0].ready_at = 2;
        cluster.coredns_at = Some(2);
        let (client, state) = serve(cluster);
        poll_until_ready(
            &client,
            &names(&["node-1"]),
            &[],
            Duration::from_secs(60),
            FAST,
        )
        .await
        .unwrap();
        {
            let state = state.lock().unwrap();
            assert_eq!(state.node_lists, 5, "{:?}", state.log);
            assert_eq!(state.coredns_requests, 3, "{:?}", state.log);
        }

        for (cluster, waiting_for) in [
            (
                FakeCluster {
                    coredns_at: None,
                    ..FakeCluster::ready(&["node-1"])
                },
                "Deployment kube-system/coredns to be Available",
            ),
            (
                FakeCluster {
                    default_class: false,
                    ..FakeCluster::ready(&["node-1"])
                },
                "a default StorageClass (k3s's local-path)",
            ),
            (
                {
                    let mut c = FakeCluster::ready(&["node-1", "node-2"]);
                    c.nodes[0].ready_at = usize::MAX;
                    c.nodes[1].ready_at = usize::MAX;
                    c
                },
                "nodes node-1, node-2 to be Ready",
            ),
        ] {
            let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.to_owned()).collect();
            let (client, _) = serve(cluster);
            let err = poll_until_ready(&client, &nodes, &[], Duration::from_millis(200), FAST)
                .await
                .unwrap_err();
            let K3dError::NotReady {
                waiting_for: got, ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(got, waiting_for);
        }
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_with_the_last_request_error() {
        let service = tower::service_fn(|_req: Request<kube::client::Body>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(
                        br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden","reason":"Forbidden","code":403}"#,
                    )))
                    .unwrap(),
            )
        });
        let client = kube::Client::new(service, "default");
        let err = poll_until_ready(&client, &[], &[], Duration::from_millis(300), FAST)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster was not ready within 0.3s: still waiting for the API server to serve ServiceAccount default/default"
        );
        let K3dError::NotReady {
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
        let (client, state) = serve(FakeCluster::ready(&["w1", "w2"]));
        state.lock().unwrap().node_lists = 1;
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
        let state = state.lock().unwrap();
        assert_eq!(
            state.log,
            ["PATCH /api/v1/nodes/w1", "PATCH /api/v1/nodes/w2"]
        );
        assert_eq!(state.patch_types, ["application/merge-patch+json"; 2]);
        assert_eq!(
            state.labels["w1"],
            json!({"app.kubernetes.io/pool": "a", "node-role.kubernetes.io/worker": ""})
        );
    }

    #[tokio::test]
    async fn labelling_a_node_that_does_not_exist_fails_naming_it() {
        let (client, _) = serve(FakeCluster::ready(&[]));
        let err = label_nodes(
            &client,
            &[label("cp-1", "node-role.kubernetes.io/worker", "")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "failed to label node cp-1");
    }
}
