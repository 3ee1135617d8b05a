//! Which process owns a cluster, and whether it still runs.
//!
//! A pid alone is not an identity: after the owner exits the kernel may hand the same pid to an
//! unrelated process, and after a reboot every pid starts over. The owner is therefore recorded
//! as host name, boot id, pid and the process's start time (clock ticks since boot, field 22 of
//! `/proc/<pid>/stat`); it is alive only if all of them still match.

use std::fmt;

/// The process that created a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Host name of the machine it ran on.
    pub host: String,
    /// Kernel boot id (`/proc/sys/kernel/random/boot_id`), where the system has one.
    pub boot_id: Option<String>,
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot, where the system exposes it.
    pub start_time: Option<u64>,
}

/// Whether a cluster's owner is still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The owner runs: its cluster is in use.
    Alive,
    /// The owner is gone, for this reason: its cluster is left over.
    Dead(String),
    /// The owner ran on another machine sharing this Docker daemon: nothing can be known here.
    OtherHost(String),
}

impl Owner {
    /// This process.
    #[must_use]
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: hostname(),
            boot_id: boot_id(),
            pid,
            start_time: start_time(pid),
        }
    }

    /// A running process of this machine, or `None` if there is no process `pid`.
    #[must_use]
    pub fn of_pid(pid: u32) -> Option<Self> {
        if !process_exists(pid) {
            return None;
        }
        Some(Self {
            host: hostname(),
            boot_id: boot_id(),
            pid,
            start_time: start_time(pid),
        })
    }

    /// The owner written as one label value: `host/boot-id/pid/start-time`, `-` for unknown parts.
    #[must_use]
    pub fn token(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.host,
            self.boot_id.as_deref().unwrap_or("-"),
            self.pid,
            self.start_time
                .map_or_else(|| "-".to_owned(), |t| t.to_string())
        )
    }

    /// Reads a token written by [`Owner::token`]; `None` if it is not one.
    #[must_use]
    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.split('/');
        let host = parts.next().filter(|h| !h.is_empty())?;
        let boot = parts.next()?;
        let pid = parts.next()?.parse::<u32>().ok().filter(|&p| p > 0)?;
        let start = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            boot_id: (boot != "-" && !boot.is_empty()).then(|| boot.to_owned()),
            pid,
            start_time: if start == "-" {
                None
            } else {
                Some(start.parse().ok()?)
            },
        })
    }

    /// Whether this owner still runs, judged from this machine.
    #[must_use]
    pub fn liveness(&self) -> Liveness {
        let here = hostname();
        if self.host != here {
            return Liveness::OtherHost(format!(
                "created by a process on host {}, this is {here}",
                self.host
            ));
        }
        if let (Some(then), Some(now)) = (&self.boot_id, boot_id())
            && *then != now
        {
            return Liveness::Dead("the machine has rebooted since".to_owned());
        }
        if !process_exists(self.pid) {
            return Liveness::Dead(format!("process {} has exited", self.pid));
        }
        if let (Some(then), Some(now)) = (self.start_time, start_time(self.pid))
            && then != now
        {
            return Liveness::Dead(format!(
                "process {} has exited and its pid was reused",
                self.pid
            ));
        }
        Liveness::Alive
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    // '/' separates the token's fields; host names never contain it, but be sure.
    String::from_utf8_lossy(&buf[..end]).replace('/', "_")
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; field 22 is the 20th of those.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists and is not a zombie.
fn process_exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(raw, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie has exited; only its parent has not collected it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_none_or(|state| state != "Z"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        let owner = Owner {
            host: "ci-runner-7".to_owned(),
            boot_id: Some("0b4e6a3c-5d1f-4c8e-9a2b-7f3e1d6c8a90".to_owned()),
            pid: 48213,
            start_time: Some(7_730_121),
        };
        assert_eq!(
            owner.token(),
            "ci-runner-7/0b4e6a3c-5d1f-4c8e-9a2b-7f3e1d6c8a90/48213/7730121"
        );
        assert_eq!(Owner::parse(&owner.token()), Some(owner));

        let bare = Owner {
            host: "mac".to_owned(),
            boot_id: None,
            pid: 7,
            start_time: None,
        };
        assert_eq!(bare.token(), "mac/-/7/-");
        assert_eq!(Owner::parse("mac/-/7/-"), Some(bare));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in [
            "",
            "host",
            "h/b/0/1",
            "h/b/x/1",
            "h/b/1/x",
            "h/b/1/2/3",
            "/b/1/2",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_names() {
        let stat = "4242 (we(i)rd name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn this_process_is_alive() {
        assert_eq!(Owner::current().liveness(), Liveness::Alive);
    }

    #[test]
    fn an_exited_process_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let owner = Owner {
            pid: child.id(),
            start_time: None,
            ..Owner::current()
        };
        child.wait().unwrap();
        assert!(matches!(owner.liveness(), Liveness::Dead(_)), "{owner:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let mut owner = Owner::current();
        owner.start_time = Some(owner.start_time.unwrap() + 1);
        assert!(matches!(owner.liveness(), Liveness::Dead(_)));
    }

    #[test]
    fn another_host_is_not_judged() {
        let mut owner = Owner::current();
        owner.host.push_str("-elsewhere");
        assert!(matches!(owner.liveness(), Liveness::OtherHost(_)));
    }
}
