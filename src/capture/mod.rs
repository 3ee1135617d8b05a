//! `relapse capture`: a live incident (or the files `kubectl` wrote of it) turned into a
//! scenario.
//!
//! [`source`] reads the cluster: its API through the kube client the kubeconfig backend uses,
//! or `kubectl get -o yaml` dumps and log files. [`select`] keeps the workloads (generated
//! objects resolved to their owners) and what they reference; [`strip`] makes each a manifest
//! ready to apply, Secret values replaced by placeholders; [`symptoms`], [`images`] and
//! [`cluster`] write down what is wrong now, what the images did and the cluster's shape; and
//! [`write`] renders the scenario and its manifests. Secret values read from the cluster are
//! redacted from every text a capture produces, and none is logged.

pub mod cluster;
pub mod images;
pub mod select;
pub mod source;
pub mod strip;
pub mod symptoms;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use jiff::Timestamp;
use regex::Regex;
use serde_json::{Value, json};

pub use select::Selector;
pub use source::Recorded;

use crate::run::redact::Redactor;
use crate::scenario::{Duration, Expectation, ObjectExpectation, Quantifier};
use select::{Selection, Workload};

/// Errors of a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The kubeconfig could not be read or used.
    #[error(transparent)]
    Kubeconfig(#[from] crate::backend::kubeconfig::KubeconfigError),
    /// The default kubeconfig could not be read or used.
    #[error("failed to read the kubeconfig (KUBECONFIG or ~/.kube/config); pass --kubeconfig")]
    DefaultKubeconfig(#[source] kube::config::KubeconfigError),
    /// A kube client could not be made from the kubeconfig.
    #[error("failed to create a client for the cluster")]
    Client(#[source] kube::Error),
    /// Listing objects failed.
    #[error("failed to list {kind}{}", .namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default())]
    List {
        /// The kind.
        kind: String,
        /// The namespace, for namespaced kinds.
        namespace: Option<String>,
        /// What the server or client said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A namespace asked for does not exist.
    #[error("namespace {0} does not exist")]
    NoNamespace(String),
    /// An object could not be decoded.
    #[error("failed to decode an object the server sent")]
    Decode(#[source] serde_json::Error),
    /// A file could not be read.
    #[error("failed to read {}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A dump could not be parsed.
    #[error("failed to parse {}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        #[source]
        source: crate::yaml::YamlError,
    },
    /// A file could not be written.
    #[error("failed to write {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The scenario file exists already.
    #[error("{} exists: choose another --name or remove it", .0.display())]
    Exists(PathBuf),
    /// YAML could not be rendered.
    #[error("failed to render YAML")]
    Render(#[source] crate::yaml::YamlError),
    /// The label selector is not an equality-based one.
    #[error(
        "invalid selector `{0}`: expected terms such as `app=web`, `tier!=db`, `canary` or `!legacy`, joined by commas"
    )]
    Selector(String),
    /// The name or area is not usable as a file name.
    #[error("invalid {what} `{value}`: expected lowercase letters, digits and `-`")]
    Name {
        /// `--name` or `--area`.
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// Nothing matched.
    #[error("no workload found to capture (in the namespaces, with the selector)")]
    NothingSelected,
}

/// What to capture and how to name it.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The scenario's name (its file name).
    pub name: String,
    /// The area directory it goes into.
    pub area: String,
    /// The namespaces to capture (empty: every namespace of a `--from` directory).
    pub namespaces: Vec<String>,
    /// Only workloads (or their pods) these labels select.
    pub selector: Option<Selector>,
    /// Only events recorded this long before the newest one.
    pub since: Option<Duration>,
    /// How many log lines of each container to read.
    pub log_lines: usize,
}

/// A rendered capture: files relative to the output directory, and what it found.
#[derive(Debug, Clone)]
pub struct Capture {
    /// `AREA/NAME.yaml` first, then `AREA/manifests/NAME/*.yaml`; all texts redacted.
    pub files: Vec<(PathBuf, String)>,
    /// One line per captured workload, symptom and image, for the terminal.
    pub summary: Vec<String>,
}

/// A leading timestamp or klog header of a log line.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "a constant pattern")]
    Regex::new(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?\s+|[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\S+\]\s+)").unwrap()
});

/// Where a text stops being stable: a UID, an IP address, or a name a controller generated
/// (`<name>-<hash>-<suffix>`) of an object that is not among those observed.
static GENERATED: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "a constant pattern")]
    Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}\b").unwrap()
});

