//! Just enough of the Kubernetes protobuf encoding to read the access reviews kubectl sends:
//! its typed clients post `application/vnd.kubernetes.protobuf` bodies (`kubectl auth can-i`
//! creates a SelfSubjectAccessReview that way). The envelope is the magic `k8s\0` followed by
//! a `runtime.Unknown` (k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go); the
//! field numbers are those of k8s.io/api/authorization/v1/generated.proto and
//! k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto.

use serde_json::{Map, Value, json};

/// The media type of protobuf bodies.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: its number and, for length-delimited fields, its bytes.
struct Field<'a> {
    number: u64,
    bytes: Option<&'a [u8]>,
}

fn varint(data: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".to_owned())
}

fn fields(data: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let key = varint(data, &mut at)?;
        let number = key >> 3;
        let bytes = match key & 7 {
            0 => {
                varint(data, &mut at)?;
                None
            }
            1 => {
                at += 8;
                None
            }
            2 => {
                let len = usize::try_from(varint(data, &mut at)?).map_err(|e| e.to_string())?;
                let end = at.checked_add(len).filter(|e| *e <= data.len());
                let end = end.ok_or("length beyond the message")?;
                let bytes = &data[at..end];
                at = end;
                Some(bytes)
            }
            5 => {
                at += 4;
                None
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        if at > data.len() {
            return Err("truncated field".to_owned());
        }
        out.push(Field { number, bytes });
    }
    Ok(out)
}

/// The string fields of a message by JSON name, as `{name: value}`.
fn strings(data: &[u8], names: &[(u64, &str)]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for f in fields(data)? {
        if let (Some((_, name)), Some(bytes)) =
            (names.iter().find(|(n, _)| *n == f.number), f.bytes)
        {
            out.insert(
                (*name).to_owned(),
                Value::String(String::from_utf8_lossy(bytes).into_owned()),
            );
        }
    }
    Ok(out)
}

/// An access review (Self-, Local- or SubjectAccessReview) in its JSON form.
///
/// # Errors
/// A description of what is malformed when the body is not a protobuf envelope of one.
pub fn access_review(body: &[u8]) -> Result<Value, String> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the protobuf magic")?;
    let mut type_meta = Map::new();
    let mut raw: &[u8] = &[];
    for f in fields(unknown)? {
        match (f.number, f.bytes) {
            (1, Some(b)) => type_meta = strings(b, &[(1, "apiVersion"), (2, "kind")])?,
            (2, Some(b)) => raw = b,
            _ => {}
        }
    }
    let mut review = json!({"metadata": {}, "spec": {}});
    for (k, v) in type_meta {
        review[k] = v;
    }
    for f in fields(raw)? {
        match (f.number, f.bytes) {
            (1, Some(b)) => {
                review["metadata"] = Value::Object(strings(b, &[(1, "name"), (3, "namespace")])?);
            }
            (2, Some(b)) => review["spec"] = spec(b)?,
            _ => {}
        }
    }
    Ok(review)
}

fn spec(data: &[u8]) -> Result<Value, String> {
    let mut spec = Map::new();
    let mut groups = Vec::new();
    for f in fields(data)? {
        let Some(b) = f.bytes else { continue };
        match f.number {
            1 => {
                let attrs = strings(
                    b,
                    &[
                        (1, "namespace"),
                        (2, "verb"),
                        (3, "group"),
                        (4, "version"),
                        (5, "resource"),
                        (6, "subresource"),
                        (7, "name"),
                    ],
                )?;
                spec.insert("resourceAttributes".into(), Value::Object(attrs));
            }
            2 => {
                let attrs = strings(b, &[(1, "path"), (2, "verb")])?;
                spec.insert("nonResourceAttributes".into(), Value::Object(attrs));
            }
            3 => {
                spec.insert(
                    "user".into(),
                    Value::String(String::from_utf8_lossy(b).into_owned()),
                );
            }
            4 => groups.push(Value::String(String::from_utf8_lossy(b).into_owned())),
            6 => {
                spec.insert(
                    "uid".into(),
                    Value::String(String::from_utf8_lossy(b).into_owned()),
                );
            }
            _ => {}
        }
    }
    if !groups.is_empty() {
        spec.insert("groups".into(), Value::Array(groups));
    }
    Ok(Value::Object(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, u8::try_from(bytes.len()).unwrap()];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn reads_what_kubectl_auth_can_i_sends() {
        let attrs = [
            len_field(1, b"default"),
            len_field(2, b"list"),
            len_field(5, b"nodes"),
        ]
        .concat();
        let spec = len_field(1, &attrs);
        let raw = [len_field(1, b""), len_field(2, &spec)].concat();
        let type_meta = [
            len_field(1, b"authorization.k8s.io/v1"),
            len_field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [
            MAGIC.to_vec(),
            len_field(1, &type_meta),
            len_field(2, &raw),
            len_field(3, b""),
            len_field(4, b""),
        ]
        .concat();
        assert_eq!(
            access_review(&body).unwrap(),
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "nodes"}},
            })
        );
        assert!(access_review(b"{}").is_err());
        assert!(access_review(&[MAGIC, &[0x0a, 0x05, 0x01]].concat()).is_err());
    }
}
