//! Leader election as client-go's `tools/leaderelection` package does it with a Lease lock
//! (k8s.io/client-go v0.32.0, `leaderelection.go`), reduced to its timing: acquire, then renew
//! every `retryPeriod`, each renewal bounded by `renewDeadline`; a renewal that cannot finish in
//! time loses the lease, which the program answers by logging and exiting.
//!
//! Every request the elector makes goes to the simulated API server and is answered as the
//! active `apiServer` fault says ([`crate::sim::faults::Faults::api_answer`]); without a
//! fault, answers are immediate. Jitter (`JitterFactor` 1.2 on acquire retries) is left out so
//! runs stay reproducible.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::config;
use super::program::{ContainerContext, OutputLine};
use super::time::after;
use super::view::ClusterViewExt;
use crate::scenario::{ApiServerError, DurationSetting, LeaderElection};
use crate::sim::kubelet::gofmt::go_duration;

/// controller-runtime's defaults (pkg/manager/manager.go `defaultLeaseDuration`,
/// `defaultRenewDeadline`, `defaultRetryPeriod`), the same as client-go's documented ones.
const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Where in-cluster clients reach the API server when the pod's environment does not say
/// (`KUBERNETES_SERVICE_HOST`/`_PORT`): the `kubernetes` Service's ClusterIP in the simulated
/// store (src/sim/store/mod.rs creates it).
const DEFAULT_API_HOST: &str = "10.43.0.1";

/// The settings the program read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    namespace: String,
    name: String,
    identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    /// Each request's own timeout, if the client has one.
    request_timeout: Option<Duration>,
    /// `https://host:port` of the API server.
    server: String,
    lost_log: Vec<String>,
    exit_code: Option<i32>,
    client_go: ClientGo,
}

/// The k8s.io/client-go releases whose leader-election log lines differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientGo {
    /// v0.31.x: `optimitically`, acquire lines at 254 and 268.
    V031,
    /// v0.32.x.
    V032,
}

/// The Lease as this program last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    acquire_time: Timestamp,
    renew_time: Timestamp,
    transitions: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Trying to acquire at `next`; the holder seen last (its record) and since when.
    Acquiring {
        next: Timestamp,
        observed: Option<(Value, Timestamp)>,
    },
    /// Leading; the next renewal cycle starts at `next`.
    Leading { next: Timestamp },
    /// The lease was lost at this instant.
    Lost(Timestamp),
}

/// One program's leader elector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Elector {
    settings: Settings,
    state: State,
    record: Option<Record>,
    /// Lines written at instants the program has not reached yet.
    queued: Vec<OutputLine>,
}

/// Why a request ended without an answer the client can use.
enum Failure {
    /// Its context's deadline passed first.
    Deadline(Timestamp),
    /// The server answered with an error.
    Server(Timestamp, ApiServerError),
}

/// How the elector's program goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Still electing or leading; wake at this instant.
    Running(Timestamp),
    /// Lost the lease: exit (or stop leading) at this instant with these lines already logged.
    Lost {
        at: Timestamp,
        exit_code: Option<i32>,
    },
}

fn duration_setting(
    ctx: &ContainerContext,
    setting: Option<&DurationSetting>,
    fallback: Duration,
) -> Duration {
    let Some(s) = setting else { return fallback };
    let default = s.default.map_or(fallback, |d| d.as_std());
    s.from
        .as_ref()
        .and_then(|src| config::read(ctx, src))
        .and_then(|v| match v {
            Value::String(text) => parse_go_duration(&text),
            Value::Number(n) => n.as_u64().map(Duration::from_secs),
            _ => None,
        })
        .unwrap_or(default)
}

/// A Go `time.ParseDuration` text (`15s`, `1m30s`, `500ms`), or whole seconds.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    crate::scenario::Duration::parse(text)
        .ok()
        .map(crate::scenario::Duration::as_std)
}

