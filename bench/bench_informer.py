#!/usr/bin/env python3
"""Informer memory and throughput on a kubesim GPU fleet (budgets B1/B2, B6 context).

Starts kubesim with N GPU nodes (default 5,000, ~15 KB each) and runs
build/test/tools/informer_probe with the controller's Node projection
(decode.h struct gpc_node). Reports:
  - initial sync: seconds, nodes/s, pages;
  - RSS of the probe when synced (VmRSS) and its peak during the sync (VmHWM),
    the peak/settled ratio (B2 asks <= 1.5), and the cache cost per node
    relative to a probe that synced an empty resource (same binary, same libs);
  - watch throughput: one MODIFIED per node (POST /_sim/touch-nodes) applied
    through decoder + projection, events/s.
Figures only; nothing is asserted.

    /usr/bin/python3 bench/bench_informer.py [--nodes 5000] [--page-size 500]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))

from kubesim_client import Sim, build_dir  # noqa: E402

PROBE = os.path.join(build_dir(), "test", "tools", "informer_probe")


def run_probe(sim, resource, extra, timeout=900):
    cmd = [PROBE, "--kubeconfig", sim.kubeconfig, "--version", "v1", "--resource", resource,
           "--project", "node"] + extra
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, t0


def read_until(p, key, timeout):
    deadline = time.monotonic() + timeout
    for line in p.stdout:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if key in obj:
            return obj
        if time.monotonic() > deadline:
            break
    raise SystemExit("probe ended without %r: %s" % (key, p.stderr.read()[-2000:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--page-size", type=int, default=0,
                    help="LIST limit for the nodes informer (0: the informer's default, 500)")
    args = ap.parse_args()
    if not os.path.exists(PROBE):
        raise SystemExit("build first: make all (missing %s)" % PROBE)
    work = tempfile.mkdtemp(prefix="bench-informer-")
    t0 = time.monotonic()
    sim = Sim(work, gpu_nodes=args.nodes, cpu_nodes=0, history=4 * args.nodes + 1000)
    print("kubesim with %d GPU nodes up in %.1f s" % (args.nodes, time.monotonic() - t0))
    try:
        # baseline: same binary, nothing cached
        p, _ = run_probe(sim, "persistentvolumes", ["--exit-after-synced"])
        base = read_until(p, "synced", 120)
        p.wait(30)

        extra = ["--page-size", str(args.page_size)] if args.page_size > 0 else []
        p, t_start = run_probe(sim, "nodes", ["--exit-after-events", str(args.nodes)] + extra)
        synced = read_until(p, "synced", 900)
        sync_s = time.monotonic() - t_start
        time.sleep(0.5)  # the watch is open
        t1 = time.monotonic()
        sim.admin("/_sim/touch-nodes", {"label": "bench.gpupolicy.dev/touch", "value": str(time.time())})
        done = read_until(p, "events_done", 900)
        watch_s = time.monotonic() - t1
        p.wait(60)

        n = synced["objects"]
        rss, hwm, brss = synced["rss_kb"], synced["hwm_kb"], base["rss_kb"]
        print("initial sync: %d nodes in %.2f s (%.0f nodes/s; probe-side %.2f s)" % (
            n, sync_s, n / sync_s, synced["ms"] / 1000.0))
        print("RSS synced: %.1f MiB, peak during sync: %.1f MiB, empty-cache baseline: %.1f MiB" % (
            rss / 1024.0, hwm / 1024.0, brss / 1024.0))
        print("B2 peak/settled RSS: %.2f (budget <= 1.5)" % (hwm / float(rss)))
        print("cache cost: %.0f bytes/node above baseline" % ((rss - brss) * 1024.0 / max(n, 1)))
        print("watch: %d MODIFIED events in %.2f s incl. kubesim's writes (%.0f events/s); "
              "RSS after: %.1f MiB" % (done["events_done"], watch_s, done["events_done"] / watch_s,
                                       done["rss_kb"] / 1024.0))
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
