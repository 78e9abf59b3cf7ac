#!/usr/bin/env python3
"""Prints a rollout as it happens, for `make demo`: each stage a node unlocks
and each change of the policy's Ready condition, until Ready=True.

Reads the cluster through kubectl (KUBECONFIG from the environment).
Exits 0 once the policy is Ready, 1 on timeout.
"""
import argparse
import json
import subprocess
import sys
import time

STAGES = ["driver", "container-toolkit", "device-plugin", "dcgm-exporter", "validator"]


def kubectl_json(*args):
    r = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def ready_condition(policy):
    for c in (policy or {}).get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            return c
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--timeout", type=float, default=45)
    args = ap.parse_args()

    start = time.monotonic()
    seen_stages = {}
    last_ready = None
    while time.monotonic() - start < args.timeout:
        t = time.monotonic() - start
        nodes = kubectl_json("get", "nodes") or {"items": []}
        for n in sorted(nodes["items"], key=lambda n: n["metadata"]["name"]):
            name = n["metadata"]["name"]
            labels = n["metadata"].get("labels", {})
            if labels.get("gpupolicy.dev/policy") != args.policy:
                continue
            unlocked = [s for s in STAGES if labels.get("gpupolicy.dev/" + s) == "true"]
            before = seen_stages.get(name)
            if before is None:
                print("[%5.1fs] %-12s claimed by policy %s" % (t, name, args.policy))
                before = []
            for s in unlocked:
                if s not in before:
                    print("[%5.1fs] %-12s unlocked %s" % (t, name, s))
            seen_stages[name] = unlocked
        policy = kubectl_json("get", "clustergpupolicy", args.policy)
        cond = ready_condition(policy)
        if cond:
            summary = policy.get("status", {}).get("nodesSummary", "?")
            key = (cond.get("status"), cond.get("reason"), summary)
            if key != last_ready:
                print("[%5.1fs] policy %s: Ready=%s reason=%s nodes %s" % (t, args.policy, *key))
                last_ready = key
            if cond.get("status") == "True":
                return 0
        sys.stdout.flush()
        time.sleep(0.3)
    print("timed out after %.0fs waiting for Ready" % args.timeout, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
