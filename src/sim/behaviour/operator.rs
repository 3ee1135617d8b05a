//! Declarative operators: "for each object of this kind, own these objects, and report what
//! you observe on it".

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::program::{builtin_api_version, cluster_scoped, endpoint_ready};
use super::view::ClusterViewExt;
use crate::scenario::{EventType, Observe, OperatorRule, Report};

/// What templates read from: the watched object, and the observed objects bound with `as`.
#[derive(Debug, Clone, Default)]
pub struct TemplateContext {
    object: Value,
    bindings: BTreeMap<String, Value>,
}

impl TemplateContext {
    /// A context over the watched object alone.
    #[must_use]
    pub fn of(object: &Value) -> Self {
        Self {
            object: object.clone(),
            bindings: BTreeMap::new(),
        }
    }

    /// The value at a dotted path: `name` and `namespace` are the object's metadata, a first
    /// step naming a binding reads the bound object, anything else reads the watched object;
    /// numeric steps index lists.
    fn lookup(&self, path: &str) -> Option<&Value> {
        let mut steps = path.split('.');
        let first = steps.next()?;
        let (mut cur, rest): (&Value, Vec<&str>) = match first {
            "name" if path == "name" => return self.object.pointer("/metadata/name"),
            "namespace" if path == "namespace" => {
                return self.object.pointer("/metadata/namespace");
            }
            b if self.bindings.contains_key(b) => (self.bindings.get(b)?, steps.collect()),
            _ => (&self.object, path.split('.').collect()),
        };
        for step in rest {
            cur = match cur {
                Value::Object(m) => m.get(step)?,
                Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn text_of(&self, path: &str) -> String {
        match self.lookup(path.trim()) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    /// Fills in every `{{<path>}}` of one string.
    #[must_use]
    pub fn fill(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            out.push_str(&self.text_of(&rest[start + 2..start + 2 + len]));
            rest = &rest[start + 2 + len + 2..];
        }
        out.push_str(rest);
        out
    }

    /// Fills in every string (keys included) of `value`. A string that is exactly one
    /// placeholder takes the field's value with its type.
    #[must_use]
    pub fn apply(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => {
                let whole = s
                    .strip_prefix("{{")
                    .and_then(|r| r.strip_suffix("}}"))
                    .filter(|p| !p.contains("{{") && !p.contains("}}"));
                match whole.and_then(|p| self.lookup(p.trim())) {
                    Some(v) if !v.is_string() => v.clone(),
                    _ => Value::String(self.fill(s)),
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.apply(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.fill(k), self.apply(v)))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }
}

/// Replaces `{{name}}` and `{{namespace}}` in every string (keys included) of `value`.
#[must_use]
pub fn template(value: &Value, name: &str, namespace: &str) -> Value {
    TemplateContext::of(&json!({"metadata": {"name": name, "namespace": namespace}})).apply(value)
}

/// What an operator reports on one watched object.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The watched object as the operator saw it.
    pub object: Value,
    /// Conditions to set, each with `type`, `status`, `reason`, `message` and, when asked
    /// for, `observedGeneration` (the transition time is the writer's business).
    pub conditions: Vec<Value>,
    /// Other fields to merge into `status`.
    pub status: Option<Value>,
    /// The event to record when the conditions change: type, reason, message.
    pub event: Option<(EventType, String, String)>,
    /// Who records the event (`source.component`).
    pub source: String,
}

/// One thing an operator wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Make this object exist as given (owned by a watched object).
    Own(Value),
    /// Report on a watched object.
    Report(StatusReport),
}

/// The objects the operator wants to exist now. See [`reconcile`].
#[must_use]
pub fn desired_objects(rules: &[OperatorRule], view: &dyn ClusterViewExt) -> Vec<Value> {
    reconcile(rules, view, "")
        .into_iter()
        .filter_map(|w| match w {
            Work::Own(v) => Some(v),
            Work::Report(_) => None,
        })
        .collect()
}

/// What the operator wants now: for every served rule and every watched object, the rule's
/// `owns` templated from the watched object, placed in its namespace (unless the template names
/// one) and owned by it (`ownerReferences` with `controller: true`); and, when the rule has
/// `reports`, the first case whose observations all hold, with that case's own objects.
/// Rules whose resource is not served contribute nothing; `source` names the event recorder
/// when the rule gives none.
///
/// The order is stable: rules in declaration order, watched objects in the view's order,
/// owned objects in template order, each object's report after its owned objects.
#[must_use]
pub fn reconcile(rules: &[OperatorRule], view: &dyn ClusterViewExt, source: &str) -> Vec<Work> {
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
            if owner.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let mut cx = TemplateContext::of(&owner);
            let case = rule.reports.iter().find(|c| holds(c, rule, view, &mut cx));
            let extra = case.map_or(&[][..], |c| &c.owns[..]);
            for owned in rule.owns.iter().chain(extra) {
                if let Some(obj) = own(&cx, owned, &owner, &api_version, &r.kind) {
                    out.push(Work::Own(obj));
                }
            }
            if let Some(case) = case {
                out.push(Work::Report(report(&cx, case, &owner, rule, source)));
            }
        }
    }
    out
}

