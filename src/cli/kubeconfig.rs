//! Kubeconfig files the command line writes for people to use with kubectl (`sim up`,
//! `run --keep`). They carry a bearer token, so they are written with mode 0600, never through
//! a symlink, and never over a file relapse did not write unless told to (`--force`), in which
//! case the original comes back when relapse stops.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::CliError;

/// A kubeconfig written at a path the user chose; restores what was there before (or removes
/// the file) when dropped.
pub struct UserKubeconfig {
    path: PathBuf,
    written: String,
    /// The file that was there before `--force` replaced it: its bytes and mode.
    original: Option<(Vec<u8>, u32)>,
}

impl UserKubeconfig {
    /// Writes `yaml` to `path` with mode 0600. An existing file is refused unless `force`, and
    /// then kept in memory to be restored; a symlink or anything but a regular file is refused.
    ///
    /// # Errors
    /// [`CliError::Invalid`] for a refused path, [`CliError::Failed`] when writing fails.
    pub fn write(path: &Path, yaml: &str, force: bool) -> Result<Self, CliError> {
        let failed = |e| {
            CliError::failed(
                format!("failed to write the kubeconfig {}", path.display()),
                e,
            )
        };
        let original = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(CliError::Invalid(format!(
                    "{} is a symlink; relapse writes a kubeconfig only to a regular file (give the file it points to, or another path)",
                    path.display()
                )));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(CliError::Invalid(format!(
                    "{} exists and is not a regular file",
                    path.display()
                )));
            }
            Ok(_) if !force => {
                return Err(CliError::Invalid(format!(
                    "{} already exists; pass --force to use it for this session (relapse puts the original back when it stops), or give another path",
                    path.display()
                )));
            }
            Ok(meta) => {
                let mut bytes = Vec::new();
                open_nofollow(path, false)
                    .and_then(|mut f| f.read_to_end(&mut bytes))
                    .map_err(failed)?;
                Some((bytes, meta.permissions().mode() & 0o7777))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(failed(e)),
        };
        let mut file = if original.is_some() {
            let f = open_nofollow(path, true).map_err(failed)?;
            // Private before the token is in it.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(failed)?;
            f
        } else {
            create_private(path).map_err(failed)?
        };
        file.write_all(yaml.as_bytes()).map_err(failed)?;
        Ok(Self {
            path: path.to_owned(),
            written: yaml.to_owned(),
            original,
        })
    }

    /// Puts the original back, or removes the file, if it still holds what relapse wrote.
    fn restore(&mut self) {
        let mut now = String::new();
        let ours = open_nofollow(&self.path, false)
            .and_then(|mut f| f.read_to_string(&mut now))
            .is_ok_and(|_| now == self.written);
        if !ours {
            // Someone changed or removed it since: theirs now.
            return;
        }
        match self.original.take() {
            Some((bytes, mode)) => {
                let restored = open_nofollow(&self.path, true).and_then(|mut f| {
                    f.write_all(&bytes)?;
                    f.set_permissions(std::fs::Permissions::from_mode(mode))
                });
                if let Err(e) = restored {
                    eprintln!("error: failed to restore {}: {e}", self.path.display());
                }
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for UserKubeconfig {
    fn drop(&mut self) {
        self.restore();
    }
}

/// A directory only this user can enter, with a random name that starts with
/// `relapse-<pid>-`, in `$XDG_RUNTIME_DIR` (else the temp dir): where kubeconfigs of kept
/// clusters go, out of reach of other users and of predictable names. Removed when dropped.
pub struct PrivateDir {
    dir: tempfile::TempDir,
}

/// The prefix of private directory names: `relapse-<pid>-`.
pub fn private_prefix(pid: u32) -> String {
    format!("relapse-{pid}-")
}

/// Where private directories are made: `$XDG_RUNTIME_DIR` when it names a directory (it is the
/// user's own, mode 0700 by the XDG spec), else the temp dir.
pub fn private_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

impl PrivateDir {
    /// Creates one (mode 0700, a name no one could have taken beforehand).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn create() -> Result<Self, CliError> {
        let base = private_base();
        tempfile::Builder::new()
            .prefix(&private_prefix(std::process::id()))
            .rand_bytes(12)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map(|dir| Self { dir })
            .map_err(|e| {
                CliError::failed(
                    format!("failed to create a private directory in {}", base.display()),
                    e,
                )
            })
    }

    /// Writes `yaml` as a new file `name` (mode 0600) and returns its path.
    ///
    /// # Errors
    /// When the file cannot be created or written.
    pub fn write_kubeconfig(&self, name: &str, yaml: &str) -> Result<PathBuf, CliError> {
        let path = self.dir.path().join(name);
        create_private(&path)
            .and_then(|mut f| f.write_all(yaml.as_bytes()))
            .map_err(|e| {
                CliError::failed(
                    format!("failed to write the kubeconfig {}", path.display()),
                    e,
                )
            })?;
        Ok(path)
    }
}

/// Opens an existing file without following a symlink, for reading or for rewriting.
fn open_nofollow(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.read(true);
    }
    options.custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Creates a new file with mode 0600; fails if anything (a symlink included) is in the way.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}
