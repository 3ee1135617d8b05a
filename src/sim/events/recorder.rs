//! Events as the components' event recorders write them to the API server.
//!
//! Two recorders exist in a real cluster and both are imitated:
//!
//! - the legacy core/v1 recorder (client-go `tools/record`), used by the kubelet and the
//!   controller manager: `source`, `firstTimestamp`, `lastTimestamp`, `count`, and
//!   `reportingComponent`/`reportingInstance` copied from the source (`generateEvent`,
//!   `tools/record/event.go`). A repeat of an event with the same key (source, involved object,
//!   type, reason and message: `getEventKey`, `tools/record/events_cache.go`) is not a new
//!   object: the existing one gets `count + 1` and a new `lastTimestamp` (`eventObserve`).
//! - the events.k8s.io recorder (client-go `tools/events`), used by the scheduler: `eventTime`,
//!   `action`, `reportingController`/`reportingInstance` and no deprecated fields. A repeat with
//!   the same type, action, reason, reporter and regarding object (`getKey`, whatever the
//!   message) becomes a series (`recordToSink`, `tools/events/event_broadcaster.go`).
//!
//! The legacy recorder's spam filter is imitated on simulated time (`EventSourceObjectSpamFilter`,
//! `tools/record/events_cache.go`): one token bucket per source, involved object (without its
//! field path) and type, 25 tokens, refilled at one token every 300 s; an event finding the
//! bucket empty is not written, though the count it would have had is remembered, so the next
//! event written carries it (`EventCorrelate` observes an event before it filters it).
//!
//! Not imitated: the legacy recorder's aggregation of similar events with different messages,
//! the 4096-entry bound of its caches, and the events.k8s.io recorder's deferral of series
//! counts after the second to a 30-minute heartbeat (the count is written at every repeat here).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::Event;
use crate::sim::clock::{format_micro_time, format_time};
use crate::sim::store::{Part, Reason, Store, WriteOptions};

#[derive(Debug, Clone)]
struct Observed {
    namespace: String,
    name: String,
    count: u64,
}

/// What the legacy recorder remembers of an event the spam filter dropped before it was ever
/// written: `eventObserve` runs before the filter, so the next occurrence let through is created
/// with the count and `firstTimestamp` of every occurrence before it.
#[derive(Debug, Clone)]
struct Unwritten {
    first: Timestamp,
    count: u64,
}

/// client-go 1.32 `tools/record/events_cache.go`: `defaultSpamBurst = 25`.
const SPAM_BURST: f64 = 25.0;

/// client-go 1.32 `tools/record/events_cache.go`: `defaultSpamQPS = 1. / 300.`, passed on as a
/// `float32` (`NewEventSourceObjectSpamFilter`) and widened to `rate.Limit` (`float64`) by
/// `flowcontrol.NewTokenBucketPassiveRateLimiterWithClock` (`util/flowcontrol/throttle.go`).
#[expect(
    clippy::cast_possible_truncation,
    reason = "the refill rate is a float32 upstream; the truncation is what is imitated"
)]
const SPAM_QPS: f64 = (1.0_f64 / 300.0) as f32 as f64;

/// One source and object's token bucket (`golang.org/x/time/rate` `Limiter`, as
/// `tokenBucketPassiveRateLimiter.TryAccept` uses it: `AllowN(now, 1)`).
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Timestamp,
}

impl Bucket {
    /// A new limiter starts full (`rate.NewLimiter(limit, burst)`: its first `advance` fills it).
    fn full(at: Timestamp) -> Self {
        Self {
            tokens: SPAM_BURST,
            last: at,
        }
    }

