//! Random mutations of valid bodies never panic.
