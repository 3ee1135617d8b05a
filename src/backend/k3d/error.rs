//! The k3d backend's one error type.

use std::time::Duration;

use super::spec::Unsupported;

/// Why a k3d operation failed.
#[derive(Debug, thiserror::Error)]
pub enum K3dError {
    /// No `k3d` executable was found on `PATH`.
    #[error("the `k3d` CLI is not on PATH; install it from https://k3d.io")]
    NotInstalled,

    /// The executable could not be started.
    #[error("failed to start `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },

    /// The command ran and failed.
    #[error("`{command}` {}{}", exit_text(*code), stderr_suffix(stderr_tail))]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// The last lines of its standard error.
        stderr_tail: String,
    },

    /// The command did not finish before its deadline and was killed.
    #[error("`{command}` did not finish within {}s and was killed{}", after.as_secs_f64(), stderr_suffix(stderr_tail))]
    Timeout {
        /// The command line.
        command: String,
        /// The deadline it missed.
        after: Duration,
        /// The last lines of its standard error up to the kill.
        stderr_tail: String,
    },

    /// The command's output is not what this k3d version is known to print.
    #[error("failed to parse the {what} printed by `{command}`; it begins: {snippet:?}")]
    Unparsable {
        /// What was being read (`cluster list`, `kubeconfig`).
        what: &'static str,
        /// The command line.
        command: String,
        /// The start of the output.
        snippet: String,
        /// The parser's complaint.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The scenario asks for something a k3d cluster cannot be made to show.
    #[error("cannot reproduce on k3d: {}", join_reasons(.0))]
    CannotReproduce(Vec<Unsupported>),

    /// A cluster name that k3d would refuse or that does not carry this tool's prefix.
    #[error("invalid k3d cluster name `{name}`: {why}")]
    InvalidName {
        /// The name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },

    /// A k3s version that is not a valid image tag.
    #[error(
        "invalid k3s version `{0}`: expected an image tag of `rancher/k3s` such as `v1.31.5-k3s1`"
    )]
    InvalidVersion(String),

    /// The kubeconfig k3d printed cannot be turned into a client configuration.
    #[error("failed to build a client configuration from the kubeconfig of cluster `{cluster}`")]
    Kubeconfig {
        /// The cluster.
        cluster: String,
        /// What kube-rs rejected.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// A client could not be built from a valid configuration.
    #[error("failed to build a Kubernetes client for cluster `{cluster}`")]
    Client {
        /// The cluster.
        cluster: String,
        /// What kube-rs rejected.
        #[source]
        source: kube::Error,
    },

    /// The new cluster did not become ready in time (see [`super::wait_until_ready`]).
    #[error("the cluster was not ready within {}s: still waiting for {waiting_for}", after.as_secs_f64())]
    NotReady {
        /// The deadline.
        after: Duration,
        /// The first condition not met at the deadline, e.g. `node cp-1 to register`.
        waiting_for: String,
        /// The error of the last check, if its requests failed.
        #[source]
        last_error: Option<kube::Error>,
    },

    /// `k3d cluster create` refused because a cluster of that name exists; it is not this
    /// process's, so it was left alone.
    #[error("a k3d cluster named `{name}` already exists; it was left alone")]
    AlreadyExists {
        /// The cluster name.
        name: String,
        /// k3d's refusal.
        #[source]
        source: Box<K3dError>,
    },

    /// The installed k3d is not a version this driver speaks.
    #[error(
        "`{}` is k3d {found}, but the k3d backend needs k3d v5 (tested with {}): older releases lack --k3s-arg, --k3s-node-label and --runtime-label",
        program.display(),
        super::version::TESTED_VERSION
    )]
    UnsupportedVersion {
        /// The executable.
        program: std::path::PathBuf,
        /// The version it reported.
        found: String,
    },

    /// A request made while preparing the cluster failed.
    #[error("failed to {action}")]
    Api {
        /// What was being done, e.g. `label node worker-1`.
        action: String,
        /// The request error.
        #[source]
        source: kube::Error,
    },

    /// A network or volume that a killed `k3d cluster create` left could not be removed.
    #[error(
        "failed to remove the docker {what} `{name}` left by an interrupted k3d cluster create"
    )]
    Leftover {
        /// `network` or `volume`.
        what: &'static str,
        /// Its name.
        name: String,
        /// What the Docker daemon said, or why it could not be reached.
        #[source]
        source: crate::docker::DockerError,
    },

    /// The Ctrl-C handler was installed outside a Tokio runtime.
    #[error("failed to install the Ctrl-C cleanup: no Tokio runtime is running")]
    NoRuntime,
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with code {c}"),
        None => "was killed by a signal".to_owned(),
    }
}

fn stderr_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; stderr ends with:\n{tail}")
    }
}

fn join_reasons(reasons: &[Unsupported]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
