//! `natsregion-bench operator`: the operator under load, against a real API
//! server (testenv::ControlPlane), run as its own process so its memory can
//! be read from `/proc/<pid>/status`.
//!
//! N RegionMirrors of 3 managed zones (1 source + 2 mirrors, 3 servers each)
//! are applied as fast as the API server takes them; then measured:
//! the time until every child object exists, the time until every region's
//! status is written for its generation, the operator's peak and idle RSS,
//! and the API writes of a quiet period once everything settled. No kubelet
//! runs, so zones never get pods and are never ready: that is the steady state.
//! Figures are printed, not asserted.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{ServiceCIDR, ServiceCIDRSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::BenchError;
use super::goals::{GoalRow, render};
use super::watched::{Watched, ready_reason, status_observed};
use super::{apiserver, prometheus};
use crate::api::RegionMirror;
use crate::meta::labels;
use crate::operator::region::CONTROLLER;
use crate::operator::region::children::{self, ChildKind};
use crate::operator::region::validated;
use crate::testenv::ControlPlane;

const MANAGER: &str = "natsregion-bench";
const NAMESPACE: &str = "bench";
/// Kinds of a region's children, in table order (Secrets: the two generated credentials).
const KINDS: [&str; 5] = [
    "ConfigMap",
    "Service",
    "StatefulSet",
    "PodDisruptionBudget",
    "Secret",
];
/// Regions applied at once.
const APPLY_CONCURRENCY: usize = 16;
/// Longest wait for children and statuses before the run is given up.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(600);
/// Settled: two snapshots this far apart show the same resourceVersions.
const SETTLE_STEP: Duration = Duration::from_secs(5);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct OperatorBenchOptions {
    pub regions: usize,
    pub quiet_seconds: u64,
    /// `natsregion run --status-refresh-seconds` of the operator under test.
    pub status_refresh_seconds: u64,
    /// The `natsregion` binary to run; `None`: the one beside this executable.
    pub operator: Option<PathBuf>,
    /// More arguments for `natsregion run` (to compare its settings).
    pub operator_args: Vec<String>,
}

impl Default for OperatorBenchOptions {
    fn default() -> Self {
        Self {
            regions: 100,
            quiet_seconds: 60,
            status_refresh_seconds: 30,
            operator: None,
            operator_args: Vec::new(),
        }
    }
}

/// Everything measured, for [`table`].
#[derive(Clone, Debug, Default)]
pub struct OperatorFigures {
    pub regions: usize,
    pub zones_per_region: usize,
    pub status_refresh_seconds: u64,
    /// Children the builders say a region gets, by kind, summed over all regions.
    pub expected_children: BTreeMap<&'static str, usize>,
    pub apply_seconds: f64,
    pub children_seconds: Option<f64>,
    pub statuses_seconds: Option<f64>,
    pub settled_seconds: Option<f64>,
    pub rss_start_kib: Option<u64>,
    pub rss_max_sampled_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub idle_rss_kib: Option<u64>,
    /// Idle RSS split: heap and stacks (`RssAnon`), the binary's pages (`RssFile`).
    pub idle_rss_anon_kib: Option<u64>,
    pub idle_rss_file_kib: Option<u64>,
    pub quiet_seconds: u64,
    pub objects_watched: usize,
    /// Objects (regions + children) whose resourceVersion changed, appeared or went.
    pub changed: Vec<String>,
    /// Watch events (added, modified, deleted) by kind over the quiet period.
    pub watch_events: BTreeMap<&'static str, u64>,
    /// CPU seconds by process from the start until every child and status
    /// was there (or the converge timeout).
    pub cpu_converged: Vec<(String, f64)>,
    /// The API server's requests from before the load until then, by verb
    /// and resource (its /metrics; watches left out).
    pub requests_converged: Option<apiserver::Profile>,
    /// Reconciles the operator ran during the quiet period (its /metrics).
    pub quiet_reconciles: Option<ReconcileCounts>,
    pub total_reconciles: Option<ReconcileCounts>,
    /// `Ready` condition reason → regions, once settled.
    pub ready_reasons: BTreeMap<String, usize>,
    pub operator_log: PathBuf,
    /// Set when children or statuses were not all there by the converge
    /// timeout: what was reached (the RSS figures are then from that moment,
    /// and no quiet period was measured).
    pub unconverged: Option<String>,
}

