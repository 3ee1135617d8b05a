//! Kubeconfig files the command line writes for people to use with kubectl (`sim up`,
//! `run --keep`). They carry a bearer token, so they are written with mode 0600, never through
//! a symlink, and never over a file relapse did not write unless told to (`--force`), in which
//! case the original comes back when relapse stops.
//!
//! Each process that writes one keeps its state in a [`PrivateDir`] (mode 0700, named
//! `relapse-<pid>-<random>`): the kubeconfig of a kept cluster itself, or for `sim up` the path
//! it wrote, what it wrote there and the file that was there before. The process cleans up on
//! exit (Ctrl-C, SIGTERM, SIGHUP: see [`StopSignals`]); after a SIGKILL, [`gc`] (`relapse gc`)
//! does the same for every such directory whose process is gone.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use relapse::backend::k3d::{Liveness, Owner};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::CliError;

/// The file of a private directory naming the process that made it ([`Owner::token`]).
const OWNER: &str = "owner";
/// The path `sim up` wrote its kubeconfig to (absolute).
const TARGET: &str = "target";
/// What it wrote there: the file is removed or restored only while it still holds this.
const WRITTEN: &str = "written";
/// The file that was at the target before `--force` replaced it, and its mode (octal).
const ORIGINAL: &str = "original";
const ORIGINAL_MODE: &str = "original-mode";

/// A kubeconfig written at a path the user chose; restores what was there before (or removes
/// the file) when dropped.
pub struct UserKubeconfig {
    /// Dropped last: it restores the target, then goes.
    _state: PrivateDir,
}

impl UserKubeconfig {
    /// Writes `yaml` to `path` with mode 0600. An existing file is refused unless `force`, and
    /// then saved (in a private directory, so `relapse gc` can put it back after a SIGKILL);
    /// a symlink or anything but a regular file is refused.
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
        let target = std::path::absolute(path).map_err(failed)?;
        let state = PrivateDir::create()?;
        // The state first: whatever happens next, gc finds what to undo.
        if let Some((bytes, mode)) = &original {
            state.write(ORIGINAL, bytes)?;
            state.write(ORIGINAL_MODE, format!("{mode:o}").as_bytes())?;
        }
        state.write(WRITTEN, yaml.as_bytes())?;
        state.write(
            TARGET,
            std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()),
        )?;
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
        Ok(Self { _state: state })
    }
}

/// A directory only this user can enter, with a random name that starts with
/// `relapse-<pid>-`, in `$XDG_RUNTIME_DIR` (else the temp dir): where kubeconfigs of kept
/// clusters go, out of reach of other users and of predictable names, and where `sim up`
/// keeps what it must undo. Dropping it undoes that and removes it.
pub struct PrivateDir {
    dir: tempfile::TempDir,
}

/// Where private directories are made: `$XDG_RUNTIME_DIR` when it names a directory (the
/// user's own, mode 0700 by the XDG spec), else the temp dir.
fn private_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

impl PrivateDir {
    /// Creates one (mode 0700, a name no one could have taken beforehand), recording this
    /// process as its owner.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn create() -> Result<Self, CliError> {
        let base = private_base();
        let dir = tempfile::Builder::new()
            .prefix(&format!("relapse-{}-", std::process::id()))
            .rand_bytes(12)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| {
                CliError::failed(
                    format!("failed to create a private directory in {}", base.display()),
                    e,
                )
            })?;
        let dir = Self { dir };
        dir.write(OWNER, Owner::current().token().as_bytes())?;
        Ok(dir)
    }

    /// Writes `bytes` as a new file `name` (mode 0600) and returns its path.
    ///
    /// # Errors
    /// When the file cannot be created or written.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, CliError> {
        let path = self.dir.path().join(name);
        create_private(&path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| CliError::failed(format!("failed to write {}", path.display()), e))?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Some(Err(e)) = release_target(self.dir.path()) {
            eprintln!("error: {e}");
        }
        // The directory itself goes with `self.dir`.
    }
}

