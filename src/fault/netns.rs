//! Network-level cuts for the local runtime: every zone in its own network
//! namespace ([`lab`]); a cut is a packet filter in the
//! source zone's namespace that rejects leafnode traffic to and from the cut
//! zones' addresses. Addresses learned from INFO lead to the same filtered
//! ports, so nothing leaks around it, and the host's own clients (the
//! drill's producer and consumers, coming from the bridge address) are never
//! matched. Needs root.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub mod lab;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::{FaultBackend, FaultError, Network, ZoneHost};
use crate::api::FaultRecord;
use lab::{NetnsLab, ZoneNs, command_in, find_program, run};

const BACKEND: &str = "netns";
/// Every table or chain this backend creates starts with this.
const TABLE_PREFIX: &str = "natsregion_";
/// Seconds a probe waits for the connection and the `INFO` line.
const PROBE_TIMEOUT_SECS: &str = "2";

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// The packet filter that carries the cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketFilter {
    Nft(PathBuf),
    Iptables(PathBuf),
}

impl PacketFilter {
    /// nftables when it works here, else iptables. `NATSREGION_PACKET_FILTER`
    /// (`nft` or `iptables`) forces one.
    pub fn detect() -> Result<Self, FaultError> {
        let forced = std::env::var("NATSREGION_PACKET_FILTER").ok();
        let found = match forced.as_deref() {
            Some("nft") => Self::nft(),
            Some("iptables") => Self::iptables(),
            _ => Self::nft().or_else(Self::iptables),
        };
        found.ok_or_else(|| FaultError::Unsupported {
            backend: BACKEND,
            what: "a working packet filter: install nftables (`tools/install.sh netfilter` as root, or `apt-get install nftables`)".into(),
        })
    }

    /// nftables, if `nft` is installed and the kernel accepts it.
    pub fn nft() -> Option<Self> {
        usable("nft", &["list", "tables"]).map(PacketFilter::Nft)
    }

    /// iptables, if installed and working.
    pub fn iptables() -> Option<Self> {
        usable("iptables", &["-w", "-S", "INPUT"]).map(PacketFilter::Iptables)
    }

    fn program(&self) -> &PathBuf {
        match self {
            PacketFilter::Nft(p) | PacketFilter::Iptables(p) => p,
        }
    }
}

fn usable(program: &str, args: &[&str]) -> Option<PathBuf> {
    let path = find_program(program)?;
    let mut cmd = Command::new(&path);
    cmd.args(args);
    run(cmd).ok().map(|_| path)
}

/// Fault backend over per-zone network namespaces.
pub struct NetnsBackend {
    inner: Arc<Inner>,
}

struct Inner {
    lab: NetnsLab,
    filter: PacketFilter,
    /// Starts every table this instance creates.
    prefix: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// zone → leafnode addresses of the source servers it dials.
    routes: BTreeMap<String, BTreeSet<SocketAddr>>,
    /// fault id → where its rules live.
    faults: BTreeMap<String, Vec<Installed>>,
    deadlines: HashMap<String, JoinHandle<()>>,
    count: u64,
}

/// One rule set in one namespace.
#[derive(Clone, Debug)]
struct Installed {
    netns: String,
    name: String,
}

/// What one source namespace must reject.
struct Block {
    source: ZoneNs,
    peers: BTreeSet<Ipv4Addr>,
    ports: BTreeSet<u16>,
    /// The cut zones' namespaces, where the other end of live connections is.
    peer_netns: BTreeSet<String>,
}

impl NetnsBackend {
    /// Create the lab (bridge and subnet) and pick the packet filter. Returns
    /// [`FaultError::Unsupported`] saying what to do when this machine cannot
    /// run it (not root, no `ip`, no working `nft` or `iptables`).
    pub fn new() -> Result<Self, FaultError> {
        NetnsLab::preflight()?;
        Self::with_filter(PacketFilter::detect()?)
    }

    /// Like [`new`](Self::new) with a chosen packet filter.
    pub fn with_filter(filter: PacketFilter) -> Result<Self, FaultError> {
        let lab = NetnsLab::new()?;
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{TABLE_PREFIX}{:x}_{n:x}", std::process::id());
        Ok(Self {
            inner: Arc::new(Inner {
                lab,
                filter,
                prefix,
                state: Mutex::new(State::default()),
            }),
        })
    }

