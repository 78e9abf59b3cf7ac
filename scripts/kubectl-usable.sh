#!/usr/bin/env bash
# Says whether a kubectl can drive kubesim (the demo and the kubectl-driven
# tests). Prints one line: its version and exit 0, or why not and exit 1.
#
# kubesim answers OpenAPI v3 only. kubectl validates `apply` through OpenAPI v3
# from 1.29 on; older clients ask for OpenAPI v2 (protobuf) and every
# `kubectl apply` fails with "the server could not find the requested
# resource" (Debian 12's kubernetes-client is kubectl 1.20). See
# docs/kubesim.md, "Using it by hand with kubectl".
#
# KUBECTL names the command to check (default: kubectl on PATH).
set -u
K=${KUBECTL:-kubectl}
MIN_MINOR=29

if ! command -v "$K" >/dev/null 2>&1; then
  echo "no kubectl on PATH"
  exit 1
fi
json=$("$K" version --client -o json 2>/dev/null) || json=
minor=$(printf '%s\n' "$json" | sed -n 's/^ *"minor": *"\([0-9]*\).*/\1/p' | head -n 1)
ver=$(printf '%s\n' "$json" | sed -n 's/^ *"gitVersion": *"\([^"]*\)".*/\1/p' | head -n 1)
if [ -z "$minor" ]; then
  echo "$K does not report its version (kubectl version --client -o json)"
  exit 1
fi
if [ "$minor" -lt "$MIN_MINOR" ]; then
  echo "$K is ${ver:-1.$minor}, older than the 1.$MIN_MINOR kubesim needs (OpenAPI v3 validation)"
  exit 1
fi
echo "$K ${ver:-1.$minor}"
