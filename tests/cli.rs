//! The `relapse` binary against good and broken scenario files: exit codes and golden output.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::path::Path;
use std::process::{Command, Output};

#[path = "common/image_fields.rs"]
mod image_fields;

fn relapse(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("RELAPSE_KUBECONFIG")
        .output()
        .expect("the relapse binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A minimal valid scenario, with `name` substituted.
fn scenario(name: &str) -> String {
    format!(
        r#"name: {name}
description: A pod crash-loops because its Secret is missing.
source: "test"
setup:
  - apply: {{file: manifests/app.yaml}}
break:
  symptoms:
    - object:
        kind: Pod
        namespace: demo
        labels: {{app: app}}
        matches: {{status: {{phase: Running}}}}
        within: 2m
fix:
  - apply:
      inline: {{apiVersion: v1, kind: Secret, metadata: {{name: s, namespace: demo}}}}
converge:
  within: 5m
  expect:
    - object:
        kind: Deployment
        name: app
        namespace: demo
        matches: {{status: {{readyReplicas: 1}}}}
"#
    )
}

const MANIFEST: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";

fn suite(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// stderr with miette's line wrapping undone, so messages can be matched whole.
fn flat(out: &Output) -> String {
    stderr(out).replace("\n  │ ", " ")
}

fn assert_invalid(out: &Output, location: &str, what: &str) {
    let err = flat(out);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{err}");
    assert!(
        err.contains(location),
        "stderr lacks location {location}:\n{err}"
    );
    assert!(err.contains(what), "stderr lacks {what:?}:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic:\n{err}"
    );
    assert!(err.lines().count() < 40, "more than one screen:\n{err}");
}

#[test]
fn valid_suite_validates_and_lists() {
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 scenario valid (1 manifest objects checked)\n"
    );
    let out = relapse(dir.path(), &["list"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("list", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn typo_in_field_name() {
    let text = scenario("crash").replace("  expect:\n", "  expct:\n");
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:19:3",
        "unknown field `expct`, expected one of `within`, `settle`, `expect`",
    );
    insta::assert_snapshot!("typo", stderr(&out));
}

#[test]
fn an_operator_report_case_without_when_must_come_last() {
    let text = format!(
        "{}images:\n  op:1:\n    operator:\n      - forEach: {{group: g, version: v1, resource: things, kind: Thing}}\n        owns: []\n        reports:\n          - conditions: [{{type: Ready, status: \"False\", reason: NotYet}}]\n          - when: [matches: {{spec: {{$regx: x}}}}]\n            conditions: [{{type: Ready, status: \"True\", reason: Done}}]\n",
        scenario("crash")
    );
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:31:23",
        "this case has no `when`, so it always applies and the cases after it never do: move it last",
    );
    assert!(
        flat(&out).contains("unknown operator `$regx`"),
        "{}",
        flat(&out)
    );
}

#[test]
fn wrong_type() {
    let text = scenario("crash").replace("within: 5m", "within: [5m]");
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:18:11",
        "a duration such as `30s`",
    );
}

#[test]
fn bare_number_duration() {
    let text = scenario("crash").replace("within: 5m", "within: 300");
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:18:11",
        "a bare number has no unit; write `300s`",
    );
}

#[test]
fn bad_indentation() {
    let text = scenario("crash").replace("        labels:", "       labels:");
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:11:14",
        "check the indentation",
    );
    insta::assert_snapshot!("indentation", stderr(&out));
}

#[test]
fn missing_manifest() {
    let dir = suite(&[("scenarios/apps/crash.yaml", &scenario("crash"))]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:5:13",
        "does not exist or cannot be read",
    );
    insta::assert_snapshot!("missing_manifest", stderr(&out));
}

/// Canaries that must never be printed: they sit in files outside the scenario tree.
const OUTSIDE_CANARY: &str = "canary-secret-key-7b1d";
const ENV_CANARY: &str = "canary-ci-token-0123";

fn assert_refused_unread(out: &Output, location: &str, reference: &str) {
    assert_invalid(out, location, "is outside the scenario tree");
    let err = flat(out);
    assert!(err.contains(reference), "the reference is named:\n{err}");
    for canary in [OUTSIDE_CANARY, ENV_CANARY, "root:"] {
        assert!(!err.contains(canary), "printed {canary}:\n{err}");
    }
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(OUTSIDE_CANARY),
        "stdout"
    );
}

