#!/usr/bin/env python3
"""Convergence of one ClusterGPUPolicy on large simulated fleets (design.md §6, B1-B5).

For each fleet size (default 1,000 and 5,000 GPU nodes) it starts kubesim, installs the CRD and the
operand namespace, starts build/gpu-policy-controller, creates the `minimal` sample and reports:
  - time from the policy's creation to Ready=True (all nodes through every stage),
  - the controller's writes (kubesim counters, by verb/resource) per node and in total, against
    B4 = 4N + 2 x generated objects + 10,
  - controller RSS: peak (VmHWM) and settled (VmRSS) after convergence, B1 (<= 64 MiB at 5,000) and
    B2 (peak / settled <= 1.5), and its CPU seconds,
  - writes during --idle seconds after convergence (B3: 0; node heartbeats keep running),
  - node label change -> label patch latency (an operand label removed; the controller puts it back)
    against kubesim's own round trip for a GET of the same node in the same run (B5: p99 <= 3x).
Figures only: nothing is asserted.

    /usr/bin/python3 bench/bench_converge.py [--nodes 1000,5000] [--idle 60] [--samples 30]
"""

import argparse
import calendar
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))

from kubesim_client import Sim, build_dir  # noqa: E402

NS = "gpu-policy-system"
CGP = "/apis/gpupolicy.dev/v1alpha1/clustergpupolicies"
GENERATED_OBJECTS = 7  # 5 DaemonSets, the dcgm-exporter Service, the RuntimeClass


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0  # MiB
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def controller_writes(sim):
    by = {}
    for r in sim.counters()["requests"]:
        if r["verb"] in ("get", "list", "watch"):
            continue
        key = "%s %s%s" % (r["verb"], r["resource"], "/" + r["subresource"] if r["subresource"] else "")
        by[key] = by.get(key, 0) + r["count"]
    return by


def ready(sim, name="gpus"):
    code, obj, _ = sim.get(CGP + "/" + name)
    if code != 200:
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return obj
    return None


