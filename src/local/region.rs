//! A whole region as local processes: the source zone, then each mirror zone
//! dialing it through whatever the `Network` decides.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LocalError;
use super::zone::{LocalZone, ZoneOptions};
use crate::api::{RegionMirror, RegionMirrorSpec, TlsMode, ZoneRole, ZoneSpec, validate};
use crate::fault::{Network, ZoneHost};
use crate::plan::{RegionCredentials, UserPass};
use crate::tls::{CertKeyPem, ServerTls};

#[derive(Clone, Debug)]
pub struct LocalRegionOptions {
    /// Parent directory for the region's files; `None`: the system temp dir.
    pub base_dir: Option<PathBuf>,
    /// Keep configs, logs and stores after the region is gone (for post-mortems).
    pub keep_dirs: bool,
    /// Per zone: how long its servers may take to become healthy.
    pub start_timeout: Duration,
    /// nats-server binary; `None` looks it up with `crate::tools`.
    pub nats_server: Option<PathBuf>,
    /// Users for the servers; `None` generates them (locally there are no Secrets).
    pub credentials: Option<RegionCredentials>,
    /// Return from `start`/`add_zone` only once every mirror server has its
    /// leafnode link to the source zone up.
    pub wait_for_leafnodes: bool,
    /// Lifetime of the zones' certificates (the throwaway CA lives ten times
    /// as long). Short in tests of renewal.
    pub certificate_lifetime: Duration,
    /// Servers log at debug level (see [`ZoneOptions::debug_logs`]).
    pub debug_logs: bool,
}

impl Default for LocalRegionOptions {
    fn default() -> Self {
        Self {
            base_dir: None,
            keep_dirs: false,
            start_timeout: Duration::from_secs(30),
            nats_server: None,
            credentials: None,
            wait_for_leafnodes: true,
            certificate_lifetime: Duration::from_secs(86_400),
            debug_logs: false,
        }
    }
}

/// A running local region. Dropping it kills every server and removes its
/// directory (unless `keep_dirs`).
pub struct LocalRegion {
    spec: RegionMirrorSpec,
    network: Arc<dyn Network>,
    opts: LocalRegionOptions,
    credentials: RegionCredentials,
    /// The region's throwaway CA, when the spec turns TLS on.
    ca: Option<CertKeyPem>,
    // Zones before the directory, so servers die before their files go.
    zones: Vec<LocalZone>,
    dir: RegionDir,
}

impl std::fmt::Debug for LocalRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRegion")
            .field("dir", &self.dir())
            .field("zones", &self.zones)
            .finish_non_exhaustive()
    }
}

enum RegionDir {
    Owned(tempfile::TempDir),
    Kept(PathBuf),
}

impl LocalRegion {
    /// Validates `spec` with the CRD's rules, then starts the source zone and
    /// every mirror zone, in spec order.
    pub async fn start(
        spec: &RegionMirrorSpec,
        network: Arc<dyn Network>,
        opts: LocalRegionOptions,
    ) -> Result<LocalRegion, LocalError> {
        validate::region(&RegionMirror::new("local", spec.clone()), None)?;
        if let Some(z) = spec.zones.iter().find(|z| z.external.is_some()) {
            return Err(LocalError::ExternalZone(z.name.clone()));
        }
        let credentials = match &opts.credentials {
            Some(c) => c.clone(),
            None => generate_credentials()?,
        };
        let ca = match spec.tls.mode {
            TlsMode::Disabled => None,
            TlsMode::Generated => Some(crate::tls::issue_ca(
                "natsregion local region",
                jiff::Timestamp::now(),
                opts.certificate_lifetime * 10,
            )?),
            TlsMode::Secrets => return Err(LocalError::Invalid(
                "tls.mode Secrets names Kubernetes Secrets, which a local region does not have: use tls.mode Generated (a throwaway CA) or Disabled".to_string(),
            )),
        };
        let base = opts.base_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).map_err(|source| LocalError::Io {
            what: "cannot create",
            path: base.clone(),
            source,
        })?;
        let tmp = tempfile::Builder::new()
            .prefix("natsregion-")
            .tempdir_in(&base)
            .map_err(|source| LocalError::Io {
                what: "cannot create a directory in",
                path: base.clone(),
                source,
            })?;
        let dir = if opts.keep_dirs {
            RegionDir::Kept(tmp.keep())
        } else {
            RegionDir::Owned(tmp)
        };
        let mut region = LocalRegion {
            spec: spec.clone(),
            network,
            opts,
            credentials,
            ca,
            zones: Vec::new(),
            dir,
        };
        if let Some(ca) = &region.ca {
            let path = region.dir().join(crate::tls::CA_KEY);
            std::fs::write(&path, &ca.cert).map_err(|source| LocalError::Io {
                what: "cannot write",
                path,
                source,
            })?;
        }

