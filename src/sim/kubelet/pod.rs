//! One pod's state machine on the node: the kubelet's `syncPod` and the runtime manager's
//! `computePodActions`/`SyncPod` (pkg/kubelet/kubelet.go, pkg/kubelet/kuberuntime/
//! kuberuntime_manager.go), reduced to their decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::KubeletConfig;
use super::backoff::Backoff;
use super::env::{VolumeProblem, check_volumes, resolve_env};
use super::gofmt::go_duration;
use super::image::{self, FAILED_PULL, ImageRef, PullOutcome, PullPolicy, hex_digest};
use super::probe::{ProbeKind, ProbeSpec, ProbeState};
use super::state::{Attempt, ContainerState, Input, Lifecycle, Pull, Run, WaitingReason};
use super::status;
use super::worker;
use crate::scenario::{ExitAfter, ImageBehaviour};
use crate::sim::behaviour::time::{after, earliest, since};
use crate::sim::behaviour::{
    ClusterViewExt, ContainerContext, PostgresOutcome, PostgresRequest, Program,
};
use crate::sim::events::{Event, EventType, Involved, Reporter};

/// How long after a container exits the kubelet notices and acts (PLEG relist period, 1 s;
/// pkg/kubelet/kubelet.go `plegRelistPeriod`).
pub(super) const PLEG_RELIST: Duration = Duration::from_secs(1);
/// How often a pod waiting for a volume to be attached looks again (a simulator interval; the
/// kubelet polls every 300 ms).
const ATTACH_RECHECK: Duration = Duration::from_secs(2);
/// First and longest wait between retries of a failed mount
/// (pkg/util/goroutinemap/exponentialbackoff: 500 ms doubling to 2m2s).
const MOUNT_RETRY_INITIAL: Duration = Duration::from_millis(500);
const MOUNT_RETRY_MAX: Duration = Duration::from_secs(122);

/// A line a container wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLog {
    /// Container name.
    pub container: String,
    /// Which run of the container (its restart count when it started): `kubectl logs
    /// --previous` shows the run before the current one.
    pub attempt: u32,
    /// When it was written.
    pub at: Timestamp,
    /// The line.
    pub text: String,
}

/// A Postgres check a container's program waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPostgres {
    /// Container name.
    pub container: String,
    /// What to check.
    pub request: PostgresRequest,
}

/// What one [`super::Kubelet::sync_pod`] produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSync {
    /// The pod's new `status`.
    pub status: Value,
    /// Events to record, in order.
    pub events: Vec<Event>,
    /// Lines the containers wrote, in order.
    pub logs: Vec<ContainerLog>,
    /// Postgres checks to carry out (then call `postgres_result` and sync again).
    pub postgres: Vec<PendingPostgres>,
    /// Objects the containers' operator programs want to exist.
    pub owned_objects: Vec<Value>,
    /// When to sync the pod again, if nothing else changes.
    pub wake_at: Option<Timestamp>,
    /// The pod is being deleted and all its containers have stopped: it can be removed.
    pub finished: bool,
}

pub(super) struct NodeContext<'a> {
    pub config: &'a KubeletConfig,
    pub images: &'a mut BTreeSet<String>,
    pub behaviours: &'a BTreeMap<String, ImageBehaviour>,
    pub view: &'a dyn ClusterViewExt,
}

