//! The region's stream as async-nats configs: the source stream in the source
//! zone and one mirror per mirror zone, bound through JetStream domains.

use std::time::Duration;

use async_nats::jetstream::stream::{
    Config, DiscardPolicy, External, RetentionPolicy, Source, StorageType,
};

use crate::api::{self, RegionMirrorSpec, ZoneSpec};

/// The `external.api` of a mirror whose source lives in JetStream domain
/// `domain`: a subject prefix, never a URL (docs/architecture.md, fact 1).
pub fn api_prefix(domain: &str) -> String {
    format!("$JS.{domain}.API")
}

/// The source stream, created in the source zone.
pub fn source_stream_config(spec: &RegionMirrorSpec) -> Config {
    let servers = spec.source_zone().map(|z| z.servers);
    let s = &spec.stream;
    let max_age = Duration::from_secs(s.max_age_seconds.unwrap_or(0).max(0) as u64);
    let mut duplicate_window = Duration::from_secs(s.duplicate_window_seconds.max(1) as u64);
    // The server refuses a duplicate window longer than the maximum age.
    if !max_age.is_zero() && duplicate_window > max_age {
        duplicate_window = max_age;
    }
    Config {
        subjects: s.subjects.clone(),
        duplicate_window,
        ..common(spec, servers)
    }
}

/// The mirror of the source stream in `zone`, whose source lives in JetStream
/// domain `source_domain`. A mirror cannot be edited in place: any change to
/// this config means deleting and recreating the mirror (docs/architecture.md fact 6).
pub fn mirror_stream_config(
    spec: &RegionMirrorSpec,
    source_domain: &str,
    zone: &ZoneSpec,
) -> Config {
    Config {
        mirror: Some(Source {
            name: spec.stream.name.clone(),
            external: Some(External {
                api_prefix: api_prefix(source_domain),
                delivery_prefix: None,
            }),
            ..Default::default()
        }),
        ..common(spec, Some(zone.servers))
    }
}

fn common(spec: &RegionMirrorSpec, zone_servers: Option<i32>) -> Config {
    let s = &spec.stream;
    let replicas = zone_servers
        .map_or(s.replicas, |n| s.replicas.min(n))
        .max(1);
    Config {
        name: s.name.clone(),
        storage: match s.storage {
            api::StorageType::File => StorageType::File,
            api::StorageType::Memory => StorageType::Memory,
        },
        num_replicas: replicas as usize,
        retention: match s.retention {
            api::Retention::Limits => RetentionPolicy::Limits,
            api::Retention::WorkQueue => RetentionPolicy::WorkQueue,
            api::Retention::Interest => RetentionPolicy::Interest,
        },
        max_age: Duration::from_secs(s.max_age_seconds.unwrap_or(0).max(0) as u64),
        max_bytes: match s.max_bytes {
            None | Some(0) => -1,
            Some(n) => n,
        },
        max_messages: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        discard: DiscardPolicy::Old,
        ..Default::default()
    }
}
