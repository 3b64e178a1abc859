//! `natsregion-bench`: figures for the drill engine, measured in one run and
//! printed, never asserted against a clock.
//!
//! 1. The checker: messages verified per second and memory per tracked message.
//! 2. Publishing (module [`publish`]): the drill's `Producer` against a plain
//!    async-nats loop with the same ack window, and that loop with a unique
//!    `Nats-Msg-Id`, alternating, on the same local 3-server zone.
//! 3. Soak (module [`soak`]): a local 3-zone drill as fast as PubAcks return,
//!    for its rate beside plain R3 publish and its memory per message.
//! 4. Catch-up after heal for two leafnode reconnect intervals (real drills).
//!
//! `natsregion-bench resume` (module [`resume`]) times catch-up after a
//! heal with and without the drill's prompt resume of a silent mirror, and
//! `natsregion-bench catchup-rate` (module [`catchup_rate`]) the mirror's
//! transfer rate across a slow link once its consumer exists.
//!
//! `natsregion-bench cluster-catchup` (module [`cluster_catchup`]) times
//! drills' catch-up on the real one-node Kubernetes, per fault backend.
//!
//! `natsregion-bench operator` (module [`operator`]) measures the operator
//! under N RegionMirrors against a real API server instead, and
//! `natsregion-bench newcomer` (module [`newcomer`]) a cold `make demo`.

pub mod apiserver;
pub mod catchup_rate;
pub mod cluster_catchup;
pub mod goals;
pub mod newcomer;
pub mod operator;
pub mod prometheus;
pub mod publish;
pub mod resume;
pub mod soak;
pub mod watched;

use std::fmt::Write as _;
use std::time::Instant;

use crate::cli::drill_file;
use crate::cli::local_drill::{LocalDrillOptions, run_loaded};
use crate::drill::checker::{SentLog, ZoneTally};
use crate::drill::record::{Read, hash, payload};

#[derive(Clone, Copy, Debug, Default)]
pub struct BenchOptions {
    /// Smaller publish counts and one catch-up drill per interval.
    pub quick: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

fn err(what: &str) -> impl Fn(String) -> BenchError + '_ {
    move |e| BenchError(format!("{what}: {e}"))
}

/// One checker size.
#[derive(Clone, Debug)]
pub struct CheckerFigure {
    pub messages: usize,
    pub repeats: usize,
    pub median_seconds: f64,
    /// Heap bytes the producer's log and one zone's tally hold per message.
    pub bytes_per_message: f64,
    /// VmHWM after building the records and checking them (KiB).
    pub peak_rss_kib: Option<u64>,
    /// VmHWM minus VmRSS before the records were built (KiB).
    pub rss_growth_kib: Option<u64>,
}

impl CheckerFigure {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.median_seconds.max(f64::MIN_POSITIVE)
    }
}

#[derive(Clone, Debug)]
pub struct CatchUpRun {
    pub catch_up_seconds: Option<f64>,
    pub verdict: String,
}

#[derive(Clone, Debug)]
pub struct CatchUpFigure {
    pub reconnect_interval_seconds: u32,
    pub runs: Vec<CatchUpRun>,
}

/// Everything measured, for the closing table.
#[derive(Clone, Debug)]
pub struct BenchSummary {
    pub checker: Vec<CheckerFigure>,
    pub publish: Option<publish::PublishFigure>,
    pub soak: Option<soak::SoakFigure>,
    pub catch_up: Vec<CatchUpFigure>,
}

/// The smallest and largest of `values`; (+inf, -inf) when there are none.
pub fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        })
}

/// Median; the mean of the two middle values for an even count.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Rounds of the publish benchmark (each loop once per round).
pub const PUBLISH_ROUNDS: usize = 5;

/// Runs every benchmark but the operator's, printing each figure as it is measured, and
/// returns them for [`table`]. Every local region it starts is stopped.
pub async fn run(opts: &BenchOptions) -> Result<BenchSummary, BenchError> {
    println!("== 1. checker throughput and memory");
    let checker = checker_bench();

    let n = if opts.quick { 5_000 } else { 20_000 };
    let publish = publish::run(n, PUBLISH_ROUNDS).await?;

    let messages = if opts.quick { 30_000 } else { 200_000 };
    let soak = soak::run(&soak::SoakOptions { messages }).await?;

    let runs = if opts.quick { 1 } else { 3 };
    println!("== 4. catch-up after heal ({runs} drill(s) per reconnect interval)");
    let mut catch_up = Vec::new();
    for interval in [1, 3] {
        catch_up.push(catch_up_bench(interval, runs).await?);
    }
    Ok(BenchSummary {
        checker,
        publish: Some(publish),
        soak: Some(soak),
        catch_up,
    })
}

// ---------------------------------------------------------------- checker

/// Payload size of the synthetic history (the drill's default).
const CHECK_PAYLOAD: usize = 128;