fn own(
    cx: &TemplateContext,
    template: &Value,
    owner: &Value,
    api_version: &str,
    kind: &str,
) -> Option<Value> {
    let mut obj = cx.apply(template);
    let map = obj.as_object_mut()?;
    let str_of = |p: &str| owner.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let namespace = str_of("/metadata/namespace");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        if !namespace.is_empty() && !meta.contains_key("namespace") {
            meta.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
        meta.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": api_version,
                "kind": kind,
                "name": str_of("/metadata/name"),
                "uid": str_of("/metadata/uid"),
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
    }
    Some(obj)
}

fn report(
    cx: &TemplateContext,
    case: &Report,
    owner: &Value,
    rule: &OperatorRule,
    source: &str,
) -> StatusReport {
    let generation = owner
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let conditions = case
        .conditions
        .iter()
        .map(|c| {
            let mut cond = json!({
                "type": cx.fill(&c.kind),
                "status": c.status.as_str(),
                "message": cx.fill(&c.message),
            });
            // Condition types without a reason field (Keycloak's `StatusCondition`) write none.
            if !c.reason.is_empty() {
                cond["reason"] = json!(cx.fill(&c.reason));
            }
            if c.observed_generation {
                cond["observedGeneration"] = generation.clone();
            }
            cond
        })
        .collect();
    StatusReport {
        object: owner.clone(),
        conditions,
        status: case.status.as_ref().map(|s| cx.apply(s)),
        event: case
            .event
            .as_ref()
            .map(|e| (e.kind, cx.fill(&e.reason), cx.fill(&e.message))),
        source: rule
            .event_source
            .clone()
            .unwrap_or_else(|| source.to_owned()),
    }
}

/// Whether every observation of the case holds; binds the observed objects named with `as`.
fn holds(
    case: &Report,
    rule: &OperatorRule,
    view: &dyn ClusterViewExt,
    cx: &mut TemplateContext,
) -> bool {
    case.when.iter().all(|o| observe(o, rule, view, cx))
}

