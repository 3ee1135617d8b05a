//! From a scenario's cluster shape to a `k3d cluster create` command line.
//!
//! Mapping (k3d v5 flags, checked against k3d's `cmd/cluster/clusterCreate.go` and its node
//! filter grammar `group[:subset]` in `pkg/util/filter.go`):
//!
//! - control-plane nodes become k3d servers, the others agents; a scenario without a
//!   control-plane node (a managed control plane, as on EKS) gets one extra server tainted
//!   `node-role.kubernetes.io/control-plane:NoSchedule` so that workloads stay on its workers;
//! - node names via k3s `--node-name`, labels via `--k3s-node-label`, taints via k3s
//!   `--node-taint`, a non-default pod limit via the kubelet's `max-pods`;
//! - labels the kubelet may not set on its own node (most of `kubernetes.io`, e.g.
//!   `node-role.kubernetes.io/*`) would stop the kubelet from starting, so they are applied
//!   through the API once the cluster runs ([`CreateSpec::api_labels`]);
//! - k3s's Traefik is disabled (a bare cluster has no ingress controller), and so is its
//!   ServiceLB unless the scenario asks for a LoadBalancer provider;
//! - the owning process is recorded twice: as the Docker label [`OWNER_LABEL`] on every node
//!   container (for people: `docker ps --filter label=relapse.owner`), and as the environment
//!   variable [`OWNER_ENV`], because `k3d cluster list -o json` reports a node's full
//!   environment but only its `k3d*` labels (`pkg/runtimes/docker/translate.go`), while labels
//!   starting `k3d.` are reserved (`cmd/util/runtimeLabels.go`).
//!
//! What k3d cannot show is refused with [`Unsupported`] reasons (see [`CreateSpec::new`]).

use std::fmt;
use std::time::Duration;

use rand::Rng;

use super::error::K3dError;
use super::owner::Owner;
use crate::scenario::{
    Arch, Capacity, ClusterShape, LoadBalancerProvider, Node, NodeRole, Taint, TaintEffect,
    VolumeBindingMode, VolumeKind,
};

/// Prefix of every cluster name this tool creates; `gc` looks only at clusters carrying it.
pub const NAME_PREFIX: &str = "relapse-";
/// Docker label on every node container naming the owning process ([`Owner::token`]).
pub const OWNER_LABEL: &str = "relapse.owner";
/// Environment variable on every node container naming the owning process ([`Owner::token`]).
pub const OWNER_ENV: &str = "RELAPSE_OWNER";

/// k3d's limit on cluster names (`DefaultClusterNameMaxLength`, `pkg/types/defaults.go`).
const MAX_NAME_LEN: usize = 32;
const SUFFIX_LEN: usize = 8;
/// The kubelet's default `maxPods`.
const KUBELET_DEFAULT_MAX_PODS: u32 = 110;
/// The control-plane taint key (`node-role.kubernetes.io/control-plane`).
const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// The name of a cluster this tool owns: `relapse-[<hint>-]<random>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName(String);

impl ClusterName {
    /// A fresh name; `hint` (e.g. the scenario name) is shortened to fit k3d's 32 characters.
    #[must_use]
    pub fn generate(hint: Option<&str>) -> Self {
        let mut rng = rand::rng();
        let suffix: String = (0..SUFFIX_LEN)
            .map(|_| {
                let i = rng.random_range(0..36u8);
                char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
            })
            .collect();
        let room = MAX_NAME_LEN - NAME_PREFIX.len() - SUFFIX_LEN - 1;
        let hint = hint.map(|h| sanitize(h, room)).unwrap_or_default();
        if hint.is_empty() {
            Self(format!("{NAME_PREFIX}{suffix}"))
        } else {
            Self(format!("{NAME_PREFIX}{hint}-{suffix}"))
        }
    }

