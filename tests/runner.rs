//! The runner's verdicts on deliberately broken scenarios: a missing fix must fail converge,
//! a fix that is not what heals the cluster must fail the counterfactual, and a mutant (a
//! plausible wrong fix) passes only when it does not converge.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::path::Path;

use relapse::backend::sim::SimBackend;
use relapse::report::failure_details;
use relapse::run::outcome::{Phase, ScenarioOutcome, Verdict};
use relapse::run::snapshot_file::UpdateMode;
use relapse::run::{SnapshotSettings, run_scenario};
use relapse::scenario::{self, LoadedScenario, Step};

fn load(rel: &str) -> LoadedScenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    scenario::load(&root.join(rel), &root).unwrap_or_else(|e| panic!("{}", scenario::render(&e)))
}

fn run(loaded: &LoadedScenario) -> ScenarioOutcome {
    let snapshots = tempfile::tempdir().expect("temp dir");
    run_in(loaded, snapshots.path())
}

/// Runs with snapshots in `dir` (the failure of a missing snapshot names it).
fn run_in(loaded: &LoadedScenario, dir: &Path) -> ScenarioOutcome {
    let settings = SnapshotSettings {
        dir: dir.to_path_buf(),
        mode: UpdateMode::No,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run_scenario(&SimBackend::default(), loaded, &settings))
}

#[test]
fn without_its_fix_a_scenario_fails_converge_naming_the_expectation() {
    let mut loaded = load("temporal/temporal-namespace-missing.yaml");
    loaded.scenario.fix = vec![Step::Sleep(scenario::Duration::from_secs(1))];
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    let details = failure_details(&outcome, f);
    assert_eq!(f.phase, Phase::Converge, "{details}");
    assert_eq!(f.summary, "did not converge within 10m", "{details}");
    assert_eq!(
        f.expectation, "converge.expect[0]: object Deployment ameide-local/workflows-runtime",
        "{details}"
    );
    assert!(
        f.mismatches
            .iter()
            .any(|m| m.contains(".status.readyReplicas")),
        "{details}"
    );
    // The report carries the evidence: the crash-looping pod and its log line.
    assert!(
        details.contains("Temporal namespace is missing; create it or update configuration"),
        "{details}"
    );
}

#[test]
fn a_fix_that_is_not_what_heals_fails_the_counterfactual() {
    // The "fix" is a no-op and the symptom is mere existence: the cluster is healthy without it.
    let mut loaded = load("temporal/temporal-namespace-missing.yaml");
    loaded
        .scenario
        .setup
        .push(Step::Apply(relapse::scenario::ApplyStep {
            file: None,
            inline: Some(serde_json::json!({
                "apiVersion": "temporal.io/v1beta1", "kind": "TemporalNamespace",
                "metadata": {"name": "ameide", "namespace": "ameide-local"},
                "spec": {"clusterRef": {"name": "temporal"}}
            })),
            namespace: None,
            server_side: true,
            expect_error: None,
        }));
    loaded.scenario.break_.symptoms = vec![relapse::scenario::Expectation::Absent(
        relapse::scenario::AbsentExpectation {
            object: relapse::scenario::ObjectRef {
                api_version: None,
                kind: "Pod".into(),
                name: "no-such-pod".into(),
                namespace: Some("ameide-local".into()),
            },
            within: Some(scenario::Duration::from_secs(60)),
            for_: None,
        },
    )];
    loaded.scenario.fix = vec![Step::Sleep(scenario::Duration::from_secs(1))];
    loaded.scenario.snapshot.enabled = false;
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    let details = failure_details(&outcome, f);
    assert_eq!(f.phase, Phase::Counterfactual, "{details}");
    assert!(
        f.summary
            .starts_with("the cluster converged without the fix"),
        "{details}"
    );
}

