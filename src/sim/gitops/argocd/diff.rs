//! Whether a live object matches what Git wants, as Argo CD's comparison decides it
//! (gitops-engine `pkg/diff`, controller/state.go `CompareAppState`), with the normalisations
//! that matter: fields the API server defaults, `ignoreDifferences`, and the structured merge
//! diff whose failure becomes a `ComparisonError`.
//!
//! Which diff runs (controller/state.go `CompareAppState`, v3.5.1):
//!
//! - by default the legacy diff (gitops-engine pkg/diff/diff.go `Diff`): a three-way diff
//!   against the live object's `kubectl.kubernetes.io/last-applied-configuration`
//!   (`ThreeWayDiff`), or a two-way one with the configuration standing in for it when there
//!   is none (`TwoWayDiff`). Server-side diff is off by default: the controller's
//!   `--server-side-diff-enabled` flag defaults to false
//!   (cmd/argocd-application-controller/commands/argocd_application_controller.go), and an
//!   Application turns it on only with the annotation
//!   `argocd.argoproj.io/compare-options: ServerSideDiff=true`; it is not modelled here (it
//!   needs a dry-run server-side apply per resource).
//! - the structured merge diff (`StructuredMergeDiff`) when the Application syncs with
//!   `ServerSideApply=true` ([`DiffOptions::structured`]) or the resource itself carries
//!   `argocd.argoproj.io/sync-options: ServerSideApply=true`.
//!
//! The three-way diff predicts the live object after applying the configuration and compares
//! the prediction with the live object. For built-in kinds the prediction follows a strategic
//! merge (`threeWayMergePatch`: merge keys and strategies from the published OpenAPI schemas,
//! `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`) and then the scheme's
//! defaults (`applyPatch`); for other kinds a JSON merge over the live object reduced to the
//! fields the last applied configuration names (`jsonutil.RemoveMapFields`). A field the
//! configuration does not name is therefore never drift; a field it names with a value the
//! server drops or changes is (a gRPC probe's `service: ""` against a live probe without it).
//!
//! Left out: gitops-engine's `remarshal` through the Go types (which drops `omitempty` zero
//! values such as `imagePullPolicy: ""` from the configuration before comparing), server-side
//! diff, the diff cache's reuse of earlier results, and, in the structured merge diff, the
//! removal of fields Argo CD applied before and no longer names.

use serde_json::{Map, Value};

use super::SyncStatus;
use crate::sim::store::Store;

/// The annotation client-side apply keeps the applied configuration in
/// (gitops-engine pkg/diff/diff.go `AnnotationLastAppliedConfig`).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The annotation Argo CD tracks its resources with (common/common.go
/// `AnnotationKeyAppInstance`; annotation tracking is the v3 default).
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";

/// The label the legacy label tracking wrote (common/common.go `LabelKeyAppInstance`).
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// A resource's sync options (gitops-engine pkg/diff/diff.go `Diff`, `syncOptAnnotation`).
const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";

/// What changes the comparison of one Application.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions<'a> {
    /// `spec.ignoreDifferences` of the Application.
    pub ignore_differences: &'a [Value],
    /// `ServerSideApply=true` among the sync options: the diff is a structured merge diff
    /// against the resource's schema.
    pub structured: bool,
    /// The controller reused its diff cache for this comparison (controller/state.go
    /// `useDiffCache`): a failure is then worded `failed to calculate diff from cache`
    /// (util/argo/diff/diff.go `StateDiffs`).
    pub from_cache: bool,
}

