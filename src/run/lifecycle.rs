//! The scenario lifecycle: the phase order, as data, and the counterfactual.
//!
//! The first run goes through [`FIRST_RUN`] on a fresh cluster. The counterfactual opens a
//! second fresh cluster the same way ([`open`]), goes through [`COUNTERFACTUAL`] with the same
//! phase code, and then must *not* converge. A mutant (a plausible wrong fix kept with the
//! scenario) is the same replay with the mutant's steps in place of no fix ([`run_mutant`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::failure;
use super::outcome::{
    Context, Failure, Phase, PhaseRecord, Recovery, RunTimeline, ScenarioOutcome, TimeBase,
    Timeline, Verdict,
};
use super::pause::{Keep, Pause, Resume};
use super::session::Session;
use super::snapshot_phase::SnapshotSettings;
use super::trace::{MarkKind, Trace};
use crate::backend::{BackendError, BackendKind, Cluster, Provisioner};
use crate::error_chain::error_chain;
use crate::postgres::{Names, Tenant, TenantOptions};
use crate::scenario::{LoadedScenario, Scenario, Step};

/// The phases of the first run, in order (a disabled snapshot is skipped).
const FIRST_RUN: [Phase; 5] = [
    Phase::Setup,
    Phase::Break,
    Phase::Fix,
    Phase::Converge,
    Phase::Snapshot,
];

/// The label of the first run's timeline.
const FIXED_RUN: &str = "fixed run";

/// The label of the counterfactual's timeline.
const COUNTERFACTUAL_RUN: &str = "counterfactual (no fix)";

/// What the counterfactual and each mutant repeat on their own cluster before checking that,
/// without the fix, the cluster does not converge.
const COUNTERFACTUAL: [Phase; 2] = [Phase::Setup, Phase::Break];

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
    run_scenario_recording(provisioner, loaded, snapshots, false).await
}

/// Like [`run_scenario_keeping`]; with `record`, the outcome also carries the run's
/// [`Timeline`] (pods, watched objects and events of the first run and the counterfactual).
pub async fn run_scenario_recording(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
    record: bool,
) -> (ScenarioOutcome, Option<Box<dyn Cluster>>) {
    run_scenario_with(
        provisioner,
        loaded,
        snapshots,
        record,
        None,
        Keep::OnFailure,
    )
    .await
}

/// Like [`run_scenario_recording`], pausing the first run at `pause` (see [`Pause`]) and
/// returning its cluster as [`Keep`] says: after a failure of the first run, as it was then;
/// with [`Keep::Always`] also after a pass, as it was at the end of the first run, provided
/// the counterfactual did not need it first (the simulator's clusters are never released;
/// other backends release the first run before the counterfactual reuses its names).
pub async fn run_scenario_with(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
    record: bool,
    pause: Option<&Pause>,
    keep: Keep,
) -> (ScenarioOutcome, Option<Box<dyn Cluster>>) {
    let outcome = |backend, verdict| ScenarioOutcome {
        id: loaded.id.clone(),
        backend,
        phases: Vec::new(),
        verdict,
        recovery: Recovery::default(),
        timeline: None,
        report: None,
    };
    let (cluster, tenant) = match open(provisioner, &loaded.scenario).await {
        Ok(opened) => opened,
        Err(Unopened::Unsuitable { backend, reasons }) => {
            let why = format!(
                "the {backend} cluster cannot reproduce this scenario: {}",
                reasons.join("; ")
            );
            return (outcome(backend, Verdict::Ignored(why)), None);
        }
        Err(Unopened::Provision(e)) => {
            let f = failure(
                Phase::Setup,
                "could not provision a cluster",
                String::new(),
                vec![error_chain(&e)],
                Context::default(),
            );
            return (
                outcome(provisioner.kind(), Verdict::Failed(Box::new(f))),
                None,
            );
        }
        Err(Unopened::Postgres { backend, reason }) => {
            let why = format!("postgres unavailable: {reason}");
            return (outcome(backend, Verdict::Ignored(why)), None);
        }
    };
    let mut session = Session {
        cluster: cluster.as_ref(),
        loaded,
        namespaces: BTreeSet::new(),
        tenant,
        trace: Trace::new(FIXED_RUN, record),
        repos: std::collections::BTreeMap::new(),
    };
    // Before anything runs: log output may name what the scenario itself holds secret.
    super::redact::remember(&session.static_redactor());
    let mut outcome = lifecycle(&mut session, provisioner, snapshots, record, pause).await;
    session.redact(&mut outcome).await;
    teardown(session.tenant.take()).await;
    drop(session);
    let failed_here =
        matches!(&outcome.verdict, Verdict::Failed(f) if f.phase != Phase::Counterfactual);
    // Only the simulator's release leaves the cluster as it was (it has nothing to release).
    let intact =
        !enabled(&loaded.scenario, Phase::Counterfactual) || cluster.backend() == BackendKind::Sim;
    let kept = match keep {
        Keep::Never => false,
        Keep::OnFailure => failed_here,
        Keep::Always => failed_here || intact,
    };
    if !kept {
        release(cluster.as_ref()).await;
    }
    (outcome, kept.then_some(cluster))
}

