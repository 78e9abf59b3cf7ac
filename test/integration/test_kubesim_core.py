"""kubesim core: store semantics, LIST/WATCH, patches, Status bodies, admin API, TLS, --state, kubectl."""

import json
import os
import subprocess
import threading
import time

import pytest

CM = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
DS = "/apis/apps/v1/namespaces/default/daemonsets"


def cm(name, labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data or {"k": "v"}}


def ds(name, image="img:1"):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


@pytest.fixture
def sim(kubesim):
    return kubesim(gpu_nodes=2, cpu_nodes=1)


def is_status(body, code, reason):
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["metadata"] == {}
    assert body["status"] == "Failure" and body["code"] == code and body["reason"] == reason, body
    return True


# ---- CRUD and metadata ---------------------------------------------------------------------------------
def test_create_get_update_delete_with_metadata_rules(sim):
    code, obj, hdr = sim.post(CM, cm("a", {"app": "x"}))
    assert code == 201 and hdr["content-type"] == "application/json"
    m = obj["metadata"]
    assert m["uid"] and m["creationTimestamp"].endswith("Z") and m["resourceVersion"]
    assert "generation" not in m  # ConfigMaps have none
    code, got, _ = sim.get(CM + "/a")
    assert code == 200 and got == obj and got["apiVersion"] == "v1" and got["kind"] == "ConfigMap"
    # no-op update: same RV, no new version
    code, same, _ = sim.put(CM + "/a", got)
    assert code == 200 and same["metadata"]["resourceVersion"] == m["resourceVersion"]
    got["data"]["k"] = "w"
    code, upd, _ = sim.put(CM + "/a", got)
    assert code == 200 and int(upd["metadata"]["resourceVersion"]) > int(m["resourceVersion"])
    assert upd["metadata"]["uid"] == m["uid"] and upd["metadata"]["creationTimestamp"] == m["creationTimestamp"]
    # stale RV -> 409 Conflict with the exact message
    code, body, _ = sim.put(CM + "/a", got)
    assert code == 409 and is_status(body, 409, "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "a": the object has been modified; '
                               'please apply your changes to the latest version and try again')
    assert body["details"] == {"name": "a", "kind": "configmaps"}
    # a PUT carrying another object's uid is a failed precondition
    code, body, _ = sim.put(CM + "/a", dict(upd, metadata=dict(upd["metadata"], uid="0000")))
    assert code == 409 and "Precondition failed: UID in precondition: 0000" in body["message"]
    # AlreadyExists
    code, body, _ = sim.post(CM, cm("a"))
    assert code == 409 and is_status(body, 409, "AlreadyExists")
    assert body["message"] == 'configmaps "a" already exists'
    code, body, _ = sim.delete(CM + "/a")
    assert code == 200 and body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["uid"] == m["uid"]
    code, body, _ = sim.get(CM + "/a")
    assert code == 404 and is_status(body, 404, "NotFound") and body["message"] == 'configmaps "a" not found'
    assert body["details"] == {"name": "a", "kind": "configmaps"}


def test_unknown_path_and_namespace(sim):
    code, body, _ = sim.get("/apis/nope.example.com/v1/things")
    assert code == 404 and is_status(body, 404, "NotFound") and body["details"] == {}
    assert body["message"] == "the server could not find the requested resource"
    code, body, _ = sim.post("/api/v1/namespaces/missing/configmaps", cm("a"))
    assert code == 404 and body["message"] == 'namespaces "missing" not found'
    code, body, _ = sim.post(CM, {"metadata": {"name": "x", "resourceVersion": "5"}})
    assert code == 500 and body["reason"] == "InternalError"


