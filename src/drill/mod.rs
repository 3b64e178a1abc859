//! The drill engine: steps, traffic, checks and the report. Independent of
//! Kubernetes; a runtime gives access to zones and a fault backend cuts them.

pub mod checker;
pub mod record;