    /// An existing name, checked against k3d's rules and this tool's prefix.
    ///
    /// # Errors
    /// [`K3dError::InvalidName`] when it lacks the prefix, is too long or is not a host name.
    pub fn new(name: impl Into<String>) -> Result<Self, K3dError> {
        let name = name.into();
        let why = if !name.starts_with(NAME_PREFIX) {
            Some("it does not start with `relapse-`")
        } else if name.len() > MAX_NAME_LEN {
            Some("k3d allows at most 32 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || name.ends_with('-')
        {
            Some("use lowercase letters, digits and inner hyphens only")
        } else {
            None
        };
        match why {
            Some(why) => Err(K3dError::InvalidName { name, why }),
            None => Ok(Self(name)),
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn sanitize(hint: &str, max: usize) -> String {
    let mut out = String::new();
    for c in hint.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

/// The architecture of this machine, as Kubernetes names it; `None` for others.
#[must_use]
pub fn host_arch() -> Option<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Arch::Amd64),
        "aarch64" => Some(Arch::Arm64),
        _ => None,
    }
}

/// Choices that come from the run, not from the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The k3s image tag, e.g. `v1.31.5-k3s1` (nightly matrix entries pass their own).
    pub k3s_version: String,
    /// Architecture of the machine running Docker; node containers can only have this one.
    pub host_arch: Option<Arch>,
}

impl CreateOptions {
    /// Options for `k3s_version` on this machine's architecture.
    #[must_use]
    pub fn new(k3s_version: impl Into<String>) -> Self {
        Self {
            k3s_version: k3s_version.into(),
            host_arch: host_arch(),
        }
    }
}

/// A scenario feature a k3d cluster cannot reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// Nodes of several architectures.
    MixedArch(Vec<Arch>),
    /// Nodes of an architecture other than the host's.
    ForeignArch {
        /// The nodes' architecture.
        arch: Arch,
        /// The host's, if it is one Kubernetes names.
        host: Option<Arch>,
    },
    /// A node with other allocatable CPU or memory than the defaults.
    Capacity {
        /// The node.
        node: String,
        /// Its declared CPU.
        cpu: String,
        /// Its declared memory.
        memory: String,
    },
    /// An EBS-like storage class.
    AttachableStorage {
        /// The class.
        class: String,
    },
    /// Any storage class other than k3s's built-in default `local-path`.
    StorageClass {
        /// The class.
        class: String,
    },
    /// A control-plane node joining during a run (`addNode`).
    AddServer {
        /// The node.
        node: String,
    },
    /// A control-plane node leaving during a run (`removeNode`).
    RemoveServer {
        /// The node.
        node: String,
    },
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MixedArch(archs) => {
                let names: Vec<_> = archs.iter().map(|a| a.as_str()).collect();
                write!(
                    f,
                    "nodes of several architectures ({}): every k3d node is a container of the host's architecture",
                    names.join(", ")
                )
            }
            Self::ForeignArch { arch, host } => write!(
                f,
                "{} nodes, but this host is {}: k3d runs node containers of the host's architecture only",
                arch.as_str(),
                host.map_or("neither amd64 nor arm64", |h| h.as_str())
            ),
            Self::Capacity { node, cpu, memory } => write!(
                f,
                "node {node} declares cpu {cpu} and memory {memory}: k3d nodes report the host's CPUs and memory"
            ),
            Self::AttachableStorage { class } => write!(
                f,
                "storage class {class} is attachable (EBS-like, one node at a time): k3d has only node-local volumes, so there is no attach, detach or Multi-Attach"
            ),
            Self::StorageClass { class } => write!(
                f,
                "storage class {class}: a k3d cluster has only k3s's default class local-path (node-local, WaitForFirstConsumer); others are not created"
            ),
            Self::AddServer { node } => write!(
                f,
                "node {node} joins as a control-plane node: a k3s server can only join a k3d cluster whose servers run embedded etcd, which a cluster created with one server does not"
            ),
            Self::RemoveServer { node } => write!(
                f,
                "node {node} leaves, but it is a k3s server of the k3d cluster: deleting its container takes the control plane (or an etcd member) down with it"
            ),
        }
    }
}

/// A node label set through the API after creation, because the kubelet may not set it itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabel {
    /// Node name.
    pub node: String,
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

/// One k3d node (server or agent) and what is set on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct NodeSpec {
    /// The Kubernetes node name; `None` keeps k3d's container name.
    name: Option<String>,
    labels: Vec<(String, String)>,
    taints: Vec<String>,
    max_pods: Option<u32>,
}

/// Everything needed to create one k3d cluster for a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    name: ClusterName,
    image: String,
    servers: Vec<NodeSpec>,
    agents: Vec<NodeSpec>,
    service_lb: bool,
    owner: Owner,
    api_labels: Vec<NodeLabel>,
}

