//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas never
//! reconcile (or run a drill) at the same time.
//!
//! The algorithm is client-go's: the holder renews the Lease every
//! `renew_every`; a candidate takes it over only when the Lease record has not
//! changed for `lease_duration` *as measured on the candidate's own clock*
//! (so clock skew between nodes does not matter). Every write carries the
//! resourceVersion it read, so of two candidates racing only one wins. A leader
//! that cannot renew within `renew_deadline` steps down: its controllers stop
//! before another replica can take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

use super::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops leading. Shorter than
    /// `lease_duration`, so it stops before anyone may take over.
    pub renew_deadline: Duration,
    pub renew_every: Duration,
}

impl LeaseSettings {
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// Held leadership. Dropping it stops renewing (the Lease then expires);
/// `release` hands it over at once.
pub struct Leadership {
    lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl Leadership {
    /// Resolves when this replica is no longer the leader.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// A receiver that turns `true` when leadership is lost.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops renewing and clears the holder, so a standby takes over without
    /// waiting for the Lease to expire (graceful shutdown).
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if *self.lost.borrow() {
            return;
        }
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.settings.identity.as_str()) {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                let _ = self
                    .api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await;
            }
        }
    }
}

/// Waits until this replica holds the Lease, then keeps renewing it in the
/// background. Returns `None` if `shutdown` fires first.
pub async fn acquire(
    client: kube::Client,
    settings: LeaseSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Option<Leadership>> {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut observer = Observer::default();
    tokio::pin!(shutdown);
    loop {
        match try_acquire(&api, &settings, &mut observer).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, lease = %settings.name, "cannot read or write the leader Lease")
            }
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(None),
            _ = tokio::time::sleep(settings.renew_every) => {}
        }
    }
    tracing::info!(lease = %settings.name, identity = %settings.identity, "became leader");
    let (lost_tx, lost) = watch::channel(false);
    let (stop, mut stop_rx) = watch::channel(false);
    let task = {
        let api = api.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            let mut last_renewed = Instant::now();
            let mut observer = Observer::default();
            loop {
                tokio::select! {
                    _ = stop_rx.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(settings.renew_every) => {}
                }
                // A renew that hangs (an API server that accepts and never
                // answers) counts as failed once the deadline is spent: the
                // standby takes over after lease_duration whether we hear
                // back or not, so we must have stopped by then.
                let left = settings
                    .renew_deadline
                    .saturating_sub(last_renewed.elapsed());
                let renewed =
                    match tokio::time::timeout(left, try_acquire(&api, &settings, &mut observer))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(Error::LeaderElection(format!(
                            "renewing Lease {}/{} did not answer within the renew deadline",
                            settings.namespace, settings.name
                        ))),
                    };
                match renewed {
                    Ok(true) => last_renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(lease = %settings.name, "another replica holds the leader Lease; stepping down");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, lease = %settings.name, "cannot renew the leader Lease");
                        if last_renewed.elapsed() >= settings.renew_deadline {
                            tracing::warn!(lease = %settings.name, "leader Lease not renewed within the deadline; stepping down");
                            let _ = lost_tx.send(true);
                            return;
                        }
                    }
                }
            }
        })
    };
    Ok(Some(Leadership {
        lost,
        stop,
        task,
        api,
        settings,
    }))
}

/// When this candidate last saw the Lease record change.
#[derive(Default)]
struct Observer {
    record: Option<(Option<String>, Option<MicroTime>)>,
    since: Option<Instant>,
}

impl Observer {
    fn observe(&mut self, spec: &LeaseSpec) -> Instant {
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        if self.record.as_ref() != Some(&record) || self.since.is_none() {
            self.record = Some(record);
            self.since = Some(Instant::now());
        }
        self.since.expect("set above")
    }
}

/// One round: create, renew or take over the Lease. `Ok(true)`: we hold it.
async fn try_acquire(api: &Api<Lease>, s: &LeaseSettings, observer: &mut Observer) -> Result<bool> {
    let now = MicroTime(jiff::Timestamp::now());
    let duration_secs = s.lease_duration.as_secs().max(1) as i32;
    let kube_err =
        |action: &str, e| Error::kube(format!("{action} Lease {}/{}", s.namespace, s.name), e);
    let Some(mut lease) = api
        .get_opt(&s.name)
        .await
        .map_err(|e| kube_err("read", e))?
    else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(kube_err("create", e)),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let held_by_us = spec.holder_identity.as_deref() == Some(s.identity.as_str());
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
    if !held_by_us && !free {
        let their_duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
        if observer.observe(spec).elapsed() < their_duration {
            return Ok(false);
        }
    }
    if !held_by_us {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(now.clone());
        spec.holder_identity = Some(s.identity.clone());
    }
    spec.lease_duration_seconds = Some(duration_secs);
    spec.renew_time = Some(now);
    // `replace` sends the resourceVersion we read: a concurrent writer makes it fail with 409.
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(st)) if st.code == 409 => Ok(false),
        Err(e) => Err(kube_err("update", e)),
    }
}
