//! Argument parsing and the subcommands. Errors become diagnostics and exit codes here, at the edge.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use relapse::backend::{self, Availability, BackendKind};
use relapse::scenario::{self, LoadError, LoadedScenario};

/// Process exit codes, documented in `--help` and the README.
pub mod exit {
    /// Everything that ran passed.
    pub const PASS: u8 = 0;
    /// A scenario failed (a symptom not reproduced, no convergence, snapshot mismatch, ...).
    pub const SCENARIO_FAILED: u8 = 1;
    /// Invalid input or a setup error: bad scenario files, bad arguments, unavailable backend.
    pub const INVALID: u8 = 2;
}

const AFTER_HELP: &str = "\
Exit codes: 0 all passed, 1 a scenario failed, 2 invalid input or setup error.

Scenario files live under ./scenarios/<area>/<name>.yaml; manifests they apply sit next to them
(in manifests/ directories) and shared base environments in fixtures/ directories.
Start with `relapse new my-incident --area workloads`, then `relapse validate`.";

/// relapse replays fixed Kubernetes incidents so they never come back: each scenario builds a
/// cluster, breaks it the way production broke (proving the symptom appears), applies the
/// documented fix and checks that the cluster converges.
#[derive(Debug, Parser)]
#[command(name = "relapse", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the scenarios under PATHS (default: ./scenarios).
    List {
        /// Scenario files or directories.
        paths: Vec<PathBuf>,
        /// Only scenarios with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Check scenario files strictly (fields, types, referenced files) without running them.
    Validate {
        /// Scenario files or directories (default: ./scenarios).
        paths: Vec<PathBuf>,
    },
    /// Run scenarios: setup, break, fix, converge, snapshot, then the counterfactual.
    Run {
        /// Scenario files or directories (default: ./scenarios).
        paths: Vec<PathBuf>,
        /// Where to run them.
        #[arg(long, value_enum, default_value_t = Backend::Sim)]
        backend: Backend,
        /// Only scenarios whose id (`area/name`) contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Also write the results as JUnit XML to this file (for CI dashboards).
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
        /// Where the converged-state snapshots live.
        #[arg(long, value_name = "DIR", default_value = "snapshots")]
        snapshots: PathBuf,
        /// When a scenario fails, keep its simulated cluster up (at the moment of failure),
        /// write a kubeconfig for it and wait for Ctrl-C, so it can be inspected with kubectl.
        #[arg(long)]
        keep: bool,
        /// The kubeconfig of the existing cluster (`--backend kubeconfig`; default:
        /// RELAPSE_KUBECONFIG).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig context to use (default: its current context).
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// Let scenarios create, change and delete cluster-scoped objects (CRDs, ClusterRoles...)
        /// on an existing cluster; those they create are deleted after each run.
        #[arg(long)]
        allow_cluster_scoped: bool,
    },
    /// Create a new scenario file from a commented template.
    New {
        /// Scenario name: lowercase words joined by `-`, e.g. `redis-auth-mismatch`.
        name: String,
        /// Area directory under the scenarios directory, e.g. `workloads` or `postgres`.
        #[arg(long, default_value = "workloads")]
        area: String,
        /// The scenarios directory.
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of scenario files, or write the committed copies.
    Schema {
        /// Write scenarios/scenario.schema.json and scenarios/fixture.schema.json under DIR.
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".")]
        write: Option<PathBuf>,
        /// Print the fixture schema instead of the scenario schema.
        #[arg(long)]
        fixture: bool,
    },
    /// Delete k3d clusters left behind by relapse runs whose process is gone.
    Gc {
        /// Also delete the namespaces such runs left on the cluster of a kubeconfig context
        /// (those labelled app.kubernetes.io/managed-by=relapse whose relapse.dev/owner
        /// process is gone).
        #[arg(long)]
        namespaces: bool,
        /// The kubeconfig for --namespaces (default: KUBECONFIG, then ~/.kube/config).
        #[arg(long, value_name = "PATH", requires = "namespaces")]
        kubeconfig: Option<PathBuf>,
        /// The context for --namespaces (default: the kubeconfig's current context).
        #[arg(long, value_name = "NAME", requires = "namespaces")]
        context: Option<String>,
    },
    /// Work with a simulated cluster by hand (kubectl against it).
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Start a simulated cluster with its controllers in the foreground and write a kubeconfig
    /// for it; Ctrl-C stops it and removes the kubeconfig.
    Up {
        /// Where to write the kubeconfig (mode 0600).
        #[arg(long, default_value = "relapse-sim.kubeconfig")]
        kubeconfig: PathBuf,
        /// `wall`: simulated time follows the clock; `fast`: it jumps to the next timer
        /// whenever the cluster is idle (back-offs of minutes pass in milliseconds).
        #[arg(long, value_enum, default_value_t = PaceArg::Wall)]
        pace: PaceArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PaceArg {
    /// Simulated time follows wall time.
    Wall,
    /// Simulated time jumps to the next timer when the cluster is idle.
    Fast,
}

/// Where `run --backend kubeconfig` points.
#[derive(Debug, Clone, Default)]
struct Target {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    allow_cluster_scoped: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    /// The embedded simulated cluster.
    Sim,
    /// k3s clusters created with k3d (needs Docker; RELAPSE_K3S_VERSION picks the k3s version).
    K3d,
    /// An existing cluster (--kubeconfig, or RELAPSE_KUBECONFIG), in namespaces of its own.
    Kubeconfig,
}

impl From<Backend> for BackendKind {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Sim => Self::Sim,
            Backend::K3d => Self::K3d,
            Backend::Kubeconfig => Self::Kubeconfig,
        }
    }
}

