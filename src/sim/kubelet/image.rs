//! Image references, pull policy and what containerd answers to a pull on this node.

use std::time::Duration;

use crate::scenario::{Arch, ContainerdVersion, ImageBehaviour, ManifestKind};
use crate::sim::versions;

/// A stable 64-hex-digit digest derived from `input` (FNV-1a, four rounds): the sim's stand-in
/// for image digests and container ids, identical on every run.
#[must_use]
pub fn hex_digest(input: &str) -> String {
    let mut out = String::with_capacity(64);
    for round in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in input.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// An image reference split the way the Docker reference grammar does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host, `docker.io` when the reference names none.
    pub domain: String,
    /// Repository path inside the registry (`library/nginx` for Docker Hub short names).
    pub path: String,
    /// Tag, when given or defaulted (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<String>,
    /// Whether the reference as written had neither tag nor digest.
    pub untagged: bool,
}

impl ImageRef {
    /// Parses a reference as written in a pod spec (`nginx`, `quay.io/a/b:1`, `x@sha256:…`).
    #[must_use]
    pub fn parse(reference: &str) -> Self {
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_owned())),
            None => (reference, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            Some(_) => ("docker.io".to_owned(), name.to_owned()),
            None => ("docker.io".to_owned(), format!("library/{name}")),
        };
        let untagged = tag.is_none() && digest.is_none();
        let tag = if untagged {
            Some("latest".to_owned())
        } else {
            tag
        };
        Self {
            domain,
            path,
            tag,
            digest,
            untagged,
        }
    }

    /// The fully qualified reference containerd reports (`docker.io/library/nginx:latest`).
    #[must_use]
    pub fn normalized(&self) -> String {
        let mut s = format!("{}/{}", self.domain, self.path);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The repository with the image's digest, as `status.containerStatuses[].imageID` shows it.
    #[must_use]
    pub fn image_id(&self) -> String {
        let digest = self
            .digest
            .clone()
            .unwrap_or_else(|| format!("sha256:{}", hex_digest(&self.normalized())));
        format!("{}/{}@{}", self.domain, self.path, digest)
    }
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The container's policy, defaulted as the API server does (`Always` for `:latest` or
    /// untagged images, else `IfNotPresent`; pkg/apis/core/v1/defaults.go).
    #[must_use]
    pub fn of(written: Option<&str>, image: &ImageRef) -> Self {
        match written {
            Some("Always") => Self::Always,
            Some("Never") => Self::Never,
            Some("IfNotPresent") => Self::IfNotPresent,
            _ if image.digest.is_none() && image.tag.as_deref() == Some("latest") => Self::Always,
            _ => Self::IfNotPresent,
        }
    }
}

/// What a pull on this node yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// The image arrives.
    Pulled {
        /// Its size in bytes.
        size: u64,
    },
    /// The runtime refuses; the text is the CRI error as the kubelet prints it.
    Failed(String),
}

/// How long a failed pull takes before the runtime answers (resolution only: a simulator
/// constant).
pub const FAILED_PULL: Duration = Duration::from_millis(500);

/// Simulated registry throughput used to derive pull times from image sizes.
const BYTES_PER_SECOND: u64 = 50_000_000;

/// Size of an image: a stable pseudo-random value between 20 MB and 420 MB.
#[must_use]
pub fn image_size(image: &ImageRef) -> u64 {
    let h = u64::from_str_radix(&hex_digest(&image.normalized())[..12], 16).unwrap_or(0);
    20_000_000 + h % 400_000_000
}

/// How long pulling an image of `size` bytes takes, truncated to milliseconds as the
/// kubelet's message is.
#[must_use]
pub fn pull_duration(size: u64) -> Duration {
    Duration::from_millis(size * 1000 / BYTES_PER_SECOND)
}