    /// `Limiter.reserveN` with no wait allowed: the tokens earned since the last accepted event
    /// (`advance`: `elapsed.Seconds() * limit`, capped at the burst), then one taken if there is
    /// one. A refusal leaves the limiter as it was.
    fn try_accept(&mut self, at: Timestamp) -> bool {
        let elapsed = if at > self.last {
            at.duration_since(self.last)
        } else {
            jiff::SignedDuration::ZERO
        };
        // time.Duration.Seconds(): whole seconds plus the nanoseconds over 1e9.
        #[expect(
            clippy::cast_precision_loss,
            reason = "Go's Duration.Seconds converts the same way"
        )]
        let seconds = elapsed.as_secs() as f64 + f64::from(elapsed.subsec_nanos()) / 1e9;
        let tokens = (self.tokens + seconds * SPAM_QPS).min(SPAM_BURST) - 1.0;
        if tokens < 0.0 {
            return false;
        }
        self.tokens = tokens;
        self.last = at;
        true
    }
}

/// Writes events to the store and remembers what it wrote, as each component's recorder does.
#[derive(Debug, Clone, Default)]
pub struct EventRecorder {
    legacy: BTreeMap<String, Observed>,
    /// Legacy events dropped by the spam filter before any was written, by event key.
    unwritten: BTreeMap<String, Unwritten>,
    /// The spam filter's buckets, by spam key.
    spam: BTreeMap<String, Bucket>,
    series: BTreeMap<String, Observed>,
    /// `reportingInstance` of the scheduler: `default-scheduler-<hostname>` (`NewRecorder`,
    /// `tools/events/event_broadcaster.go`).
    scheduler_instance: String,
}

/// The events.k8s.io `action` of the scheduler's events (pkg/scheduler/schedule_one.go:
/// `Eventf(pod, nil, v1.EventTypeNormal, "Scheduled", "Binding", ...)` and
/// `Eventf(pod, nil, v1.EventTypeWarning, "FailedScheduling", "Scheduling", ...)`).
fn scheduler_action(reason: &str) -> &'static str {
    if reason == "Scheduled" {
        "Binding"
    } else {
        "Scheduling"
    }
}

impl EventRecorder {
    /// A recorder whose scheduler runs on the host `scheduler_host`.
    #[must_use]
    pub fn new(scheduler_host: &str) -> Self {
        Self {
            scheduler_instance: format!("default-scheduler-{scheduler_host}"),
            ..Self::default()
        }
    }

    /// Records one event, at the instant it happened or else at `now`; returns whether the
    /// store changed. Events that cannot be written (their namespace is gone or terminating)
    /// are dropped, as a recorder drops them.
    pub fn record(&mut self, store: &Store, now: Timestamp, ev: &Event) -> bool {
        let at = ev.at.unwrap_or(now);
        if ev.reporter.component == "default-scheduler" {
            self.record_series(store, at, ev)
        } else {
            self.record_legacy(store, at, ev)
        }
    }

    fn record_legacy(&mut self, store: &Store, at: Timestamp, ev: &Event) -> bool {
        let (component, host) = (&ev.reporter.component, &ev.reporter.host);
        let key = [
            component.as_str(),
            host.as_deref().unwrap_or_default(),
            &ev.involved.key(),
            ev.type_.as_str(),
            ev.reason.as_str(),
            ev.message.as_str(),
        ]
        .join("\u{0}");
        // getSpamKey (client-go 1.32 tools/record/events_cache.go): source, the involved object
        // without its fieldPath, and the type; neither reason nor message.
        let spam_key = [
            component.as_str(),
            host.as_deref().unwrap_or_default(),
            ev.involved.kind.as_str(),
            ev.involved.namespace.as_deref().unwrap_or_default(),
            ev.involved.name.as_str(),
            ev.involved.uid.as_deref().unwrap_or_default(),
            ev.involved.api_version.as_str(),
            ev.type_.as_str(),
        ]
        .join("\u{0}");
        let accepted = self
            .spam
            .entry(spam_key)
            .or_insert_with(|| Bucket::full(at))
            .try_accept(at);
        if !accepted {
            // EventCorrelate: eventObserve counted the occurrence before filterFunc skipped it.
            if let Some(seen) = self.legacy.get_mut(&key) {
                seen.count += 1;
            } else {
                self.unwritten
                    .entry(key)
                    .and_modify(|u| u.count += 1)
                    .or_insert(Unwritten {
                        first: at,
                        count: 1,
                    });
            }
            return false;
        }
        let time = format_time(at);
        if let Some(seen) = self.legacy.get_mut(&key) {
            seen.count += 1;
            let count = seen.count;
            let (ns, name) = (seen.namespace.clone(), seen.name.clone());
            if update(store, &ns, &name, |e| {
                e["count"] = json!(count);
                e["lastTimestamp"] = json!(time);
            }) {
                return true;
            }
            // The event expired or was deleted: the recorder's patch fails and it creates the
            // event anew, keeping its count.
            self.legacy.remove(&key);
        }
        // An event whose earlier occurrences were all dropped: the patch of the name eventObserve
        // remembered fails with NotFound and recordEvent creates it with the count so far.
        let (first, count) = match self.unwritten.remove(&key) {
            Some(u) => (u.first, u.count + 1),
            None => (at, 1),
        };
        let mut source = Map::new();
        source.insert("component".into(), json!(component));
        if let Some(h) = host {
            source.insert("host".into(), json!(h));
        }
        let body = json!({
            "involvedObject": ev.involved.to_json(),
            "reason": ev.reason,
            "message": ev.message,
            "type": ev.type_.as_str(),
            "source": source,
            "firstTimestamp": format_time(first),
            "lastTimestamp": time,
            "count": count,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": host.clone().unwrap_or_default(),
        });
        match create(store, first, ev, body) {
            Some((namespace, name)) => {
                self.legacy.insert(
                    key,
                    Observed {
                        namespace,
                        name,
                        count,
                    },
                );
                true
            }
            None => false,
        }
    }

