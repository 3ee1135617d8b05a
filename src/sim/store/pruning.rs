//! Pruning of custom resources to their CustomResourceDefinition's structural schema, as the
//! API server decodes them: fields the schema does not declare are dropped unless a schema on
//! the way says `x-kubernetes-preserve-unknown-fields`, and their paths are what
//! `fieldValidation=Strict` rejects and `Warn` reports.
//!
//! k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go (`PruneWithOptions`,
//! `prune`, `skipPrune`) with the path bookkeeping of `UnknownFieldPathOptions`
//! (pkg/apiserver/schema/unknownfieldpaths.go): keys joined by `.`, list items as `[i]`, the
//! paths sorted.

use serde_json::Value;

/// TypeMeta and ObjectMeta, never pruned at a resource's root or in an embedded resource.
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Which directive a write request carries in `fieldValidation` (metav1.FieldValidation*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are dropped silently.
    Ignore,
    /// Unknown fields are dropped and reported as warnings (the default when unset:
    /// k8s.io/apiserver/pkg/endpoints/handlers/rest.go `fieldValidation`).
    Warn,
    /// A request carrying unknown fields is refused.
    Strict,
}

impl FieldValidation {
    /// The directive of a `fieldValidation` query value; unset (or unrecognised) is `Warn`.
    #[must_use]
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Ignore") => Self::Ignore,
            Some("Strict") => Self::Strict,
            _ => Self::Warn,
        }
    }
}

/// Prunes `obj`, a resource's root, to `schema` (an `openAPIV3Schema`) and returns the sorted
/// paths of the fields it removed.
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut path = String::new();
    walk(obj, Some(schema), true, &mut path, &mut unknown);
    unknown.sort();
    unknown
}

/// The `openAPIV3Schema` of `version` in a CustomResourceDefinition, if it declares one.
#[must_use]
pub fn crd_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .filter(|s| s.is_object())
}

fn flag(schema: Option<&Value>, name: &str) -> bool {
    schema.is_some_and(|s| s[name].as_bool() == Some(true))
}

/// The schema of a map's values: `additionalProperties` when it is a schema (`true` allows
/// anything, as an empty schema does for the structural schema).
fn additional(schema: &Value) -> Option<Option<&Value>> {
    match &schema["additionalProperties"] {
        Value::Object(_) => Some(Some(&schema["additionalProperties"])),
        Value::Bool(true) => Some(None),
        _ => None,
    }
}

fn push(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn walk(
    x: &mut Value,
    schema: Option<&Value>,
    root: bool,
    path: &mut String,
    unknown: &mut Vec<String>,
) {
    if flag(schema, "x-kubernetes-preserve-unknown-fields") {
        skip(x, schema, root, path, unknown);
        return;
    }
    let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
    let len = path.len();
    match x {
        Value::Object(map) => {
            let Some(s) = schema else {
                for k in map.keys() {
                    push(path, k);
                    unknown.push(path.clone());
                    path.truncate(len);
                }
                map.clear();
                return;
            };
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                push(path, &k);
                if let Some(prop) = s["properties"].get(&k) {
                    if let Some(v) = map.get_mut(&k) {
                        walk(v, Some(prop), false, path, unknown);
                    }
                } else if let Some(items) = additional(s) {
                    if let Some(v) = map.get_mut(&k) {
                        // `additionalProperties: true` declares values of any shape.
                        if let Some(items) = items {
                            walk(v, Some(items), false, path, unknown);
                        }
                    }
                } else {
                    unknown.push(path.clone());
                    map.remove(&k);
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            let item_schema = schema
                .and_then(|s| s.get("items"))
                .filter(|i| i.is_object());
            for (i, v) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(v, item_schema, false, path, unknown);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: undeclared fields stay, declared ones are
/// pruned to their own schemas.
fn skip(
    x: &mut Value,
    schema: Option<&Value>,
    root: bool,
    path: &mut String,
    unknown: &mut Vec<String>,
) {
    let Some(s) = schema else { return };
    let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
    let len = path.len();
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                push(path, k);
                if let Some(prop) = s["properties"].get(k) {
                    walk(v, Some(prop), false, path, unknown);
                } else if let Some(Some(items)) = additional(s) {
                    walk(v, Some(items), false, path, unknown);
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            let item_schema = s.get("items").filter(|i| i.is_object());
            for (i, v) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                skip(v, item_schema, false, path, unknown);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "gatewayClassName": {"type": "string"},
                        "listeners": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}
                        }},
                        "infrastructure": {"type": "object", "properties": {
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "parametersRef": {"type": "object", "properties": {
                                "group": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}
                            }}
                        }}
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"conditions": {"type": "array", "items": {"type": "object",
                        "properties": {"type": {"type": "string"}}}}}}
            }
        })
    }

    #[test]
    fn undeclared_fields_are_pruned_and_named_in_order() {
        let mut obj = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "ameide", "labels": {"a": "b"}},
            "extra": 1,
            "spec": {
                "gatewayClassName": "envoy",
                "listeners": [{"name": "http", "port": 80, "hostname": "x"}],
                "infrastructure": {
                    "labels": {"team": "platform"},
                    "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "p", "namespace": "argocd"}
                }
            },
            "status": {"addresses": [{"value": "1.2.3.4"}], "conditions": [{"type": "Accepted", "reason": "Accepted"}]}
        });
        let unknown = prune(&mut obj, &gateway_schema());
        assert_eq!(
            unknown,
            [
                "extra",
                "spec.infrastructure.parametersRef.namespace",
                "spec.listeners[0].hostname",
                "status.conditions[0].reason",
            ]
        );
        assert!(obj["spec"]["infrastructure"]["parametersRef"]["namespace"].is_null());
        assert_eq!(obj["spec"]["infrastructure"]["labels"]["team"], "platform");
        assert_eq!(obj["metadata"]["labels"]["a"], "b");
        assert_eq!(obj["status"]["addresses"][0]["value"], "1.2.3.4");
        assert!(obj.get("extra").is_none());
    }

    #[test]
    fn preserve_at_the_root_keeps_everything() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let mut obj = json!({"apiVersion": "v", "kind": "K", "spec": {"anything": [1, {"a": 2}]}});
        let before = obj.clone();
        assert!(prune(&mut obj, &schema).is_empty());
        assert_eq!(obj, before);
    }

    #[test]
    fn an_object_without_a_schema_loses_every_field() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let mut obj = json!({"spec": {"b": 1, "a": {"c": 2}}});
        assert_eq!(prune(&mut obj, &schema), ["spec.a", "spec.b"]);
        assert_eq!(obj["spec"], json!({}));
    }

    #[test]
    fn directives() {
        assert_eq!(FieldValidation::parse(None), FieldValidation::Warn);
        assert_eq!(
            FieldValidation::parse(Some("Strict")),
            FieldValidation::Strict
        );
        assert_eq!(
            FieldValidation::parse(Some("Ignore")),
            FieldValidation::Ignore
        );
    }
}
