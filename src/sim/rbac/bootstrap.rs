//! The part of the bootstrap policy a real API server creates at start that matters to the
//! requests the simulator serves (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go,
//! `ClusterRoles` and `ClusterRoleBindings`, Kubernetes 1.32): everyone authenticated may
//! discover the API, read the health and version endpoints and review its own access;
//! `system:masters` may do anything.

use serde_json::{Value, json};

fn role_object(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    })
}

fn binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    })
}

/// A bootstrap ClusterRole by name.
pub(super) fn cluster_role(name: &str) -> Option<Value> {
    let rules = match name {
        "cluster-admin" => json!([
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ]),
        "system:discovery" => json!([{
            "nonResourceURLs": ["/livez", "/readyz", "/healthz", "/version", "/version/",
                "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*"],
            "verbs": ["get"],
        }]),
        "system:basic-user" => json!([
            {"apiGroups": ["authorization.k8s.io"],
             "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
             "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
             "verbs": ["create"]},
        ]),
        "system:public-info-viewer" => json!([{
            "nonResourceURLs": ["/livez", "/readyz", "/healthz", "/version", "/version/"],
            "verbs": ["get"],
        }]),
        _ => return None,
    };
    Some(role_object(name, rules))
}

/// The bootstrap ClusterRoleBindings.
pub(super) fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", &[super::SYSTEM_MASTERS]),
        binding("system:basic-user", &[super::AUTHENTICATED]),
        binding("system:discovery", &[super::AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            &[super::AUTHENTICATED, super::UNAUTHENTICATED],
        ),
    ]
}
