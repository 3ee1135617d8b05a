//! How healthy a resource and an Application are, as Argo CD assesses them: gitops-engine's
//! built-in checks (`gitops-engine/pkg/health/health_*.go`), the Lua checks of
//! `resource_customizations/` that the catalogue needs, and the application's aggregate
//! (`controller/health.go`).
//!
//! Order of assessment (gitops-engine/pkg/health/health.go, `GetResourceHealth`): an object
//! being deleted is `Progressing` unless it carries the hook finalizer; then the Lua check of
//! its group and kind, when Argo CD ships one (built-in scripts take precedence over the Go
//! checks: util/lua/lua.go, `GetHealthScript`, is consulted as the health override first);
//! then the Go check of `GetHealthCheckFunc`; kinds with neither have no health.
//!
//! Objects come from the API server, so they are well-typed; where Go's typed conversion would
//! read an absent field as its zero value, so do these checks.

use serde_json::Value;

use super::{Health, HealthStatus, ManagedResource};
use crate::sim::kubelet::gofmt::go_quote;

/// The finalizer that keeps a hook from being deleted before its phase ends
/// (gitops-engine/pkg/sync/hook/hook.go, `HookFinalizer`).
pub const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

/// The annotation that keeps a resource out of its application's health
/// (common/common.go, `AnnotationIgnoreHealthCheck`).
pub const IGNORE_HEALTHCHECK: &str = "argocd.argoproj.io/ignore-healthcheck";

/// The health of one live object. `None` when Argo CD has no check for its kind: such
/// resources have no health and do not count in the application's.
#[must_use]
pub fn of(obj: &Value) -> Option<Health> {
    if !obj["metadata"]["deletionTimestamp"].is_null()
        && !strings(&obj["metadata"]["finalizers"]).any(|f| f == HOOK_FINALIZER)
    {
        // gitops-engine/pkg/health/health.go, GetResourceHealth.
        return Some(Health::new(HealthStatus::Progressing, "Pending deletion"));
    }
    let (group, version) = match str_of(&obj["apiVersion"]).split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", str_of(&obj["apiVersion"])),
    };
    let kind = str_of(&obj["kind"]);
    lua_check(group, kind, obj).or_else(|| builtin_check(group, version, kind, obj))
}

/// What Argo CD records as a managed resource's health in `status.resources`
/// (controller/health.go, `setApplicationHealth`): `None` for hooks, ignored resources,
/// resources annotated `argocd.argoproj.io/ignore-healthcheck: "true"` and kinds without a
/// check; `Missing` when Git has it and the cluster does not.
#[must_use]
pub fn of_resource(res: &ManagedResource) -> Option<Health> {
    if !counts(res) || ignores_health(res) {
        return None;
    }
    match &res.live {
        None => Some(Health::new(HealthStatus::Missing, "")),
        Some(live) => of(live),
    }
}

/// The application's health from its resources' (each with its own health, when it has one).
#[must_use]
pub fn of_application(resources: &[(&ManagedResource, Option<&Health>)]) -> Health {
    of_application_in(None, resources)
}

/// [`of_application`] for the Application `app`, whose own object among its resources (an
/// Application that manages itself) does not count (controller/appcontroller.go,
/// `isSelfReferencedApp`).
///
/// The Application's health carries no message: `AppHealthStatus.Message` is deprecated and
/// unused in v3 (pkg/apis/application/v1alpha1/types.go).
#[must_use]
pub fn of_application_in(
    app: Option<&Value>,
    resources: &[(&ManagedResource, Option<&Health>)],
) -> Health {
    // controller/health.go, setApplicationHealth.
    let mut status = HealthStatus::Healthy;
    let mut contains_resources = false;
    let mut contains_live = false;
    for (res, health) in resources {
        if !counts(res) {
            continue;
        }
        contains_resources = true;
        if res.live.is_some() {
            contains_live = true;
        }
        if ignores_health(res) {
            continue;
        }
        let Some(live) = &res.live else {
            // Missing resources do not affect the app's health: OutOfSync says they are missing.
            continue;
        };
        if app.is_some_and(|app| is_self_referenced(app, live)) {
            continue;
        }
        let Some(health) = health else { continue };
        if res.kind == "Application"
            && res.group == "argoproj.io"
            && matches!(health.status, HealthStatus::Missing | HealthStatus::Unknown)
        {
            continue;
        }
        // gitops-engine/pkg/health/health.go, IsWorse: `HealthStatus` is declared in
        // `healthOrder`, from most to least healthy.
        status = status.max(health.status);
    }
    if contains_resources && !contains_live {
        status = status.max(HealthStatus::Missing);
    }
    Health::new(status, "")
}

/// Whether a resource takes part in the application's health at all: not a `Skip` hook in Git,
/// not a hook (or a hook-annotated object without hook types) live.
fn counts(res: &ManagedResource) -> bool {
    if res.target.as_ref().is_some_and(is_skip) {
        return false;
    }
    !res.live
        .as_ref()
        .is_some_and(|l| is_hook(l) || is_ignored(l))
}

fn ignores_health(res: &ManagedResource) -> bool {
    res.live
        .as_ref()
        .is_some_and(|l| l["metadata"]["annotations"][IGNORE_HEALTHCHECK] == "true")
}

/// controller/appcontroller.go, isSelfReferencedApp: same UID, name, namespace, and the
/// object is an `argoproj.io` Application.
fn is_self_referenced(app: &Value, live: &Value) -> bool {
    let (am, lm) = (&app["metadata"], &live["metadata"]);
    str_of(&live["apiVersion"]).split_once('/').map(|(g, _)| g) == Some("argoproj.io")
        && str_of(&live["kind"]) == "Application"
        && str_of(&lm["uid"]) == str_of(&am["uid"])
        && str_of(&lm["name"]) == str_of(&am["name"])
        && str_of(&lm["namespace"]) == str_of(&am["namespace"])
}

/// The values of a comma-separated annotation, trimmed, without empties and repeats
/// (gitops-engine/pkg/sync/resource/annotations.go, GetAnnotationCSVs).
fn annotation_csvs<'a>(obj: &'a Value, key: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in str_of(&obj["metadata"]["annotations"][key]).split(',') {
        let val = item.trim();
        if !val.is_empty() && !out.contains(&val) {
            out.push(val);
        }
    }
    out
}

/// gitops-engine/pkg/sync/hook/hook.go, Types: Argo CD hook types, else Helm's mapped to them.
fn hook_types(obj: &Value) -> Vec<&'static str> {
    // gitops-engine/pkg/sync/common/types.go, NewHookType.
    const ARGO: [&str; 5] = ["PreSync", "Sync", "PostSync", "SyncFail", "Skip"];
    let mut types: Vec<&'static str> = annotation_csvs(obj, "argocd.argoproj.io/hook")
        .into_iter()
        .filter_map(|t| ARGO.iter().copied().find(|a| *a == t))
        .collect();
    if types.is_empty() {
        // gitops-engine/pkg/sync/hook/helm/type.go, NewType and hookTypes.
        types = annotation_csvs(obj, "helm.sh/hook")
            .into_iter()
            .filter_map(|t| match t {
                "pre-install" | "pre-upgrade" => Some("PreSync"),
                "post-upgrade" | "post-install" => Some("PostSync"),
                _ => None,
            })
            .collect();
    }
    types
}

/// gitops-engine/pkg/sync/hook/hook.go, Skip: the only hook type is `Skip`.
fn is_skip(obj: &Value) -> bool {
    let types = hook_types(obj);
    types.contains(&"Skip") && types.len() == 1
}

/// gitops-engine/pkg/sync/hook/hook.go, IsHook.
fn is_hook(obj: &Value) -> bool {
    let annotations = &obj["metadata"]["annotations"];
    if annotations.get("argocd.argoproj.io/hook").is_some() {
        return !is_skip(obj);
    }
    // gitops-engine/pkg/sync/hook/helm/hook.go, IsHook: Helm marks CRDs `crd-install`.
    annotations
        .get("helm.sh/hook")
        .is_some_and(|v| v.as_str().unwrap_or("") != "crd-install")
}

