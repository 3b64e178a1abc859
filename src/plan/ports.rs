//! The ports a managed zone's servers listen on (in a cluster, the container
//! and Service ports). Defined once: the children, the Toxiproxy upstreams and
//! the NetworkPolicy cut all refer to them.

pub const CLIENT_PORT: u16 = 4222;
pub const CLUSTER_PORT: u16 = 6222;
pub const MONITOR_PORT: u16 = 8222;
pub const LEAFNODE_PORT: u16 = 7422;
/// The prometheus-nats-exporter sidecar's (only with the operator's
/// `--nats-exporter-image`; the NATS chart's port).
pub const EXPORTER_PORT: u16 = 7777;