fn run_mutant(loaded: &LoadedScenario, name: &str) -> ScenarioOutcome {
    let settings = SnapshotSettings {
        dir: std::path::PathBuf::from("unused"),
        mode: UpdateMode::No,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(relapse::run::run_mutant(
        &SimBackend::default(),
        loaded,
        name,
        &settings,
    ))
}

#[test]
fn a_wrong_fix_that_does_not_converge_passes_as_a_mutant() {
    let loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    let outcome = run_mutant(&loaded, "secret-without-user-key");
    assert_eq!(outcome.verdict, Verdict::Passed, "{outcome:?}");
    assert_eq!(
        outcome.trial_name(),
        "sim::secrets/missing-secret-createcontainerconfigerror::mutant::secret-without-user-key"
    );
    assert_eq!(outcome.phases.len(), 1);
    assert_eq!(outcome.phases[0].phase, Phase::Mutant);
}

#[test]
fn a_mutant_that_converges_fails_naming_it() {
    // A "wrong" fix that is in fact the fix: the mutant must be reported, not passed.
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.mutants[0].fix = loaded.scenario.fix.clone();
    let name = loaded.scenario.mutants[0].name.clone();
    let outcome = run_mutant(&loaded, &name);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Mutant);
    assert!(
        f.summary.starts_with(&format!(
            "the wrong fix `{name}` converged: the scenario cannot tell it from the documented fix"
        )),
        "{}",
        failure_details(&outcome, f)
    );
}

#[test]
fn the_runner_runs_a_mutant_trial_as_the_mutant_on_every_backend() {
    use relapse::backend::BackendKind;
    use relapse::run::{KubeconfigTarget, Plan, RunOptions, Runner};
    // A "wrong" fix that is in fact the fix: run as the scenario it would pass, run as the
    // mutant it must fail. Through the planner and runner both front doors share.
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.mutants.truncate(1);
    loaded.scenario.mutants[0].fix = loaded.scenario.fix.clone();
    let options = RunOptions {
        snapshots: SnapshotSettings {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"),
            mode: UpdateMode::No,
        },
        target: KubeconfigTarget::ServedSim,
        allow_cluster_scoped: false,
        require_k3d: false,
        report_dir: None,
    };
    let plan = Plan::new(
        &[std::sync::Arc::new(loaded)],
        &[BackendKind::Sim, BackendKind::Kubeconfig],
        &options,
    );
    let runner = Runner::new(options);
    let verdicts: Vec<(String, bool)> = plan
        .trials
        .iter()
        .map(|t| {
            let outcome = runner.run(t, false).outcome;
            assert_eq!(outcome.trial_name(), t.name());
            (t.name(), matches!(outcome.verdict, Verdict::Passed))
        })
        .collect();
    let m = "::mutant::secret-without-user-key";
    let id = "secrets/missing-secret-createcontainerconfigerror";
    assert_eq!(
        verdicts,
        vec![
            (format!("sim::{id}"), true),
            (format!("sim::{id}{m}"), false),
            (format!("kubeconfig::{id}"), true),
            (format!("kubeconfig::{id}{m}"), false),
        ]
    );
}

#[test]
fn a_mutant_whose_step_fails_is_a_failure_not_a_pass() {
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.mutants[0].fix = vec![Step::Patch(
        serde_json::from_value(serde_json::json!({
            "object": {"kind": "ConfigMap", "namespace": "ameide-dev", "name": "never-created"},
            "type": "merge",
            "patch": {"data": {"a": "b"}}
        }))
        .expect("a patch step"),
    )];
    let name = loaded.scenario.mutants[0].name.clone();
    let outcome = run_mutant(&loaded, &name);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Mutant);
    assert!(f.summary.contains("step 1 (patch) failed"), "{}", f.summary);
}

#[test]
fn a_setup_that_already_shows_the_symptom_fails_the_baseline() {
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    // The Deployment moves into the setup, and the setup waits until it is broken: the break
    // then reproduces nothing.
    let broken = loaded.scenario.break_.steps.clone();
    loaded.scenario.setup.extend(broken);
    loaded
        .scenario
        .setup
        .push(Step::Sleep(scenario::Duration::from_secs(60)));
    loaded.scenario.break_.steps.clear();
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Setup, "{}", failure_details(&outcome, f));
    assert_eq!(
        f.summary,
        "symptom 1 already holds before the break: the setup causes it, the break does not reproduce it"
    );
    assert!(
        f.expectation.starts_with("break.symptoms[0]: object Pod"),
        "{}",
        f.expectation
    );
}

