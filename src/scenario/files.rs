//! Reading the files a scenario references (`file:`, `include:`) and scenario files themselves,
//! confined to the scenario tree.
//!
//! A scenario from an untrusted change must not make `relapse validate` read, let alone print,
//! files outside the repository's scenarios: a reference is resolved lexically against the
//! referencing file's directory and then through the file system (symlinks included), and both
//! must stay inside the tree root. A refused reference is named as written; its target is never
//! opened, so nothing of it can reach a diagnostic.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use crate::yaml::Location;

/// The largest file a scenario may reference (and the largest scenario file): far above any
/// manifest a scenario needs, far below what exhausts memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A file reference that was refused or could not be read. The messages name the reference,
/// never anything read from it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The reference leads out of the scenario tree (`..`, an absolute path, or a symlink).
    #[error("{} is outside the scenario tree {}", reference.display(), root.display())]
    Outside {
        /// The reference as written, joined to its base.
        reference: PathBuf,
        /// The tree root.
        root: PathBuf,
    },
    /// A FIFO, a device, a directory or a socket: only regular files are read (a FIFO would
    /// block, `/dev/zero` would never end).
    #[error("{} is not a regular file", reference.display())]
    NotRegular {
        /// The reference as written, joined to its base.
        reference: PathBuf,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{} is larger than {} MiB", reference.display(), MAX_FILE_BYTES / 1024 / 1024)]
    TooLarge {
        /// The reference as written, joined to its base.
        reference: PathBuf,
    },
    /// The file is not UTF-8 text.
    #[error("{}:{}:{}: {}", reference.display(), location.line, location.column, not_utf8_message(*byte))]
    NotUtf8 {
        /// The reference as written, joined to its base.
        reference: PathBuf,
        /// Where the first byte that is not UTF-8 is.
        location: Location,
        /// That byte.
        byte: u8,
        /// The text with each invalid sequence replaced (for the snippet; the file is inside
        /// the tree).
        text: String,
    },
    /// The file does not exist or cannot be opened.
    #[error("{} does not exist or cannot be read", reference.display())]
    Unreadable {
        /// The reference as written, joined to its base.
        reference: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The root of the scenario tree `file` belongs to, canonical: the nearest directory named
/// `scenarios` above it (by its path as given, then by its directory's real path), else `root`
/// (the directory scenario ids are relative to).
#[must_use]
pub fn tree_root(file: &Path, root: &Path) -> PathBuf {
    let named = |p: &Path| p.file_name().is_some_and(|n| n == "scenarios");
    let lexical = file.ancestors().skip(1).find(|a| named(a));
    let chosen = match lexical {
        Some(dir) => dir.to_path_buf(),
        None => file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .and_then(|p| p.canonicalize().ok())
            .and_then(|real| real.ancestors().find(|a| named(a)).map(Path::to_path_buf))
            .unwrap_or_else(|| root.to_path_buf()),
    };
    chosen.canonicalize().unwrap_or(chosen)
}

/// Reads `reference` (already joined to the referencing file's directory) as text, after
/// checking that it stays inside `root` (canonical, from [`tree_root`]).
///
/// # Errors
/// [`FileError::Outside`] for a reference that leaves the tree, by its path or by a symlink;
/// [`FileError::NotRegular`] for anything but a regular file, [`FileError::TooLarge`] past
/// [`MAX_FILE_BYTES`], [`FileError::Unreadable`] when it does not exist or cannot be read.
pub fn read_in_tree(root: &Path, reference: &Path) -> Result<String, FileError> {
    let real = resolve(root, reference)?;
    let unreadable = |source| FileError::Unreadable {
        reference: reference.to_owned(),
        source,
    };
    let not_regular = || FileError::NotRegular {
        reference: reference.to_owned(),
    };
    let too_large = || FileError::TooLarge {
        reference: reference.to_owned(),
    };
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(&real).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    // Non-blocking and without following a symlink, in case the file was swapped since.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&real)
        .map_err(unreadable)?;
    if !file.metadata().map_err(unreadable)?.is_file() {
        return Err(not_regular());
    }
    // Bounded even where the size lies (files in /proc report 0).
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.into_bytes();
        let at = std::str::from_utf8(&bytes).map_or_else(|e| e.valid_up_to(), |_| 0);
        not_utf8(reference, &bytes, at)
    })
}

/// The most files a directory read with [`read_dir_in_tree`] may hold: far above any
/// repository a scenario needs.
pub const MAX_DIR_FILES: usize = 2_000;

