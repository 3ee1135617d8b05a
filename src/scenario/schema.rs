//! JSON Schemas of the scenario and fixture formats, for editors (yaml-language-server).
//!
//! They are generated from the Rust types and committed under `scenarios/`; a test fails when
//! the committed files are stale, and `relapse schema --write` refreshes them.

use super::model::{Fixture, Scenario};

/// Where the committed schemas live, relative to the repository root.
pub const SCENARIO_SCHEMA_PATH: &str = "scenarios/scenario.schema.json";
/// Where the committed fixture schema lives, relative to the repository root.
pub const FIXTURE_SCHEMA_PATH: &str = "scenarios/fixture.schema.json";

/// The scenario file schema as pretty JSON with a trailing newline.
#[must_use]
pub fn scenario_schema() -> String {
    render(schemars::schema_for!(Scenario))
}

/// The fixture file schema as pretty JSON with a trailing newline.
#[must_use]
pub fn fixture_schema() -> String {
    render(schemars::schema_for!(Fixture))
}

fn render(schema: schemars::Schema) -> String {
    // Serializing a schema (a JSON value) cannot fail.
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(rel: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    #[test]
    fn committed_schemas_are_up_to_date() {
        assert!(
            committed(SCENARIO_SCHEMA_PATH) == scenario_schema(),
            "{SCENARIO_SCHEMA_PATH} is stale: run `just schema` (relapse schema --write) and commit it"
        );
        assert!(
            committed(FIXTURE_SCHEMA_PATH) == fixture_schema(),
            "{FIXTURE_SCHEMA_PATH} is stale: run `just schema` (relapse schema --write) and commit it"
        );
    }

    #[test]
    fn schema_rejects_unknown_fields_and_names_steps() {
        let schema: serde_json::Value = serde_json::from_str(&scenario_schema()).unwrap();
        assert_eq!(
            schema["additionalProperties"],
            serde_json::Value::Bool(false)
        );
        let text = scenario_schema();
        for keyword in ["rolloutRestart", "sqlError", "within", "counterfactual"] {
            assert!(text.contains(keyword), "schema lacks {keyword}");
        }
    }
}
