//! `break.symptoms` from what is wrong now: warning events, container waiting and terminated
//! reasons, the scheduler's message for Pending pods, workload conditions that say a rollout
//! failed, and the log lines of crashed and complaining containers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::Facts;
use super::select::Workload;
use super::source::container_statuses;
use crate::scenario::{
    EventExpectation, EventType, Expectation, LogExpectation, ObjectExpectation, Quantifier,
};

/// Words that mark a log line as a complaint.
const COMPLAINTS: [&str; 12] = [
    "error",
    "fail",
    "fatal",
    "panic",
    "exception",
    "refused",
    "denied",
    "forbidden",
    "unauthorized",
    "not found",
    "could not",
    "cannot",
];

/// Whether a log line reports an error.
#[must_use]
pub fn complains(line: &str) -> bool {
    let lower = line.to_lowercase();
    COMPLAINTS.iter().any(|w| lower.contains(w))
}

/// The text a symptom matches of a log line: its message without a leading timestamp or
/// klog header, or a JSON line's `msg`, cut where generated names begin.
#[must_use]
pub fn log_text(facts: &Facts<'_>, line: &str) -> String {
    let line = line.trim();
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line)
        && let Some(msg) = m
            .get("msg")
            .or_else(|| m.get("message"))
            .and_then(Value::as_str)
    {
        return facts.stable(msg).0;
    }
    let body = super::HEADER.replace(line, "");
    facts.stable(&body).0
}

