//! `natsregion-bench resume`: catch-up after a heal, with and without the
//! drill's prompt resume of a silent mirror (issue 24), on local processes:
//! a 1-server source zone, Toxiproxy, a 3-server mirror zone holding an R3
//! mirror, the default leafnode reconnect interval, servers logging at
//! debug level.
//!
//! Per run it prints the catch-up (heal → mirror at the source's last
//! sequence, the engine's own figure), the drill's verdict (its
//! message-by-message checks and stored-stream audit), and from the mirror
//! zone's logs when the mirror's consumer retries came relative to the
//! relink: a retry sent into the cut (the 10 s health check) leaves the
//! mirror silent ~40 s after the link is back; none, and it resumes at once.

use std::path::PathBuf;

use crate::api::{PartitionDrill, RegionMirror, Verdict};
use crate::cli::drill_file;
use crate::cli::local_drill::{LocalFaults, LocalRuntime};
use crate::drill::engine::{self, DrillReport, EngineOptions, RESUME_MIRRORS_AFTER};
use crate::drill::runtime::Runtime;
use crate::local::{LocalRegion, LocalRegionOptions};
use crate::nats::connect::{ConnectSettings, ZoneClient, connect};

use super::{BenchError, median, min_max};

/// The mirror zone and its replicas.
pub const MIRROR_ZONE: &str = "b";
pub const MIRROR_REPLICAS: usize = 3;

/// The region and a drill that holds its cut `hold` seconds. The spec keeps
/// R1 (its source zone has one server); [`ResumeRegion::start`] creates the
/// mirror with three replicas itself.
pub fn spec(hold: u32) -> Result<(RegionMirror, PartitionDrill), BenchError> {
    let yaml = format!(
        r#"
apiVersion: natsregion.io/v1alpha1
kind: RegionMirror
metadata: {{name: resume}}
spec:
  stream: {{name: EVENTS, subjects: ["events.>"], replicas: 1}}
  zones:
    - {{name: a, role: source, servers: 1}}
    - {{name: {MIRROR_ZONE}, role: mirror, servers: 3}}
---
apiVersion: natsregion.io/v1alpha1
kind: PartitionDrill
metadata: {{name: resume}}
spec:
  regionRef: {{name: resume}}
  fault: {{backend: toxiproxy, holdSeconds: {hold}, deadlineSeconds: 120}}
  workload: {{messagesPerPhase: 500, ratePerSecond: 500}}
  timeouts: {{stepSeconds: 30, catchUpSeconds: 60}}
  steps: [produce, partition, produce, heal, wait-for-catch-up, verify]
"#
    );
    drill_file::parse("resume.yaml", &yaml).map_err(|e| BenchError(format!("resume drill: {e}")))
}

/// The region of [`spec`], running, with its streams: the source R1, the
/// mirror R3.
pub struct ResumeRegion {
    faults: LocalFaults,
    runtime: LocalRuntime,
    /// The mirror zone's server logs.
    pub mirror_logs: Vec<PathBuf>,
    /// The source zone's monitoring endpoints (`/leafz` lists the links).
    pub source_monitors: Vec<String>,
}

