//! The controllers' and node agents' read-only window on the object store.
//!
//! Reads go through [`Informers`], one cache per resource shared by every reconcile, as a
//! real controller manager's informers are: a list hands out the cached objects ([`Arc`]s,
//! the store's own) instead of copying the store. A cache starts from a list of the store and
//! then follows every change as the store makes it, so every reconcile sees the writes of the
//! ones before it, and writes made through the API between two rounds are seen by the next one.
//!
//! The caches also keep a journal of what changed (the object before and after), for the
//! work queues ([`super::queue`]) to find the keys whose reconcile read something that changed:
//! a [`StoreView`] can note every read a reconcile makes ([`StoreView::tracking`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::{Value, json};

use crate::sim::controllers::{self, attachdetach, meta};
use crate::sim::store::{ChangeListener, Store, WatchEvent, WatchEventType};
use crate::sim::{behaviour, resources::ResourceDef};

/// Which cache (resource) a read or a change concerns: its position in [`Informers`].
pub type ResourceId = usize;

/// One read a reconcile made, as precise as the cache answers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Read {
    /// One object by namespace (empty for cluster-scoped objects) and name, present or not.
    Get {
        /// The resource.
        res: ResourceId,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Every object of one namespace, or (with `None`) of all.
    List {
        /// The resource.
        res: ResourceId,
        /// Namespace.
        namespace: Option<String>,
    },
    /// The objects of one namespace whose controller has this uid (empty: no controller).
    Controlled {
        /// The resource.
        res: ResourceId,
        /// Namespace.
        namespace: String,
        /// The controller's uid, or empty for objects without a controller.
        owner: String,
    },
    /// A kind the cluster does not serve (yet): nothing to follow, so always stale.
    Unserved,
}

impl Read {
    /// The resource read, if any.
    #[must_use]
    pub const fn resource(&self) -> Option<ResourceId> {
        match self {
            Self::Get { res, .. } | Self::List { res, .. } | Self::Controlled { res, .. } => {
                Some(*res)
            }
            Self::Unserved => None,
        }
    }
}

/// One object that changed, as the caches saw it.
#[derive(Debug, Clone)]
struct Change {
    res: ResourceId,
    namespace: String,
    name: String,
    /// Before; `None` when it was created.
    old: Option<Arc<Value>>,
    /// After; `None` when it was deleted.
    new: Option<Arc<Value>>,
}

impl Change {
    const fn new(
        res: ResourceId,
        namespace: String,
        name: String,
        old: Option<Arc<Value>>,
        new: Option<Arc<Value>>,
    ) -> Self {
        Self {
            res,
            namespace,
            name,
            old,
            new,
        }
    }

    /// The journal's record of this change: which object, and every read whose answer the
    /// change may have changed. The objects themselves are not kept.
    fn into_changed(self) -> Changed {
        let mut owners: Vec<String> = [&self.old, &self.new]
            .into_iter()
            .flatten()
            .map(|o| controller_uid(o).to_owned())
            .collect();
        owners.dedup();
        let mut reads = vec![
            Read::Get {
                res: self.res,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            },
            Read::List {
                res: self.res,
                namespace: None,
            },
        ];
        if !self.namespace.is_empty() {
            reads.push(Read::List {
                res: self.res,
                namespace: Some(self.namespace.clone()),
            });
        }
        reads.extend(owners.into_iter().map(|owner| Read::Controlled {
            res: self.res,
            namespace: self.namespace.clone(),
            owner,
        }));
        Changed {
            res: self.res,
            namespace: self.namespace,
            name: self.name,
            reads,
        }
    }
}

/// One object that changed, as the change journal records it.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The resource.
    pub res: ResourceId,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Every read whose answer the change may have changed.
    pub reads: Vec<Read>,
}

/// The uid of an object's controller, empty when it has none.
fn controller_uid(obj: &Value) -> &str {
    meta::controller_of(obj).map_or("", |r| meta::str_at(r, &["uid"]))
}

