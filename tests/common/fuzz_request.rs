//! Turns fuzz input bytes into a request to the simulated API server and judges its answer.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/sim_api_request.rs`) and the corpus
//! replay test (`tests/sim_api_corpus.rs`), so a kept input means the same request in both.
//!
//! Input layout: seven selector bytes (method, resource, path shape, name, namespace,
//! Content-Type, Accept), then `extra 0xFF query 0xFF body`. Each selector picks from a table
//! by `byte % len`; a table's last entry takes the free-form `extra` bytes instead (junk).
//! Missing bytes read as 0, so every input decodes to a request.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::Full;
use relapse::sim::SimCluster;
use relapse::sim::api::{ApiServer, Body};
use serde_json::Value;

/// Separates `extra`, the query and the body.
pub const SEPARATOR: u8 = 0xFF;

/// Methods a request may use; the last is not one the server knows.
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND",
];

/// Resource prefixes and plurals: served ones, a custom resource from the fixtures, and some
/// the server does not serve. `true` when namespaced.
const RESOURCES: &[(&str, &str, bool)] = &[
    ("/api/v1", "configmaps", true),
    ("/api/v1", "secrets", true),
    ("/api/v1", "pods", true),
    ("/api/v1", "services", true),
    ("/api/v1", "namespaces", false),
    ("/api/v1", "nodes", false),
    ("/api/v1", "events", true),
    ("/api/v1", "serviceaccounts", true),
    ("/api/v1", "persistentvolumeclaims", true),
    ("/api/v1", "persistentvolumes", false),
    ("/api/v1", "endpoints", true),
    ("/apis/apps/v1", "deployments", true),
    ("/apis/apps/v1", "statefulsets", true),
    ("/apis/apps/v1", "replicasets", true),
    ("/apis/apps/v1", "daemonsets", true),
    ("/apis/batch/v1", "jobs", true),
    ("/apis/batch/v1", "cronjobs", true),
    (
        "/apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        false,
    ),
    ("/apis/example.com/v1", "widgets", true),
    ("/apis/rbac.authorization.k8s.io/v1", "roles", true),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", false),
    ("/apis/coordination.k8s.io/v1", "leases", true),
    ("/apis/networking.k8s.io/v1", "ingresses", true),
    ("/apis/policy/v1", "poddisruptionbudgets", true),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers", true),
    ("/apis/storage.k8s.io/v1", "storageclasses", false),
    ("/apis/discovery.k8s.io/v1", "endpointslices", true),
    ("/apis/events.k8s.io/v1", "events", true),
    ("/api/v1", "widgets", true),
    ("/apis/apps/v2", "deployments", true),
    ("/apis/nope.example/v1", "things", false),
];

/// Paths outside the resource tree.
const DISCOVERY: &[&str] = &[
    "/",
    "/api",
    "/apis",
    "/api/v1",
    "/apis/apps",
    "/apis/apps/v1",
    "/apis/example.com/v1",
    "/apis/nope",
    "/version",
    "/healthz",
    "/livez",
    "/readyz",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/api/v1",
    "/openapi/v3/apis/apps/v1",
    "/openapi/v3/apis/nope/v1",
    "//",
];

/// Object names: fixtures, valid but absent, invalid; the last entry is junk.
const NAMES: &[&str] = &[
    "x",
    "y",
    "default",
    "kube-system",
    "widgets.example.com",
    "web-0",
    "",
    "Upper",
    "-bad-",
    "a..b",
    "x%2Fy",
    "..",
    "kubernetes",
];

const NAMESPACES: &[&str] = &["default", "x", "kube-system", "missing", "Bad_NS"];

const CONTENT_TYPES: &[&str] = &[
    "",
    "application/json",
    "application/yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/apply-patch+yaml; charset=utf-8",
    "APPLICATION/JSON; charset=utf-8",
    "application/vnd.kubernetes.protobuf",
    "application/cbor",
    "text/plain",
    "*/*",
    ";",
];

const ACCEPTS: &[&str] = &[
    "",
    "application/json",
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    "application/vnd.kubernetes.protobuf, */*",
    "*/*",
    "text/plain",
    "application/json;as=Table",
];

