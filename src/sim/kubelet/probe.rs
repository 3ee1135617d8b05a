//! Container probes: their settings, their schedule and what they report.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::gofmt::{go_duration, go_quote};
use crate::sim::behaviour::Program;
use crate::sim::behaviour::time::after;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}

impl ProbeKind {
    /// The name the kubelet uses in events (pkg/kubelet/prober/prober.go `probeType.String()`).
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        }
    }

    const fn field(self) -> &'static str {
        match self {
            Self::Startup => "startupProbe",
            Self::Liveness => "livenessProbe",
            Self::Readiness => "readinessProbe",
        }
    }
}

/// How a probe reaches the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `httpGet`.
    Http {
        /// `http` or `https`.
        scheme: String,
        /// Port number.
        port: u16,
        /// Request path.
        path: String,
    },
    /// `tcpSocket`.
    Tcp {
        /// Port number.
        port: u16,
    },
    /// `grpc`.
    Grpc {
        /// Port number.
        port: u16,
    },
    /// `exec`.
    Exec {
        /// The command, with `$(VAR)` references expanded as the kubelet expands them.
        command: Vec<String>,
    },
}

/// A probe's settings with the API defaults applied (pkg/apis/core/v1/defaults.go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Which probe.
    pub kind: ProbeKind,
    /// How it reaches the program.
    pub handler: Handler,
    /// `initialDelaySeconds` (0).
    pub initial_delay: Duration,
    /// `periodSeconds` (10).
    pub period: Duration,
    /// `timeoutSeconds` (1).
    pub timeout: Duration,
    /// `successThreshold` (1).
    pub success_threshold: u32,
    /// `failureThreshold` (3).
    pub failure_threshold: u32,
}

fn secs(v: &Value, key: &str, default: u64) -> Duration {
    Duration::from_secs(v.get(key).and_then(Value::as_u64).unwrap_or(default))
}

fn count(v: &Value, key: &str, default: u32) -> u32 {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default)
        .max(1)
}

fn port(container: &Value, p: Option<&Value>) -> u16 {
    match p {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
        Some(Value::String(name)) => name.parse().unwrap_or_else(|_| {
            container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|cp| cp.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|cp| cp.get("containerPort").and_then(Value::as_u64))
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(0)
        }),
        _ => 0,
    }
}

