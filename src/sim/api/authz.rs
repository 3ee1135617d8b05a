//! Who a request is made by, and whether it may proceed: the impersonation filter and the
//! authorization filter of the real API server, in front of every handler.
//!
//! Every authenticated caller of the simulator (the kubeconfig's token, the in-process client)
//! is the cluster's administrator, a member of `system:masters`. `Impersonate-User` and
//! `Impersonate-Group` headers (`kubectl --as`, `--as-group`) switch to another identity,
//! which RBAC then judges.

use std::sync::Arc;

use http::HeaderMap;
use serde_json::Value;

use super::query::Query;
use crate::sim::controllers::ClusterView;
use crate::sim::rbac::{self, Attributes, RequestTarget, UserInfo};
use crate::sim::store::error::StatusDetails;
use crate::sim::store::{ApiError, ListOptions, Reason, Store};

/// `authenticationv1.ImpersonateUserHeader`.
const IMPERSONATE_USER: &str = "impersonate-user";
/// `authenticationv1.ImpersonateGroupHeader`.
const IMPERSONATE_GROUP: &str = "impersonate-group";

/// The store as the authorizer reads it (the real one reads its informers' caches).
#[derive(Debug, Clone, Copy)]
pub struct StorePolicy<'a>(pub &'a Store);

impl ClusterView for StorePolicy<'_> {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = self.0.resource_for_kind(api_version, kind)?;
        let ns = namespace.filter(|_| res.namespaced);
        self.0.get(&res, ns, name).ok()
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(res) = self.0.resource_for_kind(api_version, kind) else {
            return Vec::new();
        };
        let ns = namespace.filter(|_| res.namespaced);
        self.0
            .list(&res, ns, &ListOptions::default())
            .map(|l| l.items.into_iter().map(Arc::new).collect())
            .unwrap_or_default()
    }
}

/// The 403 `Status` of a denied request (`responsewriters.Forbidden`): the message of
/// [`Attributes::forbidden_message`], details naming the resource and object.
#[must_use]
pub fn forbidden(attributes: &Attributes, reason: &str) -> ApiError {
    let mut err = ApiError::new(Reason::Forbidden, attributes.forbidden_message(reason));
    let (group, kind, name) = match &attributes.target {
        RequestTarget::Resource {
            group,
            resource,
            name,
            ..
        } => (group.clone(), resource.clone(), name.clone()),
        RequestTarget::NonResource { .. } => (String::new(), String::new(), String::new()),
    };
    err.details = Some(Box::new(StatusDetails {
        name: (!name.is_empty()).then_some(name),
        group: Some(group),
        kind: (!kind.is_empty()).then_some(kind),
        ..StatusDetails::default()
    }));
    err
}

/// Why an impersonation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The caller may not impersonate this user, group or ServiceAccount: the 403 of
    /// `responsewriters.Forbidden` for the `impersonate` request.
    Forbidden {
        /// The `impersonate` request that was denied.
        attributes: Box<Attributes>,
        /// The authorizer's reason.
        reason: String,
    },
    /// Groups without a user: the filter answers 500 with this text
    /// (`buildImpersonationRequests`).
    GroupsWithoutUser(String),
}

