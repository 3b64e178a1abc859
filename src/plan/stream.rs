//! The region's streams as async-nats configs, bound through JetStream
//! domains. The mirror topology: the source stream in the source zone and one
//! mirror per mirror zone. The sources topology (every zone writes): a local
//! stream per zone, capturing that zone's subjects, and in every zone an
//! aggregate sourcing every zone's local stream (docs/architecture.md, facts
//! for the `sources` topology).

use std::time::Duration;

use async_nats::jetstream::stream::{
    Config, DiscardPolicy, External, RetentionPolicy, Source, StorageType,
};

use crate::api::{self, RegionMirrorSpec, Topology, ZoneSpec};

/// The `external.api` of a mirror whose source lives in JetStream domain
/// `domain`: a subject prefix, never a URL (docs/architecture.md, fact 1).
pub fn api_prefix(domain: &str) -> String {
    format!("$JS.{domain}.API")
}

/// The source stream, created in the source zone.
pub fn source_stream_config(spec: &RegionMirrorSpec) -> Config {
    let servers = spec.source_zone().map(|z| z.servers);
    Config {
        subjects: spec.stream.subjects.clone(),
        duplicate_window: duplicate_window(spec),
        ..common(spec, servers)
    }
}

/// Stands for the zone's name in `stream.subjects` of the sources topology:
/// streams with the same subjects in every zone would each capture every
/// zone's publishes, since subject interest crosses the leafnode links.
pub const ZONE_TOKEN: &str = "{zone}";

/// The subjects `zone`'s local stream captures: `stream.subjects` with
/// [`ZONE_TOKEN`] replaced by the zone's name.
pub fn zone_subjects(spec: &RegionMirrorSpec, zone: &ZoneSpec) -> Vec<String> {
    spec.stream
        .subjects
        .iter()
        .map(|s| s.replace(ZONE_TOKEN, &zone.name))
        .collect()
}

/// A concrete subject under the stream's first subject filter, what a
/// drill's producer publishes on: `events.>` becomes `events.drill`,
/// `orders.*` becomes `orders.drill`.
pub fn producer_subject(subjects: &[String]) -> String {
    let first = subjects.first().map(String::as_str).unwrap_or("drill");
    first
        .split('.')
        .map(|t| if t == "*" || t == ">" { "drill" } else { t })
        .collect::<Vec<_>>()
        .join(".")
}

/// The name of zone `zone`'s local stream: `<stream.name>-<zone>`.
pub fn local_stream_name(spec: &RegionMirrorSpec, zone: &str) -> String {
    format!("{}-{zone}", spec.stream.name)
}

/// The sources topology: `zone`'s own writes, in `zone`.
pub fn local_stream_config(spec: &RegionMirrorSpec, zone: &ZoneSpec) -> Config {
    Config {
        name: local_stream_name(spec, &zone.name),
        subjects: zone_subjects(spec, zone),
        duplicate_window: duplicate_window(spec),
        ..common(spec, Some(zone.servers))
    }
}

/// The sources topology: the aggregate in `zone`, named `stream.name`,
/// sourcing every zone's local stream (its own directly, the others through
/// their domains' API). Unlike a mirror it can be edited in place, so a zone
/// added or removed is one update. Its duplicate window drops a message a
/// source delivers twice (sourced messages keep their `Nats-Msg-Id`).
pub fn aggregate_stream_config(spec: &RegionMirrorSpec, zone: &ZoneSpec) -> Config {
    let sources = spec
        .zones
        .iter()
        .map(|from| Source {
            name: local_stream_name(spec, &from.name),
            external: (from.name != zone.name).then(|| External {
                api_prefix: api_prefix(from.domain()),
                delivery_prefix: None,
            }),
            ..Default::default()
        })
        .collect();
    Config {
        sources: Some(sources),
        duplicate_window: duplicate_window(spec),
        ..common(spec, Some(zone.servers))
    }
}

/// What a stream is to the zone holding it, which decides how it is
/// provisioned and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// The mirror topology's writable stream, in the source zone.
    Source,
    /// A mirror of the source stream: created once the source exists, never
    /// edited in place (fact 6).
    Mirror,
    /// The sources topology: the zone's own writes.
    Local,
    /// The sources topology: every zone's local stream, sourced.
    Aggregate,
}

/// One stream a zone holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneStream {
    pub kind: StreamKind,
    pub config: Config,
}

/// The streams `zone` holds under the spec's topology, in the order they are
/// provisioned: the source stream or a mirror; or the local stream and then
/// the aggregate. Empty for a mirror zone of a region without a source zone.
pub fn zone_streams(spec: &RegionMirrorSpec, zone: &ZoneSpec) -> Vec<ZoneStream> {
    let stream = |kind, config| ZoneStream { kind, config };
    match spec.topology {
        Topology::Sources => vec![
            stream(StreamKind::Local, local_stream_config(spec, zone)),
            stream(StreamKind::Aggregate, aggregate_stream_config(spec, zone)),
        ],
        Topology::Mirror if zone.is_source() => {
            vec![stream(StreamKind::Source, source_stream_config(spec))]
        }
        Topology::Mirror => spec
            .source_zone()
            .map(|source| {
                let config = mirror_stream_config(spec, source.domain(), zone);
                stream(StreamKind::Mirror, config)
            })
            .into_iter()
            .collect(),
    }
}

fn duplicate_window(spec: &RegionMirrorSpec) -> Duration {
    let max_age = spec.stream.max_age();
    let window = spec.stream.duplicate_window();
    // The server refuses a duplicate window longer than the maximum age.
    if !max_age.is_zero() && window > max_age {
        max_age
    } else {
        window
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
        max_age: s.max_age(),
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
