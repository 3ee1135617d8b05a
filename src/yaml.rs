//! All YAML parsing in relapse goes through this module.
//!
//! Typed documents are read with `serde_yaml`, whose errors carry a line and column. Errors
//! found after parsing (a missing file, a duplicate name) are pointed at their node by
//! [`locate`], which walks the marked event stream of `yaml-rust2` along a path of keys and
//! indices. Kubernetes objects become `serde_json::Value`s, the form the rest of the crate uses.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in a text: 1-based line and column, and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Byte offset from the start of the text.
    pub offset: usize,
}

/// A YAML text that could not be read as the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What was wrong, without the position (it is in `location`).
    pub message: String,
    /// Where, when the parser knows.
    pub location: Option<Location>,
}

impl YamlError {
    fn from_serde(err: &serde_yaml::Error) -> Self {
        let location = err.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
            offset: l.index(),
        });
        let mut message = err.to_string();
        // serde_yaml appends " at line L column C"; the location is reported separately.
        if let Some(pos) = message.rfind(" at line ") {
            message.truncate(pos);
        }
        Self { message, location }
    }
}

/// Deserializes one YAML document into `T`.
///
/// # Errors
/// Returns a [`YamlError`] with the position of the first syntax or type error.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    // Syntax first: a mis-indented line otherwise surfaces as a confusing type error
    // ("missing field") at an earlier line, because deserialization stops before reaching it.
    check_syntax(text)?;
    // Enums are written as one-key maps (`- apply: {...}`), not as YAML tags (`!apply`).
    serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| YamlError::from_serde(&e))
}

/// Checks that `text` is well-formed YAML (all documents), pointing at the first syntax error.
///
/// # Errors
/// Returns a [`YamlError`] with the scanner's message and position.
pub fn check_syntax(text: &str) -> Result<(), YamlError> {
    let mut recorder = Recorder::default();
    Parser::new_from_str(text)
        .load(&mut recorder, true)
        .map_err(|e| YamlError {
            message: format!("invalid YAML: {}", e.info()),
            location: Some(marker_location(text, *e.marker())),
        })
}

/// Reads every document of a multi-document YAML text as JSON values, skipping empty documents.
///
/// # Errors
/// Returns a [`YamlError`] with the position of the first syntax error.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    check_syntax(text)?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| YamlError::from_serde(&e))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Reads one YAML (or JSON, which is YAML) document as a JSON value.
///
/// # Errors
/// Returns a [`YamlError`] with the position of the first syntax error.
pub fn value(text: &str) -> Result<Value, YamlError> {
    serde_yaml::from_str(text).map_err(|e| YamlError::from_serde(&e))
}

/// Writes a value as YAML.
///
/// # Errors
/// Fails only for values YAML cannot represent (maps with non-string keys).
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, YamlError> {
    let mut out = Vec::new();
    let mut ser = serde_yaml::Serializer::new(&mut out);
    serde_yaml::with::singleton_map_recursive::serialize(value, &mut ser)
        .map_err(|e| YamlError::from_serde(&e))?;
    String::from_utf8(out).map_err(|e| YamlError {
        message: format!("yaml output is not utf-8: {e}"),
        location: None,
    })
}

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl From<&str> for Segment {
    fn from(key: &str) -> Self {
        Self::Key(key.to_owned())
    }
}

impl From<usize> for Segment {
    fn from(index: usize) -> Self {
        Self::Index(index)
    }
}

