//! PATCH bodies: JSON patch, JSON merge patch, strategic merge patch and server-side apply.
//!
//! Each patch type lives in its own module and imitates the Kubernetes API server: the same
//! merge semantics (strategic merge keys from the Go struct tags of the built-in types, the
//! associative lists of server-side apply), the same `metadata.managedFields` bookkeeping and
//! the same error texts, each cited beside the string.
//!
//! - [`json`]: RFC 6902 JSON patch.
//! - [`merge`]: RFC 7386 JSON merge patch.
//! - [`strategic`]: strategic merge patch, with [`schema`] holding the merge metadata.
//! - [`apply`]: server-side apply and the managed-fields bookkeeping of every write.

mod apply;
mod fieldset;
mod gofmt;
mod json;
mod merge;
mod schema;
#[rustfmt::skip]
mod schema_table;
mod strategic;

#[cfg(test)]
mod fuzz_tests;

use serde_json::Value;

pub use apply::{record_update, record_update_subresource};

/// The four patch types of the Kubernetes API, by their content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// A request to patch one object.
#[derive(Debug, Clone)]
pub struct PatchRequest<'a> {
    /// Patch type.
    pub kind: PatchKind,
    /// `apiVersion` of the object (`apps/v1`, `v1`, `monitoring.coreos.com/v1`).
    pub api_version: &'a str,
    /// Kind of the object (`Deployment`).
    pub object_kind: &'a str,
    /// The stored object; `None` when it does not exist (only server-side apply creates).
    pub current: Option<&'a Value>,
    /// The raw request body.
    pub body: &'a [u8],
    /// `fieldManager` query parameter.
    pub field_manager: Option<&'a str>,
    /// `force` query parameter (server-side apply conflicts).
    pub force: bool,
    /// Current time as RFC 3339, for `managedFields[].time`.
    pub now: &'a str,
}

/// One field in conflict during server-side apply (a `FieldManagerConflict` Status cause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCause {
    /// The field path as the API server prints it (`.spec.replicas`).
    pub field: String,
    /// `conflict with "<manager>"` (with ` using <apiVersion>` for Update managers).
    pub message: String,
}

/// Why a patch could not be applied. Each variant maps to the API server's Status reason
/// through [`PatchError::status`]; the message is the Status `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not valid for its patch type (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The patch type is not supported for this kind (415 UnsupportedMediaType).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The JSON patch has too many operations (413 RequestEntityTooLarge).
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// The patch or its options are unprocessable (422 Invalid).
    #[error("{0}")]
    Invalid(String),
    /// Server-side apply found fields owned by other managers (409 Conflict); the causes
    /// belong in the Status `details.causes` with type `FieldManagerConflict`.
    #[error("{message}")]
    Conflict {
        /// The Status message.
        message: String,
        /// One cause per conflicting field.
        causes: Vec<ConflictCause>,
    },
    /// The object does not exist and this patch type cannot create it (404 NotFound). The
    /// API server should answer with its own NotFound naming the resource before calling.
    #[error("{0}")]
    NotFound(String),
    /// An error the API server passes through without a Status of its own: 500 with the
    /// empty (`Unknown`) reason, as `ErrorToAPIStatus` does.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The HTTP code and Kubernetes Status `reason` of this error.
    #[must_use]
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::BadRequest(_) => (400, "BadRequest"),
            Self::UnsupportedMediaType(_) => (415, "UnsupportedMediaType"),
            Self::RequestEntityTooLarge(_) => (413, "RequestEntityTooLarge"),
            Self::Invalid(_) => (422, "Invalid"),
            Self::Conflict { .. } => (409, "Conflict"),
            Self::NotFound(_) => (404, "NotFound"),
            // k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go: errors
            // without a Status become 500 with metav1.StatusReasonUnknown ("").
            Self::Internal(_) => (500, ""),
        }
    }
}

/// Applies a patch and returns the patched object (metadata bookkeeping such as
/// resourceVersion is the store's job, not this function's). Server-side apply also
/// maintains `metadata.managedFields`; the other patch types leave that to
/// [`record_update`], which the API server calls after every write.
///
/// # Errors
/// Returns a [`PatchError`] naming what was wrong with the body, with the code, reason and
/// message the Kubernetes API server gives for the same body.
pub fn apply_patch(req: &PatchRequest<'_>) -> Result<Value, PatchError> {
    // k8s.io/apiserver/pkg/endpoints/handlers/patch.go (PatchResource) checks the content
    // type against the resource's patch types first, then the options, then the body.
    if req.kind == PatchKind::Strategic
        && schema::kind_schema(req.api_version, req.object_kind).is_none()
    {
        return Err(unsupported_strategic());
    }
    if req.kind == PatchKind::Apply {
        return apply::server_side_apply(req);
    }
    // patch.go (validateAndTranscodePatch): every non-apply body must be valid JSON.
    if serde_json::from_slice::<serde::de::IgnoredAny>(req.body).is_err() {
        return Err(PatchError::BadRequest("invalid JSON patch".to_owned()));
    }
    let Some(current) = req.current else {
        // k8s.io/apimachinery/pkg/api/errors/errors.go (NewGenericServerResponse, 404).
        return Err(PatchError::NotFound(
            "the server could not find the requested resource".to_owned(),
        ));
    };
    match req.kind {
        PatchKind::Json => json::apply(current, req.body),
        PatchKind::Merge => merge::apply(current, req.body),
        PatchKind::Strategic => {
            strategic::apply(req.api_version, req.object_kind, current, req.body)
        }
        PatchKind::Apply => unreachable_apply(),
    }
}

/// Custom resources are served without strategic merge patch among their patch types.
fn unsupported_strategic() -> PatchError {
    // k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go (errUnsupportedMediaType)
    // with the patch types of k8s.io/apiextensions-apiserver/pkg/apiserver/customresource_handler.go.
    PatchError::UnsupportedMediaType(
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            .to_owned(),
    )
}

/// Apply is dispatched before the match; this arm exists only to keep the match exhaustive.
fn unreachable_apply() -> Result<Value, PatchError> {
    Err(PatchError::Internal(
        "server-side apply was dispatched twice".to_owned(),
    ))
}

/// The 422 the API server returns when a patched document is not an object it can decode.
pub(crate) fn not_an_object(patched: &Value) -> PatchError {
    let json = patched.to_string();
    let found = gofmt::json_kind(patched);
    // k8s.io/apiserver/pkg/endpoints/handlers/patch.go (jsonPatcher.applyPatchToCurrentObject:
    // field.Invalid(field.NewPath("patch"), string(patchedObjJS), err.Error())) with the decode
    // error of k8s.io/apimachinery/pkg/runtime/serializer/json/meta.go (SimpleMetaFactory.Interpret).
    PatchError::Invalid(format!(
        " \"\" is invalid: patch: Invalid value: {}: couldn't get version/kind; json parse error: \
         json: cannot unmarshal {found} into Go value of type struct {{ APIVersion string \
         \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
        gofmt::quote(&json)
    ))
}