impl ProbeSpec {
    /// The container's probe of `kind`, if it has one.
    #[must_use]
    pub fn of(container: &Value, kind: ProbeKind) -> Option<Self> {
        let p = container.get(kind.field())?;
        let handler = if let Some(h) = p.get("httpGet") {
            Handler::Http {
                scheme: h
                    .get("scheme")
                    .and_then(Value::as_str)
                    .unwrap_or("HTTP")
                    .to_ascii_lowercase(),
                port: port(container, h.get("port")),
                path: h
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_owned(),
            }
        } else if let Some(t) = p.get("tcpSocket") {
            Handler::Tcp {
                port: port(container, t.get("port")),
            }
        } else if let Some(g) = p.get("grpc") {
            Handler::Grpc {
                port: port(container, g.get("port")),
            }
        } else {
            // pkg/kubelet/prober/prober.go runProbe: `ExpandContainerCommandOnlyStatic`, which
            // maps every env name of the container to its literal `value` (empty for
            // `valueFrom`); the probe does not see the resolved environment.
            let statics: std::collections::BTreeMap<String, String> = container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let name = e.get("name").and_then(Value::as_str)?;
                    let value = e.get("value").and_then(Value::as_str).unwrap_or("");
                    Some((name.to_owned(), value.to_owned()))
                })
                .collect();
            Handler::Exec {
                command: p
                    .pointer("/exec/command")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|w| super::env::expand(w, &statics))
                    .collect(),
            }
        };
        let liveness_like = kind != ProbeKind::Readiness;
        Some(Self {
            kind,
            handler,
            initial_delay: secs(p, "initialDelaySeconds", 0),
            period: secs(p, "periodSeconds", 10).max(Duration::from_secs(1)),
            timeout: secs(p, "timeoutSeconds", 1).max(Duration::from_secs(1)),
            // Liveness and startup probes must use 1 (API validation); keep it so.
            success_threshold: if liveness_like {
                1
            } else {
                count(p, "successThreshold", 1)
            },
            failure_threshold: count(p, "failureThreshold", 3),
        })
    }

    /// Probes the program at `now`: `None` on success, else the failure output the kubelet
    /// puts after `<Kind> probe failed: `.
    ///
    /// The outputs are Go's errors for a refused connection (net/net.go `OpError`, wrapped by
    /// net/http's `url.Error` for HTTP probes) and the kubelet's gRPC prober text
    /// (pkg/probe/grpc/grpc.go); an exec probe of a program that is not ready exits non-zero
    /// without output, and one whose command takes `timeoutSeconds` or longer
    /// ([`Program::command_time`]) fails with the CRI client's exec timeout error. A program slower than `timeoutSeconds` fails an HTTP probe with the
    /// error net/http's client returns when its `Timeout` passes before the response headers
    /// (pkg/probe/http/http.go returns `err.Error()` as the output), and a gRPC probe with
    /// `timeout: health rpc did not complete within <timeout>` (pkg/probe/grpc/grpc.go,
    /// codes.DeadlineExceeded). A TCP probe only connects, which the kernel completes for a
    /// listening socket however slow the program is. A path the program does not serve answers
    /// 404: `HTTP probe failed with statuscode: 404` (pkg/probe/http/http.go).
    #[must_use]
    pub fn run(&self, program: &Program, pod_ip: &str, now: Timestamp) -> Option<String> {
        match &self.handler {
            Handler::Http { scheme, port, path } => {
                let url = format!("{scheme}://{pod_ip}:{port}{path}");
                if !program.listens_on(*port, now) {
                    Some(format!(
                        "Get \"{url}\": dial tcp {pod_ip}:{port}: connect: connection refused"
                    ))
                } else if program.answer_time(*port, Some(path), now) >= self.timeout {
                    Some(format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    ))
                } else if !program.serves_path(path) {
                    Some("HTTP probe failed with statuscode: 404".to_owned())
                } else {
                    None
                }
            }
            // pkg/probe/tcp/tcp.go DoTCPProbe: the dial error as the probe's output.
            Handler::Tcp { port } => (!program.listens_on(*port, now))
                .then(|| format!("dial tcp {pod_ip}:{port}: connect: connection refused")),
            Handler::Grpc { port } => {
                if !program.listens_on(*port, now) {
                    Some(format!(
                        "timeout: failed to connect service \"{pod_ip}:{port}\" within {}: context deadline exceeded",
                        go_duration(self.timeout)
                    ))
                } else if program.answer_time(*port, None, now) >= self.timeout {
                    Some(format!(
                        "timeout: health rpc did not complete within {}",
                        go_duration(self.timeout)
                    ))
                } else {
                    None
                }
            }
            Handler::Exec { command } => {
                let joined = command.join(" ");
                if program.command_time(&joined, now) >= self.timeout {
                    // containerd kills the command at the timeout and answers DeadlineExceeded;
                    // the CRI client turns that into `ErrCommandTimedOut` ("command timed out")
                    // wrapped as `%w: %q timed out after %s` (k8s.io/cri-client v0.32
                    // pkg/remote_runtime.go execSyncV1), and the exec prober returns the
                    // error's text as the output (pkg/probe/exec/exec.go, ExecProbeTimeout on).
                    Some(format!(
                        "command timed out: {} timed out after {}",
                        go_quote(&joined),
                        go_duration(self.timeout)
                    ))
                } else {
                    (!program.ready(now)).then(String::new)
                }
            }
        }
    }
}

/// The running tally of one probe for one container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    /// The settings.
    pub spec: ProbeSpec,
    /// When it runs next.
    pub next_at: Timestamp,
    /// Consecutive successes.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// The current result: readiness starts failed, liveness and startup start passed
    /// (pkg/kubelet/prober/worker.go `initialValue`).
    pub passing: bool,
}

impl ProbeState {
    /// A fresh tally for a container that started at `started_at`.
    ///
    /// The kubelet's probe worker ticks every period and skips ticks before the initial delay
    /// (pkg/kubelet/prober/worker.go), so a liveness or startup probe first runs one period
    /// after the start at the earliest. A readiness probe is also run on demand: every pod
    /// status update of a started container that is not ready yet triggers it
    /// (pkg/kubelet/prober/prober_manager.go `UpdatePodStatus`, `manualTriggerCh`). The first
    /// such update follows the PLEG's relist that notices the start, so a readiness probe
    /// first runs at that relist or once the initial delay has passed, whichever is later.
    #[must_use]
    pub fn new(spec: ProbeSpec, started_at: Timestamp) -> Self {
        let passing = spec.kind == ProbeKind::Liveness;
        let first = if spec.kind == ProbeKind::Readiness {
            spec.initial_delay.max(super::pod::PLEG_RELIST)
        } else {
            spec.initial_delay.max(spec.period)
        };
        Self {
            next_at: after(started_at, first),
            spec,
            successes: 0,
            failures: 0,
            passing,
        }
    }

