//! The local runtime against real nats-server processes on loopback: a zone,
//! a mirrored region, a zone added mid-run, and cleanup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self,
    stream::{Info, Stream},
};
use natsregion::api::RegionMirrorSpec;
use natsregion::fault::{DirectNetwork, FaultBackend, ToxiproxyBackend, ZoneHost};
use natsregion::local::{
    LocalError, LocalRegion, LocalRegionOptions, LocalZone, ZoneOptions, generate_credentials,
    toxiproxy::ToxiproxyServer, zone_tls,
};
use natsregion::plan::{RegionCredentials, UserPass, mirror_stream_config, source_stream_config};
use natsregion::testenv::support::poll;
use natsregion::tls::{ServerTls, issue_ca};

fn spec(zones: serde_json::Value) -> RegionMirrorSpec {
    serde_json::from_value(serde_json::json!({
        "stream": { "name": "EVENTS", "subjects": ["events.>"], "replicas": 3, "syncInterval": "10s" },
        "leafnode": { "reconnectIntervalSeconds": 1 },
        "zones": zones,
    }))
    .unwrap()
}

/// A zone's certificate from a throwaway CA, for zones started without a region.
fn throwaway_tls(zone: &str) -> (ServerTls, String) {
    let ca = issue_ca("test", jiff::Timestamp::now(), Duration::from_secs(3_600)).unwrap();
    let tls = zone_tls(&ca, zone, &ZoneHost::loopback(), Duration::from_secs(3_600)).unwrap();
    (tls, ca.cert)
}

async fn connect(urls: Vec<String>, creds: &RegionCredentials, ca: &str) -> jetstream::Context {
    let options = async_nats::ConnectOptions::with_user_and_password(
        creds.app.user.clone(),
        creds.app.password.clone(),
    );
    let client = natsregion::tls::trust_region_ca(options, Some(ca))
        .unwrap()
        .connect(urls)
        .await
        .expect("client connects with the app user");
    jetstream::new(client)
}

/// Reads the stream's info every 50 ms until `check` accepts it or `within` passes.
async fn wait_for(
    stream: &mut Stream,
    within: Duration,
    what: &str,
    check: impl Fn(&Info) -> Result<(), String>,
) {
    poll(what, within, Duration::from_millis(50), async || {
        check(stream.info().await.map_err(|e| e.to_string())?)
    })
    .await
}

fn last_seq_is(n: u64) -> impl Fn(&Info) -> Result<(), String> {
    move |info| {
        if info.state.last_sequence == n {
            Ok(())
        } else {
            Err(format!("last_seq {}", info.state.last_sequence))
        }
    }
}

