//! The k3d driver against a recorded fake `k3d`: a shell script that logs its argv and replays
//! canned stdout, stderr, exit codes and hangs, and a fake Docker daemon on a Unix socket that
//! records what the driver removes. No Docker daemon or k3d binary is needed.
//!
//! Each test gets its own fake in its own temp dir and passes its path explicitly
//! ([`K3d::at`]), so tests run in parallel without touching `PATH`. Each test also uses its own
//! cluster name, because the registry of live clusters is process-wide.

#![expect(
    clippy::unwrap_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relapse::backend::k3d::{
    ClusterName, CreateOptions, CreateSpec, K3d, K3dCluster, K3dError, KeepReason, Owner, Timeouts,
    gc, live_clusters,
};
use relapse::scenario::{Arch, ClusterShape};

const KUBECONFIG: &str = include_str!("data/k3d/kubeconfig.yaml");
/// The cluster the recorded kubeconfig and the recorded cluster list belong to.
const RECORDED_NAME: &str = "relapse-three-nodes-e5f6g7h8";
/// `k3d version` of the k3d v5.8.3 release.
const VERSION: &str = include_str!("data/k3d/version.stdout");

/// Logs argv (tab-separated, one line per call) and replays `<cmd>-<sub>.{sleep,stdout,stderr,code}`
/// (`<cmd>.*` for a command without subcommand, such as `version`); a `<cmd>-<sub>.template` is
/// printed with `@NAME@` replaced by the third argument (the cluster of `kubeconfig get <name>`).
const FAKE_K3D: &str = r#"#!/bin/sh
dir=$(dirname "$0")
{ for a in "$@"; do printf '%s\t' "$a"; done; printf '\n'; } >> "$dir/argv.log"
key="$1${2:+-$2}"
if [ -f "$dir/$key.sleep" ]; then
  sleep "$(cat "$dir/$key.sleep")" &
  echo $! > "$dir/$key.sleep-pid"
  wait $!
fi
if [ -f "$dir/$key.stdout" ]; then cat "$dir/$key.stdout"; fi
if [ -f "$dir/$key.template" ]; then sed "s/@NAME@/$3/g" "$dir/$key.template"; fi
if [ -f "$dir/$key.stderr" ]; then cat "$dir/$key.stderr" >&2; fi
if [ -f "$dir/$key.code" ]; then exit "$(cat "$dir/$key.code")"; fi
exit 0
"#;

/// A Docker daemon on a Unix socket: it answers `DELETE` of the named networks and volumes
/// `204 No Content` (they exist), everything else `404 Not Found`, and records request lines.
struct FakeDocker {
    host: String,
    requests: Arc<Mutex<Vec<String>>>,
    existing: Arc<Mutex<Vec<String>>>,
}