impl OperatorFigures {
    pub fn writes_per_minute(&self) -> f64 {
        self.changed.len() as f64 * 60.0 / (self.quiet_seconds.max(1) as f64)
    }
    pub fn events_per_minute(&self) -> f64 {
        self.watch_events.values().sum::<u64>() as f64 * 60.0 / (self.quiet_seconds.max(1) as f64)
    }
}

/// A region of 3 managed zones: a source and two mirrors, 3 servers each.
pub fn bench_region(i: usize) -> RegionMirror {
    RegionMirror::new(
        &region_name(i),
        serde_json::from_value(json!({
            "stream": {"name": "EVENTS", "subjects": ["events.>"]},
            "zones": [
                {"name": "a", "role": "source", "servers": 3},
                {"name": "b", "role": "mirror", "servers": 3},
                {"name": "c", "role": "mirror", "servers": 3},
            ],
        }))
        .expect("bench region spec deserializes"),
    )
}

fn region_name(i: usize) -> String {
    format!("r{i:03}")
}

/// Names of every child the operator's builders produce for `region` (which
/// must carry its uid), by kind, plus the two generated credential Secrets.
pub fn expected_children(
    region: &RegionMirror,
) -> Result<BTreeMap<&'static str, Vec<String>>, BenchError> {
    let name = region.name_any();
    let valid = validated::fixture(region, &crate::api::default_image());
    let built = children::region_children(&valid)
        .map_err(|e| BenchError(format!("build the children of {name}: {e}")))?;
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for kind in ChildKind::ALL {
        out.insert(
            kind.as_str(),
            built.iter().flat_map(|c| c.names_of(kind)).collect(),
        );
    }
    let refs = valid.credentials.refs;
    out.insert("Secret", vec![refs.app, refs.system]);
    Ok(out)
}

// ------------------------------------------------------------ the operator

/// The operator under test: `natsregion run` of this very binary.
struct Operator {
    child: tokio::process::Child,
    pid: u32,
    metrics_port: u16,
    log: PathBuf,
}

/// The operator binary under test: the shipped `natsregion`, not this one.
fn operator_binary(chosen: Option<&Path>) -> Result<PathBuf, BenchError> {
    let path = match chosen {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| BenchError(format!("current_exe: {e}")))?
            .with_file_name("natsregion"),
    };
    if !path.is_file() {
        return Err(BenchError(format!(
            "no operator binary at {}: run `cargo build --release` first, or pass --operator PATH",
            path.display()
        )));
    }
    Ok(path)
}

impl Operator {
    async fn start(
        exe: &Path,
        kubeconfig: &Path,
        dir: &Path,
        status_refresh_seconds: u64,
        extra_args: &[String],
    ) -> Result<Operator, BenchError> {
        let port = free_port()?;
        let log = dir.join("operator.log");
        let stderr = std::fs::File::create(&log)
            .map_err(|e| BenchError(format!("create {}: {e}", log.display())))?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args([
                "run".to_string(),
                format!("--namespace={NAMESPACE}"),
                "--leader-election=false".to_string(),
                format!("--metrics-addr=127.0.0.1:{port}"),
                format!("--status-refresh-seconds={status_refresh_seconds}"),
            ])
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("NATSREGION_NAMESPACE")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "natsregion=info");
        }
        let mut child = command
            .spawn()
            .map_err(|e| BenchError(format!("start {} run: {e}", exe.display())))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError("operator has no pid".into()))?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError(format!(
                    "the operator exited ({status}) during startup; see {}",
                    log.display()
                )));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(BenchError(format!(
                    "the operator did not serve /readyz within 60 s; see {}",
                    log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Operator {
            child,
            pid,
            metrics_port: port,
            log,
        })
    }

    fn status_kib(&self, key: &str) -> Option<u64> {
        proc_status_kib(self.pid, key)
    }

    fn check_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError(format!(
                "the operator exited ({status}); see {}",
                self.log.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The RegionMirror controller's counters on /metrics.
    async fn reconciles(&self) -> Option<ReconcileCounts> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        Some(reconcile_counts(&text))
    }

    /// SIGTERM, then up to 40 s for a clean exit, then SIGKILL.
    async fn stop(mut self) -> String {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(40), self.child.wait()).await {
            Ok(Ok(status)) => format!("exited after SIGTERM: {status}"),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                "did not exit within 40 s of SIGTERM; killed".to_string()
            }
        }
    }
}