/// A reader of the change journal.
pub type ConsumerId = usize;

/// What changed since each consumer last looked.
#[derive(Debug, Default)]
struct Journal {
    /// The sequence number of the first entry.
    base: u64,
    entries: VecDeque<Changed>,
    /// The next sequence number each consumer reads.
    cursors: Vec<u64>,
}

impl Journal {
    fn push(&mut self, change: Change) {
        // Nobody would read it.
        if !self.cursors.is_empty() {
            self.entries.push_back(change.into_changed());
        }
    }

    fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Drops what every consumer has read.
    fn trim(&mut self) {
        let read = self.cursors.iter().copied().min().unwrap_or(self.end());
        while self.base < read && self.entries.pop_front().is_some() {
            self.base += 1;
        }
    }
}

/// The cache of one resource.
#[derive(Debug)]
struct Informer {
    group: String,
    plural: String,
    /// `apiVersion` and `kind` of the version the cache reads through.
    api_version: Value,
    kind: Value,
    /// Every object by namespace (empty for cluster-scoped objects) and name: the store's order.
    entries: BTreeMap<(String, String), Arc<Value>>,
    /// Names by (namespace, controller uid; empty for objects without a controller).
    controlled: HashMap<(String, String), BTreeSet<String>>,
}

impl Informer {
    /// A cache of `res` holding the listed objects.
    fn listed(
        res: &ResourceDef,
        objects: &mut dyn Iterator<Item = (&str, &str, &Arc<Value>)>,
    ) -> Self {
        let mut informer = Self {
            group: res.group.clone(),
            plural: res.plural.clone(),
            api_version: json!(res.api_version()),
            kind: json!(res.kind),
            entries: BTreeMap::new(),
            controlled: HashMap::new(),
        };
        for (ns, name, obj) in objects {
            let obj = informer.read_through(obj);
            informer.put(ns, name, Some(obj));
        }
        informer
    }

    /// The object as read through this resource's version, shared when it already is.
    fn read_through(&self, obj: &Arc<Value>) -> Arc<Value> {
        if obj.get("apiVersion") == Some(&self.api_version) && obj.get("kind") == Some(&self.kind) {
            return obj.clone();
        }
        let mut object = Value::clone(obj);
        if let Value::Object(m) = &mut object {
            m.insert("apiVersion".into(), self.api_version.clone());
            m.insert("kind".into(), self.kind.clone());
        }
        Arc::new(object)
    }

    /// Puts `new` (or, with `None`, nothing) in the place of (namespace, name) and returns
    /// what was there.
    fn put(&mut self, namespace: &str, name: &str, new: Option<Arc<Value>>) -> Option<Arc<Value>> {
        let key = (namespace.to_owned(), name.to_owned());
        let old = match &new {
            Some(obj) => self.entries.insert(key, obj.clone()),
            None => self.entries.remove(&key),
        };
        let before = old.as_deref().map(controller_uid);
        let after = new.as_deref().map(controller_uid);
        if before != after {
            if let Some(owner) = before {
                let index_key = (namespace.to_owned(), owner.to_owned());
                if let Some(names) = self.controlled.get_mut(&index_key) {
                    names.remove(name);
                    if names.is_empty() {
                        self.controlled.remove(&index_key);
                    }
                }
            }
            if let Some(owner) = after {
                self.controlled
                    .entry((namespace.to_owned(), owner.to_owned()))
                    .or_default()
                    .insert(name.to_owned());
            }
        }
        old
    }

    /// The entries of one namespace (all with `None`), in namespace/name order.
    fn range(&self, namespace: Option<&str>) -> impl Iterator<Item = &Arc<Value>> {
        let (from, to) = match namespace {
            None => (Bound::Unbounded, Bound::Unbounded),
            Some(ns) => (
                Bound::Included((ns.to_owned(), String::new())),
                Bound::Excluded((format!("{ns}\u{0}"), String::new())),
            ),
        };
        self.entries.range((from, to)).map(|(_, o)| o)
    }
}

