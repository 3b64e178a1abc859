//! `natsregion run`: one operator process. Serves health and metrics, waits
//! for the leader Lease (unless disabled), runs the controllers until SIGTERM
//! or until leadership is lost, then hands the Lease over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::context::{Context, OperatorSettings, reporter};
use super::error::{Error, Result};
use super::health::{self, Health};
use super::leader::{self, LeaseSettings};
use super::shutdown::{Shutdown, shutdown_on};

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub settings: OperatorSettings,
    /// `/healthz`, `/readyz` and `/metrics`.
    pub metrics_addr: SocketAddr,
    /// `None`: run without leader election (one replica only!).
    pub leader_election: Option<LeaseSettings>,
}

/// Runs the operator against the cluster of the current kubeconfig or the
/// in-cluster service account.
pub async fn run(opts: RunOptions) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::kube("build a client from the kubeconfig or service account", e))?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| Error::kube("reach the API server", e))?;
    tracing::info!(
        server = %version.git_version,
        settings = ?opts.settings,
        "connected to the API server"
    );
    let ctx = Context::new(client.clone(), opts.settings.clone(), reporter());
    let health = Arc::new(Health::default());
    let terminate = shutdown_on(termination_signal());

    let (listener, addr) = health::bind(opts.metrics_addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    // The server stops when run() ends, whatever ended it (SIGTERM or a lost Lease).
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(health::serve(
        listener,
        ctx.metrics.clone(),
        health.clone(),
        async move {
            let _ = server_stopped.await;
        },
    ));
    health.set_ready(true);

    let result = match opts.leader_election {
        None => {
            ctx.metrics.set_leader(true);
            run_until_stopped(ctx.clone(), terminate.clone()).await;
            Ok(())
        }
        Some(lease) => {
            match leader::acquire(lease_client(&lease).await?, lease, terminate.clone()).await? {
                None => Ok(()),
                Some(mut leadership) => {
                    ctx.metrics.set_leader(true);
                    let mut lost = leadership.lost_signal();
                    let stop = shutdown_on({
                        let terminate = terminate.clone();
                        async move {
                            tokio::select! {
                                _ = terminate => {}
                                _ = lost.wait_for(|l| *l) => {}
                            }
                        }
                    });
                    run_until_stopped(ctx.clone(), stop).await;
                    tracing::debug!("controllers stopped");
                    ctx.metrics.set_leader(false);
                    let lost = futures::poll!(Box::pin(leadership.lost())).is_ready();
                    if lost {
                        // Exit non-zero: the pod restarts and queues up for the Lease again
                        // with fresh state instead of reusing caches from its time as leader.
                        Err(Error::LeaderElection(
                            "lost the leader Lease; controllers stopped".to_string(),
                        ))
                    } else {
                        leadership.release().await;
                        tracing::info!("leader Lease released");
                        Ok(())
                    }
                }
            }
        }
    };
    health.set_ready(false);
    let _ = server_stop.send(());
    let _ = server.await;
    tracing::debug!("health server stopped");
    result
}

/// A client of its own for the Lease, whose requests give up within the
/// renew deadline: the shared client's reads wait minutes (watches need
/// that), and a renew that waits that long outlives the leadership it renews.
async fn lease_client(lease: &LeaseSettings) -> Result<kube::Client> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| Error::LeaderElection(format!("client for the leader Lease: {e}")))?;
    config.connect_timeout = Some(lease.renew_deadline);
    config.read_timeout = Some(lease.renew_deadline);
    config.write_timeout = Some(lease.renew_deadline);
    kube::Client::try_from(config)
        .map_err(|e| Error::kube("build a client for the leader Lease", e))
}

/// How long controllers may take to stop after the stop signal (a running
/// drill heals its faults in that time). Below the chart's grace period, so
/// the Lease is still released before the kubelet kills the pod.
pub const STOP_LIMIT: Duration = Duration::from_secs(25);

/// `run_controllers`, but returns at most `STOP_LIMIT` after `stop` even if
/// a controller hangs (kube's watcher, for one, can sit in its backoff when a
/// CRD is missing), so shutdown always reaches the Lease release.
async fn run_until_stopped(ctx: Arc<Context>, stop: Shutdown) {
    let controllers = run_controllers(ctx, stop.clone());
    tokio::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => {}
        _ = async {
            stop.await;
            tokio::time::sleep(STOP_LIMIT).await;
        } => tracing::warn!(limit = ?STOP_LIMIT, "controllers did not stop in time; exiting anyway"),
    }
}

/// Runs every controller until `shutdown`. Tests call this in-process.
pub async fn run_controllers(ctx: Arc<Context>, shutdown: Shutdown) {
    let region = async {
        super::region::controller(ctx.clone(), shutdown.clone()).await;
        tracing::debug!("RegionMirror controller stopped");
    };
    let drill = async {
        super::drill::controller(ctx.clone(), shutdown.clone()).await;
        tracing::debug!("PartitionDrill controller stopped");
    };
    futures::join!(region, drill);
}

/// SIGTERM (what the kubelet sends) or Ctrl-C.
async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("termination requested; stopping controllers");
}
