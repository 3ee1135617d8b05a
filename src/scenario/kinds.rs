//! Which kinds a scenario may name: the kinds Kubernetes 1.32 serves out of the box, and those
//! of the CustomResourceDefinitions the scenario applies itself.
//!
//! A misspelled kind is not an error a cluster reports for a read: it serves nothing under that
//! name, so an `absent` or `count: 0` expectation would hold for ever. The loader therefore
//! checks every kind and `apiVersion` a scenario names against this table, suggesting the
//! closest known name.

use std::collections::BTreeMap;

use serde_json::Value;

/// Kinds kube-apiserver 1.32 serves with its default API groups, each with the `apiVersion`s it
/// serves it at, preferred first: the resources `kubectl api-resources` lists on a v1.32
/// cluster (kubernetes/kubernetes v1.32.0, pkg/controlplane/apiserver/options and
/// pkg/controlplane/instance.go: the default-enabled group versions). Subresource-only and
/// create-only review kinds (TokenReview, SubjectAccessReview, ...) are left out: a scenario
/// can neither expect nor delete them.
pub const BUILTIN_KINDS: &[(&str, &[&str])] = &[
    ("Binding", &["v1"]),
    ("ComponentStatus", &["v1"]),
    ("ConfigMap", &["v1"]),
    ("Endpoints", &["v1"]),
    ("Event", &["v1", "events.k8s.io/v1"]),
    ("LimitRange", &["v1"]),
    ("Namespace", &["v1"]),
    ("Node", &["v1"]),
    ("PersistentVolumeClaim", &["v1"]),
    ("PersistentVolume", &["v1"]),
    ("Pod", &["v1"]),
    ("PodTemplate", &["v1"]),
    ("ReplicationController", &["v1"]),
    ("ResourceQuota", &["v1"]),
    ("Secret", &["v1"]),
    ("ServiceAccount", &["v1"]),
    ("Service", &["v1"]),
    (
        "MutatingWebhookConfiguration",
        &["admissionregistration.k8s.io/v1"],
    ),
    (
        "ValidatingWebhookConfiguration",
        &["admissionregistration.k8s.io/v1"],
    ),
    (
        "ValidatingAdmissionPolicy",
        &["admissionregistration.k8s.io/v1"],
    ),
    (
        "ValidatingAdmissionPolicyBinding",
        &["admissionregistration.k8s.io/v1"],
    ),
    ("CustomResourceDefinition", &["apiextensions.k8s.io/v1"]),
    ("APIService", &["apiregistration.k8s.io/v1"]),
    ("ControllerRevision", &["apps/v1"]),
    ("DaemonSet", &["apps/v1"]),
    ("Deployment", &["apps/v1"]),
    ("ReplicaSet", &["apps/v1"]),
    ("StatefulSet", &["apps/v1"]),
    (
        "HorizontalPodAutoscaler",
        &["autoscaling/v2", "autoscaling/v1"],
    ),
    ("CronJob", &["batch/v1"]),
    ("Job", &["batch/v1"]),
    ("CertificateSigningRequest", &["certificates.k8s.io/v1"]),
    ("Lease", &["coordination.k8s.io/v1"]),
    ("EndpointSlice", &["discovery.k8s.io/v1"]),
    ("FlowSchema", &["flowcontrol.apiserver.k8s.io/v1"]),
    (
        "PriorityLevelConfiguration",
        &["flowcontrol.apiserver.k8s.io/v1"],
    ),
    ("IngressClass", &["networking.k8s.io/v1"]),
    ("Ingress", &["networking.k8s.io/v1"]),
    ("NetworkPolicy", &["networking.k8s.io/v1"]),
    ("RuntimeClass", &["node.k8s.io/v1"]),
    ("PodDisruptionBudget", &["policy/v1"]),
    ("ClusterRoleBinding", &["rbac.authorization.k8s.io/v1"]),
    ("ClusterRole", &["rbac.authorization.k8s.io/v1"]),
    ("RoleBinding", &["rbac.authorization.k8s.io/v1"]),
    ("Role", &["rbac.authorization.k8s.io/v1"]),
    ("PriorityClass", &["scheduling.k8s.io/v1"]),
    ("CSIDriver", &["storage.k8s.io/v1"]),
    ("CSINode", &["storage.k8s.io/v1"]),
    ("CSIStorageCapacity", &["storage.k8s.io/v1"]),
    ("StorageClass", &["storage.k8s.io/v1"]),
    ("VolumeAttachment", &["storage.k8s.io/v1"]),
];