/// Compares the object Git wants with the live one (`None`: it does not exist).
///
/// The caller sets the tracking annotation on `target` first, as controller/state.go
/// (`CompareAppState`, `SetAppInstance`) does; a live object carrying the same value then
/// matches, and one carrying another Application's value does not.
///
/// # Errors
/// The diff failure's message, the whole message of the `ComparisonError` condition Argo CD
/// reports (controller/state.go `CompareAppState`).
pub fn compare(
    store: &Store,
    target: &Value,
    live: Option<&Value>,
    opts: &DiffOptions<'_>,
) -> Result<SyncStatus, String> {
    let Some(live) = live else {
        // gitops-engine pkg/diff/diff.go `handleResourceCreateOrDeleteDiff`: a missing live
        // object is always modified.
        return Ok(SyncStatus::OutOfSync);
    };
    let modified = diff(store, target, live, opts).map_err(|e| {
        // util/argo/diff/diff.go (`StateDiffs`) and controller/state.go (`CompareAppState`).
        let step = if opts.from_cache {
            "failed to calculate diff from cache"
        } else {
            "failed to calculate diff"
        };
        format!("Failed to compare desired state to live state: {step}: {e}")
    })?;
    Ok(if modified {
        SyncStatus::OutOfSync
    } else {
        SyncStatus::Synced
    })
}

/// gitops-engine pkg/diff/diff.go `Diff` after util/argo/diff/diff.go `preDiffNormalize`:
/// whether the prediction differs from the live object.
fn diff(
    store: &Store,
    target: &Value,
    live: &Value,
    opts: &DiffOptions<'_>,
) -> Result<bool, String> {
    let mut config = target.clone();
    let mut live = live.clone();
    normalize_tracking(&config, &mut live);
    normalize_managed_fields(&mut config, &mut live, opts.ignore_differences);
    normalize(&mut config, opts.ignore_differences);
    normalize(&mut live, opts.ignore_differences);

    let structured = opts.structured || has_option(&config, SYNC_OPTIONS, "ServerSideApply=true");
    if structured {
        return structured_merge_diff(store, &config, &live)
            .map_err(|e| format!("error calculating structured merge diff: {e}"));
    }
    Ok(three_way_diff(&config, &live, opts.ignore_differences))
}

/// `argocd.argoproj.io/sync-options`-style annotations: comma-separated options
/// (gitops-engine pkg/sync/resource/resource.go `HasAnnotationOption`).
fn has_option(obj: &Value, annotation: &str, option: &str) -> bool {
    obj["metadata"]["annotations"][annotation]
        .as_str()
        .is_some_and(|v| v.split(',').any(|o| o.trim() == option))
}

/// util/argo/resource_tracking.go `Normalize`: a live object labelled by the old label
/// tracking but without the tracking annotation gets the configuration's annotation, so that
/// moving to annotation tracking does not make everything OutOfSync.
fn normalize_tracking(config: &Value, live: &mut Value) {
    let labelled = live["metadata"]["labels"][INSTANCE_LABEL]
        .as_str()
        .is_some_and(|l| !l.is_empty());
    let is_crd = live["kind"] == "CustomResourceDefinition"
        && live["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"));
    if !labelled || is_crd || live["metadata"]["annotations"][TRACKING_ID].is_string() {
        return;
    }
    if let Some(wanted) = config["metadata"]["annotations"][TRACKING_ID].as_str() {
        let meta = obj_mut(live, "metadata");
        obj_mut(meta, "annotations")[TRACKING_ID] = Value::String(wanted.to_owned());
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    crate::sim::store::defaults::child(v, key)
}

fn group_kind(obj: &Value) -> (&str, &str) {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (group, obj["kind"].as_str().unwrap_or_default())
}

/// util/glob/glob.go `Match` as far as group and kind patterns need it: `*` matches any run
/// of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// The `ignoreDifferences` entries that apply to `obj` (util/argo/normalizers/
/// diff_normalizer.go `ignoreNormalizer.Normalize`: group and kind as globs, name and
/// namespace exact when set).
fn matching<'a>(ignore: &'a [Value], obj: &Value) -> impl Iterator<Item = &'a Value> {
    let (group, kind) = group_kind(obj);
    let (group, kind) = (group.to_owned(), kind.to_owned());
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let namespace = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ignore.iter().filter(move |rule| {
        let field = |f: &str| rule[f].as_str().unwrap_or_default();
        glob(field("group"), &group)
            && glob(field("kind"), &kind)
            && (field("name").is_empty() || field("name") == name)
            && (field("namespace").is_empty() || field("namespace") == namespace)
    })
}

