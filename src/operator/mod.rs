//! The Kubernetes operator: controllers for RegionMirror and PartitionDrill.
//! Pipeline per object: observe → validate → build (pure) → apply (SSA) → report (status).

pub mod context;
pub mod error;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod region;
pub mod run;
pub mod shutdown;
pub mod ssa;
/// The region's Toxiproxy (`spec.leafnode.proxy: toxiproxy`).
pub mod toxiproxy;

pub use context::{Context, OperatorSettings, ZoneAccess, ZoneUrls};
pub use error::Error;
pub use metrics::Metrics;
pub mod drill;