impl FakeDocker {
    fn start(dir: &std::path::Path) -> Self {
        let path = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let existing: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let (log, objects) = (requests.clone(), existing.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(line.clone());
                let existed = line.starts_with("DELETE ") && {
                    let mut objects = objects.lock().unwrap();
                    let before = objects.len();
                    objects.retain(|o| *o != path);
                    objects.len() < before
                };
                // Docker Engine API answers: 204 on removal, 404 with a JSON message otherwise.
                let answer: &[u8] = if existed {
                    b"HTTP/1.1 204 No Content\r\n\r\n"
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"not found\"}\n"
                };
                let _ = stream.write_all(answer);
            }
        });
        Self {
            host: format!("unix://{}", path.display()),
            requests,
            existing,
        }
    }

    /// Makes `DELETE <path>` find an object, e.g. `/networks/k3d-x`.
    fn holds(&self, path: &str) {
        self.existing.lock().unwrap().push(path.to_owned());
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

struct Fake {
    dir: tempfile::TempDir,
    program: PathBuf,
    docker: FakeDocker,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("k3d");
        fs::write(&program, FAKE_K3D).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread may fork while our write descriptor is open; until that child
        // execs, running the script fails with ETXTBSY. Wait (bounded) until it runs once.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match std::process::Command::new(&program).arg("warm-up").output() {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("cannot run the fake k3d: {e}"),
            }
        }
        fs::remove_file(dir.path().join("argv.log")).unwrap();
        let docker = FakeDocker::start(dir.path());
        let fake = Self {
            dir,
            program,
            docker,
        };
        fake.reply("version", "stdout", VERSION);
        fake
    }

    fn k3d(&self) -> K3d {
        K3d::at(&self.program).with_docker_host(&self.docker.host)
    }

    fn reply(&self, key: &str, suffix: &str, content: &str) {
        fs::write(self.dir.path().join(format!("{key}.{suffix}")), content).unwrap();
    }

    /// Serves the recorded kubeconfig, renamed for `name`.
    fn serve_kubeconfig(&self, name: &str) {
        self.reply(
            "kubeconfig-get",
            "stdout",
            &KUBECONFIG.replace(RECORDED_NAME, name),
        );
    }

    fn calls(&self) -> Vec<Vec<String>> {
        match fs::read_to_string(self.dir.path().join("argv.log")) {
            Ok(log) => log
                .lines()
                .map(|l| {
                    l.strip_suffix('\t')
                        .unwrap_or(l)
                        .split('\t')
                        .map(str::to_owned)
                        .collect()
                })
                .collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

fn owner() -> Owner {
    Owner {
        host: "ci-runner-7".to_owned(),
        boot_id: Some("0b4e6a3c-5d1f-4c8e-9a2b-7f3e1d6c8a90".to_owned()),
        pid: 48213,
        start_time: Some(7_730_121),
    }
}

const TOKEN: &str = "ci-runner-7/0b4e6a3c-5d1f-4c8e-9a2b-7f3e1d6c8a90/48213/7730121";

fn spec(cluster: &ClusterShape, name: &str) -> CreateSpec {
    let options = CreateOptions {
        k3s_version: "v1.31.5-k3s1".to_owned(),
        host_arch: Some(Arch::Amd64),
    };
    CreateSpec::new(cluster, &options, ClusterName::new(name).unwrap(), owner()).unwrap()
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|&w| w.to_owned()).collect()
}

#[test]
fn one_server_cluster_command_lines() {
    let fake = Fake::new();
    let name = "relapse-one-server-a1b2c3d4";
    fake.serve_kubeconfig(name);
    let cluster = K3dCluster::create(&fake.k3d(), &spec(&ClusterShape::default(), name)).unwrap();
    assert!(live_clusters().contains(&name.to_owned()));
    assert_eq!(cluster.kubeconfig().server(), Some("https://0.0.0.0:38517"));
    assert_eq!(cluster.kubeconfig().context(), format!("k3d-{name}"));
    cluster.delete().unwrap();
    assert!(!live_clusters().contains(&name.to_owned()));

    let owner_label = format!("--runtime-label=relapse.owner={TOKEN}@all");
    let owner_env = format!("--env=RELAPSE_OWNER={TOKEN}@all");
    assert_eq!(
        fake.calls(),
        [
            strings(&[
                "cluster",
                "create",
                name,
                "--image=rancher/k3s:v1.31.5-k3s1",
                "--servers=1",
                "--agents=0",
                "--no-lb",
                "--wait",
                "--timeout=180s",
                "--kubeconfig-update-default=false",
                "--kubeconfig-switch-context=false",
                &owner_label,
                &owner_env,
                "--k3s-arg=--disable=traefik@server:*",
                "--k3s-arg=--disable=servicelb@server:*",
                "--k3s-arg=--node-name=node-1@server:0",
            ]),
            strings(&["kubeconfig", "get", name]),
            strings(&["cluster", "delete", name]),
        ]
    );
}

const THREE_NODES: &str = r"
loadBalancer: service-lb
nodes:
  - name: cp-1
    roles: [control-plane]
  - name: ip-10-0-1-10.eu-west-2.compute.internal
    roles: [worker]
    labels:
      topology.kubernetes.io/zone: eu-west-2a
      eks.amazonaws.com/nodegroup: general
  - name: ip-10-0-1-20.eu-west-2.compute.internal
    roles: [worker]
    labels:
      topology.kubernetes.io/zone: eu-west-2b
      node-role.kubernetes.io/batch: ''
    taints:
      - {key: dedicated, value: batch, effect: NoSchedule}
      - {key: spot, effect: PreferNoSchedule}
    capacity: {pods: 30}
";

#[test]
fn server_and_two_agents_with_labels_and_taints() {
    let fake = Fake::new();
    let name = "relapse-three-nodes-e5f6g7h8";
    fake.serve_kubeconfig(name);
    let cluster: ClusterShape = relapse::yaml::from_str(THREE_NODES).unwrap();
    let spec = spec(&cluster, name);
    let created = K3dCluster::create(&fake.k3d(), &spec).unwrap();
    drop(created);

    let owner_label = format!("--runtime-label=relapse.owner={TOKEN}@all");
    let owner_env = format!("--env=RELAPSE_OWNER={TOKEN}@all");
    assert_eq!(
        fake.calls(),
        [
            strings(&[
                "cluster",
                "create",
                name,
                "--image=rancher/k3s:v1.31.5-k3s1",
                "--servers=1",
                "--agents=2",
                "--no-lb",
                "--wait",
                "--timeout=180s",
                "--kubeconfig-update-default=false",
                "--kubeconfig-switch-context=false",
                &owner_label,
                &owner_env,
                "--k3s-arg=--disable=traefik@server:*",
                "--k3s-arg=--node-name=cp-1@server:0",
                "--k3s-arg=--node-taint=node-role.kubernetes.io/control-plane:NoSchedule@server:0",
                "--k3s-arg=--node-name=ip-10-0-1-10.eu-west-2.compute.internal@agent:0",
                "--k3s-node-label=eks.amazonaws.com/nodegroup=general@agent:0",
                "--k3s-node-label=topology.kubernetes.io/zone=eu-west-2a@agent:0",
                "--k3s-arg=--node-name=ip-10-0-1-20.eu-west-2.compute.internal@agent:1",
                "--k3s-node-label=topology.kubernetes.io/zone=eu-west-2b@agent:1",
                "--k3s-arg=--node-taint=dedicated=batch:NoSchedule@agent:1",
                "--k3s-arg=--node-taint=spot:PreferNoSchedule@agent:1",
                "--k3s-arg=--kubelet-arg=max-pods=30@agent:1",
            ]),
            strings(&["kubeconfig", "get", name]),
            // Dropping the guard deleted the cluster.
            strings(&["cluster", "delete", name]),
        ]
    );
    // The kubelet may not set node-role.kubernetes.io/* on itself: it is applied via the API.
    let api: Vec<_> = spec
        .api_labels()
        .iter()
        .map(|l| (l.node.as_str(), l.key.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        api,
        [(
            "ip-10-0-1-20.eu-west-2.compute.internal",
            "node-role.kubernetes.io/batch",
            ""
        )]
    );
}

#[test]
fn failed_create_reports_command_exit_code_and_stderr_then_cleans_up() {
    let fake = Fake::new();
    let name = "relapse-create-fails-k2m4q8zt";
    fake.reply("cluster-create", "code", "1");
    fake.reply(
        "cluster-create",
        "stderr",
        include_str!("data/k3d/create-failure.stderr"),
    );
    let err = K3dCluster::create(&fake.k3d(), &spec(&ClusterShape::default(), name)).unwrap_err();
    let K3dError::CommandFailed {
        command,
        code,
        stderr_tail,
    } = &err
    else {
        panic!("expected CommandFailed, got {err:?}");
    };
    assert!(
        command.starts_with(&format!(
            "k3d cluster create {name} --image=rancher/k3s:v1.31.5-k3s1 --servers=1"
        )),
        "{command}"
    );
    assert_eq!(*code, Some(1));
    // Colour codes are stripped; the tail ends with k3d's verdict.
    assert!(
        stderr_tail.ends_with(
            "ERRO[0002] Failed to create cluster >>> Rolling Back\nFATA[0003] Cluster creation FAILED, all changes have been rolled back!"
        ),
        "{stderr_tail}"
    );
    let message = err.to_string();
    assert!(
        message
            .contains("exited with code 1; stderr ends with:\nERRO[0002] failed Cluster Creation"),
        "{message}"
    );
    assert!(message.contains("manifest for rancher/k3s:v1.31.99-k3s1 not found"));

    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1], strings(&["cluster", "delete", name]));
    assert!(!live_clusters().contains(&name.to_owned()));
    // k3d rolled back itself (it ran to its end): nothing is removed behind its back.
    assert_eq!(fake.docker.requests(), Vec::<String>::new());
}

