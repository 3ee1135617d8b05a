//! What a run records on its way: phase bands and the moments symptoms and converge
//! expectations first held (always: the recovery figures come from them, at no cost), and,
//! when a timeline report is asked for, the state changes of every pod and watched object and
//! every event, sampled each time the run lets cluster time pass ([`Session::advance`]), so
//! the report sees what the settle window sees without a watcher of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::header::{ACCEPT, HeaderValue};
use kube::api::ListParams;
use serde_json::Value;

use super::outcome::{Recovery, Settle};
use super::session::Session;
use crate::backend::BackendKind;
use crate::scenario::{Expectation, ObjectRef};

/// Everything recorded for a trial's timeline report: the first run and the replays beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Which clock the times are on.
    pub time_base: TimeBase,
    /// The first run, then the counterfactual (or the mutant's replay alone).
    pub runs: Vec<RunTimeline>,
}

/// The clock a timeline's times are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBase {
    /// The simulated cluster's clock.
    Simulated,
    /// Wall time since the cluster was provisioned (real clusters).
    Wall,
}

impl TimeBase {
    /// The clock runs on `backend`'s clusters (a served simulated cluster behind the
    /// kubeconfig backend still counts as one: its time is what it reports).
    #[must_use]
    pub const fn of(backend: BackendKind) -> Self {
        match backend {
            BackendKind::Sim => Self::Simulated,
            BackendKind::K3d | BackendKind::Kubeconfig => Self::Wall,
        }
    }

    /// How reports name it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Simulated => "simulated time",
            Self::Wall => "wall time",
        }
    }
}

/// One run on one cluster, times counted from its provisioning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTimeline {
    /// `fixed run`, `counterfactual (no fix)`, `mutant <name>`.
    pub label: String,
    /// The phases, in order.
    pub bands: Vec<Band>,
    /// Moments worth a marker: symptoms and expectations first holding, convergence, failure.
    pub marks: Vec<Mark>,
    /// One lane per pod and per watched object.
    pub lanes: Vec<Lane>,
    /// When the run ended.
    pub end: Duration,
}

/// A phase of a run, from start to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    /// `setup`, `break`, `fix`, `converge`, `settle`.
    pub name: String,
    /// Start.
    pub start: Duration,
    /// End.
    pub end: Duration,
    /// Whether it did what it had to.
    pub passed: bool,
}

/// A moment of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// When.
    pub at: Duration,
    /// What kind of moment.
    pub kind: MarkKind,
    /// What held or failed (`break.symptoms[0]: event BackOff in x`).
    pub label: String,
}

/// The kinds of [`Mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// A break symptom was first observed.
    Symptom,
    /// A converge expectation was first observed holding.
    Expectation,
    /// Every converge expectation held at once.
    Converged,
    /// A phase failed here.
    Failure,
}

/// The life of one pod or watched object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// Pod or other object.
    pub kind: LaneKind,
    /// `Pod ns/name`, `Deployment ns/name`.
    pub name: String,
    /// Each change of state, in order.
    pub states: Vec<StateChange>,
    /// The events about it.
    pub events: Vec<EventMark>,
}

/// What a lane follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    /// A pod (its STATUS as kubectl prints it).
    Pod,
    /// An object an expectation names, or one events are about.
    Object,
}

/// A state a lane entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// When it was first seen.
    pub at: Duration,
    /// `Pending`, `ContainerCreating`, `Running`, `Ready`, `CrashLoopBackOff`, `absent` ...
    pub state: String,
    /// More of it (READY, RESTARTS, conditions).
    pub detail: String,
}

/// An event, first seen or seen again (its count grew).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMark {
    /// When it was seen.
    pub at: Duration,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// Its count then.
    pub count: i32,
}

/// The state of the pod lane that has disappeared.
pub const GONE: &str = "gone";

/// What one run records, behind a lock so phases holding `&Session` can add to it.
#[derive(Debug, Default)]
pub(super) struct Trace {
    inner: Mutex<TraceState>,
}

