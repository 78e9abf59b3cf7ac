"""The alerts in docs/operations.md, evaluated by promtool against series the real controller exported.

Two scrapes of a running controller (against kubesim) become promtool input series, each held at its
scraped value, counters growing at the rate measured between the scrapes: one from a broken fleet (a node
whose driver crash-loops, a second policy claiming the same nodes, writes failing with 500 and then 403,
a standby with no leader) and one from a healthy, settled fleet. Every documented alert must fire on the broken one for
the series that are broken, and none may fire on the healthy one. A rule that can never fire (the
subtraction of two series with different `state` labels matches nothing) or names a series the controller
does not export fails here."""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

import promtext
from kubesim_client import repo_root
from replica import CGP, CONTROLLER, NS, Replica, policy, prepare, ready_condition, wait_until

ROOT = repo_root()
pytestmark = [pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus) not installed"),
              pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")]


def documented_rules():
    text = open(os.path.join(ROOT, "docs", "operations.md")).read()
    m = re.search(r"### Alerts worth having\n+```yaml\n(.*?)```", text, re.S)
    assert m, "docs/operations.md has no alerts block"
    import yaml
    rules = yaml.safe_load(m.group(1))
    assert rules and all("alert" in r and "expr" in r for r in rules)
    return rules


def scrape(replica):
    return replica.metrics_text(), time.monotonic()


def series(scrapes, instance):
    """promtool input series from two scrapes (text, t) of one replica: gauges at their last value,
    counters growing per minute at the rate seen between the scrapes."""
    (a_text, a_t), (b_text, b_t) = scrapes
    a, b = promtext.parse(a_text), promtext.parse(b_text)
    out = []
    for name, fam in b.items():
        before = {(s, tuple(sorted(l.items()))): v for s, l, v in a[name].samples} if name in a else {}
        for sample, labels, v in fam.samples:
            labels = dict(labels, instance=instance, job="gpu-policy-controller")
            sel = "%s{%s}" % (sample, ",".join('%s="%s"' % (k, labels[k].replace('"', '\\"'))
                                              for k in sorted(labels)))
            if fam.type in ("counter", "histogram"):
                v0 = before.get((sample, tuple(sorted(l for l in labels.items()
                                                    if l[0] not in ("instance", "job")))), 0.0)
                per_min = max(v - v0, 0.0) * 60.0 / max(b_t - a_t, 1e-3)
                out.append({"series": sel, "values": "%r+%rx60" % (v, per_min)})
            else:
                out.append({"series": sel, "values": "%rx60" % v})
    return out


