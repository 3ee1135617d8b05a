//! The scenario file and its manifests as text: the scenario's sections through the crate's
//! YAML writer, with the comments a person needs to finish it (the fix, the mutants).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{CaptureError, CaptureOptions, Facts, strip};
use crate::scenario::{
    ApplyStep, Break, ClusterShape, Converge, Duration, Expectation, ImageBehaviour, ManifestKind,
    ObjectExpectation, Quantifier, Step,
};

/// What [`render`] writes down.
pub struct Parts<'a> {
    /// The observation and selection.
    pub facts: &'a Facts<'a>,
    /// Name, area, namespaces.
    pub options: &'a CaptureOptions,
    /// The break symptoms.
    pub symptoms: &'a [Expectation],
    /// The image behaviours.
    pub images: &'a BTreeMap<String, ImageBehaviour>,
    /// The cluster's shape.
    pub shape: &'a ClusterShape,
    /// The converge expectations.
    pub converge: &'a [Expectation],
    /// What the person finishing the scenario should know.
    pub notes: &'a [String],
}

/// The scenario's sections up to the break, in the order scenarios are written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    name: &'a str,
    description: String,
    source: String,
    tags: Vec<String>,
    cluster: &'a ClusterShape,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    images: serde_json::Map<String, Value>,
    setup: Vec<Step>,
    #[serde(rename = "break")]
    break_: Break,
}

#[derive(Serialize)]
struct Tail {
    converge: Converge,
}

/// The behaviours without the fields that say what the default says.
fn images(
    behaviours: &BTreeMap<String, ImageBehaviour>,
) -> Result<serde_json::Map<String, Value>, CaptureError> {
    let defaults = serde_json::to_value(ImageBehaviour::default()).map_err(|e| {
        CaptureError::Render(crate::yaml::YamlError {
            message: e.to_string(),
            location: None,
        })
    })?;
    let mut out = serde_json::Map::new();
    for (image, b) in behaviours {
        let mut v = serde_json::to_value(b).map_err(|e| {
            CaptureError::Render(crate::yaml::YamlError {
                message: e.to_string(),
                location: None,
            })
        })?;
        if let (Value::Object(m), Value::Object(d)) = (&mut v, &defaults) {
            m.retain(|k, v| d.get(k) != Some(v));
        }
        out.insert(image.clone(), v);
    }
    Ok(out)
}

fn yaml<T: Serialize>(value: &T) -> Result<String, CaptureError> {
    crate::yaml::to_string(value).map_err(CaptureError::Render)
}

fn documents(objects: &[Value]) -> Result<String, CaptureError> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml(o)?);
    }
    Ok(out)
}

fn apply(file: String) -> Step {
    Step::Apply(ApplyStep {
        file: Some(file),
        inline: None,
        namespace: None,
        server_side: true,
        expect_error: None,
    })
}

