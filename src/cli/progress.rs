//! Drill progress on stderr: a live line on a terminal, plain lines elsewhere.
//!
//! indicatif hides its bar (and everything sent through its `println`) when
//! stderr is no terminal, so a CI log showed nothing between "starting region"
//! and the table, for up to the drill's whole timeout. Off a terminal each step
//! is one plain line, and a heartbeat line names the current step every
//! `heartbeat` (10 s by default) so a silent log means a stuck process, not a
//! slow drill. stderr keeps stdout for the result (`-o json`).

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::api::Step;
use crate::drill::engine::{Observer, Progress};

/// Time between two heartbeat lines off a terminal.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

pub struct TerminalProgress {
    mode: Mode,
}

enum Mode {
    Live(ProgressBar),
    Plain(PlainLog),
}

impl TerminalProgress {
    /// A live line when stderr is a terminal, else plain lines with a
    /// heartbeat every `heartbeat` ([`DEFAULT_HEARTBEAT`] when `None`).
    pub fn new(steps: usize, heartbeat: Option<Duration>) -> Self {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Live(live_bar(steps))
        } else {
            Mode::Plain(PlainLog::start(
                steps,
                heartbeat.unwrap_or(DEFAULT_HEARTBEAT),
            ))
        };
        Self { mode }
    }

    /// A line of its own above the live line, or a plain (timestamped) one.
    pub fn note(&self, line: &str) {
        match &self.mode {
            Mode::Live(bar) => bar.println(line),
            Mode::Plain(log) => emit(log.state.lock().expect("progress state").started, line),
        }
    }

    pub fn finish(&self) {
        match &self.mode {
            Mode::Live(bar) => bar.finish_and_clear(),
            Mode::Plain(log) => log.stop(),
        }
    }
}

fn live_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed:>4}] step {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl Observer for TerminalProgress {
    fn step(&self, index: usize, total: usize, step: Step) {
        match &self.mode {
            Mode::Live(bar) => {
                bar.set_position(index as u64 + 1);
                bar.set_message(step.name().to_string());
                // Keep a plain log of the steps above the live line.
                bar.println(format!("  step {}: {}", index + 1, step.name()));
            }
            Mode::Plain(log) => log.step(index, total, step),
        }
    }

    fn progress(&self, p: &Progress) {
        let detail = detail(p);
        match &self.mode {
            Mode::Live(bar) => bar.set_message(format!("{}{detail}", p.step)),
            Mode::Plain(log) => log.state.lock().expect("progress state").detail = detail,
        }
    }
}

/// The counters after the step's name: " [partitioned] | sent 10 acked 10 | read a=10".
fn detail(p: &Progress) -> String {
    let reads = p
        .reads
        .iter()
        .map(|(z, n)| format!("{z}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{} | sent {} acked {} | read {}",
        if p.partitioned { " [partitioned]" } else { "" },
        p.attempted,
        p.acked,
        reads
    )
}

struct PlainState {
    started: Instant,
    steps: usize,
    /// 1-based index and name of the current step.
    step: Option<(usize, &'static str)>,
    step_started: Instant,
    detail: String,
}

/// Plain lines on stderr and the heartbeat thread that repeats the current step.
struct PlainLog {
    state: Arc<Mutex<PlainState>>,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    heartbeat: Mutex<Option<JoinHandle<()>>>,
}

impl PlainLog {
    fn start(steps: usize, every: Duration) -> Self {
        let state = Arc::new(Mutex::new(PlainState {
            started: Instant::now(),
            steps,
            step: None,
            step_started: Instant::now(),
            detail: String::new(),
        }));
        let (tx, rx) = mpsc::channel::<()>();
        let shared = state.clone();
        // A thread, not a task: the engine may hold the runtime's workers
        // busy, and a heartbeat that stalls with them would hide exactly that.
        let heartbeat = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let s = shared.lock().expect("progress state");
                let line = match s.step {
                    Some((i, name)) => format!(
                        "still at step {i}/{} {name} ({:.0}s in it){}",
                        s.steps,
                        s.step_started.elapsed().as_secs_f64(),
                        s.detail
                    ),
                    None => "waiting for the drill's first step".to_string(),
                };
                emit(s.started, &line);
            }
        });
        Self {
            state,
            stop: Mutex::new(Some(tx)),
            heartbeat: Mutex::new(Some(heartbeat)),
        }
    }

    fn step(&self, index: usize, total: usize, step: Step) {
        let mut s = self.state.lock().expect("progress state");
        s.step = Some((index + 1, step.name()));
        s.step_started = Instant::now();
        s.steps = total;
        s.detail.clear();
        emit(
            s.started,
            &format!("step {}/{total}: {}", index + 1, step.name()),
        );
    }

    fn stop(&self) {
        // Dropping the sender wakes the thread at once.
        drop(self.stop.lock().expect("stop").take());
        if let Some(h) = self.heartbeat.lock().expect("heartbeat").take() {
            let _ = h.join();
        }
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One line with the seconds since the drill started, as CI logs want it.
fn emit(started: Instant, line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "[{:>6.1}s] {line}",
        started.elapsed().as_secs_f64()
    );
}
