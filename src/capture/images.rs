//! An `images:` stanza per image that reproduces what the cluster showed of it: a platform the
//! nodes lack (`exec format error`, `no match for platform in manifest`), a missing tag, a
//! private registry, the lines a crashing program wrote and its exit code, an OOM kill.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Facts;
use super::source::container_statuses;
use super::symptoms::complains;
use crate::scenario::{Duration, ExitAfter, ImageBehaviour, ManifestKind};

/// PostgreSQL server messages a program passes on when its login or statement fails
/// (src/backend/libpq/auth.c, src/backend/utils/init/postinit.c).
const DATABASE_ERRORS: [&str; 4] = [
    "password authentication failed for user",
    "no pg_hba.conf entry for host",
    "is not permitted to log in",
    "permission denied to create database",
];

/// The behaviours of the images of the captured pods, keyed by image reference, with what a
/// person should know about what no `images:` field reproduces.
#[must_use]
pub fn images(facts: &Facts<'_>) -> (BTreeMap<String, ImageBehaviour>, Vec<String>) {
    let mut out: BTreeMap<String, ImageBehaviour> = BTreeMap::new();
    let mut notes = Vec::new();
    for w in &facts.selection.workloads {
        let previous_images = w
            .previous_template
            .as_ref()
            .map(|t| images_of(&t["spec"]))
            .unwrap_or_default();
        for pod in facts.current_pods(w) {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let arch = facts.node_arch(pod);
            let specs = images_by_container(&pod["spec"]);
            for c in container_statuses(pod) {
                let name = c["name"].as_str().unwrap_or_default();
                let Some(image) = specs
                    .get(name)
                    .cloned()
                    .or_else(|| c["image"].as_str().map(str::to_owned))
                else {
                    continue;
                };
                let mut b = out.get(&image).cloned().unwrap_or_default();
                let texts = pull_texts(facts, c, &image);
                let crashed = &c["lastState"]["terminated"];
                let lines = facts.log_tail(w.namespace(), pod_name, name, !crashed.is_null());
                let exec_error = lines.iter().find_map(|l| exec_format_error(l));
                if let Some(entrypoint) = exec_error {
                    b.manifest = ManifestKind::Single;
                    b.platforms = vec![format!("linux/{}", other_arch(arch))];
                    b.entrypoint = Some(entrypoint);
                } else if texts
                    .iter()
                    .any(|t| t.contains("no match for platform in manifest"))
                {
                    b.manifest = ManifestKind::Index;
                    b.platforms = vec![format!("linux/{}", other_arch(arch))];
                } else if texts.iter().any(|t| {
                    let t = t.to_lowercase();
                    [
                        "401 unauthorized",
                        "403 forbidden",
                        "authorization failed",
                        "pull access denied",
                        "no basic auth credentials",
                    ]
                    .iter()
                    .any(|w| t.contains(w))
                }) {
                    b.private = true;
                } else if texts.iter().any(|t| t.contains("no such host")) {
                    notes.push(format!(
                        "the registry of {image} could not be resolved; a `fault: {{registryOutage: ...}}` step replays that"
                    ));
                } else if texts
                    .iter()
                    .any(|t| t.ends_with("not found") || t.contains(": not found"))
                {
                    b.missing = true;
                } else if crashed["reason"] == "OOMKilled" {
                    match doubled(&container_limit(&pod["spec"], name)) {
                        Some(memory) => b.memory = Some(memory),
                        None => notes.push(format!(
                            "{image} was OOM-killed without a memory limit relapse can read"
                        )),
                    }
                } else if let Some(code) = crashed["exitCode"].as_i64().filter(|c| *c != 0) {
                    if previous_images.contains(&image) {
                        notes.push(format!(
                            "{image} crashes in the new revision and runs in the previous one: its `requires` (what it reads of its configuration) would tell them apart"
                        ));
                    } else {
                        b.logs = lines.iter().map(|l| facts.redact(l)).collect();
                        if lines
                            .iter()
                            .any(|l| DATABASE_ERRORS.iter().any(|e| l.contains(e)))
                        {
                            notes.push(format!(
                                "{image} failed on its database: this stand-in only replays its log and exit; a `postgres:` section with `requires: [{{needs: {{postgres: ...}}}}]` replays the server's side (and `sqlError` symptoms)"
                            ));
                        }
                        let ran = super::time(&crashed["finishedAt"])
                            .zip(super::time(&crashed["startedAt"]))
                            .map(|(end, start)| {
                                end.duration_since(start).as_secs().max(0).unsigned_abs()
                            })
                            .unwrap_or(0);
                        b.exit_after = Some(ExitAfter {
                            duration: Duration::from_secs(ran),
                            code: i32::try_from(code).unwrap_or(1),
                        });
                    }
                } else if crashed.is_null() {
                    let mut complaints: Vec<String> = lines
                        .iter()
                        .filter(|l| complains(l))
                        .map(|l| facts.redact(l))
                        .collect();
                    // A program retrying logs the same line again and again; once is enough
                    // for it to show.
                    complaints.sort();
                    complaints.dedup();
                    if !complaints.is_empty() && !previous_images.contains(&image) {
                        b.logs = complaints;
                    }
                }
                if b != ImageBehaviour::default() {
                    out.insert(image, b);
                }
            }
        }
    }
    notes.sort();
    notes.dedup();
    (out, notes)
}

