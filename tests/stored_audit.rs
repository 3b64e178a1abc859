//! The stored-stream audit against real local zones: a synced source and
//! mirror audit clean, and messages removed from the mirror's storage after
//! the fact are named by sequence and id in that zone only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use natsregion::api::RegionMirrorSpec;
use natsregion::cli::local_drill::LocalRuntime;
use natsregion::drill::audit::{AuditError, StoredAuditResult, audit_zone};
use natsregion::drill::checker::SentLog;
use natsregion::drill::producer::{Producer, ProducerSettings};
use natsregion::drill::runtime::Runtime;
use natsregion::fault::DirectNetwork;
use natsregion::local::{LocalRegion, LocalRegionOptions};
use natsregion::nats::connect::{ConnectSettings, ZoneClient, connect};
use natsregion::nats::provision::{ensure_mirror, ensure_source_stream};
use natsregion::nats::state::wait_until_in_sync;
use natsregion::plan::{mirror_stream_config, source_stream_config};

const STREAM: &str = "EVENTS";
const WRITER: u32 = 7;
const LIMIT: Duration = Duration::from_secs(60);

/// A source zone `a` and a mirror zone `b` of one server each, both streams
/// created; the runtime is returned so the test can stop the region.
async fn region() -> (LocalRuntime, ZoneClient, ZoneClient) {
    let spec: RegionMirrorSpec = serde_json::from_value(serde_json::json!({
        "stream": { "name": STREAM, "subjects": ["events.>"], "replicas": 1 },
        "leafnode": { "reconnectIntervalSeconds": 1 },
        "zones": [
            { "name": "a", "role": "source", "servers": 1 },
            { "name": "b", "role": "mirror", "servers": 1 }
        ],
    }))
    .unwrap();
    let local = LocalRegion::start(
        &spec,
        Arc::new(DirectNetwork),
        LocalRegionOptions::default(),
    )
    .await
    .expect("region starts");
    let source_domain = local.source_zone().domain().to_string();
    let runtime = LocalRuntime::new(local);
    let zones = runtime.zones();
    let settings = ConnectSettings::default();
    let a = connect(&zones[0].endpoint, &settings).await.expect("a");
    let b = connect(&zones[1].endpoint, &settings).await.expect("b");
    ensure_source_stream(&a.js, &source_stream_config(&spec), 1)
        .await
        .expect("source stream");
    let mirror = mirror_stream_config(&spec, &source_domain, spec.zone("b").unwrap());
    ensure_mirror(&b.js, &mirror, 1)
        .await
        .expect("mirror stream");
    (runtime, a, b)
}

fn producer(zone: &ZoneClient) -> Producer {
    Producer::new(
        zone.client.clone(),
        zone.js.clone(),
        Arc::new(std::sync::Mutex::new(SentLog::new(WRITER, 128))),
        ProducerSettings {
            subject: "events.audit".into(),
            payload_bytes: 128,
            rate_per_second: 0,
            window: 512,
        },
    )
}

