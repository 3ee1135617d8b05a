//! What the kubelet reads from the API before it creates a container: environment variables
//! from Secrets and ConfigMaps, and the sources of volumes.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::sim::behaviour::ClusterViewExt;

/// Decodes standard base64 (Secret `data`); `None` when the text is not valid base64.
#[must_use]
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    crate::sim::controllers::meta::pointer(v, ptr).and_then(Value::as_str)
}

fn optional(v: &Value) -> bool {
    v.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

/// A Secret's values, decoded (`stringData` is folded into `data` by the API server; it is
/// read here too in case the store kept it).
fn secret_values(secret: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v
                .as_str()
                .and_then(base64_decode)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            out.insert(k.clone(), text);
        }
    }
    if let Some(data) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            out.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
    }
    out
}

fn configmap_values(cm: &Value) -> BTreeMap<String, String> {
    cm.get("data")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Secret and ConfigMap lookups in the pod's namespace.
struct Lookup<'a> {
    view: &'a dyn ClusterViewExt,
    namespace: &'a str,
}

impl Lookup<'_> {
    // The kubelet's secret and configmap managers report a missing object with the singular
    // resource name (pkg/kubelet/secret, pkg/kubelet/configmap: `apierrors.NewNotFound(
    // schema.GroupResource{Resource: "secret"}, name)`), hence `secret "x" not found`.
    fn secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        self.view
            .get("v1", "Secret", Some(self.namespace), name)
            .map(|s| secret_values(&s))
            // pkg/kubelet/secret/secret_manager.go via apierrors.NewNotFound.
            .ok_or_else(|| format!("secret \"{name}\" not found"))
    }

    fn configmap(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        self.view
            .get("v1", "ConfigMap", Some(self.namespace), name)
            .map(|c| configmap_values(&c))
            // pkg/kubelet/configmap/configmap_manager.go via apierrors.NewNotFound.
            .ok_or_else(|| format!("configmap \"{name}\" not found"))
    }
}

/// Expands `$(VAR)` references as the kubelet does (`$$` escapes, unknown references stay).
pub(super) fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Resolves a container's environment: `envFrom` first, then `env` (which overrides), with the
/// kubelet's error texts (pkg/kubelet/kubelet_pods.go `makeEnvironmentVariables`).
///
/// # Errors
/// The message the kubelet puts in the `CreateContainerConfigError` waiting state: `secret "x"
/// not found`, `configmap "x" not found`, `couldn't find key k in Secret ns/x`, `couldn't find
/// key k in ConfigMap ns/x`.
pub fn resolve_env(
    pod: &Value,
    container: &Value,
    view: &dyn ClusterViewExt,
    pod_ip: &str,
    host_ip: &str,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = str_at(pod, "/metadata/namespace").unwrap_or_default();
    let lookup = Lookup { view, namespace };
    let mut env = BTreeMap::new();
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
        let values = if let Some(r) = from.get("configMapRef") {
            lookup
                .configmap(str_at(r, "/name").unwrap_or_default())
                .map(Some)
                .or_else(|e| if optional(r) { Ok(None) } else { Err(e) })?
        } else if let Some(r) = from.get("secretRef") {
            lookup
                .secret(str_at(r, "/name").unwrap_or_default())
                .map(Some)
                .or_else(|e| if optional(r) { Ok(None) } else { Err(e) })?
        } else {
            None
        };
        for (k, v) in values.into_iter().flatten() {
            env.insert(format!("{prefix}{k}"), v);
        }
    }
    for var in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = var.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(v) = var
            .get("value")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            expand(v, &env)
        } else if let Some(from) = var.get("valueFrom") {
            if let Some(r) = from.get("secretKeyRef") {
                let (n, k) = (
                    str_at(r, "/name").unwrap_or_default(),
                    str_at(r, "/key").unwrap_or_default(),
                );
                match lookup.secret(n) {
                    Err(_) if optional(r) => continue,
                    Err(e) => return Err(e),
                    Ok(values) => match values.get(k) {
                        Some(v) => v.clone(),
                        None if optional(r) => continue,
                        None => {
                            return Err(format!("couldn't find key {k} in Secret {namespace}/{n}"));
                        }
                    },
                }
            } else if let Some(r) = from.get("configMapKeyRef") {
                let (n, k) = (
                    str_at(r, "/name").unwrap_or_default(),
                    str_at(r, "/key").unwrap_or_default(),
                );
                match lookup.configmap(n) {
                    Err(_) if optional(r) => continue,
                    Err(e) => return Err(e),
                    Ok(values) => match values.get(k) {
                        Some(v) => v.clone(),
                        None if optional(r) => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {k} in ConfigMap {namespace}/{n}"
                            ));
                        }
                    },
                }
            } else if let Some(f) = from.get("fieldRef") {
                field_value(
                    pod,
                    str_at(f, "/fieldPath").unwrap_or_default(),
                    pod_ip,
                    host_ip,
                )
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.insert(name.to_owned(), value);
    }
    Ok(env)
}

