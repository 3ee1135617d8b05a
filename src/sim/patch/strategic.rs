//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! This follows `StrategicMergeMapPatch` of k8s.io/apimachinery/pkg/util/strategicpatch
//! (patch.go) as the API server calls it (`MergeParallelList` and `IgnoreUnmatchedNulls` set):
//! lists whose field is tagged `patchStrategy:"merge"` are merged by their `patchMergeKey`
//! (primitive lists by value), the directives `$patch` (`replace`, `delete`, and `merge` where
//! allowed), `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and `$retainKeys`
//! are honoured, and `null` deletes a key. Go iterates maps in random order; here keys are
//! taken in sorted order, which gives the same result for every patch kubectl produces.

use serde_json::{Map, Value};

use super::schema::{Struct, Ty, kind_schema};
use super::{PatchError, gofmt};

type Obj = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// The errors of the merge, sorted the way `interpretStrategicMergePatchError` in
/// k8s.io/apiserver/pkg/endpoints/handlers/patch.go sorts them.
#[derive(Debug)]
enum SmpError {
    /// A mergepatch sentinel the API server answers with 400.
    BadRequest(&'static str),
    /// `mergepatch.ErrNoListOfLists`, answered with a generic 422.
    NoListOfLists,
    /// Any other error, passed through as a 500.
    Other(String),
}

// k8s.io/apimachinery/pkg/util/mergepatch/errors.go
const ERR_BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

impl From<SmpError> for PatchError {
    fn from(err: SmpError) -> Self {
        match err {
            SmpError::BadRequest(msg) => PatchError::BadRequest(msg.to_owned()),
            // patch.go: NewGenericServerResponse(422, ...) keeps only the generic message
            // (k8s.io/apimachinery/pkg/api/errors/errors.go).
            SmpError::NoListOfLists => PatchError::Invalid(
                "the server rejected our request due to an error in our request".to_owned(),
            ),
            SmpError::Other(msg) => PatchError::Internal(msg),
        }
    }
}

type Result<T> = std::result::Result<T, SmpError>;

/// `mergepatch.ErrBadArgType`: "expected a <type>, but received a <type>".
fn bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    SmpError::Other(format!(
        "expected a {expected}, but received a {}",
        gofmt::type_name(actual)
    ))
}

const MAP_TYPE: &str = "map[string]interface {}";
const SLICE_TYPE: &str = "[]interface {}";

/// `mergepatch.ErrNoMergeKey`.
fn no_merge_key(m: &Obj, key: &str) -> SmpError {
    SmpError::Other(format!(
        "map: {} does not contain declared merge key: {key}",
        gofmt::v(&Value::Object(m.clone()))
    ))
}

/// `mergepatch.ErrBadPatchType`.
fn bad_patch_type(directive: &Value, m: &Obj) -> SmpError {
    SmpError::Other(format!(
        "unknown patch type: {} in map: {}",
        gofmt::s(directive),
        gofmt::v(&Value::Object(m.clone()))
    ))
}

/// Applies a strategic merge patch `body` (already known to be valid JSON) to `current`.
///
/// # Errors
/// 400 for a body that is not an object and for malformed directives, 422 for lists of
/// lists, 500 (the API server's pass-through) for the remaining merge errors.
pub(super) fn apply(
    api_version: &str,
    kind: &str,
    current: &Value,
    body: &[u8],
) -> std::result::Result<Value, PatchError> {
    let Some(schema) = kind_schema(api_version, kind) else {
        return Err(super::unsupported_strategic());
    };
    let patch: Value = serde_json::from_slice(body)
        .map_err(|_| PatchError::BadRequest("invalid JSON patch".to_owned()))?;
    let patch = match patch {
        Value::Object(patch) => patch,
        // Decoding `null` into the patch map leaves it empty.
        Value::Null => Obj::new(),
        other => {
            // patch.go (strategicPatchObject): errors.NewBadRequest of the decode error of
            // sigs.k8s.io/json, which words it as encoding/json does.
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                gofmt::json_kind(&other)
            )));
        }
    };
    let Value::Object(original) = current.clone() else {
        return Err(super::not_an_object(current));
    };
    let merged = merge_map(original, patch, Ty::Struct(schema))?;
    let mut out = Value::Object(merged);
    clean(&mut out);
    Ok(out)
}

