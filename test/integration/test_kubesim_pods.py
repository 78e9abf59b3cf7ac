"""kubesim's pods as a kubelet, the scheduler and the DaemonSet controller show them (issue 14).

One test per state a real cluster spends time in, checking the field shapes kube-apiserver would
serve: graceful deletion, a RollingUpdate stalled by an unreachable node, restarted containers in
their start-up window, unscheduled DaemonSet pods, pods that never start, Failed pods recreated with
back-off, failing init containers, and UTC parsing under daylight-saving time zones.
"""

import os
import subprocess
import sys
import time

from test_kubesim_cluster import DS_PATH, NS, adm, daemonset, ds_status, ok, pods_of, ready_everywhere, wait_for

KUBESIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kubesim")
POD_PATH = "/api/v1/namespaces/%s/pods" % NS


def cond(pod, ctype):
    return next((c for c in pod["status"].get("conditions") or () if c["type"] == ctype), None)


def on_node(sim, ds, node):
    return [p for p in pods_of(sim, ds) if p["spec"].get("nodeName") == node or
            node in str(p["spec"].get("affinity"))]


def one(sim, ds, node):
    got = on_node(sim, ds, node)
    return got[0] if len(got) == 1 else None


def test_graceful_deletion_keeps_the_pod_terminating_and_counted(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    ok(adm(sim, "/_sim/lifecycle", {"daemonset": "g", "stopSeconds": 2}))
    ok(sim.post(DS_PATH, daemonset("g")))
    wait_for(lambda: ready_everywhere(sim, "g", 2), what="ready")
    pod = one(sim, "g", "gpu-node-0")
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    out = ok(sim.delete("%s/%s" % (POD_PATH, pod["metadata"]["name"])))
    # the DELETE answers with the pod marked: deletionTimestamp = now + grace
    assert out["metadata"]["deletionGracePeriodSeconds"] == 30 and out["metadata"]["deletionTimestamp"]
    time.sleep(1.0)
    still = on_node(sim, "g", "gpu-node-0")
    assert [p["metadata"]["name"] for p in still] == [pod["metadata"]["name"]], "no replacement while Terminating"
    assert still[0]["metadata"]["deletionTimestamp"]
    st = ds_status(sim, "g")
    assert st["currentNumberScheduled"] == 2 and st["desiredNumberScheduled"] == 2
    # once its containers stopped (2 s) the kubelet removes it and the DaemonSet controller replaces it
    wait_for(lambda: (lambda ps: len(ps) == 1 and ps[0]["metadata"]["name"] != pod["metadata"]["name"])(
        on_node(sim, "g", "gpu-node-0")), timeout=10, what="replacement")
    # a second delete may shorten the grace period, never lengthen it; gracePeriodSeconds=0 forces
    other = one(sim, "g", "gpu-node-1")
    path = "%s/%s" % (POD_PATH, other["metadata"]["name"])
    first = ok(sim.delete(path, {"gracePeriodSeconds": 20}))
    assert first["metadata"]["deletionGracePeriodSeconds"] == 20
    again = ok(sim.delete(path, {"gracePeriodSeconds": 25}))
    assert again["metadata"]["deletionGracePeriodSeconds"] == 20
    ok(sim.delete(path, {"gracePeriodSeconds": 0}))
    assert sim.get(path)[0] == 404, "a force delete removes the pod at once"


def test_prober_forces_startup_success_once_deletion_starts(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(adm(sim, "/_sim/lifecycle", {"daemonset": "d", "startupSeconds": 60, "stopSeconds": 5}))
    ok(sim.post(DS_PATH, daemonset("d")))
    pod = wait_for(lambda: (lambda p: p if p and p["status"].get("containerStatuses") else None)(
        one(sim, "d", "gpu-node-0")), what="started")
    cs = pod["status"]["containerStatuses"][0]
    assert "running" in cs["state"] and cs["ready"] is False and cs["started"] is False
    assert cond(pod, "Ready")["status"] == "False"
    ok(sim.delete("%s/%s" % (POD_PATH, pod["metadata"]["name"])))
    # startup (and liveness) report success once the pod is being deleted: it turns Ready while Terminating
    term = wait_for(lambda: (lambda p: p if p and cond(p, "Ready")["status"] == "True" else None)(
        one(sim, "d", "gpu-node-0")), what="ready while terminating")
    assert term["metadata"]["deletionTimestamp"] and term["status"]["containerStatuses"][0]["started"] is True


def test_unreachable_node_stalls_a_rolling_update(kubesim):
    sim = kubesim(gpu_nodes=3, cpu_nodes=0, pod_ready_delay=0.1)
    ok(sim.post(DS_PATH, daemonset("r", strategy={"type": "RollingUpdate",
                                                   "rollingUpdate": {"maxUnavailable": 1}})))
    wait_for(lambda: ready_everywhere(sim, "r", 3), what="ready")
    ok(adm(sim, "/_sim/nodes/gpu-node-1/ready", {"ready": False}))
    ok(sim.patch("%s/r" % DS_PATH, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "example/op:2"}]}}}}, "application/strategic-merge-patch+json"))
    # the unready old pod there is deleted at once (it is unavailable anyway) and stays Terminating:
    # nobody runs its kill; that node holds the one unit of maxUnavailable, so nothing else updates
    stuck = wait_for(lambda: [p for p in on_node(sim, "r", "gpu-node-1") if p["metadata"].get("deletionTimestamp")],
                     what="terminating on the unreachable node")[0]
    # in that first pass the unready pod was not yet counted, so one available old pod went too
    # (update.go counts only Terminating-only nodes and unavailable new pods); from then on it is stuck
    wait_for(lambda: ds_status(sim, "r").get("updatedNumberScheduled") == 1 and
             ds_status(sim, "r").get("numberAvailable") == 2, what="one node updated")
    time.sleep(2.0)
    assert [p["metadata"]["name"] for p in on_node(sim, "r", "gpu-node-1")] == [stuck["metadata"]["name"]]
    st = ds_status(sim, "r")
    # the unreachable node's NoSchedule taint takes it out of desired; its pod counts as misscheduled
    assert st.get("updatedNumberScheduled", 0) == 1 and st["numberMisscheduled"] == 1
    assert one(sim, "r", "gpu-node-2")["spec"]["containers"][0]["image"] == "example/op:1"
    # the kubelet comes back: it finishes the kill, and the rollout goes on
    ok(adm(sim, "/_sim/nodes/gpu-node-1/ready", {"ready": True}))
    wait_for(lambda: ds_status(sim, "r").get("updatedNumberScheduled") == 3 and ready_everywhere(sim, "r", 3),
             timeout=15, what="rollout done")


