//! Field sets of server-side apply: sigs.k8s.io/structured-merge-diff `fieldpath.Set` and its
//! `FieldsV1` serialization (`{"f:spec":{"f:replicas":{}},"k:{\"name\":\"x\"}":{".":{}}}`).
//!
//! A path element is kept in its serialized form (`f:name`, `k:{"name":"x"}`, `v:"a"`,
//! `i:0`), which is also how `metadata.managedFields` stores it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::gofmt;

/// One step of a field path, serialized as in `FieldsV1`.
pub(super) type Pe = String;

/// A field path.
pub(super) type Path = Vec<Pe>;

/// `f:<name>`: a struct field or map key.
pub(super) fn field(name: &str) -> Pe {
    format!("f:{name}")
}

/// `k:{...}`: an item of an associative list, by its key fields (sorted by name).
pub(super) fn key(fields: &[(&str, &Value)]) -> Pe {
    let mut sorted: Vec<&(&str, &Value)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut map = Map::new();
    for (k, v) in sorted {
        map.insert((*k).to_owned(), (*v).clone());
    }
    format!("k:{}", Value::Object(map))
}

/// `v:<json>`: an item of a set, by value.
pub(super) fn value(v: &Value) -> Pe {
    format!("v:{v}")
}

/// `i:<n>`: an item of an atomic list, by index.
pub(super) fn index(i: usize) -> Pe {
    format!("i:{i}")
}

/// The path as structured-merge-diff prints it (`.spec.containers[name="web"].image`).
pub(super) fn display(path: &[Pe]) -> String {
    let mut out = String::new();
    for pe in path {
        let (kind, rest) = pe.split_at(pe.len().min(2));
        match kind {
            "f:" => {
                out.push('.');
                out.push_str(rest);
            }
            "k:" => {
                let fields: Map<String, Value> = serde_json::from_str(rest).unwrap_or_default();
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", to_string(v)))
                    .collect();
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            "v:" => {
                let v: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
                out.push_str(&format!("[={}]", to_string(&v)));
            }
            "i:" => out.push_str(&format!("[{rest}]")),
            _ => out.push_str("{{invalid path element}}"),
        }
    }
    out
}

/// structured-merge-diff `value.ToString`.
fn to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::String(s) => gofmt::quote(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(to_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}={}", to_string(v)))
                .collect::<Vec<_>>()
                .join(";")
        ),
        other => gofmt::v(other),
    }
}