    fn record_series(&mut self, store: &Store, at: Timestamp, ev: &Event) -> bool {
        let action = scheduler_action(&ev.reason);
        let key = [
            ev.type_.as_str(),
            action,
            ev.reason.as_str(),
            ev.reporter.component.as_str(),
            self.scheduler_instance.as_str(),
            &ev.involved.key(),
        ]
        .join("\u{0}");
        let observed = format_micro_time(at);
        if let Some(seen) = self.series.get_mut(&key) {
            seen.count += 1;
            let count = seen.count;
            let (ns, name) = (seen.namespace.clone(), seen.name.clone());
            if update(store, &ns, &name, |e| {
                e["series"] = json!({"count": count, "lastObservedTime": observed});
            }) {
                return true;
            }
            self.series.remove(&key);
        }
        let body = json!({
            "involvedObject": ev.involved.to_json(),
            "reason": ev.reason,
            "message": ev.message,
            "type": ev.type_.as_str(),
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "eventTime": observed,
            "action": action,
            "reportingComponent": ev.reporter.component,
            "reportingInstance": self.scheduler_instance,
        });
        match create(store, at, ev, body) {
            Some((namespace, name)) => {
                self.series.insert(
                    key,
                    Observed {
                        namespace,
                        name,
                        count: 1,
                    },
                );
                true
            }
            None => false,
        }
    }
}

/// Creates the event named `<involved>.<unix nanoseconds in hex>` (`GenerateEventName`,
/// `tools/record/util/util.go`; the same format in `tools/events/recorder.go`) in the involved
/// object's namespace, or `default` for cluster-scoped objects (`makeEvent`). Two events of one
/// object at one simulated instant would share a name; the later one moves a nanosecond on.
fn create(store: &Store, at: Timestamp, ev: &Event, mut body: Value) -> Option<(String, String)> {
    let res = store.resource_shared("", "v1", "events")?;
    let namespace = ev
        .involved
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let mut nanos = at.as_nanosecond();
    for _ in 0..1000 {
        let name = format!("{}.{nanos:x}", ev.involved.name);
        body["metadata"] = json!({"name": name, "namespace": namespace});
        match store.create_shared(
            &res,
            Some(&namespace),
            body.clone(),
            &WriteOptions::default(),
        ) {
            Ok(_) => return Some((namespace, name)),
            Err(e) if e.reason == Reason::AlreadyExists => nanos += 1,
            Err(_) => return None,
        }
    }
    None
}

