//! The scenario file format as plain data.
//!
//! Every struct denies unknown fields so that a typo is an error with a location, never a
//! silently ignored setting. Enums are externally tagged (`- apply: {...}`) and nothing is
//! `untagged` or `flatten`ed: their error messages would be useless to a scenario author.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Duration;

/// One incident replay: the cluster shape, how it breaks, how it is fixed and what "healed" means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Unique name in the suite, lowercase words joined by `-` (e.g. `rwo-rollout-deadlock`).
    pub name: String,
    /// What broke, in a sentence or two a newcomer understands.
    pub description: String,
    /// The incident this scenario replays: report and section, runbook or ticket.
    pub source: String,
    /// Free-form tags used to select scenarios (`relapse list --tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Fixture files (paths relative to this file) whose cluster, images, postgres and setup
    /// steps are merged in before this file's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// The cluster's shape. Defaults to one amd64 node that is both control plane and worker.
    #[serde(default)]
    pub cluster: ClusterShape,
    /// Behaviours of container images on the simulated cluster, keyed by image reference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImageBehaviour>,
    /// A PostgreSQL server this scenario needs, with its roles, databases and access rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<Postgres>,
    /// A GitOps controller (Argo CD) and the Git repositories it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<super::Gitops>,
    /// Steps that build the healthy starting point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<Step>,
    /// What must hold after setup, before the break (each waited for within its deadline):
    /// proof that the starting point is healthy. Besides these, no break symptom may hold yet
    /// (the baseline check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub healthy: Vec<Expectation>,
    /// How production broke, and the symptoms that prove the failure was reproduced.
    #[serde(rename = "break")]
    pub break_: Break,
    /// The documented fix.
    pub fix: Vec<Step>,
    /// Every fix step is necessary: the scenario is replayed with each step left out in turn,
    /// and none of those replays may converge (`relapse run --ablate` reports the same without
    /// failing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fix_minimal: bool,
    /// What "healed" means, and how long it must hold.
    pub converge: Converge,
    /// Which objects the converged-state snapshot covers.
    #[serde(default)]
    pub snapshot: SnapshotSpec,
    /// Re-run without the fix and require that the cluster does not heal.
    #[serde(default)]
    pub counterfactual: Counterfactual,
    /// Plausible but wrong fixes kept with the scenario. Each is replayed like the scenario
    /// (setup, break with its symptoms) with its own steps in place of the fix, and must *not*
    /// converge: proof that the scenario tells the documented fix from one that only looks right.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutants: Vec<Mutant>,
    /// Per-backend differences: a backend that cannot reproduce this failure faithfully says why.
    #[serde(default)]
    pub backends: BackendOverrides,
}

/// A fixture: the shareable part of a scenario (a base environment), merged by `include:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fixture {
    /// What this base environment is.
    #[serde(default)]
    pub description: Option<String>,
    /// Further fixtures this one builds on (paths relative to this file).
    #[serde(default)]
    pub include: Vec<String>,
    /// Cluster shape; its nodes and storage classes are added to the including scenario's.
    #[serde(default)]
    pub cluster: Option<ClusterShape>,
    /// Image behaviours shared by the scenarios including this fixture.
    #[serde(default)]
    pub images: BTreeMap<String, ImageBehaviour>,
    /// Postgres roles, databases and rules shared by the including scenarios.
    #[serde(default)]
    pub postgres: Option<Postgres>,
    /// Setup steps run before the including scenario's own.
    #[serde(default)]
    pub setup: Vec<Step>,
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// Nodes and cluster-wide options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterShape {
    /// The nodes. Empty means one amd64 node named `node-1` with both roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// Who assigns addresses to `type: LoadBalancer` Services. Default: nobody (`<pending>`).
    #[serde(default)]
    pub load_balancer: LoadBalancerProvider,
    /// Storage classes. Empty means one default node-local class named `local-path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<StorageClass>,
    /// The Kubernetes and containerd versions the cluster reports (`/version`, the Node's
    /// `nodeInfo`) and whose texts it shows. Default: Kubernetes 1.32, containerd 1.7.
    #[serde(default, skip_serializing_if = "Versions::is_default")]
    pub versions: Versions,
}

/// The versions a cluster runs; texts that differ between them follow these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Versions {
    /// Kubernetes minor release (`"1.31"`, `"1.32"` or `"1.33"`; quote it).
    #[serde(default)]
    pub kubernetes: KubernetesVersion,
    /// containerd minor release (`"1.7"`, `"2.0"` or `"2.1"`; quote it).
    #[serde(default)]
    pub containerd: ContainerdVersion,
}

