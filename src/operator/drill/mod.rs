//! The PartitionDrill controller: runs the drill engine against the
//! referenced RegionMirror as a task owned by this process (one per drill,
//! keyed by uid), reports progress into the drill's status, and makes sure no
//! fault outlives the drill: not on success, failure, abort, deletion of the
//! drill or the region, a passed deadline, or an operator restart.
//!
//! Reconcile never blocks on a drill: it starts the task, signals it (abort),
//! or, when the status says a drill is running but no task runs here (the
//! operator restarted), heals every fault recorded in the status and marks
//! the drill Aborted.

pub mod conditions;
pub mod decide;
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
use self::runtime::{KubeRuntime, KubernetesZones, TemporaryZones, zone_accesses};
use self::status::{Carried, StatusSink, push_history};
use self::toxiproxy::ToxiproxyTarget;
use super::context::Context;
use super::error::{Error, Result};
use super::shutdown::Shutdown;
use crate::api::{
    DrillPhase, FaultBackend as BackendKind, FaultRecord, PartitionDrill, PartitionDrillStatus,
    RegionMirror, Verdict,
};
use crate::drill::engine::{self, EngineOptions};
use crate::fault::FaultBackend;
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
        }
    }
}

impl std::fmt::Debug for DrillSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrillSettings")
            .field("toxiproxy", &self.toxiproxy)
            .field("temporary_zones", &self.temporary_zones.is_some())
            .field("status_every", &self.status_every)
            .finish()
    }
}

/// A drill task running in this process.
struct Running {
    handle: JoinHandle<()>,
    abort: watch::Sender<bool>,
}

/// The controller's state. Dropping it (the controller stopped or was
/// dropped) aborts every drill task it started, like a process exit would.
struct Shared {
    ctx: Arc<Context>,
    settings: DrillSettings,
    tasks: Mutex<HashMap<String, Running>>,
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
    let drills: Api<PartitionDrill> = match &ctx.settings.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    tracing::info!(?settings, "starting the PartitionDrill controller");
    let shared = Arc::new(Shared {
        ctx,
        settings,
        tasks: Mutex::new(HashMap::new()),
    });
    Controller::new(drills, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, shared.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "drill reconcile");
            }
        })
        .await;
    // An orderly stop (SIGTERM, lost leadership) aborts the drills running
    // here and waits for their heal, rather than leaving the faults to the
    // next operator (there may be none: an uninstall) or to their deadline.
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
    for r in running {
        if tokio::time::timeout(SHUTDOWN_HEAL, r.handle).await.is_err() {
            tracing::error!(
                "a drill did not finish healing before the shutdown limit; the next operator heals it"
            );
        }
    }
}

/// How long an orderly stop waits for running drills to heal.
const SHUTDOWN_HEAL: Duration = Duration::from_secs(20);

fn error_policy(drill: Arc<PartitionDrill>, error: &Error, shared: Arc<Shared>) -> Action {
    shared.ctx.metrics.failed(CONTROLLER, error.reason());
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
    shared.ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    out
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
        Next::HealOrphan(open) => {
            heal_orphan(shared, drill, &api, &open).await?;
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
            conditions::update(&mut s, drill.metadata.generation, now);
            status::apply(&api, &name, &s)
                .await
                .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
            Ok(Action::await_change())
        }
        Next::Idle => Ok(Action::await_change()),
        Next::WaitFor(wait) => Ok(Action::requeue(wait)),
        Next::Start { scheduled_at } => {
            start(shared, drill, &api, scheduled_at).await?;
            Ok(Action::requeue(Duration::from_secs(2)))
        }
    }
}

async fn set_finalizers(
    api: &Api<PartitionDrill>,
    drill: &PartitionDrill,
    finalizers: Vec<String>,
) -> Result<()> {
    let name = drill.name_any();
    // resourceVersion makes this a compare-and-swap: a concurrent change
    // makes it fail and the next reconcile sees the new list.
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": drill.resource_version(),
        }
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("update finalizers of drill {name}"), e)),
    }
}

async fn add_finalizer(api: &Api<PartitionDrill>, drill: &PartitionDrill) -> Result<()> {
    if has_finalizer(drill) {
        return Ok(());
    }
    let mut f = drill.finalizers().to_vec();
    f.push(FINALIZER.to_string());
    set_finalizers(api, drill, f).await
}

async fn remove_finalizer(api: &Api<PartitionDrill>, drill: &PartitionDrill) -> Result<()> {
    if !has_finalizer(drill) {
        return Ok(());
    }
    let f = drill
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, drill, f).await
}