fn flag(ctx: &ContainerContext, source: Option<&crate::scenario::ConfigSource>) -> Option<bool> {
    match config::read(ctx, source?)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.as_str() {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => Some(true),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// klog's text header (k8s.io/klog/v2 `formatHeader`): severity, `mmdd hh:mm:ss.uuuuuu`, the
/// thread id (the container's pid 1) padded to 7, `file:line]`.
fn klog(severity: char, at: Timestamp, line: u32, message: &str) -> String {
    let t = at.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{severity}{:02}{:02} {:02}:{:02}:{:02}.{:06}       1 leaderelection.go:{line}] {message}",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.subsec_nanosecond() / 1000
    )
}

impl Elector {
    /// The elector the container's configuration asks for; `None` when leader election is off.
    pub(super) fn new(
        spec: &LeaderElection,
        ctx: &ContainerContext,
        identity: String,
        now: Timestamp,
    ) -> Option<Self> {
        let mut enabled = spec.enabled;
        if let Some(on) = flag(ctx, spec.enabled_by.as_ref()) {
            enabled = on;
        }
        if flag(ctx, spec.disabled_by.as_ref()) == Some(true) {
            enabled = false;
        }
        if !enabled {
            return None;
        }
        let renew_deadline =
            duration_setting(ctx, spec.renew_deadline.as_ref(), DEFAULT_RENEW_DEADLINE);
        let host = ctx
            .env
            .get("KUBERNETES_SERVICE_HOST")
            .map_or(DEFAULT_API_HOST, String::as_str);
        let port = ctx
            .env
            .get("KUBERNETES_SERVICE_PORT")
            .map_or("443", String::as_str);
        Some(Self {
            settings: Settings {
                namespace: spec
                    .namespace
                    .clone()
                    .unwrap_or_else(|| ctx.namespace.clone()),
                name: spec.lease.clone(),
                identity,
                lease_duration: duration_setting(
                    ctx,
                    spec.lease_duration.as_ref(),
                    DEFAULT_LEASE_DURATION,
                ),
                renew_deadline,
                retry_period: duration_setting(
                    ctx,
                    spec.retry_period.as_ref(),
                    DEFAULT_RETRY_PERIOD,
                ),
                // client-go tools/leaderelection/resourcelock/interface.go NewFromKubeconfig:
                // `timeout := renewDeadline / 2`, at least one second.
                request_timeout: spec
                    .request_timeout
                    .then(|| (renew_deadline / 2).max(Duration::from_secs(1))),
                server: format!("https://{host}:{port}"),
                lost_log: spec.on_lost.log.clone(),
                exit_code: spec.on_lost.exit_code,
                client_go: match spec.client_go_minor {
                    Some(m) if m <= 31 => ClientGo::V031,
                    _ => ClientGo::V032,
                },
            },
            state: State::Acquiring {
                next: now,
                observed: None,
            },
            record: None,
            queued: Vec::new(),
        })
    }

    /// Starts electing at `at` (once the program is up).
    pub(super) fn begin(&mut self, at: Timestamp) {
        self.state = State::Acquiring {
            next: at,
            observed: None,
        };
    }

