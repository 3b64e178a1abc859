//! What a drill writes, against what the region can hold, checked before any
//! fault (by the engine, in both runtimes, and by the drill-file loader).
//! A payload over the servers' `max_payload` has every publish refused; a
//! drill writing more than the stream's `maxBytes` evicts the stream's
//! oldest messages (the application's) under Limits retention; one writing
//! more than a zone's JetStream store fills it, and publishes fail.
//!
//! The figures are estimates: every message the workload publishes is
//! counted once (a retried publish carries the same `Nats-Msg-Id` and the
//! stream drops it), with its headers at their largest and the store's
//! per-record overhead, and without what the stream holds already.

use crate::api::{PartitionDrill, RegionMirror, Step, StorageType};

use super::{MAX_MEMORY_STORE, parse_quantity, producer_subject, zone_subjects};

/// nats-server's default `max_payload`; the zones' configuration sets none
/// (`server::server_config`), so every managed zone has this one. It bounds
/// a message's headers and body together.
pub const MAX_PAYLOAD: i64 = 1024 * 1024;

/// The drill's NATS headers at their largest: `NATS/1.0\r\n`,
/// `Nats-Msg-Id: nr-<writer, u32>-<counter, u64>\r\n` and the closing
/// `\r\n` are at most 61 bytes.
pub const HEADER_BYTES: i64 = 64;

/// A file store record beyond subject, headers and body: its 22-byte
/// header, the 4-byte header length and the 8-byte checksum.
const FILE_RECORD_BYTES: i64 = 34;
/// A memory store's accounting beyond subject, headers and body.
const MEMORY_RECORD_BYTES: i64 = 16;

/// How much a drill writes into the region's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Publishing phases (`produce`, `pause-consumer`, `build-backlog`).
    pub phases: i64,
    /// Messages stored in the stream every zone holds (the source stream
    /// and its mirrors, or with `sources` each zone's aggregate).
    pub messages: i64,
    /// Bytes each stored message takes, headers and overhead included.
    pub message_bytes: i64,
    /// `messages × message_bytes`.
    pub bytes: i64,
    /// With `sources`, what the busiest writer adds in its own zone's local
    /// stream on top of the aggregate; 0 for `mirror`.
    pub local_bytes: i64,
}

/// Counts what the drill's steps publish: every publishing phase publishes
/// `messagesPerPhase` from each writer: the source zone's writer, or with
/// `sources` every zone's (and the temporary zone's once it joined).
pub fn estimate(drill: &PartitionDrill, region: &RegionMirror) -> Estimate {
    let spec = &region.spec;
    let per_phase = drill.spec.workload.messages_per_phase;
    let mut writers = if spec.is_sources() {
        spec.zones.len() as i64
    } else {
        1
    };
    let (mut phases, mut messages) = (0i64, 0i64);
    for step in drill.spec.steps() {
        match step {
            Step::Produce | Step::PauseConsumer | Step::BuildBacklog => {
                phases += 1;
                messages = messages.saturating_add(writers.saturating_mul(per_phase));
            }
            Step::AddTemporaryZone if spec.is_sources() => writers += 1,
            _ => {}
        }
    }
    let subject = if spec.is_sources() {
        spec.zones
            .iter()
            .map(|z| producer_subject(&zone_subjects(spec, z)).len())
            .max()
            .unwrap_or_default()
    } else {
        producer_subject(&spec.stream.subjects).len()
    };
    let record = match spec.stream.storage {
        StorageType::File => FILE_RECORD_BYTES,
        StorageType::Memory => MEMORY_RECORD_BYTES,
    };
    let message_bytes = drill.spec.workload.payload_bytes + HEADER_BYTES + subject as i64 + record;
    let bytes = messages.saturating_mul(message_bytes);
    let local_bytes = if spec.is_sources() {
        phases
            .saturating_mul(per_phase)
            .saturating_mul(message_bytes)
    } else {
        0
    };
    Estimate {
        phases,
        messages,
        message_bytes,
        bytes,
        local_bytes,
    }
}