fn field_value(pod: &Value, path: &str, pod_ip: &str, host_ip: &str) -> String {
    let meta = |k: &str| {
        str_at(pod, &format!("/metadata/{k}"))
            .unwrap_or_default()
            .to_owned()
    };
    match path {
        "metadata.name" => meta("name"),
        "metadata.namespace" => meta("namespace"),
        "metadata.uid" => meta("uid"),
        "spec.nodeName" => str_at(pod, "/spec/nodeName").unwrap_or_default().to_owned(),
        "spec.serviceAccountName" => str_at(pod, "/spec/serviceAccountName")
            .unwrap_or("default")
            .to_owned(),
        "status.podIP" | "status.podIPs" => pod_ip.to_owned(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_owned(),
        other => {
            for (prefix, field) in [
                ("metadata.labels['", "labels"),
                ("metadata.annotations['", "annotations"),
            ] {
                if let Some(key) = other
                    .strip_prefix(prefix)
                    .and_then(|k| k.strip_suffix("']"))
                {
                    return pod
                        .pointer(&format!("/metadata/{field}"))
                        .and_then(|m| m.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                }
            }
            String::new()
        }
    }
}

/// The files a container sees from its ConfigMap, Secret and projected volumes, by absolute
/// path, with their text: each key at `<mountPath>/<key>` (or at the `path` its `items` entry
/// gives), a `subPath` mount as the single file at `mountPath`. What a program reads at start.
/// Volumes that cannot be set up are left out (the pod does not start then anyway).
#[must_use]
pub fn mounted_files(
    pod: &Value,
    container: &Value,
    view: &dyn ClusterViewExt,
) -> BTreeMap<String, String> {
    let namespace = str_at(pod, "/metadata/namespace").unwrap_or_default();
    let lookup = Lookup { view, namespace };
    let volumes: Vec<&Value> = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    // The files of one source (a ConfigMap or Secret, possibly narrowed by `items`), by their
    // path relative to the mount.
    let source_files = |values: BTreeMap<String, String>, src: &Value| -> Vec<(String, String)> {
        match src.get("items").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .filter_map(|item| {
                    let key = str_at(item, "/key")?;
                    let path = str_at(item, "/path").unwrap_or(key);
                    values.get(key).map(|v| (path.to_owned(), v.clone()))
                })
                .collect(),
            None => values.into_iter().collect(),
        }
    };
    let mut out = BTreeMap::new();
    for mount in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(mount, "/name").unwrap_or_default();
        let mount_path = str_at(mount, "/mountPath")
            .unwrap_or_default()
            .trim_end_matches('/');
        let Some(vol) = volumes.iter().find(|v| str_at(v, "/name") == Some(name)) else {
            continue;
        };
        let mut files = Vec::new();
        if let Some(src) = vol.get("secret") {
            let n = str_at(src, "/secretName").unwrap_or_default();
            if let Ok(values) = lookup.secret(n) {
                files.extend(source_files(values, src));
            }
        } else if let Some(src) = vol.get("configMap") {
            let n = str_at(src, "/name").unwrap_or_default();
            if let Ok(values) = lookup.configmap(n) {
                files.extend(source_files(values, src));
            }
        } else if let Some(p) = vol.get("projected") {
            for src in p
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(s) = src.get("secret") {
                    if let Ok(values) = lookup.secret(str_at(s, "/name").unwrap_or_default()) {
                        files.extend(source_files(values, s));
                    }
                } else if let Some(c) = src.get("configMap")
                    && let Ok(values) = lookup.configmap(str_at(c, "/name").unwrap_or_default())
                {
                    files.extend(source_files(values, c));
                }
            }
        }
        match str_at(mount, "/subPath").filter(|p| !p.is_empty()) {
            Some(sub) => {
                if let Some((_, text)) = files.into_iter().find(|(p, _)| p == sub) {
                    out.insert(mount_path.to_owned(), text);
                }
            }
            None => {
                for (path, text) in files {
                    out.insert(format!("{mount_path}/{path}"), text);
                }
            }
        }
    }
    out
}

