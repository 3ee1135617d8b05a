//! Running a scenario in its own namespaces on a cluster others use too.
//!
//! The runner's client goes through [`Isolated`], a `tower` service in front of the real client:
//!
//! - every namespace the scenario names is renamed `relapse-<run>-<namespace>` on the way in
//!   (request paths, `namespace` fields of bodies, `Namespace` objects' names) and back on the
//!   way out (every occurrence in JSON and log responses), so the runner, its reports and its
//!   snapshots only ever see the scenario's own names;
//! - a namespace is created (labelled as relapse's) before the first write into it;
//! - writes to cluster-scoped objects (CRDs, ClusterRoles, Nodes, other namespaces...) are
//!   refused naming the object, unless allowed; allowed ones that create an object are recorded
//!   so that releasing the run deletes them again;
//! - [`Isolation::release`] deletes the namespaces and recorded objects and waits until they
//!   are gone; a guard does it (without waiting) if the run is dropped or interrupted.
//!
//! Watches through the isolated client are passed through unrenamed: the runner does not watch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::client::Body;
use serde_json::{Value, json};

/// Longest namespace name (a DNS label).
const MAX_NAMESPACE: usize = 63;
/// Label on every namespace relapse creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "relapse");
/// Annotation naming the scenario's own name of a namespace relapse created.
pub const SCENARIO_NAMESPACE_ANNOTATION: &str = "relapse.dev/scenario-namespace";
/// Annotation naming the process that created a namespace ([`crate::backend::k3d::Owner`]).
pub const OWNER_ANNOTATION: &str = "relapse.dev/owner";
/// How long releasing waits for namespaces and objects to disappear.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Errors of the isolation layer.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// A write to a cluster-scoped object, which the run may not change.
    #[error(
        "refusing to {verb} cluster-scoped {resource} \"{name}\": on an existing cluster each scenario runs in its own namespaces; pass --allow-cluster-scoped to let scenarios change cluster-scoped objects"
    )]
    ClusterScoped {
        /// `create`, `apply`, `patch`, `replace`, `delete`.
        verb: &'static str,
        /// `customresourcedefinitions.apiextensions.k8s.io`, `nodes`, ...
        resource: String,
        /// The object's name.
        name: String,
    },
    /// A namespace for the scenario could not be created.
    #[error("failed to create namespace {name} for the scenario")]
    CreateNamespace {
        /// The namespace (its name on the cluster).
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The request or response body could not be read.
    #[error("failed to read a body passing through the isolation layer")]
    Body(#[source] kube::Error),
    /// Objects the run created were still there when releasing gave up.
    #[error("failed to delete {} within {}s: {}", .0.len(), RELEASE_TIMEOUT.as_secs(), .0.join(", "))]
    Leftover(Vec<String>),
}

/// The renaming of a scenario's namespaces for one run.
#[derive(Debug)]
pub struct NamespaceMap {
    prefix: String,
    /// Cluster name → scenario name, for every name mapped so far.
    seen: Mutex<BTreeMap<String, String>>,
}

/// FNV-1a, rendered in base 36: short, stable names from arbitrary text.
fn short_hash(parts: &[&str], len: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let mut out = String::new();
    for _ in 0..len {
        let d = u8::try_from(h % 36).unwrap_or(0);
        out.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
        h /= 36;
    }
    out
}

impl NamespaceMap {
    /// The renaming for `scenario` in the run `run_token` (one per process): `relapse-<6>-`.
    #[must_use]
    pub fn new(run_token: &str, scenario: &str) -> Self {
        Self {
            prefix: format!("relapse-{}-", short_hash(&[run_token, scenario], 6)),
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// What every renamed namespace starts with.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cluster's name for the scenario's namespace `ns` (names already renamed stay).
    #[must_use]
    pub fn map(&self, ns: &str) -> String {
        if ns.is_empty() || ns.starts_with(&self.prefix) {
            return ns.to_owned();
        }
        let mut mapped = format!("{}{ns}", self.prefix);
        if mapped.len() > MAX_NAMESPACE {
            let room = MAX_NAMESPACE - self.prefix.len() - 7;
            let head: String = ns.chars().take(room).collect();
            mapped = format!(
                "{}{}-{}",
                self.prefix,
                head.trim_end_matches('-'),
                short_hash(&[ns], 6)
            );
        }
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(mapped.clone(), ns.to_owned());
        mapped
    }

    /// Every namespace renamed so far: `(scenario's name, cluster's name)`, by scenario name.
    #[must_use]
    pub fn renamed(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(mapped, original)| (original.clone(), mapped.clone()))
            .collect();
        pairs.sort();
        pairs
    }

    /// The scenario's name for a cluster namespace this map produced.
    #[must_use]
    pub fn original(&self, mapped: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(mapped)
            .cloned()
    }

    /// `text` with every renamed namespace replaced by the scenario's name.
    #[must_use]
    pub fn unmap_text(&self, text: &str) -> String {
        if !text.contains(&self.prefix) {
            return text.to_owned();
        }
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pairs: Vec<(&String, &String)> = seen.iter().collect();
        // Longest first, so a name that extends another is replaced whole.
        pairs.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        let mut out = text.to_owned();
        for (mapped, original) in pairs {
            out = out.replace(mapped.as_str(), original);
        }
        out
    }

    /// Renames the namespaces an object or request body names: every string field called
    /// `namespace`, and the name of a `Namespace` object.
    pub fn map_value(&self, v: &mut Value) {
        if v.get("kind").and_then(Value::as_str) == Some("Namespace")
            && v.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && let Some(name) = v.pointer_mut("/metadata/name")
            && let Some(n) = name.as_str()
        {
            *name = Value::String(self.map(n));
        }
        self.map_fields(v);
    }

    /// A JSON patch (RFC 6902) names a namespace as an operation's `value` when its `path`
    /// ends in `/namespace`; any other body names it in a `namespace` field.
    fn map_json_patch(&self, ops: &mut [Value]) -> bool {
        let is_patch = ops
            .iter()
            .all(|op| op.get("op").is_some_and(Value::is_string) && op.get("path").is_some());
        if !is_patch {
            return false;
        }
        for op in ops {
            let names_namespace = op
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p == "/namespace" || p.ends_with("/namespace"));
            if let Some(value) = op.get_mut("value") {
                match value {
                    Value::String(ns) if names_namespace => *ns = self.map(ns),
                    other => self.map_value(other),
                }
            }
        }
        true
    }

    /// A request's query with the namespaces its field selector names renamed
    /// (`metadata.namespace=demo`, `involvedObject.namespace!=demo`, ...).
    #[must_use]
    pub fn map_query(&self, query: &str) -> String {
        query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("fieldSelector", selector)) => {
                    // A field selector's `=`, `!` and `,` arrive escaped.
                    let decoded = crate::sim::api::query::decode(selector);
                    let mapped: Vec<String> = decoded
                        .split(',')
                        .map(|term| self.map_selector_term(term))
                        .collect();
                    format!("fieldSelector={}", percent_encode(&mapped.join(",")))
                }
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    fn map_selector_term(&self, term: &str) -> String {
        for op in ["!=", "==", "="] {
            if let Some((field, value)) = term.split_once(op) {
                let names_namespace =
                    field == "metadata.namespace" || field.ends_with(".namespace");
                return if names_namespace {
                    format!("{field}{op}{}", self.map(value))
                } else {
                    term.to_owned()
                };
            }
        }
        term.to_owned()
    }

    fn map_fields(&self, v: &mut Value) {
        if let Value::Array(ops) = v
            && self.map_json_patch(ops)
        {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    match child {
                        // `{{namespace}}` in an operator's template is filled in later.
                        Value::String(s) if k == "namespace" && !s.contains("{{") => {
                            *s = self.map(s);
                        }
                        _ => self.map_fields(child),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.map_fields(i)),
            _ => {}
        }
    }

    /// Image behaviours with the namespaces they name renamed, for a simulated cluster that
    /// stands in for a real one during a run with this map.
    #[must_use]
    pub fn map_images(
        &self,
        images: BTreeMap<String, crate::scenario::ImageBehaviour>,
    ) -> BTreeMap<String, crate::scenario::ImageBehaviour> {
        images
            .into_iter()
            .map(|(image, b)| {
                let mut v = serde_json::to_value(&b).unwrap_or(Value::Null);
                self.map_fields(&mut v);
                let mapped = serde_json::from_value(v).unwrap_or(b);
                (image, mapped)
            })
            .collect()
    }
}

/// What an API path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `/api/v1/namespaces` (list or create namespaces).
    Namespaces,
    /// `/api/v1/namespaces/<name>[/status|/finalize]`.
    NamespaceObject(String),
    /// Something in a namespace: `.../namespaces/<ns>/<resource>...`.
    Namespaced(String),
    /// A cluster-scoped resource or object.
    ClusterScoped {
        /// `resource[.group]`.
        resource: String,
        /// The object's name, when the path has one.
        name: Option<String>,
    },
    /// Discovery, version, OpenAPI.
    Other,
}

