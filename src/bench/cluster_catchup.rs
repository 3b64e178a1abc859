//! `natsregion-bench cluster-catchup`: issue 24's cluster goal, catch-up
//! ≤ 5 s in 10 of 10 drills per backend, measured on the real one-node
//! Kubernetes ([`crate::testenv::node`]): the chart installed with Helm
//! (image `natsregion:dev`), examples/region.yaml applied (the mirror zones'
//! topology pins dropped: one node is one zone), N drills of
//! examples/drill.yaml (networkPolicy), then `leafnode.proxy: toxiproxy`
//! rolled in and N drills of examples/drill-toxiproxy.yaml, every drill
//! with `fault.holdSeconds` set to the hold (25 s: the cut spans the
//! server's 10 s mirror health tick, the slow case before the resume).
//!
//! Per drill it reads what a user reads: `status.totals.catchUpSeconds`, the
//! verdict, and claim 2's `mirrorResumes` evidence (each stepdown, when the
//! link was seen back and when the mirror was stepped down, after the heal).
//! Root only, and one node per machine.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::goals::{GoalRow, render};
use super::{BenchError, median, min_max};
use crate::testenv::node::Node;
use crate::testenv::node::cluster::{
    self as cluster, apply_region, drill_manifest, install_operator, ready_operator_pod,
    remove_drill, run_drill, set_leafnode_proxy, wait_region_ready,
};

/// Issue 24's bound on a cluster drill's catch-up.
pub const GOAL_SECONDS: f64 = 5.0;
/// Runs per backend the goal is stated for.
pub const GOAL_RUNS: usize = 10;

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Drills per backend.
    pub runs: usize,
    /// `fault.holdSeconds` of every drill.
    pub hold_seconds: u32,
    /// Only this backend's drills (the toxiproxy ones still roll the proxy in).
    pub only: Option<String>,
    /// The default steps without `add-temporary-zone`, which comes after the
    /// catch-up is measured.
    pub no_temporary_zone: bool,
}

/// One stepdown, as claim 2's evidence tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stepdown {
    pub zone: String,
    /// Heal → the stepdown.
    pub at_seconds: f64,
    /// Heal → a server of the zone answered through its link again.
    pub link_up_seconds: f64,
}

/// One drill.
#[derive(Clone, Debug, Default)]
pub struct ClusterRun {
    pub name: String,
    pub catch_up_seconds: Option<f64>,
    pub phase: String,
    pub verdict: String,
    /// Apply → terminal phase.
    pub took: Duration,
    /// Claim 2's `mirrorResumes` evidence, as written.
    pub resumes: Option<String>,
    /// Set when the drill could not be run or awaited.
    pub error: Option<String>,
}

impl ClusterRun {
    pub fn stepdowns(&self) -> Vec<Stepdown> {
        self.resumes
            .as_deref()
            .map(parse_resumes)
            .unwrap_or_default()
    }
}

/// One backend's drills.
#[derive(Clone, Debug)]
pub struct BackendFigure {
    pub backend: &'static str,
    pub hold_seconds: u32,
    pub runs: Vec<ClusterRun>,
}

impl BackendFigure {
    fn timed(&self) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.catch_up_seconds)
            .collect()
    }

    /// Runs whose catch-up was measured and within [`GOAL_SECONDS`].
    pub fn within_goal(&self) -> usize {
        self.timed().iter().filter(|s| **s <= GOAL_SECONDS).count()
    }
}

/// The backends in the order they run: the region starts without a proxy.
const BACKENDS: [(&str, &str); 2] = [
    ("networkPolicy", "drill.yaml"),
    ("toxiproxy", "drill-toxiproxy.yaml"),
];

/// Starts the node, runs both backends' drills, drops the node and says
/// what it left behind, if anything.
pub async fn run(opts: &ClusterOptions) -> Result<Vec<BackendFigure>, BenchError> {
    Node::preflight().map_err(|e| BenchError(format!("cannot start the one-node cluster: {e}")))?;
    println!(
        "== catch-up on the one-node cluster: {} drill(s) per backend, holdSeconds {}; load average at start {}",
        opts.runs,
        opts.hold_seconds,
        load_average()
    );
    let started = Instant::now();
    let node = Node::start()
        .await
        .map_err(|e| BenchError(format!("one-node cluster: {e}")))?;
    println!("  node started in {}", cluster::secs(started.elapsed()));
    let before = node.host_before().clone();
    let root = node.root().to_path_buf();
    let outcome = on_node(&node, opts).await;
    drop(node);
    let left = Node::sweep(&before, &root);
    if !left.is_empty() {
        eprintln!("the node left things behind:\n{}", left.join("\n"));
    }
    println!("  load average at the end {}", load_average());
    outcome.map_err(BenchError)
}

