//! The scenario lifecycle: setup → break → fix → converge → snapshot, then the counterfactual.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::api::ListParams;
use serde_json::Value;

use super::observe::{Observation, describe, observe};
use super::outcome::{Context, Failure, Phase, PhaseRecord, ScenarioOutcome, Verdict};
use super::snapshot::{project, render};
use super::snapshot_file::{Comparison, UpdateMode, compare, snapshot_name};
use super::steps::{self, StepError};
use crate::backend::{BackendError, Cluster};
use crate::postgres::{Names, Tenant, TenantOptions};
use crate::scenario::{Converge, Expectation, LoadedScenario, Scenario, Step};

/// Creates a fresh cluster shaped like a scenario's `cluster:` section.
pub trait Provisioner: Send + Sync {
    /// The backend its clusters belong to (named in reports even when provisioning fails).
    fn kind(&self) -> crate::backend::BackendKind {
        crate::backend::BackendKind::Sim
    }

    /// Provisions a cluster for `scenario`.
    ///
    /// # Errors
    /// When the backend cannot create the cluster.
    fn provision<'a>(
        &'a self,
        scenario: &'a Scenario,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, BackendError>>;
}

/// Deadline of waits the scenario gives none for (deletes with `wait: true`).
const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// Where snapshots live and how mismatches are handled.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// The `snapshots/` directory.
    pub dir: PathBuf,
    /// What to write on a mismatch.
    pub mode: UpdateMode,
}

/// Runs one scenario on clusters from `provisioner`: the lifecycle, then the counterfactual.
pub async fn run_scenario(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
) -> ScenarioOutcome {
    run_scenario_keeping(provisioner, loaded, snapshots).await.0
}

/// Like [`run_scenario`], and when a phase of the first run failed, also returns that cluster
/// as it was at the failure, for inspection.
pub async fn run_scenario_keeping(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
) -> (ScenarioOutcome, Option<Box<dyn Cluster>>) {
    let phases = Vec::new();
    let cluster = match provisioner.provision(&loaded.scenario).await {
        Ok(c) => c,
        Err(BackendError::Unsuitable { backend, reasons }) => {
            let outcome = ScenarioOutcome {
                id: loaded.id.clone(),
                backend,
                phases,
                verdict: Verdict::Ignored(format!(
                    "the {backend} cluster cannot reproduce this scenario: {}",
                    reasons.join("; ")
                )),
            };
            return (outcome, None);
        }
        Err(e) => {
            let outcome = failed(
                loaded,
                provisioner.kind(),
                phases,
                Phase::Setup,
                "could not provision a cluster",
                String::new(),
                vec![error_chain(&e)],
                Context::default(),
            );
            return (outcome, None);
        }
    };
    let backend = cluster.backend();
    let tenant = match tenant_for(&loaded.scenario).await {
        Ok(t) => t,
        Err(reason) => {
            let outcome = ScenarioOutcome {
                id: loaded.id.clone(),
                backend,
                phases,
                verdict: Verdict::Ignored(format!("postgres unavailable: {reason}")),
            };
            return (outcome, None);
        }
    };
    if let Some(t) = &tenant {
        cluster.attach_postgres(std::sync::Arc::clone(t.server()));
    }
    let mut run = Run {
        cluster: cluster.as_ref(),
        loaded,
        namespaces: BTreeSet::new(),
        tenant,
    };
    let outcome = lifecycle(&mut run, provisioner, snapshots, phases).await;
    teardown(run.tenant.take()).await;
    drop(run);
    let failed_here =
        matches!(&outcome.verdict, Verdict::Failed(f) if f.phase != Phase::Counterfactual);
    if !failed_here {
        release(cluster.as_ref()).await;
    }
    (outcome, failed_here.then_some(cluster))
}