#[derive(Debug, Default)]
struct TraceState {
    /// Whether lanes and events are sampled (a timeline report was asked for).
    lanes: bool,
    run: RunTimeline,
    break_start: Option<Duration>,
    symptoms_held: Option<Duration>,
    fix_start: Option<Duration>,
    converged: Option<Duration>,
    settle: Option<Settle>,
    /// Lane index by name.
    lane_index: HashMap<String, usize>,
    /// Event counts seen, by event uid.
    events_seen: HashMap<String, i32>,
    /// When the last sample was taken, and whether anything changed since.
    last_sample: Option<Duration>,
}

impl Trace {
    /// A trace; `lanes` also samples pods, objects and events.
    pub(super) fn new(label: &str, lanes: bool) -> Self {
        Self {
            inner: Mutex::new(TraceState {
                lanes,
                run: RunTimeline {
                    label: label.to_owned(),
                    ..RunTimeline::default()
                },
                ..TraceState::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TraceState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether lanes are sampled.
    pub(super) fn samples_lanes(&self) -> bool {
        self.lock().lanes
    }

    /// A phase band.
    pub(super) fn band(&self, name: &str, start: Duration, end: Duration, passed: bool) {
        let mut t = self.lock();
        t.run.bands.push(Band {
            name: name.to_owned(),
            start,
            end,
            passed,
        });
        t.run.end = t.run.end.max(end);
    }

    /// A moment.
    pub(super) fn mark(&self, at: Duration, kind: MarkKind, label: String) {
        let mut t = self.lock();
        t.run.marks.push(Mark { at, kind, label });
        t.run.end = t.run.end.max(at);
    }

    /// The break starts (before its first step).
    pub(super) fn break_started(&self, at: Duration) {
        self.lock().break_start = Some(at);
    }

    /// Every symptom has been observed.
    pub(super) fn symptoms_held(&self, at: Duration) {
        self.lock().symptoms_held = Some(at);
    }

    /// The fix starts (before its first step).
    pub(super) fn fix_started(&self, at: Duration) {
        self.lock().fix_start = Some(at);
    }

    /// When the fix started, if it did.
    pub(super) fn fix_start(&self) -> Option<Duration> {
        self.lock().fix_start
    }

    /// Every converge expectation held at once.
    pub(super) fn converged(&self, at: Duration) {
        self.lock().converged = Some(at);
    }

    /// How the settle window ended.
    pub(super) fn settled(&self, settle: Settle) {
        self.lock().settle = Some(settle);
    }

    /// The recovery figures of this run.
    pub(super) fn recovery(&self) -> Recovery {
        let t = self.lock();
        let since = |from: Option<Duration>, to: Option<Duration>| {
            from.zip(to).map(|(a, b)| b.saturating_sub(a))
        };
        Recovery {
            time_to_symptom: since(t.break_start, t.symptoms_held),
            time_to_converge: since(t.fix_start, t.converged),
            settle: t.settle,
        }
    }

    /// The recorded run, ending at `end` (lanes of pods still there run to it).
    pub(super) fn finish(&self, end: Duration) -> RunTimeline {
        let mut t = self.lock();
        t.run.end = t.run.end.max(end);
        let mut run = t.run.clone();
        run.lanes.sort_by(|a, b| {
            let first = |l: &Lane| {
                l.states
                    .first()
                    .map(|s| s.at)
                    .or_else(|| l.events.first().map(|e| e.at))
            };
            (a.kind != LaneKind::Object, first(a), &a.name).cmp(&(
                b.kind != LaneKind::Object,
                first(b),
                &b.name,
            ))
        });
        run
    }

    fn lane<'a>(t: &'a mut TraceState, kind: LaneKind, name: &str) -> &'a mut Lane {
        let i = match t.lane_index.get(name) {
            Some(&i) => i,
            None => {
                t.run.lanes.push(Lane {
                    kind,
                    name: name.to_owned(),
                    states: Vec::new(),
                    events: Vec::new(),
                });
                let i = t.run.lanes.len() - 1;
                t.lane_index.insert(name.to_owned(), i);
                i
            }
        };
        &mut t.run.lanes[i]
    }

    /// Records `state` for a lane when it differs from the lane's last one.
    fn state(
        t: &mut TraceState,
        kind: LaneKind,
        name: &str,
        at: Duration,
        state: &str,
        detail: &str,
    ) {
        let lane = Self::lane(t, kind, name);
        if lane
            .states
            .last()
            .is_some_and(|s| s.state == state && s.detail == detail)
        {
            return;
        }
        lane.states.push(StateChange {
            at,
            state: state.to_owned(),
            detail: detail.to_owned(),
        });
    }

    fn apply(&self, sample: Sample) {
        let mut t = self.lock();
        let at = sample.at;
        t.run.end = t.run.end.max(at);
        let present: std::collections::HashSet<&String> =
            sample.pods.iter().map(|(n, _, _)| n).collect();
        let vanished: Vec<String> = t
            .run
            .lanes
            .iter()
            .filter(|l| {
                l.kind == LaneKind::Pod
                    && !present.contains(&l.name)
                    && l.states.last().is_some_and(|s| s.state != GONE)
            })
            .map(|l| l.name.clone())
            .collect();
        for name in vanished {
            Self::state(&mut t, LaneKind::Pod, &name, at, GONE, "");
        }
        for (name, state, detail) in &sample.pods {
            Self::state(&mut t, LaneKind::Pod, name, at, state, detail);
        }
        for (name, state, detail) in &sample.objects {
            Self::state(&mut t, LaneKind::Object, name, at, state, detail);
        }
        for e in sample.events {
            let seen = t.events_seen.get(&e.uid).copied();
            if seen.is_some_and(|c| c >= e.count) {
                continue;
            }
            t.events_seen.insert(e.uid.clone(), e.count);
            let kind = if e.object.starts_with("Pod ") {
                LaneKind::Pod
            } else {
                LaneKind::Object
            };
            Self::lane(&mut t, kind, &e.object).events.push(EventMark {
                at,
                type_: e.type_,
                reason: e.reason,
                message: e.message,
                count: e.count,
            });
        }
        t.last_sample = Some(at);
    }
}

/// One reading of the cluster for the lanes.
struct Sample {
    at: Duration,
    /// Pod lane name, STATUS (or `Ready`), detail.
    pods: Vec<(String, String, String)>,
    /// Object lane name, state, detail.
    objects: Vec<(String, String, String)>,
    events: Vec<SeenEvent>,
}

struct SeenEvent {
    uid: String,
    object: String,
    type_: String,
    reason: String,
    message: String,
    count: i32,
}

/// The objects the scenario's expectations name, each once: their lanes.
fn watched(loaded: &crate::scenario::LoadedScenario) -> Vec<ObjectRef> {
    let s = &loaded.scenario;
    let mut out: BTreeMap<(String, String, String), ObjectRef> = BTreeMap::new();
    for e in s
        .healthy
        .iter()
        .chain(&s.break_.symptoms)
        .chain(&s.converge.expect)
    {
        let r = match e {
            Expectation::Object(o) if o.kind != "Pod" => match &o.name {
                Some(name) => ObjectRef {
                    api_version: o.api_version.clone(),
                    kind: o.kind.clone(),
                    name: name.clone(),
                    namespace: o.namespace.clone(),
                },
                None => continue,
            },
            Expectation::Absent(a) if a.object.kind != "Pod" => a.object.clone(),
            _ => continue,
        };
        out.entry((
            r.kind.clone(),
            r.namespace.clone().unwrap_or_default(),
            r.name.clone(),
        ))
        .or_insert(r);
    }
    out.into_values().collect()
}

/// The lane name of an object.
fn lane_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    }
}