impl Versions {
    /// Whether these are the defaults (1.32 / 1.7).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A Kubernetes minor release the simulator knows the texts of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, JsonSchema)]
pub enum KubernetesVersion {
    /// Kubernetes 1.31.
    #[serde(rename = "1.31")]
    V1_31,
    /// Kubernetes 1.32.
    #[default]
    #[serde(rename = "1.32")]
    V1_32,
    /// Kubernetes 1.33.
    #[serde(rename = "1.33")]
    V1_33,
}

/// A containerd minor release the simulator knows the texts of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, JsonSchema)]
pub enum ContainerdVersion {
    /// containerd 1.7.
    #[default]
    #[serde(rename = "1.7")]
    V1_7,
    /// containerd 2.0.
    #[serde(rename = "2.0")]
    V2_0,
    /// containerd 2.1.
    #[serde(rename = "2.1")]
    V2_1,
}

/// Reads a version written as a string (`"1.32"`) or, unquoted, as the YAML number it
/// parses to (`1.32`), and names the known ones when it is none of them.
fn version_from<'de, D, T: Copy>(
    deserializer: D,
    what: &'static str,
    known: &'static [(&'static str, T)],
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Visit<T: 'static> {
        what: &'static str,
        known: &'static [(&'static str, T)],
    }
    impl<T: Copy> Visit<T> {
        fn pick<E: serde::de::Error>(&self, text: &str, unquoted: bool) -> Result<T, E> {
            self.known
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let names: Vec<String> =
                        self.known.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                    // An unquoted `1.30` reaches us as the number 1.3.
                    let note = if unquoted {
                        " (read as a number: quote the version)"
                    } else {
                        ""
                    };
                    E::custom(format!(
                        "unknown {} version `{text}`{note}, expected one of {}",
                        self.what,
                        names.join(", ")
                    ))
                })
        }
    }
    impl<T: Copy> serde::de::Visitor<'_> for Visit<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a {} version such as \"{}\"", self.what, self.known[0].0)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            self.pick(v, false)
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
            // `2.0` unquoted is the float 2, which Display writes as `2`.
            let text = if v.fract() == 0.0 {
                format!("{v:.1}")
            } else {
                v.to_string()
            };
            self.pick(&text, true)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            self.pick(&v.to_string(), true)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            self.pick(&v.to_string(), true)
        }
    }
    deserializer.deserialize_any(Visit { what, known })
}

impl<'de> Deserialize<'de> for KubernetesVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        version_from(
            deserializer,
            "Kubernetes",
            &[
                ("1.31", Self::V1_31),
                ("1.32", Self::V1_32),
                ("1.33", Self::V1_33),
            ],
        )
    }
}

impl<'de> Deserialize<'de> for ContainerdVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        version_from(
            deserializer,
            "containerd",
            &[
                ("1.7", Self::V1_7),
                ("2.0", Self::V2_0),
                ("2.1", Self::V2_1),
            ],
        )
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    fn versions(yaml: &str) -> Result<Versions, String> {
        crate::yaml::from_str::<Versions>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn versions_read_quoted_or_unquoted_and_default_to_1_32_and_1_7() {
        assert_eq!(versions("{}").unwrap(), Versions::default());
        assert_eq!(
            Versions::default(),
            Versions {
                kubernetes: KubernetesVersion::V1_32,
                containerd: ContainerdVersion::V1_7
            }
        );
        let pinned = Versions {
            kubernetes: KubernetesVersion::V1_31,
            containerd: ContainerdVersion::V2_0,
        };
        assert_eq!(
            versions("{kubernetes: \"1.31\", containerd: \"2.0\"}").unwrap(),
            pinned
        );
        assert_eq!(
            versions("{kubernetes: 1.31, containerd: 2.0}").unwrap(),
            pinned
        );
    }

    #[test]
    fn an_unknown_version_is_an_error_naming_the_known_ones() {
        let err = versions("{kubernetes: \"1.30\"}").unwrap_err();
        assert!(
            err.contains("unknown Kubernetes version `1.30`, expected one of \"1.31\", \"1.32\""),
            "{err}"
        );
        let err = versions("{containerd: 2.2}").unwrap_err();
        assert!(
            err.contains(
                "unknown containerd version `2.2` (read as a number: quote the version), expected one of \"1.7\", \"2.0\", \"2.1\""
            ),
            "{err}"
        );
    }
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    /// Node name (`metadata.name`).
    pub name: String,
    /// CPU architecture (`kubernetes.io/arch`).
    #[serde(default)]
    pub arch: Arch,
    /// Roles; `control-plane` also brings the control-plane `NoSchedule` taint unless it is a worker too.
    #[serde(default = "default_roles")]
    pub roles: Vec<NodeRole>,
    /// Extra labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Allocatable resources.
    #[serde(default)]
    pub capacity: Capacity,
}

fn default_roles() -> Vec<NodeRole> {
    vec![NodeRole::ControlPlane, NodeRole::Worker]
}

/// A CPU architecture as Kubernetes and OCI platforms name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64.
    #[default]
    Amd64,
    /// 64-bit ARM (Apple Silicon, Graviton).
    Arm64,
}

impl Arch {
    /// The name used in `kubernetes.io/arch` and OCI platforms.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Amd64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }
}

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the control plane (`node-role.kubernetes.io/control-plane`).
    ControlPlane,
    /// Runs workloads.
    Worker,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods are evicted too.
    NoExecute,
}

/// Allocatable resources of a node, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Capacity {
    /// CPU, e.g. `"4"` or `"3500m"`.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Memory, e.g. `16Gi`.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// Maximum pods.
    #[serde(default = "default_pods")]
    pub pods: u32,
    /// How many volumes of the `attachable` storage classes can be attached to the node at
    /// once: the CSI driver's `allocatable.count` in the node's CSINode (a VM size's data
    /// disk slots). The scheduler does not place a pod whose new volumes would exceed it.
    /// Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable_volumes: Option<u32>,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            cpu: default_cpu(),
            memory: default_memory(),
            pods: default_pods(),
            attachable_volumes: None,
        }
    }
}

fn default_cpu() -> String {
    "4".to_owned()
}
fn default_memory() -> String {
    "16Gi".to_owned()
}
const fn default_pods() -> u32 {
    110
}

