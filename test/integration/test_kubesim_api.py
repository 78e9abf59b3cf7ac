"""kubesim API surface over HTTP and through kubectl with default flags: discovery, /version,
OpenAPI v3, Tables and printer columns, CRDs (validation 422, strict unknown fields, pruning,
defaults, status subresource, Established), server-side apply ownership and conflicts,
describe/wait/get -w/label/delete. Each kubectl call gets a fresh discovery cache (Sim.kubectl)."""

import json
import os
import subprocess
import threading
import time

import pytest

from kubesim_client import repo_root

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_NAME = "clustergpupolicies.gpupolicy.dev"
CGP = "/apis/gpupolicy.dev/v1alpha1/clustergpupolicies"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;" \
        "g=meta.k8s.io,application/json"
CRD_FILE = os.path.join(repo_root(), "crds", "gpupolicy.dev_clustergpupolicies.yaml")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    # One simulator for the module keeps the suite fast; tests use distinct object names.
    from kubesim_client import Sim
    s = Sim(tmp_path_factory.mktemp("kubesim-api"), gpu_nodes=2, cpu_nodes=1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def crd(sim):
    """The project's CRD installed with plain `kubectl apply -f crds/` and Established."""
    out = sim.kubectl("apply", "-f", os.path.join(repo_root(), "crds")).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/%s created" % CRD_NAME in out
    out = sim.kubectl("wait", "--for", "condition=established", "crd/" + CRD_NAME,
                      "--timeout=10s").stdout
    assert "condition met" in out
    return sim


def cgp(name, spec=None, status=None):
    o = {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
         "metadata": {"name": name}, "spec": spec if spec is not None else {}}
    if status is not None:
        o["status"] = status
    return o


def write(tmp_path, name, obj):
    f = tmp_path / name
    f.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(f)


def apply_patch(sim, path, obj, manager, force=False):
    q = {"fieldManager": manager}
    if force:
        q["force"] = "true"
    return sim.patch(path, obj, ctype="application/apply-patch+yaml", query=q)


# ---- discovery, version, OpenAPI ----------------------------------------------------------------
def test_version_and_legacy_discovery(sim):
    code, v, hdr = sim.get("/version")
    assert code == 200 and v["major"] == "1" and int(v["minor"]) >= 30
    assert v["gitVersion"].startswith("v1.")
    # kubectl asks for aggregated discovery first; kubesim answers the plain forms, labelled so
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
              "application/json")
    code, api, hdr = sim.get("/api", headers={"Accept": accept})
    assert code == 200 and api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    assert hdr["content-type"] == "application/json"
    code, apis, hdr = sim.get("/apis", headers={"Accept": accept})
    assert hdr["content-type"] == "application/json" and apis["kind"] == "APIGroupList"
    groups = {g["name"]: g for g in apis["groups"]}
    for g in ("apps", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io",
              "node.k8s.io", "apiextensions.k8s.io"):
        assert groups[g]["preferredVersion"] == {"groupVersion": g + "/v1", "version": "v1"}
    code, core, _ = sim.get("/api/v1")
    res = {r["name"]: r for r in core["resources"]}
    for name in ("nodes", "namespaces", "pods", "services", "configmaps", "serviceaccounts",
                 "secrets", "events", "nodes/status", "pods/status"):
        assert name in res, name
    assert res["pods"]["namespaced"] and not res["nodes"]["namespaced"]
    assert res["configmaps"]["shortNames"] == ["cm"] and res["pods"]["singularName"] == "pod"
    code, rbac, _ = sim.get("/apis/rbac.authorization.k8s.io/v1")
    assert {r["name"] for r in rbac["resources"]} == {"roles", "rolebindings", "clusterroles",
                                                      "clusterrolebindings"}
    code, apps, _ = sim.get("/apis/apps/v1")
    ds = {r["name"]: r for r in apps["resources"]}
    assert "daemonsets/status" in ds and ds["daemonsets"]["categories"] == ["all"]
    assert sim.get("/apis/monitoring.coreos.com/v1")[0] == 404


