//! How each fault step maps to a real cluster, and why the real-cluster backends refuse it
//! for now: a fault must happen to the programs under test and to nothing else (the harness's
//! own requests, the other scenarios' namespaces), which these clusters offer no switch for.

use crate::scenario::{FaultStep, Scenario, Step};

/// Why a real cluster cannot make `fault` happen, with the mapping it would need.
#[must_use]
pub fn refusal(fault: &FaultStep) -> String {
    let name = fault.fault_name();
    let why = if fault.api_server.is_some() {
        "API-server latency and errors for the programs only would need a proxy between the pods and the `kubernetes` Service; pausing the k3s server container (`docker pause k3d-<cluster>-server-0`) stalls every client, the harness's own included"
    } else if fault.node_not_ready.is_some() {
        "it would map to stopping the node's container (`docker stop k3d-<cluster>-agent-<n>`) and starting it again at its end; not wired up yet"
    } else if fault.container_kill.is_some() {
        "it would map to `crictl stop --timeout 0` of the container inside its node (`docker exec k3d-<cluster>-<node> ...`), repeated for every run while the fault lasts; not wired up yet"
    } else if fault.oom_kill.is_some() {
        "an OOM kill needs a real program exceeding its memory limit; a stand-in's image cannot be made to allocate memory on a real node"
    } else if fault.registry_outage.is_some() {
        "it would map to a registries.yaml mirror sending the registry to an unreachable endpoint, which k3s reads only at start; not wired up yet"
    } else if fault.dns_failure.is_some() {
        "it would map to a CoreDNS rule (k3s' `coredns-custom` ConfigMap) failing the name, shared by every namespace of the cluster; not wired up yet"
    } else {
        "it names no fault"
    };
    format!("fault step `{name}` cannot be made to happen on a real cluster: {why}")
}

/// One reason per fault step anywhere in `scenario` (setup, break, fix, mutants).
#[must_use]
pub fn refusals(scenario: &Scenario) -> Vec<String> {
    let steps = scenario
        .setup
        .iter()
        .chain(&scenario.break_.steps)
        .chain(&scenario.fix)
        .chain(scenario.mutants.iter().flat_map(|m| &m.fix));
    let mut out: Vec<String> = Vec::new();
    for step in steps {
        if let Step::Fault(f) = step {
            let reason = refusal(f);
            if !out.contains(&reason) {
                out.push(reason);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ApiServerFault, Duration};

    #[test]
    fn every_fault_kind_has_its_own_reason() {
        let api = FaultStep {
            api_server: Some(ApiServerFault {
                latency: Some(Duration::from_secs(5)),
                ..ApiServerFault::default()
            }),
            ..FaultStep::default()
        };
        let text = refusal(&api);
        assert!(text.starts_with("fault step `apiServer` cannot be made to happen"));
        assert!(text.contains("docker pause"));
        assert!(refusal(&FaultStep::default()).contains("names no fault"));
    }
}
