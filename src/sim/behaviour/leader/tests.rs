use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::scenario::{ApiServerFault, Arch, ConfigSource, FaultStep, LostLease};
use crate::sim::behaviour::{ClusterView, StaticView};
use crate::sim::faults::Faults;

fn t(s: u64) -> Timestamp {
    after(
        "2025-01-01T00:00:00Z".parse().unwrap(),
        Duration::from_secs(s),
    )
}

/// A view without objects whose API server is faulted as given.
struct Faulted(StaticView, Faults);

impl ClusterView for Faulted {
    fn get(&self, a: &str, k: &str, ns: Option<&str>, n: &str) -> Option<Value> {
        self.0.get(a, k, ns, n)
    }
    fn list(&self, a: &str, k: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.0.list(a, k, ns)
    }
}

impl ClusterViewExt for Faulted {
    fn resource_served(&self, g: &str, v: &str, r: &str) -> bool {
        self.0.resource_served(g, v, r)
    }
    fn faults(&self) -> &Faults {
        &self.1
    }
}

fn latency_from(at: u64, latency: u64) -> Faulted {
    let mut faults = Faults::default();
    faults.start(
        &FaultStep {
            api_server: Some(ApiServerFault {
                latency: Some(crate::scenario::Duration::from_secs(latency)),
                ..ApiServerFault::default()
            }),
            ..FaultStep::default()
        },
        t(at),
    );
    Faulted(StaticView::default(), faults)
}

fn ctx(args: &[&str]) -> ContainerContext {
    ContainerContext {
        namespace: "ops".into(),
        pod_name: "op-1".into(),
        container: "manager".into(),
        command: vec!["/manager".into()],
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: BTreeMap::new(),
        files: BTreeMap::new(),
        node_arch: Arch::Amd64,
        service_account: "default".into(),
    }
}

fn spec() -> LeaderElection {
    let arg = |a: &str| ConfigSource {
        arg: Some(a.to_owned()),
        ..ConfigSource::default()
    };
    let setting = |a: &str| DurationSetting {
        from: Some(arg(a)),
        default: None,
    };
    LeaderElection {
        lease: "op-lock".into(),
        namespace: None,
        enabled: true,
        enabled_by: Some(arg("--leader-elect")),
        disabled_by: None,
        lease_duration: Some(setting("--leader-elect-lease-duration")),
        renew_deadline: Some(setting("--leader-elect-renew-deadline")),
        retry_period: Some(setting("--leader-elect-retry-period")),
        request_timeout: true,
        on_lost: LostLease {
            log: vec!["leaderelection lost at {time}".into()],
            exit_code: Some(1),
        },
        client_go_minor: None,
    }
}

/// Runs an elector from 0 to `until` seconds, one second at a time, as the kubelet would.
fn run(args: &[&str], view: &dyn ClusterViewExt, until: u64) -> (Vec<String>, Outcome) {
    let mut e = Elector::new(&spec(), &ctx(args), "op-1_id".into(), t(0)).unwrap();
    e.begin(t(0));
    let mut logs = e.start_lines(t(0));
    let mut outcome = Outcome::Running(t(0));
    for s in 0..=until {
        outcome = e.advance(t(s), view, &mut logs);
        if matches!(outcome, Outcome::Lost { .. }) {
            break;
        }
    }
    (logs.into_iter().map(|l| l.text).collect(), outcome)
}

#[test]
fn without_faults_the_lease_is_acquired_and_renewed() {
    let view = Faulted(StaticView::default(), Faults::default());
    let mut e = Elector::new(&spec(), &ctx(&["--leader-elect"]), "op-1_id".into(), t(0)).unwrap();
    e.begin(t(0));
    let mut logs = Vec::new();
    let mut outcome = Outcome::Running(t(0));
    for s in 0..=60 {
        outcome = e.advance(t(s), &view, &mut logs);
    }
    assert!(matches!(outcome, Outcome::Running(_)));
    assert!(e.leading());
    let texts: Vec<&str> = logs.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "I0101 00:00:00.000000       1 leaderelection.go:271] successfully acquired lease ops/op-lock"
        ]
    );
    let lease = e.lease_object().unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "op-1_id");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    // Renewed every retryPeriod (2s): the last renewal at 60s.
    assert_eq!(lease["spec"]["renewTime"], "2025-01-01T00:01:00.000000Z");
}

