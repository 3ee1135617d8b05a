//! Fault steps and leader election, as plain data: what goes wrong with the cluster's
//! infrastructure (a slow API server, a node that stops reporting, a killed container, a
//! registry or DNS outage) for a while, and how a stand-in program holds a Lease.
//!
//! Kept apart from `model.rs` so that the step model grows in its own file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ConfigSource, Duration};

/// Something that goes wrong with the cluster's infrastructure from this step on: for `for`,
/// or until a later `endFault` step names it. Exactly one of `apiServer`, `nodeNotReady`,
/// `containerKill`, `oomKill`, `registryOutage`, `dnsFailure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultStep {
    /// Name for `endFault`; default the fault's keyword (`apiServer`, `nodeNotReady`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long the fault lasts; absent means until an `endFault` step (or the end of the run).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Duration>,
    /// The API server answers the programs' requests (their reads and lease renewals) slowly
    /// or with errors. The harness's own requests are not affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<ApiServerFault>,
    /// A node's kubelet stops posting status: the node lifecycle controller marks it
    /// `Ready=Unknown`, taints it `unreachable` and evicts pods after their toleration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_not_ready: Option<NodeFault>,
    /// Matching containers are killed (SIGKILL, exit 137, reason `Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_kill: Option<KillFault>,
    /// Matching containers are killed by the kernel's OOM killer (exit 137, reason `OOMKilled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill: Option<KillFault>,
    /// A registry cannot be reached: pulls of its images fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_outage: Option<RegistryFault>,
    /// Cluster DNS does not answer for a Service name (or a host outside the cluster): programs
    /// connecting by that name fail to resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_failure: Option<DnsFault>,
}

impl FaultStep {
    /// The keyword of each fault kind given, in declaration order (a valid step has one).
    #[must_use]
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            (self.api_server.is_some(), "apiServer"),
            (self.node_not_ready.is_some(), "nodeNotReady"),
            (self.container_kill.is_some(), "containerKill"),
            (self.oom_kill.is_some(), "oomKill"),
            (self.registry_outage.is_some(), "registryOutage"),
            (self.dns_failure.is_some(), "dnsFailure"),
        ]
        .into_iter()
        .filter_map(|(given, k)| given.then_some(k))
        .collect()
    }

    /// The name `endFault` uses: `name`, or the fault's keyword.
    #[must_use]
    pub fn fault_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.kinds()
                .first()
                .map_or_else(|| "fault".to_owned(), |k| (*k).to_owned())
        })
    }
}

/// How the API server misbehaves towards the programs' requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiServerFault {
    /// Added delay before the server answers each request. With `every`, the server instead
    /// stalls for this long at the start of each period: a request arriving during a stall is
    /// answered when the stall ends (k3s on Kine/SQLite under load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    /// Period of the stalls (with `latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
    /// The server answers every request with this error instead (after `latency`, if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiServerError>,
}

/// An error answer of the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiServerError {
    /// 429 Too Many Requests (API Priority and Fairness rejecting the request).
    #[serde(rename = "429")]
    TooManyRequests,
    /// 500 Internal Server Error.
    #[serde(rename = "500")]
    Internal,
    /// 504 Gateway Timeout (the server's own request timeout).
    #[serde(rename = "504")]
    GatewayTimeout,
    /// No answer at all: the client's own timeout ends the request.
    #[serde(rename = "timeout")]
    Timeout,
}

/// A node that stops reporting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeFault {
    /// The node's name.
    pub node: String,
}

/// Which containers a kill fault kills: those of the pods selected in `namespace` (by `pod`
/// name or by `labels`), optionally only the named container. While the fault lasts, every run
/// of a matching container is killed `after` it started (at once by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KillFault {
    /// Namespace of the pods.
    pub namespace: String,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Label selector (equality) choosing pods.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Container name; default every container of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// How long each run lives before it is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Duration>,
}

/// A registry that cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryFault {
    /// Registry host as image references name it, e.g. `ghcr.io` or `docker.io`.
    pub registry: String,
}

/// A name that cluster DNS does not resolve: a Service's, or a host outside the cluster that it
/// forwards upstream. Exactly one of `service` and `host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsFault {
    /// The Service's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The Service's namespace; default every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A host outside the cluster, e.g. `dl-cdn.alpinelinux.org` (programs with a
    /// `requires[].needs.resolve` of it fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// How a stand-in program takes part in leader election with a `coordination.k8s.io/v1`