/// Parses arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::INVALID
            } else {
                exit::PASS
            });
        }
    };
    ExitCode::from(match cli.command {
        Command::List { paths, tag } => list(&default_paths(paths), tag.as_deref()),
        Command::Validate { paths } => validate(&default_paths(paths)),
        Command::Run {
            paths,
            backend,
            filter,
            junit,
            snapshots,
            keep,
            kubeconfig,
            context,
            allow_cluster_scoped,
        } => run(
            &default_paths(paths),
            backend.into(),
            filter.as_deref(),
            junit.as_deref(),
            &snapshots,
            keep,
            &Target {
                kubeconfig,
                context,
                allow_cluster_scoped,
            },
        ),
        Command::New { name, area, dir } => new(&name, &area, &dir),
        Command::Schema { write, fixture } => schema(write.as_deref(), fixture),
        Command::Sim {
            command: SimCommand::Up { kubeconfig, pace },
        } => sim_up(&kubeconfig, pace),
        Command::Gc {
            namespaces,
            kubeconfig,
            context,
        } => gc(namespaces.then_some((kubeconfig.as_deref(), context.as_deref()))),
    })
}

fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    }
}

/// Loads the suite and prints every problem; `None` when anything was invalid.
fn load_all(paths: &[PathBuf]) -> Option<Vec<LoadedScenario>> {
    let (loaded, errors) = match scenario::load_suite(paths) {
        Ok(r) => r,
        Err(e) => {
            report(e);
            return None;
        }
    };
    if errors.is_empty() {
        if loaded.is_empty() {
            eprintln!(
                "error: no scenario files found under {}",
                display_paths(paths)
            );
            return None;
        }
        return Some(loaded);
    }
    let failed = errors.len();
    for e in errors {
        report(e);
    }
    eprintln!(
        "error: {failed} of {} scenario file{} invalid",
        loaded.len() + failed,
        if loaded.len() + failed == 1 {
            " is"
        } else {
            "s are"
        }
    );
    None
}

