//! `natsregion-bench soak`: a local 3-zone drill (the engine of `natsregion
//! drill --local`) of many messages published as fast as PubAcks return, for
//! the drill's rate, the bench process's peak RSS and its growth per message.
//!
//! Growth is measured twice: over the whole drill (peak minus the RSS before
//! it, fixed costs included) and per message at the margin, from a drill of a
//! fifth of the messages run first (what a 10 M-message drill would add per
//! message). The drill's best phase rate is compared with plain R3 publishing
//! measured in the same run, on a zone of the same size.

use std::time::Instant;

use super::goals::{GoalRow, render};
use super::publish::{SUBJECT, bench_stream, fixed_body, plain_publish, start_bench_region};
use super::{BenchError, kib, median, proc_status_kib, reset_peak_rss};
use crate::api::{PartitionDrill, RegionMirror};
use crate::cli::drill_file;
use crate::cli::local_drill::{LocalDrillOptions, run_loaded};

/// Goal of issue 11: RSS growth per message of a 3-zone drill at 10 M messages.
pub const GROWTH_GOAL_BYTES: f64 = 4.0;

#[derive(Clone, Copy, Debug)]
pub struct SoakOptions {
    /// Messages of the measured drill (three produce phases share them).
    pub messages: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self { messages: 200_000 }
    }
}

/// One drill of the soak.
#[derive(Clone, Debug)]
pub struct SoakRun {
    pub messages: u64,
    pub acked: u64,
    pub verdict: String,
    /// Acked messages per second of each produce phase, in step order.
    pub phase_rates: Vec<(String, f64)>,
    pub wall_seconds: f64,
    pub rss_before_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}

impl SoakRun {
    pub fn best_rate(&self) -> f64 {
        self.phase_rates.iter().map(|p| p.1).fold(0.0, f64::max)
    }
    /// Peak RSS minus the RSS before the drill, per message (fixed costs included).
    pub fn growth_per_message(&self) -> Option<f64> {
        let (b, p) = (self.rss_before_kib?, self.peak_rss_kib?);
        Some(p.saturating_sub(b) as f64 * 1024.0 / self.messages.max(1) as f64)
    }
}

#[derive(Clone, Debug)]
pub struct SoakFigure {
    /// Plain async-nats publish on a 3-server R3 zone, msgs/s per round.
    pub plain_r3: Vec<f64>,
    pub small: SoakRun,
    pub large: SoakRun,
}

impl SoakFigure {
    /// Extra peak RSS per extra message between the two drills.
    pub fn marginal_growth(&self) -> Option<f64> {
        let (a, b) = (self.small.peak_rss_kib?, self.large.peak_rss_kib?);
        let extra = self
            .large
            .messages
            .saturating_sub(self.small.messages)
            .max(1);
        Some((b as f64 - a as f64).max(0.0) * 1024.0 / extra as f64)
    }
    /// Growth per message a 10 M-message drill would show: the small drill's
    /// fixed cost spread over 10 M plus the marginal growth.
    pub fn growth_at_10m(&self) -> Option<f64> {
        let marginal = self.marginal_growth()?;
        let fixed_kib = self.small.growth_per_message()? * self.small.messages as f64 / 1024.0
            - marginal * self.small.messages as f64 / 1024.0;
        Some(fixed_kib.max(0.0) * 1024.0 / 10e6 + marginal)
    }
    pub fn ratio_to_plain(&self) -> f64 {
        self.large.best_rate() / median(&self.plain_r3)
    }
}

