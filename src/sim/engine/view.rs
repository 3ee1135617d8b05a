//! The controllers' and node agents' read-only window on the object store.
//!
//! Reads go through [`Informers`], one cache per resource shared by every reconcile, as a
//! real controller manager's informers are: a list hands out the cached objects ([`Arc`]s)
//! instead of copying the store, and the cache is brought up to date whenever the store's
//! resourceVersion moved, copying only the objects whose own resourceVersion changed. So every
//! reconcile still sees the writes of the ones before it, and writes made through the API
//! between two rounds are seen by the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::sim::controllers::{self, attachdetach, meta};
use crate::sim::store::Store;
use crate::sim::{behaviour, resources::ResourceDef};

/// One cached object.
#[derive(Debug)]
struct Entry {
    namespace: String,
    name: String,
    object: Arc<Value>,
}

/// The cache of one resource.
#[derive(Debug, Default)]
struct Informer {
    /// The store's resourceVersion the cache was last brought up to date at.
    synced_at: Option<u64>,
    /// Every object, in namespace/name order (the store's order).
    entries: Vec<Entry>,
    /// Positions in `entries` by (namespace, controller uid; empty for objects without a
    /// controller), built on first use after each refresh.
    controlled: Option<HashMap<(String, String), Vec<usize>>>,
}

impl Informer {
    /// Brings the cache up to the store's current state.
    fn refresh(&mut self, store: &Store, res: &ResourceDef) {
        let rv = store.resource_version();
        if self.synced_at == Some(rv) {
            return;
        }
        let mut old = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut entries = Vec::new();
        let api_version = json!(res.api_version());
        let kind = json!(res.kind);
        let scanned = store.scan(res, |ns, name, obj| {
            // Both sides are in namespace/name order: skip cached objects that are gone.
            while old
                .peek()
                .is_some_and(|e| (e.namespace.as_str(), e.name.as_str()) < (ns, name))
            {
                old.next();
            }
            let same = old.peek().is_some_and(|e| {
                e.namespace == ns
                    && e.name == name
                    && e.object["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
            });
            if same && let Some(e) = old.next() {
                entries.push(e);
                return;
            }
            // Read through the resource's version, as the store's own reads are.
            let mut object = obj.clone();
            if let Value::Object(m) = &mut object {
                m.insert("apiVersion".into(), api_version.clone());
                m.insert("kind".into(), kind.clone());
            }
            entries.push(Entry {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                object: Arc::new(object),
            });
        });
        self.entries = entries;
        self.controlled = None;
        self.synced_at = Some(scanned);
    }

    /// The positions of the objects of one namespace (all with `None`).
    fn range(&self, namespace: Option<&str>) -> std::ops::Range<usize> {
        match namespace {
            None => 0..self.entries.len(),
            Some(ns) => {
                let start = self.entries.partition_point(|e| e.namespace.as_str() < ns);
                let end = self.entries.partition_point(|e| e.namespace.as_str() <= ns);
                start..end
            }
        }
    }

    fn controlled_index(&mut self) -> &HashMap<(String, String), Vec<usize>> {
        self.controlled.get_or_insert_with(|| {
            let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
            for (i, e) in self.entries.iter().enumerate() {
                let owner = meta::controller_of(&e.object)
                    .map(|r| meta::str_at(r, &["uid"]).to_owned())
                    .unwrap_or_default();
                index
                    .entry((e.namespace.clone(), owner))
                    .or_default()
                    .push(i);
            }
            index
        })
    }
}

/// The per-resource read caches of one simulated cluster, kept from round to round.
#[derive(Debug, Default)]
pub struct Informers {
    by_resource: Mutex<HashMap<(String, String), Informer>>,
}

impl Informers {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Informer>> {
        self.by_resource
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the up-to-date cache of `res`.
    fn with<T>(&self, store: &Store, res: &ResourceDef, f: impl FnOnce(&mut Informer) -> T) -> T {
        let mut all = self.lock();
        let informer = all.entry(res.storage_key()).or_default();
        informer.refresh(store, res);
        f(informer)
    }
}

/// Reads objects from the store through the cluster's [`Informers`], so every reconcile sees
/// the writes of the ones before it. Lists come back in namespace/name order (the store's order).
#[derive(Debug, Clone, Copy)]
pub struct StoreView<'a> {
    store: &'a Store,
    informers: &'a Informers,
    attachable_drivers: &'a [String],
}

impl<'a> StoreView<'a> {
    /// A view of `store` through `informers`; volumes of `attachable_drivers` count as usable
    /// on a node only once attached there.
    #[must_use]
    pub const fn new(
        store: &'a Store,
        informers: &'a Informers,
        attachable_drivers: &'a [String],
    ) -> Self {
        Self {
            store,
            informers,
            attachable_drivers,
        }
    }

    fn resource(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.store.resource_for_kind(api_version, kind)
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
        let res = self.resource(api_version, kind)?;
        let ns = if res.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        self.informers.with(self.store, &res, |i| {
            i.entries
                .binary_search_by(|e| (e.namespace.as_str(), e.name.as_str()).cmp(&(ns, name)))
                .ok()
                .map(|at| Value::clone(&i.entries[at].object))
        })
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(res) = self.resource(api_version, kind) else {
            return Vec::new();
        };
        let ns = if res.namespaced { namespace } else { None };
        self.informers.with(self.store, &res, |i| {
            i.entries[i.range(ns)]
                .iter()
                .map(|e| e.object.clone())
                .collect()
        })
    }

    fn list_controlled(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        owner_uid: &str,
        orphans: bool,
    ) -> Vec<Arc<Value>> {
        let Some(res) = self.resource(api_version, kind) else {
            return Vec::new();
        };
        let Some(ns) = namespace.filter(|_| res.namespaced && !owner_uid.is_empty()) else {
            // Cluster-wide claims (and owners without a uid) are rare: filter the whole list.
            return self
                .list(api_version, kind, namespace)
                .into_iter()
                .filter(|o| match meta::controller_of(o) {
                    Some(r) => meta::str_at(r, &["uid"]) == owner_uid,
                    None => orphans,
                })
                .collect();
        };
        self.informers.with(self.store, &res, |i| {
            let index = i.controlled_index();
            let mut at: Vec<usize> = index
                .get(&(ns.to_owned(), owner_uid.to_owned()))
                .cloned()
                .unwrap_or_default();
            if orphans {
                at.extend(
                    index
                        .get(&(ns.to_owned(), String::new()))
                        .into_iter()
                        .flatten(),
                );
                // Back into the store's order.
                at.sort_unstable();
            }
            at.into_iter()
                .map(|k| i.entries[k].object.clone())
                .collect()
        })
    }
}

impl behaviour::ClusterViewExt for StoreView<'_> {
    fn resource_served(&self, group: &str, version: &str, resource: &str) -> bool {
        self.store.resource(group, version, resource).is_some()
    }

    fn resource_name(&self, api_version: &str, kind: &str) -> Option<String> {
        self.resource(api_version, kind).map(|r| r.plural)
    }

    fn volume_attached(&self, pv: &str, node: &str) -> bool {
        use controllers::ClusterView as _;
        let attachable = self
            .get("v1", "PersistentVolume", None, pv)
            .and_then(|v| {
                v.pointer("/spec/csi/driver")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .is_some_and(|d| self.attachable_drivers.contains(&d));
        !attachable || attachdetach::is_attached(self, pv, node)
    }
}
