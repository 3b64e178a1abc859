//! `natsregion-bench newcomer`: what the README's first command costs a
//! newcomer. A fresh clone of the repository's HEAD (only what is committed,
//! an empty `target/`), then `make demo` in it, timed from the start to the
//! drill's verdict. The tools come from the usual cache (the goal is the
//! figure "with tools cached"), and so do the crates cargo has already
//! downloaded: this machine reaches crates.io, but a download's time is the
//! network's, not the build's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use super::BenchError;
use super::goals::{GoalRow, render};

/// The goal for a cold `make demo` with tools cached.
pub const DEMO_GOAL_SECONDS: f64 = 240.0;

#[derive(Clone, Debug)]
pub struct NewcomerFigures {
    pub commit: String,
    pub wall_seconds: f64,
    /// Cargo's own figure for the build (`Finished ... in ...`), when printed.
    pub build_seconds: Option<f64>,
    pub passed: bool,
    pub log: PathBuf,
}

/// Clones `repo` into a temporary directory and runs `make demo` there.
pub fn run(repo: &Path) -> Result<NewcomerFigures, BenchError> {
    let dir = tempfile::Builder::new()
        .prefix("natsregion-newcomer-")
        .tempdir()
        .map_err(|e| BenchError(format!("temporary directory: {e}")))?
        .keep();
    let clone = dir.join("natsregion");
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet"])
        .arg(repo)
        .arg(&clone)
        .status()
        .map_err(|e| BenchError(format!("git clone: {e}")))?;
    if !status.success() {
        return Err(BenchError(format!(
            "git clone {} failed: {status}",
            repo.display()
        )));
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&clone)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let log = dir.join("make-demo.log");
    let out = std::fs::File::create(&log)
        .map_err(|e| BenchError(format!("create {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| BenchError(format!("{}: {e}", log.display())))?;
    println!(
        "== make demo in a fresh clone of {commit} ({}); log {}",
        clone.display(),
        log.display()
    );
    let started = Instant::now();
    let status = std::process::Command::new("make")
        .arg("demo")
        .current_dir(&clone)
        // The clone's own, empty target/, whatever this shell points cargo at.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| BenchError(format!("make demo: {e}")))?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    Ok(NewcomerFigures {
        commit,
        wall_seconds,
        build_seconds: text.lines().find_map(cargo_finished_seconds),
        passed: status.success(),
        log,
    })
}

/// The seconds of cargo's `Finished ... target(s) in 2m 59s` line.
pub fn cargo_finished_seconds(line: &str) -> Option<f64> {
    let rest = line.trim().strip_prefix("Finished ")?;
    let took = rest.rsplit_once(" in ")?.1.trim();
    let mut seconds = 0.0;
    for part in took.split_whitespace() {
        if let Some(m) = part.strip_suffix('m') {
            seconds += m.parse::<f64>().ok()? * 60.0;
        } else if let Some(s) = part.strip_suffix('s') {
            seconds += s.parse::<f64>().ok()?;
        } else {
            return None;
        }
    }
    Some(seconds)
}

pub fn table(f: &NewcomerFigures) -> String {
    let build = f
        .build_seconds
        .map_or("n/a".to_string(), |s| format!("{s:.0} s"));
    let mut out = format!(
        "== newcomer: make demo in a fresh clone of {}\n  wall {:.0} s (cargo build {build}), drill {}; log {}\n",
        f.commit,
        f.wall_seconds,
        if f.passed { "passed" } else { "FAILED" },
        f.log.display()
    );
    out.push_str(&render(&[GoalRow::new(
        "newcomer make demo, empty target dir, tools cached",
        format!("{:.1} min (build {build})", f.wall_seconds / 60.0),
        format!("<= {:.0} min", DEMO_GOAL_SECONDS / 60.0),
        Some(f.passed && f.wall_seconds <= DEMO_GOAL_SECONDS),
    )]));
    out
}

#[cfg(test)]
mod tests {
    use super::cargo_finished_seconds;

    #[test]
    fn cargos_finished_line_gives_its_seconds() {
        let s = |l| cargo_finished_seconds(l);
        assert_eq!(
            s("    Finished `dev` profile [unoptimized + debuginfo] target(s) in 2m 59s"),
            Some(179.0)
        );
        assert_eq!(
            s("Finished `release` profile [optimized] target(s) in 41.27s"),
            Some(41.27)
        );
        assert_eq!(s("   Compiling natsregion v0.1.0"), None);
    }
}