def test_generate_name_and_kind_mismatch(sim):
    code, obj, _ = sim.post(CM, {"metadata": {"generateName": "w-"}, "data": {}})
    assert code == 201 and obj["metadata"]["name"].startswith("w-") and len(obj["metadata"]["name"]) == 7
    code, body, _ = sim.post(CM, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    assert code == 400 and is_status(body, 400, "BadRequest")
    code, body, _ = sim.post(CM, b"{not json", ctype="application/json")
    assert code == 400 and is_status(body, 400, "BadRequest")


def test_generation_and_status_subresource(sim):
    svc = "/api/v1/namespaces/default/services"
    code, d, _ = sim.post(svc, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]},
                                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    assert code == 201 and d["metadata"]["generation"] == 1
    assert "ingress" not in d.get("status", {}).get("loadBalancer", {})  # create drops status
    # status written through the main endpoint is ignored; through /status only status is taken
    d["status"] = {"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]}}
    d["metadata"]["labels"] = {"x": "y"}
    code, d2, _ = sim.put(svc + "/s", d)
    assert code == 200 and d2["metadata"]["generation"] == 1 and "ingress" not in d2["status"]["loadBalancer"]
    assert d2["metadata"]["labels"] == {"x": "y"}
    code, d3, _ = sim.patch(svc + "/s/status", {"status": {"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}]}},
                                                "metadata": {"labels": {"z": "1"}}, "spec": {"ports": [{"port": 1}]}})
    assert code == 200 and d3["status"]["loadBalancer"]["ingress"] == [{"ip": "5.5.5.5"}]
    assert d3["metadata"]["labels"] == {"x": "y"} and d3["spec"]["ports"][0]["port"] == 80
    assert d3["metadata"]["generation"] == 1
    code, d4, _ = sim.patch(svc + "/s", {"spec": {"ports": [{"port": 81}]}})
    assert code == 200 and d4["metadata"]["generation"] == 2
    assert d4["status"]["loadBalancer"]["ingress"] == [{"ip": "5.5.5.5"}]
    # DaemonSets: the template generation annotation; PUT needs a resourceVersion
    code, ds1, _ = sim.post(DS, ds("dp"))
    assert code == 201 and ds1["metadata"]["generation"] == 1
    assert ds1["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    code, ds2, _ = sim.patch(DS + "/dp", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "i:2"}]}}}})
    assert code == 200 and ds2["metadata"]["generation"] == 2
    assert ds2["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    code, ds3, _ = sim.patch(DS + "/dp", {"metadata": {"labels": {"a": "b"}}})
    assert ds3["metadata"]["generation"] == 2
    ds3["metadata"].pop("resourceVersion")
    code, body, _ = sim.put(DS + "/dp", ds3)
    assert code == 422 and is_status(body, 422, "Invalid")
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in body["message"]


def test_finalizers_and_deletion_timestamp(sim):
    o = cm("f")
    o["metadata"]["finalizers"] = ["example.com/hold"]
    sim.post(CM, o)
    code, body, _ = sim.delete(CM + "/f")
    assert code == 200 and body["kind"] == "ConfigMap" and body["metadata"]["deletionTimestamp"]
    code, got, _ = sim.get(CM + "/f")
    assert code == 200 and got["metadata"]["deletionTimestamp"]
    code, body, _ = sim.patch(CM + "/f", {"metadata": {"finalizers": ["example.com/hold", "new"]}})
    assert code == 422
    code, body, _ = sim.patch(CM + "/f", {"metadata": {"finalizers": None}})
    assert code == 200
    assert sim.get(CM + "/f")[0] == 404


def test_delete_preconditions_and_dry_run(sim):
    _, o, _ = sim.post(CM, cm("p"))
    code, body, _ = sim.delete(CM + "/p", {"kind": "DeleteOptions", "apiVersion": "v1",
                                           "preconditions": {"uid": "nope"}})
    assert code == 409 and "Precondition failed: UID in precondition: nope" in body["message"]
    rv = sim.get(CM)[1]["metadata"]["resourceVersion"]
    code, body, _ = sim.post(CM, cm("dry"), query={"dryRun": "All"})
    assert code == 201 and body["metadata"]["uid"] and body["metadata"]["name"] == "dry"
    assert sim.get(CM + "/dry")[0] == 404
    code, _, _ = sim.patch(CM + "/p", {"data": {"z": "1"}}, query={"dryRun": "All"})
    assert code == 200
    code, _, _ = sim.delete(CM + "/p", query={"dryRun": "All"})
    assert code == 200 and sim.get(CM + "/p")[0] == 200
    assert sim.get(CM)[1]["metadata"]["resourceVersion"] == rv
    code, body, _ = sim.post(CM, cm("dry"), query={"dryRun": "Bogus"})
    assert code == 422


# ---- patches ------------------------------------------------------------------------------------------
def test_merge_and_json_patch(sim):
    sim.post(CM, cm("m", {"a": "1", "b": "2"}))
    code, o, _ = sim.patch(CM + "/m", {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert code == 200 and o["metadata"]["labels"] == {"b": "2", "c": "3"}
    rv = o["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/data/new", "value": "x"}, {"op": "remove", "path": "/data/k"}]
    code, o, _ = sim.patch(CM + "/m", ops, ctype="application/json-patch+json")
    assert code == 200 and o["data"] == {"new": "x"}
    code, body, _ = sim.patch(CM + "/m", ops[:1], ctype="application/json-patch+json")
    assert code == 422 and is_status(body, 422, "Invalid")
    # resourceVersion inside a patch is a precondition
    code, body, _ = sim.patch(CM + "/m", {"metadata": {"resourceVersion": rv}, "data": {"q": "1"}})
    assert code == 409 and body["reason"] == "Conflict"
    code, body, _ = sim.patch(CM + "/missing", {"data": {}})
    assert code == 404
    code, body, _ = sim.patch(CM + "/m", {"data": {}}, ctype="text/plain")
    assert code == 415 and is_status(body, 415, "UnsupportedMediaType")


def test_strategic_merge_patch_by_merge_keys(sim):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}],
                        "ports": [{"containerPort": 80}]},
                       {"name": "b", "image": "b:1"}],
        "tolerations": [{"key": "t1", "operator": "Exists"}],
        "volumes": [{"name": "v1", "emptyDir": {}}]}}
    assert sim.post(PODS, pod)[0] == 201
    smp = {"spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}],
                                    "ports": [{"containerPort": 81}]}],
                    "tolerations": [{"key": "t2", "operator": "Exists"}],
                    "volumes": [{"name": "v1", "$patch": "delete"}, {"name": "v2", "emptyDir": {}}]}}
    code, o, _ = sim.patch(PODS + "/p", smp, ctype="application/strategic-merge-patch+json")
    assert code == 200, o
    cs = {c["name"]: c for c in o["spec"]["containers"]}
    assert set(cs) == {"a", "b"} and cs["a"]["image"] == "a:2" and cs["b"]["image"] == "b:1"
    assert [e["name"] for e in cs["a"]["env"]] == ["X", "Y"]
    assert [p["containerPort"] for p in cs["a"]["ports"]] == [80, 81]
    assert o["spec"]["tolerations"] == [{"key": "t2", "operator": "Exists"}]  # replaced whole
    assert [v["name"] for v in o["spec"]["volumes"]] == ["v2"]


