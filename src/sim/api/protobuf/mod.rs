//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), the encoding
//! kubectl's typed clients (`kubectl create namespace`, `create deployment`, ...) send.
//!
//! A body is the `k8s\0` magic, then a `runtime.Unknown` envelope (`typeMeta`, `raw`,
//! `contentEncoding`, `contentType`) whose `raw` is the typed message. The typed message is decoded
//! against the upstream schema (`proto/`, compiled by build.rs) and turned into the JSON object a
//! JSON body of the same Go object gives, so the normal create and update paths take it from
//! there. The protobuf schema alone cannot say how Go writes a field as JSON (its JSON name,
//! `omitempty`, pointers, inlined structs): `go-fields.txt`, read from the Go declarations by
//! `gen.py`, says it for every field that differs from the default.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as PbValue,
};
use serde_json::{Map, Value};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The magic every protobuf body starts with
/// (k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go, `protoEncodingPrefix`).
const MAGIC: &[u8] = b"k8s\0";

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// The API groups whose messages the schema holds, and their protobuf packages.
const GROUPS: &[(&str, &str)] = &[
    ("", "core"),
    ("apps", "apps"),
    ("autoscaling", "autoscaling"),
    ("batch", "batch"),
    ("coordination.k8s.io", "coordination"),
    ("discovery.k8s.io", "discovery"),
    ("events.k8s.io", "events"),
    ("networking.k8s.io", "networking"),
    ("policy", "policy"),
    ("rbac.authorization.k8s.io", "rbac"),
    ("scheduling.k8s.io", "scheduling"),
    ("storage.k8s.io", "storage"),
];

/// Messages nested without end only through pointers; a bound keeps a hostile body (or a zero
/// struct rendered for an absent field) from recursing without limit.
const MAX_DEPTH: usize = 100;

/// Why a protobuf body could not be decoded; the texts are the ones the real decoder gives, and
/// the caller wraps them as k8s.io/apiserver/pkg/endpoints/handlers/rest.go
/// (`transformDecodeError`) does.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    /// The body failed before a kind was known (no magic, a broken envelope).
    #[error("{0}")]
    Unrecognized(String),
    /// The envelope named a kind, and its message could not be decoded.
    #[error("{detail}")]
    Typed {
        /// The kind the envelope named (or the endpoint's, when it named none).
        kind: String,
        /// Its version.
        version: String,
        /// The decoder's error.
        detail: String,
    },
}

/// How Go writes one field as JSON, where that differs from the default.
#[derive(Debug, Default, Clone, Copy)]
struct GoField {
    /// `json:",inline"`: the struct's fields merge into the parent object.
    inline: bool,
    /// `json:"-"`: never written.
    skip: bool,
    /// No `omitempty`: zero values and nil are written.
    noomit: bool,
    /// A Go pointer: a zero value on the wire was set on purpose.
    pointer: bool,
    /// The JSON name when it is not the protobuf name.
    json: Option<&'static str>,
}

struct Schema {
    pool: DescriptorPool,
    fields: HashMap<(&'static str, &'static str), GoField>,
}

impl Schema {
    fn go(&self, message: &str, field: &str) -> GoField {
        self.fields
            .get(&(message, field))
            .copied()
            .unwrap_or_default()
    }
}

fn schema() -> Option<&'static Schema> {
    static SCHEMA: OnceLock<Option<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let pool = DescriptorPool::decode(
                &include_bytes!(concat!(env!("OUT_DIR"), "/k8s-protobuf.bin"))[..],
            )
            .ok()?;
            let mut fields = HashMap::new();
            for line in include_str!("go-fields.txt").lines() {
                if line.starts_with('#') {
                    continue;
                }
                let mut words = line.split_whitespace();
                let (Some(message), Some(field)) = (words.next(), words.next()) else {
                    continue;
                };
                let mut go = GoField::default();
                for flag in words {
                    match flag {
                        "inline" => go.inline = true,
                        "skip" => go.skip = true,
                        "noomit" => go.noomit = true,
                        "pointer" => go.pointer = true,
                        other => go.json = other.strip_prefix("json="),
                    }
                }
                fields.insert((message, field), go);
            }
            Some(Schema { pool, fields })
        })
        .as_ref()
}

