//! Partial-tree matching of expectations against live objects, with every mismatch reported.
//!
//! Semantics, the same everywhere an expectation names a tree:
//! - a map matches when each key written matches (keys not written are ignored);
//! - a list matches when each element written matches *some* element of the actual list, in any
//!   order (a filter, never a length check);
//! - scalars match when equal; a YAML bool or number also matches the same text in a string
//!   (`status: True` matches the condition status `"True"`), because Kubernetes keeps many
//!   booleans as strings;
//! - `null` matches a missing or null value (so does `$absent: true`).
//!
//! A map whose keys all start with `$` is an operator, applied to the value at its place
//! (`$`-keys are never Kubernetes fields; strategic merge patches use the same convention). Several
//! operators in one map must all hold:
//! - `$not: <tree>`: the value does *not* match the tree;
//! - `$absent: true` (or `false`): the field is missing or null (or present);
//! - `$regex: <pattern>`, `$prefix: <text>`, `$suffix: <text>`: on the value's text;
//! - `$contains`: on text, a substring; on a list, each given element (a filter) matches some
//!   element (the default list rule, spelled out);
//! - `$lacks: [<filter>...]`: no element of the list matches any given filter (a missing list
//!   lacks everything);
//! - `$gt`, `$gte`, `$lt`, `$lte`: numeric comparison (numbers, or text that is a number);
//! - `$oneOf: [<value>...]`: equal to one of the values.

use std::fmt;

use serde_json::Value;

pub use crate::scenario::operators::{OPERATORS, check_operators, is_operator};

/// One place where the object differs from the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Where, e.g. `.status.conditions[type=Progressing].reason`.
    pub path: String,
    /// What the expectation wrote there.
    pub expected: Value,
    /// What the object has there; `None` when absent.
    pub observed: Option<Value>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "."
        } else {
            &self.path
        };
        match &self.observed {
            Some(observed) => write!(
                f,
                "{path}: expected {}, observed {}",
                compact(&self.expected),
                compact(observed)
            ),
            None => write!(
                f,
                "{path}: expected {}, observed nothing (absent)",
                compact(&self.expected)
            ),
        }
    }
}

/// Renders a value on one line, shortened when long, for mismatch reports.
#[must_use]
pub fn compact(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 160 {
        let mut t: String = text.chars().take(157).collect();
        t.push_str("...");
        t
    } else {
        text
    }
}

/// Matches `actual` against the partial tree `expected`; returns every mismatch (empty = match).
///
/// ```
/// use relapse::matcher::match_tree;
/// use serde_json::json;
/// let deployment = json!({"status": {"conditions": [
///     {"type": "Available", "status": "True"},
///     {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}});
/// let want = json!({"status": {"conditions": [{"type": "Progressing", "status": "True"}]}});
/// let mismatches = match_tree(&want, &deployment);
/// assert_eq!(mismatches[0].to_string(),
///     r#".status.conditions[type=Progressing].status: expected "True", observed "False""#);
/// ```
#[must_use]
pub fn match_tree(expected: &Value, actual: &Value) -> Vec<Mismatch> {
    let mut out = Vec::new();
    walk(expected, Some(actual), &mut String::new(), &mut out);
    out
}