/// The state of an object read as JSON: its ready count or phase and the conditions that do
/// not hold (a stuck rollout shows there); the detail lists every condition.
fn object_state(o: &Value) -> (String, String) {
    let status = &o["status"];
    let mut state = Vec::new();
    if let Some(want) = o["spec"]["replicas"].as_i64() {
        let ready = status["readyReplicas"].as_i64().unwrap_or(0);
        state.push(format!("{ready}/{want} ready"));
    }
    if let Some(phase) = status["phase"].as_str() {
        state.push(phase.to_owned());
    }
    let conditions = status["conditions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text = |c: &Value| {
        let ty = c["type"].as_str().unwrap_or("?");
        let st = c["status"].as_str().unwrap_or("?");
        match c["reason"].as_str() {
            Some(r) if !r.is_empty() => format!("{ty}={st} ({r})"),
            _ => format!("{ty}={st}"),
        }
    };
    // A condition whose False is healthy (a pod's `DisruptionTarget`) is rare on the objects
    // expectations name; those named `*Failed*`/`Degraded` read True when something is wrong.
    let failing: Vec<String> = conditions
        .iter()
        .filter(|c| {
            let ty = c["type"].as_str().unwrap_or_default();
            let st = c["status"].as_str().unwrap_or_default();
            let bad_when_true = ty.contains("Fail") || ty == "Degraded" || ty == "Stalled";
            (st == "False" && !bad_when_true) || (st == "True" && bad_when_true)
        })
        .map(text)
        .collect();
    if state.is_empty() && failing.is_empty() {
        state.push(if conditions.is_empty() {
            "present".to_owned()
        } else {
            "conditions True".to_owned()
        });
    }
    state.extend(failing);
    let all: Vec<String> = conditions.iter().map(text).collect();
    (state.join(" · "), all.join(", "))
}