/// The phases on the first cluster, then the counterfactual on a fresh one.
async fn lifecycle<'a>(
    run: &mut Run<'a>,
    provisioner: &dyn Provisioner,
    snapshots: &'a SnapshotSettings,
    mut phases: Vec<PhaseRecord>,
) -> ScenarioOutcome {
    let loaded = run.loaded;
    let backend = run.cluster.backend();
    let s = &loaded.scenario;

    // setup
    if let Err(f) = run
        .phase(&mut phases, Phase::Setup, |r| {
            Box::pin(async move {
                r.password_secrets(Phase::Setup).await?;
                r.steps(Phase::Setup, &s.setup).await
            })
        })
        .await
    {
        return finish(loaded, backend, phases, f);
    }
    // break
    if let Err(f) = run
        .phase(&mut phases, Phase::Break, |r| Box::pin(r.break_phase()))
        .await
    {
        return finish(loaded, backend, phases, f);
    }
    // fix
    if let Err(f) = run
        .phase(&mut phases, Phase::Fix, |r| {
            Box::pin(r.steps(Phase::Fix, &s.fix))
        })
        .await
    {
        return finish(loaded, backend, phases, f);
    }
    // converge
    if let Err(f) = run
        .phase(&mut phases, Phase::Converge, |r| {
            Box::pin(r.converge(&s.converge, Phase::Converge))
        })
        .await
    {
        return finish(loaded, backend, phases, f);
    }
    // snapshot
    if s.snapshot.enabled
        && let Err(f) = run
            .phase(&mut phases, Phase::Snapshot, |r| {
                Box::pin(r.snapshot(snapshots))
            })
            .await
    {
        return finish(loaded, backend, phases, f);
    }
    // The counterfactual leases the same Postgres names: release them first.
    teardown(run.tenant.take()).await;
    // counterfactual: a fresh cluster, setup and break again, no fix: it must not converge.
    if s.counterfactual.enabled {
        // On a shared cluster the counterfactual reuses the first run's namespaces.
        if let Err(e) = run.cluster.release().await {
            let f = failure(
                Phase::Counterfactual,
                "could not release the first run's cluster",
                String::new(),
                vec![error_chain(&e)],
                Context::default(),
            );
            return finish(loaded, backend, phases, f);
        }
        let started = Instant::now();
        let outcome = counterfactual(provisioner, loaded).await;
        let (cluster_time, result) = outcome;
        phases.push(PhaseRecord {
            phase: Phase::Counterfactual,
            cluster_time,
            wall_time: started.elapsed(),
            passed: result.is_ok(),
        });
        if let Err(f) = result {
            return finish(loaded, backend, phases, f);
        }
    }
    ScenarioOutcome {
        id: loaded.id.clone(),
        backend,
        phases,
        verdict: Verdict::Passed,
    }
}

/// The scenario's Postgres tenant: `Ok(None)` without a `postgres:` section, `Err(reason)` when
/// no provider can serve it here (the trial is then ignored with that reason and remedy).
async fn tenant_for(scenario: &Scenario) -> Result<Option<Tenant>, String> {
    let Some(spec) = &scenario.postgres else {
        return Ok(None);
    };
    let provider = crate::postgres::shared().map_err(|e| error_chain(&e))?;
    let options = TenantOptions {
        reserve: Names::of_scenario(scenario),
        ..TenantOptions::default()
    };
    Tenant::create(provider, spec, &options)
        .await
        .map(Some)
        .map_err(|e| error_chain(&e))
}

async fn teardown(tenant: Option<Tenant>) {
    if let Some(t) = tenant
        && let Err(e) = t.teardown().await
    {
        tracing::warn!("postgres teardown: {}", error_chain(&e));
    }
}

