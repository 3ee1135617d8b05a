//! Reads scenario files strictly: the YAML, the fixtures they include and the manifests they apply.
//!
//! Loading never stops at the first semantic problem of a file: every problem found is reported,
//! each with its file, line and column.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::diagnostics::{LoadError, Problem};
use super::files::{self, FileError};
use super::kinds::KnownKinds;
use super::model::{Expectation, Fixture, ObjectRef, Scenario, Step};
use crate::yaml::{self, Segment};
use crate::yaml_path;

mod gitops_checks;

/// A scenario with its fixtures merged in and every file it applies read and checked.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// `<area>/<name>`: the directory below the scenarios root, then the scenario's name.
    pub id: String,
    /// The scenario file.
    pub path: PathBuf,
    /// The scenario, with fixtures merged and `apply.file` paths resolved against their files.
    pub scenario: Scenario,
    /// The objects of every applied file, by resolved path.
    pub manifests: BTreeMap<PathBuf, Vec<Value>>,
    /// The files of every GitOps repository and commit directory (`gitops.repos[].dir`,
    /// `commit.dir`), by resolved directory: path in the repository → content.
    pub repo_dirs: BTreeMap<PathBuf, BTreeMap<String, String>>,
    /// The single files commits write (`commit.files`), by resolved path.
    pub repo_files: BTreeMap<PathBuf, String>,
}

/// Directory names that hold files scenarios use, never scenarios themselves.
pub const NON_SCENARIO_DIRS: [&str; 3] = ["manifests", "fixtures", "repos"];

/// Finds scenario files: each path is a scenario file, or a directory searched recursively for
/// `*.yaml`/`*.yml` outside `manifests/`, `fixtures/` and `repos/` (GitOps repositories) directories. Returns (file, root)
/// pairs, the root being what scenario ids are relative to; sorted, without duplicates.
///
/// # Errors
/// Fails when a path does not exist or cannot be read.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<(PathBuf, PathBuf)>, LoadError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LoadError::NotFound {
                    path: path.clone(),
                    reason: "no such file or directory".to_owned(),
                }
            } else {
                LoadError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        if meta.is_dir() {
            walk(path, path, &mut found)?;
        } else {
            let root = path
                .ancestors()
                .skip(1)
                .find(|a| a.file_name().is_some_and(|n| n == "scenarios"))
                .or_else(|| path.parent())
                .unwrap_or_else(|| Path::new("."))
                .to_path_buf();
            found.push((path.clone(), root));
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    Ok(found)
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            if !NON_SCENARIO_DIRS.contains(&name.as_ref()) {
                walk(&path, root, out)?;
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push((path, root.to_owned()));
        }
    }
    Ok(())
}

/// Loads every scenario under `paths` and checks the suite as a whole (unique names).
///
/// Returns the scenarios that loaded and an error for each that did not.
///
/// # Errors
/// The outer error is for paths that cannot be searched at all.
pub fn load_suite(paths: &[PathBuf]) -> Result<(Vec<LoadedScenario>, Vec<LoadError>), LoadError> {
    let files = discover(paths)?;
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for (file, root) in &files {
        match load(file, root) {
            Ok(s) => loaded.push(s),
            Err(e) => errors.push(e),
        }
    }
    let mut first_by_name: HashMap<String, PathBuf> = HashMap::new();
    let mut keep = Vec::new();
    let roots: HashMap<&Path, &Path> = files
        .iter()
        .map(|(f, r)| (f.as_path(), r.as_path()))
        .collect();
    for s in loaded {
        if let Some(first) = first_by_name.get(&s.scenario.name) {
            let root = roots.get(s.path.as_path()).copied().unwrap_or(&s.path);
            let text = read(&files::tree_root(&s.path, root), &s.path).unwrap_or_default();
            errors.push(LoadError::Invalid {
                path: s.path.clone(),
                problems: vec![Problem::at_path(
                    &s.path,
                    &text,
                    0,
                    &yaml_path!["name"],
                    format!(
                        "duplicate scenario name `{}`: {} already uses it",
                        s.scenario.name,
                        first.display()
                    ),
                    Some(
                        "scenario names must be unique in the suite; rename one of them".to_owned(),
                    ),
                )],
            });
        } else {
            first_by_name.insert(s.scenario.name.clone(), s.path.clone());
            keep.push(s);
        }
    }
    Ok((keep, errors))
}

