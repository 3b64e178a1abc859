//! The example region on the node: README step 4's `kubectl apply -f
//! examples/region.yaml`, Ready from real readiness, then checked twice: by
//! its status and by connecting to its pods.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use natsregion::operator::region::names;

use crate::scenarios::{Cluster, NS, REGION};
use crate::util::{Outcome, err, get_json, region_resource, secs, wait_for};

pub use natsregion::testenv::node::cluster::{ZONES, apply_region, wait_region_ready};
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn ready_and_in_sync(c: &mut Cluster<'_>) -> Outcome {
    let applied = Instant::now();
    apply_region(&c.client).await?;
    let took = wait_region_ready(&c.client, READY_TIMEOUT).await?;
    c.figure(format!("region apply -> Ready: {}", secs(took)));
    let _ = applied;

    let pods = zone_pods(c).await?;
    for zone in ZONES {
        let running = pods.get(zone).map_or(0, |p| p.len());
        if running != 3 {
            return Err(format!("zone {zone}: {running} ready pods Running, want 3"));
        }
    }
    let region = get_json(&c.client, NS, &region_resource(), REGION)
        .await?
        .ok_or("region gone")?;
    let s = &region["status"];
    if s["zonesReady"] != "3/3" || s["mirrorsInSync"] != "2/2" {
        return Err(format!(
            "status says zones {} mirrors {}",
            s["zonesReady"], s["mirrorsInSync"]
        ));
    }

    // Independently of the operator: publish into the source's pods and read
    // each mirror's stream from its own pods.
    let conns = connect_zones(c).await?;
    let source = &conns["east"];
    let stream = "qa";
    for i in 0..5 {
        source
            .publish(format!("events.qa.check.{i}"), "hello".into())
            .await
            .map_err(err)?
            .await
            .map_err(err)?;
    }
    let want = last_seq(source, stream).await?;
    let started = Instant::now();
    for zone in ["west", "north"] {
        let js = &conns[zone];
        wait_for(
            &format!("mirror {zone} at {want}"),
            Duration::from_secs(30),
            || async {
                let got = last_seq(js, stream).await?;
                Ok(if got == want {
                    Ok(())
                } else {
                    Err(format!("last_seq {got}"))
                })
            },
        )
        .await?;
    }
    c.figure(format!(
        "5 messages published to east's pods, in both mirrors' pods after {}",
        secs(started.elapsed())
    ));
    Ok(())
}

/// Ready, Running pods of each zone, by zone.
pub async fn zone_pods(c: &Cluster<'_>) -> Outcome<BTreeMap<String, Vec<Pod>>> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in pods.list(&ListParams::default()).await.map_err(err)?.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(zone) = ZONES
            .iter()
            .find(|z| name.starts_with(&format!("{}-", names::statefulset(REGION, z))))
        else {
            continue;
        };
        let running = pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if running {
            out.entry(zone.to_string()).or_default().push(pod);
        }
    }
    Ok(out)
}

pub async fn credentials(c: &Cluster<'_>) -> Outcome<(String, String)> {
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let s = secrets
        .get(&names::generated_credentials(REGION))
        .await
        .map_err(err)?;
    let data = s.data.unwrap_or_default();
    let field = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or(format!("secret has no {k}"))
    };
    Ok((field("user")?, field("password")?))
}

/// The region's CA (`ca.crt` of the CA Secret the operator generated).
pub async fn region_ca(c: &Cluster<'_>) -> Outcome<String> {
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let s = secrets.get(&names::ca_secret(REGION)).await.map_err(err)?;
    s.data
        .unwrap_or_default()
        .get(natsregion::tls::CA_KEY)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .ok_or("the CA Secret has no ca.crt".to_string())
}

/// TLS options for dialing a zone by IP from the host: verified with the
/// region's CA for `name`, the DNS name the server's certificate carries.
pub fn tls_for(ca: &str, name: &str) -> Outcome<async_nats::ConnectOptions> {
    let tls = natsregion::testenv::tls_probe::client_config_for_name(ca, name)?;
    Ok(async_nats::ConnectOptions::new()
        .require_tls(true)
        .tls_client_config(tls))
}

/// A JetStream context per zone, dialled at one of its pods' IPs from the
/// host (the pod bridge is routed there), over TLS verified with the region CA.
pub async fn connect_zones(
    c: &Cluster<'_>,
) -> Outcome<BTreeMap<String, async_nats::jetstream::Context>> {
    let (user, password) = credentials(c).await?;
    let ca = region_ca(c).await?;
    let pods = zone_pods(c).await?;
    let mut out = BTreeMap::new();
    for zone in ZONES {
        let pod = pods
            .get(zone)
            .and_then(|p| p.first())
            .ok_or(format!("zone {zone} has no pod"))?;
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or(format!("zone {zone} has no pod IP"))?;
        let name = format!(
            "{}.{}.{NS}.svc",
            pod.metadata.name.clone().unwrap_or_default(),
            names::headless_service(REGION, zone)
        );
        let client = tls_for(&ca, &name)?
            .user_and_password(user.clone(), password.clone())
            .ignore_discovered_servers()
            .connect(format!("{ip}:{}", natsregion::plan::ports::CLIENT_PORT))
            .await
            .map_err(|e| format!("connect to zone {zone} at {ip}: {e}"))?;
        out.insert(
            zone.to_string(),
            async_nats::jetstream::with_domain(client, zone),
        );
    }
    Ok(out)
}