/// Reads every regular file below the directory `reference` (joined to its base), each as
/// [`read_in_tree`] reads it, keyed by its path relative to the directory with `/` between
/// components. Symlinks are followed only where they stay inside the tree.
///
/// # Errors
/// [`FileError::Outside`] for a directory outside the tree, [`FileError::Unreadable`] when it
/// does not exist or is not a directory (or holds more than [`MAX_DIR_FILES`] files), and the
/// errors of [`read_in_tree`] for a file in it.
pub fn read_dir_in_tree(
    root: &Path,
    reference: &Path,
) -> Result<std::collections::BTreeMap<String, String>, FileError> {
    let real = resolve(root, reference)?;
    let unreadable = |source| FileError::Unreadable {
        reference: reference.to_owned(),
        source,
    };
    if !std::fs::metadata(&real).map_err(unreadable)?.is_dir() {
        return Err(unreadable(std::io::Error::other("not a directory")));
    }
    let mut out = std::collections::BTreeMap::new();
    let mut pending = vec![(reference.to_owned(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(unreadable)?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = dir.join(&name);
            let rel = format!("{prefix}{name}");
            let real = resolve(root, &path)?;
            if std::fs::metadata(&real).map_err(unreadable)?.is_dir() {
                pending.push((path, format!("{rel}/")));
            } else {
                out.insert(rel, read_in_tree(root, &path)?);
            }
            if out.len() > MAX_DIR_FILES {
                return Err(unreadable(std::io::Error::other(format!(
                    "more than {MAX_DIR_FILES} files"
                ))));
            }
        }
    }
    Ok(out)
}

/// What is wrong with a file whose first invalid byte is `byte`.
#[must_use]
pub fn not_utf8_message(byte: u8) -> String {
    format!("invalid UTF-8 (byte 0x{byte:02X}): scenario files and manifests are UTF-8")
}

/// The error for `bytes` whose first invalid sequence starts at byte `at`.
fn not_utf8(reference: &Path, bytes: &[u8], at: usize) -> FileError {
    let valid = String::from_utf8_lossy(&bytes[..at]);
    let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
    FileError::NotUtf8 {
        reference: reference.to_owned(),
        location: Location {
            line: valid.matches('\n').count() + 1,
            column: valid[line_start..].chars().count() + 1,
            offset: at,
        },
        byte: bytes.get(at).copied().unwrap_or_default(),
        text: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The real path of `reference`, refused when it leaves `root`.
fn resolve(root: &Path, reference: &Path) -> Result<PathBuf, FileError> {
    let outside = || FileError::Outside {
        reference: reference.to_owned(),
        root: root.to_owned(),
    };
    // By its path first, whether or not it exists: nothing outside is even looked at.
    let base = reference.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let lexical = base
        .and_then(|b| b.canonicalize().ok())
        .zip(reference.file_name())
        .map(|(dir, name)| normalize(&dir.join(name)));
    match lexical {
        Some(path) if !path.starts_with(root) => return Err(outside()),
        Some(_) => {}
        // The directory itself is missing (or the reference ends in `..`): judge the text.
        None => {
            let absolute = std::path::absolute(reference).map_err(|_| outside())?;
            if !normalize(&absolute).starts_with(root) {
                return Err(outside());
            }
        }
    }
    // Then through the file system: a symlink inside the tree may point out of it.
    let real = reference
        .canonicalize()
        .map_err(|source| FileError::Unreadable {
            reference: reference.to_owned(),
            source,
        })?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(outside())
    }
}

/// `path` with `.` and `..` resolved by their text (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scenarios");
        std::fs::create_dir_all(root.join("apps/manifests")).unwrap();
        std::fs::create_dir_all(root.join("fixtures")).unwrap();
        std::fs::write(root.join("apps/manifests/a.yaml"), "kind: A\n").unwrap();
        std::fs::write(root.join("fixtures/f.yaml"), "setup: []\n").unwrap();
        std::fs::write(dir.path().join("credentials"), "secret-key-xyz\n").unwrap();
        let root = root.canonicalize().unwrap();
        (dir, root)
    }

    #[test]
    fn the_root_is_the_nearest_scenarios_directory() {
        let (_dir, root) = tree();
        let file = root.join("apps/crash.yaml");
        assert_eq!(tree_root(&file, &root.join("apps")), root);
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("x.yaml");
        assert_eq!(
            tree_root(&file, elsewhere.path()),
            elsewhere.path().canonicalize().unwrap()
        );
    }

    #[test]
    fn references_inside_the_tree_are_read() {
        let (_dir, root) = tree();
        let base = root.join("apps");
        assert_eq!(
            read_in_tree(&root, &base.join("manifests/a.yaml")).unwrap(),
            "kind: A\n"
        );
        assert_eq!(
            read_in_tree(&root, &base.join("../fixtures/f.yaml")).unwrap(),
            "setup: []\n"
        );
    }

    #[test]
    fn references_out_of_the_tree_are_refused_unread() {
        let (_dir, root) = tree();
        let base = root.join("apps");
        for reference in [
            base.join("../../credentials"),
            base.join("../../../../../../etc/shadow"),
            // What `base.join` makes of an absolute reference: the reference alone.
            PathBuf::from("/proc/self/environ"),
            PathBuf::from("/etc/shadow"),
            // Refused whether or not it exists: no oracle for files outside.
            base.join("../../no-such-file"),
            base.join("../../no-such-dir/x.yaml"),
        ] {
            let err = read_in_tree(&root, &reference).unwrap_err();
            assert!(
                matches!(err, FileError::Outside { .. }),
                "{reference:?}: {err}"
            );
            assert!(
                err.to_string().contains("is outside the scenario tree"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_symlink_out_of_the_tree_is_refused() {
        let (dir, root) = tree();
        let link = root.join("apps/manifests/link.yaml");
        std::os::unix::fs::symlink(dir.path().join("credentials"), &link).unwrap();
        let err = read_in_tree(&root, &link).unwrap_err();
        assert!(matches!(err, FileError::Outside { .. }), "{err}");
        assert!(!err.to_string().contains("secret-key-xyz"));
        // A symlinked directory leading out is refused the same way.
        std::os::unix::fs::symlink(dir.path(), root.join("apps/out")).unwrap();
        let err = read_in_tree(&root, &root.join("apps/out/credentials")).unwrap_err();
        assert!(matches!(err, FileError::Outside { .. }), "{err}");
        // One that stays inside is followed.
        std::os::unix::fs::symlink(root.join("fixtures/f.yaml"), root.join("apps/f.yaml")).unwrap();
        assert_eq!(
            read_in_tree(&root, &root.join("apps/f.yaml")).unwrap(),
            "setup: []\n"
        );
    }

    #[test]
    fn only_regular_files_are_read() {
        let (_dir, root) = tree();
        let fifo = root.join("apps/manifests/fifo.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once: a FIFO without a writer is never opened.
        let err = read_in_tree(&root, &fifo).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("{} is not a regular file", fifo.display())
        );
        let err = read_in_tree(&root, &root.join("apps")).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        // A tree holding devices: /dev/zero would never end.
        let err = read_in_tree(Path::new("/dev"), Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
    }

    #[test]
    fn files_over_the_limit_are_refused() {
        let (_dir, root) = tree();
        let big = root.join("apps/manifests/big.yaml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = read_in_tree(&root, &big).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { .. }), "{err}");
        assert!(err.to_string().ends_with("is larger than 4 MiB"), "{err}");
        f.set_len(MAX_FILE_BYTES).unwrap();
        assert!(read_in_tree(&root, &big).is_ok());
    }

    #[test]
    fn invalid_utf8_is_located() {
        let (_dir, root) = tree();
        let file = root.join("apps/crash.yaml");
        std::fs::write(&file, b"name: x\ndescription: caf\xc3\xa9 \xff here\n").unwrap();
        let err = read_in_tree(&root, &file).unwrap_err();
        let FileError::NotUtf8 {
            location,
            byte,
            text,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        // Line 2; `é` is one column, so the bad byte is the 19th character of its line.
        assert_eq!((location.line, location.column, *byte), (2, 19, 0xff));
        assert_eq!(&text[location.offset..location.offset + 3], "\u{fffd}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2:19: invalid UTF-8 (byte 0xFF): scenario files and manifests are UTF-8",
                file.display()
            )
        );
        std::fs::write(&file, b"\x80").unwrap();
        let err = read_in_tree(&root, &file).unwrap_err();
        assert!(
            err.to_string().contains(":1:1: invalid UTF-8 (byte 0x80)"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_inside_is_unreadable() {
        let (_dir, root) = tree();
        let err = read_in_tree(&root, &root.join("apps/manifests/missing.yaml")).unwrap_err();
        assert!(matches!(err, FileError::Unreadable { .. }), "{err}");
    }
}
