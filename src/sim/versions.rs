//! The one table of what differs between the Kubernetes and containerd releases a cluster can
//! report (`cluster.versions`): version strings and the texts that changed, each variant with
//! the upstream source it comes from. Code that shows such a text asks this module with the
//! cluster's [`Versions`].
//!
//! Checked and found identical, so not in the table: containerd's image-pull errors
//! (src/sim/kubelet/image.rs). In containerd v1.7.24 and v2.0.11 the CRI wraps them the same
//! way, `failed to pull and unpack image %q: %w` (pkg/cri/server/image_pull.go,
//! internal/cri/server/images/image_pull.go), around client.Pull's `failed to resolve
//! reference %q: %w` (pull.go, client/pull.go); the resolver's `%s: not found`, `pull access
//! denied, repository does not exist or may require authorization: %w` and `failed to do
//! request: %w` (remotes/docker/resolver.go, core/remotes/docker/resolver.go), the
//! authorizer's and token fetcher's errors, remotes/errors' `unexpected status from %s request
//! to %s: %s` and images/handlers.go's `no match for platform in manifest: %w` read the same
//! in both.

use crate::scenario::{ContainerdVersion, KubernetesVersion, Versions};

/// What the API server's `/version` reports for a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    /// `minor` (`"32"`).
    pub minor: &'static str,
    /// `gitVersion` (`"v1.32.0"`).
    pub git_version: &'static str,
    /// `buildDate`: the release day.
    pub build_date: &'static str,
    /// `goVersion`: the Go release the binaries were built with.
    pub go_version: &'static str,
}

/// `/version` of a Kubernetes release: the .0 patch (pkg/version/base.go fields as
/// `version.Info`), dated its release day (1.31.0: 2024-08-13; 1.32.0: 2024-12-11) with the
/// Go release it was built with (1.31 was on Go 1.22 until 1.31.1 moved to go1.22.6, as
/// k3s-io/k3s#10889 "Update to v1.31.1-k3s1 and Go 1.22.6" records; 1.32.0 on go1.23).
#[must_use]
pub const fn server_version(k: KubernetesVersion) -> ServerVersion {
    match k {
        KubernetesVersion::V1_31 => ServerVersion {
            minor: "31",
            git_version: "v1.31.0",
            build_date: "2024-08-13T00:00:00Z",
            go_version: "go1.22.5",
        },
        KubernetesVersion::V1_32 => ServerVersion {
            minor: "32",
            git_version: "v1.32.0",
            build_date: "2024-12-11T00:00:00Z",
            go_version: "go1.23.4",
        },
    }
}

/// The Node's `status.nodeInfo.kubeletVersion` (and `kubeProxyVersion`): the kubelet's
/// `version.Get().String()` (pkg/kubelet/nodestatus/setters.go VersionInfo).
#[must_use]
pub const fn kubelet_version(k: KubernetesVersion) -> &'static str {
    server_version(k).git_version
}

/// The Node's `status.nodeInfo.containerRuntimeVersion`: `<RuntimeName>://<RuntimeVersion>`
/// from the CRI Version call (pkg/kubelet/nodestatus/setters.go VersionInfo); containerd
/// answers with its own version (pkg/cri/server/version.go, internal/cri/server/version.go).
/// The patch releases are those whose sources the texts above were checked against.
#[must_use]
pub const fn container_runtime_version(c: ContainerdVersion) -> &'static str {
    match c {
        ContainerdVersion::V1_7 => "containerd://1.7.24",
        ContainerdVersion::V2_0 => "containerd://2.0.11",
    }
}

/// The waiting message of a container in `ImagePullBackOff`, given the `Back-off pulling image
/// %q` event text and the last pull error (`<reason>: <message>`) if one is known.
///
/// Up to 1.31 the message is the event text alone (pkg/kubelet/images/image_manager.go
/// EnsureImageExists returns `msg`). From 1.32 the image manager keeps the last pull error in
/// `prevPullErrMsg` and returns `fmt.Sprintf("%s: %s", msg, prevPullErrMsg)`
/// (kubernetes/kubernetes#127918, released in v1.32.0).
#[must_use]
pub fn image_pull_backoff_message(versions: Versions, event: &str, prev: Option<&str>) -> String {
    match (versions.kubernetes, prev) {
        (KubernetesVersion::V1_32, Some(prev)) => format!("{event}: {prev}"),
        (KubernetesVersion::V1_31 | KubernetesVersion::V1_32, _) => event.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "Back-off pulling image \"nginx:1.27\"";
    const PREV: &str = "ErrImagePull: rpc error: code = NotFound desc = x";

    fn on(kubernetes: KubernetesVersion) -> Versions {
        Versions {
            kubernetes,
            ..Versions::default()
        }
    }

    #[test]
    fn backoff_message_carries_the_last_error_from_1_32() {
        assert_eq!(
            image_pull_backoff_message(Versions::default(), EVENT, Some(PREV)),
            format!("{EVENT}: {PREV}")
        );
        assert_eq!(
            image_pull_backoff_message(Versions::default(), EVENT, None),
            EVENT
        );
    }

    #[test]
    fn backoff_message_is_the_event_alone_on_1_31() {
        let v = on(KubernetesVersion::V1_31);
        assert_eq!(image_pull_backoff_message(v, EVENT, Some(PREV)), EVENT);
        assert_eq!(image_pull_backoff_message(v, EVENT, None), EVENT);
    }

    #[test]
    fn version_strings_follow_the_release() {
        assert_eq!(kubelet_version(KubernetesVersion::V1_32), "v1.32.0");
        assert_eq!(kubelet_version(KubernetesVersion::V1_31), "v1.31.0");
        assert_eq!(server_version(KubernetesVersion::V1_31).minor, "31");
        assert_eq!(
            container_runtime_version(ContainerdVersion::V1_7),
            "containerd://1.7.24"
        );
        assert_eq!(
            container_runtime_version(ContainerdVersion::V2_0),
            "containerd://2.0.11"
        );
    }
}
