//! Fault backends: how a drill cuts zones apart, heals them, proves the cut and
//! lists what is left behind. The same seam also decides how zones are placed
//! and linked, because a cut is only real if the link runs where it can be cut
//! (through a proxy, or between network namespaces).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::api::{FaultRecord, Toxic};

pub mod deadline;
pub mod leaflinks;
pub mod netns;
pub mod networkpolicy;
pub mod toxiproxy;

pub use netns::NetnsBackend;
pub use toxiproxy::ToxiproxyBackend;

/// Where a zone's servers run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneHost {
    /// Network namespace to start the servers in; `None` is the host's own.
    pub netns: Option<String>,
    /// Address the zone's servers bind and are reached at.
    pub ip: IpAddr,
}

impl ZoneHost {
    pub fn loopback() -> Self {
        Self {
            netns: None,
            ip: IpAddr::from([127, 0, 0, 1]),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("toxiproxy API {op} failed: {message}")]
    Toxiproxy { op: String, message: String },
    #[error("packet filter command `{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("the {backend} backend needs {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("zone {0} is not known to the fault backend")]
    UnknownZone(String),
}

/// The record of a fault injected at `injected` that must be gone by `injected + deadline`.
pub fn fault_record(
    id: String,
    backend: &str,
    zones: &[String],
    injected: jiff::Timestamp,
    deadline: Duration,
) -> FaultRecord {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let deadline_at = deadline::at(injected, deadline);
    FaultRecord {
        id,
        backend: backend.to_string(),
        zones: zones.to_vec(),
        injected_at: Time(injected),
        deadline: Time(deadline_at),
        healed_at: None,
        intent: false,
    }
}

/// How zones are placed and how mirror zones reach the source zone's leafnode listener.
pub trait Network: Send + Sync {
    /// Prepare (if needed) and return where a zone's servers run. Called once per
    /// zone before its servers start, temporary zones included.
    fn prepare_zone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<ZoneHost, FaultError>>;

    /// The address mirror zone `zone` dials to reach source server `source_server`
    /// whose leafnode listener is `upstream`. May create a proxy.
    fn leaf_route<'a>(
        &'a self,
        zone: &'a str,
        source_server: usize,
        upstream: SocketAddr,
    ) -> BoxFuture<'a, Result<SocketAddr, FaultError>>;

    /// What source server `source_server` advertises as its leafnode URL
    /// (`host:port`), or `None` to let it advertise its listen address.
    /// Remotes learn this address and redial it, so a proxy-based backend must
    /// advertise something that does not bypass the proxy (docs/architecture.md, fact 2).
    fn leaf_advertise(&self, source_server: usize, listen: SocketAddr) -> Option<String>;

    /// Whether mirror zones dial only the addresses [`Self::leaf_route`]
    /// gave them and never the ones they learn from the source's INFO
    /// (`ignore_discovered_servers`). A proxy-based backend wants this:
    /// what the source advertises leads nowhere, and each redial of it
    /// after a heal costs a reconnect interval before the proxy is tried.
    fn leaf_routes_only(&self) -> bool;
}

/// Cuts and heals the links between mirror zones and the source zone.
pub trait FaultBackend: Network {
    fn name(&self) -> &'static str;

    /// Cut `zones` (mirror zones) from the source zone. If `heal` is never
    /// called, the backend removes the fault after `deadline` while it lives,
    /// and the deadline written on the fault objects (`deadline`) lets the
    /// operator's reaper remove it once the backend is gone.
    fn cut<'a>(
        &'a self,
        zones: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Result<FaultRecord, FaultError>>;

    /// Remove the fault recorded in `record`, and anything else this backend injected.
    fn heal<'a>(&'a self, record: &'a FaultRecord) -> BoxFuture<'a, Result<(), FaultError>>;

    /// Data-plane probe across the cut: `Ok(true)` when `zone` can still open a
    /// leafnode connection to the source zone by any address it knows,
    /// including the ones it learns from the source's INFO.
    fn probe<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<bool, FaultError>>;

    /// Every fault object (disabled proxy, toxic, packet rule) still in place,
    /// described for a person. Empty after a proper heal.
    fn leftovers(&self) -> BoxFuture<'_, Result<Vec<String>, FaultError>>;

    /// Degrade `zone`'s link to the source zone with `toxics` (replacing any it
    /// had). `heal` removes them. Backends that cannot shape traffic refuse a
    /// non-empty list rather than ignore it, so a drill never reports results
    /// for conditions that were not applied.
    fn apply_toxics<'a>(
        &'a self,
        zone: &'a str,
        toxics: &'a [Toxic],
    ) -> BoxFuture<'a, Result<(), FaultError>> {
        let _ = zone;
        Box::pin(async move {
            if toxics.is_empty() {
                Ok(())
            } else {
                Err(FaultError::Unsupported {
                    backend: self.name(),
                    what: "the toxiproxy backend to apply toxics".into(),
                })
            }
        })
    }
}

/// A backend with no faults at all: zones on loopback, linked directly.
/// Used where a region runs without a drill.
pub struct DirectNetwork;

impl Network for DirectNetwork {
    fn prepare_zone<'a>(&'a self, _zone: &'a str) -> BoxFuture<'a, Result<ZoneHost, FaultError>> {
        Box::pin(async { Ok(ZoneHost::loopback()) })
    }
    fn leaf_route<'a>(
        &'a self,
        _zone: &'a str,
        _source_server: usize,
        upstream: SocketAddr,
    ) -> BoxFuture<'a, Result<SocketAddr, FaultError>> {
        Box::pin(async move { Ok(upstream) })
    }
    fn leaf_advertise(&self, _source_server: usize, _listen: SocketAddr) -> Option<String> {
        None
    }
    fn leaf_routes_only(&self) -> bool {
        false
    }
}