/// Lease, as client-go's `leaderelection` package does (controller-runtime managers, most
/// operators). Each setting is read from the container's configuration, with the library's
/// default when the configuration does not set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaderElection {
    /// The Lease's name (controller-runtime's `LeaderElectionID`).
    pub lease: String,
    /// The Lease's namespace; default the pod's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Whether leader election is on when the configuration does not say (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the program reads whether leader election is on (`true`/`false`), e.g.
    /// `{arg: --leader-elect}` (a flag given alone reads `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_by: Option<ConfigSource>,
    /// Where the program reads whether leader election is off (`true` turns it off), e.g.
    /// `{file: /config/envoy-gateway.yaml, key: provider.kubernetes.leaderElection.disable}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_by: Option<ConfigSource>,
    /// `leaseDuration` (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration: Option<DurationSetting>,
    /// `renewDeadline` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_deadline: Option<DurationSetting>,
    /// `retryPeriod` (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_period: Option<DurationSetting>,
    /// Each request's own timeout: `renewDeadline / 2`, at least 1s, as client-go's
    /// `resourcelock.NewFromKubeconfig` sets it (controller-runtime uses it); `false` for a
    /// client without one.
    #[serde(default = "yes")]
    pub request_timeout: bool,
    /// What the program does when it loses the lease: its own log lines after client-go's, and
    /// its exit code (absent: it keeps running without leading).
    pub on_lost: LostLease,
    /// The minor release of k8s.io/client-go the program is built with (`31` for v0.31.x),
    /// for the exact wording and source lines of its log; default 32. Releases before 31 read
    /// as 31.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_go_minor: Option<u32>,
}

const fn yes() -> bool {
    true
}

/// A duration setting read from the configuration (a Go duration such as `30s`, or whole
/// seconds), with the default the program uses when it is not set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DurationSetting {
    /// Where the value is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ConfigSource>,
    /// The value when the configuration does not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Duration>,
}

/// What a program does once its lease renewal failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LostLease {
    /// Lines the program logs itself, exactly as it prints them, e.g. controller-runtime's
    /// `leader election lost` as the program reports `mgr.Start`'s error. `{time}` is replaced
    /// by the instant in zap's ISO 8601 form (`2025-01-01T00:00:27.000Z`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// Exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// What is wrong with a fault step as written, if anything: it must give exactly one fault
/// kind, and each kind's own fields must fit together.
#[must_use]
pub fn check_fault(f: &FaultStep) -> Option<String> {
    let kinds = f.kinds();
    match kinds.len() {
        0 => {
            return Some(
                "fault needs one of `apiServer`, `nodeNotReady`, `containerKill`, `oomKill`, `registryOutage`, `dnsFailure`"
                    .to_owned(),
            );
        }
        1 => {}
        _ => {
            return Some(format!(
                "fault gives {}: give exactly one fault per step",
                kinds.join(", ")
            ));
        }
    }
    if let Some(api) = &f.api_server {
        if api.latency.is_none() && api.error.is_none() {
            return Some("apiServer needs `latency`, `error` or both".to_owned());
        }
        if api.every.is_some() && api.latency.is_none() {
            return Some("apiServer `every` needs `latency`: the length of each stall".to_owned());
        }
        if let (Some(every), Some(latency)) = (api.every, api.latency)
            && every.as_std() <= latency.as_std()
        {
            return Some(format!(
                "apiServer stalls of {latency} every {every} never end: `every` must be longer than `latency`"
            ));
        }
    }
    if let Some(dns) = &f.dns_failure {
        if dns.service.is_some() == dns.host.is_some() {
            return Some("dnsFailure needs exactly one of `service` and `host`".to_owned());
        }
        if dns.host.is_some() && dns.namespace.is_some() {
            return Some(
                "dnsFailure `namespace` belongs to a `service`; a `host` is outside the cluster"
                    .to_owned(),
            );
        }
    }
    for kill in [&f.container_kill, &f.oom_kill].into_iter().flatten() {
        if kill.pod.is_none() && kill.labels.is_empty() {
            return Some("a kill fault needs `pod` or `labels` to choose its pods".to_owned());
        }
    }
    None
}
