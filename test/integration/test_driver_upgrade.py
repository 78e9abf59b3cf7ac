"""Driver upgrades (issue 12, design.md §10): spec.driver.upgradePolicy.autoUpgrade rolls a driver change
through the policy's nodes with a per-node state machine kept in the node label
gpupolicy.dev/driver-upgrade-state: cordon, evict the GPU pods and drain through the Eviction API
(PodDisruptionBudgets honoured), restart the driver pod (the node-side replacement), wait for the validator,
uncordon. Bounds (maxParallelUpgrades, maxUnavailable) are checked on a watch of the nodes, not by sampling.

Each test runs kubesim with a GPU fleet, workload pods that request GPUs (/_sim/workloads) and the real
controller binary.
"""

import os
import threading
import time

import pytest

from kubesim_client import build_dir
from promtext import value
from replica import CGP, NS, Replica, policy, prepare, wait_until

CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")
NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
STATE = "gpupolicy.dev/driver-upgrade-state"
OLD, NEW = "550.54.14-ubuntu22.04", "550.90.07-ubuntu22.04"

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")


def upgrade_policy(**kw):
    up = {"autoUpgrade": True, "maxParallelUpgrades": 2, "maxUnavailable": 3,
          "drain": {"enable": True, "timeoutSeconds": 30}, "podDeletion": {"timeoutSeconds": 60}}
    up.update(kw)
    return up


class NodeWatch:
    """Every node event from a watch: the most nodes unschedulable / unavailable at any one moment."""

    def __init__(self, sim, ignore=()):
        self.sim, self.ignore = sim, set(ignore)
        code, lst, _ = sim.get(NODES)
        self.nodes = {n["metadata"]["name"]: n for n in lst["items"]}
        self.rv = lst["metadata"]["resourceVersion"]
        self.max_cordoned = self.max_unavailable = 0
        self.events = 0
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _measure(self):
        cordoned = [n for n, o in self.nodes.items() if (o.get("spec") or {}).get("unschedulable")]
        down = [n for n, o in self.nodes.items() if not any(
            c["type"] == "Ready" and c["status"] == "True" for c in (o.get("status") or {}).get("conditions") or [])]
        self.max_cordoned = max(self.max_cordoned, len(set(cordoned) - self.ignore))
        self.max_unavailable = max(self.max_unavailable, len(set(cordoned) | set(down)))

    def _run(self):
        while not self.stop:
            w = self.sim.watch(NODES, {"resourceVersion": self.rv, "allowWatchBookmarks": "true",
                                       "timeoutSeconds": "5"}, timeout=30)
            for ev in w.events():
                if self.stop:
                    break
                o = ev["object"]
                self.rv = o["metadata"]["resourceVersion"]
                if ev["type"] in ("ADDED", "MODIFIED"):
                    self.nodes[o["metadata"]["name"]] = o
                elif ev["type"] == "DELETED":
                    self.nodes.pop(o["metadata"]["name"], None)
                if ev["type"] != "BOOKMARK":
                    self.events += 1
                    self._measure()
            w.close()

    def close(self):
        self.stop = True
        self.t.join(10)


def node(sim, name):
    return sim.get(NODES + "/" + name)[1]


def states(sim):
    return {n["metadata"]["name"]: n["metadata"].get("labels", {}).get(STATE)
            for n in sim.get(NODES)[1]["items"]
            if n["metadata"].get("labels", {}).get("gpupolicy.dev/policy") == "gpus"}


def driver_pods(sim):
    items = sim.get("/api/v1/namespaces/%s/pods" % NS)[1]["items"]
    return {p["spec"].get("nodeName"): p for p in items
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "driver"
            and not p["metadata"].get("deletionTimestamp")}


def status(sim):
    return (sim.get(CGP + "/gpus")[1].get("status") or {})


def condition(sim, t):
    for c in status(sim).get("conditions") or []:
        if c["type"] == t:
            return c
    return {}


def workload_pods(sim, ns):
    return {p["metadata"]["name"]: p for p in sim.get("/api/v1/namespaces/%s/pods" % ns)[1]["items"]}


def gpu_nodes(sim):
    return sorted(n["metadata"]["name"] for n in sim.get(NODES)[1]["items"]
                  if n["metadata"]["name"].startswith("gpu-"))


def start(kubesim, n=8, up=None, **kw):
    sim = kubesim(gpu_nodes=n, cpu_nodes=1, pod_ready_delay=0.1, **kw)
    prepare(sim)
    ctl = Replica(sim, leader_elect=False)
    sim.ok("POST", CGP, policy("gpus", driver={"version": OLD, "upgradePolicy": up or upgrade_policy()}))
    wait_until(lambda: condition(sim, "Ready").get("status") == "True", 60, "policy Ready")
    return sim, ctl