impl NodeContext<'_> {
    fn behaviour(&self, image: &str) -> Option<&ImageBehaviour> {
        self.behaviours.get(image).or_else(|| {
            let n = ImageRef::parse(image).normalized();
            self.behaviours
                .iter()
                .find(|(k, _)| ImageRef::parse(k).normalized() == n)
                .map(|(_, b)| b)
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct Ctr {
    pub name: String,
    pub init: bool,
    pub sidecar: bool,
    pub spec: Value,
    pub lifecycle: Lifecycle,
}

impl Ctr {
    pub fn running(&self) -> Option<&Run> {
        self.lifecycle.running()
    }

    /// Feeds the state machine an input the caller knows to be legal; a refusal is a bug
    /// (debug builds stop on it, release builds keep the state).
    fn step(&mut self, input: Input) {
        let result = self.lifecycle.transition(input);
        debug_assert!(result.is_ok(), "container {}: {result:?}", self.name);
    }

    /// `ready` in the container status.
    pub fn ready(&self) -> bool {
        if self.init && !self.sidecar {
            return self.lifecycle.exited().is_some_and(|t| t.exit_code == 0);
        }
        self.running().is_some_and(Run::ready)
    }

    pub fn image(&self) -> String {
        self.spec
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// `kubecontainer.ShouldContainerBeRestarted` for an exited container.
pub(super) fn should_restart(ctr: &Ctr, policy: &str) -> bool {
    if ctr.running().is_some() {
        return false;
    }
    match ctr.lifecycle.exited() {
        None => true,
        Some(t) => {
            if ctr.sidecar {
                return true;
            }
            match policy {
                "Never" => false,
                "OnFailure" => t.exit_code != 0,
                _ => true,
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct PodRuntime {
    pub ip: String,
    pub start_time: Timestamp,
    volumes_ready: bool,
    mount_retry: BTreeMap<String, (Timestamp, Duration)>,
    attach_recheck: Option<Timestamp>,
    pub sandbox: bool,
    pub had_sandbox: bool,
    pub terminating: bool,
    pub containers: Vec<Ctr>,
    crash: Backoff,
    pulls: Backoff,
    /// The last failed pull's `<reason>: <message>` by back-off key, which the image manager
    /// appends to the back-off message (pkg/kubelet/images/image_manager.go, prevPullErrMsg).
    prev_pull_err: BTreeMap<String, String>,
    /// When the pod worker syncs the pod again on its own (its work queue entry).
    requeue_at: Option<Timestamp>,
    /// The last pod worker sync; `None` before the first.
    last_worker_sync: Option<Timestamp>,
    /// A worker sync is waiting for the volumes (`WaitForAttachAndMount` blocks inside it).
    sync_pending: bool,
    /// The sync under way failed (its requeue is the short one).
    sync_error: bool,
    /// Seeds the jitter of the requeues: the pod's uid and name.
    seed: String,
    /// Jitter draws so far.
    draws: u64,
    finished: bool,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    crate::sim::controllers::meta::pointer(v, ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `format.Pod`: `<name>_<namespace>(<uid>)` (pkg/kubelet/util/format/pod.go).
fn format_pod(pod: &Value) -> String {
    format!(
        "{}_{}({})",
        str_at(pod, "/metadata/name"),
        str_at(pod, "/metadata/namespace"),
        str_at(pod, "/metadata/uid")
    )
}

struct Out<'p> {
    pod: &'p Value,
    host: String,
    sync: PodSync,
}

impl Out<'_> {
    fn event(
        &mut self,
        at: Timestamp,
        kind: EventType,
        reason: &str,
        message: String,
        ctr: Option<(&str, bool)>,
    ) {
        let involved = match ctr {
            Some((name, init)) => Involved::container(self.pod, name, init),
            None => Involved::pod(self.pod),
        };
        let reporter = Reporter::on_host("kubelet", self.host.clone());
        self.sync
            .events
            .push(Event::new(kind, reason, message, involved, reporter).at(at));
    }
}

impl PodRuntime {
    pub fn new(pod: &Value, ip: String, now: Timestamp) -> Self {
        let has_init = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let mut containers = Vec::new();
        for (list, init) in [("/spec/initContainers", true), ("/spec/containers", false)] {
            for spec in pod
                .pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                containers.push(Ctr {
                    name: str_at(spec, "/name").to_owned(),
                    init,
                    sidecar: init && str_at(spec, "/restartPolicy") == "Always",
                    spec: spec.clone(),
                    lifecycle: Lifecycle::new(has_init),
                });
            }
        }
        Self {
            ip,
            start_time: now,
            volumes_ready: false,
            mount_retry: BTreeMap::new(),
            attach_recheck: None,
            sandbox: false,
            had_sandbox: false,
            terminating: false,
            containers,
            crash: Backoff::default(),
            pulls: Backoff::default(),
            prev_pull_err: BTreeMap::new(),
            requeue_at: None,
            last_worker_sync: None,
            sync_pending: false,
            sync_error: false,
            seed: format!(
                "{}/{}",
                str_at(pod, "/metadata/uid"),
                str_at(pod, "/metadata/name")
            ),
            draws: 0,
            finished: false,
        }
    }

    pub fn postgres_result(&mut self, container: &str, outcome: &PostgresOutcome) {
        for c in &mut self.containers {
            if c.name == container
                && let Some(run) = c.lifecycle.running_mut()
            {
                run.program.postgres_result(outcome);
            }
        }
    }

    pub fn sync(&mut self, pod: &Value, ctx: &mut NodeContext<'_>, now: Timestamp) -> PodSync {
        let mut out = Out {
            pod,
            host: ctx.config.node_name.clone(),
            sync: PodSync::default(),
        };
        let policy = match str_at(pod, "/spec/restartPolicy") {
            "" => "Always",
            p => p,
        }
        .to_owned();
        self.advance_containers(pod, ctx, now, &policy, &mut out);

        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
        let api_terminal = matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed");
        self.terminating = deleting;
        if deleting {
            self.terminate_all(now, &mut out, None, true);
            self.finished = true;
            self.sandbox = false;
        } else if !api_terminal && !self.finished {
            self.act(pod, ctx, &policy, now, &mut out);
        }

        let phase = status::phase(
            self,
            &policy,
            deleting || self.finished,
            api_terminal.then(|| str_at(pod, "/status/phase")),
        );
        if !deleting && matches!(phase, "Succeeded" | "Failed") {
            // A pod that reached a terminal phase stops its remaining (sidecar) containers and
            // its sandbox.
            self.terminate_all(now, &mut out, None, false);
            self.sandbox = false;
        }
        out.sync.status = status::build(self, pod, phase, &ctx.config.host_ip, &self.ip, now);
        out.sync.finished = deleting && self.containers.iter().all(|c| c.running().is_none());
        if !deleting {
            for c in &self.containers {
                if let Some(r) = c.running() {
                    out.sync
                        .owned_objects
                        .extend(r.program.desired_objects(ctx.view));
                }
            }
        }
        out.sync.wake_at = if deleting { None } else { self.wake_at(now) };
        out.sync.logs.sort_by_key(|l| l.at);
        out.sync
    }

    fn wake_at(&self, now: Timestamp) -> Option<Timestamp> {
        let mut w = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t.filter(|t| *t > now) {
                w = earliest(w, Some(t));
            }
        };
        consider(self.requeue_at);
        consider(self.attach_recheck);
        for (t, _) in self.mount_retry.values() {
            consider(Some(*t));
        }
        for c in &self.containers {
            match c.lifecycle.state() {
                ContainerState::Waiting { attempt, .. } => match attempt {
                    Attempt::Idle => {}
                    Attempt::Pulling(p) => consider(Some(p.done_at)),
                    Attempt::BackOff { until } => consider(Some(*until)),
                },
                ContainerState::Running { run, .. } => {
                    consider(run.wake);
                    consider(run.kill.map(|k| k.at));
                    for p in &run.probes {
                        consider(Some(p.next_at));
                    }
                }
                ContainerState::Terminated {
                    noticed_at, pull, ..
                } => {
                    consider(Some(*noticed_at));
                    consider(pull.as_ref().map(|p| p.done_at));
                }
            }
        }
        w
    }

    /// Runs the programs and their probes up to `now`, noting exits.
    fn advance_containers(
        &mut self,
        pod: &Value,
        ctx: &NodeContext<'_>,
        now: Timestamp,
        policy: &str,
        out: &mut Out<'_>,
    ) {
        let ip = self.ip.clone();
        for c in &mut self.containers {
            let Some(started) = c.running().map(|r| r.started_at) else {
                continue;
            };
            let kill = kill_at(pod, ctx, c, started);
            let Some(run) = c.lifecycle.running_mut() else {
                continue;
            };
            run.kill = kill;
            let fault = run.kill.filter(|k| k.at <= now);
            let mut killed: Option<(Timestamp, String)> = None;
            // Probes run in time order; each sees the program as it is at that instant. None
            // runs once a fault has killed the process.
            while let Some(i) = run
                .probes
                .iter()
                .enumerate()
                .filter(|(_, p)| p.next_at <= now && fault.is_none_or(|k| p.next_at < k.at))
                .min_by_key(|(_, p)| (p.next_at, p.spec.kind))
                .map(|(i, _)| i)
            {
                let at = run.probes[i].next_at;
                advance_run(run, at, ctx.view, &c.name, out);
                if run.program.exit().is_some() {
                    break;
                }
                let kind = run.probes[i].spec.kind;
                let applies = match kind {
                    ProbeKind::Startup => !run.started,
                    _ => run.started,
                };
                if !applies {
                    let period = run.probes[i].spec.period;
                    run.probes[i].next_at = after(at, period);
                    continue;
                }
                let failure = run.probes[i].spec.run(&run.program, &ip, at);
                if let Some(output) = &failure {
                    // pkg/kubelet/prober/prober.go: `%s probe failed: %s`.
                    out.event(
                        at,
                        EventType::Warning,
                        "Unhealthy",
                        format!("{} probe failed: {output}", kind.title()),
                        Some((&c.name, c.init)),
                    );
                }
                let flipped = run.probes[i].record(failure.is_some());
                if kind == ProbeKind::Startup && failure.is_none() {
                    run.started = true;
                    // The status update that reports the start triggers the readiness probe
                    // (pkg/kubelet/prober/prober_manager.go `UpdatePodStatus`).
                    for p in &mut run.probes {
                        if p.spec.kind == ProbeKind::Readiness
                            && p.next_at > at
                            && p.spec.initial_delay <= since(at, run.started_at)
                        {
                            p.next_at = at;
                        }
                    }
                }
                if flipped && kind != ProbeKind::Readiness {
                    // pkg/kubelet/kuberuntime/kuberuntime_manager.go computePodActions:
                    // `Container %s failed liveness probe`, with `, will be restarted` only
                    // when shouldRestartOnFailure (the pod's restartPolicy is not Never).
                    let what = if kind == ProbeKind::Liveness {
                        "liveness"
                    } else {
                        "startup"
                    };
                    let restarts = if policy == "Never" {
                        ""
                    } else {
                        ", will be restarted"
                    };
                    killed = Some((
                        at,
                        format!("Container {} failed {what} probe{restarts}", c.name),
                    ));
                    break;
                }
            }
            let was_killed = killed.is_some();
            if let Some((at, message)) = killed {
                out.event(
                    at,
                    EventType::Normal,
                    "Killing",
                    message,
                    Some((&c.name, c.init)),
                );
                run.program.terminate(at);
            } else if let Some(kill) = fault {
                advance_run(run, kill.at, ctx.view, &c.name, out);
                if run.program.exit().is_none() {
                    c.step(Input::Killed {
                        at: kill.at,
                        oom: kill.oom,
                        notice_after: PLEG_RELIST,
                    });
                    continue;
                }
            } else {
                advance_run(run, now, ctx.view, &c.name, out);
            }
            if run.program.exit().is_some() {
                // A container killed by the kubelet is restarted in the same sync; one that
                // exited by itself is noticed at the next relist.
                let notice_after = if was_killed {
                    Duration::ZERO
                } else {
                    PLEG_RELIST
                };
                c.step(Input::Exited { notice_after });
            }
        }
    }

    /// Stops every running container (`Stopping container <name>`, killContainer with no
    /// message; pkg/kubelet/kuberuntime/kuberuntime_container.go) and drops pulls and
    /// back-offs under way.
    fn terminate_all(
        &mut self,
        now: Timestamp,
        out: &mut Out<'_>,
        only_sidecars: Option<bool>,
        pod_deleted: bool,
    ) {
        for c in &mut self.containers {
            if only_sidecars.is_some_and(|s| s != c.sidecar) {
                continue;
            }
            if c.running().is_some() {
                out.event(
                    now,
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", c.name),
                    Some((&c.name, c.init)),
                );
            }
            c.step(Input::Stopped {
                at: now,
                pod_deleted,
            });
        }
    }

    fn act(
        &mut self,
        pod: &Value,
        ctx: &mut NodeContext<'_>,
        policy: &str,
        now: Timestamp,
        out: &mut Out<'_>,
    ) {
        // A sync of the pod worker, as opposed to a look at the simulator's own timers (probes,
        // programs, pulls): the first one, the one the worker requeued, or one the PLEG relist
        // triggers by reporting a container exit.
        let last = self.last_worker_sync;
        let worker_sync = self.sync_pending
            || last.is_none()
            || self.requeue_at.is_some_and(|t| t <= now)
            || self
                .containers
                .iter()
                .any(|c| c.lifecycle.noticed_between(last, now));
        if !self.volumes_ready && !self.mount_volumes(pod, ctx, now, out) {
            // SyncPod waits for the volumes (WaitForAttachAndMount) inside the sync.
            self.sync_pending |= worker_sync;
            return;
        }
        self.sandbox = true;
        self.had_sandbox = true;
        if worker_sync {
            self.sync_pending = false;
            self.last_worker_sync = Some(now);
            self.requeue_at = None;
            // SyncPod fetches the pull secrets at every sync, whether or not anything is
            // pulled (pkg/kubelet/kubelet.go `SyncPod` → kubelet_pods.go `getPullSecretsForPod`).
            let (_, missing) = pull_secrets(pod, ctx.view);
            if !missing.is_empty() {
                // pkg/kubelet/kubelet_pods.go getPullSecretsForPod.
                out.event(
                    now,
                    EventType::Warning,
                    "FailedToRetrieveImagePullSecret",
                    format!(
                        "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                        missing.join(", ")
                    ),
                    None,
                );
            }
        }
        let failed_before = self.sync_error;

        // Finish pulls that are done; a failed pull is retried at a later sync, not this one.
        let mut pulled = Vec::new();
        for i in 0..self.containers.len() {
            let done = self.containers[i]
                .lifecycle
                .pull()
                .is_some_and(|p| p.done_at <= now);
            if done {
                self.finish_pull(i, pod, ctx, out);
                pulled.push(i);
            }
        }

        for i in self.to_start(policy, now) {
            let c = &self.containers[i];
            // A container whose last (re)start failed or is backing off is tried again only
            // when the worker syncs the pod: the back-offs are checked, not waited on.
            if pulled.contains(&i)
                || c.lifecycle.pull().is_some()
                || c.lifecycle.unnoticed(now)
                || (!worker_sync && c.lifecycle.held_back())
            {
                continue;
            }
            self.start(i, pod, ctx, now, out);
        }

        // The sync ends once its pulls are done (they run inside it); the worker then requeues
        // the pod.
        let ended = worker_sync || !pulled.is_empty() || self.sync_error != failed_before;
        let pulling = self.containers.iter().any(|c| c.lifecycle.pull().is_some());
        if ended && !pulling {
            let base = if self.sync_error {
                worker::BACKOFF_PERIOD
            } else {
                worker::RESYNC_INTERVAL
            };
            self.requeue_at = Some(after(now, worker::jitter(base, &self.seed, self.draws)));
            self.draws += 1;
            self.sync_error = false;
        }
    }

    /// Volumes: true when all are set up. Failed set-ups are retried with the volume
    /// manager's exponential back-off, each failure a `FailedMount` event.
    fn mount_volumes(
        &mut self,
        pod: &Value,
        ctx: &NodeContext<'_>,
        now: Timestamp,
        out: &mut Out<'_>,
    ) -> bool {
        let problems = check_volumes(pod, ctx.view, &ctx.config.node_name);
        self.attach_recheck = None;
        if problems.is_empty() {
            self.volumes_ready = true;
            self.mount_retry.clear();
            return true;
        }
        for (name, problem) in problems {
            match problem {
                VolumeProblem::SetUpFailed(message) => {
                    let due = self.mount_retry.get(&name).is_none_or(|(t, _)| *t <= now);
                    if due {
                        let delay = self
                            .mount_retry
                            .get(&name)
                            .map_or(MOUNT_RETRY_INITIAL, |(_, d)| (*d * 2).min(MOUNT_RETRY_MAX));
                        out.event(now, EventType::Warning, "FailedMount", message, None);
                        self.mount_retry.insert(name, (after(now, delay), delay));
                    }
                }
                VolumeProblem::NotAttached => {
                    self.attach_recheck = Some(after(now, ATTACH_RECHECK));
                }
            }
        }
        false
    }

    /// Indices of containers to (re)start now, in order (computePodActions with sidecar
    /// containers enabled, their default since v1.29).
    fn to_start(&self, policy: &str, now: Timestamp) -> Vec<usize> {
        let mut out = Vec::new();
        let initialized_before = self
            .containers
            .iter()
            .any(|c| !c.init && c.lifecycle.created());
        let mut initialized = true;
        for (i, c) in self.containers.iter().enumerate().filter(|(_, c)| c.init) {
            if c.sidecar {
                match c.running() {
                    Some(r) if r.started => continue,
                    Some(_) => {
                        initialized = initialized_before;
                        break;
                    }
                    None => {
                        out.push(i);
                        if !initialized_before {
                            initialized = false;
                            break;
                        }
                    }
                }
                continue;
            }
            if initialized_before {
                continue;
            }
            // An exit the kubelet has not noticed yet (next relist) still counts as running.
            if c.running().is_some() || c.lifecycle.unnoticed(now) {
                initialized = false;
                break;
            }
            match c.lifecycle.exited() {
                Some(t) if t.exit_code == 0 => {}
                Some(_) => {
                    if policy != "Never" {
                        out.push(i);
                    }
                    initialized = false;
                    break;
                }
                None => {
                    out.push(i);
                    initialized = false;
                    break;
                }
            }
        }
        if !initialized {
            return out;
        }
        let regular: Vec<usize> = (0..self.containers.len())
            .filter(|i| !self.containers[*i].init)
            .collect();
        let keep = regular.iter().any(|i| {
            let c = &self.containers[*i];
            c.running().is_some() || should_restart(c, policy)
        });
        if !keep {
            // Nothing will run again: the pod is done and its sidecars are not restarted.
            return Vec::new();
        }
        out.extend(
            regular
                .into_iter()
                .filter(|i| should_restart(&self.containers[*i], policy)),
        );
        out
    }

    fn start(
        &mut self,
        i: usize,
        pod: &Value,
        ctx: &mut NodeContext<'_>,
        now: Timestamp,
        out: &mut Out<'_>,
    ) {
        // doBackOff (kuberuntime_manager.go): keyed by pod and container, measured from the
        // last exit.
        let key = format!(
            "{}_{}_{}_{}",
            str_at(pod, "/metadata/name"),
            str_at(pod, "/metadata/namespace"),
            str_at(pod, "/metadata/uid"),
            self.containers[i].name
        );
        let last_exit = self.containers[i].lifecycle.exited().map(|t| t.finished_at);
        if let Some(finished_at) = last_exit {
            if self.crash.in_backoff_since(&key, finished_at, now) {
                let c = &self.containers[i];
                let fp = format_pod(pod);
                // kuberuntime_manager.go doBackOff: the event and the waiting message.
                out.event(
                    now,
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {fp}",
                        c.name
                    ),
                    Some((&c.name, c.init)),
                );
                let message = format!(
                    "back-off {} restarting failed container={} pod={fp}",
                    go_duration(self.crash.get(&key)),
                    c.name
                );
                // The sync fails; the restart waits for the first worker sync after the
                // back-off ends, not for the back-off's own end.
                self.containers[i].step(Input::BackedOff {
                    message,
                    until: None,
                });
                self.sync_error = true;
                return;
            }
            self.crash.next(&key, finished_at, now);
        }
        self.ensure_image(i, pod, ctx, now, out);
    }

    /// EnsureImageExists (pkg/kubelet/images/image_manager.go).
    fn ensure_image(
        &mut self,
        i: usize,
        pod: &Value,
        ctx: &mut NodeContext<'_>,
        now: Timestamp,
        out: &mut Out<'_>,
    ) {
        let written = self.containers[i].image();
        let image = ImageRef::parse(&written);
        let policy = PullPolicy::of(
            self.containers[i]
                .spec
                .get("imagePullPolicy")
                .and_then(Value::as_str),
            &image,
        );
        let present = ctx.images.contains(&image.normalized());
        let c = &self.containers[i];
        if policy != PullPolicy::Always && present {
            // pkg/kubelet/images/image_manager.go EnsureImageExists.
            out.event(
                now,
                EventType::Normal,
                "Pulled",
                format!("Container image \"{written}\" already present on machine"),
                Some((&c.name, c.init)),
            );
            self.create(i, pod, ctx, image, now, out);
            return;
        }
        if policy == PullPolicy::Never {
            let message =
                format!("Container image \"{written}\" is not present with pull policy of Never");
            out.event(
                now,
                EventType::Warning,
                "ErrImageNeverPull",
                message.clone(),
                Some((&c.name, c.init)),
            );
            out.event(
                now,
                EventType::Warning,
                "Failed",
                "Error: ErrImageNeverPull".to_owned(),
                Some((&c.name, c.init)),
            );
            self.containers[i].step(Input::Failed {
                reason: WaitingReason::ErrImageNeverPull,
                message,
            });
            self.sync_error = true;
            return;
        }
        let key = format!("{}_{written}", str_at(pod, "/metadata/uid"));
        if self.pulls.in_backoff_since_update(&key, now) {
            let event = format!("Back-off pulling image \"{written}\"");
            out.event(
                now,
                EventType::Normal,
                "BackOff",
                event.clone(),
                Some((&c.name, c.init)),
            );
            // From 1.32 the waiting message carries the last pull error; the event never does.
            let message = crate::sim::versions::image_pull_backoff_message(
                ctx.config.versions,
                &event,
                self.prev_pull_err.get(&key).map(String::as_str),
            );
            // kuberuntime_container.go startContainer: `Error: %v` with the ErrImagePullBackOff reason.
            out.event(
                now,
                EventType::Warning,
                "Failed",
                "Error: ImagePullBackOff".to_owned(),
                Some((&c.name, c.init)),
            );
            self.containers[i].step(Input::Failed {
                reason: WaitingReason::ImagePullBackOff,
                message,
            });
            self.sync_error = true;
            return;
        }
        // "Ensure that the map cannot grow indefinitely" before a new pull.
        self.prev_pull_err.remove(&key);
        // Missing secrets were reported at the start of the sync.
        let (has_credentials, _) = pull_secrets(pod, ctx.view);
        let c = &self.containers[i];
        out.event(
            now,
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{written}\""),
            Some((&c.name, c.init)),
        );
        let outcome = if ctx.view.faults().registry_down(&image.domain, now) {
            image::unreachable(&image, ctx.config.versions.containerd)
        } else {
            image::pull(
                &image,
                ctx.behaviour(&written),
                ctx.config.arch,
                has_credentials,
                ctx.config.versions.containerd,
            )
        };
        let duration = match &outcome {
            PullOutcome::Pulled { .. } if present => FAILED_PULL,
            PullOutcome::Pulled { size } => image::pull_duration(*size),
            PullOutcome::Failed(_) => FAILED_PULL,
        };
        self.containers[i].step(Input::Pulling(Pull {
            done_at: after(now, duration),
            outcome,
            image,
            duration,
        }));
    }

    fn finish_pull(&mut self, i: usize, pod: &Value, ctx: &mut NodeContext<'_>, out: &mut Out<'_>) {
        // The pull ends with the start or the failure that follows.
        let Some(p) = self.containers[i].lifecycle.pull().cloned() else {
            return;
        };
        let written = self.containers[i].image();
        let c = &self.containers[i];
        match p.outcome {
            PullOutcome::Pulled { size } => {
                // pkg/kubelet/images/image_manager.go EnsureImageExists (1.32 wording).
                let d = go_duration(p.duration);
                out.event(
                    p.done_at,
                    EventType::Normal,
                    "Pulled",
                    format!("Successfully pulled image \"{written}\" in {d} ({d} including waiting). Image size: {size} bytes."),
                    Some((&c.name, c.init)),
                );
                ctx.images.insert(p.image.normalized());
                self.create(i, pod, ctx, p.image, p.done_at, out);
            }
            PullOutcome::Failed(err) => {
                // pkg/kubelet/images/image_manager.go EnsureImageExists (`Failed to pull image
                // %q: %v`), then kuberuntime_container.go startContainer's `Error: %v`.
                out.event(
                    p.done_at,
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image \"{written}\": {err}"),
                    Some((&c.name, c.init)),
                );
                out.event(
                    p.done_at,
                    EventType::Warning,
                    "Failed",
                    "Error: ErrImagePull".to_owned(),
                    Some((&c.name, c.init)),
                );
                let key = format!("{}_{written}", str_at(pod, "/metadata/uid"));
                self.pulls.next(&key, p.done_at, p.done_at);
                // pkg/kubelet/images/image_manager.go evalCRIPullErr: ErrImagePull with the
                // runtime's message.
                self.prev_pull_err
                    .insert(key, format!("ErrImagePull: {err}"));
                self.containers[i].step(Input::Failed {
                    reason: WaitingReason::ErrImagePull,
                    message: err,
                });
                self.sync_error = true;
            }
        }
    }

    /// generateContainerConfig, CreateContainer and StartContainer.
    fn create(
        &mut self,
        i: usize,
        pod: &Value,
        ctx: &NodeContext<'_>,
        image: ImageRef,
        now: Timestamp,
        out: &mut Out<'_>,
    ) {
        let c = &self.containers[i];
        let env = match resolve_env(pod, &c.spec, ctx.view, &self.ip, &ctx.config.host_ip) {
            Ok(env) => env,
            Err(message) => {
                // kuberuntime_container.go startContainer: generateContainerConfig failed,
                // `Error: %v` with ErrCreateContainerConfig.
                out.event(
                    now,
                    EventType::Warning,
                    "Failed",
                    format!("Error: {message}"),
                    Some((&c.name, c.init)),
                );
                self.containers[i].step(Input::Failed {
                    reason: WaitingReason::CreateContainerConfigError,
                    message,
                });
                self.sync_error = true;
                return;
            }
        };
        // kuberuntime_container.go startContainer (v1.32 wording).
        out.event(
            now,
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
            Some((&c.name, c.init)),
        );
        out.event(
            now,
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
            Some((&c.name, c.init)),
        );
        let kill = kill_at(pod, ctx, c, now);
        let c = &mut self.containers[i];
        let attempt = c.lifecycle.next_attempt();
        let strings = |field: &str| -> Vec<String> {
            c.spec
                .get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        // `$(VAR)` in command and args is expanded with the resolved environment
        // (pkg/kubelet/container/helpers.go `ExpandContainerCommandAndArgs`).
        let command: Vec<String> = strings("command")
            .iter()
            .map(|w| super::env::expand(w, &env))
            .collect();
        let args: Vec<String> = strings("args")
            .iter()
            .map(|w| super::env::expand(w, &env))
            .collect();
        // What the program reads when it starts: a Secret changed later does not change it.
        let files = super::env::mounted_files(pod, &c.spec, ctx.view);
        // An init container whose image declares no behaviour does its job and exits 0 at
        // once (as kwok completes init containers); running for ever would hold the pod in
        // Init for good.
        let completes =
            (c.init && !c.sidecar && ctx.behaviour(&c.image()).is_none()).then(|| ImageBehaviour {
                exit_after: Some(ExitAfter {
                    duration: crate::scenario::Duration::from_secs(0),
                    code: 0,
                }),
                ..ImageBehaviour::default()
            });
        let program = Program::start(
            completes.as_ref().or_else(|| ctx.behaviour(&c.image())),
            ContainerContext {
                namespace: str_at(pod, "/metadata/namespace").to_owned(),
                pod_name: str_at(pod, "/metadata/name").to_owned(),
                container: c.name.clone(),
                command,
                args,
                env,
                files,
                node_arch: ctx.config.arch,
                // The ServiceAccount admission plugin defaults it to `default`.
                service_account: match str_at(pod, "/spec/serviceAccountName") {
                    "" => "default".to_owned(),
                    sa => sa.to_owned(),
                },
            },
            now,
        );
        let probes: Vec<ProbeState> = [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ]
        .into_iter()
        .filter_map(|k| ProbeSpec::of(&c.spec, k))
        .map(|s| ProbeState::new(s, now))
        .collect();
        let started = !probes.iter().any(|p| p.spec.kind == ProbeKind::Startup);
        let id = format!(
            "containerd://{}",
            hex_digest(&format!(
                "{}/{}/{attempt}",
                str_at(pod, "/metadata/uid"),
                c.name
            ))
        );
        c.step(Input::Started(Box::new(Run {
            id,
            started_at: now,
            program,
            probes,
            started,
            image,
            attempt,
            wake: None,
            kill,
        })));
        // The program may write or exit at once (an exec format error does).
        let Some(run) = c.lifecycle.running_mut() else {
            return;
        };
        advance_run(run, now, ctx.view, &c.name, out);
        if let Some(kill) = run.kill.filter(|k| k.at <= now)
            && run.program.exit().is_none()
        {
            c.step(Input::Killed {
                at: kill.at,
                oom: kill.oom,
                notice_after: PLEG_RELIST,
            });
        } else if run.program.exit().is_some() {
            c.step(Input::Exited {
                notice_after: PLEG_RELIST,
            });
        }
    }
}

/// getPullSecretsForPod (pkg/kubelet/kubelet_pods.go): whether any referenced pull secret
/// exists, and the names of those that do not.
fn pull_secrets(pod: &Value, view: &dyn ClusterViewExt) -> (bool, Vec<String>) {
    let ns = str_at(pod, "/metadata/namespace");
    let mut found = false;
    let mut missing = Vec::new();
    for r in pod
        .pointer("/spec/imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(r, "/name");
        if name.is_empty() {
            continue;
        }
        if view.get("v1", "Secret", Some(ns), name).is_some() {
            found = true;
        } else {
            missing.push(name.to_owned());
        }
    }
    (found, missing)
}

/// When the run of `c` that started at `started` is killed: by a kill fault, or by the OOM
/// killer once its program uses more memory than the container's limit; the earlier.
fn kill_at(
    pod: &Value,
    ctx: &NodeContext<'_>,
    c: &Ctr,
    started: Timestamp,
) -> Option<crate::sim::faults::Kill> {
    let fault = fault_kill(pod, ctx, &c.name, started);
    let oom = ctx.behaviour(&c.image()).and_then(|b| {
        let uses = crate::sim::scheduler::quantity::parse_value(b.memory.as_deref()?)?;
        let limit = match c.spec.pointer("/resources/limits/memory")? {
            Value::String(q) => crate::sim::scheduler::quantity::parse_value(q)?,
            v => i128::from(v.as_i64()?),
        };
        (uses > limit).then(|| crate::sim::faults::Kill {
            at: b
                .ready_after
                .map_or(started, |d| after(started, d.as_std())),
            oom: true,
        })
    });
    [fault, oom].into_iter().flatten().min_by_key(|k| k.at)
}

/// When a kill fault ends the run of `container` that started at `started`, if one does.
fn fault_kill(
    pod: &Value,
    ctx: &NodeContext<'_>,
    container: &str,
    started: Timestamp,
) -> Option<crate::sim::faults::Kill> {
    let faults = ctx.view.faults();
    if faults.is_empty() {
        return None;
    }
    let labels: BTreeMap<String, String> = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    faults.kill(
        crate::sim::faults::PodRef {
            namespace: str_at(pod, "/metadata/namespace"),
            name: str_at(pod, "/metadata/name"),
            labels: &labels,
        },
        container,
        started,
    )
}

/// Runs a program up to `at`, keeping its next wake-up and handing out what it wrote.
fn advance_run(
    run: &mut Run,
    at: Timestamp,
    view: &dyn ClusterViewExt,
    name: &str,
    out: &mut Out<'_>,
) {
    let progress = run.program.advance(at, view);
    run.wake = progress.wake_at;
    collect(name, run.attempt, progress, out);
}

fn collect(
    container: &str,
    attempt: u32,
    progress: crate::sim::behaviour::Progress,
    out: &mut Out<'_>,
) {
    out.sync
        .logs
        .extend(progress.logs.into_iter().map(|l| ContainerLog {
            container: container.to_owned(),
            attempt,
            at: l.at,
            text: l.text,
        }));
    if let Some(request) = progress.postgres
        && !out.sync.postgres.iter().any(|p| p.container == container)
    {
        out.sync.postgres.push(PendingPostgres {
            container: container.to_owned(),
            request,
        });
    }
}
