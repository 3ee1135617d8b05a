//! The Job controller (`kubernetes/pkg/controller/job/job_controller.go`) and the TTL-after-
//! finished controller (`pkg/controller/ttlafterfinished`): pods up to `parallelism` until
//! `completions` succeed, the pod-failure back-off, `backoffLimit` and `activeDeadlineSeconds`,
//! the terminal conditions as Kubernetes 1.31+ writes them (`SuccessCriteriaMet`/
//! `FailureTarget` first, then `Complete`/`Failed`), and deletion after
//! `ttlSecondsAfterFinished`.
//!
//! Not modelled: Indexed completion mode, pod failure and success policies, suspension.

use jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;

use super::meta::{self, str_at};
use super::replicaset::{
    ERROR_DELETING, FAILED_DELETE, pod_from_template, reported_pod_create, set_count,
};
use super::{ClusterView, Effect, NameGen, Reconciled, Reported};
use crate::sim::events::EventType;

/// `source.component` of this controller's events.
pub const COMPONENT: &str = "job-controller";

/// Failed/FailureTarget reason when the back-off limit is reached (`batch.JobReasonBackoffLimitExceeded`).
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// Its message (`job_controller.go`).
pub const BACKOFF_LIMIT_EXCEEDED_MESSAGE: &str = "Job has reached the specified backoff limit";
/// Failed/FailureTarget reason when `activeDeadlineSeconds` passed (`batch.JobReasonDeadlineExceeded`).
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// Its message (`job_controller.go`).
pub const DEADLINE_EXCEEDED_MESSAGE: &str = "Job was active longer than specified deadline";
/// SuccessCriteriaMet/Complete reason (`batch.JobReasonCompletionsReached`).
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";
/// Its message (`job_controller.go`).
pub const COMPLETIONS_REACHED_MESSAGE: &str = "Reached expected number of succeeded pods";

/// First delay before recreating a failed pod (`DefaultJobPodFailureBackOff`).
const POD_FAILURE_BACKOFF_SECS: i64 = 10;
/// Longest such delay (`MaxJobPodFailureBackOff`).
const MAX_POD_FAILURE_BACKOFF_SECS: i64 = 600;

/// Reconciles every Job (in namespace/name order).
pub fn reconcile_all(view: &dyn ClusterView, now: Timestamp, names: &mut NameGen) -> Reconciled {
    let mut out = Reconciled::default();
    let mut jobs = view.list("batch/v1", "Job", None);
    jobs.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    for job in jobs {
        out.merge(reconcile_one(view, &job, now, names));
    }
    out
}

/// Reconciles one Job by namespace and name, the unit of the controller's work queue.
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    now: Timestamp,
    names: &mut NameGen,
) -> Reconciled {
    match view.get_shared("batch/v1", "Job", Some(namespace), name) {
        Some(job) => reconcile_one(view, &job, now, names),
        None => Reconciled::default(),
    }
}

