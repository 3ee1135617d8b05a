//! Go's text forms of decoded JSON, for error messages that print Go values.
//!
//! The API server decodes JSON into `interface{}` (`map[string]interface {}`, `[]interface {}`,
//! `string`, `int64`, `float64`, `bool`, `nil`) and several of its messages print such values
//! with `%v`, `%q` or their `reflect` type; these helpers reproduce those forms.

use std::fmt::Write as _;

use serde_json::Value;

/// The JSON kind as Go's `encoding/json` names it in `cannot unmarshal <kind> into ...`.
pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The `reflect.TypeOf` name of a decoded value (integers decode as `int64`, as the API
/// server's case-sensitive, int-preserving decoder does).
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `%q` of a string: double-quoted with Go escapes.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64: shortest representation, exponent form outside [1e-4, 1e21).
fn float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        // Rust prints `1e21`/`1.5e-5`; Go prints `1e+21`/`1.5e-05`.
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{f}")
}

/// Go's `%v` of a decoded JSON value (`map[a:1 b:[x y]]`, map keys sorted as fmt does).
pub(super) fn v(value: &Value) -> String {
    let mut out = String::new();
    write_v(&mut out, value);
    out
}

fn write_v(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else {
                out.push_str(&float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            // serde_json maps iterate in key order, as fmt prints Go maps.
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v(out, item);
            }
            out.push(']');
        }
    }
}

/// Go's `%s` of an `interface{}`: strings as they are, other values as fmt's bad-verb form.
pub(super) fn s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => format!("%!s({}={})", type_name(other), v(other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prints_values_as_go_does() {
        assert_eq!(
            v(&json!({"b": [1, "x"], "a": null, "c": 1.5})),
            "map[a:<nil> b:[1 x] c:1.5]"
        );
        assert_eq!(v(&json!(1e21)), "1e+21");
        assert_eq!(v(&json!(0.00001)), "1e-05");
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(s(&json!(1)), "%!s(int64=1)");
        assert_eq!(type_name(&json!(1.5)), "float64");
    }
}