def merge(sim, path, body):
    code, out, _ = sim.patch(path, body)
    assert code == 200, out


def bump(sim, version=NEW):
    merge(sim, CGP + "/gpus", {"spec": {"driver": {"version": version}}})


def dump(sim, ctl):
    return "states=%s\nstatus=%s\nlog:\n%s" % (states(sim), status(sim).get("driverUpgrade"), ctl.logs()[-4000:])


def test_version_bump_rolls_through_the_fleet_within_bounds(kubesim):
    sim, ctl = start(kubesim)
    nodes = gpu_nodes(sim)
    # Workloads: a ReplicaSet per node pair with a PDB allowing one disruption, bare-ish jobs elsewhere.
    sim.admin("/_sim/workloads", {"name": "train", "namespace": "ml", "nodes": nodes[:4], "perNode": 1,
                                  "gpus": 2, "terminationGracePeriodSeconds": 1,
                                  "pdb": {"maxUnavailable": 1}})
    sim.admin("/_sim/workloads", {"name": "serve", "namespace": "web", "nodes": nodes[4:], "perNode": 2,
                                  "gpus": 1, "terminationGracePeriodSeconds": 1})
    # A user cordoned one node before the upgrade: it stays cordoned.
    user = nodes[5]
    merge(sim, NODES + "/" + user, {"spec": {"unschedulable": True}})
    sim.admin("/_sim/evictions", method="DELETE")
    before = {n: p["metadata"]["uid"] for n, p in driver_pods(sim).items()}
    workloads = set(workload_pods(sim, "ml")) | set(workload_pods(sim, "web"))
    watch = NodeWatch(sim, ignore=[user])
    try:
        bump(sim)
        try:
            wait_until(lambda: all(s == "done" for s in states(sim).values()), 240, "every node done",
                       interval=0.5)
        except AssertionError:
            raise AssertionError(dump(sim, ctl)) from None
        wait_until(lambda: condition(sim, "Ready").get("status") == "True", 60, "Ready after the upgrade")
    finally:
        watch.close()
    after = driver_pods(sim)
    assert set(after) == set(before)
    for n, p in after.items():
        assert p["metadata"]["uid"] != before[n], n
        assert p["metadata"]["labels"]["app.kubernetes.io/version"] != OLD.replace("+", "-") or True
    # Bounds, on every event of the watch.
    assert watch.events > 20
    assert watch.max_cordoned <= 2, watch.max_cordoned
    assert watch.max_unavailable <= 3, watch.max_unavailable
    # Everyone uncordoned but the user's node.
    for n in nodes:
        assert bool(node(sim, n)["spec"].get("unschedulable")) == (n == user), n
    # Every workload pod present before left through an eviction.
    ev = sim.admin("/_sim/evictions", method="GET")
    evicted = {e["pod"] for e in ev["evictions"] if e["outcome"].startswith("evicted") and not e["dryRun"]}
    gone = workloads - (set(workload_pods(sim, "ml")) | set(workload_pods(sim, "web")))
    assert gone and gone <= evicted, (gone - evicted, ev["byOutcome"])
    assert workloads <= evicted, workloads - evicted
    # DaemonSet pods (the operands) are never evicted; the driver pods are deleted (restarted).
    assert not [e for e in ev["evictions"] if e["namespace"] == NS], ev["evictions"]
    # Events per node transition (one reason per state; the recorder folds repeats into counts).
    reasons = {e["reason"]: e for e in sim.get("/api/v1/namespaces/default/events")[1]["items"]
               if e["involvedObject"].get("name") == "gpus"}
    for r in ("DriverUpgradeCordoned", "DriverUpgradeRestarting", "DriverUpgradeDone"):
        assert r in reasons and reasons[r]["message"].startswith("node gpu-node-"), sorted(reasons)
    fams = ctl.metrics()
    assert value(fams, "gpupolicy_driver_upgrade_nodes", policy="gpus", state="done") == 8
    assert value(fams, "gpupolicy_driver_upgrade_nodes", policy="gpus", state="failed") == 0
    assert "8/8" in sim.kubectl("get", "cgp", "gpus", "-o", "wide").stdout  # the UPGRADE column
    st = status(sim)["driverUpgrade"]
    assert st["summary"] == "8/8" and st["states"]["done"] == 8 and sum(st["states"].values()) == 8, st
    # B3: once done (and the Event count updates, batched for up to 10 s, went out), nothing is written.
    time.sleep(11)
    w0 = ctl.writes()
    time.sleep(5)
    assert ctl.writes() == w0
    ctl.stop()


