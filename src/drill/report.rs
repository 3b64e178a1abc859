//! The drill report for people: a verdict table for the terminal, the full
//! JSON, and a timeline picture (source and mirror last sequence over time,
//! partition windows shaded).

use std::path::Path;

use plotters::prelude::*;

use crate::api::Verdict;

use super::engine::DrillReport;
use super::timeline::Timeline;

/// The verdict table printed at the end of a drill.
pub fn table(report: &DrillReport) -> String {
    let mut out = status_table(
        &report.drill,
        &report.region,
        &report.fault_backend,
        &report.status,
        report.wall_seconds,
    );
    for p in &report.phases {
        out.push_str(&format!(
            "  phase {:<18} {:>7} acked in {:>6.2}s ({:>8.0}/s){}\n",
            p.step,
            p.stats.acked,
            p.stats.seconds,
            p.stats.rate(),
            if p.partitioned { "  [partitioned]" } else { "" }
        ));
    }
    out
}

/// The verdict table from a status alone (a drill followed in a cluster,
/// whose report may not be readable).
pub fn status_table(
    drill: &str,
    region: &str,
    backend: &str,
    s: &crate::api::PartitionDrillStatus,
    wall_seconds: f64,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "drill {drill} on region {region} ({backend} backend): {:?} / {:?} in {wall_seconds:.1}s\n",
        s.phase, s.verdict
    ));
    if let Some(m) = &s.message {
        out.push_str(&format!("  {m}\n"));
    }
    out.push('\n');
    for (i, c) in s.claims.iter().enumerate() {
        let verdict = match c.verdict {
            Verdict::Passed => "PASS",
            Verdict::Failed => "FAIL",
            Verdict::NotRun => "NOT RUN",
            Verdict::Inconclusive => "UNKNOWN",
        };
        // The reason goes on its own line: it can be long (ids, figures).
        out.push_str(&format!(
            "  {} {:<7} {}\n        {}\n",
            i + 1,
            verdict,
            c.claim.title(),
            c.message
        ));
    }
    let t = &s.totals;
    out.push_str(&format!(
        "\n  attempted {}  acked {}  read {}{}  lost {}  duplicated {}  reordered {}  stored missing {}  stored altered {}  max lag cut off {}  backfill {}  catch-up {}  sync_interval {}\n",
        t.attempted,
        t.acked,
        t.read,
        if t.late > 0 {
            format!(" (late {})", t.late)
        } else {
            String::new()
        },
        t.lost,
        t.duplicated,
        t.reordered,
        t.stored_missing,
        t.stored_altered,
        t.max_lag,
        t.max_backfill_lag,
        t.catch_up_seconds.map(|c| format!("{c:.2}s")).unwrap_or_else(|| "-".into()),
        s.sync_interval.as_deref().unwrap_or("-"),
    ));
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes the JSON report to `path` and the timeline SVG beside it (`.svg`).
pub fn write(report: &DrillReport, path: &Path) -> Result<std::path::PathBuf, ReportError> {
    write_json(report, path)?;
    let svg = path.with_extension("svg");
    std::fs::write(&svg, timeline_svg(&report.timeline, &report.drill))
        .map_err(|e| write_err(&svg, e))?;
    Ok(svg)
}

