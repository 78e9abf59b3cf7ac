"""Controller replicas for the runtime suites (test_ha.py, test_metrics.py); stdlib only.

    prepare(sim)                       CRD from crds/ + the operand namespace, waits until served
    r = Replica(sim, leader_elect=True, timings=(4, 3, 0.5))
    r.http("health", "/readyz") -> (status, body) or (None, error text)
    r.metrics() -> promtext families (strictly parsed); r.leading() -> True/False/None
    r.sigterm(); r.kill9(); r.wait(); r.logs()
Each replica gets its own free /metrics and /healthz ports on 127.0.0.1.
"""

import http.client
import os
import signal
import socket
import subprocess
import time

import promtext
from kubesim_client import build_dir, repo_root

NS = "gpu-policy-system"
CGP = "/apis/gpupolicy.dev/v1alpha1/clustergpupolicies"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/gpu-policy-controller-leader" % NS
CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")


# A stand-in for the Prometheus Operator's CRD, so that tests can
# enable dcgmExporter.serviceMonitor (the RBAC scenario, the prune test).
SERVICEMONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor",
                       "listKind": "ServiceMonitorList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def prepare(sim):
    sim.install_crds()
    sim.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    sim.wait_for(lambda: sim.get(CGP)[0] == 200, what="CRD served")


def policy(name, **spec):
    return {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy", "metadata": {"name": name},
            "spec": spec}


def ready_condition(sim, name):
    code, obj, _ = sim.get(CGP + "/" + name)
    if code != 200:
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status")
    return None


class Replica:
    def __init__(self, sim, leader_elect=True, timings=None, extra=()):
        self.sim = sim
        self.hport, self.mport = free_port(), free_port()
        self.log = os.path.join(sim.workdir, "replica-%d.log" % time.monotonic_ns())
        args = [CONTROLLER, "--kubeconfig", sim.kubeconfig, "--namespace", NS,
                "--metrics-bind-address=127.0.0.1:%d" % self.mport,
                "--health-probe-bind-address=127.0.0.1:%d" % self.hport,
                "--log-format=text", "--log-level=info"]
        if leader_elect:
            args.append("--leader-elect")
        if timings:
            args += ["--leader-elect-lease-duration=%s" % timings[0],
                     "--leader-elect-renew-deadline=%s" % timings[1],
                     "--leader-elect-retry-period=%s" % timings[2]]
        args += list(extra)
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=repo_root())

    def logs(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def http(self, which, path, timeout=2):
        port = self.hport if which == "health" else self.mport
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            return r.status, body
        except OSError as e:
            return None, str(e)

    def metrics_text(self):
        code, body = self.http("metrics", "/metrics")
        assert code == 200, "GET /metrics -> %s %s" % (code, body)
        return body

    def metrics(self):
        return promtext.parse(self.metrics_text())

    def leading(self):
        code, body = self.http("metrics", "/metrics")
        if code != 200:
            return None
        v = promtext.value(promtext.parse(body), "leader_election_master_status")
        return None if v is None else v == 1

    def writes(self):
        """Writes that took effect (2xx mutating requests in this replica's rest_client_requests_total).
        A standby's lost race to create the Lease (POST -> 409) is not a write."""
        fam = self.metrics().get("rest_client_requests_total")
        return sum(v for _, labels, v in (fam.samples if fam else [])
                   if labels.get("method") in ("POST", "PUT", "PATCH", "DELETE")
                   and labels.get("code", "").startswith("2"))

    def alive(self):
        return self.proc.poll() is None

    def sigterm(self):
        self.proc.send_signal(signal.SIGTERM)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(5)

    def wait(self, timeout=15):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("replica ignored SIGTERM; log:\n" + self.logs()[-3000:])
        return self.proc.returncode


def wait_until(fn, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)