def test_kubectl_api_resources(sim):
    out = sim.kubectl("api-resources").stdout
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert "ds" in lines["daemonsets"] and "apps/v1" in lines["daemonsets"]
    assert "true" in lines["leases"].split() and "Lease" in lines["leases"]
    assert "runtimeclasses" in lines and "clusterrolebindings" in lines
    assert "servicemonitors" not in lines


def test_openapi_v3_index_and_documents(crd):
    code, idx, _ = crd.get("/openapi/v3")
    assert code == 200
    url = idx["paths"]["apis/gpupolicy.dev/v1alpha1"]["serverRelativeURL"]
    assert "?hash=" in url and "api/v1" in idx["paths"]
    code, doc, _ = crd.get(url)
    assert code == 200 and doc["openapi"].startswith("3.")
    op = doc["paths"][CGP + "/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "gpupolicy.dev",
                                                     "version": "v1alpha1",
                                                     "kind": "ClusterGPUPolicy"}
    assert "fieldValidation" in [p["name"] for p in op["parameters"]]
    assert crd.get("/openapi/v3/apis/nope.dev/v1")[0] == 404


def test_servicemonitors_served_only_once_their_crd_exists(sim, tmp_path):
    assert sim.get("/apis/monitoring.coreos.com/v1/namespaces/default/servicemonitors")[0] == 404
    crd_obj = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                 "names": {"plural": "servicemonitors", "singular": "servicemonitor",
                           "kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                           "shortNames": ["smon"], "categories": ["prometheus-operator"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object", "properties": {"spec": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    out = sim.kubectl("apply", "-f", write(tmp_path, "smon-crd.json", crd_obj)).stdout
    assert "created" in out
    sim.wait_for(lambda: sim.get("/apis/monitoring.coreos.com/v1")[0] == 200, what="discovery")
    res = sim.get("/apis/monitoring.coreos.com/v1")[1]["resources"]
    assert res[0]["name"] == "servicemonitors" and res[0]["namespaced"] is True
    smon = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "dcgm", "namespace": "default"},
            "spec": {"endpoints": [{"port": "metrics"}], "selector": {}}}
    out = sim.kubectl("apply", "-f", write(tmp_path, "smon.json", smon)).stdout
    assert "servicemonitor.monitoring.coreos.com/dcgm created" in out
    assert "dcgm" in sim.kubectl("get", "smon", "-n", "default").stdout
    out = sim.kubectl("get", "servicemonitors", "-A").stdout.splitlines()
    assert out[0].split() == ["NAMESPACE", "NAME", "AGE"] and out[1].split()[:2] == ["default",
                                                                                     "dcgm"]
    # deleting the CRD stops serving the resource and removes its objects
    sim.kubectl("delete", "crd", "servicemonitors.monitoring.coreos.com")
    sim.wait_for(lambda: sim.get("/apis/monitoring.coreos.com/v1")[0] == 404, what="unserved")
    groups = [g["name"] for g in sim.get("/apis")[1]["groups"]]
    assert "monitoring.coreos.com" not in groups


# ---- CRDs and custom resources ----------------------------------------------------------------
def test_crd_status_and_discovery_after_apply(crd):
    code, obj, _ = crd.get(CRDS + "/" + CRD_NAME)
    conds = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conds["Established"]["status"] == "True"
    assert conds["Established"]["reason"] == "InitialNamesAccepted"
    assert conds["NamesAccepted"]["status"] == "True"
    assert obj["status"]["acceptedNames"]["shortNames"] == ["cgp"]
    assert obj["status"]["storedVersions"] == ["v1alpha1"]
    code, disc, _ = crd.get("/apis/gpupolicy.dev/v1alpha1")
    res = {r["name"]: r for r in disc["resources"]}
    assert res["clustergpupolicies"]["namespaced"] is False
    assert res["clustergpupolicies"]["categories"] == ["gpu"]
    assert res["clustergpupolicies/status"]["verbs"] == ["get", "patch", "update"]
    # cluster-scoped: a namespaced path is not served
    assert crd.get("/apis/gpupolicy.dev/v1alpha1/namespaces/default/clustergpupolicies")[0] == 404