/// Why a run could not start on a fresh cluster.
enum Unopened {
    /// The cluster cannot reproduce the scenario (ignored, not failed).
    Unsuitable {
        backend: BackendKind,
        reasons: Vec<String>,
    },
    /// Provisioning failed.
    Provision(BackendError),
    /// The scenario's Postgres tenant could not be made here.
    Postgres {
        backend: BackendKind,
        reason: String,
    },
}

/// A fresh cluster for `scenario` and, when it declares one, its Postgres tenant wired to it.
async fn open(
    provisioner: &dyn Provisioner,
    scenario: &Scenario,
) -> Result<(Box<dyn Cluster>, Option<Tenant>), Unopened> {
    let cluster = match provisioner.provision(scenario).await {
        Ok(c) => c,
        Err(BackendError::Unsuitable { backend, reasons }) => {
            return Err(Unopened::Unsuitable { backend, reasons });
        }
        Err(e) => return Err(Unopened::Provision(e)),
    };
    let tenant = match tenant_for(scenario).await {
        Ok(t) => t,
        Err(reason) => {
            release(cluster.as_ref()).await;
            return Err(Unopened::Postgres {
                backend: cluster.backend(),
                reason,
            });
        }
    };
    if let Some(t) = &tenant {
        cluster.attach_postgres(Arc::clone(t.server()));
    }
    Ok((cluster, tenant))
}

/// Runs one phase of [`FIRST_RUN`] or [`COUNTERFACTUAL`]; failures are reported as `as_phase`.
/// Records its band (converge records its own: converge, then settle) and where it failed.
async fn run_phase(
    session: &mut Session<'_>,
    phase: Phase,
    as_phase: Phase,
    snapshots: &SnapshotSettings,
) -> Result<(), Failure> {
    let start = session.cluster.now();
    if phase == Phase::Fix {
        session.trace.fix_started(start);
    }
    let result = run_phase_steps(session, phase, as_phase, snapshots).await;
    let end = session.cluster.now();
    if matches!(phase, Phase::Setup | Phase::Break | Phase::Fix) {
        session.sample().await;
        session
            .trace
            .band(phase.as_str(), start, end, result.is_ok());
    }
    if let Err(f) = &result {
        session.trace.mark(
            end,
            MarkKind::Failure,
            format!("{} failed: {}", f.phase, f.summary),
        );
    }
    result
}

async fn run_phase_steps(
    session: &mut Session<'_>,
    phase: Phase,
    as_phase: Phase,
    snapshots: &SnapshotSettings,
) -> Result<(), Failure> {
    let s = &session.loaded.scenario;
    match phase {
        Phase::Setup => {
            session.gitops(as_phase).await?;
            session.password_secrets(as_phase).await?;
            session.steps(as_phase, &s.setup).await?;
            session.baseline(as_phase).await
        }
        Phase::Break => session.break_phase().await.map_err(|mut f| {
            f.phase = as_phase;
            f
        }),
        Phase::Fix => session.steps(as_phase, &s.fix).await,
        Phase::Converge => session.converge(&s.converge, as_phase).await,
        Phase::Snapshot => session.snapshot(snapshots).await,
        // Not phases of one cluster: see `replay_with`.
        Phase::Counterfactual | Phase::Mutant | Phase::Ablation => Ok(()),
    }
}

/// Whether the scenario asks for `phase`.
const fn enabled(scenario: &Scenario, phase: Phase) -> bool {
    match phase {
        Phase::Snapshot => scenario.snapshot.enabled,
        Phase::Counterfactual => scenario.counterfactual.enabled,
        Phase::Ablation => scenario.fix_minimal,
        Phase::Setup | Phase::Break | Phase::Fix | Phase::Converge | Phase::Mutant => true,
    }
}

