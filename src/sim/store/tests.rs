use super::*;
use crate::sim::clock::ManualClock;

fn store() -> Store {
    Store::new(
        Arc::new(ManualClock::new("2024-05-01T10:00:00Z".parse().unwrap())),
        StoreConfig::default(),
    )
}

fn res(s: &Store, group: &str, plural: &str) -> ResourceDef {
    s.resources()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap()
}

#[test]
fn starts_with_namespaces_and_kubernetes_service() {
    let s = store();
    let ns = res(&s, "", "namespaces");
    let list = s.list(&ns, None, &ListOptions::default()).unwrap();
    let names: Vec<&str> = list
        .items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, INITIAL_NAMESPACES);
    let svc = s
        .get(&res(&s, "", "services"), Some("default"), "kubernetes")
        .unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
    assert!(
        s.get(&res(&s, "", "serviceaccounts"), Some("default"), "default")
            .is_ok()
    );
}

#[test]
fn create_sets_metadata_and_rejects_duplicates() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    let before = s.resource_version();
    let obj = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(obj["apiVersion"], "v1");
    assert_eq!(obj["kind"], "ConfigMap");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert_eq!(obj["metadata"]["creationTimestamp"], "2024-05-01T10:00:00Z");
    assert_eq!(obj["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert_eq!(obj["metadata"]["resourceVersion"], (before + 1).to_string());
    let err = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "c"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::AlreadyExists);
    assert_eq!(err.message, r#"configmaps "c" already exists"#);
    let err = s
        .create(
            &cm,
            Some("nope"),
            json!({"metadata": {"name": "c"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.message, r#"namespaces "nope" not found"#);
    let generated = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"generateName": "x-"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(
        generated["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("x-")
    );
}

#[test]
fn update_conflicts_and_generation() {
    let s = store();
    let d = res(&s, "apps", "deployments");
    let body = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let created = s
        .create(&d, Some("default"), body, &WriteOptions::default())
        .unwrap();
    assert_eq!(created["metadata"]["generation"], 1);
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let err = s
        .update(
            &d,
            Some("default"),
            "web",
            stale,
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::Conflict);
    assert_eq!(
        err.message,
        r#"Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again"#
    );
    let mut labelled = created.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let u = s
        .update(
            &d,
            Some("default"),
            "web",
            labelled,
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(u["metadata"]["generation"], 1);
    let mut scaled = u.clone();
    scaled["spec"]["replicas"] = json!(3);
    scaled["status"] = json!({"replicas": 99});
    let u2 = s
        .update(
            &d,
            Some("default"),
            "web",
            scaled,
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(u2["metadata"]["generation"], 2);
    assert_eq!(
        u2["status"],
        json!({}),
        "main resource writes ignore status"
    );
    let mut st = u2.clone();
    st["status"] = json!({"observedGeneration": 2});
    st["spec"]["replicas"] = json!(7);
    let u3 = s
        .update(
            &d,
            Some("default"),
            "web",
            st,
            Part::Status,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(u3["status"]["observedGeneration"], 2);
    assert_eq!(u3["spec"]["replicas"], 3, "status writes ignore spec");
    // A no-op write keeps the resourceVersion.
    let same = s
        .update(
            &d,
            Some("default"),
            "web",
            u3.clone(),
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"],
        u3["metadata"]["resourceVersion"]
    );
}

#[test]
fn invalid_objects_are_rejected() {
    let s = store();
    let d = res(&s, "apps", "deployments");
    let body = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let err = s
        .create(&d, Some("default"), body, &WriteOptions::default())
        .unwrap_err();
    assert_eq!(err.reason, Reason::Invalid);
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    );
}

fn owned(name: &str, owner: &Value, block: bool) -> Value {
    json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}]}})
}

#[test]
fn background_gc_deletes_dependents() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    let owner = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "owner"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    s.create(
        &cm,
        Some("default"),
        owned("dep", &owner, false),
        &WriteOptions::default(),
    )
    .unwrap();
    let out = s
        .delete(&cm, Some("default"), "owner", &DeleteOptions::default())
        .unwrap();
    assert!(matches!(out, Deleted::Gone(_)));
    assert_eq!(
        s.get(&cm, Some("default"), "dep").unwrap_err().reason,
        Reason::NotFound
    );
}

#[test]
fn foreground_waits_for_blocking_dependents_with_finalizers() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    let owner = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "owner"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let mut dep = owned("dep", &owner, true);
    dep["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.create(&cm, Some("default"), dep, &WriteOptions::default())
        .unwrap();
    let opts = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..DeleteOptions::default()
    };
    let Deleted::Pending(pending) = s.delete(&cm, Some("default"), "owner", &opts).unwrap() else {
        panic!("owner gone too early")
    };
    assert_eq!(
        pending["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    let dep = s.get(&cm, Some("default"), "dep").unwrap();
    assert!(dep["metadata"]["deletionTimestamp"].is_string());
    // Releasing the dependent's finalizer removes it, then the owner.
    let mut released = dep.clone();
    released["metadata"]["finalizers"] = json!([]);
    s.update(
        &cm,
        Some("default"),
        "dep",
        released,
        Part::Main,
        &WriteOptions::default(),
    )
    .unwrap();
    assert_eq!(
        s.get(&cm, Some("default"), "dep").unwrap_err().reason,
        Reason::NotFound
    );
    assert_eq!(
        s.get(&cm, Some("default"), "owner").unwrap_err().reason,
        Reason::NotFound
    );
}

#[test]
fn orphan_keeps_dependents() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    let owner = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "owner"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    s.create(
        &cm,
        Some("default"),
        owned("dep", &owner, true),
        &WriteOptions::default(),
    )
    .unwrap();
    let opts = DeleteOptions {
        propagation: Some(Propagation::Orphan),
        ..DeleteOptions::default()
    };
    s.delete(&cm, Some("default"), "owner", &opts).unwrap();
    assert_eq!(
        s.get(&cm, Some("default"), "owner").unwrap_err().reason,
        Reason::NotFound
    );
    let dep = s.get(&cm, Some("default"), "dep").unwrap();
    assert!(dep["metadata"].get("ownerReferences").is_none());
}

#[test]
fn namespace_lifecycle() {
    let s = store();
    let ns = res(&s, "", "namespaces");
    let cm = res(&s, "", "configmaps");
    s.create(
        &ns,
        None,
        json!({"metadata": {"name": "team"}}),
        &WriteOptions::default(),
    )
    .unwrap();
    let mut held = json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}});
    s.create(&cm, Some("team"), held.clone(), &WriteOptions::default())
        .unwrap();
    s.create(
        &cm,
        Some("team"),
        json!({"metadata": {"name": "free"}}),
        &WriteOptions::default(),
    )
    .unwrap();
    let Deleted::Pending(terminating) = s
        .delete(&ns, None, "team", &DeleteOptions::default())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(terminating["status"]["phase"], "Terminating");
    assert_eq!(
        s.get(&cm, Some("team"), "free").unwrap_err().reason,
        Reason::NotFound
    );
    let err = s
        .create(
            &cm,
            Some("team"),
            json!({"metadata": {"name": "late"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"configmaps "late" is forbidden: unable to create new content in namespace team because it is being terminated"#
    );
    held = s.get(&cm, Some("team"), "held").unwrap();
    held["metadata"]["finalizers"] = json!([]);
    s.update(
        &cm,
        Some("team"),
        "held",
        held,
        Part::Main,
        &WriteOptions::default(),
    )
    .unwrap();
    assert_eq!(
        s.get(&ns, None, "team").unwrap_err().reason,
        Reason::NotFound
    );
}

#[test]
fn crd_lifecycle() {
    let s = store();
    let crds = res(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
    let created = s
        .create(&crds, None, crd, &WriteOptions::default())
        .unwrap();
    let conds = created["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    assert_eq!(created["spec"]["names"]["singular"], "widget");
    let widgets = s.resource("example.com", "v1", "widgets").expect("served");
    s.create(
        &widgets,
        Some("default"),
        json!({"metadata": {"name": "w"}, "spec": {"size": 1}}),
        &WriteOptions::default(),
    )
    .unwrap();
    s.delete(
        &crds,
        None,
        "widgets.example.com",
        &DeleteOptions::default(),
    )
    .unwrap();
    assert!(s.resource("example.com", "v1", "widgets").is_none());
    assert_eq!(
        s.get(&crds, None, "widgets.example.com")
            .unwrap_err()
            .reason,
        Reason::NotFound
    );
}

#[test]
fn watch_history_and_expiry() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    let start = s.resource_version();
    s.create(
        &cm,
        Some("default"),
        json!({"metadata": {"name": "a"}}),
        &WriteOptions::default(),
    )
    .unwrap();
    let sub = s.watch(&cm, Some(start)).unwrap();
    assert_eq!(sub.initial.len(), 1);
    assert_eq!(sub.initial[0].kind, WatchEventType::Added);
    s.compact();
    let err = s.watch(&cm, Some(start)).unwrap_err();
    assert_eq!(err.reason, Reason::Expired);
    assert_eq!(
        err.message,
        format!(
            "too old resource version: {start} ({})",
            s.resource_version()
        )
    );
    assert!(s.watch(&cm, Some(s.resource_version())).is_ok());
}

fn store_with(config: StoreConfig) -> Store {
    Store::new(
        Arc::new(ManualClock::new("2024-05-01T10:00:00Z".parse().unwrap())),
        config,
    )
}

/// Creates ConfigMaps `c0`.. with `size` bytes of data each; returns the resourceVersion before.
fn create_config_maps(s: &Store, names: std::ops::Range<usize>, size: usize) -> u64 {
    let cm = res(s, "", "configmaps");
    let before = s.resource_version();
    for i in names {
        s.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": format!("c{i}")}, "data": {"k": "x".repeat(size)}}),
            &WriteOptions::default(),
        )
        .unwrap();
    }
    before
}

#[test]
fn watch_history_is_bounded_by_count() {
    let s = store_with(StoreConfig {
        watch_history: 3,
        ..StoreConfig::default()
    });
    let cm = res(&s, "", "configmaps");
    let start = create_config_maps(&s, 0..5, 10);
    let rv = s.resource_version();
    // The last three changes are kept: from rv - 3 on, nothing is missing.
    let (events, upto) = s.changes_since(rv - 3, None).unwrap();
    assert_eq!(upto, rv);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.object["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c2", "c3", "c4"]);
    let err = s.changes_since(rv - 4, None).unwrap_err();
    assert_eq!(err.reason, Reason::Expired);
    assert_eq!(
        err.message,
        format!("too old resource version: {} ({})", rv - 4, rv - 3)
    );
    assert_eq!(
        s.watch(&cm, Some(start)).unwrap_err().reason,
        Reason::Expired
    );
    assert_eq!(s.watch(&cm, Some(rv - 3)).unwrap().initial.len(), 3);
}

#[test]
fn watch_history_is_bounded_by_serialized_size() {
    let probe = store();
    create_config_maps(&probe, 0..1, 1000);
    let (events, _) = probe.changes_since(0, None).unwrap();
    let one = events.last().unwrap();
    assert_eq!(one.size, serde_json::to_vec(&*one.object).unwrap().len());
    assert!(one.size > 1000);

    // Room for two and a half such objects: two are kept, whatever the count allows.
    let s = store_with(StoreConfig {
        watch_history_bytes: one.size * 5 / 2,
        ..StoreConfig::default()
    });
    create_config_maps(&s, 0..4, 1000);
    let rv = s.resource_version();
    let (events, _) = s.changes_since(rv - 2, None).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].object["metadata"]["name"], "c2");
    assert_eq!(
        s.changes_since(rv - 3, None).unwrap_err().reason,
        Reason::Expired
    );
    // Small changes fill the same room with more events.
    create_config_maps(&s, 10..20, 1);
    let rv = s.resource_version();
    assert_eq!(s.changes_since(rv - 10, None).unwrap().0.len(), 10);
}