/// A log of `n` acked messages, as the producer records them.
pub fn synthetic(n: usize) -> SentLog {
    let mut log = SentLog::new(1, CHECK_PAYLOAD);
    for c in 1..=n as u64 {
        log.attempt(0);
        log.settle(c, Some(c));
    }
    log
}

/// The reads of a zone that got every message of `log`, in order, produced
/// one at a time as a consumer would (nothing per read is kept).
pub fn reads_of(log: &SentLog) -> impl Iterator<Item = Read> + '_ {
    log.iter().map(|(id, seq)| Read {
        id,
        hash: hash(&payload(id, CHECK_PAYLOAD)),
        stream_seq: seq,
        at_ms: (seq / 10) as u32,
    })
}

/// A `VmXXX:  1234 kB` figure of this process, in KiB.
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field_kib(&status, key)
}

/// The `key:  1234 kB` figure of a `/proc/<pid>/status` text, in KiB.
fn status_field_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); harmless where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn checker_bench() -> Vec<CheckerFigure> {
    println!(
        "streaming: the producer's log keeps 1 bit per message (+ a run per failed publish), each zone's tally 2 bits; reads are judged as they arrive"
    );
    let mut out = Vec::new();
    for (n, repeats) in [(10_000, 5), (100_000, 5), (1_000_000, 3)] {
        let reset = reset_peak_rss();
        let base = proc_status_kib("VmRSS");
        let log = synthetic(n);
        let mut times = Vec::with_capacity(repeats);
        let mut held = 0;
        for _ in 0..repeats {
            let start = Instant::now();
            let mut tally = ZoneTally::new("bench");
            for r in reads_of(&log) {
                tally.observe(std::hint::black_box(&log), r);
            }
            held = log.heap_bytes() + tally.heap_bytes();
            let check = tally.finish(&log);
            times.push(start.elapsed().as_secs_f64());
            // Not a timing assertion: the synthetic zone must come out clean.
            debug_assert!(check.clean() && check.expected == n as u64);
            std::hint::black_box(check);
        }
        let peak = proc_status_kib("VmHWM");
        let growth = match (reset, base, peak) {
            (true, Some(b), Some(p)) => Some(p.saturating_sub(b)),
            _ => None,
        };
        drop(log);
        let fig = CheckerFigure {
            messages: n,
            repeats,
            median_seconds: median(&times),
            bytes_per_message: held as f64 / n as f64,
            peak_rss_kib: peak,
            rss_growth_kib: growth,
        };
        println!(
            "  {:>9} msgs: median {:>8.3} ms of {} -> {:>6.1} M msgs/s; records {:>6.1} MiB; peak RSS {} (growth {}, {} B/msg)",
            n,
            fig.median_seconds * 1e3,
            repeats,
            fig.per_second() / 1e6,
            n as f64 * fig.bytes_per_message / (1024.0 * 1024.0),
            kib(fig.peak_rss_kib),
            kib(fig.rss_growth_kib),
            fig.rss_growth_kib
                .map(|g| format!("{:.1}", g as f64 * 1024.0 / n as f64))
                .unwrap_or_else(|| "-".into()),
        );
        out.push(fig);
    }
    out
}

fn kib(v: Option<u64>) -> String {
    match v {
        Some(k) if k >= 10 * 1024 => format!("{:.1} MiB", k as f64 / 1024.0),
        Some(k) => format!("{k} KiB"),
        None => "-".into(),
    }
}

// ---------------------------------------------------------------- catch-up

fn catch_up_drill(interval: u32) -> String {
    format!(
        r#"
apiVersion: natsregion.io/v1alpha1
kind: RegionMirror
metadata: {{name: bench}}
spec:
  stream: {{name: EVENTS, subjects: ["events.>"], replicas: 1}}
  leafnode: {{reconnectIntervalSeconds: {interval}}}
  zones:
    - {{name: a, role: source, servers: 1}}
    - {{name: b, role: mirror, servers: 1}}
---
apiVersion: natsregion.io/v1alpha1
kind: PartitionDrill
metadata: {{name: bench}}
spec:
  regionRef: {{name: bench}}
  fault: {{backend: toxiproxy, holdSeconds: 3, deadlineSeconds: 60}}
  workload: {{messagesPerPhase: 500, ratePerSecond: 500}}
  timeouts: {{stepSeconds: 30, catchUpSeconds: 30}}
  steps: [produce, partition, produce, heal, wait-for-catch-up, verify]
"#
    )
}

