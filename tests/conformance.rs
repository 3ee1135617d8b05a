//! The conformance checklist: real clients against `relapse sim up`, each check asserting what
//! the client prints, not only its exit code.
//!
//! One `relapse sim up --pace fast` serves every check; each check works in a namespace of its
//! own. The kubectl checks run once per kubectl binary: the `kubectl` on `PATH`
//! (`conformance::kubectl::<check>`) and every `kubectl.1.NN` next to it or on `PATH`, as
//! installers of several client versions lay them out (`conformance::kubectl-1.NN::<check>`).
//! Each release from 1.27 to 1.33 that is not installed is listed ignored with the reason, as is
//! the default where `kubectl` is missing; the Python check is ignored where the official
//! `kubernetes` client (the version `.ci/run` installs) is not importable by
//! `ci/.venv/bin/python3` (or `$RELAPSE_PYTHON`).

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed setup step in a test aborts it with its message"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

const KUBECTL: &str = "kubectl";
/// The kubectl releases the checklist must pass with; each one missing is listed ignored.
const MINORS: std::ops::RangeInclusive<u32> = 27..=33;
/// The pinned official Python client, as `.ci/run` installs it.
const REQUIREMENTS: &str = include_str!("../ci/conformance/requirements.txt");
/// Upper bound for one client invocation.
const DEADLINE: Duration = Duration::from_secs(90);

struct Server {
    child: Mutex<Child>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// One kubectl and the `relapse sim up` its checks share: started by the first check, stopped
/// after the last. Each kubectl gets a cluster of its own, as the checks' pods would otherwise
/// pile up on the one cluster's nodes until new ones stay Pending.
struct Fleet {
    kubectl: PathBuf,
    server: OnceLock<Result<Server, String>>,
    /// Checks of this kubectl not finished yet.
    remaining: AtomicUsize,
}

impl Fleet {
    fn new(kubectl: PathBuf, checks: usize) -> Arc<Self> {
        Arc::new(Self {
            kubectl,
            server: OnceLock::new(),
            remaining: AtomicUsize::new(checks),
        })
    }

    fn server(&self) -> &Server {
        self.server
            .get_or_init(|| start(&self.kubectl))
            .as_ref()
            .expect("relapse sim up")
    }

    fn stop(&self) {
        if let Some(Ok(server)) = self.server.get() {
            let mut child = server
                .child
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(child.try_wait(), Ok(None)) {
                // SIGTERM: `sim up` removes its kubeconfig and exits.
                // SAFETY: kill(2) on the pid of the child this test started and has not reaped.
                unsafe { libc::kill(child.id().cast_signed(), libc::SIGTERM) };
                let _ = child.wait();
            }
        }
    }
}

/// Counts a check of its fleet as finished when dropped (also when the check panicked).
struct Finished(Arc<Fleet>);

impl Drop for Finished {
    fn drop(&mut self) {
        if self.0.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.stop();
        }
    }
}

/// Held while a check applies the cluster-scoped Widget CRD: two checks creating it at once
/// would race each other's create (`AlreadyExists`).
static CRD: Mutex<()> = Mutex::new(());