/// What the path looks like around the resource.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Collection,
    Item,
    Subresource(&'static str),
    JunkSubresource,
    WatchCollection,
    WatchItem,
    AllNamespaces,
    FlippedScope,
    Discovery,
    PrefixJunk,
    Junk,
}

const SHAPES: &[Shape] = &[
    Shape::Collection,
    Shape::Item,
    Shape::Subresource("status"),
    Shape::Subresource("scale"),
    Shape::Subresource("log"),
    Shape::Subresource("finalize"),
    Shape::JunkSubresource,
    Shape::WatchCollection,
    Shape::WatchItem,
    Shape::AllNamespaces,
    Shape::FlippedScope,
    Shape::Discovery,
    Shape::PrefixJunk,
    Shape::Junk,
];

/// A request decoded from fuzz input, before it becomes an `http::Request`.
#[derive(Debug, Clone)]
pub struct FuzzRequest {
    /// The method.
    pub method: Method,
    /// Path and query, already valid for `http::Uri`.
    pub uri: String,
    /// `Content-Type`, when one is sent.
    pub content_type: Option<HeaderValue>,
    /// `Accept`, when one is sent.
    pub accept: Option<HeaderValue>,
    /// The body.
    pub body: Bytes,
}

fn pick<T: Copy>(table: &[T], byte: u8) -> T {
    table[usize::from(byte) % table.len()]
}

/// `table[i]` for `i < len`, or `None` meaning "use the junk bytes".
fn pick_or_junk<'a>(table: &[&'a str], byte: u8) -> Option<&'a str> {
    table.get(usize::from(byte) % (table.len() + 1)).copied()
}

/// Percent-encodes what `http::Uri` would reject, keeping `keep` bytes as they are.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@%".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header(table: &[&str], byte: u8, junk: &[u8]) -> Option<HeaderValue> {
    match pick_or_junk(table, byte) {
        Some("") => None,
        Some(v) => HeaderValue::from_str(v).ok(),
        // A value HTTP cannot carry (control bytes) is not sent at all.
        None => HeaderValue::from_bytes(junk).ok(),
    }
}

impl FuzzRequest {
    /// Decodes fuzz input; every input gives a request.
    #[must_use]
    pub fn decode(data: &[u8]) -> Self {
        let sel = |i: usize| data.get(i).copied().unwrap_or(0);
        let rest = data.get(7..).unwrap_or_default();
        let mut fields = rest.splitn(3, |b| *b == SEPARATOR);
        let extra = fields.next().unwrap_or_default();
        let query = fields.next().unwrap_or_default();
        let body = fields.next().unwrap_or_default();

        let method = Method::from_bytes(pick(METHODS, sel(0)).as_bytes()).unwrap_or(Method::GET);
        let (prefix, plural, namespaced) = pick(RESOURCES, sel(1));
        let name = pick_or_junk(NAMES, sel(3)).map_or_else(|| encode(extra, b""), str::to_string);
        let ns =
            pick_or_junk(NAMESPACES, sel(4)).map_or_else(|| encode(extra, b""), str::to_string);
        let scope = |namespaced: bool| {
            if namespaced {
                format!("{prefix}/namespaces/{ns}/{plural}")
            } else {
                format!("{prefix}/{plural}")
            }
        };
        let path = match pick(SHAPES, sel(2)) {
            Shape::Collection => scope(namespaced),
            Shape::Item => format!("{}/{name}", scope(namespaced)),
            Shape::Subresource(sub) => format!("{}/{name}/{sub}", scope(namespaced)),
            Shape::JunkSubresource => {
                format!("{}/{name}/{}", scope(namespaced), encode(extra, b"/"))
            }
            Shape::WatchCollection => {
                scope(namespaced).replacen(prefix, &format!("{prefix}/watch"), 1)
            }
            Shape::WatchItem => format!(
                "{}/{name}",
                scope(namespaced).replacen(prefix, &format!("{prefix}/watch"), 1)
            ),
            Shape::AllNamespaces => format!("{prefix}/{plural}"),
            Shape::FlippedScope => format!("{}/{name}", scope(!namespaced)),
            Shape::Discovery => pick(DISCOVERY, sel(3)).to_string(),
            Shape::PrefixJunk => format!("{prefix}/{}", encode(extra, b"/")),
            Shape::Junk => format!("/{}", encode(extra, b"/")),
        };
        let query = encode(query, b"&=+/?");
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        Self {
            method,
            uri,
            content_type: header(CONTENT_TYPES, sel(5), extra),
            accept: header(ACCEPTS, sel(6), extra),
            body: Bytes::copy_from_slice(body),
        }
    }