/// A set of field paths, as a tree: `members` end here, `children` go deeper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Set {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    /// Adds a path (the empty path is ignored: the root is never a member).
    pub(super) fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path is a member.
    pub(super) fn has(&self, path: &[Pe]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the path is a member or leads to one.
    pub(super) fn has_node(&self, path: &[Pe]) -> bool {
        match path {
            [] => !self.is_empty(),
            [first, rest @ ..] => {
                (rest.is_empty() && self.members.contains(first))
                    || self.children.get(first).is_some_and(|c| c.has_node(rest))
            }
        }
    }

    /// Whether the set holds no path.
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Paths in either set.
    pub(super) fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Paths of `self` not in `other`.
    pub(super) fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                children.insert(pe.clone(), rest);
            }
        }
        Set { members, children }
    }

    /// Paths in both sets.
    pub(super) fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    children.insert(pe.clone(), both);
                }
            }
        }
        Set { members, children }
    }

    /// The set without `path` and everything below it (an exclude filter).
    pub(super) fn without_subtree(&self, path: &[Pe]) -> Set {
        let mut out = self.clone();
        match path {
            [] => return Set::default(),
            [last] => {
                out.members.remove(last);
                out.children.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = out.children.get(first) {
                    let pruned = child.without_subtree(rest);
                    if pruned.is_empty() {
                        out.children.remove(first);
                    } else {
                        out.children.insert(first.clone(), pruned);
                    }
                }
            }
        }
        out
    }

    /// Only `path` and everything below it.
    pub(super) fn only_subtree(&self, path: &[Pe]) -> Set {
        let mut out = Set::default();
        match path {
            [] => return self.clone(),
            [first, rest @ ..] => {
                if rest.is_empty() && self.members.contains(first) {
                    out.members.insert(first.clone());
                }
                if let Some(child) = self.children.get(first) {
                    let kept = child.only_subtree(rest);
                    if !kept.is_empty() {
                        out.children.insert(first.clone(), kept);
                    }
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub(super) fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let mut keys: BTreeSet<&Pe> = self.members.iter().collect();
        keys.extend(self.children.keys());
        for pe in keys {
            prefix.push(pe.clone());
            if self.members.contains(pe) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(pe) {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// Every member path in the order structured-merge-diff's `Set.Iterate` visits them: the
    /// members of a level before its children, path elements ordered fields, keys, values,
    /// indices.
    pub(super) fn iterate(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.iterate_into(&mut Vec::new(), &mut out);
        out
    }

    fn iterate_into(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let rank = |pe: &&Pe| match pe.get(..2) {
            Some("f:") => 0,
            Some("k:") => 1,
            Some("v:") => 2,
            _ => 3,
        };
        let mut members: Vec<&Pe> = self.members.iter().collect();
        members.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
        for pe in members {
            prefix.push(pe.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        let mut children: Vec<(&Pe, &Set)> = self.children.iter().collect();
        children.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(b.0)));
        for (pe, child) in children {
            prefix.push(pe.clone());
            child.iterate_into(prefix, out);
            prefix.pop();
        }
    }

    /// The top-level children (for walking the tree alongside a value).
    pub(super) fn children(&self) -> impl Iterator<Item = (&Pe, &Set)> {
        self.children.iter()
    }

    /// The members at this level.
    pub(super) fn members(&self) -> impl Iterator<Item = &Pe> {
        self.members.iter()
    }

    /// The `FieldsV1` form.
    pub(super) fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for pe in &self.members {
            map.insert(pe.clone(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            let mut inner = match child.to_fields_v1() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if self.members.contains(pe) {
                inner.insert(".".to_owned(), Value::Object(Map::new()));
            }
            map.insert(pe.clone(), Value::Object(inner));
        }
        Value::Object(map)
    }

    /// Reads a `FieldsV1` value; `None` when it is not a tree of objects with valid keys.
    pub(super) fn from_fields_v1(v: &Value) -> Option<Set> {
        let Value::Object(map) = v else { return None };
        let mut set = Set::default();
        for (k, child) in map {
            if k == "." {
                continue;
            }
            if !matches!(k.get(..2), Some("f:" | "k:" | "v:" | "i:")) {
                return None;
            }
            let Value::Object(inner) = child else {
                return None;
            };
            if inner.is_empty() {
                set.members.insert(k.clone());
                continue;
            }
            if inner.contains_key(".") {
                set.members.insert(k.clone());
            }
            let sub = Set::from_fields_v1(child)?;
            if !sub.is_empty() {
                set.children.insert(k.clone(), sub);
            }
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_as_fields_v1() {
        let mut s = Set::default();
        s.insert(&[field("spec"), field("replicas")]);
        let item = key(&[("name", &json!("web"))]);
        s.insert(&[field("spec"), field("containers"), item.clone()]);
        s.insert(&[
            field("spec"),
            field("containers"),
            item.clone(),
            field("image"),
        ]);
        let v = s.to_fields_v1();
        assert_eq!(
            v,
            json!({"f:spec": {"f:replicas": {}, "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}})
        );
        assert_eq!(Set::from_fields_v1(&v).unwrap(), s);
        assert!(s.has(&[field("spec"), field("containers"), item.clone()]));
        assert!(!s.has(&[field("spec")]));
        assert!(s.has_node(&[field("spec")]));
    }

    #[test]
    fn prints_paths_as_structured_merge_diff() {
        let path = vec![
            field("spec"),
            field("ports"),
            key(&[("protocol", &json!("TCP")), ("port", &json!(80))]),
            field("name"),
        ];
        assert_eq!(display(&path), ".spec.ports[port=80,protocol=\"TCP\"].name");
        assert_eq!(
            display(&[field("f"), value(&json!("a")), index(2)]),
            ".f[=\"a\"][2]"
        );
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::default();
        a.insert(&[field("a"), field("x")]);
        a.insert(&[field("a"), field("y")]);
        let mut b = Set::default();
        b.insert(&[field("a"), field("y")]);
        b.insert(&[field("b")]);
        assert_eq!(a.difference(&b).paths(), vec![vec![field("a"), field("x")]]);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![vec![field("a"), field("y")]]
        );
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.without_subtree(&[field("a")]).is_empty());
        assert_eq!(a.only_subtree(&[field("a"), field("x")]).paths().len(), 1);
        assert!(Set::from_fields_v1(&json!({"x:bad": {}})).is_none());
    }
}