    pub fn lab(&self) -> &NetnsLab {
        &self.inner.lab
    }

    pub fn packet_filter(&self) -> &PacketFilter {
        &self.inner.filter
    }

    /// Remove a temporary zone's namespace.
    pub async fn remove_zone(&self, zone: &str) -> Result<(), FaultError> {
        let inner = Arc::clone(&self.inner);
        let zone = zone.to_string();
        blocking(move || {
            inner.state.lock().unwrap().routes.remove(&zone);
            inner.lab.remove_zone(&zone)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FaultError> + Send + 'static,
) -> Result<T, FaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FaultError::Command {
            command: "blocking task".into(),
            message: e.to_string(),
        })?
}

impl Inner {
    fn filter_cmd(&self, netns: &str) -> Command {
        command_in(Some(netns), self.filter.program())
    }

    /// Group the cut zones' routes by the source namespace they lead to.
    fn blocks(&self, zones: &[String]) -> Result<Vec<Block>, FaultError> {
        let state = self.state.lock().unwrap();
        let mut blocks: BTreeMap<String, Block> = BTreeMap::new();
        for zone in zones {
            let mirror = self
                .lab
                .zone(zone)
                .ok_or_else(|| FaultError::UnknownZone(zone.clone()))?;
            let routes = state
                .routes
                .get(zone)
                .ok_or_else(|| FaultError::UnknownZone(zone.clone()))?;
            for upstream in routes {
                let source = match upstream.ip() {
                    IpAddr::V4(ip) => self.lab.zone_by_ip(ip),
                    IpAddr::V6(_) => None,
                }
                .ok_or_else(|| {
                    FaultError::UnknownZone(format!(
                        "at {upstream} (not in any namespace of this lab)"
                    ))
                })?;
                let block = blocks.entry(source.netns.clone()).or_insert_with(|| Block {
                    source: source.clone(),
                    peers: BTreeSet::new(),
                    ports: BTreeSet::new(),
                    peer_netns: BTreeSet::new(),
                });
                block.peers.insert(mirror.ip);
                block.ports.insert(upstream.port());
                block.peer_netns.insert(mirror.netns.clone());
            }
        }
        Ok(blocks.into_values().collect())
    }