#[test]
fn file_references_never_leave_the_scenario_tree() {
    let outside =
        format!("aws_access_key_id = AKIACANARY\naws_secret_access_key = {OUTSIDE_CANARY}\n");
    let dir = suite(&[
        ("credentials", &outside),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let write = |text: &str| {
        std::fs::write(dir.path().join("scenarios/apps/crash.yaml"), text).expect("write")
    };
    let validate = || {
        Command::new(env!("CARGO_BIN_EXE_relapse"))
            .arg("validate")
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("CI_DEPLOY_TOKEN", ENV_CANARY)
            .output()
            .expect("the relapse binary runs")
    };
    // `..` out of the tree, an absolute path, /proc and /etc: refused, named, never read.
    for reference in [
        "../../credentials",
        "../../../../../../../../etc/shadow",
        "/proc/self/environ",
        "/etc/passwd",
    ] {
        write(&scenario("crash").replace("manifests/app.yaml", reference));
        let out = validate();
        assert_refused_unread(&out, "scenarios/apps/crash.yaml:5:13", reference);
    }
    // The same for an include.
    write(&format!(
        "include: [../../credentials]\n{}",
        scenario("crash")
    ));
    let out = validate();
    assert_refused_unread(&out, "scenarios/apps/crash.yaml:1:11", "../../credentials");
    // A symlink inside the tree that points out of it.
    std::os::unix::fs::symlink(
        dir.path().join("credentials"),
        dir.path().join("scenarios/apps/manifests/link.yaml"),
    )
    .expect("symlink");
    write(&scenario("crash").replace("manifests/app.yaml", "manifests/link.yaml"));
    let out = validate();
    assert_refused_unread(
        &out,
        "scenarios/apps/crash.yaml:5:13",
        "manifests/link.yaml",
    );
    // A scenario file that is itself such a symlink is not read either.
    write(&scenario("crash"));
    std::os::unix::fs::symlink(
        dir.path().join("credentials"),
        dir.path().join("scenarios/apps/evil.yaml"),
    )
    .expect("symlink");
    let out = validate();
    let err = flat(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("evil.yaml is outside the scenario tree"),
        "{err}"
    );
    assert!(!err.contains(OUTSIDE_CANARY), "{err}");
}

/// Runs `relapse validate` in `dir`, killing it after 20 s (a hang is a failure, not a stall).
fn validate_within(dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .arg("validate")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("relapse validate hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = suite(&[("scenarios/apps/manifests/app.yaml", MANIFEST)]);
    let path = |rel: &str| dir.path().join(rel);
    let write =
        |text: &str| std::fs::write(path("scenarios/apps/crash.yaml"), text).expect("write");
    // A FIFO used to block `validate` for ever.
    mkfifo(&path("scenarios/apps/manifests/fifo.yaml"));
    write(&scenario("crash").replace("manifests/app.yaml", "manifests/fifo.yaml"));
    let out = validate_within(dir.path());
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:5:13",
        "is not a regular file",
    );
    assert!(flat(&out).contains("fifo.yaml"), "{}", flat(&out));
    // A file past the limit (sparse: it costs no disk) is refused without reading it.
    let big = std::fs::File::create(path("scenarios/apps/manifests/big.yaml")).expect("create");
    big.set_len(4 * 1024 * 1024 + 1).expect("set_len");
    write(&scenario("crash").replace("manifests/app.yaml", "manifests/big.yaml"));
    let out = validate_within(dir.path());
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:5:13",
        "is larger than 4 MiB",
    );
    assert!(flat(&out).contains("big.yaml"), "{}", flat(&out));
    // A FIFO where the walk finds scenario files is not opened either.
    write(&scenario("crash"));
    mkfifo(&path("scenarios/apps/pipe.yaml"));
    let out = validate_within(dir.path());
    let err = flat(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pipe.yaml is not a regular file"), "{err}");
}

#[test]
fn invalid_utf8_is_reported_with_its_position() {
    let dir = suite(&[("scenarios/apps/manifests/app.yaml", MANIFEST)]);
    let path = |rel: &str| dir.path().join(rel);
    // In the scenario file: line 2, after `description: A pod `.
    let mut bad = scenario("crash")
        .replacen("A pod", "A pod \u{1}", 1)
        .into_bytes();
    let at = bad.iter().position(|&c| c == 1).expect("marker");
    bad[at] = 0xff;
    std::fs::write(path("scenarios/apps/crash.yaml"), &bad).expect("write");
    let out = validate_within(dir.path());
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:2:20: invalid UTF-8 (byte 0xFF)",
        "scenario files and manifests are UTF-8",
    );
    // In a manifest: line 4, column 9 (`  name: `, then a lone continuation byte).
    std::fs::write(path("scenarios/apps/crash.yaml"), scenario("crash")).expect("write");
    let mut manifest = MANIFEST.as_bytes().to_vec();
    let at = manifest.len() - "demo\n".len();
    manifest.insert(at, 0x80);
    std::fs::write(path("scenarios/apps/manifests/app.yaml"), &manifest).expect("write");
    let out = validate_within(dir.path());
    assert_invalid(
        &out,
        "scenarios/apps/manifests/app.yaml:4:9: invalid UTF-8 (byte 0x80)",
        "scenario files and manifests are UTF-8",
    );
}

#[test]
fn misspelt_kinds_and_api_versions_are_refused_with_a_suggestion() {
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets}\n  versions:\n    - {name: v1, served: true, storage: true}\n";
    let text = scenario("crash").replace(
        "converge:\n  within: 5m\n  expect:\n",
        "converge:\n  within: 5m\n  expect:\n    - absent:\n        object: {apiVersion: apps/v1, kind: StatefulSett, name: db, namespace: demo}\n    - object: {apiVersion: example.com/v2, kind: Widget, name: w, namespace: demo, matches: {}}\n    - object: {apiVersion: example.com/v1, kind: Widget, name: w, namespace: demo, matches: {}}\n",
    ) + "snapshot:\n  kinds: [Deployment, Pods]\n";
    let text = text.replace(
        "  - apply: {file: manifests/app.yaml}\n",
        "  - apply: {file: manifests/app.yaml}\n  - apply: {file: manifests/crd.yaml}\n",
    );
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
        ("scenarios/apps/manifests/crd.yaml", crd),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:22:39: unknown kind `StatefulSett`",
        "help: did you mean `StatefulSet`?",
    );
    let err = flat(&out);
    assert!(
        err.contains("scenarios/apps/crash.yaml:23:16: kind `Widget` is not served at `example.com/v2`; it is served at `example.com/v1`"),
        "{err}"
    );
    assert!(err.contains("did you mean `example.com/v1`?"), "{err}");
    assert!(
        err.contains("crash.yaml:31:23: unknown kind `Pods`")
            && err.contains("did you mean `Pod`?"),
        "{err}"
    );
    // The CRD-defined kind at its served version passes: exactly three problems.
    assert_eq!(err.matches("  × ").count(), 3, "{err}");
}

#[test]
fn malformed_manifest_points_into_the_manifest() {
    let manifest = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\n# second\napiVersion: v1\nmetadata:\n  name: x\n";
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", manifest),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/manifests/app.yaml:7:1",
        "invalid manifest (document 2): missing `kind`",
    );
}

#[test]
fn duplicate_scenario_name() {
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
        ("scenarios/other/crash.yaml", &scenario("crash")),
        ("scenarios/other/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/other/crash.yaml:1:1",
        "duplicate scenario name `crash`: scenarios/apps/crash.yaml already uses it",
    );
}

#[test]
fn several_problems_are_all_reported() {
    let text = scenario("crash")
        .replace("within: 2m\n", "\n")
        .replace("name: crash", "name: Crash");
    let dir = suite(&[("scenarios/apps/crash.yaml", &text)]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/crash.yaml:1:1",
        "invalid scenario name `Crash`",
    );
    let err = flat(&out);
    assert!(err.contains("object expectation has no deadline"), "{err}");
    assert!(err.contains("does not exist or cannot be read"), "{err}");
}

#[test]
fn connections_need_one_target_and_well_formed_sources() {
    let images = r"images:
  app:1:
    requires:
      - needs: {connect: {to: redis:6379, url: {env: REDIS_URL}, password: {file: pass}}}
        otherwise: {log: [x]}
  redis:7:
    serves: [{port: 6379, protocol: redis, password: {env: A, arg: --requirepass}}]
setup:";
    let text = scenario("conn").replacen("setup:", images, 1);
    let dir = suite(&[
        ("scenarios/apps/conn.yaml", &text),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["validate"]);
    assert_invalid(
        &out,
        "scenarios/apps/conn.yaml",
        "a connection goes to exactly one of `to` (a Service or host:port) or `url`",
    );
    let err = flat(&out);
    assert!(
        err.contains("`file` is the absolute path the container sees"),
        "{err}"
    );
    assert!(
        err.contains("a configuration value is read from exactly one of `env`, `arg` or `file`"),
        "{err}"
    );
}

#[test]
fn run_executes_the_shipped_scenarios_on_the_sim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let junit = tempfile::NamedTempFile::new().expect("temp file");
    let junit_path = junit.path().to_str().expect("utf-8 path").to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["run", "--filter", "temporal/", "--junit", &junit_path])
        .current_dir(root)
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .output()
        .expect("the relapse binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    // Columns are padded to the longest trial name (mutants are longer): compare fields.
    let row = |name: &str| -> Option<Vec<&str>> {
        stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name))
    };
    assert_eq!(
        row("sim::temporal/temporal-namespace-missing").map(|f| f[1..3].to_vec()),
        Some(vec![
            "setup,break,fix,converge,snapshot,counterfactual",
            "passed"
        ]),
        "{stdout}"
    );
    assert_eq!(
        row("sim::temporal/temporal-namespace-missing::mutant::restart-the-runtime")
            .map(|f| f[1..3].to_vec()),
        Some(vec!["mutant", "passed"]),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(junit.path()).expect("junit written");
    assert!(
        xml.contains(
            r#"<testcase name="sim::temporal/temporal-namespace-missing" classname="sim""#
        ),
        "{xml}"
    );
}

