//! PATCH bodies: JSON patch, JSON merge patch, strategic merge patch and server-side apply.

use serde_json::Value;

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

/// Why a patch could not be applied. Each variant maps to the API server's Status reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not valid for its patch type (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The patch type is not supported for this kind (415 UnsupportedMediaType).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Not built yet.
    #[error("patch type {0:?} is not built yet")]
    NotBuilt(PatchKind),
}

/// Applies a patch and returns the patched object (metadata bookkeeping such as
/// resourceVersion is the store's job, not this function's).
///
/// # Errors
/// Returns a [`PatchError`] naming what was wrong with the body.
pub fn apply_patch(req: &PatchRequest<'_>) -> Result<Value, PatchError> {
    Err(PatchError::NotBuilt(req.kind))
}