/// Whether `data` starts like a protobuf body.
#[must_use]
pub fn recognizes(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// Decodes a protobuf body sent to an endpoint of `group`/`version`/`kind` into the JSON object
/// a JSON body of the same object gives, `apiVersion` and `kind` included.
///
/// # Errors
///
/// [`ProtobufError`] with the real decoder's text when the body is not a protobuf body, its
/// envelope is broken, its kind is unknown or its message does not decode.
pub fn decode(data: &[u8], group: &str, version: &str, kind: &str) -> Result<Value, ProtobufError> {
    // k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go (Serializer.Decode)
    if data.is_empty() {
        return Err(ProtobufError::Unrecognized("empty data".to_string()));
    }
    let Some(envelope) = data.strip_prefix(MAGIC) else {
        return Err(ProtobufError::Unrecognized(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
                .to_string(),
        ));
    };
    if envelope.is_empty() {
        return Err(ProtobufError::Unrecognized("empty body".to_string()));
    }
    let schema = schema().ok_or_else(|| {
        ProtobufError::Unrecognized("the protobuf schema could not be loaded".to_string())
    })?;
    let unknown_desc = schema.pool.get_message_by_name(UNKNOWN).ok_or_else(|| {
        ProtobufError::Unrecognized("the protobuf schema could not be loaded".to_string())
    })?;
    let unknown = DynamicMessage::decode(unknown_desc, envelope)
        .map_err(|e| ProtobufError::Unrecognized(go_error(&e)))?;
    let type_meta = message_field(&unknown, "typeMeta");
    let sent_version = type_meta
        .as_ref()
        .map(|m| string_field(m, "apiVersion"))
        .unwrap_or_default();
    let sent_kind = type_meta
        .as_ref()
        .map(|m| string_field(m, "kind"))
        .unwrap_or_default();
    let raw = match unknown.get_field_by_name("raw").as_deref() {
        Some(PbValue::Bytes(b)) => b.clone(),
        _ => bytes::Bytes::new(),
    };

    // runtime.Unknown.GroupVersionKind (schema.FromAPIVersionAndKind), then copyKindDefaults
    // from the endpoint's kind.
    let (mut actual_group, mut actual_version) = parse_group_version(&sent_version);
    let actual_kind = if sent_kind.is_empty() {
        kind.to_string()
    } else {
        sent_kind
    };
    if actual_version.is_empty() {
        actual_group = group.to_string();
        actual_version = version.to_string();
    }
    let group_version = if actual_group.is_empty() {
        actual_version.clone()
    } else {
        format!("{actual_group}/{actual_version}")
    };
    let typed = |detail: String| ProtobufError::Typed {
        kind: actual_kind.clone(),
        version: actual_version.clone(),
        detail,
    };

    let Some(desc) = kind_message(schema, &actual_group, &actual_version, &actual_kind) else {
        // k8s.io/apimachinery/pkg/runtime/error.go (notRegisteredErr), for the scheme of
        // k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go
        return Err(typed(format!(
            "no kind {} is registered for version {} in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            go_quote(&actual_kind),
            go_quote(&group_version)
        )));
    };
    let message = DynamicMessage::decode(desc, raw).map_err(|e| typed(go_error(&e)))?;
    let mut object = match message_json(schema, &message, 0) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    object.insert("apiVersion".to_string(), Value::String(group_version));
    object.insert("kind".to_string(), Value::String(actual_kind));
    Ok(Value::Object(object))
}

/// schema.ParseGroupVersion; an unparsable apiVersion gives an empty group and version.
fn parse_group_version(api_version: &str) -> (String, String) {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [""] => (String::new(), String::new()),
        [v] => (String::new(), (*v).to_string()),
        [g, v] => ((*g).to_string(), (*v).to_string()),
        _ => (String::new(), String::new()),
    }
}