impl ResumeRegion {
    pub async fn start(
        region: &RegionMirror,
        drill: &PartitionDrill,
        debug_logs: bool,
    ) -> Result<Self, BenchError> {
        let faults = LocalFaults::start(drill, true)
            .await
            .map_err(|e| BenchError(format!("toxiproxy: {e}")))?;
        let local = LocalRegion::start(
            &region.spec,
            faults.network(),
            LocalRegionOptions {
                debug_logs,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BenchError(format!("region: {e}")))?;
        let mirror_logs = local
            .zone(MIRROR_ZONE)
            .map(|z| z.servers().iter().map(|s| s.log_path.clone()).collect())
            .unwrap_or_default();
        let source_monitors = local.source_zone().monitor_urls();
        let runtime = LocalRuntime::new(local);
        let settings = ConnectSettings::default();
        for z in runtime.zones() {
            let conn = connect(&z.endpoint, &settings)
                .await
                .map_err(|e| BenchError(format!("connect {}: {e}", z.name())))?;
            conn.js
                .create_stream(stream_config(region, z.name())?)
                .await
                .map_err(|e| BenchError(format!("stream in zone {}: {e}", z.name())))?;
        }
        Ok(Self {
            faults,
            runtime,
            mirror_logs,
            source_monitors,
        })
    }

    /// A client of `zone`.
    pub async fn connect(&self, zone: &str) -> Result<ZoneClient, BenchError> {
        let access = self
            .runtime
            .zones()
            .into_iter()
            .find(|z| z.name() == zone)
            .ok_or_else(|| BenchError(format!("zone {zone} is not running")))?;
        connect(&access.endpoint, &ConnectSettings::default())
            .await
            .map_err(|e| BenchError(format!("connect {zone}: {e}")))
    }

    /// A client of each server of `zone` (each crosses its own leafnode link).
    pub async fn connect_each(&self, zone: &str) -> Vec<ZoneClient> {
        match self.runtime.zones().into_iter().find(|z| z.name() == zone) {
            Some(access) => {
                crate::nats::connect::connect_each(&access.endpoint, &ConnectSettings::default())
                    .await
            }
            None => Vec::new(),
        }
    }

    /// The fault backend whose proxies carry the mirror zone's leafnode links.
    pub fn faults(&self) -> &LocalFaults {
        &self.faults
    }

    /// One drill; `resume` turns the prompt resume on.
    pub async fn drill(
        &self,
        region: &RegionMirror,
        drill: &PartitionDrill,
        resume: bool,
    ) -> DrillReport {
        let opts = EngineOptions {
            provision: false,
            resume_mirrors_after: resume.then_some(RESUME_MIRRORS_AFTER),
            ..Default::default()
        };
        engine::run(
            region,
            drill,
            &self.runtime,
            self.faults.backend.as_ref(),
            &engine::Silent,
            opts,
        )
        .await
    }

    pub async fn stop(self) -> Result<(), BenchError> {
        self.runtime
            .into_inner()
            .stop()
            .await
            .map_err(|e| BenchError(format!("stopping the region: {e}")))
    }
}

/// The stream zone `zone` of [`spec`]'s region holds: the source's as planned,
/// a mirror's with [`MIRROR_REPLICAS`].
pub fn stream_config(
    region: &RegionMirror,
    zone: &str,
) -> Result<async_nats::jetstream::stream::Config, BenchError> {
    let spec = region
        .spec
        .zone(zone)
        .ok_or_else(|| BenchError(format!("zone {zone} not in the spec")))?;
    Ok(if spec.is_source() {
        crate::plan::source_stream_config(&region.spec)
    } else {
        let mut c = crate::plan::mirror_stream_config(&region.spec, "a", spec);
        c.num_replicas = MIRROR_REPLICAS;
        c
    })
}

/// What the mirror zone's debug logs say about one cut.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogTimes {
    /// Cut → each "Retrying mirror consumer" line before the relink.
    pub retries_in_cut: Vec<f64>,
    /// Heal → the first "Leafnode connection created" after the heal.
    pub relink: Option<f64>,
    /// Heal → the first retry line after that relink.
    pub retry_after_relink: Option<f64>,
}

const RETRY_LINE: &str = "Retrying mirror consumer for";
const RELINK_LINE: &str = "Leafnode connection created";

/// A nats-server log line's time (`[pid] 2026/12/07 00:31:02.123456 [DBG] ...`,
/// in the host's local time).
fn line_time(line: &str) -> Option<jiff::Timestamp> {
    let rest = line.split_once("] ")?.1;
    let stamp = rest.get(..26)?;
    let dt = jiff::civil::DateTime::strptime("%Y/%m/%d %H:%M:%S%.f", stamp).ok()?;
    dt.to_zoned(jiff::tz::TimeZone::system())
        .ok()
        .map(|z| z.timestamp())
}

/// Retry and relink lines of `texts` (server logs) around one cut.
pub fn log_times(texts: &[String], cut: jiff::Timestamp, heal: jiff::Timestamp) -> LogTimes {
    let secs = |from: jiff::Timestamp, to: jiff::Timestamp| to.duration_since(from).as_secs_f64();
    let mut retries = Vec::new();
    let mut relinks = Vec::new();
    for line in texts.iter().flat_map(|t| t.lines()) {
        let Some(at) = line_time(line) else { continue };
        if at < cut {
            continue;
        }
        if line.contains(RETRY_LINE) {
            retries.push(at);
        } else if line.contains(RELINK_LINE) && at >= heal {
            relinks.push(at);
        }
    }
    retries.sort();
    let relink = relinks.into_iter().min();
    let before = |at: &jiff::Timestamp| relink.is_none_or(|r| *at < r);
    LogTimes {
        retries_in_cut: retries
            .iter()
            .filter(|a| before(a))
            .map(|a| secs(cut, *a))
            .collect(),
        relink: relink.map(|r| secs(heal, r)),
        retry_after_relink: retries.iter().find(|a| !before(a)).map(|a| secs(heal, *a)),
    }
}

