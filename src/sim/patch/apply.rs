//! Server-side apply and managed fields.

use serde_json::Value;

use super::{PatchError, PatchRequest};

pub(super) fn server_side_apply(req: &PatchRequest<'_>) -> Result<Value, PatchError> {
    let _ = req;
    Err(PatchError::Internal("not yet".to_owned()))
}

/// Records an `Update` managedFields entry.
pub fn record_update(
    manager: &str,
    api_version: &str,
    old: Option<&Value>,
    new: &mut Value,
    now: &str,
) {
    record_update_subresource(manager, api_version, old, new, now, None);
}

/// Records an `Update` managedFields entry for a subresource write.
pub fn record_update_subresource(
    manager: &str,
    api_version: &str,
    old: Option<&Value>,
    new: &mut Value,
    now: &str,
    subresource: Option<&str>,
) {
    let _ = (manager, api_version, old, new, now, subresource);
}