fn report(err: LoadError) {
    match err {
        LoadError::Invalid { problems, .. } => {
            for p in problems {
                eprintln!("{:?}", miette::Report::new(p));
            }
        }
        other => eprintln!("{:?}", miette::Report::new(other)),
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(paths: &[PathBuf], tag: Option<&str>) -> u8 {
    let Some(scenarios) = load_all(paths) else {
        return exit::INVALID;
    };
    let rows: Vec<&LoadedScenario> = scenarios
        .iter()
        .filter(|s| tag.is_none_or(|t| s.scenario.tags.iter().any(|x| x == t)))
        .collect();
    let width = rows.iter().map(|s| s.id.len()).max().unwrap_or(0).max(2);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:width$}  {:24}  DESCRIPTION", "ID", "TAGS");
    for s in &rows {
        let tags = s.scenario.tags.join(",");
        let description = s
            .scenario
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let description = truncate(&description, 80);
        let _ = writeln!(out, "{:width$}  {tags:24}  {description}", s.id);
    }
    let _ = writeln!(
        out,
        "{} scenario{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    exit::PASS
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn validate(paths: &[PathBuf]) -> u8 {
    let Some(scenarios) = load_all(paths) else {
        return exit::INVALID;
    };
    let manifests: usize = scenarios
        .iter()
        .map(|s| s.manifests.values().map(Vec::len).sum::<usize>())
        .sum();
    println!(
        "{} scenario{} valid ({manifests} manifest objects checked)",
        scenarios.len(),
        if scenarios.len() == 1 { "" } else { "s" }
    );
    exit::PASS
}

fn run(
    paths: &[PathBuf],
    backend: BackendKind,
    filter: Option<&str>,
    junit: Option<&Path>,
    snapshots: &Path,
    keep: bool,
    target: &Target,
) -> u8 {
    use relapse::run::outcome::Verdict;
    use relapse::run::phases::{SnapshotSettings, run_scenario_keeping};
    use relapse::run::snapshot_file::UpdateMode;

    let Some(scenarios) = load_all(paths) else {
        return exit::INVALID;
    };
    let selected: Vec<&LoadedScenario> = scenarios
        .iter()
        .filter(|s| filter.is_none_or(|f| s.id.contains(f)))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "error: no scenario matches the filter `{}`",
            filter.unwrap_or_default()
        );
        return exit::INVALID;
    }
    let explicit = backend == BackendKind::Kubeconfig && target.kubeconfig.is_some();
    if !explicit && let Availability::Unavailable(reason) = backend::availability(backend) {
        eprintln!("error: backend {backend} cannot run here: {reason}");
        return exit::INVALID;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::INVALID;
        }
    };
    let settings = SnapshotSettings {
        dir: snapshots.to_path_buf(),
        mode: UpdateMode::from_env(),
    };
    let provisioner: Box<dyn relapse::run::phases::Provisioner> = match backend {
        BackendKind::Kubeconfig => match runtime.block_on(kubeconfig_backend(target)) {
            Ok(p) => {
                // Ctrl-C deletes the namespaces (and allowed cluster-scoped objects) of the run.
                runtime.spawn(async {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("interrupted: deleting the run's namespaces");
                        let _ = tokio::task::spawn_blocking(
                            relapse::backend::kubeconfig::release_live_runs,
                        )
                        .await;
                        std::process::exit(130);
                    }
                });
                Box::new(p)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INVALID;
            }
        },
        BackendKind::K3d => match relapse::backend::k3d::K3dBackend::from_env() {
            Ok(p) => {
                // Ctrl-C stops k3d and deletes every cluster the run created.
                let _guard = runtime.enter();
                if let Err(e) = relapse::backend::k3d::install_ctrl_c_cleanup() {
                    eprintln!("error: {:#}", anyhow::Error::new(e));
                    return exit::INVALID;
                }
                Box::new(p)
            }
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::new(e));
                return exit::INVALID;
            }
        },
        BackendKind::Sim => Box::new(relapse::backend::sim::SimBackend::default()),
    };
    let provisioner = provisioner.as_ref();
    let mut outcomes = Vec::new();
    for s in &selected {
        eprintln!("{backend}::{} ...", s.id);
        let (outcome, failed_cluster) =
            runtime.block_on(run_scenario_keeping(provisioner, s, &settings));
        match &outcome.verdict {
            Verdict::Passed => eprintln!(
                "{}  passed  {}",
                outcome.trial_name(),
                relapse::report::timeline(&outcome)
            ),
            Verdict::Ignored(reason) => eprintln!("{}  ignored: {reason}", outcome.trial_name()),
            Verdict::Failed(f) => eprint!("{}", relapse::report::failure_details(&outcome, f)),
        }
        outcomes.push(outcome);
        if let (true, Some(cluster)) = (keep, failed_cluster) {
            let name = s.id.replace('/', "__");
            runtime.block_on(keep_for_inspection(cluster.as_ref(), &name));
            break;
        }
    }
    if selected.iter().any(|s| s.scenario.postgres.is_some())
        && let Ok(provider) = relapse::postgres::shared()
        && let Err(e) = runtime.block_on(provider.shutdown())
    {
        // The server's watchdog still removes it once this process exits.
        eprintln!("warning: {:#}", anyhow::Error::new(e));
    }
    println!();
    print!("{}", relapse::report::summary_table(&outcomes));
    if let Some(path) = junit {
        let written = relapse::report::junit_xml(&outcomes)
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
            .and_then(|xml| std::fs::write(path, xml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: failed to write {}: {e}", path.display());
            return exit::INVALID;
        }
    }
    if outcomes
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Failed(_)))
    {
        exit::SCENARIO_FAILED
    } else {
        exit::PASS
    }
}