def test_invalid_crd_is_rejected(sim):
    bad = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.example.com"},
           "spec": {"group": "other.example.com", "scope": "Cluster",
                    "names": {"plural": "things", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    code, body, _ = sim.post(CRDS, bad)
    assert code == 422 and body["reason"] == "Invalid"
    assert body["details"]["kind"] == "CustomResourceDefinition"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["message"].startswith(
        'CustomResourceDefinition.apiextensions.k8s.io "things.example.com" is invalid: ')


def test_cr_422_with_causes_over_http_and_kubectl(crd, tmp_path):
    obj = cgp("bad", {"driver": {"imagePullPolicy": "Sometimes"},
                      "daemonsets": {"maxUnavailable": "0"}})
    code, body, _ = crd.post(CGP, obj)
    assert code == 422 and body["reason"] == "Invalid" and body["code"] == 422
    assert body["details"]["kind"] == "ClusterGPUPolicy"
    assert body["details"]["group"] == "gpupolicy.dev" and body["details"]["name"] == "bad"
    causes = {c["field"]: c for c in body["details"]["causes"]}
    c = causes["spec.driver.imagePullPolicy"]
    assert c["reason"] == "FieldValueNotSupported"
    assert c["message"] == ('Unsupported value: "Sometimes": supported values: "IfNotPresent", '
                            '"Always", "Never"')
    assert causes["spec.daemonsets.maxUnavailable"]["reason"] == "FieldValueInvalid"
    assert body["message"].startswith('ClusterGPUPolicy.gpupolicy.dev "bad" is invalid: [')
    r = crd.kubectl("apply", "-f", write(tmp_path, "bad.json", obj), check=False)
    assert r.returncode != 0
    assert 'The ClusterGPUPolicy "bad" is invalid' in r.stderr
    assert "spec.driver.imagePullPolicy: Unsupported value" in r.stderr
    assert crd.get(CGP + "/bad")[0] == 404


def test_strict_unknown_fields_warn_and_pruning(crd, tmp_path):
    obj = cgp("unk", {"bogus": 1, "driver": {"version": "555.1", "extra": True}})
    f = write(tmp_path, "unk.json", obj)
    r = crd.kubectl("apply", "-f", f, check=False)  # default --validate=strict
    assert r.returncode != 0 and 'strict decoding error: unknown field "spec.bogus"' in r.stderr
    r = crd.kubectl("apply", "--validate=warn", "-f", f)
    assert 'unknown field "spec.bogus"' in r.stderr and "created" in r.stdout
    code, got, _ = crd.get(CGP + "/unk")
    assert "bogus" not in got["spec"] and "extra" not in got["spec"]["driver"]
    # defaults were applied where the parent exists
    assert got["spec"]["driver"]["version"] == "555.1" and got["spec"]["driver"]["enabled"] is True
    code, body, hdr = crd.post(CGP, cgp("unk2", {"bogus": 1}), query={"fieldValidation": "Warn"})
    assert code == 201 and 'unknown field \\"spec.bogus\\"' in hdr.get("warning", "")
    code, body, _ = crd.post(CGP, cgp("unk3", {"bogus": 1}),
                             query={"fieldValidation": "Strict"})
    assert code == 400 and body["reason"] == "BadRequest"


def test_status_subresource_and_generation(crd):
    code, o, _ = crd.post(CGP, cgp("gen", {"driver": {"version": "550.1"}},
                                   status={"nodesSummary": "9/9"}))
    assert code == 201 and o["metadata"]["generation"] == 1 and "status" not in o
    o["status"] = {"nodesSummary": "1/1"}
    o["spec"]["driver"]["version"] = "550.2"
    code, o2, _ = crd.put(CGP + "/gen", o)
    assert code == 200 and o2["metadata"]["generation"] == 2 and "status" not in o2
    code, o3, _ = crd.patch(CGP + "/gen/status", {"status": {"nodesSummary": "1/2"},
                                                   "spec": {"driver": {"version": "1"}}})
    assert code == 200 and o3["status"]["nodesSummary"] == "1/2"
    assert o3["metadata"]["generation"] == 2 and o3["spec"]["driver"]["version"] == "550.2"
    # strategic merge patch is not for custom resources
    code, body, _ = crd.patch(CGP + "/gen", {"spec": {}},
                              ctype="application/strategic-merge-patch+json")
    assert code == 415 and body["reason"] == "UnsupportedMediaType"
    # status is validated against the schema too
    code, body, _ = crd.patch(CGP + "/gen/status", {"status": {"observedGeneration": "x"}})
    assert code == 422 and body["details"]["causes"][0]["field"] == "status.observedGeneration"


# ---- Tables and printer columns -----------------------------------------------------------------
def test_table_for_crd_printer_columns(crd):
    crd.post(CGP, cgp("tbl", {"driver": {"version": "550.9"}}))
    crd.patch(CGP + "/tbl/status", {"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "AllOperandsReady",
                        "message": "ok", "lastTransitionTime": "2024-05-01T10:00:00Z"}],
        "nodesSummary": "2/2", "driverSummary": "550.9", "gpus": {"allocatable": 16}}})
    code, t, hdr = crd.get(CGP + "/tbl", headers={"Accept": TABLE})
    assert code == 200 and t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    cols = [(c["name"], c["type"], c["priority"]) for c in t["columnDefinitions"]]
    assert cols == [("Name", "string", 0), ("Ready", "string", 0), ("Nodes", "string", 0),
                    ("GPUs", "integer", 0), ("Driver", "string", 0), ("Upgrade", "string", 1),
                    ("Reason", "string", 1), ("Age", "date", 0)]
    cells = t["rows"][0]["cells"]
    assert cells[:7] == ["tbl", "True", "2/2", 16, "550.9", None, "AllOperandsReady"]  # no upgrade
    assert cells[7].endswith("s") or cells[7].endswith("m")
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    code, t, _ = crd.get(CGP, headers={"Accept": TABLE}, query={"includeObject": "Object"})
    row = [r for r in t["rows"] if r["cells"][0] == "tbl"][0]
    assert row["object"]["kind"] == "ClusterGPUPolicy" and row["object"]["spec"]["driver"]
    assert t["metadata"]["resourceVersion"]
    out = crd.kubectl("get", "clustergpupolicies").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "NODES", "GPUS", "DRIVER", "AGE"]
    row = [ln.split() for ln in out if ln.startswith("tbl ")][0]
    assert row[:5] == ["tbl", "True", "2/2", "16", "550.9"]
    wide = crd.kubectl("get", "cgp", "tbl", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "NODES", "GPUS", "DRIVER", "UPGRADE", "REASON", "AGE"]
    assert "AllOperandsReady" in wide[1]
    assert "clustergpupolicy.gpupolicy.dev/tbl" in crd.kubectl("get", "gpu", "-o", "name").stdout


