//! Watches: newline-delimited JSON events over a chunked response, with bookmarks, timeouts and
//! the in-stream 410 Expired error for a resourceVersion older than the history window, or for
//! a watcher so slow that the changes it has not sent yet left the history.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::Body;
use super::objects::Ctx;
use super::table::{IncludeObject, table};
use crate::sim::resources::ResourceDef;
use crate::sim::store::{
    ApiError, FieldSelector, LabelSelector, Store, WatchEvent, WatchEventType,
};

/// Watches end after this long unless `timeoutSeconds` says otherwise (the real server picks
/// a random time between 30 and 60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark carries the current resourceVersion when bookmarks are allowed.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }
}

struct Encoder {
    res: ResourceDef,
    table: bool,
    include: IncludeObject,
    store: Arc<Store>,
}

impl Encoder {
    fn object(&self, obj: &Value) -> Value {
        let mut obj = obj.clone();
        obj["apiVersion"] = json!(self.res.api_version());
        obj["kind"] = json!(self.res.kind);
        if self.table {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return table(
                &self.res,
                &[obj],
                self.include,
                self.store.clock().now(),
                &rv,
                None,
            );
        }
        obj
    }

    fn line(&self, ty: &str, object: &Value) -> Bytes {
        let mut text = json!({"type": ty, "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    }

    fn event(&self, ty: WatchEventType, obj: &Value) -> Bytes {
        self.line(ty.as_str(), &self.object(obj))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata});
        self.line("BOOKMARK", &object)
    }

    fn error(&self, err: &ApiError) -> Bytes {
        self.line("ERROR", &err.to_status())
    }
}

/// Translates a store event for a filtered watcher: an object that stops matching is DELETED
/// for it, one that starts matching is ADDED (as the watch cache does).
fn translate(ev: &WatchEvent, filter: &Filter) -> Option<(WatchEventType, Arc<Value>)> {
    let now = filter.matches(&ev.object);
    match (ev.kind, ev.previous.as_ref().map(|p| filter.matches(p))) {
        (WatchEventType::Modified, Some(true)) if !now => {
            Some((WatchEventType::Deleted, ev.object.clone()))
        }
        (WatchEventType::Modified, Some(false)) if now => {
            Some((WatchEventType::Added, ev.object.clone()))
        }
        _ if now => Some((ev.kind, ev.object.clone())),
        _ => None,
    }
}

impl Ctx<'_> {
    pub fn watch(&self) -> Response<Body> {
        let opts = match self.list_options_for_watch() {
            Ok(o) => o,
            Err(e) => return super::status::error(&e),
        };
        let q = &self.req.query;
        let rv_param = q.non_empty("resourceVersion");
        let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
        let since = match (rv_param, send_initial) {
            (_, Some(true)) | (None | Some("0"), _) => None,
            (Some(rv), _) => match super::query::resource_version(rv) {
                Ok(n) => Some(n),
                Err(e) => return super::status::error(&e),
            },
        };
        let bookmarks = q.flag("allowWatchBookmarks");
        let timeout = match q.int64("timeoutSeconds") {
            // k8s.io/apiserver/pkg/endpoints/handlers/get.go (ListResource): zero or absent
            // takes the default; a negative timeout has already passed.
            Ok(None | Some(0)) => DEFAULT_TIMEOUT,
            Ok(Some(s)) => u64::try_from(s).map_or(Duration::ZERO, Duration::from_secs),
            Err(e) => return super::status::error(&e),
        };
        let store = self.server.store.clone();
        let encoder = Encoder {
            res: self.res.clone(),
            table: self.req.accept.split(',').any(|p| p.contains("as=Table")),
            include: IncludeObject::parse(q.get("includeObject")),
            store: store.clone(),
        };
        let (tx, body) = Body::channel();
        let subscription = store.watch(self.res, since);
        tokio::spawn(async move {
            let mut sub = match subscription {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(encoder.error(&e)).await;
                    return;
                }
            };
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            for ev in &sub.initial {
                if let Some((ty, obj)) = translate(ev, &opts)
                    && tx.send(encoder.event(ty, &obj)).await.is_err()
                {
                    return;
                }
            }
            if send_initial == Some(true)
                && bookmarks
                && tx
                    .send(encoder.bookmark(sub.resource_version, true))
                    .await
                    .is_err()
            {
                return;
            }
            // Only events newer than the requested resourceVersion are sent, even when it lies
            // ahead of the store (staging/src/k8s.io/apiserver/pkg/storage/cacher/cache_watcher.go).
            let floor = since.map_or(sub.resource_version, |s| s.max(sub.resource_version));
            let mut last_rv = sub.resource_version;
            // Everything up to here has been sent (or did not match).
            let mut seen = sub.resource_version;
            let mut tick = tokio::time::interval(BOOKMARK_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = &mut deadline => return,
                    () = tx.closed() => return,
                    _ = tick.tick(), if bookmarks => {
                        if tx.send(encoder.bookmark(last_rv.max(store.resource_version()), false)).await.is_err() {
                            return;
                        }
                    }
                    changed = sub.changed.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // A watcher too slow to keep up (its client does not read) finds the
                        // changes it has not sent gone from the history: it gets the 410 that
                        // a client resuming from its last resourceVersion would get, and ends
                        // (the watch cache likewise ends watchers whose buffer is full,
                        // `cacheWatcher.add`, staging/src/k8s.io/apiserver/pkg/storage/cacher/cache_watcher.go).
                        let events = match store.changes_since(seen, Some(&encoder.res)) {
                            Ok((events, upto)) => {
                                seen = upto;
                                events
                            }
                            Err(e) => {
                                let _ = tx.send(encoder.error(&e)).await;
                                return;
                            }
                        };
                        for ev in events {
                            if ev.rv <= floor {
                                continue;
                            }
                            last_rv = ev.rv;
                            if let Some((ty, obj)) = translate(&ev, &opts)
                                && tx.send(encoder.event(ty, &obj)).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }

    fn list_options_for_watch(&self) -> Result<Filter, ApiError> {
        let q = &self.req.query;
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
        let fields = match self.name {
            Some(name) => FieldSelector::parse(&format!("metadata.name={name}"), &[])?,
            None => FieldSelector::parse(
                q.get("fieldSelector").unwrap_or_default(),
                &self.res.selectable_fields,
            )?,
        };
        Ok(Filter {
            namespace: self.ns.map(ToString::to_string),
            labels,
            fields,
        })
    }
}
