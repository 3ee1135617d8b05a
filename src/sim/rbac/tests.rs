use serde_json::{Value, json};

use super::*;
use crate::sim::behaviour::StaticView;

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": RBAC_V1, "kind": "Role",
           "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn crb(name: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

fn rb(ns: &str, name: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": RBAC_V1, "kind": "RoleBinding",
           "metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

fn ksm() -> UserInfo {
    UserInfo::service_account("monitoring", "kube-state-metrics")
}

fn ksm_subject() -> Value {
    json!([{"kind": "ServiceAccount", "name": "kube-state-metrics", "namespace": "monitoring"}])
}

fn list(user: UserInfo, group: &str, resource: &str, ns: &str) -> Attributes {
    Attributes::resource(user, "list", group, resource, ns)
}

fn with(target: RequestTarget, user: UserInfo, verb: &str) -> Attributes {
    Attributes {
        user,
        verb: verb.to_owned(),
        target,
    }
}

fn res(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> RequestTarget {
    RequestTarget::Resource {
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn system_masters_may_do_anything_without_a_reason() {
    let view = StaticView::default();
    let d = authorize(&view, &list(UserInfo::admin(), "", "nodes", ""));
    assert_eq!(
        d,
        AccessDecision {
            allowed: true,
            reason: String::new()
        }
    );
}

#[test]
fn a_cluster_role_binding_grants_and_names_itself() {
    let view = StaticView::new(vec![
        cluster_role(
            "kube-state-metrics",
            json!([{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]}]),
        ),
        crb(
            "kube-state-metrics",
            "ClusterRole",
            "kube-state-metrics",
            ksm_subject(),
        ),
    ]);
    let d = authorize(&view, &list(ksm(), "", "nodes", ""));
    assert!(d.allowed);
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by ClusterRoleBinding "kube-state-metrics" of ClusterRole "kube-state-metrics" to ServiceAccount "kube-state-metrics/monitoring""#
    );
    // Another verb, another group, another user: no.
    assert!(
        !authorize(
            &view,
            &Attributes::resource(ksm(), "delete", "", "nodes", "")
        )
        .allowed
    );
    assert!(!authorize(&view, &list(ksm(), "apps", "deployments", "")).allowed);
    assert!(
        !authorize(
            &view,
            &list(
                UserInfo::service_account("monitoring", "other"),
                "",
                "nodes",
                ""
            )
        )
        .allowed
    );
}

#[test]
fn a_missing_rule_is_denied_with_the_api_servers_message() {
    let view = StaticView::new(vec![
        cluster_role(
            "kube-state-metrics",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]),
        ),
        crb(
            "kube-state-metrics",
            "ClusterRole",
            "kube-state-metrics",
            ksm_subject(),
        ),
    ]);
    let attrs = list(ksm(), "", "nodes", "");
    let d = authorize(&view, &attrs);
    assert_eq!(
        d,
        AccessDecision {
            allowed: false,
            reason: String::new()
        }
    );
    assert_eq!(
        attrs.forbidden_message(&d.reason),
        r#"nodes is forbidden: User "system:serviceaccount:monitoring:kube-state-metrics" cannot list resource "nodes" in API group "" at the cluster scope"#
    );
}

#[test]
fn a_role_binding_grants_only_inside_its_namespace() {
    let rule = json!([{"apiGroups": ["", "coordination.k8s.io"], "resources": ["nodes", "pods", "leases"], "verbs": ["list"]}]);
    let view = StaticView::new(vec![
        role("monitoring", "ksm", rule),
        rb(
            "monitoring",
            "ksm",
            "Role",
            "ksm",
            json!([{"kind": "ServiceAccount", "name": "kube-state-metrics"}]),
        ),
    ]);
    // Listing nodes is a cluster-scope request: RoleBindings are never consulted.
    assert!(!authorize(&view, &list(ksm(), "", "nodes", "")).allowed);
    assert!(!authorize(&view, &list(ksm(), "", "pods", "")).allowed);
    assert!(!authorize(&view, &list(ksm(), "", "pods", "default")).allowed);
    let d = authorize(
        &view,
        &list(ksm(), "coordination.k8s.io", "leases", "monitoring"),
    );
    assert!(d.allowed);
    // A subject without a namespace is the binding's namespace.
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "ksm/monitoring" of Role "ksm" to ServiceAccount "kube-state-metrics/monitoring""#
    );
}