/// Why a volume cannot be set up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeProblem {
    /// Mounting fails; the text is the `FailedMount` event message.
    SetUpFailed(String),
    /// The volume is not attached to the node yet (or its claim is not bound): the kubelet
    /// waits without an event of its own.
    NotAttached,
}

/// The text of client-go's error aggregate (apimachinery pkg/util/errors/errors.go
/// `aggregate.Error`): nothing for no error, the one message alone, else the distinct messages
/// in order, joined by `, ` inside `[` `]`.
fn aggregate(errors: &[String]) -> Option<String> {
    let mut distinct: Vec<&str> = Vec::new();
    for e in errors {
        if !distinct.contains(&e.as_str()) {
            distinct.push(e);
        }
    }
    match distinct.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

/// Checks every volume of the pod on `node`, in spec order, and returns the problems by volume name.
#[must_use]
pub fn check_volumes(
    pod: &Value,
    view: &dyn ClusterViewExt,
    node: &str,
) -> Vec<(String, VolumeProblem)> {
    let namespace = str_at(pod, "/metadata/namespace").unwrap_or_default();
    let lookup = Lookup { view, namespace };
    let mut out = Vec::new();
    for vol in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(vol, "/name").unwrap_or_default().to_owned();
        // operationexecutor GenerateError: `%v for volume %q %v` with the suffix `: <err>`
        // (pkg/volume/util/operationexecutor/operation_executor.go), for the MountVolume.SetUp
        // step of operation_generator.go GenerateMountVolumeFunc.
        let setup = |err: String| {
            VolumeProblem::SetUpFailed(format!(
                "MountVolume.SetUp failed for volume \"{name}\" : {err}"
            ))
        };
        let problem = if let Some(s) = vol.get("secret") {
            let n = str_at(s, "/secretName").unwrap_or_default();
            lookup.secret(n).err().filter(|_| !optional(s)).map(setup)
        } else if let Some(c) = vol.get("configMap") {
            let n = str_at(c, "/name").unwrap_or_default();
            lookup
                .configmap(n)
                .err()
                .filter(|_| !optional(c))
                .map(setup)
        } else if let Some(p) = vol.get("projected") {
            // projected.go `collectData` tries every source and returns
            // `utilerrors.NewAggregate(errlist)` of all that failed.
            let errors: Vec<String> = p
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|src| {
                    if let Some(s) = src.get("secret") {
                        let n = str_at(s, "/name").unwrap_or_default();
                        lookup.secret(n).err().filter(|_| !optional(s))
                    } else if let Some(c) = src.get("configMap") {
                        let n = str_at(c, "/name").unwrap_or_default();
                        // Every namespace has the cluster's CA bundle (published by
                        // kube-controller-manager's root-ca-cert-publisher); the sim does not
                        // store it, so the service-account volume never waits on it.
                        if n == "kube-root-ca.crt" {
                            return None;
                        }
                        lookup.configmap(n).err().filter(|_| !optional(c))
                    } else {
                        None
                    }
                })
                .collect();
            aggregate(&errors).map(setup)
        } else if let Some(c) = vol.get("persistentVolumeClaim") {
            let claim = str_at(c, "/claimName").unwrap_or_default();
            let pv = view
                .get("v1", "PersistentVolumeClaim", Some(namespace), claim)
                .and_then(|pvc| str_at(&pvc, "/spec/volumeName").map(str::to_owned));
            match pv {
                Some(pv) if view.volume_attached(&pv, node) => None,
                _ => Some(VolumeProblem::NotAttached),
            }
        } else {
            None
        };
        if let Some(p) = problem {
            out.push((name, p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::behaviour::StaticView;

    fn pod(volumes: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"}},
               "spec": {"nodeName": "n1", "volumes": volumes}})
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("czNjcjN0").unwrap(), b"s3cr3t");
        assert_eq!(base64_decode("a$b"), None);
    }

    #[test]
    fn env_resolution_and_kubelet_errors() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "ns"}, "data": {"password": "cw=="}});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "ns"}, "data": {"MODE": "prod"}});
        let view = StaticView::new(vec![secret, cm]);
        let p = pod(json!([]));
        let c = json!({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "X_"}],
        "env": [
            {"name": "A", "value": "a-$(X_MODE)-$$-$(NOPE)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}}
        ]});
        let env = resolve_env(&p, &c, &view, "10.42.1.2", "172.18.0.2").unwrap();
        assert_eq!(env["A"], "a-prod-$-$(NOPE)");
        assert_eq!(env["PW"], "s");
        assert_eq!(env["POD"], "p");
        assert_eq!(env["APP"], "a");
        assert_eq!(env["IP"], "10.42.1.2");
        assert_eq!(env["X_MODE"], "prod");
        assert!(!env.contains_key("OPT"));

        let err = |c: Value| resolve_env(&p, &c, &view, "", "").unwrap_err();
        assert_eq!(
            err(
                json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]})
            ),
            "secret \"x\" not found"
        );
        assert_eq!(
            err(
                json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]})
            ),
            "couldn't find key k in Secret ns/db"
        );
        assert_eq!(
            err(
                json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]})
            ),
            "couldn't find key k in ConfigMap ns/cfg"
        );
        assert_eq!(
            err(json!({"envFrom": [{"configMapRef": {"name": "postgres-db-config"}}]})),
            "configmap \"postgres-db-config\" not found"
        );
    }

    #[test]
    fn mounted_files_follow_items_sub_path_and_projected_sources() {
        let view = StaticView::new(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app-config", "namespace": "ns"},
                "data": {"app-config.yaml": "backend:\n  baseUrl: x\n", "other": "o"}}),
            // `czNjcmV0` is base64 for `s3cret`.
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "ns"},
                "data": {"password": "czNjcmV0"}}),
        ]);
        let p = json!({
            "metadata": {"namespace": "ns"},
            "spec": {"volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "only", "configMap": {"name": "app-config", "items": [{"key": "other", "path": "renamed.txt"}]}},
                {"name": "secret", "secret": {"secretName": "creds"}},
                {"name": "both", "projected": {"sources": [{"secret": {"name": "creds"}}, {"configMap": {"name": "app-config", "items": [{"key": "other", "path": "o.txt"}]}}]}},
                {"name": "missing", "configMap": {"name": "nope", "optional": true}}
            ]}
        });
        let container = json!({"volumeMounts": [
            {"name": "config", "mountPath": "/app/config.yaml", "subPath": "app-config.yaml"},
            {"name": "only", "mountPath": "/etc/only/"},
            {"name": "secret", "mountPath": "/run/secrets"},
            {"name": "both", "mountPath": "/p"},
            {"name": "missing", "mountPath": "/m"}
        ]});
        let files = mounted_files(&p, &container, &view);
        let paths: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "/app/config.yaml",
                "/etc/only/renamed.txt",
                "/p/o.txt",
                "/p/password",
                "/run/secrets/password"
            ]
        );
        assert_eq!(files["/app/config.yaml"], "backend:\n  baseUrl: x\n");
        assert_eq!(files["/run/secrets/password"], "s3cret");
    }

    #[test]
    fn volume_problems() {
        let p = pod(json!([
            {"name": "creds", "secret": {"secretName": "x"}},
            {"name": "opt", "secret": {"secretName": "y", "optional": true}},
            {"name": "datasets", "configMap": {"name": "datasets-config"}},
            {"name": "kube-api-access-abcde", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt"}}]}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
        ]));
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "ns"}, "spec": {"volumeName": "pvc-1"}});
        let mut view = StaticView::new(vec![pvc]);
        view.attached = Some(vec![]);
        assert_eq!(
            check_volumes(&p, &view, "n1"),
            vec![
                ("creds".to_owned(), VolumeProblem::SetUpFailed("MountVolume.SetUp failed for volume \"creds\" : secret \"x\" not found".into())),
                ("datasets".to_owned(), VolumeProblem::SetUpFailed("MountVolume.SetUp failed for volume \"datasets\" : configmap \"datasets-config\" not found".into())),
                ("data".to_owned(), VolumeProblem::NotAttached),
            ]
        );
        view.attached = Some(vec![("pvc-1".into(), "n1".into())]);
        assert_eq!(check_volumes(&p, &view, "n1").len(), 2);
    }

    #[test]
    fn a_projected_volume_reports_every_missing_source_at_once() {
        let p = pod(json!([
            {"name": "all", "projected": {"sources": [
                {"secret": {"name": "a"}},
                {"secret": {"name": "opt", "optional": true}},
                {"configMap": {"name": "b"}},
                {"secret": {"name": "a"}}]}},
            {"name": "one", "projected": {"sources": [{"configMap": {"name": "b"}}]}}
        ]));
        let view = StaticView::new(vec![]);
        assert_eq!(
            check_volumes(&p, &view, "n1"),
            vec![
                ("all".to_owned(), VolumeProblem::SetUpFailed("MountVolume.SetUp failed for volume \"all\" : [secret \"a\" not found, configmap \"b\" not found]".into())),
                ("one".to_owned(), VolumeProblem::SetUpFailed("MountVolume.SetUp failed for volume \"one\" : configmap \"b\" not found".into())),
            ]
        );
    }
}
