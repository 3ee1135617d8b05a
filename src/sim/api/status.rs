//! Responses: JSON objects and `Status` errors the way kubectl and kube-rs expect them
//! (`kind`, `apiVersion`, `status: Failure`, `reason`, `message`, `code`, JSON content type).

use http::{Response, StatusCode, header};
use serde_json::Value;

use super::body::Body;
use crate::sim::store::ApiError;

/// Content type of JSON responses.
pub const JSON: &str = "application/json";

/// A JSON response with `code`.
#[must_use]
pub fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    respond(code, JSON, serde_json::to_vec(value).unwrap_or_default())
}

/// A 200 JSON response.
#[must_use]
pub fn ok(value: &Value) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// A response with an explicit content type.
#[must_use]
pub fn respond(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = code;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The `Status` response of an error.
#[must_use]
pub fn error(err: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(err.reason.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &err.to_status())
}

/// A `Status` of success, as a delete of an object that is gone at once returns it.
#[must_use]
pub fn success(name: &str, group: &str, kind: &str, uid: &str) -> Value {
    let mut details = serde_json::json!({"name": name, "kind": kind, "uid": uid});
    if !group.is_empty() {
        details["group"] = Value::String(group.to_string());
    }
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::store::Reason;

    #[test]
    fn errors_carry_code_and_json() {
        let resp = error(&ApiError::new(Reason::Unauthorized, "Unauthorized"));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let s = success("x", "apps", "deployments", "u");
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["status"], "Success");
    }
}
