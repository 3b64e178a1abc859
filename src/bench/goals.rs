//! The figures of issue 11's table beside their goals, as the benchmarks
//! close: one row per figure, what was measured, the goal, and whether it is met.

use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub struct GoalRow {
    pub figure: String,
    pub measured: String,
    pub goal: String,
    /// `None`: nothing to compare (not measured, or a figure without a bound).
    pub met: Option<bool>,
}

impl GoalRow {
    pub fn new(
        figure: impl Into<String>,
        measured: impl Into<String>,
        goal: impl Into<String>,
        met: Option<bool>,
    ) -> Self {
        Self {
            figure: figure.into(),
            measured: measured.into(),
            goal: goal.into(),
            met,
        }
    }
}

/// A table of rows, the verdict column last.
pub fn render(rows: &[GoalRow]) -> String {
    let w0 = rows
        .iter()
        .map(|r| r.figure.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let w1 = rows
        .iter()
        .map(|r| r.measured.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let w2 = rows.iter().map(|r| r.goal.len()).max().unwrap_or(0).max(4);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<w0$}  {:<w1$}  {:<w2$}  met",
        "figure", "measured", "goal"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let _ = writeln!(
            t,
            "{:<w0$}  {:<w1$}  {:<w2$}  {met}",
            r.figure, r.measured, r.goal
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_with_their_verdicts() {
        let t = render(&[
            GoalRow::new("a", "1", "<= 2", Some(true)),
            GoalRow::new("longer figure", "30", "<= 2", Some(false)),
            GoalRow::new("c", "-", "-", None),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].ends_with("yes") && lines[2].ends_with("NO") && lines[3].ends_with('-'));
        assert_eq!(lines[1].find("<= 2"), lines[2].find("<= 2"));
    }
}