/// A pod's state from a Table row: kubectl's STATUS, `Ready` when it runs with every
/// container ready; the detail has READY and RESTARTS.
fn pod_state(columns: &[String], cells: &[Value]) -> (String, String) {
    let cell = |name: &str| {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| cells.get(i))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let status = cell("Status");
    let ready = cell("Ready");
    // `3 (20s ago)`: the age would change every sample.
    let restarts = cell("Restarts");
    let restarts = restarts.split(" (").next().unwrap_or_default();
    let all_ready = ready
        .split_once('/')
        .is_some_and(|(a, b)| a == b && a != "0");
    let state = if status == "Running" && all_ready {
        "Ready".to_owned()
    } else {
        status
    };
    (state, format!("READY {ready} · RESTARTS {restarts}"))
}

impl Session<'_> {
    /// Lets cluster time pass as [`crate::backend::Cluster::advance`] does, then samples the
    /// lanes when they are recorded.
    ///
    /// # Errors
    /// When the cluster can no longer be reached.
    pub(super) async fn advance(
        &self,
        until: Duration,
    ) -> Result<(), crate::backend::BackendError> {
        self.cluster.advance(until).await?;
        self.sample().await;
        Ok(())
    }

    /// Reads pods, watched objects and events into the lanes (nothing unless recording).
    pub(super) async fn sample(&self) {
        if !self.trace.samples_lanes() {
            return;
        }
        let client = self.cluster.client();
        let at = self.cluster.now();
        let mut sample = Sample {
            at,
            pods: Vec::new(),
            objects: Vec::new(),
            events: Vec::new(),
        };
        for ns in &self.namespaces {
            if let Some(rows) = pod_table(&client, ns).await {
                for (name, state, detail) in rows {
                    sample
                        .pods
                        .push((lane_name("Pod", Some(ns), &name), state, detail));
                }
            }
            let events: kube::Api<k8s_openapi::api::core::v1::Event> =
                kube::Api::namespaced(client.clone(), ns);
            if let Ok(list) = events.list(&ListParams::default()).await {
                for e in list.items {
                    let io = &e.involved_object;
                    sample.events.push(SeenEvent {
                        uid: e.metadata.uid.clone().unwrap_or_default(),
                        object: lane_name(
                            io.kind.as_deref().unwrap_or("Object"),
                            io.namespace.as_deref(),
                            io.name.as_deref().unwrap_or_default(),
                        ),
                        type_: e.type_.unwrap_or_default(),
                        reason: e.reason.unwrap_or_default(),
                        message: e.message.unwrap_or_default(),
                        count: e.count.unwrap_or(1),
                    });
                }
            }
        }
        for r in watched(self.loaded) {
            let name = lane_name(&r.kind, r.namespace.as_deref(), &r.name);
            let (state, detail) = match super::steps::get_object(&client, &r).await {
                Ok(Some(o)) => object_state(&o),
                Ok(None) => ("absent".to_owned(), String::new()),
                // Not served (a CRD not yet there) reads as absent too.
                Err(_) => ("absent".to_owned(), String::new()),
            };
            sample.objects.push((name, state, detail));
        }
        self.trace.apply(sample);
    }
}