/// What the RegionMirror controller counted, from its /metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileCounts {
    pub reconciles: u64,
    pub failures: u64,
    /// Reconciles that applied every child; the rest only observed.
    pub full_passes: u64,
    /// The full passes by why they ran (`never_applied`, `child_changed`, ...).
    pub full_passes_why: BTreeMap<String, u64>,
}

impl ReconcileCounts {
    fn since(&self, before: &ReconcileCounts) -> ReconcileCounts {
        ReconcileCounts {
            reconciles: self.reconciles.saturating_sub(before.reconciles),
            failures: self.failures.saturating_sub(before.failures),
            full_passes: self.full_passes.saturating_sub(before.full_passes),
            full_passes_why: self
                .full_passes_why
                .iter()
                .map(|(why, n)| {
                    let was = before.full_passes_why.get(why).copied().unwrap_or(0);
                    (why.clone(), n.saturating_sub(was))
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// The regionmirror controller's reconciles, failures and full passes in a
/// Prometheus text exposition.
pub fn reconcile_counts(text: &str) -> ReconcileCounts {
    let mut counts = ReconcileCounts::default();
    for (name, labels, value) in prometheus::samples(text) {
        let value = value as u64;
        let ours = prometheus::label(labels, "controller") == Some(CONTROLLER);
        match name {
            "natsregion_region_full_passes_total" => {
                counts.full_passes += value;
                let why = prometheus::label(labels, "why").unwrap_or_default();
                *counts.full_passes_why.entry(why.to_string()).or_default() += value;
            }
            "natsregion_reconciles_total" if ours => counts.reconciles += value,
            "natsregion_reconcile_failures_total" if ours => counts.failures += value,
            _ => {}
        }
    }
    counts
}

fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BenchError(format!("find a free port: {e}")))
}

/// CPU time (user + system) process `pid` has used, in seconds.
fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at `state`;
    // utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// CPU seconds of the control plane's processes (by command name), the
/// operator and this bench (its applies and watches load the API server too).
fn cpu_split(plane_pids: &[u32], operator_pid: u32) -> Vec<(String, f64)> {
    let name_of = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| pid.to_string())
    };
    let mut split: Vec<(String, f64)> = plane_pids
        .iter()
        .map(|&pid| (name_of(pid), pid))
        .chain([("operator".to_string(), operator_pid)])
        .filter_map(|(name, pid)| Some((name, proc_cpu_seconds(pid)?)))
        .collect();
    split.push(("bench".into(), super::publish::cpu_seconds()));
    split
}

fn show_cpu(split: &[(String, f64)]) -> String {
    if split.is_empty() {
        return "n/a".into();
    }
    split
        .iter()
        .map(|(name, s)| format!("{name} {s:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `VmXXX:  1234 kB` figure of process `pid`, in KiB.
fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    super::status_field_kib(&status, key)
}

// ------------------------------------------------------------ the cluster

/// The test API server's service range is a /24 (254 ClusterIPs), and every
/// region takes 4 (3 client Services and the leafnode one): a second range is
/// added as a ServiceCIDR, marked Ready here as kube-controller-manager would
/// (which does not run: its StatefulSet controller would make pods and write).
const EXTRA_SERVICE_CIDR: &str = "10.96.0.0/16";

async fn widen_service_ips(client: &Client) -> Result<(), BenchError> {
    let api: Api<ServiceCIDR> = Api::all(client.clone());
    let name = "natsregion-bench";
    let cidr = ServiceCIDR {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(ServiceCIDRSpec {
            cidrs: Some(vec![EXTRA_SERVICE_CIDR.to_string()]),
        }),
        status: None,
    };
    api.create(&PostParams::default(), &cidr)
        .await
        .map_err(|e| BenchError(format!("create ServiceCIDR {EXTRA_SERVICE_CIDR}: {e}")))?;
    let now = jiff::Timestamp::now();
    let now = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Bench",
            "message": "marked ready by natsregion-bench operator",
            "lastTransitionTime": now.to_string(),
        }]}})),
    )
    .await
    .map_err(|e| BenchError(format!("mark ServiceCIDR {EXTRA_SERVICE_CIDR} ready: {e}")))?;
    // The API server's allocator learns of it through an informer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

fn region_selector() -> ListParams {
    ListParams::default().labels(labels::REGION)
}