/// [`FIRST_RUN`] on the first cluster, then the counterfactual on a fresh one.
async fn lifecycle(
    session: &mut Session<'_>,
    provisioner: &dyn Provisioner,
    snapshots: &SnapshotSettings,
    record: bool,
    pause: Option<&Pause>,
) -> ScenarioOutcome {
    let loaded = session.loaded;
    let backend = session.cluster.backend();
    let s = &loaded.scenario;
    let mut phases = Vec::new();
    let mut runs = Vec::new();
    let mut counterfactual_run = None;
    let mut finish = |session: &Session<'_>, phases, verdict, replay: Option<RunTimeline>| {
        let first = session.trace.finish(session.cluster.now());
        runs.push(first);
        runs.extend(replay);
        ScenarioOutcome {
            id: loaded.id.clone(),
            backend,
            phases,
            verdict,
            recovery: session.trace.recovery(),
            timeline: record.then(|| {
                Box::new(Timeline {
                    time_base: TimeBase::of(backend),
                    runs: std::mem::take(&mut runs),
                })
            }),
            report: None,
        }
    };
    for phase in FIRST_RUN.into_iter().filter(|p| enabled(s, *p)) {
        let wall = Instant::now();
        let cluster_start = session.cluster.now();
        let result = run_phase(session, phase, phase, snapshots).await;
        phases.push(PhaseRecord {
            phase,
            cluster_time: session.cluster.now().saturating_sub(cluster_start),
            wall_time: wall.elapsed(),
            passed: result.is_ok(),
        });
        if let Err(f) = result {
            return finish(session, phases, Verdict::Failed(Box::new(f)), None);
        }
        let resume = match pause {
            Some(p) => p.after(phase, &loaded.id, session.cluster).await,
            None => Resume::Continue,
        };
        if resume == Resume::Stop {
            let f = failure(
                phase,
                &format!("stopped while paused after the {phase} phase"),
                String::new(),
                Vec::new(),
                Context::default(),
            );
            return finish(session, phases, Verdict::Failed(Box::new(f)), None);
        }
    }
    // The counterfactual leases the same Postgres names: release them first.
    teardown(session.tenant.take()).await;
    if enabled(s, Phase::Counterfactual) {
        // On a shared cluster the counterfactual reuses the first run's namespaces.
        if let Err(e) = session.cluster.release().await {
            let f = failure(
                Phase::Counterfactual,
                "could not release the first run's cluster",
                String::new(),
                vec![error_chain(&e)],
                Context::default(),
            );
            return finish(session, phases, Verdict::Failed(Box::new(f)), None);
        }
        let started = Instant::now();
        let (cluster_time, result, replay) =
            counterfactual(provisioner, loaded, snapshots, record).await;
        phases.push(PhaseRecord {
            phase: Phase::Counterfactual,
            cluster_time,
            wall_time: started.elapsed(),
            passed: result.is_ok(),
        });
        if let Err(f) = result {
            return finish(session, phases, Verdict::Failed(Box::new(f)), replay);
        }
        counterfactual_run = replay;
    }
    if enabled(s, Phase::Ablation) {
        let started = Instant::now();
        let (cluster_time, found) = ablate(provisioner, loaded, snapshots).await;
        let unnecessary: Vec<String> = found
            .iter()
            .filter(|n| !n.necessary)
            .map(|n| {
                format!(
                    "fix[{}] ({}): the cluster converged without it",
                    n.index, n.step
                )
            })
            .collect();
        let errors: Vec<String> = found.iter().filter_map(|n| n.error.clone()).collect();
        let passed = unnecessary.is_empty() && errors.is_empty();
        phases.push(PhaseRecord {
            phase: Phase::Ablation,
            cluster_time,
            wall_time: started.elapsed(),
            passed,
        });
        if !passed {
            let f = failure(
                Phase::Ablation,
                "fixMinimal: not every fix step is necessary",
                "fix (each step left out in turn)".to_owned(),
                unnecessary.into_iter().chain(errors).collect(),
                Context::default(),
            );
            return finish(
                session,
                phases,
                Verdict::Failed(Box::new(f)),
                counterfactual_run,
            );
        }
    }
    finish(session, phases, Verdict::Passed, counterfactual_run)
}

/// Whether one fix step is necessary: the scenario replayed without it does not converge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepNecessity {
    /// The step's index in `fix`.
    pub index: usize,
    /// The step's keyword (`apply`, `patch`, ...).
    pub step: String,
    /// Whether leaving it out kept the cluster from converging.
    pub necessary: bool,
    /// Why the replay without it could not be judged (a setup or break failure).
    pub error: Option<String>,
}