#[test]
fn a_name_that_is_taken_leaves_the_existing_cluster_alone() {
    let fake = Fake::new();
    let name = "relapse-taken-m3n4b5v6";
    // k3d v5.8.3 refuses before creating anything (cmd/cluster/clusterCreate.go: Fatalf, so
    // exit code 1).
    fake.reply("cluster-create", "code", "1");
    fake.reply(
        "cluster-create",
        "stderr",
        &include_str!("data/k3d/create-exists.stderr").replace(RECORDED_NAME, name),
    );
    let err = K3dCluster::create(&fake.k3d(), &spec(&ClusterShape::default(), name)).unwrap_err();
    let K3dError::AlreadyExists {
        name: taken,
        source,
    } = &err
    else {
        panic!("expected AlreadyExists, got {err:?}");
    };
    assert_eq!(taken, name);
    let K3dError::CommandFailed {
        command,
        code: Some(1),
        ..
    } = &**source
    else {
        panic!("{source:?}");
    };
    assert!(
        command.starts_with(&format!("k3d cluster create {name} ")),
        "{command}"
    );
    assert_eq!(
        relapse::error_chain::error_chain(&err),
        format!(
            "a k3d cluster named `{name}` already exists; it was left alone: `{command}` exited with code 1; stderr ends with:\nFATA[0000] Failed to create cluster '{name}' because a cluster with that name already exists"
        )
    );
    // Only the create: no delete, no removal of its network or volume, not registered.
    assert_eq!(fake.calls().len(), 1, "{:?}", fake.calls());
    assert_eq!(fake.docker.requests(), Vec::<String>::new());
    assert!(!live_clusters().contains(&name.to_owned()));
}

#[test]
fn hanging_create_is_killed_after_every_stage_and_its_leftovers_are_removed() {
    let fake = Fake::new();
    let name = "relapse-hangs-p9r8s7t6";
    fake.reply("cluster-create", "sleep", "600");
    fake.reply("cluster-create", "stderr", "never printed\n");
    // Killed after k3d made the network and the image volume (ClusterPrep), before any node
    // container: `k3d cluster delete` then finds nothing, so they are removed by name.
    fake.docker.holds(&format!("/networks/k3d-{name}"));
    fake.docker.holds(&format!("/volumes/k3d-{name}-images"));
    let k3d = fake.k3d().with_timeouts(Timeouts {
        create: Duration::from_millis(300),
        create_grace: Duration::from_millis(100),
        ..Timeouts::default()
    });
    let started = Instant::now();
    let err = K3dCluster::create(&k3d, &spec(&ClusterShape::default(), name)).unwrap_err();
    let K3dError::Timeout { command, after, .. } = &err else {
        panic!("expected Timeout, got {err:?}");
    };
    // k3d gets --timeout per stage; the kill waits for all three stages and the grace.
    assert!(command.starts_with(&format!("k3d cluster create {name} ")));
    assert!(command.contains(" --timeout=300ms "), "{command}");
    assert_eq!(*after, Duration::from_secs(1));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        err.to_string()
            .contains("did not finish within 1s and was killed")
    );

    // The fake's `sleep 600` was in the killed process group: it must be gone (or a zombie
    // waiting for init to collect it). Bounded wait for the kernel to deliver the signal.
    let pid: i32 = fs::read_to_string(fake.path("cluster-create.sleep-pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while process_running(pid) {
        assert!(Instant::now() < deadline, "sleep {pid} survived the kill");
        std::thread::sleep(Duration::from_millis(20));
    }

    let calls = fake.calls();
    assert_eq!(
        calls.last().unwrap(),
        &strings(&["cluster", "delete", name])
    );
    assert_eq!(
        fake.docker.requests(),
        [
            format!("DELETE /networks/k3d-{name} HTTP/1.0"),
            format!("DELETE /volumes/k3d-{name}-images HTTP/1.0"),
        ]
    );
    assert!(fake.docker.existing.lock().unwrap().is_empty());
    assert!(!live_clusters().contains(&name.to_owned()));
}