fn observe(
    o: &Observe,
    rule: &OperatorRule,
    view: &dyn ClusterViewExt,
    cx: &mut TemplateContext,
) -> bool {
    let own_ns = cx.fill("{{namespace}}");
    let ns_or_own = |ns: &Option<String>, cx: &TemplateContext| {
        ns.as_deref().map_or_else(|| own_ns.clone(), |n| cx.fill(n))
    };
    match o {
        Observe::Object(obj) | Observe::Absent(obj) => {
            let kind = cx.fill(&obj.kind);
            let api_version = obj
                .api_version
                .as_deref()
                .map_or_else(|| builtin_api_version(&kind).to_owned(), |a| cx.fill(a));
            let name = cx.fill(&obj.name);
            let found = match &obj.namespace {
                Some(ns) => view.get(&api_version, &kind, Some(&cx.fill(ns)), &name),
                None if cluster_scoped(&kind) => view.get(&api_version, &kind, None, &name),
                None => view
                    .get(&api_version, &kind, Some(&own_ns), &name)
                    .or_else(|| view.get(&api_version, &kind, None, &name)),
            };
            if matches!(o, Observe::Absent(_)) {
                return found.is_none();
            }
            let Some(found) = found else { return false };
            let ok = obj
                .matches
                .as_ref()
                .is_none_or(|m| crate::matcher::match_tree(&cx.apply(m), &found).is_empty());
            if ok && let Some(b) = &obj.bind {
                cx.bindings.insert(b.clone(), found);
            }
            ok
        }
        Observe::Matches(m) => crate::matcher::match_tree(&cx.apply(m), &cx.object).is_empty(),
        Observe::Endpoint(e) => {
            let ns = ns_or_own(&e.namespace, cx);
            let service = cx.fill(&e.service);
            let Some(svc) = view.get("v1", "Service", Some(&ns), &service) else {
                return false;
            };
            let wanted = e.port.as_deref().map(|p| cx.fill(p));
            let ports = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let port_name = match wanted {
                None => String::new(),
                Some(w) => {
                    let Some(p) = ports.iter().find(|p| {
                        p.get("name").and_then(Value::as_str) == Some(w.as_str())
                            || p.get("port").and_then(Value::as_u64).map(|n| n.to_string())
                                == Some(w.clone())
                    }) else {
                        return false;
                    };
                    p.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                }
            };
            endpoint_ready(view, &ns, &service, &port_name)
        }
        Observe::LoadBalancer(s) => {
            let ns = ns_or_own(&s.namespace, cx);
            let Some(svc) = view.get("v1", "Service", Some(&ns), &cx.fill(&s.service)) else {
                return false;
            };
            let assigned = svc
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .is_some_and(|i| !i.is_empty());
            if assigned && let Some(b) = &s.bind {
                cx.bindings.insert(b.clone(), svc);
            }
            assigned
        }
        Observe::OwnedReady(filter) => rule.owns.iter().all(|t| {
            let desired = cx.apply(t);
            let kind = desired["kind"].as_str().unwrap_or_default();
            if filter.kind.as_deref().is_some_and(|k| k != kind)
                || !matches!(kind, "Deployment" | "StatefulSet" | "ReplicaSet")
            {
                return true;
            }
            let api_version = desired["apiVersion"].as_str().unwrap_or("apps/v1");
            let name = desired["metadata"]["name"].as_str().unwrap_or_default();
            let ns = desired["metadata"]["namespace"]
                .as_str()
                .map_or_else(|| own_ns.clone(), str::to_owned);
            view.get(api_version, kind, Some(&ns), name)
                .is_some_and(|o| replicas_ready(&o))
        }),
    }
}

