#!/usr/bin/env bash
# End to end on kind: a 4-node cluster (3 zones) with Calico, the operator
# image built and loaded, the chart installed, examples/region.yaml applied
# and waited for, then examples/drill.yaml run with the product's CI command,
# `natsregion drill FILE --report ... --junit ...` (against the kind cluster
# only: it gets that cluster's kubeconfig). Prints the verdict table, leaves
# the report, its SVG and the JUnit in OUT_DIR, and exits non-zero unless all
# four claims passed.
#
#   kind/e2e.sh                 # needs docker, kind, kubectl, helm (and cargo
#                               # unless NATSREGION_BIN is set)
#   KEEP_CLUSTER=1 kind/e2e.sh  # leave the cluster up afterwards
#
# A cluster this script creates is deleted on exit (unless KEEP_CLUSTER=1);
# an existing cluster of the same name is reused and left running.
#
# Environment: CLUSTER_NAME (natsregion), IMAGE (natsregion:dev),
# CALICO_VERSION (v3.29.3), KIND_NODE_IMAGE (kind's default),
# OPERATOR_NAMESPACE (natsregion-system), NAMESPACE (default),
# REGION_TIMEOUT (600s), NATSREGION_BIN (the natsregion CLI that runs the
# drill; default: `cargo build --bin natsregion` of this tree), OUT_DIR (out:
# e2e.json, e2e.svg, e2e.xml). The CLI gives up on a drill after 30 minutes
# (exit 2).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${CLUSTER_NAME:-natsregion}
image=${IMAGE:-natsregion:dev}
calico_version=${CALICO_VERSION:-v3.29.3}
operator_ns=${OPERATOR_NAMESPACE:-natsregion-system}
ns=${NAMESPACE:-default}
region_timeout=${REGION_TIMEOUT:-600s}
out=${OUT_DIR:-$root/out}
region=qa
drill=qa-drill
context="kind-$cluster"

say() { echo "e2e: $*" >&2; }

tools=(docker kind kubectl helm)
if [ -z "${NATSREGION_BIN:-}" ]; then tools+=(cargo); fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is required"; exit 2; }
done

k() { kubectl --context "$context" "$@"; }
# No `grep -q` after a pipe: its early exit can fail the pipe under pipefail.
cluster_exists() { kind get clusters 2>/dev/null | grep -x "$cluster" >/dev/null; }
created=0
# The kind cluster's kubeconfig and the drill file for the CLI.
tmp=$(mktemp -d)

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] && cluster_exists; then
    say "failed ($status); operator logs and objects follow"
    k -n "$operator_ns" logs deploy/natsregion --tail=200 || true
    k -n "$ns" get regionmirrors,partitiondrills,statefulsets,pods,networkpolicies -o wide || true
    k -n "$ns" get partitiondrill "$drill" -o yaml || true
  fi
  rm -rf "$tmp"
  if [ "$created" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  elif cluster_exists; then
    say "cluster $cluster left running (kind delete cluster --name $cluster)"
  fi
  exit "$status"
}
trap cleanup EXIT

# 0. The natsregion CLI, built before anything slow (or NATSREGION_BIN).
if [ -n "${NATSREGION_BIN:-}" ]; then
  natsregion=$(command -v "$NATSREGION_BIN" || true)
