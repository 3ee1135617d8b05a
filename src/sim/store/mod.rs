//! The object store of the simulated API server.
//!
//! Objects of every kind are held as `serde_json::Value`s keyed by group, resource, namespace
//! and name. One global counter provides resourceVersions. The store applies the API server's
//! write semantics: defaulting, validation, uid/creationTimestamp/generation bookkeeping,
//! optimistic concurrency, deletion with finalizers, ownerReference garbage collection
//! (background, foreground, orphan), namespace lifecycle and CustomResourceDefinition
//! establishment. Every change is kept in a history bounded by count and by size, which
//! watchers and read caches follow; one that falls behind the history gets 410 Expired.

pub mod defaults;
pub mod duplicates;
pub mod error;
pub mod logs;
pub mod pruning;
pub mod selector;
pub mod validation;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::sim::clock::{Clock, format_time};
use crate::sim::resources::{self, ResourceDef};

pub use error::{ApiError, FieldError, OPTIMISTIC_LOCK_MSG, Reason};
pub use logs::{ContainerKey, LogLine, LogStore};
pub use selector::{FieldSelector, LabelSelector};

/// Namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];
/// Finalizer of foreground deletion (metav1.FinalizerDeleteDependents).
const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of orphaning deletion (metav1.FinalizerOrphanDependents).
const ORPHAN: &str = "orphan";

/// The default of [`StoreConfig::watch_history_bytes`]: 16 MiB, some 5,000 pod updates. A
/// choice of the simulator (the API server's watch cache counts events, not bytes): enough for
/// any watcher that keeps reading, small enough that a cluster of thousands of pods does not
/// keep hundreds of megabytes of old versions.
pub const DEFAULT_WATCH_HISTORY_BYTES: usize = 16 << 20;

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many change events the watch history keeps; older resourceVersions get 410 Expired.
    pub watch_history: usize,
    /// How many bytes of serialized objects the watch history keeps (each event counts the
    /// JSON size of its object; the state it replaced, kept for filtered watches, is not
    /// counted); older resourceVersions get 410 Expired.
    pub watch_history_bytes: usize,
    /// Whether deleting a pod bound to a node waits for a kubelet to finish it (graceful
    /// deletion). Off until a simulated kubelet runs, so that deletes complete.
    pub graceful_pod_deletion: bool,
    /// Seed of the generator of uids and `generateName` suffixes; `None` draws them from the
    /// operating system's entropy. A seed makes a run's names reproducible.
    pub seed: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            watch_history: 50_000,
            watch_history_bytes: DEFAULT_WATCH_HISTORY_BYTES,
            graceful_pod_deletion: false,
            seed: None,
        }
    }
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    /// An object was created.
    Added,
    /// An object was changed.
    Modified,
    /// An object was removed.
    Deleted,
}

impl WatchEventType {
    /// As the watch stream spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: WatchEventType,
    /// API group of the object's resource.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The object after the change (for DELETED: its last state, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change, for MODIFIED.
    pub previous: Option<Arc<Value>>,
    /// The size of `object` serialized as JSON, what the event counts against
    /// [`StoreConfig::watch_history_bytes`].
    pub size: usize,
}

/// A list result.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Matching objects, ordered by namespace and name.
    pub items: Vec<Value>,
    /// The store's resourceVersion at the time of the list.
    pub resource_version: u64,
    /// Token for the next page, when `limit` cut the list.
    pub continue_token: Option<String>,
    /// How many matching items follow this page.
    pub remaining: Option<u64>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Page size; 0 for everything.
    pub limit: usize,
    /// Continue token of a previous page.
    pub continue_token: Option<String>,
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, its dependents afterwards.
    Background,
    /// Delete the dependents first; the owner waits with the `foregroundDeletion` finalizer.
    Foreground,
    /// Keep the dependents and remove their ownerReferences.
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Propagation policy; Background when absent.
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// Whether this is a dry run.
    pub dry_run: bool,
}

/// The outcome of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object is being deleted (finalizers or graceful deletion) and still exists.
    Pending(Value),
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but `status` when a status subresource exists.
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

/// Options of create and update.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Whether this is a dry run: validated and returned, not stored.
    pub dry_run: bool,
}

type Key = (String, String);
type ObjKey = (String, String);

/// An in-process follower of every change (a read cache): told of each one as it is made,
/// before the write that made it returns.
pub trait ChangeListener: Send + Sync + std::fmt::Debug {
    /// One change, in resourceVersion order, while the store is locked: it must not call back
    /// into the store.
    fn changed(&self, event: &WatchEvent);
}

/// The watch subscription of one watcher.
#[derive(Debug)]
pub struct Subscription {
    /// History events after the requested resourceVersion (or synthetic ADDED events for the
    /// current state when no resourceVersion was given).
    pub initial: Vec<Arc<WatchEvent>>,
    /// Changes whenever the store's resourceVersion moves; the watcher then reads the events
    /// after the last resourceVersion it has seen with [`Store::changes_since`].
    pub changed: watch::Receiver<u64>,
    /// The store's resourceVersion when subscribed.
    pub resource_version: u64,
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    /// Shared, so that finding one does not copy it.
    resources: Vec<Arc<ResourceDef>>,
    /// Shared with the watch history (and the read caches that follow it): a change stores a
    /// new object and the history keeps the one it replaced, without copies.
    objects: HashMap<Key, BTreeMap<ObjKey, Arc<Value>>>,
    uids: HashMap<String, (Key, ObjKey)>,
    history: VecDeque<Arc<WatchEvent>>,
    /// The sum of the `size` of the events in `history`.
    history_bytes: usize,
    /// Every event with rv >= window_start is in `history`.
    window_start: u64,
    next_cluster_ip: u32,
    next_node_port: u16,
    /// Events produced under the lock, flushed to history and watchers before it is released.
    pending: Vec<Arc<WatchEvent>>,
    /// Garbage-collection work queued by deletes.
    tasks: Vec<Task>,
    /// Whether [`Inner::run_gc`] is working through `tasks`.
    gc_running: bool,
    /// Source of uids and generated name suffixes.
    rng: StdRng,
}

/// The object store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    /// The resourceVersion of the last change, for watchers to wait on.
    latest: watch::Sender<u64>,
    /// In-process followers, told of every change under the store's lock.
    listeners: Mutex<Vec<Weak<dyn ChangeListener>>>,
    logs: LogStore,
    config: StoreConfig,
    /// Resources (by plural) whose creates a test has an admission step refuse, with the
    /// refusal's detail.
    #[cfg(test)]
    refused_creates: Mutex<BTreeMap<String, String>>,
}