# ---- LIST ----------------------------------------------------------------------------------------------
def test_list_paging_and_selectors(sim):
    for i in range(7):
        sim.post(CM, cm("c%d" % i, {"i": str(i), "even": "yes" if i % 2 == 0 else "no"}))
    code, lst, _ = sim.get(CM)
    assert code == 200 and lst["kind"] == "ConfigMapList" and lst["apiVersion"] == "v1"
    assert all("kind" not in it and "apiVersion" not in it for it in lst["items"])  # typed list items
    names, cont, pages = [], None, 0
    while True:
        q = {"limit": "3"}
        if cont:
            q["continue"] = cont
        code, page, _ = sim.get(CM, query=q)
        assert code == 200 and len(page["items"]) <= 3
        pages += 1
        names += [it["metadata"]["name"] for it in page["items"]]
        cont = page["metadata"].get("continue")
        if not cont:
            break
        assert page["metadata"]["remainingItemCount"] >= 1
    assert pages == 3 and names == ["c%d" % i for i in range(7)]

    def sel(s):
        code, body, _ = sim.get(CM, query={"labelSelector": s})
        assert code == 200, body
        return sorted(it["metadata"]["name"] for it in body["items"])

    assert sel("even=yes") == ["c0", "c2", "c4", "c6"]
    assert sel("even==no,i!=1") == ["c3", "c5"]
    assert sel("i in (1,2)") == ["c1", "c2"]
    assert sel("i notin (0,1,2,3,4,5)") == ["c6"]
    assert sel("i") == ["c%d" % i for i in range(7)]
    assert sel("!i") == []
    assert sel("i>4") == ["c5", "c6"]
    code, body, _ = sim.get(CM, query={"labelSelector": "a in (b"})
    assert code == 400 and is_status(body, 400, "BadRequest")
    code, body, _ = sim.get(CM, query={"fieldSelector": "metadata.name=c3"})
    assert [it["metadata"]["name"] for it in body["items"]] == ["c3"]
    code, body, _ = sim.get("/api/v1/configmaps", query={"fieldSelector": "metadata.namespace!=default"})
    assert code == 200 and body["items"] == []
    code, body, _ = sim.get(CM, query={"fieldSelector": "spec.foo=1"})
    assert code == 400 and '"spec.foo" is not a known field selector' in body["message"]


def test_pod_field_selector_spec_node_name(sim):
    for i, node in enumerate(["n1", "n2", "n1"]):
        sim.post(PODS, {"metadata": {"name": "p%d" % i}, "spec": {"nodeName": node, "containers": [
            {"name": "c", "image": "i"}]}})
    code, body, _ = sim.get(PODS, query={"fieldSelector": "spec.nodeName=n1"})
    assert sorted(p["metadata"]["name"] for p in body["items"]) == ["p0", "p2"]


