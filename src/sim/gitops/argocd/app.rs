//! The application controller (controller/appcontroller.go, controller/state.go,
//! controller/sync.go of Argo CD v3.5.1): for each Application, the desired state rendered
//! from Git, compared with the live state, its health, the status it writes, automated sync,
//! and the sync operation it runs ([`super::sync`]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::client::Client;
use super::diff::{self, DiffOptions};
use super::repo::Repos;
use super::sync::{self, OpPhase, ResourceResult, StepOutcome, SyncInput};
use super::{API_VERSION, COMPONENT, Health, ManagedResource, NAMESPACE, SyncStatus};
use crate::sim::events::{Event, EventRecorder, EventType, Involved, Reporter};

/// The tracking annotation of the v3 default tracking method
/// (util/argo/resource_tracking.go, `common.AnnotationKeyAppInstance`).
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";

/// `timeout.reconciliation` default (cmd/argocd-application-controller/commands/
/// argocd_application_controller.go, `defaultAppResyncPeriod`: 180 seconds).
const RESYNC: SignedDuration = SignedDuration::from_secs(180);
/// `defaultAppResyncPeriodJitter`: up to 60 seconds added to each app's refresh.
const JITTER_SECS: u64 = 60;

const DEFAULT_HEALTH: HealthCheck = super::health::of;

/// How healthy a live object is; [`super::health::of`] unless a test replaces it.
pub type HealthCheck = fn(&Value) -> Option<Health>;

/// The controller's memory between rounds, per Application.
#[derive(Debug)]
pub struct AppController {
    apps: BTreeMap<String, AppMemory>,
    last_version: Option<u64>,
    wake: Option<Timestamp>,
    health: HealthCheck,
}

