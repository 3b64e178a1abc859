//! Configuration files of the node's components. The settings that are not
//! defaults are the ones this kind of machine needs: cgroup v1 without
//! systemd, no CAP_SYS_RESOURCE (so no negative OOM scores), no hugetlb
//! controller, and nothing listening or routed beyond the node's own bridge.

use std::path::Path;

use serde_json::json;

use super::{CLUSTER_DOMAIN, DNS_IP, NODE_IP, POD_BRIDGE, POD_CIDR, POD_GATEWAY, SANDBOX_IMAGE};

/// containerd 2.x (config version 3) with the CRI plugin for the kubelet.
pub fn containerd(root: &Path, socket: &Path, cni_bin: &Path, cni_conf: &Path) -> String {
    let runc = crate::fault::netns::lab::find_program("runc")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "runc".into());
    format!(
        r#"version = 3
root = "{root}/containerd/root"
state = "{root}/containerd/state"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # No CAP_SYS_RESOURCE here: a container may not get a lower OOM score
  # than containerd's own, or runc's create fails.
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  # Pod network namespaces stay under our state directory, not /run/netns.
  netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  SystemdCgroup = false

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["{cni_bin}"]
  conf_dir = "{cni_conf}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{SANDBOX_IMAGE}"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.nri.v1.nri"]
  disable = true
"#,
        root = root.display(),
        socket = socket.display(),
        cni_bin = cni_bin.display(),
        cni_conf = cni_conf.display(),
    )
}

/// One bridge for every pod, the host as gateway, no masquerading: pod
/// traffic stays on this machine's own addresses.
pub fn cni(ipam_dir: &Path) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "natsregion",
        "plugins": [{
            "type": "bridge",
            "bridge": POD_BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            // A pod reaching itself through a Service comes back over its own port.
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": ipam_dir,
            },
        }],
    })
    .to_string()
}

pub struct Kubelet<'a> {
    pub root: &'a Path,
    pub port: u16,
    pub healthz_port: u16,
    pub resolv_conf: &'a Path,
    pub cgroup_root: &'a str,
}

pub fn kubelet(k: &Kubelet<'_>) -> String {
    let config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        // cgroup v1 and no systemd on this machine.
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": k.cgroup_root,
        // The kubelet may not lower its own OOM score without CAP_SYS_RESOURCE.
        "oomScoreAdj": 0,
        "failSwapOn": false,
        "resolvConf": k.resolv_conf,
        "podCIDR": POD_CIDR,
        "podLogsDir": k.root.join("pod-logs"),
        "address": NODE_IP.to_string(),
        "port": k.port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": k.healthz_port,
        "clusterDNS": [DNS_IP.to_string()],
        "clusterDomain": CLUSTER_DOMAIN,
        // The API server calls in for logs, exec and port-forward; the node
        // listens only on its own dummy address.
        "authentication": {"anonymous": {"enabled": true}, "webhook": {"enabled": false}},
        "authorization": {"mode": "AlwaysAllow"},
        // The images are imported, never pulled: nothing may collect them, and
        // a busy disk must not evict the test's pods.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "serializeImagePulls": false,
        "registerNode": true,
        "staticPodPath": "",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "4s",
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
        "protectKernelDefaults": false,
    });
    serde_yaml_ng::to_string(&config).expect("kubelet config serializes")
}

/// Our own resolv.conf for the kubelet: pods with `dnsPolicy: Default` get
/// it, and nothing in it leads off this machine.
pub fn resolv_conf() -> String {
    format!("nameserver {DNS_IP}\noptions ndots:1\n")
}

/// openssl x509v3 extensions of the API server's serving certificate: every
/// name and address a client on the host or in a pod uses.
pub fn apiserver_cert_ext(service_ip: &str) -> String {
    format!(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:{NODE_IP},IP:{service_ip},IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,\
         DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.{CLUSTER_DOMAIN},DNS:localhost\n"
    )
}