#[test]
fn wildcards_subresources_names_and_urls() {
    let view = StaticView::new(vec![
        cluster_role(
            "r",
            json!([
                {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]},
                {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["update"]},
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"], "verbs": ["get"]},
                {"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]},
            ]),
        ),
        crb(
            "r",
            "ClusterRole",
            "r",
            json!([{"kind": "Group", "name": "system:serviceaccounts:monitoring"}]),
        ),
    ]);
    let u = ksm;
    let allowed = |t: RequestTarget, verb: &str| authorize(&view, &with(t, u(), verb)).allowed;
    assert!(allowed(
        res("apps", "deployments", "status", "x", "d"),
        "patch"
    ));
    assert!(!allowed(res("apps", "deployments", "", "x", "d"), "patch"));
    assert!(allowed(
        res("apps", "deployments", "scale", "x", "d"),
        "update"
    ));
    assert!(!allowed(
        res("apps", "deployments", "scale", "x", "d"),
        "get"
    ));
    assert!(allowed(res("", "configmaps", "", "x", "cfg"), "get"));
    assert!(!allowed(res("", "configmaps", "", "x", "other"), "get"));
    assert!(!allowed(res("", "configmaps", "", "x", ""), "get"));
    let path = |p: &str| RequestTarget::NonResource { path: p.into() };
    assert!(allowed(path("/metrics"), "get"));
    assert!(allowed(path("/debug/pprof/heap"), "get"));
    assert!(!allowed(path("/metrics/cadvisor"), "get"));
    assert!(!allowed(path("/metrics"), "post"));
    // The group names another namespace's accounts: no.
    assert!(
        !authorize(
            &view,
            &with(
                RequestTarget::NonResource {
                    path: "/metrics".into()
                },
                UserInfo::service_account("default", "default"),
                "get"
            )
        )
        .allowed
    );
}

#[test]
fn users_and_bound_cluster_roles_in_a_namespace() {
    let view = StaticView::new(vec![
        cluster_role(
            "reader",
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
        ),
        rb(
            "apps",
            "alice-reads",
            "ClusterRole",
            "reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let alice = UserInfo {
        name: "alice".into(),
        groups: vec![AUTHENTICATED.into()],
    };
    let get = |ns: &str| with(res("", "secrets", "", ns, "s"), alice.clone(), "get");
    let d = authorize(&view, &get("apps"));
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "alice-reads/apps" of ClusterRole "reader" to User "alice""#
    );
    let denied = get("other");
    assert!(!authorize(&view, &denied).allowed);
    assert_eq!(
        denied.forbidden_message(""),
        r#"secrets "s" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "other""#
    );
}

#[test]
fn unresolvable_role_references_are_the_denial_reason() {
    let view = StaticView::new(vec![
        crb("a", "ClusterRole", "missing", ksm_subject()),
        rb("monitoring", "b", "Role", "gone", ksm_subject()),
    ]);
    assert_eq!(
        authorize(&view, &list(ksm(), "", "nodes", "")).reason,
        r#"RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#
    );
    assert_eq!(
        authorize(&view, &list(ksm(), "", "pods", "monitoring")).reason,
        r#"RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, role.rbac.authorization.k8s.io "gone" not found]"#
    );
}

#[test]
fn the_bootstrap_policy_lets_everyone_discover_and_review_itself() {
    let view = StaticView::default();
    let get = |p: &str| {
        authorize(
            &view,
            &with(RequestTarget::NonResource { path: p.into() }, ksm(), "get"),
        )
    };
    assert_eq!(
        get("/apis/apps/v1").reason,
        r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#
    );
    assert!(get("/version").allowed);
    assert!(!get("/metrics").allowed);
    let review = Attributes::resource(
        ksm(),
        "create",
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "",
    );
    assert!(authorize(&view, &review).allowed);
    assert_eq!(
        review.forbidden_message(""),
        r#"selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "system:serviceaccount:monitoring:kube-state-metrics" cannot create resource "selfsubjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#
    );
    // A binding to the built-in cluster-admin role works like any other.
    let view = StaticView::new(vec![crb(
        "ksm-admin",
        "ClusterRole",
        "cluster-admin",
        ksm_subject(),
    )]);
    assert!(authorize(&view, &list(ksm(), "", "secrets", "")).allowed);
}

#[test]
fn forbidden_messages_of_paths_and_subresources() {
    let a = with(
        RequestTarget::NonResource {
            path: "/metrics".into(),
        },
        ksm(),
        "get",
    );
    assert_eq!(
        a.forbidden_message(""),
        r#"forbidden: User "system:serviceaccount:monitoring:kube-state-metrics" cannot get path "/metrics""#
    );
    let a = with(
        res("apps", "deployments", "scale", "x", "d"),
        ksm(),
        "update",
    );
    assert_eq!(
        a.forbidden_message("RBAC: role.rbac.authorization.k8s.io \"r\" not found"),
        r#"deployments.apps "d" is forbidden: User "system:serviceaccount:monitoring:kube-state-metrics" cannot update resource "deployments/scale" in API group "apps" in the namespace "x": RBAC: role.rbac.authorization.k8s.io "r" not found"#
    );
}

#[test]
fn service_account_names_split() {
    assert_eq!(
        split_service_account("system:serviceaccount:monitoring:ksm"),
        Some(("monitoring", "ksm"))
    );
    assert_eq!(
        split_service_account("system:serviceaccount:monitoring"),
        None
    );
    assert_eq!(split_service_account("alice"), None);
    assert_eq!(
        UserInfo::service_account("a", "b").groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:a",
            "system:authenticated"
        ]
    );
}
