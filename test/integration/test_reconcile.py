"""The reconciler end to end: the real controller binary against kubesim (issue 5).

Each test starts its own kubesim (small GPU + CPU fleet, short pod-ready delay), installs the CRD
and the operand namespace, runs build/gpu-policy-controller against it, and drives the user flow
with kubectl and the sim's HTTP/admin API.
"""

import json
import os
import subprocess
import threading
import time

import pytest

from kubesim_client import build_dir, repo_root
from replica import CGP, NS, SERVICEMONITOR_CRD, Replica, policy, prepare

DS_PATH = "/apis/apps/v1/namespaces/%s/daemonsets" % NS
PODS_PATH = "/api/v1/namespaces/%s/pods" % NS
STAGES = ["driver", "container-toolkit", "device-plugin", "dcgm-exporter", "validator"]
STAGE_INDEX = {"driver": 0, "container-toolkit": 1, "device-plugin": 2, "dcgm-exporter": 3, "validator": 3}
DETECTION = ["feature.node.kubernetes.io/pci-10de.present", "feature.node.kubernetes.io/pci-0302_10de.present",
             "feature.node.kubernetes.io/pci-0300_10de.present", "nvidia.com/gpu.present"]
CONTROLLER = os.path.join(build_dir(), "gpu-policy-controller")

pytestmark = pytest.mark.skipif(not os.path.exists(CONTROLLER), reason="controller binary not built")


@pytest.fixture
def cluster(kubesim):
    """factory(gpu_nodes=3, cpu_nodes=1, ...) -> (sim, controller) with the CRD and namespace in place."""
    started = []

    def make(gpu_nodes=3, cpu_nodes=1, pod_ready_delay=0.1, start=True, **kw):
        sim = kubesim(gpu_nodes=gpu_nodes, cpu_nodes=cpu_nodes, pod_ready_delay=pod_ready_delay, **kw)
        prepare(sim)
        ctl = Replica(sim, leader_elect=False) if start else None
        if ctl:
            started.append(ctl)
        return sim, ctl

    yield make
    for ctl in started:
        rc = ctl.stop()
        assert rc == 0, "controller exited %s; log:\n%s" % (rc, ctl.logs()[-3000:])


def get_policy(sim, name):
    code, obj, _ = sim.get(CGP + "/" + name)
    return obj if code == 200 else None


