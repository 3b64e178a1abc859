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
use kube::{Client, ResourceExt};

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
    #[error("{what} not reached within {seconds}s")]
    Timeout { what: String, seconds: u64 },
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
    /// Longest wait for a created region to get Ready, and for the drill to end.
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for ClusterDrillOptions {
    fn default() -> Self {
        Self {
            file: PathBuf::new(),
            namespace: None,
            report: None,
            junit: None,
            progress: true,
            timeout: Duration::from_secs(1800),
            poll: Duration::from_millis(500),
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
    let ns = drill
        .namespace()
        .or(opts.namespace.clone())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let region_name = drill.spec.region_ref.name.clone();
    let drill_name = drill.name_any();
    let regions: Api<RegionMirror> = Api::namespaced(client.clone(), &ns);
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();

    let target = ensure_region(&regions, &ns, &region_name, region, opts).await?;
    crate::api::validate::drill(&drill, &target).map_err(|source| {
        ClusterDrillError::DrillDoesNotFit {
            region: format!("{ns}/{region_name}"),
            source,
        }
    })?;
    let created = recreate_drill(&drills, drill, opts).await?;
    eprintln!("drill {ns}/{drill_name} applied; following it");
    let status = follow(&drills, &created, opts).await?;
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
) -> Result<RegionMirror, ClusterDrillError> {
    let existing = regions
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read RegionMirror {name}")))?;
    let mut region = match (existing, from_file) {
        (Some(existing), from_file) => {
            if from_file.is_some() {
                eprintln!(
                    "using the existing RegionMirror {name} (the file's copy is not applied)"
                );
            } else {
                eprintln!("using the existing RegionMirror {name}");
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
    eprintln!("created RegionMirror {name}; waiting for it to be Ready");
    let start = Instant::now();
    loop {
        let r = regions
            .get(name)
            .await
            .map_err(kube_err(format!("read RegionMirror {name}")))?;
        if r.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, "Ready"))
        {
            return Ok(r);
        }
        if start.elapsed() > opts.timeout {
            return Err(ClusterDrillError::Timeout {
                what: format!("RegionMirror {name} Ready"),
                seconds: opts.timeout.as_secs(),
            });
        }
        tokio::time::sleep(opts.poll).await;
    }
}

/// Deletes a finished drill of the same name (and its reports, which it
/// owns) and creates the file's, so this invocation gets a run of its own.
async fn recreate_drill(
    drills: &Api<PartitionDrill>,
    mut drill: PartitionDrill,
    opts: &ClusterDrillOptions,
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
        let start = Instant::now();
        while drills
            .get_opt(&name)
            .await
            .map_err(kube_err(format!("read PartitionDrill {name}")))?
            .is_some()
        {
            if start.elapsed() > Duration::from_secs(120) {
                return Err(ClusterDrillError::Timeout {
                    what: format!("deletion of the previous PartitionDrill {name}"),
                    seconds: 120,
                });
            }
            tokio::time::sleep(opts.poll).await;
        }
    }
    drill.metadata.resource_version = None;
    drills
        .create(&PostParams::default(), &drill)
        .await
        .map_err(kube_err(format!("create PartitionDrill {name}")))
}

/// Polls the drill until its run completed, feeding the progress line.
async fn follow(
    drills: &Api<PartitionDrill>,
    created: &PartitionDrill,
    opts: &ClusterDrillOptions,
) -> Result<PartitionDrillStatus, ClusterDrillError> {
    let name = created.name_any();
    let steps = created.spec.steps();
    let bar = opts.progress.then(|| TerminalProgress::new(steps.len()));
    let mut shown_step: Option<usize> = None;
    let start = Instant::now();
    let result = loop {
        let d = drills
            .get(&name)
            .await
            .map_err(kube_err(format!("read PartitionDrill {name}")))?;
        if d.uid() != created.uid() {
            break Err(ClusterDrillError::Busy(format!(
                "{name} (replaced by someone else while followed)"
            )));
        }
        if let Some(s) = d.status.as_ref() {
            if let Some(bar) = &bar {
                show(bar, s, &steps, &mut shown_step);
            }
            let done = s.conditions.iter().any(|c| {
                c.type_ == COMPLETED
                    && c.status == crate::api::conditions::TRUE
                    && c.observed_generation == d.metadata.generation
            });
            if done {
                break Ok(s.clone());
            }
        }
        if start.elapsed() > opts.timeout {
            break Err(ClusterDrillError::Timeout {
                what: format!("the end of drill {name}"),
                seconds: opts.timeout.as_secs(),
            });
        }
        tokio::time::sleep(opts.poll).await;
    };
    if let Some(bar) = &bar {
        bar.finish();
    }
    result
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