/// The message of a registered kind: a top-level object with `metadata`.
fn kind_message(
    schema: &Schema,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<MessageDescriptor> {
    let package = GROUPS.iter().find(|(g, _)| *g == group)?.1;
    let desc = schema
        .pool
        .get_message_by_name(&format!("k8s.io.api.{package}.{version}.{kind}"))?;
    desc.get_field_by_name("metadata")?;
    Some(desc)
}

fn message_field(message: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    match message.get_field_by_name(name).as_deref() {
        Some(PbValue::Message(m)) if message.has_field_by_name(name) => Some(m.clone()),
        _ => None,
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    match message.get_field_by_name(name).as_deref() {
        Some(PbValue::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn int_field(message: &DynamicMessage, name: &str) -> i64 {
    match message.get_field_by_name(name).as_deref() {
        Some(PbValue::I64(n)) => *n,
        Some(PbValue::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

fn bytes_field(message: &DynamicMessage, name: &str) -> bytes::Bytes {
    match message.get_field_by_name(name).as_deref() {
        Some(PbValue::Bytes(b)) => b.clone(),
        _ => bytes::Bytes::new(),
    }
}

/// The text gogo-generated `Unmarshal` methods (k8s.io/api/*/generated.pb.go) give for a body
/// cut short: io.ErrUnexpectedEOF. prost reports a cut varint and an overlong one alike
/// ("invalid varint"); the cut one is what a truncated body gives, so both read as EOF here,
/// where gogo says `proto: integer overflow` for the overlong one. Other failures keep prost's
/// description.
fn go_error(err: &impl std::fmt::Display) -> String {
    let text = err.to_string();
    if [
        "buffer underflow",
        "delimited length exceeded",
        "invalid varint",
    ]
    .iter()
    .any(|t| text.contains(t))
    {
        "unexpected EOF".to_string()
    } else {
        let detail = text
            .strip_prefix("failed to decode Protobuf message: ")
            .unwrap_or(&text);
        format!("proto: {detail}")
    }
}

fn go_quote(s: &str) -> String {
    crate::sim::store::error::go_quote(s)
}

/// The JSON Go writes for a message, with the apimachinery types that marshal themselves.
fn message_json(schema: &Schema, message: &DynamicMessage, depth: usize) -> Value {
    let desc = message.descriptor();
    let name = desc.full_name();
    if let Some(special) = special_json(message, name) {
        return special;
    }
    let mut out = Map::new();
    if depth > MAX_DEPTH {
        return Value::Object(out);
    }
    for field in desc.fields() {
        let go = schema.go(name, field.name());
        if go.skip {
            continue;
        }
        let value = if message.has_field(&field) {
            present_json(schema, &field, &message.get_field(&field), go, depth)
        } else {
            absent_json(schema, &field, go, depth)
        };
        let Some(value) = value else { continue };
        if go.inline {
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
        } else {
            let key = go.json.unwrap_or_else(|| field.name());
            out.insert(key.to_string(), value);
        }
    }
    Value::Object(out)
}

/// apimachinery types with a `MarshalJSON` of their own.
fn special_json(message: &DynamicMessage, name: &str) -> Option<Value> {
    let value = match name.strip_prefix(META).map(|n| n.trim_start_matches('.')) {
        Some("Time") => time_json(message, false),
        Some("MicroTime") => time_json(message, true),
        Some("Duration") => Value::String(go_duration(int_field(message, "duration"))),
        Some("FieldsV1") => raw_json(&bytes_field(message, "Raw")),
        _ => match name {
            "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
                if int_field(message, "type") == 1 {
                    Value::String(string_field(message, "strVal"))
                } else {
                    Value::from(int_field(message, "intVal"))
                }
            }
            "k8s.io.apimachinery.pkg.api.resource.Quantity" => {
                let s = string_field(message, "string");
                Value::String(if s.is_empty() { "0".to_string() } else { s })
            }
            "k8s.io.apimachinery.pkg.runtime.RawExtension" => {
                raw_json(&bytes_field(message, "raw"))
            }
            _ => return None,
        },
    };
    Some(value)
}

/// metav1.Time (RFC 3339, seconds) and metav1.MicroTime (RFC 3339, microseconds); the zero time
/// is `null`.
fn time_json(message: &DynamicMessage, micro: bool) -> Value {
    let seconds = int_field(message, "seconds");
    let nanos = int_field(message, "nanos");
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Ok(ts) = jiff::Timestamp::from_second(seconds) else {
        return Value::Null;
    };
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        Value::String(format!("{base}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000))
    } else {
        Value::String(format!("{base}Z"))
    }
}

/// Embedded JSON (RawExtension, FieldsV1): the raw bytes are the JSON.
fn raw_json(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(raw).unwrap_or(Value::Null)
}

/// time.Duration.String.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(n, div));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = n / 60_000_000_000 % 60;
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `n / div` with the fraction Go prints (no trailing zeros).
fn fraction(n: u64, div: u64) -> String {
    let whole = n / div;
    let rest = n % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A field present on the wire: gogo writes every non-pointer field, so a zero scalar is left
/// out unless Go writes it (a pointer, or no `omitempty`).
fn present_json(
    schema: &Schema,
    field: &FieldDescriptor,
    value: &PbValue,
    go: GoField,
    depth: usize,
) -> Option<Value> {
    match value {
        PbValue::List(items) => Some(Value::Array(
            items
                .iter()
                .map(|v| element_json(schema, v, depth))
                .collect(),
        )),
        PbValue::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(map_key(k), element_json(schema, v, depth));
            }
            Some(Value::Object(out))
        }
        PbValue::Message(m) => Some(message_json(schema, m, depth + 1)),
        scalar => {
            if is_zero(scalar) && !go.noomit && !go.pointer && !field.is_list() {
                None
            } else {
                Some(element_json(schema, scalar, depth))
            }
        }
    }
}

/// A field absent from the wire: a nil pointer, slice or map, or a field another encoder left
/// out; Go writes `null` or the zero value unless `omitempty` drops it, and always writes a
/// non-pointer struct.
fn absent_json(
    schema: &Schema,
    field: &FieldDescriptor,
    go: GoField,
    depth: usize,
) -> Option<Value> {
    if field.is_list() || field.is_map() {
        return go.noomit.then_some(Value::Null);
    }
    if go.pointer {
        return go.noomit.then_some(Value::Null);
    }
    match field.kind() {
        Kind::Message(desc) => Some(message_json(schema, &DynamicMessage::new(desc), depth + 1)),
        Kind::String => go.noomit.then(|| Value::String(String::new())),
        Kind::Bool => go.noomit.then_some(Value::Bool(false)),
        Kind::Bytes => go.noomit.then_some(Value::Null),
        _ => go.noomit.then(|| Value::from(0)),
    }
}

fn is_zero(value: &PbValue) -> bool {
    match value {
        PbValue::Bool(b) => !b,
        PbValue::I32(n) | PbValue::EnumNumber(n) => *n == 0,
        PbValue::I64(n) => *n == 0,
        PbValue::U32(n) => *n == 0,
        PbValue::U64(n) => *n == 0,
        PbValue::F32(n) => *n == 0.0,
        PbValue::F64(n) => *n == 0.0,
        PbValue::String(s) => s.is_empty(),
        PbValue::Bytes(b) => b.is_empty(),
        PbValue::Message(_) | PbValue::List(_) | PbValue::Map(_) => false,
    }
}

/// One value as JSON, zero or not (list elements, map values, set scalars).
fn element_json(schema: &Schema, value: &PbValue, depth: usize) -> Value {
    match value {
        PbValue::Bool(b) => Value::Bool(*b),
        PbValue::I32(n) | PbValue::EnumNumber(n) => Value::from(*n),
        PbValue::I64(n) => Value::from(*n),
        PbValue::U32(n) => Value::from(*n),
        PbValue::U64(n) => Value::from(*n),
        PbValue::F32(n) => Value::from(f64::from(*n)),
        PbValue::F64(n) => Value::from(*n),
        PbValue::String(s) => Value::String(s.clone()),
        // encoding/json writes []byte as standard base64.
        PbValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PbValue::Message(m) => message_json(schema, m, depth + 1),
        PbValue::List(items) => Value::Array(
            items
                .iter()
                .map(|v| element_json(schema, v, depth))
                .collect(),
        ),
        PbValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (map_key(k), element_json(schema, v, depth)))
                .collect(),
        ),
    }
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests;