/// Replays the scenario once per fix step with that step left out, on fresh clusters, and
/// says which steps the cluster needs to converge. Returns the cluster time spent too.
pub async fn ablate(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
) -> (Duration, Vec<StepNecessity>) {
    let fix = &loaded.scenario.fix;
    let mut total = Duration::ZERO;
    let mut out = Vec::new();
    for (index, step) in fix.iter().enumerate() {
        let without: Vec<Step> = fix
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, s)| s.clone())
            .collect();
        let (elapsed, replay, _) = replay_with(
            provisioner,
            loaded,
            snapshots,
            &without,
            Phase::Ablation,
            "converged without the step",
            None,
        )
        .await;
        total += elapsed;
        let (necessary, error) = match replay {
            Replay::NotConverged => (true, None),
            Replay::Failed(f) if f.expectation == "converge.expect (all)" => (false, None),
            Replay::Failed(f) => (
                true,
                Some(format!(
                    "fix[{index}] left out: {}: {}",
                    f.summary,
                    f.mismatches.join("; ")
                )),
            ),
            Replay::Unopened(_) => (
                true,
                Some(format!("fix[{index}] left out: could not open a cluster")),
            ),
        };
        out.push(StepNecessity {
            index,
            step: step.keyword().to_owned(),
            necessary,
            error,
        });
    }
    (total, out)
}

/// What replaying the scenario with another fix (none, or a mutant's) came to.
enum Replay {
    /// It did not converge, as it must not.
    NotConverged,
    /// It converged, or a phase before the check failed.
    Failed(Failure),
    /// It could not start on a fresh cluster.
    Unopened(Unopened),
}

/// The scenario again on a fresh cluster with `fix` instead of its fix (nothing, for the
/// counterfactual; a mutant's steps): setup and break as usual, then it must not converge.
/// Failures are reported as `as_phase`. With `record` (the run's label), also returns its
/// timeline.
async fn replay_with(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
    fix: &[Step],
    as_phase: Phase,
    what_converged: &str,
    record: Option<&str>,
) -> (Duration, Replay, Option<RunTimeline>) {
    let (cluster, tenant) = match open(provisioner, &loaded.scenario).await {
        Ok(opened) => opened,
        Err(e) => return (Duration::ZERO, Replay::Unopened(e), None),
    };
    let mut session = Session {
        cluster: cluster.as_ref(),
        loaded,
        namespaces: BTreeSet::new(),
        tenant,
        trace: Trace::new(record.unwrap_or_default(), record.is_some()),
        repos: std::collections::BTreeMap::new(),
    };
    let s = &loaded.scenario;
    let result = async {
        for phase in COUNTERFACTUAL {
            run_phase(&mut session, phase, as_phase, snapshots).await?;
        }
        if !fix.is_empty() {
            let start = session.cluster.now();
            session.trace.fix_started(start);
            let fixed = session.steps(as_phase, fix).await;
            session
                .trace
                .band("fix", start, session.cluster.now(), fixed.is_ok());
            fixed?;
        }
        match session.converge(&s.converge, as_phase).await {
            Ok(()) => Err(failure(
                as_phase,
                &format!("{what_converged} (within {})", s.converge.within),
                "converge.expect (all)".to_owned(),
                Vec::new(),
                session.context().await,
            )),
            Err(_) => Ok(()),
        }
    }
    .await;
    let mut timeline = record.map(|_| session.trace.finish(session.cluster.now()));
    // Redacted here, while this cluster and its Secrets still exist.
    let result = if result.is_err() || timeline.is_some() {
        let redactor = session.redactor().await;
        if let Some(t) = &mut timeline {
            redactor.redact_run(t);
        }
        result.map_err(|mut f| {
            redactor.redact_failure(&mut f);
            f
        })
    } else {
        result
    };
    teardown(session.tenant.take()).await;
    let elapsed = cluster.now();
    release(cluster.as_ref()).await;
    let replay = match result {
        Ok(()) => Replay::NotConverged,
        Err(f) => Replay::Failed(f),
    };
    (elapsed, replay, timeline)
}

