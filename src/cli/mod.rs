//! Command-line front ends that tie the library together (the binary stays thin).

pub mod check;
pub mod cluster_drill;
pub mod drill_file;
pub mod junit;
pub mod local_drill;
pub mod output;
pub mod progress;
