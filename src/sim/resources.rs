//! The table of resources the simulated API server serves: the built-ins and, at run time,
//! the custom resources of every established CustomResourceDefinition.

use serde_json::Value;

/// Verbs of a fully writable resource, as discovery lists them.
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Access reviews can only be created.
const REVIEW_VERBS: &[&str] = &["create"];
/// Verbs of a `status` or `scale` subresource.
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// Where the `scale` subresource finds its numbers (fixed for built-ins, declared by CRDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// Dotted path of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Dotted path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Dotted path of the label selector string, when declared.
    pub label_selector: Option<String>,
}

/// A printer column of a custom resource (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column title.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Optional format (`name`, ...).
    pub format: String,
    /// Description shown by `kubectl explain`-like tools.
    pub description: String,
    /// 0 for the default view, greater for `-o wide`.
    pub priority: i64,
    /// Simple JSONPath into the object.
    pub json_path: String,
}

/// One resource at one group/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment`.
    pub singular: String,
    /// Short names, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Verbs of the main resource.
    pub verbs: Vec<String>,
    /// Whether a `status` subresource exists (then the main resource ignores status writes).
    pub status: bool,
    /// The `scale` subresource, when it exists.
    pub scale: Option<ScalePaths>,
    /// Whether `pods/log` exists (pods only).
    pub log: bool,
    /// Whether `metadata.generation` is maintained for this kind.
    pub generation: bool,
    /// Whether this resource is served from a CustomResourceDefinition.
    pub custom: bool,
    /// Printer columns of a custom resource.
    pub printer_columns: Vec<PrinterColumn>,
    /// Field paths a field selector may use besides `metadata.name` and `metadata.namespace`.
    pub selectable_fields: Vec<String>,
}

impl ResourceDef {
    /// `v1` for the core group, `group/version` otherwise.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-qualified resource as error messages spell it: `pods`, `deployments.apps`.
    #[must_use]
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The group-qualified kind as error messages spell it: `Pod`, `Deployment.apps`.
    #[must_use]
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The storage key: objects are stored per group and resource, whatever the version.
    #[must_use]
    pub fn storage_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// Whether the resource supports `verb`.
    #[must_use]
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// Whether `name` (a plural, singular or short name, any case) refers to this resource.
    #[must_use]
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.plural == name || self.singular == name || self.short_names.contains(&name)
    }
}

/// Verbs of the `status` and `scale` subresources.
#[must_use]
pub fn subresource_verbs() -> Vec<String> {
    SUBRESOURCE_VERBS.iter().map(ToString::to_string).collect()
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    scale: bool,
    generation: bool,
    all: bool,
    fields: &'static [&'static str],
}

#[expect(
    clippy::too_many_arguments,
    reason = "the fields of one APIResource, named at each call"
)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    scale: bool,
    generation: bool,
    all: bool,
    fields: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        short,
        namespaced,
        status,
        scale,
        generation,
        all,
        fields,
    }
}

// Field selectors each kind supports, from the kinds' `*ToSelectableFields` functions
// (pkg/registry/core/pod/strategy.go, pkg/registry/core/event/strategy.go, ...).
const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const EVENTS_V1_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        &["ns"],
        false,
        true,
        false,
        false,
        false,
        &["status.phase"],
    ),
    b(
        "",
        "v1",
        "Node",
        "nodes",
        &["no"],
        false,
        true,
        false,
        false,
        false,
        &["spec.unschedulable"],
    ),
    b(
        "",
        "v1",
        "Pod",
        "pods",
        &["po"],
        true,
        true,
        false,
        false,
        true,
        POD_FIELDS,
    ),
    b(
        "",
        "v1",
        "Service",
        "services",
        &["svc"],
        true,
        true,
        false,
        false,
        true,
        &[],
    ),
    b(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        &["ep"],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        &["cm"],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "",
        "v1",
        "Secret",
        "secrets",
        &[],
        true,
        false,
        false,
        false,
        false,
        &["type"],
    ),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        &["sa"],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "",
        "v1",
        "Event",
        "events",
        &["ev"],
        true,
        false,
        false,
        false,
        false,
        EVENT_FIELDS,
    ),
    b(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        &["pv"],
        false,
        true,
        false,
        false,
        false,
        &[],
    ),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        &["pvc"],
        true,
        true,
        false,
        false,
        false,
        &[],
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["deploy"],
        true,
        true,
        true,
        true,
        true,
        &[],
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        &["rs"],
        true,
        true,
        true,
        true,
        true,
        &["status.replicas"],
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        &["sts"],
        true,
        true,
        true,
        true,
        true,
        &[],
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        &["ds"],
        true,
        true,
        false,
        true,
        true,
        &[],
    ),
    b(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        &[],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "batch",
        "v1",
        "Job",
        "jobs",
        &[],
        true,
        true,
        false,
        true,
        true,
        &["status.successful"],
    ),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        &["cj"],
        true,
        true,
        false,
        true,
        true,
        &[],
    ),
    b(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        true,
        true,
        false,
        true,
        true,
        &[],
    ),
    b(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        true,
        true,
        false,
        true,
        true,
        &[],
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["pdb"],
        true,
        true,
        false,
        true,
        false,
        &[],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        &["sc"],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "CSINode",
        "csinodes",
        &[],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "VolumeAttachment",
        "volumeattachments",
        &[],
        false,
        true,
        false,
        false,
        false,
        &[],
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        false,
        true,
        false,
        true,
        false,
        &[],
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        &[],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        &[],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        &["ing"],
        true,
        true,
        false,
        true,
        false,
        &[],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        &[],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        &["netpol"],
        true,
        false,
        false,
        true,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        &[],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        &[],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        &[],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        &[],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    // Access reviews are answered, never stored: `create` is their only verb.
    b(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        &[],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        &[],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        &[],
        true,
        false,
        false,
        false,
        false,
        &[],
    ),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        &["ev"],
        true,
        false,
        false,
        false,
        false,
        EVENTS_V1_FIELDS,
    ),
    b(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        &["pc"],
        false,
        false,
        false,
        false,
        false,
        &[],
    ),
];

