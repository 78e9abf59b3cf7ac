#!/usr/bin/env python3
"""Automatic driver upgrades against kubesim (figures only, nothing asserted).

A fleet of --nodes GPU nodes, --per-node GPU workload pods on each (ReplicaSets; one pair of nodes' pods
under a PodDisruptionBudget allowing one disruption), a policy with autoUpgrade, drain.enable and
--parallel / --unavailable; one driver version bump. Reports:
  - wall time from the bump to every node `done`,
  - the controller's writes during the upgrade by kind (node patches, evictions by outcome, driver pod
    deletes, status patches, Events) and per upgraded node,
  - writes in the --quiet seconds after it was done and the batched Event updates went out (B3: 0).

    /usr/bin/python3 bench/bench_upgrade.py [--nodes 8] [--per-node 2] [--parallel 2] [--unavailable 3]
"""

import argparse
import collections
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))

from kubesim_client import Sim  # noqa: E402
from replica import CGP, Replica, policy, prepare, wait_until  # noqa: E402

STATE = "gpupolicy.dev/driver-upgrade-state"


def states(sim):
    return [n["metadata"].get("labels", {}).get(STATE) for n in sim.get("/api/v1/nodes")[1]["items"]
            if n["metadata"].get("labels", {}).get("gpupolicy.dev/policy") == "gpus"]


def ready(sim):
    for c in (sim.get(CGP + "/gpus")[1].get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"] == "True"
    return False


def writes(sim):
    """The controller's mutating requests by (verb, resource/subresource, code)."""
    out = collections.Counter()
    for r in sim.counters()["detail"]:
        if r["client"] != "gpu-policy-controller" or r["verb"] in ("get", "list", "watch"):
            continue
        res = r["resource"] + ("/" + r["subresource"] if r["subresource"] else "")
        out[(r["verb"], res, r["code"])] += r.get("count", 1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--per-node", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--unavailable", type=int, default=3)
    ap.add_argument("--quiet", type=float, default=5)
    a = ap.parse_args()
    sim = Sim(tempfile.mkdtemp(prefix="bench-upgrade-"), gpu_nodes=a.nodes, cpu_nodes=1, pod_ready_delay=0.1)
    ctl = None
    try:
        prepare(sim)
        ctl = Replica(sim, leader_elect=False)
        sim.ok("POST", CGP, policy("gpus", driver={"version": "550.54.14-ubuntu22.04", "upgradePolicy": {
            "autoUpgrade": True, "maxParallelUpgrades": a.parallel, "maxUnavailable": a.unavailable,
            "drain": {"enable": True, "timeoutSeconds": 120}}}))
        wait_until(lambda: ready(sim), 120, "policy Ready", interval=0.2)
        nodes = sorted(n["metadata"]["name"] for n in sim.get("/api/v1/nodes")[1]["items"]
                       if n["metadata"]["name"].startswith("gpu-"))
        sim.admin("/_sim/workloads", {"name": "guarded", "namespace": "ml", "nodes": nodes[:2], "perNode": 1,
                                      "gpus": 1, "terminationGracePeriodSeconds": 1, "pdb": {"maxUnavailable": 1}})
        sim.admin("/_sim/workloads", {"name": "serve", "namespace": "web", "nodes": nodes,
                                      "perNode": a.per_node, "gpus": 1, "terminationGracePeriodSeconds": 1})
        time.sleep(2)
        sim.reset_counters()
        sim.admin("/_sim/evictions", method="DELETE")
        t0 = time.monotonic()
        code, out, _ = sim.patch(CGP + "/gpus", {"spec": {"driver": {"version": "550.90.07-ubuntu22.04"}}})
        assert code == 200, out
        wait_until(lambda: all(s == "done" for s in states(sim)), 600, "every node done", interval=0.2)
        wall = time.monotonic() - t0
        wait_until(lambda: ready(sim), 60, "policy Ready", interval=0.2)
        time.sleep(1)
        w = writes(sim)
        ev = sim.admin("/_sim/evictions", method="GET")
        time.sleep(11)  # Event count updates are batched for up to 10 s (events.h)
        sim.reset_counters()
        time.sleep(a.quiet)
        late = writes(sim)
        after = sum(late.values())
    finally:
        if ctl:
            ctl.kill9()
        sim.stop()
    n = len(nodes)
    kinds = collections.Counter()
    for (verb, res, code), c in w.items():
        kinds["%s %s" % (verb, res)] += c
    total = sum(w.values())
    print("driver upgrade: %d nodes, %d workload pods/node, maxParallelUpgrades %d, maxUnavailable %d"
          % (n, a.per_node, a.parallel, a.unavailable))
    print("  wall time bump -> all done: %.1f s (%.2f s/node)" % (wall, wall / n))
    for k, c in sorted(kinds.items()):
        print("  %-40s %5d  (%.2f/node)" % (k, c, c / n))
    print("  evictions by outcome: %s" % dict(ev["byOutcome"]))
    print("  writes total: %d (%.1f per upgraded node)" % (total, total / n))
    print("  writes in %.0f s once done (after the batched Event updates): %d %s"
          % (a.quiet, after, dict(late) if after else ""))


if __name__ == "__main__":
    main()