/// kind/name → resourceVersion of every object of `K` with a region label.
async fn versions_of<K>(
    client: &Client,
    kind: &'static str,
    out: &mut BTreeMap<String, String>,
) -> Result<String, BenchError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let list = Api::<K>::namespaced(client.clone(), NAMESPACE)
        .list_metadata(&region_selector())
        .await
        .map_err(|e| BenchError(format!("list {kind}s: {e}")))?;
    for o in &list.items {
        out.insert(
            format!("{kind}/{}", o.name_any()),
            o.resource_version().unwrap_or_default(),
        );
    }
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// One look at the namespace: every child's and region's resourceVersion,
/// the regions whose status is written for their generation, and each kind's
/// list resourceVersion (to watch from).
#[derive(Default)]
struct Snapshot {
    versions: BTreeMap<String, String>,
    observed: usize,
    ready_reasons: BTreeMap<String, usize>,
    list_versions: HashMap<&'static str, String>,
}

async fn snapshot(client: &Client) -> Result<Snapshot, BenchError> {
    let mut s = Snapshot::default();
    let v = &mut s.versions;
    let lv = &mut s.list_versions;
    lv.insert(
        "ConfigMap",
        versions_of::<ConfigMap>(client, "ConfigMap", v).await?,
    );
    lv.insert(
        "Service",
        versions_of::<Service>(client, "Service", v).await?,
    );
    lv.insert(
        "StatefulSet",
        versions_of::<StatefulSet>(client, "StatefulSet", v).await?,
    );
    lv.insert(
        "PodDisruptionBudget",
        versions_of::<PodDisruptionBudget>(client, "PodDisruptionBudget", v).await?,
    );
    lv.insert("Secret", versions_of::<Secret>(client, "Secret", v).await?);
    let regions = Api::<RegionMirror>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .map_err(|e| BenchError(format!("list RegionMirrors: {e}")))?;
    for r in &regions.items {
        v.insert(
            format!("RegionMirror/{}", r.name_any()),
            r.resource_version().unwrap_or_default(),
        );
        if status_observed(r) {
            s.observed += 1;
        }
        *s.ready_reasons.entry(ready_reason(r)).or_default() += 1;
    }
    lv.insert(
        "RegionMirror",
        regions.metadata.resource_version.unwrap_or_default(),
    );
    Ok(s)
}

/// Objects whose resourceVersion differs between two snapshots (or that
/// appeared or went), as `kind/name`.
pub fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(after.keys().filter(|k| !before.contains_key(*k)).cloned());
    out.sort();
    out
}

/// Counts watch events (not bookmarks) of `K` from `version` for `within`.
async fn count_events<K>(
    api: Api<K>,
    selector: Option<&str>,
    version: String,
    within: Duration,
) -> Result<u64, String>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut count = 0;
    let mut version = version;
    while tokio::time::Instant::now() < deadline {
        let left = deadline - tokio::time::Instant::now();
        let mut params = WatchParams::default().timeout(left.as_secs().clamp(1, 290) as u32);
        if let Some(s) = selector {
            params = params.labels(s);
        }
        let stream = api
            .watch(&params, &version)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            match next {
                Err(_) => return Ok(count),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(event))) => match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                        count += 1;
                        version = o.resource_version().unwrap_or(version);
                    }
                    WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                    WatchEvent::Error(e) => return Err(e.to_string()),
                },
            }
        }
    }
    Ok(count)
}

// ------------------------------------------------------------ the bench

/// Runs the benchmark: control plane, CRDs, the operator as a subprocess, N
/// regions, then the figures. Stops the operator (SIGTERM) and the control
/// plane before returning.
pub async fn run(opts: &OperatorBenchOptions) -> Result<OperatorFigures, BenchError> {
    let operator_exe = operator_binary(opts.operator.as_deref())?;
    let started = Instant::now();
    let plane = ControlPlane::start()
        .await
        .map_err(|e| BenchError(format!("control plane: {e}")))?;
    let client = plane
        .client()
        .await
        .map_err(|e| BenchError(format!("client: {e}")))?;
    println!(
        "control plane ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    crate::testenv::install_natsregion_crds(&client)
        .await
        .map_err(|e| BenchError(e.to_string()))?;
    widen_service_ips(&client).await?;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))
                .expect("namespace deserializes"),
        )
        .await
        .map_err(|e| BenchError(format!("create namespace {NAMESPACE}: {e}")))?;

    let dir = tempfile::Builder::new()
        .prefix("natsregion-bench-operator-")
        .tempdir()
        .map_err(|e| BenchError(format!("temporary directory: {e}")))?
        .keep();
    let mut operator = Operator::start(
        &operator_exe,
        plane.kubeconfig_path(),
        &dir,
        opts.status_refresh_seconds,
        &opts.operator_args,
    )
    .await?;
    println!(
        "operator pid {} serving metrics on 127.0.0.1:{}; log {}",
        operator.pid,
        operator.metrics_port,
        operator.log.display()
    );
    let result = measure(opts, &client, &plane.pids(), &mut operator).await;
    let stopped = operator.stop().await;
    println!("operator {stopped}");
    drop(plane);
    result
}