impl CreateSpec {
    /// Plans the cluster for `cluster`, named `name`, owned by `owner` (normally
    /// [`Owner::current`]).
    ///
    /// # Errors
    /// [`K3dError::CannotReproduce`] listing every feature k3d cannot show: nodes of several
    /// architectures or of another architecture than the host's, non-default node CPU or
    /// memory, attachable (EBS-like) storage and storage classes other than k3s's `local-path`.
    /// [`K3dError::InvalidVersion`] when the k3s version is not an image tag.
    pub fn new(
        cluster: &ClusterShape,
        options: &CreateOptions,
        name: ClusterName,
        owner: Owner,
    ) -> Result<Self, K3dError> {
        if !valid_tag(&options.k3s_version) {
            return Err(K3dError::InvalidVersion(options.k3s_version.clone()));
        }
        let default_node;
        let nodes: &[Node] = if cluster.nodes.is_empty() {
            default_node = [Node {
                name: "node-1".to_owned(),
                arch: Arch::Amd64,
                roles: vec![NodeRole::ControlPlane, NodeRole::Worker],
                labels: Default::default(),
                taints: Vec::new(),
                capacity: Capacity::default(),
            }];
            &default_node
        } else {
            &cluster.nodes
        };

        let mut reasons = Vec::new();
        check_arch(nodes, options.host_arch, &mut reasons);
        check_storage(cluster, &mut reasons);
        let default_capacity = Capacity::default();
        for node in nodes {
            // The defaults stand for "an ordinary node": accepted, although a k3d node really
            // reports the host's resources. Anything declared on purpose cannot be honoured.
            if node.capacity.cpu != default_capacity.cpu
                || node.capacity.memory != default_capacity.memory
            {
                reasons.push(Unsupported::Capacity {
                    node: node.name.clone(),
                    cpu: node.capacity.cpu.clone(),
                    memory: node.capacity.memory.clone(),
                });
            }
        }
        if !reasons.is_empty() {
            return Err(K3dError::CannotReproduce(reasons));
        }

        let mut api_labels = Vec::new();
        let mut servers = Vec::new();
        let mut agents = Vec::new();
        for node in nodes {
            let control_plane = node.roles.contains(&NodeRole::ControlPlane);
            let worker = node.roles.contains(&NodeRole::Worker);
            let mut spec = node_spec(node, &mut api_labels);
            if control_plane && !worker && !node.taints.iter().any(|t| t.key == CONTROL_PLANE_TAINT)
            {
                spec.taints
                    .push(format!("{CONTROL_PLANE_TAINT}:NoSchedule"));
            }
            if control_plane {
                servers.push(spec);
            } else {
                agents.push(spec);
            }
        }
        if servers.is_empty() {
            servers.push(NodeSpec {
                taints: vec![format!("{CONTROL_PLANE_TAINT}:NoSchedule")],
                ..NodeSpec::default()
            });
        }

        Ok(Self {
            name,
            image: format!("rancher/k3s:{}", options.k3s_version),
            servers,
            agents,
            service_lb: cluster.load_balancer == LoadBalancerProvider::ServiceLb,
            owner,
            api_labels,
        })
    }

    /// The cluster's name.
    #[must_use]
    pub fn name(&self) -> &ClusterName {
        &self.name
    }

    /// The process recorded as owner.
    #[must_use]
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The k3s image, `rancher/k3s:<version>`.
    #[must_use]
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Number of k3d servers and agents.
    #[must_use]
    pub fn node_counts(&self) -> (usize, usize) {
        (self.servers.len(), self.agents.len())
    }

    /// Node labels to set through the API once the cluster runs (see [`super::label_nodes`]).
    #[must_use]
    pub fn api_labels(&self) -> &[NodeLabel] {
        &self.api_labels
    }

    /// The Kubernetes names of the cluster's nodes, servers first: the scenario's names, and for
    /// the extra server of a scenario without control plane the name k3d gives its container,
    /// `k3d-<cluster>-server-<i>` (`pkg/client/cluster.go` `GenerateNodeName`), which is also
    /// the container's hostname (`pkg/runtimes/docker/translate.go`) and so k3s's node name.
    #[must_use]
    pub fn node_names(&self) -> Vec<String> {
        let groups = [("server", &self.servers), ("agent", &self.agents)];
        groups
            .into_iter()
            .flat_map(|(role, nodes)| {
                nodes.iter().enumerate().map(move |(i, node)| {
                    node.name
                        .clone()
                        .unwrap_or_else(|| format!("k3d-{}-{role}-{i}", self.name))
                })
            })
            .collect()
    }

    /// Whether k3d puts its load balancer in front of the servers: only with several servers,
    /// where it is the one stable API endpoint.
    #[must_use]
    pub fn load_balancer(&self) -> bool {
        self.servers.len() > 1
    }

    /// Whether `other` would create the same cluster (image, nodes with their names, labels
    /// and taints, load balancer), whatever the two clusters are named and whoever owns them.
    #[must_use]
    pub fn same_shape(&self, other: &Self) -> bool {
        self.image == other.image
            && self.servers == other.servers
            && self.agents == other.agents
            && self.service_lb == other.service_lb
            && self.api_labels == other.api_labels
    }

    /// The arguments of `k3d cluster create`, with k3d's own `--timeout`.
    #[must_use]
    pub fn create_args(&self, timeout: Duration) -> Vec<String> {
        let token = self.owner.token();
        let mut args = vec![
            "cluster".to_owned(),
            "create".to_owned(),
            self.name.to_string(),
            format!("--image={}", self.image),
            format!("--servers={}", self.servers.len()),
            format!("--agents={}", self.agents.len()),
        ];
        if !self.load_balancer() {
            args.push("--no-lb".to_owned());
        }
        args.extend([
            "--wait".to_owned(),
            format!("--timeout={}", go_duration(timeout)),
            "--kubeconfig-update-default=false".to_owned(),
            "--kubeconfig-switch-context=false".to_owned(),
            format!("--runtime-label={OWNER_LABEL}={}@all", escape(&token)),
            format!("--env={OWNER_ENV}={}@all", escape(&token)),
            "--k3s-arg=--disable=traefik@server:*".to_owned(),
        ]);
        if !self.service_lb {
            args.push("--k3s-arg=--disable=servicelb@server:*".to_owned());
        }
        let groups = [("server", &self.servers), ("agent", &self.agents)];
        for (group, nodes) in groups {
            for (i, node) in nodes.iter().enumerate() {
                let filter = format!("{group}:{i}");
                if let Some(name) = &node.name {
                    args.push(format!("--k3s-arg=--node-name={}@{filter}", escape(name)));
                }
                for (key, value) in &node.labels {
                    args.push(format!(
                        "--k3s-node-label={}={}@{filter}",
                        escape(key),
                        escape(value)
                    ));
                }
                for taint in &node.taints {
                    args.push(format!("--k3s-arg=--node-taint={}@{filter}", escape(taint)));
                }
                if let Some(pods) = node.max_pods {
                    args.push(format!("--k3s-arg=--kubelet-arg=max-pods={pods}@{filter}"));
                }
            }
        }
        args
    }
}