#[test]
fn a_killed_create_whose_leftovers_cannot_be_removed_stays_registered() {
    let fake = Fake::new();
    let name = "relapse-hangs-nodock1";
    fake.reply("cluster-create", "sleep", "600");
    let dir = tempfile::tempdir().unwrap();
    let k3d = fake
        .k3d()
        .with_docker_host(format!("unix://{}/docker.sock", dir.path().display()))
        .with_timeouts(Timeouts {
            create: Duration::from_millis(100),
            create_grace: Duration::ZERO,
            ..Timeouts::default()
        });
    let err = K3dCluster::create(&k3d, &spec(&ClusterShape::default(), name)).unwrap_err();
    assert!(matches!(err, K3dError::Timeout { .. }), "{err:?}");
    // k3d was asked to delete it, but the network and volume could not be removed: it stays
    // registered, so the interrupt handler tries again.
    assert_eq!(
        fake.calls().last().unwrap(),
        &strings(&["cluster", "delete", name])
    );
    assert!(live_clusters().contains(&name.to_owned()));
}

fn process_running(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

#[test]
fn the_guard_deletes_the_cluster_when_a_test_panics() {
    let fake = Fake::new();
    let name = "relapse-panics-u1v2w3x4";
    fake.serve_kubeconfig(name);
    let k3d = fake.k3d();
    let spec = spec(&ClusterShape::default(), name);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _cluster = K3dCluster::create(&k3d, &spec).unwrap();
        panic!("symptom never appeared");
    }));
    assert!(outcome.is_err());
    assert_eq!(
        fake.calls().last().unwrap(),
        &strings(&["cluster", "delete", name])
    );
    assert!(!live_clusters().contains(&name.to_owned()));
}

/// A control-plane node whose kubelet must not label itself `node-role.kubernetes.io/worker`.
const LATE_SERVER: &str = r"
nodes:
  - name: cp-1
    roles: [control-plane, worker]
    labels:
      node-role.kubernetes.io/worker: ''
";

#[test]
fn a_server_node_that_registers_late_is_labelled_once_it_exists() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, DeleteParams, PostParams};
    use relapse::backend::served::{Pace, ServedSim};
    use relapse::sim::engine::EngineConfig;

    let fake = Fake::new();
    let name = "relapse-late-node-r2d2c3po";
    let shape: ClusterShape = relapse::yaml::from_str(LATE_SERVER).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // k3d returned once the server logged "k3s is up and running", which k3s logs before its
    // kubelet registers the Node: the cluster answers, but cp-1 is not there yet.
    let (sim, client, registered) = rt.block_on(async {
        let sim = ServedSim::start(
            EngineConfig::new(shape.clone(), BTreeMap::new()).unwrap(),
            Pace::Fast,
        )
        .await
        .unwrap();
        let client = sim_client(&sim).await;
        let nodes: Api<Node> = Api::all(client.clone());
        let registered = nodes.get("cp-1").await.unwrap();
        nodes
            .delete("cp-1", &DeleteParams::default())
            .await
            .unwrap();
        deploy_coredns(&client).await;
        (sim, client, registered)
    });
    fake.reply(
        "kubeconfig-get",
        "template",
        &format!(
            "---\n{}",
            sim.kubeconfig_yaml()
                .unwrap()
                .replace("relapse-sim", "k3d-@NAME@")
        ),
    );
    let spec = spec(&shape, name);
    assert_eq!(spec.node_names(), ["cp-1"]);
    let cluster = K3dCluster::create(&fake.k3d(), &spec).unwrap();

    let registered_at = Arc::new(Mutex::new(None));
    let ready_at = rt.block_on(async {
        // The kubelet registers a moment later, with the labels it may set on itself.
        let nodes: Api<Node> = Api::all(client.clone());
        let at = registered_at.clone();
        let registering = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            let mut node = registered;
            node.metadata.resource_version = None;
            node.metadata.uid = None;
            node.metadata.creation_timestamp = None;
            node.metadata.managed_fields = None;
            if let Some(labels) = node.metadata.labels.as_mut() {
                labels.remove("node-role.kubernetes.io/worker");
            }
            nodes.create(&PostParams::default(), &node).await.unwrap();
            *at.lock().unwrap() = Some(Instant::now());
        });
        cluster.ready_client(Duration::from_secs(60)).await.unwrap();
        let ready_at = Instant::now();
        registering.await.unwrap();
        ready_at
    });
    let registered_at = registered_at.lock().unwrap().unwrap();
    assert!(ready_at > registered_at, "ready before the node registered");
    let labels = rt.block_on(async {
        Api::<Node>::all(client.clone())
            .get("cp-1")
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap_or_default()
    });
    // Set on the registered Node, so patched after it existed.
    assert_eq!(
        labels
            .get("node-role.kubernetes.io/worker")
            .map(String::as_str),
        Some(""),
        "{labels:?}"
    );
    cluster.delete().unwrap();
    assert_eq!(sim.failure(), None);
}

