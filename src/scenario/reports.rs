//! What a declarative operator reports on the objects it watches: conditions, other status
//! fields and events, chosen case by case from what it observes in the cluster.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::EventType;

/// One case of what an operator reports on a watched object. The cases of a rule are tried
/// in order; the first whose `when` all hold is the one reported (a case without `when`
/// always holds, so it belongs last).
///
/// Every string is a template: `{{name}}`, `{{namespace}}` and `{{<path>}}` for any field of
/// the watched object (`{{spec.secretStoreRef.name}}`, `{{metadata.generation}}`), or of an
/// observed object bound with `as` (`{{svc.status.loadBalancer.ingress.0.ip}}`). A string that
/// is exactly one `{{<path>}}` takes the field's value with its type (a number stays a number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Report {
    /// What must all hold in the cluster for this case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Observe>,
    /// Conditions set in `status.conditions` (others are kept). `lastTransitionTime` only
    /// changes when a condition's status changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionReport>,
    /// Other fields merged into `status`, e.g. `{services: [{name: frontend, ready: false}]}`;
    /// a field set to `null` is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<Value>,
    /// An event recorded on the watched object whenever a condition of this case is new or
    /// changes (for a case without conditions, whenever its `status` fields change). The real
    /// controller records it at every failed sync; repeats would only raise the event's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventReport>,
    /// Objects owned only while this case applies (created then, and left alone otherwise),
    /// such as the Secret an ExternalSecret syncs once its store is usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub owns: Vec<Value>,
}

/// A condition an operator sets, as `metav1.Condition` has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionReport {
    /// Condition type, e.g. `Ready`, `Programmed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One-word reason, exactly as the real controller sets it (`SecretSyncedError`); left
    /// out for condition types without one (the Keycloak operator's `StatusCondition`).
    #[serde(default)]
    pub reason: String,
    /// Message, exactly as the real controller sets it (may be empty).
    #[serde(default)]
    pub message: String,
    /// Also set the condition's `observedGeneration` to the object's `metadata.generation`
    /// (controllers built on `metav1.Condition` do; older condition types have no such field).
    #[serde(default)]
    pub observed_generation: bool,
}

/// A condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// The controller cannot tell.
    Unknown,
}

impl ConditionStatus {
    /// The value written in `status`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// An event an operator records on the watched object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventReport {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Event reason, exactly as the real controller records it (`UpdateFailed`).
    pub reason: String,
    /// Event message, exactly as the real controller records it.
    pub message: String,
}

/// Something an operator looks at before it reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Observe {
    /// An object exists (and, with `matches`, matches that partial tree).
    Object(ObservedObject),
    /// An object does not exist.
    Absent(ObservedObject),
    /// The watched object itself matches this partial tree (same matcher as expectations).
    #[schemars(with = "serde_json::Value")]
    Matches(Value),
    /// A Service has a ready endpoint on this port (by the Service port's name or number).
    Endpoint(ObservedEndpoint),
    /// A `type: LoadBalancer` Service has an address in `status.loadBalancer.ingress`.
    LoadBalancer(ObservedService),
    /// Every object the rule owns that has replicas (Deployment, StatefulSet, ReplicaSet) has
    /// all of them ready.
    OwnedReady(OwnedReady),
}

/// An object an operator looks up. Templates work in every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedObject {
    /// `apiVersion`; may be omitted for built-in kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; default the watched object's, then cluster scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A partial tree the object must match, e.g. `{status: {conditions: [{type: Ready,
    /// status: "True"}]}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub matches: Option<Value>,
    /// Name under which templates can read the object's fields (`{{<as>.status...}}`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
}

/// A Service endpoint an operator looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedEndpoint {
    /// Service name.
    pub service: String,
    /// Namespace; default the watched object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service port name or number; default any port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// A Service an operator looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedService {
    /// Service name.
    pub service: String,
    /// Namespace; default the watched object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name under which templates can read the Service's fields.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
}

/// Readiness of the owned objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OwnedReady {
    /// Only owned objects of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}
