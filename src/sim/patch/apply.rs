//! Server-side apply (`application/apply-patch+yaml`) and the `metadata.managedFields`
//! bookkeeping of every write.
//!
//! This follows k8s.io/apimachinery/pkg/util/managedfields (the field manager chain: strip
//! meta, managed-fields updater, last-applied manager and updater) over
//! sigs.k8s.io/structured-merge-diff v4.4.2 (typed merge, compare, field sets, prune,
//! conflicts). Built-in kinds use the list types and map keys of their Go types; other kinds
//! use the deduced schema of custom resources without a schema (maps granular, lists atomic).

use serde_json::{Map, Value};

use super::fieldset::{self, Path, Pe, Set};
use super::schema::{Field, Struct, Ty, kind_schema};
use super::{ConflictCause, PatchError, PatchRequest, gofmt};

/// The last-applied annotation of client-side apply.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The type of a position in an object, as structured-merge-diff resolves it.
#[derive(Debug, Clone, Copy)]
enum T {
    /// No schema: maps are granular, lists atomic.
    Deduced,
    Scalar,
    Struct(&'static Struct, bool),
    Map(&'static Ty, bool),
    List(&'static Ty, Rel),
}

/// How list items are identified.
#[derive(Debug, Clone, Copy)]
enum Rel {
    Atomic,
    Set,
    Keys(&'static [&'static str]),
}

impl T {
    fn of(ty: &'static Ty, field: Option<&'static Field>) -> T {
        match ty {
            Ty::Scalar => T::Scalar,
            Ty::Struct(st) => T::Struct(
                st,
                st.atomic || field.is_some_and(|f| f.struct_type == "atomic"),
            ),
            Ty::Map(elem) => T::Map(elem, field.is_some_and(|f| f.map_type == "atomic")),
            Ty::List(elem) => T::List(elem, field.map_or(Rel::Atomic, list_rel)),
        }
    }

    /// The type of member `key`; `None` when a struct does not declare it.
    fn child(self, key: &str) -> Option<T> {
        match self {
            T::Deduced => Some(T::Deduced),
            T::Struct(st, _) => st
                .fields
                .iter()
                .find(|f| f.json == key)
                .map(|f| T::of(&f.ty, Some(f))),
            T::Map(elem, _) => Some(T::of(elem, None)),
            T::Scalar | T::List(..) => Some(T::Deduced),
        }
    }

    /// Whether `key` is a declared field (not a map entry). Custom resources are served with
    /// a structural schema the sim does not have; their objects are taken as structs.
    fn declares(self, key: &str) -> bool {
        match self {
            T::Deduced => true,
            T::Struct(st, _) => st.fields.iter().any(|f| f.json == key),
            _ => false,
        }
    }

    fn atomic(self) -> bool {
        matches!(
            self,
            T::Struct(_, true) | T::Map(_, true) | T::List(_, Rel::Atomic)
        )
    }
}

/// k8s.io/kube-openapi/pkg/schemaconv (getListElementRelationship): the list type marker,
/// else the patch strategy, else atomic.
fn list_rel(f: &'static Field) -> Rel {
    match f.list_type {
        "atomic" => Rel::Atomic,
        "set" => Rel::Set,
        "map" => Rel::Keys(f.list_keys),
        _ if f.strategy.split(',').any(|s| s == "merge") => {
            if f.merge_key.is_empty() {
                Rel::Set
            } else {
                Rel::Keys(std::slice::from_ref(&f.merge_key))
            }
        }
        _ => Rel::Atomic,
    }
}

fn root_type(api_version: &str, kind: &str) -> T {
    kind_schema(api_version, kind).map_or(T::Deduced, |st| T::Struct(st, false))
}

/// A structured-merge-diff validation error: the path and the message.
struct Invalid(String, String);

impl Invalid {
    fn render(&self) -> String {
        if self.0.is_empty() {
            self.1.clone()
        } else {
            format!("{}: {}", self.0, self.1)
        }
    }
}

/// `listItemToPathElement`: the path element of a list item.
fn item_pe(elem: &'static Ty, rel: Rel, item: &Value, i: usize) -> Result<Pe, String> {
    match rel {
        Rel::Atomic => Ok(fieldset::index(i)),
        // sigs.k8s.io/structured-merge-diff/v4/typed/helpers.go (setItemToPathElement)
        Rel::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".to_owned())
            }
            Value::Array(_) => {
                Err("not supported: associative list with lists as elements".to_owned())
            }
            Value::Null => Err(
                "associative list without keys has an element that's an explicit null".to_owned(),
            ),
            v => Ok(fieldset::value(v)),
        },
        // typed/helpers.go (keyedAssociativeListItemToPathElement)
        Rel::Keys(keys) => {
            let Value::Object(m) = item else {
                return Err(if item.is_null() {
                    "associative list with keys may not have a null element".to_owned()
                } else {
                    "associative list with keys may not have non-map elements".to_owned()
                });
            };
            let mut fields: Vec<(&str, Value)> = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = m.get(*k) {
                    fields.push((k, v.clone()));
                } else if let Some(d) = key_default(elem, k) {
                    fields.push((k, Value::String(d.to_owned())));
                } else {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                        gofmt::quote(k)
                    ));
                }
            }
            let refs: Vec<(&str, &Value)> = fields.iter().map(|(k, v)| (*k, v)).collect();
            Ok(fieldset::key(&refs))
        }
    }
}

