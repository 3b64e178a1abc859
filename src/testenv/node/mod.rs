//! A one-node Kubernetes cluster on this machine, from the binaries
//! `tools/install.sh k8s node` builds and the images `tools/images.sh`
//! assembles: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! containerd (with Debian's runc), the kubelet, kube-proxy (iptables),
//! kube-router (NetworkPolicy only) and CoreDNS as a pod.
//!
//! Root only, and one at a time per machine: the node owns fixed names (its
//! own link, the pod bridge, a cgroup, iptables chains). Everything lives on
//! addresses the node creates (a link for the node, a bridge for pods)
//! and nothing is masqueraded off the machine. Dropping the node removes every
//! process, mount, link, rule, set, cgroup and sysctl change it made;
//! [`Node::sweep`] lists whatever is left.

mod addons;
pub mod cluster;
mod config;
pub mod host;
pub mod lock;
mod pods_ran;
mod storage;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::{Api, Client};
use tempfile::TempDir;

pub use addons::apply_all;
pub use host::Snapshot;
pub use pods_ran::PodsRan;

use super::Error;
use super::controlplane::{ControlPlane, ControlPlaneOptions};
use super::process::{Proc, free_port, tail};
use crate::tools;

pub const NODE_NAME: &str = "natsregion-node";
/// The node's topology zone label (`topology.kubernetes.io/zone`).
pub const ZONE: &str = "zone-a";
/// A link of our own (an empty bridge) holding [`NODE_IP`]: the address the API server advertises
/// and the kubelet serves on, reachable from pods through the bridge.
pub const NODE_LINK: &str = "nrnode0";
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 1);
/// The bridge the CNI plugin puts every pod on.
pub const POD_BRIDGE: &str = "nrcni0";
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The first /24 of the cluster range: the controller manager gives it to
/// the only node, and the CNI config uses it directly.
pub const POD_CIDR: &str = "10.244.0.0/24";
pub const POD_GATEWAY: &str = "10.244.0.1";
pub const SERVICE_CIDR: &str = "10.96.0.0/24";
pub const API_SERVICE_IP: &str = "10.96.0.1";
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// cgroup (in every v1 hierarchy) under which the kubelet puts all pods.
pub const CGROUP_ROOT: &str = "natsregion-node";
/// Prefix of the node's temporary directory; a crashed run's processes and
/// mounts are found by it.
const DIR_PREFIX: &str = "natsregion-node-";

pub const SANDBOX_IMAGE: &str = "natsregion.local/pause:1";
pub const COREDNS_IMAGE: &str = "natsregion.local/coredns:v1.15.0";
pub const RESOLVE_IMAGE: &str = "natsregion.local/resolve:1";

const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
const ADDON_TIMEOUT: Duration = Duration::from_secs(120);

/// Every binary the node runs, found before anything starts.
struct Binaries {
    scheduler: PathBuf,
    containerd: PathBuf,
    kubelet: PathBuf,
    kube_proxy: PathBuf,
    kube_router: PathBuf,
    cni_bin: PathBuf,
    images: Vec<PathBuf>,
}

pub struct Node {
    kube_router: Option<Proc>,
    kube_proxy: Option<Proc>,
    kubelet: Option<Proc>,
    containerd: Option<Proc>,
    scheduler: Option<Proc>,
    plane: Option<ControlPlane>,
    dir: Option<TempDir>,
    root: PathBuf,
    socket: PathBuf,
    kube_router_bin: PathBuf,
    before: Snapshot,
    pods_ran: PodsRan,
    /// Held for the node's life: fields drop after `Drop::drop` has torn the node down.
    _lock: lock::NodeLock,
    watch: Option<tokio::task::JoinHandle<()>>,
    volumes: Option<tokio::task::JoinHandle<()>>,
    /// Phase name and how long it took, in start order.
    pub startup: Vec<(&'static str, Duration)>,
}

impl Node {
    /// Why this machine cannot run the node, or `Ok` when it can. Tests skip
    /// on an error and print it.
    pub fn preflight() -> Result<(), Error> {
        Self::binaries().map(|_| ())
    }

