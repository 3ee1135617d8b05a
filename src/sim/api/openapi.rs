//! OpenAPI v3 as the API server publishes it: an `/openapi/v3` index and one document per
//! group-version. Each document carries, per kind, a PATCH operation with
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter (kubectl then sends
//! `fieldValidation=Strict` and leaves validation to the server) and the kinds' schemas in
//! `components.schemas`, which `kubectl explain` and kubectl's client-side apply read.
//!
//! Built-in kinds get Kubernetes 1.32's published schemas (kubernetes/kubernetes
//! api/openapi-spec/v3 of release-1.32), vendored by `ci/openapi/vendor.py` into
//! `openapi/k8s-1.32.json.gz`. Custom resources get their CRD's `openAPIV3Schema` as
//! k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder/builder.go builds it.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::discovery::groups;
use crate::sim::resources::ResourceDef;
use crate::sim::store::pruning::crd_schema;

/// Kubernetes 1.32's schemas of the served group-versions: `schemas` by name and, per
/// group-version path, the names its document holds.
static VENDORED: &[u8] = include_bytes!("openapi/k8s-1.32.json.gz");

/// Changes whenever the vendored schemas do, so that kubectl's disk cache (keyed by the
/// documents' URLs) notices.
const SCHEMAS_RELEASE: &str = "k8s-1.32";

/// The schema of ObjectMeta, which every custom resource's `metadata` refers to.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn vendored() -> &'static Value {
    static DECODED: OnceLock<Value> = OnceLock::new();
    DECODED.get_or_init(|| {
        let mut text = Vec::new();
        match flate2::read::GzDecoder::new(VENDORED).read_to_end(&mut text) {
            Ok(_) => serde_json::from_slice(&text).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    })
}

/// A built-in kind's published schema (the one whose `x-kubernetes-group-version-kind` names
/// it) and every named schema, which its `$ref`s point into.
#[must_use]
pub fn builtin_schema(
    group: &str,
    version: &str,
    kind: &str,
) -> Option<(&'static Value, &'static Map<String, Value>)> {
    static BY_KIND: OnceLock<HashMap<(String, String, String), String>> = OnceLock::new();
    let all = vendored()["schemas"].as_object()?;
    let index = BY_KIND.get_or_init(|| {
        let mut index = HashMap::new();
        for (name, s) in all {
            for g in s["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let part = |f: &str| g[f].as_str().unwrap_or_default().to_string();
                index
                    .entry((part("group"), part("version"), part("kind")))
                    .or_insert_with(|| name.clone());
            }
        }
        index
    });
    let name = index.get(&(group.to_string(), version.to_string(), kind.to_string()))?;
    let schema = all.get(name)?;
    Some((schema, all))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable FNV-1a hash, so that kubectl's cache notices changes.
fn hash(parts: impl IntoIterator<Item = String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([b'/']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

/// What a group-version's document depends on: its kinds and, for custom resources, their
/// CRDs' schemas.
fn fingerprint(members: &[&ResourceDef], crds: &[Value]) -> String {
    let mut parts = vec![SCHEMAS_RELEASE.to_string()];
    for r in members {
        parts.push(format!("{}/{}", r.kind, r.plural));
        if r.custom
            && let Some(schema) = custom_schema(r, crds)
        {
            parts.push(schema.to_string());
        }
    }
    hash(parts)
}

fn custom_schema<'a>(r: &ResourceDef, crds: &'a [Value]) -> Option<&'a Value> {
    let name = format!("{}.{}", r.plural, r.group);
    let crd = crds
        .iter()
        .find(|c| c["metadata"]["name"] == name.as_str())?;
    crd_schema(crd, &r.version)
}

/// `/openapi/v3`. `crds` are the stored CustomResourceDefinitions.
#[must_use]
pub fn index(resources: &[ResourceDef], crds: &[Value]) -> Value {
    let mut paths = Map::new();
    let mut gvs = vec![(String::new(), "v1".to_string())];
    for (g, versions) in groups(resources) {
        for v in versions {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let members: Vec<&ResourceDef> = resources
            .iter()
            .filter(|r| r.group == g && r.version == v)
            .collect();
        let path = gv_path(&g, &v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", fingerprint(&members, crds))}),
        );
    }
    json!({"paths": paths})
}

/// Adds `name` and every schema it refers to, from `all`, to `out`.
fn add_closure(all: &Map<String, Value>, name: &str, out: &mut Map<String, Value>) {
    let mut pending = vec![name.to_string()];
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(schema) = all.get(&name) else {
            continue;
        };
        collect_refs(schema, &mut pending);
        out.insert(name, schema.clone());
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_string());
            }
            m.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// The name a custom resource's schema is published under: `group/version/kind` made REST
/// friendly (k8s.io/kube-openapi/pkg/util/util.go `ToRESTFriendlyName`: the group's DNS
/// labels reversed, `/` as `.`).
fn custom_schema_name(r: &ResourceDef) -> String {
    let group: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), r.version, r.kind)
}

