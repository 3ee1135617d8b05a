//! The stand-in program interpreter: one run of one container.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::connect::{Listener, Served};
use super::operator;
use super::time::{after, earliest};
use super::view::ClusterViewExt;
use crate::scenario::{
    AccessNeed, Arch, EndpointNeed, ImageBehaviour, ManifestKind, Need, ObjectNeed, Otherwise,
    PostgresNeed, SslMode, ValueSource,
};

/// How often a failing program retries when its behaviour gives no `retry` (a simulator default).
pub const DEFAULT_RETRY: Duration = Duration::from_secs(10);

/// How often an operator re-lists a resource that is not served, logging `logWhileUnserved`
/// each time (a simulator default: client-go reflectors back off to roughly this period).
pub const OPERATOR_RELIST: Duration = Duration::from_secs(30);

/// Exit code of a process that did not handle SIGTERM: 128 + 15.
const SIGTERM_EXIT: i32 = 143;
/// 128 + SIGKILL: the status of a process killed by a signal it cannot handle.
const SIGKILL_EXIT: i32 = 137;

/// Exit code runc reports when the container's process cannot be executed at all.
const EXEC_FAILED_EXIT: i32 = 255;

/// What the program knows about where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerContext {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub pod_name: String,
    /// Name of the container.
    pub container: String,
    /// The container's `command` (its first element is what is executed, when given).
    pub command: Vec<String>,
    /// The container's `args`.
    pub args: Vec<String>,
    /// The resolved environment.
    pub env: BTreeMap<String, String>,
    /// The files mounted from ConfigMaps and Secrets, by absolute path, as read at start.
    pub files: BTreeMap<String, String>,
    /// The node's CPU architecture.
    pub node_arch: Arch,
    /// The pod's ServiceAccount (`spec.serviceAccountName`), whose RBAC the program's API
    /// requests are judged by.
    pub service_account: String,
}

/// One line the program wrote, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// When it was written.
    pub at: Timestamp,
    /// The text, without a trailing newline.
    pub text: String,
}

/// How and when the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit status.
    pub code: i32,
    /// When it exited.
    pub at: Timestamp,
}

/// A Postgres login the program attempts, with the values resolved from its environment.
/// `Debug` leaves the password out: engines and clusters are debug-printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresRequest {
    /// Role name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database.
    pub database: String,
    /// libpq `sslmode`.
    pub sslmode: SslMode,
    /// Statements to run after connecting, in order.
    pub run: Vec<String>,
}

impl std::fmt::Debug for PostgresRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRequest")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .field("run", &self.run)
            .finish()
    }
}

/// The result of a [`PostgresRequest`] against the real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresOutcome {
    /// Connected and ran every statement.
    Ok,
    /// The server (or the connection) refused; `message` is the server's text.
    Failed {
        /// SQLSTATE, when the server sent one.
        sqlstate: Option<String>,
        /// The error message, substituted for `{error}` in the program's log lines.
        message: String,
    },
}

/// Carries out Postgres checks for [`Program::run`], by really connecting.
pub trait PostgresConnector {
    /// Connects as the request says and runs its statements.
    fn check(&mut self, request: &PostgresRequest) -> PostgresOutcome;
}

/// What happened while the program was advanced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Lines written, in order.
    pub logs: Vec<OutputLine>,
    /// Set when the program has exited (also on later calls).
    pub exit: Option<Exit>,
    /// Set when the program waits on a Postgres check; answer with [`Program::postgres_result`].
    pub postgres: Option<PostgresRequest>,
    /// The next instant the program does something by itself, if any.
    pub wake_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
enum Phase {
    Start,
    Check {
        index: usize,
        at: Timestamp,
    },
    AwaitPostgres {
        index: usize,
        at: Timestamp,
        request: PostgresRequest,
    },
    Retrying {
        until: Timestamp,
        ready: bool,
    },
    Satisfied {
        since: Timestamp,
    },
    Exited(Exit),
}

/// One run of a container's program, from start to exit.
#[derive(Debug, Clone)]
pub struct Program {
    behaviour: Option<ImageBehaviour>,
    ctx: ContainerContext,
    started_at: Timestamp,
    phase: Phase,
    pending: Vec<OutputLine>,
    relist_at: Vec<Timestamp>,
    /// The leader elector, when the behaviour asks for one and the configuration turns it on.
    elector: Option<super::leader::Elector>,
    /// Whether the elector has begun (once the requirements were met).
    electing: bool,
    /// When the elector next does something by itself.
    elector_wake: Option<Timestamp>,
}

fn platform_matches(platforms: &[String], arch: Arch) -> bool {
    let want = format!("linux/{}", arch.as_str());
    platforms.is_empty() || platforms.iter().any(|p| p == &want || p == arch.as_str())
}

impl Program {
    /// Starts the program at `now`. `behaviour` is the image's declared behaviour; `None`
    /// means an unknown image, which runs for ever and is ready at once.
    #[must_use]
    pub fn start(
        behaviour: Option<&ImageBehaviour>,
        ctx: ContainerContext,
        now: Timestamp,
    ) -> Self {
        let relists = behaviour.map_or(0, |b| b.operator.len());
        let elector = behaviour
            .and_then(|b| b.leader_election.as_ref())
            .and_then(|spec| super::leader::Elector::new(spec, &ctx, identity(&ctx, now), now));
        let mut program = Self {
            behaviour: behaviour.cloned(),
            ctx,
            started_at: now,
            phase: Phase::Start,
            pending: Vec::new(),
            relist_at: vec![now; relists],
            elector,
            electing: false,
            elector_wake: None,
        };
        if let Some(b) = behaviour
            && b.manifest == ManifestKind::Single
            && !platform_matches(&b.platforms, program.ctx.node_arch)
        {
            // A single-manifest image of another architecture pulls fine; the kernel then
            // refuses to execute it (ENOEXEC). runc's init reports the failed execve as an
            // `os.PathError{Op: "exec", Path: cmd}` (libcontainer/system/linux.go `Exec`),
            // which prints `exec <path>: exec format error` on the container's stderr, and
            // the process exits 255.
            let target = program
                .ctx
                .command
                .first()
                .cloned()
                .or_else(|| b.entrypoint.clone())
                .unwrap_or_else(|| "/entrypoint".to_owned());
            program.pending.push(OutputLine {
                at: now,
                text: format!("exec {target}: exec format error"),
            });
            program.phase = Phase::Exited(Exit {
                code: EXEC_FAILED_EXIT,
                at: now,
            });
        }
        program
    }

