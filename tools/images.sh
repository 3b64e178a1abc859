#!/usr/bin/env bash
# Assembles the container images the one-node test cluster runs, as OCI image
# tarballs, from static binaries built on this machine (no registry is
# reachable, and none is needed): each image is one layer holding one binary.
#
#   tools/images.sh            # writes $cache/images/*.tar, prints that directory
#   tools/images.sh kind       # the kind node's images (tools/kind/node-image.sh):
#                              # control plane, kube-proxy, kube-router, CoreDNS, pause,
#                              # local-path-provisioner
#
# Import one with: ctr -n k8s.io images import FILE (the cluster harness does).
# The operator binary is built here (static musl, as in the Dockerfile); the
# others come from tools/install.sh (nats, toxiproxy, node). An image is
# rewritten only when its binary or its definition changes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${NATSREGION_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsregion/tools}
bin="$cache/bin"
out="$cache/images"
mkdir -p "$out"
say() { echo "images: $*" >&2; }

# The names the product pulls are read from its source, so an image bump there
# cannot leave the cluster tests running a stale name.
nats_image=$(grep -o '"nats:[^"]*"' "$repo/src/api/region.rs" | head -n1 | tr -d '"')
toxiproxy_image=$(grep -o 'TOXIPROXY_IMAGE: &str = "[^"]*"' "$repo/src/operator/toxiproxy.rs" | grep -o '"[^"]*"' | tr -d '"')
if [ -z "$nats_image" ] || [ -z "$toxiproxy_image" ]; then
  say "could not read the image names from src/"
  exit 1
fi

# Docker Hub short names are stored under their full name by containerd.
full_name() {
  case $1 in
    */*.*/* | *.*/*) echo "$1" ;;
    */*) echo "docker.io/$1" ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

# The static operator binary, as the Dockerfile builds it. Its own target
# directory in the cache: a clean clone (CI) then rebuilds only our crate, not
# every dependency for a second target; incremental, since each source change
# rebuilds it.
build_operator() {
  local target=x86_64-unknown-linux-musl dir="$cache/operator-target"
  say "building the operator (release, $target)"
  (cd "$repo" && CC_x86_64_unknown_linux_musl=musl-gcc CARGO_TARGET_DIR="$dir" \
    CARGO_PROFILE_RELEASE_INCREMENTAL=true \
    cargo build --release --locked --quiet --target "$target" --bin natsregion)
  operator_bin="$dir/$target/release/natsregion"
  # The shipped binary is built without the testkit feature: no test
  # environment or benchmark code may reach it (their module paths would
  # show in its symbols and panic locations).
  if grep -q -a -e testenv -e 'natsregion::bench' "$operator_bin"; then
    say "$operator_bin contains test-environment or benchmark code (is the testkit feature on?)"
    exit 1
  fi
}

# blob FILE: moves FILE into the layout's blobs, prints "digest size".
blob() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$layout/blobs/sha256/$digest"
  echo "sha256:$digest $size"
}

# json_array A B...: ["A","B"] (arguments hold no quotes or backslashes).
json_array() {
  local sep="" item
  printf '['
  for item in "$@"; do printf '%s"%s"' "$sep" "$item"; sep=,; done
  printf ']'
}