#[test]
fn run_on_an_unavailable_backend_reports_ignored_and_a_bad_filter_is_an_error() {
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["run", "--backend", "kubeconfig"])
        .current_dir(dir.path())
        .env_remove("RELAPSE_KUBECONFIG")
        .output()
        .expect("the relapse binary runs");
    // Nothing failed: the trial is ignored with the reason, as `cargo test` reports it.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kubeconfig::apps/crash  ignored: the kubeconfig backend runs against an existing cluster: pass --kubeconfig PATH or set RELAPSE_KUBECONFIG"),
        "{}",
        stderr(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ignored"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = relapse(
        dir.path(),
        &[
            "run",
            "--backend",
            "kubeconfig",
            "--kubeconfig",
            "missing.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("error: --kubeconfig missing.yaml: no such file"),
        "{}",
        stderr(&out)
    );
    let out = relapse(dir.path(), &["run", "--filter", "nothing-matches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no scenario matches the filter `nothing-matches`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failing_scenario_exits_1_with_details() {
    // The Deployment the scenario expects is never created: converge must fail, naming it.
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let out = relapse(dir.path(), &["run"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("FAILED sim::apps/crash in break: could not reproduce: symptom 1 did not appear within 2m"), "{err}");
    assert!(
        err.contains("break.symptoms[0]: object Pod demo/app=app"),
        "{err}"
    );
}

#[test]
fn new_scaffolds_a_valid_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = relapse(
        dir.path(),
        &["new", "redis-auth-mismatch", "--area", "data"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = dir.path().join("scenarios/data/redis-auth-mismatch.yaml");
    let text = std::fs::read_to_string(&path).expect("scaffold written");
    assert!(text.starts_with("# yaml-language-server: $schema=../scenario.schema.json"));
    let out = relapse(dir.path(), &["validate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the scaffold must validate:\n{}",
        stderr(&out)
    );
    // Never overwrites.
    let out = relapse(
        dir.path(),
        &["new", "redis-auth-mismatch", "--area", "data"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"));
    let out = relapse(dir.path(), &["new", "Bad_Name"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Uncomments the commented-out examples in the `images:` block of a scaffold: comment lines
/// whose text is YAML (`key: ...`, `- ...`); explanations are sentences and stay comments.
fn uncomment_image_examples(text: &str) -> String {
    let yaml_line = |t: &str| {
        let t = t.trim_start();
        let key = t.trim_start_matches("- ");
        t.starts_with("- ")
            || key.split_once(':').is_some_and(|(k, v)| {
                !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric())
                    && (v.is_empty() || v.starts_with(' '))
            })
    };
    let mut in_images = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("images:") {
            in_images = true;
        } else if !line.is_empty() && !line.starts_with(' ') && !line.starts_with('#') {
            in_images = false;
        }
        let indent = line.len() - line.trim_start().len();
        match line.trim_start().strip_prefix("# ") {
            Some(rest) if in_images && indent > 0 && yaml_line(rest) => {
                out.push(format!("{}{rest}", &line[..indent]));
            }
            _ => out.push(line.to_owned()),
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn new_scaffolds_every_image_behaviour_field_and_its_examples_validate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = relapse(dir.path(), &["new", "app-token-missing"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = dir
        .path()
        .join("scenarios/workloads/app-token-missing.yaml");
    let text = std::fs::read_to_string(&path).expect("scaffold written");
    let uncommented = uncomment_image_examples(&text);
    assert_ne!(
        uncommented, text,
        "the scaffold shows commented-out image fields"
    );
    let block = uncommented
        .split("\nimages:\n")
        .nth(1)
        .and_then(|s| s.split("\nsetup:").next())
        .expect("an images: block before setup:");
    let (fields, _) = image_fields::image_schema_names();
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !block.contains(&format!("{f}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "src/cli/template.yaml does not show {missing:?} under images:"
    );
    // With every example switched on the file is still a valid scenario.
    std::fs::write(&path, &uncommented).expect("write");
    let out = relapse(dir.path(), &["validate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the uncommented examples must validate:\n{}\n{uncommented}",
        stderr(&out)
    );
}

#[test]
fn no_scenarios_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = relapse(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no scenario at scenarios: no such file or directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_subcommand_and_help() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = relapse(dir.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = relapse(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn shipped_scenarios_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = relapse(root, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn gc_without_k3d_checks_no_clusters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .arg("gc")
        .env("PATH", dir.path())
        .env("TMPDIR", dir.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the relapse binary runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "k3d is not on PATH: no k3d clusters to check\n"
    );
}

/// Spawns `relapse args` with TMPDIR `tmp` (and no XDG_RUNTIME_DIR), waiting for the line
/// that starts with `export KUBECONFIG=` on stdout (`sim up`) or stderr (`run --keep`).
fn spawn_serving(
    dir: &Path,
    tmp: &Path,
    args: &[&str],
) -> (std::process::Child, std::path::PathBuf) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
            return (child, dir.join(path));
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "relapse {args:?} printed no kubeconfig:\n{}",
        seen.join("\n")
    );
}

/// The private directories of relapse processes in `tmp`.
fn private_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .expect("read tmp")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("relapse-"))
        .collect()
}

fn gc_in(tmp: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .arg("gc")
        .env("PATH", tmp)
        .env("TMPDIR", tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("the relapse binary runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kubeconfigs_go_on_sigterm_and_sighup_and_gc_cleans_up_after_sigkill() {
    use std::os::unix::fs::PermissionsExt;
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let tmp = tmp.path();
    let sim_up = |args: &[&str]| {
        let mut all = vec![
            "sim",
            "up",
            "--pace",
            "fast",
            "--kubeconfig",
            "sim.kubeconfig",
        ];
        all.extend_from_slice(args);
        spawn_serving(dir.path(), tmp, &all)
    };
    // `sim up` and `run --keep` remove their kubeconfig on SIGTERM and SIGHUP as on Ctrl-C.
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        let (mut child, kubeconfig) = sim_up(&[]);
        assert!(kubeconfig.exists());
        signal(&child, sig);
        assert!(child.wait().expect("exits").success());
        assert!(!kubeconfig.exists(), "signal {sig}: kubeconfig left behind");
        let (mut child, kubeconfig) = spawn_serving(dir.path(), tmp, &["run", "--keep"]);
        assert!(kubeconfig.exists());
        signal(&child, sig);
        assert_eq!(child.wait().expect("exits").code(), Some(1));
        assert!(
            !kubeconfig.exists(),
            "signal {sig}: kept kubeconfig left behind"
        );
        assert_eq!(private_dirs(tmp), Vec::<String>::new());
    }
    // After a SIGKILL, gc removes what the process left: the file it wrote, the file a
    // kept cluster's kubeconfig is in, and puts back the file --force replaced.
    let precious = dir.path().join("sim.kubeconfig");
    let original = "apiVersion: v1\nkind: Config\ncurrent-context: prod\n";
    for force in [false, true] {
        if force {
            std::fs::write(&precious, original).expect("write");
            std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
        let (mut child, kubeconfig) = sim_up(if force { &["--force"] } else { &[] });
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        assert!(kubeconfig.exists(), "SIGKILL cannot be handled");
        assert_eq!(private_dirs(tmp).len(), 1);
        let report = gc_in(tmp);
        if force {
            assert!(
                report.contains(&format!("restored {}", precious.display())),
                "{report}"
            );
            assert_eq!(
                std::fs::read_to_string(&precious).expect("restored"),
                original
            );
            let mode = std::fs::metadata(&precious)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644);
        } else {
            assert!(
                report.contains(&format!("removed {}", precious.display())),
                "{report}"
            );
            assert!(!kubeconfig.exists(), "{report}");
        }
        assert!(report.contains("has exited"), "{report}");
        assert_eq!(private_dirs(tmp), Vec::<String>::new(), "{report}");
    }
    let (mut child, kubeconfig) = spawn_serving(dir.path(), tmp, &["run", "--keep"]);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    assert!(kubeconfig.exists());
    let report = gc_in(tmp);
    assert!(!kubeconfig.exists(), "{report}");
    assert_eq!(private_dirs(tmp), Vec::<String>::new(), "{report}");
    // The directories of running processes are kept.
    std::fs::remove_file(&precious).expect("remove");
    let (mut child, kubeconfig) = sim_up(&[]);
    let report = gc_in(tmp);
    assert!(!report.contains("relapse-"), "{report}");
    assert!(kubeconfig.exists());
    assert_eq!(private_dirs(tmp).len(), 1);
    signal(&child, libc::SIGINT);
    assert!(child.wait().expect("exits").success());
    assert!(!kubeconfig.exists());
}

#[test]
fn keep_serves_the_failed_cluster_until_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let kubectl = Path::new("/usr/bin/kubectl");
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["run", "--keep"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut kubeconfig = None;
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(path.to_owned());
            break;
        }
    }
    let kubeconfig = kubeconfig.expect("relapse printed the kubeconfig of the kept cluster");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig)
            .expect("kubeconfig written")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    if kubectl.exists() {
        let out = Command::new(kubectl)
            .args(["get", "namespace", "demo", "-o", "name"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .output()
            .expect("kubectl runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "namespace/demo",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Ctrl-C stops it, removes the kubeconfig and reports the failure.
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = child.wait().expect("relapse exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        !Path::new(&kubeconfig).exists(),
        "kubeconfig {kubeconfig} left behind"
    );
}

#[test]
fn keep_writes_its_kubeconfig_into_a_private_directory() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let tmp = tempfile::tempdir().expect("temp dir");
    // Another user plants a symlink at the name --keep used to write, pointing at a victim.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").expect("write");
    std::os::unix::fs::symlink(&victim, tmp.path().join("relapse-apps__crash.kubeconfig"))
        .expect("symlink");
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["run", "--keep"])
        .current_dir(dir.path())
        .env("TMPDIR", tmp.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut kubeconfig = None;
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(std::path::PathBuf::from(path));
            break;
        }
    }
    let kubeconfig = kubeconfig.expect("relapse printed the kubeconfig of the kept cluster");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    let private = kubeconfig.parent().expect("a directory").to_owned();
    assert_eq!(
        private.parent(),
        Some(tmp.path()),
        "{}",
        kubeconfig.display()
    );
    let name = private
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a name");
    let pid = child.id().to_string();
    assert!(
        name.starts_with(&format!("relapse-{pid}-"))
            && name.len() > "relapse--".len() + pid.len() + 6,
        "{name}: named after the process, with a random part"
    );
    let mode = |p: &Path| {
        std::fs::symlink_metadata(p)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&private), 0o700);
    assert_eq!(mode(&kubeconfig), 0o600);
    signal(&child, libc::SIGINT);
    assert_eq!(child.wait().expect("relapse exits").code(), Some(1));
    assert!(!private.exists(), "{} left behind", private.display());
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
}

/// A scenario that passes on any cluster: a ConfigMap is missing until the fix creates it.
const PORTABLE: &str = r#"name: web
description: A ConfigMap the app needs is missing.
source: "test"
setup:
  - apply: {file: manifests/app.yaml}
break:
  symptoms:
    - absent:
        object: {kind: ConfigMap, name: cfg, namespace: demo}
        within: 5s
fix:
  - apply:
      inline: {apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: demo}, data: {k: v}}
converge:
  within: 5s
  settle: 1s
  expect:
    - object: {kind: ConfigMap, name: cfg, namespace: demo, matches: {data: {k: v}}}
snapshot: {enabled: false}
"#;

/// Applies a ClusterRole: a cluster-scoped write.
const CLUSTER_SCOPED: &str = r#"name: rbac
description: A ClusterRole is missing.
source: "test"
setup:
  - apply:
      inline: {apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: reader}, rules: []}
break:
  symptoms:
    - absent:
        object: {kind: ConfigMap, name: cfg, namespace: demo}
        within: 5s
fix:
  - apply:
      inline: {apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: demo}}
converge:
  within: 5s
  expect:
    - object: {kind: ConfigMap, name: cfg, namespace: demo, matches: {data: {k: v}}}
snapshot: {enabled: false}
"#;

#[test]
fn command_line_mistakes_are_refused_before_anything_runs() {
    let dir = suite(&[
        (
            "scenarios/apps/web.yaml",
            &PORTABLE.replace("snapshot: {enabled: false}\n", ""),
        ),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let refused = |args: &[&str], what: &str| {
        let started = std::time::Instant::now();
        let out = relapse(dir.path(), args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
        assert!(
            !err.contains("sim::apps/web"),
            "{args:?} ran a scenario: {err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    };
    // An unwritable --junit path is found before the run, not after it.
    refused(
        &["run", "--junit", "no-such-dir/out.xml"],
        "error: --junit no-such-dir/out.xml: cannot write there:",
    );
    assert!(!dir.path().join("no-such-dir").exists());
    // --kubeconfig and --context choose the cluster of the kubeconfig backend only.
    refused(
        &["run", "--context", "foo"],
        "error: --context chooses the cluster of --backend kubeconfig; the sim backend makes its own",
    );
    refused(
        &["run", "--kubeconfig", "/etc/passwd"],
        "error: --kubeconfig chooses the cluster of --backend kubeconfig; the sim backend makes its own",
    );
    refused(
        &["run", "--backend", "k3d", "--kubeconfig", "/etc/passwd"],
        "error: --kubeconfig chooses the cluster of --backend kubeconfig; the k3d backend makes its own",
    );
    // A kubeconfig that cannot be read: the OS error once.
    let out = relapse(
        dir.path(),
        &[
            "gc",
            "--namespaces",
            "--kubeconfig",
            "/nonexistent.kubeconfig",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    // The failure header names the snapshot where --snapshots put it.
    let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args([
            "run",
            "--snapshots",
            "elsewhere/snaps",
            "--filter",
            "apps/web",
        ])
        .current_dir(dir.path())
        .env_remove("CI")
        .env_remove("INSTA_UPDATE")
        .output()
        .expect("the relapse binary runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in snapshot: no snapshot elsewhere/snaps/apps__web.snap yet"),
        "{err}"
    );
    assert!(
        dir.path()
            .join("elsewhere/snaps/apps__web.snap.new")
            .exists()
    );
}

#[test]
fn rust_log_selects_log_output() {
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let run = |rust_log: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relapse"));
        command
            .args(["run", "--filter", "apps/web"])
            .current_dir(dir.path())
            .env("NO_COLOR", "1");
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let out = command.output().expect("the relapse binary runs");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    let logged = run(Some("relapse=debug"));
    assert!(
        logged
            .lines()
            .any(|l| l.contains(" DEBUG ") && l.contains("relapse::")),
        "{logged}"
    );
    let quiet = run(None);
    assert!(!quiet.contains("DEBUG"), "{quiet}");
}

/// `relapse sim up` in the background until dropped (SIGINT, then wait).
struct SimUp {
    child: std::process::Child,
    kubeconfig: std::path::PathBuf,
}

impl SimUp {
    fn start(dir: &Path, pace: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let kubeconfig = dir.join("sim.kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
            .args(["sim", "up", "--pace", pace, "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the relapse binary runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
            if line.starts_with("export KUBECONFIG=") {
                return Self { child, kubeconfig };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sim up printed no kubeconfig");
    }

    fn interrupt(&mut self) -> std::io::Result<std::process::ExitStatus> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        self.child.wait()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.interrupt().expect("sim up exits")
    }
}

impl Drop for SimUp {
    /// Also stops the server when a test panics.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.interrupt();
        }
    }
}

/// Starts `relapse sim up` with `args`, waiting until it serves; `None` when it exits first
/// (with its output).
fn start_sim_up(dir: &Path, args: &[&str]) -> Result<std::process::Child, Output> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["sim", "up", "--pace", "fast"])
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        if line.starts_with("export KUBECONFIG=") {
            return Ok(child);
        }
    }
    Err(child.wait_with_output().expect("sim up exits"))
}

fn signal(child: &std::process::Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, signal) };
}

#[test]
fn sim_up_never_overwrites_a_kubeconfig_it_did_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let precious = dir.path().join("precious.kubeconfig");
    let original = "apiVersion: v1\nkind: Config\ncurrent-context: prod\n";
    std::fs::write(&precious, original).expect("write");
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let arg = precious.to_str().expect("utf-8");
    // Refused, and left as it was.
    let out = match start_sim_up(dir.path(), &["--kubeconfig", arg]) {
        Ok(mut child) => {
            signal(&child, libc::SIGINT);
            let _ = child.wait();
            panic!("sim up replaced an existing kubeconfig without --force");
        }
        Err(out) => out,
    };
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already exists; pass --force to use it for this session"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&precious).expect("kept"), original);
    // With --force it is used for the session and restored, content and mode, afterwards.
    let mut child = start_sim_up(dir.path(), &["--kubeconfig", arg, "--force"])
        .unwrap_or_else(|out| panic!("{}", stderr(&out)));
    let during = std::fs::read_to_string(&precious).expect("readable");
    assert!(during.contains("current-context: relapse-sim"), "{during}");
    assert_eq!(
        std::fs::metadata(&precious)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    signal(&child, libc::SIGINT);
    assert!(child.wait().expect("exits").success());
    assert_eq!(
        std::fs::read_to_string(&precious).expect("restored"),
        original
    );
    assert_eq!(
        std::fs::metadata(&precious)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    // A symlink is never written through, --force or not.
    let link = dir.path().join("link.kubeconfig");
    std::os::unix::fs::symlink(&precious, &link).expect("symlink");
    for force in [false, true] {
        let mut args = vec!["--kubeconfig", link.to_str().expect("utf-8")];
        if force {
            args.push("--force");
        }
        let out = start_sim_up(dir.path(), &args).map(|mut c| {
            signal(&c, libc::SIGINT);
            let _ = c.wait();
        });
        assert!(
            out.is_err(),
            "sim up wrote through a symlink (--force: {force})"
        );
        assert_eq!(std::fs::read_to_string(&precious).expect("kept"), original);
    }
}

#[test]
fn the_kubeconfig_backend_runs_against_sim_up_and_refuses_cluster_scoped_writes() {
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
        ("scenarios/rbac/rbac.yaml", CLUSTER_SCOPED),
    ]);
    let sim = SimUp::start(dir.path(), "fast");
    let kubeconfig = sim.kubeconfig.to_string_lossy().into_owned();
    let out = relapse(
        dir.path(),
        &[
            "run",
            "--backend",
            "kubeconfig",
            "--kubeconfig",
            &kubeconfig,
            "--filter",
            "apps/",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("kubeconfig::apps/web  passed"), "{err}");

    let out = relapse(
        dir.path(),
        &[
            "run",
            "--backend",
            "kubeconfig",
            "--kubeconfig",
            &kubeconfig,
            "--filter",
            "rbac/",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "refusing to apply cluster-scoped clusterroles.rbac.authorization.k8s.io \"reader\""
        ),
        "{err}"
    );
    assert!(err.contains("--allow-cluster-scoped"), "{err}");

    // Nothing of either run is left: no namespace but the cluster's own.
    if Path::new("/usr/bin/kubectl").exists() {
        let out = Command::new("/usr/bin/kubectl")
            .args(["get", "namespaces", "-o", "name"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .output()
            .expect("kubectl runs");
        let names = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!names.contains("relapse-"), "left behind:\n{names}");
    }
    let status = sim.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        !Path::new(&kubeconfig).exists(),
        "sim up left its kubeconfig"
    );
}

#[test]
fn gc_namespaces_deletes_what_killed_runs_left_on_the_cluster() {
    use relapse::backend::k3d::Owner;
    let kubectl = Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!(
            "skipped: kubectl is not at /usr/bin/kubectl; this test creates namespaces with it"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = SimUp::start(dir.path(), "fast");
    let kubeconfig = sim.kubeconfig.to_string_lossy().into_owned();
    let dead = {
        let mut child = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep runs");
        let owner = Owner::of_pid(child.id()).expect("sleep is running");
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
        owner.token()
    };
    let namespace = |name: &str, owner: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{app.kubernetes.io/managed-by: relapse}}\n  annotations: {{relapse.dev/owner: \"{owner}\"}}\n"
        )
    };
    let manifest = dir.path().join("namespaces.yaml");
    std::fs::write(
        &manifest,
        [
            namespace("relapse-k1lled-app", &dead),
            namespace("relapse-runs01-app", &Owner::current().token()),
        ]
        .join("---\n"),
    )
    .expect("write manifest");
    let kubectl_out = |args: &[&str]| {
        let out = Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kubectl_out(&["apply", "-f", &manifest.to_string_lossy()]);

    // No k3d on PATH: with --namespaces that is a note, not an error.
    let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["gc", "--namespaces", "--kubeconfig", &kubeconfig])
        .env("PATH", dir.path())
        .output()
        .expect("the relapse binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", stderr(&out));
    let dead_pid = Owner::parse(&dead).expect("token parses").pid;
    assert_eq!(
        stdout,
        format!(
            "k3d is not on PATH: no k3d clusters to check\n\
             deleted namespace relapse-k1lled-app: process {dead_pid} has exited\n\
             kept namespace relapse-runs01-app: in use by {}\n\
             1 namespaces deleted, 1 kept, 0 failed\n",
            Owner::current()
        )
    );
    let left = kubectl_out(&[
        "get",
        "namespaces",
        "-o",
        "jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name} terminating{\"\\n\"}{end}{range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    assert!(left.contains("relapse-runs01-app"), "{left}");
    assert!(
        !left.lines().any(|l| l == "relapse-k1lled-app")
            || left.contains("relapse-k1lled-app terminating"),
        "{left}"
    );

    // --kubeconfig belongs to --namespaces.
    let out = relapse(dir.path(), &["gc", "--kubeconfig", &kubeconfig]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--namespaces"), "{}", stderr(&out));
    let status = sim.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn run_on_k3d_without_a_docker_daemon_is_ignored_naming_the_socket() {
    use std::os::unix::fs::PermissionsExt;
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    // A k3d on PATH that must never be called.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let k3d = bin.join("k3d");
    std::fs::write(
        &k3d,
        "#!/bin/sh\necho called >> \"$(dirname \"$0\")/called\"\nexit 1\n",
    )
    .expect("write k3d");
    std::fs::set_permissions(&k3d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.path().join("docker.sock");
    let run = |require: &str| {
        Command::new(env!("CARGO_BIN_EXE_relapse"))
            .args(["run", "--backend", "k3d"])
            .current_dir(dir.path())
            .env("PATH", &bin)
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("RELAPSE_REQUIRE_K3D", require)
            .output()
            .expect("the relapse binary runs")
    };
    let out = run("0");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "k3d::apps/crash  ignored: the k3d backend needs a running Docker daemon: no docker daemon at {}: ",
            socket.display()
        )),
        "{err}"
    );
    // Where k3d must run (the nightly jobs), the same trial fails with the reason.
    let out = run("1");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("RELAPSE_REQUIRE_K3D=1, but the k3d backend needs a running Docker daemon"),
        "{err}"
    );
    assert!(!bin.join("called").exists(), "k3d was called");
}

/// The verdict of each trial in a JUnit file: `passed`, `failed` or `ignored`.
fn junit_verdicts(xml: &str) -> std::collections::BTreeMap<String, &'static str> {
    let mut out = std::collections::BTreeMap::new();
    for case in xml.split("<testcase ").skip(1) {
        let Some(name) = case
            .strip_prefix("name=\"")
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let body = case.split("</testcase>").next().unwrap_or(case);
        let verdict = if body.contains("<failure") {
            "failed"
        } else if body.contains("<skipped") {
            "ignored"
        } else {
            "passed"
        };
        out.insert(name.to_owned(), verdict);
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn relapse_run_and_the_test_harness_give_the_same_verdicts() {
    use relapse::backend::BackendKind;
    use relapse::run::outcome::Verdict;
    use relapse::run::snapshot_file::UpdateMode;
    use relapse::run::{KubeconfigTarget, Plan, RunOptions, Runner, SnapshotSettings};
    use std::sync::Arc;

    let skipped = format!(
        "{}backends:\n  sim:\n    skip: reproduced on real clusters only\n",
        scenario("skipped")
    );
    let dir = suite(&[
        ("scenarios/apps/crash.yaml", &scenario("crash")),
        ("scenarios/apps/skipped.yaml", &skipped),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Two scenarios that pass, with their committed snapshots.
    copy_dir(
        &repo.join("scenarios/secrets"),
        &dir.path().join("scenarios/secrets"),
    );
    let snapshots = repo.join("snapshots");
    let scenarios = dir.path().join("scenarios");
    for backend in [BackendKind::Sim, BackendKind::Kubeconfig] {
        let junit = dir.path().join(format!("{backend}.xml"));
        let out = Command::new(env!("CARGO_BIN_EXE_relapse"))
            .args(["run", "--backend", backend.as_str(), "--junit"])
            .arg(&junit)
            .arg("--snapshots")
            .arg(&snapshots)
            .arg(&scenarios)
            .current_dir(dir.path())
            .env("CI", "true")
            .env_remove("RELAPSE_KUBECONFIG")
            .env_remove("RELAPSE_REQUIRE_K3D")
            .output()
            .expect("the relapse binary runs");
        let cli = junit_verdicts(&std::fs::read_to_string(&junit).expect("junit written"));

        let (loaded, errors) =
            relapse::scenario::load_suite(std::slice::from_ref(&scenarios)).expect("loads");
        assert!(errors.is_empty());
        let loaded: Vec<_> = loaded.into_iter().map(Arc::new).collect();
        let options = RunOptions {
            snapshots: SnapshotSettings {
                dir: snapshots.clone(),
                mode: UpdateMode::No,
            },
            target: KubeconfigTarget::None,
            allow_cluster_scoped: false,
            require_k3d: false,
            report_dir: None,
        };
        let plan = Plan::new(&loaded, &[backend], &options);
        let runner = Runner::new(options);
        let library: std::collections::BTreeMap<String, &str> = plan
            .trials
            .iter()
            .map(|t| {
                let verdict = match runner.run(t, false).outcome.verdict {
                    Verdict::Passed => "passed",
                    Verdict::Failed(_) => "failed",
                    Verdict::Ignored(_) => "ignored",
                };
                (t.name(), verdict)
            })
            .collect();
        assert!(runner.finish().is_empty());
        assert_eq!(cli, library, "{backend}: {}", stderr(&out));
        let expected: &[(&str, &str)] = match backend {
            BackendKind::Sim => &[
                ("sim::apps/crash", "failed"),
                ("sim::apps/skipped", "ignored"),
                (
                    "sim::secrets/externalsecret-cluster-store-missing",
                    "passed",
                ),
                (
                    "sim::secrets/missing-secret-createcontainerconfigerror",
                    "passed",
                ),
                ("sim::secrets/vault-bootstrap-secret-missing", "passed"),
            ],
            _ => &[
                ("kubeconfig::apps/crash", "ignored"),
                ("kubeconfig::apps/skipped", "ignored"),
                (
                    "kubeconfig::secrets/externalsecret-cluster-store-missing",
                    "ignored",
                ),
                (
                    "kubeconfig::secrets/missing-secret-createcontainerconfigerror",
                    "ignored",
                ),
                (
                    "kubeconfig::secrets/vault-bootstrap-secret-missing",
                    "ignored",
                ),
            ],
        };
        let expected: std::collections::BTreeMap<String, &str> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        // The copied scenarios' mutants (wrong fixes) must not converge: they pass on the sim and
        // are ignored with their scenario elsewhere.
        let (mutants, scenarios): (Vec<_>, Vec<_>) = library
            .into_iter()
            .partition(|(name, _)| name.contains("::mutant::"));
        assert!(!mutants.is_empty());
        let mutant_verdict = if backend == BackendKind::Sim {
            "passed"
        } else {
            "ignored"
        };
        for (name, verdict) in &mutants {
            assert_eq!(*verdict, mutant_verdict, "{name}");
        }
        let scenarios: std::collections::BTreeMap<String, &str> = scenarios.into_iter().collect();
        assert_eq!(scenarios, expected, "{backend}");
        let code = if backend == BackendKind::Sim { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    }
}

#[test]
fn junit_skips_writes_why_each_ignored_trial_was_skipped() {
    let skipping = format!(
        "{}backends:\n  k3d:\n    skip: the image is private to the team's registry\n",
        scenario("private")
    );
    let dir = suite(&[
        ("scenarios/apps/private.yaml", &skipping),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    // As nextest writes it with junit.report-skipped: the trial ignored, its reason unknown.
    let junit = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="2" skipped="1" failures="0" errors="0">
    <testsuite name="relapse::scenarios" tests="2" skipped="1" errors="0" failures="0">
        <testcase name="k3d::apps/private" classname="relapse::scenarios" time="0.000">
            <skipped message="Skipped: test does not match the run-ignored option"/>
        </testcase>
        <testcase name="sim::apps/private" classname="relapse::scenarios" time="0.300">
        </testcase>
    </testsuite>
</testsuites>
"#;
    std::fs::write(dir.path().join("junit.xml"), junit).expect("write junit");
    let out = relapse(dir.path(), &["junit-skips", "junit.xml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("junit.xml")).expect("read junit");
    assert!(
        text.contains(r#"<skipped message="the scenario skips k3d: the image is private to the team&apos;s registry"/>"#),
        "{text}"
    );
    assert!(
        text.contains(r#"<testcase name="sim::apps/private""#),
        "{text}"
    );
    // Not a JUnit report: an error naming the file, and the file left as it was.
    std::fs::write(dir.path().join("bad.xml"), "<html>").expect("write");
    let out = relapse(dir.path(), &["junit-skips", "bad.xml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.xml"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bad.xml")).expect("read"),
        "<html>"
    );
}

#[test]
fn an_access_need_names_exactly_one_of_a_resource_or_a_url() {
    let with_need = |need: &str| {
        format!(
            "{}images:\n  app:1:\n    requires:\n      - needs:\n          access: {need}\n        otherwise: {{log: [x], retry: 30s}}\n",
            scenario("crash")
        )
    };
    let run = |need: &str| {
        let dir = suite(&[
            ("scenarios/apps/crash.yaml", &with_need(need)),
            ("scenarios/apps/manifests/app.yaml", MANIFEST),
        ]);
        validate_within(dir.path())
    };
    let ok = run("{verb: list, resource: nodes}");
    assert_eq!(ok.status.code(), Some(0), "{}", flat(&ok));
    let ok = run("{verb: get, nonResourceURL: /livez}");
    assert_eq!(ok.status.code(), Some(0), "{}", flat(&ok));
    assert_invalid(
        &run("{verb: list}"),
        "scenarios/apps/crash.yaml",
        "an access names exactly one of `resource` or `nonResourceURL`",
    );
    assert_invalid(
        &run("{verb: get, nonResourceURL: /livez, namespace: demo}"),
        "scenarios/apps/crash.yaml",
        "a `nonResourceURL` access has no `group`, `subresource`, `name` or `namespace`",
    );
    assert_invalid(
        &run("{verb: get, nonResourceURL: livez}"),
        "scenarios/apps/crash.yaml",
        "`nonResourceURL` is a path such as",
    );
}

/// kubectl's typed creates send protobuf bodies; `sim up` takes them as a real API server does
/// (they used to get 415). ResourceQuota and PriorityClass are left out: the simulated cluster
/// does not serve those resources (their bodies are checked in src/sim/api/protobuf).
#[test]
fn kubectl_create_works_against_sim_up() {
    const KUBECTL: &str = "/usr/bin/kubectl";
    if !Path::new(KUBECTL).exists() {
        eprintln!("skipped: {KUBECTL} is not installed on this machine");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = SimUp::start(dir.path(), "fast");
    let kubectl = |args: &[&str]| {
        let out = Command::new(KUBECTL)
            .args(args)
            .env("KUBECONFIG", &sim.kubeconfig)
            .env("KUBECACHEDIR", dir.path().join("cache"))
            .env("HOME", dir.path())
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?}:\n{stdout}\n{}",
            stderr(&out)
        );
        stdout
    };
    let creates: &[(&[&str], &str)] = &[
        (&["create", "namespace", "demo"], "namespace/demo created"),
        (
            &[
                "-n",
                "demo",
                "create",
                "deployment",
                "web",
                "--image=nginx:1.27",
                "--replicas=2",
                "--port=80",
            ],
            "deployment.apps/web created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "secret",
                "generic",
                "creds",
                "--from-literal=user=admin",
            ],
            "secret/creds created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "configmap",
                "settings",
                "--from-literal=mode=fast",
            ],
            "configmap/settings created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
            ],
            "service/web created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "job",
                "once",
                "--image=busybox",
                "--",
                "echo",
                "hi",
            ],
            "job.batch/once created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "cronjob",
                "nightly",
                "--image=busybox",
                "--schedule=0 3 * * *",
                "--",
                "echo",
                "hi",
            ],
            "cronjob.batch/nightly created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods",
            ],
            "role.rbac.authorization.k8s.io/reader created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "rolebinding",
                "reader",
                "--role=reader",
                "--serviceaccount=demo:robot",
            ],
            "rolebinding.rbac.authorization.k8s.io/reader created",
        ),
        (
            &[
                "create",
                "clusterrole",
                "node-reader",
                "--verb=get",
                "--resource=nodes",
            ],
            "clusterrole.rbac.authorization.k8s.io/node-reader created",
        ),
        (
            &[
                "create",
                "clusterrolebinding",
                "node-reader",
                "--clusterrole=node-reader",
                "--user=alice",
            ],
            "clusterrolebinding.rbac.authorization.k8s.io/node-reader created",
        ),
        (
            &["-n", "demo", "create", "serviceaccount", "robot"],
            "serviceaccount/robot created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "poddisruptionbudget",
                "web",
                "--selector=app=web",
                "--min-available=1",
            ],
            "poddisruptionbudget.policy/web created",
        ),
        (
            &[
                "-n",
                "demo",
                "create",
                "ingress",
                "web",
                "--rule=example.com/=web:80",
            ],
            "ingress.networking.k8s.io/web created",
        ),
    ];
    for (args, created) in creates {
        let out = kubectl(args);
        assert_eq!(out.trim(), *created, "kubectl {args:?}");
    }
    // What was created is what the flags said, defaulted as from a JSON body.
    let get = |args: &[&str]| kubectl(args).trim().to_string();
    assert_eq!(
        get(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.type}"
        ]),
        "2 80 RollingUpdate"
    );
    assert_eq!(
        get(&[
            "-n",
            "demo",
            "get",
            "secret",
            "creds",
            "-o",
            "jsonpath={.data.user}"
        ]),
        "YWRtaW4="
    );
    assert_eq!(
        get(&[
            "-n",
            "demo",
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.type}"
        ]),
        "80 8080 ClusterIP"
    );
    assert_eq!(
        get(&[
            "-n",
            "demo",
            "get",
            "cronjob",
            "nightly",
            "-o",
            "jsonpath={.spec.schedule}"
        ]),
        "0 3 * * *"
    );
    assert_eq!(
        get(&[
            "-n",
            "demo",
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.spec.minAvailable}"
        ]),
        "1"
    );
    assert_eq!(
        get(&[
            "-n",
            "demo",
            "get",
            "rolebinding",
            "reader",
            "-o",
            "jsonpath={.subjects[0].kind}/{.subjects[0].name}"
        ]),
        "ServiceAccount/robot"
    );
    assert!(sim.stop().success());
}

#[test]
fn pause_after_fix_serves_the_cluster_until_enter_then_the_run_goes_on() {
    use std::io::{BufRead, BufReader, Write};
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
        .args(["run", "--filter", "apps/web", "--pause-after", "fix"])
        .current_dir(dir.path())
        .env("TMPDIR", tmp.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the relapse binary runs");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut kubeconfig = None;
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        seen.push(line.clone());
        if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(std::path::PathBuf::from(path));
        }
        if line.starts_with("press Enter to continue") {
            break;
        }
    }
    let kubeconfig = kubeconfig.expect("relapse printed the paused cluster's kubeconfig");
    assert!(
        seen.iter()
            .any(|l| l == "paused apps/web after the fix phase; inspect its cluster with:"),
        "{seen:?}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig)
            .expect("kubeconfig written while paused")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let kubectl = Path::new("/usr/bin/kubectl");
    if kubectl.exists() {
        let out = Command::new(kubectl)
            .args(["get", "namespace", "demo", "-o", "name"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .output()
            .expect("kubectl runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "namespace/demo",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Still paused: nothing more until Enter.
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err()
    );
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"\n").expect("Enter");
    let status = child.wait().expect("relapse exits");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{seen:?}\n{rest:?}");
    assert!(rest.iter().any(|l| l == "continuing apps/web"), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.starts_with("sim::apps/web  passed")),
        "{rest:?}"
    );
    assert!(
        !kubeconfig.exists(),
        "the paused cluster's kubeconfig is left"
    );
    assert_eq!(private_dirs(tmp.path()), Vec::<String>::new());
    drop(stdin);
}

#[test]
fn pause_after_goes_on_when_stdin_is_closed() {
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    for phase in ["break", "fix", "converge"] {
        // `output()` gives the child an empty stdin: CI never waits on a pause.
        let out = relapse(
            dir.path(),
            &["run", "--filter", "apps/web", "--pause-after", phase],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains(&format!(
                "paused apps/web after the {phase} phase; inspect its cluster with:\n  export KUBECONFIG="
            )),
            "{err}"
        );
        assert!(err.contains("sim::apps/web  passed"), "{err}");
    }
    let out = relapse(dir.path(), &["run", "--pause-after", "snapshot"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn keep_always_keeps_a_passing_cluster_until_a_signal_or_gc() {
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let tmp = tmp.path();
    let args = ["run", "--filter", "apps/web", "--keep", "always"];
    let (mut child, kubeconfig) = spawn_serving(dir.path(), tmp, &args);
    assert!(kubeconfig.exists());
    signal(&child, libc::SIGINT);
    // The scenario passed: keeping it changes no verdict.
    assert_eq!(child.wait().expect("exits").code(), Some(0));
    assert!(!kubeconfig.exists(), "kept kubeconfig left behind");
    assert_eq!(private_dirs(tmp), Vec::<String>::new());
    // Killed outright, the kept cluster's kubeconfig is gc's to remove.
    let (mut child, kubeconfig) = spawn_serving(dir.path(), tmp, &args);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    assert!(kubeconfig.exists());
    let report = gc_in(tmp);
    assert!(!kubeconfig.exists(), "{report}");
    assert_eq!(private_dirs(tmp), Vec::<String>::new(), "{report}");
    // `--keep never` and a passing scenario under `--keep` (on failure) keep nothing.
    for keep in [&["--keep", "never"][..], &["--keep"]] {
        let mut args = vec!["run", "--filter", "apps/web"];
        args.extend_from_slice(keep);
        let out = relapse(dir.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!stderr(&out).contains("export KUBECONFIG="), "{keep:?}");
    }
}

#[test]
fn ctrl_c_while_paused_stops_the_run_and_cleans_up() {
    use std::io::{BufRead, BufReader};
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let tmp = tempfile::tempdir().expect("temp dir");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relapse"))
            .args(["run", "--filter", "apps/web", "--pause-after", "break"])
            .current_dir(dir.path())
            .env("TMPDIR", tmp.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the relapse binary runs");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
        let kubeconfig = lines
            .by_ref()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("export KUBECONFIG=")
                    .map(std::path::PathBuf::from)
            })
            .expect("relapse printed the paused cluster's kubeconfig");
        assert!(
            lines
                .by_ref()
                .any(|l| l.starts_with("press Enter to continue"))
        );
        assert!(kubeconfig.exists());
        signal(&child, sig);
        let rest: Vec<String> = lines.collect();
        let status = child.wait().expect("relapse exits");
        assert_eq!(status.code(), Some(130), "{rest:?}");
        assert!(
            rest.iter()
                .any(|l| l == "interrupted while paused: the run was stopped"),
            "{rest:?}"
        );
        assert!(!kubeconfig.exists(), "signal {sig}: kubeconfig left behind");
        assert_eq!(private_dirs(tmp.path()), Vec::<String>::new());
    }
}

#[test]
fn pause_on_the_kubeconfig_backend_names_the_file_and_the_renamed_namespace() {
    let dir = suite(&[
        ("scenarios/apps/web.yaml", PORTABLE),
        ("scenarios/apps/manifests/app.yaml", MANIFEST),
    ]);
    let sim = SimUp::start(dir.path(), "fast");
    let kubeconfig = sim.kubeconfig.to_string_lossy().into_owned();
    let out = relapse(
        dir.path(),
        &[
            "run",
            "--backend",
            "kubeconfig",
            "--kubeconfig",
            &kubeconfig,
            "--filter",
            "apps/web",
            "--pause-after",
            "fix",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let absolute = std::path::absolute(&sim.kubeconfig).expect("absolute path");
    assert!(
        err.contains(&format!(
            "paused apps/web after the fix phase; inspect its cluster with:\n  export KUBECONFIG={}\n  kubectl get pods -A\n  (namespace demo is relapse-",
            absolute.display()
        )),
        "{err}"
    );
    assert!(err.contains("kubeconfig::apps/web  passed"), "{err}");
}

/// A scenario with Argo CD and one repository, its Application applied in setup.
fn gitops_scenario(name: &str, extra_fix: &str) -> String {
    format!(
        r#"name: {name}
description: An Application syncs a ConfigMap from Git.
source: "test"
gitops:
  engine: argocd
  repos:
    - {{url: https://git.example/platform.git, dir: repos/platform}}
setup:
  - apply:
      inline:
        apiVersion: argoproj.io/v1alpha1
        kind: Application
        metadata: {{name: platform, namespace: argocd}}
        spec:
          project: default
          source: {{repoURL: https://git.example/platform.git, targetRevision: HEAD, path: apps}}
          destination: {{server: https://kubernetes.default.svc, namespace: demo}}
break:
  symptoms:
    - app: {{name: platform, sync: OutOfSync, within: 5m}}
fix:
{extra_fix}
converge:
  within: 5m
  expect:
    - app: {{name: platform, sync: Synced, health: {{$not: Degraded}}}}
"#
    )
}

const REPO_MANIFEST: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {a: b}\n";

#[test]
fn gitops_repositories_and_commits_are_checked_when_the_scenario_loads() {
    let fix = "  - commit: {message: x, files: {apps/more.yaml: manifests/more.yaml}}\n";
    let dir = suite(&[
        ("scenarios/gitops/sync.yaml", &gitops_scenario("sync", fix)),
        (
            "scenarios/gitops/repos/platform/apps/settings.yaml",
            REPO_MANIFEST,
        ),
        ("scenarios/gitops/manifests/more.yaml", REPO_MANIFEST),
    ]);
    let out = validate_within(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The repository directory is not taken for scenarios.
    let listed = relapse(dir.path(), &["list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("gitops/sync") && !text.contains("settings"),
        "{text}"
    );

    // A broken manifest in the repository: its own file, line and column.
    std::fs::write(
        dir.path()
            .join("scenarios/gitops/repos/platform/apps/settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [settings\n",
    )
    .expect("write");
    let out = validate_within(dir.path());
    assert_invalid(
        &out,
        "scenarios/gitops/repos/platform/apps/settings.yaml:",
        "",
    );
    std::fs::write(
        dir.path()
            .join("scenarios/gitops/repos/platform/apps/settings.yaml"),
        REPO_MANIFEST,
    )
    .expect("write");

    // A commit to an undeclared repository, and a missing file.
    let bad = "  - commit: {repo: https://git.example/other.git, files: {apps/x.yaml: manifests/missing.yaml}}\n";
    std::fs::write(
        dir.path().join("scenarios/gitops/sync.yaml"),
        gitops_scenario("sync", bad),
    )
    .expect("write");
    let out = validate_within(dir.path());
    assert_invalid(
        &out,
        "scenarios/gitops/sync.yaml:",
        "other.git` in `gitops.repos`",
    );
    assert!(
        flat(&out).contains("missing.yaml does not exist"),
        "{}",
        flat(&out)
    );

    // `app` and `commit` need a gitops section.
    let without = gitops_scenario("sync", fix).replace(
        "gitops:\n  engine: argocd\n  repos:\n    - {url: https://git.example/platform.git, dir: repos/platform}\n",
        "",
    );
    std::fs::write(dir.path().join("scenarios/gitops/sync.yaml"), without).expect("write");
    let out = validate_within(dir.path());
    let err = flat(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sync.yaml:18:5: commit step without a `gitops:` section"),
        "{err}"
    );
    assert!(
        err.contains("app expectation without a `gitops:` section"),
        "{err}"
    );
}
