//! Authorization as a real API server does it with `--authorization-mode=Node,RBAC`: the
//! `system:masters` group may do anything, everyone else only what a Role, ClusterRole,
//! RoleBinding or ClusterRoleBinding grants.
//!
//! The rule matching, the order in which bindings are visited and every reason text follow
//! k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go (`RBACAuthorizer`, `RuleAllows`),
//! pkg/registry/rbac/validation/rule.go (`VisitRulesFor`, `appliesToUser`, the binding
//! describers) and pkg/apis/rbac/v1/evaluation_helpers.go (`VerbMatches`, `ResourceMatches`, ...).
//! ClusterRole aggregation is not modelled: an aggregated role grants only its own rules.
//!
//! The bootstrap policy every cluster starts with (`cluster-admin`, `system:discovery`,
//! `system:basic-user`, `system:public-info-viewer` and their bindings) is built in rather than
//! stored, so it never shows up in snapshots; a stored object of the same name replaces it.

mod bootstrap;
pub mod review;

use std::sync::Arc;

use serde_json::Value;

use crate::sim::controllers::ClusterView;
use crate::sim::store::error::go_quote;

const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";

/// The group every request of `kubectl` through the simulator's kubeconfig belongs to: it may
/// do anything (k8s.io/apiserver/pkg/authentication/user, `SystemPrivilegedGroup`).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// The group of every authenticated user (`user.AllAuthenticated`).
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests (`user.AllUnauthenticated`).
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// Who makes a request: a user name and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `user.Info.GetName()`.
    pub name: String,
    /// `user.Info.GetGroups()`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The identity of the simulator's kubeconfig: kubeadm's `kubernetes-admin`, a member of
    /// `system:masters`.
    #[must_use]
    pub fn admin() -> Self {
        Self {
            name: "kubernetes-admin".to_owned(),
            groups: vec![SYSTEM_MASTERS.to_owned(), AUTHENTICATED.to_owned()],
        }
    }

    /// A pod's ServiceAccount as the token authenticator sees it
    /// (k8s.io/apiserver/pkg/authentication/serviceaccount/util.go: `MakeUsername`,
    /// `MakeGroupNames`, plus `system:authenticated`).
    #[must_use]
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: service_account_username(namespace, name),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.to_owned(),
            ],
        }
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
#[must_use]
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The namespace and name of a ServiceAccount user name (`serviceaccount.SplitUsername`).
#[must_use]
pub fn split_service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What a request asks to do (`authorizer.Attributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`, ... (for non-resource requests the lowercase HTTP method).
    pub verb: String,
    /// What is asked for.
    pub target: RequestTarget,
}

/// A resource or a non-resource URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTarget {
    /// An API resource.
    Resource {
        /// API group; empty for the core group.
        group: String,
        /// Plural resource name, e.g. `nodes`.
        resource: String,
        /// Subresource, e.g. `status`; empty for the main resource.
        subresource: String,
        /// Namespace; empty for cluster-scoped resources and requests across all namespaces.
        namespace: String,
        /// Object name; empty for collections.
        name: String,
    },
    /// A path outside the resource API, e.g. `/version`.
    NonResource {
        /// The request path.
        path: String,
    },
}

