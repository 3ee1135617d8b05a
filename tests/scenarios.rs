//! One trial per scenario and backend, named `<backend>::<area>/<name>`, plus `validate::` trials.
//!
//! The trials are planned and run by the library's [`Runner`], the same path `relapse run`
//! takes, so both give the same verdict. A trial that cannot run here (the scenario skips the
//! backend, the backend refuses the scenario, the backend or Postgres is unavailable) is marked
//! ignored when the trials are listed, with its reason printed before the run; forced to run
//! (`--include-ignored`, nextest's `--run-ignored all`) it fails with that reason, so no trial
//! ever passes without running. Kubeconfig trials run against `RELAPSE_KUBECONFIG`'s cluster,
//! or else a simulated cluster served over HTTPS per trial; k3d trials where `k3d` and a Docker
//! daemon are present (`RELAPSE_REQUIRE_K3D=1` makes their absence a failure).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use relapse::backend::BackendKind;
use relapse::run::outcome::Verdict;
use relapse::run::{Decision, Plan, RunOptions, Runner};
use relapse::scenario;

/// The runner all trials of this process share (it keeps the k3d backend between trials).
static RUNNER: OnceLock<Runner> = OnceLock::new();

fn runner() -> &'static Runner {
    RUNNER.get_or_init(|| {
        Runner::new(RunOptions::from_env(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"),
        ))
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let trials = match trials(&root) {
        Ok(t) => t,
        Err(message) => vec![(
            Trial::test("validate::suite", move || Err(Failed::from(message))),
            None,
        )],
    };
    if !args.list {
        print_ignored(&args, &trials);
    }
    let conclusion = libtest_mimic::run(&args, trials.into_iter().map(|(t, _)| t).collect());
    if let Some(runner) = RUNNER.get() {
        for problem in runner.finish() {
            eprintln!("{problem}");
        }
    }
    conclusion.exit_code()
}

/// Says why each selected trial is ignored, grouped by reason (libtest has no place for it).
fn print_ignored(args: &Arguments, trials: &[(Trial, Option<String>)]) {
    if args.ignored || args.include_ignored {
        return;
    }
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (trial, reason) in trials {
        if let Some(reason) = reason
            && !args.is_filtered_out(trial)
        {
            by_reason.entry(reason).or_default().push(trial.name());
        }
    }
    for (reason, names) in by_reason {
        println!("ignored {}: {reason}", names.join(", "));
    }
}

/// The trials, each with the reason it is ignored (if it is).
fn trials(root: &Path) -> Result<Vec<(Trial, Option<String>)>, String> {
    let files = scenario::discover(&[root.to_path_buf()]).map_err(|e| scenario::render(&e))?;
    let mut trials = Vec::new();
    let suite_root = root.to_path_buf();
    trials.push((
        Trial::test("validate::suite", move || {
            let (_, errors) =
                scenario::load_suite(&[suite_root]).map_err(|e| scenario::render(&e))?;
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors
                    .iter()
                    .map(scenario::render)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into())
            }
        }),
        None,
    ));
    let mut loaded = Vec::new();
    for (file, root) in files {
        let id = path_id(&file, &root);
        match scenario::load(&file, &root) {
            Ok(s) => {
                trials.push((Trial::test(format!("validate::{id}"), || Ok(())), None));
                loaded.push(Arc::new(s));
            }
            Err(e) => {
                // An invalid scenario fails its validate trial and each of its backend trials.
                let message = scenario::render(&e);
                trials.push(invalid(format!("validate::{id}"), &message));
                for kind in BackendKind::ALL {
                    trials.push(invalid(format!("{kind}::{id}"), &message));
                }
            }
        }
    }
    let plan = Plan::new(&loaded, &BackendKind::ALL, runner().options());
    for planned in plan.trials {
        let name = planned.name();
        let ignored = match &planned.decision {
            Decision::Ignore(reason) => Some(reason.clone()),
            Decision::Run | Decision::Fail(_) => None,
        };
        let trial = Trial::ignorable_test(name, move || run(&planned));
        trials.push((trial.with_ignored_flag(ignored.is_some()), ignored));
    }
    Ok(trials)
}

fn invalid(name: String, message: &str) -> (Trial, Option<String>) {
    let message = message.to_owned();
    (Trial::test(name, move || Err(Failed::from(message))), None)
}

/// The trial id from the path alone (the loader requires the name to match the file name).
fn path_id(file: &Path, root: &Path) -> String {
    let rel: PathBuf = file.strip_prefix(root).unwrap_or(file).with_extension("");
    rel.to_string_lossy().replace('\\', "/")
}

fn run(planned: &relapse::run::PlannedTrial) -> Result<Completion, Failed> {
    if let Decision::Ignore(reason) = &planned.decision {
        // Run although ignored (`--include-ignored`): it cannot, and must not pass.
        return Err(Failed::from(format!("cannot run here: {reason}")));
    }
    let result = runner().run(planned, false);
    let outcome = &result.outcome;
    match &outcome.verdict {
        Verdict::Passed => Ok(Completion::Completed),
        // Only an existing cluster's shape is checked when the run starts; `relapse run`
        // reports the same verdict.
        Verdict::Ignored(reason) => Ok(Completion::ignored_with(reason)),
        Verdict::Failed(f) => Err(Failed::from(relapse::report::failure_details(outcome, f))),
    }
}
