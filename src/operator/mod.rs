//! The Kubernetes operator: controllers for RegionMirror and PartitionDrill.
//! Pipeline per object: observe → validate → build (pure) → apply (SSA) → report (status).

/// The one field manager for everything the operator writes, status included.
pub const FIELD_MANAGER: &str = "natsregion";

/// Labels on every child object.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "natsregion";
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const REGION: &str = "natsregion.io/region";
    pub const ZONE: &str = "natsregion.io/zone";
    pub const DRILL: &str = "natsregion.io/drill";
}

pub mod context;
pub mod error;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod region;
pub mod run;
/// The region's Toxiproxy (`spec.leafnode.proxy: toxiproxy`).
pub mod toxiproxy;

pub use context::{Context, OperatorSettings, ZoneAccess, ZoneUrls};
pub use error::Error;
pub use metrics::Metrics;
pub mod drill;