/// gitops-engine/pkg/sync/ignore/ignore.go, Ignore: a hook annotation naming no known type.
fn is_ignored(obj: &Value) -> bool {
    is_hook(obj) && hook_types(obj).is_empty()
}

// ---------------------------------------------------------------------------------------
// gitops-engine built-in checks (gitops-engine/pkg/health/health.go, GetHealthCheckFunc).
// ---------------------------------------------------------------------------------------

fn builtin_check(group: &str, version: &str, kind: &str, obj: &Value) -> Option<Health> {
    let typed = |what: &str, versions: &[&str], check: fn(&Value) -> Health| {
        if versions.contains(&version) {
            check(obj)
        } else {
            // The `default:` branch of each get*Health: `unsupported %s GVK: %s`, the GVK as
            // schema.GroupVersionKind.String prints it.
            Health::new(
                HealthStatus::Unknown,
                format!("unsupported {what} GVK: {group}/{version}, Kind={kind}"),
            )
        }
    };
    Some(match (group, kind) {
        ("apps", "Deployment") => typed("Deployment", &["v1"], deployment),
        ("apps", "StatefulSet") => typed("StatefulSet", &["v1"], statefulset),
        ("apps", "ReplicaSet") => typed("ReplicaSet", &["v1"], replicaset),
        ("apps", "DaemonSet") => typed("DaemonSet", &["v1"], daemonset),
        ("extensions" | "networking.k8s.io", "Ingress") => ingress(obj),
        ("argoproj.io", "Workflow") => argo_workflow(obj),
        ("apiregistration.k8s.io", "APIService") => {
            typed("APIService", &["v1", "v1beta1"], apiservice)
        }
        ("", "Service") => typed("Service", &["v1"], service),
        ("", "PersistentVolumeClaim") => typed("PersistentVolumeClaim", &["v1"], pvc),
        ("", "Pod") => typed("Pod", &["v1"], pod),
        ("batch", "Job") => typed("Job", &["v1"], job),
        ("autoscaling", "HorizontalPodAutoscaler") => match version {
            "v1" => hpa_v1(obj),
            "v2" => hpa_conditions(conditions(&obj["status"])),
            _ => Health::new(
                HealthStatus::Unknown,
                // health_hpa.go, getHPAHealth.
                format!("unsupported HPA GVK: {group}/{version}, Kind={kind}"),
            ),
        },
        _ => return None,
    })
}

/// health_deployment.go, getAppsv1DeploymentHealth.
fn deployment(obj: &Value) -> Health {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    if spec["paused"] == true {
        // health_deployment.go, getAppsv1DeploymentHealth.
        return Health::new(HealthStatus::Suspended, "Deployment is paused");
    }
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            // health_deployment.go, getAppsv1DeploymentHealth.
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let replicas = spec["replicas"].as_i64();
    let updated = int(&status["updatedReplicas"]);
    let current = int(&status["replicas"]);
    let available = int(&status["availableReplicas"]);
    if conditions(status)
        .find(|c| c["type"] == "Progressing")
        .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
    {
        return Health::new(
            HealthStatus::Degraded,
            // health_deployment.go, getAppsv1DeploymentHealth: `Deployment %q exceeded its
            // progress deadline`.
            format!(
                "Deployment {} exceeded its progress deadline",
                go_quote(name(obj))
            ),
        );
    }
    if let Some(replicas) = replicas.filter(|r| updated < *r) {
        return Health::new(
            HealthStatus::Progressing,
            // health_deployment.go, getAppsv1DeploymentHealth.
            format!(
                "Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."
            ),
        );
    }
    if current > updated {
        return Health::new(
            HealthStatus::Progressing,
            // health_deployment.go, getAppsv1DeploymentHealth.
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                current - updated
            ),
        );
    }
    if available < updated {
        return Health::new(
            HealthStatus::Progressing,
            // health_deployment.go, getAppsv1DeploymentHealth.
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        );
    }
    Health::new(HealthStatus::Healthy, "")
}