        let source = spec
            .source_zone()
            .expect("validated: one source zone")
            .clone();
        region.start_zone(&source).await?;
        for zone in spec.mirror_zones() {
            region.start_zone(zone).await?;
        }
        Ok(region)
    }

    async fn start_zone(&mut self, zone: &ZoneSpec) -> Result<(), LocalError> {
        let host = self.network.prepare_zone(&zone.name).await?;
        let mut leaf_remotes = Vec::new();
        if zone.role == ZoneRole::Mirror {
            let upstream = self.source_zone().leafnode_addrs();
            for (i, addr) in upstream.into_iter().enumerate() {
                leaf_remotes.push(self.network.leaf_route(&zone.name, i, addr).await?);
            }
        }
        let tls = self.zone_certificate(&zone.name, &host)?;
        let opts = ZoneOptions {
            host,
            dir: Some(self.dir().join(&zone.name)),
            keep_dir: self.opts.keep_dirs,
            leaf_remotes,
            start_timeout: self.opts.start_timeout,
            nats_server: self.opts.nats_server.clone(),
            tls,
            debug_logs: self.opts.debug_logs,
        };
        let started = LocalZone::start(
            &self.spec,
            &zone.name,
            &self.credentials,
            self.network.as_ref(),
            opts,
        )
        .await?;
        if zone.role == ZoneRole::Mirror && self.opts.wait_for_leafnodes {
            wait_for_leafnodes(&started, self.opts.start_timeout).await?;
        }
        self.zones.push(started);
        Ok(())
    }

    /// A fresh certificate for zone `zone` on `host`: every address its
    /// peers, clients and mirror zones dial it at (its own, and loopback,
    /// where Toxiproxy listens).
    fn zone_certificate(
        &self,
        zone: &str,
        host: &ZoneHost,
    ) -> Result<Option<ServerTls>, LocalError> {
        match &self.ca {
            Some(ca) => Ok(Some(zone_tls(
                ca,
                zone,
                host,
                self.opts.certificate_lifetime,
            )?)),
            None => Ok(None),
        }
    }

    /// The region's CA certificate (PEM), when it runs TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|ca| ca.cert.as_str())
    }

    /// Issues every zone a new certificate and has its servers reload it,
    /// as the operator does before a certificate expires.
    pub fn renew_certificates(&mut self) -> Result<(), LocalError> {
        for i in 0..self.zones.len() {
            let (name, host) = (
                self.zones[i].name().to_string(),
                self.zones[i].host().clone(),
            );
            if let Some(tls) = self.zone_certificate(&name, &host)? {
                self.zones[i].replace_certificate(&tls)?;
            }
        }
        Ok(())
    }

    pub fn spec(&self) -> &RegionMirrorSpec {
        &self.spec
    }
    pub fn network(&self) -> &Arc<dyn Network> {
        &self.network
    }
    pub fn dir(&self) -> &Path {
        match &self.dir {
            RegionDir::Owned(t) => t.path(),
            RegionDir::Kept(p) => p,
        }
    }
    /// The users every server accepts (generated unless the options gave some).
    pub fn credentials(&self) -> &RegionCredentials {
        &self.credentials
    }
    pub fn zone(&self, name: &str) -> Option<&LocalZone> {
        self.zones.iter().find(|z| z.name() == name)
    }
    pub fn zone_mut(&mut self, name: &str) -> Option<&mut LocalZone> {
        self.zones.iter_mut().find(|z| z.name() == name)
    }
    pub fn source_zone(&self) -> &LocalZone {
        self.zones
            .iter()
            .find(|z| z.role() == ZoneRole::Source)
            .expect("the source zone starts first and is never removed")
    }
    pub fn zones(&self) -> impl Iterator<Item = &LocalZone> {
        self.zones.iter()
    }
    /// Pids of every server of every zone.
    pub fn pids(&self) -> Vec<u32> {
        self.zones.iter().flat_map(|z| z.pids()).collect()
    }

    /// Starts a new mirror zone while the region runs, wired like the others;
    /// producers need no change. The zone joins `spec()`.
    pub async fn add_zone(&mut self, zone: &ZoneSpec) -> Result<&LocalZone, LocalError> {
        if zone.role != ZoneRole::Mirror {
            return Err(LocalError::Invalid(format!(
                "zone {} must have role mirror: a region has exactly one source zone",
                zone.name
            )));
        }
        if zone.external.is_some() {
            return Err(LocalError::ExternalZone(zone.name.clone()));
        }
        if self.spec.zone(&zone.name).is_some() {
            return Err(LocalError::DuplicateZone(zone.name.clone()));
        }
        let mut next = self.spec.clone();
        next.zones.push(zone.clone());
        validate::region(
            &RegionMirror::new("local", next.clone()),
            Some(&RegionMirror::new("local", self.spec.clone())),
        )?;
        let previous = std::mem::replace(&mut self.spec, next);
        if let Err(e) = self.start_zone(zone).await {
            self.spec = previous;
            return Err(e);
        }
        Ok(self.zones.last().expect("just pushed"))
    }

    /// Stops a mirror zone cleanly, deletes its files (unless kept) and drops it from `spec()`.
    pub async fn remove_zone(&mut self, name: &str) -> Result<(), LocalError> {
        let idx = self
            .zones
            .iter()
            .position(|z| z.name() == name)
            .ok_or_else(|| LocalError::UnknownZone(name.to_string()))?;
        if self.zones[idx].role() == ZoneRole::Source {
            return Err(LocalError::Invalid(format!(
                "zone {name} is the source zone and cannot be removed"
            )));
        }
        let mut zone = self.zones.remove(idx);
        self.spec.zones.retain(|z| z.name != name);
        let stopped = zone.stop().await;
        let zdir = zone.dir().to_path_buf();
        drop(zone);
        if !self.opts.keep_dirs {
            let _ = std::fs::remove_dir_all(zdir);
        }
        stopped
    }

    /// Shuts every zone down cleanly, mirrors first, then removes the files (unless kept).
    pub async fn stop(mut self) -> Result<(), LocalError> {
        let mut first_err = None;
        while let Some(mut zone) = self.zones.pop() {
            if let Err(e) = zone.stop().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for LocalRegion {
    fn drop(&mut self) {
        // Explicit so the order does not depend on field order: servers die,
        // then the TempDir (if owned) removes their files.
        self.zones.clear();
    }
}

/// A certificate of `ca` for local zone `zone` on `host`, valid for `lifetime`:
/// for its own address, and loopback, where Toxiproxy listens for it.
pub fn zone_tls(
    ca: &CertKeyPem,
    zone: &str,
    host: &ZoneHost,
    lifetime: Duration,
) -> Result<ServerTls, LocalError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        super::zone::route_identity(zone),
    ];
    if host.ip.to_string() != "127.0.0.1" {
        names.push(host.ip.to_string());
    }
    let cert = crate::tls::issue_server(ca, zone, &names, jiff::Timestamp::now(), lifetime)?;
    Ok(ServerTls {
        cert,
        ca: ca.cert.clone(),
    })
}