def test_list_resource_version_rules(sim):
    sim.post(CM, cm("r"))
    rv = int(sim.get(CM)[1]["metadata"]["resourceVersion"])
    code, body, _ = sim.get(CM, query={"resourceVersion": str(rv + 1000), "resourceVersionMatch": "NotOlderThan"})
    assert code == 504 and body["reason"] == "Timeout" and body["details"]["causes"][0]["reason"] == \
        "ResourceVersionTooLarge"
    code, body, _ = sim.get(CM, query={"resourceVersionMatch": "Exact"})
    assert code == 422 and body["message"].startswith('ListOptions.meta.k8s.io "" is invalid')
    sim.post(CM, cm("r2"))
    sim.admin("compact")
    code, body, _ = sim.get(CM, query={"resourceVersion": str(rv - 1), "resourceVersionMatch": "Exact"})
    assert code == 410 and body["reason"] == "Expired"
    # a continue token from before a compaction has expired
    code, page, _ = sim.get(CM, query={"limit": "1"})
    tok = page["metadata"]["continue"]
    sim.post(CM, cm("r3"))
    sim.admin("compact")
    code, body, _ = sim.get(CM, query={"limit": "1", "continue": tok})
    assert code == 410 and body["reason"] == "Expired" and "continue parameter is too old" in body["message"]


# ---- WATCH ---------------------------------------------------------------------------------------------
def test_watch_initial_events_then_changes_and_resume(sim):
    sim.post(CM, cm("w1"))
    w = sim.watch(CM, {"timeoutSeconds": "5"})
    assert w.status == 200 and w.headers.get("transfer-encoding") == "chunked"
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "w1" and ev["object"]["kind"] == "ConfigMap"
    sim.patch(CM + "/w1", {"data": {"x": "1"}})
    sim.delete(CM + "/w1")
    evs = w.collect(2)
    assert [e["type"] for e in evs] == ["MODIFIED", "DELETED"]
    del_rv = evs[1]["object"]["metadata"]["resourceVersion"]
    assert int(del_rv) > int(evs[0]["object"]["metadata"]["resourceVersion"])
    w.close()
    # resume from the MODIFIED version: only later events
    w = sim.watch(CM, {"resourceVersion": evs[0]["object"]["metadata"]["resourceVersion"], "timeoutSeconds": "2"})
    got = w.collect()
    assert [e["type"] for e in got] == ["DELETED"]


def test_watch_timeout_and_bookmarks(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, bookmark_interval=0.3)
    rv = sim.get(CM)[1]["metadata"]["resourceVersion"]
    t0 = time.monotonic()
    w = sim.watch(CM, {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "1"})
    evs = w.collect()
    took = time.monotonic() - t0
    assert 0.9 <= took < 3
    assert evs and all(e["type"] == "BOOKMARK" for e in evs)
    assert evs[0]["object"]["kind"] == "ConfigMap" and evs[0]["object"]["metadata"]["resourceVersion"]


def test_watch_selector_transitions(sim):
    sim.post(CM, cm("s", {"app": "gpu"}))
    w = sim.watch(CM, {"labelSelector": "app=gpu", "timeoutSeconds": "3"})
    assert w.next()["type"] == "ADDED"
    sim.patch(CM + "/s", {"metadata": {"labels": {"app": "cpu"}}})
    ev = w.next()
    assert ev["type"] == "DELETED" and ev["object"]["metadata"]["labels"] == {"app": "gpu"}
    sim.patch(CM + "/s", {"metadata": {"labels": {"app": "gpu"}}})
    assert w.next()["type"] == "ADDED"
    sim.post(CM, cm("other", {"app": "cpu"}))
    sim.patch(CM + "/s", {"data": {"x": "y"}})
    assert w.next()["type"] == "MODIFIED"
    w.close()


def test_watch_410_after_compaction_and_drop(sim):
    sim.post(CM, cm("o"))
    old = sim.get(CM)[1]["metadata"]["resourceVersion"]
    sim.patch(CM + "/o", {"data": {"a": "b"}})
    sim.admin("compact")
    w = sim.watch(CM, {"resourceVersion": old, "timeoutSeconds": "5"})
    assert w.status == 200
    evs = w.collect()
    assert len(evs) == 1 and evs[0]["type"] == "ERROR"
    st = evs[0]["object"]
    assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired"
    assert st["message"].startswith("too old resource version: %s (" % old)
    # drop-watches ends open streams cleanly
    w = sim.watch(CM, {"timeoutSeconds": "30"})
    w.next()
    t0 = time.monotonic()
    threading.Timer(0.3, lambda: sim.admin("drop-watches")).start()
    rest = w.collect()
    assert rest == [] and time.monotonic() - t0 < 5


