//! The node agent driven on simulated time only.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::scenario::{
    Duration as D, ManifestKind, Need, Otherwise, Requirement, ResourceNeed, Versions,
};
use crate::sim::behaviour::StaticView;
use crate::sim::behaviour::time::{after, since};
use crate::sim::events::{Event, EventType};

fn t0() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn secs(t: Timestamp) -> f64 {
    ms(t) as f64 / 1000.0
}

fn ms(t: Timestamp) -> u128 {
    since(t, t0()).as_millis()
}

fn kubelet() -> Kubelet {
    kubelet_on(Versions::default())
}

fn kubelet_on(versions: Versions) -> Kubelet {
    Kubelet::new(KubeletConfig {
        node_name: "node-1".into(),
        arch: Arch::Amd64,
        host_ip: "172.18.0.2".into(),
        pod_ip_prefix: "10.42.1.".into(),
        versions,
    })
}

fn pod(spec: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app-7d4b9c", "namespace": "apps", "uid": "uid-1"},
        "spec": spec,
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-12-31T23:59:59Z"}]}
    })
}

/// Drives one pod: syncs at each wake-up, writes the status back, and keeps everything.
struct Run {
    kubelet: Kubelet,
    pod: Value,
    images: BTreeMap<String, ImageBehaviour>,
    view: StaticView,
    now: Timestamp,
    events: Vec<Event>,
    logs: Vec<ContainerLog>,
    statuses: Vec<(Timestamp, Value)>,
    last: PodSync,
}

impl Run {
    fn new(pod: Value, images: BTreeMap<String, ImageBehaviour>, view: StaticView) -> Self {
        Self {
            kubelet: kubelet(),
            pod,
            images,
            view,
            now: t0(),
            events: vec![],
            logs: vec![],
            statuses: vec![],
            last: PodSync::default(),
        }
    }

    fn sync(&mut self) {
        let s = self
            .kubelet
            .sync_pod(&self.pod, &self.images, &self.view, self.now);
        self.pod["status"] = s.status.clone();
        self.events.extend(s.events.iter().cloned());
        self.logs.extend(s.logs.iter().cloned());
        self.statuses.push((self.now, s.status.clone()));
        self.last = s;
    }

    /// Syncs at every wake-up until `until` (simulated) or until nothing is scheduled.
    fn until(&mut self, until: Timestamp) {
        self.sync();
        while let Some(w) = self.last.wake_at {
            if w > until {
                break;
            }
            assert!(w > self.now, "wake-ups move forward");
            self.now = w;
            self.sync();
        }
        self.now = until;
    }

    fn status(&self) -> &Value {
        &self.pod["status"]
    }