impl Target {
    fn of(path: &str) -> Self {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (rest, group) = match segs.as_slice() {
            ["api", _v, rest @ ..] => (rest, None),
            ["apis", g, _v, rest @ ..] => (rest, Some(*g)),
            _ => return Self::Other,
        };
        match (rest, group) {
            ([], _) => Self::Other,
            (["namespaces"], None) => Self::Namespaces,
            (["namespaces", name], None) | (["namespaces", name, _], None) => {
                Self::NamespaceObject((*name).to_owned())
            }
            (["namespaces", ns, _, ..], _) => Self::Namespaced((*ns).to_owned()),
            ([resource, tail @ ..], g) => Self::ClusterScoped {
                resource: g.map_or_else(|| (*resource).to_owned(), |g| format!("{resource}.{g}")),
                name: tail.first().map(|n| (*n).to_owned()),
            },
        }
    }
}

/// Renames the namespace segment of an API path.
/// Escapes what may not stand bare in a query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn map_path(path: &str, map: &NamespaceMap) -> String {
    let mut segs: Vec<String> = path.split('/').map(str::to_owned).collect();
    let at = match segs.get(1).map(String::as_str) {
        Some("api") => 3,
        Some("apis") => 4,
        _ => return path.to_owned(),
    };
    if segs.get(at).map(String::as_str) == Some("namespaces")
        && let Some(ns) = segs.get_mut(at + 1)
        && !ns.is_empty()
    {
        *ns = map.map(ns);
    }
    segs.join("/")
}

