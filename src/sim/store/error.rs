//! The API server's errors, shaped like apimachinery's `StatusError`
//! (k8s.io/apimachinery/pkg/api/errors/errors.go): a reason, an HTTP code, the exact message a
//! real API server sends, and details with field causes.

use serde_json::{Value, json};

use crate::sim::resources::ResourceDef;

/// `metav1.StatusReason` values the simulator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 400.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 406.
    NotAcceptable,
    /// 409, a name collision.
    AlreadyExists,
    /// 409, a stale resourceVersion.
    Conflict,
    /// 410, a resourceVersion too old for the watch history.
    Expired,
    /// 413.
    RequestEntityTooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 422.
    Invalid,
    /// 500.
    InternalError,
    /// 500 without a reason: an error the API server passes through without a Status of its
    /// own (`metav1.StatusReasonUnknown`, the empty string).
    Unknown,
}

impl Reason {
    /// The reason as the Status object spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable => "NotAcceptable",
            Self::AlreadyExists => "AlreadyExists",
            Self::Conflict => "Conflict",
            Self::Expired => "Expired",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::Invalid => "Invalid",
            Self::InternalError => "InternalError",
            Self::Unknown => "",
        }
    }

    /// The HTTP status code of the reason.
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::AlreadyExists | Self::Conflict => 409,
            Self::Expired => 410,
            Self::RequestEntityTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Invalid => 422,
            Self::InternalError | Self::Unknown => 500,
        }
    }
}

/// Kinds of field errors (k8s.io/apimachinery/pkg/util/validation/field/errors.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    /// `Required value`, cause `FieldValueRequired`.
    Required,
    /// `Invalid value`, cause `FieldValueInvalid`.
    Invalid,
    /// `Forbidden`, cause `FieldValueForbidden`.
    Forbidden,
    /// `Unsupported value`, cause `FieldValueNotSupported`.
    NotSupported,
    /// `Duplicate value`, cause `FieldValueDuplicate`.
    Duplicate,
    /// `Too long`, cause `FieldValueTooLong`.
    TooLong,
}

impl FieldErrorType {
    fn text(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Forbidden => "Forbidden",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
        }
    }

    fn cause(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
        }
    }
}

/// One field error of an Invalid (422) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The kind of error.
    pub kind: FieldErrorType,
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The offending value already rendered as Go would print it (`"x"`, `3`,
    /// `map[string]string{...}`), or `None` for error types that print no value.
    pub value: Option<String>,
    /// The detail after the value.
    pub detail: String,
}

impl FieldError {
    /// `field: Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `field: Invalid value: "value": detail` for a string value.
    pub fn invalid_str(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(go_quote(value)),
            detail: detail.into(),
        }
    }

    /// `field: Invalid value: <rendered>: detail` for a value rendered by the caller.
    pub fn invalid_raw(
        field: impl Into<String>,
        rendered: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(rendered.into()),
            detail: detail.into(),
        }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `field: Unsupported value: "value": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        Self {
            kind: FieldErrorType::NotSupported,
            field: field.into(),
            value: Some(go_quote(value)),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    /// `field: Too long: may not be more than <max> bytes` (`field.TooLong`,
    /// k8s.io/apimachinery/pkg/util/validation/field/errors.go), which prints no value.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            kind: FieldErrorType::TooLong,
            field: field.into(),
            value: None,
            detail: format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            ),
        }
    }

    /// `field: Duplicate value: "value"`.
    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            kind: FieldErrorType::Duplicate,
            field: field.into(),
            value: Some(go_quote(value)),
            detail: String::new(),
        }
    }

    /// The message without the field (`ErrorBody`).
    #[must_use]
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        if let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Quotes a string as Go's `%q` does for printable text.
#[must_use]
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How encoding/json names the JSON type of a value in its `UnmarshalTypeError`s.
#[must_use]
pub fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Renders a JSON object of strings the way Go's `%#v` prints a `map[string]string`.
#[must_use]
pub fn go_string_map(map: &Value) -> String {
    let mut pairs: Vec<(String, String)> = map
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

/// An API error as the server reports it in a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The Status reason.
    pub reason: Reason,
    /// The Status message, exactly as a real API server words it.
    pub message: String,
    /// `details`, when the error names an object or fields (boxed to keep errors small).
    pub details: Option<Box<StatusDetails>>,
}

