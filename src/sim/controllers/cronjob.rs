//! The CronJob controller (`kubernetes/pkg/controller/cronjob/cronjob_controllerv2.go`): Jobs
//! named `<cronjob>-<minutes since epoch>` at scheduled times, the active list, concurrency
//! policies, `startingDeadlineSeconds` and the successful/failed history limits.
//!
//! Differences: the active list is matched by Job name (the Job's UID is only known once the
//! store has created it); `spec.timeZone` is ignored (schedules are UTC).

use jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;

use super::cron::Schedule;
use super::job::finished_condition;
use super::meta::{self, str_at};
use super::{ClusterView, Effect, Reconciled, Reported};
use crate::sim::events::EventType;

/// `source.component` of this controller's events.
pub const COMPONENT: &str = "cronjob-controller";
/// The Job annotation with the scheduled time (`batch.CronJobScheduledTimestampAnnotation`).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// `Created job <name>` (`syncCronJob`).
#[must_use]
pub fn created_job_message(job: &str) -> String {
    format!("Created job {job}")
}

/// `Saw completed job: <name>, condition: <Complete|Failed>` (pkg/controller/cronjob/
/// cronjob_controllerv2.go `syncCronJob`, with `jobutil.FinishedCondition`; earlier versions said
/// `status:`).
#[must_use]
pub fn saw_completed_message(job: &str, condition: &str) -> String {
    format!("Saw completed job: {job}, condition: {condition}")
}

/// `Deleted job <name>` (`deleteJob`).
#[must_use]
pub fn deleted_job_message(job: &str) -> String {
    format!("Deleted job {job}")
}

/// A Job delete (`deleteJob`, `pkg/controller/cronjob/cronjob_controllerv2.go`):
/// `SuccessfulDelete` once deleted, `FailedDelete` `Deleted job: <err>` when refused
/// (`recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)`).
fn delete_job(cj: &Value, job: &Value) -> Reported {
    Reported::new(cj, Effect::delete_of(job))
        .done(
            "SuccessfulDelete",
            deleted_job_message(meta::name(job)),
            COMPONENT,
        )
        .refused("FailedDelete", "Deleted job: ".to_owned(), COMPONENT)
}

/// Reconciles every CronJob (in namespace/name order).
pub fn reconcile_all(view: &dyn ClusterView, now: Timestamp) -> Reconciled {
    let mut out = Reconciled::default();
    let mut cjs = view.list("batch/v1", "CronJob", None);
    cjs.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    for cj in cjs {
        out.merge(reconcile_one(view, &cj, now));
    }
    out
}

/// Reconciles one CronJob by namespace and name, the unit of the controller's work queue.
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Reconciled {
    match view.get_shared("batch/v1", "CronJob", Some(namespace), name) {
        Some(cj) => reconcile_one(view, &cj, now),
        None => Reconciled::default(),
    }
}

fn in_active(status: &Value, name: &str) -> bool {
    meta::array_at(status, &["active"])
        .iter()
        .any(|r| str_at(r, &["name"]) == name)
}

fn remove_active(status: &mut Value, name: &str) {
    let kept: Vec<Value> = meta::array_at(status, &["active"])
        .iter()
        .filter(|r| str_at(r, &["name"]) != name)
        .cloned()
        .collect();
    if let Value::Object(m) = status {
        if kept.is_empty() {
            m.remove("active");
        } else {
            m.insert("active".to_owned(), Value::Array(kept));
        }
    }
}

