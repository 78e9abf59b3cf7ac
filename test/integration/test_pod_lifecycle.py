"""The controller reads pod lifecycle states right (issue 14), end to end on kubesim.

Each test drives kubesim into a state a real cluster spends minutes in (graceful termination, an
unreachable node during a RollingUpdate, a start-up window after a restart, an unschedulable pod,
a pod that never starts, Failed pods, a failing init container) and checks what the policy's
status says. The controller runs with --pod-grace-period=3 so the "after a grace period" states
show within the test.
"""

import json
import os
import time

import pytest

from kubesim_client import build_dir, repo_root
from replica import CGP, NS, Replica, policy, prepare

PODS_PATH = "/api/v1/namespaces/%s/pods" % NS
CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")
GRACE = 3

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")


@pytest.fixture
def cluster(kubesim):
    started = []

    def make(gpu_nodes=2, args=(), **kw):
        sim = kubesim(gpu_nodes=gpu_nodes, cpu_nodes=0, pod_ready_delay=0.1, **kw)
        prepare(sim)
        ctl = Replica(sim, leader_elect=False, extra=["--pod-grace-period=%d" % GRACE, *args])
        started.append(ctl)
        return sim, ctl

    yield make
    for ctl in started:
        rc = ctl.stop()
        assert rc == 0, "controller exited %s; log:\n%s" % (rc, ctl.logs()[-3000:])


def status(sim, name="gpus"):
    code, obj, _ = sim.get(CGP + "/" + name)
    return (obj.get("status") or {}) if code == 200 else {}


def cond(st, ctype):
    return next((c for c in st.get("conditions") or () if c["type"] == ctype), {})


def wait_status(sim, pred, what, timeout=25):
    last = [None]

    def check():
        last[0] = status(sim)
        return pred(last[0])
    try:
        sim.wait_for(check, timeout=timeout, interval=0.1, what=what)
    except Exception:
        raise AssertionError("%s never happened: %s" % (what, json.dumps(last[0], indent=1))) from None
    return last[0]


def ready(st):
    return cond(st, "Ready").get("status") == "True"


def failing(st, node, operand=None):
    return [f for f in st.get("failingNodes") or () if f["node"] == node and operand in (None, f["operand"])]


def pods_on(sim, node, component):
    return [p for p in sim.get(PODS_PATH)[1]["items"]
            if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component
            and (p["spec"].get("nodeName") == node or node in json.dumps(p["spec"].get("affinity")))]


def node_labels(sim, name):
    return sim.get("/api/v1/nodes/" + name)[1]["metadata"].get("labels") or {}


def converge(sim):
    sim.ok("POST", CGP, policy("gpus"))
    return wait_status(sim, ready, "Ready=True")


def test_terminating_driver_never_unlocks_the_next_stage(cluster):
    sim, _ = cluster(gpu_nodes=2)
    # driver pods take 30 s to stop and start slowly; the rest is quick
    sim.admin("/_sim/lifecycle", {"labelSelector": "app.kubernetes.io/component=driver", "stopSeconds": 30})
    converge(sim)
    # a new node joins: its driver pod is starting (startup window) when someone deletes it
    sim.admin("/_sim/lifecycle", {"labelSelector": "app.kubernetes.io/component=driver", "node": "gpu-node-9",
                                  "startupSeconds": 60, "stopSeconds": 30})
    sim.admin("/_sim/nodes", {"name": "gpu-node-9"})
    pod = sim.wait_for(lambda: [p for p in pods_on(sim, "gpu-node-9", "driver")
                                if p["status"].get("containerStatuses")], timeout=20, what="driver starting")[0]
    assert pod["status"]["containerStatuses"][0]["started"] is False
    sim.delete("%s/%s" % (PODS_PATH, pod["metadata"]["name"]))
    # the prober forces startup success: the Terminating driver pod turns Ready ...
    sim.wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True" for p in pods_on(sim, "gpu-node-9", "driver")
                             for c in p["status"].get("conditions") or ()), timeout=10, what="terminating pod Ready")
    # ... and must not unlock the toolkit on a driver that is going away
    time.sleep(2.0)
    labels = node_labels(sim, "gpu-node-9")
    assert labels.get("gpupolicy.dev/driver") == "true"
    assert "gpupolicy.dev/container-toolkit" not in labels, labels
    st = status(sim)
    assert not ready(st) and not failing(st, "gpu-node-9"), st


