#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need.
# Idempotent: a no-op when everything is present. As non-root it prints the
# exact command to run and fails, because a half-provisioned machine gives
# confusing build errors later.
#
# kubectl is the one optional piece: without a usable one (see
# scripts/kubectl-usable.sh) the demo runs `gpu-policy-controller apply`
# instead and the kubectl-driven tests are skipped; this script says so in
# one line and succeeds. KUBECTL names the command to look for.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential pkg-config
  libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev libwebsockets-dev
  libcmocka-dev
  python3 python3-pytest python3-pytest-timeout python3-yaml openssl
  clang libclang-rt-14-dev valgrind cppcheck clang-format
  lua5.4 curl prometheus
)
KUBECTL=${KUBECTL:-kubectl}

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
need_kubectl=
command -v "$KUBECTL" >/dev/null 2>&1 || need_kubectl=1

if [ ${#missing[@]} -eq 0 ] && [ -z "$need_kubectl" ]; then
  if ! why=$(scripts/kubectl-usable.sh); then
    echo "deps.sh: $why; make demo uses 'gpu-policy-controller apply' instead and the kubectl-driven tests are skipped" >&2
  fi
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "deps.sh: missing packages: ${missing[*]:-} ${need_kubectl:+kubectl}" >&2
    echo "deps.sh: run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]:-}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists: apt-cache finds nothing before this.
$SUDO apt-get update -qq

# kubectl is not in Debian's main archive in a version kubesim can use (Debian's
# kubernetes-client is kubectl 1.20); our machines carry it from the Kubernetes
# or Cloud SDK apt repository. Install it from whatever configured repository
# offers it, else go on without it.
kubectl_note=
if [ -n "$need_kubectl" ]; then
  if apt-cache show kubectl >/dev/null 2>&1; then
    missing+=(kubectl)
  else
    kubectl_note="no kubectl package in the configured apt sources (Debian's kubernetes-client is kubectl 1.20, too old for kubesim)"
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}" >&2
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! why=$(scripts/kubectl-usable.sh); then
  echo "deps.sh: ${kubectl_note:-$why}; make demo uses 'gpu-policy-controller apply' instead and the kubectl-driven tests are skipped" >&2
elif [ -n "$need_kubectl" ]; then
  echo "deps.sh: installed $why" >&2
fi
