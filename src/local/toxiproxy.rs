//! A toxiproxy-server of our own on loopback, for the toxiproxy fault backend
//! in local mode and in tests. The process dies with the value that owns it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fault::FaultError;

const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Tries before giving up: the port is chosen before the server binds it, so
/// another process can take it in between.
const START_ATTEMPTS: usize = 4;

/// A running toxiproxy-server, killed on drop.
#[derive(Debug)]
pub struct ToxiproxyServer {
    child: Child,
    api: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ToxiproxyServer {
    /// Start `toxiproxy-server` (found by [`crate::tools::binary`]) on a free
    /// loopback port and wait until its API answers.
    pub async fn start() -> Result<Self, FaultError> {
        let bin =
            crate::tools::binary("toxiproxy-server").map_err(|e| FaultError::Unsupported {
                backend: "toxiproxy",
                what: e.to_string(),
            })?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&bin).await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn start_once(bin: &std::path::Path) -> Result<Self, FaultError> {
        let fail = |message: String| FaultError::Toxiproxy {
            op: "start toxiproxy-server".into(),
            message,
        };
        let dir = tempfile::Builder::new()
            .prefix("natsregion-toxiproxy-")
            .tempdir()
            .map_err(|e| fail(e.to_string()))?;
        let log = dir.path().join("toxiproxy.log");
        let port = free_loopback_port().map_err(|e| fail(format!("no free port: {e}")))?;
        let api = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let out =
            std::fs::File::create(&log).map_err(|e| fail(format!("{}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| fail(e.to_string()))?;
        let child = Command::new(bin)
            .args(["-host", "127.0.0.1", "-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", bin.display())))?;
        let mut server = Self {
            child,
            api,
            log,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), FaultError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| FaultError::Toxiproxy {
                op: "http client".into(),
                message: e.to_string(),
            })?;
        let url = format!("{}/version", self.url());
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(FaultError::Toxiproxy {
                    op: "start toxiproxy-server".into(),
                    message: format!(
                        "exited ({status}) before it was ready; log tail:\n{}",
                        self.log_tail()
                    ),
                });
            }
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(FaultError::Toxiproxy {
                    op: "start toxiproxy-server".into(),
                    message: format!(
                        "API not answering after {READY_TIMEOUT:?}; log tail:\n{}",
                        self.log_tail()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ToxiproxyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