/// gitops-engine pkg/diff/diff.go `Normalize`: drops `creationTimestamp`, folds a Secret's
/// `stringData`, empties Roles' empty rules, then applies the ignore normalizer: `/status` for
/// every kind (util/settings/settings.go `GetResourceOverrides`, `ignoreResourceStatusField`
/// defaulting to `all`) and the Application's `ignoreDifferences`.
fn normalize(obj: &mut Value, ignore: &[Value]) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("creationTimestamp");
    }
    match group_kind(obj) {
        ("", "Secret") => normalize_secret(obj),
        // `normalizeRole`: an empty rules list is no rules.
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole")
            if obj["rules"].as_array().is_some_and(Vec::is_empty) =>
        {
            obj["rules"] = Value::Null;
        }
        _ => {}
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    let rules: Vec<Value> = matching(ignore, obj).cloned().collect();
    for rule in rules {
        for pointer in rule["jsonPointers"].as_array().into_iter().flatten() {
            if let Some(p) = pointer.as_str() {
                remove_pointer(obj, p);
            }
        }
        for expr in rule["jqPathExpressions"].as_array().into_iter().flatten() {
            if let Some(path) = expr.as_str().and_then(parse_jq_path) {
                remove_jq(obj, &path);
            }
        }
    }
}

/// gitops-engine pkg/diff/diff.go `NormalizeSecret`: `stringData` moved into `data`
/// base64-encoded, and null data values made empty strings.
fn normalize_secret(obj: &mut Value) {
    use base64::Engine as _;
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        let data = obj_mut(obj, "data");
        if let Value::Object(data) = data {
            for (k, v) in string_data {
                let v = match v {
                    Value::String(s) => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(s))
                    }
                    other => other,
                };
                data.insert(k, v);
            }
        }
    }
    if let Some(data) = obj["data"].as_object_mut() {
        for v in data.values_mut() {
            if v.is_null() {
                *v = Value::String(String::new());
            }
        }
    }
}

