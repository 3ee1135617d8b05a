//! Secret canaries through every output path of `relapse run`: the text failure report on
//! stderr, stdout, the JUnit file, the snapshot written for review, the timeline report
//! (`--report`: each trial's HTML and summary, the index) and log output (`RUST_LOG=debug`). A
//! Secret's `data` and `stringData` values, the password a program reads out of a connection URL
//! in a Secret and connects with, and a generated Postgres password must appear in none of them,
//! neither as written nor base64-encoded.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `data.password`, base64 of [`DATA_PLAIN`].
const DATA_B64: &str = "Q0FOQVJZZGF0YTdmM2E5YzFl";
const DATA_PLAIN: &str = "CANARYdata7f3a9c1e";
/// `stringData.token`, and its base64.
const STRING_PLAIN: &str = "CANARYstring5b2d8e44";
const STRING_B64: &str = "Q0FOQVJZc3RyaW5nNWIyZDhlNDQ=";
/// The password inside `stringData.REDIS_URL`, which the program connects with: a part of a
/// Secret value, read out of it by the client.
const URL_PASSWORD: &str = "CANARYurlpw3c9e7a15";

const MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: canary}
---
apiVersion: v1
kind: Secret
metadata: {name: canary-secret, namespace: canary}
type: Opaque
data:
  password: Q0FOQVJZZGF0YTdmM2E5YzFl
stringData:
  token: CANARYstring5b2d8e44
  REDIS_URL: redis://:CANARYurlpw3c9e7a15@canary-redis:6379/0
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: canary-redis, namespace: canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: canary-redis}}
  template:
    metadata: {labels: {app: canary-redis}}
    spec:
      containers:
        - name: redis
          image: example.com/canary-redis:1
          args: ["--requirepass", "$(REDIS_PASSWORD)"]
          env:
            - name: REDIS_PASSWORD
              valueFrom: {secretKeyRef: {name: canary-secret, key: password}}
---
apiVersion: v1
kind: Service
metadata: {name: canary-redis, namespace: canary}
spec:
  selector: {app: canary-redis}
  ports: [{name: redis, port: 6379}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
        - name: app
          image: example.com/canary-app:1
          env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: canary-secret, key: password}}
          envFrom:
            - secretRef: {name: canary-secret}
"#;

/// A scenario with the canary Secret, a Postgres role whose generated password goes into it,
/// and a program that logs the values it read; `converge` is substituted.
fn scenario(name: &str, converge: &str) -> String {
    format!(
        r#"name: {name}
description: Secret canaries; the program logs what it read from its Secret.
source: "test"
images:
  example.com/canary-app:1:
    logs: ["starting with password {DATA_PLAIN} and token {STRING_PLAIN}"]
    requires:
      - needs: {{connect: {{url: {{env: REDIS_URL}}}}}}
        otherwise: {{log: ["redis connect failed: {{error}}"], retry: 10s, ready: true}}
  example.com/canary-redis:1:
    serves: [{{port: 6379, protocol: redis, password: {{arg: --requirepass}}}}]
postgres:
  roles:
    - name: canary_app
      passwordSecret: {{namespace: canary, name: canary-secret, key: PGPASSWORD}}
setup:
  - apply: {{file: manifests/app.yaml}}
break:
  steps:
    - apply: {{inline: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: broken, namespace: canary}}}}}}
  symptoms:
    - object: {{kind: ConfigMap, name: broken, namespace: canary, matches: {{}}, within: 1m}}
fix:
  - delete: {{object: {{kind: ConfigMap, name: broken, namespace: canary}}}}
{converge}"#
    )
}

/// Fails in converge on the Secret: the report shows what it observed there.
const EXPECT_FAILS: &str = r"converge:
  within: 1m
  settle: 10s
  expect:
    - object:
        kind: Secret
        name: canary-secret
        namespace: canary
        matches:
          data: {password: d3Jvbmc=, PGPASSWORD: d3Jvbmc=}
          stringData: {token: wrong}
";

/// Converges, then fails in the snapshot phase (no snapshot yet) and writes one for review.
const CONVERGES: &str = r"converge:
  within: 5m
  settle: 10s
  expect:
    - object: {kind: Deployment, name: app, namespace: canary, matches: {status: {readyReplicas: 1}}}
snapshot:
  kinds: [Secret, Deployment, Pod]
";

/// What one `relapse run --keep` printed and wrote, and the generated password it used.
struct Run {
    stdout: String,
    stderr: String,
    junit: String,
    /// Every file of the timeline report directory, with its name.
    reports: Vec<(String, String)>,
    password: Vec<u8>,
}

/// Runs one scenario with `--keep`, reads the generated password from the kept cluster, then
/// stops it with Ctrl-C. `None` (printing why) where Postgres cannot run here.
fn run_keeping(dir: &Path, filter: &str) -> Option<Run> {
    let junit = dir.join(format!("{}.xml", filter.replace('/', "_")));
    let reports = dir.join(format!("{}-report", filter.replace('/', "_")));
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["run", "--keep", "--filter", filter, "--junit"])
        .arg(&junit)
        .arg("--report")
        .arg(&reports)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "debug")
        .env_remove("CI")
        .env_remove("INSTA_UPDATE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut err_lines = Vec::new();
    let mut kubeconfig = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        let path = line
            .trim()
            .strip_prefix("export KUBECONFIG=")
            .map(str::to_owned);
        err_lines.push(line);
        if path.is_some() {
            kubeconfig = path;
            break;
        }
    }
    let password = kubeconfig.as_deref().map(read_password);
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    let status = child.wait().expect("relapse exits");
    err_lines.extend(rx.iter());
    let stderr = err_lines.join("\n");
    let stdout = out_reader.join().expect("stdout reader");
    if stderr.contains("ignored: postgres unavailable") {
        eprintln!("skipped: {stderr}");
        return None;
    }
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let password = password.unwrap_or_else(|| panic!("no cluster was kept:\n{stderr}"));
    Some(Run {
        stdout,
        stderr,
        junit: std::fs::read_to_string(&junit).expect("junit written"),
        reports: std::fs::read_dir(&reports)
            .expect("the report directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.is_file())
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("a report file");
                (p.display().to_string(), text)
            })
            .collect(),
        password,
    })
}