async fn on_node(node: &Node, opts: &ClusterOptions) -> cluster::Outcome<Vec<BackendFigure>> {
    let client = node.client().await.map_err(cluster::err)?;
    let step = Instant::now();
    install_operator(node)?;
    ready_operator_pod(&client, Duration::from_secs(120)).await?;
    println!("  chart installed in {}", cluster::secs(step.elapsed()));
    let step = Instant::now();
    apply_region(&client).await?;
    wait_region_ready(&client, Duration::from_secs(600)).await?;
    println!("  region Ready in {}", cluster::secs(step.elapsed()));

    let mut figures = Vec::new();
    for (backend, file) in BACKENDS {
        if opts.only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        if backend == "toxiproxy" {
            let rolled = set_leafnode_proxy(&client, "toxiproxy").await?;
            wait_region_ready(&client, Duration::from_secs(300)).await?;
            println!(
                "  leafnode.proxy toxiproxy rolled in {}",
                cluster::secs(rolled)
            );
        }
        let mut figure = BackendFigure {
            backend,
            hold_seconds: opts.hold_seconds,
            runs: Vec::new(),
        };
        for i in 1..=opts.runs {
            // Each drill starts from a region in sync, as a user's would.
            wait_region_ready(&client, Duration::from_secs(300)).await?;
            let name = format!("bench-{}-{i}", backend.to_lowercase());
            let mut drill = drill_manifest(file, &name);
            drill["spec"]["fault"]["holdSeconds"] = opts.hold_seconds.into();
            if opts.no_temporary_zone {
                drill["spec"]["steps"] = steps_without_temporary_zone();
            }
            let run = match run_drill(&client, drill).await {
                Ok((d, took)) => measured(&name, &d, took),
                Err(e) => {
                    // What the operator was doing, before the node goes.
                    let log = cluster::pod_log_lines(
                        &client,
                        cluster::OPERATOR_NS,
                        cluster::OPERATOR_SELECTOR,
                        "",
                    )
                    .await
                    .unwrap_or_default();
                    let from = log.len().saturating_sub(60);
                    eprintln!("operator log, last lines:\n{}", log[from..].join("\n"));
                    ClusterRun {
                        name: name.clone(),
                        error: Some(e),
                        ..Default::default()
                    }
                }
            };
            println!("  {backend} run {i}: {}", describe(&run));
            figure.runs.push(run);
            remove_drill(&client, &name).await?;
        }
        figures.push(figure);
    }
    Ok(figures)
}

/// The default steps' names without `add-temporary-zone`.
pub fn steps_without_temporary_zone() -> Value {
    use crate::api::Step;
    Step::DEFAULT
        .iter()
        .filter(|s| **s != Step::AddTemporaryZone)
        .map(|s| Value::from(s.name()))
        .collect()
}

/// What one finished drill's status says.
pub fn measured(name: &str, d: &Value, took: Duration) -> ClusterRun {
    let s = &d["status"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    ClusterRun {
        name: name.to_string(),
        catch_up_seconds: s["totals"]["catchUpSeconds"].as_f64(),
        phase: text(&s["phase"]),
        verdict: text(&s["verdict"]),
        took,
        resumes: s["claims"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["evidence"]["mirrorResumes"].as_str())
            .map(str::to_string),
        error: None,
    }
}

/// The stepdowns of a `mirrorResumes` evidence string
/// (`MirrorResume::describe` joined with "; "); refusals are left out.
pub fn parse_resumes(text: &str) -> Vec<Stepdown> {
    text.split("; ")
        .filter_map(|one| {
            let rest = one.strip_prefix("resumed mirror ")?;
            let (zone, rest) = rest.split_once(" by leader stepdown at ")?;
            let (at, rest) = rest.split_once("s after the heal (link up at ")?;
            let link = rest.split_once('s')?.0;
            Some(Stepdown {
                zone: zone.to_string(),
                at_seconds: at.parse().ok()?,
                link_up_seconds: link.parse().ok()?,
            })
        })
        .collect()
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into())
}

fn describe(r: &ClusterRun) -> String {
    if let Some(e) = &r.error {
        return format!("error: {e}");
    }
    format!(
        "catch-up {} ({} {}, {} apply → verdict){}",
        secs(r.catch_up_seconds),
        r.phase,
        r.verdict,
        cluster::secs(r.took),
        r.resumes
            .as_ref()
            .map(|s| format!("; {s}"))
            .unwrap_or_default()
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "-".into())
}

