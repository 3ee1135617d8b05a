//! Label and field selectors: the `labelSelector` / `fieldSelector` query syntax and the
//! `metav1.LabelSelector` object form.

use serde_json::Value;

use super::error::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

impl LabelSelector {
    /// Parses the query syntax (`app=web,tier in (a,b),!canary`).
    ///
    /// # Errors
    /// A BadRequest when the text is not a selector.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_label_req(part)?);
        }
        Ok(Self { reqs })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    ///
    /// # Errors
    /// A BadRequest when an expression has an unknown operator.
    pub fn from_object(sel: &Value) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelReq::In(
                    k.clone(),
                    vec![v.as_str().unwrap_or_default().to_string()],
                ));
            }
        }
        for expr in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expr["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = expr["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(ToString::to_string))
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(match expr["operator"].as_str().unwrap_or_default() {
                "In" => LabelReq::In(key, values),
                "NotIn" => LabelReq::NotIn(key, values),
                "Exists" => LabelReq::Exists(key),
                "DoesNotExist" => LabelReq::NotExists(key),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "\"{other}\" is not a valid label selector operator"
                    )));
                }
            });
        }
        Ok(Self { reqs })
    }

    /// Whether the selector has no requirements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `labels` (a JSON object of strings, or null) satisfies every requirement.
    #[must_use]
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// The selector in query syntax, as `metav1.FormatLabelSelector` and the Scale subresource
    /// print it (`app=web,tier in (a,b)`); `<none>` is the caller's business.
    #[must_use]
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| match r {
                LabelReq::Exists(k) => k.clone(),
                LabelReq::NotExists(k) => format!("!{k}"),
                LabelReq::In(k, vs) if vs.len() == 1 => format!("{k}={}", vs[0]),
                LabelReq::In(k, vs) => format!("{k} in ({})", sorted(vs).join(",")),
                LabelReq::NotIn(k, vs) => format!("{k} notin ({})", sorted(vs).join(",")),
                LabelReq::Gt(k, n) => format!("{k}>{n}"),
                LabelReq::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect();
        // labels.Selector.String() sorts requirements by key.
        parts.sort();
        parts.join(",")
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn parse_label_req(part: &str) -> Result<LabelReq, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "unable to parse requirement: {part:?} is not a valid label selector requirement"
        ))
    };
    if let Some(rest) = part.strip_prefix('!') {
        let key = rest.trim();
        if key.is_empty() {
            return Err(bad());
        }
        return Ok(LabelReq::NotExists(key.to_string()));
    }
    for (op, is_not) in [(" notin ", true), (" in ", false)] {
        if let Some(pos) = part.find(op) {
            let key = part[..pos].trim().to_string();
            let list = part[pos + op.len()..].trim();
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            return Ok(if is_not {
                LabelReq::NotIn(key, values)
            } else {
                LabelReq::In(key, values)
            });
        }
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelReq::NotIn(
            k.trim().to_string(),
            vec![v.trim().to_string()],
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(LabelReq::In(
            k.trim().to_string(),
            vec![v.trim().to_string()],
        ));
    }
    if let Some((k, v)) = part.split_once('>') {
        return Ok(LabelReq::Gt(
            k.trim().to_string(),
            v.trim().parse().map_err(|_| bad())?,
        ));
    }
    if let Some((k, v)) = part.split_once('<') {
        return Ok(LabelReq::Lt(
            k.trim().to_string(),
            v.trim().parse().map_err(|_| bad())?,
        ));
    }
    if part.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(LabelReq::Exists(part.to_string()))
}

/// One requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    field: String,
    value: String,
    negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<FieldReq>,
}

impl FieldSelector {
    /// Parses `metadata.name=x,status.phase!=Running`, checking each field against `allowed`
    /// (besides `metadata.name` and `metadata.namespace`, which every kind supports).
    ///
    /// # Errors
    /// A BadRequest naming an unsupported field, worded as the API server's field label
    /// conversion does (pkg/apis/core/v1/conversion.go: `field label not supported: %s`).
    pub fn parse(text: &str, allowed: &[String]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_unescaped(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.iter().any(|a| a == field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push(FieldReq {
                field: field.to_string(),
                value: unescape(value.trim()),
                negate,
            });
        }
        Ok(Self { reqs })
    }

    /// Whether the selector has no requirements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The value a `metadata.name=x` requirement pins, if any.
    #[must_use]
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Whether the object satisfies every requirement. Absent fields read as the empty string.
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negate
        })
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(m) if path == "source" => m
            .get("component")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

fn split_unescaped(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in v.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front", "n": "5"});
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,api)", true),
            ("tier notin (front)", false),
            ("app,!canary", true),
            ("!app", false),
            ("n>3,n<9", true),
            ("app=web,tier=back", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&labels),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a in b").is_err());
        let obj = LabelSelector::from_object(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}))
        .unwrap();
        assert!(obj.matches(&labels));
        assert_eq!(obj.to_query(), "app=web,tier in (front,x)");
    }

    #[test]
    fn field_selectors() {
        let allowed = vec![
            "status.phase".to_string(),
            "involvedObject.name".to_string(),
        ];
        let pod =
            json!({"metadata": {"name": "p", "namespace": "d"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("metadata.name=p,status.phase=Running", &allowed)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("status.phase!=Running", &allowed)
                .unwrap()
                .matches(&pod)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=p", &allowed)
                .unwrap()
                .pinned_name(),
            Some("p")
        );
        let err = FieldSelector::parse("spec.foo=x", &allowed).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