def test_rollout_blocked_by_an_unreachable_node_names_it(cluster):
    sim, _ = cluster(gpu_nodes=3)
    converge(sim)
    sim.admin("/_sim/nodes/gpu-node-1/ready", {"ready": False})
    # a device-plugin version change: RollingUpdate, maxUnavailable 1
    sim.ok("PATCH", CGP + "/gpus", {"spec": {"devicePlugin": {"version": "v0.16.2"}}},
           ctype="application/merge-patch+json")
    st = wait_status(sim, lambda s: "gpu-node-1" in cond(s, "Ready").get("message", "") and
                     "blocked" in cond(s, "Ready").get("message", ""), "blocked rollout named", timeout=30)
    msg = cond(st, "Ready")["message"]
    assert "device-plugin rollout blocked" in msg and "stuck Terminating" in msg, msg
    assert cond(st, "Reconciling")["status"] == "True"
    # the node comes back: the rollout finishes
    sim.admin("/_sim/nodes/gpu-node-1/ready", {"ready": True})
    wait_status(sim, ready, "Ready again", timeout=40)


def test_restarted_driver_in_its_startup_window_is_progressing(cluster):
    sim, _ = cluster(gpu_nodes=2)
    converge(sim)
    sim.admin("/_sim/lifecycle", {"labelSelector": "app.kubernetes.io/component=driver", "node": "gpu-node-0",
                                  "startupSeconds": 8})
    sim.admin("/_sim/restart", {"labelSelector": "app.kubernetes.io/component=driver", "node": "gpu-node-0",
                                "reason": "Unknown", "exitCode": 255})
    st = wait_status(sim, lambda s: not ready(s), "not ready while starting")
    # the driver's startup probe allows 60 + 120 x 10 s: well inside it, not failing, even past the grace
    time.sleep(GRACE + 1)
    st = status(sim)
    assert not failing(st, "gpu-node-0"), st["failingNodes"]
    assert cond(st, "Ready")["reason"] == "RolloutInProgress", st
    wait_status(sim, ready, "Ready after the window")


def test_unschedulable_pod_reported_after_the_grace_period(cluster):
    sim, _ = cluster(gpu_nodes=2)
    sim.admin("/_sim/unschedulable", {"node": "gpu-node-1", "labelSelector": "app.kubernetes.io/component=driver",
                                      "message": "0/2 nodes are available: 1 Insufficient memory."})
    sim.ok("POST", CGP, policy("gpus"))
    st = wait_status(sim, lambda s: failing(s, "gpu-node-1", "driver"), "unschedulable in failingNodes")
    f = failing(st, "gpu-node-1", "driver")[0]
    assert f["reason"] == "Unschedulable" and f["message"] == "0/2 nodes are available: 1 Insufficient memory."
    assert cond(st, "Ready")["reason"] == "DriverNotReady"
    sim.admin("/_sim/unschedulable", method="DELETE")
    wait_status(sim, ready, "Ready once scheduled", timeout=30)


def test_unschedulable_pod_not_reported_inside_the_grace_period(cluster):
    sim, _ = cluster(gpu_nodes=2)
    converge(sim)
    # the scheduler cannot place the validator's replacement for a moment
    sim.admin("/_sim/unschedulable", {"node": "gpu-node-1", "labelSelector": "app.kubernetes.io/component=validator"})
    pod = pods_on(sim, "gpu-node-1", "validator")[0]
    sim.delete("%s/%s" % (PODS_PATH, pod["metadata"]["name"]), {"gracePeriodSeconds": 0})
    wait_status(sim, lambda s: not ready(s), "not ready")
    st = status(sim)
    assert not failing(st, "gpu-node-1"), st
    wait_status(sim, lambda s: failing(s, "gpu-node-1", "validator"), "reported after the grace period")


