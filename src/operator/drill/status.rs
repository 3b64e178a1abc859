//! Drill status on the API server: Server-Side Apply on `/status` with the
//! operator's one field manager, throttled while the drill runs, immediate
//! when a fault is injected or healed.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::api::{DrillRun, PartitionDrill, PartitionDrillStatus, Verdict};
use crate::drill::engine::{Observer, Progress};
use crate::meta::FIELD_MANAGER;

/// Writes `status` as the whole status this manager owns.
pub async fn apply(
    api: &Api<PartitionDrill>,
    name: &str,
    status: &PartitionDrillStatus,
) -> Result<(), kube::Error> {
    let body = serde_json::json!({
        "apiVersion": "natsregion.io/v1alpha1",
        "kind": "PartitionDrill",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(drop)
}

/// What every write of one run carries besides the engine's status: the
/// schedule bookkeeping and the history, which the engine knows nothing of.
#[derive(Clone, Debug, Default)]
pub struct Carried {
    pub last_schedule_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    pub history: Vec<DrillRun>,
    pub last_success_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The conditions set when the run started; they change again only when
    /// it ends (see [`super::conditions`]), so progress writes carry them as
    /// they are.
    pub conditions: Vec<Condition>,
}

impl Carried {
    pub fn merge(&self, mut status: PartitionDrillStatus) -> PartitionDrillStatus {
        status.last_schedule_time = self.last_schedule_time.clone();
        status.history = self.history.clone();
        status.last_success_time = self.last_success_time.clone();
        status.conditions = self.conditions.clone();
        status.claims_passed = super::conditions::claims_passed(&status);
        status
    }
}

/// When the last passed run finished, with `run` just finished.
pub fn last_success(
    before: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    run: &PartitionDrillStatus,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    if run.verdict == Verdict::Passed {
        run.finished_at.clone().or(before)
    } else {
        before
    }
}

/// Appends the finished run to `history`, newest last, at most `limit` long.
pub fn push_history(history: &mut Vec<DrillRun>, status: &PartitionDrillStatus, limit: i32) {
    let Some(started_at) = status.started_at.clone() else {
        return;
    };
    history.push(DrillRun {
        started_at,
        finished_at: status.finished_at.clone(),
        phase: status.phase,
        verdict: status.verdict,
        failed_claims: status
            .claims
            .iter()
            .filter(|c| c.verdict == Verdict::Failed)
            .map(|c| c.claim)
            .collect(),
        report: status.report.clone(),
    });
    let limit = limit.max(1) as usize;
    if history.len() > limit {
        history.drain(..history.len() - limit);
    }
}

struct Update {
    status: PartitionDrillStatus,
    urgent: bool,
    /// Told whether this status reached the API server (written at once).
    stored: Option<oneshot::Sender<Result<(), String>>>,
}

/// The engine's observer: hands statuses to a writer task. A status whose
/// fault records changed (injected or healed) is urgent and written at once;
/// others at most every `every`.
pub struct StatusSink {
    tx: mpsc::UnboundedSender<Update>,
    last: Mutex<Last>,
    /// `true` while the last status seen has a fault without `healedAt`.
    cut_open: watch::Sender<bool>,
}

#[derive(Default)]
struct Last {
    /// The fault records of the last status seen, as (id, healed).
    faults: Vec<(String, bool)>,
    status: Option<PartitionDrillStatus>,
}

fn fault_key(s: &PartitionDrillStatus) -> Vec<(String, bool)> {
    s.faults
        .iter()
        .map(|f| (f.id.clone(), f.healed_at.is_some()))
        .collect()
}

impl StatusSink {
    /// The sink and the writer's future; the writer ends (after a last
    /// flush) when the sink is dropped.
    pub fn new(
        api: Api<PartitionDrill>,
        name: String,
        carried: Carried,
        every: Duration,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        Self::with_writer(every, move |status| {
            let api = api.clone();
            let name = name.clone();
            let status = carried.merge(status);
            Box::pin(async move { write(&api, &name, &status).await })
        })
    }

    /// The sink with any `write` (tests count the writes).
    pub fn with_writer(
        every: Duration,
        write: impl Fn(PartitionDrillStatus) -> BoxFuture<'static, Result<(), String>> + Send + 'static,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Self {
            tx,
            last: Mutex::new(Last::default()),
            cut_open: watch::channel(false).0,
        };
        (sink, writer(write, every, rx))
    }

    /// Reports into `tx` whether a fault is open (recorded, not healed), so
    /// a stopping controller knows when a drill no longer holds a cut.
    pub fn signal_cut_open(mut self, tx: watch::Sender<bool>) -> Self {
        self.cut_open = tx;
        self
    }

    fn remember(&self, last: &mut Last, status: &PartitionDrillStatus) {
        last.faults = fault_key(status);
        last.status = Some(status.clone());
        self.cut_open
            .send_replace(last.faults.iter().any(|(_, healed)| !healed));
    }

    /// Send a status now, urgent or not.
    pub fn send(&self, status: PartitionDrillStatus, urgent: bool) {
        let mut last = self.last.lock().expect("last");
        self.remember(&mut last, &status);
        last.status = Some(status.clone());
        let _ = self.tx.send(Update {
            status,
            urgent,
            stored: None,
        });
    }
}

impl Observer for StatusSink {
    fn status(&self, status: &PartitionDrillStatus) {
        let urgent = fault_key(status) != self.last.lock().expect("last").faults;
        self.send(status.clone(), urgent);
    }

    fn progress(&self, progress: &Progress) {
        // Live totals between steps, so `kubectl get -o yaml` shows traffic moving.
        let status = {
            let last = self.last.lock().expect("last");
            let Some(mut s) = last.status.clone() else {
                return;
            };
            s.totals.attempted = progress.attempted as i64;
            s.totals.acked = progress.acked as i64;
            s.totals.read = progress.reads.iter().map(|(_, n)| *n as i64).sum();
            s
        };
        let mut last = self.last.lock().expect("last");
        last.status = Some(status.clone());
        let _ = self.tx.send(Update {
            status,
            urgent: false,
            stored: None,
        });
    }

    /// Through the writer, so no older status queued before it can be
    /// written after it and take the intent record away again.
    fn persist<'a>(
        &'a self,
        status: &'a PartitionDrillStatus,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            {
                let mut last = self.last.lock().expect("last");
                self.remember(&mut last, status);
                self.tx
                    .send(Update {
                        status: status.clone(),
                        urgent: true,
                        stored: Some(tx),
                    })
                    .map_err(|_| "the status writer has stopped".to_string())?;
            }
            rx.await
                .map_err(|_| "the status writer has stopped".to_string())?
        })
    }
}