    /// When the program started.
    #[must_use]
    pub const fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// The exit, once the program has exited.
    #[must_use]
    pub const fn exit(&self) -> Option<Exit> {
        match self.phase {
            Phase::Exited(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the program answers its health endpoints at `now` (used for every probe).
    #[must_use]
    pub fn ready(&self, now: Timestamp) -> bool {
        match &self.phase {
            Phase::Satisfied { since } => now >= self.ready_at(*since),
            Phase::Retrying { ready, .. } => *ready,
            Phase::Start | Phase::Check { .. } | Phase::AwaitPostgres { .. } | Phase::Exited(_) => {
                false
            }
        }
    }

    /// Whether the program accepts connections on `port` at `now`: it is ready and, when its
    /// behaviour lists ports, the port is one of them.
    #[must_use]
    pub fn listens_on(&self, port: u16, now: Timestamp) -> bool {
        self.ready(now)
            && self
                .behaviour
                .as_ref()
                .is_none_or(|b| b.ports.is_empty() || b.ports.contains(&port))
    }

    /// How long the program takes to answer a request on `port` (at HTTP `path`) at `now`:
    /// the last `answerTime` entry that has begun and fits; zero without one.
    #[must_use]
    pub fn answer_time(
        &self,
        port: u16,
        path: Option<&str>,
        now: Timestamp,
    ) -> std::time::Duration {
        let running = super::time::since(now, self.started_at);
        let entries = self
            .behaviour
            .as_ref()
            .map_or(&[][..], |b| &b.answer_time[..]);
        entries
            .iter()
            .rev()
            .find(|a| {
                a.from.is_none_or(|f| f.as_std() <= running)
                    && a.command.is_none()
                    && a.port.is_none_or(|p| p == port)
                    && a.path.as_deref().is_none_or(|p| Some(p) == path)
            })
            .map_or(std::time::Duration::ZERO, |a| a.time.as_std())
    }

    /// How long an `exec` probe running `command` (its words joined by spaces) takes at
    /// `now`: the last `answerTime` entry that has begun and whose `command` is part of it, or
    /// that names no port, path or command; zero without one.
    #[must_use]
    pub fn command_time(&self, command: &str, now: Timestamp) -> std::time::Duration {
        let running = super::time::since(now, self.started_at);
        let entries = self
            .behaviour
            .as_ref()
            .map_or(&[][..], |b| &b.answer_time[..]);
        entries
            .iter()
            .rev()
            .find(|a| {
                a.from.is_none_or(|f| f.as_std() <= running)
                    && match &a.command {
                        Some(c) => command.contains(c.as_str()),
                        None => a.port.is_none() && a.path.is_none(),
                    }
            })
            .map_or(std::time::Duration::ZERO, |a| a.time.as_std())
    }

    /// What the program serves, port by port, with the credentials it read at start; nothing
    /// once it has exited.
    #[must_use]
    pub fn listeners(&self) -> Vec<Listener> {
        if self.exit().is_some() {
            return Vec::new();
        }
        let Some(b) = &self.behaviour else {
            return Vec::new();
        };
        b.serves
            .iter()
            .map(|s| Listener {
                namespace: self.ctx.namespace.clone(),
                pod: self.ctx.pod_name.clone(),
                port: s.port,
                served: Served {
                    protocol: s.protocol,
                    password: s
                        .password
                        .as_ref()
                        .and_then(|src| super::connect::read_text(&self.ctx, src)),
                },
            })
            .collect()
    }

    /// Whether the program answers HTTP requests for `path` (200) rather than 404.
    #[must_use]
    pub fn serves_path(&self, path: &str) -> bool {
        self.behaviour
            .as_ref()
            .is_none_or(|b| b.http_paths.is_empty() || b.http_paths.iter().any(|p| p == path))
    }

    fn ready_at(&self, since: Timestamp) -> Timestamp {
        let declared = self
            .behaviour
            .as_ref()
            .and_then(|b| b.ready_after)
            .map_or(self.started_at, |d| after(self.started_at, d.as_std()));
        declared.max(since)
    }

    /// The objects the program, as an operator, wants to exist now. See [`Self::operator_work`].
    #[must_use]
    pub fn desired_objects(&self, view: &dyn ClusterViewExt) -> Vec<Value> {
        self.operator_work(view)
            .into_iter()
            .filter_map(|w| match w {
                operator::Work::Own(v) => Some(v),
                operator::Work::Report(_) => None,
            })
            .collect()
    }

    /// What the program, as an operator, wants done now (see [`operator::reconcile`]): nothing
    /// unless it runs with every requirement met. An operator whose requirement fails keeps
    /// logging its `otherwise` lines and reconciles nothing, as a manager whose start-up check
    /// fails never starts its controllers.
    #[must_use]
    pub fn operator_work(&self, view: &dyn ClusterViewExt) -> Vec<operator::Work> {
        match (&self.behaviour, &self.phase) {
            (_, Phase::Exited(_)) | (None, _) => Vec::new(),
            (Some(b), phase) => {
                let satisfied = matches!(phase, Phase::Satisfied { .. });
                let work = || {
                    if satisfied && !b.operator.is_empty() {
                        operator::reconcile(&b.operator, view, &self.ctx.container)
                    } else {
                        Vec::new()
                    }
                };
                match &self.elector {
                    None => work(),
                    // Controllers that need leader election run only while leading; the
                    // Lease is written as the elector last renewed it.
                    Some(e) => {
                        let mut out: Vec<operator::Work> = e
                            .lease_object()
                            .into_iter()
                            .map(operator::Work::Own)
                            .collect();
                        if e.leading() {
                            out.extend(work());
                        }
                        out
                    }
                }
            }
        }
    }

    /// Sends SIGTERM at `at`: a running stand-in program exits with 143 (128 + SIGTERM), as a
    /// process without a handler does.
    pub fn terminate(&mut self, at: Timestamp) {
        if !matches!(self.phase, Phase::Exited(_)) {
            self.phase = Phase::Exited(Exit {
                code: SIGTERM_EXIT,
                at,
            });
        }
    }

    /// Sends SIGKILL at `at` (a fault, or the kernel's OOM killer): the program ends with 137
    /// whatever it was doing, unless it had exited already.
    pub fn kill(&mut self, at: Timestamp) {
        if !matches!(self.phase, Phase::Exited(_)) {
            self.phase = Phase::Exited(Exit {
                code: SIGKILL_EXIT,
                at,
            });
        }
    }

    /// Runs the program up to `now`. Stops early when it waits on a Postgres check.
    pub fn advance(&mut self, now: Timestamp, view: &dyn ClusterViewExt) -> Progress {
        let mut logs = std::mem::take(&mut self.pending);
        let mut postgres = None;
        loop {
            match self.phase.clone() {
                Phase::Exited(_) => break,
                Phase::Start => {
                    if self.started_at > now {
                        break;
                    }
                    if let Some(b) = &self.behaviour {
                        logs.extend(b.logs.iter().map(|l| OutputLine {
                            at: self.started_at,
                            text: l.clone(),
                        }));
                    }
                    self.phase = Phase::Check {
                        index: 0,
                        at: self.started_at,
                    };
                }
                Phase::Check { index, at } => {
                    if at > now {
                        break;
                    }
                    let Some(req) = self
                        .behaviour
                        .as_ref()
                        .and_then(|b| b.requires.get(index))
                        .cloned()
                    else {
                        self.phase = Phase::Satisfied { since: at };
                        continue;
                    };
                    match self.evaluate(&req.needs, view, at) {
                        Check::Met => {
                            self.phase = Phase::Check {
                                index: index + 1,
                                at,
                            }
                        }
                        Check::MetWarning(lines) => {
                            logs.extend(lines.into_iter().map(|text| OutputLine { at, text }));
                            self.phase = Phase::Check {
                                index: index + 1,
                                at,
                            }
                        }
                        Check::Unmet(error) => self.fail(&req.otherwise, &error, at, &mut logs),
                        Check::Postgres(request) => {
                            self.phase = Phase::AwaitPostgres { index, at, request };
                        }
                    }
                }
                Phase::AwaitPostgres { request, .. } => {
                    postgres = Some(request);
                    break;
                }
                Phase::Retrying { until, .. } => {
                    if until > now {
                        break;
                    }
                    self.phase = Phase::Check {
                        index: 0,
                        at: until,
                    };
                }
                Phase::Satisfied { since } => {
                    if let Some(elector) = &mut self.elector {
                        if !self.electing {
                            self.electing = true;
                            elector.begin(since);
                            logs.extend(elector.start_lines(since));
                        }
                        match elector.advance(now, view, &mut logs) {
                            super::leader::Outcome::Running(at) => self.elector_wake = Some(at),
                            super::leader::Outcome::Lost {
                                at,
                                exit_code: Some(code),
                            } => {
                                self.elector_wake = None;
                                self.phase = Phase::Exited(Exit { code, at });
                                continue;
                            }
                            super::leader::Outcome::Lost { .. } => self.elector_wake = None,
                        }
                    }
                    match self.behaviour.as_ref().and_then(|b| b.exit_after.clone()) {
                        Some(e) if after(since, e.duration.as_std()) <= now => {
                            self.phase = Phase::Exited(Exit {
                                code: e.code,
                                at: after(since, e.duration.as_std()),
                            });
                        }
                        _ => break,
                    }
                }
            }
        }
        self.relist(now, view, &mut logs);
        logs.sort_by_key(|l| l.at);
        Progress {
            logs,
            exit: self.exit(),
            postgres,
            wake_at: self.wake_at(now),
        }
    }

    /// Continues after a Postgres check requested by [`Progress::postgres`].
    pub fn postgres_result(&mut self, outcome: &PostgresOutcome) {
        let Phase::AwaitPostgres { index, at, .. } = self.phase.clone() else {
            return;
        };
        match outcome {
            PostgresOutcome::Ok => {
                self.phase = Phase::Check {
                    index: index + 1,
                    at,
                }
            }
            PostgresOutcome::Failed { message, .. } => {
                let Some(otherwise) = self
                    .behaviour
                    .as_ref()
                    .and_then(|b| b.requires.get(index))
                    .map(|r| r.otherwise.clone())
                else {
                    return;
                };
                // The lines are handed out by the next `advance`.
                let mut lines = Vec::new();
                self.fail(&otherwise, message, at, &mut lines);
                self.pending.extend(lines);
            }
        }
    }

    /// Advances to `now`, carrying out Postgres checks with `connector` as they come.
    pub fn run(
        &mut self,
        now: Timestamp,
        view: &dyn ClusterViewExt,
        connector: &mut dyn PostgresConnector,
    ) -> Progress {
        let mut logs = Vec::new();
        loop {
            let mut p = self.advance(now, view);
            logs.append(&mut p.logs);
            match p.postgres.take() {
                Some(request) => {
                    let outcome = connector.check(&request);
                    self.postgres_result(&outcome);
                }
                None => {
                    p.logs = logs;
                    return p;
                }
            }
        }
    }

    fn fail_logs(
        &self,
        otherwise: &Otherwise,
        error: &str,
        at: Timestamp,
        logs: &mut Vec<OutputLine>,
    ) {
        logs.extend(otherwise.log.iter().map(|l| OutputLine {
            at,
            text: l.replace("{error}", error),
        }));
    }

    fn fail(
        &mut self,
        otherwise: &Otherwise,
        error: &str,
        at: Timestamp,
        logs: &mut Vec<OutputLine>,
    ) {
        self.fail_logs(otherwise, error, at, logs);
        self.phase = match otherwise.exit_code {
            Some(code) => Phase::Exited(Exit { code, at }),
            None => Phase::Retrying {
                until: after(at, otherwise.retry.map_or(DEFAULT_RETRY, |d| d.as_std())),
                ready: otherwise.ready,
            },
        };
    }

    fn relist(&mut self, now: Timestamp, view: &dyn ClusterViewExt, logs: &mut Vec<OutputLine>) {
        let Some(b) = &self.behaviour else { return };
        for (i, rule) in b.operator.iter().enumerate() {
            while self.relist_at[i] <= now {
                let at = self.relist_at[i];
                let stopped_before = self.exit().is_some_and(|e| e.at <= at);
                if stopped_before {
                    break;
                }
                let r = &rule.for_each;
                if !view.resource_served(&r.group, &r.version, &r.resource) {
                    logs.extend(rule.log_while_unserved.iter().map(|l| OutputLine {
                        at,
                        text: l.clone(),
                    }));
                }
                self.relist_at[i] = after(at, OPERATOR_RELIST);
            }
        }
    }

    fn wake_at(&self, now: Timestamp) -> Option<Timestamp> {
        let own = match &self.phase {
            Phase::Exited(_) | Phase::AwaitPostgres { .. } => None,
            Phase::Start => Some(self.started_at),
            Phase::Check { at, .. } => Some(*at),
            Phase::Retrying { until, .. } => Some(*until),
            Phase::Satisfied { since } => {
                let ready = self.ready_at(*since);
                let exit = self
                    .behaviour
                    .as_ref()
                    .and_then(|b| b.exit_after.as_ref())
                    .map(|e| after(*since, e.duration.as_std()));
                earliest(Some(ready).filter(|r| *r > now), exit)
            }
        };
        if matches!(self.phase, Phase::Exited(_)) {
            return None;
        }
        let relist = self
            .behaviour
            .as_ref()
            .filter(|b| b.operator.iter().any(|r| !r.log_while_unserved.is_empty()))
            .and_then(|_| self.relist_at.iter().min().copied());
        let elector = self
            .elector_wake
            .filter(|_| matches!(self.phase, Phase::Satisfied { .. }));
        earliest(earliest(own, relist), elector)
    }

    fn evaluate(&self, need: &Need, view: &dyn ClusterViewExt, at: Timestamp) -> Check {
        let ns = self.ctx.namespace.as_str();
        match need {
            Need::Resource(r) => {
                if view.resource_served(&r.group, &r.version, &r.resource) {
                    Check::Met
                } else {
                    // client-go's wording for a 404 on a list of an unknown resource
                    // (apimachinery pkg/api/errors NewGenericServerResponse, StatusReasonNotFound).
                    Check::Unmet(format!(
                        "the server could not find the requested resource (get {})",
                        qualified(&r.resource, &r.group)
                    ))
                }
            }
            Need::Object(o) => self.check_object(o, view),
            Need::SecretKey(s) => {
                let Some(secret) = view.get("v1", "Secret", Some(ns), &s.name) else {
                    // apimachinery NewNotFound: `<resource> "<name>" not found`.
                    return Check::Unmet(format!("secrets \"{}\" not found", s.name));
                };
                let has = ["data", "stringData"]
                    .iter()
                    .any(|f| secret.get(f).and_then(|d| d.get(&s.key)).is_some());
                if has {
                    Check::Met
                } else {
                    // The kubelet's wording for the same situation
                    // (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables).
                    Check::Unmet(format!(
                        "couldn't find key {} in Secret {}/{}",
                        s.key, ns, s.name
                    ))
                }
            }
            Need::Endpoint(e) => check_endpoint(e, ns, view, at),
            Need::Postgres(p) => match self.postgres_request(p) {
                Ok(request) => Check::Postgres(request),
                Err(error) => Check::Unmet(error),
            },
            Need::Config(c) => match super::config::check(&self.ctx, c) {
                Ok(()) => Check::Met,
                Err(error) => Check::Unmet(error),
            },
            Need::Connect(c) => match super::connect::check(&self.ctx, c, view) {
                Ok(warnings) if warnings.is_empty() => Check::Met,
                Ok(warnings) => Check::MetWarning(warnings),
                Err(error) => Check::Unmet(error),
            },
            Need::Access(a) => {
                let attributes = access_attributes(a, &self.ctx);
                let decision = crate::sim::rbac::authorize(view, &attributes);
                if decision.allowed {
                    Check::Met
                } else {
                    Check::Unmet(attributes.forbidden_message(&decision.reason))
                }
            }
            Need::Resolve(r) => {
                if view.faults().dns_fails_host(&r.host, at) {
                    // The upstream answer CoreDNS relays as SERVFAIL, in Go's resolver
                    // wording as for a Service (net/dnsclient_unix.go errServerMisbehaving).
                    // Programs linked against musl word it their own way (getaddrinfo's
                    // EAI_AGAIN); scenarios quote those in `otherwise.log`.
                    Check::Unmet(format!(
                        "dial tcp: lookup {} on 10.43.0.10:53: server misbehaving",
                        r.host
                    ))
                } else {
                    Check::Met
                }
            }
            Need::AnyOf(needs) => {
                let mut first = None;
                for n in needs {
                    match self.evaluate(n, view, at) {
                        met @ (Check::Met | Check::MetWarning(_)) => return met,
                        Check::Unmet(e) => {
                            first.get_or_insert(e);
                        }
                        // The loader refuses postgres inside anyOf: a login is not a choice
                        // that can be made without the server.
                        Check::Postgres(_) => {
                            first.get_or_insert_with(|| {
                                "a postgres need cannot be one of anyOf".to_owned()
                            });
                        }
                    }
                }
                Check::Unmet(first.unwrap_or_else(|| "anyOf lists no need".to_owned()))
            }
        }
    }

    fn check_object(&self, o: &ObjectNeed, view: &dyn ClusterViewExt) -> Check {
        // A name the configuration gives (an environment variable, a flag, a values file)
        // replaces the built-in one, as `${NAME:-default}` in a script does.
        let configured = o
            .name_from
            .as_ref()
            .and_then(|source| super::config::read(&self.ctx, source))
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty());
        let name = configured.as_deref().unwrap_or(&o.name);
        let api_version = o
            .api_version
            .clone()
            .unwrap_or_else(|| builtin_api_version(&o.kind).to_owned());
        let namespace = o
            .namespace
            .clone()
            .or_else(|| (!cluster_scoped(&o.kind)).then(|| self.ctx.namespace.clone()));
        if view
            .get(&api_version, &o.kind, namespace.as_deref(), name)
            .is_some()
        {
            return Check::Met;
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        match view.resource_name(&api_version, &o.kind) {
            Some(resource) => Check::Unmet(format!(
                "{} \"{}\" not found",
                qualified(&resource, group),
                name
            )),
            None => Check::Unmet("the server could not find the requested resource".to_owned()),
        }
    }

    /// The login the container's configuration makes; `Err` with the client library's error
    /// when the configuration is unusable.
    fn postgres_request(&self, p: &PostgresNeed) -> Result<PostgresRequest, String> {
        let resolve = |v: &ValueSource| match v {
            ValueSource::Value(s) => s.clone(),
            ValueSource::Env(var) => self.ctx.env.get(var).cloned().unwrap_or_default(),
        };
        let sslmode = match p.sslmode_env.as_ref().and_then(|var| self.ctx.env.get(var)) {
            None => p.sslmode,
            Some(value) => parse_sslmode(value)?,
        };
        Ok(PostgresRequest {
            user: resolve(&p.user),
            password: resolve(&p.password),
            database: resolve(&p.database),
            sslmode,
            run: p.run.clone(),
        })
    }
}

/// The identity a controller-runtime manager elects with (pkg/leaderelection/leader_election.go
/// `NewResourceLock`): the hostname (the pod's name) and a random UUID, here derived from the
/// pod and the start so that runs are reproducible.
fn identity(ctx: &ContainerContext, started: Timestamp) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    (
        &ctx.namespace,
        &ctx.pod_name,
        &ctx.container,
        started.as_nanosecond(),
    )
        .hash(&mut h);
    let a = h.finish();
    a.hash(&mut h);
    let b = h.finish();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}_{}-{}-4{}-a{}-{}",
        ctx.pod_name,
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// A libpq `sslmode` value as a client reads it from `PGSSLMODE`. The simulated client checks
/// no certificates, so `verify-ca` and `verify-full` behave as `require`; `allow` (plain first,
/// then TLS) reaches the same servers as `prefer`.
fn parse_sslmode(value: &str) -> Result<SslMode, String> {
    match value {
        "disable" => Ok(SslMode::Disable),
        "allow" | "prefer" => Ok(SslMode::Prefer),
        "require" | "verify-ca" | "verify-full" => Ok(SslMode::Require),
        // libpq's refusal of an unknown mode (src/interfaces/libpq/fe-connect.c,
        // pqConnectOptions2: `invalid %s value: "%s"` with "sslmode").
        other => Err(format!("invalid sslmode value: \"{other}\"")),
    }
}

/// The request an access need describes, made as the pod's ServiceAccount.
fn access_attributes(a: &AccessNeed, ctx: &ContainerContext) -> crate::sim::rbac::Attributes {
    use crate::sim::rbac::{Attributes, RequestTarget, UserInfo};
    let user = UserInfo::service_account(&ctx.namespace, &ctx.service_account);
    let target = match &a.non_resource_url {
        Some(path) => RequestTarget::NonResource { path: path.clone() },
        None => RequestTarget::Resource {
            group: a.group.clone(),
            resource: a.resource.clone().unwrap_or_default(),
            subresource: a.subresource.clone().unwrap_or_default(),
            namespace: a.namespace.clone().unwrap_or_default(),
            name: a.name.clone().unwrap_or_default(),
        },
    };
    Attributes {
        user,
        verb: a.verb.clone(),
        target,
    }
}

enum Check {
    Met,
    /// Met, after the program logged these lines (a client that only warns).
    MetWarning(Vec<String>),
    Unmet(String),
    Postgres(PostgresRequest),
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// The `apiVersion` of a built-in kind named without one.
#[must_use]
pub(crate) fn builtin_api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ControllerRevision" => {
            "apps/v1"
        }
        "Job" | "CronJob" => "batch/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "StorageClass" | "VolumeAttachment" | "CSIDriver" => "storage.k8s.io/v1",
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        "Ingress" | "NetworkPolicy" => "networking.k8s.io/v1",
        "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => {
            "rbac.authorization.k8s.io/v1"
        }
        _ => "v1",
    }
}