/// A timestamp field.
fn time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// What the parts of a capture share: the observation, the selection and the rules for
/// turning cluster texts into symptom texts.
pub struct Facts<'a> {
    observed: &'a Recorded,
    selection: &'a Selection,
    redactor: Redactor,
    /// `(generated name, its stable prefix)`, longest first.
    generated: Vec<(String, String)>,
    /// When the break happened: the newest change to a captured workload.
    start: Option<Timestamp>,
    /// Events recorded before this are left out.
    since: Option<Timestamp>,
}

impl<'a> Facts<'a> {
    fn new(observed: &'a Recorded, selection: &'a Selection, since: Option<Duration>) -> Self {
        let mut redactor = Redactor::new();
        for o in &observed.objects {
            redactor.add_secret_object(o);
        }
        let mut generated = Vec::new();
        let mut cronjob_jobs = Vec::new();
        for o in &observed.objects {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let hash = o["metadata"]["labels"]["pod-template-hash"].as_str();
            let stable = match (o["kind"].as_str(), hash) {
                (Some("ReplicaSet"), Some(h)) => name.strip_suffix(h).map(str::to_owned),
                (Some("Job"), _) => o["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["kind"] == "CronJob")
                    .and_then(|r| r["name"].as_str())
                    .map(|cj| {
                        cronjob_jobs.push((format!("{name}-"), format!("{cj}-")));
                        format!("{cj}-")
                    }),
                (Some("Pod"), _) => o["metadata"]["generateName"].as_str().map(|g| match hash {
                    Some(h) => g.strip_suffix(&format!("{h}-")).unwrap_or(g).to_owned(),
                    None => g.to_owned(),
                }),
                _ => None,
            };
            if let Some(stable) = stable.filter(|s| s.as_str() != name) {
                generated.push((name.to_owned(), stable));
            }
        }
        for (job_prefix, stable) in cronjob_jobs {
            for (_, s) in generated.iter_mut() {
                if *s == job_prefix {
                    s.clone_from(&stable);
                }
            }
        }
        generated.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        let start = selection
            .workloads
            .iter()
            .flat_map(|w| {
                let own = time(&w.object["metadata"]["creationTimestamp"]);
                let revisions = observed.objects.iter().filter(move |o| {
                    o["kind"] == "ReplicaSet"
                        && o["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["uid"] == w.object["metadata"]["uid"])
                });
                own.into_iter()
                    .chain(revisions.filter_map(|r| time(&r["metadata"]["creationTimestamp"])))
            })
            .max();
        let newest_event = observed
            .objects
            .iter()
            .filter(|o| o["kind"] == "Event")
            .filter_map(event_time)
            .max();
        let since = since.and_then(|d| {
            let span = jiff::SignedDuration::try_from(d.as_std()).ok()?;
            newest_event?.checked_sub(span).ok()
        });
        Self {
            observed,
            selection,
            redactor,
            generated,
            start,
            since,
        }
    }

    /// The text with every Secret value the capture read replaced.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    /// The text up to where a generated part starts, and whether it was cut; redacted.
    #[must_use]
    pub fn stable(&self, text: &str) -> (String, bool) {
        let text = self.redact(text);
        let mut cut = GENERATED.find(&text).map(|m| {
            // A generated name suffix keeps its leading `-`, as `grafana-` does.
            if m.as_str().starts_with('-') {
                m.start() + 1
            } else {
                m.start()
            }
        });
        for (name, stable) in &self.generated {
            if let Some(at) = text.find(name.as_str()) {
                let end = at + stable.len();
                cut = Some(cut.map_or(end, |c| c.min(end)));
            }
        }
        match cut {
            Some(c) if c < text.len() => (text[..c].to_owned(), true),
            _ => (text, false),
        }
    }

    /// A matcher for a text: itself when stable, else `{$prefix: <stable part>}`.
    #[must_use]
    pub fn text_matcher(&self, text: &str) -> Value {
        match self.stable(text) {
            (t, false) => Value::String(t),
            (t, true) => json!({"$prefix": t}),
        }
    }

    /// The stable prefix of an object name (the whole name when nothing in it is generated).
    #[must_use]
    pub fn name_prefix(&self, name: &str) -> String {
        self.stable(name).0
    }

    /// The pods of the workload's current revision.
    pub fn current_pods<'w>(&self, w: &'w Workload) -> impl Iterator<Item = &'w Value> {
        let previous = w
            .previous_template
            .as_ref()
            .and_then(|t| t["metadata"]["labels"]["pod-template-hash"].as_str())
            .map(str::to_owned);
        w.pods.iter().filter(move |p| {
            previous.is_none()
                || p["metadata"]["labels"]["pod-template-hash"].as_str() != previous.as_deref()
        })
    }

