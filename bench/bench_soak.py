#!/usr/bin/env python3
"""Soak: a converged policy on a large simulated fleet under minutes of churn (issue 16, part 5).

Starts kubesim with --nodes GPU nodes (and 1 CPU node per 50), the controller (no leader election), and
the `minimal` policy; once it is Ready, runs --minutes of churn in cycles. Each cycle has
  - a churn phase (CHURN_S): seeded random changes — GPU nodes added and deleted, an operand label
    removed from a node (the controller puts it back), a node opted out of dcgm-exporter and back in,
    operand pods failing on a node and healing — plus heartbeats (every node's status changes) and
    dropped watches, which are not changes for the controller;
  - a quiet phase: a settle time for the controller to catch up — aggregated Event updates go out up to
    10 s after the change, and a status update that only moves counts waits for 5 s + 10 ms per matched
    node after the previous one (controller.c), 15 s at 1,000 nodes — then MEASURE_S with only heartbeats
    and one dropped watch: every controller write in that window is a write not caused by a change.
Reports the controller's RSS over time (mean of the first vs the last minute, min, max, VmHWM), writes per
change (by kind), writes not caused by a change, and whether the policy is Ready at the end. Figures
only: nothing is asserted.

    /usr/bin/python3 bench/bench_soak.py                                # make bench: 1,000 nodes, 2 minutes
    /usr/bin/python3 bench/bench_soak.py --nodes 1000 --minutes 10      # the full soak of issue 16
    /usr/bin/python3 bench/bench_soak.py --nodes 100 --minutes 1        # a quick look
"""

import argparse
import json
import os
import random
import signal
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
OPERANDS = ["driver", "container-toolkit", "device-plugin", "dcgm-exporter", "validator"]
CHURN_S, MEASURE_S = 20.0, 5.0


def settle_s(nodes):
    """Longer than the Event flush (10 s) and the count-only status interval (5 s + 10 ms a node)."""
    return max(12.0, 5.0 + 0.010 * nodes + 3.0)


def rss_mib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def controller_writes(sim):
    by = {}
    for r in sim.counters()["detail"]:
        if r["verb"] in ("get", "list", "watch") or r["client"] != "gpu-policy-controller":
            continue
        key = "%s %s%s" % (r["verb"], r["resource"], "/" + r["subresource"] if r["subresource"] else "")
        by[key] = by.get(key, 0) + r["count"]
    return by


def add(a, b):
    for k, v in b.items():
        a[k] = a.get(k, 0) + v


def ready(sim):
    code, obj, _ = sim.get(CGP + "/gpus")
    if code != 200:
        return False
    st = obj.get("status") or {}
    return st.get("observedGeneration") == obj["metadata"]["generation"] and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


class RssSampler(threading.Thread):
    def __init__(self, pid, every=5.0):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.stop_flag = pid, every, [], threading.Event()
        self.start()

    def run(self):
        t0 = time.monotonic()
        while not self.stop_flag.is_set():
            try:
                self.samples.append((time.monotonic() - t0, rss_mib(self.pid)["VmRSS"]))
            except OSError:
                return
            self.stop_flag.wait(self.every)


class Churn:
    """Seeded random changes to the fleet; remembers what it must undo."""

    def __init__(self, sim, rnd, gpu_nodes):
        self.sim, self.rnd = sim, rnd
        self.gpu = list(gpu_nodes)
        self.added = 0
        self.failing = []   # nodes with failing pods
        self.opted_out = []  # nodes with gpupolicy.dev/dcgm-exporter=false
        self.changes = {}

    def _count(self, what):
        self.changes[what] = self.changes.get(what, 0) + 1

    def step(self):
        r = self.rnd.random()
        sim = self.sim
        if r < 0.15:
            self.added += 1
            name = "gpu-soak-%d" % self.added
            sim.admin("/_sim/nodes", {"name": name, "gpu": True, "gpus": 8})
            self.gpu.append(name)
            self._count("node added")
        elif r < 0.30 and len(self.gpu) > 10:
            victim = self.gpu.pop(self.rnd.randrange(len(self.gpu)))
            sim.admin("/_sim/nodes/" + victim, method="DELETE")
            self.failing = [n for n in self.failing if n != victim]
            self.opted_out = [n for n in self.opted_out if n != victim]
            self._count("node deleted")
        elif r < 0.50:
            node = self.rnd.choice(self.gpu)
            op = self.rnd.choice(OPERANDS[1:])
            try:
                sim.admin("/_sim/nodes/%s/labels" % node, {"remove": ["gpupolicy.dev/" + op]})
                self._count("operand label removed")
            except Exception:  # noqa: BLE001 - the node went away meanwhile
                pass
        elif r < 0.62:
            if self.opted_out and self.rnd.random() < 0.5:
                node = self.opted_out.pop(0)
                sim.admin("/_sim/nodes/%s/labels" % node, {"remove": ["gpupolicy.dev/dcgm-exporter"]})
                self._count("opt-out removed")
            else:
                node = self.rnd.choice(self.gpu)
                sim.admin("/_sim/nodes/%s/labels" % node, {"set": {"gpupolicy.dev/dcgm-exporter": "false"}})
                self.opted_out.append(node)
                self._count("opt-out set")
        elif r < 0.80:
            if self.failing and self.rnd.random() < 0.5:
                node = self.failing.pop(0)
                sim.admin("/_sim/recover", {"node": node})
                self._count("pods healed")
            else:
                node = self.rnd.choice(self.gpu)
                sim.admin("/_sim/fail", {"node": node, "daemonset": "gpus-" + self.rnd.choice(OPERANDS[2:])})
                self.failing.append(node)
                self._count("pods failing")
        elif r < 0.92:
            sim.admin("/_sim/heartbeat")
        else:
            sim.admin("/_sim/drop-watches")

    def heal_all(self):
        for node in self.failing:
            self.sim.admin("/_sim/recover", {"node": node})
            self._count("pods healed")
        for node in self.opted_out:
            try:
                self.sim.admin("/_sim/nodes/%s/labels" % node, {"remove": ["gpupolicy.dev/dcgm-exporter"]})
                self._count("opt-out removed")
            except Exception:  # noqa: BLE001
                pass
        self.failing, self.opted_out = [], []

    def total(self):
        return sum(self.changes.values())


