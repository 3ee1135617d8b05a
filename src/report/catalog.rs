//! The scenario catalogue: one page listing every scenario with its incident, source, symptom
//! texts, fix, the backends it replays on and its wrong-fix mutants (and, given a JUnit file,
//! each trial's last result). `relapse catalog --write` keeps `scenarios/CATALOG.md` current.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::backend::BackendKind;
use crate::run::observe::describe;
use crate::scenario::{Expectation, LoadedScenario, Step};

/// Where the catalogue is kept, relative to the project root.
pub const CATALOG_PATH: &str = "scenarios/CATALOG.md";

/// One scenario's entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `area/name`.
    pub id: String,
    /// The scenario file, relative to the scenarios root.
    pub file: String,
    /// What broke.
    pub description: String,
    /// The incident report and section it replays.
    pub source: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Each symptom: what is observed, then the real texts it looks for.
    pub symptoms: Vec<String>,
    /// The fix, one line per step.
    pub fix: Vec<String>,
    /// Per backend: `runs`, or the reason it is skipped.
    pub backends: BTreeMap<String, String>,
    /// The wrong fixes that must not converge: name and why.
    pub mutants: Vec<(String, String)>,
    /// Last result per trial name, from a JUnit file (`passed`, `failed`, `skipped`).
    pub results: BTreeMap<String, String>,
}

/// The catalogue entries of `scenarios`, with results from `junit` (a JUnit XML text) if given.
#[must_use]
pub fn entries(scenarios: &[LoadedScenario], junit: Option<&str>) -> Vec<Entry> {
    let results = junit.map(junit_results).unwrap_or_default();
    let mut out: Vec<Entry> = scenarios
        .iter()
        .map(|l| {
            let s = &l.scenario;
            // The scenario's own skips and what a backend refuses from the text alone; whether
            // a backend is available depends on the machine and is not part of the page.
            let how = |kind: BackendKind, o: &Option<crate::scenario::BackendOverride>| {
                if let Some(o) = o {
                    return format!("skipped: {}", one_line(&o.skip));
                }
                let refused = crate::backend::trial_refusal(kind, s, None);
                if !refused.is_empty() {
                    return format!("refused: {}", one_line(&refused.join("; ")));
                }
                // A mutant the backend cannot perform is ignored on its own.
                let mutants: Vec<String> = s
                    .mutants
                    .iter()
                    .filter_map(|m| {
                        let r = crate::backend::trial_refusal(kind, s, Some(&m.name));
                        (!r.is_empty()).then(|| format!("{} ({})", m.name, r.join("; ")))
                    })
                    .collect();
                if mutants.is_empty() {
                    "runs".to_owned()
                } else {
                    format!("runs; mutants refused: {}", one_line(&mutants.join("; ")))
                }
            };
            let backends = BTreeMap::from([
                ("sim".to_owned(), how(BackendKind::Sim, &s.backends.sim)),
                ("k3d".to_owned(), how(BackendKind::K3d, &s.backends.k3d)),
                (
                    "kubeconfig".to_owned(),
                    how(BackendKind::Kubeconfig, &s.backends.kubeconfig),
                ),
            ]);
            // `<backend>::<id>` and `<backend>::<id>::mutant::<name>` are this scenario's.
            let prefix = |name: &str| {
                name.split_once("::").is_some_and(|(_, rest)| {
                    rest == l.id || rest.starts_with(&format!("{}::mutant::", l.id))
                })
            };
            Entry {
                id: l.id.clone(),
                file: format!("{}.yaml", l.id),
                description: one_line(&s.description),
                source: one_line(&s.source),
                tags: s.tags.clone(),
                symptoms: s.break_.symptoms.iter().map(symptom).collect(),
                fix: s.fix.iter().map(step).collect(),
                backends,
                mutants: s
                    .mutants
                    .iter()
                    .map(|m| (m.name.clone(), one_line(&m.description)))
                    .collect(),
                results: results
                    .iter()
                    .filter(|(name, _)| prefix(name))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The catalogue as Markdown.
#[must_use]
pub fn markdown(entries: &[Entry]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Scenario catalogue\n");
    let _ = writeln!(
        out,
        "Every incident relapse replays, generated from the scenario files by `relapse catalog --write`\n(do not edit by hand; a test fails when this page is stale). {} scenarios, {} wrong-fix mutants.\n",
        entries.len(),
        entries.iter().map(|e| e.mutants.len()).sum::<usize>()
    );
    let _ = writeln!(out, "| scenario | incident | mutants | k3d |");
    let _ = writeln!(out, "|---|---|---|---|");
    for e in entries {
        let k3d = e
            .backends
            .get("k3d")
            .and_then(|b| b.split(':').next())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} | {} | {k3d} |",
            e.id,
            anchor(&e.id),
            cell(&e.source),
            e.mutants.len()
        );
    }
    for e in entries {
        let _ = writeln!(out, "\n## {}\n", e.id);
        let _ = writeln!(out, "{}\n", e.description);
        let _ = writeln!(out, "- **File:** [{}]({})", e.file, e.file);
        let _ = writeln!(out, "- **Source:** {}", e.source);
        if !e.tags.is_empty() {
            let _ = writeln!(out, "- **Tags:** {}", e.tags.join(", "));
        }
        let _ = writeln!(out, "- **Symptoms:**");
        for s in &e.symptoms {
            let _ = writeln!(out, "  - {s}");
        }
        let _ = writeln!(out, "- **Fix:**");
        for f in &e.fix {
            let _ = writeln!(out, "  - {f}");
        }
        let _ = writeln!(out, "- **Backends:**");
        for (b, how) in &e.backends {
            let _ = writeln!(out, "  - {b}: {how}");
        }
        let _ = writeln!(out, "- **Wrong fixes that must not converge:**");
        for (name, why) in &e.mutants {
            let _ = writeln!(out, "  - `{name}`: {why}");
        }
        if !e.results.is_empty() {
            let _ = writeln!(out, "- **Last results:**");
            for (trial, result) in &e.results {
                let _ = writeln!(out, "  - `{trial}`: {result}");
            }
        }
    }
    out
}

/// A symptom with the real texts it looks for.
fn symptom(e: &Expectation) -> String {
    let mut texts = Vec::new();
    match e {
        // `describe` quotes the line already.
        Expectation::Log(_) => {}
        Expectation::Event(ev) => {
            texts.push(ev.reason.clone());
            texts.extend(ev.message.clone());
        }
        Expectation::Object(o) => collect_texts(&o.matches, &mut texts),
        Expectation::App(a) => {
            let o = a.to_object();
            for (k, v) in [
                ("sync", &a.sync),
                ("health", &a.health),
                ("operation", &a.operation),
            ] {
                if let Some(Value::String(s)) = v {
                    texts.push(format!("{k} {s}"));
                }
            }
            if let Some(Value::String(m)) = &a.message {
                texts.push(m.clone());
            }
            collect_texts(&o.matches["status"]["conditions"], &mut texts);
        }
        Expectation::SqlError(s) => {
            texts.push(format!("SQLSTATE {}", s.sqlstate));
            texts.extend(s.message.clone());
        }
        Expectation::Absent(_) | Expectation::Sql(_) => {}
    }
    let texts: Vec<String> = texts
        .iter()
        .map(|t| format!("`{}`", t.replace('`', "'")))
        .collect();
    if texts.is_empty() {
        describe(e)
    } else {
        format!("{}: {}", describe(e), texts.join(", "))
    }
}

/// The `reason` and `message` texts in a partial tree.
fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("reason" | "message", Value::String(s)) => out.push(s.clone()),
                    _ => collect_texts(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_texts(i, out)),
        _ => {}
    }
}