/// The soak drill: a source zone of 3 servers (R3, as the plain figure) and two
/// 1-server mirror zones; connected, cut, then connected again after catch-up.
pub fn soak_drill(messages: u64) -> String {
    let per_phase = messages.div_ceil(3).max(1);
    format!(
        r#"
apiVersion: natsregion.io/v1alpha1
kind: RegionMirror
metadata: {{name: soak}}
spec:
  stream: {{name: SOAK, subjects: ["soak.>"], replicas: 3}}
  leafnode: {{reconnectIntervalSeconds: 1}}
  zones:
    - {{name: a, role: source, servers: 3}}
    - {{name: b, role: mirror, servers: 1}}
    - {{name: c, role: mirror, servers: 1}}
---
apiVersion: natsregion.io/v1alpha1
kind: PartitionDrill
metadata: {{name: soak}}
spec:
  regionRef: {{name: soak}}
  fault: {{backend: toxiproxy, holdSeconds: 1, deadlineSeconds: 3600}}
  workload: {{messagesPerPhase: {per_phase}, ratePerSecond: 0, payloadBytes: 128}}
  timeouts: {{stepSeconds: 3600, catchUpSeconds: 3600}}
  steps: [produce, partition, produce, heal, wait-for-catch-up, produce, verify]
"#
    )
}

/// Plain R3 rate first, then the small and the measured drill.
pub async fn run(opts: &SoakOptions) -> Result<SoakFigure, BenchError> {
    println!("== 3. soak: plain async-nats publish on a 3-server R3 zone, 3 rounds");
    let plain_r3 = plain_r3(opts.messages.clamp(20_000, 100_000), 3).await?;
    println!("  plain R3 median {:.0} msgs/s", median(&plain_r3));
    let small_n = (opts.messages / 5).max(3);
    println!("== soak: drill of {small_n} messages (the baseline of the marginal growth)");
    let small = drill(small_n).await?;
    println!("== soak: drill of {} messages", opts.messages);
    let large = drill(opts.messages).await?;
    let figure = SoakFigure {
        plain_r3,
        small,
        large,
    };
    print_summary(&figure);
    Ok(figure)
}

async fn plain_r3(n: u64, rounds: usize) -> Result<Vec<f64>, BenchError> {
    let (region, local) = start_bench_region().await?;
    let result = async {
        let conn = bench_stream(&local, &region).await?;
        let body = fixed_body();
        plain_publish(&conn.js, SUBJECT, (n / 10).max(500), |_| body.clone(), None).await?;
        let mut rates = Vec::new();
        for round in 0..rounds {
            let r = plain_publish(&conn.js, SUBJECT, n, |_| body.clone(), None).await?;
            println!("  round {}: plain R3 {r:.0} msgs/s", round + 1);
            rates.push(r);
        }
        Ok(rates)
    }
    .await;
    let stopped = local.stop().await;
    let rates = result?;
    stopped.map_err(|e| BenchError(format!("stopping the region: {e}")))?;
    Ok(rates)
}

fn parse(messages: u64) -> Result<(RegionMirror, PartitionDrill), BenchError> {
    drill_file::parse("soak.yaml", &soak_drill(messages))
        .map_err(|e| BenchError(format!("soak drill: {e}")))
}

async fn drill(messages: u64) -> Result<SoakRun, BenchError> {
    let (region, drill) = parse(messages)?;
    let per_phase = crate::api::spec_count(drill.spec.workload.messages_per_phase);
    let reset = reset_peak_rss();
    let rss_before_kib = proc_status_kib("VmRSS");
    let started = Instant::now();
    let report = run_loaded(&region, &drill, &LocalDrillOptions::default(), true)
        .await
        .map_err(|e| BenchError(format!("soak drill: {e}")))?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let peak_rss_kib = reset.then(|| proc_status_kib("VmHWM")).flatten();
    let run = SoakRun {
        messages: per_phase * 3,
        acked: report.status.totals.acked.max(0) as u64,
        verdict: format!("{:?}", report.status.verdict),
        phase_rates: report
            .phases
            .iter()
            .map(|p| {
                let label = if p.partitioned {
                    format!("{} (cut)", p.step)
                } else {
                    p.step.clone()
                };
                (label, p.stats.rate())
            })
            .collect(),
        wall_seconds,
        rss_before_kib,
        peak_rss_kib,
    };
    let rates: Vec<String> = run
        .phase_rates
        .iter()
        .map(|(s, r)| format!("{s} {r:.0}"))
        .collect();
    println!(
        "  {} of {} acked, verdict {} ({}); phase rates msgs/s: {}; wall {:.1} s",
        run.acked,
        run.messages,
        run.verdict,
        report.status.message.as_deref().unwrap_or("-"),
        rates.join(", "),
        run.wall_seconds
    );
    println!(
        "  RSS before {}, peak (VmHWM) {}: {} B/msg over the whole drill",
        kib(run.rss_before_kib),
        kib(run.peak_rss_kib),
        bytes(run.growth_per_message()),
    );
    Ok(run)
}