pub async fn last_seq(js: &async_nats::jetstream::Context, stream: &str) -> Outcome<u64> {
    let mut s = js.get_stream(stream).await.map_err(err)?;
    Ok(s.info().await.map_err(err)?.state.last_sequence)
}

/// Deleting the RegionMirror removes everything it made: workloads, their
/// pods, Services, ConfigMaps, Secrets, budgets, policies; with the default
/// `deletionPolicy: Retain` the zones' data claims stay, and deleting them
/// by the region's label (the README's clean-up) frees their volumes.
pub async fn deleted_leaves_nothing(c: &mut Cluster<'_>) -> Outcome {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::DeleteParams;

    crate::util::delete(&c.client, NS, &region_resource(), REGION).await?;
    let client = c.client.clone();
    // deletionPolicy Retain (the default): every object goes, the zones'
    // data claims and their volumes stay.
    let (kept, took) = wait_for(
        "every object of region qa gone but its data",
        Duration::from_secs(240),
        || {
            let client = client.clone();
            async move {
                let (objects, data) = left_behind(&client).await?;
                Ok(if objects.is_empty() {
                    Ok(data)
                } else {
                    Err(objects.join(", "))
                })
            }
        },
    )
    .await?;
    let claims = kept
        .iter()
        .filter(|d| d.starts_with("PersistentVolumeClaim"))
        .count();
    if claims == 0 {
        return Err(format!(
            "deletionPolicy Retain kept no data claim: {kept:?}"
        ));
    }
    c.figure(format!(
        "RegionMirror deleted (deletionPolicy Retain): its objects and pods gone after {}, {claims} data claims kept",
        secs(took)
    ));
    // The clean-up the README gives for retained data.
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default()
                .labels(&format!("{}={REGION}", natsregion::meta::labels::REGION)),
        )
        .await
        .map_err(err)?;
    let (_, took) = wait_for(
        "the data of region qa gone after its claims were deleted",
        Duration::from_secs(240),
        || {
            let client = client.clone();
            async move {
                let (mut left, data) = left_behind(&client).await?;
                left.extend(data);
                Ok(if left.is_empty() {
                    Ok(())
                } else {
                    Err(left.join(", "))
                })
            }
        },
    )
    .await?;
    c.figure(format!(
        "retained claims deleted by label: their volumes gone after {}",
        secs(took)
    ));
    Ok(())
}

/// What is left of region qa: its objects (the RegionMirror included), and
/// apart its data (claims `data-qa-…` and their volumes).
async fn left_behind(client: &kube::Client) -> Outcome<(Vec<String>, Vec<String>)> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Service};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    let (mut objects, mut data) = (Vec::new(), Vec::new());
    let named = |kind: &str, names: Vec<String>, left: &mut Vec<String>| {
        for n in names
            .into_iter()
            .filter(|n| n.starts_with(&format!("{REGION}-")))
        {
            left.push(format!("{kind} {n}"));
        }
    };
    macro_rules! names_of {
        ($t:ty) => {
            Api::<$t>::namespaced(client.clone(), NS)
                .list(&ListParams::default())
                .await
                .map_err(err)?
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect::<Vec<_>>()
        };
    }
    named("StatefulSet", names_of!(StatefulSet), &mut objects);
    named("Deployment", names_of!(Deployment), &mut objects);
    named("Pod", names_of!(Pod), &mut objects);
    named("Service", names_of!(Service), &mut objects);
    named("ConfigMap", names_of!(ConfigMap), &mut objects);
    named("Secret", names_of!(Secret), &mut objects);
    named(
        "PodDisruptionBudget",
        names_of!(PodDisruptionBudget),
        &mut objects,
    );
    for p in names_of!(NetworkPolicy) {
        objects.push(format!("NetworkPolicy {p}"));
    }
    if get_json(client, NS, &region_resource(), REGION)
        .await?
        .is_some()
    {
        objects.push("the RegionMirror itself".into());
    }
    for n in names_of!(PersistentVolumeClaim)
        .into_iter()
        .filter(|n| n.starts_with(&format!("data-{REGION}-")))
    {
        data.push(format!("PersistentVolumeClaim {n}"));
    }
    let pvs = Api::<PersistentVolume>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(err)?
        .items;
    for pv in pvs {
        let claim = pv
            .spec
            .and_then(|s| s.claim_ref)
            .and_then(|r| r.name)
            .unwrap_or_default();
        if claim.contains(&format!("-{REGION}-")) {
            data.push(format!("PersistentVolume for {claim}"));
        }
    }
    Ok((objects, data))
}
