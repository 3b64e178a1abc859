//! `natsregion drill FILE` (no `--local`): runs the file's PartitionDrill in
//! the cluster of the current kubeconfig through the operator there, follows
//! it with the same progress line and verdict table as a local drill, and
//! writes the report, SVG and JUnit from what the operator stored.
//!
//! The region is used as it is when it exists (a CI job must not reshape a
//! region others rely on), so the file may leave it out; a missing one is
//! created from the file and waited for. The drill is checked against the
//! region it will run on, and recreated, so each invocation is one fresh run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, Config, ResourceExt};

use crate::api::conditions::is_true;
use crate::api::{PartitionDrill, PartitionDrillStatus, RegionMirror, Step};
use crate::drill::engine::{Observer, Progress};
use crate::drill::report;
use crate::operator::drill::conditions::COMPLETED;
use crate::operator::drill::reports;

use super::drill_file;
use super::junit;
use super::progress::TerminalProgress;

#[derive(Debug, thiserror::Error)]
pub enum ClusterDrillError {
    #[error(transparent)]
    File(#[from] drill_file::DrillFileError),
    #[error(
        "RegionMirror {namespace}/{name} (the drill's regionRef) does not exist: apply it first, or put it in the drill file to have it created"
    )]
    MissingRegion { namespace: String, name: String },
    #[error("the drill does not fit RegionMirror {region} in the cluster: {source}")]
    DrillDoesNotFit {
        region: String,
        #[source]
        source: crate::api::validate::SpecError,
    },
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("drill {0} is running; wait for it or abort it (annotation natsregion.io/abort=true)")]
    Busy(String),
    #[error("{what} not reached within {seconds}s (--timeout)")]
    Timeout { what: String, seconds: u64 },
    #[error("{what}: {source}")]
    Watch {
        what: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
    #[error(
        "the file puts PartitionDrill {drill} in namespace {file} but --namespace says {flag}: drop one, or make them agree"
    )]
    NamespaceConflict {
        drill: String,
        file: String,
        flag: String,
    },
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error("stored report: {0}")]
    Stored(#[from] reports::ReportStoreError),
    #[error(transparent)]
    Junit(#[from] junit::JunitError),
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterDrillError {
    let what = what.into();
    move |source| ClusterDrillError::Kube { what, source }
}

#[derive(Clone, Debug)]
pub struct ClusterDrillOptions {
    pub file: PathBuf,
    /// Namespace when the file's objects name none (default: the kubeconfig's).
    pub namespace: Option<String>,
    pub report: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub progress: bool,
    /// Off a terminal, time between two heartbeat lines (default 10 s).
    pub heartbeat: Option<Duration>,
    /// Longest wait for a created region to get Ready, and for the drill to end.
    pub timeout: Duration,
}

/// Longest wait for the drill's end (and a created region's Ready) when
/// `--timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Which cluster to talk to, as kubectl's `--kubeconfig` and `--context`.
#[derive(Clone, Debug, Default)]
pub struct ClusterAccess {
    /// A kubeconfig file instead of $KUBECONFIG / ~/.kube/config.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig instead of its current-context.
    pub context: Option<String>,
}

impl ClusterAccess {
    /// A client as kubectl would build it from the same flags: neither flag
    /// means the usual inference (kubeconfig, else in-cluster).
    pub async fn client(&self) -> Result<Client, String> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
            }
            (None, Some(context)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("--context {context}: {e}"))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| format!("no cluster in the current kubeconfig: {e}"))?,
        };
        Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
    }
}

