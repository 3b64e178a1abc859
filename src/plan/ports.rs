//! The ports a managed zone's servers listen on (in a cluster, the container
//! and Service ports). Defined once: the children, the Toxiproxy upstreams and
//! the NetworkPolicy cut all refer to them.

pub const CLIENT_PORT: u16 = 4222;
pub const CLUSTER_PORT: u16 = 6222;
pub const MONITOR_PORT: u16 = 8222;
pub const LEAFNODE_PORT: u16 = 7422;