/// The preferred `apiVersion` of a built-in kind, for references that leave it out.
#[must_use]
pub fn builtin_api_version(kind: &str) -> Option<&'static str> {
    BUILTIN_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, versions)| versions.first().copied())
}

/// The kinds a scenario may name, with the `apiVersion`s each is served at.
#[derive(Debug, Clone, Default)]
pub struct KnownKinds {
    kinds: BTreeMap<String, Vec<String>>,
    /// Kinds that only the scenario's CustomResourceDefinitions define.
    custom: BTreeMap<String, Vec<String>>,
}

/// What is wrong with a kind or `apiVersion` a scenario names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindProblem {
    /// Whether the `apiVersion` (rather than the kind) is what is wrong.
    pub at_api_version: bool,
    /// What is wrong.
    pub message: String,
    /// What to do about it (`did you mean ...?`).
    pub help: String,
}

impl KnownKinds {
    /// The built-in kinds plus those of the CustomResourceDefinitions among `objects`.
    #[must_use]
    pub fn with_crds<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut known = Self::default();
        for (kind, versions) in BUILTIN_KINDS {
            known.kinds.insert(
                (*kind).to_owned(),
                versions.iter().map(|v| (*v).to_owned()).collect(),
            );
        }
        for o in objects {
            known.add_crd(o);
        }
        known
    }

    fn add_crd(&mut self, o: &Value) {
        if o.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return;
        }
        let spec = o.get("spec");
        let text = |p: &str| spec.and_then(|s| s.pointer(p)).and_then(Value::as_str);
        let (Some(group), Some(kind)) = (text("/group"), text("/names/kind")) else {
            return;
        };
        // apiextensions.k8s.io/v1 lists versions; v1beta1 could name one in `version`.
        let mut versions: Vec<String> = spec
            .and_then(|s| s.get("versions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .map(|v| format!("{group}/{v}"))
            .collect();
        versions.extend(text("/version").map(|v| format!("{group}/{v}")));
        for map in [&mut self.kinds, &mut self.custom] {
            let entry = map.entry(kind.to_owned()).or_default();
            for v in &versions {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
        if BUILTIN_KINDS.iter().any(|(k, _)| *k == kind) {
            self.custom.remove(kind);
        }
    }

    /// Checks a kind and, when given, its `apiVersion`.
    ///
    /// # Errors
    /// A [`KindProblem`] for a kind neither built in nor defined by the scenario's CRDs, a kind
    /// served at other versions only, or a custom kind named without its `apiVersion`.
    pub fn check(&self, api_version: Option<&str>, kind: &str) -> Result<(), KindProblem> {
        let Some(versions) = self.kinds.get(kind) else {
            return Err(self.unknown(kind));
        };
        match api_version {
            None if self.custom.contains_key(kind) => Err(KindProblem {
                at_api_version: false,
                message: format!("kind `{kind}` is not built in: give its `apiVersion`"),
                help: format!("`apiVersion: {}`", versions.join("` or `")),
            }),
            None => Ok(()),
            Some(v) if versions.iter().any(|x| x == v) => Ok(()),
            Some(v) => Err(KindProblem {
                at_api_version: true,
                message: format!(
                    "kind `{kind}` is not served at `{v}`; it is served at `{}`",
                    versions.join("`, `")
                ),
                help: format!(
                    "did you mean `{}`?",
                    closest(v, versions.iter().map(String::as_str))
                        .or(versions.first().map(String::as_str))
                        .unwrap_or_default()
                ),
            }),
        }
    }
}

impl KnownKinds {
    /// Checks only that a kind is known, where no `apiVersion` goes with it (`snapshot.kinds`,
    /// an event's `involvedKind`).
    ///
    /// # Errors
    /// A [`KindProblem`] for a kind neither built in nor defined by the scenario's CRDs.
    pub fn check_name(&self, kind: &str) -> Result<(), KindProblem> {
        if self.kinds.contains_key(kind) {
            Ok(())
        } else {
            Err(self.unknown(kind))
        }
    }

    fn unknown(&self, kind: &str) -> KindProblem {
        let help = match closest(kind, self.kinds.keys().map(String::as_str)) {
            Some(k) => format!("did you mean `{k}`?"),
            None => {
                "a custom kind needs its CustomResourceDefinition among the scenario's manifests"
                    .to_owned()
            }
        };
        KindProblem {
            at_api_version: false,
            message: format!(
                "unknown kind `{kind}`: not a Kubernetes 1.32 kind, and no CustomResourceDefinition the scenario applies defines it"
            ),
            help,
        }
    }
}

/// The candidate closest to `word` by edit distance (ignoring case), when it is close enough
/// to be a likely typo.
#[must_use]
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (insertions, deletions, substitutions), by characters.
#[must_use]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prometheus_crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "prometheuses.monitoring.coreos.com"},
            "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                "names": {"kind": "Prometheus", "plural": "prometheuses"},
                "versions": [{"name": "v1", "served": true, "storage": true},
                             {"name": "v1alpha1", "served": false, "storage": false}]}})
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("statefulsett", "statefulset"), 1);
        assert_eq!(edit_distance("deploymnet", "deployment"), 2);
        assert_eq!(edit_distance("", "pod"), 3);
        assert_eq!(
            closest("StatefulSett", ["Deployment", "StatefulSet"]),
            Some("StatefulSet")
        );
        assert_eq!(closest("pod", ["Pod", "Node"]), Some("Pod"));
        assert_eq!(closest("Widget", ["Pod", "Deployment"]), None);
    }

    #[test]
    fn builtin_kinds_and_versions() {
        let known = KnownKinds::with_crds([]);
        assert_eq!(known.check(None, "Deployment"), Ok(()));
        assert_eq!(known.check(Some("apps/v1"), "StatefulSet"), Ok(()));
        assert_eq!(known.check(Some("events.k8s.io/v1"), "Event"), Ok(()));
        let p = known.check(Some("apps/v1"), "StatefulSett").unwrap_err();
        assert!(!p.at_api_version);
        assert!(
            p.message.starts_with("unknown kind `StatefulSett`"),
            "{p:?}"
        );
        assert_eq!(p.help, "did you mean `StatefulSet`?");
        let p = known
            .check(Some("extensions/v1beta1"), "Deployment")
            .unwrap_err();
        assert!(p.at_api_version);
        assert_eq!(
            p.message,
            "kind `Deployment` is not served at `extensions/v1beta1`; it is served at `apps/v1`"
        );
        assert_eq!(p.help, "did you mean `apps/v1`?");
        assert_eq!(
            builtin_api_version("HorizontalPodAutoscaler"),
            Some("autoscaling/v2")
        );
        assert_eq!(builtin_api_version("Prometheus"), None);
    }

    #[test]
    fn custom_kinds_come_from_the_scenarios_crds() {
        let known = KnownKinds::with_crds([]);
        assert!(
            known
                .check(Some("monitoring.coreos.com/v1"), "Prometheus")
                .is_err()
        );
        let crd = prometheus_crd();
        let known = KnownKinds::with_crds([&crd]);
        assert_eq!(
            known.check(Some("monitoring.coreos.com/v1"), "Prometheus"),
            Ok(())
        );
        // A version the CRD does not serve.
        let p = known
            .check(Some("monitoring.coreos.com/v1alpha1"), "Prometheus")
            .unwrap_err();
        assert!(p.at_api_version, "{p:?}");
        assert_eq!(p.help, "did you mean `monitoring.coreos.com/v1`?");
        let p = known
            .check(Some("monitoring.coreos.co/v1"), "Prometheus")
            .unwrap_err();
        assert_eq!(p.help, "did you mean `monitoring.coreos.com/v1`?");
        // A custom kind needs its apiVersion; a misspelt one is suggested.
        let p = known.check(None, "Prometheus").unwrap_err();
        assert_eq!(
            p.message,
            "kind `Prometheus` is not built in: give its `apiVersion`"
        );
        let p = known
            .check(Some("monitoring.coreos.com/v1"), "Promethues")
            .unwrap_err();
        assert_eq!(p.help, "did you mean `Prometheus`?");
    }
}
