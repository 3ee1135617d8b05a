//! Evaluating expectations against a cluster: does it hold now, and if not, what differs.

use kube::api::{ListParams, LogParams};
use serde_json::Value;

use super::matcher::match_tree;
use super::steps::{self, StepError};
use crate::scenario::{
    AbsentExpectation, EventExpectation, Expectation, LogExpectation, ObjectExpectation, ObjectRef,
    Quantifier,
};

/// The state of one expectation at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Whether the expectation holds.
    pub holds: bool,
    /// Expected versus observed, one line each, when it does not.
    pub mismatches: Vec<String>,
}

impl Observation {
    fn holds() -> Self {
        Self {
            holds: true,
            mismatches: Vec::new(),
        }
    }

    fn fails(mismatches: Vec<String>) -> Self {
        Self {
            holds: false,
            mismatches,
        }
    }
}

/// A short description of an expectation for reports: `object Deployment monitoring/grafana`.
#[must_use]
pub fn describe(e: &Expectation) -> String {
    match e {
        Expectation::Object(o) => {
            let what = o.name.clone().unwrap_or_else(|| selector(&o.labels));
            format!(
                "object {} {}/{what}",
                o.kind,
                o.namespace.as_deref().unwrap_or("-")
            )
        }
        Expectation::Absent(a) => format!(
            "absent {} {}/{}",
            a.object.kind,
            a.object.namespace.as_deref().unwrap_or("-"),
            a.object.name
        ),
        Expectation::Log(l) => format!(
            "log of {}/{} {} {:?}{}",
            l.namespace,
            l.pod.clone().unwrap_or_else(|| selector(&l.labels)),
            if l.absent { "lacks" } else { "contains" },
            l.contains,
            l.since
                .map(|d| format!(" in the last {d}"))
                .unwrap_or_default()
        ),
        Expectation::Event(e) => format!("event {} in {}", e.reason, e.namespace),
        Expectation::SqlError(s) => format!("sql error {}", s.sqlstate),
        Expectation::Sql(s) => format!(
            "sql as {} on {} succeeds",
            s.role.as_deref().unwrap_or("the administrator"),
            s.database.as_deref().unwrap_or("postgres")
        ),
        Expectation::App(a) => format!(
            "app {}/{}",
            a.namespace.as_deref().unwrap_or("argocd"),
            a.name
        ),
    }
}