/// health_statefulset.go, getAppsv1StatefulSetHealth.
fn statefulset(obj: &Value) -> Health {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    let observed = int(&status["observedGeneration"]);
    if observed == 0 || int(&obj["metadata"]["generation"]) > observed {
        return Health::new(
            HealthStatus::Progressing,
            // health_statefulset.go, getAppsv1StatefulSetHealth.
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let replicas = spec["replicas"].as_i64();
    let ready = int(&status["readyReplicas"]);
    let updated = int(&status["updatedReplicas"]);
    if let Some(replicas) = replicas.filter(|r| ready < *r) {
        return Health::new(
            HealthStatus::Progressing,
            // health_statefulset.go, getAppsv1StatefulSetHealth.
            format!("Waiting for {} pods to be ready...", replicas - ready),
        );
    }
    let strategy = &spec["updateStrategy"];
    let rolling = &strategy["rollingUpdate"];
    if strategy["type"] == "RollingUpdate" && rolling.is_object() {
        if let (Some(replicas), Some(partition)) = (replicas, rolling["partition"].as_i64())
            && updated < replicas - partition
        {
            return Health::new(
                HealthStatus::Progressing,
                // health_statefulset.go, getAppsv1StatefulSetHealth.
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                ),
            );
        }
        return Health::new(
            HealthStatus::Healthy,
            // health_statefulset.go, getAppsv1StatefulSetHealth.
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy["type"] == "OnDelete" {
        return Health::new(
            HealthStatus::Healthy,
            // health_statefulset.go, getAppsv1StatefulSetHealth.
            format!("statefulset has {ready} ready pods"),
        );
    }
    let update_revision = str_of(&status["updateRevision"]);
    let current_revision = str_of(&status["currentRevision"]);
    if update_revision != current_revision {
        return Health::new(
            HealthStatus::Progressing,
            // health_statefulset.go, getAppsv1StatefulSetHealth.
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
            ),
        );
    }
    Health::new(
        HealthStatus::Healthy,
        // health_statefulset.go, getAppsv1StatefulSetHealth.
        format!(
            "statefulset rolling update complete {} pods at revision {current_revision}...",
            int(&status["currentReplicas"])
        ),
    )
}

/// health_daemonset.go, getAppsv1DaemonSetHealth.
fn daemonset(obj: &Value) -> Health {
    let status = &obj["status"];
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            // health_daemonset.go, getAppsv1DaemonSetHealth.
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let updated = int(&status["updatedNumberScheduled"]);
    let desired = int(&status["desiredNumberScheduled"]);
    let available = int(&status["numberAvailable"]);
    if obj["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return Health::new(
            HealthStatus::Healthy,
            // health_daemonset.go, getAppsv1DaemonSetHealth.
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return Health::new(
            HealthStatus::Progressing,
            // health_daemonset.go, getAppsv1DaemonSetHealth.
            format!(
                "Waiting for daemon set {} rollout to finish: {updated} out of {desired} new pods have been updated...",
                go_quote(name(obj))
            ),
        );
    }
    if available < desired {
        return Health::new(
            HealthStatus::Progressing,
            // health_daemonset.go, getAppsv1DaemonSetHealth.
            format!(
                "Waiting for daemon set {} rollout to finish: {available} of {desired} updated pods are available...",
                go_quote(name(obj))
            ),
        );
    }
    Health::new(HealthStatus::Healthy, "")
}

/// health_replicaset.go, getAppsv1ReplicaSetHealth.
fn replicaset(obj: &Value) -> Health {
    let status = &obj["status"];
    if int(&obj["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Health::new(
            HealthStatus::Progressing,
            // health_replicaset.go, getAppsv1ReplicaSetHealth.
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(failure) = conditions(status).find(|c| c["type"] == "ReplicaFailure")
        && failure["status"] == "True"
    {
        // health_replicaset.go, getAppsv1ReplicaSetHealth: the condition's message.
        return Health::new(HealthStatus::Degraded, str_of(&failure["message"]));
    }
    let available = int(&status["availableReplicas"]);
    if let Some(replicas) = obj["spec"]["replicas"].as_i64().filter(|r| available < *r) {
        return Health::new(
            HealthStatus::Progressing,
            // health_replicaset.go, getAppsv1ReplicaSetHealth.
            format!(
                "Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."
            ),
        );
    }
    Health::new(HealthStatus::Healthy, "")
}

/// health_pod.go, getCorev1PodHealth.
fn pod(obj: &Value) -> Health {
    let status = &obj["status"];
    let restart_policy = str_of(&obj["spec"]["restartPolicy"]);
    let containers = || array(&status["containerStatuses"]);
    // Only for pods restarted forever: a hook pod (OnFailure, Never) waiting on an image must
    // not fail its hook early (health_pod.go).
    if restart_policy == "Always" {
        let messages: Vec<&str> = containers()
            .map(|c| &c["state"]["waiting"])
            .filter(|w| w.is_object())
            .filter(|w| {
                let reason = str_of(&w["reason"]);
                reason.starts_with("Err")
                    || reason.ends_with("Error")
                    || reason.ends_with("BackOff")
            })
            .map(|w| str_of(&w["message"]))
            .collect();
        if !messages.is_empty() {
            // health_pod.go, getCorev1PodHealth: the waiting containers' messages.
            return Health::new(HealthStatus::Degraded, messages.join(", "));
        }
    }
    let message = str_of(&status["message"]);
    match str_of(&status["phase"]) {
        // health_pod.go, getCorev1PodHealth: the pod's own message in each case.
        "Pending" => Health::new(HealthStatus::Progressing, message),
        "Succeeded" => Health::new(HealthStatus::Healthy, message),
        "Failed" => {
            if !message.is_empty() {
                return Health::new(HealthStatus::Degraded, message);
            }
            let failure = array(&status["initContainerStatuses"])
                .chain(containers())
                .map(pod_fail_message)
                .find(|m| !m.is_empty())
                .unwrap_or_default();
            Health::new(HealthStatus::Degraded, failure)
        }
        "Running" => match restart_policy {
            "Always" => {
                let ready = conditions(status).find(|c| c["type"] == "Ready");
                if ready.is_some_and(|c| c["status"] == "True") {
                    Health::new(HealthStatus::Healthy, message)
                } else if containers().any(|c| c["lastState"]["terminated"].is_object()) {
                    Health::new(HealthStatus::Degraded, message)
                } else {
                    Health::new(HealthStatus::Progressing, message)
                }
            }
            // Pods of finite life are typically hooks: Progressing rather than Healthy.
            "OnFailure" | "Never" => Health::new(HealthStatus::Progressing, message),
            _ => Health::new(HealthStatus::Unknown, message),
        },
        _ => Health::new(HealthStatus::Unknown, message),
    }
}

/// health_pod.go, getFailMessage.
fn pod_fail_message(ctr: &Value) -> String {
    let terminated = &ctr["state"]["terminated"];
    if !terminated.is_object() {
        return String::new();
    }
    let message = str_of(&terminated["message"]);
    if !message.is_empty() {
        return message.to_owned();
    }
    if terminated["reason"] == "OOMKilled" {
        return "OOMKilled".to_owned();
    }
    let code = int(&terminated["exitCode"]);
    if code != 0 {
        // health_pod.go, getFailMessage: `container %q failed with exit code %d`.
        return format!(
            "container {} failed with exit code {code}",
            go_quote(str_of(&ctr["name"]))
        );
    }
    String::new()
}

/// health_pvc.go, getCorev1PVCHealth: no message.
fn pvc(obj: &Value) -> Health {
    let status = match str_of(&obj["status"]["phase"]) {
        "Lost" => HealthStatus::Degraded,
        "Pending" => HealthStatus::Progressing,
        "Bound" => HealthStatus::Healthy,
        _ => HealthStatus::Unknown,
    };
    Health::new(status, "")
}

/// health_service.go, getCorev1ServiceHealth: a load balancer without an ingress point is on
/// its way; no message.
fn service(obj: &Value) -> Health {
    if obj["spec"]["type"] == "LoadBalancer"
        && array(&obj["status"]["loadBalancer"]["ingress"])
            .next()
            .is_none()
    {
        return Health::new(HealthStatus::Progressing, "");
    }
    Health::new(HealthStatus::Healthy, "")
}

/// health_ingress.go, getIngressHealth: no message.
fn ingress(obj: &Value) -> Health {
    if array(&obj["status"]["loadBalancer"]["ingress"])
        .next()
        .is_some()
    {
        Health::new(HealthStatus::Healthy, "")
    } else {
        Health::new(HealthStatus::Progressing, "")
    }
}

/// health_job.go, getBatchv1JobHealth. The last condition of each type wins, as in the loop
/// there.
fn job(obj: &Value) -> Health {
    let (mut failed, mut complete, mut suspended) = (false, false, false);
    let (mut fail_message, mut message) = ("", "");
    for c in conditions(&obj["status"]) {
        match str_of(&c["type"]) {
            "Failed" => {
                failed = true;
                complete = true;
                fail_message = str_of(&c["message"]);
            }
            "Complete" => {
                complete = true;
                message = str_of(&c["message"]);
            }
            "Suspended" => {
                complete = true;
                message = str_of(&c["message"]);
                if c["status"] == "True" {
                    suspended = true;
                }
            }
            _ => {}
        }
    }
    // health_job.go, getBatchv1JobHealth: the conditions' messages (a suspended Job shows
    // the failure message, as there).
    if !complete {
        Health::new(HealthStatus::Progressing, message)
    } else if failed {
        Health::new(HealthStatus::Degraded, fail_message)
    } else if suspended {
        Health::new(HealthStatus::Suspended, fail_message)
    } else {
        Health::new(HealthStatus::Healthy, message)
    }
}

/// health_hpa.go, getAutoScalingV1HPAHealth: the conditions ride in an annotation.
fn hpa_v1(obj: &Value) -> Health {
    let Some(annotation) = obj["metadata"]["annotations"]
        .get("autoscaling.alpha.kubernetes.io/conditions")
        .and_then(Value::as_str)
    else {
        return hpa_progressing();
    };
    match serde_json::from_str::<Option<Vec<serde_json::Map<String, Value>>>>(annotation) {
        Ok(conditions) => {
            // encoding/json matches field names case-insensitively.
            let conditions: Vec<Value> = conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    c.into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v))
                        .collect()
                })
                .collect();
            hpa_conditions(conditions.iter())
        }
        Err(err) => Health::new(
            HealthStatus::Unknown,
            // health_hpa.go, getAutoScalingV1HPAHealth: `failed to convert conditions
            // annotation to typed: %v`; the tail is serde_json's error, not encoding/json's.
            format!("failed to convert conditions annotation to typed: {err}"),
        ),
    }
}

/// health_hpa.go, progressingStatus.
fn hpa_progressing() -> Health {
    Health::new(HealthStatus::Progressing, "Waiting to Autoscale")
}

/// health_hpa.go, checkConditions, isDegraded, isHealthy.
fn hpa_conditions<'a>(conditions: impl Iterator<Item = &'a Value> + Clone) -> Health {
    const DEGRADED: [(&str, &str); 8] = [
        ("AbleToScale", "FailedGetScale"),
        ("AbleToScale", "FailedUpdateScale"),
        ("ScalingActive", "FailedGetResourceMetric"),
        ("ScalingActive", "FailedGetObjectMetric"),
        ("ScalingActive", "FailedGetPodsMetric"),
        ("ScalingActive", "FailedGetExternalMetric"),
        ("ScalingActive", "FailedComputeMetricsReplicas"),
        ("ScalingActive", "InvalidSelector"),
    ];
    if let Some(c) = conditions.clone().find(|c| {
        DEGRADED
            .iter()
            .any(|(t, r)| c["type"] == *t && c["reason"] == *r)
    }) {
        return Health::new(HealthStatus::Degraded, str_of(&c["message"]));
    }
    if let Some(c) = conditions.into_iter().find(|c| {
        matches!(str_of(&c["type"]), "AbleToScale" | "ScalingLimited") && c["status"] == "True"
    }) {
        return Health::new(HealthStatus::Healthy, str_of(&c["message"]));
    }
    hpa_progressing()
}

