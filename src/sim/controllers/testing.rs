//! A minimal in-memory cluster for the controllers' unit tests: it stores objects, applies
//! effects the way an API server would (UIDs, generation, creation time) and keeps events.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::{ClusterView, Effect, NameGen, Reconciled};
use crate::sim::events::Event;

type Key = (String, String, String, String);

fn key_of(obj: &Value) -> Key {
    (
        str_at(obj, &["apiVersion"]).to_owned(),
        str_at(obj, &["kind"]).to_owned(),
        meta::namespace(obj).unwrap_or("").to_owned(),
        meta::name(obj).to_owned(),
    )
}

/// The fixed start of every test's virtual clock.
pub fn t0() -> Timestamp {
    "2024-01-01T00:00:00Z".parse().unwrap()
}

/// `pod` scheduled to `node`, Running and Ready since `at`.
pub fn pod_ready(mut pod: Value, at: Timestamp, node: &str) -> Value {
    meta::set_at(&mut pod, &["spec", "nodeName"], json!(node));
    pod["status"] = json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": meta::fmt_time(at)}],
    });
    pod
}

/// Objects and events of a test cluster.
#[derive(Debug, Default)]
pub struct World {
    objects: BTreeMap<Key, Value>,
    /// Every event recorded, with the time it was recorded.
    pub events: Vec<(Timestamp, Event)>,
    next_uid: u64,
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) an object, giving it a UID and creation time if it has none.
    pub fn add(&mut self, mut obj: Value) {
        if meta::uid(&obj).is_none() {
            self.next_uid += 1;
            meta::set_at(
                &mut obj,
                &["metadata", "uid"],
                json!(format!("uid-{}", self.next_uid)),
            );
        }
        if meta::creation_time(&obj).is_none() {
            meta::set_at(
                &mut obj,
                &["metadata", "creationTimestamp"],
                json!(meta::fmt_time(t0())),
            );
        }
        self.objects.insert(key_of(&obj), obj);
    }

    pub fn obj(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(
            api_version.to_owned(),
            kind.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        ))
    }

    pub fn obj_mut(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Option<&mut Value> {
        self.objects.get_mut(&(
            api_version.to_owned(),
            kind.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        ))
    }

    /// Changes an object's spec as a user would: the generation goes up.
    pub fn edit_spec(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let obj = self.obj_mut(api_version, kind, ns, name).unwrap();
        f(obj);
        let generation = meta::generation(obj) + 1;
        meta::set_at(obj, &["metadata", "generation"], json!(generation));
    }

    /// Applies effects as an API server would; returns whether anything but events changed.
    pub fn apply(&mut self, effects: &[Effect], now: Timestamp) -> bool {
        let mut changed = false;
        for effect in effects {
            changed |= self.apply_one(effect, now);
        }
        changed
    }

    /// Applies one effect; a reported write is never refused here.
    fn apply_one(&mut self, effect: &Effect, now: Timestamp) -> bool {
        let mut changed = false;
        match effect {
            Effect::Create(obj) => {
                let mut obj = obj.clone();
                if self.objects.contains_key(&key_of(&obj)) {
                    return false;
                }
                self.next_uid += 1;
                meta::set_at(
                    &mut obj,
                    &["metadata", "uid"],
                    json!(format!("uid-{}", self.next_uid)),
                );
                meta::set_at(
                    &mut obj,
                    &["metadata", "creationTimestamp"],
                    json!(meta::fmt_time(now)),
                );
                meta::set_at(&mut obj, &["metadata", "generation"], json!(1));
                self.objects.insert(key_of(&obj), obj);
                changed = true;
            }
            Effect::Update(obj) => {
                let key = key_of(obj);
                if let Some(stored) = self.objects.get_mut(&key) {
                    let spec_changed = stored.get("spec") != obj.get("spec");
                    let generation = meta::generation(stored);
                    let status = stored.get("status").cloned();
                    let uid = meta::uid(stored).map(str::to_owned);
                    let created = stored["metadata"]["creationTimestamp"].clone();
                    let mut next = obj.clone();
                    next.as_object_mut().map(|m| m.remove("status"));
                    if let Some(s) = status {
                        next["status"] = s;
                    }
                    meta::set_at(&mut next, &["metadata", "uid"], json!(uid));
                    meta::set_at(&mut next, &["metadata", "creationTimestamp"], created);
                    meta::set_at(
                        &mut next,
                        &["metadata", "generation"],
                        json!(generation + i64::from(spec_changed)),
                    );
                    if *stored != next {
                        *stored = next;
                        changed = true;
                    }
                }
            }
            Effect::UpdateStatus(obj) => {
                if let Some(stored) = self.objects.get_mut(&key_of(obj)) {
                    let status = obj.get("status").cloned().unwrap_or(Value::Null);
                    if stored.get("status") != Some(&status) {
                        stored["status"] = status;
                        changed = true;
                    }
                }
            }
            Effect::Delete {
                api_version,
                kind,
                namespace,
                name,
            } => {
                let key = (
                    api_version.clone(),
                    kind.clone(),
                    namespace.clone().unwrap_or_default(),
                    name.clone(),
                );
                changed |= self.objects.remove(&key).is_some();
            }
            Effect::Event(ev) => self.events.push((now, ev.clone())),
            Effect::Reported(r) => {
                changed |= self.apply_one(&r.write, now);
                if let Some(ev) = &r.done {
                    self.events.push((now, ev.clone()));
                }
            }
        }
        changed
    }

    /// Runs a controller and applies its effects until it asks for nothing more; returns its
    /// last wake-up request.
    pub fn run_controller(
        &mut self,
        mut f: impl FnMut(&World, Timestamp, &mut NameGen) -> Reconciled,
        now: Timestamp,
        names: &mut NameGen,
    ) -> Option<Timestamp> {
        for _ in 0..50 {
            let out = f(self, now, names);
            if !self.apply(&out.effects, now) {
                return out.requeue_at;
            }
        }
        panic!("controller did not settle");
    }

    /// Events with this reason, as `(message, time)`.
    pub fn events_with_reason(&self, reason: &str) -> Vec<(String, Timestamp)> {
        self.events
            .iter()
            .filter(|(_, e)| e.reason == reason)
            .map(|(t, e)| (e.message.clone(), *t))
            .collect()
    }
}