fn key_default(elem: &'static Ty, key: &str) -> Option<&'static str> {
    match elem {
        Ty::Struct(st) => st
            .fields
            .iter()
            .find(|f| f.json == key)
            .map(|f| f.default)
            .filter(|d| !d.is_empty()),
        _ => None,
    }
}

fn display_pe(pe: &Pe) -> String {
    fieldset::display(std::slice::from_ref(pe))
}

/// `ToFieldSet`. With `strict`, undeclared fields and duplicate list items are errors, as
/// for the applied configuration.
fn to_set(v: &Value, t: T, strict: bool) -> Result<Set, Invalid> {
    let mut set = Set::default();
    walk_set(v, t, &mut Vec::new(), &mut set, strict)?;
    Ok(set)
}

fn walk_set(v: &Value, t: T, path: &mut Path, set: &mut Set, strict: bool) -> Result<(), Invalid> {
    let prefix =
        |path: &Path, e: Invalid| Invalid(format!("{}{}", fieldset::display(path), e.0), e.1);
    match (t, v) {
        (T::Scalar, _) => set.insert(path),
        (t, _) if t.atomic() => set.insert(path),
        (T::Deduced | T::Struct(..) | T::Map(..), Value::Object(m)) => {
            for (k, child) in m {
                let Some(ct) = t.child(k) else {
                    if strict {
                        return Err(prefix(
                            path,
                            Invalid(format!(".{k}"), "field not declared in schema".to_owned()),
                        ));
                    }
                    continue;
                };
                path.push(fieldset::field(k));
                walk_set(child, ct, path, set, strict)?;
                if child.is_null() || child.as_object().is_some_and(Map::is_empty) || !t.declares(k)
                {
                    set.insert(path);
                }
                path.pop();
            }
        }
        (T::List(elem, rel), Value::Array(items)) => {
            let mut seen: Vec<Pe> = Vec::new();
            let mut dups: Vec<Pe> = Vec::new();
            let mut pes = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let pe = item_pe(elem, rel, item, i).map_err(|e| {
                    prefix(path, Invalid(String::new(), format!("element {i}: {e}")))
                })?;
                if seen.contains(&pe) {
                    if strict {
                        return Err(prefix(
                            path,
                            Invalid(
                                String::new(),
                                format!("duplicate entries for key {}", display_key(&pe)),
                            ),
                        ));
                    }
                    if !dups.contains(&pe) {
                        path.push(pe.clone());
                        set.insert(path);
                        path.pop();
                        dups.push(pe.clone());
                    }
                } else {
                    seen.push(pe.clone());
                }
                pes.push(pe);
            }
            for (item, pe) in items.iter().zip(pes) {
                if dups.contains(&pe) {
                    continue;
                }
                path.push(pe);
                walk_set(item, T::of(elem, None), path, set, strict)?;
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// `PathElement.String` without the leading dot handling of field names.
fn display_key(pe: &Pe) -> String {
    display_pe(pe)
}

/// Typed merge with the "keep the right-hand side" rule (`Merge` of structured-merge-diff).
fn merge(lhs: Option<&Value>, rhs: Option<&Value>, t: T) -> Option<Value> {
    let (l, r) = match (lhs, rhs) {
        (l, None) => return l.cloned(),
        (None, r) => return r.cloned(),
        (Some(l), Some(r)) => (l, r),
    };
    if t.atomic() || matches!(t, T::Scalar) {
        return Some(r.clone());
    }
    match (l, r) {
        (Value::Object(lm), Value::Object(rm)) => {
            if lm.is_empty() && rm.is_empty() {
                return Some(r.clone());
            }
            let mut out = Map::new();
            for k in lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k))) {
                let ct = t.child(k).unwrap_or(T::Deduced);
                if let Some(v) = merge(lm.get(k), rm.get(k), ct) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (Value::Array(la), Value::Array(ra)) => {
            let T::List(elem, rel) = t else {
                return Some(r.clone());
            };
            if la.is_empty() && ra.is_empty() {
                return Some(r.clone());
            }
            Some(Value::Array(merge_list(la, ra, elem, rel)))
        }
        _ => Some(r.clone()),
    }
}

/// `visitListItems` of the merging walker: shared items keep the right-hand order, items
/// only on the left stay where they were.
fn merge_list(lhs: &[Value], rhs: &[Value], elem: &'static Ty, rel: Rel) -> Vec<Value> {
    let pes = |list: &[Value]| -> Option<Vec<Pe>> {
        list.iter()
            .enumerate()
            .map(|(i, v)| item_pe(elem, rel, v, i).ok())
            .collect()
    };
    let (Some(lpes), Some(rpes)) = (pes(lhs), pes(rhs)) else {
        return rhs.to_vec();
    };
    let et = T::of(elem, None);
    let find = |pes: &[Pe], list: &[Value], pe: &Pe| {
        pes.iter().position(|p| p == pe).map(|i| list[i].clone())
    };
    let mut shared: std::collections::VecDeque<Pe> =
        rpes.iter().filter(|p| lpes.contains(p)).cloned().collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: Vec<Pe> = Vec::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.push(pe.clone());
                if let Some(v) = merge(
                    find(&lpes, lhs, pe).as_ref(),
                    find(&rpes, rhs, pe).as_ref(),
                    et,
                ) {
                    out.push(v);
                }
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if rpes.contains(pe) && next_shared.as_ref().is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !rpes.contains(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = rpes[ri].clone();
            merged_rhs.push(pe.clone());
            if let Some(v) = merge(
                find(&lpes, lhs, &pe).as_ref(),
                find(&rpes, rhs, &pe).as_ref(),
                et,
            ) {
                out.push(v);
            }
            ri += 1;
            if next_shared.as_ref() == Some(&pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// The result of `Compare`: paths added, modified and removed from left to right.
#[derive(Debug, Default)]
struct Comparison {
    added: Set,
    modified: Set,
    removed: Set,
}

impl Comparison {
    fn filter(&mut self, f: &dyn Fn(&Set) -> Set) {
        self.added = f(&self.added);
        self.modified = f(&self.modified);
        self.removed = f(&self.removed);
    }
}

fn compare(lhs: Option<&Value>, rhs: Option<&Value>, t: T, path: &mut Path, cmp: &mut Comparison) {
    let leaf = |path: &Path, cmp: &mut Comparison| match (lhs, rhs) {
        (None, _) => cmp.added.insert(path),
        (_, None) => cmp.removed.insert(path),
        (Some(l), Some(r)) if l != r => cmp.modified.insert(path),
        _ => {}
    };
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    let is_obj = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    let is_arr = |v: Option<&Value>| v.is_none_or(|v| v.is_array() || v.is_null());
    if matches!(t, T::Scalar) || t.atomic() || (empty(lhs) && empty(rhs)) {
        leaf(path, cmp);
        return;
    }
    match t {
        T::Deduced | T::Struct(..) | T::Map(..) if is_obj(lhs) && is_obj(rhs) => {
            let none = Map::new();
            let lm = lhs.and_then(Value::as_object).unwrap_or(&none);
            let rm = rhs.and_then(Value::as_object).unwrap_or(&none);
            for k in lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k))) {
                let ct = t.child(k).unwrap_or(T::Deduced);
                path.push(fieldset::field(k));
                compare(lm.get(k), rm.get(k), ct, path, cmp);
                path.pop();
            }
        }
        T::List(elem, rel) if is_arr(lhs) && is_arr(rhs) => {
            let none = Vec::new();
            let la = lhs.and_then(Value::as_array).unwrap_or(&none);
            let ra = rhs.and_then(Value::as_array).unwrap_or(&none);
            let mut order: Vec<Pe> = Vec::new();
            let group = |list: &[Value], order: &mut Vec<Pe>| -> Vec<(Pe, Vec<Value>)> {
                let mut out: Vec<(Pe, Vec<Value>)> = Vec::new();
                for (i, v) in list.iter().enumerate() {
                    let Ok(pe) = item_pe(elem, rel, v, i) else {
                        continue;
                    };
                    if let Some(entry) = out.iter_mut().find(|(p, _)| *p == pe) {
                        entry.1.push(v.clone());
                    } else {
                        if !order.contains(&pe) {
                            order.push(pe.clone());
                        }
                        out.push((pe, vec![v.clone()]));
                    }
                }
                out
            };
            let lg = group(la, &mut order);
            let rg = group(ra, &mut order);
            let get = |g: &[(Pe, Vec<Value>)], pe: &Pe| {
                g.iter()
                    .find(|(p, _)| p == pe)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let et = T::of(elem, None);
            for pe in order {
                let (l, r) = (get(&lg, &pe), get(&rg, &pe));
                path.push(pe);
                match (l.len(), r.len()) {
                    (0..=1, 0..=1) => compare(l.first(), r.first(), et, path, cmp),
                    (2.., 2..) => {
                        if l != r {
                            cmp.modified.insert(path);
                        }
                    }
                    (2.., _) => {
                        if let Some(r0) = r.first() {
                            compare(None, Some(r0), et, path, cmp);
                        }
                        cmp.removed.insert(path);
                    }
                    (_, _) => {
                        if let Some(l0) = l.first() {
                            compare(Some(l0), None, et, path, cmp);
                        }
                        cmp.added.insert(path);
                    }
                }
                path.pop();
            }
        }
        _ => {
            leaf(path, cmp);
            return;
        }
    }
    match (lhs, rhs) {
        (None, _) => cmp.added.insert(path),
        (_, None) => cmp.removed.insert(path),
        _ => {}
    }
}

fn comparison(lhs: &Value, rhs: &Value, t: T) -> Comparison {
    let mut cmp = Comparison::default();
    compare(Some(lhs), Some(rhs), t, &mut Vec::new(), &mut cmp);
    cmp
}

/// Removes the value at `path`; `false` when it is not there.
fn remove_path(v: &mut Value, path: &[Pe], t: T) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (kind, tail) = first.split_at(first.len().min(2));
    match (kind, v) {
        ("f:", Value::Object(m)) => {
            if rest.is_empty() {
                return m.remove(tail).is_some();
            }
            let ct = t.child(tail).unwrap_or(T::Deduced);
            m.get_mut(tail).is_some_and(|c| remove_path(c, rest, ct))
        }
        (_, Value::Array(items)) => {
            let (elem, rel) = match t {
                T::List(elem, rel) => (elem, rel),
                _ => (&Ty::Scalar, Rel::Atomic),
            };
            let Some(i) = items
                .iter()
                .enumerate()
                .position(|(i, item)| item_pe(elem, rel, item, i).is_ok_and(|pe| pe == *first))
            else {
                return false;
            };
            if rest.is_empty() {
                items.remove(i);
                return true;
            }
            remove_path(&mut items[i], rest, T::of(elem, None))
        }
        _ => false,
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    applied: bool,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: Set,
}

impl Entry {
    /// `BuildManagerIdentifier`: appliers are one manager whatever their apiVersion.
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.applied == other.applied
            && self.subresource == other.subresource
            && (self.applied || self.api_version == other.api_version)
    }

    /// `printManager` of k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go
    /// (the identifier carries no time, so none is printed).
    fn printed(&self) -> String {
        let mut s = gofmt::quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {}", gofmt::quote(&self.subresource));
        }
        if !self.applied {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".to_owned(), Value::String(self.manager.clone()));
        m.insert(
            "operation".to_owned(),
            Value::String(if self.applied { "Apply" } else { "Update" }.to_owned()),
        );
        m.insert(
            "apiVersion".to_owned(),
            Value::String(self.api_version.clone()),
        );
        if let Some(t) = &self.time {
            m.insert("time".to_owned(), Value::String(t.clone()));
        }
        m.insert(
            "fieldsType".to_owned(),
            Value::String("FieldsV1".to_owned()),
        );
        m.insert("fieldsV1".to_owned(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert(
                "subresource".to_owned(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(m)
    }
}

/// `DecodeManagedFields`, with its error texts (internal/managedfields.go).
fn decode_entries(obj: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = obj.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return if list.is_null() {
            Ok(Vec::new())
        } else {
            Err("managedFields is not a list".to_owned())
        };
    };
    let mut out: Vec<Entry> = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let s = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let applied = match s("operation").as_str() {
            "Apply" => true,
            "Update" => false,
            _ => return Err("operation must be `Apply` or `Update`".to_owned()),
        };
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_owned());
        }
        match s("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {} in managed fields entry {i}",
                    gofmt::quote(other)
                ));
            }
        }
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(v) => Set::from_fields_v1(v)
                .ok_or_else(|| format!("error decoding versioned set from entry {i}"))?,
        };
        let entry = Entry {
            manager: s("manager"),
            applied,
            api_version,
            time: e.get("time").and_then(Value::as_str).map(str::to_owned),
            subresource: s("subresource"),
            set,
        };
        // A later entry for the same manager replaces the earlier one, as the Go map does.
        out.retain(|o| !o.same_manager(&entry));
        out.push(entry);
    }
    Ok(out)
}

