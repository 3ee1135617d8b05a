//! JUnit XML for CI dashboards, with the same messages as the text report.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::text::{failure_details, timeline};
use crate::run::outcome::{ScenarioOutcome, Verdict};

/// The JUnit report could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("failed to serialize the junit report")]
pub struct JunitError(#[source] quick_junit::SerializeError);

/// Renders outcomes as JUnit XML: one test suite per backend, one test case per scenario.
///
/// # Errors
/// Fails only if the XML writer fails.
pub fn junit_xml(outcomes: &[ScenarioOutcome]) -> Result<String, JunitError> {
    let mut report = Report::new("relapse");
    let mut backends: Vec<_> = outcomes.iter().map(|o| o.backend).collect();
    backends.sort();
    backends.dedup();
    for backend in backends {
        let mut suite = TestSuite::new(backend.as_str());
        for o in outcomes.iter().filter(|o| o.backend == backend) {
            let status = match &o.verdict {
                Verdict::Passed => TestCaseStatus::success(),
                Verdict::Failed(f) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(format!("{}: {}", f.phase, f.summary));
                    s.set_type(f.phase.as_str());
                    s.set_description(failure_details(o, f));
                    s
                }
                Verdict::Ignored(reason) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(reason.as_str());
                    s
                }
            };
            let mut case = TestCase::new(o.trial_name(), status);
            case.set_classname(backend.as_str());
            case.set_time(o.wall_time());
            if !o.phases.is_empty() {
                case.set_system_out(format!("timeline: {}\n", timeline(o)));
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(JunitError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::tests::outcomes;

    #[test]
    fn junit_golden() {
        let xml = junit_xml(&outcomes()).unwrap();
        assert!(
            xml.contains(
                r#"<testsuites name="relapse" tests="3" skipped="1" failures="1" errors="0">"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<failure message="converge: did not converge within 10m" type="converge">"#
            ),
            "{xml}"
        );
        insta::assert_snapshot!("junit", xml);
    }
}