async fn publish_foreign(js: &jetstream::Context, subject: &str, n: u64) {
    for i in 0..n {
        js.publish(subject.to_string(), format!("not the drill's {i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

async fn audit(zone: &ZoneClient, from_seq: u64, log: &SentLog) -> StoredAuditResult {
    audit_zone(&zone.zone, &zone.js, STREAM, from_seq, log, LIMIT)
        .await
        .unwrap_or_else(|e| panic!("audit of zone {}: {e}", zone.zone))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_removed_from_the_mirrors_storage_are_named_there_only() {
    let (runtime, a, b) = region().await;
    // Earlier traffic: the run starts after it, at from_seq.
    publish_foreign(&a.js, "events.before", 25).await;
    let from_seq = 26;
    let p = producer(&a);
    let first = p.publish(0, 1000, &|_| {}).await;
    // Someone else's messages in the middle of the run.
    publish_foreign(&a.js, "events.other", 5).await;
    let second = p.publish(1, 1000, &|_| {}).await;
    assert_eq!((first.acked, second.acked), (1000, 1000));
    let log = p.log().lock().unwrap().clone();

    wait_until_in_sync(&a.js, &[&b.js], STREAM, Duration::from_secs(20))
        .await
        .expect("mirror catches up");
    for zone in [&a, &b] {
        let r = audit(zone, from_seq, &log).await;
        assert!(r.clean(), "zone {}: {r:?}", zone.zone);
        assert_eq!(
            (r.expected, r.stored_from_run, r.foreign, r.before_run),
            (2000, 2005, 5, 25),
            "zone {}: {r:?}",
            zone.zone
        );
        assert_eq!((r.messages, r.first_seq, r.last_seq), (2030, 1, 2030));
    }

    // One early, one in the middle, and the run's very last message.
    let victims: Vec<(u64, String)> = [0usize, 1234, 1999]
        .iter()
        .map(|&i| {
            let (id, seq) = log.iter().nth(i).expect("published");
            (seq, id.to_string())
        })
        .collect();
    let mirror = b.js.get_stream(STREAM).await.expect("mirror stream");
    for (seq, _) in &victims {
        let deleted = mirror
            .delete_message(*seq)
            .await
            .expect("the mirror deletes a stored message");
        assert!(deleted);
    }

    // Deleted: gaps in b's stored sequences (the last one too: last_seq
    // stays), so removed from b, with ids and sequences, not lost.
    let r = audit(&b, from_seq, &log).await;
    assert!(!r.clean());
    assert_eq!(
        (r.removed, r.missing, r.altered, r.added),
        (3, 0, 0, 0),
        "{r:?}"
    );
    let (seqs, ids): (Vec<u64>, Vec<String>) = victims.iter().cloned().unzip();
    assert_eq!((&r.removed_seqs, &r.removed_ids), (&seqs, &ids));
    assert_eq!((r.messages, r.stored_from_run), (2027, 2002));
    assert_eq!(r.before_run, 25);
    eprintln!("mirror audit: {}", serde_json::to_string(&r).unwrap());

    let source = audit(&a, from_seq, &log).await;
    assert!(source.clean(), "{source:?}");
    assert_eq!(source.stored_from_run, 2005);

    // The audit says which zone has no such stream, and gives up on time.
    let missing = audit_zone("b", &b.js, "NOPE", 1, &log, LIMIT).await;
    assert!(
        matches!(missing, Err(AuditError::StreamMissing { .. })),
        "{missing:?}"
    );
    let hurried = audit_zone("b", &b.js, STREAM, 1, &log, Duration::ZERO).await;
    assert!(
        matches!(hurried, Err(AuditError::Timeout { .. })),
        "{hurried:?}"
    );

    runtime.into_inner().stop().await.expect("region stops");
}

/// `cargo test --test stored_audit -- --ignored --nocapture`; size with
/// `NATSREGION_AUDIT_MESSAGES` (default 100 000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn audit_speed() {
    let n: u64 = std::env::var("NATSREGION_AUDIT_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (runtime, a, b) = region().await;
    let p = producer(&a);
    let published = p.publish(0, n, &|_| {}).await;
    let log = p.log().lock().unwrap().clone();
    wait_until_in_sync(&a.js, &[&b.js], STREAM, Duration::from_secs(120))
        .await
        .expect("mirror catches up");
    for zone in [&a, &b] {
        let start = Instant::now();
        let r = audit(zone, 1, &log).await;
        let secs = start.elapsed().as_secs_f64();
        assert!(r.clean(), "{r:?}");
        assert_eq!(r.expected, published.acked);
        eprintln!(
            "zone {}: audited {} stored messages in {secs:.2} s ({:.0} msgs/s); published at {:.0} msgs/s",
            zone.zone,
            r.stored_from_run,
            r.stored_from_run as f64 / secs,
            published.rate()
        );
    }
    runtime.into_inner().stop().await.expect("region stops");
}
