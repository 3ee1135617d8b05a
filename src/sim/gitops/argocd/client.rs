//! The stand-in's Kubernetes client: requests to the simulated API server in process, answered
//! as they would be over HTTP (validation, defaulting, admission, field managers, watches).
//!
//! The controller runs inside the engine's synchronous round; the API server's handler needs
//! no I/O for a request whose body is already in memory, so each request is driven to
//! completion on the calling thread.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};

use crate::sim::api::{ApiConfig, ApiServer};
use crate::sim::resources::ResourceDef;
use crate::sim::store::Store;

/// The field manager of the controller's writes (gitops-engine `pkg/sync/sync_context.go`
/// `WithManager`; Argo CD passes `argocd-controller`, controller/sync.go `cdcommon.ArgoCDSSAManager`).
pub const FIELD_MANAGER: &str = "argocd-controller";

/// The annotation client-side apply keeps the applied configuration in
/// (k8s.io/api/core/v1 `LastAppliedConfigAnnotation`).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A request the API server refused (or that could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    /// The HTTP status code (0 when the request never reached the server).
    pub code: u16,
    /// The Status `reason` (`NotFound`, `Invalid`, ...), empty when there is none.
    pub reason: String,
    /// What client-go's error says: the Status `message`.
    pub message: String,
}

impl ClientError {
    fn local(message: String) -> Self {
        Self {
            code: 0,
            reason: String::new(),
            message,
        }
    }

    /// Whether the server answered 404.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }
}

/// How to apply an object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Server-side apply (the `ServerSideApply=true` sync option) rather than kubectl's
    /// client-side apply with its last-applied annotation.
    pub server_side: bool,
    /// Validate and default only, store nothing (`dryRun=All`).
    pub dry_run: bool,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The object as the server returned it.
    pub object: Value,
    /// Whether it was created.
    pub created: bool,
    /// Whether it changed (created, or its resourceVersion moved).
    pub changed: bool,
}

/// An in-process client of the simulated API server, acting as the cluster administrator.
#[derive(Debug, Clone)]
pub struct Client {
    api: ApiServer,
}

