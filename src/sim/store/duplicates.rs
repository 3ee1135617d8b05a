//! Duplicate fields in request bodies, found as the API server's strict decoders find them.
//!
//! JSON: sigs.k8s.io/json internal/golang/encoding/json/decode.go (`object`: `checkDuplicateField`
//! before the key joins the field stack) and kubernetes_patch.go (`newFieldError`: the stack
//! joined with `.`, list items as `[i]`; `strictError.Error`: `duplicate field "<path>"`;
//! `saveStrictError`: deduplicated, at most 100). A duplicate is reported where its second
//! occurrence is met, so the errors come in the body's order.
//!
//! YAML: sigs.k8s.io/yaml v1.4.0 goyaml.v2/decode.go (`setMapIndex` in strict mode:
//! `line %d: key %#v already set in map`, the line of the repeated key's value) and
//! goyaml.v2/yaml.go (`TypeError.Error`: `yaml: unmarshal errors:` and one indented line each).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// What strict decoding of a JSON body meets: the duplicated paths in the order met, and the
/// offset where each path first occurs (to order other strict errors the same way).
#[derive(Debug, Default)]
pub struct JsonScan {
    /// Paths of repeated keys with the offset of their repetition.
    pub duplicates: Vec<(String, usize)>,
    /// The offset of the first occurrence of every key path.
    pub first_seen: HashMap<String, usize>,
}