fn bytes(v: Option<f64>) -> String {
    v.map_or("-".into(), |b| format!("{b:.1}"))
}

fn print_summary(f: &SoakFigure) {
    println!(
        "  soak: {} msgs at {:.0} msgs/s (best phase) = {:.2} of plain R3 {:.0} msgs/s; wall {:.1} s; peak RSS {}",
        f.large.messages,
        f.large.best_rate(),
        f.ratio_to_plain(),
        median(&f.plain_r3),
        f.large.wall_seconds,
        kib(f.large.peak_rss_kib),
    );
    println!(
        "  growth per message: {} B whole drill, {} B at the margin, {} B at 10 M (goal <= {GROWTH_GOAL_BYTES} B)",
        bytes(f.large.growth_per_message()),
        bytes(f.marginal_growth()),
        bytes(f.growth_at_10m()),
    );
}

impl SoakFigure {
    /// The rows of issue 11's table this benchmark measures.
    pub fn goal_rows(&self) -> Vec<GoalRow> {
        let l = &self.large;
        let rates: Vec<String> = l
            .phase_rates
            .iter()
            .map(|(s, r)| format!("{s} {r:.0}"))
            .collect();
        let at_10m = self.growth_at_10m();
        vec![
            GoalRow::new(
                "drill process, 3 zones: RSS growth per message",
                format!(
                    "{} B whole drill of {}, {} B marginal, {} B at 10 M; peak RSS {}",
                    bytes(l.growth_per_message()),
                    l.messages,
                    bytes(self.marginal_growth()),
                    bytes(at_10m),
                    kib(l.peak_rss_kib)
                ),
                format!("<= {GROWTH_GOAL_BYTES} B/msg at 10 M"),
                at_10m.map(|g| g <= GROWTH_GOAL_BYTES),
            ),
            GoalRow::new(
                "drill rate, 3 zones, as fast as acks return",
                format!(
                    "{} msgs/s; best {:.2} of plain R3 {:.0}; {} in {:.0} s",
                    rates.join(", "),
                    self.ratio_to_plain(),
                    median(&self.plain_r3),
                    l.verdict,
                    l.wall_seconds
                ),
                "the machine's limit, as a ratio of plain R3",
                None,
            ),
        ]
    }
}

/// The soak's closing table.
pub fn table(f: &SoakFigure) -> String {
    render(&f.goal_rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_drill_parses_and_splits_the_messages() {
        let (_, d) = parse(1_000_000).expect("valid");
        assert_eq!(d.spec.workload.messages_per_phase, 333_334);
        assert_eq!(d.spec.workload.rate_per_second, 0);
    }

    #[test]
    fn growth_figures_separate_fixed_and_marginal_cost() {
        let run = |messages, peak| SoakRun {
            messages,
            acked: messages,
            verdict: "Passed".into(),
            phase_rates: vec![("produce".into(), 10.0)],
            wall_seconds: 1.0,
            rss_before_kib: Some(1000),
            peak_rss_kib: Some(peak),
        };
        // 10 MiB fixed, 1 KiB per 1024 messages (1 B each).
        let f = SoakFigure {
            plain_r3: vec![20.0],
            small: run(102_400, 1000 + 10 * 1024 + 100),
            large: run(1_024_000, 1000 + 10 * 1024 + 1000),
        };
        assert!((f.marginal_growth().unwrap() - 1.0).abs() < 1e-9);
        let at_10m = f.growth_at_10m().unwrap();
        assert!((at_10m - (10.0 * 1024.0 * 1024.0 / 10e6 + 1.0)).abs() < 1e-6);
        assert!((f.ratio_to_plain() - 0.5).abs() < 1e-9);
    }
}