fn start(probe: &Path) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let kubeconfig = dir.path().join("kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["sim", "up", "--pace", "fast", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start relapse sim up: {e}"))?;
    let server = Server {
        child: Mutex::new(child),
        dir,
        kubeconfig,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if server.kubeconfig.exists() {
            let out = kubectl_in(&server, probe, &["get", "--raw", "/readyz"], "");
            if out.stdout == "ok" {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err("relapse sim up did not become ready within 60 s".to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn run_with_deadline(mut cmd: Command, stdin: &str, deadline: Duration) -> Out {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(deadline).unwrap_or_else(|_| {
        // SAFETY: kill(2) on the pid of the child this function started.
        unsafe { libc::kill(pid.cast_signed(), libc::SIGKILL) };
        panic!("{cmd:?} did not finish within {deadline:?}")
    });
    let out = out.unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kubectl_command(server: &Server, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("KUBECACHEDIR", server.dir.path().join("cache"))
        .env("HOME", server.dir.path());
    cmd
}

fn kubectl_in(server: &Server, program: &Path, args: &[&str], stdin: &str) -> Out {
    run_with_deadline(kubectl_command(server, program, args), stdin, DEADLINE)
}

/// What a check gets: one kubectl against the shared server, in its namespace.
struct Ctx {
    ns: String,
    fleet: Arc<Fleet>,
    /// The kubectl's minor version, for the few outputs that changed between releases.
    minor: u32,
}

type Check = fn(&Ctx) -> Result<(), Failed>;

impl Ctx {
    fn run(&self, args: &[&str], stdin: &str) -> Out {
        kubectl_in(self.fleet.server(), &self.fleet.kubectl, args, stdin)
    }

    /// Runs kubectl in the check's namespace; it must succeed.
    fn ok(&self, args: &[&str]) -> Result<String, Failed> {
        self.ok_stdin(args, "")
    }

    fn ok_stdin(&self, args: &[&str], stdin: &str) -> Result<String, Failed> {
        let mut full = vec!["-n", &self.ns];
        full.extend_from_slice(args);
        let out = self.run(&full, stdin);
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(format!("kubectl {args:?} failed:\n{}", out.all()).into())
        }
    }

    /// Runs kubectl in the check's namespace; it must fail.
    fn fails(&self, args: &[&str], stdin: &str) -> Result<String, Failed> {
        let mut full = vec!["-n", &self.ns];
        full.extend_from_slice(args);
        let out = self.run(&full, stdin);
        if out.ok {
            Err(format!("kubectl {args:?} succeeded:\n{}", out.all()).into())
        } else {
            Ok(out.all())
        }
    }

    fn apply(&self, manifest: &str) -> Result<String, Failed> {
        self.ok_stdin(&["apply", "-f", "-"], manifest)
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> Result<String, Failed> {
        let expr = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend(["-o", &expr]);
        self.ok(&args)
    }

    /// Applies the Widget CRD (one check at a time) and waits until it is established.
    fn widget_crd(&self) -> Result<(), Failed> {
        let _one = CRD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD)?;
        self.ok(&[
            "wait",
            "--for=condition=Established",
            "crd/widgets.conformance.example.com",
            "--timeout=30s",
        ])?;
        Ok(())
    }

    /// A Deployment of `replicas` pods, waited for until Available.
    fn deployment(&self, name: &str, replicas: u32) -> Result<(), Failed> {
        let out = self.ok(&[
            "create",
            "deployment",
            name,
            "--image=registry.k8s.io/pause:3.10",
            &format!("--replicas={replicas}"),
        ])?;
        has(&out, &format!("deployment.apps/{name} created"))?;
        let out = self.ok(&[
            "wait",
            "--for=condition=Available",
            &format!("deployment/{name}"),
            "--timeout=60s",
        ])?;
        has(&out, &format!("deployment.apps/{name} condition met"))
    }
}

fn has(text: &str, needle: &str) -> Result<(), Failed> {
    if text.contains(needle) {
        Ok(())
    } else {
        Err(format!("expected {needle:?} in:\n{text}").into())
    }
}

fn equal(actual: &str, expected: &str) -> Result<(), Failed> {
    if actual.trim_end() == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, got {actual:?}").into())
    }
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
";

fn crud_core(c: &Ctx) -> Result<(), Failed> {
    has(&c.apply(CONFIGMAP)?, "configmap/settings created")?;
    equal(
        &c.jsonpath(&["configmap", "settings"], "{.data.mode}")?,
        "fast",
    )?;
    let out = c.ok_stdin(
        &["replace", "-f", "-"],
        &CONFIGMAP.replace("mode: fast", "mode: slow"),
    )?;
    has(&out, "configmap/settings replaced")?;
    equal(
        &c.jsonpath(&["configmap", "settings"], "{.data.mode}")?,
        "slow",
    )?;
    let out = c.ok(&["get", "configmaps"])?;
    has(out.lines().next().unwrap_or_default(), "NAME")?;
    has(&out, "settings")?;
    has(
        &c.ok(&["delete", "configmap", "settings"])?,
        "configmap \"settings\" deleted",
    )?;
    let err = c.fails(&["get", "configmap", "settings"], "")?;
    has(
        &err,
        "Error from server (NotFound): configmaps \"settings\" not found",
    )
}

fn crud_apps_batch(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 2)?;
    let out = c.ok(&["get", "deployment", "web"])?;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        return Err(format!("deployment columns: {out}").into());
    }
    has(&out, "2/2")?;
    equal(
        &c.jsonpath(&["deployment", "web"], "{.status.readyReplicas}")?,
        "2",
    )?;
    let rs = c.ok(&["get", "replicasets", "-l", "app=web"])?;
    has(&rs, "web-")?;
    let pods = c.ok(&["get", "pods", "-l", "app=web"])?;
    if pods.matches("Running").count() != 2 {
        return Err(format!("two Running pods expected:\n{pods}").into());
    }
    let out = c.ok(&[
        "create",
        "job",
        "once",
        "--image=registry.k8s.io/pause:3.10",
    ])?;
    has(&out, "job.batch/once created")?;
    let jobs = c.ok(&["get", "jobs"])?;
    let header: Vec<&str> = jobs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"] {
        return Err(format!("job columns: {jobs}").into());
    }
    has(
        &c.ok(&["delete", "job", "once"])?,
        "job.batch \"once\" deleted",
    )?;
    has(
        &c.ok(&["delete", "deployment", "web"])?,
        "deployment.apps \"web\" deleted",
    )
}

fn create_subcommands(c: &Ctx) -> Result<(), Failed> {
    let ns = format!("{}-made", c.ns);
    has(
        &c.ok(&["create", "namespace", &ns])?,
        &format!("namespace/{ns} created"),
    )?;
    has(
        &c.ok(&["create", "configmap", "cfg", "--from-literal=a=1"])?,
        "configmap/cfg created",
    )?;
    equal(&c.jsonpath(&["configmap", "cfg"], "{.data.a}")?, "1")?;
    has(
        &c.ok(&[
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=password=hunter2",
        ])?,
        "secret/sec created",
    )?;
    equal(
        &c.jsonpath(&["secret", "sec"], "{.data.password}")?,
        "aHVudGVyMg==",
    )?;
    has(
        &c.ok(&["create", "deployment", "dep", "--image=nginx:1.27"])?,
        "deployment.apps/dep created",
    )?;
    equal(
        &c.jsonpath(
            &["deployment", "dep"],
            "{.spec.template.spec.containers[0].image}",
        )?,
        "nginx:1.27",
    )?;
    has(
        &c.ok(&["create", "job", "job", "--image=busybox:1.36"])?,
        "job.batch/job created",
    )?;
    has(
        &c.ok(&[
            "create",
            "cronjob",
            "cron",
            "--image=busybox:1.36",
            "--schedule=*/5 * * * *",
        ])?,
        "cronjob.batch/cron created",
    )?;
    equal(
        &c.jsonpath(&["cronjob", "cron"], "{.spec.schedule}")?,
        "*/5 * * * *",
    )?;
    has(
        &c.ok(&["create", "service", "clusterip", "svc", "--tcp=80:8080"])?,
        "service/svc created",
    )?;
    let ip = c.jsonpath(&["service", "svc"], "{.spec.clusterIP}")?;
    if !ip.starts_with("10.43.") {
        return Err(format!("cluster IP {ip} is not from 10.43.0.0/16").into());
    }
    has(
        &c.ok(&["create", "serviceaccount", "robot"])?,
        "serviceaccount/robot created",
    )?;
    has(
        &c.ok(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ])?,
        "role.rbac.authorization.k8s.io/reader created",
    )?;
    has(
        &c.ok(&[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            &format!("--serviceaccount={}:robot", c.ns),
        ])?,
        "rolebinding.rbac.authorization.k8s.io/reader created",
    )?;
    equal(
        &c.jsonpath(&["rolebinding", "reader"], "{.subjects[0].name}")?,
        "robot",
    )?;
    has(
        &c.ok(&["delete", "namespace", &ns])?,
        &format!("namespace \"{ns}\" deleted"),
    )
}