fn reconcile_one(view: &dyn ClusterView, cj: &Value, now: Timestamp) -> Reconciled {
    let mut out = Reconciled::default();
    let ns = meta::namespace(cj).unwrap_or("default");
    let name = meta::name(cj);
    let mut jobs: Vec<Value> = view
        .list("batch/v1", "Job", Some(ns))
        .into_iter()
        .filter(|j| {
            meta::controller_of(j)
                .is_some_and(|r| str_at(r, &["name"]) == name && str_at(r, &["kind"]) == "CronJob")
        })
        .map(Arc::unwrap_or_clone)
        .collect();
    jobs.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let mut status = meta::at(cj, &["status"])
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));

    // Finished jobs leave the active list; successful ones advance lastSuccessfulTime.
    for job in &jobs {
        let Some(cond) = finished_condition(job) else {
            continue;
        };
        if in_active(&status, meta::name(job)) {
            remove_active(&mut status, meta::name(job));
            out.event(
                cj,
                EventType::Normal,
                "SawCompletedJob",
                saw_completed_message(meta::name(job), cond),
                COMPONENT,
            );
        }
        if cond == "Complete" {
            let done = meta::parse_time(str_at(job, &["status", "completionTime"]));
            let last = meta::parse_time(str_at(&status, &["lastSuccessfulTime"]));
            if let Some(done) = done.filter(|d| last.is_none_or(|l| *d > l)) {
                status["lastSuccessfulTime"] = json!(meta::fmt_time(done));
            }
        }
    }
    // Active entries whose Job is gone.
    for entry in meta::array_at(&status.clone(), &["active"]) {
        let job_name = str_at(entry, &["name"]);
        if !jobs.iter().any(|j| meta::name(j) == job_name) {
            remove_active(&mut status, job_name);
            // pkg/controller/cronjob/cronjob_controllerv2.go syncCronJob: `Active job went
            // missing: %v`.
            out.event(
                cj,
                EventType::Normal,
                "MissingJob",
                format!("Active job went missing: {job_name}"),
                COMPONENT,
            );
        }
    }

    // History limits (`cleanupFinishedJobs`), oldest start first.
    for (kind, limit) in [
        (
            "Complete",
            meta::i64_at(cj, &["spec", "successfulJobsHistoryLimit"]).unwrap_or(3),
        ),
        (
            "Failed",
            meta::i64_at(cj, &["spec", "failedJobsHistoryLimit"]).unwrap_or(1),
        ),
    ] {
        let mut finished: Vec<&Value> = jobs
            .iter()
            .filter(|j| finished_condition(j) == Some(kind))
            .collect();
        finished.sort_by(|a, b| {
            let start = |j: &Value| meta::parse_time(str_at(j, &["status", "startTime"]));
            (start(a), meta::name(a)).cmp(&(start(b), meta::name(b)))
        });
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        for job in finished.into_iter().take(excess) {
            out.reported(delete_job(cj, job));
            remove_active(&mut status, meta::name(job));
        }
    }

    if !meta::is_deleting(cj) && !meta::bool_at(cj, &["spec", "suspend"]) {
        schedule_next(cj, &jobs, &mut status, now, &mut out);
    }
    if cj.get("status") != Some(&status) && !(cj.get("status").is_none() && status == json!({})) {
        let mut next = cj.clone();
        next["status"] = status;
        out.push(Effect::UpdateStatus(next));
    }
    out
}