impl Attributes {
    /// A resource request.
    #[must_use]
    pub fn resource(
        user: UserInfo,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
    ) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            target: RequestTarget::Resource {
                group: group.to_owned(),
                resource: resource.to_owned(),
                subresource: String::new(),
                namespace: namespace.to_owned(),
                name: String::new(),
            },
        }
    }

    /// The namespace the request is in (empty when none).
    #[must_use]
    pub fn namespace(&self) -> &str {
        match &self.target {
            RequestTarget::Resource { namespace, .. } => namespace,
            RequestTarget::NonResource { .. } => "",
        }
    }

    /// The message of the 403 a denied request gets, exactly as the API server words it:
    /// `nodes is forbidden: User "..." cannot list resource "nodes" in API group "" at the
    /// cluster scope` (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
    /// `forbiddenMessage`, wrapped by apimachinery's `NewForbidden`).
    #[must_use]
    pub fn forbidden_message(&self, reason: &str) -> String {
        let user = go_quote(&self.user.name);
        let detail = match &self.target {
            RequestTarget::NonResource { path } => {
                format!("User {user} cannot {} path {}", self.verb, go_quote(path))
            }
            RequestTarget::Resource {
                group,
                resource,
                subresource,
                namespace,
                ..
            } => {
                let combined = if subresource.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}/{subresource}")
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {}", go_quote(namespace))
                };
                format!(
                    "User {user} cannot {} resource {} in API group {} {scope}",
                    self.verb,
                    go_quote(&combined),
                    go_quote(group)
                )
            }
        };
        // `Forbidden` appends the authorizer's reason after a colon when there is one.
        let detail = if reason.is_empty() {
            detail
        } else {
            format!("{detail}: {reason}")
        };
        // apimachinery pkg/api/errors `NewForbidden`: `forbidden: ...` without a resource,
        // `<resource>.<group> is forbidden: ...` or `<resource>.<group> "<name>" is forbidden: ...`.
        match &self.target {
            RequestTarget::NonResource { .. } => format!("forbidden: {detail}"),
            RequestTarget::Resource {
                group,
                resource,
                name,
                ..
            } => {
                let qualified = if group.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}.{group}")
                };
                if name.is_empty() {
                    format!("{qualified} is forbidden: {detail}")
                } else {
                    format!("{qualified} {} is forbidden: {detail}", go_quote(name))
                }
            }
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why: `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to ...` when allowed,
    /// usually empty when not (RBAC has no opinion then), or the role lookups that failed.
    pub reason: String,
}

/// Decides whether `attrs` may proceed, from the RBAC objects `view` lists.
#[must_use]
pub fn authorize(view: &dyn ClusterView, attrs: &Attributes) -> AccessDecision {
    // The privileged-group authorizer sits in front of RBAC and allows without a reason
    // (k8s.io/apiserver/pkg/authorization/authorizerfactory/builtin.go `privilegedGroupAuthorizer`).
    if attrs.user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return AccessDecision {
            allowed: true,
            reason: String::new(),
        };
    }
    let policy = Policy::new(view);
    let mut errors = Vec::new();
    if let Some(source) = policy.visit(attrs, &mut errors) {
        return AccessDecision {
            allowed: true,
            reason: format!("RBAC: allowed by {source}"),
        };
    }
    // RBACAuthorizer.Authorize: no opinion; the reason lists the role references that could
    // not be resolved (utilerrors.NewAggregate: one error alone, several as `[a, b]`).
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    AccessDecision {
        allowed: false,
        reason,
    }
}

/// The stored RBAC objects merged with the bootstrap policy.
struct Policy<'a> {
    view: &'a dyn ClusterView,
}

impl<'a> Policy<'a> {
    fn new(view: &'a dyn ClusterView) -> Self {
        Self { view }
    }

    fn cluster_role_bindings(&self) -> Vec<Arc<Value>> {
        let mut stored = self.view.list(RBAC_V1, "ClusterRoleBinding", None);
        let names: Vec<String> = stored.iter().map(|b| name_of(b).to_owned()).collect();
        stored.extend(
            bootstrap::cluster_role_bindings()
                .into_iter()
                .filter(|b| !names.iter().any(|n| n == name_of(b)))
                .map(Arc::new),
        );
        stored.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        stored
    }

    fn cluster_role(&self, name: &str) -> Option<Value> {
        self.view
            .get(RBAC_V1, "ClusterRole", None, name)
            .or_else(|| bootstrap::cluster_role(name))
    }

    /// Rules of a binding's `roleRef`; the lister's NotFound text when the role is missing.
    fn role_ref_rules(&self, role_ref: &Value, namespace: &str) -> Result<Vec<Value>, String> {
        let kind = str_at(role_ref, "kind");
        let name = str_at(role_ref, "name");
        let role = match kind {
            "Role" => self.view.get(RBAC_V1, "Role", Some(namespace), name),
            "ClusterRole" => self.cluster_role(name),
            other => {
                return Err(format!(
                    "unsupported role reference kind: {}",
                    go_quote(other)
                ));
            }
        };
        // Generated listers answer `errors.NewNotFound(v1.Resource("role"), name)`.
        let resource = if kind == "Role" {
            "role"
        } else {
            "clusterrole"
        };
        role.map(|r| rules_of(&r)).ok_or_else(|| {
            format!(
                "{resource}.rbac.authorization.k8s.io {} not found",
                go_quote(name)
            )
        })
    }

