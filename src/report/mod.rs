//! Reports of scenario outcomes: the human summary and failure details, JUnit XML for CI, the
//! JSON summary ([`json`]) and the timeline report ([`html`]); and the scenario catalogue
//! ([`catalog`]).

pub mod catalog;
pub mod html;
pub mod json;
mod junit;
mod text;

pub use html::{ReportError, write_trial_report};
pub use json::json_summary;
pub use junit::{JunitError, JunitRewriteError, add_skip_reasons, junit_xml};
pub use text::{failure_details, human_duration, summary_table, timeline};
