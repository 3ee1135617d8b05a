//! Events as the node agent and the scheduler record them.

use jiff::Timestamp;
use serde_json::Value;

pub use crate::scenario::EventType;

/// The object an event is about (`involvedObject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvolvedObject {
    /// `apiVersion` (`v1` for pods).
    pub api_version: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Field path for container events (`spec.containers{app}`), as the kubelet's references have.
    pub field_path: Option<String>,
}

impl InvolvedObject {
    /// The pod itself.
    #[must_use]
    pub fn pod(pod: &Value) -> Self {
        let m = |k: &str| {
            pod.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            namespace: m("namespace"),
            name: m("name"),
            uid: m("uid"),
            field_path: None,
        }
    }

    /// One container of the pod.
    #[must_use]
    pub fn container(pod: &Value, name: &str, init: bool) -> Self {
        let list = if init { "initContainers" } else { "containers" };
        Self {
            field_path: Some(format!("spec.{list}{{{name}}}")),
            ..Self::pod(pod)
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// When it happened.
    pub at: Timestamp,
    /// `Normal` or `Warning`.
    pub kind: EventType,
    /// Reason (`BackOff`, `FailedScheduling`).
    pub reason: String,
    /// Message.
    pub message: String,
    /// What it is about.
    pub involved: InvolvedObject,
    /// Reporting component (`kubelet`, `default-scheduler`).
    pub component: String,
    /// Node that reported it, for kubelet events.
    pub host: Option<String>,
}
