//! The Git repositories the stand-in's repo server reads: each a history of revisions, each
//! revision a tree of files, rendered per Application source as Argo CD's repo server renders a
//! plain directory of manifests (reposerver/repository/repository.go, v3.5.1).
//!
//! Revisions are named by a 40-hex digest of their parent, message and files, so the same
//! scenario always yields the same SHAs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The files of one revision: path in the repository → content.
pub type Tree = crate::scenario::RepoTree;

/// One commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Its SHA (40 hex digits).
    pub sha: String,
    /// The commit message.
    pub message: String,
    /// Its files.
    pub files: Arc<Tree>,
}

/// One repository: its commits, oldest first; the last is `HEAD` of its default branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The URL Applications name it by.
    pub url: String,
    /// Its commits.
    pub history: Vec<Revision>,
}

/// Every repository the repo server can read, by URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repos {
    repos: BTreeMap<String, Repo>,
}

pub use crate::scenario::normalize_repo_url as normalize_url;

impl Repos {
    /// No repositories.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits `files` as the whole tree of a new revision of the repository at `url`
    /// (creating the repository with its first commit), and returns the new SHA.
    pub fn commit(&mut self, url: &str, files: Tree, message: &str) -> String {
        let repo = self
            .repos
            .entry(normalize_url(url))
            .or_insert_with(|| Repo {
                url: url.to_owned(),
                history: Vec::new(),
            });
        let parent = repo.history.last().map_or("", |r| r.sha.as_str());
        let mut digest = Sha256::new();
        digest.update(parent.as_bytes());
        digest.update([0]);
        digest.update(message.as_bytes());
        for (path, content) in &files {
            digest.update([0]);
            digest.update(path.as_bytes());
            digest.update([0]);
            digest.update(content.as_bytes());
        }
        let sha: String = digest.finalize()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        repo.history.push(Revision {
            sha: sha.clone(),
            message: message.to_owned(),
            files: Arc::new(files),
        });
        sha
    }

    /// The repository at `url`, if there is one.
    #[must_use]
    pub fn repo(&self, url: &str) -> Option<&Repo> {
        self.repos.get(&normalize_url(url))
    }

    /// The commit `target_revision` of the repository at `url` names: `HEAD`, empty, or a
    /// branch name for the newest; a full or abbreviated SHA for that commit.
    ///
    /// # Errors
    /// Argo CD's message when the repository or the revision is unknown.
    pub fn resolve(&self, url: &str, target_revision: &str) -> Result<&Revision, String> {
        let Some(repo) = self.repo(url) else {
            // util/git/client.go, LsRemote: `failed to list refs: %w` around go-git's
            // transport.ErrRepositoryNotFound (plumbing/transport/common.go: "repository not found").
            return Err("failed to list refs: repository not found".to_owned());
        };
        let newest = repo.history.last();
        let rev = target_revision.trim();
        let found = match rev {
            "" | "HEAD" | "main" | "master" => newest,
            r if r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit()) => repo
                .history
                .iter()
                .find(|c| c.sha.starts_with(&r.to_lowercase())),
            _ => None,
        };
        found.ok_or_else(|| {
            // reposerver/repository/repository.go: `unable to resolve git revision %s: %v`,
            // with util/git/client.go's `unable to resolve '%s' to a commit SHA`.
            format!(
                "unable to resolve git revision {rev}: unable to resolve '{rev}' to a commit SHA"
            )
        })
    }
}

impl Revision {
    /// The objects a directory source at `path` yields: every `.yaml`, `.yml` and `.json` file
    /// directly in it (and below it with `directory.recurse`), in path order, each YAML
    /// document an object; empty documents and files that do not look like manifests are
    /// skipped, as the repo server's `findManifests` does. `List` objects are expanded.
    ///
    /// # Errors
    /// Argo CD's message for a path that does not exist or a manifest that does not parse.
    pub fn render(&self, path: &str, directory: Option<&Value>) -> Result<Vec<Value>, String> {
        let recurse = directory
            .and_then(|d| d["recurse"].as_bool())
            .unwrap_or(false);
        let dir = path.trim_matches('/');
        let dir = if dir == "." { "" } else { dir };
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let in_dir: Vec<(&String, &String)> = self
            .files
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .collect();
        if in_dir.is_empty() {
            // util/app/path/path.go, Path(): `%s: %s` with ErrMessageAppPathDoesNotExist.
            return Err(format!("{path}: app path does not exist"));
        }
        let mut objects = Vec::new();
        for (file, content) in in_dir {
            let rest = &file[prefix.len()..];
            if rest.contains('/') && !recurse {
                continue;
            }
            let Some(name) = rest.rsplit('/').next() else {
                continue;
            };
            let is_json = name.ends_with(".json");
            if !(is_json || name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            let docs = match crate::yaml::documents(content) {
                Ok(docs) => docs,
                Err(e) => {
                    let looks_like_manifest = content.contains("apiVersion:")
                        && content.contains("kind:")
                        && content.contains("metadata:");
                    if is_json || looks_like_manifest {
                        // reposerver/repository/repository.go, getObjsFromYAMLOrJSON:
                        // `Failed to unmarshal %q: %v`.
                        return Err(format!(
                            "Failed to unmarshal \"{name}\": failed to unmarshal manifest: {e}"
                        ));
                    }
                    continue;
                }
            };
            for doc in docs {
                match doc {
                    Value::Null => {}
                    Value::Object(_) if doc["kind"] == "List" => {
                        objects.extend(doc["items"].as_array().cloned().unwrap_or_default());
                    }
                    other => objects.push(other),
                }
            }
        }
        Ok(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
            .collect()
    }

    #[test]
    fn a_directory_renders_its_manifests_and_not_its_subdirectories() {
        let mut repos = Repos::new();
        let sha = repos.commit(
            "https://git.example/platform.git",
            tree(&[
                ("apps/web/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"),
                ("apps/web/README.md", "# not a manifest"),
                ("apps/web/nested/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
            ]),
            "first",
        );
        assert_eq!(sha.len(), 40);
        let rev = repos
            .resolve("https://GIT.example/platform", "HEAD")
            .expect("resolves");
        let names: Vec<String> = rev
            .render("apps/web", None)
            .expect("renders")
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["a", "b"]);
        let all = rev
            .render("apps/web", Some(&serde_json::json!({"recurse": true})))
            .expect("renders");
        assert_eq!(all.len(), 3);
        assert_eq!(
            rev.render("apps/api", None).expect_err("missing"),
            "apps/api: app path does not exist"
        );
    }

    #[test]
    fn revisions_resolve_by_sha_prefix_and_unknown_ones_fail() {
        let mut repos = Repos::new();
        let first = repos.commit("r", tree(&[("a.yaml", "")]), "one");
        let second = repos.commit("r", tree(&[("a.yaml", "# two")]), "two");
        assert_ne!(first, second);
        assert_eq!(repos.resolve("r", &first[..7]).expect("sha").sha, first);
        assert_eq!(repos.resolve("r", "HEAD").expect("head").sha, second);
        assert_eq!(
            repos.resolve("r", "release-9").expect_err("unknown"),
            "unable to resolve git revision release-9: unable to resolve 'release-9' to a commit SHA"
        );
    }
}