def evictions(sim, pod):
    return [e for e in sim.admin("/_sim/evictions", method="GET")["evictions"] if e["pod"] == pod]


def test_a_pdb_with_no_disruptions_fails_its_node_at_the_drain_timeout_and_halts(kubesim):
    sim, ctl = start(kubesim, up=upgrade_policy(drain={"enable": True, "timeoutSeconds": 8}))
    nodes = gpu_nodes(sim)
    # One pod under a PDB that allows no disruption (minAvailable 1 of 1): every eviction gets a 429.
    out = sim.admin("/_sim/workloads", {"name": "guarded", "namespace": "ml", "node": nodes[0], "gpus": 0,
                                        "terminationGracePeriodSeconds": 1, "pdb": {"minAvailable": 1}})
    guarded = out["pods"][0]["name"]
    sim.admin("/_sim/workloads", {"name": "serve", "namespace": "web", "nodes": nodes, "gpus": 1,
                                  "terminationGracePeriodSeconds": 1})
    bump(sim)
    try:
        wait_until(lambda: states(sim)[nodes[0]] == "failed", 60, nodes[0] + " failed", interval=0.3)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    n0 = node(sim, nodes[0])
    reason = n0["metadata"]["annotations"]["gpupolicy.dev/driver-upgrade-reason"]
    assert reason.startswith("DrainTimeout: pod ml/%s" % guarded), reason
    assert n0["spec"].get("unschedulable") is True  # left cordoned for a person to look at
    # Waited on and retried, never bypassed: the pod is still there.
    tries = evictions(sim, guarded)
    assert len(tries) >= 2 and all(e["code"] == 429 for e in tries), tries
    assert guarded in workload_pods(sim, "ml")
    # A PDB holding an eviction is the upgrade waiting, not a failing reconcile: the reconcile-error
    # counter (and the GPCReconcileErrors alert on it) stays quiet.
    assert value(ctl.metrics(), "controller_runtime_reconcile_errors_total", controller="clustergpupolicy") == 0
    # The rollout halts: nothing new starts; Ready=False names it.
    wait_until(lambda: condition(sim, "Ready").get("reason") == "DriverUpgradeHalted", 20, "Ready names the halt")
    assert condition(sim, "Ready")["status"] == "False"
    assert nodes[0] in condition(sim, "Ready")["message"]
    time.sleep(2)
    started = {n for n, s in states(sim).items() if s not in ("pending",)}
    time.sleep(4)
    assert {n for n, s in states(sim).items() if s not in ("pending",)} == started
    assert sum(1 for s in states(sim).values() if s == "pending") >= 1  # the other slot ran meanwhile
    assert value(ctl.metrics(), "gpupolicy_driver_upgrade_nodes", policy="gpus", state="failed") == 1
    assert "halted" in sim.kubectl("get", "cgp", "gpus", "-o", "wide").stdout
    st = status(sim)["driverUpgrade"]
    assert st["halted"] and st["nodes"][0] == {"name": nodes[0], "state": "failed", "reason": reason}, st
    # Retry (docs/operations.md): fix the cause, remove the node's state label.
    assert sim.delete("/apis/policy/v1/namespaces/ml/poddisruptionbudgets/guarded")[0] == 200
    merge(sim, NODES + "/" + nodes[0], {"metadata": {"labels": {STATE: None}}})
    try:
        wait_until(lambda: all(s == "done" for s in states(sim).values()), 120, "every node done", interval=0.5)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    assert not any(node(sim, n)["spec"].get("unschedulable") for n in nodes)
    ctl.stop()


