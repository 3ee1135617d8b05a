//! Every shipped scenario keeps at least one wrong-fix mutant: a plausible fix that must not
//! converge shows that the scenario can tell the documented fix from any change at all.

use std::path::{Path, PathBuf};

use relapse::scenario::{self, LoadedScenario};

fn shipped() -> Vec<LoadedScenario> {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let (loaded, errors) =
        scenario::load_suite(&[root]).unwrap_or_else(|e| panic!("{}", scenario::render(&e)));
    // A scenario that does not load cannot be checked for mutants, so it fails here too.
    assert!(
        errors.is_empty(),
        "{}",
        errors
            .iter()
            .map(scenario::render)
            .collect::<Vec<_>>()
            .join("\n")
    );
    loaded
}

/// The ids of the scenarios that have no mutant, in suite order.
fn without_mutants(suite: &[LoadedScenario]) -> Vec<&str> {
    suite
        .iter()
        .filter(|s| s.scenario.mutants.is_empty())
        .map(|s| s.id.as_str())
        .collect()
}

#[test]
fn every_shipped_scenario_has_a_wrong_fix_mutant() {
    let suite = shipped();
    assert!(!suite.is_empty(), "no scenarios found under scenarios/");
    let missing = without_mutants(&suite);
    assert!(
        missing.is_empty(),
        "scenarios without a wrong-fix mutant (add a plausible wrong fix under `mutants:`, one \
         that must not converge): {}",
        missing.join(", ")
    );
}

#[test]
fn a_scenario_without_mutants_is_named() {
    let mut suite = shipped();
    let stripped = ["postgres/rds-requires-tls", "storage/rwo-rollout-deadlock"];
    for s in &mut suite {
        if stripped.contains(&s.id.as_str()) {
            s.scenario.mutants.clear();
        }
    }
    assert_eq!(without_mutants(&suite), stripped);
}
