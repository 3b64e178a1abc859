//! A cut never outlives its drill (docs/architecture.md, "Safety of injected
//! faults"): whatever stops the operator, the drill, its status or its
//! region, and whoever else drills the same region.

use futures::TryStreamExt;
use kube::runtime::watcher;

use super::*;

const STEPS: &str = "produce, partition, produce, heal, wait-for-catch-up, verify";

/// A drill cutting with NetworkPolicies (unenforced here: no CNI).
fn np_drill(hold: i32) -> serde_json::Value {
    let mut spec = small_drill(hold, Some(STEPS));
    spec["fault"]["backend"] = json!("networkPolicy");
    spec
}

async fn drill_policies(client: &Client, drill: &str) -> Vec<String> {
    Api::<NetworkPolicy>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("{}={drill}", labels::DRILL)))
        .await
        .expect("list policies")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect()
}

fn signal(pids: &[u32], sig: libc::c_int) {
    for pid in pids {
        // SAFETY: kill(2) on a nats-server this test's region started.
        let rc = unsafe { libc::kill(*pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }
}

/// Item 1 of the safety promise: the intent is stored before the cut, so an
/// operator killed the moment its first NetworkPolicy lands (before the cut
/// returned, let alone reached status) leaves a record its successor heals
/// from. And a networkPolicy drill refuses a region whose links run through
/// Toxiproxy, which policies cannot cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_whose_operator_died_before_recording_it_is_healed() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());

    let drills = world.create_drill("proxied", np_drill(60)).await;
    let message = refused(&drills, "proxied").await;
    assert!(message.contains("spec.leafnode.proxy"), "{message}");
    assert!(drill_policies(&client, "proxied").await.is_empty());

    world.declare_direct_links().await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    let mut events = std::pin::pin!(watcher(
        policies,
        watcher::Config::default().labels(&format!("{}=killed", labels::DRILL)),
    ));
    world.create_drill("killed", np_drill(60)).await;
    let first = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(e) = events.try_next().await.expect("watch NetworkPolicies") {
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = e {
                return p.name_any();
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("a NetworkPolicy within 60 s");
    kill(operator).await;
    eprintln!("killed the operator on NetworkPolicy {first}");

    let d = drills.get("killed").await.unwrap();
    assert!(
        d.status
            .as_ref()
            .is_some_and(|s| s.faults.iter().any(|f| f.healed_at.is_none())),
        "a record of the cut was stored before the first policy: {}",
        show(&d)
    );
    assert!(
        !drill_policies(&client, "killed").await.is_empty(),
        "the cut outlives the killed operator"
    );
    let restarted = Instant::now();
    let operator = start_operator(&client, world.settings());
    let d = wait_for(
        &drills,
        "killed",
        Duration::from_secs(30),
        "the end",
        finished,
    )
    .await;
    eprintln!("restarted operator healed in {:?}", restarted.elapsed());
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Aborted, "{}", show(&d));
    let message = s.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with(RESTARTED) && message.contains("NetworkPolicy"),
        "the status says what was removed: {message}"
    );
    expect_healed(&d);
    assert_eq!(
        drill_policies(&client, "killed").await,
        Vec::<String>::new()
    );
    kill(operator).await;
}

/// A fault a drill's status records as open is in the metrics the alert
/// NatsRegionFaultOpenPastDeadline reads: how many, since when, and its
/// deadline, as the status has them; once healed the count is 0 and the
/// times are gone; once the drill is deleted, its series too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_faults_of_a_drill_status_are_in_the_metrics() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    world.declare_direct_links().await;
    let (operator, metrics) =
        start_with_metrics(&client, world.settings(), futures::future::pending());
    let drills = world.create_drill("watched", np_drill(60)).await;
    let d = wait_for(&drills, "watched", Duration::from_secs(60), "a cut", cut_on).await;
    let open: Vec<_> = d
        .status
        .as_ref()
        .unwrap()
        .faults
        .iter()
        .filter(|f| f.healed_at.is_none())
        .collect();
    let since = open
        .iter()
        .map(|f| f.injected_at.0.as_second())
        .min()
        .unwrap();
    let deadline = open.iter().map(|f| f.deadline.0.as_second()).min().unwrap();
    let series = |name: &str, value: i64| {
        format!("{name}{{namespace=\"{NS}\",drill=\"watched\",backend=\"networkPolicy\"}} {value}")
    };
    let wanted = [
        series("natsregion_faults_open", open.len() as i64),
        series("natsregion_fault_open_since_timestamp_seconds", since),
        series("natsregion_fault_deadline_timestamp_seconds", deadline),
    ];
    eventually(
        "the open fault in the metrics",
        Duration::from_secs(10),
        async || {
            let text = metrics.encode();
            match wanted.iter().find(|w| !text.contains(w.as_str())) {
                None => Ok(()),
                Some(w) => Err(format!("{w} missing:\n{text}")),
            }
        },
    )
    .await;

    // Healed (the drill aborted) and over: its series go (a finished drill
    // holds no finalizer, so the operator would see no deletion of it).
    drills
        .patch(
            "watched",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ABORT_ANNOTATION: "true"}}})),
        )
        .await
        .expect("annotate");
    wait_for(
        &drills,
        "watched",
        Duration::from_secs(30),
        "the end",
        finished,
    )
    .await;
    eventually(
        "the drill's series gone",
        Duration::from_secs(10),
        async || {
            let text = metrics.encode();
            (!text.contains("drill=\"watched\""))
                .then_some(())
                .ok_or(text)
        },
    )
    .await;
    kill(operator).await;
}

