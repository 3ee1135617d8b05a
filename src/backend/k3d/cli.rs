//! Running the `k3d` executable with a deadline.
//!
//! Each command runs in its own process group: when the deadline passes the whole group is
//! killed, so nothing it started keeps running (or keeps our output pipes open), and a Ctrl-C
//! typed at the terminal reaches this process alone, whose handler then cleans up in order.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::error::K3dError;

/// How many stages of `k3d cluster create` each get the whole `--timeout`.
///
/// k3d v5.8.3 gives its three stages a context with the full `--timeout` each instead of
/// sharing one deadline (`pkg/client/cluster.go`: `ClusterPrep` for the network, `ClusterCreate`
/// for the node containers, `ClusterStart` for starting them and waiting for their logs; the
/// source notes "TODO: here we should consider the time used so far"). So a create that k3d
/// would still let succeed can run for up to three timeouts.
pub const CREATE_STAGES: u32 = 3;

/// How long each kind of k3d command may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `k3d cluster create`'s `--timeout`, which k3d applies to each of its [`CREATE_STAGES`]
    /// stages separately; when a stage overruns it, k3d rolls the cluster back itself.
    pub create: Duration,
    /// Time beyond the stages' timeouts before `k3d cluster create` is killed: for what k3d does
    /// not bound (the image volume, the tools container, environment checks) and for its own
    /// rollback. The kill deadline is [`Timeouts::create_kill_after`].
    pub create_grace: Duration,
    /// `k3d cluster delete`.
    pub delete: Duration,
    /// `k3d image import`.
    pub import: Duration,
    /// Queries: `cluster list`, `kubeconfig get`, `version`.
    pub query: Duration,
}

impl Timeouts {
    /// When `k3d cluster create` is killed: every stage's timeout plus the grace, so that k3d
    /// always gets the chance to fail (and roll back) on its own first.
    #[must_use]
    pub fn create_kill_after(&self) -> Duration {
        self.create * CREATE_STAGES + self.create_grace
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            // Three stages of 3 minutes (the image pull happens in the second, k3s start-up in
            // the third) and one minute of grace: killed after 10 minutes at most.
            create: Duration::from_secs(180),
            create_grace: Duration::from_secs(60),
            delete: Duration::from_secs(120),
            import: Duration::from_secs(300),
            query: Duration::from_secs(60),
        }
    }
}

/// The `k3d` executable, the deadlines of its commands, and the Docker daemon it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3d {
    program: PathBuf,
    timeouts: Timeouts,
    docker_host: Option<String>,
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) command: String,
}

/// Lines of standard error kept for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// Process groups of k3d commands now running, so a Ctrl-C handler can stop them first.
static RUNNING: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

impl K3d {
    /// The `k3d` found on `PATH`, with default deadlines.
    ///
    /// # Errors
    /// [`K3dError::NotInstalled`] when there is none.
    pub fn from_path() -> Result<Self, K3dError> {
        crate::backend::find_on_path("k3d")
            .map(Self::at)
            .ok_or(K3dError::NotInstalled)
    }