/// Loads one scenario file; `root` is the directory its id is relative to.
///
/// # Errors
/// [`LoadError::Read`] when a file cannot be read, [`LoadError::Invalid`] with every problem
/// found (syntax, unknown fields, wrong types, missing or malformed manifests and fixtures,
/// inconsistent settings).
pub fn load(path: &Path, root: &Path) -> Result<LoadedScenario, LoadError> {
    let tree = files::tree_root(path, root);
    let text = read(&tree, path)?;
    let mut scenario: Scenario = yaml::from_str(&text).map_err(|e| LoadError::Invalid {
        path: path.to_owned(),
        problems: vec![Problem::from_yaml(path, &text, &e)],
    })?;
    let mut ctx = Checker {
        problems: Vec::new(),
        manifests: BTreeMap::new(),
        tree,
        texts: BTreeMap::new(),
        kind_refs: Vec::new(),
        inline_objects: Vec::new(),
        kinds_recorded: HashSet::new(),
        gitops: scenario.gitops.clone(),
        repo_dirs: BTreeMap::new(),
        repo_files: BTreeMap::new(),
        repo_objects: Vec::new(),
    };
    let base = path.parent().unwrap_or_else(|| Path::new("."));

    ctx.check_scenario(path, &text, &scenario);
    ctx.check_gitops(path, &text, base, &scenario);
    if let Some(g) = &mut scenario.gitops {
        for repo in &mut g.repos {
            repo.dir = base.join(&repo.dir).to_string_lossy().into_owned();
        }
    }
    resolve_steps(base, &mut scenario.setup);
    resolve_steps(base, &mut scenario.break_.steps);
    resolve_steps(base, &mut scenario.fix);
    for m in &mut scenario.mutants {
        resolve_steps(base, &mut m.fix);
    }

    // Fixtures: merged in order, each before the scenario's own settings.
    let mut merged = Fixture::default();
    let mut seen = HashSet::new();
    for (i, inc) in scenario.include.iter().enumerate() {
        ctx.include(
            path,
            &text,
            &yaml_path!["include", i],
            base,
            inc,
            &mut merged,
            &mut seen,
        );
    }
    merge_fixture(&mut scenario, merged, path, &text, &mut ctx.problems);
    // Kinds last: every manifest and fixture is read, so every CRD the scenario applies is known.
    ctx.check_kinds();

    if !ctx.problems.is_empty() {
        return Err(LoadError::Invalid {
            path: path.to_owned(),
            problems: ctx.problems,
        });
    }
    let area = path
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let id = if area.is_empty() {
        scenario.name.clone()
    } else {
        format!("{area}/{}", scenario.name)
    };
    Ok(LoadedScenario {
        id,
        path: path.to_owned(),
        scenario,
        manifests: ctx.manifests,
        repo_dirs: ctx.repo_dirs,
        repo_files: ctx.repo_files,
    })
}

/// Reads a scenario file of the tree rooted at `tree`.
fn read(tree: &Path, path: &Path) -> Result<String, LoadError> {
    files::read_in_tree(tree, path).map_err(|e| match e {
        FileError::Unreadable { source, .. } => LoadError::Read {
            path: path.to_owned(),
            source,
        },
        FileError::NotUtf8 { .. } => LoadError::Invalid {
            path: path.to_owned(),
            problems: vec![not_utf8_problem(&e)],
        },
        refused => LoadError::Refused(refused),
    })
}

/// A [`FileError::NotUtf8`] as a problem pointing into its file (inside the tree).
fn not_utf8_problem(e: &FileError) -> Problem {
    match e {
        FileError::NotUtf8 {
            reference,
            location,
            byte,
            text,
        } => Problem::at(
            reference,
            text,
            Some(*location),
            files::not_utf8_message(*byte),
            "here",
            Some("save the file as UTF-8".to_owned()),
        ),
        other => Problem::at(Path::new(""), "", None, other.to_string(), "here", None),
    }
}

fn resolve_steps(base: &Path, steps: &mut [Step]) {
    let resolve = |f: &str| base.join(f).to_string_lossy().into_owned();
    for step in steps {
        match step {
            Step::Apply(apply) => {
                if let Some(file) = &apply.file {
                    apply.file = Some(resolve(file));
                }
            }
            Step::Commit(commit) => {
                if let Some(dir) = &commit.dir {
                    commit.dir = Some(resolve(dir));
                }
                for file in commit.files.values_mut() {
                    *file = resolve(file);
                }
            }
            _ => {}
        }
    }
}

fn merge_fixture(
    scenario: &mut Scenario,
    fixture: Fixture,
    path: &Path,
    text: &str,
    problems: &mut Vec<Problem>,
) {
    if let Some(cluster) = fixture.cluster {
        let own_nodes = std::mem::take(&mut scenario.cluster.nodes);
        for node in &own_nodes {
            if let Some(pos) = cluster.nodes.iter().position(|n| n.name == node.name) {
                let i = own_nodes
                    .iter()
                    .position(|n| n.name == node.name)
                    .unwrap_or(0);
                problems.push(Problem::at_path(
                    path,
                    text,
                    0,
                    &yaml_path!["cluster", "nodes", i, "name"],
                    format!(
                        "node `{}` is already defined by an included fixture (node {pos})",
                        node.name
                    ),
                    None,
                ));
            }
        }
        scenario.cluster.nodes = cluster.nodes.into_iter().chain(own_nodes).collect();
        let own_classes = std::mem::take(&mut scenario.cluster.storage_classes);
        scenario.cluster.storage_classes = cluster
            .storage_classes
            .into_iter()
            .chain(own_classes)
            .collect();
        if scenario.cluster.load_balancer == super::model::LoadBalancerProvider::None {
            scenario.cluster.load_balancer = cluster.load_balancer;
        }
    }
    for (image, behaviour) in fixture.images {
        scenario.images.entry(image).or_insert(behaviour);
    }
    if let Some(pg) = fixture.postgres {
        match &mut scenario.postgres {
            Some(own) => {
                own.hba = pg
                    .hba
                    .into_iter()
                    .chain(std::mem::take(&mut own.hba))
                    .collect();
                own.roles = pg
                    .roles
                    .into_iter()
                    .chain(std::mem::take(&mut own.roles))
                    .collect();
                own.databases = pg
                    .databases
                    .into_iter()
                    .chain(std::mem::take(&mut own.databases))
                    .collect();
            }
            None => scenario.postgres = Some(pg),
        }
    }
    let own_setup = std::mem::take(&mut scenario.setup);
    scenario.setup = fixture.setup.into_iter().chain(own_setup).collect();
}