/// Who fulfils `type: LoadBalancer` Services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancerProvider {
    /// Nobody: the external IP stays `<pending>`, as on a bare cluster.
    #[default]
    None,
    /// A built-in provider that assigns a node's address, like k3s's ServiceLB.
    ServiceLb,
}

/// A storage class offered by the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageClass {
    /// Class name.
    pub name: String,
    /// Whether it is the default class (`storageclass.kubernetes.io/is-default-class`).
    #[serde(default)]
    pub default: bool,
    /// How volumes behave.
    pub kind: VolumeKind,
    /// When volumes are bound.
    #[serde(default)]
    pub binding_mode: VolumeBindingMode,
}

/// Storage behaviour of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeKind {
    /// A directory on one node (like k3d's local-path): the volume is pinned to that node.
    NodeLocal,
    /// A network block device (like EBS): attached to one node at a time, detached after use.
    Attachable,
}

/// `volumeBindingMode` of a storage class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VolumeBindingMode {
    /// Bind when the first consuming pod is scheduled.
    #[default]
    WaitForFirstConsumer,
    /// Bind as soon as the claim exists.
    Immediate,
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

/// What a container image does when the simulated kubelet runs it (its stand-in program).
///
/// Images without a behaviour run for ever and become Ready at once, as kwok does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageBehaviour {
    /// How the image is published: one manifest for one platform, or an index of several.
    #[serde(default)]
    pub manifest: ManifestKind,
    /// Platforms the image has, such as `linux/amd64`. Empty means every node's platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// The program the container runs; shown in `exec format error` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Whether pulling needs registry credentials (`imagePullSecrets`).
    #[serde(default)]
    pub private: bool,
    /// Whether the tag does not exist in the registry at all.
    #[serde(default)]
    pub missing: bool,
    /// Lines the program logs when it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// What the program needs; checked in order when it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Requirement>,
    /// How long after start the program answers its readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_after: Option<Duration>,
    /// Exit after running successfully (a batch program); absent means it runs until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_after: Option<ExitAfter>,
    /// HTTP paths the program answers with 200; an HTTP probe of any other path gets 404
    /// (`HTTP probe failed with statuscode: 404`). Empty: every path answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_paths: Vec<String>,
    /// How long the program takes to answer a request, by time since it started: the last
    /// entry whose `from` has passed (and whose `port`/`path` fit, when given) applies. A
    /// probe whose `timeoutSeconds` is not longer than that fails with the client's timeout
    /// error. TCP probes only connect, so a slow program still passes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answer_time: Vec<AnswerTime>,
    /// Ports the program listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Reconcile rules when the program is an operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator: Vec<OperatorRule>,
    /// Leader election with a Lease: the program renews it through the API server and exits
    /// (or stops leading) when a renewal does not finish within its `renewDeadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_election: Option<super::LeaderElection>,
    /// What the program serves on its ports (a protocol and the credentials it expects), for
    /// programs that connect to it with a `connect` need.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serves: Vec<Serve>,
    /// The memory the program uses once started (a quantity such as `600Mi`), reached when it
    /// answers readiness (`readyAfter`, at once by default): a container whose memory limit
    /// is lower is killed by the kernel's OOM killer then (exit 137, reason `OOMKilled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// How long a program takes to answer, from some time after its start on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnswerTime {
    /// From this long after the program started (default: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Duration>,
    /// The time to answer, e.g. `3s` while a cache warms up.
    pub time: Duration,
    /// Only requests to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Only HTTP requests to this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only `exec` probes whose command (its words joined by spaces) contains this text, e.g.
    /// `redis-cli ping`. Exec probes also take entries without `port`, `path` and `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// How an image is published in its registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    /// An index (manifest list) with one entry per platform: pulling on a missing platform fails.
    #[default]
    Index,
    /// A single manifest: it pulls on any node, then fails to execute on the wrong architecture.
    Single,
}

/// A successful exit of a batch program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExitAfter {
    /// Running time before the exit.
    pub duration: Duration,
    /// Exit code (0 unless given).
    #[serde(default)]
    pub code: i32,
}

/// Something a program needs, and what it does when it is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirement {
    /// What is required.
    pub needs: Need,
    /// What the program does when the requirement is not met.
    pub otherwise: Otherwise,
}

/// The thing a program requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Need {
    /// A resource type is served by the API server (a CRD is installed and Established).
    Resource(ResourceNeed),
    /// An object exists.
    Object(ObjectNeed),
    /// A Secret exists and has this key.
    SecretKey(SecretKeyNeed),
    /// A Service has at least one ready endpoint on this port.
    Endpoint(EndpointNeed),
    /// A Postgres login (and optionally a privilege) works against the scenario's server.
    Postgres(PostgresNeed),
    /// A value of the container's own configuration, as the program reads it when it starts
    /// (its resolved env, its command line, a file mounted from a ConfigMap or Secret), meets a
    /// condition.
    Config(ConfigNeed),
    /// At least one of these is met (a setting a program takes from a file *or* from an
    /// environment override). The first unmet one's error is reported. Not for `postgres`.
    AnyOf(Vec<Need>),
    /// A connection to what another program serves (see [`ImageBehaviour::serves`]), through a
    /// Service's ready endpoints, with credentials from the container's own configuration.
    Connect(ConnectNeed),
    /// The pod's ServiceAccount may make this API request: the cluster's RBAC (Roles,
    /// ClusterRoles and their bindings) allows it. The error is the API server's `Forbidden`
    /// message.
    Access(AccessNeed),
    /// A host outside the cluster (a package mirror, a download site) that the program
    /// resolves through cluster DNS, which forwards the name upstream: met unless a
    /// `dnsFailure` fault names the host.
    Resolve(ResolveNeed),
}