/// Decides a pull of `image` on a node of `arch`, for a pod that has (`has_credentials`)
/// registry credentials or not.
///
/// The texts are containerd 1.7's CRI errors as the kubelet shows them (`rpc error: code = …
/// desc = …`): `failed to pull and unpack image %q: %w` (pkg/cri/server/image_pull.go),
/// `failed to resolve reference %q: %w` and `%s: not found` (remotes/docker/resolver.go),
/// `pulling from host %s failed with status code %v: %v` for a registry that wants
/// credentials, and `no match for platform in manifest: not found` (images/image.go) for an
/// index without the node's platform. What wraps a failed resolve follows the node's
/// `containerd` ([`versions::resolve_failure`]).
#[must_use]
pub fn pull(
    image: &ImageRef,
    behaviour: Option<&ImageBehaviour>,
    arch: Arch,
    has_credentials: bool,
    containerd: ContainerdVersion,
) -> PullOutcome {
    let n = image.normalized();
    let resolve = versions::resolve_failure(containerd, &n);
    let Some(b) = behaviour else {
        return PullOutcome::Pulled {
            size: image_size(image),
        };
    };
    if b.missing {
        return PullOutcome::Failed(format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{n}\": {resolve}: {n}: not found"
        ));
    }
    if b.private && !has_credentials {
        let what = image
            .digest
            .clone()
            .or_else(|| image.tag.clone())
            .unwrap_or_default();
        // containerd 1.7 (remotes/docker/resolver.go resolve): a 401 on the manifest HEAD
        // after the authorizer found nothing to send. A registry that asks for Basic auth
        // (ECR) fails in the authorizer with ErrInvalidAuthorization, "authorization failed: no
        // basic auth credentials" (remotes/docker/authorizer.go), wrapped as "pull access
        // denied, repository does not exist or may require authorization: %w"
        // (resolver.go); Docker Hub's token server answers insufficient_scope, wrapped as
        // "server message: %s: %s" (remotes/docker/auth/fetch.go); other registries give
        // remotes/errors' "unexpected status from HEAD request to %s: %s".
        let cause = if image.domain.ends_with(".amazonaws.com") {
            "pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials".to_owned()
        } else if image.domain == "docker.io" {
            "pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed".to_owned()
        } else if image.domain == "ghcr.io" {
            // GHCR answers the manifest HEAD with a Bearer challenge (realm
            // https://ghcr.io/token, service ghcr.io); without credentials containerd asks for
            // an anonymous token, which GHCR refuses for a private package. FetchToken
            // (remotes/docker/auth/fetch.go) adds the scope, then the service, and encodes
            // the query with url.Values.Encode; its refusal is remotes/errors'
            // "unexpected status from %s request to %s: %s", wrapped as "failed to fetch
            // anonymous token: %w" (authorizer.go doBearerAuth) and "failed to authorize: %w"
            // (resolver.go request.authorize).
            format!(
                "failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope={}&service=ghcr.io: 401 Unauthorized",
                query_escape(&format!("repository:{}:pull", image.path))
            )
        } else {
            // remotes/errors/errors.go ErrUnexpectedStatus.
            format!(
                "unexpected status from HEAD request to https://{}/v2/{}/manifests/{what}: 401 Unauthorized",
                image.domain, image.path
            )
        };
        return PullOutcome::Failed(format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{n}\": {resolve}: {cause}"
        ));
    }
    let want = format!("linux/{}", arch.as_str());
    let has_platform =
        b.platforms.is_empty() || b.platforms.iter().any(|p| p == &want || p == arch.as_str());
    if b.manifest == ManifestKind::Index && !has_platform {
        // images/handlers.go FilterPlatforms/LimitManifests: `no match for platform in manifest`.
        return PullOutcome::Failed(format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{n}\": no match for platform in manifest: not found"
        ));
    }
    PullOutcome::Pulled {
        size: image_size(image),
    }
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every other
/// byte `%XX` in upper case (net/url escape with encodeQueryComponent).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The resolver a k3d node's containerd asks: Docker's embedded DNS server, which every
/// container on a user-defined network has in its `/etc/resolv.conf`.
const NODE_RESOLVER: &str = "127.0.0.11:53";

