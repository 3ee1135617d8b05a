//! Steps that change the cluster's shape during a run: a node joins or leaves, the
//! LoadBalancer provider is switched on or off.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{LoadBalancerProvider, Node};

/// A node leaving the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeRemoval {
    /// Node name.
    pub name: String,
}

/// A change of the cluster's shape, as the runner hands it to the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeChange {
    /// A node joins: its Node object is registered and its kubelet starts.
    AddNode(Node),
    /// A node leaves: its Node object is deleted and its pods go with it.
    RemoveNode(NodeRemoval),
    /// The LoadBalancer provider is switched (`none` or `service-lb`).
    LoadBalancer(LoadBalancerProvider),
}

impl ShapeChange {
    /// A short description for reports, e.g. `add node worker-1`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::AddNode(n) => format!("add node {}", n.name),
            Self::RemoveNode(n) => format!("remove node {}", n.name),
            Self::LoadBalancer(LoadBalancerProvider::None) => {
                "switch the LoadBalancer provider off".to_owned()
            }
            Self::LoadBalancer(LoadBalancerProvider::ServiceLb) => {
                "switch the LoadBalancer provider to service-lb".to_owned()
            }
        }
    }
}

impl super::model::Step {
    /// The shape change this step makes, when it is one.
    #[must_use]
    pub fn shape_change(&self) -> Option<ShapeChange> {
        match self {
            Self::AddNode(n) => Some(ShapeChange::AddNode(n.clone())),
            Self::RemoveNode(n) => Some(ShapeChange::RemoveNode(n.clone())),
            Self::LoadBalancer(p) => Some(ShapeChange::LoadBalancer(*p)),
            _ => None,
        }
    }
}
