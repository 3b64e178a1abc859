//! The PartitionDrill controller: runs the drill engine against the
//! referenced RegionMirror as a task owned by this process (one per drill,
//! keyed by uid), reports progress into the drill's status, and makes sure no
//! fault outlives the drill: not on success, failure, abort, deletion of the
//! drill or the region, a passed deadline, or an operator restart.
//!
//! Reconcile never blocks on a drill: it starts the task (one per region at
//! a time, see [`exclusive`]), signals it (abort), or, when the status says a
//! drill is running but no task runs here (the operator restarted), heals
//! every fault recorded in the status and any fault object of the drill's
//! backend, and ends the run (Aborted, or its stored outcome). Apart from
//! drills, the [`reaper`] removes every fault past the deadline written on it.

pub mod conditions;
pub mod decide;
mod exclusive;
mod finalizer;
mod heal;
mod job;
pub mod precondition;
pub mod reaper;
pub mod reports;
pub mod runtime;
pub mod status;
pub mod toxiproxy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::decide::{Next, decide, has_finalizer, unhealed};
use self::finalizer::{add_finalizer, remove_finalizer};
use self::heal::heal_orphan;
use self::job::DrillJob;
use self::runtime::{KubernetesZones, TemporaryZones};
use self::status::{Carried, push_history};
use self::toxiproxy::ToxiproxyTarget;
use super::context::Context;
use super::error::{Error, Result};
use super::shutdown::Shutdown;
use crate::api::{
    DrillPhase, FaultBackend as BackendKind, FaultRecord, PartitionDrill, PartitionDrillStatus,
    RegionMirror, Verdict,
};
use crate::fault::FaultBackend;
use crate::fault::leaflinks::LeafLinks;
use crate::fault::networkpolicy::{NetworkPolicyBackend, NetworkPolicyTarget};

/// Added before the first fault, removed once every fault is healed.
pub const FINALIZER: &str = "natsregion.io/heal";
/// `"true"` aborts a running drill: its faults are healed and it ends Aborted.
pub const ABORT_ANNOTATION: &str = "natsregion.io/abort";
/// The status message of a drill found running after an operator restart.
pub const RESTARTED: &str = "operator restarted during the drill; faults healed";
const CONTROLLER: &str = "partitiondrill";

/// Settings of the drill controller (beyond the operator's).
#[derive(Clone)]
pub struct DrillSettings {
    /// Use this Toxiproxy (API URL and proxy prefix) for `toxiproxy` drills
    /// instead of the per-region one the operator deploys.
    pub toxiproxy: Option<ToxiproxyTarget>,
    /// Where temporary zones run; `None`: StatefulSets in the cluster.
    pub temporary_zones: Option<Arc<dyn TemporaryZones>>,
    /// Least time between two progress writes of one drill's status. Fault
    /// injections and heals are written at once regardless.
    pub status_every: Duration,
    /// How often a running drill checks that its region still exists.
    pub region_check_every: Duration,
    /// How often the reaper removes faults past the deadline written on them
    /// (see [`reaper`]); it also runs when the controller starts.
    pub reap_every: Duration,
}

impl Default for DrillSettings {
    fn default() -> Self {
        let toxiproxy = match (
            std::env::var("NATSREGION_TOXIPROXY_URL"),
            std::env::var("NATSREGION_TOXIPROXY_PREFIX"),
        ) {
            (Ok(api), Ok(prefix)) if !api.is_empty() => Some(ToxiproxyTarget { api, prefix }),
            _ => None,
        };
        Self {
            toxiproxy,
            temporary_zones: None,
            status_every: Duration::from_secs(2),
            region_check_every: Duration::from_secs(2),
            reap_every: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for DrillSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrillSettings")
            .field("toxiproxy", &self.toxiproxy)
            .field("temporary_zones", &self.temporary_zones.is_some())
            .field("status_every", &self.status_every)
            .field("reap_every", &self.reap_every)
            .finish()
    }
}

/// A drill task running in this process.
struct Running {
    handle: JoinHandle<()>,
    abort: watch::Sender<bool>,
    /// `true` while the drill has a fault recorded and not healed.
    cut_open: watch::Receiver<bool>,
    /// The region it drills, and its name (for a drill that waits on it).
    region: exclusive::RegionKey,
    name: String,
}

/// The controller's state. Dropping it (the controller stopped or was
/// dropped) aborts every drill task it started, like a process exit would.
struct Shared {
    ctx: Arc<Context>,
    settings: DrillSettings,
    tasks: Mutex<HashMap<String, Running>>,
    /// Regions reserved by starts in flight (see [`exclusive`]).
    starting: exclusive::Starting,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for (_, r) in self.tasks.lock().expect("tasks").drain() {
            r.handle.abort();
        }
    }
}

