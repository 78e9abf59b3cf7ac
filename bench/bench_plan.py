#!/usr/bin/env python3
"""Cost of one plan over 1,000 and 5,000 converged GPU nodes (figures only).

The controller re-plans a policy on every relevant event, so plan time bounds
how fast label changes turn into patches (budget B5) and how much CPU a stream
of node updates costs (B7). Reports best/mean milliseconds per plan and the
per-node size of the projected model.
"""
import json
import os
import subprocess
import sys

BUILD = os.environ.get("GPC_BUILD", "build")


def main() -> int:
    exe = os.path.join(BUILD, "bench", "plan_bench")
    if not os.path.exists(exe):
        print(f"{exe} missing: run make all first", file=sys.stderr)
        return 1
    for nodes in (1000, 5000):
        out = subprocess.run([exe, str(nodes), "20"], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        print(f"plan: {r['nodes']} nodes, {r['pods']} pods: best {r['plan_ms_best']:.2f} ms, "
              f"mean {r['plan_ms_mean']:.2f} ms per plan "
              f"({1000 * r['plan_ms_mean'] / r['nodes']:.2f} us/node); "
              f"{r['patches']} patches when converged; "
              f"labels {r['label_arena_bytes_per_node']:.0f} B/node, "
              f"struct gpc_node {r['node_struct_bytes']} B, gpc_pod {r['pod_struct_bytes']} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
