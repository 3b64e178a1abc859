//! What the one-node cluster changes on the host, and undoing it.
//!
//! A [`Snapshot`] taken before the node starts is the reference: teardown
//! removes what is new since then (iptables rules and chains, ipsets, nft
//! tables, mounts, links, directories, cgroups) and writes back the sysctls,
//! and [`Snapshot::leftovers`] after teardown is the sweep: anything it lists
//! is something the node made and did not remove.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::super::Error;
use crate::fault::netns::lab::find_program;

/// Kernel knobs the node's components set (ip forwarding and bridge
/// netfilter by us; the kubelet's and kube-proxy's own), restored on teardown.
pub const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
];

/// Directories components create at fixed places whatever their configured
/// roots; removed when they did not exist before.
pub const FIXED_DIRS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/var/lib/containerd",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
    "/run/netns",
    "/var/run/kube-router",
    "/var/lib/kube-router",
    "/tmp/hostpath-provisioner",
    "/tmp/hostpath_pv",
];

/// Whole-host state the node may change. Only root can read all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `iptables-save` / `ip6tables-save` lines per table, counters stripped.
    pub iptables: BTreeMap<String, BTreeSet<String>>,
    pub ipsets: BTreeSet<String>,
    pub nft_tables: BTreeSet<String>,
    pub sysctls: BTreeMap<String, String>,
    pub links: BTreeSet<String>,
    pub mounts: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        Snapshot {
            iptables: iptables_state(),
            ipsets: lines_of("ipset", &["list", "-n"]),
            nft_tables: lines_of("nft", &["list", "tables"]),
            sysctls: SYSCTLS
                .iter()
                .filter_map(|k| read_sysctl(k).map(|v| (k.to_string(), v)))
                .collect(),
            links: std::fs::read_dir("/sys/class/net")
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            mounts: mount_points(),
            dirs: FIXED_DIRS
                .iter()
                .filter(|d| Path::new(d).exists())
                .map(|d| d.to_string())
                .collect(),
        }
    }

    /// What differs from `before` now, one line each; empty when the host is
    /// back to `before`. `owned` filters links and mounts to those the node
    /// could have made (other tests on the machine make their own).
    pub fn leftovers(&self, before: &Snapshot, root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for (table, lines) in &self.iptables {
            let old = before.iptables.get(table);
            for line in lines {
                if old.is_none_or(|o| !o.contains(line)) {
                    out.push(format!("{table}: {line}"));
                }
            }
        }
        for (what, now, then) in [
            ("ipset", &self.ipsets, &before.ipsets),
            ("nft", &self.nft_tables, &before.nft_tables),
            ("dir", &self.dirs, &before.dirs),
        ] {
            out.extend(now.difference(then).map(|x| format!("{what}: {x}")));
        }
        for (k, v) in &self.sysctls {
            if before.sysctls.get(k) != Some(v) {
                out.push(format!(
                    "sysctl {k} = {v} (was {})",
                    before.sysctls.get(k).map_or("unset", |s| s)
                ));
            }
        }
        out.extend(
            self.links
                .difference(&before.links)
                .filter(|l| is_node_link(l))
                .map(|l| format!("link: {l}")),
        );
        let root = root.to_string_lossy();
        out.extend(
            self.mounts
                .difference(&before.mounts)
                .filter(|m| is_node_mount(m, &root))
                .map(|m| format!("mount: {m}")),
        );
        out
    }
}

/// Links the node's network makes: its own dummy and bridge, and pod veths.
pub fn is_node_link(name: &str) -> bool {
    name == super::NODE_LINK || name == super::POD_BRIDGE || name.starts_with("veth")
}

fn is_node_mount(mount: &str, root: &str) -> bool {
    mount.starts_with(root)
        || mount.starts_with("/run/containerd")
        || mount.starts_with("/run/netns")
        || mount.starts_with("/var/lib/kubelet")
}