def test_pods_that_never_start(cluster):
    sim, _ = cluster(gpu_nodes=2)
    sim.admin("/_sim/fail", {"node": "gpu-node-0", "labelSelector": "app.kubernetes.io/component=driver",
                             "reason": "ImagePullBackOff"})
    sim.admin("/_sim/fail", {"node": "gpu-node-1", "labelSelector": "app.kubernetes.io/component=driver",
                             "sandbox": True})
    sim.ok("POST", CGP, policy("gpus"))
    # the image pull failure at once; the sandbox only after the grace period
    st = wait_status(sim, lambda s: failing(s, "gpu-node-0"), "image pull failure")
    # the driver pod's init container (wait-gpus-free) runs its image first: that pull fails
    assert failing(st, "gpu-node-0")[0]["reason"] == "Init:ImagePullBackOff"
    st = wait_status(sim, lambda s: failing(s, "gpu-node-1"), "sandbox failure")
    f = failing(st, "gpu-node-1")[0]
    assert f["operand"] == "driver" and f["reason"] == "FailedCreatePodSandBox", f


def test_failed_pods_are_transient(cluster):
    sim, _ = cluster(gpu_nodes=2)
    converge(sim)
    # a node shutdown ends the validator pod: Failed, then deleted and replaced by the DaemonSet controller
    assert sim.admin("/_sim/pod-failed", {"node": "gpu-node-0",
                                          "labelSelector": "app.kubernetes.io/component=validator"})["failed"] == 1
    reasons = set()
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        reasons |= {f["reason"] for f in status(sim).get("failingNodes") or ()}
        time.sleep(0.05)
    wait_status(sim, ready, "Ready after the replacement")
    assert not reasons, reasons


def test_failing_init_container_reported_with_its_message(cluster, tmp_path):
    # a driver template with an init container (as gpu-operator's k8s-driver-manager)
    tdir = tmp_path / "templates"
    tdir.mkdir()
    for name in os.listdir(os.path.join(repo_root(), "templates")):
        with open(os.path.join(repo_root(), "templates", name)) as f:
            text = f.read()
        if name == "driver.yaml":
            # first of its init containers (the template may have some already)
            manager = ("      - name: k8s-driver-manager\n"
                       "        image: nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.6.8\n")
            if "      initContainers:\n" in text:
                text = text.replace("      initContainers:\n", "      initContainers:\n" + manager, 1)
            else:
                text = text.replace("      containers:\n      - name: nvidia-driver-ctr",
                                    "      initContainers:\n" + manager +
                                    "      containers:\n      - name: nvidia-driver-ctr", 1)
            assert "k8s-driver-manager" in text
        (tdir / name).write_text(text)
    sim, _ = cluster(gpu_nodes=1, args=("--templates-dir", str(tdir)))
    sim.admin("/_sim/fail", {"labelSelector": "app.kubernetes.io/component=driver", "initContainer": "k8s-driver-manager",
                             "exitCode": 1, "terminationMessage": "failed to evict GPU pods: timeout"})
    sim.ok("POST", CGP, policy("gpus"))
    # inside the grace period it is progressing, then failing with the init container's own message
    st = wait_status(sim, lambda s: cond(s, "Ready").get("reason") == "RolloutInProgress", "rolling out")
    assert not failing(st, "gpu-node-0")
    st = wait_status(sim, lambda s: failing(s, "gpu-node-0"), "init failure reported")
    f = failing(st, "gpu-node-0")[0]
    assert f["operand"] == "driver" and f["reason"] == "Init:CrashLoopBackOff", f
    assert f["message"] == "failed to evict GPU pods: timeout"
    assert cond(st, "Ready")["reason"] == "DriverNotReady"


