//! `spec.leafnode.proxy: toxiproxy`: the region controller against a real
//! kube-apiserver deploys the region's Toxiproxy and wires the mirror zones
//! through it; a `toxiproxy` drill against a region without it is refused;
//! and the proxies the region controller creates (over a real
//! toxiproxy-server's API) are cut, healed, probed and shaped by
//! `ToxiproxyBackend::adopt` in another "process".

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use natsregion::api::{DrillPhase, PartitionDrill, RegionMirror, Toxic, ToxicType};
use natsregion::fault::toxiproxy::api::ToxiproxyApi;
use natsregion::fault::{FaultBackend, ToxiproxyBackend};
use natsregion::local::toxiproxy::ToxiproxyServer;
use natsregion::operator::context::{Context, OperatorPods, OperatorSettings, reporter};
use natsregion::operator::drill::{DrillSettings, controller_with};
use natsregion::operator::region;
use natsregion::operator::shutdown::shutdown_on;
use natsregion::operator::toxiproxy::{ADVERTISE_PORT, ProxySpec, sync_proxies};
use natsregion::testenv::fixtures;
use natsregion::testenv::support::{eventually, plane_with_crds};
use serde_json::json;

const NS: &str = "default";

fn leaf_urls(sts: &StatefulSet) -> Vec<String> {
    let c = &sts.spec.template.spec.as_ref().unwrap().containers[0];
    c.env
        .iter()
        .flatten()
        .filter(|e| e.name.starts_with("NATS_LEAF_URL_"))
        .filter_map(|e| e.value.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_routes_mirrors_through_its_toxiproxy_and_drills_need_it() {
    let (_plane, client) = plane_with_crds().await;
    let operator =
        OperatorPods::parse("natsregion-system", "app.kubernetes.io/name=natsregion").unwrap();
    let settings = OperatorSettings {
        namespace: Some(NS.to_string()),
        status_refresh: Duration::from_secs(3),
        toxiproxy_api_policy: Some(operator.clone()),
        ..Default::default()
    };
    let ctx = Context::new(client.clone(), settings, reporter());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(region::controller(
        ctx.clone(),
        shutdown_on(async move {
            let _ = stopped.await;
        }),
    ));
    tokio::spawn(controller_with(
        ctx.clone(),
        DrillSettings {
            toxiproxy: None,
            ..Default::default()
        },
        shutdown_on(futures::future::pending()),
    ));

    let regions: Api<RegionMirror> = Api::namespaced(client.clone(), NS);
    let mut spec = fixtures::events_spec(json!([
        {"name": "a", "role": "source", "servers": 2},
        {"name": "b", "role": "mirror", "servers": 1},
    ]));
    spec["leafnode"] = json!({"proxy": "toxiproxy"});
    let cr = fixtures::region("east", spec);
    let cr = regions.create(&PostParams::default(), &cr).await.unwrap();
    let uid = cr.uid().unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let d = eventually(
        "the Toxiproxy Deployment",
        Duration::from_secs(60),
        async || {
            deployments
                .get_opt("east-toxiproxy")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("absent".to_string())
        },
    )
    .await;
    assert_eq!(d.owner_references()[0].uid, uid, "owned by the region");
    let svc = services.get("east-toxiproxy").await.expect("Service");
    let ports: Vec<i32> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [8474, ADVERTISE_PORT, 17422, 17423]);
    // Its API is the operator's alone, as the API server stores the policy.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    let policy = policies.get("east-toxiproxy").await.expect("NetworkPolicy");
    assert_eq!(policy.owner_references()[0].uid, uid, "owned by the region");
    let rules = policy.spec.unwrap().ingress.unwrap();
    let api_rule = rules
        .iter()
        .find(|r| {
            r.ports
                .iter()
                .flatten()
                .any(|p| p.port == Some(IntOrString::Int(8474)))
        })
        .expect("a rule for the API port");
    assert_eq!(
        api_rule.ports.as_ref().unwrap().len(),
        1,
        "the API port alone"
    );
    let peer = &api_rule.from.as_ref().unwrap()[0];
    assert_eq!(
        peer.pod_selector.as_ref().unwrap().match_labels.as_ref(),
        Some(&operator.labels)
    );
    assert_eq!(
        peer.namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["kubernetes.io/metadata.name"],
        "natsregion-system"
    );

    // Mirror zone b dials one proxy per source server, never the source.
    let b = sets.get("east-b").await.expect("StatefulSet of b");
    let urls = leaf_urls(&b);
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert!(
        urls[0].ends_with("@east-toxiproxy.default.svc:17422\""),
        "{urls:?}"
    );
    assert!(
        urls[1].ends_with("@east-toxiproxy.default.svc:17423\""),
        "{urls:?}"
    );
    let b_conf = maps.get("east-b-config").await.unwrap();
    let text = b_conf.data.unwrap().into_values().collect::<String>();
    assert!(text.contains("$NATS_LEAF_URL_1"), "{text}");
    assert!(!text.contains("east-a-leaf"), "{text}");
    // The source advertises the refused port on the Toxiproxy Service.
    let a_conf = maps.get("east-a-config").await.unwrap();
    let text = a_conf.data.unwrap().into_values().collect::<String>();
    assert!(
        text.contains(&format!("east-toxiproxy.default.svc:{ADVERTISE_PORT}")),
        "{text}"
    );
    assert!(!text.contains("east-a-leaf.default.svc:7422"), "{text}");

    // Back to `none`: direct links, and the Toxiproxy goes.
    regions
        .patch(
            "east",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"leafnode": {"proxy": "none"}}})),
        )
        .await
        .unwrap();
    eventually(
        "direct links without the Toxiproxy",
        Duration::from_secs(60),
        async || {
            let b = sets.get("east-b").await.map_err(|e| e.to_string())?;
            let urls = leaf_urls(&b);
            let gone = deployments
                .get_opt("east-toxiproxy")
                .await
                .map_err(|e| e.to_string())?
                .is_none()
                && policies
                    .get_opt("east-toxiproxy")
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
                && services
                    .get_opt("east-toxiproxy")
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none();
            if gone && urls.len() == 1 && urls[0].ends_with("@east-a-leaf.default.svc:7422\"") {
                Ok(())
            } else {
                Err(format!("gone {gone}, urls {urls:?}"))
            }
        },
    )
    .await;

    // A toxiproxy drill against it is refused, naming the field.
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), NS);
    let drill = fixtures::drill("cut", "east", json!({"fault": {"backend": "toxiproxy"}}));
    drills.create(&PostParams::default(), &drill).await.unwrap();
    let d = eventually("the refusal", Duration::from_secs(60), async || {
        let d = drills.get("cut").await.map_err(|e| e.to_string())?;
        match &d.status {
            Some(s) if s.phase.is_finished() => Ok(d),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let s = d.status.unwrap();
    assert_eq!(s.phase, DrillPhase::Failed);
    let message = s.message.unwrap_or_default();
    assert!(
        message.contains("precondition failed")
            && message.contains("spec.leafnode.proxy: toxiproxy"),
        "{message}"
    );
}

/// A stand-in source server: answers every connection with an INFO line.
async fn info_server() -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"INFO {}\r\n").await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

fn free_port() -> i32 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port() as i32
}