impl Client {
    /// A client of the API server over `store`.
    #[must_use]
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            api: ApiServer::new(store, ApiConfig::default()),
        }
    }

    /// The store behind the server (for reads that need no request).
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        self.api.store()
    }

    /// The served resource of a kind; `None` when the server does not know it (a CRD that is
    /// not installed).
    #[must_use]
    pub fn resource(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.api.store().resource_for_kind(api_version, kind)
    }

    /// One object; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// When the kind is not served or the server refuses the read.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClientError> {
        let path = self.path(api_version, kind, namespace, Some(name))?;
        match self.send(Method::GET, &path, None, None) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object of a kind, in a namespace or (with `None`) in all of them.
    ///
    /// # Errors
    /// When the kind is not served or the server refuses the list.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let path = self.path(api_version, kind, namespace, None)?;
        let list = self.send(Method::GET, &path, None, None)?;
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut item| {
                item["apiVersion"] = json!(api_version);
                item["kind"] = json!(kind);
                item
            })
            .collect())
    }

    /// Applies `obj` (its namespace already set for namespaced kinds), server-side or as
    /// kubectl's client-side apply does: created with the last-applied annotation when
    /// missing; otherwise patched with what changed since the last applied configuration
    /// (fields set to the new values, fields dropped from it removed).
    ///
    /// # Errors
    /// The server's refusal, or a kind it does not serve.
    pub fn apply(&self, obj: &Value, opts: ApplyOptions) -> Result<Applied, ClientError> {
        self.apply_validated(obj, opts, false)
    }

    /// [`Client::apply`], with `fieldValidation=Strict` when `validate` is set, as
    /// gitops-engine's kubectl apply asks unless validation is disabled
    /// (pkg/utils/kube/resource_ops.go, `newApplyOptions`: `FieldValidationStrict`); without
    /// it no directive is sent.
    ///
    /// # Errors
    /// The server's refusal (an undeclared field under `Strict`), or a kind it does not serve.
    pub fn apply_validated(
        &self,
        obj: &Value,
        opts: ApplyOptions,
        validate: bool,
    ) -> Result<Applied, ClientError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = obj["metadata"]["namespace"].as_str();
        let dry = match (opts.dry_run, validate) {
            (true, true) => "&dryRun=All&fieldValidation=Strict",
            (true, false) => "&dryRun=All",
            (false, true) => "&fieldValidation=Strict",
            (false, false) => "",
        };
        let current = self.get(api_version, kind, namespace, name)?;
        let before = current
            .as_ref()
            .and_then(|c| c["metadata"]["resourceVersion"].as_str().map(str::to_owned));
        let path = self.path(api_version, kind, namespace, Some(name))?;
        let object = if opts.server_side {
            let body = serde_json::to_vec(obj).unwrap_or_default();
            self.send(
                Method::PATCH,
                &format!("{path}?fieldManager={FIELD_MANAGER}&force=true{dry}"),
                Some("application/apply-patch+yaml"),
                Some(body),
            )?
        } else {
            let mut desired = obj.clone();
            let applied = serde_json::to_string(obj).unwrap_or_default();
            desired["metadata"]["annotations"][LAST_APPLIED] = json!(applied);
            match &current {
                None => {
                    let collection = self.path(api_version, kind, namespace, None)?;
                    self.send(
                        Method::POST,
                        &format!("{collection}?fieldManager={FIELD_MANAGER}{dry}"),
                        Some("application/json"),
                        Some(serde_json::to_vec(&desired).unwrap_or_default()),
                    )?
                }
                Some(live) => {
                    let last: Value = live["metadata"]["annotations"][LAST_APPLIED]
                        .as_str()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(Value::Null);
                    let patch = merge_patch(&last, &desired);
                    self.send(
                        Method::PATCH,
                        &format!("{path}?fieldManager={FIELD_MANAGER}{dry}"),
                        Some("application/merge-patch+json"),
                        Some(serde_json::to_vec(&patch).unwrap_or_default()),
                    )?
                }
            }
        };
        let after = object["metadata"]["resourceVersion"].as_str();
        Ok(Applied {
            created: current.is_none(),
            changed: current.is_none() || before.as_deref() != after,
            object,
        })
    }

    /// Merge-patches an object, or its status subresource with `status`.
    ///
    /// # Errors
    /// The server's refusal.
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        let mut path = self.path(api_version, kind, namespace, Some(name))?;
        if status {
            path.push_str("/status");
        }
        self.send(
            Method::PATCH,
            &format!("{path}?fieldManager={FIELD_MANAGER}"),
            Some("application/merge-patch+json"),
            Some(serde_json::to_vec(patch).unwrap_or_default()),
        )
    }

    /// Deletes an object (`propagation`: `Foreground`, `Background` or `Orphan`; the server's
    /// default when `None`). A missing object is not an error.
    ///
    /// # Errors
    /// The server's refusal.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        propagation: Option<&str>,
    ) -> Result<(), ClientError> {
        let path = self.path(api_version, kind, namespace, Some(name))?;
        let body = propagation.map(|p| {
            serde_json::to_vec(&json!({
                "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": p
            }))
            .unwrap_or_default()
        });
        match self.send(Method::DELETE, &path, Some("application/json"), body) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The request path of an object or (without a name) of its collection.
    fn path(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<String, ClientError> {
        let res = self.resource(api_version, kind).ok_or_else(|| {
            // k8s.io/apimachinery/pkg/api/meta/errors.go, NoKindMatchError.Error().
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            ClientError::local(format!(
                "no matches for kind \"{kind}\" in version \"{gv}\""
            ))
        })?;
        let root = if res.group.is_empty() {
            format!("/api/{}", res.version)
        } else {
            format!("/apis/{}/{}", res.group, res.version)
        };
        let mut path = match (res.namespaced, namespace) {
            (true, Some(ns)) => format!("{root}/namespaces/{ns}/{}", res.plural),
            _ => format!("{root}/{}", res.plural),
        };
        if let Some(name) = name {
            path.push('/');
            path.push_str(name);
        }
        Ok(path)
    }

    /// Sends one request and reads the JSON answer; a Status answer with a code of 400 or
    /// more is the error.
    fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "argocd-application-controller/v3.5.1");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::local(format!("invalid request {path}: {e}")))?;
        let resp = futures::executor::block_on(self.api.handle(req));
        let code = resp.status().as_u16();
        let bytes = futures::executor::block_on(resp.into_body().collect())
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if code >= 400 {
            return Err(ClientError {
                code,
                reason: value["reason"].as_str().unwrap_or_default().to_owned(),
                message: value["message"].as_str().map_or_else(
                    || String::from_utf8_lossy(&bytes).into_owned(),
                    str::to_owned,
                ),
            });
        }
        Ok(value)
    }
}

/// The JSON merge patch that takes an object from the configuration last applied to `desired`
/// (kubectl's three-way merge, reduced to the fields a configuration names): every field of
/// `desired` set, every field of `last` that `desired` no longer names set to `null`.
fn merge_patch(last: &Value, desired: &Value) -> Value {
    match (last, desired) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (k, v) in new {
                let p = match old.get(k) {
                    Some(o) if o.is_object() && v.is_object() => merge_patch(o, v),
                    _ => v.clone(),
                };
                patch.insert(k.clone(), p);
            }
            for k in old.keys() {
                if !new.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        (_, new) => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_dropped_from_the_configuration_is_removed() {
        let last = json!({"data": {"a": "1", "b": "2"}, "metadata": {"labels": {"x": "y"}}});
        let desired = json!({"data": {"a": "3"}, "metadata": {"name": "n"}});
        assert_eq!(
            merge_patch(&last, &desired),
            json!({"data": {"a": "3", "b": null}, "metadata": {"name": "n", "labels": null}})
        );
    }
}
