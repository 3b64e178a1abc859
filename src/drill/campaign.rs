//! Many runs of one drill on one region (`drill --local --repeat N`): the
//! pass rate and the catch-up distribution, from the runs' reports alone.

use std::collections::BTreeMap;

use crate::api::{DrillPhase, Verdict};

use super::engine::DrillReport;

/// min, median, p95 and max of a sample (nearest rank).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    pub samples: usize,
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl Distribution {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let n = values.len();
            (n > 0).then(|| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        Self {
            samples: values.len(),
            min: values.first().copied(),
            median: rank(0.5),
            p95: rank(0.95),
            max: values.last().copied(),
        }
    }
}

/// One run as the summary lists it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLine {
    pub run: usize,
    pub writer: Option<i64>,
    pub phase: DrillPhase,
    pub verdict: Verdict,
    pub catch_up_seconds: Option<f64>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignSummary {
    pub drill: String,
    pub runs: usize,
    pub passed: usize,
    pub failed: usize,
    /// Runs that could not finish or prove a claim (named in their lines).
    pub inconclusive: usize,
    pub pass_rate: f64,
    /// Failed claims over all runs, by claim.
    pub failed_claims: BTreeMap<String, usize>,
    pub catch_up_seconds: Distribution,
    pub wall_seconds: Distribution,
    pub lines: Vec<RunLine>,
}

impl CampaignSummary {
    pub fn of(reports: &[DrillReport]) -> Self {
        let count = |v: Verdict| reports.iter().filter(|r| r.status.verdict == v).count();
        let mut failed_claims = BTreeMap::new();
        for r in reports {
            for c in r
                .status
                .claims
                .iter()
                .filter(|c| c.verdict == Verdict::Failed)
            {
                *failed_claims
                    .entry(c.claim.title().to_string())
                    .or_insert(0) += 1;
            }
        }
        let passed = count(Verdict::Passed);
        Self {
            drill: reports.first().map(|r| r.drill.clone()).unwrap_or_default(),
            runs: reports.len(),
            passed,
            failed: count(Verdict::Failed),
            inconclusive: count(Verdict::Inconclusive),
            pass_rate: if reports.is_empty() {
                0.0
            } else {
                passed as f64 / reports.len() as f64
            },
            failed_claims,
            catch_up_seconds: Distribution::of(
                reports
                    .iter()
                    .filter_map(|r| r.evidence.catch_up.as_ref().and_then(|c| c.seconds))
                    .collect(),
            ),
            wall_seconds: Distribution::of(reports.iter().map(|r| r.wall_seconds).collect()),
            lines: reports
                .iter()
                .enumerate()
                .map(|(i, r)| RunLine {
                    run: i + 1,
                    writer: r.status.run.as_ref().map(|s| s.writer),
                    phase: r.status.phase,
                    verdict: r.status.verdict,
                    catch_up_seconds: r.evidence.catch_up.as_ref().and_then(|c| c.seconds),
                    message: r.status.message.clone(),
                })
                .collect(),
        }
    }

    /// A few lines for the terminal.
    pub fn table(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}s"));
        let c = &self.catch_up_seconds;
        let mut out = format!(
            "campaign {}: {}/{} passed ({:.0}%), {} failed, {} inconclusive\n  catch-up over {} runs: min {}  median {}  p95 {}  max {}\n",
            self.drill,
            self.passed,
            self.runs,
            self.pass_rate * 100.0,
            self.failed,
            self.inconclusive,
            c.samples,
            f(c.min),
            f(c.median),
            f(c.p95),
            f(c.max),
        );
        for (claim, n) in &self.failed_claims {
            out.push_str(&format!("  failed {n}x: {claim}\n"));
        }
        for l in self.lines.iter().filter(|l| l.verdict != Verdict::Passed) {
            out.push_str(&format!(
                "  run {}: {:?} / {:?}: {}\n",
                l.run,
                l.phase,
                l.verdict,
                l.message.as_deref().unwrap_or("-")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of((1..=20).map(f64::from).collect());
        assert_eq!(
            (d.min, d.median, d.p95, d.max),
            (Some(1.0), Some(10.0), Some(19.0), Some(20.0))
        );
        let one = Distribution::of(vec![2.5]);
        assert_eq!((one.median, one.p95), (Some(2.5), Some(2.5)));
        assert_eq!(Distribution::of(vec![]).median, None);
    }
}
