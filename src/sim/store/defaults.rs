//! Defaulting of built-in kinds, as the real API server applies it on every write.
//!
//! The values are those of k8s.io/kubernetes/pkg/apis/*/v1/defaults.go (core, apps, batch,
//! storage) and of the admission plugins every cluster runs (ServiceAccount,
//! DefaultTolerationSeconds, Priority, DefaultStorageClass).

use serde_json::{Map, Value, json};

/// Returns `v[key]`, turning `v` into an object and inserting `{}` when needed.
pub(crate) fn child<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let Value::Object(m) = v else {
        unreachable!("made an object above")
    };
    let entry = m.entry(key.to_string()).or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
}

/// Sets `v[key] = value` when the key is absent or null.
pub(crate) fn default(v: &mut Value, key: &str, value: Value) {
    if let Value::Object(m) = v {
        let slot = m.entry(key.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Applies the defaults of `kind` (`group`) to a whole object.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => pod(obj),
        ("", "Namespace") => {
            default(child(obj, "spec"), "finalizers", json!(["kubernetes"]));
            default(child(obj, "status"), "phase", json!("Active"));
            // The NamespaceDefaultLabelName feature labels every namespace with its name.
            if let Some(name) = obj["metadata"]["name"].as_str().map(ToString::to_string) {
                child(child(obj, "metadata"), "labels")["kubernetes.io/metadata.name"] =
                    json!(name);
            }
        }
        ("", "Secret") => {
            default(obj, "type", json!("Opaque"));
            fold_string_data(obj);
        }
        ("", "PersistentVolumeClaim") => {
            default(child(obj, "spec"), "volumeMode", json!("Filesystem"));
            default(child(obj, "status"), "phase", json!("Pending"));
        }
        ("", "PersistentVolume") => {
            let spec = child(obj, "spec");
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default(spec, "volumeMode", json!("Filesystem"));
            default(child(obj, "status"), "phase", json!("Pending"));
        }
        ("", "Service") => service(obj),
        ("apps", "Deployment") => {
            let spec = child(obj, "spec");
            default(spec, "replicas", json!(1));
            let strategy = child(spec, "strategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            pod_template(spec, true);
        }
        ("apps", "ReplicaSet") => {
            let spec = child(obj, "spec");
            default(spec, "replicas", json!(1));
            pod_template(spec, true);
        }
        ("apps", "StatefulSet") => {
            let spec = child(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                default(child(strategy, "rollingUpdate"), "partition", json!(0));
            }
            default(spec, "revisionHistoryLimit", json!(10));
            let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
            default(retention, "whenDeleted", json!("Retain"));
            default(retention, "whenScaled", json!("Retain"));
            if let Some(claims) = spec
                .get_mut("volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for claim in claims {
                    default(claim, "apiVersion", json!("v1"));
                    default(claim, "kind", json!("PersistentVolumeClaim"));
                    default(child(claim, "spec"), "volumeMode", json!("Filesystem"));
                    default(child(claim, "status"), "phase", json!("Pending"));
                }
            }
            pod_template(spec, true);
        }
        ("apps", "DaemonSet") => {
            let spec = child(obj, "spec");
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!(1));
                default(ru, "maxSurge", json!(0));
            }
            default(spec, "revisionHistoryLimit", json!(10));
            pod_template(spec, true);
        }
        ("batch", "Job") => job_spec(child(obj, "spec")),
        ("batch", "CronJob") => {
            let spec = child(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            let job = child(child(spec, "jobTemplate"), "spec");
            pod_template(job, false);
        }
        ("storage.k8s.io", "StorageClass") => {
            default(obj, "reclaimPolicy", json!("Delete"));
            default(obj, "volumeBindingMode", json!("Immediate"));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let spec = child(obj, "spec");
            let names = child(spec, "names");
            if let Some(kind) = names["kind"].as_str().map(ToString::to_string) {
                default(names, "singular", json!(kind.to_ascii_lowercase()));
                default(names, "listKind", json!(format!("{kind}List")));
            }
            default(child(spec, "conversion"), "strategy", json!("None"));
        }
        _ => {}
    }
}