    fn event_messages(&self, reason: &str) -> Vec<(f64, String)> {
        self.events
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| {
                (
                    secs(e.at.expect("kubelet events are timed")),
                    e.message.clone(),
                )
            })
            .collect()
    }

    fn condition(&self, t: &str) -> Value {
        self.status()["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    }
}

fn keycloak_arm64() -> BTreeMap<String, ImageBehaviour> {
    BTreeMap::from([(
        "registry.example/keycloak:26.1.1".to_owned(),
        ImageBehaviour {
            manifest: ManifestKind::Single,
            platforms: vec!["linux/arm64".into()],
            entrypoint: Some("/opt/keycloak/bin/kc.sh".into()),
            ..ImageBehaviour::default()
        },
    )])
}

fn one_container(image: &str) -> Value {
    pod(json!({"nodeName": "node-1", "containers": [{"name": "keycloak", "image": image}]}))
}

#[test]
fn crash_loop_back_off_doubles_from_ten_seconds() {
    let mut r = Run::new(
        one_container("registry.example/keycloak:26.1.1"),
        keycloak_arm64(),
        StaticView::default(),
    );
    let mut waiting: Vec<String> = Vec::new();
    r.sync();
    loop {
        let cs = &r.status()["containerStatuses"][0];
        if let Some(m) = cs.pointer("/state/waiting/message").and_then(Value::as_str)
            && cs.pointer("/state/waiting/reason") == Some(&json!("CrashLoopBackOff"))
            && waiting.last().map(String::as_str) != Some(m)
        {
            waiting.push(m.to_owned());
            // While backing off the last run is shown as terminated with its exit code.
            assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
            assert_eq!(cs["lastState"]["terminated"]["exitCode"], 255);
            assert_eq!(r.status()["phase"], "Running");
        }
        if waiting.len() == 5 {
            break;
        }
        r.now = r
            .last
            .wake_at
            .expect("a crash-looping pod always has a next wake-up");
        r.sync();
    }
    let pod = "app-7d4b9c_apps(uid-1)";
    assert_eq!(
        waiting,
        ["10s", "20s", "40s", "1m20s", "2m40s"]
            .iter()
            .map(|d| format!("back-off {d} restarting failed container=keycloak pod={pod}"))
            .collect::<Vec<_>>()
    );

    // The image was pulled once, then found on the node.
    let pulled = r.event_messages("Pulled");
    assert!(
        pulled[0]
            .1
            .starts_with("Successfully pulled image \"registry.example/keycloak:26.1.1\" in ")
    );
    assert!(pulled[0].1.ends_with(" bytes."));
    assert_eq!(
        pulled[1].1,
        "Container image \"registry.example/keycloak:26.1.1\" already present on machine"
    );
    let d = pulled[0].0;

    // Six runs: the first exit is restarted at once (no back-off yet), noticed one second
    // later; each later one at the first pod sync (every 10–15 s) after its back-off of 10s,
    // 20s, ... measured from the exit. Every run exits as soon as it starts.
    let d = (d * 1000.0).round() as u128;
    let started: Vec<u128> = r
        .events
        .iter()
        .filter(|e| e.reason == "Started")
        .map(|e| ms(e.at.expect("kubelet events are timed")))
        .collect();
    assert_eq!(started.len(), 6);
    assert_eq!(started[..2], [d, d + 1000]);
    for (k, backoff) in [10_000, 20_000, 40_000, 80_000].into_iter().enumerate() {
        let (exit, restart) = (started[k + 1], started[k + 2]);
        assert!(
            restart >= exit + backoff && restart < exit + backoff + 15_000,
            "run {k}: exit {exit} restart {restart}"
        );
    }
    assert_eq!(
        r.event_messages("Started")[0].1,
        "Started container keycloak"
    );
    assert_eq!(
        r.event_messages("Created")[0].1,
        "Created container: keycloak"
    );
    let backoffs = r.event_messages("BackOff");
    // One at each sync while backing off: 1, 2, 3–4 and 6–8 for the four back-offs that ended,
    // at least one for the fifth.
    assert!((13..=16).contains(&backoffs.len()), "{}", backoffs.len());
    assert!(
        backoffs
            .iter()
            .all(|(_, m)| m
                == &format!("Back-off restarting failed container keycloak in pod {pod}"))
    );
    assert!(r.events.iter().filter(|e| e.reason == "BackOff").all(|e| {
        e.type_ == EventType::Warning
            && e.involved.field_path.as_deref() == Some("spec.containers{keycloak}")
    }));

    // Every run wrote the runc error, in its own attempt.
    assert_eq!(r.logs.len(), 6);
    assert!(r.logs.iter().enumerate().all(|(i, l)| l.text
        == "exec /opt/keycloak/bin/kc.sh: exec format error"
        && l.attempt == u32::try_from(i).unwrap()));
    assert_eq!(r.status()["containerStatuses"][0]["restartCount"], 5);

    // Right after an exit, before the kubelet acts, the status shows the terminated run
    // (kubectl's STATUS column reads `Error`).
    let after_first_exit = &r.statuses.iter().find(|(t, _)| ms(*t) == d).unwrap().1;
    assert_eq!(
        after_first_exit["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Error"
    );
    assert_eq!(after_first_exit["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn back_off_resets_after_ten_minutes_of_running() {
    // Runs 11 minutes, then exits 1.
    let images = BTreeMap::from([(
        "app:1".to_owned(),
        ImageBehaviour {
            exit_after: Some(crate::scenario::ExitAfter {
                duration: D::from_secs(660),
                code: 1,
            }),
            ..ImageBehaviour::default()
        },
    )]);
    let mut r = Run::new(
        pod(json!({"containers": [{"name": "app", "image": "app:1"}]})),
        images,
        StaticView::default(),
    );
    r.until(after(t0(), Duration::from_secs(3 * 700)));
    // Each exit is restarted without a back-off: the last one is more than 2 × 5 m old.
    assert!(r.event_messages("BackOff").is_empty());
    assert_eq!(r.status()["containerStatuses"][0]["restartCount"], 3);
    assert_eq!(
        r.status()["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "Error"
    );
}

#[test]
fn image_without_the_node_platform_fails_to_pull_then_backs_off() {
    let images = BTreeMap::from([(
        "foundationdb/fdb-kubernetes-operator:v2.6.0".to_owned(),
        ImageBehaviour {
            platforms: vec!["linux/arm64".into()],
            ..ImageBehaviour::default()
        },
    )]);
    let mut r = Run::new(
        one_container("foundationdb/fdb-kubernetes-operator:v2.6.0"),
        images,
        StaticView::default(),
    );
    r.until(after(t0(), Duration::from_secs(60)));
    let err = "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/foundationdb/fdb-kubernetes-operator:v2.6.0\": no match for platform in manifest: not found";
    let failed = r.event_messages("Failed");
    assert_eq!(
        failed[0],
        (
            0.5,
            format!("Failed to pull image \"foundationdb/fdb-kubernetes-operator:v2.6.0\": {err}")
        )
    );
    assert_eq!(failed[1], (0.5, "Error: ErrImagePull".to_owned()));
    let reasons: Vec<String> = r
        .statuses
        .iter()
        .filter_map(|(_, s)| {
            s.pointer("/containerStatuses/0/state/waiting/reason")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(reasons[0], "ContainerCreating");
    assert!(reasons.contains(&"ErrImagePull".to_owned()));
    let first_backoff = reasons
        .iter()
        .position(|r| r == "ImagePullBackOff")
        .unwrap();
    assert!(reasons[..first_backoff].contains(&"ErrImagePull".to_owned()));
    assert!(r.event_messages("BackOff").iter().all(
        |(_, m)| m == "Back-off pulling image \"foundationdb/fdb-kubernetes-operator:v2.6.0\""
    ));
    assert!(
        failed.contains(&(
            failed
                .iter()
                .find(|(_, m)| m == "Error: ImagePullBackOff")
                .unwrap()
                .0,
            "Error: ImagePullBackOff".to_owned()
        ))
    );
    let st = r
        .statuses
        .iter()
        .find(|(_, s)| {
            s.pointer("/containerStatuses/0/state/waiting/reason") == Some(&json!("ErrImagePull"))
        })
        .unwrap();
    assert_eq!(
        st.1["containerStatuses"][0]["state"]["waiting"]["message"],
        err
    );
    assert_eq!(st.1["phase"], "Pending");
    // In back-off the waiting message carries the last pull error; the event does not.
    let backing_off = r
        .statuses
        .iter()
        .find(|(_, s)| {
            s.pointer("/containerStatuses/0/state/waiting/reason")
                == Some(&json!("ImagePullBackOff"))
        })
        .unwrap();
    assert_eq!(
        backing_off.1["containerStatuses"][0]["state"]["waiting"]["message"],
        format!(
            "Back-off pulling image \"foundationdb/fdb-kubernetes-operator:v2.6.0\": ErrImagePull: {err}"
        )
    );
}

#[test]
fn private_image_without_pull_secret_is_unauthorized_and_missing_secrets_are_reported() {
    let images = BTreeMap::from([(
        "123456789012.dkr.ecr.eu-west-2.amazonaws.com/keycloak:26.1.1".to_owned(),
        ImageBehaviour {
            private: true,
            ..ImageBehaviour::default()
        },
    )]);
    let mut p = one_container("123456789012.dkr.ecr.eu-west-2.amazonaws.com/keycloak:26.1.1");
    p["spec"]["imagePullSecrets"] = json!([{"name": "ecr"}]);
    let mut r = Run::new(p.clone(), images.clone(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(1)));
    assert_eq!(
        r.event_messages("FailedToRetrieveImagePullSecret")[0].1,
        "Unable to retrieve some image pull secrets (ecr); attempting to pull the image may not succeed."
    );
    assert!(r.event_messages("Failed")[0].1.ends_with(
        "pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials"
    ));

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "ecr", "namespace": "apps"}});
    let mut r = Run::new(p, images, StaticView::new(vec![secret]));
    r.until(after(t0(), Duration::from_secs(60)));
    assert_eq!(r.status()["phase"], "Running");
    assert_eq!(r.status()["containerStatuses"][0]["ready"], true);
    assert_eq!(r.condition("Ready")["status"], "True");
}

#[test]
fn missing_secret_in_env_is_a_config_error() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1",
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]});
    let mut r = Run::new(pod(spec), BTreeMap::new(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(25)));
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(
        cs["state"]["waiting"]["reason"],
        "CreateContainerConfigError"
    );
    assert_eq!(cs["state"]["waiting"]["message"], "secret \"db\" not found");
    let failed = r.event_messages("Failed");
    assert!(
        failed
            .iter()
            .all(|(_, m)| m == "Error: secret \"db\" not found")
    );
    assert!(failed.len() >= 2, "retried: {failed:?}");

    // Once the Secret exists without the key, the message names the key.
    r.view
        .objects
        .push(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "apps"}, "data": {"user": "dQ=="}}));
    // The pod is synced again 10–15 s after the failed one.
    r.until(after(r.now, Duration::from_secs(15)));
    assert_eq!(
        r.status()["containerStatuses"][0]["state"]["waiting"]["message"],
        "couldn't find key password in Secret apps/db"
    );
    r.view.objects[0]["data"]["password"] = json!("cA==");
    r.until(after(r.now, Duration::from_secs(15)));
    assert!(r.status()["containerStatuses"][0]["state"]["running"].is_object());
}

