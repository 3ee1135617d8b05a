//! GitOps in a scenario: the Argo CD stand-in and its Git repositories (`gitops:`), the
//! `commit` step that makes a new revision, and the `app` expectation on an Application.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Duration;
use super::model::{ObjectExpectation, Quantifier};

/// The files of one revision of a repository: path in the repository → content.
pub type RepoTree = BTreeMap<String, String>;

/// The namespace Argo CD runs in, where Applications live unless an expectation says otherwise.
pub const ARGOCD_NAMESPACE: &str = "argocd";

/// `apiVersion` of Argo CD's Applications and AppProjects.
pub const ARGOCD_API_VERSION: &str = "argoproj.io/v1alpha1";

/// A repository URL as Argo CD compares them (util/git `NormalizeGitURL`: case, a trailing
/// `.git` or `/` do not matter).
#[must_use]
pub fn normalize_repo_url(url: &str) -> String {
    let url = url.trim().to_lowercase();
    let url = url.trim_end_matches('/');
    url.strip_suffix(".git").unwrap_or(url).to_owned()
}

/// The kinds Argo CD's installation serves, as CustomResourceDefinition stubs (group, names,
/// versions, scope) for the loader's kind checks; the simulated cluster installs the real ones.
#[must_use]
pub fn argocd_kinds() -> Vec<Value> {
    [
        ("Application", "applications"),
        ("AppProject", "appprojects"),
    ]
    .iter()
    .map(|(kind, plural)| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.argoproj.io")},
            "spec": {
                "group": "argoproj.io",
                "names": {"kind": kind, "plural": plural},
                "scope": "Namespaced",
                "versions": [{"name": "v1alpha1", "served": true, "storage": true}],
            },
        })
    })
    .collect()
}

/// The GitOps controller a scenario runs, and the Git repositories it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gitops {
    /// Which controller: `argocd` (Argo CD v3.5.1's application controller and repo server,
    /// with its `Application` and `AppProject` CRDs, in the `argocd` namespace).
    #[serde(default)]
    pub engine: GitopsEngine,
    /// The repositories Applications name in `spec.source.repoURL`, each with the files of
    /// its first commit.
    pub repos: Vec<GitRepo>,
}

/// A GitOps controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GitopsEngine {
    /// Argo CD.
    #[default]
    Argocd,
}

/// One Git repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitRepo {
    /// The URL Applications name it by (compared as Argo CD does: case and a trailing `.git`
    /// do not matter).
    pub url: String,
    /// A directory next to the scenario file whose files are the repository's first commit
    /// (`source.path` of an Application is a directory inside it).
    pub dir: String,
}

/// A new commit on a repository's default branch (what a merged pull request does). Argo CD
/// notices it at its next poll of the repository (every 3 minutes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommitStep {
    /// The repository's `url`; may be omitted when the scenario has one repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The commit message.
    #[serde(default = "default_message")]
    pub message: String,
    /// A directory next to the scenario file whose files become the whole tree of the new
    /// commit (files not in it are deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Files written by the commit: path in the repository → a file next to the scenario file.
    /// Other files are kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Paths deleted by the commit (a directory deletes everything below it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

fn default_message() -> String {
    "update".to_owned()
}

/// What an Argo CD Application must show, in Argo CD's own words. Every field is a match
/// tree (a value, or an operator such as `{$not: Healthy}` or `{$contains: "..."}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppExpectation {
    /// The Application's name.
    pub name: String,
    /// Its namespace (default `argocd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `status.sync.status`: `Synced`, `OutOfSync` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub sync: Option<Value>,
    /// `status.health.status`: `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`
    /// or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub health: Option<Value>,
    /// `status.operationState.phase` of the last sync: `Running`, `Succeeded`, `Failed`,
    /// `Error` or `Terminating` (`{$absent: true}`: no sync ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub operation: Option<Value>,
    /// `status.operationState.message`, e.g.
    /// `{$contains: one or more synchronization tasks completed unsuccessfully}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub message: Option<Value>,
    /// `status.conditions`: each written element must match one
    /// (`[{type: ComparisonError}]`; `{$lacks: [{type: SyncError}]}` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub conditions: Option<Value>,
    /// `status.resources`: each written element must match one
    /// (`[{kind: Deployment, name: web, health: {status: Healthy}}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub resources: Option<Value>,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
    /// Must hold without interruption for this long.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Duration>,
}

impl AppExpectation {
    /// The same expectation on the Application object.
    #[must_use]
    pub fn to_object(&self) -> ObjectExpectation {
        let mut status = serde_json::Map::new();
        if let Some(v) = &self.sync {
            status.insert("sync".to_owned(), json!({"status": v}));
        }
        if let Some(v) = &self.health {
            status.insert("health".to_owned(), json!({"status": v}));
        }
        let mut op = serde_json::Map::new();
        if let Some(v) = &self.operation {
            op.insert("phase".to_owned(), v.clone());
        }
        if let Some(v) = &self.message {
            op.insert("message".to_owned(), v.clone());
        }
        if !op.is_empty() {
            status.insert("operationState".to_owned(), Value::Object(op));
        }
        if let Some(v) = &self.conditions {
            status.insert("conditions".to_owned(), v.clone());
        }
        if let Some(v) = &self.resources {
            status.insert("resources".to_owned(), v.clone());
        }
        ObjectExpectation {
            api_version: Some(ARGOCD_API_VERSION.to_owned()),
            kind: "Application".to_owned(),
            name: Some(self.name.clone()),
            namespace: Some(
                self.namespace
                    .clone()
                    .unwrap_or_else(|| ARGOCD_NAMESPACE.to_owned()),
            ),
            labels: BTreeMap::new(),
            count: None,
            require: Quantifier::All,
            matches: json!({"status": status}),
            within: self.within,
            for_: self.for_,
        }
    }
}
