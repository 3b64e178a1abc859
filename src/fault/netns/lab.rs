//! One network namespace per zone, all joined by a bridge in the host
//! namespace, so zones talk over real interfaces that a packet filter can cut.
//!
//! Each lab takes a private /24 (`10.203.<n>.0/24`, `.1` on the bridge for the
//! host, `.2` and up for zones). These addresses exist only on interfaces the
//! lab creates. Every name carries the creating process id, so parallel
//! processes and tests never collide and a later lab can remove what a killed
//! process left behind. Needs root.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::fault::FaultError;

const BACKEND: &str = "netns";
/// Second octet pair of every lab subnet.
const NET: [u8; 2] = [10, 203];

static LABS: AtomicU32 = AtomicU32::new(0);

/// A zone's namespace and its address on the lab bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneNs {
    pub zone: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// Host end of the zone's veth pair; the other end lives in `netns`.
    pub host_veth: String,
}

/// The bridge, its subnet and the zones' namespaces. Everything is removed on drop.
#[derive(Debug)]
pub struct NetnsLab {
    prefix: String,
    bridge: String,
    subnet: u8,
    zones: Mutex<Zones>,
}

#[derive(Debug, Default)]
struct Zones {
    by_name: BTreeMap<String, ZoneNs>,
    /// Host part of the next zone address; never reused within a lab.
    next: u16,
}

impl NetnsLab {
    /// Fails with [`FaultError::Unsupported`] when not root or `ip` is missing.
    pub fn preflight() -> Result<PathBuf, FaultError> {
        if !is_root() {
            return Err(FaultError::Unsupported {
                backend: BACKEND,
                what: "root: network namespaces and packet filters need CAP_SYS_ADMIN and CAP_NET_ADMIN; \
                       run as root or use fault.backend: toxiproxy"
                    .into(),
            });
        }
        find_program("ip").ok_or_else(|| FaultError::Unsupported {
            backend: BACKEND,
            what: "iproute2's `ip` command: install it with `apt-get install iproute2`".into(),
        })
    }