def test_watch_send_initial_events(sim):
    sim.post(CM, cm("i1"))
    w = sim.watch(CM, {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
                       "allowWatchBookmarks": "true", "timeoutSeconds": "2"})
    evs = w.collect(until=lambda e: e["type"] == "BOOKMARK")
    assert evs[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert any(e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "i1" for e in evs)
    w.close()
    code, body, _ = sim.get(CM, query={"watch": "1", "resourceVersionMatch": "NotOlderThan"})
    assert code == 422


# ---- admin API -----------------------------------------------------------------------------------------
def test_inject_errors_latency_and_counters(sim):
    sim.reset_counters()
    sim.admin("inject", {"method": "GET", "pathPrefix": CM, "code": 429, "retryAfter": 1, "count": 2})
    for _ in range(2):
        code, body, hdr = sim.get(CM)
        assert code == 429 and hdr["retry-after"] == "1" and is_status(body, 429, "TooManyRequests")
        assert body["details"]["retryAfterSeconds"] == 1
    assert sim.get(CM)[0] == 200
    sim.admin("inject", {"pathPrefix": CM, "code": 500, "count": 1})
    code, body, _ = sim.post(CM, cm("x"))
    assert code == 500 and is_status(body, 500, "InternalError")
    assert body["message"] == "Internal error occurred: etcdserver: request timed out"
    sim.admin("inject", {"pathPrefix": CM, "latencyMs": 300, "count": 1})
    t0 = time.monotonic()
    assert sim.get(CM)[0] == 200 and time.monotonic() - t0 >= 0.3
    sim.admin("inject", {"pathPrefix": "/api/v1/namespaces/default/configmaps/x", "code": 403})
    code, body, _ = sim.get(CM + "/x")
    assert code == 403 and is_status(body, 403, "Forbidden") and body["message"].startswith(
        'configmaps "x" is forbidden: User "system:serviceaccount:') and body["message"].endswith(
        'cannot get resource "configmaps" in API group "" in the namespace "default"')
    sim.admin("inject", {"pathPrefix": "/api/v1/nodes", "code": 403})
    code, body, _ = sim.get("/api/v1/nodes")
    assert code == 403 and body["message"].startswith("nodes is forbidden: User ") and \
        body["message"].endswith('cannot list resource "nodes" in API group "" at the cluster scope')
    sim.post(CM, cm("y"))
    sim.patch(CM + "/y", {"data": {"a": "b"}})
    c = sim.counters()
    assert c["writes"] == 3, c  # failed create (500) + create + patch
    assert c["lists"]["configmaps"] == 4
    assert sim.count(verb="list", resource="configmaps", code=429) == 2
    assert sim.count(verb="patch", resource="configmaps", code=200) == 1
    sim.reset_counters()
    assert sim.counters()["writes"] == 0


# ---- server-level behaviours -----------------------------------------------------------------------------
def test_state_survives_restart(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0)
    _, o, _ = sim.post(CM, cm("keep"))
    rv = int(sim.get(CM)[1]["metadata"]["resourceVersion"])
    sim.restart()
    code, got, _ = sim.get(CM + "/keep")
    assert code == 200 and got["metadata"]["uid"] == o["metadata"]["uid"]
    assert int(sim.get(CM)[1]["metadata"]["resourceVersion"]) >= rv
    _, o2, _ = sim.post(CM, cm("after"))
    assert int(o2["metadata"]["resourceVersion"]) > rv
    # custom resources are served again after a restart, and old versions are gone from the history
    install_crd(sim)
    sim.post(W, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "p"}, "spec": {}})
    old_rv = sim.get(W)[1]["metadata"]["resourceVersion"]
    sim.patch(W + "/p", {"spec": {"size": 7}})
    sim.restart()
    code, w, _ = sim.get(W + "/p")
    assert code == 200 and w["spec"]["size"] == 7
    ev = sim.watch(W, {"resourceVersion": old_rv, "timeoutSeconds": "2"}).collect()
    assert ev[0]["type"] == "ERROR" and ev[0]["object"]["code"] == 410


def test_tls_requires_token(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, tls=True)
    assert sim.url.startswith("https://")
    assert sim.get(CM)[0] == 200
    tok = sim.token
    sim.token = "wrong"
    code, body, _ = sim.get(CM)
    sim.token = tok
    assert code == 401 and body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    with open(sim.kubeconfig) as f:
        kc = f.read()
    assert "certificate-authority-data:" in kc and "token: " + tok in kc


