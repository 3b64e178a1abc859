//! Leafnode links routed through Toxiproxy; a cut disables the proxies.
//!
//! A proxy cut alone does not hold: the remote learns the hub's own leafnode
//! URL from INFO and redials it directly (docs/architecture.md, fact 2). So the hub must
//! advertise an address that leads nowhere: a loopback port that this backend
//! keeps bound without listening, so nothing else can take it and every
//! connection to it is refused. `advertise_fix: false` drops that guard and
//! exists to show the leak.
//!
//! [`ToxiproxyBackend::adopt`] drives proxies someone else created (the
//! operator's region controller, or whoever wired external zones), found by
//! name, `<prefix>-<zone>-s<n>`: it cuts, heals, probes, lists and shapes them
//! like its own, and leaves the advertise fix to whoever wired them.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use tokio::task::JoinHandle;

pub mod api;

use self::api::{ProxyInfo, ToxiproxyApi, parse_proxy_name, proxy_name};
use super::leaflinks::LeafLinks;
use super::{FaultBackend, FaultError, Network, ZoneHost};
use crate::api::{FaultRecord, Toxic, ToxicType};

/// How long a probe waits for a connection and then for the `INFO` line.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Toxiproxy fault backend: one proxy per (mirror zone, source server).
pub struct ToxiproxyBackend {
    inner: Arc<Inner>,
}

struct Inner {
    api: ToxiproxyApi,
    /// Starts every proxy name this instance creates, so several drills (or
    /// parallel tests) can share one toxiproxy-server.
    prefix: String,
    advertise_fix: bool,
    /// The proxies were created elsewhere: `routes` is re-read from the API
    /// (by name) before each use instead of being remembered.
    adopted: bool,
    /// Where proxies listen. Loopback unless the zones run elsewhere.
    listen_ip: IpAddr,
    /// The zones' leafnode links, to break the ones a cut leaves standing.
    links: LeafLinks,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// zone → its proxies.
    routes: BTreeMap<String, Vec<Route>>,
    /// source server → the leafnode address it advertises (what remotes learn).
    advertised: BTreeMap<usize, SocketAddr>,
    /// Bound, never listening: connections to these are refused.
    reserved: HashMap<IpAddr, tokio::net::TcpSocket>,
    /// fault id → task that heals it at its deadline.
    deadlines: HashMap<String, JoinHandle<()>>,
    faults: u64,
}

#[derive(Clone, Debug)]
struct Route {
    source_server: usize,
    proxy: String,
    /// `host:port` to dial the proxy at from this process.
    listen: String,
    /// `host:port` the proxy dials.
    upstream: String,
    enabled: bool,
}

impl ToxiproxyBackend {
    /// `api` is toxiproxy-server's base URL (`http://127.0.0.1:8474`).
    /// `advertise_fix` makes [`Network::leaf_advertise`] return an address that
    /// does not bypass the proxy; turn it off only to demonstrate the leak.
    pub fn new(api: impl Into<String>, advertise_fix: bool) -> Self {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("natsregion-{:x}-{n:x}", std::process::id());
        Self::with_prefix(api, advertise_fix, prefix)
    }

    /// Drives the proxies named `<prefix>-<zone>-s<n>` that already exist at
    /// `api` (created by another process): the zone and the source server
    /// index come from the name, and they are looked up again before every
    /// cut, probe and toxic, so proxies created later are found too. Heal and
    /// leftovers cover every proxy under the prefix, as for [`new`](Self::new).
    pub fn adopt(api: impl Into<String>, prefix: impl Into<String>) -> Self {
        let mut backend = Self::with_prefix(api, true, prefix);
        Arc::get_mut(&mut backend.inner)
            .expect("not shared yet")
            .adopted = true;
        backend
    }

    /// Adopted backends: the zones that have proxies now, read from the API.
    pub async fn zones(&self) -> Result<Vec<String>, FaultError> {
        self.inner.refresh().await?;
        let state = self.inner.state.lock().unwrap();
        Ok(state.routes.keys().cloned().collect())
    }

