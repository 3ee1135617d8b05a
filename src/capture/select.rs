//! What a capture keeps: the workloads (owner-generated objects resolved to their owners), what
//! they reference, the CRDs of captured custom resources, and a Deployment's previous revision
//! while its rollout is under way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::CaptureError;
use super::source::Recorded;

/// Kinds whose objects run pods, or own objects that do.
const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// Pod labels controllers add, which no manifest writes.
const GENERATED_POD_LABELS: [&str; 7] = [
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "pod-template-generation",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
];

/// One captured workload: a top-level owner and the pods under it.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The object as the cluster showed it.
    pub object: Value,
    /// The pods it owns, directly or through ReplicaSets, Jobs or operator-made objects.
    pub pods: Vec<Value>,
    /// Labels that select its pods (its pod template's, or what all its pods share).
    pub pod_labels: BTreeMap<String, String>,
    /// The pod template of its previous revision, while a Deployment's rollout is under way
    /// and pods of that revision still run.
    pub previous_template: Option<Value>,
}

impl Workload {
    /// `kind`.
    #[must_use]
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    /// `metadata.name`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    /// `metadata.namespace`.
    #[must_use]
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
}

/// What a capture keeps of what it observed.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The namespaces of the captured objects.
    pub namespaces: Vec<Value>,
    /// The workloads, custom resources that own pods or stand alone included.
    pub workloads: Vec<Workload>,
    /// Objects the workloads reference (ServiceAccounts, RBAC, ConfigMaps, Secrets, claims)
    /// and the Services selecting their pods, in apply order.
    pub referenced: Vec<Value>,
    /// ClusterRoles and ClusterRoleBindings of the workloads' ServiceAccounts.
    pub cluster_rbac: Vec<Value>,
    /// The CRDs of captured custom resources.
    pub crds: Vec<Value>,
    /// References to objects that do not exist (`Secret ameide-dev/grafana-admin-credentials`).
    pub missing: Vec<String>,
}

/// An equality-based label selector (`a=b,c!=d,e`), as `kubectl -l` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<(String, Op)>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    Ne(String),
    Exists,
    Absent,
}

impl Selector {
    /// Parses `app=web,tier!=db,canary,!legacy`.
    ///
    /// # Errors
    /// [`CaptureError::Selector`] for set-based or empty terms.
    pub fn parse(text: &str) -> Result<Self, CaptureError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim) {
            let bad = || CaptureError::Selector(text.to_owned());
            let parsed = if let Some((k, v)) = term.split_once("!=") {
                (k.trim().to_owned(), Op::Ne(v.trim().to_owned()))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some(k) = term.strip_prefix('!') {
                (k.trim().to_owned(), Op::Absent)
            } else {
                (term.to_owned(), Op::Exists)
            };
            if parsed.0.is_empty() || parsed.0.contains([' ', '(', ')']) {
                return Err(bad());
            }
            terms.push(parsed);
        }
        Ok(Self(terms))
    }

    /// Whether `object`'s labels match.
    #[must_use]
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0.iter().all(|(k, op)| {
            let v = labels[k].as_str();
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::Ne(x) => v != Some(x.as_str()),
                Op::Exists => v.is_some(),
                Op::Absent => v.is_none(),
            }
        })
    }
}

fn key(o: &Value) -> (String, String, String) {
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

struct Index<'a> {
    by_uid: HashMap<&'a str, &'a Value>,
    by_key: HashMap<(String, String, String), &'a Value>,
}

impl<'a> Index<'a> {
    fn new(objects: &'a [Value]) -> Self {
        let mut by_uid = HashMap::new();
        let mut by_key = HashMap::new();
        for o in objects {
            if let Some(uid) = o["metadata"]["uid"].as_str() {
                by_uid.insert(uid, o);
            }
            by_key.insert(key(o), o);
        }
        Self { by_uid, by_key }
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&'a Value> {
        self.by_key
            .get(&(kind.to_owned(), namespace.to_owned(), name.to_owned()))
            .copied()
    }

    /// The object's controller, when it is among the observed objects.
    fn owner(&self, o: &Value) -> Option<&'a Value> {
        let refs = o["metadata"]["ownerReferences"].as_array()?;
        let r = refs
            .iter()
            .find(|r| r["controller"] == true)
            .or_else(|| refs.first())?;
        if let Some(owner) = r["uid"].as_str().and_then(|u| self.by_uid.get(u)) {
            return Some(owner);
        }
        self.get(
            r["kind"].as_str()?,
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str()?,
        )
    }

    /// The top of the object's chain of controllers (a Pod's Deployment, a StatefulSet's
    /// custom resource).
    fn top(&self, o: &'a Value) -> &'a Value {
        let mut at = o;
        for _ in 0..16 {
            match self.owner(at) {
                Some(owner) if owner["kind"] != "Node" => at = owner,
                _ => break,
            }
        }
        at
    }
}