impl JsonScan {
    /// The texts of the duplicate errors (`duplicate field "spec.replicas"`), leaving out those
    /// below an `unknown` field: the Go decoder skips an unknown field's value unchecked.
    #[must_use]
    pub fn duplicate_errors(&self, unknown: &[String]) -> Vec<(String, usize)> {
        self.duplicates
            .iter()
            .filter(|(p, _)| {
                !unknown.iter().any(|u| {
                    p.strip_prefix(u.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
                })
            })
            .take(100)
            .map(|(p, at)| (format!("duplicate field {}", go_quote_path(p)), *at))
            .collect()
    }
}

fn go_quote_path(p: &str) -> String {
    crate::sim::store::error::go_quote(p)
}

/// Scans a JSON text for repeated keys; a text that does not parse yields what was seen so far
/// (the decoder reports the syntax error first anyway).
#[must_use]
pub fn scan_json(text: &[u8]) -> JsonScan {
    let mut scan = JsonScan::default();
    let mut s = Scanner { text, pos: 0 };
    s.value(&mut String::new(), &mut scan);
    scan
}

struct Scanner<'t> {
    text: &'t [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while self
            .text
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    /// Reads a string literal, returning its decoded text (`None` past the end).
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.text.get(self.pos)? {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    let raw = std::str::from_utf8(&self.text[start..self.pos]).ok()?;
                    return serde_json::from_str(raw).ok();
                }
                _ => self.pos += 1,
            }
        }
    }

    fn value(&mut self, path: &mut String, scan: &mut JsonScan) -> Option<()> {
        self.ws();
        match self.text.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                let mut seen = std::collections::HashSet::new();
                loop {
                    self.ws();
                    match self.text.get(self.pos)? {
                        b'}' => {
                            self.pos += 1;
                            return Some(());
                        }
                        b',' => {
                            self.pos += 1;
                            continue;
                        }
                        b'"' => {}
                        _ => return None,
                    }
                    let at = self.pos;
                    let key = self.string()?;
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&key);
                    if seen.insert(key) {
                        scan.first_seen.entry(path.clone()).or_insert(at);
                    } else if !scan.duplicates.iter().any(|(p, _)| p == path) {
                        scan.duplicates.push((path.clone(), at));
                    }
                    self.ws();
                    if self.text.get(self.pos) == Some(&b':') {
                        self.pos += 1;
                    }
                    let r = self.value(path, scan);
                    path.truncate(len);
                    r?;
                }
            }
            b'[' => {
                self.pos += 1;
                let mut i = 0;
                loop {
                    self.ws();
                    match self.text.get(self.pos)? {
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        b',' => {
                            self.pos += 1;
                            continue;
                        }
                        _ => {}
                    }
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let r = self.value(path, scan);
                    path.truncate(len);
                    r?;
                    i += 1;
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                while self
                    .text
                    .get(self.pos)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

#[derive(Default)]
struct Recorder {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.events.push((ev, mark));
    }
}

/// A YAML key as Go's `%#v` prints the decoded `interface{}`: strings quoted, plain integers
/// and booleans bare.
fn go_key(key: &str, style: TScalarStyle) -> String {
    if style == TScalarStyle::Plain
        && (key.parse::<i64>().is_ok() || matches!(key, "true" | "false"))
    {
        return key.to_string();
    }
    crate::sim::store::error::go_quote(key)
}

/// The strict YAML decoder's error for repeated keys in the first document of `text`, if any
/// (`yaml: unmarshal errors:\n  line 5: key "replicas" already set in map`).
#[must_use]
pub fn yaml_error(text: &str) -> Option<String> {
    let mut rec = Recorder::default();
    Parser::new_from_str(text).load(&mut rec, false).ok()?;
    let mut lines = Vec::new();
    // One frame per open collection: for mappings the keys seen and whether a key is next.
    enum Frame {
        Map {
            keys: std::collections::HashSet<String>,
            expect_key: bool,
            dup: Option<String>,
        },
        Seq,
    }
    let mut stack: Vec<Frame> = Vec::new();
    for (ev, mark) in &rec.events {
        // A node in value position of a mapping whose key repeated: report at its line.
        let is_node = matches!(
            ev,
            Event::Scalar(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
                | Event::Alias(_)
        );
        if is_node
            && let Some(Frame::Map {
                keys,
                expect_key,
                dup,
            }) = stack.last_mut()
        {
            if *expect_key {
                if let Event::Scalar(k, style, ..) = ev {
                    let repr = go_key(k, *style);
                    if !keys.insert(repr.clone()) {
                        *dup = Some(repr);
                    }
                }
                *expect_key = false;
            } else {
                if let Some(k) = dup.take() {
                    lines.push(format!("line {}: key {k} already set in map", mark.line()));
                }
                *expect_key = true;
            }
        }
        match ev {
            Event::MappingStart(..) => stack.push(Frame::Map {
                keys: std::collections::HashSet::new(),
                expect_key: true,
                dup: None,
            }),
            Event::SequenceStart(..) => stack.push(Frame::Seq),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    (!lines.is_empty()).then(|| format!("yaml: unmarshal errors:\n  {}", lines.join("\n  ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_duplicates_are_named_by_path_in_body_order() {
        let body = br#"{"spec":{"replicas":1,"template":{"metadata":{"labels":{"a":"1","a":"2"}}},"replicas":3},"items":[{"x":1,"x":2}]}"#;
        let scan = scan_json(body);
        let errs: Vec<String> = scan
            .duplicate_errors(&[])
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        assert_eq!(
            errs,
            [
                r#"duplicate field "spec.template.metadata.labels.a""#,
                r#"duplicate field "spec.replicas""#,
                r#"duplicate field "items[0].x""#,
            ]
        );
        assert!(scan.first_seen["spec.replicas"] < scan.first_seen["items"]);
        // Below an unknown field nothing is checked.
        assert_eq!(scan.duplicate_errors(&["items".to_string()]).len(), 2);
    }

    #[test]
    fn a_repeated_duplicate_is_reported_once() {
        let scan = scan_json(br#"{"a":1,"a":2,"a":3}"#);
        assert_eq!(scan.duplicate_errors(&[]).len(), 1);
    }

    #[test]
    fn yaml_duplicates_name_the_line_of_the_repeated_value() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 1\n  replicas: 2\n  template:\n    metadata:\n      labels: {a: b, a: c}\n";
        assert_eq!(
            yaml_error(text).as_deref(),
            Some(
                "yaml: unmarshal errors:\n  line 5: key \"replicas\" already set in map\n  line 8: key \"a\" already set in map"
            )
        );
        assert_eq!(yaml_error("a: 1\nb: {c: 2}\n"), None);
        assert_eq!(
            yaml_error(r#"{"a":1,"a":2}"#).as_deref(),
            Some("yaml: unmarshal errors:\n  line 1: key \"a\" already set in map")
        );
    }
}
