//! Snapshot tests of the generated configs, and nats-server's own verdict on
//! them (`nats-server -t`). `UPDATE_SNAPSHOTS=1` rewrites the snapshots.

use std::path::{Path, PathBuf};

use super::*;
use crate::api::RegionMirrorSpec;

/// A three-zone region in the shape the operator will render: DNS names,
/// fixed ports, a proxy address advertised by the source, and a password
/// made of everything that breaks naive quoting.
pub(crate) fn three_zone_spec() -> RegionMirrorSpec {
    serde_json::from_value(serde_json::json!({
        "stream": {
            "name": "EVENTS_REGION",
            "subjects": ["events.region.>"],
            "replicas": 3,
            "maxAgeSeconds": 60,
            "syncInterval": "10s"
        },
        "leafnode": { "reconnectIntervalSeconds": 3 },
        "zones": [
            { "name": "east", "role": "source" },
            { "name": "west", "role": "mirror", "domain": "west_dc", "storage": { "size": "512Mi" } },
            { "name": "edge", "role": "mirror", "servers": 1 }
        ]
    }))
    .expect("spec parses")
}

pub(crate) fn nasty_credentials() -> RegionCredentials {
    RegionCredentials {
        app: UserPass {
            user: "app".into(),
            password: "p@ss\"w\\or:d $HOME {x} #y //z\n\té%41".into(),
        },
        system: UserPass {
            user: "sys".into(),
            password: "s'y\"s$".into(),
        },
    }
}

fn addresses(spec: &RegionMirrorSpec, zone: &str) -> ZoneAddresses {
    let z = spec.zone(zone).unwrap();
    let source = spec.source_zone().unwrap();
    let pod = |zone: &str, i: i32| format!("r-{zone}-{i}.r-{zone}.ns.svc");
    ZoneAddresses {
        servers: (0..z.servers)
            .map(|i| ServerAddress {
                name: format!("r-{zone}-{i}"),
                host: "0.0.0.0".into(),
                client_port: 4222,
                cluster_port: 6222,
                monitor_port: 8222,
                leafnode_port: z.is_source().then_some(7422),
                leaf_advertise: z
                    .is_source()
                    .then(|| format!("r-{zone}-leaf-{i}.ns.svc:7422")),
                store_dir: "/data/jetstream".into(),
            })
            .collect(),
        routes: (0..z.servers)
            .map(|i| format!("nats-route://{}:6222", pod(zone, i)))
            .collect(),
        leaf_remotes: if z.is_source() {
            vec![]
        } else {
            (0..source.servers)
                .map(|i| format!("{}:7422", pod(&source.name, i)))
                .collect()
        },
        // One mirror zone as if behind a proxy, so `nats-server -t` checks
        // the option too.
        leaf_remotes_only: zone == "edge",
        tls: Some(snapshot_tls_files()),
    }
}

/// Where the snapshots' servers find their certificates; the `-t` check
/// writes real ones there (under its temporary directory).
const SNAPSHOT_TLS_DIR: &str = "/etc/nats-tls";

fn snapshot_tls_files() -> TlsFiles {
    TlsFiles {
        cert_file: format!("{SNAPSHOT_TLS_DIR}/tls.crt"),
        key_file: format!("{SNAPSHOT_TLS_DIR}/tls.key"),
        ca_file: format!("{SNAPSHOT_TLS_DIR}/ca.crt"),
        route_identity: "*.r-east.ns.svc".to_string(),
    }
}

fn rendered() -> Vec<(String, String)> {
    let spec = three_zone_spec();
    let creds = nasty_credentials();
    let mut files = Vec::new();
    for zone in ["east", "west", "edge"] {
        let plan = ZonePlan::build(&spec, zone, &addresses(&spec, zone), &creds).unwrap();
        // One server per zone is enough to snapshot; the others differ only in name.
        files.push((format!("{zone}-0.conf"), plan.servers[0].render()));
    }
    let west = spec.zone("west").unwrap();
    let edge = spec.zone("edge").unwrap();
    let json =
        |c: &async_nats::jetstream::stream::Config| serde_json::to_string_pretty(c).unwrap() + "\n";
    files.push((
        "stream-source.json".into(),
        json(&source_stream_config(&spec)),
    ));
    files.push((
        "stream-mirror-west.json".into(),
        json(&mirror_stream_config(&spec, "east", west)),
    ));
    files.push((
        "stream-mirror-edge.json".into(),
        json(&mirror_stream_config(&spec, "east", edge)),
    ));
    files
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

#[test]
fn generated_files_match_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, text) in rendered() {
        let path = snapshot_dir().join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != text {
            eprintln!("--- {name} (generated)\n{text}");
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots differ: {stale:?}; rerun with UPDATE_SNAPSHOTS=1 if the change is intended"
    );
}

