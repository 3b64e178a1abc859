//! Talking to the zones over NATS: connect, provision the source stream and the
//! mirrors, and read what the region looks like from both sides of each link.
//!
//! Only the apply and report steps of the pipeline live here; the stream
//! configurations themselves come from `crate::plan`.

pub(crate) mod api;
pub mod connect;
pub mod provision;
pub mod resume;
pub mod state;

pub use connect::{ConnectError, ConnectSettings, ZoneClient, ZoneEndpoint, connect};
pub use provision::{
    Outcome, ProvisionError, check_stream_name, ensure_mirror, ensure_source_stream,
    ensure_zone_stream, recreate_mirror,
};
pub use state::{
    LocalStream, MirrorView, RegionState, RegionSummary, SourceView, SourcesLayout, StateError,
    SyncTimeout, ZoneProbe, last_seq, mirror_view, read_region, read_sources_region, sourced_seq,
    wait_until_in_sync,
};
