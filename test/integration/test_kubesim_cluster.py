"""kubesim's simulated cluster: fleet, DaemonSet controller, kubelet, device plugin, GC, admin API.

Driven over plain HTTP through the `kubesim` fixture (conftest.py), plus kubectl for rollout status.
The pure placement/fleet functions are tested directly at the end.
"""

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kubesim"))

import daemonset as dsmod  # noqa: E402
import fleet  # noqa: E402
import placement  # noqa: E402

NS = "kube-system"
DS_PATH = "/apis/apps/v1/namespaces/%s/daemonsets" % NS
GPU_SELECTOR = {"feature.node.kubernetes.io/pci-10de.present": "true"}


def wait_for(fn, timeout=10.0, what="condition"):
    """Poll fn() until it returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s; last value: %r" % (what, last))


def adm(sim, path, body=None, method="POST"):
    """An admin request that returns (status, body) instead of raising, so tests can check 4xx answers."""
    return sim.request(method, path, body)[:2]


def ok(resp, codes=(200, 201)):
    status, body = resp[0], resp[1]
    assert status in codes, "HTTP %s: %s" % (status, body)
    return body


def daemonset(name, node_selector=None, labels=None, strategy=None, tolerations=None, image="example/op:1",
              affinity=None):
    labels = labels or {"app": name}
    spec = {"containers": [{"name": "main", "image": image}]}
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if affinity is not None:
        spec["affinity"] = affinity
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
          "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": spec}}}
    if strategy is not None:
        ds["spec"]["updateStrategy"] = strategy
    return ds


def pods_of(sim, ds_name):
    items = ok(sim.get("/api/v1/namespaces/%s/pods" % NS))["items"]
    out = []
    for p in items:
        refs = p["metadata"].get("ownerReferences") or []
        if any(r.get("kind") == "DaemonSet" and r.get("name") == ds_name for r in refs):
            out.append(p)
    return out


def ds_status(sim, name):
    return ok(sim.get("%s/%s" % (DS_PATH, name))).get("status") or {}


def ready_everywhere(sim, name, n):
    st = ds_status(sim, name)
    ds = ok(sim.get("%s/%s" % (DS_PATH, name)))
    return (st.get("desiredNumberScheduled") == n and st.get("numberReady") == n
            and st.get("numberAvailable", 0) == n and st.get("updatedNumberScheduled", 0) == n
            and st.get("observedGeneration") == ds["metadata"]["generation"]) and st


def no_errors(sim):
    """The simulation thread never hit an exception (it would keep running, so check explicitly)."""
    st = ok(adm(sim, "/_sim/status", method="GET"))
    assert "errors" not in st["counters"], st.get("lastError")
    assert "Traceback" not in sim.stderr()


def node(sim, name):
    return ok(sim.get("/api/v1/nodes/%s" % name))


def is_ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


# ---- fleet ---------------------------------------------------------------------------------------------------

def test_fleet_nodes_look_real(kubesim):
    sim = kubesim(gpu_nodes=3, gpus_per_node=4, cpu_nodes=2)
    items = ok(sim.get("/api/v1/nodes"))["items"]
    names = sorted(n["metadata"]["name"] for n in items)
    assert names == ["cpu-node-0", "cpu-node-1", "gpu-node-0", "gpu-node-1", "gpu-node-2"]
    for n in items:
        labels, st = n["metadata"]["labels"], n["status"]
        gpu = n["metadata"]["name"].startswith("gpu-")
        assert labels["kubernetes.io/hostname"] == n["metadata"]["name"]
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert labels["topology.kubernetes.io/zone"].startswith("us-east-1")
        assert labels["feature.node.kubernetes.io/system-os_release.ID"] == "ubuntu"
        assert (labels.get("feature.node.kubernetes.io/pci-10de.present") == "true") == gpu
        assert (labels.get("nvidia.com/gpu.count") == "4") == gpu
        assert ("nvidia.com/gpu.product" in labels) == gpu
        assert "nvidia.com/gpu" not in st["capacity"] and "nvidia.com/gpu" not in st["allocatable"]
        for key in ("cpu", "memory", "pods", "ephemeral-storage"):
            assert key in st["capacity"] and key in st["allocatable"]
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
        assert st["nodeInfo"]["kubeletVersion"].startswith("v1.")
        assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
        assert {a["type"] for a in st["addresses"]} >= {"InternalIP", "Hostname"}
        assert len(st["images"]) >= (35 if gpu else 20)
        size = len(json.dumps(n, separators=(",", ":")))
        assert (13000 if gpu else 10000) < size < 20000, size
    ns = {n["metadata"]["name"] for n in ok(sim.get("/api/v1/namespaces"))["items"]}
    assert {"default", "kube-system", "kube-public"} <= ns


# ---- DaemonSet controller --------------------------------------------------------------------------------------

def test_daemonset_runs_one_ready_pod_per_matching_node(kubesim):
    sim = kubesim(gpu_nodes=3, cpu_nodes=1, pod_ready_delay=0.2)
    ok(sim.post(DS_PATH, daemonset("drv", node_selector=GPU_SELECTOR)))
    st = wait_for(lambda: ready_everywhere(sim, "drv", 3), what="3 ready driver pods")
    assert st["currentNumberScheduled"] == 3 and st["numberMisscheduled"] == 0
    assert "numberUnavailable" not in st  # omitempty: absent means 0
    ds = ok(sim.get("%s/drv" % DS_PATH))
    pods = pods_of(sim, "drv")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["gpu-node-0", "gpu-node-1", "gpu-node-2"]
    for p in pods:
        m = p["metadata"]
        assert m["name"].startswith("drv-") and len(m["name"]) == len("drv-") + 5
        assert m["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "drv",
                                         "uid": ds["metadata"]["uid"], "controller": True,
                                         "blockOwnerDeletion": True}]
        assert m["labels"]["app"] == "drv"
        assert m["labels"]["pod-template-generation"] == "1"
        assert len(m["labels"]["controller-revision-hash"]) >= 8
        assert p["status"]["phase"] == "Running" and is_ready(p)
        assert all(cs["ready"] and "running" in cs["state"] for cs in p["status"]["containerStatuses"])


def test_pods_become_ready_only_after_the_delay(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=1.5)
    ok(sim.post(DS_PATH, daemonset("slow")))
    pods = wait_for(lambda: pods_of(sim, "slow"), what="pod created")
    assert pods[0]["status"].get("phase") == "Pending" and not is_ready(pods[0])
    assert ds_status(sim, "slow").get("numberReady", 0) == 0
    wait_for(lambda: ready_everywhere(sim, "slow", 1), what="pod ready after the delay")


def test_taints_and_required_node_affinity(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=1)
    taint = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    ok(adm(sim, "/_sim/nodes", {"name": "tainted-gpu", "gpus": 2, "taints": taint}))
    ok(sim.post(DS_PATH, daemonset("plain", node_selector=GPU_SELECTOR)))
    ok(sim.post(DS_PATH, daemonset("tolerant", node_selector=GPU_SELECTOR,
                                   tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                                 "effect": "NoSchedule"}])))
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-node-1", "cpu-node-0"]}]}]}}}
    ok(sim.post(DS_PATH, daemonset("pinned", affinity=aff)))
    wait_for(lambda: ready_everywhere(sim, "plain", 2), what="plain on untainted GPU nodes")
    wait_for(lambda: ready_everywhere(sim, "tolerant", 3), what="tolerant on all GPU nodes")
    wait_for(lambda: ready_everywhere(sim, "pinned", 2), what="pinned by affinity")
    assert sorted(p["spec"]["nodeName"] for p in pods_of(sim, "plain")) == ["gpu-node-0", "gpu-node-1"]
    assert "tainted-gpu" in {p["spec"]["nodeName"] for p in pods_of(sim, "tolerant")}
    assert sorted(p["spec"]["nodeName"] for p in pods_of(sim, "pinned")) == ["cpu-node-0", "gpu-node-1"]


def test_rolling_update_replaces_pods_one_at_a_time(kubesim):
    sim = kubesim(gpu_nodes=3, cpu_nodes=0, pod_ready_delay=0.3)
    ok(sim.post(DS_PATH, daemonset("roll", image="example/op:1")))
    wait_for(lambda: ready_everywhere(sim, "roll", 3), what="initial rollout")
    old = {p["metadata"]["name"] for p in pods_of(sim, "roll")}
    ok(sim.patch("%s/roll" % DS_PATH, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "example/op:2"}]}}}}, "application/strategic-merge-patch+json"))
    min_available = 3
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = ds_status(sim, "roll")
        min_available = min(min_available, st.get("numberAvailable", 0))
        if ready_everywhere(sim, "roll", 3):
            break
        time.sleep(0.03)
    else:
        pytest.fail("rolling update did not finish: %r" % ds_status(sim, "roll"))
    pods = pods_of(sim, "roll")
    assert not old & {p["metadata"]["name"] for p in pods}
    assert all(p["spec"]["containers"][0]["image"] == "example/op:2" for p in pods)
    assert all(p["metadata"]["labels"]["pod-template-generation"] == "2" for p in pods)
    assert min_available >= 2, "maxUnavailable=1 allows at most one pod down at a time"
    assert ds_status(sim, "roll")["observedGeneration"] == 2
    no_errors(sim)


def test_ondelete_keeps_old_pods_until_deleted(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0)
    ok(sim.post(DS_PATH, daemonset("od", strategy={"type": "OnDelete"}, image="example/op:1")))
    wait_for(lambda: ready_everywhere(sim, "od", 2), what="initial pods")
    ok(sim.patch("%s/od" % DS_PATH, {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}},
                 "application/merge-patch+json"))
    wait_for(lambda: ds_status(sim, "od").get("observedGeneration") == 2, what="observedGeneration 2")
    time.sleep(0.5)
    pods = pods_of(sim, "od")
    assert len(pods) == 2 and all("rev" not in (p["metadata"].get("annotations") or {}) for p in pods)
    st = ds_status(sim, "od")
    assert st.get("updatedNumberScheduled", 0) == 0 and st["numberReady"] == 2
    victim = pods[0]
    ok(sim.delete("/api/v1/namespaces/%s/pods/%s" % (NS, victim["metadata"]["name"])))

    def replaced():
        ps = pods_of(sim, "od")
        new = [p for p in ps if p["spec"]["nodeName"] == victim["spec"]["nodeName"]]
        return len(ps) == 2 and new and new[0]["metadata"]["name"] != victim["metadata"]["name"] and new[0]
    new = wait_for(replaced, what="deleted pod recreated")
    assert new["metadata"]["annotations"]["rev"] == "2"
    wait_for(lambda: ds_status(sim, "od").get("updatedNumberScheduled") == 1, what="one updated pod")


def test_node_label_removal_evicts_pod_and_status_counts(kubesim):
    sim = kubesim(gpu_nodes=3, cpu_nodes=0)
    ok(sim.post(DS_PATH, daemonset("lab", node_selector={"role": "gpu"})))
    for i in range(3):
        ok(adm(sim, "/_sim/nodes/gpu-node-%d/labels" % i, {"set": {"role": "gpu"}}))
    wait_for(lambda: ready_everywhere(sim, "lab", 3), what="3 pods")
    ok(adm(sim, "/_sim/nodes/gpu-node-1/labels", {"remove": ["role"]}))
    wait_for(lambda: ready_everywhere(sim, "lab", 2), what="desired back to 2")
    # the evicted pod is Terminating for as long as its containers take to stop (--pod-stop-delay)
    wait_for(lambda: sorted(p["spec"]["nodeName"] for p in pods_of(sim, "lab")) == ["gpu-node-0", "gpu-node-2"],
             what="the evicted pod gone")
    assert "role" not in node(sim, "gpu-node-1")["metadata"]["labels"]
    # a client's label change through the API counts the same
    ok(sim.patch("/api/v1/nodes/gpu-node-1", {"metadata": {"labels": {"role": "gpu"}}},
                 "application/merge-patch+json"))
    wait_for(lambda: ready_everywhere(sim, "lab", 3), what="pod back on relabelled node")


def test_add_and_remove_nodes(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    ok(sim.post(DS_PATH, daemonset("an", node_selector=GPU_SELECTOR)))
    wait_for(lambda: ready_everywhere(sim, "an", 1), what="one pod")
    body = ok(adm(sim, "/_sim/nodes", {"name": "gpu-extra", "gpus": 2}))
    assert body["name"] == "gpu-extra"
    assert adm(sim, "/_sim/nodes", {"name": "gpu-extra"})[0] == 409
    assert adm(sim, "/_sim/nodes", {"gpus": 2})[0] == 400
    n = node(sim, "gpu-extra")
    assert n["metadata"]["labels"]["nvidia.com/gpu.count"] == "2"
    cpu = ok(adm(sim, "/_sim/nodes", {"name": "cpu-extra", "gpu": False}))
    assert cpu["gpus"] == 0
    assert "feature.node.kubernetes.io/pci-10de.present" not in node(sim, "cpu-extra")["metadata"]["labels"]
    wait_for(lambda: ready_everywhere(sim, "an", 2), what="pod on the new GPU node")
    ok(adm(sim, "/_sim/nodes/gpu-extra", method="DELETE"))
    assert sim.get("/api/v1/nodes/gpu-extra")[0] == 404
    wait_for(lambda: ready_everywhere(sim, "an", 1) and len(pods_of(sim, "an")) == 1, what="pod gone with node")
    assert adm(sim, "/_sim/nodes/nope", method="DELETE")[0] == 404
    st = ok(adm(sim, "/_sim/status", method="GET"))
    assert st["nodes"] == 2 and st["gpuNodes"] == 1 and st["daemonsets"] == 1 and st["pods"] == 1


def test_missing_runtime_class_rejects_pods_until_created(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0)
    ds = daemonset("rc")
    ds["spec"]["template"]["spec"]["runtimeClassName"] = "nvidia"
    ok(sim.post(DS_PATH, ds))

    def failed_create():
        evs = ok(sim.get("/api/v1/namespaces/%s/events" % NS))["items"]
        return [e for e in evs if e["reason"] == "FailedCreate" and e["involvedObject"]["name"] == "rc"]
    ev = wait_for(failed_create, what="FailedCreate event")[0]
    assert ev["type"] == "Warning" and 'RuntimeClass "nvidia" not found' in ev["message"]
    assert ev["involvedObject"]["kind"] == "DaemonSet" and ev["source"]["component"] == "daemonset-controller"
    assert pods_of(sim, "rc") == []
    st = ds_status(sim, "rc")
    assert st["desiredNumberScheduled"] == 2 and st["currentNumberScheduled"] == 0
    ok(sim.post("/apis/node.k8s.io/v1/runtimeclasses",
                {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"},
                 "handler": "nvidia"}))
    wait_for(lambda: ready_everywhere(sim, "rc", 2), what="pods once the RuntimeClass exists")
    evs = ok(sim.get("/api/v1/namespaces/%s/events" % NS))["items"]
    created = [e for e in evs if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"] == "rc"]
    assert len(created) == 1 and created[0]["count"] == 2 and created[0]["message"].startswith("Created pod: rc-")


def test_controller_revisions_and_rollout_history(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(sim.post(DS_PATH, daemonset("hist", image="example/op:1")))
    wait_for(lambda: ready_everywhere(sim, "hist", 1), what="v1")
    ok(sim.patch("%s/hist" % DS_PATH, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "example/op:2"}]}}}}, "application/strategic-merge-patch+json"))
    wait_for(lambda: ready_everywhere(sim, "hist", 1), what="v2")
    revs = ok(sim.get("/apis/apps/v1/namespaces/%s/controllerrevisions" % NS))["items"]
    revs = sorted((r for r in revs if r["metadata"]["name"].startswith("hist-")), key=lambda r: r["revision"])
    assert [r["revision"] for r in revs] == [1, 2]
    pod = pods_of(sim, "hist")[0]
    assert revs[1]["metadata"]["name"] == "hist-" + pod["metadata"]["labels"]["controller-revision-hash"]
    assert revs[1]["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "example/op:2"
    assert revs[1]["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    r = sim.kubectl("rollout", "history", "daemonset/hist", "-n", NS)
    assert "REVISION" in r.stdout and "1 " in r.stdout and "2 " in r.stdout
    ok(sim.delete("%s/hist" % DS_PATH))
    wait_for(lambda: not [r for r in ok(sim.get("/apis/apps/v1/namespaces/%s/controllerrevisions" % NS))["items"]
                          if r["metadata"]["name"].startswith("hist-")], what="revisions collected")
    no_errors(sim)


# ---- kubelet failure injection -----------------------------------------------------------------------------------

def test_fail_and_recover_pods_on_a_node(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.2)
    drv_labels = {"app": "drv", "app.kubernetes.io/component": "driver"}
    ok(sim.post(DS_PATH, daemonset("drv", labels=drv_labels)))
    ok(sim.post(DS_PATH, daemonset("other")))
    wait_for(lambda: ready_everywhere(sim, "drv", 2) and ready_everywhere(sim, "other", 2), what="all ready")
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-1", "labelSelector": "app.kubernetes.io/component=driver",
                                "reason": "CrashLoopBackOff"}))

    def failing():
        p = [p for p in pods_of(sim, "drv") if p["spec"]["nodeName"] == "gpu-node-1"][0]
        cs = p["status"]["containerStatuses"][0]
        return not is_ready(p) and cs["restartCount"] >= 2 and p
    p = wait_for(failing, timeout=8, what="crash loop with growing restartCount")
    cs = p["status"]["containerStatuses"][0]
    assert cs["ready"] is False and cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    wait_for(lambda: ds_status(sim, "drv").get("numberReady") == 1, what="numberReady 1")
    st = ds_status(sim, "drv")
    assert st["numberUnavailable"] == 1 and st["numberAvailable"] == 1
    assert ds_status(sim, "other")["numberReady"] == 2, "other DaemonSets' pods are unaffected"
    # a replacement pod on that node fails too (the rule covers future pods)
    ok(sim.delete("/api/v1/namespaces/%s/pods/%s" % (NS, p["metadata"]["name"])))
    time.sleep(1.0)
    again = [q for q in pods_of(sim, "drv") if q["spec"]["nodeName"] == "gpu-node-1"]
    assert again and again[0]["metadata"]["name"] != p["metadata"]["name"] and not is_ready(again[0])
    ok(adm(sim, "/_sim/recover", {"node": "gpu-node-1", "labelSelector": "app.kubernetes.io/component=driver"}))
    wait_for(lambda: ready_everywhere(sim, "drv", 2), what="recovered")
    healed = [q for q in pods_of(sim, "drv") if q["spec"]["nodeName"] == "gpu-node-1"][0]
    assert healed["status"]["containerStatuses"][0]["restartCount"] >= 1
    assert "running" in healed["status"]["containerStatuses"][0]["state"]
    no_errors(sim)


def test_fail_by_daemonset_name_and_bad_selector(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    ok(sim.post(DS_PATH, daemonset("v")))
    wait_for(lambda: ready_everywhere(sim, "v", 1), what="ready")
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-0", "daemonset": "v", "reason": "ImagePullBackOff",
                                "message": "pull failed"}))
    p = wait_for(lambda: [p for p in pods_of(sim, "v") if not is_ready(p)], what="not ready")[0]
    assert p["status"]["containerStatuses"][0]["state"]["waiting"] == {"reason": "ImagePullBackOff",
                                                                     "message": "pull failed"}
    rules = ok(adm(sim, "/_sim/fail", method="GET"))["rules"]
    assert rules == [{"node": "gpu-node-0", "daemonset": "v", "reason": "ImagePullBackOff", "message": "pull failed"}]
    status, body = adm(sim, "/_sim/fail", {"node": "gpu-node-0", "labelSelector": "a in (b"})[:2]
    assert status == 400 and "label selector" in body["message"]
    ok(adm(sim, "/_sim/recover", {"node": "gpu-node-0"}))
    wait_for(lambda: ready_everywhere(sim, "v", 1), what="recovered")



def test_fail_with_termination_message_and_exit_code(kubesim):
    # As a kubelet shows a container that wrote its termination log and exited non-zero: waiting
    # CrashLoopBackOff, lastState.terminated {reason Error, exitCode, message = the log}.
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    ok(sim.post(DS_PATH, daemonset("val")))
    wait_for(lambda: ready_everywhere(sim, "val", 2), what="ready")
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-1", "daemonset": "val",
                                "terminationMessage": "NoDevice: NVML reports 0 devices", "exitCode": 12}))

    def failing():
        p = [p for p in pods_of(sim, "val") if p["spec"]["nodeName"] == "gpu-node-1"][0]
        return not is_ready(p) and p
    cs = wait_for(failing, what="crash loop")["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    term = cs["lastState"]["terminated"]
    assert term["reason"] == "Error" and term["exitCode"] == 12
    assert term["message"] == "NoDevice: NVML reports 0 devices"
    assert term["startedAt"] and term["finishedAt"]
    other = [p for p in pods_of(sim, "val") if p["spec"]["nodeName"] == "gpu-node-0"][0]
    assert is_ready(other) and "lastState" not in other["status"]["containerStatuses"][0]
    rules = ok(adm(sim, "/_sim/fail", method="GET"))["rules"]
    assert rules[0]["terminationMessage"] == "NoDevice: NVML reports 0 devices" and rules[0]["exitCode"] == 12
    for bad in ({"exitCode": 0}, {"exitCode": "12"}, {"exitCode": True}, {"terminationMessage": 5}):
        status, body = adm(sim, "/_sim/fail", dict({"node": "gpu-node-0"}, **bad))[:2]
        assert status == 400 and list(bad)[0] in body["message"], (bad, body)
    # Healed, the container runs again and keeps its last termination (as a kubelet does).
    ok(adm(sim, "/_sim/recover", {"node": "gpu-node-1"}))
    wait_for(lambda: ready_everywhere(sim, "val", 2), what="recovered")
    healed = [p for p in pods_of(sim, "val") if p["spec"]["nodeName"] == "gpu-node-1"][0]
    cs = healed["status"]["containerStatuses"][0]
    assert "running" in cs["state"] and cs["lastState"]["terminated"]["exitCode"] == 12
    assert ok(adm(sim, "/_sim/fail", method="GET"))["rules"] == []
    no_errors(sim)

# ---- device plugin effect ---------------------------------------------------------------------------------------------

def test_device_plugin_advertises_gpus_while_ready(kubesim):
    sim = kubesim(gpu_nodes=2, gpus_per_node=8, cpu_nodes=1, pod_ready_delay=0.2)
    dp_labels = {"app": "nvidia-device-plugin-daemonset", "app.kubernetes.io/component": "device-plugin"}
    ok(sim.post(DS_PATH, daemonset("dp", labels=dp_labels)))  # no nodeSelector: also lands on the CPU node
    wait_for(lambda: ready_everywhere(sim, "dp", 3), what="device plugin ready")

    def gpus(name):
        st = node(sim, name)["status"]
        return st["capacity"].get("nvidia.com/gpu"), st["allocatable"].get("nvidia.com/gpu")
    wait_for(lambda: gpus("gpu-node-0") == ("8", "8") and gpus("gpu-node-1") == ("8", "8"), what="8 GPUs")
    assert gpus("cpu-node-0") == (None, None)
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-0", "daemonset": "dp"}))
    wait_for(lambda: gpus("gpu-node-0") == (None, None), what="GPUs gone while the plugin is not Ready")
    assert gpus("gpu-node-1") == ("8", "8")
    ok(adm(sim, "/_sim/recover", {"node": "gpu-node-0"}))
    wait_for(lambda: gpus("gpu-node-0") == ("8", "8"), what="GPUs back")
    ok(sim.delete("%s/dp" % DS_PATH))
    wait_for(lambda: gpus("gpu-node-0") == (None, None) and gpus("gpu-node-1") == (None, None),
             what="GPUs gone with the plugin pods")
    no_errors(sim)


# ---- garbage collector -------------------------------------------------------------------------------------------------

def test_garbage_collector_deletes_dependents(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0)
    owner = ok(sim.post("/api/v1/namespaces/default/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
           "controller": True}
    ok(sim.post("/api/v1/namespaces/default/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dep", "ownerReferences": [ref]}}))
    ok(sim.post("/api/v1/namespaces/default/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "free"}}))
    ds = daemonset("gc")
    ds["metadata"]["ownerReferences"] = [dict(ref, kind="ConfigMap")]
    ds["metadata"]["namespace"] = "default"
    ok(sim.post("/apis/apps/v1/namespaces/default/daemonsets", ds))
    wait_for(lambda: len(ok(sim.get("/api/v1/namespaces/default/pods"))["items"]) == 2, what="gc pods")
    time.sleep(0.3)
    assert sim.get("/api/v1/namespaces/default/configmaps/dep")[0] == 200
    ok(sim.delete("/api/v1/namespaces/default/configmaps/owner"))
    # the chain: owner -> dep (ConfigMap) and owner -> DaemonSet -> pods
    wait_for(lambda: sim.get("/api/v1/namespaces/default/configmaps/dep")[0] == 404, what="dependent collected")
    wait_for(lambda: sim.get("/apis/apps/v1/namespaces/default/daemonsets/gc")[0] == 404, what="DS collected")
    wait_for(lambda: not ok(sim.get("/api/v1/namespaces/default/pods"))["items"], what="pods collected")
    assert sim.get("/api/v1/namespaces/default/configmaps/free")[0] == 200
    no_errors(sim)


def test_dangling_owner_reference_is_collected(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    ds = ok(sim.post(DS_PATH, daemonset("gone")))
    ok(sim.delete("%s/gone" % DS_PATH))
    ref = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "gone", "uid": ds["metadata"]["uid"],
           "controller": True}
    ok(sim.post("/api/v1/namespaces/%s/configmaps" % NS,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan", "ownerReferences": [ref]}}))
    wait_for(lambda: sim.get("/api/v1/namespaces/%s/configmaps/orphan" % NS)[0] == 404, what="orphan collected")


def test_gc_scope_rules(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    owner = ok(sim.post("/api/v1/namespaces/kube-system/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    # a namespaced owner in another namespace does not resolve: the dependent is collected
    ok(sim.post("/api/v1/namespaces/default/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cross", "ownerReferences": [ref]}}))
    # a cluster-scoped dependent of a namespaced owner is never collected
    ok(sim.post("/apis/node.k8s.io/v1/runtimeclasses",
                {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "handler": "x",
                 "metadata": {"name": "scoped", "ownerReferences": [ref]}}))
    # a same-namespace dependent of a live owner stays
    ok(sim.post("/api/v1/namespaces/kube-system/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same", "ownerReferences": [ref]}}))
    wait_for(lambda: sim.get("/api/v1/namespaces/default/configmaps/cross")[0] == 404, what="cross collected")
    time.sleep(0.3)
    assert sim.get("/api/v1/namespaces/kube-system/configmaps/same")[0] == 200
    assert sim.get("/apis/node.k8s.io/v1/runtimeclasses/scoped")[0] == 200
    ok(sim.delete("/api/v1/namespaces/kube-system/configmaps/owner"))
    wait_for(lambda: sim.get("/api/v1/namespaces/kube-system/configmaps/same")[0] == 404, what="same collected")
    time.sleep(0.3)
    assert sim.get("/apis/node.k8s.io/v1/runtimeclasses/scoped")[0] == 200
    no_errors(sim)


def test_namespace_deletion_deletes_its_contents(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    ok(sim.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}}))
    ok(sim.post("/api/v1/namespaces/scratch/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
    ds = daemonset("tmp")
    ds["metadata"]["namespace"] = "scratch"
    ok(sim.post("/apis/apps/v1/namespaces/scratch/daemonsets", ds))
    wait_for(lambda: ok(sim.get("/api/v1/namespaces/scratch/pods"))["items"], what="pod in scratch")
    ok(sim.delete("/api/v1/namespaces/scratch"))
    wait_for(lambda: not ok(sim.get("/api/v1/namespaces/scratch/configmaps"))["items"]
             and not ok(sim.get("/apis/apps/v1/namespaces/scratch/daemonsets"))["items"]
             and not ok(sim.get("/api/v1/namespaces/scratch/pods"))["items"], what="namespace emptied")
    assert sim.get("/api/v1/namespaces/default/configmaps")[0] == 200


# ---- admin: heartbeats, touch-nodes, status ---------------------------------------------------------------------------

def test_touch_nodes_and_heartbeat(kubesim):
    sim = kubesim(gpu_nodes=3, cpu_nodes=1)
    body = ok(adm(sim, "/_sim/touch-nodes", {"label": "bench", "value": "1"}))
    assert body["touched"] == 4
    assert all(n["metadata"]["labels"]["bench"] == "1" for n in ok(sim.get("/api/v1/nodes"))["items"])
    assert ok(adm(sim, "/_sim/touch-nodes", {"label": "bench", "value": "1"}))["touched"] == 0  # no-op
    before = node(sim, "gpu-node-0")
    time.sleep(1.1)  # heartbeat times have whole-second resolution
    ok(adm(sim, "/_sim/heartbeat"))
    ok(adm(sim, "/_sim/settle"))

    def beat():
        after = node(sim, "gpu-node-0")
        hb = {c["type"]: c["lastHeartbeatTime"] for c in after["status"]["conditions"]}
        old = {c["type"]: c["lastHeartbeatTime"] for c in before["status"]["conditions"]}
        return hb["Ready"] != old["Ready"] and after
    after = wait_for(beat, what="heartbeat")
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    tr = {c["type"]: c["lastTransitionTime"] for c in after["status"]["conditions"]}
    assert tr == {c["type"]: c["lastTransitionTime"] for c in before["status"]["conditions"]}
    assert adm(sim, "/_sim/touch-nodes", {})[0] == 400
    assert adm(sim, "/_sim/no-such-thing")[0] == 404


def test_heartbeat_flag_bumps_heartbeats_only(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, extra_args=["--heartbeat", "0.5"])
    before = node(sim, "gpu-node-0")

    def beat():
        after = node(sim, "gpu-node-0")
        hb = [c["lastHeartbeatTime"] for c in after["status"]["conditions"] if c["type"] == "Ready"][0]
        old = [c["lastHeartbeatTime"] for c in before["status"]["conditions"] if c["type"] == "Ready"][0]
        return hb != old and after
    after = wait_for(beat, timeout=5, what="periodic heartbeat")
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert after["spec"] == before["spec"]
    assert ok(adm(sim, "/_sim/status", method="GET"))["counters"]["heartbeats"] >= 1
    no_errors(sim)


def test_state_restart_keeps_the_cluster_running(kubesim, tmp_path):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, state=str(tmp_path / "state.json"))
    dp_labels = {"app": "dp", "app.kubernetes.io/component": "device-plugin"}
    ok(sim.post(DS_PATH, daemonset("dp", labels=dp_labels)))
    wait_for(lambda: ready_everywhere(sim, "dp", 2), what="ready before restart")
    wait_for(lambda: node(sim, "gpu-node-1")["status"]["allocatable"].get("nvidia.com/gpu") == "8", what="GPUs")
    names = sorted(p["metadata"]["name"] for p in pods_of(sim, "dp"))
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-0", "daemonset": "dp"}))
    wait_for(lambda: ds_status(sim, "dp").get("numberReady") == 1, what="one failing before restart")
    sim.restart()
    assert sorted(p["metadata"]["name"] for p in pods_of(sim, "dp")) == names, "running pods are kept"
    # failure rules are not persisted: the failing pod runs again after the restart
    wait_for(lambda: ready_everywhere(sim, "dp", 2), what="all ready after restart")
    assert ok(adm(sim, "/_sim/fail", method="GET"))["rules"] == []
    # the rebuilt caches keep working: a new node gets a pod, GPUs stay advertised
    ok(adm(sim, "/_sim/nodes", {"name": "gpu-late", "gpus": 4}))
    wait_for(lambda: ready_everywhere(sim, "dp", 3), what="pod on a node added after restart")
    wait_for(lambda: node(sim, "gpu-late")["status"]["allocatable"].get("nvidia.com/gpu") == "4", what="4 GPUs")
    assert node(sim, "gpu-node-1")["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    no_errors(sim)


def test_node_not_ready_taints_node_and_unreadies_its_pods(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0)
    ok(sim.post(DS_PATH, daemonset("nr")))
    wait_for(lambda: ready_everywhere(sim, "nr", 2), what="ready")
    ok(adm(sim, "/_sim/nodes/gpu-node-0/ready", {"ready": False}))
    n = node(sim, "gpu-node-0")
    ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "Unknown"
    assert {(t["key"], t["effect"]) for t in n["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    pod = [p for p in pods_of(sim, "nr") if p["spec"]["nodeName"] == "gpu-node-0"][0]
    assert not is_ready(pod) and pod["status"]["phase"] == "Running"
    wait_for(lambda: ds_status(sim, "nr").get("numberReady") == 1, what="numberReady 1")
    # as in kube-controller-manager: the untolerated unreachable:NoSchedule taint takes the node out of
    # desired (the pod there counts as misscheduled), while the tolerated NoExecute one lets it stay
    st = ds_status(sim, "nr")
    assert st["desiredNumberScheduled"] == 1 and st["numberMisscheduled"] == 1
    assert len(pods_of(sim, "nr")) == 2
    ok(adm(sim, "/_sim/nodes/gpu-node-0/ready", {"ready": True}))
    n = node(sim, "gpu-node-0")
    assert "taints" not in n["spec"]
    assert [c for c in n["status"]["conditions"] if c["type"] == "Ready"][0]["status"] == "True"
    wait_for(lambda: ready_everywhere(sim, "nr", 2), what="ready again")
    no_errors(sim)


# ---- kubectl ---------------------------------------------------------------------------------------------------------

def test_kubectl_rollout_status_daemonset(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.3)
    manifest = json.dumps(daemonset("ko", node_selector=GPU_SELECTOR))
    sim.kubectl("apply", "-f", "-", input=manifest)
    r = sim.kubectl("rollout", "status", "daemonset/ko", "-n", NS, "--timeout=30s", timeout=40)
    assert "successfully rolled out" in r.stdout
    r = sim.kubectl("get", "pods", "-n", NS, "-l", "app=ko", "-o", "wide")
    assert r.stdout.count("Running") == 2 and "gpu-node-0" in r.stdout and "gpu-node-1" in r.stdout


# ---- pure functions ----------------------------------------------------------------------------------------------------

def test_toleration_rules():
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert placement.toleration_matches({"key": "nvidia.com/gpu", "operator": "Exists"}, taint)
    assert placement.toleration_matches({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, taint)
    assert not placement.toleration_matches({"key": "nvidia.com/gpu", "value": "absent"}, taint)
    assert not placement.toleration_matches({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"},
                                            taint)
    assert placement.toleration_matches({"operator": "Exists"}, taint)
    assert not placement.toleration_matches({"value": "present"}, taint)
    assert placement.taints_tolerated([dict(taint, effect="PreferNoSchedule")], [])
    node = {"name": "n", "labels": {}, "taints": [], "unschedulable": True}
    assert placement.node_should_run({}, placement.daemon_tolerations({}), node)
    assert not placement.node_should_run({}, [], node)


def test_node_affinity_operators():
    labels = {"zone": "a", "gpus": "8"}
    terms = [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                                   {"key": "gpus", "operator": "Gt", "values": ["4"]}]}]
    assert placement.node_selector_terms_match(terms, "n", labels)
    terms[0]["matchExpressions"][1]["operator"] = "Lt"
    assert not placement.node_selector_terms_match(terms, "n", labels)
    assert placement.node_selector_terms_match([{}, {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}],
                                               "n", labels)
    assert not placement.node_selector_terms_match([{}], "n", labels)
    assert placement.node_selector_terms_match(
        [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}], "n", labels)


def test_label_selector_parsing():
    reqs = placement.parse_label_selector("a=b,c!=d,e in (f, g),h notin (i),j,!k")
    assert reqs == [("a", "=", ["b"]), ("c", "!=", ["d"]), ("e", "in", ["f", "g"]), ("h", "notin", ["i"]),
                    ("j", "exists", []), ("k", "!exists", [])]
    assert placement.labels_match(reqs, {"a": "b", "e": "g", "j": ""})
    assert not placement.labels_match(reqs, {"a": "b", "e": "g", "j": "", "k": "1"})
    with pytest.raises(ValueError):
        placement.parse_label_selector("a in (b")
    with pytest.raises(ValueError):
        placement.parse_label_selector("a=b,,c")


def test_template_hash_is_stable_and_sensitive():
    t1 = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "x", "image": "i:1"}]}}
    t2 = {"spec": {"containers": [{"image": "i:1", "name": "x"}]}, "metadata": {"labels": {"b": "2", "a": "1"}}}
    assert placement.template_hash(t1) == placement.template_hash(t2)
    t2["spec"]["containers"][0]["image"] = "i:2"
    assert placement.template_hash(t1) != placement.template_hash(t2)
    assert set(placement.template_hash(t1)) <= set(placement.SAFE_ALPHABET)


def test_fleet_builder_is_deterministic_and_distinct():
    a = fleet.build_node("gpu-node-0", 0, True, 8, created="2024-01-01T00:00:00Z")
    b = fleet.build_node("gpu-node-0", 0, True, 8, created="2024-01-01T00:00:00Z")
    c = fleet.build_node("gpu-node-1", 1, True, 8, created="2024-01-01T00:00:00Z")
    assert a == b
    assert a["status"]["nodeInfo"]["machineID"] != c["status"]["nodeInfo"]["machineID"]
    assert a["status"]["addresses"][0]["address"] != c["status"]["addresses"][0]["address"]
    t4 = fleet.build_node("t4", 2, True, 1, product="Tesla-T4")
    assert t4["metadata"]["labels"]["nvidia.com/gpu.memory"] == "15360"
    assert t4["metadata"]["labels"]["nvidia.com/mig.capable"] == "false"


class _P:
    """A light pod as daemonset.plan/compute_status see it."""

    def __init__(self, node, seq, hash_, ready=True, ready_since=0.0, deleting=False):
        self.node, self.seq, self.ready, self.ready_since, self.deleting = node, seq, ready, ready_since, deleting
        self.labels = {"controller-revision-hash": hash_}
        self.name = "p%d" % seq


def _template(strategy=None, min_ready=0):
    ds = daemonset("t", strategy=strategy)
    ds["metadata"].update({"uid": "u1", "generation": 3})
    if min_ready:
        ds["spec"]["minReadySeconds"] = min_ready
    return dsmod.Template(ds)


def test_plan_places_dedupes_and_evicts():
    t = _template()
    by_node = {"a": [_P("a", 1, t.hash), _P("a", 2, t.hash)], "gone": [_P("gone", 3, t.hash)]}
    creates, deletes = dsmod.plan(t, {"a", "b"}, by_node, now=100.0)
    assert creates == ["b"]
    assert sorted(p.seq for p in deletes) == [2, 3]  # the younger duplicate, and the pod off its node


def test_plan_rolling_update_budget():
    t = _template({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}})
    nodes = {"n%d" % i for i in range(4)}
    by_node = {n: [_P(n, i, "old")] for i, n in enumerate(sorted(nodes))}
    _, deletes = dsmod.plan(t, nodes, by_node, now=100.0)
    assert len(deletes) == 2  # 50% of 4
    by_node["n0"][0].ready = False
    # a broken old pod is replaced for free, on top of the budget (update.go allowedReplacementPods)
    _, deletes = dsmod.plan(t, nodes, by_node, now=100.0)
    assert [p.node for p in deletes][0] == "n0" and len(deletes) == 3
    t_od = _template({"type": "OnDelete"})
    assert dsmod.plan(t_od, nodes, by_node, now=100.0) == ([], [])


def test_status_counts_and_min_ready():
    t = _template(min_ready=10)
    by_node = {"a": [_P("a", 1, t.hash, ready_since=95.0)], "b": [_P("b", 2, "old", ready_since=50.0)],
               "c": [_P("c", 3, t.hash, ready=False)], "x": [_P("x", 4, t.hash)]}
    status, recheck = dsmod.compute_status(t, {"a", "b", "c", "d"}, by_node, now=100.0)
    assert status == {"currentNumberScheduled": 3, "numberMisscheduled": 1, "desiredNumberScheduled": 4,
                      "numberReady": 2, "observedGeneration": 3, "updatedNumberScheduled": 2,
                      "numberAvailable": 1, "numberUnavailable": 3}
    assert recheck == 5.0  # a's minReadySeconds ends in 5 s
    empty, _ = dsmod.compute_status(t, set(), {}, now=0.0)
    assert empty == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                     "numberReady": 0, "observedGeneration": 3}


def test_node_fit_keeps_running_pods_on_no_schedule_taints():
    tols = placement.daemon_tolerations({})
    node = {"name": "n", "labels": {}, "unschedulable": False,
            "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}
    assert placement.node_fit({}, tols, node) == (False, True)
    node["taints"].append({"key": "dedicated", "value": "x", "effect": "NoExecute"})
    assert placement.node_fit({}, tols, node) == (False, False)
    t = _template()
    by_node = {"n": [_P("n", 1, t.hash)]}
    assert dsmod.plan(t, set(), by_node, now=0.0, keep={"n"}) == ([], [])
    assert [p.seq for p in dsmod.plan(t, set(), by_node, now=0.0)[1]] == [1]