#[test]
fn images_are_imported_into_the_cluster() {
    let fake = Fake::new();
    let name = "relapse-images-y5z6a7b8";
    fake.serve_kubeconfig(name);
    let cluster = K3dCluster::create(&fake.k3d(), &spec(&ClusterShape::default(), name)).unwrap();
    cluster.import_images(&[]).unwrap();
    cluster
        .import_images(&strings(&[
            "quay.io/keycloak/keycloak:26.1.1",
            "busybox:1.36",
        ]))
        .unwrap();
    cluster.delete().unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 4, "no call for an empty list: {calls:?}");
    assert_eq!(
        calls[2],
        strings(&[
            "image",
            "import",
            "quay.io/keycloak/keycloak:26.1.1",
            "busybox:1.36",
            &format!("--cluster={name}"),
        ])
    );
}

#[test]
fn unreadable_kubeconfig_fails_create_and_deletes_the_cluster() {
    let fake = Fake::new();
    let name = "relapse-bad-kubeconfig-c9d0";
    fake.reply("kubeconfig-get", "stdout", "---\n");
    let err = K3dCluster::create(&fake.k3d(), &spec(&ClusterShape::default(), name)).unwrap_err();
    assert!(
        matches!(
            &err,
            K3dError::Unparsable {
                what: "kubeconfig",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        fake.calls().last().unwrap(),
        &strings(&["cluster", "delete", name])
    );
}

/// Owner token of a process that has exited: started, identity recorded, killed and reaped.
fn dead_owner_token() -> String {
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let owner = Owner::of_pid(child.id()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    owner.token()
}

fn gc_listing() -> (String, String) {
    let dead = dead_owner_token();
    let other = Owner {
        host: "another-runner".to_owned(),
        ..Owner::current()
    };
    let listing = include_str!("data/k3d/cluster-list-gc.json.template")
        .replace("@DEAD_OWNER@", &dead)
        .replace("@LIVE_OWNER@", &Owner::current().token())
        .replace("@OTHER_HOST_OWNER@", &other.token());
    (listing, dead)
}

#[test]
fn gc_deletes_clusters_of_dead_owners_and_keeps_the_rest() {
    let fake = Fake::new();
    let (listing, dead) = gc_listing();
    fake.reply("cluster-list", "stdout", &listing);

    let report = gc(&fake.k3d()).unwrap();

    let dead_pid = Owner::parse(&dead).unwrap().pid;
    assert_eq!(
        report.deleted,
        [(
            "relapse-leftover-aaaa1111".to_owned(),
            format!("process {dead_pid} has exited")
        )]
    );
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let kept: Vec<(&str, &KeepReason)> = report.kept.iter().map(|(n, r)| (n.as_str(), r)).collect();
    // In k3d's order: sorted by name (SortClusters, pkg/client/cluster.go).
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(kept[0].0, "relapse-elsewhere-dddd4444");
    assert!(matches!(kept[0].1, KeepReason::OtherHost(_)));
    assert_eq!(kept[1].0, "relapse-running-bbbb2222");
    assert_eq!(kept[1].1, &KeepReason::InUse(Owner::current()));
    assert_eq!(kept[2], ("relapse-unmarked-cccc3333", &KeepReason::NoOwner));

    assert_eq!(
        fake.calls(),
        [
            strings(&["cluster", "list", "-o", "json"]),
            strings(&["cluster", "delete", "relapse-leftover-aaaa1111"]),
        ]
    );
}

#[test]
fn gc_reports_a_failed_delete_and_goes_on() {
    let fake = Fake::new();
    let (listing, _) = gc_listing();
    fake.reply("cluster-list", "stdout", &listing);
    fake.reply("cluster-delete", "code", "1");
    fake.reply(
        "cluster-delete",
        "stderr",
        "FATA[0000] failed to delete cluster\n",
    );
    let report = gc(&fake.k3d()).unwrap();
    assert!(report.deleted.is_empty());
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "relapse-leftover-aaaa1111");
    assert!(matches!(
        report.failed[0].1,
        K3dError::CommandFailed { code: Some(1), .. }
    ));
    assert_eq!(report.kept.len(), 3);
}

#[test]
fn gc_fails_on_output_it_cannot_read() {
    let fake = Fake::new();
    fake.reply(
        "cluster-list",
        "stdout",
        "NAME   SERVERS   AGENTS   LOADBALANCER\n",
    );
    let err = gc(&fake.k3d()).unwrap_err();
    let K3dError::Unparsable {
        what,
        command,
        snippet,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*what, "cluster list");
    assert_eq!(command, "k3d cluster list -o json");
    assert!(snippet.starts_with("NAME   SERVERS"));
}

#[test]
fn a_missing_executable_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("k3d");
    let err = gc(&K3d::at(&missing)).unwrap_err();
    assert!(matches!(err, K3dError::Spawn { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "failed to start `k3d cluster list -o json`"
    );
}

/// `ci/check-k3d-trials.sh` on JUnit reports nextest wrote: exit code and what it printed.
fn check_k3d_trials(report: &str) -> (Option<i32>, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(root.join("ci/check-k3d-trials.sh"))
        .arg(root.join("tests/data/k3d/junit").join(report))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_nightly_fails_when_its_junit_report_shows_no_k3d_trial_that_ran() {
    for (report, code, summary) in [
        ("k3d-ran.xml", 0, "2 ran, 0 reported skipped"),
        (
            "k3d-ran-skipped-reported.xml",
            0,
            "1 ran, 2 reported skipped",
        ),
        ("k3d-none-ran.xml", 1, "0 ran, 0 reported skipped"),
        ("k3d-skipped-reported.xml", 1, "0 ran, 3 reported skipped"),
    ] {
        let (status, stdout) = check_k3d_trials(report);
        assert_eq!(status, Some(code), "{report}: {stdout}");
        assert!(stdout.contains(summary), "{report}: {stdout}");
        assert_eq!(
            stdout.contains("::error title=no k3d trial ran::"),
            code == 1,
            "{report}: {stdout}"
        );
    }
    let (status, stdout) = check_k3d_trials("missing.xml");
    assert_eq!(status, Some(1));
    assert!(stdout.contains("no JUnit report at"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Scenarios through the k3d provisioner: the fake creates nothing, and its `kubeconfig get`
// points at a simulated cluster served over HTTPS for the test, running at fast pace.
// ---------------------------------------------------------------------------------------------

/// A client for a served simulated cluster, as an administrator.
async fn sim_client(sim: &relapse::backend::served::ServedSim) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml().unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Deploys what k3s runs on its own and the driver waits for, which the simulator lacks:
/// CoreDNS as Deployment `kube-system/coredns` (k3s `manifests/coredns.yaml`, reduced to what
/// makes it Available). The simulator already has a default StorageClass.
async fn deploy_coredns(client: &kube::Client) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};

    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt("kube-system").await.unwrap().is_none() {
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "kube-system"}}))
            .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let coredns: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [{"name": "coredns", "image": "rancher/mirrored-coredns-coredns:1.12.1"}]
                }
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &coredns)
        .await
        .unwrap();
}