#[test]
fn missing_volume_source_fails_mount_with_growing_retries() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1",
        "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": true}]}],
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}]});
    let mut r = Run::new(pod(spec), BTreeMap::new(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(10)));
    let mounts = r.event_messages("FailedMount");
    assert_eq!(
        mounts.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![0.0, 0.5, 1.5, 3.5, 7.5]
    );
    assert!(
        mounts.iter().all(|(_, m)| m
            == "MountVolume.SetUp failed for volume \"creds\" : secret \"creds\" not found")
    );
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "ContainerCreating");
    assert_eq!(cs["volumeMounts"][0]["recursiveReadOnly"], "Disabled");
    assert_eq!(r.condition("PodReadyToStartContainers")["status"], "False");
    assert!(r.status().get("podIP").is_none());

    r.view
        .objects
        .push(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "apps"}}));
    r.until(after(r.now, Duration::from_secs(30)));
    assert_eq!(r.condition("PodReadyToStartContainers")["status"], "True");
    assert_eq!(r.status()["podIP"], "10.42.1.2");
    assert_eq!(r.status()["phase"], "Running");
}

fn failing(log: &str, exit_code: Option<i32>) -> Requirement {
    Requirement {
        needs: Need::Resource(ResourceNeed {
            group: "example.com".into(),
            version: "v1".into(),
            resource: "widgets".into(),
            kind: "Widget".into(),
        }),
        otherwise: Otherwise {
            log: vec![log.into()],
            exit_code,
            retry: Some(D::from_secs(5)),
            ready: false,
        },
    }
}

