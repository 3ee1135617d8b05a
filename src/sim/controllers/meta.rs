//! Small readers and writers for Kubernetes objects held as JSON: metadata, owner references,
//! label selectors, times, pod readiness and conditions.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

/// The value at `path` (object keys), if every step exists.
#[must_use]
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(*key)?;
    }
    Some(cur)
}

/// [`Value::pointer`] without its per-step allocations: pointers through object keys only
/// (no `~` escapes, no array steps) are walked directly, anything else is left to
/// `Value::pointer`. Same answers, for the hot paths that read many objects.
#[must_use]
pub fn pointer<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    let Some(steps) = ptr.strip_prefix('/').filter(|_| !ptr.contains('~')) else {
        return v.pointer(ptr);
    };
    let mut cur = v;
    for step in steps.split('/') {
        match cur {
            Value::Object(m) => cur = m.get(step)?,
            Value::Array(_) => return v.pointer(ptr),
            _ => return None,
        }
    }
    Some(cur)
}

/// The string at `path`, or `""` when absent or not a string.
#[must_use]
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, if present and integral.
#[must_use]
pub fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// The boolean at `path`, or `false`.
#[must_use]
pub fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
#[must_use]
pub fn array_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Sets `value` at `path`, creating intermediate objects (and replacing non-objects).
pub fn set_at(v: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = value;
        return;
    };
    let mut cur = v;
    for key in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        map.insert((*last).to_owned(), value);
    }
}

/// Removes the value at `path`, if any.
pub fn remove_at(v: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for key in parents {
        match cur.get_mut(*key) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(map) = cur {
        map.remove(*last);
    }
}

/// `metadata.name`.
#[must_use]
pub fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"])
}

/// `metadata.namespace`, if set and non-empty.
#[must_use]
pub fn namespace(obj: &Value) -> Option<&str> {
    Some(str_at(obj, &["metadata", "namespace"])).filter(|s| !s.is_empty())
}

/// `metadata.uid`, if set.
#[must_use]
pub fn uid(obj: &Value) -> Option<&str> {
    Some(str_at(obj, &["metadata", "uid"])).filter(|s| !s.is_empty())
}

/// `metadata.generation` (0 when absent).
#[must_use]
pub fn generation(obj: &Value) -> i64 {
    i64_at(obj, &["metadata", "generation"]).unwrap_or(0)
}

/// A string map (labels, annotations, a selector's `matchLabels`) at `path`.
#[must_use]
pub fn string_map(obj: &Value, path: &[&str]) -> BTreeMap<String, String> {
    at(obj, path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.labels`.
#[must_use]
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(obj, &["metadata", "labels"])
}

/// One annotation.
#[must_use]
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    at(obj, &["metadata", "annotations", key]).and_then(Value::as_str)
}

/// Sets one annotation.
pub fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    set_at(obj, &["metadata", "annotations", key], json!(value));
}

/// `metadata.creationTimestamp`.
#[must_use]
pub fn creation_time(obj: &Value) -> Option<Timestamp> {
    parse_time(str_at(obj, &["metadata", "creationTimestamp"]))
}

/// Whether `metadata.deletionTimestamp` is set.
#[must_use]
pub fn is_deleting(obj: &Value) -> bool {
    at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null())
}

/// The controller owner reference, if any.
#[must_use]
pub fn controller_of(obj: &Value) -> Option<&Value> {
    array_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| bool_at(r, &["controller"]))
}

/// Copies of shared objects, for code that changes or keeps what it listed.
#[must_use]
pub fn owned(objects: Vec<Arc<Value>>) -> Vec<Value> {
    objects.into_iter().map(Arc::unwrap_or_clone).collect()
}

/// Whether `obj`'s controller reference points at `owner` (by UID).
#[must_use]
pub fn is_controlled_by(obj: &Value, owner: &Value) -> bool {
    match (controller_of(obj), uid(owner)) {
        (Some(r), Some(owner_uid)) => str_at(r, &["uid"]) == owner_uid,
        _ => false,
    }
}

/// A controller owner reference to `owner`, as `metav1.NewControllerRef` builds it.
#[must_use]
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, &["apiVersion"]),
        "kind": str_at(owner, &["kind"]),
        "name": name(owner),
        "uid": uid(owner).unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Formats a time as Kubernetes serializes `metav1.Time`: RFC 3339, whole seconds, UTC.
#[must_use]
pub fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an RFC 3339 time; `None` for empty or malformed input.
#[must_use]
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if s.is_empty() {
        return None;
    }
    s.parse().ok()
}

/// `t` plus whole seconds (saturating at the representable range).
#[must_use]
pub fn add_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs))
        .unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

/// Truncates a time to whole seconds, as a stored `metav1.Time` is.
#[must_use]
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Whether `labels` satisfy a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`).
///
/// An empty selector (`{}`) selects everything; a missing one (`null`) selects nothing, as
/// `metav1.LabelSelectorAsSelector` has it.
#[must_use]
pub fn selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return false;
    };
    for (k, v) in string_map(selector, &["matchLabels"]) {
        if labels.get(&k) != Some(&v) {
            return false;
        }
    }
    for expr in array_at(selector, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let values: Vec<&str> = array_at(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let present = labels.get(key);
        let ok = match str_at(expr, &["operator"]) {
            "In" => present.is_some_and(|v| values.contains(&v.as_str())),
            "NotIn" => present.is_none_or(|v| !values.contains(&v.as_str())),
            "Exists" => present.is_some(),
            "DoesNotExist" => present.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `labels` contain every pair of a plain map selector (a Service's `spec.selector`).
#[must_use]
pub fn map_selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The condition of `type_` in `status.conditions`.
#[must_use]
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    array_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == type_)
}

/// `status.phase` of a pod.
#[must_use]
pub fn pod_phase(pod: &Value) -> &str {
    str_at(pod, &["status", "phase"])
}

/// Whether a pod's `Ready` condition is `True` (`podutil.IsPodReady`).
#[must_use]
pub fn is_pod_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// When a ready pod became ready (`lastTransitionTime` of its `Ready` condition).
#[must_use]
pub fn pod_ready_time(pod: &Value) -> Option<Timestamp> {
    if !is_pod_ready(pod) {
        return None;
    }
    condition(pod, "Ready").and_then(|c| parse_time(str_at(c, &["lastTransitionTime"])))
}

/// Whether a pod has been ready for at least `min_ready_seconds` (`podutil.IsPodAvailable`).
#[must_use]
pub fn is_pod_available(pod: &Value, min_ready_seconds: i64, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    pod_ready_time(pod).is_some_and(|t| add_secs(t, min_ready_seconds) <= now)
}

/// When a ready pod becomes available, if it is ready but not available yet.
#[must_use]
pub fn pod_available_at(pod: &Value, min_ready_seconds: i64, now: Timestamp) -> Option<Timestamp> {
    if min_ready_seconds <= 0 || is_pod_available(pod, min_ready_seconds, now) {
        return None;
    }
    pod_ready_time(pod).map(|t| add_secs(t, min_ready_seconds))
}

/// Whether a pod still counts (`controller.IsPodActive`): not Succeeded, not Failed, not deleting.
#[must_use]
pub fn is_pod_active(pod: &Value) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && !is_deleting(pod)
}

/// The highest restart count among a pod's containers.
#[must_use]
pub fn max_container_restarts(pod: &Value) -> i64 {
    array_at(pod, &["status", "containerStatuses"])
        .iter()
        .filter_map(|c| i64_at(c, &["restartCount"]))
        .max()
        .unwrap_or(0)
}

/// Resolves an int-or-percent (`maxSurge: 25%`, `maxUnavailable: 1`) against `total`
/// (`intstr.GetScaledValueFromIntOrPercent`): percentages round up or down as asked.
/// Malformed values resolve to `None`.
#[must_use]
pub fn scaled_int_or_percent(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let scaled = pct.checked_mul(total)?;
            Some(if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            })
        }
        _ => None,
    }
}