def condition(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def wait_condition(sim, name, ctype, status, timeout=20, reason=None):
    def check():
        c = condition(get_policy(sim, name), ctype)
        return c.get("status") == status and (reason is None or c.get("reason") == reason)
    try:
        sim.wait_for(check, timeout=timeout, interval=0.1, what="%s %s=%s" % (name, ctype, status))
    except Exception:
        raise AssertionError("policy %s never reached %s=%s: %s" % (
            name, ctype, status, json.dumps((get_policy(sim, name) or {}).get("status"), indent=1)))
    return get_policy(sim, name)


def node_labels(sim, name):
    code, node, _ = sim.get("/api/v1/nodes/" + name)
    assert code == 200, node
    return node["metadata"].get("labels") or {}


def our_labels(labels):
    return {k: v for k, v in labels.items() if k.startswith("gpupolicy.dev/")}


def gpu_node_names(sim):
    return sorted(n["metadata"]["name"] for n in sim.get("/api/v1/nodes")[1]["items"]
                  if any((n["metadata"].get("labels") or {}).get(k) == "true" for k in DETECTION))


def daemonsets(sim):
    return {d["metadata"]["name"]: d for d in sim.get(DS_PATH)[1]["items"]}


def pods(sim):
    return sim.get(PODS_PATH)[1]["items"]


def writes(sim):
    return sim.counters()["writes"]


# Aggregated Event updates go out up to this long after the occurrence they fold in (events.h).
EVENT_FLUSH_S = 11.0


def wait_quiet(sim, quiet=2.0, timeout=20):
    """Waits until no write has happened for `quiet` seconds (status/event flushes settle); before a
    'no writes at all' check, quiet=EVENT_FLUSH_S also waits out a pending aggregated Event update."""
    deadline = time.monotonic() + timeout
    last, since = writes(sim), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        w = writes(sim)
        if w != last:
            last, since = w, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError("writes never stopped")


class PodOrder(threading.Thread):
    """Records the order in which operand pods are created, per node, from a watch."""

    def __init__(self, sim):
        super().__init__(daemon=True)
        self.sim, self.order, self.stop_flag = sim, {}, False
        self.w = sim.watch(PODS_PATH, query={"resourceVersion": "0", "timeoutSeconds": "15"}, timeout=30)
        self.start()

    def run(self):
        try:
            for ev in self.w.events():
                if ev["type"] != "ADDED":
                    continue
                o = ev["object"]
                # DaemonSet pods are created unbound: the node is the one their affinity names
                spec = o.get("spec") or {}
                node = spec.get("nodeName") or json.dumps(spec.get("affinity")).partition(
                    '"values": ["')[2].partition('"')[0]
                comp = (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
                if node and comp:
                    self.order.setdefault(node, []).append(comp)
        except Exception:  # noqa: BLE001 - closed by the test
            pass

    def close(self):
        self.w.close()


# ---- tests ---------------------------------------------------------------------------------------------------


def test_sample_converges_in_stage_order(cluster):
    sim, ctl = cluster(gpu_nodes=3, cpu_nodes=1)
    order = PodOrder(sim)
    sim.kubectl("apply", "-f", os.path.join(repo_root(), "manifests", "samples", "minimal.yaml"))
    r = sim.kubectl("wait", "--for=condition=Ready", "clustergpupolicy/gpus", "--timeout=60s", check=False)
    assert r.returncode == 0, r.stderr + "\n" + ctl.logs()[-3000:]
    obj = get_policy(sim, "gpus")
    st = obj["status"]
    assert st["nodesSummary"] == "3/3"
    assert st["nodes"]["matched"] == 3 and st["nodes"]["ready"] == 3
    assert st["gpus"]["allocatable"] == 24
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Reconciling")["status"] == "False"
    assert condition(obj, "Stalled")["status"] == "False"
    assert "gpupolicy.dev/cleanup" in obj["metadata"]["finalizers"]

    table = sim.kubectl("get", "cgp", "gpus").stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "READY", "NODES", "GPUS"], table
    assert table[1].split()[:4] == ["gpus", "True", "3/3", "24"], table

    for n in gpu_node_names(sim):
        labels = our_labels(node_labels(sim, n))
        assert labels == dict([("gpupolicy.dev/policy", "gpus")] +
                              [("gpupolicy.dev/" + s, "true") for s in STAGES]), (n, labels)
    assert our_labels(node_labels(sim, "cpu-node-0")) == {}
    assert not [p for p in pods(sim) if p["spec"].get("nodeName") == "cpu-node-0"]

    # Operand pods appear on each node in stage order.
    sim.wait_for(lambda: all(len(order.order.get(n, [])) >= 5 for n in gpu_node_names(sim)), timeout=10,
                 what="pod order")
    order.close()
    for n in gpu_node_names(sim):
        idx = [STAGE_INDEX[c] for c in order.order[n]]
        assert idx == sorted(idx), (n, order.order[n])
    ds = daemonsets(sim)
    assert sorted(ds) == sorted("gpus-" + s for s in STAGES)
    assert ds["gpus-driver"]["spec"]["updateStrategy"]["type"] == "OnDelete"
    for d in ds.values():
        refs = d["metadata"]["ownerReferences"]
        assert refs[0]["kind"] == "ClusterGPUPolicy" and refs[0]["uid"] == obj["metadata"]["uid"]
    # Events were recorded on the policy, aggregated (a handful, not one per reconcile).
    evs = [e for e in sim.get("/api/v1/namespaces/default/events")[1]["items"]
           if e["involvedObject"].get("name") == "gpus"]
    reasons = {e["reason"] for e in evs}
    assert "RolloutComplete" in reasons, reasons
    assert len(evs) <= 20, [e["reason"] for e in evs]


def test_failing_node_then_recovery(cluster):
    sim, ctl = cluster(gpu_nodes=3, cpu_nodes=1)
    sim.admin("/_sim/fail", {"node": "gpu-node-1", "daemonset": "gpus-driver", "reason": "CrashLoopBackOff",
                             "message": "driver build failed"})
    sim.ok("POST", CGP, policy("gpus"))
    # The others get to the device plugin (and beyond); gpu-node-1 stays at the driver.
    for n in ("gpu-node-0", "gpu-node-2"):
        sim.wait_for(lambda n=n: node_labels(sim, n).get("gpupolicy.dev/validator") == "true", timeout=20,
                     what=n + " fully unlocked")
    labels = our_labels(node_labels(sim, "gpu-node-1"))
    assert labels.get("gpupolicy.dev/driver") == "true"
    assert "gpupolicy.dev/container-toolkit" not in labels
    obj = wait_condition(sim, "gpus", "Ready", "False", reason="DriverNotReady")
    assert "driver" in condition(obj, "Ready")["message"]
    failing = obj["status"]["failingNodes"]
    assert [(f["node"], f["operand"]) for f in failing] == [("gpu-node-1", "driver")], failing
    assert failing[0]["reason"] == "CrashLoopBackOff"
    # Counts follow within the status write interval (5 s; conditions are written at once).
    sim.wait_for(lambda: get_policy(sim, "gpus")["status"]["nodesSummary"] == "2/3", timeout=10, what="2/3")

    sim.admin("/_sim/recover", {"node": "gpu-node-1"})
    obj = wait_condition(sim, "gpus", "Ready", "True", timeout=30)
    assert obj["status"].get("failingNodes", []) == []
    assert obj["status"]["nodesSummary"] == "3/3"


def test_validator_failure_reason_reaches_failing_nodes(cluster):
    # issue 7: the validator writes "<Result>: <detail>" to its termination log and exits non-zero; the
    # kubelet shows CrashLoopBackOff with lastState.terminated.message, and the policy names the result.
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    sim.admin("/_sim/fail", {"node": "gpu-node-1", "daemonset": "gpus-validator", "exitCode": 12,
                             "terminationMessage": "NoDevice: NVML reports 0 devices"})

    def reported():
        obj = get_policy(sim, "gpus")
        c = condition(obj, "Ready")
        return c.get("status") == "False" and c.get("reason") == "ValidatorNotReady" and \
            obj["status"].get("failingNodes") and obj
    try:
        obj = sim.wait_for(reported, timeout=20, interval=0.1, what="ValidatorNotReady")
    except Exception:
        raise AssertionError(json.dumps(get_policy(sim, "gpus").get("status"), indent=1))
    failing = obj["status"]["failingNodes"]
    assert [(f["node"], f["operand"], f["reason"]) for f in failing] == \
        [("gpu-node-1", "validator", "NoDevice")], failing
    assert "NVML reports 0 devices" in failing[0]["message"], failing
    msg = condition(obj, "Ready")["message"]
    assert "validator not ready" in msg and "gpu-node-1 (NoDevice)" in msg, msg
    # The other node and the earlier stages of this one are untouched.
    labels = our_labels(node_labels(sim, "gpu-node-1"))
    assert labels.get("gpupolicy.dev/validator") == "true", labels

    sim.admin("/_sim/recover", {"node": "gpu-node-1"})
    obj = wait_condition(sim, "gpus", "Ready", "True", timeout=20)
    assert condition(obj, "Ready")["reason"] == "AllOperandsReady"
    assert obj["status"].get("failingNodes", []) == []

def test_node_joins_and_leaves(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=1)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    sim.admin("/_sim/nodes", {"name": "gpu-node-new", "gpu": True, "gpus": 4})
    sim.wait_for(lambda: node_labels(sim, "gpu-node-new").get("gpupolicy.dev/validator") == "true",
                 timeout=20, what="new node rolled out")
    obj = sim.wait_for(lambda: (lambda o: o if o["status"]["nodesSummary"] == "3/3" and
                                condition(o, "Ready").get("status") == "True" else None)(get_policy(sim, "gpus")),
                       timeout=20, what="3/3 ready")
    assert obj["status"]["gpus"]["allocatable"] == 8 + 8 + 4

    # The node loses its GPU labels: our labels and its pods go away.
    present = [k for k in DETECTION if node_labels(sim, "gpu-node-0").get(k)]
    sim.admin("/_sim/nodes/gpu-node-0/labels", {"remove": present}, method="PATCH")
    sim.wait_for(lambda: our_labels(node_labels(sim, "gpu-node-0")) == {}, timeout=20, what="labels removed")
    sim.wait_for(lambda: not [p for p in pods(sim) if p["spec"].get("nodeName") == "gpu-node-0"], timeout=20,
                 what="pods gone from gpu-node-0")
    sim.wait_for(lambda: get_policy(sim, "gpus")["status"]["nodesSummary"] == "2/2", timeout=20, what="2/2")


def test_version_change_rolls_daemonsets(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.ok("POST", CGP, policy("gpus"))
    obj = wait_condition(sim, "gpus", "Ready", "True")
    assert obj["status"]["observedGeneration"] == 1
    before = daemonsets(sim)
    sim.patch(CGP + "/gpus", {"spec": {"driver": {"version": "560.35.03"},
                                       "devicePlugin": {"version": "v0.16.2"}}})

    def rolled():
        ds = daemonsets(sim)
        img = lambda d: d["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
        return ("560.35.03" in img(ds["gpus-driver"]) and img(ds["gpus-device-plugin"]).endswith(":v0.16.2")
                and ds)
    ds = sim.wait_for(rolled, timeout=20, what="DaemonSets updated")
    assert ds["gpus-driver"]["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert ds["gpus-driver"]["metadata"]["generation"] > before["gpus-driver"]["metadata"]["generation"]
    assert ds["gpus-container-toolkit"]["metadata"]["generation"] == \
        before["gpus-container-toolkit"]["metadata"]["generation"]
    sim.wait_for(lambda: get_policy(sim, "gpus")["status"].get("observedGeneration") == 2, timeout=20,
                 what="observedGeneration 2")
    obj = get_policy(sim, "gpus")
    for c in obj["status"]["conditions"]:
        assert c["observedGeneration"] == 2, c

    def images(component):
        return {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in pods(sim)
                if p["metadata"]["labels"].get("app.kubernetes.io/component") == component}
    # RollingUpdate replaces the device plugin's pods with the new version ...
    sim.wait_for(lambda: all(i.endswith(":v0.16.2") for i in images("device-plugin").values())
                 and len(images("device-plugin")) == 2, timeout=20, what="device-plugin pods replaced")
    # ... while the driver (OnDelete) keeps running the old one until its pod is deleted.
    drivers = images("driver")
    assert len(drivers) == 2 and all("560.35.03" not in i for i in drivers.values()), drivers
    # The Driver column says so instead of showing the new version as if it ran.
    summary = lambda: get_policy(sim, "gpus")["status"].get("driverSummary")  # noqa: E731
    sim.wait_for(lambda: summary() == "560.35.03 (pending on 2 of 2)", timeout=20, what="driver pending")
    old = [p for p in pods(sim) if p["metadata"]["labels"].get("app.kubernetes.io/component") == "driver"][0]
    assert sim.delete(PODS_PATH + "/" + old["metadata"]["name"])[0] == 200
    sim.wait_for(lambda: "560.35.03" in images("driver").get(old["spec"]["nodeName"], ""), timeout=20,
                 what="driver pod recreated with the new version")
    assert sum("560.35.03" in i for i in images("driver").values()) == 1  # the other node is untouched
    sim.wait_for(lambda: summary() == "560.35.03 (pending on 1 of 2)", timeout=20, what="1 driver pending")


def test_a_pool_policy_and_a_default_policy_share_the_fleet_without_conflict(cluster):
    """manifests/samples/node-pool.yaml's layout: a policy for the rest (default detection) and a younger
    one for a pool (explicit selector). The pool's selector wins its node; nobody reports a conflict."""
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    node = sim.ok("GET", "/api/v1/nodes/gpu-node-1")
    node["metadata"]["labels"]["pool"] = "h100"
    sim.ok("PUT", "/api/v1/nodes/gpu-node-1", node)
    sim.ok("POST", CGP, policy("rest"))
    wait_condition(sim, "rest", "Ready", "True")
    time.sleep(1.1)  # the pool policy is younger
    sim.ok("POST", CGP, policy("pool", nodeSelector={"matchLabels": {"pool": "h100"}}))
    pool = wait_condition(sim, "pool", "Ready", "True", timeout=30)
    assert pool["status"]["nodesSummary"] == "1/1"
    sim.wait_for(lambda: get_policy(sim, "rest")["status"]["nodesSummary"] == "1/1", timeout=20,
                 what="rest gave up the pool's node")
    rest = get_policy(sim, "rest")
    assert condition(rest, "NodeConflict")["status"] == "False"
    assert rest["status"]["nodes"]["conflicted"] == 0
    assert condition(rest, "Ready")["status"] == "True"
    assert node_labels(sim, "gpu-node-1")["gpupolicy.dev/policy"] == "pool"
    assert node_labels(sim, "gpu-node-0")["gpupolicy.dev/policy"] == "rest"


def test_overlapping_policies_older_wins(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=1)
    sim.ok("POST", CGP, policy("first"))
    wait_condition(sim, "first", "Ready", "True")
    time.sleep(1.1)  # creationTimestamp has whole seconds
    sim.ok("POST", CGP, policy("second"))
    obj = wait_condition(sim, "second", "NodeConflict", "True")
    assert obj["status"]["nodes"]["conflicted"] == 2
    assert obj["status"]["nodes"]["matched"] == 0
    for n in gpu_node_names(sim):
        assert node_labels(sim, n)["gpupolicy.dev/policy"] == "first"
    assert condition(get_policy(sim, "first"), "Ready")["status"] == "True"
    assert condition(get_policy(sim, "first"), "NodeConflict")["status"] == "False"
    assert not [d for d in daemonsets(sim).values()
                if d["metadata"]["labels"].get("gpupolicy.dev/policy") == "second" and
                d["status"].get("desiredNumberScheduled", 0) > 0]


def test_delete_removes_everything(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=1)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    r = sim.kubectl("delete", "clustergpupolicy", "gpus", "--timeout=30s", check=False)
    assert r.returncode == 0, r.stderr + ctl.logs()[-2000:]
    sim.wait_for(lambda: get_policy(sim, "gpus") is None, timeout=20, what="policy gone")
    for n in gpu_node_names(sim):
        assert our_labels(node_labels(sim, n)) == {}, n
    sim.wait_for(lambda: not daemonsets(sim), timeout=10, what="DaemonSets deleted")
    sim.wait_for(lambda: not pods(sim), timeout=10, what="pods deleted")
    svcs = sim.get("/api/v1/namespaces/%s/services" % NS)[1]["items"]
    assert not svcs, [s["metadata"]["name"] for s in svcs]


def test_invalid_policy_is_stalled_and_applies_nothing(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.ok("POST", CGP, policy("good"))
    wait_condition(sim, "good", "Ready", "True")
    before = writes(sim)
    # A selector the schema lets through but the controller cannot use.
    bad = policy("bad", nodeSelector={"matchExpressions": [{"key": "x", "operator": "In"}]})
    code, out, _ = sim.post(CGP, bad)
    assert code == 201, out
    obj = wait_condition(sim, "bad", "Stalled", "True", reason="InvalidSpec")
    msg = condition(obj, "Stalled")["message"]
    assert "spec.nodeSelector" in msg, msg
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Reconciling")["status"] == "False"
    assert not [d for d in daemonsets(sim) if d.startswith("bad-")]
    for n in gpu_node_names(sim):
        assert node_labels(sim, n)["gpupolicy.dev/policy"] == "good"
    assert condition(get_policy(sim, "good"), "Ready")["status"] == "True"
    evs = [e for e in sim.get("/api/v1/namespaces/default/events")[1]["items"]
           if e["involvedObject"].get("name") == "bad"]
    assert [e["reason"] for e in evs] == ["InvalidSpec"], evs
    assert evs[0]["type"] == "Warning" and "spec.nodeSelector" in evs[0]["message"]
    # Fixing the spec clears Stalled.
    sim.patch(CGP + "/bad", {"spec": {"nodeSelector": {"matchExpressions": None,
                                                         "matchLabels": {"example.com/pool": "none"}}}})
    obj = wait_condition(sim, "bad", "Stalled", "False")
    assert condition(obj, "Ready")["reason"] == "NoMatchingNodes"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    wait_quiet(sim)
    del before


def test_idle_no_writes_no_relists_and_one_relist_after_compaction(cluster):
    sim, ctl = cluster(gpu_nodes=3, cpu_nodes=1)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    wait_quiet(sim, quiet=EVENT_FLUSH_S, timeout=40)
    sim.reset_counters()
    # Heartbeats keep changing every node meanwhile; watches are dropped midway.
    time.sleep(10)
    sim.admin("/_sim/heartbeat")
    sim.admin("/_sim/drop-watches")
    time.sleep(20)
    c = sim.counters()
    assert c["writes"] == 0, [r for r in c["requests"] if r["verb"] not in ("get", "list", "watch")]
    assert c["lists"] == {}, c["lists"]
    assert sum(c["watches"].values()) >= 4, c["watches"]

    # A compaction: every informer's resourceVersion is now too old -> exactly one re-list per type.
    sim.ok("POST", "/api/v1/namespaces/default/configmaps",
           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump"}})
    sim.admin("/_sim/compact")
    sim.reset_counters()
    sim.admin("/_sim/drop-watches")
    sim.wait_for(lambda: len(sim.counters()["lists"]) == 4, timeout=15, what="re-lists")
    time.sleep(3)
    c = sim.counters()
    assert c["lists"] == {"clustergpupolicies": 1, "nodes": 1, "daemonsets": 1, "pods": 1}, c["lists"]
    assert c["writes"] == 0


def test_restart_of_the_api_server_converges_without_duplicates(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=1)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    uids = {n: d["metadata"]["uid"] for n, d in daemonsets(sim).items()}
    sim.restart()
    # A change made after the restart is picked up, so the controller reconnected.
    sim.admin("/_sim/nodes", {"name": "gpu-node-late", "gpu": True, "gpus": 2})
    sim.wait_for(lambda: node_labels(sim, "gpu-node-late").get("gpupolicy.dev/validator") == "true",
                 timeout=30, what="late node rolled out")
    obj = wait_condition(sim, "gpus", "Ready", "True")
    assert obj["status"]["nodesSummary"] == "3/3"
    ds = daemonsets(sim)
    assert {n: d["metadata"]["uid"] for n, d in ds.items()} == uids
    per_node = {}
    for p in pods(sim):
        key = (p["spec"]["nodeName"], p["metadata"]["labels"]["app.kubernetes.io/component"])
        per_node[key] = per_node.get(key, 0) + 1
    assert all(v == 1 for v in per_node.values()), per_node


def test_bad_flag_exits_2_with_one_line():
    r = subprocess.run([CONTROLLER, "--qps=fast"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--qps" in lines[0], r.stderr
    r = subprocess.run([CONTROLLER, "--kubeconfig", "/nonexistent/kubeconfig"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "/nonexistent/kubeconfig" in r.stderr, r.stderr


def _unshare_works():
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (user and mount namespaces)")
def test_without_dev_urandom_exits_with_a_clear_error(tmp_path):
    """No /dev/urandom (a /dev without it, as in some minimal sandboxes): libwebsockets used to crash in its
    own clean-up (SIGSEGV inside uv_run); now the controller says what is missing and exits 2."""
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
                  "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                  "current-context: x\n")
    script = ('mount -t tmpfs none /dev && exec "$0" --kubeconfig "$1" --namespace x --log-format=text '
              '--metrics-bind-address=127.0.0.1:0 --health-probe-bind-address=127.0.0.1:0')
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script, CONTROLLER, str(kc)], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "/dev/urandom" in r.stderr and "--metrics-bind-address=0" in r.stderr, r.stderr


def test_unreadable_token_file_is_a_clear_start_up_error(tmp_path):
    """A token file that cannot be read (missing, not a regular file) at start-up: exit 2 with one line that
    names the kubeconfig entry or the in-cluster directory and the file, never a crash or a silent retry."""
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                  "users: [{name: u, user: {tokenFile: %s}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                  "current-context: x\n" % tmp_path)  # a directory
    r = subprocess.run([CONTROLLER, "--kubeconfig", str(kc)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "users[0].user.tokenFile" in r.stderr and "not a regular file" in r.stderr, r.stderr
    env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT="1",
               GPC_SA_DIR=str(tmp_path / "no-such-dir"))
    r = subprocess.run([CONTROLLER], capture_output=True, text=True, timeout=20, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert str(tmp_path / "no-such-dir" / "token") in r.stderr and len(r.stderr.strip().splitlines()) == 1, \
        r.stderr


def write_failed_lines(ctl, key_part):
    return [ln for ln in ctl.logs().splitlines() if "write failed" in ln and key_part in ln]


def test_apply_refused_is_stalled_and_clears_by_itself(cluster):
    """A persistent 422 on one object: Ready=False/Stalled=True ApplyFailed with the verb, resource, name and
    the server's message; the object is retried with backoff (not ten times a second, not never) and the
    failure clears by itself once the server accepts the object again, without a spec edit."""
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.admin("/_sim/inject", {"code": 422, "method": "PATCH", "count": 100000,
                               "pathPrefix": DS_PATH + "/gpus-driver",
                               "message": "spec.template.spec.containers[0].image: Invalid value"})
    sim.ok("POST", CGP, policy("gpus"))
    obj = wait_condition(sim, "gpus", "Stalled", "True", reason="ApplyFailed")
    msg = condition(obj, "Stalled")["message"]
    assert "containers[0].image" in msg and "apply daemonsets.apps" in msg and "gpus-driver" in msg, msg
    assert "422" in msg, msg
    assert condition(obj, "Ready")["status"] == "False" and condition(obj, "Ready")["reason"] == "ApplyFailed"
    assert condition(obj, "Reconciling")["status"] == "False"
    assert "gpus-driver" not in daemonsets(sim)
    # Retried with backoff while it lasts: a handful of attempts in 8 s, each logged once.
    sim.wait_for(lambda: sim.count(verb="patch", resource="daemonsets", code=422) >= 2, timeout=10,
                 what="second attempt")
    time.sleep(8)
    tries = sim.count(verb="patch", resource="daemonsets", code=422)
    assert 3 <= tries <= 6, tries
    assert len(write_failed_lines(ctl, "gpus-driver")) == tries, ctl.logs()[-3000:]
    # The cause goes away (a quota raised, a webhook fixed): Ready without touching the spec.
    sim.request("DELETE", "/_sim/inject")
    obj = wait_condition(sim, "gpus", "Ready", "True", timeout=45)
    assert condition(obj, "Stalled")["status"] == "False"
    assert obj["metadata"]["generation"] == 1
    assert "gpus-driver" in daemonsets(sim)


def test_missing_crd_404_backs_off_shows_and_clears_once_the_crd_is_installed(cluster):
    """The production sample on a cluster without the Prometheus Operator: its ServiceMonitor apply answers
    404. The rest of the stack still rolls out; the policy says ApplyFailed (not Ready=True); the
    ServiceMonitor costs a handful of requests a minute; each failure counts as a reconcile error; installing
    the CRD clears it by itself."""
    from replica import Replica
    import promtext

    sim, _ = cluster(gpu_nodes=2, cpu_nodes=1, start=False)
    ctl = Replica(sim, leader_elect=False)
    try:
        sim.kubectl("apply", "-f", os.path.join(repo_root(), "manifests", "samples", "production.yaml"))
        t0 = time.monotonic()
        obj = wait_condition(sim, "production", "Ready", "False", reason="ApplyFailed", timeout=30)
        msg = condition(obj, "Ready")["message"]
        assert "apply servicemonitors.monitoring.coreos.com" in msg and "production-dcgm-exporter" in msg, msg
        assert "404" in msg, msg
        assert condition(obj, "Stalled")["status"] == "True"
        # Everything else is applied meanwhile.
        sim.wait_for(lambda: len(daemonsets(sim)) == 5, timeout=20, what="five DaemonSets")
        window = 30
        time.sleep(max(0.0, t0 + window - time.monotonic()))
        # kubesim does not count requests for kinds it does not serve: the controller's own counter does
        # (nothing else of ours answers 404 to a PATCH).
        fams = ctl.metrics()
        sm = promtext.value(fams, "rest_client_requests_total", code="404", method="PATCH")
        # Backoff 1-2 s, doubling, capped at 60-120 s: at most 5 applies in the first 30 s (before: ~300).
        assert sm is not None and 2 <= sm <= 5, sm
        assert len(write_failed_lines(ctl, "ServiceMonitor")) == sm, ctl.logs()[-3000:]
        errors = promtext.value(fams, "controller_runtime_reconcile_errors_total", controller="clustergpupolicy")
        err_total = promtext.value(fams, "controller_runtime_reconcile_total", controller="clustergpupolicy",
                                   result="error")
        assert errors and errors >= sm and err_total == errors, (errors, err_total)
        sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SERVICEMONITOR_CRD)
        obj = wait_condition(sim, "production", "Ready", "True", timeout=75)
        assert condition(obj, "Stalled")["status"] == "False"
        code, sm_obj, _ = sim.get(SM_PATH + "/production-dcgm-exporter")
        assert code == 200, sm_obj
    finally:
        assert ctl.stop() == 0, ctl.logs()[-3000:]


def test_rbac_403_on_node_patches_and_persistent_500(cluster):
    """Missing RBAC for node patches (403): no longer 'RolloutInProgress' forever with a retry loop, but
    ApplyFailed naming the verb, resource and node with the server's message, a few requests per node,
    and Ready once the permission is back. A persistent 500 backs off the same way."""
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.admin("/_sim/inject", {"code": 403, "method": "PATCH", "count": 100000, "pathPrefix": "/api/v1/nodes/"})
    sim.ok("POST", CGP, policy("gpus"))
    obj = wait_condition(sim, "gpus", "Ready", "False", reason="ApplyFailed")
    msg = condition(obj, "Ready")["message"]
    assert "patch nodes gpu-node-" in msg and "403 Forbidden" in msg and "cannot patch" in msg, msg
    assert "1 more write(s) failing" in msg, msg
    assert condition(obj, "Stalled")["status"] == "True"
    time.sleep(10)
    per_node = [sim.count(verb="patch", resource="nodes", code=403) / 2.0]
    assert per_node[0] <= 5, per_node  # before: ~100 a node
    sim.request("DELETE", "/_sim/inject")
    obj = wait_condition(sim, "gpus", "Ready", "True", timeout=45)
    assert condition(obj, "Stalled")["status"] == "False"

    # A persistent 500 on the status patch of a new generation: a handful of attempts, not a loop.
    wait_quiet(sim)
    sim.reset_counters()
    sim.admin("/_sim/inject", {"code": 500, "method": "PATCH", "count": 100000,
                               "pathPrefix": CGP + "/gpus/status"})
    sim.patch(CGP + "/gpus", {"spec": {"devicePlugin": {"version": "v0.15.1"}}})
    time.sleep(12)
    tries = sim.count(verb="patch", resource="clustergpupolicies", subresource="status", code=500)
    assert 2 <= tries <= 6, tries
    sim.request("DELETE", "/_sim/inject")
    sim.wait_for(lambda: get_policy(sim, "gpus")["status"]["observedGeneration"] == 2, timeout=60,
                 what="status of generation 2 written")
    wait_condition(sim, "gpus", "Ready", "True", timeout=30)


EVENTS_PATH = "/api/v1/namespaces/default/events"


def test_event_gone_before_its_update_is_created_again(cluster):
    """An aggregated Event whose PATCH answers 404 (expired after the API server's TTL, or deleted) is
    created again with the aggregated count, as client-go's recorder does, instead of being dropped."""
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")

    def complete_events():
        return [e for e in sim.get(EVENTS_PATH)[1]["items"] if e.get("reason") == "RolloutComplete"]
    sim.wait_for(lambda: len(complete_events()) == 1, timeout=10, what="RolloutComplete event")
    ev = complete_events()[0]
    name, message = ev["metadata"]["name"], ev["message"]
    sim.ok("DELETE", EVENTS_PATH + "/" + name)  # as the event TTL would
    # Not ready and ready again: the same RolloutComplete message is folded into that Event (a PATCH).
    sim.admin("/_sim/fail", {"node": "gpu-node-1", "daemonset": "gpus-device-plugin"})
    wait_condition(sim, "gpus", "Ready", "False", reason="DevicePluginNotReady", timeout=30)
    sim.admin("/_sim/recover", {"node": "gpu-node-1"})
    obj = wait_condition(sim, "gpus", "Ready", "True", timeout=30)
    assert condition(obj, "Ready")["message"] == message
    sim.wait_for(lambda: sim.get(EVENTS_PATH + "/" + name)[0] == 200, timeout=25, what="Event created again")
    again = sim.get(EVENTS_PATH + "/" + name)[1]
    assert again["count"] == 2 and again["reason"] == "RolloutComplete", again
    assert again["involvedObject"]["name"] == "gpus"
    assert sim.count(verb="patch", resource="events", code=404) >= 1


def test_conflicts_and_server_errors_are_retried(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.admin("/_sim/inject", [{"code": 409, "method": "PATCH", "count": 2, "pathPrefix": "/api/v1/nodes/"},
                               {"code": 500, "method": "PATCH", "count": 2, "pathPrefix": CGP + "/gpus/status"}])
    sim.ok("POST", CGP, policy("gpus"))
    obj = wait_condition(sim, "gpus", "Ready", "True", timeout=30)
    assert obj["status"]["nodesSummary"] == "2/2"
    assert sim.count(verb="patch", resource="nodes", code=409) == 2


def test_node_selector_on_any_label(cluster):
    # Node projections keep only the labels some selector reads; a policy with a new key widens that.
    sim, ctl = cluster(gpu_nodes=3, cpu_nodes=1)
    sim.admin("/_sim/nodes/gpu-node-2/labels", {"set": {"example.com/pool": "training"}}, method="PATCH")
    # Nodes already listed without that key: the new policy makes the controller list them again.
    sim.wait_for(lambda: "caches synced" in ctl.logs(), timeout=10, what="caches synced")
    sim.ok("POST", CGP, policy("pool", nodeSelector={"matchLabels": {"example.com/pool": "training"}}))
    obj = wait_condition(sim, "pool", "Ready", "True")
    assert obj["status"]["nodesSummary"] == "1/1"
    assert node_labels(sim, "gpu-node-2")["gpupolicy.dev/policy"] == "pool"
    assert our_labels(node_labels(sim, "gpu-node-0")) == {}
    # A second node joins the pool later: seen through the (filtered) node watch.
    sim.admin("/_sim/nodes/gpu-node-0/labels", {"set": {"example.com/pool": "training"}}, method="PATCH")
    sim.wait_for(lambda: node_labels(sim, "gpu-node-0").get("gpupolicy.dev/validator") == "true", timeout=20,
                 what="gpu-node-0 joins the pool")
    assert "node selector keys changed" in ctl.logs()


def test_younger_policy_takes_over_when_the_older_is_deleted(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.ok("POST", CGP, policy("first"))
    wait_condition(sim, "first", "Ready", "True")
    time.sleep(1.1)
    sim.ok("POST", CGP, policy("second"))
    wait_condition(sim, "second", "NodeConflict", "True")
    sim.delete(CGP + "/first")
    # (While conflicted, "second" was Ready=True with NoMatchingNodes: wait for the takeover itself.)
    wait_condition(sim, "second", "NodeConflict", "False", timeout=30)
    sim.wait_for(lambda: get_policy(sim, "second")["status"]["nodesSummary"] == "2/2", timeout=20, what="2/2")
    wait_condition(sim, "second", "Ready", "True", timeout=30, reason="AllOperandsReady")
    for n in gpu_node_names(sim):
        assert node_labels(sim, n)["gpupolicy.dev/policy"] == "second"
    assert not [d for d in daemonsets(sim) if d.startswith("first-")]


def test_node_opt_out_removes_our_labels(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=0)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    sim.admin("/_sim/nodes/gpu-node-1/labels", {"set": {"gpupolicy.dev/operands": "false"}}, method="PATCH")
    sim.wait_for(lambda: our_labels(node_labels(sim, "gpu-node-1")) == {"gpupolicy.dev/operands": "false"},
                 timeout=20, what="labels removed from the opted-out node")
    sim.wait_for(lambda: not [p for p in pods(sim) if p["spec"].get("nodeName") == "gpu-node-1"], timeout=20,
                 what="operand pods gone from gpu-node-1")
    sim.wait_for(lambda: get_policy(sim, "gpus")["status"]["nodesSummary"] == "1/1", timeout=15, what="1/1")
    # A per-operand opt-out is never overwritten and counts as satisfied.
    sim.admin("/_sim/nodes/gpu-node-0/labels", {"set": {"gpupolicy.dev/dcgm-exporter": "false"}}, method="PATCH")
    wait_quiet(sim)
    assert node_labels(sim, "gpu-node-0")["gpupolicy.dev/dcgm-exporter"] == "false"
    wait_condition(sim, "gpus", "Ready", "True", timeout=20)
    assert node_labels(sim, "gpu-node-0")["gpupolicy.dev/dcgm-exporter"] == "false"


def test_controller_restart_on_a_converged_cluster_writes_nothing(cluster):
    sim, ctl = cluster(gpu_nodes=3, cpu_nodes=1)
    sim.ok("POST", CGP, policy("gpus"))
    wait_condition(sim, "gpus", "Ready", "True")
    wait_quiet(sim)
    assert ctl.stop() == 0
    sim.reset_counters()
    ctl2 = Replica(sim, leader_elect=False)
    try:
        sim.wait_for(lambda: "caches synced" in ctl2.logs(), timeout=10, what="caches synced")
        time.sleep(4)
        w = [r for r in sim.counters()["requests"] if r["verb"] not in ("get", "list", "watch")]
        # DaemonSets are adopted from the cache, the kinds it does not watch (the Service, the
        # RuntimeClass) after one GET each: nothing is written again.
        assert w == [], w
        gets = {r["resource"]: r["count"] for r in sim.counters()["requests"] if r["verb"] == "get"}
        assert gets.get("services") == 1 and gets.get("runtimeclasses") == 1, gets
    finally:
        assert ctl2.stop() == 0


SVC_PATH = "/api/v1/namespaces/%s/services" % NS
SM_PATH = "/apis/monitoring.coreos.com/v1/namespaces/%s/servicemonitors" % NS


def test_disabled_operand_deletes_its_service_and_service_monitor(cluster):
    sim, ctl = cluster(gpu_nodes=2, cpu_nodes=1)
    sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SERVICEMONITOR_CRD)
    sim.wait_for(lambda: sim.get(SM_PATH)[0] == 200, what="ServiceMonitor CRD served")
    sim.ok("POST", CGP, policy("gpus", dcgmExporter={"serviceMonitor": {"enabled": True}}))
    ready = condition(wait_condition(sim, "gpus", "Ready", "True"), "Ready")
    names = lambda path: sorted(o["metadata"]["name"] for o in sim.get(path)[1]["items"])  # noqa: E731
    sim.wait_for(lambda: names(SM_PATH) == ["gpus-dcgm-exporter"], timeout=20, what="ServiceMonitor applied")
    assert names(SVC_PATH) == ["gpus-dcgm-exporter"]
    wait_quiet(sim)

    def deletes():
        return sorted((r["resource"], r["name"], r["count"]) for r in sim.counters()["detail"]
                      if r["verb"] == "delete" and r["client"] == "gpu-policy-controller")

    # The ServiceMonitor is switched off: it goes, the Service and the DaemonSet stay.
    sim.reset_counters()
    sim.patch(CGP + "/gpus", {"spec": {"dcgmExporter": {"serviceMonitor": {"enabled": False}}}})
    sim.wait_for(lambda: names(SM_PATH) == [], timeout=20, what="ServiceMonitor deleted")
    wait_quiet(sim)
    assert names(SVC_PATH) == ["gpus-dcgm-exporter"]
    assert "gpus-dcgm-exporter" in daemonsets(sim)
    assert deletes() == [("servicemonitors", "gpus-dcgm-exporter", 1)], deletes()

    # dcgm-exporter is switched off: its DaemonSet and its Service go, once each.
    sim.reset_counters()
    sim.patch(CGP + "/gpus", {"spec": {"dcgmExporter": {"enabled": False}}})
    sim.wait_for(lambda: names(SVC_PATH) == [] and "gpus-dcgm-exporter" not in daemonsets(sim), timeout=20,
                 what="dcgm-exporter DaemonSet and Service deleted")
    wait_quiet(sim)
    assert deletes() == [("daemonsets", "gpus-dcgm-exporter", 1), ("services", "gpus-dcgm-exporter", 1)], \
        deletes()
    assert "gpus-driver" in daemonsets(sim)
    obj = wait_condition(sim, "gpus", "Ready", "True")
    assert condition(obj, "Ready")["lastTransitionTime"] == ready["lastTransitionTime"]  # never flipped

    # Nothing changes any more: no write at all (no delete sent again on later reconciles).
    wait_quiet(sim, quiet=EVENT_FLUSH_S, timeout=40)
    sim.reset_counters()
    sim.admin("/_sim/heartbeat")
    time.sleep(4)
    c = sim.counters()
    assert c["writes"] == 0, [r for r in c["requests"] if r["verb"] not in ("get", "list", "watch")]

    # Switched on again: the deleted objects are applied again.
    sim.patch(CGP + "/gpus", {"spec": {"dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": True}}}})
    sim.wait_for(lambda: names(SVC_PATH) == ["gpus-dcgm-exporter"] and names(SM_PATH) == ["gpus-dcgm-exporter"]
                 and "gpus-dcgm-exporter" in daemonsets(sim), timeout=20, what="dcgm-exporter objects back")
    wait_condition(sim, "gpus", "Ready", "True")
