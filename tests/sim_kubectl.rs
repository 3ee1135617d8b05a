//! A real `kubectl` against the simulated API server over TLS.
//!
//! Skipped, with the reason printed, when `/usr/bin/kubectl` is absent.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use relapse::sim::store::{ContainerKey, Part, WriteOptions};
use relapse::sim::{SimCluster, TlsEndpoint};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";
/// Upper bound for one kubectl invocation.
const DEADLINE: Duration = Duration::from_secs(60);

struct Env {
    cluster: SimCluster,
    endpoint: TlsEndpoint,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn env() -> Option<Env> {
    env_with(SimCluster::start()).await
}

async fn env_with(cluster: SimCluster) -> Option<Env> {
    if !Path::new(KUBECTL).exists() {
        eprintln!("skipped: {KUBECTL} is not installed on this machine");
        return None;
    }
    let endpoint = cluster.serve_tls().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    Some(Env {
        cluster,
        endpoint,
        dir,
        kubeconfig,
    })
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        cmd
    }

    async fn run_stdin(&self, args: &[&str], stdin: &str) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("kubectl timed out")
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, "").await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gear
  namespace: shop
spec:
  size: 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_get_with_real_columns() {
    let Some(env) = env().await else { return };
    let out = env.run_stdin(&["apply", "-f", "-"], MANIFEST).await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("namespace/shop created"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("deployment.apps/web created"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{}",
        out.stdout
    );
    let out = env.run_stdin(&["apply", "-f", "-"], WIDGET).await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("widget.example.com/gear created"),
        "{}",
        out.stdout
    );

    let deploy = env.ok(&["get", "deployments", "-n", "shop"]).await;
    let header: Vec<&str> = deploy.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(
        deploy.lines().nth(1).unwrap().starts_with("web "),
        "{deploy}"
    );
    assert!(deploy.contains("0/2"), "{deploy}");

    let svc = env.ok(&["get", "svc", "-n", "shop"]).await;
    assert!(svc.starts_with("NAME"), "{svc}");
    assert!(svc.contains("ClusterIP") && svc.contains("80/TCP"), "{svc}");

    let widgets = env.ok(&["get", "wd", "-n", "shop"]).await;
    let header: Vec<&str> = widgets.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE"]);
    assert!(
        widgets.contains("gear") && widgets.contains('3'),
        "{widgets}"
    );

    let yaml = env
        .ok(&["get", "configmap", "settings", "-n", "shop", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("mode: fast") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );

    let resources = env.ok(&["api-resources"]).await;
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("widgets") && l.contains("Widget")),
        "{resources}"
    );
}

impl Env {
    fn res(&self, group: &str, plural: &str) -> relapse::sim::resources::ResourceDef {
        self.cluster
            .store()
            .resources()
            .into_iter()
            .find(|r| r.group == group && r.plural == plural)
            .unwrap()
    }

    fn create(&self, group: &str, plural: &str, ns: Option<&str>, obj: Value) -> Value {
        self.cluster
            .store()
            .create(&self.res(group, plural), ns, obj, &WriteOptions::default())
            .unwrap()
    }