    fn binaries() -> Result<Binaries, Error> {
        if !crate::fault::netns::lab::is_root() {
            return Err(Error::Unsupported(
                "not root: a node needs to create cgroups, mounts, links and iptables rules".into(),
            ));
        }
        let bin = |name: &str| tools::binary(name).map_err(Error::from);
        for name in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "containerd-shim-runc-v2",
            "ctr",
            "crictl",
        ] {
            bin(name)?;
        }
        for program in ["runc", "iptables", "ipset"] {
            if crate::fault::netns::lab::find_program(program).is_none() {
                return Err(Error::Unsupported(format!(
                    "{program} is not installed (tools/install.sh node installs it as root)"
                )));
            }
        }
        let containerd = bin("containerd")?;
        let cache = containerd
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let cni_bin = cache.join("cni/bin");
        if !cni_bin.join("bridge").is_file() {
            return Err(Error::Unsupported(format!(
                "no CNI plugins in {} (tools/install.sh node)",
                cni_bin.display()
            )));
        }
        let image_dir = cache.join("images");
        let mut images: Vec<PathBuf> = std::fs::read_dir(&image_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "tar"))
                    .collect()
            })
            .unwrap_or_default();
        images.sort();
        if images.is_empty() {
            return Err(Error::Unsupported(format!(
                "no images in {} (tools/images.sh)",
                image_dir.display()
            )));
        }
        Ok(Binaries {
            scheduler: bin("kube-scheduler")?,
            containerd,
            kubelet: bin("kubelet")?,
            kube_proxy: bin("kube-proxy")?,
            kube_router: bin("kube-router")?,
            cni_bin,
            images,
        })
    }

    /// Starts everything and returns once the node is Ready and a pod has
    /// resolved a Service name through cluster DNS.
    pub async fn start() -> Result<Node, Error> {
        let bins = Self::binaries()?;
        // Before remove_stale, which would tear down a node still running.
        let held = lock::acquire(Path::new(lock::PATH), lock::WAIT).await?;
        remove_stale();
        let before = Snapshot::take();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create the node's directory", e))?;
        let root = dir.path().to_path_buf();
        let mut node = Node {
            kube_router: None,
            kube_proxy: None,
            kubelet: None,
            containerd: None,
            scheduler: None,
            plane: None,
            dir: Some(dir),
            socket: root.join("containerd.sock"),
            root,
            kube_router_bin: bins.kube_router.clone(),
            before,
            pods_ran: PodsRan::default(),
            _lock: held,
            watch: None,
            volumes: None,
            startup: Vec::new(),
        };
        // On error the half-started node is dropped here, which undoes it.
        node.bring_up(&bins).await?;
        if std::env::var_os(super::controlplane::KEEP_ENV).is_some() {
            node.dir.take().map(TempDir::keep);
        }
        Ok(node)
    }

    async fn bring_up(&mut self, bins: &Binaries) -> Result<(), Error> {
        let started = Instant::now();
        let mut phase = Instant::now();
        let mut mark = |node: &mut Node, name: &'static str| {
            node.startup.push((name, phase.elapsed()));
            tracing::info!(phase = name, took = ?phase.elapsed(), "node");
            phase = Instant::now();
        };
        self.host_network()?;
        self.make_cgroup_root()?;
        let logs = self.mkdir("logs")?;
        let (cert, key) = self.pki().await?;
        mark(self, "host");

        let plane = ControlPlane::start_with(ControlPlaneOptions {
            address: NODE_IP,
            service_cidr: SERVICE_CIDR.into(),
            serving_cert: Some((cert, key)),
            service_accounts: true,
            extra_args: vec![
                "--kubelet-preferred-address-types=InternalIP".into(),
                "--profiling=false".into(),
            ],
        })
        .await?;
        self.plane = Some(plane);
        let ca = self.root.join("pki/ca.crt");
        let plane = self.plane.as_mut().expect("just set");
        plane
            .start_controller_manager_with(&[
                "--allocate-node-cidrs=true".into(),
                format!("--cluster-cidr={CLUSTER_CIDR}"),
                "--node-cidr-mask-size=24".into(),
                format!("--root-ca-file={}", ca.display()),
                // The default StorageClass's provisioner (see addons).
                "--enable-hostpath-provisioner=true".into(),
                "--node-monitor-grace-period=20s".into(),
            ])
            .await?;
        let kubeconfig = plane.kubeconfig_path().to_path_buf();
        mark(self, "control plane");

        let port = free_port()?;
        self.scheduler = Some(Proc::spawn(
            "kube-scheduler",
            &bins.scheduler,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                "--leader-elect=false".into(),
            ],
            logs.join("kube-scheduler.log"),
        )?);

        self.start_containerd(bins, &logs).await?;
        mark(self, "containerd");
        self.import_images(&bins.images).await?;
        mark(self, "images");

        self.start_kubelet(bins, &logs, &kubeconfig)?;
        let proxy_ports = (free_port()?, free_port()?);
        self.kube_proxy = Some(Proc::spawn(
            "kube-proxy",
            &bins.kube_proxy,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--proxy-mode=iptables".into(),
                format!("--cluster-cidr={CLUSTER_CIDR}"),
                format!("--hostname-override={NODE_NAME}"),
                format!("--healthz-bind-address=127.0.0.1:{}", proxy_ports.0),
                format!("--metrics-bind-address=127.0.0.1:{}", proxy_ports.1),
                // Leave the host's conntrack table size alone.
                "--conntrack-max-per-core=0".into(),
            ],
            logs.join("kube-proxy.log"),
        )?);
        let client = self.client().await?;
        self.watch = Some(self.pods_ran.watch(client.clone()));
        self.volumes = Some(storage::open_provisioned_volumes(client.clone()));
        self.wait_node_ready(&client).await?;
        mark(self, "node ready");
        // kube-router finds its node by name: only once it is registered.
        self.start_policy_agent()?;

        apply_all(&client, &[addons::storage_class()]).await?;
        apply_all(&client, &addons::coredns()).await?;
        self.wait_deployment(&client, "kube-system", "coredns", ADDON_TIMEOUT)
            .await?;
        mark(self, "coredns");
        addons::resolve_probe(&client, ADDON_TIMEOUT).await?;
        mark(self, "dns probe");
        self.startup.push(("total", started.elapsed()));
        Ok(())
    }

    fn mkdir(&self, name: &str) -> Result<PathBuf, Error> {
        let path = self.root.join(name);
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        Ok(path)
    }

    /// Forwarding and bridge netfilter on (kube-proxy's DNAT between pods on
    /// one bridge needs both), and the node's own address.
    fn host_network(&self) -> Result<(), Error> {
        host::write_sysctl("net/ipv4/ip_forward", "1")?;
        host::write_sysctl("net/bridge/bridge-nf-call-iptables", "1")?;
        // An empty bridge: this kernel has no dummy link driver, and a local
        // address on a bridge without ports is still served.
        host::run_out("ip", &["link", "add", NODE_LINK, "type", "bridge"])?;
        host::run_out(
            "ip",
            &["addr", "add", &format!("{NODE_IP}/32"), "dev", NODE_LINK],
        )?;
        host::run_out("ip", &["link", "set", NODE_LINK, "up"])?;
        Ok(())
    }

    fn make_cgroup_root(&self) -> Result<(), Error> {
        for hierarchy in host::cgroup_hierarchies() {
            let dir = hierarchy.join(CGROUP_ROOT);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("create cgroup {}", dir.display()), e))?;
            // A new cpuset starts empty and takes no tasks until given some.
            for knob in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(hierarchy.join(knob)) {
                    let _ = std::fs::write(dir.join(knob), v.trim());
                }
            }
        }
        Ok(())
    }

    /// A CA and the API server's serving certificate, so pods verify the API
    /// server through the `kube-root-ca.crt` ConfigMap like anywhere else.
    async fn pki(&self) -> Result<(PathBuf, PathBuf), Error> {
        let pki = self.mkdir("pki")?;
        let p = |n: &str| pki.join(n).display().to_string();
        let ext = pki.join("apiserver.ext");
        std::fs::write(&ext, config::apiserver_cert_ext(API_SERVICE_IP))
            .map_err(|e| Error::io("write the certificate extensions", e))?;
        let steps: [Vec<String>; 5] = [
            vec![
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &p("ca.key"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            [
                "req",
                "-x509",
                "-new",
                "-key",
                &p("ca.key"),
                "-subj",
                "/CN=natsregion-node-ca",
                "-days",
                "2",
                "-out",
                &p("ca.crt"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            vec![
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &p("apiserver.key"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            [
                "req",
                "-new",
                "-key",
                &p("apiserver.key"),
                "-subj",
                "/CN=kube-apiserver",
                "-out",
                &p("apiserver.csr"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            [
                "x509",
                "-req",
                "-in",
                &p("apiserver.csr"),
                "-CA",
                &p("ca.crt"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &p("apiserver.ext"),
                "-out",
                &p("apiserver.crt"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ];
        for args in steps {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            host::run_out("openssl", &args)?;
        }
        Ok((pki.join("apiserver.crt"), pki.join("apiserver.key")))
    }

    async fn start_containerd(&mut self, bins: &Binaries, logs: &Path) -> Result<(), Error> {
        let cni_conf = self.mkdir("cni/net.d")?;
        std::fs::write(
            cni_conf.join("10-natsregion.conflist"),
            config::cni(&self.root.join("cni/ipam")),
        )
        .map_err(|e| Error::io("write the CNI config", e))?;
        let conf = self.root.join("containerd.toml");
        std::fs::write(
            &conf,
            config::containerd(&self.root, &self.socket, &bins.cni_bin, &cni_conf),
        )
        .map_err(|e| Error::io("write the containerd config", e))?;
        // containerd finds its shim on PATH.
        let mut proc = Proc::spawn(
            "containerd",
            &bins.containerd,
            &[
                "--config".into(),
                conf.display().to_string(),
                "--log-level=warn".into(),
            ],
            logs.join("containerd.log"),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = proc.exited() {
                return Err(proc.exited_error(status));
            }
            if self.socket.exists() && self.ctr(&["version"]).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: "containerd to serve its socket".into(),
                    after: Duration::from_secs(30),
                    last: String::new(),
                    log: proc.log.clone(),
                    tail: tail(&proc.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.containerd = Some(proc);
        Ok(())
    }

    fn ctr(&self, args: &[&str]) -> Result<String, Error> {
        let socket = self.socket.display().to_string();
        let mut all = vec!["-a", socket.as_str(), "-n", "k8s.io"];
        all.extend_from_slice(args);
        host::run_out("ctr", &all)
    }

    async fn import_images(&self, images: &[PathBuf]) -> Result<(), Error> {
        for image in images {
            let path = image.display().to_string();
            self.ctr(&["images", "import", "--all-platforms", &path])?;
        }
        Ok(())
    }

    fn start_kubelet(
        &mut self,
        bins: &Binaries,
        logs: &Path,
        kubeconfig: &Path,
    ) -> Result<(), Error> {
        let resolv = self.root.join("resolv.conf");
        std::fs::write(&resolv, config::resolv_conf())
            .map_err(|e| Error::io("write the kubelet's resolv.conf", e))?;
        let conf = self.root.join("kubelet.yaml");
        let port = free_port()?;
        let healthz_port = free_port()?;
        std::fs::write(
            &conf,
            config::kubelet(&config::Kubelet {
                root: &self.root,
                port,
                healthz_port,
                resolv_conf: &resolv,
                cgroup_root: &format!("/{CGROUP_ROOT}"),
            }),
        )
        .map_err(|e| Error::io("write the kubelet config", e))?;
        let kubelet_root = self.mkdir("kubelet")?;
        self.kubelet = Some(Proc::spawn(
            "kubelet",
            &bins.kubelet,
            &[
                format!("--config={}", conf.display()),
                format!("--kubeconfig={}", kubeconfig.display()),
                format!(
                    "--container-runtime-endpoint=unix://{}",
                    self.socket.display()
                ),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={NODE_IP}"),
                format!("--root-dir={}", kubelet_root.display()),
                format!("--cert-dir={}", self.root.join("kubelet-pki").display()),
                format!("--node-labels=topology.kubernetes.io/zone={ZONE}"),
            ],
            logs.join("kubelet.log"),
        )?);
        Ok(())
    }

    /// Starts kube-router as the NetworkPolicy agent (firewall only: the
    /// bridge plugin does pod networking and kube-proxy Services).
    pub fn start_policy_agent(&mut self) -> Result<(), Error> {
        if self.kube_router.is_some() {
            return Ok(());
        }
        let kubeconfig = self.kubeconfig_path().to_path_buf();
        let health = free_port()?;
        self.kube_router = Some(Proc::spawn(
            "kube-router",
            &self.kube_router_bin,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--run-router=false".into(),
                "--run-service-proxy=false".into(),
                "--run-firewall=true".into(),
                "--enable-cni=false".into(),
                format!("--hostname-override={NODE_NAME}"),
                format!("--health-port={health}"),
                "--metrics-port=0".into(),
            ],
            self.root.join("logs/kube-router.log"),
        )?);
        Ok(())
    }

    /// Kills kube-router. Its rules stay where they are, as they would with a
    /// crashed agent: policies applied from now on are not enforced.
    pub fn stop_policy_agent(&mut self) {
        self.kube_router = None;
    }

    async fn wait_node_ready(&mut self, client: &Client) -> Result<(), Error> {
        let nodes: Api<KubeNode> = Api::all(client.clone());
        let started = Instant::now();
        let mut last;
        loop {
            for proc in [
                &mut self.kubelet,
                &mut self.containerd,
                &mut self.kube_proxy,
                &mut self.kube_router,
            ]
            .into_iter()
            .flatten()
            {
                if let Some(status) = proc.exited() {
                    return Err(proc.exited_error(status));
                }
            }
            match nodes.get_opt(NODE_NAME).await? {
                Some(n) => {
                    let ready = n
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                        .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()));
                    let tainted =
                        n.spec
                            .as_ref()
                            .and_then(|s| s.taints.as_ref())
                            .is_some_and(|t| {
                                t.iter().any(|t| t.key.starts_with("node.kubernetes.io/"))
                            });
                    match ready {
                        Some((s, _)) if s == "True" && !tainted => return Ok(()),
                        Some((s, m)) => last = format!("Ready={s} {m} tainted={tainted}"),
                        None => last = "no Ready condition yet".into(),
                    }
                }
                None => last = "node not registered".into(),
            }
            if started.elapsed() > NODE_READY_TIMEOUT {
                let log = self.root.join("logs/kubelet.log");
                return Err(Error::Timeout {
                    what: format!("node {NODE_NAME} Ready"),
                    after: NODE_READY_TIMEOUT,
                    last,
                    tail: tail(&log),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until a Deployment has all its replicas ready.
    pub async fn wait_deployment(
        &self,
        client: &Client,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let started = Instant::now();
        let mut last = String::new();
        loop {
            if let Some(d) = api.get_opt(name).await? {
                let want = d.spec.replicas.unwrap_or(1);
                let ready = d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                if ready >= want {
                    return Ok(());
                }
                last = format!("{ready}/{want} ready");
            }
            if started.elapsed() > timeout {
                let log = self.root.join("logs/kubelet.log");
                return Err(Error::Timeout {
                    what: format!("deployment {ns}/{name}"),
                    after: timeout,
                    last,
                    tail: tail(&log),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn plane(&self) -> &ControlPlane {
        self.plane
            .as_ref()
            .expect("control plane runs while the node does")
    }

    pub async fn client(&self) -> Result<Client, Error> {
        self.plane().client().await
    }

    pub fn kubeconfig_path(&self) -> &Path {
        self.plane().kubeconfig_path()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A shell command that imports the image archive `name` (a file
    /// `tools/images.sh` wrote) into this node's containerd: what `kind load`
    /// is for a kind cluster, for scripts that load images themselves
    /// (kind/steps.sh's `load_operator_image`).
    pub fn image_load_command(&self, name: &str) -> Result<String, Error> {
        let archive = Self::binaries()?
            .images
            .into_iter()
            .find(|p| p.file_name().is_some_and(|f| f == name))
            .ok_or_else(|| {
                Error::Unsupported(format!("no image archive {name} (tools/images.sh)"))
            })?;
        let ctr = tools::binary("ctr")?;
        Ok(format!(
            "'{}' -a '{}' -n k8s.io images import --all-platforms '{}'",
            ctr.display(),
            self.socket.display(),
            archive.display()
        ))
    }

    /// All component logs (the control plane's in its own directory).
    /// Component logs, the control plane's, and the kubelet's pod logs
    /// (`<namespace>_<pod>_<uid>/<container>/<n>.log`, while the pod exists).
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("logs"),
            self.plane().log_dir(),
            self.root.join("pod-logs"),
        ]
    }

    pub fn pods_ran(&self) -> &PodsRan {
        &self.pods_ran
    }

    /// The host state from before the node started, for [`Node::sweep`].
    pub fn host_before(&self) -> &Snapshot {
        &self.before
    }

    /// What a dropped node left behind, compared with `before` (empty when
    /// nothing): processes, cgroups, links, mounts, rules, sets, sysctls.
    pub fn sweep(before: &Snapshot, root: &Path) -> Vec<String> {
        let mut left = Snapshot::take().leftovers(before, root);
        let needle = root.to_string_lossy().into_owned();
        left.extend(
            host::pids_mentioning(&needle)
                .into_iter()
                .map(|p| format!("process {p} mentions {needle}")),
        );
        for hierarchy in host::cgroup_hierarchies() {
            let cg = hierarchy.join(CGROUP_ROOT);
            if cg.exists() {
                left.push(format!("cgroup {}", cg.display()));
            }
        }
        if root.exists() {
            left.push(format!("directory {}", root.display()));
        }
        left
    }

    fn teardown(&mut self) {
        for task in [self.watch.take(), self.volumes.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        self.kube_router = None;
        self.kube_proxy = None;
        self.kubelet = None;
        if self.containerd.is_some() {
            // Stops every pod through the runtime: containers killed, CNI
            // teardown (veth, IP), network namespaces unmounted.
            let endpoint = format!("unix://{}", self.socket.display());
            let _ = host::run_out(
                "crictl",
                &[
                    "--runtime-endpoint",
                    &endpoint,
                    "--timeout",
                    "60s",
                    "rmp",
                    "--all",
                    "--force",
                ],
            );
        }
        self.containerd = None;
        let needle = self.root.to_string_lossy().into_owned();
        // Shims are daemons (parent init); their command line names our socket.
        for pid in host::pids_mentioning(&needle) {
            host::kill(pid);
        }
        for cg in host::remove_cgroup_tree(CGROUP_ROOT) {
            tracing::warn!(cgroup = %cg.display(), "could not remove a cgroup of the node");
        }
        self.scheduler = None;
        self.plane = None;
        host::restore(&self.before, &self.root);
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove the node's directory");
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// What a killed earlier run left: its processes and mounts (found by the
/// directory prefix), its cgroup, links and Kubernetes' netfilter chains.
fn remove_stale() {
    if !Path::new("/sys/class/net").join(NODE_LINK).exists()
        && !host::cgroup_hierarchies()
            .iter()
            .any(|h| h.join(CGROUP_ROOT).exists())
    {
        return;
    }
    tracing::warn!("removing what an earlier node left behind");
    let tmp = std::env::temp_dir().join(DIR_PREFIX);
    let needle = tmp.to_string_lossy().into_owned();
    for pid in host::pids_mentioning(&needle) {
        host::kill(pid);
    }
    host::remove_cgroup_tree(CGROUP_ROOT);
    let mut clean = Snapshot::take();
    for lines in clean.iptables.values_mut() {
        lines.retain(|l| !(l.contains("KUBE-") || l.contains("CNI-")));
    }
    clean
        .ipsets
        .retain(|s| !(s.starts_with("KUBE-") || s.starts_with("kube-router")));
    clean.links.retain(|l| !host::is_node_link(l));
    clean.mounts.retain(|m| !m.contains(DIR_PREFIX));
    host::restore(&clean, &tmp);
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
