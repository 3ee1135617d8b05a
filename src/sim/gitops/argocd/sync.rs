//! A sync operation (gitops-engine `pkg/sync/sync_context.go` as vendored in Argo CD v3.5.1):
//! phases, waves, hooks and their delete policies, pruning, and the `operationState` it
//! reports.
//!
//! Like gitops-engine's `syncContext.Sync`, one [`step`] is stateless apart from the results
//! recorded so far (`operationState.syncResult.resources`) and the live objects: each call
//! works out the tasks again, updates the running ones, and starts the next phase and wave.

use serde_json::{Value, json};

use super::client::{ApplyOptions, Client, ClientError};
use super::{Health, HealthStatus, ManagedResource};

/// The finalizer Argo CD puts on hooks until it has seen them complete
/// (gitops-engine `pkg/sync/hook/hook.go`, `HookFinalizer`).
pub const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

/// The hook annotation (gitops-engine `pkg/sync/common/types.go`, `AnnotationKeyHook`).
pub const HOOK: &str = "argocd.argoproj.io/hook";
/// Helm's hook annotation, which gitops-engine maps (`pkg/sync/hook/helm/hook.go`).
pub const HELM_HOOK: &str = "helm.sh/hook";
/// `argocd.argoproj.io/hook-delete-policy` (`AnnotationKeyHookDeletePolicy`).
pub const HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
/// `argocd.argoproj.io/sync-wave` (`AnnotationSyncWave`).
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// `argocd.argoproj.io/sync-options` (`AnnotationSyncOptions`).
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";

/// A sync phase (`SyncPhase`, gitops-engine `pkg/sync/common/types.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncPhase {
    /// `PreSync`.
    PreSync,
    /// `Sync`.
    Sync,
    /// `PostSync`.
    PostSync,
    /// `SyncFail`.
    SyncFail,
}

impl SyncPhase {
    /// The phase as Argo CD writes it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PreSync => "PreSync",
            Self::Sync => "Sync",
            Self::PostSync => "PostSync",
            Self::SyncFail => "SyncFail",
        }
    }
}

/// An operation's or a task's phase (`OperationPhase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpPhase {
    /// `Running`.
    Running,
    /// `Failed`.
    Failed,
    /// `Error`.
    Error,
    /// `Succeeded`.
    Succeeded,
}

impl OpPhase {
    /// The phase as Argo CD writes it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Failed => "Failed",
            Self::Error => "Error",
            Self::Succeeded => "Succeeded",
        }
    }

    /// Parses a written phase.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Running" => Some(Self::Running),
            "Failed" => Some(Self::Failed),
            "Error" => Some(Self::Error),
            "Succeeded" => Some(Self::Succeeded),
            _ => None,
        }
    }

    /// `Completed()`: failed, errored or succeeded.
    #[must_use]
    pub const fn completed(self) -> bool {
        !matches!(self, Self::Running)
    }
}

/// One entry of `syncResult.resources` (`ResourceSyncResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceResult {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Synced`, `SyncFailed`, `Pruned` or `PruneSkipped`.
    pub status: String,
    /// What happened.
    pub message: String,
    /// The hook type, for hooks.
    pub hook_type: String,
    /// The task's phase (`hookPhase`), empty while pending.
    pub hook_phase: String,
    /// The sync phase it ran in.
    pub sync_phase: SyncPhase,
}

impl ResourceResult {
    /// The entry as `operationState.syncResult.resources` holds it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("group".into(), json!(self.group));
        m.insert("version".into(), json!(self.version));
        m.insert("kind".into(), json!(self.kind));
        m.insert("namespace".into(), json!(self.namespace));
        m.insert("name".into(), json!(self.name));
        m.insert("status".into(), json!(self.status));
        m.insert("message".into(), json!(self.message));
        if !self.hook_type.is_empty() {
            m.insert("hookType".into(), json!(self.hook_type));
        }
        if !self.hook_phase.is_empty() {
            m.insert("hookPhase".into(), json!(self.hook_phase));
        }
        m.insert("syncPhase".into(), json!(self.sync_phase.as_str()));
        Value::Object(m)
    }

    /// Reads an entry back from the Application.
    #[must_use]
    pub fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let sync_phase = match v["syncPhase"].as_str()? {
            "PreSync" => SyncPhase::PreSync,
            "PostSync" => SyncPhase::PostSync,
            "SyncFail" => SyncPhase::SyncFail,
            _ => SyncPhase::Sync,
        };
        Some(Self {
            group: s("group"),
            version: s("version"),
            kind: s("kind"),
            namespace: s("namespace"),
            name: s("name"),
            status: s("status"),
            message: s("message"),
            hook_type: s("hookType"),
            hook_phase: s("hookPhase"),
            sync_phase,
        })
    }

    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}:{}",
            self.group,
            self.kind,
            self.namespace,
            self.name,
            self.sync_phase.as_str()
        )
    }
}