fn verb(method: &Method, headers: &http::HeaderMap) -> Option<&'static str> {
    Some(match *method {
        Method::POST => "create",
        Method::PUT => "replace",
        Method::DELETE => "delete",
        Method::PATCH => {
            let apply = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/apply-patch"));
            if apply { "apply" } else { "patch" }
        }
        _ => return None,
    })
}

/// The shared state of one run's isolation: its map, what it created, how to clean up.
pub struct Isolation {
    map: NamespaceMap,
    allow_cluster_scoped: bool,
    /// The client that talks to the cluster under its real names.
    raw: kube::Client,
    /// Configuration to reach the cluster from another runtime, for cleanup on drop.
    config: kube::Config,
    /// Namespaces created for the run (cluster names).
    owned: Arc<Mutex<BTreeSet<String>>>,
    /// API paths of cluster-scoped objects the run created, in creation order.
    created: Mutex<Vec<String>>,
    owner: String,
}

impl std::fmt::Debug for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Isolation")
            .field("map", &self.map)
            .field("allow_cluster_scoped", &self.allow_cluster_scoped)
            .field("owned", &self.owned)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

static LIVE: Mutex<Vec<Weak<Isolation>>> = Mutex::new(Vec::new());

impl Isolation {
    /// Isolation for one run with `map`, talking to the cluster with `raw` (built from `config`).
    #[must_use]
    pub fn new(
        map: NamespaceMap,
        raw: kube::Client,
        config: kube::Config,
        allow_cluster_scoped: bool,
    ) -> Arc<Self> {
        let iso = Arc::new(Self {
            map,
            allow_cluster_scoped,
            raw,
            config,
            owned: Arc::default(),
            created: Mutex::new(Vec::new()),
            owner: crate::backend::k3d::Owner::current().token(),
        });
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&iso));
        iso
    }

    /// The namespace renaming.
    #[must_use]
    pub fn map(&self) -> &NamespaceMap {
        &self.map
    }

    /// The namespaces created so far (cluster names), shared for watching.
    #[must_use]
    pub fn owned(&self) -> Arc<Mutex<BTreeSet<String>>> {
        self.owned.clone()
    }

    /// The runner's client: the real one behind the isolation layer, defaulting to the
    /// scenario's `default` namespace.
    #[must_use]
    pub fn client(self: &Arc<Self>) -> kube::Client {
        kube::Client::new(Isolated { iso: self.clone() }, "default")
    }

    fn owns(&self, ns: &str) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(ns)
    }

    fn own(&self, ns: &str) {
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ns.to_owned());
    }

    async fn ensure_namespace(&self, mapped: &str) -> Result<(), IsolationError> {
        if self.owns(mapped) {
            return Ok(());
        }
        let original = self.map.original(mapped).unwrap_or_default();
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {
                "name": mapped,
                "labels": {MANAGED_BY.0: MANAGED_BY.1},
                "annotations": {SCENARIO_NAMESPACE_ANNOTATION: original, OWNER_ANNOTATION: self.owner},
            }
        }))
        .map_err(|e| IsolationError::CreateNamespace {
            name: mapped.to_owned(),
            source: kube::Error::SerdeError(e),
        })?;
        // Owned from the attempt on: a create that timed out may still have happened.
        self.own(mapped);
        match Api::<Namespace>::all(self.raw.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(source) => Err(IsolationError::CreateNamespace {
                name: mapped.to_owned(),
                source,
            }),
        }
    }

    async fn handle(&self, req: Request<Body>) -> Result<Response<Body>, tower::BoxError> {
        let (mut parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.map_err(IsolationError::Body)?;
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let target = Target::of(&path);
        let verb = verb(&parts.method, &parts.headers);

        let mut json: Option<Value> = if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if let Some(v) = json.as_mut() {
            self.map.map_value(v);
        }
        let body_name = json
            .as_ref()
            .and_then(|v| v.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .map(str::to_owned);

        let mapped_path = map_path(&path, &self.map);
        let uri = match &query {
            Some(q) => format!("{mapped_path}?{}", self.map.map_query(q)),
            None => mapped_path.clone(),
        };
        parts.uri = uri
            .parse()
            .map_err(|e: http::uri::InvalidUri| Box::new(e) as tower::BoxError)?;

        if let Some(verb) = verb {
            match &target {
                Target::Namespaced(ns) if verb != "delete" => {
                    self.ensure_namespace(&self.map.map(ns)).await?;
                }
                Target::ClusterScoped { resource, name } if !self.allow_cluster_scoped => {
                    return Err(Box::new(IsolationError::ClusterScoped {
                        verb,
                        resource: resource.clone(),
                        name: name.clone().or(body_name).unwrap_or_default(),
                    }));
                }
                _ => {}
            }
        }

        let body = match &json {
            Some(v) => {
                Bytes::from(serde_json::to_vec(v).map_err(|e| Box::new(e) as tower::BoxError)?)
            }
            None => bytes,
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        let method = parts.method.clone();
        let response = self
            .raw
            .send(Request::from_parts(parts, Body::from(body)))
            .await?;
        tracing::debug!(%method, path = %mapped_path, status = %response.status(), "isolated request");

        if let Some(verb) = verb
            && response.status().is_success()
        {
            match &target {
                Target::Namespaces => {
                    if let Some(n) = &body_name {
                        self.own(n);
                    }
                }
                Target::NamespaceObject(n) if verb != "delete" => self.own(&self.map.map(n)),
                Target::ClusterScoped { name, .. } if response.status() == StatusCode::CREATED => {
                    let object = if name.is_some() {
                        mapped_path.clone()
                    } else {
                        format!("{mapped_path}/{}", body_name.clone().unwrap_or_default())
                    };
                    self.created
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(object);
                }
                _ => {}
            }
        }

        let watching = query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        if watching {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| Box::new(e) as tower::BoxError)?
            .to_bytes();
        let bytes = match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains(self.map.prefix()) => {
                Bytes::from(self.map.unmap_text(text).into_bytes())
            }
            _ => bytes,
        };
        let mut response = Response::from_parts(parts, Body::from(bytes));
        response.headers_mut().remove(header::CONTENT_LENGTH);
        Ok(response)
    }

    fn take_all(&self) -> (Vec<String>, Vec<String>) {
        let created =
            std::mem::take(&mut *self.created.lock().unwrap_or_else(PoisonError::into_inner));
        let owned = self
            .owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        (created, owned)
    }

    async fn delete_all(
        client: &kube::Client,
        created: &[String],
        owned: &[String],
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for path in created.iter().rev() {
            let req = Request::delete(path.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .body(
                    serde_json::to_vec(&json!({"propagationPolicy": "Background"}))
                        .unwrap_or_default(),
                );
            let Ok(req) = req else { continue };
            match client.request_text(req).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => failed.push(format!("{path}: {e}")),
            }
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for ns in owned {
            match namespaces.delete(ns, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => failed.push(format!("namespace {ns}: {e}")),
            }
        }
        failed
    }

    /// Deletes the run's namespaces and the cluster-scoped objects it created, and waits until
    /// they are gone. Idempotent.
    ///
    /// # Errors
    /// [`IsolationError::Leftover`] naming what could not be deleted in time.
    pub async fn release(&self) -> Result<(), IsolationError> {
        let (created, owned) = self.take_all();
        let mut failed = Self::delete_all(&self.raw, &created, &owned).await;
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        let namespaces: Api<Namespace> = Api::all(self.raw.clone());
        let mut waiting: Vec<String> = created
            .iter()
            .cloned()
            .chain(owned.iter().map(|n| format!("/api/v1/namespaces/{n}")))
            .collect();
        while !waiting.is_empty() && Instant::now() < deadline {
            let mut still = Vec::new();
            for path in waiting {
                let gone = if let Some(ns) = path.strip_prefix("/api/v1/namespaces/") {
                    matches!(namespaces.get_opt(ns).await, Ok(None))
                } else {
                    match Request::get(path.as_str()).body(Vec::new()) {
                        Ok(req) => {
                            matches!(self.raw.request_text(req).await, Err(kube::Error::Api(s)) if s.code == 404)
                        }
                        Err(_) => true,
                    }
                };
                if !gone {
                    still.push(path);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        failed.extend(waiting);
        if failed.is_empty() {
            Ok(())
        } else {
            Err(IsolationError::Leftover(failed))
        }
    }

    /// Starts deleting what the run created from a thread of its own (usable while the
    /// runtime that owns [`Self::client`] is unwinding or blocked), waiting at most a few
    /// seconds for the requests to be sent. For drops and Ctrl-C.
    pub fn release_blocking(&self) {
        let (created, owned) = self.take_all();
        if created.is_empty() && owned.is_empty() {
            return;
        }
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let config = self.config.clone();
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(client) = kube::Client::try_from(config) else {
                    return;
                };
                let cleanup = Self::delete_all(&client, &created, &owned);
                match tokio::time::timeout(Duration::from_secs(20), cleanup).await {
                    Ok(failed) if failed.is_empty() => {}
                    Ok(failed) => tracing::warn!(?failed, "failed to clean up after a run"),
                    Err(_) => tracing::warn!(?owned, "cleanup after a run timed out"),
                }
            });
        });
        let _ = worker.join();
    }
}

/// Starts deleting the namespaces and objects of every live run of this process (Ctrl-C).
pub fn release_live_runs() {
    let live: Vec<Arc<Isolation>> = LIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for iso in live {
        iso.release_blocking();
    }
}

/// Deletes a run's leftovers when dropped without [`Isolation::release`] (a panic, an early
/// return).
#[derive(Debug)]
pub struct IsolationGuard(pub Arc<Isolation>);

impl Drop for IsolationGuard {
    fn drop(&mut self) {
        self.0.release_blocking();
    }
}

/// The isolation layer as a `tower` service, for [`kube::Client::new`].
#[derive(Debug, Clone)]
pub struct Isolated {
    iso: Arc<Isolation>,
}

impl tower::Service<Request<Body>> for Isolated {
    type Response = Response<Body>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, tower::BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let iso = self.iso.clone();
        Box::pin(async move { iso.handle(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_short_and_reversible() {
        let map = NamespaceMap::new("run", "scenario");
        assert_eq!(map.prefix().len(), "relapse-".len() + 7);
        let m = map.map("monitoring");
        assert_eq!(m, format!("{}monitoring", map.prefix()));
        assert_eq!(map.map(&m), m, "renamed names stay");
        assert_eq!(map.original(&m).as_deref(), Some("monitoring"));
        let long = "a".repeat(60);
        let ml = map.map(&long);
        assert!(ml.len() <= 63, "{ml}");
        assert_eq!(map.original(&ml), Some(long.clone()));
        let text = format!("pod keycloak-1_{m}(uid) and {ml}");
        assert_eq!(
            map.unmap_text(&text),
            format!("pod keycloak-1_monitoring(uid) and {long}")
        );
        // Another scenario or run gets other names.
        assert_ne!(NamespaceMap::new("run", "other").prefix(), map.prefix());
        assert_ne!(NamespaceMap::new("run2", "scenario").prefix(), map.prefix());
        assert_eq!(NamespaceMap::new("run", "scenario").prefix(), map.prefix());
    }

    #[test]
    fn bodies_rename_namespace_fields_and_namespace_objects() {
        let map = NamespaceMap::new("r", "s");
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}});
        map.map_value(&mut ns);
        assert_eq!(ns["metadata"]["name"], json!(map.map("demo")));
        let mut crb = json!({"kind": "RoleBinding", "metadata": {"name": "x", "namespace": "demo"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]});
        map.map_value(&mut crb);
        assert_eq!(crb["metadata"]["namespace"], json!(map.map("demo")));
        assert_eq!(crb["subjects"][0]["namespace"], json!(map.map("default")));
        assert_eq!(crb["metadata"]["name"], json!("x"));
    }

    #[test]
    fn json_patches_rename_namespace_values() {
        let map = NamespaceMap::new("r", "s");
        let mut patch = json!([
            {"op": "replace", "path": "/metadata/namespace", "value": "demo"},
            {"op": "add", "path": "/subjects/0", "value": {"kind": "ServiceAccount", "name": "sa", "namespace": "demo"}},
            {"op": "replace", "path": "/metadata/name", "value": "demo"},
            {"op": "remove", "path": "/metadata/labels"}
        ]);
        map.map_value(&mut patch);
        assert_eq!(patch[0]["value"], json!(map.map("demo")));
        assert_eq!(patch[1]["value"]["namespace"], json!(map.map("demo")));
        assert_eq!(
            patch[2]["value"],
            json!("demo"),
            "only namespace paths are renamed"
        );
        // A list that is not a patch keeps the ordinary rule.
        let mut list = json!([{"namespace": "demo"}]);
        map.map_value(&mut list);
        assert_eq!(list[0]["namespace"], json!(map.map("demo")));
    }

    #[test]
    fn field_selectors_rename_namespace_terms() {
        let map = NamespaceMap::new("r", "s");
        let mapped = map.map("demo");
        assert_eq!(
            map.map_query(
                "fieldSelector=involvedObject.namespace%3Ddemo%2Creason%3DFailed&limit=5"
            ),
            format!(
                "fieldSelector=involvedObject.namespace%3D{}%2Creason%3DFailed&limit=5",
                mapped
            )
        );
        assert_eq!(
            map.map_query("fieldSelector=metadata.namespace!=demo"),
            format!("fieldSelector=metadata.namespace%21%3D{mapped}")
        );
        assert_eq!(
            map.map_query("fieldSelector=metadata.name%3Ddemo"),
            "fieldSelector=metadata.name%3Ddemo"
        );
        assert_eq!(
            map.map_query("watch=true&labelSelector=a%3Db"),
            "watch=true&labelSelector=a%3Db"
        );
    }

    #[test]
    fn paths_are_classified_and_renamed() {
        let map = NamespaceMap::new("r", "s");
        assert_eq!(Target::of("/api/v1/namespaces"), Target::Namespaces);
        assert_eq!(
            Target::of("/api/v1/namespaces/demo"),
            Target::NamespaceObject("demo".into())
        );
        assert_eq!(
            Target::of("/api/v1/namespaces/demo/pods/p/log"),
            Target::Namespaced("demo".into())
        );
        assert_eq!(
            Target::of("/apis/apps/v1/namespaces/demo/deployments"),
            Target::Namespaced("demo".into())
        );
        assert_eq!(
            Target::of(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/prometheuses.monitoring.coreos.com"
            ),
            Target::ClusterScoped {
                resource: "customresourcedefinitions.apiextensions.k8s.io".into(),
                name: Some("prometheuses.monitoring.coreos.com".into())
            }
        );
        assert_eq!(
            Target::of("/api/v1/nodes"),
            Target::ClusterScoped {
                resource: "nodes".into(),
                name: None
            }
        );
        assert_eq!(Target::of("/apis/apps/v1"), Target::Other);
        assert_eq!(Target::of("/version"), Target::Other);
        assert_eq!(
            map_path("/apis/apps/v1/namespaces/demo/deployments/web", &map),
            format!(
                "/apis/apps/v1/namespaces/{}/deployments/web",
                map.map("demo")
            )
        );
        assert_eq!(map_path("/api/v1/nodes/n", &map), "/api/v1/nodes/n");
    }

    #[test]
    fn image_behaviours_name_renamed_namespaces() {
        let map = NamespaceMap::new("r", "s");
        let b: crate::scenario::ImageBehaviour = crate::yaml::from_str(
            "requires:\n  - needs:\n      object: {apiVersion: v1, kind: ConfigMap, name: c, namespace: apps}\n    otherwise:\n      log: [missing]\n      exitCode: 1\n",
        )
        .unwrap();
        let op: crate::scenario::ImageBehaviour = crate::yaml::from_str(
            "operator:\n  - forEach: {group: g, version: v1, resource: rs, kind: R}\n    owns:\n      - {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: '{{namespace}}'}}\n",
        )
        .unwrap();
        let mapped = map.map_images(BTreeMap::from([
            ("img".to_owned(), b),
            ("op".to_owned(), op),
        ]));
        let v = serde_json::to_value(&mapped["op"]).unwrap();
        assert_eq!(
            v.pointer("/operator/0/owns/0/metadata/namespace"),
            Some(&json!("{{namespace}}")),
            "templates are filled in with the renamed namespace later"
        );
        let v = serde_json::to_value(&mapped["img"]).unwrap();
        assert_eq!(
            v.pointer("/requires/0/needs/object/namespace"),
            Some(&json!(map.map("apps")))
        );
    }
}