fn selector(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Evaluates one expectation now.
///
/// # Errors
/// When the cluster cannot be asked, or does not serve the kind ([`StepError::NoKindMatch`]:
/// whether an object of an unserved kind exists cannot be told, so it is never "absent").
pub async fn observe(client: &kube::Client, e: &Expectation) -> Result<Observation, StepError> {
    match e {
        Expectation::Object(o) => object(client, o).await,
        Expectation::App(a) => object(client, &a.to_object()).await,
        Expectation::Absent(a) => absent(client, a).await,
        Expectation::Log(l) => log(client, l).await,
        Expectation::Event(ev) => event(client, ev).await,
        // Needs the scenario's Postgres tenant, which the phase runner holds and asks itself.
        Expectation::SqlError(_) | Expectation::Sql(_) => Ok(Observation::fails(vec![
            "sql expectations are evaluated against the scenario's Postgres tenant".to_owned(),
        ])),
    }
}

async fn select(
    client: &kube::Client,
    api_version: Option<&str>,
    kind: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<Value>, StepError> {
    let r = ObjectRef {
        api_version: api_version.map(str::to_owned),
        kind: kind.to_owned(),
        name: name.unwrap_or_default().to_owned(),
        namespace: namespace.map(str::to_owned),
    };
    // A kind the cluster does not serve is an error, never "no objects": a misspelled kind
    // would otherwise make every `absent` and `count: 0` hold.
    let api = steps::api_for_ref(client, &r).await?;
    let to_api_error = |e: kube::Error| StepError::Api {
        action: "list",
        target: format!("{kind} in {}", namespace.unwrap_or("all namespaces")),
        message: e.to_string(),
        reason: String::new(),
    };
    if let Some(name) = name {
        let found = api.get_opt(name).await.map_err(to_api_error)?;
        return Ok(found
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect());
    }
    let mut lp = ListParams::default();
    if !labels.is_empty() {
        lp = lp.labels(&selector(labels));
    }
    let list = api.list(&lp).await.map_err(to_api_error)?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect())
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

async fn object(client: &kube::Client, o: &ObjectExpectation) -> Result<Observation, StepError> {
    let objects = select(
        client,
        o.api_version.as_deref(),
        &o.kind,
        o.namespace.as_deref(),
        o.name.as_deref(),
        &o.labels,
    )
    .await?;
    let mut mismatches = Vec::new();
    match o.count {
        Some(n) if !n.allows(objects.len()) => {
            let names: Vec<&str> = objects.iter().map(name_of).collect();
            mismatches.push(format!(
                "count: expected {n} {}, observed {} {names:?}",
                o.kind,
                objects.len()
            ));
        }
        // `require: none` is satisfied by selecting nothing.
        None if objects.is_empty() && o.require != Quantifier::None => {
            mismatches.push(format!("expected at least one {}, observed none", o.kind));
        }
        _ => {}
    }
    let secret = o.kind == "Secret";
    let per_object: Vec<(&Value, Vec<super::matcher::Mismatch>)> = objects
        .iter()
        .map(|obj| {
            let mut ms = match_tree(&o.matches, obj);
            if secret {
                ms.iter_mut().for_each(mask_secret_values);
            }
            (obj, ms)
        })
        .collect();
    match o.require {
        Quantifier::All => {
            for (obj, ms) in &per_object {
                for m in ms {
                    mismatches.push(format!("{} {}: {m}", o.kind, name_of(obj)));
                }
            }
        }
        Quantifier::None => {
            for (obj, ms) in &per_object {
                if ms.is_empty() {
                    mismatches.push(format!(
                        "{} {} matches, expected no selected object to",
                        o.kind,
                        name_of(obj)
                    ));
                }
            }
        }
        Quantifier::Any => {
            if !per_object.iter().any(|(_, ms)| ms.is_empty()) {
                // None matches: show the closest one.
                if let Some((obj, ms)) = per_object.iter().min_by_key(|(_, ms)| ms.len()) {
                    for m in ms {
                        mismatches.push(format!(
                            "{} {} (closest of {}): {m}",
                            o.kind,
                            name_of(obj),
                            objects.len()
                        ));
                    }
                }
            }
        }
    }
    Ok(if mismatches.is_empty() {
        Observation::holds()
    } else {
        Observation::fails(mismatches)
    })
}

/// Hides what a Secret holds in a mismatch's observed side: the expected side is the
/// scenario's own text, the observed one the cluster's secret (see also [`super::redact`]).
fn mask_secret_values(m: &mut super::matcher::Mismatch) {
    const FIELDS: [&str; 3] = ["data", "stringData", "binaryData"];
    let Some(observed) = &mut m.observed else {
        return;
    };
    let inside = FIELDS.iter().any(|f| {
        m.path
            .strip_prefix('.')
            .and_then(|p| p.strip_prefix(f))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    });
    if inside {
        mask_leaves(observed);
    } else if let Value::Object(map) = observed {
        for f in FIELDS {
            if let Some(v) = map.get_mut(f) {
                mask_leaves(v);
            }
        }
    }
}

fn mask_leaves(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(mask_leaves),
        Value::Array(items) => items.iter_mut().for_each(mask_leaves),
        Value::Null => {}
        other => *other = Value::String(super::redact::REDACTED.to_owned()),
    }
}

async fn absent(client: &kube::Client, a: &AbsentExpectation) -> Result<Observation, StepError> {
    Ok(if steps::exists(client, &a.object).await? {
        Observation::fails(vec![format!(
            "{} {} exists, expected it to be absent",
            a.object.kind, a.object.name
        )])
    } else {
        Observation::holds()
    })
}

async fn log(client: &kube::Client, l: &LogExpectation) -> Result<Observation, StepError> {
    let pods = select(
        client,
        Some("v1"),
        "Pod",
        Some(&l.namespace),
        l.pod.as_deref(),
        &l.labels,
    )
    .await?;
    if pods.is_empty() {
        return Ok(Observation::fails(vec![format!(
            "no pod selected in {} to read logs from",
            l.namespace
        )]));
    }
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &l.namespace);
    let since_seconds = l
        .since
        .map(|d| i64::try_from(d.as_std().as_secs().max(1)).unwrap_or(i64::MAX));
    let lately = l
        .since
        .map(|d| format!(" written in the last {d}"))
        .unwrap_or_default();
    for pod in &pods {
        let name = name_of(pod);
        for previous in [false, true] {
            let lp = LogParams {
                container: l.container.clone(),
                previous,
                since_seconds,
                ..LogParams::default()
            };
            // A container that has not started (or has no previous instance) has no log yet.
            if let Ok(text) = api.logs(name, &lp).await
                && text.lines().any(|line| line.contains(&l.contains))
            {
                if l.absent {
                    return Ok(Observation::fails(vec![format!(
                        "a log line of pod {name}{lately} contains {:?}",
                        l.contains
                    )]));
                }
                return Ok(Observation::holds());
            }
        }
    }
    if l.absent {
        return Ok(Observation::holds());
    }
    Ok(Observation::fails(vec![format!(
        "no log line{lately} of {} pod(s) contains {:?}",
        pods.len(),
        l.contains
    )]))
}

