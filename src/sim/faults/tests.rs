use std::time::Duration as StdDuration;

use super::*;
use crate::scenario::{ApiServerFault, Duration, FaultStep};

fn t(s: u64) -> Timestamp {
    after(
        "2025-01-01T00:00:00Z".parse().unwrap(),
        StdDuration::from_secs(s),
    )
}

fn stalls(latency: u64, every: u64, lasting: Option<u64>) -> FaultStep {
    FaultStep {
        name: Some("slow".into()),
        for_: lasting.map(Duration::from_secs),
        api_server: Some(ApiServerFault {
            latency: Some(Duration::from_secs(latency)),
            every: Some(Duration::from_secs(every)),
            error: None,
        }),
        ..FaultStep::default()
    }
}

#[test]
fn requests_in_a_stall_are_answered_when_it_ends() {
    let mut f = Faults::default();
    f.start(&stalls(15, 60, None), t(100));
    assert_eq!(f.api_answer(t(99)).at, Some(t(99)));
    assert_eq!(f.api_answer(t(100)).at, Some(t(115)));
    assert_eq!(f.api_answer(t(110)).at, Some(t(115)));
    assert_eq!(f.api_answer(t(115)).at, Some(t(115)));
    assert_eq!(f.api_answer(t(165)).at, Some(t(175)));
}

#[test]
fn an_ended_fault_answers_waiting_requests_and_no_later_ones() {
    let mut f = Faults::default();
    f.start(&stalls(15, 60, None), t(0));
    assert!(f.end("slow", t(5)));
    assert!(!f.end("slow", t(6)));
    assert_eq!(f.api_answer(t(2)).at, Some(t(5)));
    assert_eq!(f.api_answer(t(60)).at, Some(t(60)));
    assert!(f.changes_at(t(5)));
    assert_eq!(f.next_change(t(0)), Some(t(5)));
}

#[test]
fn a_fault_with_a_duration_ends_by_itself() {
    let mut f = Faults::default();
    f.start(&stalls(15, 60, Some(30)), t(0));
    assert_eq!(f.next_change(t(0)), Some(t(30)));
    assert_eq!(f.api_answer(t(60)).at, Some(t(60)));
}

#[test]
fn kills_select_pods_and_containers() {
    let mut f = Faults::default();
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    f.start(
        &FaultStep {
            oom_kill: Some(KillFault {
                namespace: "apps".into(),
                labels: labels.clone(),
                after: Some(Duration::from_secs(30)),
                ..KillFault::default()
            }),
            ..FaultStep::default()
        },
        t(100),
    );
    let pod = PodRef {
        namespace: "apps",
        name: "web-1",
        labels: &labels,
    };
    // A run from before the fault is killed when the fault starts; later runs after 30s.
    assert_eq!(
        f.kill(pod, "c", t(0)),
        Some(Kill {
            at: t(100),
            oom: true
        })
    );
    assert_eq!(
        f.kill(pod, "c", t(200)),
        Some(Kill {
            at: t(230),
            oom: true
        })
    );
    let other = PodRef {
        namespace: "other",
        ..pod
    };
    assert_eq!(f.kill(other, "c", t(0)), None);
}

#[test]
fn a_dns_failure_names_a_service_or_a_host_outside_the_cluster() {
    use crate::scenario::DnsFault;
    let step = |service: Option<&str>, host: Option<&str>| FaultStep {
        dns_failure: Some(DnsFault {
            service: service.map(str::to_owned),
            namespace: None,
            host: host.map(str::to_owned),
        }),
        ..FaultStep::default()
    };
    let mut f = Faults::default();
    f.start(&step(None, Some("dl-cdn.alpinelinux.org")), t(10));
    assert!(!f.dns_fails_host("dl-cdn.alpinelinux.org", t(5)));
    assert!(f.dns_fails_host("dl-cdn.alpinelinux.org", t(10)));
    assert!(!f.dns_fails_host("ghcr.io", t(10)));
    // A host outage leaves Service names alone, and the other way round.
    assert!(!f.dns_fails("dl-cdn.alpinelinux.org", "apps", t(10)));
    let mut g = Faults::default();
    g.start(&step(Some("db"), None), t(0));
    assert!(g.dns_fails("db", "apps", t(1)));
    assert!(!g.dns_fails_host("db", t(1)));

    assert_eq!(crate::scenario::check_fault(&step(None, Some("h"))), None);
    assert_eq!(
        crate::scenario::check_fault(&step(Some("db"), Some("h"))).as_deref(),
        Some("dnsFailure needs exactly one of `service` and `host`")
    );
    assert!(crate::scenario::check_fault(&step(None, None)).is_some());
}