/// Decoding the merged map into the typed object drops what no Go field can hold: leftover
/// directives in values that were added whole, and null members.
fn clean(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| !k.starts_with('$') && !v.is_null());
            map.values_mut().for_each(clean);
        }
        Value::Array(items) => items.iter_mut().for_each(clean),
        _ => {}
    }
}

/// `LookupPatchMetadataForStruct` of `PatchMetaFromStruct`: the field's type and tags.
fn lookup_struct(schema: Ty, key: &str) -> Result<(Ty, &'static str, &'static str)> {
    match schema {
        Ty::Struct(st) => field_of(st, key).map(|f| (f.ty, f.strategy, f.merge_key)),
        other => Err(SmpError::Other(format!(
            // third_party/forked/golang/json/fields.go
            "merging an object in json but data type is not struct, instead is: {}",
            other.kind_name()
        ))),
    }
}

fn field_of(st: &'static Struct, key: &str) -> Result<&'static super::schema::Field> {
    st.field(key).ok_or_else(|| {
        // third_party/forked/golang/json/fields.go
        SmpError::Other(format!(
            "unable to find api field in struct {} for the json field {}",
            st.name,
            gofmt::quote(key)
        ))
    })
}

/// `LookupPatchMetadataForSlice`: the element type and the list field's tags.
fn lookup_slice(schema: Ty, key: &str) -> Result<(Ty, &'static str, &'static str)> {
    let (ty, strategy, merge_key) = lookup_struct(schema, key)?;
    match ty {
        Ty::List(Ty::List(_)) => Err(SmpError::Other("unexpected slice of slice".to_owned())),
        Ty::List(elem) => Ok((*elem, strategy, merge_key)),
        // strategicpatch/meta.go prints the kind of the enclosing type.
        _ => Err(SmpError::Other(format!(
            "expected slice or array type, but got: {}",
            schema.kind_name()
        ))),
    }
}

/// `extractRetainKeysPatchStrategy`: the strategy other than `retainKeys`.
fn other_strategy(tag: &'static str) -> Result<&'static str> {
    let strategies: Vec<&'static str> = tag.split(',').collect();
    match strategies.as_slice() {
        [single] if *single == "retainKeys" => Ok(""),
        [single] => Ok(single),
        [a, b] if *a == "retainKeys" => Ok(b),
        [a, b] if *b == "retainKeys" => Ok(a),
        _ => Err(SmpError::Other(format!(
            "unexpected patch strategy: [{}]",
            strategies.join(" ")
        ))),
    }
}

/// The Go dynamic type of a decoded value, for the type comparisons of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoType {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

fn go_type(v: &Value) -> GoType {
    match v {
        Value::Null => GoType::Nil,
        Value::Bool(_) => GoType::Bool,
        Value::Number(n) if n.is_i64() => GoType::Int,
        Value::Number(_) => GoType::Float,
        Value::String(_) => GoType::String,
        Value::Array(_) => GoType::Slice,
        Value::Object(_) => GoType::Map,
    }
}

/// `mergeMap`.
fn merge_map(mut original: Obj, mut patch: Obj, schema: Ty) -> Result<Obj> {
    if let Some(directive) = patch.get(DIRECTIVE).cloned() {
        return directive_in_map(&directive, patch);
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(orig) = original.remove(&key) else {
            if !is_delete_list {
                let mut value = patch_value;
                discard_nulls(&mut value);
                if let Some(value) = remove_directives(value) {
                    original.insert(key, value);
                }
            }
            continue;
        };
        if go_type(&orig) != go_type(&patch_value) {
            if is_delete_list {
                original.insert(key, orig);
            } else {
                let mut value = patch_value;
                discard_nulls(&mut value);
                if let Some(value) = remove_directives(value) {
                    original.insert(key, value);
                }
            }
            continue;
        }
        let merged = match (orig, patch_value) {
            (Value::Object(orig), Value::Object(patch_value)) => {
                let (sub, strategy, _) = lookup_struct(schema, &key)?;
                let strategy = other_strategy(strategy)?;
                if strategy == REPLACE {
                    Value::Object(patch_value)
                } else {
                    Value::Object(merge_map(orig, patch_value, sub)?)
                }
            }
            (Value::Array(orig), Value::Array(patch_value)) => {
                let (elem, strategy, merge_key) = lookup_slice(schema, &key)?;
                let strategy = other_strategy(strategy)?;
                Value::Array(
                    merge_slice_handler(
                        orig,
                        patch_value,
                        elem,
                        strategy,
                        merge_key,
                        is_delete_list,
                    )?
                    .0,
                )
            }
            (_, patch_value) => match remove_directives(patch_value) {
                Some(v) => v,
                None => continue,
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// `handleDirectiveInMergeMap`.
fn directive_in_map(directive: &Value, mut patch: Obj) -> Result<Obj> {
    match directive.as_str() {
        Some(REPLACE) => {
            patch.remove(DIRECTIVE);
            Ok(patch)
        }
        Some(DELETE) => Ok(Obj::new()),
        _ => Err(bad_patch_type(directive, &patch)),
    }
}

/// `extractKey`: the list name after `<prefix>/`.
fn extract_key(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_owned()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => {
            Err(SmpError::BadRequest(ERR_BAD_PRIMITIVE_LIST))
        }
        _ => Err(SmpError::BadRequest(ERR_BAD_SET_ELEMENT_ORDER)),
    }
}

/// `applyRetainKeysDirective`: clear the keys of `original` that the directive omits.
fn apply_retain_keys(original: &mut Obj, patch: &mut Obj) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(SmpError::BadRequest(ERR_BAD_RETAIN_KEYS));
    };
    let retained = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !retained(k) {
            return Err(SmpError::BadRequest(ERR_BAD_RETAIN_KEYS));
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// `mergePatchIntoOriginal`: merge each list named by a `$setElementOrder` directive and
/// order it as the directive says.
fn merge_set_element_order(original: &mut Obj, patch: &mut Obj, schema: Ty) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type(SLICE_TYPE, &order));
        };
        let list_key = extract_key(&key, SET_ELEMENT_ORDER)?;
        let mut original_list = match original.get(&list_key) {
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
            None => None,
        };
        let patch_list = match patch.get(&list_key) {
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
            None => None,
        };
        let (elem, strategy, merge_key) = lookup_slice(schema, &list_key)?;
        let strategy = other_strategy(strategy)?;
        validate_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;

        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                Some(Value::Array(v)) => v,
                _ => continue,
            },
            (Some(o), Some(p)) => {
                let (merged, window) =
                    merge_slice_handler(o.clone(), p.clone(), elem, strategy, merge_key, false)?;
                // The list was merged in place in Go: the live order used below is what the
                // shared backing array holds afterwards.
                original_list = Some(window);
                merged
            }
            (None, None) => continue,
        };
        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_primitives(merged, &order)
        } else {
            partition_maps(merged, &order, merge_key)?
        };
        let original_list = original_list.unwrap_or_default();
        let kind = slice_element_type(&[&original_list, patch_list.as_deref().unwrap_or(&[])])?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &original_list,
            merge_key,
            kind,
        )?;
        original.insert(list_key.clone(), Value::Array(both));
        patch.remove(&list_key);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list must follow the directive's order.