/// The k3s flags of `node` (name, labels the kubelet may set, taints, pod limit); the labels
/// it may not set go to `api_labels`.
fn node_spec(node: &Node, api_labels: &mut Vec<NodeLabel>) -> NodeSpec {
    let mut spec = NodeSpec {
        name: Some(node.name.clone()),
        max_pods: (node.capacity.pods != KUBELET_DEFAULT_MAX_PODS).then_some(node.capacity.pods),
        ..NodeSpec::default()
    };
    for (key, value) in &node.labels {
        if kubelet_may_set(key) {
            spec.labels.push((key.clone(), value.clone()));
        } else {
            api_labels.push(NodeLabel {
                node: node.name.clone(),
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    spec.taints = node.taints.iter().map(taint_arg).collect();
    spec
}

/// Why a node of this shape cannot be a k3d node: another architecture than the host's, or
/// CPU or memory declared on purpose.
fn check_node(node: &Node, host: Option<Arch>, reasons: &mut Vec<Unsupported>) {
    if Some(node.arch) != host {
        reasons.push(Unsupported::ForeignArch {
            arch: node.arch,
            host,
        });
    }
    let default_capacity = Capacity::default();
    if node.capacity.cpu != default_capacity.cpu || node.capacity.memory != default_capacity.memory
    {
        reasons.push(Unsupported::Capacity {
            node: node.name.clone(),
            cpu: node.capacity.cpu.clone(),
            memory: node.capacity.memory.clone(),
        });
    }
}

/// How long k3d's name for an added node may be: its container `k3d-<name>-0` is also the
/// node's hostname, at most 63 characters.
const MAX_ADDED_NAME_LEN: usize = 63 - "k3d-".len() - "-0".len();

/// One node joining a running cluster: `k3d node create` (a scenario's `addNode` step).
///
/// Checked against k3d v5.8.3's `cmd/node/nodeCreate.go`: `create NAME` with `--cluster`,
/// `--role`, `--image`, `--wait`/`--timeout`, `--k3s-node-label` (a string slice of `k=v`, no
/// node filter) and `--k3s-arg` (a string array handed to k3s as it is, no node filter); the
/// container is named `k3d-<NAME>-<replica>` (`fmt.Sprintf("%s-%s-%d", ...)`, one replica).
/// k3d builds the node from an existing one of the cluster (`NodeAddToCluster` in
/// `pkg/client/node.go`, merged with `mergo.MergeWithOverwrite`): its environment and Docker
/// labels (the owner, see [`OWNER_ENV`]) carry over, the k3s arguments given here replace the
/// source node's, but the source node's k3s node labels are merged in, so
/// [`NodeAddSpec::foreign_labels`] lists those to take off again through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddSpec {
    cluster: ClusterName,
    name: String,
    image: String,
    node: NodeSpec,
    api_labels: Vec<NodeLabel>,
    foreign_labels: Vec<String>,
}

impl NodeAddSpec {
    /// The Kubernetes name of the node.
    #[must_use]
    pub fn node_name(&self) -> &str {
        self.node.name.as_deref().unwrap_or(&self.name)
    }

    /// Its container, `k3d-<name>-0`: what `k3d node delete` takes.
    #[must_use]
    pub fn container(&self) -> String {
        format!("k3d-{}-0", self.name)
    }

    /// Labels to set through the API once it is Ready (see [`super::label_nodes`]).
    #[must_use]
    pub fn api_labels(&self) -> &[NodeLabel] {
        &self.api_labels
    }

    /// Label keys it may inherit from the node k3d copies it from, which it does not declare.
    #[must_use]
    pub fn foreign_labels(&self) -> &[String] {
        &self.foreign_labels
    }

    /// The arguments of `k3d node create`, with k3d's own `--timeout` for its wait.
    #[must_use]
    pub fn create_args(&self, timeout: Duration) -> Vec<String> {
        let mut args = vec![
            "node".to_owned(),
            "create".to_owned(),
            self.name.clone(),
            format!("--cluster={}", self.cluster),
            "--role=agent".to_owned(),
            format!("--image={}", self.image),
            "--wait".to_owned(),
            format!("--timeout={}", go_duration(timeout)),
        ];
        // Always at least the node name: an empty list would keep the source node's arguments,
        // its `--node-name` among them.
        args.push(format!("--k3s-arg=--node-name={}", self.node_name()));
        for (key, value) in &self.node.labels {
            args.push(format!("--k3s-node-label={key}={value}"));
        }
        for taint in &self.node.taints {
            args.push(format!("--k3s-arg=--node-taint={taint}"));
        }
        if let Some(pods) = self.node.max_pods {
            args.push(format!("--k3s-arg=--kubelet-arg=max-pods={pods}"));
        }
        args
    }
}

/// The arguments of `k3d node delete` for `container` (`cmd/node/nodeDelete.go`: `delete
/// (NAME | --all)`). k3d removes the container only; the Node object stays until deleted.
#[must_use]
pub fn node_delete_args(container: &str) -> Vec<String> {
    vec!["node".to_owned(), "delete".to_owned(), container.to_owned()]
}

impl CreateSpec {
    /// Plans `node` joining this cluster while it runs, on a host of `host_arch`.
    ///
    /// # Errors
    /// [`K3dError::CannotReproduce`] when it is a control-plane node, of another architecture
    /// than the host's, or declares CPU or memory.
    pub fn add_node(&self, node: &Node, host_arch: Option<Arch>) -> Result<NodeAddSpec, K3dError> {
        let mut reasons = Vec::new();
        if node.roles.contains(&NodeRole::ControlPlane) {
            reasons.push(Unsupported::AddServer {
                node: node.name.clone(),
            });
        }
        check_node(node, host_arch, &mut reasons);
        if !reasons.is_empty() {
            return Err(K3dError::CannotReproduce(reasons));
        }
        let mut api_labels = Vec::new();
        let spec = node_spec(node, &mut api_labels);
        let hint = sanitize(
            &node.name,
            MAX_ADDED_NAME_LEN.saturating_sub(self.name.as_str().len() + 1),
        );
        let name = if hint.is_empty() {
            self.name.to_string()
        } else {
            format!("{}-{hint}", self.name)
        };
        let mut foreign_labels: Vec<String> = self
            .servers
            .iter()
            .chain(&self.agents)
            .flat_map(|n| n.labels.iter().map(|(k, _)| k.clone()))
            .filter(|k| !node.labels.contains_key(k))
            .collect();
        foreign_labels.sort();
        foreign_labels.dedup();
        Ok(NodeAddSpec {
            cluster: self.name.clone(),
            name,
            image: self.image.clone(),
            node: spec,
            api_labels,
            foreign_labels,
        })
    }

    /// Why node `name` cannot leave this cluster during a run: it is one of its k3s servers.
    #[must_use]
    pub fn remove_refusal(&self, name: &str) -> Option<Unsupported> {
        self.servers
            .iter()
            .any(|n| n.name.as_deref() == Some(name))
            .then(|| Unsupported::RemoveServer {
                node: name.to_owned(),
            })
    }

    /// The container of agent `name` as `k3d cluster create` made it:
    /// `k3d-<cluster>-agent-<i>` (`pkg/client/cluster.go` `GenerateNodeName`).
    #[must_use]
    pub fn agent_container(&self, name: &str) -> Option<String> {
        self.agents
            .iter()
            .position(|n| n.name.as_deref() == Some(name))
            .map(|i| format!("k3d-{}-agent-{i}", self.name))
    }
}

fn check_arch(nodes: &[Node], host: Option<Arch>, reasons: &mut Vec<Unsupported>) {
    let mut archs: Vec<Arch> = Vec::new();
    for node in nodes {
        if !archs.contains(&node.arch) {
            archs.push(node.arch);
        }
    }
    if archs.len() > 1 {
        reasons.push(Unsupported::MixedArch(archs));
    } else if let Some(&arch) = archs.first()
        && Some(arch) != host
    {
        reasons.push(Unsupported::ForeignArch { arch, host });
    }
}

fn check_storage(cluster: &ClusterShape, reasons: &mut Vec<Unsupported>) {
    for class in &cluster.storage_classes {
        if class.kind == VolumeKind::Attachable {
            reasons.push(Unsupported::AttachableStorage {
                class: class.name.clone(),
            });
        } else if !(class.name == "local-path"
            && class.default
            && class.binding_mode == VolumeBindingMode::WaitForFirstConsumer)
        {
            reasons.push(Unsupported::StorageClass {
                class: class.name.clone(),
            });
        }
    }
}

/// A taint as k3s's `--node-taint` takes it: `key=value:Effect`, or `key:Effect` without value.
fn taint_arg(taint: &Taint) -> String {
    let effect = match taint.effect {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    };
    match taint.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={v}:{effect}", taint.key),
        _ => format!("{}:{effect}", taint.key),
    }
}

/// Whether the kubelet accepts `key` in `--node-labels`.
///
/// Mirrors `ValidateKubeletFlags` (kubernetes `cmd/kubelet/app/options/options.go`): a key in the
/// `kubernetes.io` or `k8s.io` namespaces (or their subdomains) must be one of the kubelet's own
/// labels or lie under `kubelet.kubernetes.io` / `node.kubernetes.io`
/// (`pkg/kubelet/apis/well_known_labels.go`); otherwise the kubelet refuses to start.
fn kubelet_may_set(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "kubernetes.io/arch",
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let in_ns = |ns: &str| namespace == ns || namespace.ends_with(&format!(".{ns}"));
    if !in_ns("kubernetes.io") && !in_ns("k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key) || in_ns("kubelet.kubernetes.io") || in_ns("node.kubernetes.io")
}

/// k3d splits flag values at an unescaped `@` (`cmd/util/filter.go`); label keys, values and
/// node names cannot contain one, but a stray one must not become a node filter.
fn escape(value: &str) -> String {
    value.replace('@', r"\@")
}

/// A duration in Go's `time.ParseDuration` syntax.
fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

fn valid_tag(tag: &str) -> bool {
    // OCI tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::StorageClass;

    fn owner() -> Owner {
        Owner {
            host: "h".to_owned(),
            boot_id: None,
            pid: 1,
            start_time: None,
        }
    }

    fn node(name: &str, arch: Arch, roles: &[NodeRole]) -> Node {
        Node {
            name: name.to_owned(),
            arch,
            roles: roles.to_vec(),
            labels: Default::default(),
            taints: Vec::new(),
            capacity: Capacity::default(),
        }
    }

    fn plan(cluster: &ClusterShape) -> Result<CreateSpec, K3dError> {
        let options = CreateOptions {
            k3s_version: "v1.31.5-k3s1".to_owned(),
            host_arch: Some(Arch::Amd64),
        };
        CreateSpec::new(
            cluster,
            &options,
            ClusterName::new("relapse-t").unwrap(),
            owner(),
        )
    }

    fn reasons(cluster: &ClusterShape) -> Vec<Unsupported> {
        match plan(cluster) {
            Err(K3dError::CannotReproduce(r)) => r,
            other => panic!("expected CannotReproduce, got {other:?}"),
        }
    }

    #[test]
    fn generated_names_fit_k3d() {
        let long = ClusterName::generate(Some("RWO Rollout Deadlock, on EBS volumes!"));
        assert!(
            long.as_str().starts_with("relapse-rwo-rollout-dea-"),
            "{long}"
        );
        assert!(long.as_str().len() <= 32);
        assert_eq!(ClusterName::new(long.as_str()).unwrap(), long);
        let bare = ClusterName::generate(None);
        assert_eq!(bare.as_str().len(), "relapse-".len() + 8);
        assert_ne!(ClusterName::generate(None), bare);
        let odd = ClusterName::generate(Some("---"));
        assert_eq!(odd.as_str().len(), "relapse-".len() + 8);
    }

    #[test]
    fn foreign_names_are_rejected() {
        for bad in [
            "dev",
            "relapse-UPPER",
            "relapse-x-",
            "relapse-0123456789012345678901234",
            "relapse-a.b",
        ] {
            assert!(ClusterName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_cluster_is_one_untainted_server() {
        let spec = plan(&ClusterShape::default()).unwrap();
        assert_eq!(spec.node_counts(), (1, 0));
        let args = spec.create_args(Duration::from_secs(300));
        assert!(args.contains(&"--k3s-arg=--node-name=node-1@server:0".to_owned()));
        assert!(!args.iter().any(|a| a.contains("node-taint")), "{args:?}");
        assert!(args.contains(&"--no-lb".to_owned()));
        assert!(args.contains(&"--k3s-arg=--disable=servicelb@server:*".to_owned()));
        assert_eq!(spec.node_names(), ["node-1"]);
    }

    #[test]
    fn managed_control_plane_gets_a_tainted_hidden_server() {
        let cluster = ClusterShape {
            nodes: vec![node("w1", Arch::Amd64, &[NodeRole::Worker])],
            ..ClusterShape::default()
        };
        let spec = plan(&cluster).unwrap();
        assert_eq!(spec.node_counts(), (1, 1));
        let args = spec.create_args(Duration::from_secs(1));
        assert!(
            args.contains(
                &"--k3s-arg=--node-taint=node-role.kubernetes.io/control-plane:NoSchedule@server:0"
                    .to_owned()
            ),
            "{args:?}"
        );
        assert!(
            !args
                .iter()
                .any(|a| a.ends_with("@server:0") && a.contains("node-name"))
        );
        assert!(args.contains(&"--k3s-arg=--node-name=w1@agent:0".to_owned()));
        // Readiness waits for the hidden server under its container name.
        assert_eq!(spec.node_names(), ["k3d-relapse-t-server-0", "w1"]);
    }

    #[test]
    fn several_servers_keep_the_load_balancer() {
        let cp = [NodeRole::ControlPlane, NodeRole::Worker];
        let cluster = ClusterShape {
            nodes: vec![node("a", Arch::Amd64, &cp), node("b", Arch::Amd64, &cp)],
            load_balancer: LoadBalancerProvider::ServiceLb,
            ..ClusterShape::default()
        };
        let args = plan(&cluster)
            .unwrap()
            .create_args(Duration::from_millis(1500));
        assert!(!args.contains(&"--no-lb".to_owned()));
        assert!(args.contains(&"--timeout=1500ms".to_owned()));
        assert!(
            !args.iter().any(|a| a.contains("servicelb")),
            "ServiceLB stays: {args:?}"
        );
    }

    #[test]
    fn restricted_labels_go_through_the_api() {
        let mut n = node("w1", Arch::Amd64, &[NodeRole::Worker]);
        n.labels
            .insert("node-role.kubernetes.io/worker".to_owned(), String::new());
        n.labels
            .insert("topology.kubernetes.io/zone".to_owned(), "a".to_owned());
        n.labels
            .insert("node.kubernetes.io/pool".to_owned(), "p".to_owned());
        n.labels.insert("team".to_owned(), "x".to_owned());
        let spec = plan(&ClusterShape {
            nodes: vec![n],
            ..ClusterShape::default()
        })
        .unwrap();
        assert_eq!(
            spec.api_labels(),
            [NodeLabel {
                node: "w1".to_owned(),
                key: "node-role.kubernetes.io/worker".to_owned(),
                value: String::new()
            }]
        );
        let labels: Vec<_> = spec
            .create_args(Duration::from_secs(1))
            .into_iter()
            .filter(|a| a.starts_with("--k3s-node-label"))
            .collect();
        assert_eq!(
            labels,
            [
                "--k3s-node-label=node.kubernetes.io/pool=p@agent:0",
                "--k3s-node-label=team=x@agent:0",
                "--k3s-node-label=topology.kubernetes.io/zone=a@agent:0",
            ]
        );
    }

    #[test]
    fn kubelet_label_rules() {
        assert!(kubelet_may_set("team"));
        assert!(kubelet_may_set("eks.amazonaws.com/nodegroup"));
        assert!(kubelet_may_set("kubernetes.io/hostname"));
        assert!(kubelet_may_set("x.kubelet.kubernetes.io/y"));
        assert!(!kubelet_may_set("node-role.kubernetes.io/control-plane"));
        assert!(!kubelet_may_set("app.kubernetes.io/name"));
        assert!(!kubelet_may_set("k8s.io/x"));
    }

    #[test]
    fn mixed_and_foreign_architectures_are_refused() {
        let mixed = ClusterShape {
            nodes: vec![
                node("a", Arch::Amd64, &[NodeRole::ControlPlane]),
                node("b", Arch::Arm64, &[NodeRole::Worker]),
            ],
            ..ClusterShape::default()
        };
        assert_eq!(
            reasons(&mixed),
            [Unsupported::MixedArch(vec![Arch::Amd64, Arch::Arm64])]
        );
        let arm = ClusterShape {
            nodes: vec![node("a", Arch::Arm64, &[NodeRole::ControlPlane])],
            ..ClusterShape::default()
        };
        let r = reasons(&arm);
        assert_eq!(
            r,
            [Unsupported::ForeignArch {
                arch: Arch::Arm64,
                host: Some(Arch::Amd64)
            }]
        );
        assert_eq!(
            K3dError::CannotReproduce(r).to_string(),
            "cannot reproduce on k3d: arm64 nodes, but this host is amd64: k3d runs node containers of the host's architecture only"
        );
    }

    #[test]
    fn storage_and_capacity_limits_are_all_reported() {
        let mut big = node("big", Arch::Amd64, &[NodeRole::Worker]);
        big.capacity.cpu = "64".to_owned();
        let class = |name: &str, kind, default| StorageClass {
            name: name.to_owned(),
            default,
            kind,
            binding_mode: VolumeBindingMode::WaitForFirstConsumer,
        };
        let cluster = ClusterShape {
            nodes: vec![big],
            storage_classes: vec![
                class("gp2", VolumeKind::Attachable, true),
                class("local-path", VolumeKind::NodeLocal, true),
                class("fast", VolumeKind::NodeLocal, false),
            ],
            ..ClusterShape::default()
        };
        assert_eq!(
            reasons(&cluster),
            [
                Unsupported::AttachableStorage {
                    class: "gp2".to_owned()
                },
                Unsupported::StorageClass {
                    class: "fast".to_owned()
                },
                Unsupported::Capacity {
                    node: "big".to_owned(),
                    cpu: "64".to_owned(),
                    memory: "16Gi".to_owned()
                },
            ]
        );
    }

    #[test]
    fn bad_versions_are_refused() {
        let options = CreateOptions {
            k3s_version: "v1.31 ; rm".to_owned(),
            host_arch: Some(Arch::Amd64),
        };
        let err = CreateSpec::new(
            &ClusterShape::default(),
            &options,
            ClusterName::generate(None),
            owner(),
        )
        .unwrap_err();
        assert!(matches!(err, K3dError::InvalidVersion(_)), "{err:?}");
    }

    #[test]
    fn taints_and_pod_limits() {
        let mut n = node("w", Arch::Amd64, &[NodeRole::Worker]);
        n.taints = vec![
            Taint {
                key: "dedicated".to_owned(),
                value: Some("db".to_owned()),
                effect: TaintEffect::NoExecute,
            },
            Taint {
                key: "spot".to_owned(),
                value: None,
                effect: TaintEffect::PreferNoSchedule,
            },
        ];
        n.capacity.pods = 8;
        let args = plan(&ClusterShape {
            nodes: vec![n],
            ..ClusterShape::default()
        })
        .unwrap()
        .create_args(Duration::from_secs(1));
        let tail: Vec<_> = args
            .iter()
            .skip_while(|a| !a.contains("node-name=w@"))
            .cloned()
            .collect();
        assert_eq!(
            tail,
            [
                "--k3s-arg=--node-name=w@agent:0",
                "--k3s-arg=--node-taint=dedicated=db:NoExecute@agent:0",
                "--k3s-arg=--node-taint=spot:PreferNoSchedule@agent:0",
                "--k3s-arg=--kubelet-arg=max-pods=8@agent:0",
            ]
        );
    }

    fn added(yaml: &str) -> Node {
        crate::yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn an_added_node_is_one_k3d_node_create_command_line() {
        let mut w = node(
            "node-1",
            Arch::Amd64,
            &[NodeRole::ControlPlane, NodeRole::Worker],
        );
        w.labels.insert("team".to_owned(), "a".to_owned());
        let spec = plan(&ClusterShape {
            nodes: vec![w],
            ..ClusterShape::default()
        })
        .unwrap();
        let joining = added(
            "{name: gpu-1, roles: [worker], labels: {accelerator: nvidia, node-role.kubernetes.io/gpu: ''}, \
             taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}, {key: spot, effect: NoExecute}], \
             capacity: {pods: 30}}",
        );
        let add = spec.add_node(&joining, Some(Arch::Amd64)).unwrap();
        assert_eq!(
            add.create_args(Duration::from_secs(180)),
            [
                "node",
                "create",
                "relapse-t-gpu-1",
                "--cluster=relapse-t",
                "--role=agent",
                "--image=rancher/k3s:v1.31.5-k3s1",
                "--wait",
                "--timeout=180s",
                "--k3s-arg=--node-name=gpu-1",
                "--k3s-node-label=accelerator=nvidia",
                "--k3s-arg=--node-taint=nvidia.com/gpu=present:NoSchedule",
                "--k3s-arg=--node-taint=spot:NoExecute",
                "--k3s-arg=--kubelet-arg=max-pods=30",
            ]
        );
        assert_eq!(add.node_name(), "gpu-1");
        assert_eq!(add.container(), "k3d-relapse-t-gpu-1-0");
        assert_eq!(
            add.api_labels(),
            [NodeLabel {
                node: "gpu-1".to_owned(),
                key: "node-role.kubernetes.io/gpu".to_owned(),
                value: String::new(),
            }]
        );
        // k3d copies node-1's k3s node labels onto it: taken off again.
        assert_eq!(add.foreign_labels(), ["team"]);
        assert_eq!(
            node_delete_args(&add.container()),
            ["node", "delete", "k3d-relapse-t-gpu-1-0"]
        );
    }

    #[test]
    fn an_added_node_name_keeps_the_container_a_host_name() {
        let spec = plan(&ClusterShape::default()).unwrap();
        let long = added(&format!("{{name: {}, roles: [worker]}}", "w".repeat(80)));
        let add = spec.add_node(&long, Some(Arch::Amd64)).unwrap();
        assert!(add.container().len() <= 63, "{}", add.container());
        assert_eq!(add.node_name(), "w".repeat(80));
    }

    #[test]
    fn nodes_k3d_cannot_add_or_remove_are_refused_with_the_reason() {
        let spec = plan(&ClusterShape {
            nodes: vec![
                node("cp", Arch::Amd64, &[NodeRole::ControlPlane]),
                node("w1", Arch::Amd64, &[NodeRole::Worker]),
            ],
            ..ClusterShape::default()
        })
        .unwrap();
        let refused = |yaml: &str| -> Vec<String> {
            match spec.add_node(&added(yaml), Some(Arch::Amd64)) {
                Err(K3dError::CannotReproduce(r)) => r.iter().map(ToString::to_string).collect(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            refused("{name: arm-1, arch: arm64, roles: [worker]}"),
            [
                "arm64 nodes, but this host is amd64: k3d runs node containers of the host's architecture only"
            ]
        );
        assert_eq!(
            refused("{name: big, roles: [worker], capacity: {cpu: '64', memory: 256Gi}}"),
            [
                "node big declares cpu 64 and memory 256Gi: k3d nodes report the host's CPUs and memory"
            ]
        );
        assert_eq!(
            refused("{name: cp-2, roles: [control-plane]}"),
            [
                "node cp-2 joins as a control-plane node: a k3s server can only join a k3d cluster whose servers run embedded etcd, which a cluster created with one server does not"
            ]
        );
        assert_eq!(
            spec.remove_refusal("cp").map(|u| u.to_string()).as_deref(),
            Some(
                "node cp leaves, but it is a k3s server of the k3d cluster: deleting its container takes the control plane (or an etcd member) down with it"
            )
        );
        assert_eq!(spec.remove_refusal("w1"), None);
        assert_eq!(
            spec.agent_container("w1").as_deref(),
            Some("k3d-relapse-t-agent-0")
        );
        assert_eq!(spec.agent_container("cp"), None);
    }
}