/// Item 2: the deadline is written on the fault objects, and any operator's
/// reaper enforces it: with the process that cut gone (its runtime, and so
/// its timers, dropped) and no drill at all, the policies and the disabled
/// proxies go within one reaper period of the operator's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_past_the_deadline_on_their_objects_are_reaped_by_any_operator() {
    let (plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let (api, prefix) = (world.toxiproxy.url(), world.prefix.clone());
    let kubeconfig = plane.kubeconfig_path().to_path_buf();
    // Another process: its own runtime, gone once it has cut.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap();
            let client = Client::try_from(config).unwrap();
            let np = NetworkPolicyBackend::new(
                client,
                NetworkPolicyTarget {
                    namespace: NS.into(),
                    region: "east".into(),
                    drill: "gone".into(),
                    source_zone: "a".into(),
                    owner: None,
                },
            );
            np.cut(&["b".to_string()], Duration::from_secs(2))
                .await
                .expect("policies");
            ToxiproxyBackend::adopt(api, prefix)
                .cut(&["b".to_string()], Duration::from_secs(2))
                .await
                .expect("proxies disabled");
        });
        drop(rt);
    })
    .join()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        drill_policies(&client, "gone").await.len(),
        2,
        "past the deadline, nothing of the dead process removes them"
    );
    assert!(
        world
            .proxies()
            .await
            .iter()
            .any(|(p, e)| p.contains("-b-") && !e),
        "the proxies stay disabled: {:?}",
        world.proxies().await
    );

    let settings = DrillSettings {
        reap_every: Duration::from_secs(1),
        ..world.settings()
    };
    let started = Instant::now();
    let operator = start_operator(&client, settings);
    eventually(
        "the reaper removes both faults",
        Duration::from_secs(5),
        async || {
            let policies = drill_policies(&client, "gone").await;
            let proxies = world.proxies().await;
            if policies.is_empty() && proxies.values().all(|e| *e) {
                Ok(())
            } else {
                Err(format!("policies {policies:?}, proxies {proxies:?}"))
            }
        },
    )
    .await;
    eprintln!("reaped {:?} after the operator started", started.elapsed());
    assert_eq!(
        world.toxics().await,
        Vec::<String>::new(),
        "markers removed"
    );
    kill(operator).await;
}