/// Undoes what `sim up` did at its target, if the directory records one: restores the
/// original or removes the file, provided it still holds what relapse wrote. `None` without a
/// target; `Some(Ok(line))` says what was done.
fn release_target(dir: &Path) -> Option<Result<String, String>> {
    use std::os::unix::ffi::OsStringExt as _;
    let target = std::fs::read(dir.join(TARGET)).ok()?;
    let target = PathBuf::from(std::ffi::OsString::from_vec(target));
    let written = std::fs::read(dir.join(WRITTEN)).ok()?;
    let mut now = Vec::new();
    let ours = open_nofollow(&target, false)
        .and_then(|mut f| f.read_to_end(&mut now))
        .is_ok_and(|_| now == written);
    if !ours {
        return Some(Ok(format!(
            "left {}: it no longer holds the kubeconfig relapse wrote",
            target.display()
        )));
    }
    let original = std::fs::read(dir.join(ORIGINAL)).ok();
    Some(match original {
        Some(bytes) => {
            let mode = std::fs::read_to_string(dir.join(ORIGINAL_MODE))
                .ok()
                .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
                .unwrap_or(0o600);
            open_nofollow(&target, true)
                .and_then(|mut f| {
                    f.write_all(&bytes)?;
                    f.set_permissions(std::fs::Permissions::from_mode(mode))
                })
                .map(|()| format!("restored {}", target.display()))
                .map_err(|e| format!("failed to restore {}: {e}", target.display()))
        }
        None => std::fs::remove_file(&target)
            .map(|()| format!("removed {}", target.display()))
            .map_err(|e| format!("failed to remove {}: {e}", target.display())),
    })
}

/// What [`gc`] did.
#[derive(Debug, Default)]
pub struct KubeconfigGcReport {
    /// One line per thing cleaned up.
    pub cleaned: Vec<String>,
    /// One line per directory of a gone process that could not be cleaned up.
    pub kept: Vec<String>,
}

/// Cleans up after every relapse process of this user that is gone without cleaning up (a
/// SIGKILL): restores or removes the kubeconfig `sim up` wrote, and removes its private
/// directory (with the kubeconfig of a kept cluster).
#[must_use]
pub fn gc() -> KubeconfigGcReport {
    let mut report = KubeconfigGcReport::default();
    let mut bases = vec![private_base(), std::env::temp_dir()];
    bases.dedup();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for base in bases {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(owner_pid) else {
                continue;
            };
            let dir = entry.path();
            // Only real directories of this user: never a symlink, never someone else's.
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if !meta.is_dir() || meta.uid() != me {
                continue;
            }
            let owner = std::fs::read_to_string(dir.join(OWNER))
                .ok()
                .and_then(|t| Owner::parse(t.trim()))
                // Killed before it recorded itself: the pid is all there is to go by.
                .unwrap_or_else(|| Owner {
                    pid,
                    start_time: None,
                    ..Owner::current()
                });
            match owner.liveness() {
                Liveness::Dead(why) => {
                    match release_target(&dir) {
                        Some(Ok(line)) => report.cleaned.push(format!("{line} ({why})")),
                        Some(Err(e)) => {
                            report.kept.push(format!("{}: {e}", dir.display()));
                            continue;
                        }
                        None => {}
                    }
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => report
                            .cleaned
                            .push(format!("removed {} ({why})", dir.display())),
                        Err(e) => report
                            .kept
                            .push(format!("{}: failed to remove: {e}", dir.display())),
                    }
                }
                // In use (or not this machine's to judge): nothing to say.
                Liveness::Alive | Liveness::OtherHost(_) => {}
            }
        }
    }
    report
}

/// The pid in a private directory's name `relapse-<pid>-<random>`.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix("relapse-")?.split_once('-')?;
    (!random.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// The signals that end `sim up` and a kept cluster as Ctrl-C does: SIGINT, SIGTERM (what
/// `timeout`, `docker stop` and CI cancellation send) and SIGHUP (a closed terminal).
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    /// Listens from now on (call it inside the runtime, before announcing anything that must
    /// be cleaned up).
    ///
    /// # Errors
    /// When a signal handler cannot be installed.
    pub fn listen() -> Result<Self, CliError> {
        let listen =
            |kind| signal(kind).map_err(|e| CliError::failed("failed to listen for signals", e));
        Ok(Self {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }

    /// Waits for the first of them.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_directory_names() {
        assert_eq!(owner_pid("relapse-4242-Ab3dE5fG7hJ9"), Some(4242));
        assert_eq!(owner_pid("relapse-pg-Ab3dE5"), None);
        assert_eq!(owner_pid("relapse-4242-"), None);
        assert_eq!(owner_pid("relapse-sim.kubeconfig"), None);
        assert_eq!(owner_pid("other-4242-x"), None);
    }
}