/// `metav1.StatusDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusDetails {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind` (a resource or a kind, as the real server fills it).
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<FieldError>,
    /// `details.causes` that are not field validation errors (server-side apply conflicts);
    /// they follow `causes`.
    pub other_causes: Vec<StatusCause>,
}

/// A `metav1.StatusCause` other than a field validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// `reason` (`metav1.CauseType`, e.g. `FieldManagerConflict`).
    pub reason: &'static str,
    /// `message`.
    pub message: String,
    /// `field`.
    pub field: String,
}

/// The conflict message of an optimistic-concurrency failure
/// (k8s.io/apiserver/pkg/registry/generic/registry/store.go, `OptimisticLockErrorMsg`).
pub const OPTIMISTIC_LOCK_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

impl ApiError {
    /// An error with a reason and a message only.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn details_mut(&mut self) -> &mut StatusDetails {
        self.details.get_or_insert_with(Box::default)
    }

    /// The field causes of an Invalid error.
    #[must_use]
    pub fn causes(&self) -> &[FieldError] {
        self.details.as_ref().map_or(&[], |d| d.causes.as_slice())
    }

    fn with_details(mut self, res: &ResourceDef, name: &str) -> Self {
        self.details_mut().name = Some(name.to_string());
        self.details_mut().group = Some(res.group.clone());
        self.details_mut().kind = Some(res.plural.clone());
        self
    }

    /// `NewNotFound`: `pods "x" not found`.
    #[must_use]
    pub fn not_found(res: &ResourceDef, name: &str) -> Self {
        Self::new(
            Reason::NotFound,
            format!("{} {} not found", res.group_resource(), go_quote(name)),
        )
        .with_details(res, name)
    }

    /// `NewNotFound` for a namespace that does not exist.
    #[must_use]
    pub fn namespace_not_found(name: &str) -> Self {
        let mut e = Self::new(
            Reason::NotFound,
            format!("namespaces {} not found", go_quote(name)),
        );
        e.details_mut().name = Some(name.to_string());
        e.details_mut().group = Some(String::new());
        e.details_mut().kind = Some("namespaces".to_string());
        e
    }

    /// `NewAlreadyExists`: `pods "x" already exists`.
    #[must_use]
    pub fn already_exists(res: &ResourceDef, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!("{} {} already exists", res.group_resource(), go_quote(name)),
        )
        .with_details(res, name)
    }

    /// `NewConflict`: `Operation cannot be fulfilled on pods "x": <detail>`.
    #[must_use]
    pub fn conflict(res: &ResourceDef, name: &str, detail: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} {}: {detail}",
                res.group_resource(),
                go_quote(name)
            ),
        )
        .with_details(res, name)
    }

    /// A delete precondition that does not hold, as `rest.BeforeDelete` rejects it
    /// (k8s.io/apiserver/pkg/registry/rest/delete.go) before storage is reached: `NewConflict`
    /// qualified by the group and *kind*, `Operation cannot be fulfilled on Pod "x": <detail>`.
    #[must_use]
    pub fn precondition_conflict(res: &ResourceDef, name: &str, detail: &str) -> Self {
        let mut e = Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} {}: {detail}",
                res.group_kind(),
                go_quote(name)
            ),
        );
        e.details_mut().name = Some(name.to_string());
        e.details_mut().group = Some(res.group.clone());
        e.details_mut().kind = Some(res.kind.clone());
        e
    }

    /// `NewForbidden`: `pods "x" is forbidden: <detail>`.
    #[must_use]
    pub fn forbidden(res: &ResourceDef, name: &str, detail: &str) -> Self {
        // An object without a name yet (generateName) is not quoted (NewForbidden,
        // k8s.io/apimachinery/pkg/api/errors/errors.go).
        let message = if name.is_empty() {
            format!("{} is forbidden: {detail}", res.group_resource())
        } else {
            format!(
                "{} {} is forbidden: {detail}",
                res.group_resource(),
                go_quote(name)
            )
        };
        Self::new(Reason::Forbidden, message).with_details(res, name)
    }

    /// The NamespaceLifecycle admission plugin's refusal of new objects in a namespace being
    /// deleted (plugin/pkg/admission/namespace/lifecycle/admission.go): a Forbidden error
    /// whose cause is `NamespaceTerminatingCause`.
    #[must_use]
    pub fn namespace_terminating(res: &ResourceDef, name: &str, namespace: &str) -> Self {
        Self::forbidden(
            res,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        )
    }

    /// Whether this is [`ApiError::namespace_terminating`] (`apierrors.HasStatusCause(err,
    /// v1.NamespaceTerminatingCause)`), which controllers pass over without an event.
    #[must_use]
    pub fn is_namespace_terminating(&self) -> bool {
        self.reason == Reason::Forbidden && self.message.ends_with("because it is being terminated")
    }

    /// `NewInvalid`: `Deployment.apps "x" is invalid: <errors>`.
    #[must_use]
    pub fn invalid(res: &ResourceDef, name: &str, causes: Vec<FieldError>) -> Self {
        Self::invalid_as(&res.group_kind(), &res.kind, res, name, causes)
    }

    /// `NewInvalid` as the generic registry store builds it for an update of a custom resource
    /// without a resourceVersion: `GroupKind{Group, Kind: qualifiedResource.Resource}`
    /// (k8s.io/apiserver/pkg/registry/generic/registry/store.go, Update), so the message reads
    /// `widgets.example.com "x" is invalid: ...` and `details.kind` is the resource.
    #[must_use]
    pub fn invalid_resource(res: &ResourceDef, name: &str, causes: Vec<FieldError>) -> Self {
        Self::invalid_as(&res.group_resource(), &res.plural, res, name, causes)
    }

    /// `NewInvalid(schema.GroupKind{}, "", errs)`, as the patch handler refuses a strategic
    /// merge patch (k8s.io/apiserver/pkg/endpoints/handlers/patch.go `applyPatchToObject`):
    /// the message starts ` "" is invalid` and `details` holds only the causes (its empty
    /// `name`, `group` and `kind` are `omitempty`).
    #[must_use]
    pub fn invalid_unnamed(causes: Vec<FieldError>) -> Self {
        let list: Vec<String> = causes.iter().map(ToString::to_string).collect();
        let list = match list.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut e = Self::new(Reason::Invalid, format!(" \"\" is invalid: {list}"));
        e.details_mut().causes = causes;
        e
    }

    fn invalid_as(
        qualifier: &str,
        details_kind: &str,
        res: &ResourceDef,
        name: &str,
        causes: Vec<FieldError>,
    ) -> Self {
        // utilerrors.NewAggregate prints one error bare and several in brackets.
        let list = match causes.as_slice() {
            [] => String::new(),
            [one] => format!(": {one}"),
            many => format!(
                ": [{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut e = Self::new(
            Reason::Invalid,
            format!("{qualifier} {} is invalid{list}", go_quote(name)),
        );
        e.details_mut().name = Some(name.to_string());
        e.details_mut().group = Some(res.group.clone());
        e.details_mut().kind = Some(details_kind.to_owned());
        e.details_mut().causes = causes;
        e
    }

    /// `NewApplyConflict` (k8s.io/apimachinery/pkg/api/errors/errors.go) as server-side apply
    /// builds it (k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go,
    /// `NewConflictError`): 409 Conflict whose details hold only the causes, one
    /// `FieldManagerConflict` per field (`field`, `message`).
    #[must_use]
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<(String, String)>) -> Self {
        let mut e = Self::new(Reason::Conflict, message);
        e.details_mut().other_causes = causes
            .into_iter()
            .map(|(field, message)| StatusCause {
                reason: "FieldManagerConflict",
                message,
                field,
            })
            .collect();
        e
    }

    /// An error that is not a Status, as `ErrorToAPIStatus`
    /// (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go) reports it: 500
    /// with the unknown (empty) reason and the error's own text.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(Reason::Unknown, message)
    }

    /// `NewBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// `NewMethodNotSupported`: `<action> is not supported on resources of kind "pods"`.
    #[must_use]
    pub fn method_not_supported(resource: &str, action: &str) -> Self {
        let mut e = Self::new(
            Reason::MethodNotAllowed,
            format!(
                "{action} is not supported on resources of kind {}",
                go_quote(resource)
            ),
        );
        e.details_mut().kind = Some(resource.to_string());
        e
    }

    /// `NewResourceExpired`: 410 with reason Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(Reason::Expired, message)
    }

    /// The generic not-found of an unknown path.
    #[must_use]
    pub fn unknown_path() -> Self {
        // k8s.io/apimachinery/pkg/api/errors: NewGenericServerResponse(404) message.
        Self::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    }

    /// `NewInternalError`.
    #[must_use]
    pub fn internal(detail: &str) -> Self {
        Self::new(
            Reason::InternalError,
            format!("Internal error occurred: {detail}"),
        )
    }

    /// The `Status` object of this error.
    #[must_use]
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.reason.code(),
        });
        if self.reason == Reason::Unknown
            && let Value::Object(m) = &mut status
        {
            // `reason` is `omitempty` in metav1.Status.
            m.remove("reason");
        }
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if let Some(n) = &d.name {
                details.insert("name".into(), json!(n));
            }
            if let Some(g) = d.group.as_ref().filter(|g| !g.is_empty()) {
                details.insert("group".into(), json!(g));
            }
            if let Some(k) = &d.kind {
                details.insert("kind".into(), json!(k));
            }
            if !d.causes.is_empty() || !d.other_causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.kind.cause(), "message": c.body(), "field": c.field}))
                    .chain(d.other_causes.iter().map(
                        |c| json!({"reason": c.reason, "message": c.message, "field": c.field}),
                    ))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;

    fn res(plural: &str) -> ResourceDef {
        builtins().into_iter().find(|r| r.plural == plural).unwrap()
    }

    #[test]
    fn messages_match_apimachinery() {
        assert_eq!(
            ApiError::not_found(&res("pods"), "x").message,
            r#"pods "x" not found"#
        );
        assert_eq!(
            ApiError::already_exists(&res("deployments"), "web").message,
            r#"deployments.apps "web" already exists"#
        );
        assert_eq!(
            ApiError::conflict(&res("configmaps"), "c", OPTIMISTIC_LOCK_MSG).message,
            r#"Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again"#
        );
        let one = ApiError::invalid(
            &res("deployments"),
            "web",
            vec![FieldError::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )],
        );
        assert_eq!(
            one.message,
            "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
        );
        let two = ApiError::invalid(
            &res("pods"),
            "p",
            vec![
                FieldError::required("spec.containers", ""),
                FieldError::invalid_str("metadata.name", "A", "bad"),
            ],
        );
        assert_eq!(
            two.message,
            r#"Pod "p" is invalid: [spec.containers: Required value, metadata.name: Invalid value: "A": bad]"#
        );
        let status = two.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["kind"], "Pod");
        assert_eq!(
            status["details"]["causes"][1]["reason"],
            "FieldValueInvalid"
        );
    }

    #[test]
    fn unknown_errors_have_no_reason() {
        let status = ApiError::unknown("boom").to_status();
        assert_eq!(status["code"], 500);
        assert_eq!(status["message"], "boom");
        assert!(status.get("reason").is_none(), "{status}");
    }

    #[test]
    fn go_formatting() {
        assert_eq!(
            go_string_map(&json!({"b": "2", "a": "1"})),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert_eq!(go_quote("a\"b"), r#""a\"b""#);
        assert_eq!(
            FieldError::not_supported("spec.restartPolicy", "Never", &["Always"]).to_string(),
            r#"spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#
        );
    }
}