/// Whether `o` is a custom resource: its kind and group are served by an observed CRD.
fn crd_of<'a>(crds: &[&'a Value], o: &Value) -> Option<&'a Value> {
    let api_version = o["apiVersion"].as_str()?;
    let group = api_version.split_once('/').map(|(g, _)| g)?;
    crds.iter()
        .find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == o["kind"])
        .copied()
}

/// A workload's pod template.
#[must_use]
pub fn pod_template(o: &Value) -> Option<&Value> {
    o.pointer("/spec/template")
        .or_else(|| o.pointer("/spec/jobTemplate/spec/template"))
        .filter(|t| t.is_object())
}

/// Chooses what to capture of `observed`: every workload of its namespaced objects (those
/// `selector` matches, or that own a pod it matches), what they need, and their namespaces.
///
/// # Errors
/// [`CaptureError::NothingSelected`] when no workload is left.
pub fn select(observed: &Recorded, selector: Option<&Selector>) -> Result<Selection, CaptureError> {
    let objects = &observed.objects;
    let index = Index::new(objects);
    let crds: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    let namespaced = |o: &&Value| o["metadata"]["namespace"].is_string();
    let candidates = objects
        .iter()
        .filter(namespaced)
        .filter(|o| WORKLOAD_KINDS.iter().any(|k| o["kind"] == *k) || crd_of(&crds, o).is_some());
    let mut tops: BTreeMap<(String, String, String), (&Value, Vec<Value>)> = BTreeMap::new();
    for o in candidates {
        let top = index.top(o);
        let entry = tops.entry(key(top)).or_insert((top, Vec::new()));
        if o["kind"] == "Pod" {
            entry.1.push(o.clone());
        }
    }
    let mut selection = Selection::default();
    for (top, pods) in tops.into_values() {
        if let Some(s) = selector
            && !s.matches(top)
            && !pods.iter().any(|p| s.matches(p))
        {
            continue;
        }
        let pod_labels = match pod_template(top) {
            Some(t) => labels_of(&t["metadata"]["labels"]),
            None => shared_labels(&pods),
        };
        let previous_template = previous_template(objects, &index, top);
        selection.workloads.push(Workload {
            object: top.clone(),
            pods,
            pod_labels,
            previous_template,
        });
    }
    if selection.workloads.is_empty() {
        return Err(CaptureError::NothingSelected);
    }
    references(&index, objects, &mut selection);
    let mut crd_names = BTreeSet::new();
    for w in &selection.workloads {
        if let Some(crd) = crd_of(&crds, &w.object)
            && crd_names.insert(
                crd["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        {
            selection.crds.push(crd.clone());
        }
    }
    let namespaces: BTreeSet<String> = selection
        .workloads
        .iter()
        .map(|w| w.namespace().to_owned())
        .collect();
    for ns in namespaces {
        selection.namespaces.push(
            index
                .get("Namespace", "", &ns)
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        );
    }
    Ok(selection)
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !GENERATED_POD_LABELS.contains(&k.as_str()))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The labels every one of `pods` carries (controllers' own labels left out).
fn shared_labels(pods: &[Value]) -> BTreeMap<String, String> {
    let mut shared: Option<BTreeMap<String, String>> = None;
    for p in pods {
        let l = labels_of(&p["metadata"]["labels"]);
        shared = Some(match shared {
            None => l,
            Some(s) => s.into_iter().filter(|(k, v)| l.get(k) == Some(v)).collect(),
        });
    }
    shared.unwrap_or_default()
}

fn revision(o: &Value) -> u64 {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The template of the newest older ReplicaSet of a Deployment that still has pods.
fn previous_template(objects: &[Value], index: &Index<'_>, top: &Value) -> Option<Value> {
    if top["kind"] != "Deployment" {
        return None;
    }
    let uid = top["metadata"]["uid"].as_str();
    let owned: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ReplicaSet")
        .filter(|o| {
            index.owner(o).is_some_and(|owner| {
                owner["metadata"]["uid"].as_str() == uid && key(owner) == key(top)
            })
        })
        .collect();
    let newest = owned.iter().map(|o| revision(o)).max()?;
    owned
        .iter()
        .filter(|o| revision(o) < newest && o["status"]["replicas"].as_u64().unwrap_or(0) > 0)
        .max_by_key(|o| revision(o))
        .map(|o| o["spec"]["template"].clone())
}

/// What one pod spec references: `(kind, name)`.
fn pod_references(spec: &Value) -> Vec<(&'static str, String)> {
    let mut refs = Vec::new();
    let mut push = |kind: &'static str, v: &Value| {
        if let Some(n) = v.as_str() {
            refs.push((kind, n.to_owned()));
        }
    };
    push(
        "ServiceAccount",
        if spec["serviceAccountName"].is_string() {
            &spec["serviceAccountName"]
        } else {
            &spec["serviceAccount"]
        },
    );
    for v in spec["volumes"].as_array().into_iter().flatten() {
        push("ConfigMap", &v["configMap"]["name"]);
        push("Secret", &v["secret"]["secretName"]);
        push(
            "PersistentVolumeClaim",
            &v["persistentVolumeClaim"]["claimName"],
        );
        for s in v["projected"]["sources"].as_array().into_iter().flatten() {
            push("ConfigMap", &s["configMap"]["name"]);
            push("Secret", &s["secret"]["name"]);
        }
    }
    for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        push("Secret", &s["name"]);
    }
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                push("ConfigMap", &e["valueFrom"]["configMapKeyRef"]["name"]);
                push("Secret", &e["valueFrom"]["secretKeyRef"]["name"]);
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                push("ConfigMap", &e["configMapRef"]["name"]);
                push("Secret", &e["secretRef"]["name"]);
            }
        }
    }
    refs
}