/// Per backend: runs, median, min, max, runs ≤ 5 s, passed, runs with a
/// stepdown and the median heal → link up and link up → stepdown; each
/// run's catch-up; then the goals.
pub fn table(figures: &[BackendFigure]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<14} {:>4} {:>7} {:>6} {:>6} {:>6} {:>7} {:>9} {:>13} {:>17}",
        "backend",
        "runs",
        "median",
        "min",
        "max",
        "<= 5s",
        "passed",
        "stepdown",
        "heal->link up",
        "link up->stepdown"
    );
    let mut rows = Vec::new();
    for f in figures {
        let timed = f.timed();
        let (lo, hi) = min_max(&timed);
        let n = f.runs.len();
        let passed = f.runs.iter().filter(|r| r.verdict == "Passed").count();
        let stepdowns: Vec<Stepdown> = f.runs.iter().flat_map(|r| r.stepdowns()).collect();
        let with_stepdown = f.runs.iter().filter(|r| !r.stepdowns().is_empty()).count();
        let link: Vec<f64> = stepdowns.iter().map(|s| s.link_up_seconds).collect();
        let gap: Vec<f64> = stepdowns
            .iter()
            .map(|s| s.at_seconds - s.link_up_seconds)
            .collect();
        let m = |v: &[f64]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1}s", median(v))
            }
        };
        let range = |v: f64| {
            if v.is_finite() {
                format!("{v:.1}s")
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            t,
            "{:<14} {:>4} {:>7} {:>6} {:>6} {:>6} {:>7} {:>9} {:>13} {:>17}",
            f.backend,
            n,
            m(&timed),
            range(lo),
            range(hi),
            format!("{}/{n}", f.within_goal()),
            format!("{passed}/{n}"),
            format!("{with_stepdown}/{n}"),
            m(&link),
            m(&gap),
        );
        let each: Vec<String> = f.runs.iter().map(|r| secs(r.catch_up_seconds)).collect();
        let _ = writeln!(t, "  {} catch-up per run: {}", f.backend, each.join(" "));
        rows.push(GoalRow::new(
            format!(
                "cluster catch-up, {} drill, hold {}s",
                f.backend, f.hold_seconds
            ),
            format!("{}/{n} runs <= 5 s", f.within_goal()),
            "<= 5 s in 10 of 10",
            Some(n >= GOAL_RUNS && f.within_goal() == n),
        ));
    }
    t.push('\n');
    t.push_str(&render(&rows));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::claims::MirrorResume;

    #[test]
    fn stepdowns_are_read_back_from_the_evidence_the_engine_writes() {
        let one = MirrorResume {
            zone: "west".into(),
            link_up_seconds: 2.4,
            at_seconds: 3.5,
            to_server: Some("qa-west-1".into()),
            error: None,
        };
        let refused = MirrorResume {
            zone: "north".into(),
            link_up_seconds: 1.0,
            at_seconds: 1.0,
            to_server: None,
            error: Some("the fast resume needs stream.replicas >= 2".into()),
        };
        let two = MirrorResume {
            zone: "north".into(),
            link_up_seconds: 0.8,
            at_seconds: 1.9,
            to_server: None,
            error: None,
        };
        let text = [one.describe(), refused.describe(), two.describe()].join("; ");
        assert_eq!(
            parse_resumes(&text),
            vec![
                Stepdown {
                    zone: "west".into(),
                    at_seconds: 3.5,
                    link_up_seconds: 2.4
                },
                Stepdown {
                    zone: "north".into(),
                    at_seconds: 1.9,
                    link_up_seconds: 0.8
                },
            ]
        );
    }

    #[test]
    fn the_steps_keep_the_catch_up_and_drop_the_temporary_zone() {
        let steps = steps_without_temporary_zone();
        let names: Vec<&str> = steps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(names.contains(&"wait-for-catch-up") && !names.contains(&"add-temporary-zone"));
    }

    #[test]
    fn a_drill_status_gives_catch_up_verdict_and_resumes() {
        let d = serde_json::json!({"status": {
            "phase": "Succeeded", "verdict": "Passed",
            "totals": {"catchUpSeconds": 3.25},
            "claims": [
                {"claim": "local-consumption", "evidence": {}},
                {"claim": "no-loss", "evidence": {"mirrorResumes": "resumed mirror west by leader stepdown at 3.5s after the heal (link up at 2.4s)"}}
            ]
        }});
        let r = measured("x", &d, Duration::from_secs(60));
        assert_eq!(r.catch_up_seconds, Some(3.25));
        assert_eq!(
            (r.phase.as_str(), r.verdict.as_str()),
            ("Succeeded", "Passed")
        );
        assert_eq!(r.stepdowns().len(), 1);
    }

    #[test]
    fn the_goal_needs_ten_runs_all_within_five_seconds() {
        let run = |s: Option<f64>| ClusterRun {
            catch_up_seconds: s,
            verdict: "Passed".into(),
            ..Default::default()
        };
        let fig = |runs: Vec<ClusterRun>| BackendFigure {
            backend: "networkPolicy",
            hold_seconds: 25,
            runs,
        };
        let ten_fast = fig((0..10).map(|_| run(Some(2.0))).collect());
        assert!(table(&[ten_fast]).trim_end().ends_with("yes"));
        let two_fast = fig(vec![run(Some(2.0)), run(Some(3.0))]);
        assert!(table(&[two_fast]).trim_end().ends_with("NO"));
        // A drill that never caught up counts against the goal.
        let mut slow = fig((0..9).map(|_| run(Some(2.0))).collect());
        slow.runs.push(run(None));
        let t = table(&[slow]);
        assert!(t.contains("9/10") && t.trim_end().ends_with("NO"), "{t}");
    }
}