def test_client_disconnects_leave_no_tracebacks(sim):
    for _ in range(5):
        w = sim.watch(CM, {"timeoutSeconds": "30"})
        w.close()
    time.sleep(1.5)
    assert "Traceback" not in sim.stderr()


# ---- kubectl (default flags, fresh discovery cache per call) --------------------------------------------------
def test_kubectl_get_apply_label_delete(sim, tmp_path):
    out = sim.kubectl("get", "namespaces").stdout
    assert "default" in out and "kube-system" in out and "STATUS" in out
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc\ndata:\n  k: v\n")
    assert "configmap/kc created" in sim.kubectl("apply", "-f", str(f)).stdout
    assert "configmap/kc unchanged" in sim.kubectl("apply", "-f", str(f)).stdout
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc\ndata:\n  k: w\n")
    assert "configmap/kc configured" in sim.kubectl("apply", "-f", str(f)).stdout
    assert sim.get(CM + "/kc")[1]["data"] == {"k": "w"}
    sim.kubectl("label", "configmap", "kc", "tier=gpu")
    out = sim.kubectl("get", "configmaps", "-l", "tier=gpu", "-o", "name").stdout
    assert out.strip() == "configmap/kc"
    obj = json.loads(sim.kubectl("get", "configmap", "kc", "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"tier": "gpu"}
    assert "serverside-applied" in sim.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f)).stdout
    assert 'configmap "kc" deleted' in sim.kubectl("delete", "configmap", "kc").stdout
    r = sim.kubectl("get", "configmap", "kc", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_kubectl_get_watch_sees_changes(sim):
    sim.post(CM, cm("gw"))
    proc = subprocess.Popen(["kubectl", "get", "configmaps", "-w", "--request-timeout=0"],
                            env=dict(os.environ, KUBECONFIG=sim.kubeconfig, KUBECACHEDIR=sim.workdir + "/kc-watch"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split() == ["NAME", "DATA", "AGE"]
        assert proc.stdout.readline().split()[:2] == ["gw", "1"]
        sim.post(CM, cm("gw2", data={"a": "1", "b": "2"}))
        # watch events are Tables too (Accept as=Table), so the DATA column stays
        assert proc.stdout.readline().split()[:2] == ["gw2", "2"]
    finally:
        proc.kill()
        proc.wait()


def test_kubectl_wait_for_condition(sim):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wp"},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    sim.post(PODS, pod)
    threading.Timer(0.5, lambda: sim.patch(PODS + "/wp/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}})).start()
    r = sim.kubectl("wait", "--for=condition=Ready", "pod/wp", "--timeout=20s")
    assert "condition met" in r.stdout


# ---- custom resources and server-side apply over HTTP ----------------------------------------------------
CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.com"},
       "spec": {"group": "example.com", "scope": "Cluster",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                              "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                  "spec": {"type": "object", "properties": {
                                      "size": {"type": "integer", "minimum": 0, "default": 1},
                                      "color": {"type": "string"}}},
                                  "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
W = "/apis/example.com/v1/widgets"


def install_crd(sim):
    assert sim.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)[0] == 201

    def established():
        _, c, _ = sim.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        return any(x["type"] == "Established" and x["status"] == "True"
                   for x in c.get("status", {}).get("conditions", []))
    sim.wait_for(established, what="CRD Established")


def test_custom_resources_patch_types_and_validation(sim):
    install_crd(sim)
    code, w, _ = sim.post(W, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"},
                              "spec": {"color": "red", "bogus": 1}})
    assert code == 201 and w["spec"] == {"color": "red", "size": 1}  # pruned and defaulted
    code, lst, _ = sim.get(W)
    assert lst["kind"] == "WidgetList" and lst["items"][0]["kind"] == "Widget"  # CR list items keep kind
    code, body, _ = sim.patch(W + "/a", {"spec": {"size": 2}}, ctype="application/strategic-merge-patch+json")
    assert code == 415 and is_status(body, 415, "UnsupportedMediaType")
    assert "application/strategic-merge-patch+json" not in body["message"]
    code, body, _ = sim.patch(W + "/a", {"spec": {"size": -1}})
    assert code == 422 and body["details"]["kind"] == "Widget" and body["details"]["causes"][0]["field"] == \
        "spec.size"
    assert body["message"].startswith('Widget.example.com "a" is invalid: spec.size')
    code, body, _ = sim.post(W, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "b"},
                                 "spec": {"bogus": 1}}, query={"fieldValidation": "Strict"})
    assert code == 400 and 'unknown field "spec.bogus"' in body["message"]
    code, _, hdr = sim.post(W, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "b"},
                                "spec": {"bogus": 1}})
    assert code == 201 and "unknown field" in hdr.get("warning", "")
    w = sim.get(W + "/a")[1]
    w["metadata"].pop("resourceVersion")
    code, body, _ = sim.put(W + "/a", w)
    assert code == 422 and "must be specified for an update" in body["message"]
    code, body, _ = sim.get("/apis/example.com/v1/namespaces/default/widgets/a")
    assert code == 404  # cluster-scoped CR under a namespace path
    code, w2, _ = sim.patch(W + "/a/status", {"status": {"phase": "Ready"}})
    assert code == 200 and w2["status"] == {"phase": "Ready"} and w2["metadata"]["generation"] == 1