/// The identity a request acts as: the caller, or whom its impersonation headers name once
/// the caller has been allowed to impersonate them
/// (k8s.io/apiserver/pkg/endpoints/filters/impersonation.go `WithImpersonation`).
///
/// # Errors
/// [`Refusal`] when the caller may not impersonate what the headers ask for, or names groups
/// without a user.
pub fn acting_user(
    view: &dyn ClusterView,
    caller: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, Refusal> {
    let requested_user = headers
        .get(IMPERSONATE_USER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let requested_groups: Vec<String> = headers
        .get_all(IMPERSONATE_GROUP)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if requested_user.is_empty() {
        if requested_groups.is_empty() {
            return Ok(caller.clone());
        }
        // `fmt.Errorf("requested %v without impersonating a user", impersonationRequests)`:
        // %v of []ObjectReference{{Kind: "Group", Name: g}} prints the struct's seven fields.
        let refs: Vec<String> = requested_groups
            .iter()
            .map(|g| format!("{{Group  {g}    }}"))
            .collect();
        return Err(Refusal::GroupsWithoutUser(format!(
            "requested [{}] without impersonating a user",
            refs.join(" ")
        )));
    }
    let impersonate = |resource: &str, namespace: &str, name: &str| Attributes {
        user: caller.clone(),
        verb: "impersonate".to_owned(),
        target: RequestTarget::Resource {
            group: String::new(),
            resource: resource.to_owned(),
            subresource: String::new(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    };
    let mut checks = Vec::new();
    let mut groups = Vec::new();
    if let Some((ns, name)) = rbac::split_service_account(requested_user) {
        checks.push(impersonate("serviceaccounts", ns, name));
        if requested_groups.is_empty() {
            // The groups of a ServiceAccount are a fixed mapping (`serviceaccount.MakeGroupNames`).
            groups = UserInfo::service_account(ns, name)
                .groups
                .into_iter()
                .filter(|g| g != rbac::AUTHENTICATED)
                .collect();
        }
    } else {
        checks.push(impersonate("users", "", requested_user));
    }
    for g in &requested_groups {
        checks.push(impersonate("groups", "", g));
        groups.push(g.clone());
    }
    for attributes in checks {
        let decision = rbac::authorize(view, &attributes);
        if !decision.allowed {
            return Err(Refusal::Forbidden {
                attributes: Box::new(attributes),
                reason: decision.reason,
            });
        }
    }
    // A non-anonymous user also gets `system:authenticated` unless the request named it or
    // `system:unauthenticated` itself.
    if requested_user != "system:anonymous"
        && !groups
            .iter()
            .any(|g| g == rbac::AUTHENTICATED || g == rbac::UNAUTHENTICATED)
    {
        groups.push(rbac::AUTHENTICATED.to_owned());
    }
    Ok(UserInfo {
        name: requested_user.to_owned(),
        groups,
    })
}

/// The authorization attributes of a request, as `RequestInfoFactory.NewRequestInfo`
/// (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) derives them from its method,
/// path and query.
#[must_use]
pub fn request_attributes(user: UserInfo, method: &str, path: &str, query: &Query) -> Attributes {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = |user: UserInfo| Attributes {
        user,
        verb: method.to_ascii_lowercase(),
        target: RequestTarget::NonResource {
            path: path.to_owned(),
        },
    };
    // Fewer than three segments, another prefix, or `/apis/<group>[/<version>]`: discovery
    // and other paths outside the resource API.
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => rest,
        ["apis", _group, _version, rest @ ..] if !rest.is_empty() => rest,
        _ => return non_resource(user),
    };
    let group = if parts[0] == "apis" { parts[1] } else { "" };
    let mut rest: &[&str] = rest;
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_owned();
    let mut special = false;
    if matches!(rest.first(), Some(&("watch" | "proxy"))) && rest.len() >= 2 {
        verb = rest[0].to_owned();
        rest = &rest[1..];
        special = true;
    }
    let mut namespace = "";
    if rest.first() == Some(&"namespaces")
        && let Some(ns) = rest.get(1)
    {
        namespace = ns;
        // `namespaces/<ns>/status` and `/finalize` are subresources of the namespace.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    let resource = rest.first().copied().unwrap_or_default();
    let mut name = rest.get(1).copied().unwrap_or_default().to_owned();
    let subresource = if rest.len() >= 3 && verb != "proxy" {
        rest[2]
    } else {
        ""
    };
    if name.is_empty() && verb == "get" && !special {
        verb = if query.flag("watch") { "watch" } else { "list" }.to_owned();
        // A list or watch of `metadata.name=<n>` is authorized as a request for that name.
        if let Some(n) = query.get("fieldSelector").and_then(exact_name) {
            name = n;
        }
    }
    if name.is_empty() && verb == "delete" {
        verb = "deletecollection".to_owned();
    }
    Attributes {
        user,
        verb,
        target: RequestTarget::Resource {
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name,
        },
    }
}

/// The name a field selector requires exactly (`metadata.name=x` or `==`), alone.
fn exact_name(selector: &str) -> Option<String> {
    if selector.contains(',') {
        return None;
    }
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!value.is_empty() && !value.contains('/') && value != "." && value != "..")
        .then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::sim::behaviour::StaticView;

    fn attrs(method: &str, path: &str, query: &str) -> Attributes {
        request_attributes(UserInfo::admin(), method, path, &Query::parse(Some(query)))
    }

    fn target(a: &Attributes) -> (String, String, String, String, String, String) {
        match &a.target {
            RequestTarget::Resource {
                group,
                resource,
                subresource,
                namespace,
                name,
            } => (
                a.verb.clone(),
                group.clone(),
                resource.clone(),
                subresource.clone(),
                namespace.clone(),
                name.clone(),
            ),
            RequestTarget::NonResource { path } => (
                a.verb.clone(),
                "<path>".into(),
                path.clone(),
                String::new(),
                String::new(),
                String::new(),
            ),
        }
    }

    fn t(
        v: &str,
        g: &str,
        r: &str,
        s: &str,
        ns: &str,
        n: &str,
    ) -> (String, String, String, String, String, String) {
        (v.into(), g.into(), r.into(), s.into(), ns.into(), n.into())
    }

    #[test]
    fn request_info_as_the_api_server_derives_it() {
        assert_eq!(
            target(&attrs("GET", "/api/v1/nodes", "")),
            t("list", "", "nodes", "", "", "")
        );
        assert_eq!(
            target(&attrs("GET", "/api/v1/nodes", "watch=true")),
            t("watch", "", "nodes", "", "", "")
        );
        assert_eq!(
            target(&attrs(
                "GET",
                "/apis/apps/v1/namespaces/x/deployments/d/scale",
                ""
            )),
            t("get", "apps", "deployments", "scale", "x", "d")
        );
        assert_eq!(
            target(&attrs(
                "GET",
                "/api/v1/namespaces/x/pods",
                "fieldSelector=metadata.name%3Dp"
            )),
            t("list", "", "pods", "", "x", "p")
        );
        assert_eq!(
            target(&attrs("GET", "/api/v1/watch/namespaces/x/pods/p", "")),
            t("watch", "", "pods", "", "x", "p")
        );
        assert_eq!(
            target(&attrs("DELETE", "/api/v1/namespaces/x/pods", "")),
            t("deletecollection", "", "pods", "", "x", "")
        );
        assert_eq!(
            target(&attrs("PUT", "/api/v1/namespaces/x/finalize", "")),
            t("update", "", "namespaces", "finalize", "x", "x")
        );
        assert_eq!(
            target(&attrs("GET", "/api/v1/namespaces/x", "")),
            t("get", "", "namespaces", "", "x", "x")
        );
        assert_eq!(
            target(&attrs(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                ""
            )),
            t(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                ""
            )
        );
        for p in [
            "/api/v1",
            "/apis/apps/v1",
            "/apis",
            "/version",
            "/openapi/v3/apis/apps/v1",
        ] {
            assert_eq!(
                target(&attrs("GET", p, "")),
                t("get", "<path>", p, "", "", "")
            );
        }
    }

    fn headers(user: Option<&str>, groups: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(u) = user {
            h.insert(IMPERSONATE_USER, HeaderValue::from_str(u).unwrap());
        }
        for g in groups {
            h.append(IMPERSONATE_GROUP, HeaderValue::from_str(g).unwrap());
        }
        h
    }

    #[test]
    fn impersonation_switches_the_identity() {
        let view = StaticView::default();
        let admin = UserInfo::admin();
        assert_eq!(
            acting_user(&view, &admin, &HeaderMap::new()),
            Ok(admin.clone())
        );
        assert_eq!(
            acting_user(
                &view,
                &admin,
                &headers(Some("system:serviceaccount:monitoring:ksm"), &[])
            ),
            Ok(UserInfo::service_account("monitoring", "ksm"))
        );
        assert_eq!(
            acting_user(&view, &admin, &headers(Some("alice"), &["devs"])),
            Ok(UserInfo {
                name: "alice".into(),
                groups: vec!["devs".into(), "system:authenticated".into()]
            })
        );
        assert_eq!(
            acting_user(&view, &admin, &headers(None, &["devs"])),
            Err(Refusal::GroupsWithoutUser(
                "requested [{Group  devs    }] without impersonating a user".into()
            ))
        );
    }

    #[test]
    fn only_who_may_impersonate_does() {
        let view = StaticView::default();
        let sa = UserInfo::service_account("apps", "app");
        let Err(Refusal::Forbidden { attributes, reason }) = acting_user(
            &view,
            &sa,
            &headers(Some("system:serviceaccount:kube-system:admin"), &[]),
        ) else {
            panic!("a ServiceAccount may not impersonate by default");
        };
        assert_eq!(
            attributes.forbidden_message(&reason),
            r#"serviceaccounts "admin" is forbidden: User "system:serviceaccount:apps:app" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system""#
        );
    }
}

#[cfg(test)]
mod served {
    use bytes::Bytes;
    use http::{Request, StatusCode};
    use http_body_util::{BodyExt, Full};
    use serde_json::{Value, json};

    use crate::sim::SimCluster;
    use crate::sim::api::ApiServer;

    async fn call(
        api: &ApiServer,
        method: &str,
        uri: &str,
        impersonate: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(user) = impersonate {
            req = req.header("Impersonate-User", user);
        }
        let resp = api
            .handle(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    const KSM: &str = "system:serviceaccount:monitoring:kube-state-metrics";
    const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

    fn can_i(verb: &str, resource: &str) -> Value {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"verb": verb, "resource": resource}}})
    }

    #[tokio::test]
    async fn requests_are_authorized_as_the_impersonated_service_account() {
        let api = SimCluster::start().api().clone();
        // The administrator may do anything; RBAC gives no reason for system:masters.
        let (code, review) = call(&api, "POST", SSAR, None, &can_i("list", "nodes")).await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(review["status"], json!({"allowed": true}));

        let (code, denied) = call(&api, "GET", "/api/v1/nodes", Some(KSM), &Value::Null).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(denied["reason"], "Forbidden");
        assert_eq!(
            denied["message"],
            r#"nodes is forbidden: User "system:serviceaccount:monitoring:kube-state-metrics" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        assert_eq!(denied["details"], json!({"kind": "nodes"}));
        let (_, review) = call(&api, "POST", SSAR, Some(KSM), &can_i("list", "nodes")).await;
        assert_eq!(review["status"], json!({"allowed": false}));
        // Discovery stays open to every authenticated user.
        let (code, _) = call(&api, "GET", "/api/v1", Some(KSM), &Value::Null).await;
        assert_eq!(code, StatusCode::OK);

        let rbac = "/apis/rbac.authorization.k8s.io/v1";
        let (code, _) = call(
            &api,
            "POST",
            &format!("{rbac}/clusterroles"),
            None,
            &json!({
            "metadata": {"name": "kube-state-metrics"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]}),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, _) = call(&api, "POST", &format!("{rbac}/clusterrolebindings"), None, &json!({
            "metadata": {"name": "kube-state-metrics"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-state-metrics"},
            "subjects": [{"kind": "ServiceAccount", "name": "kube-state-metrics", "namespace": "monitoring"}]})).await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, _) = call(&api, "GET", "/api/v1/nodes", Some(KSM), &Value::Null).await;
        assert_eq!(code, StatusCode::OK);
        let (_, review) = call(&api, "POST", SSAR, Some(KSM), &can_i("list", "nodes")).await;
        assert_eq!(
            review["status"],
            json!({"allowed": true, "reason": r#"RBAC: allowed by ClusterRoleBinding "kube-state-metrics" of ClusterRole "kube-state-metrics" to ServiceAccount "kube-state-metrics/monitoring""#})
        );

        // A SubjectAccessReview judges exactly the user and groups it names.
        let sar = json!({"spec": {"user": KSM, "resourceAttributes": {"verb": "list", "resource": "nodes"}}});
        let (code, review) = call(
            &api,
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            None,
            &sar,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(review["status"]["allowed"], true);
        let (code, invalid) = call(
            &api,
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            None,
            &json!({"spec": {}}),
        )
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(invalid["reason"], "Invalid");
        assert_eq!(
            invalid["message"],
            r#"SubjectAccessReview.authorization.k8s.io "" is invalid: [spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified, spec.user: Invalid value: "": at least one of user or group must be specified]"#
        );
        let (code, _) = call(&api, "GET", SSAR, None, &Value::Null).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    }
}