/// An RFC 6901 `remove` that does nothing when the path is missing (the normalizer skips a
/// patch that fails).
fn remove_pointer(obj: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let unescape = |s: &str| s.replace("~1", "/").replace("~0", "~");
    let Some(parent) = obj.pointer_mut(parent) else {
        return;
    };
    let last = unescape(last);
    match parent {
        Value::Object(m) => {
            m.remove(&last);
        }
        Value::Array(a) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// One step of a jq path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name` or `["name"]`.
    Key(String),
    /// `[0]`.
    Index(usize),
    /// `[]`: every element.
    Each,
    /// `select(.a.b == "v")` (or a number, bool or null literal): the elements that match.
    Select(Vec<String>, Value),
}

/// The simple jq paths `jqPathExpressions` use: `.a.b`, `.a["b.c"]`, `.a[0]`, `.a[]` and
/// `| select(.k == "v")` filters. Anything else is not understood and ignored (the real
/// normalizer runs `del(<expression>)` through gojq).
fn parse_jq_path(expr: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in expr.split('|').map(str::trim) {
        if let Some(inner) = part
            .strip_prefix("select(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let (lhs, rhs) = inner.split_once("==")?;
            let path = parse_jq_path(lhs.trim())?;
            let keys = path
                .into_iter()
                .map(|s| match s {
                    Step::Key(k) => Some(k),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            let literal: Value = serde_json::from_str(rhs.trim()).ok()?;
            steps.push(Step::Select(keys, literal));
            continue;
        }
        let mut rest = part;
        if rest == "." {
            continue;
        }
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let (inside, after) = r.split_once(']')?;
                let inside = inside.trim();
                steps.push(if inside.is_empty() {
                    Step::Each
                } else if let Ok(i) = inside.parse::<usize>() {
                    Step::Index(i)
                } else {
                    Step::Key(serde_json::from_str::<String>(inside).ok()?)
                });
                rest = after;
            } else if let Some(r) = rest.strip_prefix('.') {
                if r.starts_with('[') {
                    rest = r;
                    continue;
                }
                if let Some(q) = r.strip_prefix('"') {
                    let (key, after) = q.split_once('"')?;
                    steps.push(Step::Key(key.to_owned()));
                    rest = after;
                    continue;
                }
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return None;
                }
                steps.push(Step::Key(key.to_owned()));
                rest = &r[end..];
            } else {
                return None;
            }
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// `del(path)`: removes every value the path reaches.
fn remove_jq(v: &mut Value, path: &[Step]) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    if let Step::Select(keys, literal) = step {
        let mut cur = &*v;
        for k in keys {
            cur = &cur[k.as_str()];
        }
        if cur == literal {
            if rest.is_empty() {
                *v = Value::Null;
            } else {
                remove_jq(v, rest);
            }
        }
        return;
    }
    if rest.is_empty() {
        match (step, v) {
            (Step::Key(k), Value::Object(m)) => {
                m.remove(k);
            }
            (Step::Index(i), Value::Array(a)) if *i < a.len() => {
                a.remove(*i);
            }
            (Step::Each, Value::Array(a)) => a.clear(),
            (Step::Each, Value::Object(m)) => m.clear(),
            _ => {}
        }
        return;
    }
    match (step, v) {
        (Step::Key(k), Value::Object(m)) => {
            if let Some(next) = m.get_mut(k) {
                remove_jq(next, rest);
            }
        }
        (Step::Index(i), Value::Array(a)) => {
            if let Some(next) = a.get_mut(*i) {
                remove_jq(next, rest);
            }
        }
        (Step::Each, Value::Array(a)) => {
            if let [Step::Select(..)] = rest {
                // `.list[] | select(...)` deletes the selected elements themselves.
                let Step::Select(keys, literal) = &rest[0] else {
                    return;
                };
                a.retain(|item| {
                    let mut cur = item;
                    for k in keys {
                        cur = &cur[k.as_str()];
                    }
                    cur != literal
                });
                return;
            }
            for next in a {
                remove_jq(next, rest);
            }
        }
        (Step::Each, Value::Object(m)) => {
            for next in m.values_mut() {
                remove_jq(next, rest);
            }
        }
        _ => {}
    }
}

/// util/argo/managedfields/managed_fields.go `Normalize`: the fields the trusted managers of
/// `managedFieldsManagers` own in the live object, where live and configuration disagree, are
/// dropped from both.
fn normalize_managed_fields(config: &mut Value, live: &mut Value, ignore: &[Value]) {
    let managers: Vec<String> = matching(ignore, config)
        .flat_map(|r| {
            r["managedFieldsManagers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    if managers.is_empty() {
        return;
    }
    let entries = live["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for entry in entries {
        if !entry["manager"]
            .as_str()
            .is_some_and(|m| managers.iter().any(|t| t == m))
        {
            continue;
        }
        drop_owned(&entry["fieldsV1"], config, live);
    }
}

/// Walks a `FieldsV1` set alongside both objects, removing owned leaves whose values differ.
fn drop_owned(set: &Value, config: &mut Value, live: &mut Value) {
    let Some(set) = set.as_object() else {
        return;
    };
    for (pe, sub) in set {
        if pe == "." {
            continue;
        }
        let leaf = sub.as_object().is_none_or(|m| m.keys().all(|k| k == "."));
        if let Some(name) = pe.strip_prefix("f:") {
            let (Some(c), Some(l)) = (config.as_object_mut(), live.as_object_mut()) else {
                continue;
            };
            match (c.get_mut(name), l.get_mut(name)) {
                (Some(cv), Some(lv)) if cv != lv => {
                    if leaf {
                        c.remove(name);
                        l.remove(name);
                    } else {
                        drop_owned(sub, cv, lv);
                    }
                }
                _ => {}
            }
        } else if let Some(key) = pe.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                continue;
            };
            let matches = |item: &Value| key.iter().all(|(k, v)| &item[k.as_str()] == v);
            let (Some(c), Some(l)) = (config.as_array_mut(), live.as_array_mut()) else {
                continue;
            };
            let (Some(ci), Some(li)) = (c.iter().position(&matches), l.iter().position(&matches))
            else {
                continue;
            };
            if c[ci] != l[li] {
                if leaf {
                    c.remove(ci);
                    l.remove(li);
                } else {
                    drop_owned(sub, &mut c[ci], &mut l[li]);
                }
            }
        }
    }
}

/// A schema node and the named schemas its `$ref`s point into (built-in kinds), or none.
#[derive(Clone, Copy)]
struct Schema<'s> {
    node: Option<&'s Value>,
    defs: Option<&'s Map<String, Value>>,
}

impl<'s> Schema<'s> {
    const NONE: Self = Self {
        node: None,
        defs: None,
    };

    fn at(self, node: Option<&'s Value>) -> Self {
        Self {
            node: self.resolve(node),
            defs: self.defs,
        }
    }

    /// Follows `$ref` and a single-entry `allOf` of one, as the published schemas write them.
    fn resolve(self, node: Option<&'s Value>) -> Option<&'s Value> {
        let (Some(defs), Some(mut s)) = (self.defs, node) else {
            return node;
        };
        for _ in 0..8 {
            let target = s["$ref"].as_str().or_else(|| match &s["allOf"] {
                Value::Array(all) if all.len() == 1 => all[0]["$ref"].as_str(),
                _ => None,
            });
            let Some(next) = target
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(|n| defs.get(n))
            else {
                break;
            };
            s = next;
        }
        Some(s)
    }

    /// The schema of field `key` of an object (or of a map's values).
    fn field(self, key: &str) -> Self {
        let Some(node) = self.node else {
            return Self::NONE;
        };
        let raw = node["properties"]
            .get(key)
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
        // The list's merge metadata sits on the property itself, before any `$ref`.
        Self {
            node: raw,
            defs: self.defs,
        }
    }

    fn items(self) -> Self {
        self.at(self.node.and_then(|n| n.get("items")))
    }

    fn resolved(self) -> Self {
        self.at(self.node)
    }

    fn ext(self, name: &str) -> Option<&'s Value> {
        self.node.and_then(|n| n.get(name))
    }
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq)]
enum ListRule {
    /// Replaced whole.
    Atomic,
    /// Items merged by these key fields.
    Keyed(Vec<String>),
    /// Scalars merged as a set.
    Set,
}