    fn install(&self, name: &str, block: &Block) -> Result<(), FaultError> {
        let ns = &block.source.netns;
        let set = |items: Vec<String>| format!("{{ {} }}", items.join(", "));
        let peers = set(block.peers.iter().map(|p| p.to_string()).collect());
        let ports = set(block.ports.iter().map(|p| p.to_string()).collect());
        match &self.filter {
            PacketFilter::Nft(_) => {
                // Reject rather than drop: the remote then fails fast instead
                // of waiting out TCP timeouts, and so does the probe. Our own
                // resets must pass the output rule, or a rejected SYN would
                // hang instead of being refused.
                let ruleset = format!(
                    "table inet {name} {{\n\
                     \tchain input {{\n\
                     \t\ttype filter hook input priority filter; policy accept;\n\
                     \t\tip saddr {peers} tcp dport {ports} reject with tcp reset\n\
                     \t}}\n\
                     \tchain output {{\n\
                     \t\ttype filter hook output priority filter; policy accept;\n\
                     \t\tip daddr {peers} tcp sport {ports} tcp flags & rst == rst accept\n\
                     \t\tip daddr {peers} tcp sport {ports} reject with tcp reset\n\
                     \t}}\n\
                     }}\n"
                );
                let file = tempfile::NamedTempFile::new().map_err(|e| FaultError::Command {
                    command: "nft -f".into(),
                    message: e.to_string(),
                })?;
                std::fs::write(file.path(), ruleset).map_err(|e| FaultError::Command {
                    command: "nft -f".into(),
                    message: e.to_string(),
                })?;
                let mut cmd = self.filter_cmd(ns);
                cmd.arg("-f").arg(file.path());
                run(cmd)?;
            }
            PacketFilter::Iptables(_) => {
                let ports = block
                    .ports
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                let ipt = |args: &[&str]| {
                    let mut cmd = self.filter_cmd(ns);
                    cmd.arg("-w").args(args);
                    run(cmd)
                };
                ipt(&["-N", name])?;
                for peer in &block.peers {
                    let peer = peer.to_string();
                    ipt(&[
                        "-A",
                        name,
                        "-s",
                        &peer,
                        "-p",
                        "tcp",
                        "-m",
                        "multiport",
                        "--dports",
                        &ports,
                        "-j",
                        "REJECT",
                        "--reject-with",
                        "tcp-reset",
                    ])?;
                    ipt(&[
                        "-A",
                        name,
                        "-d",
                        &peer,
                        "-p",
                        "tcp",
                        "-m",
                        "multiport",
                        "--sports",
                        &ports,
                        "-m",
                        "tcp",
                        "--tcp-flags",
                        "RST",
                        "RST",
                        "-j",
                        "RETURN",
                    ])?;
                    ipt(&[
                        "-A",
                        name,
                        "-d",
                        &peer,
                        "-p",
                        "tcp",
                        "-m",
                        "multiport",
                        "--sports",
                        &ports,
                        "-j",
                        "REJECT",
                        "--reject-with",
                        "tcp-reset",
                    ])?;
                }
                ipt(&["-I", "INPUT", "-j", name])?;
                ipt(&["-I", "OUTPUT", "-j", name])?;
            }
        }
        // A filter only sees new packets: end the established leafnode
        // connections on both sides now rather than when they next send.
        // Best effort; a kernel without socket destroy still ends them on
        // the next packet, which the rules reject.
        for port in &block.ports {
            for peer in &block.peers {
                let mut cmd = command_in(Some(ns), "ss");
                cmd.args([
                    "-K",
                    "dst",
                    &peer.to_string(),
                    "sport",
                    "=",
                    &format!(":{port}"),
                ]);
                let _ = run(cmd);
            }
            for peer_ns in &block.peer_netns {
                let mut cmd = command_in(Some(peer_ns), "ss");
                cmd.args([
                    "-K",
                    "dst",
                    &block.source.ip.to_string(),
                    "dport",
                    "=",
                    &format!(":{port}"),
                ]);
                let _ = run(cmd);
            }
        }
        Ok(())
    }

    fn uninstall(&self, installed: &Installed) -> Result<(), FaultError> {
        let Installed { netns, name } = installed;
        if !lab::netns_exists(netns) {
            return Ok(());
        }
        match &self.filter {
            PacketFilter::Nft(_) => {
                let mut cmd = self.filter_cmd(netns);
                cmd.args(["delete", "table", "inet", name]);
                match run(cmd) {
                    Err(FaultError::Command { message, .. })
                        if message.contains("No such file or directory") =>
                    {
                        Ok(())
                    }
                    other => other.map(drop),
                }
            }
            PacketFilter::Iptables(_) => {
                let ipt = |args: &[&str]| {
                    let mut cmd = self.filter_cmd(netns);
                    cmd.arg("-w").args(args);
                    run(cmd)
                };
                // Jumps may be there more than once if an install was retried.
                while ipt(&["-D", "INPUT", "-j", name]).is_ok() {}
                while ipt(&["-D", "OUTPUT", "-j", name]).is_ok() {}
                let _ = ipt(&["-F", name]);
                match ipt(&["-X", name]) {
                    Err(FaultError::Command { message, .. })
                        if message.contains("No chain") || message.contains("does not exist") =>
                    {
                        Ok(())
                    }
                    other => other.map(drop),
                }
            }
        }
    }