fn apply_client_side(c: &Ctx) -> Result<(), Failed> {
    has(&c.apply(CONFIGMAP)?, "configmap/settings created")?;
    has(&c.apply(CONFIGMAP)?, "configmap/settings unchanged")?;
    has(
        &c.apply(&CONFIGMAP.replace("mode: fast", "mode: slow"))?,
        "configmap/settings configured",
    )?;
    let last = c.jsonpath(
        &["configmap", "settings"],
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    )?;
    has(&last, "\"mode\":\"slow\"")?;
    // kubectl hides managedFields unless asked.
    equal(
        &c.jsonpath(
            &["configmap", "settings", "--show-managed-fields"],
            "{.metadata.managedFields[0].manager}",
        )?,
        "kubectl-client-side-apply",
    )
}

fn apply_server_side(c: &Ctx) -> Result<(), Failed> {
    let out = c.ok_stdin(&["apply", "--server-side", "-f", "-"], CONFIGMAP)?;
    has(&out, "configmap/settings serverside-applied")?;
    equal(
        &c.jsonpath(
            &["configmap", "settings"],
            "{.metadata.managedFields[0].manager}",
        )?,
        "kubectl",
    )?;
    let changed = CONFIGMAP.replace("mode: fast", "mode: slow");
    let err = c.fails(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &changed,
    )?;
    has(
        &err,
        "Apply failed with 1 conflict: conflict with \"kubectl\": .data.mode",
    )?;
    let out = c.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &changed,
    )?;
    has(&out, "configmap/settings serverside-applied")?;
    equal(
        &c.jsonpath(&["configmap", "settings"], "{.data.mode}")?,
        "slow",
    )
}

