#!/usr/bin/env python3
"""Scale check for kubesim: is the simulator fast enough not to be the bottleneck of controller benchmarks?

Starts kubesim with N GPU nodes (default 5,000, ~15 KB each), then reports:
  - start-up time (fleet generation + store),
  - a paginated LIST of all nodes (limit=500, following `continue`),
  - a WATCH on nodes receiving one MODIFIED event per node, triggered by POST /_sim/touch-nodes,
  - the same for a DaemonSet rollout: pods created and Ready on every node.
Figures are printed (seconds, MB/s, events/s); nothing is asserted about timings.

    /usr/bin/python3 bench/bench_kubesim.py [--nodes 5000] [--page 500] [--skip-daemonset]
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBESIM = os.environ.get("KUBESIM_PY") or os.path.join(ROOT, "test", "kubesim", "kubesim.py")


def start(nodes, workdir):
    t0 = time.monotonic()
    err = open(os.path.join(workdir, "kubesim.stderr"), "w+")
    proc = subprocess.Popen([sys.executable, "-u", KUBESIM, "--port", "0", "--gpu-nodes", str(nodes),
                             "--cpu-nodes", "0", "--pod-ready-delay", "0.5", "--history", str(4 * nodes + 1000)],
                            stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        err.seek(0)
        raise SystemExit("kubesim did not start: %s" % err.read()[-2000:])
    port = int(line.strip().rsplit(":", 1)[1])
    return proc, port, time.monotonic() - t0


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    data = json.dumps(body) if body is not None else None
    conn.request(method, path, body=data, headers={"Accept": "application/json",
                                                    "Content-Type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    if resp.status >= 300:
        raise SystemExit("%s %s -> %d: %s" % (method, path, resp.status, raw[:500]))
    return json.loads(raw), len(raw)


def paged_list(port, page):
    """LIST /api/v1/nodes in pages over one keep-alive connection; returns (items, bytes, seconds, pages, rv)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.monotonic()
    items = nbytes = pages = 0
    cont, rv = "", None
    while True:
        path = "/api/v1/nodes?limit=%d" % page + ("&continue=" + cont if cont else "")
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise SystemExit("LIST page -> %d: %s" % (resp.status, raw[:300]))
        doc = json.loads(raw)
        nbytes += len(raw)
        items += len(doc["items"])
        pages += 1
        rv = rv or doc["metadata"]["resourceVersion"]
        cont = doc["metadata"].get("continue")
        if not cont:
            break
    conn.close()
    return items, nbytes, time.monotonic() - t0, pages, rv


class Watcher(threading.Thread):
    """Reads a watch stream, counting events of one type until `want` arrived (or the stream ends)."""

    def __init__(self, port, path, want, etype="MODIFIED", match=None):
        super().__init__(daemon=True)
        self.port, self.path, self.want, self.etype, self.match = port, path, want, etype, match
        self.count = self.nbytes = 0
        self.first = self.last = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            conn.request("GET", self.path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                self.error = "watch -> %d" % resp.status
                return
            self.ready.set()
            while self.count < self.want:
                line = resp.readline()
                if not line:
                    break
                self.nbytes += len(line)
                ev = json.loads(line)
                if ev.get("type") == self.etype and (self.match is None or self.match(ev["object"])):
                    now = time.monotonic()
                    self.first = self.first or now
                    self.last = now
                    self.count += 1
            conn.close()
        except Exception as e:  # noqa: BLE001 — reported, not raised, so the bench prints what it has
            self.error = repr(e)
        finally:
            self.ready.set()
            self.done.set()


def mb(n):
    return n / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--page", type=int, default=500)
    ap.add_argument("--skip-daemonset", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-kubesim-")
    proc, port, startup = start(args.nodes, work)
    try:
        print("kubesim with %d GPU nodes: started in %.2f s" % (args.nodes, startup))

        items, nbytes, secs, pages, rv = paged_list(port, args.page)
        print("paginated LIST nodes (limit=%d): %d items in %d pages, %.1f MB in %.2f s = %.1f MB/s, "
              "%.0f nodes/s, %.1f KB/node" % (args.page, items, pages, mb(nbytes), secs, mb(nbytes) / secs,
                                             items / secs, nbytes / items / 1024))

        w = Watcher(port, "/api/v1/nodes?watch=1&resourceVersion=%s" % rv, items)
        w.start()
        w.ready.wait(30)
        t0 = time.monotonic()
        touched, _ = request(port, "POST", "/_sim/touch-nodes", {"label": "bench.kubesim/touch", "value": "1"})
        t_touch = time.monotonic() - t0
        w.done.wait(600)
        t_all = (w.last or time.monotonic()) - t0
        print("WATCH nodes: %d/%d MODIFIED events (%.1f MB) %.2f s after the trigger = %.0f events/s, %.1f MB/s; "
              "the %d writes themselves took %.2f s%s" % (
                  w.count, items, mb(w.nbytes), t_all, w.count / t_all if t_all else 0,
                  mb(w.nbytes) / t_all if t_all else 0, touched["touched"], t_touch,
                  " (error: %s)" % w.error if w.error else ""))

        if not args.skip_daemonset:
            ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                  "metadata": {"name": "bench-dp", "namespace": "kube-system"},
                  "spec": {"selector": {"matchLabels": {"app": "bench-dp"}},
                           "template": {"metadata": {"labels": {"app": "bench-dp"}},
                                        "spec": {"nodeSelector": {
                                            "feature.node.kubernetes.io/pci-10de.present": "true"},
                                            "containers": [{"name": "dp", "image": "example/dp:1"}]}}}}
            t0 = time.monotonic()
            request(port, "POST", "/apis/apps/v1/namespaces/kube-system/daemonsets", ds)
            status = {}
            while time.monotonic() - t0 < 600:
                doc, _ = request(port, "GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/bench-dp")
                status = doc.get("status") or {}
                if status.get("numberReady") == args.nodes and status.get("numberAvailable") == args.nodes:
                    break
                time.sleep(0.25)
            secs = time.monotonic() - t0
            print("DaemonSet on %d nodes: %d pods Ready in %.2f s (pod-ready-delay 0.5 s) = %.0f pods/s" % (
                args.nodes, status.get("numberReady", 0), secs, status.get("numberReady", 0) / secs))
        st, _ = request(port, "GET", "/_sim/status")
        print("simulator: %s" % json.dumps({k: st[k] for k in ("nodes", "pods", "podsReady", "counters")}))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