fn job_spec(spec: &mut Value) {
    if spec["completions"].is_null() && spec["parallelism"].is_null() {
        spec["completions"] = json!(1);
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    if spec["podFailurePolicy"].is_null() {
        default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    }
    pod_template(spec, false);
}

/// Adds the labels and selector a Job gets from the API server (pkg/registry/batch/job/strategy.go,
/// `generateSelector`), which need the Job's uid.
pub fn job_selector(obj: &mut Value) {
    let (Some(uid), Some(name)) = (
        obj["metadata"]["uid"].as_str().map(ToString::to_string),
        obj["metadata"]["name"].as_str().map(ToString::to_string),
    ) else {
        return;
    };
    let spec = child(obj, "spec");
    if spec["manualSelector"] == json!(true) {
        return;
    }
    let labels = child(child(child(spec, "template"), "metadata"), "labels");
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        default(labels, k, json!(v));
    }
    default(
        spec,
        "selector",
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
}

fn pod_template(spec: &mut Value, restart_always: bool) {
    let template = child(spec, "template");
    child(template, "metadata");
    pod_spec(child(template, "spec"), restart_always);
}

fn pod(obj: &mut Value) {
    let spec = child(obj, "spec");
    pod_spec(spec, true);
    // Set on pods only (SetDefaults_Pod), and by the ServiceAccount, Priority and
    // DefaultTolerationSeconds admission plugins.
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "serviceAccountName", json!("default"));
    let sa = spec["serviceAccountName"].clone();
    default(spec, "serviceAccount", sa);
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let tolerations = child(spec, "tolerations");
    if !tolerations.is_array() {
        *tolerations = json!([]);
    }
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = list
                .iter()
                .any(|t| t["key"] == key && (t["effect"] == "NoExecute" || t["effect"].is_null()));
            if !present {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos = qos_class(spec);
    let status = child(obj, "status");
    default(status, "phase", json!("Pending"));
    default(status, "qosClass", json!(qos));
}

/// The pod's QoS class (pkg/apis/core/helper/qos/qos.go, `GetPodQOS`).
#[must_use]
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c["resources"]["requests"].as_object();
        let limits = c["resources"]["limits"].as_object();
        let relevant = |m: Option<&Map<String, Value>>| {
            m.map(|m| m.keys().filter(|k| *k == "cpu" || *k == "memory").count())
                .unwrap_or(0)
        };
        if relevant(requests) > 0 || relevant(limits) > 0 {
            any = true;
        }
        let has_both_limits =
            limits.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"));
        if !has_both_limits {
            guaranteed = false;
            continue;
        }
        if let (Some(req), Some(lim)) = (requests, limits) {
            for key in ["cpu", "memory"] {
                if let Some(r) = req.get(key)
                    && Some(r) != lim.get(key)
                {
                    guaranteed = false;
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn pod_spec(spec: &mut Value, restart_always: bool) {
    if restart_always {
        default(spec, "restartPolicy", json!("Always"));
    }
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in list {
                container(c);
            }
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in volumes {
            for source in ["configMap", "secret", "projected", "downwardAPI"] {
                if v[source].is_object() {
                    default(&mut v[source], "defaultMode", json!(420));
                }
            }
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default().to_string();
    default(c, "imagePullPolicy", json!(pull_policy(&image)));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if c[probe].is_object() {
            let p = &mut c[probe];
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if p["httpGet"].is_object() {
                default(&mut p["httpGet"], "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if e["valueFrom"]["fieldRef"].is_object() {
                default(&mut e["valueFrom"]["fieldRef"], "apiVersion", json!("v1"));
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (SetDefaults_Container).
#[must_use]
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service(obj: &mut Value) {
    let spec = child(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
            let port = p["port"].clone();
            default(p, "targetPort", port);
        }
    }
    let ty = spec["type"].as_str().unwrap_or_default().to_string();
    if ty != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    default(child(obj, "status"), "loadBalancer", json!({}));
}

/// Folds a Secret's write-only `stringData` into `data` (base64), overwriting keys `data`
/// already has, and drops it: the API server never stores or returns `stringData`
/// (pkg/apis/core/v1/conversion.go, `Convert_v1_Secret_To_core_Secret`).
fn fold_string_data(obj: &mut Value) {
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if string_data.is_empty() {
        return;
    }
    let data = child(obj, "data");
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(k, json!(super::base64(text.as_bytes())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "c", "image": "nginx"}, {"name": "d", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
        apply("apps", "Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(pod["containers"][0]["terminationMessagePolicy"], "File");
    }

    #[test]
    fn recreate_gets_no_rolling_update() {
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply("apps", "Deployment", &mut d);
        assert!(d["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pod_and_qos() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a:1",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        apply("", "Pod", &mut p);
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "c"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn job_selector_uses_uid() {
        let mut j = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {"containers": []}}}});
        apply("batch", "Job", &mut j);
        job_selector(&mut j);
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(j["spec"]["template"]["metadata"]["labels"]["job-name"], "j");
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert!(j["spec"]["template"]["spec"].get("restartPolicy").is_none());
    }
}
