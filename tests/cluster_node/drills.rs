//! PartitionDrills run by the operator pod: the networkPolicy backend with
//! kube-router enforcing (and without it: the leak must be caught), the
//! toxiproxy backend, and the operator killed while a cut is in place.

use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::ListParams;
use natsregion::meta::labels;
use natsregion::testenv::node::apply_all;

use crate::operator;
use crate::scenarios::{Cluster, NS, OPERATOR_NS, REGION};
use crate::util::{Outcome, drill_resource, err, get_json, pod_log_lines, secs, wait_for};
use natsregion::testenv::node::cluster::{
    claims, describe, drill_ended, drill_manifest, expect_all_passed, remove_drill, run_drill,
};

/// The same drill with the policy agent stopped: the NetworkPolicies are
/// created but nothing enforces them, and the drill must say so (claim 1).
pub async fn without_policy_agent(c: &mut Cluster<'_>) -> Outcome {
    let name = "qa-drill-no-agent";
    c.node.stop_policy_agent();
    let outcome = run_drill(&c.client, drill_manifest("drill.yaml", name)).await;
    c.node.start_policy_agent().map_err(err)?;
    let (d, took) = outcome?;
    println!("drill {name}: {}", describe(&d));
    let claim1 = claims(&d)
        .into_iter()
        .find(|(claim, _, _)| claim == "local-consumption");
    match claim1 {
        Some((_, verdict, message)) if verdict == "Failed" => {
            c.figure(format!(
                "drill without kube-router: claim 1 Failed after {}: {message}",
                secs(took)
            ));
        }
        other => {
            return Err(format!(
                "claim 1 without a policy agent: {other:?}; {}",
                describe(&d)
            ));
        }
    }
    remove_drill(&c.client, name).await
}

/// examples/drill-toxiproxy.yaml on the region with `leafnode.proxy: toxiproxy`.
pub async fn toxiproxy(c: &mut Cluster<'_>) -> Outcome {
    let name = "qa-degraded-link";
    let (d, took) = run_drill(&c.client, drill_manifest("drill-toxiproxy.yaml", name)).await?;
    println!("drill {name}: {}", describe(&d));
    // What toxiproxy-server did around the cut, pass or fail: a slow answer
    // to a proxy update (docs/architecture.md fact 11) and its likely cause,
    // an upstream dial in the proxy's accept loop.
    let late = pod_log_lines(
        &c.client,
        OPERATOR_NS,
        operator::SELECTOR,
        "did not answer the update in time",
    )
    .await?;
    let toxiproxy = format!("{}=toxiproxy,{}={REGION}", labels::NAME, labels::REGION);
    let dial_failed = pod_log_lines(&c.client, NS, &toxiproxy, "Unable to open connection").await?;
    for line in late.iter().chain(&dial_failed) {
        println!("  {line}");
    }
    expect_all_passed(&d)?;
    c.figure(format!(
        "toxiproxy drill (80 ms latency, 512 KB/s): apply -> verdict {}, catch-up {}s; proxy updates answered late {}, upstream dials failed {}",
        secs(took),
        d["status"]["totals"]["catchUpSeconds"],
        late.len(),
        dial_failed.len()
    ));
    remove_drill(&c.client, name).await
}

/// The operator pod force-deleted while its drill holds a cut: the restarted
/// operator (the Deployment's new pod) must remove the cut by its deadline.
pub async fn operator_killed_during_cut(c: &mut Cluster<'_>) -> Outcome {
    let name = "qa-drill-killed";
    let mut drill = drill_manifest("drill.yaml", name);
    drill["spec"]["fault"]["holdSeconds"] = 60.into();
    drill["spec"]["fault"]["deadlineSeconds"] = 90.into();
    apply_all(&c.client, &[drill]).await.map_err(err)?;
    let deadline = cut_in_place(c, name).await?;
    let killed_at = jiff::Timestamp::now();
    let pod = operator::force_delete(c).await?;
    let budget = (deadline - killed_at)
        .total(jiff::Unit::Second)
        .map_err(err)?
        .max(0.0);
    let gone_after =
        policies_gone(c, Duration::from_secs_f64(budget) + Duration::from_secs(5)).await?;
    let healed_at = jiff::Timestamp::now();
    if healed_at > deadline + jiff::SignedDuration::from_secs(2) {
        return Err(format!(
            "cut removed at {healed_at}, after its deadline {deadline}"
        ));
    }
    let started = Instant::now();
    let d = drill_ended(&c.client, name).await?;
    println!(
        "drill {name} after the operator pod {pod} was force-deleted: {}",
        describe(&d)
    );
    c.figure(format!(
        "operator pod force-deleted during a cut: cut gone {} later ({}s before its deadline); drill {} after another {}: {}",
        secs(gone_after),
        (deadline - healed_at).total(jiff::Unit::Second).map_err(err)?.round(),
        d["status"]["phase"],
        secs(started.elapsed()),
        d["status"]["message"]
    ));
    if d["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return Err("the drill's status does not say what happened".into());
    }
    operator::ready_pod(c, Duration::from_secs(120)).await?;
    remove_drill(&c.client, name).await
}