/// Which merge the prediction follows.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Strategic merge (built-in kinds): `x-kubernetes-patch-strategy`/`-merge-key`.
    Strategic,
    /// JSON merge (other kinds): lists are atomic, compared with the live list reduced to
    /// what the last applied configuration names.
    Json,
    /// Structured merge (server-side apply): `x-kubernetes-list-type`/`-list-map-keys`.
    Structured,
}

fn list_rule(mode: Mode, field: Schema<'_>, config: &[Value]) -> ListRule {
    let scalars = config.iter().all(|v| !v.is_object());
    match mode {
        Mode::Json => ListRule::Atomic,
        Mode::Strategic => {
            let merge = field
                .ext("x-kubernetes-patch-strategy")
                .and_then(Value::as_str)
                .is_some_and(|s| s.split(',').any(|p| p == "merge"));
            let key = field
                .ext("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str);
            match (merge, key) {
                (true, Some(k)) if !scalars => ListRule::Keyed(vec![k.to_owned()]),
                (true, _) if scalars => ListRule::Set,
                _ => ListRule::Atomic,
            }
        }
        Mode::Structured => match field.ext("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => ListRule::Keyed(
                field
                    .ext("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect(),
            ),
            Some("set") => ListRule::Set,
            _ => ListRule::Atomic,
        },
    }
}

/// gitops-engine pkg/utils/json/json.go `RemoveMapFields`/`RemoveListFields`: `live` reduced
/// to the fields `config` names (list items by position, extra items kept).
fn remove_fields(config: &Value, live: &Value) -> Value {
    match (config, live) {
        (Value::Object(c), Value::Object(l)) => Value::Object(
            c.iter()
                .filter_map(|(k, cv)| {
                    l.get(k).map(|lv| {
                        let v = if lv.is_null() {
                            Value::Null
                        } else {
                            remove_fields(cv, lv)
                        };
                        (k.clone(), v)
                    })
                })
                .collect(),
        ),
        (Value::Array(c), Value::Array(l)) => Value::Array(
            l.iter()
                .enumerate()
                .map(|(i, lv)| match c.get(i) {
                    Some(cv) if !lv.is_null() => remove_fields(cv, lv),
                    _ => lv.clone(),
                })
                .collect(),
        ),
        _ => live.clone(),
    }
}

/// The live object after applying `config` with `orig` as the configuration applied before:
/// fields `config` names take its values (objects merge, lists by their rule), fields `orig`
/// named and `config` no longer does are removed, everything else stays.
fn predict(
    mode: Mode,
    schema: Schema<'_>,
    orig: Option<&Value>,
    config: &Value,
    live: &Value,
) -> Value {
    let (Value::Object(c), Value::Object(l)) = (config, live) else {
        return config.clone();
    };
    let schema = schema.resolved();
    let mut out = l.clone();
    for (k, cv) in c {
        let field = schema.field(k);
        let ov = orig.and_then(|o| o.get(k));
        match (cv, l.get(k)) {
            (Value::Null, _) => {
                out.remove(k);
            }
            (Value::Object(_), Some(lv @ Value::Object(_))) => {
                out.insert(k.clone(), predict(mode, field, ov, cv, lv));
            }
            (Value::Array(ca), Some(Value::Array(la))) => {
                let merged = match list_rule(mode, field, ca) {
                    ListRule::Atomic if mode == Mode::Json => {
                        // `CreateThreeWayJSONMergePatch` against the reduced live object:
                        // the list is only replaced when it differs there.
                        let reduced = ov.map(|o| remove_fields(o, &Value::Array(la.clone())));
                        if reduced.as_ref() == Some(cv) {
                            Value::Array(la.clone())
                        } else {
                            cv.clone()
                        }
                    }
                    ListRule::Atomic => cv.clone(),
                    ListRule::Set => {
                        let removed: Vec<&Value> = ov
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter(|o| !ca.contains(o))
                            .collect();
                        let mut items: Vec<Value> = la
                            .iter()
                            .filter(|v| !removed.contains(v))
                            .cloned()
                            .collect();
                        for v in ca {
                            if !items.contains(v) {
                                items.push(v.clone());
                            }
                        }
                        Value::Array(items)
                    }
                    ListRule::Keyed(keys) => merge_keyed(mode, field.items(), &keys, ov, ca, la),
                };
                out.insert(k.clone(), merged);
            }
            _ => {
                out.insert(k.clone(), cv.clone());
            }
        }
    }
    if let Some(Value::Object(o)) = orig {
        for k in o.keys() {
            if !c.contains_key(k) {
                out.remove(k);
            }
        }
    }
    Value::Object(out)
}

fn merge_keyed(
    mode: Mode,
    items: Schema<'_>,
    keys: &[String],
    orig: Option<&Value>,
    config: &[Value],
    live: &[Value],
) -> Value {
    let id = |v: &Value| -> Vec<Value> { keys.iter().map(|k| v[k.as_str()].clone()).collect() };
    let orig_items = orig.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out: Vec<Value> = live
        .iter()
        .filter(|l| {
            let lid = id(l);
            // An item the previous configuration had and this one dropped is deleted.
            !orig_items.iter().any(|o| id(o) == lid) || config.iter().any(|c| id(c) == lid)
        })
        .cloned()
        .collect();
    for ci in config {
        let cid = id(ci);
        let oi = orig_items.iter().find(|o| id(o) == cid);
        match out.iter().position(|l| id(l) == cid) {
            Some(p) => out[p] = predict(mode, items, oi, ci, &out[p]),
            None => out.push(ci.clone()),
        }
    }
    Value::Array(out)
}

/// gitops-engine pkg/diff/diff.go `removeNamespaceAnnotation`.
fn remove_namespace_annotation(obj: &mut Value) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("namespace");
        if meta
            .get("annotations")
            .is_some_and(|a| a.is_null() || a.as_object().is_some_and(Map::is_empty))
        {
            meta.remove("annotations");
        }
    }
}