struct Checker {
    problems: Vec<Problem>,
    manifests: BTreeMap<PathBuf, Vec<Value>>,
    /// The canonical root of the scenario tree: no referenced file is read outside it.
    tree: PathBuf,
    /// The text of each file a kind reference points into.
    texts: BTreeMap<PathBuf, String>,
    /// Every kind the scenario names, checked once all its CRDs are known.
    kind_refs: Vec<KindRef>,
    /// Objects applied inline (their CRDs count like those of manifest files).
    inline_objects: Vec<Value>,
    /// Manifest files whose kinds are recorded.
    kinds_recorded: HashSet<PathBuf>,
    /// The scenario's `gitops:` section.
    gitops: Option<super::Gitops>,
    /// See [`LoadedScenario::repo_dirs`].
    repo_dirs: BTreeMap<PathBuf, BTreeMap<String, String>>,
    /// See [`LoadedScenario::repo_files`].
    repo_files: BTreeMap<PathBuf, String>,
    /// The objects of every repository manifest (their CRDs count as the scenario's).
    repo_objects: Vec<Value>,
}

/// A kind (and `apiVersion`) a scenario names, with where it is written.
struct KindRef {
    file: PathBuf,
    /// The YAML document of `file` it is in.
    doc: usize,
    /// The node of the kind; that of the `apiVersion` is its sibling.
    node: Vec<Segment>,
    api_version: Option<String>,
    kind: String,
    /// Only the name must be known (`snapshot.kinds`, an event's `involvedKind`).
    name_only: bool,
}

impl Checker {
    /// A configuration source reads from exactly one place, and a `key` only inside a file.
    fn check_source(
        &mut self,
        path: &Path,
        text: &str,
        node: &[Segment],
        source: &super::model::ConfigSource,
    ) {
        if source.origins() != 1 {
            self.problem(
                path,
                text,
                node,
                "a configuration value is read from exactly one of `env`, `arg` or `file`",
                None,
            );
        }
        if source.key.is_some() && source.file.is_none() {
            self.problem(
                path,
                text,
                node,
                "`key` is a path inside a `file`; it needs `file`",
                None,
            );
        }
        if source.file.as_deref().is_some_and(|f| !f.starts_with('/')) {
            self.problem(
                path,
                text,
                node,
                "`file` is the absolute path the container sees, such as `/app/app-config.yaml`",
                None,
            );
        }
    }

    fn problem(
        &mut self,
        path: &Path,
        text: &str,
        node: &[Segment],
        message: impl Into<String>,
        help: Option<&str>,
    ) {
        self.problems.push(Problem::at_path(
            path,
            text,
            0,
            node,
            message,
            help.map(str::to_owned),
        ));
    }

    /// Records a kind named alone at `node` of `path`, where only its name must be known.
    fn kind_name_ref(&mut self, path: &Path, text: &str, node: &[Segment], kind: &str) {
        self.kind_ref(path, text, 0, node, None, kind);
        if let Some(r) = self.kind_refs.last_mut() {
            r.name_only = true;
        }
    }

    /// Records a kind named at `node` of `path` (key `kind`; its `apiVersion` beside it).
    fn kind_ref(
        &mut self,
        path: &Path,
        text: &str,
        doc: usize,
        node: &[Segment],
        api_version: Option<&str>,
        kind: &str,
    ) {
        self.texts
            .entry(path.to_owned())
            .or_insert_with(|| text.to_owned());
        self.kind_refs.push(KindRef {
            file: path.to_owned(),
            doc,
            node: node.to_vec(),
            api_version: api_version.map(str::to_owned),
            kind: kind.to_owned(),
            name_only: false,
        });
    }

