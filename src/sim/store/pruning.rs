//! Pruning of custom resources to their CustomResourceDefinition's structural schema, as the
//! API server decodes them: fields the schema does not declare are dropped unless a schema on
//! the way says `x-kubernetes-preserve-unknown-fields`, and their paths are what
//! `fieldValidation=Strict` rejects and `Warn` reports.
//!
//! k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go (`PruneWithOptions`,
//! `prune`, `skipPrune`) with the path bookkeeping of `UnknownFieldPathOptions`
//! (pkg/apiserver/schema/unknownfieldpaths.go): keys joined by `.`, list items as `[i]`, the
//! paths sorted.
//!
//! Built-in kinds are checked by the same walk against their published OpenAPI v3 schemas
//! ([`unknown_builtin_fields`]), standing in for the strict JSON decoding of the Go types
//! (k8s.io/apimachinery/pkg/runtime/serializer/json/json.go with sigs.k8s.io/json
//! `UnmarshalStrict`): there, ObjectMeta is checked like any field, `$ref`s are followed, and a
//! schema declaring neither properties nor a map's values (IntOrString, Quantity,
//! RawExtension, FieldsV1, JSON) is a Go type decoding any value.

use serde_json::{Map, Value};

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
    Walk { defs: None }.walk(obj, Some(schema), true, &mut path, &mut unknown);
    unknown.sort();
    unknown
}

/// Drops from `obj`, a built-in kind's object, the fields its published schema `schema` does
/// not declare (`defs` holding the schemas its `$ref`s name) and returns their paths in the
/// order a JSON decoder meets them in a body with sorted keys, as kubectl and the API server's
/// own encoders write them (depth first), at most 100 of them (sigs.k8s.io/json
/// internal/golang/encoding/json/kubernetes_patch.go `saveStrictError`).
pub fn unknown_builtin_fields(
    obj: &mut Value,
    schema: &Value,
    defs: &Map<String, Value>,
) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut path = String::new();
    Walk { defs: Some(defs) }.walk(obj, Some(schema), false, &mut path, &mut unknown);
    unknown.truncate(100);
    unknown
}

/// The published schema's name of resource.Quantity.
const QUANTITY_REF: &str = "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Rewrites every resource.Quantity in `obj`, a built-in kind's object, to its canonical
/// string, as decoding into the Go type and encoding it back does
/// (k8s.io/apimachinery/pkg/api/resource/quantity.go `UnmarshalJSON` takes a JSON number's
/// text as the quantity, `MarshalJSON` writes `String()`, the canonical form). Which fields
/// are quantities comes from the published schema's references to
/// `io.k8s.apimachinery.pkg.api.resource.Quantity`. serde_json keeps a number as a binary
/// float, so an exponent form such as `1e3` reaches the canonicaliser as `1000.0` and comes
/// back `1k` where the real server keeps `1e3`.
pub fn canonicalize_quantities(obj: &mut Value, schema: &Value, defs: &Map<String, Value>) {
    canon_walk(obj, schema, defs, 0);
}

fn refers_to_quantity(schema: &Value) -> bool {
    schema["$ref"] == QUANTITY_REF
        || matches!(&schema["allOf"], Value::Array(all) if all.len() == 1 && all[0]["$ref"] == QUANTITY_REF)
}

fn canon_walk(x: &mut Value, schema: &Value, defs: &Map<String, Value>, depth: usize) {
    if depth > 64 {
        return;
    }
    if refers_to_quantity(schema) {
        let text = match x {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        if let Some(c) = crate::sim::scheduler::quantity::canonical(&text) {
            *x = Value::String(c);
        }
        return;
    }
    let Some(schema) = (Walk { defs: Some(defs) }).resolve(Some(schema)) else {
        return;
    };
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let Some(prop) = schema["properties"].get(k) {
                    canon_walk(v, prop, defs, depth + 1);
                } else if let Some(Some(items)) = additional(schema) {
                    canon_walk(v, items, defs, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for v in items {
                    canon_walk(v, item, defs, depth + 1);
                }
            }
        }
        _ => {}
    }
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

/// One walk: `defs` are the named schemas `$ref`s point to, present for built-in kinds.
struct Walk<'d> {
    defs: Option<&'d Map<String, Value>>,
}

