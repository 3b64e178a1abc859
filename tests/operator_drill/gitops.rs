//! Edits made in Git take effect: a finished one-shot drill whose spec
//! changes runs again, a suspended schedule starts nothing until resumed, and
//! the Flux health expressions of docs/gitops.md read the statuses right.

use natsregion::testenv::gitops::{Health, argo_status_of, flux_health_of};

use super::*;

fn observed(d: &PartitionDrill) -> Option<i64> {
    d.status.as_ref().and_then(|s| s.observed_generation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_finished_drill_runs_again_and_observed_generation_follows() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());
    let drills = world.create_drill("edited", small_drill(3, None)).await;
    let first = wait_for(
        &drills,
        "edited",
        Duration::from_secs(120),
        "the first run",
        finished,
    )
    .await;
    let s = first.status.clone().unwrap();
    assert_eq!(s.verdict, Verdict::Passed, "{}", show(&first));
    assert_eq!(observed(&first), Some(1));
    assert_eq!(s.totals.attempted, 1500);
    let success = s.last_success_time.clone().expect("lastSuccessTime");
    assert_eq!(Some(&success), s.finished_at.as_ref());
    let row = table_row(&client, "edited").await;
    assert!(row["Last success"].is_string(), "{row:?}");
    assert_eq!(flux_health_of(&first), Ok(Health::Current));
    assert_eq!(argo_status_of(&first).as_deref(), Ok("Healthy"));

    // The edit, as Flux or Argo CD would apply it from Git.
    let edited = drills
        .patch(
            "edited",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"workload": {"messagesPerPhase": 200}}})),
        )
        .await
        .unwrap();
    assert_eq!(edited.metadata.generation, Some(2));
    assert_eq!(flux_health_of(&edited), Ok(Health::InProgress));
    assert_eq!(argo_status_of(&edited).as_deref(), Ok("Progressing"));
    let second = wait_for(
        &drills,
        "edited",
        Duration::from_secs(120),
        "a second run for generation 2",
        |d| finished(d) && observed(d) == Some(2),
    )
    .await;
    let s = second.status.clone().unwrap();
    assert_eq!(s.verdict, Verdict::Passed, "{}", show(&second));
    // The edited spec ran: 5 phases of 200.
    assert_eq!(s.totals.attempted, 1000, "{}", show(&second));
    assert_eq!(s.history.len(), 2, "the first run stays: {}", show(&second));
    assert_eq!(
        s.history[0].started_at,
        first.status.unwrap().started_at.unwrap()
    );
    assert!(s.last_success_time.as_ref().unwrap().0 > success.0);
    expect_conditions(&second, &[("Completed", "True"), ("Succeeded", "True")]);
    assert_eq!(flux_health_of(&second), Ok(Health::Current));
    assert_eq!(argo_status_of(&second).as_deref(), Ok("Healthy"));
    // Done with generation 2: no third run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = drills.get("edited").await.unwrap();
    assert_eq!(again.resource_version(), second.resource_version());
    kill(operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_schedule_starts_no_run_until_resumed() {
    let (_plane, client) = plane_with_crds().await;
    let world = World::start(client.clone(), "east", None).await;
    let operator = start_operator(&client, world.settings());
    let mut spec = small_drill(3, None);
    // Due at once: a scheduled drill's first run starts when it is created.
    spec["schedule"] = json!("* * * * *");
    spec["suspend"] = json!(true);
    let drills = world.create_drill("paused", spec).await;
    let d = wait_for(
        &drills,
        "paused",
        Duration::from_secs(20),
        "the suspend observed",
        |d| observed(d) == Some(1),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let d2 = drills.get("paused").await.unwrap();
    let s = d2.status.clone().unwrap();
    assert_eq!(s.phase, DrillPhase::Pending, "{}", show(&d2));
    assert!(
        s.started_at.is_none(),
        "no run while suspended: {}",
        show(&d2)
    );
    assert!(
        s.message.as_deref().unwrap_or_default().contains("suspend"),
        "{}",
        show(&d2)
    );
    assert_eq!(
        d2.resource_version(),
        d.resource_version(),
        "nothing written"
    );
    assert_eq!(flux_health_of(&d2), Ok(Health::Current));
    assert_eq!(argo_status_of(&d2).as_deref(), Ok("Suspended"));

    drills
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    let d = wait_for(
        &drills,
        "paused",
        Duration::from_secs(120),
        "a run once resumed",
        |d| finished(d) && d.status.as_ref().is_some_and(|s| s.started_at.is_some()),
    )
    .await;
    let s = d.status.clone().unwrap();
    assert_eq!(s.verdict, Verdict::Passed, "{}", show(&d));
    assert_eq!(observed(&d), Some(2));
    assert!(s.last_schedule_time.is_some());
    kill(operator).await;
}
