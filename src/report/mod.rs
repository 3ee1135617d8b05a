//! Reports of scenario outcomes: the human summary and failure details, and JUnit XML for CI;
//! and the scenario catalogue ([`catalog`]).

pub mod catalog;
mod junit;
mod text;

pub use junit::{JunitError, JunitRewriteError, add_skip_reasons, junit_xml};
pub use text::{failure_details, human_duration, summary_table, timeline};