/// Any serializable document as pretty JSON at `path`, its directory created.
pub fn write_json(doc: &impl serde::Serialize, path: &Path) -> Result<(), ReportError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    }
    let json = serde_json::to_string_pretty(doc).map_err(|e| write_err(path, e))?;
    std::fs::write(path, json).map_err(|e| write_err(path, e))
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// The timeline as an SVG document.
pub fn timeline_svg(timeline: &Timeline, title: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 760)).into_drawing_area();
        let (top, bottom) = root.split_vertically(480);
        // Drawing into a String cannot fail for I/O reasons; a plotting error
        // leaves an empty picture rather than failing the drill.
        let _ = draw(&top, timeline, title);
        let _ = draw_lag(&bottom, timeline);
        let _ = root.present();
    }
    svg
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    timeline: &Timeline,
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let end_ms = timeline
        .zones
        .values()
        .flat_map(|s| s.last())
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(1)
        .max(1);
    let max_seq = timeline
        .zones
        .values()
        .flat_map(|s| s.iter().map(|(_, q)| *q))
        .max()
        .unwrap_or(1)
        .max(1);
    let secs = |ms: u32| ms as f64 / 1000.0;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{title}: stream last sequence per zone"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..secs(end_ms), 0u64..max_seq + max_seq / 20 + 1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since drill start")
        .y_desc("last_seq")
        .draw()?;
    for (i, (cut, heal)) in timeline.partitions.iter().enumerate() {
        let label = if i == 0 { "partition" } else { "" };
        let area = chart.draw_series(std::iter::once(Rectangle::new(
            [(secs(*cut), 0), (secs(*heal), max_seq + max_seq / 20 + 1)],
            RGBColor(255, 200, 200).mix(0.5).filled(),
        )))?;
        if !label.is_empty() {
            area.label(label).legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 16, y + 5)],
                    RGBColor(255, 200, 200).filled(),
                )
            });
        }
    }
    let mut zones: Vec<_> = timeline.zones.iter().collect();
    // Source first, so it is drawn under the mirrors and leads the legend.
    zones.sort_by_key(|(name, _)| **name != timeline.source_zone);
    for (i, (zone, series)) in zones.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // Later lines are thinner, so a mirror that tracks the source exactly
        // still lets the line beneath show.
        let width = 5u32.saturating_sub(i as u32).max(1);
        let role = if *zone == timeline.source_zone {
            "source"
        } else {
            "mirror"
        };
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|(t, q)| (secs(*t), *q)),
                color.stroke_width(width),
            ))?
            .label(format!("{zone} ({role})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    // Step starts along the bottom, so the curves can be read against the
    // drill. The heal step starts by holding the cut, so its start is not the
    // heal: the moment the fault was removed is marked instead.
    let top = max_seq + max_seq / 20 + 1;
    let marks = marks(timeline);
    chart.draw_series(marks.iter().enumerate().map(|(i, (t, label))| {
        let y = top / 40 * (1 + (i as u64 % 3));
        Text::new(
            label.clone(),
            (secs(*t), y),
            ("sans-serif", 11).into_font().color(&BLACK.mix(0.7)),
        )
    }))?;
    chart.draw_series(marks.iter().map(|(t, _)| {
        PathElement::new(
            vec![(secs(*t), 0), (secs(*t), top / 12)],
            BLACK.mix(0.4).stroke_width(1),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Step starts, with each heal step's start replaced by the moment its
/// partition was actually healed (the end of the partition window).
fn marks(timeline: &Timeline) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = timeline
        .marks
        .iter()
        .filter(|(_, label)| label != "heal")
        .cloned()
        .collect();
    out.extend(
        timeline
            .partitions
            .iter()
            .map(|(_, heal)| (*heal, "healed".to_string())),
    );
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The lag panel: `source − mirror` per mirror zone, partitions shaded.
fn draw_lag(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    timeline: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let lags = timeline.lag_series();
    let end_ms = timeline
        .zones
        .values()
        .flat_map(|s| s.last())
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(1)
        .max(1);
    let max_lag = lags
        .values()
        .flat_map(|s| s.iter().map(|(_, l)| *l))
        .max()
        .unwrap_or(0)
        .max(1);
    let top = max_lag + max_lag / 10 + 1;
    let secs = |ms: u32| ms as f64 / 1000.0;
    let mut chart = ChartBuilder::on(root)
        .caption("lag per mirror zone (source − mirror)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..secs(end_ms), 0u64..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since drill start")
        .y_desc("messages behind")
        .draw()?;
    chart.draw_series(timeline.partitions.iter().map(|(cut, heal)| {
        Rectangle::new(
            [(secs(*cut), 0), (secs(*heal), top)],
            RGBColor(255, 200, 200).mix(0.5).filled(),
        )
    }))?;
    // The same colours as the upper panel: the source took the first.
    let mut names: Vec<&String> = timeline.zones.keys().collect();
    names.sort_by_key(|name| **name != timeline.source_zone);
    for (zone, series) in &lags {
        let i = names.iter().position(|n| *n == zone).unwrap_or(0);
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|(t, l)| (secs(*t), *l)),
                color.stroke_width(2),
            ))?
            .label(zone.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if !lags.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_shows_each_zone_and_the_partition() {
        let mut tl = Timeline {
            source_zone: "a".into(),
            ..Default::default()
        };
        tl.zones
            .insert("a".into(), vec![(0, 0), (1000, 500), (2000, 1000)]);
        tl.zones
            .insert("b".into(), vec![(0, 0), (1000, 500), (2000, 500)]);
        tl.partitions.push((1000, 1800));
        tl.marks.push((1000, "partition".into()));
        tl.marks.push((1800, "heal".into()));
        let svg = timeline_svg(&tl, "demo");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(
            svg.contains("a (source)") && svg.contains("b (mirror)") && svg.contains("partition")
        );
        assert!(svg.contains("lag per mirror zone"), "the lag panel");
    }

    #[test]
    fn the_heal_is_marked_where_it_happened() {
        let tl = Timeline {
            partitions: vec![(1000, 9500)],
            marks: vec![(1000, "partition".into()), (4000, "heal".into())],
            ..Default::default()
        };
        assert_eq!(
            marks(&tl),
            vec![
                (1000, "partition".to_string()),
                (9500, "healed".to_string())
            ]
        );
    }
}
