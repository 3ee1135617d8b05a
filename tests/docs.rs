//! The contributor docs against the code: what CONTRIBUTING.md points at exists, and the README's
//! "Image behaviours" table names everything the scenario model accepts under `images:`.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test aborts it with its message"
)]

use std::collections::BTreeSet;
use std::path::Path;

#[path = "common/image_fields.rs"]
mod image_fields;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The text with fenced code blocks left out.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `code spans` of a text without fenced blocks, each with the text that follows it.
fn spans(text: &str) -> Vec<(&str, &str)> {
    let parts: Vec<&str> = text.split('`').collect();
    (1..parts.len())
        .step_by(2)
        .map(|i| (parts[i], parts.get(i + 1).copied().unwrap_or_default()))
        .collect()
}

fn is_plain_path(span: &str) -> bool {
    !span.contains(|c: char| c.is_whitespace() || "<>{}*|".contains(c))
}

#[test]
fn every_file_contributing_names_exists() {
    let text = prose(&read("CONTRIBUTING.md"));
    let areas: BTreeSet<String> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut checked = 0;
    let mut missing = Vec::new();
    let spans = spans(&text);
    for (i, (span, after)) in spans.iter().enumerate() {
        if !is_plain_path(span) {
            continue;
        }
        let first = span.split('/').next().unwrap_or_default();
        if ["src", "tests", "scenarios", "snapshots"].contains(&first) {
            checked += 1;
            let path = root().join(span);
            if !path.exists() {
                missing.push(format!("{span} (no such file or directory)"));
                continue;
            }
            // `path` (`function`): the function is still there.
            if *after == " (" && path.is_file() {
                let name = spans.get(i + 1).map_or("", |(s, _)| *s);
                let name = name.rsplit("::").next().unwrap_or_default();
                if !name.is_empty() && !read(span).contains(name) {
                    missing.push(format!("{name} in {span}"));
                }
            }
        } else if areas.contains(first) && span.matches('/').count() == 1 && !span.contains('.') {
            // A scenario id, `area/name`.
            checked += 1;
            if !root().join(format!("scenarios/{span}.yaml")).is_file() {
                missing.push(format!("scenario {span}"));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} paths found: has the format changed?"
    );
    assert!(
        missing.is_empty(),
        "CONTRIBUTING.md names what is gone: {missing:#?}"
    );
}

#[test]
fn the_module_map_in_contributing_matches_the_tree() {
    let text = read("CONTRIBUTING.md");
    let map = text
        .split("## Where things are")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("a fenced module map under `## Where things are`");
    let mut missing = Vec::new();
    for line in map.lines() {
        // `src/x/  description` names a path; `  name/  description` one under src/sim/.
        let (base, rest) = if line.starts_with("src/") {
            ("", line)
        } else if line.starts_with("  ") && !line.starts_with("   ") {
            ("src/sim/", line.trim_start())
        } else {
            continue;
        };
        let names = rest.split("  ").next().unwrap_or_default().trim();
        for name in names.split(", ") {
            if !root().join(format!("{base}{name}")).exists() {
                missing.push(format!("{base}{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the module map names what is gone: {missing:?}"
    );
}

#[test]
fn the_readme_names_every_image_behaviour_field() {
    let readme = read("README.md");
    let section = readme
        .split("### Image behaviours (`images:`)")
        .nth(1)
        .and_then(|s| s.split("\n#").next())
        .expect("a `### Image behaviours (`images:`)` section in README.md");
    let words: BTreeSet<&str> = section
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let (fields, values) = image_fields::image_schema_names();
    let missing: Vec<&String> = fields
        .iter()
        .chain(&values)
        .filter(|f| !words.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's image behaviour section does not mention {missing:?}: add a line for each"
    );
    assert!(
        readme.contains("(CONTRIBUTING.md)"),
        "README.md links CONTRIBUTING.md"
    );
}

/// Every public struct, enum, trait and type alias under `src/`, with the files declaring it.
fn public_type_names(dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<String>>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            public_type_names(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            for line in text.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let [first, kind, name, ..] = words.as_slice()
                    && *first == "pub"
                    && matches!(*kind, "struct" | "enum" | "trait" | "type")
                {
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.entry(name)
                        .or_default()
                        .push(path.display().to_string());
                }
            }
        }
    }
}

#[test]
fn no_public_type_name_is_declared_twice() {
    let mut names = std::collections::BTreeMap::new();
    public_type_names(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut names,
    );
    let twice: Vec<String> = names
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(name, files)| format!("{name}: {}", files.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "one name per concept:\n{}",
        twice.join("\n")
    );
}

/// The cells of a Markdown table row, with `\|` kept inside its cell.
fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .replace("\\|", "\u{0}")
        .split('|')
        .map(|c| c.trim().replace('\u{0}', "|"))
        .collect()
}

/// The text of a code span (`x` or `` x ``).
fn code(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix("`` ").and_then(|c| c.strip_suffix(" ``"));
    inner.or_else(|| cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')))
}

/// The lines of a source file before its `mod tests`.
fn code_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            lines[i].trim() == "#[cfg(test)]"
                && lines.get(i + 1).is_some_and(|l| l.starts_with("mod "))
        })
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// docs/fidelity-audit.md against the code: for every row, the quoted source text is still in
/// the named file near the named line, and the upstream Go file the row names is cited there.
#[test]
fn the_fidelity_table_matches_the_code() {
    const NEAR: usize = 60;
    let doc = read("docs/fidelity-audit.md");
    let mut problems = Vec::new();
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with("| src/")) {
        let c = cells(line);
        let (place, text, location) = (&c[0], &c[1], &c[3]);
        let (file, at) = place.rsplit_once(':').expect("file:line");
        let at: usize = at.parse().expect("a line number");
        let text = code(text).unwrap_or_else(|| panic!("{place}: the source text is no code span"));
        rows += 1;
        let source = read(file);
        let lines = code_lines(&source);
        let found: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].contains(text))
            .map(|i| i + 1)
            .collect();
        if found.is_empty() {
            problems.push(format!(
                "{place}: `{text}` is no longer in {file} (changed or moved?)"
            ));
            continue;
        }
        if !found.iter().any(|&n| n.abs_diff(at) <= NEAR) {
            problems.push(format!("{place}: `{text}` is now at {file}:{}", found[0]));
        }
        let cited = location
            .split(|ch: char| ch.is_whitespace() || ",;()".contains(ch))
            .filter_map(|w| w.split(':').next())
            .filter_map(|w| w.rsplit('/').next())
            .find(|w| w.ends_with(".go"));
        match cited {
            Some(go) if lines.iter().any(|l| l.contains(go)) => {}
            Some(go) => problems.push(format!("{place}: {file} does not cite {go}")),
            None => problems.push(format!("{place}: the location names no upstream Go file")),
        }
    }
    assert!(
        rows >= 130,
        "only {rows} rows read from docs/fidelity-audit.md"
    );
    assert!(
        problems.is_empty(),
        "docs/fidelity-audit.md is out of date:\n{}",
        problems.join("\n")
    );
}