impl Default for AppController {
    fn default() -> Self {
        Self {
            apps: BTreeMap::new(),
            last_version: None,
            wake: None,
            health: DEFAULT_HEALTH,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct AppMemory {
    /// The SHA last fetched for the source, and the source it was fetched for.
    fetched: Option<(Value, String)>,
    next_refresh: Option<Timestamp>,
    /// Kinds of resources the app managed, to find tracked objects again.
    kinds: BTreeSet<(String, String)>,
}

/// The outcome of `CompareAppState`.
struct Comparison {
    resources: Vec<ManagedResource>,
    hooks: Vec<Value>,
    statuses: Vec<Option<SyncStatus>>,
    sync: SyncStatus,
    revision: String,
    errors: Vec<String>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Go's `time.Kitchen` (`3:04PM`), in UTC.
fn kitchen(t: Timestamp) -> String {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    let h = z.hour();
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{h12}:{:02}{ampm}", z.minute())
}

/// `parseStringToDuration` (pkg/apis/application/v1alpha1/types.go): seconds without unit,
/// else a Go duration.
fn go_duration(text: &str) -> Option<SignedDuration> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(SignedDuration::from_secs(n));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(SignedDuration::from_secs_f64(total))
}

/// `RetryStrategy.NextRetryAt`: `duration * factor^retries`, at most `maxDuration`
/// (defaults from application_defaults.go: 5s, 2, 3m).
fn next_retry_at(retry: &Value, last: Timestamp, count: i64) -> Result<Timestamp, String> {
    let backoff = &retry["backoff"];
    let parse = |k: &str, default: SignedDuration| match backoff[k].as_str() {
        Some(t) if !t.is_empty() => go_duration(t)
            // types.go, parseStringToDuration.
            .ok_or_else(|| format!("unable to parse {t} as a duration")),
        _ => Ok(default),
    };
    let duration = parse("duration", SignedDuration::from_secs(5))?;
    let max = parse("maxDuration", SignedDuration::from_secs(180))?;
    let factor = backoff["factor"].as_i64().unwrap_or(2);
    let exp = i32::try_from(count).unwrap_or(i32::MAX);
    let mut wait = duration.as_secs_f64() * (factor as f64).powi(exp);
    if max > SignedDuration::ZERO {
        wait = wait.min(max.as_secs_f64());
    }
    Ok(last + SignedDuration::from_secs_f64(wait))
}

/// A deterministic stand-in for `rand.Float64()` of the refresh jitter: a fraction from
/// the app's key.
fn jitter(key: &str) -> SignedDuration {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    SignedDuration::from_secs(i64::try_from(h % JITTER_SECS).unwrap_or(0))
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

impl AppController {
    /// A controller assessing health with `health` (tests stand in for checks not yet built).
    #[must_use]
    pub fn with_health(health: HealthCheck) -> Self {
        Self {
            health,
            ..Self::default()
        }
    }

    /// One pass over every Application; returns the earliest time it wants to run again.
    pub fn reconcile(
        &mut self,
        client: &Client,
        repos: &Repos,
        recorder: &mut EventRecorder,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let version = client.store().resource_version();
        if self.last_version == Some(version) && self.wake.is_none_or(|w| now < w) {
            return self.wake;
        }
        let Ok(apps) = client.list(API_VERSION, "Application", None) else {
            return None;
        };
        let mut wake = None;
        let mut seen = BTreeSet::new();
        for app in apps {
            let key = format!(
                "{}/{}",
                s(&app, "/metadata/namespace"),
                s(&app, "/metadata/name")
            );
            seen.insert(key.clone());
            let mut mem = self.apps.remove(&key).unwrap_or_default();
            let w = self.reconcile_app(client, repos, recorder, now, &app, &mut mem);
            wake = earliest(wake, w);
            self.apps.insert(key, mem);
        }
        self.apps.retain(|k, _| seen.contains(k));
        self.last_version = Some(version);
        self.wake = wake;
        wake
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one pass of processAppRefreshQueueItem"
    )]
    fn reconcile_app(
        &self,
        client: &Client,
        repos: &Repos,
        recorder: &mut EventRecorder,
        now: Timestamp,
        app: &Value,
        mem: &mut AppMemory,
    ) -> Option<Timestamp> {
        let ns = s(app, "/metadata/namespace");
        let name = s(app, "/metadata/name");
        let project = s(app, "/spec/project");
        let project = if project.is_empty() {
            "default"
        } else {
            project
        };
        let mut app = app.clone();
        let orig_status = app["status"].clone();
        let mut status = orig_status.clone();
        if !status.is_object() {
            status = json!({});
        }
        if client
            .get(API_VERSION, "AppProject", Some(NAMESPACE), project)
            .ok()
            .flatten()
            .is_none()
        {
            // controller/appcontroller.go, refreshAppConditions.
            let msg = format!("Application referencing project {project} which does not exist");
            set_conditions(&mut status, "InvalidSpecError", Some(&msg), now);
            status["sync"]["status"] = json!("Unknown");
            status["health"]["status"] = json!("Unknown");
            self.persist(client, recorder, now, &app, &orig_status, status);
            return None;
        }
        let source = app["spec"]["source"].clone();
        let instance = if ns == NAMESPACE {
            name.to_owned()
        } else {
            format!("{ns}_{name}")
        };
        // needRefreshAppStatus: expired, never reconciled, or spec.source differs.
        let refresh = mem.next_refresh.is_none_or(|t| now >= t)
            || mem.fetched.as_ref().is_none_or(|(src, _)| *src != source)
            || status["sync"]["comparedTo"]["source"] != source;
        if refresh {
            let url = s(&source, "/repoURL");
            let rev = s(&source, "/targetRevision");
            match repos.resolve(url, rev) {
                Ok(r) => mem.fetched = Some((source.clone(), r.sha.clone())),
                Err(_) => mem.fetched = None,
            }
            mem.next_refresh = Some(now + RESYNC + jitter(&format!("{ns}/{name}")));
        }
        let fetched = mem.fetched.as_ref().map(|(_, sha)| sha.clone());
        let cmp = self.compare(client, repos, &app, &instance, fetched.as_deref(), mem);
        let mut wake = mem.next_refresh;

        // Conditions from the comparison.
        let comparison_msg = (!cmp.errors.is_empty()).then(|| cmp.errors.join("; "));
        set_conditions(
            &mut status,
            "ComparisonError",
            comparison_msg.as_deref(),
            now,
        );
        set_conditions(&mut status, "InvalidSpecError", None, now);

        // status.resources, sorted by group/kind/namespace/name (appcontroller.go,
        // resourceStatusKey).
        let healths: Vec<Option<Health>> = cmp
            .resources
            .iter()
            .map(super::health::of_resource)
            .collect();
        let mut entries: Vec<(String, Value)> = Vec::new();
        for (i, r) in cmp.resources.iter().enumerate() {
            let mut e = json!({
                "group": r.group, "version": r.version, "kind": r.kind,
                "namespace": r.namespace, "name": r.name,
            });
            if let Some(st) = cmp.statuses[i] {
                e["status"] = json!(st.as_str());
            }
            if r.hook {
                e["hook"] = json!(true);
            }
            if r.requires_pruning {
                e["requiresPruning"] = json!(true);
            }
            if let Some(t) = &r.target {
                let w = sync::wave(t);
                if w != 0 {
                    e["syncWave"] = json!(w);
                }
            }
            let h = healths[i].clone();
            if let Some(h) = h
                && !r.hook
            {
                e["health"] = json!({"status": h.status.as_str()});
                if !h.message.is_empty() {
                    e["health"]["message"] = json!(h.message);
                }
            }
            let key = [&r.group, &r.kind, &r.namespace, &r.name]
                .iter()
                .map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join("/");
            entries.push((key, e));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        status["resources"] = Value::Array(entries.into_iter().map(|(_, e)| e).collect());

        let all: Vec<(&ManagedResource, Option<&Health>)> = cmp
            .resources
            .iter()
            .zip(healths.iter())
            .map(|(r, h)| (r, h.as_ref()))
            .collect();
        // controller/state.go (CompareAppState): a failed load or diff makes the sync status
        // Unknown, but setApplicationHealth still assesses the live resources it has.
        let app_health = super::health::of_application_in(Some(&app), &all).status;
        status["health"]["status"] = json!(app_health.as_str());
        status["sync"] = json!({
            "status": cmp.sync.as_str(),
            "comparedTo": {
                "source": source,
                "destination": app["spec"]["destination"],
            },
        });
        if !cmp.revision.is_empty() {
            status["sync"]["revision"] = json!(cmp.revision);
        }
        if !app["spec"]["ignoreDifferences"].is_null() {
            status["sync"]["comparedTo"]["ignoreDifferences"] =
                app["spec"]["ignoreDifferences"].clone();
        }
        status["sourceType"] = json!("Directory");
        status["controllerNamespace"] = json!(NAMESPACE);
        if refresh || status["reconciledAt"].is_null() {
            status["reconciledAt"] = json!(rfc3339(now));
        }
        let images: BTreeSet<String> = cmp
            .resources
            .iter()
            .filter_map(|r| r.live.as_ref())
            .flat_map(images_of)
            .collect();
        if images.is_empty() {
            status["summary"] = json!({});
        } else {
            status["summary"] = json!({"images": images});
        }

        // An operation in progress or requested (processRequestedAppOperation), else autoSync.
        let in_progress = status["operationState"]["phase"].as_str() == Some("Running");
        if in_progress || !app["operation"].is_null() {
            let w = self.process_operation(
                client,
                repos,
                recorder,
                now,
                &mut app,
                &mut status,
                &instance,
                mem,
            );
            wake = earliest(wake, w);
        } else {
            let cond = self.auto_sync(client, recorder, now, &app, &status, &cmp);
            set_conditions(&mut status, "SyncError", cond.as_deref(), now);
        }
        self.persist(client, recorder, now, &app, &orig_status, status);
        wake
    }

    /// Writes the status when it changed, with the events of `persistAppStatus`.
    fn persist(
        &self,
        client: &Client,
        recorder: &mut EventRecorder,
        now: Timestamp,
        app: &Value,
        orig: &Value,
        mut status: Value,
    ) {
        let old_sync = s(orig, "/sync/status");
        let new_sync = s(&status, "/sync/status").to_owned();
        let old_health = s(orig, "/health/status");
        let new_health = s(&status, "/health/status").to_owned();
        if old_health == new_health && !orig["health"]["lastTransitionTime"].is_null() {
            status["health"]["lastTransitionTime"] = orig["health"]["lastTransitionTime"].clone();
        } else {
            status["health"]["lastTransitionTime"] = json!(rfc3339(now));
        }
        if status == *orig {
            return;
        }
        if old_sync != new_sync {
            // controller/appcontroller.go, persistAppStatus.
            let msg = format!("Updated sync status: {old_sync} -> {new_sync}");
            event(
                recorder,
                client,
                now,
                app,
                EventType::Normal,
                "ResourceUpdated",
                &msg,
            );
        }
        if old_health != new_health {
            // controller/appcontroller.go, persistAppStatus.
            let msg = format!("Updated health status: {old_health} -> {new_health}");
            event(
                recorder,
                client,
                now,
                app,
                EventType::Normal,
                "ResourceUpdated",
                &msg,
            );
        }
        let mut patch = json!({"status": status});
        null_removed(orig, &mut patch["status"]);
        let _ = client.merge_patch(
            API_VERSION,
            "Application",
            Some(s(app, "/metadata/namespace")),
            s(app, "/metadata/name"),
            &patch,
            false,
        );
    }

    /// `CompareAppState` at a revision (`None`: the source could not be resolved).
    fn compare(
        &self,
        client: &Client,
        repos: &Repos,
        app: &Value,
        instance: &str,
        sha: Option<&str>,
        mem: &mut AppMemory,
    ) -> Comparison {
        let source = &app["spec"]["source"];
        let dest_ns = s(app, "/spec/destination/namespace");
        let mut errors = Vec::new();
        let rev_spec = sha.unwrap_or_else(|| s(source, "/targetRevision"));
        let rendered = repos
            .resolve(s(source, "/repoURL"), rev_spec)
            .and_then(|rev| {
                rev.render(s(source, "/path"), source.get("directory"))
                    .map(|objs| (rev.sha.clone(), objs))
            });
        let (revision, objs) = match rendered {
            Ok(r) => r,
            Err(e) => {
                // controller/state.go, CompareAppState: `Failed to load target state: ` and
                // GetRepoObjs' `failed to generate manifest for source %d of %d: %w` around
                // the repo server's gRPC error.
                errors.push(format!(
                    "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = {e}"
                ));
                (String::new(), Vec::new())
            }
        };
        let mut targets = Vec::new();
        let mut hooks = Vec::new();
        for mut obj in objs {
            if !obj.is_object() {
                continue;
            }
            let api_version = s(&obj, "/apiVersion").to_owned();
            let kind = s(&obj, "/kind").to_owned();
            let namespaced = client
                .resource(&api_version, &kind)
                .is_none_or(|r| r.namespaced);
            if namespaced && s(&obj, "/metadata/namespace").is_empty() && !dest_ns.is_empty() {
                obj["metadata"]["namespace"] = json!(dest_ns);
            }
            if !namespaced && let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            let (group, _) = api_version.split_once('/').unwrap_or(("", &api_version));
            // util/argo/resource_tracking.go, BuildAppInstanceValue:
            // `<app>:<group>/<kind>:<namespace>/<name>`.
            let id = format!(
                "{instance}:{group}/{kind}:{}/{}",
                s(&obj, "/metadata/namespace"),
                s(&obj, "/metadata/name")
            );
            obj["metadata"]["annotations"][TRACKING_ID] = json!(id);
            mem.kinds.insert((api_version.clone(), kind.clone()));
            if sync::is_hook(&obj) {
                hooks.push(obj);
            } else {
                targets.push(obj);
            }
        }
        // Live objects: those at the targets' keys and those tracked as this app's.
        let mut live_by_key: BTreeMap<(String, String, String, String), Value> = BTreeMap::new();
        for (api_version, kind) in &mem.kinds {
            let Ok(items) = client.list(api_version, kind, None) else {
                continue;
            };
            for item in items {
                let tracking = s(
                    &item,
                    "/metadata/annotations/argocd.argoproj.io~1tracking-id",
                );
                let (group, _) = api_version.split_once('/').unwrap_or(("", api_version));
                let expected = format!(
                    "{instance}:{group}/{kind}:{}/{}",
                    s(&item, "/metadata/namespace"),
                    s(&item, "/metadata/name")
                );
                let key = (
                    group.to_owned(),
                    kind.clone(),
                    s(&item, "/metadata/namespace").to_owned(),
                    s(&item, "/metadata/name").to_owned(),
                );
                let is_target = targets.iter().any(|t| obj_key(t) == key);
                if tracking == expected || is_target {
                    live_by_key.insert(key, item);
                }
            }
        }
        let opts_ignore = app["spec"]["ignoreDifferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let server_side = sync_options(app)
            .iter()
            .any(|o| o == "ServerSideApply=true");
        let opts = DiffOptions {
            ignore_differences: &opts_ignore,
            structured: server_side,
            ..DiffOptions::default()
        };
        let mut resources = Vec::new();
        let mut statuses = Vec::new();
        let mut sync = SyncStatus::Synced;
        for t in targets {
            let key = obj_key(&t);
            let live = live_by_key.remove(&key);
            let st = if sync::is_skipped(&t) {
                None
            } else {
                match diff::compare(client.store(), &t, live.as_ref(), &opts) {
                    Ok(SyncStatus::Synced) => Some(SyncStatus::Synced),
                    Ok(other) => {
                        sync = SyncStatus::OutOfSync;
                        Some(other)
                    }
                    Err(msg) => {
                        if !errors.contains(&msg) {
                            errors.push(msg);
                        }
                        Some(SyncStatus::Unknown)
                    }
                }
            };
            resources.push(managed(key, t.clone(), Some(t), live, false));
            statuses.push(st);
        }
        for (key, live) in live_by_key {
            let hook = sync::is_hook(&live);
            let st = if hook {
                None
            } else {
                sync = SyncStatus::OutOfSync;
                Some(SyncStatus::OutOfSync)
            };
            let mut r = managed(key, live.clone(), None, Some(live), hook);
            r.requires_pruning = true;
            resources.push(r);
            statuses.push(st);
        }
        if !errors.is_empty() {
            sync = SyncStatus::Unknown;
            for st in statuses.iter_mut().flatten() {
                *st = SyncStatus::Unknown;
            }
        }
        Comparison {
            resources,
            hooks,
            statuses,
            sync,
            revision,
            errors,
        }
    }

    /// `autoSync`; returns the `SyncError` condition's message when it refuses.
    fn auto_sync(
        &self,
        client: &Client,
        recorder: &mut EventRecorder,
        now: Timestamp,
        app: &Value,
        status: &Value,
        cmp: &Comparison,
    ) -> Option<String> {
        let policy = &app["spec"]["syncPolicy"];
        let automated = &policy["automated"];
        if !automated.is_object() || automated["enabled"].as_bool() == Some(false) {
            return None;
        }
        if !app["metadata"]["deletionTimestamp"].is_null() || cmp.sync != SyncStatus::OutOfSync {
            return None;
        }
        let prune = automated["prune"].as_bool().unwrap_or(false);
        let self_heal = automated["selfHeal"].as_bool().unwrap_or(false);
        let allow_empty = automated["allowEmpty"].as_bool().unwrap_or(false);
        let statuses: Vec<(Option<SyncStatus>, bool)> = cmp
            .statuses
            .iter()
            .zip(cmp.resources.iter())
            .map(|(s, r)| (*s, r.requires_pruning))
            .collect();
        if !prune
            && statuses
                .iter()
                .all(|(s, p)| *s == Some(SyncStatus::Synced) || *p)
        {
            return None;
        }
        let revision = &cmp.revision;
        // Go's `%s` of a []string: `[a b]`.
        let desired = format!("[{revision}]");
        let op_state = &status["operationState"];
        let last_rev = s(op_state, "/syncResult/revision");
        let already = if op_state.is_null() {
            false
        } else if op_state["syncResult"].is_null() {
            OpPhase::parse(s(op_state, "/phase")).is_some_and(OpPhase::completed)
        } else {
            last_rev == revision && op_state["syncResult"]["source"] == app["spec"]["source"]
        };
        let mut sync_resources = Vec::new();
        if already {
            if s(op_state, "/phase") != "Succeeded" {
                // controller/appcontroller.go, autoSync.
                return Some(format!(
                    "Failed last sync attempt to [{last_rev}]: {}",
                    s(op_state, "/message")
                ));
            }
            if !self_heal {
                return None;
            }
            // selfHealRemainingBackoff without a backoff: `timeout.self.heal` (5s default).
            if let Some(fin) = op_state["finishedAt"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                && now < fin + SignedDuration::from_secs(5)
            {
                return None;
            }
            for (r, st) in cmp.resources.iter().zip(cmp.statuses.iter()) {
                if *st != Some(SyncStatus::Synced) {
                    sync_resources.push(json!({"group": r.group, "kind": r.kind, "name": r.name}));
                }
            }
        }
        if prune && !allow_empty && cmp.resources.iter().all(|r| r.requires_pruning) {
            // controller/appcontroller.go, autoSync.
            return Some(format!(
                "Skipping sync attempt to {desired}: auto-sync will wipe out all resources"
            ));
        }
        let mut op = json!({
            "sync": {
                "revision": revision,
                "prune": prune,
                "source": app["spec"]["source"],
            },
            "initiatedBy": {"automated": true},
            // autoSync: `Retry: appv1.RetryStrategy{Limit: 5}` unless the policy says.
            "retry": {"limit": 5},
        });
        if let Some(opts) = policy["syncOptions"].as_array() {
            op["sync"]["syncOptions"] = json!(opts);
        }
        if !sync_resources.is_empty() {
            op["sync"]["resources"] = json!(sync_resources);
        }
        if policy["retry"].is_object() {
            op["retry"] = policy["retry"].clone();
        }
        let patched = client.merge_patch(
            API_VERSION,
            "Application",
            Some(s(app, "/metadata/namespace")),
            s(app, "/metadata/name"),
            &json!({"operation": op}),
            false,
        );
        if let Err(e) = patched {
            return Some(e.message);
        }
        // controller/appcontroller.go, autoSync.
        let msg = format!("Initiated automated sync to '{revision}'");
        event(
            recorder,
            client,
            now,
            app,
            EventType::Normal,
            "OperationStarted",
            &msg,
        );
        None
    }

    /// `processRequestedAppOperation` with `SyncAppState`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the controller's context and the app"
    )]
    fn process_operation(
        &self,
        client: &Client,
        repos: &Repos,
        recorder: &mut EventRecorder,
        now: Timestamp,
        app: &mut Value,
        status: &mut Value,
        instance: &str,
        mem: &mut AppMemory,
    ) -> Option<Timestamp> {
        let mut state = status["operationState"].clone();
        let in_progress = s(&state, "/phase") == "Running";
        if in_progress {
            if !state["finishedAt"].is_null() {
                let finished = s(&state, "/finishedAt").parse::<Timestamp>().unwrap_or(now);
                let count = state["retryCount"].as_i64().unwrap_or(0);
                let retry_at = match next_retry_at(&state["operation"]["retry"], finished, count) {
                    Ok(t) => t,
                    Err(e) => {
                        state["phase"] = json!("Error");
                        state["message"] = json!(e);
                        self.set_operation_state(client, recorder, now, app, status, state);
                        return None;
                    }
                };
                if now < retry_at {
                    return Some(retry_at);
                }
                // controller/appcontroller.go, processRequestedAppOperation.
                state["message"] = json!(format!("Retrying operation. Attempt #{count}"));
                state["finishedAt"] = Value::Null;
                state["syncResult"] = Value::Null;
            }
        } else {
            let op = app["operation"].as_object()?;
            // controller/sync.go, NewOperationState.
            state = json!({
                "phase": "Running",
                "operation": Value::Object(op.clone()),
                "startedAt": rfc3339(now),
            });
        }
        let sync_op = state["operation"]["sync"].clone();
        if sync_op.is_null() {
            state["phase"] = json!("Error");
            // controller/sync.go, SyncAppState.
            state["message"] = json!("Invalid operation request: no operation specified");
        } else {
            if state["syncResult"].is_null() {
                let src = if sync_op["source"].is_object() {
                    sync_op["source"].clone()
                } else {
                    app["spec"]["source"].clone()
                };
                state["syncResult"] =
                    json!({"revision": sync_op["revision"], "source": src, "resources": []});
            }
            let rev = s(&state, "/syncResult/revision").to_owned();
            let rev = if rev.is_empty() {
                None
            } else {
                Some(rev.as_str())
            };
            let mut sync_app = app.clone();
            sync_app["spec"]["source"] = state["syncResult"]["source"].clone();
            let cmp = self.compare(client, repos, &sync_app, instance, rev, mem);
            state["syncResult"]["revision"] = json!(cmp.revision);
            let errs: Vec<String> = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| matches!(s(c, "/type"), "ComparisonError" | "InvalidSpecError"))
                .map(|c| format!("{}: {}", s(c, "/type"), s(c, "/message")))
                .collect();
            if errs.is_empty() {
                let options: Vec<String> = sync_op["syncOptions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect();
                let started = s(&state, "/startedAt").parse::<Timestamp>().unwrap_or(now);
                let health = self.health;
                let input = SyncInput {
                    client,
                    resources: &cmp.resources,
                    hooks: &cmp.hooks,
                    namespace: s(app, "/spec/destination/namespace"),
                    revision: &cmp.revision,
                    started_unix: started.as_second(),
                    prune: sync_op["prune"].as_bool().unwrap_or(false),
                    server_side: options.iter().any(|o| o == "ServerSideApply=true"),
                    validate: !options.iter().any(|o| o == "Validate=false"),
                    health: &health,
                };
                let previous: Vec<ResourceResult> = state["syncResult"]["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(ResourceResult::from_json)
                    .collect();
                let StepOutcome {
                    phase,
                    message,
                    results,
                } = sync::step(&input, previous);
                state["phase"] = json!(phase.as_str());
                state["message"] = json!(message);
                state["syncResult"]["resources"] =
                    Value::Array(results.iter().map(ResourceResult::to_json).collect());
            } else {
                state["phase"] = json!("Error");
                // controller/sync.go, SyncAppState: argo.FormatAppConditions.
                state["message"] = json!(errs.join(";"));
            }
        }
        let mut wake = None;
        if matches!(s(&state, "/phase"), "Failed" | "Error") {
            let count = state["retryCount"].as_i64().unwrap_or(0);
            let limit = state["operation"]["retry"]["limit"].as_i64().unwrap_or(0);
            if count < limit || limit < 0 {
                match next_retry_at(&state["operation"]["retry"], now, count) {
                    Err(e) => {
                        state["phase"] = json!("Error");
                        // processRequestedAppOperation: `%s (failed to retry: %v)`.
                        state["message"] =
                            json!(format!("{} (failed to retry: {e})", s(&state, "/message")));
                    }
                    Ok(at) => {
                        state["phase"] = json!("Running");
                        state["finishedAt"] = json!(rfc3339(now));
                        state["retryCount"] = json!(count + 1);
                        // processRequestedAppOperation: `%s. Retrying attempt #%d at %s.`
                        state["message"] = json!(format!(
                            "{}. Retrying attempt #{} at {}.",
                            s(&state, "/message"),
                            count + 1,
                            kitchen(at)
                        ));
                        wake = Some(at);
                    }
                }
            } else if count > 0 {
                // processRequestedAppOperation: `%s (retried %d times).`
                state["message"] = json!(format!(
                    "{} (retried {count} times).",
                    s(&state, "/message")
                ));
            }
        } else if s(&state, "/phase") == "Running" {
            // Hooks and waves are polled as the controller's watch would notice them.
            wake = Some(now + SignedDuration::from_secs(1));
        }
        self.set_operation_state(client, recorder, now, app, status, state);
        wake
    }

    /// `setOperationState`: the state written, the operation cleared when it completed, and
    /// the `OperationCompleted` event.
    fn set_operation_state(
        &self,
        client: &Client,
        recorder: &mut EventRecorder,
        now: Timestamp,
        app: &mut Value,
        status: &mut Value,
        mut state: Value,
    ) {
        let phase = OpPhase::parse(s(&state, "/phase")).unwrap_or(OpPhase::Error);
        if phase.completed() {
            state["finishedAt"] = json!(rfc3339(now));
        }
        if state == status["operationState"] {
            return;
        }
        if state["retryCount"].as_i64() == Some(0)
            && let Some(m) = state.as_object_mut()
        {
            m.remove("retryCount");
        }
        let mut clean = state.clone();
        if let Some(m) = clean.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        status["operationState"] = clean;
        if phase.completed() {
            let _ = client.merge_patch(
                API_VERSION,
                "Application",
                Some(s(app, "/metadata/namespace")),
                s(app, "/metadata/name"),
                &json!({"operation": null}),
                false,
            );
            app["operation"] = Value::Null;
            // controller/appcontroller.go, setOperationState.
            let partial = state["operation"]["sync"]["resources"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            let mut parts = vec![
                if partial {
                    "Partial sync operation"
                } else {
                    "Sync operation"
                }
                .to_owned(),
            ];
            if !state["syncResult"].is_null() {
                parts.push("to".to_owned());
                parts.push(s(&state, "/syncResult/revision").to_owned());
            }
            let type_ = if phase == OpPhase::Succeeded {
                parts.push("succeeded".to_owned());
                EventType::Normal
            } else {
                parts.push("failed:".to_owned());
                parts.push(s(&state, "/message").to_owned());
                EventType::Warning
            };
            event(
                recorder,
                client,
                now,
                app,
                type_,
                "OperationCompleted",
                &parts.join(" "),
            );
        }
    }
}

fn obj_key(obj: &Value) -> (String, String, String, String) {
    let api_version = s(obj, "/apiVersion");
    let (group, _) = api_version.split_once('/').unwrap_or(("", api_version));
    (
        group.to_owned(),
        s(obj, "/kind").to_owned(),
        s(obj, "/metadata/namespace").to_owned(),
        s(obj, "/metadata/name").to_owned(),
    )
}

fn managed(
    key: (String, String, String, String),
    obj: Value,
    target: Option<Value>,
    live: Option<Value>,
    hook: bool,
) -> ManagedResource {
    let api_version = s(&obj, "/apiVersion");
    let version = api_version
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    ManagedResource {
        group: key.0,
        version,
        kind: key.1,
        namespace: key.2,
        name: key.3,
        target,
        live,
        hook,
        requires_pruning: false,
    }
}

fn sync_options(app: &Value) -> Vec<String> {
    app["spec"]["syncPolicy"]["syncOptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str().map(str::to_owned))
        .collect()
}

fn images_of(obj: &Value) -> Vec<String> {
    let spec = if obj["kind"] == "Pod" {
        &obj["spec"]
    } else if obj["kind"] == "CronJob" {
        &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &obj["spec"]["template"]["spec"]
    };
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[k].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// `ApplicationStatus.SetConditions` for one type: kept with its time while the message is
/// the same, replaced otherwise, removed with `None`; sorted by type and message.
fn set_conditions(status: &mut Value, type_: &str, message: Option<&str>, now: Timestamp) {
    let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let existing = conds.iter().position(|c| c["type"] == type_);
    match (existing, message) {
        (Some(i), Some(m)) if conds[i]["message"] == m => {}
        (Some(i), Some(m)) => {
            conds[i] = json!({"type": type_, "message": m, "lastTransitionTime": rfc3339(now)});
        }
        (None, Some(m)) => {
            conds.push(json!({"type": type_, "message": m, "lastTransitionTime": rfc3339(now)}));
        }
        (Some(i), None) => {
            conds.remove(i);
        }
        (None, None) => {}
    }
    conds.sort_by(|a, b| (s(a, "/type"), s(a, "/message")).cmp(&(s(b, "/type"), s(b, "/message"))));
    if conds.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("conditions");
        }
    } else {
        status["conditions"] = Value::Array(conds);
    }
}

/// Sets to `null` in a merge patch the fields of `orig` the new status no longer has.
fn null_removed(orig: &Value, new: &mut Value) {
    if let (Some(o), Some(n)) = (orig.as_object(), new.as_object_mut()) {
        for (k, v) in o {
            match n.get_mut(k) {
                None => {
                    n.insert(k.clone(), Value::Null);
                }
                Some(nv) if nv.is_object() && v.is_object() => null_removed(v, nv),
                Some(_) => {}
            }
        }
    }
}

fn event(
    recorder: &mut EventRecorder,
    client: &Client,
    now: Timestamp,
    app: &Value,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    let mut involved = Involved::of(app);
    involved.api_version = API_VERSION.to_owned();
    involved.kind = "Application".to_owned();
    let ev = Event::new(type_, reason, message, involved, Reporter::new(COMPONENT));
    recorder.record(client.store(), now, &ev);
}
