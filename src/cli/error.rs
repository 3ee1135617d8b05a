//! How a command ends when it does not succeed: each kind of ending owns its exit code and
//! how it is shown (model: nextest's `ExpectedError`). Errors are rendered with their causes
//! by the crate's one renderer of error chains.

use std::fmt;

use relapse::error_chain::DisplayErrorChain;

/// Process exit codes, documented in `--help` and the README.
pub mod exit {
    /// Everything that ran passed (trials ignored with a reason do not change that).
    pub const PASS: u8 = 0;
    /// A scenario failed (a symptom not reproduced, no convergence, snapshot mismatch, ...).
    pub const SCENARIO_FAILED: u8 = 1;
    /// Invalid input or a setup error: bad scenario files, bad arguments, a backend that
    /// cannot be set up.
    pub const INVALID: u8 = 2;
    /// Stopped by Ctrl-C (or SIGTERM, SIGHUP) while a run was paused: 128 + SIGINT, as shells
    /// report an interrupt.
    pub const INTERRUPTED: u8 = 130;
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CliError {
    /// Scenarios ran and at least one failed; their details were printed as they failed.
    ScenariosFailed,
    /// Invalid input whose diagnostics were already printed (scenario files).
    Reported,
    /// A signal stopped a paused run; what it cleaned up was printed.
    Interrupted,
    /// Invalid arguments or input, or something that could not be set up: the message.
    Invalid(String),
    /// An operation failed; shown as what was being done, then its chain of causes.
    Failed {
        /// What was being done (`failed to write a.xml`); empty when the error says it.
        context: String,
        /// The error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CliError {
    /// An [`CliError::Failed`] for `source`, with what was being done.
    pub fn failed(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Failed {
            context: context.to_string(),
            source: Box::new(source),
        }
    }

    /// An [`CliError::Failed`] whose error says what failed by itself.
    pub fn from_error(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::failed("", source)
    }

    /// The process exit code.
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::ScenariosFailed => exit::SCENARIO_FAILED,
            Self::Interrupted => exit::INTERRUPTED,
            Self::Reported | Self::Invalid(_) | Self::Failed { .. } => exit::INVALID,
        }
    }

    /// Prints what the user has not seen yet to stderr.
    pub fn print(&self) {
        match self {
            Self::ScenariosFailed | Self::Reported => {}
            Self::Interrupted => eprintln!("interrupted while paused: the run was stopped"),
            Self::Invalid(message) => eprintln!("error: {message}"),
            Self::Failed { context, source } => {
                eprintln!("error: {}", render(context, source.as_ref()))
            }
        }
    }
}

/// `context: cause: cause...`, or the chain alone without a context.
fn render(context: &str, source: &(dyn std::error::Error + 'static)) -> String {
    let chain = DisplayErrorChain(source);
    if context.is_empty() {
        chain.to_string()
    } else {
        format!("{context}: {chain}")
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ending_owns_its_exit_code() {
        assert_eq!(CliError::ScenariosFailed.exit_code(), exit::SCENARIO_FAILED);
        assert_eq!(CliError::Reported.exit_code(), exit::INVALID);
        assert_eq!(CliError::Interrupted.exit_code(), 130);
        assert_eq!(CliError::Invalid("x".into()).exit_code(), exit::INVALID);
        let e = CliError::failed("failed to write a.xml", std::io::Error::other("read-only"));
        assert_eq!(e.exit_code(), exit::INVALID);
        let CliError::Failed { context, source } = e else {
            panic!("not Failed")
        };
        assert_eq!(
            render(&context, source.as_ref()),
            "failed to write a.xml: read-only"
        );
        assert_eq!(render("", &std::io::Error::other("read-only")), "read-only");
    }
}
