//! Checks of the `gitops:` section and `commit` steps: the repositories' directories and the
//! files commits write are read (inside the scenario tree) and their manifests parsed, so a
//! broken repository fails when the scenario loads, with the file, line and column.

use std::path::Path;

use super::Checker;
use crate::scenario::{CommitStep, Problem, Scenario, files};
use crate::yaml::{self, Segment};
use crate::yaml_path;

/// Whether a repository file is one Argo CD's repo server reads as manifests.
fn is_manifest(path: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

impl Checker {
    pub(super) fn check_gitops(&mut self, path: &Path, text: &str, base: &Path, s: &Scenario) {
        let Some(g) = &s.gitops else {
            return;
        };
        if g.repos.is_empty() {
            self.problem(
                path,
                text,
                &yaml_path!["gitops", "repos"],
                "gitops needs at least one repository",
                Some("add `repos: [{url: https://git.example/platform.git, dir: repo}]`"),
            );
        }
        let mut urls = std::collections::HashSet::new();
        for (i, repo) in g.repos.iter().enumerate() {
            let at = yaml_path!["gitops", "repos", i].to_vec();
            let key = crate::scenario::normalize_repo_url(&repo.url);
            if key.is_empty() {
                let mut node = at.clone();
                node.push("url".into());
                self.problem(path, text, &node, "empty repository url", None);
            } else if !urls.insert(key) {
                let mut node = at.clone();
                node.push("url".into());
                self.problem(
                    path,
                    text,
                    &node,
                    format!("repository `{}` is declared twice", repo.url),
                    None,
                );
            }
            let mut node = at;
            node.push("dir".into());
            self.repo_dir(path, text, &node, &base.join(&repo.dir));
        }
    }

    /// Reads a repository directory and parses its manifests.
    fn repo_dir(&mut self, path: &Path, text: &str, at: &[Segment], dir: &Path) {
        if self.repo_dirs.contains_key(dir) {
            return;
        }
        let tree = match files::read_dir_in_tree(&self.tree, dir) {
            Ok(tree) => tree,
            Err(e) => {
                self.refused_reference(path, text, at, "repository directory", &e, "scenario");
                return;
            }
        };
        if tree.is_empty() {
            self.problem(
                path,
                text,
                at,
                format!("repository directory {} holds no files", dir.display()),
                None,
            );
        }
        for (rel, body) in &tree {
            if is_manifest(rel) {
                self.repo_manifest(&dir.join(rel), body);
            }
        }
        self.repo_dirs.insert(dir.to_owned(), tree);
    }

    /// Parses one manifest of a repository; a broken one is a problem at its own line.
    fn repo_manifest(&mut self, file: &Path, body: &str) {
        match yaml::documents(body) {
            Ok(docs) => {
                for (i, obj) in docs.iter().enumerate() {
                    if let Err(msg) = super::check_object(obj) {
                        let doc_index = super::nth_nonempty_document(body, i);
                        self.problems.push(Problem::at_path(
                            file,
                            body,
                            doc_index,
                            &[],
                            format!("invalid manifest (document {}): {msg}", i + 1),
                            None,
                        ));
                    }
                }
                self.repo_objects.extend(docs);
            }
            Err(e) => self.problems.push(Problem::from_yaml(file, body, &e)),
        }
    }

    pub(super) fn commit_step(
        &mut self,
        path: &Path,
        text: &str,
        at: &[Segment],
        base: &Path,
        c: &CommitStep,
    ) {
        let Some(g) = self.gitops.clone() else {
            self.problem(
                path,
                text,
                at,
                "commit step without a `gitops:` section",
                Some("declare `gitops: {engine: argocd, repos: [...]}`"),
            );
            return;
        };
        match &c.repo {
            None if g.repos.len() > 1 => self.problem(
                path,
                text,
                at,
                "commit step without `repo`: the scenario has several repositories",
                None,
            ),
            Some(url) => {
                let key = crate::scenario::normalize_repo_url(url);
                if !g
                    .repos
                    .iter()
                    .any(|r| crate::scenario::normalize_repo_url(&r.url) == key)
                {
                    let mut node = at.to_vec();
                    node.push("repo".into());
                    let known: Vec<&str> = g.repos.iter().map(|r| r.url.as_str()).collect();
                    self.problem(
                        path,
                        text,
                        &node,
                        format!("no repository `{url}` in `gitops.repos`"),
                        Some(&format!("declared: {}", known.join(", "))),
                    );
                }
            }
            None => {}
        }
        if c.dir.is_none() && c.files.is_empty() && c.remove.is_empty() {
            self.problem(
                path,
                text,
                at,
                "commit changes nothing: give `dir`, `files` or `remove`",
                None,
            );
        }
        if c.dir.is_some() && (!c.files.is_empty() || !c.remove.is_empty()) {
            self.problem(
                path,
                text,
                at,
                "commit has `dir` (the whole new tree) and `files` or `remove`: give one or the other",
                None,
            );
        }
        if let Some(dir) = &c.dir {
            let mut node = at.to_vec();
            node.push("dir".into());
            self.repo_dir(path, text, &node, &base.join(dir));
        }
        for (target, file) in &c.files {
            let mut node = at.to_vec();
            node.extend(yaml_path!["files", target.as_str()]);
            if target.is_empty() || target.starts_with('/') || target.split('/').any(|p| p == "..")
            {
                self.problem(
                    path,
                    text,
                    &node,
                    format!("invalid repository path `{target}`: expected a relative path inside the repository"),
                    None,
                );
            }
            let file = base.join(file);
            if self.repo_files.contains_key(&file) {
                continue;
            }
            match files::read_in_tree(&self.tree, &file) {
                Ok(body) => {
                    if is_manifest(target) {
                        self.repo_manifest(&file, &body);
                    }
                    self.repo_files.insert(file, body);
                }
                Err(e) => self.refused_reference(path, text, &node, "commit file", &e, "scenario"),
            }
        }
    }
}
