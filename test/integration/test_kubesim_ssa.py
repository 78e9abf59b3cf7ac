"""Pure-function tests of kubesim's API layer (apiext.py) and server-side apply (ssa.py).

No server needed: these run in milliseconds and pin the wire-visible details (discovery shape,
Status causes, Table cells, managedFields sets) that kubectl and the controller depend on.
"""

import copy
import json
import os
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "kubesim"))

import apiext  # noqa: E402

yaml = pytest.importorskip("yaml")

CRD_FILE = os.path.join(ROOT, "crds", "gpupolicy.dev_clustergpupolicies.yaml")


class FakeStore:
    """The slice of store.Store the registry uses."""

    def __init__(self):
        self.lock = threading.RLock()
        self.objs = {}
        self.registered = {}

    def register_resource(self, res, namespaced, status_subresource):
        self.registered[res] = (namespaced, status_subresource)

    def list(self, res, namespace=None, label_selector=None, field_selector=None):
        return [copy.deepcopy(o) for (r, _, _), o in self.objs.items() if r == res], 1

    def get(self, res, namespace, name):
        return copy.deepcopy(self.objs.get((res, namespace, name)))

    def update(self, res, obj, subresource=None):
        self.objs[(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        return obj

    def delete(self, res, namespace, name):
        return self.objs.pop((res, namespace, name), None)


def load_crd():
    with open(CRD_FILE) as f:
        return [d for d in yaml.safe_load_all(f) if d][0]


@pytest.fixture
def reg_with_crd():
    store = FakeStore()
    reg = apiext.Registry(store)
    crd = load_crd()
    info = reg.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    reg.prune_and_default(info, crd)
    assert reg.validate(info, crd) == []
    store.objs[(apiext.CRD_RES, None, crd["metadata"]["name"])] = crd
    reg.on_crd_change(crd)
    return reg, store


def test_version_is_a_json_path_kubectl():
    v = apiext.Registry(FakeStore()).version()
    assert v["major"] == "1" and int(v["minor"]) >= 30
    assert v["gitVersion"].startswith("v1.%s." % v["minor"])


def test_discovery_lists_builtins_with_subresources():
    reg = apiext.Registry(FakeStore())
    core = reg.discovery("/api/v1")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["nodes"]["namespaced"] is False and by_name["nodes"]["shortNames"] == ["no"]
    assert by_name["pods"]["categories"] == ["all"]
    assert by_name["nodes/status"]["verbs"] == ["get", "patch", "update"]
    assert "pods/status" in by_name and "namespaces/status" in by_name
    groups = {g["name"]: g for g in reg.discovery("/apis")["groups"]}
    for g in ("apps", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io",
              "node.k8s.io", "apiextensions.k8s.io"):
        assert groups[g]["preferredVersion"]["groupVersion"] == g + "/v1"
    assert "monitoring.coreos.com" not in groups
    ds = {r["name"]: r for r in reg.discovery("/apis/apps/v1")["resources"]}
    assert ds["daemonsets"]["shortNames"] == ["ds"] and "daemonsets/status" in ds
    assert reg.discovery("/apis/monitoring.coreos.com/v1") is None


def test_crd_serves_resource_and_gets_established(reg_with_crd):
    reg, store = reg_with_crd
    info = reg.lookup("gpupolicy.dev", "v1alpha1", "clustergpupolicies")
    assert info is not None and not info.namespaced and info.status_subresource
    assert store.registered[info.res] == (False, True)
    doc = reg.discovery("/apis/gpupolicy.dev/v1alpha1")
    names = {r["name"]: r for r in doc["resources"]}
    assert names["clustergpupolicies"]["shortNames"] == ["cgp"]
    assert names["clustergpupolicies"]["categories"] == ["gpu"]
    assert "clustergpupolicies/status" in names
    deadline = time.time() + 5
    while time.time() < deadline:
        st = store.objs[(apiext.CRD_RES, None, "clustergpupolicies.gpupolicy.dev")].get("status")
        if st:
            break
        time.sleep(0.01)
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert st["acceptedNames"]["kind"] == "ClusterGPUPolicy"
    assert st["storedVersions"] == ["v1alpha1"]
    reg.on_crd_change(load_crd(), deleted=True)
    assert reg.lookup("gpupolicy.dev", "v1alpha1", "clustergpupolicies") is None


def test_cr_pruning_defaults_and_enum_cause(reg_with_crd):
    reg, _ = reg_with_crd
    info = reg.lookup("gpupolicy.dev", "v1alpha1", "clustergpupolicies")
    obj = {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
           "metadata": {"name": "x"},
           "spec": {"bogus": 1, "driver": {"imagePullPolicy": "Sometimes"}}}
    assert reg.prune_and_default(info, obj) == ["spec.bogus"]
    assert obj["spec"]["driver"]["enabled"] is True  # default applied
    causes = reg.validate(info, obj)
    assert causes == [{"reason": "FieldValueNotSupported", "field": "spec.driver.imagePullPolicy",
                       "message": 'Unsupported value: "Sometimes": supported values: '
                                  '"IfNotPresent", "Always", "Never"'}]
    msg = reg.invalid_message(info, "x", causes)
    assert msg.startswith('ClusterGPUPolicy.gpupolicy.dev "x" is invalid: '
                          'spec.driver.imagePullPolicy: Unsupported value: "Sometimes"')


@pytest.mark.parametrize("schema,value,reason,message", [
    ({"type": "integer", "minimum": 0}, -1, "FieldValueInvalid",
     "Invalid value: -1: f in body should be greater than or equal to 0"),
    ({"type": "integer", "maximum": 3}, 4, "FieldValueInvalid",
     "Invalid value: 4: f in body should be less than or equal to 3"),
    ({"type": "string", "pattern": "^[a-z]+$"}, "A1", "FieldValueInvalid",
     "Invalid value: \"A1\": f in body should match '^[a-z]+$'"),
    ({"type": "string", "minLength": 2}, "a", "FieldValueInvalid",
     "Invalid value: \"a\": f in body should be at least 2 chars long"),
    ({"type": "string", "maxLength": 2}, "abc", "FieldValueTooLong",
     "Too long: may not be more than 2 bytes"),
    ({"type": "array", "items": {"type": "string"}, "maxItems": 1}, ["a", "b"],
     "FieldValueTooMany", "Too many: 2: must have at most 1 items"),
    ({"type": "array", "items": {"type": "string"}, "minItems": 1}, [], "FieldValueInvalid",
     "Invalid value: 0: f in body should have at least 1 items"),
    ({"type": "integer"}, "x", "FieldValueTypeInvalid",
     'Invalid value: "string": f in body must be of type integer: "string"'),
    ({"type": "string"}, None, "FieldValueTypeInvalid",
     'Invalid value: "null": f in body must be of type string: "null"'),
    ({"x-kubernetes-int-or-string": True}, [1], "FieldValueTypeInvalid",
     'Invalid value: "array": f in body must be of type integer,string: "array"'),
])
def test_schema_violations(schema, value, reason, message):
    causes = []
    apiext.validate_schema({"type": "object", "properties": {"f": schema}}, {"f": value}, "",
                           causes)
    assert causes == [{"reason": reason, "field": "f", "message": message}]


@pytest.mark.parametrize("schema,value", [
    ({"type": "string", "nullable": True}, None),
    ({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
      "pattern": "^[0-9]+%$"}, 3),
    ({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, {"a": {"b": 1}}),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": 1, "b": 2}),
    ({"type": "number", "minimum": 0.5}, 1),
])
def test_schema_accepts(schema, value):
    causes = []
    apiext.validate_schema({"type": "object", "properties": {"f": schema}}, {"f": value}, "",
                           causes)
    assert causes == []


def test_required_and_nested_additional_properties():
    schema = {"type": "object", "required": ["a"], "properties": {
        "m": {"type": "object", "additionalProperties": {"type": "object", "required": ["x"],
                                                          "properties": {"x": {"type": "string"}}}}}}
    causes = []
    apiext.validate_schema(schema, {"m": {"k": {}}}, "spec", causes)
    assert [(c["reason"], c["field"]) for c in causes] == [
        ("FieldValueRequired", "spec.a"), ("FieldValueRequired", "spec.m.k.x")]


def test_pruning_respects_preserve_and_additional_properties():
    schema = {"type": "object", "properties": {
        "keep": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "a": {"type": "string"}}}},
        "list": {"type": "array", "items": {"type": "object", "properties": {
            "n": {"type": "string"}}}}}}
    val = {"keep": {"x": 1}, "map": {"k": {"a": "1", "zz": 2}}, "list": [{"n": "a", "q": 1}],
           "gone": True}
    pruned = []
    val = apiext.prune_value(schema, val, "spec", pruned)
    assert val == {"keep": {"x": 1}, "map": {"k": {"a": "1"}}, "list": [{"n": "a"}]}
    assert sorted(pruned) == ["spec.gone", "spec.list[0].q", "spec.map.k.zz"]