/// The kubeconfig backend for `--kubeconfig`/`--context`, or `RELAPSE_KUBECONFIG`.
async fn kubeconfig_backend(
    target: &Target,
) -> Result<relapse::backend::kubeconfig::KubeconfigBackend, String> {
    let path = target
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os(backend::KUBECONFIG_ENV).map(PathBuf::from))
        .ok_or_else(|| format!("pass --kubeconfig or set {}", backend::KUBECONFIG_ENV))?;
    relapse::backend::kubeconfig::KubeconfigBackend::from_file(&path, target.context.as_deref())
        .await
        .map(|b| b.allow_cluster_scoped(target.allow_cluster_scoped))
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
}

fn new(name: &str, area: &str, dir: &Path) -> u8 {
    if !scenario::is_dns_label(name) {
        eprintln!(
            "error: invalid scenario name `{name}`: expected lowercase letters, digits and `-` (e.g. `redis-auth-mismatch`)"
        );
        return exit::INVALID;
    }
    let area_ok = !area.is_empty() && area.split('/').all(scenario::is_dns_label);
    if !area_ok {
        eprintln!(
            "error: invalid area `{area}`: expected lowercase words joined by `-`, optionally nested with `/`"
        );
        return exit::INVALID;
    }
    let folder = dir.join(area);
    let path = folder.join(format!("{name}.yaml"));
    if path.exists() {
        eprintln!(
            "error: {} already exists; pick another name or edit that file",
            path.display()
        );
        return exit::INVALID;
    }
    let depth = area.split('/').count();
    let schema = format!("{}scenario.schema.json", "../".repeat(depth));
    let text = template(name, &schema);
    if let Err(e) = std::fs::create_dir_all(&folder).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
    }) {
        eprintln!("error: failed to write {}: {e}", path.display());
        return exit::INVALID;
    }
    println!("created {}", path.display());
    println!(
        "next: replace the TODOs with the incident's real texts, then run `relapse validate {}`",
        path.display()
    );
    exit::PASS
}

/// The commented scaffold `relapse new` writes.
pub fn template(name: &str, schema_path: &str) -> String {
    include_str!("template.yaml")
        .replace("SCHEMA_PATH", schema_path)
        .replace("NAME", name)
}

fn schema(write: Option<&Path>, fixture: bool) -> u8 {
    use relapse::scenario::schema as s;
    match write {
        None => {
            print!(
                "{}",
                if fixture {
                    s::fixture_schema()
                } else {
                    s::scenario_schema()
                }
            );
            exit::PASS
        }
        Some(root) => {
            for (rel, text) in [
                (s::SCENARIO_SCHEMA_PATH, s::scenario_schema()),
                (s::FIXTURE_SCHEMA_PATH, s::fixture_schema()),
            ] {
                let path = root.join(rel);
                if let Err(e) = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, text))
                {
                    eprintln!("error: failed to write {}: {e}", path.display());
                    return exit::INVALID;
                }
                println!("wrote {}", path.display());
            }
            exit::PASS
        }
    }
}

fn sim_up(kubeconfig: &Path, pace: PaceArg) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::INVALID;
        }
    };
    let pace = match pace {
        PaceArg::Wall => relapse::backend::served::Pace::Wall,
        PaceArg::Fast => relapse::backend::served::Pace::Fast,
    };
    match runtime.block_on(serve_sim(kubeconfig, pace)) {
        Ok(()) => exit::PASS,
        Err(e) => {
            eprintln!("error: {e}");
            exit::INVALID
        }
    }
}

/// Serves a simulated cluster with its controllers until Ctrl-C, then removes its kubeconfig.
async fn serve_sim(kubeconfig: &Path, pace: relapse::backend::served::Pace) -> Result<(), String> {
    use relapse::backend::served::ServedSim;
    use relapse::sim::engine::EngineConfig;
    let chain = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut cur = e.source();
        while let Some(s) = cur {
            text.push_str(": ");
            text.push_str(&s.to_string());
            cur = s.source();
        }
        text
    };
    let config =
        EngineConfig::new(Default::default(), Default::default()).map_err(|e| chain(&e))?;
    let sim = ServedSim::start(config, pace)
        .await
        .map_err(|e| chain(&e))?;
    sim.endpoint()
        .write_kubeconfig(kubeconfig)
        .map_err(|e| chain(&e))?;
    println!(
        "simulated cluster serving at {} ({} pace)",
        sim.endpoint().url,
        match pace {
            relapse::backend::served::Pace::Wall => "wall",
            relapse::backend::served::Pace::Fast => "fast",
        }
    );
    println!("export KUBECONFIG={}", kubeconfig.display());
    let waited = tokio::signal::ctrl_c().await;
    drop(sim);
    let _ = std::fs::remove_file(kubeconfig);
    waited.map_err(|e| format!("failed to wait for Ctrl-C: {e}"))
}

