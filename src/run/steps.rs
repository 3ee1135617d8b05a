//! Carrying out scenario steps against a cluster through the kube client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use serde_json::{Value, json};

use crate::scenario::{ApplyStep, ObjectRef, PatchStep, PatchType, ScaleStep};

/// The field manager relapse applies as.
pub const FIELD_MANAGER: &str = "relapse";

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The kind is not served by the cluster. The message is the one kubectl prints
    /// (apimachinery pkg/api/meta/errors.go `NoKindMatchError`).
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\"")]
    NoKindMatch {
        /// The kind.
        kind: String,
        /// `group/version` or `version`.
        api_version: String,
    },
    /// A reference names a kind without `apiVersion` that is not a built-in kind.
    #[error("kind `{0}` is not a built-in kind; give its `apiVersion`")]
    UnknownKind(String),
    /// An object lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("object is missing `{0}`")]
    Malformed(&'static str),
    /// A manifest file was not loaded (a loader bug, reported rather than ignored).
    #[error("manifest file {} was not loaded", .0.display())]
    MissingManifest(PathBuf),
    /// The API server refused a request.
    #[error("{action} {target} failed: {message}")]
    Api {
        /// What was being done (`apply`, `delete`, ...).
        action: &'static str,
        /// `Kind namespace/name`.
        target: String,
        /// The server's message.
        message: String,
        /// The server's reason (`NotFound`, `Conflict`, ...), when it gave one.
        reason: String,
    },
    /// An apply that had to fail succeeded.
    #[error("apply of {target} succeeded, but the scenario expects it to fail with \"{expected}\"")]
    ExpectedError {
        /// `Kind namespace/name`.
        target: String,
        /// The expected message.
        expected: String,
    },
    /// An apply failed, but not with the expected message.
    #[error("apply of {target} failed with \"{actual}\", but the scenario expects \"{expected}\"")]
    WrongError {
        /// `Kind namespace/name`.
        target: String,
        /// The expected message.
        expected: String,
        /// What the server said.
        actual: String,
    },
    /// A JSON patch document is not a list of operations.
    #[error("invalid json patch")]
    JsonPatch(#[source] serde_json::Error),
}

/// `apiVersion` of built-in kinds, for references that leave it out (their preferred one).
#[must_use]
pub fn builtin_api_version(kind: &str) -> Option<&'static str> {
    crate::scenario::kinds::builtin_api_version(kind)
}

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((g, v)) => GroupVersionKind::gvk(g, v, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

/// Finds how the cluster serves a kind, asking discovery afresh each time (CRDs come and go).
///
/// # Errors
/// [`StepError::NoKindMatch`] when the kind is not served.
pub async fn resolve(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
) -> Result<(ApiResource, ApiCapabilities), StepError> {
    kube::discovery::pinned_kind(client, &gvk(api_version, kind))
        .await
        .map_err(|_| StepError::NoKindMatch {
            kind: kind.to_owned(),
            api_version: api_version.to_owned(),
        })
}

/// A dynamic API for one object of a resolved kind.
fn api_for(
    client: &kube::Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (caps.scope.clone(), namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        (Scope::Namespaced, None) => Api::namespaced_with(client.clone(), "default", ar),
        (Scope::Cluster, _) => Api::all_with(client.clone(), ar),
    }
}

fn api_error(action: &'static str, target: String, err: &kube::Error) -> StepError {
    match err {
        kube::Error::Api(status) => StepError::Api {
            action,
            target,
            message: status.message.clone(),
            reason: status.reason.clone(),
        },
        other => StepError::Api {
            action,
            target,
            message: other.to_string(),
            reason: String::new(),
        },
    }
}

fn target(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The objects an apply step applies, in order.
///
/// # Errors
/// [`StepError::MissingManifest`] when a file was not loaded.
pub fn apply_objects(
    step: &ApplyStep,
    manifests: &BTreeMap<PathBuf, Vec<Value>>,
) -> Result<Vec<Value>, StepError> {
    if let Some(file) = &step.file {
        let path = Path::new(file);
        return manifests
            .get(path)
            .cloned()
            .ok_or_else(|| StepError::MissingManifest(path.to_owned()));
    }
    Ok(match &step.inline {
        Some(Value::Array(items)) => items.clone(),
        Some(obj) => vec![obj.clone()],
        None => Vec::new(),
    })
}

/// Applies objects in order (server-side apply by `relapse`, forcing conflicts, as
/// `kubectl apply --server-side --force-conflicts`). With `expect_error`, the first failure must
/// carry that message and nothing after it is applied.
///
/// # Errors
/// The first object that fails, or [`StepError::ExpectedError`] when a failure was expected.
pub async fn apply(
    client: &kube::Client,
    step: &ApplyStep,
    objects: &[Value],
) -> Result<(), StepError> {
    for obj in objects {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or(StepError::Malformed("apiVersion"))?;
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or(StepError::Malformed("kind"))?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or(StepError::Malformed("metadata.name"))?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .or(step.namespace.as_deref());
        let what = target(kind, ns, name);
        let result = apply_one(client, api_version, kind, name, ns, obj, step.server_side).await;
        match (&step.expect_error, result) {
            (None, r) => r?,
            (Some(e), Ok(())) => {
                return Err(StepError::ExpectedError {
                    target: what,
                    expected: e.message.clone(),
                });
            }
            (Some(e), Err(err)) => {
                let actual = err.to_string();
                return if actual.contains(&e.message) {
                    Ok(())
                } else {
                    Err(StepError::WrongError {
                        target: what,
                        expected: e.message.clone(),
                        actual,
                    })
                };
            }
        }
    }
    Ok(())
}

async fn apply_one(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    name: &str,
    ns: Option<&str>,
    obj: &Value,
    server_side: bool,
) -> Result<(), StepError> {
    let (ar, caps) = resolve(client, api_version, kind).await?;
    let api = api_for(client, &ar, &caps, ns);
    let mut body = obj.clone();
    if let (Scope::Namespaced, Some(ns)) = (&caps.scope, ns)
        && let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(ns.to_owned()));
    }
    let result = if server_side {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    } else {
        // Client-side apply: record the applied configuration, then create or merge it in.
        let applied = serde_json::to_string(&body).unwrap_or_default();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    Value::String(applied),
                );
            }
        }
        // kubectl (1.27 and later) leaves unknown fields to the server and asks it to refuse
        // them: `fieldValidation=Strict` on the create and the patch.
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            field_validation: Some(kube::api::ValidationDirective::Strict),
            ..PatchParams::default()
        };
        match api.get_opt(name).await {
            Ok(None) => match serde_json::from_value::<DynamicObject>(body) {
                Ok(obj) => create_strict(client, &api, &obj).await,
                Err(_) => return Err(StepError::Malformed("metadata")),
            },
            Ok(Some(_)) if ar.group.is_empty() || builtin_api_version(kind).is_some() => {
                api.patch(name, &params, &Patch::Strategic(&body)).await
            }
            Ok(Some(_)) => api.patch(name, &params, &Patch::Merge(&body)).await,
            Err(e) => Err(e),
        }
    };
    result
        .map(|_| ())
        .map_err(|e| api_error("apply", target(kind, ns, name), &e))
}

