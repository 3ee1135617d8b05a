//! Work queues: each controller reconciles only the objects whose inputs changed, as a real
//! controller's watch-driven work queue does, instead of every object every round.
//!
//! A queue remembers, for every key (namespace and name of the object a controller
//! reconciles), what its last reconcile read through the [`Informers`] (an object, a list, the
//! objects one owner controls) and when it asked to be woken. A key is queued when its own
//! object changes, when a change touches something it read (a Deployment when one of its
//! ReplicaSets or their pods changes, a ReplicaSet when one of its pods or an orphan in its
//! namespace changes, a Service when a pod in its namespace changes, ...), or when its wake-up
//! time has come. Deriving the dependencies from the reads, rather than writing them down per
//! controller, keeps them exact: a reconcile whose inputs did not change would return what it
//! returned last time, which was already applied.
//!
//! Time matters too. A key whose reconcile asked to be woken is waiting on the clock (a
//! progress deadline, `minReadySeconds`, a back-off): it is queued at every new instant, not
//! only at the one it asked for, as its reconcile may see the time it waits for from a little
//! before. A key with a write the store refused is queued again at the next pass, and a key
//! whose sync failed and waits for its retry ([`Retries`], kept by the engine's failed-sync
//! bookkeeping) is queued when the retry is due, as a real work queue requeues a sync that
//! returned an error after its back-off.
//!
//! Queued keys are reconciled in namespace/name order against the same state, and their
//! effects applied in that order afterwards (by the engine): what reconciling every object
//! would have done, since the others would have had nothing to do. Controllers that look at
//! the whole cluster at once use a queue with a single key.
//!
//! The unit tests check this on every pass, and so does any build run with
//! `RELAPSE_CHECK_QUEUES=1` (`just check-queues` runs the sim scenarios so): they also
//! reconcile the keys that were not queued and panic if one of them would have changed
//! anything, proving the derived dependencies complete. It is off otherwise, as it costs a
//! reconcile of every object on every pass, what the queues exist to save.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;

use super::view::{ConsumerId, Read, ResourceId, StoreView};
use crate::sim::controllers::{ClusterView as _, Reconciled, meta};

/// The namespace and name of the object a controller reconciles.
pub type Key = (String, String);

/// What a queue remembers about one key.
#[derive(Debug, Default)]
struct Seen {
    /// What its last reconcile read.
    reads: Vec<Read>,
    /// When it asked to be woken.
    wake: Option<Timestamp>,
    /// When it was last reconciled.
    synced: Timestamp,
}

/// The work queue of one controller.
#[derive(Debug)]
pub struct WorkQueue {
    /// The kind the keys are objects of; `None` for a queue with a single key.
    primary: Option<(&'static str, &'static str)>,
    /// Where the queue reads the change journal, once started.
    consumer: Option<ConsumerId>,
    primary_res: Option<ResourceId>,
    seen: BTreeMap<Key, Seen>,
    /// Keys by what they read.
    readers: HashMap<Read, BTreeSet<Key>>,
    /// How many entries of `readers` each resource has: changes to others are skipped.
    watched: HashMap<ResourceId, usize>,
    /// Wake-ups, earliest first.
    timers: BTreeSet<(Timestamp, Key)>,
    /// Keys that read a kind the cluster does not serve: they are reconciled every pass.
    volatile: BTreeSet<Key>,
    dirty: BTreeSet<Key>,
    /// The instant of the last pass.
    last_pass: Option<Timestamp>,
    /// The keys of the last pass with how many effects each returned, in the order returned.
    returned: Vec<(Key, usize)>,
    /// Whether to check that the keys not queued have nothing to do (debug builds).
    verify: bool,
}

impl WorkQueue {
    /// A queue of the objects of one kind (`apps/v1`, `Deployment`).
    #[must_use]
    pub fn of(api_version: &'static str, kind: &'static str) -> Self {
        Self::new(Some((api_version, kind)))
    }

    /// A queue with a single key, for a controller that looks at the whole cluster at once.
    #[must_use]
    pub fn single() -> Self {
        Self::new(None)
    }