fn validate_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let (keep, _) = split_deletions(patch_list)?;
        keep
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if has_directive(non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_equal(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(SmpError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            gofmt::v(&Value::Array(patch_list.to_vec())),
            gofmt::v(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn has_directive(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}

/// `mergeKeyValueEqual`.
fn merge_key_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type(MAP_TYPE, left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type(MAP_TYPE, right))?;
    let lv = l.get(merge_key).ok_or_else(|| no_merge_key(l, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| no_merge_key(r, merge_key))?;
    Ok(lv == rv)
}

/// `extractToDeleteItems`: items to keep and items marked `$patch: delete`.
fn split_deletions(list: &[Value]) -> Result<(Vec<&Value>, Vec<&Value>)> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in list {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
        if m.get(DIRECTIVE).and_then(Value::as_str) == Some(DELETE) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// `mergeSliceHandler`: the merged list, and what the original list's backing array holds
/// afterwards (see [`merge_slice`]).
fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Ty,
    strategy: &str,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<(Vec<Value>, Vec<Value>)> {
    if strategy == MERGE || is_delete_list {
        merge_slice(original, patch, elem, merge_key, is_delete_list)
    } else {
        Ok((patch, original))
    }
}

/// `sliceElementType`: the one Go type of the elements of all lists.
fn slice_element_type(lists: &[&[Value]]) -> Result<GoType> {
    let mut prev: Option<GoType> = None;
    for list in lists {
        for v in *list {
            let t = go_type(v);
            match prev {
                None => {
                    if t == GoType::Slice {
                        return Err(SmpError::NoListOfLists);
                    }
                    prev = Some(t);
                }
                Some(p) if p != t => {
                    let printed: Vec<String> = lists
                        .iter()
                        .map(|l| gofmt::v(&Value::Array(l.to_vec())))
                        .collect();
                    return Err(SmpError::Other(format!(
                        "list element types are not identical: [{}]",
                        printed.join(" ")
                    )));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| SmpError::Other("no elements in any of the given slices".to_owned()))
}

/// `mergeSlice`. Besides the merged list it returns the original list as its Go backing
/// array reads afterwards: deletions shift items left in place and appends write into the
/// freed slots, and the caller that handles `$setElementOrder` orders by that array.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Ty,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<(Vec<Value>, Vec<Value>)> {
    if original.is_empty() && patch.is_empty() {
        return Ok((original.clone(), original));
    }
    let kind = slice_element_type(&[&original, &patch])?;
    let (server_order, patch, merged, window) = if kind == GoType::Map {
        if merge_key.is_empty() {
            return Err(SmpError::Other(format!(
                "cannot merge lists without merge key for {}",
                elem.kind_name()
            )));
        }
        let mut window = original.clone();
        let (current, patch) = merge_special_elements(&mut window, patch, merge_key)?;
        let merged =
            merge_without_special_elements(current.clone(), &patch, merge_key, elem, &mut window)?;
        (current, patch, merged, window)
    } else {
        if is_delete_list {
            let kept = original
                .iter()
                .filter(|v| !patch.contains(v))
                .cloned()
                .collect();
            return Ok((kept, original));
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original.clone(), patch, merged, original)
    };
    let (patch_items, server_only) = if merge_key.is_empty() {
        partition_primitives(merged, &patch)
    } else {
        partition_maps(merged, &patch, merge_key)?
    };
    let out = normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        merge_key,
        kind,
    )?;
    Ok((out, window))
}

/// `mergeSliceWithSpecialElements`: apply `$patch: delete` and `$patch: replace` items.
/// `window` is the original list's backing array, updated as Go's in-place deletions leave
/// it; the current list and the patch without special items are returned.
fn merge_special_elements(
    window: &mut [Value],
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut len = window.len();
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type(MAP_TYPE, &v));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let Some(key_value) = m.get(merge_key) else {
                    return Err(no_merge_key(m, merge_key));
                };
                // deleteMatchingEntries: append(original[:k], original[k+1:]...) per match.
                while let Some(k) = find_by_key(&window[..len], merge_key, key_value)? {
                    // The items after k move left; the last slot keeps its old item.
                    for i in k..len - 1 {
                        window[i] = window[i + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => {
                return Err(SmpError::Other(
                    "merging lists cannot yet be specified in the patch".to_owned(),
                ));
            }
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    Ok((window[..len].to_vec(), plain))
}

/// `findMapInSliceBasedOnKeyValue`.
fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(SmpError::Other(format!("value for key {i} is not a map")));
        };
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// `mergeSliceWithoutSpecialElements`: merge items by key, append new ones. Writes that
/// land inside the original backing array are mirrored into `window`.
fn merge_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    elem: Ty,
    window: &mut [Value],
) -> Result<Vec<Value>> {
    for v in patch {
        let Value::Object(pm) = v else {
            return Err(bad_arg_type(MAP_TYPE, v));
        };
        let Some(key_value) = pm.get(merge_key) else {
            return Err(no_merge_key(pm, merge_key));
        };
        match find_by_key(&original, merge_key, key_value)? {
            Some(i) => {
                let Value::Object(om) = std::mem::take(&mut original[i]) else {
                    return Err(SmpError::Other(format!("value for key {i} is not a map")));
                };
                original[i] = Value::Object(merge_map(om, pm.clone(), elem)?);
                if let Some(slot) = window.get_mut(i) {
                    slot.clone_from(&original[i]);
                }
            }
            None => {
                if let Some(slot) = window.get_mut(original.len()) {
                    slot.clone_from(v);
                }
                original.push(v.clone());
            }
        }
    }
    Ok(original)
}

/// `partitionPrimitivesByPresentInList`.
fn partition_primitives(merged: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    merged.into_iter().partition(|v| by.contains(v))
}

/// `partitionMapsByPresentInList`.
fn partition_maps(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for v in merged {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type(MAP_TYPE, &v));
        };
        let Some(key_value) = m.get(merge_key) else {
            return Err(no_merge_key(m, merge_key));
        };
        if find_by_key(by, merge_key, key_value)?.is_some() {
            in_patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((in_patch, server_only))
}

/// `index`: the position of `item` in `list`, by merge key for maps.
fn index(list: &[Value], item: &Value, merge_key: &str, kind: GoType) -> Option<usize> {
    let key_of = |v: &Value| -> Value {
        if kind == GoType::Map {
            v.as_object()
                .and_then(|m| m.get(merge_key))
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            v.clone()
        }
    };
    let wanted = key_of(item);
    list.iter().position(|v| key_of(v) == wanted)
}

/// `normalizeSliceOrder`: sort `to_sort` by `order`, deletions last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: GoType,
) -> Result<Vec<Value>> {
    let (mut to_sort, deletions) = if kind == GoType::Map {
        for v in to_sort.iter().chain(order.iter()) {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
        let (keep, delete): (Vec<Value>, Vec<Value>) = to_sort
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE));
        (keep, delete)
    } else {
        (to_sort, Vec::new())
    };
    // Every item to sort is found in `order` (they were partitioned by it), so the order is
    // total and the stable sort of Go gives the same result.
    to_sort.sort_by_key(|v| index(order, v, merge_key, kind).unwrap_or(usize::MAX));
    to_sort.extend(deletions);
    Ok(to_sort)
}

/// `normalizeElementOrder` and `mergeSortedSlice`: interleave the server-only items into the
/// patch items, keeping the relative order of each and the live order where both are known.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: GoType,
) -> Result<Vec<Value>> {
    let right = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let left = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    let less = |l: &Value, r: &Value| -> Option<bool> {
        let li = index(server_order, l, merge_key, kind)?;
        let ri = index(server_order, r, merge_key, kind)?;
        Some(li < ri)
    };
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => less(l, r) == Some(true),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// `removeDirectives`: drop maps carrying `$patch`; `None` when the value itself is one.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// `discardNullValuesFromPatch`.
fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