/// `sortEncodedManagedFields`: operation, time, manager, apiVersion, subresource.
fn encode_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|p, q| {
        let secs = |e: &Entry| {
            e.time
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(0, |t| t.as_second())
        };
        (!p.applied)
            .cmp(&!q.applied)
            .then_with(|| secs(p).cmp(&secs(q)))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let Some(meta) = obj.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
    }) else {
        return;
    };
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".to_owned(),
            Value::Array(entries.iter().map(Entry::encode).collect()),
        );
    }
}

fn strip_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

/// internal/stripmeta.go: fields no manager owns.
fn strip_meta(set: &Set) -> Set {
    let mut strip = Set::default();
    strip.insert(&[fieldset::field("apiVersion")]);
    strip.insert(&[fieldset::field("kind")]);
    strip.insert(&[fieldset::field("metadata")]);
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[fieldset::field("metadata"), fieldset::field(f)]);
    }
    set.difference(&strip)
}

/// The fields a write through `subresource` may own: the status subresource owns only
/// `status`; the main resource of a built-in kind with a status resets it (the strategies'
/// reset fields).
fn reset_filter(api_version: &str, kind: &str, subresource: &str) -> impl Fn(&Set) -> Set {
    let status = [fieldset::field("status")];
    let has_status = kind_schema(api_version, kind)
        .is_some_and(|st| st.fields.iter().any(|f| f.json == "status"));
    let subresource = subresource.to_owned();
    move |set: &Set| {
        if subresource == "status" {
            set.only_subtree(&status)
        } else if has_status {
            set.without_subtree(&status)
        } else {
            set.clone()
        }
    }
}