/// A host name outside the cluster a program resolves (see [`Need::Resolve`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResolveNeed {
    /// The host, e.g. `dl-cdn.alpinelinux.org`.
    pub host: String,
}

impl Need {
    /// This need, or each member of an `anyOf`: the needs the loader checks one by one.
    #[must_use]
    pub fn members(&self) -> Vec<&Self> {
        match self {
            Self::AnyOf(needs) => needs.iter().collect(),
            other => vec![other],
        }
    }
}

/// An API request a program makes as its pod's ServiceAccount
/// (`system:serviceaccount:<namespace>:<serviceAccountName>`): a resource request (`resource`)
/// or a non-resource one (`nonResourceURL`), exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessNeed {
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    /// API group of the resource; empty (the default) for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Plural resource name, e.g. `nodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Subresource, e.g. `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Object name, for a request about one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the request; absent means the cluster scope (a cluster-scoped resource,
    /// or a list or watch across all namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A path outside the resource API, e.g. `/livez` or `/metrics`.
    #[serde(
        default,
        rename = "nonResourceURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub non_resource_url: Option<String>,
}

/// Where a program reads one value of its configuration: exactly one of `env`, `arg`, `file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigSource {
    /// An environment variable, resolved as the kubelet resolves it (literal `value`,
    /// `valueFrom` Secret/ConfigMap keys and fields, `envFrom` with prefixes, `$(VAR)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A command-line flag of `command` and `args`, e.g. `--requirepass`: the value after it
    /// (`--flag value`) or after `=` (`--flag=value`); `"true"` for a flag given alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// A file's absolute path in the container, mounted from a ConfigMap or Secret volume
    /// (`items`, `subPath` and projected sources as the kubelet lays them out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// In a YAML, JSON or properties file, the dotted path of the value, e.g.
    /// `backend.auth.keys`; without it the file's whole text is the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How to read the file for `key`; by default from its extension (`.yaml`/`.yml`,
    /// `.json`, `.properties`/`.env`/`.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ConfigFormat>,
}

/// How a configuration file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFormat {
    /// YAML (and so JSON): `key` is a dotted path into the tree.
    Yaml,
    /// JSON: `key` is a dotted path into the tree.
    Json,
    /// `key=value` lines (`#` comments), as Java properties and `.env` files.
    Properties,
}

/// A condition on one configuration value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigNeed {
    /// Where the value is read from.
    #[serde(default)]
    pub env: Option<String>,
    /// A command-line flag (see [`ConfigSource::arg`]).
    #[serde(default)]
    pub arg: Option<String>,
    /// A mounted file (see [`ConfigSource::file`]).
    #[serde(default)]
    pub file: Option<String>,
    /// The dotted path in the file (see [`ConfigSource::key`]).
    #[serde(default)]
    pub key: Option<String>,
    /// How to read the file (see [`ConfigSource::format`]).
    #[serde(default)]
    pub format: Option<ConfigFormat>,
    /// What the value must match: a scalar (equality), a partial tree, or operators such as
    /// `{$regex: "."}` (non-empty), `{$absent: true}`, `{$oneOf: [...]}`, `{$gte: 5}`. By
    /// default the value must be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub matches: Option<Value>,
    /// The value must equal another value of the same container's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<ConfigSource>,
}

impl ConfigNeed {
    /// Where the value is read from.
    #[must_use]
    pub fn source(&self) -> ConfigSource {
        ConfigSource {
            env: self.env.clone(),
            arg: self.arg.clone(),
            file: self.file.clone(),
            key: self.key.clone(),
            format: self.format,
        }
    }
}

impl ConfigSource {
    /// The source as written, for messages: `env REDIS_PASSWORD`, `arg --requirepass`,
    /// `file /app/app-config.yaml key backend.auth.keys`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = &self.env {
            parts.push(format!("env {e}"));
        }
        if let Some(a) = &self.arg {
            parts.push(format!("arg {a}"));
        }
        if let Some(f) = &self.file {
            parts.push(format!("file {f}"));
        }
        if let Some(k) = &self.key {
            parts.push(format!("key {k}"));
        }
        parts.join(" ")
    }

    /// How many of `env`, `arg`, `file` are given (a valid source has exactly one).
    #[must_use]
    pub fn origins(&self) -> usize {
        [self.env.is_some(), self.arg.is_some(), self.file.is_some()]
            .into_iter()
            .filter(|b| *b)
            .count()
    }
}

/// A resource type that must be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceNeed {
    /// API group, e.g. `monitoring.coreos.com`.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `prometheuses`.
    pub resource: String,
    /// Kind, e.g. `Prometheus`.
    pub kind: String,
}

/// A Secret key that must exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyNeed {
    /// Secret name (in the pod's namespace).
    pub name: String,
    /// Key in `data`.
    pub key: String,
}