/// A custom resource's published schema: its `openAPIV3Schema` with TypeMeta's `apiVersion`
/// and `kind`, `metadata` referring to ObjectMeta and the group-version-kind extension
/// (builder.go `buildKubeNative` and `addTypeMetaProperties`).
fn custom_kind_schema(r: &ResourceDef, schema: &Value, all: &Map<String, Value>) -> Value {
    let mut s = schema.clone();
    if !s.is_object() {
        s = json!({"type": "object"});
    }
    // TypeMeta's descriptions, as every built-in kind's schema carries them.
    let type_meta = &all
        .get("io.k8s.api.core.v1.ConfigMap")
        .map_or(&Value::Null, |c| &c["properties"]);
    let props = crate::sim::store::defaults::child(&mut s, "properties");
    if let Value::Object(props) = props {
        for field in ["apiVersion", "kind"] {
            if type_meta[field].is_object() {
                props.insert(field.to_string(), type_meta[field].clone());
            }
        }
        // builder.go: swaggerPartialObjectMetadataDescriptions["metadata"].
        props.insert(
            "metadata".to_string(),
            json!({
                "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}],
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
            }),
        );
    }
    s["x-kubernetes-group-version-kind"] =
        json!([{"group": r.group, "kind": r.kind, "version": r.version}]);
    s
}

/// `/openapi/v3/<api/v1 | apis/g/v>`, when served. `crds` are the stored
/// CustomResourceDefinitions.
#[must_use]
pub fn document(
    resources: &[ResourceDef],
    path: &str,
    minor: &str,
    crds: &[Value],
) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_string()),
        ["apis", g, v] => ((*g).to_string(), (*v).to_string()),
        _ => return None,
    };
    let members: Vec<&ResourceDef> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if members.is_empty() {
        return None;
    }
    let empty = Map::new();
    let all = vendored()["schemas"].as_object().unwrap_or(&empty);
    let mut schemas = Map::new();
    for name in vendored()["groupVersions"][path]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        add_closure(all, name, &mut schemas);
    }
    let mut paths = Map::new();
    for r in &members {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let url = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        paths.insert(
            url,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query"}]
            }}),
        );
        if r.custom
            && let Some(schema) = custom_schema(r, crds)
        {
            schemas.insert(custom_schema_name(r), custom_kind_schema(r, schema, all));
            add_closure(all, OBJECT_META, &mut schemas);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{minor}.0")},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{builtins, from_crd};

    #[test]
    fn index_and_documents() {
        let all = builtins();
        let idx = index(&all, &[]);
        assert!(
            idx["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(idx["paths"].get("apis/apps/v1").is_some());
        let doc = document(&all, "apis/apps/v1", "32", &[]).unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(op["parameters"][0]["name"], "fieldValidation");
        assert!(document(&all, "apis/nope/v1", "32", &[]).is_none());
    }

    #[test]
    fn built_in_documents_carry_the_published_schemas_and_what_they_refer_to() {
        let all = builtins();
        let doc = document(&all, "apis/apps/v1", "32", &[]).unwrap();
        let schemas = &doc["components"]["schemas"];
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]["description"],
            "Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1."
        );
        // Every reference resolves inside the document.
        let mut refs = Vec::new();
        collect_refs(schemas, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            assert!(schemas.get(&r).is_some(), "{r} is referred to but missing");
        }
        // Each served group-version has its kinds' schemas.
        for r in &all {
            let doc = document(&all, &gv_path(&r.group, &r.version), "32", &[]).unwrap();
            let found = doc["components"]["schemas"]
                .as_object()
                .unwrap()
                .values()
                .any(|s| {
                    s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|g| g.iter().any(|g| g["kind"] == r.kind.as_str()))
                });
            assert!(found, "{}/{} {} has no schema", r.group, r.version, r.kind);
        }
    }

    #[test]
    fn custom_resources_are_published_from_their_crd() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "envoypatchpolicies.gateway.envoyproxy.io"},
            "spec": {"group": "gateway.envoyproxy.io", "scope": "Namespaced",
                "names": {"kind": "EnvoyPatchPolicy", "plural": "envoypatchpolicies", "singular": "envoypatchpolicy", "listKind": "EnvoyPatchPolicyList"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "description": "Spec defines the desired state of EnvoyPatchPolicy.",
                            "properties": {"priority": {"type": "integer", "format": "int32"}}}}}}}]}
        });
        let mut all = builtins();
        all.extend(from_crd(&crd));
        let crds = [crd];
        let doc = document(&all, "apis/gateway.envoyproxy.io/v1alpha1", "32", &crds).unwrap();
        let schemas = &doc["components"]["schemas"];
        let s = &schemas["io.envoyproxy.gateway.v1alpha1.EnvoyPatchPolicy"];
        assert_eq!(
            s["x-kubernetes-group-version-kind"][0]["kind"],
            "EnvoyPatchPolicy"
        );
        assert_eq!(
            s["properties"]["spec"]["description"],
            "Spec defines the desired state of EnvoyPatchPolicy."
        );
        assert!(s["properties"]["apiVersion"]["description"].is_string());
        assert!(schemas.get(OBJECT_META).is_some());
        // A changed schema changes the document's hash.
        let before = index(&all, &crds);
        let mut changed = crds[0].clone();
        changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["description"] =
            json!("x");
        let after = index(&all, &[changed]);
        let url = |i: &Value| {
            i["paths"]["apis/gateway.envoyproxy.io/v1alpha1"]["serverRelativeURL"].clone()
        };
        assert_ne!(url(&before), url(&after));
        assert_eq!(
            before["paths"]["apis/apps/v1"],
            after["paths"]["apis/apps/v1"]
        );
    }
}
