//! TLS on every link of a local region, against real nats-server processes:
//! a default region requires TLS on its client, route and leafnode listeners
//! and refuses plaintext; a client that trusts another CA is refused with a
//! TLS error; renewed certificates are served after a reload, and a drill
//! across the renewal loses nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use natsregion::api::{RegionMirrorSpec, Verdict};
use natsregion::cli::drill_file;
use natsregion::cli::local_drill::{LocalFaults, LocalRuntime};
use natsregion::drill::engine::{self, EngineOptions, Silent};
use natsregion::drill::runtime::Runtime;
use natsregion::fault::{DirectNetwork, ZoneHost};
use natsregion::local::{
    LocalRegion, LocalRegionOptions, LocalServer, LocalZone, ZoneOptions, generate_credentials,
    zone_tls,
};
use natsregion::nats::connect::{ConnectError, ConnectSettings, ZoneEndpoint, connect};
use natsregion::testenv::tls_probe::{negotiated_version, plaintext_attempt, served_certificate};

fn spec() -> RegionMirrorSpec {
    serde_json::from_value(serde_json::json!({
        "stream": { "name": "EVENTS", "subjects": ["events.>"], "replicas": 1 },
        "leafnode": { "reconnectIntervalSeconds": 1 },
        "zones": [
            { "name": "a", "role": "source", "servers": 3 },
            { "name": "b", "role": "mirror", "servers": 1 },
        ],
    }))
    .unwrap()
}

fn client_addr(s: &LocalServer) -> SocketAddr {
    SocketAddr::new(s.ip, s.client_port)
}

fn endpoint(region: &LocalRegion, zone: &str, ca: Option<String>) -> ZoneEndpoint {
    let z = region.zone(zone).unwrap();
    z.endpoint(&region.credentials().app, ca)
}