async fn enabled(url: &str) -> Vec<(String, bool)> {
    let all: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{url}/proxies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["enabled"].as_bool().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_drives_proxies_the_region_controller_created() {
    let server = ToxiproxyServer::start().await.expect("toxiproxy-server");
    let url = server.url();
    let upstream = info_server().await.to_string();
    let spec = |name: &str, zone: &str, i: i32, port: i32| ProxySpec {
        name: name.into(),
        zone: zone.into(),
        source_server: i,
        port,
        upstream: upstream.clone(),
    };
    let plan = vec![
        spec("east-b-s0", "b", 0, free_port()),
        spec("east-b-s1", "b", 1, free_port()),
        spec("east-c-1-s0", "c-1", 0, free_port()),
    ];
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = ToxiproxyApi::new(&url, Duration::from_secs(5));
    // A stale proxy of the region, and one of somebody else.
    let stale = json!({"name": "east-gone-s0", "listen": "127.0.0.1:0", "upstream": upstream});
    let other = json!({"name": "west-b-s0", "listen": "127.0.0.1:0", "upstream": upstream});
    for body in [stale, other] {
        http.post(format!("{url}/proxies"))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let done = sync_proxies(&api, "east", &plan).await.expect("sync");
    assert_eq!(done.len(), 4, "{done:?}");
    assert!(
        done.contains(&"deleted east-gone-s0".to_string()),
        "{done:?}"
    );
    assert!(
        sync_proxies(&api, "east", &plan).await.unwrap().is_empty(),
        "a second sync changes nothing"
    );

    let a = ToxiproxyBackend::adopt(&url, "east");
    assert_eq!(a.zones().await.unwrap(), ["b", "c-1"]);
    assert!(a.probe("b").await.unwrap(), "linked before the cut");
    let record = a
        .cut(&["b".to_string()], Duration::from_secs(60))
        .await
        .expect("cut adopted proxies");
    let states = enabled(&url).await;
    for (name, on) in &states {
        assert_eq!(*on, !name.starts_with("east-b-"), "{states:?}");
    }
    assert!(!a.probe("b").await.unwrap(), "the proxies refuse");
    assert!(a.probe("c-1").await.unwrap());
    // The region controller's next sync leaves the cut alone.
    assert!(sync_proxies(&api, "east", &plan).await.unwrap().is_empty());
    assert!(!a.probe("b").await.unwrap(), "still cut after a sync");
    let toxics = [Toxic {
        type_: ToxicType::Latency,
        latency_millis: Some(50),
        jitter_millis: None,
        rate_kilobytes_per_second: None,
    }];
    a.apply_toxics("c-1", &toxics)
        .await
        .expect("toxics on adopted proxies");
    let left = a.leftovers().await.unwrap();
    assert_eq!(
        left.len(),
        2 + 2,
        "two disabled proxies, two toxics: {left:?}"
    );
    assert!(
        a.cut(&["nope".to_string()], Duration::from_secs(5))
            .await
            .is_err()
    );

    // Another process heals what this one cut.
    drop(a);
    let b = ToxiproxyBackend::adopt(&url, "east");
    b.heal(&record).await.expect("heal");
    assert!(b.leftovers().await.unwrap().is_empty());
    assert!(enabled(&url).await.iter().all(|(_, on)| *on));
    assert!(b.probe("b").await.unwrap(), "linked again");
}
