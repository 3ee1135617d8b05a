//! Partial-tree matching of expectations against live objects, with every mismatch reported.
//!
//! Semantics, the same everywhere an expectation names a tree:
//! - a map matches when each key written matches (keys not written are ignored);
//! - a list matches when each element written matches *some* element of the actual list, in any
//!   order (a filter, never a length check);
//! - scalars match when equal; a YAML bool or number also matches the same text in a string
//!   (`status: True` matches the condition status `"True"`), because Kubernetes keeps many
//!   booleans as strings;
//! - `null` matches a missing or null value.

use std::fmt;

use serde_json::Value;

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
/// use relapse::run::matcher::match_tree;
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

fn walk(expected: &Value, actual: Option<&Value>, path: &mut String, out: &mut Vec<Mismatch>) {
    match (expected, actual) {
        (Value::Null, None | Some(Value::Null)) => {}
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
}
