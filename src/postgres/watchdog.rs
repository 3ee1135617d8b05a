//! Cleanup that survives the test process: a shell that waits for end-of-file on a pipe whose
//! write end only this process holds, then runs its cleanup.
//!
//! The kernel closes the pipe however the process ends (exit, panic, SIGINT, SIGKILL). The
//! shell ignores the terminal's signals and runs in its own process group, so a Ctrl-C meant
//! for the tests does not kill the cleaner before it cleans.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running watchdog.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    /// Closing this starts the cleanup.
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts `/bin/sh -c <cleanup>` with `args` as `$1...`; the cleanup runs once the pipe
    /// closes.
    pub(crate) fn spawn<I, S>(cleanup: &str, args: I) -> std::io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let script = format!("trap '' INT TERM HUP PIPE\nwhile read -r _; do :; done\n{cleanup}");
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("relapse-watchdog")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Self { child, pipe })
    }

    /// Closes the pipe and waits (bounded) for the cleanup to finish.
    pub(crate) fn release(mut self, timeout: Duration) {
        drop(self.pipe.take());
        if wait_with_deadline(&mut self.child, timeout).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for a child until the deadline; `None` if it is still running then.
pub(crate) fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_runs_when_the_pipe_closes() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("cleaned");
        let watchdog = Watchdog::spawn("touch \"$1\"", [&marker]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!marker.exists(), "cleanup ran before the pipe closed");
        watchdog.release(Duration::from_secs(10));
        assert!(marker.exists());
    }
}