def test_builtin_tables_through_kubectl(sim):
    out = sim.kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert any(ln.split()[1] == "Ready" for ln in out[1:])
    wide = sim.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()[0].split()
    assert wide[5:8] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE"]
    sim.post("/apis/apps/v1/namespaces/default/daemonsets", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "tds"},
        "spec": {"selector": {"matchLabels": {"app": "tds"}},
                 "template": {"metadata": {"labels": {"app": "tds"}},
                              "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "c", "image": "busybox:1"}]}}}})
    out = sim.kubectl("get", "ds", "-n", "default").stdout.splitlines()
    assert out[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                              "NODE", "SELECTOR", "AGE"]
    assert "kubernetes.io/os=linux" in out[1]
    pods = sim.kubectl("get", "pods", "-A").stdout.splitlines()[0].split()
    assert pods == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]


# ---- server-side apply ------------------------------------------------------------------------
def test_ssa_ownership_conflict_force_and_removal(crd, tmp_path):
    f = write(tmp_path, "ssa.json", cgp("ssa", {"driver": {"version": "550.1"},
                                                "toolkit": {"version": "v1.15.0"}}))
    out = crd.kubectl("apply", "--server-side", "-f", f).stdout
    assert "clustergpupolicy.gpupolicy.dev/ssa serverside-applied" in out
    code, o, _ = crd.get(CGP + "/ssa")
    (entry,) = [e for e in o["metadata"]["managedFields"] if e["manager"] == "kubectl"]
    assert entry["operation"] == "Apply" and entry["fieldsType"] == "FieldsV1"
    assert entry["fieldsV1"]["f:spec"]["f:driver"] == {"f:version": {}}
    # another manager changing an owned field conflicts ...
    code, body, _ = apply_patch(crd, CGP + "/ssa", cgp("ssa", {"driver": {"version": "560.2"}}),
                                "gpu-policy-controller")
    assert code == 409 and body["reason"] == "Conflict"
    assert body["message"] == ('Apply failed with 1 conflict: conflict with "kubectl": '
                               '.spec.driver.version')
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                          "message": 'conflict with "kubectl"',
                                          "field": ".spec.driver.version"}]
    # ... the same value is shared, force takes it over
    code, o, _ = apply_patch(crd, CGP + "/ssa", cgp("ssa", {"driver": {"version": "550.1"}}),
                             "gpu-policy-controller")
    assert code == 200
    code, o, _ = apply_patch(crd, CGP + "/ssa", cgp("ssa", {"driver": {"version": "560.2"}}),
                             "gpu-policy-controller", force=True)
    assert code == 200 and o["spec"]["driver"]["version"] == "560.2"
    owners = {e["manager"]: e for e in o["metadata"]["managedFields"]}
    assert "f:driver" not in owners["kubectl"]["fieldsV1"]["f:spec"]
    r = crd.kubectl("apply", "--server-side", "-f", f, check=False)
    assert r.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "gpu-policy-controller": ' \
           '.spec.driver.version' in r.stderr
    # kubectl stops applying toolkit.version: the field is removed (nobody else owns it)
    f2 = write(tmp_path, "ssa2.json", cgp("ssa", {"driver": {"version": "560.2"}}))
    crd.kubectl("apply", "--server-side", "-f", f2)
    code, o, _ = crd.get(CGP + "/ssa")
    assert o["spec"]["toolkit"]["version"] != "v1.15.0"  # back to the schema default
    # apply creates missing objects (201) and requires a fieldManager
    code, o, _ = apply_patch(crd, CGP + "/ssa-new", cgp("ssa-new"), "gpu-policy-controller")
    assert code == 201 and o["metadata"]["managedFields"][0]["manager"] == "gpu-policy-controller"
    code, body, _ = crd.patch(CGP + "/ssa-new", cgp("ssa-new"),
                              ctype="application/apply-patch+yaml")
    assert code == 422 and "fieldManager: Required value" in body["message"]