fn diff(c: &Ctx) -> Result<(), Failed> {
    c.apply(CONFIGMAP)?;
    let same = c.run(&["-n", &c.ns, "diff", "-f", "-"], CONFIGMAP);
    if !same.ok || !same.stdout.is_empty() {
        return Err(format!("an unchanged diff: {}", same.all()).into());
    }
    let changed = c.run(
        &["-n", &c.ns, "diff", "-f", "-"],
        &CONFIGMAP.replace("mode: fast", "mode: slow"),
    );
    // kubectl diff exits 1 when it found differences.
    if changed.ok {
        return Err(format!("diff found nothing: {}", changed.all()).into());
    }
    has(&changed.stdout, "-  mode: fast")?;
    has(&changed.stdout, "+  mode: slow")
}

fn rollout(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 1)?;
    has(
        &c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])?,
        "deployment \"web\" successfully rolled out",
    )?;
    has(
        &c.ok(&[
            "set",
            "image",
            "deployment/web",
            "pause=registry.k8s.io/pause:3.9",
        ])?,
        "deployment.apps/web image updated",
    )?;
    has(
        &c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])?,
        "deployment \"web\" successfully rolled out",
    )?;
    let history = c.ok(&["rollout", "history", "deployment/web"])?;
    has(&history, "REVISION  CHANGE-CAUSE")?;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    if revisions != ["1", "2"] {
        return Err(format!("revisions 1 and 2 expected:\n{history}").into());
    }
    has(
        &c.ok(&["rollout", "undo", "deployment/web"])?,
        "deployment.apps/web rolled back",
    )?;
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])?;
    equal(
        &c.jsonpath(
            &["deployment", "web"],
            "{.spec.template.spec.containers[0].image}",
        )?,
        "registry.k8s.io/pause:3.10",
    )?;
    has(
        &c.ok(&["rollout", "restart", "deployment/web"])?,
        "deployment.apps/web restarted",
    )?;
    let restarted = c.jsonpath(
        &["deployment", "web"],
        "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    )?;
    if restarted.is_empty() {
        return Err("no restartedAt annotation".into());
    }
    has(
        &c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])?,
        "deployment \"web\" successfully rolled out",
    )
}

fn scale(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 1)?;
    has(
        &c.ok(&["scale", "deployment", "web", "--replicas=3"])?,
        "deployment.apps/web scaled",
    )?;
    let out = c.ok(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=3",
        "deployment/web",
        "--timeout=60s",
    ])?;
    has(&out, "deployment.apps/web condition met")?;
    equal(
        &c.jsonpath(&["deployment", "web"], "{.spec.replicas}")?,
        "3",
    )
}

fn label_annotate(c: &Ctx) -> Result<(), Failed> {
    c.apply(CONFIGMAP)?;
    has(
        &c.ok(&["label", "configmap", "settings", "tier=backend"])?,
        "configmap/settings labeled",
    )?;
    // kubectl 1.27 printed the operation's name, `annotate`; kubernetes/kubernetes#118045
    // (released in v1.28.0) made it `annotated` as `label` prints `labeled`.
    let annotated = if c.minor <= 27 {
        "configmap/settings annotate\n"
    } else {
        "configmap/settings annotated\n"
    };
    has(
        &c.ok(&["annotate", "configmap", "settings", "owner=platform"])?,
        annotated,
    )?;
    let selected = c.ok(&["get", "configmaps", "-l", "tier=backend", "-o", "name"])?;
    equal(&selected, "configmap/settings")?;
    equal(
        &c.jsonpath(&["configmap", "settings"], "{.metadata.annotations.owner}")?,
        "platform",
    )?;
    let err = c.fails(&["label", "configmap", "settings", "tier=frontend"], "")?;
    has(
        &err,
        "'tier' already has a value (backend), and --overwrite is false",
    )?;
    has(
        &c.ok(&["label", "configmap", "settings", "tier-"])?,
        "configmap/settings unlabeled",
    )
}