def test_defaults_only_where_parent_exists():
    schema = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}},
        "b": {"type": "object", "default": {}, "properties": {
            "y": {"type": "string", "default": "z"}}}}}
    val = {}
    apiext.apply_defaults(schema, val)
    assert val == {"b": {"y": "z"}}


def test_crd_validation_rejects_bad_crds():
    reg = apiext.Registry(FakeStore())
    info = reg.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    crd = load_crd()
    crd["metadata"]["name"] = "wrong.gpupolicy.dev"
    crd["spec"]["scope"] = "Galaxy"
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["x"] = {"properties": {"a": {"type": "string"}}}
    fields = {c["field"]: c["reason"] for c in reg.validate(info, crd)}
    assert fields["metadata.name"] == "FieldValueInvalid"
    assert fields["spec.scope"] == "FieldValueNotSupported"
    assert fields["spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type"] \
        == "FieldValueRequired"


def test_openapi_index_and_patch_operation_for_kubectl(reg_with_crd):
    reg, _ = reg_with_crd
    idx = reg.openapi("/openapi/v3")["paths"]
    url = idx["apis/gpupolicy.dev/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/gpupolicy.dev/v1alpha1?hash=")
    assert "api/v1" in idx and "apis/apps/v1" in idx
    doc = reg.openapi(url)
    item = doc["paths"]["/apis/gpupolicy.dev/v1alpha1/clustergpupolicies/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "gpupolicy.dev", "version": "v1alpha1", "kind": "ClusterGPUPolicy"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= patch["parameters"][2].items()
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    comp = doc["components"]["schemas"]["dev.gpupolicy.v1alpha1.ClusterGPUPolicy"]
    assert comp["x-kubernetes-group-version-kind"][0]["kind"] == "ClusterGPUPolicy"
    pods = reg.openapi("/openapi/v3/api/v1")["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert pods["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Pod"
    json.dumps(doc)  # serialisable


def test_cr_table_printer_columns(reg_with_crd):
    reg, _ = reg_with_crd
    info = reg.lookup("gpupolicy.dev", "v1alpha1", "clustergpupolicies")
    obj = {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
           "metadata": {"name": "p", "creationTimestamp": "2024-05-01T10:00:00Z", "uid": "u"},
           "spec": {"driver": {"version": "550"}},
           "status": {"conditions": [{"type": "Stalled", "status": "False"},
                                     {"type": "Ready", "status": "True",
                                      "reason": "AllOperandsReady"}],
                      "nodesSummary": "3/4", "driverSummary": "550", "gpus": {"allocatable": 8}}}
    now = apiext.parse_time("2024-05-01T10:05:12Z")
    t = reg.table(info, [obj], {"resourceVersion": "9"}, now=now)
    assert [c["name"] for c in t["columnDefinitions"]] == [
        "Name", "Ready", "Nodes", "GPUs", "Driver", "Upgrade", "Reason", "Age"]
    assert t["columnDefinitions"][5]["priority"] == 1 and t["columnDefinitions"][6]["priority"] == 1
    assert t["rows"][0]["cells"] == ["p", "True", "3/4", 8, "550", None, "AllOperandsReady", "5m12s"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert t["metadata"] == {"resourceVersion": "9"}
    bare = dict(obj, status={})
    t = reg.table(info, [bare], {}, include_object="Object", now=now)
    assert t["rows"][0]["cells"][1:4] == [None, None, None]
    assert t["rows"][0]["object"]["kind"] == "ClusterGPUPolicy"


def test_builtin_tables_match_kubectl_columns():
    reg = apiext.Registry(FakeStore())
    now = apiext.parse_time("2024-05-01T12:00:00Z")
    node = {"metadata": {"name": "gpu-1", "creationTimestamp": "2024-05-01T10:00:00Z",
                         "labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.2"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    t = reg.table(reg.lookup("", "v1", "nodes"), [node], {}, now=now)
    assert [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Status", "Roles", "Age", "Version"]
    assert t["rows"][0]["cells"][:6] == ["gpu-1", "Ready,SchedulingDisabled", "worker", "120m",
                                         "v1.30.2", "10.0.0.1"]
    pod = {"metadata": {"name": "p", "creationTimestamp": "2024-05-01T11:59:00Z"},
           "spec": {"containers": [{"name": "c"}], "nodeName": "gpu-1"},
           "status": {"phase": "Running", "containerStatuses": [{
               "name": "c", "ready": False, "restartCount": 3,
               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    t = reg.table(reg.lookup("", "v1", "pods"), [pod], {}, now=now)
    assert t["rows"][0]["cells"][:5] == ["p", "0/1", "CrashLoopBackOff", "3", "60s"]
    ds = {"metadata": {"name": "d", "creationTimestamp": "2024-05-01T11:00:00Z"},
          "spec": {"selector": {"matchLabels": {"app": "d"}},
                   "template": {"spec": {"nodeSelector": {"gpu": "true"},
                                         "containers": [{"name": "c", "image": "i:1"}]}}},
          "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                     "numberReady": 3, "updatedNumberScheduled": 4, "numberAvailable": 3}}
    t = reg.table(reg.lookup("apps", "v1", "daemonsets"), [ds], {}, now=now)
    assert t["rows"][0]["cells"] == ["d", 4, 4, 3, 4, 3, "gpu=true", "60m", "c", "i:1", "app=d"]


@pytest.mark.parametrize("secs,text", [(0, "0s"), (119, "119s"), (125, "2m5s"), (600, "10m"),
                                       (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"),
                                       (50 * 3600, "2d2h"), (400 * 86400, "400d"),
                                       (800 * 86400, "2y70d")])
def test_human_duration(secs, text):
    assert apiext.human_duration(secs) == text


@pytest.mark.parametrize("expr,expected", [
    (".spec.a", 1), ("{.spec.b[1]}", "y"), (".spec.b[-1]", "y"),
    ('.status.conditions[?(@.type=="Ready")].status', "True"),
    (".status.conditions[?(@.type=='Ready')].reason", "Done"),
    (".status.conditions[*].type", "A"), (".spec['x.y']", 3), (".nope.x", None),
])
def test_jsonpath(expr, expected):
    obj = {"spec": {"a": 1, "b": ["x", "y"], "x.y": 3},
           "status": {"conditions": [{"type": "A", "status": "False"},
                                     {"type": "Ready", "status": "True", "reason": "Done"}]}}
    found, value = apiext.jsonpath_first(expr, obj)
    assert value == expected and found == (expected is not None)


def test_builtin_validation_daemonset_and_lease():
    reg = apiext.Registry(FakeStore())
    ds = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "d"}},
                                              "template": {"metadata": {"labels": {"app": "x"}},
                                                           "spec": {"containers": []}}}}
    fields = [c["field"] for c in reg.validate(reg.lookup("apps", "v1", "daemonsets"), ds)]
    assert fields == ["spec.template.metadata.labels", "spec.template.spec.containers"]
    lease = {"metadata": {"name": "l"}, "spec": {"renewTime": "2024-05-01T10:00:00Z"}}
    causes = reg.validate(reg.lookup("coordination.k8s.io", "v1", "leases"), lease)
    assert [c["field"] for c in causes] == ["spec.renewTime"]
    bad = {"metadata": {"name": "Bad_Name", "labels": {"a": "b c"}}}
    causes = reg.validate(reg.lookup("", "v1", "configmaps"), bad)
    assert [c["field"] for c in causes] == ["metadata.name", "metadata.labels"]


# ---------------------------------------------------------------------------------------------
# ssa.py

import ssa  # noqa: E402

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:01:00Z"


def cm(data, labels=None):
    o = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
         "data": data}
    if labels:
        o["metadata"]["labels"] = labels
    return o


def entries(obj):
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def test_apply_creates_with_managed_fields():
    obj = ssa.apply(None, cm({"a": "1"}, {"app": "x"}), "ctrl", False, T0)
    (e,) = obj["metadata"]["managedFields"]
    assert e == {"manager": "ctrl", "operation": "Apply", "apiVersion": "v1", "time": T0,
                 "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}}
    assert obj["data"] == {"a": "1"}


def test_apply_removes_fields_the_manager_stopped_applying():
    live = ssa.apply(None, cm({"a": "1", "b": "2"}), "ctrl", False, T0)
    live = ssa.record_update(live, dict(live, data={"a": "1", "b": "2", "z": "9"}), "other",
                             "Update", T0)
    out = ssa.apply(live, cm({"a": "1"}), "ctrl", False, T1)
    assert out["data"] == {"a": "1", "z": "9"}  # b removed, z (other's) kept
    es = entries(out)
    assert es[("ctrl", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert es[("other", "Update")]["fieldsV1"] == {"f:data": {"f:z": {}}}


def test_apply_conflict_and_force():
    live = ssa.apply(None, cm({"a": "1"}), "kubectl", False, T0)
    upd = copy.deepcopy(live)
    upd["data"]["a"] = "2"
    live = ssa.record_update(live, upd, "kubectl-client-side-apply", "Update", T0)
    with pytest.raises(ssa.ApplyConflict) as ei:
        ssa.apply(live, cm({"a": "3"}), "gpu-policy-controller", False, T1)
    err = ei.value
    assert err.message == ('Apply failed with 1 conflict: conflict with '
                           '"kubectl-client-side-apply" using v1: .data.a')
    assert err.causes == [{"reason": "FieldManagerConflict", "field": ".data.a",
                           "message": 'conflict with "kubectl-client-side-apply" using v1'}]
    # same value: no conflict, shared ownership
    shared = ssa.apply(live, cm({"a": "2"}), "gpu-policy-controller", False, T1)
    assert set(entries(shared)) == {("kubectl-client-side-apply", "Update"),
                                    ("gpu-policy-controller", "Apply")}
    forced = ssa.apply(live, cm({"a": "3"}), "gpu-policy-controller", True, T1)
    assert forced["data"]["a"] == "3"
    assert set(entries(forced)) == {("gpu-policy-controller", "Apply")}


def test_multiple_conflicts_message():
    live = ssa.record_update(None, cm({"a": "1", "b": "1"}), "m", "Update", T0)
    with pytest.raises(ssa.ApplyConflict) as ei:
        ssa.apply(live, cm({"a": "2", "b": "2"}), "x", False, T1)
    assert ei.value.message == ('Apply failed with 2 conflicts: conflicts with "m" using v1:\n'
                                '- .data.a\n- .data.b')


def ds(containers, tolerations=None):
    spec = {"template": {"spec": {"containers": containers}}}
    if tolerations is not None:
        spec["template"]["spec"]["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "d", "namespace": "n"}, "spec": spec}


def test_keyed_lists_merge_by_name_and_encode_k_keys():
    live = ssa.apply(None, ds([{"name": "a", "image": "a:1"}]), "one", False, T0)
    fv = entries(live)[("one", "Apply")]["fieldsV1"]
    item = fv["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"a"}']
    assert item == {".": {}, "f:image": {}, "f:name": {}}
    both = ssa.apply(live, ds([{"name": "b", "image": "b:1"}]), "two", False, T1)
    assert [c["name"] for c in both["spec"]["template"]["spec"]["containers"]] == ["a", "b"]
    # "one" stops applying its container: removed, "two"'s stays
    gone = ssa.apply(both, ds([]), "one", False, T1)
    assert [c["name"] for c in gone["spec"]["template"]["spec"]["containers"]] == ["b"]
    with pytest.raises(ssa.ApplyConflict) as ei:
        ssa.apply(both, ds([{"name": "b", "image": "b:2"}]), "one", False, T1)
    assert ei.value.causes[0]["field"] == '.spec.template.spec.containers[name="b"].image'


def test_atomic_lists_replace_whole():
    live = ssa.apply(None, ds([{"name": "a", "image": "a"}], [{"key": "x"}, {"key": "y"}]),
                     "one", False, T0)
    out = ssa.apply(live, ds([{"name": "a", "image": "a"}], [{"key": "z"}]), "one", False, T1)
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "z"}]


def test_status_subresource_scopes_apply():
    obj = {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterGPUPolicy",
           "metadata": {"name": "p"}, "spec": {"x": 1}, "status": {"ready": False}}
    live = ssa.apply(None, obj, "user", False, T0, status_subresource=True)
    assert "status" not in live
    st = ssa.apply(live, {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                          "metadata": {"name": "p"}, "spec": {"x": 99},
                          "status": {"ready": True}},
                   "gpu-policy-controller", True, T1, status_subresource=True,
                   subresource="status")
    assert st["spec"] == {"x": 1} and st["status"] == {"ready": True}
    e = entries(st)[("gpu-policy-controller", "Apply")]
    assert e["subresource"] == "status" and e["fieldsV1"] == {"f:status": {"f:ready": {}}}


def test_crd_schema_list_types():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "env": {"type": "array", "items": {"type": "object"}}}}}}
    o = {"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "k"},
         "spec": {"tags": ["a", "b"], "env": [{"name": "A", "value": "1"}]}}
    live = ssa.apply(None, o, "m", False, T0, schema=schema)
    fv = entries(live)[("m", "Apply")]["fieldsV1"]["f:spec"]
    assert fv == {"f:tags": {'v:"a"': {}, 'v:"b"': {}}, "f:env": {}}


def test_record_update_transfers_ownership_and_clears_removed():
    live = ssa.record_update(None, cm({"a": "1", "b": "1"}), "creator", "Update", T0)
    after = copy.deepcopy(live)
    after["data"] = {"a": "2"}
    out = ssa.record_update(live, after, "editor", "Update", T1)
    es = entries(out)
    assert es[("editor", "Update")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert ("creator", "Update") not in es  # lost a (changed) and b (removed)
    # a no-op write leaves managedFields alone
    same = ssa.record_update(out, copy.deepcopy(out), "third", "Update", T1)
    assert same["metadata"]["managedFields"] == out["metadata"]["managedFields"]


def test_fields_v1_round_trip():
    paths = {("f:spec", "f:a"), ("f:spec", 'k:{"name":"x"}', "."),
             ("f:spec", 'k:{"name":"x"}', "f:name"), ("f:metadata", "f:finalizers", 'v:"f"')}
    assert ssa.from_fields_v1(ssa.to_fields_v1(paths)) == paths
    assert ssa.path_string(("f:spec", 'k:{"name":"x"}', "f:image")) == '.spec[name="x"].image'


def test_builtin_unknown_top_level_fields_are_pruned_and_reported():
    reg = apiext.Registry(FakeStore())
    o = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "bogus": 1},
         "data": {"a": "b"}, "spec": {}}
    assert reg.prune_and_default(reg.lookup("", "v1", "configmaps"), o) == ["spec",
                                                                            "metadata.bogus"]
    assert o == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                 "data": {"a": "b"}}
    ev = {"metadata": {"name": "e"}, "involvedObject": {}, "reason": "R", "message": "m",
          "source": {}, "firstTimestamp": None, "lastTimestamp": None, "count": 1, "type": "Normal",
          "reportingComponent": "c", "reportingInstance": "i"}
    assert reg.prune_and_default(reg.lookup("", "v1", "events"), ev) == []


def test_record_update_diffs_keyed_lists_and_sets():
    live = ssa.apply(None, ds([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]),
                     "ctrl", False, T0)
    live["metadata"]["finalizers"] = ["x"]
    after = copy.deepcopy(live)
    after["spec"]["template"]["spec"]["containers"] = [{"name": "a", "image": "a:2"}]
    after["metadata"]["finalizers"] = ["x", "y"]
    out = ssa.record_update(live, after, "editor", "Update", T1)
    es = entries(out)
    spec_path = es[("editor", "Update")]["fieldsV1"]
    assert spec_path["f:metadata"] == {"f:finalizers": {'v:"y"': {}}}
    assert spec_path["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"a"}': {"f:image": {}}}
    ctrl = es[("ctrl", "Apply")]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert ctrl == {'k:{"name":"a"}': {".": {}, "f:name": {}}}  # lost a.image and all of b


def test_repeated_identical_apply_is_a_noop():
    live = ssa.apply(None, cm({"a": "1"}), "ctrl", False, T0)
    again = ssa.apply(copy.deepcopy(live), cm({"a": "1"}), "ctrl", False, T1)
    assert again == live  # same managedFields time: the store sees no change, no new RV
    changed = ssa.apply(copy.deepcopy(live), cm({"a": "2"}), "ctrl", False, T1)
    assert changed["metadata"]["managedFields"][0]["time"] == T1


def test_annotations_total_size_limit():
    reg = apiext.Registry(FakeStore())
    big = {"metadata": {"name": "c", "annotations": {"a": "x" * 262144}}}
    causes = reg.validate(reg.lookup("", "v1", "configmaps"), big)
    assert causes == [{"reason": "FieldValueTooLong", "field": "metadata.annotations",
                       "message": "Too long: may not be more than 262144 bytes"}]
    big["metadata"]["annotations"]["a"] = "x" * 1000
    assert reg.validate(reg.lookup("", "v1", "configmaps"), big) == []


def test_record_update_scopes_to_the_endpoint():
    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
           "spec": {"x": 1}, "status": {"n": 1}}
    live = ssa.record_update(None, copy.deepcopy(obj), "creator", "Update", T0)
    # a /status write carrying a stale spec gains status only and strips nobody's spec
    after = dict(copy.deepcopy(live), spec={}, status={"n": 2})
    out = ssa.record_update(live, after, "kubelet", "Update", T1, subresource="status")
    es = entries(out)
    assert es[("kubelet", "Update")]["fieldsV1"] == {"f:status": {"f:n": {}}}
    assert es[("kubelet", "Update")]["subresource"] == "status"
    assert es[("creator", "Update")]["fieldsV1"] == {"f:spec": {"f:x": {}}}
    # a main-endpoint write of a status-subresource kind does not claim status
    after = dict(copy.deepcopy(live), spec={"x": 2}, status={"n": 9})
    out = ssa.record_update(live, after, "editor", "Update", T1, status_subresource=True)
    assert entries(out)[("editor", "Update")]["fieldsV1"] == {"f:spec": {"f:x": {}}}


def test_typed_builtin_fields_catch_template_typos():
    reg = apiext.Registry(FakeStore())
    d = ds([{"name": "a", "image": "a:1", "imagePulPolicy": "Always",
             "env": [{"name": "X", "valu": "1"}]}], [{"key": "k", "effects": "NoSchedule"}])
    d["spec"]["template"]["metadata"] = {"labels": {"app": "a"}, "lables": {}}
    d["spec"]["selectr"] = {}
    pruned = reg.prune_and_default(reg.lookup("apps", "v1", "daemonsets"), d)
    assert sorted(pruned) == ["spec.selectr", "spec.template.metadata.lables",
                              "spec.template.spec.containers[0].env[0].valu",
                              "spec.template.spec.containers[0].imagePulPolicy",
                              "spec.template.spec.tolerations[0].effects"]
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert "imagePulPolicy" not in c and c["imagePullPolicy"] == "IfNotPresent"
