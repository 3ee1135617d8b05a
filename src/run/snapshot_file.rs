//! Snapshot files in insta's format, so `cargo insta review` accepts and rejects them.
//!
//! The runner compares a scenario's converged-state projection with `snapshots/<name>.snap`.
//! A mismatch or a missing file writes `<name>.snap.new` beside it for review (never in CI,
//! where a missing or changed snapshot just fails), as insta itself does.

use std::path::{Path, PathBuf};

/// How snapshot mismatches are handled (mirrors insta's `INSTA_UPDATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Write `.snap.new` files for review (the local default).
    New,
    /// Overwrite `.snap` files directly.
    Always,
    /// Write nothing (the default when `CI` is set).
    No,
}

impl UpdateMode {
    /// The mode from `INSTA_UPDATE` and `CI`, as insta decides it.
    #[must_use]
    pub fn from_env() -> Self {
        match std::env::var("INSTA_UPDATE").as_deref() {
            Ok("always") => Self::Always,
            Ok("no") => Self::No,
            Ok("new") => Self::New,
            _ if std::env::var_os("CI")
                .is_some_and(|v| !v.is_empty() && v != "false" && v != "0") =>
            {
                Self::No
            }
            _ => Self::New,
        }
    }
}

/// The result of comparing a projection with its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Identical.
    Matches,
    /// No snapshot yet; `written` says where the candidate went, if anywhere.
    Missing {
        /// The pending file written for review.
        written: Option<PathBuf>,
    },
    /// Different; a line diff and where the candidate went.
    Changed {
        /// `-` old / `+` new lines around the differences.
        diff: String,
        /// The pending file written for review.
        written: Option<PathBuf>,
    },
}

/// Errors reading or writing snapshot files.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} snapshot {}", path.display())]
pub struct SnapshotFileError {
    /// `read` or `write`.
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// The snapshot file name for a scenario id: `storage/rwo-rollout-deadlock` → `storage__rwo-rollout-deadlock`.
#[must_use]
pub fn snapshot_name(id: &str) -> String {
    id.replace('/', "__")
}

fn render(source: &str, content: &str) -> String {
    format!("---\nsource: {source}\nexpression: converged state\n---\n{content}")
}

/// The content of a snapshot file (after its header).
fn content_of(file: &str) -> &str {
    let body = file.strip_prefix("---\n").unwrap_or(file);
    match body.find("\n---\n") {
        Some(end) if file.starts_with("---\n") => &body[end + 5..],
        _ => file,
    }
}

/// Compares `content` with `dir/<name>.snap`.
///
/// # Errors
/// When an existing file cannot be read or a pending file cannot be written.
pub fn compare(
    dir: &Path,
    name: &str,
    source: &str,
    content: &str,
    mode: UpdateMode,
) -> Result<Comparison, SnapshotFileError> {
    let path = dir.join(format!("{name}.snap"));
    let pending = dir.join(format!("{name}.snap.new"));
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(SnapshotFileError {
                action: "read",
                path,
                source,
            });
        }
    };
    let normalized = if content.ends_with('\n') {
        content.to_owned()
    } else {
        format!("{content}\n")
    };
    if let Some(old) = &existing
        && content_of(old) == normalized
    {
        let _ = std::fs::remove_file(&pending);
        return Ok(Comparison::Matches);
    }
    let target = match mode {
        UpdateMode::No => None,
        UpdateMode::New => Some(pending),
        UpdateMode::Always => Some(path.clone()),
    };
    if let Some(t) = &target {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(t, render(source, &normalized)))
            .map_err(|source| SnapshotFileError {
                action: "write",
                path: t.clone(),
                source,
            })?;
    }
    Ok(match existing {
        None => Comparison::Missing { written: target },
        Some(old) => Comparison::Changed {
            diff: line_diff(content_of(&old), &normalized),
            written: target,
        },
    })
}

/// A minimal line diff: common prefix and suffix trimmed, the middle shown as `-`/`+` lines.
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    for line in &a[prefix.saturating_sub(2)..prefix] {
        out.push_str(&format!("  {line}\n"));
    }
    for line in &a[prefix..a.len() - suffix] {
        out.push_str(&format!("- {line}\n"));
    }
    for line in &b[prefix..b.len() - suffix] {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_changed_and_matching() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            compare(d, "a__b", "scenarios/a/b.yaml", "x: 1\n", UpdateMode::No).unwrap(),
            Comparison::Missing { written: None }
        );
        assert!(!d.join("a__b.snap.new").exists());
        let c = compare(d, "a__b", "scenarios/a/b.yaml", "x: 1\n", UpdateMode::New).unwrap();
        assert_eq!(
            c,
            Comparison::Missing {
                written: Some(d.join("a__b.snap.new"))
            }
        );
        // Accept it (what `cargo insta review` does), then compare again.
        std::fs::rename(d.join("a__b.snap.new"), d.join("a__b.snap")).unwrap();
        assert_eq!(
            compare(d, "a__b", "scenarios/a/b.yaml", "x: 1\n", UpdateMode::No).unwrap(),
            Comparison::Matches
        );
        let Comparison::Changed { diff, written } =
            compare(d, "a__b", "s", "x: 2\n", UpdateMode::No).unwrap()
        else {
            panic!("expected a change")
        };
        assert_eq!(diff, "- x: 1\n+ x: 2\n");
        assert_eq!(written, None);
        let text = std::fs::read_to_string(d.join("a__b.snap")).unwrap();
        assert!(text.starts_with(
            "---\nsource: scenarios/a/b.yaml\nexpression: converged state\n---\nx: 1\n"
        ));
    }

    #[test]
    fn names_from_ids() {
        assert_eq!(
            snapshot_name("storage/rwo-rollout-deadlock"),
            "storage__rwo-rollout-deadlock"
        );
    }
}