/// Fills in what the selected workloads reference and the Services selecting their pods;
/// references to objects that do not exist go to `missing` (an `optional: true` one too: the
/// person writing the fix decides).
fn references(index: &Index<'_>, objects: &[Value], selection: &mut Selection) {
    let mut wanted: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut service_accounts = BTreeSet::new();
    for w in &selection.workloads {
        let ns = w.namespace().to_owned();
        let Some(spec) = pod_template(&w.object)
            .map(|t| &t["spec"])
            .or_else(|| (w.kind() == "Pod").then_some(&w.object["spec"]))
        else {
            continue;
        };
        for (kind, name) in pod_references(spec) {
            // Every namespace has these; the cluster makes them.
            if (kind == "ServiceAccount" && name == "default")
                || (kind == "ConfigMap" && name == "kube-root-ca.crt")
            {
                continue;
            }
            if kind == "ServiceAccount" {
                service_accounts.insert((ns.clone(), name.clone()));
            }
            match index.get(kind, &ns, &name) {
                Some(_) => {
                    wanted.insert((kind.to_owned(), ns.clone(), name));
                }
                None => {
                    missing.insert(format!("{kind} {ns}/{name}"));
                }
            }
        }
        for svc in objects
            .iter()
            .filter(|o| o["kind"] == "Service" && o["metadata"]["namespace"] == ns.as_str())
        {
            let Some(sel) = svc["spec"]["selector"]
                .as_object()
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            if sel
                .iter()
                .all(|(k, v)| v.as_str() == w.pod_labels.get(k).map(String::as_str))
            {
                wanted.insert(key(svc));
            }
        }
    }
    let binds = |b: &Value, default_ns: &str| {
        b["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount"
                && service_accounts.contains(&(
                    s["namespace"].as_str().unwrap_or(default_ns).to_owned(),
                    s["name"].as_str().unwrap_or_default().to_owned(),
                ))
        })
    };
    let mut cluster_roles = BTreeSet::new();
    for b in objects.iter().filter(|o| o["kind"] == "RoleBinding") {
        let ns = b["metadata"]["namespace"].as_str().unwrap_or_default();
        if binds(b, ns) {
            wanted.insert(key(b));
            let role = b["roleRef"]["name"].as_str().unwrap_or_default().to_owned();
            if b["roleRef"]["kind"] == "ClusterRole" {
                cluster_roles.insert(role);
            } else {
                wanted.insert(("Role".to_owned(), ns.to_owned(), role));
            }
        }
    }
    for b in objects.iter().filter(|o| o["kind"] == "ClusterRoleBinding") {
        if binds(b, "") {
            selection.cluster_rbac.push(b.clone());
            cluster_roles.insert(b["roleRef"]["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    for role in cluster_roles {
        if let Some(r) = index.get("ClusterRole", "", &role) {
            selection.cluster_rbac.insert(0, r.clone());
        }
    }
    // Apply order: what others refer to first.
    const ORDER: [&str; 8] = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Service",
        "",
    ];
    let mut referenced: Vec<Value> = wanted
        .iter()
        .filter_map(|(k, ns, n)| index.get(k, ns, n).cloned())
        // Helm's release records and token Secrets are the tools', not the workload's.
        .filter(|o| {
            !o["type"].as_str().is_some_and(|t| {
                t.starts_with("helm.sh/release") || t == "kubernetes.io/service-account-token"
            })
        })
        .collect();
    referenced.sort_by_key(|o| {
        ORDER
            .iter()
            .position(|k| o["kind"] == *k)
            .unwrap_or(ORDER.len())
    });
    selection.referenced = referenced;
    selection.missing = missing.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observed(objects: Vec<Value>) -> Recorded {
        Recorded {
            objects,
            ..Recorded::default()
        }
    }

    #[test]
    fn pods_resolve_to_their_deployment_and_its_references() {
        let o = observed(vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "n", "uid": "d"},
                "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"serviceAccountName": "web",
                    "containers": [{"name": "c", "image": "i", "envFrom": [{"secretRef": {"name": "creds"}}]}],
                    "volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "n", "uid": "r",
                "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1-x", "namespace": "n", "uid": "p",
                "labels": {"app": "web"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "uid": "r", "controller": true}]}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "n"}, "spec": {"selector": {"app": "web"}}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "web"},
                "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "n"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "view"}}),
        ]);
        let s = select(&o, None).unwrap();
        assert_eq!(s.workloads.len(), 1);
        assert_eq!(s.workloads[0].name(), "web");
        assert_eq!(s.workloads[0].pods.len(), 1);
        let kinds: Vec<String> = s
            .referenced
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            kinds,
            ["ServiceAccount/web", "ConfigMap/cfg", "Service/web"]
        );
        assert_eq!(s.missing, ["Secret n/creds"]);
        assert_eq!(s.cluster_rbac.len(), 2);
        assert_eq!(s.cluster_rbac[0]["kind"], "ClusterRole");
        assert!(select(&o, Some(&Selector::parse("app=db").unwrap())).is_err());
        assert_eq!(
            select(&o, Some(&Selector::parse("app=web").unwrap()))
                .unwrap()
                .workloads
                .len(),
            1
        );
    }

    #[test]
    fn operator_made_objects_resolve_to_their_custom_resource_and_its_crd() {
        let o = observed(vec![
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "prometheuses.monitoring.coreos.com"},
                "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced", "names": {"kind": "Prometheus"}}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "alertmanagers.monitoring.coreos.com"},
                "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced", "names": {"kind": "Alertmanager"}}}),
            json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "k8s", "namespace": "m", "uid": "cr"}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "prometheus-k8s", "namespace": "m", "uid": "s",
                "ownerReferences": [{"kind": "Prometheus", "name": "k8s", "uid": "cr", "controller": true}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "prometheus-k8s-0", "namespace": "m",
                "labels": {"prometheus": "k8s", "statefulset.kubernetes.io/pod-name": "prometheus-k8s-0"},
                "ownerReferences": [{"kind": "StatefulSet", "name": "prometheus-k8s", "uid": "s", "controller": true}]}}),
        ]);
        let s = select(&o, None).unwrap();
        assert_eq!(s.workloads.len(), 1);
        assert_eq!(
            (s.workloads[0].kind(), s.workloads[0].pods.len()),
            ("Prometheus", 1)
        );
        assert_eq!(
            s.workloads[0].pod_labels,
            BTreeMap::from([("prometheus".to_owned(), "k8s".to_owned())])
        );
        assert_eq!(s.crds.len(), 1);
        assert_eq!(
            s.crds[0]["metadata"]["name"],
            "prometheuses.monitoring.coreos.com"
        );
    }

    #[test]
    fn selectors_parse_as_kubectl_reads_them() {
        let s = Selector::parse("app=web,tier!=db,canary,!legacy").unwrap();
        assert!(s.matches(&json!({"metadata": {"labels": {"app": "web", "canary": "1"}}})));
        assert!(!s.matches(
            &json!({"metadata": {"labels": {"app": "web", "canary": "1", "legacy": "x"}}})
        ));
        assert!(Selector::parse("app in (a,b)").is_err());
    }
}