    /// Rule sets present in every zone namespace, as (namespace, name, rules).
    fn present(&self) -> Result<Vec<(ZoneNs, String, String)>, FaultError> {
        let mut found = Vec::new();
        for zone in self.lab.zones() {
            match &self.filter {
                PacketFilter::Nft(_) => {
                    let mut cmd = self.filter_cmd(&zone.netns);
                    cmd.args(["list", "ruleset"]);
                    let text = run(cmd)?;
                    for (name, body) in nft_tables(&text) {
                        found.push((zone.clone(), name, body));
                    }
                }
                PacketFilter::Iptables(_) => {
                    let mut cmd = self.filter_cmd(&zone.netns);
                    cmd.args(["-w", "-S"]);
                    let text = run(cmd)?;
                    for chain in text.lines().filter_map(|l| l.strip_prefix("-N ")) {
                        let own = format!("-A {chain} ");
                        let rules: Vec<&str> =
                            text.lines().filter(|l| l.starts_with(&own)).collect();
                        found.push((zone.clone(), chain.to_string(), rules.join("; ")));
                    }
                }
            }
        }
        Ok(found)
    }

    fn heal_all(&self) -> Result<(), FaultError> {
        let mut first_err = None;
        let recorded: Vec<Installed> = self
            .state
            .lock()
            .unwrap()
            .faults
            .values()
            .flatten()
            .cloned()
            .collect();
        for installed in &recorded {
            if let Err(e) = self.uninstall(installed) {
                first_err.get_or_insert(e);
            }
        }
        // Also what a previous instance with another prefix left in these
        // namespaces: anything named like ours.
        for (zone, name, _) in self.present()? {
            if name.starts_with(TABLE_PREFIX)
                && let Err(e) = self.uninstall(&Installed {
                    netns: zone.netns,
                    name,
                })
            {
                first_err.get_or_insert(e);
            }
        }
        if first_err.is_none() {
            self.state.lock().unwrap().faults.clear();
        }
        first_err.map_or(Ok(()), Err)
    }

    fn probe(&self, zone: &str) -> Result<bool, FaultError> {
        let mirror = self
            .lab
            .zone(zone)
            .ok_or_else(|| FaultError::UnknownZone(zone.to_string()))?;
        let routes = self
            .state
            .lock()
            .unwrap()
            .routes
            .get(zone)
            .cloned()
            .ok_or_else(|| FaultError::UnknownZone(zone.to_string()))?;
        for upstream in routes {
            // bash's /dev/tcp keeps the probe free of extra tools; `timeout`
            // bounds a connection whose packets are dropped instead of refused.
            let mut cmd = command_in(Some(&mirror.netns), "timeout");
            cmd.args([
                PROBE_TIMEOUT_SECS,
                "bash",
                "-c",
                "exec 3<>/dev/tcp/$1/$2 || exit 1; head -c 4 <&3",
                "probe",
                &upstream.ip().to_string(),
                &upstream.port().to_string(),
            ]);
            if let Ok(out) = run(cmd)
                && out == "INFO"
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// `(name, body)` of each table in `nft list ruleset` output.
fn nft_tables(ruleset: &str) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in ruleset.lines() {
        if let Some(rest) = line.strip_prefix("table ") {
            let name = rest
                .trim_end_matches('{')
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string();
            current = Some((name, Vec::new()));
        } else if line == "}" {
            if let Some((name, rules)) = current.take() {
                tables.push((name, rules.join("; ")));
            }
        } else if let Some((_, rules)) = current.as_mut() {
            let rule = line.trim();
            if !rule.is_empty()
                && !rule.starts_with("chain ")
                && !rule.starts_with("type ")
                && rule != "}"
            {
                rules.push(rule.to_string());
            }
        }
    }
    tables
}

impl Network for NetnsBackend {
    fn prepare_zone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<ZoneHost, FaultError>> {
        let inner = Arc::clone(&self.inner);
        let zone = zone.to_string();
        Box::pin(async move {
            let z = blocking(move || inner.lab.add_zone(&zone)).await?;
            Ok(ZoneHost {
                netns: Some(z.netns),
                ip: IpAddr::V4(z.ip),
            })
        })
    }

    fn leaf_route<'a>(
        &'a self,
        zone: &'a str,
        _source_server: usize,
        upstream: SocketAddr,
    ) -> BoxFuture<'a, Result<SocketAddr, FaultError>> {
        Box::pin(async move {
            self.inner
                .state
                .lock()
                .unwrap()
                .routes
                .entry(zone.to_string())
                .or_default()
                .insert(upstream);
            Ok(upstream)
        })
    }

