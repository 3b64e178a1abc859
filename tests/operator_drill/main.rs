//! The PartitionDrill controller against a real kube-apiserver
//! (testenv::ControlPlane), real local nats-server zones that the RegionMirror
//! names as `external`, and a real toxiproxy-server whose proxies carry the
//! mirror zones' leafnode links. The operator only knows the Toxiproxy API URL
//! and the proxy prefix, as it would in a cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use natsregion::api::{Claim, DrillPhase, PartitionDrill, RegionMirror, Topology, Verdict};
use natsregion::cli::local_drill::LocalRuntime;
use natsregion::drill::runtime::Runtime;
use natsregion::fault::FaultBackend;
use natsregion::fault::leaflinks::{LeafLinks, SystemAccess};
use natsregion::fault::networkpolicy::{
    FAULT_LABEL, Isolation, NetworkPolicyBackend, NetworkPolicyTarget, cut_policies,
};
use natsregion::fault::toxiproxy::ToxiproxyBackend;
use natsregion::local::toxiproxy::ToxiproxyServer;
use natsregion::local::{LocalRegion, LocalRegionOptions, generate_credentials};
use natsregion::meta::labels;
use natsregion::nats::connect::{ConnectSettings, connect};
use natsregion::operator::context::{Context, OperatorSettings, reporter};
use natsregion::operator::drill::runtime::{KubernetesZones, LocalZones, TemporaryZones};
use natsregion::operator::drill::toxiproxy::ToxiproxyTarget;
use natsregion::operator::drill::{
    ABORT_ANNOTATION, DrillSettings, FINALIZER, RESTARTED, controller_with,
};
use natsregion::operator::region::validated::ValidatedRegion;
use natsregion::operator::shutdown::shutdown_on;
use natsregion::testenv::fixtures;
use natsregion::testenv::support::{eventually, plane_with_crds};
use serde_json::json;
use tokio::task::JoinHandle;

mod gitops;
mod safety;
mod world;
use world::*;

/// A mirror zone that does not trust the source's certificate: the drill
/// refuses to start and says why, before any fault.
#[tokio::test]
async fn a_drill_on_a_region_whose_mirror_distrusts_the_source_refuses_to_start() {
    let (_plane, client) = plane_with_crds().await;
    let (region, secrets) = fixtures::region_with_untrusted_mirror(NS, "trust");
    for s in secrets {
        Api::<Secret>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }
    Api::<RegionMirror>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &region)
        .await
        .unwrap();
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), NS);
    let mut spec = small_drill(3, None);
    spec["fault"]["backend"] = json!("networkPolicy");
    drills
        .create(
            &PostParams::default(),
            &fixtures::drill("trust-drill", "trust", spec),
        )
        .await
        .unwrap();
    let operator = start_operator(&client, DrillSettings::default());
    let message = refused(&drills, "trust-drill").await;
    assert!(
        message.contains("do not trust the source zone's certificate"),
        "{message}"
    );
    assert!(
        message.contains("zone b: TLS:") && message.contains("UnknownIssuer"),
        "{message}"
    );
    kill(operator).await;
}

/// The report ConfigMap `status.report` names, decoded: (JSON, SVG).
async fn stored_report(client: &Client, d: &PartitionDrill) -> (serde_json::Value, String) {
    use natsregion::operator::drill::reports;
    let s = d.status.as_ref().expect("status");
    let name = s
        .report
        .as_deref()
        .unwrap_or_else(|| panic!("no report: {}", show(d)));
    assert_eq!(
        s.history.last().and_then(|h| h.report.as_deref()),
        Some(name)
    );
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .expect("report ConfigMap");
    assert_eq!(
        cm.owner_references()[0].uid,
        d.uid().unwrap(),
        "owned by the drill"
    );
    let stored = reports::decode(&cm).expect("decodes");
    assert!(stored.truncated.is_none());
    (
        serde_json::from_slice(&stored.json).expect("report JSON"),
        stored.svg.expect("timeline SVG"),
    )
}