/// The built-in kind's published schema, when it is one (the kinds client-go's scheme knows).
fn builtin(obj: &Value) -> Option<Schema<'static>> {
    let api_version = obj["apiVersion"].as_str()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (schema, defs) =
        crate::sim::api::openapi::builtin_schema(group, version, obj["kind"].as_str()?)?;
    Some(Schema {
        node: Some(schema),
        defs: Some(defs),
    })
}

/// gitops-engine pkg/diff/diff.go `Diff` (legacy path): `ThreeWayDiff` with the last applied
/// configuration when the live object has a readable one, else `TwoWayDiff`.
fn three_way_diff(config: &Value, live: &Value, ignore: &[Value]) -> bool {
    let orig = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(Value::is_object);
    let mut orig = orig.map_or_else(
        || config.clone(),
        |mut o| {
            // `Normalize(orig, opts...)`: the same normalizer, ignore rules included.
            normalize(&mut o, ignore);
            o
        },
    );
    let mut config = config.clone();
    remove_namespace_annotation(&mut orig);
    remove_namespace_annotation(&mut config);

    let (group, kind) = group_kind(&config);
    let (group, kind) = (group.to_owned(), kind.to_owned());
    let (mode, schema, base) = match builtin(&config) {
        Some(schema) => {
            let mut base = live.clone();
            if (group == "apps" || group == "extensions") && kind == "StatefulSet" {
                // `statefulSetWorkaround`: the server's defaults inside volumeClaimTemplates
                // cannot be reproduced, so they are dropped from the live object.
                if let (Some(o), Some(l)) = (
                    orig["spec"]["volumeClaimTemplates"].as_array(),
                    base["spec"]["volumeClaimTemplates"].as_array(),
                ) {
                    let reduced = remove_fields(&Value::Array(o.clone()), &Value::Array(l.clone()));
                    base["spec"]["volumeClaimTemplates"] = reduced;
                }
            }
            (Mode::Strategic, schema, base)
        }
        None => (Mode::Json, Schema::NONE, live.clone()),
    };
    let mut predicted = predict(mode, schema, Some(&orig), &config, &base);
    let mut live = live.clone();
    if mode == Mode::Strategic {
        // `applyPatch`: the scheme's defaults go into the prediction and the live object.
        crate::sim::store::defaults::apply(&group, &kind, &mut predicted);
        crate::sim::store::defaults::apply(&group, &kind, &mut live);
        for v in [&mut predicted, &mut live] {
            if let Some(m) = v.as_object_mut() {
                m.remove("status");
            }
        }
    }
    predicted != live
}