/// Creates `obj` as `kubectl create` and the create of `kubectl apply` do, with
/// `fieldValidation=Strict` (kube's `PostParams` cannot say it).
async fn create_strict(
    client: &kube::Client,
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    let data = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(api.resource_url())
        .create(
            &kube::api::PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            },
            data,
        )
        .map_err(kube::Error::BuildRequest)?;
    let (mut parts, body) = request.into_parts();
    let uri = format!("{}&fieldValidation=Strict", parts.uri);
    parts.uri = uri.parse().map_err(|e: http::uri::InvalidUri| {
        kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e.into()))
    })?;
    client
        .request::<DynamicObject>(http::Request::from_parts(parts, body))
        .await
}

/// Resolves an object reference to a dynamic API.
///
/// # Errors
/// When the kind is unknown or not served.
pub async fn api_for_ref(
    client: &kube::Client,
    r: &ObjectRef,
) -> Result<Api<DynamicObject>, StepError> {
    let api_version = match &r.api_version {
        Some(v) => v.clone(),
        None => builtin_api_version(&r.kind)
            .ok_or_else(|| StepError::UnknownKind(r.kind.clone()))?
            .to_owned(),
    };
    let (ar, caps) = resolve(client, &api_version, &r.kind).await?;
    Ok(api_for(client, &ar, &caps, r.namespace.as_deref()))
}