/// The text of a scalar, as a Kubernetes string field would hold it.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The number a value stands for (a number, or text such as `"3"`).
fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether one operator holds for `actual` (`None`: the field is missing).
fn operator_holds(op: &str, arg: &Value, actual: Option<&Value>) -> bool {
    let present = actual.filter(|v| !v.is_null());
    let text = || present.and_then(text_of);
    let cmp = |f: fn(f64, f64) -> bool| match (present.and_then(number_of), arg.as_f64()) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    match op {
        "$not" => !match_at(arg, actual).is_empty(),
        "$absent" => arg.as_bool().unwrap_or(true) == present.is_none(),
        "$regex" => match (arg.as_str().map(regex::Regex::new), text()) {
            (Some(Ok(re)), Some(t)) => re.is_match(&t),
            _ => false,
        },
        "$prefix" => text().is_some_and(|t| arg.as_str().is_some_and(|p| t.starts_with(p))),
        "$suffix" => text().is_some_and(|t| arg.as_str().is_some_and(|p| t.ends_with(p))),
        "$contains" => match (present, arg) {
            (Some(Value::Array(have)), Value::Array(want)) => want
                .iter()
                .all(|w| have.iter().any(|h| match_tree(w, h).is_empty())),
            (Some(Value::Array(have)), want) => have.iter().any(|h| match_tree(want, h).is_empty()),
            (Some(v), Value::String(needle)) => text_of(v).is_some_and(|t| t.contains(needle)),
            _ => false,
        },
        "$lacks" => {
            let filters = arg.as_array().map(Vec::as_slice).unwrap_or_default();
            match present {
                None => true,
                Some(Value::Array(have)) => !filters
                    .iter()
                    .any(|f| have.iter().any(|h| match_tree(f, h).is_empty())),
                Some(_) => false,
            }
        }
        "$gt" => cmp(|a, b| a > b),
        "$gte" => cmp(|a, b| a >= b),
        "$lt" => cmp(|a, b| a < b),
        "$lte" => cmp(|a, b| a <= b),
        "$oneOf" => arg
            .as_array()
            .is_some_and(|vs| vs.iter().any(|v| present.is_some_and(|p| scalar_eq(v, p)))),
        _ => false,
    }
}

/// Matches `expected` at a place whose value may be missing (`None`: there is no value, so
/// only absences match).
#[must_use]
pub fn match_at(expected: &Value, actual: Option<&Value>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    walk(expected, actual, &mut String::new(), &mut out);
    out
}

fn walk(expected: &Value, actual: Option<&Value>, path: &mut String, out: &mut Vec<Mismatch>) {
    if let Value::Object(ops) = expected
        && is_operator(expected)
    {
        if !ops.iter().all(|(op, arg)| operator_holds(op, arg, actual)) {
            out.push(Mismatch {
                path: path.clone(),
                expected: expected.clone(),
                observed: actual.cloned(),
            });
        }
        return;
    }
    match (expected, actual) {
        (Value::Null, None | Some(Value::Null)) => {}
        // A missing map matches a tree that only asks for absences (`$absent`, `$lacks`, ...).
        (Value::Object(want), None | Some(Value::Null))
            if !want.is_empty() && want.values().all(|v| match_at(v, None).is_empty()) => {}
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                walk(value, have.get(key), path, out);
                path.truncate(len);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) => {
            for (i, item) in want.iter().enumerate() {
                match_element(i, item, have, path, out);
            }
        }
        (want, have) if have.is_some_and(|h| scalar_eq(want, h)) => {}
        (want, have) => out.push(Mismatch {
            path: path.clone(),
            expected: want.clone(),
            observed: have.cloned(),
        }),
    }
}

/// Keys that identify list elements in Kubernetes objects, in order of preference.
const IDENTITY_KEYS: [&str; 5] = ["type", "name", "mountPath", "containerPort", "key"];

fn match_element(
    index: usize,
    want: &Value,
    have: &[Value],
    path: &mut String,
    out: &mut Vec<Mismatch>,
) {
    if have.iter().any(|h| match_tree(want, h).is_empty()) {
        return;
    }
    let len = path.len();
    // Report against the element a person means: the one with the same identity key if any,
    // otherwise the closest one; else say no element matched.
    let identity = want.as_object().and_then(|m| {
        IDENTITY_KEYS.iter().find_map(|k| {
            m.get(*k)
                .filter(|v| !v.is_object() && !v.is_array())
                .map(|v| (*k, v))
        })
    });
    if let Some((key, value)) = identity {
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        path.push_str(&format!("[{key}={shown}]"));
        let same: Vec<&Value> = have
            .iter()
            .filter(|h| h.get(key).is_some_and(|v| scalar_eq(value, v)))
            .collect();
        if same.is_empty() {
            out.push(Mismatch {
                path: path.clone(),
                expected: want.clone(),
                observed: None,
            });
        } else {
            let best = same.into_iter().min_by_key(|h| match_tree(want, h).len());
            if let Some(best) = best {
                walk(want, Some(best), path, out);
            }
        }
    } else {
        path.push_str(&format!("[{index}]"));
        if want.is_object() {
            match have.iter().min_by_key(|h| match_tree(want, h).len()) {
                Some(best) => walk(want, Some(best), path, out),
                None => out.push(Mismatch {
                    path: path.clone(),
                    expected: want.clone(),
                    observed: None,
                }),
            }
        } else {
            // A scalar (or nested list) that no element equals: show the whole list.
            out.push(Mismatch {
                path: path.clone(),
                expected: want.clone(),
                observed: Some(Value::Array(have.to_vec())),
            });
        }
    }
    path.truncate(len);
}