/// The symptoms of the captured workloads, deduplicated, in a stable order: object states
/// first, then events, then log lines.
#[must_use]
pub fn symptoms(facts: &Facts<'_>) -> Vec<Expectation> {
    let mut objects = Vec::new();
    let mut logs = Vec::new();
    for w in &facts.selection.workloads {
        if let Some(e) = conditions(facts, w) {
            objects.push(e);
        }
        for pod in facts.current_pods(w) {
            if let Some(e) = pod_state(facts, w, pod) {
                objects.push(e);
            }
            logs.extend(log_lines(facts, w, pod));
        }
    }
    let mut out: Vec<Expectation> = Vec::new();
    for e in objects.into_iter().chain(events(facts)).chain(logs) {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

fn selector_of(w: &Workload, pod: &Value) -> (Option<String>, BTreeMap<String, String>) {
    if w.pod_labels.is_empty() {
        (
            pod["metadata"]["name"].as_str().map(str::to_owned),
            BTreeMap::new(),
        )
    } else {
        (None, w.pod_labels.clone())
    }
}

/// Conditions of the workload itself that say it failed (a Deployment past its progress
/// deadline or without its minimum replicas, a failed Job, a custom resource not Ready).
fn conditions(facts: &Facts<'_>, w: &Workload) -> Option<Expectation> {
    let mut bad = Vec::new();
    let mut latest = None;
    for c in w.object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (t, s) = (c["type"].as_str().unwrap_or_default(), c["status"].as_str());
        let failed = match s {
            Some("False") => ["Available", "Ready", "Progressing", "Complete"].contains(&t),
            Some("True") => ["Failed", "ReplicaFailure", "Degraded", "Stalled"].contains(&t),
            _ => false,
        };
        if failed {
            let mut m = Map::new();
            m.insert("type".into(), json!(t));
            m.insert("status".into(), json!(s));
            if let Some(r) = c["reason"].as_str() {
                m.insert("reason".into(), json!(r));
            }
            bad.push(Value::Object(m));
            latest = latest.max(super::time(&c["lastTransitionTime"]));
        }
    }
    if bad.is_empty() {
        return None;
    }
    Some(Expectation::Object(ObjectExpectation {
        api_version: crd_api_version(w),
        kind: w.kind().to_owned(),
        name: Some(w.name().to_owned()),
        namespace: Some(w.namespace().to_owned()),
        labels: BTreeMap::new(),
        count: None,
        require: Quantifier::All,
        matches: json!({"status": {"conditions": bad}}),
        within: Some(facts.within(latest)),
        for_: None,
    }))
}

fn crd_api_version(w: &Workload) -> Option<String> {
    let v = w.object["apiVersion"].as_str()?;
    crate::scenario::kinds::builtin_api_version(w.kind())
        .is_none()
        .then(|| v.to_owned())
}

/// A pod's state when it is not healthy: its phase while Pending, why it is not scheduled, and
/// each container that waits or last ended badly.
fn pod_state(facts: &Facts<'_>, w: &Workload, pod: &Value) -> Option<Expectation> {
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let mut status = Map::new();
    let mut latest = None;
    for list in ["initContainerStatuses", "containerStatuses"] {
        let mut entries = Vec::new();
        for c in pod["status"][list].as_array().into_iter().flatten() {
            let mut entry = Map::new();
            let waiting = &c["state"]["waiting"];
            if !ready && let Some(reason) = waiting["reason"].as_str() {
                let mut w = Map::new();
                w.insert("reason".into(), json!(reason));
                // Back-off messages count the back-off up; the others name what is wrong.
                if !reason.ends_with("BackOff")
                    && let Some(message) = waiting["message"].as_str()
                {
                    w.insert("message".into(), facts.text_matcher(message));
                }
                entry.insert("state".into(), json!({"waiting": w}));
            }
            let last = &c["lastState"]["terminated"];
            if let Some(reason) = last["reason"].as_str()
                && (last["exitCode"].as_i64().unwrap_or(0) != 0 || reason == "OOMKilled")
            {
                entry.insert(
                    "lastState".into(),
                    json!({"terminated": {"reason": reason, "exitCode": last["exitCode"]}}),
                );
                latest = latest.max(super::time(&last["finishedAt"]));
            }
            if !entry.is_empty() {
                entry.insert("name".into(), c["name"].clone());
                entries.push(Value::Object(entry));
            }
        }
        if !entries.is_empty() {
            status.insert(list.into(), Value::Array(entries));
        }
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    for c in pod["status"]["conditions"].as_array().into_iter().flatten() {
        if c["type"] == "PodScheduled" && c["status"] == "False" {
            let mut m = Map::new();
            m.insert("type".into(), json!("PodScheduled"));
            m.insert("status".into(), json!("False"));
            if let Some(r) = c["reason"].as_str() {
                m.insert("reason".into(), json!(r));
            }
            if let Some(msg) = c["message"].as_str() {
                m.insert("message".into(), facts.text_matcher(msg));
            }
            status.insert("conditions".into(), json!([m]));
            latest = latest.max(super::time(&c["lastTransitionTime"]));
        }
    }
    if status.is_empty() {
        return None;
    }
    if phase == "Pending" || phase == "Failed" {
        status.insert("phase".into(), json!(phase));
    }
    let (name, labels) = selector_of(w, pod);
    Some(Expectation::Object(ObjectExpectation {
        api_version: None,
        kind: "Pod".to_owned(),
        name,
        namespace: Some(w.namespace().to_owned()),
        labels,
        count: None,
        // The broken pod of a rollout runs beside healthy ones.
        require: Quantifier::Any,
        matches: json!({"status": status}),
        within: Some(
            facts.within(latest.or_else(|| super::time(&pod["metadata"]["creationTimestamp"]))),
        ),
        for_: None,
    }))
}

/// Warning events about the captured objects, recorded within `--since`.
fn events(facts: &Facts<'_>) -> Vec<Expectation> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for e in facts.warning_events() {
        let involved = &e["involvedObject"];
        let ns = e["metadata"]["namespace"]
            .as_str()
            .or_else(|| involved["namespace"].as_str())
            .unwrap_or_default();
        let kind = involved["kind"].as_str().map(str::to_owned);
        let prefix = involved["name"].as_str().map(|n| facts.name_prefix(n));
        let message = e["message"].as_str().map(|m| facts.stable(m.trim()).0);
        let reason = e["reason"].as_str().unwrap_or_default().to_owned();
        if !seen.insert((
            ns.to_owned(),
            reason.clone(),
            message.clone(),
            kind.clone(),
            prefix.clone(),
        )) {
            continue;
        }
        let first = super::time(&e["firstTimestamp"])
            .or_else(|| super::time(&e["eventTime"]))
            .or_else(|| super::time(&e["metadata"]["creationTimestamp"]));
        out.push(Expectation::Event(EventExpectation {
            namespace: ns.to_owned(),
            kind: Some(EventType::Warning),
            reason,
            message,
            involved_kind: kind,
            involved_name_prefix: prefix,
            within: Some(facts.within(first)),
        }));
    }
    out
}

/// The lines a crashed container last wrote (its previous instance), or the complaints of a
/// running one.
fn log_lines(facts: &Facts<'_>, w: &Workload, pod: &Value) -> Vec<Expectation> {
    let mut out = Vec::new();
    let ns = w.namespace();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    for c in container_statuses(pod) {
        let container = c["name"].as_str().unwrap_or_default();
        let crashed = !c["lastState"]["terminated"].is_null();
        let lines = facts.log_tail(ns, pod_name, container, crashed);
        let chosen: Vec<&String> = if crashed {
            // The last complaint before the exit, else the last line.
            lines
                .iter()
                .rev()
                .find(|l| complains(l))
                .or_else(|| lines.iter().rev().find(|l| !l.trim().is_empty()))
                .into_iter()
                .collect()
        } else {
            let mut seen = BTreeSet::new();
            lines
                .iter()
                .filter(|l| complains(l))
                .filter(|l| seen.insert(log_text(facts, l)))
                .take(2)
                .collect()
        };
        let (pod_sel, labels) = selector_of(w, pod);
        for line in chosen {
            let contains = log_text(facts, line);
            if contains.trim().is_empty() {
                continue;
            }
            out.push(Expectation::Log(LogExpectation {
                namespace: ns.to_owned(),
                pod: pod_sel.clone(),
                labels: labels.clone(),
                container: Some(container.to_owned()),
                contains,
                since: None,
                absent: false,
                within: Some(
                    facts.within(super::time(&c["lastState"]["terminated"]["finishedAt"])),
                ),
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaints_are_recognised() {
        assert!(complains("Error: Plugin 'scaffolder' startup failed"));
        assert!(complains("exec /opt/keycloak/bin/kc.sh: exec format error"));
        assert!(!complains("Listening on :8080"));
    }
}
