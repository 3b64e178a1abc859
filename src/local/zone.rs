//! One zone as local nats-server processes.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LocalError;
use super::process::{ChildSpec, ManagedProcess, free_port, wait_for_http_ok};
use crate::api::{RegionMirrorSpec, ZoneRole, ZoneSpec};
use crate::fault::{Network, ZoneHost};
use crate::nats::connect::ZoneEndpoint;
use crate::plan::{
    self, RegionCredentials, ServerAddress, TlsFiles, UserPass, ZoneAddresses, ZonePlan,
};
use crate::tls::{CA_KEY, CERT_KEY, KEY_KEY, ServerTls};

/// How to start a zone.
#[derive(Clone, Debug)]
pub struct ZoneOptions {
    /// Where the zone's servers run.
    pub host: ZoneHost,
    /// Directory for the servers' configs, logs and JetStream stores. `None`:
    /// a temporary directory owned by the zone.
    pub dir: Option<PathBuf>,
    /// Keep the zone's own temporary directory after it is dropped.
    pub keep_dir: bool,
    /// Mirror zones: the source zone's leafnode addresses as this zone must
    /// dial them (already routed through the network), in source server order.
    pub leaf_remotes: Vec<SocketAddr>,
    pub start_timeout: Duration,
    /// nats-server binary; `None` looks it up with `crate::tools`.
    pub nats_server: Option<PathBuf>,
    /// The zone's certificate and the CA its servers trust; required when
    /// the spec turns TLS on (the plan refuses a zone without it).
    pub tls: Option<ServerTls>,
    /// Run the servers with `-D`: the debug lines (a mirror's consumer
    /// retries) that the catch-up benchmark times against the relink.
    pub debug_logs: bool,
}

impl Default for ZoneOptions {
    fn default() -> Self {
        Self {
            host: ZoneHost::loopback(),
            dir: None,
            keep_dir: false,
            leaf_remotes: Vec::new(),
            debug_logs: false,
            start_timeout: Duration::from_secs(30),
            nats_server: None,
            tls: None,
        }
    }
}

/// One server of a local zone. Its ports and store survive a stop, so it can
/// be started again as the same server.
#[derive(Debug)]
pub struct LocalServer {
    pub index: usize,
    pub name: String,
    pub ip: IpAddr,
    pub client_port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    pub leafnode_port: Option<u16>,
    /// Clients must use TLS (`tls://` URLs).
    pub tls: bool,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    process: Option<ManagedProcess>,
}

impl LocalServer {
    pub fn client_url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://{}", SocketAddr::new(self.ip, self.client_port))
    }
    pub fn monitor_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.ip, self.monitor_port))
    }
    pub fn leafnode_addr(&self) -> Option<SocketAddr> {
        self.leafnode_port.map(|p| SocketAddr::new(self.ip, p))
    }
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }
}

enum ZoneDir {
    Owned(tempfile::TempDir),
    Kept(PathBuf),
}

impl ZoneDir {
    fn path(&self) -> &Path {
        match self {
            ZoneDir::Owned(t) => t.path(),
            ZoneDir::Kept(p) => p,
        }
    }
}

/// A running zone. Dropping it kills its servers (and removes its own
/// temporary directory, if it made one).
pub struct LocalZone {
    spec: ZoneSpec,
    host: ZoneHost,
    plan: ZonePlan,
    servers: Vec<LocalServer>,
    nats_server: PathBuf,
    debug_logs: bool,
    timeout: Duration,
    // Last: dropped after the servers are dead.
    dir: ZoneDir,
}

impl std::fmt::Debug for LocalZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalZone")
            .field("name", &self.spec.name)
            .field("dir", &self.dir.path())
            .field("servers", &self.servers)
            .finish()
    }
}

/// Attempts at a zone start. Ports are picked free but released before the
/// servers bind them, so another process can take one in between.
const START_ATTEMPTS: usize = 3;