/// The scenario again on a fresh cluster, without the fix: it must not converge.
async fn counterfactual(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    snapshots: &SnapshotSettings,
    record: bool,
) -> (Duration, Result<(), Failure>, Option<RunTimeline>) {
    let (elapsed, replay, timeline) = replay_with(
        provisioner,
        loaded,
        snapshots,
        &[],
        Phase::Counterfactual,
        "the cluster converged without the fix: the fix is not what heals it",
        record.then_some(COUNTERFACTUAL_RUN),
    )
    .await;
    let refused = |summary: &str, why: String| {
        failure(
            Phase::Counterfactual,
            summary,
            String::new(),
            vec![why],
            Context::default(),
        )
    };
    let result = match replay {
        Replay::NotConverged => Ok(()),
        Replay::Failed(f) => Err(f),
        Replay::Unopened(Unopened::Provision(e)) => {
            Err(refused("could not provision a cluster", error_chain(&e)))
        }
        Replay::Unopened(Unopened::Unsuitable { reasons, .. }) => {
            Err(refused("could not provision a cluster", reasons.join("; ")))
        }
        Replay::Unopened(Unopened::Postgres { reason, .. }) => Err(refused(
            "postgres unavailable for the counterfactual run",
            reason,
        )),
    };
    (elapsed, result, timeline)
}

/// The trial name suffix of a mutant: `<area>/<scenario>::mutant::<name>`.
#[must_use]
pub fn mutant_id(scenario_id: &str, mutant: &str) -> String {
    format!("{scenario_id}::mutant::{mutant}")
}

/// Runs the scenario's mutant `name` on a fresh cluster from `provisioner`: setup, break (its
/// symptoms must appear), the mutant's steps instead of the fix, and then the cluster must
/// *not* converge. Passes when the wrong fix fails to heal the cluster.
pub async fn run_mutant(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    name: &str,
    snapshots: &SnapshotSettings,
) -> ScenarioOutcome {
    run_mutant_recording(provisioner, loaded, name, snapshots, false).await
}

/// Like [`run_mutant`]; with `record`, the outcome also carries the replay's [`Timeline`].
pub async fn run_mutant_recording(
    provisioner: &dyn Provisioner,
    loaded: &LoadedScenario,
    name: &str,
    snapshots: &SnapshotSettings,
    record: bool,
) -> ScenarioOutcome {
    let id = mutant_id(&loaded.id, name);
    let outcome =
        |backend: BackendKind, phases, verdict, run: Option<RunTimeline>| ScenarioOutcome {
            id: id.clone(),
            backend,
            phases,
            verdict,
            recovery: Recovery::default(),
            timeline: run.map(|r| {
                Box::new(Timeline {
                    time_base: TimeBase::of(backend),
                    runs: vec![r],
                })
            }),
            report: None,
        };
    let Some(mutant) = loaded.scenario.mutants.iter().find(|m| m.name == name) else {
        let f = failure(
            Phase::Mutant,
            &format!("the scenario has no mutant `{name}`"),
            String::new(),
            Vec::new(),
            Context::default(),
        );
        return outcome(
            provisioner.kind(),
            Vec::new(),
            Verdict::Failed(Box::new(f)),
            None,
        );
    };
    let started = Instant::now();
    let label = format!("mutant {name}");
    let (cluster_time, replay, run) = replay_with(
        provisioner,
        loaded,
        snapshots,
        &mutant.fix,
        Phase::Mutant,
        &format!(
            "the wrong fix `{name}` converged: the scenario cannot tell it from the documented fix"
        ),
        record.then_some(label.as_str()),
    )
    .await;
    let phase_record = |passed| {
        vec![PhaseRecord {
            phase: Phase::Mutant,
            cluster_time,
            wall_time: started.elapsed(),
            passed,
        }]
    };
    match replay {
        Replay::NotConverged => {
            outcome(provisioner.kind(), phase_record(true), Verdict::Passed, run)
        }
        Replay::Failed(f) => outcome(
            provisioner.kind(),
            phase_record(false),
            Verdict::Failed(Box::new(f)),
            run,
        ),
        Replay::Unopened(Unopened::Unsuitable { backend, reasons }) => outcome(
            backend,
            Vec::new(),
            Verdict::Ignored(format!(
                "the {backend} cluster cannot reproduce this scenario: {}",
                reasons.join("; ")
            )),
            None,
        ),
        Replay::Unopened(Unopened::Postgres { backend, reason }) => outcome(
            backend,
            Vec::new(),
            Verdict::Ignored(format!("postgres unavailable: {reason}")),
            None,
        ),
        Replay::Unopened(Unopened::Provision(e)) => {
            let f = failure(
                Phase::Setup,
                "could not provision a cluster",
                String::new(),
                vec![error_chain(&e)],
                Context::default(),
            );
            outcome(
                provisioner.kind(),
                Vec::new(),
                Verdict::Failed(Box::new(f)),
                None,
            )
        }
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

/// Releases a cluster the run is done with; a failure is only logged (the result stands).
async fn release(cluster: &dyn Cluster) {
    if let Err(e) = cluster.release().await {
        tracing::warn!("releasing the cluster: {}", error_chain(&e));
    }
}