    fn new(primary: Option<(&'static str, &'static str)>) -> Self {
        Self {
            primary,
            consumer: None,
            primary_res: None,
            seen: BTreeMap::new(),
            readers: HashMap::new(),
            watched: HashMap::new(),
            timers: BTreeSet::new(),
            volatile: BTreeSet::new(),
            dirty: BTreeSet::new(),
            last_pass: None,
            returned: Vec::new(),
            verify: cfg!(test) || check_requested(),
        }
    }

    /// Reconciles the queued keys in namespace/name order, each with `reconcile` on a view
    /// that notes its reads, and returns their effects in that order, to be applied; tell
    /// the queue which of them the store refused with [`Self::refused`]. The wake-ups they
    /// ask for stay with the queue ([`Self::next_wake`], [`Self::due`]).
    pub fn run(
        &mut self,
        view: &StoreView<'_>,
        now: Timestamp,
        retries: &Retries,
        mut reconcile: impl FnMut(&StoreView<'_>, &Key) -> Reconciled,
    ) -> Reconciled {
        self.collect(view);
        let waiting: Vec<Key> = if self.last_pass.is_some_and(|t| t < now) {
            self.timers.iter().map(|(_, key)| key.clone()).collect()
        } else {
            self.timers
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, key)| key.clone())
                .collect()
        };
        self.last_pass = Some(now);
        self.dirty.extend(waiting);
        self.dirty.extend(self.volatile.iter().cloned());
        self.dirty.extend(retries.due.iter().cloned());
        if self.verify {
            self.verify_unqueued(view, now, retries, &mut reconcile);
        }
        self.returned.clear();
        let mut all = Reconciled::default();
        for key in std::mem::take(&mut self.dirty) {
            if let Some((api_version, kind)) = self.primary
                && !view.contains(api_version, kind, &key.0, &key.1)
            {
                // Gone: nothing to reconcile, nothing to remember.
                self.forget(&key);
                continue;
            }
            let reads = RefCell::new(Vec::new());
            let out = reconcile(&view.tracking(&reads), &key);
            self.remember(key.clone(), reads.into_inner(), out.requeue_at, now);
            if !out.effects.is_empty() {
                self.returned.push((key, out.effects.len()));
            }
            // The wake-ups are the queue's: they are not handed on.
            all.effects.extend(out.effects);
        }
        all
    }

    /// Queues every key at the next pass: what they read outside the cluster's objects (the
    /// LoadBalancer implementation) changed.
    pub fn requeue_all(&mut self) {
        self.dirty.extend(self.seen.keys().cloned());
    }

    /// Notes the effects of the last [`Self::run`] (by position) that the store refused:
    /// their keys are reconciled again at the next pass.
    pub fn refused(&mut self, effects: &BTreeSet<usize>) {
        let mut start = 0;
        for (key, n) in &self.returned {
            if effects.range(start..start + n).next().is_some() {
                self.dirty.insert(key.clone());
            }
            start += n;
        }
    }

    /// Reconciles every key that is not queued and panics if one would change something or
    /// ask for another wake-up: its dependencies were not what the queue thinks. Keys waiting
    /// for the retry of a failed sync are passed over: their effects would not be applied.
    fn verify_unqueued(
        &mut self,
        view: &StoreView<'_>,
        now: Timestamp,
        retries: &Retries,
        reconcile: &mut impl FnMut(&StoreView<'_>, &Key) -> Reconciled,
    ) {
        let all: Vec<Key> = match self.primary {
            Some((api_version, kind)) => view
                .list(api_version, kind, None)
                .iter()
                .map(|o| key_of(o))
                .collect(),
            None => vec![Key::default()],
        };
        let unqueued: Vec<Key> = all
            .into_iter()
            .filter(|k| !self.dirty.contains(k) && !retries.waiting.contains(k))
            .collect();
        for key in &unqueued {
            let out = reconcile(view, key);
            let wake = self.seen.get(key).and_then(|s| s.wake);
            let same_wake = out.requeue_at == wake
                || out.requeue_at.is_none_or(|w| w <= now) && wake.is_none_or(|w| w <= now);
            if out.effects.is_empty() && same_wake {
                continue;
            }
            // Events a controller records at every sync of a key (a CronJob's
            // `JobAlreadyActive` while its Job runs) repeat when the key is synced again in the
            // instant it was just synced in; the queue rightly did not sync it twice.
            let events_only = out
                .effects
                .iter()
                .all(|e| matches!(e, crate::sim::controllers::Effect::Event(_)));
            let synced_now = self.seen.get(key).is_some_and(|s| s.synced == now);
            if events_only && synced_now && same_wake {
                continue;
            }
            // A write that came in since the queue looked (from a client of a served cluster)
            // queues the key now: not a miss.
            self.collect(view);
            assert!(
                self.dirty.contains(key),
                "the work queue of {:?} missed {key:?} at {now} (last synced at {:?}): not \
                 queued, but its reconcile asks for {:?} instead of {wake:?} and would do {:#?}",
                self.primary,
                self.seen.get(key).map(|s| s.synced),
                out.requeue_at,
                out.effects,
            );
        }
    }

    /// The earliest wake-up after `now`.
    #[must_use]
    pub fn next_wake(&self, now: Timestamp) -> Option<Timestamp> {
        self.timers.iter().map(|(at, _)| *at).find(|at| *at > now)
    }

    /// Whether a wake-up is due at `now` (or was due before and asked again).
    #[must_use]
    pub fn due(&self, now: Timestamp) -> bool {
        self.timers.first().is_some_and(|(at, _)| *at <= now)
    }

    /// Queues the keys that changed since the last look. The first look queues every key.
    fn collect(&mut self, view: &StoreView<'_>) {
        let informers = view.informers();
        let store = view.store();
        let consumer = match self.consumer {
            Some(c) => c,
            None => {
                // From here on every change is journaled for this queue; then everything
                // there is now is queued.
                let c = informers.subscribe();
                self.consumer = Some(c);
                match self.primary {
                    Some((api_version, kind)) => {
                        self.primary_res = informers.resource_id(store, api_version, kind);
                        for obj in view.list(api_version, kind, None) {
                            self.dirty.insert(key_of(&obj));
                        }
                    }
                    None => {
                        self.dirty.insert(Key::default());
                    }
                }
                c
            }
        };
        let Self {
            primary_res,
            readers,
            watched,
            dirty,
            ..
        } = self;
        informers.changes(consumer, |change| {
            if Some(change.res) == *primary_res {
                dirty.insert((change.namespace.clone(), change.name.clone()));
            }
            if !watched.contains_key(&change.res) {
                return;
            }
            for read in &change.reads {
                if let Some(keys) = readers.get(read) {
                    dirty.extend(keys.iter().cloned());
                }
            }
        });
    }

    fn forget(&mut self, key: &Key) {
        if let Some(seen) = self.seen.remove(key) {
            self.unindex(key, &seen);
        }
    }

    fn unindex(&mut self, key: &Key, seen: &Seen) {
        for read in &seen.reads {
            if let Some(keys) = self.readers.get_mut(read) {
                keys.remove(key);
                if keys.is_empty() {
                    self.readers.remove(read);
                    if let Some(res) = read.resource()
                        && let Some(n) = self.watched.get_mut(&res)
                    {
                        *n -= 1;
                        if *n == 0 {
                            self.watched.remove(&res);
                        }
                    }
                }
            }
        }
        if let Some(at) = seen.wake {
            self.timers.remove(&(at, key.clone()));
        }
        self.volatile.remove(key);
    }

    fn remember(
        &mut self,
        key: Key,
        mut reads: Vec<Read>,
        wake: Option<Timestamp>,
        synced: Timestamp,
    ) {
        reads.sort_unstable();
        reads.dedup();
        if let Some(seen) = self.seen.get_mut(&key)
            && seen.reads == reads
        {
            // Read the same as last time (the usual case): only the wake-up may move.
            seen.synced = synced;
            if seen.wake != wake {
                if let Some(at) = seen.wake {
                    self.timers.remove(&(at, key.clone()));
                }
                if let Some(at) = wake {
                    self.timers.insert((at, key.clone()));
                }
                seen.wake = wake;
            }
            return;
        }
        if let Some(old) = self.seen.remove(&key) {
            self.unindex(&key, &old);
        }
        for read in &reads {
            if *read == Read::Unserved {
                self.volatile.insert(key.clone());
            } else {
                let keys = self.readers.entry(read.clone()).or_default();
                if keys.is_empty()
                    && let Some(res) = read.resource()
                {
                    *self.watched.entry(res).or_default() += 1;
                }
                keys.insert(key.clone());
            }
        }
        if let Some(at) = wake {
            self.timers.insert((at, key.clone()));
        }
        self.seen.insert(
            key,
            Seen {
                reads,
                wake,
                synced,
            },
        );
    }
}