fn images_of(spec: &Value) -> Vec<String> {
    images_by_container(spec).into_values().collect()
}

fn images_by_container(spec: &Value) -> BTreeMap<String, String> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec[*l].as_array())
        .flatten()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_owned(),
                c["image"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The texts the kubelet and containerd gave for the image's pulls: the container's waiting
/// message and the warning events that name the image.
fn pull_texts(facts: &Facts<'_>, status: &Value, image: &str) -> Vec<String> {
    let waiting = &status["state"]["waiting"];
    let mut texts: Vec<String> = waiting["message"]
        .as_str()
        .filter(|_| waiting["reason"] == "ErrImagePull")
        .map(str::to_owned)
        .into_iter()
        .collect();
    let pull = format!("Failed to pull image \"{image}\"");
    for e in facts.warning_events() {
        if let Some(m) = e["message"].as_str()
            && m.starts_with(&pull)
        {
            texts.push(m.to_owned());
        }
    }
    texts
}

/// The entrypoint in runc's `exec <path>: exec format error`.
fn exec_format_error(line: &str) -> Option<String> {
    let at = line.find("exec ")?;
    let rest = line[at + 5..].strip_suffix(": exec format error")?;
    (!rest.is_empty() && !rest.contains(' ')).then(|| rest.to_owned())
}

/// The architecture an image built for another platform than the node's has.
fn other_arch(node: Option<&str>) -> &'static str {
    if node == Some("arm64") {
        "amd64"
    } else {
        "arm64"
    }
}

fn container_limit(spec: &Value, container: &str) -> String {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec[*l].as_array())
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["resources"]["limits"]["memory"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Twice a memory quantity (`512Mi` -> `1024Mi`): more than the limit, as the program used.
fn doubled(quantity: &str) -> Option<String> {
    let split = quantity.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = quantity.split_at(split);
    let n: u64 = n.parse().ok()?;
    ["Ki", "Mi", "Gi", "Ti", "K", "M", "G", "T"]
        .contains(&unit)
        .then(|| format!("{}{unit}", n * 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_names_the_entrypoint() {
        assert_eq!(
            exec_format_error("exec /opt/keycloak/bin/kc.sh: exec format error").as_deref(),
            Some("/opt/keycloak/bin/kc.sh")
        );
        assert_eq!(exec_format_error("exec failed: permission denied"), None);
    }

    #[test]
    fn memory_doubles_in_its_unit() {
        assert_eq!(doubled("512Mi").as_deref(), Some("1024Mi"));
        assert_eq!(doubled("1.5Gi"), None);
        assert_eq!(doubled(""), None);
    }
}