/// `kubectl wait --for=condition=<type_>=<status>`: watches the drill until
/// the condition says so (and was written for the current generation).
async fn wait_condition(
    drills: &Api<PartitionDrill>,
    name: &str,
    type_: &'static str,
    status: &'static str,
    seconds: u64,
) -> PartitionDrill {
    let cond = move |d: Option<&PartitionDrill>| {
        d.is_some_and(|d| {
            d.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == type_
                        && c.status == status
                        && c.observed_generation == d.metadata.generation
                })
            })
        })
    };
    match tokio::time::timeout(
        Duration::from_secs(seconds),
        kube::runtime::wait::await_condition(drills.clone(), name, cond),
    )
    .await
    {
        Ok(Ok(Some(d))) => d,
        other => {
            let d = drills.get(name).await.expect("get drill");
            panic!(
                "drill {name}: condition {type_}={status} not reached in {seconds}s ({:?}); status: {}",
                other.map(|r| r.map(|_| ())),
                show(&d)
            )
        }
    }
}

fn expect_conditions(d: &PartitionDrill, want: &[(&str, &str)]) {
    let s = d.status.as_ref().expect("status");
    for (type_, status) in want {
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == *type_)
            .unwrap_or_else(|| panic!("no {type_} condition: {}", show(d)));
        assert_eq!(c.status, *status, "{type_}: {}", show(d));
        assert_eq!(c.observed_generation, d.metadata.generation);
        assert!(!c.reason.is_empty() && !c.message.is_empty(), "{c:?}");
    }
}

/// The drill as `kubectl get` prints it: the server's Table (printer
/// columns), as column name to cell.
async fn table_row(client: &Client, name: &str) -> serde_json::Map<String, serde_json::Value> {
    let req = http::Request::get(format!(
        "/apis/natsregion.io/v1alpha1/namespaces/{NS}/partitiondrills/{name}"
    ))
    .header(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value =
        serde_json::from_str(&client.request_text(req).await.expect("Table")).unwrap();
    let names = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string());
    let cells = table["rows"][0]["cells"].as_array().expect("cells").clone();
    names.zip(cells).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_end_with_verdicts_in_status() {
    let (_plane, client) = plane_with_crds().await;
    let good = World::start(client.clone(), "east", None).await;
    let broken = World::start(client.clone(), "west", Some("$JS.nope.API")).await;

    // One operator per world: each knows one Toxiproxy prefix.
    let operator = start_operator(&client, good.settings());
    let started = Instant::now();
    let drills = good.create_drill("east-drill", small_drill(3, None)).await;
    // What `kubectl wait --for=condition=X partitiondrill/east-drill` does.
    wait_condition(&drills, "east-drill", "Reconciling", "True", 60).await;
    let d = wait_condition(&drills, "east-drill", "Succeeded", "True", 120).await;
    eprintln!("healthy drill took {:?}", started.elapsed());
    expect_conditions(
        &d,
        &[
            ("Reconciling", "False"),
            ("Completed", "True"),
            ("Failed", "False"),
            ("Stalled", "False"),
        ],
    );
    let row = table_row(&client, "east-drill").await;
    assert_eq!(row["Claims"], "4/4", "{row:?}");
    assert!(row["Catch-up"].is_number(), "{row:?}");
    let d = wait_for(
        &drills,
        "east-drill",
        Duration::from_secs(120),
        "the end",
        finished,
    )
    .await;
    // Conditions are written only when they change: a finished drill rests.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = drills.get("east-drill").await.unwrap();
    assert_eq!(again.resource_version(), d.resource_version());
    // The run's full report and timeline, kept in a ConfigMap the drill owns.
    let (report, svg) = stored_report(&client, &d).await;
    assert_eq!(report["status"]["verdict"], "Passed", "{report}");
    assert_eq!(report["status"]["claimsPassed"], "4/4");
    assert_eq!(report["drill"], "east-drill");
    assert!(
        report["timeline"]["zones"]["b"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        svg.starts_with("<svg") && svg.contains("b (mirror)"),
        "{}",
        &svg[..80]
    );
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Succeeded, "{}", show(&d));
    assert_eq!(s.verdict, Verdict::Passed, "{}", show(&d));
    assert_eq!(s.claims.len(), 4, "{}", show(&d));
    assert!(
        s.claims
            .iter()
            .all(|c| c.verdict == Verdict::Passed && !c.evidence.is_empty())
    );
    assert_eq!(
        (s.totals.attempted, s.totals.acked, s.totals.lost),
        (1500, 1500, 0)
    );
    assert!(!s.faults.is_empty() && s.faults.iter().all(|f| f.healed_at.is_some()));
    assert_eq!(s.history.len(), 1);
    assert_eq!(s.current_step.as_deref(), Some("verify"));
    assert!(
        good.proxies().await.values().all(|e| *e),
        "{:?}",
        good.proxies().await
    );
    // The temporary zone was removed after the drill.
    assert!(good.runtime.zones().iter().all(|z| z.name() != "joiner"));
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("east-drill"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "DrillStarted")
            && reasons.iter().any(|r| r == "DrillSucceeded"),
        "{reasons:?}"
    );
    kill(operator).await;

    let operator = start_operator(&client, broken.settings());
    let drills = broken
        .create_drill(
            "west-drill",
            small_drill(
                3,
                Some("produce, partition, produce, heal, wait-for-catch-up, verify"),
            ),
        )
        .await;
    // A failing drill: `kubectl wait --for=condition=Failed` returns.
    let d = wait_condition(&drills, "west-drill", "Failed", "True", 120).await;
    expect_conditions(
        &d,
        &[
            ("Completed", "True"),
            ("Succeeded", "False"),
            ("Stalled", "True"),
        ],
    );
    assert_eq!(
        table_row(&client, "west-drill").await["Claims"],
        "0/4",
        "claims 1 and 2 failed, 3 and 4 not run"
    );
    let d = wait_for(
        &drills,
        "west-drill",
        Duration::from_secs(120),
        "the end",
        finished,
    )
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Failed, "{}", show(&d));
    let (report, _) = stored_report(&client, &d).await;
    assert_eq!(report["status"]["verdict"], "Failed", "{report}");
    let c2 = s
        .claims
        .iter()
        .find(|c| c.claim == Claim::NoLossAfterHeal)
        .expect("claim 2 judged");
    assert_eq!(c2.verdict, Verdict::Failed, "{}", show(&d));
    assert!(c2.message.contains("did not catch up"), "{}", c2.message);
    assert!(broken.proxies().await.values().all(|e| *e));
    kill(operator).await;
}

