//! Minimal process plumbing for the test environment: free loopback ports,
//! children with a log file, and a watchdog so that no server outlives us.
//!
//! Kept private to `testenv` because `src/local/process.rs` did not exist
//! yet when this was written; fold the two together once it does.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::Error;

/// Ports already handed out by this process. The kernel may return a port we
/// probed and released a moment ago; two control planes started side by side
/// must never be given the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port nobody listens on right now. Another process can still take
/// it before our server binds it; callers retry on "address already in use".
pub(crate) fn free_port() -> Result<u16, Error> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("bind a probe socket on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("read the probe socket's port", e))?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::io(
        "find a free loopback port",
        std::io::Error::other("64 probes all returned ports already handed out"),
    ))
}

/// A running server. Its stdout and stderr go to one log file.
pub(crate) struct Proc {
    pub name: &'static str,
    pub log: PathBuf,
    child: Child,
    /// `sh` blocked on a pipe from us: when this process goes away in any way
    /// (panic=abort, SIGKILL from a test harness timeout, a static that is never
    /// dropped) the pipe closes and the watchdog kills the server, which
    /// `kill_on_drop` alone cannot do.
    watchdog: Option<Child>,
}

impl Proc {
    pub fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Proc, Error> {
        let out =
            File::create(&log).map_err(|e| Error::io(format!("create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("reopen {}", log.display()), e))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("start {}", binary.display()), e))?;
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        // If the watchdog cannot start we still have kill_on_drop; only the
        // abnormal-exit guarantee is lost, which is not worth failing a test for.
        let watchdog = Command::new("sh")
            .args([
                "-c",
                r#"read _ || kill -KILL "$1" 2>/dev/null"#,
                "natsregion-watchdog",
                &pid,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok();
        Ok(Proc {
            name,
            log,
            child,
            watchdog,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Exit status if the server has already stopped.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Error for a server that stopped while we were waiting for it.
    pub fn exited_error(&self, status: ExitStatus) -> Error {
        Error::Exited {
            name: self.name,
            status: status.to_string(),
            log: self.log.clone(),
            tail: tail(&self.log),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Watchdog first: once the server is reaped its pid may be reused, and
        // a late watchdog must not kill a stranger.
        if let Some(mut dog) = self.watchdog.take() {
            let _ = dog.start_kill();
        }
        let _ = self.child.start_kill();
        // Wait for the exit so the caller can delete the data directory without
        // racing a server that is still writing to it. SIGKILL makes this quick.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// Last lines of a log file, for error messages.
pub(crate) fn tail(path: &Path) -> String {
    const BYTES: u64 = 4096;
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(BYTES)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    // The first line is usually cut in the middle when we started mid-file.
    let skip = usize::from(len > BYTES && lines.len() > 1);
    let start = lines.len().saturating_sub(20).max(skip);
    lines[start..].join("\n")
}

/// Waits until something accepts TCP connections on `port`, failing early if
/// `proc` exits.
pub(crate) async fn wait_for_port(
    port: u16,
    proc: &mut Proc,
    timeout: Duration,
) -> Result<(), Error> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            return Err(proc.exited_error(status));
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("{} to listen on 127.0.0.1:{port}", proc.name),
                after: timeout,
                last: String::new(),
                log: proc.log.clone(),
                tail: tail(&proc.log),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
