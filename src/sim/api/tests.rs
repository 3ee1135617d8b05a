use std::time::Duration;

use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::*;
use crate::sim::SimCluster;

async fn call(
    api: &ApiServer,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = api.handle(req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn api() -> ApiServer {
    SimCluster::start().api().clone()
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn crud_round_trip() {
    let api = api();
    let (code, created) = call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(created["kind"], "ConfigMap");
    let (code, got) = call(&api, "GET", &format!("{CM}/a"), "", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got["data"]["k"], "v");
    let (code, list) = call(&api, "GET", &format!("{CM}?labelSelector="), "", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["kind"], "ConfigMapList");
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
    let (code, deleted) = call(
        &api,
        "DELETE",
        &format!("{CM}/a"),
        "application/json",
        r#"{"propagationPolicy":"Background"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(deleted["status"], "Success");
    assert_eq!(deleted["details"]["kind"], "configmaps");
    let (code, missing) = call(&api, "GET", &format!("{CM}/a"), "", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], r#"configmaps "a" not found"#);
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(missing["kind"], "Status");
    let (code, invalid) = call(
        &api,
        "DELETE",
        &format!("{CM}/b"),
        "application/json",
        r#"{"propagationPolicy":"Sideways"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        invalid["message"],
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan", "nil""#
    );
}

#[tokio::test]
async fn malformed_requests_get_status_errors() {
    let api = api();
    let (code, s) = call(&api, "POST", CM, "application/json", "{not json").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(s["message"].as_str().unwrap().starts_with("the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: "), "{s}");
    let (code, s) = call(
        &api,
        "POST",
        CM,
        "application/yaml",
        "metadata: {name: y}\ndata: {k: v}\n",
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    let (code, s) = call(&api, "POST", CM, "application/yaml", "metadata: [unclosed").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{s}");
    let (code, s) = call(&api, "POST", CM, "text/plain", "hello").await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(s["reason"], "UnsupportedMediaType");
    assert_eq!(
        s["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    let (code, s) = call(&api, "GET", "/apis/example.com/v1/widgets", "", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        s["message"],
        "the server could not find the requested resource"
    );
    let (code, _) = call(&api, "GET", "/nope", "", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let (code, s) = call(&api, "POST", CM, "application/json", &big).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s["message"], "Request entity too large: limit is 3145728");
    let (code, s) = call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    let (code, s) = call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );
    let (code, s) = call(&api, "PUT", CM, "application/json", "{}").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(s["reason"], "MethodNotAllowed");
    let (code, s) = call(&api, "GET", &format!("{CM}?labelSelector=a+in+b"), "", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{s}");
    let (code, s) = call(
        &api,
        "GET",
        &format!("{CM}?fieldSelector=spec.x%3D1"),
        "",
        "",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(s["message"], "field label not supported: spec.x");
}

#[tokio::test]
async fn stale_update_conflicts() {
    let api = api();
    let (_, created) = call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"metadata":{"name":"c"}}"#,
    )
    .await;
    let mut changed = created.clone();
    changed["data"] = json!({"a": "1"});
    let (code, _) = call(
        &api,
        "PUT",
        &format!("{CM}/c"),
        "application/json",
        &changed.to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, s) = call(
        &api,
        "PUT",
        &format!("{CM}/c"),
        "application/json",
        &created.to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(s["reason"], "Conflict");
    let (code, s) = call(
        &api,
        "PUT",
        &format!("{CM}/other"),
        "application/json",
        &created.to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        "the name of the object (c) does not match the name on the URL (other)"
    );
}

#[tokio::test]
async fn discovery_and_openapi() {
    let api = api();
    let (code, v) = call(&api, "GET", "/version", "", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["minor"], "32");
    let req = Request::builder()
        .uri("/apis")
        .header(
            header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = api.handle(req).await;
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        discovery::AGGREGATED_V2
    );
    let (code, idx) = call(&api, "GET", "/openapi/v3", "", "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(idx["paths"]["apis/apps/v1"].is_object());
    let (code, _) = call(&api, "GET", "/openapi/v3/apis/apps/v1", "", "").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = call(&api, "GET", "/openapi/v2", "", "").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn scale_subresource_reads_replicas() {
    let api = api();
    let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (code, _) = call(
        &api,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        &d.to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, scale) = call(
        &api,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        "",
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");
    let mut next = scale.clone();
    next["spec"]["replicas"] = json!(5);
    let (code, scaled) = call(
        &api,
        "PUT",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        "application/json",
        &next.to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 5);
    let (_, d) = call(
        &api,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "",
        "",
    )
    .await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
    let (code, _) = call(
        &api,
        "PUT",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        "application/json",
        &scale.to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
}

#[tokio::test]
async fn patch_content_types_are_checked() {
    let api = api();
    call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"metadata":{"name":"p"}}"#,
    )
    .await;
    let (code, s) = call(&api, "PATCH", &format!("{CM}/p"), "application/json", "{}").await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        s["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    );
    let (code, s) = call(
        &api,
        "PATCH",
        &format!("{CM}/missing"),
        "application/merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{s}");
}

async fn patched(api: &ApiServer, content_type: &str, body: &str) -> Value {
    let (code, v) = call(
        api,
        "PATCH",
        &format!("{CM}/p?fieldManager=test"),
        content_type,
        body,
    )
    .await;
    assert!(code.is_success(), "{code}: {v}");
    v
}

#[tokio::test]
async fn patches_go_through_the_engine() {
    let api = api();
    call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"metadata":{"name":"p"},"data":{"a":"1"}}"#,
    )
    .await;
    assert_eq!(
        patched(
            &api,
            "application/merge-patch+json",
            r#"{"data":{"b":"2"}}"#
        )
        .await["data"],
        json!({"a": "1", "b": "2"})
    );
    let v = patched(
        &api,
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/data/a"}]"#,
    )
    .await;
    assert_eq!(v["data"], json!({"b": "2"}));
    let v = patched(
        &api,
        "application/strategic-merge-patch+json",
        r#"{"data":{"c":"3"}}"#,
    )
    .await;
    assert_eq!(v["data"], json!({"b": "2", "c": "3"}));
    let v = patched(
        &api,
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\ndata:\n  d: '4'\n",
    )
    .await;
    assert_eq!(v["data"]["d"], "4");
    // Server-side apply creates what is missing.
    let (code, v) = call(
        &api,
        "PATCH",
        &format!("{CM}/fresh?fieldManager=test"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh\n",
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn watch_streams_events_and_expires_old_versions() {
    let cluster = SimCluster::start();
    let api = cluster.api().clone();
    let rv = cluster.store().resource_version();
    let req = Request::builder()
        .uri(format!(
            "{CM}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=30"
        ))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = api.handle(req).await.into_body();
    call(
        &api,
        "POST",
        CM,
        "application/json",
        r#"{"metadata":{"name":"w"}}"#,
    )
    .await;
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let line: Value = serde_json::from_slice(frame.data_ref().unwrap()).unwrap();
    assert_eq!(line["type"], "ADDED");
    assert_eq!(line["object"]["metadata"]["name"], "w");
    assert!(line["object"]["metadata"]["resourceVersion"].is_string());
    drop(body);

    cluster.store().compact();
    let req = Request::builder()
        .uri(format!("{CM}?watch=true&resourceVersion={rv}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = api.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let line: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(line["type"], "ERROR");
    assert_eq!(line["object"]["code"], 410);
    assert_eq!(line["object"]["reason"], "Expired");
}

#[tokio::test]
async fn a_watcher_that_falls_behind_gets_410_and_its_stream_ends() {
    let cluster = crate::sim::SimClusterBuilder::default()
        .store_config(crate::sim::store::StoreConfig {
            watch_history: 100,
            ..crate::sim::store::StoreConfig::default()
        })
        .start();
    let api = cluster.api().clone();
    let store = cluster.store().clone();
    let cm = store.resource("", "v1", "configmaps").unwrap();
    let create = |i: usize| {
        store
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": format!("c{i:03}")}}),
                &crate::sim::store::WriteOptions::default(),
            )
            .unwrap();
    };
    let rv = store.resource_version();
    let req = Request::builder()
        .uri(format!("{CM}?watch=true&resourceVersion={rv}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let body = api.handle(req).await.into_body();
    // The client reads nothing: the watcher fills its stream and waits for room...
    for i in 0..80 {
        create(i);
        tokio::task::yield_now().await;
    }
    // ...while the history moves on past what it has not sent yet.
    for i in 80..300 {
        create(i);
    }
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let lines: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let (last, sent) = lines.split_last().unwrap();
    assert_eq!(last["type"], "ERROR", "{last}");
    assert_eq!(last["object"]["code"], 410);
    assert_eq!(last["object"]["reason"], "Expired");
    // `too old resource version: %d (%d)`, the resourceVersion the watcher had reached and the
    // one just before the oldest change still kept (`getAllEventsSinceLocked`,
    // staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go).
    let message = last["object"]["message"].as_str().unwrap();
    let (reached, oldest) = message
        .strip_prefix("too old resource version: ")
        .and_then(|m| m.strip_suffix(')'))
        .and_then(|m| m.split_once(" ("))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("{message}"));
    assert_eq!(last["object"]["kind"], "Status");
    assert_eq!(last["object"]["status"], "Failure");
    // What it did send is the beginning of the changes, in order, and not all of them.
    assert!(!sent.is_empty() && sent.len() < 300, "{}", sent.len());
    let last_sent: u64 = sent.last().unwrap()["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last_sent <= reached && reached < oldest,
        "{last_sent} {message}"
    );
    for (i, line) in sent.iter().enumerate() {
        assert_eq!(line["type"], "ADDED");
        assert_eq!(line["object"]["metadata"]["name"], format!("c{i:03}"));
    }
}

#[tokio::test]
async fn table_output_for_kubectl() {
    let api = api();
    let req = Request::builder()
        .uri("/api/v1/namespaces")
        .header(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let bytes = api
        .handle(req)
        .await
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let t: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"][0]["cells"][0], "default");
    assert_eq!(t["rows"][0]["cells"][1], "Active");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn pod_logs() {
    let cluster = SimCluster::start();
    let api = cluster.api().clone();
    let pod = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i", "image": "x:1"}], "containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "x:1"}]}});
    call(
        &api,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        &pod.to_string(),
    )
    .await;
    let key = crate::sim::store::ContainerKey::new("default", "p", "a");
    cluster
        .store()
        .logs()
        .append(&key, "2024-05-01T10:00:00.000000000Z".into(), "hello");
    let (code, s) = call(&api, "GET", "/api/v1/namespaces/default/pods/p/log", "", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        "a container name must be specified for pod p, choose one of: [i a b]"
    );
    let req = Request::builder()
        .uri("/api/v1/namespaces/default/pods/p/log?container=a&timestamps=true")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let bytes = api
        .handle(req)
        .await
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&bytes[..], b"2024-05-01T10:00:00.000000000Z hello\n");
    let (code, s) = call(
        &api,
        "GET",
        "/api/v1/namespaces/default/pods/p/log?container=a&previous=true",
        "",
        "",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        r#"previous terminated container "a" in pod "p" not found"#
    );
    // Image-pull waits are told in words (validateContainerLogStatus).
    for (reason, text) in [
        ("ErrImagePull", "image can't be pulled"),
        ("ImagePullBackOff", "trying and failing to pull image"),
        ("CreateContainerConfigError", "CreateContainerConfigError"),
    ] {
        let status = json!({"status": {"containerStatuses": [
            {"name": "b", "ready": false, "restartCount": 0, "image": "x:1", "imageID": "",
             "state": {"waiting": {"reason": reason}}}]}});
        call(
            &api,
            "PATCH",
            "/api/v1/namespaces/default/pods/p/status",
            "application/merge-patch+json",
            &status.to_string(),
        )
        .await;
        let (code, s) = call(
            &api,
            "GET",
            "/api/v1/namespaces/default/pods/p/log?container=b",
            "",
            "",
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            s["message"],
            format!(r#"container "b" in pod "p" is waiting to start: {text}"#)
        );
    }
}

#[tokio::test]
async fn followed_logs_stream_until_the_container_stops() {
    let cluster = SimCluster::start();
    let api = cluster.api().clone();
    let pod =
        json!({"metadata": {"name": "f"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
    call(
        &api,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        &pod.to_string(),
    )
    .await;
    let key = crate::sim::store::ContainerKey::new("default", "f", "a");
    let logs = cluster.store().logs();
    logs.append(&key, "t".into(), "first");
    let req = Request::builder()
        .uri("/api/v1/namespaces/default/pods/f/log?follow=true")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = api.handle(req).await.into_body();
    let next = async |body: &mut Body| {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("no log output in time");
        frame.map(|f| f.unwrap().into_data().unwrap())
    };
    assert_eq!(next(&mut body).await.unwrap(), "first\n");
    logs.append(&key, "t".into(), "second");
    assert_eq!(next(&mut body).await.unwrap(), "second\n");
    // The container stops: the stream ends.
    let res = cluster.store().resource("", "v1", "pods").unwrap();
    let mut p = cluster.store().get(&res, Some("default"), "f").unwrap();
    p["status"]["containerStatuses"] =
        json!([{"name": "a", "state": {"terminated": {"exitCode": 0}}}]);
    cluster
        .store()
        .update(
            &res,
            Some("default"),
            "f",
            p,
            crate::sim::store::Part::Status,
            &Default::default(),
        )
        .unwrap();
    assert!(next(&mut body).await.is_none());
}

/// The first line of a watch response (or the whole body of an error).
async fn first_watch_line(api: &ApiServer, uri: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = api.handle(req).await;
    let status = resp.status();
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap();
    let line = frame
        .and_then(Result::ok)
        .and_then(|f| f.into_data().ok())
        .map(|d| serde_json::from_slice(&d).unwrap())
        .unwrap_or(Value::Null);
    (status, line)
}

#[tokio::test]
async fn watch_resource_versions_at_the_edges_do_not_panic() {
    let cluster = SimCluster::start();
    let api = cluster.api().clone();
    // The largest resourceVersion is in the future: nothing is sent before the timeout.
    let (code, line) = first_watch_line(
        &api,
        &format!("{CM}?watch=1&resourceVersion=18446744073709551615&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(line, Value::Null);
    cluster.store().compact();
    let (code, line) = first_watch_line(
        &api,
        &format!("{CM}?watch=1&resourceVersion=18446744073709551615&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(line, Value::Null);
    // Too old: the in-stream 410.
    let (code, line) = first_watch_line(&api, &format!("{CM}?watch=1&resourceVersion=1")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(line["object"]["code"], 410, "{line}");
    // Unparsable: 400 before the stream starts.
    for rv in ["18446744073709551616", "-1", "abc"] {
        let (code, status) = call(
            &api,
            "GET",
            &format!("{CM}?watch=1&resourceVersion={rv}"),
            "",
            "",
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{rv}: {status}");
        assert!(
            status["message"].as_str().unwrap().starts_with(&format!(
                "resourceVersion: Invalid value: \"{rv}\": strconv.ParseUint: parsing \"{rv}\": "
            )),
            "{status}"
        );
    }
}

#[tokio::test]
async fn numeric_query_parameters_are_parsed_as_the_api_server_does() {
    let api = api();
    for (uri, message) in [
        (
            format!("{CM}?limit=9223372036854775808"),
            r#"strconv.ParseInt: parsing "9223372036854775808": value out of range"#,
        ),
        (
            format!("{CM}?limit=abc"),
            r#"strconv.ParseInt: parsing "abc": invalid syntax"#,
        ),
        (
            format!("{CM}?watch=1&timeoutSeconds=99999999999999999999"),
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
        ),
        (
            format!("{CM}?resourceVersion=18446744073709551616"),
            r#"resourceVersion: Invalid value: "18446744073709551616": strconv.ParseUint: parsing "18446744073709551616": value out of range"#,
        ),
    ] {
        let (code, status) = call(&api, "GET", &uri, "", "").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {status}");
        assert_eq!(status["message"], message, "{uri}");
        assert_eq!(status["reason"], "BadRequest");
    }
    let (code, status) = call(
        &api,
        "DELETE",
        &format!("{CM}/x?gracePeriodSeconds=1e3"),
        "",
        "",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    assert_eq!(
        status["message"],
        r#"strconv.ParseInt: parsing "1e3": invalid syntax"#
    );
    // The extremes that parse are served.
    for uri in [
        format!("{CM}?limit=9223372036854775807"),
        format!("{CM}?limit=-9223372036854775808"),
        format!("{CM}?resourceVersion=18446744073709551615"),
    ] {
        let (code, status) = call(&api, "GET", &uri, "", "").await;
        assert_eq!(code, StatusCode::OK, "{uri}: {status}");
    }
    let req = Request::builder()
        .uri(format!(
            "{CM}?watch=1&resourceVersion=0&timeoutSeconds=9223372036854775807"
        ))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(api.handle(req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_errors_carry_the_api_servers_status() {
    let api = api();
    let applied = |manager: &str, value: &str| {
        let api = api.clone();
        let uri = format!("{CM}/ssa?fieldManager={manager}&fieldValidation=Strict&force=false");
        let body = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: {value}\n"
        );
        async move { call(&api, "PATCH", &uri, "application/apply-patch+yaml", &body).await }
    };
    let (code, s) = applied("carol", "three").await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    let (code, s) = applied("dave", "four").await;
    assert_eq!(code, StatusCode::CONFLICT, "{s}");
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(s["code"], 409);
    assert_eq!(
        s["message"],
        r#"Apply failed with 1 conflict: conflict with "carol": .data.k"#
    );
    assert_eq!(
        s["details"],
        json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"carol\"", "field": ".data.k"}]})
    );

    // A JSON patch that does not apply is unprocessable.
    let (code, s) = call(
        &api,
        "PATCH",
        &format!("{CM}/ssa"),
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/data/zzz"}]"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{s}");
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(
        s["message"],
        "the server rejected our request due to an error in our request"
    );
    // Apply needs a field manager.
    let (code, s) = call(
        &api,
        "PATCH",
        &format!("{CM}/ssa"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n",
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{s}");
    assert_eq!(
        s["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    // A merge patch that is not an object, and JSON patches replacing the root.
    for (ct, body) in [
        ("application/merge-patch+json", "[]"),
        (
            "application/json-patch+json",
            r#"[{"op":"replace","path":"","value":[]}]"#,
        ),
        (
            "application/json-patch+json",
            r#"[{"op":"bogus","path":"/data"}]"#,
        ),
    ] {
        let (code, s) = call(&api, "PATCH", &format!("{CM}/ssa"), ct, body).await;
        assert!(
            code == StatusCode::UNPROCESSABLE_ENTITY || code == StatusCode::BAD_REQUEST,
            "{ct} {body}: {code} {s}"
        );
        assert_ne!(s["reason"], "InternalError", "{s}");
    }
    // Too many JSON patch operations.
    let ops = vec![r#"{"op":"test","path":"/metadata/name","value":"ssa"}"#; 10_001].join(",");
    let (code, s) = call(
        &api,
        "PATCH",
        &format!("{CM}/ssa"),
        "application/json-patch+json",
        &format!("[{ops}]"),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{s}");
    assert_eq!(s["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn invalid_selectors_are_refused_and_select_nothing() {
    let api = api();
    for name in ["keep-1", "keep-2"] {
        let (code, _) = call(
            &api,
            "POST",
            CM,
            "application/json",
            &format!(r#"{{"metadata":{{"name":"{name}","labels":{{"app":"keep"}}}}}}"#),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let long = "x".repeat(300);
    let cases: Vec<(String, String)> = vec![
        ("!!".into(), "unable to parse requirement: found '!', expected: identifier".into()),
        ("=".into(), "found '=', expected: !, identifier, or 'end of string'".into()),
        ("a,".into(), "found '', expected: identifier after ','".into()),
        (",,,,".into(), "found ',', expected: !, identifier, or 'end of string'".into()),
        ("(".into(), "found '(', expected: !, identifier, or 'end of string'".into()),
        ("a=b=c".into(), "found '=', expected: ',' or 'end of string'".into()),
        ("a===b".into(), "unable to parse requirement: found '=', expected: identifier".into()),
        ("!a,!b,=c".into(), "found '=', expected: identifier after ','".into()),
        (
            "🙂=1".into(),
            "unable to parse requirement: <nil>: Invalid value: \"🙂\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into(),
        ),
        (
            format!("x={long}"),
            format!("unable to parse requirement: values[0][x]: Invalid value: \"{long}\": must be no more than 63 characters"),
        ),
    ];
    for (selector, message) in &cases {
        let encoded: String = selector.bytes().map(|b| format!("%{b:02X}")).collect();
        for method in ["GET", "DELETE"] {
            let (code, s) = call(
                &api,
                method,
                &format!("{CM}?labelSelector={encoded}"),
                "",
                "",
            )
            .await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{method} {selector}: {s}");
            assert_eq!(s["reason"], "BadRequest");
            assert_eq!(s["message"], json!(message), "{selector}");
        }
    }
    // Nothing was deleted.
    let (_, list) = call(
        &api,
        "GET",
        &format!("{CM}?labelSelector=app%3Dkeep"),
        "",
        "",
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // Valid oddities of the grammar still parse.
    for selector in [
        "a!%3D",
        "a+in+(),b",
        "x+in+(in,notin)",
        "!a",
        "a+notin+(,x)",
    ] {
        let (code, s) = call(
            &api,
            "GET",
            &format!("{CM}?labelSelector={selector}"),
            "",
            "",
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{selector}: {s}");
    }
    // Field selectors as fields.ParseSelector reads them.
    for (selector, message) in [
        (
            "metadata.name%3D%3D%3Dx",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "metadata.name",
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
        ),
        (
            "metadata.name%3Dx%5C",
            "invalid field selector: invalid escape sequence: \\",
        ),
    ] {
        let (code, s) = call(
            &api,
            "GET",
            &format!("{CM}?fieldSelector={selector}"),
            "",
            "",
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{selector}: {s}");
        assert_eq!(s["message"], message);
    }
    let (code, list) = call(
        &api,
        "GET",
        &format!("{CM}?fieldSelector=metadata.name%3Dkeep-1,"),
        "",
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let api = api();
    let secrets = "/api/v1/namespaces/default/secrets";
    let (code, created) = call(
        &api,
        "POST",
        secrets,
        "application/json",
        r#"{"metadata":{"name":"s"},"data":{"password":"cGFzcw==","token":"b2xk"},"stringData":{"token":"CANARY"}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["data"],
        json!({"password": "cGFzcw==", "token": "Q0FOQVJZ"})
    );
    assert!(created.get("stringData").is_none(), "{created}");
    let (_, got) = call(&api, "GET", &format!("{secrets}/s"), "", "").await;
    assert!(got.get("stringData").is_none(), "{got}");
    assert_eq!(got["data"]["token"], "Q0FOQVJZ");
    // A patch and an apply fold it too.
    let (code, patched) = call(
        &api,
        "PATCH",
        &format!("{secrets}/s"),
        "application/merge-patch+json",
        r#"{"stringData":{"extra":"x"}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"]["extra"], "eA==");
    assert!(patched.get("stringData").is_none(), "{patched}");
    let (code, applied) = call(
        &api,
        "PATCH",
        &format!("{secrets}/applied?fieldManager=test"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\nstringData:\n  k: v\n",
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{applied}");
    assert_eq!(applied["data"], json!({"k": "dg=="}));
    assert!(applied.get("stringData").is_none(), "{applied}");
}

#[tokio::test]
async fn object_metadata_is_validated_as_upstream() {
    let api = api();
    let post = |body: String| {
        let api = api.clone();
        async move { call(&api, "POST", CM, "application/json", &body).await }
    };
    let long_key = "k".repeat(300);
    let (code, s) = post(format!(
        r#"{{"metadata":{{"name":"l1","labels":{{"{long_key}":"v","ok":"-bad"}}}}}}"#
    ))
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{s}");
    assert_eq!(
        s["message"],
        format!(
            "ConfigMap \"l1\" is invalid: [metadata.labels: Invalid value: \"{long_key}\": name part must be no more than 63 characters, metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
        )
    );
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.labels");
    assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
    // Annotation keys follow the qualified-name rule (case-insensitively); values are free,
    // up to 256 KiB in total.
    let (code, s) = post(
        r#"{"metadata":{"name":"a1","annotations":{"Example.COM/Key":"x","a/b/c":"y"}}}"#
            .to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{s}");
    assert_eq!(
        s["message"],
        "ConfigMap \"a1\" is invalid: metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    );
    let big = "v".repeat(256 * 1024);
    let (code, s) = post(format!(
        r#"{{"metadata":{{"name":"a2","annotations":{{"k":"{big}"}}}}}}"#
    ))
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s["message"],
        "ConfigMap \"a2\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueTooLong");
    let fits = "v".repeat(256 * 1024 - 1);
    let (code, s) = post(format!(
        r#"{{"metadata":{{"name":"a3","annotations":{{"k":"{fits}"}}}}}}"#
    ))
    .await;
    assert_eq!(code, StatusCode::CREATED, "{}", s["message"]);
    // A ConfigMap holds at most 1 MiB of data.
    let data = "d".repeat(1024 * 1024);
    let (code, s) = post(format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{data}"}}}}"#
    ))
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s["message"],
        "ConfigMap \"big\" is invalid: []: Too long: may not be more than 1048576 bytes"
    );
    // `kind` must be a string.
    let (code, s) = post(r#"{"kind":1,"metadata":{"name":"k"}}"#.to_string()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{s}");
    assert_eq!(
        s["message"],
        r#"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string ({"kind":1,"metadata":{"name":" ...)"#
    );
    // Names are checked too (a subdomain may be 253 characters long).
    let (code, _) = post(format!(
        r#"{{"metadata":{{"name":"{}"}}}}"#,
        "n".repeat(254)
    ))
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = post(format!(r#"{{"metadata":{{"name":"{}"}}}}"#, "n".repeat(64))).await;
    assert_eq!(code, StatusCode::CREATED);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let api = api();
    let body = format!(
        r#"{{"metadata":{{"name":"huge"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    // Without a Content-Length (read until the limit) and with one (refused at once).
    let (code, s) = call(&api, "POST", CM, "application/json", &body).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s["message"], "Request entity too large: limit is 3145728");
    assert_eq!(s["reason"], "RequestEntityTooLarge");
    let req = Request::builder()
        .method("POST")
        .uri(CM)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len().to_string())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(
        api.handle(req).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn pod_logs_since_seconds_keep_only_recent_lines() {
    let cluster = SimCluster::start();
    let api = cluster.api().clone();
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
    call(
        &api,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        &pod.to_string(),
    )
    .await;
    let key = crate::sim::store::ContainerKey::new("default", "p", "a");
    let now = cluster.store().clock().now();
    for (ago, text) in [(600, "old"), (30, "new")] {
        let at = now - jiff::SignedDuration::from_secs(ago);
        cluster
            .store()
            .logs()
            .append(&key, crate::sim::clock::format_time(at), text);
    }
    let read = |query: &'static str| {
        let api = api.clone();
        async move {
            let req = Request::builder()
                .uri(format!("/api/v1/namespaces/default/pods/p/log?{query}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let body = api.handle(req).await.into_body().collect().await.unwrap();
            String::from_utf8(body.to_bytes().to_vec()).unwrap()
        }
    };
    assert_eq!(read("sinceSeconds=120").await, "new\n");
    assert_eq!(read("sinceSeconds=3600").await, "old\nnew\n");
    assert_eq!(read("tailLines=1&sinceSeconds=3600").await, "new\n");
}

async fn call_bytes(
    api: &ApiServer,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = api.handle(req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn captured(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/sim/api/protobuf/testdata")
            .join(format!("{name}.pb")),
    )
    .unwrap()
}

/// kubectl's typed creates send protobuf; they used to get 415.
#[tokio::test]
async fn kubectl_protobuf_creates_are_created_like_json() {
    let api = api();
    let pb = protobuf::MEDIA_TYPE;
    let (code, ns) = call_bytes(&api, "/api/v1/namespaces", pb, captured("namespace")).await;
    assert_eq!(code, StatusCode::CREATED, "{ns}");
    assert_eq!(ns["metadata"]["name"], "demo");
    assert_eq!(ns["status"]["phase"], "Active");
    let (code, deploy) = call_bytes(
        &api,
        "/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-create",
        pb,
        captured("deployment"),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{deploy}");
    assert_eq!(deploy["spec"]["replicas"], 2);
    // Defaults apply as for a JSON body: the empty strings on the wire are unset fields.
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["restartPolicy"],
        "Always"
    );
    let (code, secret) = call_bytes(
        &api,
        "/api/v1/namespaces/default/secrets",
        pb,
        captured("secret-generic"),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{secret}");
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
}

#[tokio::test]
async fn broken_protobuf_bodies_get_the_apiservers_errors() {
    let api = api();
    let pb = protobuf::MEDIA_TYPE;
    let (code, s) = call_bytes(&api, CM, pb, b"{\"kind\":\"ConfigMap\"}".to_vec()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        "the object provided is unrecognized (must be of type ConfigMap): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({\"kind\":\"ConfigMap\"})"
    );
    let (code, s) = call_bytes(&api, CM, pb, b"k8s\0".to_vec()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        "the object provided is unrecognized (must be of type ConfigMap): empty body (6b387300)"
    );
    // A Namespace body sent to the ConfigMap endpoint: the store's kind check, as for JSON.
    let (code, s) = call_bytes(&api, CM, pb, captured("namespace")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        s["message"],
        "Namespace in version \"v1\" cannot be handled as a ConfigMap"
    );
    // Cut inside the typed message.
    let mut body = captured("configmap");
    body.truncate(body.len() - 3);
    let (code, s) = call_bytes(&api, CM, pb, body).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{s}");
    assert!(
        s["message"].as_str().unwrap().starts_with(
            "the object provided is unrecognized (must be of type ConfigMap): unexpected EOF"
        ),
        "{s}"
    );
}

/// A Gateway CRD whose schema declares `spec.infrastructure.parametersRef` without `namespace`.
const GATEWAY_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"gateways.gateway.networking.k8s.io"},
 "spec":{"group":"gateway.networking.k8s.io","scope":"Namespaced",
  "names":{"kind":"Gateway","plural":"gateways","singular":"gateway","listKind":"GatewayList"},
  "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
   "schema":{"openAPIV3Schema":{"type":"object","properties":{
    "spec":{"type":"object","properties":{"gatewayClassName":{"type":"string"},
     "infrastructure":{"type":"object","properties":{"parametersRef":{"type":"object",
      "properties":{"group":{"type":"string"},"kind":{"type":"string"},"name":{"type":"string"}}}}}}},
    "status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}"#;

const GATEWAYS: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways";

fn gateway(name: &str, with_namespace: bool) -> String {
    let ns = if with_namespace {
        r#","namespace":"argocd""#
    } else {
        ""
    };
    format!(
        r#"{{"apiVersion":"gateway.networking.k8s.io/v1","kind":"Gateway","metadata":{{"name":"{name}"}},
        "spec":{{"gatewayClassName":"eg","infrastructure":{{"parametersRef":{{"group":"gateway.envoyproxy.io","kind":"EnvoyProxy","name":"p"{ns}}}}}}}}}"#
    )
}

async fn call_with_warnings(
    api: &ApiServer,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, Vec<String>, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = api.handle(req).await;
    let status = resp.status();
    let warnings = resp
        .headers()
        .get_all(header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn custom_resources_are_pruned_to_their_schema_by_field_validation() {
    let api = api();
    let (code, _) = call(
        &api,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        GATEWAY_CRD,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);

    // Strict: the create is refused naming the field, and nothing is stored.
    let (code, _, status) = call_with_warnings(
        &api,
        "POST",
        &format!("{GATEWAYS}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
        "application/json",
        &gateway("a", true),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        r#"Gateway in version "v1" cannot be handled as a Gateway: strict decoding error: unknown field "spec.infrastructure.parametersRef.namespace""#
    );
    let (code, _) = call(&api, "GET", &format!("{GATEWAYS}/a"), "", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Unset (Warn): stored without the field, one warning header per field.
    let (code, warnings, created) = call_with_warnings(
        &api,
        "POST",
        GATEWAYS,
        "application/json",
        &gateway("a", true),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        warnings,
        [r#"299 - "unknown field \"spec.infrastructure.parametersRef.namespace\"""#]
    );
    assert!(created["spec"]["infrastructure"]["parametersRef"]["namespace"].is_null());
    assert_eq!(
        created["spec"]["infrastructure"]["parametersRef"]["name"],
        "p"
    );

    // Ignore: pruned silently.
    let (code, warnings, created) = call_with_warnings(
        &api,
        "POST",
        &format!("{GATEWAYS}?fieldValidation=Ignore"),
        "application/json",
        &gateway("b", true),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(warnings.is_empty());
    assert!(created["spec"]["infrastructure"]["parametersRef"]["namespace"].is_null());

    // A strict merge patch is refused with the patch handler's text.
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{GATEWAYS}/a?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"listeners":[{"name":"http"}]}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        r#"strict decoding error: unknown field "spec.listeners""#
    );

    // Declared fields and a status that preserves unknown fields pass untouched.
    let (code, warnings, patched) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{GATEWAYS}/a/status?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"status":{"addresses":[{"type":"IPAddress","value":"172.18.0.2"}]}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert!(warnings.is_empty());
    assert_eq!(patched["status"]["addresses"][0]["value"], "172.18.0.2");
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn typo_deployment(name: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"any.example.com/key": "v"}, "annotations": {"a/b": "c"}},
        "spec": {
            "replica": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "imagePullPolicys": "Always",
                    "resources": {"limits": {"cpu": "1", "vendor.example.com/gpu": "2"}}}]}
            }
        }
    })
    .to_string()
}

#[tokio::test]
async fn built_in_kinds_are_decoded_strictly_by_field_validation() {
    let api = api();
    // Strict: refused with every unknown field in decoding order, nothing stored.
    let (code, _, status) = call_with_warnings(
        &api,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Strict"),
        "application/json",
        &typo_deployment("a"),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica", unknown field "spec.template.spec.containers[0].imagePullPolicys""#
    );
    let (code, _) = call(&api, "GET", &format!("{DEPLOYMENTS}/a"), "", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Warn: stored without the fields, one warning each; maps keep any key.
    let (code, warnings, created) = call_with_warnings(
        &api,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Warn"),
        "application/json",
        &typo_deployment("a"),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec.replica\"""#,
            r#"299 - "unknown field \"spec.template.spec.containers[0].imagePullPolicys\"""#,
        ]
    );
    assert!(created["spec"].get("replica").is_none());
    assert_eq!(created["spec"]["replicas"], 1);
    assert_eq!(created["metadata"]["labels"]["any.example.com/key"], "v");
    assert_eq!(
        created["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["vendor.example.com/gpu"],
        "2"
    );

    // Ignore: dropped silently.
    let (code, warnings, created) = call_with_warnings(
        &api,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Ignore"),
        "application/json",
        &typo_deployment("b"),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(warnings.is_empty());
    assert!(created["spec"].get("replica").is_none());

    // A merge patch: the patch handler's bare strict decoding error.
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/a?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"replica":2}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        r#"strict decoding error: unknown field "spec.replica""#
    );

    // A strategic merge patch: Invalid, the patch map printed as Go does.
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/a?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        r#"{"spec":{"replica":2,"paused":false}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        r#" "" is invalid: patch: Invalid value: "map[spec:map[paused:false replica:2]]": strict decoding error: unknown field "spec.replica""#
    );
    assert_eq!(status["details"].get("name"), None);
    assert_eq!(status["details"]["causes"][0]["field"], "patch");

    // Server-side apply converts the applied configuration to the type first (the apply
    // patcher's own typed conversion, src/sim/patch/apply.rs).
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/c?fieldManager=kubectl&fieldValidation=Strict&force=true"),
        "application/apply-patch+yaml",
        &typo_deployment("c").replace(r#""name":"c""#, r#""name":"c","namespace":"default""#),
    )
    .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert_eq!(
        status["message"],
        "failed to create typed patch object (default/c; apps/v1, Kind=Deployment): .spec.replica: field not declared in schema"
    );
}

#[tokio::test]
async fn server_side_apply_of_an_undeclared_field_fails_its_typed_conversion() {
    let api = api();
    call(
        &api,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        GATEWAY_CRD,
    )
    .await;
    let body = gateway("a", true).replace(
        r#""metadata":{"name":"a"}"#,
        r#""metadata":{"name":"a","namespace":"default"}"#,
    );
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{GATEWAYS}/a?fieldManager=kubectl&fieldValidation=Strict&force=true"),
        "application/apply-patch+yaml",
        &body,
    )
    .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(status.get("reason").is_none_or(|r| r == ""), "{status}");
    assert_eq!(
        status["message"],
        "failed to create typed patch object (default/a; gateway.networking.k8s.io/v1, Kind=Gateway): .spec.infrastructure.parametersRef.namespace: field not declared in schema"
    );
    let (code, _) = call(&api, "GET", &format!("{GATEWAYS}/a"), "", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn creates_updates_and_patches_record_their_manager() {
    let api = api();
    let (code, created) = call(
        &api,
        "POST",
        &format!("{CM}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
        "application/json",
        r#"{"metadata":{"name":"m"},"data":{"a":"1"}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl-client-side-apply");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["fieldsV1"]["f:data"]["f:a"], json!({}));

    let (code, patched) = call(
        &api,
        "PATCH",
        &format!("{CM}/m?fieldManager=kubectl-label"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"tier":"backend"}}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let managers: Vec<&str> = patched["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["kubectl-client-side-apply", "kubectl-label"]);

    // Without fieldManager the user agent's first segment names the manager.
    let req = Request::builder()
        .method("PUT")
        .uri(format!("{CM}/m"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef",
        )
        .body(Full::new(Bytes::from(
            r#"{"metadata":{"name":"m"},"data":{"a":"2"}}"#,
        )))
        .unwrap();
    let resp = api.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let updated: Value = serde_json::from_slice(&bytes).unwrap();
    let entries = updated["metadata"]["managedFields"].as_array().unwrap();
    let kubectl = entries.iter().find(|e| e["manager"] == "kubectl").unwrap();
    assert_eq!(kubectl["fieldsV1"]["f:data"]["f:a"], json!({}));
}

#[tokio::test]
async fn version_follows_the_cluster_release() {
    let (_, v) = call(&api(), "GET", "/version", "", "").await;
    assert_eq!(v["gitVersion"], "v1.32.0");
    assert_eq!(v["goVersion"], "go1.23.4");
    let cluster = crate::sim::SimClusterBuilder::default()
        .versions(crate::scenario::Versions {
            kubernetes: crate::scenario::KubernetesVersion::V1_31,
            ..crate::scenario::Versions::default()
        })
        .start();
    let (code, v) = call(cluster.api(), "GET", "/version", "", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["minor"], "31");
    assert_eq!(v["gitVersion"], "v1.31.0");
    assert_eq!(v["goVersion"], "go1.22.5");
}

const DUP_DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1,"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx","imagePullPolicys":"Always"}]}}}}"#;

#[tokio::test]
async fn duplicate_fields_are_strict_decoding_errors_in_body_order() {
    let api = api();
    let (code, _, status) = call_with_warnings(
        &api,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Strict"),
        "application/json",
        DUP_DEPLOYMENT,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: duplicate field "spec.replicas", unknown field "spec.template.spec.containers[0].imagePullPolicys""#
    );
    // Warn: stored with the last value, one warning per error.
    let (code, warnings, created) = call_with_warnings(
        &api,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Warn"),
        "application/json",
        DUP_DEPLOYMENT,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        warnings,
        [
            r#"299 - "duplicate field \"spec.replicas\"""#,
            r#"299 - "unknown field \"spec.template.spec.containers[0].imagePullPolicys\"""#,
        ]
    );
    assert_eq!(created["spec"]["replicas"], 2);
    // Ignore: accepted silently.
    let body = DUP_DEPLOYMENT.replace(r#""name":"d""#, r#""name":"e""#);
    let (code, warnings, _) = call_with_warnings(
        &api,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Ignore"),
        "application/json",
        &body,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(warnings.is_empty());

    // YAML: the strict YAML decoder's error comes first.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: \"1\"\n  a: \"2\"\ndatas: {}\n";
    let (code, _, status) = call_with_warnings(
        &api,
        "POST",
        &format!("{CM}?fieldValidation=Strict"),
        "application/yaml",
        yaml,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map, unknown field \"datas\""
    );

    // Merge and strategic patches: the patch's duplicates, then the object's unknown fields.
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/d?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"paused":true,"paused":false,"replica":1}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        r#"strict decoding error: duplicate field "spec.paused", unknown field "spec.replica""#
    );
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/d?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        r#"{"spec":{"paused":true,"paused":false}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        status["message"],
        r#" "" is invalid: patch: Invalid value: "map[spec:map[paused:false]]": strict decoding error: duplicate field "spec.paused""#
    );
    // A JSON patch: the operations are decoded strictly, each error marked.
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/d?fieldValidation=Strict"),
        "application/json-patch+json",
        r#"[{"op":"add","path":"/spec/paused","value":true,"value":false,"valu":1}]"#,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        r#"strict decoding error: json patch duplicate field "[0].value", json patch unknown field "[0].valu""#
    );

    // Server-side apply: checked after the apply, as YAML.
    let apply =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\ndata:\n  a: \"1\"\n  a: \"2\"\n";
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{CM}/s?fieldManager=kubectl&fieldValidation=Strict"),
        "application/apply-patch+yaml",
        apply,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"
    );
    let (code, warnings, applied) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{CM}/s?fieldManager=kubectl&fieldValidation=Warn"),
        "application/apply-patch+yaml",
        apply,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{applied}");
    assert_eq!(
        warnings,
        [
            r#"299 - "error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map""#
        ]
    );
    assert_eq!(applied["data"]["a"], "2");
}

#[tokio::test]
async fn server_side_apply_reports_one_undeclared_field_per_object() {
    let api = api();
    call(
        &api,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        GATEWAY_CRD,
    )
    .await;
    let body = gateway("a", true).replace(
        r#""metadata":{"name":"a"}"#,
        r#""metadata":{"name":"a","namespace":"default"},"zeta":1,"extra":2"#,
    );
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{GATEWAYS}/a?fieldManager=kubectl&fieldValidation=Strict&force=true"),
        "application/apply-patch+yaml",
        &body,
    )
    .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    // The root stops at `extra`; `spec` (after it) is not looked into, `zeta` not reached.
    assert_eq!(
        status["message"],
        "failed to create typed patch object (default/a; gateway.networking.k8s.io/v1, Kind=Gateway): .extra: field not declared in schema"
    );
    let body = gateway("a", true)
        .replace(
            r#""metadata":{"name":"a"}"#,
            r#""metadata":{"name":"a","namespace":"default"}"#,
        )
        .replace(r#""spec":{"#, r#""spec":{"zzz":1,"#);
    let (_, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{GATEWAYS}/a?fieldManager=kubectl&fieldValidation=Strict&force=true"),
        "application/apply-patch+yaml",
        &body,
    )
    .await;
    assert_eq!(
        status["message"],
        "failed to create typed patch object (default/a; gateway.networking.k8s.io/v1, Kind=Gateway): errors:\n  .spec.infrastructure.parametersRef.namespace: field not declared in schema\n  .spec.zzz: field not declared in schema"
    );
}

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

#[tokio::test]
async fn a_jobs_pod_template_selector_and_completions_are_immutable() {
    let api = api();
    let job = |name: &str, suspend: bool| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"suspend": suspend, "completions": 2, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}})
        .to_string()
    };
    let (code, created) = call(&api, "POST", JOBS, "application/json", &job("x", false)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{JOBS}/x"),
        "application/strategic-merge-patch+json",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        r#"Job.batch "x" is invalid: spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"#
    );
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let (code, _, status) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{JOBS}/x"),
        "application/merge-patch+json",
        r#"{"spec":{"completions":3,"selector":{"matchLabels":{"a":"b"}}}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            r#"Job.batch "x" is invalid: [spec.completions: Invalid value: 3: field is immutable, spec.selector: Invalid value: v1.LabelSelector{{MatchLabels:map[string]string{{"a":"b", "batch.kubernetes.io/controller-uid":"{uid}"}}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}: field is immutable"#
        )),
        "{message}"
    );

    // A suspended Job that never started may change its scheduling directives only.
    call(&api, "POST", JOBS, "application/json", &job("s", true)).await;
    let (code, _, patched) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{JOBS}/s"),
        "application/merge-patch+json",
        r#"{"spec":{"template":{"metadata":{"annotations":{"a":"b"}},"spec":{"nodeSelector":{"disk":"ssd"}}}}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    let (code, _, _) = call_with_warnings(
        &api,
        "PATCH",
        &format!("{JOBS}/s"),
        "application/merge-patch+json",
        r#"{"spec":{"template":{"spec":{"activeDeadlineSeconds":5}}}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn quantities_are_stored_and_returned_in_canonical_form() {
    let api = api();
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "q"},
        "spec": {"selector": {"matchLabels": {"app": "q"}}, "template": {"metadata": {"labels": {"app": "q"}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "resources": {"requests": {"cpu": 0.5, "memory": 1_073_741_824}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}}]}}}})
    .to_string();
    let (code, created) = call(&api, "POST", DEPLOYMENTS, "application/json", &body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let resources = &created["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        *resources,
        json!({"requests": {"cpu": "500m", "memory": "1073741824"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    );
    let (code, patched) = call(
        &api,
        "PATCH",
        &format!("{DEPLOYMENTS}/q"),
        "application/strategic-merge-patch+json",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":2.5}}}]}}}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "2500m"
    );
}