#[test]
fn a_healthy_expectation_that_does_not_hold_fails_the_baseline() {
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.healthy = vec![
        serde_json::from_value(serde_json::json!({
            "object": {
                "kind": "Namespace", "name": "ameide-dev",
                "matches": {"status": {"phase": "Active"}}, "within": "30s"
            }
        }))
        .expect("an expectation"),
        serde_json::from_value(serde_json::json!({
            "object": {"kind": "ConfigMap", "namespace": "ameide-dev", "name": "never-created", "matches": {"data": {"a": "b"}}, "within": "1m"}
        }))
        .expect("an expectation"),
    ];
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Setup);
    assert_eq!(
        f.summary,
        "the starting point is not healthy: healthy[1] did not hold within 1m"
    );
}

fn expectation(v: serde_json::Value) -> scenario::Expectation {
    serde_json::from_value(v).expect("an expectation")
}

#[test]
fn a_symptom_with_for_must_hold_without_interruption() {
    // The pod sits in CreateContainerConfigError until the fix: it holds for any length of
    // time, and "never becomes ready" is a symptom that needs no sleep.
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.snapshot.enabled = false;
    loaded
        .scenario
        .break_
        .symptoms
        .push(expectation(serde_json::json!({
            "object": {
                "kind": "Pod", "namespace": "ameide-dev",
                "labels": {"app.kubernetes.io/instance": "platform-grafana"},
                "matches": {"status": {"phase": "Pending"}},
                "within": "1m", "for": "30m"
            }
        })));
    loaded.scenario.break_.symptoms.push(expectation(serde_json::json!({
        "absent": {
            "object": {"kind": "Secret", "namespace": "ameide-dev", "name": "grafana-admin-credentials"},
            "within": "10s", "for": "1h"
        }
    })));
    let outcome = run(&loaded);
    assert_eq!(outcome.verdict, Verdict::Passed, "{outcome:?}");
    let break_time = outcome
        .phases
        .iter()
        .find(|p| p.phase == Phase::Break)
        .map(|p| p.cluster_time)
        .expect("a break phase");
    assert!(
        break_time >= std::time::Duration::from_secs(3600),
        "{break_time:?}"
    );

    // Something that stops holding part-way fails, saying for how long it held: a crash-looping
    // container is in CrashLoopBackOff only between its restarts.
    let mut loaded = load("workloads/arm64-image-on-amd64.yaml");
    loaded.scenario.break_.symptoms = vec![expectation(serde_json::json!({
        "object": {
            "kind": "Pod", "namespace": "keycloak",
            "labels": {"app.kubernetes.io/name": "keycloak"}, "require": "any",
            "matches": {"status": {"containerStatuses": [
                {"name": "keycloak", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}},
            "within": "2m", "for": "30m"
        }
    }))];
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    let details = failure_details(&outcome, f);
    assert_eq!(f.phase, Phase::Break, "{details}");
    assert!(
        f.mismatches[0].starts_with("held from ") && f.mismatches[0].ends_with(", not for 30m"),
        "{details}"
    );
}

#[test]
fn require_none_and_count_bounds() {
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.snapshot.enabled = false;
    loaded.scenario.converge.expect.push(expectation(serde_json::json!({
        "object": {
            "kind": "Pod", "namespace": "ameide-dev", "require": "none",
            "matches": {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "CreateContainerConfigError"}}}]}}
        }
    })));
    loaded
        .scenario
        .converge
        .expect
        .push(expectation(serde_json::json!({
            "object": {
                "kind": "Pod", "namespace": "ameide-dev", "count": {"min": 1, "max": 2},
                "matches": {"status": {"phase": "Running"}}
            }
        })));
    assert_eq!(run(&loaded).verdict, Verdict::Passed);
    // While broken, `require: none` does not hold: the counterfactual proves it cannot heal.
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.converge.expect = vec![expectation(serde_json::json!({
        "object": {
            "kind": "Pod", "namespace": "ameide-dev", "require": "none",
            "matches": {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "CreateContainerConfigError"}}}]}}
        }
    }))];
    loaded.scenario.fix = vec![Step::Sleep(scenario::Duration::from_secs(1))];
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Converge);
    assert!(
        f.mismatches[0].ends_with("matches, expected no selected object to"),
        "{:?}",
        f.mismatches
    );
}