    /// Visits the rules that apply to the user, ClusterRoleBindings first, then the
    /// RoleBindings of the request's namespace; the describer of the first rule that allows.
    fn visit(&self, attrs: &Attributes, errors: &mut Vec<String>) -> Option<String> {
        for binding in self.cluster_role_bindings() {
            let Some(subject) = applies_to(&attrs.user, &binding, "") else {
                continue;
            };
            match self.role_ref_rules(&binding["roleRef"], "") {
                Err(e) => errors.push(e),
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(attrs, r)) {
                        return Some(format!(
                            "ClusterRoleBinding {} of {} {} to {}",
                            go_quote(name_of(&binding)),
                            str_at(&binding["roleRef"], "kind"),
                            go_quote(str_at(&binding["roleRef"], "name")),
                            describe_subject(&subject, "")
                        ));
                    }
                }
            }
        }
        let namespace = attrs.namespace();
        if namespace.is_empty() {
            return None;
        }
        for binding in self.view.list(RBAC_V1, "RoleBinding", Some(namespace)) {
            let Some(subject) = applies_to(&attrs.user, &binding, namespace) else {
                continue;
            };
            match self.role_ref_rules(&binding["roleRef"], namespace) {
                Err(e) => errors.push(e),
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(attrs, r)) {
                        return Some(format!(
                            "RoleBinding {} of {} {} to {}",
                            go_quote(&format!("{}/{namespace}", name_of(&binding))),
                            str_at(&binding["roleRef"], "kind"),
                            go_quote(str_at(&binding["roleRef"], "name")),
                            describe_subject(&subject, namespace)
                        ));
                    }
                }
            }
        }
        None
    }
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The first subject of `binding` that names the user (`appliesTo`).
fn applies_to(user: &UserInfo, binding: &Value, namespace: &str) -> Option<Value> {
    let subjects = binding.get("subjects").and_then(Value::as_array)?;
    subjects
        .iter()
        .find(|s| applies_to_user(user, s, namespace))
        .cloned()
}

fn applies_to_user(user: &UserInfo, subject: &Value, namespace: &str) -> bool {
    let name = str_at(subject, "name");
    match str_at(subject, "kind") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            // A subject without a namespace means the binding's own namespace.
            let sa_namespace = match str_at(subject, "namespace") {
                "" => namespace,
                ns => ns,
            };
            !sa_namespace.is_empty() && user.name == service_account_username(sa_namespace, name)
        }
        _ => false,
    }
}

/// `describeSubject`: `ServiceAccount "name/namespace"`, `User "x"`, `Group "y"`.
fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = str_at(subject, "kind");
    let name = str_at(subject, "name");
    if kind == "ServiceAccount" {
        let ns = match str_at(subject, "namespace") {
            "" => binding_namespace,
            ns => ns,
        };
        return format!("{kind} {}", go_quote(&format!("{name}/{ns}")));
    }
    format!("{kind} {}", go_quote(name))
}

/// `RuleAllows`: whether one PolicyRule covers the request.
fn rule_allows(attrs: &Attributes, rule: &Value) -> bool {
    let verbs = strings(rule, "verbs");
    let verb_ok = verbs.iter().any(|v| v == "*" || *v == attrs.verb);
    if !verb_ok {
        return false;
    }
    match &attrs.target {
        RequestTarget::Resource {
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let groups = strings(rule, "apiGroups");
            if !groups.iter().any(|g| g == "*" || g == group) {
                return false;
            }
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resource_ok = strings(rule, "resources").iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty()
                        && r.len() == subresource.len() + 2
                        && r.starts_with("*/")
                        && r.ends_with(subresource.as_str()))
            });
            let names = strings(rule, "resourceNames");
            resource_ok && (names.is_empty() || names.iter().any(|n| n == name))
        }
        RequestTarget::NonResource { path } => strings(rule, "nonResourceURLs").iter().any(|u| {
            u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
        }),
    }
}

#[cfg(test)]
mod tests;