/// One fix step on one line.
fn step(s: &Step) -> String {
    let detail = match s {
        Step::Apply(a) => a.file.as_ref().map_or_else(
            || "inline objects".to_owned(),
            |f| {
                std::path::Path::new(f)
                    .file_name()
                    .map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned())
            },
        ),
        Step::Delete(d) => format!("{} {}", d.object.kind, d.object.name),
        Step::Patch(p) => format!("{} {}", p.object.kind, p.object.name),
        Step::Scale(sc) => format!("{} {}", sc.object.kind, sc.object.name),
        Step::RolloutRestart(r) => format!("{} {}", r.kind, r.name),
        Step::Sql(q) => one_line(&q.query),
        Step::Expect(e) => describe(e),
        Step::Sleep(d) => d.to_string(),
        Step::Fault(f) => f.fault_name(),
        Step::EndFault(name) => name.clone(),
        Step::AddNode(n) => n.name.clone(),
        Step::RemoveNode(n) => n.name.clone(),
        Step::LoadBalancer(p) => match p {
            crate::scenario::LoadBalancerProvider::None => "none".to_owned(),
            crate::scenario::LoadBalancerProvider::ServiceLb => "service-lb".to_owned(),
        },
        Step::Commit(c) => c.message.clone(),
    };
    format!("{} {}", s.keyword(), detail)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The GitHub anchor of a heading.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// Each test case's result in a JUnit file: `passed`, `failed` or `skipped`.
fn junit_results(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for case in xml.split("<testcase ").skip(1) {
        let Some(name) = case
            .split_once("name=\"")
            .and_then(|(_, rest)| rest.split('"').next())
        else {
            continue;
        };
        let end = case.find("</testcase>").unwrap_or(case.len());
        let body = &case[..end];
        let result = if body.contains("<failure") || body.contains("<error") {
            "failed"
        } else if body.contains("<skipped") {
            "skipped"
        } else {
            "passed"
        };
        out.insert(name.to_owned(), result.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_results_are_read_per_test_case() {
        let xml = r#"<testsuite><testcase name="sim::a/b" classname="sim"/><testcase name="k3d::a/b" classname="k3d"><skipped message="no docker"/></testcase><testcase name="sim::a/b::mutant::m" classname="sim"><failure message="x"/></testcase></testsuite>"#;
        let r = junit_results(xml);
        assert_eq!(r["sim::a/b"], "passed");
        assert_eq!(r["k3d::a/b"], "skipped");
        assert_eq!(r["sim::a/b::mutant::m"], "failed");
    }

    #[test]
    fn committed_catalog_is_up_to_date() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let (scenarios, errors) =
            crate::scenario::load_suite(&[root.join("scenarios")]).expect("the suite loads");
        assert!(errors.is_empty());
        let want = markdown(&entries(&scenarios, None));
        let have = std::fs::read_to_string(root.join(CATALOG_PATH)).unwrap_or_default();
        assert!(
            have == want,
            "{CATALOG_PATH} is stale: run `relapse catalog --write` (just catalog) and commit it"
        );
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(
            anchor("storage/rwo-rollout-deadlock"),
            "storagerwo-rollout-deadlock"
        );
    }
}
