//! Which k3d is installed: `k3d version`, and whether this driver can use it.
//!
//! k3d prints `k3d version <version>` and `k3s version <tag> (default)` on two lines
//! (`cmd/root.go` `printVersion` in k3d v5.8.3); the version is the release tag the binary was
//! built from, or `v5-dev` for a plain `go build` (`version/version.go` `GetVersion`). The same
//! command exists in k3d v1 to v4, so an old k3d is recognised and named rather than failing on
//! the first flag it does not know.

use std::fmt;

use super::cli::K3d;
use super::error::K3dError;
use super::list::snippet;

/// The k3d major version this driver speaks: `--k3s-arg`, `--k3s-node-label` and
/// `--runtime-label` with `@` node filters are k3d v5 flags.
pub const SUPPORTED_MAJOR: u64 = 5;
/// The k3d release the driver and its recorded fake were checked against.
pub const TESTED_VERSION: &str = "v5.8.3";

/// What `k3d version` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3dVersion {
    /// The k3d version, e.g. `v5.8.3`.
    pub k3d: String,
    /// The k3s image tag this k3d uses when none is given, if it printed one.
    pub default_k3s: Option<String>,
}

impl K3dVersion {
    /// Reads the output of `k3d version`.
    ///
    /// # Errors
    /// [`K3dError::Unparsable`] when no line reads `k3d version <version>`.
    pub fn parse(stdout: &str, command: &str) -> Result<Self, K3dError> {
        let k3d = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("k3d version "))
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let Some(k3d) = k3d else {
            return Err(K3dError::Unparsable {
                what: "version",
                command: command.to_owned(),
                snippet: snippet(stdout),
                source: "no line reads `k3d version <version>`".into(),
            });
        };
        let default_k3s = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("k3s version "))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        Ok(Self {
            k3d: k3d.to_owned(),
            default_k3s,
        })
    }

    /// The major version (`5` for `v5.8.3` and `v5-dev`), if the version starts with one.
    #[must_use]
    pub fn major(&self) -> Option<u64> {
        let digits: String = self
            .k3d
            .strip_prefix('v')
            .unwrap_or(&self.k3d)
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// Whether this driver can use it: a k3d v5.
    #[must_use]
    pub fn supported(&self) -> bool {
        self.major() == Some(SUPPORTED_MAJOR)
    }
}

impl fmt::Display for K3dVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k3d {}", self.k3d)?;
        if let Some(k3s) = &self.default_k3s {
            write!(f, " (default k3s {k3s})")?;
        }
        Ok(())
    }
}

impl K3d {
    /// Runs `k3d version` and checks that it is a k3d v5.
    ///
    /// # Errors
    /// [`K3dError::UnsupportedVersion`] naming the version found; [`K3dError::Unparsable`],
    /// [`K3dError::CommandFailed`], [`K3dError::Timeout`] or [`K3dError::Spawn`] when it cannot
    /// be read.
    pub fn check_version(&self) -> Result<K3dVersion, K3dError> {
        let out = self.run(&["version".to_owned()], self.timeouts().query)?;
        let version = K3dVersion::parse(&out.stdout, &out.command)?;
        if version.supported() {
            Ok(version)
        } else {
            Err(K3dError::UnsupportedVersion {
                program: self.program().to_owned(),
                found: version.k3d,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k3d version` of the v5.8.3 release binary.
    const V5_8_3: &str = include_str!("../../../tests/data/k3d/version.stdout");

    #[test]
    fn reads_the_release_output() {
        let v = K3dVersion::parse(V5_8_3, "k3d version").unwrap();
        assert_eq!(v.k3d, "v5.8.3");
        assert_eq!(v.default_k3s.as_deref(), Some("v1.31.5-k3s1"));
        assert_eq!(v.major(), Some(5));
        assert!(v.supported());
        assert_eq!(v.to_string(), "k3d v5.8.3 (default k3s v1.31.5-k3s1)");
    }

    #[test]
    fn development_builds_and_other_majors() {
        let dev = K3dVersion::parse(
            "k3d version v5-dev\nk3s version v1.21.7-k3s1 (default)\n",
            "k3d version",
        )
        .unwrap();
        assert!(dev.supported());
        let v4 = K3dVersion::parse(
            "k3d version v4.4.8\nk3s version latest (default)\n",
            "k3d version",
        )
        .unwrap();
        assert_eq!(v4.major(), Some(4));
        assert!(!v4.supported());
        let odd = K3dVersion::parse("k3d version main\n", "k3d version").unwrap();
        assert_eq!(odd.major(), None);
        assert!(!odd.supported());
    }

    #[test]
    fn other_output_is_unparsable() {
        let err = K3dVersion::parse("Usage:\n  k3d [flags]\n", "k3d version").unwrap_err();
        assert!(
            matches!(
                err,
                K3dError::Unparsable {
                    what: "version",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
