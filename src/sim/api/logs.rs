//! `GET pods/<name>/log`: container logs from the store's log buffers, with `container`,
//! `tailLines`, `limitBytes`, `previous`, `timestamps` and `follow`.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::Value;

use super::body::Body;
use super::objects::Ctx;
use super::status;
use crate::sim::store::{ApiError, ContainerKey, LogLine};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(ToString::to_string))
        .collect()
}

fn render(lines: &[LogLine], timestamps: bool) -> String {
    let mut out = String::new();
    for l in lines {
        if timestamps {
            out.push_str(&l.time);
            out.push(' ');
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    out
}

/// The state of a container in the pod status: `Some(reason)` while it waits to start.
fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .flat_map(|k| pod["status"][*k].as_array().into_iter().flatten())
    .find(|cs| cs["name"] == container)
    .and_then(|cs| {
        cs["state"]["waiting"]["reason"]
            .as_str()
            .map(ToString::to_string)
    })
}

fn terminated(pod: &Value, container: &str) -> bool {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][*k].as_array().into_iter().flatten())
        .any(|cs| cs["name"] == container && cs["state"]["terminated"].is_object())
}

impl Ctx<'_> {
    pub async fn logs(&self) -> Response<Body> {
        // The options are decoded before the pod is read (k8s.io/apiserver/pkg/endpoints/
        // handlers/get.go, GetResourceWithOptions).
        let q = &self.req.query;
        let numbers = (
            q.int64("tailLines"),
            q.int64("limitBytes"),
            q.int64("sinceSeconds"),
        );
        let (tail_lines, limit_bytes, since_seconds) = match numbers {
            (Ok(t), Ok(l), Ok(s)) => (t, l, s),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return status::error(&e),
        };
        let store = self.server.store.clone();
        let pod_name = self.name.unwrap_or_default().to_string();
        let ns = self.ns.unwrap_or_default().to_string();
        let pod = match store.get(self.res, Some(&ns), &pod_name) {
            Ok(p) => p,
            Err(e) => return status::error(&e),
        };
        let containers = names(&pod["spec"]["containers"]);
        let init = names(&pod["spec"]["initContainers"]);
        let container = match q.non_empty("container") {
            Some(c) => c.to_string(),
            None if containers.len() == 1 => containers[0].clone(),
            None => {
                // pkg/registry/core/pod/strategy.go (LogLocation): one list, in the order
                // podutil.VisitContainers walks them (init containers first).
                let all: Vec<&str> = init
                    .iter()
                    .chain(containers.iter())
                    .map(String::as_str)
                    .collect();
                let msg = format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    all.join(" ")
                );
                return status::error(&ApiError::bad_request(msg));
            }
        };
        if !containers.contains(&container) && !init.contains(&container) {
            return status::error(&ApiError::bad_request(format!(
                "container {container} is not valid for pod {pod_name}"
            )));
        }
        let previous = q.flag("previous");
        let key = ContainerKey::new(ns.clone(), pod_name.clone(), container.clone());
        let Some((mut lines, instance)) = store.logs().read(&key, previous) else {
            // pkg/kubelet/kubelet_pods.go (validateContainerLogStatus; the image-pull texts are
            // its ErrImagePull/ImagePullBackOff cases)
            let msg = if previous {
                format!("previous terminated container {container:?} in pod {pod_name:?} not found")
            } else if let Some(reason) = waiting_reason(&pod, &container) {
                // Image-pull waits are told in words, every other reason as it is.
                let reason = match reason.as_str() {
                    "ErrImagePull" => "image can't be pulled".to_owned(),
                    "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
                    _ => reason,
                };
                format!("container {container:?} in pod {pod_name:?} is waiting to start: {reason}")
            } else {
                return status::respond(StatusCode::OK, "text/plain", Vec::new());
            };
            return status::error(&ApiError::bad_request(msg));
        };
        let consumed = lines.len();
        if let Some(tail) = tail_lines.and_then(|t| usize::try_from(t).ok()) {
            let skip = lines.len().saturating_sub(tail);
            lines.drain(..skip);
        }
        // The kubelet seeks to the tail first, then skips lines older than `sinceSeconds`
        // (pkg/kubelet/kuberuntime/logs/logs.go `ReadLogs`).
        if let Some(since) = since_seconds.filter(|s| *s > 0) {
            let now = store.clock().now();
            let cutoff = now - jiff::SignedDuration::from_secs(since);
            lines.retain(|l| crate::sim::clock::parse_time(&l.time).is_none_or(|at| at >= cutoff));
        }
        let timestamps = q.flag("timestamps");
        let mut text = render(&lines, timestamps);
        if let Some(limit) = limit_bytes.and_then(|l| usize::try_from(l).ok()) {
            let mut cut = limit.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        if !q.flag("follow") || previous {
            return status::respond(StatusCode::OK, "text/plain", text.into_bytes());
        }
        let (tx, body) = Body::channel();
        let res = self.res.clone();
        tokio::spawn(async move {
            if !text.is_empty() && tx.send(Bytes::from(text)).await.is_err() {
                return;
            }
            let mut offset = consumed;
            loop {
                let Some(new) = store.logs().read_from(&key, instance, offset) else {
                    return;
                };
                if !new.is_empty() {
                    offset += new.len();
                    if tx
                        .send(Bytes::from(render(&new, timestamps)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                match store.get(&res, Some(&key.namespace), &key.pod) {
                    Ok(pod) if !terminated(&pod, &key.container) => {}
                    _ => return,
                }
                tokio::select! {
                    () = store.logs().changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = tx.closed() => return,
                }
            }
        });
        let mut resp = Response::new(body);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        resp
    }
}
