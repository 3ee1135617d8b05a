//! Service → Endpoints (`pkg/controller/endpoint`) and EndpointSlices
//! (`pkg/controller/endpointslice`), plus LoadBalancer status (no cloud provider by default,
//! so `EXTERNAL-IP` stays `<pending>`; an opt-in provider hands out a node address).
//!
//! Pods count when they match the selector, have an IP, are not terminal and (unless the
//! Service publishes not-ready addresses) are not being deleted. Named target ports are
//! resolved per pod against its container ports; pods where a name does not resolve are left
//! out of that port.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::{ClusterView, Effect, NameGen, Reconciled};

/// The EndpointSlice label naming its Service (`discovery.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The EndpointSlice label naming its manager (`discovery.LabelManagedBy`).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] for the EndpointSlice controller.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Which LoadBalancer implementation the cluster has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalancerMode {
    /// None: LoadBalancer Services keep an empty `status.loadBalancer` (`<pending>`).
    #[default]
    None,
    /// Like k3s' ServiceLB: the ingress IP is the first node's `InternalIP`.
    NodeAddress,
}

/// One port of one pod, resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: String,
    port: i64,
    protocol: String,
}

#[derive(Debug, Clone)]
struct Address {
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
    pod: Value,
}

/// Reconciles every Service's Endpoints, EndpointSlices and LoadBalancer status.
pub fn reconcile_all(
    view: &dyn ClusterView,
    _now: Timestamp,
    names: &mut NameGen,
    lb: LoadBalancerMode,
) -> Reconciled {
    let mut out = Reconciled::default();
    let mut services = view.list("v1", "Service", None);
    services.sort_by(|a, b| {
        (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
    });
    for svc in services {
        reconcile_one(view, &svc, names, lb, &mut out);
    }
    out
}

/// Reconciles one Service by namespace and name, the unit of the controller's work queue.
pub fn reconcile(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    names: &mut NameGen,
    lb: LoadBalancerMode,
) -> Reconciled {
    let mut out = Reconciled::default();
    if let Some(svc) = view.get_shared("v1", "Service", Some(namespace), name) {
        reconcile_one(view, &svc, names, lb, &mut out);
    }
    out
}

fn reconcile_one(
    view: &dyn ClusterView,
    svc: &Value,
    names: &mut NameGen,
    lb: LoadBalancerMode,
    out: &mut Reconciled,
) {
    load_balancer(view, svc, lb, out);
    let selector = meta::string_map(svc, &["spec", "selector"]);
    if selector.is_empty() || meta::is_deleting(svc) {
        return;
    }
    let ns = meta::namespace(svc).unwrap_or("default").to_owned();
    let publish_not_ready = meta::bool_at(svc, &["spec", "publishNotReadyAddresses"]);
    let mut pods: Vec<Value> = view
        .list("v1", "Pod", Some(&ns))
        .into_iter()
        .filter(|p| meta::map_selector_matches(&selector, &meta::labels(p)))
        .filter(|p| !str_at(p, &["status", "podIP"]).is_empty())
        .filter(|p| !matches!(meta::pod_phase(p), "Succeeded" | "Failed"))
        .filter(|p| publish_not_ready || !meta::is_deleting(p))
        .map(Arc::unwrap_or_clone)
        .collect();
    pods.sort_by(|a, b| {
        (str_at(a, &["status", "podIP"]), meta::name(a))
            .cmp(&(str_at(b, &["status", "podIP"]), meta::name(b)))
    });

    // Group addresses by the set of ports they serve.
    let mut groups: BTreeMap<Vec<Port>, Vec<Address>> = BTreeMap::new();
    for pod in pods {
        let ports = resolve_ports(svc, &pod);
        if ports.is_empty() && !meta::array_at(svc, &["spec", "ports"]).is_empty() {
            continue;
        }
        let ready = meta::is_pod_ready(&pod);
        let terminating = meta::is_deleting(&pod);
        groups.entry(ports).or_default().push(Address {
            ip: str_at(&pod, &["status", "podIP"]).to_owned(),
            ready: publish_not_ready || (ready && !terminating),
            serving: publish_not_ready || ready,
            terminating,
            pod,
        });
    }
    sync_endpoints(view, svc, &groups, out);
    sync_slices(view, svc, &groups, names, out);
}

/// The Service's ports as they apply to `pod`, named target ports resolved (`podutil.FindPort`).
fn resolve_ports(svc: &Value, pod: &Value) -> Vec<Port> {
    let mut ports = Vec::new();
    for sp in meta::array_at(svc, &["spec", "ports"]) {
        let protocol = Some(str_at(sp, &["protocol"]))
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        let target = meta::at(sp, &["targetPort"])
            .cloned()
            .unwrap_or(Value::Null);
        let port = match &target {
            Value::Number(n) => n.as_i64(),
            Value::String(name) => name.parse().ok().or_else(|| {
                meta::array_at(pod, &["spec", "containers"])
                    .iter()
                    .flat_map(|c| meta::array_at(c, &["ports"]))
                    .find(|p| {
                        str_at(p, &["name"]) == name
                            && Some(str_at(p, &["protocol"]))
                                .filter(|s| !s.is_empty())
                                .unwrap_or("TCP")
                                == protocol
                    })
                    .and_then(|p| meta::i64_at(p, &["containerPort"]))
            }),
            _ => meta::i64_at(sp, &["port"]),
        };
        if let Some(port) = port {
            ports.push(Port {
                name: str_at(sp, &["name"]).to_owned(),
                port,
                protocol: protocol.to_owned(),
            });
        }
    }
    ports.sort();
    ports
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": meta::namespace(pod).unwrap_or("default"), "name": meta::name(pod), "uid": meta::uid(pod).unwrap_or("")})
}

fn port_json(p: &Port) -> Value {
    let mut v = json!({"port": p.port, "protocol": p.protocol});
    if !p.name.is_empty() {
        v["name"] = json!(p.name);
    }
    v
}

fn sync_endpoints(
    view: &dyn ClusterView,
    svc: &Value,
    groups: &BTreeMap<Vec<Port>, Vec<Address>>,
    out: &mut Reconciled,
) {
    let ns = meta::namespace(svc).unwrap_or("default");
    let mut subsets = Vec::new();
    for (ports, addrs) in groups {
        let to_json = |a: &Address| {
            let mut v = json!({"ip": a.ip, "targetRef": target_ref(&a.pod)});
            let node = str_at(&a.pod, &["spec", "nodeName"]);
            if !node.is_empty() {
                v["nodeName"] = json!(node);
            }
            v
        };
        let mut subset = json!({"ports": ports.iter().map(port_json).collect::<Vec<_>>()});
        let ready: Vec<Value> = addrs.iter().filter(|a| a.ready).map(to_json).collect();
        let not_ready: Vec<Value> = addrs.iter().filter(|a| !a.ready).map(to_json).collect();
        if !ready.is_empty() {
            subset["addresses"] = Value::Array(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = Value::Array(not_ready);
        }
        subsets.push(subset);
    }
    let mut labels = meta::labels(svc);
    labels.insert(
        "endpointslice.kubernetes.io/skip-mirror".to_owned(),
        "true".to_owned(),
    );
    let mut desired = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": meta::name(svc), "namespace": ns, "labels": labels},
    });
    if !subsets.is_empty() {
        desired["subsets"] = Value::Array(subsets);
    }
    match view.get("v1", "Endpoints", Some(ns), meta::name(svc)) {
        None => out.push(Effect::Create(desired)),
        Some(current) => {
            if current.get("subsets") != desired.get("subsets")
                || meta::labels(&current) != meta::labels(&desired)
            {
                let mut next = current.clone();
                next["metadata"]["labels"] = desired["metadata"]["labels"].clone();
                match desired.get("subsets") {
                    Some(s) => next["subsets"] = s.clone(),
                    None => {
                        next.as_object_mut().map(|m| m.remove("subsets"));
                    }
                }
                out.push(Effect::Update(next));
            }
        }
    }
}