    pub fn api(&self) -> &str {
        self.inner.api.base()
    }

    /// Like [`new`](Self::new) with a chosen proxy name prefix, so a restarted
    /// process can heal and list the proxies a previous one left.
    pub fn with_prefix(
        api: impl Into<String>,
        advertise_fix: bool,
        prefix: impl Into<String>,
    ) -> Self {
        let inner = Inner {
            api: ToxiproxyApi::new(api, Duration::from_secs(10)),
            prefix: prefix.into(),
            advertise_fix,
            adopted: false,
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            links: LeafLinks::default(),
            state: Mutex::new(State::default()),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Breaks the established leafnode links of the cut zones, seen through
    /// their system account (see [`LeafLinks`]), once the proxies are down:
    /// a link that bypasses the proxies (one redialed through a URL a hub
    /// advertised before it was rewired) would survive the cut otherwise.
    pub fn with_links(mut self, links: LeafLinks) -> Self {
        Arc::get_mut(&mut self.inner).expect("not shared yet").links = links;
        self
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The proxy addresses `zone` dials, in source-server order.
    pub fn routes(&self, zone: &str) -> Vec<SocketAddr> {
        let state = self.inner.state.lock().unwrap();
        let mut routes = state.routes.get(zone).cloned().unwrap_or_default();
        routes.sort_by_key(|r| r.source_server);
        routes
            .into_iter()
            .filter_map(|r| r.listen.parse().ok())
            .collect()
    }

    /// Apply `toxics` to both directions of every proxy of `zone`, replacing
    /// toxics this backend put there before.
    pub async fn apply_toxics(&self, zone: &str, toxics: &[Toxic]) -> Result<(), FaultError> {
        self.inner.apply_toxics(zone, toxics).await
    }

    /// Remove every toxic from this backend's proxies.
    pub async fn clear_toxics(&self) -> Result<(), FaultError> {
        self.inner.clear_toxics().await
    }
}

/// The in-process deadline timers die with the backend, as they would with
/// the process: the deadline the reaper enforces is the marker on the proxies.
impl Drop for ToxiproxyBackend {
    fn drop(&mut self) {
        let timers = std::mem::take(&mut self.inner.state.lock().unwrap().deadlines);
        for (_, t) in timers {
            t.abort();
        }
    }
}

impl ToxiproxyBackend {
    /// Enables every proxy under the prefix whose deadline marker has passed
    /// at `now`, and removes its markers; returns the proxies. Proxies
    /// without a marker are left alone: no cut wrote them.
    pub async fn reap_expired(&self, now: jiff::Timestamp) -> Result<Vec<String>, FaultError> {
        let inner = &self.inner;
        let mut reaped = Vec::new();
        let mut first_err = None;
        for proxy in inner.proxies().await? {
            let markers: Vec<&str> = proxy
                .toxics
                .iter()
                .map(|t| t.name.as_str())
                .filter(|n| super::deadline::parse_marker(n).is_some())
                .collect();
            let expired = markers.iter().any(|n| {
                super::deadline::parse_marker(n).is_some_and(|d| super::deadline::expired(d, now))
            });
            if !expired {
                continue;
            }
            let mut healed = inner.set_enabled(&proxy.name, true).await;
            for m in &markers {
                if healed.is_ok() {
                    healed = inner.api.remove_toxic(&proxy.name, m).await;
                }
            }
            match healed {
                Ok(()) => reaped.push(format!("toxiproxy proxy {}", proxy.name)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if reaped.is_empty() => Err(e),
            _ => Ok(reaped),
        }
    }
}

impl Inner {
    async fn create_proxy(
        &self,
        name: &str,
        upstream: SocketAddr,
    ) -> Result<SocketAddr, FaultError> {
        // Port 0: the server picks a free port, and rebinds that same one
        // when the proxy is enabled again after a cut.
        let listen = SocketAddr::new(self.listen_ip, 0).to_string();
        let info = self
            .api
            .create(name, &listen, &upstream.to_string())
            .await?;
        info.listen.parse().map_err(|e| FaultError::Toxiproxy {
            op: format!("create proxy {name}"),
            message: format!("listen address {:?}: {e}", info.listen),
        })
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), FaultError> {
        self.api.set_enabled(name, enabled).await
    }

    /// The proxies under this backend's prefix.
    async fn proxies(&self) -> Result<Vec<ProxyInfo>, FaultError> {
        let all = self.api.proxies().await?;
        Ok(all.into_values().filter(|p| self.owns(&p.name)).collect())
    }

    fn owns(&self, proxy: &str) -> bool {
        proxy
            .strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// Adopted: replace `routes` with the proxies the API has under the prefix.
    async fn refresh(&self) -> Result<(), FaultError> {
        if !self.adopted {
            return Ok(());
        }
        let mut routes: BTreeMap<String, Vec<Route>> = BTreeMap::new();
        for p in self.proxies().await? {
            let Some((zone, source_server)) = parse_proxy_name(&self.prefix, &p.name) else {
                continue;
            };
            let listen = dial_addr(self.api.base(), &p.listen).unwrap_or(p.listen);
            routes.entry(zone).or_default().push(Route {
                source_server,
                proxy: p.name,
                listen,
                upstream: p.upstream,
                enabled: p.enabled,
            });
        }
        self.state.lock().unwrap().routes = routes;
        Ok(())
    }

    fn zone_proxies(&self, zone: &str) -> Result<Vec<String>, FaultError> {
        let state = self.state.lock().unwrap();
        match state.routes.get(zone) {
            Some(routes) => Ok(routes.iter().map(|r| r.proxy.clone()).collect()),
            None if self.adopted => Err(FaultError::Toxiproxy {
                op: format!("find the proxies of zone {zone}"),
                message: format!(
                    "none named {}-{zone}-s<n> at {}: the zone's leafnode remotes do not run through this Toxiproxy",
                    self.prefix,
                    self.api.base()
                ),
            }),
            None => Err(FaultError::UnknownZone(zone.to_string())),
        }
    }

    /// Enable every proxy this backend owns, the ones it no longer remembers
    /// included. Keeps going past failures so one bad proxy cannot keep the
    /// others cut.
    async fn enable_all(&self) -> Result<(), FaultError> {
        let mut first_err = None;
        for proxy in self.proxies().await? {
            if !proxy.enabled
                && let Err(e) = self.set_enabled(&proxy.name, true).await
            {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn apply_toxics(&self, zone: &str, toxics: &[Toxic]) -> Result<(), FaultError> {
        self.refresh().await?;
        for proxy in self.zone_proxies(zone)? {
            self.remove_toxics_of(&proxy).await?;
            for (i, toxic) in toxics.iter().enumerate() {
                let (kind, attributes) = match toxic.type_ {
                    ToxicType::Latency => (
                        "latency",
                        json!({ "latency": toxic.latency_millis.unwrap_or(0), "jitter": toxic.jitter_millis.unwrap_or(0) }),
                    ),
                    ToxicType::Bandwidth => (
                        "bandwidth",
                        json!({ "rate": toxic.rate_kilobytes_per_second.unwrap_or(1) }),
                    ),
                };
                // A leafnode link carries traffic both ways (messages one way,
                // flow control and acks the other): slow both.
                for stream in ["upstream", "downstream"] {
                    let name = format!("{kind}-{i}-{stream}");
                    self.api
                        .add_toxic(&proxy, &name, kind, stream, attributes.clone())
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Removes the deadline markers (`fault::deadline`) of `proxy`.
    async fn remove_markers_of(&self, proxy: &str) -> Result<(), FaultError> {
        for toxic in self.api.toxics(proxy).await? {
            if super::deadline::parse_marker(&toxic.name).is_some() {
                self.api.remove_toxic(proxy, &toxic.name).await?;
            }
        }
        Ok(())
    }

    async fn remove_toxics_of(&self, proxy: &str) -> Result<(), FaultError> {
        for toxic in self.api.toxics(proxy).await? {
            self.api.remove_toxic(proxy, &toxic.name).await?;
        }
        Ok(())
    }

    async fn clear_toxics(&self) -> Result<(), FaultError> {
        let mut first_err = None;
        for proxy in self.proxies().await? {
            if !proxy.toxics.is_empty()
                && let Err(e) = self.remove_toxics_of(&proxy.name).await
            {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Every address `zone` could dial: its proxies, and what the source
    /// servers advertise (their listen address when nothing was set). Adopted
    /// proxies: only the proxies, since what the source servers advertise was
    /// set by whoever wired them (the drill's mirror-frozen proof covers it).
    fn dialable(&self, zone: &str) -> Result<Vec<String>, FaultError> {
        let state = self.state.lock().unwrap();
        let routes = state
            .routes
            .get(zone)
            .ok_or_else(|| FaultError::UnknownZone(zone.to_string()))?;
        let mut addrs: Vec<String> = routes.iter().map(|r| r.listen.clone()).collect();
        if !self.adopted {
            for route in routes {
                addrs.push(
                    state
                        .advertised
                        .get(&route.source_server)
                        .map(ToString::to_string)
                        .unwrap_or_else(|| route.upstream.clone()),
                );
            }
            // A remote learns every source server's URL, not only the one it dials.
            addrs.extend(state.advertised.values().map(ToString::to_string));
        }
        addrs.sort();
        addrs.dedup();
        Ok(addrs)
    }
}

/// Where to dial a proxy listening on `listen` from here: an unspecified
/// address (`0.0.0.0`, `[::]`) means the host of the API, which may be a name.
fn dial_addr(api: &str, listen: &str) -> Option<String> {
    let addr: SocketAddr = listen.parse().ok()?;
    if !addr.ip().is_unspecified() {
        return Some(addr.to_string());
    }
    let authority = api.split("://").nth(1).unwrap_or(api);
    let authority = authority.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    (!host.is_empty()).then(|| format!("{host}:{}", addr.port()))
}

/// True when a NATS server answers at `addr`: the connection opens and the
/// first line is `INFO`. An enabled proxy whose upstream is gone accepts and
/// then closes, which must not count as reachable.
pub async fn answers_info(addr: SocketAddr, timeout: Duration) -> bool {
    answers_info_at(&addr.to_string(), timeout).await
}

/// [`answers_info`] at `host:port`; the host may be a DNS name.
pub async fn answers_info_at(addr: &str, timeout: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"INFO")
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Network for ToxiproxyBackend {
    fn prepare_zone<'a>(&'a self, _zone: &'a str) -> BoxFuture<'a, Result<ZoneHost, FaultError>> {
        Box::pin(async { Ok(ZoneHost::loopback()) })
    }

    fn leaf_route<'a>(
        &'a self,
        zone: &'a str,
        source_server: usize,
        upstream: SocketAddr,
    ) -> BoxFuture<'a, Result<SocketAddr, FaultError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let existing = {
                let state = inner.state.lock().unwrap();
                state.routes.get(zone).and_then(|rs| {
                    rs.iter()
                        .find(|r| r.source_server == source_server)
                        .cloned()
                })
            };
            let proxy = proxy_name(&inner.prefix, zone, source_server);
            match existing {
                Some(route) if route.upstream == upstream.to_string() => {
                    if let Ok(listen) = route.listen.parse() {
                        return Ok(listen);
                    }
                    inner.api.delete(&proxy).await?
                }
                // The source server moved: a fresh proxy is simpler than an update.
                Some(_) => inner.api.delete(&proxy).await?,
                None => {}
            }
            let listen = inner.create_proxy(&proxy, upstream).await?;
            let mut state = inner.state.lock().unwrap();
            let routes = state.routes.entry(zone.to_string()).or_default();
            routes.retain(|r| r.source_server != source_server);
            routes.push(Route {
                source_server,
                proxy,
                listen: listen.to_string(),
                upstream: upstream.to_string(),
                enabled: true,
            });
            Ok(listen)
        })
    }

    fn leaf_advertise(&self, source_server: usize, listen: SocketAddr) -> Option<String> {
        let mut state = self.inner.state.lock().unwrap();
        if !self.inner.advertise_fix {
            state.advertised.insert(source_server, listen);
            return None;
        }
        let ip = if listen.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            listen.ip()
        };
        let addr = match state.reserved.get(&ip).and_then(|s| s.local_addr().ok()) {
            Some(addr) => addr,
            None => {
                let socket = match reserve_port(ip) {
                    Ok(s) => s,
                    Err(e) => {
                        // Without a reserved port there is no safe address to
                        // advertise; the probe will then report the leak.
                        tracing::error!(%ip, error = %e, "cannot reserve a port to advertise; proxy cuts will leak");
                        state.advertised.insert(source_server, listen);
                        return None;
                    }
                };
                let addr = socket.local_addr().expect("bound socket has an address");
                state.reserved.insert(ip, socket);
                addr
            }
        };
        state.advertised.insert(source_server, addr);
        Some(addr.to_string())
    }

    // With the fix, what the source advertises is refused; without it, the
    // leak the fix guards against is the point.
    fn leaf_routes_only(&self) -> bool {
        self.inner.advertise_fix
    }
}

fn reserve_port(ip: IpAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    Ok(socket)
}

impl FaultBackend for ToxiproxyBackend {
    fn name(&self) -> &'static str {
        "toxiproxy"
    }

    fn cut<'a>(
        &'a self,
        zones: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Result<FaultRecord, FaultError>> {
        Box::pin(async move {
            let inner = &self.inner;
            inner.refresh().await?;
            let mut proxies = Vec::new();
            for zone in zones {
                proxies.extend(inner.zone_proxies(zone)?);
            }
            let injected = jiff::Timestamp::now();
            let id = {
                let mut state = inner.state.lock().unwrap();
                state.faults += 1;
                // Adopted proxies outlive this process: the time keeps ids of
                // a restarted one apart from its predecessor's.
                if inner.adopted {
                    format!(
                        "{}-cut{}-{}",
                        inner.prefix,
                        state.faults,
                        injected.as_second()
                    )
                } else {
                    format!("{}-cut{}", inner.prefix, state.faults)
                }
            };
            // Arm the deadline before the first proxy goes down, so a failure
            // half way (or a dropped future) still ends in a heal.
            let task = tokio::spawn({
                let inner = Arc::clone(inner);
                let id = id.clone();
                let proxies = proxies.clone();
                async move {
                    tokio::time::sleep(deadline).await;
                    tracing::warn!(fault = %id, "fault deadline reached without a heal; enabling its proxies");
                    for proxy in &proxies {
                        if let Err(e) = inner.set_enabled(proxy, true).await {
                            tracing::error!(fault = %id, error = %e, "deadline heal failed");
                        }
                        if let Err(e) = inner.remove_markers_of(proxy).await {
                            tracing::warn!(fault = %id, error = %e, "deadline markers not removed");
                        }
                    }
                    inner.state.lock().unwrap().deadlines.remove(&id);
                }
            });
            inner
                .state
                .lock()
                .unwrap()
                .deadlines
                .insert(id.clone(), task);
            // Every cut proxy's toxics off first, while the links still carry
            // traffic, then the proxies disabled: a proxy disabled under
            // traffic with toxics in its links can leave toxiproxy's control
            // API stuck (a toxic blocked sending to a closed link holds the
            // proxy's toxic lock; docs/architecture.md fact 11), and then
            // neither this cut nor its heal gets through. The heal clears
            // toxics anyway and the engine applies them again.
            // Each proxy carries the deadline before it goes down, so any
            // later process can enforce it (the operator's reaper).
            let marker = super::deadline::marker_name(super::deadline::at(injected, deadline));
            let mut failed = None;
            for proxy in &proxies {
                let marked = match inner.remove_toxics_of(proxy).await {
                    Ok(()) => inner.api.add_marker(proxy, &marker).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = marked {
                    failed = Some(e);
                    break;
                }
            }
            if failed.is_none() {
                for proxy in &proxies {
                    if let Err(e) = inner.set_enabled(proxy, false).await {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                let _ = inner.enable_all().await;
                let _ = inner.clear_toxics().await;
                if let Some(task) = inner.state.lock().unwrap().deadlines.remove(&id) {
                    task.abort();
                }
                return Err(e);
            }
            // A disabled proxy closes the links through it; one around it
            // stays up until broken. Without system access nothing is known.
            if !inner.links.zones.is_empty() {
                inner.links.break_established(zones, "toxiproxy").await;
            }
            Ok(super::fault_record(
                id,
                self.name(),
                zones,
                injected,
                deadline,
            ))
        })
    }

    fn heal<'a>(&'a self, record: &'a FaultRecord) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let enabled = inner.enable_all().await;
            let cleared = inner.clear_toxics().await;
            if enabled.is_ok()
                && let Some(task) = inner.state.lock().unwrap().deadlines.remove(&record.id)
            {
                task.abort();
            }
            enabled.and(cleared)
        })
    }

    fn probe<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<bool, FaultError>> {
        Box::pin(async move {
            let inner = &self.inner;
            inner.refresh().await?;
            let addrs = inner.dialable(zone)?;
            let answers =
                futures::future::join_all(addrs.iter().map(|a| answers_info_at(a, PROBE_TIMEOUT)))
                    .await;
            // An enabled adopted proxy carries the link even where its listen
            // address cannot be dialed from this process.
            let enabled = inner.adopted
                && inner
                    .state
                    .lock()
                    .unwrap()
                    .routes
                    .get(zone)
                    .is_some_and(|rs| rs.iter().any(|r| r.enabled));
            Ok(enabled || answers.into_iter().any(|up| up))
        })
    }

    fn leftovers(&self) -> BoxFuture<'_, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            let mut left = Vec::new();
            for proxy in self.inner.proxies().await? {
                // A deadline marker is part of the cut it dates (toxicity 0:
                // on an enabled proxy it does nothing), not a fault of its own.
                let deadline = proxy
                    .toxics
                    .iter()
                    .find_map(|t| super::deadline::parse_marker(&t.name));
                if !proxy.enabled {
                    left.push(format!(
                        "toxiproxy proxy {} ({} -> {}) is disabled{}",
                        proxy.name,
                        proxy.listen,
                        proxy.upstream,
                        deadline.map_or(String::new(), |d| format!(" until {d}"))
                    ));
                }
                for toxic in proxy
                    .toxics
                    .iter()
                    .filter(|t| super::deadline::parse_marker(&t.name).is_none())
                {
                    left.push(format!(
                        "toxiproxy toxic {} ({}, {}) on proxy {}",
                        toxic.name, toxic.type_, toxic.stream, proxy.name
                    ));
                }
            }
            Ok(left)
        })
    }

    fn apply_toxics<'a>(
        &'a self,
        zone: &'a str,
        toxics: &'a [Toxic],
    ) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(self.inner.apply_toxics(zone, toxics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopted_proxy_names_give_zone_and_source_server() {
        assert_eq!(parse_proxy_name("east", "east-b-s0"), Some(("b".into(), 0)));
        assert_eq!(
            parse_proxy_name("east", "east-c-1-s12"),
            Some(("c-1".into(), 12))
        );
        assert_eq!(parse_proxy_name("east", "eastern-b-s0"), None);
        assert_eq!(parse_proxy_name("east", "east-b-sx"), None);
        assert_eq!(parse_proxy_name("east", "east--s0"), None);
    }

    #[test]
    fn unspecified_listen_addresses_are_dialed_at_the_api_host() {
        assert_eq!(
            dial_addr("http://127.0.0.1:8474", "[::]:5000").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            dial_addr("http://east-toxiproxy.ns.svc:8474/", "0.0.0.0:17422").as_deref(),
            Some("east-toxiproxy.ns.svc:17422")
        );
        assert_eq!(
            dial_addr("http://127.0.0.1:8474", "127.0.0.2:5000").as_deref(),
            Some("127.0.0.2:5000")
        );
    }
}
