//! Runs a drill: steps in order, each under a timeout, faults always healed,
//! evidence gathered for the four claims, and a report at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;

use crate::api::{
    ClaimResult, DrillPhase, DrillTotals, FaultRecord, PartitionDrill, PartitionDrillStatus,
    RegionMirror, RegionMirrorSpec, Retention, RunScope, Step, Verdict, ZoneRole, ZoneSpec,
    ZoneStorage,
};
use crate::fault::FaultBackend;
use crate::nats::connect::{ConnectSettings, ZoneClient, connect};
use crate::nats::resume;
use crate::plan::{StreamKind, ZoneStream};

use super::audit::{StoredAudit, StoredAuditResult, audit_stream, audit_zone};
use super::checker::{SentLog, ZoneCheck};
use super::claims::{
    CatchUpEvidence, Evidence, JoinEvidence, MirrorResume, PartitionEvidence, PauseEvidence, judge,
};
use super::consumer::{Position, Writer, ZoneReader};
use super::producer::{PhaseStats, Producer, ProducerIdentity, ProducerSettings};
use super::retry::{Backoff, Exhausted, Retried, retry};
use super::runtime::{Runtime, ZoneAccess};
use super::timeline::{LagByCause, LagCause, Sampler, Timeline, Watched};
use crate::nats::state::{last_seq, sourced_seq};

/// Live figures for a progress display.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub step: String,
    pub attempted: u64,
    pub acked: u64,
    pub reads: Vec<(String, u64)>,
    pub partitioned: bool,
}

/// Hooks for whoever shows or stores progress (a terminal, a CR status).
pub trait Observer: Send + Sync {
    fn step(&self, _index: usize, _total: usize, _step: Step) {}
    fn progress(&self, _progress: &Progress) {}
    /// Called after each step and whenever a fault is injected or healed, so a
    /// restarted operator can find and heal it.
    fn status(&self, _status: &PartitionDrillStatus) {}
    /// Stores `status` where a restarted process finds it, and says whether
    /// it got there. The engine waits for this before a cut (the intent
    /// record) and does not cut when it fails. Nothing to store: `Ok`.
    fn persist<'a>(
        &'a self,
        _status: &'a PartitionDrillStatus,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

pub struct Silent;
impl Observer for Silent {}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Create the source stream and the mirrors before the drill (local runtime);
    /// in a cluster the region controller does that.
    pub provision: bool,
    /// How often the timeline samples last sequences.
    pub sample_every: Duration,
    /// Flip to `true` to abort: faults are healed and the drill ends Aborted.
    pub abort: Option<watch::Receiver<bool>>,
    /// Producer's in-flight PubAck window.
    pub publish_window: usize,
    /// This run's writer id; `None` derives one from the drill's uid (or
    /// name) and the run's start, so no two runs share `Nats-Msg-Id`s.
    pub writer: Option<u32>,
    /// How long a transient JetStream error is retried before the drill ends
    /// as inconclusive.
    pub retry: Backoff,
    /// After a heal, a mirror still behind and silent this long after its
    /// link to the source answers again is made to re-create its consumer
    /// by a leader stepdown, once per heal. `None` leaves it to the server's
    /// own retry, which can take some 40 s (docs/architecture.md).
    pub resume_mirrors_after: Option<Duration>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            provision: true,
            sample_every: Duration::from_millis(250),
            abort: None,
            publish_window: 256,
            writer: None,
            retry: Backoff::JETSTREAM,
            resume_mirrors_after: Some(RESUME_MIRRORS_AFTER),
        }
    }
}

/// How long after its link came back a mirror still behind and silent is
/// made to re-create its consumer: the server's own reconnect retry fires
/// within 0.2 s when it fires at all, so 0.5 s is past it. Not waited for
/// when that retry cannot come (`nats::resume::retry_cannot_come`).
pub const RESUME_MIRRORS_AFTER: Duration = Duration::from_millis(500);

/// Between two stepdowns of one mirror: a successor asks for its consumer
/// at once and hears a heartbeat within a second when its link is up.
pub const RESUME_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Stepdowns per mirror per heal: with three servers the leadership moves
/// to a server whose leafnode is back within a few tries.
pub const MAX_RESUMES: usize = 3;

/// A writer id for one run: stable for the same drill and start instant,
/// different across runs (never 0, which no payload carries).
pub fn run_writer(drill: &PartitionDrill, started: jiff::Timestamp) -> u32 {
    let who = drill
        .metadata
        .uid
        .as_deref()
        .or(drill.metadata.name.as_deref())
        .unwrap_or("drill");
    let h = xxhash_rust::xxh3::xxh3_64(format!("{who}/{}", started.as_nanosecond()).as_bytes());
    ((h ^ (h >> 32)) as u32).max(1)
}

/// One produce phase.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRecord {
    pub step_index: usize,
    pub step: String,
    pub partitioned: bool,
    pub stats: PhaseStats,
}

/// Everything a drill found: the status a cluster would show, plus the detail
/// behind it (per-zone checks, phases, timeline).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub drill: String,
    pub region: String,
    pub fault_backend: String,
    pub status: PartitionDrillStatus,
    pub evidence: Evidence,
    pub phases: Vec<PhaseRecord>,
    pub producer: Option<ProducerSettings>,
    pub timeline: Timeline,
    /// Largest lag per zone and cause (cut off, backfilling, steady).
    pub lag: BTreeMap<String, LagByCause>,
    pub wall_seconds: f64,
}

impl DrillReport {
    pub fn passed(&self) -> bool {
        self.status.verdict == Verdict::Passed
    }
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("precondition failed: {0}")]
    Precondition(String),
    #[error("{0}")]
    Failed(String),
    #[error("step {step} did not finish within {seconds}s")]
    Timeout { step: &'static str, seconds: i32 },
    #[error("aborted")]
    Aborted,
    /// Zones stopped answering within the retry budget: the drill could not
    /// finish, which says nothing about the region's claims.
    #[error("the zones did not answer: {0}")]
    Unreachable(Exhausted),
}

impl StepError {
    /// A retried call ended: permanent errors are preconditions, a spent
    /// budget means the zones did not answer.
    fn from_retried<E: std::fmt::Display>(r: Retried<E>, context: impl Fn(E) -> String) -> Self {
        match r {
            Retried::Permanent(e) => StepError::Precondition(context(e)),
            Retried::Exhausted(e) => StepError::Unreachable(e),
        }
    }
}

struct Zone {
    access: ZoneAccess,
    conn: ZoneClient,
    reader: ZoneReader,
    /// The first sequence of the stream this zone reads that the run owns.
    first_seq: u64,
    /// Reader errors at the cut, to count errors during the partition.
    errors_at_cut: u64,
    reads_at_cut: u64,
}

impl Zone {
    fn name(&self) -> &str {
        self.access.name()
    }
    fn errors(&self) -> u64 {
        let s = self.reader.stats();
        s.fetch_errors.load(std::sync::atomic::Ordering::Relaxed)
            + s.ack_errors.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One writer of the run: the source zone's producer (mirror topology), or
/// every zone's (sources topology, the temporary zone's included from the
/// start, so every reader judges its writes).
struct WriterSlot {
    zone: String,
    /// Every attempt and PubAck of this writer; consumers judge reads against it.
    log: Arc<Mutex<SentLog>>,
    /// Set once the zone is connected.
    producer: Option<Producer>,
    /// The sources topology: the first sequence of the zone's local stream
    /// the run owns (audited there against this log).
    local_first_seq: u64,
}

impl WriterSlot {
    fn writer(&self) -> u32 {
        self.log.lock().expect("log").writer
    }
}

/// A stream in one zone fed from another: a mirror from the source, or an
/// aggregate's source from a zone's local stream. Where it stands against
/// its head proves a cut (frozen) and a catch-up (reached).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Link {
    from: String,
    to: String,
}

impl Link {
    /// The mirror's zone (mirror topology: one link per mirror), or
    /// `<to><-<from>` for an aggregate's source.
    fn name(&self, sources: bool) -> String {
        if sources {
            format!("{}<-{}", self.to, self.from)
        } else {
            self.to.clone()
        }
    }
}

struct OpenFault {
    record: FaultRecord,
    cut_at: Instant,
    evidence: PartitionEvidence,
    /// Produce phases published while this fault was on.
    phases: Vec<u16>,
    /// Healed before the last look (the drill was stopped), and why.
    healed_first: Option<String>,
}

/// Runs `drill` against `region`. Never returns with a fault in place: every
/// path out (success, failure, timeout, abort) goes through the heal.
pub async fn run(
    region: &RegionMirror,
    drill: &PartitionDrill,
    runtime: &dyn Runtime,
    backend: &dyn FaultBackend,
    observer: &dyn Observer,
    opts: EngineOptions,
) -> DrillReport {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let writer = opts.writer.unwrap_or_else(|| run_writer(drill, started_at));
    let mut run = Run {
        region,
        drill,
        runtime,
        backend,
        observer,
        opts,
        epoch: started,
        status: PartitionDrillStatus {
            observed_generation: drill.metadata.generation,
            phase: DrillPhase::Running,
            started_at: Some(Time(started_at)),
            sync_interval: Some(region.spec.stream.sync_interval.clone()),
            ..Default::default()
        },
        writer,
        backlog_zones: Vec::new(),
        writers: writer_slots(region, drill, writer),
        zones: Vec::new(),
        sampler: None,
        watched: Arc::new(Mutex::new(Vec::new())),
        evidence: Evidence {
            topology: region.spec.topology,
            ..Default::default()
        },
        open: None,
        phases: Vec::new(),
        next_phase: 0,
        heal_at: None,
        temporary: None,
        cut_started: None,
        overtime: None,
    };
    let outcome = run.execute().await;
    run.conclude(&outcome).await;
    run.finish(outcome, started).await
}

struct Run<'a> {
    region: &'a RegionMirror,
    drill: &'a PartitionDrill,
    runtime: &'a dyn Runtime,
    backend: &'a dyn FaultBackend,
    observer: &'a dyn Observer,
    opts: EngineOptions,
    epoch: Instant,
    status: PartitionDrillStatus,
    zones: Vec<Zone>,
    sampler: Option<Sampler>,
    watched: Watched,
    evidence: Evidence,
    open: Option<OpenFault>,
    phases: Vec<PhaseRecord>,
    next_phase: u16,
    heal_at: Option<Instant>,
    temporary: Option<String>,
    /// Zones of the last cut requested from the backend, until it is healed.
    cut_started: Option<Vec<String>>,
    /// This run's first writer id (the others follow it).
    writer: u32,
    /// Zones whose consumers the build-backlog step paused until the next cut.
    backlog_zones: Vec<String>,
    writers: Vec<WriterSlot>,
    /// Set when the catch-up ran over its timeout.
    overtime: Option<Overtime>,
}