#[test]
fn latency_beyond_the_renew_deadline_loses_the_lease_with_client_go_lines() {
    // Defaults: renewDeadline 10s, so each request may take 5s; the server now takes 12s.
    let view = latency_from(30, 12);
    let (logs, outcome) = run(&["--leader-elect"], &view, 120);
    let url = "https://10.43.0.1:443/apis/coordination.k8s.io/v1/namespaces/ops/leases/op-lock?timeout=5s";
    // The renewal cycle starting at 30s: the optimistic update times out after 5s, the get
    // after the remaining 5s, then the cycle's context has ended.
    assert_eq!(
        &logs[2..],
        [
            format!(
                "E0101 00:00:35.000000       1 leaderelection.go:429] Failed to update lock optimistically: Put \"{url}\": context deadline exceeded, falling back to slow path"
            ),
            format!(
                "E0101 00:00:40.000000       1 leaderelection.go:436] error retrieving resource lock ops/op-lock: Get \"{url}\": context deadline exceeded"
            ),
            "I0101 00:00:40.000000       1 leaderelection.go:297] failed to renew lease ops/op-lock: context deadline exceeded".to_owned(),
            "leaderelection lost at 2025-01-01T00:00:40.000Z".to_owned(),
        ]
    );
    assert_eq!(
        outcome,
        Outcome::Lost {
            at: t(40),
            exit_code: Some(1)
        }
    );
}

#[test]
fn timeouts_raised_above_the_latency_keep_the_lease() {
    let view = latency_from(30, 12);
    // renewDeadline 30s: each request may take 15s.
    let (logs, outcome) = run(
        &[
            "--leader-elect",
            "--leader-elect-lease-duration=60s",
            "--leader-elect-renew-deadline=30s",
        ],
        &view,
        300,
    );
    assert!(matches!(outcome, Outcome::Running(_)), "{logs:#?}");
    assert_eq!(logs.len(), 2, "{logs:#?}");
}

#[test]
fn timeouts_raised_but_still_below_the_latency_lose_the_lease() {
    let view = latency_from(30, 12);
    // renewDeadline 20s: each request may take 10s, still less than 12s.
    let (logs, outcome) = run(
        &[
            "--leader-elect",
            "--leader-elect-lease-duration=30s",
            "--leader-elect-renew-deadline=20s",
        ],
        &view,
        300,
    );
    assert!(matches!(outcome, Outcome::Lost { .. }), "{logs:#?}");
    // The get is refused by the rate limiter: the cycle's context ended with the update.
    assert!(
        logs.iter()
            .any(|l| l.contains("failed to renew lease ops/op-lock: context deadline exceeded")),
        "{logs:#?}"
    );
}

#[test]
fn raising_only_the_retry_period_does_not_help() {
    let view = latency_from(30, 12);
    let (_, outcome) = run(
        &["--leader-elect", "--leader-elect-retry-period=8s"],
        &view,
        300,
    );
    assert!(matches!(outcome, Outcome::Lost { .. }));
}

#[test]
fn leader_election_off_by_flag_means_no_elector() {
    assert!(Elector::new(&spec(), &ctx(&["--leader-elect=false"]), "x".into(), t(0)).is_none());
    let mut off_by_default = spec();
    off_by_default.enabled = false;
    assert!(Elector::new(&off_by_default, &ctx(&[]), "x".into(), t(0)).is_none());
    assert!(Elector::new(&off_by_default, &ctx(&["--leader-elect"]), "x".into(), t(0)).is_some());
}

#[test]
fn server_errors_use_apimachinery_wording() {
    let mut faults = Faults::default();
    faults.start(
        &FaultStep {
            api_server: Some(ApiServerFault {
                error: Some(ApiServerError::Internal),
                ..ApiServerFault::default()
            }),
            ..FaultStep::default()
        },
        t(10),
    );
    let view = Faulted(StaticView::default(), faults);
    let (logs, outcome) = run(&["--leader-elect"], &view, 60);
    assert!(matches!(outcome, Outcome::Lost { .. }));
    assert!(logs.iter().any(|l| l.ends_with(
        "Failed to update lock optimistically: an error on the server (\"unknown\") has prevented the request from succeeding (put leases.coordination.k8s.io op-lock), falling back to slow path"
    )), "{logs:#?}");
}

#[test]
fn client_go_v031_has_its_own_wording() {
    let mut s = spec();
    s.client_go_minor = Some(31);
    let view = latency_from(0, 12);
    let mut e = Elector::new(&s, &ctx(&["--leader-elect"]), "x".into(), t(0)).unwrap();
    e.begin(t(0));
    let lines = e.start_lines(t(0));
    assert_eq!(
        lines[0].text,
        "I0101 00:00:00.000000       1 leaderelection.go:254] attempting to acquire leader lease ops/op-lock..."
    );
    let mut logs = Vec::new();
    for s in 0..=30 {
        e.advance(t(s), &view, &mut logs);
    }
    // The first get is answered after 12s, beyond the 5s request timeout.
    assert!(
        logs[0]
            .text
            .contains("leaderelection.go:436] error retrieving resource lock")
    );
}
