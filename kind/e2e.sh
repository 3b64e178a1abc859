#!/usr/bin/env bash
# End to end on kind: a 4-node cluster (3 zones) with Calico, the operator
# image built and loaded, the chart installed, examples/region.yaml and
# examples/drill.yaml applied. Waits for the drill, prints its status, and
# exits non-zero unless all four claims passed.
#
#   kind/e2e.sh                 # needs docker, kind, kubectl, helm
#   KEEP_CLUSTER=1 kind/e2e.sh  # leave the cluster up afterwards
#
# A cluster this script creates is deleted on exit (unless KEEP_CLUSTER=1);
# an existing cluster of the same name is reused and left running.
#
# Environment: CLUSTER_NAME (natsregion), IMAGE (natsregion:dev),
# CALICO_VERSION (v3.29.3), KIND_NODE_IMAGE (kind's default),
# OPERATOR_NAMESPACE (natsregion-system), NAMESPACE (default),
# REGION_TIMEOUT (600s), DRILL_TIMEOUT (seconds, 1200).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${CLUSTER_NAME:-natsregion}
image=${IMAGE:-natsregion:dev}
calico_version=${CALICO_VERSION:-v3.29.3}
operator_ns=${OPERATOR_NAMESPACE:-natsregion-system}
ns=${NAMESPACE:-default}
region_timeout=${REGION_TIMEOUT:-600s}
drill_timeout=${DRILL_TIMEOUT:-1200}
region=qa
drill=qa-drill
context="kind-$cluster"

say() { echo "e2e: $*" >&2; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is required"; exit 2; }
done

k() { kubectl --context "$context" "$@"; }
# No `grep -q` after a pipe: its early exit can fail the pipe under pipefail.
cluster_exists() { kind get clusters 2>/dev/null | grep -x "$cluster" >/dev/null; }
created=0

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] && cluster_exists; then
    say "failed ($status); operator logs and objects follow"
    k -n "$operator_ns" logs deploy/natsregion --tail=200 || true
    k -n "$ns" get regionmirrors,partitiondrills,statefulsets,pods,networkpolicies -o wide || true
  fi
  if [ "$created" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  elif cluster_exists; then
    say "cluster $cluster left running (kind delete cluster --name $cluster)"
  fi
  exit "$status"
}
trap cleanup EXIT

# 1. Cluster with Calico (kindnet does not enforce NetworkPolicy).
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
docker build -t "$image" "$root"
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

# 4. The region, then the drill once the region is ready.
say "applying examples/region.yaml"
k -n "$ns" apply -f "$root/examples/region.yaml"
k -n "$ns" wait --for=condition=Ready "regionmirror/$region" --timeout="$region_timeout"
k -n "$ns" get regionmirror "$region"
say "applying examples/drill.yaml"
k -n "$ns" delete partitiondrill "$drill" --ignore-not-found --wait
k -n "$ns" apply -f "$root/examples/drill.yaml"

# 5. Wait for the drill to finish.
deadline=$((SECONDS + drill_timeout))
phase=
while :; do
  phase=$(k -n "$ns" get partitiondrill "$drill" -o jsonpath='{.status.phase}' || true)
  case $phase in
    Succeeded|Failed|Aborted) break ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    say "drill still ${phase:-Pending} after ${drill_timeout}s"
    k -n "$ns" get partitiondrill "$drill" -o yaml
    exit 1
  fi
  step=$(k -n "$ns" get partitiondrill "$drill" -o jsonpath='{.status.currentStep}' || true)
  say "drill ${phase:-Pending}${step:+ ($step)}"
  sleep 10
done

# 6. Report: the whole status, then one line per claim.
k -n "$ns" get partitiondrill "$drill" -o yaml
claims=$(k -n "$ns" get partitiondrill "$drill" \
  -o jsonpath='{range .status.claims[*]}{.claim}{"\t"}{.verdict}{"\t"}{.message}{"\n"}{end}')
echo "$claims"
verdict=$(k -n "$ns" get partitiondrill "$drill" -o jsonpath='{.status.verdict}')
passed=$(printf '%s\n' "$claims" | awk -F'\t' '$2 == "Passed"' | wc -l)
if [ "$phase" != Succeeded ] || [ "$verdict" != Passed ] || [ "$passed" -ne 4 ]; then
  say "FAILED: phase $phase, verdict $verdict, $passed of 4 claims passed"
  exit 1
fi
say "passed: all four claims held"