#[test]
fn nats_server_accepts_every_generated_config() {
    let bin = crate::tools::binary("nats-server").expect("nats-server is needed for this test");
    let dir = tempfile::tempdir().unwrap();
    // The server loads the certificate files while it checks the config.
    let tls_dir = dir.path().join("tls");
    crate::tls::write_test_files(&tls_dir).unwrap();
    let mut checked = 0;
    for (name, text) in rendered().into_iter().filter(|(n, _)| n.ends_with(".conf")) {
        assert!(text.contains(SNAPSHOT_TLS_DIR), "{name} has TLS: {text}");
        let text = text.replace(SNAPSHOT_TLS_DIR, &tls_dir.to_string_lossy());
        let path = dir.path().join(&name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(&bin)
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nats-server -t refused {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 3);

    // The check has teeth: a config the server cannot take fails it.
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "jetstream { sync_interval: \"sometimes\" }\n").unwrap();
    let out = std::process::Command::new(&bin)
        .arg("-t")
        .arg("-c")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn plan_shape() {
    let spec = three_zone_spec();
    let creds = nasty_credentials();
    let east = ZonePlan::build(&spec, "east", &addresses(&spec, "east"), &creds).unwrap();
    assert_eq!(east.servers.len(), 3);
    assert!(east.servers.iter().all(|s| {
        s.config
            .cluster
            .as_ref()
            .is_some_and(|c| c.name == "east" && c.routes.len() == 3)
    }));
    let leaf = east.servers[2].config.leafnodes.as_ref().unwrap();
    assert_eq!(leaf.listen.as_deref(), Some("0.0.0.0:7422"));
    assert_eq!(leaf.advertise.as_deref(), Some("r-east-leaf-2.ns.svc:7422"));

    let west = ZonePlan::build(&spec, "west", &addresses(&spec, "west"), &creds).unwrap();
    assert_eq!(west.domain, "west_dc");
    let leaf = west.servers[0].config.leafnodes.as_ref().unwrap();
    assert_eq!(leaf.reconnect.as_deref(), Some("3s"));
    // TLS on every link: the client listener without client certificates,
    // routes and the leafnode listener mutual, the remote verifying the hub.
    let w0 = &west.servers[0].config;
    assert!(
        w0.tls
            .as_ref()
            .is_some_and(|t| !t.verify && t.ca_file.is_none())
    );
    assert!(
        w0.cluster
            .as_ref()
            .unwrap()
            .tls
            .as_ref()
            .is_some_and(|t| t.verify)
    );
    let remote_tls = leaf.remotes[0].tls.as_ref().unwrap();
    assert_eq!(remote_tls.ca_file.as_deref(), Some("/etc/nats-tls/ca.crt"));
    let hub = east.servers[0].config.leafnodes.as_ref().unwrap();
    assert!(hub.tls.as_ref().is_some_and(|t| t.verify));
    assert_eq!(leaf.remotes[0].urls.len(), 3);
    assert_eq!(leaf.remotes[0].account, APP_ACCOUNT);

    let edge = ZonePlan::build(&spec, "edge", &addresses(&spec, "edge"), &creds).unwrap();
    assert!(edge.servers[0].config.cluster.is_none());

    let src = source_stream_config(&spec);
    assert_eq!(
        src.duplicate_window,
        std::time::Duration::from_secs(60),
        "clamped to max age"
    );
    let m = mirror_stream_config(&spec, "east", spec.zone("edge").unwrap());
    assert_eq!(m.num_replicas, 1);
    assert!(m.subjects.is_empty());
    assert_eq!(
        m.mirror.unwrap().external.unwrap().api_prefix,
        "$JS.east.API"
    );
}

#[test]
fn plan_errors() {
    let spec = three_zone_spec();
    let creds = nasty_credentials();
    let mut short = addresses(&spec, "east");
    short.servers.pop();
    assert!(matches!(
        ZonePlan::build(&spec, "east", &short, &creds),
        Err(PlanError::ServerCount { .. })
    ));
    let mut no_remotes = addresses(&spec, "west");
    no_remotes.leaf_remotes.clear();
    assert_eq!(
        ZonePlan::build(&spec, "west", &no_remotes, &creds),
        Err(PlanError::NoLeafRemotes("west".into()))
    );
    assert_eq!(
        ZonePlan::build(&spec, "north", &no_remotes, &creds),
        Err(PlanError::UnknownZone("north".into()))
    );
    let mut hashed = creds.clone();
    hashed.app.password = "$2a$11$abcdefghijklmnopqrstuv".into();
    assert!(matches!(
        ZonePlan::build(&spec, "east", &addresses(&spec, "east"), &hashed),
        Err(PlanError::Credentials(_))
    ));
    let mut plaintext = addresses(&spec, "east");
    plaintext.tls = None;
    assert_eq!(
        ZonePlan::build(&spec, "east", &plaintext, &creds),
        Err(PlanError::MissingTlsFiles("east".into()))
    );
    let mut off = spec.clone();
    off.tls.mode = crate::api::TlsMode::Disabled;
    assert_eq!(
        ZonePlan::build(&off, "east", &addresses(&spec, "east"), &creds),
        Err(PlanError::UnexpectedTlsFiles("east".into()))
    );
    let mut same = creds.clone();
    same.system.user = "app".into();
    assert!(matches!(
        ZonePlan::build(&spec, "east", &addresses(&spec, "east"), &same),
        Err(PlanError::Credentials(_))
    ));
}

#[test]
fn sources_topology_streams_carry_the_zone_and_source_every_zone() {
    let mut spec = three_zone_spec();
    spec.stream.subjects = vec!["events.{zone}.>".into(), "audit.{zone}".into()];
    let west = spec.zone("west").unwrap().clone();
    let local = local_stream_config(&spec, &west);
    assert_eq!(local.name, "EVENTS_REGION-west");
    assert_eq!(local.subjects, ["events.west.>", "audit.west"]);
    assert_eq!(local.duplicate_window, std::time::Duration::from_secs(60));
    assert_eq!(local.num_replicas, 3);

    let aggregate = aggregate_stream_config(&spec, &west);
    assert_eq!(aggregate.name, "EVENTS_REGION");
    assert!(
        aggregate.subjects.is_empty(),
        "an aggregate captures nothing itself"
    );
    assert!(aggregate.mirror.is_none());
    let sources: Vec<(String, Option<String>)> = aggregate
        .sources
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.external.map(|e| e.api_prefix)))
        .collect();
    assert_eq!(
        sources,
        [
            (
                "EVENTS_REGION-east".to_string(),
                Some("$JS.east.API".to_string())
            ),
            ("EVENTS_REGION-west".to_string(), None),
            (
                "EVENTS_REGION-edge".to_string(),
                Some("$JS.edge.API".to_string())
            ),
        ],
        "its own zone directly, every other through that zone's domain (west's is west_dc)"
    );
    let edge = spec.zone("edge").unwrap();
    assert_eq!(aggregate_stream_config(&spec, edge).num_replicas, 1);
}