/// Waits until every server of mirror zone `zone` reports a leafnode link.
async fn wait_for_leafnodes(zone: &LocalZone, timeout: Duration) -> Result<(), LocalError> {
    let client = super::process::http_client();
    let start = Instant::now();
    for server in zone.servers() {
        let url = format!("{}/leafz", server.monitor_url());
        loop {
            let leafs = match client.get(&url).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["leafnodes"].as_u64())
                    .unwrap_or(0),
                Err(_) => 0,
            };
            if leafs > 0 {
                break;
            }
            if start.elapsed() >= timeout {
                return Err(LocalError::Timeout {
                    name: format!("nats-server {}", server.name),
                    what: "leafnode link to the source zone".to_string(),
                    after: timeout,
                    log_tail: super::process::log_tail(&server.log_path, 30),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn random_password() -> Result<String, LocalError> {
    crate::password::random(24).map_err(|source| LocalError::Io {
        what: "cannot read",
        path: "/dev/urandom".into(),
        source,
    })
}

/// Fresh random users for a region that runs without Secrets.
pub fn generate_credentials() -> Result<RegionCredentials, LocalError> {
    Ok(RegionCredentials {
        app: UserPass {
            user: "app".into(),
            password: random_password()?,
        },
        system: UserPass {
            user: "sys".into(),
            password: random_password()?,
        },
    })
}