/// Runs the PartitionDrill controller until `shutdown`.
pub async fn controller(ctx: Arc<Context>, shutdown: Shutdown) {
    controller_with(ctx, DrillSettings::default(), shutdown).await
}

/// Like [`controller`] with explicit settings (tests, `natsregion run` flags).
pub async fn controller_with(ctx: Arc<Context>, settings: DrillSettings, shutdown: Shutdown) {
    let drills: Api<PartitionDrill> = ctx.watched_api();
    tracing::info!(?settings, "starting the PartitionDrill controller");
    // Independent of any drill: faults past the deadline on their objects.
    let _reaper = job::AbortOnDrop(tokio::spawn(reaper::run(ctx.clone(), settings.clone())));
    let shared = Arc::new(Shared {
        ctx,
        settings,
        tasks: Mutex::new(HashMap::new()),
        starting: Default::default(),
    });
    Controller::new(drills, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, shared.clone())
        .for_each(|r| {
            let shared = shared.clone();
            async move {
                match r {
                    Ok(_) => {}
                    // Deleted: its series go with it.
                    Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                        let ns = obj.namespace.as_deref().unwrap_or_default();
                        shared.ctx.metrics.forget_drill(ns, &obj.name);
                    }
                    Err(e) => tracing::debug!(error = %e, "drill reconcile"),
                }
            }
        })
        .await;
    // An orderly stop (SIGTERM, lost leadership) aborts the drills running
    // here and waits for their heal, rather than leaving the faults to the
    // next operator (there may be none: an uninstall) or to their deadline.
    // A drill heals first when aborted; once no cut of it is open it is
    // stopped where it is, so nothing of this process runs on when a standby
    // takes over (its orphan heal marks the run Aborted).
    let running: Vec<Running> = shared
        .tasks
        .lock()
        .expect("tasks")
        .drain()
        .map(|(_, r)| r)
        .collect();
    if !running.is_empty() {
        tracing::info!(
            drills = running.len(),
            "stopping: aborting running drills and healing their faults"
        );
    }
    for r in &running {
        let _ = r.abort.send(true);
    }
    let limit = tokio::time::Instant::now() + SHUTDOWN_HEAL;
    for mut r in running {
        let mut cut_open = r.cut_open.clone();
        let healed = tokio::time::timeout_at(limit, async {
            tokio::select! {
                _ = &mut r.handle => {}
                _ = cut_open.wait_for(|open| !*open) => {}
            }
        })
        .await;
        if healed.is_err() {
            tracing::error!(
                "a drill did not heal before the shutdown limit; its deadline and the next operator heal it"
            );
        } else if !r.handle.is_finished() {
            // Healed: a moment to write its end (Aborted), no more.
            let until = limit.min(tokio::time::Instant::now() + FINISH_AFTER_HEAL);
            if tokio::time::timeout_at(until, &mut r.handle).await.is_err() {
                tracing::warn!("a healed drill did not finish in time; the next operator ends it");
            }
        }
        r.handle.abort();
    }
}

/// How long a stopping controller lets a drill whose cut is healed finish
/// (its last look, its Aborted status): short, so that after a lost Lease
/// (stepped down `renew_deadline` after the last renew) nothing of this
/// process runs on when a standby may take over (`lease_duration`).
const FINISH_AFTER_HEAL: Duration = Duration::from_secs(3);

