"""kubesim's voluntary-disruption surface (issue 12): policy/v1 PodDisruptionBudgets and their status,
the pods/eviction subresource, apps/v1 ReplicaSets, GPU-aware scheduling of workload pods, cordon.

Each test checks the field shapes kube-apiserver and kube-controller-manager produce (see
docs/kubesim.md, "Voluntary disruption", for the rule and its Kubernetes source).
"""

import time

import pytest

from test_kubesim_cluster import adm, daemonset, no_errors, ok, wait_for

NS = "default"
PDB_PATH = "/apis/policy/v1/namespaces/%s/poddisruptionbudgets" % NS
RS_PATH = "/apis/apps/v1/namespaces/%s/replicasets" % NS
POD_PATH = "/api/v1/namespaces/%s/pods" % NS
EVICT_MSG = "Cannot evict pod as it would violate the pod's disruption budget."


def pdb(name, selector, min_available=None, max_unavailable=None, **spec):
    body = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": NS},
            "spec": dict(spec, selector=selector)}
    if min_available is not None:
        body["spec"]["minAvailable"] = min_available
    if max_unavailable is not None:
        body["spec"]["maxUnavailable"] = max_unavailable
    return body


def pod(name, labels, node=None, gpus=0, tolerations=None):
    c = {"name": "main", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"}
    if gpus:
        c["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    spec = {"containers": [c]}
    if node:
        spec["nodeName"] = node
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": spec}


def replicaset(name, replicas, gpus=1, labels=None):
    labels = labels or {"app": name}
    c = {"name": "main", "image": "nvcr.io/nvidia/pytorch:24.05-py3"}
    if gpus:
        c["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [c]}}}}


def eviction(name, **delete_options):
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


def evict(sim, name, **opts):
    return sim.post("%s/%s/eviction" % (POD_PATH, name), eviction(name, **opts))


def get_pdb(sim, name):
    return ok(sim.get("%s/%s" % (PDB_PATH, name)))


def synced(sim, name, **want):
    """The PDB once the disruption controller has written a status with these values."""
    def check():
        p = get_pdb(sim, name)
        st = p.get("status") or {}
        if st.get("observedGeneration") != p["metadata"]["generation"]:
            return None
        return p if all(st.get(k) == v for k, v in want.items()) else None
    return wait_for(check, what="PDB %s with %r" % (name, want))


def pods(sim, selector=None):
    q = {"labelSelector": selector} if selector else None
    return ok(sim.get(POD_PATH, query=q))["items"]


def ready(p):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or ())


def running_pods(sim, selector, n):
    def check():
        got = [p for p in pods(sim, selector) if ready(p) and not p["metadata"].get("deletionTimestamp")]
        return got if len(got) == n else None
    return wait_for(check, what="%d ready pods %s" % (n, selector))


def device_plugin(sim):
    """GPUs become allocatable once a device plugin pod is Ready on each GPU node."""
    ds = daemonset("nvidia-device-plugin", node_selector={"feature.node.kubernetes.io/pci-10de.present": "true"},
                   labels={"app": "nvidia-device-plugin", "app.kubernetes.io/component": "device-plugin"})
    ok(sim.post("/apis/apps/v1/namespaces/kube-system/daemonsets", ds))
    wait_for(lambda: all((n["status"].get("allocatable") or {}).get("nvidia.com/gpu")
                         for n in ok(sim.get("/api/v1/nodes"))["items"] if n["metadata"]["name"].startswith("gpu")),
             what="GPUs allocatable")


# ---- API surface -------------------------------------------------------------------------------------------

def test_discovery_openapi_and_table(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    groups = ok(sim.get("/apis"))["groups"]
    assert {"name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "policy/v1", "version": "v1"}} in groups
    res = {r["name"]: r for r in ok(sim.get("/apis/policy/v1"))["resources"]}
    assert res["poddisruptionbudgets"]["shortNames"] == ["pdb"] and res["poddisruptionbudgets"]["namespaced"]
    assert res["poddisruptionbudgets/status"]["verbs"] == ["get", "patch", "update"]
    # kubectl drain reads the Eviction version from the pods/eviction entry of /api/v1
    core = {r["name"]: r for r in ok(sim.get("/api/v1"))["resources"]}
    assert core["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                     "kind": "Eviction", "verbs": ["create"], "group": "policy", "version": "v1"}
    apps = {r["name"]: r for r in ok(sim.get("/apis/apps/v1"))["resources"]}
    assert apps["replicasets"]["shortNames"] == ["rs"] and apps["replicasets/scale"]["kind"] == "Scale"
    doc = ok(sim.get("/openapi/v3/apis/policy/v1"))
    assert "io.k8s.api.policy.v1.PodDisruptionBudget" in doc["components"]["schemas"]
    # a new PDB reads 0/0/0/0 (those status fields have no omitempty) until the controller syncs it
    created = ok(sim.post(PDB_PATH, pdb("a", {"matchLabels": {"app": "x"}}, min_available="50%")))
    assert created["metadata"]["generation"] == 1
    ok(sim.post(PDB_PATH, pdb("b", {"matchLabels": {"app": "x"}}, max_unavailable=1)))
    table = ok(sim.get(PDB_PATH, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}))
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Min Available", "Max Unavailable",
                                                               "Allowed Disruptions", "Age"]
    assert [r["cells"][:4] for r in table["rows"]] == [["a", "50%", "N/A", 0], ["b", "N/A", "1", 0]]


def test_pdb_validation(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    sel = {"matchLabels": {"app": "x"}}
    code, out, _ = sim.post(PDB_PATH, pdb("both", sel, min_available=1, max_unavailable=1))
    assert code == 422 and out["details"]["causes"][0]["field"] == "spec"
    assert out["details"]["causes"][0]["message"].endswith("minAvailable and maxUnavailable cannot be both set")
    code, out, _ = sim.post(PDB_PATH, pdb("pct", sel, min_available="50x"))
    assert code == 422 and out["details"]["causes"][0]["field"] == "spec.minAvailable"
    assert "a valid percent string must be a numeric string followed by an ending '%'" in out["message"]
    code, out, _ = sim.post(PDB_PATH, pdb("big", sel, max_unavailable="150%"))
    assert code == 422 and "must not be greater than 100%" in out["message"]
    code, out, _ = sim.post(PDB_PATH, pdb("neg", sel, min_available=-1))
    assert code == 422 and out["details"]["causes"][0]["message"] == \
        "Invalid value: -1: must be greater than or equal to 0"
    code, out, _ = sim.post(PDB_PATH, pdb("op", {"matchExpressions": [{"key": "app", "operator": "Has"}]},
                                          min_available=1))
    assert code == 422 and out["details"]["causes"][0]["field"] == "spec.selector.matchExpressions[0].operator"
    code, out, _ = sim.post(PDB_PATH, pdb("pol", sel, min_available=1, unhealthyPodEvictionPolicy="Never"))
    assert code == 422 and out["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    # policy/v1 specs are mutable; a spec change bumps the generation
    ok(sim.post(PDB_PATH, pdb("ok", sel, min_available=1)))
    out = ok(sim.patch("%s/ok" % PDB_PATH, {"spec": {"minAvailable": 2}}))
    assert out["metadata"]["generation"] == 2
    # a strategic merge patch replaces the selector whole (patchStrategy "replace"), a merge patch merges it
    ok(sim.post(PDB_PATH, pdb("sel", {"matchLabels": {"app": "x", "tier": "y"}}, min_available=1)))
    out = ok(sim.patch("%s/sel" % PDB_PATH, {"spec": {"selector": {"matchLabels": {"app": "z"}}}},
                       ctype="application/strategic-merge-patch+json"))
    assert out["spec"]["selector"] == {"matchLabels": {"app": "z"}}
    out = ok(sim.patch("%s/sel" % PDB_PATH, {"spec": {"selector": {"matchLabels": {"tier": "y"}}}}))
    assert out["spec"]["selector"] == {"matchLabels": {"app": "z", "tier": "y"}}
    # strict field validation knows the typed spec fields
    code, out, _ = sim.post(PDB_PATH, pdb("typo", sel, min_available=1, minAvailible=1),
                            query={"fieldValidation": "Strict"})
    assert code == 400 and 'unknown field "spec.minAvailible"' in out["message"]


# ---- disruption controller ----------------------------------------------------------------------------------

def test_pdb_status_int_min_available_over_bare_pods(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    for i in range(3):
        ok(sim.post(POD_PATH, pod("web-%d" % i, {"app": "web"}, node="gpu-node-%d" % (i % 2))))
    ok(sim.post(PDB_PATH, pdb("web", {"matchLabels": {"app": "web"}}, min_available=2)))
    p = synced(sim, "web", currentHealthy=3)
    st = p["status"]
    # an integer minAvailable needs no controller: expectedPods is the number of matching pods
    assert st == {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
                  "expectedPods": 3, "conditions": [
                      {"type": "DisruptionAllowed", "status": "True", "observedGeneration": 1,
                       "lastTransitionTime": st["conditions"][0]["lastTransitionTime"], "reason": "SufficientPods",
                       "message": ""}]}
    # a Terminating pod no longer counts as healthy, but still as expected
    ok(adm(sim, "/_sim/lifecycle", {"labelSelector": "app=web", "stopSeconds": -1}))
    ok(sim.delete("%s/web-0" % POD_PATH))
    st = synced(sim, "web", currentHealthy=2)["status"]
    assert (st["expectedPods"], st["disruptionsAllowed"]) == (3, 0)
    assert st["conditions"][0]["status"] == "False" and st["conditions"][0]["reason"] == "InsufficientPods"
    # a nil selector matches no pods; an empty one (policy/v1) all pods of the namespace
    ok(sim.post(PDB_PATH, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                           "metadata": {"name": "none"}, "spec": {"minAvailable": 0}}))
    ok(sim.post(PDB_PATH, pdb("all", {}, min_available=0)))
    assert synced(sim, "none", expectedPods=0)["status"]["disruptionsAllowed"] == 0
    assert synced(sim, "all", expectedPods=3)["status"]["disruptionsAllowed"] == 2


def test_pdb_status_percentages_use_the_controller_scale(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    device_plugin(sim)
    ok(sim.post(RS_PATH, replicaset("train", 4, gpus=1)))
    running_pods(sim, "app=train", 4)
    ok(sim.post(PDB_PATH, pdb("train", {"matchLabels": {"app": "train"}}, max_unavailable="30%")))
    # expectedPods = the ReplicaSet's spec.replicas; maxUnavailable 30% of 4 rounds up to 2
    st = synced(sim, "train", expectedPods=4)["status"]
    assert (st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (2, 4, 2)
    ok(sim.patch("%s/train/scale" % RS_PATH, {"spec": {"replicas": 10}}))
    st = synced(sim, "train", expectedPods=10)["status"]
    assert st["desiredHealthy"] == 7
    # a percentage over DaemonSet pods cannot be computed: failSafe, SyncFailed, observedGeneration not moved
    ok(sim.post("/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets",
                dict(pdb("dp", {"matchLabels": {"app": "nvidia-device-plugin"}}, min_available="50%"),
                     metadata={"name": "dp", "namespace": "kube-system"})))

    def failed():
        p = ok(sim.get("/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets/dp"))
        conds = (p.get("status") or {}).get("conditions") or []
        return p if conds and conds[0]["reason"] == "SyncFailed" else None
    st = wait_for(failed, what="SyncFailed")["status"]
    assert st["conditions"][0]["message"] == "daemonsets.apps does not implement the scale subresource"
    assert st["disruptionsAllowed"] == 0 and st["conditions"][0]["status"] == "False"
    assert "observedGeneration" not in st
    no_errors(sim)


# ---- eviction -----------------------------------------------------------------------------------------------

def test_eviction_follows_the_budget(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    device_plugin(sim)
    out = ok(adm(sim, "/_sim/workloads", {"name": "train", "nodes": ["gpu-node-0", "gpu-node-1"], "perNode": 2,
                                          "gpus": 1, "pdb": {"minAvailable": 3}}))
    names = [p["name"] for p in out["pods"]]
    running_pods(sim, "app=train", 4)
    ok(adm(sim, "/_sim/lifecycle", {"labelSelector": "app=train", "stopSeconds": 3}))
    synced(sim, "train", currentHealthy=4, disruptionsAllowed=1)
    code, body, hdrs = evict(sim, names[0])
    # 201 with a Success Status; the pod is deleted gracefully and marked as evicted
    assert code == 201 and body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "code": 201}
    gone = ok(sim.get("%s/%s" % (POD_PATH, names[0])))
    assert gone["metadata"]["deletionTimestamp"] and gone["metadata"]["deletionGracePeriodSeconds"] == 30
    cond = [c for c in gone["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert cond and cond[0]["status"] == "True" and cond[0]["reason"] == "EvictionByEvictionAPI" and \
        cond[0]["message"] == "Eviction API: evicting"
    # the budget was decremented by the eviction itself (disruptedPods until the controller sees the deletion)
    st = synced(sim, "train", currentHealthy=3)["status"]
    assert st["disruptionsAllowed"] == 0 and "disruptedPods" not in st
    code, body, hdrs = evict(sim, names[1])
    assert code == 429 and "retry-after" not in hdrs
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": EVICT_MSG,
                    "reason": "TooManyRequests", "details": {"causes": [
                        {"reason": "DisruptionBudget",
                         "message": "The disruption budget train needs 3 healthy pods and has 3 currently"}]},
                    "code": 429}
    assert not ok(sim.get("%s/%s" % (POD_PATH, names[1])))["metadata"].get("deletionTimestamp")
    # the ReplicaSet replaces the evicted pod; once it is Ready the budget allows one more
    synced(sim, "train", currentHealthy=4, disruptionsAllowed=1)
    # dry run: answered as a real eviction would be, nothing changes
    code, _, _ = sim.post("%s/%s/eviction" % (POD_PATH, names[1]), eviction(names[1]), query={"dryRun": "All"})
    assert code == 201
    assert not ok(sim.get("%s/%s" % (POD_PATH, names[1])))["metadata"].get("deletionTimestamp")
    assert get_pdb(sim, "train")["status"]["disruptionsAllowed"] == 1
    # deleteOptions are honoured: grace 0 removes the pod at once
    code, _, _ = evict(sim, names[1], gracePeriodSeconds=0)
    assert code == 201 and sim.get("%s/%s" % (POD_PATH, names[1]))[0] == 404
    synced(sim, "train", currentHealthy=4, disruptionsAllowed=1)
    # a wrong uid precondition is a 409 from the delete, which comes after the budget was decremented: as in
    # kube-apiserver the pod stays in disruptedPods (not healthy) for DeletionTimeout (2 min), so the budget
    # allows nothing meanwhile
    code, body, _ = evict(sim, names[2], preconditions={"uid": "not-it"})
    assert code == 409 and body["reason"] == "Conflict"
    st = get_pdb(sim, "train")["status"]
    assert list(st["disruptedPods"]) == [names[2]] and st["disruptionsAllowed"] == 0
    time.sleep(0.3)
    st = get_pdb(sim, "train")["status"]
    assert (list(st["disruptedPods"]), st["currentHealthy"], st["disruptionsAllowed"]) == ([names[2]], 3, 0)
    assert evict(sim, names[3])[0] == 429
    # a missing pod is a 404; a name that differs from the URL a 400
    code, body, _ = evict(sim, "nope")
    assert code == 404 and body["message"] == 'pods "nope" not found' and body["details"]["kind"] == "pods"
    code, body, _ = sim.post("%s/%s/eviction" % (POD_PATH, names[3]), eviction("other"))
    assert code == 400 and body["message"] == "name in URL does not match name in Eviction object"
    log = ok(adm(sim, "/_sim/evictions", method="GET"))
    assert log["byOutcome"] == {"evicted": 3, "tooManyRequests": 2, "conflict": 1, "notFound": 1}, log
    assert [e["dryRun"] for e in log["evictions"] if e["outcome"] == "evicted"] == [False, True, False]
    assert [e["pod"] for e in log["evictions"] if e["code"] == 201][:1] == [names[0]]
    assert sim.count(verb="create", resource="pods", subresource="eviction", code=429) == 2
    no_errors(sim)


def test_concurrent_evictions_never_exceed_the_budget(kubesim):
    """Evictions racing each other and the disruption controller: exactly disruptionsAllowed succeed."""
    import threading
    sim = kubesim(gpu_nodes=3, cpu_nodes=0, pod_ready_delay=0.1)
    # no device plugin: the ReplicaSet's replacements cannot be scheduled, so healthy pods only go away
    out = ok(adm(sim, "/_sim/workloads", {"name": "train", "nodes": ["gpu-node-0", "gpu-node-1", "gpu-node-2"],
                                          "perNode": 2, "gpus": 1, "pdb": {"minAvailable": 4}}))
    names = [p["name"] for p in out["pods"]]
    running_pods(sim, "app=train", 6)
    ok(adm(sim, "/_sim/lifecycle", {"labelSelector": "app=train", "stopSeconds": -1}))
    synced(sim, "train", currentHealthy=6, disruptionsAllowed=2)
    codes = []
    lock = threading.Lock()

    def hammer(name):
        for _ in range(5):
            code = evict(sim, name)[0]
            with lock:
                codes.append((name, code))
            time.sleep(0.05)
    threads = [threading.Thread(target=hammer, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # a Terminating pod's next eviction is a 201 too (no budget check, no decrement): count pods, not answers
    evicted = {n for n, c in codes if c == 201}
    assert len(evicted) == 2, codes
    assert {c for _, c in codes} <= {201, 429}
    st = synced(sim, "train", currentHealthy=4)["status"]
    assert st["disruptionsAllowed"] == 0 and st["expectedPods"] >= 6
    assert {p["metadata"]["name"] for p in pods(sim, "app=train") if p["metadata"].get("deletionTimestamp")} == evicted


def test_unhealthy_pods_and_the_eviction_policy(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    # w-0 (and later w-3) crash-loop: Running, not Ready
    ok(adm(sim, "/_sim/fail", {"labelSelector": "unhealthy=yes"}))
    ok(sim.post(POD_PATH, pod("w-0", {"app": "w", "unhealthy": "yes"}, node="gpu-node-0")))
    for i in (1, 2):
        ok(sim.post(POD_PATH, pod("w-%d" % i, {"app": "w"}, node="gpu-node-0")))
    running_pods(sim, "app=w", 2)
    wait_for(lambda: ok(sim.get("%s/w-0" % POD_PATH))["status"].get("phase") == "Running", what="w-0 running")
    assert not ready(ok(sim.get("%s/w-0" % POD_PATH)))
    ok(adm(sim, "/_sim/lifecycle", {"labelSelector": "app=w", "stopSeconds": -1}))
    # IfHealthyBudget (default): with 2 healthy of 2 desired, the unhealthy pod goes without a decrement
    ok(sim.post(PDB_PATH, pdb("w", {"matchLabels": {"app": "w"}}, min_available=2)))
    synced(sim, "w", currentHealthy=2, desiredHealthy=2, disruptionsAllowed=0)
    assert evict(sim, "w-1")[0] == 429
    assert evict(sim, "w-0")[0] == 201
    assert ok(adm(sim, "/_sim/evictions", method="GET"))["evictions"][-1]["outcome"] == "evictedUnhealthy"
    assert get_pdb(sim, "w")["status"].get("disruptedPods") is None
    # with fewer healthy pods than desired, an unhealthy pod is protected too ...
    ok(sim.post(POD_PATH, pod("w-3", {"app": "w", "unhealthy": "yes"}, node="gpu-node-0")))
    ok(sim.patch("%s/w" % PDB_PATH, {"spec": {"minAvailable": 3}}))
    synced(sim, "w", currentHealthy=2, desiredHealthy=3)
    wait_for(lambda: ok(sim.get("%s/w-3" % POD_PATH))["status"].get("phase") == "Running", what="w-3 running")
    code, body, _ = evict(sim, "w-3")
    assert code == 429 and body["details"]["causes"][0]["message"] == \
        "The disruption budget w needs 3 healthy pods and has 2 currently"
    # ... unless unhealthyPodEvictionPolicy is AlwaysAllow
    ok(sim.patch("%s/w" % PDB_PATH, {"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}))
    synced(sim, "w", currentHealthy=2)
    assert evict(sim, "w-3")[0] == 201
    assert ok(adm(sim, "/_sim/evictions", method="GET"))["evictions"][-1]["outcome"] == "evictedUnhealthy"
    no_errors(sim)


def test_eviction_special_cases(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    for i in range(2):
        ok(sim.post(POD_PATH, pod("db-%d" % i, {"app": "db", "tier": "data"}, node="gpu-node-0")))
    running_pods(sim, "app=db", 2)
    # two PDBs select the pod: 500 with the registry's message, no reason
    ok(sim.post(PDB_PATH, pdb("db", {"matchLabels": {"app": "db"}}, min_available=0)))
    ok(sim.post(PDB_PATH, pdb("data", {"matchLabels": {"tier": "data"}}, min_available=0)))
    synced(sim, "db", expectedPods=2)
    code, body, _ = evict(sim, "db-0")
    assert code == 500 and body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "This pod has more than one PodDisruptionBudget, which the eviction "
                                               "subresource does not support.", "code": 500}
    ok(sim.delete("%s/data" % PDB_PATH))
    assert synced(sim, "db", disruptionsAllowed=2)
    ok(sim.patch("%s/db" % PDB_PATH, {"spec": {"minAvailable": 2}}))
    synced(sim, "db", desiredHealthy=2)
    assert evict(sim, "db-0")[0] == 429
    # a Pending pod (here: no node has a GPU to give) bypasses the budget
    ok(sim.post(POD_PATH, pod("db-pending", {"app": "db", "tier": "data"}, gpus=1)))
    wait_for(lambda: [c for c in ok(sim.get("%s/db-pending" % POD_PATH))["status"].get("conditions") or ()
                      if c["type"] == "PodScheduled"], what="scheduling attempt")
    assert evict(sim, "db-pending")[0] == 201
    log = ok(adm(sim, "/_sim/evictions", method="GET"))
    assert log["evictions"][-1]["outcome"] == "evictedIgnoringBudget"
    # a pod no PDB selects is simply deleted: DaemonSet pods are evictable too
    ok(sim.post("/apis/apps/v1/namespaces/kube-system/daemonsets", daemonset("agent")))
    dpod = wait_for(lambda: [p for p in ok(sim.get("/api/v1/namespaces/kube-system/pods",
                                                   query={"labelSelector": "app=agent"}))["items"] if ready(p)],
                    what="daemon pod")[0]
    code, _, _ = sim.post("/api/v1/namespaces/kube-system/pods/%s/eviction" % dpod["metadata"]["name"],
                          dict(eviction(dpod["metadata"]["name"]), metadata={"name": dpod["metadata"]["name"],
                                                                             "namespace": "kube-system"}))
    assert code == 201
    assert ok(adm(sim, "/_sim/evictions", method="GET"))["evictions"][-1]["outcome"] == "evictedNoBudget"
    no_errors(sim)


# ---- ReplicaSets ----------------------------------------------------------------------------------------------

def test_replicaset_controller_and_scale(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    device_plugin(sim)
    code, out, _ = sim.post(RS_PATH, dict(replicaset("bad", 1), spec=dict(replicaset("bad", 1)["spec"],
                                                                        selector={"matchLabels": {"app": "x"}})))
    assert code == 422 and "`selector` does not match template `labels`" in out["message"]
    rs = ok(sim.post(RS_PATH, replicaset("infer", 3, gpus=2)))
    got = running_pods(sim, "app=infer", 3)
    for p in got:
        assert p["metadata"]["generateName"] == "infer-" and p["metadata"]["labels"] == {"app": "infer"}
        assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "infer",
                                                     "uid": rs["metadata"]["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]
        assert p["spec"]["nodeName"].startswith("gpu-node-")
    wait_for(lambda: ok(sim.get("%s/infer" % RS_PATH)).get("status") == {
        "replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "observedGeneration": 1}, what="RS status")
    scale = ok(sim.get("%s/infer/scale" % RS_PATH))
    assert scale == {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {
        k: scale["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
        "spec": {"replicas": 3}, "status": {"replicas": 3, "selector": "app=infer"}}
    ok(sim.patch("%s/infer/scale" % RS_PATH, {"spec": {"replicas": 1}}))
    wait_for(lambda: len([p for p in pods(sim, "app=infer") if not p["metadata"].get("deletionTimestamp")]) == 1,
             what="scaled down")
    # deleting the ReplicaSet collects its pods
    ok(sim.delete("%s/infer" % RS_PATH))
    wait_for(lambda: not pods(sim, "app=infer"), timeout=15, what="pods collected")
    no_errors(sim)


# ---- scheduling --------------------------------------------------------------------------------------------

def test_scheduler_counts_gpus_and_honours_cordon(kubesim):
    sim = kubesim(gpu_nodes=2, gpus_per_node=4, cpu_nodes=1, pod_ready_delay=0.1)
    # before any device plugin no node has nvidia.com/gpu allocatable
    ok(sim.post(POD_PATH, pod("early", {"app": "early"}, gpus=1)))

    def sched_cond(name):
        p = ok(sim.get("%s/%s" % (POD_PATH, name)))
        return next((c for c in p["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)
    c = wait_for(lambda: sched_cond("early"), what="attempt")
    assert c["status"] == "False" and c["reason"] == "Unschedulable"
    assert c["message"] == ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
                            "available: 3 No preemption victims found for incoming pod.")
    device_plugin(sim)
    # the waiting pod is retried when GPUs appear; a pod without GPUs may land anywhere
    wait_for(lambda: sched_cond("early")["status"] == "True", what="early bound")
    for i in range(2):
        ok(sim.post(POD_PATH, pod("big-%d" % i, {"app": "big"}, gpus=3)))
    running_pods(sim, "app=big", 2)
    nodes = sorted(p["spec"]["nodeName"] for p in pods(sim, "app=big"))
    assert nodes == ["gpu-node-0", "gpu-node-1"], "3 + 3 GPUs do not fit one 4-GPU node"
    # 4 + 4 GPUs are in use or free: one more 3-GPU pod fits nowhere
    ok(sim.post(POD_PATH, pod("big-2", {"app": "big"}, gpus=3)))
    c = wait_for(lambda: sched_cond("big-2"), what="attempt")
    assert c["message"].startswith("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    # cordon: the scheduler reports it first, and the node lifecycle controller adds the taint
    ok(sim.patch("/api/v1/nodes/cpu-node-0", {"spec": {"unschedulable": True}}))
    wait_for(lambda: [t for t in ok(sim.get("/api/v1/nodes/cpu-node-0"))["spec"].get("taints") or ()
                      if t["key"] == "node.kubernetes.io/unschedulable" and t["effect"] == "NoSchedule"],
             what="cordon taint")
    ok(sim.post(POD_PATH, pod("cpu-only", {"app": "cpu"}, node=None)))
    ok(sim.patch("/api/v1/nodes/gpu-node-0", {"spec": {"unschedulable": True}}))
    ok(sim.patch("/api/v1/nodes/gpu-node-1", {"spec": {"unschedulable": True}}))
    ok(sim.post(POD_PATH, pod("cpu-late", {"app": "cpu"})))
    c = wait_for(lambda: sched_cond("cpu-late"), what="attempt")
    assert c["message"] == ("0/3 nodes are available: 3 node(s) were unschedulable. preemption: 0/3 nodes are "
                            "available: 3 Preemption is not helpful for scheduling.")
    # a pod that tolerates the unschedulable taint (as DaemonSet pods do) ignores cordon
    ok(sim.post(POD_PATH, pod("tolerant", {"app": "cpu"}, tolerations=[
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}])))
    wait_for(lambda: sched_cond("tolerant")["status"] == "True", what="tolerant bound")
    # deleting a GPU pod frees its GPUs once it is gone; uncordon lets the waiting pods in
    ok(sim.delete("%s/big-0" % POD_PATH, {"gracePeriodSeconds": 0}))
    ok(sim.patch("/api/v1/nodes/gpu-node-0", {"spec": {"unschedulable": None}}))
    ok(sim.patch("/api/v1/nodes/gpu-node-1", {"spec": {"unschedulable": None}}))
    wait_for(lambda: sched_cond("big-2")["status"] == "True", what="big-2 bound")
    wait_for(lambda: sched_cond("cpu-late")["status"] == "True", what="cpu-late bound")
    assert not [t for t in ok(sim.get("/api/v1/nodes/gpu-node-0"))["spec"].get("taints") or ()
                if t["key"] == "node.kubernetes.io/unschedulable"]
    assert ok(adm(sim, "/_sim/status", method="GET"))["counters"]["schedulingFailures"] >= 4
    # DaemonSet pods still land on cordoned nodes (the controller adds the toleration)
    ok(sim.post("/apis/apps/v1/namespaces/kube-system/daemonsets", daemonset("agent")))
    wait_for(lambda: len([p for p in ok(sim.get("/api/v1/namespaces/kube-system/pods",
                                                query={"labelSelector": "app=agent"}))["items"] if ready(p)]) == 3,
             what="agent on all nodes, cordoned cpu-node-0 included")
    no_errors(sim)


# ---- admin API and kubectl -------------------------------------------------------------------------------------

def test_admin_workloads_shapes(kubesim):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, pod_ready_delay=0.1)
    code, out = adm(sim, "/_sim/workloads", {"name": "w"})
    assert code == 400
    code, out = adm(sim, "/_sim/workloads", {"name": "w", "nodes": ["nope"]})
    assert code == 404
    out = ok(adm(sim, "/_sim/workloads", {"name": "solo", "namespace": "jobs", "node": "gpu-node-1", "gpus": 2,
                                          "replicaSet": False, "labels": {"job": "solo"}}))
    assert out == {"namespace": "jobs", "pods": [{"name": out["pods"][0]["name"], "node": "gpu-node-1"}]}
    p = ok(sim.get("/api/v1/namespaces/jobs/pods/%s" % out["pods"][0]["name"]))
    assert "ownerReferences" not in p["metadata"] and p["metadata"]["labels"] == {"job": "solo"}
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "2"},
                                                       "requests": {"nvidia.com/gpu": "2"}}
    out = ok(adm(sim, "/_sim/workloads", {"name": "rs", "nodes": ["gpu-node-0", "gpu-node-1"], "perNode": 3,
                                          "pdb": {"maxUnavailable": 1}}))
    assert out["replicaSet"] == "rs" and out["pdb"] == "rs" and len(out["pods"]) == 6
    st = synced(sim, "rs", currentHealthy=6)["status"]
    assert (st["expectedPods"], st["desiredHealthy"], st["disruptionsAllowed"]) == (6, 5, 1)
    # the ReplicaSet adopted nothing and created nothing: its replicas are exactly the pods made here
    time.sleep(0.3)
    assert len(pods(sim, "app=rs")) == 6
    # a Job-like pod (restartPolicy Never) finishes on request; GPU pods that run forever are left alone
    out = ok(adm(sim, "/_sim/workloads", {"name": "job", "node": "gpu-node-0", "replicaSet": False,
                                          "restartPolicy": "Never", "labels": {"job": "x"}}))
    assert adm(sim, "/_sim/workloads", {"name": "bad", "node": "gpu-node-0", "restartPolicy": "Never"})[0] == 400
    running_pods(sim, "job=x", 1)
    assert ok(adm(sim, "/_sim/pod-succeeded", {"labelSelector": "job=x"})) == {"succeeded": 1}
    assert ok(adm(sim, "/_sim/pod-succeeded", {"labelSelector": "app=rs"})) == {"succeeded": 0}
    done = ok(sim.get("%s/%s" % (POD_PATH, out["pods"][0]["name"])))["status"]
    assert done["phase"] == "Succeeded"
    assert [(c["type"], c["status"], c.get("reason")) for c in done["conditions"]] == [
        ("PodReadyToStartContainers", "False", None), ("Initialized", "True", "PodCompleted"),
        ("Ready", "False", "PodCompleted"), ("ContainersReady", "False", "PodCompleted"),
        ("PodScheduled", "True", None)]
    assert done["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert done["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    ok(adm(sim, "/_sim/evictions", method="DELETE"))
    assert ok(adm(sim, "/_sim/evictions", method="GET")) == {"total": 0, "byOutcome": {}, "byCode": {},
                                                             "evictions": []}


def test_kubectl_get_and_drain_against_a_budget(kubesim):
    sim = kubesim(gpu_nodes=2, gpus_per_node=4, cpu_nodes=0, pod_ready_delay=0.1)
    device_plugin(sim)
    ok(adm(sim, "/_sim/workloads", {"name": "train", "nodes": ["gpu-node-0"], "perNode": 2, "gpus": 1,
                                    "pdb": {"minAvailable": 2}}))
    running_pods(sim, "app=train", 2)
    synced(sim, "train", currentHealthy=2)
    out = sim.kubectl("get", "pdb", "-n", NS).stdout.splitlines()
    assert out[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert out[1].split()[:4] == ["train", "2", "N/A", "0"]
    assert sim.kubectl("get", "rs", "train", "-o", "jsonpath={.status.readyReplicas}").stdout == "2"
    # the budget allows nothing: kubectl drain cordons, retries the 429 and gives up at its timeout
    r = sim.kubectl("drain", "gpu-node-0", "--ignore-daemonsets", "--timeout=3s", check=False, timeout=60)
    assert r.returncode != 0
    assert EVICT_MSG in r.stdout + r.stderr and "global timeout reached" in r.stdout + r.stderr
    assert ok(sim.get("/api/v1/nodes/gpu-node-0"))["spec"]["unschedulable"] is True
    assert len(running_pods(sim, "app=train", 2)) == 2
    # with one disruption allowed, drain evicts a pod at a time; replacements go to gpu-node-1
    ok(sim.patch("%s/train" % PDB_PATH, {"spec": {"minAvailable": 1}}))
    synced(sim, "train", disruptionsAllowed=1)
    r = sim.kubectl("drain", "gpu-node-0", "--ignore-daemonsets", "--timeout=40s", check=False, timeout=90)
    assert r.returncode == 0, r.stderr
    assert 'node/gpu-node-0 drained' in r.stdout
    moved = running_pods(sim, "app=train", 2)
    assert {p["spec"]["nodeName"] for p in moved} == {"gpu-node-1"}
    log = ok(adm(sim, "/_sim/evictions", method="GET"))
    assert log["byOutcome"]["evicted"] == 2 and log["byOutcome"]["tooManyRequests"] >= 1
    # the device plugin's DaemonSet pod stayed (--ignore-daemonsets)
    assert [p for p in ok(sim.get("/api/v1/namespaces/kube-system/pods"))["items"]
            if p["spec"].get("nodeName") == "gpu-node-0"]
    no_errors(sim)


def test_kubectl_drain_bare_and_emptydir_pods_need_flags(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(adm(sim, "/_sim/workloads", {"name": "solo", "nodes": ["gpu-node-0"], "gpus": 0, "replicaSet": False}))
    ok(adm(sim, "/_sim/workloads", {"name": "scratch", "nodes": ["gpu-node-0"], "gpus": 0, "emptyDir": True}))
    running_pods(sim, "app in (solo,scratch)", 2)
    r = sim.kubectl("drain", "gpu-node-0", "--ignore-daemonsets", "--timeout=10s", check=False, timeout=60)
    assert r.returncode != 0
    assert "cannot delete Pods that declare no controller" in r.stderr
    assert "cannot delete Pods with local storage" in r.stderr
    r = sim.kubectl("drain", "gpu-node-0", "--ignore-daemonsets", "--force", "--delete-emptydir-data",
                    "--timeout=30s", check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    log = ok(adm(sim, "/_sim/evictions", method="GET"))
    assert sorted(e["outcome"] for e in log["evictions"]) == ["evictedNoBudget", "evictedNoBudget"]


@pytest.mark.parametrize("flag", ["--dry-run=server"])
def test_kubectl_drain_server_dry_run_changes_nothing(kubesim, flag):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, pod_ready_delay=0.1)
    ok(adm(sim, "/_sim/workloads", {"name": "train", "nodes": ["gpu-node-0"], "perNode": 1, "gpus": 0}))
    running_pods(sim, "app=train", 1)
    r = sim.kubectl("drain", "gpu-node-0", flag, "--ignore-daemonsets", check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "(server dry run)" in r.stdout
    assert not ok(sim.get("/api/v1/nodes/gpu-node-0"))["spec"].get("unschedulable")
    assert len(running_pods(sim, "app=train", 1)) == 1


# ---- in-process: states the running controller leaves too quickly to observe over HTTP -----------------------

def _in_process():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kubesim"))
    import apiext
    import disruption
    import server
    import store
    st = store.Store()
    sim = server.Kubesim(st, apiext.Registry(st))
    st.create("/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return sim, st, server, disruption


def test_eviction_before_the_budget_is_observed_is_429_with_retry_after():
    sim, st, server, disruption = _in_process()
    p = pod("p", {"app": "x"}, node="n")
    p["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    st.create("/v1/pods", p)
    b = pdb("x", {"matchLabels": {"app": "x"}}, max_unavailable=1)
    disruption.default_pdb(b)
    st.create(disruption.PDBS, b)  # generation 1, observedGeneration absent: the controller has not run
    req = server.Req("POST", "%s/p/eviction" % POD_PATH, {}, {}, __import__("json").dumps(eviction("p")).encode())
    assert sim.parse(req) and req.sub == "eviction"
    handler = disruption.handler_for(sim, req)
    with pytest.raises(server.ApiError) as e:
        handler(req)
    err = e.value
    assert (err.code, err.reason, err.message) == (429, "TooManyRequests", EVICT_MSG)
    assert err.details == {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget x is still "
                                       "being processed by the server."}], "retryAfterSeconds": 10}
    assert err.headers == [("Retry-After", "10")]
    assert st.get("/v1/pods", NS, "p")["metadata"].get("deletionTimestamp") is None


def test_pdb_math_and_fit_messages():
    _, _, _, disruption = _in_process()
    assert disruption.scaled_value("30%", 4, True) == 2 and disruption.scaled_value("30%", 4, False) == 1
    assert disruption.fit_error(5, [("Insufficient nvidia.com/gpu", True), ("node(s) were unschedulable", False),
                                    ("Insufficient nvidia.com/gpu", True)]) == (
        "0/5 nodes are available: 1 node(s) were unschedulable, 2 Insufficient nvidia.com/gpu. preemption: 0/5 "
        "nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for "
        "incoming pod.")
    now = time.time()
    ready_pod = {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    old = dict(ready_pod, metadata={"name": "b"})
    b = {"metadata": {"generation": 3}, "spec": {"minAvailable": 1},
         "status": {"disruptedPods": {"a": disruption.now_rfc3339(now - 10),
                                      "b": disruption.now_rfc3339(now - 130)}}}
    st, recheck = disruption.pdb_status(b, [ready_pod, old], lambda ref, ns: None, now)
    # a was evicted 10 s ago (still expected to go), b 130 s ago (DeletionTimeout passed: healthy again)
    assert st["disruptedPods"] == {"a": b["status"]["disruptedPods"]["a"]} and st["currentHealthy"] == 1
    assert st["disruptionsAllowed"] == 0 and st["observedGeneration"] == 3 and 100 < recheck - now <= 111


def test_controller_status_write_never_overwrites_an_eviction():
    """The disruption controller writes status with the resourceVersion it computed from, as UpdateStatus
    does: an eviction that decremented the budget in between wins (the controller gets a conflict)."""
    import types
    sim, st, server, disruption = _in_process()
    import cluster
    c = cluster.Cluster(st, types.SimpleNamespace())
    p = pod("p", {"app": "x"}, node="n")
    p["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    st.create("/v1/pods", p)
    b = pdb("x", {"matchLabels": {"app": "x"}}, min_available=0)
    disruption.default_pdb(b)
    st.create(disruption.PDBS, b)
    c.disruption.pdb_ns[NS].add("x")
    real = c._mutate
    stamp = disruption.now_rfc3339()

    def eviction_first(res, ns, name, fn, **kw):
        if res == disruption.PDBS:  # an eviction lands between the controller's read and its write
            cur = st.get(res, ns, name)
            cur["status"] = dict(cur["status"], disruptedPods={"p": stamp})
            st.update(res, cur, subresource="status")
        return real(res, ns, name, fn, **kw)
    c._mutate = eviction_first
    c.disruption._sync_pdbs(NS)
    assert st.get(disruption.PDBS, NS, "x")["status"]["disruptedPods"] == {"p": stamp}
    assert "observedGeneration" not in st.get(disruption.PDBS, NS, "x")["status"]
    c._mutate = real
    c.disruption._sync_pdbs(NS)  # the next sync (the eviction's own event) sees the eviction
    got = st.get(disruption.PDBS, NS, "x")["status"]
    assert (got["disruptedPods"], got["currentHealthy"], got["observedGeneration"]) == ({"p": stamp}, 0, 1)