    /// Records one result and schedules the next run; returns whether the result flipped to failing.
    pub fn record(&mut self, failed: bool) -> bool {
        self.next_at = after(self.next_at, self.spec.period);
        if failed {
            self.successes = 0;
            self.failures += 1;
            if self.passing && self.failures >= self.spec.failure_threshold {
                self.passing = false;
                return true;
            }
            if self.spec.kind == ProbeKind::Startup && self.failures >= self.spec.failure_threshold
            {
                return true;
            }
        } else {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.spec.success_threshold {
                self.passing = true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scenario::{Arch, Duration as D, ImageBehaviour};
    use crate::sim::behaviour::{ContainerContext, StaticView};

    fn t(s: u64) -> Timestamp {
        after(
            "2025-01-01T00:00:00Z".parse().unwrap(),
            Duration::from_secs(s),
        )
    }

    #[test]
    fn parses_with_defaults_and_named_ports() {
        let c = json!({"ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 9000}, "initialDelaySeconds": 30, "successThreshold": 4}});
        let r = ProbeSpec::of(&c, ProbeKind::Readiness).unwrap();
        assert_eq!(
            r.handler,
            Handler::Http {
                scheme: "http".into(),
                port: 8080,
                path: "/health/ready".into()
            }
        );
        assert_eq!(
            (r.period, r.timeout, r.failure_threshold),
            (Duration::from_secs(5), Duration::from_secs(1), 3)
        );
        let l = ProbeSpec::of(&c, ProbeKind::Liveness).unwrap();
        assert_eq!(l.handler, Handler::Tcp { port: 9000 });
        assert_eq!(
            (l.initial_delay, l.success_threshold),
            (Duration::from_secs(30), 1)
        );
        assert!(ProbeSpec::of(&c, ProbeKind::Startup).is_none());
    }

    #[test]
    fn failure_outputs() {
        let b = ImageBehaviour {
            ready_after: Some(D::from_secs(20)),
            ..ImageBehaviour::default()
        };
        let ctx = ContainerContext {
            args: Vec::new(),
            files: std::collections::BTreeMap::new(),
            namespace: "n".into(),
            pod_name: "p".into(),
            container: "c".into(),
            command: vec![],
            env: Default::default(),
            node_arch: Arch::Amd64,
            service_account: "default".into(),
        };
        let mut prog = Program::start(Some(&b), ctx, t(0));
        let _ = prog.advance(t(0), &StaticView::default());
        let c = json!({"readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                       "livenessProbe": {"tcpSocket": {"port": 8080}},
                       "startupProbe": {"grpc": {"port": 9090}}});
        let http = ProbeSpec::of(&c, ProbeKind::Readiness).unwrap();
        assert_eq!(
            http.run(&prog, "10.42.0.5", t(1)).unwrap(),
            "Get \"http://10.42.0.5:8080/healthz\": dial tcp 10.42.0.5:8080: connect: connection refused"
        );
        assert_eq!(http.run(&prog, "10.42.0.5", t(20)), None);
        let tcp = ProbeSpec::of(&c, ProbeKind::Liveness).unwrap();
        assert_eq!(
            tcp.run(&prog, "10.42.0.5", t(1)).unwrap(),
            "dial tcp 10.42.0.5:8080: connect: connection refused"
        );
        let grpc = ProbeSpec::of(&c, ProbeKind::Startup).unwrap();
        assert_eq!(
            grpc.run(&prog, "10.42.0.5", t(1)).unwrap(),
            "timeout: failed to connect service \"10.42.0.5:9090\" within 1s: context deadline exceeded"
        );
    }

    #[test]
    fn thresholds() {
        let c = json!({"readinessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2, "failureThreshold": 2}});
        let mut s = ProbeState::new(ProbeSpec::of(&c, ProbeKind::Readiness).unwrap(), t(0));
        assert!(!s.passing);
        assert!(!s.record(false));
        assert!(!s.passing);
        assert!(!s.record(false));
        assert!(s.passing);
        assert!(!s.record(true));
        assert!(s.passing);
        assert!(s.record(true));
        assert!(!s.passing);
        assert_eq!(s.next_at, t(41)); // first after the PLEG relist, then four periods
    }

    #[test]
    fn slow_answers_time_out_http_and_grpc_probes_but_not_tcp() {
        let b: ImageBehaviour = serde_json::from_value(json!({
            "httpPaths": ["/healthz"],
            "answerTime": [{"time": "3s"}, {"from": "40s", "time": "200ms"}]
        }))
        .unwrap();
        let ctx = ContainerContext {
            args: Vec::new(),
            files: std::collections::BTreeMap::new(),
            namespace: "n".into(),
            pod_name: "p".into(),
            container: "c".into(),
            command: vec![],
            env: Default::default(),
            node_arch: Arch::Amd64,
            service_account: "default".into(),
        };
        let mut prog = Program::start(Some(&b), ctx, t(0));
        let _ = prog.advance(t(0), &StaticView::default());
        let probes = |timeout: u64| {
            json!({"livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": timeout},
                   "readinessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": timeout},
                   "startupProbe": {"grpc": {"port": 9090}, "timeoutSeconds": timeout}})
        };
        let c = probes(1);
        let http = ProbeSpec::of(&c, ProbeKind::Liveness).unwrap();
        assert_eq!(
            http.run(&prog, "10.42.0.5", t(5)).unwrap(),
            "Get \"http://10.42.0.5:8080/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        );
        // Warmed up: 200 ms answers pass a 1 s timeout.
        assert_eq!(http.run(&prog, "10.42.0.5", t(41)), None);
        let grpc = ProbeSpec::of(&c, ProbeKind::Startup).unwrap();
        assert_eq!(
            grpc.run(&prog, "10.42.0.5", t(5)).unwrap(),
            "timeout: health rpc did not complete within 1s"
        );
        let tcp = ProbeSpec::of(&c, ProbeKind::Readiness).unwrap();
        assert_eq!(tcp.run(&prog, "10.42.0.5", t(5)), None);
        // A timeout equal to the answer time still fails (the client gives up first); longer passes.
        let c = probes(3);
        assert!(
            ProbeSpec::of(&c, ProbeKind::Liveness)
                .unwrap()
                .run(&prog, "10.42.0.5", t(5))
                .is_some()
        );
        let c = probes(4);
        assert_eq!(
            ProbeSpec::of(&c, ProbeKind::Liveness)
                .unwrap()
                .run(&prog, "10.42.0.5", t(5)),
            None
        );
        // A path the program does not serve.
        let c = json!({"livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}, "timeoutSeconds": 5}});
        assert_eq!(
            ProbeSpec::of(&c, ProbeKind::Liveness)
                .unwrap()
                .run(&prog, "10.42.0.5", t(5))
                .unwrap(),
            "HTTP probe failed with statuscode: 404"
        );
    }

    #[test]
    fn exec_commands_expand_only_literal_env_values() {
        let c = json!({"env": [{"name": "PORT", "value": "6380"},
                               {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "r", "key": "p"}}}],
            "livenessProbe": {"exec": {"command": ["sh", "-c", "redis-cli -p $(PORT) -a \"$(REDIS_PASSWORD)\" ping $(NOPE)"]}}});
        assert_eq!(
            ProbeSpec::of(&c, ProbeKind::Liveness).unwrap().handler,
            Handler::Exec {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "redis-cli -p 6380 -a \"\" ping $(NOPE)".into()
                ]
            }
        );
        let b: ImageBehaviour = serde_json::from_value(json!({
            "answerTime": [{"time": "3s"}, {"time": "5s", "command": "redis-cli"}, {"time": "100ms", "port": 8080}]
        }))
        .unwrap();
        let ctx = ContainerContext {
            args: Vec::new(),
            files: std::collections::BTreeMap::new(),
            namespace: "n".into(),
            service_account: "default".into(),
            pod_name: "p".into(),
            container: "c".into(),
            command: vec![],
            env: Default::default(),
            node_arch: Arch::Amd64,
        };
        let prog = Program::start(Some(&b), ctx, t(0));
        // A command entry applies to matching commands only, a port entry never to exec probes.
        assert_eq!(
            prog.command_time("sh -c redis-cli ping", t(1)),
            Duration::from_secs(5)
        );
        assert_eq!(
            prog.command_time("cat /tmp/ready", t(1)),
            Duration::from_secs(3)
        );
        assert_eq!(
            prog.answer_time(8080, None, t(1)),
            Duration::from_millis(100)
        );
        assert_eq!(prog.answer_time(9090, None, t(1)), Duration::from_secs(3));
        let c = json!({"readinessProbe": {"exec": {"command": ["sh", "-c", "redis-cli -a \"x\" ping"]}, "timeoutSeconds": 5}});
        assert_eq!(
            ProbeSpec::of(&c, ProbeKind::Readiness)
                .unwrap()
                .run(&prog, "10.42.0.5", t(1))
                .unwrap(),
            r#"command timed out: "sh -c redis-cli -a \"x\" ping" timed out after 5s"#
        );
    }
}