mod provisioner {
    use std::path::Path;
    use std::sync::Arc;

    use relapse::backend::k3d::{CreateOptions, K3dBackend, Owner};
    use relapse::backend::kubeconfig::NamespaceMap;
    use relapse::backend::served::{Pace, ServedSim};
    use relapse::run::outcome::{ScenarioOutcome, Verdict};
    use relapse::run::snapshot_file::UpdateMode;
    use relapse::run::{SnapshotSettings, run_scenario};
    use relapse::scenario::{Arch, LoadedScenario};

    use super::{Fake, strings};

    const TOKEN: &str = "k3dfake";

    fn load(id: &str) -> LoadedScenario {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        relapse::scenario::load(&root.join(format!("{id}.yaml")), &root).unwrap()
    }

    fn settings() -> SnapshotSettings {
        SnapshotSettings {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"),
            // Compare with the committed snapshot; never write.
            mode: UpdateMode::No,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn backend(fake: &Fake, sim: &ServedSim) -> K3dBackend {
        let options = CreateOptions {
            k3s_version: "v1.32.5-k3s1".to_owned(),
            host_arch: Some(Arch::Amd64),
        };
        K3dBackend::new(fake.k3d(), options)
            .unwrap()
            .with_run_token(TOKEN)
            .with_time(Arc::new(sim.clock()))
    }

    /// Serves a simulated cluster shaped like `loaded`'s, and makes the fake's `kubeconfig get`
    /// print a kubeconfig for it in k3d's form (context `k3d-<name>`).
    async fn serve(fake: &Fake, loaded: &LoadedScenario) -> ServedSim {
        let map = NamespaceMap::new(TOKEN, &loaded.scenario.name);
        let sim = ServedSim::for_scenario(&loaded.scenario, Pace::Fast, |images| {
            map.map_images(images)
        })
        .await
        .unwrap();
        super::deploy_coredns(&super::sim_client(&sim).await).await;
        let yaml = sim.kubeconfig_yaml().unwrap();
        assert!(!yaml.contains("@NAME@"));
        fake.reply(
            "kubeconfig-get",
            "template",
            &format!("---\n{}", yaml.replace("relapse-sim", "k3d-@NAME@")),
        );
        sim
    }

    fn details(outcome: &ScenarioOutcome) -> String {
        match &outcome.verdict {
            Verdict::Failed(f) => relapse::report::failure_details(outcome, f),
            other => format!("{other:?}"),
        }
    }

    /// The `cluster create` call's cluster name, after checking the call against `expected`
    /// (the arguments after the name, with `@OWNER@` for the owner token).
    fn created(call: &[String], expected: &[&str]) -> String {
        assert_eq!(call[..2], strings(&["cluster", "create"]), "{call:?}");
        let name = call[2].clone();
        let owner = Owner::current().token();
        let expected: Vec<String> = expected
            .iter()
            .map(|a| a.replace("@OWNER@", &owner))
            .collect();
        assert_eq!(call[3..], expected[..], "{call:?}");
        name
    }

    const SHARED_CREATE: &[&str] = &[
        "--image=rancher/k3s:v1.32.5-k3s1",
        "--servers=1",
        "--agents=0",
        "--no-lb",
        "--wait",
        "--timeout=180s",
        "--kubeconfig-update-default=false",
        "--kubeconfig-switch-context=false",
        "--runtime-label=relapse.owner=@OWNER@@all",
        "--env=RELAPSE_OWNER=@OWNER@@all",
        "--k3s-arg=--disable=traefik@server:*",
        "--k3s-arg=--disable=servicelb@server:*",
        "--k3s-arg=--node-name=node-1@server:0",
    ];

    #[test]
    fn a_named_scenario_passes_on_the_shared_cluster_which_is_deleted_afterwards() {
        let fake = Fake::new();
        let loaded = load("temporal/temporal-namespace-missing");
        let rt = runtime();
        let (outcome, failure) = rt.block_on(async {
            let sim = serve(&fake, &loaded).await;
            let backend = backend(&fake, &sim);
            assert!(backend.shares(&loaded.scenario.cluster).unwrap());
            let outcome = run_scenario(&backend, &loaded, &settings()).await;
            // The run and its counterfactual are over; the shared cluster is still there.
            assert!(
                !fake
                    .calls()
                    .iter()
                    .any(|c| c.starts_with(&strings(&["cluster", "delete"]))),
                "{:?}",
                fake.calls()
            );
            let sim_failure = sim.failure();
            tokio::task::spawn_blocking(move || drop(backend))
                .await
                .unwrap();
            (outcome, sim_failure)
        });
        assert_eq!(failure, None);
        assert_eq!(
            outcome.trial_name(),
            "k3d::temporal/temporal-namespace-missing"
        );
        assert!(
            matches!(outcome.verdict, Verdict::Passed),
            "{}",
            details(&outcome)
        );

        let calls = fake.calls();
        // The k3d version is checked once, before the first cluster.
        assert_eq!(calls[0], strings(&["version"]));
        let calls = &calls[1..];
        let name = created(&calls[0], SHARED_CREATE);
        assert!(name.starts_with("relapse-shared-"), "{name}");
        let mut images: Vec<String> = loaded.scenario.images.keys().cloned().collect();
        images.sort();
        let mut import = strings(&["image", "import"]);
        import.extend(images);
        import.push(format!("--cluster={name}"));
        assert_eq!(
            calls[1..],
            [
                strings(&["kubeconfig", "get", &name]),
                // Once for the run, once for the counterfactual, on the same cluster.
                import.clone(),
                import,
                strings(&["cluster", "delete", &name]),
            ],
        );
        assert!(!relapse::backend::k3d::live_clusters().contains(&name));
    }

    #[test]
    fn a_failing_run_on_a_cluster_of_its_own_still_deletes_it() {
        let fake = Fake::new();
        let mut loaded = load("temporal/temporal-namespace-missing");
        // Nodes of its own: a fresh cluster. No fix: converge fails.
        loaded.scenario.cluster = relapse::yaml::from_str(
            "nodes:\n  - {name: cp-1, roles: [control-plane]}\n  - {name: worker-1, roles: [worker]}\n",
        )
        .unwrap();
        loaded.scenario.fix.clear();
        let rt = runtime();
        let (outcome, calls_before_drop) = rt.block_on(async {
            let sim = serve(&fake, &loaded).await;
            let backend = backend(&fake, &sim);
            assert!(!backend.shares(&loaded.scenario.cluster).unwrap());
            let outcome = run_scenario(&backend, &loaded, &settings()).await;
            let mut calls = fake.calls();
            assert_eq!(calls.remove(0), strings(&["version"]));
            tokio::task::spawn_blocking(move || drop(backend))
                .await
                .unwrap();
            (outcome, calls)
        });
        let Verdict::Failed(failure) = &outcome.verdict else {
            panic!("expected a converge failure: {}", details(&outcome));
        };
        assert_eq!(failure.phase, relapse::run::outcome::Phase::Converge);

        let name = created(
            &calls_before_drop[0],
            &[
                "--image=rancher/k3s:v1.32.5-k3s1",
                "--servers=1",
                "--agents=1",
                "--no-lb",
                "--wait",
                "--timeout=180s",
                "--kubeconfig-update-default=false",
                "--kubeconfig-switch-context=false",
                "--runtime-label=relapse.owner=@OWNER@@all",
                "--env=RELAPSE_OWNER=@OWNER@@all",
                "--k3s-arg=--disable=traefik@server:*",
                "--k3s-arg=--disable=servicelb@server:*",
                "--k3s-arg=--node-name=cp-1@server:0",
                "--k3s-arg=--node-taint=node-role.kubernetes.io/control-plane:NoSchedule@server:0",
                "--k3s-arg=--node-name=worker-1@agent:0",
            ],
        );
        assert!(name.starts_with("relapse-temporal-namesp-"), "{name}");
        assert_eq!(calls_before_drop[1], strings(&["kubeconfig", "get", &name]));
        assert_eq!(calls_before_drop[2][..2], strings(&["image", "import"]));
        // Deleted when the failed run was dropped, before the backend went.
        assert_eq!(
            calls_before_drop[3..],
            [strings(&["cluster", "delete", &name])]
        );
        assert_eq!(fake.calls()[1..], calls_before_drop);
        assert!(!relapse::backend::k3d::live_clusters().contains(&name));
    }

    #[test]
    fn scenarios_k3d_cannot_reproduce_are_ignored_without_creating_anything() {
        let fake = Fake::new();
        let rt = runtime();
        for (id, reason) in [
            (
                "workloads/arm64-image-on-amd64",
                "the k3d cluster cannot reproduce this scenario: storage class gp2 is attachable",
            ),
            (
                "postgres/role-never-created",
                "the k3d cluster cannot reproduce this scenario: the scenario's programs log in to the Postgres server",
            ),
        ] {
            let loaded = load(id);
            let backend = K3dBackend::new(
                fake.k3d(),
                CreateOptions {
                    k3s_version: "v1.32.5-k3s1".to_owned(),
                    host_arch: Some(Arch::Amd64),
                },
            )
            .unwrap();
            let outcome = rt.block_on(run_scenario(&backend, &loaded, &settings()));
            let Verdict::Ignored(why) = &outcome.verdict else {
                panic!("{id}: {}", details(&outcome));
            };
            assert!(why.starts_with(reason), "{id}: {why}");
            assert_eq!(outcome.backend, relapse::backend::BackendKind::K3d);
        }
        assert_eq!(fake.calls(), Vec::<Vec<String>>::new());
    }

    #[test]
    fn an_old_k3d_is_refused_with_the_version_it_reported() {
        let fake = Fake::new();
        // `k3d version` of k3d v4.4.8 (cmd/root.go printVersion, same two lines as v5).
        fake.reply(
            "version",
            "stdout",
            "k3d version v4.4.8\nk3s version latest (default)\n",
        );
        let loaded = load("temporal/temporal-namespace-missing");
        let backend = K3dBackend::new(
            fake.k3d(),
            CreateOptions {
                k3s_version: "v1.32.5-k3s1".to_owned(),
                host_arch: Some(Arch::Amd64),
            },
        )
        .unwrap();
        let outcome = runtime().block_on(run_scenario(&backend, &loaded, &settings()));
        let Verdict::Failed(failure) = &outcome.verdict else {
            panic!("{}", details(&outcome));
        };
        assert_eq!(failure.phase, relapse::run::outcome::Phase::Setup);
        let text = details(&outcome);
        assert!(
            text.contains(&format!(
                "`{}` is k3d v4.4.8, but the k3d backend needs k3d v5 (tested with v5.8.3)",
                fake.program.display()
            )),
            "{text}"
        );
        // Nothing was created.
        assert_eq!(fake.calls(), [strings(&["version"])]);
    }

    #[test]
    fn a_cluster_whose_api_never_answers_fails_setup_and_is_deleted() {
        let fake = Fake::new();
        let loaded = load("temporal/temporal-namespace-missing");
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        fake.reply(
            "kubeconfig-get",
            "template",
            &super::KUBECONFIG
                .replace(super::RECORDED_NAME, "@NAME@")
                .replace(
                    "https://0.0.0.0:38517",
                    &format!("https://127.0.0.1:{port}"),
                ),
        );
        let backend = K3dBackend::new(
            fake.k3d(),
            CreateOptions {
                k3s_version: "v1.32.5-k3s1".to_owned(),
                host_arch: Some(Arch::Amd64),
            },
        )
        .unwrap()
        .with_ready_timeout(std::time::Duration::from_millis(600));
        let rt = runtime();
        let outcome = rt.block_on(run_scenario(&backend, &loaded, &settings()));
        let Verdict::Failed(failure) = &outcome.verdict else {
            panic!("{}", details(&outcome));
        };
        assert_eq!(failure.phase, relapse::run::outcome::Phase::Setup);
        assert_eq!(outcome.backend, relapse::backend::BackendKind::K3d);
        let text = details(&outcome);
        assert!(
            text.contains("failed to create a k3d cluster")
                && text.contains("the cluster was not ready within 0.6s: still waiting for the API server to serve ServiceAccount default/default"),
            "{text}"
        );
        let calls = fake.calls();
        assert_eq!(calls[0], strings(&["version"]));
        let calls = &calls[1..];
        let name = calls[0][2].clone();
        assert_eq!(
            calls[1..],
            [
                strings(&["kubeconfig", "get", &name]),
                strings(&["cluster", "delete", &name]),
            ]
        );
        drop(backend);
        assert_eq!(fake.calls().len(), 4, "nothing left to delete on drop");
    }
}