/// Refuses a drill whose messages the servers would refuse, or whose volume
/// would evict the stream's data or fill a zone's store; the message gives
/// the figures and what to lower.
pub fn check(drill: &PartitionDrill, region: &RegionMirror) -> Result<(), String> {
    let workload = &drill.spec.workload;
    let largest = workload.payload_bytes + HEADER_BYTES;
    if largest > MAX_PAYLOAD {
        return Err(format!(
            "workload.payloadBytes {} plus the drill's Nats-Msg-Id header (up to {HEADER_BYTES} bytes) exceeds the zones' max_payload of {MAX_PAYLOAD} bytes (nats-server's default, which the operator keeps): every publish would be refused; lower workload.payloadBytes to at most {}",
            workload.payload_bytes,
            MAX_PAYLOAD - HEADER_BYTES
        ));
    }
    let e = estimate(drill, region);
    let how = format!(
        "an estimate: {} publishing phase(s) of {} message(s) per writer, {} message(s) in all, each about {} bytes with headers and store overhead",
        e.phases, workload.messages_per_phase, e.messages, e.message_bytes
    );
    let lower = "lower workload.messagesPerPhase or workload.payloadBytes";
    let stream = &region.spec.stream;
    if let Some(max) = stream.max_bytes.filter(|m| *m >= 0)
        && e.bytes > max
    {
        return Err(format!(
            "the drill writes about {} into stream {} ({how}), whose maxBytes is {}: it would evict at least {} of what the stream held before the drill, application data included, and a full stream up to all of it; {lower}, or raise stream.maxBytes",
            human(e.bytes),
            stream.name,
            human(max),
            human(e.bytes - max),
        ));
    }
    // Every server holds at most one replica of each stream, so each
    // server of every managed zone stores the whole volume.
    let need = e.bytes.saturating_add(e.local_bytes);
    for zone in region.spec.zones.iter().filter(|z| z.external.is_none()) {
        let (limit, what) = match stream.storage {
            StorageType::File => match parse_quantity(&zone.storage.size) {
                Some(size) => (
                    size,
                    format!(
                        "its zones[].storage.size {} (the servers' max_file_store)",
                        zone.storage.size
                    ),
                ),
                None => continue,
            },
            StorageType::Memory => (
                MAX_MEMORY_STORE,
                "the servers' max_memory_store (stream.storage is Memory)".to_string(),
            ),
        };
        if need > limit {
            return Err(format!(
                "the drill writes about {} into each server of zone {} ({how}), more than {what}, {}: the store would fill and publishes fail, on top of what the zone stores already; {lower}, or raise zones[].storage.size",
                human(need),
                zone.name,
                human(limit),
            ));
        }
    }
    Ok(())
}

