//! Declarative operators: "for each object of this kind, own these objects".

use serde_json::{Map, Value, json};

use super::view::ClusterViewExt;
use crate::scenario::OperatorRule;

/// Replaces `{{name}}` and `{{namespace}}` in every string (keys included) of `value`.
#[must_use]
pub fn template(value: &Value, name: &str, namespace: &str) -> Value {
    let subst = |s: &str| {
        s.replace("{{name}}", name)
            .replace("{{namespace}}", namespace)
    };
    match value {
        Value::String(s) => Value::String(subst(s)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| template(v, name, namespace)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (subst(k), template(v, name, namespace)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// The objects the operator wants to exist now: for every served rule and every watched
/// object, the rule's `owns` templated with the watched object's name and namespace, placed in
/// its namespace (unless the template names one) and owned by it (`ownerReferences` with
/// `controller: true`). Rules whose resource is not served contribute nothing.
///
/// The order is stable: rules in declaration order, watched objects in the view's order,
/// owned objects in template order.
#[must_use]
pub fn desired_objects(rules: &[OperatorRule], view: &dyn ClusterViewExt) -> Vec<Value> {
    let mut out = Vec::new();
    for rule in rules {
        let r = &rule.for_each;
        if !view.resource_served(&r.group, &r.version, &r.resource) {
            continue;
        }
        let api_version = if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        };
        for owner in view.list(&api_version, &r.kind, None) {
            let meta = owner.get("metadata");
            let field = |k: &str| {
                meta.and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let (name, namespace, uid) = (field("name"), field("namespace"), field("uid"));
            if meta.and_then(|m| m.get("deletionTimestamp")).is_some() {
                continue;
            }
            for owned in &rule.owns {
                let mut obj = template(owned, &name, &namespace);
                let Some(map) = obj.as_object_mut() else {
                    continue;
                };
                let meta = map
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(meta) = meta.as_object_mut() {
                    if !namespace.is_empty() && !meta.contains_key("namespace") {
                        meta.insert("namespace".into(), Value::String(namespace.clone()));
                    }
                    meta.insert(
                        "ownerReferences".into(),
                        json!([{
                            "apiVersion": api_version,
                            "kind": r.kind,
                            "name": name,
                            "uid": uid,
                            "controller": true,
                            "blockOwnerDeletion": true,
                        }]),
                    );
                }
                out.push(obj);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ResourceNeed;
    use crate::sim::behaviour::StaticView;

    fn rule() -> OperatorRule {
        OperatorRule {
            for_each: ResourceNeed {
                group: "monitoring.coreos.com".into(),
                version: "v1".into(),
                resource: "prometheuses".into(),
                kind: "Prometheus".into(),
            },
            owns: vec![json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "prometheus-{{name}}", "labels": {"prometheus": "{{name}}"}},
                "spec": {"serviceName": "prometheus-operated"}
            })],
            log_while_unserved: vec![],
        }
    }

    fn cr() -> Value {
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": "k", "namespace": "monitoring", "uid": "u-1"}
        })
    }

    #[test]
    fn templates_strings_and_keys() {
        let v = json!({"a-{{name}}": ["{{namespace}}/{{name}}", 3, true]});
        assert_eq!(template(&v, "x", "ns"), json!({"a-x": ["ns/x", 3, true]}));
    }

    #[test]
    fn owns_objects_only_while_served() {
        let unserved = StaticView::new(vec![cr()]);
        assert!(desired_objects(&[rule()], &unserved).is_empty());

        let served =
            StaticView::new(vec![cr()]).serving("monitoring.coreos.com", "v1", "prometheuses");
        let got = desired_objects(&[rule()], &served);
        assert_eq!(
            got,
            vec![json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {
                    "name": "prometheus-k",
                    "namespace": "monitoring",
                    "labels": {"prometheus": "k"},
                    "ownerReferences": [{
                        "apiVersion": "monitoring.coreos.com/v1",
                        "kind": "Prometheus",
                        "name": "k",
                        "uid": "u-1",
                        "controller": true,
                        "blockOwnerDeletion": true
                    }]
                },
                "spec": {"serviceName": "prometheus-operated"}
            })]
        );
    }

    #[test]
    fn deleted_owners_own_nothing() {
        let mut c = cr();
        c["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        let view = StaticView::new(vec![c]).serving("monitoring.coreos.com", "v1", "prometheuses");
        assert!(desired_objects(&[rule()], &view).is_empty());
    }
}
