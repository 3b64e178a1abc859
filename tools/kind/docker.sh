#!/usr/bin/env bash
# A private Docker daemon for the offline kind cluster (make e2e-kind): Debian
# bookworm's docker.io, containerd, runc and tini, fetched with
# `apt-get download` into the tools cache and extracted there with dpkg -x
# (nothing is installed system-wide), started by hand on private paths.
#
#   tools/kind/docker.sh start   # idempotent; prints the DOCKER_HOST to export
#   tools/kind/docker.sh stop    # kills its containers, stops the daemon,
#                                # unmounts what it mounted, deletes its bridges
#   tools/kind/docker.sh env     # prints `export DOCKER_HOST=... PATH=...`
#
# The daemon touches no host packet filter (--iptables=false,
# --ip6tables=false, --ip-masq=false) and creates no docker0 (--bridge=none):
# kind's user-defined bridge network is all it needs, and nodes reach nothing
# outside it. Needs root.
#
# Privileged containers (every kind node is one) ask runc for every
# capability; a sandbox whose bounding set lacks one (here CAP_SYS_RESOURCE)
# makes runc fail with "unable to apply caps: operation not permitted". The
# default runtime is therefore tools/kind/runc-bounded, which removes the
# capabilities the bounding set lacks from the container's spec, then runs runc.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# jq for tools/kind/runc-bounded.
DEBS=(docker.io containerd runc tini)
command -v jq >/dev/null 2>&1 || DEBS+=(jq)

cache=${NATSREGION_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsregion/tools}
dir="$cache/kind-docker"
root="$dir/root"                   # the extracted packages
state=${NATSREGION_KIND_DOCKER_STATE:-$dir/state}
sock="$state/docker.sock"
pidfile="$state/dockerd.pid"
say() { echo "docker.sh: $*" >&2; }

docker_env() {
  echo "export DOCKER_HOST=unix://$sock PATH=$root/usr/bin:$root/usr/sbin:\$PATH"
}

# The packages at the versions the apt lists name, extracted once per set of versions.
fetch() {
  local want stamp="$dir/debs.stamp" deb
  want=$(apt-cache policy "${DEBS[@]}" 2>/dev/null | awk '/^[^ ]/{p=$1} /Candidate:/{print p $2}' | tr '\n' ' ')
  if [ -z "$want" ] || [[ $want == *"(none)"* ]]; then
    say "apt has no candidate for ${DEBS[*]} (run apt-get update)"; exit 1
  fi
  if [ -x "$root/usr/sbin/dockerd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  say "fetching ${DEBS[*]} (Debian)"
  rm -rf "$dir/debs" "$root"
  mkdir -p "$dir/debs" "$root"
  (cd "$dir/debs" && apt-get download -q "${DEBS[@]}" >&2)
  for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$root"; done
  echo "$want" > "$stamp"
}

# The runtime: tools/kind/runc-bounded, pointed at the extracted runc.
write_wrapper() {
  mkdir -p "$dir/bin"
  sed "s|^RUNC=.*|RUNC=$root/usr/sbin/runc|" "$here/runc-bounded" > "$dir/bin/runc-bounded.tmp"
  chmod 0755 "$dir/bin/runc-bounded.tmp"
  mv "$dir/bin/runc-bounded.tmp" "$dir/bin/runc-bounded"
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

dockercli() { DOCKER_HOST="unix://$sock" "$root/usr/bin/docker" "$@"; }

start() {
  [ "$(id -u)" = 0 ] || { say "needs root"; exit 2; }
  fetch
  write_wrapper
  if running && dockercli version >/dev/null 2>&1; then
    docker_env; return
  fi
  mkdir -p "$state/data" "$state/exec"
  # kind mounts /lib/modules into every node, and docker creates a missing
  # source directory; stop removes it again if it was not there before.
  [ -e /lib/modules ] || [ -e "$state/lib-modules-absent" ] || : > "$state/lib-modules-absent"
  say "starting dockerd ($state)"
  # dockerd finds containerd, its shim, docker-init and docker-proxy on PATH.
  PATH="$root/usr/bin:$root/usr/sbin:$PATH" setsid "$root/usr/sbin/dockerd" \
    --data-root "$state/data" --exec-root "$state/exec" -H "unix://$sock" \
    --pidfile "$pidfile" \
    --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
    --add-runtime "bounded=$dir/bin/runc-bounded" --default-runtime bounded \
    </dev/null >"$state/dockerd.log" 2>&1 &
  local i
  for i in $(seq 1 60); do
    dockercli version >/dev/null 2>&1 && { docker_env; return; }
    kill -0 $! 2>/dev/null || break
    sleep 1
  done
  say "dockerd did not come up ($i s); its log:"; tail -n 20 "$state/dockerd.log" >&2
  exit 1
}

# Mount points under DIR, deepest first.
mounts_under() {
  awk -v d="$1/" '{ gsub(/\\040/, " ", $5); if (index($5 "/", d) == 1) print $5 }' /proc/self/mountinfo | sort -r
}

stop() {
  local bridges=() id
  if running; then
    # The bridges of its user-defined networks outlive the daemon: note them first.
    for id in $(dockercli network ls -q --filter driver=bridge 2>/dev/null); do
      bridges+=("$(dockercli network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$id" 2>/dev/null || true)")
      bridges+=("br-${id:0:12}")
    done
    # shellcheck disable=SC2046 # word splitting of container ids is wanted
    dockercli kill $(dockercli ps -q) >/dev/null 2>&1 || true
    local pid; pid=$(cat "$pidfile")
    say "stopping dockerd ($pid)"
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { say "dockerd did not stop; killing it"; kill -9 "$pid"; }
  fi
  # Its containerd and shims are gone with it; anything still mounted (overlay
  # layers, network namespaces, /var volumes) is unmounted here.
  local m
  for m in $(mounts_under "$state"); do umount -l "$m" 2>/dev/null || true; done
  for m in "${bridges[@]}"; do
    [ -n "$m" ] && ip link show "$m" >/dev/null 2>&1 && ip link delete "$m"
  done
  if [ -e "$state/lib-modules-absent" ]; then
    rmdir /lib/modules 2>/dev/null || true
    rm -f "$state/lib-modules-absent"
  fi
  rm -f "$pidfile" "$sock"
  say "stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  env) docker_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
