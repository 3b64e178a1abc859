//! Command-line front ends that tie the library together (the binary stays thin).

pub mod drill_file;
pub mod local_drill;
pub mod progress;
