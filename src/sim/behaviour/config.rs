//! How a stand-in program reads its own configuration: an environment variable as the kubelet
//! resolved it, a command-line flag, or a value in a file mounted from a ConfigMap or Secret,
//! all as the container was started with them (a program reads its configuration at start).

use serde_json::Value;

use super::program::ContainerContext;
use crate::matcher::{compact, match_at};
use crate::scenario::{ConfigFormat, ConfigNeed, ConfigSource};

/// The value `source` names in the container's configuration; `None` when it is not there.
#[must_use]
pub fn read(ctx: &ContainerContext, source: &ConfigSource) -> Option<Value> {
    if let Some(name) = &source.env {
        return ctx.env.get(name).map(|v| Value::String(v.clone()));
    }
    if let Some(flag) = &source.arg {
        return flag_value(ctx.command.iter().chain(&ctx.args), flag).map(Value::String);
    }
    let path = source.file.as_deref()?;
    let text = ctx.files.get(path)?;
    let Some(key) = &source.key else {
        return Some(Value::String(text.clone()));
    };
    match source.format.or_else(|| format_of(path))? {
        ConfigFormat::Yaml | ConfigFormat::Json => {
            let tree: Value = serde_yaml::from_str(text).ok()?;
            key.split('.')
                .try_fold(&tree, |node, part| match node {
                    Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                    other => other.get(part),
                })
                .filter(|v| !v.is_null())
                .cloned()
        }
        ConfigFormat::Properties => text.lines().find_map(|line| {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with('!') {
                return None;
            }
            let (k, v) = line.split_once('=').or_else(|| line.split_once(':'))?;
            (k.trim() == key).then(|| Value::String(v.trim().to_owned()))
        }),
    }
}

/// The format a file's name suggests.
fn format_of(path: &str) -> Option<ConfigFormat> {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "yaml" | "yml" => Some(ConfigFormat::Yaml),
        "json" => Some(ConfigFormat::Json),
        "properties" | "env" | "conf" | "cfg" => Some(ConfigFormat::Properties),
        _ => None,
    }
}

/// The value of `flag` on a command line: `--flag value`, `--flag=value`, or `"true"` for a
/// flag given alone (followed by nothing or another flag).
fn flag_value<'a>(mut words: impl Iterator<Item = &'a String>, flag: &str) -> Option<String> {
    let with_eq = format!("{flag}=");
    while let Some(word) = words.next() {
        if let Some(v) = word.strip_prefix(&with_eq) {
            return Some(v.to_owned());
        }
        if word == flag {
            return Some(match words.next() {
                Some(next) if !next.starts_with('-') => next.clone(),
                _ => "true".to_owned(),
            });
        }
    }
    None
}

/// Whether the configuration meets `need`; the reason when it does not (what a scenario's
/// `{error}` is filled with).
///
/// # Errors
/// The source and what was expected beside what was read.
pub fn check(ctx: &ContainerContext, need: &ConfigNeed) -> Result<(), String> {
    let source = need.source();
    let value = read(ctx, &source);
    let matches = need
        .matches
        .clone()
        .unwrap_or_else(|| serde_json::json!({"$absent": false}));
    let shown = |v: Option<&Value>| v.map_or_else(|| "nothing".to_owned(), compact);
    if let Some(m) = match_at(&matches, value.as_ref()).first() {
        return Err(format!(
            "{}{}: expected {}, read {}",
            source.describe(),
            m.path,
            compact(&m.expected),
            shown(m.observed.as_ref())
        ));
    }
    if let Some(other) = &need.same_as {
        let theirs = read(ctx, other);
        let same = match (&value, &theirs) {
            (Some(a), Some(b)) => {
                match_at(a, Some(b)).is_empty() && match_at(b, Some(a)).is_empty()
            }
            _ => false,
        };
        if !same {
            return Err(format!(
                "{} ({}) differs from {} ({})",
                source.describe(),
                shown(value.as_ref()),
                other.describe(),
                shown(theirs.as_ref())
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn ctx() -> ContainerContext {
        ContainerContext {
            namespace: "ns".into(),
            pod_name: "p".into(),
            container: "c".into(),
            command: vec!["redis-server".into()],
            args: vec![
                "--requirepass".into(),
                "s3cret".into(),
                "--leader-elect=false".into(),
                "--verbose".into(),
            ],
            env: BTreeMap::from([("REDIS_PASSWORD".into(), "s3cret".into())]),
            files: BTreeMap::from([
                (
                    "/app/app-config.yaml".into(),
                    "backend:\n  baseUrl: http://x\n  auth:\n    keys:\n      - secret: abc\n"
                        .into(),
                ),
                ("/etc/app.properties".into(), "# c\nmode = prod\n".into()),
            ]),
            node_arch: crate::scenario::Arch::Amd64,
            service_account: "default".into(),
        }
    }

    fn need(v: Value) -> ConfigNeed {
        serde_json::from_value(v).expect("a config need")
    }

    #[test]
    fn reads_env_flags_and_file_paths() {
        let c = ctx();
        let src = |v: Value| -> ConfigSource { serde_json::from_value(v).expect("a source") };
        assert_eq!(
            read(&c, &src(json!({"env": "REDIS_PASSWORD"}))),
            Some(json!("s3cret"))
        );
        assert_eq!(
            read(&c, &src(json!({"arg": "--requirepass"}))),
            Some(json!("s3cret"))
        );
        assert_eq!(
            read(&c, &src(json!({"arg": "--leader-elect"}))),
            Some(json!("false"))
        );
        assert_eq!(
            read(&c, &src(json!({"arg": "--verbose"}))),
            Some(json!("true"))
        );
        assert_eq!(read(&c, &src(json!({"arg": "--absent"}))), None);
        assert_eq!(
            read(
                &c,
                &src(json!({"file": "/app/app-config.yaml", "key": "backend.auth.keys.0.secret"}))
            ),
            Some(json!("abc"))
        );
        assert_eq!(
            read(
                &c,
                &src(json!({"file": "/app/app-config.yaml", "key": "backend.auth.secret"}))
            ),
            None
        );
        assert_eq!(
            read(
                &c,
                &src(json!({"file": "/etc/app.properties", "key": "mode"}))
            ),
            Some(json!("prod"))
        );
    }

    #[test]
    fn conditions_and_comparisons() {
        let c = ctx();
        assert_eq!(check(&c, &need(json!({"env": "REDIS_PASSWORD"}))), Ok(()));
        assert_eq!(
            check(&c, &need(json!({"env": "MISSING"}))),
            Err(r#"env MISSING: expected {"$absent":false}, read nothing"#.into())
        );
        assert_eq!(
            check(
                &c,
                &need(
                    json!({"file": "/app/app-config.yaml", "key": "backend.auth.keys", "matches": [{"secret": {"$regex": "."}}]})
                )
            ),
            Ok(())
        );
        assert!(
            check(
                &c,
                &need(json!({"arg": "--leader-elect", "matches": "true"}))
            )
            .is_err()
        );
        assert_eq!(
            check(
                &c,
                &need(json!({"env": "REDIS_PASSWORD", "sameAs": {"arg": "--requirepass"}}))
            ),
            Ok(())
        );
        assert_eq!(
            check(&c, &need(json!({"env": "REDIS_PASSWORD", "sameAs": {"file": "/etc/app.properties", "key": "mode"}}))),
            Err("env REDIS_PASSWORD (\"s3cret\") differs from file /etc/app.properties key mode (\"prod\")".into())
        );
    }
}
