//! The seam between the engine and wherever zones run (local processes or
//! StatefulSets): how to reach each zone, and how to add and remove a zone.

use futures::future::BoxFuture;

use crate::api::{ZoneRole, ZoneSpec};
use crate::nats::connect::ZoneEndpoint;

/// How the engine reaches one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneAccess {
    pub role: ZoneRole,
    /// Name, client URLs, credentials and the domain the zone must report.
    pub endpoint: ZoneEndpoint,
}

impl ZoneAccess {
    pub fn name(&self) -> &str {
        &self.endpoint.zone
    }
}

pub trait Runtime: Send + Sync {
    /// Every zone of the region as it is now, temporary zones included.
    fn zones(&self) -> Vec<ZoneAccess>;

    /// Start a new mirror zone wired to the source like the others.
    fn add_zone<'a>(&'a self, zone: &'a ZoneSpec) -> BoxFuture<'a, Result<ZoneAccess, String>>;

    /// Stop and forget a zone started by `add_zone`.
    fn remove_zone<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>>;
}