/// All wanted replicas ready, and the status is for the current spec.
fn replicas_ready(obj: &Value) -> bool {
    let n = |p: &str| obj.pointer(p).and_then(Value::as_i64);
    let wanted = n("/spec/replicas").unwrap_or(1);
    let current = n("/status/observedGeneration") >= n("/metadata/generation");
    current && n("/status/readyReplicas").unwrap_or(0) >= wanted
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
            reports: vec![],
            event_source: None,
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
    fn templates_read_any_field_and_keep_types_of_whole_placeholders() {
        let obj = json!({"metadata": {"name": "es", "namespace": "app", "generation": 3},
                         "spec": {"secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
                                  "ports": [{"name": "grpc"}, {"name": "metrics"}]}});
        let cx = TemplateContext::of(&obj);
        let t = json!({
            "msg": "could not get {{ spec.secretStoreRef.kind }} \"{{spec.secretStoreRef.name}}\"",
            "gen": "{{metadata.generation}}",
            "second": "{{spec.ports.1.name}}",
            "missing": "[{{spec.nothing}}]",
            "open": "{{name"
        });
        assert_eq!(
            cx.apply(&t),
            json!({"msg": "could not get ClusterSecretStore \"aws\"", "gen": 3,
                   "second": "metrics", "missing": "[]", "open": "{{name"})
        );
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

    fn es_rule() -> OperatorRule {
        crate::yaml::from_str(
            r#"
forEach: {group: external-secrets.io, version: v1beta1, resource: externalsecrets, kind: ExternalSecret}
owns: []
eventSource: external-secrets
reports:
  - when:
      - absent: {apiVersion: external-secrets.io/v1beta1, kind: ClusterSecretStore, name: "{{spec.secretStoreRef.name}}"}
    conditions:
      - {type: Ready, status: "False", reason: SecretSyncedError, message: could not get store reference}
    event: {type: Warning, reason: InvalidStoreRef, message: "could not get ClusterSecretStore \"{{spec.secretStoreRef.name}}\""}
  - when:
      - object:
          apiVersion: external-secrets.io/v1beta1
          kind: ClusterSecretStore
          name: "{{spec.secretStoreRef.name}}"
          matches: {status: {conditions: [{type: Ready, status: "True"}]}}
          as: store
    conditions:
      - {type: Ready, status: "True", reason: SecretSynced, message: "Secret was synced", observedGeneration: true}
    status: {store: "{{store.metadata.name}}"}
    owns:
      - {apiVersion: v1, kind: Secret, metadata: {name: "{{spec.target.name}}"}}
  - conditions:
      - {type: Ready, status: "False", reason: SecretSyncedError, message: could not use store reference}
"#,
        )
        .unwrap()
    }

    fn es() -> Value {
        json!({"apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": "app", "uid": "u-2", "generation": 2},
               "spec": {"secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
                        "target": {"name": "db-creds"}}})
    }

    fn store(ready: &str) -> Value {
        json!({"apiVersion": "external-secrets.io/v1beta1", "kind": "ClusterSecretStore",
               "metadata": {"name": "aws"},
               "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    fn reports_of(objects: Vec<Value>) -> Vec<Work> {
        let view =
            StaticView::new(objects).serving("external-secrets.io", "v1beta1", "externalsecrets");
        reconcile(&[es_rule()], &view, "container")
    }

    #[test]
    fn the_first_case_whose_observations_hold_is_reported() {
        let missing = reports_of(vec![es()]);
        let [Work::Report(r)] = &missing[..] else {
            panic!("{missing:?}")
        };
        assert_eq!(r.conditions[0]["reason"], "SecretSyncedError");
        assert_eq!(r.conditions[0]["message"], "could not get store reference");
        assert_eq!(r.source, "external-secrets");
        assert_eq!(
            r.event,
            Some((
                EventType::Warning,
                "InvalidStoreRef".to_owned(),
                "could not get ClusterSecretStore \"aws\"".to_owned()
            ))
        );

        let not_ready = reports_of(vec![es(), store("False")]);
        let [Work::Report(r)] = &not_ready[..] else {
            panic!("{not_ready:?}")
        };
        assert_eq!(r.conditions[0]["message"], "could not use store reference");
        assert_eq!(r.event, None);

        let ready = reports_of(vec![es(), store("True")]);
        let [Work::Own(secret), Work::Report(r)] = &ready[..] else {
            panic!("{ready:?}")
        };
        assert_eq!(secret["metadata"]["name"], "db-creds");
        assert_eq!(secret["metadata"]["namespace"], "app");
        assert_eq!(r.conditions[0]["observedGeneration"], 2);
        assert_eq!(r.status, Some(json!({"store": "aws"})));
    }

    #[test]
    fn a_condition_without_a_reason_writes_none() {
        let rule: OperatorRule = crate::yaml::from_str(
            r#"
forEach: {group: k8s.keycloak.org, version: v2alpha1, resource: keycloakrealmimports, kind: KeycloakRealmImport}
owns: []
reports:
  - conditions: [{type: HasErrors, status: "True", message: Deployment not yet ready}]
"#,
        )
        .unwrap();
        let import = json!({"apiVersion": "k8s.keycloak.org/v2alpha1", "kind": "KeycloakRealmImport",
                            "metadata": {"name": "r", "namespace": "n"}});
        let view = StaticView::new(vec![import]).serving(
            "k8s.keycloak.org",
            "v2alpha1",
            "keycloakrealmimports",
        );
        let report = reconcile(std::slice::from_ref(&rule), &view, "c")
            .into_iter()
            .find_map(|w| match w {
                Work::Report(r) => Some(r),
                Work::Own(_) => None,
            })
            .unwrap();
        assert_eq!(
            report.conditions,
            vec![
                json!({"type": "HasErrors", "status": "True", "message": "Deployment not yet ready"})
            ]
        );
    }

    #[test]
    fn endpoints_load_balancers_and_owned_readiness_are_observed() {
        let rule: OperatorRule = crate::yaml::from_str(
            r#"
forEach: {group: g, version: v1, resource: things, kind: Thing}
owns:
  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: "{{name}}-web"}, spec: {replicas: 2}}
  - {apiVersion: v1, kind: Service, metadata: {name: "{{name}}-lb"}}
reports:
  - when:
      - ownedReady: {}
      - endpoint: {service: "{{name}}-lb", port: metrics}
      - loadBalancer: {service: "{{name}}-lb", as: svc}
    conditions: [{type: Ready, status: "True", reason: Ok, message: "{{svc.status.loadBalancer.ingress.0.ip}}"}]
  - conditions: [{type: Ready, status: "False", reason: NotOk}]
"#,
        )
        .unwrap();
        let thing = json!({"apiVersion": "g/v1", "kind": "Thing", "metadata": {"name": "t", "namespace": "n"}});
        let deployment = |ready: i64| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "t-web", "namespace": "n", "generation": 1},
                   "spec": {"replicas": 2},
                   "status": {"observedGeneration": 1, "readyReplicas": ready}})
        };
        let svc = |ingress: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "t-lb", "namespace": "n"},
                   "spec": {"type": "LoadBalancer", "ports": [{"name": "metrics", "port": 9090}]},
                   "status": {"loadBalancer": {"ingress": ingress}}})
        };
        let slice = |port: &str| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "t-lb-abc", "namespace": "n", "labels": {"kubernetes.io/service-name": "t-lb"}},
                   "ports": [{"name": port, "port": 9090}],
                   "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}]})
        };
        let reason = |objects: Vec<Value>| {
            let view = StaticView::new(objects).serving("g", "v1", "things");
            reconcile(std::slice::from_ref(&rule), &view, "c")
                .into_iter()
                .find_map(|w| match w {
                    Work::Report(r) => Some((
                        r.conditions[0]["reason"].clone(),
                        r.conditions[0]["message"].clone(),
                    )),
                    Work::Own(_) => None,
                })
                .unwrap()
        };
        let ip = json!([{"ip": "172.18.0.2"}]);
        assert_eq!(
            reason(vec![
                thing.clone(),
                deployment(2),
                svc(ip.clone()),
                slice("metrics")
            ]),
            (json!("Ok"), json!("172.18.0.2"))
        );
        for objects in [
            vec![
                thing.clone(),
                deployment(1),
                svc(ip.clone()),
                slice("metrics"),
            ],
            vec![thing.clone(), deployment(2), svc(ip.clone()), slice("http")],
            vec![
                thing.clone(),
                deployment(2),
                svc(json!([])),
                slice("metrics"),
            ],
        ] {
            assert_eq!(reason(objects).0, json!("NotOk"));
        }
    }
}