    /// Create the bridge on a subnet no other lab on this machine uses.
    pub fn new() -> Result<Self, FaultError> {
        Self::preflight()?;
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("nr{:x}-{:x}", std::process::id(), n % 0x100);
        let bridge = format!("{prefix}b");
        // The lock spans sweep, choice and creation: two labs reading the
        // address list at once would otherwise pick the same subnet.
        let _lock = AllocationLock::take()?;
        sweep_dead_labs();
        let subnet = free_subnet()?;
        let host_ip = Ipv4Addr::new(NET[0], NET[1], subnet, 1);
        let created = ip(&["link", "add", &bridge, "type", "bridge"]).map_err(permission_hint);
        created?;
        let lab = Self {
            prefix,
            bridge,
            subnet,
            zones: Mutex::new(Zones {
                next: 2,
                ..Zones::default()
            }),
        };
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &lab.bridge])?;
        ip(&["link", "set", &lab.bridge, "up"])?;
        Ok(lab)
    }

    /// Starts every name this lab creates.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The host namespace's address on the lab network: what zones see when
    /// the host's own clients (the drill's producer and consumers) connect.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(NET[0], NET[1], self.subnet, 1)
    }

    /// Create `zone`'s namespace and link it to the bridge. Returns the
    /// existing one when called again for the same zone.
    pub fn add_zone(&self, zone: &str) -> Result<ZoneNs, FaultError> {
        let mut zones = self.zones.lock().unwrap();
        if let Some(z) = zones.by_name.get(zone) {
            return Ok(z.clone());
        }
        if zones.next > 254 {
            return Err(FaultError::Unsupported {
                backend: BACKEND,
                what: "at most 253 zones per lab".into(),
            });
        }
        let host_part = zones.next as u8;
        zones.next += 1;
        let z = ZoneNs {
            zone: zone.to_string(),
            netns: format!("{}-{zone}", self.prefix),
            ip: Ipv4Addr::new(NET[0], NET[1], self.subnet, host_part),
            host_veth: format!("{}h{host_part:x}", self.prefix),
        };
        let inner_veth = format!("{}n{host_part:x}", self.prefix);
        let result = (|| {
            ip(&["netns", "add", &z.netns])?;
            ip(&[
                "link",
                "add",
                &z.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &inner_veth,
                "netns",
                &z.netns,
            ])?;
            ip(&["link", "set", &z.host_veth, "master", &self.bridge])?;
            ip(&["link", "set", &z.host_veth, "up"])?;
            ip(&[
                "-n",
                &z.netns,
                "addr",
                "add",
                &format!("{}/24", z.ip),
                "dev",
                &inner_veth,
            ])?;
            ip(&["-n", &z.netns, "link", "set", &inner_veth, "up"])?;
            ip(&["-n", &z.netns, "link", "set", "lo", "up"])
        })();
        if let Err(e) = result {
            remove_zone_parts(&z);
            return Err(e);
        }
        zones.by_name.insert(zone.to_string(), z.clone());
        Ok(z)
    }

    /// Remove `zone`'s namespace and veth pair. Processes still running in
    /// the namespace are killed: they could reach nothing once it is gone.
    pub fn remove_zone(&self, zone: &str) -> Result<(), FaultError> {
        let z = self
            .zones
            .lock()
            .unwrap()
            .by_name
            .remove(zone)
            .ok_or_else(|| FaultError::UnknownZone(zone.to_string()))?;
        remove_zone_parts(&z);
        if netns_exists(&z.netns) {
            return Err(FaultError::Command {
                command: format!("ip netns del {}", z.netns),
                message: "namespace still present".into(),
            });
        }
        Ok(())
    }

    pub fn zone(&self, zone: &str) -> Option<ZoneNs> {
        self.zones.lock().unwrap().by_name.get(zone).cloned()
    }

    pub fn zones(&self) -> Vec<ZoneNs> {
        self.zones
            .lock()
            .unwrap()
            .by_name
            .values()
            .cloned()
            .collect()
    }

    /// The zone whose namespace owns `ip`.
    pub fn zone_by_ip(&self, ip: Ipv4Addr) -> Option<ZoneNs> {
        self.zones
            .lock()
            .unwrap()
            .by_name
            .values()
            .find(|z| z.ip == ip)
            .cloned()
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        let zones = std::mem::take(&mut self.zones.lock().unwrap().by_name);
        for z in zones.values() {
            remove_zone_parts(z);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

fn remove_zone_parts(z: &ZoneNs) {
    kill_processes_in(&z.netns);
    // Deleting the host end takes the peer with it at once; leaving it to
    // the namespace's teardown happens later, asynchronously.
    let _ = ip(&["link", "del", &z.host_veth]);
    let _ = ip(&["netns", "del", &z.netns]);
}

fn kill_processes_in(netns: &str) {
    if !netns_exists(netns) {
        return;
    }
    let Ok(pids) = ip(&["netns", "pids", netns]) else {
        return;
    };
    for pid in pids.split_whitespace().filter(|p| p.parse::<u32>().is_ok()) {
        let _ = Command::new("kill")
            .args(["-KILL", pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `ip netns exec <netns> <program>`, or plain `<program>` for the host
/// namespace. Servers and probes for a zone start through this.
pub fn command_in(netns: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new(find_program("ip").unwrap_or_else(|| PathBuf::from("ip")));
            cmd.args([
                OsStr::new("netns"),
                OsStr::new("exec"),
                OsStr::new(ns),
                program.as_ref(),
            ]);
            cmd
        }
        None => Command::new(program),
    }
}

/// Same as [`command_in`], for tokio.
pub fn tokio_command_in(
    netns: Option<&str>,
    program: impl AsRef<OsStr>,
) -> tokio::process::Command {
    tokio::process::Command::from(command_in(netns, program))
}

/// Run a command to completion; its stdout on success, its stderr in the error.
pub fn run(mut cmd: Command) -> Result<String, FaultError> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FaultError::Command {
            command: shown.clone(),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(FaultError::Command {
            command: shown,
            message: format!("{}: {}", out.status, stderr.trim()),
        })
    }
}

/// Run `ip` with `args` in the host namespace.
pub fn ip(args: &[&str]) -> Result<String, FaultError> {
    let mut cmd = Command::new(find_program("ip").unwrap_or_else(|| PathBuf::from("ip")));
    cmd.args(args);
    run(cmd)
}

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// A program on PATH or in the sbin directories, which a non-login root
/// shell does not always have on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn is_root() -> bool {
    // Effective uid is the second field of the Uid line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .map(|u| u == "0")
        })
        .unwrap_or(false)
}

