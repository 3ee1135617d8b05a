//! One run of a scenario on one cluster: the state a run carries between phases (the
//! cluster, the namespaces it touched, its Postgres tenant) and the execution of its steps and
//! symptoms. The phase order lives in [`super::lifecycle`], the settle window in
//! [`super::settle`], failure context in [`super::context`].

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::context::failure;
use super::observe::{Observation, describe, observe};
use super::outcome::{Context, Failure, Phase};
use super::steps::{self, StepError};
use super::trace::{MarkKind, Trace};
use crate::backend::Cluster;
use crate::error_chain::error_chain;
use crate::postgres::Tenant;
use crate::scenario::{Expectation, LoadedScenario, Step};

/// Deadline of waits the scenario gives none for (deletes with `wait: true`).
pub(super) const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// What a run carries from phase to phase on one cluster.
pub(super) struct Session<'a> {
    pub cluster: &'a dyn Cluster,
    pub loaded: &'a LoadedScenario,
    /// Every namespace the run applied to (failure context, settle window, snapshot).
    pub namespaces: BTreeSet<String>,
    /// The scenario's roles and databases on the shared Postgres server, when it declares any.
    pub tenant: Option<Tenant>,
    /// What the run records for the recovery figures and the timeline report.
    pub trace: Trace,
    /// The current tree of each GitOps repository, by normalized URL (commits edit it).
    pub repos: std::collections::BTreeMap<String, crate::scenario::RepoTree>,
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