fn sync_slices(
    view: &dyn ClusterView,
    svc: &Value,
    groups: &BTreeMap<Vec<Port>, Vec<Address>>,
    names: &mut NameGen,
    out: &mut Reconciled,
) {
    let ns = meta::namespace(svc).unwrap_or("default");
    let owner = meta::uid(svc).unwrap_or_default();
    let mut existing: Vec<Value> = view
        .list_controlled(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some(ns),
            owner,
            false,
        )
        .into_iter()
        .filter(|s| {
            meta::is_controlled_by(s, svc)
                && meta::labels(s).get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .map(Arc::unwrap_or_clone)
        .collect();
    existing.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let mut labels = meta::labels(svc);
    labels.insert(SERVICE_NAME_LABEL.to_owned(), meta::name(svc).to_owned());
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());

    // One slice per port set; a Service with no endpoints keeps one empty placeholder slice.
    let mut wanted: Vec<(Value, Value)> = groups
        .iter()
        .map(|(ports, addrs)| {
            let endpoints: Vec<Value> = addrs
                .iter()
                .map(|a| {
                    let mut e = json!({"addresses": [a.ip],
                        "conditions": {"ready": a.ready, "serving": a.serving, "terminating": a.terminating},
                        "targetRef": target_ref(&a.pod)});
                    let node = str_at(&a.pod, &["spec", "nodeName"]);
                    if !node.is_empty() {
                        e["nodeName"] = json!(node);
                    }
                    e
                })
                .collect();
            (json!(endpoints), json!(ports.iter().map(port_json).collect::<Vec<_>>()))
        })
        .collect();
    if wanted.is_empty() {
        wanted.push((Value::Null, Value::Null));
    }
    for (i, (endpoints, ports)) in wanted.into_iter().enumerate() {
        let body = |mut slice: Value| {
            slice["addressType"] = json!("IPv4");
            slice["endpoints"] = endpoints.clone();
            slice["ports"] = ports.clone();
            slice["metadata"]["labels"] = json!(labels);
            slice
        };
        match existing.get(i) {
            Some(current) => {
                let next = body(current.clone());
                if next != *current {
                    out.push(Effect::Update(next));
                }
            }
            None => {
                let prefix = format!("{}-", meta::name(svc));
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {"name": names.generate_name(&prefix), "generateName": prefix, "namespace": ns,
                        "ownerReferences": [meta::controller_ref(svc)]},
                });
                out.push(Effect::Create(body(slice)));
            }
        }
    }
    let keep = groups.len().max(1);
    for extra in existing.iter().skip(keep) {
        out.push(Effect::delete_of(extra));
    }
}