    /// A pod with a status written through the status subresource, as a kubelet would.
    fn pod(&self, ns: &str, name: &str, containers: &[&str], status: Value) -> Value {
        let specs: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c, "image": "busybox:1.36"}))
            .collect();
        let pod = self.create(
            "",
            "pods",
            Some(ns),
            json!({"metadata": {"name": name}, "spec": {"containers": specs}}),
        );
        let mut with_status = pod.clone();
        with_status["status"] = status;
        let store = self.cluster.store();
        store
            .update(
                &self.res("", "pods"),
                Some(ns),
                name,
                with_status,
                Part::Status,
                &WriteOptions::default(),
            )
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_status_column_reads_like_a_real_cluster() {
    let Some(env) = env().await else { return };
    env.pod("default", "crashy", &["app"], json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": false,
        "restartCount": 3, "image": "busybox:1.36", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
    env.pod("default", "fine", &["app"], json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true,
        "restartCount": 0, "image": "busybox:1.36", "imageID": "", "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}}]}));
    let out = env.ok(&["get", "pods"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let crashy: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("crashy"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&crashy[..4], ["crashy", "0/1", "CrashLoopBackOff", "3"]);
    let fine: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("fine"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&fine[..4], ["fine", "1/1", "Running", "0"]);
    let labels = env.ok(&["get", "pods", "--show-labels"]).await;
    assert!(
        labels.lines().next().unwrap().contains("LABELS"),
        "{labels}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_a_change() {
    let Some(env) = env().await else { return };
    env.create(
        "",
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "watched"}, "data": {"a": "1"}}),
    );
    let mut child = env
        .command(&[
            "get",
            "configmaps",
            "watched",
            "-w",
            "--request-timeout=50s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.starts_with("NAME"));
    assert!(next_line(&mut lines).await.starts_with("watched"));
    let store = env.cluster.store();
    // kubectl prints the object before it opens its watch; change it only once the watch is open.
    tokio::time::timeout(DEADLINE, async {
        while store.watcher_count() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("kubectl never opened its watch");
    let res = env.res("", "configmaps");
    let mut cm = store.get(&res, Some("default"), "watched").unwrap();
    cm["data"]["b"] = json!("2");
    store
        .update(
            &res,
            Some("default"),
            "watched",
            cm,
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap();
    let changed = next_line(&mut lines).await;
    let cells: Vec<&str> = changed.split_whitespace().collect();
    assert_eq!(&cells[..2], ["watched", "2"], "{changed}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_until_gone() {
    let Some(env) = env().await else { return };
    let out = env.run_stdin(&["apply", "-f", "-"], MANIFEST).await;
    assert!(out.ok, "{}", out.stderr);
    let out = env.ok(&["delete", "deployment", "web", "-n", "shop"]).await;
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    let out = env.run(&["get", "deployment", "web", "-n", "shop"]).await;
    assert!(!out.ok);
    assert_eq!(
        out.stderr.trim(),
        "Error from server (NotFound): deployments.apps \"web\" not found"
    );
    let out = env.ok(&["delete", "namespace", "shop"]).await;
    assert_eq!(out.trim(), "namespace \"shop\" deleted");
    let out = env
        .run(&["get", "configmap", "settings", "-n", "shop"])
        .await;
    assert!(out.stderr.contains("NotFound"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_events() {
    let Some(env) = env().await else { return };
    let pod = env.pod("default", "web-0", &["app"], json!({"phase": "Pending"}));
    env.create("", "events", Some("default"), json!({
        "metadata": {"name": "web-0.17a1"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
        "reason": "BackOff", "type": "Warning", "count": 1,
        "message": "Back-off restarting failed container app in pod web-0_default(uid)",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:00Z"}));
    let out = env.ok(&["describe", "pod", "web-0"]).await;
    assert!(out.contains("Events:"), "{out}");
    assert!(
        out.contains("BackOff") && out.contains("Back-off restarting failed container app"),
        "{out}"
    );
    let events = env.ok(&["get", "events"]).await;
    assert!(
        events.lines().next().unwrap().contains("LAST SEEN"),
        "{events}"
    );
    assert!(events.contains("pod/web-0"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_served() {
    let Some(env) = env().await else { return };
    env.pod(
        "default",
        "talker",
        &["app"],
        json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true,
        "restartCount": 0, "image": "busybox:1.36", "imageID": "", "state": {"running": {}}}]}),
    );
    let key = ContainerKey::new("default", "talker", "app");
    for line in ["starting", "listening on :8080"] {
        env.cluster
            .store()
            .logs()
            .append(&key, env.cluster.store().now(), line);
    }
    assert_eq!(
        env.ok(&["logs", "talker"]).await,
        "starting\nlistening on :8080\n"
    );
    assert_eq!(
        env.ok(&["logs", "talker", "--tail=1"]).await,
        "listening on :8080\n"
    );
    let out = env.run(&["logs", "talker", "-c", "nope"]).await;
    assert!(
        out.stderr
            .contains("container nope is not valid for pod talker"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_get_the_real_message() {
    let Some(env) = env().await else { return };
    let bad = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  strategy:
    type: Recreate
    rollingUpdate: {maxSurge: 1}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"#;
    let out = env.run_stdin(&["apply", "-f", "-"], bad).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("The Deployment \"web\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
        "{}",
        out.stderr
    );
    // `kubectl create configmap` sends protobuf, which this server does not decode; the
    // same object as YAML goes through JSON.
    let out = env
        .run_stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
        )
        .await;
    assert!(
        out.stderr
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_unauthorized() {
    let Some(env) = env().await else { return };
    let text = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let token = &env.endpoint.token;
    std::fs::write(
        &env.kubeconfig,
        text.replace(token.as_str(), "not-the-token"),
    )
    .unwrap();
    let out = env.run(&["get", "namespaces"]).await;
    assert!(!out.ok);
    // kubectl 1.32 fails in discovery first and words it as on a real cluster:
    // `error: You must be logged in to the server (the server has asked for the client to provide credentials)`.
    assert!(
        out.stderr
            .contains("error: You must be logged in to the server ("),
        "{}",
        out.stderr
    );
    let out = env.run(&["get", "--raw", "/api/v1/namespaces"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("Unauthorized"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merge_json_strategic() {
    let Some(env) = env().await else { return };
    env.create(
        "",
        "configmaps",
        Some("default"),
        json!({"metadata": {"name": "p"}, "data": {"a": "1"}}),
    );
    env.ok(&[
        "patch",
        "configmap",
        "p",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ])
    .await;
    env.ok(&[
        "patch",
        "configmap",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"3"}]"#,
    ])
    .await;
    env.ok(&["patch", "configmap", "p", "-p", r#"{"data":{"c":"4"}}"#])
        .await;
    let cm = env
        .cluster
        .store()
        .get(&env.res("", "configmaps"), Some("default"), "p")
        .unwrap();
    assert_eq!(cm["data"], json!({"a": "3", "b": "2", "c": "4"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_apply_patches_instead_of_recreating() {
    let Some(env) = env().await else { return };
    let out = env.run_stdin(&["apply", "-f", "-"], MANIFEST).await;
    assert!(out.ok, "{}", out.stderr);
    let before = env
        .cluster
        .store()
        .get(&env.res("apps", "deployments"), Some("shop"), "web")
        .unwrap();
    let changed = MANIFEST.replace("replicas: 2", "replicas: 4");
    let out = env.run_stdin(&["apply", "-f", "-"], &changed).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("deployment.apps/web configured"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("configmap/settings unchanged"),
        "{}",
        out.stdout
    );
    let after = env
        .cluster
        .store()
        .get(&env.res("apps", "deployments"), Some("shop"), "web")
        .unwrap();
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(after["spec"]["replicas"], 4);
    assert_eq!(after["metadata"]["generation"], 2);
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("no watch output in time")
        .unwrap()
        .unwrap()
}

/// kubectl here dispatches on the server's minor version; every installed kubectl must work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_installed_kubectl_minor_applies_and_gets() {
    for minor in 27..=33 {
        let cluster = SimCluster::builder()
            .minor_version(minor.to_string())
            .start();
        let Some(env) = env_with(cluster).await else {
            return;
        };
        let out = env.run_stdin(&["apply", "-f", "-"], MANIFEST).await;
        assert!(out.ok, "kubectl 1.{minor}: {}\n{}", out.stdout, out.stderr);
        let out = env.ok(&["get", "deploy", "-n", "shop"]).await;
        assert!(
            out.lines().next().unwrap().starts_with("NAME"),
            "kubectl 1.{minor}: {out}"
        );
        let version = env.ok(&["version", "-o", "json"]).await;
        assert!(
            version.contains(&format!("\"minor\": \"{minor}\"")),
            "kubectl 1.{minor}: {version}"
        );
    }
}
