//! A minimal in-memory cluster for the controllers' unit tests: it stores objects, applies
//! effects the way an API server would (UIDs, generation, creation time) and keeps events.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::meta::{self, str_at};
use super::{ClusterView, Effect, Event, NameGen, Reconciled};

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

    pub fn remove(&mut self, api_version: &str, kind: &str, ns: &str, name: &str) {
        self.objects.remove(&(
            api_version.to_owned(),
            kind.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        ));
    }

    /// Applies effects as an API server would; returns whether anything but events changed.
    pub fn apply(&mut self, effects: &[Effect], now: Timestamp) -> bool {
        let mut changed = false;
        for effect in effects {
            match effect {
                Effect::Create(obj) => {
                    let mut obj = obj.clone();
                    if self.objects.contains_key(&key_of(&obj)) {
                        continue;
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

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((a, k, ns, _), _)| {
                a == api_version && k == kind && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }
}
