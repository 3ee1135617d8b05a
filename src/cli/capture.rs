//! `relapse capture`: a live incident, or kubectl's files of one, turned into a scenario.

use std::path::PathBuf;

use relapse::capture::{self, CaptureOptions, Selector};
use relapse::scenario::Duration;

use super::CliError;

/// The arguments of `relapse capture`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// A namespace to capture (repeatable; required unless --from).
    #[arg(
        long = "namespace",
        short = 'n',
        value_name = "NS",
        required_unless_present = "from"
    )]
    namespaces: Vec<String>,
    /// Only workloads (or their pods) with these labels (`app=web,tier!=db`).
    #[arg(long, short = 'l', value_name = "L")]
    selector: Option<String>,
    /// The kubeconfig of the cluster (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "PATH", conflicts_with = "from")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME", conflicts_with = "from")]
    context: Option<String>,
    /// Read `kubectl get -o yaml` dumps and `<pod>_<container>.log` files from DIR instead of
    /// a cluster.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// The scenario's name (lowercase words joined by `-`).
    #[arg(long)]
    name: String,
    /// The area directory it goes into, e.g. `workloads`.
    #[arg(long)]
    area: String,
    /// Only events recorded this long before the newest one.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    since: String,
    /// How many log lines of each container to read.
    #[arg(long, value_name = "N", default_value_t = 20)]
    log_lines: usize,
    /// The scenarios directory to write AREA/NAME.yaml and AREA/manifests/NAME/ into.
    #[arg(long, value_name = "DIR", default_value = "scenarios")]
    out: PathBuf,
}

/// Captures and writes the scenario, printing what it wrote and found.
pub fn run(args: &CaptureArgs) -> Result<(), CliError> {
    let since = Duration::parse(&args.since)
        .map_err(|e| CliError::Invalid(format!("invalid --since: {e}")))?;
    let selector = args
        .selector
        .as_deref()
        .map(Selector::parse)
        .transpose()
        .map_err(CliError::from_error)?;
    let options = CaptureOptions {
        name: args.name.clone(),
        area: args.area.clone(),
        namespaces: args.namespaces.clone(),
        selector,
        since: Some(since),
        log_lines: args.log_lines,
    };
    let captured = match &args.from {
        Some(dir) => capture::from_dir(dir, &options),
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failed("failed to start the async runtime", e))?;
            runtime.block_on(capture::from_kubeconfig(
                args.kubeconfig.as_deref(),
                args.context.as_deref(),
                &options,
            ))
        }
    }
    .map_err(CliError::from_error)?;
    let written = capture::write_files(&captured, &args.out).map_err(CliError::from_error)?;
    for line in &captured.summary {
        println!("{line}");
    }
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "next: write the fix in {}, then `relapse validate` it",
        written
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
