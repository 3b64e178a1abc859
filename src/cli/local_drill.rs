//! `natsregion drill --local FILE`: every zone as local nats-server processes,
//! the drill engine against them, a verdict table, a JSON report and a
//! timeline picture, and nothing left running afterwards.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::api::{FaultBackend as BackendKind, PartitionDrill, RegionMirror, ZoneSpec};
use crate::drill::engine::{self, DrillReport, EngineOptions};
use crate::drill::report;
use crate::drill::runtime::{Runtime, ZoneAccess};
use crate::fault::toxiproxy::ToxiproxyBackend;
use crate::fault::{FaultBackend, Network};
use crate::local::region::{LocalRegion, LocalRegionOptions};
use crate::local::toxiproxy::ToxiproxyServer;
use crate::nats::connect::ZoneEndpoint;

use super::drill_file;
use super::progress::TerminalProgress;

#[derive(Debug, thiserror::Error)]
pub enum LocalDrillError {
    #[error(transparent)]
    File(#[from] drill_file::DrillFileError),
    #[error("fault backend: {0}")]
    Fault(#[from] crate::fault::FaultError),
    #[error("local region: {0}")]
    Region(#[from] crate::local::LocalError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

/// What to run and where to write.
#[derive(Clone, Debug, Default)]
pub struct LocalDrillOptions {
    pub file: PathBuf,
    pub report: Option<PathBuf>,
    /// Keep the zones' files (configs, logs, stores) for a post-mortem.
    pub keep_dirs: bool,
    /// Show the live progress line.
    pub progress: bool,
}

/// A [`LocalRegion`] seen through the engine's runtime seam.
pub struct LocalRuntime {
    region: tokio::sync::Mutex<LocalRegion>,
    // `zones()` is synchronous; keep a copy refreshed after every change.
    zones: Mutex<Vec<ZoneAccess>>,
}

impl LocalRuntime {
    pub fn new(region: LocalRegion) -> Self {
        let zones = Mutex::new(accesses(&region));
        Self {
            region: tokio::sync::Mutex::new(region),
            zones,
        }
    }

    pub fn into_inner(self) -> LocalRegion {
        self.region.into_inner()
    }
}

fn accesses(region: &LocalRegion) -> Vec<ZoneAccess> {
    let app = &region.credentials().app;
    region
        .zones()
        .map(|z| ZoneAccess {
            role: z.role(),
            endpoint: ZoneEndpoint {
                zone: z.name().to_string(),
                urls: z.client_urls(),
                user: Some(app.user.clone()),
                password: Some(app.password.clone()),
                domain: Some(z.domain().to_string()),
            },
        })
        .collect()
}

impl Runtime for LocalRuntime {
    fn zones(&self) -> Vec<ZoneAccess> {
        self.zones.lock().expect("zones").clone()
    }

    fn add_zone<'a>(&'a self, zone: &'a ZoneSpec) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        Box::pin(async move {
            let mut region = self.region.lock().await;
            region.add_zone(zone).await.map_err(|e| e.to_string())?;
            let all = accesses(&region);
            *self.zones.lock().expect("zones") = all.clone();
            all.into_iter()
                .find(|a| a.name() == zone.name)
                .ok_or_else(|| format!("zone {} did not start", zone.name))
        })
    }

    fn remove_zone<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut region = self.region.lock().await;
            region.remove_zone(name).await.map_err(|e| e.to_string())?;
            *self.zones.lock().expect("zones") = accesses(&region);
            Ok(())
        })
    }
}

/// The fault backend and whatever process it needs, kept alive for the drill.
pub struct LocalFaults {
    pub backend: Arc<dyn FaultBackend>,
    _server: Option<ToxiproxyServer>,
}

