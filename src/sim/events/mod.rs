//! Events: the one model every part of the simulated cluster records them in, and the recorder
//! that writes them to the API server.
//!
//! Modelled on kube-runtime's `events` module: an [`Event`] says what happened (type, reason,
//! message) about which object ([`Involved`]), and who saw it ([`Reporter`]). The controllers,
//! the scheduler and the kubelets all build these; [`EventRecorder`] turns them into core/v1 or
//! events.k8s.io Event objects the way each component's client-go recorder does, counting
//! repeats.

mod recorder;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub use crate::scenario::EventType;
pub use recorder::EventRecorder;

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object an event is about (`involvedObject`, `regarding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involved {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID, when the object has one yet.
    pub uid: Option<String>,
    /// A part of the object (`spec.containers{app}`), as the kubelet's references name one.
    pub field_path: Option<String>,
}

impl Involved {
    /// The reference to an object as stored (its own `apiVersion` and `kind`).
    #[must_use]
    pub fn of(obj: &Value) -> Self {
        let non_empty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        Self {
            api_version: str_at(obj, "/apiVersion").to_owned(),
            kind: str_at(obj, "/kind").to_owned(),
            namespace: non_empty(str_at(obj, "/metadata/namespace")),
            name: str_at(obj, "/metadata/name").to_owned(),
            uid: non_empty(str_at(obj, "/metadata/uid")),
            field_path: None,
        }
    }

    /// A pod, as the kubelet and the scheduler refer to it (`v1`, `Pod`).
    #[must_use]
    pub fn pod(pod: &Value) -> Self {
        Self {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            ..Self::of(pod)
        }
    }

    /// One container of a pod (`fieldPath: spec.containers{<name>}`, or `spec.initContainers`),
    /// as the kubelet's container references have it (`pkg/kubelet/container/ref.go`).
    #[must_use]
    pub fn container(pod: &Value, name: &str, init: bool) -> Self {
        let list = if init { "initContainers" } else { "containers" };
        Self {
            field_path: Some(format!("spec.{list}{{{name}}}")),
            ..Self::pod(pod)
        }
    }

    /// The `involvedObject` of a core/v1 Event.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("apiVersion".into(), json!(self.api_version));
        m.insert("kind".into(), json!(self.kind));
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert("name".into(), json!(self.name));
        if let Some(uid) = &self.uid {
            m.insert("uid".into(), json!(uid));
        }
        if let Some(fp) = &self.field_path {
            m.insert("fieldPath".into(), json!(fp));
        }
        Value::Object(m)
    }

    /// The object's part of the recorders' keys (`getEventKey`, `getKey`).
    pub(crate) fn key(&self) -> String {
        [
            self.kind.as_str(),
            self.namespace.as_deref().unwrap_or_default(),
            self.name.as_str(),
            self.field_path.as_deref().unwrap_or_default(),
            self.uid.as_deref().unwrap_or_default(),
            self.api_version.as_str(),
        ]
        .join("\u{0}")
    }
}

/// Who records an event (`source` of a core/v1 Event, `reportingController` and
/// `reportingInstance` of an events.k8s.io one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// The component (`deployment-controller`, `kubelet`, `default-scheduler`).
    pub component: String,
    /// The node it runs on, for a kubelet.
    pub host: Option<String>,
}

impl Reporter {
    /// A component of the control plane.
    pub fn new(component: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            host: None,
        }
    }

    /// A component on a node (a kubelet).
    pub fn on_host(component: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            host: Some(host.into()),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// Machine-readable reason (`ScalingReplicaSet`, `BackOff`).
    pub reason: String,
    /// Human-readable message, exactly as the real component words it.
    pub message: String,
    /// What it is about.
    pub involved: Involved,
    /// Who records it.
    pub reporter: Reporter,
    /// When it happened; `None` for "when it is recorded". The kubelet reports what happened
    /// between two of its syncs at the instants it happened.
    pub at: Option<Timestamp>,
}

impl Event {
    /// An event recorded when it is handed to the recorder.
    pub fn new(
        type_: EventType,
        reason: impl Into<String>,
        message: impl Into<String>,
        involved: Involved,
        reporter: Reporter,
    ) -> Self {
        Self {
            type_,
            reason: reason.into(),
            message: message.into(),
            involved,
            reporter,
            at: None,
        }
    }

    /// The same event, happened at `at`.
    #[must_use]
    pub fn at(self, at: Timestamp) -> Self {
        Self {
            at: Some(at),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_leave_out_what_the_object_lacks() {
        let cm = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        assert_eq!(
            Involved::of(&cm).to_json(),
            json!({"apiVersion": "v1", "kind": "Node", "name": "n1"})
        );
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}});
        assert_eq!(
            Involved::container(&pod, "init", true).to_json(),
            json!({"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": "p",
                   "uid": "u", "fieldPath": "spec.initContainers{init}"})
        );
    }
}