/// Conflicts: per manager, the paths in the order structured-merge-diff iterates a set.
fn conflict_error(conflicts: &[(Entry, Set)]) -> PatchError {
    let mut all: Vec<(String, String)> = Vec::new();
    for (entry, set) in conflicts {
        for p in set.iterate() {
            all.push((entry.printed(), fieldset::display(&p)));
        }
    }
    let causes = all
        .iter()
        .map(|(m, p)| ConflictCause {
            field: p.clone(),
            message: format!("conflict with {m}"),
        })
        .collect();
    // k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go (getConflictMessage)
    let message = if let [(m, p)] = all.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {m}: {p}")
    } else {
        let mut managers: Vec<&String> = all.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(
                all.iter()
                    .filter(|(mm, _)| mm == m)
                    .map(|(_, p)| format!("- {p}")),
            );
        }
        format!(
            "Apply failed with {} conflicts: {}",
            all.len(),
            lines.join("\n")
        )
    };
    PatchError::Conflict { message, causes }
}

/// Server-side apply.
pub(super) fn server_side_apply(req: &PatchRequest<'_>) -> Result<Value, PatchError> {
    let manager = match req.field_manager {
        Some(m) if !m.is_empty() => m,
        // k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go (ValidatePatchOptions)
        // through errors.NewInvalid of the PatchOptions kind.
        _ => {
            return Err(PatchError::Invalid(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                    .to_owned(),
            ));
        }
    };
    let text = std::str::from_utf8(req.body)
        .map_err(|e| PatchError::BadRequest(format!("error encoding patch: {e}")))?;
    // k8s.io/apiserver/pkg/endpoints/handlers/patch.go (validateAndTranscodePatch); the YAML
    // error text is this crate's parser's, not go-yaml's.
    let config = crate::yaml::value(text)
        .map_err(|e| PatchError::BadRequest(format!("error encoding patch: {e}")))?;
    let config = match config {
        Value::Object(m) => Value::Object(m),
        Value::Null => Value::Object(Map::new()),
        other => {
            // patch.go (applyPatcher): "error decoding patch: %v" of sigs.k8s.io/yaml.Unmarshal.
            return Err(PatchError::BadRequest(format!(
                "error decoding patch: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                gofmt::json_kind(&other)
            )));
        }
    };
    let patch_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if patch_version != req.api_version {
        // k8s.io/apimachinery/pkg/util/managedfields/internal/structuredmerge.go
        return Err(PatchError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {patch_version}, expected: {}",
            req.api_version
        )));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        // structuredmerge.go
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    let t = root_type(req.api_version, req.object_kind);
    let empty = Value::Object(Map::new());
    let live = req.current.unwrap_or(&empty);
    let entries = decode_entries(live)
        .map_err(|e| PatchError::Internal(format!("failed to decode managed fields: {e}")))?;
    let live_plain = strip_managed_fields(live);

    let gvknn = || {
        let ns = config
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = config
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // structuredmerge.go (objectGVKNN) with schema.GroupVersionKind.String.
        let (group, version) = req
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", req.api_version));
        format!(
            "{ns}/{name}; {}, Kind={}",
            if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            },
            req.object_kind
        )
    };
    let config_set = to_set(
        &config,
        t,
        kind_schema(req.api_version, req.object_kind).is_some(),
    )
    .map_err(|e| {
        PatchError::Internal(format!(
            "failed to create typed patch object ({}): {}",
            gvknn(),
            e.render()
        ))
    })?;

    let result = apply_once(
        &live_plain,
        &config,
        config_set.clone(),
        t,
        req,
        manager,
        entries.clone(),
        req.force,
    );
    let (mut object, entries) = match result {
        Ok(ok) => ok,
        Err(conflicts) if manager == "kubectl" => {
            // internal/lastappliedmanager.go: conflicts with fields client-side apply set to
            // the same values are not conflicts for the "kubectl" manager.
            match allowed_from_last_applied(&live_plain, t, req.api_version) {
                Some(allowed) => {
                    let remaining: Vec<(Entry, Set)> = conflicts
                        .into_iter()
                        .map(|(e, s)| {
                            let kept =
                                Set::from_paths(s.paths().into_iter().filter(|p| !allowed.has(p)));
                            (e, kept)
                        })
                        .filter(|(_, s)| !s.is_empty())
                        .collect();
                    if !remaining.is_empty() {
                        return Err(conflict_error(&remaining));
                    }
                    apply_once(
                        &live_plain,
                        &config,
                        config_set,
                        t,
                        req,
                        manager,
                        entries,
                        true,
                    )
                    .map_err(|c| conflict_error(&c))?
                }
                None => return Err(conflict_error(&conflicts)),
            }
        }
        Err(conflicts) => return Err(conflict_error(&conflicts)),
    };
    // internal/lastappliedupdater.go: keep the client-side annotation in step.
    if manager == "kubectl" && has_last_applied(&object) {
        let mut applied = config.clone();
        if let Some(ann) = applied
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            ann.remove(LAST_APPLIED);
        }
        let text = format!("{applied}\n");
        if let Some(ann) = object
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            ann.insert(LAST_APPLIED.to_owned(), Value::String(text));
        }
    }
    encode_entries(&mut object, entries);
    Ok(object)
}