/// The backend that removes (or injects) faults of `kind` for `drill`.
fn backend(
    client: &kube::Client,
    settings: &DrillSettings,
    kind: BackendKind,
    drill: &PartitionDrill,
    region: &str,
    source_zone: &str,
) -> Result<Arc<dyn FaultBackend>> {
    let ns = namespace(drill)?;
    Ok(match kind {
        BackendKind::NetworkPolicy => Arc::new(NetworkPolicyBackend::new(
            client.clone(),
            NetworkPolicyTarget {
                namespace: ns,
                region: region.to_string(),
                drill: drill.name_any(),
                source_zone: source_zone.to_string(),
                owner: owner(drill),
            },
        )),
        BackendKind::Toxiproxy => Arc::new(
            settings
                .toxiproxy
                .clone()
                .unwrap_or_else(|| ToxiproxyTarget::in_cluster(&ns, region))
                .backend(),
        ),
    })
}

fn backend_kind(name: &str) -> BackendKind {
    if name.eq_ignore_ascii_case("toxiproxy") {
        BackendKind::Toxiproxy
    } else {
        BackendKind::NetworkPolicy
    }
}

/// A drill with open faults and no task here: heal every open fault through
/// its backend, then mark the drill Aborted.
async fn heal_orphan(
    shared: &Shared,
    drill: &PartitionDrill,
    api: &Api<PartitionDrill>,
    open: &[FaultRecord],
) -> Result<()> {
    let name = drill.name_any();
    let mut status = drill.status.clone().unwrap_or_default();
    tracing::warn!(drill = %name, faults = open.len(), "drill was running without a task in this process; healing its faults");
    if !open.is_empty() && status.phase != DrillPhase::Healing {
        status.phase = DrillPhase::Healing;
        status.message = Some("operator restarted during the drill; healing faults".into());
        conditions::update(
            &mut status,
            drill.metadata.generation,
            jiff::Timestamp::now(),
        );
        status::apply(api, &name, &status)
            .await
            .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
    }
    let region = drill.spec.region_ref.name.clone();
    let mut failed = Vec::new();
    for record in open {
        // The source zone only matters for cutting, not for healing.
        let b = backend(
            &shared.ctx.client,
            &shared.settings,
            backend_kind(&record.backend),
            drill,
            &region,
            "",
        )?;
        match b.heal(record).await {
            Ok(()) => {
                shared.ctx.metrics.fault_healed(b.name());
                if let Some(f) = status.faults.iter_mut().find(|f| f.id == record.id) {
                    f.healed_at = Some(Time(jiff::Timestamp::now()));
                }
            }
            Err(e) => failed.push(format!("{}: {e}", record.id)),
        }
    }
    if !failed.is_empty() {
        status.message = Some(format!(
            "operator restarted during the drill; healing failed, retrying: {}",
            failed.join("; ")
        ));
        let _ = status::apply(api, &name, &status).await;
        return Err(Error::Other {
            reason: "HealFailed",
            message: failed.join("; "),
            permanent: false,
        });
    }
    event(
        &shared.ctx,
        drill,
        EventType::Warning,
        "FaultsHealed",
        "Heal",
        format!(
            "{} fault(s) left open by an interrupted drill were removed",
            open.len()
        ),
    )
    .await;
    // A temporary zone the interrupted run may have started.
    if !status.phase.is_finished() && !drill.spec.temporary_zone.keep {
        remove_temporary_zone(shared, drill).await;
    }
    if status.phase.is_finished() {
        // Faults open on a finished drill (a heal that failed at the end):
        // healed now, the verdict stands.
    } else {
        status.phase = DrillPhase::Aborted;
        status.verdict = Verdict::NotRun;
        status.message = Some(RESTARTED.to_string());
        status.finished_at = Some(Time(jiff::Timestamp::now()));
        let mut history = std::mem::take(&mut status.history);
        push_history(&mut history, &status, drill.spec.history_limit);
        status.history = history;
        conditions::update(
            &mut status,
            drill.metadata.generation,
            jiff::Timestamp::now(),
        );
    }
    status::apply(api, &name, &status)
        .await
        .map_err(|e| Error::kube(format!("write status of drill {name}"), e))
}

