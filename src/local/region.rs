//! A whole region as local processes: the source zone, then each mirror zone
//! dialing it through whatever the `Network` decides.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LocalError;
use super::zone::{LocalZone, ZoneOptions};
use crate::api::{RegionMirror, RegionMirrorSpec, ZoneRole, ZoneSpec, validate};
use crate::fault::Network;
use crate::plan::{RegionCredentials, UserPass};

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
            zones: Vec::new(),
            dir,
        };

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
        let opts = ZoneOptions {
            host,
            dir: Some(self.dir().join(&zone.name)),
            keep_dir: self.opts.keep_dirs,
            leaf_remotes,
            start_timeout: self.opts.start_timeout,
            nats_server: self.opts.nats_server.clone(),
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
