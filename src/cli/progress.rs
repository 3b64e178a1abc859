//! A live one-line progress display for terminal drills.

use indicatif::{ProgressBar, ProgressStyle};

use crate::api::Step;
use crate::drill::engine::{Observer, Progress};

pub struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    pub fn new(steps: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed:>4}] step {pos}/{len} {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for TerminalProgress {
    fn step(&self, index: usize, _total: usize, step: Step) {
        self.bar.set_position(index as u64 + 1);
        self.bar.set_message(step.name().to_string());
        // Keep a plain log of the steps above the live line.
        self.bar
            .println(format!("  step {}: {}", index + 1, step.name()));
    }

    fn progress(&self, p: &Progress) {
        let reads = p
            .reads
            .iter()
            .map(|(z, n)| format!("{z}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.bar.set_message(format!(
            "{}{} | sent {} acked {} | read {}",
            p.step,
            if p.partitioned { " [partitioned]" } else { "" },
            p.attempted,
            p.acked,
            reads
        ));
    }
}
