//! RFC 7386 JSON merge patch (`application/merge-patch+json`), as the API server applies it.
//!
//! The API server uses gopkg.in/evanphx/json-patch.v4 `MergePatch`, which differs from the
//! letter of RFC 7386 (and from `json_patch::merge`) in how it prunes nulls: a value that
//! replaces a non-object has the null members of its objects removed, including objects
//! inside arrays, while a non-object that replaces an object is kept verbatim. The merge
//! below follows that library.

use serde_json::{Map, Value};

use super::{PatchError, not_an_object};

/// Applies a merge patch `body` (already known to be valid JSON) to `current`.
///
/// # Errors
/// 400 `Invalid JSON Patch` when the body is `null` or a scalar; 422 when the body is an
/// array (the result is then not an object).
pub(super) fn apply(current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|_| PatchError::BadRequest("invalid JSON patch".to_owned()))?;
    match patch {
        Value::Object(patch) => {
            let mut doc = current.clone();
            match &mut doc {
                Value::Object(doc) => merge_docs(doc, patch),
                _ => return Err(not_an_object(&doc)),
            }
            Ok(doc)
        }
        Value::Array(mut items) => {
            // json-patch.v4 merge.go (doMergePatch): an array patch replaces the document.
            prune_array_nulls(&mut items);
            Err(not_an_object(&Value::Array(items)))
        }
        // json-patch.v4 merge.go: ErrBadJSONPatch, passed through by
        // k8s.io/apiserver/pkg/endpoints/handlers/patch.go as a BadRequest.
        _ => Err(PatchError::BadRequest("Invalid JSON Patch".to_owned())),
    }
}

/// json-patch.v4 `mergeDocs`.
fn merge_docs(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            doc.remove(&key);
            continue;
        }
        match doc.get_mut(&key) {
            None | Some(Value::Null) => {
                let mut value = value;
                prune_nulls(&mut value);
                doc.insert(key, value);
            }
            Some(cur) => merge_value(cur, value),
        }
    }
}

/// json-patch.v4 `merge`: objects merge; anything else replaces.
fn merge_value(cur: &mut Value, patch: Value) {
    match (cur.as_object_mut(), patch) {
        (Some(cur), Value::Object(patch)) => merge_docs(cur, patch),
        // The current value is an object but the patch is not: replaced, not pruned.
        (Some(_), patch) => *cur = patch,
        (None, mut patch) => {
            prune_nulls(&mut patch);
            *cur = patch;
        }
    }
}

fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => prune_array_nulls(items),
        _ => {}
    }
}

/// Null elements stay; objects inside lose their null members.
fn prune_array_nulls(items: &mut [Value]) {
    items.iter_mut().for_each(prune_nulls);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj() -> Value {
        json!({"kind": "Thing", "apiVersion": "x/v1", "metadata": {"name": "t", "labels": {"a": "1", "b": "2"}},
               "spec": {"list": [1, 2], "nested": {"x": 1}}})
    }

    #[test]
    fn merges_objects_and_deletes_nulls() {
        let out = apply(
            &obj(),
            br#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"list":[3]}}"#,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"]["list"], json!([3]));
        assert_eq!(out["spec"]["nested"], json!({"x": 1}));
    }

    #[test]
    fn new_values_are_pruned_of_nulls_even_inside_arrays() {
        let out = apply(
            &obj(),
            br#"{"spec":{"new":{"a":null,"b":[{"c":null,"d":1},null]}}}"#,
        )
        .unwrap();
        assert_eq!(out["spec"]["new"], json!({"b": [{"d": 1}, null]}));
    }

    #[test]
    fn non_object_replacing_an_object_is_kept_verbatim() {
        let out = apply(&obj(), br#"{"spec":{"nested":[{"a":null}]}}"#).unwrap();
        assert_eq!(out["spec"]["nested"], json!([{"a": null}]));
    }

    #[test]
    fn scalar_and_null_bodies_are_bad_requests() {
        for body in [&b"null"[..], b"1", b"\"x\"", b"true"] {
            let err = apply(&obj(), body).unwrap_err();
            assert_eq!(
                err,
                PatchError::BadRequest("Invalid JSON Patch".to_owned()),
                "{body:?}"
            );
        }
    }

    #[test]
    fn array_body_is_invalid() {
        let err = apply(&obj(), b"[1,2]").unwrap_err();
        assert_eq!(err.status(), (422, "Invalid"));
        assert!(
            err.to_string()
                .starts_with(" \"\" is invalid: patch: Invalid value: \"[1,2]\""),
            "{err}"
        );
    }
}