    /// The executable at `program`, with default deadlines.
    #[must_use]
    pub fn at(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            timeouts: Timeouts::default(),
            docker_host: None,
        }
    }

    /// The same executable with other deadlines.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The same executable, with leftovers of killed creates removed from the Docker daemon at
    /// `host` (`unix:///path` or `tcp://host:port`) instead of the one k3d itself would use.
    #[must_use]
    pub fn with_docker_host(mut self, host: impl Into<String>) -> Self {
        self.docker_host = Some(host.into());
        self
    }

    /// The Docker daemon k3d talks to: the one given to [`K3d::with_docker_host`], else the one
    /// the Docker CLI would use ([`crate::docker::resolve_host`]).
    ///
    /// # Errors
    /// When the Docker configuration names a context that cannot be read.
    pub fn docker_host(&self) -> Result<crate::docker::DockerHost, crate::docker::DockerError> {
        match &self.docker_host {
            Some(host) => Ok(crate::docker::DockerHost::plain(host.clone())),
            None => crate::docker::resolve_host(),
        }
    }

    /// The executable's path.
    #[must_use]
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The deadlines in use.
    #[must_use]
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Runs `k3d <args>`, killing it (and everything it started) after `timeout`.
    pub(crate) fn run(&self, args: &[String], timeout: Duration) -> Result<Output, K3dError> {
        let command = display_command(&self.program, args);
        let mut child = Command::new(&self.program)
            .args(args)
            // k3d writes info logs to stdout (cmd/root.go), where they would precede the JSON
            // or YAML we read; warnings and errors still go to stderr. Its colour codes are
            // kept (the `ERRO[0002] ...` form reads better than logrus's key=value form) and
            // stripped from error messages.
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| K3dError::Spawn {
                command: command.clone(),
                source,
            })?;
        let Ok(pgid) = i32::try_from(child.id()) else {
            // Unreachable on Unix (pids fit in pid_t); never pass a bad value to kill().
            let _ = child.kill();
            let _ = child.wait();
            return Err(K3dError::CommandFailed {
                command,
                code: None,
                stderr_tail: String::new(),
            });
        };
        lock_running().insert(pgid);

        let stdout = reader(child.stdout.take());
        let stderr = reader(child.stderr.take());
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let status = child.wait();
            let _ = done_tx.send(());
            status
        });

        let timed_out = done_rx.recv_timeout(timeout).is_err();
        if timed_out {
            kill_group(pgid);
        }
        let status = waiter.join();
        lock_running().remove(&pgid);
        // Everything in the group is dead (or has exited), so the pipes close; the bound is
        // only for a grandchild that left the group and still holds them.
        let out_bytes = collect(stdout);
        let err_bytes = collect(stderr);
        let stderr_tail = tail(&String::from_utf8_lossy(&err_bytes), STDERR_TAIL_LINES);

        if timed_out {
            return Err(K3dError::Timeout {
                command,
                after: timeout,
                stderr_tail,
            });
        }
        let status = match status {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => return Err(K3dError::Spawn { command, source }),
            Err(_) => {
                return Err(K3dError::CommandFailed {
                    command,
                    code: None,
                    stderr_tail,
                });
            }
        };
        if !status.success() {
            return Err(K3dError::CommandFailed {
                command,
                code: status.code(),
                stderr_tail,
            });
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out_bytes).into_owned(),
            command,
        })
    }
}

/// Kills every k3d command now running (with its process group); used on Ctrl-C.
pub(crate) fn kill_running() {
    let groups: Vec<i32> = lock_running().iter().copied().collect();
    for pgid in groups {
        kill_group(pgid);
    }
}

/// How many k3d commands are running now.
#[cfg(test)]
pub(crate) fn running_commands() -> usize {
    lock_running().len()
}

fn lock_running() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn kill_group(pgid: i32) {
    // A non-positive value would signal our own group or every process: never send it.
    if pgid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; the negative pid addresses the
        // process group the child leads (it was spawned with process_group(0)).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

type Reader = mpsc::Receiver<Vec<u8>>;

fn reader(pipe: Option<impl Read + Send + 'static>) -> Option<Reader> {
    let mut pipe = pipe?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    Some(rx)
}

fn collect(reader: Option<Reader>) -> Vec<u8> {
    reader
        .and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
        .unwrap_or_default()
}

/// The last `lines` non-empty lines of `text`, without terminal colour codes.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let clean = strip_ansi(text);
    let kept: Vec<&str> = clean.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = kept.len().saturating_sub(lines);
    kept[start..].join("\n")
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates up to a final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The command line as a person would type it into a POSIX shell.
pub(crate) fn display_command(program: &Path, args: &[String]) -> String {
    let name = program
        .file_name()
        .map_or_else(|| program.to_string_lossy(), |n| n.to_string_lossy());
    let mut out = quote(&name);
    for arg in args {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@')
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_without_colours() {
        let text = "a\n\n\u{1b}[31mERRO\u{1b}[0m[0000] b\nc\n";
        assert_eq!(tail(text, 2), "ERRO[0000] b\nc");
        assert_eq!(tail(text, 10), "a\nERRO[0000] b\nc");
    }

    #[test]
    fn command_lines_are_shell_quoted() {
        let args = vec![
            "cluster".to_owned(),
            "create".to_owned(),
            "--k3s-arg=--disable=traefik@server:*".to_owned(),
            "it's".to_owned(),
        ];
        assert_eq!(
            display_command(Path::new("/usr/local/bin/k3d"), &args),
            r"k3d cluster create '--k3s-arg=--disable=traefik@server:*' 'it'\''s'"
        );
    }
}
