//! Healing the faults a drill's status records: after the engine (a step cut
//! short between the cut and the engine's own bookkeeping), and for a drill
//! found running with no task in this process (an operator restart). One
//! path, [`heal_records`], through the backend that made each fault, counted
//! in the metrics.

use super::*;

/// A drill with open faults and no task here: heal every open fault through
/// its backend, then mark the drill Aborted.
pub(super) async fn heal_orphan(
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
        write_status(api, drill, &mut status).await?;
    }
    let region = drill.spec.region_ref.name.clone();
    // The drill's own backend always, even with no record: a cut that landed
    // before its record did (an operator killed in between) is found by the
    // drill's labels or the region's proxy prefix.
    let mut kinds = vec![drill.spec.fault.backend];
    for record in open {
        let kind = backend_kind(&record.backend);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut backends: Vec<(BackendKind, Arc<dyn FaultBackend>)> = Vec::new();
    for kind in kinds {
        let b = backend(
            &shared.ctx.client,
            &shared.settings,
            kind,
            drill,
            &region,
            CutTarget::default(),
        )?;
        backends.push((kind, b));
    }
    // What is in place before anything is healed, by backend: named in the
    // status, and removed even where no record covers it.
    let mut in_place = Vec::new();
    for (_, b) in &backends {
        in_place.push(b.leftovers().await.unwrap_or_default());
    }
    let found: Vec<String> = in_place.iter().flatten().cloned().collect();
    let counted: Vec<(BackendKind, Counted<'_>)> = backends
        .iter()
        .map(|(kind, b)| {
            let counted = Counted {
                inner: b.as_ref(),
                metrics: &shared.ctx.metrics,
            };
            (*kind, counted)
        })
        .collect();
    let regions: Api<RegionMirror> = Api::namespaced(shared.ctx.client.clone(), &namespace(drill)?);
    let region_gone = super::region_gone(&regions, &region).await;
    let mut failed = heal_records(&mut status, open, region_gone, |record| {
        let kind = backend_kind(&record.backend);
        counted
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, b)| b as &dyn FaultBackend)
            .expect("a backend for every open fault")
    })
    .await;
    // Fault objects no record covers: removed all the same.
    for ((kind, b), left) in counted.iter().zip(&in_place) {
        if left.is_empty() || open.iter().any(|r| backend_kind(&r.backend) == *kind) {
            continue;
        }
        tracing::warn!(drill = %name, ?left, "fault objects without a record; removing them");
        let unrecorded = crate::fault::fault_record(
            "unrecorded".into(),
            b.name(),
            &drill.spec.fault.zones,
            jiff::Timestamp::now(),
            Duration::ZERO,
        );
        if let Err(e) = b.heal(&unrecorded).await {
            failed.push(format!("fault objects without a record: {e}"));
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
        if found.is_empty() {
            format!(
                "{} fault record(s) left open by an interrupted drill were healed; no fault object was in place",
                open.len()
            )
        } else {
            format!(
                "an interrupted drill left faults in place; removed: {}",
                found.join(", ")
            )
        },
    )
    .await;
    // A temporary zone the interrupted run may have started.
    if !status.phase.is_finished() && !drill.spec.temporary_zone.keep {
        remove_temporary_zone(shared, drill).await;
    }
    let stored = match &status.started_at {
        Some(started) if !status.phase.is_finished() => {
            reports::final_status(&shared.ctx.client, &namespace(drill)?, &name, started.0).await
        }
        _ => None,
    };
    if status.phase.is_finished() {
        // Faults open on a finished drill (a heal that failed at the end):
        // healed now, the verdict stands.
    } else if let Some(mut outcome) = stored {
        // The run ended and stored its report, but its last status write did
        // not land (an API outage, then the operator gone): its outcome
        // stands, with the faults as healed now.
        for f in &mut outcome.faults {
            if let Some(now) = status.faults.iter().find(|g| g.id == f.id) {
                f.healed_at = f.healed_at.clone().or(now.healed_at.clone());
            }
        }
        let note = format!(
            "restored from report {} after an operator restart: the run's last status write had not landed",
            outcome.report.clone().unwrap_or_default()
        );
        outcome.message = Some(match outcome.message.take() {
            Some(m) if !m.is_empty() => format!("{m} ({note})"),
            _ => note,
        });
        status = outcome;
    } else {
        status.phase = DrillPhase::Aborted;
        status.verdict = Verdict::NotRun;
        status.message = Some(if found.is_empty() {
            RESTARTED.to_string()
        } else {
            format!("{RESTARTED}: removed {}", found.join(", "))
        });
        status.finished_at = Some(Time(jiff::Timestamp::now()));
        let mut history = std::mem::take(&mut status.history);
        push_history(&mut history, &status, drill.spec.history_limit);
        status.history = history;
    }
    write_status(api, drill, &mut status).await
}