fn permission_hint(e: FaultError) -> FaultError {
    match e {
        FaultError::Command { message, .. } if message.contains("Operation not permitted") => {
            FaultError::Unsupported {
                backend: BACKEND,
                what: format!(
                    "permission to create network interfaces (CAP_NET_ADMIN, CAP_SYS_ADMIN; in a container run it privileged): {message}"
                ),
            }
        }
        other => other,
    }
}

/// An exclusive lock on a file shared by every lab on this machine.
struct AllocationLock(std::fs::File);

impl AllocationLock {
    fn take() -> Result<Self, FaultError> {
        let dir = if Path::new("/run").is_dir() {
            PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        };
        let path = dir.join("natsregion-netns.lock");
        let fail = |e: std::io::Error| FaultError::Command {
            command: format!("lock {}", path.display()),
            message: e.to_string(),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        file.lock().map_err(fail)?;
        Ok(Self(file))
    }
}

impl Drop for AllocationLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// First `n` such that nothing in the host namespace uses `10.203.<n>.0/24`.
fn free_subnet() -> Result<u8, FaultError> {
    let used = ip(&["-o", "-4", "addr", "show"])? + &ip(&["-4", "route", "show", "table", "all"])?;
    (1..=254u8)
        .find(|n| !used.contains(&format!("{}.{}.{n}.", NET[0], NET[1])))
        .ok_or_else(|| FaultError::Unsupported {
            backend: BACKEND,
            what: format!("a free /24 in {}.{}.0.0/16", NET[0], NET[1]),
        })
}

/// The pid in a name this module made (`nr<pid hex>-…`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("nr")?;
    let (hex, _) = rest.split_once('-')?;
    u32::from_str_radix(hex, 16).ok()
}

/// Remove namespaces and links left by processes that died without cleaning up.
fn sweep_dead_labs() {
    let dead = |name: &str| {
        owner_pid(name).is_some_and(|pid| {
            pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
        })
    };
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for name in entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| dead(n))
        {
            tracing::info!(netns = %name, "removing network namespace left by a dead process");
            kill_processes_in(&name);
            let _ = ip(&["netns", "del", &name]);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for name in entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| dead(n))
        {
            tracing::info!(link = %name, "removing link left by a dead process");
            let _ = ip(&["link", "del", &name]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_our_names() {
        assert_eq!(owner_pid("nr1f-0b"), Some(0x1f));
        assert_eq!(owner_pid("nr1f-0-zone-a"), Some(0x1f));
        assert_eq!(owner_pid("nrx-0b"), None);
        assert_eq!(owner_pid("eth0"), None);
        assert_eq!(owner_pid("nr1f"), None);
    }

    #[test]
    fn names_fit_interface_limit() {
        // IFNAMSIZ is 16 with the terminating NUL.
        let prefix = format!("nr{:x}-{:x}", 4_194_304u32, 0xffu32);
        assert!(format!("{prefix}h{:x}", 254u8).len() <= 15);
        assert!(format!("{prefix}b").len() <= 15);
    }
}