/// Strips server-owned metadata so an object can be sent back as an update.
#[must_use]
pub fn object_ref_json(obj: &Value) -> Value {
    json!({
        "apiVersion": str_at(obj, &["apiVersion"]),
        "kind": str_at(obj, &["kind"]),
        "namespace": namespace(obj).unwrap_or(""),
        "name": name(obj),
        "uid": uid(obj).unwrap_or(""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbls(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn pointer_answers_like_value_pointer() {
        let v = json!({"metadata": {"name": "p", "labels": {"a/b": "x", "c~d": "y"}},
                       "spec": {"containers": [{"name": "c"}], "n": 1}, "": {"": 2}});
        for ptr in [
            "",
            "/",
            "//",
            "/metadata/name",
            "/metadata/missing",
            "/metadata/name/deeper",
            "/metadata/labels/a~1b",
            "/metadata/labels/c~0d",
            "/spec/containers/0/name",
            "/spec/containers/01/name",
            "/spec/containers/x",
            "/spec/n/x",
            "metadata",
        ] {
            assert_eq!(pointer(&v, ptr), v.pointer(ptr), "{ptr}");
        }
    }

    #[test]
    fn percentages_round_like_intstr() {
        assert_eq!(scaled_int_or_percent(&json!("25%"), 1, true), Some(1));
        assert_eq!(scaled_int_or_percent(&json!("25%"), 1, false), Some(0));
        assert_eq!(scaled_int_or_percent(&json!("25%"), 10, true), Some(3));
        assert_eq!(scaled_int_or_percent(&json!("25%"), 10, false), Some(2));
        assert_eq!(scaled_int_or_percent(&json!(2), 10, false), Some(2));
        assert_eq!(scaled_int_or_percent(&json!("two"), 10, false), None);
    }

    #[test]
    fn selectors_follow_label_selector_semantics() {
        let l = lbls(&[("app", "web"), ("tier", "fe")]);
        assert!(selector_matches(Some(&json!({})), &l));
        assert!(!selector_matches(None, &l));
        assert!(selector_matches(
            Some(&json!({"matchLabels": {"app": "web"}})),
            &l
        ));
        assert!(!selector_matches(
            Some(&json!({"matchLabels": {"app": "db"}})),
            &l
        ));
        let exprs = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]});
        assert!(selector_matches(Some(&exprs), &l));
        let notin =
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]});
        assert!(!selector_matches(Some(&notin), &l));
    }

    #[test]
    fn availability_respects_min_ready_seconds() {
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
        ]}});
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert!(is_pod_available(&pod, 0, t0));
        assert!(!is_pod_available(&pod, 10, add_secs(t0, 9)));
        assert!(is_pod_available(&pod, 10, add_secs(t0, 10)));
        assert_eq!(pod_available_at(&pod, 10, t0), Some(add_secs(t0, 10)));
    }

    #[test]
    fn times_serialize_as_whole_seconds() {
        let t: Timestamp = "2024-05-06T07:08:09.5Z".parse().unwrap();
        assert_eq!(fmt_time(t), "2024-05-06T07:08:09Z");
        assert_eq!(parse_time("2024-05-06T07:08:09Z"), Some(whole_seconds(t)));
    }
}