/// Whether a Job has finished: a `Complete` or `Failed` condition is `True` (`IsJobFinished`).
#[must_use]
pub fn finished_condition(job: &Value) -> Option<&str> {
    meta::array_at(job, &["status", "conditions"])
        .iter()
        .find_map(|c| {
            let t = str_at(c, &["type"]);
            ((t == "Complete" || t == "Failed") && str_at(c, &["status"]) == "True").then_some(t)
        })
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> Value {
    let t = meta::fmt_time(now);
    json!({"type": type_, "status": "True", "lastProbeTime": t, "lastTransitionTime": t,
        "reason": reason, "message": message})
}

fn has_condition(status: &Value, type_: &str) -> bool {
    meta::array_at(status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == type_ && str_at(c, &["status"]) == "True")
}

fn push_condition(status: &mut Value, cond: Value) {
    let mut conds = meta::array_at(status, &["conditions"]).to_vec();
    conds.push(cond);
    status["conditions"] = Value::Array(conds);
}

/// When a terminal pod finished (latest container `finishedAt`, else its creation).
fn finished_at(pod: &Value) -> Option<Timestamp> {
    meta::array_at(pod, &["status", "containerStatuses"])
        .iter()
        .filter_map(|c| meta::parse_time(str_at(c, &["state", "terminated", "finishedAt"])))
        .max()
        .or_else(|| meta::creation_time(pod))
}

fn reconcile_one(
    view: &dyn ClusterView,
    job: &Value,
    now: Timestamp,
    names: &mut NameGen,
) -> Reconciled {
    let mut out = Reconciled::default();
    if meta::is_deleting(job) {
        return out;
    }
    if finished_condition(job).is_some() {
        ttl_after_finished(job, now, &mut out);
        return out;
    }
    let ns = meta::namespace(job).unwrap_or("default");
    let mut pods: Vec<Value> = view
        .list_controlled(
            "v1",
            "Pod",
            Some(ns),
            meta::uid(job).unwrap_or_default(),
            false,
        )
        .into_iter()
        .filter(|p| meta::is_controlled_by(p, job))
        .map(Arc::unwrap_or_clone)
        .collect();
    pods.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let active: Vec<&Value> = pods.iter().filter(|p| meta::is_pod_active(p)).collect();
    let succeeded_pods = pods
        .iter()
        .filter(|p| meta::pod_phase(p) == "Succeeded")
        .count();
    let failed_pods: Vec<&Value> = pods
        .iter()
        .filter(|p| meta::pod_phase(p) == "Failed")
        .collect();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    // Counts never go down, even when finished pods are removed.
    let succeeded =
        count(succeeded_pods).max(meta::i64_at(job, &["status", "succeeded"]).unwrap_or(0));
    let failed =
        count(failed_pods.len()).max(meta::i64_at(job, &["status", "failed"]).unwrap_or(0));

    let completions = meta::i64_at(job, &["spec", "completions"]);
    let parallelism = meta::i64_at(job, &["spec", "parallelism"])
        .unwrap_or(1)
        .max(0);
    let backoff_limit = meta::i64_at(job, &["spec", "backoffLimit"]).unwrap_or(6);
    let start = meta::parse_time(str_at(job, &["status", "startTime"])).unwrap_or(now);

    let mut status = meta::at(job, &["status"])
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    status["startTime"] = json!(meta::fmt_time(start));
    status["uncountedTerminatedPods"] = json!({});

    // Failure: too many failed pods (restartPolicy Never) or container restarts (OnFailure),
    // or the active deadline passed.
    let on_failure_restarts: i64 =
        if str_at(job, &["spec", "template", "spec", "restartPolicy"]) == "OnFailure" {
            active
                .iter()
                .flat_map(|p| {
                    meta::array_at(p, &["status", "containerStatuses"])
                        .iter()
                        .chain(meta::array_at(p, &["status", "initContainerStatuses"]))
                })
                .filter_map(|c| meta::i64_at(c, &["restartCount"]))
                .sum()
        } else {
            0
        };
    let past_backoff = failed > backoff_limit
        || (on_failure_restarts > 0
            && (backoff_limit == 0 || on_failure_restarts >= backoff_limit));
    let deadline =
        meta::i64_at(job, &["spec", "activeDeadlineSeconds"]).map(|s| meta::add_secs(start, s));
    let failure = if past_backoff {
        Some((BACKOFF_LIMIT_EXCEEDED, BACKOFF_LIMIT_EXCEEDED_MESSAGE))
    } else if deadline.is_some_and(|d| now >= d) {
        Some((DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE))
    } else {
        if let Some(d) = deadline {
            out.wake_at(d);
        }
        None
    };
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };

    if let Some((reason, message)) = failure {
        if !has_condition(&status, "FailureTarget") {
            push_condition(
                &mut status,
                condition("FailureTarget", reason, message, now),
            );
        }
        for pod in &active {
            out.reported(delete_active(job, pod));
        }
        if active.is_empty() {
            push_condition(&mut status, condition("Failed", reason, message, now));
            out.event(
                job,
                EventType::Warning,
                reason,
                message.to_owned(),
                COMPONENT,
            );
        }
    } else if complete {
        if !has_condition(&status, "SuccessCriteriaMet") {
            push_condition(
                &mut status,
                condition(
                    "SuccessCriteriaMet",
                    COMPLETIONS_REACHED,
                    COMPLETIONS_REACHED_MESSAGE,
                    now,
                ),
            );
        }
        for pod in &active {
            out.reported(delete_active(job, pod));
        }
        if active.is_empty() {
            push_condition(
                &mut status,
                condition(
                    "Complete",
                    COMPLETIONS_REACHED,
                    COMPLETIONS_REACHED_MESSAGE,
                    now,
                ),
            );
            status["completionTime"] = json!(meta::fmt_time(now));
            // `job_controller.go`: `jm.recorder.Event(&job, v1.EventTypeNormal, "Completed", "Job completed")`.
            out.event(
                job,
                EventType::Normal,
                "Completed",
                "Job completed".to_owned(),
                COMPONENT,
            );
            let ttl_job = {
                let mut j = job.clone();
                j["status"] = status.clone();
                j
            };
            ttl_after_finished(&ttl_job, now, &mut out);
        }
    } else {
        let want = match completions {
            Some(c) => parallelism.min(c - succeeded),
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let missing = want - count(active.len());
        if missing > 0 {
            // Recreate after failures only once the back-off since the last failure passed.
            let backoff_until =
                failed_pods
                    .iter()
                    .filter_map(|p| finished_at(p))
                    .max()
                    .map(|last| {
                        let exp = u32::try_from(failed.clamp(1, 32) - 1).unwrap_or(31);
                        let delay = POD_FAILURE_BACKOFF_SECS
                            .saturating_mul(1_i64.checked_shl(exp).unwrap_or(i64::MAX));
                        meta::add_secs(last, delay.min(MAX_POD_FAILURE_BACKOFF_SECS))
                    });
            match backoff_until {
                Some(until) if now < until => out.wake_at(until),
                _ => {
                    let template = job_pod_template(job);
                    let prefix = format!("{}-", meta::name(job));
                    for _ in 0..missing {
                        let pod = pod_from_template(&template, job, &prefix, names);
                        out.reported(reported_pod_create(job, pod, COMPONENT));
                    }
                }
            }
        }
    }

    status["active"] = json!(active.len());
    status["ready"] = json!(active.iter().filter(|p| meta::is_pod_ready(p)).count());
    status["terminating"] = json!(pods.iter().filter(|p| meta::is_deleting(p)).count());
    set_count(&mut status, "succeeded", succeeded);
    set_count(&mut status, "failed", failed);
    if job.get("status") != Some(&status) {
        let mut next = job.clone();
        next["status"] = status;
        out.push(Effect::UpdateStatus(next));
    }
    out
}

/// The delete of an active pod of a finished Job (`deleteJobPods` through `RealPodControl.DeletePod`,
/// `pkg/controller/job/job_controller.go`): `FailedDelete` when refused. The `SuccessfulDelete`
/// it records once done is not imitated.
fn delete_active(job: &Value, pod: &Value) -> Reported {
    Reported::new(job, Effect::delete_of(pod)).refused(
        FAILED_DELETE,
        ERROR_DELETING.to_owned(),
        COMPONENT,
    )
}

/// The pod template with the labels the API server adds to a Job's template.
fn job_pod_template(job: &Value) -> Value {
    let mut template = meta::at(job, &["spec", "template"])
        .cloned()
        .unwrap_or_else(|| json!({}));
    let uid = meta::uid(job).unwrap_or("");
    let name = meta::name(job);
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ] {
        if meta::at(&template, &["metadata", "labels", k]).is_none() {
            meta::set_at(&mut template, &["metadata", "labels", k], json!(v));
        }
    }
    template
}