/// What one step of a sync works on.
pub struct SyncInput<'a> {
    /// The controller's client.
    pub client: &'a Client,
    /// The Application's resources at the operation's revision (hooks included, with their
    /// live objects).
    pub resources: &'a [ManagedResource],
    /// The hooks rendered from Git.
    pub hooks: &'a [Value],
    /// `spec.destination.namespace`.
    pub namespace: &'a str,
    /// The revision being synced (for hook names from `generateName`).
    pub revision: &'a str,
    /// When the operation started (Unix seconds), for hook names from `generateName`.
    pub started_unix: i64,
    /// `prune` of the operation.
    pub prune: bool,
    /// `ServerSideApply=true` among the sync options.
    pub server_side: bool,
    /// Manifest validation: on unless `Validate=false` is among the sync options
    /// (controller/sync.go, `sync.WithManifestValidation`).
    pub validate: bool,
    /// How healthy a live object is.
    pub health: &'a dyn Fn(&Value) -> Option<Health>,
}

/// What one step leaves: the operation's phase, its message and the results so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// `Running`, `Succeeded`, `Failed` or `Error`.
    pub phase: OpPhase,
    /// The operation's message.
    pub message: String,
    /// Results in the order they were first recorded.
    pub results: Vec<ResourceResult>,
}

