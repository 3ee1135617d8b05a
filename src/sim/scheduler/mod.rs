//! The simulated scheduler: picks a node for a pending pod or explains, in kube-scheduler's
//! own words, why none fits.
//!
//! The filters run in the default profile's order (pkg/scheduler/apis/config/v1/
//! default_plugins.go) and each node is rejected by the first filter that fails, as the
//! framework does; the `FailedScheduling` text is `FitError.Error()` with the default
//! preemption plugin's post-filter message (Kubernetes v1.32). Scoring is least-allocated CPU
//! and memory; where the real scheduler picks at random among equal scores, ties go to the
//! node whose name sorts first so that the same input always gives the same node.

pub mod node;
pub mod quantity;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::sim::behaviour::time::rfc3339;
use crate::sim::controllers::meta::{self, pointer};
use crate::sim::events::{Event, EventType, Involved, Reporter};
use quantity::{parse_milli, parse_value};

pub use node::{csi_node_object, kubelet_config, node_object};

/// The scheduler's name: the pods it schedules name it in `spec.schedulerName`, and its events
/// in `reportingController` (`v1.DefaultSchedulerName`, staging/src/k8s.io/api/core/v1/types.go).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// What the scheduler sees of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every node.
    pub nodes: &'a [Value],
    /// Every pod (bound ones count against their node).
    pub pods: &'a [Value],
    /// Every PersistentVolumeClaim.
    pub pvcs: &'a [Value],
    /// Every PersistentVolume.
    pub pvs: &'a [Value],
    /// Every StorageClass.
    pub storage_classes: &'a [Value],
    /// Every CSINode (the attach limits of the nodes' CSI drivers).
    pub csi_nodes: &'a [Value],
}

/// The outcome of one scheduling attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Bind the pod to `node` (set `spec.nodeName`) and record `event` (`Scheduled`).
    Bind {
        /// The chosen node.
        node: String,
        /// `Normal Scheduled Successfully assigned <ns>/<pod> to <node>`.
        event: Event,
    },
    /// No node fits.
    Unschedulable {
        /// The `FailedScheduling` message.
        message: String,
        /// The `PodScheduled` condition to put in the pod's status.
        condition: Value,
        /// `Warning FailedScheduling <message>`.
        event: Event,
    },
}

/// kube-scheduler's framework status codes that matter for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// Preemption might help.
    Unschedulable,
    /// Preemption cannot help.
    Unresolvable,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    pointer(v, ptr).and_then(Value::as_str).unwrap_or_default()
}

fn array<'a>(v: &'a Value, ptr: &str) -> impl Iterator<Item = &'a Value> {
    pointer(v, ptr)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Requested CPU (millicores) and memory (bytes) of a pod: the larger of the sum over its
