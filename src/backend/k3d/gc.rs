//! Deleting clusters left behind by processes that are gone (`relapse gc`).

use super::cli::K3d;
use super::cluster::delete_cluster;
use super::error::K3dError;
use super::list::parse_cluster_list;
use super::owner::{Liveness, Owner};
use super::spec::NAME_PREFIX;

/// What [`gc`] did. Clusters without the `relapse-` prefix are never touched nor listed.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Deleted clusters, each with why its owner counts as gone.
    pub deleted: Vec<(String, String)>,
    /// Clusters left alone, and why.
    pub kept: Vec<(String, KeepReason)>,
    /// Leftover clusters whose deletion failed.
    pub failed: Vec<(String, K3dError)>,
}

/// Why [`gc`] left a `relapse-` cluster alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// Its owner still runs.
    InUse(Owner),
    /// Its owner ran on another machine sharing the Docker daemon.
    OtherHost(String),
    /// No node carries an owner marker (made by hand, or by an older version): delete it
    /// yourself with `k3d cluster delete` if it is yours.
    NoOwner,
    /// The owner marker is not one this version writes.
    UnreadableOwner(String),
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InUse(owner) => write!(f, "in use by {owner}"),
            Self::OtherHost(why) => f.write_str(why),
            Self::NoOwner => {
                f.write_str("no owner recorded; delete it with `k3d cluster delete` if it is yours")
            }
            Self::UnreadableOwner(token) => write!(f, "unreadable owner marker {token:?}"),
        }
    }
}

/// Lists k3d clusters and deletes every `relapse-` cluster whose owning process is gone.
///
/// # Errors
/// Only when the clusters cannot be listed; a failed delete is reported in
/// [`GcReport::failed`] and the others still proceed.
pub fn gc(k3d: &K3d) -> Result<GcReport, K3dError> {
    let args = ["cluster", "list", "-o", "json"].map(str::to_owned);
    let out = k3d.run(&args, k3d.timeouts().query)?;
    let clusters = parse_cluster_list(&out.stdout, &out.command)?;
    let mut report = GcReport::default();
    for cluster in clusters {
        if !cluster.name.starts_with(NAME_PREFIX) {
            continue;
        }
        let Some(token) = cluster.owner_token.clone() else {
            report.kept.push((cluster.name, KeepReason::NoOwner));
            continue;
        };
        let Some(owner) = Owner::parse(&token) else {
            report
                .kept
                .push((cluster.name, KeepReason::UnreadableOwner(token)));
            continue;
        };
        match owner.liveness() {
            Liveness::Alive => report.kept.push((cluster.name, KeepReason::InUse(owner))),
            Liveness::OtherHost(why) => {
                report.kept.push((cluster.name, KeepReason::OtherHost(why)))
            }
            Liveness::Dead(why) => match delete_cluster(k3d, &cluster.name) {
                Ok(()) => report.deleted.push((cluster.name, why)),
                Err(err) => report.failed.push((cluster.name, err)),
            },
        }
    }
    Ok(report)
}