def test_server_side_apply_ownership_and_conflict(sim):
    install_crd(sim)
    ctype = "application/apply-patch+yaml"
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "s"},
           "spec": {"size": 3, "color": "red"}}
    code, body, _ = sim.patch(W + "/s", obj, ctype=ctype)
    assert code == 422 and "fieldManager: Required value" in body["message"]
    code, w, _ = sim.patch(W + "/s", obj, ctype=ctype, query={"fieldManager": "alice"})
    assert code == 201 and w["spec"]["size"] == 3
    mf = w["metadata"]["managedFields"]
    assert mf[0]["manager"] == "alice" and mf[0]["operation"] == "Apply"
    code, body, _ = sim.patch(W + "/s", dict(obj, spec={"size": 4}), ctype=ctype, query={"fieldManager": "bob"})
    assert code == 409 and body["reason"] == "Conflict"
    assert body["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    assert body["details"]["causes"][0]["field"] == ".spec.size"
    code, w, _ = sim.patch(W + "/s", dict(obj, spec={"size": 4}), ctype=ctype,
                           query={"fieldManager": "bob", "force": "true"})
    assert code == 200 and w["spec"]["size"] == 4
    # alice stops applying color (and agrees on size): color is removed
    code, w, _ = sim.patch(W + "/s", dict(obj, spec={"size": 4}), ctype=ctype, query={"fieldManager": "alice"})
    assert code == 200 and "color" not in w["spec"] and w["spec"]["size"] == 4
    code, body, _ = sim.patch(W + "/s", b"spec:\n  size: 5\n", ctype=ctype, query={"fieldManager": "alice"})
    assert code == 400 and "only as JSON" in body["message"]
    code, body, _ = sim.patch(W + "/s", {"spec": {}}, query={"force": "true"})
    assert code == 422 and "force" in body["message"]
    # a non-apply write records an Update entry for its manager
    code, w, _ = sim.patch(W + "/s", {"spec": {"color": "blue"}}, query={"fieldManager": "carol"})
    assert any(e["manager"] == "carol" and e["operation"] == "Update" for e in w["metadata"]["managedFields"])


def test_kubectl_crd_printer_columns(sim, tmp_path):
    install_crd(sim)
    sim.post(W, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "k"}, "spec": {}})
    out = sim.kubectl("get", "widgets").stdout
    assert out.split("\n")[0].split() == ["NAME", "AGE"] and out.split("\n")[1].startswith("k ")


# ---- more verbs and paths --------------------------------------------------------------------------------
def test_watch_single_object_path_and_deletecollection(sim):
    for n in ("d1", "d2", "d3"):
        sim.post(CM, cm(n, {"grp": "a" if n != "d3" else "b"}))
    w = sim.watch("/api/v1/watch/namespaces/default/configmaps/d2", {"timeoutSeconds": "3"})
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "d2"
    sim.patch(CM + "/d1", {"data": {"x": "1"}})
    sim.patch(CM + "/d2", {"data": {"x": "1"}})
    ev = w.next()
    assert ev["type"] == "MODIFIED" and ev["object"]["metadata"]["name"] == "d2"
    w.close()
    code, body, _ = sim.delete(CM, query={"labelSelector": "grp=a"})
    assert code == 200 and body["kind"] == "ConfigMapList" and len(body["items"]) == 2
    names = [it["metadata"]["name"] for it in sim.get(CM)[1]["items"]]
    assert names == ["d3"]
    c = sim.counters()
    assert c["watches"]["configmaps"] >= 1
    assert sim.count(verb="deletecollection", resource="configmaps") == 1


