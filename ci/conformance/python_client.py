#!/usr/bin/env python3
"""The official Python client (kubernetes, pinned by .ci/run) against the simulated cluster:
typed reads, create, patch, delete and a watch with a timeout. Prints one `ok ...` line per
check; tests/conformance.rs runs it and asserts the lines. Usage: python_client.py NAMESPACE
(KUBECONFIG names the cluster)."""

import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def main() -> None:
    ns = sys.argv[1]
    config.load_kube_config()
    core = client.CoreV1Api()
    apps = client.AppsV1Api()

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    labels = {"app": "web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="nginx:1.27")]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(ns, deployment)
    assert created.metadata.uid, created
    print(f"ok create_namespaced_deployment {created.metadata.name}")

    def ready(n):
        d = apps.read_namespaced_deployment("web", ns)
        return d if d.status.ready_replicas == n else None

    d = wait_for("1 ready replica", lambda: ready(1))
    assert isinstance(d, client.V1Deployment)
    print(f"ok read_namespaced_deployment web ready_replicas={d.status.ready_replicas}")

    apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 2}})
    d = wait_for("2 ready replicas", lambda: ready(2))
    print(f"ok patch_namespaced_deployment web ready_replicas={d.status.ready_replicas}")

    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    phases = sorted(p.status.phase for p in pods)
    assert phases == ["Running", "Running"], phases
    print(f"ok list_namespaced_pod {len(pods)} {phases[0]}")

    def create_later():
        time.sleep(0.5)
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"a": "1"})
        )

    threading.Thread(target=create_later).start()
    w = watch.Watch()
    seen = None
    for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=10):
        obj = event["object"]
        if obj.metadata.name == "watched":
            seen = (event["type"], obj.data)
            w.stop()
    assert seen == ("ADDED", {"a": "1"}), seen
    print(f"ok watch {seen[0]} configmap/watched")

    status = apps.delete_namespaced_deployment("web", ns)
    assert status.status == "Success", status
    print("ok delete_namespaced_deployment web")

    try:
        apps.read_namespaced_deployment("web", ns)
        sys.exit("the deleted deployment is still there")
    except ApiException as e:
        assert e.status == 404, e
        assert e.reason == "Not Found", e.reason
        assert '"reason":"NotFound"' in e.body, e.body
        print("ok read_namespaced_deployment web 404 NotFound")


if __name__ == "__main__":
    main()