fn expose(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 1)?;
    has(
        &c.ok(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ])?,
        "service/web exposed",
    )?;
    equal(
        &c.jsonpath(&["service", "web"], "{.spec.selector.app}")?,
        "web",
    )?;
    equal(
        &c.jsonpath(&["service", "web"], "{.spec.ports[0].targetPort}")?,
        "8080",
    )?;
    let out = c.ok(&["get", "endpoints", "web"])?;
    has(&out, ":8080")
}

fn logs(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 1)?;
    let pod = c.ok(&["get", "pods", "-l", "app=web", "-o", "name"])?;
    let pod = pod.trim();
    // The pause image writes nothing: a follow sees no line and ends at the request timeout.
    let out = c.run(
        &["-n", &c.ns, "logs", "-f", pod, "--request-timeout=2s"],
        "",
    );
    if !out.stdout.is_empty() {
        return Err(format!("pause logged: {}", out.all()).into());
    }
    let err = c.fails(&["logs", "nope"], "")?;
    // kubectl logs words a missing pod its own way since kubernetes/kubernetes#120111 (kubectl
    // 1.30; 1.29.14 still prints the API server's Status as every command does).
    let missing = if c.minor >= 30 {
        format!(
            "error: error from server (NotFound): pods \"nope\" not found in namespace \"{}\"",
            c.ns
        )
    } else {
        "Error from server (NotFound): pods \"nope\" not found\n".to_string()
    };
    has(&err, &missing)?;
    let err = c.fails(&["logs", pod, "-c", "nope"], "")?;
    has(&err, "container nope is not valid for pod")
}

fn get_watch(c: &Ctx) -> Result<(), Failed> {
    let mut cmd = kubectl_command(
        c.fleet.server(),
        &c.fleet.kubectl,
        &[
            "-n",
            &c.ns,
            "get",
            "configmaps",
            "-w",
            "--request-timeout=20s",
            "-o",
            "name",
        ],
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watch starts with the (empty) list; then the create arrives as an event.
    std::thread::sleep(Duration::from_millis(500));
    let applied = c.apply(CONFIGMAP);
    let line = rx.recv_timeout(Duration::from_secs(15));
    let _ = child.kill();
    let _ = child.wait();
    applied?;
    equal(
        &line.map_err(|_| "no watch event within 15 s")?,
        "configmap/settings",
    )
}

fn describe_events(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 1)?;
    let out = c.ok(&["describe", "deployment", "web"])?;
    for field in [
        "Name:",
        "Namespace:",
        "Replicas:",
        "StrategyType:",
        "Events:",
    ] {
        has(&out, field)?;
    }
    has(&out, "ScalingReplicaSet")?;
    let events = c.ok(&["events"])?;
    let header: Vec<&str> = events
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
        return Err(format!("events columns: {events}").into());
    }
    has(&events, "ScalingReplicaSet")?;
    has(&events, "Scaled up replica set web-")
}

