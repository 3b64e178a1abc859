//! A configuration change rolling every zone's pods (one at a time, lame
//! duck in preStop) while a producer publishes: not one acked message may be
//! missing from the source or any mirror afterwards. The change is
//! `spec.leafnode.proxy: toxiproxy`, which the toxiproxy drill needs anyway.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use natsregion::operator::region::names;

use crate::region::{ZONES, connect_zones, credentials, region_ca, tls_for, wait_region_ready};
use crate::scenarios::{Cluster, NS, REGION};
use crate::util::{Outcome, err, secs, wait_for};
use natsregion::testenv::node::cluster::set_leafnode_proxy;

const SUBJECT: &str = "events.qa.roll";

#[derive(Default)]
struct Produced {
    acked: BTreeSet<String>,
    attempts: u64,
    retries: u64,
    longest_stall: Duration,
}

pub async fn config_change_under_traffic(c: &mut Cluster<'_>) -> Outcome {
    // The source's client Service: its ClusterIP is reachable from the host
    // through kube-proxy's rules, and follows the pods as they roll.
    let services: Api<Service> = Api::namespaced(c.client.clone(), NS);
    let svc = services
        .get(&names::client_service(REGION, "east"))
        .await
        .map_err(err)?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .ok_or("source client Service has no ClusterIP")?;
    let (user, password) = credentials(c).await?;
    let ca = region_ca(c).await?;
    let client = tls_for(&ca, &names::client_host(NS, REGION, "east"))?
        .user_and_password(user, password)
        .ignore_discovered_servers()
        .retry_on_initial_connect()
        .connect(format!("{ip}:{}", natsregion::plan::ports::CLIENT_PORT))
        .await
        .map_err(err)?;
    let js = jetstream::with_domain(client, "east");

    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(js.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let rolled = set_leafnode_proxy(&c.client, "toxiproxy").await?;
    wait_region_ready(&c.client, Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let produced = producer.await.map_err(err)?;

    // Every acked id in the source and in each mirror.
    let zones = connect_zones(c).await?;
    let mut missing = Vec::new();
    for zone in ZONES {
        let js = &zones[zone];
        let ids = wait_for(
            &format!("zone {zone} holds every acked id"),
            Duration::from_secs(60),
            || async {
                let ids = stored_ids(js).await?;
                let absent = produced.acked.difference(&ids).count();
                Ok(if absent == 0 {
                    Ok(ids)
                } else {
                    Err(format!("{absent} acked ids absent"))
                })
            },
        )
        .await;
        if let Err(e) = ids {
            missing.push(e);
        }
    }
    c.figure(format!(
        "rolling change (leafnode.proxy) under traffic: 3 zones x 3 pods rolled in {}, {} publishes, {} acked, {} retried, longest stall {}, acked missing: {}",
        secs(rolled),
        produced.attempts,
        produced.acked.len(),
        produced.retries,
        secs(produced.longest_stall),
        if missing.is_empty() { "none".to_string() } else { missing.join("; ") }
    ));
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

/// Publishes with unique ids about 50 times a second until `stop`; each id
/// is retried (the stream's duplicate window makes that safe) until acked.
async fn produce(js: jetstream::Context, stop: Arc<AtomicBool>) -> Produced {
    let mut p = Produced::default();
    let mut last_ack = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("roll-{n}");
        loop {
            p.attempts += 1;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            let sent = js
                .publish_with_headers(SUBJECT, headers, id.clone().into())
                .await;
            let acked = match sent {
                Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack).await,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    p.retries += 1;
                    continue;
                }
            };
            if let Ok(Ok(_)) = acked {
                p.longest_stall = p.longest_stall.max(last_ack.elapsed());
                last_ack = Instant::now();
                p.acked.insert(id.clone());
                break;
            }
            p.retries += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stop.load(Ordering::SeqCst) && p.retries > 1000 {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p
}

/// Ids of every message on [`SUBJECT`] in the zone's stream.
async fn stored_ids(js: &jetstream::Context) -> Outcome<BTreeSet<String>> {
    let stream = js.get_stream("qa").await.map_err(err)?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: SUBJECT.into(),
            ..Default::default()
        })
        .await
        .map_err(err)?;
    let pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await.map_err(err)?;
    let mut ids = BTreeSet::new();
    let mut seen = 0;
    while seen < pending {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| format!("read {seen} of {pending} messages"))?
            .ok_or("message stream ended")?
            .map_err(err)?;
        seen += 1;
        ids.insert(String::from_utf8_lossy(&m.payload).into_owned());
    }
    Ok(ids)
}