/// The host containerd contacts for a registry: Docker Hub's API lives on
/// `registry-1.docker.io` (remotes/docker/registry.go `DefaultHost`).
fn registry_host(domain: &str) -> &str {
    if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// A pull while `image`'s registry cannot be reached: the manifest request fails before
/// any answer. containerd 1.7 wraps the HTTP client's error as `failed to do request: %w`
/// (remotes/docker/resolver.go `request.do`) inside the resolve and pull errors above; the
/// client's error is net/http's `Head "<url>": …` (net/url `Error.Error`) around the dial's
/// `dial tcp: lookup <host> on <server>: no such host` (net `OpError`, `DNSError`), as
/// clusters report it when the registry's name no longer resolves.
#[must_use]
pub fn unreachable(image: &ImageRef, containerd: ContainerdVersion) -> PullOutcome {
    let n = image.normalized();
    let resolve = versions::resolve_failure(containerd, &n);
    let host = registry_host(&image.domain);
    let what = image
        .digest
        .clone()
        .or_else(|| image.tag.clone())
        .unwrap_or_default();
    PullOutcome::Failed(format!(
        "rpc error: code = Unknown desc = failed to pull and unpack image \"{n}\": {resolve}: failed to do request: Head \"https://{host}/v2/{}/manifests/{what}\": dial tcp: lookup {host} on {NODE_RESOLVER}: no such host",
        image.path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const C17: ContainerdVersion = ContainerdVersion::V1_7;

    #[test]
    fn containerd_2_1_wraps_a_failed_resolve_as_its_transfer_service_does() {
        let missing = ImageBehaviour {
            missing: true,
            ..ImageBehaviour::default()
        };
        let img = ImageRef::parse("nginx:1.27.test");
        assert_eq!(
            pull(&img, Some(&missing), Arch::Amd64, true, ContainerdVersion::V2_1),
            PullOutcome::Failed("rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:1.27.test\": failed to resolve image: docker.io/library/nginx:1.27.test: not found".into())
        );
        assert_eq!(
            pull(
                &img,
                Some(&missing),
                Arch::Amd64,
                true,
                ContainerdVersion::V2_0
            ),
            pull(&img, Some(&missing), Arch::Amd64, true, C17)
        );
        let PullOutcome::Failed(e) =
            unreachable(&ImageRef::parse("busybox:1.36.1"), ContainerdVersion::V2_1)
        else {
            panic!("an unreachable registry fails the pull")
        };
        assert_eq!(
            e,
            "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/busybox:1.36.1\": failed to resolve image: failed to do request: Head \"https://registry-1.docker.io/v2/library/busybox/manifests/1.36.1\": dial tcp: lookup registry-1.docker.io on 127.0.0.11:53: no such host"
        );
    }

    #[test]
    fn normalizes_like_containerd() {
        let n = |s: &str| ImageRef::parse(s).normalized();
        assert_eq!(n("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(n("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(n("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            n("quay.io/keycloak/keycloak:26.1.1"),
            "quay.io/keycloak/keycloak:26.1.1"
        );
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("registry:5000/app:v1"), "registry:5000/app:v1");
        assert_eq!(
            n("busybox@sha256:abc"),
            "docker.io/library/busybox@sha256:abc"
        );
        let r = ImageRef::parse("nginx:1.27");
        assert!(r.image_id().starts_with("docker.io/library/nginx@sha256:"));
        assert_eq!(
            r.image_id().len(),
            "docker.io/library/nginx@sha256:".len() + 64
        );
    }

    #[test]
    fn pull_policy_defaults() {
        let p = |w: Option<&str>, i: &str| PullPolicy::of(w, &ImageRef::parse(i));
        assert_eq!(p(None, "nginx"), PullPolicy::Always);
        assert_eq!(p(None, "nginx:latest"), PullPolicy::Always);
        assert_eq!(p(None, "nginx:1"), PullPolicy::IfNotPresent);
        assert_eq!(p(None, "nginx@sha256:ab"), PullPolicy::IfNotPresent);
        assert_eq!(p(Some("Never"), "nginx"), PullPolicy::Never);
    }

    #[test]
    fn pull_failures_read_like_containerd() {
        let img = ImageRef::parse("foundationdb/fdb-kubernetes-operator:v2.6.0");
        let index_arm = ImageBehaviour {
            platforms: vec!["linux/arm64".into()],
            ..ImageBehaviour::default()
        };
        assert_eq!(
            pull(&img, Some(&index_arm), Arch::Amd64, false, C17),
            PullOutcome::Failed("rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/foundationdb/fdb-kubernetes-operator:v2.6.0\": no match for platform in manifest: not found".into())
        );
        assert!(matches!(
            pull(&img, Some(&index_arm), Arch::Arm64, false, C17),
            PullOutcome::Pulled { .. }
        ));
        let single_arm = ImageBehaviour {
            manifest: ManifestKind::Single,
            ..index_arm
        };
        assert!(matches!(
            pull(&img, Some(&single_arm), Arch::Amd64, false, C17),
            PullOutcome::Pulled { .. }
        ));

        let missing = ImageBehaviour {
            missing: true,
            ..ImageBehaviour::default()
        };
        assert_eq!(
            pull(&ImageRef::parse("nginx:1.27.test"), Some(&missing), Arch::Amd64, true, C17),
            PullOutcome::Failed("rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:1.27.test\": failed to resolve reference \"docker.io/library/nginx:1.27.test\": docker.io/library/nginx:1.27.test: not found".into())
        );

        let private = ImageBehaviour {
            private: true,
            ..ImageBehaviour::default()
        };
        let ecr = ImageRef::parse("123456789012.dkr.ecr.eu-west-2.amazonaws.com/keycloak:26.1.1");
        assert_eq!(
            pull(&ecr, Some(&private), Arch::Amd64, false, C17),
            PullOutcome::Failed("rpc error: code = Unknown desc = failed to pull and unpack image \"123456789012.dkr.ecr.eu-west-2.amazonaws.com/keycloak:26.1.1\": failed to resolve reference \"123456789012.dkr.ecr.eu-west-2.amazonaws.com/keycloak:26.1.1\": pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials".into())
        );
        assert!(matches!(
            pull(&ecr, Some(&private), Arch::Amd64, true, C17),
            PullOutcome::Pulled { .. }
        ));
        let ghcr = ImageRef::parse("ghcr.io/ameideio/mirror/k8s-sidecar:1.28.0");
        assert_eq!(
            pull(&ghcr, Some(&private), Arch::Amd64, false, C17),
            PullOutcome::Failed("rpc error: code = Unknown desc = failed to pull and unpack image \"ghcr.io/ameideio/mirror/k8s-sidecar:1.28.0\": failed to resolve reference \"ghcr.io/ameideio/mirror/k8s-sidecar:1.28.0\": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Aameideio%2Fmirror%2Fk8s-sidecar%3Apull&service=ghcr.io: 401 Unauthorized".into())
        );
        assert_eq!(query_escape("a b~c/d:e"), "a+b~c%2Fd%3Ae");
    }

    #[test]
    fn sizes_and_durations_are_stable() {
        let img = ImageRef::parse("nginx:1.27");
        let size = image_size(&img);
        assert_eq!(
            size,
            image_size(&ImageRef::parse("docker.io/library/nginx:1.27"))
        );
        assert!((20_000_000..420_000_000).contains(&size));
        assert_eq!(pull_duration(64_753_325), Duration::from_millis(1295));
    }

    #[test]
    fn an_unreachable_registry_fails_the_manifest_request() {
        let PullOutcome::Failed(e) = unreachable(&ImageRef::parse("busybox:1.36.1"), C17) else {
            panic!("an unreachable registry pulls nothing");
        };
        assert_eq!(
            e,
            "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/busybox:1.36.1\": failed to resolve reference \"docker.io/library/busybox:1.36.1\": failed to do request: Head \"https://registry-1.docker.io/v2/library/busybox/manifests/1.36.1\": dial tcp: lookup registry-1.docker.io on 127.0.0.11:53: no such host"
        );
        let PullOutcome::Failed(e) = unreachable(&ImageRef::parse("ghcr.io/o/app@sha256:ab"), C17)
        else {
            panic!("an unreachable registry pulls nothing");
        };
        assert!(
            e.contains(
                "Head \"https://ghcr.io/v2/o/app/manifests/sha256:ab\": dial tcp: lookup ghcr.io on"
            ),
            "{e}"
        );
    }
}