async fn publish(js: &jetstream::Context, n: usize) {
    // Publish all, then await every ack: pipelined like a real producer.
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        acks.push(
            js.publish(format!("events.t{}", i % 7), format!("m{i}").into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("acked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_zone_runs_an_r3_file_stream() {
    let spec = spec(serde_json::json!([{ "name": "solo", "role": "source" }]));
    let creds = generate_credentials().unwrap();
    let (tls, ca) = throwaway_tls("solo");
    let zone = LocalZone::start(
        &spec,
        "solo",
        &creds,
        &DirectNetwork,
        ZoneOptions {
            tls: Some(tls),
            ..ZoneOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(zone.client_urls().len(), 3);
    assert_eq!(zone.leafnode_addrs().len(), 3);

    let js = connect(zone.client_urls(), &creds, &ca).await;
    let mut stream = js
        .create_stream(source_stream_config(&spec))
        .await
        .expect("R3 stream created");
    publish(&js, 100).await;

    wait_for(
        &mut stream,
        Duration::from_secs(10),
        "3 current replicas and last_seq 100",
        |info| {
            let cluster = info.cluster.as_ref().ok_or("no cluster info")?;
            let current = cluster.replicas.iter().filter(|p| p.current).count()
                + usize::from(cluster.leader.is_some());
            if info.config.num_replicas != 3 || current != 3 || info.state.last_sequence != 100 {
                return Err(format!(
                    "replicas {} current {current} last_seq {}",
                    info.config.num_replicas, info.state.last_sequence
                ));
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_zone_follows_the_source_and_a_new_zone_joins() {
    let spec = spec(serde_json::json!([
        { "name": "src", "role": "source" },
        { "name": "mir", "role": "mirror", "domain": "mir_dc" }
    ]));
    // Passwords full of characters that break naive config and URL quoting:
    // the leafnode link only comes up if both survive.
    let creds = RegionCredentials {
        app: UserPass {
            user: "app".into(),
            password: "p@ss\"w\\or:d $HOME {x} #y //z%41é".into(),
        },
        system: UserPass {
            user: "sys".into(),
            password: "s'y\"s$".into(),
        },
    };
    let opts = LocalRegionOptions {
        credentials: Some(creds.clone()),
        ..Default::default()
    };
    let mut region = LocalRegion::start(&spec, Arc::new(DirectNetwork), opts)
        .await
        .unwrap();
    let ca = region.ca_pem().expect("TLS is on by default").to_string();

    let source_js = connect(region.source_zone().client_urls(), &creds, &ca).await;
    let mut source = source_js
        .create_stream(source_stream_config(&spec))
        .await
        .expect("source stream");
    let mirror_js = connect(region.zone("mir").unwrap().client_urls(), &creds, &ca).await;
    let mut mirror = mirror_js
        .create_stream(mirror_stream_config(
            &spec,
            "src",
            spec.zone("mir").unwrap(),
        ))
        .await
        .expect("mirror stream");

    let start = Instant::now();
    publish(&source_js, 200).await;
    assert_eq!(source.info().await.unwrap().state.last_sequence, 200);
    wait_for(
        &mut mirror,
        Duration::from_secs(10),
        "mirror last_seq 200",
        last_seq_is(200),
    )
    .await;
    eprintln!(
        "mirror caught up {:?} after the first publish",
        start.elapsed()
    );
    let (a, b) = (
        source.get_raw_message(137).await.unwrap(),
        mirror.get_raw_message(137).await.unwrap(),
    );
    assert_eq!(
        (a.subject, a.payload),
        (b.subject, b.payload),
        "mirror sequence 137 is the source's"
    );

    // A zone added mid-run, with no change on the producer side, catches up.
    let second_source: natsregion::api::ZoneSpec =
        serde_json::from_value(serde_json::json!({ "name": "src2", "role": "source" })).unwrap();
    assert!(matches!(
        region.add_zone(&second_source).await,
        Err(LocalError::Invalid(_))
    ));
    // One server: the mirror keeps one replica of the R3 source stream.
    let late: natsregion::api::ZoneSpec = serde_json::from_value(
        serde_json::json!({ "name": "late", "role": "mirror", "servers": 1 }),
    )
    .unwrap();
    let added = region.add_zone(&late).await.unwrap();
    let late_js = connect(added.client_urls(), &creds, &ca).await;
    let mut late_mirror = late_js
        .create_stream(mirror_stream_config(region.spec(), "src", &late))
        .await
        .expect("late mirror");
    wait_for(
        &mut late_mirror,
        Duration::from_secs(10),
        "late mirror last_seq 200",
        last_seq_is(200),
    )
    .await;
    assert_eq!(late_mirror.info().await.unwrap().config.num_replicas, 1);
    assert!(matches!(
        region.add_zone(&late).await,
        Err(LocalError::DuplicateZone(_))
    ));

    let late_pids = region.zone("late").unwrap().pids();
    region.remove_zone("late").await.unwrap();
    assert!(region.zone("late").is_none() && region.spec().zone("late").is_none());
    assert!(late_pids.iter().all(|p| !alive(*p)));
    region.stop().await.unwrap();
}

/// True if `pid` is a live nats-server (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    state != "Z" && String::from_utf8_lossy(&cmdline).contains("nats-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_region_leaves_nothing_running() {
    let spec = spec(serde_json::json!([
        { "name": "a", "role": "source", "servers": 1 },
        { "name": "b", "role": "mirror", "servers": 1 }
    ]));
    let spec = RegionMirrorSpec {
        stream: natsregion::api::StreamSpec {
            replicas: 1,
            ..spec.stream
        },
        ..spec
    };
    let region = LocalRegion::start(
        &spec,
        Arc::new(DirectNetwork),
        LocalRegionOptions::default(),
    )
    .await
    .unwrap();
    let pids = region.pids();
    let dir = region.dir().to_path_buf();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)) && dir.exists());
    drop(region);
    let still: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(still.is_empty(), "still running after drop: {still:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_zones_and_bad_specs_are_refused() {
    let external = spec(serde_json::json!([
        { "name": "a", "role": "source" },
        { "name": "b", "role": "mirror", "domain": "b", "external": { "url": "nats://10.0.0.1:4222" } }
    ]));
    let err = LocalRegion::start(
        &external,
        Arc::new(DirectNetwork),
        LocalRegionOptions::default(),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(err, LocalError::ExternalZone(ref z) if z == "b"),
        "{err}"
    );

    let two_sources = spec(
        serde_json::json!([{ "name": "a", "role": "source" }, { "name": "b", "role": "source" }]),
    );
    let err = LocalRegion::start(
        &two_sources,
        Arc::new(DirectNetwork),
        LocalRegionOptions::default(),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, LocalError::Spec(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_exits_fails_the_start_at_once() {
    let spec = spec(serde_json::json!([{ "name": "bad", "role": "source", "servers": 1 }]));
    let creds = generate_credentials().unwrap();
    let opts = ZoneOptions {
        nats_server: Some("/bin/false".into()),
        tls: Some(throwaway_tls("bad").0),
        start_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let start = Instant::now();
    let err = LocalZone::start(&spec, "bad", &creds, &DirectNetwork, opts)
        .await
        .unwrap_err();
    assert!(matches!(err, LocalError::Exited { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "noticed the exit, did not wait for the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_in_network_namespaces_mirror_through_the_bridge() {
    use natsregion::fault::{FaultError, NetnsBackend};
    let backend = match NetnsBackend::new() {
        Ok(b) => Arc::new(b),
        Err(FaultError::Unsupported { what, .. }) => {
            println!("SKIP netns region test: needs {what}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let spec = spec(serde_json::json!([
        { "name": "nsa", "role": "source", "servers": 1 },
        { "name": "nsb", "role": "mirror", "servers": 1 }
    ]));
    let spec = RegionMirrorSpec {
        stream: natsregion::api::StreamSpec {
            replicas: 1,
            ..spec.stream
        },
        ..spec
    };
    let region = LocalRegion::start(&spec, backend.clone(), LocalRegionOptions::default())
        .await
        .unwrap();
    let ca = region.ca_pem().expect("TLS is on by default").to_string();
    let (a, b) = (region.source_zone(), region.zone("nsb").unwrap());
    assert!(a.host().netns.is_some() && b.host().netns.is_some() && a.host() != b.host());
    assert!(a.client_urls()[0].contains(&a.host().ip.to_string()));

    let creds = region.credentials().clone();
    let source_js = connect(a.client_urls(), &creds, &ca).await;
    source_js
        .create_stream(source_stream_config(&spec))
        .await
        .expect("source stream");
    let mirror_js = connect(b.client_urls(), &creds, &ca).await;
    let mut mirror = mirror_js
        .create_stream(mirror_stream_config(
            &spec,
            "nsa",
            spec.zone("nsb").unwrap(),
        ))
        .await
        .expect("mirror stream");
    publish(&source_js, 50).await;
    wait_for(
        &mut mirror,
        Duration::from_secs(10),
        "mirror last_seq 50",
        last_seq_is(50),
    )
    .await;

    let pids = region.pids();
    drop(region);
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "servers left running in their namespaces"
    );
}

/// Behind Toxiproxy the source advertises a port that refuses every
/// connection (so a cut holds: docs/architecture.md, fact 2). A mirror
/// server that also dials that discovered address after a heal loses a
/// reconnect interval on it before it tries the proxy again; it must dial
/// only its proxies (`ignore_discovered_servers`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_servers_behind_a_proxy_never_dial_the_address_the_source_advertises() {
    let tp = ToxiproxyServer::start().await.unwrap();
    let backend = Arc::new(ToxiproxyBackend::new(tp.url(), true));
    let mut spec = spec(serde_json::json!([
        { "name": "a", "role": "source", "servers": 1 },
        { "name": "b", "role": "mirror", "servers": 1 }
    ]));
    spec.stream.replicas = 1;
    let opts = LocalRegionOptions {
        debug_logs: true,
        ..Default::default()
    };
    let region = LocalRegion::start(&spec, backend.clone(), opts)
        .await
        .unwrap();
    let advertised = region.source_zone().plan().servers[0]
        .address
        .leaf_advertise
        .clone()
        .expect("the source advertises the refused port");

    // Seven reconnect intervals with the proxy down.
    let record = backend
        .cut(&["b".to_string()], Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    backend.heal(&record).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = std::fs::read_to_string(&region.zone("b").unwrap().servers()[0].log_path).unwrap();
    let dials = |to: &str| {
        log.lines()
            .filter(|l| l.contains("Trying to connect as leafnode") && l.contains(to))
            .count()
    };
    println!(
        "7 s cut: {} dials in all, {} to the advertised {advertised}",
        dials(""),
        dials(&advertised)
    );
    assert!(
        dials("") >= 3,
        "the mirror server should have redialled its proxy through the cut"
    );
    assert_eq!(
        dials(&advertised),
        0,
        "the mirror server dialled the address the source advertises"
    );
    region.stop().await.unwrap();
}