#[derive(Debug, Default)]
struct Caches {
    informers: Vec<Informer>,
    journal: Journal,
}

impl Caches {
    fn position(&self, group: &str, plural: &str) -> Option<ResourceId> {
        self.informers
            .iter()
            .position(|i| i.group == group && i.plural == plural)
    }
}

/// The per-resource read caches of one simulated cluster, kept from round to round.
///
/// They follow the store as it changes ([`Store::listen`]): every change reaches them before
/// the write that made it returns, so they never fall behind and never list the store again.
#[derive(Debug)]
pub struct Informers {
    caches: Mutex<Caches>,
}

impl ChangeListener for Informers {
    fn changed(&self, ev: &WatchEvent) {
        let mut caches = self.lock();
        let Some(at) = caches.position(&ev.group, &ev.plural) else {
            // Nobody has read this resource: a cache made later starts from a list.
            return;
        };
        let informer = &mut caches.informers[at];
        let name = ev.object["metadata"]["name"].as_str().unwrap_or_default();
        let new = match ev.kind {
            WatchEventType::Deleted => None,
            WatchEventType::Added | WatchEventType::Modified => {
                Some(informer.read_through(&ev.object))
            }
        };
        let old = informer.put(&ev.namespace, name, new.clone());
        let change = Change::new(at, ev.namespace.clone(), name.to_owned(), old, new);
        caches.journal.push(change);
    }
}

impl Informers {
    /// Caches that follow `store` from now on.
    #[must_use]
    pub fn follow(store: &Store) -> Arc<Self> {
        let informers = Arc::new(Self {
            caches: Mutex::default(),
        });
        let weak: Weak<dyn ChangeListener> = Arc::downgrade(&informers) as Weak<dyn ChangeListener>;
        store.listen(weak);
        informers
    }

    fn lock(&self) -> MutexGuard<'_, Caches> {
        self.caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the cache of `res`, made from a list of the store on first use.
    fn with<T>(
        &self,
        store: &Store,
        res: &ResourceDef,
        f: impl FnOnce(ResourceId, &Informer) -> T,
    ) -> T {
        {
            let caches = self.lock();
            if let Some(at) = caches.position(&res.group, &res.plural) {
                return f(at, &caches.informers[at]);
            }
        }
        // Listed and installed under the store's lock, so that no change comes between the
        // list and the first change the cache follows (the store calls its listeners under
        // the same lock, and always before taking the caches' lock: the same order).
        store.scan(res, |objects| {
            let mut caches = self.lock();
            if caches.position(&res.group, &res.plural).is_none() {
                caches.informers.push(Informer::listed(res, objects));
            }
        });
        let caches = self.lock();
        let at = caches
            .position(&res.group, &res.plural)
            .unwrap_or(caches.informers.len());
        match caches.informers.get(at) {
            Some(informer) => f(at, informer),
            // Cannot happen: it was just installed and caches are never removed.
            None => f(at, &Informer::listed(res, &mut std::iter::empty())),
        }
    }

    /// The cache of `api_version`/`kind`, created (from a list) if needed.
    pub fn resource_id(&self, store: &Store, api_version: &str, kind: &str) -> Option<ResourceId> {
        let res = store.resource_for_kind_shared(api_version, kind)?;
        Some(self.with(store, &res, |at, _| at))
    }

    /// A new reader of the change journal, which sees the changes from now on.
    pub fn subscribe(&self) -> ConsumerId {
        let mut caches = self.lock();
        let end = caches.journal.end();
        caches.journal.cursors.push(end);
        caches.journal.cursors.len() - 1
    }