async fn counterfactual(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
) -> (Duration, Result<(), Failure>) {
    let cluster = match provisioner.provision(&loaded.scenario).await {
        Ok(c) => c,
        Err(e) => {
            return (
                Duration::ZERO,
                Err(failure(
                    Phase::Counterfactual,
                    "could not provision a cluster",
                    String::new(),
                    vec![error_chain(&e)],
                    Context::default(),
                )),
            );
        }
    };
    let tenant = match tenant_for(&loaded.scenario).await {
        Ok(t) => t,
        Err(reason) => {
            let f = failure(
                Phase::Counterfactual,
                "postgres unavailable for the counterfactual run",
                String::new(),
                vec![reason],
                Context::default(),
            );
            return (Duration::ZERO, Err(f));
        }
    };
    if let Some(t) = &tenant {
        cluster.attach_postgres(std::sync::Arc::clone(t.server()));
    }
    let mut run = Run {
        cluster: cluster.as_ref(),
        loaded,
        namespaces: BTreeSet::new(),
        tenant,
    };
    let s = &loaded.scenario;
    let result = async {
        run.password_secrets(Phase::Counterfactual).await?;
        run.steps(Phase::Counterfactual, &s.setup).await?;
        run.break_phase().await.map_err(|mut f| {
            f.phase = Phase::Counterfactual;
            f
        })?;
        match run.converge(&s.converge, Phase::Counterfactual).await {
            Ok(()) => Err(failure(
                Phase::Counterfactual,
                &format!("the cluster converged without the fix (within {}): the fix is not what heals it", s.converge.within),
                "converge.expect (all)".to_owned(),
                Vec::new(),
                run.context().await,
            )),
            Err(_) => Ok(()),
        }
    }
    .await;
    let elapsed = cluster.now();
    release(cluster.as_ref()).await;
    (elapsed, result)
}

/// Releases a cluster the run is done with; a failure is only logged (the result stands).
async fn release(cluster: &dyn Cluster) {
    if let Err(e) = cluster.release().await {
        tracing::warn!("releasing the cluster: {}", error_chain(&e));
    }
}

fn finish(
    loaded: &LoadedScenario,
    backend: crate::backend::BackendKind,
    phases: Vec<PhaseRecord>,
    f: Failure,
) -> ScenarioOutcome {
    ScenarioOutcome {
        id: loaded.id.clone(),
        backend,
        phases,
        verdict: Verdict::Failed(Box::new(f)),
    }
}

#[allow(clippy::too_many_arguments)]
fn failed(
    loaded: &LoadedScenario,
    backend: crate::backend::BackendKind,
    phases: Vec<PhaseRecord>,
    phase: Phase,
    summary: &str,
    expectation: String,
    mismatches: Vec<String>,
    context: Context,
) -> ScenarioOutcome {
    finish(
        loaded,
        backend,
        phases,
        failure(phase, summary, expectation, mismatches, context),
    )
}

fn failure(
    phase: Phase,
    summary: &str,
    expectation: String,
    mismatches: Vec<String>,
    context: Context,
) -> Failure {
    Failure {
        phase,
        summary: summary.to_owned(),
        expectation,
        mismatches,
        context,
    }
}

/// Whether a query returned exactly the expected rows (SQL NULL matches no text).
fn rows_match(want: &[Vec<String>], got: &[Vec<Option<String>>]) -> bool {
    want.len() == got.len()
        && want.iter().zip(got).all(|(w, g)| {
            w.len() == g.len()
                && w.iter()
                    .zip(g)
                    .all(|(w, g)| g.as_deref() == Some(w.as_str()))
        })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

struct Run<'a> {
    cluster: &'a dyn Cluster,
    loaded: &'a LoadedScenario,
    namespaces: BTreeSet<String>,
    /// The scenario's roles and databases on the shared Postgres server, when it declares any.
    tenant: Option<Tenant>,
}