/// containers and the largest init container; a container that sets only limits requests its
/// limits (API defaulting).
fn requests(pod: &Value, non_zero: bool) -> (i128, i128) {
    let one = |c: &Value| {
        let get = |r: &str, default: i128, parse: fn(&str) -> Option<i128>| {
            meta::at(c, &["resources", "requests", r])
                .or_else(|| meta::at(c, &["resources", "limits", r]))
                .and_then(|q| match q {
                    Value::String(s) => parse(s),
                    Value::Number(n) => parse(&n.to_string()),
                    _ => None,
                })
                .unwrap_or(if non_zero { default } else { 0 })
        };
        // Scoring counts containers without requests as 100m and 200Mi
        // (pkg/scheduler/util/pod_resources.go DefaultMilliCPURequest, DefaultMemoryRequest).
        (
            get("cpu", 100, parse_milli),
            get("memory", 200 * 1024 * 1024, parse_value),
        )
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in array(pod, "/spec/containers") {
        let (a, b) = one(c);
        cpu += a;
        mem += b;
    }
    for c in array(pod, "/spec/initContainers") {
        let (a, b) = one(c);
        cpu = cpu.max(a);
        mem = mem.max(b);
    }
    (cpu, mem)
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    let (key, value, effect) = (
        str_at(taint, "/key"),
        str_at(taint, "/value"),
        str_at(taint, "/effect"),
    );
    array(pod, "/spec/tolerations").any(|t| {
        let t_effect = str_at(t, "/effect");
        if !t_effect.is_empty() && t_effect != effect {
            return false;
        }
        let t_key = str_at(t, "/key");
        match str_at(t, "/operator") {
            "Exists" => t_key.is_empty() || t_key == key,
            _ => t_key == key && str_at(t, "/value") == value,
        }
    })
}

fn label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    pointer(node, "/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

fn expression_matches(node: &Value, e: &Value, field: bool) -> bool {
    let key = str_at(e, "/key");
    let actual = if field {
        (key == "metadata.name").then(|| str_at(node, "/metadata/name"))
    } else {
        label(node, key)
    };
    let values: Vec<&str> = array(e, "/values").filter_map(Value::as_str).collect();
    let number = |s: &str| s.parse::<i64>().ok();
    match str_at(e, "/operator") {
        "In" => actual.is_some_and(|a| values.contains(&a)),
        "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" => actual
            .and_then(number)
            .zip(values.first().and_then(|v| number(v)))
            .is_some_and(|(a, v)| a > v),
        "Lt" => actual
            .and_then(number)
            .zip(values.first().and_then(|v| number(v)))
            .is_some_and(|(a, v)| a < v),
        _ => false,
    }
}

/// nodeSelector and required node affinity (pkg/scheduler/framework/plugins/nodeaffinity).
fn affinity_matches(pod: &Value, node: &Value) -> bool {
    let selector_ok = pointer(pod, "/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| sel.iter().all(|(k, v)| label(node, k) == v.as_str()));
    let Some(required) = pointer(
        pod,
        "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution",
    ) else {
        return selector_ok;
    };
    selector_ok && terms_match(required, node)
}

/// ORed node selector terms, each an AND of expressions; a term without any matches nothing.
fn terms_match(selector: &Value, node: &Value) -> bool {
    array(selector, "/nodeSelectorTerms").any(|term| {
        let exprs: Vec<(&Value, bool)> = array(term, "/matchExpressions")
            .map(|e| (e, false))
            .chain(array(term, "/matchFields").map(|e| (e, true)))
            .collect();
        !exprs.is_empty() && exprs.iter().all(|(e, f)| expression_matches(node, e, *f))
    })
}

fn terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn find<'a>(items: &'a [Value], namespace: Option<&str>, name: &str) -> Option<&'a Value> {
    items.iter().find(|o| {
        str_at(o, "/metadata/name") == name
            && namespace.is_none_or(|ns| str_at(o, "/metadata/namespace") == ns)
    })
}

fn claims(pod: &Value) -> Vec<&str> {
    array(pod, "/spec/volumes")
        .filter_map(|v| pointer(v, "/persistentVolumeClaim/claimName"))
        .filter_map(Value::as_str)
        .collect()
}

/// One scheduling attempt for `pod` at `now`.
#[must_use]
pub fn schedule(pod: &Value, cluster: &Snapshot<'_>, now: Timestamp) -> Placement {
    schedule_with(pod, cluster, &NodeUsage::excluding(pod, cluster.pods), now)
}

/// What the pods bound to each node use (their number and requests), for a caller that
/// schedules many pods in a row and keeps this up to date as it binds them, rather than
/// having every [`schedule`] count the whole cluster again.
#[derive(Debug, Default)]
pub struct NodeUsage {
    by_node: BTreeMap<String, Usage>,
    /// Each node's allocatable CPU, memory and pods by name, with the resourceVersion it was
    /// read at: parsed once, not for every pod that is tried on the node.
    allocatable: RefCell<HashMap<String, (String, Allocatable)>>,
}

impl NodeUsage {
    /// The usage of every node by the bound, non-terminal pods among `pods`.
    #[must_use]
    pub fn of(pods: &[Value]) -> Self {
        Self::excluding(&Value::Null, pods)
    }

    /// The same, without `pod` itself.
    fn excluding(pod: &Value, pods: &[Value]) -> Self {
        let uid = str_at(pod, "/metadata/uid");
        let mut usage = Self::default();
        for p in pods {
            if uid.is_empty() || str_at(p, "/metadata/uid") != uid {
                usage.add(p);
            }
        }
        usage
    }

    /// [`allocatable`] of `node`, from the cache while the node is unchanged.
    fn allocatable_of(&self, node: &Value) -> Allocatable {
        let name = str_at(node, "/metadata/name");
        let rv = str_at(node, "/metadata/resourceVersion");
        if !rv.is_empty()
            && let Some((at, alloc)) = self.allocatable.borrow().get(name)
            && at == rv
        {
            return *alloc;
        }
        let alloc = allocatable(node);
        self.allocatable
            .borrow_mut()
            .insert(name.to_owned(), (rv.to_owned(), alloc));
        alloc
    }

    /// Counts a pod against its node (nothing for unbound or terminal pods).
    pub fn add(&mut self, pod: &Value) {
        let node = str_at(pod, "/spec/nodeName");
        if node.is_empty() || terminal(pod) {
            return;
        }
        let u = self.by_node.entry(node.to_owned()).or_default();
        let (c, m) = requests(pod, false);
        let (sc, sm) = requests(pod, true);
        u.count += 1;
        u.cpu += c;
        u.mem += m;
        u.score_cpu += sc;
        u.score_mem += sm;
    }
}

/// [`schedule`] with the nodes' usage already counted; `usage` must not count `pod` itself.
#[must_use]
pub fn schedule_with(
    pod: &Value,
    cluster: &Snapshot<'_>,
    usage: &NodeUsage,
    now: Timestamp,
) -> Placement {
    let ns = str_at(pod, "/metadata/namespace");
    let n = cluster.nodes.len();
    if n == 0 {
        // pkg/scheduler/schedule_one.go ErrNoNodesAvailable.
        return unschedulable(pod, "no nodes available to schedule pods".to_owned(), now);
    }

    // PreFilter: the claims must exist, be alive and, if their class binds immediately, be
    // bound (VolumeRestrictions, VolumeBinding).
    let mut rwop_conflict = false;
    for claim in claims(pod) {
        let Some(pvc) = find(cluster.pvcs, Some(ns), claim) else {
            // volumebinding/volume_binding.go PreFilter: the claim lister's NewNotFound.
            return prefilter_failure(
                pod,
                n,
                &format!("persistentvolumeclaim \"{claim}\" not found"),
                now,
            );
        };
        if pvc.pointer("/metadata/deletionTimestamp").is_some() {
            // volumebinding/volume_binding.go PreFilter (binder.go GetPodVolumeClaims).
            return prefilter_failure(
                pod,
                n,
                &format!("persistentvolumeclaim \"{claim}\" is being deleted"),
                now,
            );
        }
        let bound = !str_at(pvc, "/spec/volumeName").is_empty();
        if !bound {
            let class = str_at(pvc, "/spec/storageClassName");
            let mode = find(cluster.storage_classes, None, class).map_or("Immediate", |sc| {
                match str_at(sc, "/volumeBindingMode") {
                    "" => "Immediate",
                    m => m,
                }
            });
            if mode != "WaitForFirstConsumer" {
                // volumebinding/volume_binding.go PreFilter: unbound immediate claims.
                return prefilter_failure(
                    pod,
                    n,
                    "pod has unbound immediate PersistentVolumeClaims",
                    now,
                );
            }
        }
        let rwop = array(pvc, "/spec/accessModes").any(|m| m == "ReadWriteOncePod");
        if rwop {
            let uid = str_at(pod, "/metadata/uid");
            rwop_conflict |= cluster.pods.iter().any(|p| {
                str_at(p, "/metadata/uid") != uid
                    && str_at(p, "/metadata/namespace") == ns
                    && !str_at(p, "/spec/nodeName").is_empty()
                    && !terminal(p)
                    && claims(p).contains(&claim)
            });
        }
    }

    let (want_cpu, want_mem) = requests(pod, false);
    let scored = requests(pod, true);
    let none = Usage::default();
    let mut statuses: BTreeMap<&str, (Code, Vec<String>)> = BTreeMap::new();
    let mut feasible: Vec<(i128, &str)> = Vec::new();
    for node in cluster.nodes {
        let name = str_at(node, "/metadata/name");
        let used = usage.by_node.get(name).unwrap_or(&none);
        let alloc = usage.allocatable_of(node);
        match filter(
            pod,
            node,
            cluster,
            (want_cpu, want_mem),
            rwop_conflict,
            (used, alloc),
        ) {
            Ok(()) => feasible.push((score(scored, used, alloc), name)),
            Err(status) => {
                statuses.insert(name, status);
            }
        }
    }
    // Highest score first; equal scores go to the first name.
    feasible.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    if let Some((_, node)) = feasible.into_iter().next() {
        let node = node.to_owned();
        let event = Event::new(
            EventType::Normal,
            "Scheduled",
            // pkg/scheduler/schedule_one.go handleBindingCycle... `Successfully assigned %v/%v to %v`.
            format!(
                "Successfully assigned {ns}/{} to {node}",
                str_at(pod, "/metadata/name")
            ),
            Involved::pod(pod),
            Reporter::new(SCHEDULER_NAME),
        );
        return Placement::Bind { node, event };
    }

    // FitError.Error(): `0/N nodes are available: <sorted "count reason" list>.` followed by
    // the preemption plugin's own fit error over the same nodes.
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<&str, usize> = BTreeMap::new();
    for (code, rs) in statuses.values() {
        for r in rs {
            *reasons.entry(r.clone()).or_default() += 1;
        }
        // pkg/scheduler/framework/preemption/preemption.go: nodes whose failure preemption
        // cannot resolve, and nodes where no lower-priority pod could be evicted (priorities
        // are not simulated, so no victim is ever found; defaultpreemption/default_preemption.go
        // SelectVictimsOnNode).
        let why = match code {
            Code::Unresolvable => "Preemption is not helpful for scheduling",
            Code::Unschedulable => "No preemption victims found for incoming pod",
        };
        *preemption.entry(why).or_default() += 1;
    }
    let histogram = |m: Vec<String>| {
        let mut v = m;
        v.sort();
        v.join(", ")
    };
    let message = format!(
        "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {}.",
        histogram(reasons.iter().map(|(r, c)| format!("{c} {r}")).collect()),
        histogram(preemption.iter().map(|(r, c)| format!("{c} {r}")).collect()),
    );
    unschedulable(pod, message, now)
}

fn prefilter_failure(pod: &Value, n: usize, reason: &str, now: Timestamp) -> Placement {
    unschedulable(
        pod,
        format!(
            "0/{n} nodes are available: {reason}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
        ),
        now,
    )
}

fn unschedulable(pod: &Value, message: String, now: Timestamp) -> Placement {
    // v1.PodReasonUnschedulable.
    let condition = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": rfc3339(now),
    });
    let event = Event::new(
        EventType::Warning,
        "FailedScheduling",
        message.clone(),
        Involved::pod(pod),
        Reporter::new(SCHEDULER_NAME),
    );
    Placement::Unschedulable {
        message,
        condition,
        event,
    }
}

