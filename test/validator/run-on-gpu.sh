#!/usr/bin/env bash
# run-on-gpu.sh — the validator against a real driver, for a machine with a GPU
# (issue 15 asks for plain, --json and --wait runs; paste the output into the note).
#
#   test/validator/run-on-gpu.sh [BUILD_DIR]      (default: build; run `make all` first)
#
# Prints the environment (driver, GPUs, MIG, compute modes), then each run with
# its exit code. Never fails itself: every run's outcome is the data.
set -u
build=${1:-build}
v="$build/gpu-policy-validator"
[ -x "$v" ] || { echo "no $v: run make all first" >&2; exit 2; }
section() { printf '\n===== %s\n' "$*"; }
section "host"
uname -a
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,driver_version,compute_mode,mig.mode.current,memory.used,memory.total --format=csv || echo "no nvidia-smi"
command -v nvidia-smi >/dev/null && nvidia-smi -L
ldconfig -p 2>/dev/null | grep -E 'libnvidia-ml.so.1|libcuda.so.1' || echo "driver libraries not in the ld cache"
section "plain"
"$v" --elements 4194304; echo "exit $?"
section "--json"
"$v" --json; echo "exit $?"
section "--wait --timeout 60 --interval 2 --status-file (then --probe)"
status=$(mktemp)
"$v" --wait --timeout 60 --interval 2 --status-file "$status"; echo "exit $?"
"$v" --probe --status-file "$status"; echo "probe exit $?"
rm -f "$status"
section "--dump-ptx | ptxas (when a CUDA toolkit is installed)"
if command -v ptxas >/dev/null || [ -x /usr/local/cuda/bin/ptxas ]; then
  p=$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)
  ptx=$(mktemp --suffix=.ptx)
  "$v" --dump-ptx > "$ptx"
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
  "$p" --gpu-name "sm_${arch:-90}" "$ptx" -o /dev/null; echo "ptxas sm_${arch:-90} exit $?"
  rm -f "$ptx"
else
  echo "no ptxas"
fi
