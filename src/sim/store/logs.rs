//! Container logs: an in-memory buffer per container that the simulated kubelet appends to and
//! `pods/<name>/log` reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// Identifies one container of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerKey {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

impl ContainerKey {
    /// Builds a key.
    pub fn new(
        namespace: impl Into<String>,
        pod: impl Into<String>,
        container: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
        }
    }
}

/// One log line with the time it was written (RFC 3339 with nanoseconds, as `timestamps=true` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was written.
    pub time: String,
    /// The text, without the trailing newline.
    pub text: String,
}

#[derive(Debug, Default)]
struct ContainerLog {
    current: Vec<LogLine>,
    previous: Option<Vec<LogLine>>,
    /// Bumped on every restart so followers of the old instance stop.
    instance: u64,
}

/// The log buffers of every container.
#[derive(Debug, Default)]
pub struct LogStore {
    logs: Mutex<HashMap<ContainerKey, ContainerLog>>,
    changed: Notify,
    /// Lines appended so far, to every container.
    written: AtomicU64,
}

impl LogStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerKey, ContainerLog>> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a line to the current instance of a container.
    pub fn append(&self, key: &ContainerKey, time: String, text: impl Into<String>) {
        self.lock()
            .entry(key.clone())
            .or_default()
            .current
            .push(LogLine {
                time,
                text: text.into(),
            });
        self.written.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// How many lines have been appended so far, to every container: tells whoever writes
    /// logs whether a pass wrote any.
    #[must_use]
    pub fn lines_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Starts a new container instance: the current log becomes the `previous=true` log.
    pub fn restart(&self, key: &ContainerKey) {
        let mut logs = self.lock();
        let log = logs.entry(key.clone()).or_default();
        log.previous = Some(std::mem::take(&mut log.current));
        log.instance += 1;
        drop(logs);
        self.changed.notify_waiters();
    }

    /// Forgets every container of a pod (the pod was deleted).
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.lock()
            .retain(|k, _| !(k.namespace == namespace && k.pod == pod));
        self.changed.notify_waiters();
    }

    /// The lines of the current instance (or of the previous one), and the instance number.
    #[must_use]
    pub fn read(&self, key: &ContainerKey, previous: bool) -> Option<(Vec<LogLine>, u64)> {
        let logs = self.lock();
        let log = logs.get(key)?;
        if previous {
            log.previous.clone().map(|p| (p, log.instance))
        } else {
            Some((log.current.clone(), log.instance))
        }
    }

    /// Lines of instance `instance` from index `from` on; `None` once that instance is gone.
    #[must_use]
    pub fn read_from(
        &self,
        key: &ContainerKey,
        instance: u64,
        from: usize,
    ) -> Option<Vec<LogLine>> {
        let logs = self.lock();
        let log = logs.get(key)?;
        if log.instance != instance {
            return None;
        }
        Some(
            log.current
                .get(from..)
                .map(<[LogLine]>::to_vec)
                .unwrap_or_default(),
        )
    }

    /// Waits until some log changes.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_moves_current_to_previous() {
        let logs = LogStore::default();
        let key = ContainerKey::new("ns", "p", "c");
        logs.append(&key, "t1".into(), "one");
        logs.restart(&key);
        logs.append(&key, "t2".into(), "two");
        assert_eq!(logs.read(&key, true).unwrap().0[0].text, "one");
        let (current, instance) = logs.read(&key, false).unwrap();
        assert_eq!(current[0].text, "two");
        assert_eq!(instance, 1);
        assert!(logs.read_from(&key, 0, 0).is_none());
        logs.remove_pod("ns", "p");
        assert!(logs.read(&key, false).is_none());
        // Restarts and removals write no line.
        assert_eq!(logs.lines_written(), 2);
    }
}
