//! Random mutations of valid bodies and objects never panic (deterministic seed).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::{PatchKind, PatchRequest, apply_patch, record_update};

const FIXTURES: &str = include_str!("testdata/strategic.json");

const DIRECTIVE_KEYS: &[&str] = &[
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
    "$setElementOrder",
    "$deleteFromPrimitiveList",
    "containers",
    "finalizers",
    "name",
    "ports",
    "env",
];

fn random_leaf(rng: &mut StdRng) -> Value {
    match rng.random_range(0..9) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random_range(-3..100)),
        3 => json!(1.5),
        4 => json!(["delete", "replace", "merge", "x"][rng.random_range(0..4)]),
        5 => json!([]),
        6 => json!({}),
        7 => json!([{"name": "web"}, {"$patch": "delete", "name": "side"}]),
        _ => json!(["a", ["b"], {"c": null}]),
    }
}

/// Replaces, deletes or adds one node somewhere in `v`.
fn mutate(v: &mut Value, rng: &mut StdRng, depth: usize) {
    let descend = depth < 12 && rng.random_bool(0.7);
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let i = rng.random_range(0..m.len());
            if let Some(child) = m.values_mut().nth(i) {
                mutate(child, rng, depth + 1);
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            mutate(&mut a[i], rng, depth + 1);
        }
        Value::Object(m) => match rng.random_range(0..3) {
            0 if !m.is_empty() => {
                let key = m
                    .keys()
                    .nth(rng.random_range(0..m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&key);
            }
            _ => {
                let key = DIRECTIVE_KEYS[rng.random_range(0..DIRECTIVE_KEYS.len())];
                m.insert(key.to_owned(), random_leaf(rng));
            }
        },
        Value::Array(a) => {
            if rng.random_bool(0.5) && !a.is_empty() {
                a.remove(rng.random_range(0..a.len()));
            } else {
                a.push(random_leaf(rng));
            }
        }
        other => *other = random_leaf(rng),
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut StdRng) {
    if bytes.is_empty() {
        bytes.push(b'{');
        return;
    }
    let i = rng.random_range(0..bytes.len());
    match rng.random_range(0..4) {
        0 => bytes[i] = rng.random(),
        1 => {
            bytes.remove(i);
        }
        2 => {
            let alphabet = b"{}[]\":,-\n ntf0";
            bytes.insert(i, alphabet[rng.random_range(0..alphabet.len())]);
        }
        _ => bytes.truncate(i),
    }
}

#[test]
fn random_mutations_never_panic() {
    let fixtures: Map<String, Value> = serde_json::from_str(FIXTURES).unwrap();
    let cases: Vec<&Value> = fixtures.values().collect();
    let mut rng = StdRng::seed_from_u64(0x5eed_4e1a);
    let mut outcomes = [0usize; 2];
    for round in 0..3000 {
        let case = cases[round % cases.len()];
        let api_version = case["apiVersion"].as_str().unwrap();
        let kind_name = case["kind"].as_str().unwrap();
        let mut live = case["live"].clone();
        let mut patch = case["patch"].clone();
        for _ in 0..rng.random_range(1..4) {
            mutate(&mut patch, &mut rng, 0);
        }
        if rng.random_bool(0.3) {
            mutate(&mut live, &mut rng, 0);
        }
        let kind = [
            PatchKind::Json,
            PatchKind::Merge,
            PatchKind::Strategic,
            PatchKind::Apply,
        ][round % 4];
        let mut body = match kind {
            PatchKind::Json => {
                let op = ["add", "remove", "replace", "move", "copy", "test", "bogus"]
                    [rng.random_range(0..7)];
                let path = [
                    "/metadata/labels/x",
                    "/spec",
                    "",
                    "/a/b",
                    "/spec/template/spec/containers/0",
                ][rng.random_range(0..5)];
                json!([{"op": op, "path": path, "from": "/metadata", "value": patch.clone()}])
                    .to_string()
                    .into_bytes()
            }
            PatchKind::Apply => {
                let mut config = live.clone();
                mutate(&mut config, &mut rng, 0);
                if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("managedFields");
                }
                config.to_string().into_bytes()
            }
            _ => patch.to_string().into_bytes(),
        };
        if rng.random_bool(0.2) {
            mutate_bytes(&mut body, &mut rng);
        }
        let current = if rng.random_bool(0.1) {
            None
        } else {
            Some(&live)
        };
        let req = PatchRequest {
            kind,
            api_version,
            object_kind: kind_name,
            current,
            body: &body,
            field_manager: if rng.random_bool(0.05) {
                None
            } else {
                Some("fuzz")
            },
            force: rng.random_bool(0.5),
            now: "2025-01-01T00:00:00Z",
        };
        let result = apply_patch(&req);
        outcomes[usize::from(result.is_ok())] += 1;
        if let Ok(mut out) = result {
            record_update(
                "fuzz-update",
                api_version,
                Some(&live),
                &mut out,
                "2025-01-01T00:00:01Z",
            );
        }
    }
    // Both outcomes occur: the loop exercises the merges, not only the parsers.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}