async fn measure(
    opts: &OperatorBenchOptions,
    client: &Client,
    plane_pids: &[u32],
    operator: &mut Operator,
) -> Result<OperatorFigures, BenchError> {
    let mut f = OperatorFigures {
        regions: opts.regions,
        zones_per_region: 3,
        status_refresh_seconds: opts.status_refresh_seconds,
        quiet_seconds: opts.quiet_seconds,
        operator_log: operator.log.clone(),
        ..Default::default()
    };
    // Let the operator's watches start before the load arrives.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let watched = Watched::start(client, NAMESPACE).await;
    let requests_before = apiserver::profile(client).await;
    f.rss_start_kib = operator.status_kib("VmRSS");

    println!("== applying {} RegionMirrors of 3 zones", opts.regions);
    let api: Api<RegionMirror> = Api::namespaced(client.clone(), NAMESPACE);
    let t0 = Instant::now();
    let applied: Vec<Result<RegionMirror, BenchError>> =
        futures::stream::iter((0..opts.regions).map(|i| {
            let api = api.clone();
            async move {
                let region = bench_region(i);
                api.patch(
                    &region.name_any(),
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&region),
                )
                .await
                .map_err(|e| BenchError(format!("apply RegionMirror {}: {e}", region.name_any())))
            }
        }))
        .buffer_unordered(APPLY_CONCURRENCY)
        .collect()
        .await;
    f.apply_seconds = t0.elapsed().as_secs_f64();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for region in applied {
        let region = region?;
        for (kind, names) in expected_children(&region)? {
            *f.expected_children.entry(kind).or_default() += names.len();
            for n in names {
                expected.insert(format!("{kind}/{n}"), String::new());
            }
        }
    }
    println!(
        "applied in {:.2} s; expecting {} children ({})",
        f.apply_seconds,
        expected.len(),
        f.expected_children
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Converge: every child exists, every status is written.
    let mut max_rss = 0u64;
    let mut last_progress = Instant::now();
    loop {
        operator.check_running()?;
        if let Some(rss) = operator.status_kib("VmRSS") {
            max_rss = max_rss.max(rss);
        }
        let s = watched.seen();
        let elapsed = t0.elapsed().as_secs_f64();
        let present = expected.keys().filter(|k| s.children.contains(*k)).count();
        if f.children_seconds.is_none() && present == expected.len() {
            f.children_seconds = Some(elapsed);
            println!("every child exists after {elapsed:.2} s");
        }
        if f.statuses_seconds.is_none() && s.observed == opts.regions {
            f.statuses_seconds = Some(elapsed);
            println!("every status written after {elapsed:.2} s");
        }
        if f.children_seconds.is_some() && f.statuses_seconds.is_some() {
            f.cpu_converged = cpu_split(plane_pids, operator.pid);
            f.requests_converged = requests_since(client, &requests_before).await;
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            println!(
                "{present}/{} children, {}/{} statuses after {elapsed:.0} s; Ready: {:?}",
                expected.len(),
                s.observed,
                opts.regions,
                s.ready_reasons
            );
        }
        if t0.elapsed() > CONVERGE_TIMEOUT {
            // What it reached is the figure: no settle, no quiet period.
            let note = format!(
                "not converged within {CONVERGE_TIMEOUT:?}: {present}/{} children, {}/{} statuses",
                expected.len(),
                s.observed,
                opts.regions
            );
            println!("{note}");
            f.unconverged = Some(note);
            f.peak_rss_kib = operator.status_kib("VmHWM");
            f.idle_rss_kib = operator.status_kib("VmRSS");
            f.idle_rss_anon_kib = operator.status_kib("RssAnon");
            f.idle_rss_file_kib = operator.status_kib("RssFile");
            f.rss_max_sampled_kib = Some(max_rss).filter(|&m| m > 0);
            f.total_reconciles = operator.reconciles().await;
            f.cpu_converged = cpu_split(plane_pids, operator.pid);
            f.requests_converged = requests_since(client, &requests_before).await;
            return Ok(f);
        }
        // A look reads the watches' caches, not the API server.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(watched);

    // Settle: two snapshots SETTLE_STEP apart agree.
    let mut last = snapshot(client).await?;
    let settle_start = Instant::now();
    loop {
        tokio::time::sleep(SETTLE_STEP).await;
        operator.check_running()?;
        if let Some(rss) = operator.status_kib("VmRSS") {
            max_rss = max_rss.max(rss);
        }
        let now = snapshot(client).await?;
        let moved = changed(&last.versions, &now.versions).len();
        last = now;
        if moved == 0 {
            f.settled_seconds = Some(t0.elapsed().as_secs_f64());
            println!("settled after {:.1} s", t0.elapsed().as_secs_f64());
            break;
        }
        if settle_start.elapsed() > SETTLE_TIMEOUT {
            println!(
                "still {moved} objects changing every {SETTLE_STEP:?} after {SETTLE_TIMEOUT:?}; measuring anyway"
            );
            break;
        }
    }
    f.peak_rss_kib = operator.status_kib("VmHWM");

    // Quiet: nothing changes in the cluster, so the operator should write nothing.
    println!("== quiet period: {} s", opts.quiet_seconds);
    let before = snapshot(client).await?;
    f.objects_watched = before.versions.len();
    let reconciles_before = operator.reconciles().await;
    let within = Duration::from_secs(opts.quiet_seconds);
    let ns = |c: &Client| -> (Client, &'static str) { (c.clone(), NAMESPACE) };
    let lv = |k: &str| before.list_versions.get(k).cloned().unwrap_or_default();
    let sel = Some(labels::REGION);
    let (c, n) = ns(client);
    let watches = futures::future::join_all([
        Box::pin(count_events(
            Api::<ConfigMap>::namespaced(c.clone(), n),
            sel,
            lv("ConfigMap"),
            within,
        ))
            as std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>>,
        Box::pin(count_events(
            Api::<Service>::namespaced(c.clone(), n),
            sel,
            lv("Service"),
            within,
        )),
        Box::pin(count_events(
            Api::<StatefulSet>::namespaced(c.clone(), n),
            sel,
            lv("StatefulSet"),
            within,
        )),
        Box::pin(count_events(
            Api::<PodDisruptionBudget>::namespaced(c.clone(), n),
            sel,
            lv("PodDisruptionBudget"),
            within,
        )),
        Box::pin(count_events(
            Api::<Secret>::namespaced(c.clone(), n),
            sel,
            lv("Secret"),
            within,
        )),
        Box::pin(count_events(
            Api::<RegionMirror>::namespaced(c.clone(), n),
            None,
            lv("RegionMirror"),
            within,
        )),
        Box::pin(events_from_now(c.clone(), within)),
    ]);
    let watch_kinds = [
        "ConfigMap",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "Secret",
        "RegionMirror",
        "Event",
    ];
    for (kind, counted) in watch_kinds.into_iter().zip(watches.await) {
        match counted {
            Ok(n) => {
                f.watch_events.insert(kind, n);
            }
            Err(e) => println!("watch of {kind}s failed: {e}"),
        }
    }
    operator.check_running()?;
    let after = snapshot(client).await?;
    f.changed = changed(&before.versions, &after.versions);
    f.ready_reasons = after.ready_reasons.clone();
    f.idle_rss_kib = operator.status_kib("VmRSS");
    f.idle_rss_anon_kib = operator.status_kib("RssAnon");
    f.idle_rss_file_kib = operator.status_kib("RssFile");
    f.peak_rss_kib = operator.status_kib("VmHWM").or(f.peak_rss_kib);
    f.rss_max_sampled_kib = Some(max_rss).filter(|&m| m > 0);
    let reconciles_after = operator.reconciles().await;
    if let (Some(b), Some(a)) = (&reconciles_before, &reconciles_after) {
        f.quiet_reconciles = Some(a.since(b));
    }
    f.total_reconciles = reconciles_after;
    if !f.changed.is_empty() {
        let shown: Vec<&str> = f.changed.iter().take(10).map(String::as_str).collect();
        println!(
            "changed during the quiet period ({}): {}{}",
            f.changed.len(),
            shown.join(", "),
            if f.changed.len() > 10 { ", ..." } else { "" }
        );
    }
    Ok(f)
}

/// The API server's requests since `before`, or nothing if either read failed.
async fn requests_since(
    client: &Client,
    before: &Result<apiserver::Profile, String>,
) -> Option<apiserver::Profile> {
    let after = apiserver::profile(client).await;
    match before
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|b| Ok(apiserver::since(&after?, b)))
    {
        Ok(p) => Some(p),
        Err(e) => {
            println!("cannot read the API server's request counters: {e}");
            None
        }
    }
}

/// Events (events.k8s.io/v1) created or changed in the namespace during `within`.
async fn events_from_now(client: Client, within: Duration) -> Result<u64, String> {
    let api = Api::<Event>::namespaced(client, NAMESPACE);
    let version = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(|e| e.to_string())?
        .metadata
        .resource_version
        .unwrap_or_default();
    count_events(api, None, version, within).await
}

fn kib(v: Option<u64>) -> String {
    match v {
        Some(k) => format!("{:.1} MiB", k as f64 / 1024.0),
        None => "n/a".to_string(),
    }
}

fn secs(v: Option<f64>) -> String {
    match v {
        Some(s) => format!("{s:.2} s"),
        None => "n/a".to_string(),
    }
}

/// The closing table.
pub fn table(f: &OperatorFigures) -> String {
    let mut out = String::new();
    let children: usize = f.expected_children.values().sum();
    let _ = writeln!(
        out,
        "== operator: {} RegionMirrors x {} managed zones (3 servers each), status refresh {} s",
        f.regions, f.zones_per_region, f.status_refresh_seconds
    );
    let rows: Vec<(String, String)> = vec![
        (
            "apply all regions (SSA, 16 at once)".into(),
            format!("{:.2} s", f.apply_seconds),
        ),
        (
            format!("every child exists ({children} objects)"),
            format!(
                "{} ({})",
                secs(f.children_seconds),
                KINDS
                    .iter()
                    .map(|k| format!("{} {k}", f.expected_children.get(k).copied().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "every status.observedGeneration == generation".into(),
            secs(f.statuses_seconds),
        ),
        (
            "CPU seconds until then, by process".into(),
            show_cpu(&f.cpu_converged),
        ),
        (
            "settled (no change over 5 s)".into(),
            secs(f.settled_seconds),
        ),
        (
            "regions' Ready condition when steady".into(),
            f.ready_reasons
                .iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "operator RSS before the regions".into(),
            kib(f.rss_start_kib),
        ),
        ("operator peak RSS (VmHWM)".into(), kib(f.peak_rss_kib)),
        (
            "operator idle RSS (after the quiet period)".into(),
            format!(
                "{} ({} anonymous, {} file-backed)",
                kib(f.idle_rss_kib),
                kib(f.idle_rss_anon_kib),
                kib(f.idle_rss_file_kib)
            ),
        ),
        (
            format!(
                "objects changed in {} s quiet (of {} watched)",
                f.quiet_seconds, f.objects_watched
            ),
            format!("{} ({:.1}/min)", f.changed.len(), f.writes_per_minute()),
        ),
        (
            "watch events in the quiet period".into(),
            format!(
                "{} ({:.1}/min; {})",
                f.watch_events.values().sum::<u64>(),
                f.events_per_minute(),
                f.watch_events
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "reconciles in the quiet period / in all".into(),
            match (&f.quiet_reconciles, &f.total_reconciles) {
                (Some(q), Some(t)) => format!(
                    "{} / {} ({} failed; full passes {} / {} ({}), the rest only observed)",
                    q.reconciles,
                    t.reconciles,
                    t.failures,
                    q.full_passes,
                    t.full_passes,
                    t.full_passes_why
                        .iter()
                        .map(|(why, n)| format!("{why} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => "n/a".into(),
            },
        ),
    ];
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    let _ = writeln!(
        out,
        "  (times from the first apply; operator log {})",
        f.operator_log.display()
    );
    if let Some(p) = &f.requests_converged {
        let _ = writeln!(
            out,
            "  API server requests until every child and status was there (its /metrics):"
        );
        out.push_str(&apiserver::render(p, 16));
    }
    out.push_str(&render(&f.goal_rows()));
    out
}

/// Goals of issue 11: idle RSS at 100 regions; children, statuses, peak RSS
/// and quiet writes at 1000 regions.
pub const IDLE_RSS_GOAL_MIB: f64 = 30.0;
pub const CHILDREN_GOAL_SECONDS: f64 = 60.0;
pub const STATUSES_GOAL_SECONDS: f64 = 90.0;
pub const PEAK_RSS_GOAL_MIB: f64 = 150.0;

impl OperatorFigures {
    /// The rows of issue 11's table this benchmark measures; each goal names
    /// the region count the issue set it for.
    pub fn goal_rows(&self) -> Vec<GoalRow> {
        let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
        let n = self.regions;
        let at_most = |v: Option<f64>, goal: f64| v.map(|v| v <= goal);
        vec![
            GoalRow::new(
                format!("operator idle RSS at {n} regions"),
                kib(self.idle_rss_kib),
                format!("<= {IDLE_RSS_GOAL_MIB} MiB at 100 regions"),
                at_most(mib(self.idle_rss_kib), IDLE_RSS_GOAL_MIB),
            ),
            GoalRow::new(
                format!("operator at {n} regions x 3 zones: every child"),
                secs(self.children_seconds),
                format!("<= {CHILDREN_GOAL_SECONDS} s at 1000 regions"),
                at_most(self.children_seconds, CHILDREN_GOAL_SECONDS),
            ),
            GoalRow::new(
                format!("operator at {n} regions x 3 zones: every status"),
                secs(self.statuses_seconds),
                format!("<= {STATUSES_GOAL_SECONDS} s at 1000 regions"),
                at_most(self.statuses_seconds, STATUSES_GOAL_SECONDS),
            ),
            GoalRow::new(
                format!("operator at {n} regions x 3 zones: peak RSS"),
                kib(self.peak_rss_kib),
                format!("<= {PEAK_RSS_GOAL_MIB} MiB at 1000 regions"),
                at_most(mib(self.peak_rss_kib), PEAK_RSS_GOAL_MIB),
            ),
            match &self.unconverged {
                None => GoalRow::new(
                    format!("operator at {n} regions x 3 zones: writes when quiet"),
                    format!("{} in {} s", self.changed.len(), self.quiet_seconds),
                    "0",
                    Some(self.changed.is_empty()),
                ),
                Some(note) => GoalRow::new(
                    format!("operator at {n} regions x 3 zones: writes when quiet"),
                    format!("not measured ({note})"),
                    "0",
                    None,
                ),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_region_is_valid_and_has_three_managed_zones() {
        let mut region = bench_region(7);
        assert_eq!(region.name_any(), "r007");
        region.metadata.namespace = Some(NAMESPACE.to_string());
        region.metadata.uid = Some("uid-7".to_string());
        crate::api::validate::region(&region, None).expect("valid");
        let expected = expected_children(&region).unwrap();
        let count = |k: &str| expected.get(k).map_or(0, Vec::len);
        assert_eq!(count("ConfigMap"), 3);
        assert_eq!(count("StatefulSet"), 3);
        assert_eq!(count("PodDisruptionBudget"), 3);
        // Headless and client per zone, plus the source's leafnode Service.
        assert_eq!(count("Service"), 7);
        assert_eq!(count("Secret"), 2);
    }

    #[test]
    fn changed_objects_include_new_and_gone_ones() {
        let before = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string()),
        ]);
        let after = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "5".to_string()),
            ("d".to_string(), "4".to_string()),
        ]);
        assert_eq!(changed(&before, &after), ["b", "c", "d"]);
        assert!(changed(&before, &before).is_empty());
    }

    #[test]
    fn reconcile_counts_read_the_regionmirror_series() {
        let text = "# HELP natsregion_reconciles Reconciles run\n\
            natsregion_reconciles_total{controller=\"regionmirror\"} 312\n\
            natsregion_reconciles_total{controller=\"partitiondrill\"} 9\n\
            natsregion_reconcile_failures_total{controller=\"regionmirror\",reason=\"Kube\"} 2\n\
            natsregion_region_full_passes_total{why=\"never_applied\"} 30\n\
            natsregion_region_full_passes_total{why=\"child_changed\"} 10\n";
        let why = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(w, n)| (w.to_string(), *n))
                .collect::<BTreeMap<_, _>>()
        };
        let counts = reconcile_counts(text);
        assert_eq!(
            counts,
            ReconcileCounts {
                reconciles: 312,
                failures: 2,
                full_passes: 40,
                full_passes_why: why(&[("never_applied", 30), ("child_changed", 10)]),
            }
        );
        let before = ReconcileCounts {
            reconciles: 300,
            failures: 2,
            full_passes: 39,
            full_passes_why: why(&[("never_applied", 30), ("child_changed", 9)]),
        };
        assert_eq!(
            counts.since(&before),
            ReconcileCounts {
                reconciles: 12,
                failures: 0,
                full_passes: 1,
                full_passes_why: why(&[("child_changed", 1)]),
            }
        );
    }
}
