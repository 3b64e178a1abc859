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
    #[error(transparent)]
    Junit(#[from] super::junit::JunitError),
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
    /// Runs of the drill on the one region (0 counts as 1).
    pub repeat: u32,
    /// Write JUnit XML here (one test case per claim, one suite per run).
    pub junit: Option<PathBuf>,
    /// Off a terminal, time between two heartbeat lines (default 10 s).
    pub heartbeat: Option<std::time::Duration>,
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

    /// Issues every zone a new certificate mid-drill (see
    /// [`LocalRegion::renew_certificates`]).
    pub async fn renew_certificates(&self) -> Result<(), crate::local::LocalError> {
        self.region.lock().await.renew_certificates()
    }

    /// Process ids of `zone`'s servers (tests stop and resume them).
    pub async fn zone_pids(&self, zone: &str) -> Vec<u32> {
        self.region
            .lock()
            .await
            .zone(zone)
            .map(|z| z.pids())
            .unwrap_or_default()
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
            endpoint: z.endpoint(app, region.ca_pem().map(str::to_string)),
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

    /// The Toxiproxy server's process id, when this backend runs one.
    pub fn toxiproxy_pid(&self) -> Option<u32> {
        self._server.as_ref().map(ToxiproxyServer::pid)
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
    fn leaf_routes_only(&self) -> bool {
        self.0.leaf_routes_only()
    }
}

/// Runs a drill file end to end, `opts.repeat` times on one region. Returns
/// the reports; the caller decides the exit code.
pub async fn run(opts: &LocalDrillOptions) -> Result<Vec<DrillReport>, LocalDrillError> {
    let (region, drill) = drill_file::load(&opts.file)?;
    run_campaign(&region, &drill, opts, true).await
}

/// Like [`run`] with objects already loaded; `advertise_fix: false` reproduces
/// the proxy leak of docs/architecture.md fact 2 (for tests that must see it caught).
pub async fn run_loaded(
    region: &RegionMirror,
    drill: &PartitionDrill,
    opts: &LocalDrillOptions,
    advertise_fix: bool,
) -> Result<DrillReport, LocalDrillError> {
    let one = LocalDrillOptions {
        repeat: 1,
        ..opts.clone()
    };
    let mut reports = run_campaign(region, drill, &one, advertise_fix).await?;
    Ok(reports.remove(0))
}

/// Starts the region once and runs the drill `opts.repeat` times on it, each
/// run with its own writer and first sequence. Stops early on Ctrl-C.
pub async fn run_campaign(
    region: &RegionMirror,
    drill: &PartitionDrill,
    opts: &LocalDrillOptions,
    advertise_fix: bool,
) -> Result<Vec<DrillReport>, LocalDrillError> {
    let runs = opts.repeat.max(1);
    let faults = LocalFaults::start(drill, advertise_fix).await?;
    let region_opts = LocalRegionOptions {
        keep_dirs: opts.keep_dirs,
        ..Default::default()
    };
    eprintln!(
        "starting region {} ({} zones, {} servers, {}) with the {} backend",
        region.metadata.name.as_deref().unwrap_or("-"),
        region.spec.zones.len(),
        region.spec.zones.iter().map(|z| z.servers).sum::<i32>(),
        if region.spec.tls.enabled() {
            "TLS on every link, throwaway CA"
        } else {
            "plaintext: tls.mode Disabled"
        },
        faults.backend.name()
    );
    let local = LocalRegion::start(&region.spec, faults.network(), region_opts).await?;
    let runtime = LocalRuntime::new(local);
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    // Ctrl-C aborts the drill; the engine heals before it returns.
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: healing and stopping");
            let _ = abort_tx.send(true);
        }
    });
    let mut reports = Vec::new();
    for i in 1..=runs {
        let progress = opts
            .progress
            .then(|| TerminalProgress::new(drill.spec.steps().len(), opts.heartbeat));
        let observer: &dyn engine::Observer = match &progress {
            Some(p) => p,
            None => &engine::Silent,
        };
        let engine_opts = EngineOptions {
            abort: Some(abort_rx.clone()),
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
        if let Some(p) = &progress {
            p.finish();
        }
        if runs > 1 {
            let s = &report.status;
            eprintln!(
                "run {i}/{runs}: {:?} / {:?}, catch-up {}, {:.1}s{}",
                s.phase,
                s.verdict,
                s.totals
                    .catch_up_seconds
                    .map_or("-".to_string(), |c| format!("{c:.2}s")),
                report.wall_seconds,
                match s.verdict {
                    crate::api::Verdict::Passed => String::new(),
                    _ => format!(": {}", s.message.as_deref().unwrap_or("-")),
                }
            );
        }
        reports.push(report);
        if *abort_rx.borrow() {
            break;
        }
    }
    ctrl_c.abort();
    let local = runtime.into_inner();
    let kept = opts.keep_dirs.then(|| local.dir().to_path_buf());
    if let Err(e) = local.stop().await {
        tracing::warn!(error = %e, "region did not stop cleanly; its processes were killed");
    }
    if let Some(dir) = kept {
        eprintln!(
            "kept the zones' configs, logs and stores in {}",
            dir.display()
        );
    }
    if let Some(path) = &opts.report {
        write_reports(&reports, path)?;
    }
    if let Some(path) = &opts.junit {
        super::junit::write(&super::junit::suites(&reports), path)?;
        eprintln!("junit: {}", path.display());
    }
    Ok(reports)
}

/// One run: its report at `path`. Several: each run's report beside it
/// (`x.run1.json`, ...) and the campaign summary at `path`.
fn write_reports(reports: &[DrillReport], path: &Path) -> Result<(), LocalDrillError> {
    if let [one] = reports {
        let svg = report::write(one, path)?;
        eprintln!("report: {} and {}", path.display(), svg.display());
        return Ok(());
    }
    for (i, r) in reports.iter().enumerate() {
        report::write(r, &path.with_extension(format!("run{}.json", i + 1)))?;
    }
    let summary = crate::drill::campaign::CampaignSummary::of(reports);
    report::write_json(&summary, path)?;
    eprintln!(
        "campaign summary: {} (runs beside it as {})",
        path.display(),
        path.with_extension("runN.json").display()
    );
    Ok(())
}

/// Default report path when none is given: `out/<drill>.json`.
pub fn default_report_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "drill".into());
    PathBuf::from("out").join(format!("{stem}.json"))
}
