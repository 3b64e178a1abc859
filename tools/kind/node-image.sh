#!/usr/bin/env bash
# Builds the kind node image offline, as natsregion.local/kind-node:<k8s
# version>, into tools/kind/docker.sh's daemon. Nothing comes from a
# container registry:
#   - the root filesystem is Debian bookworm (debootstrap, from Debian's
#     packages; systemd 252, which still boots on this host's cgroup v1),
#   - containerd, crictl, the CNI plugins, kubelet, kubeadm and kubectl are
#     the binaries tools/install.sh node and kind build from the Go module proxy,
#   - the images kubeadm and the cluster run (control plane, etcd, kube-proxy,
#     CoreDNS, pause, kube-router, local-path-provisioner) are OCI archives tools/images.sh kind
#     assembles from those binaries; they sit in /kind/images and the node
#     imports them at boot, before the kubelet starts.
#
#   tools/kind/node-image.sh     # prints the image name
#
# Needs root and the daemon (eval "$(tools/kind/docker.sh start)"). The two
# debootstrap trees are cached as tarballs (rebuilt when their package lists
# change); the image is rebuilt only when an input changes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${NATSREGION_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsregion/tools}
bin="$cache/bin"
work="$cache/kind-node"
mkdir -p "$work"
say() { echo "node-image: $*" >&2; }

pin() { grep "^$1=" "$repo/tools/install.sh" | cut -d= -f2 | cut -d' ' -f1; }
k8s=$(pin KUBERNETES_VERSION)
kube_router=$(pin KUBE_ROUTER_VERSION)
local_path=$(pin LOCAL_PATH_PROVISIONER_VERSION)
image="natsregion.local/kind-node:$k8s"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The node: systemd and what kubeadm, the kubelet and containerd call.
NODE_PACKAGES=systemd,systemd-sysv,dbus,libseccomp2,runc,iptables,nftables,ipset,conntrack,iproute2,ethtool,socat,mount,util-linux,kmod,procps,ca-certificates,jq
# kube-proxy's and kube-router's images: the packet filter tools they exec.
NETBASE_PACKAGES=iptables,nftables,ipset,conntrack,iproute2

for b in containerd containerd-shim-runc-v2 ctr crictl kubelet kubeadm kubectl kube-router local-path-provisioner; do
  [ -x "$bin/$b" ] || { say "$bin/$b missing (tools/install.sh node; tools/install.sh kind)"; exit 1; }
done
command -v docker >/dev/null || { say "docker is not on PATH (eval \"\$(tools/kind/docker.sh start)\")"; exit 1; }

# debootstrap itself, from its Debian package, unpacked into the cache.
debootstrap_dir="$work/debootstrap"
if [ ! -x "$debootstrap_dir/usr/sbin/debootstrap" ]; then
  say "fetching debootstrap (Debian)"
  rm -rf "$debootstrap_dir"; mkdir -p "$debootstrap_dir/debs"
  (cd "$debootstrap_dir/debs" && apt-get download -q debootstrap >&2)
  dpkg -x "$debootstrap_dir"/debs/debootstrap_*.deb "$debootstrap_dir"
fi