/// The operator down for longer than the cut's deadline: its process
/// stopped (so its SIGTERM handler never heals on the way out, as after a
/// crash), its pod force-deleted while the node takes no new pod, then its
/// Deployment scaled to 0. Nothing removes the
/// cut meanwhile (a deadline needs some operator running); the next
/// operator removes it as soon as it leads: within the Lease's duration
/// (15 s: the frozen operator never released it) and one reaper period
/// (10 s) of being Ready.
pub async fn operator_down_past_the_deadline(c: &mut Cluster<'_>) -> Outcome {
    let name = "qa-drill-down";
    let mut drill = drill_manifest("drill.yaml", name);
    drill["spec"]["fault"]["holdSeconds"] = 20.into();
    drill["spec"]["fault"]["deadlineSeconds"] = 30.into();
    apply_all(&c.client, &[drill]).await.map_err(err)?;
    let deadline = cut_in_place(c, name).await?;
    set_schedulable(c, false).await?;
    operator::freeze_process()?;
    let pod = operator::force_delete(c).await?;
    operator::scale(c, 0).await?;
    set_schedulable(c, true).await?;
    let past = deadline + jiff::SignedDuration::from_secs(5);
    let wait = (past - jiff::Timestamp::now())
        .total(jiff::Unit::Second)
        .map_err(err)?
        .max(0.0);
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    let left = policies_in_place(c).await?;
    if left == 0 {
        return Err(format!(
            "the cut was gone past its deadline with no operator running (pod {pod} force-deleted): what removed it?"
        ));
    }
    operator::scale(c, 1).await?;
    operator::ready_pod(c, Duration::from_secs(120)).await?;
    let ready = Instant::now();
    let gone_after = policies_gone(c, Duration::from_secs(15 + 10 + 5)).await?;
    let d = drill_ended(&c.client, name).await?;
    c.figure(format!(
        "operator down past the cut's deadline: {left} NetworkPolicies still there 5 s past it; gone {} after the next operator was Ready; drill {} {} after that: {}",
        secs(gone_after),
        d["status"]["phase"],
        secs(ready.elapsed()),
        d["status"]["message"]
    ));
    remove_drill(&c.client, name).await
}

/// Cordons (`false`) or uncordons the node, so a force-deleted operator pod
/// is not replaced before its Deployment is scaled down.
async fn set_schedulable(c: &Cluster<'_>, schedulable: bool) -> Outcome {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    for node in nodes.list(&ListParams::default()).await.map_err(err)?.items {
        nodes
            .patch(
                &kube::ResourceExt::name_any(&node),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    serde_json::json!({"spec": {"unschedulable": !schedulable}}),
                ),
            )
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Waits for `name`'s cut: a record the backend returned (not the intent
/// stored before it) with its NetworkPolicies in place. Its deadline.
async fn cut_in_place(c: &Cluster<'_>, name: &str) -> Outcome<jiff::Timestamp> {
    let client = c.client.clone();
    let (deadline, _) = wait_for("the drill's cut in place", Duration::from_secs(240), || {
        let client = client.clone();
        async move {
            let d = get_json(&client, NS, &drill_resource(), name)
                .await?
                .ok_or("drill gone")?;
            let deadline = d["status"]["faults"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["healedAt"].is_null() && f["intent"] != true)
                .and_then(|f| f["deadline"].as_str())
                .and_then(|s| s.parse::<jiff::Timestamp>().ok());
            Ok(deadline.ok_or_else(|| {
                format!(
                    "phase {} step {}",
                    d["status"]["phase"], d["status"]["currentStep"]
                )
            }))
        }
    })
    .await?;
    if policies_in_place(c).await? == 0 {
        return Err("the drill recorded a cut but no NetworkPolicy exists".into());
    }
    Ok(deadline)
}

/// NetworkPolicies in the test namespace (only drills make them).
async fn policies_in_place(c: &Cluster<'_>) -> Outcome<usize> {
    let policies: Api<NetworkPolicy> = Api::namespaced(c.client.clone(), NS);
    Ok(policies
        .list(&ListParams::default())
        .await
        .map_err(err)?
        .items
        .len())
}

/// Waits until no NetworkPolicy is left, at most `limit`; how long it took.
async fn policies_gone(c: &Cluster<'_>, limit: Duration) -> Outcome<Duration> {
    let (_, took) = wait_for("the cut's NetworkPolicies removed", limit, || async {
        let n = policies_in_place(c).await?;
        Ok(if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} NetworkPolicies left"))
        })
    })
    .await?;
    Ok(took)
}
