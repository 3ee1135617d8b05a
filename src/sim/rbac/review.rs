//! `authorization.k8s.io/v1` access reviews: SelfSubjectAccessReview (what `kubectl auth
//! can-i` creates), SubjectAccessReview and LocalSubjectAccessReview. They are never stored:
//! a create answers with the object and its `status` filled in
//! (pkg/registry/authorization/*subjectaccessreview/rest.go).

use serde_json::{Value, json};

use super::{Attributes, RequestTarget, UserInfo, authorize};
use crate::sim::controllers::ClusterView;
use crate::sim::resources::ResourceDef;
use crate::sim::store::error::go_quote;
use crate::sim::store::{ApiError, FieldError};

/// Which review is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKind {
    /// `selfsubjectaccessreviews`: about the requesting user.
    SelfSubject,
    /// `subjectaccessreviews`: about `spec.user` and `spec.groups`.
    Subject,
    /// `localsubjectaccessreviews`: a SubjectAccessReview bound to one namespace.
    LocalSubject,
}

impl ReviewKind {
    /// The review kind served at `plural`, if any.
    #[must_use]
    pub fn of(plural: &str) -> Option<Self> {
        match plural {
            "selfsubjectaccessreviews" => Some(Self::SelfSubject),
            "subjectaccessreviews" => Some(Self::Subject),
            "localsubjectaccessreviews" => Some(Self::LocalSubject),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::SelfSubject => "SelfSubjectAccessReview",
            Self::Subject => "SubjectAccessReview",
            Self::LocalSubject => "LocalSubjectAccessReview",
        }
    }
}

/// Answers the create of a review by `requester` (in `namespace` for a local review).
///
/// # Errors
/// `Invalid` when the spec names neither resource nor non-resource attributes, or (for
/// reviews about someone else) no user and no group; `BadRequest` when a local review's
/// namespace differs from the URL's.
pub fn create(
    view: &dyn ClusterView,
    res: &ResourceDef,
    kind: ReviewKind,
    requester: &UserInfo,
    namespace: Option<&str>,
    body: &Value,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let resource_attrs = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource_attrs = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let mut causes = Vec::new();
    // pkg/apis/authorization/validation/validation.go (Kubernetes 1.32).
    // The value is rendered as field.ErrorBody does: a nil pointer as the string "null", a
    // struct with %#v (validation runs on the internal type).
    if let (Some(_), Some(n)) = (resource_attrs, non_resource_attrs) {
        let field = |k: &str| {
            n.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        causes.push(FieldError::invalid_raw(
            "spec.nonResourceAttributes",
            format!(
                "authorization.NonResourceAttributes{{Path:{}, Verb:{}}}",
                go_quote(&field("path")),
                go_quote(&field("verb"))
            ),
            "cannot be specified in combination with resourceAttributes",
        ));
    }
    if resource_attrs.is_none() && non_resource_attrs.is_none() {
        causes.push(FieldError::invalid_str(
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let user = match kind {
        ReviewKind::SelfSubject => requester.clone(),
        ReviewKind::Subject | ReviewKind::LocalSubject => {
            let name = spec
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if name.is_empty() && groups.is_empty() {
                causes.push(FieldError::invalid_str(
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                ));
            }
            UserInfo { name, groups }
        }
    };
    let str_of = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let url_namespace = namespace.unwrap_or_default();
    if kind == ReviewKind::LocalSubject {
        let declared = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(url_namespace);
        if declared != url_namespace {
            // pkg/registry/authorization/localsubjectaccessreview/rest.go `Create`.
            return Err(ApiError::bad_request(format!(
                "spec.resourceAttributes.namespace must match namespace: {url_namespace}"
            )));
        }
    }
    let target = match (resource_attrs, non_resource_attrs) {
        (Some(r), _) => {
            let mut ns = str_of(r, "namespace");
            if kind == ReviewKind::LocalSubject && ns.is_empty() {
                ns = url_namespace.to_owned();
            }
            Some(RequestTarget::Resource {
                group: str_of(r, "group"),
                resource: str_of(r, "resource"),
                subresource: str_of(r, "subresource"),
                namespace: ns,
                name: str_of(r, "name"),
            })
        }
        (None, Some(n)) => Some(RequestTarget::NonResource {
            path: str_of(n, "path"),
        }),
        (None, None) => None,
    };
    let Some(target) = target.filter(|_| causes.is_empty()) else {
        return Err(ApiError::invalid(res, "", causes));
    };
    let verb = resource_attrs
        .or(non_resource_attrs)
        .map(|a| str_of(a, "verb"))
        .unwrap_or_default();
    let decision = authorize(view, &Attributes { user, verb, target });
    // SubjectAccessReviewStatus: `allowed` always, `reason` when there is one; RBAC never
    // denies outright, so `denied` stays unset.
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    let mut out = json!({
        "kind": kind.kind(),
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": spec,
        "status": status,
    });
    if let Some(ns) = namespace
        && kind == ReviewKind::LocalSubject
    {
        out["metadata"]["namespace"] = json!(ns);
    }
    Ok(out)
}