def test_lease_put_creates_and_needs_resource_version(sim):
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ctrl"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "ctrl"},
             "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                      "renewTime": "2024-05-01T10:00:00.000000Z"}}
    code, got, _ = sim.put(path, lease)
    assert code == 201 and got["spec"]["holderIdentity"] == "me"
    code, body, _ = sim.put(path, lease)
    assert code == 422
    lease["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"]
    lease["spec"]["holderIdentity"] = "you"
    code, got2, _ = sim.put(path, lease)
    assert code == 200 and got2["spec"]["holderIdentity"] == "you"
    code, body, _ = sim.put(path, lease)
    assert code == 409 and body["reason"] == "Conflict"


def test_namespace_delete_removes_contents(sim):
    assert sim.post("/api/v1/namespaces", {"metadata": {"name": "tmp"}})[0] == 201
    sim.post("/api/v1/namespaces/tmp/configmaps", cm("inside"))
    code, body, _ = sim.delete("/api/v1/namespaces/tmp")
    assert code == 200
    assert sim.get("/api/v1/namespaces/tmp/configmaps/inside")[0] == 404
    assert sim.get("/api/v1/namespaces/tmp")[0] == 404


def test_large_body_with_expect_continue_and_chunked(sim):
    big = cm("big", data={"k%d" % i: "v" * 100 for i in range(200)})
    conn = sim.connection()
    data = json.dumps(big).encode()
    conn.putrequest("POST", CM)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for i in range(0, len(data), 4096):
        part = data[i:i + 4096]
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 201 and len(json.loads(resp.read())["data"]) == 200
    conn.close()
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "POST",
                        "-H", "Content-Type: application/json", "--data-binary",
                        json.dumps(cm("big2", data=big["data"])), sim.url + CM], capture_output=True, text=True)
    code, took = r.stdout.split()
    assert code == "201" and float(took) < 0.9  # curl's Expect: 100-continue is answered, no 1 s stall


def test_kubectl_over_tls_and_daemonset_apply(kubesim, tmp_path):
    sim = kubesim(gpu_nodes=2, cpu_nodes=0, tls=True)
    assert "gpu" in sim.kubectl("get", "nodes").stdout
    f = tmp_path / "ds.yaml"
    f.write_text(json.dumps(ds("kds")))
    sim.kubectl("apply", "-f", str(f))
    d = ds("kds", image="img:2")
    d["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s:1"})
    f.write_text(json.dumps(d))
    assert "daemonset.apps/kds configured" in sim.kubectl("apply", "-f", str(f)).stdout
    _, got, _ = sim.get(DS + "/kds")
    assert [c["image"] for c in got["spec"]["template"]["spec"]["containers"]] == ["img:2", "s:1"]
    assert got["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"


def test_history_bound_gives_410_for_versions_older_than_kept(kubesim):
    sim = kubesim(gpu_nodes=1, cpu_nodes=0, history=10)
    sim.post(CM, cm("h"))
    start = sim.get(CM)[1]["metadata"]["resourceVersion"]
    for i in range(30):
        sim.patch(CM + "/h", {"data": {"i": str(i)}})
    ev = sim.watch(CM, {"resourceVersion": start, "timeoutSeconds": "2"}).collect()
    assert ev[0]["type"] == "ERROR" and ev[0]["object"]["code"] == 410
    recent = sim.get(CM)[1]["metadata"]["resourceVersion"]
    sim.patch(CM + "/h", {"data": {"i": "last"}})
    ev = sim.watch(CM, {"resourceVersion": recent, "timeoutSeconds": "1"}).collect()
    assert [e["type"] for e in ev] == ["MODIFIED"]


def test_scale_paged_list_and_watch_deliver_every_node(kubesim):
    """1,000 realistic nodes: every page is consistent, and a watch gets one MODIFIED per node."""
    n = 1000
    sim = kubesim(gpu_nodes=n, cpu_nodes=0)
    names, cont, rv = [], None, None
    while True:
        q = {"limit": "500"}
        if cont:
            q["continue"] = cont
        code, page, _ = sim.get("/api/v1/nodes", query=q)
        assert code == 200
        rv = rv or page["metadata"]["resourceVersion"]
        names += [it["metadata"]["name"] for it in page["items"]]
        cont = page["metadata"].get("continue")
        if not cont:
            break
    assert len(names) == n == len(set(names))
    w = sim.watch("/api/v1/nodes", {"resourceVersion": rv, "timeoutSeconds": "60"}, timeout=60)
    touched = sim.admin("touch-nodes", {"label": "scale-test", "value": "1"})["touched"]
    assert touched == n
    seen = set()
    for ev in w.events():
        if ev["type"] == "MODIFIED" and ev["object"]["metadata"]["labels"].get("scale-test") == "1":
            seen.add(ev["object"]["metadata"]["name"])
            if len(seen) == n:
                break
    w.close()
    assert seen == set(names)