/// Deletes an object with background propagation, as `kubectl delete` does.
///
/// # Errors
/// When the kind is not served or the server refuses (including NotFound).
pub async fn delete(client: &kube::Client, r: &ObjectRef) -> Result<(), StepError> {
    let api = api_for_ref(client, r).await?;
    api.delete(&r.name, &DeleteParams::background())
        .await
        .map(|_| ())
        .map_err(|e| {
            api_error(
                "delete",
                target(&r.kind, r.namespace.as_deref(), &r.name),
                &e,
            )
        })
}

/// Whether an object exists.
///
/// # Errors
/// When the kind is unknown or not served ([`StepError::NoKindMatch`], never "absent") or the
/// server fails.
pub async fn exists(client: &kube::Client, r: &ObjectRef) -> Result<bool, StepError> {
    uid_of(client, r).await.map(|uid| uid.is_some())
}

/// The UID of the object named by `r`, `None` when there is none: what tells an object from
/// a new one of the same name (a pod its StatefulSet re-created).
///
/// # Errors
/// When the kind is unknown or not served ([`StepError::NoKindMatch`]) or the server fails.
pub async fn uid_of(client: &kube::Client, r: &ObjectRef) -> Result<Option<String>, StepError> {
    let api = api_for_ref(client, r).await?;
    api.get_opt(&r.name)
        .await
        // An object always has a UID once stored; an empty one still counts as present.
        .map(|o| o.map(|o| o.metadata.uid.unwrap_or_default()))
        .map_err(|e| api_error("get", target(&r.kind, r.namespace.as_deref(), &r.name), &e))
}

/// The object named by `r` as JSON, `None` when there is none.
///
/// # Errors
/// When the kind is unknown or not served ([`StepError::NoKindMatch`]) or the server fails.
pub async fn get_object(client: &kube::Client, r: &ObjectRef) -> Result<Option<Value>, StepError> {
    let api = api_for_ref(client, r).await?;
    let object = api
        .get_opt(&r.name)
        .await
        .map_err(|e| api_error("get", target(&r.kind, r.namespace.as_deref(), &r.name), &e))?;
    Ok(object.and_then(|o| serde_json::to_value(o).ok()))
}

/// Patches an object with the step's patch type.
///
/// # Errors
/// When the kind is not served, the patch is malformed or the server refuses it.
pub async fn patch(client: &kube::Client, step: &PatchStep) -> Result<(), StepError> {
    let r = &step.object;
    let api = api_for_ref(client, r).await?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let result = match step.kind {
        PatchType::Strategic => {
            api.patch(&r.name, &params, &Patch::Strategic(&step.patch))
                .await
        }
        PatchType::Merge => {
            api.patch(&r.name, &params, &Patch::Merge(&step.patch))
                .await
        }
        PatchType::Json => {
            let ops: json_patch::Patch =
                serde_json::from_value(step.patch.clone()).map_err(StepError::JsonPatch)?;
            api.patch(&r.name, &params, &Patch::<Value>::Json(ops))
                .await
        }
    };
    result.map(|_| ()).map_err(|e| {
        api_error(
            "patch",
            target(&r.kind, r.namespace.as_deref(), &r.name),
            &e,
        )
    })
}

/// Sets replicas through the `scale` subresource.
///
/// # Errors
/// When the kind is not served or has no scale subresource.
pub async fn scale(client: &kube::Client, step: &ScaleStep) -> Result<(), StepError> {
    let r = &step.object;
    let api = api_for_ref(client, r).await?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_scale(
        &r.name,
        &params,
        &Patch::Merge(json!({"spec": {"replicas": step.replicas}})),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        api_error(
            "scale",
            target(&r.kind, r.namespace.as_deref(), &r.name),
            &e,
        )
    })
}

