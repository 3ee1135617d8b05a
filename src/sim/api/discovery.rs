//! API discovery: legacy (`/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`) and
//! aggregated (`as=APIGroupDiscoveryList`, apidiscovery.k8s.io/v2).

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::sim::resources::{ResourceDef, subresource_verbs};

/// Content type of an aggregated discovery response.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// Content type of the v2beta1 aggregated discovery response.
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Kube-aware version order: GA before beta before alpha, higher numbers first
/// (k8s.io/apimachinery/pkg/version.CompareKubeAwareVersionStrings).
fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> (u8, u64, u64) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0);
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major = digits.parse().unwrap_or(0);
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            (3, major, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (2, major, n.parse().unwrap_or(0))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, major, n.parse().unwrap_or(0))
        } else {
            (0, major, 0)
        }
    }
    parse(b).cmp(&parse(a)).then_with(|| a.cmp(b))
}

/// Groups in serving order, each with its versions in preference order.
#[must_use]
pub fn groups(resources: &[ResourceDef]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut builtin: Vec<&ResourceDef> = resources
        .iter()
        .filter(|r| !r.custom && !r.group.is_empty())
        .collect();
    let mut custom: Vec<&ResourceDef> = resources.iter().filter(|r| r.custom).collect();
    custom.sort_by(|a, b| a.group.cmp(&b.group));
    builtin.extend(custom);
    for r in builtin {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            None => out.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by(|a, b| version_priority(a, b));
    }
    out
}

fn gv(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api`.
#[must_use]
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": gv(group, v), "version": v}))
        .collect();
    json!({"name": group, "versions": list, "preferredVersion": list.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
#[must_use]
pub fn api_group_list(resources: &[ResourceDef]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, when the group is served.
#[must_use]
pub fn api_group(resources: &[ResourceDef], group: &str) -> Option<Value> {
    let (g, versions) = groups(resources).into_iter().find(|(g, _)| g == group)?;
    let mut out = group_json(&g, &versions);
    out["kind"] = json!("APIGroup");
    out["apiVersion"] = json!("v1");
    Some(out)
}

/// `/api/v1` or `/apis/<group>/<version>`, when served.
#[must_use]
pub fn resource_list(resources: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let in_gv: Vec<&ResourceDef> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if in_gv.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in in_gv {
        let mut entry = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        if r.status {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": subresource_verbs()}));
        }
        if r.scale.is_some() {
            list.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": subresource_verbs()}));
        }
        if r.log {
            list.push(json!({"name": format!("{}/log", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": "Pod", "verbs": ["get"]}));
        }
    }
    let mut out =
        json!({"kind": "APIResourceList", "groupVersion": gv(group, version), "resources": list});
    if !group.is_empty() {
        out["apiVersion"] = json!("v1");
    }
    Some(out)
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut entry = json!({"resource": r.plural, "responseKind": kind,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular, "verbs": r.verbs});
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    let mut subs = Vec::new();
    if r.status {
        subs.push(json!({"subresource": "status", "responseKind": {"group": r.group, "version": r.version, "kind": r.kind}, "verbs": subresource_verbs()}));
    }
    if r.scale.is_some() {
        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": subresource_verbs()}));
    }
    if r.log {
        subs.push(json!({"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]}));
    }
    if !subs.is_empty() {
        entry["subresources"] = Value::Array(subs);
    }
    entry
}

/// The aggregated discovery document of `/api` (`legacy = true`) or `/apis`.
#[must_use]
pub fn aggregated(resources: &[ResourceDef], legacy: bool, api_version: &str) -> Value {
    let groups: Vec<(String, Vec<String>)> = if legacy {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(resources)
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let res: Vec<Value> = resources
                        .iter()
                        .filter(|r| r.group == *g && r.version == *v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": res, "freshness": "Current"})
                })
                .collect();
            let metadata = if g.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": g, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;

    #[test]
    fn legacy_and_aggregated() {
        let all = builtins();
        let core = resource_list(&all, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"pods/log")
        );
        assert!(core.get("apiVersion").is_none());
        let apps = resource_list(&all, "apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["kind"], "Scale");
        let groups = api_group_list(&all);
        let autoscaling = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        let agg = aggregated(&all, false, "apidiscovery.k8s.io/v2");
        assert!(
            agg["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["metadata"]["name"] == "apps")
        );
        assert!(resource_list(&all, "nope", "v1").is_none());
        assert_eq!(version_priority("v1", "v1beta1"), Ordering::Less);
        assert_eq!(version_priority("v1alpha1", "v2"), Ordering::Greater);
    }
}