/// How long an orderly stop waits for running drills to heal. Below
/// `run::STOP_LIMIT`, itself below the chart's grace period.
pub const SHUTDOWN_HEAL: Duration = Duration::from_secs(20);

/// The region is deleted or being deleted (a read error is not taken as gone).
async fn region_gone(regions: &Api<RegionMirror>, name: &str) -> bool {
    match regions.get_opt(name).await {
        Ok(None) => true,
        Ok(Some(r)) => r.metadata.deletion_timestamp.is_some(),
        Err(_) => false,
    }
}

fn error_policy(drill: Arc<PartitionDrill>, error: &Error, shared: Arc<Shared>) -> Action {
    shared.ctx.metrics.failed(CONTROLLER, error.reason());
    shared.ctx.metrics.reconcile_failing(
        CONTROLLER,
        &drill.namespace().unwrap_or_default(),
        &drill.name_any(),
        error.reason(),
    );
    tracing::warn!(drill = %drill.name_any(), error = %error, "drill reconcile failed");
    if error.is_permanent() {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(5))
    }
}

fn uid(drill: &PartitionDrill) -> Result<String> {
    drill.uid().ok_or(Error::MissingField("metadata.uid"))
}

fn namespace(drill: &PartitionDrill) -> Result<String> {
    drill
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))
}

fn owner(drill: &PartitionDrill) -> Option<OwnerReference> {
    drill.controller_owner_ref(&())
}

async fn reconcile(drill: Arc<PartitionDrill>, shared: Arc<Shared>) -> Result<Action> {
    let started = std::time::Instant::now();
    let out = reconcile_inner(&drill, &shared).await;
    let metrics = &shared.ctx.metrics;
    metrics.reconciled(CONTROLLER, started.elapsed());
    let (ns, name) = (drill.namespace().unwrap_or_default(), drill.name_any());
    let open = open_faults(&drill);
    let finished = drill.status.as_ref().is_some_and(|s| s.phase.is_finished());
    if (finished || drill.metadata.deletion_timestamp.is_some()) && open.is_empty() {
        // Over, or released: nothing of it is left to watch. (A finished
        // drill holds no finalizer, so its deletion triggers no reconcile
        // that could drop its series then.)
        metrics.forget_drill(&ns, &name);
    } else {
        // From the status, which records every cut before it is made: a
        // fault left by an operator that is gone shows from this one's start.
        metrics.set_drill_faults(&ns, &name, &open);
        if out.is_ok() {
            metrics.reconcile_succeeded(CONTROLLER, &ns, &name);
        }
    }
    out
}

/// The faults a drill's status records and no heal has marked healed.
fn open_faults(drill: &PartitionDrill) -> Vec<crate::operator::metrics::OpenFault> {
    drill
        .status
        .iter()
        .flat_map(|s| &s.faults)
        .filter(|f| f.healed_at.is_none())
        .map(|f| crate::operator::metrics::OpenFault {
            backend: f.backend.clone(),
            injected_at: f.injected_at.0,
            deadline: f.deadline.0,
        })
        .collect()
}