pub(super) fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "StorageClass"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "VolumeAttachment"
            | "CSIDriver"
    )
}

fn check_endpoint(
    e: &EndpointNeed,
    pod_ns: &str,
    view: &dyn ClusterViewExt,
    at: Timestamp,
) -> Check {
    let ns = e.namespace.as_deref().unwrap_or(pod_ns);
    if view.faults().dns_fails(&e.service, ns, at) {
        // Cluster DNS answers SERVFAIL: Go's resolver reports `errServerMisbehaving`
        // (net/dnsclient_unix.go) in the same DNSError and OpError as "no such host".
        return Check::Unmet(format!(
            "dial tcp: lookup {} on 10.43.0.10:53: server misbehaving",
            e.service
        ));
    }
    let Some(service) = view.get("v1", "Service", Some(ns), &e.service) else {
        // Go's resolver error through net.Dial, with the cluster DNS service address kubeadm
        // uses (net/net.go OpError, net/dnsclient_unix.go "no such host").
        return Check::Unmet(format!(
            "dial tcp: lookup {} on 10.43.0.10:53: no such host",
            e.service
        ));
    };
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted = e.port.as_deref();
    let port = ports.iter().find(|p| match wanted {
        None => true,
        Some(w) => {
            p.get("name").and_then(Value::as_str) == Some(w)
                || p.get("port")
                    .and_then(Value::as_u64)
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(w)
        }
    });
    let port_name = port
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let port_number = port
        .and_then(|p| p.get("port"))
        .and_then(Value::as_u64)
        .map_or_else(|| wanted.unwrap_or("").to_owned(), |n| n.to_string());
    if endpoint_ready(view, ns, &e.service, port_name) {
        return Check::Met;
    }
    let ip = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    // What a TCP client sees when a Service has no ready endpoint: kube-proxy rejects the
    // connection (net/net.go OpError with ECONNREFUSED).
    Check::Unmet(format!(
        "dial tcp {ip}:{port_number}: connect: connection refused"
    ))
}