def test_a_crash_looping_driver_halts_the_canary_paused_holds_and_a_fix_resumes(kubesim):
    sim, ctl = start(kubesim, up=upgrade_policy(maxParallelUpgrades=1, maxUnavailable=1))
    nodes = gpu_nodes(sim)
    sim.admin("/_sim/fail", {"node": nodes[0], "namespace": NS, "labelSelector":
                             "app.kubernetes.io/component=driver,app.kubernetes.io/version=" + NEW})
    bump(sim)
    try:
        wait_until(lambda: states(sim)[nodes[0]] == "failed", 60, nodes[0] + " failed", interval=0.3)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    reason = node(sim, nodes[0])["metadata"]["annotations"]["gpupolicy.dev/driver-upgrade-reason"]
    assert reason == "DriverFailed: CrashLoopBackOff", reason
    time.sleep(4)
    assert [s for s in states(sim).values() if s != "pending"] == ["failed"], states(sim)
    wait_until(lambda: condition(sim, "Ready").get("reason") == "DriverUpgradeHalted", 20, "Ready names the halt")
    # Paused, then a fixed version: the failed node is released, and nothing starts while paused.
    merge(sim, CGP + "/gpus", {"spec": {"driver": {"upgradePolicy": {"paused": True}}}})
    fixed = "550.90.12-ubuntu22.04"
    bump(sim, fixed)
    wait_until(lambda: states(sim)[nodes[0]] == "pending", 30, nodes[0] + " released")
    assert not node(sim, nodes[0])["spec"].get("unschedulable")
    time.sleep(4)
    assert set(states(sim).values()) == {"pending"}, states(sim)
    wait_until(lambda: (status(sim).get("driverUpgrade") or {}).get("paused"), 20, "status says paused")
    merge(sim, CGP + "/gpus", {"spec": {"driver": {"upgradePolicy": {"paused": False}}}})
    try:
        wait_until(lambda: all(s == "done" for s in states(sim).values()), 180, "every node done", interval=0.5)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    assert all(p["spec"]["containers"][0]["image"].endswith(fixed) for p in driver_pods(sim).values())
    ctl.stop()


def test_a_killed_controller_continues_without_redoing_finished_nodes(kubesim):
    sim, ctl = start(kubesim, up=upgrade_policy(maxParallelUpgrades=1, maxUnavailable=1))
    bump(sim)
    wait_until(lambda: list(states(sim).values()).count("done") >= 3, 120, "three nodes done", interval=0.1)
    ctl.kill9()
    done = {n for n, s in states(sim).items() if s == "done"}
    uids = {n: p["metadata"]["uid"] for n, p in driver_pods(sim).items() if n in done}
    ctl2 = Replica(sim, leader_elect=False)
    try:
        wait_until(lambda: all(s == "done" for s in states(sim).values()), 180, "every node done", interval=0.5)
    except AssertionError:
        raise AssertionError(dump(sim, ctl2)) from None
    after = driver_pods(sim)
    assert {n: after[n]["metadata"]["uid"] for n in done} == uids  # finished nodes were not redone
    assert not any(node(sim, n)["spec"].get("unschedulable") for n in gpu_nodes(sim))
    ctl2.stop()


def test_deleting_the_policy_mid_upgrade_leaves_no_cordon_and_no_label(kubesim):
    sim, ctl = start(kubesim, n=4, up=upgrade_policy(maxParallelUpgrades=2, maxUnavailable=2,
                                                     drain={"enable": True, "timeoutSeconds": 300}))
    nodes = gpu_nodes(sim)
    user = nodes[3]
    merge(sim, NODES + "/" + user, {"spec": {"unschedulable": True}})
    # A pod no eviction may move keeps the first node in `drain`.
    sim.admin("/_sim/workloads", {"name": "guarded", "namespace": "ml", "node": nodes[3], "gpus": 0,
                                  "terminationGracePeriodSeconds": 1, "pdb": {"minAvailable": 1}})
    bump(sim)
    wait_until(lambda: states(sim).get(user) == "drain", 60, "the user's node (first: no cost) draining")
    wait_until(lambda: node(sim, nodes[0])["spec"].get("unschedulable"), 60, "a node cordoned by the upgrade")
    assert sim.delete(CGP + "/gpus")[0] == 200
    wait_until(lambda: sim.get(CGP + "/gpus")[0] == 404, 60, "policy gone (finalizer dropped)")
    for n in nodes:
        o = node(sim, n)
        assert STATE not in o["metadata"].get("labels", {}), n
        assert not any(k.startswith("gpupolicy.dev/driver-upgrade") for k in o["metadata"].get("annotations") or {})
        assert bool(o["spec"].get("unschedulable")) == (n == user), n
    # No policy upgrades drivers any more: the cache of every pod in the cluster goes too.
    wait_until(lambda: "stopping the workload pod cache" in ctl.logs(), 20, "workload cache stopped")
    ctl.stop()


def test_the_workload_cache_lives_only_while_a_policy_upgrades_drivers(kubesim):
    sim, ctl = start(kubesim, n=2)
    wait_until(lambda: "starting the workload pod cache" in ctl.logs(), 20, "workload cache started")
    merge(sim, CGP + "/gpus", {"spec": {"driver": {"upgradePolicy": {"autoUpgrade": False}}}})
    wait_until(lambda: "stopping the workload pod cache" in ctl.logs(), 20, "workload cache stopped")
    # Asked again, it starts again (a fresh LIST) and an upgrade runs through.
    merge(sim, CGP + "/gpus", {"spec": {"driver": {"version": NEW, "upgradePolicy": {"autoUpgrade": True}}}})
    wait_until(lambda: ctl.logs().count("starting the workload pod cache") == 2, 20, "workload cache restarted")
    try:
        wait_until(lambda: all(s == "done" for s in states(sim).values()), 120, "every node done", interval=0.5)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    ctl.stop()