async fn writer(
    write: impl Fn(PartitionDrillStatus) -> BoxFuture<'static, Result<(), String>>,
    every: Duration,
    mut rx: mpsc::UnboundedReceiver<Update>,
) {
    let mut pending: Option<PartitionDrillStatus> = None;
    let mut last_write: Option<Instant> = None;
    loop {
        let due = match (&pending, last_write) {
            (Some(_), Some(t)) => Some(t + every),
            (Some(_), None) => Some(Instant::now()),
            (None, _) => None,
        };
        let update = match due {
            Some(due) => tokio::select! {
                u = rx.recv() => u.map(Some),
                _ = tokio::time::sleep_until(due) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        let write_now = match update {
            // Channel closed: flush and stop.
            None => {
                if let Some(s) = pending.take() {
                    let _ = write(s).await;
                }
                return;
            }
            Some(Some(Update {
                status,
                stored: Some(stored),
                ..
            })) => {
                pending = None;
                let _ = stored.send(write(status).await);
                last_write = Some(Instant::now());
                continue;
            }
            Some(Some(Update { status, urgent, .. })) => {
                pending = Some(status);
                urgent || last_write.is_none_or(|t| t.elapsed() >= every)
            }
            // The throttle interval passed.
            Some(None) => true,
        };
        if write_now && let Some(s) = pending.take() {
            let _ = write(s).await;
            last_write = Some(Instant::now());
        }
    }
}

async fn write(
    api: &Api<PartitionDrill>,
    name: &str,
    status: &PartitionDrillStatus,
) -> Result<(), String> {
    // A failed progress write is retried with the next one; faults are also
    // healed by the engine itself, so a lost progress write is not a safety
    // problem. A failed intent write stops the cut (see `persist`).
    let mut last = String::new();
    for attempt in 0..3 {
        match apply(api, name, status).await {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(format!("drill {name} is gone"));
            }
            Err(e) => {
                tracing::warn!(drill = %name, attempt, error = %e, "drill status write failed");
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DrillPhase;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::sync::Mutex;

    fn fault(healed: bool) -> crate::api::FaultRecord {
        crate::api::FaultRecord {
            id: "f".into(),
            backend: "toxiproxy".into(),
            zones: vec!["b".into()],
            injected_at: Time(jiff::Timestamp::now()),
            deadline: Time(jiff::Timestamp::now()),
            healed_at: healed.then(|| Time(jiff::Timestamp::now())),
            intent: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_throttled_and_faults_are_written_at_once() {
        use std::sync::Arc;
        let writes: Arc<Mutex<Vec<(Instant, PartitionDrillStatus)>>> = Arc::default();
        let (sink, writer) = StatusSink::with_writer(Duration::from_secs(2), {
            let writes = writes.clone();
            move |s| {
                writes.lock().unwrap().push((Instant::now(), s));
                Box::pin(async { Ok(()) })
            }
        });
        let writer = tokio::spawn(writer);
        let start = Instant::now();
        let mut s = PartitionDrillStatus::default();
        // A burst of progress: the first is written, the rest wait.
        for i in 0..20 {
            s.totals.attempted = i;
            sink.status(&s);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A fault injected: written at once, throttle or not.
        s.faults.push(fault(false));
        sink.status(&s);
        tokio::time::sleep(Duration::from_millis(10)).await;
        {
            let w = writes.lock().unwrap();
            assert_eq!(w.len(), 2, "first progress and the fault");
            assert_eq!(w[1].1.faults.len(), 1);
            assert!(w[1].0 - start < Duration::from_millis(1100));
        }
        // Healed: again at once.
        s.faults[0] = fault(true);
        sink.status(&s);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(writes.lock().unwrap().len(), 3);
        // Progress after that waits for the interval, then the latest goes out.
        s.totals.attempted = 99;
        sink.status(&s);
        sink.status(&s);
        tokio::time::sleep(Duration::from_secs(3)).await;
        {
            let w = writes.lock().unwrap();
            assert_eq!(w.len(), 4);
            assert_eq!(w[3].1.totals.attempted, 99);
            assert!(w[3].0 - w[2].0 >= Duration::from_secs(2));
        }
        drop(sink);
        writer.await.unwrap();
    }

    #[test]
    fn history_keeps_the_newest_runs() {
        let mut h = Vec::new();
        for i in 0..7 {
            let s = PartitionDrillStatus {
                started_at: Some(Time(jiff::Timestamp::from_second(i).unwrap())),
                phase: DrillPhase::Succeeded,
                verdict: Verdict::Passed,
                ..Default::default()
            };
            push_history(&mut h, &s, 5);
        }
        assert_eq!(h.len(), 5);
        assert_eq!(h[0].started_at.0.as_second(), 2);
        assert_eq!(h[4].started_at.0.as_second(), 6);
    }
}
