//! Replays the kept fuzz inputs of the simulated API server (`fuzz/seeds`, `fuzz/corpus`,
//! `fuzz/regressions`) and asserts that every request gets a success or a well-formed Status,
//! never a panic, a hang or another kind of error.

#[path = "common/fuzz_request.rs"]
mod fuzz_request;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fuzz_request::{FuzzRequest, Harness};

const TARGET: &str = "sim_api_request";

/// A hang detector, not a performance bound: a request normally takes microseconds.
const BOUND: Duration = Duration::from_secs(30);

/// Panics in runtime workers, including in tasks the server spawns for watches.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Only the runtime's workers: other tests of this binary panic on their own threads.
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("tokio-"))
        {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }
        default(info);
    }));
}

fn fuzz_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(TARGET)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Selector bytes: method, resource, shape, name, namespace, Content-Type, Accept (indexes into
/// the tables of `fuzz_request.rs`).
const GET: u8 = 0;
const POST: u8 = 1;
const PUT: u8 = 2;
const PATCH: u8 = 3;
const DELETE: u8 = 4;
const CONFIGMAPS: u8 = 0;
const PODS: u8 = 2;
const NAMESPACES: u8 = 4;
const DEPLOYMENTS: u8 = 11;
const CRDS: u8 = 17;
const WIDGETS: u8 = 18;
const COLLECTION: u8 = 0;
const ITEM: u8 = 1;
const STATUS: u8 = 2;
const SCALE: u8 = 3;
const LOG: u8 = 4;
const FINALIZE: u8 = 5;
const ALL_NAMESPACES: u8 = 9;
const DISCOVERY: u8 = 11;
const JUNK: u8 = 13;
const X: u8 = 0;
const Y: u8 = 1;
const DEFAULT: u8 = 0;
const CT_NONE: u8 = 0;
const CT_JSON: u8 = 1;
const CT_YAML: u8 = 2;
const CT_JSON_PATCH: u8 = 3;
const CT_MERGE_PATCH: u8 = 4;
const CT_STRATEGIC: u8 = 5;
const CT_APPLY: u8 = 6;
const CT_PROTOBUF: u8 = 9;
const ACCEPT_JSON: u8 = 1;
const ACCEPT_TABLE: u8 = 2;
const ACCEPT_AGGREGATED: u8 = 3;

struct Seed {
    name: &'static str,
    selectors: [u8; 7],
    extra: &'static str,
    query: &'static str,
    body: &'static str,
    /// The status a fresh cluster with the fixtures answers.
    expect: u16,
}

const LAST_APPLIED: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"app-config\",\"namespace\":\"default\"}}\n"},"name":"app-config","namespace":"default"},"data":{"k":"v"}}"#;

