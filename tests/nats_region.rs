//! `natsregion::nats` against real leafnode-linked zones started by the local
//! runtime: provisioning, its refusals, and the region state read from both
//! sides of the link.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::{Config, External, RetentionPolicy, Source};
use natsregion::api::{RegionMirrorSpec, RegionMirrorStatus};
use natsregion::fault::DirectNetwork;
use natsregion::local::{LocalRegion, LocalRegionOptions};
use natsregion::nats::{
    self, ConnectError, ConnectSettings, Outcome, ProvisionError, ZoneClient, ZoneEndpoint,
    ZoneProbe, ensure_mirror, ensure_source_stream, read_region, sourced_seq,
};
use natsregion::plan::{
    aggregate_stream_config, local_stream_config, mirror_stream_config, source_stream_config,
    zone_subjects,
};
use natsregion::testenv::support::poll;

fn spec(stream: &str, source_servers: i32, mirror_servers: i32, replicas: i32) -> RegionMirrorSpec {
    serde_json::from_value(serde_json::json!({
        "stream": { "name": stream, "subjects": [format!("{}.>", stream.to_lowercase())], "replicas": replicas },
        "leafnode": { "reconnectIntervalSeconds": 1 },
        "zones": [
            { "name": "src", "role": "source", "servers": source_servers },
            { "name": "mir", "role": "mirror", "servers": mirror_servers },
        ],
    }))
    .expect("spec")
}

async fn start(spec: &RegionMirrorSpec) -> LocalRegion {
    LocalRegion::start(spec, Arc::new(DirectNetwork), LocalRegionOptions::default())
        .await
        .expect("local region starts")
}

fn endpoint(region: &LocalRegion, zone: &str) -> ZoneEndpoint {
    let z = region.zone(zone).expect("zone");
    z.endpoint(
        &region.credentials().app,
        region.ca_pem().map(str::to_string),
    )
}

async fn connect(region: &LocalRegion, zone: &str) -> ZoneClient {
    nats::connect(
        &endpoint(region, zone),
        &ConnectSettings {
            client_name: format!("nats-region-test-{zone}"),
            ..Default::default()
        },
    )
    .await
    .expect("connect")
}

fn probes(region: &LocalRegion, clients: &[&ZoneClient]) -> Vec<ZoneProbe> {
    clients
        .iter()
        .map(|c| {
            let zone = region.zone(&c.zone).expect("zone");
            ZoneProbe::new(zone.spec(), c, zone.monitor_urls())
        })
        .collect()
}

