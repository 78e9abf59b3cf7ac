#!/usr/bin/env bash
# make demo: the whole job on the local simulator, in under a minute.
#
# Starts kubesim (HTTPS, bearer token) with a small fleet of GPU and CPU
# nodes, applies crds/, starts the controller, creates the minimal sample
# policy, shows the rollout stage by stage as it happens, waits for Ready,
# prints what a user would look at, and stops everything it started.
# Exits non-zero when the rollout does not converge.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${GPC_BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
GPU_NODES=${DEMO_GPU_NODES:-4}
CPU_NODES=${DEMO_CPU_NODES:-2}
TIMEOUT=${DEMO_TIMEOUT:-45}
SAMPLE=manifests/samples/minimal.yaml

work=$(mktemp -d "${TMPDIR:-/tmp}/gpc-demo.XXXXXX")
sim_pid= ctl_pid=
cleanup() {
  local rc=$?
  [ -n "$ctl_pid" ] && kill -TERM "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "--- controller log (last 30 lines)" >&2
    tail -n 30 "$work/controller.log" >&2 2>/dev/null || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. Starting kubesim: $GPU_NODES GPU nodes, $CPU_NODES CPU nodes (HTTPS, token auth)"
"$PY" -u test/kubesim/kubesim.py --port 0 --tls --tls-dir "$work/tls" \
  --gpu-nodes "$GPU_NODES" --gpus-per-node 8 --cpu-nodes "$CPU_NODES" \
  --pod-ready-delay 0.5 --kubeconfig-out "$work/kubeconfig" >"$work/kubesim.out" 2>"$work/kubesim.log" &
sim_pid=$!
for _ in $(seq 100); do
  grep -q 'listening on' "$work/kubesim.out" 2>/dev/null && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$work/kubesim.log" >&2; exit 1; }
  sleep 0.1
done
grep 'listening on' "$work/kubesim.out"
export KUBECONFIG="$work/kubeconfig" KUBECACHEDIR="$work/kubecache"

say "2. Installing the CRD (kubectl apply -f crds/)"
if command -v kubectl >/dev/null 2>&1; then
  kubectl apply -f crds/
  kubectl create namespace gpu-policy-system
  kubectl label namespace gpu-policy-system pod-security.kubernetes.io/enforce=privileged >/dev/null
else
  "$BUILD/gpu-policy-controller" apply --kubeconfig "$KUBECONFIG" -f crds/
  "$BUILD/gpu-policy-controller" apply --kubeconfig "$KUBECONFIG" -f - <<'NS'
apiVersion: v1
kind: Namespace
metadata:
  name: gpu-policy-system
  labels: {pod-security.kubernetes.io/enforce: privileged}
NS
fi

say "3. Starting the controller"
"$BUILD/gpu-policy-controller" --kubeconfig "$KUBECONFIG" --namespace gpu-policy-system \
  --metrics-bind-address 0 --health-probe-bind-address 0 --log-format text \
  >"$work/controller.log" 2>&1 &
ctl_pid=$!

say "4. Creating the policy ($SAMPLE)"
kubectl apply -f "$SAMPLE"

say "5. Rollout, node by node (driver -> container-toolkit -> device-plugin -> dcgm-exporter, validator)"
"$PY" scripts/demo_progress.py --timeout "$TIMEOUT" --policy gpus

say "6. kubectl get clustergpupolicy"
kubectl get clustergpupolicy -o wide
kubectl wait --for=condition=Ready clustergpupolicy/gpus --timeout=10s
say "   node labels"
kubectl get nodes -L gpupolicy.dev/policy,gpupolicy.dev/driver,gpupolicy.dev/container-toolkit,gpupolicy.dev/device-plugin,gpupolicy.dev/dcgm-exporter,gpupolicy.dev/validator
say "   operand DaemonSets"
kubectl get daemonsets -n gpu-policy-system

say "Done: the policy is Ready. Stopping the controller and kubesim."