    /// The architecture of the node a pod runs on.
    #[must_use]
    pub fn node_arch(&self, pod: &Value) -> Option<&str> {
        let node = pod["spec"]["nodeName"].as_str();
        self.observed
            .objects
            .iter()
            .filter(|o| o["kind"] == "Node")
            .find(|n| node.is_none() || n["metadata"]["name"].as_str() == node)
            .and_then(|n| n["metadata"]["labels"]["kubernetes.io/arch"].as_str())
    }

    /// A container's last log lines: its previous instance's when `previous` and there are
    /// any, else the current one's.
    #[must_use]
    pub fn log_tail(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Vec<String> {
        let of = |prev: bool| {
            self.observed.logs.iter().find(|l| {
                l.pod == pod
                    && l.container == container
                    && l.previous == prev
                    && l.namespace.as_deref().is_none_or(|n| n == namespace)
            })
        };
        let tail = if previous {
            of(true).or_else(|| of(false))
        } else {
            of(false)
        };
        tail.map(|t| t.lines.clone()).unwrap_or_default()
    }

    /// Warning events within `--since` about the captured workloads, their pods and what
    /// they reference (not about pods of a previous revision).
    pub fn warning_events(&self) -> impl Iterator<Item = &Value> {
        self.observed.objects.iter().filter(move |e| {
            if e["kind"] != "Event" || e["type"] != "Warning" {
                return false;
            }
            if let (Some(since), Some(t)) = (self.since, event_time(e))
                && t < since
            {
                return false;
            }
            let involved = &e["involvedObject"];
            let name = involved["name"].as_str().unwrap_or_default();
            let ns = involved["namespace"].as_str().unwrap_or_default();
            let of_previous = self.selection.workloads.iter().any(|w| {
                let Some(h) = w
                    .previous_template
                    .as_ref()
                    .and_then(|t| t["metadata"]["labels"]["pod-template-hash"].as_str())
                else {
                    return false;
                };
                w.pods.iter().any(|p| {
                    p["metadata"]["name"] == name
                        && p["metadata"]["labels"]["pod-template-hash"] == h
                })
            });
            let about_workload = self.selection.workloads.iter().any(|w| {
                w.namespace() == ns
                    && (name == w.name()
                        || name.starts_with(&format!("{}-", w.name()))
                        || w.pods.iter().any(|p| p["metadata"]["name"] == name))
            });
            let about_reference = self.selection.referenced.iter().any(|o| {
                o["kind"] == involved["kind"]
                    && o["metadata"]["name"] == name
                    && o["metadata"]["namespace"] == ns
            });
            !of_previous && (about_workload || about_reference)
        })
    }

    /// A symptom's deadline: half as long again as it took to show after the break (whole
    /// minutes, at least 2m, at most 1h), or 5m when the timestamps do not say.
    #[must_use]
    pub fn within(&self, seen: Option<Timestamp>) -> Duration {
        let lag = match (seen, self.start) {
            (Some(t), Some(start)) if t >= start => {
                t.duration_since(start).as_secs().unsigned_abs()
            }
            _ => return Duration::from_secs(300),
        };
        let minutes = (lag * 3 / 2).div_ceil(60).clamp(2, 60);
        Duration::from_secs(minutes * 60)
    }
}

fn event_time(e: &Value) -> Option<Timestamp> {
    time(&e["lastTimestamp"])
        .or_else(|| time(&e["eventTime"]))
        .or_else(|| time(&e["firstTimestamp"]))
        .or_else(|| time(&e["metadata"]["creationTimestamp"]))
}

/// Healthy expectations for each captured workload: all its replicas ready and available, a
/// Job complete, a custom resource Ready.
#[must_use]
pub fn converge(selection: &Selection) -> Vec<Expectation> {
    let mut out = Vec::new();
    for w in &selection.workloads {
        let replicas = w.object["spec"]["replicas"].as_u64().unwrap_or(1);
        let matches = match w.kind() {
            "Deployment" if replicas > 0 => json!({"status": {
                "updatedReplicas": replicas, "readyReplicas": replicas,
                "conditions": [{"type": "Available", "status": "True"}]}}),
            "StatefulSet" | "ReplicaSet" if replicas > 0 => {
                json!({"status": {"readyReplicas": replicas}})
            }
            "DaemonSet" => {
                json!({"status": {"numberUnavailable": {"$not": {"$gt": 0}}, "numberReady": {"$gt": 0}}})
            }
            "Job" => json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
            "CronJob" => json!({"status": {"lastSuccessfulTime": {"$absent": false}}}),
            "Pod" => {
                json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
            }
            _ if w.object["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready")) =>
            {
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
            }
            _ => Value::Null,
        };
        if !matches.is_null() {
            out.push(Expectation::Object(ObjectExpectation {
                api_version: crate::scenario::kinds::builtin_api_version(w.kind())
                    .is_none()
                    .then(|| {
                        w.object["apiVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    }),
                kind: w.kind().to_owned(),
                name: Some(w.name().to_owned()),
                namespace: Some(w.namespace().to_owned()),
                labels: std::collections::BTreeMap::new(),
                count: None,
                require: Quantifier::All,
                matches,
                within: None,
                for_: None,
            }));
        }
        // Pods an operator made for a custom resource: every one of them running and ready.
        let made_by_operator = !matches!(
            w.kind(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob" | "Pod"
        );
        if made_by_operator && !w.pods.is_empty() && !w.pod_labels.is_empty() {
            out.push(Expectation::Object(ObjectExpectation {
                api_version: None,
                kind: "Pod".to_owned(),
                name: None,
                namespace: Some(w.namespace().to_owned()),
                labels: w.pod_labels.clone(),
                count: None,
                require: Quantifier::All,
                matches: json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
                within: None,
                for_: None,
            }));
        }
    }
    out
}

fn check_name(what: &'static str, value: &str) -> Result<(), CaptureError> {
    if crate::scenario::is_dns_label(value) {
        Ok(())
    } else {
        Err(CaptureError::Name {
            what,
            value: value.to_owned(),
        })
    }
}

/// Turns what was observed into a scenario and its manifests.
///
/// # Errors
/// When the name or area is unusable, nothing is selected, or YAML cannot be rendered.
pub fn capture(mut observed: Recorded, options: &CaptureOptions) -> Result<Capture, CaptureError> {
    check_name("--name", &options.name)?;
    check_name("--area", &options.area)?;
    observed.restrict(&options.namespaces);
    let selection = select::select(&observed, options.selector.as_ref())?;
    let facts = Facts::new(&observed, &selection, options.since);
    let symptoms = symptoms::symptoms(&facts);
    let (images, mut notes) = images::images(&facts);
    let (shape, shape_notes) = cluster::shape(&observed.objects);
    notes.extend(shape_notes);
    let converge = converge(&selection);
    let mut summary: Vec<String> = selection
        .workloads
        .iter()
        .map(|w| format!("captured {} {}/{}", w.kind(), w.namespace(), w.name()))
        .collect();
    summary.extend(symptoms.iter().map(|s| {
        format!(
            "symptom: {}",
            facts.redact(&crate::run::observe::describe(s))
        )
    }));
    summary.extend(images.keys().map(|i| format!("image behaviour: {i}")));
    let files = write::render(&write::Parts {
        facts: &facts,
        options,
        symptoms: &symptoms,
        images: &images,
        shape: &shape,
        converge: &converge,
        notes: &notes,
    })?;
    Ok(Capture { files, summary })
}

/// Writes a capture under `out` (`out/AREA/NAME.yaml`, `out/AREA/manifests/NAME/`), refusing
/// to replace an existing scenario. Returns the files written.
///
/// # Errors
/// [`CaptureError::Exists`] when the scenario file exists, [`CaptureError::Write`] when a file
/// cannot be written.
pub fn write_files(capture: &Capture, out: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    if let Some((first, _)) = capture.files.first() {
        let path = out.join(first);
        if path.exists() {
            return Err(CaptureError::Exists(path));
        }
    }
    let mut written = Vec::new();
    for (rel, text) in &capture.files {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CaptureError::Write {
                path: dir.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| CaptureError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Captures from a live cluster through a kube client.
///
/// # Errors
/// See [`source::live`] and [`capture`].
pub async fn from_client(
    client: &kube::Client,
    origin: String,
    options: &CaptureOptions,
) -> Result<Capture, CaptureError> {
    let observed = source::live(client, &options.namespaces, options.log_lines, origin).await?;
    capture(observed, options)
}

/// Captures from a kubeconfig (default: KUBECONFIG, then ~/.kube/config) and its `context`
/// (default: the current one), connecting as the kubeconfig backend does.
///
/// # Errors
/// When the kubeconfig cannot be used, and see [`from_client`].
pub async fn from_kubeconfig(
    path: Option<&Path>,
    context: Option<&str>,
    options: &CaptureOptions,
) -> Result<Capture, CaptureError> {
    let config = match path {
        Some(path) => {
            crate::backend::kubeconfig::KubeconfigBackend::client_config(path, context).await?
        }
        None => {
            let options = kube::config::KubeConfigOptions {
                context: context.map(str::to_owned),
                ..kube::config::KubeConfigOptions::default()
            };
            kube::Config::from_kubeconfig(&options)
                .await
                .map_err(CaptureError::DefaultKubeconfig)?
        }
    };
    let client = kube::Client::try_from(config).map_err(CaptureError::Client)?;
    let file = path.map_or_else(
        || "the default kubeconfig".to_owned(),
        |p| p.display().to_string(),
    );
    let origin = match context {
        Some(c) => format!("context {c} of {file}"),
        None => format!("the current context of {file}"),
    };
    from_client(&client, origin, options).await
}

/// Captures from a directory of `kubectl` dumps and log files.
///
/// # Errors
/// See [`source::files`] and [`capture`].
pub fn from_dir(dir: &Path, options: &CaptureOptions) -> Result<Capture, CaptureError> {
    capture(source::files(dir, options.log_lines)?, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_uids_and_addresses_are_cut_at_their_stable_prefix() {
        let selection = Selection::default();
        let recorded = Recorded {
            objects: vec![
                json!({"kind": "ReplicaSet", "metadata": {"name": "web-5d8f7c9b6", "namespace": "shop",
                    "labels": {"pod-template-hash": "5d8f7c9b6"}}}),
                json!({"kind": "Pod", "metadata": {"name": "web-5d8f7c9b6-x2x9z", "namespace": "shop",
                    "generateName": "web-5d8f7c9b6-", "labels": {"pod-template-hash": "5d8f7c9b6"}}}),
            ],
            ..Recorded::default()
        };
        let facts = Facts::new(&recorded, &selection, None);
        assert_eq!(
            facts.stable(
                "Back-off restarting failed container web in pod web-5d8f7c9b6-x2x9z_shop(0b7a)"
            ),
            (
                "Back-off restarting failed container web in pod web-".to_owned(),
                true
            )
        );
        assert_eq!(facts.name_prefix("web-5d8f7c9b6"), "web-");
        assert_eq!(
            facts.stable("Multi-Attach error for volume \"pvc-0b7a63f2-1c2d-4e5f-8a9b-0c1d2e3f4a5b\" Volume is already used"),
            ("Multi-Attach error for volume \"pvc-".to_owned(), true)
        );
        assert_eq!(
            facts.text_matcher("dial tcp 10.43.0.12:5432: connect: connection refused"),
            json!({"$prefix": "dial tcp "})
        );
        assert_eq!(
            facts.text_matcher("secret \"creds\" not found"),
            json!("secret \"creds\" not found")
        );
        // A pod of another workload that is gone: its generated suffix is cut all the same.
        assert_eq!(facts.name_prefix("api-7c9f6d8b4-qwxzt"), "api-");
    }

    #[test]
    fn deadlines_are_half_again_the_time_a_symptom_took() {
        let recorded = Recorded::default();
        let mut selection = Selection::default();
        selection.workloads.push(Workload {
            object: json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop",
                "creationTimestamp": "2025-01-01T00:00:00Z"}}),
            pods: Vec::new(),
            pod_labels: std::collections::BTreeMap::new(),
            previous_template: None,
        });
        let facts = Facts::new(&recorded, &selection, None);
        let at = |t: &str| time(&json!(t));
        assert_eq!(facts.within(at("2025-01-01T00:00:05Z")).to_string(), "2m");
        assert_eq!(facts.within(at("2025-01-01T00:10:30Z")).to_string(), "16m");
        assert_eq!(facts.within(None).to_string(), "5m");
    }
}