    /// Visits the changes `consumer` has not seen, oldest first.
    pub fn changes(&self, consumer: ConsumerId, mut f: impl FnMut(&Changed)) {
        let mut caches = self.lock();
        let journal = &mut caches.journal;
        let Some(cursor) = journal.cursors.get(consumer).copied() else {
            return;
        };
        let from = usize::try_from(cursor.saturating_sub(journal.base)).unwrap_or(usize::MAX);
        for change in journal.entries.iter().skip(from) {
            f(change);
        }
        journal.cursors[consumer] = journal.end();
        journal.trim();
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
    /// Where to note every read, for [`super::queue`].
    reads: Option<&'a RefCell<Vec<Read>>>,
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
            reads: None,
        }
    }

    /// The same view, with the cluster's infrastructure faults.
    #[must_use]
    pub const fn with_faults(mut self, faults: &'a crate::sim::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The same view, noting every read in `reads`.
    #[must_use]
    pub const fn tracking(self, reads: &'a RefCell<Vec<Read>>) -> Self {
        Self {
            reads: Some(reads),
            ..self
        }
    }

    /// The store read through.
    #[must_use]
    pub const fn store(&self) -> &'a Store {
        self.store
    }

    /// The caches read through.
    #[must_use]
    pub const fn informers(&self) -> &'a Informers {
        self.informers
    }

    /// Whether the object exists, without copying it (and without noting the read).
    #[must_use]
    pub fn contains(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let Some(res) = self.store.resource_for_kind_shared(api_version, kind) else {
            return false;
        };
        let ns = if res.namespaced { namespace } else { "" };
        self.informers.with(self.store, &res, |_, i| {
            i.entries.contains_key(&(ns.to_owned(), name.to_owned()))
        })
    }

    fn note(&self, read: Read) {
        if let Some(reads) = self.reads {
            reads.borrow_mut().push(read);
        }
    }

    fn resource(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let res = self.store.resource_for_kind_shared(api_version, kind);
        if res.is_none() {
            self.note(Read::Unserved);
        }
        res
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
        self.informers.with(self.store, &res, |at, i| {
            self.note(Read::Get {
                res: at,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
            i.entries
                .get(&(ns.to_owned(), name.to_owned()))
                .map(|o| Value::clone(o))
        })
    }

    fn get_shared(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Value>> {
        let res = self.resource(api_version, kind)?;
        let ns = if res.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        self.informers.with(self.store, &res, |at, i| {
            self.note(Read::Get {
                res: at,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
            i.entries.get(&(ns.to_owned(), name.to_owned())).cloned()
        })
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(res) = self.resource(api_version, kind) else {
            return Vec::new();
        };
        let ns = if res.namespaced { namespace } else { None };
        self.informers.with(self.store, &res, |at, i| {
            self.note(Read::List {
                res: at,
                namespace: ns.map(str::to_owned),
            });
            i.range(ns).cloned().collect()
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
        self.informers.with(self.store, &res, |at, i| {
            let owners: &[&str] = if orphans {
                &[owner_uid, ""]
            } else {
                &[owner_uid]
            };
            let mut names: Vec<&String> = Vec::new();
            for owner in owners {
                self.note(Read::Controlled {
                    res: at,
                    namespace: ns.to_owned(),
                    owner: (*owner).to_owned(),
                });
                names.extend(
                    i.controlled
                        .get(&(ns.to_owned(), (*owner).to_owned()))
                        .into_iter()
                        .flatten(),
                );
            }
            if orphans {
                // Back into the store's order.
                names.sort_unstable();
            }
            names
                .into_iter()
                .filter_map(|name| i.entries.get(&(ns.to_owned(), name.clone())).cloned())
                .collect()
        })
    }
}

impl behaviour::ClusterViewExt for StoreView<'_> {
    fn resource_served(&self, group: &str, version: &str, resource: &str) -> bool {
        self.store.resource(group, version, resource).is_some()
    }

    fn resource_name(&self, api_version: &str, kind: &str) -> Option<String> {
        self.resource(api_version, kind).map(|r| r.plural.clone())
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
        let informers = Informers::follow(&store);
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
        let informers = Informers::follow(&store);
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