else
  say "building the natsregion CLI (cargo build --bin natsregion)"
  cargo build --manifest-path "$root/Cargo.toml" --bin natsregion
  target_dir=$(cargo metadata --manifest-path "$root/Cargo.toml" --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  natsregion=${target_dir:-$root/target}/debug/natsregion
fi
if [ -z "$natsregion" ] || [ ! -x "$natsregion" ]; then
  say "no natsregion CLI at ${natsregion:-$NATSREGION_BIN}"
  exit 2
fi

# 1. Cluster with Calico, the NetworkPolicy plugin this path is tested with.
node_image=()
if [ -n "${KIND_NODE_IMAGE:-}" ]; then node_image=(--image "$KIND_NODE_IMAGE"); fi
if cluster_exists; then
  say "reusing cluster $cluster (not deleted afterwards)"
else
  say "creating cluster $cluster"
  created=1
  kind create cluster --name "$cluster" --config "$root/kind/cluster.yaml" "${node_image[@]}"
fi
say "installing Calico $calico_version"
k apply --server-side -f "https://raw.githubusercontent.com/projectcalico/calico/$calico_version/manifests/calico.yaml"
# kind nodes run with loose reverse-path filtering, which Felix refuses by default.
k -n kube-system set env daemonset/calico-node FELIX_IGNORELOOSERPF=true
k -n kube-system rollout status daemonset/calico-node --timeout=300s
k wait --for=condition=Ready nodes --all --timeout=300s

# 2. Operator image, built and loaded into the nodes.
say "building $image"
docker build -t "$image" --build-arg NATSREGION_COMMIT="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$root"
kind load docker-image "$image" --name "$cluster"

# 3. The chart (CRDs from charts/natsregion/crds).
say "installing the chart into $operator_ns"
helm upgrade --install natsregion "$root/charts/natsregion" \
  --kube-context "$context" \
  --namespace "$operator_ns" --create-namespace \
  --set image.repository="${image%:*}" \
  --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never \
  --set logFormat=text \
  --wait --timeout 300s

# 4. The region, ready before the drill starts.
say "applying examples/region.yaml"
k -n "$ns" apply -f "$root/examples/region.yaml"
k -n "$ns" wait --for=condition=Ready "regionmirror/$region" --timeout="$region_timeout"
k -n "$ns" get regionmirror "$region"

# 5. The drill, with the CI command: it applies the drill (replacing a
# finished one of the same name), follows it, prints the verdict table, writes
# the report, SVG and JUnit, and exits 0 passed, 1 failed claims, 2 error.
# Its file holds the region too (the CLI's format); the region exists by now,
# so the CLI uses it as it is. The kubeconfig is the kind cluster's alone.
{ cat "$root/examples/region.yaml"; echo ---; cat "$root/examples/drill.yaml"; } >"$tmp/drill.yaml"
kind get kubeconfig --name "$cluster" >"$tmp/kubeconfig"
mkdir -p "$out"
rm -f "$out/e2e.json" "$out/e2e.svg" "$out/e2e.xml"
say "running examples/drill.yaml: natsregion drill (report $out/e2e.json, JUnit $out/e2e.xml)"
code=0
KUBECONFIG="$tmp/kubeconfig" "$natsregion" drill "$tmp/drill.yaml" --namespace "$ns" \
  --report "$out/e2e.json" --junit "$out/e2e.xml" || code=$?
case $code in
  0) ;;
  1) say "FAILED: drill $drill ran and not every claim passed (the table above; $out/e2e.xml)"; exit 1 ;;
  *) say "FAILED: natsregion drill could not run or follow drill $drill (exit $code; its error above)"; exit "$code" ;;
esac

# 6. A pass must be the four claims, all passed (a drill judging fewer is not
# this e2e test): count the JUnit's cases and non-passes.
junit_count() { { grep -oE "$1" "$out/e2e.xml" || true; } | wc -l | tr -d ' '; }
[ -f "$out/e2e.xml" ] || { say "FAILED: natsregion drill wrote no $out/e2e.xml"; exit 1; }
cases=$(junit_count '<testcase[ >/]')
bad=$(junit_count '<(failure|error|skipped)[ >/]')
if [ "$cases" -ne 4 ] || [ "$bad" -ne 0 ]; then
  say "FAILED: the drill passed with $cases claims judged and $bad not passed; expected all four passed"
  exit 1
fi
say "passed: all four claims held (report $out/e2e.json, timeline $out/e2e.svg, JUnit $out/e2e.xml)"
