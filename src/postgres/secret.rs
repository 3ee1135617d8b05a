//! Generated passwords that never show up in logs or debug output.

use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;

/// A password. `Debug` prints `Secret(<redacted>)`; there is no `Display`, so the value only
/// leaves through [`Secret::expose`], where a reader of the code can see it happen.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password known from elsewhere (a URL, a Secret object).
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random password: 32 alphanumeric characters (about 190 bits).
    #[must_use]
    pub fn generate() -> Self {
        let value: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        Self(value)
    }

    /// The password itself, for a client that sends it or a Secret object that stores it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SCRAM-SHA-256 verifier Postgres stores for this password (computed here, so the
    /// password itself is never sent in SQL text, where server logs could record it).
    #[must_use]
    pub fn scram_verifier(&self) -> String {
        postgres_protocol::password::scram_sha_256(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Secret::new("hunter2");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn generated_passwords_differ_and_are_long() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn scram_verifier_does_not_contain_the_password() {
        let secret = Secret::new("correct-horse");
        let verifier = secret.scram_verifier();
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
        assert!(!verifier.contains("correct-horse"));
    }
}