/// The built-in resources, in discovery order (core first, then groups by preference).
#[must_use]
pub fn builtins() -> Vec<ResourceDef> {
    BUILTINS
        .iter()
        .map(|r| {
            let verbs = if r.plural == "namespaces" {
                NAMESPACE_VERBS
            } else if r.group == "authorization.k8s.io" {
                REVIEW_VERBS
            } else {
                ALL_VERBS
            };
            ResourceDef {
                group: r.group.to_string(),
                version: r.version.to_string(),
                kind: r.kind.to_string(),
                plural: r.plural.to_string(),
                singular: r.kind.to_ascii_lowercase(),
                short_names: r.short.iter().map(ToString::to_string).collect(),
                categories: if r.all {
                    vec!["all".to_string()]
                } else {
                    Vec::new()
                },
                namespaced: r.namespaced,
                verbs: verbs.iter().map(ToString::to_string).collect(),
                status: r.status,
                scale: r.scale.then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".to_string(),
                    status_replicas: ".status.replicas".to_string(),
                    label_selector: None,
                }),
                log: r.plural == "pods",
                generation: r.generation,
                custom: false,
                printer_columns: Vec::new(),
                selectable_fields: r.fields.iter().map(ToString::to_string).collect(),
            }
        })
        .collect()
}

/// Builds the resource definitions a CustomResourceDefinition serves, one per served version.
///
/// Returns an empty list when the definition lacks the names it needs (validation rejects
/// such definitions before they get here).
#[must_use]
pub fn from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        names["kind"].as_str(),
        names["plural"].as_str(),
    ) else {
        return Vec::new();
    };
    let singular = names["singular"]
        .as_str()
        .map_or_else(|| kind.to_ascii_lowercase(), ToString::to_string);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(ToString::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(name) = version["name"].as_str() else {
            continue;
        };
        let sub = &version["subresources"];
        let scale = sub
            .get("scale")
            .filter(|s| s.is_object())
            .map(|s| ScalePaths {
                spec_replicas: s["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas")
                    .to_string(),
                status_replicas: s["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas")
                    .to_string(),
                label_selector: s["labelSelectorPath"].as_str().map(ToString::to_string),
            });
        let printer_columns = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(PrinterColumn {
                    name: c["name"].as_str()?.to_string(),
                    type_: c["type"].as_str().unwrap_or("string").to_string(),
                    format: c["format"].as_str().unwrap_or_default().to_string(),
                    description: c["description"].as_str().unwrap_or_default().to_string(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: c["jsonPath"].as_str()?.to_string(),
                })
            })
            .collect();
        let selectable_fields = version["selectableFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                f["jsonPath"]
                    .as_str()
                    .map(|p| p.trim_start_matches('.').to_string())
            })
            .collect();
        out.push(ResourceDef {
            group: group.to_string(),
            version: name.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced,
            verbs: ALL_VERBS.iter().map(ToString::to_string).collect(),
            status: sub.get("status").is_some_and(Value::is_object),
            scale,
            log: false,
            generation: true,
            custom: true,
            printer_columns,
            selectable_fields,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_cover_the_required_kinds() {
        let all = builtins();
        for plural in [
            "namespaces",
            "nodes",
            "pods",
            "services",
            "endpoints",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "events",
            "persistentvolumes",
            "persistentvolumeclaims",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "jobs",
            "cronjobs",
            "storageclasses",
            "volumeattachments",
            "csinodes",
            "customresourcedefinitions",
            "endpointslices",
            "leases",
            "ingresses",
            "roles",
            "rolebindings",
            "clusterroles",
            "clusterrolebindings",
            "poddisruptionbudgets",
            "horizontalpodautoscalers",
        ] {
            assert!(all.iter().any(|r| r.plural == plural), "{plural} missing");
        }
        let deploy = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(deploy.group_resource(), "deployments.apps");
        assert_eq!(deploy.group_kind(), "Deployment.apps");
        assert!(deploy.answers_to("deploy") && deploy.scale.is_some());
        let pod = all.iter().find(|r| r.plural == "pods").unwrap();
        assert_eq!(pod.group_resource(), "pods");
        assert!(pod.log && pod.status);
    }

    #[test]
    fn crd_versions_become_resources() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                 "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                {"name": "v0", "served": false, "storage": false}]}});
        let defs = from_crd(&crd);
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].singular, "widget");
        assert!(defs[0].status && defs[0].custom && defs[0].namespaced);
        assert_eq!(defs[0].scale.as_ref().unwrap().spec_replicas, ".spec.size");
        assert_eq!(defs[0].printer_columns[0].name, "Size");
    }
}
