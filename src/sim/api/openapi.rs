//! Just enough OpenAPI for `kubectl apply` with default validation: an `/openapi/v3` index and,
//! per group-version, one PATCH operation per kind carrying `x-kubernetes-group-version-kind`
//! and the inline `fieldValidation` parameter (kubectl then sends `fieldValidation=Strict` and
//! leaves validation to the server).

use serde_json::{Map, Value, json};

use super::discovery::groups;
use crate::sim::resources::ResourceDef;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable FNV-1a hash of the kinds of a group-version, so that kubectl's cache notices changes.
fn hash(resources: &[&ResourceDef]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in resources {
        for b in r.kind.bytes().chain(r.plural.bytes()).chain([b'/']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

/// `/openapi/v3`.
#[must_use]
pub fn index(resources: &[ResourceDef]) -> Value {
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
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&members))}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<api/v1 | apis/g/v>`, when served.
#[must_use]
pub fn document(resources: &[ResourceDef], path: &str, minor: &str) -> Option<Value> {
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
    let mut paths = Map::new();
    for r in members {
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
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{minor}.0")},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;

    #[test]
    fn index_and_documents() {
        let all = builtins();
        let idx = index(&all);
        assert!(
            idx["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(idx["paths"].get("apis/apps/v1").is_some());
        let doc = document(&all, "apis/apps/v1", "32").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(op["parameters"][0]["name"], "fieldValidation");
        assert!(document(&all, "apis/nope/v1", "32").is_none());
    }
}