def test_no_writes_while_pods_stay_terminating_and_crash_loop(cluster):
    sim, _ = cluster(gpu_nodes=3)
    converge(sim)
    # one validator pod never finishes terminating, one keeps restarting, one cannot be scheduled
    sim.admin("/_sim/lifecycle", {"node": "gpu-node-0", "labelSelector": "app.kubernetes.io/component=validator",
                                  "stopSeconds": -1})
    pod = pods_on(sim, "gpu-node-0", "validator")[0]
    sim.delete("%s/%s" % (PODS_PATH, pod["metadata"]["name"]))
    sim.admin("/_sim/fail", {"node": "gpu-node-1", "labelSelector": "app.kubernetes.io/component=dcgm-exporter"})
    sim.admin("/_sim/unschedulable", {"node": "gpu-node-2", "labelSelector": "app.kubernetes.io/component=validator"})
    pod = pods_on(sim, "gpu-node-2", "validator")[0]
    sim.delete("%s/%s" % (PODS_PATH, pod["metadata"]["name"]), {"gracePeriodSeconds": 0})
    st = wait_status(sim, lambda s: failing(s, "gpu-node-1") and failing(s, "gpu-node-2"), "both reported")
    assert pods_on(sim, "gpu-node-0", "validator")[0]["metadata"].get("deletionTimestamp")
    assert not failing(st, "gpu-node-0"), st
    time.sleep(2.0)  # status writes are rate-limited: let the last one out
    sim.reset_counters()
    time.sleep(GRACE + 4)
    c = sim.counters()
    assert c["writes"] == 0, json.dumps(c, indent=1)


# ---- node conditions: a NotReady or unreachable node, a taint the policy does not tolerate ----------


def test_unreachable_node_is_listed_but_does_not_fail_the_policy(cluster):
    sim, _ = cluster(gpu_nodes=3)
    converge(sim)
    sim.admin("/_sim/nodes/gpu-node-1/ready", {"ready": False})
    st = wait_status(sim, lambda s: failing(s, "gpu-node-1"), "gpu-node-1 listed")
    entry = failing(st, "gpu-node-1")[0]
    assert entry["reason"] == "Unreachable", entry  # kubesim adds the node controller's taint
    assert entry["message"] == "Kubelet stopped posting node status.", entry
    assert entry["operand"] == "driver"
    # A node outage is not the stack's failure: Ready stays True, the message says so.
    assert ready(st), st
    assert st["nodesSummary"] == "2/3"
    assert "1 node(s) NotReady (not waited for), e.g. gpu-node-1" in cond(st, "Ready")["message"]
    sim.admin("/_sim/nodes/gpu-node-1/ready", {"ready": True})
    # Back: its pods report again; the DaemonSets' counts settle, then Ready with nothing listed.
    wait_status(sim, lambda s: ready(s) and not s.get("failingNodes") and s.get("nodesSummary") == "3/3",
                "back", timeout=40)


def test_untolerated_taint_names_the_node_and_the_taint(cluster):
    sim, _ = cluster(gpu_nodes=2)
    node = sim.ok("GET", "/api/v1/nodes/gpu-node-1")
    node["spec"]["taints"] = [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]
    sim.ok("PUT", "/api/v1/nodes/gpu-node-1", node)
    sim.ok("POST", CGP, policy("gpus"))
    st = wait_status(sim, lambda s: failing(s, "gpu-node-1", "driver"), "the tainted node named")
    entry = failing(st, "gpu-node-1", "driver")[0]
    assert entry["reason"] == "UntoleratedTaint", entry
    assert "taint dedicated=ml:NoSchedule is not tolerated by spec.daemonsets.tolerations" in entry["message"]
    assert pods_on(sim, "gpu-node-1", "driver") == []  # there is no pod to describe
    st = wait_status(sim, lambda s: cond(s, "Ready").get("reason") == "DriverNotReady", "Ready=False")
    assert "gpu-node-1 (UntoleratedTaint)" in cond(st, "Ready")["message"]
    # Tolerating it (and the GPU taint the default tolerated) lets the stack onto the node.
    sim.ok("PATCH", CGP + "/gpus", {"spec": {"daemonsets": {"tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}},
        ctype="application/merge-patch+json")
    wait_status(sim, lambda s: ready(s) and s.get("nodesSummary") == "2/2" and not s.get("failingNodes"),
                "Ready on both nodes", timeout=40)