/// Best effort: the zone's objects are owned by the drill, so they go with
/// it at the latest.
async fn remove_temporary_zone(shared: &Shared, drill: &PartitionDrill) {
    let ns = drill.namespace().unwrap_or_default();
    let regions: Api<RegionMirror> = Api::namespaced(shared.ctx.client.clone(), &ns);
    let Ok(Some(region)) = regions.get_opt(&drill.spec.region_ref.name).await else {
        return;
    };
    let zones: Arc<dyn TemporaryZones> = match &shared.settings.temporary_zones {
        Some(z) => z.clone(),
        None => Arc::new(KubernetesZones::new(shared.ctx.clone())),
    };
    let zone = &drill.spec.temporary_zone.name;
    if let Err(e) = zones.remove(&region, drill, zone).await {
        tracing::debug!(drill = %drill.name_any(), zone = %zone, error = %e, "no temporary zone removed");
    }
}

/// Starts a run as a task of this process.
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
        conditions: first.conditions.clone(),
    };
    status::apply(api, &name, &carried.merge(first))
        .await
        .map_err(|e| Error::kube(format!("write status of drill {name}"), e))?;
    let (abort_tx, abort_rx) = watch::channel(false);
    let job = DrillJob {
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

struct DrillJob {
    ctx: Arc<Context>,
    settings: DrillSettings,
    drill: PartitionDrill,
    api: Api<PartitionDrill>,
    carried: Carried,
    abort_tx: watch::Sender<bool>,
    abort_rx: watch::Receiver<bool>,
}

/// The region is deleted or being deleted (a read error is not taken as gone).
async fn region_gone(regions: &Api<RegionMirror>, name: &str) -> bool {
    match regions.get_opt(name).await {
        Ok(None) => true,
        Ok(Some(r)) => r.metadata.deletion_timestamp.is_some(),
        Err(_) => false,
    }
}

/// Aborts a task when dropped, so helpers die with the drill task.
struct AbortOnDrop(JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DrillJob {
    async fn run(self) {
        let name = self.drill.name_any();
        let ns = self.drill.namespace().unwrap_or_default();
        let regions: Api<RegionMirror> = Api::namespaced(self.ctx.client.clone(), &ns);
        let region_name = self.drill.spec.region_ref.name.clone();
        let (sink, writer) = StatusSink::new(
            self.api.clone(),
            name.clone(),
            self.carried.clone(),
            self.settings.status_every,
        );
        let writer = tokio::spawn(writer);
        let (report, full) = match self.prepare(&regions, &region_name).await {
            Err(message) => (
                PartitionDrillStatus {
                    observed_generation: self.drill.metadata.generation,
                    phase: DrillPhase::Failed,
                    verdict: Verdict::Failed,
                    message: Some(format!("precondition failed: {message}")),
                    started_at: Some(Time(jiff::Timestamp::now())),
                    finished_at: Some(Time(jiff::Timestamp::now())),
                    ..Default::default()
                },
                None,
            ),
            Ok((region, runtime, backend)) => {
                // Deletion of the region aborts the drill (its faults are healed).
                let watchdog = AbortOnDrop(tokio::spawn({
                    let regions = regions.clone();
                    let abort = self.abort_tx.clone();
                    let every = self.settings.region_check_every;
                    let region_name = region_name.clone();
                    async move {
                        loop {
                            tokio::time::sleep(every).await;
                            if region_gone(&regions, &region_name).await {
                                tracing::warn!(region = %region_name, "region deleted during the drill; aborting it");
                                let _ = abort.send(true);
                                return;
                            }
                        }
                    }
                }));
                let opts = EngineOptions {
                    provision: false,
                    abort: Some(self.abort_rx.clone()),
                    ..Default::default()
                };
                let counted = Counted {
                    inner: backend.as_ref(),
                    metrics: &self.ctx.metrics,
                };
                let report =
                    engine::run(&region, &self.drill, &runtime, &counted, &sink, opts).await;
                drop(watchdog);
                let mut s = report.status.clone();
                let aborted = *self.abort_rx.borrow();
                heal_after_engine(&mut s, &counted, aborted).await;
                if !self.drill.spec.temporary_zone.keep {
                    let failed = runtime.remove_leftovers().await;
                    if !failed.is_empty() {
                        tracing::warn!(drill = %name, ?failed, "temporary zones not removed");
                    }
                }
                if s.phase == DrillPhase::Aborted && region_gone(&regions, &region_name).await {
                    s.message = Some(format!(
                        "region {region_name} was deleted during the drill; faults healed"
                    ));
                }
                for c in &s.claims {
                    self.ctx
                        .metrics
                        .drill_verdict(claim_label(c.claim), verdict_label(c.verdict));
                }
                self.ctx
                    .metrics
                    .drill_verdict("drill", verdict_label(s.verdict));
                if let Some(c) = s.totals.catch_up_seconds {
                    self.ctx.metrics.drill_catch_up(c);
                }
                (s, Some(report))
            }
        };
        let mut report = report;
        let started = report.started_at.as_ref().map(|t| t.0);
        if let (Some(_), Some(started)) = (&full, started) {
            report.report = Some(reports::name(&name, started));
        }
        let mut carried = self.carried.clone();
        push_history(&mut carried.history, &report, self.drill.spec.history_limit);
        let mut finished = carried.merge(report);
        conditions::update(
            &mut finished,
            self.drill.metadata.generation,
            jiff::Timestamp::now(),
        );
        if let (Some(full), Some(started), Some(cm)) = (full, started, finished.report.clone()) {
            // Stored before the status names it, and holding the final status.
            let mut full = full;
            full.status = finished.clone();
            let svg = crate::drill::report::timeline_svg(&full.timeline, &full.drill);
            let stored = match serde_json::to_value(&full) {
                Ok(json) => {
                    reports::store(&self.ctx.client, &self.drill, &cm, started, &json, &svg).await
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = stored {
                tracing::error!(drill = %name, error = %e, "drill report not stored");
                finished.report = None;
                if let Some(h) = finished.history.last_mut() {
                    h.report = None;
                }
            }
        }
        // The last word, after every progress write.
        sink.send(finished.clone(), true);
        drop(sink);
        let _ = writer.await;
        // And once more directly: the writer swallows errors after retries.
        if let Err(e) = status::apply(&self.api, &name, &finished).await {
            tracing::error!(drill = %name, error = %e, "final drill status not written");
        }
        tracing::info!(drill = %name, phase = ?finished.phase, verdict = ?finished.verdict, "drill finished");
        let (type_, reason) = match finished.phase {
            DrillPhase::Succeeded => (EventType::Normal, "DrillSucceeded"),
            DrillPhase::Aborted => (EventType::Warning, "DrillAborted"),
            DrillPhase::Errored => (EventType::Warning, "DrillErrored"),
            _ => (EventType::Warning, "DrillFailed"),
        };
        event(
            &self.ctx,
            &self.drill,
            type_,
            reason,
            "Run",
            finished.message.clone().unwrap_or_default(),
        )
        .await;
    }

    async fn prepare(
        &self,
        regions: &Api<RegionMirror>,
        region_name: &str,
    ) -> Result<(RegionMirror, KubeRuntime, Arc<dyn FaultBackend>), String> {
        let region = regions
            .get_opt(region_name)
            .await
            .map_err(|e| format!("cannot read RegionMirror {region_name}: {e}"))?
            .ok_or_else(|| {
                format!(
                    "RegionMirror {region_name} (spec.regionRef.name) does not exist in namespace {}",
                    self.drill.namespace().unwrap_or_default()
                )
            })?;
        if self.drill.spec.fault.backend == BackendKind::Toxiproxy {
            toxiproxy::precondition(&region)?;
        }
        let zones = zone_accesses(&self.ctx, &region)
            .await
            .map_err(|e| e.to_string())?;
        let temporary = self
            .settings
            .temporary_zones
            .clone()
            .unwrap_or_else(|| Arc::new(KubernetesZones::new(self.ctx.clone())));
        let source = region
            .spec
            .source_zone()
            .map(|z| z.name.clone())
            .unwrap_or_default();
        let backend: Arc<dyn FaultBackend> = match self.drill.spec.fault.backend {
            BackendKind::NetworkPolicy => {
                let links = runtime::system_links(&self.ctx, &region)
                    .await
                    .map_err(|e| e.to_string())?;
                Arc::new(
                    NetworkPolicyBackend::new(
                        self.ctx.client.clone(),
                        NetworkPolicyTarget {
                            namespace: self.drill.namespace().unwrap_or_default(),
                            region: region_name.to_string(),
                            drill: self.drill.name_any(),
                            source_zone: source.clone(),
                            owner: owner(&self.drill),
                        },
                    )
                    .with_links(links),
                )
            }
            kind => backend(
                &self.ctx.client,
                &self.settings,
                kind,
                &self.drill,
                region_name,
                &source,
            )
            .map_err(|e| e.to_string())?,
        };
        if self.drill.spec.fault.backend == BackendKind::Toxiproxy {
            let target = self.settings.toxiproxy.clone().unwrap_or_else(|| {
                ToxiproxyTarget::in_cluster(
                    &self.drill.namespace().unwrap_or_default(),
                    region_name,
                )
            });
            let cut: Vec<String> = if self.drill.spec.fault.zones.is_empty() {
                region.spec.mirror_zones().map(|z| z.name.clone()).collect()
            } else {
                self.drill.spec.fault.zones.clone()
            };
            toxiproxy::proxies_ready(&target, &cut).await?;
        }
        let runtime = KubeRuntime::new(region.clone(), self.drill.clone(), zones, temporary);
        Ok((region, runtime, backend))
    }
}

/// The engine heals the partition it knows to be open; a step cut short
/// between the cut and that bookkeeping (an abort or timeout landing just
/// after the cut) can leave a recorded fault unhealed. Heal every record
/// still open, and say what happened.
async fn heal_after_engine(
    status: &mut PartitionDrillStatus,
    backend: &dyn FaultBackend,
    aborted: bool,
) {
    let open = unhealed(Some(status));
    if open.is_empty() {
        return;
    }
    let mut healed_all = true;
    for record in &open {
        match backend.heal(record).await {
            Ok(()) => {
                if let Some(f) = status.faults.iter_mut().find(|f| f.id == record.id) {
                    f.healed_at = Some(Time(jiff::Timestamp::now()));
                }
            }
            Err(e) => {
                healed_all = false;
                tracing::error!(fault = %record.id, error = %e, "fault still open after the drill; the next reconcile retries");
            }
        }
    }
    let clean = healed_all && backend.leftovers().await.is_ok_and(|l| l.is_empty());
    if !clean {
        return;
    }
    if aborted {
        status.phase = DrillPhase::Aborted;
        status.verdict = Verdict::NotRun;
        status.message = Some("aborted; faults healed".into());
    } else if let Some(m) = status.message.as_mut() {
        m.push_str(" (the operator healed them after the drill)");
    }
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

fn claim_label(c: crate::api::Claim) -> &'static str {
    use crate::api::Claim;
    match c {
        Claim::LocalConsumption => "local_consumption",
        Claim::NoLossAfterHeal => "no_loss_after_heal",
        Claim::IndependentProgress => "independent_progress",
        Claim::ZoneJoin => "zone_join",
    }
}

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::NotRun => "not_run",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// Counts injected and healed faults in the metrics, around any backend.
struct Counted<'a> {
    inner: &'a dyn FaultBackend,
    metrics: &'a crate::operator::metrics::Metrics,
}

impl crate::fault::Network for Counted<'_> {
    fn prepare_zone<'a>(
        &'a self,
        zone: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<crate::fault::ZoneHost, crate::fault::FaultError>>
    {
        self.inner.prepare_zone(zone)
    }
    fn leaf_route<'a>(
        &'a self,
        zone: &'a str,
        source_server: usize,
        upstream: std::net::SocketAddr,
    ) -> futures::future::BoxFuture<'a, Result<std::net::SocketAddr, crate::fault::FaultError>>
    {
        self.inner.leaf_route(zone, source_server, upstream)
    }
    fn leaf_advertise(&self, source_server: usize, listen: std::net::SocketAddr) -> Option<String> {
        self.inner.leaf_advertise(source_server, listen)
    }
}

impl FaultBackend for Counted<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn cut<'a>(
        &'a self,
        zones: &'a [String],
        deadline: Duration,
    ) -> futures::future::BoxFuture<'a, Result<FaultRecord, crate::fault::FaultError>> {
        Box::pin(async move {
            let r = self.inner.cut(zones, deadline).await;
            if r.is_ok() {
                self.metrics.fault_injected(self.inner.name());
            }
            r
        })
    }
    fn heal<'a>(
        &'a self,
        record: &'a FaultRecord,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::fault::FaultError>> {
        Box::pin(async move {
            let r = self.inner.heal(record).await;
            if r.is_ok() {
                self.metrics.fault_healed(self.inner.name());
            }
            r
        })
    }
    fn probe<'a>(
        &'a self,
        zone: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<bool, crate::fault::FaultError>> {
        self.inner.probe(zone)
    }
    fn leftovers(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<Vec<String>, crate::fault::FaultError>> {
        self.inner.leftovers()
    }
    fn apply_toxics<'a>(
        &'a self,
        zone: &'a str,
        toxics: &'a [crate::api::Toxic],
    ) -> futures::future::BoxFuture<'a, Result<(), crate::fault::FaultError>> {
        self.inner.apply_toxics(zone, toxics)
    }
}