impl ClusterView for World {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.obj(api_version, kind, namespace.unwrap_or(""), name)
            .cloned()
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.objects
            .iter()
            .filter(|((a, k, ns, _), _)| {
                a == api_version && k == kind && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, v)| Arc::new(v.clone()))
            .collect()
    }
}

/// A whole simulated control plane for scenario tests: the workload and storage controllers
/// plus a stand-in scheduler (placing pods where the test says) and kubelet (a pod becomes
/// Running and Ready once its attachable volumes are attached to its node).
pub struct FakeCluster {
    pub world: World,
    pub now: Timestamp,
    pub names: NameGen,
    pub volumes: super::volume::VolumeController,
    pub attach: super::attachdetach::AttachDetachController,
    /// Chooses the node of an unscheduled pod.
    pub place: Box<dyn Fn(&Value) -> String>,
    wakes: Vec<Timestamp>,
}

impl FakeCluster {
    pub fn new(seed: u64) -> Self {
        Self {
            world: World::new(),
            now: t0(),
            names: NameGen::new(seed),
            volumes: super::volume::VolumeController::default(),
            attach: super::attachdetach::AttachDetachController::default(),
            place: Box::new(|_| "node-a".to_owned()),
            wakes: Vec::new(),
        }
    }

    fn step(&mut self, out: Reconciled) -> bool {
        if let Some(at) = out.requeue_at {
            self.wakes.push(at);
        }
        self.world.apply(&out.effects, self.now)
    }

    fn schedule(&mut self) -> bool {
        let mut changed = false;
        for pod in self.world.list("v1", "Pod", None) {
            if !str_at(&pod, &["spec", "nodeName"]).is_empty() || meta::is_deleting(&pod) {
                continue;
            }
            let node = (self.place)(&pod);
            let ns = meta::namespace(&pod).unwrap_or("default").to_owned();
            for vol in meta::array_at(&pod, &["spec", "volumes"]) {
                let claim = str_at(vol, &["persistentVolumeClaim", "claimName"]);
                if let Some(pvc) = self
                    .world
                    .obj_mut("v1", "PersistentVolumeClaim", &ns, claim)
                    && str_at(pvc, &["spec", "volumeName"]).is_empty()
                {
                    meta::set_annotation(pvc, super::volume::SELECTED_NODE_ANNOTATION, &node);
                }
            }
            let stored = self
                .world
                .obj_mut("v1", "Pod", &ns, meta::name(&pod))
                .unwrap();
            meta::set_at(stored, &["spec", "nodeName"], json!(node));
            stored["status"] = json!({"phase": "Pending"});
            changed = true;
        }
        changed
    }

    fn kubelet(&mut self) -> bool {
        let mut changed = false;
        for pod in self.world.list("v1", "Pod", None) {
            if str_at(&pod, &["spec", "nodeName"]).is_empty() || meta::is_pod_ready(&pod) {
                continue;
            }
            let ns = meta::namespace(&pod).unwrap_or("default").to_owned();
            let claims_bound = meta::array_at(&pod, &["spec", "volumes"]).iter().all(|v| {
                let claim = str_at(v, &["persistentVolumeClaim", "claimName"]);
                claim.is_empty()
                    || self
                        .world
                        .obj("v1", "PersistentVolumeClaim", &ns, claim)
                        .is_some_and(|c| str_at(c, &["status", "phase"]) == "Bound")
            });
            let unattached = super::attachdetach::unattached_volumes(
                &self.world,
                &pod,
                &self.attach.attachable_drivers,
            );
            if claims_bound && unattached.is_empty() {
                let node = str_at(&pod, &["spec", "nodeName"]).to_owned();
                let ready = pod_ready(Value::clone(&pod), self.now, &node);
                self.world.add(ready);
                changed = true;
            }
        }
        changed
    }

    /// Runs everything at the current time until nothing changes.
    pub fn settle(&mut self) {
        self.wakes.clear();
        for _ in 0..200 {
            self.wakes.clear();
            let now = self.now;
            let mut changed = false;
            let out = super::deployment::reconcile_all(&self.world, now);
            changed |= self.step(out);
            let out = super::replicaset::reconcile_all(&self.world, now, &mut self.names);
            changed |= self.step(out);
            let out = self
                .volumes
                .reconcile_all(&self.world, now, &mut self.names);
            changed |= self.step(out);
            let out = self.attach.reconcile(&self.world, now);
            changed |= self.step(out);
            changed |= self.schedule();
            changed |= self.kubelet();
            if !changed {
                return;
            }
        }
        panic!("cluster did not settle at {}", self.now);
    }

    /// Settles, then jumps from wake-up to wake-up until `until` (inclusive).
    pub fn run_until(&mut self, until: Timestamp) {
        loop {
            self.settle();
            let next = self.wakes.iter().copied().filter(|t| *t > self.now).min();
            match next {
                Some(t) if t <= until => self.now = t,
                _ => {
                    self.now = until;
                    self.settle();
                    return;
                }
            }
        }
    }
}

impl World {
    /// The pods of a namespace.
    pub fn list_pods(&self, ns: &str) -> Vec<Value> {
        meta::owned(ClusterView::list(self, "v1", "Pod", Some(ns)))
    }
}