/// The pods of `ns` as the API server prints them for kubectl: name, state, detail.
async fn pod_table(client: &kube::Client, ns: &str) -> Option<Vec<(String, String, String)>> {
    let mut request = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
        .list(&ListParams::default())
        .ok()?;
    request.headers_mut().insert(
        ACCEPT,
        HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
    );
    let table: Value = client.request(request).await.ok()?;
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let rows = table["rows"].as_array()?;
    Some(
        rows.iter()
            .filter_map(|row| {
                let cells = row["cells"].as_array()?;
                let name = cells.first()?.as_str()?.to_owned();
                let (state, detail) = pod_state(&columns, cells);
                Some((name, state, detail))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_running_with_every_container_ready_are_ready() {
        let cols: Vec<String> = ["Name", "Ready", "Status", "Restarts", "Age"]
            .map(str::to_owned)
            .to_vec();
        let row = |ready: &str, status: &str| {
            pod_state(
                &cols,
                &[
                    json!("p"),
                    json!(ready),
                    json!(status),
                    json!("2 (5s ago)"),
                    json!("1m"),
                ],
            )
        };
        assert_eq!(row("1/1", "Running").0, "Ready");
        assert_eq!(row("0/1", "Running").0, "Running");
        assert_eq!(row("0/0", "Running").0, "Running");
        assert_eq!(
            row("0/1", "CrashLoopBackOff"),
            (
                "CrashLoopBackOff".to_owned(),
                "READY 0/1 · RESTARTS 2".to_owned()
            )
        );
    }

    #[test]
    fn objects_read_as_counts_phases_or_failing_conditions() {
        let d = json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}});
        assert_eq!(
            object_state(&d),
            (
                "1/2 ready · Progressing=False (ProgressDeadlineExceeded)".to_owned(),
                "Progressing=False (ProgressDeadlineExceeded)".to_owned()
            )
        );
        let job = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(object_state(&job).0, "Failed=True (BackoffLimitExceeded)");
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(object_state(&crd).0, "conditions True");
        assert_eq!(object_state(&json!({"data": {}})).0, "present");
        let pvc = json!({"status": {"phase": "Bound"}});
        assert_eq!(object_state(&pvc).0, "Bound");
    }

    #[test]
    fn states_are_recorded_on_change_and_vanished_pods_end() {
        let trace = Trace::new("run", true);
        let sample = |at: u64, pods: &[(&str, &str)]| Sample {
            at: Duration::from_secs(at),
            pods: pods
                .iter()
                .map(|(n, s)| ((*n).to_owned(), (*s).to_owned(), String::new()))
                .collect(),
            objects: Vec::new(),
            events: Vec::new(),
        };
        trace.apply(sample(1, &[("Pod a/x", "Pending")]));
        trace.apply(sample(2, &[("Pod a/x", "Pending")]));
        trace.apply(sample(3, &[("Pod a/x", "Ready")]));
        trace.apply(sample(4, &[]));
        let run = trace.finish(Duration::from_secs(5));
        let states: Vec<(u64, &str)> = run.lanes[0]
            .states
            .iter()
            .map(|s| (s.at.as_secs(), s.state.as_str()))
            .collect();
        assert_eq!(states, vec![(1, "Pending"), (3, "Ready"), (4, GONE)]);
        assert_eq!(run.end, Duration::from_secs(5));
    }
}