/// A Service endpoint that must be ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointNeed {
    /// Service name (in the pod's namespace unless `namespace` is given).
    pub service: String,
    /// Service namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port number or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// A Postgres connection the program makes, and what it needs to do there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresNeed {
    /// Environment variable of the container holding the user name, or the name itself.
    pub user: ValueSource,
    /// Where the password comes from.
    pub password: ValueSource,
    /// Database to connect to.
    pub database: ValueSource,
    /// libpq `sslmode` the client uses.
    #[serde(default)]
    pub sslmode: SslMode,
    /// A container environment variable that, when set, overrides `sslmode` (as `PGSSLMODE`
    /// does for libpq and node-postgres clients). A value that is not a known mode fails the
    /// requirement with libpq's `invalid sslmode value` error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslmode_env: Option<String>,
    /// Statements the program runs after connecting (e.g. `CREATE DATABASE ...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
}

/// A value given literally or read from the container's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValueSource {
    /// The value itself.
    Value(String),
    /// The container environment variable holding it.
    Env(String),
}

/// libpq `sslmode` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try TLS, fall back to plain.
    #[default]
    Prefer,
    /// Require TLS.
    Require,
}

/// What a program does when a requirement is not met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Otherwise {
    /// Log line(s), exactly as the real program prints them. `{error}` is replaced by the
    /// error text the failed check produced (for example the Postgres server's message).
    pub log: Vec<String>,
    /// Exit with this code; absent means keep running (and keep retrying every `retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How often a program that keeps running retries and logs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Duration>,
    /// Whether the program reports Ready while failing (operators often do).
    #[serde(default)]
    pub ready: bool,
}

/// "For each object of this kind, own these objects": a declarative operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperatorRule {
    /// The watched custom resource; the rule only runs while it is served.
    pub for_each: ResourceNeed,
    /// Objects to create per watched object. Templates: `{{name}}`, `{{namespace}}` and any
    /// field of the watched object, e.g. `{{spec.secretStoreRef.name}}` (see [`super::reports::Report`]).
    #[schemars(with = "Vec<serde_json::Value>")]
    pub owns: Vec<Value>,
    /// Log lines while the watched resource is not served (a client-go reflector error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_while_unserved: Vec<String>,
    /// What the operator reports on each watched object (conditions, status fields, events,
    /// objects owned in one case only): the first case whose observations all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<super::reports::Report>,
    /// The `source.component` of the events it records (its event recorder's name, e.g.
    /// `external-secrets`); default the container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------------------------

/// The Postgres server a scenario needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Postgres {
    /// Whether the server offers TLS.
    #[serde(default = "yes")]
    pub ssl: bool,
    /// Client authentication rules (`pg_hba.conf` lines), first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hba: Vec<HbaRule>,
    /// Roles to create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<PgRole>,
    /// Databases to create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<PgDatabase>,
}

const fn yes() -> bool {
    true
}

/// One `pg_hba.conf` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HbaRule {
    /// Connection type.
    #[serde(rename = "type")]
    pub kind: HbaType,
    /// Database name or `all`.
    #[serde(default = "all")]
    pub database: String,
    /// User name or `all`.
    #[serde(default = "all")]
    pub user: String,
    /// Authentication method.
    pub method: HbaMethod,
}

fn all() -> String {
    "all".to_owned()
}

/// `pg_hba.conf` connection types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HbaType {
    /// TCP, with or without TLS.
    Host,
    /// TCP with TLS only.
    Hostssl,
    /// TCP without TLS only.
    Hostnossl,
}

/// `pg_hba.conf` authentication methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HbaMethod {
    /// SCRAM-SHA-256 password (written `scram-sha-256`, as in `pg_hba.conf`).
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// MD5 password.
    Md5,
    /// Always reject.
    Reject,
}

/// A Postgres role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PgRole {
    /// Role name.
    pub name: String,
    /// `LOGIN`.
    #[serde(default = "yes")]
    pub login: bool,
    /// `CREATEDB`.
    #[serde(default)]
    pub createdb: bool,
    /// A Secret the harness writes with the generated password, so pods can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretRef>,
    /// Whether the role is created at setup (default). `false` declares a role that only
    /// exists on paper (its name is reserved, its password generated and written to
    /// `passwordSecret`), for failures where nobody ran `CREATE ROLE`; a fix can create it
    /// with `{{password:<role>}}`.
    #[serde(default = "yes")]
    pub create: bool,
}

/// A Secret key in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    /// Namespace.
    pub namespace: String,
    /// Secret name.
    pub name: String,
    /// Key in `data`.
    pub key: String,
}

/// A Postgres database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PgDatabase {
    /// Database name.
    pub name: String,
    /// Owning role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Whether the database is created at setup (default). `false` reserves the name for a
    /// database the application or a fix creates (it is dropped at teardown all the same).
    #[serde(default = "yes")]
    pub create: bool,
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

/// The break phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Break {
    /// Steps that reproduce the failure.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Symptoms that must all be observed; each before its own deadline.
    pub symptoms: Vec<Expectation>,
}

/// The converge phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Converge {
    /// Deadline for all expectations to hold at once.
    pub within: Duration,
    /// How long they must then keep holding, with no new restarts and no condition flips.
    #[serde(default = "default_settle")]
    pub settle: Duration,
    /// Health expectations.
    pub expect: Vec<Expectation>,
    /// Longest the cluster may take, from the fix's first step, until every expectation holds;
    /// a slower recovery fails the run (the first run only: replays must not converge at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Duration>,
}

fn default_settle() -> Duration {
    Duration::from_secs(60)
}