impl Session<'_> {
    /// Writes each declared role's generated password into its `passwordSecret` (creating the
    /// namespace when needed), before anything the scenario applies can read it.
    pub(super) async fn password_secrets(&mut self, phase: Phase) -> Result<(), Failure> {
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

    /// Installs the scenario's GitOps controller with its repositories' first commits,
    /// before anything the scenario applies.
    pub(super) async fn gitops(&mut self, phase: Phase) -> Result<(), Failure> {
        let Some(g) = &self.loaded.scenario.gitops else {
            return Ok(());
        };
        let mut repos = Vec::new();
        for repo in &g.repos {
            let tree = self
                .loaded
                .repo_dirs
                .get(std::path::Path::new(&repo.dir))
                .cloned()
                .unwrap_or_default();
            self.repos
                .insert(crate::scenario::normalize_repo_url(&repo.url), tree.clone());
            repos.push((repo.url.clone(), tree));
        }
        self.cluster.install_gitops(g, repos).map_err(|e| {
            failure(
                phase,
                "could not install the scenario's GitOps controller",
                "gitops".to_owned(),
                vec![error_chain(&e)],
                Context::default(),
            )
        })?;
        self.namespaces
            .insert(crate::scenario::ARGOCD_NAMESPACE.to_owned());
        Ok(())
    }

    /// Pushes a `commit` step's new tree.
    fn commit(&mut self, c: &crate::scenario::CommitStep) -> Result<(), Vec<String>> {
        use crate::scenario::normalize_repo_url as normalize_url;
        let Some(g) = &self.loaded.scenario.gitops else {
            return Err(vec!["commit step without a gitops: section".to_owned()]);
        };
        let url = match (&c.repo, g.repos.as_slice()) {
            (Some(url), _) => url.clone(),
            (None, [only]) => only.url.clone(),
            (None, _) => return Err(vec!["commit step without `repo`".to_owned()]),
        };
        let key = normalize_url(&url);
        let Some(current) = self.repos.get(&key) else {
            return Err(vec![format!("no repository {url}")]);
        };
        let mut tree = match &c.dir {
            Some(dir) => self
                .loaded
                .repo_dirs
                .get(std::path::Path::new(dir))
                .cloned()
                .unwrap_or_default(),
            None => current.clone(),
        };
        for gone in &c.remove {
            let prefix = format!("{}/", gone.trim_end_matches('/'));
            tree.retain(|path, _| path != gone && !path.starts_with(&prefix));
        }
        for (target, file) in &c.files {
            let body = self
                .loaded
                .repo_files
                .get(std::path::Path::new(file))
                .cloned()
                .unwrap_or_default();
            tree.insert(target.clone(), body);
        }
        self.cluster
            .commit(&url, tree.clone(), &c.message)
            .map_err(|e| vec![error_chain(&e)])?;
        self.repos.insert(key, tree);
        Ok(())
    }

    pub(super) async fn steps(&mut self, phase: Phase, steps: &[Step]) -> Result<(), Failure> {
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
                    // What an Argo CD Application deploys lands in its destination.
                    if o.get("kind").and_then(Value::as_str) == Some("Application")
                        && let Some(n) = o
                            .pointer("/spec/destination/namespace")
                            .and_then(Value::as_str)
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
                let uid = steps::uid_of(&client, &d.object).await.map_err(err)?;
                steps::delete(&client, &d.object).await.map_err(err)?;
                if d.wait {
                    // Gone means this object (its UID) is gone: a controller may re-create one
                    // of the same name at once, which is a new object.
                    let deadline = self.cluster.now() + DEFAULT_WAIT;
                    loop {
                        let now_uid = steps::uid_of(&client, &d.object).await.map_err(err)?;
                        if now_uid.is_none() || now_uid != uid {
                            return Ok(());
                        }
                        if self.cluster.now() >= deadline {
                            return Err(vec![format!(
                                "{} {} (uid {}) still exists {} after deletion",
                                d.object.kind,
                                d.object.name,
                                uid.as_deref().unwrap_or("?"),
                                crate::report::human_duration(DEFAULT_WAIT)
                            )]);
                        }
                        self.advance(deadline)
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
            Step::Fault(f) => self
                .cluster
                .start_fault(f)
                .map_err(|e| vec![error_chain(&e)]),
            Step::EndFault(name) => self
                .cluster
                .end_fault(name)
                .map_err(|e| vec![error_chain(&e)]),
            Step::AddNode(_) | Step::RemoveNode(_) | Step::LoadBalancer(_) => {
                let Some(change) = step.shape_change() else {
                    return Ok(());
                };
                self.cluster
                    .reshape(&change)
                    .await
                    .map_err(|e| vec![error_chain(&e)])
            }
            Step::Commit(c) => self.commit(c),
            Step::Sleep(d) => {
                let until = self.cluster.now() + d.as_std();
                while self.cluster.now() < until {
                    self.advance(until)
                        .await
                        .map_err(|e| vec![error_chain(&e)])?;
                }
                Ok(())
            }
        }
    }

    /// Evaluates one expectation now; SQL checks go to the scenario's Postgres tenant.
    pub(super) async fn observe(&self, client: &kube::Client, e: &Expectation) -> Observation {
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
    /// With `for:`, it must then hold without interruption for that long (having started before
    /// the deadline); every change the cluster reports is looked at.
    pub(super) async fn wait_for(
        &self,
        e: &Expectation,
        deadline: Duration,
    ) -> Result<(), Observation> {
        let client = self.cluster.client();
        let hold = e.hold_for().map(|d| d.as_std());
        let mut since: Option<Duration> = None;
        loop {
            let now = self.cluster.now();
            let obs = self.observe(&client, e).await;
            if obs.holds {
                let Some(hold) = hold else { return Ok(()) };
                let start = *since.get_or_insert(now);
                if now >= start + hold {
                    return Ok(());
                }
            } else if let Some(start) = since.take()
                && now >= deadline
            {
                // It stopped holding, too late to start again.
                let mut mismatches = vec![format!(
                    "held from {} until {}, not for {}",
                    crate::report::human_duration(start),
                    crate::report::human_duration(now),
                    crate::report::human_duration(hold.unwrap_or_default())
                )];
                mismatches.extend(obs.mismatches);
                return Err(Observation {
                    holds: false,
                    mismatches,
                });
            }
            if since.is_none() && now >= deadline {
                return Err(obs);
            }
            let until = match (since, hold) {
                (Some(start), Some(hold)) => start + hold,
                _ => deadline,
            };
            if let Err(err) = self.advance(until).await {
                return Err(Observation {
                    holds: false,
                    mismatches: vec![error_chain(&err)],
                });
            }
        }
    }

    /// The baseline: after setup, each `healthy:` expectation holds (waited for within its
    /// deadline) and no break symptom holds yet. A symptom that is already there was caused by
    /// the setup, not reproduced by the break. Left out: `absent` symptoms (before the break
    /// nothing exists yet, so an absence proves nothing either way) and SQL symptoms (they
    /// describe the server's state, which the `postgres:` section builds before any step).
    pub(super) async fn baseline(&mut self, phase: Phase) -> Result<(), Failure> {
        let s = &self.loaded.scenario;
        let start = self.cluster.now();
        for (i, e) in s.healthy.iter().enumerate() {
            let within = e.within().map_or(DEFAULT_WAIT, |d| d.as_std());
            if let Err(obs) = self.wait_for(e, start + within).await {
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!(
                        "the starting point is not healthy: healthy[{i}] did not hold within {}",
                        crate::report::human_duration(within)
                    ),
                    format!("healthy[{i}]: {}", describe(e)),
                    obs.mismatches,
                    ctx,
                ));
            }
        }
        let client = self.cluster.client();
        for (i, symptom) in s.break_.symptoms.iter().enumerate() {
            if matches!(
                symptom,
                Expectation::Absent(_) | Expectation::SqlError(_) | Expectation::Sql(_)
            ) {
                continue;
            }
            if self.observe(&client, symptom).await.holds {
                let ctx = self.context().await;
                return Err(failure(
                    phase,
                    &format!(
                        "symptom {} already holds before the break: the setup causes it, the break does not reproduce it",
                        i + 1
                    ),
                    format!("break.symptoms[{i}]: {}", describe(symptom)),
                    Vec::new(),
                    ctx,
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn break_phase(&mut self) -> Result<(), Failure> {
        let s = &self.loaded.scenario;
        self.trace.break_started(self.cluster.now());
        self.steps(Phase::Break, &s.break_.steps).await?;
        let start = self.cluster.now();
        for (i, symptom) in s.break_.symptoms.iter().enumerate() {
            let within = symptom.within().map_or(DEFAULT_WAIT, |d| d.as_std());
            let waited = self.wait_for(symptom, start + within).await;
            if waited.is_ok() {
                self.trace.mark(
                    self.cluster.now(),
                    MarkKind::Symptom,
                    format!("break.symptoms[{i}]: {}", describe(symptom)),
                );
            }
            if let Err(obs) = waited {
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
        self.trace.symptoms_held(self.cluster.now());
        Ok(())
    }
}