/// The service CIDR: k3s' default `--service-cidr` 10.43.0.0/16 (the `kubernetes` service has
/// its first address, cluster DNS `10.43.0.10`), so a scenario reads the same as on k3d.
const SERVICE_CIDR_BASE: u32 = u32::from_be_bytes([10, 43, 0, 0]);

impl Store {
    /// A store with the built-in resources, the initial namespaces and the `kubernetes` service.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>, config: StoreConfig) -> Self {
        let (latest, _) = watch::channel(0);
        let store = Self {
            inner: Mutex::new(Inner {
                rv: 0,
                resources: resources::builtins().into_iter().map(Arc::new).collect(),
                objects: HashMap::new(),
                uids: HashMap::new(),
                history: VecDeque::new(),
                history_bytes: 0,
                window_start: 1,
                next_cluster_ip: SERVICE_CIDR_BASE + 2,
                next_node_port: 30000,
                pending: Vec::new(),
                tasks: Vec::new(),
                gc_running: false,
                rng: config
                    .seed
                    .map_or_else(|| StdRng::from_rng(&mut rand::rng()), StdRng::seed_from_u64),
            }),
            clock,
            latest,
            listeners: Mutex::new(Vec::new()),
            logs: LogStore::default(),
            config,
            #[cfg(test)]
            refused_creates: Mutex::default(),
        };
        let ns = store.resource("", "v1", "namespaces");
        let svc = store.resource("", "v1", "services");
        if let (Some(ns), Some(svc)) = (ns, svc) {
            for name in INITIAL_NAMESPACES {
                let _ = store.create(
                    &ns,
                    None,
                    json!({"metadata": {"name": name}}),
                    &WriteOptions::default(),
                );
            }
            // The apiserver's own service in `default` (pkg/controlplane/controller/kubernetesservice).
            let _ = store.create(
                &svc,
                Some("default"),
                json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                       "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}),
                &WriteOptions::default(),
            );
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The clock the store stamps objects with.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The container log buffers.
    #[must_use]
    pub fn logs(&self) -> &LogStore {
        &self.logs
    }

    /// The current time as `metav1.Time` text.
    #[must_use]
    pub fn now(&self) -> String {
        format_time(self.clock.now())
    }

    /// The current global resourceVersion.
    #[must_use]
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Every served resource (built-ins and established custom resources).
    #[must_use]
    pub fn resources(&self) -> Vec<ResourceDef> {
        self.lock()
            .resources
            .iter()
            .map(|r| ResourceDef::clone(r))
            .collect()
    }

    /// The resource served at `group`/`version`/`plural`.
    #[must_use]
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.resource_shared(group, version, plural)
            .map(|r| ResourceDef::clone(&r))
    }