async fn publish(client: &ZoneClient, subject: &str, n: usize) {
    for i in 0..n {
        client
            .js
            .publish(subject.to_string(), format!("m{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

fn mirror_of(name: &str, source: &str, api: &str, replicas: usize) -> Config {
    Config {
        name: name.to_string(),
        num_replicas: replicas,
        mirror: Some(Source {
            name: source.to_string(),
            external: Some(External {
                api_prefix: api.to_string(),
                delivery_prefix: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Source zone of 3 servers, mirror zone of 3, R3 streams: the healthy path.
#[tokio::test]
async fn provisioning_is_idempotent_and_state_reads_lag_from_both_sides() {
    let spec = spec("ORDERS", 3, 3, 3);
    let region = start(&spec).await;
    let (src, mir) = (connect(&region, "src").await, connect(&region, "mir").await);
    let source_cfg = source_stream_config(&spec);
    let mirror_cfg = mirror_stream_config(&spec, "src", spec.zone("mir").unwrap());

    assert_eq!(
        ensure_source_stream(&src.js, &source_cfg, 3).await.unwrap(),
        Outcome::Created
    );
    assert_eq!(
        ensure_mirror(&mir.js, &mirror_cfg, 3).await.unwrap(),
        Outcome::Created
    );
    assert_eq!(
        ensure_source_stream(&src.js, &source_cfg, 3).await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(
        ensure_mirror(&mir.js, &mirror_cfg, 3).await.unwrap(),
        Outcome::Unchanged
    );

    const N: usize = 200;
    publish(&src, "orders.created", N).await;
    let took = nats::wait_until_in_sync(&src.js, &[&mir.js], "ORDERS", Duration::from_secs(20))
        .await
        .expect("mirror catches up");
    assert!(took < Duration::from_secs(20));

    let state = read_region("ORDERS", &probes(&region, &[&src, &mir])).await;
    let (s, m) = (state.zone("src").unwrap(), state.zone("mir").unwrap());
    assert_eq!(
        (s.last_seq, m.last_seq),
        (Some(N as i64), Some(N as i64)),
        "{state:#?}"
    );
    assert_eq!(m.lag, Some(0), "{state:#?}");
    assert_eq!(s.lag, None, "the source has no lag");
    assert_eq!(m.error, None, "{state:#?}");
    assert!(m.active_millis.is_some_and(|a| a < 10_000), "{state:#?}");
    for z in [s, m] {
        assert_eq!(z.ready_servers, 3, "{state:#?}");
        assert_eq!(z.current_replicas, Some(3), "{state:#?}");
        assert!(
            z.stream_leader.is_some() && z.meta_leader.is_some(),
            "{state:#?}"
        );
        assert!(
            z.meta_leader.as_deref().unwrap().starts_with(&z.name),
            "meta leader of {} is one of its servers: {state:#?}",
            z.name
        );
    }
    assert_eq!(state.summary.mirrors_in_sync, 1);
    assert_eq!(state.summary.max_lag, Some(0));
    assert_eq!(state.summary.zones_ready, 2);
    let mut status = RegionMirrorStatus::default();
    state.apply_to(&mut status);
    assert_eq!(
        (
            status.zones_ready.as_deref(),
            status.mirrors_in_sync.as_deref(),
            status.max_lag,
            status.source_zone.as_deref()
        ),
        (Some("2/2"), Some("1/1"), Some(0), Some("src"))
    );

    // A mirror pointed elsewhere must be recreated, never edited or retried.
    let before = mir
        .js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .cached_info()
        .clone();
    let moved = mirror_of("ORDERS", "ORDERS", "$JS.elsewhere.API", 3);
    match ensure_mirror(&mir.js, &moved, 3).await.unwrap() {
        Outcome::NeedsRecreate { reason } => {
            assert!(
                reason.contains("mirror.external.api") && reason.contains("$JS.elsewhere.API"),
                "{reason}"
            );
        }
        other => panic!("expected NeedsRecreate, got {other:?}"),
    }
    let after = mir
        .js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(
        (after.created, &after.config.mirror),
        (before.created, &before.config.mirror),
        "the mirror was not touched"
    );
    assert_eq!(after.state.last_sequence, N as u64);

    // An editable source setting is changed in place, and then settles.
    let longer = Config {
        max_age: Duration::from_secs(3600),
        ..source_cfg.clone()
    };
    match ensure_source_stream(&src.js, &longer, 3).await.unwrap() {
        Outcome::Updated { fields } => {
            assert!(fields.contains(&"max_age".to_string()), "{fields:?}")
        }
        other => panic!("expected Updated, got {other:?}"),
    }
    assert_eq!(
        ensure_source_stream(&src.js, &longer, 3).await.unwrap(),
        Outcome::Unchanged
    );

    // An explicit recreate re-syncs every message.
    assert_eq!(
        nats::recreate_mirror(&mir.js, &mirror_cfg, 3)
            .await
            .unwrap(),
        Outcome::Recreated
    );
    nats::wait_until_in_sync(&src.js, &[&mir.js], "ORDERS", Duration::from_secs(20))
        .await
        .expect("recreated mirror re-syncs");
    assert_eq!(nats::last_seq(&mir.js, "ORDERS").await.unwrap(), N as u64);
    region.stop().await.unwrap();
}

/// Source zone of 3 servers, mirror zone of 1: every refusal, and a mirror
/// that can never sync.
#[tokio::test]
async fn broken_setups_are_refused_or_show_in_state() {
    let spec = spec("ORDERS", 3, 1, 1);
    let region = start(&spec).await;
    let (src, mir) = (connect(&region, "src").await, connect(&region, "mir").await);

    // Credentials and reachability fail with their own errors, and quickly.
    let mut wrong = endpoint(&region, "src");
    wrong.password = Some("not-the-password".into());
    let err = nats::connect(&wrong, &ConnectSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unauthorized { .. }), "{err}");
    let mut nobody = endpoint(&region, "src");
    nobody.urls = vec![format!(
        "nats://127.0.0.1:{}",
        natsregion::local::free_port([127, 0, 0, 1].into()).unwrap()
    )];
    let started = Instant::now();
    let settings = ConnectSettings {
        deadline: Duration::from_secs(1),
        ..Default::default()
    };
    let err = nats::connect(&nobody, &settings).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut elsewhere = endpoint(&region, "mir");
    elsewhere.domain = Some("src".into());
    let err = nats::connect(&elsewhere, &ConnectSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::DomainMismatch { .. }), "{err}");

    // Names the server would reject, and more replicas than servers.
    let err = ensure_source_stream(
        &src.js,
        &Config {
            name: "EVENTS.REGION".into(),
            ..Default::default()
        },
        3,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("stream.name"), "{err}");
    let err = ensure_mirror(&mir.js, &mirror_of("ORDERS", "ORDERS", "$JS.src.API", 3), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::ReplicasExceedServers {
                replicas: 3,
                servers: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("stream.replicas"), "{err}");

    // A mirror of a stream the source zone does not have.
    let err = ensure_mirror(&mir.js, &mirror_of("GHOST", "GHOST", "$JS.src.API", 1), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProvisionError::SourceStreamMissing { .. }),
        "{err}"
    );

    // A WorkQueue source cannot be mirrored without loss.
    let jobs = Config {
        name: "JOBS".into(),
        subjects: vec!["jobs.>".into()],
        retention: RetentionPolicy::WorkQueue,
        ..Default::default()
    };
    assert_eq!(
        ensure_source_stream(&src.js, &jobs, 3).await.unwrap(),
        Outcome::Created
    );
    let err = ensure_mirror(&mir.js, &mirror_of("JOBS", "JOBS", "$JS.src.API", 1), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProvisionError::SourceNotLimits { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("stream.retention must be Limits"),
        "{err}"
    );
    assert!(
        mir.js.get_stream("JOBS").await.is_err(),
        "no mirror was created"
    );

    // A mirror whose prefix names a domain nobody serves never syncs.
    assert_eq!(
        ensure_source_stream(&src.js, &source_stream_config(&spec), 3)
            .await
            .unwrap(),
        Outcome::Created
    );
    // With the zone size unknown (0), the server's own refusal is mapped.
    let err = ensure_mirror(&mir.js, &mirror_of("ORDERS", "ORDERS", "$JS.src.API", 3), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProvisionError::ReplicasUnplaceable { replicas: 3, .. }),
        "{err}"
    );

    let nope = mirror_of("ORDERS", "ORDERS", "$JS.nope.API", 1);
    let err = ensure_mirror(&mir.js, &nope, 1).await.unwrap_err();
    assert!(
        matches!(err, ProvisionError::SourceUnreachable { .. }),
        "{err}"
    );
    mir.js
        .create_stream(nope)
        .await
        .expect("the server itself accepts such a mirror");
    const N: usize = 50;
    publish(&src, "orders.created", N).await;
    let err = nats::wait_until_in_sync(&src.js, &[&mir.js], "ORDERS", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(
        (err.source_last_seq, err.mirror_last_seqs.as_slice()),
        (Some(N as u64), &[Some(0)][..])
    );

    let probes = probes(&region, &[&src, &mir]);
    let first = read_region("ORDERS", &probes).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = read_region("ORDERS", &probes).await;
    let (m1, m2) = (first.zone("mir").unwrap(), second.zone("mir").unwrap());
    assert_eq!(
        (m1.lag, m2.lag),
        (Some(N as i64), Some(N as i64)),
        "{second:#?}"
    );
    // The server's own mirror lag says 0 here; only the two-sided lag shows it.
    // Never having heard the source, the mirror has no `active` at all (the
    // server reports -1), so the reader says so in `error`.
    let active_grows = matches!((m1.active_millis, m2.active_millis), (Some(a), Some(b)) if b > a);
    let never_heard = m2.active_millis.is_none()
        && m2
            .error
            .as_deref()
            .is_some_and(|e| e.contains("never heard from the source"));
    assert!(
        active_grows || never_heard,
        "lag must come with a growing active or an error: {second:#?}"
    );
    assert_eq!(second.summary.mirrors_in_sync, 0);
    assert_eq!(second.summary.max_lag, Some(N as i64));
    assert_eq!(second.zone("mir").unwrap().ready_servers, 1, "{second:#?}");
    region.stop().await.unwrap();
}

fn sources_spec() -> RegionMirrorSpec {
    serde_json::from_value(serde_json::json!({
        "topology": "sources",
        "stream": { "name": "EV", "subjects": ["ev.{zone}.>"], "replicas": 1 },
        "leafnode": { "reconnectIntervalSeconds": 1 },
        "zones": [
            { "name": "a", "role": "source", "servers": 1 },
            { "name": "b", "role": "mirror", "servers": 1 },
            { "name": "c", "role": "mirror", "servers": 1 },
        ],
    }))
    .expect("spec")
}

/// `n` messages to `zone`'s own subject, each with a `Nats-Msg-Id` of its zone and index.
async fn publish_own(client: &ZoneClient, zone: &str, from: usize, n: usize) {
    for i in from..from + n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{zone}-{i}").as_str());
        client
            .js
            .publish_with_headers(format!("ev.{zone}.x"), headers, format!("{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

/// The aggregate's messages as `Nats-Msg-Id`s, in stream order.
async fn ids_in(client: &ZoneClient, stream: &str) -> Vec<String> {
    let stream = client.js.get_stream(stream).await.expect("aggregate");
    let last = stream.cached_info().state.last_sequence;
    let mut ids = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let id = m.headers.get("Nats-Msg-Id").map(|v| v.to_string());
            ids.push(id.unwrap_or_default());
        }
    }
    ids
}

/// Waits until `client`'s zone's aggregate holds `want` messages; returns its ids.
async fn converged(
    client: &ZoneClient,
    stream: &str,
    want: usize,
    within: Duration,
) -> Vec<String> {
    let what = format!("{want} messages in {stream} of zone {}", client.zone);
    poll(&what, within, Duration::from_millis(100), async || {
        let ids = ids_in(client, stream).await;
        if ids.len() >= want {
            Ok(ids)
        } else {
            Err(format!("{} so far", ids.len()))
        }
    })
    .await
}

/// Each zone's messages exactly once and in the order they were written.
fn check_exactly_once_in_order(zone: &str, ids: &[String], per_zone: &[(&str, usize)]) {
    for (from, n) in per_zone {
        let seen: Vec<usize> = ids
            .iter()
            .filter_map(|id| id.strip_prefix(&format!("{from}-")))
            .map(|i| i.parse().expect("index"))
            .collect();
        assert_eq!(
            seen,
            (0..*n).collect::<Vec<_>>(),
            "aggregate in {zone}: the messages of zone {from} are not each there once in order"
        );
    }
}

/// The sources topology wired by the plan's builders on real leafnode-linked
/// zones: every zone writes its own subjects, every aggregate converges to
/// every zone's messages exactly once in order, a source is removed and added
/// back in place without duplicates, and a source through a wrong domain
/// never delivers.
#[tokio::test]
async fn sources_topology_aggregates_converge_and_are_edited_in_place() {
    let spec = sources_spec();
    let region = start(&spec).await;
    let zones = ["a", "b", "c"];
    let mut clients = Vec::new();
    for zone in zones {
        clients.push(connect(&region, zone).await);
    }
    for (zone, client) in zones.iter().zip(&clients) {
        let z = spec.zone(zone).unwrap();
        let local = ensure_source_stream(&client.js, &local_stream_config(&spec, z), 1).await;
        assert_eq!(local, Ok(Outcome::Created), "local stream of {zone}");
        let aggregate =
            ensure_source_stream(&client.js, &aggregate_stream_config(&spec, z), 1).await;
        assert_eq!(aggregate, Ok(Outcome::Created), "aggregate of {zone}");
    }
    let written = Instant::now();
    for (zone, client) in zones.iter().zip(&clients) {
        publish_own(client, zone, 0, 100).await;
    }
    let per_zone = [("a", 100), ("b", 100), ("c", 100)];
    for (zone, client) in zones.iter().zip(&clients) {
        let ids = converged(client, "EV", 300, Duration::from_secs(20)).await;
        check_exactly_once_in_order(zone, &ids, &per_zone);
    }
    println!(
        "sources topology: 3 x 100 messages in all three aggregates {:?} after the first publish",
        written.elapsed()
    );
    // How far each aggregate has come in each zone's local stream, from the
    // sourced messages' own headers: all 100 of every zone.
    for (zone, client) in zones.iter().zip(&clients) {
        for from in &zones {
            let subjects = zone_subjects(&spec, spec.zone(from).unwrap());
            let seq = sourced_seq(&client.js, "EV", &subjects).await;
            assert_eq!(seq, Ok(100), "aggregate in {zone}, source {from}");
        }
    }

    // Zone c leaves every aggregate, writes, and comes back: an in-place update each way.
    let mut without_c = spec.clone();
    without_c.zones.retain(|z| z.name != "c");
    for (zone, client) in zones.iter().zip(&clients).take(2) {
        let z = spec.zone(zone).unwrap();
        let out =
            ensure_source_stream(&client.js, &aggregate_stream_config(&without_c, z), 1).await;
        assert!(
            matches!(out, Ok(Outcome::Updated { .. })),
            "{zone}: {out:?}"
        );
    }
    publish_own(&clients[2], "c", 100, 50).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ids_in(&clients[0], "EV").await.len(),
        300,
        "a removed source still delivered"
    );
    for (zone, client) in zones.iter().zip(&clients).take(2) {
        let z = spec.zone(zone).unwrap();
        let out = ensure_source_stream(&client.js, &aggregate_stream_config(&spec, z), 1).await;
        assert!(
            matches!(out, Ok(Outcome::Updated { .. })),
            "{zone}: {out:?}"
        );
    }
    let per_zone = [("a", 100), ("b", 100), ("c", 150)];
    for (zone, client) in zones.iter().zip(&clients) {
        let ids = converged(client, "EV", 350, Duration::from_secs(20)).await;
        assert_eq!(
            ids.len(),
            350,
            "aggregate in {zone}: {} messages",
            ids.len()
        );
        check_exactly_once_in_order(zone, &ids, &per_zone);
    }

    // A source bound through a domain no zone has delivers nothing.
    let mut wrong = spec.clone();
    wrong.zones[2].domain = Some("nowhere".into());
    let b = spec.zone("b").unwrap();
    let mut config = aggregate_stream_config(&wrong, b);
    config.name = "EV_WRONG".into();
    ensure_source_stream(&clients[1].js, &config, 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids = ids_in(&clients[1], "EV_WRONG").await;
    assert_eq!(
        ids.len(),
        200,
        "only a's and b's messages: c's source points at domain nowhere"
    );
    assert!(!ids.iter().any(|id| id.starts_with("c-")));
}
