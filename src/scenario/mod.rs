//! The scenario format: pure data, its loader, diagnostics and JSON Schema.
//!
//! Nothing here talks to a cluster or a database; the runner and the CLI build on it.

mod duration;
mod faults;
mod gitops;
mod model;

pub use duration::{Duration, DurationError};
pub use faults::*;
pub use gitops::*;
pub use model::*;
mod reports;
mod shape;
pub use reports::*;
pub use shape::*;
mod diagnostics;
mod files;
pub mod kinds;
mod loader;

pub use diagnostics::{LoadError, Problem, render};
pub use files::FileError;
pub use loader::{LoadedScenario, NON_SCENARIO_DIRS, discover, is_dns_label, load, load_suite};
pub mod operators;
pub mod schema;