async fn varz(server: &LocalServer) -> serde_json::Value {
    reqwest::get(format!("{}/varz", server.monitor_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_region_runs_tls_on_every_link_and_refuses_plaintext() {
    // Start returns once the mirror's leafnode link is up and the source's
    // three servers formed their cluster: both went through TLS.
    let started = Instant::now();
    let region = LocalRegion::start(
        &spec(),
        Arc::new(DirectNetwork),
        LocalRegionOptions::default(),
    )
    .await
    .expect("region starts with TLS");
    eprintln!(
        "region of 3 + 1 servers up with TLS in {:?}",
        started.elapsed()
    );
    let ca = region.ca_pem().expect("TLS is on by default").to_string();
    let source = region.source_zone();

    // Every listener but monitoring requires TLS, and routes and the
    // leafnode listener verify the peer's certificate.
    let v = varz(&source.servers()[0]).await;
    assert_eq!(v["tls_required"], true, "client listener: {v}");
    assert_eq!(
        v["cluster"]["tls_required"], true,
        "routes: {}",
        v["cluster"]
    );
    assert_eq!(v["cluster"]["tls_verify"], true, "routes: {}", v["cluster"]);
    assert_eq!(v["leaf"]["tls_required"], true, "leafnodes: {}", v["leaf"]);
    assert_eq!(v["leaf"]["tls_verify"], true, "leafnodes: {}", v["leaf"]);
    assert!(source.client_urls().iter().all(|u| u.starts_with("tls://")));

    // A plaintext client: the INFO line says TLS, and the login is never answered.
    let app = region.credentials().app.clone();
    let addr = client_addr(&source.servers()[0]);
    let attempt =
        tokio::task::spawn_blocking(move || plaintext_attempt(addr, &app.user, &app.password))
            .await
            .unwrap()
            .expect("the server sends INFO");
    assert!(
        attempt.refused(),
        "INFO {} answer {:?}",
        attempt.info,
        attempt.answer
    );

    // Every TLS listener refuses a client that offers only TLS 1.2 and
    // settles on 1.3 with one that offers both (`plan::TLS_MIN_VERSION`).
    let s0 = &source.servers()[0];
    let listeners = [
        ("client", client_addr(s0), true),
        ("leafnode", s0.leafnode_addr().unwrap(), true),
        ("route", SocketAddr::new(s0.ip, s0.cluster_port), false),
    ];
    for (which, addr, info_first) in listeners {
        let ca = ca.clone();
        let (old, both) = tokio::task::spawn_blocking(move || {
            let try_with = |v: &[&'static rustls::SupportedProtocolVersion]| {
                negotiated_version(addr, info_first, &ca, "127.0.0.1", v)
            };
            (
                try_with(&[&rustls::version::TLS12]),
                try_with(&[&rustls::version::TLS12, &rustls::version::TLS13]),
            )
        })
        .await
        .unwrap();
        let err = old.expect_err(&format!("{which}: a TLS 1.2-only client is refused"));
        assert!(err.contains("TLS handshake"), "{which}: {err}");
        eprintln!("{which} listener, TLS 1.2 only: {err}");
        assert_eq!(both, Ok(rustls::ProtocolVersion::TLSv1_3), "{which}");
    }

    // The drill's and the operator's connection: verified with the region CA.
    let settings = ConnectSettings::default();
    let t = Instant::now();
    let conn = connect(&endpoint(&region, "a", Some(ca.clone())), &settings)
        .await
        .expect("connects with the region CA");
    eprintln!("TLS connect + JetStream ready: {:?}", t.elapsed());
    assert_eq!(conn.domain.as_deref(), Some("a"));
    connect(&endpoint(&region, "b", Some(ca.clone())), &settings)
        .await
        .expect("the mirror zone too");

    // Tests that dial an address the certificate lacks (a pod IP) verify the
    // name the server should have instead: the right one passes, another fails.
    let by_name = |name: &'static str| {
        let (ca, app, url) = (
            ca.clone(),
            region.credentials().app.clone(),
            source.client_urls()[0].clone(),
        );
        async move {
            let tls = natsregion::testenv::tls_probe::client_config_for_name(&ca, name).unwrap();
            async_nats::ConnectOptions::with_user_and_password(app.user, app.password)
                .require_tls(true)
                .tls_client_config(tls)
                .connect(url)
                .await
        }
    };
    by_name("localhost").await.expect("valid for localhost");
    let wrong_name = by_name("elsewhere.example")
        .await
        .expect_err("not valid for that name");
    assert!(
        wrong_name.to_string().contains("not valid for name"),
        "{wrong_name}"
    );

    // Another CA: refused with the TLS failure named, at once.
    let stranger = natsregion::tls::issue_ca(
        "stranger",
        jiff::Timestamp::now(),
        Duration::from_secs(3_600),
    )
    .unwrap();
    let t = Instant::now();
    let err = connect(&endpoint(&region, "a", Some(stranger.cert)), &settings)
        .await
        .expect_err("a certificate of another CA is refused");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "failed at once: {:?}",
        t.elapsed()
    );

    region.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_are_served_after_a_reload_and_a_drill_across_the_renewal_loses_nothing()
 {
    let yaml = natsregion::testenv::fixtures::two_zone_drill_file("t", 4, 300, 300);
    let (region, drill) = drill_file::parse("renewal.yaml", &yaml).unwrap();
    let faults = LocalFaults::start(&drill, true).await.expect("toxiproxy");
    // Short-lived: the renewal is what keeps the region running.
    let opts = LocalRegionOptions {
        certificate_lifetime: Duration::from_secs(120),
        ..Default::default()
    };
    let local = LocalRegion::start(&region.spec, faults.network(), opts)
        .await
        .expect("region");
    let ca = local.ca_pem().unwrap().to_string();
    let addr = client_addr(&local.source_zone().servers()[0]);
    let cert_file = local.source_zone().dir().join("tls/tls.crt");
    let served = |ca: String| async move {
        tokio::task::spawn_blocking(move || served_certificate(addr, &ca, "127.0.0.1"))
            .await
            .unwrap()
            .expect("TLS handshake with the region CA")
    };
    let before = served(ca.clone()).await;
    let runtime = LocalRuntime::new(local);
    assert!(
        runtime
            .zones()
            .iter()
            .all(|z| z.endpoint.ca.as_deref() == Some(ca.as_str()))
    );

    let opts = EngineOptions::default();
    let drill_run = engine::run(
        &region,
        &drill,
        &runtime,
        faults.backend.as_ref(),
        &Silent,
        opts,
    );
    let renewal = async {
        // Inside the produce and partition steps: links, producer and consumers are live.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let t = Instant::now();
        runtime.renew_certificates().await.expect("renewed");
        // nats-server rereads the files on SIGHUP; poll until it serves the new one.
        let wanted =
            natsregion::tls::pem::certs(&std::fs::read_to_string(&cert_file).unwrap(), "renewed")
                .unwrap()
                .remove(0)
                .to_vec();
        loop {
            let now = served(ca.clone()).await;
            if now == wanted {
                break t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the server kept its old certificate"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (report, picked_up) = tokio::join!(drill_run, renewal);
    eprintln!("renewed certificate served after {picked_up:?}");
    assert_ne!(
        served(ca.clone()).await,
        before,
        "a new certificate is served"
    );
    let s = &report.status;
    assert_eq!(
        s.verdict,
        Verdict::Passed,
        "{}",
        natsregion::drill::report::table(&report)
    );
    assert_eq!(
        s.claims
            .iter()
            .filter(|c| c.verdict == Verdict::Passed)
            .count(),
        4
    );
    assert_eq!(s.totals.lost, 0, "{:?}", s.totals);
    assert_eq!(s.totals.acked, s.totals.attempted, "{:?}", s.totals);
    runtime.into_inner().stop().await.unwrap();
}

/// What the operator's trust check (`certificates::untrusted_links`) predicts,
/// the servers do: a mirror zone whose CA did not sign the source's
/// certificate never links, and nothing but its log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_trusts_another_ca_never_links_to_the_source() {
    let spec = spec();
    let creds = generate_credentials().unwrap();
    let hour = Duration::from_secs(3_600);
    let now = jiff::Timestamp::now();
    let right = natsregion::tls::issue_ca("right", now, hour).unwrap();
    let wrong = natsregion::tls::issue_ca("wrong", now, hour).unwrap();
    let host = ZoneHost::loopback();
    let source = LocalZone::start(
        &spec,
        "a",
        &creds,
        &DirectNetwork,
        ZoneOptions {
            tls: Some(zone_tls(&right, "a", &host, hour).unwrap()),
            ..Default::default()
        },
    )
    .await
    .expect("source zone");
    // b's own certificate is of the right CA; only what it trusts is wrong.
    let mut b_tls = zone_tls(&right, "b", &host, hour).unwrap();
    b_tls.ca = wrong.cert.clone();
    let source_cert = std::fs::read_to_string(source.dir().join("tls/tls.crt")).unwrap();
    let predicted = natsregion::tls::verify_server(&b_tls.ca, &source_cert, "127.0.0.1", now)
        .expect_err("the check predicts the refusal");
    let mirror = LocalZone::start(
        &spec,
        "b",
        &creds,
        &DirectNetwork,
        ZoneOptions {
            tls: Some(b_tls),
            leaf_remotes: source.leafnode_addrs(),
            ..Default::default()
        },
    )
    .await
    .expect("the mirror's servers start (the link is what fails)");
    let leafz = format!("{}/leafz", mirror.servers()[0].monitor_url());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let v: serde_json::Value = reqwest::get(&leafz).await.unwrap().json().await.unwrap();
        assert_eq!(v["leafnodes"], 0, "linked despite the wrong CA: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = std::fs::read_to_string(&mirror.servers()[0].log_path).unwrap();
    assert!(
        log.contains("certificate signed by unknown authority"),
        "the server's own reason, in its log only: {log}"
    );
    eprintln!("predicted: {predicted}");
}

/// The CA rotation the operator runs (`tls::rotation`), stage by stage, on
/// real servers that get each stage the way the operator's pods do (new
/// files, servers restarted one at a time): the mirror keeps receiving what
/// the source stores, and the routes and the leafnode link come back after
/// every stage. The decision is the operator's pure function, on a clock
/// moved past the point where the first CA falls due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_keeps_the_routes_the_leafnode_link_and_the_mirror_at_every_stage() {
    use natsregion::tls::rotation::{CaSet, Policy, Step, apply, decide};

    let spec = spec();
    let creds = generate_credentials().unwrap();
    let hour = Duration::from_secs(3_600);
    // Zone certificates of an hour, a CA of two: due an hour before it expires.
    let policy = Policy {
        validity: hour,
        renew_before: Duration::ZERO,
    };
    let now = jiff::Timestamp::now();
    let ca1 = natsregion::tls::issue_ca("natsregion rotation 1", now, 2 * hour).unwrap();
    let host = ZoneHost::loopback();
    let mut source = LocalZone::start(
        &spec,
        "a",
        &creds,
        &DirectNetwork,
        ZoneOptions {
            tls: Some(zone_tls(&ca1, "a", &host, 2 * hour).unwrap()),
            ..Default::default()
        },
    )
    .await
    .expect("source zone");
    let mut mirror = LocalZone::start(
        &spec,
        "b",
        &creds,
        &DirectNetwork,
        ZoneOptions {
            tls: Some(zone_tls(&ca1, "b", &host, 2 * hour).unwrap()),
            leaf_remotes: source.leafnode_addrs(),
            ..Default::default()
        },
    )
    .await
    .expect("mirror zone");

    let app = creds.app.clone();
    let client = |zone: &LocalZone, ca: &str| {
        let endpoint = zone.endpoint(&app, Some(ca.to_string()));
        async move { connect(&endpoint, &ConnectSettings::default()).await }
    };
    let stream = spec.stream.name.clone();
    {
        let (src, mir) = (
            client(&source, &ca1.cert).await.unwrap(),
            client(&mirror, &ca1.cert).await.unwrap(),
        );
        natsregion::nats::ensure_source_stream(
            &src.js,
            &natsregion::plan::source_stream_config(&spec),
            3,
        )
        .await
        .unwrap();
        natsregion::nats::ensure_mirror(
            &mir.js,
            &natsregion::plan::mirror_stream_config(&spec, "a", spec.zone("b").unwrap()),
            1,
        )
        .await
        .unwrap();
    }

    // After every stage: every route and the leafnode link are back, and
    // what the source stores now reaches the mirror.
    let mut published = 0;
    let check = |source: &LocalZone, mirror: &LocalZone, trust: String, stage: &'static str| {
        let (src_zone, mir_zone) = (source, mirror);
        let routez: Vec<String> = src_zone
            .monitor_urls()
            .iter()
            .map(|u| format!("{u}/routez"))
            .collect();
        let leafz = format!("{}/leafz", mir_zone.monitor_urls()[0]);
        let (src, mir) = (client(src_zone, &trust), client(mir_zone, &trust));
        let stream = stream.clone();
        async move {
            let t = Instant::now();
            loop {
                let mut routes = Vec::new();
                for u in &routez {
                    let v: serde_json::Value = reqwest::get(u).await.unwrap().json().await.unwrap();
                    routes.push(v["num_routes"].as_u64().unwrap_or(0));
                }
                let v: serde_json::Value =
                    reqwest::get(&leafz).await.unwrap().json().await.unwrap();
                if routes.iter().all(|&n| n >= 2) && v["leafnodes"] == 1 {
                    eprintln!(
                        "{stage}: routes and leafnode link up after {:?}",
                        t.elapsed()
                    );
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "{stage}: routes {routes:?}, leafz {v}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let (src, mir) = (src.await.unwrap(), mir.await.unwrap());
            for i in 0..20 {
                src.js
                    .publish("events.rotation", format!("{stage} {i}").into())
                    .await
                    .unwrap()
                    .await
                    .unwrap_or_else(|e| panic!("{stage}: publish {i}: {e}"));
            }
            let took = natsregion::nats::wait_until_in_sync(
                &src.js,
                &[&mir.js],
                &stream,
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|e| panic!("{stage}: the mirror stopped following: {e:?}"));
            eprintln!("{stage}: mirror in sync {took:?} after 20 more messages");
            natsregion::nats::last_seq(&mir.js, &stream).await.unwrap()
        }
    };
    published += 20;
    assert_eq!(
        check(&source, &mirror, ca1.cert.clone(), "CA 1").await,
        published
    );

    let mut cas = CaSet::single(ca1.clone());
    let views = |s: &LocalZone, m: &LocalZone| [view(s).0, view(m).0];
    assert_eq!(
        decide(&cas, &views(&source, &mirror), now, policy),
        Step::Keep,
        "two hours of CA left"
    );
    // The clock the decisions run on: past the point where CA 1 is due.
    let later = now + Duration::from_secs(3_660);
    let step = decide(&cas, &views(&source, &mirror), later, policy);
    assert_eq!(step, Step::Introduce);
    let ca2 = natsregion::tls::issue_ca("natsregion rotation 2", now, 20 * hour).unwrap();
    cas = apply(&cas, &step, || Ok::<_, ()>(ca2.clone())).unwrap();

    // Stage 1: both CAs in ca.crt, the certificates of CA 1 kept.
    roll_trust([&mut source, &mut mirror], &cas.bundle).await;
    published += 20;
    assert_eq!(
        check(&source, &mirror, cas.bundle.clone(), "bundle").await,
        published
    );
    let step = decide(&cas, &views(&source, &mirror), later, policy);
    assert_eq!(step, Step::Promote);
    cas = apply(&cas, &step, || Err(())).unwrap();
    assert_eq!(cas.signing, ca2);

    // Stage 2: certificates of CA 2, still trusting both. The source rolls
    // first: for a while its servers show CA 2 to a mirror still on CA 1.
    for zone in [&mut source, &mut mirror] {
        let mut tls = zone_tls(&cas.signing, zone.name(), &host, 2 * hour).unwrap();
        tls.ca = cas.bundle.clone();
        zone.roll_certificate(&tls).await.expect("rolled");
    }
    published += 20;
    assert_eq!(
        check(&source, &mirror, ca2.cert.clone(), "certificates of CA 2").await,
        published
    );
    let step = decide(&cas, &views(&source, &mirror), later, policy);
    assert_eq!(step, Step::Retire);
    cas = apply(&cas, &step, || Err(())).unwrap();

    // Stage 3: CA 1 dropped.
    roll_trust([&mut source, &mut mirror], &cas.bundle).await;
    published += 20;
    assert_eq!(
        check(&source, &mirror, ca2.cert.clone(), "CA 1 dropped").await,
        published
    );
    assert_eq!(cas, CaSet::single(ca2.clone()));
    assert_eq!(
        decide(&cas, &views(&source, &mirror), later, policy),
        Step::Keep
    );
    // Nothing of CA 1 is trusted any more.
    let a0 = client_addr(&source.servers()[0]);
    let refused =
        tokio::task::spawn_blocking(move || served_certificate(a0, &ca1.cert, "127.0.0.1"))
            .await
            .unwrap();
    assert!(refused.is_err(), "a client trusting CA 1 alone is refused");
}

/// Routes are authorized by the zone's own certificate
/// (`plan::TlsFiles::route_identity`): a server with zone a's certificate,
/// key and configuration, pointed at zone b's cluster under b's cluster name,
/// is valid under the region CA but is refused, while b's own servers route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_zone_cannot_join_a_zones_cluster() {
    use natsregion::local::{ChildSpec, ManagedProcess, free_port};
    use natsregion::plan::{ServerPlan, server_config};

    let spec: RegionMirrorSpec = serde_json::from_value(serde_json::json!({
        "stream": { "name": "EVENTS", "subjects": ["events.>"], "replicas": 1 },
        "leafnode": { "reconnectIntervalSeconds": 1 },
        "zones": [
            { "name": "a", "role": "source", "servers": 2 },
            { "name": "b", "role": "mirror", "servers": 2 },
        ],
    }))
    .unwrap();
    let creds = generate_credentials().unwrap();
    let hour = Duration::from_secs(3_600);
    let ca = natsregion::tls::issue_ca("region", jiff::Timestamp::now(), hour).unwrap();
    let host = ZoneHost::loopback();
    let zone = |name: &'static str, leaf_remotes: Vec<SocketAddr>| {
        let (spec, creds, tls) = (
            spec.clone(),
            creds.clone(),
            zone_tls(&ca, name, &host, hour).unwrap(),
        );
        async move {
            LocalZone::start(
                &spec,
                name,
                &creds,
                &DirectNetwork,
                ZoneOptions {
                    tls: Some(tls),
                    leaf_remotes,
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("zone {name}: {e}"))
        }
    };
    let a = zone("a", vec![]).await;
    let b = zone("b", a.leafnode_addrs()).await;
    let routes = |urls: Vec<String>| async move {
        let mut out = Vec::new();
        for u in urls {
            let v: serde_json::Value = reqwest::get(format!("{u}/routez"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.push(v["num_routes"].as_u64().unwrap_or(0));
        }
        out
    };
    // b's own servers route to each other.
    let t = Instant::now();
    let before = loop {
        let r = routes(b.monitor_urls()).await;
        if r.iter().all(|&n| n > 0) {
            break r;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "b's routes: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("b's own routes up after {:?}: {before:?}", t.elapsed());

    // The intruder: zone a's server 0 as planned (a's certificate and key,
    // a's route identity), on its own ports, routing to b as cluster "b".
    let ip = a.servers()[0].ip;
    let port = || free_port(ip).unwrap();
    let mut config = a.plan().servers[0].config.clone();
    let dir = tempfile::tempdir().unwrap();
    config.server_name = "intruder".to_string();
    config.listen = format!("{ip}:{}", port());
    config.http = format!("{ip}:{}", port());
    config.leafnodes = None;
    config.jetstream.store_dir = dir.path().join("js").to_string_lossy().into_owned();
    let cluster = config.cluster.as_mut().unwrap();
    cluster.name = "b".to_string();
    cluster.listen = format!("{ip}:{}", port());
    cluster.routes = b.plan().servers[0]
        .config
        .cluster
        .as_ref()
        .unwrap()
        .routes
        .clone();
    let monitor = format!("http://{}", config.http);
    let conf = dir.path().join("intruder.conf");
    let address = a.plan().servers[0].address.clone();
    std::fs::write(&conf, server_config(&ServerPlan { address, config })).unwrap();
    let log = dir.path().join("intruder.log");
    let mut intruder = ManagedProcess::spawn(&ChildSpec {
        name: "nats-server intruder".to_string(),
        program: natsregion::tools::binary("nats-server").unwrap(),
        args: vec!["-c".into(), conf.clone().into()],
        dir: dir.path().to_path_buf(),
        log: log.clone(),
        netns: None,
    })
    .unwrap();
    natsregion::local::wait_for_http_ok(
        &mut intruder,
        // Its JetStream waits for a cluster it never gets: up is enough.
        &format!("{monitor}/varz"),
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("intruder: {e}\n{}", std::fs::read_to_string(&log).unwrap()));

    // It dials b for several seconds (routes redial every second): b's
    // routes stay what they were and the intruder has none.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let now = routes(b.monitor_urls()).await;
        assert_eq!(now, before, "b's routes changed: the intruder joined");
        let theirs = routes(vec![monitor.clone()]).await;
        assert_eq!(theirs, [0], "the intruder has routes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // b tells the intruder why (b's own log does not, at this level).
    let told = std::fs::read_to_string(&log).unwrap();
    let why = told
        .lines()
        .find(|l| l.contains("Route Error 'Authorization Violation'"))
        .unwrap_or_else(|| panic!("the intruder was refused for its authorization: {told}"));
    eprintln!("b refused the intruder: {why}");
}

/// What a local zone runs, read from its files as the operator reads Secrets.
fn view(
    zone: &LocalZone,
) -> (
    natsregion::tls::rotation::ZoneView,
    natsregion::tls::CertKeyPem,
) {
    let read = |f: &str| std::fs::read_to_string(zone.dir().join("tls").join(f)).unwrap();
    (
        natsregion::tls::rotation::ZoneView {
            zone: zone.name().to_string(),
            cert: read("tls.crt"),
            ca: read("ca.crt"),
            rolled: true,
        },
        natsregion::tls::CertKeyPem {
            cert: read("tls.crt"),
            key: read("tls.key"),
        },
    )
}

/// Restarts each zone on `bundle` as its trusted CAs, keeping its certificate.
async fn roll_trust(zones: [&mut LocalZone; 2], bundle: &str) {
    for zone in zones {
        let (_, pair) = view(zone);
        let tls = natsregion::tls::ServerTls {
            cert: pair,
            ca: bundle.to_string(),
        };
        zone.roll_certificate(&tls).await.expect("rolled");
    }
}