#[test]
fn delete_with_wait_waits_for_the_object_not_the_name() {
    // The StatefulSet re-creates prometheus-…-0 under the same name at once: waiting on the
    // name would time out, waiting on the object (its UID) does not.
    let mut loaded = load("monitoring/prometheus-crd-missing.yaml");
    loaded.scenario.snapshot.enabled = false;
    loaded
        .scenario
        .fix
        .push(Step::Expect(expectation(serde_json::json!({
            "object": {
                "kind": "Pod", "namespace": "monitoring",
                "name": "prometheus-kube-prometheus-stack-prometheus-0",
                "matches": {"status": {"phase": "Running"}}, "within": "5m"
            }
        }))));
    loaded.scenario.fix.push(Step::Delete(
        serde_json::from_value(serde_json::json!({
            "object": {"kind": "Pod", "namespace": "monitoring", "name": "prometheus-kube-prometheus-stack-prometheus-0"},
            "wait": true
        }))
        .expect("a delete step"),
    ));
    let outcome = run(&loaded);
    assert_eq!(outcome.verdict, Verdict::Passed, "{outcome:?}");
}

#[test]
fn fix_minimal_names_a_step_the_cluster_converges_without() {
    let mut loaded = load("secrets/missing-secret-createcontainerconfigerror.yaml");
    loaded.scenario.snapshot.enabled = false;
    loaded.scenario.fix_minimal = true;
    // The one documented step is necessary.
    assert_eq!(run(&loaded).verdict, Verdict::Passed);
    // A second step that changes nothing the pod reads is not.
    loaded
        .scenario
        .fix
        .push(Step::Apply(relapse::scenario::ApplyStep {
            file: None,
            inline: Some(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "unrelated", "namespace": "ameide-dev"}
            })),
            namespace: None,
            server_side: true,
            expect_error: None,
        }));
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Ablation, "{}", failure_details(&outcome, f));
    assert_eq!(
        f.mismatches,
        vec!["fix[1] (apply): the cluster converged without it".to_owned()]
    );
}

#[test]
fn a_symptom_that_never_appears_is_could_not_reproduce() {
    let mut loaded = load("monitoring/prometheus-crd-missing.yaml");
    // Install the CRD during setup: the failure can no longer be reproduced.
    let crd = loaded.scenario.fix[0].clone();
    loaded.scenario.setup.insert(0, crd);
    loaded.scenario.break_.steps.clear();
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    let details = failure_details(&outcome, f);
    assert_eq!(f.phase, Phase::Break, "{details}");
    assert!(
        f.summary
            .starts_with("could not reproduce: symptom 1 did not appear within 2m"),
        "{details}"
    );
}

#[test]
fn repeated_runs_give_the_same_verdict_and_timeline() {
    let loaded = load("workloads/arm64-image-on-amd64.yaml");
    let snapshots = tempfile::tempdir().expect("temp dir");
    let first = run_in(&loaded, snapshots.path());
    let second = run_in(&loaded, snapshots.path());
    let timeline = |o: &ScenarioOutcome| {
        o.phases
            .iter()
            .map(|p| (p.phase, p.cluster_time))
            .collect::<Vec<_>>()
    };
    assert_eq!(timeline(&first), timeline(&second));
    assert_eq!(
        format!("{:?}", first.verdict),
        format!("{:?}", second.verdict)
    );
}