def run(n, minutes, seed, keep):
    rnd = random.Random(seed)
    work = tempfile.mkdtemp(prefix="bench-soak-%d-" % n)
    sim = Sim(work, gpu_nodes=n, gpus_per_node=8, cpu_nodes=max(1, n // 50), pod_ready_delay=0.5,
              history=50 * n + 20000)
    ctl = None
    res = {"nodes": n, "minutes": minutes, "seed": seed}
    settle = settle_s(n + n // 5)  # nodes are added during the churn
    try:
        sim.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
        sim.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        sim.wait_for(lambda: sim.get(CGP)[0] == 200, timeout=30, what="CRD")
        log = open(os.path.join(work, "controller.log"), "wb")
        ctl = subprocess.Popen([os.path.join(build_dir(), "gpu-policy-controller"), "--kubeconfig", sim.kubeconfig,
                                "--namespace", NS, "--metrics-bind-address=0", "--health-probe-bind-address=0",
                                "--log-level=warn", "--qps=200", "--burst=400"], stdout=log, stderr=log)
        sim.ok("POST", CGP, {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
                             "metadata": {"name": "gpus"}, "spec": {}})
        t = time.monotonic()
        sim.wait_for(lambda: ready(sim), timeout=max(180, n * 0.3), interval=0.5, what="Ready")
        res["converge_s"] = time.monotonic() - t
        time.sleep(settle)
        sampler = RssSampler(ctl.pid)
        gpu = sorted(x for x in sim.admin("/_sim/nodes", method="GET")["nodes"] if x.startswith("gpu"))
        churn = Churn(sim, rnd, gpu)
        churn_writes, stray_writes, stray_detail = {}, {}, []
        cycles = 0
        end = time.monotonic() + minutes * 60.0
        while time.monotonic() < end:
            cycles += 1
            sim.reset_counters()
            phase_end = min(end, time.monotonic() + CHURN_S)
            while time.monotonic() < phase_end:
                churn.step()
                time.sleep(rnd.uniform(0.1, 0.6))
            if time.monotonic() + settle + MEASURE_S > end:
                churn.heal_all()  # the last cycle leaves a healthy fleet behind
            time.sleep(settle)
            add(churn_writes, controller_writes(sim))
            sim.reset_counters()
            sim.admin("/_sim/heartbeat")
            sim.admin("/_sim/drop-watches")
            time.sleep(MEASURE_S)
            w = controller_writes(sim)
            add(stray_writes, w)
            if w:
                stray_detail.append({"cycle": cycles, "writes": w})
        sampler.stop_flag.set()
        sampler.join(10)
        res["ready_at_end"] = sim.wait_for(lambda: ready(sim), timeout=120, interval=0.5, what="Ready") is not None
        s = sampler.samples
        first = [v for t, v in s if t <= 60.0]
        last_t = s[-1][0] if s else 0.0
        last = [v for t, v in s if t >= last_t - 60.0]
        res["rss_first_minute_mib"] = sum(first) / len(first) if first else float("nan")
        res["rss_last_minute_mib"] = sum(last) / len(last) if last else float("nan")
        res["rss_min_mib"] = min(v for _, v in s) if s else float("nan")
        res["rss_max_mib"] = max(v for _, v in s) if s else float("nan")
        res["rss_samples"] = [(round(t), round(v, 1)) for t, v in s]
        res["vmhwm_mib"] = rss_mib(ctl.pid)["VmHWM"]
        res["cycles"] = cycles
        res["changes"] = churn.changes
        res["changes_total"] = churn.total()
        res["churn_writes"] = churn_writes
        res["writes_per_change"] = sum(churn_writes.values()) / float(max(1, churn.total()))
        res["writes_not_caused_by_a_change"] = sum(stray_writes.values())
        res["stray_detail"] = stray_detail
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
    ap.add_argument("--nodes", type=int, default=int(os.environ.get("BENCH_SOAK_NODES", "1000")))
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("BENCH_SOAK_MINUTES", "2")))
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = ap.parse_args()
    r = run(args.nodes, args.minutes, args.seed, args.keep)
    print("== soak %d GPU nodes, %.1f minutes of churn (%d cycles, seed %d)" % (
        r["nodes"], r["minutes"], r["cycles"], r["seed"]))
    print("  converged first in %.1f s; Ready at the end: %s" % (r["converge_s"], r["ready_at_end"]))
    print("  RSS: first minute %.1f MiB, last minute %.1f MiB (min %.1f, max %.1f; VmHWM %.1f)" % (
        r["rss_first_minute_mib"], r["rss_last_minute_mib"], r["rss_min_mib"], r["rss_max_mib"], r["vmhwm_mib"]))
    print("  changes: %d %s" % (r["changes_total"], json.dumps(r["changes"], sort_keys=True)))
    print("  writes: %.2f per change %s" % (r["writes_per_change"], json.dumps(r["churn_writes"], sort_keys=True)))
    print("  writes not caused by a change (quiet windows: heartbeats + a dropped watch): %d %s" % (
        r["writes_not_caused_by_a_change"], json.dumps(r["stray_detail"])))
    if args.json:
        print(json.dumps(r, sort_keys=True))


if __name__ == "__main__":
    main()