fn delete_foreground(c: &Ctx) -> Result<(), Failed> {
    c.deployment("web", 2)?;
    let out = c.ok(&["delete", "deployment", "web", "--cascade=foreground"])?;
    has(&out, "deployment.apps \"web\" deleted")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rs = c.run(&["-n", &c.ns, "get", "replicasets,pods"], "");
        if rs
            .all()
            .contains(&format!("No resources found in {} namespace.", c.ns))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("dependents left:\n{}", rs.all()).into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn auth_can_i(c: &Ctx) -> Result<(), Failed> {
    equal(&c.ok(&["auth", "can-i", "create", "deployments"])?, "yes")?;
    c.ok(&["create", "serviceaccount", "robot"])?;
    let sa = format!("system:serviceaccount:{}:robot", c.ns);
    let out = c.run(
        &["-n", &c.ns, "auth", "can-i", "list", "pods", "--as", &sa],
        "",
    );
    if out.ok {
        return Err(format!("a bare service account may list pods: {}", out.all()).into());
    }
    equal(&out.stdout, "no")?;
    c.ok(&["create", "role", "reader", "--verb=list", "--resource=pods"])?;
    c.ok(&[
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        &format!("--serviceaccount={}:robot", c.ns),
    ])?;
    equal(
        &c.ok(&["auth", "can-i", "list", "pods", "--as", &sa])?,
        "yes",
    )?;
    let out = c.run(
        &["-n", &c.ns, "auth", "can-i", "delete", "pods", "--as", &sa],
        "",
    );
    equal(&out.stdout, "no")
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.conformance.example.com
spec:
  group: conformance.example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              description: The widget's desired shape.
              properties:
                size:
                  type: integer
                  description: How many gears the widget turns.
                labels:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
";

fn explain(c: &Ctx) -> Result<(), Failed> {
    let out = c.ok(&["explain", "deployment.spec"])?;
    has(&out, "GROUP:      apps")?;
    has(&out, "KIND:       Deployment")?;
    has(&out, "FIELD: spec <DeploymentSpec>")?;
    has(&out, "replicas\t<integer>")?;
    has(&out, "Number of desired pods.")?;
    let out = c.ok(&["explain", "pods.spec.containers"])?;
    has(&out, "FIELD: containers <[]Container>")?;
    has(&out, "image\t<string>")?;
    has(&out, "name\t<string> -required-")?;
    c.widget_crd()?;
    let out = c.ok(&["explain", "widgets.spec.size"])?;
    has(&out, "GROUP:      conformance.example.com")?;
    has(&out, "KIND:       Widget")?;
    has(&out, "FIELD: size <integer>")?;
    has(&out, "How many gears the widget turns.")
}

fn field_validation(c: &Ctx) -> Result<(), Failed> {
    c.widget_crd()?;
    let widget = "apiVersion: conformance.example.com/v1
kind: Widget
metadata:
  name: gear
spec:
  size: 3
  colour: red
  labels: {any: thing}
";
    let err = c.fails(&["apply", "-f", "-"], widget)?;
    has(
        &err,
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.colour\"",
    )?;
    let out = c.run(
        &["-n", &c.ns, "apply", "--validate=warn", "-f", "-"],
        widget,
    );
    has(&out.all(), "Warning: unknown field \"spec.colour\"")?;
    has(&out.stdout, "widget.conformance.example.com/gear created")?;
    equal(
        &c.jsonpath(&["widget", "gear"], "{.spec}")?,
        "{\"labels\":{\"any\":\"thing\"},\"size\":3}",
    )
}

/// The Python interpreter that has the official client, or why there is none.
fn python() -> Result<PathBuf, String> {
    let pin = REQUIREMENTS
        .lines()
        .find_map(|l| l.strip_prefix("kubernetes=="))
        .unwrap_or_default()
        .trim();
    let python = std::env::var_os("RELAPSE_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/.venv/bin/python3"),
        PathBuf::from,
    );
    if !python.exists() {
        return Err(format!(
            "{} is not there (.ci/run creates it with the kubernetes=={pin} client)",
            python.display()
        ));
    }
    let out = Command::new(&python)
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if version == pin {
        Ok(python)
    } else {
        Err(format!(
            "{} has no kubernetes=={pin} client ({})",
            python.display(),
            if version.is_empty() {
                // The last line of the traceback: `ModuleNotFoundError: ...`.
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_string()
            } else {
                version
            }
        ))
    }
}

fn python_client(python: &Path, fleet: &Fleet, ns: &str) -> Result<(), Failed> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/conformance/python_client.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(ns)
        .env("KUBECONFIG", &fleet.server().kubeconfig);
    let out = run_with_deadline(cmd, "", DEADLINE);
    if !out.ok {
        return Err(format!("the Python client failed:\n{}", out.all()).into());
    }
    for line in [
        "ok create_namespaced_deployment web",
        "ok read_namespaced_deployment web ready_replicas=1",
        "ok patch_namespaced_deployment web ready_replicas=2",
        "ok list_namespaced_pod 2 Running",
        "ok watch ADDED configmap/watched",
        "ok delete_namespaced_deployment web",
        "ok read_namespaced_deployment web 404 NotFound",
    ] {
        has(&out.stdout, line)?;
    }
    Ok(())
}

/// The minor version of the `kubectl` on `PATH`, or why it cannot run. A dispatcher that
/// picks a `kubectl.1.NN` by the server's version (Google Cloud SDK's) reports its own release
/// and serves a server of that release itself.
fn default_kubectl() -> Result<u32, String> {
    let out = Command::new(KUBECTL)
        .args(["version", "--client", "-o", "json"])
        .output()
        .map_err(|e| format!("kubectl is not installed ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "kubectl version --client failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let version: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("kubectl version --client -o json: {e}"))?;
    // `"minor": "32+"` for builds past the tag.
    version["clientVersion"]["minor"]
        .as_str()
        .map(|m| m.trim_end_matches('+'))
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("kubectl version --client -o json has no minor: {version}"))
}