/// Where the run stood when the catch-up timeout ran out: the final check
/// reads on until the grace ends, and what it reads of the phases published
/// by then arrived late.
struct Overtime {
    until: Instant,
    phases: Vec<u16>,
    /// Acked messages of those phases each (zone, writer) had read by then.
    read: BTreeMap<(String, u32), u64>,
}

/// The run's writers: the source zone's, or (sources topology) every zone's
/// and the temporary zone's, with consecutive writer ids from `first`.
fn writer_slots(region: &RegionMirror, drill: &PartitionDrill, first: u32) -> Vec<WriterSlot> {
    let spec = &region.spec;
    let mut zones: Vec<String> = if spec.is_sources() {
        spec.zones.iter().map(|z| z.name.clone()).collect()
    } else {
        spec.source_zone()
            .map(|z| z.name.clone())
            .into_iter()
            .collect()
    };
    if spec.is_sources() && drill.spec.steps().contains(&Step::AddTemporaryZone) {
        zones.push(drill.spec.temporary_zone.name.clone());
    }
    zones
        .into_iter()
        .enumerate()
        .map(|(i, zone)| WriterSlot {
            zone,
            log: Arc::new(Mutex::new(SentLog::new(
                first.wrapping_add(i as u32).max(1),
                usize::try_from(drill.spec.workload.payload_bytes).unwrap_or(0),
            ))),
            producer: None,
            local_first_seq: 1,
        })
        .collect()
}

