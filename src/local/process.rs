//! A child process the runtime owns: output to a log file, killed when dropped,
//! plus the readiness waits that turn "started" into "answering".

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::LocalError;

/// How to start a child.
#[derive(Clone, Debug)]
pub struct ChildSpec {
    /// Shown in errors and logs, e.g. `nats-server east-0`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Working directory.
    pub dir: PathBuf,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

/// A running (or exited) child. Dropping it kills the child and reaps it.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    log: PathBuf,
    pid: u32,
    child: Child,
    exited: Option<std::process::ExitStatus>,
}

impl ManagedProcess {
    pub fn spawn(spec: &ChildSpec) -> Result<Self, LocalError> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|source| LocalError::Io {
                what: "cannot open log",
                path: spec.log.clone(),
                source,
            })?;
        let err_file = log_file.try_clone().map_err(|source| LocalError::Io {
            what: "cannot open log",
            path: spec.log.clone(),
            source,
        })?;
        let mut cmd = match &spec.netns {
            // `ip netns exec` execs the program in place, so the pid we hold is the server's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.arg("netns").arg("exec").arg(ns).arg(&spec.program);
                c
            }
            None => Command::new(&spec.program),
        };
        cmd.args(&spec.args)
            .current_dir(&spec.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file))
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| LocalError::Spawn {
            name: spec.name.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        Ok(Self {
            name: spec.name.clone(),
            log: spec.log.clone(),
            pid,
            child,
            exited: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// `None` while running, the exit status once it has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// SIGKILL, as a crash would, and wait for the exit.
    pub async fn kill(&mut self) -> Result<(), LocalError> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        self.child.kill().await.map_err(|source| LocalError::Io {
            what: "cannot kill process",
            path: self.log.clone(),
            source,
        })?;
        self.exited = self.child.try_wait().ok().flatten();
        Ok(())
    }

    /// SIGTERM (nats-server shuts down cleanly, flushing JetStream), then
    /// SIGKILL if it is still running after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), LocalError> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet, so it
        // cannot have been reused by another process.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.exited = Some(status);
                Ok(())
            }
            _ => self.kill().await,
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        let _ = self.child.start_kill();
        // Reap here rather than leaving it to tokio's background reaper, so
        // that once the owner is dropped the process is really gone (and its
        // directory can be removed without it still writing there).
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Ports handed out by this process and not yet forgotten. The kernel may give
/// a just-released port to the next `bind(0)`, so without this two zones
/// started at the same moment could be planned onto the same port.
static HANDED_OUT: Mutex<Vec<(IpAddr, u16)>> = Mutex::new(Vec::new());

/// A port that is free on `ip` right now. When `ip` is not an address of this
/// network namespace (a zone in its own namespace), a loopback port is taken
/// instead: that namespace's ports are all free anyway.
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .or_else(|_| TcpListener::bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)))?;
        let port = listener.local_addr()?.port();
        let mut taken = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.contains(&(ip, port)) {
            taken.push((ip, port));
            // Bounded memory; by the time this many ports were handed out the
            // oldest ones are long bound or long abandoned.
            if taken.len() > 4096 {
                taken.drain(..1024);
            }
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port found",
    ))
}

async fn wait_until<F, Fut>(
    proc: &mut ManagedProcess,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<(), LocalError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if let Some(status) = proc.exit_status() {
            return Err(LocalError::Exited {
                name: proc.name.clone(),
                status: status.to_string(),
                log_tail: proc.log_tail(30),
            });
        }
        if check().await {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(LocalError::Timeout {
                name: proc.name.clone(),
                what: what.to_string(),
                after: timeout,
                log_tail: proc.log_tail(30),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `addr` accepts TCP connections, failing early if `proc` exits.
pub async fn wait_for_tcp(
    proc: &mut ManagedProcess,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), LocalError> {
    wait_until(proc, &format!("TCP {addr}"), timeout, || async move {
        matches!(
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr)
            )
            .await,
            Ok(Ok(_))
        )
    })
    .await
}

/// Waits until `url` answers 200, failing early if `proc` exits.
pub async fn wait_for_http_ok(
    proc: &mut ManagedProcess,
    url: &str,
    timeout: Duration,
) -> Result<(), LocalError> {
    let client = http_client();
    wait_until(proc, &format!("GET {url}"), timeout, || {
        let req = client.get(url).send();
        async move { matches!(req.await, Ok(r) if r.status().is_success()) }
    })
    .await
}

/// A client for the servers' monitoring endpoints. Never through a proxy from
/// the environment: those addresses are local.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client builds")
}
