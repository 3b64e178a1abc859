//! The drill engine: steps, traffic, checks and the report. Independent of
//! Kubernetes; a runtime gives access to zones and a fault backend cuts them.

pub mod audit;
pub mod campaign;
pub mod checker;
pub mod claims;
pub mod consumer;
pub mod engine;
pub mod in_sync;
pub mod producer;
pub mod record;
pub mod report;
pub mod retry;
pub mod runtime;
pub mod sent;
pub mod timeline;