/// A kubectl binary and its minor version, or why it is not there.
type Installed = Result<(PathBuf, u32), String>;

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `kubectl.1.NN` binaries by minor: next to the `kubectl` that `PATH` resolves to (through
/// its symlinks), then in each `PATH` directory; the first one found of each release. Also
/// where it looked, for the reason a missing release gives.
fn versioned_kubectls() -> (std::collections::BTreeMap<u32, PathBuf>, String) {
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let resolved = path
        .iter()
        .map(|dir| dir.join(KUBECTL))
        .find(|k| executable(k))
        .and_then(|k| std::fs::canonicalize(k).ok());
    let mut dirs: Vec<PathBuf> = resolved
        .as_ref()
        .and_then(|k| k.parent())
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    dirs.extend(path);
    let mut found = std::collections::BTreeMap::new();
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let minor = name
                .to_str()
                .and_then(|n| n.strip_prefix("kubectl.1."))
                .and_then(|m| m.parse::<u32>().ok());
            if let Some(minor) = minor
                && executable(&entry.path())
            {
                found.entry(minor).or_insert_with(|| entry.path());
            }
        }
    }
    let looked = match resolved {
        Some(k) => format!("next to {} or on PATH", k.display()),
        None => "on PATH".to_string(),
    };
    (found, looked)
}

fn ignored(args: &Arguments, name: &str, reason: &str) -> Trial {
    if !args.list && !args.ignored && !args.include_ignored {
        println!("ignored {name}: {reason}");
    }
    // Run although ignored (`--include-ignored`): it cannot, and must not pass.
    let reason = reason.to_string();
    Trial::test(name, move || {
        Err(Failed::from(format!("cannot run here: {reason}")))
    })
    .with_ignored_flag(true)
}

const TYPO_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
spec:
  replica: 3
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers:
        - name: web
          image: registry.k8s.io/pause:3.10
          imagePullPolicys: Always
          resources: {limits: {cpu: 100m, example.com/any-resource: '1'}}
";

/// Built-in kinds are decoded strictly: kubectl's default `fieldValidation=Strict` refuses a
/// typo with the decoder's text, `--validate=warn` drops it with a warning, `--validate=false`
/// drops it silently; a typo applied to an existing object fails the strategic merge patch.
fn field_validation_builtin(c: &Ctx) -> Result<(), Failed> {
    let err = c.fails(&["apply", "-f", "-"], TYPO_DEPLOYMENT)?;
    has(
        &err,
        "Error from server (BadRequest): error when creating \"STDIN\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replica\", unknown field \"spec.template.spec.containers[0].imagePullPolicys\"",
    )?;
    let out = c.run(
        &["-n", &c.ns, "apply", "--validate=warn", "-f", "-"],
        TYPO_DEPLOYMENT,
    );
    has(&out.all(), "Warning: unknown field \"spec.replica\"")?;
    has(
        &out.all(),
        "Warning: unknown field \"spec.template.spec.containers[0].imagePullPolicys\"",
    )?;
    has(&out.stdout, "deployment.apps/typo created")?;
    equal(
        &c.jsonpath(&["deployment", "typo"], "{.spec.replicas}")?,
        "1",
    )?;
    equal(
        &c.jsonpath(
            &["deployment", "typo"],
            "{.spec.template.spec.containers[0].resources.limits}",
        )?,
        "{\"cpu\":\"100m\",\"example.com/any-resource\":\"1\"}",
    )?;
    // The object exists now: apply patches it, and the patch handler refuses the typo.
    let err = c.fails(&["apply", "-f", "-"], TYPO_DEPLOYMENT)?;
    has(&err, "The request is invalid: patch: Invalid value: \"map[")?;
    has(
        &err,
        "strict decoding error: unknown field \"spec.replica\"",
    )?;
    let out = c.run(
        &["-n", &c.ns, "apply", "--validate=false", "-f", "-"],
        &TYPO_DEPLOYMENT.replace("name: typo\n", "name: quiet\n"),
    );
    if out.all().contains("Warning") {
        return Err(format!("--validate=false warned: {}", out.all()).into());
    }
    has(&out.stdout, "deployment.apps/quiet created")
}

