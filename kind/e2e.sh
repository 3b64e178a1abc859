#!/usr/bin/env bash
# End to end on kind: a 4-node cluster (3 zones) with Calico, then
# kind/steps.sh against that cluster's kubeconfig alone: the operator image
# built and loaded, the chart installed, examples/region.yaml applied and
# waited for, examples/drill.yaml run with the product's CI command
# (`natsregion drill FILE --report ... --junit ...`) and its four claims
# checked. Prints the verdict table, leaves the report, its SVG and the JUnit
# in OUT_DIR, and exits non-zero unless all four claims passed.
#
#   kind/e2e.sh                 # needs docker, kind, kubectl, helm (and cargo
#                               # unless NATSREGION_BIN is set)
#   KEEP_CLUSTER=1 kind/e2e.sh  # leave the cluster up afterwards
#   KIND_OFFLINE=1 kind/e2e.sh  # make e2e-kind: nothing from a registry or
#                               # the internet (see below)
#
# Only two things here are kind's: create_cluster and load_operator_image.
# Everything after them is kind/steps.sh, which `make test` runs unchanged on
# its one-node cluster.
#
# A cluster this script creates is deleted on exit (unless KEEP_CLUSTER=1);
# an existing cluster of the same name is reused and left running.
#
# KIND_OFFLINE=1 (make e2e-kind, with tools/kind/docker.sh's daemon): the
# node image is tools/kind/node-image.sh's, built here, the cluster
# tools/kind/cluster.yaml, kube-router (tools/kind/kube-router.yaml) the pod
# network and NetworkPolicy agent instead of Calico, and the operator, NATS
# and Toxiproxy images are tools/images.sh's archives, loaded with kind load
# image-archive.
#
# Environment: CLUSTER_NAME (natsregion), CALICO_VERSION (v3.29.3),
# KIND_NODE_IMAGE (kind's default), and kind/steps.sh's: IMAGE
# (natsregion:dev), OPERATOR_NAMESPACE, NAMESPACE, REGION_TIMEOUT,
# NATSREGION_BIN, OUT_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${CLUSTER_NAME:-natsregion}
calico_version=${CALICO_VERSION:-v3.29.3}
export IMAGE=${IMAGE:-natsregion:dev}
context="kind-$cluster"
offline=${KIND_OFFLINE:-0}

say() { echo "e2e: $*" >&2; }

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is required"; exit 2; }
done

# No `grep -q` after a pipe: its early exit can fail the pipe under pipefail.
cluster_exists() { kind get clusters 2>/dev/null | grep -x "$cluster" >/dev/null; }
created=0
tmp=$(mktemp -d)

cleanup() {
  local status=$?
  rm -rf "$tmp"
  if [ "$created" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  elif cluster_exists; then
    say "cluster $cluster left running (kind delete cluster --name $cluster)"
  fi
  exit "$status"
}
trap cleanup EXIT

# The cluster, with Calico (online) or kube-router (offline): the
# NetworkPolicy plugins this path is tested with.
create_cluster() {
  local node_image=() config="$root/kind/cluster.yaml"
  if [ "$offline" = 1 ]; then
    config="$root/tools/kind/cluster.yaml"
    node_image=(--image "${KIND_NODE_IMAGE:-$("$root/tools/kind/node-image.sh")}")
  elif [ -n "${KIND_NODE_IMAGE:-}" ]; then
    node_image=(--image "$KIND_NODE_IMAGE")
  fi
  if cluster_exists; then
    say "reusing cluster $cluster (not deleted afterwards)"
  else
    say "creating cluster $cluster"
    created=1
    kind create cluster --name "$cluster" --config "$config" "${node_image[@]}"
  fi
  if [ "$offline" = 1 ]; then
    say "installing kube-router"
    kubectl --context "$context" apply -f "$root/tools/kind/kube-router.yaml"
    kubectl --context "$context" -n kube-system rollout status daemonset/kube-router --timeout=300s
    kubectl --context "$context" wait --for=condition=Ready nodes --all --timeout=300s
    return
  fi
  say "installing Calico $calico_version"
  kubectl --context "$context" apply --server-side \
    -f "https://raw.githubusercontent.com/projectcalico/calico/$calico_version/manifests/calico.yaml"
  # kind nodes run with loose reverse-path filtering, which Felix refuses by default.
  kubectl --context "$context" -n kube-system set env daemonset/calico-node FELIX_IGNORELOOSERPF=true
  kubectl --context "$context" -n kube-system rollout status daemonset/calico-node --timeout=300s
  kubectl --context "$context" wait --for=condition=Ready nodes --all --timeout=300s
}

# The operator image, built here and loaded into the kind nodes (kind/steps.sh
# calls this). Offline, with the NATS and Toxiproxy images the cluster would
# otherwise pull (tools/images.sh's archives, not its natsregion.local ones,
# which the node image holds).
load_operator_image() {
  if [ "$E2E_OFFLINE" = 1 ]; then
    local images archive
    images=$("$E2E_ROOT/tools/images.sh")
    for archive in "$images"/*.tar; do
      case ${archive##*/} in natsregion.local_*) continue ;; esac
      kind load image-archive "$archive" --name "$E2E_CLUSTER"
    done
    return
  fi
  say "building $IMAGE"
  docker build -t "$IMAGE" \
    --build-arg NATSREGION_COMMIT="$(git -C "$E2E_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$E2E_ROOT"
  kind load docker-image "$IMAGE" --name "$E2E_CLUSTER"
}
export -f load_operator_image say
export E2E_ROOT=$root E2E_CLUSTER=$cluster E2E_OFFLINE=$offline

create_cluster
kind get kubeconfig --name "$cluster" >"$tmp/kubeconfig"
KUBECONFIG="$tmp/kubeconfig" "$root/kind/steps.sh"