def promtool(tmp_path, rules, input_series, expected):
    (tmp_path / "rules.json").write_text(json.dumps({"groups": [{"name": "docs", "rules": rules}]}))
    check = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.json")], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = {"rule_files": ["rules.json"], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": input_series,
                        "alert_rule_test": [{"eval_time": "59m", "alertname": r["alert"],
                                             "exp_alerts": expected.get(r["alert"], [])} for r in rules]}]}
    (tmp_path / "tests.json").write_text(json.dumps(tests))
    r = subprocess.run(["promtool", "test", "rules", "tests.json"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def gauge(replica, name, **labels):
    return promtext.value(replica.metrics(), name, **labels)


def test_every_documented_alert_fires_on_a_broken_fleet_and_none_on_a_healthy_one(kubesim, tmp_path):
    rules = documented_rules()
    sim = kubesim(gpu_nodes=3, gpus_per_node=8, cpu_nodes=2, pod_ready_delay=0.1)
    prepare(sim)
    sim.admin("/_sim/fail", {"node": "gpu-node-1", "daemonset": "gpus-driver"})
    leader = Replica(sim, leader_elect=True)
    standby = None
    try:
        wait_until(lambda: leader.leading(), 20, "leadership")
        standby = Replica(sim, leader_elect=True)
        sim.ok("POST", CGP, policy("gpus"))
        wait_until(lambda: gauge(leader, "gpupolicy_nodes", policy="gpus", state="ready") == 2, 30,
                   "2 of 3 nodes ready")
        time.sleep(1.1)  # "later" must be younger (creationTimestamp has whole seconds)
        sim.ok("POST", CGP, policy("later"))
        wait_until(lambda: gauge(leader, "gpupolicy_nodes", policy="later", state="conflicted") == 3, 30,
                   "the younger policy reports its conflict")
        wait_until(lambda: standby.http("health", "/readyz")[0] == 200, 20, "standby ready")
        first = [scrape(leader), scrape(standby)]
        # Node label patches fail from now on; a CPU node gains the GPU label (by PUT, which the
        # injection spares), so the controller has a node to claim and every attempt fails.
        sim.admin("/_sim/inject", {"code": 500, "verb": "patch", "count": 100000, "pathPrefix": "/api/v1/nodes"})
        node = sim.ok("GET", "/api/v1/nodes/cpu-node-0")
        node["metadata"]["labels"]["nvidia.com/gpu.present"] = "true"
        sim.ok("PUT", "/api/v1/nodes/cpu-node-0", node)
        wait_until(lambda: gauge(leader, "gpupolicy_nodes", policy="gpus", state="matched") == 4, 30,
                   "the new GPU node matched")
        time.sleep(6)
        # Then they are refused as RBAC refuses them.
        sim.admin("/_sim/inject", method="DELETE")
        sim.admin("/_sim/inject", {"code": 403, "verb": "patch", "count": 100000, "pathPrefix": "/api/v1/nodes"})
        # A second new GPU node: a first attempt, not one held back by the first node's backoff.
        node = sim.ok("GET", "/api/v1/nodes/cpu-node-1")
        node["metadata"]["labels"]["nvidia.com/gpu.present"] = "true"
        sim.ok("PUT", "/api/v1/nodes/cpu-node-1", node)
        wait_until(lambda: gauge(leader, "gpupolicy_nodes", policy="gpus", state="matched") == 5, 30,
                   "the second new GPU node matched")
        wait_until(lambda: promtext.value(leader.metrics(), "rest_client_requests_total", code="403",
                                          method="PATCH"), 30, "a refused node patch")
        second = [scrape(leader), scrape(standby)]
        sim.admin("/_sim/inject", method="DELETE")
        broken = series((first[0], second[0]), "leader") + series((first[1], second[1]), "standby")
        # The standby alone is what Prometheus sees once the leader is gone: nobody leads.
        no_leader = series((first[1], second[1]), "standby")
    finally:
        if standby:
            standby.stop()
        leader.stop()

    inst = {"instance": "leader", "job": "gpu-policy-controller"}
    expected = {
        "GPUPolicyNodesNotReady": [{"exp_labels": dict(inst, policy="gpus")}],
        # gpu-node-1's driver fails, so none of the later operands run there either.
        "GPUPolicyOperandNotReady": [{"exp_labels": dict(inst, policy="gpus", operand=op)}
                                     for op in ("container-toolkit", "dcgm-exporter", "device-plugin", "driver",
                                                "validator")],
        "GPUPolicyReconcileErrors": [{"exp_labels": dict(inst, controller="clustergpupolicy")}],
        "GPUPolicyAPIErrors": [{"exp_labels": {}}],
        "GPUPolicyAPIDenied": [{"exp_labels": {}}],
        "GPUPolicyNodeConflict": [{"exp_labels": dict(inst, policy="later", state="conflicted")}],
    }
    rc, out = promtool(tmp_path, rules, broken, expected)
    assert rc == 0, out
    rc, out = promtool(tmp_path, [r for r in rules if r["alert"] == "GPUPolicyNoLeader"], no_leader,
                       {"GPUPolicyNoLeader": [{"exp_labels": {}}]})
    assert rc == 0, out


def test_no_documented_alert_fires_on_a_healthy_settled_fleet(kubesim, tmp_path):
    rules = documented_rules()
    sim = kubesim(gpu_nodes=3, gpus_per_node=8, cpu_nodes=1, pod_ready_delay=0.1)
    prepare(sim)
    r = Replica(sim, leader_elect=True)
    try:
        sim.ok("POST", CGP, policy("gpus"))
        wait_until(lambda: ready_condition(sim, "gpus") == "True", 30, "Ready")
        time.sleep(2)
        first = scrape(r)
        time.sleep(3)
        second = scrape(r)
    finally:
        r.stop()
    rc, out = promtool(tmp_path, rules, series((first, second), "leader"), {})
    assert rc == 0, out
