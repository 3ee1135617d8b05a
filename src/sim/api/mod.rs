//! The HTTP API of the simulated cluster, as a plain async handler: a request in, a response
//! out. The transports (in-process tower service, TLS on a local port) live in
//! [`crate::sim::serve`].

mod authz;
mod body;
pub mod discovery;
mod logs;
mod objects;
pub mod openapi;
mod proto;
pub mod protobuf;
pub mod query;
pub mod status;
pub mod table;
mod watch;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::json;

pub use body::Body;
use query::Query;

use crate::sim::rbac::{self, UserInfo};
use crate::sim::store::{ApiError, Reason, Store};

/// The largest request body the server reads, as the real API server's limit
/// (k8s.io/apiserver/pkg/server/config.go, `MaxRequestBodyBytes`).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The `minor` version `/version` reports (kubectl's dispatcher picks its binary by it).
    pub minor: String,
    /// The release whose build details `/version` reports.
    pub kubernetes: crate::scenario::KubernetesVersion,
    /// The address `/api` advertises (`host:port`).
    pub server_address: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            minor: "32".to_string(),
            kubernetes: crate::scenario::KubernetesVersion::default(),
            server_address: "127.0.0.1:6443".to_string(),
        }
    }
}

/// The API server: routes requests to the store.
#[derive(Debug, Clone)]
pub struct ApiServer {
    store: Arc<Store>,
    config: Arc<ApiConfig>,
}

/// A request whose body has been read.
#[derive(Debug)]
struct Req {
    method: Method,
    path: String,
    query: Query,
    accept: String,
    content_type: String,
    body: Bytes,
    /// Who the request acts as (the caller, or whom it impersonates).
    user: UserInfo,
    /// The `User-Agent` header, whose first segment names the field manager of a write that
    /// gives none.
    user_agent: String,
}