impl Run<'_> {
    fn stream(&self) -> &str {
        &self.region.spec.stream.name
    }

    fn ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    fn source_name(&self) -> String {
        self.region
            .spec
            .source_zone()
            .map(|z| z.name.clone())
            .unwrap_or_default()
    }

    fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name() == name)
    }

    fn sources(&self) -> bool {
        self.region.spec.is_sources()
    }

    /// Writers whose producers run (a temporary zone's once it joined).
    fn producers(&self) -> impl Iterator<Item = (&WriterSlot, &Producer)> {
        self.writers
            .iter()
            .filter_map(|w| w.producer.as_ref().map(|p| (w, p)))
    }

    fn started_producing(&self) -> bool {
        self.producers().next().is_some()
    }

    fn producer_identities(&self) -> BTreeMap<String, ProducerIdentity> {
        self.producers()
            .map(|(w, p)| (w.zone.clone(), p.identity()))
            .collect()
    }

    /// The identities now of the producers in `before` (a producer that
    /// started since, the joining zone's, is not one claim 4 compares).
    fn identities_of(
        &self,
        before: &BTreeMap<String, ProducerIdentity>,
    ) -> BTreeMap<String, ProducerIdentity> {
        let mut now = self.producer_identities();
        now.retain(|zone, _| before.contains_key(zone));
        now
    }

    /// Acked by every writer so far.
    fn acked(&self) -> u64 {
        self.writers
            .iter()
            .map(|w| w.log.lock().expect("log").acked())
            .sum()
    }

    fn attempted(&self) -> u64 {
        self.writers
            .iter()
            .map(|w| w.log.lock().expect("log").attempted())
            .sum()
    }

    fn reader_writers(&self) -> Vec<Writer> {
        let sources = self.sources();
        self.writers
            .iter()
            .map(|w| Writer {
                log: w.log.clone(),
                origin: sources.then(|| w.zone.clone()),
            })
            .collect()
    }

    /// The region's spec with the temporary zone in it once it joined (or
    /// while it joins): the aggregates then source it too.
    fn spec_with_temporary(&self, joining: Option<&ZoneSpec>) -> RegionMirrorSpec {
        let mut spec = self.region.spec.clone();
        if let Some(z) = joining {
            spec.zones.push(z.clone());
        } else if self.temporary.is_some() {
            spec.zones.push(self.temporary_zone_spec());
        }
        spec
    }

    fn step_timeout(&self) -> Duration {
        self.drill.spec.timeouts.step()
    }

    fn catch_up_timeout(&self) -> Duration {
        self.drill.spec.timeouts.catch_up()
    }

    /// How long past the catch-up timeout the run keeps watching and
    /// reading before anything still absent is called lost: twice the
    /// timeout or twice the leafnode's redial interval (a timeout shorter
    /// than one redial is missed by construction), at most 60 s.
    fn catch_up_grace(&self) -> Duration {
        let redial =
            crate::api::spec_count(self.region.spec.leafnode.reconnect_interval_seconds.max(1));
        let timeout = crate::api::spec_count(self.drill.spec.timeouts.catch_up_seconds.max(1));
        Duration::from_secs((2 * timeout.max(redial)).min(60))
    }

    fn report_progress(&self, step: &str) {
        let (attempted, acked) = (self.attempted(), self.acked());
        self.observer.progress(&Progress {
            step: step.to_string(),
            attempted,
            acked,
            reads: self
                .zones
                .iter()
                .map(|z| (z.name().to_string(), z.reader.read_count()))
                .collect(),
            partitioned: self.open.is_some(),
        });
    }

    async fn execute(&mut self) -> Result<(), StepError> {
        crate::api::validate::drill(self.drill, self.region)
            .map_err(|e| StepError::Precondition(e.to_string()))?;
        crate::plan::capacity::check(self.drill, self.region).map_err(StepError::Precondition)?;
        self.setup().await?;
        let steps = self.drill.spec.steps();
        for (index, step) in steps.iter().copied().enumerate() {
            self.status.current_step = Some(step.name().to_string());
            self.status.step_index = Some(index as i32);
            self.observer.step(index, steps.len(), step);
            self.observer.status(&self.status);
            if let Some(s) = &self.sampler {
                s.mark(self.ms(), step.name());
            }
            // The heal waits for the hold time on top of its own work.
            let limit = self.step_timeout()
                + if step == Step::Heal {
                    self.drill.spec.fault.hold()
                } else {
                    Duration::ZERO
                }
                + if step == Step::WaitForCatchUp {
                    self.catch_up_timeout() + self.catch_up_grace()
                } else if step == Step::Verify {
                    self.catch_up_grace()
                } else {
                    Duration::ZERO
                };
            let mut abort = self.opts.abort.clone();
            let aborted = async move {
                match abort.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|a| *a).await;
                    }
                    None => futures::future::pending::<()>().await,
                }
            };
            let outcome = tokio::select! {
                r = tokio::time::timeout(limit, self.step(index, step)) => r.unwrap_or(Err(StepError::Timeout { step: step.name(), seconds: limit.as_secs() as i32 })),
                _ = aborted => Err(StepError::Aborted),
            };
            if outcome.is_err() {
                // The claims of the steps that never ran say why.
                self.evidence.stopped_at = Some(step.name().to_string());
                self.evidence.not_reached = steps[index + 1..]
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect();
            }
            outcome?;
        }
        Ok(())
    }

    /// Connects to every zone, provisions streams when asked, checks the
    /// preconditions, and starts the consumers, the producers and the sampler.
    async fn setup(&mut self) -> Result<(), StepError> {
        let accesses = self.runtime.zones();
        let source_name = self.source_name();
        let connected = if self.sources() {
            self.connect_sources_zones(accesses).await?
        } else {
            let mut connected = Vec::new();
            for access in accesses {
                let conn = self.connect_zone(&access, self.opts.provision).await?;
                connected.push((access, conn));
            }
            connected
        };
        let Some((_, source)) = connected.iter().find(|(a, _)| a.name() == source_name) else {
            return Err(StepError::Precondition(format!(
                "the runtime has no source zone {source_name}"
            )));
        };
        // The run owns what comes after each stream's last sequence now:
        // earlier runs' messages are not judged, only counted.
        let held = self
            .read_last_seq(&source.js, self.stream(), "source")
            .await?;
        self.status.run = Some(RunScope {
            writer: i64::from(self.writer),
            first_sequence: held as i64 + 1,
            held_before: held as i64,
        });
        for (access, conn) in connected {
            let first_seq = if self.sources() {
                self.read_last_seq(&conn.js, self.stream(), access.name())
                    .await?
                    + 1
            } else {
                held + 1
            };
            let zone = self.start_zone(access, conn, first_seq).await?;
            self.join(zone);
        }
        for i in 0..self.writers.len() {
            self.start_producer(i).await?;
        }
        self.check_mirrors_synced().await?;
        self.apply_toxics().await.map_err(|e| {
            StepError::Precondition(format!("fault.toxics could not be applied: {e}"))
        })?;
        // The timeline follows mirror lag behind the source; an aggregate
        // has no single source to lag behind.
        if !self.sources() {
            self.sampler = Some(Sampler::start(
                &source_name,
                self.stream(),
                self.watched.clone(),
                self.epoch,
                self.opts.sample_every,
            ));
        }
        Ok(())
    }

    /// Starts writer `i`'s producer in its zone, if that zone is connected,
    /// writing to its zone's subjects (the sources topology) or the source's.
    async fn start_producer(&mut self, i: usize) -> Result<(), StepError> {
        let name = self.writers[i].zone.clone();
        let Some(zone) = self.zone(&name) else {
            return Ok(());
        };
        let spec = self.spec_with_temporary(None);
        let subjects = match spec.zone(&name) {
            Some(z) if self.sources() => crate::plan::zone_subjects(&spec, z),
            _ => spec.stream.subjects.clone(),
        };
        let local_first_seq = if self.sources() {
            let local = self.local_stream(&name);
            self.read_last_seq(&zone.conn.js, &local, &name).await? + 1
        } else {
            zone.first_seq
        };
        let workload = &self.drill.spec.workload;
        let producer = Producer::new(
            zone.conn.client.clone(),
            zone.conn.js.clone(),
            self.writers[i].log.clone(),
            ProducerSettings {
                subject: producer_subject(&subjects),
                payload_bytes: usize::try_from(workload.payload_bytes).unwrap_or(0),
                rate_per_second: crate::api::spec_count(workload.rate_per_second),
                window: self.opts.publish_window,
            },
        );
        let slot = &mut self.writers[i];
        slot.producer = Some(producer);
        slot.local_first_seq = local_first_seq;
        Ok(())
    }

    /// The sources topology: the name of `zone`'s local stream.
    fn local_stream(&self, zone: &str) -> String {
        crate::plan::local_stream_name(&self.region.spec, zone)
    }

    /// The stream's last sequence in a zone, retried while the zone is slow.
    async fn read_last_seq(
        &self,
        js: &async_nats::jetstream::Context,
        stream: &str,
        zone: &str,
    ) -> Result<u64, StepError> {
        let what = format!("stream info of {stream} in the {zone} zone");
        retry(&what, self.opts.retry, || last_seq(js, stream))
            .await
            .map_err(|r| StepError::from_retried(r, |e| format!("zone {zone}: {e}")))
    }

    /// Connects to a zone, provisions its stream when asked, and checks it.
    async fn connect_zone(
        &self,
        access: &ZoneAccess,
        provision: bool,
    ) -> Result<ZoneClient, StepError> {
        let conn = self.dial(access).await?;
        if provision {
            self.provision(access, &conn, None).await?;
        }
        self.check_stream(access, &conn).await?;
        Ok(conn)
    }

    async fn dial(&self, access: &ZoneAccess) -> Result<ZoneClient, StepError> {
        let settings = ConnectSettings {
            client_name: format!("natsregion-drill-{}", self.drill_name()),
            ..Default::default()
        };
        connect(&access.endpoint, &settings)
            .await
            .map_err(|e| StepError::Precondition(e.to_string()))
    }

    /// The sources topology: every zone's local stream before any aggregate.
    /// An aggregate created while a stream it sources does not exist yet
    /// retries that source on a backoff the server chooses, and was seen
    /// not to pick it up for the rest of a drill.
    async fn connect_sources_zones(
        &self,
        accesses: Vec<ZoneAccess>,
    ) -> Result<Vec<(ZoneAccess, ZoneClient)>, StepError> {
        let mut connected = Vec::new();
        for access in accesses {
            let conn = self.dial(&access).await?;
            connected.push((access, conn));
        }
        if self.opts.provision {
            for kind in [StreamKind::Local, StreamKind::Aggregate] {
                for (access, conn) in &connected {
                    self.provision(access, conn, Some(kind)).await?;
                }
            }
        }
        for (access, conn) in &connected {
            self.check_stream(access, conn).await?;
        }
        Ok(connected)
    }

    /// Starts a connected zone's consumer at the run's first sequence there.
    async fn start_zone(
        &self,
        access: ZoneAccess,
        conn: ZoneClient,
        first_seq: u64,
    ) -> Result<Zone, StepError> {
        let what = format!("consumer {} in zone {}", self.durable(), access.name());
        let durable = self.durable();
        let writers = self.reader_writers();
        let reader = retry(&what, self.opts.retry, || {
            ZoneReader::start(
                access.name(),
                &conn.js,
                self.stream(),
                &durable,
                first_seq,
                &writers,
                self.epoch,
            )
        })
        .await
        .map_err(|r| StepError::from_retried(r, |e| e.to_string()))?;
        Ok(Zone {
            access,
            conn,
            reader,
            first_seq,
            errors_at_cut: 0,
            reads_at_cut: 0,
        })
    }

    /// A zone that joins during the run reads its whole stream: all of it is
    /// history it must backfill.
    async fn open_zone(&self, access: ZoneAccess, provision: bool) -> Result<Zone, StepError> {
        let conn = self.connect_zone(&access, provision).await?;
        let first_seq = if self.sources() {
            1
        } else {
            self.status
                .run
                .as_ref()
                .map_or(1, |r| r.first_sequence as u64)
        };
        self.start_zone(access, conn, first_seq).await
    }

    /// Adds an opened zone to the drill and to the timeline.
    fn join(&mut self, zone: Zone) {
        self.watched
            .lock()
            .expect("watched")
            .push((zone.name().to_string(), zone.conn.js.clone()));
        self.zones.push(zone);
    }

    /// A mirror that holds less than the source and never catches up is not a
    /// region to drill: refuse, naming what to check. (Empty streams pass; a
    /// mirror that is broken from the start then fails claim 2 instead.)
    async fn check_mirrors_synced(&self) -> Result<(), StepError> {
        let mirrors = self.synced_zones();
        let heads = self.link_positions(&self.links(&mirrors)).await;
        if heads.values().all(|(head, _)| head.unwrap_or(0) == 0) {
            return Ok(());
        }
        let (synced, lags) = self.wait_in_sync(&mirrors, self.catch_up_timeout()).await;
        if synced {
            return Ok(());
        }
        if self.sources() {
            let behind: Vec<String> = lags
                .iter()
                .filter(|(_, lag)| **lag > 0)
                .map(|(link, lag)| format!("{link} lags {lag}"))
                .collect();
            return Err(StepError::Precondition(format!(
                "aggregates were never in sync with every zone's local stream within timeouts.catchUpSeconds: {}; check each zone's JetStream domain (zones[].domain) and that its leafnode link is up",
                behind.join("; ")
            )));
        }
        let source_domain = self
            .region
            .spec
            .source_zone()
            .map(|z| z.domain().to_string())
            .unwrap_or_default();
        let mut problems = Vec::new();
        for (zone, lag) in lags.iter().filter(|(_, lag)| **lag > 0) {
            let view = match self.zone(zone) {
                Some(z) => crate::nats::state::mirror_view(&z.conn.js, self.stream())
                    .await
                    .ok(),
                None => None,
            };
            let detail = match view {
                Some(v) if v.active.is_none() => "it has never heard from the source".to_string(),
                Some(v) => v.error.unwrap_or_else(|| "no error reported".into()),
                None => "its mirror could not be read".into(),
            };
            problems.push(format!("zone {zone} lags {lag} ({detail})"));
        }
        Err(StepError::Precondition(format!(
            "mirrors were never in sync with the source within timeouts.catchUpSeconds: {}; check that the source zone's JetStream domain is {source_domain:?} (zones[].domain) and that its leafnode link is up",
            problems.join("; ")
        )))
    }

    /// Toxics shape the links for the whole drill; a heal removes every
    /// injected thing, so they are applied again after it.
    async fn apply_toxics(&self) -> Result<(), crate::fault::FaultError> {
        let toxics = &self.drill.spec.fault.toxics;
        if toxics.is_empty() {
            return Ok(());
        }
        for zone in self.cut_zones() {
            self.backend.apply_toxics(&zone, toxics).await?;
        }
        Ok(())
    }

    fn drill_name(&self) -> String {
        self.drill
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| "drill".into())
    }

    /// Durable consumer name, unique per run so runs never share progress.
    fn durable(&self) -> String {
        let run = self
            .status
            .started_at
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_default();
        format!("natsregion-{}-{run}", self.drill_name())
    }

    /// Ensures the zone's streams (`plan::zone_streams`: the source stream or
    /// a mirror; a local stream and an aggregate), only those of `kind` when
    /// given; the temporary zone's while it joins.
    async fn provision(
        &self,
        access: &ZoneAccess,
        conn: &ZoneClient,
        kind: Option<StreamKind>,
    ) -> Result<(), StepError> {
        let joining =
            (self.temporary.as_deref() == Some(access.name())).then(|| self.temporary_zone_spec());
        let spec = self.spec_with_temporary(joining.as_ref());
        let Some(zone) = spec.zone(access.name()) else {
            return Err(StepError::Precondition(format!(
                "zone {} is not in the region",
                access.name()
            )));
        };
        for stream in crate::plan::zone_streams(&spec, zone)
            .iter()
            .filter(|s| kind.is_none_or(|k| s.kind == k))
        {
            self.ensure_stream(access.name(), conn, stream, zone.servers)
                .await?;
        }
        Ok(())
    }

    /// Creates or edits one of a zone's streams. Idempotent (it looks before
    /// it creates), so a request that timed out after the server acted is
    /// safe to send again.
    async fn ensure_stream(
        &self,
        zone: &str,
        conn: &ZoneClient,
        stream: &ZoneStream,
        servers: i32,
    ) -> Result<(), StepError> {
        use crate::nats::provision::{Outcome, ensure_zone_stream};
        let name = &stream.config.name;
        let what = format!("provisioning {name} in zone {zone}");
        match retry(&what, self.opts.retry, || {
            ensure_zone_stream(&conn.js, stream, servers.max(0) as usize)
        })
        .await
        {
            Ok(Outcome::NeedsRecreate { reason }) if stream.kind == StreamKind::Mirror => {
                Err(StepError::Precondition(format!(
                    "zone {zone}: the mirror stream differs from the spec and cannot be edited in place ({reason}); delete it to re-sync"
                )))
            }
            Ok(Outcome::NeedsRecreate { reason }) => Err(StepError::Precondition(format!(
                "zone {zone}: stream {name} differs from the spec and cannot be edited in place ({reason}); delete it to have it created again"
            ))),
            Ok(_) => Ok(()),
            Err(r) => Err(StepError::from_retried(r, |e| format!("zone {zone}: {e}"))),
        }
    }

    /// The stream must exist; the source must keep everything (Limits) and a
    /// mirror must mirror this stream (sources topology: the zone's local
    /// stream keeps everything and its aggregate sources the zones).
    async fn check_stream(&self, access: &ZoneAccess, conn: &ZoneClient) -> Result<(), StepError> {
        if self.sources() {
            return self.check_sources_streams(access, conn).await;
        }
        let name = self.stream();
        let zone = access.name();
        let what = format!("stream info of {name} in zone {zone}");
        let found = retry(&what, self.opts.retry, || {
            crate::nats::state::stream_config(&conn.js, name)
        })
        .await
        .map_err(|r| {
            StepError::from_retried(r, |e| match e {
                crate::nats::state::StateError::StreamMissing { .. } => format!("stream {name} is missing in zone {zone}: the region has not provisioned it; check stream.name"),
                e => format!("zone {zone}: {e}"),
            })
        })?;
        let config = &found;
        if access.role == ZoneRole::Source {
            if config.retention != async_nats::jetstream::stream::RetentionPolicy::Limits {
                return Err(StepError::Precondition(format!(
                    "source stream {name} in zone {zone} has retention {:?}: set stream.retention: {:?}, mirrors of other retentions lose messages",
                    config.retention,
                    Retention::Limits
                )));
            }
        } else if config.mirror.as_ref().map(|m| m.name.as_str()) != Some(name) {
            return Err(StepError::Precondition(format!(
                "stream {name} in zone {zone} is not a mirror of {name}: delete it so the region can create the mirror"
            )));
        }
        Ok(())
    }

    async fn check_sources_streams(
        &self,
        access: &ZoneAccess,
        conn: &ZoneClient,
    ) -> Result<(), StepError> {
        let zone = access.name();
        let read = |name: String| async move {
            let what = format!("stream info of {name} in zone {zone}");
            retry(&what, self.opts.retry, || {
                crate::nats::state::stream_config(&conn.js, &name)
            })
            .await
            .map_err(|r| {
                StepError::from_retried(r, |e| match e {
                    crate::nats::state::StateError::StreamMissing { .. } => format!("stream {name} is missing in zone {zone}: the region has not provisioned it (topology: sources needs a local stream and an aggregate in every zone)"),
                    e => format!("zone {zone}: {e}"),
                })
            })
        };
        let local_name = self.local_stream(zone);
        let local = read(local_name.clone()).await?;
        if local.retention != async_nats::jetstream::stream::RetentionPolicy::Limits {
            return Err(StepError::Precondition(format!(
                "local stream {local_name} in zone {zone} has retention {:?}: set stream.retention: {:?}, aggregates of other retentions lose messages",
                local.retention,
                Retention::Limits
            )));
        }
        let aggregate = read(self.stream().to_string()).await?;
        let sourced = aggregate.sources.as_ref().is_some_and(|s| !s.is_empty());
        if !sourced || aggregate.mirror.is_some() {
            return Err(StepError::Precondition(format!(
                "stream {} in zone {zone} is not an aggregate sourcing the zones' local streams: delete it so the region can create the aggregate",
                self.stream()
            )));
        }
        Ok(())
    }

    fn temporary_zone_spec(&self) -> ZoneSpec {
        let t = &self.drill.spec.temporary_zone;
        ZoneSpec {
            name: t.name.clone(),
            role: ZoneRole::Mirror,
            servers: t.servers,
            storage: ZoneStorage::default(),
            scheduling: Default::default(),
            domain: None,
            external: None,
        }
    }

    async fn step(&mut self, index: usize, step: Step) -> Result<(), StepError> {
        match step {
            Step::Produce => self.produce(index, step).await.map(|_| ()),
            Step::Partition => self.partition().await,
            Step::Heal => self.heal().await,
            Step::WaitForCatchUp => self.wait_for_catch_up().await,
            Step::PauseConsumer => self.pause_consumer(index).await,
            Step::BuildBacklog => self.build_backlog(index).await,
            Step::AddTemporaryZone => self.add_temporary_zone().await,
            Step::Verify => self.verify().await,
        }
    }

    async fn produce(&mut self, index: usize, step: Step) -> Result<PhaseStats, StepError> {
        let phase = self.next_phase;
        self.next_phase += 1;
        let count = crate::api::spec_count(self.drill.spec.workload.messages_per_phase);
        let stats = {
            let this = &*self;
            let progress = |_done: u64| this.report_progress(step.name());
            let progress = &progress;
            // Every writer at once: zones write independently (sources topology).
            let phases = this
                .producers()
                .map(|(_, p)| p.publish(phase, count, progress));
            let all = futures::future::join_all(phases).await;
            all.into_iter()
                .fold(PhaseStats::default(), |sum, s| PhaseStats {
                    attempted: sum.attempted + s.attempted,
                    acked: sum.acked + s.acked,
                    failed: sum.failed + s.failed,
                    seconds: sum.seconds.max(s.seconds),
                })
        };
        if let Some(open) = self.open.as_mut() {
            open.phases.push(phase);
        }
        self.phases.push(PhaseRecord {
            step_index: index,
            step: step.name().into(),
            partitioned: self.open.is_some(),
            stats,
        });
        // Each writing zone's own consumer should keep up with its own
        // writes, partition or not.
        let limit = self.step_timeout();
        self.wait_own_reads(limit).await;
        self.report_progress(step.name());
        Ok(stats)
    }

    /// Waits until every writing zone's consumer (unless paused) has read
    /// every message its own writer got acked; returns whether they all did.
    /// A consumer that has drained its stream is done too: what it still
    /// lacks is no longer stored (the final check names it), so no wait
    /// for it can end the step.
    async fn wait_own_reads(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let phases: Vec<u16> = (0..self.next_phase).collect();
        loop {
            let behind: Vec<&str> = self
                .producers()
                .filter(|(w, _)| {
                    let acked = w.log.lock().expect("log").acked();
                    self.zone(&w.zone).is_some_and(|z| {
                        !z.reader.is_paused() && z.reader.read_acked_in(w.writer(), &phases) < acked
                    })
                })
                .map(|(w, _)| w.zone.as_str())
                .collect();
            let done = self.all_drained(&behind).await;
            if done || Instant::now() >= deadline {
                return done;
            }
            self.report_progress(self.status.current_step.as_deref().unwrap_or(""));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until each named zone's consumer has read at least `target`
    /// messages, or has drained its stream (as [`Self::wait_own_reads`]);
    /// returns whether they all did.
    async fn wait_reads(&self, zones: &[String], target: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let behind: Vec<&str> = zones
                .iter()
                .filter(|z| self.zone(z).is_none_or(|z| z.reader.read_count() < target))
                .map(String::as_str)
                .collect();
            let done = self.all_drained(&behind).await;
            if done || Instant::now() >= deadline {
                return done;
            }
            self.report_progress(self.status.current_step.as_deref().unwrap_or(""));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether every one of `zones` holds all its feeds have (each link into
    /// it at its head) and its consumer has nothing left to deliver or ack:
    /// whatever it has not read by then was removed from what it reads, and
    /// waiting longer cannot bring it.
    async fn all_drained(&self, zones: &[&str]) -> bool {
        for name in zones {
            let Some(z) = self.zone(name) else {
                return false;
            };
            let into: Vec<Link> = self
                .links(&[name.to_string()])
                .into_iter()
                .filter(|l| l.to == *name)
                .collect();
            // The feeds first: what they hold by then must all be delivered.
            let fed = self
                .link_positions(&into)
                .await
                .values()
                .all(|p| matches!(p, (Some(head), Some(at)) if at >= head));
            if !fed {
                return false;
            }
            match z.reader.position().await {
                Ok(p) if p.pending == 0 && p.ack_pending == 0 => {}
                _ => return false,
            }
        }
        true
    }

    async fn last_seqs(&self) -> BTreeMap<String, Option<u64>> {
        let reads = self.zones.iter().map(|z| async move {
            (
                z.name().to_string(),
                last_seq(&z.conn.js, self.stream()).await.ok(),
            )
        });
        futures::future::join_all(reads).await.into_iter().collect()
    }

    /// The links into `zones` (mirror topology: from the source), or into
    /// and out of them (sources topology: every aggregate's source with
    /// either end among them).
    fn links(&self, zones: &[String]) -> Vec<Link> {
        if !self.sources() {
            let source = self.source_name();
            return zones
                .iter()
                .filter(|z| **z != source)
                .map(|z| Link {
                    from: source.clone(),
                    to: z.clone(),
                })
                .collect();
        }
        let names: Vec<String> = self.zones.iter().map(|z| z.name().to_string()).collect();
        let mut links = Vec::new();
        for to in &names {
            for from in &names {
                if zones.contains(to) || zones.contains(from) {
                    links.push(Link {
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
        links
    }

    /// The links with exactly one end among the cut `zones`: what a cut must freeze.
    fn across(&self, zones: &[String]) -> Vec<Link> {
        self.links(zones)
            .into_iter()
            .filter(|l| zones.contains(&l.from) != zones.contains(&l.to))
            .collect()
    }

    /// Each link's head (the source's last sequence, or the origin zone's
    /// local stream's) and position (the mirror's last sequence, or the
    /// newest origin sequence the aggregate holds), by link name; `None`
    /// where it could not be read. The position is read first, so a write
    /// racing the read shows as lag, never as a stream ahead of its head.
    async fn link_positions(&self, links: &[Link]) -> super::in_sync::Positions {
        let sources = self.sources();
        let spec = self.spec_with_temporary(None);
        let spec = &spec;
        let reads = links.iter().map(|l| async move {
            let position = match self.zone(&l.to) {
                Some(z) if sources => {
                    let subjects = spec
                        .zone(&l.from)
                        .map(|from| crate::plan::zone_subjects(spec, from))
                        .unwrap_or_default();
                    sourced_seq(&z.conn.js, self.stream(), &subjects).await.ok()
                }
                Some(z) => last_seq(&z.conn.js, self.stream()).await.ok(),
                None => None,
            };
            let head_stream = if sources {
                self.local_stream(&l.from)
            } else {
                self.stream().to_string()
            };
            let head = match self.zone(&l.from) {
                Some(z) => last_seq(&z.conn.js, &head_stream).await.ok(),
                None => None,
            };
            (l.name(sources), (head, position))
        });
        futures::future::join_all(reads).await.into_iter().collect()
    }

    /// Waits until every link into (or, sources, out of) `zones` has reached
    /// its head; returns whether they all did, and each link's lag.
    async fn wait_in_sync(
        &self,
        zones: &[String],
        limit: Duration,
    ) -> (bool, BTreeMap<String, u64>) {
        let links = self.links(zones);
        super::in_sync::poll(limit, || self.link_positions(&links)).await
    }

    /// The zones whose streams are fed from others: the mirrors, or
    /// (sources topology) every zone's aggregate.
    fn synced_zones(&self) -> Vec<String> {
        self.zones
            .iter()
            .filter(|z| self.sources() || z.access.role == ZoneRole::Mirror)
            .map(|z| z.name().to_string())
            .collect()
    }

    fn cut_zones(&self) -> Vec<String> {
        let chosen = &self.drill.spec.fault.zones;
        if chosen.is_empty() {
            self.region
                .spec
                .mirror_zones()
                .map(|z| z.name.clone())
                .collect()
        } else {
            chosen.clone()
        }
    }

    async fn probe_all(&self, zones: &[String]) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::new();
        for z in zones {
            let reachable = match self.backend.probe(z).await {
                Ok(reachable) => reachable,
                // The backend cannot look from inside this zone: no probe
                // evidence either way; the frozen mirror sequence still decides.
                Err(crate::fault::FaultError::Unsupported { .. }) => continue,
                // A probe that failed to run proves nothing: count it as reachable.
                Err(e) => {
                    tracing::warn!(zone = %z, error = %e, "probe failed to run");
                    true
                }
            };
            out.insert(z.clone(), reachable);
        }
        out
    }

    /// Pauses the consumers of the zones the next partition cuts and
    /// publishes a phase their mirrors store: the partition resumes them once
    /// the cut holds, so they have something to consume while cut off.
    async fn build_backlog(&mut self, index: usize) -> Result<(), StepError> {
        let zones = self.cut_zones();
        for name in &zones {
            self.zone(name)
                .ok_or_else(|| StepError::Failed(format!("no zone {name} to build a backlog in")))?
                .reader
                .pause()
                .await;
        }
        self.backlog_zones = zones.clone();
        self.produce(index, Step::BuildBacklog).await?;
        self.wait_in_sync(&zones, self.catch_up_timeout()).await;
        Ok(())
    }

    async fn partition(&mut self) -> Result<(), StepError> {
        let zones = self.cut_zones();
        let (in_sync, _) = self.wait_in_sync(&zones, self.catch_up_timeout()).await;
        let deadline = self.drill.spec.fault.deadline();
        // The intent is stored before the backend is asked: a process that
        // dies once the cut landed leaves a record its successor heals.
        let mut intent = crate::fault::fault_record(
            format!("intent-{}", self.status.faults.len() + 1),
            self.backend.name(),
            &zones,
            jiff::Timestamp::now(),
            deadline,
        );
        intent.intent = true;
        self.status.faults.push(intent.clone());
        if let Err(e) = self.observer.persist(&self.status).await {
            self.status.faults.retain(|f| f.id != intent.id);
            return Err(StepError::Failed(format!(
                "the fault's record could not be stored before the cut, so nothing was cut: {e}"
            )));
        }
        // Set before the call: if this step is cancelled (abort, timeout)
        // while the cut is in flight, `finish` still knows to heal it.
        self.cut_started = Some(zones.clone());
        let record = self
            .backend
            .cut(&zones, deadline)
            .await
            .map_err(|e| StepError::Failed(format!("cut failed: {e}")))?;
        let cut_at = Instant::now();
        match self.status.faults.iter_mut().find(|f| f.id == intent.id) {
            Some(f) => *f = record.clone(),
            None => self.status.faults.push(record.clone()),
        }
        self.observer.status(&self.status);
        // Frames already in flight when the cut landed may still arrive; let them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let across = self.across(&zones);
        let positions = self.link_positions(&across).await;
        let source_at_cut = self.source_head(&positions);
        let mirror_at_cut = observed(&positions);
        let probe_at_cut = self.probe_all(&zones).await;
        let acked = self.acked();
        let mut backlog = BTreeMap::new();
        for z in &mut self.zones {
            z.errors_at_cut = z.errors();
            z.reads_at_cut = z.reader.read_count();
            if self.backlog_zones.iter().any(|b| b == z.name()) {
                backlog.insert(z.name().to_string(), acked.saturating_sub(z.reads_at_cut));
            }
        }
        for name in std::mem::take(&mut self.backlog_zones) {
            if let Some(z) = self.zone(&name) {
                z.reader.resume();
            }
        }
        self.open = Some(OpenFault {
            record,
            cut_at,
            evidence: PartitionEvidence {
                zones,
                across: across.iter().map(|l| l.name(self.sources())).collect(),
                in_sync_before_cut: in_sync,
                source_at_cut,
                mirror_at_cut,
                probe_at_cut,
                backlog,
                ..Default::default()
            },
            phases: Vec::new(),
            healed_first: None,
        });
        Ok(())
    }

    /// A stopped drill heals before anything else: observing a cut can take
    /// long (a zone that does not answer), and a stop has a budget (the
    /// pod's grace period). The last look then comes after the heal, and the
    /// partition says so.
    async fn heal_first(&mut self, why: &str) {
        if self.open.as_ref().is_some_and(|o| o.healed_first.is_some()) {
            return;
        }
        // The open partition's record, or (a cut cancelled in flight) every
        // record without a heal, the intent included.
        let records: Vec<FaultRecord> = match &self.open {
            Some(open) => vec![open.record.clone()],
            None => self
                .status
                .faults
                .iter()
                .filter(|f| f.healed_at.is_none())
                .cloned()
                .collect(),
        };
        if records.is_empty() {
            return;
        }
        let mut all_healed = true;
        for record in &records {
            match tokio::time::timeout(self.step_timeout(), self.backend.heal(record)).await {
                Ok(Ok(())) => self.mark_healed(&record.id),
                Ok(Err(e)) => {
                    all_healed = false;
                    tracing::error!(fault = %record.id, error = %e, "healing a stopped drill's cut failed; the wrap-up retries");
                }
                Err(_) => {
                    all_healed = false;
                    tracing::error!(fault = %record.id, "healing a stopped drill's cut did not answer within the step timeout; the wrap-up retries");
                }
            }
        }
        if all_healed {
            self.cut_started = None;
            if let Some(open) = self.open.as_mut() {
                open.healed_first =
                    Some(format!("{why}, so the cut was healed before the last look"));
            }
        }
        self.observer.status(&self.status);
    }

    /// Stamps `healedAt` on the status's record `id`: set only by a heal that
    /// succeeded, so a restarted operator heals every record without it.
    fn mark_healed(&mut self, id: &str) {
        if let Some(f) = self.status.faults.iter_mut().find(|f| f.id == id) {
            f.healed_at = Some(Time(jiff::Timestamp::now()));
        }
    }

    /// Why the open cut was no longer in place at the last look, if it was not.
    async fn ended_early(&self, open: &OpenFault) -> Option<String> {
        if let Some(why) = &open.healed_first {
            return Some(why.clone());
        }
        if open.record.deadline.0 <= jiff::Timestamp::now() {
            return Some(format!(
                "its deadline, fault.deadlineSeconds {} after the cut, passed before the heal step",
                self.drill.spec.fault.deadline_seconds
            ));
        }
        match self.backend.leftovers().await {
            Ok(left) if left.is_empty() => Some(format!(
                "its {} fault objects were gone before the heal step: removed by someone else, or lost by the backend (a Toxiproxy restart)",
                self.backend.name()
            )),
            _ => None,
        }
    }

    async fn heal(&mut self) -> Result<(), StepError> {
        let Some(open) = self.open.as_ref() else {
            return Err(StepError::Failed("heal without an open partition".into()));
        };
        let hold = self.drill.spec.fault.hold();
        tokio::time::sleep_until((open.cut_at + hold).into()).await;
        self.close_partition(None).await
    }

    /// Observes the open partition one last time, heals it and proves the
    /// heal. `closed_after` names the interruption when no heal step got here.
    async fn close_partition(&mut self, closed_after: Option<String>) -> Result<(), StepError> {
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        let cut_at = open.cut_at;
        let phases = open.phases.clone();
        let zones = open.evidence.zones.clone();
        // Give the writing zones' consumers a moment to read their last
        // partition-phase messages (a stopped drill has no time for that).
        if open.healed_first.is_none() {
            self.wait_own_reads(Duration::from_secs(5)).await;
        }
        let mut acked_during = BTreeMap::new();
        let mut own_read_during = BTreeMap::new();
        for (w, _) in self.producers() {
            let acked = w.log.lock().expect("log").acked_in(&phases);
            let read = self
                .zone(&w.zone)
                .map_or(0, |z| z.reader.read_acked_in(w.writer(), &phases));
            acked_during.insert(w.zone.clone(), acked);
            own_read_during.insert(w.zone.clone(), read);
        }
        let positions = self.link_positions(&self.across(&zones)).await;
        let probe_before_heal = self.probe_all(&zones).await;
        let reads_during = self
            .zones
            .iter()
            .map(|z| (z.name().to_string(), z.reader.read_count() - z.reads_at_cut))
            .collect();
        let errors_during = self
            .zones
            .iter()
            .map(|z| (z.name().to_string(), z.errors() - z.errors_at_cut))
            .collect();
        let ended_early = match self.open.as_ref() {
            Some(open) => self.ended_early(open).await,
            None => None,
        };
        let mut open = self.open.take().expect("checked above");
        let ev = &mut open.evidence;
        ev.ended_early = ended_early;
        ev.source_before_heal = self.source_head(&positions);
        ev.mirror_before_heal = observed(&positions);
        ev.probe_before_heal = probe_before_heal;
        ev.held_seconds = cut_at.elapsed().as_secs_f64();
        ev.acked_during = acked_during;
        ev.own_read_during = own_read_during;
        ev.reads_during = reads_during;
        ev.errors_during = errors_during;
        ev.closed_after = closed_after;
        let healed = self.backend.heal(&open.record).await;
        self.heal_at = Some(Instant::now());
        if let Some(s) = &self.sampler {
            let (cut_ms, heal_ms) = (
                cut_at.duration_since(self.epoch).as_millis() as u32,
                self.ms(),
            );
            s.partition(cut_ms, heal_ms);
            for z in &zones {
                s.window(z, LagCause::CutOff, cut_ms, heal_ms);
            }
        }
        ev.healed = healed.is_ok();
        ev.heal_error = healed.as_ref().err().map(|e| e.to_string());
        ev.leftovers = match self.backend.leftovers().await {
            Ok(l) => l,
            Err(e) => vec![format!("leftovers could not be listed: {e}")],
        };
        // Only a heal that succeeded is recorded as one: a restarted operator
        // heals every fault without healedAt, and must not skip this one.
        if healed.is_ok() {
            self.cut_started = None;
            self.mark_healed(&open.record.id);
        }
        self.evidence.partitions.push(open.evidence);
        self.observer.status(&self.status);
        healed.map_err(|e| StepError::Failed(format!("heal failed: {e}")))?;
        self.apply_toxics().await.map_err(|e| {
            StepError::Failed(format!(
                "fault.toxics could not be applied again after the heal: {e}"
            ))
        })
    }

    /// Mirror topology: the source's last sequence, the head of every link
    /// across the cut (the highest read, should the reads differ).
    fn source_head(&self, positions: &BTreeMap<String, (Option<u64>, Option<u64>)>) -> Option<u64> {
        if self.sources() {
            return None;
        }
        positions.values().filter_map(|(head, _)| *head).max()
    }

    async fn wait_for_catch_up(&mut self) -> Result<(), StepError> {
        let from = self.heal_at.unwrap_or_else(Instant::now);
        let mirrors = self.synced_zones();
        let watch = Mutex::new(ResumeWatch::default());
        let (synced, mut lags) = self
            .wait_in_sync_resuming(&mirrors, self.catch_up_timeout(), from, &watch)
            .await;
        // Over the timeout: watch on for the grace, so a catch-up that comes
        // late is measured, and what it brings is late, not lost.
        let mut late = None;
        if !synced {
            self.overtime = Some(self.overtime_from_now());
            let (caught_up, at_end) = self
                .wait_in_sync_resuming(&mirrors, self.catch_up_grace(), from, &watch)
                .await;
            late = caught_up.then(|| from.elapsed().as_secs_f64());
            lags = at_end;
        }
        let mut errors = BTreeMap::new();
        // An aggregate's lag names the zone it lacks; a mirror says why.
        if !synced && late.is_none() && !self.sources() {
            for z in &mirrors {
                if let Some(zone) = self.zone(z)
                    && let Ok(view) =
                        crate::nats::state::mirror_view(&zone.conn.js, self.stream()).await
                {
                    let error = match (view.error, view.active) {
                        (Some(e), _) => e,
                        (None, None) => "the mirror has never heard from the source".to_string(),
                        (None, Some(active)) => format!(
                            "last heard from the source {:.1}s ago",
                            active.as_secs_f64()
                        ),
                    };
                    errors.insert(z.clone(), error);
                }
            }
        }
        // Lag until the mirrors caught up is still the cut's doing.
        if let (Some(s), Some(last)) = (&self.sampler, self.evidence.partitions.last()) {
            let heal_ms = from.duration_since(self.epoch).as_millis() as u32;
            for z in &last.zones {
                s.window(z, LagCause::CutOff, heal_ms, self.ms());
            }
        }
        self.evidence.catch_up = Some(CatchUpEvidence {
            seconds: synced.then(|| from.elapsed().as_secs_f64()),
            timeout_seconds: self.catch_up_timeout().as_secs_f64(),
            grace_seconds: if synced {
                0.0
            } else {
                self.catch_up_grace().as_secs_f64()
            },
            late_seconds: late,
            reconnect_interval_seconds: self.region.spec.leafnode.reconnect_interval_seconds,
            lag_at_end: lags,
            mirror_errors: errors,
            resumes: watch.into_inner().expect("resume watch").resumes,
        });
        Ok(())
    }

    /// [`Self::wait_in_sync`], while [`Self::resume_stalled`] looks after
    /// the mirrors (mirror topology, unless `resume_mirrors_after` is `None`).
    async fn wait_in_sync_resuming(
        &self,
        zones: &[String],
        limit: Duration,
        healed: Instant,
        watch: &Mutex<ResumeWatch>,
    ) -> (bool, BTreeMap<String, u64>) {
        let wait = self.wait_in_sync(zones, limit);
        let Some(after) = self.opts.resume_mirrors_after.filter(|_| !self.sources()) else {
            return wait.await;
        };
        tokio::pin!(wait);
        tokio::select! {
            r = &mut wait => return r,
            () = self.resume_stalled(zones, healed, after, watch) => {}
        }
        wait.await
    }

    /// nats-server skips the retry a leafnode reconnect triggers while an
    /// earlier consumer-create request is pending (sent into the cut by its
    /// 10 s health check, pending 30 s, then 10 s backoff): the mirror then
    /// stays silent some 40 s after the link is back. A mirror still behind
    /// and silent `after` past the moment a server of its zone reached the
    /// source's JetStream API again is made to step down its leader, to a
    /// server whose link is back: the successor builds fresh mirror state and
    /// asks for a consumer at once. Servers relink seconds apart (each
    /// redials every reconnect interval plus up to as much jitter), so a
    /// mirror still silent `after` past a stepdown gets another, at most
    /// [`MAX_RESUMES`] per heal. Returns when every mirror caught up or used
    /// its attempts.
    async fn resume_stalled(
        &self,
        mirrors: &[String],
        healed: Instant,
        after: Duration,
        watch: &Mutex<ResumeWatch>,
    ) {
        let is_done = |z: &str| watch.lock().expect("resume watch").done.contains(z);
        let policy = resume::Policy {
            silent_after: resume::SILENT,
            link_settled_after: after,
            interval: RESUME_AGAIN_AFTER,
            never_heard_is_silent: true,
        };
        // One connection per server (where the zone lists its servers), so
        // each server's own link is seen.
        let mut servers = BTreeMap::new();
        for name in mirrors {
            if let Some(zone) = self.zone(name) {
                servers.insert(name.clone(), self.server_clients(zone).await);
            }
        }
        loop {
            let source_head = match self.zone(&self.source_name()) {
                Some(src) => last_seq(&src.conn.js, self.stream()).await.ok(),
                None => None,
            };
            for name in mirrors {
                if is_done(name) {
                    continue;
                }
                let Some(zone) = self.zone(name) else {
                    continue;
                };
                // Bounded like the catch-up wait's reads: a mirror just
                // stepped down answers nothing until its successor is elected,
                // and the other mirrors must not wait for it.
                let info = crate::nats::api::stream_info(&zone.conn.js, self.stream());
                let Ok(Ok(Ok(Some(info)))) =
                    tokio::time::timeout(super::in_sync::ROUND_TIMEOUT, info).await
                else {
                    continue;
                };
                let caught_up = source_head.is_some_and(|h| info.info.state.last_sequence >= h);
                let Some(mirror) = info.info.config.mirror.as_ref().filter(|_| !caught_up) else {
                    watch
                        .lock()
                        .expect("resume watch")
                        .done
                        .insert(name.clone());
                    continue;
                };
                let api = mirror
                    .external
                    .as_ref()
                    .map_or("$JS.API", |e| e.api_prefix.as_str());
                let clients = servers.get(name).map_or(&[][..], Vec::as_slice);
                let linked = linked_servers(clients, &zone.conn, api).await;
                let link_up = {
                    let mut w = watch.lock().expect("resume watch");
                    if !linked.is_empty() {
                        w.link_up.entry(name.clone()).or_insert_with(Instant::now);
                    }
                    w.link_up.get(name).copied()
                };
                let (tried, last_try) = {
                    let w = watch.lock().expect("resume watch");
                    let mine = w.resumes.iter().filter(|r| r.zone == *name);
                    (mine.clone().count(), mine.map(|r| r.at_seconds).next_back())
                };
                let leader = info.info.cluster.as_ref().and_then(|c| c.leader.clone());
                let facts = resume::Facts {
                    // A mirror without state reads as silent: a successor
                    // reports no `active` until it hears.
                    active: info.info.mirror.as_ref().and_then(|m| m.active),
                    linked_for: link_up.map(|t| t.elapsed()),
                    linked_servers: &linked,
                    per_server: !clients.is_empty(),
                    leader: leader.as_deref(),
                    replicas: info.info.config.num_replicas,
                    since_last: last_try.map(|t| {
                        Duration::from_secs_f64((healed.elapsed().as_secs_f64() - t).max(0.0))
                    }),
                    held_by: None,
                };
                let (preferred, error) = match resume::decide(&policy, &facts) {
                    resume::Decision::Leave(why) => {
                        tracing::debug!(zone = %name, why = ?why, linked = ?linked, leader = ?leader, "mirror not resumed yet");
                        continue;
                    }
                    resume::Decision::Cannot(why) => (None, Some(why)),
                    resume::Decision::Nudge { preferred } => {
                        let error =
                            resume::stepdown(&zone.conn.js, self.stream(), preferred.as_deref())
                                .await
                                .err();
                        (preferred, error)
                    }
                };
                let at = healed.elapsed().as_secs_f64();
                let resume = MirrorResume {
                    zone: name.clone(),
                    link_up_seconds: link_up.map_or(at, |t| t.duration_since(healed).as_secs_f64()),
                    at_seconds: at,
                    to_server: preferred,
                    error,
                };
                tracing::info!(zone = %name, "{}", resume.describe());
                if let Some(s) = &self.sampler {
                    let label = match resume.error {
                        None => format!("resumed mirror {name} by leader stepdown"),
                        Some(_) => format!("could not resume mirror {name}"),
                    };
                    s.mark(self.ms(), label);
                }
                let mut w = watch.lock().expect("resume watch");
                // A refused stepdown (an R1 mirror has no other server to
                // lead) is not repeated; a lost consumer request gets another go.
                if resume.error.is_some() || tried + 1 >= MAX_RESUMES {
                    w.done.insert(name.clone());
                }
                w.resumes.push(resume);
            }
            if mirrors.iter().all(|m| is_done(m)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A connection to each server `zone` lists (none where it lists one
    /// address, a Service: the run's own connection stands for it).
    async fn server_clients(&self, zone: &Zone) -> Vec<ZoneClient> {
        let endpoint = &zone.access.endpoint;
        if endpoint.urls.len() < 2 {
            return Vec::new();
        }
        let settings = ConnectSettings {
            client_name: format!("natsregion-drill-{}-links", self.drill_name()),
            ..Default::default()
        };
        crate::nats::connect::connect_each(endpoint, &settings).await
    }

    /// What each zone had read of each writer's phases so far, and when
    /// the grace that starts now ends.
    fn overtime_from_now(&self) -> Overtime {
        let phases: Vec<u16> = (0..self.next_phase).collect();
        let mut read = BTreeMap::new();
        for z in &self.zones {
            for w in &self.writers {
                read.insert(
                    (z.name().to_string(), w.writer()),
                    z.reader.read_acked_in(w.writer(), &phases),
                );
            }
        }
        Overtime {
            until: Instant::now() + self.catch_up_grace(),
            phases,
            read,
        }
    }

    /// Each check's late count: messages of the phases published when the
    /// catch-up timeout ran out that the zone read only after it.
    fn count_late(&mut self) {
        let Some(o) = &self.overtime else { return };
        let late: Vec<u64> = self
            .evidence
            .zones
            .iter()
            .map(|c| {
                let writer = match &c.origin {
                    Some(origin) => self.writers.iter().find(|w| w.zone == *origin),
                    None => self.writers.first(),
                };
                let (Some(w), Some(z)) = (writer, self.zone(&c.zone)) else {
                    return 0;
                };
                o.read.get(&(c.zone.clone(), w.writer())).map_or(0, |then| {
                    z.reader
                        .read_acked_in(w.writer(), &o.phases)
                        .saturating_sub(*then)
                })
            })
            .collect();
        for (c, late) in self.evidence.zones.iter_mut().zip(late) {
            c.late = late;
        }
    }

    async fn positions(&mut self) -> BTreeMap<String, Position> {
        let mut out = BTreeMap::new();
        for z in &mut self.zones {
            if let Ok(p) = z.reader.position().await {
                out.insert(z.access.name().to_string(), p);
            }
        }
        out
    }

    async fn pause_consumer(&mut self, index: usize) -> Result<(), StepError> {
        let paused = self
            .drill
            .spec
            .workload
            .pause_zone
            .clone()
            .unwrap_or_else(|| self.source_name());
        let all: Vec<String> = self.zones.iter().map(|z| z.name().to_string()).collect();
        let others: Vec<String> = all.iter().filter(|z| **z != paused).cloned().collect();
        // Start from a settled state so the figures compare like with like.
        self.wait_in_sync(&self.synced_zones(), self.catch_up_timeout())
            .await;
        self.wait_reads(&all, self.acked(), self.catch_up_timeout())
            .await;
        self.zone(&paused)
            .ok_or_else(|| StepError::Failed(format!("no zone {paused} to pause")))?
            .reader
            .pause()
            .await;
        // Acks are asynchronous; let the servers' ack floors settle before the baseline.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = self.positions().await;
        let stats = self.produce(index, Step::PauseConsumer).await;
        let outcome = match stats {
            Ok(stats) => {
                self.wait_in_sync(&self.synced_zones(), self.catch_up_timeout())
                    .await;
                self.wait_reads(&others, self.acked(), self.catch_up_timeout())
                    .await;
                // Acks are asynchronous; let the servers' ack floors settle.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let after = self.positions().await;
                let last_seq = self
                    .last_seqs()
                    .await
                    .into_iter()
                    .filter_map(|(zone, seq)| Some((zone, seq?)))
                    .collect();
                self.evidence.pause = Some(PauseEvidence {
                    paused_zone: paused.clone(),
                    published: stats.acked,
                    before,
                    after,
                    last_seq,
                });
                Ok(())
            }
            Err(e) => Err(e),
        };
        if let Some(z) = self.zone(&paused) {
            z.reader.resume();
        }
        outcome
    }

    async fn add_temporary_zone(&mut self) -> Result<(), StepError> {
        let spec = self.temporary_zone_spec();
        let history = self.acked();
        let mut join = JoinEvidence {
            zone: spec.name.clone(),
            history,
            producers_before: self.producer_identities(),
            ..Default::default()
        };
        let started = Instant::now();
        let joined_ms = self.ms();
        let joined = async {
            let access = self.runtime.add_zone(&spec).await?;
            self.temporary = Some(spec.name.clone());
            // The drill owns this zone, so it provisions its streams even in a cluster.
            let zone = self
                .open_zone(access, true)
                .await
                .map_err(|e| e.to_string())?;
            if self.sources() {
                self.source_everywhere(&spec)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(zone)
        }
        .await;
        match joined {
            Ok(zone) => {
                self.join(zone);
                if let Some(i) = self.writers.iter().position(|w| w.zone == spec.name)
                    && let Err(e) = self.start_producer(i).await
                {
                    join.error = Some(format!("its producer did not start: {e}"));
                }
                if self
                    .wait_reads(
                        std::slice::from_ref(&spec.name),
                        history,
                        self.catch_up_timeout(),
                    )
                    .await
                {
                    join.backfill_seconds = Some(started.elapsed().as_secs_f64());
                }
                if let Some(s) = &self.sampler {
                    s.window(&spec.name, LagCause::Backfill, joined_ms, self.ms());
                }
            }
            Err(e) => join.error = Some(e),
        }
        join.producers_after = self.identities_of(&join.producers_before);
        self.evidence.join = Some(join);
        Ok(())
    }

    /// The sources topology: every aggregate already there sources the
    /// joining zone's local stream too (an in-place edit). In a cluster the
    /// region controller keeps that source while the drill runs.
    async fn source_everywhere(&self, joining: &ZoneSpec) -> Result<(), StepError> {
        let spec = self.spec_with_temporary(Some(joining));
        for z in self.zones.iter().filter(|z| z.name() != joining.name) {
            let Some(zone) = spec.zone(z.name()) else {
                continue;
            };
            let aggregate = ZoneStream {
                kind: StreamKind::Aggregate,
                config: crate::plan::aggregate_stream_config(&spec, zone),
            };
            let wanted = self.local_stream(&joining.name);
            // In a cluster the region controller may update the aggregate
            // from its own read between our read and our update, dropping
            // the new source: read it back and add it again until it holds.
            let mut held = false;
            for _ in 0..5 {
                self.ensure_stream(z.name(), &z.conn, &aggregate, zone.servers)
                    .await?;
                held = crate::nats::state::stream_config(&z.conn.js, self.stream())
                    .await
                    .is_ok_and(|c| c.sources.iter().flatten().any(|s| s.name == wanted));
                if held {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if !held {
                return Err(StepError::Failed(format!(
                    "the aggregate in zone {} did not keep {wanted} as a source",
                    z.name()
                )));
            }
        }
        Ok(())
    }

    async fn verify(&mut self) -> Result<(), StepError> {
        for z in &self.zones {
            z.reader.resume();
        }
        let all: Vec<String> = self.zones.iter().map(|z| z.name().to_string()).collect();
        let read = self
            .wait_reads(&all, self.acked(), self.catch_up_timeout())
            .await;
        // After a catch-up over its timeout, reading goes on until the grace
        // ends: only what is absent then is lost.
        if let Some(until) = self.overtime.as_ref().map(|o| o.until)
            && !read
        {
            let left = until.saturating_duration_since(Instant::now());
            self.wait_reads(&all, self.acked(), left).await;
        }
        // The producers' identities after all traffic, for claim 4.
        if let Some(mut join) = self.evidence.join.take() {
            join.producers_after = self.identities_of(&join.producers_before);
            self.evidence.join = Some(join);
        }
        self.evidence.zones = self.check_all();
        self.count_late();
        self.audit_all().await;
        Ok(())
    }

    /// Reads every zone's stored stream itself, independent of what its
    /// consumer read: storage that lost acked messages after they were read
    /// fails claim 2 here, not nowhere.
    async fn audit_all(&mut self) {
        // Snapshots: the guard of a live log cannot be held across reads,
        // and the producers are done by now.
        let logs: Vec<(String, u64, SentLog)> = self
            .writers
            .iter()
            .map(|w| {
                (
                    w.zone.clone(),
                    w.local_first_seq,
                    w.log.lock().expect("log").clone(),
                )
            })
            .collect();
        let limit = self.step_timeout() + self.catch_up_timeout();
        let sources = self.sources();
        let stream = self.stream();
        let logs = &logs;
        let this = &*self;
        let audits = this.zones.iter().map(|z| async move {
            let (zone, js) = (z.name(), &z.conn.js);
            if !sources {
                let (source, _, log) = &logs[0];
                let found = audit_zone(zone, js, stream, z.first_seq, log, limit).await;
                let found = found.map(|a| StoredAuditResult {
                    acked_here: zone == source,
                    ..a
                });
                return vec![(zone.to_string(), found.map(|a| vec![a]))];
            }
            // The zone's own writes in its local stream, at the sequences
            // they were acked at; every zone's writes in its aggregate.
            let mut out = Vec::new();
            if let Some((_, from, log)) = logs.iter().find(|(w, _, _)| w == zone) {
                let local = this.local_stream(zone);
                let found = audit_zone(zone, js, &local, *from, log, limit).await;
                let found = found.map(|a| StoredAuditResult {
                    acked_here: true,
                    ..a
                });
                out.push((format!("{zone}/{local}"), found.map(|a| vec![a])));
            }
            let per_writer = logs
                .iter()
                .map(|(origin, _, log)| StoredAudit::aggregate(zone, origin, z.first_seq, log))
                .collect();
            let found = audit_stream(zone, js, stream, z.first_seq, per_writer, limit).await;
            out.push((zone.to_string(), found));
            out
        });
        let mut stored = Vec::new();
        let mut errors = BTreeMap::new();
        for (zone, found) in futures::future::join_all(audits)
            .await
            .into_iter()
            .flatten()
        {
            match found {
                Ok(a) => stored.extend(a),
                Err(e) => {
                    errors.insert(zone, e.to_string());
                }
            }
        }
        self.evidence.stored = stored;
        self.evidence.stored_errors = errors;
    }

    /// Whatever stopped the steps, the run still heals, waits for catch-up and
    /// checks, so a loss is named with its ids in every report that can name
    /// it. Each part is bounded by the drill's own timeouts.
    async fn conclude(&mut self, outcome: &Result<(), StepError>) {
        let Err(stopped) = outcome else { return };
        // Before the producers exist nothing was published: nothing to check.
        if !self.started_producing() {
            return;
        }
        let why = stopped.to_string();
        self.evidence.interrupted = Some(why.clone());
        if matches!(stopped, StepError::Aborted) {
            self.heal_first("the drill was stopped").await;
        }
        for z in &self.zones {
            z.reader.resume();
        }
        if self.open.is_some() {
            let limit = self.step_timeout();
            let closing = self.close_partition(Some(why.clone()));
            if let Err(e) = tokio::time::timeout(limit, closing)
                .await
                .unwrap_or_else(|_| {
                    Err(StepError::Failed("closing the partition timed out".into()))
                })
            {
                tracing::warn!(error = %e, "closing the partition after an interruption failed");
            }
        }
        // Asked to stop (an abort, a deletion, the operator stopping): end
        // now. Catch-up and the final check can take minutes, and a stopping
        // operator has seconds.
        if matches!(stopped, StepError::Aborted) {
            self.evidence.interrupted = Some(format!(
                "{why}: stopped at once, so catch-up was not awaited and the final check did not run"
            ));
            return;
        }
        let answering = self
            .last_seqs()
            .await
            .get(&self.source_name())
            .is_some_and(Option::is_some);
        if !answering {
            self.evidence.interrupted = Some(format!(
                "{why}; the source zone did not answer afterwards, so nothing more was checked"
            ));
            return;
        }
        let limit = self.catch_up_timeout() + self.catch_up_grace() + Duration::from_secs(5);
        if !self.evidence.partitions.is_empty() && self.evidence.catch_up.is_none() {
            let _ = tokio::time::timeout(limit, self.wait_for_catch_up()).await;
        }
        if self.evidence.zones.is_empty() {
            let _ = tokio::time::timeout(limit + self.step_timeout(), self.verify()).await;
        }
    }

    fn check_all(&self) -> Vec<ZoneCheck> {
        for w in &self.writers {
            w.log.lock().expect("log").abandon_unsettled();
        }
        self.zones.iter().flat_map(|z| z.reader.checks()).collect()
    }

    async fn heal_with_retries(&self, record: &FaultRecord) -> bool {
        for attempt in 0..3 {
            match self.backend.heal(record).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::error!(attempt, fault = %record.id, error = %e, "heal after an interrupted drill failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        false
    }

    /// Heals whatever is open, removes the temporary zone, closes consumers,
    /// and writes the verdicts. Runs on every path out of `execute`.
    async fn finish(mut self, outcome: Result<(), StepError>, started: Instant) -> DrillReport {
        // Heal every fault not known to be healed: the open partition, any
        // record without healedAt, and a cut cancelled before it was recorded.
        let open = self.open.take();
        let mut unhealed: Vec<FaultRecord> = self
            .status
            .faults
            .iter()
            .filter(|f| f.healed_at.is_none())
            .cloned()
            .collect();
        if let Some(zones) = self.cut_started.take()
            && unhealed.is_empty()
        {
            let deadline = self.drill.spec.fault.deadline();
            let record = crate::fault::fault_record(
                "unrecorded-cut".into(),
                self.backend.name(),
                &zones,
                jiff::Timestamp::now(),
                deadline,
            );
            // In the status too: should the heal below fail, the operator's
            // next reconcile (or a restarted operator) heals what it lists.
            self.status.faults.push(record.clone());
            unhealed.push(record);
        }
        for record in &unhealed {
            if self.heal_with_retries(record).await {
                self.mark_healed(&record.id);
            }
        }
        if let Some(open) = open {
            let mut ev = open.evidence;
            ev.leftovers = self
                .backend
                .leftovers()
                .await
                .unwrap_or_else(|e| vec![format!("leftovers could not be listed: {e}")]);
            self.evidence.partitions.push(ev);
        }
        if !self.drill.spec.fault.toxics.is_empty() {
            for zone in self.cut_zones() {
                if let Err(e) = self.backend.apply_toxics(&zone, &[]).await {
                    tracing::error!(zone = %zone, error = %e, "toxics not removed");
                }
            }
        }
        // Whatever happened above, nothing the backend injected may outlive the drill.
        let left_behind = self
            .backend
            .leftovers()
            .await
            .unwrap_or_else(|e| vec![format!("leftovers could not be listed: {e}")]);
        let timeline = match self.sampler.take() {
            Some(s) => s.finish().await,
            None => Timeline::default(),
        };
        let producer = self.producers().next().map(|(_, p)| p.settings().clone());
        let sent = self
            .started_producing()
            .then(|| (self.attempted(), self.acked()));
        for zone in std::mem::take(&mut self.zones) {
            zone.reader.close().await;
        }
        if let Some(name) = self.temporary.take()
            && !self.drill.spec.temporary_zone.keep
            && let Err(e) = self.runtime.remove_zone(&name).await
        {
            tracing::warn!(zone = %name, error = %e, "temporary zone not removed");
        }
        let judged =
            self.started_producing() && !matches!(outcome, Err(StepError::Precondition(_)));
        let claims = if judged {
            judge(&self.evidence)
        } else {
            Vec::new()
        };
        let lag = timeline.lag_by_cause();
        let checks = &self.evidence.zones;
        let (attempted, acked) = sent.unwrap_or_default();
        self.status.totals = DrillTotals {
            attempted: attempted as i64,
            acked: acked as i64,
            read: checks.iter().map(|c| c.read as i64).sum(),
            lost: checks.iter().map(|c| c.lost as i64).sum(),
            late: checks.iter().map(|c| c.late as i64).sum(),
            duplicated: checks.iter().map(|c| c.duplicated as i64).sum(),
            reordered: checks.iter().map(|c| c.reordered as i64).sum(),
            stored_missing: self
                .evidence
                .stored
                .iter()
                .map(|a| (a.missing + a.removed) as i64)
                .sum(),
            stored_altered: self
                .evidence
                .stored
                .iter()
                .map(|a| (a.altered + a.added) as i64)
                .sum(),
            catch_up_seconds: self
                .evidence
                .catch_up
                .as_ref()
                .and_then(|c| c.seconds)
                .map(|s| (s * 100.0).round() / 100.0),
            max_lag: lag.values().map(|l| l.cut_off).max().unwrap_or(0) as i64,
            max_backfill_lag: lag.values().map(|l| l.backfill).max().unwrap_or(0) as i64,
        };
        let (phase, verdict, message) = overall(&outcome, &claims);
        let (phase, verdict, message) = if left_behind.is_empty() {
            (phase, verdict, message)
        } else {
            (
                DrillPhase::Failed,
                Verdict::Failed,
                format!("{message}; faults left behind: {}", left_behind.join(", ")),
            )
        };
        self.status.phase = phase;
        self.status.verdict = verdict;
        self.status.message = Some(message);
        self.status.claims = claims;
        self.status.finished_at = Some(Time(jiff::Timestamp::now()));
        self.observer.status(&self.status);
        DrillReport {
            drill: self.drill_name(),
            region: self.region.metadata.name.clone().unwrap_or_default(),
            fault_backend: self.backend.name().to_string(),
            status: self.status,
            evidence: self.evidence,
            phases: self.phases,
            producer,
            timeline,
            lag,
            wall_seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// The drill's phase, verdict and message from how the steps ended and what
/// the claims found. A claim that failed is a finding about the region
/// whatever stopped the steps; a drill that could not finish is inconclusive,
/// never failed on its own account.
fn overall(
    outcome: &Result<(), StepError>,
    claims: &[ClaimResult],
) -> (DrillPhase, Verdict, String) {
    let titles = |v: Verdict| {
        claims
            .iter()
            .filter(|c| c.verdict == v)
            .map(|c| c.claim.title())
            .collect::<Vec<_>>()
    };
    let failed = titles(Verdict::Failed);
    let unproven = titles(Verdict::Inconclusive);
    let failed_msg = || format!("claims failed: {}", failed.join("; "));
    match outcome {
        Err(e @ StepError::Precondition(_)) => (DrillPhase::Failed, Verdict::Failed, e.to_string()),
        Err(StepError::Aborted) if failed.is_empty() => (
            DrillPhase::Aborted,
            Verdict::NotRun,
            "aborted; faults healed".to_string(),
        ),
        Err(StepError::Aborted) => (
            DrillPhase::Aborted,
            Verdict::Failed,
            format!("aborted; faults healed; {}", failed_msg()),
        ),
        Err(e) if failed.is_empty() => (
            DrillPhase::Errored,
            Verdict::Inconclusive,
            format!("drill error: {e}; faults healed; no claim failed on the evidence gathered"),
        ),
        Err(e) => (
            DrillPhase::Failed,
            Verdict::Failed,
            format!("{e}; faults healed; {}", failed_msg()),
        ),
        Ok(()) if !failed.is_empty() => (DrillPhase::Failed, Verdict::Failed, failed_msg()),
        Ok(()) if !unproven.is_empty() => (
            DrillPhase::Errored,
            Verdict::Inconclusive,
            format!("claims not proven: {}", unproven.join("; ")),
        ),
        Ok(()) if claims.iter().any(|c| c.verdict == Verdict::Passed) => (
            DrillPhase::Succeeded,
            Verdict::Passed,
            "every claim that ran held".to_string(),
        ),
        Ok(()) => (
            DrillPhase::Succeeded,
            Verdict::NotRun,
            "no claim was exercised by these steps".to_string(),
        ),
    }
}

/// Each link's position where it was read: a value that was not observed is
/// absent, never 0.
fn observed(positions: &BTreeMap<String, (Option<u64>, Option<u64>)>) -> BTreeMap<String, u64> {
    positions
        .iter()
        .filter_map(|(link, (_, at))| Some((link.clone(), (*at)?)))
        .collect()
}

pub use crate::plan::producer_subject;

/// What [`Run::resume_stalled`] learned after one heal.
#[derive(Default)]
struct ResumeWatch {
    /// When a server of each mirror's zone first reached the source's JetStream API.
    link_up: BTreeMap<String, Instant>,
    /// Mirrors resumed or caught up: left alone for the rest of the wait.
    done: std::collections::BTreeSet<String>,
    resumes: Vec<MirrorResume>,
}

/// The servers (by name) through which the source's JetStream API answers:
/// each of `clients`, or the run's own connection `fallback` without them.
async fn linked_servers(clients: &[ZoneClient], fallback: &ZoneClient, api: &str) -> Vec<String> {
    let clients: Vec<&ZoneClient> = if clients.is_empty() {
        vec![fallback]
    } else {
        clients.iter().collect()
    };
    let answers = futures::future::join_all(clients.iter().map(|c| async move {
        resume::source_api_answers(&c.client, api)
            .await
            .then(|| c.client.server_info().server_name)
    }))
    .await;
    answers.into_iter().flatten().collect()
}