    /// `namespace/name`, as `LeaseLock.Describe` prints it.
    fn describe(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.name)
    }

    fn url(&self) -> String {
        let mut url = format!(
            "{}/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
            self.settings.server, self.settings.namespace, self.settings.name
        );
        // client-go rest/request.go URL(): the request timeout goes into the query.
        if let Some(t) = self.settings.request_timeout {
            url.push_str(&format!("?timeout={}", go_duration(t)));
        }
        url
    }

    /// Whether the program leads at `now`.
    pub(super) fn leading(&self) -> bool {
        matches!(self.state, State::Leading { .. })
    }

    /// Sends one request at `sent` whose context ends at `deadline` (if any); `Ok` with the
    /// instant of the answer.
    fn request(
        &self,
        view: &dyn ClusterViewExt,
        sent: Timestamp,
        deadline: Option<Timestamp>,
    ) -> Result<Timestamp, Failure> {
        let own = self.settings.request_timeout.map(|t| after(sent, t));
        let ends = match (deadline, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let answer = view.faults().api_answer(sent);
        match (answer.at, ends) {
            (Some(at), Some(end)) if at >= end => Err(Failure::Deadline(end)),
            (None, Some(end)) => Err(Failure::Deadline(end)),
            (Some(at), _) => match answer.error {
                Some(e) => Err(Failure::Server(at, e)),
                None => Ok(at),
            },
            // Never answered and nothing ends the wait: the request hangs (until the fault
            // ends, when the view answers differently).
            (None, None) => Err(Failure::Deadline(Timestamp::MAX)),
        }
    }

    /// The error text client-go hands back for a failed request of `verb` (`Get`, `Put`, `Post`).
    fn error_text(&self, verb: &str, failure: &Failure) -> String {
        match failure {
            // net/http's client error for a context that ended (net/url `Error.Error`:
            // `<Op> "<URL>": <err>`, with context.DeadlineExceeded's text).
            Failure::Deadline(_) => format!("{verb} \"{}\": context deadline exceeded", self.url()),
            Failure::Server(_, e) => {
                // k8s.io/apimachinery pkg/api/errors NewGenericServerResponse, reached through
                // client-go rest/request.go newUnstructuredResponseError ("unknown" body).
                let message = match e {
                    ApiServerError::TooManyRequests => {
                        "the server has received too many requests and has asked us to try again later"
                            .to_owned()
                    }
                    ApiServerError::GatewayTimeout => "the server was unable to return a response in the time allotted, but may still be processing the request".to_owned(),
                    ApiServerError::Internal | ApiServerError::Timeout => {
                        "an error on the server (\"unknown\") has prevented the request from succeeding"
                            .to_owned()
                    }
                };
                format!(
                    "{message} ({} leases.coordination.k8s.io {})",
                    verb.to_ascii_lowercase(),
                    self.settings.name
                )
            }
        }
    }

    fn failed_at(f: &Failure) -> Timestamp {
        match f {
            Failure::Deadline(t) | Failure::Server(t, _) => *t,
        }
    }

    /// The Lease as this program holds it, for the engine to write; `None` before it first
    /// acquired the lease.
    pub(super) fn lease_object(&self) -> Option<Value> {
        let r = self.record.as_ref()?;
        Some(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
            "spec": {
                "holderIdentity": self.settings.identity,
                "leaseDurationSeconds": self.settings.lease_duration.as_secs(),
                "acquireTime": rfc3339_micro(r.acquire_time),
                "renewTime": rfc3339_micro(r.renew_time),
                "leaseTransitions": r.transitions,
            }
        }))
    }

    /// Runs the election up to `now`, handing out client-go's log lines written by then.
    ///
    /// Each request is decided when it is sent (from the faults active then); what it leads to
    /// is held back until simulated time reaches it.
    pub(super) fn advance(
        &mut self,
        now: Timestamp,
        view: &dyn ClusterViewExt,
        logs: &mut Vec<OutputLine>,
    ) -> Outcome {
        loop {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued)
                .into_iter()
                .partition(|l| l.at <= now);
            logs.extend(due);
            self.queued = later;
            let held = self.queued.iter().map(|l| l.at).min();
            let mut out = Vec::new();
            match self.state.clone() {
                State::Lost(at) if at <= now => {
                    return Outcome::Lost {
                        at,
                        exit_code: self.settings.exit_code,
                    };
                }
                State::Lost(at) => return Outcome::Running(held.map_or(at, |h| h.min(at))),
                State::Acquiring { next, .. } | State::Leading { next } if next > now => {
                    return Outcome::Running(held.map_or(next, |h| h.min(next)));
                }
                State::Acquiring { next, observed } => {
                    self.try_acquire(next, observed, view, &mut out);
                }
                State::Leading { next } => self.renew_cycle(next, view, &mut out),
            }
            self.queued.extend(out);
        }
    }

    /// The first lines, logged when the program starts electing.
    pub(super) fn start_lines(&self, at: Timestamp) -> Vec<OutputLine> {
        vec![OutputLine {
            at,
            text: klog(
                'I',
                at,
                // leaderelection.go acquire: line 254 in v0.31.0, 257 in v0.32.0.
                match self.settings.client_go {
                    ClientGo::V031 => 254,
                    ClientGo::V032 => 257,
                },
                &format!("attempting to acquire leader lease {}...", self.describe()),
            ),
        }]
    }

    /// One `tryAcquireOrRenew` while not leading (acquire loop, retried every `retryPeriod`).
    fn try_acquire(
        &mut self,
        at: Timestamp,
        observed: Option<(Value, Timestamp)>,
        view: &dyn ClusterViewExt,
        logs: &mut Vec<OutputLine>,
    ) {
        let retry = |from: Timestamp| after(from, self.settings.retry_period);
        let got = match self.request(view, at, None) {
            Ok(t) => t,
            Err(f) => {
                let t = Self::failed_at(&f);
                logs.push(OutputLine {
                    at: t,
                    text: klog(
                        'E',
                        t,
                        436,
                        &format!(
                            "error retrieving resource lock {}: {}",
                            self.describe(),
                            self.error_text("Get", &f)
                        ),
                    ),
                });
                self.state = State::Acquiring {
                    next: retry(t),
                    observed,
                };
                return;
            }
        };
        let current = view
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                Some(&self.settings.namespace),
                &self.settings.name,
            )
            .and_then(|l| l.get("spec").cloned());
        let mut transitions = 0;
        if let Some(spec) = &current {
            let holder = spec
                .get("holderIdentity")
                .and_then(Value::as_str)
                .unwrap_or("");
            // observedTime is when this record (as raw bytes) was first seen.
            let seen_at = match &observed {
                Some((rec, t)) if rec == spec => *t,
                _ => got,
            };
            let duration = spec
                .get("leaseDurationSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            transitions = spec
                .get("leaseTransitions")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let valid = after(seen_at, Duration::from_secs(duration)) > at;
            if !holder.is_empty() && holder != self.settings.identity && valid {
                self.state = State::Acquiring {
                    next: retry(got),
                    observed: Some((spec.clone(), seen_at)),
                };
                return;
            }
            if holder != self.settings.identity {
                transitions += 1;
            }
        }
        // Create the record, or update the expired one.
        let (verb, line) = if current.is_some() {
            ("Put", 472)
        } else {
            ("Post", 440)
        };
        match self.request(view, got, None) {
            Ok(done) => {
                self.record = Some(Record {
                    acquire_time: at,
                    renew_time: at,
                    transitions,
                });
                logs.push(OutputLine {
                    at: done,
                    text: klog(
                        'I',
                        done,
                        // leaderelection.go acquire: line 268 in v0.31.0, 271 in v0.32.0.
                        match self.settings.client_go {
                            ClientGo::V031 => 268,
                            ClientGo::V032 => 271,
                        },
                        &format!("successfully acquired lease {}", self.describe()),
                    ),
                });
                self.state = State::Leading { next: done };
            }
            Err(f) => {
                let t = Self::failed_at(&f);
                let message = if current.is_some() {
                    format!("Failed to update lock: {}", self.error_text(verb, &f))
                } else {
                    format!(
                        "error initially creating leader election record: {}",
                        self.error_text(verb, &f)
                    )
                };
                logs.push(OutputLine {
                    at: t,
                    text: klog('E', t, line, &message),
                });
                self.state = State::Acquiring {
                    next: retry(t),
                    observed: current.map(|c| (c, got)),
                };
            }
        }
    }

    /// One renewal cycle (`renew`'s `PollUntilContextTimeout(ctx, retryPeriod,
    /// renewDeadline, immediate)`), starting at `start`.
    fn renew_cycle(
        &mut self,
        start: Timestamp,
        view: &dyn ClusterViewExt,
        logs: &mut Vec<OutputLine>,
    ) {
        let deadline = after(start, self.settings.renew_deadline);
        let period = self.settings.retry_period;
        let mut attempt = start;
        loop {
            let ended = match self.try_renew(attempt, deadline, view, logs) {
                Ok(done) => {
                    if let Some(r) = &mut self.record {
                        r.renew_time = attempt;
                    }
                    // wait.Until: the next cycle a retryPeriod after this one returned.
                    self.state = State::Leading {
                        next: after(done, period),
                    };
                    return;
                }
                Err(ended) => ended,
            };
            // The poll's ticker fires every retryPeriod from the start; a tick that came while
            // the attempt ran is delivered at once (apimachinery pkg/util/wait/loop.go).
            let mut tick = after(start, period);
            while tick <= attempt {
                tick = after(tick, period);
            }
            let wake = if tick <= ended { ended } else { tick };
            if wake >= deadline {
                let at = deadline.max(ended);
                // leaderelection.go renew: the poll returns the context's error.
                logs.push(OutputLine {
                    at,
                    text: klog(
                        'I',
                        at,
                        297,
                        &format!(
                            "failed to renew lease {}: context deadline exceeded",
                            self.describe()
                        ),
                    ),
                });
                let stamp = zap_iso8601(at);
                logs.extend(self.settings.lost_log.iter().map(|l| OutputLine {
                    at,
                    text: l.replace("{time}", &stamp),
                }));
                self.state = State::Lost(at);
                return;
            }
            attempt = wake;
        }
    }

    /// One `tryAcquireOrRenew` while leading, inside a cycle whose context ends at `deadline`:
    /// the optimistic update, then the slow path (get, update). `Ok` with the instant it
    /// succeeded, `Err` with the instant it gave up.
    fn try_renew(
        &self,
        at: Timestamp,
        deadline: Timestamp,
        view: &dyn ClusterViewExt,
        logs: &mut Vec<OutputLine>,
    ) -> Result<Timestamp, Timestamp> {
        let mut log = |t: Timestamp, line: u32, text: String| {
            logs.push(OutputLine {
                at: t,
                text: klog('E', t, line, &text),
            });
        };
        // 1. The fast path: update assuming the observed record is current.
        let t = match self.checked(view, at, deadline, "Put") {
            Ok(done) => return Ok(done),
            Err((t, text)) => {
                // leaderelection.go:429 tryAcquireOrRenew; v0.31.0 spells it `optimitically`.
                let word = match self.settings.client_go {
                    ClientGo::V031 => "optimitically",
                    ClientGo::V032 => "optimistically",
                };
                log(
                    t,
                    429,
                    format!("Failed to update lock {word}: {text}, falling back to slow path"),
                );
                t
            }
        };
        // 2. Get the record.
        let got = match self.checked(view, t, deadline, "Get") {
            Ok(g) => g,
            Err((t, text)) => {
                log(
                    t,
                    436,
                    format!("error retrieving resource lock {}: {text}", self.describe()),
                );
                return Err(t);
            }
        };
        // 3. Still ours: update it.
        match self.checked(view, got, deadline, "Put") {
            Ok(done) => Ok(done),
            Err((t, text)) => {
                log(t, 472, format!("Failed to update lock: {text}"));
                Err(t)
            }
        }
    }

    /// A request sent at `sent` inside a context ending at `deadline`: `Ok` with the instant
    /// of its answer, `Err` with the instant it failed and client-go's error text.
    fn checked(
        &self,
        view: &dyn ClusterViewExt,
        sent: Timestamp,
        deadline: Timestamp,
        verb: &str,
    ) -> Result<Timestamp, (Timestamp, String)> {
        if sent >= deadline {
            // client-go rest/request.go tryThrottleWithInfo: the rate limiter refuses a
            // request whose context has already ended.
            return Err((
                sent,
                "client rate limiter Wait returned an error: context deadline exceeded".to_owned(),
            ));
        }
        self.request(view, sent, Some(deadline))
            .map_err(|f| (Self::failed_at(&f), self.error_text(verb, &f)))
    }
}

/// zapcore.ISO8601TimeEncoder's layout `2006-01-02T15:04:05.000Z0700`, in UTC.
fn zap_iso8601(t: Timestamp) -> String {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        z.year(),
        z.month(),
        z.day(),
        z.hour(),
        z.minute(),
        z.second(),
        z.subsec_nanosecond() / 1_000_000
    )
}

/// metav1.MicroTime as the API server serializes it (RFC 3339 with microseconds).
fn rfc3339_micro(t: Timestamp) -> String {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        z.year(),
        z.month(),
        z.day(),
        z.hour(),
        z.minute(),
        z.second(),
        z.subsec_nanosecond() / 1000
    )
}

#[cfg(test)]
mod tests;