/// Removes what is new since `before`, in dependency order: mounts, then
/// netfilter state (rules before chains before sets), links, directories,
/// and the sysctls last so forwarding stays on until nothing uses it.
pub fn restore(before: &Snapshot, root: &Path) {
    unmount_under(root, before);
    restore_iptables(before);
    let now = Snapshot::take();
    for set in now.ipsets.difference(&before.ipsets) {
        let _ = quiet("ipset", &["destroy", set]);
    }
    for table in now.nft_tables.difference(&before.nft_tables) {
        // "table ip kube-proxy" -> nft delete table ip kube-proxy
        let words: Vec<&str> = table.split_whitespace().skip(1).collect();
        let mut args = vec!["delete", "table"];
        args.extend(words);
        let _ = quiet("nft", &args);
    }
    for link in now.links.difference(&before.links) {
        if is_node_link(link) {
            let _ = quiet("ip", &["link", "del", link]);
        }
    }
    for dir in FIXED_DIRS {
        if !before.dirs.contains(*dir)
            && Path::new(dir).exists()
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!(dir, error = %e, "could not remove a directory the node made");
        }
    }
    for (key, value) in &before.sysctls {
        if read_sysctl(key).as_ref() != Some(value) {
            let _ = std::fs::write(Path::new("/proc/sys").join(key), value);
        }
    }
}

/// Detaches every mount under `root` and every new mount in the places the
/// runtime and kubelet use, deepest first.
fn unmount_under(root: &Path, before: &Snapshot) {
    let root = root.to_string_lossy().into_owned();
    for _ in 0..3 {
        let mut mounts: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| !before.mounts.contains(m) && is_node_mount(m, &root))
            .collect();
        if mounts.is_empty() {
            return;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m.clone()) {
                // SAFETY: a valid NUL-terminated path; MNT_DETACH never blocks.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Deletes rules that were not there before, then chains that were not there
/// before, with `iptables-restore --noflush` so nothing else is touched.
fn restore_iptables(before: &Snapshot) {
    for (save, restore_cmd) in [
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ] {
        let now = parse_save(&run_out(save, &[]).unwrap_or_default());
        let mut script = String::new();
        for (table, lines) in &now {
            let key = format!("{save}/{table}");
            let old = before.iptables.get(&key);
            let is_new = |l: &String| old.is_none_or(|o| !o.contains(l));
            // Rules in new chains go with their chain's flush; only the jumps
            // into them from the built-in chains need deleting one by one
            // (and those parse back reliably, unlike some kube-router rules).
            let rules: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("-A ") && is_new(l))
                .filter(|l| {
                    l[3..]
                        .split_whitespace()
                        .next()
                        .is_some_and(is_builtin_chain)
                })
                .collect();
            let chains: Vec<String> = lines
                .iter()
                .filter(|l| l.starts_with(':') && is_new(l))
                .filter_map(|l| l[1..].split_whitespace().next().map(str::to_string))
                .filter(|c| !is_builtin_chain(c))
                .collect();
            if rules.is_empty() && chains.is_empty() {
                continue;
            }
            script.push_str(&format!("*{table}\n"));
            for rule in rules {
                script.push_str(&format!("-D {}\n", &rule[3..]));
            }
            for chain in &chains {
                script.push_str(&format!("-F {chain}\n"));
            }
            for chain in &chains {
                script.push_str(&format!("-X {chain}\n"));
            }
            script.push_str("COMMIT\n");
        }
        if script.is_empty() {
            continue;
        }
        if let Err(e) = run_stdin(restore_cmd, &["--noflush"], &script) {
            tracing::warn!(error = %e, "could not remove the node's {save} rules");
        }
    }
}

fn is_builtin_chain(c: &str) -> bool {
    matches!(
        c,
        "INPUT" | "OUTPUT" | "FORWARD" | "PREROUTING" | "POSTROUTING"
    )
}

fn iptables_state() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for save in ["iptables-save", "ip6tables-save"] {
        for (table, lines) in parse_save(&run_out(save, &[]).unwrap_or_default()) {
            // A table with only its built-in chains and no rules is what
            // iptables-nft leaves after any listing; it holds nothing.
            let meaningful = lines
                .iter()
                .any(|l| l.starts_with("-A ") || (l.starts_with(':') && !is_builtin_decl(l)));
            if meaningful {
                out.insert(format!("{save}/{table}"), lines);
            }
        }
    }
    out
}