async fn reconcile_inner(drill: &PartitionDrill, shared: &Arc<Shared>) -> Result<Action> {
    let uid = uid(drill)?;
    let ns = namespace(drill)?;
    let api: Api<PartitionDrill> = Api::namespaced(shared.ctx.client.clone(), &ns);
    let name = drill.name_any();

    // A task of this process: collect it once it is done.
    let running = {
        let mut tasks = shared.tasks.lock().expect("tasks");
        let done = tasks.get(&uid).is_some_and(|r| r.handle.is_finished());
        if done {
            tasks.remove(&uid);
        }
        tasks.get(&uid).map(|r| r.abort.clone())
    };
    let now = jiff::Timestamp::now();
    let decision = decide(drill, running.is_some(), now)?;
    if decision.drop_finalizer {
        remove_finalizer(&api, drill).await?;
    }
    match decision.next {
        Next::StopTask { overdue } => {
            if overdue {
                tracing::warn!(drill = %name, "a fault is past its deadline; aborting the drill");
            }
            if let Some(abort) = running {
                let _ = abort.send(true);
            }
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        // The task writes status as it goes; look again soon to collect it
        // (and drop the finalizer) once it ends.
        Next::WatchTask => Ok(Action::requeue(Duration::from_secs(2))),
        Next::HealOrphan(_) => {
            // The controller's cache can lag this process's own writes: the
            // pass queued by the heal's first status write (Healing) may
            // still see that object after the heal wrote Aborted, and heal
            // again, finding nothing and overwriting the message that named
            // what was removed. The API server's copy decides.
            let fresh = api
                .get(&name)
                .await
                .map_err(|e| Error::kube(format!("read drill {name}"), e))?;
            if let Next::HealOrphan(open) = decide(&fresh, false, now)?.next {
                heal_orphan(shared, &fresh, &api, &open).await?;
            }
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Next::Release => {
            remove_finalizer(&api, drill).await?;
            Ok(Action::await_change())
        }
        Next::MarkAborted => {
            let mut s = drill.status.clone().unwrap_or_default();
            s.phase = DrillPhase::Aborted;
            s.verdict = Verdict::NotRun;
            s.message = Some("aborted before it started".into());
            s.finished_at = Some(Time(now));
            s.observed_generation = drill.metadata.generation;
            conditions::update(&mut s, drill.metadata.generation, now);
            status::apply(&api, &name, &s)
                .await
                .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
            Ok(Action::await_change())
        }
        Next::Idle => Ok(Action::await_change()),
        Next::Observe => {
            let s = observed(drill, now);
            status::apply(&api, &name, &s)
                .await
                .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
            Ok(Action::await_change())
        }
        Next::WaitFor(wait) => Ok(Action::requeue(wait)),
        Next::Start { scheduled_at } => {
            if let Some(holder) = exclusive::busy(shared, &api, drill).await? {
                let s = exclusive::waiting(drill, &holder, scheduled_at, now);
                let changed = drill.status.as_ref().map(|d| &d.message) != Some(&s.message);
                status::apply(&api, &name, &s)
                    .await
                    .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
                if changed {
                    let (reason, what) = if s.phase == DrillPhase::Pending {
                        ("WaitingForRegion", "waits")
                    } else {
                        ("RunSkipped", "skipped a run")
                    };
                    tracing::info!(drill = %name, holder = %holder, "drill {what}: its region is busy");
                    event(
                        &shared.ctx,
                        drill,
                        EventType::Normal,
                        reason,
                        "Run",
                        s.message.clone().unwrap_or_default(),
                    )
                    .await;
                }
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            let started = start(shared, drill, &api, scheduled_at).await;
            shared.unreserve(drill);
            started?;
            Ok(Action::requeue(Duration::from_secs(2)))
        }
    }
}

/// The status of a drill whose spec generation was seen and that starts no
/// run for it now (see [`Next::Observe`]): the last run's result stays, its
/// conditions now speak for this generation.
fn observed(drill: &PartitionDrill, now: jiff::Timestamp) -> PartitionDrillStatus {
    let mut s = drill.status.clone().unwrap_or_default();
    s.observed_generation = drill.metadata.generation;
    if drill.status.is_none() {
        s.message = Some(if drill.spec.suspend {
            "suspended (spec.suspend): no run starts until it is false".into()
        } else {
            "no run yet".into()
        });
    }
    if !s.conditions.is_empty() {
        conditions::update(&mut s, drill.metadata.generation, now);
    }
    s
}

/// What a backend needs to cut, beyond what it needs to heal (nothing of
/// this: a heal removes whatever the drill's backend finds).
#[derive(Default)]
struct CutTarget {
    source_zone: String,
    /// Lets a cut break the leafnode links it leaves standing.
    links: LeafLinks,
    /// The region's external zones by address, to keep the uncut ones linked.
    external: std::collections::BTreeMap<String, String>,
}

/// The backend that removes (or injects) faults of `kind` for `drill`.
fn backend(
    client: &kube::Client,
    settings: &DrillSettings,
    kind: BackendKind,
    drill: &PartitionDrill,
    region: &str,
    cut: CutTarget,
) -> Result<Arc<dyn FaultBackend>> {
    let ns = namespace(drill)?;
    Ok(match kind {
        BackendKind::NetworkPolicy => Arc::new(
            NetworkPolicyBackend::new(
                client.clone(),
                NetworkPolicyTarget {
                    namespace: ns,
                    region: region.to_string(),
                    drill: drill.name_any(),
                    source_zone: cut.source_zone,
                    owner: owner(drill),
                },
            )
            .with_links(cut.links)
            .with_external_zones(cut.external),
        ),
        BackendKind::Toxiproxy => Arc::new(
            toxiproxy_target(settings, &ns, region)
                .backend()
                .with_links(cut.links),
        ),
    })
}

/// The Toxiproxy a drill drives: the configured one, else the region's own.
fn toxiproxy_target(settings: &DrillSettings, namespace: &str, region: &str) -> ToxiproxyTarget {
    settings
        .toxiproxy
        .clone()
        .unwrap_or_else(|| ToxiproxyTarget::in_cluster(namespace, region))
}

fn backend_kind(name: &str) -> BackendKind {
    if name.eq_ignore_ascii_case("toxiproxy") {
        BackendKind::Toxiproxy
    } else {
        BackendKind::NetworkPolicy
    }
}

async fn start(
    shared: &Arc<Shared>,
    drill: &PartitionDrill,
    api: &Api<PartitionDrill>,
    scheduled_at: Option<jiff::Timestamp>,
) -> Result<()> {
    add_finalizer(api, drill).await?;
    let uid = uid(drill)?;
    let name = drill.name_any();
    let previous = drill.status.clone().unwrap_or_default();
    // Running from the first moment, so a restart during setup heals (nothing).
    let mut first = PartitionDrillStatus {
        observed_generation: drill.metadata.generation,
        conditions: previous.conditions.clone(),
        phase: DrillPhase::Running,
        started_at: Some(Time(jiff::Timestamp::now())),
        message: Some("connecting to the region's zones".into()),
        ..Default::default()
    };
    conditions::update(
        &mut first,
        drill.metadata.generation,
        jiff::Timestamp::now(),
    );
    let carried = Carried {
        last_schedule_time: scheduled_at
            .map(Time)
            .or(previous.last_schedule_time.clone()),
        history: previous.history.clone(),
        last_success_time: previous.last_success_time.clone(),
        conditions: first.conditions.clone(),
    };
    status::apply(api, &name, &carried.merge(first))
        .await
        .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
    let (abort_tx, abort_rx) = watch::channel(false);
    let (cut_open_tx, cut_open) = watch::channel(false);
    let job = DrillJob {
        cut_open: cut_open_tx,
        ctx: shared.ctx.clone(),
        settings: shared.settings.clone(),
        drill: drill.clone(),
        api: api.clone(),
        carried,
        abort_tx: abort_tx.clone(),
        abort_rx,
    };
    let handle = tokio::spawn(job.run());
    shared.tasks.lock().expect("tasks").insert(
        uid,
        Running {
            handle,
            abort: abort_tx,
            cut_open,
            region: exclusive::region_key(drill),
            name: name.clone(),
        },
    );
    tracing::info!(drill = %name, "drill started");
    event(
        &shared.ctx,
        drill,
        EventType::Normal,
        "DrillStarted",
        "Run",
        format!(
            "drill against region {} started",
            drill.spec.region_ref.name
        ),
    )
    .await;
    Ok(())
}

async fn event(
    ctx: &Context,
    drill: &PartitionDrill,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    ctx.publish_event(drill, type_, reason, action, &note).await
}