impl<'d> Walk<'d> {
    /// The schema `$ref` or a single-entry `allOf` of one refers to (the published schemas
    /// wrap a reference in `allOf` to give it a description or default).
    fn resolve<'s>(&self, schema: Option<&'s Value>) -> Option<&'s Value>
    where
        'd: 's,
    {
        let (Some(defs), Some(mut s)) = (self.defs, schema) else {
            return schema;
        };
        for _ in 0..8 {
            let target = s["$ref"].as_str().or_else(|| match &s["allOf"] {
                Value::Array(all) if all.len() == 1 => all[0]["$ref"].as_str(),
                _ => None,
            });
            let Some(name) = target.and_then(|r| r.strip_prefix("#/components/schemas/")) else {
                break;
            };
            match defs.get(name) {
                Some(next) => s = next,
                None => break,
            }
        }
        Some(s)
    }

    fn walk(
        &self,
        x: &mut Value,
        schema: Option<&Value>,
        root: bool,
        path: &mut String,
        unknown: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        if flag(schema, "x-kubernetes-preserve-unknown-fields") {
            if self.defs.is_none() {
                self.skip(x, schema, root, path, unknown);
            }
            return;
        }
        if self.defs.is_some()
            && x.is_object()
            && schema.is_some_and(|s| s.get("properties").is_none() && additional(s).is_none())
        {
            // A Go type with its own decoding (IntOrString, Quantity, RawExtension, JSON).
            return;
        }
        let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
        let len = path.len();
        match x {
            Value::Object(map) => {
                let Some(s) = schema else {
                    if self.defs.is_some() {
                        return;
                    }
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
                            self.walk(v, Some(prop), false, path, unknown);
                        }
                    } else if let Some(items) = additional(s) {
                        if let Some(v) = map.get_mut(&k) {
                            // `additionalProperties: true` declares values of any shape.
                            if let Some(items) = items {
                                self.walk(v, Some(items), false, path, unknown);
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
                if self.defs.is_some() && item_schema.is_none() {
                    return;
                }
                for (i, v) in items.iter_mut().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    self.walk(v, item_schema, false, path, unknown);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Below `x-kubernetes-preserve-unknown-fields`: undeclared fields stay, declared ones are
    /// pruned to their own schemas.
    fn skip(
        &self,
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
                        self.walk(v, Some(prop), false, path, unknown);
                    } else if let Some(Some(items)) = additional(s) {
                        self.walk(v, Some(items), false, path, unknown);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                let item_schema = s.get("items").filter(|i| i.is_object());
                for (i, v) in items.iter_mut().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    self.skip(v, item_schema, false, path, unknown);
                    path.truncate(len);
                }
            }
            _ => {}
        }
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

#[cfg(test)]
mod builtin_tests {
    use super::*;
    use crate::sim::api::openapi::builtin_schema;
    use serde_json::json;

    fn check(group: &str, version: &str, kind: &str, obj: &mut Value) -> Vec<String> {
        let (schema, defs) = builtin_schema(group, version, kind).unwrap();
        unknown_builtin_fields(obj, schema, defs)
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web", "example.com/any-key": "x"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "500m", "memory": 128, "nvidia.com/gpu": 1}},
                        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}}
                    }]}
                }
            },
            "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]}
        })
    }

    #[test]
    fn a_valid_deployment_has_no_unknown_field() {
        let mut obj = deployment();
        let before = obj.clone();
        assert!(check("apps", "v1", "Deployment", &mut obj).is_empty());
        assert_eq!(obj, before);
    }

    #[test]
    fn typos_are_found_dropped_and_named_in_decoding_order() {
        let mut obj = deployment();
        obj["spec"]["replica"] = json!(3);
        obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicys"] = json!("Always");
        obj["metadata"]["labelz"] = json!({"a": "b"});
        obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = json!({});
        let unknown = check("apps", "v1", "Deployment", &mut obj);
        assert_eq!(
            unknown,
            [
                "metadata.labelz",
                "spec.replica",
                "spec.template.spec.containers[0].imagePullPolicys",
                "spec.template.spec.containers[0].resources.limit",
            ]
        );
        assert_eq!(obj, deployment());
    }

    #[test]
    fn a_cronjobs_pod_template_is_checked_too() {
        let mut obj = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["true"], "env": [{"name": "A", "valu": "1"}]}]
            }}}}}
        });
        assert_eq!(
            check("batch", "v1", "CronJob", &mut obj),
            ["spec.jobTemplate.spec.template.spec.containers[0].env[0].valu"]
        );
    }

    #[test]
    fn values_decoded_by_their_own_go_type_accept_anything() {
        // RawExtension (a ControllerRevision's data) and IntOrString in a Service's ports.
        let mut rev = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
            "revision": 1, "data": {"spec": {"template": {"anything": true}}}});
        assert!(check("apps", "v1", "ControllerRevision", &mut rev).is_empty());
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selector": {"any/key": "v"}}});
        assert!(check("", "v1", "Service", &mut svc).is_empty());
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"k": "v"}, "datas": {}});
        assert_eq!(check("", "v1", "ConfigMap", &mut cm), ["datas"]);
    }

    #[test]
    fn quantities_are_rewritten_canonically_wherever_the_schema_has_one() {
        let (schema, defs) = builtin_schema("apps", "v1", "Deployment").unwrap();
        let mut obj = deployment();
        let c = &mut obj["spec"]["template"]["spec"]["containers"][0];
        c["resources"] = json!({"requests": {"cpu": 0.5, "memory": 1073741824}, "limits": {"cpu": "1000m", "memory": "1024Mi"}});
        c["name"] = json!("1000");
        canonicalize_quantities(&mut obj, schema, defs);
        let c = &obj["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "500m", "memory": "1073741824"}, "limits": {"cpu": "1", "memory": "1Gi"}})
        );
        assert_eq!(c["name"], "1000");
        let (schema, defs) = builtin_schema("", "v1", "PersistentVolumeClaim").unwrap();
        let mut pvc = json!({"spec": {"resources": {"requests": {"storage": 10737418240u64}}}});
        canonicalize_quantities(&mut pvc, schema, defs);
        assert_eq!(
            pvc["spec"]["resources"]["requests"]["storage"],
            "10737418240"
        );
    }
}