fn scalar_eq(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Bool(b), Value::String(s)) => {
            s.eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        (Value::Number(n), Value::String(s)) => n.to_string() == *s,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "grafana", "labels": {"app": "grafana"}},
            "status": {
                "replicas": 2,
                "readyReplicas": 1,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ]
            }
        })
    }

    #[test]
    fn maps_match_partially_and_lists_by_filter() {
        let want = json!({"status": {"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}});
        assert!(match_tree(&want, &deployment()).is_empty());
        // Order and length of the actual list do not matter.
        let want =
            json!({"status": {"conditions": [{"type": "Progressing"}, {"type": "Available"}]}});
        assert!(match_tree(&want, &deployment()).is_empty());
    }

    #[test]
    fn every_mismatch_is_reported_with_its_path() {
        let want = json!({
            "metadata": {"name": "grafana"},
            "status": {
                "readyReplicas": 2,
                "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
            }
        });
        let got: Vec<String> = match_tree(&want, &deployment())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            // Keys are visited in sorted order.
            [
                ".status.conditions[type=Progressing].reason: expected \"NewReplicaSetAvailable\", observed \"ProgressDeadlineExceeded\"",
                ".status.conditions[type=Progressing].status: expected \"True\", observed \"False\"",
                ".status.readyReplicas: expected 2, observed 1",
                ".status.updatedReplicas: expected 1, observed nothing (absent)",
            ]
        );
    }

    #[test]
    fn missing_list_element_is_named() {
        let want = json!({"status": {"conditions": [{"type": "ReplicaFailure"}]}});
        let got = match_tree(&want, &deployment());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, ".status.conditions[type=ReplicaFailure]");
        assert_eq!(got[0].observed, None);
    }

    #[test]
    fn yaml_scalars_match_kubernetes_strings() {
        let want = json!({"status": {"conditions": [{"type": "Available", "status": true}]}});
        assert!(match_tree(&want, &deployment()).is_empty());
        assert!(match_tree(&json!({"a": 1}), &json!({"a": "1"})).is_empty());
        assert!(match_tree(&json!({"a": 1}), &json!({"a": 1.0})).is_empty());
        assert!(!match_tree(&json!({"a": false}), &json!({"a": "True"})).is_empty());
    }

    #[test]
    fn null_matches_absent() {
        assert!(
            match_tree(
                &json!({"spec": {"rollingUpdate": null}}),
                &json!({"spec": {}})
            )
            .is_empty()
        );
        assert!(
            !match_tree(
                &json!({"spec": {"rollingUpdate": null}}),
                &json!({"spec": {"rollingUpdate": {}}})
            )
            .is_empty()
        );
    }

    #[test]
    fn scalar_list_elements() {
        assert!(match_tree(&json!({"args": ["b"]}), &json!({"args": ["a", "b"]})).is_empty());
        let got = match_tree(&json!({"args": ["c"]}), &json!({"args": ["a", "b"]}));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, ".args[0]");
    }

    #[test]
    fn type_mismatch_is_reported_not_panicking() {
        let got = match_tree(
            &json!({"status": {"conditions": {"type": "x"}}}),
            &deployment(),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, ".status.conditions");
    }

    fn holds(want: Value, have: &Value) -> bool {
        match_tree(&want, have).is_empty()
    }

    #[test]
    fn not_negates_any_partial_tree() {
        let d = deployment();
        assert!(holds(json!({"status": {"$not": {"readyReplicas": 2}}}), &d));
        assert!(!holds(
            json!({"status": {"$not": {"readyReplicas": 1}}}),
            &d
        ));
        // A missing field matches no tree, so `$not` of it holds.
        assert!(holds(json!({"spec": {"$not": {"paused": true}}}), &d));
        let got = match_tree(&json!({"status": {"replicas": {"$not": 2}}}), &d);
        assert_eq!(
            got[0].to_string(),
            r#".status.replicas: expected {"$not":2}, observed 2"#
        );
    }

    #[test]
    fn lists_can_contain_and_lack_elements_by_filter() {
        let d = deployment();
        let lacks = json!({"status": {"conditions": {"$lacks": [{"type": "ReplicaFailure"}]}}});
        assert!(holds(lacks, &d));
        let lacks =
            json!({"status": {"conditions": {"$lacks": [{"reason": "ProgressDeadlineExceeded"}]}}});
        assert!(!holds(lacks, &d));
        // A missing list lacks everything.
        assert!(holds(
            json!({"spec": {"tolerations": {"$lacks": [{"key": "x"}]}}}),
            &d
        ));
        let contains = json!({"status": {"conditions": {"$contains": [{"type": "Available"}, {"status": "False"}]}}});
        assert!(holds(contains, &d));
        assert!(!holds(
            json!({"status": {"conditions": {"$contains": [{"type": "Paused"}]}}}),
            &d
        ));
    }

    #[test]
    fn text_and_number_operators() {
        let pod = json!({"status": {"message": "Back-off restarting failed container app", "restartCount": 5, "phase": "Running"}});
        assert!(holds(
            json!({"status": {"message": {"$regex": "^Back-off restarting failed container [a-z]+$"}}}),
            &pod
        ));
        assert!(holds(
            json!({"status": {"message": {"$prefix": "Back-off", "$contains": "failed"}}}),
            &pod
        ));
        assert!(!holds(
            json!({"status": {"message": {"$prefix": "Back-off", "$suffix": "pod"}}}),
            &pod
        ));
        assert!(holds(
            json!({"status": {"restartCount": {"$gte": 5, "$lt": 6}}}),
            &pod
        ));
        assert!(!holds(
            json!({"status": {"restartCount": {"$gt": 5}}}),
            &pod
        ));
        // Kubernetes keeps numbers in strings too.
        assert!(holds(json!({"n": {"$lte": 3}}), &json!({"n": "3"})));
        // A missing number compares as nothing.
        assert!(!holds(json!({"status": {"missing": {"$lt": 3}}}), &pod));
        assert!(holds(
            json!({"status": {"phase": {"$oneOf": ["Running", "Succeeded"]}}}),
            &pod
        ));
        assert!(!holds(
            json!({"status": {"phase": {"$oneOf": ["Pending"]}}}),
            &pod
        ));
    }

    #[test]
    fn absent_true_and_false() {
        let d = deployment();
        assert!(holds(json!({"spec": {"paused": {"$absent": true}}}), &d));
        assert!(holds(
            json!({"status": {"replicas": {"$absent": false}}}),
            &d
        ));
        assert!(!holds(
            json!({"status": {"replicas": {"$absent": true}}}),
            &d
        ));
        assert!(holds(json!({"a": {"$absent": true}}), &json!({"a": null})));
    }

    #[test]
    fn operators_are_checked_when_a_scenario_loads() {
        assert!(check_operators(&json!({"a": {"$regex": "^ok$"}, "b": [{"$gt": 1}]})).is_empty());
        assert_eq!(
            check_operators(&json!({"status": {"phase": {"$regx": "x"}}})),
            vec![format!(
                ".status.phase: unknown operator `$regx`; expected one of: {}",
                OPERATORS.join(", ")
            )]
        );
        let problems = check_operators(
            &json!({"a": {"$regex": "("}, "b": {"$gt": "3"}, "c": {"$not": {"d": {"$lacks": 1}}}}),
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with(".a: invalid `$regex`"),
            "{problems:?}"
        );
        assert_eq!(problems[1], ".b: `$gt` needs a number");
        assert_eq!(problems[2], ".c.$not.d: `$lacks` needs a list");
    }
}