    fn leaf_advertise(&self, _source_server: usize, _listen: SocketAddr) -> Option<String> {
        // The listen address is in the source namespace, behind the filter.
        None
    }
    fn leaf_routes_only(&self) -> bool {
        // Discovered addresses are behind the same filter as the routes.
        false
    }
}

impl FaultBackend for NetnsBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn cut<'a>(
        &'a self,
        zones: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Result<FaultRecord, FaultError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let blocks = inner.blocks(zones)?;
            let id = {
                let mut state = inner.state.lock().unwrap();
                state.count += 1;
                format!("{}_cut{}", inner.prefix, state.count)
            };
            let installed: Vec<Installed> = blocks
                .iter()
                .map(|b| Installed {
                    netns: b.source.netns.clone(),
                    name: id.clone(),
                })
                .collect();
            inner
                .state
                .lock()
                .unwrap()
                .faults
                .insert(id.clone(), installed.clone());
            let injected = jiff::Timestamp::now();
            // Armed before the rules go in. It holds the backend weakly:
            // dropping the backend removes the namespaces, rules and all.
            let task = tokio::spawn({
                let weak: Weak<Inner> = Arc::downgrade(inner);
                let id = id.clone();
                async move {
                    tokio::time::sleep(deadline).await;
                    let Some(inner) = weak.upgrade() else { return };
                    tracing::warn!(fault = %id, "fault deadline reached without a heal; removing its rules");
                    let _ = blocking(move || {
                        let installed = inner
                            .state
                            .lock()
                            .unwrap()
                            .faults
                            .remove(&id)
                            .unwrap_or_default();
                        for i in &installed {
                            if let Err(e) = inner.uninstall(i) {
                                tracing::error!(fault = %id, error = %e, "deadline heal failed");
                            }
                        }
                        inner.state.lock().unwrap().deadlines.remove(&id);
                        Ok(())
                    })
                    .await;
                }
            });
            inner
                .state
                .lock()
                .unwrap()
                .deadlines
                .insert(id.clone(), task);
            let worker = Arc::clone(inner);
            let name = id.clone();
            let result = blocking(move || {
                for block in &blocks {
                    worker.install(&name, block)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = result {
                let worker = Arc::clone(inner);
                let _ = blocking(move || {
                    for i in &installed {
                        let _ = worker.uninstall(i);
                    }
                    Ok(())
                })
                .await;
                let mut state = inner.state.lock().unwrap();
                state.faults.remove(&id);
                if let Some(task) = state.deadlines.remove(&id) {
                    task.abort();
                }
                return Err(e);
            }
            Ok(super::fault_record(id, BACKEND, zones, injected, deadline))
        })
    }

    fn heal<'a>(&'a self, record: &'a FaultRecord) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let inner = Arc::clone(&self.inner);
            let result = blocking(move || inner.heal_all()).await;
            if result.is_ok()
                && let Some(task) = self
                    .inner
                    .state
                    .lock()
                    .unwrap()
                    .deadlines
                    .remove(&record.id)
            {
                task.abort();
            }
            result
        })
    }

    fn probe<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<bool, FaultError>> {
        let inner = Arc::clone(&self.inner);
        let zone = zone.to_string();
        Box::pin(blocking(move || inner.probe(&zone)))
    }

    fn leftovers(&self) -> BoxFuture<'_, Result<Vec<String>, FaultError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(blocking(move || {
            let present = inner.present()?;
            Ok(present
                .into_iter()
                .map(|(zone, name, rules)| {
                    format!(
                        "packet filter {name} in namespace {} (zone {}): {rules}",
                        zone.netns, zone.zone
                    )
                })
                .collect())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_from_nft_listing() {
        let listing = "table inet natsregion_1_0_cut1 {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr { 10.203.1.3 } tcp dport 7422 reject with tcp reset\n\t}\n}\ntable ip other {\n}\n";
        let tables = nft_tables(listing);
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].0, "natsregion_1_0_cut1");
        assert_eq!(
            tables[0].1,
            "ip saddr { 10.203.1.3 } tcp dport 7422 reject with tcp reset"
        );
        assert_eq!(tables[1], ("other".to_string(), String::new()));
    }
}