impl LocalFaults {
    /// Starts what `drill` asks for. `networkPolicy` becomes network
    /// namespaces with packet filters, the local equivalent of a network cut.
    pub async fn start(
        drill: &PartitionDrill,
        advertise_fix: bool,
    ) -> Result<Self, LocalDrillError> {
        match drill.spec.fault.backend {
            BackendKind::Toxiproxy => {
                let server = ToxiproxyServer::start().await?;
                let backend = Arc::new(ToxiproxyBackend::new(server.url(), advertise_fix));
                Ok(Self {
                    backend,
                    _server: Some(server),
                })
            }
            BackendKind::NetworkPolicy => {
                let backend = crate::fault::netns::NetnsBackend::new()?;
                Ok(Self {
                    backend: Arc::new(backend),
                    _server: None,
                })
            }
        }
    }

    pub fn network(&self) -> Arc<dyn Network> {
        // Every backend is also the network that places and links the zones.
        let backend = self.backend.clone();
        Arc::new(AsNetwork(backend))
    }
}

/// Lets an `Arc<dyn FaultBackend>` serve where an `Arc<dyn Network>` is wanted.
struct AsNetwork(Arc<dyn FaultBackend>);

impl Network for AsNetwork {
    fn prepare_zone<'a>(
        &'a self,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<crate::fault::ZoneHost, crate::fault::FaultError>> {
        self.0.prepare_zone(zone)
    }
    fn leaf_route<'a>(
        &'a self,
        zone: &'a str,
        source_server: usize,
        upstream: std::net::SocketAddr,
    ) -> BoxFuture<'a, Result<std::net::SocketAddr, crate::fault::FaultError>> {
        self.0.leaf_route(zone, source_server, upstream)
    }
    fn leaf_advertise(&self, source_server: usize, listen: std::net::SocketAddr) -> Option<String> {
        self.0.leaf_advertise(source_server, listen)
    }
}

/// Runs a drill file end to end. Returns the report; the caller decides the exit code.
pub async fn run(opts: &LocalDrillOptions) -> Result<DrillReport, LocalDrillError> {
    let (region, drill) = drill_file::load(&opts.file)?;
    run_loaded(&region, &drill, opts, true).await
}

/// Like [`run`] with objects already loaded; `advertise_fix: false` reproduces
/// the proxy leak of DESIGN.md fact 1 (for tests that must see it caught).
pub async fn run_loaded(
    region: &RegionMirror,
    drill: &PartitionDrill,
    opts: &LocalDrillOptions,
    advertise_fix: bool,
) -> Result<DrillReport, LocalDrillError> {
    let faults = LocalFaults::start(drill, advertise_fix).await?;
    let region_opts = LocalRegionOptions {
        keep_dirs: opts.keep_dirs,
        ..Default::default()
    };
    eprintln!(
        "starting region {} ({} zones, {} servers) with the {} backend",
        region.metadata.name.as_deref().unwrap_or("-"),
        region.spec.zones.len(),
        region.spec.zones.iter().map(|z| z.servers).sum::<i32>(),
        faults.backend.name()
    );
    let local = LocalRegion::start(&region.spec, faults.network(), region_opts).await?;
    let runtime = LocalRuntime::new(local);
    let progress = opts
        .progress
        .then(|| TerminalProgress::new(drill.spec.steps().len()));
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    // Ctrl-C aborts the drill; the engine heals before it returns.
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: healing and stopping");
            let _ = abort_tx.send(true);
        }
    });
    let observer: &dyn engine::Observer = match &progress {
        Some(p) => p,
        None => &engine::Silent,
    };
    let engine_opts = EngineOptions {
        abort: Some(abort_rx),
        ..Default::default()
    };
    let report = engine::run(
        region,
        drill,
        &runtime,
        faults.backend.as_ref(),
        observer,
        engine_opts,
    )
    .await;
    ctrl_c.abort();
    if let Some(p) = &progress {
        p.finish();
    }
    if let Err(e) = runtime.into_inner().stop().await {
        tracing::warn!(error = %e, "region did not stop cleanly; its processes were killed");
    }
    if let Some(path) = &opts.report {
        let svg = report::write(&report, path)?;
        eprintln!("report: {} and {}", path.display(), svg.display());
    }
    Ok(report)
}

/// Default report path when none is given: `out/<drill>.json`.
pub fn default_report_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "drill".into());
    PathBuf::from("out").join(format!("{stem}.json"))
}