def test_update_records_managed_fields_for_conflicts(sim):
    path = "/api/v1/namespaces/default/configmaps"
    code, o, _ = sim.post(path, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "mf"}, "data": {"a": "1"}},
                          query={"fieldManager": "kubectl-client-side-apply"})
    assert code == 201
    (e,) = o["metadata"]["managedFields"]
    assert (e["manager"], e["operation"], e["apiVersion"]) == ("kubectl-client-side-apply",
                                                              "Update", "v1")
    assert e["fieldsV1"] == {"f:data": {"f:a": {}}}
    code, body, _ = apply_patch(sim, path + "/mf", {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "mf"},
                                                    "data": {"a": "2"}}, "ctrl")
    assert code == 409
    assert body["details"]["causes"][0]["message"] == \
        'conflict with "kubectl-client-side-apply" using v1'


def test_controller_status_apply_through_status_subresource(crd):
    crd.post(CGP, cgp("st"))
    code, o, _ = apply_patch(crd, CGP + "/st/status", {
        "apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
        "metadata": {"name": "st"}, "status": {"nodesSummary": "0/0"}},
        "gpu-policy-controller", force=True)
    assert code == 200 and o["status"]["nodesSummary"] == "0/0"
    assert o["metadata"]["generation"] == 1


# ---- kubectl verbs ------------------------------------------------------------------------------
def test_kubectl_describe_label_wait_delete(crd, tmp_path):
    out = crd.kubectl("apply", "-f", os.path.join(repo_root(), "manifests", "samples",
                                                  "minimal.yaml")).stdout
    assert "clustergpupolicy.gpupolicy.dev/gpus created" in out
    d = crd.kubectl("describe", "cgp", "gpus").stdout
    assert "Name:         gpus" in d and "Kind:         ClusterGPUPolicy" in d
    assert "Driver:" in d
    assert "labeled" in crd.kubectl("label", "cgp", "gpus", "team=ml").stdout
    assert crd.kubectl("get", "cgp", "-l", "team=ml", "-o", "name").stdout.strip() == \
        "clustergpupolicy.gpupolicy.dev/gpus"
    threading.Timer(0.5, lambda: crd.patch(CGP + "/gpus/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "AllOperandsReady", "message": "",
         "lastTransitionTime": "2024-05-01T10:00:00Z"}]}})).start()
    out = crd.kubectl("wait", "--for=condition=Ready", "clustergpupolicy/gpus",
                      "--timeout=20s").stdout
    assert "condition met" in out
    node = crd.kubectl("describe", "node", "gpu-node-0").stdout
    assert "Name:               gpu-node-0" in node
    out = crd.kubectl("delete", "cgp", "gpus").stdout
    assert 'clustergpupolicy.gpupolicy.dev "gpus" deleted' in out
    assert crd.get(CGP + "/gpus")[0] == 404


