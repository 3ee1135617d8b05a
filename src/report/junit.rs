//! JUnit XML for CI dashboards, with the same messages as the text report.

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::text::{failure_details, timeline};
use crate::run::outcome::{ScenarioOutcome, Settle, Verdict};

/// The JUnit report could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("failed to serialize the junit report")]
pub struct JunitError(#[source] quick_junit::SerializeError);

/// A JUnit report could not be read or written back.
#[derive(Debug, thiserror::Error)]
pub enum JunitRewriteError {
    /// The text is not a JUnit report.
    #[error("failed to read the junit report")]
    Read(#[source] quick_junit::DeserializeError),
    /// Writing it back failed.
    #[error("failed to serialize the junit report")]
    Write(#[source] quick_junit::SerializeError),
}

/// Gives each skipped test case of a JUnit report (a test runner's, such as nextest's with
/// `junit.report-skipped`) whose name is in `reasons` that reason as its skip message: test
/// runners only know that a trial was ignored, not why. Returns the new text and how many test
/// cases got a reason.
///
/// # Errors
/// Fails when `xml` is not a JUnit report.
pub fn add_skip_reasons(
    xml: &str,
    reasons: &std::collections::BTreeMap<String, String>,
) -> Result<(String, usize), JunitRewriteError> {
    let mut report = Report::deserialize_from_str(xml).map_err(JunitRewriteError::Read)?;
    let mut count = 0;
    for suite in &mut report.test_suites {
        for case in &mut suite.test_cases {
            let Some(reason) = reasons.get(case.name.as_str()) else {
                continue;
            };
            if let TestCaseStatus::Skipped { message, .. } = &mut case.status {
                *message = Some(reason.as_str().into());
                count += 1;
            }
        }
    }
    let text = report.to_string().map_err(JunitRewriteError::Write)?;
    Ok((text, count))
}

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
            recovery_properties(&mut case, o);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(JunitError)
}

/// The recovery figures (seconds of cluster time) and the timeline report as test case
/// properties: `time-to-symptom`, `time-to-converge`, `settle` (`held` or `broke`),
/// `settle-seconds`, `report`.
fn recovery_properties(case: &mut TestCase, o: &ScenarioOutcome) {
    let r = &o.recovery;
    let seconds = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64());
    if let Some(d) = r.time_to_symptom {
        case.add_property(Property::new("time-to-symptom", seconds(d)));
    }
    if let Some(d) = r.time_to_converge {
        case.add_property(Property::new("time-to-converge", seconds(d)));
    }
    if let Some(s) = r.settle {
        let (held, d) = match s {
            Settle::Held(d) => ("held", d),
            Settle::Broke(d) => ("broke", d),
        };
        case.add_property(Property::new("settle", held));
        case.add_property(Property::new("settle-seconds", seconds(d)));
    }
    if let Some(path) = &o.report {
        case.add_property(Property::new("report", path.display().to_string()));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn skipped_cases_get_their_reasons_and_others_are_kept() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" skipped="2" failures="0" errors="0">
    <testsuite name="relapse::scenarios" tests="3" skipped="2" errors="0" failures="0">
        <testcase name="k3d::a/b" classname="relapse::scenarios" time="0.000">
            <skipped message="Skipped: test does not match the run-ignored option"/>
        </testcase>
        <testcase name="k3d::a/c" classname="relapse::scenarios" time="0.000">
            <skipped message="Skipped: test does not match the run-ignored option"/>
        </testcase>
        <testcase name="sim::a/b" classname="relapse::scenarios" time="1.000">
        </testcase>
    </testsuite>
</testsuites>
"#;
        let reasons = std::collections::BTreeMap::from([
            (
                "k3d::a/b".to_owned(),
                "no Docker daemon answers at unix:///var/run/docker.sock & <k3d>".to_owned(),
            ),
            (
                "sim::a/b".to_owned(),
                "not skipped, so not changed".to_owned(),
            ),
        ]);
        let (text, count) = super::add_skip_reasons(xml, &reasons).unwrap();
        assert_eq!(count, 1);
        assert!(
            text.contains(r#"<skipped message="no Docker daemon answers at unix:///var/run/docker.sock &amp; &lt;k3d&gt;"/>"#),
            "{text}"
        );
        assert!(
            text.contains("Skipped: test does not match the run-ignored option"),
            "{text}"
        );
        assert!(!text.contains("not skipped, so not changed"), "{text}");
        assert!(super::add_skip_reasons("not xml", &reasons).is_err());
    }

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