/// Deletes leftover k3d clusters and, with `namespaces` (kubeconfig, context), leftover
/// namespaces on that cluster.
fn gc(namespaces: Option<(Option<&Path>, Option<&str>)>) -> u8 {
    let clusters = gc_clusters(namespaces.is_some());
    let namespaces = namespaces.map_or(exit::PASS, |(kubeconfig, context)| {
        gc_namespaces(kubeconfig, context)
    });
    clusters.max(namespaces)
}

/// `relapse gc` for k3d clusters; without k3d that is an error unless `optional`.
fn gc_clusters(optional: bool) -> u8 {
    use relapse::backend::k3d;
    let k3d = match k3d::K3d::from_path() {
        Ok(k) => k,
        Err(k3d::K3dError::NotInstalled) if optional => {
            println!("k3d is not on PATH: no k3d clusters to check");
            return exit::PASS;
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            return exit::INVALID;
        }
    };
    match k3d::gc(&k3d) {
        Ok(report) => {
            for (name, why) in &report.deleted {
                println!("deleted {name}: {why}");
            }
            for (name, why) in &report.kept {
                println!("kept {name}: {why}");
            }
            for (name, err) in &report.failed {
                eprintln!("error: failed to delete {name}: {err}");
            }
            println!(
                "{} deleted, {} kept, {} failed",
                report.deleted.len(),
                report.kept.len(),
                report.failed.len()
            );
            if report.failed.is_empty() {
                exit::PASS
            } else {
                exit::INVALID
            }
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            exit::INVALID
        }
    }
}

/// `relapse gc --namespaces` on the cluster of `kubeconfig` (default: KUBECONFIG or
/// ~/.kube/config) and `context` (default: its current one).
fn gc_namespaces(kubeconfig: Option<&Path>, context: Option<&str>) -> u8 {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::INVALID;
        }
    };
    let chain = |e: anyhow::Error| format!("{e:#}");
    let result = runtime.block_on(async {
        let file = match kubeconfig {
            Some(path) => Kubeconfig::read_from(path).map_err(|e| {
                chain(anyhow::Error::new(e).context(format!(
                    "failed to read the kubeconfig {}",
                    path.display()
                )))
            })?,
            None => Kubeconfig::read().map_err(|e| {
                chain(anyhow::Error::new(e).context(
                    "failed to read the kubeconfig (KUBECONFIG or ~/.kube/config); pass --kubeconfig",
                ))
            })?,
        };
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| chain(anyhow::Error::new(e).context("failed to use the kubeconfig")))?;
        let client = kube::Client::try_from(config).map_err(|e| {
            chain(anyhow::Error::new(e).context("failed to build a Kubernetes client"))
        })?;
        relapse::backend::kubeconfig::gc_namespaces(&client)
            .await
            .map_err(|e| chain(anyhow::Error::new(e).context("failed to list namespaces")))
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    for (name, why) in &report.deleted {
        println!("deleted namespace {name}: {why}");
    }
    for name in &report.terminating {
        println!("namespace {name} is already being deleted");
    }
    for (name, why) in &report.kept {
        println!("kept namespace {name}: {why}");
    }
    for (name, err) in &report.failed {
        eprintln!("error: failed to delete namespace {name}: {err}");
    }
    println!(
        "{} namespaces deleted, {} kept, {} failed",
        report.deleted.len(),
        report.kept.len(),
        report.failed.len()
    );
    if report.failed.is_empty() {
        exit::PASS
    } else {
        exit::INVALID
    }
}

/// Serves a failed cluster for kubectl until Ctrl-C, then removes its kubeconfig.
async fn keep_for_inspection(cluster: &dyn relapse::backend::Cluster, name: &str) {
    let inspection = match cluster.serve_for_inspection().await {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "error: cannot keep the cluster: {:#}",
                anyhow::Error::new(e)
            );
            return;
        }
    };
    let path = std::env::temp_dir().join(format!("relapse-{name}.kubeconfig"));
    if let Err(e) = inspection.write_kubeconfig(&path) {
        eprintln!("error: {:#}", anyhow::Error::new(e));
        return;
    }
    eprintln!();
    eprintln!("kept the failed cluster as it was at the failure; inspect it with:");
    eprintln!("  export KUBECONFIG={}", path.display());
    eprintln!("  kubectl get pods -A");
    eprintln!("press Ctrl-C to stop it");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("error: failed to wait for Ctrl-C: {e}");
    }
    drop(inspection);
    let _ = std::fs::remove_file(&path);
}
