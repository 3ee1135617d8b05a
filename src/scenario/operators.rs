//! The operators of expected trees (`$not`, `$regex`, `$gt`, ...): their names and the checks a
//! scenario file gets when it is loaded. What they mean is in `run::matcher`, which applies them.

use serde_json::Value;

/// The operators a matcher map may use.
pub const OPERATORS: [&str; 12] = [
    "$not",
    "$absent",
    "$regex",
    "$prefix",
    "$suffix",
    "$contains",
    "$lacks",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$oneOf",
];

/// Whether `v` is an operator map (every key starts with `$`).
#[must_use]
pub fn is_operator(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| !m.is_empty() && m.keys().all(|k| k.starts_with('$')))
}

/// Checks an expected tree's operators (known names, right argument types, patterns that
/// compile), returning one message per problem with its path in the tree.
#[must_use]
pub fn check_operators(expected: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check_walk(expected, &mut String::new(), &mut problems);
    problems
}

fn check_walk(v: &Value, path: &mut String, problems: &mut Vec<String>) {
    match v {
        Value::Object(m) if is_operator(v) => {
            for (op, arg) in m {
                let at = if path.is_empty() { "." } else { path.as_str() };
                let bad = |what: &str| format!("{at}: `{op}` needs {what}");
                let problem = match op.as_str() {
                    "$not" => {
                        let len = path.len();
                        path.push_str(".$not");
                        check_walk(arg, path, problems);
                        path.truncate(len);
                        None
                    }
                    "$absent" if !arg.is_boolean() => Some(bad("true or false")),
                    "$regex" => match arg.as_str().map(regex::Regex::new) {
                        Some(Ok(_)) => None,
                        Some(Err(e)) => Some(format!("{at}: invalid `$regex`: {e}")),
                        None => Some(bad("a pattern (text)")),
                    },
                    "$prefix" | "$suffix" if !arg.is_string() => Some(bad("text")),
                    "$lacks" | "$oneOf" if !arg.is_array() => Some(bad("a list")),
                    "$gt" | "$gte" | "$lt" | "$lte" if !arg.is_number() => Some(bad("a number")),
                    known if OPERATORS.contains(&known) => None,
                    unknown => Some(format!(
                        "{at}: unknown operator `{unknown}`; expected one of: {}",
                        OPERATORS.join(", ")
                    )),
                };
                problems.extend(problem);
            }
        }
        Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                check_walk(child, path, problems);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_walk(child, path, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}
