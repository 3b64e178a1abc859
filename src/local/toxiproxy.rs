//! A toxiproxy-server of our own on loopback, for the toxiproxy fault backend
//! in local mode and in tests. The process dies with the value that owns it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::LocalError;
use super::process::{ChildSpec, ManagedProcess, free_port, wait_for_http_ok};

const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Tries before giving up: the port is chosen before the server binds it, so
/// another process can take it in between.
const START_ATTEMPTS: usize = 4;

/// A running toxiproxy-server, killed on drop.
#[derive(Debug)]
pub struct ToxiproxyServer {
    process: ManagedProcess,
    api: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ToxiproxyServer {
    /// Start `toxiproxy-server` (found by [`crate::tools::binary`]) on a free
    /// loopback port and wait until `GET /version` answers.
    pub async fn start() -> Result<Self, LocalError> {
        let program = crate::tools::binary("toxiproxy-server")?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("natsregion-toxiproxy-")
                .tempdir()
                .map_err(|source| LocalError::Io {
                    what: "cannot create directory in",
                    path: std::env::temp_dir(),
                    source,
                })?;
            let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let port = free_port(ip).map_err(|source| LocalError::Io {
                what: "no free port on",
                path: "127.0.0.1".into(),
                source,
            })?;
            let api = SocketAddr::new(ip, port);
            let spec = ChildSpec {
                name: format!("toxiproxy-server {api}"),
                program: program.clone(),
                args: vec![
                    "-host".into(),
                    ip.to_string().into(),
                    "-port".into(),
                    port.to_string().into(),
                ],
                dir: dir.path().to_path_buf(),
                log: dir.path().join("toxiproxy.log"),
                netns: None,
            };
            let mut process = ManagedProcess::spawn(&spec)?;
            match wait_for_http_ok(
                &mut process,
                &format!("http://{api}/version"),
                READY_TIMEOUT,
            )
            .await
            {
                Ok(()) => {
                    return Ok(Self {
                        process,
                        api,
                        _dir: dir,
                    });
                }
                // Most likely the port was taken in between: try another.
                Err(e @ LocalError::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail(20)
    }
}