    /// [`Store::resource`], shared rather than copied: for callers that look resources up
    /// for every read or write.
    #[must_use]
    pub fn resource_shared(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceDef>> {
        self.lock()
            .resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// The resource of `apiVersion`/`kind`, e.g. (`apps/v1`, `Deployment`).
    #[must_use]
    pub fn resource_for_kind(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.resource_for_kind_shared(api_version, kind)
            .map(|r| ResourceDef::clone(&r))
    }

    /// [`Store::resource_for_kind`], shared rather than copied: for callers that look
    /// resources up for every read or write.
    #[must_use]
    pub fn resource_for_kind_shared(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<Arc<ResourceDef>> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.lock()
            .resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// How many watches are open right now (for tests that must wait for a watcher).
    #[must_use]
    pub fn watcher_count(&self) -> usize {
        self.latest.receiver_count()
    }

    /// Forgets the watch history: every watch from an older resourceVersion gets 410 Expired.
    /// This is what etcd compaction does to a real cluster.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.history_bytes = 0;
        inner.window_start = inner.rv + 1;
    }

    /// Reads one object.
    ///
    /// # Errors
    /// NotFound.
    pub fn get(&self, res: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let inner = self.lock();
        inner
            .get(res, ns.unwrap_or_default(), name)
            .map(|o| with_version(o.clone(), res))
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// Lists objects of a resource, in one namespace or (with `None`) in all.
    ///
    /// # Errors
    /// BadRequest for a malformed continue token.
    pub fn list(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        let start = match &opts.continue_token {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let inner = self.lock();
        let rv = inner.rv;
        let mut items = Vec::new();
        let mut remaining = 0u64;
        let mut last_key: Option<ObjKey> = None;
        if let Some(objects) = inner.objects.get(&res.storage_key()) {
            let range: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match &start {
                Some(after) => Box::new(objects.range::<ObjKey, _>((
                    std::ops::Bound::Excluded(after.clone()),
                    std::ops::Bound::Unbounded,
                ))),
                None => Box::new(objects.iter()),
            };
            for (key, obj) in range {
                if let Some(ns) = ns
                    && key.0 != ns
                {
                    continue;
                }
                if !opts.labels.matches(&obj["metadata"]["labels"]) || !opts.fields.matches(obj) {
                    continue;
                }
                if opts.limit > 0 && items.len() >= opts.limit {
                    remaining += 1;
                    continue;
                }
                last_key = Some(key.clone());
                items.push(with_version(Value::clone(obj), res));
            }
        }
        let continue_token = (remaining > 0).then(|| encode_continue(rv, last_key.as_ref()));
        Ok(ListResult {
            items,
            resource_version: rv,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// Hands `f` every stored object of a resource, as (namespace, name, object) in
    /// namespace/name order, under the store's lock: for a read cache that shares the objects
    /// and starts following the changes ([`Store::listen`]) before another one is made. The
    /// objects are as stored (with the `apiVersion` and `kind` they were written with, not
    /// necessarily those of the version they are read through); `f` must not call back into
    /// the store.
    pub fn scan<T>(
        &self,
        res: &ResourceDef,
        f: impl FnOnce(&mut dyn Iterator<Item = (&str, &str, &Arc<Value>)>) -> T,
    ) -> T {
        let inner = self.lock();
        let mut objects = inner
            .objects_of(res)
            .into_iter()
            .flatten()
            .map(|((ns, name), obj)| (ns.as_str(), name.as_str(), obj));
        f(&mut objects)
    }

    /// Tells `listener` of every change from now on, until it is dropped.
    pub fn listen(&self, listener: Weak<dyn ChangeListener>) {
        let _inner = self.lock();
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    /// Creates an object.
    ///
    /// # Errors
    /// BadRequest, NotFound (namespace), Forbidden (terminating namespace), AlreadyExists, Invalid.
    pub fn create(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.create_shared(res, ns, obj, opts)
            .map(|created| with_version(Value::clone(&created), res))
    }

    /// [`Store::create`], handing back the stored object itself rather than a copy read
    /// through the resource's version (its `apiVersion` and `kind` are those it was written
    /// with): for writers that do not need it.
    ///
    /// # Errors
    /// See [`Store::create`].
    pub fn create_shared(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        #[cfg(test)]
        if let Some(detail) = self
            .refused_creates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&res.plural)
        {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            return Err(ApiError::forbidden(res, name, detail));
        }
        let now = self.now();
        let mut inner = self.lock();
        let created = inner.create(res, ns, obj, &now, opts.dry_run)?;
        if !opts.dry_run {
            self.flush(&mut inner);
        }
        Ok(created)
    }

    /// From now on refuses every create of `plural` as an admission plugin would:
    /// `<plural> "<name>" is forbidden: <detail>`; `None` lets them through again.
    #[cfg(test)]
    pub fn refuse_creates(&self, plural: &str, detail: Option<&str>) {
        let mut refused = self
            .refused_creates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match detail {
            Some(d) => refused.insert(plural.to_owned(), d.to_owned()),
            None => refused.remove(plural),
        };
    }

    /// Replaces an object (PUT). A non-empty `metadata.resourceVersion` in the body must match.
    ///
    /// # Errors
    /// BadRequest, NotFound, Conflict, Invalid.
    pub fn update(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.modify(res, ns, name, part, opts, |current| match current {
            Some(_) => Ok(obj),
            None => Err(ApiError::not_found(res, name)),
        })
        .map(|(v, _)| v)
    }

    /// Read-modify-write under the store lock: `f` sees the current object (or `None`) and
    /// returns the desired object, which is then stored with update (or create) semantics.
    /// Returns the stored object and whether it was created.
    ///
    /// # Errors
    /// Whatever `f` returns, and the errors of create and update.
    pub fn modify(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        self.modify_shared(res, ns, name, part, opts, f)
            .map(|(stored, created)| (with_version(Value::clone(&stored), res), created))
    }

    /// [`Store::modify`], handing back the stored object itself rather than a copy read
    /// through the resource's version (its `apiVersion` and `kind` are those it was written
    /// with): for writers that do not need it.
    ///
    /// # Errors
    /// See [`Store::modify`].
    pub fn modify_shared(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let now = self.now();
        let mut inner = self.lock();
        let ns_str = if res.namespaced {
            ns.unwrap_or_default()
        } else {
            ""
        };
        // Read through the resource's version; most objects are stored that way already and
        // need no copy.
        let current = inner.get_arc(res, ns_str, name).map(|o| {
            if has_version(&o, res) {
                o
            } else {
                Arc::new(with_version(Value::clone(&o), res))
            }
        });
        let desired = f(current.as_deref())?;
        let result = match current {
            None => (inner.create(res, ns, desired, &now, opts.dry_run)?, true),
            Some(old) => (
                inner.update(res, ns_str, name, old, desired, part, &now, opts.dry_run)?,
                false,
            ),
        };
        if !opts.dry_run {
            self.flush(&mut inner);
        }
        Ok(result)
    }

    /// Deletes an object.
    ///
    /// # Errors
    /// NotFound, Conflict (failed preconditions).
    pub fn delete(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let now = self.now();
        let mut inner = self.lock();
        let ns = if res.namespaced {
            ns.unwrap_or_default()
        } else {
            ""
        };
        let out = inner.delete(res, ns, name, opts, &now, &self.config)?;
        if !opts.dry_run {
            self.flush(&mut inner);
        }
        Ok(match out {
            Deleted::Gone(v) => Deleted::Gone(with_version(v, res)),
            Deleted::Pending(v) => Deleted::Pending(with_version(v, res)),
        })
    }

    /// Deletes every object of a resource matching `opts` in `ns` (or everywhere).
    ///
    /// # Errors
    /// The first error of an individual delete.
    pub fn delete_collection(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let items = self
            .list(
                res,
                ns,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    ..list.clone()
                },
            )?
            .items;
        let mut out = Vec::new();
        for item in items {
            let name = item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = item["metadata"]["namespace"]
                .as_str()
                .map(ToString::to_string);
            match self.delete(res, ns.as_deref(), &name, opts) {
                Ok(Deleted::Gone(v) | Deleted::Pending(v)) => out.push(v),
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Subscribes to changes after `since` (a resourceVersion), or, with `None`, to the current
    /// state as synthetic ADDED events followed by live changes.
    ///
    /// # Errors
    /// Expired (410) when `since` is older than the history window.
    pub fn watch(&self, res: &ResourceDef, since: Option<u64>) -> Result<Subscription, ApiError> {
        let inner = self.lock();
        let changed = self.latest.subscribe();
        let key = res.storage_key();
        let initial = match since {
            None => inner
                .objects
                .get(&key)
                .into_iter()
                .flat_map(|m| m.values())
                .map(|o| {
                    Arc::new(WatchEvent {
                        rv: inner.rv,
                        kind: WatchEventType::Added,
                        group: res.group.clone(),
                        plural: res.plural.clone(),
                        namespace: o["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        object: o.clone(),
                        previous: None,
                        size: 0,
                    })
                })
                .collect(),
            Some(rv) => inner.changes_since(rv, Some(res))?,
        };
        Ok(Subscription {
            initial,
            changed,
            resource_version: inner.rv,
        })
    }

    /// The changes after resourceVersion `since`, oldest first, of one resource (or of all
    /// with `None`), and the store's resourceVersion they reach: a watcher or read cache that
    /// has seen everything up to `since` has seen everything up to the returned version once
    /// it has seen these.
    ///
    /// # Errors
    /// Expired (410) when changes after `since` have already left the history: the caller
    /// fell behind and has to list again.
    pub fn changes_since(
        &self,
        since: u64,
        res: Option<&ResourceDef>,
    ) -> Result<(Vec<Arc<WatchEvent>>, u64), ApiError> {
        let inner = self.lock();
        Ok((inner.changes_since(since, res)?, inner.rv))
    }

    /// Moves events produced under the lock to the history, drops what no longer fits, and
    /// wakes the watchers.
    fn flush(&self, inner: &mut Inner) {
        let pending: Vec<Arc<WatchEvent>> = inner.pending_events();
        if pending.is_empty() {
            return;
        }
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listeners.retain(|l| l.strong_count() > 0);
        let listeners: Vec<Arc<dyn ChangeListener>> =
            listeners.iter().filter_map(Weak::upgrade).collect();
        for ev in pending {
            if ev.kind == WatchEventType::Deleted && ev.group.is_empty() && ev.plural == "pods" {
                let name = ev.object["metadata"]["name"].as_str().unwrap_or_default();
                self.logs.remove_pod(&ev.namespace, name);
            }
            for listener in &listeners {
                listener.changed(&ev);
            }
            inner.history_bytes += ev.size;
            inner.history.push_back(ev);
        }
        while inner.history.len() > self.config.watch_history
            || inner.history_bytes > self.config.watch_history_bytes
        {
            let Some(old) = inner.history.pop_front() else {
                break;
            };
            inner.history_bytes -= old.size;
            inner.window_start = old.rv + 1;
        }
        self.latest.send_replace(inner.rv);
    }
}

/// How many bytes `v` takes serialized as JSON, without building the text.
fn serialized_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// Whether `obj` already has the `apiVersion` and `kind` it is read through.
fn has_version(obj: &Value, res: &ResourceDef) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some(res.kind.as_str())
        && obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|av| match av.split_once('/') {
                Some((group, version)) => group == res.group && version == res.version,
                None => res.group.is_empty() && av == res.version,
            })
}

/// Sets `apiVersion` to the version the object is read through.
fn with_version(mut obj: Value, res: &ResourceDef) -> Value {
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), json!(res.api_version()));
        m.insert("kind".into(), json!(res.kind));
    }
    obj
}

fn encode_continue(rv: u64, last: Option<&ObjKey>) -> String {
    let (ns, name) = last.cloned().unwrap_or_default();
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{ns}/{name}")}).to_string();
    base64(raw.as_bytes())
}

fn decode_continue(token: &str) -> Result<ObjKey, ApiError> {
    // k8s.io/apiserver/pkg/storage/continue.go wording.
    let bad =
        || ApiError::bad_request("continue key is not valid: illegal base64 data at input byte 0");
    let raw = unbase64(token).ok_or_else(bad)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
#[must_use]
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; `None` when the text is not base64.
#[must_use]
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|x| *x == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn new_uid(rng: &mut StdRng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b
        .iter()
        .flat_map(|x| [HEX[usize::from(x >> 4)], HEX[usize::from(x & 0x0f)]])
        .map(char::from)
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Five characters of `names.SimpleNameGenerator` (k8s.io/apiserver/pkg/storage/names).
fn random_suffix(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(ToString::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(obj: &mut Value, list: &[String]) {
    let m = defaults::child(obj, "metadata");
    if list.is_empty() {
        if let Value::Object(m) = m {
            m.remove("finalizers");
        }
    } else {
        m["finalizers"] = json!(list);
    }
}

/// Everything but metadata and status: a change here bumps `metadata.generation`.
fn spec_part(obj: &Value) -> impl Iterator<Item = (&String, &Value)> {
    obj.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
}

/// Whether two objects have the same [`spec_part`], compared in place.
fn same_spec(a: &Value, b: &Value) -> bool {
    spec_part(a).count() == spec_part(b).count() && spec_part(a).all(|(k, v)| b.get(k) == Some(v))
}

/// GC work items, processed until none is left.
#[derive(Debug)]
enum Task {
    DeleteDependents { uid: String, foreground: bool },
    OrphanDependents { uid: String },
    CheckOwner { uid: String },
    CheckNamespace { name: String },
    CheckCrd { name: String },
}

impl Inner {
    fn objects_of(&self, res: &ResourceDef) -> Option<&BTreeMap<ObjKey, Arc<Value>>> {
        self.objects.get(&res.storage_key())
    }

    fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(res, ns, name).map(AsRef::as_ref)
    }

    fn get_shared(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<&Arc<Value>> {
        let ns = if res.namespaced { ns } else { "" };
        self.objects_of(res)?
            .get(&(ns.to_string(), name.to_string()))
    }

    fn get_arc(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.get_shared(res, ns, name).cloned()
    }

    /// Stores a new state of an object and records the change, with the state it replaced.
    fn store(&mut self, res: &ResourceDef, key: ObjKey, stored: Arc<Value>, kind: WatchEventType) {
        let previous = self
            .objects
            .entry(res.storage_key())
            .or_default()
            .insert(key, stored.clone());
        self.emit(res, kind, stored, previous);
    }

    fn find_resource(&self, group: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn pending_events(&mut self) -> Vec<Arc<WatchEvent>> {
        std::mem::take(&mut self.pending)
    }

    /// See [`Store::changes_since`].
    fn changes_since(
        &self,
        since: u64,
        res: Option<&ResourceDef>,
    ) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        if since.saturating_add(1) < self.window_start {
            // staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go
            return Err(ApiError::expired(format!(
                "too old resource version: {since} ({})",
                self.window_start - 1
            )));
        }
        let from = self.history.partition_point(|e| e.rv <= since);
        Ok(self
            .history
            .range(from..)
            .filter(|e| res.is_none_or(|r| e.group == r.group && e.plural == r.plural))
            .cloned()
            .collect())
    }

    fn emit(
        &mut self,
        res: &ResourceDef,
        kind: WatchEventType,
        obj: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let ev = WatchEvent {
            rv: self.rv,
            kind,
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            size: serialized_size(&obj),
            object: obj,
            previous,
        };
        self.pending.push(Arc::new(ev));
    }

    fn namespace_state(&self, ns: &str) -> Option<bool> {
        let key = (String::new(), "namespaces".to_string());
        let obj = self
            .objects
            .get(&key)?
            .get(&(String::new(), ns.to_string()))?;
        Some(obj["metadata"]["deletionTimestamp"].is_string())
    }

    fn create(
        &mut self,
        res: &ResourceDef,
        ns: Option<&str>,
        mut obj: Value,
        now: &str,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                res.kind
            )));
        }
        check_type(res, &obj)?;
        let m = defaults::child(&mut obj, "metadata");
        let body_ns = m["namespace"].as_str().unwrap_or_default().to_string();
        let ns = if res.namespaced {
            let url_ns = ns.unwrap_or_default();
            if !body_ns.is_empty() && !url_ns.is_empty() && body_ns != url_ns {
                // k8s.io/apiserver/pkg/registry/rest/meta.go (EnsureObjectNamespaceMatchesRequestNamespace)
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let ns = if url_ns.is_empty() {
                body_ns
            } else {
                url_ns.to_string()
            };
            if ns.is_empty() {
                // A namespaced create without a namespace matches no route of the API server:
                // 404 with NewNotFound's generic text (k8s.io/apiserver/pkg/endpoints/handlers).
                return Err(ApiError::new(
                    Reason::NotFound,
                    "the server could not find the requested resource",
                ));
            }
            m["namespace"] = json!(ns);
            ns
        } else {
            if let Value::Object(mm) = m {
                mm.remove("namespace");
            }
            String::new()
        };
        // Admission (NamespaceLifecycle) runs before the registry generates a name, so a
        // generateName create is refused without one.
        if res.namespaced {
            let given = m["name"].as_str().unwrap_or_default();
            match self.namespace_state(&ns) {
                None => return Err(ApiError::namespace_not_found(&ns)),
                Some(true) => return Err(ApiError::namespace_terminating(res, given, &ns)),
                Some(false) => {}
            }
        }
        if m["name"].as_str().unwrap_or_default().is_empty()
            && let Some(prefix) = m["generateName"].as_str().filter(|p| !p.is_empty())
        {
            let mut candidate = format!("{prefix}{}", random_suffix(&mut self.rng));
            while self.get(res, &ns, &candidate).is_some() {
                candidate = format!("{prefix}{}", random_suffix(&mut self.rng));
            }
            m["name"] = json!(candidate);
        }
        let name = m["name"].as_str().unwrap_or_default().to_string();
        // System fields a client may not set on create.
        if let Value::Object(mm) = defaults::child(&mut obj, "metadata") {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "selfLink",
            ] {
                mm.remove(k);
            }
        }
        if res.status
            && !(res.group.is_empty() && res.plural == "nodes")
            && let Value::Object(mm) = &mut obj
        {
            mm.remove("status");
            // The built-in types' status is a struct, not a pointer, so the API server returns
            // `"status":{}` for a new object (encoding/json does not omit empty structs);
            // clients read fields of it without a nil check.
            if !res.custom {
                mm.insert("status".to_owned(), json!({}));
            }
        }
        defaults::apply(&res.group, &res.kind, &mut obj);
        let errs = validation::validate(&res.group, &res.kind, &obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(res, &name, errs));
        }
        if self.get(res, &ns, &name).is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        let uid = new_uid(&mut self.rng);
        {
            let m = defaults::child(&mut obj, "metadata");
            m["uid"] = json!(uid);
            m["creationTimestamp"] = json!(now);
            if res.generation {
                m["generation"] = json!(1);
            }
        }
        match (res.group.as_str(), res.kind.as_str()) {
            ("batch", "Job") => defaults::job_selector(&mut obj),
            ("", "Service") => self.allocate_service(&mut obj, &name, dry_run)?,
            ("", "PersistentVolumeClaim") => self.default_storage_class(&mut obj),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => establish_crd(&mut obj, now),
            _ => {}
        }
        if dry_run {
            return Ok(Arc::new(obj));
        }
        let rv = self.next_rv();
        defaults::child(&mut obj, "metadata")["resourceVersion"] = json!(rv.to_string());
        let obj = Arc::new(obj);
        self.store(
            res,
            (ns.clone(), name.clone()),
            obj.clone(),
            WatchEventType::Added,
        );
        self.uids
            .insert(uid, (res.storage_key(), (ns.clone(), name.clone())));
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            self.register_crd(&obj);
        }
        if res.group.is_empty() && res.kind == "Namespace" {
            // The service account controller creates `default` in every new namespace.
            if let Some(sa) = self.find_resource("", "serviceaccounts") {
                let _ = self.create(
                    &sa,
                    Some(&name),
                    json!({"metadata": {"name": "default"}}),
                    now,
                    false,
                );
            }
        }
        Ok(obj)
    }

    fn allocate_service(
        &mut self,
        obj: &mut Value,
        name: &str,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let spec = defaults::child(obj, "spec");
        let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        if ty != "ExternalName" {
            let ip = match spec["clusterIP"].as_str() {
                Some(ip) if !ip.is_empty() => ip.to_string(),
                _ => {
                    let n = self.next_cluster_ip;
                    if !dry_run {
                        self.next_cluster_ip += 1;
                    }
                    std::net::Ipv4Addr::from(n).to_string()
                }
            };
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
            if ip != "None" || spec["ipFamilies"].is_null() {
                defaults::default(spec, "ipFamilies", json!(["IPv4"]));
            }
            defaults::default(spec, "ipFamilyPolicy", json!("SingleStack"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            let mut next = self.next_node_port;
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if p["nodePort"].as_i64().unwrap_or(0) == 0 {
                        if next > 32767 {
                            return Err(ApiError::internal(&format!(
                                "failed to allocate a nodePort for service {name}: range is full"
                            )));
                        }
                        p["nodePort"] = json!(next);
                        next += 1;
                    }
                }
            }
            if !dry_run {
                self.next_node_port = next;
            }
        }
        Ok(())
    }

    fn default_storage_class(&self, obj: &mut Value) {
        // plugin/pkg/admission/storage/storageclass/setdefault: the class annotated default.
        if !obj["spec"]["storageClassName"].is_null() {
            return;
        }
        let key = ("storage.k8s.io".to_string(), "storageclasses".to_string());
        let default = self.objects.get(&key).and_then(|m| {
            m.values()
                .find(|sc| {
                    sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                        == "true"
                })
                .and_then(|sc| sc["metadata"]["name"].as_str().map(ToString::to_string))
        });
        if let Some(name) = default {
            defaults::child(obj, "spec")["storageClassName"] = json!(name);
        }
    }

    fn register_crd(&mut self, crd: &Value) {
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
        self.resources
            .extend(resources::from_crd(crd).into_iter().map(Arc::new));
    }

    fn unregister_crd(&mut self, crd: &Value) {
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
        self.objects.remove(&(group, plural));
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one write, as the API handler has them"
    )]
    fn update(
        &mut self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        old: Arc<Value>,
        mut new: Value,
        part: Part,
        now: &str,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                res.kind
            )));
        }
        check_type(res, &new)?;
        let body_name = new["metadata"]["name"].as_str().unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            // k8s.io/apiserver/pkg/endpoints/handlers/rest.go
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = new["metadata"]["namespace"].as_str().unwrap_or_default();
        if res.namespaced && !body_ns.is_empty() && body_ns != ns {
            // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (checkName), which the update
            // handler runs on the decoded object.
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({body_ns}) does not match the namespace on the request ({ns})"
            )));
        }
        let body_rv = new["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let old_rv = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !body_rv.is_empty() && body_rv != old_rv {
            return Err(ApiError::conflict(res, name, OPTIMISTIC_LOCK_MSG));
        }
        if body_rv.is_empty() && res.custom {
            // Custom resources do not allow unconditional updates.
            return Err(ApiError::invalid_resource(
                res,
                name,
                vec![FieldError::invalid_raw(
                    "metadata.resourceVersion",
                    "0x0",
                    "must be specified for an update",
                )],
            ));
        }
        match part {
            Part::Status => {
                // The stored object with the new status, without copying the old status.
                let status = new.get_mut("status").map_or(Value::Null, Value::take);
                let mut merged: serde_json::Map<String, Value> = old
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                merged.insert("status".into(), status);
                new = Value::Object(merged);
            }
            Part::Main => {
                if res.status
                    && let Value::Object(m) = &mut new
                {
                    match old.get("status") {
                        Some(s) => {
                            m.insert("status".into(), s.clone());
                        }
                        None => {
                            m.remove("status");
                        }
                    }
                }
            }
        }
        // System fields are kept from the stored object.
        {
            let old_meta = meta(&old).clone();
            let m = defaults::child(&mut new, "metadata");
            m["name"] = json!(name);
            if res.namespaced {
                m["namespace"] = json!(ns);
            }
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(k) {
                    Some(v) => m[k] = v.clone(),
                    None => {
                        if let Value::Object(mm) = m {
                            mm.remove(k);
                        }
                    }
                }
            }
        }
        defaults::apply(&res.group, &res.kind, &mut new);
        if res.group.is_empty() && res.kind == "Service" {
            // The allocated cluster IP is immutable; keep it when the client omitted it.
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if new["spec"][k].is_null() && !old["spec"][k].is_null() {
                    new["spec"][k] = old["spec"][k].clone();
                }
            }
            self.allocate_service(&mut new, name, dry_run)?;
        }
        if res.group == "apiextensions.k8s.io"
            && res.kind == "CustomResourceDefinition"
            && part == Part::Main
        {
            new["status"] = old["status"].clone();
            establish_crd(&mut new, now);
        }
        let mut errs = validation::validate(&res.group, &res.kind, &new);
        if part == Part::Main {
            errs.extend(validation::validate_update(
                &res.group, &res.kind, &old, &new,
            ));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(res, name, errs));
        }
        if res.generation && !same_spec(&old, &new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            defaults::child(&mut new, "metadata")["generation"] = json!(g);
        }
        // A no-op write changes nothing, not even the resourceVersion.
        defaults::child(&mut new, "metadata")["resourceVersion"] = json!(old_rv);
        if new == *old {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(new));
        }
        let rv = self.next_rv();
        defaults::child(&mut new, "metadata")["resourceVersion"] = json!(rv.to_string());
        let key = (
            if res.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let new = Arc::new(new);
        self.store(res, key.clone(), new.clone(), WatchEventType::Modified);
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            self.register_crd(&new);
        }
        // An object still in its grace period is not removed by an update
        // (`shouldDeleteDuringUpdate`, k8s.io/apiserver/pkg/registry/generic/registry/store.go).
        let in_grace = new["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|g| g > 0);
        if new["metadata"]["deletionTimestamp"].is_string()
            && finalizers(&new).is_empty()
            && !in_grace
        {
            self.remove(res, &key, now);
            self.run_gc(now);
        }
        Ok(new)
    }

    fn delete(
        &mut self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        now: &str,
        config: &StoreConfig,
    ) -> Result<Deleted, ApiError> {
        let Some(current) = self.get(res, ns, name).cloned() else {
            return Err(ApiError::not_found(res, name));
        };
        if let Some(uid) = &opts.uid
            && current["metadata"]["uid"].as_str() != Some(uid)
        {
            // k8s.io/apiserver/pkg/registry/rest/delete.go (BeforeDelete)
            return Err(ApiError::precondition_conflict(
                res,
                name,
                &format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    current["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && current["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            // k8s.io/apiserver/pkg/registry/rest/delete.go (BeforeDelete)
            return Err(ApiError::precondition_conflict(
                res,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    current["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                ),
            ));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(current));
        }
        let key = (ns.to_string(), name.to_string());
        if current["metadata"]["deletionTimestamp"].is_string() {
            // A pod in its grace period is removed by a second delete with a zero grace period
            // once nothing else holds it (the kubelet's final delete; `BeforeDelete` in
            // k8s.io/apiserver/pkg/registry/rest/delete.go shortens the grace period).
            let in_grace = current["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .is_some_and(|g| g > 0);
            if in_grace && opts.grace_period == Some(0) && finalizers(&current).is_empty() {
                let gone = self.remove(res, &key, now);
                self.run_gc(now);
                return Ok(Deleted::Gone(gone));
            }
            return Ok(Deleted::Pending(current));
        }
        let is_namespace = res.group.is_empty() && res.kind == "Namespace";
        let is_crd = res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition";
        let propagation = opts.propagation.unwrap_or(Propagation::Background);
        let mut obj = current.clone();
        let mut fins = finalizers(&obj);
        let mut graceful = None;
        if res.group.is_empty()
            && res.kind == "Pod"
            && config.graceful_pod_deletion
            && obj["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        {
            let grace = opts
                .grace_period
                .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30);
            if grace > 0 {
                graceful = Some(grace);
            }
        }
        match propagation {
            Propagation::Foreground if !fins.iter().any(|f| f == FOREGROUND) => {
                fins.push(FOREGROUND.to_string())
            }
            Propagation::Orphan if !fins.iter().any(|f| f == ORPHAN) => {
                fins.push(ORPHAN.to_string())
            }
            _ => {}
        }
        if is_crd
            && !fins
                .iter()
                .any(|f| f == "customresourcecleanup.apiextensions.k8s.io")
        {
            fins.push("customresourcecleanup.apiextensions.k8s.io".to_string());
        }
        if fins.is_empty() && graceful.is_none() && !is_namespace {
            let gone = self.remove(res, &key, now);
            self.run_gc(now);
            return Ok(Deleted::Gone(gone));
        }
        set_finalizers(&mut obj, &fins);
        {
            let m = defaults::child(&mut obj, "metadata");
            match graceful {
                Some(grace) => {
                    let at = crate::sim::clock::parse_time(now)
                        .and_then(|t| t.checked_add(jiff::SignedDuration::from_secs(grace)).ok())
                        .map_or_else(|| now.to_string(), format_time);
                    m["deletionTimestamp"] = json!(at);
                    m["deletionGracePeriodSeconds"] = json!(grace);
                }
                None => {
                    m["deletionTimestamp"] = json!(now);
                    m["deletionGracePeriodSeconds"] = json!(0);
                }
            }
        }
        if is_namespace {
            obj["status"]["phase"] = json!("Terminating");
        }
        if is_crd {
            set_condition(
                &mut obj,
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
                now,
            );
        }
        let rv = self.next_rv();
        defaults::child(&mut obj, "metadata")["resourceVersion"] = json!(rv.to_string());
        self.store(res, key, Arc::new(obj.clone()), WatchEventType::Modified);
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match propagation {
            Propagation::Foreground => self.tasks.push(Task::DeleteDependents {
                uid: uid.clone(),
                foreground: true,
            }),
            Propagation::Orphan => self.tasks.push(Task::OrphanDependents { uid: uid.clone() }),
            Propagation::Background => {}
        }
        if is_namespace {
            self.tasks.push(Task::CheckNamespace {
                name: name.to_string(),
            });
        }
        if is_crd {
            self.tasks.push(Task::CheckCrd {
                name: name.to_string(),
            });
        }
        self.tasks.push(Task::CheckOwner { uid });
        self.run_gc(now);
        let latest = self.get(res, ns, name).cloned();
        Ok(match latest {
            Some(v) => Deleted::Pending(v),
            None => Deleted::Pending(obj),
        })
    }

    /// Removes an object for good and queues the garbage collection it triggers.
    fn remove(&mut self, res: &ResourceDef, key: &ObjKey, _now: &str) -> Value {
        let Some(last) = self
            .objects
            .get_mut(&res.storage_key())
            .and_then(|m| m.remove(key))
        else {
            return Value::Null;
        };
        let mut obj = Arc::unwrap_or_clone(last);
        let rv = self.next_rv();
        defaults::child(&mut obj, "metadata")["resourceVersion"] = json!(rv.to_string());
        self.emit(res, WatchEventType::Deleted, Arc::new(obj.clone()), None);
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.uids.remove(&uid);
        self.tasks.push(Task::DeleteDependents {
            uid,
            foreground: false,
        });
        for owner in obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(owner_uid) = owner["uid"].as_str() {
                self.tasks.push(Task::CheckOwner {
                    uid: owner_uid.to_string(),
                });
            }
        }
        if !key.0.is_empty() && self.namespace_state(&key.0) == Some(true) {
            self.tasks.push(Task::CheckNamespace {
                name: key.0.clone(),
            });
        }
        if res.custom {
            let crd_name = format!("{}.{}", res.plural, res.group);
            self.tasks.push(Task::CheckCrd { name: crd_name });
        }
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            self.unregister_crd(&obj);
        }
        obj
    }

    /// Objects whose ownerReferences name `uid`.
    fn dependents(&self, uid: &str) -> Vec<(Arc<ResourceDef>, ObjKey, Value)> {
        let mut out = Vec::new();
        for (key, objects) in &self.objects {
            let Some(res) = self.find_resource(&key.0, &key.1) else {
                continue;
            };
            for (k, o) in objects {
                let owned = o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)));
                if owned {
                    out.push((res.clone(), k.clone(), Value::clone(o)));
                }
            }
        }
        out
    }

    fn by_uid(&self, uid: &str) -> Option<(Arc<ResourceDef>, ObjKey, Value)> {
        let (key, okey) = self.uids.get(uid)?;
        let res = self.find_resource(&key.0, &key.1)?;
        let obj = Value::clone(self.objects.get(key)?.get(okey)?);
        Some((res, okey.clone(), obj))
    }

    /// Runs queued garbage-collection work to a fixed point.
    fn run_gc(&mut self, now: &str) {
        // A deletion made by a task queues its own follow-up tasks; the loop below that is
        // already running takes them. Running them here instead would recurse once per object
        // (a namespace with thousands of events overflowed the stack).
        if self.gc_running {
            return;
        }
        self.gc_running = true;
        self.run_gc_tasks(now);
        self.gc_running = false;
    }

    fn run_gc_tasks(&mut self, now: &str) {
        let config = StoreConfig {
            graceful_pod_deletion: false,
            ..StoreConfig::default()
        };
        while let Some(task) = self.tasks.pop() {
            match task {
                Task::DeleteDependents { uid, foreground } => {
                    let propagation = if foreground {
                        Propagation::Foreground
                    } else {
                        Propagation::Background
                    };
                    for (res, key, _) in self.dependents(&uid) {
                        let opts = DeleteOptions {
                            propagation: Some(propagation),
                            ..DeleteOptions::default()
                        };
                        let _ = self.delete(&res, &key.0, &key.1, &opts, now, &config);
                    }
                }
                Task::OrphanDependents { uid } => {
                    for (res, key, mut new) in self.dependents(&uid) {
                        if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"].as_str() != Some(&uid));
                            if refs.is_empty()
                                && let Value::Object(m) = &mut new["metadata"]
                            {
                                m.remove("ownerReferences");
                            }
                        }
                        self.rewrite(&res, &key, new, now);
                    }
                    self.drop_finalizer(&uid, ORPHAN, now);
                }
                Task::CheckOwner { uid } => {
                    let Some((_, _, owner)) = self.by_uid(&uid) else {
                        continue;
                    };
                    if !finalizers(&owner).iter().any(|f| f == FOREGROUND) {
                        continue;
                    }
                    let blocking = self.dependents(&uid).iter().any(|(_, _, d)| {
                        d["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| {
                                r["uid"].as_str() == Some(uid.as_str())
                                    && r["blockOwnerDeletion"] == Value::Bool(true)
                            })
                    });
                    if !blocking {
                        self.drop_finalizer(&uid, FOREGROUND, now);
                    }
                }
                Task::CheckNamespace { name } => self.finalize_namespace(&name, now, &config),
                Task::CheckCrd { name } => self.finalize_crd(&name, now, &config),
            }
        }
    }

    /// Stores a changed object outside the validation path (GC bookkeeping).
    fn rewrite(&mut self, res: &ResourceDef, key: &ObjKey, mut new: Value, now: &str) {
        let rv = self.next_rv();
        defaults::child(&mut new, "metadata")["resourceVersion"] = json!(rv.to_string());
        let new = Arc::new(new);
        self.store(res, key.clone(), new.clone(), WatchEventType::Modified);
        // An object still in its grace period is not removed by an update
        // (`shouldDeleteDuringUpdate`, k8s.io/apiserver/pkg/registry/generic/registry/store.go).
        let in_grace = new["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|g| g > 0);
        if new["metadata"]["deletionTimestamp"].is_string()
            && finalizers(&new).is_empty()
            && !in_grace
        {
            self.remove(res, key, now);
        }
    }

    fn drop_finalizer(&mut self, uid: &str, finalizer: &str, now: &str) {
        let Some((res, key, old)) = self.by_uid(uid) else {
            return;
        };
        let mut fins = finalizers(&old);
        if !fins.iter().any(|f| f == finalizer) {
            return;
        }
        fins.retain(|f| f != finalizer);
        let mut new = old;
        set_finalizers(&mut new, &fins);
        self.rewrite(&res, &key, new, now);
    }

    fn finalize_namespace(&mut self, name: &str, now: &str, config: &StoreConfig) {
        let Some(ns_res) = self.find_resource("", "namespaces") else {
            return;
        };
        let Some(ns_obj) = self.get(&ns_res, "", name).cloned() else {
            return;
        };
        if !ns_obj["metadata"]["deletionTimestamp"].is_string() {
            return;
        }
        let mut remaining = false;
        let keys: Vec<Key> = self.objects.keys().cloned().collect();
        for key in keys {
            let Some(res) = self.find_resource(&key.0, &key.1) else {
                continue;
            };
            if !res.namespaced {
                continue;
            }
            let names: Vec<ObjKey> = self
                .objects
                .get(&key)
                .map(|m| m.keys().filter(|k| k.0 == name).cloned().collect())
                .unwrap_or_default();
            for k in names {
                remaining = true;
                let already = self
                    .get(&res, &k.0, &k.1)
                    .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string());
                if !already {
                    let _ = self.delete(&res, &k.0, &k.1, &DeleteOptions::default(), now, config);
                }
            }
        }
        let still_there = self.objects.iter().any(|(key, m)| {
            self.find_resource(&key.0, &key.1)
                .is_some_and(|r| r.namespaced)
                && m.keys().any(|k| k.0 == name)
        });
        if remaining && still_there {
            return;
        }
        // The namespace controller removes its `kubernetes` finalizer once the namespace is empty.
        let mut new = ns_obj.clone();
        if let Some(list) = new["spec"]["finalizers"].as_array_mut() {
            list.retain(|f| f != "kubernetes");
        }
        let key = (String::new(), name.to_string());
        if finalizers(&new).is_empty() {
            self.remove(&ns_res, &key, now);
        } else if new != ns_obj {
            self.rewrite(&ns_res, &key, new, now);
        }
    }

    fn finalize_crd(&mut self, name: &str, now: &str, config: &StoreConfig) {
        let Some(crd_res) = self.find_resource("apiextensions.k8s.io", "customresourcedefinitions")
        else {
            return;
        };
        let Some(crd) = self.get(&crd_res, "", name).cloned() else {
            return;
        };
        if !crd["metadata"]["deletionTimestamp"].is_string() {
            return;
        }
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(res) = self.find_resource(&group, &plural) {
            let keys: Vec<ObjKey> = self
                .objects
                .get(&res.storage_key())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for k in &keys {
                let already = self
                    .get(&res, &k.0, &k.1)
                    .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string());
                if !already {
                    let _ = self.delete(&res, &k.0, &k.1, &DeleteOptions::default(), now, config);
                }
            }
            if self
                .objects
                .get(&res.storage_key())
                .is_some_and(|m| !m.is_empty())
            {
                return;
            }
        }
        let uid = crd["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.drop_finalizer(&uid, "customresourcecleanup.apiextensions.k8s.io", now);
    }
}