/// Which objects the snapshot covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotSpec {
    /// Kinds to project. Default: workloads, pods, services, claims and the scenario's CRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Namespaces to project. Default: every namespace the scenario applied objects into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Objects to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<ObjectRef>,
    /// Whether to take a snapshot at all.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for SnapshotSpec {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            namespaces: Vec::new(),
            exclude: Vec::new(),
            enabled: true,
        }
    }
}

/// A plausible wrong fix: the scenario's setup and break, then these steps instead of the fix;
/// the cluster must not converge within `converge.within`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mutant {
    /// Short name, lowercase words joined by `-` (e.g. `secret-without-key`); the trial is
    /// named `<backend>::<area>/<scenario>::mutant::<name>`.
    pub name: String,
    /// Why someone would try this fix, and why it does not heal the cluster.
    pub description: String,
    /// The wrong fix, in place of the scenario's `fix`.
    pub fix: Vec<Step>,
}

/// The counterfactual run: setup and break again, skip the fix, require no convergence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Counterfactual {
    /// Whether to run it (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Why it is disabled; required when `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Default for Counterfactual {
    fn default() -> Self {
        Self {
            enabled: true,
            reason: None,
        }
    }
}

/// Per-backend settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendOverrides {
    /// On the simulated cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<BackendOverride>,
    /// On k3d clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3d: Option<BackendOverride>,
    /// On an existing cluster from a kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<BackendOverride>,
}

/// How one backend treats this scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendOverride {
    /// Do not run here, for this reason (reported as ignored with it).
    pub skip: String,
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

/// One action against the cluster or the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Apply manifests (create or update).
    Apply(ApplyStep),
    /// Delete an object.
    Delete(DeleteStep),
    /// Patch an object.
    Patch(PatchStep),
    /// Set an object's replicas through its `scale` subresource.
    Scale(ScaleStep),
    /// `kubectl rollout restart`: stamp the pod template's restartedAt annotation.
    RolloutRestart(ObjectRef),
    /// Run SQL against the scenario's Postgres server.
    Sql(SqlStep),
    /// Wait until an expectation holds (or fail at its deadline).
    Expect(Expectation),
    /// Let time pass (simulated time on the sim).
    Sleep(Duration),
    /// Start an infrastructure fault (API server latency or errors, a node that stops
    /// reporting, a killed container, a registry or DNS outage).
    Fault(Box<super::FaultStep>),
    /// End the fault of this name (a fault's `name`, or its keyword).
    EndFault(String),
    /// A node joins the cluster (its kubelet registers it), as `k3d node create` adds one.
    AddNode(Node),
    /// A node leaves the cluster: its Node object is deleted, and its pods with it.
    RemoveNode(super::shape::NodeRemoval),
    /// Switch the cluster's LoadBalancer provider (`none` or `service-lb`).
    LoadBalancer(LoadBalancerProvider),
    /// Push a new commit to a GitOps repository (`gitops.repos`).
    Commit(super::CommitStep),
}

impl Step {
    /// The step's keyword as written in scenario files.
    #[must_use]
    pub const fn keyword(&self) -> &'static str {
        match self {
            Self::Apply(_) => "apply",
            Self::Delete(_) => "delete",
            Self::Patch(_) => "patch",
            Self::Scale(_) => "scale",
            Self::RolloutRestart(_) => "rolloutRestart",
            Self::Sql(_) => "sql",
            Self::Expect(_) => "expect",
            Self::Sleep(_) => "sleep",
            Self::Fault(_) => "fault",
            Self::EndFault(_) => "endFault",
            Self::AddNode(_) => "addNode",
            Self::RemoveNode(_) => "removeNode",
            Self::LoadBalancer(_) => "loadBalancer",
            Self::Commit(_) => "commit",
        }
    }
}

/// Manifests to apply: a file next to the scenario, or inline objects. Exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplyStep {
    /// A YAML file (multi-document allowed), relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inline objects: one object or a list of objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub inline: Option<Value>,
    /// Namespace for namespaced objects that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Use server-side apply (default true), as `kubectl apply --server-side`.
    #[serde(default = "yes")]
    pub server_side: bool,
    /// Whether the apply is expected to fail, and with what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<ApiErrorExpectation>,
}

/// An API error a step must get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiErrorExpectation {
    /// Text the error message must contain, e.g. `no matches for kind "Prometheus"`.
    pub message: String,
}

/// An object a program looks up by name: the name it has built in, unless its configuration
/// names another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectNeed {
    /// `apiVersion`; may be omitted for built-in kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind, e.g. `ClickHouseInstallation`.
    pub kind: String,
    /// The name the program looks up when its configuration gives none (a hard-coded default).
    pub name: String,
    /// Where the program reads the name from, as a `config` need reads a value (`env`, `arg`,
    /// `file` with `key`); a non-empty value there wins over `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_from: Option<ConfigSource>,
    /// Namespace, for namespaced kinds (default: the pod's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apiVersion`; may be omitted for built-in kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Delete an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteStep {
    /// What to delete.
    pub object: ObjectRef,
    /// Wait until it is gone (finalizers done), like `kubectl delete --wait`.
    #[serde(default = "yes")]
    pub wait: bool,
}

/// Patch an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchStep {
    /// What to patch.
    pub object: ObjectRef,
    /// Patch type, as `kubectl patch --type`.
    #[serde(rename = "type", default)]
    pub kind: PatchType,
    /// The patch document.
    #[schemars(with = "serde_json::Value")]
    pub patch: Value,
}

