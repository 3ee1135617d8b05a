//! What a failure report shows beside the failed expectation: recent events, pod statuses and
//! log tails of the run's namespaces.

use kube::api::ListParams;

use super::outcome::{Context, Failure, Phase};
use super::session::Session;

/// A failure of `phase`.
pub(super) fn failure(
    phase: Phase,
    summary: &str,
    expectation: String,
    mismatches: Vec<String>,
    context: Context,
) -> Failure {
    Failure {
        phase,
        summary: summary.to_owned(),
        expectation,
        mismatches,
        context,
    }
}

impl Session<'_> {
    /// Events, pod statuses and log tails of the scenario's namespaces, for failure reports.
    pub(super) async fn context(&self) -> Context {
        let client = self.cluster.client();
        let mut ctx = Context {
            diagnostics: self.cluster.diagnostics(),
            ..Context::default()
        };
        for ns in &self.namespaces {
            let events: kube::Api<k8s_openapi::api::core::v1::Event> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = events.list(&ListParams::default()).await {
                let n = list.items.len();
                for e in list.items.into_iter().skip(n.saturating_sub(15)) {
                    ctx.events.push(format!(
                        "{} {} {}/{}: {}",
                        e.type_.unwrap_or_default(),
                        e.reason.unwrap_or_default(),
                        e.involved_object.kind.unwrap_or_default().to_lowercase(),
                        e.involved_object.name.unwrap_or_default(),
                        e.message.unwrap_or_default()
                    ));
                }
            }
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let status = p.status.clone().unwrap_or_default();
                    let phase = status.phase.clone().unwrap_or_default();
                    let waiting: Vec<String> = status
                        .container_statuses
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|c| {
                            c.state
                                .as_ref()?
                                .waiting
                                .as_ref()?
                                .reason
                                .clone()
                                .map(|r| format!("{}={r}", c.name))
                        })
                        .collect();
                    ctx.pods.push(
                        format!("{ns}/{name}  {phase}  {}", waiting.join(","))
                            .trim_end()
                            .to_owned(),
                    );
                    for c in p.spec.map(|s| s.containers).unwrap_or_default() {
                        let lp = kube::api::LogParams {
                            container: Some(c.name.clone()),
                            tail_lines: Some(10),
                            ..Default::default()
                        };
                        if let Ok(text) = pods.logs(&name, &lp).await {
                            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                            if !lines.is_empty() {
                                ctx.logs.push((format!("{ns}/{name}/{}", c.name), lines));
                            }
                        }
                    }
                }
            }
        }
        ctx
    }
}
