//! The simulated node agent: for each pod bound to its node, a state machine that pulls
//! images, resolves configuration, mounts volumes, starts the containers' stand-in programs,
//! probes them, restarts them with the kubelet's back-off and reports the pod's status.
//!
//! Everything is driven by simulated time: [`Kubelet::sync_pod`] is called with the current
//! instant and answers with the new `status`, the events to record, the log lines each
//! container wrote and the next instant it needs to be called again. Texts are those of
//! Kubernetes v1.32 with containerd 1.7 and runc 1.2; each is cited beside its source.

mod backoff;
mod env;
pub mod gofmt;
mod image;
mod pod;
mod probe;
mod state;
mod status;
mod worker;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::Value;

pub use backoff::Backoff;
pub use env::{VolumeProblem, base64_decode, check_volumes, mounted_files, resolve_env};
pub use image::{ImageRef, PullOutcome, PullPolicy, hex_digest, pull};
pub use pod::{ContainerLog, PendingPostgres, PodSync};
pub use probe::{Handler, ProbeKind, ProbeSpec, ProbeState};

use crate::scenario::{Arch, ImageBehaviour, Versions};
use crate::sim::behaviour::{ClusterViewExt, Listener, PostgresOutcome};

/// Who the node agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletConfig {
    /// Node name.
    pub node_name: String,
    /// CPU architecture of the node.
    pub arch: Arch,
    /// The node's InternalIP (`status.hostIP` of its pods).
    pub host_ip: String,
    /// Pod addresses are this prefix followed by a counter (`10.42.1.` gives `10.42.1.2`, …).
    pub pod_ip_prefix: String,
    /// The Kubernetes and containerd versions whose texts the kubelet shows.
    pub versions: Versions,
}

/// The node agent of one simulated node.
#[derive(Debug)]
pub struct Kubelet {
    config: KubeletConfig,
    images: BTreeSet<String>,
    pods: BTreeMap<String, pod::PodRuntime>,
    next_ip: u32,
}

impl Kubelet {
    /// A node agent with no images and no pods.
    #[must_use]
    pub const fn new(config: KubeletConfig) -> Self {
        Self {
            config,
            images: BTreeSet::new(),
            pods: BTreeMap::new(),
            next_ip: 2,
        }
    }

    /// Its configuration.
    #[must_use]
    pub const fn config(&self) -> &KubeletConfig {
        &self.config
    }

    /// The images present on the node (fully qualified references).
    #[must_use]
    pub const fn images(&self) -> &BTreeSet<String> {
        &self.images
    }

    /// Brings one pod up to `now` and reports its new status.
    ///
    /// `images` are the image behaviours keyed by reference; a container whose image has no
    /// behaviour runs for ever and is ready at once. Call again at [`PodSync::wake_at`], when
    /// the pod changes, or after answering [`PodSync::postgres`].
    pub fn sync_pod(
        &mut self,
        pod: &Value,
        images: &BTreeMap<String, ImageBehaviour>,
        view: &dyn ClusterViewExt,
        now: Timestamp,
    ) -> PodSync {
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !self.pods.contains_key(&uid) {
            let ip = format!("{}{}", self.config.pod_ip_prefix, self.next_ip);
            self.next_ip += 1;
            self.pods
                .insert(uid.clone(), pod::PodRuntime::new(pod, ip, now));
        }
        let mut ctx = pod::NodeContext {
            config: &self.config,
            images: &mut self.images,
            behaviours: images,
            view,
        };
        match self.pods.get_mut(&uid) {
            Some(rt) => rt.sync(pod, &mut ctx, now),
            None => PodSync::default(),
        }
    }

    /// Answers a Postgres check a container's program asked for; call [`Self::sync_pod`] again
    /// afterwards at the same instant.
    pub fn postgres_result(&mut self, pod_uid: &str, container: &str, outcome: &PostgresOutcome) {
        if let Some(rt) = self.pods.get_mut(pod_uid) {
            rt.postgres_result(container, outcome);
        }
    }

    /// The objects the operator programs running on this node want to exist now, pod by pod
    /// (in uid order) and container by container. Unlike [`PodSync::owned_objects`] this needs
    /// no sync, so a caller can re-evaluate operators whenever the cluster changes.
    #[must_use]
    pub fn desired_objects(&self, view: &dyn ClusterViewExt) -> Vec<Value> {
        let mut out = Vec::new();
        for rt in self.pods.values().filter(|rt| !rt.terminating) {
            for c in &rt.containers {
                if let Some(run) = c.running() {
                    out.extend(run.program.desired_objects(view));
                }
            }
        }
        out
    }

    /// Everything the operator programs running on this node want done now (owned objects
    /// and reports on watched objects), in the order of [`Self::desired_objects`].
    #[must_use]
    pub fn operator_work(&self, view: &dyn ClusterViewExt) -> Vec<crate::sim::behaviour::Work> {
        let mut out = Vec::new();
        for rt in self.pods.values().filter(|rt| !rt.terminating) {
            for c in &rt.containers {
                if let Some(run) = c.running() {
                    out.extend(run.program.operator_work(view));
                }
            }
        }
        out
    }

    /// What the programs running on this node serve (see [`crate::sim::behaviour::Listener`]),
    /// pod by pod in uid order.
    #[must_use]
    pub fn listeners(&self) -> Vec<Listener> {
        self.pods
            .values()
            .filter(|rt| !rt.terminating)
            .flat_map(|rt| &rt.containers)
            .filter_map(|c| c.running())
            .flat_map(|run| run.program.listeners())
            .collect()
    }

    /// Forgets a pod that is gone from the API.
    pub fn forget(&mut self, pod_uid: &str) {
        self.pods.remove(pod_uid);
    }
}

#[cfg(test)]
mod tests;