/// What the other pods bound to one node use: their number and requests, as the resource
/// fit filter counts them and as the scoring counts them (with the non-zero defaults).
#[derive(Debug, Default)]
struct Usage {
    count: i128,
    cpu: i128,
    mem: i128,
    score_cpu: i128,
    score_mem: i128,
}

fn pods_on<'a>(cluster: &'a Snapshot<'_>, node: &'a str) -> impl Iterator<Item = &'a Value> {
    cluster
        .pods
        .iter()
        .filter(move |p| str_at(p, "/spec/nodeName") == node && !terminal(p))
}

/// A node's allocatable CPU (millicores), memory (bytes) and pods.
type Allocatable = (i128, i128, i128);

fn allocatable(node: &Value) -> Allocatable {
    let q = |r: &str, parse: fn(&str) -> Option<i128>| {
        node.pointer(&format!("/status/allocatable/{r}"))
            .and_then(|v| match v {
                Value::String(s) => parse(s),
                Value::Number(n) => parse(&n.to_string()),
                _ => None,
            })
            .unwrap_or(0)
    };
    (
        q("cpu", parse_milli),
        q("memory", parse_value),
        q("pods", parse_value),
    )
}

/// The filters in default-profile order; the first failure is the node's status.
fn filter(
    pod: &Value,
    node: &Value,
    cluster: &Snapshot<'_>,
    (want_cpu, want_mem): (i128, i128),
    rwop_conflict: bool,
    (used, (cpu, mem, max_pods)): (&Usage, Allocatable),
) -> Result<(), (Code, Vec<String>)> {
    let fail = |code, reason: &str| Err((code, vec![reason.to_owned()]));
    let name = str_at(node, "/metadata/name");
    // NodeUnschedulable (nodeunschedulable/node_unschedulable.go).
    if pointer(node, "/spec/unschedulable").and_then(Value::as_bool) == Some(true)
        && !tolerates(
            pod,
            &json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
        )
    {
        return fail(Code::Unresolvable, "node(s) were unschedulable");
    }
    // TaintToleration (tainttoleration/taint_toleration.go): the first untolerated
    // NoSchedule or NoExecute taint.
    if let Some(t) = array(node, "/spec/taints")
        .find(|t| matches!(str_at(t, "/effect"), "NoSchedule" | "NoExecute") && !tolerates(pod, t))
    {
        return fail(
            Code::Unresolvable,
            &format!(
                "node(s) had untolerated taint {{{}: {}}}",
                str_at(t, "/key"),
                str_at(t, "/value")
            ),
        );
    }
    // NodeAffinity (nodeaffinity/node_affinity.go ErrReasonPod).
    if !affinity_matches(pod, node) {
        return fail(
            Code::Unresolvable,
            "node(s) didn't match Pod's node affinity/selector",
        );
    }
    // NodePorts (nodeports/node_ports.go ErrReason).
    let host_ports: Vec<(u64, String)> = array(pod, "/spec/containers")
        .flat_map(|c| array(c, "/ports"))
        .filter_map(|p| {
            p.get("hostPort")
                .and_then(Value::as_u64)
                .map(|h| (h, str_at(p, "/protocol").to_owned()))
        })
        .collect();
    if !host_ports.is_empty() {
        let used = pods_on(cluster, name)
            .flat_map(|p| array(p, "/spec/containers"))
            .flat_map(|c| array(c, "/ports"))
            .any(|p| {
                p.get("hostPort")
                    .and_then(Value::as_u64)
                    .is_some_and(|h| host_ports.contains(&(h, str_at(p, "/protocol").to_owned())))
            });
        if used {
            return fail(
                Code::Unschedulable,
                "node(s) didn't have free ports for the requested pod ports",
            );
        }
    }
    // NodeResourcesFit (noderesources/fit.go): every shortfall is a reason.
    let (used_cpu, used_mem, count) = (used.cpu, used.mem, used.count);
    let mut short = Vec::new();
    if count + 1 > max_pods {
        short.push("Too many pods".to_owned());
    }
    if want_cpu > 0 && want_cpu > cpu - used_cpu {
        short.push("Insufficient cpu".to_owned());
    }
    if want_mem > 0 && want_mem > mem - used_mem {
        short.push("Insufficient memory".to_owned());
    }
    if !short.is_empty() {
        return Err((Code::Unschedulable, short));
    }
    // VolumeRestrictions (volumerestrictions/volume_restrictions.go).
    if rwop_conflict {
        return fail(
            Code::Unschedulable,
            "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode",
        );
    }
    // NodeVolumeLimits (nodevolumelimits/csi.go ErrReasonMaxVolumeCountExceeded): the node's
    // attached CSI volumes plus the pod's new ones must fit each driver's limit.
    if exceeds_volume_limits(pod, node, cluster) {
        return fail(Code::Unschedulable, "node(s) exceed max volume count");
    }
    // VolumeBinding (volumebinding/binder.go ErrReasonNodeConflict): bound volumes must be
    // reachable from the node.
    let ns = str_at(pod, "/metadata/namespace");
    for claim in claims(pod) {
        let pv = find(cluster.pvcs, Some(ns), claim)
            .map(|pvc| str_at(pvc, "/spec/volumeName"))
            .filter(|v| !v.is_empty())
            .and_then(|v| find(cluster.pvs, None, v));
        if let Some(pv) = pv
            && let Some(required) = pv.pointer("/spec/nodeAffinity/required")
            && !terms_match(required, node)
        {
            return fail(
                Code::Unresolvable,
                "node(s) had volume node affinity conflict",
            );
        }
    }
    Ok(())
}