impl LocalZone {
    /// Starts zone `zone` of `spec` and returns when every server answers
    /// `/healthz` (JetStream enabled, then the zone's meta group current).
    /// `network` only supplies the source zone's leafnode `advertise`.
    pub async fn start(
        spec: &RegionMirrorSpec,
        zone: &str,
        credentials: &RegionCredentials,
        network: &dyn Network,
        opts: ZoneOptions,
    ) -> Result<LocalZone, LocalError> {
        let zspec = spec
            .zone(zone)
            .ok_or_else(|| LocalError::UnknownZone(zone.to_string()))?
            .clone();
        if zspec.external.is_some() {
            return Err(LocalError::ExternalZone(zspec.name));
        }
        let nats_server = match &opts.nats_server {
            Some(p) => p.clone(),
            None => crate::tools::binary("nats-server")?,
        };
        let mut dir = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|source| LocalError::Io {
                    what: "cannot create zone directory",
                    path: d.clone(),
                    source,
                })?;
                ZoneDir::Kept(d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix(&format!("natsregion-{zone}-"))
                    .tempdir()
                    .map_err(|source| LocalError::Io {
                        what: "cannot create temporary directory in",
                        path: std::env::temp_dir(),
                        source,
                    })?;
                if opts.keep_dir {
                    ZoneDir::Kept(t.keep())
                } else {
                    ZoneDir::Owned(t)
                }
            }
        };

        let mut last_err = None;
        for attempt in 0..START_ATTEMPTS {
            let (plan, servers) = plan_servers(
                spec,
                &zspec,
                credentials,
                network,
                &opts,
                dir.path(),
                attempt,
            )?;
            let mut started = LocalZone {
                spec: zspec.clone(),
                host: opts.host.clone(),
                plan,
                servers,
                nats_server: nats_server.clone(),
                debug_logs: opts.debug_logs,
                timeout: opts.start_timeout,
                dir,
            };
            match started.launch_all().await {
                Ok(()) => return Ok(started),
                Err(e) => {
                    let port_clash = started.servers.iter().any(|s| {
                        super::process::log_tail(&s.log_path, 50).contains("address already in use")
                    });
                    started.kill_all();
                    dir = std::mem::replace(&mut started.dir, ZoneDir::Kept(PathBuf::new()));
                    if !port_clash {
                        return Err(e);
                    }
                    tracing::debug!(
                        zone,
                        attempt,
                        "a port was taken before the server bound it; retrying with new ports"
                    );
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    async fn launch_all(&mut self) -> Result<(), LocalError> {
        for i in 0..self.servers.len() {
            self.spawn(i)?;
        }
        // Each server's own readiness first, then the cluster's: a clustered
        // server reports JetStream enabled before its meta group has a leader.
        for i in 0..self.servers.len() {
            self.wait_ready(i, "/healthz?js-enabled-only=true").await?;
        }
        for i in 0..self.servers.len() {
            self.wait_ready(i, "/healthz").await?;
        }
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> Result<(), LocalError> {
        let s = &mut self.servers[i];
        let mut args = vec!["-c".into(), s.config_path.clone().into()];
        if self.debug_logs {
            args.push("-D".into());
        }
        let spec = ChildSpec {
            name: format!("nats-server {}", s.name),
            program: self.nats_server.clone(),
            args,
            dir: s.dir.clone(),
            log: s.log_path.clone(),
            netns: self.host.netns.clone(),
        };
        s.process = Some(ManagedProcess::spawn(&spec)?);
        Ok(())
    }

    async fn wait_ready(&mut self, i: usize, path: &str) -> Result<(), LocalError> {
        let url = format!("{}{path}", self.servers[i].monitor_url());
        let timeout = self.timeout;
        let proc = self.servers[i]
            .process
            .as_mut()
            .expect("server was spawned");
        wait_for_http_ok(proc, &url, timeout).await
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn domain(&self) -> &str {
        self.spec.domain()
    }
    pub fn role(&self) -> ZoneRole {
        self.spec.role
    }
    pub fn spec(&self) -> &ZoneSpec {
        &self.spec
    }
    pub fn host(&self) -> &ZoneHost {
        &self.host
    }
    /// The configuration the servers were started with.
    pub fn plan(&self) -> &ZonePlan {
        &self.plan
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn servers(&self) -> &[LocalServer] {
        &self.servers
    }
    pub fn client_urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.client_url()).collect()
    }
    /// How a client reaches the zone as `user`, verifying with `ca`.
    pub fn endpoint(&self, user: &UserPass, ca: Option<String>) -> ZoneEndpoint {
        ZoneEndpoint {
            zone: self.name().to_string(),
            urls: self.client_urls(),
            user: Some(user.user.clone()),
            password: Some(user.password.clone()),
            domain: Some(self.domain().to_string()),
            ca,
        }
    }
    pub fn monitor_urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.monitor_url()).collect()
    }
    /// Leafnode listeners (source zone only; empty for a mirror zone).
    pub fn leafnode_addrs(&self) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .filter_map(|s| s.leafnode_addr())
            .collect()
    }
    /// Replaces the zone's certificate files and has every running server
    /// reload its configuration (SIGHUP), which rereads them: new links get
    /// the new certificate, established ones stay up.
    pub fn replace_certificate(&mut self, tls: &ServerTls) -> Result<(), LocalError> {
        write_tls_files(self.dir.path(), self.name(), tls)?;
        for s in &self.servers {
            if let Some(pid) = s.pid() {
                // SAFETY: kill(2) with a pid we spawned and still own.
                let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
                if rc != 0 {
                    return Err(LocalError::Io {
                        what: "cannot signal (SIGHUP) nats-server for",
                        path: s.config_path.clone(),
                        source: std::io::Error::last_os_error(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Replaces the zone's certificate files and restarts its servers one
    /// at a time, each once the previous one is back: what a StatefulSet's
    /// rolling update does when the operator changes a zone's certificate
    /// Secret (the pod template carries its fingerprint).
    pub async fn roll_certificate(&mut self, tls: &ServerTls) -> Result<(), LocalError> {
        write_tls_files(self.dir.path(), self.name(), tls)?;
        for i in 0..self.servers.len() {
            self.stop_server(i).await?;
            self.start_server(i).await?;
        }
        Ok(())
    }

    /// Pids of the servers that were started and not stopped through the zone.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.pid()).collect()
    }

    fn server_mut(&mut self, i: usize) -> Result<&mut LocalServer, LocalError> {
        let zone = self.spec.name.clone();
        self.servers
            .get_mut(i)
            .ok_or(LocalError::NoSuchServer { zone, index: i })
    }

    /// Crash server `i` (SIGKILL).
    pub async fn kill_server(&mut self, i: usize) -> Result<(), LocalError> {
        if let Some(mut p) = self.server_mut(i)?.process.take() {
            p.kill().await?;
        }
        Ok(())
    }

    /// Shut server `i` down cleanly (SIGTERM, SIGKILL after 10 s).
    pub async fn stop_server(&mut self, i: usize) -> Result<(), LocalError> {
        if let Some(mut p) = self.server_mut(i)?.process.take() {
            p.stop(Duration::from_secs(10)).await?;
        }
        Ok(())
    }

    /// Start server `i` again with its old ports and store, and wait until
    /// its JetStream is enabled. A server that is still running is left alone.
    pub async fn start_server(&mut self, i: usize) -> Result<(), LocalError> {
        if self.server_mut(i)?.is_running() {
            return Ok(());
        }
        self.spawn(i)?;
        self.wait_ready(i, "/healthz?js-enabled-only=true").await
    }

    /// Shut every server down cleanly.
    pub async fn stop(&mut self) -> Result<(), LocalError> {
        let stops = self
            .servers
            .iter_mut()
            .filter_map(|s| s.process.take())
            .map(|mut p| async move { p.stop(Duration::from_secs(10)).await });
        for r in futures::future::join_all(stops).await {
            r?;
        }
        Ok(())
    }

    /// Kill every server now (SIGKILL) and reap them.
    pub fn kill_all(&mut self) {
        for s in &mut self.servers {
            // ManagedProcess kills and reaps on drop.
            drop(s.process.take());
        }
    }
}

impl Drop for LocalZone {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Picks ports, writes each server's config, and returns the plan and the
/// (not yet started) servers.
fn plan_servers(
    spec: &RegionMirrorSpec,
    zone: &ZoneSpec,
    credentials: &RegionCredentials,
    network: &dyn Network,
    opts: &ZoneOptions,
    dir: &Path,
    attempt: usize,
) -> Result<(ZonePlan, Vec<LocalServer>), LocalError> {
    let ip = opts.host.ip;
    let host = ip.to_string();
    let port = || {
        free_port(ip).map_err(|source| LocalError::Io {
            what: "no free port on",
            path: PathBuf::from(ip.to_string()),
            source,
        })
    };
    let is_source = zone.is_source();
    let mut servers = Vec::new();
    let mut addresses = ZoneAddresses {
        tls: match &opts.tls {
            Some(tls) => Some(write_tls_files(dir, &zone.name, tls)?),
            None => None,
        },
        ..ZoneAddresses::default()
    };
    for i in 0..zone.servers.max(0) as usize {
        let name = format!("{}-{i}", zone.name);
        // A fresh directory per attempt: a half-started server may have left a store behind.
        let sdir = dir.join(if attempt == 0 {
            name.clone()
        } else {
            format!("{name}.{attempt}")
        });
        std::fs::create_dir_all(sdir.join("jetstream")).map_err(|source| LocalError::Io {
            what: "cannot create server directory",
            path: sdir.clone(),
            source,
        })?;
        let (client_port, cluster_port, monitor_port) = (port()?, port()?, port()?);
        let leafnode_port = if is_source { Some(port()?) } else { None };
        let leaf_advertise =
            leafnode_port.and_then(|p| network.leaf_advertise(i, SocketAddr::new(ip, p)));
        addresses.routes.push(format!(
            "nats-route://{}",
            plan::host_port(&host, cluster_port)
        ));
        addresses.servers.push(ServerAddress {
            name: name.clone(),
            host: host.clone(),
            client_port,
            cluster_port,
            monitor_port,
            leafnode_port,
            leaf_advertise,
            store_dir: sdir.join("jetstream").to_string_lossy().into_owned(),
        });
        servers.push(LocalServer {
            index: i,
            name,
            ip,
            client_port,
            cluster_port,
            monitor_port,
            leafnode_port,
            tls: opts.tls.is_some(),
            config_path: sdir.join("nats.conf"),
            log_path: sdir.join("nats.log"),
            dir: sdir,
            process: None,
        });
    }
    addresses.leaf_remotes = opts.leaf_remotes.iter().map(|a| a.to_string()).collect();
    addresses.leaf_remotes_only = network.leaf_routes_only();
    let plan = ZonePlan::build(spec, &zone.name, &addresses, credentials)?;
    for (server, sp) in servers.iter().zip(&plan.servers) {
        std::fs::write(&server.config_path, sp.render()).map_err(|source| LocalError::Io {
            what: "cannot write config",
            path: server.config_path.clone(),
            source,
        })?;
    }
    Ok((plan, servers))
}

/// The DNS name a local zone's certificate carries for its routes
/// (`plan::TlsFiles::route_identity`). Locally every zone may listen on the
/// same address, so no address tells them apart; this name does. It is
/// never resolved.
pub fn route_identity(zone: &str) -> String {
    format!("routes.{zone}.natsregion.internal")
}

/// Writes the zone's certificate, key and CA under `<zone dir>/tls`, in the
/// file names of a cert-manager Secret, and returns their paths. The key file
/// is readable by its owner only.
fn write_tls_files(dir: &Path, zone: &str, tls: &ServerTls) -> Result<TlsFiles, LocalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tls_dir = dir.join("tls");
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| LocalError::Io { what, path, source }
    };
    std::fs::create_dir_all(&tls_dir).map_err(io("cannot create", &tls_dir))?;
    let write = |name: &str, text: &str, mode: u32| -> Result<String, LocalError> {
        let path = tls_dir.join(name);
        // Written beside and renamed: a server reloading mid-write never
        // reads half a file.
        let tmp = tls_dir.join(format!(".{name}.new"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("cannot write", &tmp))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot write", &path))?;
        Ok(path.to_string_lossy().into_owned())
    };
    Ok(TlsFiles {
        cert_file: write(CERT_KEY, &tls.cert.cert, 0o644)?,
        key_file: write(KEY_KEY, &tls.cert.key, 0o600)?,
        ca_file: write(CA_KEY, &tls.ca, 0o644)?,
        route_identity: route_identity(zone),
    })
}