async fn catch_up_bench(interval: u32, runs: usize) -> Result<CatchUpFigure, BenchError> {
    let (region, drill) = drill_file::parse("bench-catch-up.yaml", &catch_up_drill(interval))
        .map_err(|e| BenchError(format!("bench drill: {e}")))?;
    let mut figure = CatchUpFigure {
        reconnect_interval_seconds: interval,
        runs: Vec::new(),
    };
    for i in 0..runs {
        let report = run_loaded(&region, &drill, &LocalDrillOptions::default(), true)
            .await
            .map_err(|e| BenchError(format!("catch-up drill: {e}")))?;
        let run = CatchUpRun {
            catch_up_seconds: report.status.totals.catch_up_seconds,
            verdict: format!("{:?}", report.status.verdict),
        };
        println!(
            "  reconnectInterval {interval}s run {}: catch-up {} ({})",
            i + 1,
            secs(run.catch_up_seconds),
            run.verdict
        );
        figure.runs.push(run);
    }
    Ok(figure)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}s")).unwrap_or_else(|| "-".into())
}

// ---------------------------------------------------------------- table

/// The closing table of every figure.
pub fn table(s: &BenchSummary) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{:<34} {:>14} {:>20}", "benchmark", "median", "note");
    for c in &s.checker {
        let _ = writeln!(
            t,
            "{:<34} {:>10.2} M/s {:>20}",
            format!("check_zone {} msgs", c.messages),
            c.per_second() / 1e6,
            format!("peak RSS {}", kib(c.peak_rss_kib)),
        );
    }
    if let Some(c) = s.checker.first() {
        let _ = writeln!(
            t,
            "{:<34} {:>12.2} B {:>20}",
            "memory per tracked message", c.bytes_per_message, "log + one zone's tally"
        );
    }
    if let Some(p) = &s.publish {
        let _ = writeln!(
            t,
            "{:<34} {:>8.0} msgs/s {:>20}",
            format!("publish: drill Producer ({})", p.messages),
            median(&p.producer),
            format!("/plain {:.2} (goal >= 0.95)", p.ratio_plain())
        );
        let _ = writeln!(
            t,
            "{:<34} {:>8.0} msgs/s {:>20}",
            format!("publish: plain async-nats ({})", p.messages),
            median(&p.plain),
            "window 256"
        );
        let _ = writeln!(
            t,
            "{:<34} {:>8.0} msgs/s {:>20}",
            format!("publish: plain + Nats-Msg-Id ({})", p.messages),
            median(&p.plain_msg_id),
            format!("producer/this {:.2}", p.ratio_msg_id())
        );
    }
    for c in &s.catch_up {
        let measured: Vec<f64> = c.runs.iter().filter_map(|r| r.catch_up_seconds).collect();
        let value = if measured.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}s", median(&measured))
        };
        let _ = writeln!(
            t,
            "{:<34} {:>14} {:>20}",
            format!("catch-up, reconnect {}s", c.reconnect_interval_seconds),
            value,
            format!("{}/{} runs timed", measured.len(), c.runs.len())
        );
    }
    let _ = writeln!(
        t,
        "\nissue 11 (operator figures: natsregion-bench operator):"
    );
    t.push_str(&goals::render(&goal_rows(s)));
    t
}

/// Issue 11's figures this run measured, each beside its goal.
pub fn goal_rows(s: &BenchSummary) -> Vec<goals::GoalRow> {
    let mut rows = Vec::new();
    if let Some(c) = s.checker.last() {
        rows.push(goals::GoalRow::new(
            "checker records per message (log + one zone's tally)",
            format!("{:.2} B at {} messages", c.bytes_per_message, c.messages),
            "part of the drill's growth below",
            None,
        ));
    }
    if let Some(f) = &s.soak {
        rows.extend(f.goal_rows());
    }
    if let Some(p) = &s.publish {
        rows.extend(p.goal_rows());
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn a_synthetic_zone_checks_clean() {
        let log = synthetic(1000);
        let mut tally = ZoneTally::new("x");
        for r in reads_of(&log) {
            tally.observe(&log, r);
        }
        // One bit per message in the log, two in the tally: well under 4 B.
        assert!(
            log.heap_bytes() + tally.heap_bytes() < 1000,
            "{}",
            log.heap_bytes()
        );
        let c = tally.finish(&log);
        assert!(c.clean(), "{c:?}");
        assert_eq!((c.expected, c.read), (1000, 1000));
    }

    #[test]
    fn the_closing_table_holds_the_issue_figures_measured() {
        let s = BenchSummary {
            checker: vec![CheckerFigure {
                messages: 1000,
                repeats: 1,
                median_seconds: 0.001,
                bytes_per_message: 0.5,
                peak_rss_kib: None,
                rss_growth_kib: None,
            }],
            publish: None,
            soak: None,
            catch_up: Vec::new(),
        };
        let rows = goal_rows(&s);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].measured.starts_with("0.50 B"), "{rows:?}");
        assert!(table(&s).contains("issue 11"));
    }

    #[test]
    fn the_bench_drill_parses() {
        for interval in [1, 3] {
            drill_file::parse("t.yaml", &catch_up_drill(interval)).expect("valid");
        }
        let r: crate::api::RegionMirror =
            serde_yaml_ng::from_str(publish::PUBLISH_REGION).expect("valid");
        crate::api::validate::region(&r, None).expect("valid region");
    }
}
