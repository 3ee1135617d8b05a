//! RFC 6902 JSON patch (`application/json-patch+json`), as the API server applies it.

use serde_json::Value;

use super::{PatchError, gofmt, not_an_object};

/// The most operations one JSON patch may hold.
// k8s.io/apiserver/pkg/endpoints/handlers/patch.go (maxJSONPatchOperations).
const MAX_OPERATIONS: usize = 10_000;

/// Applies a JSON patch `body` (already known to be valid JSON) to `current`.
///
/// # Errors
/// 400 when the body is not an array of objects, 413 when the patch holds too many
/// operations, 422 when an operation cannot be applied (a missing path, a failed test, an
/// unknown op), 422 when the result is not an object.
pub(super) fn apply(current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| PatchError::BadRequest("invalid JSON patch".to_owned()))?;
    let ops = match parsed {
        // gopkg.in/evanphx/json-patch.v4 DecodePatch of `null` is an empty patch.
        Value::Null => Vec::new(),
        Value::Array(ops) => ops,
        other => {
            // patch.go: errors.NewBadRequest(err.Error()) of the json.Unmarshal error
            // into jsonpatch.Patch (a []Operation).
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                gofmt::json_kind(&other)
            )));
        }
    };
    if let Some(bad) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
        // Each element is decoded into jsonpatch.Operation (map[string]*json.RawMessage).
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            gofmt::json_kind(bad)
        )));
    }
    if ops.len() > MAX_OPERATIONS {
        // patch.go with errors.NewRequestEntityTooLargeError of
        // k8s.io/apimachinery/pkg/api/errors/errors.go.
        return Err(PatchError::RequestEntityTooLarge(format!(
            "Request entity too large: The allowed maximum operations in a JSON patch is \
             {MAX_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = current.clone();
    for op in ops {
        // Operations are decoded one at a time: in the API server an operation with an
        // unknown `op` or a missing field decodes fine and fails when applied.
        let op: json_patch::PatchOperation =
            serde_json::from_value(op).map_err(|_| unprocessable())?;
        json_patch::patch(&mut doc, std::slice::from_ref(&op)).map_err(|_| unprocessable())?;
    }
    if !doc.is_object() {
        return Err(not_an_object(&doc));
    }
    Ok(doc)
}

/// The 422 of a JSON patch that does not apply. The API server builds it with
/// NewGenericServerResponse(422, ...), which keeps only the generic message.
fn unprocessable() -> PatchError {
    // k8s.io/apimachinery/pkg/api/errors/errors.go (NewGenericServerResponse, 422).
    PatchError::Invalid("the server rejected our request due to an error in our request".to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
    }

    #[test]
    fn applies_operations_in_order() {
        let body = br#"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/data/a"},
            {"op":"test","path":"/data/b","value":"2"},{"op":"copy","from":"/data/b","path":"/data/c"}]"#;
        let out = apply(&obj(), body).unwrap();
        assert_eq!(out["data"], json!({"b": "2", "c": "2"}));
    }

    #[test]
    fn null_body_is_an_empty_patch() {
        assert_eq!(apply(&obj(), b"null").unwrap(), obj());
    }

    #[test]
    fn missing_path_is_unprocessable() {
        let err = apply(&obj(), br#"[{"op":"replace","path":"/spec/x","value":1}]"#).unwrap_err();
        assert_eq!(err.status(), (422, "Invalid"));
        assert_eq!(
            err.to_string(),
            "the server rejected our request due to an error in our request"
        );
    }

    #[test]
    fn failed_test_and_unknown_op_are_unprocessable() {
        for body in [
            &br#"[{"op":"test","path":"/data/a","value":"9"}]"#[..],
            br#"[{"op":"frobnicate","path":"/data/a"}]"#,
            br#"[{"path":"/data/a"}]"#,
            br#"[{"op":"add","path":"/data/z"}]"#,
            br#"[null]"#,
        ] {
            assert_eq!(
                apply(&obj(), body).unwrap_err().status(),
                (422, "Invalid"),
                "{body:?}"
            );
        }
    }

    #[test]
    fn failed_operation_leaves_no_partial_result() {
        let body = br#"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/nope"}]"#;
        assert!(apply(&obj(), body).is_err());
    }

    #[test]
    fn wrong_shape_is_a_bad_request_with_the_go_decode_error() {
        let err = apply(&obj(), br#"{"op":"add"}"#).unwrap_err();
        assert_eq!(err.status(), (400, "BadRequest"));
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        let err = apply(&obj(), br"[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal number into Go value of type jsonpatch.Operation"
        );
    }

    #[test]
    fn replacing_the_root_with_a_non_object_is_invalid() {
        let err = apply(&obj(), br#"[{"op":"replace","path":"","value":[1]}]"#).unwrap_err();
        assert_eq!(err.status(), (422, "Invalid"));
        assert!(
            err.to_string().contains("couldn't get version/kind"),
            "{err}"
        );
    }
}