class LineReader:
    """Lines of a subprocess's stdout with a timeout (a blocking readline would hang the suite)."""

    def __init__(self, stream):
        import queue
        self.q = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def until(self, pred, timeout=15):
        import queue
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no matching line within %ss; got %r" % (timeout, seen))
            if line is None:
                raise AssertionError("stream ended; got %r" % seen)
            seen.append(line)
            if pred(line.split()):
                return line.split(), seen


def test_kubectl_get_watch_keeps_printer_columns(crd):
    crd.post(CGP, cgp("w1"))
    env = dict(os.environ, KUBECONFIG=crd.kubeconfig, HOME=crd.workdir,
               KUBECACHEDIR=os.path.join(crd.workdir, "kc-watch-cgp"))
    proc = subprocess.Popen(["kubectl", "get", "cgp", "w1", "-w", "--request-timeout=0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = LineReader(proc.stdout)
        head, _ = lines.until(lambda f: f and f[0] == "NAME")
        assert head == ["NAME", "READY", "NODES", "GPUS", "DRIVER", "AGE"]
        lines.until(lambda f: f and f[0] == "w1")
        time.sleep(0.3)
        crd.patch(CGP + "/w1/status", {"status": {"nodesSummary": "5/5"}})
        row, seen = lines.until(lambda f: f and f[0] == "w1")
        assert "5/5" in row, seen  # the change is printed with the CRD's columns
    finally:
        proc.kill()
        proc.wait()


def test_repeated_apply_keeps_resource_version(crd):
    body = cgp("noop", {"driver": {"version": "550.7"}})
    code, a, _ = apply_patch(crd, CGP + "/noop", body, "gpu-policy-controller", force=True)
    assert code == 201
    code, b, _ = apply_patch(crd, CGP + "/noop", body, "gpu-policy-controller", force=True)
    assert code == 200 and b["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"]
    ds_path = "/apis/apps/v1/namespaces/default/daemonsets"
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "noop-ds"},
          "spec": {"selector": {"matchLabels": {"app": "noop"}},
                   "updateStrategy": {"type": "OnDelete"},
                   "template": {"metadata": {"labels": {"app": "noop"}},
                                "spec": {"nodeSelector": {"none": "x"},
                                         "containers": [{"name": "c", "image": "i:1"}]}}}}
    code, a, _ = apply_patch(crd, ds_path + "/noop-ds", ds, "gpu-policy-controller", force=True)
    assert code == 201
    # let the simulated DaemonSet controller write its status first
    crd.wait_for(lambda: crd.get(ds_path + "/noop-ds")[1].get("status", {}).get(
        "observedGeneration") == 1, what="DaemonSet status")
    a = crd.get(ds_path + "/noop-ds")[1]
    code, b, _ = apply_patch(crd, ds_path + "/noop-ds", ds, "gpu-policy-controller", force=True)
    assert code == 200 and b["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"]


