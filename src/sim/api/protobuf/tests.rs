use serde_json::{Value, json};

use super::{ProtobufError, decode};

/// A body captured from kubectl 1.32.4 (`testdata/<name>.pb`) and the object the same command
/// prints with `--dry-run=client -o json` (`testdata/<name>.json`): what a JSON body would carry.
fn captured(name: &str) -> (Vec<u8>, Value) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim/api/protobuf/testdata");
    let pb = std::fs::read(dir.join(format!("{name}.pb"))).unwrap();
    let json =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    (pb, json)
}

#[test]
fn kubectl_create_bodies_decode_to_the_json_kubectl_would_send() {
    let cases = [
        ("namespace", "", "v1", "Namespace"),
        ("deployment", "apps", "v1", "Deployment"),
        ("deployment-zero-replicas", "apps", "v1", "Deployment"),
        ("secret-generic", "", "v1", "Secret"),
        ("configmap", "", "v1", "ConfigMap"),
        ("service-clusterip", "", "v1", "Service"),
        ("job", "batch", "v1", "Job"),
        ("cronjob", "batch", "v1", "CronJob"),
        (
            "rolebinding",
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
        ),
        (
            "clusterrolebinding",
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
        ),
        ("serviceaccount", "", "v1", "ServiceAccount"),
        ("quota", "", "v1", "ResourceQuota"),
        ("poddisruptionbudget", "policy", "v1", "PodDisruptionBudget"),
        ("priorityclass", "scheduling.k8s.io", "v1", "PriorityClass"),
        (
            "priorityclass-zero",
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
        ),
        ("ingress", "networking.k8s.io", "v1", "Ingress"),
    ];
    for (name, group, version, kind) in cases {
        let (pb, expected) = captured(name);
        let got = decode(&pb, group, version, kind).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn zero_values_that_go_writes_survive() {
    let (pb, _) = captured("deployment-zero-replicas");
    let got = decode(&pb, "apps", "v1", "Deployment").unwrap();
    assert_eq!(got["spec"]["replicas"], json!(0));
    let (pb, _) = captured("priorityclass-zero");
    let got = decode(&pb, "scheduling.k8s.io", "v1", "PriorityClass").unwrap();
    assert_eq!(got["value"], json!(0));
    // Empty strings gogo writes for unset non-pointer fields are left out.
    let (pb, _) = captured("namespace");
    let got = decode(&pb, "", "v1", "Namespace").unwrap();
    assert!(got["metadata"].get("generateName").is_none(), "{got}");
    assert_eq!(got["metadata"]["creationTimestamp"], Value::Null);
}

#[test]
fn secret_bytes_are_base64_as_in_json() {
    let (pb, _) = captured("secret-generic");
    let got = decode(&pb, "", "v1", "Secret").unwrap();
    assert_eq!(got["data"]["password"], "czNjcmV0");
}

fn unrecognized(s: &str) -> ProtobufError {
    ProtobufError::Unrecognized(s.to_string())
}

#[test]
fn broken_bodies_get_the_decoder_texts() {
    assert_eq!(
        decode(b"", "", "v1", "Namespace"),
        Err(unrecognized("empty data"))
    );
    assert_eq!(
        decode(b"{\"kind\":1}", "", "v1", "Namespace"),
        Err(unrecognized(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        ))
    );
    assert_eq!(
        decode(b"k8s", "", "v1", "Namespace").unwrap_err(),
        unrecognized(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    );
    assert_eq!(
        decode(b"k8s\0", "", "v1", "Namespace"),
        Err(unrecognized("empty body"))
    );
    let (pb, _) = captured("namespace");
    // Cut inside the envelope's typeMeta.
    assert_eq!(
        decode(&pb[..10], "", "v1", "Namespace"),
        Err(unrecognized("unexpected EOF"))
    );
}

/// An envelope naming `kind` in `api_version` around `raw`.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
        out.push(tag);
        out.push(u8::try_from(data.len()).unwrap());
        out.extend_from_slice(data);
    }
    let mut type_meta = Vec::new();
    field(&mut type_meta, 0x0a, api_version.as_bytes());
    field(&mut type_meta, 0x12, kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    field(&mut out, 0x0a, &type_meta);
    field(&mut out, 0x12, raw);
    out
}

#[test]
fn unknown_kinds_and_broken_messages_name_the_kind() {
    assert_eq!(
        decode(&envelope("v1", "Widget", b""), "", "v1", "Namespace"),
        Err(ProtobufError::Typed {
            kind: "Widget".to_string(),
            version: "v1".to_string(),
            detail: r#"no kind "Widget" is registered for version "v1" in scheme "pkg/api/legacyscheme/scheme.go:30""#.to_string(),
        })
    );
    // metadata (field 1) claims 5 bytes and has 1.
    assert_eq!(
        decode(
            &envelope("v1", "Namespace", b"\x0a\x05\x0a"),
            "",
            "v1",
            "Namespace"
        ),
        Err(ProtobufError::Typed {
            kind: "Namespace".to_string(),
            version: "v1".to_string(),
            detail: "unexpected EOF".to_string(),
        })
    );
}

#[test]
fn an_envelope_without_type_meta_takes_the_endpoints_kind() {
    let mut body = b"k8s\0".to_vec();
    // raw: a ConfigMap with metadata.name "a" and data {k: v}.
    let raw = b"\x0a\x03\x0a\x01a\x12\x06\x0a\x01k\x12\x01v";
    body.push(0x12);
    body.push(u8::try_from(raw.len()).unwrap());
    body.extend_from_slice(raw);
    let got = decode(&body, "", "v1", "ConfigMap").unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "creationTimestamp": null}, "data": {"k": "v"}})
    );
}

#[test]
fn go_durations() {
    assert_eq!(super::go_duration(0), "0s");
    assert_eq!(super::go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(super::go_duration(90_000_000_000), "1m30s");
    assert_eq!(super::go_duration(1_500_000_000), "1.5s");
    assert_eq!(super::go_duration(2_000_000), "2ms");
    assert_eq!(super::go_duration(-5_000_000_000), "-5s");
}

/// Rendering a message absent from the wire renders Go's zero struct, recursively; for every
/// message of the schema that stays small (pointers end the recursion, as they do in Go).
#[test]
fn zero_structs_of_every_message_stay_small() {
    let schema = super::schema().unwrap();
    for desc in schema.pool.all_messages() {
        let zero =
            super::message_json(schema, &prost_reflect::DynamicMessage::new(desc.clone()), 0);
        let size = zero.to_string().len();
        assert!(size < 4096, "{}: {size} bytes", desc.full_name());
    }
}