# rootfs NAME PACKAGES: $work/NAME.tar, a bookworm minbase with PACKAGES.
rootfs() {
  local name=$1 packages=$2 tar="$work/$1.tar" tree
  [ -f "$tar" ] && [ "$(cat "$tar.stamp" 2>/dev/null)" = "$packages" ] && return
  say "debootstrap $name (bookworm minbase + $packages)"
  tree=$(mktemp -d "$work/$name.XXXX")
  local start=$SECONDS
  DEBOOTSTRAP_DIR="$debootstrap_dir/usr/share/debootstrap" \
    "$debootstrap_dir/usr/sbin/debootstrap" --variant=minbase --include="$packages" \
    bookworm "$tree" "$MIRROR" >"$work/$name.debootstrap.log" 2>&1 \
    || { say "debootstrap failed; see $work/$name.debootstrap.log"; tail -n 5 "$work/$name.debootstrap.log" >&2; exit 1; }
  # Nothing of the package cache or the build host's identity goes in.
  rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/* "$tree/etc/machine-id" "$tree/etc/hostname"
  : > "$tree/etc/machine-id"
  tar --numeric-owner --xattrs -C "$tree" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$tree"
  echo "$packages" > "$tar.stamp"
  say "debootstrap $name took $((SECONDS - start))s"
}

rootfs node "$NODE_PACKAGES"
rootfs netbase "$NETBASE_PACKAGES"

etcd_tag=$("$bin/kubeadm" config images list --kubernetes-version "$k8s" 2>/dev/null | sed -n 's|.*/etcd:||p')
[ -n "$etcd_tag" ] || { say "kubeadm did not name an etcd image"; exit 1; }
images=$("$repo/tools/images.sh" kind "$k8s" "$etcd_tag" "$work/netbase.tar" "$kube_router" "$local_path")
image_files=(
  "natsregion.local_kube-apiserver_$k8s.tar" "natsregion.local_kube-controller-manager_$k8s.tar"
  "natsregion.local_kube-scheduler_$k8s.tar" "natsregion.local_kube-proxy_$k8s.tar"
  "natsregion.local_etcd_$etcd_tag.tar" "natsregion.local_coredns_v1.15.0.tar"
  "natsregion.local_pause_1.tar" "natsregion.local_kube-router_$kube_router.tar"
  "natsregion.local_local-path-provisioner_$local_path.tar"
)

# The image is rebuilt when any input changed.
want=$( {
  cat "$work/node.tar.stamp"
  sha256sum "$here/node-image.sh" "$here/runc-bounded" "$here"/node/* \
    "$bin"/{containerd,containerd-shim-runc-v2,ctr,crictl,kubelet,kubeadm,kubectl} "$cache"/cni/bin/*
  for f in "${image_files[@]}"; do cat "$images/$f.stamp"; done
} | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "natsregion.inputs"}}' "$image" 2>/dev/null)" = "$want" ]; then
  echo "$image"; exit 0
fi

say "assembling $image"
start=$SECONDS
tree=$(mktemp -d "$work/image.XXXX")
trap 'rm -rf "$tree"' EXIT
tar --numeric-owner --xattrs -C "$tree" -xf "$work/node.tar"
install -m 0755 "$here/node/entrypoint" "$tree/usr/local/bin/entrypoint"
install -D -m 0755 "$here/node/import-images" "$tree/kind/bin/import-images"
install -m 0755 "$here/runc-bounded" "$tree/usr/local/sbin/runc-bounded"
install -m 0755 "$bin"/{containerd,containerd-shim-runc-v2,ctr,crictl} "$tree/usr/local/bin/"
install -m 0755 "$bin"/{kubelet,kubeadm,kubectl} "$tree/usr/bin/"
mkdir -p "$tree/opt/cni/bin" "$tree/etc/cni/net.d" "$tree/etc/containerd" "$tree/kind/images" "$tree/kind/manifests" "$tree/var/lib/kubelet"
# kind applies this instead of its own (whose images would be pulled).
sed "s/LOCAL_PATH_PROVISIONER_VERSION/$local_path/g" "$here/node/default-storage.yaml" > "$tree/kind/manifests/default-storage.yaml"
install -m 0755 "$cache"/cni/bin/* "$tree/opt/cni/bin/"
install -m 0644 "$here/node/containerd.toml" "$tree/etc/containerd/config.toml"
echo 'runtime-endpoint: unix:///run/containerd/containerd.sock' > "$tree/etc/crictl.yaml"
for unit in containerd.service kubelet.service kubelet.slice natsregion-images.service; do
  install -m 0644 "$here/node/$unit" "$tree/etc/systemd/system/$unit"
done
mkdir -p "$tree/etc/systemd/system/multi-user.target.wants"
for unit in containerd.service kubelet.service natsregion-images.service; do
  ln -sf "/etc/systemd/system/$unit" "$tree/etc/systemd/system/multi-user.target.wants/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$tree/etc/systemd/system/default.target"
for f in "${image_files[@]}"; do cp "$images/$f" "$tree/kind/images/"; done
echo "$k8s" > "$tree/kind/version"
# docker import takes the tree; a one-line build adds what import cannot
# set (the stop signal systemd wants, and the inputs label checked above).
tar --numeric-owner --xattrs -C "$tree" -c . | docker import - "$image-rootfs" >/dev/null
docker build -q -t "$image" - >/dev/null <<DOCKERFILE
FROM $image-rootfs
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
LABEL natsregion.inputs=$want
DOCKERFILE
# The previous build's image and the import's tag hold 1.5 GB each.
docker rmi "$image-rootfs" >/dev/null
docker image prune -f --filter label=natsregion.inputs >/dev/null
say "assembled $image in $((SECONDS - start))s"
echo "$image"