/// health_apiservice.go, getApiregistrationv1APIServiceHealth (v1beta1 alike).
fn apiservice(obj: &Value) -> Health {
    if let Some(c) = conditions(&obj["status"]).find(|c| c["type"] == "Available") {
        let status = if c["status"] == "True" {
            HealthStatus::Healthy
        } else {
            HealthStatus::Progressing
        };
        // health_apiservice.go: `%s: %s`, reason and message.
        return Health::new(
            status,
            format!("{}: {}", str_of(&c["reason"]), str_of(&c["message"])),
        );
    }
    // health_apiservice.go, getApiregistrationv1APIServiceHealth.
    Health::new(HealthStatus::Progressing, "Waiting to be processed")
}

/// health_argo.go, getArgoWorkflowHealth: the workflow's own message.
fn argo_workflow(obj: &Value) -> Health {
    let message = str_of(&obj["status"]["message"]);
    let status = match str_of(&obj["status"]["phase"]) {
        "" | "Pending" | "Running" => HealthStatus::Progressing,
        "Succeeded" => HealthStatus::Healthy,
        "Failed" | "Error" => HealthStatus::Degraded,
        _ => HealthStatus::Unknown,
    };
    Health::new(status, message)
}

// ---------------------------------------------------------------------------------------
// Built-in Lua checks (resource_customizations/<group>/<kind>/health.lua), reimplemented.
// A Lua `nil` message reads as an empty one; `x or "..."` falls back only on nil (absent or
// null), as Lua's `or` does, so an empty string stays empty.
// ---------------------------------------------------------------------------------------

fn lua_check(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    Some(match (group, kind) {
        ("external-secrets.io", "ExternalSecret") => {
            ready_condition(obj, "Waiting for ExternalSecret")
        }
        ("external-secrets.io", "SecretStore") => ready_condition(obj, "Waiting for SecretStore"),
        ("external-secrets.io", "ClusterSecretStore") => {
            ready_condition(obj, "Waiting for ClusterSecretStore")
        }
        ("gateway.networking.k8s.io", "Gateway") => gateway(obj),
        ("gateway.networking.k8s.io", "GatewayClass") => gateway_class(obj),
        ("gateway.networking.k8s.io", "HTTPRoute") => http_route(obj),
        ("batch", "CronJob") => cronjob(obj),
        ("cert-manager.io", "Certificate") => certificate(obj),
        ("policy", "PodDisruptionBudget") => pod_disruption_budget(obj),
        ("k8s.keycloak.org", "Keycloak") => keycloak(obj),
        _ => return None,
    })
}

/// resource_customizations/external-secrets.io/{ExternalSecret,SecretStore,ClusterSecretStore}/
/// health.lua: the first `Ready` condition that is `True` or `False` decides, with its message.
fn ready_condition(obj: &Value, waiting: &str) -> Health {
    for c in conditions(&obj["status"]) {
        if c["type"] == "Ready" && c["status"] == "False" {
            return Health::new(HealthStatus::Degraded, str_of(&c["message"]));
        }
        if c["type"] == "Ready" && c["status"] == "True" {
            return Health::new(HealthStatus::Healthy, str_of(&c["message"]));
        }
    }
    // The `Waiting for <Kind>` of each script.
    Health::new(HealthStatus::Progressing, waiting)
}

/// `checkConditions` of the Gateway API scripts: the message of the first condition of that
/// type that is `False`, or `Failed condition: <type>` when it has none.
fn failed_condition(conditions: &Value, kind: &str) -> Option<String> {
    array(conditions)
        .find(|c| c["type"] == kind && c["status"] == "False")
        .map(|c| lua_or(&c["message"], &format!("Failed condition: {kind}")))
}

/// The first `Programmed` condition that is not `True`: its message, or `fallback`.
fn not_programmed(conditions: &Value, fallback: &str) -> Option<String> {
    array(conditions)
        .find(|c| c["type"] == "Programmed" && c["status"] != "True")
        .map(|c| lua_or(&c["message"], fallback))
}

/// resource_customizations/gateway.networking.k8s.io/Gateway/health.lua.
fn gateway(obj: &Value) -> Health {
    let status = &obj["status"];
    if !status.is_null() {
        let conds = &status["conditions"];
        if !conds.is_null() {
            for kind in ["ResolvedRefs", "Accepted"] {
                if let Some(m) = failed_condition(conds, kind) {
                    return Health::new(HealthStatus::Degraded, m);
                }
            }
            if let Some(m) = not_programmed(conds, "Gateway is still being programmed") {
                return Health::new(HealthStatus::Progressing, m);
            }
        }
        for listener in array(&status["listeners"]) {
            let lc = &listener["conditions"];
            if lc.is_null() {
                continue;
            }
            for kind in ["ResolvedRefs", "Accepted"] {
                if let Some(m) = failed_condition(lc, kind) {
                    return Health::new(HealthStatus::Degraded, format!("Listener: {m}"));
                }
            }
            if let Some(m) = not_programmed(lc, "Listener is still being programmed") {
                return Health::new(HealthStatus::Progressing, format!("Listener: {m}"));
            }
        }
        if !conds.is_null() || array(&status["listeners"]).next().is_some() {
            return Health::new(HealthStatus::Healthy, "Gateway is healthy");
        }
    }
    Health::new(HealthStatus::Progressing, "Waiting for Gateway status")
}

/// resource_customizations/gateway.networking.k8s.io/GatewayClass/health.lua: the first
/// `Accepted` condition of the current generation decides.
fn gateway_class(obj: &Value) -> Health {
    let generation = &obj["metadata"]["generation"];
    for c in conditions(&obj["status"]) {
        if c["type"] != "Accepted" {
            continue;
        }
        let observed = &c["observedGeneration"];
        if !generation.is_null() && !observed.is_null() && !same_number(observed, generation) {
            continue;
        }
        return match str_of(&c["status"]) {
            "True" => Health::new(
                HealthStatus::Healthy,
                lua_or(&c["message"], "GatewayClass is accepted"),
            ),
            "False" => Health::new(
                HealthStatus::Degraded,
                lua_or(&c["message"], "GatewayClass is not accepted"),
            ),
            _ => Health::new(
                HealthStatus::Progressing,
                lua_or(&c["message"], "Waiting for GatewayClass status"),
            ),
        };
    }
    Health::new(HealthStatus::Progressing, "Waiting for GatewayClass status")
}

/// resource_customizations/gateway.networking.k8s.io/HTTPRoute/health.lua.
fn http_route(obj: &Value) -> Health {
    // isParentGenerationObserved: every condition that states an observedGeneration states
    // the current one.
    let observed = |parent: &Value| {
        let generation = &obj["metadata"]["generation"];
        if generation.is_null() {
            return true;
        }
        let mut conds = array(&parent["conditions"]).peekable();
        conds.peek().is_some()
            && conds.all(|c| {
                c["observedGeneration"].is_null()
                    || same_number(&c["observedGeneration"], generation)
            })
    };
    let parents = &obj["status"]["parents"];
    for parent in array(parents) {
        let conds = &parent["conditions"];
        if conds.is_null() || !observed(parent) {
            continue;
        }
        let name = str_of(&parent["parentRef"]["name"]);
        for kind in ["ResolvedRefs", "Accepted"] {
            if let Some(m) = failed_condition(conds, kind) {
                return Health::new(HealthStatus::Degraded, format!("Parent {name}: {m}"));
            }
        }
        if let Some(m) = not_programmed(conds, "Route is still being programmed") {
            return Health::new(HealthStatus::Progressing, format!("Parent {name}: {m}"));
        }
    }
    if array(parents).any(|p| array(&p["conditions"]).next().is_some() && observed(p)) {
        return Health::new(HealthStatus::Healthy, "HTTPRoute is healthy");
    }
    Health::new(HealthStatus::Progressing, "Waiting for HTTPRoute status")
}