pub(super) fn endpoint_ready(
    view: &dyn ClusterViewExt,
    ns: &str,
    service: &str,
    port_name: &str,
) -> bool {
    let slices = view.list("discovery.k8s.io/v1", "EndpointSlice", Some(ns));
    let owned: Vec<&Value> = slices
        .iter()
        .map(|s| &**s)
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(service)
        })
        .collect();
    let port_ok = |ports: Option<&Value>| {
        ports.and_then(Value::as_array).is_some_and(|ps| {
            ps.iter().any(|p| {
                port_name.is_empty() || p.get("name").and_then(Value::as_str) == Some(port_name)
            })
        })
    };
    if !owned.is_empty() {
        return owned.iter().any(|s| {
            port_ok(s.get("ports"))
                && s.get("endpoints")
                    .and_then(Value::as_array)
                    .is_some_and(|eps| {
                        eps.iter().any(|ep| {
                            ep.pointer("/conditions/ready")
                                .and_then(Value::as_bool)
                                .unwrap_or(true)
                        })
                    })
        });
    }
    view.get("v1", "Endpoints", Some(ns), service)
        .and_then(|e| e.get("subsets").cloned())
        .and_then(|s| s.as_array().cloned())
        .is_some_and(|subsets| {
            subsets.iter().any(|s| {
                port_ok(s.get("ports"))
                    && s.get("addresses")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scenario::{
        Duration as ScenarioDuration, EndpointNeed, ExitAfter, OperatorRule, Requirement,
        ResourceNeed, SecretKeyNeed,
    };
    use crate::sim::behaviour::StaticView;

    fn t0() -> Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    fn at(secs: u64) -> Timestamp {
        after(t0(), Duration::from_secs(secs))
    }

    fn ctx() -> ContainerContext {
        ContainerContext {
            args: Vec::new(),
            files: BTreeMap::new(),
            namespace: "apps".into(),
            pod_name: "p".into(),
            container: "c".into(),
            command: vec![],
            env: BTreeMap::from([("PGUSER".to_owned(), "backstage".to_owned())]),
            node_arch: Arch::Amd64,
            service_account: "default".into(),
        }
    }

    fn texts(p: &Progress) -> Vec<(u64, String)> {
        p.logs
            .iter()
            .map(|l| {
                (
                    super::super::time::since(l.at, t0()).as_secs(),
                    l.text.clone(),
                )
            })
            .collect()
    }

    fn fail(log: &str, exit_code: Option<i32>, retry: Option<u64>, ready: bool) -> Otherwise {
        Otherwise {
            log: vec![log.to_owned()],
            exit_code,
            retry: retry.map(ScenarioDuration::from_secs),
            ready,
        }
    }

    #[test]
    fn unknown_images_run_for_ever_and_are_ready_at_once() {
        let view = StaticView::default();
        let mut p = Program::start(None, ctx(), t0());
        let out = p.advance(t0(), &view);
        assert_eq!(out, Progress::default());
        assert!(p.ready(t0()));
        assert!(p.listens_on(8080, t0()));
        assert_eq!(p.advance(at(86_400), &view).exit, None);
    }

    #[test]
    fn single_manifest_of_another_arch_fails_to_exec() {
        let b = ImageBehaviour {
            manifest: ManifestKind::Single,
            platforms: vec!["linux/arm64".into()],
            entrypoint: Some("/opt/keycloak/bin/kc.sh".into()),
            ..ImageBehaviour::default()
        };
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(t0(), &StaticView::default());
        assert_eq!(
            texts(&out),
            vec![(
                0,
                "exec /opt/keycloak/bin/kc.sh: exec format error".to_owned()
            )]
        );
        assert_eq!(
            out.exit,
            Some(Exit {
                code: 255,
                at: t0()
            })
        );
        assert_eq!(out.wake_at, None);
        assert!(!p.ready(t0()));

        // The container's command wins over the image's entrypoint.
        let mut c = ctx();
        c.command = vec!["/bin/app".into(), "serve".into()];
        let mut p = Program::start(Some(&b), c, t0());
        assert_eq!(
            p.advance(t0(), &StaticView::default()).logs[0].text,
            "exec /bin/app: exec format error"
        );

        // The right architecture runs.
        let mut c = ctx();
        c.node_arch = Arch::Arm64;
        let mut p = Program::start(Some(&b), c, t0());
        assert_eq!(p.advance(t0(), &StaticView::default()).exit, None);
    }

    #[test]
    fn ready_after_and_exit_after() {
        let b = ImageBehaviour {
            logs: vec!["starting".into()],
            ready_after: Some(ScenarioDuration::from_secs(20)),
            exit_after: Some(ExitAfter {
                duration: ScenarioDuration::from_secs(60),
                code: 0,
            }),
            ..ImageBehaviour::default()
        };
        let view = StaticView::default();
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(t0(), &view);
        assert_eq!(texts(&out), vec![(0, "starting".to_owned())]);
        assert_eq!(out.wake_at, Some(at(20)));
        assert!(!p.ready(at(19)));
        assert!(p.ready(at(20)));
        assert_eq!(p.advance(at(59), &view).exit, None);
        assert_eq!(p.advance(at(59), &view).wake_at, Some(at(60)));
        let out = p.advance(at(75), &view);
        assert_eq!(
            out.exit,
            Some(Exit {
                code: 0,
                at: at(60)
            })
        );
        assert!(out.logs.is_empty());
    }

    /// The workflows-runtime of the Temporal scenario: waits for the frontend, then exits
    /// when its Temporal namespace is missing.
    #[test]
    fn requirements_are_checked_in_order_with_retries_and_exits() {
        let b = ImageBehaviour {
            requires: vec![
                Requirement {
                    needs: Need::Endpoint(EndpointNeed {
                        service: "temporal-frontend".into(),
                        namespace: None,
                        port: Some("grpc".into()),
                    }),
                    otherwise: fail("waiting for frontend: {error}", None, Some(5), false),
                },
                Requirement {
                    needs: Need::Object(ObjectNeed {
                        api_version: Some("temporal.io/v1beta1".into()),
                        kind: "TemporalNamespace".into(),
                        name: "ameide".into(),
                        name_from: None,
                        namespace: None,
                    }),
                    otherwise: fail(
                        "Temporal namespace is missing; create it or update configuration",
                        Some(1),
                        None,
                        false,
                    ),
                },
            ],
            ..ImageBehaviour::default()
        };
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "temporal-frontend", "namespace": "apps"},
            "spec": {"clusterIP": "10.43.12.7", "ports": [{"name": "grpc", "port": 7233}]}
        });
        let mut view = StaticView::new(vec![service.clone()]);
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(t0(), &view);
        assert_eq!(
            texts(&out),
            vec![(
                0,
                "waiting for frontend: dial tcp 10.43.12.7:7233: connect: connection refused"
                    .to_owned()
            )]
        );
        assert_eq!(out.wake_at, Some(at(5)));
        let out = p.advance(at(12), &view);
        assert_eq!(
            texts(&out).iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![5, 10]
        );

        view.objects.push(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "temporal-frontend-x", "namespace": "apps",
                          "labels": {"kubernetes.io/service-name": "temporal-frontend"}},
            "ports": [{"name": "grpc", "port": 7233}],
            "endpoints": [{"addresses": ["10.42.0.9"], "conditions": {"ready": true}}]
        }));
        let out = p.advance(at(15), &view);
        assert_eq!(
            texts(&out),
            vec![(
                15,
                "Temporal namespace is missing; create it or update configuration".to_owned()
            )]
        );
        assert_eq!(
            out.exit,
            Some(Exit {
                code: 1,
                at: at(15)
            })
        );
        assert_eq!(out.wake_at, None);
    }

    #[test]
    fn a_dns_failure_fails_connections_by_service_name_while_it_lasts() {
        let b = ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Endpoint(EndpointNeed {
                    service: "db".into(),
                    namespace: None,
                    port: None,
                }),
                otherwise: fail("connect: {error}", None, Some(10), false),
            }],
            ..ImageBehaviour::default()
        };
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "db", "namespace": "apps"},
                   "spec": {"clusterIP": "10.43.3.4", "ports": [{"port": 5432}]}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "db-x", "namespace": "apps",
                                "labels": {"kubernetes.io/service-name": "db"}},
                   "ports": [{"port": 5432}],
                   "endpoints": [{"addresses": ["10.42.0.9"], "conditions": {"ready": true}}]}),
        ];
        let mut faults = crate::sim::faults::Faults::default();
        faults.start(
            &crate::scenario::FaultStep {
                for_: Some(ScenarioDuration::from_secs(15)),
                dns_failure: Some(crate::scenario::DnsFault {
                    service: Some("db".into()),
                    namespace: None,
                    host: None,
                }),
                ..crate::scenario::FaultStep::default()
            },
            t0(),
        );
        let view = StaticView::new(objects).with_faults(faults);
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(at(30), &view);
        // Fails at 0s and 10s; the retry at 20s, after the fault, connects.
        assert_eq!(
            texts(&out),
            [0, 10]
                .map(|s| (
                    s,
                    "connect: dial tcp: lookup db on 10.43.0.10:53: server misbehaving".to_owned()
                ))
                .to_vec()
        );
        assert!(p.ready(at(30)));
    }

    #[test]
    fn unserved_resource_keeps_running_ready_and_logs_each_retry() {
        let msg = "failed to list *v1.Prometheus: {error}";
        let b = ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Resource(ResourceNeed {
                    group: "monitoring.coreos.com".into(),
                    version: "v1".into(),
                    resource: "prometheuses".into(),
                    kind: "Prometheus".into(),
                }),
                otherwise: fail(msg, None, Some(30), true),
            }],
            ..ImageBehaviour::default()
        };
        let view = StaticView::default();
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(at(65), &view);
        let line = "failed to list *v1.Prometheus: the server could not find the requested resource (get prometheuses.monitoring.coreos.com)";
        assert_eq!(
            texts(&out),
            vec![
                (0, line.to_owned()),
                (30, line.to_owned()),
                (60, line.to_owned())
            ]
        );
        assert!(p.ready(at(65)));
        assert_eq!(out.exit, None);

        let served = StaticView::default().serving("monitoring.coreos.com", "v1", "prometheuses");
        let out = p.advance(at(95), &served);
        assert!(out.logs.is_empty());
        assert!(p.ready(at(95)));
        assert_eq!(out.wake_at, None);
    }

    #[test]
    fn api_access_is_judged_by_the_pods_service_account() {
        let b = ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Access(AccessNeed {
                    verb: "list".into(),
                    group: String::new(),
                    resource: Some("nodes".into()),
                    subresource: None,
                    name: None,
                    namespace: None,
                    non_resource_url: None,
                }),
                otherwise: fail("failed to list *v1.Node: {error}", None, Some(30), true),
            }],
            ..ImageBehaviour::default()
        };
        let mut c = ctx();
        c.service_account = "kube-state-metrics".into();
        let mut p = Program::start(Some(&b), c.clone(), t0());
        let out = p.advance(at(35), &StaticView::default());
        let line = r#"failed to list *v1.Node: nodes is forbidden: User "system:serviceaccount:apps:kube-state-metrics" cannot list resource "nodes" in API group "" at the cluster scope"#;
        assert_eq!(
            texts(&out),
            vec![(0, line.to_owned()), (30, line.to_owned())]
        );
        assert!(p.ready(at(35)), "a program that keeps retrying stays ready");

        let rbac = "rbac.authorization.k8s.io/v1";
        let granted = StaticView::new(vec![
            json!({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "ksm"},
                   "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]}),
            json!({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "ksm"},
                   "roleRef": {"kind": "ClusterRole", "name": "ksm"},
                   "subjects": [{"kind": "ServiceAccount", "name": "kube-state-metrics", "namespace": "apps"}]}),
        ]);
        // The next retry finds the rule: no more lines.
        assert_eq!(texts(&p.advance(at(120), &granted)), Vec::new());
        // Another ServiceAccount of the same pod namespace is still refused.
        let mut other = c;
        other.service_account = "default".into();
        let mut p = Program::start(Some(&b), other, t0());
        assert_eq!(p.advance(t0(), &granted).logs.len(), 1);
    }

    #[test]
    fn secret_key_and_object_errors() {
        let need = |n: Need| ImageBehaviour {
            requires: vec![Requirement {
                needs: n,
                otherwise: fail("{error}", Some(2), None, false),
            }],
            ..ImageBehaviour::default()
        };
        let secret_need = Need::SecretKey(SecretKeyNeed {
            name: "db".into(),
            key: "password".into(),
        });
        let run = |b: &ImageBehaviour, view: &StaticView| {
            let mut p = Program::start(Some(b), ctx(), t0());
            p.advance(t0(), view).logs[0].text.clone()
        };
        let b = need(secret_need);
        assert_eq!(run(&b, &StaticView::default()), "secrets \"db\" not found");
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "apps"}, "data": {"user": "eA=="}});
        assert_eq!(
            run(&b, &StaticView::new(vec![secret])),
            "couldn't find key password in Secret apps/db"
        );

        let b = need(Need::Object(ObjectNeed {
            api_version: None,
            kind: "ConfigMap".into(),
            name: "settings".into(),
            name_from: None,
            namespace: None,
        }));
        assert_eq!(
            run(&b, &StaticView::default()),
            "the server could not find the requested resource"
        );
    }

    #[test]
    fn an_object_name_from_the_configuration_replaces_the_built_in_one() {
        let b = ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Object(ObjectNeed {
                    api_version: Some("clickhouse.altinity.com/v1".into()),
                    kind: "ClickHouseInstallation".into(),
                    name: "clickhouse".into(),
                    name_from: Some(crate::scenario::ConfigSource {
                        env: Some("CHI_NAME".into()),
                        arg: None,
                        file: None,
                        key: None,
                        format: None,
                    }),
                    namespace: None,
                }),
                otherwise: fail("{error}", Some(1), None, false),
            }],
            ..ImageBehaviour::default()
        };
        let chi = json!({"apiVersion": "clickhouse.altinity.com/v1", "kind": "ClickHouseInstallation",
            "metadata": {"name": "data-clickhouse", "namespace": "apps"}});
        let view = StaticView::new(vec![chi]);
        let run = |c: ContainerContext| {
            let mut p = Program::start(Some(&b), c, t0());
            p.advance(t0(), &view).logs.len()
        };
        // Without the variable (or with it empty) the built-in name is looked up and missing.
        assert_eq!(run(ctx()), 1);
        let mut empty = ctx();
        empty.env.insert("CHI_NAME".into(), String::new());
        assert_eq!(run(empty), 1);
        let mut named = ctx();
        named
            .env
            .insert("CHI_NAME".into(), "data-clickhouse".into());
        assert_eq!(run(named), 0);
    }

    #[test]
    fn a_host_outside_the_cluster_fails_to_resolve_only_during_a_dns_failure() {
        let b = ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Resolve(crate::scenario::ResolveNeed {
                    host: "dl-cdn.alpinelinux.org".into(),
                }),
                otherwise: fail("{error}", Some(2), None, false),
            }],
            ..ImageBehaviour::default()
        };
        let mut faults = crate::sim::faults::Faults::default();
        faults.start(
            &crate::scenario::FaultStep {
                dns_failure: Some(crate::scenario::DnsFault {
                    service: None,
                    namespace: None,
                    host: Some("dl-cdn.alpinelinux.org".into()),
                }),
                ..crate::scenario::FaultStep::default()
            },
            at(10),
        );
        let view = StaticView::default().with_faults(faults);
        let mut before = Program::start(Some(&b), ctx(), t0());
        assert!(before.advance(t0(), &view).logs.is_empty());
        let mut during = Program::start(Some(&b), ctx(), at(10));
        assert_eq!(
            during.advance(at(10), &view).logs[0].text,
            "dial tcp: lookup dl-cdn.alpinelinux.org on 10.43.0.10:53: server misbehaving"
        );
    }

    struct FakePg(Vec<PostgresRequest>, PostgresOutcome);

    impl PostgresConnector for FakePg {
        fn check(&mut self, request: &PostgresRequest) -> PostgresOutcome {
            self.0.push(request.clone());
            self.1.clone()
        }
    }

    #[test]
    fn postgres_checks_are_handed_to_the_caller() {
        let b = ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Postgres(PostgresNeed {
                    user: ValueSource::Env("PGUSER".into()),
                    password: ValueSource::Env("PGPASSWORD".into()),
                    database: ValueSource::Value("backstage_plugin_catalog".into()),
                    sslmode: SslMode::Require,
                    sslmode_env: None,
                    run: vec!["CREATE DATABASE backstage_plugin_app".into()],
                }),
                otherwise: fail("Failed to connect: {error}", Some(1), None, false),
            }],
            ..ImageBehaviour::default()
        };
        let view = StaticView::default();
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(t0(), &view);
        let request = out.postgres.clone().unwrap();
        assert_eq!(
            request,
            PostgresRequest {
                user: "backstage".into(),
                password: String::new(),
                database: "backstage_plugin_catalog".into(),
                sslmode: SslMode::Require,
                run: vec!["CREATE DATABASE backstage_plugin_app".into()],
            }
        );
        assert_eq!(out.wake_at, None);
        let shown = format!("{request:?}");
        assert!(
            shown.contains("<redacted>") && shown.contains("backstage"),
            "{shown}"
        );
        // Still waiting: asked again.
        assert_eq!(p.advance(at(1), &view).postgres, Some(request));

        let mut pg = FakePg(
            vec![],
            PostgresOutcome::Failed {
                sqlstate: Some("42501".into()),
                message: "permission denied to create database".into(),
            },
        );
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.run(t0(), &view, &mut pg);
        assert_eq!(pg.0.len(), 1);
        assert_eq!(
            texts(&out),
            vec![(
                0,
                "Failed to connect: permission denied to create database".to_owned()
            )]
        );
        assert_eq!(out.exit, Some(Exit { code: 1, at: t0() }));

        let mut ok = FakePg(vec![], PostgresOutcome::Ok);
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.run(t0(), &view, &mut ok);
        assert_eq!(out.exit, None);
        assert!(p.ready(t0()));
    }

    #[test]
    fn an_operator_whose_requirement_fails_reconciles_nothing() {
        let b: ImageBehaviour = crate::yaml::from_str(
            r#"
requires:
  - needs: {object: {kind: Secret, name: webhook-cert}}
    otherwise: {log: ["cert not found: {error}"], retry: 30s, ready: true}
operator:
  - forEach: {group: g, version: v1, resource: things, kind: Thing}
    owns: [{apiVersion: v1, kind: ConfigMap, metadata: {name: "c-{{name}}"}}]
"#,
        )
        .unwrap();
        let thing = json!({"apiVersion": "g/v1", "kind": "Thing",
                           "metadata": {"name": "t", "namespace": "apps", "uid": "u"}});
        let view = StaticView::new(vec![thing.clone()]).serving("g", "v1", "things");
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(at(1), &view);
        assert_eq!(
            texts(&out),
            vec![(
                0,
                "cert not found: the server could not find the requested resource".to_owned()
            )]
        );
        assert!(p.operator_work(&view).is_empty());

        let secret = json!({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": "webhook-cert", "namespace": "apps"}});
        let view = StaticView::new(vec![thing, secret]).serving("g", "v1", "things");
        assert!(p.advance(at(31), &view).logs.is_empty());
        assert_eq!(p.desired_objects(&view).len(), 1);
    }

    #[test]
    fn operators_log_while_unserved_and_own_objects_once_served() {
        let b = ImageBehaviour {
            operator: vec![OperatorRule {
                for_each: ResourceNeed {
                    group: "temporal.io".into(),
                    version: "v1beta1".into(),
                    resource: "temporalnamespaces".into(),
                    kind: "TemporalNamespace".into(),
                },
                owns: vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "ns-{{name}}"}})],
                log_while_unserved: vec!["reflector: not served".into()],
                reports: vec![],
                event_source: None,
            }],
            ..ImageBehaviour::default()
        };
        let mut p = Program::start(Some(&b), ctx(), t0());
        let out = p.advance(at(61), &StaticView::default());
        assert_eq!(
            texts(&out).iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![0, 30, 60]
        );
        assert_eq!(out.wake_at, Some(at(90)));
        assert!(p.desired_objects(&StaticView::default()).is_empty());

        let served = StaticView::new(vec![json!({
            "apiVersion": "temporal.io/v1beta1", "kind": "TemporalNamespace",
            "metadata": {"name": "ameide", "namespace": "apps", "uid": "u"}
        })])
        .serving("temporal.io", "v1beta1", "temporalnamespaces");
        assert!(p.advance(at(95), &served).logs.is_empty());
        let owned = p.desired_objects(&served);
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0]["metadata"]["name"], "ns-ameide");

        p.terminate(at(100));
        assert_eq!(
            p.exit(),
            Some(Exit {
                code: 143,
                at: at(100)
            })
        );
        assert!(p.desired_objects(&served).is_empty());
        assert_eq!(p.advance(at(200), &StaticView::default()).logs, vec![]);
    }

    #[test]
    fn a_client_that_only_warns_logs_and_carries_on() {
        let b: ImageBehaviour = serde_json::from_value(json!({"requires": [{
            "needs": {"connect": {"to": "redis", "password": {"env": "REDIS_PASSWORD"},
                                  "unneededPassword": ["[WARN] no password needed"]}},
            "otherwise": {"log": ["{error}"], "exitCode": 1}}]}))
        .unwrap();
        let mut view = StaticView::new(vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis", "namespace": "apps"},
                   "spec": {"clusterIP": "10.43.0.9", "ports": [{"name": "redis", "port": 6379}]}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "redis-x", "namespace": "apps", "labels": {"kubernetes.io/service-name": "redis"}},
                   "ports": [{"name": "redis", "port": 6379}],
                   "endpoints": [{"addresses": ["10.42.0.3"], "targetRef": {"kind": "Pod", "name": "redis-0"}}]}),
        ]);
        view.listeners.push(super::Listener {
            namespace: "apps".into(),
            pod: "redis-0".into(),
            port: 6379,
            served: Served {
                protocol: crate::scenario::Protocol::Redis,
                password: None,
            },
        });
        let mut c = ctx();
        c.env.insert("REDIS_PASSWORD".into(), "pw".into());
        let mut p = Program::start(Some(&b), c, t0());
        let out = p.advance(t0(), &view);
        assert_eq!(
            texts(&out),
            vec![(0, "[WARN] no password needed".to_owned())]
        );
        assert_eq!(out.exit, None);
        assert!(p.ready(t0()));
    }
}