#[derive(Debug, Clone)]
struct Task {
    phase: SyncPhase,
    target: Option<Value>,
    live: Option<Value>,
    wave_override: Option<i64>,
    skip_dry_run: bool,
    sync_status: String,
    op_state: Option<OpPhase>,
    message: String,
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

fn csv(obj: &Value, key: &str) -> Vec<String> {
    annotation(obj, key)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Hook types of an object (gitops-engine `pkg/sync/hook/hook.go` `Types`, with Helm's
/// mapping from `hook/helm/type.go`).
fn hook_types(obj: &Value) -> Vec<String> {
    let own: Vec<String> = csv(obj, HOOK)
        .into_iter()
        .filter(|t| {
            matches!(
                t.as_str(),
                "PreSync" | "Sync" | "PostSync" | "SyncFail" | "Skip" | "PreDelete" | "PostDelete"
            )
        })
        .collect();
    if !own.is_empty() {
        return own;
    }
    csv(obj, HELM_HOOK)
        .into_iter()
        .filter_map(|t| match t.as_str() {
            "pre-install" | "pre-upgrade" => Some("PreSync".to_owned()),
            "post-install" | "post-upgrade" => Some("PostSync".to_owned()),
            _ => None,
        })
        .collect()
}

/// `hook.Skip`: annotated `Skip` and nothing else.
#[must_use]
pub fn is_skipped(obj: &Value) -> bool {
    let types = hook_types(obj);
    types.len() == 1 && types[0] == "Skip"
}

/// `hook.IsHook`: `argocd.argoproj.io/hook` (unless only `Skip`), or Helm's `helm.sh/hook`
/// other than `crd-install`.
#[must_use]
pub fn is_hook(obj: &Value) -> bool {
    if annotation(obj, HOOK).is_some() {
        return !is_skipped(obj);
    }
    annotation(obj, HELM_HOOK).is_some_and(|v| v != "crd-install")
}

/// `syncPhases` (gitops-engine `pkg/sync/sync_phase.go`).
fn sync_phases(obj: &Value) -> Vec<SyncPhase> {
    if is_skipped(obj) {
        return Vec::new();
    }
    if !is_hook(obj) {
        return vec![SyncPhase::Sync];
    }
    let mut phases: Vec<SyncPhase> = hook_types(obj)
        .iter()
        .filter_map(|t| match t.as_str() {
            "PreSync" => Some(SyncPhase::PreSync),
            "Sync" => Some(SyncPhase::Sync),
            "PostSync" => Some(SyncPhase::PostSync),
            "SyncFail" => Some(SyncPhase::SyncFail),
            _ => None,
        })
        .collect();
    phases.sort();
    phases.dedup();
    phases
}

/// `syncwaves.Wave`: the sync-wave annotation, else Helm's hook weight, else 0.
#[must_use]
pub fn wave(obj: &Value) -> i64 {
    annotation(obj, SYNC_WAVE)
        .and_then(|v| v.parse().ok())
        .or_else(|| annotation(obj, "helm.sh/hook-weight").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// `hook.DeletePolicies`, defaulting to `BeforeHookCreation`.
fn delete_policies(obj: &Value) -> Vec<String> {
    let mut p: Vec<String> = csv(obj, HOOK_DELETE_POLICY)
        .into_iter()
        .filter(|p| {
            matches!(
                p.as_str(),
                "BeforeHookCreation" | "HookSucceeded" | "HookFailed"
            )
        })
        .collect();
    for h in csv(obj, "helm.sh/hook-delete-policy") {
        match h.as_str() {
            "before-hook-creation" => p.push("BeforeHookCreation".into()),
            "hook-succeeded" => p.push("HookSucceeded".into()),
            "hook-failed" => p.push("HookFailed".into()),
            _ => {}
        }
    }
    if p.is_empty() {
        p.push("BeforeHookCreation".into());
    }
    p
}

/// gitops-engine `pkg/sync/sync_tasks.go`, `kindOrder`: known kinds first, in this order.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_order(kind: &str) -> i64 {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as i64 - KIND_ORDER.len() as i64)
}

fn str_of<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

impl Task {
    fn obj(&self) -> &Value {
        self.target
            .as_ref()
            .or(self.live.as_ref())
            .unwrap_or(&Value::Null)
    }
    fn group(&self) -> &str {
        group_version(str_of(self.obj(), "/apiVersion")).0
    }
    fn version(&self) -> &str {
        group_version(str_of(self.obj(), "/apiVersion")).1
    }
    fn kind(&self) -> &str {
        str_of(self.obj(), "/kind")
    }
    fn name(&self) -> &str {
        str_of(self.obj(), "/metadata/name")
    }
    fn namespace(&self) -> &str {
        str_of(self.obj(), "/metadata/namespace")
    }
    fn wave(&self) -> i64 {
        self.wave_override.unwrap_or_else(|| wave(self.obj()))
    }
    fn is_prune(&self) -> bool {
        self.target.is_none()
    }
    fn is_hook(&self) -> bool {
        is_hook(self.obj())
    }
    fn pending(&self) -> bool {
        self.op_state.is_none()
    }
    fn running(&self) -> bool {
        self.op_state == Some(OpPhase::Running)
    }
    fn completed(&self) -> bool {
        self.op_state.is_some_and(OpPhase::completed)
    }
    fn successful(&self) -> bool {
        self.op_state == Some(OpPhase::Succeeded)
    }
    fn has_policy(&self, p: &str) -> bool {
        self.is_hook() && delete_policies(self.obj()).iter().any(|x| x == p)
    }
    fn delete_before_creation(&self) -> bool {
        self.live.is_some() && self.pending() && self.has_policy("BeforeHookCreation")
    }
    fn delete_on_success(&self) -> bool {
        self.live.is_some() && self.has_policy("HookSucceeded")
    }
    fn delete_on_failure(&self) -> bool {
        self.live.is_some() && self.has_policy("HookFailed")
    }
    fn result_key(&self) -> String {
        format!(
            "{}/{}/{}/{}:{}",
            self.group(),
            self.kind(),
            self.namespace(),
            self.name(),
            self.phase.as_str()
        )
    }
    fn api_version(&self) -> &str {
        str_of(self.obj(), "/apiVersion")
    }
}

struct Ctx<'a> {
    input: &'a SyncInput<'a>,
    results: Vec<ResourceResult>,
    phase: OpPhase,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Successful,
    Pending,
    Failed,
}

impl Ctx<'_> {
    /// `setResourceResult`: the newest non-empty message is kept; a new result goes last.
    fn set_result(&mut self, task: &mut Task, status: &str, op: Option<OpPhase>, message: &str) {
        task.sync_status = status.to_owned();
        task.op_state = op;
        if !message.is_empty() {
            task.message = message.to_owned();
        }
        let res = ResourceResult {
            group: task.group().to_owned(),
            version: task.version().to_owned(),
            kind: task.kind().to_owned(),
            namespace: task.namespace().to_owned(),
            name: task.name().to_owned(),
            status: task.sync_status.clone(),
            message: task.message.clone(),
            hook_type: if task.is_hook() {
                task.phase.as_str().to_owned()
            } else {
                String::new()
            },
            hook_phase: op.map(|p| p.as_str().to_owned()).unwrap_or_default(),
            sync_phase: task.phase,
        };
        let key = res.key();
        if let Some(existing) = self.results.iter_mut().find(|r| r.key() == key) {
            existing.status = res.status;
            existing.hook_phase = res.hook_phase;
            existing.message = res.message;
        } else {
            self.results.push(res);
        }
    }

    fn set_phase(&mut self, phase: OpPhase, message: impl Into<String>) {
        self.phase = phase;
        self.message = message.into();
    }

    /// `setRunningPhase` (sync_context.go): `waiting for <reason> <group>/<kind>/<name>`.
    fn set_running_phase(&mut self, tasks: &[&Task], pending_deletion: bool) {
        if tasks.is_empty() {
            self.set_phase(OpPhase::Running, "");
            return;
        }
        let hooks: Vec<&&Task> = tasks.iter().filter(|t| t.is_hook()).collect();
        let resources = tasks.len() - hooks.len();
        // sync_context.go, setRunningPhase.
        let mut reason = "completion of hook".to_owned();
        let mut task_type = "resources";
        if hooks.is_empty() {
            reason = "healthy state of".to_owned();
        }
        if resources == 0 {
            task_type = "hooks";
        }
        if pending_deletion {
            reason = "deletion of".to_owned();
            if !hooks.is_empty() {
                reason.push_str(" hook");
            }
        }
        let first = hooks.first().map_or(tasks[0], |t| **t);
        let mut message = format!(
            "waiting for {reason} {}/{}/{}",
            first.group(),
            first.kind(),
            first.name()
        );
        if tasks.len() > 1 {
            message = format!("{message} and {} more {task_type}", tasks.len() - 1);
        }
        self.set_phase(OpPhase::Running, message);
    }

    /// `getOperationPhase`: a hook's phase from its health.
    fn hook_phase(&self, live: &Value) -> (OpPhase, String) {
        // sync_context.go, getOperationPhase: `obj.GetName() + " created"` without health.
        let name = str_of(live, "/metadata/name");
        match (self.input.health)(live) {
            None => (OpPhase::Succeeded, format!("{name} created")),
            Some(Health { status, message }) => match status {
                HealthStatus::Unknown | HealthStatus::Degraded => (OpPhase::Failed, message),
                HealthStatus::Progressing | HealthStatus::Suspended => (OpPhase::Running, message),
                HealthStatus::Healthy => (OpPhase::Succeeded, message),
                HealthStatus::Missing => (OpPhase::Succeeded, format!("{name} created")),
            },
        }
    }

    fn remove_hook_finalizer(&self, task: &mut Task) -> Result<(), ClientError> {
        let Some(live) = &task.live else {
            return Ok(());
        };
        let finalizers: Vec<Value> = live["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == HOOK_FINALIZER) {
            return Ok(());
        }
        let kept: Vec<Value> = finalizers
            .into_iter()
            .filter(|f| f != HOOK_FINALIZER)
            .collect();
        let ns = Some(task.namespace()).filter(|n| !n.is_empty());
        match self.input.client.merge_patch(
            task.api_version(),
            task.kind(),
            ns,
            task.name(),
            &json!({"metadata": {"finalizers": kept}}),
            false,
        ) {
            Ok(obj) => {
                task.live = Some(obj);
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, task: &Task) -> Result<(), ClientError> {
        let ns = Some(task.namespace()).filter(|n| !n.is_empty());
        // sync_context.go, getDeleteOptions: foreground propagation by default.
        self.input.client.delete(
            task.api_version(),
            task.kind(),
            ns,
            task.name(),
            Some("Foreground"),
        )
    }

    fn delete_hooks(&mut self, tasks: &mut [Task], which: &[usize]) {
        for &i in which {
            if let Err(e) = self.delete(&tasks[i]) {
                let s = tasks[i].sync_status.clone();
                let op = tasks[i].op_state;
                // sync_context.go, deleteHooks.
                self.set_result(
                    &mut tasks[i],
                    &s,
                    op.or(Some(OpPhase::Error)).map(|_| OpPhase::Error),
                    &format!("failed to delete resource: {e}"),
                );
            }
        }
    }

    /// `applyObject`: kubectl's apply, its output as the message.
    fn apply(&self, task: &Task, dry_run: bool) -> (&'static str, String) {
        let Some(target) = &task.target else {
            return ("SyncFailed", String::new());
        };
        // sync_context.go, applyObject: the dry run is kubectl's client dry run, and kubectl
        // sends nothing for an object that exists (k8s.io/kubectl/pkg/cmd/apply/apply.go,
        // applyOneObject: the patch only `if o.DryRunStrategy != cmdutil.DryRunClient`), so
        // an immutable field (a hook Job's new pod template) fails no dry run.
        if dry_run && task.live.is_some() {
            return ("Synced", String::new());
        }
        let server_side = !dry_run
            && (self.input.server_side
                || csv(target, SYNC_OPTIONS)
                    .iter()
                    .any(|o| o == "ServerSideApply=true"))
            && !csv(target, SYNC_OPTIONS)
                .iter()
                .any(|o| o == "ServerSideApply=false");
        // sync_context.go: `sc.validate` unless the resource says `Validate=false`; the dry
        // run is kubectl's client dry run (applyObject), which sends nothing for the server
        // to validate.
        let validate = !dry_run
            && self.input.validate
            && !csv(target, SYNC_OPTIONS)
                .iter()
                .any(|o| o == "Validate=false");
        match self.input.client.apply_validated(
            target,
            ApplyOptions {
                server_side,
                dry_run,
            },
            validate,
        ) {
            Err(e) => ("SyncFailed", e.message),
            Ok(applied) => {
                // kubectl's name printer: `<kind>.<group>/<name>` in lower case, then the
                // operation (k8s.io/kubectl/pkg/cmd/apply/apply.go, printObjects).
                let gk = if task.group().is_empty() {
                    task.kind().to_lowercase()
                } else {
                    format!("{}.{}", task.kind(), task.group()).to_lowercase()
                };
                let op = if server_side {
                    "serverside-applied"
                } else if applied.created {
                    "created"
                } else if applied.changed {
                    "configured"
                } else {
                    "unchanged"
                };
                ("Synced", format!("{gk}/{} {op}", task.name()))
            }
        }
    }

    /// `pruneObject`.
    fn prune(&self, task: &Task, dry_run: bool) -> (&'static str, String) {
        let Some(live) = &task.live else {
            return ("Pruned", "pruned".to_owned());
        };
        // sync_context.go, pruneObject.
        if !self.input.prune {
            return ("PruneSkipped", "ignored (requires pruning)".to_owned());
        }
        if csv(live, SYNC_OPTIONS).iter().any(|o| o == "Prune=false") {
            return ("PruneSkipped", "ignored (no prune)".to_owned());
        }
        if dry_run {
            return ("Pruned", "pruned (dry run)".to_owned());
        }
        if live["metadata"]["deletionTimestamp"].is_null()
            && let Err(e) = self.delete(task)
        {
            return ("SyncFailed", e.message);
        }
        ("Pruned", "pruned".to_owned())
    }

    /// `runTasks`.
    fn run_tasks(&mut self, tasks: &mut [Task], which: &[usize], dry_run: bool) -> RunState {
        let mut state = RunState::Successful;
        if !dry_run {
            for &i in which {
                if tasks[i].is_hook() && tasks[i].pending() && tasks[i].live.is_some() {
                    let mut t = tasks[i].clone();
                    if let Err(e) = self.remove_hook_finalizer(&mut t) {
                        state = RunState::Failed;
                        let s = t.sync_status.clone();
                        // sync_context.go, runTasks.
                        self.set_result(
                            &mut t,
                            &s,
                            Some(OpPhase::Error),
                            &format!("failed to remove hook finalizer: {e}"),
                        );
                    }
                    tasks[i] = t;
                }
            }
        }
        if state != RunState::Successful {
            return state;
        }
        let (prunes, creates): (Vec<usize>, Vec<usize>) =
            which.iter().partition(|&&i| tasks[i].is_prune());
        for i in prunes {
            let (status, message) = self.prune(&tasks[i], dry_run);
            if status == "SyncFailed" {
                state = RunState::Failed;
            }
            if !dry_run || status == "SyncFailed" {
                let op = match status {
                    "SyncFailed" => OpPhase::Failed,
                    _ => OpPhase::Succeeded,
                };
                self.set_result(&mut tasks[i], status, Some(op), &message);
            }
        }
        if state != RunState::Successful {
            return state;
        }
        let deleting: Vec<usize> = creates
            .iter()
            .copied()
            .filter(|&i| tasks[i].delete_before_creation())
            .collect();
        if !deleting.is_empty() && !dry_run {
            for i in deleting {
                match self.delete(&tasks[i]) {
                    Ok(()) => state = RunState::Pending,
                    Err(e) => {
                        state = RunState::Failed;
                        let s = tasks[i].sync_status.clone();
                        self.set_result(
                            &mut tasks[i],
                            &s,
                            Some(OpPhase::Error),
                            &format!("failed to delete resource: {e}"),
                        );
                    }
                }
            }
        }
        if state != RunState::Successful {
            return state;
        }
        for i in creates {
            if dry_run && tasks[i].skip_dry_run {
                continue;
            }
            let (status, message) = self.apply(&tasks[i], dry_run);
            if status == "SyncFailed" {
                state = RunState::Failed;
            }
            if !dry_run || status == "SyncFailed" {
                let op = if status == "SyncFailed" {
                    OpPhase::Failed
                } else {
                    OpPhase::Running
                };
                self.set_result(&mut tasks[i], status, Some(op), &message);
            }
        }
        state
    }

    /// `executeSyncFailPhase`; returns whether the operation completed.
    fn sync_fail_phase(
        &mut self,
        tasks: &mut [Task],
        fail_tasks: &[usize],
        failed: &[usize],
        message: &str,
    ) -> bool {
        // sync_context.go, executeSyncFailPhase: `%s, reason: %s` with the distinct messages.
        let with_reasons = |tasks: &[Task], which: &[usize], message: &str| {
            let mut msgs: Vec<String> = Vec::new();
            for &i in which {
                if !msgs.contains(&tasks[i].message) {
                    msgs.push(tasks[i].message.clone());
                }
            }
            if msgs.is_empty() {
                message.to_owned()
            } else {
                format!("{message}, reason: {}", msgs.join(","))
            }
        };
        let mut error = with_reasons(tasks, failed, message);
        if fail_tasks.is_empty() {
            self.set_phase(OpPhase::Failed, error);
            return true;
        }
        if fail_tasks.iter().all(|&i| tasks[i].completed()) {
            let failed_fail: Vec<usize> = fail_tasks
                .iter()
                .copied()
                .filter(|&i| tasks[i].sync_status == "SyncFailed")
                .collect();
            if !failed_fail.is_empty() {
                let m = with_reasons(tasks, &failed_fail, "one or more SyncFail hooks failed");
                error = format!("{error}\n{m}");
            }
            self.set_phase(OpPhase::Failed, error);
            return true;
        }
        let pending: Vec<usize> = fail_tasks
            .iter()
            .copied()
            .filter(|&i| !tasks[i].completed() && !tasks[i].running())
            .collect();
        self.run_tasks(tasks, &pending, false);
        let refs: Vec<&Task> = pending.iter().map(|&i| &tasks[i]).collect();
        let refs: Vec<Task> = refs.into_iter().cloned().collect();
        let refs: Vec<&Task> = refs.iter().collect();
        self.set_running_phase(&refs, false);
        false
    }
}

/// The served-kind check of `getSyncTasks`: `None` when the kind is served, else the error
/// gitops-engine's discovery gives (pkg/utils/kube/kube.go, `ServerResourceForGroupVersionKind`).
fn discovery_error(client: &Client, api_version: &str, kind: &str) -> Option<String> {
    if client.resource(api_version, kind).is_some() {
        return None;
    }
    let (group, version) = group_version(api_version);
    let gv_served = client
        .store()
        .resources()
        .iter()
        .any(|r| r.group == group && r.version == version);
    if gv_served {
        // apierrors.NewNotFound(GroupResource{Group, Resource: Kind}, ""): `%s %q not found`.
        let gr = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        Some(format!("{gr} \"\" not found"))
    } else {
        // kube.go: `failed to discover server resources for group version %s: %w`, around
        // discovery's NotFound (`the server could not find the requested resource`).
        Some(format!(
            "failed to discover server resources for group version {api_version}: the server could not find the requested resource"
        ))
    }
}

/// One pass of the sync (`syncContext.Sync`), from the results recorded so far.
#[must_use]
pub fn step(input: &SyncInput<'_>, previous: Vec<ResourceResult>) -> StepOutcome {
    let mut cx = Ctx {
        input,
        results: previous,
        phase: OpPhase::Running,
        message: String::new(),
    };
    let (mut tasks, ok) = sync_tasks(&mut cx);
    if !ok {
        // sync_context.go, Sync: the distinct messages of the failed results, sorted.
        let mut errs: Vec<String> = cx
            .results
            .iter()
            .filter(|r| r.status == "SyncFailed" && !r.message.is_empty())
            .map(|r| r.message.clone())
            .collect();
        errs.sort();
        errs.dedup();
        let mut msg = "one or more synchronization tasks are not valid".to_owned();
        if !errs.is_empty() {
            msg = format!("{msg}: {}", errs.join("; "));
        }
        cx.set_phase(OpPhase::Failed, msg);
        return cx.finish();
    }
    let started = !cx.results.is_empty();
    if !started {
        let all: Vec<usize> = (0..tasks.len()).collect();
        if cx.run_tasks(&mut tasks, &all, true) == RunState::Failed {
            // sync_context.go, Sync.
            cx.set_phase(
                OpPhase::Failed,
                "one or more objects failed to apply (dry run)",
            );
            return cx.finish();
        }
    }
    // Running tasks with a live object: hooks by their phase, resources by their health.
    for task in &mut tasks {
        if !(task.running() && task.live.is_some()) {
            continue;
        }
        let live = task.live.clone().unwrap_or_default();
        let status = task.sync_status.clone();
        if task.is_hook() {
            let (op, msg) = cx.hook_phase(&live);
            cx.set_result(task, &status, Some(op), &msg);
        } else {
            match (input.health)(&live) {
                None => {
                    let m = task.message.clone();
                    cx.set_result(task, &status, Some(OpPhase::Succeeded), &m);
                }
                Some(h) if h.status == HealthStatus::Healthy => {
                    cx.set_result(task, &status, Some(OpPhase::Succeeded), &h.message);
                }
                Some(h) if h.status == HealthStatus::Degraded => {
                    cx.set_result(task, &status, Some(OpPhase::Failed), &h.message);
                }
                Some(_) => {}
            }
        }
    }
    let multi_step = multi_step(&tasks);
    let running: Vec<usize> = (0..tasks.len())
        .filter(|&i| (multi_step || tasks[i].is_hook()) && tasks[i].running())
        .collect();
    if !running.is_empty() {
        for &i in &running {
            if tasks[i].live.is_none() {
                let t = &tasks[i];
                let ns = Some(t.namespace()).filter(|n| !n.is_empty());
                if let Ok(Some(_)) = input.client.get(t.api_version(), t.kind(), ns, t.name()) {
                    continue;
                }
                // sync_context.go, Sync.
                let msg = format!(
                    "Resource {}/{}/{} is missing, it might have been deleted",
                    t.group(),
                    t.kind(),
                    t.name()
                );
                cx.set_result(&mut tasks[i], "SyncFailed", Some(OpPhase::Error), &msg);
            }
        }
        let refs: Vec<&Task> = running.iter().map(|&i| &tasks[i]).collect();
        cx.set_running_phase(&refs, false);
        return cx.finish();
    }
    let pruned_pending: Vec<&Task> = tasks
        .iter()
        .filter(|t| {
            t.sync_status == "Pruned"
                && t.live
                    .as_ref()
                    .is_some_and(|l| !l["metadata"]["deletionTimestamp"].is_null())
        })
        .collect();
    if !pruned_pending.is_empty() {
        let owned: Vec<Task> = pruned_pending.into_iter().cloned().collect();
        let refs: Vec<&Task> = owned.iter().collect();
        cx.set_running_phase(&refs, true);
        return cx.finish();
    }
    for task in &mut tasks {
        if task.is_hook() && task.completed() {
            let mut t = task.clone();
            if let Err(e) = cx.remove_hook_finalizer(&mut t) {
                let s = t.sync_status.clone();
                // sync_context.go, Sync.
                cx.set_result(
                    &mut t,
                    &s,
                    Some(OpPhase::Error),
                    &format!("Failed to remove hook finalizer: {e}"),
                );
            }
            *task = t;
        }
    }
    let del_ok: Vec<usize> = (0..tasks.len())
        .filter(|&i| tasks[i].is_hook() && !tasks[i].running() && tasks[i].delete_on_success())
        .collect();
    let del_failed: Vec<usize> = (0..tasks.len())
        .filter(|&i| tasks[i].is_hook() && !tasks[i].running() && tasks[i].delete_on_failure())
        .collect();
    let (fail_tasks, main): (Vec<usize>, Vec<usize>) =
        (0..tasks.len()).partition(|&i| tasks[i].phase == SyncPhase::SyncFail);
    let sync_failed: Vec<usize> = main
        .iter()
        .copied()
        .filter(|&i| tasks[i].sync_status == "SyncFailed")
        .collect();
    if main
        .iter()
        .any(|&i| tasks[i].completed() && !tasks[i].successful())
    {
        cx.delete_hooks(&mut tasks, &del_failed);
        cx.sync_fail_phase(
            &mut tasks,
            &fail_tasks,
            &sync_failed,
            // sync_context.go, Sync.
            "one or more synchronization tasks completed unsuccessfully",
        );
        return cx.finish();
    }
    let pending: Vec<usize> = main.into_iter().filter(|&i| tasks[i].pending()).collect();
    if pending.is_empty() {
        cx.delete_hooks(&mut tasks, &del_ok);
        // sync_context.go, Sync.
        cx.set_phase(OpPhase::Succeeded, "successfully synced (no more tasks)");
        return cx.finish();
    }
    let (phase, wave) = (tasks[pending[0]].phase, tasks[pending[0]].wave());
    let (current, remaining): (Vec<usize>, Vec<usize>) = pending
        .iter()
        .partition(|&&i| tasks[i].phase == phase && tasks[i].wave() == wave);
    // sync_context.go, Sync.
    cx.set_phase(OpPhase::Running, "one or more tasks are running");
    match cx.run_tasks(&mut tasks, &current, false) {
        RunState::Failed => {
            let failed_now: Vec<usize> = current
                .iter()
                .copied()
                .filter(|&i| tasks[i].sync_status == "SyncFailed")
                .collect();
            let running_hooks: Vec<usize> = current
                .iter()
                .copied()
                .filter(|&i| tasks[i].running())
                .collect();
            if running_hooks.is_empty() {
                // sync_context.go, Sync: `one or more objects failed to apply`.
                if cx.sync_fail_phase(
                    &mut tasks,
                    &fail_tasks,
                    &failed_now,
                    "one or more objects failed to apply",
                ) {
                    cx.delete_hooks(&mut tasks, &del_failed);
                }
            } else {
                let mut waiting = running_hooks;
                if !fail_tasks.is_empty()
                    && !cx.sync_fail_phase(
                        &mut tasks,
                        &fail_tasks,
                        &failed_now,
                        "one or more objects failed to apply",
                    )
                {
                    waiting.extend(fail_tasks.iter().copied());
                }
                let owned: Vec<Task> = waiting.iter().map(|&i| tasks[i].clone()).collect();
                let refs: Vec<&Task> = owned.iter().collect();
                cx.set_running_phase(&refs, false);
            }
        }
        RunState::Successful => {
            if remaining.is_empty() && !current.iter().any(|&i| tasks[i].is_hook()) {
                cx.delete_hooks(&mut tasks, &del_ok);
                // sync_context.go, Sync.
                cx.set_phase(OpPhase::Succeeded, "successfully synced (all tasks run)");
            } else {
                let owned: Vec<Task> = current.iter().map(|&i| tasks[i].clone()).collect();
                let refs: Vec<&Task> = owned.iter().collect();
                cx.set_running_phase(&refs, false);
            }
        }
        RunState::Pending => {
            let owned: Vec<Task> = current
                .iter()
                .map(|&i| tasks[i].clone())
                .filter(|t| t.delete_before_creation() || (t.is_prune() && t.pending()))
                .collect();
            let refs: Vec<&Task> = owned.iter().collect();
            cx.set_running_phase(&refs, true);
        }
    }
    cx.finish()
}

impl Ctx<'_> {
    fn finish(self) -> StepOutcome {
        StepOutcome {
            phase: self.phase,
            message: self.message,
            results: self.results,
        }
    }
}

fn multi_step(tasks: &[Task]) -> bool {
    match (tasks.first(), tasks.last()) {
        (Some(a), Some(b)) => a.wave() != b.wave() || a.phase != b.phase,
        _ => false,
    }
}

/// `getSyncTasks`: the tasks, sorted, with the results so far; `false` when one is invalid.
fn sync_tasks(cx: &mut Ctx<'_>) -> (Vec<Task>, bool) {
    let input = cx.input;
    let mut tasks = Vec::new();
    for r in input.resources {
        let obj = r.target.as_ref().or(r.live.as_ref());
        let Some(obj) = obj else { continue };
        if is_hook(obj) {
            continue;
        }
        for phase in sync_phases(obj) {
            tasks.push(new_task(phase, r.target.clone(), r.live.clone()));
        }
    }
    for hook in input.hooks {
        for phase in sync_phases(hook) {
            let mut target = hook.clone();
            if str_of(&target, "/metadata/name").is_empty() {
                // sync_context.go, getSyncTasks: `<generateName><rev[0:7]>-<phase>-<startedAt unix>`.
                let rev = if input.revision.len() >= 8 {
                    &input.revision[..7]
                } else {
                    input.revision
                };
                let postfix =
                    format!("{rev}-{}-{}", phase.as_str(), input.started_unix).to_lowercase();
                let gen_name = str_of(&target, "/metadata/generateName").to_owned();
                target["metadata"]["name"] = json!(format!("{gen_name}{postfix}"));
            }
            let has = target["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == HOOK_FINALIZER));
            if !has {
                let mut f = target["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                f.push(json!(HOOK_FINALIZER));
                target["metadata"]["finalizers"] = json!(f);
            }
            tasks.push(new_task(phase, Some(target), None));
        }
    }
    for t in &mut tasks {
        if let Some(target) = &mut t.target
            && str_of(target, "/metadata/namespace").is_empty()
            && !input.namespace.is_empty()
        {
            target["metadata"]["namespace"] = json!(input.namespace);
        }
    }
    for t in &mut tasks {
        if t.live.is_some() {
            continue;
        }
        let Some(target) = &t.target else { continue };
        let (g, _) = group_version(str_of(target, "/apiVersion"));
        let kind = str_of(target, "/kind");
        let name = str_of(target, "/metadata/name");
        let ns = str_of(target, "/metadata/namespace");
        t.live = input
            .resources
            .iter()
            .find(|r| {
                r.group == g
                    && r.kind == kind
                    && r.name == name
                    && (r.namespace.is_empty() || r.namespace == ns)
            })
            .and_then(|r| r.live.clone());
    }
    let crds: Vec<(String, String)> = input
        .resources
        .iter()
        .filter_map(|r| r.target.as_ref())
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| {
            (
                str_of(o, "/spec/group").to_owned(),
                str_of(o, "/spec/names/kind").to_owned(),
            )
        })
        .collect();
    let mut ok = true;
    for task in &mut tasks {
        let (api_version, kind) = (task.api_version().to_owned(), task.kind().to_owned());
        if let Some(err) = discovery_error(input.client, &api_version, &kind) {
            let group = task.group().to_owned();
            let skip_option = task.target.as_ref().is_some_and(|t| {
                csv(t, SYNC_OPTIONS)
                    .iter()
                    .any(|o| o == "SkipDryRunOnMissingResource=true")
            });
            if skip_option || crds.iter().any(|(g, k)| *g == group && *k == kind) {
                task.skip_dry_run = true;
            } else {
                let mut t = task.clone();
                cx.set_result(&mut t, "SyncFailed", None, &err);
                *task = t;
                ok = false;
            }
        }
    }
    // Prune tasks run in the reverse order of their waves.
    let mut prune_waves: Vec<i64> = tasks
        .iter()
        .filter(|t| t.is_prune())
        .map(Task::wave)
        .collect();
    prune_waves.sort_unstable();
    prune_waves.dedup();
    let n = prune_waves.len();
    for t in tasks.iter_mut().filter(|t| t.is_prune()) {
        if let Some(pos) = prune_waves.iter().position(|w| *w == t.wave()) {
            t.wave_override = Some(prune_waves[n - 1 - pos]);
        }
    }
    tasks.sort_by(|a, b| {
        a.phase
            .cmp(&b.phase)
            .then(a.wave().cmp(&b.wave()))
            .then(kind_order(a.kind()).cmp(&kind_order(b.kind())))
            .then(a.name().cmp(b.name()))
    });
    for t in &mut tasks {
        let key = t.result_key();
        if let Some(r) = cx.results.iter().find(|r| r.key() == key) {
            t.sync_status = r.status.clone();
            t.op_state = OpPhase::parse(&r.hook_phase);
            t.message = r.message.clone();
        }
    }
    (tasks, ok)
}

fn new_task(phase: SyncPhase, target: Option<Value>, live: Option<Value>) -> Task {
    Task {
        phase,
        target,
        live,
        wave_override: None,
        skip_dry_run: false,
        sync_status: String::new(),
        op_state: None,
        message: String::new(),
    }
}