// A table of seeds reads best one line of selectors each.
#[rustfmt::skip]
fn seeds() -> Vec<Seed> {
    let s = |name, selectors, extra, query, body, expect| Seed {
        name,
        selectors,
        extra,
        query,
        body,
        expect,
    };
    vec![
        s(
            "kubectl-apply-create",
            [POST, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_JSON, ACCEPT_JSON],
            "",
            "fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
            LAST_APPLIED,
            201,
        ),
        s(
            "strategic-merge-patch",
            [PATCH, DEPLOYMENTS, ITEM, X, DEFAULT, CT_STRATEGIC, ACCEPT_JSON],
            "",
            "fieldManager=kubectl-patch",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:1.27"},{"$patch":"delete","name":"gone"}]}}}}"#,
            200,
        ),
        s(
            "apply-patch-yaml",
            [PATCH, CONFIGMAPS, ITEM, Y, DEFAULT, CT_APPLY, ACCEPT_JSON],
            "",
            "fieldManager=kubectl&force=true",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n  labels:\n    app: y\ndata:\n  key: value\n",
            201,
        ),
        s(
            "json-patch",
            [PATCH, DEPLOYMENTS, ITEM, X, DEFAULT, CT_JSON_PATCH, ACCEPT_JSON],
            "",
            "",
            r#"[{"op":"test","path":"/metadata/name","value":"x"},{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]"#,
            200,
        ),
        s(
            "merge-patch-custom",
            [PATCH, WIDGETS, ITEM, X, DEFAULT, CT_MERGE_PATCH, ACCEPT_JSON],
            "",
            "",
            r#"{"spec":{"size":3},"metadata":{"labels":{"tier":"a"}}}"#,
            200,
        ),
        s(
            "strategic-patch-custom",
            [PATCH, WIDGETS, ITEM, X, DEFAULT, CT_STRATEGIC, ACCEPT_JSON],
            "",
            "",
            r#"{"spec":{"size":3}}"#,
            415,
        ),
        s(
            "scale-merge-patch",
            [PATCH, DEPLOYMENTS, SCALE, X, DEFAULT, CT_MERGE_PATCH, ACCEPT_JSON],
            "",
            "",
            r#"{"spec":{"replicas":2}}"#,
            200,
        ),
        s(
            "list-paged",
            [GET, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "limit=1&continue=&resourceVersion=0&resourceVersionMatch=NotOlderThan",
            "",
            200,
        ),
        s(
            "list-bad-continue",
            [GET, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "limit=1&continue=not-a-token",
            "",
            400,
        ),
        s(
            "list-selectors",
            [GET, PODS, ALL_NAMESPACES, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "labelSelector=app%3Dx,tier+notin+(a,b),!gone&fieldSelector=status.phase!%3DRunning,spec.nodeName%3D",
            "",
            200,
        ),
        s(
            "list-bad-field-selector",
            [GET, PODS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "fieldSelector=spec.unknown%3Dx",
            "",
            400,
        ),
        s(
            "list-table",
            [GET, PODS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_TABLE],
            "",
            "includeObject=Object",
            "",
            200,
        ),
        s(
            "watch-capped",
            [GET, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "watch=true&resourceVersion=1&timeoutSeconds=1&allowWatchBookmarks=true",
            "",
            200,
        ),
        s(
            "watch-bad-rv",
            [GET, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "watch=1&resourceVersion=abc&timeoutSeconds=1",
            "",
            400,
        ),
        s(
            "update-stale-rv",
            [PUT, CONFIGMAPS, ITEM, X, DEFAULT, CT_JSON, ACCEPT_JSON],
            "",
            "",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","resourceVersion":"1"},"data":{}}"#,
            409,
        ),
        s(
            "update-status",
            [PUT, PODS, STATUS, X, DEFAULT, CT_JSON, ACCEPT_JSON],
            "",
            "",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"status":{"phase":"Running"}}"#,
            200,
        ),
        s(
            "delete-foreground-precondition",
            [DELETE, DEPLOYMENTS, ITEM, X, DEFAULT, CT_JSON, ACCEPT_JSON],
            "",
            "",
            r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground","preconditions":{"resourceVersion":"1"}}"#,
            409,
        ),
        s(
            "delete-collection-dry-run",
            [DELETE, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "labelSelector=app%3Dx&dryRun=All",
            "",
            200,
        ),
        s(
            "pod-log",
            [GET, PODS, LOG, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "",
            "container=c&tailLines=10&limitBytes=5&timestamps=true",
            "",
            200,
        ),
        s(
            "namespace-finalize",
            [PUT, NAMESPACES, FINALIZE, X, DEFAULT, CT_JSON, ACCEPT_JSON],
            "",
            "",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"},"spec":{"finalizers":[]}}"#,
            200,
        ),
        s(
            "crd-create-yaml",
            [POST, CRDS, COLLECTION, X, DEFAULT, CT_YAML, ACCEPT_JSON],
            "",
            "",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.com\nspec:\n  group: example.com\n  scope: Cluster\n  names:\n    kind: Gadget\n    plural: gadgets\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n",
            201,
        ),
        s(
            "bad-yaml",
            [POST, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_YAML, ACCEPT_JSON],
            "",
            "",
            "metadata: [\n  name: x",
            400,
        ),
        s(
            "aggregated-discovery",
            [GET, CONFIGMAPS, DISCOVERY, 2, DEFAULT, CT_NONE, ACCEPT_AGGREGATED],
            "",
            "",
            "",
            200,
        ),
        // Bodies kubectl 1.32 sends for `create namespace demo` and `create configmap settings`
        // (src/sim/api/protobuf/testdata).
        s(
            "kubectl-create-protobuf-namespace",
            [POST, NAMESPACES, COLLECTION, X, DEFAULT, CT_PROTOBUF, ACCEPT_JSON],
            "",
            "fieldManager=kubectl-create&fieldValidation=Strict",
            "k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x1c\x0a\x14\x0a\x04demo\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00",
            201,
        ),
        s(
            "kubectl-create-protobuf-configmap",
            [POST, CONFIGMAPS, COLLECTION, X, DEFAULT, CT_PROTOBUF, ACCEPT_JSON],
            "",
            "fieldManager=kubectl-create&fieldValidation=Strict",
            "k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x123\x0a\x18\x0a\x08settings\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x09\x0a\x05empty\x12\x00\x12\x0c\x0a\x04mode\x12\x04fast\x1a\x00\x22\x00",
            201,
        ),
        s(
            "junk-path",
            [GET, CONFIGMAPS, JUNK, X, DEFAULT, CT_NONE, ACCEPT_JSON],
            "apis/../api/v1//namespaces",
            "",
            "",
            404,
        ),
    ]
}

fn encoded(seed: &Seed) -> Vec<u8> {
    FuzzRequest::encode_input(
        seed.selectors,
        seed.extra.as_bytes(),
        seed.query,
        seed.body.as_bytes(),
    )
}

/// Each seed, sent to a fresh cluster with the fixtures, gets the status it was written for:
/// the shared request builder builds the requests the seeds describe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_build_the_requests_they_describe() {
    for seed in seeds() {
        let data = encoded(&seed);
        let decoded = FuzzRequest::decode(&data);
        let mut harness = Harness::new();
        let api = harness.prepare().await;
        let answer = fuzz_request::send(&api, decoded.to_request().unwrap(), BOUND)
            .await
            .unwrap();
        assert_eq!(
            answer.status.as_u16(),
            seed.expect,
            "seed {} ({} {}): {}",
            seed.name,
            decoded.method,
            decoded.uri,
            String::from_utf8_lossy(&answer.body)
        );
        fuzz_request::check(&answer).unwrap_or_else(|e| panic!("seed {}: {e}", seed.name));
    }
}

/// The seed files are the seeds above; `RELAPSE_WRITE_FUZZ_SEEDS=1` rewrites them.
#[test]
fn seed_files_match_the_seeds() {
    let dir = fuzz_dir("seeds");
    if std::env::var_os("RELAPSE_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for seed in seeds() {
            std::fs::write(dir.join(seed.name), encoded(&seed)).unwrap();
        }
    }
    for seed in seeds() {
        let kept = std::fs::read(dir.join(seed.name))
            .unwrap_or_else(|e| panic!("seed file {} missing: {e}", seed.name));
        assert_eq!(kept, encoded(&seed), "seed file {} is stale", seed.name);
    }
}

#[test]
fn every_input_decodes_to_a_request() {
    let empty = FuzzRequest::decode(&[]);
    assert_eq!(empty.method, http::Method::GET);
    assert_eq!(empty.uri, "/api/v1/namespaces/default/configmaps");
    let junk = FuzzRequest::decode(&[
        255, 255, 13, 13, 5, 14, 9, b' ', 0x01, b'?', b'#', 0xC3, 0xFF, b'a', b'=', 0x00,
    ]);
    assert!(junk.uri.starts_with('/'), "{}", junk.uri);
    assert!(junk.content_type.is_none(), "a control byte cannot be sent");
    junk.to_request().unwrap();
}

/// Every kept input (seeds, the minimised corpus and fixed crashes) gets a success or a
/// well-formed Status, in order, against one cluster as the fuzz target sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_inputs_get_success_or_status() {
    count_panics();
    let mut harness = Harness::new();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for kind in ["seeds", "corpus", "regressions"] {
        for path in files(&fuzz_dir(kind)) {
            let data = std::fs::read(&path).unwrap();
            let before = PANICS.load(Ordering::SeqCst);
            let result = fuzz_request::run(&mut harness, &data, BOUND).await;
            // Let tasks the request spawned (watches, followed logs) run and end.
            tokio::task::yield_now().await;
            if let Err(e) = result {
                failures.push(format!("{}: {e}", path.display()));
            } else if PANICS.load(Ordering::SeqCst) != before {
                failures.push(format!("{}: a task panicked", path.display()));
            }
            replayed += 1;
        }
    }
    assert!(replayed >= seeds().len(), "only {replayed} inputs replayed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
