//! Infrastructure faults on the simulated cluster: which are active when, and what they do to a
//! request, a pull, a name lookup or a running container at a given instant.
//!
//! The engine keeps one [`Faults`] and hands it to everything through the read-only view, so
//! the decision logic (the kubelet, the stand-in programs) stays pure: it asks "what happens to
//! a request sent at `t`?" and gets an answer in simulated time.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::scenario::{ApiServerError, FaultStep, KillFault};
use crate::sim::behaviour::time::after;

/// One fault from its start until its end (if it has one yet).
#[derive(Debug, Clone, PartialEq)]
struct Active {
    name: String,
    from: Timestamp,
    until: Option<Timestamp>,
    fault: FaultStep,
}

impl Active {
    fn covers(&self, at: Timestamp) -> bool {
        self.from <= at && self.until.is_none_or(|u| at < u)
    }
}

/// How the API server answers one request of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAnswer {
    /// When the answer arrives; `None` when it never does (the client's timeout ends it).
    pub at: Option<Timestamp>,
    /// The error the server answers with, if any.
    pub error: Option<ApiServerError>,
}

/// The faults of one cluster, past and present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    faults: Vec<Active>,
}

/// A kill a fault asks for: when, and whether it is the OOM killer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    /// When the container is killed.
    pub at: Timestamp,
    /// Killed by the kernel's OOM killer (reason `OOMKilled`) rather than by a signal.
    pub oom: bool,
}

/// The pod a kill fault is checked against.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
}

static NONE: Faults = Faults { faults: Vec::new() };

impl Faults {
    /// No faults at all.
    #[must_use]
    pub const fn none() -> &'static Self {
        &NONE
    }

    /// Starts `fault` at `now`.
    pub fn start(&mut self, fault: &FaultStep, now: Timestamp) {
        self.faults.push(Active {
            name: fault.fault_name(),
            from: now,
            until: fault.for_.map(|d| after(now, d.as_std())),
            fault: fault.clone(),
        });
    }

    /// Ends every fault named `name` still active at `now`; returns whether there was one.
    pub fn end(&mut self, name: &str, now: Timestamp) -> bool {
        let mut ended = false;
        for f in &mut self.faults {
            if f.name == name && f.covers(now) {
                f.until = Some(now);
                ended = true;
            }
        }
        ended
    }

    /// Whether nothing was ever started.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The next instant after `now` at which a fault starts or ends.
    #[must_use]
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        self.faults
            .iter()
            .flat_map(|f| [Some(f.from), f.until])
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// Whether a fault starts or ends exactly at `at`.
    #[must_use]
    pub fn changes_at(&self, at: Timestamp) -> bool {
        self.faults
            .iter()
            .any(|f| f.from == at || f.until == Some(at))
    }

    fn active(&self, at: Timestamp) -> impl Iterator<Item = &Active> {
        self.faults.iter().filter(move |f| f.covers(at))
    }

    /// How the API server answers a program's request sent at `sent`: the last started
    /// `apiServer` fault active then decides; without one the answer is immediate.
    #[must_use]
    pub fn api_answer(&self, sent: Timestamp) -> ApiAnswer {
        let Some(f) = self
            .active(sent)
            .filter(|f| f.fault.api_server.is_some())
            .last()
        else {
            return ApiAnswer {
                at: Some(sent),
                error: None,
            };
        };
        let Some(api) = &f.fault.api_server else {
            return ApiAnswer {
                at: Some(sent),
                error: None,
            };
        };
        let mut at = match (api.latency, api.every) {
            (None, _) => sent,
            (Some(latency), None) => after(sent, latency.as_std()),
            (Some(latency), Some(every)) => {
                // Stalls of `latency` at the start of every period since the fault began.
                let into = crate::sim::behaviour::time::since(sent, f.from);
                let period = every.as_std().as_millis().max(1);
                let offset = into.as_millis() % period;
                let stall = latency.as_std().as_millis();
                if offset < stall {
                    let left = u64::try_from(stall - offset).unwrap_or(u64::MAX);
                    after(sent, std::time::Duration::from_millis(left))
                } else {
                    sent
                }
            }
        };
        // Once the fault ends, waiting requests are answered.
        if let Some(until) = f.until {
            at = at.min(until.max(sent));
        }
        match api.error {
            Some(ApiServerError::Timeout) => ApiAnswer {
                at: f.until.map(|u| u.max(at)),
                error: None,
            },
            error => ApiAnswer {
                at: Some(at),
                error,
            },
        }
    }

    /// Whether pulls from `registry` fail at `at`.
    #[must_use]
    pub fn registry_down(&self, registry: &str, at: Timestamp) -> bool {
        self.active(at).any(|f| {
            f.fault
                .registry_outage
                .as_ref()
                .is_some_and(|r| r.registry == registry)
        })
    }

    /// Whether cluster DNS fails to resolve the Service `service` in `namespace` at `at`.
    #[must_use]
    pub fn dns_fails(&self, service: &str, namespace: &str, at: Timestamp) -> bool {
        self.active(at).any(|f| {
            f.fault.dns_failure.as_ref().is_some_and(|d| {
                d.service.as_deref() == Some(service)
                    && d.namespace.as_deref().is_none_or(|n| n == namespace)
            })
        })
    }

    /// Whether cluster DNS fails to resolve `host`, a name outside the cluster, at `at`.
    #[must_use]
    pub fn dns_fails_host(&self, host: &str, at: Timestamp) -> bool {
        self.active(at).any(|f| {
            f.fault
                .dns_failure
                .as_ref()
                .is_some_and(|d| d.host.as_deref() == Some(host))
        })
    }

    /// Since when `node` has stopped posting status, if it has by `at`.
    #[must_use]
    pub fn node_down_since(&self, node: &str, at: Timestamp) -> Option<Timestamp> {
        self.active(at)
            .filter(|f| {
                f.fault
                    .node_not_ready
                    .as_ref()
                    .is_some_and(|n| n.node == node)
            })
            .map(|f| f.from)
            .min()
    }

    /// When a run of `container` in `pod` that started at `started` is killed by a fault: the
    /// earliest kill any fault asks for (`after` into the run, not before the fault starts,
    /// while the fault lasts).
    #[must_use]
    pub fn kill(&self, pod: PodRef<'_>, container: &str, started: Timestamp) -> Option<Kill> {
        self.faults
            .iter()
            .filter_map(|f| {
                let (k, oom) = match (&f.fault.container_kill, &f.fault.oom_kill) {
                    (Some(k), _) => (k, false),
                    (None, Some(k)) => (k, true),
                    (None, None) => return None,
                };
                if !selects(k, pod, container) {
                    return None;
                }
                let due = after(started, k.after.map(|d| d.as_std()).unwrap_or_default());
                let at = due.max(f.from);
                f.covers(at).then_some(Kill { at, oom })
            })
            .min_by_key(|k| k.at)
    }
}

fn selects(k: &KillFault, pod: PodRef<'_>, container: &str) -> bool {
    k.namespace == pod.namespace
        && k.pod.as_deref().is_none_or(|p| p == pod.name)
        && k.labels
            .iter()
            .all(|(key, v)| pod.labels.get(key) == Some(v))
        && k.container.as_deref().is_none_or(|c| c == container)
}

#[cfg(test)]
mod tests;
