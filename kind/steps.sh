#!/usr/bin/env bash
# The steps a user runs after their cluster exists, against any cluster its
# kubeconfig reaches: the operator image loaded onto the nodes, the chart
# installed, examples/region.yaml applied and waited for, then
# examples/drill.yaml run with the product's CI command, `natsregion drill
# FILE --report ... --junit ...`, and its JUnit checked for four passed
# claims. kind/e2e.sh runs it on a kind cluster; tests/cluster_node runs it,
# unchanged, on the one-node cluster `make test` starts.
#
#   KUBECONFIG=cluster.kubeconfig kind/steps.sh
#
# Loading the image is the one step that depends on the cluster: a caller
# that can load it exports a function `load_operator_image` (kind/e2e.sh:
# docker build + kind load; the one-node test: ctr import of the image
# archive). Without one, the image must already be on the nodes.
#
# Environment: KUBECONFIG (required: the cluster's, alone; its current
# context is used), IMAGE (natsregion:dev), OPERATOR_NAMESPACE
# (natsregion-system), NAMESPACE (default), REGION_FILE
# (examples/region.yaml), DRILL_FILE (examples/drill.yaml), REGION_TIMEOUT
# (600s), NATSREGION_BIN (the natsregion CLI that runs the drill; default:
# `cargo build --bin natsregion` of this tree), OUT_DIR (out: e2e.json,
# e2e.svg, e2e.xml). Exit 0 when all four claims passed, 1 when the drill
# ran and a claim did not pass, 2 when the drill could not run or be
# followed (the CLI gives up on a drill after 30 minutes), other codes for a
# failed step.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
image=${IMAGE:-natsregion:dev}
operator_ns=${OPERATOR_NAMESPACE:-natsregion-system}
ns=${NAMESPACE:-default}
region_file=${REGION_FILE:-$root/examples/region.yaml}
drill_file=${DRILL_FILE:-$root/examples/drill.yaml}
region_timeout=${REGION_TIMEOUT:-600s}
out=${OUT_DIR:-$root/out}
region=qa
drill=qa-drill

say() { echo "steps: $*" >&2; }

if [ -z "${KUBECONFIG:-}" ] || [ ! -f "$KUBECONFIG" ]; then
  say "KUBECONFIG must name the cluster's kubeconfig file (got '${KUBECONFIG:-}')"
  exit 2
fi
tools=(kubectl helm)
if [ -z "${NATSREGION_BIN:-}" ]; then tools+=(cargo); fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is required"; exit 2; }
done

k() { kubectl "$@"; }
# The drill file for the CLI.
tmp=$(mktemp -d)

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    say "failed ($status); operator logs and objects follow"
    k -n "$operator_ns" logs deploy/natsregion --tail=200 || true
    k -n "$ns" get regionmirrors,partitiondrills,statefulsets,pods,networkpolicies -o wide || true
    k -n "$ns" get partitiondrill "$drill" -o yaml || true
  fi
  rm -rf "$tmp"
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

# 1. The operator image on the nodes.
if declare -F load_operator_image >/dev/null; then
  say "loading $image onto the nodes"
  load_operator_image
else
  say "no load_operator_image function: $image must already be on the nodes"
fi

# 2. The chart (CRDs from charts/natsregion/crds).
say "installing the chart into $operator_ns"
helm upgrade --install natsregion "$root/charts/natsregion" \
  --namespace "$operator_ns" --create-namespace \
  --set image.repository="${image%:*}" \
  --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never \
  --wait --timeout 300s

# 3. The region, ready before the drill starts.
say "applying $region_file"
k -n "$ns" apply -f "$region_file"
k -n "$ns" wait --for=condition=Ready "regionmirror/$region" --timeout="$region_timeout"
k -n "$ns" get regionmirror "$region"

# 4. The drill, with the CI command: it applies the drill (replacing a
# finished one of the same name), follows it, prints the verdict table, writes
# the report, SVG and JUnit, and exits 0 passed, 1 failed claims, 2 error.
# Its file holds the region too (the CLI's format); the region exists by now,
# so the CLI uses it as it is.
{ cat "$region_file"; echo ---; cat "$drill_file"; } >"$tmp/drill.yaml"
mkdir -p "$out"
rm -f "$out/e2e.json" "$out/e2e.svg" "$out/e2e.xml"
say "running $drill_file: natsregion drill (report $out/e2e.json, JUnit $out/e2e.xml)"
code=0
"$natsregion" drill "$tmp/drill.yaml" --namespace "$ns" \
  --report "$out/e2e.json" --junit "$out/e2e.xml" || code=$?
case $code in
  0) ;;
  1) say "FAILED: drill $drill ran and not every claim passed (the table above; $out/e2e.xml)"; exit 1 ;;
  *) say "FAILED: natsregion drill could not run or follow drill $drill (exit $code; its error above)"; exit "$code" ;;
esac

# 5. A pass must be the four claims, all passed (a drill judging fewer is not
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
