//! `kubectl auth can-i` and `kubectl --as` against the simulated API server over TLS: RBAC
//! applied with kubectl answers exactly as on a real cluster.
//!
//! Skipped, with the reason printed, when `/usr/bin/kubectl` is absent.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed setup step in a test aborts it with its message"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use relapse::sim::{SimCluster, TlsEndpoint};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";
/// Upper bound for one kubectl invocation.
const DEADLINE: Duration = Duration::from_secs(60);
const KSM: &str = "system:serviceaccount:monitoring:kube-state-metrics";

struct Env {
    _cluster: SimCluster,
    _endpoint: TlsEndpoint,
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
        _cluster: cluster,
        _endpoint: endpoint,
        dir,
        kubeconfig,
    })
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Env {
    async fn run(&self, args: &[&str], stdin: &str) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new(KUBECTL)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("kubectl timed out")
            .unwrap();
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kubectl auth can-i <args>`: its stdout and exit code (0 yes, 1 no).
    async fn can_i(&self, args: &[&str]) -> (String, Option<i32>) {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = self.run(&all, "").await;
        (out.stdout, out.code)
    }
}

/// kube-state-metrics' ClusterRole as the chart renders it without `nodes`, its binding, and a
/// namespaced Role that grants `nodes` in its own namespace only.
const RBAC: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: monitoring
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-state-metrics
  namespace: monitoring
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kube-state-metrics
rules:
  - apiGroups: [""]
    resources: [pods, services]
    verbs: [list, watch]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kube-state-metrics
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kube-state-metrics
subjects:
  - kind: ServiceAccount
    name: kube-state-metrics
    namespace: monitoring
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: nodes-here
  namespace: monitoring
rules:
  - apiGroups: [""]
    resources: [nodes, configmaps]
    verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: nodes-here
  namespace: monitoring
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: nodes-here
subjects:
  - kind: ServiceAccount
    name: kube-state-metrics
"#;

#[tokio::test]
async fn can_i_answers_as_a_real_cluster_after_rbac_is_applied() {
    let Some(env) = env().await else { return };
    // The kubeconfig's user is the administrator.
    assert_eq!(
        env.can_i(&["list", "nodes"]).await,
        ("yes\n".into(), Some(0))
    );
    assert_eq!(
        env.can_i(&["list", "nodes", "--as", KSM]).await,
        ("no\n".into(), Some(1))
    );

    let applied = env.run(&["apply", "-f", "-"], RBAC).await;
    assert_eq!(
        applied.code,
        Some(0),
        "{}{}",
        applied.stdout,
        applied.stderr
    );

    let as_ksm = |args: &[&'static str]| {
        let mut v = args.to_vec();
        v.extend(["--as", KSM]);
        v
    };
    assert_eq!(
        env.can_i(&as_ksm(&["list", "pods", "--all-namespaces"]))
            .await,
        ("yes\n".into(), Some(0))
    );
    assert_eq!(
        env.can_i(&as_ksm(&["watch", "deployments.apps", "-n", "default"]))
            .await,
        ("yes\n".into(), Some(0))
    );
    assert_eq!(
        env.can_i(&as_ksm(&["delete", "pods", "-n", "monitoring"]))
            .await,
        ("no\n".into(), Some(1))
    );
    // The namespaced Role covers configmaps in its namespace, not elsewhere.
    assert_eq!(
        env.can_i(&as_ksm(&["list", "configmaps", "-n", "monitoring"]))
            .await,
        ("yes\n".into(), Some(0))
    );
    assert_eq!(
        env.can_i(&as_ksm(&["list", "configmaps", "-n", "default"]))
            .await,
        ("no\n".into(), Some(1))
    );
    // Listing nodes across the cluster is not what a RoleBinding can grant.
    assert_eq!(
        env.can_i(&as_ksm(&["list", "nodes", "--all-namespaces"]))
            .await,
        ("no\n".into(), Some(1))
    );

    // Any request made as the ServiceAccount is judged the same way.
    let out = env.run(&as_ksm(&["get", "nodes"]), "").await;
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error from server (Forbidden): nodes is forbidden: User \"system:serviceaccount:monitoring:kube-state-metrics\" cannot list resource \"nodes\" in API group \"\" at the cluster scope\n"
    );
    let out = env
        .run(&as_ksm(&["get", "pods", "-A", "-o", "name"]), "")
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}