/// The schema the structured merge diff types objects with: a built-in kind's published one,
/// or the served version's `openAPIV3Schema` of a custom resource's CRD (as the API server
/// looks them up: src/sim/api/objects.rs `Ctx::schema`).
enum TypeSchema {
    Builtin(Schema<'static>),
    Custom(Value),
    /// A CRD keeping unknown fields (`preserveUnknownFields`): every field is declared.
    Open,
}

fn type_schema(store: &Store, obj: &Value) -> Option<TypeSchema> {
    if let Some(s) = builtin(obj) {
        return Some(TypeSchema::Builtin(s));
    }
    let res = store.resource_for_kind(obj["apiVersion"].as_str()?, obj["kind"].as_str()?)?;
    let crd_res = store.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let crd = store
        .get(&crd_res, None, &format!("{}.{}", res.plural, res.group))
        .ok()?;
    if crd["spec"]["preserveUnknownFields"] == Value::Bool(true) {
        return Some(TypeSchema::Open);
    }
    crate::sim::store::pruning::crd_schema(&crd, &res.version)
        .cloned()
        .map(TypeSchema::Custom)
}

/// sigs.k8s.io/structured-merge-diff typed `ValidationErrors.Error`: one error as
/// `<path>: <message>`, several as `errors:` and one indented line each.
fn validation_errors(paths: &[String]) -> String {
    let lines: Vec<String> = paths
        .iter()
        .map(|p| format!(".{p}: field not declared in schema"))
        .collect();
    if let [one] = lines.as_slice() {
        return one.clone();
    }
    let mut all = vec!["errors:".to_owned()];
    all.extend(lines.iter().map(|l| format!("  {l}")));
    all.join("\n")
}

/// The fields of `obj` its schema does not declare (what `ParseableType.FromUnstructured`
/// refuses), by the same walk the API server prunes with.
fn undeclared(schema: &TypeSchema, obj: &Value) -> Vec<String> {
    let mut copy = obj.clone();
    match schema {
        TypeSchema::Builtin(s) => match (s.node, s.defs) {
            (Some(node), Some(defs)) => {
                crate::sim::store::pruning::unknown_builtin_fields(&mut copy, node, defs)
            }
            _ => Vec::new(),
        },
        TypeSchema::Custom(s) => crate::sim::store::pruning::prune(&mut copy, s),
        TypeSchema::Open => Vec::new(),
    }
}

/// gitops-engine pkg/diff/diff.go `StructuredMergeDiff`/`structuredMergeDiff`.
fn structured_merge_diff(store: &Store, config: &Value, live: &Value) -> Result<bool, String> {
    let Some(schema) = type_schema(store, config) else {
        let api_version = config["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        // schema.GroupVersionKind's String(): `group/version, Kind=kind`.
        return Err(format!(
            "unable to resolve parseableType for GroupVersionKind: {group}/{version}, Kind={}",
            config["kind"].as_str().unwrap_or_default()
        ));
    };
    let unknown = undeclared(&schema, live);
    if !unknown.is_empty() {
        return Err(format!(
            "error building typed value from live resource: {}",
            validation_errors(&unknown)
        ));
    }
    let unknown = undeclared(&schema, config);
    if !unknown.is_empty() {
        return Err(format!(
            "error building typed value from config resource: {}",
            validation_errors(&unknown)
        ));
    }
    let walk = match &schema {
        TypeSchema::Builtin(s) => *s,
        TypeSchema::Custom(s) => Schema {
            node: Some(s),
            defs: None,
        },
        TypeSchema::Open => Schema::NONE,
    };
    let mut predicted = predict(Mode::Structured, walk, None, config, live);
    let mut live = live.clone();
    for v in [&mut predicted, &mut live] {
        // `normalizeTypedValue`: no last-applied annotation, the scheme's defaults.
        if let Some(a) = v["metadata"]["annotations"].as_object_mut() {
            a.remove(LAST_APPLIED);
        }
        if matches!(schema, TypeSchema::Builtin(_)) {
            let (group, kind) = group_kind(config);
            let (group, kind) = (group.to_owned(), kind.to_owned());
            crate::sim::store::defaults::apply(&group, &kind, v);
            if let Some(m) = v.as_object_mut() {
                m.remove("status");
            }
        }
    }
    Ok(predicted != live)
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
