//! One run of a drill as a task of this process: prepares the runtime and
//! the fault backend, runs the engine, writes progress and the verdict into
//! status, and heals what the engine left open.

use super::decide::unhealed;
use super::heal::{Counted, heal_after_engine};
use super::runtime::{KubeRuntime, zone_accesses};
use super::status::{StatusSink, last_success};
use super::*;
use crate::drill::engine::{self, EngineOptions};
use crate::drill::retry::{Backoff, Retried, Transient, retry};
use crate::operator::region::validated::ValidatedRegion;

pub(super) struct DrillJob {
    pub(super) ctx: Arc<Context>,
    pub(super) settings: DrillSettings,
    pub(super) drill: PartitionDrill,
    pub(super) api: Api<PartitionDrill>,
    pub(super) carried: Carried,
    pub(super) abort_tx: watch::Sender<bool>,
    pub(super) abort_rx: watch::Receiver<bool>,
    /// Told whether a fault of this run is open (see [`StatusSink`]).
    pub(super) cut_open: watch::Sender<bool>,
}

/// Aborts a task when dropped, so helpers die with the drill task.
pub(super) struct AbortOnDrop(pub(super) JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DrillJob {
    pub(super) async fn run(mut self) {
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
        let sink = sink.signal_cut_open(std::mem::replace(
            &mut self.cut_open,
            watch::channel(false).0,
        ));
        // Dies with the run: a run stopped where it stands (a killed
        // operator, a stop past its grace) must not write a stale Running
        // status over what the next operator wrote since.
        let mut writer = AbortOnDrop(tokio::spawn(writer));
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
                let gone = region_gone(&regions, &region_name).await;
                heal_after_engine(&mut s, &counted, aborted, gone).await;
                if !self.drill.spec.temporary_zone.keep {
                    let failed = runtime.remove_leftovers().await;
                    if !failed.is_empty() {
                        tracing::warn!(drill = %name, ?failed, "temporary zones not removed");
                    }
                }
                if gone && unhealed(Some(&s)).is_empty() {
                    // Whatever the last look made of a region being torn
                    // down (leftovers that could not be listed), the run was
                    // stopped by the deletion, not judged.
                    s.phase = DrillPhase::Aborted;
                    s.verdict = Verdict::NotRun;
                    s.message = Some(format!(
                        "region {region_name} was deleted during the drill; faults healed (or gone with the region)"
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
        carried.last_success_time = last_success(carried.last_success_time.take(), &report);
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
                    until_written("store the drill report", || {
                        reports::store(&self.ctx.client, &self.drill, &cm, started, &json, &svg)
                    })
                    .await
                }
                Err(e) => Err(e.to_string()),
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
        let _ = (&mut writer.0).await;
        // And once more directly: the writer swallows errors after retries.
        // Should this never land, the stored report still holds the outcome
        // and the next operator restores it from there.
        if let Err(e) = until_written("write the final drill status", || {
            status::apply(&self.api, &name, &finished)
        })
        .await
        {
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
        super::precondition::check(&self.drill, &region)?;
        // Validated and its credentials read once for the whole run.
        let valid = ValidatedRegion::load(&self.ctx, &region, None)
            .await
            .map_err(|e| e.to_string())?;
        // A mirror that cannot link to the source would only show as a
        // mirror never in sync: refuse with the reason instead.
        let untrusted: Vec<String> = valid
            .untrusted_links()
            .map(|(zone, why)| format!("zone {zone}: {why}"))
            .collect();
        if !untrusted.is_empty() {
            return Err(format!(
                "RegionMirror {region_name} has mirror zones that do not trust the source zone's certificate: {}",
                untrusted.join("; ")
            ));
        }
        let zones = zone_accesses(&self.ctx, &valid)
            .await
            .map_err(|e| e.to_string())?;
        let temporary = self
            .settings
            .temporary_zones
            .clone()
            .unwrap_or_else(|| Arc::new(KubernetesZones::new(self.ctx.clone())));
        let source = valid
            .source_zone()
            .map(|z| z.name.clone())
            .unwrap_or_default();
        if self.drill.spec.fault.backend == BackendKind::Toxiproxy {
            let target = toxiproxy_target(
                &self.settings,
                &self.drill.namespace().unwrap_or_default(),
                region_name,
            );
            let cut = super::precondition::cut_zones(&self.drill, &region);
            toxiproxy::proxies_ready(&target, &cut).await?;
        }
        // Both backends break the links a cut leaves standing, through the
        // zones' system account.
        let links = runtime::system_links(&self.ctx, &valid)
            .await
            .map_err(|e| e.to_string())?;
        let backend = backend(
            &self.ctx.client,
            &self.settings,
            self.drill.spec.fault.backend,
            &self.drill,
            region_name,
            CutTarget {
                source_zone: source,
                links,
                external: super::precondition::external_addresses(&region),
            },
        )
        .map_err(|e| e.to_string())?;
        let runtime = KubeRuntime::new(valid, self.drill.clone(), zones, temporary);
        Ok((region, runtime, backend))
    }
}

/// `write` retried through an API outage ([`Backoff::FINAL_WRITE`]) while
/// its errors may pass; the last error, for a person.
async fn until_written<T, E, F>(
    what: &str,
    write: impl FnMut() -> F,
) -> std::result::Result<T, String>
where
    E: Transient + std::fmt::Display,
    F: std::future::Future<Output = std::result::Result<T, E>>,
{
    retry(what, Backoff::FINAL_WRITE, write)
        .await
        .map_err(|r| match r {
            Retried::Permanent(e) => e.to_string(),
            Retried::Exhausted(x) => x.to_string(),
        })
}

/// The engine heals the partition it knows to be open; a step cut short
/// between the cut and that bookkeeping (an abort or timeout landing just
/// after the cut) can leave a recorded fault unhealed. Heal every record
/// still open, and say what happened.
pub(super) fn claim_label(c: crate::api::Claim) -> &'static str {
    use crate::api::Claim;
    match c {
        Claim::LocalConsumption => "local_consumption",
        Claim::NoLossAfterHeal => "no_loss_after_heal",
        Claim::IndependentProgress => "independent_progress",
        Claim::ZoneJoin => "zone_join",
    }
}

pub(super) fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::NotRun => "not_run",
        Verdict::Inconclusive => "inconclusive",
    }
}
