//! `relapse run --pause-after PHASE`: the command line's [`PauseHook`]. It makes the paused
//! cluster reachable, prints how (as `--keep` does), and goes on when Enter is pressed or stdin
//! ends (so a run without a terminal never waits); a stop signal ends the run instead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use relapse::backend::{Access, Inspection};
use relapse::error_chain::error_chain;
use relapse::run::{PauseHook, Paused, Resume};

use super::error::CliError;
use super::kubeconfig::{PrivateDir, StopSignals};

/// Pauses runs for a person at the terminal.
#[derive(Default)]
pub struct CliPause {
    /// Lines read from stdin: one message per line; closed at its end.
    lines: OnceLock<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>>,
    /// Whether a stop signal ended a pause.
    interrupted: AtomicBool,
}

impl CliPause {
    /// Whether a stop signal ended a pause (the run was stopped there).
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Waits for the next line on stdin, or its end.
    async fn next_line(&self) {
        let lines = self.lines.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            // A thread of its own rather than the runtime's blocking pool: a read still
            // pending when a signal ends the pause must not keep a runtime from shutting down.
            let spawned = std::thread::Builder::new()
                .name("relapse-stdin".to_owned())
                .spawn(move || {
                    let mut line = String::new();
                    while matches!(std::io::stdin().read_line(&mut line), Ok(n) if n > 0) {
                        line.clear();
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                // Without a reader, the sender is gone and the pause goes on at once.
                tracing::warn!("cannot read stdin: {e}");
            }
            tokio::sync::Mutex::new(rx)
        });
        let _ = lines.lock().await.recv().await;
    }
}

impl PauseHook for CliPause {
    fn paused<'a>(&'a self, paused: Paused<'a>) -> BoxFuture<'a, Resume> {
        Box::pin(async move {
            let inspection = match paused.cluster.serve_for_inspection().await {
                Ok(i) => i,
                Err(e) => {
                    eprintln!(
                        "warning: cannot pause {} after the {} phase: {}",
                        paused.scenario,
                        paused.phase,
                        error_chain(&e)
                    );
                    return Resume::Continue;
                }
            };
            let mut stop = match StopSignals::listen() {
                Ok(s) => s,
                Err(e) => {
                    e.print();
                    return Resume::Continue;
                }
            };
            eprintln!();
            let name = format!("{}__{}", paused.scenario.replace('/', "__"), paused.phase);
            let dir = match announce(
                &inspection,
                &name,
                &format!(
                    "paused {} after the {} phase; inspect its cluster with:",
                    paused.scenario, paused.phase
                ),
            ) {
                Ok(dir) => dir,
                Err(e) => {
                    e.print();
                    return Resume::Continue;
                }
            };
            eprintln!("press Enter to continue (Ctrl-C stops the run and cleans up)");
            let resume = tokio::select! {
                () = stop.recv() => {
                    self.interrupted.store(true, Ordering::SeqCst);
                    Resume::Stop
                }
                () = self.next_line() => Resume::Continue,
            };
            drop(inspection);
            drop(dir);
            if resume == Resume::Continue {
                eprintln!("continuing {}", paused.scenario);
            }
            resume
        })
    }
}

/// Prints how to reach an inspected cluster, after `headline`: the kubeconfig (written into a
/// new private directory when it is not the person's own file, which is returned) and the
/// names the scenario's namespaces have on the cluster.
///
/// # Errors
/// When the private directory or the kubeconfig cannot be written.
pub fn announce(
    inspection: &Inspection,
    name: &str,
    headline: &str,
) -> Result<Option<PrivateDir>, CliError> {
    let (path, context, dir) = match &inspection.access {
        Access::Kubeconfig(yaml) => {
            let dir = PrivateDir::create()?;
            let path = dir.write(&format!("{name}.kubeconfig"), yaml.as_bytes())?;
            (path, None, Some(dir))
        }
        // Absolute, so the line works from any directory.
        Access::File { path, context } => (
            std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            context.clone(),
            None,
        ),
    };
    eprintln!("{headline}");
    eprintln!("  export KUBECONFIG={}", path.display());
    match &context {
        Some(c) => eprintln!("  kubectl --context {c} get pods -A"),
        None => eprintln!("  kubectl get pods -A"),
    }
    for (scenario, cluster) in &inspection.namespaces {
        eprintln!("  (namespace {scenario} is {cluster} on the cluster)");
    }
    Ok(dir)
}
