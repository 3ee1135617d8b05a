//! The controllers' and node agents' read-only window on the object store.

use serde_json::Value;

use crate::sim::controllers::{self, attachdetach};
use crate::sim::store::{ListOptions, Store};
use crate::sim::{behaviour, resources::ResourceDef};

/// Reads objects straight from the store, so every reconcile sees the writes of the ones
/// before it. Lists come back in namespace/name order (the store's order).
#[derive(Debug, Clone, Copy)]
pub struct StoreView<'a> {
    store: &'a Store,
    attachable_drivers: &'a [String],
}

impl<'a> StoreView<'a> {
    /// A view of `store`; volumes of `attachable_drivers` count as usable on a node only once
    /// attached there.
    #[must_use]
    pub const fn new(store: &'a Store, attachable_drivers: &'a [String]) -> Self {
        Self {
            store,
            attachable_drivers,
        }
    }

    fn resource(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.store.resource_for_kind(api_version, kind)
    }

    fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = self.resource(api_version, kind)?;
        let ns = if res.namespaced { namespace } else { None };
        self.store.get(&res, ns, name).ok()
    }

    fn list_objects(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(res) = self.resource(api_version, kind) else {
            return Vec::new();
        };
        let ns = if res.namespaced { namespace } else { None };
        self.store
            .list(&res, ns, &ListOptions::default())
            .map(|l| l.items)
            .unwrap_or_default()
    }
}

impl controllers::ClusterView for StoreView<'_> {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.get_object(api_version, kind, namespace, name)
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.list_objects(api_version, kind, namespace)
    }
}

impl behaviour::ClusterView for StoreView<'_> {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.get_object(api_version, kind, namespace, name)
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.list_objects(api_version, kind, namespace)
    }

    fn resource_served(&self, group: &str, version: &str, resource: &str) -> bool {
        self.store.resource(group, version, resource).is_some()
    }

    fn resource_name(&self, api_version: &str, kind: &str) -> Option<String> {
        self.resource(api_version, kind).map(|r| r.plural)
    }

    fn volume_attached(&self, pv: &str, node: &str) -> bool {
        let attachable = self
            .get_object("v1", "PersistentVolume", None, pv)
            .and_then(|v| {
                v.pointer("/spec/csi/driver")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .is_some_and(|d| self.attachable_drivers.contains(&d));
        !attachable || attachdetach::is_attached(self, pv, node)
    }
}