fn load_balancer(view: &dyn ClusterView, svc: &Value, lb: LoadBalancerMode, out: &mut Reconciled) {
    if str_at(svc, &["spec", "type"]) != "LoadBalancer" || lb == LoadBalancerMode::None {
        return;
    }
    let mut nodes = view.list("v1", "Node", None);
    nodes.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let ip = nodes.iter().find_map(|n| {
        meta::array_at(n, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == "InternalIP")
            .map(|a| str_at(a, &["address"]).to_owned())
    });
    let Some(ip) = ip else { return };
    let ingress = json!([{"ip": ip, "ipMode": "VIP"}]);
    if meta::at(svc, &["status", "loadBalancer", "ingress"]) != Some(&ingress) {
        let mut next = svc.clone();
        meta::set_at(&mut next, &["status", "loadBalancer", "ingress"], ingress);
        out.push(Effect::UpdateStatus(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::testing::{World, pod_ready, t0};

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i64) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]}});
        p = pod_ready(p, t0(), "node-a");
        p["status"]["podIP"] = json!(ip);
        if !ready {
            p["status"]["conditions"][0]["status"] = json!("False");
        }
        p
    }

    fn service() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    }

    fn run(world: &mut World, lb: LoadBalancerMode) {
        let mut names = NameGen::new(9);
        world.run_controller(|w, now, n| reconcile_all(w, now, n, lb), t0(), &mut names);
    }

    #[test]
    fn endpoints_split_ready_and_not_ready_and_resolve_named_ports_per_pod() {
        let mut world = World::new();
        world.add(service());
        world.add(pod("a", "10.0.0.1", true, "http", 8080));
        world.add(pod("b", "10.0.0.2", false, "http", 8080));
        world.add(pod("c", "10.0.0.3", true, "http", 9090));
        world.add(pod("d", "10.0.0.4", true, "metrics", 9100));
        run(&mut world, LoadBalancerMode::None);
        let ep = world.obj("v1", "Endpoints", "default", "web").unwrap();
        let subsets = ep["subsets"].as_array().unwrap();
        assert_eq!(subsets.len(), 2);
        assert_eq!(subsets[0]["ports"][0]["port"], 8080);
        assert_eq!(subsets[0]["addresses"][0]["ip"], "10.0.0.1");
        assert_eq!(subsets[0]["notReadyAddresses"][0]["ip"], "10.0.0.2");
        assert_eq!(subsets[0]["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(subsets[1]["ports"][0]["port"], 9090);
        let slices = ClusterView::list(
            &world,
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("default"),
        );
        assert_eq!(slices.len(), 2);
        assert!(meta::name(&slices[0]).starts_with("web-"));
        assert_eq!(slices[0]["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        let all: Vec<(&str, bool)> = slices
            .iter()
            .flat_map(|s| s["endpoints"].as_array().unwrap().iter())
            .map(|e| {
                (
                    e["addresses"][0].as_str().unwrap(),
                    e["conditions"]["ready"].as_bool().unwrap(),
                )
            })
            .collect();
        assert!(all.contains(&("10.0.0.2", false)) && all.contains(&("10.0.0.1", true)));
    }

    #[test]
    fn load_balancer_stays_pending_without_a_provider() {
        let mut world = World::new();
        let mut svc = service();
        svc["spec"]["type"] = json!("LoadBalancer");
        world.add(svc);
        world.add(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}),
        );
        run(&mut world, LoadBalancerMode::None);
        assert!(
            world
                .obj("v1", "Service", "default", "web")
                .unwrap()
                .get("status")
                .is_none()
        );
        run(&mut world, LoadBalancerMode::NodeAddress);
        let svc = world.obj("v1", "Service", "default", "web").unwrap();
        assert_eq!(
            svc["status"]["loadBalancer"]["ingress"][0]["ip"],
            "172.18.0.2"
        );
    }
}