/// The CSI volumes a pod uses, by unique name (`<driver>/<volume handle>`), with their driver
/// (`CSILimits.filterAttachableVolumes`). A bound claim counts its PV's CSI source; a claim
/// not bound yet counts a volume of its class's provisioner (`getCSIDriverInfoFromSC`, whose
/// handle is a random prefix and the claim's key). Other volumes do not count.
fn csi_volumes(pod: &Value, cluster: &Snapshot<'_>) -> BTreeMap<String, String> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut out = BTreeMap::new();
    for claim in claims(pod) {
        let Some(pvc) = find(cluster.pvcs, Some(ns), claim) else {
            continue;
        };
        let pv = Some(str_at(pvc, "/spec/volumeName"))
            .filter(|v| !v.is_empty())
            .and_then(|v| find(cluster.pvs, None, v));
        let (driver, handle) = if let Some(pv) = pv {
            (
                str_at(pv, "/spec/csi/driver").to_owned(),
                str_at(pv, "/spec/csi/volumeHandle").to_owned(),
            )
        } else {
            let class = str_at(pvc, "/spec/storageClassName");
            let provisioner = find(cluster.storage_classes, None, class)
                .map(|sc| str_at(sc, "/provisioner"))
                .unwrap_or_default();
            (provisioner.to_owned(), format!("unbound-{ns}/{claim}"))
        };
        if !driver.is_empty() && !handle.is_empty() {
            out.insert(format!("{driver}/{handle}"), driver);
        }
    }
    out
}