    /// The `http::Request` to send.
    ///
    /// # Errors
    /// Fails when the URI does not parse (the encoding above should prevent that).
    pub fn to_request(&self) -> Result<Request<Full<Bytes>>, String> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.as_str());
        if let Some(ct) = &self.content_type {
            builder = builder.header(header::CONTENT_TYPE, ct.clone());
        }
        if let Some(accept) = &self.accept {
            builder = builder.header(header::ACCEPT, accept.clone());
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| format!("request for {:?} did not build: {e}", self.uri))
    }

    /// Encodes selectors and fields as input bytes (the inverse of [`FuzzRequest::decode`] for
    /// the table entries), for writing seeds.
    #[must_use]
    pub fn encode_input(selectors: [u8; 7], extra: &[u8], query: &str, body: &[u8]) -> Vec<u8> {
        let mut out = selectors.to_vec();
        out.extend_from_slice(extra);
        out.push(SEPARATOR);
        out.extend_from_slice(query.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(body);
        out
    }
}

/// Objects the requests' names refer to, created before each request when missing: a CRD
/// (so `widgets.example.com` is served), and an object named `x` of several kinds.
const FIXTURES: &[(&str, &str)] = &[
    (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},"spec":{"group":"example.com","scope":"Namespaced","names":{"kind":"Widget","plural":"widgets","singular":"widget","listKind":"WidgetList"},"versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{},"scale":{"specReplicasPath":".spec.size","statusReplicasPath":".status.size"}},"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#,
    ),
    (
        "/api/v1/namespaces",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#,
    ),
    (
        "/api/v1/nodes",
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"x","labels":{"kubernetes.io/hostname":"x"}}}"#,
    ),
    (
        "/api/v1/namespaces/default/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"app":"x"}},"data":{"k":"v"}}"#,
    ),
    (
        "/api/v1/namespaces/default/secrets",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"k":"v"}}"#,
    ),
    (
        "/api/v1/namespaces/default/pods",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#,
    ),
    (
        "/apis/apps/v1/namespaces/default/deployments",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#,
    ),
    (
        "/apis/example.com/v1/namespaces/default/widgets",
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"x"},"spec":{"size":1}}"#,
    ),
];

/// Requests a cluster serves before it is replaced, so the store does not grow without bound.
const REQUESTS_PER_CLUSTER: usize = 1000;

/// One in-process cluster that requests are sent to, replaced when it is used up or its
/// `default` namespace was deleted.
pub struct Harness {
    cluster: SimCluster,
    served: usize,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A fresh cluster.
    #[must_use]
    pub fn new() -> Self {
        Self {
            cluster: SimCluster::start(),
            served: 0,
        }
    }

    async fn call(api: &ApiServer, method: Method, uri: &str, body: &str) -> Option<StatusCode> {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        Some(api.handle(req).await.status())
    }

    /// Makes sure the fixtures exist, replacing the cluster when needed; returns its API server.
    pub async fn prepare(&mut self) -> ApiServer {
        self.served += 1;
        if self.served > REQUESTS_PER_CLUSTER || !self.default_namespace_active() {
            *self = Self::new();
        }
        let api = self.cluster.api().clone();
        for (collection, body) in FIXTURES {
            let name = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["metadata"]["name"].as_str().map(ToString::to_string))
                .unwrap_or_default();
            let item = format!("{collection}/{name}");
            if Self::call(&api, Method::GET, &item, "").await == Some(StatusCode::NOT_FOUND) {
                Self::call(&api, Method::POST, collection, body).await;
            }
        }
        api
    }

    fn default_namespace_active(&self) -> bool {
        let store = self.cluster.store();
        store
            .resource("", "v1", "namespaces")
            .and_then(|ns| store.get(&ns, None, "default").ok())
            .is_some_and(|ns| ns["metadata"]["deletionTimestamp"].is_null())
    }
}

/// What a request got.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body (for a stream, what was ready before it was dropped).
    pub body: Vec<u8>,
    /// Whether the body was a stream (watch or followed log).
    pub streamed: bool,
}