/// Changes a stored event; false when it no longer exists.
fn update(store: &Store, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
    let Some(res) = store.resource_shared("", "v1", "events") else {
        return false;
    };
    store
        .modify_shared(
            &res,
            Some(namespace),
            name,
            Part::Main,
            &WriteOptions::default(),
            |current| match current {
                Some(e) => {
                    let mut e = e.clone();
                    f(&mut e);
                    Ok(e)
                }
                None => Err(crate::sim::store::ApiError::not_found(&res, name)),
            },
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sim::clock::ManualClock;
    use crate::sim::events::{EventType, Involved, Reporter};
    use crate::sim::store::{ListOptions, StoreConfig};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod_event(at: Timestamp, component: &str, reason: &str, message: &str) -> Event {
        let pod = json!({"metadata": {"name": "app-1", "namespace": "default", "uid": "u-1"}});
        let reporter = if component == "kubelet" {
            Reporter::on_host(component, "node-1")
        } else {
            Reporter::new(component)
        };
        Event::new(
            EventType::Warning,
            reason,
            message,
            Involved::container(&pod, "app", false),
            reporter,
        )
        .at(at)
    }

    fn events(store: &Store) -> Vec<Value> {
        let res = store.resource("", "v1", "events").unwrap();
        store
            .list(&res, None, &ListOptions::default())
            .unwrap()
            .items
    }

    #[test]
    fn legacy_repeats_bump_the_count() {
        let store = Store::new(
            Arc::new(ManualClock::new(t("2025-01-01T00:00:00Z"))),
            StoreConfig::default(),
        );
        let mut rec = EventRecorder::new("node-1");
        let t0 = t("2025-01-01T00:00:01Z");
        assert!(rec.record(
            &store,
            Timestamp::UNIX_EPOCH,
            &pod_event(t0, "kubelet", "BackOff", "back-off")
        ));
        assert!(rec.record(
            &store,
            Timestamp::UNIX_EPOCH,
            &pod_event(t("2025-01-01T00:00:11Z"), "kubelet", "BackOff", "back-off")
        ));
        assert!(rec.record(
            &store,
            Timestamp::UNIX_EPOCH,
            &pod_event(t0, "kubelet", "BackOff", "other")
        ));
        let all = events(&store);
        assert_eq!(all.len(), 2);
        let e = &all[0];
        assert_eq!(
            e["metadata"]["name"],
            format!("app-1.{:x}", t0.as_nanosecond())
        );
        assert_eq!(e["count"], 2);
        assert_eq!(e["firstTimestamp"], "2025-01-01T00:00:01Z");
        assert_eq!(e["lastTimestamp"], "2025-01-01T00:00:11Z");
        assert_eq!(
            e["source"],
            json!({"component": "kubelet", "host": "node-1"})
        );
        assert_eq!(e["reportingComponent"], "kubelet");
        assert_eq!(e["reportingInstance"], "node-1");
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{app}");
        // The second message at the same instant got the next nanosecond.
        assert_eq!(
            all[1]["metadata"]["name"],
            format!("app-1.{:x}", t0.as_nanosecond() + 1)
        );
    }

    #[test]
    fn the_spam_filter_lets_25_events_through_then_one_every_five_minutes() {
        let store = Store::new(
            Arc::new(ManualClock::new(t("2025-01-01T00:00:00Z"))),
            StoreConfig::default(),
        );
        let mut rec = EventRecorder::new("node-1");
        let at = |secs: i64| t("2025-01-01T00:00:00Z") + jiff::SignedDuration::from_secs(secs);
        let warn = |secs: i64, m: &str| pod_event(at(secs), "kubelet", "BackOff", m);
        let now = Timestamp::UNIX_EPOCH;
        for i in 0..25 {
            assert!(
                rec.record(&store, now, &warn(0, &format!("m{i}"))),
                "event {i}"
            );
        }
        // The 26th Warning about the pod from this kubelet finds the bucket empty, whatever its
        // reason or message.
        assert!(!rec.record(&store, now, &warn(0, "m0")));
        assert!(!rec.record(&store, now, &warn(0, "never written")));
        let mut other = warn(0, "m0");
        other.reason = "Unhealthy".into();
        assert!(!rec.record(&store, now, &other));
        // The type is part of the key: a Normal event has its own bucket.
        let mut normal = warn(0, "Pulling image");
        normal.type_ = EventType::Normal;
        assert!(rec.record(&store, now, &normal));
        // Another kubelet (source host) has its own bucket too.
        let mut elsewhere = warn(0, "m0");
        elsewhere.reporter = Reporter::on_host("kubelet", "node-2");
        assert!(rec.record(&store, now, &elsewhere));
        assert_eq!(events(&store).len(), 27);
        // One token comes back after 300 s, not before.
        assert!(!rec.record(&store, now, &warn(299, "m0")));
        assert!(rec.record(&store, now, &warn(300, "m0")));
        assert!(!rec.record(&store, now, &warn(300, "m1")));
        let by_message = |m: &str| {
            events(&store)
                .into_iter()
                .find(|e| e["message"] == m && e["source"]["host"] == "node-1")
                .unwrap()
        };
        // The written repeat counts the dropped ones (eventObserve runs before the filter).
        let m0 = by_message("m0");
        assert_eq!(m0["count"], 4);
        assert_eq!(m0["lastTimestamp"], "2025-01-01T00:05:00Z");
        assert_eq!(by_message("m1")["count"], 1);
        // An event never written is created, once let through, with every occurrence counted
        // since its first, under the name of its first occurrence.
        assert!(rec.record(&store, now, &warn(600, "never written")));
        let late = by_message("never written");
        assert_eq!(late["count"], 2);
        assert_eq!(late["firstTimestamp"], "2025-01-01T00:00:00Z");
        assert_eq!(late["lastTimestamp"], "2025-01-01T00:10:00Z");
        assert!(
            late["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("app-1.")
        );
        assert_eq!(events(&store).len(), 28);
    }

    #[test]
    fn an_untimed_event_happens_when_it_is_recorded() {
        let store = Store::new(
            Arc::new(ManualClock::new(t("2025-01-01T00:00:00Z"))),
            StoreConfig::default(),
        );
        let mut rec = EventRecorder::new("node-1");
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": "web-1", "namespace": "default", "uid": "u-rs"}});
        let ev = Event::new(
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-1-abcde",
            Involved::of(&rs),
            Reporter::new("replicaset-controller"),
        );
        assert!(rec.record(&store, t("2025-01-01T00:00:05Z"), &ev));
        let e = &events(&store)[0];
        assert_eq!(e["firstTimestamp"], "2025-01-01T00:00:05Z");
        assert_eq!(e["source"], json!({"component": "replicaset-controller"}));
        assert_eq!(e["reportingInstance"], "");
        assert_eq!(
            e["involvedObject"],
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "namespace": "default",
                   "name": "web-1", "uid": "u-rs"})
        );
    }

    #[test]
    fn scheduler_repeats_form_a_series() {
        let store = Store::new(
            Arc::new(ManualClock::new(t("2025-01-01T00:00:00Z"))),
            StoreConfig::default(),
        );
        let mut rec = EventRecorder::new("cp-1");
        let ev = |s: &str, m: &str| pod_event(t(s), "default-scheduler", "FailedScheduling", m);
        rec.record(
            &store,
            Timestamp::UNIX_EPOCH,
            &ev("2025-01-01T00:00:01Z", "0/1 nodes are available"),
        );
        rec.record(
            &store,
            Timestamp::UNIX_EPOCH,
            &ev("2025-01-01T00:01:01Z", "0/2 nodes are available"),
        );
        let all = events(&store);
        assert_eq!(all.len(), 1);
        let e = &all[0];
        assert_eq!(e["action"], "Scheduling");
        assert_eq!(e["reportingInstance"], "default-scheduler-cp-1");
        assert_eq!(e["message"], "0/1 nodes are available");
        assert_eq!(e["series"]["count"], 2);
        assert_eq!(
            e["series"]["lastObservedTime"],
            "2025-01-01T00:01:01.000000Z"
        );
        assert!(e["firstTimestamp"].is_null() && e.get("count").is_none());
    }
}