/// The node's attach limit per CSI driver: its CSINode's `allocatable.count`, over the
/// `attachable-volumes-csi-<driver>` allocatable the Node object may still carry
/// (`getVolumeLimits` in nodevolumelimits/csi.go).
fn volume_limits(node: &Value, cluster: &Snapshot<'_>) -> BTreeMap<String, i128> {
    let mut limits = BTreeMap::new();
    if let Some(allocatable) = node
        .pointer("/status/allocatable")
        .and_then(Value::as_object)
    {
        for (key, value) in allocatable {
            let count = match value {
                Value::String(s) => parse_value(s),
                Value::Number(n) => parse_value(&n.to_string()),
                _ => None,
            };
            if let (Some(driver), Some(count)) =
                (key.strip_prefix("attachable-volumes-csi-"), count)
            {
                limits.insert(driver.to_owned(), count);
            }
        }
    }
    let name = str_at(node, "/metadata/name");
    if let Some(csi_node) = find(cluster.csi_nodes, None, name) {
        for d in array(csi_node, "/spec/drivers") {
            if let Some(count) = d.pointer("/allocatable/count").and_then(Value::as_i64) {
                limits.insert(str_at(d, "/name").to_owned(), i128::from(count));
            }
        }
    }
    limits
}

/// Whether the pod's new CSI volumes would take a driver on the node past its limit; a volume
/// already attached for another pod on the node is not counted twice.
fn exceeds_volume_limits(pod: &Value, node: &Value, cluster: &Snapshot<'_>) -> bool {
    let mut new = csi_volumes(pod, cluster);
    if new.is_empty() {
        return false;
    }
    let limits = volume_limits(node, cluster);
    if limits.is_empty() {
        return false;
    }
    let mut attached: BTreeMap<String, String> = BTreeMap::new();
    for p in pods_on(cluster, str_at(node, "/metadata/name")) {
        attached.extend(csi_volumes(p, cluster));
    }
    let mut attached_count: BTreeMap<&str, i128> = BTreeMap::new();
    for (unique, driver) in &attached {
        new.remove(unique);
        *attached_count.entry(driver).or_default() += 1;
    }
    let mut new_count: BTreeMap<&str, i128> = BTreeMap::new();
    for driver in new.values() {
        *new_count.entry(driver).or_default() += 1;
    }
    new_count.iter().any(|(driver, count)| {
        limits
            .get(*driver)
            .is_some_and(|max| attached_count.get(driver).copied().unwrap_or(0) + count > *max)
    })
}

/// NodeResourcesFit's least-allocated score (0–100) over CPU and memory: the pod's requests
/// with the scheduler's non-zero defaults for containers without requests, plus the node's.
fn score((req_cpu, req_mem): (i128, i128), used: &Usage, (cpu, mem, _): Allocatable) -> i128 {
    let (req_cpu, req_mem) = (req_cpu + used.score_cpu, req_mem + used.score_mem);
    let least = |cap: i128, req: i128| {
        if cap <= 0 || req > cap {
            0
        } else {
            (cap - req) * 100 / cap
        }
    };
    (least(cpu, req_cpu) + least(mem, req_mem)) / 2
}

#[cfg(test)]
mod tests;