/// The TTL-after-finished controller: delete a finished Job `ttlSecondsAfterFinished` after it
/// finished (`pkg/controller/ttlafterfinished/ttlafterfinished_controller.go`).
fn ttl_after_finished(job: &Value, now: Timestamp, out: &mut Reconciled) {
    let Some(ttl) = meta::i64_at(job, &["spec", "ttlSecondsAfterFinished"]) else {
        return;
    };
    let finished = meta::parse_time(str_at(job, &["status", "completionTime"])).or_else(|| {
        meta::array_at(job, &["status", "conditions"])
            .iter()
            .filter(|c| matches!(str_at(c, &["type"]), "Complete" | "Failed"))
            .find_map(|c| meta::parse_time(str_at(c, &["lastTransitionTime"])))
    });
    let Some(finished) = finished else {
        return;
    };
    let expire = meta::add_secs(finished, ttl);
    if now >= expire {
        out.push(Effect::delete_of(job));
    } else {
        out.wake_at(expire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::testing::{World, t0};

    fn job(extra: Value) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "default", "uid": "job-uid"},
            "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "m", "image": "migrate:1"}]}}}});
        if let (Some(spec), Some(more)) = (j["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                spec.insert(k.clone(), v.clone());
            }
        }
        j
    }

    fn finish_pods(world: &mut World, phase: &str, at: Timestamp) {
        for mut pod in world.list_pods("default") {
            if meta::is_pod_active(&pod) {
                pod["status"] = json!({"phase": phase, "containerStatuses": [{"name": "m",
                    "state": {"terminated": {"finishedAt": meta::fmt_time(at), "exitCode": i32::from(phase == "Failed")}}}]});
                world.add(pod);
            }
        }
    }

    fn run(world: &mut World, now: Timestamp, names: &mut NameGen) -> Option<Timestamp> {
        world.run_controller(|w, t, n| reconcile_all(w, t, n), now, names)
    }

    #[test]
    fn completes_with_the_real_conditions_and_is_deleted_after_its_ttl() {
        let mut world = World::new();
        world.add(job(
            json!({"completions": 2, "parallelism": 2, "ttlSecondsAfterFinished": 100}),
        ));
        let mut names = NameGen::new(5);
        run(&mut world, t0(), &mut names);
        let pods = world.list_pods("default");
        assert_eq!(pods.len(), 2);
        assert_eq!(
            pods[0]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "migrate"
        );
        let created = world.events_with_reason("SuccessfulCreate");
        assert!(created[0].0.starts_with("Created pod: migrate-"));
        finish_pods(&mut world, "Succeeded", t0());
        let wake = run(&mut world, meta::add_secs(t0(), 5), &mut names).unwrap();
        let j = world.obj("batch/v1", "Job", "default", "migrate").unwrap();
        let types: Vec<(&str, &str, &str)> = meta::array_at(j, &["status", "conditions"])
            .iter()
            .map(|c| {
                (
                    str_at(c, &["type"]),
                    str_at(c, &["reason"]),
                    str_at(c, &["message"]),
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                (
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
                (
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                )
            ]
        );
        assert_eq!(j["status"]["succeeded"], 2);
        assert_eq!(world.events_with_reason("Completed")[0].0, "Job completed");
        assert_eq!(wake, meta::add_secs(t0(), 105));
        run(&mut world, wake, &mut names);
        assert!(world.obj("batch/v1", "Job", "default", "migrate").is_none());
    }

    #[test]
    fn fails_after_backoff_limit_plus_one_failures_with_growing_delays() {
        let mut world = World::new();
        world.add(job(json!({})));
        let mut names = NameGen::new(5);
        let mut now = t0();
        let mut creations = vec![];
        for _ in 0..3 {
            run(&mut world, now, &mut names);
            creations.push(now);
            finish_pods(&mut world, "Failed", now);
            let wake = run(&mut world, now, &mut names);
            if let Some(w) = wake {
                now = w;
            }
        }
        // Back-off 10 s after the first failure, 20 s after the second.
        assert_eq!(
            creations,
            [t0(), meta::add_secs(t0(), 10), meta::add_secs(t0(), 30)]
        );
        let j = world.obj("batch/v1", "Job", "default", "migrate").unwrap();
        assert_eq!(finished_condition(j), Some("Failed"));
        let failed = meta::condition(j, "Failed").unwrap();
        assert_eq!(str_at(failed, &["reason"]), "BackoffLimitExceeded");
        assert_eq!(
            str_at(failed, &["message"]),
            "Job has reached the specified backoff limit"
        );
        assert!(meta::condition(j, "FailureTarget").is_some());
        assert_eq!(j["status"]["failed"], 3);
        let ev = world
            .events
            .iter()
            .find(|(_, e)| e.reason == "BackoffLimitExceeded")
            .unwrap();
        assert_eq!(ev.1.type_, EventType::Warning);
        assert_eq!(ev.1.message, "Job has reached the specified backoff limit");
    }

    #[test]
    fn active_deadline_fails_the_job() {
        let mut world = World::new();
        world.add(job(json!({"activeDeadlineSeconds": 60})));
        let mut names = NameGen::new(5);
        let wake = run(&mut world, t0(), &mut names).unwrap();
        assert_eq!(wake, meta::add_secs(t0(), 60));
        run(&mut world, wake, &mut names);
        let j = world.obj("batch/v1", "Job", "default", "migrate").unwrap();
        let failed = meta::condition(j, "Failed").unwrap();
        assert_eq!(str_at(failed, &["reason"]), "DeadlineExceeded");
        assert_eq!(
            str_at(failed, &["message"]),
            "Job was active longer than specified deadline"
        );
        assert!(world.list_pods("default").is_empty());
    }
}