def test_kubectl_client_side_apply_merges_builtin_lists_by_key(sim, tmp_path):
    def ds(containers):
        return {"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "csa", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "csa"}},
                         "template": {"metadata": {"labels": {"app": "csa"}},
                                      "spec": {"nodeSelector": {"none": "x"},
                                               "containers": containers}}}}
    two = [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]
    assert "created" in sim.kubectl("apply", "-f", write(tmp_path, "csa1.json", ds(two))).stdout
    one = [{"name": "a", "image": "a:2"}]
    assert "configured" in sim.kubectl("apply", "-f", write(tmp_path, "csa2.json",
                                                             ds(one))).stdout
    got = sim.get("/apis/apps/v1/namespaces/default/daemonsets/csa")[1]
    cs = got["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in cs] == [("a", "a:2")]
    assert cs[0]["imagePullPolicy"] == "IfNotPresent"  # server-side defaults kept


def test_crd_update_changes_columns_schema_and_versions(sim):
    crd_obj = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object", "properties": {"spec": {
                                       "type": "object", "properties": {
                                           "size": {"type": "integer", "minimum": 0,
                                                    "default": 1}}}}}}}]}}
    code, created, _ = sim.post(CRDS, crd_obj)
    assert code == 201
    assert created["spec"]["names"]["listKind"] == "WidgetList"  # defaulted
    w = "/apis/example.com/v1/namespaces/default/widgets"
    sim.wait_for(lambda: sim.get(w)[0] == 200, what="widgets served")
    code, obj, _ = sim.post(w, {"apiVersion": "example.com/v1", "kind": "Widget",
                                "metadata": {"name": "a"}, "spec": {}})
    assert code == 201 and obj["spec"] == {"size": 1}
    code, lst, _ = sim.get(w)
    assert lst["kind"] == "WidgetList" and lst["items"][0]["kind"] == "Widget"
    t = sim.get(w, headers={"Accept": TABLE})[1]
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Age"]
    # add a printer column and a stricter maximum: both take effect at once
    patch = [{"op": "add", "path": "/spec/versions/0/additionalPrinterColumns",
              "value": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
             {"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/"
              "properties/size/maximum", "value": 5}]
    code, _, _ = sim.patch(CRDS + "/widgets.example.com", patch,
                           ctype="application/json-patch+json")
    assert code == 200
    t = sim.get(w, headers={"Accept": TABLE})[1]
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Size"]
    assert t["rows"][0]["cells"] == ["a", 1]
    code, body, _ = sim.post(w, {"apiVersion": "example.com/v1", "kind": "Widget",
                                 "metadata": {"name": "b"}, "spec": {"size": 6}})
    assert code == 422 and body["details"]["causes"][0]["message"] == \
        "Invalid value: 6: spec.size in body should be less than or equal to 5"
    # scope is immutable
    code, body, _ = sim.patch(CRDS + "/widgets.example.com", {"spec": {"scope": "Cluster"}})
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.scope"