fn is_builtin_decl(line: &str) -> bool {
    line[1..]
        .split_whitespace()
        .next()
        .is_some_and(is_builtin_chain)
        && line.contains(" ACCEPT")
}

/// Table name -> its chain declarations (counters cut) and rules.
fn parse_save(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
            out.entry(table.clone()).or_default();
        } else if line.starts_with(':') {
            // ":KUBE-SERVICES - [0:0]" -> ":KUBE-SERVICES -"
            let decl = line.split(" [").next().unwrap_or(line).to_string();
            out.entry(table.clone()).or_default().insert(decl);
        } else if line.starts_with("-A ") {
            out.entry(table.clone())
                .or_default()
                .insert(line.to_string());
        }
    }
    out
}

fn mount_points() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(str::to_string)
        .collect()
}

pub fn read_sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(key))
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn write_sysctl(key: &str, value: &str) -> Result<(), Error> {
    std::fs::write(Path::new("/proc/sys").join(key), value)
        .map_err(|e| Error::io(format!("set sysctl {key}={value}"), e))
}

fn program(name: &str) -> PathBuf {
    crate::tools::binary(name)
        .ok()
        .or_else(|| find_program(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `name args` to completion: its stdout, or an error with its stderr.
pub fn run_out(name: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(program(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("run {name}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: format!("{name} {}", args.join(" ")),
            output: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

fn run_stdin(name: &str, args: &[&str], input: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut child = Command::new(program(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("run {name}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("wait for {name}"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("{name} {} <<{input}", args.join(" ")),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs a command whose failure only means "nothing to do".
pub fn quiet(name: &str, args: &[&str]) -> Result<String, Error> {
    run_out(name, args)
}

fn lines_of(name: &str, args: &[&str]) -> BTreeSet<String> {
    run_out(name, args)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Process ids whose command line mentions `needle` (a path only this node
/// uses), for the shims and containers that outlive a killed runtime.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                .filter(|pid| *pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(needle))
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn kill(pid: i32) {
    // SAFETY: plain kill(2); a pid that is gone just fails with ESRCH.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Every cgroup v1 hierarchy root (one per mounted controller set).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process in `name` (under every hierarchy) and removes the
/// cgroups, deepest first. Returns the cgroups that could not be removed.
pub fn remove_cgroup_tree(name: &str) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for hierarchy in cgroup_hierarchies() {
        let top = hierarchy.join(name);
        if !top.exists() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        for _ in 0..50 {
            let mut any = false;
            for d in &dirs {
                for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    any = true;
                    kill(pid);
                }
            }
            if !any {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            if std::fs::remove_dir(&d).is_err() && d.exists() {
                left.push(d);
            }
        }
    }
    left
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_output_is_keyed_by_table_without_counters() {
        let text = "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n";
        let parsed = parse_save(text);
        let nat = &parsed["nat"];
        assert!(nat.contains(":KUBE-SERVICES -"));
        assert!(nat.contains("-A PREROUTING -j KUBE-SERVICES"));
        assert!(nat.contains(":PREROUTING ACCEPT"));
    }

    #[test]
    fn only_the_nodes_links_and_mounts_count_as_leftovers() {
        let before = Snapshot::default();
        let after = Snapshot {
            links: ["eth1", "nrcni0", "veth1234", "nr123-br"]
                .map(String::from)
                .into(),
            mounts: ["/tmp/node-x/kubelet/pods/a", "/mnt/other"]
                .map(String::from)
                .into(),
            ..Snapshot::default()
        };
        let left = after.leftovers(&before, Path::new("/tmp/node-x"));
        assert_eq!(
            left,
            vec![
                "link: nrcni0",
                "link: veth1234",
                "mount: /tmp/node-x/kubelet/pods/a"
            ]
        );
    }
}