/// The generated password, from the Secret on the kept cluster.
fn read_password(kubeconfig: &str) -> Vec<u8> {
    use k8s_openapi::api::core::v1::Secret;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let file = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client, "canary");
        let secret = secrets.get("canary-secret").await.expect("the Secret");
        let data = secret.data.expect("data");
        data.get("PGPASSWORD")
            .expect("the generated password")
            .0
            .clone()
    })
}

fn base64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("base64")
}

/// Every form of every canary that must never be printed or written.
fn forbidden(password: &[u8]) -> Vec<String> {
    let plain = String::from_utf8(password.to_vec()).expect("an alphanumeric password");
    assert_eq!(plain.len(), 32, "the generated password");
    vec![
        DATA_PLAIN.to_owned(),
        DATA_B64.to_owned(),
        STRING_PLAIN.to_owned(),
        STRING_B64.to_owned(),
        URL_PASSWORD.to_owned(),
        base64(password),
        plain,
    ]
}

fn assert_clean(what: &str, text: &str, forbidden: &[String]) {
    for canary in forbidden {
        assert!(
            !text.contains(canary.as_str()),
            "{what} leaks {canary}:\n{text}"
        );
    }
}

#[test]
fn secret_values_and_postgres_passwords_reach_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, text) in [
        ("scenarios/canary/manifests/app.yaml", MANIFEST.to_owned()),
        (
            "scenarios/canary/secret-expect-fails.yaml",
            scenario("secret-expect-fails", EXPECT_FAILS),
        ),
        (
            "scenarios/canary/converges-snapshot.yaml",
            scenario("converges-snapshot", CONVERGES),
        ),
    ] {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    // The failure report shows the Secret's observed values, events, pods and log tails.
    let Some(run) = run_keeping(dir.path(), "canary/secret-expect-fails") else {
        return;
    };
    let forbidden_here = forbidden(&run.password);
    assert!(
        run.stderr
            .contains("FAILED sim::canary/secret-expect-fails in converge"),
        "{}",
        run.stderr
    );
    // The paths under test were taken: the mismatches and the program's log line are there.
    assert!(
        run.stderr
            .contains(".data.PGPASSWORD: expected \"d3Jvbmc=\", observed \"<redacted>\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("starting with password <redacted> and token <redacted>"),
        "{}",
        run.stderr
    );
    // The program connected with the password in its Secret's URL and was refused.
    assert!(
        run.stderr.contains(
            "redis connect failed: WRONGPASS invalid username-password pair or user is disabled."
        ),
        "{}",
        run.stderr
    );
    assert!(run.junit.contains("<failure"), "{}", run.junit);
    // RUST_LOG=debug: the log output is on stderr too.
    assert!(run.stderr.contains(" DEBUG "), "{}", run.stderr);
    assert_clean("stderr", &run.stderr, &forbidden_here);
    assert_clean("stdout", &run.stdout, &forbidden_here);
    assert_clean("the JUnit file", &run.junit, &forbidden_here);
    // The timeline report shows the failure, the run's events and states; the failure line
    // and the JUnit file link to it.
    let report = run
        .reports
        .iter()
        .find(|(name, _)| name.ends_with("secret-expect-fails.html"))
        .unwrap_or_else(|| {
            panic!(
                "no report among {:?}",
                run.reports.iter().map(|r| &r.0).collect::<Vec<_>>()
            )
        });
    assert!(report.1.contains("FAILED in converge"), "{}", report.1);
    assert!(report.1.contains("&lt;redacted&gt;"), "{}", report.1);
    assert!(
        run.stderr.contains(&format!("  report: {}", report.0)),
        "{}",
        run.stderr
    );
    assert!(run.junit.contains(&report.0), "{}", run.junit);
    for (name, text) in &run.reports {
        assert_clean(name, text, &forbidden_here);
    }
    assert!(run.reports.iter().any(|(n, _)| n.ends_with("index.html")));

    // A run that converges writes its snapshot for review: it lists the Secret, not its values.
    let run = run_keeping(dir.path(), "canary/converges-snapshot").expect("postgres ran before");
    let forbidden_here = forbidden(&run.password);
    let pending = dir
        .path()
        .join("snapshots/canary__converges-snapshot.snap.new");
    let snapshot = std::fs::read_to_string(&pending)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", pending.display(), run.stderr));
    assert!(
        snapshot.contains("name: canary-secret") && snapshot.contains("PGPASSWORD: <redacted>"),
        "{snapshot}"
    );
    assert_clean("the snapshot", &snapshot, &forbidden_here);
    assert_clean("stderr", &run.stderr, &forbidden_here);
    assert_clean("stdout", &run.stdout, &forbidden_here);
    assert_clean("the JUnit file", &run.junit, &forbidden_here);
    for (name, text) in &run.reports {
        assert_clean(name, text, &forbidden_here);
    }
}
