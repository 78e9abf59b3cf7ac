#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need.
# Idempotent: a no-op when everything is present. As non-root it prints the
# exact command to run and fails, because a half-provisioned machine gives
# confusing build errors later.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev libwebsockets-dev
  libcmocka-dev
  python3 python3-pytest python3-pytest-timeout python3-yaml openssl
  clang libclang-rt-14-dev valgrind cppcheck clang-format
  lua5.4 curl
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# kubectl drives the user-flow tests and the demo. It is not in Debian's main
# archive; our machines carry it from the Kubernetes/Cloud SDK apt repository.
# Install it from whatever configured repository offers it, else say so.
if ! command -v kubectl >/dev/null 2>&1; then
  if apt-cache show kubectl >/dev/null 2>&1; then
    missing+=(kubectl)
  else
    echo "deps.sh: kubectl not found and no configured apt repository offers it;" >&2
    echo "deps.sh: install kubectl (https://kubernetes.io/docs/tasks/tools/) for the tests and the demo" >&2
    exit 1
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  fi
fi
if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run as root: apt-get update && $cmd" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive $cmd >/dev/null