/// The conditions brought in line with the phase, then the status written.
async fn write_status(
    api: &Api<PartitionDrill>,
    drill: &PartitionDrill,
    status: &mut PartitionDrillStatus,
) -> Result<()> {
    let name = drill.name_any();
    conditions::update(status, drill.metadata.generation, jiff::Timestamp::now());
    status::apply(api, &name, status)
        .await
        .map_err(|e| Error::kube(format!("write status of drill {name}"), e))
}

/// Best effort: the zone's objects are owned by the drill, so they go with
/// it at the latest.
pub(super) async fn remove_temporary_zone(shared: &Shared, drill: &PartitionDrill) {
    let zones: Arc<dyn TemporaryZones> = match &shared.settings.temporary_zones {
        Some(z) => z.clone(),
        None => Arc::new(KubernetesZones::new(shared.ctx.clone())),
    };
    let zone = &drill.spec.temporary_zone.name;
    if let Err(e) = zones.remove(drill, zone).await {
        tracing::debug!(drill = %drill.name_any(), zone = %zone, error = %e, "no temporary zone removed");
    }
}

/// Starts a run as a task of this process.
pub(super) async fn heal_after_engine(
    status: &mut PartitionDrillStatus,
    backend: &dyn FaultBackend,
    aborted: bool,
    region_gone: bool,
) {
    let open = unhealed(Some(status));
    if open.is_empty() {
        return;
    }
    let failed = heal_records(status, &open, region_gone, |_| backend).await;
    for failure in &failed {
        tracing::error!(fault = %failure, "fault still open after the drill; the next reconcile retries");
    }
    let clean = failed.is_empty() && backend.leftovers().await.is_ok_and(|l| l.is_empty());
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

/// The one way the controller heals recorded faults: through the backend
/// that made each (`backend_of`), one record at a time, going on past failures so one stuck fault cannot keep
/// the others open. Stamps `healedAt` in `status` for each that went;
/// returns `<id>: <error>` for the rest.
///
/// `region_gone`: the drill's region is deleted or being deleted. A
/// Toxiproxy fault that cannot be healed then went with the region's
/// Toxiproxy (a Deployment the region owns): nothing is left to heal, and
/// retrying would keep the drill (and a namespace deletion) waiting forever.
pub(super) async fn heal_records<'b>(
    status: &mut PartitionDrillStatus,
    open: &[FaultRecord],
    region_gone: bool,
    backend_of: impl Fn(&FaultRecord) -> &'b dyn FaultBackend,
) -> Vec<String> {
    let mut failed = Vec::new();
    for record in open {
        let healed = match backend_of(record).heal(record).await {
            Ok(()) => true,
            Err(e) if region_gone && backend_kind(&record.backend) == BackendKind::Toxiproxy => {
                tracing::warn!(fault = %record.id, error = %e, "the region is gone and its Toxiproxy with it; counting the fault as healed");
                true
            }
            Err(e) => {
                failed.push(format!("{}: {e}", record.id));
                false
            }
        };
        if healed && let Some(f) = status.faults.iter_mut().find(|f| f.id == record.id) {
            f.healed_at.get_or_insert(Time(jiff::Timestamp::now()));
        }
    }
    failed
}

/// Counts injected and healed faults in the metrics, around any backend.
pub(super) struct Counted<'a> {
    pub(super) inner: &'a dyn FaultBackend,
    pub(super) metrics: &'a crate::operator::metrics::Metrics,
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
    fn leaf_routes_only(&self) -> bool {
        self.inner.leaf_routes_only()
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