/// A body with a key twice, sent as-is, and a Job's pod template changed after create.
fn duplicates_and_job_immutability(c: &Ctx) -> Result<(), Failed> {
    let path = format!(
        "/api/v1/namespaces/{}/configmaps?fieldValidation=Strict",
        c.ns
    );
    let err = c.fails(
        &["create", "--raw", &path, "-f", "-"],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#,
    )?;
    has(
        &err,
        "Error from server (BadRequest): ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"data.a\"",
    )?;
    let out = c.ok(&[
        "create",
        "job",
        "once",
        "--image=registry.k8s.io/pause:3.10",
    ])?;
    has(&out, "job.batch/once created")?;
    let err = c.fails(
        &["set", "image", "job/once", "once=registry.k8s.io/pause:3.9"],
        "",
    )?;
    has(
        &err,
        "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable",
    )
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // The checks mostly wait: for kubectl to start and for the simulated cluster's controllers.
    // More of them at once than there are cores keeps the checklist of every kubectl short.
    args.test_threads = args
        .test_threads
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok()?.parse().ok())
        .or(Some(6));
    let checks: &[(&str, Check)] = &[
        ("crud-core", crud_core),
        ("crud-apps-batch", crud_apps_batch),
        ("create-subcommands", create_subcommands),
        ("apply-client-side", apply_client_side),
        ("apply-server-side", apply_server_side),
        ("diff", diff),
        ("rollout", rollout),
        ("scale", scale),
        ("label-annotate", label_annotate),
        ("expose", expose),
        ("logs", logs),
        ("get-watch", get_watch),
        ("describe-events", describe_events),
        ("delete-foreground", delete_foreground),
        ("auth-can-i", auth_can_i),
        ("explain", explain),
        ("field-validation", field_validation),
        ("field-validation-builtin", field_validation_builtin),
        (
            "duplicates-job-immutability",
            duplicates_and_job_immutability,
        ),
    ];
    // (trial prefix, namespace prefix, the binary and its minor, or why it is not there)
    let mut kubectls: Vec<(String, String, Installed)> = vec![(
        "kubectl".to_string(),
        "c".to_string(),
        default_kubectl().map(|minor| (PathBuf::from(KUBECTL), minor)),
    )];
    let (found, looked) = versioned_kubectls();
    let mut minors: Vec<u32> = MINORS.chain(found.keys().copied()).collect();
    minors.sort_unstable();
    minors.dedup();
    for minor in minors {
        kubectls.push((
            format!("kubectl-1.{minor}"),
            format!("c1{minor}"),
            found
                .get(&minor)
                .map(|path| (path.clone(), minor))
                .ok_or_else(|| format!("kubectl.1.{minor} is not installed (looked {looked})")),
        ));
    }
    let mut fleets = Vec::new();
    let mut trials = Vec::new();
    for (label, prefix, kubectl) in &kubectls {
        let fleet = kubectl
            .as_ref()
            .ok()
            .map(|(program, _)| Fleet::new(program.clone(), checks.len()));
        fleets.extend(fleet.clone());
        for &(name, check) in checks {
            let trial_name = format!("conformance::{label}::{name}");
            trials.push(match (kubectl, &fleet) {
                (Ok((_, minor)), Some(fleet)) => {
                    let ctx = Ctx {
                        ns: format!("{prefix}-{name}"),
                        fleet: fleet.clone(),
                        minor: *minor,
                    };
                    Trial::test(trial_name, move || {
                        let _finished = Finished(ctx.fleet.clone());
                        ctx.run(&["create", "namespace", &ctx.ns], "");
                        check(&ctx)
                    })
                }
                (Err(reason), _) => ignored(&args, &trial_name, reason),
                (Ok(_), None) => unreachable!("a fleet for every installed kubectl"),
            });
        }
    }
    let name = "conformance::python::kubernetes-client";
    // The Python client's cluster, made ready with the first kubectl installed.
    let probe = kubectls.iter().find_map(|(_, _, k)| k.as_ref().ok());
    trials.push(match (python(), probe) {
        (Ok(python), Some((program, _))) => {
            let fleet = Fleet::new(program.clone(), 1);
            fleets.push(fleet.clone());
            Trial::test(name, move || {
                let _finished = Finished(fleet.clone());
                python_client(&python, &fleet, "c-python")
            })
        }
        (Err(reason), _) => ignored(&args, name, &reason),
        (_, None) => ignored(
            &args,
            name,
            "no kubectl is installed to wait for the server",
        ),
    });
    let conclusion = libtest_mimic::run(&args, trials);
    // Checks left out by a filter never finished: stop what they started.
    for fleet in &fleets {
        fleet.stop();
    }
    conclusion.exit_code()
}
