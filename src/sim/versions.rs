//! The one table of what differs between the Kubernetes and containerd releases a cluster can
//! report (`cluster.versions`): version strings and the texts that changed, each variant with
//! the upstream source it comes from. Code that shows such a text asks this module with the
//! cluster's [`Versions`].
//!
//! Checked and found identical, so not in the table: most of containerd's image-pull errors
//! (src/sim/kubelet/image.rs). In containerd v1.7.24, v2.0.11 and v2.1.4 the CRI wraps them
//! the same way, `failed to pull and unpack image %q: %w` (pkg/cri/server/image_pull.go,
//! internal/cri/server/images/image_pull.go); the resolver's `%s: not found`, `pull access
//! denied, repository does not exist or may require authorization: %w` and `failed to do
//! request: %w` (remotes/docker/resolver.go, core/remotes/docker/resolver.go), the
//! authorizer's and token fetcher's errors, remotes/errors' `unexpected status from %s request
//! to %s: %s` and images/handlers.go's `no match for platform in manifest: %w` read the same
//! in all three. What wraps a failed resolve differs: see [`resolve_failure`].
//!
//! Not modelled: in containerd 2.1 a pull of an index without the node's platform no longer
//! fails inside the pull (the transfer service's image store filters platforms without a
//! manifest limit, core/transfer/image/imagestore.go ImageFilter) but when the CRI reads the
//! image's config afterwards (`get image config descriptor: %w` around images/image.go's `no
//! match for platform in manifest %v: %w`, which names the index digest). No cluster's report
//! of that text was found to confirm it, so on 2.1 the simulator keeps 2.0's text for it.

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
/// `version.Info`), dated its release day (1.31.0: 2024-08-13; 1.32.0: 2024-12-11;
/// 1.33.0: 2025-04-23) with the Go release it was built with (1.31 was on Go 1.22 until 1.31.1
/// moved to go1.22.6, as k3s-io/k3s#10889 "Update to v1.31.1-k3s1 and Go 1.22.6" records;
/// 1.32.0 on go1.23; the released v1.33.0 binaries, commit 60a317ea, report
/// `buildDate: "2025-04-23T13:07:12Z"` and `goVersion: go1.24.2`).
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
        KubernetesVersion::V1_33 => ServerVersion {
            minor: "33",
            git_version: "v1.33.0",
            build_date: "2025-04-23T00:00:00Z",
            go_version: "go1.24.2",
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
        ContainerdVersion::V2_1 => "containerd://2.1.4",
    }
}

/// What wraps the resolver's error when a pull cannot resolve the reference `n` (the text
/// between `failed to pull and unpack image "<n>": ` and the resolver's own).
///
/// Up to 2.0 the CRI pulls with client.Pull, which wraps it as `failed to resolve reference
/// %q: %w` (client/pull.go; pull.go in 1.7). From 2.1 the CRI pulls through the transfer
/// service unless `use_local_image_pull` is set (internal/cri/server/images/image_pull.go
/// PullImage, pullImageWithTransferService), whose pull wraps it as `failed to resolve image:
/// %w` (core/transfer/local/pull.go), the reference no longer named.
#[must_use]
pub fn resolve_failure(c: ContainerdVersion, n: &str) -> String {
    match c {
        ContainerdVersion::V1_7 | ContainerdVersion::V2_0 => {
            format!("failed to resolve reference \"{n}\"")
        }
        ContainerdVersion::V2_1 => "failed to resolve image".to_owned(),
    }
}

/// The waiting message of a container in `ImagePullBackOff`, given the `Back-off pulling image
/// %q` event text and the last pull error (`<reason>: <message>`) if one is known.
///
/// Up to 1.31 the message is the event text alone (pkg/kubelet/images/image_manager.go
/// EnsureImageExists returns `msg`). From 1.32 the image manager keeps the last pull error in
/// `prevPullErrMsg` and returns `fmt.Sprintf("%s: %s", msg, prevPullErrMsg)`
/// (kubernetes/kubernetes#127918, released in v1.32.0). 1.33's image manager (pullImage,
/// now beside KEP-2535's imagePullManager) formats it the same way.
#[must_use]
pub fn image_pull_backoff_message(versions: Versions, event: &str, prev: Option<&str>) -> String {
    match (versions.kubernetes, prev) {
        (KubernetesVersion::V1_32 | KubernetesVersion::V1_33, Some(prev)) => {
            format!("{event}: {prev}")
        }
        (KubernetesVersion::V1_31 | KubernetesVersion::V1_32 | KubernetesVersion::V1_33, _) => {
            event.to_owned()
        }
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
    fn kubernetes_1_33_reads_its_own_release_and_keeps_the_1_32_backoff_message() {
        let v = on(KubernetesVersion::V1_33);
        assert_eq!(
            image_pull_backoff_message(v, EVENT, Some(PREV)),
            format!("{EVENT}: {PREV}")
        );
        assert_eq!(image_pull_backoff_message(v, EVENT, None), EVENT);
        assert_eq!(
            server_version(KubernetesVersion::V1_33),
            ServerVersion {
                minor: "33",
                git_version: "v1.33.0",
                build_date: "2025-04-23T00:00:00Z",
                go_version: "go1.24.2",
            }
        );
        assert_eq!(kubelet_version(KubernetesVersion::V1_33), "v1.33.0");
    }

    #[test]
    fn containerd_2_1_names_no_reference_in_a_failed_resolve() {
        let n = "docker.io/library/nginx:1.27";
        assert_eq!(
            resolve_failure(ContainerdVersion::V1_7, n),
            "failed to resolve reference \"docker.io/library/nginx:1.27\""
        );
        assert_eq!(
            resolve_failure(ContainerdVersion::V2_0, n),
            resolve_failure(ContainerdVersion::V1_7, n)
        );
        assert_eq!(
            resolve_failure(ContainerdVersion::V2_1, n),
            "failed to resolve image"
        );
        assert_eq!(
            container_runtime_version(ContainerdVersion::V2_1),
            "containerd://2.1.4"
        );
    }

    /// A scenario's `cluster.versions` pinned to 1.33 / 2.1 reaches these texts.
    #[test]
    fn a_scenario_pinned_to_1_33_and_2_1_reads_their_texts() {
        let cluster: crate::scenario::ClusterShape =
            crate::yaml::from_str("versions: {kubernetes: \"1.33\", containerd: \"2.1\"}\n")
                .unwrap();
        assert_eq!(
            cluster.versions,
            Versions {
                kubernetes: KubernetesVersion::V1_33,
                containerd: ContainerdVersion::V2_1,
            }
        );
        assert_eq!(server_version(cluster.versions.kubernetes).minor, "33");
        assert_eq!(
            container_runtime_version(cluster.versions.containerd),
            "containerd://2.1.4"
        );
        let unquoted: crate::scenario::ClusterShape =
            crate::yaml::from_str("versions: {kubernetes: 1.33, containerd: 2.1}\n").unwrap();
        assert_eq!(unquoted.versions, cluster.versions);
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