/// Patch types, named as `kubectl patch --type` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchType {
    /// Strategic merge patch (built-in kinds only).
    #[default]
    Strategic,
    /// JSON merge patch (RFC 7386).
    Merge,
    /// JSON patch (RFC 6902): a list of operations.
    Json,
}

/// Scale an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleStep {
    /// A Deployment, ReplicaSet or StatefulSet.
    pub object: ObjectRef,
    /// New replica count.
    pub replicas: u32,
}

/// Run SQL on the scenario's Postgres server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlStep {
    /// Role to run as; default the server's administrator.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Database; default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Statements, run in order in one session. `{{password:<role>}}` stands for the
    /// generated password of a role the scenario declares, as a quoted SQL literal (its
    /// SCRAM-SHA-256 verifier, so the password itself is never in SQL text), for fixes such as
    /// `CREATE ROLE app LOGIN PASSWORD {{password:app}}`.
    pub query: String,
    /// Expect this error instead of success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<SqlErrorExpectation>,
}

/// An SQL error: SQLSTATE and, optionally, text the message contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlErrorExpectation {
    /// Five-character SQLSTATE, e.g. `42501`.
    pub sqlstate: String,
    /// Text the server's message contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------

/// Something observable that must hold before a deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Expectation {
    /// Objects match a partial assertion tree.
    Object(ObjectExpectation),
    /// No object with this name exists.
    Absent(AbsentExpectation),
    /// A container's log contains a line.
    Log(LogExpectation),
    /// An event was recorded.
    Event(EventExpectation),
    /// A SQL statement fails with an SQLSTATE.
    SqlError(SqlErrorCheck),
    /// A SQL query succeeds (and, optionally, returns these rows).
    Sql(SqlCheck),
    /// An Argo CD Application's sync, health and last operation (`gitops:`).
    App(super::AppExpectation),
}

impl Expectation {
    /// The expectation's deadline, if it has its own.
    #[must_use]
    pub fn within(&self) -> Option<Duration> {
        match self {
            Self::Object(e) => e.within,
            Self::Absent(e) => e.within,
            Self::Log(e) => e.within,
            Self::Event(e) => e.within,
            Self::SqlError(e) => e.within,
            Self::Sql(e) => e.within,
            Self::App(e) => e.within,
        }
    }

    /// How long the expectation must hold without interruption, if it says (`for:`).
    #[must_use]
    pub fn hold_for(&self) -> Option<Duration> {
        match self {
            Self::Object(e) => e.for_,
            Self::Absent(e) => e.for_,
            Self::App(e) => e.for_,
            Self::Log(_) | Self::Event(_) | Self::SqlError(_) | Self::Sql(_) => None,
        }
    }

    /// The expectation's keyword as written in scenario files.
    #[must_use]
    pub const fn keyword(&self) -> &'static str {
        match self {
            Self::Object(_) => "object",
            Self::Absent(_) => "absent",
            Self::Log(_) => "log",
            Self::Event(_) => "event",
            Self::SqlError(_) => "sqlError",
            Self::Sql(_) => "sql",
            Self::App(_) => "app",
        }
    }
}

/// Objects that must match a partial tree.
///
/// Maps match partially (keys not written are ignored); a list matches when each written
/// element matches some element of the actual list (a filter, not a length check);
/// scalars match when equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectExpectation {
    /// `apiVersion`; may be omitted for built-in kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name; absent means every object selected by `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector (equality) choosing the objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How many objects must be selected: a number (`count: 1`) or bounds
    /// (`count: {min: 1, max: 3}`, `count: {max: 0}`); default at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// Whether every selected object must match (`all`, the default), at least one (`any`), or
    /// none of them (`none`: "no pod is in CrashLoopBackOff").
    #[serde(default)]
    pub require: Quantifier,
    /// The partial tree the selected objects must match.
    #[schemars(with = "serde_json::Value")]
    pub matches: Value,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
    /// Must hold without interruption for this long (starting before `within` ends): for
    /// symptoms that take time, such as "stays Pending for 5m".
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Duration>,
}

/// How many of the selected objects must match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quantifier {
    /// Every selected object.
    #[default]
    All,
    /// At least one selected object (e.g. the new pod of a rollout, beside the old one).
    Any,
    /// No selected object (selecting none satisfies it, unless `count` asks for some).
    None,
}

/// How many objects an expectation selects: exactly `n`, or within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// At least this many.
    pub min: Option<u32>,
    /// At most this many.
    pub max: Option<u32>,
}

impl Count {
    /// Whether `n` objects satisfy it.
    #[must_use]
    pub fn allows(self, n: usize) -> bool {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "{a}"),
            (Some(a), Some(b)) => write!(f, "{a} to {b}"),
            (Some(a), None) => write!(f, "at least {a}"),
            (None, Some(b)) => write!(f, "at most {b}"),
            (None, None) => f.write_str("any number of"),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => serializer.serialize_u32(a),
            _ => {
                let mut m = serializer.serialize_map(None)?;
                if let Some(a) = self.min {
                    m.serialize_entry("min", &a)?;
                }
                if let Some(b) = self.max {
                    m.serialize_entry("max", &b)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of objects, or `{min: N, max: M}` (either may be left out)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Count, E> {
                let n =
                    u32::try_from(v).map_err(|_| E::custom(format!("count {v} is too large")))?;
                Ok(Count {
                    min: Some(n),
                    max: Some(n),
                })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Count, E> {
                Err(E::custom(format!(
                    "invalid count {v}: expected a number of objects, 0 or more"
                )))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Count, A::Error> {
                let mut count = Count {
                    min: None,
                    max: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "min" => count.min = Some(map.next_value()?),
                        "max" => count.max = Some(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["min", "max"]));
                        }
                    }
                }
                if let (Some(a), Some(b)) = (count.min, count.max)
                    && a > b
                {
                    return Err(serde::de::Error::custom(format!(
                        "count min {a} is above max {b}"
                    )));
                }
                Ok(count)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Count {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Count".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A number of objects, or bounds `{min, max}` (either may be left out).",
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "min": {"type": "integer", "minimum": 0},
                        "max": {"type": "integer", "minimum": 0}
                    }
                }
            ]
        })
    }
}