/// One drill of the benchmark.
#[derive(Clone, Debug)]
pub struct ResumeRun {
    pub catch_up_seconds: Option<f64>,
    pub verdict: Verdict,
    /// What the drill's evidence says it did (`MirrorResume::describe`).
    pub resumes: Vec<String>,
    pub logs: LogTimes,
}

/// One mode: a hold, with or without the resume.
#[derive(Clone, Debug)]
pub struct ResumeFigure {
    pub hold_seconds: u32,
    pub resume: bool,
    pub runs: Vec<ResumeRun>,
}

impl ResumeFigure {
    pub fn label(&self) -> String {
        format!(
            "hold {}s, {}",
            self.hold_seconds,
            if self.resume { "resume" } else { "do nothing" }
        )
    }

    fn timed(&self) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.catch_up_seconds)
            .collect()
    }
}

/// The issue's four modes.
pub const MODES: [(u32, bool); 4] = [(25, false), (25, true), (5, false), (14, false)];

/// The modes to run: all of [`MODES`], or with `resume_only` just the one
/// issue 24's local goal is about (hold 25 s, resume), e.g. for its 20 runs.
pub fn modes(resume_only: bool) -> Vec<(u32, bool)> {
    MODES
        .iter()
        .copied()
        .filter(|&(_, resume)| resume || !resume_only)
        .collect()
}

/// `runs` drills of every mode of `modes`, in rounds (each mode once per
/// round) on one region, printing each run as it ends.
pub async fn run(runs: usize, modes: &[(u32, bool)]) -> Result<Vec<ResumeFigure>, BenchError> {
    let first_hold = modes
        .first()
        .ok_or_else(|| BenchError("no mode to run".into()))?
        .0;
    let (region, first) = spec(first_hold)?;
    println!(
        "== catch-up after heal, with and without the prompt resume ({runs} drill(s) per mode; 1-server source, Toxiproxy, 3-server mirror zone, R3 mirror, reconnect {}s, the product's default)",
        region.spec.leafnode.reconnect_interval_seconds
    );
    let local = ResumeRegion::start(&region, &first, true).await?;
    let mut figures: Vec<ResumeFigure> = modes
        .iter()
        .map(|&(hold_seconds, resume)| ResumeFigure {
            hold_seconds,
            resume,
            runs: Vec::new(),
        })
        .collect();
    let result = async {
        for round in 1..=runs {
            for f in &mut figures {
                let (_, drill) = spec(f.hold_seconds)?;
                let report = local.drill(&region, &drill, f.resume).await;
                let run = measured(&report, &local.mirror_logs);
                println!("  {} run {round}: {}", f.label(), describe(&run));
                f.runs.push(run);
            }
        }
        Ok::<_, BenchError>(())
    }
    .await;
    let stopped = local.stop().await;
    result?;
    stopped?;
    Ok(figures)
}

fn measured(report: &DrillReport, logs: &[PathBuf]) -> ResumeRun {
    let texts: Vec<String> = logs
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    let fault = report.status.faults.last();
    let logs = match fault.and_then(|f| Some((f.injected_at.0, f.healed_at.as_ref()?.0))) {
        Some((cut, heal)) => log_times(&texts, cut, heal),
        None => LogTimes::default(),
    };
    ResumeRun {
        catch_up_seconds: report.status.totals.catch_up_seconds,
        verdict: report.status.verdict,
        resumes: report
            .evidence
            .catch_up
            .iter()
            .flat_map(|c| c.resumes.iter().map(|r| r.describe()))
            .collect(),
        logs,
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into())
}

fn describe(r: &ResumeRun) -> String {
    let in_cut: Vec<String> = r
        .logs
        .retries_in_cut
        .iter()
        .map(|s| format!("cut+{s:.1}s"))
        .collect();
    format!(
        "catch-up {} ({:?}); retry in the cut: {}; relink heal+{}; first retry after relink heal+{}{}",
        secs(r.catch_up_seconds),
        r.verdict,
        if in_cut.is_empty() {
            "none".to_string()
        } else {
            in_cut.join(", ")
        },
        secs(r.logs.relink),
        secs(r.logs.retry_after_relink),
        if r.resumes.is_empty() {
            String::new()
        } else {
            format!("; {}", r.resumes.join("; "))
        }
    )
}