/// Renders `AREA/NAME.yaml` and the manifests it applies, every text redacted.
///
/// # Errors
/// When YAML cannot be rendered.
pub fn render(parts: &Parts<'_>) -> Result<Vec<(PathBuf, String)>, CaptureError> {
    let facts = parts.facts;
    let selection = facts.selection;
    let name = parts.options.name.as_str();
    let area = parts.options.area.as_str();
    let dir = PathBuf::from(area).join("manifests").join(name);
    let rel = |file: &str| format!("manifests/{name}/{file}");
    let mut files = Vec::new();
    let mut setup = Vec::new();
    let mut add =
        |file: &str, objects: Vec<Value>, steps: &mut Vec<Step>| -> Result<(), CaptureError> {
            if objects.is_empty() {
                return Ok(());
            }
            let text = facts.redact(&documents(&objects)?);
            files.push((dir.join(file), text));
            steps.push(apply(rel(file)));
            Ok(())
        };
    let stripped = |objects: &[Value]| objects.iter().map(strip::manifest).collect::<Vec<_>>();
    add(
        "namespaces.yaml",
        stripped(&selection.namespaces),
        &mut setup,
    )?;
    add("crds.yaml", stripped(&selection.crds), &mut setup)?;
    add(
        "cluster-rbac.yaml",
        stripped(&selection.cluster_rbac),
        &mut setup,
    )?;
    add("objects.yaml", stripped(&selection.referenced), &mut setup)?;
    let previous: Vec<Value> = selection
        .workloads
        .iter()
        .filter_map(|w| {
            let template = w.previous_template.as_ref()?;
            let mut o = w.object.clone();
            o["spec"]["template"] = template.clone();
            Some(strip::manifest(&o))
        })
        .collect();
    let waits: Vec<Step> = previous
        .iter()
        .map(|d| {
            Step::Expect(Expectation::Object(ObjectExpectation {
                api_version: None,
                kind: "Deployment".to_owned(),
                name: d["metadata"]["name"].as_str().map(str::to_owned),
                namespace: d["metadata"]["namespace"].as_str().map(str::to_owned),
                labels: BTreeMap::new(),
                count: None,
                require: Quantifier::All,
                matches: serde_json::json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                within: Some(Duration::from_secs(300)),
                for_: None,
            }))
        })
        .collect();
    add("previous-revision.yaml", previous, &mut setup)?;
    setup.extend(waits);
    let mut break_steps = Vec::new();
    let workloads: Vec<Value> = selection
        .workloads
        .iter()
        .map(|w| strip::manifest(&w.object))
        .collect();
    add("workloads.yaml", workloads, &mut break_steps)?;

    let namespaces: BTreeSet<&str> = selection.workloads.iter().map(|w| w.namespace()).collect();
    let namespaces: Vec<&str> = namespaces.into_iter().collect();
    let when = facts
        .observed
        .objects
        .iter()
        .filter(|o| o["kind"] == "Event")
        .filter_map(super::event_time)
        .max()
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    let reasons = reasons(parts.symptoms);
    let head = Head {
        name,
        description: format!(
            "Captured from {} (namespace {}){when}; the cluster showed {}. TODO: say what broke, in a sentence or two a newcomer understands.",
            facts.observed.origin,
            namespaces.join(", "),
            if reasons.is_empty() {
                "no reason".to_owned()
            } else {
                reasons.iter().cloned().collect::<Vec<_>>().join(", ")
            },
        ),
        source: format!(
            "relapse capture of {}, namespace {}{when}. TODO: the incident report and section",
            facts.observed.origin,
            namespaces.join(", ")
        ),
        tags: vec!["captured".to_owned(), area.to_owned()],
        cluster: parts.shape,
        images: images(parts.images)?,
        setup,
        break_: Break {
            steps: break_steps,
            symptoms: parts.symptoms.to_vec(),
        },
    };
    let tail = Tail {
        converge: Converge {
            within: Duration::from_secs(600),
            settle: Duration::from_secs(120),
            expect: parts.converge.to_vec(),
            budget: None,
        },
    };
    let mut text = String::from("# yaml-language-server: $schema=../scenario.schema.json\n");
    text.push_str(&format!(
        "# Captured by `relapse capture`. Check the symptoms (drop the ones that are not the incident),\n# write the fix below, add a mutant, then `relapse validate` and `relapse run --filter {area}/{name}`.\n"
    ));
    text.push_str(&yaml(&head)?);
    text.push_str(&fix_comment(parts, &reasons, name));
    text.push_str("fix: []\n");
    text.push_str(&yaml(&tail)?);
    text.push_str(MUTANTS_COMMENT);
    files.insert(
        0,
        (
            PathBuf::from(area).join(format!("{name}.yaml")),
            facts.redact(&text),
        ),
    );
    Ok(files)
}

const MUTANTS_COMMENT: &str = "\
# TODO mutants: a plausible wrong fix that must not converge (every shipped scenario keeps one):
# mutants:
#   - name: restart-it
#     description: >-
#       Why someone would try this, and why the cluster stays broken.
#     fix:
#       - rolloutRestart: {kind: Deployment, name: NAME, namespace: NAMESPACE}
";

/// The reasons the symptoms name (waiting, terminated, condition and event reasons).
fn reasons(symptoms: &[Expectation]) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "reason"
                        && let Some(r) = v.as_str()
                    {
                        out.insert(r.to_owned());
                    }
                    walk(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for s in symptoms {
        match s {
            Expectation::Object(o) => walk(&o.matches, &mut out),
            Expectation::Event(e) => {
                out.insert(e.reason.clone());
            }
            _ => {}
        }
    }
    out
}

