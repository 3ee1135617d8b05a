//! A real `kubectl` against the simulated API server over TLS.
//!
//! Skipped, with the reason printed, when `/usr/bin/kubectl` is absent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use relapse::sim::{SimCluster, TlsEndpoint};
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
    if !Path::new(KUBECTL).exists() {
        eprintln!("skipped: {KUBECTL} is not installed on this machine");
        return None;
    }
    let cluster = SimCluster::start();
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
    drop(env.cluster);
}