/// Median and range of each mode, and how its runs split by whether a
/// retry went into the cut.
pub fn table(figures: &[ResumeFigure]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<24} {:>5} {:>8} {:>15} {:>10} {:>16}",
        "mode", "runs", "median", "range", "<= 5s", "retry in cut"
    );
    for f in figures {
        let timed = f.timed();
        let (lo, hi) = min_max(&timed);
        let range = if timed.is_empty() {
            "-".to_string()
        } else {
            format!("{lo:.1}-{hi:.1}s")
        };
        let fast = timed.iter().filter(|s| **s <= 5.0).count();
        let in_cut = f
            .runs
            .iter()
            .filter(|r| !r.logs.retries_in_cut.is_empty())
            .count();
        let clean = f
            .runs
            .iter()
            .filter(|r| r.verdict == Verdict::Passed)
            .count();
        let _ = writeln!(
            t,
            "{:<24} {:>5} {:>7.1}s {:>15} {:>10} {:>16}   passed {clean}/{}",
            f.label(),
            f.runs.len(),
            median(&timed),
            range,
            format!("{fast}/{}", f.runs.len()),
            format!("{in_cut}/{}", f.runs.len()),
            f.runs.len(),
        );
    }
    // Issue 24's local goal, for the mode the resume is for.
    if let Some(f) = figures.iter().find(|f| f.resume) {
        let timed = f.timed();
        let within = timed.iter().filter(|s| **s <= 3.0).count();
        let row = super::goals::GoalRow::new(
            format!("local catch-up, {}", f.label()),
            format!("{within}/{} runs <= 3 s", f.runs.len()),
            "<= 3 s in 20 of 20",
            Some(f.runs.len() >= 20 && within == f.runs.len()),
        );
        t.push('\n');
        t.push_str(&super::goals::render(&[row]));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_only_keeps_the_goal_mode() {
        assert_eq!(modes(true), vec![(25, true)]);
        assert_eq!(modes(false), MODES.to_vec());
    }

    #[test]
    fn the_resume_drills_parse() {
        for (hold, _) in MODES {
            spec(hold).expect("valid");
        }
    }

    #[test]
    fn the_table_prints_each_mode_and_the_goal_beside_the_resume() {
        let run = |s: f64| ResumeRun {
            catch_up_seconds: Some(s),
            verdict: Verdict::Passed,
            resumes: Vec::new(),
            logs: LogTimes::default(),
        };
        let figures = vec![
            ResumeFigure {
                hold_seconds: 25,
                resume: false,
                runs: vec![run(33.0), run(34.0)],
            },
            ResumeFigure {
                hold_seconds: 25,
                resume: true,
                runs: vec![run(2.0), run(4.0)],
            },
        ];
        let t = table(&figures);
        assert!(
            t.contains("hold 25s, do nothing") && t.contains("33.5s"),
            "{t}"
        );
        assert!(
            t.contains("1/2 runs <= 3 s") && t.trim_end().ends_with("NO"),
            "{t}"
        );
    }

    #[test]
    fn retries_are_placed_around_the_relink() {
        let tz = jiff::tz::TimeZone::system();
        let at = |s: &str| {
            jiff::civil::DateTime::strptime("%Y/%m/%d %H:%M:%S%.f", s)
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp()
        };
        let log = "\
[1] 2026/12/07 00:00:01.000000 [DBG] Retrying mirror consumer for '$G > EVENTS'
[1] 2026/12/07 00:00:15.500000 [DBG] Retrying mirror consumer for '$G > EVENTS'
[1] 2026/12/07 00:00:26.000000 [INF] 127.0.0.1:1 - lid:9 - Leafnode connection created for account: $G
[1] 2026/12/07 00:00:27.000000 [INF] 127.0.0.1:1 - lid:10 - Leafnode connection created for account: $G
[1] 2026/12/07 00:01:06.000000 [DBG] Retrying mirror consumer for '$G > EVENTS'
"
        .to_string();
        let t = log_times(
            &[log],
            at("2026/12/07 00:00:05.000000"),
            at("2026/12/07 00:00:25.000000"),
        );
        assert_eq!(t.retries_in_cut, vec![10.5]);
        assert_eq!(t.relink, Some(1.0));
        assert_eq!(t.retry_after_relink, Some(41.0));
    }
}