impl ApiServer {
    /// An API server over `store`.
    #[must_use]
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
        }
    }

    /// The store behind the server.
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Handles a request with any body type, reading at most [`MAX_BODY_BYTES`].
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return status::error(&too_large());
        }
        let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return status::error(&too_large());
            }
            Err(e) => {
                return status::error(&ApiError::bad_request(format!(
                    "unable to read the request body: {e}"
                )));
            }
        };
        let header_str = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let policy = authz::StorePolicy(&self.store);
        // Every caller that got this far is the administrator; impersonation headers switch
        // to another identity, which the authorization filter then judges.
        let user = match authz::acting_user(&policy, &UserInfo::admin(), &parts.headers) {
            Ok(user) => user,
            Err(authz::Refusal::Forbidden { attributes, reason }) => {
                return status::error(&authz::forbidden(&attributes, &reason));
            }
            // `responsewriters.InternalError`: plain text naming the request URI.
            Err(authz::Refusal::GroupsWithoutUser(detail)) => {
                let uri = parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
                return status::respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    format!(
                        "Internal Server Error: {}: {detail}\n",
                        crate::sim::store::error::go_quote(&uri)
                    )
                    .into_bytes(),
                );
            }
        };
        let req = Req {
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            query: Query::parse(parts.uri.query()),
            accept: header_str(header::ACCEPT),
            content_type: header_str(header::CONTENT_TYPE),
            user_agent: header_str(header::USER_AGENT),
            body: bytes,
            user,
        };
        tracing::debug!(method = %req.method, path = %req.path, "sim api request");
        // k8s.io/apiserver/pkg/endpoints/filters/authorization.go `WithAuthorization`.
        let attributes =
            authz::request_attributes(req.user.clone(), req.method.as_str(), &req.path, &req.query);
        let decision = rbac::authorize(&policy, &attributes);
        if !decision.allowed {
            return status::error(&authz::forbidden(&attributes, &decision.reason));
        }
        self.route(req).await
    }

    async fn route(&self, req: Req) -> Response<Body> {
        let path = req.path.clone();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let resources = || self.store.resources();
        let get_only = |req: &Req| req.method == Method::GET || req.method == Method::HEAD;
        match segs.as_slice() {
            ["version"] if get_only(&req) => status::ok(&self.version()),
            ["healthz" | "livez" | "readyz"] if get_only(&req) => {
                status::respond(StatusCode::OK, "text/plain; charset=utf-8", b"ok".to_vec())
            }
            ["api"] if get_only(&req) => match aggregated_version(&req.accept) {
                Some((ct, av)) => status::respond(
                    StatusCode::OK,
                    ct,
                    serde_json::to_vec(&discovery::aggregated(&resources(), true, av))
                        .unwrap_or_default(),
                ),
                None => status::ok(&discovery::api_versions(&self.config.server_address)),
            },
            ["apis"] if get_only(&req) => match aggregated_version(&req.accept) {
                Some((ct, av)) => status::respond(
                    StatusCode::OK,
                    ct,
                    serde_json::to_vec(&discovery::aggregated(&resources(), false, av))
                        .unwrap_or_default(),
                ),
                None => status::ok(&discovery::api_group_list(&resources())),
            },
            ["api", "v1"] if get_only(&req) => {
                found(discovery::resource_list(&resources(), "", "v1"))
            }
            ["apis", g] if get_only(&req) => found(discovery::api_group(&resources(), g)),
            ["apis", g, v] if get_only(&req) => found(discovery::resource_list(&resources(), g, v)),
            ["openapi", "v2"] if get_only(&req) => status::respond(
                StatusCode::OK,
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                Vec::new(),
            ),
            ["openapi", "v3"] if get_only(&req) => {
                status::ok(&openapi::index(&resources(), &self.crds()))
            }
            ["openapi", "v3", rest @ ..] if get_only(&req) => found(openapi::document(
                &resources(),
                &rest.join("/"),
                &self.config.minor,
                &self.crds(),
            )),
            ["api", "v1", rest @ ..] => self.resource_request(&req, "", "v1", rest).await,
            ["apis", g, v, rest @ ..] => self.resource_request(&req, g, v, rest).await,
            [] if get_only(&req) => status::ok(
                &json!({"paths": ["/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/version"]}),
            ),
            _ => status::error(&ApiError::unknown_path()),
        }
    }

    /// The stored CustomResourceDefinitions, whose schemas the OpenAPI documents publish.
    fn crds(&self) -> Vec<serde_json::Value> {
        self.store
            .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .and_then(|res| {
                self.store
                    .list(&res, None, &crate::sim::store::ListOptions::default())
                    .ok()
            })
            .map(|list| list.items)
            .unwrap_or_default()
    }

    fn version(&self) -> serde_json::Value {
        let minor = &self.config.minor;
        let release = crate::sim::versions::server_version(self.config.kubernetes);
        json!({
            "major": "1",
            "minor": minor,
            "gitVersion": format!("v1.{minor}.0"),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": release.build_date,
            "goVersion": release.go_version,
            "compiler": "gc",
            "platform": "linux/amd64"
        })
    }

    async fn resource_request(
        &self,
        req: &Req,
        group: &str,
        version: &str,
        rest: &[&str],
    ) -> Response<Body> {
        let mut rest = rest;
        let mut watch_path = false;
        if rest.first() == Some(&"watch") {
            watch_path = true;
            rest = &rest[1..];
        }
        let mut ns: Option<&str> = None;
        if rest.len() >= 3
            && rest[0] == "namespaces"
            && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
        {
            ns = Some(rest[1]);
            rest = &rest[2..];
        }
        let (plural, name, sub) = match rest {
            [p] => (*p, None, None),
            [p, n] => (*p, Some(*n), None),
            [p, n, s] => (*p, Some(*n), Some(*s)),
            _ => return status::error(&ApiError::unknown_path()),
        };
        let Some(res) = self.store.resource(group, version, plural) else {
            return status::error(&ApiError::unknown_path());
        };
        if !res.namespaced && ns.is_some() {
            return status::error(&ApiError::unknown_path());
        }
        let ctx = objects::Ctx {
            server: self,
            req,
            res: &res,
            ns,
            name,
        };
        if let Some(kind) =
            rbac::review::ReviewKind::of(plural).filter(|_| group == "authorization.k8s.io")
        {
            return match (name, &req.method) {
                (None, &Method::POST) => ctx.review(kind),
                _ => not_allowed(),
            };
        }
        let watch = watch_path || req.query.flag("watch");
        match (name, sub, &req.method) {
            (None, None, &Method::GET) if watch => ctx.watch(),
            (None, None, &Method::GET) => ctx.list(),
            (None, None, &Method::POST) if ns.is_some() || !res.namespaced => ctx.create(),
            (None, None, &Method::DELETE)
                if res.supports("deletecollection") && (ns.is_some() || !res.namespaced) =>
            {
                ctx.delete_collection()
            }
            (Some(_), None, &Method::GET) if watch => ctx.watch(),
            (Some(_), None, &Method::GET) => ctx.get(),
            (Some(_), None, &Method::PUT) => ctx.update(crate::sim::store::Part::Main),
            (Some(_), None, &Method::PATCH) => ctx.patch(crate::sim::store::Part::Main),
            (Some(_), None, &Method::DELETE) => ctx.delete(),
            (Some(_), Some("status"), m) if res.status => match *m {
                Method::GET => ctx.get(),
                Method::PUT => ctx.update(crate::sim::store::Part::Status),
                Method::PATCH => ctx.patch(crate::sim::store::Part::Status),
                _ => not_allowed(),
            },
            (Some(_), Some("scale"), m) if res.scale.is_some() => match *m {
                Method::GET => ctx.get_scale(),
                Method::PUT => ctx.update_scale(),
                Method::PATCH => ctx.patch_scale(),
                _ => not_allowed(),
            },
            (Some(_), Some("finalize"), &Method::PUT)
                if res.group.is_empty() && res.kind == "Namespace" =>
            {
                ctx.finalize()
            }
            (Some(_), Some("log"), &Method::GET) if res.log => ctx.logs().await,
            (_, Some(_), _) => status::error(&ApiError::unknown_path()),
            _ => not_allowed(),
        }
    }
}