/// Bytes in binary units with one decimal, as `kubectl` users read sizes.
pub fn human(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes.abs() < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn region(spec: serde_json::Value) -> RegionMirror {
        RegionMirror::new("east", serde_json::from_value(spec).unwrap())
    }

    fn mirror(stream: serde_json::Value, size: &str) -> RegionMirror {
        let mut s = json!({"name": "EVENTS", "subjects": ["events.>"], "replicas": 1});
        for (k, v) in stream.as_object().unwrap() {
            s[k] = v.clone();
        }
        region(json!({
            "stream": s,
            "zones": [
                {"name": "a", "role": "source", "servers": 1, "storage": {"size": size}},
                {"name": "b", "role": "mirror", "servers": 1, "storage": {"size": size}},
            ],
        }))
    }

    fn drill(workload: serde_json::Value) -> PartitionDrill {
        PartitionDrill::new(
            "d",
            serde_json::from_value(json!({"regionRef": {"name": "east"}, "workload": workload}))
                .unwrap(),
        )
    }

    #[test]
    fn producer_subject_fills_wildcards() {
        assert_eq!(producer_subject(&["events.>".into()]), "events.drill");
        assert_eq!(producer_subject(&["orders.*.eu".into()]), "orders.drill.eu");
        assert_eq!(producer_subject(&["plain".into()]), "plain");
    }

    #[test]
    fn the_default_steps_publish_five_phases_from_each_writer() {
        let d = drill(json!({}));
        let e = estimate(&d, &mirror(json!({}), "1Gi"));
        // produce, pause-consumer, build-backlog, produce (cut), produce (joined).
        assert_eq!((e.phases, e.messages), (5, 5000));
        // 128 payload + 64 headers + "events.drill" + 34.
        assert_eq!(e.message_bytes, 128 + 64 + 12 + 34);
        assert_eq!(e.bytes, 5000 * 238);
        assert_eq!(e.local_bytes, 0);
        // Sources: three zones write, and the temporary zone joins for the last phase.
        let sources = region(json!({
            "topology": "sources",
            "stream": {"name": "EVENTS", "subjects": ["events.{zone}.>"], "replicas": 1},
            "zones": [
                {"name": "a", "role": "source", "servers": 1},
                {"name": "b", "role": "mirror", "servers": 1},
                {"name": "c", "role": "mirror", "servers": 1},
            ],
        }));
        let e = estimate(&d, &sources);
        assert_eq!(e.messages, 4 * 3 * 1000 + 4 * 1000);
        assert_eq!(e.local_bytes, 5 * 1000 * e.message_bytes);
    }

    #[test]
    fn the_default_drill_fits_the_default_region() {
        assert_eq!(check(&drill(json!({})), &mirror(json!({}), "1Gi")), Ok(()));
        // A stream limit well above what the drill writes, too.
        let r = mirror(json!({"maxBytes": 64 * 1024 * 1024}), "1Gi");
        assert_eq!(check(&drill(json!({})), &r), Ok(()));
    }

    #[test]
    fn a_payload_over_max_payload_is_refused_with_the_largest_that_fits() {
        let d = drill(json!({"payloadBytes": 1048576}));
        let e = check(&d, &mirror(json!({}), "100Gi")).unwrap_err();
        assert!(e.contains("max_payload of 1048576 bytes"), "{e}");
        assert!(e.contains("at most 1048512"), "{e}");
        let fits = drill(json!({"payloadBytes": 1048512, "messagesPerPhase": 1}));
        assert_eq!(check(&fits, &mirror(json!({}), "100Gi")), Ok(()));
    }

    #[test]
    fn a_drill_larger_than_max_bytes_is_refused_with_the_figures() {
        // 5 × 200 000 × (4096 + 64 + 12 + 34) bytes ≈ 3.9 GiB into 1 GiB.
        let d = drill(json!({"messagesPerPhase": 200000, "payloadBytes": 4096}));
        let r = mirror(json!({"maxBytes": 1i64 << 30}), "100Gi");
        let e = check(&d, &r).unwrap_err();
        assert!(e.contains("about 3.9 GiB into stream EVENTS"), "{e}");
        assert!(e.contains("maxBytes is 1.0 GiB"), "{e}");
        assert!(e.contains("evict at least 2.9 GiB"), "{e}");
        assert!(e.contains("an estimate: 5 publishing phase(s)"), "{e}");
        assert!(e.contains("lower workload.messagesPerPhase"), "{e}");
        // Unlimited (-1 or absent) is never exceeded.
        assert_eq!(check(&d, &mirror(json!({"maxBytes": -1}), "100Gi")), Ok(()));
    }

    #[test]
    fn a_drill_larger_than_a_zones_store_is_refused_with_the_figures() {
        let d = drill(json!({"messagesPerPhase": 200000, "payloadBytes": 4096}));
        let e = check(&d, &mirror(json!({}), "2Gi")).unwrap_err();
        assert!(
            e.contains("about 3.9 GiB into each server of zone a"),
            "{e}"
        );
        assert!(
            e.contains("zones[].storage.size 2Gi (the servers' max_file_store), 2.0 GiB"),
            "{e}"
        );
        assert_eq!(check(&d, &mirror(json!({}), "4Gi")), Ok(()));
        // A memory stream is bounded by max_memory_store instead.
        let mem = mirror(json!({"storage": "Memory"}), "100Gi");
        let e = check(&d, &mem).unwrap_err();
        assert!(e.contains("max_memory_store"), "{e}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(1 << 30), "1.0 GiB");
        assert_eq!(human((12 << 30) / 10), "1.2 GiB");
    }
}
