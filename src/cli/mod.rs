//! Argument parsing and the subcommands. Errors become diagnostics and exit codes here, at the edge.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use relapse::backend::BackendKind;
use relapse::error_chain::error_chain;
use relapse::scenario::{self, LoadError, LoadedScenario};

mod capture;
mod error;
mod kubeconfig;
mod logging;
mod pause;

pub use error::{CliError, exit};

const AFTER_HELP: &str = "\
Exit codes: 0 all passed, 1 a scenario failed, 2 invalid input or setup error, 130 interrupted.

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
        /// Keep the first scenario's cluster afterwards for kubectl, printing its kubeconfig,
        /// until Ctrl-C: `on-failure` (what `--keep` alone means) as it was at the failure,
        /// `always` also after a pass, `never`.
        #[arg(
            long,
            value_enum,
            value_name = "WHEN",
            num_args = 0..=1,
            default_missing_value = "on-failure",
            default_value_t = KeepArg::Never,
            hide_default_value = true,
            hide_possible_values = true
        )]
        keep: KeepArg,
        /// Pause each scenario right after this phase of its first run (`break`, `fix` or
        /// `converge`) with its cluster reachable, print its kubeconfig, and go on when Enter
        /// is pressed (or stdin ends); Ctrl-C stops the run and cleans up.
        #[arg(long, value_enum, value_name = "PHASE", hide_possible_values = true)]
        pause_after: Option<PauseArg>,
        /// The kubeconfig of the existing cluster (`--backend kubeconfig`; default:
        /// RELAPSE_KUBECONFIG).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig context to use (default: its current context).
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// After each scenario that passed, replay it once per fix step with that step left out
        /// (on the simulated cluster) and report which steps are necessary.
        #[arg(long)]
        ablate: bool,
        /// Let scenarios create, change and delete cluster-scoped objects (CRDs, ClusterRoles...)
        /// on an existing cluster; those they create are deleted after each run.
        #[arg(long)]
        allow_cluster_scoped: bool,
        /// Write a timeline report per trial (self-contained HTML: phases, pod and object
        /// states, events, when symptoms and convergence held) and an index.html into DIR
        /// (default for `cargo test`: RELAPSE_REPORT_DIR).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// How to print the end-of-run summary on stdout: a `text` table or `json`.
        #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
        format: SummaryFormat,
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
    /// Print the scenario catalogue (incident, source, symptoms, fix, backends, mutants), or
    /// write scenarios/CATALOG.md.
    Catalog {
        /// Scenario files or directories (default: ./scenarios).
        paths: Vec<PathBuf>,
        /// `markdown` (default) or `json`.
        #[arg(long, value_enum, default_value_t = CatalogFormat::Markdown)]
        format: CatalogFormat,
        /// Add each trial's last result from this JUnit file.
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
        /// Write the Markdown catalogue to scenarios/CATALOG.md instead of printing it.
        #[arg(long)]
        write: bool,
    },
    /// Add to a JUnit report of `cargo nextest` (profile `ci`, `junit.report-skipped`) the
    /// reason each ignored scenario trial was ignored, as `cargo test` prints it.
    ///
    /// Plans the trials as the test harness does on this machine (the same environment:
    /// RELAPSE_KUBECONFIG, RELAPSE_REQUIRE_K3D, Docker and k3d) and rewrites FILE in place.
    JunitSkips {
        /// The JUnit file, e.g. target/nextest/ci/junit.xml.
        file: PathBuf,
        /// Scenario files or directories (default: ./scenarios).
        paths: Vec<PathBuf>,
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
    /// Clean up after relapse processes that are gone: kubeconfigs, k3d clusters.
    ///
    /// Removes the kubeconfigs that killed `sim up` and `run --keep` processes wrote (a file
    /// `sim up --force` replaced is put back), then deletes their k3d clusters.
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
    /// Turn a live incident (or kubectl's dumps of one) into a scenario: its manifests,
    /// symptoms, image behaviours and cluster shape; the fix is left to write.
    Capture(capture::CaptureArgs),
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
        /// Where to write the kubeconfig (mode 0600); an existing file is refused unless
        /// --force.
        #[arg(long, default_value = "relapse-sim.kubeconfig")]
        kubeconfig: PathBuf,
        /// Use the --kubeconfig file even if it exists; its original content and mode are put
        /// back when the cluster stops.
        #[arg(long)]
        force: bool,
        /// `wall`: simulated time follows the clock; `fast`: it jumps to the next timer
        /// whenever the cluster is idle (back-offs of minutes pass in milliseconds).
        #[arg(long, value_enum, default_value_t = PaceArg::Wall)]
        pace: PaceArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CatalogFormat {
    /// A Markdown page.
    Markdown,
    /// JSON, one object per scenario.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SummaryFormat {
    /// A table for people.
    Text,
    /// JSON: each trial's verdict, phases and recovery figures.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeepArg {
    /// When a scenario fails.
    OnFailure,
    /// Also after a pass.
    Always,
    /// Never.
    Never,
}

impl From<KeepArg> for relapse::run::Keep {
    fn from(k: KeepArg) -> Self {
        match k {
            KeepArg::OnFailure => Self::OnFailure,
            KeepArg::Always => Self::Always,
            KeepArg::Never => Self::Never,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PauseArg {
    /// Once the symptoms were seen.
    Break,
    /// Once the fix was applied.
    Fix,
    /// Once the cluster converged.
    Converge,
}

impl From<PauseArg> for relapse::run::PauseAt {
    fn from(p: PauseArg) -> Self {
        match p {
            PauseArg::Break => Self::Break,
            PauseArg::Fix => Self::Fix,
            PauseArg::Converge => Self::Converge,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PaceArg {
    /// Simulated time follows wall time.
    Wall,
    /// Simulated time jumps to the next timer when the cluster is idle.
    Fast,
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
    logging::init();
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
    let result = match cli.command {
        Command::List { paths, tag } => list(&default_paths(paths), tag.as_deref()),
        Command::Validate { paths } => validate(&default_paths(paths)),
        Command::Run {
            paths,
            backend,
            filter,
            junit,
            snapshots,
            keep,
            pause_after,
            kubeconfig,
            context,
            allow_cluster_scoped,
            ablate,
            report,
            format,
        } => run(&RunArgs {
            paths: default_paths(paths),
            backend: backend.into(),
            filter,
            junit,
            snapshots,
            keep,
            pause_after,
            kubeconfig,
            context,
            allow_cluster_scoped,
            ablate,
            report,
            format,
        }),
        Command::New { name, area, dir } => new(&name, &area, &dir),
        Command::Schema { write, fixture } => schema(write.as_deref(), fixture),
        Command::Catalog {
            paths,
            format,
            junit,
            write,
        } => catalog(&default_paths(paths), format, junit.as_deref(), write),
        Command::JunitSkips { file, paths } => junit_skips(&file, &default_paths(paths)),
        Command::Sim {
            command:
                SimCommand::Up {
                    kubeconfig,
                    force,
                    pace,
                },
        } => sim_up(&kubeconfig, force, pace),
        Command::Capture(args) => capture::run(&args),
        Command::Gc {
            namespaces,
            kubeconfig,
            context,
        } => gc(namespaces.then_some((kubeconfig.as_deref(), context.as_deref()))),
    };
    match result {
        Ok(()) => ExitCode::from(exit::PASS),
        Err(e) => {
            e.print();
            ExitCode::from(e.exit_code())
        }
    }
}

fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    }
}

/// Loads the suite and prints every problem; [`CliError::Reported`] when anything was invalid.
fn load_all(paths: &[PathBuf]) -> Result<Vec<LoadedScenario>, CliError> {
    let (loaded, errors) = match scenario::load_suite(paths) {
        Ok(r) => r,
        Err(e) => {
            report(e);
            return Err(CliError::Reported);
        }
    };
    if errors.is_empty() {
        if loaded.is_empty() {
            return Err(CliError::Invalid(format!(
                "no scenario files found under {}",
                display_paths(paths)
            )));
        }
        return Ok(loaded);
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
    Err(CliError::Reported)
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

fn list(paths: &[PathBuf], tag: Option<&str>) -> Result<(), CliError> {
    let scenarios = load_all(paths)?;
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
    Ok(())
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

fn validate(paths: &[PathBuf]) -> Result<(), CliError> {
    let scenarios = load_all(paths)?;
    let manifests: usize = scenarios
        .iter()
        .map(|s| s.manifests.values().map(Vec::len).sum::<usize>())
        .sum();
    println!(
        "{} scenario{} valid ({manifests} manifest objects checked)",
        scenarios.len(),
        if scenarios.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The arguments of `relapse run`.
struct RunArgs {
    paths: Vec<PathBuf>,
    backend: BackendKind,
    filter: Option<String>,
    junit: Option<PathBuf>,
    snapshots: PathBuf,
    keep: KeepArg,
    pause_after: Option<PauseArg>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    allow_cluster_scoped: bool,
    ablate: bool,
    report: Option<PathBuf>,
    format: SummaryFormat,
}

/// `relapse run`: plans the selected scenarios on one backend and runs them through the
/// library's runner, the same path the test harness takes.
fn run(args: &RunArgs) -> Result<(), CliError> {
    use relapse::run::outcome::Verdict;
    use relapse::run::snapshot_file::UpdateMode;
    use relapse::run::{Plan, RunOptions, Runner, SnapshotSettings, plan, runner};

    check_run_arguments(args)?;
    let scenarios = load_all(&args.paths)?;
    let selected: Vec<Arc<LoadedScenario>> = scenarios
        .into_iter()
        .filter(|s| args.filter.as_deref().is_none_or(|f| s.id.contains(f)))
        .map(Arc::new)
        .collect();
    if selected.is_empty() {
        return Err(CliError::Invalid(format!(
            "no scenario matches the filter `{}`",
            args.filter.as_deref().unwrap_or_default()
        )));
    }
    if let Some(path) = &args.kubeconfig
        && !path.is_file()
    {
        return Err(CliError::Invalid(format!(
            "--kubeconfig {}: no such file",
            path.display()
        )));
    }
    let options = RunOptions {
        snapshots: SnapshotSettings {
            dir: args.snapshots.clone(),
            mode: UpdateMode::from_env(),
        },
        target: plan::kubeconfig_from(args.kubeconfig.clone(), args.context.clone()),
        allow_cluster_scoped: args.allow_cluster_scoped,
        require_k3d: runner::env_is_one(plan::REQUIRE_K3D_ENV),
        report_dir: args.report.clone(),
    };
    let plan = Plan::new(&selected, &[args.backend], &options);
    let pause = args
        .pause_after
        .map(|at| (at, Arc::new(pause::CliPause::default())));
    let runner = match &pause {
        Some((at, hook)) => {
            Runner::new(options).with_pause(relapse::run::Pause::new((*at).into(), hook.clone()))
        }
        None => Runner::new(options),
    };
    let pause = pause.map(|(_, hook)| hook);
    if plan
        .trials
        .iter()
        .any(|t| t.decision == relapse::run::Decision::Run)
    {
        runner.prepare(args.backend).map_err(CliError::Invalid)?;
        // A pause listens for signals itself; after it, they must still clean up.
        if args.backend != BackendKind::Sim || pause.is_some() {
            runner
                .install_interrupt_cleanup()
                .map_err(CliError::Invalid)?;
        }
    }
    let mut outcomes = Vec::new();
    for trial in &plan.trials {
        if trial.decision == relapse::run::Decision::Run {
            eprintln!("{} ...", trial.name());
        }
        let result = runner.run_keeping(trial, args.keep.into());
        let outcome = result.outcome;
        if pause.as_ref().is_some_and(|p| p.interrupted()) {
            // Its cluster was released as after any failure; clean up the rest and stop.
            drop(result.kept);
            for problem in runner.finish() {
                eprintln!("warning: {problem}");
            }
            return Err(CliError::Interrupted);
        }
        match &outcome.verdict {
            Verdict::Passed => eprintln!(
                "{}  passed  {}",
                outcome.trial_name(),
                relapse::report::timeline(&outcome)
            ),
            Verdict::Ignored(reason) => eprintln!("{}  ignored: {reason}", outcome.trial_name()),
            Verdict::Failed(f) => eprint!("{}", relapse::report::failure_details(&outcome, f)),
        }
        if args.ablate && trial.mutant.is_none() && matches!(outcome.verdict, Verdict::Passed) {
            match runner.ablate(trial) {
                Ok(found) => {
                    for n in found {
                        let verdict = match (&n.error, n.necessary) {
                            (Some(e), _) => format!("could not tell: {e}"),
                            (None, true) => "necessary".to_owned(),
                            (None, false) => "not necessary: it converges without it".to_owned(),
                        };
                        eprintln!(
                            "{}  fix[{}] ({}): {verdict}",
                            outcome.trial_name(),
                            n.index,
                            n.step
                        );
                    }
                }
                Err(e) => eprintln!("{}  ablation: {e}", outcome.trial_name()),
            }
        }
        let passed = matches!(outcome.verdict, Verdict::Passed);
        outcomes.push(outcome);
        if let Some(kept) = result.kept {
            keep_for_inspection(&kept, &trial.scenario.id.replace('/', "__"), passed);
            break;
        }
        if args.keep == KeepArg::Always && passed && trial.mutant.is_none() {
            eprintln!(
                "note: not kept: the counterfactual run reused the names of this {} cluster's run; pause it with --pause-after converge instead",
                trial.backend
            );
        }
    }
    for problem in runner.finish() {
        eprintln!("warning: {problem}");
    }
    match args.format {
        SummaryFormat::Text => {
            println!();
            print!("{}", relapse::report::summary_table(&outcomes));
            if let Some(dir) = &args.report {
                println!(
                    "timeline reports: {}",
                    dir.join(relapse::report::html::INDEX).display()
                );
            }
        }
        SummaryFormat::Json => println!("{}", relapse::report::json_summary(&outcomes)),
    }
    if let Some(path) = &args.junit {
        let xml = relapse::report::junit_xml(&outcomes)
            .map_err(|e| CliError::failed("failed to render the JUnit report", e))?;
        std::fs::write(path, xml)
            .map_err(|e| CliError::failed(format!("failed to write {}", path.display()), e))?;
    }
    if outcomes
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Failed(_)))
    {
        Err(CliError::ScenariosFailed)
    } else {
        Ok(())
    }
}

/// Refuses arguments that cannot work, before anything is loaded or run: options of another
/// backend, a JUnit path that cannot be written.
fn check_run_arguments(args: &RunArgs) -> Result<(), CliError> {
    if args.backend != BackendKind::Kubeconfig {
        for (given, option) in [
            (args.kubeconfig.is_some(), "--kubeconfig"),
            (args.context.is_some(), "--context"),
        ] {
            if given {
                return Err(CliError::Invalid(format!(
                    "{option} chooses the cluster of --backend kubeconfig; the {} backend makes its own",
                    args.backend
                )));
            }
        }
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::Invalid(format!(
                "--report {}: cannot create the directory: {e}",
                dir.display()
            ))
        })?;
    }
    if let Some(path) = &args.junit {
        check_writable(path).map_err(|e| {
            CliError::Invalid(format!(
                "--junit {}: cannot write there: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// Whether `path` can be written, leaving it as it was (a file created to find out is removed).
fn check_writable(path: &Path) -> std::io::Result<()> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    if !existed {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

fn new(name: &str, area: &str, dir: &Path) -> Result<(), CliError> {
    if !scenario::is_dns_label(name) {
        return Err(CliError::Invalid(format!(
            "invalid scenario name `{name}`: expected lowercase letters, digits and `-` (e.g. `redis-auth-mismatch`)"
        )));
    }
    let area_ok = !area.is_empty() && area.split('/').all(scenario::is_dns_label);
    if !area_ok {
        return Err(CliError::Invalid(format!(
            "invalid area `{area}`: expected lowercase words joined by `-`, optionally nested with `/`"
        )));
    }
    let folder = dir.join(area);
    let path = folder.join(format!("{name}.yaml"));
    if path.exists() {
        return Err(CliError::Invalid(format!(
            "{} already exists; pick another name or edit that file",
            path.display()
        )));
    }
    let depth = area.split('/').count();
    let schema = format!("{}scenario.schema.json", "../".repeat(depth));
    let text = template(name, &schema);
    std::fs::create_dir_all(&folder)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
        })
        .map_err(|e| CliError::failed(format!("failed to write {}", path.display()), e))?;
    println!("created {}", path.display());
    println!(
        "next: replace the TODOs with the incident's real texts, then run `relapse validate {}`",
        path.display()
    );
    Ok(())
}

/// `relapse catalog`: the scenario catalogue, printed or written to scenarios/CATALOG.md.
fn junit_skips(file: &Path, paths: &[PathBuf]) -> Result<(), CliError> {
    use relapse::backend::BackendKind;
    use relapse::run::{Decision, Plan, RunOptions};
    let scenarios: Vec<std::sync::Arc<LoadedScenario>> = load_all(paths)?
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    let options = RunOptions::from_env(PathBuf::from("snapshots"));
    let reasons: std::collections::BTreeMap<String, String> =
        Plan::new(&scenarios, &BackendKind::ALL, &options)
            .trials
            .into_iter()
            .filter_map(|t| match &t.decision {
                Decision::Ignore(reason) => Some((t.name(), reason.clone())),
                Decision::Run | Decision::Fail(_) => None,
            })
            .collect();
    let xml = std::fs::read_to_string(file)
        .map_err(|e| CliError::failed(format!("failed to read {}", file.display()), e))?;
    let (text, count) = relapse::report::add_skip_reasons(&xml, &reasons)
        .map_err(|e| CliError::failed(file.display(), e))?;
    // Written beside it and renamed over it, so a failed write never leaves half a report.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| CliError::failed(format!("failed to write {}", file.display()), e))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| CliError::failed(format!("failed to write {}", file.display()), e))?;
    tmp.persist(file)
        .map_err(|e| CliError::failed(format!("failed to write {}", file.display()), e.error))?;
    println!(
        "{}: gave {count} skipped trial{} the reason it was ignored",
        file.display(),
        if count == 1 { "" } else { "s" }
    );
    Ok(())
}

fn catalog(
    paths: &[PathBuf],
    format: CatalogFormat,
    junit: Option<&Path>,
    write: bool,
) -> Result<(), CliError> {
    use relapse::report::catalog;
    let scenarios = load_all(paths)?;
    let junit = junit
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| CliError::failed(format!("failed to read {}", p.display()), e))
        })
        .transpose()?;
    let entries = catalog::entries(&scenarios, junit.as_deref());
    let text = match format {
        CatalogFormat::Markdown => catalog::markdown(&entries),
        CatalogFormat::Json => serde_json::to_string_pretty(&entries)
            .map_err(|e| CliError::failed("failed to render the catalogue", e))?,
    };
    if write {
        let path = Path::new(catalog::CATALOG_PATH);
        std::fs::write(path, catalog::markdown(&entries))
            .map_err(|e| CliError::failed(format!("failed to write {}", path.display()), e))?;
        println!("wrote {} ({} scenarios)", path.display(), entries.len());
    } else {
        print!("{text}");
    }
    Ok(())
}

/// The commented scaffold `relapse new` writes.
pub fn template(name: &str, schema_path: &str) -> String {
    include_str!("template.yaml")
        .replace("SCHEMA_PATH", schema_path)
        .replace("NAME", name)
}

fn schema(write: Option<&Path>, fixture: bool) -> Result<(), CliError> {
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
            Ok(())
        }
        Some(root) => {
            for (rel, text) in [
                (s::SCENARIO_SCHEMA_PATH, s::scenario_schema()),
                (s::FIXTURE_SCHEMA_PATH, s::fixture_schema()),
            ] {
                let path = root.join(rel);
                path.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, text))
                    .map_err(|e| {
                        CliError::failed(format!("failed to write {}", path.display()), e)
                    })?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

fn sim_up(kubeconfig: &Path, force: bool, pace: PaceArg) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("failed to start the async runtime", e))?;
    let pace = match pace {
        PaceArg::Wall => relapse::backend::served::Pace::Wall,
        PaceArg::Fast => relapse::backend::served::Pace::Fast,
    };
    runtime.block_on(serve_sim(kubeconfig, force, pace))
}

/// Serves a simulated cluster with its controllers until Ctrl-C, then removes its kubeconfig
/// (or puts back the file `force` replaced).
async fn serve_sim(
    kubeconfig: &Path,
    force: bool,
    pace: relapse::backend::served::Pace,
) -> Result<(), CliError> {
    use relapse::backend::served::ServedSim;
    use relapse::sim::engine::EngineConfig;
    let config =
        EngineConfig::new(Default::default(), Default::default()).map_err(CliError::from_error)?;
    let sim = ServedSim::start(config, pace)
        .await
        .map_err(CliError::from_error)?;
    let yaml = sim
        .endpoint()
        .kubeconfig_yaml()
        .map_err(CliError::from_error)?;
    // Listening before the kubeconfig is written: a signal right after it must not end the
    // process with the file in place.
    let mut stop = kubeconfig::StopSignals::listen()?;
    let written = kubeconfig::UserKubeconfig::write(kubeconfig, &yaml, force)?;
    println!(
        "simulated cluster serving at {} ({} pace)",
        sim.endpoint().url,
        match pace {
            relapse::backend::served::Pace::Wall => "wall",
            relapse::backend::served::Pace::Fast => "fast",
        }
    );
    println!("export KUBECONFIG={}", kubeconfig.display());
    stop.recv().await;
    drop(sim);
    drop(written);
    Ok(())
}

/// Deletes leftover k3d clusters and, with `namespaces` (kubeconfig, context), leftover
/// namespaces on that cluster.
fn gc(namespaces: Option<(Option<&Path>, Option<&str>)>) -> Result<(), CliError> {
    let local = gc_local();
    let clusters = gc_clusters();
    let namespaces = namespaces.map_or(Ok(()), |(kubeconfig, context)| {
        gc_namespaces(kubeconfig, context)
    });
    // All run; the first failure is the one reported (the others printed their own lines).
    local.and(clusters).and(namespaces)
}

/// `relapse gc` for this machine: the kubeconfigs and private directories of `sim up` and
/// `run --keep` processes that were killed (see [`kubeconfig::gc`]).
fn gc_local() -> Result<(), CliError> {
    let report = kubeconfig::gc();
    for line in &report.cleaned {
        println!("{line}");
    }
    for line in &report.kept {
        println!("kept {line}");
    }
    Ok(())
}

/// `relapse gc` for k3d clusters; without k3d there are none to check.
fn gc_clusters() -> Result<(), CliError> {
    use relapse::backend::k3d;
    let k3d = match k3d::K3d::from_path() {
        Ok(k) => k,
        Err(k3d::K3dError::NotInstalled) => {
            println!("k3d is not on PATH: no k3d clusters to check");
            return Ok(());
        }
        Err(e) => return Err(CliError::from_error(e)),
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
                Ok(())
            } else {
                Err(CliError::Reported)
            }
        }
        Err(e) => Err(CliError::from_error(e)),
    }
}

/// `relapse gc --namespaces` on the cluster of `kubeconfig` (default: KUBECONFIG or
/// ~/.kube/config) and `context` (default: its current one).
fn gc_namespaces(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<(), CliError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("failed to start the async runtime", e))?;
    let chain = |context: &str, e: &dyn std::error::Error| format!("{context}: {}", error_chain(e));
    let result = runtime.block_on(async {
        let file = match kubeconfig {
            Some(path) => Kubeconfig::read_from(path).map_err(|e| {
                chain(
                    &format!("failed to read the kubeconfig {}", path.display()),
                    &e,
                )
            })?,
            None => Kubeconfig::read().map_err(|e| {
                chain(
                    "failed to read the kubeconfig (KUBECONFIG or ~/.kube/config); pass --kubeconfig",
                    &e,
                )
            })?,
        };
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| chain("failed to use the kubeconfig", &e))?;
        let client = kube::Client::try_from(config).map_err(|e| {
            chain("failed to build a Kubernetes client", &e)
        })?;
        relapse::backend::kubeconfig::gc_namespaces(&client)
            .await
            .map_err(|e| chain("failed to list namespaces", &e))
    });
    let report = result.map_err(CliError::Invalid)?;
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
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// Serves a kept cluster (failed, or passed with `--keep always`) for kubectl until Ctrl-C,
/// then removes its kubeconfig (written in a private directory, see [`kubeconfig::PrivateDir`]).
fn keep_for_inspection(kept: &relapse::run::KeptCluster, name: &str, passed: bool) {
    let inspection = match kept.inspect() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: cannot keep the cluster: {}", error_chain(&e));
            return;
        }
    };
    let mut stop = match kept.block_on(async { kubeconfig::StopSignals::listen() }) {
        Ok(s) => s,
        Err(e) => {
            e.print();
            return;
        }
    };
    eprintln!();
    let dir = match pause::announce(
        &inspection,
        name,
        if passed {
            "kept the cluster as it was at the end of the run; inspect it with:"
        } else {
            "kept the failed cluster as it was at the failure; inspect it with:"
        },
    ) {
        Ok(dir) => dir,
        Err(e) => {
            e.print();
            return;
        }
    };
    eprintln!("press Ctrl-C to stop it (SIGTERM and SIGHUP stop it too)");
    kept.block_on(stop.recv());
    drop(inspection);
    drop(dir);
}