/// The operator runs a drill on a sources region (two writable zones and a
/// third joining) and ends with the four claims judged on that topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_on_a_sources_region_passes_all_four_claims() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start_with(client.clone(), "south", None, Topology::Sources).await;
    let operator = start_operator(&client, world.settings());
    let drills = world
        .create_drill("south-drill", small_drill(3, None))
        .await;
    let d = wait_for(
        &drills,
        "south-drill",
        Duration::from_secs(180),
        "the end",
        finished,
    )
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.verdict, Verdict::Passed, "{}", show(&d));
    assert!(
        s.claims.iter().all(|c| c.verdict == Verdict::Passed),
        "{}",
        show(&d)
    );
    // Five phases of 300 from a and b, and the joiner's last one.
    assert_eq!(
        (s.totals.attempted, s.totals.lost),
        (3300, 0),
        "{}",
        show(&d)
    );
    let join = s
        .claims
        .iter()
        .find(|c| c.claim == Claim::ZoneJoin)
        .unwrap();
    assert!(join.evidence.contains_key("appearedIn.a"), "{join:?}");
    operator.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_heals_and_a_deleted_drill_heals_first() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let steps = Some("produce, partition, produce, heal, wait-for-catch-up, verify");

    // Leafnode links seen and broken through the system account (what the
    // networkPolicy backend does after its policies land).
    let links = world.links();
    let before = links.leafz("b").await.expect("LEAFZ");
    assert!(links.linked("b").await.unwrap(), "b is linked: {before:?}");
    assert!(links.kick("b").await.expect("kick") >= 1);
    let start = Instant::now();
    let after = loop {
        let now = links.leafz("b").await.expect("LEAFZ");
        if now.iter().any(|s| !s.cids.is_empty()) {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "b never redialed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(before[0].cids, after[0].cids, "the old link was closed");

    // The networkPolicy backend with system access: policies applied, links
    // broken. This control plane has no CNI, so nothing enforces the
    // policies: b redials, and the probe reports the leak.
    let np = NetworkPolicyBackend::new(
        client.clone(),
        NetworkPolicyTarget {
            namespace: NS.into(),
            region: world.region.clone(),
            drill: "leaky".into(),
            source_zone: "a".into(),
            owner: None,
        },
    )
    .with_links(world.links());
    let record = np
        .cut(&["b".to_string()], Duration::from_secs(60))
        .await
        .expect("cut");
    assert_eq!(np.leftovers().await.unwrap().len(), 2);
    let start = Instant::now();
    while !np.probe("b").await.expect("observable with system access") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "an unenforced cut must show as a link"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    np.heal(&record).await.expect("heal");
    assert!(np.leftovers().await.unwrap().is_empty());

    // A fault goes at its deadline even when nobody heals it.
    let cutter = ToxiproxyBackend::adopt(world.toxiproxy.url(), &world.prefix);
    cutter
        .cut(&["b".to_string()], Duration::from_secs(1))
        .await
        .expect("cut by name");
    assert!(
        world
            .proxies()
            .await
            .iter()
            .any(|(p, e)| p.contains("-b-") && !e)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!links.linked("b").await.unwrap(), "cut: no leafnode link");
    assert!(
        !cutter.probe("b").await.expect("probe"),
        "the proxy refuses"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let proxies = world.proxies().await;
    assert!(proxies.values().all(|e| *e), "deadline heal: {proxies:?}");
    assert!(
        cutter.probe("b").await.expect("probe"),
        "the proxy answers again"
    );
    drop(cutter);

    // Kill the operator while the partition is on.
    let operator = start_operator(&client, world.settings());
    let drills = world.create_drill("killed", small_drill(60, steps)).await;
    let d = wait_for(&drills, "killed", Duration::from_secs(60), "a cut", cut_on).await;
    assert!(
        d.finalizers().iter().any(|f| f == FINALIZER),
        "finalizer before the first fault"
    );
    kill(operator).await;
    let proxies = world.proxies().await;
    assert!(
        proxies
            .iter()
            .any(|(p, enabled)| p.contains("-b-") && !enabled),
        "the cut outlives the killed operator: {proxies:?}"
    );
    let restarted = Instant::now();
    let operator = start_operator(&client, world.settings());
    let d = wait_for(&drills, "killed", Duration::from_secs(30), "Aborted", |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.phase == DrillPhase::Aborted)
    })
    .await;
    eprintln!("restarted operator healed in {:?}", restarted.elapsed());
    let s = d.status.as_ref().unwrap();
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .starts_with(RESTARTED),
        "{}",
        show(&d)
    );
    expect_healed(&d);
    let proxies = world.proxies().await;
    assert!(proxies.values().all(|e| *e), "{proxies:?}");
    wait_for(
        &drills,
        "killed",
        Duration::from_secs(10),
        "finalizer removed",
        finished,
    )
    .await;

    // Delete a drill in the middle of its partition.
    let drills = world.create_drill("deleted", small_drill(60, steps)).await;
    wait_for(&drills, "deleted", Duration::from_secs(60), "a cut", cut_on).await;
    assert!(
        world
            .proxies()
            .await
            .iter()
            .any(|(p, e)| p.contains("-b-") && !e)
    );
    delete_drill(&drills, "deleted", Duration::from_secs(30)).await;
    let proxies = world.proxies().await;
    assert!(
        proxies.values().all(|e| *e),
        "healed before it went: {proxies:?}"
    );

    // An orderly stop (SIGTERM) in the middle of a partition heals first.
    kill(operator).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = start_stoppable(&client, world.settings(), async move {
        let _ = stop_rx.await;
    });
    let drills = world.create_drill("stopped", small_drill(60, steps)).await;
    wait_for(&drills, "stopped", Duration::from_secs(60), "a cut", cut_on).await;
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("the operator stops after healing")
        .unwrap();
    let d = drills.get("stopped").await.unwrap();
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Aborted, "{}", show(&d));
    expect_healed(&d);
    assert!(world.proxies().await.values().all(|e| *e));
    let operator = start_operator(&client, world.settings());
    wait_for(
        &drills,
        "stopped",
        Duration::from_secs(10),
        "finalizer removed",
        finished,
    )
    .await;

    // The abort annotation in the middle of a partition.
    let drills = world.create_drill("aborted", small_drill(60, steps)).await;
    wait_for(&drills, "aborted", Duration::from_secs(60), "a cut", cut_on).await;
    drills
        .patch(
            "aborted",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ABORT_ANNOTATION: "true"}}})),
        )
        .await
        .expect("annotate");
    let d = wait_for(
        &drills,
        "aborted",
        Duration::from_secs(30),
        "the end",
        finished,
    )
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Aborted, "{}", show(&d));
    expect_healed(&d);
    assert!(world.proxies().await.values().all(|e| *e));

    // Deleting the region in the middle of a partition aborts and heals.
    let drills = world.create_drill("orphaned", small_drill(60, steps)).await;
    wait_for(
        &drills,
        "orphaned",
        Duration::from_secs(60),
        "a cut",
        cut_on,
    )
    .await;
    Api::<RegionMirror>::namespaced(client.clone(), NS)
        .delete(&world.region, &DeleteParams::default())
        .await
        .expect("delete region");
    let d = wait_for(
        &drills,
        "orphaned",
        Duration::from_secs(30),
        "the end",
        finished,
    )
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Aborted, "{}", show(&d));
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("was deleted"),
        "{}",
        show(&d)
    );
    expect_healed(&d);
    assert!(world.proxies().await.values().all(|e| *e));
    kill(operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policies_cut_only_leafnodes_and_go_away_on_heal() {
    let (_plane, client) = plane_with_crds().await;
    // Pods with the labels zone pods carry (no kubelet: they stay Pending,
    // which is enough to check what the selectors pick).
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for (name, region, zone) in [
        ("east-a-0", "east", "a"),
        ("east-b-0", "east", "b"),
        ("east-c-0", "east", "c"),
        ("west-b-0", "west", "b"),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {labels::REGION: region, labels::ZONE: zone}},
            "spec": {"containers": [{"name": "nats", "image": "nats"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("pod");
    }
    let backend = NetworkPolicyBackend::new(
        client.clone(),
        NetworkPolicyTarget {
            namespace: NS.into(),
            region: "east".into(),
            drill: "np".into(),
            source_zone: "a".into(),
            owner: None,
        },
    );
    let record = backend
        .cut(&["b".to_string()], Duration::from_secs(60))
        .await
        .expect("cut applies");
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    let applied = policies
        .list(&ListParams::default().labels(&format!("{}=np", labels::DRILL)))
        .await
        .unwrap()
        .items;
    assert_eq!(applied.len(), 2);
    assert!(applied.iter().all(|p| p.labels().contains_key(FAULT_LABEL)));
    // The API server kept what the builder made (nothing dropped or defaulted away).
    let built = cut_policies(&natsregion::fault::networkpolicy::CutPlan {
        namespace: NS.into(),
        region: "east".into(),
        drill: "np".into(),
        source_zone: "a".into(),
        zones: vec!["b".into()],
        fault: record.id.clone(),
        owner: None,
        deadline: record.deadline.0,
        keep_linked: Vec::new(),
        isolated: Isolation::default(),
    });
    for b in &built {
        let a = applied
            .iter()
            .find(|a| a.metadata.name == b.metadata.name)
            .expect("applied by name");
        assert_eq!(a.spec, b.spec);
        // The deadline travels with the policy, for a reaper of any process.
        assert_eq!(
            a.annotations()
                .get(natsregion::fault::deadline::ANNOTATION)
                .and_then(|v| natsregion::fault::deadline::parse_annotation(v)),
            Some(record.deadline.0)
        );
    }
    let select = |sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        let pods = pods.clone();
        let selector: kube::core::Selector = sel.clone().try_into().expect("selector");
        async move {
            let mut names: Vec<String> = pods
                .list(&ListParams::default().labels_from(&selector))
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| p.name_any())
                .collect();
            names.sort();
            names
        }
    };
    let ingress = applied
        .iter()
        .find(|p| p.name_any().ends_with("-ingress"))
        .unwrap()
        .spec
        .clone()
        .unwrap();
    assert_eq!(
        select(ingress.pod_selector.as_ref().unwrap()).await,
        ["east-a-0"]
    );
    let leaf_rule = &ingress.ingress.as_ref().unwrap()[2];
    assert_eq!(
        leaf_rule.ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(7422))
    );
    let mut allowed = Vec::new();
    for peer in leaf_rule.from.as_ref().unwrap() {
        if let (Some(sel), None) = (&peer.pod_selector, &peer.namespace_selector) {
            allowed.extend(select(sel).await);
        }
    }
    allowed.sort();
    allowed.dedup();
    assert_eq!(
        allowed,
        ["east-a-0", "east-c-0"],
        "7422 stays open to the region's pods but the cut zone's, and no others"
    );
    let egress = applied
        .iter()
        .find(|p| p.name_any().ends_with("-egress"))
        .unwrap()
        .spec
        .clone()
        .unwrap();
    assert_eq!(
        select(egress.pod_selector.as_ref().unwrap()).await,
        ["east-b-0"]
    );
    let client_rule = &ingress.ingress.as_ref().unwrap()[0];
    assert!(client_rule.from.is_none());
    let client_port_open = client_rule.ports.as_ref().unwrap().iter().any(|p| {
        p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(4222))
            && p.protocol.as_deref() == Some("TCP")
    });
    assert!(client_port_open, "the operator's client port stays open");
    assert_eq!(backend.leftovers().await.unwrap().len(), 2);
    assert!(
        backend.probe("b").await.is_err(),
        "not observable from the operator"
    );

    // A fresh backend (a restarted operator) heals what the first one cut.
    let fresh = NetworkPolicyBackend::new(
        client.clone(),
        NetworkPolicyTarget {
            namespace: NS.into(),
            region: "east".into(),
            drill: "np".into(),
            source_zone: String::new(),
            owner: None,
        },
    );
    fresh.heal(&record).await.expect("heal");
    assert!(fresh.leftovers().await.unwrap().is_empty());
    assert!(
        policies
            .list(&ListParams::default().labels(&format!("{}=np", labels::DRILL)))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    backend
        .heal(&record)
        .await
        .expect("a second heal is harmless");

    // A namespace that denies everything by default: the cut's policies, as
    // the API server stores them, allow nothing (any allowance would open
    // what the default-deny closes), and the default-deny is left alone.
    let deny: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "default-deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &deny)
        .await
        .expect("default-deny");
    let record = backend
        .cut(&["b".to_string()], Duration::from_secs(60))
        .await
        .expect("cut applies");
    let applied = policies
        .list(&ListParams::default().labels(&format!("{}=np", labels::DRILL)))
        .await
        .unwrap()
        .items;
    assert_eq!(applied.len(), 2);
    for p in &applied {
        let spec = p.spec.as_ref().unwrap();
        assert!(
            spec.ingress.iter().flatten().next().is_none()
                && spec.egress.iter().flatten().next().is_none(),
            "{} allows something under a default-deny: {spec:?}",
            p.name_any()
        );
    }
    backend.heal(&record).await.expect("heal");
    assert!(policies.get_opt("default-deny").await.unwrap().is_some());
    policies
        .delete("default-deny", &Default::default())
        .await
        .unwrap();

    // Temporary zones in a cluster: the region controller's builders, labelled
    // with and owned by the drill. No kubelet here, so the servers never get
    // ready and the start is cut short; what was applied must still go.
    let region = fixtures::region(
        "east",
        fixtures::events_spec(json!([
            {"name": "a", "role": "source", "servers": 1},
            {"name": "b", "role": "mirror", "servers": 1},
        ])),
    );
    let region = Api::<RegionMirror>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &region)
        .await
        .expect("region");
    let drill = fixtures::drill("joins", "east", json!({}));
    let drill = Api::<PartitionDrill>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &drill)
        .await
        .expect("drill");
    let ctx = Context::new(client.clone(), OperatorSettings::default(), reporter());
    let zones = KubernetesZones::new(ctx);
    let joiner = fixtures::zone(json!({"name": "joiner", "role": "mirror", "servers": 1}));
    let valid = ValidatedRegion::load(&zones.ctx, &region, None)
        .await
        .expect("region validated, credentials generated");
    let started =
        tokio::time::timeout(Duration::from_secs(3), zones.add(&valid, &drill, &joiner)).await;
    assert!(started.is_err(), "no kubelet: the zone never gets ready");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let sts = sets.get("east-joiner").await.expect("StatefulSet applied");
    assert_eq!(sts.labels()[labels::DRILL], "joins");
    assert_eq!(sts.owner_references()[0].uid, drill.uid().unwrap());
    // Its certificate, of the region's CA, owned by the drill like the zone.
    let cert = Api::<Secret>::namespaced(client.clone(), NS)
        .get("east-joiner-tls")
        .await
        .expect("the temporary zone's certificate");
    assert_eq!(cert.owner_references()[0].uid, drill.uid().unwrap());
    assert_eq!(cert.labels()[labels::DRILL], "joins");
    zones.remove(&drill, "joiner").await.expect("removed");
    assert!(sets.get_opt("east-joiner").await.unwrap().is_none());
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), NS);
    assert!(cms.get_opt("east-joiner-config").await.unwrap().is_none());
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    assert!(
        services
            .get_opt("east-joiner-client")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_drill_runs_again_and_keeps_bounded_history() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    // Runs start now and on the next two minute boundaries. A duplicate window
    // longer than the wait for the second run and shorter than the gap from the
    // first run's last message to the third run puts run 2 inside the first
    // run's window and run 3 after it.
    let to_second = 60 - jiff::Timestamp::now().as_second().rem_euclid(60);
    let window = Duration::from_secs(to_second as u64 + 20);
    world.set_duplicate_window(window).await;
    let operator = start_operator(&client, world.settings());
    let mut spec = small_drill(3, None);
    spec["schedule"] = json!("* * * * *");
    spec["historyLimit"] = json!(2);
    let drills = world.create_drill("cron", spec).await;
    let mut scopes = Vec::new();
    let mut last: Option<Time> = None;
    for run in ["the first run", "the second run", "the third run"] {
        let d = wait_for(&drills, "cron", Duration::from_secs(100), run, |d| {
            finished(d)
                && d.status
                    .as_ref()
                    .and_then(|s| s.last_schedule_time.as_ref())
                    .is_some_and(|t| Some(t) != last.as_ref())
        })
        .await;
        let s = d.status.clone().unwrap();
        assert_eq!(s.verdict, Verdict::Passed, "{run}: {}", show(&d));
        // Each run judged its own 1500 messages, none of an earlier run's.
        assert_eq!(
            (s.totals.acked, s.totals.lost),
            (1500, 0),
            "{run}: {}",
            show(&d)
        );
        let scope = s.run.clone().expect("run scope");
        if let Some(prev) = scopes.last() {
            let prev: &natsregion::api::RunScope = prev;
            assert_ne!(scope.writer, prev.writer, "{run} writes as itself");
            assert_eq!(
                scope.held_before,
                prev.held_before + 1500,
                "{run}: {}",
                show(&d)
            );
        }
        if last.is_some() {
            let at = s.last_schedule_time.as_ref().unwrap();
            assert_eq!(at.0.as_second() % 60, 0, "on the minute: {at:?}");
        }
        last = s.last_schedule_time.clone();
        scopes.push(scope);
    }
    let d = drills.get("cron").await.unwrap();
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.history.len(), 2, "historyLimit holds: {}", show(&d));
    // The stored reports are bounded the same way, and are the history's.
    let kept: Vec<String> = natsregion::operator::drill::reports::list(&client, NS, "cron")
        .await
        .unwrap()
        .iter()
        .map(|cm| cm.name_any())
        .collect();
    let named: Vec<String> = s.history.iter().filter_map(|h| h.report.clone()).collect();
    assert_eq!(kept, named, "{}", show(&d));
    assert!(
        s.history.iter().all(|h| h.verdict == Verdict::Passed),
        "{}",
        show(&d)
    );
    kill(operator).await;
}