def write_sent_after(log_path, node, t0_wall):
    """Seconds from t0_wall to the controller's first logged write to node/<node> at or after t0_wall
    (the controller logs each write as it hands it to the client, at debug level)."""
    key = "node/" + node
    with open(log_path, errors="replace") as f:
        for line in f:
            if '"write"' not in line or key not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("key") != key:
                continue
            ts = calendar.timegm(time.strptime(rec["ts"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + rec["ts"][19:-1])
            if ts >= t0_wall - 0.001:
                return ts - t0_wall
    return None


def timed_label_change(sim, node, change, want):
    """Applies `change` (admin labels body) to `node`; seconds until a watch shows want(labels)."""
    code, obj, _ = sim.get("/api/v1/nodes/" + node)
    rv = obj["metadata"]["resourceVersion"]
    w = sim.watch("/api/v1/nodes", query={"fieldSelector": "metadata.name=" + node, "resourceVersion": rv,
                                          "timeoutSeconds": "30"}, timeout=40)
    t0 = time.monotonic()
    timed_label_change.t0_wall = time.time()
    sim.admin("/_sim/nodes/%s/labels" % node, change, method="PATCH")
    seen = None
    for ev in w.events():
        if ev["type"] == "MODIFIED" and want(ev["object"]["metadata"].get("labels") or {}):
            seen = time.monotonic()
            break
    w.close()
    return seen - t0 if seen else None


def label_latency(sim, samples, log_path):
    """Controller: gpupolicy.dev/validator removed from a node, seconds until a watch shows it back.
    Baseline (kubesim's own round trip): the same label write by the bench, seconds until the same kind of
    watch shows it; and a plain GET of the node."""
    nodes = sorted(n for n in sim.admin("/_sim/nodes", method="GET")["nodes"] if n.startswith("gpu-node-"))
    lat, rtt, get, sent = [], [], [], []
    for i in range(samples):
        node = nodes[(i * 7919) % len(nodes)]
        t = time.monotonic()
        sim.get("/api/v1/nodes/" + node)
        get.append(time.monotonic() - t)
        d = timed_label_change(sim, node, {"set": {"bench.gpupolicy.dev/ping": str(i)}},
                               lambda l, i=i: l.get("bench.gpupolicy.dev/ping") == str(i))
        if d is not None:
            rtt.append(d)
        d = timed_label_change(sim, node, {"remove": ["gpupolicy.dev/validator"]},
                               lambda l: l.get("gpupolicy.dev/validator") == "true")
        if d is not None:
            lat.append(d)
            time.sleep(0.05)  # let the log line reach the file
            w = write_sent_after(log_path, node, timed_label_change.t0_wall)
            if w is not None:
                sent.append(w)
        time.sleep(0.2)
    return lat, rtt, get, sent


def run(n, idle, samples, keep):
    work = tempfile.mkdtemp(prefix="bench-converge-%d-" % n)
    t = time.monotonic()
    sim = Sim(work, gpu_nodes=n, gpus_per_node=8, cpu_nodes=max(1, n // 50), pod_ready_delay=0.5,
              history=20 * n + 10000)
    start_s = time.monotonic() - t
    ctl = None
    res = {"nodes": n}
    try:
        sim.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
        sim.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        sim.wait_for(lambda: sim.get(CGP)[0] == 200, timeout=30, what="CRD")
        log = open(os.path.join(work, "controller.log"), "wb")
        ctl = subprocess.Popen([os.path.join(build_dir(), "gpu-policy-controller"), "--kubeconfig", sim.kubeconfig,
                                "--namespace", NS, "--metrics-bind-address=0", "--health-probe-bind-address=0",
                                "--log-level=" + os.environ.get("BENCH_CONTROLLER_LOG", "warn,controller=debug"), "--qps=200", "--burst=400"], stdout=log, stderr=log)
        # Initial sync of the fleet (no policy yet): the peak of B2 happens here.
        t = time.monotonic()
        sim.wait_for(lambda: len(sim.counters()["watches"]) >= 4, timeout=300, interval=0.2, what="informers synced")
        res["initial_sync_s"] = time.monotonic() - t
        time.sleep(0.5)
        synced_rss = proc_status(ctl.pid)
        sim.reset_counters()
        t0 = time.monotonic()
        sim.ok("POST", CGP, {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
                             "metadata": {"name": "gpus"}, "spec": {}})
        obj = sim.wait_for(lambda: ready(sim), timeout=max(120, n * 0.2), interval=0.25, what="Ready")
        res["converge_s"] = time.monotonic() - t0
        time.sleep(3)  # last status/event writes
        w = controller_writes(sim)
        w["create clustergpupolicies"] -= 1  # the bench's own
        total = sum(w.values())
        res["writes_total"] = total
        res["writes_by"] = w
        res["writes_per_node"] = total / float(n)
        res["b4_budget"] = 4 * n + 2 * GENERATED_OBJECTS + 10
        res["nodes_summary"] = obj["status"]["nodesSummary"]
        res["gpus"] = obj["status"]["gpus"]["allocatable"]
        st = proc_status(ctl.pid)
        res["rss_after_sync_mib"] = synced_rss["VmRSS"]
        res["rss_peak_mib"] = st["VmHWM"]
        res["rss_settled_mib"] = st["VmRSS"]
        res["peak_over_settled"] = st["VmHWM"] / st["VmRSS"]
        res["cpu_s_converge"] = st["cpu_s"] - synced_rss["cpu_s"]

        sim.reset_counters()
        time.sleep(idle)
        res["idle_s"] = idle
        res["idle_writes"] = sum(controller_writes(sim).values())
        lat, rtt, get, sent = label_latency(sim, samples, os.path.join(work, "controller.log"))
        res["label_sent_p50_ms"] = 1000 * pct(sent, 50)
        res["label_sent_p99_ms"] = 1000 * pct(sent, 99)
        res["label_sent_samples"] = len(sent)
        res["b5_sent_p99_over_rtt"] = pct(sent, 99) / max(pct(rtt, 50), 1e-6)
        res["api_get_p50_ms"] = 1000 * pct(get, 50)
        res["label_patch_p50_ms"] = 1000 * pct(lat, 50)
        res["label_patch_p99_ms"] = 1000 * pct(lat, 99)
        res["api_rtt_p50_ms"] = 1000 * pct(rtt, 50)
        res["b5_ratio_p99_over_rtt"] = pct(lat, 99) / max(pct(rtt, 50), 1e-6)
        res["label_samples"] = len(lat)
        res["kubesim_start_s"] = start_s
        st = proc_status(ctl.pid)
        res["rss_final_mib"] = st["VmRSS"]
    finally:
        if ctl and ctl.poll() is None:
            ctl.send_signal(signal.SIGTERM)
            try:
                res["controller_exit"] = ctl.wait(20)
            except subprocess.TimeoutExpired:
                ctl.kill()
        sim.stop()
        if not keep:
            subprocess.run(["rm", "-rf", work])
        else:
            res["workdir"] = work
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default=os.environ.get("BENCH_NODES", "1000,5000"))
    ap.add_argument("--idle", type=float, default=float(os.environ.get("BENCH_IDLE", "60")))
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    for n in [int(x) for x in args.nodes.split(",") if x]:
        r = run(n, args.idle, args.samples, args.keep)
        print("== converge %d GPU nodes" % n)
        print("  converge: %.1f s (%s ready, %s GPUs), controller CPU %.1f s" % (
            r["converge_s"], r["nodes_summary"], r["gpus"], r["cpu_s_converge"]))
        print("  writes: %d total, %.2f per node; B4 budget %d (%.2f of it)" % (
            r["writes_total"], r["writes_per_node"], r["b4_budget"], r["writes_total"] / float(r["b4_budget"])))
        print("    by kind: %s" % json.dumps(r["writes_by"], sort_keys=True))
        print("  initial sync (LIST of every type, then WATCH): %.1f s" % r["initial_sync_s"])
        print("  RSS: after initial sync %.1f MiB, peak %.1f MiB, settled %.1f MiB, peak/settled %.2f (B1 <= 64, "
              "B2 <= 1.5)" % (r["rss_after_sync_mib"], r["rss_peak_mib"], r["rss_settled_mib"],
                              r["peak_over_settled"]))
        print("  idle %.0f s after convergence: %d writes (B3: 0)" % (r["idle_s"], r["idle_writes"]))
        print("  label change -> patch sent (controller log): p50 %.1f ms, p99 %.1f ms over %d samples; "
              "p99 / kubesim round trip p50 = %.1f (B5 <= 3)" % (
                  r["label_sent_p50_ms"], r["label_sent_p99_ms"], r["label_sent_samples"],
                  r["b5_sent_p99_over_rtt"]))
        print("  label change -> patch seen: p50 %.1f ms, p99 %.1f ms over %d samples; kubesim round trip "
              "(label write -> watch event) p50 %.1f ms, GET p50 %.1f ms; p99/rtt %.1f (this path holds two such "
              "round trips plus a reconcile)" % (
                  r["label_patch_p50_ms"], r["label_patch_p99_ms"], r["label_samples"], r["api_rtt_p50_ms"],
                  r["api_get_p50_ms"], r["b5_ratio_p99_over_rtt"]))
        print("  controller exit code on SIGTERM: %s" % r.get("controller_exit"))
        print("  json: %s" % json.dumps(r, sort_keys=True))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