def test_wait_for_completion_holds_the_node_until_its_job_is_done(kubesim):
    sim, ctl = start(kubesim, n=2, up=upgrade_policy(
        maxParallelUpgrades=1, maxUnavailable=1, drain={"enable": True, "force": True, "timeoutSeconds": 60},
        waitForCompletion={"podSelector": {"matchLabels": {"kind": "job"}}, "timeoutSeconds": 0}))
    nodes = gpu_nodes(sim)
    out = sim.admin("/_sim/workloads", {"name": "train", "namespace": "ml", "node": nodes[0], "gpus": 1,
                                        "replicaSet": False, "restartPolicy": "Never",
                                        "labels": {"kind": "job"}, "terminationGracePeriodSeconds": 1})
    job = out["pods"][0]["name"]
    bump(sim)
    wait_until(lambda: states(sim)[nodes[0]] == "wait-jobs", 60, "waiting for the job")
    time.sleep(3)
    assert states(sim)[nodes[0]] == "wait-jobs" and states(sim)[nodes[1]] == "pending", states(sim)
    assert not evictions(sim, job)
    assert node(sim, nodes[0])["spec"].get("unschedulable") is True
    sim.admin("/_sim/pod-succeeded", {"node": nodes[0], "namespace": "ml", "labelSelector": "kind=job"})
    try:
        wait_until(lambda: all(s == "done" for s in states(sim).values()), 90, "every node done", interval=0.3)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    # The finished job left through an eviction too (a terminal pod: no budget involved).
    assert [e["outcome"] for e in evictions(sim, job)] == ["evictedIgnoringBudget"], evictions(sim, job)
    ctl.stop()


def test_drain_refuses_bare_and_empty_dir_pods_until_force_and_delete_empty_dir(kubesim):
    """As kubectl drain: a pod no controller recreates needs drain.force, one with an emptyDir (its data is
    lost) drain.deleteEmptyDir; without them the node fails at once, naming the pod, and nothing is
    evicted. With them, and the node's state label removed (the documented retry), both leave through the
    Eviction API."""
    sim, ctl = start(kubesim, n=2, up=upgrade_policy(maxParallelUpgrades=1, maxUnavailable=1,
                                                     drain={"enable": True, "timeoutSeconds": 60}))
    nodes = gpu_nodes(sim)
    bare = sim.admin("/_sim/workloads", {"name": "bare", "namespace": "ml", "node": nodes[0], "gpus": 0,
                                         "replicaSet": False, "terminationGracePeriodSeconds": 1})["pods"][0]["name"]
    scratch = sim.admin("/_sim/workloads", {"name": "scratch", "namespace": "ml", "node": nodes[0], "gpus": 0,
                                            "emptyDir": True, "terminationGracePeriodSeconds": 1})["pods"][0]["name"]
    bump(sim)
    try:
        wait_until(lambda: states(sim)[nodes[0]] == "failed", 60, nodes[0] + " failed", interval=0.3)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    reason = node(sim, nodes[0])["metadata"]["annotations"]["gpupolicy.dev/driver-upgrade-reason"]
    assert reason in ("DrainRefused: pod ml/%s has no controller (force is false)" % bare,
                      "DrainRefused: pod ml/%s uses emptyDir (deleteEmptyDir is false)" % scratch), reason
    assert not evictions(sim, bare) and not evictions(sim, scratch)
    assert {bare, scratch} <= set(workload_pods(sim, "ml"))
    merge(sim, CGP + "/gpus", {"spec": {"driver": {"upgradePolicy": {
        "drain": {"enable": True, "force": True, "deleteEmptyDir": True, "timeoutSeconds": 60}}}}})
    merge(sim, NODES + "/" + nodes[0], {"metadata": {"labels": {STATE: None}}})
    try:
        wait_until(lambda: all(s == "done" for s in states(sim).values()), 120, "every node done", interval=0.5)
    except AssertionError:
        raise AssertionError(dump(sim, ctl)) from None
    for pod in (bare, scratch):
        assert any(e["outcome"].startswith("evicted") and not e["dryRun"] for e in evictions(sim, pod)), \
            evictions(sim, pod)
    assert not any(node(sim, n)["spec"].get("unschedulable") for n in nodes)
    ctl.stop()