/// A drill file as a user writes it: the region and the drill, as YAML.
/// A drill file for `natsregion drill`: the region and the drill, or (as
/// the README's CI example, for a region that exists) the drill alone.
fn drill_file(
    dir: &std::path::Path,
    region: &RegionMirror,
    drill: &str,
    with_region: bool,
) -> std::path::PathBuf {
    let region = RegionMirror::new(&region.name_any(), region.spec.clone());
    let spec = small_drill(
        3,
        Some("produce, partition, produce, heal, wait-for-catch-up, verify"),
    );
    let drill = fixtures::drill(drill, &region.name_any(), spec);
    let path = dir.join(format!("{}.yaml", drill.name_any()));
    let drill_doc = serde_yaml_ng::to_string(&drill).unwrap();
    let text = match with_region {
        true => format!(
            "---\n{}---\n{drill_doc}",
            serde_yaml_ng::to_string(&region).unwrap()
        ),
        false => drill_doc,
    };
    std::fs::write(&path, text).unwrap();
    path
}

/// (test cases, failures) of a JUnit file.
fn junit_counts(path: &std::path::Path) -> (usize, usize) {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).expect("junit written");
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().expect("well-formed JUnit XML") {
            Event::Eof => return (cases, failures),
            Event::Start(e) | Event::Empty(e) => match e.name().into_inner() {
                "testcase" => cases += 1,
                "failure" => failures += 1,
                _ => {}
            },
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natsregion_drill_runs_a_file_in_the_cluster_and_ends_with_its_verdict() {
    use natsregion::cli::cluster_drill::{ClusterDrillOptions, run};
    let (_plane, client) = plane_with_crds().await;
    let good = World::start(client.clone(), "east", None).await;
    let broken = World::start(client.clone(), "west", Some("$JS.nope.API")).await;
    let regions: Api<RegionMirror> = Api::namespaced(client.clone(), NS);
    let dir = tempfile::tempdir().unwrap();
    let opts = |file: std::path::PathBuf, out: &str| ClusterDrillOptions {
        file,
        namespace: Some(NS.to_string()),
        report: Some(dir.path().join(format!("out/{out}.json"))),
        junit: Some(dir.path().join(format!("out/{out}.xml"))),
        progress: false,
        heartbeat: None,
        timeout: Duration::from_secs(180),
    };

    let operator = start_operator(&client, good.settings());
    let east = regions.get("east").await.unwrap();
    let file = drill_file(dir.path(), &east, "ci", true);
    let started = Instant::now();
    let outcome = run(client.clone(), &opts(file.clone(), "pass"))
        .await
        .expect("the drill runs");
    eprintln!("cluster drill through the CLI took {:?}", started.elapsed());
    assert!(outcome.passed(), "{}", outcome.table());
    assert!(outcome.table().contains("PASS"), "{}", outcome.table());
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/pass.json")).expect("report written"),
    )
    .unwrap();
    assert_eq!(report["status"]["verdict"], "Passed", "{report}");
    assert!(report["evidence"].is_object() && report["timeline"].is_object());
    let svg = std::fs::read_to_string(dir.path().join("out/pass.svg")).expect("svg written");
    assert!(svg.starts_with("<svg"));
    assert_eq!(junit_counts(&dir.path().join("out/pass.xml")), (4, 0));
    // Again, from a file holding the drill alone (the README's CI example):
    // the finished drill is replaced, and this is a run of its own.
    let drill_only = drill_file(dir.path(), &east, "ci", false);
    assert!(
        !std::fs::read_to_string(&drill_only)
            .unwrap()
            .contains("RegionMirror")
    );
    let again = run(client.clone(), &opts(drill_only, "again"))
        .await
        .expect("runs again");
    assert!(again.passed(), "{}", again.table());
    assert_ne!(
        again.status.run.as_ref().map(|r| r.writer),
        outcome.status.run.as_ref().map(|r| r.writer)
    );
    kill(operator).await;

    let operator = start_operator(&client, broken.settings());
    let file = drill_file(
        dir.path(),
        &regions.get("west").await.unwrap(),
        "ci-broken",
        true,
    );
    let outcome = run(client.clone(), &opts(file, "fail"))
        .await
        .expect("the drill runs");
    assert!(!outcome.passed(), "{}", outcome.table());
    assert!(outcome.table().contains("FAIL"), "{}", outcome.table());
    let (cases, failures) = junit_counts(&dir.path().join("out/fail.xml"));
    assert_eq!(cases, 4);
    assert!(failures >= 1, "claim 2 fails");
    kill(operator).await;

    // A drill alone whose region is nowhere: refused before anything is applied.
    let mut nowhere = east.clone();
    nowhere.metadata.name = Some("nowhere".into());
    let file = drill_file(dir.path(), &nowhere, "ci-nowhere", false);
    let e = run(client.clone(), &opts(file, "nowhere"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(e.contains("nowhere") && e.contains("apply it first"), "{e}");
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), NS);
    assert!(drills.get_opt("ci-nowhere").await.unwrap().is_none());
}