/// Checks `apiVersion`/`kind` of a body against the resource it was sent to.
fn check_type(res: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if let Some(m) = obj
        .get("metadata")
        .filter(|m| !m.is_object() && !m.is_null())
    {
        // The typed decoder's error (encoding/json UnmarshalTypeError, as sigs.k8s.io/json
        // reports it) wrapped by k8s.io/apiserver/pkg/endpoints/handlers/rest.go
        // (transformDecodeError).
        return Err(ApiError::bad_request(format!(
            "{kind} in version {} cannot be handled as a {kind}: json: cannot unmarshal {} into Go struct field {kind}.metadata of type v1.ObjectMeta",
            error::go_quote(&res.version),
            go_json_type(m),
            kind = res.kind,
        )));
    }
    if let Some(av) = obj["apiVersion"].as_str().filter(|s| !s.is_empty())
        && av != res.api_version()
    {
        // k8s.io/apiserver/pkg/endpoints/handlers/create.go
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let Some(kind) = obj["kind"].as_str().filter(|s| !s.is_empty())
        && kind != res.kind
    {
        // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (transformDecodeError)
        return Err(ApiError::bad_request(format!(
            "{kind} in version {} cannot be handled as a {}",
            error::go_quote(&res.version),
            res.kind
        )));
    }
    Ok(())
}

/// How encoding/json names the JSON type of a value in its errors.
fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Sets or replaces one condition in `status.conditions`.
fn set_condition(obj: &mut Value, ty: &str, status: &str, reason: &str, message: &str, now: &str) {
    let conditions = defaults::child(obj, "status");
    let list = conditions
        .as_object_mut()
        .map(|m| m.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(list)) = list else {
        return;
    };
    let cond = json!({"type": ty, "status": status, "lastTransitionTime": now, "reason": reason, "message": message});
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(existing) => {
            if existing["status"] != status {
                *existing = cond;
            }
        }
        None => list.push(cond),
    }
}

/// Marks a CustomResourceDefinition established, as the apiextensions controllers do
/// (apiextensions-apiserver/pkg/controller/establish and .../status/naming_controller.go).
fn establish_crd(crd: &mut Value, now: &str) {
    let names = crd["spec"]["names"].clone();
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == Value::Bool(true))
        .map(|v| v["name"].clone())
        .collect();
    set_condition(
        crd,
        "NamesAccepted",
        "True",
        "NoConflicts",
        "no conflicts found",
        now,
    );
    set_condition(
        crd,
        "Established",
        "True",
        "InitialNamesAccepted",
        "the initial names have been accepted",
        now,
    );
    let status = defaults::child(crd, "status");
    status["acceptedNames"] = names;
    let mut all: Vec<Value> = status["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in stored {
        if !all.contains(&v) {
            all.push(v);
        }
    }
    status["storedVersions"] = Value::Array(all);
}

#[cfg(test)]
mod tests;
