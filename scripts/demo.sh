#!/usr/bin/env bash
# make demo: the whole job on the local simulator, in well under a minute.
#
# Starts kubesim (HTTPS, bearer token) with a small fleet of GPU and CPU
# nodes, applies crds/ and the operand namespace, starts the controller,
# creates the minimal sample policy, shows the rollout stage by stage as it
# happens, waits for Ready, prints what a user would look at, deletes the
# policy (its finalizer removes every label and object it made), and stops
# everything it started. Exits non-zero when the rollout does not converge.
#
# Knobs (environment):
#   DEMO_GPU_NODES=4 DEMO_CPU_NODES=2   fleet size
#   DEMO_TIMEOUT=45                     seconds to wait for Ready
#   DEMO_POD_READY_DELAY=1              seconds until a simulated pod is Ready
#   DEMO_FLEET=mixed                    mixed: GPU nodes cycle through containerd/Ubuntu 22.04,
#                                       cri-o/RHEL 9.4 and docker/Ubuntu 20.04 (one policy for all);
#                                       uniform: all containerd/Ubuntu 22.04
#   DEMO_FAIL_NODE=gpu-node-1           sabotage: that node's driver pod crash-loops,
#                                       so the rollout never converges (exit 1)
#   DEMO_NO_KUBECTL=1                   behave as if kubectl were not installed
#   GPC_BUILD=build                     where the binaries are
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${GPC_BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
GPU_NODES=${DEMO_GPU_NODES:-4}
CPU_NODES=${DEMO_CPU_NODES:-2}
TIMEOUT=${DEMO_TIMEOUT:-45}
READY_DELAY=${DEMO_POD_READY_DELAY:-1}
FAIL_NODE=${DEMO_FAIL_NODE:-}
FLEET_KIND=${DEMO_FLEET:-mixed}
SAMPLE=manifests/samples/minimal.yaml
POLICY=gpus
CTL="$BUILD/gpu-policy-controller"

have_kubectl=1
if [ -n "${DEMO_NO_KUBECTL:-}" ]; then
  have_kubectl=
elif ! why=$(scripts/kubectl-usable.sh); then
  echo "demo: $why; using 'gpu-policy-controller apply' and the API instead" >&2
  have_kubectl=
fi
[ -x "$CTL" ] || { echo "demo: $CTL not built (run make all)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gpc-demo.XXXXXX")
sim_pid= ctl_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$ctl_pid" ]; then kill -TERM "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null || true; fi
  if [ -n "$sim_pid" ]; then kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true; fi
  if [ "$rc" -ne 0 ]; then
    echo "--- demo failed (exit $rc); controller log, last 20 lines:" >&2
    tail -n 20 "$work/controller.log" >&2 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

kinds=(containerd/ubuntu22.04 cri-o/rhel9.4 docker/ubuntu20.04)
[ "$FLEET_KIND" = mixed ] || kinds=(containerd/ubuntu22.04)
fleet=
for ((i = 0; i < GPU_NODES; i++)); do fleet+="${fleet:+,}${kinds[i % ${#kinds[@]}]}"; done

say "1. Starting kubesim: $GPU_NODES GPU nodes ($FLEET_KIND runtimes and OSes), $CPU_NODES CPU nodes (HTTPS, token auth)"
"$PY" -u test/kubesim/kubesim.py --port 0 --tls --tls-dir "$work/tls" \
  --gpu-nodes "$GPU_NODES" --gpus-per-node 8 --cpu-nodes "$CPU_NODES" ${fleet:+--fleet "$fleet"} \
  --pod-ready-delay "$READY_DELAY" --kubeconfig-out "$work/kubeconfig" \
  >"$work/kubesim.out" 2>"$work/kubesim.log" &
sim_pid=$!
for _ in $(seq 200); do
  grep -q 'listening on' "$work/kubesim.out" 2>/dev/null && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$work/kubesim.log" >&2; exit 1; }
  sleep 0.1
done
grep 'listening on' "$work/kubesim.out" || { echo "kubesim did not start" >&2; exit 1; }
server=$(sed -n 's/.*listening on //p' "$work/kubesim.out")
export KUBECONFIG="$work/kubeconfig" KUBECACHEDIR="$work/kubecache"
api() { "$PY" scripts/demo_progress.py --server "$server" --ca "$work/tls/ca.crt" --token-file "$work/tls/token" --namespace gpu-policy-operands "$@"; }

if [ -n "$have_kubectl" ]; then
  say "2. Installing the CRD and the namespaces (kubectl apply)"
  kubectl apply -f crds/
  kubectl apply -f manifests/base/namespace.yaml
else
  say "2. Installing the CRD and the namespaces (no kubectl: gpu-policy-controller apply)"
  "$CTL" apply --kubeconfig "$KUBECONFIG" -f crds/
  "$CTL" apply --kubeconfig "$KUBECONFIG" -f manifests/base/namespace.yaml
fi

say "3. Starting the controller (log: text on $work/controller.log)"
"$CTL" --kubeconfig "$KUBECONFIG" --namespace gpu-policy-operands \
  --metrics-bind-address 0 --health-probe-bind-address 0 --log-format text \
  >"$work/controller.log" 2>&1 &
ctl_pid=$!

if [ -n "$FAIL_NODE" ]; then
  say "   sabotage: $FAIL_NODE's driver pod will crash-loop"
  api fail --node "$FAIL_NODE" --component driver
fi

say "4. Creating the policy ($SAMPLE)"
if [ -n "$have_kubectl" ]; then
  kubectl apply -f "$SAMPLE"
else
  "$CTL" apply --kubeconfig "$KUBECONFIG" -f "$SAMPLE"
fi

say "5. Rollout, node by node (driver -> container-toolkit -> device-plugin -> dcgm-exporter, validator)"
api watch --policy "$POLICY" --timeout "$TIMEOUT"
kill -0 "$ctl_pid" 2>/dev/null || { echo "the controller exited" >&2; exit 1; }

say "6. What a user sees"
if [ -n "$have_kubectl" ]; then
  kubectl wait --for=condition=Ready "clustergpupolicy/$POLICY" --timeout=10s
  kubectl get clustergpupolicy -o wide
  echo
  kubectl get nodes -L gpupolicy.dev/runtime,gpupolicy.dev/os,gpupolicy.dev/policy,gpupolicy.dev/driver,gpupolicy.dev/container-toolkit,gpupolicy.dev/device-plugin,gpupolicy.dev/dcgm-exporter,gpupolicy.dev/validator
  echo
  kubectl get daemonsets -n gpu-policy-operands
else
  api summary --policy "$POLICY"
fi

say "7. Deleting the policy: its finalizer removes the node labels and the operand DaemonSets"
api delete --policy "$POLICY" --timeout 20

say "Done: the policy converged and was cleaned up. Stopping the controller and kubesim."