fn too_large() -> ApiError {
    // k8s.io/apimachinery/pkg/api/errors/errors.go NewRequestEntityTooLargeError and the limit message of
    // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (limitedReadBody).
    ApiError::new(
        Reason::RequestEntityTooLarge,
        format!("Request entity too large: limit is {MAX_BODY_BYTES}"),
    )
}

fn not_allowed() -> Response<Body> {
    // k8s.io/apimachinery/pkg/api/errors/errors.go NewMethodNotSupported's generic 405 text.
    status::error(&ApiError::new(
        Reason::MethodNotAllowed,
        "the server does not allow this method on the requested resource",
    ))
}

fn found(v: Option<serde_json::Value>) -> Response<Body> {
    match v {
        Some(v) => status::ok(&v),
        None => status::error(&ApiError::unknown_path()),
    }
}

/// Which aggregated discovery version the Accept header asks for, if any.
fn aggregated_version(accept: &str) -> Option<(&'static str, &'static str)> {
    for part in accept.split(',') {
        if !part.contains("as=APIGroupDiscoveryList") {
            continue;
        }
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if params.contains(&"v=v2") {
            return Some((discovery::AGGREGATED_V2, "apidiscovery.k8s.io/v2"));
        }
        if params.contains(&"v=v2beta1") {
            return Some((discovery::AGGREGATED_V2BETA1, "apidiscovery.k8s.io/v2beta1"));
        }
    }
    None
}

#[cfg(test)]
mod tests;