#[test]
fn changes_since_filters_by_resource_and_reports_how_far_it_read() {
    let s = store();
    let secrets = res(&s, "", "secrets");
    let cm = res(&s, "", "configmaps");
    let start = create_config_maps(&s, 0..2, 1);
    s.create(
        &secrets,
        Some("default"),
        json!({"metadata": {"name": "s"}}),
        &WriteOptions::default(),
    )
    .unwrap();
    let (events, upto) = s.changes_since(start, Some(&cm)).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(upto, s.resource_version());
    let (events, _) = s.changes_since(start, Some(&secrets)).unwrap();
    assert_eq!(events.len(), 1);
    assert!(s.changes_since(upto, None).unwrap().0.is_empty());
}

#[test]
fn list_pages_and_selectors() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    for i in 0..5 {
        s.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": format!("c{i}"), "labels": {"i": i.to_string()}}}),
            &WriteOptions::default(),
        )
        .unwrap();
    }
    let page = s
        .list(
            &cm,
            Some("default"),
            &ListOptions {
                limit: 2,
                ..ListOptions::default()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.remaining, Some(3));
    let next = s
        .list(
            &cm,
            Some("default"),
            &ListOptions {
                limit: 10,
                continue_token: page.continue_token,
                ..ListOptions::default()
            },
        )
        .unwrap();
    assert_eq!(next.items[0]["metadata"]["name"], "c2");
    assert!(next.continue_token.is_none());
    let sel = ListOptions {
        labels: LabelSelector::parse("i in (1,3)").unwrap(),
        ..ListOptions::default()
    };
    assert_eq!(s.list(&cm, None, &sel).unwrap().items.len(), 2);
}