/// What the engine's failed-sync bookkeeping says about a controller's keys at one pass.
#[derive(Debug, Default)]
pub struct Retries {
    /// Keys whose failed sync is due again (its back-off is over, or what it made changed).
    pub due: Vec<Key>,
    /// Keys whose failed sync waits for its retry: whatever they return is not applied.
    pub waiting: BTreeSet<Key>,
}

/// Whether `RELAPSE_CHECK_QUEUES` asks for the check of every pass (read once).
fn check_requested() -> bool {
    static REQUESTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REQUESTED.get_or_init(|| {
        std::env::var_os("RELAPSE_CHECK_QUEUES").is_some_and(|v| !v.is_empty() && v != "0")
    })
}

fn key_of(obj: &serde_json::Value) -> Key {
    (
        meta::namespace(obj).unwrap_or_default().to_owned(),
        meta::name(obj).to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::Timestamp;
    use serde_json::{Value, json};

    use super::{Key, Retries, WorkQueue};
    use crate::sim::clock::{Clock, ManualClock};
    use crate::sim::controllers::{ClusterView, Effect, Reconciled};
    use crate::sim::engine::view::{Informers, StoreView};
    use crate::sim::store::{DeleteOptions, Part, Store, StoreConfig, WriteOptions};

    fn t0() -> Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    fn store(config: StoreConfig) -> Store {
        Store::new(Arc::new(ManualClock::new(t0())) as Arc<dyn Clock>, config)
    }

    fn create(store: &Store, plural: &str, obj: Value) -> Value {
        let group = if plural == "pods" { "" } else { "apps" };
        let res = store.resource(group, "v1", plural).unwrap();
        store
            .create(&res, Some("default"), obj, &WriteOptions::default())
            .unwrap()
    }

    fn label(store: &Store, plural: &str, name: &str, value: &str) {
        let group = if plural == "pods" { "" } else { "apps" };
        let res = store.resource(group, "v1", plural).unwrap();
        store
            .modify(
                &res,
                Some("default"),
                name,
                Part::Main,
                &WriteOptions::default(),
                |cur| {
                    let mut o = cur.unwrap().clone();
                    o["metadata"]["labels"]["touched"] = json!(value);
                    Ok(o)
                },
            )
            .unwrap();
    }

    fn rs(name: &str) -> Value {
        json!({"metadata": {"name": name},
               "spec": {"selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(name: &str, owner: Option<&Value>) -> Value {
        let mut p = json!({"metadata": {"name": name},
                           "spec": {"containers": [{"name": "c", "image": "i"}]}});
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "controller": true}]);
        }
        p
    }

    /// Runs the queue with a reconcile that reads what a ReplicaSet controller reads and
    /// returns the keys it was called for; writes to `c` fail.
    fn pass(queue: &mut WorkQueue, view: &StoreView<'_>, now: Timestamp) -> Vec<String> {
        let called = std::cell::RefCell::new(Vec::new());
        let out = queue.run(view, now, &Retries::default(), |v, key: &Key| {
            called.borrow_mut().push(key.1.clone());
            let rs = v
                .get("apps/v1", "ReplicaSet", Some(&key.0), &key.1)
                .unwrap();
            let uid = rs["metadata"]["uid"].as_str().unwrap();
            v.list_controlled("v1", "Pod", Some(&key.0), uid, true);
            let mut out = Reconciled::default();
            let wake = t0() + jiff::SignedDuration::from_secs(30);
            if key.1 == "b" && now < wake {
                out.wake_at(wake);
            }
            if rs["metadata"]["labels"]["fail"] == "yes" {
                out.push(Effect::UpdateStatus(Value::clone(&rs)));
            }
            out
        });
        let refused = out
            .effects
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Effect::UpdateStatus(o) if o["metadata"]["name"] == "c"))
            .map(|(i, _)| i)
            .collect();
        queue.refused(&refused);
        called.into_inner()
    }

    #[test]
    fn reconciles_only_keys_whose_reads_changed() {
        let store = store(StoreConfig::default());
        let informers = Informers::follow(&store);
        let view = StoreView::new(&store, &informers, &[]);
        let a = create(&store, "replicasets", rs("a"));
        let b = create(&store, "replicasets", rs("b"));
        create(&store, "replicasets", rs("c"));
        let mut queue = WorkQueue::of("apps/v1", "ReplicaSet");
        queue.verify = false;
        assert_eq!(pass(&mut queue, &view, t0()), ["a", "b", "c"]);
        assert!(pass(&mut queue, &view, t0()).is_empty());

        // A pod of `b`: only `b`. An orphan: everyone who may adopt it.
        create(&store, "pods", pod("b-1", Some(&b)));
        assert_eq!(pass(&mut queue, &view, t0()), ["b"]);
        create(&store, "pods", pod("loose", None));
        assert_eq!(pass(&mut queue, &view, t0()), ["a", "b", "c"]);
        // The ReplicaSet itself, and a pod moving from one owner to another: both.
        label(&store, "replicasets", "c", "1");
        assert_eq!(pass(&mut queue, &view, t0()), ["c"]);
        let pods = store.resource("", "v1", "pods").unwrap();
        store
            .modify(
                &pods,
                Some("default"),
                "b-1",
                Part::Main,
                &WriteOptions::default(),
                |cur| {
                    let mut p = cur.unwrap().clone();
                    p["metadata"]["ownerReferences"][0]["uid"] = a["metadata"]["uid"].clone();
                    p["metadata"]["ownerReferences"][0]["name"] = json!("a");
                    Ok(p)
                },
            )
            .unwrap();
        assert_eq!(pass(&mut queue, &view, t0()), ["a", "b"]);

        // A wake-up: `b` asked for one 30 s later. It waits on the clock, so it is looked at
        // at every new instant until then, but only once per instant.
        let later = t0() + jiff::SignedDuration::from_secs(30);
        let between = t0() + jiff::SignedDuration::from_secs(10);
        assert_eq!(queue.next_wake(t0()), Some(later));
        assert!(!queue.due(t0()));
        assert!(queue.due(later));
        assert_eq!(pass(&mut queue, &view, between), ["b"]);
        assert!(pass(&mut queue, &view, between).is_empty());
        assert_eq!(pass(&mut queue, &view, later), ["b"]);

        // A reconcile whose writes fail runs again at the next pass, and the one after.
        label(&store, "replicasets", "c", "fail");
        let rss = store.resource("apps", "v1", "replicasets").unwrap();
        store
            .modify(
                &rss,
                Some("default"),
                "c",
                Part::Main,
                &WriteOptions::default(),
                |cur| {
                    let mut o = cur.unwrap().clone();
                    o["metadata"]["labels"]["fail"] = json!("yes");
                    Ok(o)
                },
            )
            .unwrap();
        assert_eq!(pass(&mut queue, &view, later), ["c"]);
        assert_eq!(pass(&mut queue, &view, later), ["c"]);
        store
            .modify(
                &rss,
                Some("default"),
                "c",
                Part::Main,
                &WriteOptions::default(),
                |cur| {
                    let mut o = cur.unwrap().clone();
                    o["metadata"]["labels"]["fail"] = json!("no");
                    Ok(o)
                },
            )
            .unwrap();
        assert_eq!(pass(&mut queue, &view, later), ["c"]);
        assert!(pass(&mut queue, &view, later).is_empty());

        // A deleted key is forgotten, with its wake-up.
        store
            .delete(&rss, Some("default"), "b", &DeleteOptions::default())
            .unwrap();
        assert!(pass(&mut queue, &view, later).is_empty());
        assert_eq!(queue.next_wake(t0()), None);
        label(&store, "pods", "b-1", "2");
        assert_eq!(pass(&mut queue, &view, later), ["a"]);
    }

    #[test]
    fn the_caches_follow_every_change_whatever_the_watch_history_keeps() {
        let store = store(StoreConfig {
            watch_history: 4,
            ..StoreConfig::default()
        });
        let informers = Informers::follow(&store);
        let view = StoreView::new(&store, &informers, &[]);
        let sets: Vec<Value> = (0..3)
            .map(|i| create(&store, "replicasets", rs(&format!("r{i}"))))
            .collect();
        let mut queue = WorkQueue::of("apps/v1", "ReplicaSet");
        queue.verify = false;
        assert_eq!(pass(&mut queue, &view, t0()), ["r0", "r1", "r2"]);
        // More changes than the history keeps: a pod of r2, then unrelated churn.
        create(&store, "pods", pod("p", Some(&sets[2])));
        for i in 0..10 {
            create(
                &store,
                "pods",
                pod(
                    &format!("other-{i}"),
                    Some(&json!({"metadata": {"name": "x", "uid": "x"}})),
                ),
            );
        }
        assert_eq!(pass(&mut queue, &view, t0()), ["r2"]);
        assert_eq!(
            view.list("v1", "Pod", Some("default")).len(),
            11,
            "the cache has every pod"
        );
    }

    #[test]
    #[should_panic(expected = "missed")]
    fn the_check_catches_a_reconcile_that_depends_on_something_it_did_not_read() {
        let store = store(StoreConfig::default());
        let informers = Informers::follow(&store);
        let view = StoreView::new(&store, &informers, &[]);
        create(&store, "replicasets", rs("a"));
        let mut queue = WorkQueue::of("apps/v1", "ReplicaSet");
        queue.verify = true;
        let hidden = std::cell::Cell::new(false);
        let run = |queue: &mut WorkQueue| {
            queue.run(&view, t0(), &Retries::default(), |v, key: &Key| {
                let rs = v
                    .get("apps/v1", "ReplicaSet", Some(&key.0), &key.1)
                    .unwrap();
                let mut out = Reconciled::default();
                if hidden.get() {
                    out.push(Effect::UpdateStatus(rs));
                }
                out
            });
        };
        run(&mut queue);
        run(&mut queue);
        hidden.set(true);
        run(&mut queue);
    }

    #[test]
    fn failed_syncs_are_queued_when_due_and_passed_over_while_they_wait() {
        let store = store(StoreConfig::default());
        let informers = Informers::follow(&store);
        let view = StoreView::new(&store, &informers, &[]);
        create(&store, "replicasets", rs("a"));
        create(&store, "replicasets", rs("b"));
        let mut queue = WorkQueue::of("apps/v1", "ReplicaSet");
        queue.verify = true;
        let key = |name: &str| ("default".to_owned(), name.to_owned());
        // Both would write again (their last sync failed): `a` waits for its retry, `b`'s is due.
        let mut run = |retries: &Retries| {
            let called = std::cell::RefCell::new(Vec::new());
            queue.run(&view, t0(), retries, |v, k: &Key| {
                called.borrow_mut().push(k.1.clone());
                let rs = v.get("apps/v1", "ReplicaSet", Some(&k.0), &k.1).unwrap();
                let mut out = Reconciled::default();
                out.push(Effect::UpdateStatus(rs));
                out
            });
            called.into_inner()
        };
        assert_eq!(run(&Retries::default()), ["a", "b"]);
        let retries = Retries {
            due: vec![key("b")],
            waiting: [key("a")].into(),
        };
        // The check passes `a` over (its writes would not be applied) and `b` is synced again
        // though nothing it read changed.
        assert_eq!(run(&retries), ["b"]);
        let both_wait = Retries {
            due: Vec::new(),
            waiting: [key("a"), key("b")].into(),
        };
        assert!(run(&both_wait).is_empty());
    }
}