    /// Records the kinds of a manifest file's objects (once per file).
    fn manifest_kinds(&mut self, file: &Path) {
        if !self.kinds_recorded.insert(file.to_owned()) {
            return;
        }
        let (Some(objects), Some(text)) = (self.manifests.get(file), self.texts.get(file)) else {
            return;
        };
        let mut refs = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            if let Some(kind) = o.get("kind").and_then(Value::as_str) {
                let api_version = o.get("apiVersion").and_then(Value::as_str);
                refs.push((
                    nth_nonempty_document(text, i),
                    api_version.map(str::to_owned),
                    kind.to_owned(),
                ));
            }
        }
        let text = text.clone();
        for (doc, api_version, kind) in refs {
            self.kind_ref(
                file,
                &text,
                doc,
                &yaml_path!["kind"],
                api_version.as_deref(),
                &kind,
            );
        }
    }

    /// Records the kind of an object reference at `node`.
    fn object_ref(&mut self, path: &Path, text: &str, node: &[Segment], r: &ObjectRef) {
        let mut at = node.to_vec();
        at.push("kind".into());
        self.kind_ref(path, text, 0, &at, r.api_version.as_deref(), &r.kind);
    }

    /// Checks every recorded kind against the built-in kinds and the scenario's CRDs.
    fn check_kinds(&mut self) {
        // Argo CD brings its own CRDs; what it syncs from a repository may bring more.
        let argocd = if self.gitops.is_some() {
            super::argocd_kinds()
        } else {
            Vec::new()
        };
        let known = KnownKinds::with_crds(
            self.manifests
                .values()
                .flatten()
                .chain(self.inline_objects.iter())
                .chain(argocd.iter())
                .chain(self.repo_objects.iter()),
        );
        for r in std::mem::take(&mut self.kind_refs) {
            let result = if r.name_only {
                known.check_name(&r.kind)
            } else {
                known.check(r.api_version.as_deref(), &r.kind)
            };
            let Err(p) = result else { continue };
            let mut node = r.node.clone();
            if p.at_api_version {
                node.pop();
                node.push("apiVersion".into());
            }
            let text = self.texts.get(&r.file).map_or("", String::as_str);
            self.problems.push(Problem::at_path(
                &r.file,
                text,
                r.doc,
                &node,
                p.message,
                Some(p.help),
            ));
        }
    }

    /// A referenced file that was refused or could not be read, reported at the reference.
    fn refused_reference(
        &mut self,
        path: &Path,
        text: &str,
        at: &[Segment],
        what: &str,
        err: &FileError,
        relative_to: &str,
    ) {
        if matches!(err, FileError::NotUtf8 { .. }) {
            self.problems.push(not_utf8_problem(err));
            return;
        }
        let help = match err {
            FileError::Outside { .. } => "file references must stay inside the scenario tree; files outside it are never read".to_owned(),
            FileError::NotRegular { .. } | FileError::TooLarge { .. } => format!(
                "only regular files of at most {} MiB are read",
                files::MAX_FILE_BYTES / 1024 / 1024
            ),
            FileError::Unreadable { .. } | FileError::NotUtf8 { .. } => {
                format!("paths are relative to the {relative_to} file")
            }
        };
        self.problem(path, text, at, format!("{what} {err}"), Some(&help));
    }

    fn check_scenario(&mut self, path: &Path, text: &str, s: &Scenario) {
        if !is_dns_label(&s.name) {
            self.problem(
                path,
                text,
                &yaml_path!["name"],
                format!("invalid scenario name `{}`: expected lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters", s.name),
                Some("for example `rwo-rollout-deadlock`"),
            );
        }
        if let Some(stem) = path.file_stem().and_then(|x| x.to_str())
            && stem != s.name
            && is_dns_label(&s.name)
        {
            self.problem(
                    path,
                    text,
                    &yaml_path!["name"],
                    format!("scenario name `{}` does not match its file name `{stem}`", s.name),
                    Some("name the file after the scenario, so trials and snapshots can be found from either"),
                );
        }
        if s.description.trim().is_empty() {
            self.problem(
                path,
                text,
                &yaml_path!["description"],
                "empty description: say what broke in a sentence",
                None,
            );
        }
        if s.source.trim().is_empty() {
            self.problem(
                path,
                text,
                &yaml_path!["source"],
                "empty source: name the incident report and section this scenario replays",
                None,
            );
        }
        self.check_cluster(path, text, s);
        for (image, b) in &s.images {
            for (i, p) in b.platforms.iter().enumerate() {
                let parts: Vec<&str> = p.split('/').collect();
                if !(2..=3).contains(&parts.len()) || parts.iter().any(|x| x.is_empty()) {
                    self.problem(
                        path,
                        text,
                        &[Segment::Key("images".into()), Segment::Key(image.clone()), Segment::Key("platforms".into()), Segment::Index(i)],
                        format!("invalid platform `{p}`: expected `os/arch` or `os/arch/variant`, such as `linux/amd64`"),
                        None,
                    );
                }
            }
            for (i, serve) in b.serves.iter().enumerate() {
                if let Some(source) = &serve.password {
                    let node = [
                        Segment::Key("images".into()),
                        Segment::Key(image.clone()),
                        Segment::Key("serves".into()),
                        Segment::Index(i),
                        Segment::Key("password".into()),
                    ];
                    self.check_source(path, text, &node, source);
                }
            }
            for (i, r) in b.requires.iter().enumerate() {
                if let super::model::Need::AnyOf(needs) = &r.needs {
                    let at = [
                        Segment::Key("images".into()),
                        Segment::Key(image.clone()),
                        Segment::Key("requires".into()),
                        Segment::Index(i),
                        Segment::Key("needs".into()),
                        Segment::Key("anyOf".into()),
                    ];
                    if needs.is_empty() {
                        self.problem(path, text, &at, "`anyOf` needs at least one need", None);
                    }
                    if needs.iter().any(|n| {
                        matches!(
                            n,
                            super::model::Need::Postgres(_) | super::model::Need::AnyOf(_)
                        )
                    }) {
                        self.problem(
                            path,
                            text,
                            &at,
                            "`anyOf` may not hold `postgres` or another `anyOf`",
                            None,
                        );
                    }
                }
                let access_needs: Vec<&super::model::AccessNeed> = r
                    .needs
                    .members()
                    .into_iter()
                    .filter_map(|n| match n {
                        super::model::Need::Access(x) => Some(x),
                        _ => None,
                    })
                    .collect();
                for a in access_needs {
                    let at = [
                        Segment::Key("images".into()),
                        Segment::Key(image.clone()),
                        Segment::Key("requires".into()),
                        Segment::Index(i),
                        Segment::Key("needs".into()),
                        Segment::Key("access".into()),
                    ];
                    if a.resource.is_some() == a.non_resource_url.is_some() {
                        self.problem(
                            path,
                            text,
                            &at,
                            "an access names exactly one of `resource` or `nonResourceURL`",
                            None,
                        );
                    }
                    if a.non_resource_url.is_some()
                        && (!a.group.is_empty()
                            || a.subresource.is_some()
                            || a.name.is_some()
                            || a.namespace.is_some())
                    {
                        self.problem(path, text, &at, "a `nonResourceURL` access has no `group`, `subresource`, `name` or `namespace`", None);
                    }
                    if a.non_resource_url
                        .as_deref()
                        .is_some_and(|u| !u.starts_with('/'))
                    {
                        self.problem(
                            path,
                            text,
                            &at,
                            "`nonResourceURL` is a path such as `/livez`",
                            None,
                        );
                    }
                }
                let config_needs: Vec<&super::model::ConfigNeed> = r
                    .needs
                    .members()
                    .into_iter()
                    .filter_map(|n| match n {
                        super::model::Need::Config(x) => Some(x),
                        _ => None,
                    })
                    .collect();
                let connect_needs: Vec<&super::model::ConnectNeed> = r
                    .needs
                    .members()
                    .into_iter()
                    .filter_map(|n| match n {
                        super::model::Need::Connect(x) => Some(x),
                        _ => None,
                    })
                    .collect();
                for c in connect_needs {
                    let at = vec![
                        Segment::Key("images".into()),
                        Segment::Key(image.clone()),
                        Segment::Key("requires".into()),
                        Segment::Index(i),
                        Segment::Key("needs".into()),
                        Segment::Key("connect".into()),
                    ];
                    if c.to.is_some() == c.url.is_some() {
                        self.problem(
                            path,
                            text,
                            &at,
                            "a connection goes to exactly one of `to` (a Service or host:port) or `url` (read from the configuration)",
                            None,
                        );
                    }
                    for (source, field) in [(&c.url, "url"), (&c.password, "password")] {
                        if let Some(source) = source {
                            let mut node = at.clone();
                            node.push(Segment::Key(field.into()));
                            self.check_source(path, text, &node, source);
                        }
                    }
                }
                for c in config_needs {
                    let at = [
                        Segment::Key("images".into()),
                        Segment::Key(image.clone()),
                        Segment::Key("requires".into()),
                        Segment::Index(i),
                        Segment::Key("needs".into()),
                        Segment::Key("config".into()),
                    ];
                    for (source, where_) in [
                        (c.source(), None),
                        (c.same_as.clone().unwrap_or_default(), Some("sameAs")),
                    ] {
                        if where_.is_some() && c.same_as.is_none() {
                            continue;
                        }
                        let mut node = at.to_vec();
                        if let Some(w) = where_ {
                            node.push(Segment::Key(w.into()));
                        }
                        if source.origins() != 1 {
                            self.problem(path, text, &node, "a configuration value is read from exactly one of `env`, `arg` or `file`", None);
                        }
                        if source.key.is_some() && source.file.is_none() {
                            self.problem(
                                path,
                                text,
                                &node,
                                "`key` is a path inside a `file`; it needs `file`",
                                None,
                            );
                        }
                        if source.file.as_deref().is_some_and(|f| !f.starts_with('/')) {
                            self.problem(path, text, &node, "`file` is the absolute path the container sees, such as `/app/app-config.yaml`", None);
                        }
                    }
                    if let Some(m) = &c.matches {
                        for problem in super::operators::check_operators(m) {
                            let mut node = at.to_vec();
                            node.push("matches".into());
                            self.problem(
                                path,
                                text,
                                &node,
                                format!("in `matches`: {problem}"),
                                None,
                            );
                        }
                    }
                }
            }
        }
        for (image, b) in &s.images {
            for (i, rule) in b.operator.iter().enumerate() {
                self.check_reports(path, text, image, i, &rule.reports);
            }
        }
        let base = path.parent().unwrap_or_else(|| Path::new(".")).to_owned();
        self.check_steps(
            path,
            text,
            &base,
            &yaml_path!["setup"],
            &s.setup,
            s.postgres.is_some(),
        );
        self.check_steps(
            path,
            text,
            &base,
            &yaml_path!["break", "steps"],
            &s.break_.steps,
            s.postgres.is_some(),
        );
        self.check_steps(
            path,
            text,
            &base,
            &yaml_path!["fix"],
            &s.fix,
            s.postgres.is_some(),
        );
        let mut mutant_names = HashSet::new();
        for (i, m) in s.mutants.iter().enumerate() {
            if !is_dns_label(&m.name) {
                self.problem(
                    path,
                    text,
                    &yaml_path!["mutants", i, "name"],
                    format!("invalid mutant name `{}`: expected lowercase letters, digits and `-` (e.g. `secret-without-key`)", m.name),
                    None,
                );
            }
            if !mutant_names.insert(m.name.as_str()) {
                self.problem(
                    path,
                    text,
                    &yaml_path!["mutants", i, "name"],
                    format!("duplicate mutant name `{}`", m.name),
                    None,
                );
            }
            if m.fix.is_empty() {
                self.problem(
                    path,
                    text,
                    &yaml_path!["mutants", i, "fix"],
                    "a mutant without fix steps is the counterfactual: give the wrong fix's steps",
                    None,
                );
            }
            self.check_steps(
                path,
                text,
                &base,
                &yaml_path!["mutants", i, "fix"],
                &m.fix,
                s.postgres.is_some(),
            );
        }
        if s.break_.symptoms.is_empty() {
            self.problem(path, text, &yaml_path!["break", "symptoms"], "no symptoms: the break phase must name at least one symptom that proves the failure was reproduced", None);
        }
        for (i, e) in s.healthy.iter().enumerate() {
            let at = yaml_path!["healthy", i];
            self.check_expectation(path, text, &at, e, false, s.postgres.is_some());
        }
        for (i, e) in s.break_.symptoms.iter().enumerate() {
            let at = yaml_path!["break", "symptoms", i];
            self.check_expectation(path, text, &at, e, true, s.postgres.is_some());
        }
        if s.fix.is_empty() {
            self.problem(
                path,
                text,
                &yaml_path!["fix"],
                "no fix steps: a scenario replays a documented fix",
                None,
            );
        }
        if s.converge.expect.is_empty() {
            self.problem(
                path,
                text,
                &yaml_path!["converge", "expect"],
                "no expectations: converge must say what healthy means",
                None,
            );
        }
        for (i, e) in s.converge.expect.iter().enumerate() {
            let at = yaml_path!["converge", "expect", i];
            self.check_expectation(path, text, &at, e, false, s.postgres.is_some());
        }
        if !s.counterfactual.enabled
            && s.counterfactual
                .reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty())
        {
            self.problem(
                path,
                text,
                &yaml_path!["counterfactual", "enabled"],
                "the counterfactual run is disabled without a reason",
                Some("add `reason:` saying why this scenario would heal without its fix"),
            );
        }
        for (i, kind) in s.snapshot.kinds.iter().enumerate() {
            self.kind_name_ref(path, text, &yaml_path!["snapshot", "kinds", i], kind);
        }
        for (i, r) in s.snapshot.exclude.iter().enumerate() {
            self.object_ref(path, text, &yaml_path!["snapshot", "exclude", i], r);
        }
        for (backend, o) in [
            ("sim", &s.backends.sim),
            ("k3d", &s.backends.k3d),
            ("kubeconfig", &s.backends.kubeconfig),
        ] {
            if o.as_ref().is_some_and(|o| o.skip.trim().is_empty()) {
                self.problem(
                    path,
                    text,
                    &yaml_path!["backends", backend, "skip"],
                    "empty skip reason: say why this backend cannot reproduce the failure",
                    None,
                );
            }
        }
    }

    /// An operator rule's report cases: a case without `when` hides the ones after it, and
    /// `matches` trees use known operators.
    fn check_reports(
        &mut self,
        path: &Path,
        text: &str,
        image: &str,
        rule: usize,
        reports: &[super::reports::Report],
    ) {
        let at = |case: usize| {
            vec![
                Segment::Key("images".into()),
                Segment::Key(image.to_owned()),
                Segment::Key("operator".into()),
                Segment::Index(rule),
                Segment::Key("reports".into()),
                Segment::Index(case),
            ]
        };
        for (j, case) in reports.iter().enumerate() {
            if case.when.is_empty() && j + 1 < reports.len() {
                self.problem(path, text, &at(j), "this case has no `when`, so it always applies and the cases after it never do: move it last", None);
            }
            for (k, o) in case.when.iter().enumerate() {
                let (tree, key) = match o {
                    super::reports::Observe::Object(obj) | super::reports::Observe::Absent(obj) => {
                        (obj.matches.as_ref(), Some("matches"))
                    }
                    super::reports::Observe::Matches(m) => (Some(m), None),
                    _ => (None, None),
                };
                let Some(tree) = tree else { continue };
                for problem in super::operators::check_operators(tree) {
                    let mut node = at(j);
                    node.push(Segment::Key("when".into()));
                    node.push(Segment::Index(k));
                    if let Some(key) = key {
                        node.push(Segment::Key(key.into()));
                    }
                    self.problem(path, text, &node, format!("in `matches`: {problem}"), None);
                }
            }
        }
    }

    fn check_cluster(&mut self, path: &Path, text: &str, s: &Scenario) {
        let mut names = HashSet::new();
        for (i, n) in s.cluster.nodes.iter().enumerate() {
            if !is_dns_subdomain(&n.name) {
                self.problem(path, text, &yaml_path!["cluster", "nodes", i, "name"], format!("invalid node name `{}`: expected a DNS subdomain (lowercase letters, digits, `-` and `.`)", n.name), None);
            }
            if !names.insert(n.name.as_str()) {
                self.problem(
                    path,
                    text,
                    &yaml_path!["cluster", "nodes", i, "name"],
                    format!("duplicate node name `{}`", n.name),
                    None,
                );
            }
        }
        let defaults: Vec<usize> = s
            .cluster
            .storage_classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.default)
            .map(|(i, _)| i)
            .collect();
        if defaults.len() > 1 {
            self.problem(
                path,
                text,
                &yaml_path!["cluster", "storageClasses", defaults[1], "default"],
                "more than one default storage class",
                None,
            );
        }
    }

    fn check_steps(
        &mut self,
        path: &Path,
        text: &str,
        base: &Path,
        at: &[Segment],
        steps: &[Step],
        has_pg: bool,
    ) {
        for (i, step) in steps.iter().enumerate() {
            let mut here = at.to_vec();
            here.push(Segment::Index(i));
            here.push(Segment::Key(step.keyword().to_owned()));
            match step {
                Step::Apply(a) => match (&a.file, &a.inline) {
                    (Some(file), None) => {
                        let mut at_file = here.clone();
                        at_file.push("file".into());
                        let file = base.join(file);
                        self.manifest_file(path, text, &at_file, &file);
                        if a.expect_error.is_none() {
                            self.manifest_kinds(&file);
                        }
                    }
                    (None, Some(inline)) => {
                        let mut at_inline = here.clone();
                        at_inline.push("inline".into());
                        let objects: Vec<&Value> = match inline {
                            Value::Array(items) => items.iter().collect(),
                            other => vec![other],
                        };
                        for (j, obj) in objects.into_iter().enumerate() {
                            let mut node = at_inline.clone();
                            if inline.is_array() {
                                node.push(Segment::Index(j));
                            }
                            self.inline_objects.push(obj.clone());
                            if let (Some(kind), None) =
                                (obj.get("kind").and_then(Value::as_str), &a.expect_error)
                            {
                                let mut at_kind = node.clone();
                                at_kind.push("kind".into());
                                let api_version = obj.get("apiVersion").and_then(Value::as_str);
                                self.kind_ref(path, text, 0, &at_kind, api_version, kind);
                            }
                            if let Err(msg) = check_object(obj) {
                                self.problem(
                                    path,
                                    text,
                                    &node,
                                    format!("invalid inline object: {msg}"),
                                    None,
                                );
                            }
                        }
                    }
                    (Some(_), Some(_)) => self.problem(
                        path,
                        text,
                        &here,
                        "apply has both `file` and `inline`: give exactly one",
                        None,
                    ),
                    (None, None) => self.problem(
                        path,
                        text,
                        &here,
                        "apply needs `file` (a manifest path) or `inline` (objects)",
                        None,
                    ),
                },
                Step::Patch(p) => {
                    let mut at_object = here.clone();
                    at_object.push("object".into());
                    self.object_ref(path, text, &at_object, &p.object);
                    let ok = match p.kind {
                        super::model::PatchType::Json => p.patch.is_array(),
                        _ => p.patch.is_object(),
                    };
                    if !ok {
                        let mut node = here.clone();
                        node.push("patch".into());
                        let expected = if p.kind == super::model::PatchType::Json {
                            "a list of operations (type: json)"
                        } else {
                            "a mapping"
                        };
                        self.problem(
                            path,
                            text,
                            &node,
                            format!("invalid patch: expected {expected}"),
                            None,
                        );
                    }
                }
                Step::Sql(sql) => {
                    if !has_pg {
                        self.problem(path, text, &here, "sql step without a `postgres:` section: declare the server's roles and databases", None);
                    }
                    if let Some(e) = &sql.expect_error
                        && !is_sqlstate(&e.sqlstate)
                    {
                        let mut node = here.clone();
                        node.extend(yaml_path!["expectError", "sqlstate"]);
                        self.problem(path, text, &node, format!("invalid SQLSTATE `{}`: expected five digits or uppercase letters, such as `42501`", e.sqlstate), None);
                    }
                }
                Step::Expect(e) => {
                    here.pop();
                    here.push("expect".into());
                    self.check_expectation(path, text, &here, e, true, has_pg);
                }
                Step::Delete(super::model::DeleteStep { object, .. })
                | Step::Scale(super::model::ScaleStep { object, .. }) => {
                    let mut at_object = here.clone();
                    at_object.push("object".into());
                    self.object_ref(path, text, &at_object, object);
                }
                Step::RolloutRestart(object) => self.object_ref(path, text, &here, object),
                Step::Fault(f) => {
                    if let Some(msg) = super::faults::check_fault(f) {
                        self.problem(path, text, &here, msg, None);
                    }
                }
                Step::AddNode(super::model::Node { name, .. })
                | Step::RemoveNode(super::shape::NodeRemoval { name }) => {
                    if !is_dns_subdomain(name) {
                        let mut node = here.clone();
                        node.push("name".into());
                        self.problem(path, text, &node, format!("invalid node name `{name}`: expected a DNS subdomain (lowercase letters, digits, `-` and `.`)"), None);
                    }
                }
                Step::Commit(c) => self.commit_step(path, text, &here, base, c),
                Step::Sleep(_) | Step::EndFault(_) | Step::LoadBalancer(_) => {}
            }
        }
    }

    fn check_expectation(
        &mut self,
        path: &Path,
        text: &str,
        at: &[Segment],
        e: &Expectation,
        needs_deadline: bool,
        has_pg: bool,
    ) {
        let mut here = at.to_vec();
        here.push(Segment::Key(e.keyword().to_owned()));
        if needs_deadline && e.within().is_none() {
            self.problem(
                path,
                text,
                &here,
                format!("{} expectation has no deadline", e.keyword()),
                Some("add `within:` with a duration such as `2m`"),
            );
        }
        match e {
            Expectation::Object(o) => {
                let mut node = here.clone();
                node.push("kind".into());
                self.kind_ref(path, text, 0, &node, o.api_version.as_deref(), &o.kind);
            }
            Expectation::Absent(a) => {
                let mut node = here.clone();
                node.push("object".into());
                self.object_ref(path, text, &node, &a.object);
            }
            Expectation::Event(ev) => {
                if let Some(kind) = &ev.involved_kind {
                    let mut node = here.clone();
                    node.push("involvedKind".into());
                    self.kind_name_ref(path, text, &node, kind);
                }
            }
            Expectation::App(a) => {
                if self.gitops.is_none() {
                    self.problem(
                        path,
                        text,
                        &here,
                        "app expectation without a `gitops:` section",
                        Some("declare `gitops: {engine: argocd, repos: [...]}`"),
                    );
                }
                let o = a.to_object();
                for problem in super::operators::check_operators(&o.matches) {
                    self.problem(path, text, &here, format!("in `app`: {problem}"), None);
                }
            }
            Expectation::Log(_) | Expectation::SqlError(_) | Expectation::Sql(_) => {}
        }
        if let Expectation::Object(o) = e {
            for problem in super::operators::check_operators(&o.matches) {
                let mut node = here.clone();
                node.push("matches".into());
                self.problem(path, text, &node, format!("in `matches`: {problem}"), None);
            }
        }
        match e {
            Expectation::Object(o) if !o.matches.is_object() => {
                let mut node = here.clone();
                node.push("matches".into());
                self.problem(
                    path,
                    text,
                    &node,
                    "`matches` must be a mapping: a partial tree of the object's fields",
                    None,
                );
            }
            Expectation::SqlError(s) => {
                if !has_pg {
                    self.problem(
                        path,
                        text,
                        &here,
                        "sqlError expectation without a `postgres:` section",
                        None,
                    );
                }
                if !is_sqlstate(&s.sqlstate) {
                    let mut node = here.clone();
                    node.push("sqlstate".into());
                    self.problem(path, text, &node, format!("invalid SQLSTATE `{}`: expected five digits or uppercase letters, such as `28P01`", s.sqlstate), None);
                }
            }
            Expectation::Sql(_) if !has_pg => {
                self.problem(
                    path,
                    text,
                    &here,
                    "sql expectation without a `postgres:` section",
                    None,
                );
            }
            Expectation::Log(l) if l.pod.is_none() && l.labels.is_empty() => {
                self.problem(
                    path,
                    text,
                    &here,
                    "log expectation needs `pod` or `labels` to choose pods",
                    None,
                );
            }
            _ => {}
        }
    }

    fn manifest_file(&mut self, path: &Path, text: &str, at: &[Segment], file: &Path) {
        if self.manifests.contains_key(file) {
            return;
        }
        let body = match files::read_in_tree(&self.tree, file) {
            Ok(body) => body,
            Err(e) => {
                self.refused_reference(path, text, at, "manifest file", &e, "scenario");
                return;
            }
        };
        let docs = match yaml::documents(&body) {
            Ok(docs) => docs,
            Err(e) => {
                self.problems.push(Problem::from_yaml(file, &body, &e));
                return;
            }
        };
        // Empty documents were skipped by `documents`; count them back to locate by index.
        let mut ok = true;
        for (i, obj) in docs.iter().enumerate() {
            if let Err(msg) = check_object(obj) {
                ok = false;
                let doc_index = nth_nonempty_document(&body, i);
                self.problems.push(Problem::at_path(
                    file,
                    &body,
                    doc_index,
                    &[],
                    format!("invalid manifest (document {}): {msg}", i + 1),
                    None,
                ));
            }
        }
        if docs.is_empty() {
            ok = false;
            self.problem(
                path,
                text,
                at,
                format!("manifest file {} contains no objects", file.display()),
                None,
            );
        }
        if ok {
            self.manifests.insert(file.to_owned(), docs);
            self.texts.insert(file.to_owned(), body);
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the context of one reference check"
    )]
    fn include(
        &mut self,
        path: &Path,
        text: &str,
        at: &[Segment],
        base: &Path,
        inc: &str,
        merged: &mut Fixture,
        seen: &mut HashSet<PathBuf>,
    ) {
        let file = base.join(inc);
        if !seen.insert(file.clone()) {
            self.problem(
                path,
                text,
                at,
                format!(
                    "fixture {} is included twice (or includes itself)",
                    file.display()
                ),
                None,
            );
            return;
        }
        let body = match files::read_in_tree(&self.tree, &file) {
            Ok(body) => body,
            Err(e) => {
                self.refused_reference(path, text, at, "fixture", &e, "including");
                return;
            }
        };
        let mut fixture: Fixture = match yaml::from_str(&body) {
            Ok(f) => f,
            Err(e) => {
                self.problems.push(Problem::from_yaml(&file, &body, &e));
                return;
            }
        };
        let fbase = file.parent().unwrap_or_else(|| Path::new(".")).to_owned();
        for (i, nested) in std::mem::take(&mut fixture.include).iter().enumerate() {
            self.include(
                &file,
                &body,
                &yaml_path!["include", i],
                &fbase,
                nested,
                merged,
                seen,
            );
        }
        self.check_steps(
            &file,
            &body,
            &fbase,
            &yaml_path!["setup"],
            &fixture.setup,
            fixture.postgres.is_some() || merged.postgres.is_some(),
        );
        resolve_steps(&fbase, &mut fixture.setup);
        if let Some(c) = fixture.cluster {
            let m = merged.cluster.get_or_insert_with(Default::default);
            m.nodes.extend(c.nodes);
            m.storage_classes.extend(c.storage_classes);
            if c.load_balancer != super::model::LoadBalancerProvider::None {
                m.load_balancer = c.load_balancer;
            }
        }
        for (k, v) in fixture.images {
            merged.images.insert(k, v);
        }
        if let Some(pg) = fixture.postgres {
            match &mut merged.postgres {
                Some(m) => {
                    m.hba.extend(pg.hba);
                    m.roles.extend(pg.roles);
                    m.databases.extend(pg.databases);
                    m.ssl = pg.ssl;
                }
                None => merged.postgres = Some(pg),
            }
        }
        merged.setup.extend(fixture.setup);
    }
}

/// Index among all documents (empty ones included) of the `n`th non-empty document.
fn nth_nonempty_document(text: &str, n: usize) -> usize {
    let mut seen = 0;
    for (index, doc) in text.split("\n---").enumerate() {
        let has_content = doc.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "---"
        });
        if has_content {
            if seen == n {
                return index;
            }
            seen += 1;
        }
    }
    n
}

/// A Kubernetes object needs `apiVersion`, `kind` and `metadata.name` as strings.
fn check_object(obj: &Value) -> Result<(), String> {
    let Value::Object(map) = obj else {
        return Err("expected a mapping with apiVersion, kind and metadata".to_owned());
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(format!("`{field}` must be a non-empty string")),
            None => return Err(format!("missing `{field}`")),
        }
    }
    match map
        .get("metadata")
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
    {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        _ => Err("missing `metadata.name`".to_owned()),
    }
}

/// RFC 1123 label: what Kubernetes accepts as a namespace or a scenario name.
#[must_use]
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_sqlstate(s: &str) -> bool {
    s.len() == 5
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}
