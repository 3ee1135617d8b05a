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
    faults: &'a crate::sim::faults::Faults,
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
            faults: crate::sim::faults::Faults::none(),
        }
    }

    /// The same view, with the cluster's infrastructure faults.
    #[must_use]
    pub const fn with_faults(mut self, faults: &'a crate::sim::faults::Faults) -> Self {
        self.faults = faults;
        self
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

    fn faults(&self) -> &crate::sim::faults::Faults {
        self.faults
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::{Informers, StoreView};
    use crate::sim::clock::{Clock, ManualClock};
    use crate::sim::controllers::ClusterView;
    use crate::sim::store::{DeleteOptions, ListOptions, Part, Store, StoreConfig, WriteOptions};

    fn store() -> Store {
        let clock = Arc::new(ManualClock::new("2025-01-01T00:00:00Z".parse().unwrap()));
        Store::new(
            clock as Arc<dyn Clock>,
            StoreConfig {
                seed: Some(1),
                ..StoreConfig::default()
            },
        )
    }

    fn pod(name: &str, owner: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(uid) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "rs", "uid": uid, "controller": true}]);
        }
        p
    }

    fn names(objs: &[Arc<Value>]) -> Vec<String> {
        objs.iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The store's own answer, for comparison.
    fn stored(store: &Store, ns: Option<&str>) -> Vec<Value> {
        let res = store.resource("", "v1", "pods").unwrap();
        store.list(&res, ns, &ListOptions::default()).unwrap().items
    }

    #[test]
    fn lists_follow_every_write_and_share_unchanged_objects() {
        let store = store();
        let informers = Informers::default();
        let view = StoreView::new(&store, &informers, &[]);
        let pods = store.resource("", "v1", "pods").unwrap();
        for name in ["b", "a", "c"] {
            store
                .create(
                    &pods,
                    Some("default"),
                    pod(name, None),
                    &WriteOptions::default(),
                )
                .unwrap();
        }
        let first = view.list("v1", "Pod", Some("default"));
        assert_eq!(names(&first), ["a", "b", "c"]);
        let want: Vec<Value> = stored(&store, Some("default"));
        assert_eq!(
            first.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
            want
        );

        // A write in between: the changed object is fresh, the others are the same allocation.
        store
            .modify(
                &pods,
                Some("default"),
                "b",
                Part::Main,
                &WriteOptions::default(),
                |cur| {
                    let mut p = cur.unwrap().clone();
                    p["metadata"]["labels"]["changed"] = json!("yes");
                    Ok(p)
                },
            )
            .unwrap();
        store
            .delete(
                &pods,
                Some("default"),
                "c",
                &DeleteOptions {
                    grace_period: Some(0),
                    ..DeleteOptions::default()
                },
            )
            .unwrap();
        let second = view.list("v1", "Pod", Some("default"));
        assert_eq!(names(&second), ["a", "b"]);
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        assert_eq!(second[1]["metadata"]["labels"]["changed"], "yes");
        assert_eq!(
            second.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
            stored(&store, Some("default"))
        );
        assert_eq!(
            view.get("v1", "Pod", Some("default"), "b"),
            Some((*second[1]).clone())
        );
        assert_eq!(view.get("v1", "Pod", Some("default"), "c"), None);
        assert!(view.list("v1", "Pod", Some("kube-system")).is_empty());
    }

    #[test]
    fn controlled_lists_equal_the_filtered_list() {
        let store = store();
        let informers = Informers::default();
        let view = StoreView::new(&store, &informers, &[]);
        let pods = store.resource("", "v1", "pods").unwrap();
        for (name, owner) in [
            ("a", Some("u1")),
            ("b", None),
            ("c", Some("u2")),
            ("d", Some("u1")),
            ("e", None),
        ] {
            store
                .create(
                    &pods,
                    Some("default"),
                    pod(name, owner),
                    &WriteOptions::default(),
                )
                .unwrap();
        }
        store
            .create(
                &pods,
                Some("kube-system"),
                pod("f", Some("u1")),
                &WriteOptions::default(),
            )
            .unwrap();
        let ns = Some("default");
        assert_eq!(
            names(&view.list_controlled("v1", "Pod", ns, "u1", false)),
            ["a", "d"]
        );
        assert_eq!(
            names(&view.list_controlled("v1", "Pod", ns, "u1", true)),
            ["a", "b", "d", "e"]
        );
        assert_eq!(
            names(&view.list_controlled("v1", "Pod", ns, "u3", true)),
            ["b", "e"]
        );
        assert_eq!(
            names(&view.list_controlled("v1", "Pod", None, "u1", false)),
            ["a", "d", "f"]
        );
        // The index is rebuilt after a write.
        store
            .delete(
                &pods,
                Some("default"),
                "a",
                &DeleteOptions {
                    grace_period: Some(0),
                    ..DeleteOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            names(&view.list_controlled("v1", "Pod", ns, "u1", true)),
            ["b", "d", "e"]
        );
    }
}