/// resource_customizations/batch/CronJob/health.lua. Times compare as strings, as there.
fn cronjob(obj: &Value) -> Health {
    if obj["spec"]["suspend"] == true {
        // Healthy rather than Suspended until argo-cd#24428 is resolved (the script's note).
        return Health::new(HealthStatus::Healthy, "CronJob is Suspended");
    }
    let status = &obj["status"];
    if status.is_null() {
        return Health::new(HealthStatus::Progressing, "Waiting for CronJob");
    }
    let Some(scheduled) = status["lastScheduleTime"].as_str() else {
        return Health::new(HealthStatus::Healthy, "CronJob has not been scheduled yet");
    };
    let Some(succeeded) = status["lastSuccessfulTime"].as_str() else {
        return Health::new(
            HealthStatus::Healthy,
            "The CronJob never completed successfully. It may not be healthy",
        );
    };
    if array(&status["active"]).next().is_some() {
        return Health::new(
            HealthStatus::Healthy,
            "The job is running. Its last execution may not have been successful",
        );
    }
    if succeeded < scheduled {
        return Health::new(
            HealthStatus::Degraded,
            "CronJob has not completed its last execution successfully",
        );
    }
    Health::new(
        HealthStatus::Healthy,
        "CronJob has completed its last execution successfully",
    )
}

/// resource_customizations/cert-manager.io/Certificate/health.lua: `Issuing` first, then
/// `Ready`.
fn certificate(obj: &Value) -> Health {
    if let Some(c) =
        conditions(&obj["status"]).find(|c| c["type"] == "Issuing" && c["status"] == "True")
    {
        return Health::new(HealthStatus::Progressing, str_of(&c["message"]));
    }
    for c in conditions(&obj["status"]) {
        if c["type"] == "Ready" && c["status"] == "False" {
            return Health::new(HealthStatus::Degraded, str_of(&c["message"]));
        }
        if c["type"] == "Ready" && c["status"] == "True" {
            return Health::new(HealthStatus::Healthy, str_of(&c["message"]));
        }
    }
    Health::new(HealthStatus::Progressing, "Waiting for certificate")
}

/// resource_customizations/policy/PodDisruptionBudget/health.lua: a `False` condition other
/// than `InsufficientPods` degrades; otherwise the last condition's reason is the message.
fn pod_disruption_budget(obj: &Value) -> Health {
    let mut health = Health::new(HealthStatus::Progressing, "Waiting for status");
    for c in conditions(&obj["status"]) {
        let reason = str_of(&c["reason"]);
        let message = format!("PodDisruptionBudget has {reason}");
        if c["status"] == "False" && reason != "InsufficientPods" {
            return Health::new(HealthStatus::Degraded, message);
        }
        health = Health::new(HealthStatus::Healthy, message);
    }
    health
}

/// resource_customizations/k8s.keycloak.org/Keycloak/health.lua: conditions from the oldest
/// transition to the newest (those without one last); the first `Ready` or `HasErrors` that
/// is `True` decides. The sort here is stable; Lua's `table.sort` is not.
fn keycloak(obj: &Value) -> Health {
    let conds = &obj["status"]["conditions"];
    if conds.is_null() {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for Keycloak status conditions to exist",
        );
    }
    let mut sorted: Vec<&Value> = array(conds).collect();
    sorted.sort_by(|a, b| {
        match (
            a["lastTransitionTime"].as_str(),
            b["lastTransitionTime"].as_str(),
        ) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });
    for c in sorted {
        if c["type"] == "Ready" && c["status"] == "True" {
            return Health::new(HealthStatus::Healthy, "");
        }
        if c["type"] == "HasErrors" && c["status"] == "True" {
            return Health::new(
                HealthStatus::Degraded,
                format!("Has Errors: {}", str_of(&c["message"])),
            );
        }
    }
    Health::new(HealthStatus::Progressing, "")
}

// ---------------------------------------------------------------------------------------
// Reading the object.
// ---------------------------------------------------------------------------------------

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn name(obj: &Value) -> &str {
    str_of(&obj["metadata"]["name"])
}

fn array(v: &Value) -> std::slice::Iter<'_, Value> {
    v.as_array().map_or([].iter(), |a| a.iter())
}

fn conditions(status: &Value) -> std::slice::Iter<'_, Value> {
    array(&status["conditions"])
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    array(v).filter_map(Value::as_str)
}