impl Default for ClusterDrillOptions {
    fn default() -> Self {
        Self {
            file: PathBuf::new(),
            namespace: None,
            report: None,
            junit: None,
            progress: true,
            heartbeat: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What the run ended with.
#[derive(Clone, Debug)]
pub struct ClusterOutcome {
    pub drill: String,
    pub region: String,
    pub backend: String,
    pub status: PartitionDrillStatus,
    /// The operator's stored report, when it could be read.
    pub report: Option<serde_json::Value>,
    pub wall_seconds: f64,
}

impl ClusterOutcome {
    pub fn passed(&self) -> bool {
        self.status.verdict == crate::api::Verdict::Passed
    }

    /// What `--report` writes: the operator's stored report, or the status
    /// when there is none (a precondition failed before the run).
    pub fn document(&self) -> serde_json::Value {
        self.report
            .clone()
            .unwrap_or_else(|| serde_json::to_value(&self.status).expect("a status serializes"))
    }

    pub fn table(&self) -> String {
        report::status_table(
            &self.drill,
            &self.region,
            &self.backend,
            &self.status,
            self.wall_seconds,
        )
    }
}

/// Runs the file's drill in the cluster `client` talks to.
pub async fn run(
    client: Client,
    opts: &ClusterDrillOptions,
) -> Result<ClusterOutcome, ClusterDrillError> {
    let drill_file::ClusterDrillFile { region, drill } = drill_file::load_for_cluster(&opts.file)?;
    // As kubectl apply: a namespace in the file and a different --namespace
    // is a mistake to point out, not one to settle silently.
    if let (Some(file), Some(flag)) = (drill.namespace(), &opts.namespace)
        && &file != flag
    {
        return Err(ClusterDrillError::NamespaceConflict {
            drill: drill.name_any(),
            file,
            flag: flag.clone(),
        });
    }
    let ns = drill
        .namespace()
        .or(opts.namespace.clone())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let region_name = drill.spec.region_ref.name.clone();
    let drill_name = drill.name_any();
    let regions: Api<RegionMirror> = Api::namespaced(client.clone(), &ns);
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    // From here on, so a region that takes long to get Ready shows in a CI
    // log too (the heartbeat), not only the drill's steps.
    let bar = opts
        .progress
        .then(|| TerminalProgress::new(drill.spec.steps().len(), opts.heartbeat));
    let say = |line: &str| match &bar {
        Some(bar) => bar.note(line),
        None => eprintln!("{line}"),
    };

    let target = ensure_region(&regions, &ns, &region_name, region, opts, &say).await?;
    crate::api::validate::drill(&drill, &target).map_err(|source| {
        ClusterDrillError::DrillDoesNotFit {
            region: format!("{ns}/{region_name}"),
            source,
        }
    })?;
    let created = recreate_drill(&drills, drill).await?;
    say(&format!("drill {ns}/{drill_name} applied; following it"));
    let status = follow(&drills, &created, bar.as_ref(), opts.timeout).await?;
    drop(bar);
    let wall_seconds = started.elapsed().as_secs_f64();

    let stored = match &status.report {
        Some(cm) => {
            let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
                Api::namespaced(client.clone(), &ns);
            let cm = api
                .get(cm)
                .await
                .map_err(kube_err(format!("read report ConfigMap {cm}")))?;
            Some(reports::decode(&cm)?)
        }
        None => None,
    };
    if let Some(t) = stored.as_ref().and_then(|s| s.truncated.as_ref()) {
        eprintln!("note: the stored report was cut to fit a ConfigMap: {t}");
    }
    let report_json = stored
        .as_ref()
        .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s.json).ok());
    if let Some(path) = &opts.report {
        match (&report_json, &stored) {
            (Some(json), Some(stored)) => {
                report::write_json(json, path)?;
                let svg = path.with_extension("svg");
                if let Some(text) = &stored.svg {
                    std::fs::write(&svg, text).map_err(|e| report::ReportError::Write {
                        path: svg.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
                eprintln!("report: {} and {}", path.display(), svg.display());
            }
            // No stored report (a precondition failed): the status is the report.
            _ => report::write_json(&status, path)?,
        }
    }
    let backend = format!("{:?}", created.spec.fault.backend);
    if let Some(path) = &opts.junit {
        let suite = junit::Suite {
            name: format!("{drill_name} on {region_name}"),
            status: &status,
            seconds: wall_seconds,
        };
        junit::write(&[suite], path)?;
        eprintln!("junit: {}", path.display());
    }
    Ok(ClusterOutcome {
        drill: drill_name,
        region: region_name,
        backend: backend.to_lowercase(),
        status,
        report: report_json,
        wall_seconds,
    })
}

/// The region the drill runs on: the cluster's when it exists, else the
/// file's, created and waited for until Ready.
async fn ensure_region(
    regions: &Api<RegionMirror>,
    namespace: &str,
    name: &str,
    from_file: Option<RegionMirror>,
    opts: &ClusterDrillOptions,
    say: &dyn Fn(&str),
) -> Result<RegionMirror, ClusterDrillError> {
    let existing = regions
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read RegionMirror {name}")))?;
    let mut region = match (existing, from_file) {
        (Some(existing), from_file) => {
            if from_file.is_some() {
                say(&format!(
                    "using the existing RegionMirror {name} (the file's copy is not applied)"
                ));
            } else {
                say(&format!("using the existing RegionMirror {name}"));
            }
            return Ok(existing);
        }
        (None, None) => {
            return Err(ClusterDrillError::MissingRegion {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        (None, Some(region)) => region,
    };
    region.metadata.resource_version = None;
    regions
        .create(&PostParams::default(), &region)
        .await
        .map_err(kube_err(format!("create RegionMirror {name}")))?;
    say(&format!(
        "created RegionMirror {name}; waiting for it to be Ready"
    ));
    // A region deleted meanwhile ends the wait too (and is reported missing).
    let ready = |r: Option<&RegionMirror>| {
        r.is_none_or(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Ready"))
        })
    };
    let what = format!("RegionMirror {name} Ready");
    match wait_for(regions, name, &what, opts.timeout, ready).await? {
        Some(r) => Ok(r),
        None => Err(ClusterDrillError::MissingRegion {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}

/// [`await_condition`] (a watch, so no polling interval) within `within`.
async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    within: Duration,
    cond: impl Condition<K>,
) -> Result<Option<K>, ClusterDrillError>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    match tokio::time::timeout(within, await_condition(api.clone(), name, cond)).await {
        Err(_) => Err(ClusterDrillError::Timeout {
            what: what.to_string(),
            seconds: within.as_secs(),
        }),
        Ok(Err(source)) => Err(ClusterDrillError::Watch {
            what: format!("watch {what}"),
            source,
        }),
        Ok(Ok(found)) => Ok(found),
    }
}

/// Deletes a finished drill of the same name (and its reports, which it
/// owns) and creates the file's, so this invocation gets a run of its own.
async fn recreate_drill(
    drills: &Api<PartitionDrill>,
    mut drill: PartitionDrill,
) -> Result<PartitionDrill, ClusterDrillError> {
    let name = drill.name_any();
    if let Some(old) = drills
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("read PartitionDrill {name}")))?
    {
        let running = old.status.as_ref().is_some_and(|s| !s.phase.is_finished());
        if running {
            return Err(ClusterDrillError::Busy(name));
        }
        // Background deletion: foreground would wait on the garbage
        // collector for the old reports, which it removes in time anyway.
        drills
            .delete(&name, &DeleteParams::default())
            .await
            .map_err(kube_err(format!(
                "delete the previous PartitionDrill {name}"
            )))?;
        let uid = old.uid().unwrap_or_default();
        wait_for(
            drills,
            &name,
            &format!("deletion of the previous PartitionDrill {name}"),
            Duration::from_secs(120),
            conditions::is_deleted(&uid),
        )
        .await?;
    }
    drill.metadata.resource_version = None;
    drills
        .create(&PostParams::default(), &drill)
        .await
        .map_err(kube_err(format!("create PartitionDrill {name}")))
}

/// Watches the drill until its run completed, feeding the progress display
/// with every status the watch delivers.
async fn follow(
    drills: &Api<PartitionDrill>,
    created: &PartitionDrill,
    bar: Option<&TerminalProgress>,
    timeout: Duration,
) -> Result<PartitionDrillStatus, ClusterDrillError> {
    let name = created.name_any();
    let steps = created.spec.steps();
    let shown_step = std::sync::Mutex::new(None::<usize>);
    // Ends the wait on completion, and on deletion or replacement, which
    // the check after it tells apart.
    let ended = |d: Option<&PartitionDrill>| {
        let Some(d) = d.filter(|d| d.uid() == created.uid()) else {
            return true;
        };
        let Some(s) = d.status.as_ref() else {
            return false;
        };
        if let Some(bar) = bar {
            show(bar, s, &steps, &mut shown_step.lock().expect("shown step"));
        }
        s.conditions.iter().any(|c| {
            c.type_ == COMPLETED
                && c.status == crate::api::conditions::TRUE
                && c.observed_generation == d.metadata.generation
        })
    };
    let what = format!("the end of drill {name}");
    let result = wait_for(drills, &name, &what, timeout, ended).await;
    if let Some(bar) = bar {
        bar.finish();
    }
    match result? {
        Some(d) if d.uid() == created.uid() => Ok(d.status.unwrap_or_default()),
        _ => Err(ClusterDrillError::Busy(format!(
            "{name} (deleted or replaced by someone else while followed)"
        ))),
    }
}

fn show(
    bar: &TerminalProgress,
    s: &PartitionDrillStatus,
    steps: &[Step],
    shown: &mut Option<usize>,
) {
    let index = s.step_index.map(|i| i.max(0) as usize);
    if let Some(i) = index
        && *shown != Some(i)
        && let Some(step) = steps.get(i)
    {
        bar.step(i, steps.len(), *step);
        *shown = Some(i);
    }
    bar.progress(&Progress {
        step: s.current_step.clone().unwrap_or_default(),
        attempted: s.totals.attempted.max(0) as u64,
        acked: s.totals.acked.max(0) as u64,
        reads: vec![("all".to_string(), s.totals.read.max(0) as u64)],
        partitioned: s.faults.iter().any(|f| f.healed_at.is_none()),
    });
}
