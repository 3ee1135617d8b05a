//! The read-only window on the cluster that the node agent, the scheduler helpers and the
//! stand-in programs decide from.

use std::sync::Arc;

use serde_json::Value;

use super::connect::{Listener, Served};
pub use crate::sim::controllers::ClusterView;

/// What the node agent, the scheduler helpers and the stand-in programs need to know beyond
/// the objects themselves ([`ClusterView`]): which APIs are served and which volumes are
/// attached where.
///
/// Everything the decision logic needs to know about the cluster goes through these two
/// traits, so the logic stays pure and testable with an in-memory map.
pub trait ClusterViewExt: ClusterView {
    /// Whether the API server serves `group/version/resource` (built in, or a CRD that is Established).
    fn resource_served(&self, group: &str, version: &str, resource: &str) -> bool;

    /// The plural resource name of a kind (`Prometheus` → `prometheuses`), when it is served.
    ///
    /// Used only to word API errors the way the API server does (`<resource>.<group> "<name>" not found`).
    fn resource_name(&self, api_version: &str, kind: &str) -> Option<String> {
        let _ = (api_version, kind);
        None
    }

    /// Whether the persistent volume `pv` is attached to `node` (attachable storage only;
    /// node-local volumes are always usable on their node).
    fn volume_attached(&self, pv: &str, node: &str) -> bool {
        let _ = (pv, node);
        true
    }

    /// The infrastructure faults of the cluster (none by default).
    fn faults(&self) -> &crate::sim::faults::Faults {
        crate::sim::faults::Faults::none()
    }

    /// What the program running in pod `namespace/pod` serves on container port `port`, with
    /// the credentials it read at start; `None` when it declares nothing there.
    fn served_on(&self, namespace: &str, pod: &str, port: u16) -> Option<Served> {
        let _ = (namespace, pod, port);
        None
    }
}

/// A [`ClusterView`] and [`ClusterViewExt`] over a fixed list of objects, for tests and for callers that already hold
/// the objects they want to expose.
#[derive(Debug, Clone, Default)]
pub struct StaticView {
    /// The objects, each with `apiVersion`, `kind` and `metadata`.
    pub objects: Vec<Value>,
    /// Served resources as `(group, version, resource)`; built-in core resources are always served.
    pub served: Vec<(String, String, String)>,
    /// Attached volumes as `(pv, node)`; when `None`, every volume counts as attached.
    pub attached: Option<Vec<(String, String)>>,
    /// What running programs serve, for [`ClusterViewExt::served_on`].
    pub listeners: Vec<Listener>,
    /// The infrastructure faults the view reports (none by default).
    pub faults: crate::sim::faults::Faults,
}

impl StaticView {
    /// A view over these objects, serving only the built-in resources.
    #[must_use]
    pub fn new(objects: Vec<Value>) -> Self {
        Self {
            objects,
            served: Vec::new(),
            attached: None,
            listeners: Vec::new(),
            faults: crate::sim::faults::Faults::default(),
        }
    }

    /// Report these faults.
    #[must_use]
    pub fn with_faults(mut self, faults: crate::sim::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Also serve `group/version/resource`.
    #[must_use]
    pub fn serving(mut self, group: &str, version: &str, resource: &str) -> Self {
        self.served
            .push((group.to_owned(), version.to_owned(), resource.to_owned()));
        self
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

impl ClusterView for StaticView {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.objects
            .iter()
            .find(|o| {
                str_at(o, &["apiVersion"]) == Some(api_version)
                    && str_at(o, &["kind"]) == Some(kind)
                    && str_at(o, &["metadata", "name"]) == Some(name)
                    && str_at(o, &["metadata", "namespace"]) == namespace
            })
            .cloned()
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.objects
            .iter()
            .filter(|o| {
                str_at(o, &["apiVersion"]) == Some(api_version)
                    && str_at(o, &["kind"]) == Some(kind)
                    && (namespace.is_none() || str_at(o, &["metadata", "namespace"]) == namespace)
            })
            .map(|o| Arc::new(o.clone()))
            .collect()
    }
}

impl ClusterViewExt for StaticView {
    fn resource_served(&self, group: &str, version: &str, resource: &str) -> bool {
        (group.is_empty() && version == "v1")
            || matches!(
                group,
                "apps" | "batch" | "discovery.k8s.io" | "storage.k8s.io"
            )
            || self
                .served
                .iter()
                .any(|(g, v, r)| g == group && v == version && r == resource)
    }

    fn served_on(&self, namespace: &str, pod: &str, port: u16) -> Option<Served> {
        self.listeners
            .iter()
            .find(|l| l.namespace == namespace && l.pod == pod && l.port == port)
            .map(|l| l.served.clone())
    }

    fn volume_attached(&self, pv: &str, node: &str) -> bool {
        self.attached
            .as_ref()
            .is_none_or(|a| a.iter().any(|(p, n)| p == pv && n == node))
    }

    fn faults(&self) -> &crate::sim::faults::Faults {
        &self.faults
    }
}
