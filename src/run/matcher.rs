//! The partial-tree matcher expectations use; it lives at the crate root ([`crate::matcher`])
//! because stand-in programs match their configuration with the same rules.

pub use crate::matcher::*;
