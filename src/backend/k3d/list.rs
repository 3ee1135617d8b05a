//! Reading `k3d cluster list -o json`.
//!
//! k3d prints one JSON array of its `types.Cluster` structs extended with running/total node
//! counts (`cmd/cluster/clusterList.go`, `pkg/types/types.go`). Only the fields used here are
//! read; Go writes absent slices and maps as `null`, so every one is optional.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::K3dError;
use super::owner::Owner;
use super::spec::OWNER_ENV;

/// One cluster as `k3d cluster list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCluster {
    /// Cluster name.
    pub name: String,
    /// The owner token found on its nodes (`RELAPSE_OWNER`), if any node carries one.
    pub owner_token: Option<String>,
    /// Servers running / existing.
    pub servers: (u32, u32),
    /// Agents running / existing.
    pub agents: (u32, u32),
}

impl ListedCluster {
    /// The owner, when the token is present and well-formed.
    #[must_use]
    pub fn owner(&self) -> Option<Owner> {
        self.owner_token.as_deref().and_then(Owner::parse)
    }
}

#[derive(Deserialize)]
struct RawCluster {
    name: String,
    #[serde(default)]
    nodes: Option<Vec<RawNode>>,
    #[serde(default, rename = "serversRunning")]
    servers_running: u32,
    #[serde(default, rename = "serversCount")]
    servers_count: u32,
    #[serde(default, rename = "agentsRunning")]
    agents_running: u32,
    #[serde(default, rename = "agentsCount")]
    agents_count: u32,
}

#[derive(Deserialize)]
struct RawNode {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default, rename = "runtimeLabels")]
    runtime_labels: Option<BTreeMap<String, String>>,
}

/// Parses the standard output of `k3d cluster list -o json`.
///
/// Lines before the JSON array (info logs, which k3d writes to stdout) are skipped.
///
/// # Errors
/// [`K3dError::Unparsable`] with the start of the output when it holds no such array.
pub fn parse_cluster_list(stdout: &str, command: &str) -> Result<Vec<ListedCluster>, K3dError> {
    let mut offset = 0;
    let mut start = None;
    for line in stdout.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            start = Some(offset);
            break;
        }
        offset += line.len();
    }
    let json = start.map_or("", |s| &stdout[s..]);
    let raw: Vec<RawCluster> =
        serde_json::from_str(json.trim()).map_err(|e| K3dError::Unparsable {
            what: "cluster list",
            command: command.to_owned(),
            snippet: snippet(stdout),
            source: Box::new(e),
        })?;
    Ok(raw.into_iter().map(ListedCluster::from).collect())
}

impl From<RawCluster> for ListedCluster {
    fn from(raw: RawCluster) -> Self {
        let prefix = format!("{OWNER_ENV}=");
        let owner_token = raw.nodes.iter().flatten().find_map(|node| {
            // Only clusters whose k3d also labelled the node as part of a cluster count.
            let in_cluster = node
                .runtime_labels
                .as_ref()
                .is_some_and(|l| l.contains_key("k3d.cluster"));
            in_cluster.then_some(())?;
            node.env
                .iter()
                .flatten()
                .find_map(|e| e.strip_prefix(&prefix).map(str::to_owned))
        });
        Self {
            name: raw.name,
            owner_token,
            servers: (raw.servers_running, raw.servers_count),
            agents: (raw.agents_running, raw.agents_count),
        }
    }
}

/// The first 200 characters of `text`, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_clusters() {
        assert_eq!(parse_cluster_list("[]\n", "k3d").unwrap(), []);
    }

    #[test]
    fn info_lines_before_the_array_are_skipped() {
        let out = "INFO[0000] something\n[{\"name\":\"dev\",\"nodes\":null}]\n";
        let list = parse_cluster_list(out, "k3d").unwrap();
        assert_eq!(list[0].name, "dev");
        assert_eq!(list[0].owner_token, None);
    }

    #[test]
    fn garbage_is_reported_with_a_snippet() {
        let err = parse_cluster_list(
            "FATA[0000] cannot connect to docker\n",
            "k3d cluster list -o json",
        )
        .unwrap_err();
        let K3dError::Unparsable { what, snippet, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*what, "cluster list");
        assert_eq!(snippet, "FATA[0000] cannot connect to docker\n");
        assert!(
            err.to_string().starts_with(
                "failed to parse the cluster list printed by `k3d cluster list -o json`"
            )
        );
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    /// `k3d cluster list -o json` of k3d v5.8.3 with a user's cluster (`dev`, with load
    /// balancer) and one of ours (1 server, 2 agents, no load balancer); how each field was
    /// derived from k3d's source is in `tests/data/k3d/README.md`.
    const SAMPLE: &str = include_str!("../../../tests/data/k3d/cluster-list.json");

    #[test]
    fn reads_names_counts_and_owner() {
        let list = parse_cluster_list(SAMPLE, "k3d cluster list -o json").unwrap();
        assert_eq!(
            list,
            [
                ListedCluster {
                    name: "dev".to_owned(),
                    owner_token: None,
                    servers: (1, 1),
                    agents: (0, 0),
                },
                ListedCluster {
                    name: "relapse-three-nodes-e5f6g7h8".to_owned(),
                    owner_token: Some(
                        "ci-runner-7/0b4e6a3c-5d1f-4c8e-9a2b-7f3e1d6c8a90/48213/7730121".to_owned()
                    ),
                    servers: (1, 1),
                    agents: (2, 2),
                },
            ]
        );
        assert_eq!(list[1].owner().unwrap().pid, 48213);
    }
}