/// Sends `req` and reads its answer. A whole body is read at once; a stream (a watch or a
/// followed log) is read only as far as it is ready after a few scheduler turns and then
/// dropped, which ends its producer, so no watch is followed for long.
///
/// # Errors
/// Fails when the handler does not answer within `bound` or panics.
pub async fn send(
    api: &ApiServer,
    req: Request<Full<Bytes>>,
    bound: Duration,
) -> Result<Answer, String> {
    let api = api.clone();
    let task = tokio::spawn(async move { api.handle(req).await });
    let resp = match tokio::time::timeout(bound, task).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(format!("the handler failed: {e}")),
        Err(_) => return Err(format!("no answer within {bound:?}")),
    };
    let status = resp.status();
    match resp.into_body() {
        Body::Full(data) => Ok(Answer {
            status,
            body: data.map(|d| d.to_vec()).unwrap_or_default(),
            streamed: false,
        }),
        Body::Stream(mut rx) => {
            let mut body = Vec::new();
            for _ in 0..8 {
                tokio::task::yield_now().await;
                while let Ok(chunk) = rx.try_recv() {
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(Answer {
                status,
                body,
                streamed: true,
            })
        }
    }
}

/// Why a `Status` object is not well formed for `code`, if it is not.
fn status_problem(status: &Value, code: u16) -> Option<String> {
    if status["kind"] != "Status" || status["apiVersion"] != "v1" {
        return Some(format!("not a v1 Status: {status}"));
    }
    if status["status"] != "Failure" {
        return Some(format!("status is not Failure: {status}"));
    }
    // Only an error that is not a Status goes without a reason: ErrorToAPIStatus
    // (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go) reports it as 500
    // with StatusReasonUnknown, the empty string, which `omitempty` leaves out.
    if status["reason"].as_str().is_none_or(str::is_empty) && code != 500 {
        return Some(format!("no reason: {status}"));
    }
    if status["code"].as_u64() != Some(u64::from(code)) {
        return Some(format!("code is not {code}: {status}"));
    }
    None
}

/// Checks the answer: a success, or a well-formed `Status` whose code is the HTTP status. In a
/// watch stream, every complete line must be an event and an `ERROR` event's object a Status.
///
/// # Errors
/// Describes what is wrong with the answer.
pub fn check(answer: &Answer) -> Result<(), String> {
    let code = answer.status.as_u16();
    if answer.status.is_success() {
        if !answer.streamed || answer.body.first() != Some(&b'{') {
            // Whole bodies and log streams are the handlers' business.
            return Ok(());
        }
        let text = String::from_utf8_lossy(&answer.body);
        let complete = text.rsplit_once('\n').map_or("", |(lines, _)| lines);
        for line in complete.lines() {
            let event: Value = serde_json::from_str(line)
                .map_err(|e| format!("watch line is not JSON ({e}): {line}"))?;
            let ty = event["type"].as_str().unwrap_or_default();
            if !matches!(ty, "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR") {
                return Err(format!("watch line is not an event: {line}"));
            }
            if ty == "ERROR" {
                let object = &event["object"];
                let in_stream = object["code"].as_u64().and_then(|c| u16::try_from(c).ok());
                match in_stream {
                    Some(c) if (400..600).contains(&c) => {
                        if let Some(p) = status_problem(object, c) {
                            return Err(p);
                        }
                    }
                    _ => return Err(format!("watch error without an error code: {line}")),
                }
            }
        }
        return Ok(());
    }
    if !(400..600).contains(&code) {
        return Err(format!("unexpected HTTP status {code}"));
    }
    let status: Value = serde_json::from_slice(&answer.body).map_err(|e| {
        format!(
            "error {code} without a JSON Status ({e}): {}",
            String::from_utf8_lossy(&answer.body)
        )
    })?;
    match status_problem(&status, code) {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// Decodes `data`, sends it and checks the answer.
///
/// # Errors
/// Describes the request and what went wrong.
pub async fn run(harness: &mut Harness, data: &[u8], bound: Duration) -> Result<(), String> {
    let api = harness.prepare().await;
    let decoded = FuzzRequest::decode(data);
    let req = decoded.to_request()?;
    let answer = send(&api, req, bound).await;
    answer
        .and_then(|a| check(&a))
        .map_err(|e| format!("{} {}: {e}", decoded.method, decoded.uri))
}