fn has_last_applied(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// `allowedConflictsFromLastApplied`: the fields of the last-applied configuration whose
/// live values still match it.
fn allowed_from_last_applied(live: &Value, t: T, api_version: &str) -> Option<Set> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let set = to_set(&last, t, false).ok()?;
    let cmp = comparison(&last, live, t);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

type Applied = (Value, Vec<Entry>);

/// `Updater.Apply` plus the wrapping managers: merge, prune, conflicts, ownership, time.
#[expect(
    clippy::too_many_arguments,
    reason = "the state of one recursive merge step"
)]
fn apply_once(
    live: &Value,
    config: &Value,
    config_set: Set,
    t: T,
    req: &PatchRequest<'_>,
    manager: &str,
    mut entries: Vec<Entry>,
    force: bool,
) -> Result<Applied, Vec<(Entry, Set)>> {
    let filter = reset_filter(req.api_version, req.object_kind, "");
    let me = Entry {
        manager: manager.to_owned(),
        applied: true,
        api_version: req.api_version.to_owned(),
        time: None,
        subresource: String::new(),
        set: filter(&config_set),
    };
    let previous = entries
        .iter()
        .position(|e| e.same_manager(&me))
        .map(|i| entries.remove(i));
    let last_set = previous.as_ref().map(|e| e.set.clone());
    let mut merged = merge(Some(live), Some(config), t).unwrap_or_else(|| config.clone());

    // prune: what the applier owned before, omits now, and nobody else owns goes away.
    if let Some(last) = &last_set {
        let mut owned = me.set.clone();
        for e in &entries {
            owned = owned.union(&e.set);
        }
        prune(&mut merged, last, &owned, t, &mut Vec::new());
    }

    let mut cmp = comparison(live, &merged, t);
    cmp.filter(&filter);
    let changed_or_added = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    for e in &entries {
        let c = e.set.intersection(&changed_or_added);
        if !c.is_empty() {
            conflicts.push((e.clone(), c));
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    for e in &mut entries {
        e.set = e.set.difference(&changed_or_added).difference(&cmp.removed);
    }
    let changed = merged != *live;
    let mut me = me;
    me.set = strip_meta(&me.set);
    me.time = if changed {
        Some(req.now.to_owned())
    } else {
        previous.and_then(|p| p.time)
    };
    if !me.set.is_empty() {
        entries.push(me);
    }
    entries.retain(|e| !e.set.is_empty());
    let object = if changed { merged } else { live.clone() };
    Ok((object, entries))
}

/// Removes from `v` every node of `last` that no manager owns (any path at or below it).
fn prune(v: &mut Value, last: &Set, owned: &Set, t: T, path: &mut Path) {
    let mut to_remove: Vec<Path> = Vec::new();
    collect_prune(last, owned, path, &mut to_remove);
    for p in to_remove {
        remove_path(v, &p, t);
    }
}

fn collect_prune(last: &Set, owned: &Set, path: &mut Path, out: &mut Vec<Path>) {
    let mut nodes: Vec<&Pe> = last.members().collect();
    for (pe, _) in last.children() {
        if !nodes.contains(&pe) {
            nodes.push(pe);
        }
    }
    for pe in nodes {
        path.push(pe.clone());
        if !owned.has_node(path) {
            out.push(path.clone());
        } else if let Some((_, child)) = last.children().find(|(p, _)| *p == pe) {
            collect_prune(child, owned, path, out);
        }
        path.pop();
    }
}

/// Records an `Update` entry in `new`'s `metadata.managedFields` for a write by `manager`
/// of the main resource (create, update, or a non-apply patch), as the API server's field
/// manager does: the manager gains the fields this write added or changed, and every other
/// manager loses those fields and the removed ones. `old` is `None` for a create.
pub fn record_update(
    manager: &str,
    api_version: &str,
    old: Option<&Value>,
    new: &mut Value,
    now: &str,
) {
    record_update_subresource(manager, api_version, old, new, now, None);
}

/// [`record_update`] for a write through a subresource (`status`); the entry carries the
/// subresource and owns only what that subresource may change.
pub fn record_update_subresource(
    manager: &str,
    api_version: &str,
    old: Option<&Value>,
    new: &mut Value,
    now: &str,
    subresource: Option<&str>,
) {
    let kind = new
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let t = root_type(api_version, &kind);
    let empty = Value::Object(Map::new());
    let old = old.unwrap_or(&empty);
    let subresource = subresource.unwrap_or_default();
    // internal/fieldmanager.go (decodeLiveOrNew): a request's own managedFields win unless
    // they are empty, reset (`[]` or `[{}]`) or undecodable; subresources use the live ones.
    let requested = new.pointer("/metadata/managedFields").cloned();
    let reset = matches!(&requested, Some(Value::Array(a)) if a.is_empty() || (a.len() == 1 && a[0] == Value::Object(Map::new())));
    let mut entries = if reset && subresource.is_empty() {
        Vec::new()
    } else {
        let from_new = if subresource.is_empty() {
            decode_entries(new).ok().filter(|e| !e.is_empty())
        } else {
            None
        };
        from_new.unwrap_or_else(|| decode_entries(old).unwrap_or_default())
    };
    let new_plain = strip_managed_fields(new);
    let old_plain = strip_managed_fields(old);
    let filter = reset_filter(api_version, &kind, subresource);
    let mut cmp = comparison(&old_plain, &new_plain, t);
    cmp.filter(&filter);
    let changed_or_added = cmp.modified.union(&cmp.added);
    for e in &mut entries {
        e.set = e.set.difference(&changed_or_added).difference(&cmp.removed);
    }
    let mine = strip_meta(&filter(&changed_or_added));
    if !mine.is_empty() {
        let me = Entry {
            manager: manager.to_owned(),
            applied: false,
            api_version: api_version.to_owned(),
            time: Some(now.to_owned()),
            subresource: subresource.to_owned(),
            set: mine,
        };
        if let Some(prev) = entries.iter_mut().find(|e| e.same_manager(&me)) {
            prev.set = me.set.union(&prev.set);
            prev.time = me.time;
        } else {
            entries.push(me);
        }
    }
    *new = new_plain;
    encode_entries(new, entries);
}

impl Set {
    fn from_paths(paths: impl Iterator<Item = Path>) -> Set {
        let mut s = Set::default();
        for p in paths {
            s.insert(&p);
        }
        s
    }
}

#[cfg(test)]
mod tests;