/// Lua's `value or fallback`: the fallback only for nil (absent or null).
fn lua_or(v: &Value, fallback: &str) -> String {
    match v {
        Value::Null => fallback.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lua compares numbers by value (`1 == 1.0`).
fn same_number(a: &Value, b: &Value) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixtures copied from Argo CD v3.5.1 (see testdata/health/README.md).
    macro_rules! fixture {
        ($path:literal) => {
            serde_yaml::from_str::<Value>(include_str!(concat!("testdata/health/", $path)))
                .expect($path)
        };
    }

    fn check(obj: &Value, status: HealthStatus, message: &str) {
        assert_eq!(of(obj), Some(Health::new(status, message)), "{obj}");
    }

    #[test]
    fn apiservice_fixtures() {
        check(
            &fixture!("gitops-engine/apiservice-v1-false.yaml"),
            HealthStatus::Progressing,
            "MissingEndpoints: endpoints for service/cert-manager-webhook in \"external-dns\" have no addresses",
        );
        check(
            &fixture!("gitops-engine/apiservice-v1-true.yaml"),
            HealthStatus::Healthy,
            "Passed: all checks passed",
        );
        check(
            &fixture!("gitops-engine/apiservice-v1beta1-false.yaml"),
            HealthStatus::Progressing,
            "MissingEndpoints: endpoints for service/cert-manager-webhook in \"external-dns\" have no addresses",
        );
        check(
            &fixture!("gitops-engine/apiservice-v1beta1-true.yaml"),
            HealthStatus::Healthy,
            "Passed: all checks passed",
        );
    }

    #[test]
    fn applications_have_no_builtin_check() {
        assert_eq!(
            of(&fixture!("gitops-engine/application-degraded.yaml")),
            None
        );
        assert_eq!(
            of(&fixture!("gitops-engine/application-healthy.yaml")),
            None
        );
    }

    #[test]
    fn daemonset_fixtures() {
        check(
            &fixture!("gitops-engine/daemonset-ondelete.yaml"),
            HealthStatus::Healthy,
            "daemon set 0 out of 1 new pods have been updated",
        );
    }

    #[test]
    fn deployment_fixtures() {
        check(
            &fixture!("gitops-engine/deployment-degraded.yaml"),
            HealthStatus::Degraded,
            "Deployment \"guestbook-ui\" exceeded its progress deadline",
        );
        check(
            &fixture!("gitops-engine/deployment-progressing.yaml"),
            HealthStatus::Progressing,
            "Waiting for rollout to finish: 1 old replicas are pending termination...",
        );
        check(
            &fixture!("gitops-engine/deployment-suspended.yaml"),
            HealthStatus::Suspended,
            "Deployment is paused",
        );
        check(
            &fixture!("gitops-engine/nginx.yaml"),
            HealthStatus::Healthy,
            "",
        );
    }

    #[test]
    fn hpa_fixtures() {
        check(
            &fixture!("gitops-engine/hpa-v1-degraded-failedgetobjectmetric.yaml"),
            HealthStatus::Degraded,
            "the HPA was unable to compute the replica count: unable to get metric tomcat_sessions_active_current_sessions: Service on namespace sample-service/unable to fetch metrics from custom metrics API: the server could not find the metric tomcat_sessions_active_current_sessions for services",
        );
        check(
            &fixture!("gitops-engine/hpa-v1-degraded.yaml"),
            HealthStatus::Degraded,
            "the HPA controller was unable to get the target's current scale",
        );
        check(
            &fixture!("gitops-engine/hpa-v1-healthy-toofew.yaml"),
            HealthStatus::Healthy,
            "recommended size matches current size",
        );
        check(
            &fixture!("gitops-engine/hpa-v1-healthy.yaml"),
            HealthStatus::Healthy,
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        );
        check(
            &fixture!("gitops-engine/hpa-v1-progressing-with-no-annotations.yaml"),
            HealthStatus::Progressing,
            "Waiting to Autoscale",
        );
        check(
            &fixture!("gitops-engine/hpa-v1-progressing.yaml"),
            HealthStatus::Progressing,
            "Waiting to Autoscale",
        );
        check(
            &fixture!("gitops-engine/hpa-v2-degraded.yaml"),
            HealthStatus::Degraded,
            "the HPA controller was unable to get the target's current scale: deployments/scale.apps \"sandbox-test-app-8\" not found",
        );
        check(
            &fixture!("gitops-engine/hpa-v2-healthy.yaml"),
            HealthStatus::Healthy,
            "recommended size matches current size",
        );
        check(
            &fixture!("gitops-engine/hpa-v2-progressing.yaml"),
            HealthStatus::Progressing,
            "Waiting to Autoscale",
        );
    }

    #[test]
    fn ingress_fixtures() {
        check(
            &fixture!("gitops-engine/ingress-nonemptylist.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("gitops-engine/ingress-unassigned.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/ingress.yaml"),
            HealthStatus::Healthy,
            "",
        );
    }

    #[test]
    fn job_fixtures() {
        check(
            &fixture!("gitops-engine/job-failed.yaml"),
            HealthStatus::Degraded,
            "Job has reached the specified backoff limit",
        );
        check(
            &fixture!("gitops-engine/job-running.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/job-succeeded.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("gitops-engine/job-suspended.yaml"),
            HealthStatus::Suspended,
            "",
        );
    }

    #[test]
    fn custom_resources_without_a_check_have_no_health() {
        assert_eq!(of(&fixture!("gitops-engine/knative-service.yaml")), None);
    }

    #[test]
    fn pod_fixtures() {
        check(
            &fixture!("gitops-engine/pod-crashloop.yaml"),
            HealthStatus::Degraded,
            "Back-off 40s restarting failed container=main pod=my-pod_argocd(63674389-f613-11e8-a057-fe5f49266390)",
        );
        check(
            &fixture!("gitops-engine/pod-deletion.yaml"),
            HealthStatus::Progressing,
            "Pending deletion",
        );
        check(
            &fixture!("gitops-engine/pod-error.yaml"),
            HealthStatus::Degraded,
            "",
        );
        check(
            &fixture!("gitops-engine/pod-failed.yaml"),
            HealthStatus::Degraded,
            "container \"main\" failed with exit code 1",
        );
        check(
            &fixture!("gitops-engine/pod-imagepullbackoff.yaml"),
            HealthStatus::Degraded,
            "Back-off pulling image \"gcr.io/heptio-images/ks-guestbook-demo:0.3\"",
        );
        check(
            &fixture!("gitops-engine/pod-pending.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/pod-running-not-ready.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/pod-running-restart-always.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("gitops-engine/pod-running-restart-never.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/pod-running-restart-onfailure.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/pod-succeeded.yaml"),
            HealthStatus::Healthy,
            "",
        );
    }

    #[test]
    fn pvc_fixtures() {
        check(
            &fixture!("gitops-engine/pvc-bound.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("gitops-engine/pvc-pending.yaml"),
            HealthStatus::Progressing,
            "",
        );
    }

    #[test]
    fn statefulset_fixtures() {
        check(
            &fixture!("gitops-engine/statefulset-ondelete.yaml"),
            HealthStatus::Healthy,
            "statefulset has 1 ready pods",
        );
        check(
            &fixture!("gitops-engine/statefulset.yaml"),
            HealthStatus::Healthy,
            "statefulset has 1 ready pods",
        );
    }

    #[test]
    fn service_fixtures() {
        check(
            &fixture!("gitops-engine/svc-clusterip.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("gitops-engine/svc-loadbalancer-nonemptylist.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("gitops-engine/svc-loadbalancer-unassigned.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("gitops-engine/svc-loadbalancer.yaml"),
            HealthStatus::Healthy,
            "",
        );
    }

    #[test]
    fn cron_job_fixtures() {
        check(
            &fixture!("lua/batch/CronJob/active.yaml"),
            HealthStatus::Healthy,
            "The job is running. Its last execution may not have been successful",
        );
        check(
            &fixture!("lua/batch/CronJob/degraded.yaml"),
            HealthStatus::Degraded,
            "CronJob has not completed its last execution successfully",
        );
        check(
            &fixture!("lua/batch/CronJob/healthy.yaml"),
            HealthStatus::Healthy,
            "CronJob has completed its last execution successfully",
        );
        check(
            &fixture!("lua/batch/CronJob/never-scheduled.yaml"),
            HealthStatus::Healthy,
            "CronJob has not been scheduled yet",
        );
        check(
            &fixture!("lua/batch/CronJob/never-succeeded.yaml"),
            HealthStatus::Healthy,
            "The CronJob never completed successfully. It may not be healthy",
        );
        check(
            &fixture!("lua/batch/CronJob/suspended.yaml"),
            HealthStatus::Healthy,
            "CronJob is Suspended",
        );
    }

    #[test]
    fn certificate_fixtures() {
        check(
            &fixture!("lua/cert-manager.io/Certificate/degraded_configError.yaml"),
            HealthStatus::Degraded,
            "Resource validation failed: spec.acme.config: Required value: no ACME solver configuration specified for domain \"cd.apps.argoproj.io\"",
        );
        check(
            &fixture!("lua/cert-manager.io/Certificate/healthy_issued.yaml"),
            HealthStatus::Healthy,
            "Certificate issued successfully",
        );
        check(
            &fixture!("lua/cert-manager.io/Certificate/healthy_renewed.yaml"),
            HealthStatus::Healthy,
            "Certificate renewed successfully",
        );
        check(
            &fixture!("lua/cert-manager.io/Certificate/progressing_issuing.yaml"),
            HealthStatus::Progressing,
            "Issuing certificate as Secret does not exist",
        );
        check(
            &fixture!("lua/cert-manager.io/Certificate/progressing_issuing_last.yaml"),
            HealthStatus::Progressing,
            "Issuing certificate as Secret does not exist",
        );
        check(
            &fixture!("lua/cert-manager.io/Certificate/progressing_noStatus.yaml"),
            HealthStatus::Progressing,
            "Waiting for certificate",
        );
    }

    #[test]
    fn cluster_secret_store_fixtures() {
        check(
            &fixture!("lua/external-secrets.io/ClusterSecretStore/degraded.yaml"),
            HealthStatus::Degraded,
            "unable to validate store",
        );
        check(
            &fixture!("lua/external-secrets.io/ClusterSecretStore/healthy.yaml"),
            HealthStatus::Healthy,
            "store validated",
        );
    }

    #[test]
    fn external_secret_fixtures() {
        check(
            &fixture!("lua/external-secrets.io/ExternalSecret/degraded.yaml"),
            HealthStatus::Degraded,
            "could not get secret data from provider: key \"secret/sa/example\" from ExternalSecret \"test-degraded\"",
        );
        check(
            &fixture!("lua/external-secrets.io/ExternalSecret/healthy.yaml"),
            HealthStatus::Healthy,
            "Secret was synced",
        );
        check(
            &fixture!("lua/external-secrets.io/ExternalSecret/progressing.yaml"),
            HealthStatus::Progressing,
            "Waiting for ExternalSecret",
        );
    }

    #[test]
    fn secret_store_fixtures() {
        check(
            &fixture!("lua/external-secrets.io/SecretStore/degraded.yaml"),
            HealthStatus::Degraded,
            "unable to validate store",
        );
        check(
            &fixture!("lua/external-secrets.io/SecretStore/healthy.yaml"),
            HealthStatus::Healthy,
            "store validated",
        );
    }

    #[test]
    fn gateway_fixtures() {
        check(
            &fixture!("lua/gateway.networking.k8s.io/Gateway/degraded_accepted.yaml"),
            HealthStatus::Degraded,
            "Gateway has not been accepted by any controller",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/Gateway/degraded_resolved_refs.yaml"),
            HealthStatus::Degraded,
            "Failed to resolve references",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/Gateway/healthy.yaml"),
            HealthStatus::Healthy,
            "Gateway is healthy",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/Gateway/listener_degraded.yaml"),
            HealthStatus::Degraded,
            "Listener: Listener has not been accepted",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/Gateway/progressing.yaml"),
            HealthStatus::Progressing,
            "Gateway is still being programmed",
        );
    }

    #[test]
    fn gateway_class_fixtures() {
        check(
            &fixture!("lua/gateway.networking.k8s.io/GatewayClass/degraded.yaml"),
            HealthStatus::Degraded,
            "GatewayClass has not been accepted by any controller",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/GatewayClass/healthy.yaml"),
            HealthStatus::Healthy,
            "GatewayClass has been accepted",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/GatewayClass/progressing.yaml"),
            HealthStatus::Progressing,
            "Waiting for controller",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/GatewayClass/progressing_no_status.yaml"),
            HealthStatus::Progressing,
            "Waiting for GatewayClass status",
        );
        check(
            &fixture!(
                "lua/gateway.networking.k8s.io/GatewayClass/progressing_stale_generation.yaml"
            ),
            HealthStatus::Progressing,
            "Waiting for GatewayClass status",
        );
    }

    #[test]
    fn http_route_fixtures() {
        check(
            &fixture!("lua/gateway.networking.k8s.io/HTTPRoute/degraded_accepted.yaml"),
            HealthStatus::Degraded,
            "Parent example-gateway: Route has not been accepted due to invalid configuration",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/HTTPRoute/degraded_resolved_refs.yaml"),
            HealthStatus::Degraded,
            "Parent example-gateway: BackendRef service-does-not-exist not found",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/HTTPRoute/healthy.yaml"),
            HealthStatus::Healthy,
            "HTTPRoute is healthy",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/HTTPRoute/healthy_multiple_generations.yaml"),
            HealthStatus::Healthy,
            "HTTPRoute is healthy",
        );
        check(
            &fixture!("lua/gateway.networking.k8s.io/HTTPRoute/progressing.yaml"),
            HealthStatus::Progressing,
            "Parent example-gateway: Route is still being programmed",
        );
    }

    #[test]
    fn keycloak_fixtures() {
        check(
            &fixture!("lua/k8s.keycloak.org/Keycloak/degraded.yaml"),
            HealthStatus::Degraded,
            "Has Errors: Waiting for foo/keycloak-1 due to CrashLoopBackOff: back-off 10s",
        );
        check(
            &fixture!("lua/k8s.keycloak.org/Keycloak/healthy.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("lua/k8s.keycloak.org/Keycloak/nil_last_transition_time.yaml"),
            HealthStatus::Healthy,
            "",
        );
        check(
            &fixture!("lua/k8s.keycloak.org/Keycloak/progressing.yaml"),
            HealthStatus::Progressing,
            "",
        );
        check(
            &fixture!("lua/k8s.keycloak.org/Keycloak/provisioning.yaml"),
            HealthStatus::Progressing,
            "Waiting for Keycloak status conditions to exist",
        );
    }

    #[test]
    fn pod_disruption_budget_fixtures() {
        check(
            &fixture!("lua/policy/PodDisruptionBudget/degraded.yaml"),
            HealthStatus::Degraded,
            "PodDisruptionBudget has SyncFailed",
        );
        check(
            &fixture!("lua/policy/PodDisruptionBudget/healthy.yaml"),
            HealthStatus::Healthy,
            "PodDisruptionBudget has SufficientPods",
        );
        check(
            &fixture!("lua/policy/PodDisruptionBudget/progressing.yaml"),
            HealthStatus::Progressing,
            "Waiting for status",
        );
    }

    /// `obj` with a JSON merge patch applied (RFC 7386).
    fn with(mut obj: Value, patch: &Value) -> Value {
        merge(&mut obj, patch);
        obj
    }

    fn merge(obj: &mut Value, patch: &Value) {
        let Value::Object(fields) = patch else {
            *obj = patch.clone();
            return;
        };
        if !obj.is_object() {
            *obj = serde_json::json!({});
        }
        for (k, v) in fields {
            if v.is_null() {
                obj.as_object_mut().unwrap().remove(k);
            } else {
                merge(
                    obj.as_object_mut()
                        .unwrap()
                        .entry(k.clone())
                        .or_insert(Value::Null),
                    v,
                );
            }
        }
    }

    #[test]
    fn deletion_is_progressing_unless_a_hook_holds_it() {
        let pod = fixture!("gitops-engine/pod-running-restart-always.yaml");
        let deleting = with(
            pod.clone(),
            &serde_json::json!({"metadata": {"deletionTimestamp": "2018-12-03T10:16:04Z"}}),
        );
        check(&deleting, HealthStatus::Progressing, "Pending deletion");
        let hook = with(
            deleting,
            &serde_json::json!({"metadata": {"finalizers": [HOOK_FINALIZER]}}),
        );
        check(&hook, HealthStatus::Healthy, "");
    }

    #[test]
    fn generations_not_yet_observed() {
        let stale =
            serde_json::json!({"metadata": {"generation": 5}, "status": {"observedGeneration": 4}});
        check(
            &with(fixture!("gitops-engine/nginx.yaml"), &stale),
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
        check(
            &with(fixture!("gitops-engine/daemonset-ondelete.yaml"), &stale),
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
        check(
            &with(fixture!("gitops-engine/statefulset.yaml"), &stale),
            HealthStatus::Progressing,
            "Waiting for statefulset spec update to be observed...",
        );
        let rs = serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1}});
        check(
            &rs,
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }

    #[test]
    fn deployment_rollout_steps() {
        let d = |status: Value| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "generation": 1},
                "spec": {"replicas": 3}, "status": status})
        };
        check(
            &d(serde_json::json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1})),
            HealthStatus::Progressing,
            "Waiting for rollout to finish: 1 out of 3 new replicas have been updated...",
        );
        check(
            &d(
                serde_json::json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
            ),
            HealthStatus::Progressing,
            "Waiting for rollout to finish: 2 of 3 updated replicas are available...",
        );
        check(
            &d(
                serde_json::json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
            ),
            HealthStatus::Healthy,
            "",
        );
        let v1beta1 = with(
            d(serde_json::json!({})),
            &serde_json::json!({"apiVersion": "apps/v1beta2"}),
        );
        check(
            &v1beta1,
            HealthStatus::Unknown,
            "unsupported Deployment GVK: apps/v1beta2, Kind=Deployment",
        );
    }

    #[test]
    fn statefulset_and_daemonset_rollouts() {
        let sts = |spec: Value, status: Value| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "generation": 1}, "spec": spec, "status": status})
        };
        let rolling = serde_json::json!({"replicas": 3,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
        check(
            &sts(
                rolling.clone(),
                serde_json::json!({"observedGeneration": 1, "readyReplicas": 2}),
            ),
            HealthStatus::Progressing,
            "Waiting for 1 pods to be ready...",
        );
        check(
            &sts(
                rolling.clone(),
                serde_json::json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1}),
            ),
            HealthStatus::Progressing,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        );
        check(
            &sts(
                rolling,
                serde_json::json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 2}),
            ),
            HealthStatus::Healthy,
            "partitioned roll out complete: 2 new pods have been updated...",
        );
        let plain = serde_json::json!({"replicas": 1, "updateStrategy": {"type": "RollingUpdate"}});
        check(
            &sts(
                plain.clone(),
                serde_json::json!({"observedGeneration": 1, "readyReplicas": 1,
                "updatedReplicas": 1, "currentRevision": "db-a", "updateRevision": "db-b"}),
            ),
            HealthStatus::Progressing,
            "waiting for statefulset rolling update to complete 1 pods at revision db-b...",
        );
        check(
            &sts(
                plain,
                serde_json::json!({"observedGeneration": 1, "readyReplicas": 1,
                "currentReplicas": 1, "currentRevision": "db-b", "updateRevision": "db-b"}),
            ),
            HealthStatus::Healthy,
            "statefulset rolling update complete 1 pods at revision db-b...",
        );
        let ds = |status: Value| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "agent", "generation": 1},
                "spec": {"updateStrategy": {"type": "RollingUpdate"}}, "status": status})
        };
        check(
            &ds(
                serde_json::json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1}),
            ),
            HealthStatus::Progressing,
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 2 new pods have been updated...",
        );
        check(
            &ds(
                serde_json::json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}),
            ),
            HealthStatus::Progressing,
            "Waiting for daemon set \"agent\" rollout to finish: 1 of 2 updated pods are available...",
        );
    }

    #[test]
    fn replicaset_failure_and_availability() {
        let rs = |status: Value| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-1", "generation": 1}, "spec": {"replicas": 2}, "status": status})
        };
        check(
            &rs(
                serde_json::json!({"observedGeneration": 1, "conditions": [{"type": "ReplicaFailure",
                "status": "True", "reason": "FailedCreate", "message": "pods \"web-1-x\" is forbidden: exceeded quota"}]}),
            ),
            HealthStatus::Degraded,
            "pods \"web-1-x\" is forbidden: exceeded quota",
        );
        check(
            &rs(serde_json::json!({"observedGeneration": 1, "availableReplicas": 1})),
            HealthStatus::Progressing,
            "Waiting for rollout to finish: 1 out of 2 new replicas are available...",
        );
        check(
            &rs(serde_json::json!({"observedGeneration": 1, "availableReplicas": 2})),
            HealthStatus::Healthy,
            "",
        );
    }

    #[test]
    fn pod_waiting_reasons_count_only_for_restart_always() {
        let pull = fixture!("gitops-engine/pod-imagepullbackoff.yaml");
        let hook = with(
            pull,
            &serde_json::json!({"spec": {"restartPolicy": "Never"}}),
        );
        // A hook pod stuck on its image is Pending, not Degraded.
        assert_eq!(of(&hook).map(|h| h.status), Some(HealthStatus::Progressing));
        let oom = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "main",
                "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}});
        check(&oom, HealthStatus::Degraded, "OOMKilled");
    }

    #[test]
    fn pvc_lost_and_unknown_phases() {
        let lost = serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"}, "status": {"phase": "Lost"}});
        check(&lost, HealthStatus::Degraded, "");
        let none = with(lost, &serde_json::json!({"status": null}));
        check(&none, HealthStatus::Unknown, "");
    }

    #[test]
    fn argo_workflows() {
        let wf = |status: Value| {
            serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "metadata": {"name": "w"}, "status": status})
        };
        check(
            &wf(serde_json::json!({"phase": "Running", "message": "This node is running"})),
            HealthStatus::Progressing,
            "This node is running",
        );
        check(
            &wf(serde_json::json!({"phase": "Failed", "message": "child failed"})),
            HealthStatus::Degraded,
            "child failed",
        );
        check(&wf(serde_json::json!(null)), HealthStatus::Progressing, "");
    }

    #[test]
    fn kinds_without_a_check_have_no_health() {
        for (api, kind) in [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("apps/v1", "ControllerRevision"),
        ] {
            let obj =
                serde_json::json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x"}});
            assert_eq!(of(&obj), None, "{kind}");
        }
    }

    fn resource(kind: &str, live: Option<Value>, target: Option<Value>) -> ManagedResource {
        let group = if kind == "Application" {
            "argoproj.io"
        } else {
            "apps"
        };
        ManagedResource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: "default".into(),
            name: "x".into(),
            target,
            live,
            hook: false,
            requires_pruning: false,
        }
    }

    fn obj(annotations: Value) -> Value {
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "annotations": annotations}})
    }

    #[test]
    fn application_takes_the_worst_counted_health() {
        let healthy = Health::new(HealthStatus::Healthy, "");
        let progressing = Health::new(HealthStatus::Progressing, "Waiting for rollout to finish");
        let suspended = Health::new(HealthStatus::Suspended, "Deployment is paused");
        let degraded = Health::new(HealthStatus::Degraded, "boom");
        let a = resource(
            "Deployment",
            Some(obj(serde_json::json!({}))),
            Some(obj(serde_json::json!({}))),
        );
        assert_eq!(of_application(&[]), Health::new(HealthStatus::Healthy, ""));
        assert_eq!(
            of_application(&[(&a, Some(&healthy)), (&a, Some(&suspended))]),
            Health::new(HealthStatus::Suspended, "")
        );
        assert_eq!(
            of_application(&[(&a, Some(&suspended)), (&a, Some(&progressing)), (&a, None)]),
            Health::new(HealthStatus::Progressing, "")
        );
        // A hook or an ignored resource does not count, however bad.
        let hook = resource(
            "Deployment",
            Some(obj(
                serde_json::json!({"argocd.argoproj.io/hook": "PreSync"}),
            )),
            None,
        );
        let helm = resource(
            "Deployment",
            Some(obj(serde_json::json!({"helm.sh/hook": "post-install"}))),
            None,
        );
        let ignored = resource(
            "Deployment",
            Some(obj(serde_json::json!({IGNORE_HEALTHCHECK: "true"}))),
            None,
        );
        assert_eq!(
            of_application(&[
                (&a, Some(&healthy)),
                (&hook, Some(&degraded)),
                (&helm, Some(&degraded)),
                (&ignored, Some(&degraded))
            ]),
            Health::new(HealthStatus::Healthy, "")
        );
        assert_eq!(of_resource(&ignored), None);
        assert_eq!(of_resource(&hook), None);
        // A Skip hook is an ordinary resource live.
        let skip = resource(
            "Deployment",
            Some(obj(serde_json::json!({"argocd.argoproj.io/hook": "Skip"}))),
            None,
        );
        assert_eq!(
            of_application(&[(&skip, Some(&degraded))]),
            Health::new(HealthStatus::Degraded, "")
        );
    }

    #[test]
    fn missing_resources_count_only_when_nothing_is_live() {
        let healthy = Health::new(HealthStatus::Healthy, "");
        let suspended = Health::new(HealthStatus::Suspended, "");
        let degraded = Health::new(HealthStatus::Degraded, "");
        let missing = resource("Deployment", None, Some(obj(serde_json::json!({}))));
        assert_eq!(
            of_resource(&missing),
            Some(Health::new(HealthStatus::Missing, ""))
        );
        let live = resource(
            "Deployment",
            Some(obj(serde_json::json!({}))),
            Some(obj(serde_json::json!({}))),
        );
        // The OutOfSync status says a resource is missing; the health does not.
        assert_eq!(
            of_application(&[(&missing, None), (&live, Some(&suspended))]),
            Health::new(HealthStatus::Suspended, "")
        );
        assert_eq!(
            of_application(&[(&missing, None), (&live, Some(&healthy))]),
            Health::new(HealthStatus::Healthy, "")
        );
        assert_eq!(
            of_application(&[(&missing, None)]),
            Health::new(HealthStatus::Missing, "")
        );
        // Missing ranks below Degraded and Unknown only.
        let ignored_live = resource(
            "Deployment",
            Some(obj(serde_json::json!({IGNORE_HEALTHCHECK: "true"}))),
            None,
        );
        assert_eq!(
            of_application(&[(&missing, None), (&ignored_live, Some(&degraded))]),
            Health::new(HealthStatus::Healthy, "")
        );
    }

    #[test]
    fn child_applications_missing_or_unknown_do_not_count() {
        let child = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "child", "namespace": "argocd", "uid": "u-child"}});
        let res = resource("Application", Some(child.clone()), Some(child.clone()));
        for status in [HealthStatus::Missing, HealthStatus::Unknown] {
            let h = Health::new(status, "");
            assert_eq!(
                of_application(&[(&res, Some(&h))]),
                Health::new(HealthStatus::Healthy, "")
            );
        }
        let h = Health::new(HealthStatus::Degraded, "");
        assert_eq!(
            of_application(&[(&res, Some(&h))]),
            Health::new(HealthStatus::Degraded, "")
        );
        // An Application that manages itself leaves its own health out.
        assert_eq!(
            of_application_in(Some(&child), &[(&res, Some(&h))]),
            Health::new(HealthStatus::Healthy, "")
        );
    }
}
