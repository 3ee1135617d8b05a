//! The names a scenario may write under `images:`, read from the generated JSON Schema so that
//! the docs tests follow the model without a list of their own.
//!
//! Shared by `tests/docs.rs` (the README's table) and `tests/cli.rs` (the `relapse new` template).

use std::collections::BTreeSet;

use serde_json::Value;

/// Every field name (`manifest`, `requires`, `needs`, `exitCode`, `sslmodeEnv`, ...) and every
/// fixed value (`index`, `single`, `prefer`, ...) of `ImageBehaviour` and the types it contains.
pub fn image_schema_names() -> (BTreeSet<String>, BTreeSet<String>) {
    let schema: Value = serde_json::from_str(&relapse::scenario::schema::scenario_schema())
        .expect("the scenario schema is JSON");
    let defs = &schema["$defs"];
    let mut fields = BTreeSet::new();
    let mut values = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec!["ImageBehaviour".to_owned()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let def = &defs[name.as_str()];
        assert!(
            !def.is_null(),
            "no definition {name} in the scenario schema"
        );
        walk(def, &mut fields, &mut values, &mut todo);
    }
    (fields, values)
}

fn walk(
    v: &Value,
    fields: &mut BTreeSet<String>,
    values: &mut BTreeSet<String>,
    todo: &mut Vec<String>,
) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                todo.push(r.trim_start_matches("#/$defs/").to_owned());
            }
            if let Some(Value::String(c)) = m.get("const") {
                values.insert(c.clone());
            }
            if let Some(Value::Object(props)) = m.get("properties") {
                fields.extend(props.keys().cloned());
            }
            for child in m.values() {
                walk(child, fields, values, todo);
            }
        }
        Value::Array(items) => {
            for child in items {
                walk(child, fields, values, todo);
            }
        }
        _ => {}
    }
}