impl Run<'_> {
    async fn phase<F>(
        &mut self,
        records: &mut Vec<PhaseRecord>,
        phase: Phase,
        f: F,
    ) -> Result<(), Failure>
    where
        F: for<'r> FnOnce(&'r mut Self) -> BoxFuture<'r, Result<(), Failure>>,
    {
        let wall = Instant::now();
        let cluster_start = self.cluster.now();
        let result = f(self).await;
        records.push(PhaseRecord {
            phase,
            cluster_time: self.cluster.now().saturating_sub(cluster_start),
            wall_time: wall.elapsed(),
            passed: result.is_ok(),
        });
        result
    }

    /// Writes each declared role's generated password into its `passwordSecret` (creating the
    /// namespace when needed), before anything the scenario applies can read it.
    async fn password_secrets(&mut self, phase: Phase) -> Result<(), Failure> {
        let (Some(tenant), Some(spec)) = (&self.tenant, &self.loaded.scenario.postgres) else {
            return Ok(());
        };
        let client = self.cluster.client();
        for role in &spec.roles {
            let (Some(target), Some(password)) =
                (&role.password_secret, tenant.password(&role.name))
            else {
                continue;
            };
            if let Err(e) = steps::write_password_secret(&client, target, password).await {
                return Err(failure(
                    phase,
                    &format!(
                        "could not write the password of postgres role {:?}",
                        role.name
                    ),
                    format!("postgres.roles[{}].passwordSecret", role.name),
                    vec![error_chain(&e)],
                    Context::default(),
                ));
            }
            self.namespaces.insert(target.namespace.clone());
        }
        Ok(())
    }

    async fn steps(&mut self, phase: Phase, steps: &[Step]) -> Result<(), Failure> {
        for (i, step) in steps.iter().enumerate() {
            if let Err(mismatches) = self.step(step).await {
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!("step {} ({}) failed", i + 1, step.keyword()),
                    format!("{}[{i}]: {}", phase, step.keyword()),
                    mismatches,
                    ctx,
                ));
            }
        }
        Ok(())
    }

    async fn step(&mut self, step: &Step) -> Result<(), Vec<String>> {
        let client = self.cluster.client();
        let err = |e: StepError| vec![error_chain(&e)];
        match step {
            Step::Apply(a) => {
                let objects = steps::apply_objects(a, &self.loaded.manifests).map_err(err)?;
                for o in &objects {
                    if o.get("kind").and_then(Value::as_str) == Some("Namespace")
                        && let Some(n) = o.pointer("/metadata/name").and_then(Value::as_str)
                    {
                        self.namespaces.insert(n.to_owned());
                    }
                    if let Some(n) = o
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .or(a.namespace.as_deref())
                    {
                        self.namespaces.insert(n.to_owned());
                    }
                }
                steps::apply(&client, a, &objects).await.map_err(err)
            }
            Step::Delete(d) => {
                steps::delete(&client, &d.object).await.map_err(err)?;
                if d.wait {
                    let deadline = self.cluster.now() + DEFAULT_WAIT;
                    loop {
                        if !steps::exists(&client, &d.object).await.map_err(err)? {
                            return Ok(());
                        }
                        if self.cluster.now() >= deadline {
                            return Err(vec![format!(
                                "{} {} still exists {} after deletion",
                                d.object.kind,
                                d.object.name,
                                crate::report::human_duration(DEFAULT_WAIT)
                            )]);
                        }
                        self.cluster
                            .advance(deadline)
                            .await
                            .map_err(|e| vec![error_chain(&e)])?;
                    }
                }
                Ok(())
            }
            Step::Patch(p) => steps::patch(&client, p).await.map_err(err),
            Step::Scale(s) => steps::scale(&client, s).await.map_err(err),
            Step::RolloutRestart(r) => {
                // kubectl stamps its own clock; the cluster's keeps the sim reproducible.
                let stamp = self.cluster.timestamp().to_string();
                steps::rollout_restart(&client, r, &stamp)
                    .await
                    .map_err(err)
            }
            Step::Sql(sql) => match &self.tenant {
                Some(t) => t.run_step(sql).await.map_err(|e| vec![error_chain(&e)]),
                None => Err(vec!["sql step without a postgres: section".to_owned()]),
            },
            Step::Expect(e) => {
                let deadline = self.cluster.now() + e.within().map_or(DEFAULT_WAIT, |d| d.as_std());
                self.wait_for(e, deadline).await.map_err(|o| o.mismatches)
            }
            Step::Sleep(d) => {
                let until = self.cluster.now() + d.as_std();
                while self.cluster.now() < until {
                    self.cluster
                        .advance(until)
                        .await
                        .map_err(|e| vec![error_chain(&e)])?;
                }
                Ok(())
            }
        }
    }

    /// Evaluates one expectation now; SQL checks go to the scenario's Postgres tenant.
    async fn observe(&self, client: &kube::Client, e: &Expectation) -> Observation {
        let fails = |m: String| Observation {
            holds: false,
            mismatches: vec![m],
        };
        match (e, &self.tenant) {
            (Expectation::SqlError(check), Some(t)) => match t.check(check).await {
                Ok(Ok(_)) => Observation {
                    holds: true,
                    mismatches: Vec::new(),
                },
                Ok(Err(mismatch)) => fails(mismatch.to_string()),
                Err(err) => fails(error_chain(&err)),
            },
            (Expectation::SqlError(_), None) => {
                fails("sqlError expectation without a postgres: section".to_owned())
            }
            (Expectation::Sql(check), Some(t)) => match t.query(check).await {
                Ok(rows) => match &check.rows {
                    Some(want) if !rows_match(want, &rows) => fails(format!(
                        "expected rows {want:?}, got {:?}",
                        rows.iter()
                            .map(|r| r
                                .iter()
                                .map(|c| c.as_deref().unwrap_or("NULL"))
                                .collect::<Vec<_>>())
                            .collect::<Vec<_>>()
                    )),
                    _ => Observation {
                        holds: true,
                        mismatches: Vec::new(),
                    },
                },
                Err(err) => fails(error_chain(&err)),
            },
            (Expectation::Sql(_), None) => {
                fails("sql expectation without a postgres: section".to_owned())
            }
            _ => observe(client, e)
                .await
                .unwrap_or_else(|err| fails(error_chain(&err))),
        }
    }

    /// Waits until `e` holds or the deadline passes; returns the last observation on failure.
    async fn wait_for(&self, e: &Expectation, deadline: Duration) -> Result<(), Observation> {
        let client = self.cluster.client();
        loop {
            let obs = self.observe(&client, e).await;
            if obs.holds {
                return Ok(());
            }
            if self.cluster.now() >= deadline {
                return Err(obs);
            }
            if let Err(err) = self.cluster.advance(deadline).await {
                return Err(Observation {
                    holds: false,
                    mismatches: vec![error_chain(&err)],
                });
            }
        }
    }

    async fn break_phase(&mut self) -> Result<(), Failure> {
        let s = &self.loaded.scenario;
        self.steps(Phase::Break, &s.break_.steps).await?;
        let start = self.cluster.now();
        for (i, symptom) in s.break_.symptoms.iter().enumerate() {
            let within = symptom.within().map_or(DEFAULT_WAIT, |d| d.as_std());
            if let Err(obs) = self.wait_for(symptom, start + within).await {
                let ctx = self.context().await;
                return Err(failure(
                    Phase::Break,
                    &format!(
                        "could not reproduce: symptom {} did not appear within {}",
                        i + 1,
                        crate::report::human_duration(within)
                    ),
                    format!("break.symptoms[{i}]: {}", describe(symptom)),
                    obs.mismatches,
                    ctx,
                ));
            }
        }
        Ok(())
    }

    async fn converge(&mut self, spec: &Converge, phase: Phase) -> Result<(), Failure> {
        let deadline = self.cluster.now() + spec.within.as_std();
        let client = self.cluster.client();
        // Hold all at once.
        loop {
            let mut failing = None;
            for (i, e) in spec.expect.iter().enumerate() {
                let obs = self.observe(&client, e).await;
                if !obs.holds {
                    failing = Some((i, obs));
                    break;
                }
            }
            let Some((i, obs)) = failing else { break };
            if self.cluster.now() >= deadline {
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!("did not converge within {}", spec.within),
                    format!("converge.expect[{i}]: {}", describe(&spec.expect[i])),
                    obs.mismatches,
                    ctx,
                ));
            }
            self.cluster.advance(deadline).await.map_err(|e| {
                failure(
                    phase,
                    "lost the cluster",
                    String::new(),
                    vec![error_chain(&e)],
                    Context::default(),
                )
            })?;
        }
        // Then stay converged for the settle window: no new restarts, no condition flips.
        let baseline = self.stability().await;
        let settle_end = self.cluster.now() + spec.settle.as_std();
        while self.cluster.now() < settle_end {
            self.cluster.advance(settle_end).await.map_err(|e| {
                failure(
                    phase,
                    "lost the cluster",
                    String::new(),
                    vec![error_chain(&e)],
                    Context::default(),
                )
            })?;
            let now = self.stability().await;
            let mut changes: Vec<String> = Vec::new();
            // Instability is a regression: a restart, or a condition that was True and is not.
            // Something still coming up (False → True) or a new object is not.
            for (k, v) in &now {
                let Some(old) = baseline.get(k) else { continue };
                let regressed = if k.ends_with(" restarts") {
                    v.parse::<i64>().unwrap_or(0) > old.parse::<i64>().unwrap_or(0)
                } else {
                    old == "True" && v != "True"
                };
                if regressed {
                    changes.push(format!("{k}: {old} → {v}"));
                }
            }
            for (i, e) in spec.expect.iter().enumerate() {
                let obs = self.observe(&client, e).await;
                if !obs.holds {
                    changes.push(format!(
                        "converge.expect[{i}] ({}) stopped holding: {}",
                        describe(e),
                        obs.mismatches.join("; ")
                    ));
                }
            }
            if !changes.is_empty() {
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!("converged but did not stay stable for {}", spec.settle),
                    "settle window".to_owned(),
                    changes,
                    ctx,
                ));
            }
        }
        Ok(())
    }

    /// Restart counts and condition statuses in the scenario's namespaces.
    async fn stability(&self) -> BTreeMap<String, String> {
        let client = self.cluster.client();
        let mut out = BTreeMap::new();
        for ns in &self.namespaces {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let restarts: i32 = p
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
                    out.insert(format!("pod {ns}/{name} restarts"), restarts.to_string());
                    for c in p.status.and_then(|s| s.conditions).unwrap_or_default() {
                        out.insert(format!("pod {ns}/{name} {}", c.type_), c.status);
                    }
                }
            }
            let deps: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = deps.list(&ListParams::default()).await {
                for d in list.items {
                    let name = d.metadata.name.clone().unwrap_or_default();
                    for c in d.status.and_then(|s| s.conditions).unwrap_or_default() {
                        out.insert(format!("deployment {ns}/{name} {}", c.type_), c.status);
                    }
                }
            }
        }
        out
    }

    async fn snapshot(&mut self, settings: &SnapshotSettings) -> Result<(), Failure> {
        let client = self.cluster.client();
        let s = &self.loaded.scenario;
        let mut kinds: Vec<(String, String)> = if s.snapshot.kinds.is_empty() {
            [
                "Deployment",
                "ReplicaSet",
                "StatefulSet",
                "DaemonSet",
                "Job",
                "CronJob",
                "Pod",
                "Service",
                "PersistentVolumeClaim",
                "ConfigMap",
                "Secret",
            ]
            .iter()
            .filter_map(|k| Some((steps::builtin_api_version(k)?.to_owned(), (*k).to_owned())))
            .collect()
        } else {
            s.snapshot
                .kinds
                .iter()
                .map(|k| {
                    (
                        steps::builtin_api_version(k).unwrap_or_default().to_owned(),
                        k.clone(),
                    )
                })
                .collect()
        };
        // Custom resources the scenario applied are part of its state too.
        for objects in self.loaded.manifests.values() {
            for o in objects {
                let (Some(v), Some(k)) = (
                    o.get("apiVersion").and_then(Value::as_str),
                    o.get("kind").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if steps::builtin_api_version(k).is_none()
                    && k != "CustomResourceDefinition"
                    && !kinds.iter().any(|(_, x)| x == k)
                {
                    kinds.push((v.to_owned(), k.to_owned()));
                }
            }
        }
        let namespaces: Vec<String> = if s.snapshot.namespaces.is_empty() {
            self.namespaces.iter().cloned().collect()
        } else {
            s.snapshot.namespaces.clone()
        };
        let mut objects = Vec::new();
        for (api_version, kind) in &kinds {
            let Ok((ar, caps)) = steps::resolve(&client, api_version, kind).await else {
                continue;
            };
            if caps.scope != kube::discovery::Scope::Namespaced {
                continue;
            }
            for ns in &namespaces {
                let api: kube::Api<kube::api::DynamicObject> =
                    kube::Api::namespaced_with(client.clone(), ns, &ar);
                let Ok(list) = api.list(&ListParams::default()).await else {
                    continue;
                };
                for mut o in list.items {
                    // Every object must carry its kind for the projection.
                    o.types = Some(kube::core::TypeMeta {
                        api_version: api_version.clone(),
                        kind: kind.clone(),
                    });
                    let name = o.metadata.name.clone().unwrap_or_default();
                    let excluded = s.snapshot.exclude.iter().any(|e| {
                        e.kind == *kind
                            && e.name == name
                            && e.namespace.as_deref().is_none_or(|n| n == ns)
                    });
                    // Created by every cluster in every namespace, not by the scenario.
                    if excluded || (kind == "ConfigMap" && name == "kube-root-ca.crt") {
                        continue;
                    }
                    if let Ok(v) = serde_json::to_value(o) {
                        objects.push(v);
                    }
                }
            }
        }
        let text = render(&project(&objects)).map_err(|e| {
            failure(
                Phase::Snapshot,
                "could not render the snapshot",
                String::new(),
                vec![e.to_string()],
                Context::default(),
            )
        })?;
        let name = snapshot_name(&self.loaded.id);
        let source = self.loaded.path.display().to_string();
        match compare(&settings.dir, &name, &source, &text, settings.mode) {
            Ok(Comparison::Matches) => Ok(()),
            Ok(Comparison::Missing { written }) => Err(failure(
                Phase::Snapshot,
                &format!("no snapshot snapshots/{name}.snap yet"),
                "snapshot".to_owned(),
                vec![written.map_or_else(|| "run locally (outside CI) to record it, then review with `cargo insta review`".to_owned(), |p| format!("wrote {} for review: `cargo insta review`", p.display()))],
                Context::default(),
            )),
            Ok(Comparison::Changed { diff, written }) => {
                let mut lines: Vec<String> = diff.lines().map(str::to_owned).collect();
                if let Some(p) = written {
                    lines.push(format!("wrote {} for review: `cargo insta review`", p.display()));
                }
                Err(failure(Phase::Snapshot, &format!("the converged state differs from snapshots/{name}.snap"), "snapshot".to_owned(), lines, Context::default()))
            }
            Err(e) => Err(failure(Phase::Snapshot, "could not compare the snapshot", String::new(), vec![error_chain(&e)], Context::default())),
        }
    }

    /// Events, pod statuses and log tails of the scenario's namespaces, for failure reports.
    async fn context(&self) -> Context {
        let client = self.cluster.client();
        let mut ctx = Context::default();
        for ns in &self.namespaces {
            let events: kube::Api<k8s_openapi::api::core::v1::Event> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = events.list(&ListParams::default()).await {
                let n = list.items.len();
                for e in list.items.into_iter().skip(n.saturating_sub(15)) {
                    ctx.events.push(format!(
                        "{} {} {}/{}: {}",
                        e.type_.unwrap_or_default(),
                        e.reason.unwrap_or_default(),
                        e.involved_object.kind.unwrap_or_default().to_lowercase(),
                        e.involved_object.name.unwrap_or_default(),
                        e.message.unwrap_or_default()
                    ));
                }
            }
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let status = p.status.clone().unwrap_or_default();
                    let phase = status.phase.clone().unwrap_or_default();
                    let waiting: Vec<String> = status
                        .container_statuses
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|c| {
                            c.state
                                .as_ref()?
                                .waiting
                                .as_ref()?
                                .reason
                                .clone()
                                .map(|r| format!("{}={r}", c.name))
                        })
                        .collect();
                    ctx.pods.push(
                        format!("{ns}/{name}  {phase}  {}", waiting.join(","))
                            .trim_end()
                            .to_owned(),
                    );
                    for c in p.spec.map(|s| s.containers).unwrap_or_default() {
                        let lp = kube::api::LogParams {
                            container: Some(c.name.clone()),
                            tail_lines: Some(10),
                            ..Default::default()
                        };
                        if let Ok(text) = pods.logs(&name, &lp).await {
                            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                            if !lines.is_empty() {
                                ctx.logs.push((format!("{ns}/{name}/{}", c.name), lines));
                            }
                        }
                    }
                }
            }
        }
        ctx
    }
}