/// Item 3: an operator told to stop heals first and looks after, so a zone
/// that does not answer (its server stopped with SIGSTOP) cannot hold the
/// heal past the stop budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_operator_heals_before_it_looks() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    world.declare_direct_links().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = start_stoppable(&client, world.settings(), async move {
        let _ = stop_rx.await;
    });
    let drills = world.create_drill("stopped", np_drill(60)).await;
    wait_for(&drills, "stopped", Duration::from_secs(60), "a cut", cut_on).await;
    let source = world.runtime.zone_pids("a").await;
    signal(&source, libc::SIGSTOP);
    let stopping = Instant::now();
    stop_tx.send(()).unwrap();
    let healed = loop {
        if drill_policies(&client, "stopped").await.is_empty() {
            break stopping.elapsed();
        }
        if stopping.elapsed() > Duration::from_secs(40) {
            break stopping.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let exited = tokio::time::timeout(Duration::from_secs(40), operator).await;
    let exit = stopping.elapsed();
    signal(&source, libc::SIGCONT);
    eprintln!("policies gone {healed:?} after the stop; operator exited after {exit:?}");
    exited.expect("the operator exits").unwrap();
    assert!(
        healed < Duration::from_secs(3),
        "healed {healed:?} after the stop, before looking at the stopped zone"
    );
    assert!(
        exit < natsregion::operator::drill::SHUTDOWN_HEAL,
        "exited within the stop budget: {exit:?}"
    );
    // The next operator finds the run healed and ends it.
    let operator = start_operator(&client, world.settings());
    let d = wait_for(
        &drills,
        "stopped",
        Duration::from_secs(30),
        "the end",
        finished,
    )
    .await;
    assert_eq!(
        d.status.as_ref().unwrap().phase,
        DrillPhase::Aborted,
        "{}",
        show(&d)
    );
    kill(operator).await;
}

/// Item 5: two drills on one region started together take turns: one runs,
/// the other waits Pending, naming it, then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drills_on_one_region_take_turns() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());
    let drills = world
        .create_drill("first", small_drill(3, Some(STEPS)))
        .await;
    world
        .create_drill("second", small_drill(3, Some(STEPS)))
        .await;
    let (running, waiting) = eventually(
        "one drill runs, the other waits for it",
        Duration::from_secs(30),
        async || {
            let a = drills.get("first").await.unwrap();
            let b = drills.get("second").await.unwrap();
            let phase = |d: &PartitionDrill| d.status.as_ref().map(|s| s.phase);
            match (phase(&a), phase(&b)) {
                (Some(DrillPhase::Running), Some(DrillPhase::Pending)) => Ok((a, b)),
                (Some(DrillPhase::Pending), Some(DrillPhase::Running)) => Ok((b, a)),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let s = waiting.status.as_ref().unwrap();
    let message = s.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(&running.name_any()) && message.contains("east"),
        "{message}"
    );
    let reconciling = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .expect("Reconciling");
    assert!(
        reconciling.message.contains(&running.name_any()),
        "{reconciling:?}"
    );
    let first = wait_for(
        &drills,
        &running.name_any(),
        Duration::from_secs(90),
        "the end",
        finished,
    )
    .await;
    let second = wait_for(
        &drills,
        &waiting.name_any(),
        Duration::from_secs(90),
        "the end",
        finished,
    )
    .await;
    for d in [&first, &second] {
        let s = d.status.as_ref().unwrap();
        assert_eq!(s.verdict, Verdict::Passed, "{}", show(d));
    }
    // They did not overlap: the second started after the first finished.
    let (ended, began) = (
        first
            .status
            .as_ref()
            .unwrap()
            .finished_at
            .clone()
            .unwrap()
            .0,
        second
            .status
            .as_ref()
            .unwrap()
            .started_at
            .clone()
            .unwrap()
            .0,
    );
    assert!(began >= ended, "{began} before {ended}");
    kill(operator).await;
}

/// Item 6: a cut the backend lost mid-partition (a Toxiproxy restart: the
/// proxies back, enabled, without toxics) is not the region's leak: claim 1
/// is Inconclusive with that cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_lost_by_toxiproxy_is_inconclusive_not_a_leak() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());
    let drills = world
        .create_drill("lost", small_drill(8, Some(STEPS)))
        .await;
    wait_for(&drills, "lost", Duration::from_secs(60), "a cut", cut_on).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.restart_proxies().await;
    let d = wait_for(
        &drills,
        "lost",
        Duration::from_secs(90),
        "the end",
        finished,
    )
    .await;
    let s = d.status.as_ref().unwrap();
    let claim = s
        .claims
        .iter()
        .find(|c| c.claim == Claim::LocalConsumption)
        .expect("claim 1");
    assert_eq!(claim.verdict, Verdict::Inconclusive, "{}", show(&d));
    assert!(
        claim.message.contains("ended before the heal") && !claim.message.contains("leaked"),
        "{}",
        claim.message
    );
    assert_ne!(s.verdict, Verdict::Failed, "{}", show(&d));
    kill(operator).await;
}

/// Item 7: the region deleted during a Toxiproxy cut takes its Toxiproxy
/// with it (here: the server killed); the heal cannot reach it, and must not
/// keep the drill, and so its deletion, waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_whose_region_went_with_its_toxiproxy_is_released() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());
    let drills = world
        .create_drill("orphan", small_drill(60, Some(STEPS)))
        .await;
    wait_for(&drills, "orphan", Duration::from_secs(60), "a cut", cut_on).await;
    Api::<RegionMirror>::namespaced(client.clone(), NS)
        .delete(&world.region, &DeleteParams::default())
        .await
        .expect("delete region");
    signal(&[world.toxiproxy.pid()], libc::SIGKILL);
    let took = delete_drill(&drills, "orphan", Duration::from_secs(30)).await;
    eprintln!("drill deleted {took:?} after the region");
    kill(operator).await;
}

/// Item 8: the run ended and stored its report, but its last status write
/// never landed (an API outage, then the operator gone): the next operator
/// restores the outcome from the report instead of calling the run Aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_stored_in_its_report_survives_a_lost_status_write() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());
    let drills = world
        .create_drill("outage", small_drill(3, Some(STEPS)))
        .await;
    let running = wait_for(&drills, "outage", Duration::from_secs(60), "a cut", cut_on).await;
    let done = wait_for(
        &drills,
        "outage",
        Duration::from_secs(90),
        "the end",
        finished,
    )
    .await;
    kill(operator).await;
    let outcome = done.status.clone().unwrap();
    assert!(outcome.report.is_some(), "{}", show(&done));
    // What the API server holds when the last writes were lost: the
    // status of the middle of the run.
    natsregion::operator::drill::status::apply(&drills, "outage", running.status.as_ref().unwrap())
        .await
        .expect("status rewound");
    let operator = start_operator(&client, world.settings());
    let d = wait_for(
        &drills,
        "outage",
        Duration::from_secs(30),
        "the end",
        finished,
    )
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(
        (s.phase, s.verdict),
        (outcome.phase, outcome.verdict),
        "{}",
        show(&d)
    );
    assert_eq!(s.claims, outcome.claims);
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("restored from report"),
        "{}",
        show(&d)
    );
    expect_healed(&d);
    kill(operator).await;
}