async fn event(client: &kube::Client, e: &EventExpectation) -> Result<Observation, StepError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), &e.namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|err| StepError::Api {
            action: "list",
            target: format!("events in {}", e.namespace),
            message: err.to_string(),
            reason: String::new(),
        })?;
    let mut same_reason = 0;
    for ev in &list.items {
        if ev.reason.as_deref() != Some(e.reason.as_str()) {
            continue;
        }
        same_reason += 1;
        let type_ok = e.kind.is_none_or(|t| {
            ev.type_.as_deref()
                == Some(match t {
                    crate::scenario::EventType::Normal => "Normal",
                    crate::scenario::EventType::Warning => "Warning",
                })
        });
        let message_ok = e.message.as_ref().is_none_or(|m| {
            ev.message
                .as_deref()
                .is_some_and(|have| have.contains(m.as_str()))
        });
        let kind_ok = e
            .involved_kind
            .as_ref()
            .is_none_or(|k| ev.involved_object.kind.as_deref() == Some(k.as_str()));
        let name_ok = e.involved_name_prefix.as_ref().is_none_or(|p| {
            ev.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(p.as_str()))
        });
        if type_ok && message_ok && kind_ok && name_ok {
            return Ok(Observation::holds());
        }
    }
    // Only events with the expected reason explain a mismatch; the others are noise here.
    let messages: Vec<String> = list
        .items
        .iter()
        .filter(|ev| ev.reason.as_deref() == Some(e.reason.as_str()))
        .filter_map(|ev| ev.message.clone())
        .take(3)
        .collect();
    let kind = match e.kind {
        None => "",
        Some(crate::scenario::EventType::Warning) => " Warning",
        Some(crate::scenario::EventType::Normal) => " Normal",
    };
    Ok(Observation::fails(vec![format!(
        "no{kind} event matches (reason {}{}); {same_reason} with that reason{}",
        e.reason,
        e.message
            .as_ref()
            .map(|m| format!(", message containing {m:?}"))
            .unwrap_or_default(),
        if messages.is_empty() {
            String::new()
        } else {
            format!(": {messages:?}")
        }
    )]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::run::matcher::Mismatch;

    #[test]
    fn a_secrets_observed_values_are_masked() {
        let mismatch = |path: &str, observed: Value| Mismatch {
            path: path.to_owned(),
            expected: json!("d3Jvbmc="),
            observed: Some(observed),
        };
        let mut m = mismatch(".data.password", json!("Q0FOQVJZ"));
        mask_secret_values(&mut m);
        assert_eq!(
            m.to_string(),
            ".data.password: expected \"d3Jvbmc=\", observed \"<redacted>\""
        );
        let mut m = mismatch(".stringData", json!({"token": "CANARY", "n": 1}));
        mask_secret_values(&mut m);
        assert_eq!(
            m.observed,
            Some(json!({"token": "<redacted>", "n": "<redacted>"}))
        );
        let mut m = mismatch("", json!({"data": {"k": "CANARY"}, "type": "Opaque"}));
        mask_secret_values(&mut m);
        assert_eq!(
            m.observed,
            Some(json!({"data": {"k": "<redacted>"}, "type": "Opaque"}))
        );
        // Other fields of a Secret (its name, labels, type) are shown.
        let mut m = mismatch(".type", json!("Opaque"));
        mask_secret_values(&mut m);
        assert_eq!(m.observed, Some(json!("Opaque")));
        let mut m = mismatch(".database", json!("x"));
        mask_secret_values(&mut m);
        assert_eq!(
            m.observed,
            Some(json!("x")),
            "a prefix of a field name is not the field"
        );
    }
}
