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

    /// The API server did not answer, or the `default` ServiceAccount did not appear, in time.
    #[error("the API server did not serve ServiceAccount default/default within {}s", after.as_secs_f64())]
    ApiNotReady {
        /// The deadline.
        after: Duration,
        /// The last request error, if the server answered with one or could not be reached.
        #[source]
        last_error: Option<kube::Error>,
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
