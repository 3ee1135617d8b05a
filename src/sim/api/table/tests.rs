use super::*;
use crate::sim::resources::builtins;

fn now() -> Timestamp {
    "2024-05-01T10:10:00Z".parse().unwrap()
}

fn pod(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "p", "creationTimestamp": "2024-05-01T10:00:00Z"}, "spec": spec, "status": status})
}

#[test]
fn pod_status_column() {
    let one = json!({"containers": [{"name": "c"}]});
    let running = pod(
        one.clone(),
        json!({"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
    );
    assert_eq!(
        pod_status(&running, now()),
        ("1/1".into(), "Running".into(), "0".into())
    );
    let crash = pod(
        one.clone(),
        json!({"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T10:08:00Z"}}}]}),
    );
    assert_eq!(
        pod_status(&crash, now()),
        ("0/1".into(), "CrashLoopBackOff".into(), "4 (2m ago)".into())
    );
    let creating = pod(
        one.clone(),
        json!({"phase": "Pending", "containerStatuses": [
        {"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    assert_eq!(pod_status(&creating, now()).1, "ContainerCreating");
    let init = pod(
        json!({"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]}),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}},
            {"name": "b", "state": {"waiting": {"reason": "PodInitializing"}}}],
            "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    assert_eq!(pod_status(&init, now()).1, "Init:0/2");
    let init_crash = pod(
        json!({"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]}),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
    );
    assert_eq!(pod_status(&init_crash, now()).1, "Init:CrashLoopBackOff");
    let done = pod(
        one.clone(),
        json!({"phase": "Succeeded", "containerStatuses": [
        {"name": "c", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    assert_eq!(pod_status(&done, now()).1, "Completed");
    let exit = pod(
        one.clone(),
        json!({"phase": "Running", "containerStatuses": [
        {"name": "c", "state": {"terminated": {"exitCode": 255}}}]}),
    );
    assert_eq!(pod_status(&exit, now()).1, "ExitCode:255");
    let mut deleting = running.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:09:00Z");
    assert_eq!(pod_status(&deleting, now()).1, "Terminating");
    let pending = pod(one, json!({"phase": "Pending"}));
    assert_eq!(
        pod_status(&pending, now()),
        ("0/1".into(), "Pending".into(), "0".into())
    );
}

#[test]
fn deployment_table_has_kubectl_columns() {
    let res = builtins()
        .into_iter()
        .find(|r| r.plural == "deployments")
        .unwrap();
    let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let t = table(&res, &[d], IncludeObject::Metadata, now(), "7", None);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"] == 0)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["web", "2/3", 3, 2, "10m", "c", "nginx", "app=web"])
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["metadata"]["resourceVersion"], "7");
}

#[test]
fn custom_resource_columns() {
    let mut res = builtins()
        .into_iter()
        .find(|r| r.plural == "deployments")
        .unwrap();
    res.custom = true;
    res.printer_columns = vec![crate::sim::resources::PrinterColumn {
        name: "Ready".into(),
        type_: "string".into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: ".status.conditions[?(@.type==\"Ready\")].status".into(),
    }];
    let o = json!({"metadata": {"name": "x"}, "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}});
    let t = table(&res, &[o], IncludeObject::None, now(), "1", None);
    assert_eq!(t["rows"][0]["cells"], json!(["x", "True"]));
    assert!(t["rows"][0].get("object").is_none());
    res.printer_columns.clear();
    let t = table(
        &res,
        &[json!({"metadata": {"name": "y", "creationTimestamp": "2024-05-01T10:09:00Z"}})],
        IncludeObject::Metadata,
        now(),
        "1",
        None,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["y", "60s"]));
}