#[test]
fn zone_streams_follow_the_topology() {
    let mut spec = three_zone_spec();
    let kinds = |spec: &RegionMirrorSpec, zone: &str| -> Vec<(StreamKind, String)> {
        zone_streams(spec, spec.zone(zone).unwrap())
            .into_iter()
            .map(|s| (s.kind, s.config.name))
            .collect()
    };
    assert_eq!(
        kinds(&spec, "east"),
        [(StreamKind::Source, "EVENTS_REGION".to_string())]
    );
    let west = zone_streams(&spec, spec.zone("west").unwrap());
    assert_eq!(west.len(), 1);
    assert_eq!(west[0].kind, StreamKind::Mirror);
    assert_eq!(
        west[0].config,
        mirror_stream_config(&spec, "east", spec.zone("west").unwrap()),
        "a mirror zone's stream mirrors the source zone's domain"
    );

    spec.topology = crate::api::Topology::Sources;
    spec.stream.subjects = vec!["events.{zone}.>".into()];
    for zone in ["east", "west", "edge"] {
        assert_eq!(
            kinds(&spec, zone),
            [
                (StreamKind::Local, format!("EVENTS_REGION-{zone}")),
                (StreamKind::Aggregate, "EVENTS_REGION".to_string()),
            ],
            "zone {zone}: the local stream first, so aggregates find it"
        );
    }
}

/// The ages NATS is sent never wrap: 18446744273 s is 2^64 ns plus about
/// 199 s, which a wrapping conversion turned into a 199 s retention that
/// purged every zone on the next update.
#[test]
fn stream_ages_reach_nats_unwrapped() {
    let nanos = |spec: &RegionMirrorSpec, field: &str| -> i64 {
        let config = serde_json::to_value(source_stream_config(spec)).expect("config serializes");
        config[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} in nanoseconds as an i64: {config}"))
    };
    let mut spec = three_zone_spec();
    assert_eq!(nanos(&spec, "max_age"), 60_000_000_000);
    let limit = crate::api::MAX_AGE_SECONDS * 1_000_000_000;
    for huge in [18_446_744_273, crate::api::MAX_AGE_SECONDS + 1, i64::MAX] {
        spec.stream.max_age_seconds = Some(huge);
        assert_eq!(nanos(&spec, "max_age"), limit, "maxAgeSeconds {huge}");
    }
    spec.stream.max_age_seconds = Some(-5);
    assert_eq!(nanos(&spec, "max_age"), 0, "a negative age keeps forever");
    spec.stream.max_age_seconds = None;
    spec.stream.duplicate_window_seconds = i64::MAX;
    assert_eq!(nanos(&spec, "duplicate_window"), limit);
}