# image NAME BINARY PATH_IN_IMAGE USER ENTRYPOINT [CMD...]
# With IMAGE_BASE=TAR, TAR (an uncompressed root filesystem) is the first
# layer and the binary's layer goes on top of it: kube-proxy and kube-router
# exec iptables, ipset and conntrack, which a one-binary image lacks.
image() {
  local name=$1 binary=$2 path=$3 user=$4 entrypoint=$5; shift 5
  local full file stamp want
  full=$(full_name "$name")
  file="$out/$(echo "$name" | tr '/:' '__').tar"
  [ -x "$binary" ] || { say "$binary missing (run tools/install.sh node)"; exit 1; }
  local base=${IMAGE_BASE:-} base_sum=""
  [ -z "$base" ] || base_sum=$(sha256sum "$base" | cut -c1-16)
  want="$(sha256sum "$binary" | cut -c1-16) $full $path $user $entrypoint $* $(sha256sum "$0" | cut -c1-12) $base_sum"
  stamp="$file.stamp"
  if [ -f "$file" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  say "assembling $full"
  local work; work=$(mktemp -d)
  layout="$work/layout"
  mkdir -p "$layout/blobs/sha256" "$work/rootfs"
  local root="$work/rootfs"
  local base_digest="" base_size="" base_layer="" base_diff="" env_path=/usr/local/bin:/usr/bin:/bin
  if [ -n "$base" ]; then
    cp "$base" "$work/base.tar"
    base_layer=$(blob "$work/base.tar"); base_digest=${base_layer% *}; base_size=${base_layer#* }
    base_diff="\"$base_digest\","
    env_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    base_layer="{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$base_digest\",\"size\":$base_size},"
  fi
  # Mount points the runtime needs exist in the image, so a read-only root
  # filesystem still starts.
  mkdir -p "$root/$(dirname "$path")" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/var/run"
  chmod 1777 "$root/tmp"
  : > "$root/etc/hosts"; : > "$root/etc/resolv.conf"; : > "$root/etc/hostname"
  if [ -z "$base" ]; then
    printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  else
    rm -f "$root/etc/hosts" "$root/etc/resolv.conf" "$root/etc/hostname"
  fi
  install -m 0755 "$binary" "$root/$path"
  # Reproducible: same binary, same layer digest.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer.tar" .
  local layer layer_digest layer_size
  layer=$(blob "$work/layer.tar"); layer_digest=${layer% *}; layer_size=${layer#* }
  local cmd_json=""
  [ $# -eq 0 ] || cmd_json=",\"Cmd\":$(json_array "$@")"
  printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Env":["PATH=%s"],"Entrypoint":%s%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[%s"%s"]}}' \
    "$user" "$env_path" "$(json_array "$entrypoint")" "$cmd_json" "$base_diff" "$layer_digest" > "$work/config.json"
  local config config_digest config_size
  config=$(blob "$work/config.json"); config_digest=${config% *}; config_size=${config#* }
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config_digest" "$config_size" "$base_layer" "$layer_digest" "$layer_size" > "$work/manifest.json"
  local manifest manifest_digest manifest_size
  manifest=$(blob "$work/manifest.json"); manifest_digest=${manifest% *}; manifest_size=${manifest#* }
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$full" "${full##*:}" > "$layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$layout" -cf "$file.tmp" .
  mv "$file.tmp" "$file"
  echo "$want" > "$stamp"
  rm -rf "$work"
}

# The kind node's images: the names kubeadm asks for under
# imageRepository natsregion.local (tools/kind/cluster.yaml), its etcd tag,
# the CoreDNS images.sh already builds, and kube-router for NetworkPolicy.
# NETBASE is a Debian root filesystem with iptables, ipset, conntrack and
# iproute2 (tools/kind/node-image.sh debootstraps it).
kind_images() {
  local k8s=$1 etcd_tag=$2 netbase=$3 kube_router=$4 local_path=$5 c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    image "natsregion.local/$c:$k8s" "$bin/$c" "/usr/local/bin/$c" 0:0 "/usr/local/bin/$c"
  done
  image "natsregion.local/etcd:$etcd_tag" "$bin/etcd" /usr/local/bin/etcd 0:0 /usr/local/bin/etcd
  IMAGE_BASE=$netbase image "natsregion.local/kube-proxy:$k8s" "$bin/kube-proxy" /usr/local/bin/kube-proxy 0:0 /usr/local/bin/kube-proxy
  IMAGE_BASE=$netbase image "natsregion.local/kube-router:$kube_router" "$bin/kube-router" /usr/local/bin/kube-router 0:0 /usr/local/bin/kube-router
  # The provisioner and its helper pod (which runs sh scripts) in one image.
  IMAGE_BASE=$netbase image "natsregion.local/local-path-provisioner:$local_path" "$bin/local-path-provisioner" \
    /usr/local/bin/local-path-provisioner 0:0 /usr/local/bin/local-path-provisioner
}

if [ "${1:-}" = kind ]; then
  [ $# -eq 6 ] || { say "usage: $0 kind K8S_VERSION ETCD_TAG NETBASE_TAR KUBE_ROUTER_VERSION LOCAL_PATH_PROVISIONER_VERSION"; exit 2; }
  kind_images "$2" "$3" "$4" "$5" "$6"
  image natsregion.local/pause:1 "$bin/pause" /pause 65535:65535 /pause
  image natsregion.local/coredns:v1.15.0 "$bin/coredns" /coredns 0:0 /coredns
  echo "$out"
  exit 0
fi

build_operator
# The operator image as the Dockerfile makes it: distroless/static:nonroot's uid.
image natsregion:dev "$operator_bin" /usr/local/bin/natsregion 65532:65532 /usr/local/bin/natsregion run
# The real image runs as root; the StatefulSet sets command nats-server (on PATH).
image "$nats_image" "$bin/nats-server" /usr/local/bin/nats-server 0:0 /usr/local/bin/nats-server
image "$toxiproxy_image" "$bin/toxiproxy-server" /usr/local/bin/toxiproxy-server 0:0 /usr/local/bin/toxiproxy-server
image natsregion.local/pause:1 "$bin/pause" /pause 65535:65535 /pause
image natsregion.local/coredns:v1.15.0 "$bin/coredns" /coredns 0:0 /coredns
image natsregion.local/resolve:1 "$bin/resolve" /usr/local/bin/resolve 65532:65532 /usr/local/bin/resolve
echo "$out"