fn schedule_next(
    cj: &Value,
    jobs: &[Value],
    status: &mut Value,
    now: Timestamp,
    out: &mut Reconciled,
) {
    let spec_schedule = str_at(cj, &["spec", "schedule"]);
    let schedule = match Schedule::parse(spec_schedule) {
        Ok(s) => s,
        Err(err) => {
            // `syncCronJob`: `unparseable schedule: %q : %s`.
            out.event(
                cj,
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {spec_schedule:?} : {err}"),
                COMPONENT,
            );
            return;
        }
    };
    let earliest = meta::parse_time(str_at(status, &["lastScheduleTime"]))
        .or_else(|| meta::creation_time(cj))
        .unwrap_or(now);
    if let Some(next) = schedule.next_after(now) {
        out.wake_at(next);
    }
    let Some(scheduled) = schedule.most_recent(earliest, now) else {
        return;
    };
    if let Some(deadline) = meta::i64_at(cj, &["spec", "startingDeadlineSeconds"])
        && meta::add_secs(scheduled, deadline) < now
    {
        // `syncCronJob`: the time in RFC 1123 with a numeric zone.
        let when = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000");
        out.event(
            cj,
            EventType::Warning,
            "MissSchedule",
            format!("Missed scheduled time to start a job: {when}"),
            COMPONENT,
        );
        return;
    }
    let job_name = format!(
        "{}-{}",
        meta::name(cj),
        scheduled.as_second().div_euclid(60)
    );
    if in_active(status, &job_name)
        || str_at(status, &["lastScheduleTime"]) == meta::fmt_time(scheduled)
    {
        return;
    }
    let active: Vec<String> = meta::array_at(status, &["active"])
        .iter()
        .map(|r| str_at(r, &["name"]).to_owned())
        .collect();
    match str_at(cj, &["spec", "concurrencyPolicy"]) {
        "Forbid" if !active.is_empty() => {
            // pkg/controller/cronjob/cronjob_controllerv2.go syncCronJob (ForbidConcurrent).
            out.event(
                cj,
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".to_owned(),
                COMPONENT,
            );
            return;
        }
        "Replace" => {
            for job in jobs
                .iter()
                .filter(|j| active.iter().any(|a| a == meta::name(j)))
            {
                out.reported(delete_job(cj, job));
                remove_active(status, meta::name(job));
            }
        }
        _ => {}
    }
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": meta::namespace(cj).unwrap_or("default"),
            "ownerReferences": [meta::controller_ref(cj)],
            "annotations": {SCHEDULED_TIMESTAMP_ANNOTATION: meta::fmt_time(scheduled)},
        },
        "spec": meta::at(cj, &["spec", "jobTemplate", "spec"]).cloned().unwrap_or_else(|| json!({})),
    });
    if let Some(labels) = meta::at(cj, &["spec", "jobTemplate", "metadata", "labels"]) {
        job["metadata"]["labels"] = labels.clone();
    }
    for (k, v) in meta::string_map(cj, &["spec", "jobTemplate", "metadata", "annotations"]) {
        meta::set_annotation(&mut job, &k, &v);
    }
    // `syncCronJob` (`cronjob_controllerv2.go`): `SuccessfulCreate` once created, `FailedCreate`
    // `Error creating job: <err>` when refused (`jm.recorder.Eventf(cronJob,
    // corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)`).
    out.reported(
        Reported::new(cj, Effect::Create(job))
            .done(
                "SuccessfulCreate",
                created_job_message(&job_name),
                COMPONENT,
            )
            .refused("FailedCreate", "Error creating job: ".to_owned(), COMPONENT),
    );
    let mut refs = meta::array_at(status, &["active"]).to_vec();
    refs.push(json!({"apiVersion": "batch/v1", "kind": "Job", "namespace": meta::namespace(cj).unwrap_or("default"), "name": job_name}));
    status["active"] = Value::Array(refs);
    status["lastScheduleTime"] = json!(meta::fmt_time(scheduled));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::NameGen;
    use crate::sim::controllers::testing::{World, t0};

    fn cronjob() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "backup", "namespace": "default", "uid": "cj-uid", "creationTimestamp": meta::fmt_time(t0())},
            "spec": {"schedule": "*/5 * * * *", "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "b", "image": "backup:1"}]}}}}}})
    }

    fn complete(world: &mut World, name: &str, at: Timestamp) {
        let job = world.obj_mut("batch/v1", "Job", "default", name).unwrap();
        job["status"] = json!({"startTime": meta::fmt_time(at), "completionTime": meta::fmt_time(at),
            "conditions": [{"type": "Complete", "status": "True"}]});
    }

    #[test]
    fn creates_jobs_on_schedule_and_keeps_the_history_limit() {
        let mut world = World::new();
        world.add(cronjob());
        let mut names = NameGen::new(1);
        let wake = world
            .run_controller(|w, now, _| reconcile_all(w, now), t0(), &mut names)
            .unwrap();
        assert_eq!(wake, meta::add_secs(t0(), 300));
        let mut now = wake;
        for _ in 0..4 {
            world.run_controller(|w, t, _| reconcile_all(w, t), now, &mut names);
            let job_name = format!("backup-{}", now.as_second() / 60);
            assert!(
                world.obj("batch/v1", "Job", "default", &job_name).is_some(),
                "{job_name}"
            );
            complete(&mut world, &job_name, now);
            world.run_controller(|w, t, _| reconcile_all(w, t), now, &mut names);
            now = meta::add_secs(now, 300);
        }
        let created = world.events_with_reason("SuccessfulCreate");
        assert_eq!(
            created[0].0,
            format!("Created job backup-{}", (t0().as_second() + 300) / 60)
        );
        let saw = world.events_with_reason("SawCompletedJob");
        assert_eq!(
            saw[0].0,
            format!(
                "Saw completed job: backup-{}, condition: Complete",
                (t0().as_second() + 300) / 60
            )
        );
        let jobs = ClusterView::list(&world, "batch/v1", "Job", Some("default"));
        assert_eq!(jobs.len(), 2);
        assert_eq!(world.events_with_reason("SuccessfulDelete").len(), 2);
        assert!(
            world.events_with_reason("SuccessfulDelete")[0]
                .0
                .starts_with("Deleted job backup-")
        );
        let cj = world
            .obj("batch/v1", "CronJob", "default", "backup")
            .unwrap();
        assert!(cj["status"].get("active").is_none());
        assert!(cj["status"]["lastSuccessfulTime"].is_string());
    }

    #[test]
    fn forbid_skips_while_a_job_runs() {
        let mut world = World::new();
        let mut cj = cronjob();
        cj["spec"]["concurrencyPolicy"] = json!("Forbid");
        world.add(cj);
        let mut names = NameGen::new(1);
        world.run_controller(
            |w, t, _| reconcile_all(w, t),
            meta::add_secs(t0(), 300),
            &mut names,
        );
        world.run_controller(
            |w, t, _| reconcile_all(w, t),
            meta::add_secs(t0(), 600),
            &mut names,
        );
        assert_eq!(world.events_with_reason("SuccessfulCreate").len(), 1);
        assert_eq!(
            world.events_with_reason("JobAlreadyActive")[0].0,
            "Not starting job because prior execution is running and concurrency policy is Forbid"
        );
    }
}