/// An object that must not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbsentExpectation {
    /// The object.
    pub object: ObjectRef,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
    /// Must stay absent without interruption for this long ("the Secret is never created").
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Duration>,
}

/// A log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogExpectation {
    /// Namespace of the pod(s).
    pub namespace: String,
    /// Pod name; absent means any pod selected by `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Label selector (equality) choosing pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Container; default the pod's only or first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Text a log line contains.
    pub contains: String,
    /// Only lines written in this last stretch of time count (`kubectl logs --since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Duration>,
    /// Holds when no line contains the text (with `since`: no line written lately does): an
    /// error the program logs again and again has stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
}

/// An event recorded by the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventExpectation {
    /// Namespace of the event.
    pub namespace: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventType>,
    /// Event reason, e.g. `FailedAttachVolume`.
    pub reason: String,
    /// Text the event message contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Kind of the involved object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub involved_kind: Option<String>,
    /// Name prefix of the involved object (generated suffixes vary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub involved_name_prefix: Option<String>,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
}

/// Event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The value of `Event.type` (`v1.EventTypeNormal`, `v1.EventTypeWarning`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// A SQL statement that must fail with an SQLSTATE (the symptom of a database failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlErrorCheck {
    /// Role to connect as.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Database to connect to; default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// libpq `sslmode` of the connection.
    #[serde(default)]
    pub sslmode: SslMode,
    /// The statement; may be empty when connecting is what fails.
    #[serde(default)]
    pub query: String,
    /// Five-character SQLSTATE, e.g. `42501`.
    pub sqlstate: String,
    /// Text the server's message contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
}

/// A SQL query that must succeed: a login works, a database or table exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlCheck {
    /// Role to connect as (with its generated password); default the server's administrator.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Database to connect to; default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// libpq `sslmode` of the connection.
    #[serde(default)]
    pub sslmode: SslMode,
    /// One statement; may be empty when connecting is what must work.
    #[serde(default)]
    pub query: String,
    /// The rows the query must return, each cell as text (SQL NULL matches no text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<String>>>,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
}

/// What a program serves on one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Serve {
    /// The container port.
    pub port: u16,
    /// The protocol spoken there.
    pub protocol: Protocol,
    /// Where the program reads the password it requires, e.g. `{arg: --requirepass}` or
    /// `{env: REDIS_PASSWORD}`; an absent or empty value means none is required (as
    /// `requirepass ""` does for Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<ConfigSource>,
}

/// A protocol a stand-in program serves and connects with. Postgres is not one: Postgres
/// logins go to the real server (`needs: {postgres: ...}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Redis (RESP): `AUTH` against `requirepass`, with Redis 7's replies.
    #[default]
    Redis,
}

impl Protocol {
    /// The port a client uses when its target names none.
    #[must_use]
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Redis => 6379,
        }
    }

    /// The URL scheme of the protocol (`redis://`).
    #[must_use]
    pub const fn scheme(self) -> &'static str {
        match self {
            Self::Redis => "redis",
        }
    }
}

/// A connection a program makes: where to (exactly one of `to` or `url`), how, and with
/// which credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectNeed {
    /// The protocol the client speaks.
    #[serde(default)]
    pub protocol: Protocol,
    /// The target as written: a Service `name[.namespace[.svc[.cluster.local]]][:port]`, or a
    /// Service's cluster IP or a pod's IP with a port. The port defaults to the protocol's
    /// (6379 for Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Where the client reads its connection URL, e.g. `{env: REDIS_URL}` holding
    /// `redis://:password@redis-master:6379/0`: the target and, when the URL has one, the
    /// password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<ConfigSource>,
    /// Where the client reads its password, e.g. `{env: REDIS_PASSWORD}`; when it reads a
    /// non-empty value, that value is sent instead of the URL's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<ConfigSource>,
    /// The client's runtime, which words connection errors: Go's `net` package (`dial tcp
    /// <ip>:<port>: connect: connection refused`) or Node.js (`connect ECONNREFUSED <ip>:<port>`).
    #[serde(default)]
    pub runtime: ClientRuntime,
    /// What a client that only warns logs, before carrying on, when it sends a password the
    /// server does not require (ioredis 5: ``[WARN] This Redis server's `default` user does
    /// not require a password, but a password was supplied``). Absent: the client fails with
    /// the server's reply, as most clients do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unneeded_password: Option<Vec<String>>,
}

/// The runtime a client program is written for, which words its connection errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientRuntime {
    /// Go (`net.Dial`).
    #[default]
    Go,
    /// Node.js (`net.connect`, `dns.lookup`).
    Node,
}