#[test]
fn secret_values_never_reach_snapshots_or_reports() {
    const CANARY: &str = "canary-3f1e9c-do-not-leak";
    let mut loaded = load("temporal/temporal-namespace-missing.yaml");
    // After the namespace exists (setup[1] creates it).
    loaded.scenario.setup.insert(
        2,
        Step::Apply(relapse::scenario::ApplyStep {
            file: None,
            inline: Some(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "temporal-credentials", "namespace": "ameide-local"},
                "stringData": {"password": CANARY}
            })),
            namespace: None,
            server_side: true,
            expect_error: None,
        }),
    );
    // A passing run writes its snapshot for review: the Secret is there, its value is not.
    let snapshots = tempfile::tempdir().expect("temp dir");
    let settings = SnapshotSettings {
        dir: snapshots.path().to_path_buf(),
        mode: UpdateMode::New,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(run_scenario(&SimBackend::default(), &loaded, &settings));
    let pending = snapshots
        .path()
        .join("temporal__temporal-namespace-missing.snap.new");
    let snapshot =
        std::fs::read_to_string(&pending).unwrap_or_else(|e| panic!("{e}: {:?}", outcome.verdict));
    assert!(
        snapshot.contains("name: temporal-credentials")
            && snapshot.contains("password: <redacted>"),
        "{snapshot}"
    );
    assert!(!snapshot.contains(CANARY), "{snapshot}");
    // A failing run's report and JUnit carry events, pods and logs, but not the value.
    loaded.scenario.fix = vec![Step::Sleep(scenario::Duration::from_secs(1))];
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure")
    };
    let details = failure_details(&outcome, f);
    let junit = relapse::report::junit_xml(std::slice::from_ref(&outcome)).expect("junit");
    assert!(details.contains("events:"), "{details}");
    assert!(!details.contains(CANARY) && !junit.contains(CANARY));
}

#[test]
fn an_expectation_on_a_kind_the_cluster_does_not_serve_never_holds() {
    // `StatefulSett` is not served: that is an error naming the kind, never "absent".
    let typo = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSett",
        "name": "prometheus-kube-prometheus-stack-prometheus", "namespace": "monitoring"});
    let mut with_absent = load("monitoring/prometheus-crd-missing.yaml");
    with_absent
        .scenario
        .converge
        .expect
        .push(expectation(serde_json::json!({"absent": {"object": typo}})));
    let mut with_count_zero = load("monitoring/prometheus-crd-missing.yaml");
    let mut none = typo.clone();
    none["count"] = serde_json::json!(0);
    none["matches"] = serde_json::json!({});
    with_count_zero
        .scenario
        .converge
        .expect
        .push(expectation(serde_json::json!({ "object": none })));
    for loaded in [with_absent, with_count_zero] {
        let outcome = run(&loaded);
        let Verdict::Failed(f) = &outcome.verdict else {
            panic!("expected a failure, got {:?}", outcome.verdict)
        };
        let details = failure_details(&outcome, f);
        assert_eq!(f.phase, Phase::Converge, "{details}");
        assert_eq!(
            f.mismatches,
            vec!["no matches for kind \"StatefulSett\" in version \"apps/v1\"".to_owned()],
            "{details}"
        );
    }
    // A step on such a kind fails the same way.
    let mut loaded = load("monitoring/prometheus-crd-missing.yaml");
    loaded.scenario.fix.push(Step::Delete(
        serde_json::from_value(serde_json::json!({"object": typo, "wait": true}))
            .expect("a delete step"),
    ));
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Fix);
    assert!(
        f.mismatches[0].contains("\"StatefulSett\""),
        "{:?}",
        f.mismatches
    );
}