/// `kubectl rollout restart`: stamps `kubectl.kubernetes.io/restartedAt` on the pod template.
///
/// # Errors
/// When the kind is not served or the server refuses the patch.
pub async fn rollout_restart(
    client: &kube::Client,
    r: &ObjectRef,
    timestamp: &str,
) -> Result<(), StepError> {
    let api = api_for_ref(client, r).await?;
    let body = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": timestamp}}}}});
    let params = PatchParams {
        field_manager: Some("kubectl-rollout".to_owned()),
        ..PatchParams::default()
    };
    api.patch(&r.name, &params, &Patch::Strategic(&body))
        .await
        .map(|_| ())
        .map_err(|e| {
            api_error(
                "rollout restart",
                target(&r.kind, r.namespace.as_deref(), &r.name),
                &e,
            )
        })
}

/// The field manager of Secrets the runner writes for Postgres roles: distinct from
/// [`FIELD_MANAGER`], so a scenario applying the same Secret keeps the password key.
pub const PASSWORD_FIELD_MANAGER: &str = "relapse-postgres";

/// Writes a generated Postgres password into a Secret key (server-side apply), creating the
/// namespace first if it does not exist.
///
/// # Errors
/// When the cluster refuses the namespace or the Secret.
pub async fn write_password_secret(
    client: &kube::Client,
    target: &crate::scenario::SecretRef,
    password: &crate::postgres::Secret,
) -> Result<(), StepError> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let params = PatchParams::apply(PASSWORD_FIELD_MANAGER);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(target.namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let what = |kind: &str, name: &str| format!("{kind} {name}");
    namespaces
        .patch(&target.namespace, &params, &Patch::Apply(&namespace))
        .await
        .map_err(|e| api_error("apply", what("Namespace", &target.namespace), &e))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(target.namespace.clone()),
            ..Default::default()
        },
        data: Some(
            [(
                target.key.clone(),
                ByteString(password.expose().as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    secrets
        .patch(&target.name, &params, &Patch::Apply(&secret))
        .await
        .map_err(|e| {
            api_error(
                "apply",
                what("Secret", &format!("{}/{}", target.namespace, target.name)),
                &e,
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kind_match_reads_like_kubectl() {
        let e = StepError::NoKindMatch {
            kind: "Prometheus".into(),
            api_version: "monitoring.coreos.com/v1".into(),
        };
        // The text kubectl prints (apimachinery meta.NoKindMatchError).
        assert_eq!(
            e.to_string(),
            "no matches for kind \"Prometheus\" in version \"monitoring.coreos.com/v1\""
        );
    }

    #[test]
    fn apply_objects_reads_files_and_inline() {
        let mut manifests = BTreeMap::new();
        manifests.insert(
            PathBuf::from("a.yaml"),
            vec![json!({"kind": "A"}), json!({"kind": "B"})],
        );
        let step = ApplyStep {
            file: Some("a.yaml".into()),
            inline: None,
            namespace: None,
            server_side: true,
            expect_error: None,
        };
        assert_eq!(apply_objects(&step, &manifests).unwrap().len(), 2);
        let step = ApplyStep {
            file: None,
            inline: Some(json!({"kind": "C"})),
            namespace: None,
            server_side: true,
            expect_error: None,
        };
        assert_eq!(
            apply_objects(&step, &manifests).unwrap(),
            vec![json!({"kind": "C"})]
        );
        let step = ApplyStep {
            file: Some("missing.yaml".into()),
            inline: None,
            namespace: None,
            server_side: true,
            expect_error: None,
        };
        assert!(matches!(
            apply_objects(&step, &manifests),
            Err(StepError::MissingManifest(_))
        ));
    }

    #[test]
    fn builtin_kinds_resolve() {
        assert_eq!(builtin_api_version("Deployment"), Some("apps/v1"));
        assert_eq!(builtin_api_version("Prometheus"), None);
    }
}