#[test]
fn failing_init_container_crash_loops_and_blocks_the_pod() {
    let images = BTreeMap::from([
        (
            "migrate:1".to_owned(),
            ImageBehaviour {
                requires: vec![failing("widgets missing", Some(1))],
                ..ImageBehaviour::default()
            },
        ),
        (
            "busybox:1.36".to_owned(),
            ImageBehaviour {
                requires: vec![failing("waiting for widgets", None)],
                ..ImageBehaviour::default()
            },
        ),
    ]);
    let spec = json!({"initContainers": [
            {"name": "wait", "image": "busybox:1.36"},
            {"name": "migrate", "image": "migrate:1"}],
        "containers": [{"name": "app", "image": "app:1"}]});
    let mut r = Run::new(pod(spec), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(120)));
    let init = &r.status()["initContainerStatuses"];
    // `wait` keeps waiting and never exits, so `migrate` never starts: the printer shows
    // Init:0/2.
    assert!(init[0]["state"]["running"].is_object());
    assert_eq!(init[1]["state"]["waiting"]["reason"], "PodInitializing");
    assert_eq!(
        r.status()["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(r.status()["phase"], "Pending");
    let initialized = r.condition("Initialized");
    assert_eq!(initialized["reason"], "ContainersNotInitialized");
    assert_eq!(
        initialized["message"],
        "containers with incomplete status: [wait migrate]"
    );

    // With a first step that completes, the second crash-loops: Init:CrashLoopBackOff.
    let mut images = r.images.clone();
    images.insert(
        "busybox:1.36".into(),
        ImageBehaviour {
            exit_after: Some(crate::scenario::ExitAfter {
                duration: D::from_secs(2),
                code: 0,
            }),
            ..ImageBehaviour::default()
        },
    );
    let spec = r.pod["spec"].clone();
    let mut r = Run::new(pod(spec), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(120)));
    let init = &r.status()["initContainerStatuses"];
    assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init[0]["ready"], true);
    assert_eq!(init[1]["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(init[1]["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(r.status()["phase"], "Pending");
    assert_eq!(
        r.condition("Initialized")["message"],
        "containers with incomplete status: [migrate]"
    );
    assert_eq!(
        r.logs.iter().filter(|l| l.container == "migrate").count() as u64,
        u64::from(init[1]["restartCount"].as_u64().unwrap() as u32) + 1
    );
    assert!(r.events.iter().any(|e| e.reason == "BackOff"
        && e.involved.field_path.as_deref() == Some("spec.initContainers{migrate}")));

    // restartPolicy Never: a failed init container fails the pod.
    let mut p = r.pod.clone();
    p["spec"]["restartPolicy"] = json!("Never");
    p["status"] = json!({});
    let mut r = Run::new(p, r.images.clone(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(120)));
    assert_eq!(r.status()["phase"], "Failed");
    assert_eq!(
        r.status()["initContainerStatuses"][1]["state"]["terminated"]["reason"],
        "Error"
    );
}

#[test]
fn readiness_follows_the_program_and_probe_failures_are_reported() {
    let images = BTreeMap::from([(
        "quay.io/keycloak/keycloak:26.1.1".to_owned(),
        ImageBehaviour {
            ready_after: Some(D::from_secs(20)),
            ..ImageBehaviour::default()
        },
    )]);
    let spec = json!({"containers": [{"name": "keycloak", "image": "quay.io/keycloak/keycloak:26.1.1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 5}}]});
    let mut r = Run::new(pod(spec), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(60)));
    let unhealthy = r.event_messages("Unhealthy");
    assert!(!unhealthy.is_empty());
    assert!(unhealthy.iter().all(|(_, m)| m
        == "Readiness probe failed: Get \"http://10.42.1.2:8080/health/ready\": dial tcp 10.42.1.2:8080: connect: connection refused"));
    let not_ready = r
        .statuses
        .iter()
        .find(|(_, s)| s.pointer("/containerStatuses/0/state/running").is_some())
        .unwrap();
    let ready_cond = not_ready.1["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready_cond["reason"], "ContainersNotReady");
    assert_eq!(
        ready_cond["message"],
        "containers with unready status: [keycloak]"
    );
    assert_eq!(r.condition("Ready")["status"], "True");
    assert_eq!(r.condition("ContainersReady")["status"], "True");
    assert_eq!(r.status()["containerStatuses"][0]["ready"], true);
    assert_eq!(
        r.condition("PodScheduled")["lastTransitionTime"],
        "2024-12-31T23:59:59Z"
    );
    assert_eq!(r.status()["qosClass"], "BestEffort");
}

#[test]
fn liveness_failures_kill_and_restart_the_container() {
    let images = BTreeMap::from([(
        "app:1".to_owned(),
        ImageBehaviour {
            requires: vec![failing("waiting for widgets", None)],
            ..ImageBehaviour::default()
        },
    )]);
    let spec = json!({"containers": [{"name": "app", "image": "app:1",
        "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 10, "periodSeconds": 10}}]});
    let mut r = Run::new(pod(spec), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(45)));
    let unhealthy = r.event_messages("Unhealthy");
    assert_eq!(
        unhealthy
            .iter()
            .map(|(t, _)| t.floor())
            .collect::<Vec<_>>()
            .len(),
        3
    );
    assert!(
        unhealthy.iter().all(|(_, m)| m
            == "Liveness probe failed: dial tcp 10.42.1.2:8080: connect: connection refused")
    );
    let killing = r.event_messages("Killing");
    assert_eq!(killing.len(), 1);
    assert_eq!(
        killing[0].1,
        "Container app failed liveness probe, will be restarted"
    );
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 143);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert!(cs["state"]["running"].is_object());
}

#[test]
fn a_liveness_kill_under_restart_policy_never_does_not_promise_a_restart() {
    let spec = json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "app:1",
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10}}]});
    let images = BTreeMap::from([(
        "app:1".to_owned(),
        ImageBehaviour {
            requires: vec![failing("waiting for widgets", None)],
            ..ImageBehaviour::default()
        },
    )]);
    let mut r = Run::new(pod(spec), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(60)));
    let killing = r.event_messages("Killing");
    assert_eq!(killing.len(), 1);
    assert_eq!(killing[0].1, "Container app failed liveness probe");
    assert_eq!(r.status()["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn batch_program_completes_and_the_pod_succeeds() {
    let images = BTreeMap::from([(
        "job:1".to_owned(),
        ImageBehaviour {
            logs: vec!["done".into()],
            exit_after: Some(crate::scenario::ExitAfter {
                duration: D::from_secs(5),
                code: 0,
            }),
            ..ImageBehaviour::default()
        },
    )]);
    let spec = json!({"restartPolicy": "Never", "containers": [{"name": "job", "image": "job:1",
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
    let mut r = Run::new(pod(spec), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(600)));
    assert_eq!(r.status()["phase"], "Succeeded");
    assert_eq!(
        r.status()["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(r.condition("Ready")["reason"], "PodCompleted");
    assert_eq!(r.condition("Initialized")["reason"], "PodCompleted");
    assert_eq!(r.condition("PodReadyToStartContainers")["status"], "False");
    assert_eq!(r.status()["qosClass"], "Guaranteed");
    assert_eq!(r.last.wake_at, None);
    assert_eq!(r.logs.len(), 1);
}

#[test]
fn deletion_stops_containers_gracefully() {
    let mut r = Run::new(
        pod(json!({"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]})),
        BTreeMap::new(),
        StaticView::default(),
    );
    r.until(after(t0(), Duration::from_secs(30)));
    assert_eq!(r.status()["phase"], "Running");
    r.pod["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:30Z");
    r.sync();
    assert!(r.last.finished);
    assert_eq!(
        r.event_messages("Killing")
            .iter()
            .map(|(_, m)| m.clone())
            .collect::<Vec<_>>(),
        vec!["Stopping container a", "Stopping container b"]
    );
    assert_eq!(
        r.status()["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        143
    );
    assert_eq!(r.last.wake_at, None);
}

#[test]
fn operator_objects_are_reported_while_the_container_runs() {
    let images = BTreeMap::from([(
        "op:1".to_owned(),
        ImageBehaviour {
            operator: vec![crate::scenario::OperatorRule {
                for_each: ResourceNeed {
                    group: "example.com".into(),
                    version: "v1".into(),
                    resource: "widgets".into(),
                    kind: "Widget".into(),
                },
                owns: vec![
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w-{{name}}"}}),
                ],
                log_while_unserved: vec!["widgets not served".into()],
                reports: vec![],
                event_source: None,
            }],
            ..ImageBehaviour::default()
        },
    )]);
    let view = StaticView::new(vec![
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "x", "namespace": "apps", "uid": "w1"}}),
    ]);
    let mut r = Run::new(
        pod(json!({"containers": [{"name": "op", "image": "op:1"}]})),
        images,
        view,
    );
    r.until(after(t0(), Duration::from_secs(70)));
    assert!(r.last.owned_objects.is_empty());
    assert!(
        r.logs
            .iter()
            .filter(|l| l.text == "widgets not served")
            .count()
            >= 2
    );
    r.view = r.view.clone().serving("example.com", "v1", "widgets");
    r.sync();
    assert_eq!(r.last.owned_objects[0]["metadata"]["name"], "w-x");
}

#[test]
fn postgres_checks_round_trip_through_the_node_agent() {
    use crate::scenario::{PostgresNeed, SslMode, ValueSource};
    use crate::sim::behaviour::PostgresRequest;

    let images = BTreeMap::from([(
        "backstage:1".to_owned(),
        ImageBehaviour {
            requires: vec![Requirement {
                needs: Need::Postgres(PostgresNeed {
                    user: ValueSource::Env("POSTGRES_USER".into()),
                    password: ValueSource::Env("POSTGRES_PASSWORD".into()),
                    database: ValueSource::Value("postgres".into()),
                    sslmode: SslMode::Require,
                    sslmode_env: None,
                    run: vec!["CREATE DATABASE backstage_plugin_catalog".into()],
                }),
                otherwise: Otherwise {
                    log: vec!["Backend failed to start up Error: {error}".into()],
                    exit_code: Some(1),
                    retry: None,
                    ready: false,
                },
            }],
            ..ImageBehaviour::default()
        },
    )]);
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pg", "namespace": "apps"}, "data": {"password": "czNjcjN0"}});
    let spec = json!({"containers": [{"name": "backstage", "image": "backstage:1", "env": [
        {"name": "POSTGRES_USER", "value": "backstage"},
        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "password"}}}]}]});
    let mut r = Run::new(pod(spec), images, StaticView::new(vec![secret]));
    r.until(after(t0(), Duration::from_secs(30)));
    assert_eq!(
        r.last.postgres,
        vec![PendingPostgres {
            container: "backstage".into(),
            request: PostgresRequest {
                user: "backstage".into(),
                password: "s3cr3t".into(),
                database: "postgres".into(),
                sslmode: SslMode::Require,
                run: vec!["CREATE DATABASE backstage_plugin_catalog".into()],
            },
        }]
    );
    // Waits for the answer: only the pod worker's periodic resync (1m + jitter) is due.
    let wake = r.last.wake_at.expect("running pods are resynced");
    assert!(wake >= after(t0(), Duration::from_secs(60)), "{wake}");
    r.kubelet.postgres_result(
        "uid-1",
        "backstage",
        &PostgresOutcome::Failed {
            sqlstate: Some("42501".into()),
            message: "permission denied to create database".into(),
        },
    );
    r.sync();
    assert_eq!(
        r.last.logs[0].text,
        "Backend failed to start up Error: permission denied to create database"
    );
    // The exit happened when the check was made (the clock does not move while the real
    // server answers); by now the container was restarted and asks again.
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(r.last.postgres.len(), 1);
}

#[test]
fn sidecar_init_containers_keep_running_beside_the_app() {
    let spec = json!({"initContainers": [{"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "app:1"}]});
    let mut r = Run::new(pod(spec), BTreeMap::new(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(30)));
    assert!(r.status()["initContainerStatuses"][0]["state"]["running"].is_object());
    assert_eq!(r.status()["initContainerStatuses"][0]["started"], true);
    assert!(r.status()["containerStatuses"][0]["state"]["running"].is_object());
    assert_eq!(r.status()["phase"], "Running");
    assert_eq!(r.condition("Initialized")["status"], "True");
    assert_eq!(r.condition("Ready")["status"], "True");
}

#[test]
fn init_container_of_an_unknown_image_completes() {
    let spec = json!({"initContainers": [{"name": "chown", "image": "busybox:1.31.1"}],
        "containers": [{"name": "app", "image": "app:1"}]});
    let mut r = Run::new(pod(spec), BTreeMap::new(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(60)));
    let init = &r.status()["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    assert!(r.status()["containerStatuses"][0]["state"]["running"].is_object());
    assert_eq!(r.status()["phase"], "Running");
}

fn probed(image: &str, behaviour: ImageBehaviour, container: Value) -> Run {
    let images = BTreeMap::from([(image.to_owned(), behaviour)]);
    let mut c = container;
    c["name"] = json!("app");
    c["image"] = json!(image);
    Run::new(
        pod(json!({"containers": [c]})),
        images,
        StaticView::default(),
    )
}

/// Seconds since the first container start (probes count from there, not from the pull).
fn since_start(r: &Run, reason: &str) -> Vec<(f64, String)> {
    let start = r.event_messages("Started")[0].0;
    r.event_messages(reason)
        .into_iter()
        .map(|(t, m)| (((t - start) * 1000.0).round() / 1000.0, m))
        .collect()
}

/// Runs until `secs` after the first container start.
fn until_after_start(r: &mut Run, secs: u64) {
    if r.events.iter().all(|e| e.reason != "Started") {
        r.until(after(t0(), Duration::from_secs(1)));
        while r.events.iter().all(|e| e.reason != "Started") {
            let w = r.last.wake_at.expect("the container starts");
            r.until(w);
        }
    }
    let start = r.event_messages("Started")[0].0;
    let target = after(
        t0(),
        Duration::from_millis((start * 1000.0) as u64 + secs * 1000),
    );
    r.until(target);
}

#[test]
fn exec_probe_timeouts_fail_with_the_cri_text_and_restart_the_container() {
    let slow: ImageBehaviour = serde_json::from_value(json!({
        "answerTime": [{"time": "2s", "command": "redis-cli"}]
    }))
    .unwrap();
    let mut r = probed(
        "redis:7.2.5",
        slow.clone(),
        json!({"livenessProbe": {"exec": {"command": ["redis-cli", "ping"]}}}),
    );
    until_after_start(&mut r, 35);
    assert_eq!(
        since_start(&r, "Unhealthy"),
        [10.0, 20.0, 30.0]
            .map(|t| (
                t,
                "Liveness probe failed: command timed out: \"redis-cli ping\" timed out after 1s"
                    .to_owned()
            ))
            .to_vec()
    );
    assert_eq!(
        since_start(&r, "Killing"),
        vec![(
            30.0,
            "Container app failed liveness probe, will be restarted".to_owned()
        )]
    );
    // A budget longer than the answer time passes; other commands are not slow.
    for probe in [
        json!({"exec": {"command": ["redis-cli", "ping"]}, "timeoutSeconds": 3}),
        json!({"exec": {"command": ["cat", "/tmp/healthy"]}}),
    ] {
        let mut r = probed("redis:7.2.5", slow.clone(), json!({"livenessProbe": probe}));
        until_after_start(&mut r, 60);
        assert!(r.event_messages("Unhealthy").is_empty());
    }
}

#[test]
fn startup_probe_gates_the_other_probes_and_its_threshold_restarts() {
    let starts_slowly = |secs| ImageBehaviour {
        ready_after: Some(D::from_secs(secs)),
        ..ImageBehaviour::default()
    };
    let probes = json!({
        "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
        "readinessProbe": {"tcpSocket": {"port": 8080}}
    });
    let mut r = probed("app:1", starts_slowly(25), probes.clone());
    until_after_start(&mut r, 29);
    // Liveness and readiness wait for the startup probe; the exec failures have no output.
    assert_eq!(
        since_start(&r, "Unhealthy"),
        vec![
            (10.0, "Startup probe failed: ".to_owned()),
            (20.0, "Startup probe failed: ".to_owned())
        ]
    );
    assert_eq!(r.status()["containerStatuses"][0]["started"], false);
    assert_eq!(r.condition("Ready")["status"], "False");
    until_after_start(&mut r, 60);
    assert_eq!(r.event_messages("Unhealthy").len(), 2);
    assert_eq!(r.status()["containerStatuses"][0]["started"], true);
    assert_eq!(r.condition("Ready")["status"], "True");
    assert!(r.event_messages("Killing").is_empty());

    // failureThreshold failures in a row before the program is up: restarted.
    let mut r = probed("app:1", starts_slowly(45), probes);
    until_after_start(&mut r, 35);
    assert_eq!(
        since_start(&r, "Killing"),
        vec![(
            30.0,
            "Container app failed startup probe, will be restarted".to_owned()
        )]
    );
    assert_eq!(r.status()["containerStatuses"][0]["restartCount"], 1);
}

#[test]
fn initial_delay_and_success_threshold_hold_readiness_back() {
    let mut r = probed(
        "app:1",
        ImageBehaviour::default(),
        json!({"readinessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 25,
                                  "periodSeconds": 10, "successThreshold": 2}}),
    );
    until_after_start(&mut r, 34);
    // One success at 25 s is not enough.
    assert_eq!(r.condition("Ready")["status"], "False");
    until_after_start(&mut r, 35);
    assert_eq!(r.condition("Ready")["status"], "True");

    // Without a delay the status update after the start runs the readiness probe within the
    // PLEG relist, however long its period; a liveness probe waits for its first tick.
    let mut r = probed(
        "app:1",
        ImageBehaviour::default(),
        json!({"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 30},
               "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 30}}),
    );
    until_after_start(&mut r, 1);
    assert_eq!(r.condition("Ready")["status"], "True");
    assert!(r.event_messages("Unhealthy").is_empty());
}

fn kill_fault(oom: bool, after_secs: u64, for_secs: Option<u64>) -> crate::sim::faults::Faults {
    let kill = crate::scenario::KillFault {
        namespace: "apps".into(),
        pod: Some("app-7d4b9c".into()),
        after: Some(D::from_secs(after_secs)),
        ..crate::scenario::KillFault::default()
    };
    let step = crate::scenario::FaultStep {
        for_: for_secs.map(D::from_secs),
        container_kill: (!oom).then(|| kill.clone()),
        oom_kill: oom.then_some(kill),
        ..crate::scenario::FaultStep::default()
    };
    let mut faults = crate::sim::faults::Faults::default();
    faults.start(&step, t0());
    faults
}

#[test]
fn a_killed_container_exits_137_and_restarts_with_back_off() {
    let view = StaticView::default().with_faults(kill_fault(false, 30, Some(90)));
    let mut r = Run::new(one_container("app:1"), BTreeMap::new(), view);
    // The image pull ends at 5s; the run is killed 30s later and noticed a second after; the
    // first restart is immediate (the back-off starts with it).
    r.until(after(t0(), Duration::from_secs(40)));
    let cs = &r.status()["containerStatuses"][0];
    assert!(cs["state"]["running"].is_object(), "{cs}");
    let term = &cs["lastState"]["terminated"];
    assert_eq!(
        (term["exitCode"].clone(), term["reason"].clone()),
        (json!(137), json!("Error"))
    );
    assert_eq!(term["startedAt"], "2025-01-01T00:00:05Z");
    assert_eq!(term["finishedAt"], "2025-01-01T00:00:35Z");
    // The second run (from 36s) is killed at 66s and backs off for 10s.
    r.until(after(t0(), Duration::from_secs(70)));
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff", "{cs}");
    // The fault ends at 90s, before the third run (from 77s) would be killed.
    r.until(after(t0(), Duration::from_secs(300)));
    let cs = &r.status()["containerStatuses"][0];
    assert!(cs["state"]["running"].is_object(), "{cs}");
    assert_eq!(cs["restartCount"], 2, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
}

#[test]
fn an_oom_killed_container_reports_oomkilled() {
    let view = StaticView::default().with_faults(kill_fault(true, 5, None));
    let mut r = Run::new(one_container("app:1"), BTreeMap::new(), view);
    r.until(after(t0(), Duration::from_secs(13)));
    let cs = &r.status()["containerStatuses"][0];
    let term = &cs["lastState"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled", "{cs}");
    assert_eq!(term["exitCode"], 137);
    // Under restartPolicy Never the kill is final and the pod fails.
    let mut spec = one_container("app:1");
    spec["spec"]["restartPolicy"] = json!("Never");
    let view = StaticView::default().with_faults(kill_fault(true, 5, None));
    let mut r = Run::new(spec, BTreeMap::new(), view);
    r.until(after(t0(), Duration::from_secs(60)));
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["reason"], "OOMKilled", "{cs}");
    assert_eq!(r.status()["phase"], "Failed");
}

#[test]
fn pulls_fail_while_the_registry_is_down_and_succeed_after() {
    let mut faults = crate::sim::faults::Faults::default();
    faults.start(
        &crate::scenario::FaultStep {
            for_: Some(D::from_secs(30)),
            registry_outage: Some(crate::scenario::RegistryFault {
                registry: "docker.io".into(),
            }),
            ..crate::scenario::FaultStep::default()
        },
        t0(),
    );
    let view = StaticView::default().with_faults(faults);
    let mut r = Run::new(one_container("busybox:1.36.1"), BTreeMap::new(), view);
    // Pulls fail at 0.5s and 10.5–15.5s (the pod is synced again 10–15 s after a failure);
    // the sync after that finds the pull backing off for 20s.
    r.until(after(t0(), Duration::from_secs(40)));
    let failed = r.event_messages("Failed");
    assert_eq!(
        failed[0].1,
        "Failed to pull image \"busybox:1.36.1\": rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/busybox:1.36.1\": failed to resolve reference \"docker.io/library/busybox:1.36.1\": failed to do request: Head \"https://registry-1.docker.io/v2/library/busybox/manifests/1.36.1\": dial tcp: lookup registry-1.docker.io on 127.0.0.11:53: no such host"
    );
    assert_eq!(failed[1].1, "Error: ErrImagePull");
    assert!(r.statuses.iter().any(|(_, s)| {
        s.pointer("/containerStatuses/0/state/waiting/reason") == Some(&json!("ImagePullBackOff"))
    }));
    // Once the outage is over the next retry pulls the image and the container starts.
    r.until(after(t0(), Duration::from_secs(120)));
    let cs = &r.status()["containerStatuses"][0];
    assert!(cs["state"]["running"].is_object(), "{cs}");
    assert_eq!(r.event_messages("Pulled").len(), 1);
}

#[test]
fn a_program_using_more_memory_than_its_limit_is_oom_killed() {
    let images = BTreeMap::from([(
        "app:1".to_owned(),
        ImageBehaviour {
            memory: Some("600Mi".into()),
            ready_after: Some(D::from_secs(20)),
            ..ImageBehaviour::default()
        },
    )]);
    let limited = |limit: &str| {
        pod(
            json!({"nodeName": "node-1", "containers": [{"name": "app", "image": "app:1",
            "resources": {"limits": {"memory": limit}}}]}),
        )
    };
    let mut r = Run::new(limited("512Mi"), images.clone(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(30)));
    let cs = &r.status()["containerStatuses"][0];
    let term = &cs["lastState"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled", "{cs}");
    assert_eq!(term["exitCode"], 137);
    assert_eq!(
        (term["startedAt"].clone(), term["finishedAt"].clone()),
        (json!("2025-01-01T00:00:05Z"), json!("2025-01-01T00:00:25Z"))
    );
    // A limit above what it uses lets it run.
    let mut r = Run::new(limited("1Gi"), images, StaticView::default());
    r.until(after(t0(), Duration::from_secs(300)));
    let cs = &r.status()["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 0, "{cs}");
    assert!(cs["state"]["running"].is_object());
}

/// Seconds between consecutive times.
fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn a_crash_looping_pod_is_synced_every_ten_to_fifteen_seconds_and_restarted_at_the_first_sync_after_its_back_off()
 {
    let mut r = Run::new(
        one_container("registry.example/keycloak:26.1.1"),
        keycloak_arm64(),
        StaticView::default(),
    );
    r.until(after(t0(), Duration::from_secs(30 * 60)));
    let started: Vec<f64> = r.event_messages("Started").iter().map(|e| e.0).collect();
    let backoffs: Vec<f64> = r.event_messages("BackOff").iter().map(|e| e.0).collect();
    // The first exit is restarted at once; from the second on the back-off doubles from 10 s
    // to its 5 m cap. Each run exits as it starts and is noticed a second later.
    let periods = [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0];
    assert!(started.len() >= periods.len() + 2, "{started:?}");
    for (k, backoff) in periods.iter().enumerate() {
        let (exit, restart) = (started[k + 1], started[k + 2]);
        assert!(
            restart >= exit + backoff && restart < exit + backoff + 15.0,
            "run {k}: exit {exit} restart {restart}"
        );
        // A BackOff event when the exit is noticed, then one at every sync (10–15 s apart)
        // until the back-off is over.
        let during: Vec<f64> = backoffs
            .iter()
            .copied()
            .filter(|t| *t > exit && *t < restart)
            .collect();
        assert!((during[0] - (exit + 1.0)).abs() < 0.001, "{during:?}");
        assert!(
            gaps(&during).iter().all(|g| (10.0..15.0).contains(g)),
            "{during:?}"
        );
        assert!(restart - during[during.len() - 1] < 15.0);
        let lo = 1 + (*backoff as usize - 1) / 15;
        let hi = (*backoff as usize - 1).div_ceil(10);
        assert!(
            (lo..=hi).contains(&during.len()),
            "{backoff}s back-off: {} events",
            during.len()
        );
    }
    // The jitter spreads the syncs: not every gap is the same.
    let all = gaps(&backoffs);
    assert!(all.iter().any(|g| *g < 12.0) && all.iter().any(|g| (13.0..15.0).contains(g)));
    // The same pod replays the same way.
    let mut again = Run::new(
        one_container("registry.example/keycloak:26.1.1"),
        keycloak_arm64(),
        StaticView::default(),
    );
    again.until(after(t0(), Duration::from_secs(30 * 60)));
    assert_eq!(again.event_messages("BackOff"), r.event_messages("BackOff"));
}

#[test]
fn a_failed_start_is_retried_ten_to_fifteen_seconds_later() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1",
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]});
    let mut r = Run::new(pod(spec), BTreeMap::new(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(10 * 60)));
    let failed: Vec<f64> = r.event_messages("Failed").iter().map(|e| e.0).collect();
    let g = gaps(&failed);
    assert!(g.iter().all(|g| (10.0..15.0).contains(g)), "{g:?}");
    assert!(g.iter().any(|g| *g > 11.0), "jittered: {g:?}");
    // 600 s at 10–15 s per retry.
    assert!((40..=61).contains(&failed.len()), "{}", failed.len());
}

#[test]
fn a_missing_pull_secret_is_reported_at_every_sync_of_a_running_pod() {
    let mut p = one_container("busybox:1.36.1");
    p["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let mut r = Run::new(p, BTreeMap::new(), StaticView::default());
    r.until(after(t0(), Duration::from_secs(10 * 60)));
    assert!(r.status()["containerStatuses"][0]["state"]["running"].is_object());
    // Pulled once; the secret is looked up at the first sync and at every periodic resync
    // (1m + up to 30 s of jitter) after it.
    assert_eq!(r.event_messages("Pulling").len(), 1);
    let reported: Vec<f64> = r
        .event_messages("FailedToRetrieveImagePullSecret")
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(reported[0], 0.0);
    let g = gaps(&reported[1..]);
    assert!(g.iter().all(|g| (60.0..90.0).contains(g)), "{reported:?}");
    assert!((7..=11).contains(&reported.len()), "{reported:?}");
}

/// Runs a pod whose image lacks the node's platform on a kubelet of `versions`, one minute.
fn platformless_pull_on(versions: Versions) -> Run {
    let images = BTreeMap::from([(
        "foundationdb/fdb-kubernetes-operator:v2.6.0".to_owned(),
        ImageBehaviour {
            platforms: vec!["linux/arm64".into()],
            ..ImageBehaviour::default()
        },
    )]);
    let mut r = Run::new(
        one_container("foundationdb/fdb-kubernetes-operator:v2.6.0"),
        images,
        StaticView::default(),
    );
    r.kubelet = kubelet_on(versions);
    r.until(after(t0(), Duration::from_secs(60)));
    r
}

fn backoff_message(r: &Run) -> Value {
    r.statuses
        .iter()
        .find(|(_, s)| {
            s.pointer("/containerStatuses/0/state/waiting/reason")
                == Some(&json!("ImagePullBackOff"))
        })
        .unwrap()
        .1["containerStatuses"][0]["state"]["waiting"]["message"]
        .clone()
}

#[test]
fn on_kubernetes_1_31_the_backoff_message_is_the_event_alone() {
    let r = platformless_pull_on(Versions {
        kubernetes: crate::scenario::KubernetesVersion::V1_31,
        ..Versions::default()
    });
    assert_eq!(
        backoff_message(&r),
        "Back-off pulling image \"foundationdb/fdb-kubernetes-operator:v2.6.0\""
    );
    let default = platformless_pull_on(Versions::default());
    assert!(
        backoff_message(&default)
            .as_str()
            .unwrap()
            .ends_with(": no match for platform in manifest: not found")
    );
}

#[test]
fn containerd_2_0_words_the_pull_error_as_1_7_does() {
    let r = platformless_pull_on(Versions {
        containerd: crate::scenario::ContainerdVersion::V2_0,
        ..Versions::default()
    });
    let failed = r.event_messages("Failed");
    assert_eq!(
        failed[0].1,
        "Failed to pull image \"foundationdb/fdb-kubernetes-operator:v2.6.0\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/foundationdb/fdb-kubernetes-operator:v2.6.0\": no match for platform in manifest: not found"
    );
}
