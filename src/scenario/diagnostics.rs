//! Errors found while loading scenario files, pointed at file, line and column.

use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::yaml::{self, Location, Segment, YamlError};

/// One problem in one file, with the text around it for display.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    #[help]
    help: Option<String>,
}

impl Problem {
    /// A problem at a known location of `text`.
    #[must_use]
    pub fn at(
        path: &Path,
        text: &str,
        location: Option<Location>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let location = location.unwrap_or(Location {
            line: 1,
            column: 1,
            offset: 0,
        });
        let offset = location.offset.min(text.len());
        // Underline the token at the location (up to the end of the line or a delimiter).
        let len = text[offset..]
            .find(['\n', ':', ',', ']', '}'])
            .unwrap_or(text.len() - offset)
            .max(1)
            .min(text.len().saturating_sub(offset).max(1));
        Self {
            path: path.to_owned(),
            line: location.line,
            column: location.column,
            message: message.into(),
            src: NamedSource::new(path.display().to_string(), text.to_owned()),
            span: (offset, len).into(),
            label: label.into(),
            help,
        }
    }

    /// A problem at the node a path leads to in document `doc` of `text`.
    #[must_use]
    pub fn at_path(
        path: &Path,
        text: &str,
        doc: usize,
        node: &[Segment],
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        Self::at(
            path,
            text,
            yaml::locate(text, doc, node),
            message,
            "here",
            help,
        )
    }

    /// A YAML syntax or type error.
    #[must_use]
    pub fn from_yaml(path: &Path, text: &str, err: &YamlError) -> Self {
        let help = hint_for(&err.message);
        Self::at(path, text, err.location, err.message.clone(), "here", help)
    }

    /// The help line, if any.
    #[must_use]
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") || message.contains("unknown variant") {
        Some(
            "check the spelling; `relapse schema` prints every field the format accepts".to_owned(),
        )
    } else if message.contains("did not find expected")
        || message.contains("mapping values are not allowed")
    {
        Some("check the indentation: nested fields are indented further than their parent, with spaces".to_owned())
    } else {
        None
    }
}

/// Why a scenario (or a suite of scenarios) could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LoadError {
    /// A file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A scenario file that leads out of its scenario tree (a symlink); it was not read.
    #[error(transparent)]
    Refused(super::files::FileError),
    /// A path given on the command line does not exist or is not a scenario.
    #[error("no scenario at {}: {reason}", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
        /// Why nothing was found there.
        reason: String,
    },
    /// One or more problems in the files of one scenario.
    #[error("{} has {} problem{}", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// Each problem, with its location.
        #[related]
        problems: Vec<Problem>,
    },
}

impl LoadError {
    /// The individual problems (for `Invalid`), or nothing.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Renders an error with its source snippets as plain text (no colours), for test output and logs.
#[must_use]
pub fn render(err: &LoadError) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, err).is_err() {
        out = err.to_string();
    }
    out
}
