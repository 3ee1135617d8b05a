//! The one renderer of error chains: an error and each of its sources on one line, `a: b: c`.
//!
//! Error types of every layer attach their cause with `#[source]` and do not repeat it in their
//! own message, so the chain is only readable when something walks it; everything that prints
//! an error (reports, trial failures, the command line) goes through [`DisplayErrorChain`].

use std::fmt;

/// Displays an error followed by each of its sources, separated by `: `.
#[derive(Clone, Copy)]
pub struct DisplayErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for DisplayErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cur = self.0.source();
        while let Some(s) = cur {
            // Some errors of other crates repeat their cause in their own message (kube's
            // `failed to read kubeconfig from '…': <io error>`): say it once.
            let text = s.to_string();
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cur = s.source();
        }
        Ok(())
    }
}

impl fmt::Debug for DisplayErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The chain of `e` as one line (see [`DisplayErrorChain`]).
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    DisplayErrorChain(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read {path}")]
    struct Outer {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_source_once_in_order() {
        let e = Outer {
            path: "a.yaml",
            source: std::io::Error::other("permission denied"),
        };
        assert_eq!(error_chain(&e), "failed to read a.yaml: permission denied");
        assert_eq!(format!("{:?}", DisplayErrorChain(&e)), error_chain(&e));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read kubeconfig from 'x': {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_already_ends_with_is_said_once() {
        let e = Outer {
            path: "k",
            source: std::io::Error::other(Repeats(std::io::Error::other("no such file"))),
        };
        assert_eq!(
            error_chain(&e),
            "failed to read k: failed to read kubeconfig from 'x': no such file"
        );
    }
}