/// A scenario whose program stops answering its readiness probe in time from `flap_from`
/// after it starts, for one minute, then answers again.
fn flapping(flap_from: &str) -> (tempfile::TempDir, LoadedScenario) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("scenarios");
    std::fs::create_dir_all(root.join("probes")).expect("scenario dir");
    let text = format!(
        r#"
name: readiness-flap
description: A program that is briefly too slow for its readiness probe.
source: tests/runner.rs
images:
  example.com/flappy:1:
    answerTime:
      - {{time: 10ms}}
      - {{from: {flap_from}, time: 5s}}
      - {{from: {flap_end}, time: 10ms}}
  example.com/flappy:2:
    missing: true
setup:
  - apply:
      inline: {{apiVersion: v1, kind: Namespace, metadata: {{name: flap}}}}
break:
  steps:
    - apply:
        inline:
          apiVersion: apps/v1
          kind: Deployment
          metadata: {{name: flappy, namespace: flap}}
          spec:
            replicas: 1
            selector: {{matchLabels: {{app: flappy}}}}
            template:
              metadata: {{labels: {{app: flappy}}}}
              spec:
                containers:
                  - name: flappy
                    image: example.com/flappy:2
                    readinessProbe:
                      httpGet: {{path: /ready, port: 8080}}
                      periodSeconds: 10
                      timeoutSeconds: 1
                      failureThreshold: 1
  symptoms:
    - object:
        kind: Pod
        namespace: flap
        labels: {{app: flappy}}
        matches: {{status: {{containerStatuses: [{{name: flappy, state: {{waiting: {{reason: ImagePullBackOff}}}}}}]}}}}
        within: 5m
fix:
  - patch:
      object: {{kind: Deployment, namespace: flap, name: flappy}}
      patch: {{spec: {{template: {{spec: {{containers: [{{name: flappy, image: example.com/flappy:1}}]}}}}}}}}
converge:
  within: 5m
  settle: 10m
  expect:
    - object:
        kind: Deployment
        namespace: flap
        name: flappy
        matches: {{status: {{readyReplicas: 1}}}}
counterfactual:
  enabled: false
  reason: the test is about the settle window
mutants: []
"#,
        flap_end = if flap_from == "6m" { "7m" } else { "2h" },
    );
    let path = root.join("probes/readiness-flap.yaml");
    std::fs::write(&path, text).expect("write scenario");
    let loaded =
        scenario::load(&path, &root).unwrap_or_else(|e| panic!("{}", scenario::render(&e)));
    (dir, loaded)
}

#[test]
fn a_readiness_flap_inside_the_settle_window_fails_the_settle() {
    let (_dir, loaded) = flapping("6m");
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    let details = failure_details(&outcome, f);
    assert_eq!(f.phase, Phase::Converge, "{details}");
    assert!(details.contains("Ready"), "{details}");
    // The same program, flapping only after the window, converges: the flap is the cause.
    let (_dir, loaded) = flapping("1h");
    let outcome = run(&loaded);
    assert!(
        matches!(outcome.verdict, Verdict::Failed(ref f) if f.phase == Phase::Snapshot),
        "{:?}",
        outcome.verdict
    );
}

#[test]
fn a_fix_slower_than_the_converge_budget_fails_and_the_figures_say_how_slow() {
    let mut loaded = load("temporal/temporal-namespace-missing.yaml");
    let passing = run_in(
        &loaded,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"),
    );
    assert_eq!(passing.verdict, Verdict::Passed);
    let took = passing
        .recovery
        .time_to_converge
        .expect("a converged run has a time to converge");
    assert!(
        passing
            .recovery
            .time_to_symptom
            .is_some_and(|d| !d.is_zero())
    );
    assert!(matches!(
        passing.recovery.settle,
        Some(relapse::run::outcome::Settle::Held(_))
    ));
    // A budget it meets passes; one second less than it took fails.
    loaded.scenario.converge.budget = Some(scenario::Duration::new(took));
    assert_eq!(
        run_in(
            &loaded,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")
        )
        .verdict,
        Verdict::Passed
    );
    loaded.scenario.converge.budget = Some(scenario::Duration::new(
        took.saturating_sub(std::time::Duration::from_secs(1)),
    ));
    let outcome = run(&loaded);
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected a failure, got {:?}", outcome.verdict)
    };
    assert_eq!(f.phase, Phase::Converge, "{}", failure_details(&outcome, f));
    assert_eq!(f.expectation, "converge.budget");
    assert!(f.summary.contains("over the budget of"), "{}", f.summary);
}