#[test]
fn services_get_cluster_ips() {
    let s = store();
    let svc = res(&s, "", "services");
    let a = s
        .create(
            &svc,
            Some("default"),
            json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}),
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(a["spec"]["clusterIP"], "10.43.0.2");
    assert_eq!(a["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(a["spec"]["type"], "ClusterIP");
    let n = s.create(&svc, Some("default"), json!({"metadata": {"name": "n"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}), &WriteOptions::default()).unwrap();
    assert_eq!(n["spec"]["ports"][0]["nodePort"], 30000);
}

#[test]
fn base64_roundtrip() {
    for s in ["", "a", "ab", "abc", "abcd", "hello world"] {
        assert_eq!(unbase64(&base64(s.as_bytes())).unwrap(), s.as_bytes());
    }
    assert_eq!(base64(b"hello"), "aGVsbG8=");
}

#[test]
fn deleting_a_namespace_with_many_objects_does_not_recurse_per_object() {
    // Run on a thread with a small stack: finalizing the namespace used to nest one
    // delete/GC frame per object and overflowed with a few thousand.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let s = store();
            let ns = res(&s, "", "namespaces");
            let cm = res(&s, "", "configmaps");
            s.create(
                &ns,
                None,
                json!({"metadata": {"name": "busy"}}),
                &WriteOptions::default(),
            )
            .unwrap();
            for i in 0..3000 {
                s.create(
                    &cm,
                    Some("busy"),
                    json!({"metadata": {"name": format!("cm-{i}")}}),
                    &WriteOptions::default(),
                )
                .unwrap();
            }
            s.delete(&ns, None, "busy", &DeleteOptions::default())
                .unwrap();
            assert_eq!(
                s.get(&cm, Some("busy"), "cm-2999").unwrap_err().reason,
                Reason::NotFound
            );
            assert_eq!(
                s.get(&ns, None, "busy").unwrap_err().reason,
                Reason::NotFound
            );
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn rejections_read_as_the_api_server_words_them() {
    let s = store();
    let cm = res(&s, "", "configmaps");
    let created = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "c"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    // rest.BeforeDelete, qualified by the kind.
    let err = s
        .delete(
            &cm,
            Some("default"),
            "c",
            &DeleteOptions {
                uid: Some("other".into()),
                ..DeleteOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::Conflict);
    assert_eq!(
        err.message,
        format!(
            r#"Operation cannot be fulfilled on ConfigMap "c": the UID in the precondition (other) does not match the UID in record ({uid}). The object might have been deleted and then recreated"#
        )
    );
    let err = s
        .delete(
            &cm,
            Some("default"),
            "c",
            &DeleteOptions {
                resource_version: Some("1".into()),
                ..DeleteOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        format!(
            r#"Operation cannot be fulfilled on ConfigMap "c": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv}). The object might have been modified"#
        )
    );
    // checkName on update.
    let err = s
        .update(
            &cm,
            Some("default"),
            "c",
            json!({"metadata": {"name": "c", "namespace": "kube-system"}}),
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "the namespace of the object (kube-system) does not match the namespace on the request (default)"
    );
    // A custom resource updated without a resourceVersion: qualified by the resource.
    let crds = res(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    s.create(&crds, None, json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        &WriteOptions::default()).unwrap();
    let widgets = s.resource("example.com", "v1", "widgets").expect("served");
    s.create(
        &widgets,
        Some("default"),
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        &WriteOptions::default(),
    )
    .unwrap();
    let err = s
        .update(
            &widgets,
            Some("default"),
            "w",
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}}),
            Part::Main,
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"widgets.example.com "w" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"#
    );
    // A namespaced create with no namespace anywhere matches no route: 404.
    let err = s
        .create(
            &cm,
            None,
            json!({"metadata": {"name": "x"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::NotFound);
    assert_eq!(
        err.message,
        "the server could not find the requested resource"
    );
    // A generateName create in a terminating namespace: NewForbidden without a name.
    let ns = res(&s, "", "namespaces");
    s.create(
        &ns,
        None,
        json!({"metadata": {"name": "going"}}),
        &WriteOptions::default(),
    )
    .unwrap();
    s.create(
        &cm,
        Some("going"),
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        &WriteOptions::default(),
    )
    .unwrap();
    s.delete(&ns, None, "going", &DeleteOptions::default())
        .unwrap();
    let err = s
        .create(
            &cm,
            Some("going"),
            json!({"metadata": {"generateName": "late-"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "configmaps is forbidden: unable to create new content in namespace going because it is being terminated"
    );
    assert!(err.is_namespace_terminating());
    // ValidatePodManagementPolicy: field.Invalid.
    let sts = res(&s, "apps", "statefulsets");
    let err = s
        .create(&sts, Some("default"), json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "podManagementPolicy": "Sometimes",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "postgres"}]}}}}),
            &WriteOptions::default())
        .unwrap_err();
    assert!(
        err.message.contains(
            r#"spec.podManagementPolicy: Invalid value: "Sometimes": must be 'OrderedReady' or 'Parallel'"#
        ),
        "{}",
        err.message
    );
}

#[test]
fn a_new_built_in_object_has_an_empty_status_and_a_custom_one_none() {
    let s = store();
    let d = res(&s, "apps", "deployments");
    let created = s
        .create(&d, Some("default"), json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
            &WriteOptions::default())
        .unwrap();
    assert_eq!(created["status"], json!({}));
    let crds = res(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    s.create(&crds, None, json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        &WriteOptions::default()).unwrap();
    let widgets = s.resource("example.com", "v1", "widgets").expect("served");
    let w = s
        .create(
            &widgets,
            Some("default"),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(w.get("status").is_none(), "{w}");
}