/// What people usually do about each reason.
const USUAL_FIXES: [(&str, &str); 14] = [
    (
        "CrashLoopBackOff",
        "make the crashing container start: its last log lines (symptoms above) say what it lacks",
    ),
    (
        "CreateContainerConfigError",
        "create the Secret or ConfigMap (or the key) the waiting message names, in the pod's namespace",
    ),
    (
        "ErrImagePull",
        "point the container at an image and tag that exist for the nodes' platform, with imagePullSecrets if the registry is private",
    ),
    (
        "ImagePullBackOff",
        "point the container at an image and tag that exist for the nodes' platform, with imagePullSecrets if the registry is private",
    ),
    (
        "FailedScheduling",
        "make a node fit the pod (labels, taints, capacity) or relax its nodeSelector, affinity or tolerations",
    ),
    (
        "Unschedulable",
        "make a node fit the pod (labels, taints, capacity) or relax its nodeSelector, affinity or tolerations",
    ),
    (
        "FailedAttachVolume",
        "let the volume move between nodes: `strategy: {type: Recreate}` for a Deployment with a ReadWriteOnce claim",
    ),
    (
        "FailedMount",
        "create what the volume mounts (the Secret or ConfigMap the event names)",
    ),
    (
        "ProgressDeadlineExceeded",
        "make the new pods become available (or roll back with the previous revision's template)",
    ),
    ("OOMKilled", "raise the container's resources.limits.memory"),
    (
        "Unhealthy",
        "fix the probe, or what keeps the program from answering it",
    ),
    (
        "BackoffLimitExceeded",
        "fix why the Job's pods fail, then delete and re-create the Job",
    ),
    ("MinimumReplicasUnavailable", "make the pods become ready"),
    (
        "Error",
        "read the exit code and the last log lines of the container",
    ),
];

fn fix_comment(parts: &Parts<'_>, reasons: &BTreeSet<String>, name: &str) -> String {
    let mut todo: Vec<String> = parts
        .facts
        .selection
        .missing
        .iter()
        .map(|m| format!("create the missing {m} the pods reference"))
        .collect();
    for (image, b) in parts.images {
        if b.manifest == ManifestKind::Single || !b.platforms.is_empty() {
            todo.push(format!(
                "{image} is not built for the nodes' platform: push an image for it (or a multi-arch index) and point the workload at it"
            ));
        }
        if b.missing {
            todo.push(format!("{image} does not exist: correct the tag"));
        }
        if b.private {
            todo.push(format!("{image} needs credentials: add imagePullSecrets"));
        }
    }
    let logged = |text: &str| {
        parts
            .symptoms
            .iter()
            .any(|s| matches!(s, Expectation::Log(l) if l.contains.contains(text)))
    };
    if logged("could not find the requested resource") {
        todo.push("a program lists a resource the API server does not serve: apply its CRD (server-side), then re-apply what was refused".to_owned());
    }
    for (reason, fix) in USUAL_FIXES {
        if reasons.contains(reason) {
            todo.push(fix.to_owned());
        }
    }
    todo.extend(parts.notes.iter().cloned());
    todo.dedup();
    let mut out = String::from(
        "# TODO fix: the documented fix, as steps; the scenario does not load until it has one.\n# What people usually do about what was captured:\n",
    );
    for t in &todo {
        out.push_str(&format!("#   - {}\n", parts.facts.redact(t)));
    }
    let example = parts
        .facts
        .selection
        .workloads
        .first()
        .map(|w| {
            (
                w.kind().to_owned(),
                w.name().to_owned(),
                w.namespace().to_owned(),
            )
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "# For example:\n#   - apply: {{file: manifests/{name}/fix.yaml}}\n#   - patch:\n#       object: {{kind: {}, name: {}, namespace: {}}}\n#       type: strategic\n#       patch: {{spec: {{template: {{spec: {{containers: [{{name: ..., image: ...}}]}}}}}}}}\n",
        example.0, example.1, example.2
    ));
    out
}