def test_restarted_container_runs_not_ready_through_its_startup_window(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(sim.post(DS_PATH, daemonset("s")))
    wait_for(lambda: ready_everywhere(sim, "s", 1), what="ready")
    ok(adm(sim, "/_sim/lifecycle", {"daemonset": "s", "startupSeconds": 2}))
    assert ok(adm(sim, "/_sim/restart", {"daemonset": "s", "reason": "OOMKilled"}))["restarted"] == 1
    pod = one(sim, "s", "gpu-node-0")
    cs = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Running" and cond(pod, "Ready")["status"] == "False"
    assert "running" in cs["state"] and cs["ready"] is False and cs["started"] is False
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    cs = wait_for(lambda: (lambda c: c if c["ready"] else None)(
        one(sim, "s", "gpu-node-0")["status"]["containerStatuses"][0]), timeout=6, what="ready after the window")
    assert cs["ready"] and cs["started"] and cs["lastState"]["terminated"]["reason"] == "OOMKilled"
    # healing a crash loop restarts the container into the same window
    ok(adm(sim, "/_sim/fail", {"daemonset": "s"}))
    wait_for(lambda: one(sim, "s", "gpu-node-0")["status"]["containerStatuses"][0]["state"].get("waiting"),
             what="crash loop")
    ok(adm(sim, "/_sim/recover", {"daemonset": "s"}))
    cs = wait_for(lambda: (lambda c: c if "running" in c["state"] else None)(
        one(sim, "s", "gpu-node-0")["status"]["containerStatuses"][0]), what="running again")
    assert cs["ready"] is False and cs["lastState"]["terminated"]["reason"] == "Error"


def test_unschedulable_daemon_pod_is_pending_without_a_node(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    ok(adm(sim, "/_sim/unschedulable", {"node": "gpu-node-1", "message": "0/2 nodes are available: "
                                        "1 Insufficient memory."}))
    ok(sim.post(DS_PATH, daemonset("u")))
    wait_for(lambda: ds_status(sim, "u").get("numberReady") == 1, what="one ready")
    pod = wait_for(lambda: (lambda p: p if p and cond(p, "PodScheduled") else None)(one(sim, "u", "gpu-node-1")),
                   what="scheduling attempt")
    assert "nodeName" not in pod["spec"] and pod["status"]["phase"] == "Pending"
    sched = cond(pod, "PodScheduled")
    assert sched["status"] == "False" and sched["reason"] == "Unschedulable"
    assert sched["message"] == "0/2 nodes are available: 1 Insufficient memory."
    # created by the DaemonSet controller for that node: its node affinity names it
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["gpu-node-1"]
    counts = ok(adm(sim, "/_sim/status", method="GET"))
    assert counts["podsUnbound"] == 1 and counts["podsUnschedulable"] == 1
    st = ds_status(sim, "u")
    assert st["desiredNumberScheduled"] == 2 and st["currentNumberScheduled"] == 2 and st["numberReady"] == 1
    ok(adm(sim, "/_sim/unschedulable", method="DELETE"))
    wait_for(lambda: ready_everywhere(sim, "u", 2), what="bound and ready")
    assert one(sim, "u", "gpu-node-1")["spec"]["nodeName"] == "gpu-node-1"


def test_pods_that_never_start_are_pending(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-0", "daemonset": "n", "reason": "ImagePullBackOff"}))
    ok(adm(sim, "/_sim/fail", {"node": "gpu-node-1", "daemonset": "n", "sandbox": True}))
    ok(sim.post(DS_PATH, daemonset("n", image="example/op:404")))
    img = wait_for(lambda: (lambda p: p if p and p["status"].get("containerStatuses") else None)(
        one(sim, "n", "gpu-node-0")), what="image pull failure")
    cs = img["status"]["containerStatuses"][0]
    assert img["status"]["phase"] == "Pending"
    assert cs["state"] == {"waiting": {"reason": "ImagePullBackOff",
                                       "message": 'Back-off pulling image "example/op:404"'}}
    assert cs["restartCount"] == 0 and not cs.get("lastState") and cs["ready"] is False
    assert cond(img, "PodReadyToStartContainers")["status"] == "True"
    sb = wait_for(lambda: (lambda p: p if p and p["status"].get("containerStatuses") else None)(
        one(sim, "n", "gpu-node-1")), what="sandbox failure")
    assert sb["status"]["phase"] == "Pending" and "podIP" not in sb["status"]
    assert sb["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cond(sb, "PodReadyToStartContainers")["status"] == "False"
    time.sleep(1.5)  # no crash loop: nothing restarts
    assert one(sim, "n", "gpu-node-0")["status"]["containerStatuses"][0]["restartCount"] == 0


def test_failed_daemon_pods_are_replaced_with_backoff(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(sim.post(DS_PATH, daemonset("f")))
    wait_for(lambda: ready_everywhere(sim, "f", 1), what="ready")
    first = one(sim, "f", "gpu-node-0")["metadata"]["name"]
    # every pod there fails as it starts (admission reject) from now on, and the current one shuts down
    ok(adm(sim, "/_sim/pod-failed", {"node": "gpu-node-0", "daemonset": "f", "repeat": True,
                                     "reason": "UnexpectedAdmissionError"}))
    wait_for(lambda: first not in [p["metadata"]["name"] for p in pods_of(sim, "f")], what="failed pod replaced")
    failed = wait_for(lambda: [p for p in pods_of(sim, "f") if p["status"].get("phase") == "Failed"], what="failed")
    p = failed[0]
    assert p["status"]["reason"] == "UnexpectedAdmissionError" and cond(p, "Ready")["status"] == "False"
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    # back-off between deletions on that node doubles: 1, 2, 4 s ... so few pods in 4 s
    created0 = ok(adm(sim, "/_sim/status", method="GET"))["counters"]["podsCreated"]
    time.sleep(4.0)
    created = ok(adm(sim, "/_sim/status", method="GET"))["counters"]["podsCreated"] - created0
    assert 1 <= created <= 3, created
    events = ok(sim.get("/api/v1/namespaces/%s/events" % NS))["items"]
    ev = [e for e in events if e["reason"] == "FailedDaemonPod"]
    assert ev and ev[0]["type"] == "Warning" and "will try to kill it" in ev[0]["message"]
    ok(adm(sim, "/_sim/pod-failed", method="DELETE"))
    wait_for(lambda: ready_everywhere(sim, "f", 1), timeout=20, what="healthy pod after back-off")


def test_node_shutdown_failed_pod_shape(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(sim.post(DS_PATH, daemonset("x")))
    wait_for(lambda: ready_everywhere(sim, "x", 1), what="ready")
    rv = ok(sim.get(POD_PATH))["metadata"]["resourceVersion"]
    w = sim.watch(POD_PATH, query={"resourceVersion": rv, "timeoutSeconds": "10"})
    try:
        assert ok(adm(sim, "/_sim/pod-failed", {"daemonset": "x"}))["failed"] == 1
        evs = w.collect(until=lambda ev: ev["type"] == "MODIFIED" and
                        ev["object"]["status"].get("phase") == "Failed")
    finally:
        w.close()
    st = evs[-1]["object"]["status"]
    assert st["reason"] == "Terminated"
    assert st["message"] == "Pod was terminated in response to imminent node shutdown."
    dt = [c for c in st["conditions"] if c["type"] == "DisruptionTarget"][0]
    assert dt["status"] == "True" and dt["reason"] == "TerminationByKubelet"
    assert all(c["status"] == "False" for c in st["conditions"] if c["type"] in ("Ready", "ContainersReady"))
    # deleted at once (grace 0: terminal) and replaced
    wait_for(lambda: (lambda p: p and p["status"].get("phase") == "Running" and not p["metadata"].get(
        "deletionTimestamp"))(one(sim, "x", "gpu-node-0")), what="replaced")


def test_failing_init_container_shape(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ds = daemonset("i")
    ds["spec"]["template"]["spec"]["initContainers"] = [{"name": "wait-driver", "image": "example/init:1"}]
    ok(adm(sim, "/_sim/fail", {"daemonset": "i", "initContainer": "wait-driver", "exitCode": 2,
                               "terminationMessage": "driver not ready: /run/nvidia/validations missing"}))
    ok(sim.post(DS_PATH, ds))
    pod = wait_for(lambda: (lambda p: p if p and p["status"].get("initContainerStatuses") else None)(
        one(sim, "i", "gpu-node-0")), what="init failing")
    st = pod["status"]
    assert st["phase"] == "Pending"
    init = cond(pod, "Initialized")
    assert init["status"] == "False" and init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [wait-driver]"
    ics = st["initContainerStatuses"][0]
    assert ics["state"]["waiting"]["reason"] == "CrashLoopBackOff" and ics["restartCount"] >= 1
    assert ics["lastState"]["terminated"]["exitCode"] == 2
    assert ics["lastState"]["terminated"]["message"] == "driver not ready: /run/nvidia/validations missing"
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    wait_for(lambda: one(sim, "i", "gpu-node-0")["status"]["initContainerStatuses"][0]["restartCount"] >= 2,
             timeout=5, what="init restarts grow")
    ok(adm(sim, "/_sim/recover", {"daemonset": "i"}))
    wait_for(lambda: ready_everywhere(sim, "i", 1), what="initialized and ready")
    ics = one(sim, "i", "gpu-node-0")["status"]["initContainerStatuses"][0]
    assert ics["state"]["terminated"]["reason"] == "Completed"


def test_parse_rfc3339_is_utc_under_daylight_saving_time():
    # mktime() - timezone is an hour off while the local zone is on DST (America/New_York in July)
    code = ("import sys; sys.path.insert(0, %r); import cluster; "
            "print(int(cluster.parse_rfc3339('2024-07-01T12:00:00Z')), "
            "int(cluster.parse_rfc3339('2024-01-01T12:00:00Z')))" % KUBESIM_DIR)
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TZ="America/New_York"),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1719835200", "1704110400"]