/// Builds a path from keys and indices: `path!["setup", 0, "apply", "file"]`.
#[macro_export]
macro_rules! yaml_path {
    ($($seg:expr),* $(,)?) => {
        [$($crate::yaml::Segment::from($seg)),*]
    };
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

/// Finds where the node at `path` (in document `doc`, 0-based) starts.
///
/// For a mapping entry the location is that of its key, which is where a person looks.
/// When the path leads nowhere, the deepest node that exists on it is returned, so an error
/// about a missing field points at the mapping that lacks it. Returns `None` only when the
/// text does not parse or has fewer documents.
#[must_use]
pub fn locate(text: &str, doc: usize, path: &[Segment]) -> Option<Location> {
    let mut recorder = Recorder::default();
    Parser::new_from_str(text).load(&mut recorder, true).ok()?;
    let events = recorder.events;
    // Find the first node event of document `doc`.
    let mut docs_seen = 0;
    let mut i = 0;
    loop {
        let (ev, _) = events.get(i)?;
        i += 1;
        if matches!(ev, Event::DocumentStart) {
            if docs_seen == doc {
                break;
            }
            docs_seen += 1;
        }
    }
    let mut best = marker_location(text, events.get(i)?.1);
    let mut node = i;
    for seg in path {
        match (&events.get(node)?.0, seg) {
            (Event::MappingStart(..), Segment::Key(key)) => {
                let mut j = node + 1;
                let mut found = None;
                while let Some((ev, mark)) = events.get(j) {
                    match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(k, ..) if k == key => {
                            found = Some((j + 1, *mark));
                            break;
                        }
                        _ => j = skip_node(&events, j)?, // the key; the value is skipped below
                    }
                    j = skip_node(&events, j)?;
                }
                let Some((value, mark)) = found else {
                    return Some(best);
                };
                best = marker_location(text, mark);
                node = value;
            }
            (Event::SequenceStart(..), Segment::Index(idx)) => {
                let mut j = node + 1;
                for _ in 0..*idx {
                    if matches!(events.get(j)?.0, Event::SequenceEnd) {
                        return Some(best);
                    }
                    j = skip_node(&events, j)?;
                }
                if matches!(events.get(j)?.0, Event::SequenceEnd) {
                    return Some(best);
                }
                best = marker_location(text, events.get(j)?.1);
                node = j;
            }
            _ => return Some(best),
        }
    }
    Some(best)
}

/// Returns the index just past the node starting at `i`.
fn skip_node(events: &[(Event, Marker)], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    loop {
        match events.get(j)?.0 {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth = depth.checked_sub(1)?,
            _ => {}
        }
        j += 1;
        if depth == 0 {
            return Some(j);
        }
    }
}

fn marker_location(text: &str, mark: Marker) -> Location {
    // Markers count characters; spans need bytes.
    let offset = text
        .char_indices()
        .nth(mark.index())
        .map_or(text.len(), |(b, _)| b);
    Location {
        line: mark.line(),
        column: mark.col() + 1,
        offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: demo\nsetup:\n  - apply:\n      file: a.yaml\n  - apply:\n      file: b.yaml\nlist: [1, {x: 2}]\n";

    #[test]
    fn locates_keys_and_indices() {
        let loc = locate(TEXT, 0, &yaml_path!["setup", 1, "apply", "file"]).unwrap();
        assert_eq!((loc.line, loc.column), (6, 7));
        assert_eq!(&TEXT[loc.offset..loc.offset + 4], "file");
        let loc = locate(TEXT, 0, &yaml_path!["list", 1, "x"]).unwrap();
        assert_eq!((loc.line, loc.column), (7, 12));
    }

    #[test]
    fn missing_path_points_at_deepest_existing_node() {
        let loc = locate(TEXT, 0, &yaml_path!["setup", 0, "apply", "inline"]).unwrap();
        assert_eq!(loc.line, 3);
        let loc = locate(TEXT, 0, &yaml_path!["setup", 7]).unwrap();
        assert_eq!(loc.line, 2);
    }

    #[test]
    fn locates_in_later_documents() {
        let text = "a: 1\n---\nkind: Pod\nmetadata:\n  name: x\n";
        let loc = locate(text, 1, &yaml_path!["metadata", "name"]).unwrap();
        assert_eq!((loc.line, loc.column), (5, 3));
    }

    #[test]
    fn errors_carry_positions() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only its deserialization is under test")]
        struct T {
            name: String,
        }
        let err = from_str::<T>("name: x\nnmae: y\n").unwrap_err();
        assert!(
            err.message.contains("unknown field `nmae`"),
            "{}",
            err.message
        );
        assert_eq!(err.location.map(|l| (l.line, l.column)), Some((2, 1)));
        let err = documents("a: [1, 2\n").unwrap_err();
        assert!(err.location.is_some());
    }

    #[test]
    fn documents_skip_empty_ones() {
        let docs = documents("---\n# only a comment\n---\nkind: A\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
    }
}
